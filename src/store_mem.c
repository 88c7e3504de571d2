/* An in-memory store: a flat list of named byte buffers, for tests and
 * fuzzing.  Directories are implied by names containing '/'. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vdk_store.h"

struct mem_blob {
    char *name; /* NULL once unlinked */
    unsigned char *data;
    size_t size, cap;
    unsigned refs; /* the store's entry plus open handles */
    struct mem_blob *next;
};

struct mem_store {
    vdk_store base;
    pthread_mutex_t lock; /* guards the list and every blob */
    struct mem_blob *head;
};

struct mem_file {
    vdk_file base;
    struct mem_store *store;
    struct mem_blob *blob;
    int writable;
};

static void blob_unref(struct mem_blob *b)
{
    if (--b->refs == 0) {
        free(b->name);
        free(b->data);
        free(b);
    }
}

static struct mem_blob *find(struct mem_store *s, const char *name, struct mem_blob ***link)
{
    struct mem_blob **pp = &s->head;
    for (; *pp; pp = &(*pp)->next) {
        if (!strcmp((*pp)->name, name)) {
            if (link)
                *link = pp;
            return *pp;
        }
    }
    return NULL;
}

static int reserve(struct mem_blob *b, size_t size)
{
    if (size <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < size)
        cap *= 2;
    unsigned char *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    memset(p + b->cap, 0, cap - b->cap);
    b->data = p;
    b->cap = cap;
    return 0;
}

static int64_t mf_pread(vdk_file *f, void *buf, size_t len, uint64_t off)
{
    struct mem_file *m = (struct mem_file *)f;
    pthread_mutex_lock(&m->store->lock);
    size_t n = 0;
    if (off < m->blob->size) {
        n = m->blob->size - (size_t)off;
        if (n > len)
            n = len;
        memcpy(buf, m->blob->data + off, n);
    }
    pthread_mutex_unlock(&m->store->lock);
    return (int64_t)n;
}

static int64_t mf_pwrite(vdk_file *f, const void *buf, size_t len, uint64_t off)
{
    struct mem_file *m = (struct mem_file *)f;
    if (!m->writable)
        return -EBADF;
    if (off > SIZE_MAX / 2 || len > SIZE_MAX / 2)
        return -EFBIG;
    pthread_mutex_lock(&m->store->lock);
    int r = reserve(m->blob, (size_t)off + len);
    if (r == 0) {
        memcpy(m->blob->data + off, buf, len);
        if (off + len > m->blob->size)
            m->blob->size = (size_t)off + len;
    }
    pthread_mutex_unlock(&m->store->lock);
    return r < 0 ? r : (int64_t)len;
}

static int mf_flush(vdk_file *f)
{
    return 0;
}

static int mf_size(vdk_file *f, uint64_t *out)
{
    struct mem_file *m = (struct mem_file *)f;
    pthread_mutex_lock(&m->store->lock);
    *out = m->blob->size;
    pthread_mutex_unlock(&m->store->lock);
    return 0;
}

static int mf_truncate(vdk_file *f, uint64_t size)
{
    struct mem_file *m = (struct mem_file *)f;
    if (!m->writable)
        return -EBADF;
    if (size > SIZE_MAX / 2)
        return -EFBIG;
    pthread_mutex_lock(&m->store->lock);
    int r = reserve(m->blob, (size_t)size);
    if (r == 0) {
        if (size < m->blob->size)
            memset(m->blob->data + size, 0, m->blob->size - (size_t)size);
        m->blob->size = (size_t)size;
    }
    pthread_mutex_unlock(&m->store->lock);
    return r;
}

static void mf_close(vdk_file *f)
{
    struct mem_file *m = (struct mem_file *)f;
    pthread_mutex_lock(&m->store->lock);
    blob_unref(m->blob);
    pthread_mutex_unlock(&m->store->lock);
    free(m);
}

static const struct vdk_file_ops mem_file_ops = {
    .version = 1,
    .pread = mf_pread,
    .pwrite = mf_pwrite,
    .flush = mf_flush,
    .size = mf_size,
    .truncate = mf_truncate,
    .close = mf_close,
};

