/* libvdk operations that make disks: create, create child, clone, metadata. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../vmdk/create.h"
#include "../vmdk/util.h"

static const struct {
    const char *name, *ddb;
    int min_hw;
} adapters[] = {
    {"ide", "ide", 4},
    {"buslogic", "buslogic", 4},
    {"lsilogic", "lsilogic", 4},
    {"lsilogicsas", "lsisas1068", 7},
    {"lsisas1068", "lsisas1068", 7},
    {"pvscsi", "pvscsi", 7},
    {"legacyESX", "legacyESX", 4},
};

static int fill_new_disk(const vdk_create_params *p, struct new_disk *nd, vdk_error *err)
{
    const char *type = p->type ? p->type : "monolithicSparse";
    nd->type = create_find_type(type);
    if (!nd->type)
        return vdk_fail(err, VDK_E_UNSUPPORTED,
                        "cannot create disks of type '%s' (try "
                        "monolithicSparse, monolithicFlat, twoGbMaxExtentSparse, "
                        "twoGbMaxExtentFlat, streamOptimized, vmfs, vmfsThin)",
                        type);
    if (p->capacity % SECTOR)
        return vdk_fail(err, VDK_E_INVAL, "capacity %llu is not a multiple of 512 bytes",
                        (unsigned long long)p->capacity);
    nd->sectors = p->capacity / SECTOR;
    const char *a = p->adapter ? p->adapter : "ide";
    int min_hw = 0;
    nd->adapter = NULL;
    for (size_t i = 0; i < sizeof(adapters) / sizeof(*adapters); i++) {
        if (!strcasecmp(a, adapters[i].name)) {
            nd->adapter = adapters[i].ddb;
            min_hw = adapters[i].min_hw;
        }
    }
    if (!nd->adapter)
        return vdk_fail(err, VDK_E_INVAL,
                        "unknown adapter '%s' (ide, buslogic, lsilogic, "
                        "lsilogicsas, pvscsi)",
                        a);
    nd->hw_version = p->hw_version ? p->hw_version : min_hw;
    if (nd->hw_version < min_hw || nd->hw_version > 99)
        return vdk_fail(err, VDK_E_INVAL,
                        "hardware version %d: the %s adapter needs %d or "
                        "later (up to 99)",
                        nd->hw_version, a, min_hw);
    return 0;
}

int vdk_create(vdk_store *store, const char *name, const vdk_create_params *p, vdk_error *err)
{
    struct new_disk nd = {0};
    int r = fill_new_disk(p, &nd, err);
    if (r == 0 && nd.type->needs_parent)
        r = vdk_fail(err, VDK_E_INVAL,
                     "%s disks are redo logs: create them as children of "
                     "a parent (vdk child)",
                     nd.type->name);
    return r < 0 ? r : create_disk(store, name, &nd, err);
}

/* Split a local path into a store (its folder) and a name. */
static int local_store_for(const char *path, vdk_store **st, const char **base, vdk_error *err)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (!**base)
        return vdk_fail(err, VDK_E_INVAL, "%s: names a folder, not a disk", path);
    snprintf(dir, sizeof(dir), "%.*s", slash ? (slash == path ? 1 : (int)(slash - path)) : 1,
             slash ? path : ".");
    int r = vdk_store_local_new(dir, st);
    return r < 0 ? vdk_fail(err, vdk_status_from_errno(r), "%s: %s", dir, strerror(-r)) : 0;
}

int vdk_create_path(const char *path, const vdk_create_params *p, vdk_error *err)
{
    vdk_store *st;
    const char *base;
    int r = local_store_for(path, &st, &base, err);
    if (r < 0)
        return r;
    r = vdk_create(st, base, p, err);
    st->ops->destroy(st);
    return r;
}

/* "vm/disk-000003.vmdk" -> stem "vm/disk" (VMware numbers every link of a
 * chain after its base). */
static size_t child_stem(const char *name)
{
    size_t n = strlen(name);
    if (n > 5 && !strcasecmp(name + n - 5, ".vmdk"))
        n -= 5;
    if (n > 7 && name[n - 7] == '-' && strspn(name + n - 6, "0123456789") >= 6)
        n -= 7;
    return n;
}

