/* seSparse extents (ESXi 6.5+ snapshots, -sesparse.vmdk).  No public
 * specification exists, so the checks are strict: only the layout ESXi
 * writes (grain 4 KiB, tables of 4096 u64 entries) is accepted.  All header
 * offsets and sizes are in sectors. */
#include <pthread.h>
#include <stdlib.h>

#include "engine.h"
#include "util.h"

#define SE_MAGIC          0xcafebabeull
#define SE_VOLATILE_MAGIC 0xcafecafeull
#define SE_VERSION        0x0000000200000001ull
#define SE_GRAIN          8u  /* sectors */
#define SE_GT_SECTORS     64u /* 4096 entries of 8 bytes */
#define SE_GTES           4096u

struct sesparse {
    uint64_t gd_off, gd_entries;
    uint64_t gt_off, gt_count;
    uint64_t grains_off, grains_count;
    uint64_t vol_off;     /* volatile header (bytes) */
    pthread_mutex_t lock; /* serialises allocation */
    uint64_t next_gt;     /* next free grain table index */
    uint64_t next_grain;  /* next free grain index: grains are appended */
};

static int se_fail(struct extent *e, vdk_error *err, const char *what)
{
    return vdk_fail(err, VDK_E_UNSUPPORTED, "%s: seSparse %s", e->name, what);
}

/* Before allocating, make sure no table in use lies at or past next_gt. */
static int scan_tables(struct extent *e, struct sesparse *s, vdk_error *err)
{
    uint64_t chunk[512];
    for (uint64_t i = 0; i < s->gd_entries; i += 512) {
        size_t n = (size_t)min_u64(512, s->gd_entries - i);
        int64_t got = e->file->ops->pread(e->file, chunk, n * 8, s->gd_off + i * 8);
        if (got != (int64_t)(n * 8))
            return vdk_fail(err, VDK_E_CORRUPT, "%s: seSparse directory unreadable", e->name);
        for (size_t k = 0; k < n; k++) {
            uint64_t gde = le64(&chunk[k]);
            if (gde && (gde & 0xffffffffu) >= s->next_gt)
                s->next_gt = (gde & 0xffffffffu) + 1;
        }
    }
    return 0;
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
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: descriptor gives %llu sectors, the seSparse "
                        "header only %llu",
                        e->name, (unsigned long long)e->d->sectors, (unsigned long long)cap);
    uint64_t voff = le64(h + 80);
    if (voff > e->file_size / SECTOR ||
        e->file->ops->pread(e->file, v, sizeof(v), voff * SECTOR) != (int64_t)sizeof(v) ||
        le64(v) != SE_VOLATILE_MAGIC)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: seSparse volatile header missing", e->name);
    if (le64(v + 24) != 0)
        return se_fail(e, err,
                       "journal needs replaying (the disk was not closed cleanly); "
                       "open it once in ESXi to replay it");
    struct sesparse *s = calloc(1, sizeof(*s));
    if (!s)
        return -VDK_E_NOMEM;
    pthread_mutex_init(&s->lock, NULL);
    e->priv = s;
    s->vol_off = voff * SECTOR;
    s->next_gt = le64(v + 8);
    uint64_t gd_size = le64(h + 136), gt_size = le64(h + 152), gr_size = le64(h + 200);
    s->gd_off = le64(h + 128);
    s->gt_off = le64(h + 144);
    s->grains_off = le64(h + 192);
    uint64_t lim = e->file_size / SECTOR;
    if (s->gd_off > lim || gd_size > lim || s->gd_off + gd_size > lim || s->gt_off > lim ||
        gt_size > lim || s->grains_off > lim || gr_size > (1ull << 47))
        return vdk_fail(err, VDK_E_CORRUPT, "%s: seSparse regions lie outside the file", e->name);
    /* The regions must not overlap one another (nor the header): a grain
     * area laid over the tables would read tables as data and writes would
     * clobber them. */
    for (int i = 0; i < 8; i++) {
        uint64_t a = le64(h + 80 + 16 * i), an = le64(h + 88 + 16 * i);
        uint64_t ae = a + an < a ? UINT64_MAX : a + an;
        if (an && a == 0)
            return vdk_fail(err, VDK_E_CORRUPT, "%s: seSparse region %d overlaps the header",
                            e->name, i);
        for (int j = i + 1; an && j < 8; j++) {
            uint64_t b = le64(h + 80 + 16 * j), bn = le64(h + 88 + 16 * j);
            uint64_t be = b + bn < b ? UINT64_MAX : b + bn;
            if (bn && a < be && b < ae)
                return vdk_fail(err, VDK_E_CORRUPT,
                                "%s: seSparse regions %d (sector %llu, %llu sectors) and %d "
                                "(sector %llu, %llu sectors) overlap",
                                e->name, i, (unsigned long long)a, (unsigned long long)an, j,
                                (unsigned long long)b, (unsigned long long)bn);
        }
    }
    s->gd_entries = gd_size * SECTOR / 8;
    s->gt_count = gt_size / SE_GT_SECTORS;
    s->grains_count = gr_size / SE_GRAIN;
    if (s->gd_entries * SE_GTES * SE_GRAIN < e->d->sectors)
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: seSparse directory of %llu entries does not "
                        "cover the disk",
                        e->name, (unsigned long long)s->gd_entries);
    s->gd_off *= SECTOR;
    s->gt_off *= SECTOR;
    s->grains_off *= SECTOR;
    if (e->file_size > s->grains_off)
        s->next_grain = (e->file_size - s->grains_off + 4095) / 4096;
    return e->disk->writable ? scan_tables(e, s, err) : 0;
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
        uint64_t idx =
            ((gte & 0x0fff000000000000ull) >> 48) | ((gte & 0x0000ffffffffffffull) << 12);
        uint64_t fo = s->grains_off + idx * SE_GRAIN * SECTOR + in_grain;
        if (idx >= s->grains_count || fo + n > e->file_size)
            return disk_fail(e->disk, VDK_E_CORRUPT,
                             "%s: grain %llu for offset %llu lies "
                             "outside the grain area",
                             e->name, (unsigned long long)idx, (unsigned long long)pos);
        *r = (struct run){.kind = RUN_DATA, .len = n, .file_off = fo};
        return 0;
    }
    }
    return disk_fail(e->disk, VDK_E_CORRUPT,
                     "%s: bad grain table entry %016llx for offset "
                     "%llu",
                     e->name, (unsigned long long)gte, (unsigned long long)pos);
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
        return disk_fail(e->disk, VDK_E_CORRUPT, "%s: bad grain directory entry %016llx", e->name,
                         (unsigned long long)gde);
    uint64_t gt = s->gt_off + (gde & 0xffffffffu) * SE_GT_SECTORS * SECTOR;
    uint64_t gt_end = (gdi + 1) * SE_GTES;
    r->len = 0;
    while (r->len < len && gi < gt_end) {
        uint64_t gte, pos = off + r->len;
        if ((rc = ext_read_u64(e, gt + (gi % SE_GTES) * 8, &gte)) < 0)
            return rc;
        struct run nr = {0};
        uint64_t in = pos - gi * grain;
        rc = se_entry(e, s, gte, pos, in, min_u64(len - r->len, grain - in), &nr);
        if (rc < 0)
            return rc;
        if (r->len &&
            (nr.kind != r->kind || (nr.kind == RUN_DATA && nr.file_off != r->file_off + r->len)))
            break;
        if (!r->len)
            *r = nr;
        else
            r->len += nr.len;
        gi++;
    }
    return 0;
}

