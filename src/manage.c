/* libvdk operations on existing disks: attach, commit, unlink. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../vmdk/create.h"
#include "../vmdk/engine.h"
#include "../vmdk/util.h"

/* Point link d (open for writing) at parent p: hint and parentCID. */
static int set_parent(struct vdk_disk *d, const char *parent_name, uint32_t cid, vdk_error *err)
{
    char hint[VDK_NAME_MAX], v[16];
    if (vdk_name_relative(d->name, parent_name, hint, sizeof(hint)) < 0)
        return vdk_fail(err, VDK_E_INVAL, "%s: name too long", parent_name);
    snprintf(v, sizeof(v), "%08x", cid);
    pthread_mutex_lock(&d->meta_lock);
    int r = desc_set(d->desc, "parentFileNameHint", hint, err);
    if (r == 0)
        r = desc_set(d->desc, "parentCID", v, err);
    if (r == 0)
        r = link_write_descriptor(d, err);
    pthread_mutex_unlock(&d->meta_lock);
    return r;
}

static int open_link_rw(vdk_store *st, const char *name, vdk_disk **d, vdk_error *err)
{
    return vdk_open_store(st, name, VDK_OPEN_SINGLE_LINK | VDK_OPEN_IGNORE_CID, d, err);
}

int vdk_attach(vdk_store *st, const char *child, const char *parent, int force, vdk_error *err)
{
    vdk_disk *p = NULL, *c = NULL;
    int r = vdk_open_store(st, parent, VDK_OPEN_RDONLY, &p, err);
    if (r == 0)
        r = open_link_rw(st, child, &c, err);
    if (r == 0 && !strcmp(c->name, p->name))
        r = vdk_fail(err, VDK_E_CHAIN, "%s cannot be its own parent", child);
    for (struct vdk_disk *l = p; r == 0 && l; l = l->parent)
        if (!strcmp(l->name, c->name))
            r = vdk_fail(err, VDK_E_CHAIN, "%s is below %s in its chain: that would loop", child,
                         parent);
    if (r == 0 && c->capacity != p->capacity)
        r = vdk_fail(err, VDK_E_RANGE,
                     "%s holds %llu bytes, %s %llu: a child and its parent "
                     "must be the same size",
                     child, (unsigned long long)c->capacity, parent,
                     (unsigned long long)p->capacity);
    /* A child records its parent's content id: a different one means the
     * child was not made from this content, and reading through would mix
     * two disks. */
    if (r == 0 && !force && c->desc->parent_cid != p->desc->cid)
        r = vdk_fail(err, VDK_E_CID_MISMATCH,
                     "%s was made from content %08x, %s holds %08x "
                     "(use --force if you know they match)",
                     child, c->desc->parent_cid, parent, p->desc->cid);
    if (r == 0)
        r = set_parent(c, p->name, p->desc->cid, err);
    if (c) {
        int cr = vdk_close(c);
        if (r == 0 && cr < 0)
            r = vdk_fail(err, cr, "%s: closing failed", child);
    }
    vdk_close(p);
    return r;
}

/* Disks in 'dir' whose parent is 'name' (names into out, count returned). */
struct kids {
    vdk_store *st;
    const char *dir, *name;
    char (*out)[VDK_NAME_MAX];
    unsigned n, max;
};

static int find_kid(void *arg, const char *entry, const struct vdk_stat *sb)
{
    struct kids *k = arg;
    size_t l = strlen(entry);
    if (sb->is_dir || l <= 5 || strcasecmp(entry + l - 5, ".vmdk"))
        return 0;
    char full[VDK_NAME_MAX];
    snprintf(full, sizeof(full), "%s%s%s", k->dir, *k->dir ? "/" : "", entry);
    vdk_disk *d;
    if (!strcmp(full, k->name) ||
        vdk_open_store(k->st, full, VDK_OPEN_RDONLY | VDK_OPEN_SINGLE_LINK | VDK_OPEN_IGNORE_CID,
                       &d, NULL) < 0)
        return 0;
    vdk_info info;
    vdk_get_info(d, &info);
    vdk_close(d);
    if (!strcmp(info.parent_name, k->name) && k->n < k->max)
        snprintf(k->out[k->n++], VDK_NAME_MAX, "%s", full);
    return 0;
}

