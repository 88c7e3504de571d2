/*
 * vdk_store.h - the storage seam of libvdk.
 *
 * The VMDK engine never touches a path or a socket: every descriptor, extent
 * and parent is opened by *name* inside a store.  A name is relative to the
 * store's root, uses '/' as separator and never leaves the root.  Stores are
 * plain structs of function pointers, so a caller can supply its own (remote
 * datastore, in-memory image, fault injection, write recording).
 *
 * All functions return 0 (or a byte count) on success and a negative errno
 * value on failure.  Implementations must be safe to call from many threads
 * at once on distinct or shared files: there is no file position.
 */
#ifndef VDK_STORE_H
#define VDK_STORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef VDK_API
#define VDK_API __attribute__((visibility("default")))
#endif

typedef struct vdk_file vdk_file;
typedef struct vdk_store vdk_store;

/* Operations on an open file.  The struct only ever grows at its end;
 * 'version' says which members a store fills in: 1 up to close, 2 adds fd,
 * 3 adds pin and unpin. */
struct vdk_file_ops {
    unsigned version;
    /* Read up to len bytes at off.  Returns the count read (short only at
     * end of file) or -errno. */
    int64_t (*pread)(vdk_file *f, void *buf, size_t len, uint64_t off);
    /* Write len bytes at off.  Returns len or -errno (never a short count). */
    int64_t (*pwrite)(vdk_file *f, const void *buf, size_t len, uint64_t off);
    /* Make everything written so far durable. */
    int (*flush)(vdk_file *f);
    /* Current size in bytes. */
    int (*size)(vdk_file *f, uint64_t *out);
    /* Set the size (grow with zeros or cut). */
    int (*truncate)(vdk_file *f, uint64_t size);
    /* Release the handle; pending writes are not flushed. */
    void (*close)(vdk_file *f);
    /* Version 2: a descriptor whose pread gives the same bytes, valid until
     * close, or -1 (NULL also means none).  Lets vdkfs splice data to the
     * kernel instead of copying it through memory. */
    int (*fd)(vdk_file *f);
    /* Version 3: lend bytes the store holds in its own memory instead of
     * copying them.  Points *mem at the bytes at off (from 1 to len of
     * them: fewer where that memory ends), sets *pin and returns the
     * count; the bytes stay unchanged until unpin(f, *pin), which comes
     * before close.  0 at end of file, -EOPNOTSUPP when there is nothing
     * to lend (the caller then preads), or another -errno.  NULL: never. */
    int64_t (*pin)(vdk_file *f, size_t len, uint64_t off, const void **mem, void **pin);
    void (*unpin)(vdk_file *f, void *pin);
};

/* Every file handle starts with this header; implementations embed it. */
struct vdk_file {
    const struct vdk_file_ops *ops;
};

/* Flags for vdk_store_ops.open. */
enum {
    VDK_STORE_READ = 0,        /* read only */
    VDK_STORE_WRITE = 1 << 0,  /* read and write */
    VDK_STORE_CREATE = 1 << 1, /* create when missing */
    VDK_STORE_EXCL = 1 << 2,   /* with CREATE: fail if it exists */
};

struct vdk_stat {
    uint64_t size;
    int is_dir;
    int64_t mtime; /* seconds since the epoch, 0 if unknown */
};

/* Called by list() once per entry; a non-zero return stops the listing and
 * becomes list()'s result. */
typedef int (*vdk_list_cb)(void *arg, const char *name, const struct vdk_stat *st);

struct vdk_store_ops {
    unsigned version; /* currently 1 */
    int (*open)(vdk_store *s, const char *name, unsigned flags, vdk_file **out);
    int (*stat)(vdk_store *s, const char *name, struct vdk_stat *st);
    /* List the entries of directory 'dir' ("" is the root). */
    int (*list)(vdk_store *s, const char *dir, vdk_list_cb cb, void *arg);
    /* Replace 'to' by 'from' atomically where the store can. */
    int (*rename)(vdk_store *s, const char *from, const char *to);
    int (*unlink)(vdk_store *s, const char *name);
    /* Make renames, creations and unlinks in 'dir' durable. */
    int (*sync_dir)(vdk_store *s, const char *dir);
    /* Optional (may be NULL): translate an absolute path written by another
     * tool into a name inside this store, or return -EXDEV if it lies
     * outside.  Lets a local store accept "/data/vm/base.vmdk" as a parent
     * hint when /data/vm is its root. */
    int (*relativize)(vdk_store *s, const char *abs, char *out, size_t outlen);
    /* Free the store; files opened from it must be closed first. */
    void (*destroy)(vdk_store *s);
};

struct vdk_store {
    const struct vdk_store_ops *ops;
};

/* A store over a local directory.  Names are resolved beneath 'root' by the
 * kernel (openat2 RESOLVE_BENEATH): absolute names, ".." and symlinks that
 * would leave the root are refused with -EXDEV. */
VDK_API int vdk_store_local_new(const char *root, vdk_store **out);

/* An in-memory store (empty at first); files grow as they are written.
 * Meant for tests and fuzzing. */
VDK_API int vdk_store_mem_new(vdk_store **out);
/* Create or replace a file in a memory store with a copy of data. */
VDK_API int vdk_store_mem_put(vdk_store *s, const char *name, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
