/* The tree of disks a mount shows: found by reading the folder, linked by
 * each disk's parentFileNameHint, opened lazily. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vdkfs.h"

#define SCAN_DEPTH 3

struct found {
    char **names;
    unsigned n, cap;
};

/* Out of memory a name is left out (the file just does not show). */
static void add_name(struct found *f, const char *name)
{
    if (f->n == f->cap) {
        unsigned cap = f->cap ? f->cap * 2 : 64;
        char **names = realloc(f->names, cap * sizeof(*names));
        if (!names)
            return;
        f->names = names;
        f->cap = cap;
    }
    char *copy = strdup(name);
    if (copy)
        f->names[f->n++] = copy;
}

struct walk {
    struct fs *fs;
    struct found *found;
    const char *dir;
    int depth;
};

static int is_vmdk(const char *n)
{
    size_t l = strlen(n);
    return l > 5 && !strcasecmp(n + l - 5, ".vmdk");
}

static int on_entry(void *arg, const char *name, const struct vdk_stat *st);

static void walk_dir(struct fs *fs, struct found *found, const char *dir, int depth)
{
    struct walk w = {fs, found, dir, depth};
    fs->store->ops->list(fs->store, dir, on_entry, &w);
}

static int on_entry(void *arg, const char *name, const struct vdk_stat *st)
{
    struct walk *w = arg;
    char full[VDK_NAME_MAX];
    if (snprintf(full, sizeof(full), "%s%s%s", w->dir, *w->dir ? "/" : "", name) >=
        (int)sizeof(full))
        return 0;
    if (name[0] == '.')
        return 0;
    if (st->is_dir && w->depth < SCAN_DEPTH)
        walk_dir(w->fs, w->found, full, w->depth + 1);
    else if (!st->is_dir && is_vmdk(name))
        add_name(w->found, full);
    return 0;
}

static struct node *find(struct fs *fs, const char *name)
{
    for (unsigned i = 1; i < fs->n_nodes; i++)
        if (!strcmp(fs->nodes[i]->name, name))
            return fs->nodes[i];
    return NULL;
}

static struct node *new_node(struct fs *fs, const char *name)
{
    struct node *n = calloc(1, sizeof(*n));
    n->name = strdup(name);
    n->parent = -1;
    pthread_mutex_init(&n->lock, NULL);
    if (fs->n_nodes == 0)
        fs->n_nodes = 1; /* index 0 is the root directory */
    fs->nodes = realloc(fs->nodes, (fs->n_nodes + 1) * sizeof(*fs->nodes));
    n->idx = fs->n_nodes;
    fs->nodes[fs->n_nodes++] = n;
    return n;
}

/* What one disk file says about itself: parent, extents, capacity. */
struct probe {
    char name[VDK_NAME_MAX];
    char parent[VDK_NAME_MAX];
    char error[2 * VDK_NAME_MAX + 600];
    uint64_t capacity;
    char **extents;
    unsigned n_extents;
};

static void probe(struct fs *fs, const char *name, struct probe *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    vdk_disk *d;
    vdk_error err = {0};
    if (vdk_open_store(fs->store, name,
                       VDK_OPEN_RDONLY | VDK_OPEN_SINGLE_LINK | VDK_OPEN_IGNORE_CID, &d,
                       &err) < 0) {
        snprintf(p->error, sizeof(p->error), "%s", err.message);
        return;
    }
    vdk_info info;
    vdk_get_info(d, &info);
    p->capacity = info.capacity;
    if (info.parent_hint[0] && !info.parent_name[0])
        snprintf(p->error, sizeof(p->error), "%s: parent \"%s\" lies outside the mounted folder",
                 name, info.parent_hint);
    snprintf(p->parent, sizeof(p->parent), "%s", info.parent_name);
    p->extents = calloc(info.extent_count, sizeof(char *));
    for (unsigned i = 0; i < info.extent_count; i++) {
        vdk_extent_info x;
        vdk_get_extent(d, i, &x);
        if (p->extents && x.file[0] && strcmp(x.file, name) &&
            (p->extents[p->n_extents] = strdup(x.file)) != NULL)
            p->n_extents++;
    }
    vdk_close(d);
}