static int put_u64(struct extent *e, uint64_t off, uint64_t v)
{
    unsigned char b[8];
    put_le64(b, v);
    int r = mcache_write(e->disk->mc, e->fid, e->file, off, b, 8);
    return r < 0 ? disk_fail(e->disk, r, "%s: writing at %llu: %s", e->name,
                             (unsigned long long)off, vdk_strerror(r))
                 : 0;
}

/* Point grain gi at entry v, creating its table when needed (data first,
 * then the table, then the directory and the volatile header's count). */
static int se_set(struct extent *e, struct sesparse *s, uint64_t gi, uint64_t gde, uint64_t v)
{
    const uint64_t gt_bytes = SE_GT_SECTORS * SECTOR;
    if (gde) {
        uint64_t gt = s->gt_off + (gde & 0xffffffffu) * gt_bytes;
        return put_u64(e, gt + (gi % SE_GTES) * 8, v);
    }
    if (s->next_gt >= s->gt_count)
        return disk_fail(e->disk, VDK_E_NOSPC, "%s: no room for another grain table", e->name);
    uint64_t t = s->next_gt++;
    unsigned char *tab = calloc(1, gt_bytes);
    if (!tab)
        return -VDK_E_NOMEM;
    put_le64(tab + (gi % SE_GTES) * 8, v);
    int r = mcache_write(e->disk->mc, e->fid, e->file, s->gt_off + t * gt_bytes, tab, gt_bytes);
    free(tab);
    if (r < 0)
        return disk_fail(e->disk, r, "%s: writing a grain table: %s", e->name, vdk_strerror(r));
    ext_grow_size(e, s->gt_off + (t + 1) * gt_bytes);
    r = put_u64(e, s->gd_off + gi / SE_GTES * 8, 0x1000000000000000ull | t);
    return r < 0 ? r : put_u64(e, s->vol_off + 8, s->next_gt);
}

