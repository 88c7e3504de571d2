/* vdk info: what a disk is. */
#include <getopt.h>
#include <stdlib.h>

#include "cli.h"
#include "infotext.h"

static const char help[] =
    "Usage: vdk info [--json] [OPTIONS] DISK\n\n"
    "Show a disk's create type, capacity, adapter, hardware version, geometry,\n"
    "content ids, parent chain, extents and the bytes allocated in its top link.\n"
    "DISK is a descriptor or a monolithic file; its parents are opened through\n"
    "parentFileNameHint and must lie in the same folder tree.\n\n"
    "Options:\n"
    "  --json          machine-readable output\n" CLI_OPEN_HELP "  -h, --help      this text\n";

static void print_extents_json(vdk_disk *d)
{
    vdk_info info;
    vdk_get_info(d, &info);
    printf("[");
    for (unsigned i = 0; i < info.extent_count; i++) {
        vdk_extent_info x;
        vdk_get_extent(d, i, &x);
        printf("%s{\"access\": \"%s\", \"type\": \"%s\", \"sectors\": %llu, \"file\": ",
               i ? ", " : "", x.access, x.type, (unsigned long long)x.sectors);
        if (x.file[0])
            json_str(stdout, x.file);
        else
            printf("null");
        printf(", \"offset\": %llu, \"format\": \"%s\"}", (unsigned long long)x.offset, x.format);
    }
    printf("]");
}

static void print_json(vdk_disk *d, uint64_t allocated)
{
    vdk_info in;
    vdk_get_info(d, &in);
    printf("{\n  \"name\": ");
    json_str(stdout, in.name);
    printf(",\n  \"createType\": ");
    json_str(stdout, in.create_type);
    printf(",\n  \"capacity\": %llu,\n  \"adapterType\": ", (unsigned long long)in.capacity);
    json_str(stdout, in.adapter);
    printf(",\n  \"hwVersion\": %d,\n", in.hw_version);
    printf("  \"geometry\": {\"cylinders\": %u, \"heads\": %u, \"sectors\": %u},\n", in.cylinders,
           in.heads, in.sectors);
    printf("  \"cid\": \"%08x\",\n  \"parentCid\": \"%08x\",\n  \"parent\": ", in.cid,
           in.parent_cid);
    if (in.parent_hint[0])
        json_str(stdout, in.parent_hint);
    else
        printf("null");
    printf(",\n  \"uuid\": ");
    json_str(stdout, in.uuid);
    printf(",\n  \"descriptorVersion\": %d,\n  \"changeTracking\": %s,\n  \"unclean\": %s,\n",
           in.descriptor_version, in.change_tracking ? "true" : "false",
           in.unclean ? "true" : "false");
    printf("  \"allocated\": %llu,\n  \"chainDepth\": %u,\n  \"extents\": ",
           (unsigned long long)allocated, in.chain_depth);
    print_extents_json(d);
    printf(",\n  \"chain\": [");
    for (vdk_disk *l = d; l; l = vdk_parent(l)) {
        vdk_info li;
        vdk_get_info(l, &li);
        printf("%s\n    {\"name\": ", l == d ? "" : ",");
        json_str(stdout, li.name);
        printf(", \"createType\": ");
        json_str(stdout, li.create_type);
        printf(", \"cid\": \"%08x\", \"parentCid\": \"%08x\", \"extents\": ", li.cid,
               li.parent_cid);
        print_extents_json(l);
        printf("}");
    }
    printf("\n  ]\n}\n");
}

int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, CLI_OPEN_LONGOPTS, {0}};
    struct open_opts oo = {0};
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "hr", opts, NULL)) != -1) {
        if (cli_open_option(c, &oo))
            continue;
        if (c == 'j')
            json = 1;
        else if (c == 'h')
            return fputs(help, stdout), 0;
        else
            return fputs(help, stderr), 2;
    }
    if (optind != argc - 1)
        return cli_error("expects one DISK (see --help)"), 2;
    vdk_disk *d = cli_open(argv[optind], &oo);
    if (!d)
        return 1;
    int rc = 0;
    if (json) {
        uint64_t allocated = 0;
        int r = vdk_allocated_bytes(d, &allocated);
        if (r < 0)
            rc = cli_disk_error(d, r);
        else
            print_json(d, allocated);
    } else {
        int st = 0;
        char *text = info_text(d, &st);
        if (text)
            fputs(text, stdout);
        else
            rc = cli_disk_error(d, st);
        free(text);
    }
    cli_close(d);
    return rc;
}
