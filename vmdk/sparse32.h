/* The grain-directory scheme shared by hosted sparse (KDMV) and COWD
 * extents: a directory of u32 sector numbers of grain tables, tables of u32
 * grain sector numbers, 0 meaning "not allocated here".  Lookup, runs and
 * allocating writes live here; the drivers parse their own headers. */
#ifndef VDK_SPARSE32_H
#define VDK_SPARSE32_H

#include <pthread.h>
#include <stdint.h>

#include "engine.h"

struct s32 {
    uint64_t grain;    /* bytes per grain */
    uint64_t n_gtes;   /* entries per grain table */
    uint64_t gt_cover; /* bytes of disk per grain table */
    uint64_t gt_bytes; /* bytes a table occupies, rounded to sectors */
    uint64_t gd_off;   /* byte offset of the directory */
    uint64_t rgd_off;  /* byte offset of the redundant directory, 0 if none */
    uint64_t gd_entries;
    uint64_t min_grain;   /* grains may not start below this byte offset */
    int gte1_zero;        /* a table entry of 1 means "zeros" (KDMV) */
    int zeroed_ok;        /* writers may set entries to 1 (header flag bit 2) */
    int compressed;       /* grains are stream-compressed (read through the driver) */
    pthread_mutex_t lock; /* serialises allocation */
    uint64_t alloc_next;  /* where the next grain or table goes */
    /* Directories and tables that lie at or above min_grain (COWD tables sit
     * among the grains, VMware streams put theirs after them): a grain
     * pointing into one would read metadata as data.  Sorted by start, with
     * end the running maximum; filled at open by s32_scan_meta. */
    struct s32_area {
        uint64_t start, end;
    } * meta;
    size_t n_meta;
    /* A problem found at open that does not stop reading (the redundant
     * directory lies outside the file, tables overlap): vdk check reports it.
     * Empty when none. */
    char finding[256];
};

void s32_init(struct s32 *s);
void s32_destroy(struct s32 *s);

/* Read the directories (gd_off, rgd_off, gd_entries, gt_bytes and min_grain
 * set) and note where metadata lies among the grains. */
int s32_scan_meta(struct extent *e, struct s32 *s, vdk_error *err);
/* Whether bytes [a, b) overlap a directory or table noted by s32_scan_meta. */
int s32_in_meta(const struct s32 *s, uint64_t a, uint64_t b);

/* Table entry of grain gi; *gde gets the directory entry (0: no table). */
int s32_lookup(struct extent *e, struct s32 *s, uint64_t gi, uint32_t *gte, uint32_t *gde);

int s32_status(struct extent *e, struct s32 *s, uint64_t off, uint64_t len, struct run *r);

/* Write through the tables, allocating grains (and tables) at the end of the
 * file: data first, then the table entry, then the directory entry. */
int s32_write(struct extent *e, struct s32 *s, uint64_t off, const void *buf, size_t len);

/* Drop the whole grains inside [off, off+len) from the tables (a base
 * disk's punched hole): they read as zeros and their space is reused by
 * shrink.  Callers zero the partial grains at the edges. */
int s32_discard(struct extent *e, struct s32 *s, uint64_t off, uint64_t len);

/* Verify directory, tables and redundant tables; with repair, clear
 * entries that point outside the file or into metadata, unshare grains and
 * copy the primary tables over differing redundant ones. */
int s32_check(struct extent *e, struct s32 *s, int repair, struct check_ctx *ctx);

#endif
