/* vdk clone: copy a disk, flattening its chain, into a new file. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char help[] =
    "Usage: vdk clone [-t TYPE] [-a ADAPTER] [OPTIONS] DISK OUTPUT\n"
    "       vdk convert ...   (the same)\n\n"
    "Copy DISK, with every link of its chain merged, into a new disk OUTPUT\n"
    "(VixDiskLib_Clone).  Ranges that are unallocated or all zeros are not\n"
    "written, so OUTPUT stays sparse.  DISK may also be a raw image (-r).\n\n"
    "Types (-t):\n"
    "  monolithicSparse (default), twoGbMaxExtentSparse, monolithicFlat,\n"
    "  twoGbMaxExtentFlat, streamOptimized (VMware's stream layout, as ESXi and\n"
    "  OVF tools expect), vmfs, vmfsThin\n"
    "  raw             a plain image of the disk's bytes (what 'qemu-img convert -O raw'\n"
    "                  writes)\n\n"
    "Options:\n"
    "  -t, --type TYPE     output type\n"
    "  -a, --adapter NAME  adapter of the new disk (default: DISK's)\n"
    "  -f, --force         replace OUTPUT (and its extents) if it exists\n"
    "  -q, --quiet         no progress line\n" CLI_OPEN_HELP "  -h, --help          this text\n";

#define CHUNK (1u << 20)

struct copy {
    vdk_disk *d;
    int fd;
    unsigned char *buf;
    uint64_t done, unkicked;
    struct progress prog;
    const char *out;
};

static int all_zero(const unsigned char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int copy_range(void *arg, const vdk_range *r)
{
    struct copy *c = arg;
    if (r->kind != VDK_RANGE_DATA) {
        c->done += r->length;
        progress_update(&c->prog, c->done);
        return 0;
    }
    for (uint64_t pos = r->offset; pos < r->offset + r->length;) {
        size_t n =
            (size_t)(r->offset + r->length - pos < CHUNK ? r->offset + r->length - pos : CHUNK);
        int64_t got = vdk_read(c->d, c->buf, n, pos);
        if (got < 0)
            return (int)got;
        if (!all_zero(c->buf, n)) {
            for (size_t w = 0; w < n;) {
                ssize_t k = pwrite(c->fd, c->buf + w, n - w, (off_t)(pos + w));
                if (k < 0 && errno == EINTR)
                    continue;
                if (k < 0)
                    return cli_error("%s: write failed: %s", c->out, strerror(errno)), 1;
                w += (size_t)k;
            }
            /* start writeback as we go: the final fsync has little left */
            if ((c->unkicked += n) >= (32u << 20)) {
                sync_file_range(c->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
                c->unkicked = 0;
            }
        }
        pos += n;
        c->done += n;
        progress_update(&c->prog, c->done);
    }
    return 0;
}

static int on_progress(void *arg, uint64_t done, uint64_t total)
{
    progress_update(arg, done);
    return 0;
}

/* Remove OUTPUT and, when it is a disk, every file it names. */
static void remove_existing(vdk_store *st, const char *name)
{
    vdk_disk *d;
    if (vdk_open_store(st, name, VDK_OPEN_RDONLY | VDK_OPEN_SINGLE_LINK | VDK_OPEN_IGNORE_CID, &d,
                       NULL) == 0) {
        for (unsigned i = 0;; i++) {
            vdk_extent_info x;
            if (vdk_get_extent(d, i, &x) < 0)
                break;
            if (x.file[0] && strcmp(x.file, name))
                st->ops->unlink(st, x.file);
        }
        vdk_close(d);
    }
    st->ops->unlink(st, name);
}

int cli_clone_to(vdk_disk *src, const char *out, const vdk_create_params *p, int force, int quiet)
{
    char dir[4096];
    const char *slash = strrchr(out, '/');
    const char *base = slash ? slash + 1 : out;
    snprintf(dir, sizeof(dir), "%.*s", slash ? (slash == out ? 1 : (int)(slash - out)) : 1,
             slash ? out : ".");
    vdk_store *st;
    int r = vdk_store_local_new(dir, &st);
    if (r < 0)
        return cli_error("%s: %s", dir, strerror(-r));
    struct vdk_stat sb;
    if (st->ops->stat(st, base, &sb) == 0) {
        if (!force) {
            st->ops->destroy(st);
            return cli_error("%s exists (use --force to replace it)", out);
        }
        remove_existing(st, base);
    }
    struct progress prog;
    progress_init(&prog, vdk_capacity(src), !quiet);
    vdk_error err = {0};
    r = vdk_clone(src, st, base, p, on_progress, &prog, &err);
    progress_done(&prog);
    st->ops->destroy(st);
    if (r < 0)
        return cli_error("%s", err.message[0] ? err.message : vdk_strerror(r));
    return 0;
}

int cmd_clone(int argc, char **argv)
{
    static const struct option opts[] = {{"type", required_argument, NULL, 't'},
                                         {"adapter", required_argument, NULL, 'a'},
                                         {"force", no_argument, NULL, 'f'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         CLI_OPEN_LONGOPTS,
                                         {0}};
    struct open_opts oo = {0};
    const char *type = NULL, *adapter = NULL;
    int force = 0, quiet = 0, c;
    while ((c = getopt_long(argc, argv, "t:a:fqhr", opts, NULL)) != -1) {
        if (cli_open_option(c, &oo))
            continue;
        switch (c) {
        case 't':
            type = optarg;
            break;
        case 'a':
            adapter = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            return fputs(help, stdout), 0;
        default:
            return fputs(help, stderr), 2;
        }
    }
    if (optind != argc - 2)
        return cli_error("expects DISK OUTPUT (see --help)"), 2;
    struct copy cp = {.out = argv[optind + 1]};
    if (!(cp.d = cli_open(argv[optind], &oo)))
        return 1;
    if (!type || strcmp(type, "raw") != 0) {
        vdk_create_params p = {.type = type, .adapter = adapter};
        int rc = cli_clone_to(cp.d, cp.out, &p, force, quiet);
        cli_close(cp.d);
        return rc;
    }
    cp.fd = open(cp.out, O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), 0644);
    if (cp.fd < 0) {
        int e = errno;
        cli_close(cp.d);
        if (e == EEXIST)
            return cli_error("%s exists (use --force to overwrite)", cp.out);
        return cli_error("%s: %s", cp.out, strerror(e));
    }
    cp.buf = malloc(CHUNK);
    int rc = cp.buf ? 0 : cli_error("out of memory");
    progress_init(&cp.prog, vdk_capacity(cp.d), !quiet);
    if (rc == 0) {
        int r = vdk_map(cp.d, 0, vdk_capacity(cp.d), 0, copy_range, &cp);
        if (r < 0) {
            rc = cli_disk_error(cp.d, r);
        } else if (r > 0) {
            rc = 1;
        }
    }
    progress_done(&cp.prog);
    if (rc == 0 && ftruncate(cp.fd, (off_t)vdk_capacity(cp.d)) < 0)
        rc = cli_error("%s: %s", cp.out, strerror(errno));
    if (rc == 0 && fsync(cp.fd) < 0)
        rc = cli_error("%s: %s", cp.out, strerror(errno));
    if (close(cp.fd) < 0 && rc == 0)
        rc = cli_error("%s: %s", cp.out, strerror(errno));
    if (rc != 0)
        unlink(cp.out);
    free(cp.buf);
    cli_close(cp.d);
    return rc;
}
