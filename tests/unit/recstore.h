/* A store wrapper that records every change a workload makes (pwrite,
 * truncate, flush, create, rename, unlink, sync_dir) so that the states a
 * crash could leave behind can be rebuilt afterwards: every prefix of the
 * log, and prefixes in which some writes that no flush had yet made durable
 * are missing (the disk may have reordered or dropped them). */
#ifndef VDK_RECSTORE_H
#define VDK_RECSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "vdk_store.h"

enum rec_kind {
    REC_WRITE,
    REC_TRUNCATE,
    REC_FLUSH,
    REC_CREATE,
    REC_RENAME,
    REC_UNLINK,
    REC_SYNC_DIR,
    REC_MARK, /* the workload's own marker: never replayed */
};

struct rec_op {
    int kind;
    unsigned fid;  /* file identity (follows renames) for data ops */
    char *name;    /* the file's name when the op ran; rename: from */
    char *name2;   /* rename: to */
    uint64_t off;  /* write: offset; truncate: size; mark: its value */
    size_t len;    /* write */
    uint8_t *data; /* write */
};

/* Files and their contents: the state the workload starts from. */
struct rec_snapshot {
    size_t n;
    char **names;
    uint8_t **data;
    size_t *sizes;
};

/* Copy every file of a memory store (root level) into a snapshot. */
void rec_snapshot_take(vdk_store *s, struct rec_snapshot *out);
void rec_snapshot_free(struct rec_snapshot *sn);
/* A new memory store holding the snapshot's files. */
vdk_store *rec_snapshot_store(const struct rec_snapshot *sn);

/* Wrap 'inner' (not owned) and record from now on. */
vdk_store *recstore_new(vdk_store *inner);
/* Append a workload marker; returns its log position. */
size_t recstore_mark(vdk_store *s, uint64_t value);
/* The log so far. */
const struct rec_op *recstore_log(vdk_store *s, size_t *n);

/* Apply ops [from, to) of the log to 'target' (a memory store), skipping
 * those whose index is set in 'drop' (NULL: none). */
void rec_apply(vdk_store *s, vdk_store *target, size_t from, size_t to, const uint8_t *drop);
/* A copy of a memory store. */
vdk_store *rec_copy(vdk_store *mem);

/* Mark in pending[0..cut) the writes that a crash at 'cut' may lose: no
 * flush of their file followed them before cut.  Returns their count. */
size_t rec_pending(vdk_store *s, size_t cut, uint8_t *pending);

#endif
