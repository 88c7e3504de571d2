/*
 * vdk_ioctl.h - ioctls on a vdkfs "flat" file.  They have the same effect as
 * the matching commands written to the disk directory's "ctl" file.  All are
 * "restricted" FUSE ioctls: fixed size, no embedded pointers.
 */
#ifndef VDK_IOCTL_H
#define VDK_IOCTL_H

#include <linux/ioctl.h>
#include <stdint.h>

struct vdk_ioc_path {
    char path[1024]; /* NUL-terminated, relative to the disk's folder */
};

/* Grow the disk to *(uint64_t *)arg bytes. */
#define VDK_IOC_GROW _IOW('V', 1, uint64_t)
/* Reclaim unused and all-zero grains. */
#define VDK_IOC_SHRINK _IO('V', 2)
/* Rewrite grains in guest order. */
#define VDK_IOC_DEFRAGMENT _IO('V', 3)
/* Make the link's parent the disk at arg->path. */
#define VDK_IOC_ATTACH _IOW('V', 4, struct vdk_ioc_path)

#endif
