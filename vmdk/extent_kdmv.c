/* Hosted sparse extents (magic KDMV): monolithicSparse, twoGbMaxExtentSparse
 * and streamOptimized.  Data is found through a grain directory (GD) of
 * grain-table (GT) sectors; GT entries give grain sectors.  Compressed
 * (stream) grains start with a marker {u64 lba, u32 size} and zlib data. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "engine.h"
#include "sparse32.h"
#include "util.h"

#define GD_AT_END         0xffffffffffffffffull
#define FLAG_RGD          (1u << 1)
#define FLAG_ZEROED_GTE   (1u << 2)
#define FLAG_COMPRESSED   (1u << 16)
#define FLAG_MARKERS      (1u << 17)
#define MAX_GRAIN_SECTORS 2048u /* 1 MiB: VMware and QEMU use 128 */
#define MAX_GTES          65536u
#define ZSLOTS            4u

struct zslot {
    uint64_t gte, lba;
    unsigned char *buf;
};

struct kdmv {
    struct s32 t; /* directory, tables, allocation */
    uint32_t version, flags;
    uint64_t capacity;  /* sectors */
    uint64_t header_gd; /* gdOffset as the header says (GD_AT_END for streams) */
    int markers;        /* compressed grains start with a {lba, size} marker */
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
static int read_footer(struct extent *e, struct s32 *t, vdk_error *err)
{
    unsigned char h[512];
    if (e->file_size < 3 * SECTOR)
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: grain directory is at the end of the file, "
                        "but the file is too short for a footer",
                        e->name);
    int r = read_hdr(e, e->file_size - 2 * SECTOR, h, err);
    if (r < 0)
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: grain directory is at the end of the file, "
                        "but no footer was found there (truncated stream?)",
                        e->name);
    t->gd_off = le64(h + 56);
    if (t->gd_off == GD_AT_END)
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
    s32_init(&k->t);
    e->priv = k;
    struct s32 *t = &k->t;
    k->version = le32(h + 4);
    k->flags = le32(h + 8);
    k->capacity = le64(h + 12);
    uint64_t grain = le64(h + 20);
    t->n_gtes = le32(h + 44);
    k->header_gd = t->gd_off = le64(h + 56);
    uint64_t rgd = le64(h + 48), overhead = le64(h + 64);
    uint16_t algo = le16(h + 77);
    if (k->version < 1 || k->version > 3)
        return vdk_fail(err, VDK_E_UNSUPPORTED, "%s: sparse format version %u is not 1, 2 or 3",
                        e->name, k->version);
    if (grain == 0 || grain > MAX_GRAIN_SECTORS || (grain & (grain - 1)))
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: grain size of %llu sectors is not a power of "
                        "two up to %u",
                        e->name, (unsigned long long)grain, MAX_GRAIN_SECTORS);
    if (t->n_gtes == 0 || t->n_gtes > MAX_GTES)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: %llu entries per grain table is out of range",
                        e->name, (unsigned long long)t->n_gtes);
    if (k->capacity > DESC_MAX_SECTORS)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: capacity of %llu sectors is absurd", e->name,
                        (unsigned long long)k->capacity);
    if (e->d->sectors > k->capacity)
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: descriptor gives %llu sectors, the sparse "
                        "header only %llu",
                        e->name, (unsigned long long)e->d->sectors,
                        (unsigned long long)k->capacity);
    /* Readers go by compressAlgorithm (QEMU never looks at flag bit 16);
     * a file that sets the flag with another algorithm is not ours. */
    if ((k->flags & FLAG_COMPRESSED) && algo != 1)
        return vdk_fail(err, VDK_E_UNSUPPORTED, "%s: compression algorithm %u is not deflate",
                        e->name, algo);
    t->compressed = algo == 1;
    k->markers = (k->flags & FLAG_MARKERS) != 0;
    if (t->compressed)
        e->format = "stream-optimized";
    if (h[72])
        e->disk->unclean = 1;
    t->grain = grain * SECTOR;
    t->gt_cover = t->n_gtes * t->grain;
    t->gt_bytes = (t->n_gtes * 4 + SECTOR - 1) / SECTOR * SECTOR;
    t->gte1_zero = 1;
    t->zeroed_ok = (k->flags & FLAG_ZEROED_GTE) != 0;
    if (t->gd_off == GD_AT_END && (r = read_footer(e, t, err)) < 0)
        return r;
    t->gd_entries = (k->capacity * SECTOR + t->gt_cover - 1) / t->gt_cover;
    if (t->gd_off == 0 || t->gd_off > e->file_size / SECTOR ||
        t->gd_off * SECTOR + t->gd_entries * 4 > e->file_size)
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: grain directory (sector %llu, %llu entries) "
                        "lies outside the file",
                        e->name, (unsigned long long)t->gd_off, (unsigned long long)t->gd_entries);
    t->gd_off *= SECTOR;
    if ((k->flags & FLAG_RGD) && rgd && rgd <= e->file_size / SECTOR &&
        rgd * SECTOR + t->gd_entries * 4 <= e->file_size)
        t->rgd_off = rgd * SECTOR;
    else if ((k->flags & FLAG_RGD) && rgd)
        /* Reading goes on with the primary tables, but the disk has lost
         * its redundancy: vdk check must say so rather than pass. */
        snprintf(t->finding, sizeof(t->finding),
                 "%s: redundant grain directory (sector %llu, %llu entries) lies outside the "
                 "file; only the primary tables are left",
                 e->name, (unsigned long long)rgd, (unsigned long long)t->gd_entries);
    if (!t->compressed && overhead > e->file_size / SECTOR)
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: file is %llu bytes, shorter than its %llu "
                        "sectors of metadata: truncated",
                        e->name, (unsigned long long)e->file_size, (unsigned long long)overhead);
    /* Stream files of empty disks may end before their nominal overhead. */
    t->min_grain = min_u64(overhead, e->file_size / SECTOR) * SECTOR;
    t->alloc_next = (e->file_size + t->grain - 1) / t->grain * t->grain;
    return s32_scan_meta(e, t, err);
}

