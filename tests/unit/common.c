#include "common.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rnd(&seed);
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

uint8_t *make_raw(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n);
    fill_random(p, n, seed);
    /* a zero stretch and a text stretch in the middle */
    memset(p + n / 4, 0, n / 8);
    for (size_t i = n / 2; i < n / 2 + n / 16; i++)
        p[i] = (uint8_t)("vdk text pattern "[i % 17]);
    return p;
}

void put(vdk_store *s, const char *name, const void *data, size_t n)
{
    cr_assert_eq(vdk_store_mem_put(s, name, data, n), 0);
}

void put_buf(vdk_store *s, const char *name, struct buf *b)
{
    put(s, name, b->p, b->len);
}

vdk_disk *open_ok(vdk_store *s, const char *name, unsigned flags)
{
    vdk_disk *d = NULL;
    vdk_error err = {0};
    int r = vdk_open_store(s, name, flags | VDK_OPEN_RDONLY, &d, &err);
    cr_assert_eq(r, 0, "open %s: %d %s", name, r, err.message);
    return d;
}

const char *open_fails(vdk_store *s, const char *name, unsigned flags, int code)
{
    static vdk_error err;
    vdk_disk *d = NULL;
    err = (vdk_error){0};
    int r = vdk_open_store(s, name, flags | VDK_OPEN_RDONLY, &d, &err);
    cr_assert_eq(r, -code, "open %s: expected %d, got %d (%s)", name, -code, r, err.message);
    cr_assert_null(d);
    cr_assert(err.message[0], "no message for failure %d", r);
    return err.message;
}

void check_reads(vdk_disk *d, const uint8_t *model, size_t n, uint64_t seed)
{
    cr_assert_eq(vdk_capacity(d), n);
    uint8_t *buf = malloc(n + 4096);
    int64_t got = vdk_read(d, buf, n + 4096, 0);
    cr_assert_eq(got, (int64_t)n, "full read: %lld", (long long)got);
    for (size_t i = 0; i < n; i++)
        if (buf[i] != model[i])
            cr_assert_fail("byte %zu: got %02x want %02x", i, buf[i], model[i]);
    for (int k = 0; k < 300; k++) {
        uint64_t off = rnd(&seed) % n;
        size_t len = (size_t)(rnd(&seed) % (k % 3 == 0 ? 300000 : 5000)) + 1;
        if (len > n - off)
            len = n - off;
        got = vdk_read(d, buf, len, off);
        cr_assert_eq(got, (int64_t)len);
        cr_assert(memcmp(buf, model + off, len) == 0, "range %llu+%zu differs",
                  (unsigned long long)off, len);
    }
    cr_assert_eq(vdk_read(d, buf, 10, n), 0, "read at capacity must return 0");
    free(buf);
}

char *descriptor(const char *create_type, const char *extent_line, const char *parent, uint32_t cid,
                 uint32_t parent_cid)
{
    char *s = malloc(4096);
    snprintf(s, 4096,
             "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=%08x\nparentCID=%08x\n"
             "createType=\"%s\"\n%s%s%s\n# Extent description\n%s\n\n# The Disk Data Base\n"
             "#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.geometry.cylinders = \"16\"\n"
             "ddb.geometry.heads = \"255\"\nddb.geometry.sectors = \"63\"\n"
             "ddb.virtualHWVersion = \"14\"\n",
             cid, parent_cid, create_type, parent ? "parentFileNameHint=\"" : "",
             parent ? parent : "", parent ? "\"" : "", extent_line);
    return s;
}
