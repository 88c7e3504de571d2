/*
 * vdk.h - libvdk, an open library for VMware virtual disks (VMDK).
 *
 * Modelled on VMware's VixDiskLib: open a disk (a chain of links, each link a
 * descriptor plus extents), read it, query its metadata and allocation.
 *
 * Conventions
 *  - Functions return 0 on success and a negative vdk_status on failure;
 *    I/O functions return a byte count or a negative vdk_status.
 *  - Control-path functions take an optional vdk_error* that receives a
 *    one-line message naming the file and the field at fault.
 *  - A vdk_disk may be read from many threads at once.
 *  - Offsets and lengths are in bytes; capacity is always a multiple of 512.
 */
#ifndef VDK_H
#define VDK_H

#include <stddef.h>
#include <stdint.h>

#include "vdk_store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VDK_VERSION_STRING "0.1.0"

typedef enum vdk_status {
    VDK_OK = 0,
    VDK_E_INVAL = 1,        /* invalid argument */
    VDK_E_NOMEM = 2,        /* out of memory */
    VDK_E_NOENT = 3,        /* a named file does not exist */
    VDK_E_IO = 4,           /* the store failed to read or write */
    VDK_E_CORRUPT = 5,      /* on-disk structures are damaged or inconsistent */
    VDK_E_UNSUPPORTED = 6,  /* valid, but a feature this version cannot handle */
    VDK_E_ESCAPE = 7,       /* a name would leave the store (absolute, "..", symlink) */
    VDK_E_ACCESS = 8,       /* permission denied or NOACCESS extent */
    VDK_E_CID_MISMATCH = 9, /* a child's parentCID differs from its parent's CID */
    VDK_E_CHAIN = 10,       /* parent chain loops or is too deep */
    VDK_E_RDONLY = 11,      /* the disk or link is read-only */
    VDK_E_NOSPC = 12,       /* no space left in the store */
    VDK_E_RANGE = 13,       /* offset or size beyond the disk's capacity */
    VDK_E_EXISTS = 14,      /* the target already exists */
    VDK_E_BUFSMALL = 15,    /* the caller's buffer is too small; see *needed */
    VDK_E_NOTFOUND = 16,    /* no such metadata key */
} vdk_status;

/* Static English text for a status (positive or negative). */
VDK_API const char *vdk_strerror(int status);
/* The errno value closest to a status (for FUSE and POSIX callers). */
VDK_API int vdk_errno(int status);

typedef struct vdk_error {
    int code;          /* negative vdk_status, 0 when no error */
    char message[512]; /* one line, no trailing newline */
} vdk_error;

typedef struct vdk_disk vdk_disk;

/* Flags for vdk_open. */
enum {
    VDK_OPEN_RDONLY = 1u << 0,      /* read-only; without it the top link is
                                     * opened for writing (its parents never) */
    VDK_OPEN_SINGLE_LINK = 1u << 1, /* do not open the parent chain */
    VDK_OPEN_IGNORE_CID = 1u << 2,  /* accept parentCID != parent's CID */
    VDK_OPEN_RAW = 1u << 3,         /* the file is a raw image, not a VMDK */
};

/* Open the disk whose descriptor (or monolithic file) is at 'path'.  The
 * directory holding it becomes the store: extents and parents must lie
 * beneath it. */
VDK_API int vdk_open(const char *path, unsigned flags, vdk_disk **out, vdk_error *err);

/* Open the disk named 'name' inside 'store'.  The store must outlive the
 * disk; vdk_close does not destroy it. */
VDK_API int vdk_open_store(vdk_store *store, const char *name, unsigned flags, vdk_disk **out,
                           vdk_error *err);

/* Close a disk opened by vdk_open*, with its whole chain.  A writable disk
 * is flushed and its uncleanShutdown mark cleared first; a failure there is
 * returned (the handle is freed regardless). */
VDK_API int vdk_close(vdk_disk *disk);

/* The parent link of 'disk' (NULL at the base).  It stays valid until the
 * child is closed, and reading it gives the disk as of that link. */
VDK_API vdk_disk *vdk_parent(const vdk_disk *disk);

/* Capacity in bytes. */
VDK_API uint64_t vdk_capacity(const vdk_disk *disk);

/* Read len bytes at off into buf through the chain.  Returns the number of
 * bytes read, which is short only when the range passes the capacity, or a
 * negative vdk_status (details in vdk_last_error). Thread-safe. */
VDK_API int64_t vdk_read(vdk_disk *disk, void *buf, size_t len, uint64_t off);