static unsigned children_of(vdk_store *st, const char *name, char (*out)[VDK_NAME_MAX],
                            unsigned max)
{
    char dir[VDK_NAME_MAX];
    const char *slash = strrchr(name, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - name) : 0, name);
    struct kids k = {st, dir, name, out, 0, max};
    st->ops->list(st, dir, find_kid, &k);
    return k.n;
}

/* The files of a link: extents first, the descriptor last. */
static unsigned files_of(vdk_store *st, const char *name, char (*out)[VDK_NAME_MAX], unsigned max)
{
    vdk_disk *d;
    unsigned n = 0;
    if (vdk_open_store(st, name, VDK_OPEN_RDONLY | VDK_OPEN_SINGLE_LINK | VDK_OPEN_IGNORE_CID, &d,
                       NULL) == 0) {
        for (unsigned i = 0; i < d->n_ext && n + 2 < max; i++)
            if (d->ext[i].name && strcmp(d->ext[i].name, name))
                snprintf(out[n++], VDK_NAME_MAX, "%s", d->ext[i].name);
        /* the change tracking file belongs to the disk too */
        const char *ctk = desc_get(d->desc, "changeTrackPath");
        if (ctk && vdk_name_join(name, ctk, out[n], VDK_NAME_MAX) == 0)
            n++;
        vdk_close(d);
    }
    snprintf(out[n++], VDK_NAME_MAX, "%s", name);
    return n;
}

#define MAX_FILES 4096

int vdk_unlink(vdk_store *st, const char *name, int force, vdk_error *err)
{
    char(*list)[VDK_NAME_MAX] = calloc(MAX_FILES, VDK_NAME_MAX);
    if (!list)
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    struct vdk_stat sb;
    int r = st->ops->stat(st, name, &sb);
    if (r < 0)
        r = vdk_fail(err, vdk_status_from_errno(r), "%s: %s", name, strerror(-r));
    unsigned kids = r == 0 ? children_of(st, name, list, 1) : 0;
    if (r == 0 && kids && !force)
        r = vdk_fail(err, VDK_E_EXISTS,
                     "%s is the parent of %s: removing it would orphan that "
                     "child (use --force)",
                     name, list[0]);
    if (r == 0) {
        unsigned n = files_of(st, name, list, MAX_FILES);
        /* the descriptor first: the disk is gone at once, not half-gone */
        int e = st->ops->unlink(st, list[n - 1]);
        if (e < 0)
            r = vdk_fail(err, vdk_status_from_errno(e), "%s: %s", list[n - 1], strerror(-e));
        for (unsigned i = 0; r == 0 && i + 1 < n; i++)
            st->ops->unlink(st, list[i]);
    }
    free(list);
    return r;
}

struct merge {
    vdk_disk *child, *parent;
    unsigned char *buf;
    uint64_t done, total;
    vdk_progress_cb cb;
    void *arg;
    vdk_error *err;
};

#define MERGE_CHUNK (1u << 20)

/* Copy what the child link itself holds into the parent. */
static int merge_range(void *arg, const vdk_range *rg)
{
    struct merge *m = arg;
    if (rg->kind != VDK_RANGE_HOLE) {
        for (uint64_t pos = rg->offset; pos < rg->offset + rg->length;) {
            size_t n = (size_t)min_u64(MERGE_CHUNK, rg->offset + rg->length - pos);
            int64_t got =
                rg->kind == VDK_RANGE_ZERO ? (int64_t)n : vdk_read(m->child, m->buf, n, pos);
            if (rg->kind == VDK_RANGE_ZERO)
                memset(m->buf, 0, n);
            if (got != (int64_t)n) {
                vdk_error e;
                vdk_last_error(m->child, &e);
                return vdk_fail(m->err, got < 0 ? (int)got : VDK_E_IO, "%s", e.message);
            }
            int64_t w = vdk_write(m->parent, m->buf, n, pos);
            if (w < 0) {
                vdk_error e;
                vdk_last_error(m->parent, &e);
                return vdk_fail(m->err, (int)w, "%s", e.message);
            }
            pos += n;
            if (m->cb && m->cb(m->arg, pos, m->total))
                return vdk_fail(m->err, VDK_E_INVAL,
                                "cancelled (the parent holds part of the "
                                "child's data; both still read correctly)");
        }
    }
    return 0;
}

