/* Grain directory + u32 grain tables: lookup, runs and allocating writes. */
#include "sparse32.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void s32_init(struct s32 *s)
{
    pthread_mutex_init(&s->lock, NULL);
}

void s32_destroy(struct s32 *s)
{
    pthread_mutex_destroy(&s->lock);
}

int s32_lookup(struct extent *e, struct s32 *s, uint64_t gi, uint32_t *gte, uint32_t *gde)
{
    uint64_t gdi = gi / s->n_gtes;
    *gte = 0;
    int r = ext_read_u32(e, s->gd_off + gdi * 4, gde);
    if (r < 0 || *gde == 0)
        return r;
    return ext_read_u32(e, (uint64_t)*gde * SECTOR + (gi % s->n_gtes) * 4, gte);
}

static int classify(struct extent *e, struct s32 *s, uint32_t gte, uint64_t off, uint64_t n,
                    struct run *r)
{
    if (gte == 0) {
        *r = (struct run){.kind = RUN_HOLE, .len = n};
        return 0;
    }
    if (gte == 1 && s->gte1_zero) {
        /* A zeroed-grain entry; a real grain can never start at sector 1. */
        *r = (struct run){.kind = RUN_ZERO, .len = n};
        return 0;
    }
    uint64_t gstart = (uint64_t)gte * SECTOR, size = ext_file_size(e);
    if (gstart < s->min_grain || gstart >= size)
        return disk_fail(e->disk, VDK_E_CORRUPT,
                         "%s: grain for offset %llu points to sector "
                         "%u, %s",
                         e->name, (unsigned long long)off, gte,
                         gstart >= size ? "past the end of the file" : "inside the metadata");
    if (s->compressed) {
        *r = (struct run){.kind = RUN_INDIRECT, .len = n};
        return 0;
    }
    uint64_t in = off % s->grain;
    if (gstart + in + n > size)
        return disk_fail(e->disk, VDK_E_CORRUPT,
                         "%s: grain at sector %u runs past the end "
                         "of the file",
                         e->name, gte);
    *r = (struct run){.kind = RUN_DATA, .len = n, .file_off = gstart + in};
    return 0;
}

int s32_status(struct extent *e, struct s32 *s, uint64_t off, uint64_t len, struct run *r)
{
    uint64_t gi = off / s->grain;
    uint32_t gde, gte;
    int rc = s32_lookup(e, s, gi, &gte, &gde);
    if (rc < 0)
        return rc;
    if (gde == 0) {
        uint64_t end = (gi / s->n_gtes + 1) * s->gt_cover;
        *r = (struct run){.kind = RUN_HOLE, .len = min_u64(len, end - off)};
        return 0;
    }
    rc = classify(e, s, gte, off, min_u64(len, (gi + 1) * s->grain - off), r);
    if (rc < 0 || r->kind == RUN_INDIRECT)
        return rc;
    /* Extend the run over following grains of the same table that continue
     * it, so long reads become few large preads. */
    uint64_t gt_end = (gi / s->n_gtes + 1) * s->n_gtes;
    while (r->len < len && ++gi < gt_end) {
        uint32_t next;
        rc = ext_read_u32(e, (uint64_t)gde * SECTOR + (gi % s->n_gtes) * 4, &next);
        if (rc < 0)
            return rc;
        struct run nr = {0};
        rc = classify(e, s, next, gi * s->grain, min_u64(len - r->len, s->grain), &nr);
        if (rc < 0)
            return rc;
        if (nr.kind != r->kind || (nr.kind == RUN_DATA && nr.file_off != r->file_off + r->len))
            break;
        r->len += nr.len;
    }
    return 0;
}

/* Reserve len bytes at the end of the file (called with s->lock held). */
static int reserve(struct extent *e, struct s32 *s, uint64_t len, uint64_t *at)
{
    if ((s->alloc_next + len) / SECTOR > UINT32_MAX)
        return disk_fail(e->disk, VDK_E_NOSPC,
                         "%s: sparse extent is full (grain sectors are "
                         "32-bit: 2 TiB per extent file)",
                         e->name);
    *at = s->alloc_next;
    s->alloc_next += len;
    return 0;
}

static int write_u32(struct extent *e, uint64_t off, uint32_t v)
{
    unsigned char b[4];
    put_le32(b, v);
    int r = mcache_write(e->disk->mc, e->fid, e->file, off, b, 4);
    if (r < 0)
        return disk_fail(e->disk, r, "%s: writing table entry at %llu: %s", e->name,
                         (unsigned long long)off, vdk_strerror(r));
    return 0;
}

/* A new grain table (and its redundant twin) holding one entry, then the
 * directory entries that make it live. */