/* One piece of a vdk_read_vec answer: either len bytes readable with
 * pread(fd, .., len, fd_off), or (fd -1) bytes already in the caller's
 * buffer at this piece's position, or (fd VDK_SEG_LENT, from vdk_read_lend
 * only) len bytes at mem. */
typedef struct vdk_segment {
    int fd;
    uint64_t fd_off;
    uint64_t len;
    const void *mem; /* VDK_SEG_LENT: the bytes, unchanged until released */
    void *hold[2];   /* VDK_SEG_LENT: what vdk_read_release gives back */
} vdk_segment;

#define VDK_SEG_LENT (-2)

/* Like vdk_read, but where the bytes sit unchanged in a local file the
 * answer names that file range instead of copying it, so a caller can
 * splice or sendfile it (vdkfs hands such ranges to the kernel without a
 * copy through memory).  Everything else (zeros, compressed grains, remote
 * data) is read into buf at its offset in the range; past max pieces, the
 * rest too.  The pieces cover [off, off+returned length) in order.  Returns
 * the number of pieces in seg (>= 1, or 0 at or past the capacity) or a
 * negative vdk_status.  The descriptors stay valid while the disk is open.
 * Thread-safe. */
VDK_API int vdk_read_vec(vdk_disk *disk, void *buf, size_t len, uint64_t off, vdk_segment *seg,
                         unsigned max);

/* Like vdk_read_vec, and bytes that a store already holds in memory of its
 * own (a remote datastore's block cache) may be lent instead of copied:
 * pieces with fd VDK_SEG_LENT point at them, and buf is left unwritten at
 * their positions.  Like named pieces they never take the last slot, so
 * lending needs max >= 2.  The store keeps lent bytes unchanged (and in its
 * cache) until vdk_read_release, which must come before the disk is
 * closed; on failure nothing stays lent.  Thread-safe. */
VDK_API int vdk_read_lend(vdk_disk *disk, void *buf, size_t len, uint64_t off, vdk_segment *seg,
                          unsigned max);

/* Give back the lent pieces among seg[0..n) (others are left alone); a
 * piece given back must not be used again. */
VDK_API void vdk_read_release(vdk_segment *seg, int n);

/* Write len bytes at off into the top link (allocating grains as needed).
 * Returns len or a negative vdk_status; [off, off+len) must lie within the
 * capacity.  The first write after open gives the disk a new CID, as VMware
 * does.  Thread-safe; data is durable only after vdk_flush. */
VDK_API int64_t vdk_write(vdk_disk *disk, const void *buf, size_t len, uint64_t off);

/* Make [off, off+len) read as zeros and, in a base disk, free the whole
 * grains inside it (fallocate --punch-hole).  Thread-safe. */
VDK_API int vdk_discard(vdk_disk *disk, uint64_t off, uint64_t len);

/* Make everything written before the call durable. */
VDK_API int vdk_flush(vdk_disk *disk);

/* Where libvdk's notices go (one line each, e.g. "change tracking switched
 * off"); NULL restores the default, stderr. */
VDK_API void vdk_set_log(void (*hook)(const char *line));

/* The message of the most recent failure on this disk's data path. */
VDK_API void vdk_last_error(vdk_disk *disk, vdk_error *err);

#define VDK_NAME_MAX 1024

typedef struct vdk_info {
    char name[VDK_NAME_MAX];            /* store name of the descriptor file */
    char create_type[64];               /* createType as written */
    uint64_t capacity;                  /* bytes */
    char adapter[32];                   /* ddb.adapterType, "" if absent */
    int hw_version;                     /* ddb.virtualHWVersion, 0 if absent */
    uint32_t cylinders, heads, sectors; /* ddb.geometry.*, 0 if absent */
    uint32_t cid;                       /* content id */
    uint32_t parent_cid;                /* 0xffffffff when there is no parent */
    char parent_hint[VDK_NAME_MAX];     /* parentFileNameHint, "" if none */
    char parent_name[VDK_NAME_MAX];     /* the store name it resolves to, "" if none
                                         * or outside the store */
    char uuid[64];                      /* ddb.uuid, "" if absent */
    unsigned extent_count;
    unsigned chain_depth;   /* links from this one down to the base */
    int descriptor_version; /* "version=" of the descriptor */
    int change_tracking;    /* changeTrackPath is set (version 3) */
    int unclean;            /* an extent header says uncleanShutdown */
} vdk_info;

VDK_API int vdk_get_info(const vdk_disk *disk, vdk_info *out);

