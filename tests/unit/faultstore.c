#include "faultstore.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

struct fstore {
    vdk_store base;
    vdk_store *inner;
    unsigned long fail_at;
    atomic_ulong writes;
    size_t piece; /* lending mode: largest piece lent (0: no lending) */
    unsigned long fail_pin;
    atomic_ulong pins;
    atomic_long lent;
};

struct ffile {
    vdk_file base;
    struct fstore *st;
    vdk_file *inner;
};

static int dead(struct fstore *s)
{
    unsigned long n = atomic_fetch_add(&s->writes, 1) + 1;
    return s->fail_at && n >= s->fail_at;
}

static int64_t f_pread(vdk_file *f, void *b, size_t n, uint64_t o)
{
    struct ffile *x = (struct ffile *)f;
    return x->inner->ops->pread(x->inner, b, n, o);
}

static int64_t f_pwrite(vdk_file *f, const void *b, size_t n, uint64_t o)
{
    struct ffile *x = (struct ffile *)f;
    return dead(x->st) ? -EIO : x->inner->ops->pwrite(x->inner, b, n, o);
}

static int f_flush(vdk_file *f)
{
    struct ffile *x = (struct ffile *)f;
    return dead(x->st) ? -EIO : x->inner->ops->flush(x->inner);
}

static int f_size(vdk_file *f, uint64_t *o)
{
    struct ffile *x = (struct ffile *)f;
    return x->inner->ops->size(x->inner, o);
}

static int f_truncate(vdk_file *f, uint64_t n)
{
    struct ffile *x = (struct ffile *)f;
    return dead(x->st) ? -EIO : x->inner->ops->truncate(x->inner, n);
}

static void f_close(vdk_file *f)
{
    struct ffile *x = (struct ffile *)f;
    x->inner->ops->close(x->inner);
    free(x);
}

/* Lending (when asked for): a copy of the bytes, in a buffer of its own
 * that unpin frees. */
static int64_t f_pin(vdk_file *f, size_t n, uint64_t o, const void **mem, void **pin)
{
    struct ffile *x = (struct ffile *)f;
    if (!x->st->piece)
        return -EOPNOTSUPP;
    unsigned long k = atomic_fetch_add(&x->st->pins, 1) + 1;
    if (x->st->fail_pin && k == x->st->fail_pin)
        return -EIO;
    if (n > x->st->piece)
        n = x->st->piece;
    char *b = malloc(n);
    int64_t got = x->inner->ops->pread(x->inner, b, n, o);
    if (got <= 0) {
        free(b);
        return got;
    }
    atomic_fetch_add(&x->st->lent, 1);
    *mem = b;
    *pin = b;
    return got;
}

static void f_unpin(vdk_file *f, void *pin)
{
    struct ffile *x = (struct ffile *)f;
    atomic_fetch_sub(&x->st->lent, 1);
    free(pin);
}

static const struct vdk_file_ops fops = {
    .version = 3,
    .pread = f_pread,
    .pwrite = f_pwrite,
    .flush = f_flush,
    .size = f_size,
    .truncate = f_truncate,
    .close = f_close,
    .pin = f_pin,
    .unpin = f_unpin,
};

static int s_open(vdk_store *st, const char *name, unsigned flags, vdk_file **out)
{
    struct fstore *s = (struct fstore *)st;
    if ((flags & VDK_STORE_CREATE) && dead(s))
        return -EIO;
    vdk_file *in;
    int r = s->inner->ops->open(s->inner, name, flags, &in);
    if (r < 0)
        return r;
    struct ffile *x = calloc(1, sizeof(*x));
    x->base.ops = &fops;
    x->st = s;
    x->inner = in;
    *out = &x->base;
    return 0;
}

static int s_stat(vdk_store *st, const char *n, struct vdk_stat *o)
{
    struct fstore *s = (struct fstore *)st;
    return s->inner->ops->stat(s->inner, n, o);
}

static int s_list(vdk_store *st, const char *d, vdk_list_cb cb, void *a)
{
    struct fstore *s = (struct fstore *)st;
    return s->inner->ops->list(s->inner, d, cb, a);
}

static int s_rename(vdk_store *st, const char *a, const char *b)
{
    struct fstore *s = (struct fstore *)st;
    return dead(s) ? -EIO : s->inner->ops->rename(s->inner, a, b);
}

static int s_unlink(vdk_store *st, const char *n)
{
    struct fstore *s = (struct fstore *)st;
    return dead(s) ? -EIO : s->inner->ops->unlink(s->inner, n);
}

static int s_sync_dir(vdk_store *st, const char *d)
{
    struct fstore *s = (struct fstore *)st;
    return s->inner->ops->sync_dir(s->inner, d);
}

static void s_destroy(vdk_store *st)
{
    free(st);
}

static const struct vdk_store_ops sops = {1,        s_open,     s_stat, s_list,   s_rename,
                                          s_unlink, s_sync_dir, NULL,   s_destroy};

vdk_store *faultstore_new(vdk_store *inner, unsigned long fail_at)
{
    struct fstore *s = calloc(1, sizeof(*s));
    s->base.ops = &sops;
    s->inner = inner;
    s->fail_at = fail_at;
    return &s->base;
}

unsigned long faultstore_writes(vdk_store *st)
{
    return atomic_load(&((struct fstore *)st)->writes);
}

void faultstore_lend(vdk_store *st, size_t piece, unsigned long fail_pin)
{
    struct fstore *s = (struct fstore *)st;
    s->piece = piece;
    s->fail_pin = fail_pin;
    atomic_store(&s->pins, 0);
}

long faultstore_lent(vdk_store *st)
{
    return atomic_load(&((struct fstore *)st)->lent);
}