static int kdmv_status(struct extent *e, uint64_t off, uint64_t len, struct run *r)
{
    return s32_status(e, &((struct kdmv *)e->priv)->t, off, len, r);
}

static int kdmv_write(struct extent *e, uint64_t off, const void *buf, size_t len)
{
    struct kdmv *k = e->priv;
    if (k->t.compressed)
        return disk_fail(e->disk, VDK_E_UNSUPPORTED,
                         "%s: a streamOptimized disk is written "
                         "once, in order, by clone; it cannot be modified in place (clone it "
                         "to monolithicSparse first)",
                         e->name);
    if (k->header_gd == GD_AT_END)
        return disk_fail(e->disk, VDK_E_UNSUPPORTED,
                         "%s: the grain directory sits in a "
                         "footer; writing would move it (clone the disk first)",
                         e->name);
    return s32_write(e, &k->t, off, buf, len);
}

/* uncleanShutdown is byte 72 of the header. */
static int kdmv_set_unclean(struct extent *e, int unclean)
{
    unsigned char b = unclean ? 1 : 0;
    int64_t w = e->file->ops->pwrite(e->file, &b, 1, 72);
    return w < 0 ? vdk_status_from_errno((int)w) : 0;
}

/* Inflate the grain at sector gte, which must hold guest sector lba. */
static int inflate_grain(struct extent *e, struct kdmv *k, uint32_t gte, uint64_t lba,
                         unsigned char *out)
{
    uint64_t at = (uint64_t)gte * SECTOR;
    uint64_t limit = k->t.grain * 2 + 4096; /* deflate never grows data this much */
    uint64_t csize;
    if (k->markers) {
        unsigned char m[12];
        int rc = ext_pread_exact(e, m, sizeof(m), at);
        if (rc < 0)
            return rc;
        /* The marker says which grain it holds: a table entry pointing at
         * another grain's data (or at anything but a grain) would otherwise
         * read as valid, wrong data. */
        if (le64(m) != lba)
            return disk_fail(e->disk, VDK_E_CORRUPT,
                             "%s: compressed grain at sector %u holds guest sector %llu, "
                             "its table entry is for sector %llu",
                             e->name, gte, (unsigned long long)le64(m), (unsigned long long)lba);
        csize = le32(m + 8);
        at += 12;
        if (csize == 0 || csize > limit || at + csize > e->file_size)
            return disk_fail(e->disk, VDK_E_CORRUPT,
                             "%s: compressed grain at sector %u "
                             "claims %llu bytes",
                             e->name, gte, (unsigned long long)csize);
    } else {
        /* No marker: the zlib stream itself says where it ends. */
        csize = min_u64(limit, e->file_size - at);
    }
    unsigned char *in = malloc(csize);
    if (!in)
        return -VDK_E_NOMEM;
    int rc = ext_pread_exact(e, in, csize, at);
    if (rc == 0) {
        z_stream z = {
            .next_in = in, .avail_in = (uInt)csize, .next_out = out, .avail_out = (uInt)k->t.grain};
        int zr = inflateInit(&z);
        if (zr == Z_OK) {
            zr = inflate(&z, Z_FINISH);
            /* A short last grain inflates to less than a grain. */
            memset(out + (k->t.grain - z.avail_out), 0, z.avail_out);
            inflateEnd(&z);
        }
        if (zr != Z_STREAM_END)
            rc = disk_fail(e->disk, VDK_E_CORRUPT,
                           "%s: compressed grain at sector %u does not "
                           "inflate to at most one grain (zlib %d)",
                           e->name, gte, zr);
    }
    free(in);
    return rc;
}

