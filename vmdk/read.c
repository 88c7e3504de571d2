/* Reading a chain: find the link that answers each range, then copy it. */
#include <errno.h>
#include <stdio.h>

#include "engine.h"
#include "util.h"

struct extent *link_find_extent(struct vdk_disk *d, uint64_t off)
{
    unsigned lo = 0, hi = d->n_ext;
    while (hi - lo > 1) {
        unsigned mid = lo + (hi - lo) / 2;
        if (d->ext[mid].start <= off)
            lo = mid;
        else
            hi = mid;
    }
    return &d->ext[lo];
}

/* A read through a deep chain asks every link above the data whether it
 * holds the range; most answer "hole" for megabytes on end.  A read-only
 * link remembers the last hole it reported, so the next reads in it skip
 * the link's tables: a 64-link chain then reads nearly as fast as one
 * link.  The hint is one word (start and end in 64 KiB units) so threads
 * never see half of one; links opened for writing keep none. */
#define HINT_UNIT (64u << 10)
#define HINT_SPAN (64ull << 20) /* how far a hole is explored ahead */

static int hint_covers(struct vdk_disk *l, uint64_t off, uint64_t *end)
{
    uint64_t h = __atomic_load_n(&l->hole_hint, __ATOMIC_RELAXED);
    uint64_t lo = (h >> 32) * HINT_UNIT, hi = (h & 0xffffffffu) * HINT_UNIT;
    if (!h || off < lo || off >= hi)
        return 0;
    *end = hi;
    return 1;
}

static void hint_learn(struct vdk_disk *l, struct extent *e, uint64_t off, const struct run *r,
                       uint64_t asked)
{
    uint64_t hole_end = off + r->len;
    if (r->len == asked) {
        /* the hole may go on past what was asked: look further once */
        struct run wide;
        uint64_t span = min_u64(HINT_SPAN, e->start + e->size - off);
        if (span > asked && e->ops->status(e, off - e->start, span, &wide) == 0 &&
            wide.kind == RUN_HOLE && wide.len >= r->len && wide.len <= span)
            hole_end = off + wide.len;
    }
    uint64_t lo = (off + HINT_UNIT - 1) / HINT_UNIT, hi = hole_end / HINT_UNIT;
    if (hi > lo && hi <= 0xffffffffu)
        __atomic_store_n(&l->hole_hint, lo << 32 | hi, __ATOMIC_RELAXED);
}

int chain_resolve(struct vdk_disk *d, uint64_t off, uint64_t len, int this_link_only,
                  struct vdk_disk **link, struct extent **ext, struct run *r)
{
    uint64_t limit = len;
    for (struct vdk_disk *l = d; l; l = l->parent) {
        if (off >= l->capacity) {
            /* A parent smaller than its child reads as zeros past its end. */
            *link = l;
            *ext = NULL;
            *r = (struct run){.kind = RUN_ZERO, .len = limit};
            return 0;
        }
        uint64_t hint_end;
        int hinted = !l->writable && !this_link_only && l->parent;
        if (hinted && hint_covers(l, off, &hint_end)) {
            limit = min_u64(limit, hint_end - off);
            continue;
        }
        struct extent *e = link_find_extent(l, off);
        uint64_t n = min_u64(limit, e->start + e->size - off);
        if (e->d->access == EA_NOACCESS)
            return disk_fail(d, VDK_E_ACCESS, "%s: extent %u is NOACCESS (offset %llu)", l->name,
                             (unsigned)(e - l->ext), (unsigned long long)off);
        int rc = e->ops->status(e, off - e->start, n, r);
        if (rc < 0)
            return rc;
        if (r->len == 0 || r->len > n)
            return disk_fail(d, VDK_E_CORRUPT, "%s: internal error: bad run length",
                             e->name ? e->name : l->name);
        if (r->kind != RUN_HOLE || this_link_only || !l->parent) {
            *link = l;
            *ext = e;
            return 0;
        }
        if (hinted)
            hint_learn(l, e, off, r, n);
        limit = r->len;
    }
    return disk_fail(d, VDK_E_INVAL, "unreachable");
}

/* Append a piece to a vdk_read_vec answer, merging it with the last one
 * when they continue each other.  The last slot is kept for memory pieces,
 * which can always merge, so the answer never runs out of room. */
static int seg_add(vdk_segment *seg, unsigned max, unsigned *n, int fd, uint64_t fd_off,
                   uint64_t len)
{
    vdk_segment *last = *n ? &seg[*n - 1] : NULL;
    if (last && last->fd == fd && (fd < 0 || last->fd_off + last->len == fd_off)) {
        last->len += len;
        return 0;
    }
    if (*n + (fd >= 0) >= max)
        return -1; /* no room: the caller copies it instead */
    seg[(*n)++] = (vdk_segment){.fd = fd, .fd_off = fd_off, .len = len};
    return 0;
}

/* A data run that may be named instead of copied: its file has a
 * descriptor and holds every byte of the run (a short file is corruption,
 * which only the copying path reports). */
