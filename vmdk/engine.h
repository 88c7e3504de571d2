/* The VMDK engine's internal model: a disk is a chain of links; a link is a
 * descriptor plus extents; an extent is served by one driver. */
#ifndef VDK_ENGINE_H
#define VDK_ENGINE_H

#include <pthread.h>
#include <stdint.h>

#include "descriptor.h"
#include "mcache.h"
#include "vdk.h"

#define CHAIN_MAX_DEPTH 255u
#define MCACHE_BUDGET   (8u << 20)

/* What a driver says about a byte range of its extent. */
enum run_kind {
    RUN_DATA,     /* stored uncompressed at file_off in the extent's file */
    RUN_ZERO,     /* reads as zeros; hides the parent */
    RUN_HOLE,     /* not allocated here: the parent answers (zeros at the base) */
    RUN_INDIRECT, /* stored in a form only the driver can read (compressed) */
};

struct run {
    int kind;
    uint64_t len;      /* > 0 and <= the length asked */
    uint64_t file_off; /* RUN_DATA only */
};

struct extent;

/* One table per on-disk format (flat, zero, hosted sparse, COWD, seSparse). */
struct extent_ops {
    const char *format;
    /* Validate the file's headers and set up e->priv. */
    int (*open)(struct extent *e, vdk_error *err);
    /* Describe [off, off+len) (bytes into the extent).  Data-path errors are
     * reported through disk_fail(). */
    int (*status)(struct extent *e, uint64_t off, uint64_t len, struct run *r);
    /* Read a RUN_INDIRECT range (never crossing what status() returned). */
    int (*read_indirect)(struct extent *e, uint64_t off, void *buf, size_t len);
    /* Store [off, off+len), allocating as needed; NULL for read-only formats. */
    int (*write)(struct extent *e, uint64_t off, const void *buf, size_t len);
    /* Raise or lower the format's "open for writing" mark (may be NULL). */
    int (*set_unclean)(struct extent *e, int unclean);
    void (*close)(struct extent *e);
};

extern const struct extent_ops extent_flat_ops;
extern const struct extent_ops extent_zero_ops;
extern const struct extent_ops extent_kdmv_ops;
extern const struct extent_ops extent_cowd_ops;
extern const struct extent_ops extent_sesparse_ops;

struct extent {
    const struct extent_ops *ops;
    struct vdk_disk *disk;
    const struct desc_extent *d; /* its descriptor line */
    uint64_t start, size;        /* bytes within the disk */
    char *name;                  /* store name of its file, NULL for ZERO */
    vdk_file *file;              /* NULL for ZERO */
    int owns_file;               /* 0 when it is the descriptor's own file */
    uint64_t fid;                /* metadata cache id */
    uint64_t file_size;          /* grows as grains are appended: use ext_file_size() */
    const char *format;          /* ops->format unless the driver says better */
    void *priv;
};

struct vdk_disk {
    vdk_store *store;
    vdk_store *owned_store; /* set when vdk_open made the store */
    char *name;
    unsigned flags;
    struct descriptor *desc;
    vdk_file *desc_file;          /* the file the descriptor was read from */
    int desc_embedded;            /* descriptor lives inside a sparse extent */
    uint64_t desc_off, desc_room; /* embedded: its byte range (0 room: none) */
    struct extent *ext;
    unsigned n_ext;
    uint64_t capacity;
    struct vdk_disk *parent;
    unsigned depth; /* 1 at the base */
    struct mcache *mc;
    int owns_mc;
    int unclean;
    int writable;              /* opened for writing (top link only) */
    uint64_t hole_hint;        /* read-only links: a known hole, see read.c */
    int cid_changed;           /* the CID was renewed since open */
    int keep_zeros;            /* store zeros written over holes (a rewrite of a
                                * link whose parent must stay hidden there) */
    pthread_mutex_t meta_lock; /* descriptor changes */
    pthread_mutex_t err_lock;
    vdk_error last;
};

/* Open one link and, unless VDK_OPEN_SINGLE_LINK, its parents. */
int chain_open(vdk_store *store, const char *name, unsigned flags, struct vdk_disk **out,
               vdk_error *err);
void chain_close(struct vdk_disk *d);

/* Record a data-path failure on the disk (kept for vdk_last_error) and
 * return -code. */
