/* vdkfs internals: telling the kernel that cached file pages went stale. */
#ifndef VDKFS_NOTIFY_H
#define VDKFS_NOTIFY_H

#include <stdint.h>

struct fuse_session;

/* Queue the invalidation of inode ino's cached pages and attributes; a
 * thread of its own sends it (started on first use).  Nothing is queued
 * when out of memory or already stopping. */
void notify_inval(struct fuse_session *se, uint64_t ino);
/* The same for the kernel's cached entry 'name' in directory dir (a
 * file that went away). */
void notify_inval_entry(struct fuse_session *se, uint64_t dir, const char *name);
/* Wait up to ms for everything queued so far to have gone out: 0, or -1 on
 * timeout (the kernel may wait for reads that a single-threaded loop
 * cannot serve while its one thread waits here). */
int notify_wait(unsigned ms);
/* The session is about to close its descriptor: drop what is queued and
 * take nothing more (a notification sent after the close could write to a
 * descriptor number reused meanwhile).  The one in flight finishes. */
void notify_quiesce(void);
/* End the thread: after the unmount (which ends a notification the kernel
 * holds on a read nobody will serve now) and before the session is
 * destroyed. */
void notify_stop(void);

#endif
