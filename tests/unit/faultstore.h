/* A store wrapper that fails the Nth write (pwrite, truncate or flush) and
 * every one after it, as a crash would: for interruption tests. */
#ifndef VDK_FAULTSTORE_H
#define VDK_FAULTSTORE_H

#include "vdk_store.h"

/* Wrap 'inner' (not owned).  fail_at 0 never fails. */
vdk_store *faultstore_new(vdk_store *inner, unsigned long fail_at);
/* Writes seen so far. */
unsigned long faultstore_writes(vdk_store *s);
/* From now on the store's files lend what they read (file ops version 3;
 * before, and with piece 0, pin answers -EOPNOTSUPP), in pieces of at most
 * 'piece' bytes copied out of the inner file (whose descriptors are never
 * passed on); pin number fail_pin fails with -EIO (counting from this
 * call; 0 never). */
void faultstore_lend(vdk_store *s, size_t piece, unsigned long fail_pin);
/* Pieces lent and not given back yet. */
long faultstore_lent(vdk_store *s);

#endif
