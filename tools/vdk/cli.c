/* Shared helpers of the vdk command line. */
#include "cli.h"
#include "infotext.h"

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
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Messages quote names and values read from the disk's files: a line
     * break there would split the one-line error, an escape sequence would
     * reach the terminal.  Control characters are shown as '?'. */
    for (unsigned char *p = (unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    fprintf(stderr, "%s: %s\n", cli_cmd, msg);
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
    case 'r':
        o->flags |= VDK_OPEN_RAW;
        return 1;
    }
    return cli_remote_option(opt, &o->remote);
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
    r = vdk_open_store(*st, full + n + (n > 1), o->flags, d, err);
    if (r < 0) {
        (*st)->ops->destroy(*st);
        *st = NULL;
    }
    return r;
}

static vdk_store *root_store; /* the --root store, destroyed by cli_close */

int cli_close(vdk_disk *d)
{
    int r = vdk_close(d);
    if (root_store)
        root_store->ops->destroy(root_store);
    root_store = NULL;
    cli_disconnect();
    return r;
}

vdk_disk *cli_open(const char *path, const struct open_opts *o)
{
    vdk_disk *d = NULL;
    vdk_error err = {0};
    struct open_opts oo = *o;
    oo.flags =
        (o->flags & CLI_OPEN_WRITE) ? o->flags & ~CLI_OPEN_WRITE : o->flags | VDK_OPEN_RDONLY;
    if (o->remote.server || o->remote.config || path[0] == '[')
        return cli_open_remote(path, &oo);
    int r = o->root ? open_under_root(path, &oo, &d, &root_store, &err)
                    : vdk_open(path, oo.flags, &d, &err);
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

/* realpath of a file that may not exist yet: its folder's realpath + name. */
static int real_new_path(const char *path, char *out)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    snprintf(dir, sizeof(dir), "%.*s", slash ? (slash == path ? 1 : (int)(slash - path)) : 1,
             slash ? path : ".");
    char rd[PATH_MAX];
    if (!realpath(dir, rd) || !*base)
        return -1;
    if (snprintf(out, PATH_MAX, "%s/%s", strcmp(rd, "/") ? rd : "", base) >= PATH_MAX)
        return -1;
    return 0;
}

int cli_store_name(const char *path, const struct open_opts *o, const char *disk_path, char *out,
                   size_t outlen)
{
    char root[PATH_MAX], full[PATH_MAX];
    if (o->root) {
        if (!realpath(o->root, root))
            return cli_error("%s: %s", o->root, strerror(errno)), -1;
    } else if (real_new_path(disk_path, root) == 0) {
        char *slash = strrchr(root, '/');
        if (slash == root)
            slash[1] = '\0';
        else
            *slash = '\0';
    } else {
        return cli_error("%s: %s", disk_path, strerror(errno)), -1;
    }
    if (real_new_path(path, full) < 0)
        return cli_error("%s: folder does not exist", path), -1;
    size_t n = strlen(root);
    if (strncmp(full, root, n) != 0 || (n > 1 && full[n] != '/'))
        return cli_error("%s must lie beneath %s (use --root to widen)", path, root), -1;
    if ((size_t)snprintf(out, outlen, "%s", full + n + (n > 1)) >= outlen)
        return cli_error("%s: name too long", path), -1;
    return 0;
}

int cli_disk_error(vdk_disk *d, int status)
{
    vdk_error e;
    vdk_last_error(d, &e);
    return cli_error("%s", e.message[0] ? e.message : vdk_strerror(status));
}
