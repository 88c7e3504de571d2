/*
 * bcache.h - a bounded block cache with read-ahead for remote files
 * (internal).
 *
 * Remote reads cost a round trip each, so the datastore store reads whole
 * blocks, keeps recently used ones within a memory budget, and when a file
 * is read sequentially fetches the blocks ahead on worker threads over
 * their own kept-alive connections.  A block is fetched once however many
 * threads want it (they wait for the first), and a run of missing blocks is
 * fetched with one ranged request.
 */
#ifndef VDK_REMOTE_BCACHE_H
#define VDK_REMOTE_BCACHE_H

#include <stddef.h>
#include <stdint.h>

/* Read len bytes at off of 'file' (short only at its end); -errno. */
typedef int64_t (*bcache_fetch_fn)(void *file, void *buf, size_t len, uint64_t off);

struct bcache;

/* One cached file.  Zero it, set file and size, then bcache_attach. */
struct bcache_file {
    void *file;
    uint64_t size;
    /* private */
    uint64_t id, seq_next, ahead_next, pin_end;
    unsigned run, inflight;
};

int bcache_new(size_t block, size_t budget, size_t readahead, unsigned workers,
               bcache_fetch_fn fetch, struct bcache **out);
void bcache_free(struct bcache *c);

void bcache_attach(struct bcache *c, struct bcache_file *f);
/* Drop the file's blocks after its read-ahead has finished. */
void bcache_detach(struct bcache *c, struct bcache_file *f);

int64_t bcache_read(struct bcache *c, struct bcache_file *f, void *buf, size_t len, uint64_t off);
/* Lend instead of copy: point *mem at the cached bytes from off on (up to
 * len, within one block), fetching them first if need be, and hold them
 * until bcache_unpin(*pin), which comes before bcache_detach.  Returns the
 * count, 0 at end of file, or -errno. */
int64_t bcache_pin(struct bcache *c, struct bcache_file *f, size_t len, uint64_t off,
                   const void **mem, void **pin);
void bcache_unpin(struct bcache *c, void *pin);
/* Bytes of chunk memory allocated so far (freed chunks are reused first). */
uint64_t bcache_allocated(struct bcache *c);

#endif
