/* Hostile and damaged images: each gives a clear error, never a crash, a
 * hang or a read outside the image (ASan and UBSan watch the rest). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

#define MiB (1u << 20)

static vdk_store *store;

static void setup(void)
{
    cr_assert_eq(vdk_store_mem_new(&store), 0);
}

static void teardown(void)
{
    store->ops->destroy(store);
}

/* Opening fails, or reading the whole disk fails; either way with a message. */
static void fails_cleanly(const char *name, const char *why)
{
    vdk_disk *d = NULL;
    vdk_error err = {0};
    int r = vdk_open_store(store, name, VDK_OPEN_RDONLY, &d, &err);
    if (r < 0) {
        cr_assert(err.message[0], "%s: open failed without a message", why);
        cr_assert_null(d);
        return;
    }
    size_t n = (size_t)vdk_capacity(d);
    uint8_t *buf = malloc(n ? n : 1);
    int64_t got = vdk_read(d, buf, n, 0);
    vdk_last_error(d, &err);
    vdk_close(d);
    free(buf);
    cr_assert_lt(got, 0, "%s: opened and read %lld bytes", why, (long long)got);
    cr_assert(err.message[0], "%s: read failed without a message", why);
}

static struct buf sparse_image(int stream, uint64_t seed)
{
    size_t n = 4 * MiB;
    uint8_t *raw = make_raw(n, seed);
    uint8_t plan[64];
    for (int i = 0; i < 64; i++)
        plan[i] = i % 3 ? G_DATA : G_NONE;
    char *text = descriptor(stream ? "streamOptimized" : "monolithicSparse",
                            "RW 8192 SPARSE \"x.vmdk\"", NULL, 1, 0xffffffff);
    struct buf b;
    build_kdmv(raw, plan,
               &(struct kdmv_opts){.capacity = n / 512, .descriptor = text, .stream = stream}, &b);
    free(raw);
    free(text);
    return b;
}

static void put32at(struct buf *b, uint64_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b->p[off + i] = (uint8_t)(v >> (8 * i));
}

static void put64at(struct buf *b, uint64_t off, uint64_t v)
{
    put32at(b, off, (uint32_t)v);
    put32at(b, off + 4, (uint32_t)(v >> 32));
}

Test(bad, truncated_sparse_at_every_boundary, .init = setup, .fini = teardown)
{
    for (int stream = 0; stream < 2; stream++) {
        struct buf b = sparse_image(stream, 1);
        struct built_layout l = built;
        uint64_t cuts[] = {0,
                           3,
                           4,
                           100,
                           511,
                           512,
                           1024,
                           l.gd_off,
                           l.gd_off + 2,
                           l.first_gt + 100,
                           l.first_grain,
                           l.first_grain + 10,
                           b.len / 2,
                           b.len - 1024,
                           b.len - 513,
                           b.len - 1};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(*cuts); i++) {
            if (cuts[i] >= b.len)
                continue;
            char why[64];
            snprintf(why, sizeof(why), "%s cut at %llu", stream ? "stream" : "sparse",
                     (unsigned long long)cuts[i]);
            put(store, "x.vmdk", b.p, cuts[i]);
            fails_cleanly("x.vmdk", why);
        }
        buf_free(&b);
    }
}

Test(bad, header_fields, .init = setup, .fini = teardown)
{
    struct {
        uint64_t off;
        int width;
        uint64_t value;
        const char *why;
    } cases[] = {
        {0, 4, 0x12345678, "bad magic"},
        {4, 4, 9, "version 9"},
        {20, 8, 0, "grain size 0"},
        {20, 8, 1ull << 40, "huge grain size"},
        {20, 8, 100, "grain size not a power of two"},
        {44, 4, 0, "no entries per table"},
        {44, 4, 0xffffffff, "absurd entries per table"},
        {12, 8, 0xffffffffffffffffull, "absurd capacity"},
        {12, 8, 16, "capacity below the descriptor's"},
        {56, 8, 0x7fffffff, "grain directory past the end"},
        {56, 8, 0, "grain directory at 0"},
        {28, 8, 0x7fffffffffffff, "descriptor offset past the end"},
        {36, 8, 1ull << 40, "descriptor size absurd"},
        {64, 8, 1ull << 40, "overhead past the end"},
        {77, 2, 7, "unknown compression"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct buf b = sparse_image(0, 2);
        if (cases[i].width == 4)
            put32at(&b, cases[i].off, (uint32_t)cases[i].value);
        else if (cases[i].width == 8)
            put64at(&b, cases[i].off, cases[i].value);
        else
            b.p[cases[i].off] = (uint8_t)cases[i].value;
        if (cases[i].off == 77)
            put32at(&b, 8, 0x10001); /* compressed flag */
        put_buf(store, "x.vmdk", &b);
        fails_cleanly("x.vmdk", cases[i].why);
        buf_free(&b);
    }
}

Test(bad, grain_pointers, .init = setup, .fini = teardown)
{
    uint32_t bad[] = {0xfffffff0, 5 /* inside the descriptor */, 0 + 2};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        struct buf b = sparse_image(0, 3);
        put32at(&b, built.first_gt + 4, bad[i]); /* grain 1 is allocated */
        put_buf(store, "x.vmdk", &b);
        fails_cleanly("x.vmdk", "grain pointer out of bounds");
        buf_free(&b);
    }
    struct buf b = sparse_image(0, 3);
    put32at(&b, built.gd_off, 0xfffffff0); /* grain table past the end */
    put_buf(store, "x.vmdk", &b);
    fails_cleanly("x.vmdk", "grain table past the end");
    buf_free(&b);
}

