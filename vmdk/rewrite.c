/* Rewriting a link's sparse extents compactly (shrink, defragment): each
 * extent is copied, grains in guest order, into a new file beside it, which
 * then replaces the old one by rename.  Until that rename the old file is
 * untouched, so an interruption costs nothing but a leftover temp file. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "create.h"
#include "engine.h"
#include "util.h"

#define CHUNK (1u << 20)

struct copy {
    struct vdk_disk *src, *dst;
    uint64_t base; /* the extent's start in the disk */
    unsigned char *buf;
    uint64_t done, total;
    vdk_progress_cb cb;
    void *arg;
    vdk_error *err;
};

static int copy_range(void *arg, const vdk_range *rg)
{
    struct copy *c = arg;
    if (rg->kind != VDK_RANGE_HOLE) {
        for (uint64_t pos = rg->offset; pos < rg->offset + rg->length;) {
            size_t n = (size_t)min_u64(CHUNK, rg->offset + rg->length - pos);
            if (rg->kind == VDK_RANGE_ZERO) {
                memset(c->buf, 0, n);
            } else {
                int64_t got = chain_read(c->src, c->buf, n, pos);
                if (got != (int64_t)n) {
                    vdk_error e;
                    vdk_last_error(c->src, &e);
                    return vdk_fail(c->err, got < 0 ? (int)got : VDK_E_IO, "%s", e.message);
                }
            }
            int64_t w = chain_write(c->dst, c->buf, n, pos - c->base);
            if (w < 0) {
                vdk_error e;
                vdk_last_error(c->dst, &e);
                return vdk_fail(c->err, (int)w, "%s", e.message);
            }
            pos += n;
        }
    }
    c->done += rg->length;
    if (c->cb && c->cb(c->arg, c->done, c->total))
        return vdk_fail(c->err, VDK_E_INVAL, "cancelled (the disk is unchanged)");
    return 0;
}

/* The old file's cached pages are freed when its last handle closes after
 * the rename: about 0.4 s of CPU per GiB cached, spent after everything
 * else.  Dropping them while the new file's final flush waits on the disk
 * hides that.  Only a hint; if the rename then fails the file is intact
 * and merely uncached. */
struct dropper {
    pthread_t thread;
    int fd, running;
};

static void *drop_pages(void *arg)
{
    const struct dropper *d = arg;
    (void)posix_fadvise(d->fd, 0, 0, POSIX_FADV_DONTNEED);
    return NULL;
}

static void drop_start(struct dropper *d, vdk_file *f)
{
    d->fd = file_fd(f);
    d->running = d->fd >= 0 && pthread_create(&d->thread, NULL, drop_pages, d) == 0;
}

static void drop_wait(struct dropper *d)
{
    if (d->running)
        pthread_join(d->thread, NULL);
    d->running = 0;
}

static int format_of(const struct extent *e)
{
    return e->ops == &extent_cowd_ops       ? FMT_COWD
           : e->ops == &extent_sesparse_ops ? FMT_SESPARSE
                                            : FMT_KDMV;
}

static int rewrite_extent(struct vdk_disk *l, struct extent *e, struct copy *c, uint64_t *saved)
{
    char tmp[VDK_NAME_MAX + 16], dir[VDK_NAME_MAX];
    snprintf(tmp, sizeof(tmp), "%s.vdk-tmp", e->name);
    l->store->ops->unlink(l->store, tmp); /* left by an interrupted run */
    char *desc = NULL;
    if (e->file == l->desc_file && l->desc_room && !(desc = desc_format(l->desc)))
        return vdk_fail(c->err, VDK_E_NOMEM, "out of memory");
    int r = create_extent_file(l->store, tmp, format_of(e), e->d->sectors, desc,
                               l->desc->parent_hint, c->err);
    free(desc);
    if (r < 0)
        return r;
    struct vdk_disk *t = NULL;
    r = chain_open(l->store, tmp, VDK_OPEN_SINGLE_LINK | VDK_OPEN_IGNORE_CID, &t, c->err);
    if (r == 0) {
        t->cid_changed = 1;                /* same content: same CID */
        t->keep_zeros = l->parent != NULL; /* zeros hide the parent */
        c->dst = t;
        c->base = e->start;
        r = vdk_map(l, e->start, e->size, VDK_MAP_THIS_LINK, copy_range, c);
        struct dropper drop = {.running = 0};
        if (r == 0)
            drop_start(&drop, e->file);
        int cr = chain_close_checked(t);
        drop_wait(&drop);
        if (r == 0 && cr < 0)
            r = vdk_fail(c->err, cr, "%s: closing failed", tmp);
    }
    struct vdk_stat before, after;
    if (r == 0 && l->store->ops->stat(l->store, e->name, &before) == 0 &&
        l->store->ops->stat(l->store, tmp, &after) == 0 && before.size > after.size)
        *saved += before.size - after.size;
    if (r == 0) {
        int e2 = l->store->ops->rename(l->store, tmp, e->name);
        const char *slash = strrchr(e->name, '/');
        snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - e->name) : 0, e->name);
        if (e2 == 0)
            e2 = l->store->ops->sync_dir(l->store, dir);
        if (e2 < 0)
            r = vdk_fail(c->err, vdk_status_from_errno(e2), "replacing %s: %s", e->name,
                         strerror(-e2));
    }
    if (r < 0)
        l->store->ops->unlink(l->store, tmp);
    return r;
}

int link_rewrite(vdk_store *st, const char *name, vdk_progress_cb cb, void *arg, uint64_t *saved,
                 vdk_error *err)
{
    struct vdk_disk *l;
    int r = chain_open(st, name, VDK_OPEN_RDONLY | VDK_OPEN_IGNORE_CID, &l, err);
    if (r < 0)
        return r;
    struct copy c = {.src = l, .total = l->capacity, .cb = cb, .arg = arg, .err = err};
    c.buf = malloc(CHUNK);
    if (!c.buf)
        r = vdk_fail(err, VDK_E_NOMEM, "out of memory");
    *saved = 0;
    for (unsigned i = 0; r == 0 && i < l->n_ext; i++) {
        struct extent *e = &l->ext[i];
        if (e->ops == &extent_flat_ops || e->ops == &extent_zero_ops) {
            c.done += e->size;
            continue; /* nothing to compact */
        }
        if (!strcmp(e->format, "stream-optimized"))
            r = vdk_fail(err, VDK_E_UNSUPPORTED,
                         "%s: streamOptimized disks are already "
                         "compact; clone them to change their layout",
                         e->name);
        else
            r = rewrite_extent(l, e, &c, saved);
    }
    free(c.buf);
    chain_close(l);
    return r;
}