static int new_table(struct extent *e, struct s32 *s, uint64_t gi, uint32_t gte)
{
    uint64_t gdi = gi / s->n_gtes;
    unsigned char *t = calloc(1, s->gt_bytes);
    if (!t)
        return -VDK_E_NOMEM;
    put_le32(t + (gi % s->n_gtes) * 4, gte);
    int copies = s->rgd_off ? 2 : 1, r = 0;
    uint64_t at[2] = {0, 0};
    for (int c = 0; r == 0 && c < copies; c++) {
        r = reserve(e, s, s->gt_bytes, &at[c]);
        if (r == 0)
            r = mcache_write(e->disk->mc, e->fid, e->file, at[c], t, s->gt_bytes);
        if (r < 0 && r != -VDK_E_NOSPC)
            r = disk_fail(e->disk, r, "%s: writing a new grain table: %s", e->name,
                          vdk_strerror(r));
    }
    free(t);
    if (r == 0 && s->rgd_off)
        r = write_u32(e, s->rgd_off + gdi * 4, (uint32_t)(at[1] / SECTOR));
    if (r == 0)
        r = write_u32(e, s->gd_off + gdi * 4, (uint32_t)(at[0] / SECTOR));
    ext_grow_size(e, s->alloc_next);
    return r;
}

static int set_entry(struct extent *e, struct s32 *s, uint64_t gi, uint32_t gde, uint32_t gte)
{
    if (gde == 0)
        return new_table(e, s, gi, gte);
    uint64_t idx = (gi % s->n_gtes) * 4;
    if (s->rgd_off) {
        uint32_t rgde;
        int r = ext_read_u32(e, s->rgd_off + gi / s->n_gtes * 4, &rgde);
        if (r < 0)
            return r;
        if (rgde && (r = write_u32(e, (uint64_t)rgde * SECTOR + idx, gte)) < 0)
            return r;
    }
    return write_u32(e, (uint64_t)gde * SECTOR + idx, gte);
}

static int pwrite_data(struct extent *e, const void *buf, size_t n, uint64_t at)
{
    int64_t w = e->file->ops->pwrite(e->file, buf, n, at);
    if (w < 0)
        return disk_fail(e->disk, vdk_status_from_errno((int)w),
                         "%s: write of %zu bytes at "
                         "%llu failed: %s",
                         e->name, n, (unsigned long long)at, strerror((int)-w));
    return 0;
}

/* Allocate grain gi with buf at [in, in+n) over what lies below. */
static int allocate(struct extent *e, struct s32 *s, uint64_t gi, uint32_t gte, uint32_t gde,
                    uint64_t in, const void *buf, size_t n)
{
    unsigned char *g = malloc(s->grain);
    if (!g)
        return -VDK_E_NOMEM;
    int r = 0;
    int below_zero = 1;
    if (gte == 0) {
        uint64_t start = gi * s->grain;
        r = ext_read_below(e, start, g, (size_t)min_u64(s->grain, e->size - start));
        memset(g + min_u64(s->grain, e->size - start), 0,
               (size_t)(s->grain - min_u64(s->grain, e->size - start)));
        below_zero = r == 0 && vdk_all_zero(g, s->grain);
    } else {
        memset(g, 0, s->grain); /* a zeroed grain */
    }
    if (r == 0) {
        memcpy(g + in, buf, n);
        if (vdk_all_zero(g, s->grain)) {
            /* Zeros stay sparse: nothing to store if that is what reads
             * already return; otherwise a zeroed-grain entry if allowed. */
            if (!(gte == 1 || below_zero))
                r = s->zeroed_ok ? set_entry(e, s, gi, gde, 1) : -1;
            if (r != -1)
                goto out;
            r = 0;
        }
        uint64_t at = 0;
        r = reserve(e, s, s->grain, &at);
        if (r == 0)
            r = pwrite_data(e, g, s->grain, at);
        if (r == 0) {
            ext_grow_size(e, at + s->grain);
            r = set_entry(e, s, gi, gde, (uint32_t)(at / SECTOR));
        }
    }
out:
    free(g);
    return r;
}

static int write_grain(struct extent *e, struct s32 *s, uint64_t gi, uint64_t in, const void *buf,
                       size_t n)
{
    uint32_t gte, gde;
    int r = s32_lookup(e, s, gi, &gte, &gde);
    if (r < 0)
        return r;
    if (gte > 1 || (gte == 1 && !s->gte1_zero)) {
        struct run run = {0};
        r = classify(e, s, gte, gi * s->grain + in, n, &run);
        return r < 0 ? r : pwrite_data(e, buf, n, run.file_off);
    }
    pthread_mutex_lock(&s->lock);
    /* Look again under the lock: another writer may have allocated it. */
    r = s32_lookup(e, s, gi, &gte, &gde);
    if (r == 0 && gte > 1) {
        pthread_mutex_unlock(&s->lock);
        return pwrite_data(e, buf, n, (uint64_t)gte * SECTOR + in);
    }
    if (r == 0)
        r = allocate(e, s, gi, gte, gde, in, buf, n);
    pthread_mutex_unlock(&s->lock);
    return r;
}

int s32_write(struct extent *e, struct s32 *s, uint64_t off, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len) {
        uint64_t gi = off / s->grain, in = off % s->grain;
        size_t n = (size_t)min_u64(len, s->grain - in);
        int r = write_grain(e, s, gi, in, p, n);
        if (r < 0)
            return r;
        off += n;
        p += n;
        len -= n;
    }
    return 0;
}
