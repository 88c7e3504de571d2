/* The text of 'vdk info', shared by the vdk command and vdkfs's info file. */
#ifndef VDK_INFOTEXT_H
#define VDK_INFOTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "vdk.h"

/* malloc'd text describing d (NULL when out of memory or the allocation map
 * cannot be read; then *status holds the error). */
char *info_text(vdk_disk *d, int *status);

/* "1.5 GiB" */
const char *human_size(uint64_t bytes, char *buf, size_t len);

#endif