static void probe_free(struct probe *p)
{
    for (unsigned i = 0; i < p->n_extents; i++)
        free(p->extents[i]);
    free(p->extents);
}

/* The extent file names the probes found, as a set: a split 2 TiB disk
 * has 1024 of them, and a scan asks about every file of the folder. */
struct nameset {
    const char **slot;
    size_t cap; /* a power of two, at least twice the names */
};

static size_t name_hash(const char *s)
{
    size_t h = 14695981039346656037ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static int nameset_has(const struct nameset *set, const char *name)
{
    for (size_t i = name_hash(name) & (set->cap - 1); set->slot && set->slot[i];
         i = (i + 1) & (set->cap - 1))
        if (!strcmp(set->slot[i], name))
            return 1;
    return 0;
}

/* Put name in the first free slot from its hash on (linear probing). */
static void slot_put(const char **slot, size_t cap, const char *name)
{
    size_t j = name_hash(name) & (cap - 1);
    while (slot[j])
        j = (j + 1) & (cap - 1);
    slot[j] = name;
}

/* Add the extents of p (the set keeps pointers into p). */
static int nameset_add(struct nameset *set, size_t *used, const struct probe *p)
{
    if ((*used + p->n_extents) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap : 64;
        while ((*used + p->n_extents) * 2 > cap)
            cap *= 2;
        const char **slot = calloc(cap, sizeof(*slot));
        if (!slot)
            return -1;
        for (size_t i = 0; i < set->cap; i++)
            if (set->slot[i])
                slot_put(slot, cap, set->slot[i]);
        free(set->slot);
        set->slot = slot;
        set->cap = cap;
    }
    for (unsigned k = 0; k < p->n_extents; k++) {
        if (nameset_has(set, p->extents[k]))
            continue;
        slot_put(set->slot, set->cap, p->extents[k]);
        (*used)++;
    }
    return 0;
}

/* Probe order: shorter names first, so a descriptor (big.vmdk) comes before
 * the extents it names (big-s001.vmdk, big-flat.vmdk), which then need not
 * be opened as disks of their own. */
static int by_length(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    size_t lx = strlen(x), ly = strlen(y);
    return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

/* Probe every found file but those an earlier probe named as its extent
 * (their probe keeps only the name); *ext gets every extent named.  A file
 * named only by such a skipped file (an extent that is itself a descriptor
 * naming others, which no tool writes) therefore shows as a disk.  Out of
 * memory the set stays partial: extents are then probed, and may show as
 * disks, but nothing is lost. */
static void probe_all(struct fs *fs, struct found *found, struct probe *ps, struct nameset *ext)
{
    if (found->n > 1)
        qsort(found->names, found->n, sizeof(*found->names), by_length);
    size_t used = 0;
    for (unsigned i = 0; i < found->n; i++) {
        if (nameset_has(ext, found->names[i])) {
            snprintf(ps[i].name, sizeof(ps[i].name), "%s", found->names[i]);
            continue; /* an extent: not a disk, nothing to open */
        }
        probe(fs, found->names[i], &ps[i]);
        (void)nameset_add(ext, &used, &ps[i]);
    }
}

/* Display name: the file name without .vmdk, made unique. */
static void set_dname(struct fs *fs, struct node *n)
{
    const char *base = strrchr(n->name, '/');
    base = base ? base + 1 : n->name;
    char d[VDK_NAME_MAX];
    snprintf(d, sizeof(d), "%.*s", (int)(strlen(base) - 5), base);
    for (unsigned i = 1; i < fs->n_nodes; i++) {
        struct node *o = fs->nodes[i];
        if (o != n && o->dname && !strcmp(o->dname, d)) {
            /* same file name in another folder: say which */
            snprintf(d, sizeof(d), "%.*s@%u", (int)(strlen(base) - 5), base, n->idx);
            break;
        }
    }
    free(n->dname);
    n->dname = strdup(d);
}

static void link_kids(struct fs *fs)
{
    for (unsigned i = 1; i < fs->n_nodes; i++)
        fs->nodes[i]->n_kids = 0;
    for (unsigned i = 1; i < fs->n_nodes; i++) {
        struct node *n = fs->nodes[i];
        if (n->gone || n->parent < 0)
            continue;
        struct node *p = fs->nodes[n->parent];
        p->kids = realloc(p->kids, (p->n_kids + 1) * sizeof(*p->kids));
        p->kids[p->n_kids++] = n->idx;
    }
    /* A link with children must not change under them. */
    for (unsigned i = 1; i < fs->n_nodes; i++) {
        struct node *n = fs->nodes[i];
        pthread_mutex_lock(&n->lock);
        n->writable = !fs->ro && !fs->snapshot && n->n_kids == 0 && !n->error;
        pthread_mutex_unlock(&n->lock);
    }
}

int tree_scan(struct fs *fs)
{
    struct found found = {0};
    if (fs->only && strchr(fs->only, '/') == NULL)
        walk_dir(fs, &found, "", SCAN_DEPTH); /* one disk: its folder only */
    else
        walk_dir(fs, &found, "", 0);
    struct probe *ps = calloc(found.n + 1, sizeof(*ps));
    struct nameset ext = {0};
    if (!ps) {
        for (unsigned i = 0; i < found.n; i++)
            free(found.names[i]);
        free(found.names);
        return -1; /* out of memory: the tree stays as it was */
    }
    probe_all(fs, &found, ps, &ext);

    pthread_mutex_lock(&fs->lock);
    for (unsigned i = 1; i < fs->n_nodes; i++)
        fs->nodes[i]->gone = 1;
    for (unsigned i = 0; i < found.n; i++) {
        struct probe *p = &ps[i];
        /* extents of other disks (-flat, -s001, -delta, ...) are not disks */
        if (nameset_has(&ext, p->name))
            continue;
        struct node *n = find(fs, p->name);
        if (!n)
            n = new_node(fs, p->name);
        n->gone = 0;
        n->capacity = p->capacity;
        free(n->error);
        n->error = p->error[0] ? strdup(p->error) : NULL;
        if (!n->dname)
            set_dname(fs, n);
    }
    for (unsigned i = 0; i < found.n; i++) {
        struct node *n = find(fs, ps[i].name);
        if (!n || n->gone)
            continue;
        struct node *p = ps[i].parent[0] ? find(fs, ps[i].parent) : NULL;
        n->parent = p && !p->gone && p != n ? (int)p->idx : -1;
        if (ps[i].parent[0] && n->parent < 0 && !n->error) {
            char msg[VDK_NAME_MAX + 64];
            snprintf(msg, sizeof(msg), "%s: parent %s not found", n->name, ps[i].parent);
            n->error = strdup(msg);
        }
    }
    /* A parentFileNameHint loop (a -> b -> a) leaves its links without a
     * root: the mount showed nothing and said nothing.  Every link whose
     * chain loops becomes a root carrying the error (its flat is absent). */
    unsigned char *loops = calloc(fs->n_nodes, 1);
    for (unsigned i = 1; loops && i < fs->n_nodes; i++) {
        struct node *p = fs->nodes[i];
        for (unsigned steps = 0; p->parent >= 0 && steps < fs->n_nodes; steps++)
            p = fs->nodes[p->parent];
        loops[i] = !fs->nodes[i]->gone && p->parent >= 0;
    }
    for (unsigned i = 1; loops && i < fs->n_nodes; i++) {
        struct node *n = fs->nodes[i];
        if (!loops[i])
            continue;
        n->parent = -1;
        if (!n->error) {
            char msg[VDK_NAME_MAX + 64];
            snprintf(msg, sizeof(msg), "%s: parent chain loops back to itself", n->name);
            n->error = strdup(msg);
        }
    }
    free(loops);
    link_kids(fs);
    pthread_mutex_unlock(&fs->lock);
    free(ext.slot);
    for (unsigned i = 0; i < found.n; i++) {
        probe_free(&ps[i]);
        free(found.names[i]);
    }
    free(ps);
    free(found.names);
    return 0;
}

struct node *tree_node(struct fs *fs, unsigned idx)
{
    pthread_mutex_lock(&fs->lock);
    struct node *n = idx > 0 && idx < fs->n_nodes ? fs->nodes[idx] : NULL;
    if (n && n->gone)
        n = NULL;
    pthread_mutex_unlock(&fs->lock);
    return n;
}

/* Is node idx on the path from a root to the -o snapshot / single disk? */
static int on_chain(struct fs *fs, unsigned idx, const char *target)
{
    struct node *t = NULL;
    for (unsigned i = 1; i < fs->n_nodes && !t; i++) {
        struct node *n = fs->nodes[i];
        const char *b = strrchr(n->name, '/');
        b = b ? b + 1 : n->name;
        if (!n->gone &&
            (!strcmp(n->name, target) || !strcmp(n->dname, target) || !strcmp(b, target)))
            t = n;
    }
    for (; t; t = t->parent >= 0 ? fs->nodes[t->parent] : NULL)
        if (t->idx == idx)
            return 1;
    return 0;
}

/* In single-disk mode: is idx in the tree that holds the disk? */
static int in_tree_of(struct fs *fs, unsigned idx, const char *target)
{
    struct node *n = fs->nodes[idx];
    while (n->parent >= 0)
        n = fs->nodes[n->parent];
    return on_chain(fs, n->idx, target);
}

static int visible(struct fs *fs, unsigned idx)
{
    if (fs->snapshot)
        return on_chain(fs, idx, fs->snapshot);
    if (fs->only)
        return in_tree_of(fs, idx, fs->only);
    return 1;
}

unsigned tree_roots(struct fs *fs, unsigned *out, unsigned max)
{
    unsigned k = 0;
    pthread_mutex_lock(&fs->lock);
    for (unsigned i = 1; i < fs->n_nodes && k < max; i++) {
        struct node *n = fs->nodes[i];
        if (!n->gone && n->parent < 0 && visible(fs, i))
            out[k++] = i;
    }
    pthread_mutex_unlock(&fs->lock);
    return k;
}

unsigned tree_kids(struct fs *fs, struct node *n, unsigned *out, unsigned max)
{
    unsigned k = 0;
    pthread_mutex_lock(&fs->lock);
    for (unsigned i = 0; i < n->n_kids && k < max; i++)
        if (visible(fs, n->kids[i]))
            out[k++] = n->kids[i];
    pthread_mutex_unlock(&fs->lock);
    return k;
}

void node_load_keys(struct node *n)
{
    size_t need = 0;
    if (!n->disk)
        return;
    vdk_meta_keys(n->disk, NULL, 0, &need);
    char *buf = malloc(need);
    if (!buf || vdk_meta_keys(n->disk, buf, need, NULL) < 0) {
        free(buf);
        return;
    }
    /* keep known keys at their index; append new ones */
    for (char *k = buf; *k; k += strlen(k) + 1) {
        unsigned i = 0;
        while (i < n->n_keys && strcmp(n->keys[i], k))
            i++;
        if (i == n->n_keys) {
            n->keys = realloc(n->keys, (n->n_keys + 1) * sizeof(*n->keys));
            n->keys[n->n_keys++] = strdup(k);
        }
    }
    free(buf);
}

void vdkfs_say(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    for (unsigned char *p = (unsigned char *)line; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    fprintf(stderr, "vdkfs: %s\n", line);
}

vdk_disk *node_disk(struct fs *fs, struct node *n)
{
    if (n->disk)
        return n->disk;
    if (n->error) {
        errno = EIO;
        return NULL;
    }
    vdk_error err = {0};
    int r = vdk_open_store(fs->store, n->name, n->writable ? 0 : VDK_OPEN_RDONLY, &n->disk, &err);
    if (r < 0) {
        n->disk = NULL;
        /* A failed read (a remote store's timeout, a dropped connection)
         * may pass: the next access tries again.  Anything else about the
         * disk is kept and shown. */
        if (r != -VDK_E_IO)
            n->error = strdup(err.message);
        vdkfs_say("%s", err.message);
        errno = vdk_errno(r);
        return NULL;
    }
    node_load_keys(n);
    return n->disk;
}

int tree_close(struct fs *fs)
{
    int failed = 0;
    for (unsigned i = 1; i < fs->n_nodes; i++) {
        struct node *n = fs->nodes[i];
        if (n->disk && vdk_close(n->disk) < 0) {
            vdkfs_say("%s: closing failed; the disk may be marked unclean", n->name);
            failed = 1;
        }
        n->disk = NULL;
    }
    return failed ? -1 : 0;
}