int disk_fail(struct vdk_disk *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Resolve what answers [off, off+len) of the disk as seen from link d:
 * *link and *ext receive the link and extent (ext NULL beyond a shorter
 * parent's capacity, which reads zeros), r the run.  With this_link_only,
 * a hole stops at d instead of descending. */
int chain_resolve(struct vdk_disk *d, uint64_t off, uint64_t len, int this_link_only,
                  struct vdk_disk **link, struct extent **ext, struct run *r);

int64_t chain_read(struct vdk_disk *d, void *buf, size_t len, uint64_t off);
/* vdk_read_vec (vdk.h): pieces in local files are named, not copied; with
 * lend, pieces in a store's memory are lent (vdk_read_lend). */
int chain_read_vec(struct vdk_disk *d, void *buf, size_t len, uint64_t off, vdk_segment *seg,
                   unsigned max, int lend);
/* vdk_read_release (vdk.h). */
void chain_release(vdk_segment *seg, int n);

/* The extent holding byte off (off < d->capacity). */
struct extent *link_find_extent(struct vdk_disk *d, uint64_t off);

int64_t chain_write(struct vdk_disk *d, const void *buf, size_t len, uint64_t off);
int chain_flush(struct vdk_disk *d);
/* Flush, lower the unclean marks and close; returns the first error. */
int chain_close_checked(struct vdk_disk *d);

/* Rewrite the link's descriptor (in place when embedded, else by an atomic
 * replace of its file).  Called with meta_lock held. */
int link_write_descriptor(struct vdk_disk *d, vdk_error *err);

/* Findings of a consistency check (vdk check). */
struct check_ctx {
    vdk_report_cb cb;
    void *arg;
    unsigned problems, repaired;
};
/* Report one finding: serious ones count as problems. */
void check_say(struct check_ctx *c, int serious, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Check (and with repair, fix) a seSparse extent's tables. */
int se_check(struct extent *e, int repair, struct check_ctx *ctx);

/* One line for the user (the vdk_set_log hook, else stderr). */
void vdk_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern void (*vdk_log_hook)(const char *line);

/* Give a writable link a new CID now, unless it already has one since open. */
int link_renew_cid(struct vdk_disk *d);

/* Shrink/defragment: rewrite link 'name''s sparse extents with their grains
 * in guest order and nothing unused; *saved gets the bytes freed. */
int link_rewrite(vdk_store *st, const char *name, vdk_progress_cb cb, void *arg, uint64_t *saved,
                 vdk_error *err);

/* Let a hosted sparse extent hold 'sectors' (its tables grow; the header
 * is rewritten last, as the commit point). */
int kdmv_grow(struct extent *e, uint64_t sectors, vdk_error *err);

/* Check (and with repair, fix) the top link of d. */
int link_check(struct vdk_disk *d, int repair, struct check_ctx *ctx);

/* Helpers for drivers: read a little-endian table entry through the cache. */
/* count little-endian u32 table entries from off (4-byte aligned). */
/* A descriptor whose pread gives f's bytes, or -1 (stores before file ops
 * version 2, and remote ones, have none). */
int file_fd(vdk_file *f);
/* Whether f's store can lend bytes (file ops version 3 with pin). */
int file_can_lend(vdk_file *f);
int ext_read_u32s(struct extent *e, uint64_t off, uint32_t *out, unsigned count);
int ext_read_u32(struct extent *e, uint64_t off, uint32_t *out);
int ext_read_u64(struct extent *e, uint64_t off, uint64_t *out);
/* Write len bytes at off into the extent's file; failures are recorded
 * with disk_fail(). */
int ext_pwrite(struct extent *e, const void *buf, size_t len, uint64_t off);
/* Make what was written to the extent durable before what follows: a new
 * grain that carries its parent's bytes must be on disk before the entry
 * pointing at it, or a crash could show zeros where the parent's data was. */
int ext_order(struct extent *e);
/* Read exactly len bytes at off from the extent's file; short is corrupt. */
int ext_pread_exact(struct extent *e, void *buf, size_t len, uint64_t off);
/* What the links below this extent's link hold at [off, off+len) of the
 * extent (zeros at the base). */
int ext_read_below(struct extent *e, uint64_t off, void *buf, size_t len);

static inline uint64_t ext_file_size(const struct extent *e)
{
    return __atomic_load_n(&e->file_size, __ATOMIC_ACQUIRE);
}

/* Note that the file now reaches at least 'end'. */
static inline void ext_grow_size(struct extent *e, uint64_t end)
{
    uint64_t cur = ext_file_size(e);
    while (cur < end && !__atomic_compare_exchange_n(&e->file_size, &cur, end, 0, __ATOMIC_RELEASE,
                                                     __ATOMIC_ACQUIRE))
        ;
}

#endif
