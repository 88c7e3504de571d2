#include "recstore.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The namespace as the workload sees it: which identity each name holds, so
 * that a write through a handle opened before a rename lands on the file's
 * current name when it is replayed. */
struct name_ent {
    char *name;
    unsigned fid;
};

struct rstore {
    vdk_store base;
    vdk_store *inner;
    pthread_mutex_t lock;
    struct rec_op *log;
    size_t n, cap;
    struct name_ent *names;
    size_t n_names;
    unsigned next_fid;
};

struct rfile {
    vdk_file base;
    struct rstore *st;
    vdk_file *inner;
    unsigned fid;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static struct name_ent *by_name(struct rstore *s, const char *name)
{
    for (size_t i = 0; i < s->n_names; i++)
        if (s->names[i].name && !strcmp(s->names[i].name, name))
            return &s->names[i];
    return NULL;
}

static const char *name_of(struct rstore *s, unsigned fid)
{
    for (size_t i = 0; i < s->n_names; i++)
        if (s->names[i].name && s->names[i].fid == fid)
            return s->names[i].name;
    return NULL; /* unlinked while open: its writes no longer matter */
}

static unsigned fid_for(struct rstore *s, const char *name)
{
    struct name_ent *e = by_name(s, name);
    if (e)
        return e->fid;
    s->names = realloc(s->names, (s->n_names + 1) * sizeof(*s->names));
    s->names[s->n_names].name = strdup(name);
    s->names[s->n_names].fid = ++s->next_fid;
    return s->names[s->n_names++].fid;
}

static void drop_name(struct rstore *s, const char *name)
{
    struct name_ent *e = by_name(s, name);
    if (e) {
        free(e->name);
        e->name = NULL;
    }
}

/* Append an op (lock held); takes a copy of data. */
static void add(struct rstore *s, int kind, unsigned fid, const char *name, const char *name2,
                uint64_t off, const void *data, size_t len)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->log = realloc(s->log, s->cap * sizeof(*s->log));
    }
    struct rec_op *op = &s->log[s->n++];
    *op = (struct rec_op){kind, fid, dup_or_null(name), dup_or_null(name2), off, len, NULL};
    if (data && len) {
        op->data = malloc(len);
        memcpy(op->data, data, len);
    }
}

static int64_t r_pread(vdk_file *f, void *b, size_t n, uint64_t o)
{
    struct rfile *x = (struct rfile *)f;
    return x->inner->ops->pread(x->inner, b, n, o);
}

static int64_t r_pwrite(vdk_file *f, const void *b, size_t n, uint64_t o)
{
    struct rfile *x = (struct rfile *)f;
    int64_t r = x->inner->ops->pwrite(x->inner, b, n, o);
    if (r >= 0) {
        pthread_mutex_lock(&x->st->lock);
        add(x->st, REC_WRITE, x->fid, name_of(x->st, x->fid), NULL, o, b, n);
        pthread_mutex_unlock(&x->st->lock);
    }
    return r;
}

static int r_flush(vdk_file *f)
{
    struct rfile *x = (struct rfile *)f;
    int r = x->inner->ops->flush(x->inner);
    if (r == 0) {
        pthread_mutex_lock(&x->st->lock);
        add(x->st, REC_FLUSH, x->fid, name_of(x->st, x->fid), NULL, 0, NULL, 0);
        pthread_mutex_unlock(&x->st->lock);
    }
    return r;
}

static int r_size(vdk_file *f, uint64_t *o)
{
    struct rfile *x = (struct rfile *)f;
    return x->inner->ops->size(x->inner, o);
}

static int r_truncate(vdk_file *f, uint64_t n)
{
    struct rfile *x = (struct rfile *)f;
    int r = x->inner->ops->truncate(x->inner, n);
    if (r == 0) {
        pthread_mutex_lock(&x->st->lock);
        add(x->st, REC_TRUNCATE, x->fid, name_of(x->st, x->fid), NULL, n, NULL, 0);
        pthread_mutex_unlock(&x->st->lock);
    }
    return r;
}

static void r_close(vdk_file *f)
{
    struct rfile *x = (struct rfile *)f;
    x->inner->ops->close(x->inner);
    free(x);
}

