/* Creating disks: descriptor text, sparse/flat/COWD files, stream writer. */
#ifndef VDK_CREATE_H
#define VDK_CREATE_H

#include <stdint.h>

#include "engine.h"

/* How a createType is laid out. */
enum layout {
    LAY_MONO_SPARSE,
    LAY_SPLIT_SPARSE,
    LAY_MONO_FLAT,
    LAY_SPLIT_FLAT,
    LAY_VMFS,
    LAY_STREAM,
    LAY_VMFS_SPARSE,
    LAY_SE_SPARSE,
};

struct disk_type {
    const char *name; /* createType */
    int layout;
    int needs_parent; /* only as a child (redo log) */
    int can_be_child; /* VixDiskLib_CreateChild accepts it */
};

const struct disk_type *create_find_type(const char *name);

/* The parameters of a new link. */
struct new_disk {
    const struct disk_type *type;
    uint64_t sectors;
    const char *adapter; /* ddb value (ide, buslogic, lsilogic, lsisas1068, pvscsi) */
    int hw_version;
    const char *parent_hint; /* NULL for a base disk */
    uint32_t parent_cid;
};

/* Create every file of a new disk named 'name' in 'st'.  Nothing is
 * overwritten; on failure whatever was created is removed. */
int create_disk(vdk_store *st, const char *name, const struct new_disk *nd, vdk_error *err);

/* Descriptor text for nd with the given extent lines (malloc'd). */
char *create_descriptor(const struct new_disk *nd, uint32_t cid, const char *extent_lines);

/* One empty sparse extent file: hosted sparse (with desc embedded when
 * not NULL), COWD (parent written into its header) or seSparse. */
enum { FMT_KDMV, FMT_COWD, FMT_SESPARSE, FMT_FLAT };
int create_extent_file(vdk_store *st, const char *name, int format, uint64_t sectors,
                       const char *desc, const char *parent, vdk_error *err);

/* "dir/disk.vmdk" + "-s002" -> full "dir/disk-s002.vmdk" and base
 * "disk-s002.vmdk" (both VDK_NAME_MAX). */
void extent_name(const char *name, const char *suffix, char *full, char *base);
#define SPLIT_SECTORS      (2047ull * 2048)
#define MAX_SPARSE_SECTORS ((1ull << 32) - (1ull << 21)) /* grain sectors are u32 */

/* The streamOptimized writer: grains in increasing order, then finish. */
struct stream_w;
int stream_open(vdk_store *st, const char *name, const struct new_disk *nd, struct stream_w **out,
                vdk_error *err);
/* Store grain gi (64 KiB, all of it; the last may be short of capacity). */
int stream_put(struct stream_w *w, uint64_t gi, const void *grain, vdk_error *err);
/* Write the last table, the directory, the footer and end-of-stream, close.
 * With abort set, just close and remove the file. */
int stream_finish(struct stream_w *w, int abort, vdk_error *err);
#define STREAM_GRAIN (128u * 512u)

#endif