typedef struct vdk_extent_info {
    char access[12];         /* RW, RDONLY, NOACCESS */
    char type[16];           /* FLAT, SPARSE, ZERO, VMFS, VMFSSPARSE, ... */
    uint64_t sectors;        /* size in 512-byte sectors */
    char file[VDK_NAME_MAX]; /* store name, "" for ZERO */
    uint64_t offset;         /* FLAT offset in sectors */
    char format[24];         /* on-disk format: flat, zero, hosted-sparse,
                              * stream-optimized, cowd, sesparse */
} vdk_extent_info;

VDK_API int vdk_get_extent(const vdk_disk *disk, unsigned index, vdk_extent_info *out);

/* Metadata (the descriptor's ddb keys, named without "ddb.").
 * vdk_meta_keys fills buf with NUL-terminated names followed by one more
 * NUL, as VixDiskLib_GetMetadataKeys does.  Both return -VDK_E_BUFSMALL with
 * *needed set when buf is too small; buf may be NULL to ask the size. */
VDK_API int vdk_meta_keys(const vdk_disk *disk, char *buf, size_t buflen, size_t *needed);
VDK_API int vdk_meta_get(const vdk_disk *disk, const char *key, char *buf, size_t buflen,
                         size_t *needed);

/* Allocation map (VixDiskLib_QueryAllocatedBlocks, qemu-img map). */
enum vdk_range_kind {
    VDK_RANGE_DATA = 0, /* data stored in a link */
    VDK_RANGE_ZERO = 1, /* reads as zeros by an explicit zero entry or extent */
    VDK_RANGE_HOLE = 2, /* not allocated anywhere in the chain: reads zeros */
};
typedef struct vdk_range {
    uint64_t offset, length; /* bytes */
    int kind;                /* enum vdk_range_kind */
    unsigned depth;          /* link that answers: 0 = the opened one */
} vdk_range;
typedef int (*vdk_range_cb)(void *arg, const vdk_range *r);

enum {
    VDK_MAP_THIS_LINK = 1u << 0, /* report this link only: HOLE where it
                                  * falls through to its parent */
};
/* Walk [off, off+len) in order, merging neighbours of the same kind and
 * depth; stops early when cb returns non-zero (and returns that value). */
VDK_API int vdk_map(vdk_disk *disk, uint64_t off, uint64_t len, unsigned flags, vdk_range_cb cb,
                    void *arg);

/* Bytes of data allocated in this link alone (sum of DATA ranges). */
VDK_API int vdk_allocated_bytes(vdk_disk *disk, uint64_t *out);

/* Set a ddb key (without "ddb."), adding it when absent (keys cannot be
 * removed, as in VixDiskLib).  The descriptor is rewritten in place when it
 * is embedded and still fits, else replaced atomically.  Values may not hold
 * quotes or line breaks.  The disk must be open for writing. */
VDK_API int vdk_meta_set(vdk_disk *disk, const char *key, const char *value, vdk_error *err);

/* Creating disks (VixDiskLib_Create). */
typedef struct vdk_create_params {
    const char *type;    /* createType; NULL = "monolithicSparse".  Also
                          * monolithicFlat, twoGbMaxExtentSparse,
                          * twoGbMaxExtentFlat, streamOptimized, vmfs,
                          * vmfsThin */
    uint64_t capacity;   /* bytes, a multiple of 512 */
    const char *adapter; /* ide (default), buslogic, lsilogic, lsilogicsas
                          * (written lsisas1068), pvscsi */
    int hw_version;      /* 0: 4, or 7 for lsilogicsas/pvscsi */
} vdk_create_params;

/* Create a new, empty disk named 'name' in 'store' (nothing is overwritten:
 * -VDK_E_EXISTS). */
VDK_API int vdk_create(vdk_store *store, const char *name, const vdk_create_params *p,
                       vdk_error *err);
/* The same for a local path. */
VDK_API int vdk_create_path(const char *path, const vdk_create_params *p, vdk_error *err);

/* Create a redo log of 'parent' (VixDiskLib_CreateChild) named 'name' in the
 * parent's store (NULL: the next free "<base>-00000N.vmdk" beside it; the name
 * chosen is copied to chosen[VDK_NAME_MAX] when chosen is not NULL).  type:
 * NULL or monolithicSparse, twoGbMaxExtentSparse, vmfsSparse, seSparse. */
VDK_API int vdk_create_child(vdk_disk *parent, const char *name, const char *type, char *chosen,
                             vdk_error *err);