/* Merge link 'name' into its parent, re-point its children, remove it. */
static int commit_one(vdk_store *st, const char *name, char *parent_out, vdk_progress_cb cb,
                      void *arg, vdk_error *err)
{
    vdk_disk *c = NULL, *p = NULL;
    char(*kids)[VDK_NAME_MAX] = calloc(256, VDK_NAME_MAX);
    if (!kids)
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    int r = vdk_open_store(st, name, 0, &c, err);
    if (r == 0 && !c->parent)
        r = vdk_fail(err, VDK_E_INVAL, "%s has no parent to commit into", name);
    char pname[VDK_NAME_MAX] = "";
    if (r == 0) {
        snprintf(pname, sizeof(pname), "%s", c->parent->name);
        char(*sib)[VDK_NAME_MAX] = kids;
        unsigned n = children_of(st, pname, sib, 256);
        for (unsigned i = 0; r == 0 && i < n; i++)
            if (strcmp(sib[i], name))
                r = vdk_fail(err, VDK_E_EXISTS,
                             "%s has another child, %s, which would no "
                             "longer read as it was made: not committing",
                             pname, sib[i]);
    }
    if (r == 0)
        r = vdk_open_store(st, pname, 0, &p, err);
    /* The parent keeps its CID: the only link made from it is the one being
     * merged (others are refused above), and the child's view does not
     * change at any point of the merge, so an interruption leaves both links
     * readable and consistent. */
    if (r == 0)
        p->cid_changed = 1;
    if (r == 0) {
        struct merge m = {
            .child = c, .parent = p, .total = c->capacity, .cb = cb, .arg = arg, .err = err};
        m.buf = malloc(MERGE_CHUNK);
        r = m.buf ? vdk_map(c, 0, c->capacity, VDK_MAP_THIS_LINK, merge_range, &m)
                  : vdk_fail(err, VDK_E_NOMEM, "out of memory");
        free(m.buf);
    }
    if (r == 0 && vdk_flush(p) < 0)
        r = vdk_fail(err, VDK_E_IO, "%s: flush failed", pname);
    uint32_t pcid = p ? p->desc->cid : 0;
    if (p && vdk_close(p) < 0 && r == 0)
        r = vdk_fail(err, VDK_E_IO, "%s: closing failed", pname);
    if (c)
        vdk_close(c);
    /* grandchildren now hang off the parent */
    unsigned n = r == 0 ? children_of(st, name, kids, 256) : 0;
    for (unsigned i = 0; r == 0 && i < n; i++) {
        vdk_disk *g;
        r = open_link_rw(st, kids[i], &g, err);
        if (r == 0) {
            r = set_parent(g, pname, pcid, err);
            vdk_close(g);
        }
    }
    if (r == 0)
        r = vdk_unlink(st, name, 1, err);
    if (r == 0 && parent_out)
        snprintf(parent_out, VDK_NAME_MAX, "%s", pname);
    free(kids);
    return r;
}

int vdk_commit(vdk_store *st, const char *name, int all, vdk_progress_cb cb, void *arg,
               vdk_error *err)
{
    char cur[VDK_NAME_MAX], parent[VDK_NAME_MAX];
    snprintf(cur, sizeof(cur), "%s", name);
    for (;;) {
        int r = commit_one(st, cur, parent, cb, arg, err);
        if (r < 0 || !all)
            return r;
        vdk_disk *d;
        if (vdk_open_store(st, parent, VDK_OPEN_RDONLY | VDK_OPEN_SINGLE_LINK, &d, NULL) < 0)
            return 0;
        int more = d->desc->parent_hint != NULL;
        vdk_close(d);
        if (!more)
            return 0;
        snprintf(cur, sizeof(cur), "%s", parent);
    }
}

int vdk_shrink(vdk_store *st, const char *name, vdk_progress_cb cb, void *arg, uint64_t *saved,
               vdk_error *err)
{
    uint64_t dummy;
    return link_rewrite(st, name, cb, arg, saved ? saved : &dummy, err);
}

