/* A store wrapper that fails the Nth write (pwrite, truncate or flush) and
 * every one after it, as a crash would: for interruption tests. */
#ifndef VDK_FAULTSTORE_H
#define VDK_FAULTSTORE_H

#include "vdk_store.h"

/* Wrap 'inner' (not owned).  fail_at 0 never fails. */
vdk_store *faultstore_new(vdk_store *inner, unsigned long fail_at);
/* Writes seen so far. */
unsigned long faultstore_writes(vdk_store *s);

#endif
