/* vdk check: verify a link's structures and, on request, repair them. */
#include <stdio.h>

#include "engine.h"
#include "sparse32.h"
#include "util.h"

void check_say(struct check_ctx *c, int serious, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (serious)
        c->problems++;
    if (c->cb)
        c->cb(c->arg, line);
}

static int on_range(void *arg, const vdk_range *r)
{
    return 0;
}

int link_check(struct vdk_disk *d, int repair, struct check_ctx *ctx)
{
    if (repair && !d->writable)
        return disk_fail(d, VDK_E_RDONLY, "%s: open it for writing to repair", d->name);
    for (struct vdk_disk *l = d; l->parent; l = l->parent)
        if (l->desc->parent_cid != l->parent->desc->cid)
            check_say(ctx, 1,
                      "%s: parentCID %08x does not match CID %08x of %s (the parent "
                      "changed after this child was made; not repairable here)",
                      l->name, l->desc->parent_cid, l->parent->desc->cid, l->parent->name);
    for (unsigned i = 0; i < d->n_ext; i++) {
        struct extent *e = &d->ext[i];
        int r;
        if (e->ops == &extent_sesparse_ops)
            r = se_check(e, repair, ctx);
        else if (e->ops == &extent_kdmv_ops || e->ops == &extent_cowd_ops)
            /* both drivers keep their tables first in their private data */
            r = s32_check(e, e->priv, repair, ctx);
        else
            continue;
        if (r < 0) {
            vdk_error err;
            vdk_last_error(d, &err);
            check_say(ctx, 1, "%s: %s", e->name, err.message);
        }
    }
    /* every remaining lookup must resolve */
    int r = vdk_map(d, 0, d->capacity, VDK_MAP_THIS_LINK, on_range, NULL);
    if (r < 0) {
        vdk_error err;
        vdk_last_error(d, &err);
        check_say(ctx, 1, "%s", err.message);
    }
    if (d->unclean) {
        check_say(ctx, 1, "%s: was not closed cleanly (uncleanShutdown set)%s", d->name,
                  repair ? ": cleared" : "");
        if (repair) {
            ctx->repaired++;
            d->unclean = 0; /* the clean close lowers the mark */
        }
    }
    if (repair && (r = chain_flush(d)) < 0)
        return r;
    return 0;
}