int vdk_defragment(vdk_store *st, const char *name, vdk_progress_cb cb, void *arg, vdk_error *err)
{
    uint64_t saved;
    return link_rewrite(st, name, cb, arg, &saved, err);
}

/* Grow one extent to hold 'sectors'; returns the sectors it took. */
static int grow_extent(struct vdk_disk *d, unsigned i, uint64_t sectors, vdk_error *err)
{
    struct extent *e = &d->ext[i];
    if (e->ops == &extent_kdmv_ops) {
        int r = kdmv_grow(e, sectors, err);
        if (r == 0)
            d->desc->ext[i].sectors = sectors;
        return r;
    }
    if (e->ops == &extent_flat_ops) {
        uint64_t need = (e->d->offset + sectors) * SECTOR;
        int r = need > e->file_size ? e->file->ops->truncate(e->file, need) : 0;
        if (r < 0)
            return vdk_fail(err, vdk_status_from_errno(r), "%s: %s", e->name, strerror(-r));
        d->desc->ext[i].sectors = sectors;
        return 0;
    }
    return vdk_fail(err, VDK_E_UNSUPPORTED, "%s: %s extents cannot grow", e->name, e->format);
}

/* More extents for a split disk, named as VMware names them. */
static int add_extents(struct vdk_disk *d, uint64_t add, int sparse, vdk_error *err)
{
    for (unsigned i = d->desc->n_ext + 1; add; i++) {
        char suffix[16], full[VDK_NAME_MAX], base[VDK_NAME_MAX];
        snprintf(suffix, sizeof(suffix), "-%c%03u", sparse ? 's' : 'f', i);
        extent_name(d->name, suffix, full, base);
        uint64_t n = min_u64(add, SPLIT_SECTORS);
        int r =
            create_extent_file(d->store, full, sparse ? FMT_KDMV : FMT_FLAT, n, NULL, NULL, err);
        struct desc_extent x = {.access = EA_RW,
                                .type = sparse ? ET_SPARSE : ET_FLAT,
                                .sectors = n,
                                .file = base,
                                .has_offset = !sparse};
        if (r == 0)
            r = desc_add_extent(d->desc, &x);
        if (r < 0)
            return r;
        add -= n;
    }
    /* the extent table moved: re-point the open extents at their lines */
    for (unsigned i = 0; i < d->n_ext; i++)
        d->ext[i].d = &d->desc->ext[i];
    return 0;
}

static void set_geometry(struct vdk_disk *d, uint64_t sectors)
{
    const char *h = desc_get(d->desc, "ddb.geometry.heads");
    const char *s = desc_get(d->desc, "ddb.geometry.sectors");
    unsigned long heads = h ? strtoul(h, NULL, 10) : 0, secs = s ? strtoul(s, NULL, 10) : 0;
    if (!heads || !secs)
        return;
    uint64_t c = sectors / (heads * secs);
    if (heads == 16 && c > 16383)
        c = 16383; /* IDE */
    char v[32];
    snprintf(v, sizeof(v), "%llu", (unsigned long long)c);
    desc_set(d->desc, "ddb.geometry.cylinders", v, NULL);
}

