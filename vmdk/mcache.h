/* A bounded cache of 4 KiB metadata blocks (grain directories and tables)
 * shared by every extent of a chain.  Memory use is capped by a budget, so
 * it does not grow with the disk's size. */
#ifndef VDK_MCACHE_H
#define VDK_MCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "vdk_store.h"

#define MCACHE_BLOCK 4096u

struct mcache;

struct mcache *mcache_new(size_t budget_bytes);
void mcache_free(struct mcache *mc);

/* A unique id for a file's entries (never reused, unlike pointers). */
uint64_t mcache_new_id(void);

/* Copy n bytes (n <= 8, not crossing a 4 KiB boundary) at off of file f
 * (identified by fid).  Returns 0, -VDK_E_CORRUPT when the bytes lie past the
 * end of the file, or another negative vdk_status. Thread-safe. */
int mcache_read(struct mcache *mc, uint64_t fid, vdk_file *f, uint64_t off, void *out, size_t n);

/* Write n bytes at off through to the file and into any cached block, so
 * readers never see a stale table entry. */
int mcache_write(struct mcache *mc, uint64_t fid, vdk_file *f, uint64_t off, const void *data,
                 size_t n);

/* Drop every cached block of a file. */
void mcache_forget(struct mcache *mc, uint64_t fid);

#endif
