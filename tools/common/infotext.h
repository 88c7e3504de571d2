/* The text of 'vdk info', shared by the vdk command and vdkfs's info file. */
#ifndef VDK_INFOTEXT_H
#define VDK_INFOTEXT_H

#include "vdk.h"

/* malloc'd text describing d (NULL when out of memory or the allocation map
 * cannot be read; then *status holds the error). */
char *info_text(vdk_disk *d, int *status);

#endif
