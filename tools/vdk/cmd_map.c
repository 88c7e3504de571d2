/* vdk map: allocation of a disk (VixDiskLib_QueryAllocatedBlocks). */
#include <getopt.h>

#include "cli.h"

static const char help[] =
    "Usage: vdk map [--json] [--this-link] [OPTIONS] DISK\n\n"
    "Show how every byte range of DISK is answered: 'data' (stored in a link),\n"
    "'zero' (an explicit zero grain or ZERO extent) or 'hole' (allocated nowhere,\n"
    "reads as zeros).  DEPTH is the link that holds it: 0 is DISK itself, 1 its\n"
    "parent, and so on.  Neighbouring ranges of the same kind and depth merge.\n\n"
    "Options:\n"
    "  --json          JSON array like 'qemu-img map --output=json'\n"
    "  --this-link     report DISK's own link only ('hole' where it defers to its "
    "parent)\n" CLI_OPEN_HELP "  -h, --help      this text\n";

struct map_out {
    int json;
    int first;
    vdk_disk *d;
};

static const char *kind_name(int k)
{
    return k == VDK_RANGE_DATA ? "data" : k == VDK_RANGE_ZERO ? "zero" : "hole";
}

static int print_range(void *arg, const vdk_range *r)
{
    struct map_out *o = arg;
    if (o->json) {
        printf("%s\n  {\"start\": %llu, \"length\": %llu, \"depth\": %u, \"present\": %s, "
               "\"zero\": %s, \"data\": %s}",
               o->first ? "" : ",", (unsigned long long)r->offset, (unsigned long long)r->length,
               r->depth, r->kind == VDK_RANGE_HOLE ? "false" : "true",
               r->kind == VDK_RANGE_DATA ? "false" : "true",
               r->kind == VDK_RANGE_DATA ? "true" : "false");
    } else {
        if (o->first)
            printf("%-20s %-20s %-5s %s\n", "offset", "length", "kind", "depth");
        printf("%-20llu %-20llu %-5s %u\n", (unsigned long long)r->offset,
               (unsigned long long)r->length, kind_name(r->kind), r->depth);
    }
    o->first = 0;
    return 0;
}

int cmd_map(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"this-link", no_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         CLI_OPEN_LONGOPTS,
                                         {0}};
    struct open_opts oo = {0};
    struct map_out o = {.first = 1};
    unsigned flags = 0;
    int c;
    while ((c = getopt_long(argc, argv, "hr", opts, NULL)) != -1) {
        if (cli_open_option(c, &oo))
            continue;
        if (c == 'j')
            o.json = 1;
        else if (c == 't')
            flags |= VDK_MAP_THIS_LINK;
        else if (c == 'h')
            return fputs(help, stdout), 0;
        else
            return fputs(help, stderr), 2;
    }
    if (optind != argc - 1)
        return cli_error("expects one DISK (see --help)"), 2;
    if (!(o.d = cli_open(argv[optind], &oo)))
        return 1;
    if (o.json)
        printf("[");
    int r = vdk_map(o.d, 0, vdk_capacity(o.d), flags, print_range, &o);
    if (o.json)
        printf("\n]\n");
    int rc = 0;
    if (r < 0)
        rc = cli_disk_error(o.d, r);
    cli_close(o.d);
    return rc;
}
