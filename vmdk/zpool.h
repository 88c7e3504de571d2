/* Ordered parallel deflate: buffers go in, zlib streams come out in the
 * order they went in, compressed meanwhile on a few worker threads.
 *
 * The streamOptimized writer compresses every 64 KiB grain on its own; one
 * core of zlib is the bottleneck of a clone, and the grains are
 * independent, so they are spread over the CPUs while the file is still
 * written by one thread, in order. */
#ifndef VDK_ZPOOL_H
#define VDK_ZPOOL_H

#include <stddef.h>
#include <stdint.h>

struct zpool;

/* Receives one compressed buffer: out[0..prefix) is free for a caller's
 * header, the zlib stream follows it (zlen bytes).  A negative return stops
 * the pool: it is returned by the zpool_put or zpool_drain that called. */
typedef int (*zpool_emit_fn)(void *arg, uint64_t tag, unsigned char *out, size_t zlen);

/* threads 0: compress in the caller (no threads).  Inputs are at most
 * max_in bytes.  Returns 0, or -1 when memory or threads are short. */
int zpool_new(unsigned threads, int level, size_t max_in, size_t prefix, struct zpool **out);

/* Queue a copy of in[0..len) under tag.  Results that are ready (and, when
 * every slot is taken, the oldest one) are handed to emit first, in order. */
int zpool_put(struct zpool *p, uint64_t tag, const void *in, size_t len, zpool_emit_fn emit,
              void *arg);

/* Hand every queued buffer to emit, in order, once it is compressed. */
int zpool_drain(struct zpool *p, zpool_emit_fn emit, void *arg);

/* Stop the workers and free everything (queued work is dropped). */
void zpool_free(struct zpool *p);

/* The worker count a pool should use on this machine (0 on one CPU). */
unsigned zpool_default_threads(void);

#endif