int vdk_create_child(vdk_disk *parent, const char *name, const char *type, char *chosen,
                     vdk_error *err)
{
    struct new_disk nd = {0};
    nd.type = create_find_type(type ? type : "monolithicSparse");
    if (!nd.type || !nd.type->can_be_child)
        return vdk_fail(err, VDK_E_UNSUPPORTED,
                        "a child can be monolithicSparse, "
                        "twoGbMaxExtentSparse, vmfsSparse or seSparse, not '%s'",
                        type);
    char auto_name[VDK_NAME_MAX], hint[VDK_NAME_MAX];
    if (!name) {
        size_t stem = child_stem(parent->name);
        struct vdk_stat st;
        for (unsigned i = 1; i < 1000000; i++) {
            snprintf(auto_name, sizeof(auto_name), "%.*s-%06u.vmdk", (int)stem, parent->name, i);
            if (parent->store->ops->stat(parent->store, auto_name, &st) == -ENOENT)
                break;
        }
        name = auto_name;
    }
    if (vdk_name_relative(name, parent->name, hint, sizeof(hint)) < 0)
        return vdk_fail(err, VDK_E_INVAL, "%s: name too long", name);
    const char *ad = desc_get(parent->desc, "ddb.adapterType");
    nd.adapter = ad ? ad : "ide";
    const char *hw = desc_get(parent->desc, "ddb.virtualHWVersion");
    nd.hw_version = hw ? atoi(hw) : 4;
    nd.sectors = parent->capacity / SECTOR;
    nd.parent_hint = hint;
    nd.parent_cid = parent->desc->cid;
    int r = create_disk(parent->store, name, &nd, err);
    if (r == 0 && chosen)
        snprintf(chosen, VDK_NAME_MAX, "%s", name);
    return r;
}

int vdk_meta_set(vdk_disk *d, const char *key, const char *value, vdk_error *err)
{
    if (!d->writable)
        return vdk_fail(err, VDK_E_RDONLY, "%s: opened read-only", d->name);
    char full[256];
    if (!key || !*key || snprintf(full, sizeof(full), "ddb.%s", key) >= (int)sizeof(full))
        return vdk_fail(err, VDK_E_INVAL, "bad key name");
    pthread_mutex_lock(&d->meta_lock);
    int r = desc_set(d->desc, full, value, err);
    if (r == 0)
        r = link_write_descriptor(d, err);
    pthread_mutex_unlock(&d->meta_lock);
    return r;
}

/* ---- clone ---- */

struct clone {
    vdk_disk *src, *dst;
    struct stream_w *sw;
    unsigned char *buf;
    uint64_t done, total;
    uint64_t next_grain; /* grains before it are copied */
    vdk_progress_cb cb;
    void *arg;
    vdk_error *err;
};

#define CLONE_CHUNK (1u << 20)

static int src_fail(struct clone *c, int r)
{
    vdk_error e;
    vdk_last_error(c->src, &e);
    return vdk_fail(c->err, r, "reading %s: %s", c->src->name, e.message);
}

static int progress(struct clone *c, uint64_t done)
{
    if (done > c->done)
        c->done = done;
    if (c->cb && c->cb(c->arg, c->done, c->total))
        return vdk_fail(c->err, VDK_E_INVAL, "cancelled");
    return 0;
}

static int put_grain(struct clone *c, uint64_t gi, size_t k, unsigned char *g)
{
    if (c->sw) {
        memset(g + k, 0, STREAM_GRAIN - k);
        return stream_put(c->sw, gi, g, c->err);
    }
    int64_t w = vdk_write(c->dst, g, k, gi * STREAM_GRAIN);
    if (w < 0) {
        vdk_error e;
        vdk_last_error(c->dst, &e);
        return vdk_fail(c->err, (int)w, "%s", e.message);
    }
    return 0;
}

/* Copy the grains a data range touches (each grain once, in order),
 * skipping all-zero ones. */
static int clone_range(void *arg, const vdk_range *rg)
{
    struct clone *c = arg;
    uint64_t end = rg->offset + rg->length;
    if (rg->kind != VDK_RANGE_DATA)
        return progress(c, end);
    uint64_t g0 = rg->offset / STREAM_GRAIN;
    if (g0 < c->next_grain)
        g0 = c->next_grain;
    uint64_t g1 = (end + STREAM_GRAIN - 1) / STREAM_GRAIN;
    for (uint64_t gi = g0; gi < g1;) {
        uint64_t n_grains = min_u64(g1 - gi, CLONE_CHUNK / STREAM_GRAIN);
        uint64_t pos = gi * STREAM_GRAIN;
        size_t n = (size_t)min_u64(n_grains * STREAM_GRAIN, c->src->capacity - pos);
        int64_t got = vdk_read(c->src, c->buf, n, pos);
        if (got < 0)
            return src_fail(c, (int)got);
        for (uint64_t i = 0; i < n_grains; i++) {
            size_t k = (size_t)min_u64(STREAM_GRAIN, n - i * STREAM_GRAIN);
            unsigned char *g = c->buf + i * STREAM_GRAIN;
            int r = vdk_all_zero(g, k) ? 0 : put_grain(c, gi + i, k, g);
            if (r < 0)
                return r;
        }
        gi += n_grains;
        c->next_grain = gi;
        int r = progress(c, min_u64(gi * STREAM_GRAIN, c->total));
        if (r < 0)
            return r;
    }
    return 0;
}

