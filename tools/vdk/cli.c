/* Shared helpers of the vdk command line. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cli_cmd = "vdk";

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", cli_cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_open_option(int opt, struct open_opts *o)
{
    switch (opt) {
    case 'C':
        o->flags |= VDK_OPEN_IGNORE_CID;
        return 1;
    case 'L':
        o->flags |= VDK_OPEN_SINGLE_LINK;
        return 1;
    case 'R':
        o->root = optarg;
        return 1;
    }
    return 0;
}

static int set_err(vdk_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(vdk_error *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return e->code = -code;
}

/* Open path inside a store rooted at o->root. */
static int open_under_root(const char *path, const struct open_opts *o, vdk_disk **d,
                           vdk_store **st, vdk_error *err)
{
    char root[PATH_MAX], full[PATH_MAX];
    if (!realpath(o->root, root))
        return set_err(err, VDK_E_NOENT, "%s: %s", o->root, strerror(errno));
    if (!realpath(path, full))
        return set_err(err, VDK_E_NOENT, "%s: %s", path, strerror(errno));
    size_t n = strlen(root);
    if (strncmp(full, root, n) != 0 || (n > 1 && full[n] != '/'))
        return set_err(err, VDK_E_ESCAPE, "%s is not beneath --root %s", path, o->root);
    int r = vdk_store_local_new(root, st);
    if (r < 0)
        return set_err(err, VDK_E_IO, "%s: %s", root, strerror(-r));
    r = vdk_open_store(*st, full + n + (n > 1), o->flags | VDK_OPEN_RDONLY, d, err);
    if (r < 0) {
        (*st)->ops->destroy(*st);
        *st = NULL;
    }
    return r;
}

static vdk_store *root_store; /* the --root store, destroyed by cli_close */

void cli_close(vdk_disk *d)
{
    vdk_close(d);
    if (root_store)
        root_store->ops->destroy(root_store);
    root_store = NULL;
}

vdk_disk *cli_open(const char *path, const struct open_opts *o)
{
    vdk_disk *d = NULL;
    vdk_error err = {0};
    int r = o->root ? open_under_root(path, o, &d, &root_store, &err)
                    : vdk_open(path, o->flags | VDK_OPEN_RDONLY, &d, &err);
    if (r < 0) {
        cli_error("%s", err.message[0] ? err.message : vdk_strerror(r));
        return NULL;
    }
    vdk_info info;
    for (vdk_disk *l = d; l; l = vdk_parent(l)) {
        vdk_get_info(l, &info);
        if (info.unclean)
            fprintf(stderr, "%s: warning: %s was not closed cleanly (uncleanShutdown is set)\n",
                    cli_cmd, info.name);
    }
    return d;
}

void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

const char *human_size(uint64_t b, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)b;
    unsigned u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)b);
    else
        snprintf(buf, len, "%.4g %s", v, units[u]);
    return buf;
}

void progress_init(struct progress *p, uint64_t total, int enabled)
{
    p->on = enabled && isatty(STDERR_FILENO);
    p->total = total ? total : 1;
    p->last_pct = -1;
}

void progress_update(struct progress *p, uint64_t done)
{
    if (!p->on)
        return;
    int pct = (int)(done * 100 / p->total);
    if (pct == p->last_pct)
        return;
    p->last_pct = pct;
    char a[32], b[32];
    fprintf(stderr, "\r%s: %3d%% (%s of %s)   ", cli_cmd, pct, human_size(done, a, sizeof(a)),
            human_size(p->total, b, sizeof(b)));
    fflush(stderr);
}

void progress_done(struct progress *p)
{
    if (p->on && p->last_pct >= 0)
        fputc('\n', stderr);
}