/* One line of a report (no trailing newline). */
typedef void (*vdk_report_cb)(void *arg, const char *line);

/* Check a disk's top link (VixDiskLib_CheckRepair): headers, grain
 * directory and tables (entries outside the file or in metadata, grains
 * shared by two entries), redundant tables, the uncleanShutdown mark, and
 * the CIDs of the chain.  With repair (the disk must be open for writing)
 * fix what can be fixed and say what changed.  *problems and *repaired
 * count findings; returns 0 even when problems were found, a negative
 * status when the check itself could not run. */
VDK_API int vdk_check(vdk_disk *disk, int repair, vdk_report_cb cb, void *arg, unsigned *problems,
                      unsigned *repaired);

/* Make 'child' (a link in store) a child of 'parent' (VixDiskLib_Attach):
 * rewrites its parentFileNameHint and parentCID.  Refused when the sizes
 * differ, when it would loop, and (unless force) when the child's recorded
 * parentCID is not the parent's CID. */
VDK_API int vdk_attach(vdk_store *store, const char *child, const char *parent, int force,
                       vdk_error *err);

/* Remove every file of disk 'name' (VixDiskLib_Unlink), descriptor first.
 * Refused (unless force) when another disk in its folder names it as parent. */
VDK_API int vdk_unlink(vdk_store *store, const char *name, int force, vdk_error *err);

/* An upper bound of the bytes a clone of src to 'type' takes
 * (VixDiskLib_SpaceNeededForClone): data grains plus tables for sparse
 * types, the capacity for flat ones. */
VDK_API int vdk_space_for_clone(vdk_disk *src, const char *type, uint64_t *bytes, vdk_error *err);

/* Progress of long operations; a non-zero return cancels. */
typedef int (*vdk_progress_cb)(void *arg, uint64_t done, uint64_t total);

/* Copy src (its chain merged) into a new disk (VixDiskLib_Clone).  p->capacity
 * 0 means src's; p->adapter NULL means src's.  Unallocated and all-zero
 * grains are not written.  On failure or cancel the new disk is removed. */
VDK_API int vdk_clone(vdk_disk *src, vdk_store *store, const char *name, const vdk_create_params *p,
                      vdk_progress_cb cb, void *arg, vdk_error *err);

/* Merge redo log 'name' into its parent (what deleting a snapshot does):
 * the parent gets the child's data, the child's own children are re-pointed
 * at the parent, the child is removed.  With all, repeat down to the base.
 * Refused when the parent has other children.  An interruption leaves both
 * links readable. */
VDK_API int vdk_commit(vdk_store *store, const char *name, int all, vdk_progress_cb cb, void *arg,
                       vdk_error *err);

/* Shrink (VixDiskLib_Shrink) and defragment (VixDiskLib_Defragment) link
 * 'name': its sparse extents are rewritten with grains in guest order,
 * contiguous, without unused space and (in a base disk) without all-zero
 * grains; each new file replaces the old by rename, so an interruption leaves
 * the disk as it was.  Content, capacity and CID are unchanged.  *saved (may
 * be NULL) gets the bytes freed.  Flat extents are left alone;
 * streamOptimized is refused.  Nothing else may have the disk open. */
VDK_API int vdk_shrink(vdk_store *store, const char *name, vdk_progress_cb cb, void *arg,
                       uint64_t *saved, vdk_error *err);
VDK_API int vdk_defragment(vdk_store *store, const char *name, vdk_progress_cb cb, void *arg,
                           vdk_error *err);

/* Grow disk 'name' to 'capacity' bytes (VixDiskLib_Grow): flat extents get
 * longer, sparse ones get more grain tables (their directory moves to the end
 * of the file when it outgrows its place; the header is rewritten last),
 * split disks get new extent files named as VMware names them.  The old
 * content stays, the new range reads as zeros.  Refused for redo logs, for
 * disks that have redo logs, and for streamOptimized. */
VDK_API int vdk_grow(vdk_store *store, const char *name, uint64_t capacity, vdk_error *err);

/* Rename disk 'src' to 'dst' in the same folder (VixDiskLib_Rename): its
 * extent files follow ("old-s001.vmdk" becomes "new-s001.vmdk"), the
 * descriptor names them anew, and children beside it get the new parent
 * name.  Nothing is overwritten; a failure puts back what had moved. */
VDK_API int vdk_rename(vdk_store *store, const char *src, const char *dst, vdk_error *err);

#ifdef __cplusplus
}
#endif
#endif
