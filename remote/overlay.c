/* overlay.c - a store that writes locally and reads through to another:
 * the redo log of a remote disk is a local file whose parent stays on the
 * datastore. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vdk_remote.h"

struct overlay {
    vdk_store base;
    vdk_store *lower, *local;
    char root[PATH_MAX];
};

/* Make the folders of 'name' below the local root ("a/b/c.vmdk": a, a/b);
 * names were checked by the local store's rules first. */
static int make_dirs(struct overlay *o, const char *name)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", o->root, name) >= sizeof(path))
        return -ENAMETOOLONG;
    size_t k = strlen(o->root) + 1;
    for (char *p = path + k; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return 0;
}

static int bad_name(const char *name)
{
    if (name[0] == '/' || !strncmp(name, "../", 3) || strstr(name, "/../") || !strcmp(name, ".."))
        return 1;
    size_t n = strlen(name);
    return n >= 3 && !strcmp(name + n - 3, "/..");
}

static int ov_open(vdk_store *vs, const char *name, unsigned flags, vdk_file **out)
{
    struct overlay *o = (struct overlay *)vs;
    if (bad_name(name))
        return -EXDEV;
    if (flags & (VDK_STORE_WRITE | VDK_STORE_CREATE)) {
        struct vdk_stat st;
        /* A file only the lower store has cannot be written here. */
        if (o->local->ops->stat(o->local, name, &st) == -ENOENT &&
            o->lower->ops->stat(o->lower, name, &st) == 0)
            return -EROFS;
        int r = (flags & VDK_STORE_CREATE) ? make_dirs(o, name) : 0;
        return r < 0 ? r : o->local->ops->open(o->local, name, flags, out);
    }
    int r = o->local->ops->open(o->local, name, flags, out);
    return r == -ENOENT ? o->lower->ops->open(o->lower, name, flags, out) : r;
}

static int ov_stat(vdk_store *vs, const char *name, struct vdk_stat *st)
{
    struct overlay *o = (struct overlay *)vs;
    if (bad_name(name))
        return -EXDEV;
    int r = o->local->ops->stat(o->local, name, st);
    return r == -ENOENT ? o->lower->ops->stat(o->lower, name, st) : r;
}

struct seen {
    char **names;
    size_t n;
    vdk_list_cb cb;
    void *arg;
};

static int seen_add(void *arg, const char *name, const struct vdk_stat *st)
{
    struct seen *s = arg;
    char **l = realloc(s->names, (s->n + 1) * sizeof(*l));
    if (!l || !(l[s->n] = strdup(name))) {
        if (l)
            s->names = l;
        return -ENOMEM;
    }
    s->names = l;
    s->n++;
    return s->cb(s->arg, name, st);
}

static int lower_entry(void *arg, const char *name, const struct vdk_stat *st)
{
    struct seen *s = arg;
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name))
            return 0;
    return s->cb(s->arg, name, st);
}

static int ov_list(vdk_store *vs, const char *dir, vdk_list_cb cb, void *arg)
{
    struct overlay *o = (struct overlay *)vs;
    struct seen s = {NULL, 0, cb, arg};
    int r = o->local->ops->list(o->local, dir, seen_add, &s);
    int local_missing = r == -ENOENT;
    if (r == 0 || local_missing) {
        r = o->lower->ops->list(o->lower, dir, lower_entry, &s);
        if (r == -ENOENT && !local_missing)
            r = 0;
    }
    for (size_t i = 0; i < s.n; i++)
        free(s.names[i]);
    free(s.names);
    return r;
}

static int ov_rename(vdk_store *vs, const char *from, const char *to)
{
    struct overlay *o = (struct overlay *)vs;
    int r = bad_name(to) ? -EXDEV : make_dirs(o, to);
    return r < 0 ? r : o->local->ops->rename(o->local, from, to);
}

static int ov_unlink(vdk_store *vs, const char *name)
{
    struct overlay *o = (struct overlay *)vs;
    int r = o->local->ops->unlink(o->local, name);
    struct vdk_stat st;
    if (r == -ENOENT && o->lower->ops->stat(o->lower, name, &st) == 0)
        return -EROFS;
    return r;
}

static int ov_sync_dir(vdk_store *vs, const char *dir)
{
    struct overlay *o = (struct overlay *)vs;
    int r = o->local->ops->sync_dir(o->local, dir);
    return r == -ENOENT ? 0 : r;
}

static int ov_relativize(vdk_store *vs, const char *abs, char *out, size_t outlen)
{
    struct overlay *o = (struct overlay *)vs;
    int r =
        o->lower->ops->relativize ? o->lower->ops->relativize(o->lower, abs, out, outlen) : -EXDEV;
    if (r == -EXDEV && o->local->ops->relativize)
        r = o->local->ops->relativize(o->local, abs, out, outlen);
    return r;
}

static void ov_destroy(vdk_store *vs)
{
    struct overlay *o = (struct overlay *)vs;
    o->local->ops->destroy(o->local);
    free(o);
}

static const struct vdk_store_ops ops = {
    1, ov_open, ov_stat, ov_list, ov_rename, ov_unlink, ov_sync_dir, ov_relativize, ov_destroy};

int vdk_store_overlay_new(vdk_store *lower, const char *local_root, vdk_store **out)
{
    struct overlay *o = calloc(1, sizeof(*o));
    if (!o)
        return -ENOMEM;
    if (!realpath(local_root, o->root)) {
        int e = errno;
        free(o);
        return -e;
    }
    int r = vdk_store_local_new(o->root, &o->local);
    if (r < 0) {
        free(o);
        return r;
    }
    o->base.ops = &ops;
    o->lower = lower;
    *out = &o->base;
    return 0;
}
