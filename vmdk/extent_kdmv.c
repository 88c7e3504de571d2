/* Hosted sparse extents (magic KDMV): monolithicSparse, twoGbMaxExtentSparse
 * and streamOptimized.  Data is found through a grain directory (GD) of
 * grain-table (GT) sectors; GT entries give grain sectors.  Compressed
 * (stream) grains start with a marker {u64 lba, u32 size} and zlib data. */
#include <pthread.h>
#include <stdlib.h>
#include <zlib.h>

#include "engine.h"
#include "util.h"

#define GD_AT_END 0xffffffffffffffffull
#define FLAG_RGD (1u << 1)
#define FLAG_ZEROED_GTE (1u << 2)
#define FLAG_COMPRESSED (1u << 16)
#define FLAG_MARKERS (1u << 17)
#define MAX_GRAIN_SECTORS 2048u /* 1 MiB: VMware and QEMU use 128 */
#define MAX_GTES 65536u
#define ZSLOTS 4u

struct zslot {
    uint64_t gte;
    unsigned char *buf;
};

struct kdmv {
    uint32_t version, flags;
    uint64_t capacity;    /* sectors */
    uint64_t grain;       /* bytes per grain */
    uint64_t n_gtes;      /* entries per grain table */
    uint64_t gt_cover;    /* bytes of disk covered by one grain table */
    uint64_t gd_off;      /* byte offset of the grain directory */
    uint64_t gd_entries;
    uint64_t overhead;    /* bytes of metadata before the first grain */
    int compressed;
    int markers; /* compressed grains start with a {lba, size} marker */
    /* Recently inflated grains, so small sequential reads of a compressed
     * disk inflate each grain once. */
    pthread_mutex_t zlock;
    struct zslot slots[ZSLOTS];
    unsigned next_slot;
};

static int read_hdr(struct extent *e, uint64_t off, unsigned char *h, vdk_error *err)
{
    int64_t got = e->file->ops->pread(e->file, h, 512, off);
    if (got < 0)
        return vdk_fail(err, vdk_status_from_errno((int)got), "%s: reading sparse header: %s",
                        e->name, strerror((int)-got));
    if (got < 512)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: sparse header at %llu truncated", e->name,
                        (unsigned long long)off);
    if (le32(h) != 0x564d444bu)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: bad sparse header magic at %llu", e->name,
                        (unsigned long long)off);
    return 0;
}

/* GD_AT_END (stream files as VMware writes them): the real GD offset is in
 * the footer, a header copy 1024 bytes before the end of the file. */
static int read_footer(struct extent *e, struct kdmv *k, vdk_error *err)
{
    unsigned char h[512];
    if (e->file_size < 3 * SECTOR)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: grain directory is at the end of the file, "
                        "but the file is too short for a footer", e->name);
    int r = read_hdr(e, e->file_size - 2 * SECTOR, h, err);
    if (r < 0)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: grain directory is at the end of the file, "
                        "but no footer was found there (truncated stream?)", e->name);
    k->gd_off = le64(h + 56);
    if (k->gd_off == GD_AT_END)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: footer does not give the grain directory",
                        e->name);
    return 0;
}