static const struct vdk_file_ops rfops = {
    .version = 1,
    .pread = r_pread,
    .pwrite = r_pwrite,
    .flush = r_flush,
    .size = r_size,
    .truncate = r_truncate,
    .close = r_close,
};

static int s_open(vdk_store *st, const char *name, unsigned flags, vdk_file **out)
{
    struct rstore *s = (struct rstore *)st;
    struct vdk_stat sb;
    int existed = s->inner->ops->stat(s->inner, name, &sb) == 0;
    vdk_file *in;
    int r = s->inner->ops->open(s->inner, name, flags, &in);
    if (r < 0)
        return r;
    struct rfile *x = calloc(1, sizeof(*x));
    x->base.ops = &rfops;
    x->st = s;
    x->inner = in;
    pthread_mutex_lock(&s->lock);
    x->fid = fid_for(s, name);
    if (!existed)
        add(s, REC_CREATE, x->fid, name, NULL, 0, NULL, 0);
    pthread_mutex_unlock(&s->lock);
    *out = &x->base;
    return 0;
}

static int s_stat(vdk_store *st, const char *n, struct vdk_stat *o)
{
    struct rstore *s = (struct rstore *)st;
    return s->inner->ops->stat(s->inner, n, o);
}

static int s_list(vdk_store *st, const char *d, vdk_list_cb cb, void *a)
{
    struct rstore *s = (struct rstore *)st;
    return s->inner->ops->list(s->inner, d, cb, a);
}

static int s_rename(vdk_store *st, const char *from, const char *to)
{
    struct rstore *s = (struct rstore *)st;
    int r = s->inner->ops->rename(s->inner, from, to);
    if (r == 0) {
        pthread_mutex_lock(&s->lock);
        unsigned fid = fid_for(s, from);
        drop_name(s, to);
        struct name_ent *e = by_name(s, from);
        free(e->name);
        e->name = strdup(to);
        add(s, REC_RENAME, fid, from, to, 0, NULL, 0);
        pthread_mutex_unlock(&s->lock);
    }
    return r;
}

static int s_unlink(vdk_store *st, const char *n)
{
    struct rstore *s = (struct rstore *)st;
    int r = s->inner->ops->unlink(s->inner, n);
    if (r == 0) {
        pthread_mutex_lock(&s->lock);
        drop_name(s, n);
        add(s, REC_UNLINK, 0, n, NULL, 0, NULL, 0);
        pthread_mutex_unlock(&s->lock);
    }
    return r;
}

static int s_sync_dir(vdk_store *st, const char *d)
{
    struct rstore *s = (struct rstore *)st;
    int r = s->inner->ops->sync_dir(s->inner, d);
    if (r == 0) {
        pthread_mutex_lock(&s->lock);
        add(s, REC_SYNC_DIR, 0, d, NULL, 0, NULL, 0);
        pthread_mutex_unlock(&s->lock);
    }
    return r;
}

