/* COWD extents (vmfsSparse: the -delta.vmdk redo logs of ESXi snapshots).
 * A 2048-byte header, a grain directory of u32 sectors, grain tables of
 * 4096 u32 grain sectors, 0 meaning "not here". */
#include <stdlib.h>

#include "engine.h"
#include "util.h"

#define COWD_GTES 4096u
#define COWD_MAX_GRAIN 2048u
#define COWD_MAX_GD (32u << 20)

struct cowd {
    uint64_t grain;    /* bytes */
    uint64_t gt_cover; /* bytes per grain table */
    uint64_t gd_off;   /* bytes */
    uint64_t gd_entries;
};

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
        return vdk_fail(err, VDK_E_CORRUPT, "%s: COWD grain size of %u sectors is not a power "
                        "of two up to %u", e->name, grain, COWD_MAX_GRAIN);
    if (e->d->sectors > sectors)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: descriptor gives %llu sectors, the COWD header "
                        "only %u", e->name, (unsigned long long)e->d->sectors, sectors);
    struct cowd *c = calloc(1, sizeof(*c));
    if (!c)
        return -VDK_E_NOMEM;
    e->priv = c;
    c->grain = (uint64_t)grain * SECTOR;
    c->gt_cover = c->grain * COWD_GTES;
    c->gd_off = (uint64_t)gd_off * SECTOR;
    c->gd_entries = gd_entries;
    uint64_t need = (e->size + c->gt_cover - 1) / c->gt_cover;
    if (gd_entries < need || gd_entries > COWD_MAX_GD)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: COWD directory has %u entries, %llu are needed",
                        e->name, gd_entries, (unsigned long long)need);
    if (gd_off < 4 || c->gd_off + (uint64_t)gd_entries * 4 > e->file_size)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: COWD directory (sector %u, %u entries) lies "
                        "outside the file", e->name, gd_off, gd_entries);
    return 0;
}

static int cowd_status(struct extent *e, uint64_t off, uint64_t len, struct run *r)
{
    struct cowd *c = e->priv;
    uint64_t gi = off / c->grain;
    uint32_t gde, gte;
    int rc = ext_read_u32(e, c->gd_off + gi / COWD_GTES * 4, &gde);
    if (rc < 0)
        return rc;
    if (gde == 0) {
        uint64_t end = (gi / COWD_GTES + 1) * c->gt_cover;
        *r = (struct run){.kind = RUN_HOLE, .len = min_u64(len, end - off)};
        return 0;
    }
    uint64_t gt = (uint64_t)gde * SECTOR;
    uint64_t gt_end = (gi / COWD_GTES + 1) * COWD_GTES;
    *r = (struct run){.kind = RUN_HOLE, .len = 0};
    /* Merge following grains of the same table that continue the run. */
    while (r->len < len && gi < gt_end) {
        if ((rc = ext_read_u32(e, gt + (gi % COWD_GTES) * 4, &gte)) < 0)
            return rc;
        uint64_t at = gi * c->grain;
        uint64_t pos = off + r->len;
        uint64_t n = min_u64(len - r->len, at + c->grain - pos);
        int kind = gte ? RUN_DATA : RUN_HOLE;
        uint64_t fo = (uint64_t)gte * SECTOR + (pos - at);
        if (gte && (gte < 4 || fo + n > e->file_size))
            return disk_fail(e->disk, VDK_E_CORRUPT, "%s: grain for offset %llu points to "
                             "sector %u, %s", e->name, (unsigned long long)pos, gte,
                             gte < 4 ? "inside the header" : "past the end of the file");
        if (r->len && (kind != r->kind || (kind == RUN_DATA && fo != r->file_off + r->len)))
            break;
        if (!r->len) {
            r->kind = kind;
            r->file_off = fo;
        }
        r->len += n;
        gi++;
    }
    return 0;
}

static void cowd_close(struct extent *e)
{
    free(e->priv);
}

const struct extent_ops extent_cowd_ops = {
    .format = "cowd",
    .open = cowd_open,
    .status = cowd_status,
    .close = cowd_close,
};
