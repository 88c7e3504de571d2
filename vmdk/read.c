/* Reading a chain: find the link that answers each range, then copy it. */
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
        limit = r->len;
    }
    return disk_fail(d, VDK_E_INVAL, "unreachable");
}

int64_t chain_read(struct vdk_disk *d, void *buf, size_t len, uint64_t off)
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
        char *p = (char *)buf + done;
        size_t n = (size_t)r.len;
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
        done += n;
    }
    return (int64_t)done;
}