static int run_fd(struct extent *e, const struct run *r)
{
    return r->file_off + r->len > ext_file_size(e) ? -1 : file_fd(e->file);
}

/* Lend what the store holds in memory of a data run, one piece per pin
 * while a slot other than the last is free (as for named pieces).  Returns
 * the bytes lent, which may be fewer than the run (the caller reads the
 * rest), or a negative status; pieces lent so far stay in seg either way. */
static int64_t lend_run(struct vdk_disk *d, struct extent *e, const struct run *r, vdk_segment *seg,
                        unsigned max, unsigned *n)
{
    uint64_t lent = 0;
    while (lent < r->len && *n + 1 < max) {
        const void *mem = NULL;
        void *pin = NULL;
        uint64_t at = r->file_off + lent;
        int64_t k = e->file->ops->pin(e->file, (size_t)(r->len - lent), at, &mem, &pin);
        if (k == -EOPNOTSUPP)
            break;
        if (k < 0)
            return disk_fail(d, vdk_status_from_errno((int)k),
                             "%s: read of %llu bytes at %llu failed", e->name,
                             (unsigned long long)(r->len - lent), (unsigned long long)at);
        if (k == 0)
            return disk_fail(d, VDK_E_CORRUPT, "%s: data at %llu lies past the end of the file",
                             e->name, (unsigned long long)at);
        uint64_t got = min_u64((uint64_t)k, r->len - lent);
        seg[(*n)++] =
            (vdk_segment){.fd = VDK_SEG_LENT, .len = got, .mem = mem, .hold = {e->file, pin}};
        lent += got;
    }
    return (int64_t)lent;
}

/* Read [off, off+len) into buf, or with seg, describe what sits in files
 * (and with lend, in a store's memory) and read only the rest. */
static int64_t read_runs(struct vdk_disk *d, void *buf, size_t len, uint64_t off, vdk_segment *seg,
                         unsigned max, unsigned *n_seg, int lend)
{
    if (off >= d->capacity)
        return 0;
    if (len > d->capacity - off)
        len = (size_t)(d->capacity - off);
    size_t done = 0;
    while (done < len) {
        struct vdk_disk *l = NULL;
        struct extent *e = NULL;
        struct run r = {0};
        int rc = chain_resolve(d, off + done, len - done, 0, &l, &e, &r);
        if (rc < 0)
            return rc;
        size_t n = (size_t)r.len;
        int fd = seg && r.kind == RUN_DATA ? run_fd(e, &r) : -1;
        if (fd >= 0 && seg_add(seg, max, n_seg, fd, r.file_off, n) == 0) {
            done += n;
            continue;
        }
        if (lend && fd < 0 && r.kind == RUN_DATA && file_can_lend(e->file)) {
            int64_t lent = lend_run(d, e, &r, seg, max, n_seg);
            if (lent < 0)
                return lent;
            done += (size_t)lent;
            n -= (size_t)lent;
            r.file_off += (uint64_t)lent;
            if (!n)
                continue;
        }
        char *p = (char *)buf + done;
        if (r.kind == RUN_DATA) {
            int64_t got = e->file->ops->pread(e->file, p, n, r.file_off);
            if (got < 0)
                return disk_fail(d, vdk_status_from_errno((int)got),
                                 "%s: read of %zu bytes "
                                 "at %llu failed",
                                 e->name, n, (unsigned long long)r.file_off);
            if ((size_t)got != n)
                return disk_fail(d, VDK_E_CORRUPT,
                                 "%s: data at %llu lies past the end of "
                                 "the file",
                                 e->name, (unsigned long long)r.file_off);
        } else if (r.kind == RUN_INDIRECT) {
            rc = e->ops->read_indirect(e, off + done - e->start, p, n);
            if (rc < 0)
                return rc;
        } else {
            memset(p, 0, n);
        }
        if (seg)
            seg_add(seg, max, n_seg, -1, 0, n);
        done += n;
    }
    return (int64_t)done;
}

int64_t chain_read(struct vdk_disk *d, void *buf, size_t len, uint64_t off)
{
    return read_runs(d, buf, len, off, NULL, 0, NULL, 0);
}

int chain_read_vec(struct vdk_disk *d, void *buf, size_t len, uint64_t off, vdk_segment *seg,
                   unsigned max, int lend)
{
    if (max == 0)
        return disk_fail(d, VDK_E_INVAL, "vdk_read_vec needs room for one piece");
    unsigned n = 0;
    int64_t got = read_runs(d, buf, len, off, seg, max, &n, lend);
    if (got < 0)
        chain_release(seg, (int)n);
    return got < 0 ? (int)got : (int)n;
}

void chain_release(vdk_segment *seg, int n)
{
    for (int i = 0; i < n; i++)
        if (seg[i].fd == VDK_SEG_LENT) {
            vdk_file *f = seg[i].hold[0];
            f->ops->unpin(f, seg[i].hold[1]);
            seg[i].fd = -1; /* released once, however often asked */
            seg[i].mem = NULL;
        }
}
