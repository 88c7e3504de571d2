/* vdkwrite: apply seeded random writes to a disk through libvdk and the same
 * writes to a raw model file, so peers can check the disk afterwards.
 *
 *   vdkwrite DISK MODEL.raw SEED COUNT [--root DIR]
 *
 * Writes have every alignment and length up to 300 KiB; every fourth is all
 * zeros.  The disk is flushed and closed cleanly at the end. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vdk.h"

static uint64_t next(uint64_t *s)
{
    uint64_t x = *s += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: vdkwrite DISK MODEL.raw SEED COUNT\n");
        return 2;
    }
    vdk_disk *d;
    vdk_error err = {0};
    if (vdk_open(argv[1], 0, &d, &err) < 0) {
        fprintf(stderr, "vdkwrite: %s\n", err.message);
        return 1;
    }
    int model = open(argv[2], O_RDWR);
    if (model < 0) {
        perror(argv[2]);
        return 1;
    }
    uint64_t seed = strtoull(argv[3], NULL, 0), n = vdk_capacity(d);
    long count = atol(argv[4]);
    unsigned char *buf = malloc(300 * 1024);
    for (long i = 0; i < count; i++) {
        uint64_t off = next(&seed) % n;
        size_t len = (size_t)(next(&seed) % (i % 3 ? 5000 : 300 * 1024)) + 1;
        if (len > n - off)
            len = (size_t)(n - off);
        if (i % 4 == 0)
            memset(buf, 0, len);
        else
            for (size_t k = 0; k < len; k++)
                buf[k] = (unsigned char)(next(&seed) >> 56);
        if (vdk_write(d, buf, len, off) != (int64_t)len) {
            vdk_last_error(d, &err);
            fprintf(stderr, "vdkwrite: write %zu at %llu: %s\n", len, (unsigned long long)off,
                    err.message);
            return 1;
        }
        if (pwrite(model, buf, len, (off_t)off) != (ssize_t)len) {
            perror("model");
            return 1;
        }
    }
    if (vdk_close(d) < 0 || close(model) < 0) {
        fprintf(stderr, "vdkwrite: close failed\n");
        return 1;
    }
    free(buf);
    return 0;
}