static int kdmv_read_indirect(struct extent *e, uint64_t off, void *buf, size_t len)
{
    struct kdmv *k = e->priv;
    uint32_t gde, gte = 0;
    int rc = s32_lookup(e, &k->t, off / k->t.grain, &gte, &gde);
    if (rc < 0)
        return rc;
    uint64_t in = off % k->t.grain, lba = off / k->t.grain * (k->t.grain / SECTOR);
    pthread_mutex_lock(&k->zlock);
    for (unsigned i = 0; i < ZSLOTS; i++) {
        if (k->slots[i].buf && k->slots[i].gte == gte && k->slots[i].lba == lba) {
            memcpy(buf, k->slots[i].buf + in, len);
            pthread_mutex_unlock(&k->zlock);
            return 0;
        }
    }
    pthread_mutex_unlock(&k->zlock);
    /* Inflate outside the lock so threads reading other grains go on. */
    unsigned char *g = malloc(k->t.grain);
    if (!g)
        return -VDK_E_NOMEM;
    rc = inflate_grain(e, k, gte, lba, g);
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
    s->lba = lba;
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
    s32_destroy(&k->t);
    free(k);
}

const struct extent_ops extent_kdmv_ops = {
    .format = "hosted-sparse",
    .open = kdmv_open,
    .status = kdmv_status,
    .read_indirect = kdmv_read_indirect,
    .write = kdmv_write,
    .set_unclean = kdmv_set_unclean,
    .close = kdmv_close,
};

/* Write len zero bytes at off (through the cache, which may hold them). */
static int put_zeros(struct extent *e, uint64_t off, uint64_t len)
{
    static const unsigned char zeros[4096];
    for (uint64_t pos = 0; pos < len; pos += sizeof(zeros)) {
        int r = mcache_write(e->disk->mc, e->fid, e->file, off + pos, zeros,
                             (size_t)min_u64(sizeof(zeros), len - pos));
        if (r < 0)
            return r;
    }
    return 0;
}

/* Copy a directory of n_old entries into a new one of n_new at 'to'; new
 * entries point at fresh zeroed tables from 'tables' on. */