/* Allocate grain gi (entry gte, table gde) holding buf at [in, in+n). */
/* A grain whose data is stored and whose entry waits for the ordering
 * flush (it carries the parent's bytes). */
struct se_pending {
    uint64_t gi, v;
};
#define SE_BATCH 256 /* 1 MiB of grains per flush */

static int se_allocate(struct extent *e, struct sesparse *s, uint64_t gi, uint64_t gde,
                       uint64_t gte, uint64_t in, const void *buf, size_t n,
                       struct se_pending *pend, int *npend)
{
    const uint64_t grain = SE_GRAIN * SECTOR;
    unsigned char g[SE_GRAIN * SECTOR];
    int below_zero = 1, r = 0;
    if (gte == 0) {
        uint64_t k = min_u64(grain, e->size - gi * grain);
        r = ext_read_below(e, gi * grain, g, (size_t)k);
        memset(g + k, 0, (size_t)(grain - k));
        below_zero = vdk_all_zero(g, grain) && !e->disk->keep_zeros;
    } else {
        memset(g, 0, grain); /* unmapped and zero grains read as zeros */
    }
    if (r < 0)
        return r;
    memcpy(g + in, buf, n);
    if (vdk_all_zero(g, grain))
        return gte || below_zero ? 0 : se_set(e, s, gi, gde, 0x2000000000000000ull);
    if (s->next_grain >= s->grains_count)
        return disk_fail(e->disk, VDK_E_NOSPC, "%s: the grain area is full", e->name);
    uint64_t idx = s->next_grain++, at = s->grains_off + idx * grain;
    if ((r = ext_pwrite(e, g, grain, at)) < 0)
        return r;
    ext_grow_size(e, at + grain);
    uint64_t v = 0x3000000000000000ull | (idx & 0xfff) << 48 | idx >> 12;
    /* Only an entry that was 0 over zeros may precede its grain: repair
     * clears an entry left pointing past the file to 0, and a zero or
     * unmapped entry (2, 1) must not become 0, which would show the parent. */
    if (below_zero && (gte == 0 || !e->disk->parent))
        return se_set(e, s, gi, gde, v);
    pend[(*npend)++] = (struct se_pending){gi, v};
    return 0;
}

static int se_lookup(struct extent *e, struct sesparse *s, uint64_t gi, uint64_t *gde,
                     uint64_t *gte)
{
    *gte = 0;
    int r = ext_read_u64(e, s->gd_off + gi / SE_GTES * 8, gde);
    if (r < 0 || !*gde)
        return r;
    if ((*gde >> 32) != 0x10000000u || (*gde & 0xffffffffu) >= s->gt_count)
        return disk_fail(e->disk, VDK_E_CORRUPT, "%s: bad grain directory entry %016llx", e->name,
                         (unsigned long long)*gde);
    return ext_read_u64(
        e, s->gt_off + (*gde & 0xffffffffu) * SE_GT_SECTORS * SECTOR + (gi % SE_GTES) * 8, gte);
}

/* One flush for the queued grains' data, then their entries: a crash never
 * shows an entry whose grain lost the parent's bytes. */
static int se_settle(struct extent *e, struct sesparse *s, struct se_pending *pend, int *npend)
{
    int r = *npend ? ext_order(e) : 0;
    for (int i = 0; r == 0 && i < *npend; i++) {
        uint64_t gde, gte; /* its table may be new since it was queued */
        r = se_lookup(e, s, pend[i].gi, &gde, &gte);
        if (r == 0)
            r = se_set(e, s, pend[i].gi, gde, pend[i].v);
    }
    *npend = 0;
    return r;
}

