/* COWD extents (vmfsSparse: the -delta.vmdk redo logs of ESXi snapshots).
 * A 2048-byte header, a grain directory of u32 sectors, grain tables of
 * 4096 u32 grain sectors, 0 meaning "not here". */
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "sparse32.h"
#include "util.h"

#define COWD_GTES        4096u
#define COWD_MAX_GRAIN   2048u
#define COWD_MAX_GD      (32u << 20)
#define COWD_FREE_SECTOR 28   /* header: next free sector */
#define COWD_UNCLEAN     1648 /* header: uncleanShutdown (u32) */

static int cowd_open(struct extent *e, vdk_error *err)
{
    unsigned char h[2048];
    int64_t got = e->file->ops->pread(e->file, h, sizeof(h), 0);
    if (got < 0)
        return vdk_fail(err, vdk_status_from_errno((int)got), "%s: reading COWD header: %s",
                        e->name, strerror((int)-got));
    if (got < (int64_t)sizeof(h))
        return vdk_fail(err, VDK_E_CORRUPT, "%s: COWD header truncated (%lld of 2048 bytes)",
                        e->name, (long long)got);
    uint32_t version = le32(h + 4), sectors = le32(h + 12), grain = le32(h + 16);
    uint32_t gd_off = le32(h + 20), gd_entries = le32(h + 24);
    if (version != 1)
        return vdk_fail(err, VDK_E_UNSUPPORTED, "%s: COWD version %u is not 1", e->name, version);
    if (grain == 0 || grain > COWD_MAX_GRAIN || (grain & (grain - 1)))
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: COWD grain size of %u sectors is not a power "
                        "of two up to %u",
                        e->name, grain, COWD_MAX_GRAIN);
    if (e->d->sectors > sectors)
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: descriptor gives %llu sectors, the COWD header "
                        "only %u",
                        e->name, (unsigned long long)e->d->sectors, sectors);
    struct s32 *t = calloc(1, sizeof(*t));
    if (!t)
        return -VDK_E_NOMEM;
    s32_init(t);
    e->priv = t;
    t->grain = (uint64_t)grain * SECTOR;
    t->n_gtes = COWD_GTES;
    t->gt_cover = t->grain * COWD_GTES;
    t->gt_bytes = COWD_GTES * 4;
    t->gd_off = (uint64_t)gd_off * SECTOR;
    t->gd_entries = gd_entries;
    t->min_grain = 4 * SECTOR;
    uint64_t need = (e->size + t->gt_cover - 1) / t->gt_cover;
    if (gd_entries < need || gd_entries > COWD_MAX_GD)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: COWD directory has %u entries, %llu are needed",
                        e->name, gd_entries, (unsigned long long)need);
    if (gd_off < 4 || t->gd_off + (uint64_t)gd_entries * 4 > e->file_size)
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: COWD directory (sector %u, %u entries) lies "
                        "outside the file",
                        e->name, gd_off, gd_entries);
    /* Lookups (and vdk check) use the entries the capacity needs; more
     * would read the first grain table as directory entries. */
    t->gd_entries = need;
    int r = s32_scan_meta(e, t, err);
    if (r < 0)
        return r;
    if (gd_entries > need &&
        s32_in_meta(t, t->gd_off + need * 4, t->gd_off + (uint64_t)gd_entries * 4))
        snprintf(t->finding, sizeof(t->finding),
                 "%s: COWD header gives %u directory entries, %llu are needed, and the "
                 "directory would then overlap a grain table (numGDEntries is wrong)",
                 e->name, gd_entries, (unsigned long long)need);
    if (le32(h + COWD_UNCLEAN))
        e->disk->unclean = 1;
    uint64_t free_at = (uint64_t)le32(h + COWD_FREE_SECTOR) * SECTOR;
    t->alloc_next = (e->file_size + SECTOR - 1) / SECTOR * SECTOR;
    if (free_at > t->alloc_next && free_at <= e->file_size + t->grain)
        t->alloc_next = free_at;
    return 0;
}

static int cowd_status(struct extent *e, uint64_t off, uint64_t len, struct run *r)
{
    return s32_status(e, e->priv, off, len, r);
}

static int cowd_write(struct extent *e, uint64_t off, const void *buf, size_t len)
{
    return s32_write(e, e->priv, off, buf, len);
}

static int put_header_u32(struct extent *e, uint64_t at, uint32_t v)
{
    unsigned char b[4];
    put_le32(b, v);
    int64_t w = e->file->ops->pwrite(e->file, b, 4, at);
    return w < 0 ? vdk_status_from_errno((int)w) : 0;
}

/* On open for writing the flag goes up; on clean close it comes down, with
 * freeSector brought up to date so ESXi appends after our grains. */
static int cowd_set_unclean(struct extent *e, int unclean)
{
    struct s32 *t = e->priv;
    int r = 0;
    if (!unclean) {
        pthread_mutex_lock(&t->lock);
        r = put_header_u32(e, COWD_FREE_SECTOR, (uint32_t)(t->alloc_next / SECTOR));
        pthread_mutex_unlock(&t->lock);
    }
    return r ? r : put_header_u32(e, COWD_UNCLEAN, unclean ? 1 : 0);
}

static void cowd_close(struct extent *e)
{
    if (e->priv)
        s32_destroy(e->priv);
    free(e->priv);
}

const struct extent_ops extent_cowd_ops = {
    .format = "cowd",
    .open = cowd_open,
    .status = cowd_status,
    .write = cowd_write,
    .set_unclean = cowd_set_unclean,
    .close = cowd_close,
};
