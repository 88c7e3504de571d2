/* mkimage: write a COWD, seSparse or VMware-layout stream extent from a raw
 * file, with the test-only writers in imgbuild.c, plus the raw bytes the
 * extent must read back as.
 *
 *   mkimage cowd|sesparse|stream RAW EXTENT EXPECTED [GRAIN_SECTORS]
 *
 * Grains of RAW that are all zeros stay unallocated; in seSparse every fifth
 * non-zero grain becomes an explicit zero entry and every seventh an
 * "unmapped" entry, so EXPECTED has zeros there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgbuild.h"

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = calloc(1, *n + 1048576);
    if (p && fread(p, 1, *n, f) != *n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    return p;
}

static int spill(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        perror(path);
        return 1;
    }
    return fclose(f) != 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: mkimage cowd|sesparse|stream RAW EXTENT EXPECTED [GRAIN]\n");
        return 2;
    }
    size_t n;
    uint8_t *raw = slurp(argv[2], &n);
    if (!raw || n % 512) {
        fprintf(stderr, "mkimage: %s unreadable or not a multiple of 512 bytes\n", argv[2]);
        return 1;
    }
    const char *kind = argv[1];
    uint32_t grain = argc > 5                    ? (uint32_t)atoi(argv[5])
                     : !strcmp(kind, "sesparse") ? 8
                     : !strcmp(kind, "cowd")     ? 1
                                                 : 128;
    size_t gb = grain * 512u, grains = (n + gb - 1) / gb;
    uint8_t *plan = calloc(grains, 1);
    uint8_t *expect = calloc(1, n);
    size_t nonzero = 0;
    for (size_t g = 0; g < grains; g++) {
        size_t len = n - g * gb < gb ? n - g * gb : gb;
        int any = 0;
        for (size_t i = 0; i < len && !any; i++)
            any = raw[g * gb + i] != 0;
        if (!any)
            continue;
        plan[g] = G_DATA;
        if (!strcmp(kind, "sesparse") && ++nonzero % 5 == 0)
            plan[g] = G_ZERO;
        else if (!strcmp(kind, "sesparse") && nonzero % 7 == 0)
            plan[g] = G_UNMAPPED;
        else
            memcpy(expect + g * gb, raw + g * gb, len);
    }
    struct buf b;
    if (!strcmp(kind, "cowd"))
        build_cowd(raw, plan, n / 512, grain, &b);
    else if (!strcmp(kind, "sesparse"))
        build_sesparse(raw, plan, n / 512, &b);
    else if (!strcmp(kind, "stream")) {
        char desc[512];
        snprintf(desc, sizeof(desc),
                 "# Disk DescriptorFile\nversion=1\nCID=a1b2c3d4\nparentCID=ffffffff\n"
                 "createType=\"streamOptimized\"\nRW %zu SPARSE \"generated-stream.vmdk\"\n"
                 "ddb.adapterType = \"lsilogic\"\n",
                 n / 512);
        build_kdmv(raw, plan,
                   &(struct kdmv_opts){.capacity = n / 512,
                                       .grain = grain,
                                       .stream = 1,
                                       .skip_empty_gts = 1,
                                       .descriptor = desc},
                   &b);
    } else {
        fprintf(stderr, "mkimage: unknown kind %s\n", kind);
        return 2;
    }
    int rc = spill(argv[3], b.p, b.len) || spill(argv[4], expect, n);
    buf_free(&b);
    free(raw);
    free(plan);
    free(expect);
    return rc;
}
