/* Grain directory + u32 grain tables: lookup, runs and allocating writes. */
#include "sparse32.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define RUN_MAX 64 /* whole grains one appending write places at once */

void s32_init(struct s32 *s)
{
    pthread_mutex_init(&s->lock, NULL);
}

void s32_destroy(struct s32 *s)
{
    pthread_mutex_destroy(&s->lock);
    free(s->meta);
    s->meta = NULL;
}

static int add_area(struct s32 *s, size_t *cap, uint64_t start, uint64_t len)
{
    if (start < s->min_grain || len == 0)
        return 0; /* below the grains: classify() already refuses it */
    if (s->n_meta == *cap) {
        size_t n = *cap ? *cap * 2 : 16;
        void *p = realloc(s->meta, n * sizeof(*s->meta));
        if (!p)
            return -VDK_E_NOMEM;
        s->meta = p;
        *cap = n;
    }
    s->meta[s->n_meta++] = (struct s32_area){start, start + len};
    return 0;
}

static int cmp_area(const void *a, const void *b)
{
    const struct s32_area *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

int s32_scan_meta(struct extent *e, struct s32 *s, vdk_error *err)
{
    size_t cap = 0;
    uint32_t chunk[1024];
    uint64_t dirs[2] = {s->gd_off, s->rgd_off};
    for (int k = 0; k < 2; k++) {
        if (k == 1 && !s->rgd_off)
            break;
        int r = add_area(s, &cap, dirs[k], s->gd_entries * 4);
        for (uint64_t i = 0; r == 0 && i < s->gd_entries; i += 1024) {
            size_t n = (size_t)min_u64(1024, s->gd_entries - i);
            int64_t got = e->file->ops->pread(e->file, chunk, n * 4, dirs[k] + i * 4);
            if (got != (int64_t)(n * 4))
                return vdk_fail(err, got < 0 ? vdk_status_from_errno((int)got) : VDK_E_CORRUPT,
                                "%s: grain directory at %llu unreadable", e->name,
                                (unsigned long long)dirs[k]);
            for (size_t j = 0; r == 0 && j < n; j++) {
                uint32_t gde = le32(&chunk[j]);
                if (gde)
                    r = add_area(s, &cap, (uint64_t)gde * SECTOR, s->gt_bytes);
            }
        }
        if (r < 0)
            return vdk_fail(err, r, "%s: out of memory", e->name);
    }
    if (s->n_meta > 1) /* qsort(NULL, 0) is undefined */
        qsort(s->meta, s->n_meta, sizeof(*s->meta), cmp_area);
    for (size_t i = 1; i < s->n_meta; i++) {
        if (s->meta[i].start < s->meta[i - 1].end && !s->finding[0])
            snprintf(s->finding, sizeof(s->finding),
                     "%s: grain tables or directories overlap at byte %llu (a directory entry "
                     "or the directory size is wrong)",
                     e->name, (unsigned long long)s->meta[i].start);
        if (s->meta[i].end < s->meta[i - 1].end)
            s->meta[i].end = s->meta[i - 1].end;
    }
    return 0;
}

int s32_in_meta(const struct s32 *s, uint64_t a, uint64_t b)
{
    size_t lo = 0, hi = s->n_meta;
    while (lo < hi) { /* first area starting at or after b */
        size_t mid = lo + (hi - lo) / 2;
        if (s->meta[mid].start < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && s->meta[lo - 1].end > a;
}

/* The entry, in the directory at dir (the main or the redundant one), of
 * the table holding grain gi (0: none allocated). */
static int gd_entry(struct extent *e, struct s32 *s, uint64_t dir, uint64_t gi, uint32_t *gde)
{
    return ext_read_u32(e, dir + gi / s->n_gtes * 4, gde);
}

int s32_lookup(struct extent *e, struct s32 *s, uint64_t gi, uint32_t *gte, uint32_t *gde)
{
    *gte = 0;
    int r = gd_entry(e, s, s->gd_off, gi, gde);
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
    /* A grain that overlaps a table would read (and a write would clobber)
     * metadata: refused like one inside the header. */
    int meta = gstart < s->min_grain ||
               (s->n_meta && s32_in_meta(s, gstart, gstart + (s->compressed ? 12 : s->grain)));
    if (meta || gstart >= size)
        return disk_fail(e->disk, VDK_E_CORRUPT,
                         "%s: grain for offset %llu points to sector "
                         "%u, %s",
                         e->name, (unsigned long long)off, gte,
                         gstart >= size          ? "past the end of the file"
                         : gstart < s->min_grain ? "inside the metadata"
                                                 : "inside a grain table or directory");
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

/* Extend r, which ends with grain gi (in the table gde points to, 0 for
 * none), over the grains that continue it up to off+len, across tables:
 * long reads become few large preads, and a hole spanning many tables (an
 * untouched range of a redo log) is one answer instead of one per table,
 * so a chain's links above the data are asked far less often. */
static int extend_run(struct extent *e, struct s32 *s, uint64_t gi, uint32_t gde, uint64_t off,
                      uint64_t len, struct run *r)
{
    uint64_t want_end = (off + len + s->grain - 1) / s->grain;
    uint32_t ent[512];
    unsigned have = 0, at = 0; /* entries in ent[], the next one to use */
    while (r->len < len && ++gi < want_end) {
        if (gi % s->n_gtes == 0) { /* the next table (batches end with one) */
            int rc = gd_entry(e, s, s->gd_off, gi, &gde);
            if (rc < 0)
                return rc;
        }
        if (gde == 0) { /* a table never allocated: a hole as a whole */
            if (r->kind != RUN_HOLE)
                break;
            r->len += min_u64(len - r->len, s->gt_cover);
            gi += s->n_gtes - 1;
            continue;
        }
        if (at == have) {
            /* the entries this run may still need, a batch at a time */
            have = (unsigned)min_u64(min_u64(want_end - gi, 512), s->n_gtes - gi % s->n_gtes);
            at = 0;
            int rc = ext_read_u32s(e, (uint64_t)gde * SECTOR + (gi % s->n_gtes) * 4, ent, have);
            if (rc < 0)
                return rc;
        }
        if (r->kind == RUN_HOLE && ent[at] == 0) {
            /* empty entries in bulk: a link above the data holds mostly those */
            unsigned z = at + 1;
            while (z < have && ent[z] == 0)
                z++;
            r->len += min_u64(len - r->len, (uint64_t)(z - at) * s->grain);
            gi += z - at - 1;
            at = z;
            continue;
        }
        struct run nr = {0};
        int rc = classify(e, s, ent[at++], gi * s->grain, min_u64(len - r->len, s->grain), &nr);
        if (rc < 0)
            return rc;
        if (nr.kind != r->kind || (nr.kind == RUN_DATA && nr.file_off != r->file_off + r->len))
            break;
        r->len += nr.len;
    }
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
        gi = end / s->grain - 1; /* the table's last grain */
    } else {
        rc = classify(e, s, gte, off, min_u64(len, (gi + 1) * s->grain - off), r);
        if (rc < 0 || r->kind == RUN_INDIRECT)
            return rc;
    }
    return extend_run(e, s, gi, gde, off, len, r);
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

/* Table entries [gi, gi+k) (all in one table) as one write of k*4 bytes. */
static int write_entries(struct extent *e, uint64_t off, const uint32_t *gtes, size_t k)
{
    unsigned char b[4 * RUN_MAX];
    for (size_t i = 0; i < k; i++)
        put_le32(b + 4 * i, gtes[i]);
    int r = mcache_write(e->disk->mc, e->fid, e->file, off, b, 4 * k);
    if (r < 0)
        return disk_fail(e->disk, r, "%s: writing table entries at %llu: %s", e->name,
                         (unsigned long long)off, vdk_strerror(r));
    return 0;
}

static int write_u32(struct extent *e, uint64_t off, uint32_t v)
{
    return write_entries(e, off, &v, 1);
}

/* A new grain table (and its redundant twin) holding entries [gi, gi+k),
 * then the directory entries that make it live. */
static int new_table(struct extent *e, struct s32 *s, uint64_t gi, const uint32_t *gtes, size_t k)
{
    uint64_t gdi = gi / s->n_gtes;
    unsigned char *t = calloc(1, s->gt_bytes);
    if (!t)
        return -VDK_E_NOMEM;
    for (size_t i = 0; i < k; i++)
        put_le32(t + (gi % s->n_gtes + i) * 4, gtes[i]);
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

/* Set entries [gi, gi+k) of one table, whose directory entry is gde. */
static int set_entries(struct extent *e, struct s32 *s, uint64_t gi, uint32_t gde,
                       const uint32_t *gtes, size_t k)
{
    if (gde == 0)
        return new_table(e, s, gi, gtes, k);
    uint64_t idx = (gi % s->n_gtes) * 4;
    if (s->rgd_off) {
        uint32_t rgde;
        int r = gd_entry(e, s, s->rgd_off, gi, &rgde);
        if (r < 0)
            return r;
        /* Only a redundant table inside the file is kept in step: a damaged
         * directory entry may point anywhere up to 2 TiB, and writing there
         * would grow the file that far (vdk check reports such a table). */
        if (rgde && (uint64_t)rgde * SECTOR + s->gt_bytes <= ext_file_size(e) &&
            (r = write_entries(e, (uint64_t)rgde * SECTOR + idx, gtes, k)) < 0)
            return r;
    }
    return write_entries(e, (uint64_t)gde * SECTOR + idx, gtes, k);
}

static int set_entry(struct extent *e, struct s32 *s, uint64_t gi, uint32_t gde, uint32_t gte)
{
    return set_entries(e, s, gi, gde, &gte, 1);
}

/* Grains of one write whose data is stored but whose entries are not set
 * yet: entries go in after one flush covers all their data. */
struct pending {
    uint64_t gi;
    uint32_t sector;
};

/* Allocate grain gi with buf at [in, in+n) over what lies below.  The data
 * goes to a fresh place; the entry is queued in *pend when it must wait
 * for an ordering flush (the grain carries bytes from below), else set. */
static int allocate(struct extent *e, struct s32 *s, uint64_t gi, uint32_t gte, uint32_t gde,
                    uint64_t in, const void *buf, size_t n, struct pending *pend, int *npend)
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
        below_zero = r == 0 && vdk_all_zero(g, s->grain) && !e->disk->keep_zeros;
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
            r = ext_pwrite(e, g, s->grain, at);
        if (r == 0) {
            ext_grow_size(e, at + s->grain);
            /* Only an entry that was 0 over zeros may reach the disk before
             * its grain: a crash then reads zeros either way, and repair
             * clears it back to 0.  A zeroed-grain entry (1) in a child must
             * not become 0 again, which would show the parent. */
            if (below_zero && (gte == 0 || !e->disk->parent))
                r = set_entry(e, s, gi, gde, (uint32_t)(at / SECTOR));
            else
                pend[(*npend)++] = (struct pending){gi, (uint32_t)(at / SECTOR)};
        }
    }
out:
    free(g);
    return r;
}

/* Set the queued entries, after one flush makes all their grains durable
 * (a crash must never show an entry whose grain lost its parent's bytes). */
static int settle(struct extent *e, struct s32 *s, struct pending *pend, int *npend)
{
    int r = *npend ? ext_order(e) : 0;
    for (int i = 0; r == 0 && i < *npend; i++) {
        uint32_t gte, gde; /* the directory entry may be new since queued */
        r = s32_lookup(e, s, pend[i].gi, &gte, &gde);
        if (r == 0)
            r = set_entry(e, s, pend[i].gi, gde, pend[i].sector);
    }
    *npend = 0;
    return r;
}

/* Whole grains [gi, gi+k) of a link with nothing below it, unallocated in
 * one table and not zeros: their data goes to the end of the file in one
 * write straight from buf, their entries in one write per table (a rewrite
 * otherwise costs three writes and a copy per grain).  Returns how many
 * grains it placed, 0 when the first needs the general path.  Called with
 * s->lock held; the entries may precede their data on disk for the reason
 * allocate() gives. */
static int64_t append_run(struct extent *e, struct s32 *s, uint64_t gi, const unsigned char *buf,
                          uint64_t max)
{
    uint32_t gde = 0, gtes[RUN_MAX] = {0};
    uint64_t k = 0, gt_end = (gi / s->n_gtes + 1) * s->n_gtes;
    max = min_u64(min_u64(max, RUN_MAX), gt_end - gi);
    int r = gd_entry(e, s, s->gd_off, gi, &gde);
    if (r == 0 && gde)
        r = ext_read_u32s(e, (uint64_t)gde * SECTOR + (gi % s->n_gtes) * 4, gtes, (unsigned)max);
    if (r < 0)
        return r;
    while (k < max && gtes[k] == 0 && !vdk_all_zero(buf + k * s->grain, s->grain))
        k++;
    if (k == 0)
        return 0;
    uint64_t at = 0;
    r = reserve(e, s, k * s->grain, &at);
    if (r == 0)
        r = ext_pwrite(e, buf, k * s->grain, at);
    if (r < 0)
        return r;
    ext_grow_size(e, at + k * s->grain);
    for (uint64_t i = 0; i < k; i++)
        gtes[i] = (uint32_t)((at + i * s->grain) / SECTOR);
    r = set_entries(e, s, gi, gde, gtes, k);
    return r < 0 ? r : (int64_t)k;
}

/* Whether writes may take append_run: nothing below to merge or order
 * against, zeros may stay holes, grains stored plain. */
static int may_append(const struct extent *e, const struct s32 *s)
{
    return !e->disk->parent && !e->disk->keep_zeros && !s->compressed;
}

#define BATCH 32 /* grains whose entries wait for one flush */

/* Store [in, in+n) of grain gi.  Allocations take s->lock, which is held
 * across the rest of the write (*locked) so queued entries stay private. */
static int write_grain(struct extent *e, struct s32 *s, uint64_t gi, uint64_t in, const void *buf,
                       size_t n, int *locked, struct pending *pend, int *npend)
{
    uint32_t gte, gde;
    int r = s32_lookup(e, s, gi, &gte, &gde);
    if (r < 0)
        return r;
    if (gte > 1 || (gte == 1 && !s->gte1_zero)) {
        struct run run = {0};
        r = classify(e, s, gte, gi * s->grain + in, n, &run);
        return r < 0 ? r : ext_pwrite(e, buf, n, run.file_off);
    }
    if (!*locked) {
        pthread_mutex_lock(&s->lock);
        *locked = 1;
        /* Look again under the lock: another writer may have allocated it. */
        r = s32_lookup(e, s, gi, &gte, &gde);
        if (r == 0 && gte > 1)
            return ext_pwrite(e, buf, n, (uint64_t)gte * SECTOR + in);
    }
    if (r == 0 && *npend == BATCH) {
        r = settle(e, s, pend, npend);
        /* settle may have made this grain's table: with the directory entry
         * read before it (0), allocate() would start another table and
         * orphan the one just filled, losing the batch's grains (COWD, 512 B
         * grains: any write of 16 KiB over parent data then a parent hole) */
        if (r == 0)
            r = s32_lookup(e, s, gi, &gte, &gde);
    }
    return r < 0 ? r : allocate(e, s, gi, gte, gde, in, buf, n, pend, npend);
}

int s32_write(struct extent *e, struct s32 *s, uint64_t off, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    struct pending pend[BATCH];
    int npend = 0, locked = 0, r = 0;
    while (r == 0 && len) {
        uint64_t gi = off / s->grain, in = off % s->grain;
        uint32_t gte, gde;
        if (in == 0 && len >= s->grain && may_append(e, s) &&
            (r = s32_lookup(e, s, gi, &gte, &gde)) == 0 && gte == 0) {
            if (!locked) {
                pthread_mutex_lock(&s->lock);
                locked = 1;
            }
            int64_t k = append_run(e, s, gi, p, len / s->grain);
            if (k < 0)
                r = (int)k;
            if (k > 0) {
                off += (uint64_t)k * s->grain;
                p += (uint64_t)k * s->grain;
                len -= (size_t)k * s->grain;
                continue;
            }
        }
        size_t n = (size_t)min_u64(len, s->grain - in);
        if (r < 0)
            break;
        r = write_grain(e, s, gi, in, p, n, &locked, pend, &npend);
        off += n;
        p += n;
        len -= n;
    }
    /* On failure the queued grains stay unreferenced: leaked, never wrong. */
    if (r == 0)
        r = settle(e, s, pend, &npend);
    if (locked)
        pthread_mutex_unlock(&s->lock);
    return r;
}

/* ---- consistency check and repair ---- */

struct s32_check {
    struct extent *e;
    struct s32 *s;
    int repair;
    struct check_ctx *ctx;
    uint8_t *seen; /* one bit per grain slot of the file */
    uint64_t slots;
    unsigned char *grain; /* compressed extents: room to inflate one grain */
};

static int fix_entry(struct s32_check *c, uint64_t at, uint32_t v)
{
    if (!c->repair)
        return 0;
    int r = write_u32(c->e, at, v);
    if (r == 0)
        c->ctx->repaired++;
    return r;
}

/* Check the table of directory entry gdi; fix what can be fixed. */
static int check_table(struct s32_check *c, uint64_t gdi, uint32_t gde)
{
    struct extent *e = c->e;
    struct s32 *s = c->s;
    uint64_t size = ext_file_size(e), gt = (uint64_t)gde * SECTOR;
    for (uint64_t i = 0; i < s->n_gtes && (gdi * s->n_gtes + i) * s->grain < e->size; i++) {
        uint32_t gte;
        int r = ext_read_u32(e, gt + i * 4, &gte);
        if (r < 0)
            return r;
        if (gte == 0 || (gte == 1 && s->gte1_zero)) {
            if (gte == 1 && !s->zeroed_ok)
                check_say(c->ctx, 0,
                          "%s: grain %llu: zeroed-grain entry without the header "
                          "flag (libvmdk and VirtualBox cannot read it)",
                          e->name, (unsigned long long)(gdi * s->n_gtes + i));
            continue;
        }
        uint64_t at = (uint64_t)gte * SECTOR;
        uint64_t need = s->compressed ? 12 : s->grain;
        const char *bad = at < s->min_grain  ? "inside the metadata"
                          : at + need > size ? "past the end of the file"
                          : s->n_meta && s32_in_meta(s, at, at + need)
                              ? "inside a grain table or directory"
                              : NULL;
        uint64_t slot = (at - s->min_grain) / (s->compressed ? SECTOR : s->grain);
        if (!bad && !s->compressed && (at - s->min_grain) % s->grain)
            bad = NULL; /* unaligned grains are legal, just not tracked exactly */
        if (!bad && slot < c->slots) {
            if (c->seen[slot / 8] & (1u << (slot % 8)))
                bad = "shared with another grain";
            c->seen[slot / 8] |= (uint8_t)(1u << (slot % 8));
        }
        if (!bad && c->grain) {
            /* A compressed grain is only sound if it inflates: its marker
             * and zlib stream are read here as a read of it would.  (Not
             * repairable: the data is gone.) */
            uint64_t goff = (gdi * s->n_gtes + i) * s->grain;
            if (e->ops->read_indirect(e, goff, c->grain,
                                      (size_t)min_u64(s->grain, e->size - goff)) < 0) {
                vdk_error err;
                vdk_last_error(e->disk, &err);
                check_say(c->ctx, 1, "%s", err.message);
            }
            continue;
        }
        if (!bad)
            continue;
        check_say(c->ctx, 1, "%s: grain %llu points to sector %u, %s%s", e->name,
                  (unsigned long long)(gdi * s->n_gtes + i), gte, bad,
                  c->repair ? ": entry cleared (the range reads from the parent or as zeros)" : "");
        if ((r = fix_entry(c, gt + i * 4, 0)) < 0)
            return r;
    }
    return 0;
}

/* Make the redundant tables equal the primary ones. */
static int check_redundant(struct s32_check *c, uint64_t gdi, uint32_t gde)
{
    struct extent *e = c->e;
    struct s32 *s = c->s;
    uint32_t rgde;
    int r = ext_read_u32(e, s->rgd_off + gdi * 4, &rgde);
    if (r < 0 || rgde == 0 || gde == 0)
        return r;
    if ((uint64_t)rgde * SECTOR + s->gt_bytes > ext_file_size(e)) {
        check_say(c->ctx, 1, "%s: redundant grain table %llu lies outside the file", e->name,
                  (unsigned long long)gdi);
        return 0;
    }
    unsigned differ = 0;
    for (uint64_t i = 0; i < s->n_gtes; i++) {
        uint32_t a, b;
        if ((r = ext_read_u32(e, (uint64_t)gde * SECTOR + i * 4, &a)) < 0 ||
            (r = ext_read_u32(e, (uint64_t)rgde * SECTOR + i * 4, &b)) < 0)
            return r;
        if (a == b)
            continue;
        differ++;
        if ((r = fix_entry(c, (uint64_t)rgde * SECTOR + i * 4, a)) < 0)
            return r;
    }
    if (differ)
        check_say(c->ctx, 1, "%s: redundant grain table %llu differs in %u entries%s", e->name,
                  (unsigned long long)gdi, differ,
                  c->repair ? ": copied from the primary table" : "");
    return 0;
}

int s32_check(struct extent *e, struct s32 *s, int repair, struct check_ctx *ctx)
{
    uint64_t size = ext_file_size(e);
    struct s32_check c = {.e = e, .s = s, .repair = repair, .ctx = ctx};
    c.slots =
        size > s->min_grain ? (size - s->min_grain) / (s->compressed ? SECTOR : s->grain) + 1 : 0;
    c.seen = calloc(c.slots / 8 + 1, 1);
    if (s->compressed && e->ops->read_indirect)
        c.grain = malloc(s->grain);
    if (!c.seen || (s->compressed && !c.grain)) {
        free(c.seen);
        free(c.grain);
        return -VDK_E_NOMEM;
    }
    if (s->finding[0])
        check_say(ctx, 1, "%s", s->finding);
    int r = 0;
    for (uint64_t gdi = 0; r == 0 && gdi < s->gd_entries; gdi++) {
        uint32_t gde;
        if ((r = ext_read_u32(e, s->gd_off + gdi * 4, &gde)) < 0)
            break;
        if (gde && ((uint64_t)gde * SECTOR + s->gt_bytes > size || gde < 1)) {
            check_say(ctx, 1, "%s: grain table %llu at sector %u lies outside the file%s", e->name,
                      (unsigned long long)gdi, gde,
                      repair ? ": dropped (its range reads from the parent or as zeros)" : "");
            r = fix_entry(&c, s->gd_off + gdi * 4, 0);
            continue;
        }
        if (gde)
            r = check_table(&c, gdi, gde);
        if (r == 0 && s->rgd_off)
            r = check_redundant(&c, gdi, gde);
    }
    /* grains nothing points to */
    uint64_t leaked = 0;
    if (r == 0 && !s->compressed)
        for (uint64_t i = 0; i + 1 < c.slots; i++)
            if (!(c.seen[i / 8] & (1u << (i % 8))))
                leaked++;
    if (leaked)
        check_say(ctx, 0,
                  "%s: %llu grain-sized areas after the metadata are not referenced "
                  "(leaked by an interrupted write or held by tables; harmless)",
                  e->name, (unsigned long long)leaked);
    free(c.seen);
    free(c.grain);
    return r;
}

int s32_discard(struct extent *e, struct s32 *s, uint64_t off, uint64_t len)
{
    if (s->compressed)
        return -VDK_E_UNSUPPORTED;
    for (uint64_t gi = (off + s->grain - 1) / s->grain;
         (gi + 1) * s->grain <= off + len && (gi + 1) * s->grain <= e->size; gi++) {
        pthread_mutex_lock(&s->lock);
        uint32_t gte, gde;
        int r = s32_lookup(e, s, gi, &gte, &gde);
        if (r == 0 && gde && gte)
            r = set_entry(e, s, gi, gde, 0); /* the grain is free: reads as zeros */
        pthread_mutex_unlock(&s->lock);
        if (r < 0)
            return r;
    }
    return 0;
}
