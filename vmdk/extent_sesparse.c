/* seSparse extents (ESXi 6.5+ snapshots, -sesparse.vmdk).  No public
 * specification exists, so the checks are strict: only the layout ESXi
 * writes (grain 4 KiB, tables of 4096 u64 entries) is accepted.  All header
 * offsets and sizes are in sectors. */
#include <stdlib.h>

#include "engine.h"
#include "util.h"

#define SE_MAGIC 0xcafebabeull
#define SE_VOLATILE_MAGIC 0xcafecafeull
#define SE_VERSION 0x0000000200000001ull
#define SE_GRAIN 8u      /* sectors */
#define SE_GT_SECTORS 64u /* 4096 entries of 8 bytes */
#define SE_GTES 4096u

struct sesparse {
    uint64_t gd_off, gd_entries;
    uint64_t gt_off, gt_count;
    uint64_t grains_off, grains_count;
};

static int se_fail(struct extent *e, vdk_error *err, const char *what)
{
    return vdk_fail(err, VDK_E_UNSUPPORTED, "%s: seSparse %s", e->name, what);
}

static int se_open(struct extent *e, vdk_error *err)
{
    unsigned char h[512], v[512];
    int64_t got = e->file->ops->pread(e->file, h, sizeof(h), 0);
    if (got != (int64_t)sizeof(h))
        return vdk_fail(err, VDK_E_CORRUPT, "%s: seSparse header truncated", e->name);
    if (le64(h + 8) != SE_VERSION)
        return se_fail(e, err, "version is not 2.1");
    if (le64(h + 24) != SE_GRAIN || le64(h + 32) != SE_GT_SECTORS)
        return se_fail(e, err, "grain or table size differs from ESXi's (8 and 64 sectors)");
    if (le64(h + 40) != 0)
        return se_fail(e, err, "header flags are set");
    uint64_t cap = le64(h + 16);
    if (e->d->sectors > cap)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: descriptor gives %llu sectors, the seSparse "
                        "header only %llu", e->name, (unsigned long long)e->d->sectors,
                        (unsigned long long)cap);
    uint64_t voff = le64(h + 80);
    if (voff > e->file_size / SECTOR ||
        e->file->ops->pread(e->file, v, sizeof(v), voff * SECTOR) != (int64_t)sizeof(v) ||
        le64(v) != SE_VOLATILE_MAGIC)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: seSparse volatile header missing", e->name);
    if (le64(v + 24) != 0)
        return se_fail(e, err, "journal needs replaying (the disk was not closed cleanly); "
                       "open it once in ESXi to replay it");
    struct sesparse *s = calloc(1, sizeof(*s));
    if (!s)
        return -VDK_E_NOMEM;
    e->priv = s;
    uint64_t gd_size = le64(h + 136), gt_size = le64(h + 152), gr_size = le64(h + 200);
    s->gd_off = le64(h + 128);
    s->gt_off = le64(h + 144);
    s->grains_off = le64(h + 192);
    uint64_t lim = e->file_size / SECTOR;
    if (s->gd_off > lim || gd_size > lim || s->gd_off + gd_size > lim || s->gt_off > lim ||
        gt_size > lim || s->grains_off > lim || gr_size > (1ull << 47))
        return vdk_fail(err, VDK_E_CORRUPT, "%s: seSparse regions lie outside the file",
                        e->name);
    s->gd_entries = gd_size * SECTOR / 8;
    s->gt_count = gt_size / SE_GT_SECTORS;
    s->grains_count = gr_size / SE_GRAIN;
    if (s->gd_entries * SE_GTES * SE_GRAIN < e->d->sectors)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: seSparse directory of %llu entries does not "
                        "cover the disk", e->name, (unsigned long long)s->gd_entries);
    s->gd_off *= SECTOR;
    s->gt_off *= SECTOR;
    s->grains_off *= SECTOR;
    return 0;
}

static int se_entry(struct extent *e, struct sesparse *s, uint64_t gte, uint64_t pos,
                    uint64_t in_grain, uint64_t n, struct run *r)
{
    switch (gte >> 60) {
    case 0:
        if (gte)
            break;
        *r = (struct run){.kind = RUN_HOLE, .len = n};
        return 0;
    case 1: /* unmapped by the guest: reads as zeros, as QEMU does */
    case 2: /* zeroed */
        *r = (struct run){.kind = RUN_ZERO, .len = n};
        return 0;
    case 3: {
        uint64_t idx = ((gte & 0x0fff000000000000ull) >> 48) | ((gte & 0x0000ffffffffffffull)
                                                                << 12);
        uint64_t fo = s->grains_off + idx * SE_GRAIN * SECTOR + in_grain;
        if (idx >= s->grains_count || fo + n > e->file_size)
            return disk_fail(e->disk, VDK_E_CORRUPT, "%s: grain %llu for offset %llu lies "
                             "outside the grain area", e->name, (unsigned long long)idx,
                             (unsigned long long)pos);
        *r = (struct run){.kind = RUN_DATA, .len = n, .file_off = fo};
        return 0;
    }
    }
    return disk_fail(e->disk, VDK_E_CORRUPT, "%s: bad grain table entry %016llx for offset "
                     "%llu", e->name, (unsigned long long)gte, (unsigned long long)pos);
}

static int se_status(struct extent *e, uint64_t off, uint64_t len, struct run *r)
{
    struct sesparse *s = e->priv;
    const uint64_t grain = SE_GRAIN * SECTOR, cover = grain * SE_GTES;
    uint64_t gi = off / grain, gdi = gi / SE_GTES, gde;
    int rc = ext_read_u64(e, s->gd_off + gdi * 8, &gde);
    if (rc < 0)
        return rc;
    if (gde == 0) {
        *r = (struct run){.kind = RUN_HOLE, .len = min_u64(len, (gdi + 1) * cover - off)};
        return 0;
    }
    if ((gde >> 32) != 0x10000000u || (gde & 0xffffffffu) >= s->gt_count)
        return disk_fail(e->disk, VDK_E_CORRUPT, "%s: bad grain directory entry %016llx",
                         e->name, (unsigned long long)gde);
    uint64_t gt = s->gt_off + (gde & 0xffffffffu) * SE_GT_SECTORS * SECTOR;
    uint64_t gt_end = (gdi + 1) * SE_GTES;
    r->len = 0;
    while (r->len < len && gi < gt_end) {
        uint64_t gte, pos = off + r->len;
        if ((rc = ext_read_u64(e, gt + (gi % SE_GTES) * 8, &gte)) < 0)
            return rc;
        struct run nr;
        uint64_t in = pos - gi * grain;
        rc = se_entry(e, s, gte, pos, in, min_u64(len - r->len, grain - in), &nr);
        if (rc < 0)
            return rc;
        if (r->len && (nr.kind != r->kind ||
                       (nr.kind == RUN_DATA && nr.file_off != r->file_off + r->len)))
            break;
        if (!r->len)
            *r = nr;
        else
            r->len += nr.len;
        gi++;
    }
    return 0;
}

static void se_close(struct extent *e)
{
    free(e->priv);
}

const struct extent_ops extent_sesparse_ops = {
    .format = "sesparse",
    .open = se_open,
    .status = se_status,
    .close = se_close,
};