int vdk_clone(vdk_disk *src, vdk_store *store, const char *name, const vdk_create_params *p,
              vdk_progress_cb cb, void *arg, vdk_error *err)
{
    vdk_create_params q = *p;
    if (!q.capacity)
        q.capacity = src->capacity;
    const char *ad = desc_get(src->desc, "ddb.adapterType");
    if (!q.adapter && ad && strcmp(ad, "legacyESX"))
        q.adapter = ad;
    if (q.capacity < src->capacity)
        return vdk_fail(err, VDK_E_RANGE, "the new disk would be smaller than %s", src->name);
    struct new_disk nd = {0};
    int r = fill_new_disk(&q, &nd, err);
    if (r < 0)
        return r;
    struct clone c = {.src = src, .total = src->capacity, .cb = cb, .arg = arg, .err = err};
    int created = 0;
    c.buf = malloc(CLONE_CHUNK + STREAM_GRAIN);
    if (!c.buf)
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    if (nd.type->layout == LAY_STREAM) {
        r = stream_open(store, name, &nd, &c.sw, err);
    } else {
        r = vdk_create(store, name, &q, err);
        created = r == 0;
        if (r == 0)
            r = vdk_open_store(store, name, 0, &c.dst, err);
    }
    if (r == 0)
        r = vdk_map(src, 0, src->capacity, 0, clone_range, &c);
    if (r < 0 && err && !err->message[0])
        src_fail(&c, r);
    if (c.sw) {
        int fr = stream_finish(c.sw, r < 0, err);
        r = r < 0 ? r : fr;
    }
    if (c.dst) {
        int cr = vdk_close(c.dst);
        if (r == 0 && cr < 0)
            r = vdk_fail(err, cr, "%s: closing failed", name);
    }
    if (r < 0 && created) {
        /* remove what was created: reopen to learn its files */
        vdk_disk *d;
        if (vdk_open_store(store, name, VDK_OPEN_RDONLY | VDK_OPEN_SINGLE_LINK, &d, NULL) == 0) {
            char files[64][VDK_NAME_MAX];
            unsigned n = 0;
            for (unsigned i = 0; i < d->n_ext && n < 64; i++)
                if (d->ext[i].name && strcmp(d->ext[i].name, name))
                    snprintf(files[n++], VDK_NAME_MAX, "%s", d->ext[i].name);
            vdk_close(d);
            for (unsigned i = 0; i < n; i++)
                store->ops->unlink(store, files[i]);
            store->ops->unlink(store, name);
        }
    }
    free(c.buf);
    return r;
}

/* ---- space needed for a clone ---- */

/* g[0]: grains touched by data; g[1]: one past the last grain counted. */
static int count_grains(void *arg, const vdk_range *r)
{
    uint64_t *g = arg;
    if (r->kind == VDK_RANGE_DATA) {
        uint64_t first = r->offset / STREAM_GRAIN;
        uint64_t end = (r->offset + r->length + STREAM_GRAIN - 1) / STREAM_GRAIN;
        if (first < g[1])
            first = g[1];
        if (end > first)
            g[0] += end - first;
        if (end > g[1])
            g[1] = end;
    }
    return 0;
}

int vdk_space_for_clone(vdk_disk *src, const char *type, uint64_t *bytes, vdk_error *err)
{
    const struct disk_type *t = create_find_type(type ? type : "monolithicSparse");
    if (!t || t->needs_parent)
        return vdk_fail(err, VDK_E_UNSUPPORTED, "cannot clone to type '%s'", type);
    uint64_t cap = src->capacity, desc = 4096;
    if (t->layout == LAY_MONO_FLAT || t->layout == LAY_SPLIT_FLAT || t->layout == LAY_VMFS) {
        *bytes = cap + desc;
        return 0;
    }
    /* sparse: every grain holding data, plus the tables (both copies) */
    uint64_t g[2] = {0, 0};
    int r = vdk_map(src, 0, cap, 0, count_grains, g);
    if (r < 0) {
        vdk_error e;
        vdk_last_error(src, &e);
        return vdk_fail(err, r, "%s", e.message);
    }
    uint64_t grains = (cap + STREAM_GRAIN - 1) / STREAM_GRAIN;
    uint64_t tables = (grains + 511) / 512;
    uint64_t meta = 2 * (tables * 2048 + (tables * 4 + SECTOR - 1) / SECTOR * SECTOR) + 65536;
    uint64_t extents = t->layout == LAY_SPLIT_SPARSE ? cap / (2047ull << 20) + 1 : 1;
    /* compressed grains are no bigger than raw ones plus a marker */
    uint64_t per = STREAM_GRAIN + (t->layout == LAY_STREAM ? SECTOR : 0);
    *bytes = g[0] * per + meta + extents * 65536 + desc;
    return 0;
}