static int kdmv_open(struct extent *e, vdk_error *err)
{
    unsigned char h[512];
    int r = read_hdr(e, 0, h, err);
    if (r < 0)
        return r;
    struct kdmv *k = calloc(1, sizeof(*k));
    if (!k)
        return -VDK_E_NOMEM;
    pthread_mutex_init(&k->zlock, NULL);
    e->priv = k;
    k->version = le32(h + 4);
    k->flags = le32(h + 8);
    k->capacity = le64(h + 12);
    uint64_t grain = le64(h + 20);
    k->n_gtes = le32(h + 44);
    k->gd_off = le64(h + 56);
    k->overhead = le64(h + 64);
    uint16_t algo = le16(h + 77);
    if (k->version < 1 || k->version > 3)
        return vdk_fail(err, VDK_E_UNSUPPORTED, "%s: sparse format version %u is not 1, 2 or 3",
                        e->name, k->version);
    if (grain == 0 || grain > MAX_GRAIN_SECTORS || (grain & (grain - 1)))
        return vdk_fail(err, VDK_E_CORRUPT, "%s: grain size of %llu sectors is not a power of "
                        "two up to %u", e->name, (unsigned long long)grain, MAX_GRAIN_SECTORS);
    if (k->n_gtes == 0 || k->n_gtes > MAX_GTES)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: %llu entries per grain table is out of range",
                        e->name, (unsigned long long)k->n_gtes);
    if (k->capacity > DESC_MAX_SECTORS)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: capacity of %llu sectors is absurd", e->name,
                        (unsigned long long)k->capacity);
    if (e->d->sectors > k->capacity)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: descriptor gives %llu sectors, the sparse "
                        "header only %llu", e->name, (unsigned long long)e->d->sectors,
                        (unsigned long long)k->capacity);
    /* Readers go by compressAlgorithm (QEMU never looks at flag bit 16);
     * a file that sets the flag with another algorithm is not ours. */
    if ((k->flags & FLAG_COMPRESSED) && algo != 1)
        return vdk_fail(err, VDK_E_UNSUPPORTED, "%s: compression algorithm %u is not deflate",
                        e->name, algo);
    k->compressed = algo == 1;
    k->markers = (k->flags & FLAG_MARKERS) != 0;
    if (k->compressed)
        e->format = "stream-optimized";
    if (h[72])
        e->disk->unclean = 1;
    k->grain = grain * SECTOR;
    k->gt_cover = k->n_gtes * k->grain;
    if (k->gd_off == GD_AT_END && (r = read_footer(e, k, err)) < 0)
        return r;
    k->gd_entries = (k->capacity * SECTOR + k->gt_cover - 1) / k->gt_cover;
    if (k->gd_off == 0 || k->gd_off > e->file_size / SECTOR ||
        k->gd_off * SECTOR + k->gd_entries * 4 > e->file_size)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: grain directory (sector %llu, %llu entries) "
                        "lies outside the file", e->name, (unsigned long long)k->gd_off,
                        (unsigned long long)k->gd_entries);
    k->gd_off *= SECTOR;
    if (!k->compressed && k->overhead > e->file_size / SECTOR)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: file is %llu bytes, shorter than its %llu "
                        "sectors of metadata: truncated", e->name,
                        (unsigned long long)e->file_size, (unsigned long long)k->overhead);
    /* Stream files of empty disks may end before their nominal overhead. */
    k->overhead = min_u64(k->overhead, e->file_size / SECTOR) * SECTOR;
    return 0;
}

static int classify(struct extent *e, struct kdmv *k, uint32_t gte, uint64_t off, uint64_t n,
                    struct run *r)
{
    if (gte == 0) {
        *r = (struct run){.kind = RUN_HOLE, .len = n};
        return 0;
    }
    if (gte == 1) {
        /* A zeroed-grain entry (written when header flag bit 2 is set); a
         * real grain can never start at sector 1. */
        *r = (struct run){.kind = RUN_ZERO, .len = n};
        return 0;
    }
    uint64_t gstart = (uint64_t)gte * SECTOR;
    if (gstart < k->overhead || gstart >= e->file_size)
        return disk_fail(e->disk, VDK_E_CORRUPT, "%s: grain for offset %llu points to sector "
                         "%u, %s", e->name, (unsigned long long)off, gte,
                         gstart >= e->file_size ? "past the end of the file"
                                                : "inside the metadata");
    if (k->compressed) {
        *r = (struct run){.kind = RUN_INDIRECT, .len = n};
        return 0;
    }
    uint64_t in = off % k->grain;
    if (gstart + in + n > e->file_size)
        return disk_fail(e->disk, VDK_E_CORRUPT, "%s: grain at sector %u runs past the end "
                         "of the file", e->name, gte);
    *r = (struct run){.kind = RUN_DATA, .len = n, .file_off = gstart + in};
    return 0;
}

static int lookup(struct extent *e, struct kdmv *k, uint64_t gi, uint32_t *gte, uint32_t *gde)
{
    uint64_t gdi = gi / k->n_gtes;
    int r = ext_read_u32(e, k->gd_off + gdi * 4, gde);
    if (r < 0 || *gde == 0)
        return r;
    return ext_read_u32(e, (uint64_t)*gde * SECTOR + (gi % k->n_gtes) * 4, gte);
}

