/* vdk create and vdk child: new disks and redo logs. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static const char create_help[] =
    "Usage: vdk create [-t TYPE] [-a ADAPTER] [--hw N] DISK SIZE\n\n"
    "Create a new, empty disk (VixDiskLib_Create).  SIZE is in bytes or with a\n"
    "K, M, G or T suffix (powers of 1024); it is rounded up to 512 bytes.\n"
    "An existing file is never overwritten.\n\n"
    "Types (-t):\n"
    "  monolithicSparse      one growing file (default; at most ~2 TiB)\n"
    "  twoGbMaxExtentSparse  growing, split into files below 2 GiB (DISK-s001.vmdk...)\n"
    "  monolithicFlat        descriptor plus one preallocated DISK-flat.vmdk\n"
    "  twoGbMaxExtentFlat    descriptor plus DISK-f001.vmdk... below 2 GiB each\n"
    "  streamOptimized       compressed, read-only once written (export format)\n"
    "  vmfs                  ESXi flat disk (descriptor plus DISK-flat.vmdk)\n"
    "  vmfsThin              the same, marked thin-provisioned\n"
    "Redo logs (vmfsSparse and sparse children) are made with 'vdk child'.\n\n"
    "Options:\n"
    "  -t, --type TYPE       disk type (above)\n"
    "  -a, --adapter NAME    ide (default), buslogic, lsilogic, lsilogicsas, pvscsi\n"
    "      --hw N            virtual hardware version (default 4; 7 for lsilogicsas\n"
    "                        and pvscsi)\n"
    "  -h, --help            this text\n";

/* "10G", "512", "1.5T" (binary units) -> bytes rounded up to 512. */
int parse_size(const char *s, uint64_t *out)
{
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    uint64_t mul = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        mul = 1ull << 10;
        end++;
        break;
    case 'M':
        mul = 1ull << 20;
        end++;
        break;
    case 'G':
        mul = 1ull << 30;
        end++;
        break;
    case 'T':
        mul = 1ull << 40;
        end++;
        break;
    case 'B':
        mul = 1;
        break;
    case '\0':
        break;
    default:
        return -1;
    }
    if (!strcasecmp(end, "iB") || !strcasecmp(end, "B"))
        end += strlen(end);
    if (*end || v * (double)mul > 9.0e18)
        return -1;
    uint64_t b = (uint64_t)(v * (double)mul + 0.5);
    *out = (b + 511) / 512 * 512;
    return 0;
}

int cmd_create(int argc, char **argv)
{
    static const struct option opts[] = {{"type", required_argument, NULL, 't'},
                                         {"adapter", required_argument, NULL, 'a'},
                                         {"hw", required_argument, NULL, 'w'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    vdk_create_params p = {0};
    int c;
    while ((c = getopt_long(argc, argv, "t:a:h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            p.type = optarg;
            break;
        case 'a':
            p.adapter = optarg;
            break;
        case 'w': {
            char *e;
            long v = strtol(optarg, &e, 10);
            if (*e || v < 1 || v > 99)
                return cli_error("--hw wants a number from 1 to 99"), 2;
            p.hw_version = (int)v;
            break;
        }
        case 'h':
            return fputs(create_help, stdout), 0;
        default:
            return fputs(create_help, stderr), 2;
        }
    }
    if (optind != argc - 2)
        return cli_error("expects DISK SIZE (see --help)"), 2;
    if (parse_size(argv[optind + 1], &p.capacity) < 0 || p.capacity == 0)
        return cli_error("'%s' is not a size (try 10G, 512M, 2T)", argv[optind + 1]), 2;
    vdk_error err = {0};
    int r = vdk_create_path(argv[optind], &p, &err);
    if (r < 0)
        return cli_error("%s", err.message[0] ? err.message : vdk_strerror(r));
    return 0;
}

static const char child_help[] =
    "Usage: vdk child [-t TYPE] PARENT [CHILD]\n\n"
    "Create a redo log of PARENT (VixDiskLib_CreateChild): a new link that\n"
    "reads as PARENT until written, and records PARENT's CID.  CHILD defaults to\n"
    "the next free '<base>-00000N.vmdk' beside PARENT and must lie in PARENT's\n"
    "folder tree (see --root).  Prints the name of the new link.\n\n"
    "Types (-t):\n"
    "  monolithicSparse      hosted redo log (default)\n"
    "  twoGbMaxExtentSparse  hosted, split below 2 GiB\n"
    "  vmfsSparse            ESXi redo log (CHILD.vmdk plus CHILD-delta.vmdk, COWD)\n"
    "  seSparse              ESXi 6.5+ snapshot (CHILD.vmdk plus CHILD-sesparse.vmdk);\n"
    "                        read by vdk and qemu-img, not yet tried on ESXi itself\n\n"
    "Options:\n"
    "  -t, --type TYPE       child type\n"
    "      --root DIR        store root for PARENT and CHILD (default PARENT's folder)\n"
    "      --ignore-cid      accept a PARENT chain whose CIDs do not match\n"
    "  -h, --help            this text\n";

int cmd_child(int argc, char **argv)
{
    static const struct option opts[] = {{"type", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         CLI_OPEN_LONGOPTS,
                                         {0}};
    struct open_opts oo = {0};
    const char *type = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "t:hr", opts, NULL)) != -1) {
        if (cli_open_option(c, &oo))
            continue;
        if (c == 't')
            type = optarg;
        else if (c == 'h')
            return fputs(child_help, stdout), 0;
        else
            return fputs(child_help, stderr), 2;
    }
    if (optind != argc - 1 && optind != argc - 2)
        return cli_error("expects PARENT [CHILD] (see --help)"), 2;
    vdk_disk *d = cli_open(argv[optind], &oo);
    if (!d)
        return 1;
    char name[VDK_NAME_MAX], chosen[VDK_NAME_MAX];
    const char *child = NULL;
    if (optind == argc - 2) {
        if (cli_store_name(argv[optind + 1], &oo, argv[optind], name, sizeof(name)) < 0) {
            cli_close(d);
            return 1;
        }
        child = name;
    }
    vdk_error err = {0};
    int r = vdk_create_child(d, child, type, chosen, &err);
    cli_close(d);
    if (r < 0)
        return cli_error("%s", err.message[0] ? err.message : vdk_strerror(r));
    printf("%s\n", chosen);
    return 0;
}
