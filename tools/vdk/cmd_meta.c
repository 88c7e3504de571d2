/* vdk meta: the disk database keys (VixDiskLib_GetMetadataKeys/ReadMetadata). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help[] =
    "Usage: vdk meta [--json] [OPTIONS] DISK [KEY [VALUE]]\n\n"
    "Without KEY, list every ddb key of DISK's top link as KEY = VALUE (keys are\n"
    "named without the \"ddb.\" prefix, as VixDiskLib names them).  With KEY, print\n"
    "its value alone; a missing key is an error (exit 1).  With VALUE, set KEY\n"
    "(adding it if new; keys cannot be removed).  The descriptor is rewritten in\n"
    "place when embedded, else replaced atomically.\n\n"
    "Options:\n"
    "  --json          a JSON object of all keys\n" CLI_OPEN_HELP "  -h, --help      this text\n";

static char *get_value(vdk_disk *d, const char *key)
{
    size_t need = 0;
    int r = vdk_meta_get(d, key, NULL, 0, &need);
    if (r != -VDK_E_BUFSMALL)
        return NULL;
    char *v = malloc(need);
    if (v && vdk_meta_get(d, key, v, need, NULL) < 0) {
        free(v);
        v = NULL;
    }
    return v;
}

static int list(vdk_disk *d, int json)
{
    size_t need = 0;
    vdk_meta_keys(d, NULL, 0, &need);
    char *keys = malloc(need);
    if (!keys || vdk_meta_keys(d, keys, need, NULL) < 0) {
        free(keys);
        return cli_error("out of memory");
    }
    if (json)
        printf("{");
    int first = 1;
    for (char *k = keys; *k; k += strlen(k) + 1) {
        char *v = get_value(d, k);
        if (json) {
            printf("%s\n  ", first ? "" : ",");
            json_str(stdout, k);
            printf(": ");
            json_str(stdout, v ? v : "");
        } else {
            printf("%s = %s\n", k, v ? v : "");
        }
        first = 0;
        free(v);
    }
    if (json)
        printf("\n}\n");
    free(keys);
    return 0;
}

int cmd_meta(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, CLI_OPEN_LONGOPTS, {0}};
    struct open_opts oo = {.flags = VDK_OPEN_SINGLE_LINK};
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
    if (argc - optind < 1 || argc - optind > 3)
        return cli_error("expects DISK [KEY [VALUE]] (see --help)"), 2;
    if (argc - optind == 3)
        oo.flags |= CLI_OPEN_WRITE;
    vdk_disk *d = cli_open(argv[optind], &oo);
    if (!d)
        return 1;
    int rc = 0;
    if (optind == argc - 3) {
        const char *key = argv[optind + 1];
        if (!strncmp(key, "ddb.", 4))
            key += 4;
        vdk_error err = {0};
        int r = vdk_meta_set(d, key, argv[optind + 2], &err);
        if (r < 0)
            rc = cli_error("%s", err.message[0] ? err.message : vdk_strerror(r));
        if (cli_close(d) < 0 && rc == 0)
            rc = cli_error("%s: closing failed", argv[optind]);
        return rc;
    } else if (optind == argc - 2) {
        const char *key = argv[optind + 1];
        if (!strncmp(key, "ddb.", 4))
            key += 4;
        char *v = get_value(d, key);
        if (v)
            printf("%s\n", v);
        else
            rc = cli_error("%s: no key '%s'", argv[optind], key);
        free(v);
    } else {
        rc = list(d, json);
    }
    cli_close(d);
    return rc;
}