static int kdmv_status(struct extent *e, uint64_t off, uint64_t len, struct run *r)
{
    struct kdmv *k = e->priv;
    uint64_t gi = off / k->grain;
    uint32_t gde, gte = 0;
    int rc = lookup(e, k, gi, &gte, &gde);
    if (rc < 0)
        return rc;
    if (gde == 0) {
        uint64_t end = (gi / k->n_gtes + 1) * k->gt_cover;
        *r = (struct run){.kind = RUN_HOLE, .len = min_u64(len, end - off)};
        return 0;
    }
    rc = classify(e, k, gte, off, min_u64(len, (gi + 1) * k->grain - off), r);
    if (rc < 0 || r->kind == RUN_INDIRECT)
        return rc;
    /* Extend the run over following grains of the same table that continue
     * it, so long reads become few large preads. */
    uint64_t gt_end = (gi / k->n_gtes + 1) * k->n_gtes;
    while (r->len < len && ++gi < gt_end) {
        uint32_t next;
        rc = ext_read_u32(e, (uint64_t)gde * SECTOR + (gi % k->n_gtes) * 4, &next);
        if (rc < 0)
            return rc;
        struct run nr;
        rc = classify(e, k, next, gi * k->grain, min_u64(len - r->len, k->grain), &nr);
        if (rc < 0)
            return rc;
        if (nr.kind != r->kind || (nr.kind == RUN_DATA && nr.file_off != r->file_off + r->len))
            break;
        r->len += nr.len;
    }
    return 0;
}

static int inflate_grain(struct extent *e, struct kdmv *k, uint32_t gte, unsigned char *out)
{
    uint64_t at = (uint64_t)gte * SECTOR;
    uint64_t limit = k->grain * 2 + 4096; /* deflate never grows data this much */
    uint64_t csize;
    if (k->markers) {
        unsigned char m[12];
        int rc = ext_pread_exact(e, m, sizeof(m), at);
        if (rc < 0)
            return rc;
        csize = le32(m + 8);
        at += 12;
        if (csize == 0 || csize > limit || at + csize > e->file_size)
            return disk_fail(e->disk, VDK_E_CORRUPT, "%s: compressed grain at sector %u "
                             "claims %llu bytes", e->name, gte, (unsigned long long)csize);
    } else {
        /* No marker: the zlib stream itself says where it ends. */
        csize = min_u64(limit, e->file_size - at);
    }
    unsigned char *in = malloc(csize);
    if (!in)
        return -VDK_E_NOMEM;
    int rc = ext_pread_exact(e, in, csize, at);
    if (rc == 0) {
        z_stream z = {.next_in = in, .avail_in = (uInt)csize, .next_out = out,
                      .avail_out = (uInt)k->grain};
        int zr = inflateInit(&z);
        if (zr == Z_OK) {
            zr = inflate(&z, Z_FINISH);
            /* A short last grain inflates to less than a grain. */
            memset(out + (k->grain - z.avail_out), 0, z.avail_out);
            inflateEnd(&z);
        }
        if (zr != Z_STREAM_END)
            rc = disk_fail(e->disk, VDK_E_CORRUPT, "%s: compressed grain at sector %u does not "
                           "inflate to at most one grain (zlib %d)", e->name, gte, zr);
    }
    free(in);
    return rc;
}

static int kdmv_read_indirect(struct extent *e, uint64_t off, void *buf, size_t len)
{
    struct kdmv *k = e->priv;
    uint32_t gde, gte = 0;
    int rc = lookup(e, k, off / k->grain, &gte, &gde);
    if (rc < 0)
        return rc;
    uint64_t in = off % k->grain;
    pthread_mutex_lock(&k->zlock);
    for (unsigned i = 0; i < ZSLOTS; i++) {
        if (k->slots[i].buf && k->slots[i].gte == gte) {
            memcpy(buf, k->slots[i].buf + in, len);
            pthread_mutex_unlock(&k->zlock);
            return 0;
        }
    }
    pthread_mutex_unlock(&k->zlock);
    /* Inflate outside the lock so threads reading other grains go on. */
    unsigned char *g = malloc(k->grain);
    if (!g)
        return -VDK_E_NOMEM;
    rc = inflate_grain(e, k, gte, g);
    if (rc < 0) {
        free(g);
        return rc;
    }
    memcpy(buf, g + in, len);
    pthread_mutex_lock(&k->zlock);
    struct zslot *s = &k->slots[k->next_slot++ % ZSLOTS];
    free(s->buf);
    s->buf = g;
    s->gte = gte;
    pthread_mutex_unlock(&k->zlock);
    return 0;
}

static void kdmv_close(struct extent *e)
{
    struct kdmv *k = e->priv;
    if (!k)
        return;
    for (unsigned i = 0; i < ZSLOTS; i++)
        free(k->slots[i].buf);
    pthread_mutex_destroy(&k->zlock);
    free(k);
}

const struct extent_ops extent_kdmv_ops = {
    .format = "hosted-sparse",
    .open = kdmv_open,
    .status = kdmv_status,
    .read_indirect = kdmv_read_indirect,
    .close = kdmv_close,
};