static int new_directory(struct extent *e, struct s32 *t, uint64_t from, uint64_t n_old,
                         uint64_t n_new, uint64_t to, uint64_t tables)
{
    for (uint64_t i = 0; i < n_new; i++) {
        uint32_t v;
        int r = 0;
        if (i < n_old)
            r = ext_read_u32(e, from + i * 4, &v);
        else
            v = (uint32_t)((tables + (i - n_old) * t->gt_bytes) / SECTOR);
        unsigned char b[4];
        put_le32(b, v);
        if (r == 0 && (from != to || i >= n_old))
            r = mcache_write(e->disk->mc, e->fid, e->file, to + i * 4, b, 4);
        if (r < 0)
            return r;
    }
    return 0;
}

int kdmv_grow(struct extent *e, uint64_t sectors, vdk_error *err)
{
    struct kdmv *k = e->priv;
    struct s32 *t = &k->t;
    if (t->compressed || k->header_gd == GD_AT_END)
        return vdk_fail(err, VDK_E_UNSUPPORTED,
                        "%s: a streamOptimized disk cannot grow; "
                        "clone it to monolithicSparse first",
                        e->name);
    if (sectors <= k->capacity)
        return 0; /* done by an earlier, interrupted run */
    uint64_t n_old = t->gd_entries;
    uint64_t n_new = (sectors * SECTOR + t->gt_cover - 1) / t->gt_cover;
    uint64_t room = (n_old * 4 + SECTOR - 1) / SECTOR * SECTOR;
    uint64_t dir_bytes = (n_new * 4 + SECTOR - 1) / SECTOR * SECTOR;
    pthread_mutex_lock(&t->lock);
    /* new zeroed tables (and their redundant twins) at the end of the file */
    uint64_t add = (n_new - n_old) * t->gt_bytes, tables = t->alloc_next, rtables = 0;
    t->alloc_next += add;
    if (t->rgd_off) {
        rtables = t->alloc_next;
        t->alloc_next += add;
    }
    /* directories move to the end when they outgrow their sectors */
    uint64_t gd = t->gd_off, rgd = t->rgd_off;
    if (dir_bytes > room) {
        gd = t->alloc_next;
        t->alloc_next += dir_bytes;
        if (t->rgd_off) {
            rgd = t->alloc_next;
            t->alloc_next += dir_bytes;
        }
    }
    int r = (t->alloc_next / SECTOR > UINT32_MAX) ? -VDK_E_NOSPC : 0;
    if (r == 0)
        r = put_zeros(e, tables, t->alloc_next - tables);
    if (r == 0)
        r = new_directory(e, t, t->gd_off, n_old, n_new, gd, tables);
    if (r == 0 && t->rgd_off)
        r = new_directory(e, t, t->rgd_off, n_old, n_new, rgd, rtables);
    if (r == 0)
        r = vdk_status_from_errno(e->file->ops->flush(e->file));
    /* the header is the commit point: one sector */
    unsigned char h[512];
    if (r == 0 && e->file->ops->pread(e->file, h, sizeof(h), 0) != (int64_t)sizeof(h))
        r = -VDK_E_IO;
    if (r == 0) {
        put_le64(h + 12, sectors);
        put_le64(h + 56, gd / SECTOR);
        if (t->rgd_off)
            put_le64(h + 48, rgd / SECTOR);
        r = mcache_write(e->disk->mc, e->fid, e->file, 0, h, sizeof(h));
        if (r == 0)
            r = vdk_status_from_errno(e->file->ops->flush(e->file));
    }
    if (r == 0) {
        k->capacity = sectors;
        t->gd_off = gd;
        t->rgd_off = rgd;
        t->gd_entries = n_new;
        ext_grow_size(e, t->alloc_next);
    }
    pthread_mutex_unlock(&t->lock);
    if (r < 0)
        return vdk_fail(err, r, "%s: growing the grain directory failed: %s", e->name,
                        vdk_strerror(r));
    return 0;
}