/* Holds s->lock for the whole write so queued entries stay private. */
static int se_write(struct extent *e, uint64_t off, const void *buf, size_t len)
{
    struct sesparse *s = e->priv;
    const uint64_t grain = SE_GRAIN * SECTOR;
    const unsigned char *p = buf;
    struct se_pending *pend = malloc(SE_BATCH * sizeof(*pend));
    if (!pend)
        return -VDK_E_NOMEM;
    int npend = 0, r = 0;
    pthread_mutex_lock(&s->lock);
    while (r == 0 && len) {
        uint64_t gi = off / grain, in = off % grain, gde, gte;
        size_t n = (size_t)min_u64(len, grain - in);
        r = se_lookup(e, s, gi, &gde, &gte);
        if (r == 0 && gte >> 60 == 3) {
            struct run run = {0};
            r = se_entry(e, s, gte, off, in, n, &run);
            if (r == 0)
                r = ext_pwrite(e, p, n, run.file_off);
        } else {
            if (r == 0 && gte && gte >> 60 != 1 && gte >> 60 != 2)
                r = disk_fail(e->disk, VDK_E_CORRUPT, "%s: bad grain table entry %016llx", e->name,
                              (unsigned long long)gte);
            if (r == 0 && npend == SE_BATCH) {
                r = se_settle(e, s, pend, &npend);
                /* the settle may have made this grain's table: a directory
                 * entry of 0 read before it would make se_set() start another
                 * table and orphan the one just filled (a write over 1 MiB) */
                if (r == 0)
                    r = se_lookup(e, s, gi, &gde, &gte);
            }
            if (r == 0)
                r = se_allocate(e, s, gi, gde, gte, in, p, n, pend, &npend);
        }
        off += n;
        p += n;
        len -= n;
    }
    /* On failure the queued grains stay unreferenced: leaked, never wrong. */
    if (r == 0)
        r = se_settle(e, s, pend, &npend);
    pthread_mutex_unlock(&s->lock);
    free(pend);
    return r;
}

static void se_close(struct extent *e)
{
    struct sesparse *s = e->priv;
    if (s)
        pthread_mutex_destroy(&s->lock);
    free(s);
}

/* One grain table of the check: entries must name grains inside the grain
 * area and the file.  An entry past the end is what a crash leaves when the
 * entry reached the disk before its grain: the grain's data was never
 * durable, so the entry is dropped and the parent answers again. */
static int check_table(struct extent *e, struct sesparse *s, uint64_t gdi, uint64_t t, int repair,
                       struct check_ctx *ctx)
{
    const uint64_t gt = s->gt_off + t * SE_GT_SECTORS * SECTOR;
    uint64_t *tab = malloc(SE_GTES * 8);
    if (!tab)
        return -VDK_E_NOMEM;
    int r = 0;
    if (e->file->ops->pread(e->file, tab, SE_GTES * 8, gt) != SE_GTES * 8) {
        check_say(ctx, 1, "%s: grain table %llu lies past the end of the file", e->name,
                  (unsigned long long)t);
        free(tab);
        return 0;
    }
    for (uint64_t k = 0; r == 0 && k < SE_GTES; k++) {
        uint64_t v = le64(&tab[k]), type = v >> 60;
        uint64_t idx = ((v & 0x0fff000000000000ull) >> 48) | ((v & 0x0000ffffffffffffull) << 12);
        int bad = type > 3 || (type == 0 && v) ||
                  (type == 3 && (idx >= s->grains_count ||
                                 s->grains_off + (idx + 1) * SE_GRAIN * SECTOR > e->file_size));
        if (type == 3 && !bad && idx >= s->next_grain)
            s->next_grain = idx + 1; /* never hand out a grain in use again */
        if (!bad)
            continue;
        check_say(ctx, 1, "%s: grain table entry %016llx for offset %llu points outside the file%s",
                  e->name, (unsigned long long)v,
                  (unsigned long long)((gdi * SE_GTES + k) * SE_GRAIN * SECTOR),
                  repair ? ": cleared (the parent answers there again)" : "");
        if (repair && (r = put_u64(e, gt + k * 8, 0)) == 0)
            ctx->repaired++;
    }
    free(tab);
    return r;
}

int se_check(struct extent *e, int repair, struct check_ctx *ctx)
{
    struct sesparse *s = e->priv;
    int r = 0;
    pthread_mutex_lock(&s->lock);
    for (uint64_t i = 0; r == 0 && i < s->gd_entries; i++) {
        uint64_t gde;
        if ((r = ext_read_u64(e, s->gd_off + i * 8, &gde)) < 0 || !gde)
            continue;
        if ((gde >> 32) != 0x10000000u || (gde & 0xffffffffu) >= s->gt_count) {
            check_say(ctx, 1, "%s: bad grain directory entry %016llx%s", e->name,
                      (unsigned long long)gde, repair ? ": cleared" : "");
            if (repair && (r = put_u64(e, s->gd_off + i * 8, 0)) == 0)
                ctx->repaired++;
            continue;
        }
        r = check_table(e, s, i, gde & 0xffffffffu, repair, ctx);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

const struct extent_ops extent_sesparse_ops = {
    .format = "sesparse",
    .open = se_open,
    .status = se_status,
    .write = se_write,
    .close = se_close,
};