Test(bad, compressed_grain_lies, .init = setup, .fini = teardown)
{
    uint32_t sizes[] = {0, 0xffffffff, 200000, 10};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
        struct buf b = sparse_image(1, 4);
        /* the first allocated grain is grain 1, its marker at first_grain */
        put32at(&b, built.first_grain + 8, sizes[i]);
        put_buf(store, "x.vmdk", &b);
        fails_cleanly("x.vmdk", "compressed size lies");
        buf_free(&b);
    }
    struct buf b = sparse_image(1, 4);
    memset(b.p + built.first_grain + 12, 0x55, 64); /* garbage zlib stream */
    put_buf(store, "x.vmdk", &b);
    fails_cleanly("x.vmdk", "garbage deflate data");
    buf_free(&b);
    b = sparse_image(1, 4);
    memset(b.p + b.len - 1024, 0, 512); /* footer wiped */
    put_buf(store, "x.vmdk", &b);
    fails_cleanly("x.vmdk", "footer missing");
    buf_free(&b);
}

Test(bad, cowd_headers, .init = setup, .fini = teardown)
{
    uint8_t raw[65536] = {1, 2, 3}, plan[128];
    memset(plan, G_DATA, sizeof(plan));
    const char *text = "createType=\"vmfsSparse\"\nRW 128 VMFSSPARSE \"d.vmdk\"\n";
    put(store, "c.vmdk", text, strlen(text));
    struct {
        uint64_t off;
        uint32_t v;
        const char *why;
    } cases[] = {{16, 0, "grain 0"},
                 {16, 3, "grain 3"},
                 {24, 0, "no directory"},
                 {20, 0xfffffff, "directory past end"},
                 {12, 64, "capacity too small"},
                 {4, 2, "version 2"},
                 {0, 0, "no magic"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct buf b;
        build_cowd(raw, plan, 128, 1, &b);
        put32at(&b, cases[i].off, cases[i].v);
        put_buf(store, "d.vmdk", &b);
        fails_cleanly("c.vmdk", cases[i].why);
        put(store, "d.vmdk", b.p, 1000);
        fails_cleanly("c.vmdk", "COWD truncated header");
        buf_free(&b);
    }
    struct buf b;
    build_cowd(raw, plan, 128, 1, &b);
    put32at(&b, built.first_gt, 2); /* grain inside the header */
    put_buf(store, "d.vmdk", &b);
    fails_cleanly("c.vmdk", "COWD grain in header");
    buf_free(&b);
}

Test(bad, sesparse_headers, .init = setup, .fini = teardown)
{
    size_t n = 16 * 4096;
    uint8_t *raw = make_raw(n, 5), plan[16];
    memset(plan, G_DATA, sizeof(plan));
    const char *text = "createType=\"seSparse\"\nRW 128 SESPARSE \"s.vmdk\"\n";
    put(store, "c.vmdk", text, strlen(text));
    struct {
        uint64_t off;
        uint64_t v;
        const char *why;
    } cases[] = {{8, 3, "version"},
                 {24, 16, "grain size"},
                 {32, 128, "table size"},
                 {40, 1, "flags"},
                 {80, 1ull << 40, "volatile header far away"},
                 {512 + 24, 1, "journal must be replayed"},
                 {128, 1ull << 50, "directory far away"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct buf b;
        build_sesparse(raw, plan, n / 512, &b);
        put64at(&b, cases[i].off, cases[i].v);
        put_buf(store, "s.vmdk", &b);
        fails_cleanly("c.vmdk", cases[i].why);
        buf_free(&b);
    }
    uint64_t entries[] = {0x2000000000000000ull, 0x10000000000000ffull};
    for (int i = 0; i < 2; i++) {
        struct buf b;
        build_sesparse(raw, plan, n / 512, &b);
        put64at(&b, built.gd_off, entries[i]);
        put_buf(store, "s.vmdk", &b);
        fails_cleanly("c.vmdk", "bad directory entry");
        buf_free(&b);
    }
    uint64_t gtes[] = {0x0000000000000001ull, 0x7000000000000000ull, 0x3000000000ffffffull};
    for (int i = 0; i < 3; i++) {
        struct buf b;
        build_sesparse(raw, plan, n / 512, &b);
        put64at(&b, built.first_gt, gtes[i]);
        put_buf(store, "s.vmdk", &b);
        fails_cleanly("c.vmdk", "bad table entry");
        buf_free(&b);
    }
    free(raw);
}

Test(bad, descriptors, .init = setup, .fini = teardown)
{
    uint8_t flat[4096] = {0};
    put(store, "f.raw", flat, sizeof(flat));
    struct {
        const char *text;
        int code;
        const char *needle;
    } cases[] = {
        {"createType=\"monolithicFlat\"\n", VDK_E_CORRUPT, "no extent"},
        {"createType=\"monolithicFlat\"\nRW 100 FLAT \"f.raw\" 0\n", VDK_E_CORRUPT, "truncated"},
        {"createType=\"monolithicFlat\"\nRW 8 FLAT \"f.raw\" 4\n", VDK_E_CORRUPT, "truncated"},
        {"createType=\"monolithicFlat\"\nRW 8 FLAT \"../f.raw\" 0\n", VDK_E_ESCAPE, "outside"},
        {"createType=\"monolithicFlat\"\nRW 8 FLAT \"/etc/passwd\" 0\n", VDK_E_ESCAPE, "outside"},
        {"createType=\"monolithicFlat\"\nRW 8 FLAT \"missing.raw\" 0\n", VDK_E_NOENT, "missing"},
        {"createType=\"monolithicSparse\"\nRW 8 SPARSE \"f.raw\"\n", VDK_E_CORRUPT, "header"},
        {"parentFileNameHint=\"../up.vmdk\"\nRW 8 FLAT \"f.raw\" 0\n", VDK_E_ESCAPE, "outside"},
        {"parentFileNameHint=\"nope.vmdk\"\nRW 8 FLAT \"f.raw\" 0\n", VDK_E_NOENT, "parent"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        put(store, "d.vmdk", cases[i].text, strlen(cases[i].text));
        const char *m = open_fails(store, "d.vmdk", 0, cases[i].code);
        cr_assert(strstr(m, cases[i].needle), "case %zu: '%s' lacks '%s'", i, m, cases[i].needle);
    }
    put(store, "e.vmdk", "", 0);
    open_fails(store, "e.vmdk", 0, VDK_E_CORRUPT);
    uint8_t junk[700];
    fill_random(junk, sizeof(junk), 9);
    junk[0] = 0x7f;
    put(store, "j.vmdk", junk, sizeof(junk));
    open_fails(store, "j.vmdk", 0, VDK_E_CORRUPT);
    open_fails(store, "absent.vmdk", 0, VDK_E_NOENT);
}

Test(bad, parent_chains, .init = setup, .fini = teardown)
{
    uint8_t flat[4096] = {0};
    put(store, "f.raw", flat, sizeof(flat));
    const char *a = "CID=1\nparentCID=2\nparentFileNameHint=\"b.vmdk\"\nRW 8 FLAT \"f.raw\" 0\n";
    const char *b = "CID=2\nparentCID=1\nparentFileNameHint=\"a.vmdk\"\nRW 8 FLAT \"f.raw\" 0\n";
    put(store, "a.vmdk", a, strlen(a));
    put(store, "b.vmdk", b, strlen(b));
    const char *m = open_fails(store, "a.vmdk", 0, VDK_E_CHAIN);
    cr_assert(strstr(m, "loop"), "%s", m);
    const char *self =
        "CID=1\nparentCID=1\nparentFileNameHint=\"./s.vmdk\"\nRW 8 FLAT \"f.raw\" 0\n";
    put(store, "s.vmdk", self, strlen(self));
    open_fails(store, "s.vmdk", 0, VDK_E_CHAIN);

    /* CID mismatch, and the override */
    const char *base = "CID=aaaa\nparentCID=ffffffff\nRW 8 FLAT \"f.raw\" 0\n";
    const char *kid = "CID=bbbb\nparentCID=cccc\nparentFileNameHint=\"base.vmdk\"\n"
                      "RW 8 FLAT \"f.raw\" 0\n";
    put(store, "base.vmdk", base, strlen(base));
    put(store, "kid.vmdk", kid, strlen(kid));
    m = open_fails(store, "kid.vmdk", 0, VDK_E_CID_MISMATCH);
    cr_assert(strstr(m, "parentCID"), "%s", m);
    vdk_close(open_ok(store, "kid.vmdk", VDK_OPEN_IGNORE_CID));

    /* 300 links: too deep */
    char name[32], parent[32], text[256];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "l%03d.vmdk", i);
        snprintf(parent, sizeof(parent), "l%03d.vmdk", i - 1);
        snprintf(text, sizeof(text), "CID=%x\nparentCID=%x\n%s%s%s\nRW 8 FLAT \"f.raw\" 0\n", i + 1,
                 i ? (unsigned)i : 0xffffffffu, i ? "parentFileNameHint=\"" : "", i ? parent : "",
                 i ? "\"" : "");
        put(store, name, text, strlen(text));
    }
    m = open_fails(store, "l299.vmdk", 0, VDK_E_CHAIN);
    cr_assert(strstr(m, "deeper"), "%s", m);
    vdk_disk *d = open_ok(store, "l200.vmdk", 0);
    vdk_info info;
    vdk_get_info(d, &info);
    cr_assert_eq(info.chain_depth, 201);
    vdk_close(d);
}
