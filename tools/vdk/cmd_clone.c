/* vdk clone: copy a disk, flattening its chain, into a new file. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char help[] =
    "Usage: vdk clone -t TYPE [OPTIONS] DISK OUTPUT\n"
    "       vdk convert ...   (the same)\n\n"
    "Copy DISK, with every link of its chain merged, into OUTPUT.  Ranges that are\n"
    "unallocated or all zeros are not written, so OUTPUT stays sparse.\n\n"
    "Types:\n"
    "  raw             a plain image of the disk's bytes (what 'qemu-img convert -O raw'\n"
    "                  writes)\n\n"
    "Options:\n"
    "  -t, --type TYPE output type (required)\n"
    "  -f, --force     overwrite OUTPUT if it exists\n"
    "  -q, --quiet     no progress line\n" CLI_OPEN_HELP
    "  -h, --help      this text\n";

#define CHUNK (1u << 20)

struct copy {
    vdk_disk *d;
    int fd;
    unsigned char *buf;
    uint64_t done;
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
        size_t n = (size_t)(r->offset + r->length - pos < CHUNK ? r->offset + r->length - pos
                                                                : CHUNK);
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
        }
        pos += n;
        c->done += n;
        progress_update(&c->prog, c->done);
    }
    return 0;
}

int cmd_clone(int argc, char **argv)
{
    static const struct option opts[] = {{"type", required_argument, NULL, 't'},
                                         {"force", no_argument, NULL, 'f'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         CLI_OPEN_LONGOPTS,
                                         {0}};
    struct open_opts oo = {0};
    const char *type = NULL;
    int force = 0, quiet = 0, c;
    while ((c = getopt_long(argc, argv, "t:fqh", opts, NULL)) != -1) {
        if (cli_open_option(c, &oo))
            continue;
        switch (c) {
        case 't':
            type = optarg;
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
    if (!type)
        return cli_error("missing -t TYPE (see --help)"), 2;
    if (strcmp(type, "raw") != 0)
        return cli_error("output type '%s' is not supported; this version writes 'raw'", type),
               2;
    struct copy cp = {.out = argv[optind + 1]};
    if (!(cp.d = cli_open(argv[optind], &oo)))
        return 1;
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
            vdk_error e;
            vdk_last_error(cp.d, &e);
            rc = cli_error("%s", e.message[0] ? e.message : vdk_strerror(r));
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