int vdk_grow(vdk_store *st, const char *name, uint64_t capacity, vdk_error *err)
{
    if (capacity % SECTOR)
        return vdk_fail(err, VDK_E_INVAL, "capacity %llu is not a multiple of 512",
                        (unsigned long long)capacity);
    char(*kids)[VDK_NAME_MAX] = calloc(1, VDK_NAME_MAX);
    if (!kids)
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    unsigned n = children_of(st, name, kids, 1);
    int r = n ? vdk_fail(err, VDK_E_UNSUPPORTED,
                         "%s has a redo log (%s): grow the disk "
                         "before taking snapshots, or commit them first",
                         name, kids[0])
              : 0;
    free(kids);
    struct vdk_disk *d = NULL;
    if (r == 0)
        r = vdk_open_store(st, name, VDK_OPEN_SINGLE_LINK, &d, err);
    if (r == 0 && d->desc->parent_hint)
        r = vdk_fail(err, VDK_E_UNSUPPORTED, "%s is a redo log: it takes its parent's size", name);
    if (r == 0 && capacity < d->capacity)
        r = vdk_fail(err, VDK_E_INVAL, "%s holds %llu bytes: a disk's capacity never shrinks", name,
                     (unsigned long long)d->capacity);
    const char *type = r == 0 ? desc_canonical_create_type(d->desc->create_type) : "";
    int split = !strcmp(type, "twoGbMaxExtentSparse") || !strcmp(type, "twoGbMaxExtentFlat");
    if (r == 0 && capacity > d->capacity) {
        struct extent *e = &d->ext[d->n_ext - 1];
        uint64_t add = (capacity - d->capacity) / SECTOR;
        uint64_t max = split                        ? SPLIT_SECTORS
                       : e->ops == &extent_kdmv_ops ? MAX_SPARSE_SECTORS
                                                    : DESC_MAX_SECTORS / 2;
        uint64_t take = min_u64(add, max > e->d->sectors ? max - e->d->sectors : 0);
        if (!split && take < add)
            r = vdk_fail(err, VDK_E_RANGE, "%s: %s holds at most %llu bytes", name, type,
                         (unsigned long long)(max * SECTOR));
        if (r == 0 && take)
            r = grow_extent(d, d->n_ext - 1, e->d->sectors + take, err);
        if (r == 0 && add > take)
            r = add_extents(d, add - take, e->ops == &extent_kdmv_ops, err);
        if (r == 0) {
            set_geometry(d, capacity / SECTOR);
            pthread_mutex_lock(&d->meta_lock);
            r = link_write_descriptor(d, err);
            pthread_mutex_unlock(&d->meta_lock);
        }
    }
    if (d) {
        int cr = vdk_close(d);
        if (r == 0 && cr < 0)
            r = vdk_fail(err, cr, "%s: closing failed", name);
    }
    return r;
}

/* "vm/old.vmdk" renamed to "vm/new.vmdk": a file "old-s001.vmdk" named in
 * its descriptor becomes "new-s001.vmdk"; other names stay. */
static bool renamed(const char *file, const char *from_stem, const char *to_stem, char *out)
{
    const char *b = vdk_basename(file);
    size_t l = strlen(from_stem);
    bool swap = !strncmp(b, from_stem, l) && b[l] != '\0';
    size_t dir = (size_t)(b - file), stem = swap ? strlen(to_stem) : 0;
    const char *rest = swap ? b + l : b;
    size_t tail = strlen(rest);
    if (dir + stem + tail >= VDK_NAME_MAX)
        return false; /* the new name does not fit */
    memcpy(out, file, dir);
    memcpy(out + dir, to_stem, stem);
    memcpy(out + dir + stem, rest, tail + 1);
    return true;
}

static void stem_of(const char *name, char *out)
{
    const char *b = vdk_basename(name);
    size_t l = strlen(b);
    if (l > 5 && !strcasecmp(b + l - 5, ".vmdk"))
        l -= 5;
    snprintf(out, VDK_NAME_MAX, "%.*s", (int)l, b);
}

