/* vdkfs internals: FUSE over io_uring, where the kernel offers it. */
#ifndef VDKFS_URING_H
#define VDKFS_URING_H

#include <stddef.h>

struct fuse_session;
struct fs;

/* Route the mounted session's I/O through vdkfs; when `want` is set and
 * the kernel allows it (fuse.enable_uring; else a warning), requests move
 * to per-CPU io_uring queues once FUSE_INIT completes.  0, or -1 if
 * libfuse refused. */
int uring_attach(struct fuse_session *se, struct fs *fs, int want);
/* Whether io_uring will be offered to the kernel: replies must then not be
 * spliced (libfuse 3.14 would splice them to /dev/fuse, past the ring). */
int uring_wanted(void);
/* The calling thread's ring reply buffer when it serves a ring request and
 * `size` fits, else NULL: a read placed there is not copied again. */
char *uring_payload(size_t size);
/* Stop the queue threads and free the rings (after unmounting). */
void uring_stop(void);

#endif