static void s_destroy(vdk_store *st)
{
    struct rstore *s = (struct rstore *)st;
    for (size_t i = 0; i < s->n; i++) {
        free(s->log[i].name);
        free(s->log[i].name2);
        free(s->log[i].data);
    }
    for (size_t i = 0; i < s->n_names; i++)
        free(s->names[i].name);
    free(s->names);
    free(s->log);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static const struct vdk_store_ops rsops = {1,        s_open,     s_stat, s_list,   s_rename,
                                           s_unlink, s_sync_dir, NULL,   s_destroy};

vdk_store *recstore_new(vdk_store *inner)
{
    struct rstore *s = calloc(1, sizeof(*s));
    s->base.ops = &rsops;
    s->inner = inner;
    pthread_mutex_init(&s->lock, NULL);
    return &s->base;
}

size_t recstore_mark(vdk_store *st, uint64_t value)
{
    struct rstore *s = (struct rstore *)st;
    pthread_mutex_lock(&s->lock);
    size_t at = s->n;
    add(s, REC_MARK, 0, NULL, NULL, value, NULL, 0);
    pthread_mutex_unlock(&s->lock);
    return at;
}

const struct rec_op *recstore_log(vdk_store *st, size_t *n)
{
    struct rstore *s = (struct rstore *)st;
    *n = s->n;
    return s->log;
}

static void apply(vdk_store *m, const struct rec_op *op)
{
    vdk_file *f;
    switch (op->kind) {
    case REC_WRITE:
    case REC_TRUNCATE:
    case REC_CREATE:
        if (!op->name || m->ops->open(m, op->name, VDK_STORE_WRITE | VDK_STORE_CREATE, &f) < 0)
            return;
        if (op->kind == REC_WRITE)
            f->ops->pwrite(f, op->data, op->len, op->off);
        else if (op->kind == REC_TRUNCATE)
            f->ops->truncate(f, op->off);
        f->ops->close(f);
        return;
    case REC_RENAME:
        m->ops->rename(m, op->name, op->name2);
        return;
    case REC_UNLINK:
        m->ops->unlink(m, op->name);
        return;
    default:
        return; /* flushes, directory syncs and marks change no content */
    }
}

void rec_apply(vdk_store *st, vdk_store *target, size_t from, size_t to, const uint8_t *drop)
{
    struct rstore *s = (struct rstore *)st;
    for (size_t i = from; i < to && i < s->n; i++)
        if (!drop || !drop[i])
            apply(target, &s->log[i]);
}

size_t rec_pending(vdk_store *st, size_t cut, uint8_t *pending)
{
    struct rstore *s = (struct rstore *)st;
    uint8_t *flushed = calloc(s->next_fid + 2, 1);
    size_t count = 0;
    for (size_t i = cut; i-- > 0;) {
        const struct rec_op *op = &s->log[i];
        pending[i] = 0;
        if (op->kind == REC_FLUSH)
            flushed[op->fid] = 1;
        else if (op->kind == REC_WRITE && !flushed[op->fid])
            pending[i] = 1, count++;
    }
    free(flushed);
    return count;
}

struct snap_ctx {
    vdk_store *s;
    struct rec_snapshot *sn;
};

static int snap_one(void *arg, const char *name, const struct vdk_stat *st)
{
    struct snap_ctx *c = arg;
    if (st->is_dir)
        return 0;
    vdk_file *f;
    if (c->s->ops->open(c->s, name, VDK_STORE_READ, &f) < 0)
        return -EIO;
    uint64_t size = 0;
    f->ops->size(f, &size);
    struct rec_snapshot *sn = c->sn;
    sn->names = realloc(sn->names, (sn->n + 1) * sizeof(char *));
    sn->data = realloc(sn->data, (sn->n + 1) * sizeof(uint8_t *));
    sn->sizes = realloc(sn->sizes, (sn->n + 1) * sizeof(size_t));
    sn->names[sn->n] = strdup(name);
    sn->data[sn->n] = malloc(size ? size : 1);
    sn->sizes[sn->n] = (size_t)size;
    f->ops->pread(f, sn->data[sn->n], (size_t)size, 0);
    f->ops->close(f);
    sn->n++;
    return 0;
}

void rec_snapshot_take(vdk_store *s, struct rec_snapshot *out)
{
    memset(out, 0, sizeof(*out));
    struct snap_ctx c = {s, out};
    s->ops->list(s, "", snap_one, &c);
}

void rec_snapshot_free(struct rec_snapshot *sn)
{
    for (size_t i = 0; i < sn->n; i++) {
        free(sn->names[i]);
        free(sn->data[i]);
    }
    free(sn->names);
    free(sn->data);
    free(sn->sizes);
    memset(sn, 0, sizeof(*sn));
}

vdk_store *rec_snapshot_store(const struct rec_snapshot *sn)
{
    vdk_store *m = NULL;
    if (vdk_store_mem_new(&m) < 0)
        abort();
    for (size_t i = 0; i < sn->n; i++)
        vdk_store_mem_put(m, sn->names[i], sn->data[i], sn->sizes[i]);
    return m;
}

vdk_store *rec_copy(vdk_store *mem)
{
    struct rec_snapshot sn;
    rec_snapshot_take(mem, &sn);
    vdk_store *m = rec_snapshot_store(&sn);
    rec_snapshot_free(&sn);
    return m;
}