int vdk_rename(vdk_store *st, const char *src, const char *dst, vdk_error *err)
{
    struct vdk_stat sb;
    if (st->ops->stat(st, dst, &sb) == 0)
        return vdk_fail(err, VDK_E_EXISTS, "%s already exists", dst);
    char from[VDK_NAME_MAX], to[VDK_NAME_MAX];
    stem_of(src, from);
    stem_of(dst, to);
    const char *sd = strrchr(src, '/'), *dd = strrchr(dst, '/');
    if ((sd ? sd - src : 0) != (dd ? dd - dst : 0) || (sd && strncmp(src, dst, (size_t)(sd - src))))
        return vdk_fail(err, VDK_E_INVAL, "%s and %s must be in the same folder", src, dst);
    struct vdk_disk *d;
    int r = vdk_open_store(st, src, VDK_OPEN_SINGLE_LINK | VDK_OPEN_IGNORE_CID, &d, err);
    if (r < 0)
        return r;
    char(*done)[VDK_NAME_MAX] = calloc(d->n_ext + 2, VDK_NAME_MAX);
    unsigned n_done = 0;
    char nn[VDK_NAME_MAX];
    /* the new names first: nothing may be overwritten */
    for (unsigned i = 0; r == 0 && i < d->n_ext; i++) {
        struct extent *e = &d->ext[i];
        if (!e->name || e->file == d->desc_file)
            continue;
        if (!renamed(e->name, from, to, nn))
            r = vdk_fail(err, VDK_E_INVAL, "%s: the renamed file's name is too long", e->name);
        else if (strcmp(nn, e->name) && st->ops->stat(st, nn, &sb) == 0)
            r = vdk_fail(err, VDK_E_EXISTS, "%s already exists", nn);
    }
    /* the descriptor names its extents by the new names */
    for (unsigned i = 0; r == 0 && i < d->desc->n_ext; i++) {
        struct desc_extent *x = &d->desc->ext[i];
        struct extent *e = &d->ext[i];
        if (!x->file)
            continue;
        char rel[VDK_NAME_MAX];
        if (!renamed(x->file, from, to, rel)) {
            r = vdk_fail(err, VDK_E_INVAL, "%s: the renamed extent's name is too long", x->file);
            break;
        }
        if (e->file == d->desc_file)
            snprintf(rel, sizeof(rel), "%s", vdk_basename(dst));
        free(x->file);
        x->file = strdup(rel);
    }
    const char *ctk = r == 0 ? desc_get(d->desc, "changeTrackPath") : NULL;
    char ctk_old[VDK_NAME_MAX] = "", ctk_rel[VDK_NAME_MAX];
    if (ctk && vdk_name_join(src, ctk, ctk_old, sizeof(ctk_old)) == 0) {
        if (renamed(ctk, from, to, ctk_rel))
            desc_set(d->desc, "changeTrackPath", ctk_rel, NULL);
        else
            ctk_old[0] = '\0'; /* too long to rename: it keeps its name */
    }
    /* move the extents, then the descriptor (for a monolithic file, both) */
    for (unsigned i = 0; r == 0 && i < d->n_ext; i++) {
        struct extent *e = &d->ext[i];
        if (!e->name || e->file == d->desc_file)
            continue;
        (void)renamed(e->name, from, to, nn); /* checked above */
        if (!strcmp(nn, e->name))
            continue;
        int e2 = st->ops->rename(st, e->name, nn);
        if (e2 < 0)
            r = vdk_fail(err, vdk_status_from_errno(e2), "%s: %s", e->name, strerror(-e2));
        else
            snprintf(done[n_done++], VDK_NAME_MAX, "%s", e->name);
    }
    if (r == 0 && ctk_old[0]) {
        if (renamed(ctk_old, from, to, nn))
            st->ops->rename(st, ctk_old, nn);
    }
    if (r == 0) {
        int e2 = st->ops->rename(st, src, dst);
        if (e2 < 0)
            r = vdk_fail(err, vdk_status_from_errno(e2), "%s: %s", src, strerror(-e2));
    }
    if (r == 0) {
        free(d->name);
        d->name = strdup(dst);
        pthread_mutex_lock(&d->meta_lock);
        r = link_write_descriptor(d, err);
        pthread_mutex_unlock(&d->meta_lock);
    } else {
        /* put back what moved */
        for (unsigned i = 0; i < n_done; i++) {
            (void)renamed(done[i], from, to, nn);
            st->ops->rename(st, nn, done[i]);
        }
    }
    vdk_close(d);
    free(done);
    if (r < 0)
        return r;
    /* children beside it follow */
    char(*kids)[VDK_NAME_MAX] = calloc(256, VDK_NAME_MAX);
    unsigned k = kids ? children_of(st, src, kids, 256) : 0;
    for (unsigned i = 0; i < k && r == 0; i++) {
        struct vdk_disk *c;
        r = open_link_rw(st, kids[i], &c, err);
        if (r == 0) {
            char hint[VDK_NAME_MAX];
            vdk_name_relative(c->name, dst, hint, sizeof(hint));
            pthread_mutex_lock(&c->meta_lock);
            r = desc_set(c->desc, "parentFileNameHint", hint, err);
            if (r == 0)
                r = link_write_descriptor(c, err);
            pthread_mutex_unlock(&c->meta_lock);
            vdk_close(c);
        }
    }
    free(kids);
    return r;
}