static int bad_name(const char *name)
{
    if (!name || !*name || name[0] == '/')
        return 1;
    for (const char *p = name; (p = strstr(p, "..")) != NULL; p += 2) {
        if ((p == name || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
            return 1;
    }
    return 0;
}

static struct mem_blob *create_locked(struct mem_store *s, const char *name)
{
    struct mem_blob *b = calloc(1, sizeof(*b));
    if (!b || !(b->name = strdup(name))) {
        free(b);
        return NULL;
    }
    b->refs = 1;
    b->next = s->head;
    s->head = b;
    return b;
}

static int ms_open(vdk_store *st, const char *name, unsigned flags, vdk_file **out)
{
    struct mem_store *s = (struct mem_store *)st;
    if (bad_name(name))
        return -EXDEV;
    struct mem_file *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    pthread_mutex_lock(&s->lock);
    struct mem_blob *b = find(s, name, NULL);
    int r = 0;
    if (b && (flags & VDK_STORE_CREATE) && (flags & VDK_STORE_EXCL))
        r = -EEXIST;
    else if (!b && !(flags & VDK_STORE_CREATE))
        r = -ENOENT;
    else if (!b && !(b = create_locked(s, name)))
        r = -ENOMEM;
    if (r == 0)
        b->refs++;
    pthread_mutex_unlock(&s->lock);
    if (r < 0) {
        free(m);
        return r;
    }
    m->base.ops = &mem_file_ops;
    m->store = s;
    m->blob = b;
    m->writable = (flags & VDK_STORE_WRITE) != 0;
    *out = &m->base;
    return 0;
}

static int ms_stat(vdk_store *st, const char *name, struct vdk_stat *out)
{
    struct mem_store *s = (struct mem_store *)st;
    if (bad_name(name) && *name)
        return -EXDEV;
    pthread_mutex_lock(&s->lock);
    struct mem_blob *b = find(s, name, NULL);
    int r = -ENOENT;
    if (b) {
        *out = (struct vdk_stat){.size = b->size};
        r = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int ms_list(vdk_store *st, const char *dir, vdk_list_cb cb, void *arg)
{
    struct mem_store *s = (struct mem_store *)st;
    size_t dl = strlen(dir);
    /* Copy the names first: the callback may call back into the store. */
    pthread_mutex_lock(&s->lock);
    size_t n = 0;
    for (struct mem_blob *b = s->head; b; b = b->next)
        n++;
    char **names = calloc(n + 1, sizeof(*names));
    uint64_t *sizes = calloc(n + 1, sizeof(*sizes));
    size_t k = 0;
    for (struct mem_blob *b = s->head; names && sizes && b; b = b->next) {
        const char *rest = b->name;
        if (dl) {
            if (strncmp(rest, dir, dl) || rest[dl] != '/')
                continue;
            rest += dl + 1;
        }
        if (strchr(rest, '/'))
            continue;
        sizes[k] = b->size;
        names[k++] = strdup(rest);
    }
    pthread_mutex_unlock(&s->lock);
    int r = (names && sizes) ? 0 : -ENOMEM;
    for (size_t i = 0; i < k; i++) {
        struct vdk_stat vs = {.size = sizes[i]};
        if (r == 0 && names[i])
            r = cb(arg, names[i], &vs);
        free(names[i]);
    }
    free(names);
    free(sizes);
    return r;
}

static int ms_rename(vdk_store *st, const char *from, const char *to)
{
    struct mem_store *s = (struct mem_store *)st;
    if (bad_name(from) || bad_name(to))
        return -EXDEV;
    char *copy = strdup(to);
    if (!copy)
        return -ENOMEM;
    pthread_mutex_lock(&s->lock);
    struct mem_blob **pp;
    struct mem_blob *b = find(s, from, NULL);
    int r = -ENOENT;
    if (b) {
        struct mem_blob *old = find(s, to, &pp);
        if (old && old != b) {
            *pp = old->next;
            free(old->name);
            old->name = NULL;
            blob_unref(old);
        }
        free(b->name);
        b->name = copy;
        copy = NULL;
        r = 0;
    }
    pthread_mutex_unlock(&s->lock);
    free(copy);
    return r;
}

static int ms_unlink(vdk_store *st, const char *name)
{
    struct mem_store *s = (struct mem_store *)st;
    pthread_mutex_lock(&s->lock);
    struct mem_blob **pp;
    struct mem_blob *b = find(s, name, &pp);
    if (b) {
        *pp = b->next;
        free(b->name);
        b->name = NULL;
        blob_unref(b);
    }
    pthread_mutex_unlock(&s->lock);
    return b ? 0 : -ENOENT;
}

static int ms_sync_dir(vdk_store *st, const char *dir)
{
    return 0;
}

static void ms_destroy(vdk_store *st)
{
    struct mem_store *s = (struct mem_store *)st;
    while (s->head) {
        struct mem_blob *b = s->head;
        s->head = b->next;
        blob_unref(b);
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static const struct vdk_store_ops mem_store_ops = {
    .version = 1,
    .open = ms_open,
    .stat = ms_stat,
    .list = ms_list,
    .rename = ms_rename,
    .unlink = ms_unlink,
    .sync_dir = ms_sync_dir,
    .relativize = NULL,
    .destroy = ms_destroy,
};

int vdk_store_mem_new(vdk_store **out)
{
    struct mem_store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    s->base.ops = &mem_store_ops;
    *out = &s->base;
    return 0;
}

int vdk_store_mem_put(vdk_store *st, const char *name, const void *data, size_t len)
{
    vdk_file *f;
    int r = ms_open(st, name, VDK_STORE_WRITE | VDK_STORE_CREATE, &f);
    if (r < 0)
        return r;
    r = mf_truncate(f, 0);
    if (r == 0 && len)
        r = mf_pwrite(f, data, len, 0) < 0 ? -EIO : 0;
    mf_close(f);
    return r;
}
