/* Reading every extent format and chains, against an in-memory model. */
#include <criterion/criterion.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

#define MiB (1u << 20)

/* A random plan: each grain NONE, DATA or (when allowed) ZERO/UNMAPPED. */
static uint8_t *make_plan(uint64_t grains, uint64_t seed, int kinds)
{
    uint8_t *plan = malloc(grains);
    for (uint64_t g = 0; g < grains; g++) {
        uint64_t r = rnd(&seed) % 8;
        plan[g] = r < 3 ? G_NONE : r < 6 ? G_DATA : (uint8_t)(kinds > 2 ? 2 + r % 2 : 1);
        if (kinds == 3 && plan[g] == G_UNMAPPED)
            plan[g] = G_ZERO;
    }
    /* whole empty tables too */
    if (grains > 64)
        memset(plan + grains / 3, G_NONE, grains / 8);
    return plan;
}

/* The model of a link: its own grains over the parent's bytes. */
static uint8_t *apply(const uint8_t *raw, const uint8_t *plan, uint64_t grain_bytes, size_t n,
                      const uint8_t *parent)
{
    uint8_t *m = malloc(n);
    for (size_t off = 0; off < n; off += grain_bytes) {
        size_t len = n - off < grain_bytes ? n - off : grain_bytes;
        uint8_t k = plan[off / grain_bytes];
        if (k == G_DATA)
            memcpy(m + off, raw + off, len);
        else if (k == G_NONE && parent)
            memcpy(m + off, parent + off, len);
        else
            memset(m + off, 0, len);
    }
    return m;
}

static void kdmv_case(struct kdmv_opts o, size_t bytes, uint64_t seed, const char *name)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    uint32_t grain = o.grain ? o.grain : 128;
    uint64_t gb = grain * 512ull, grains = (bytes + gb - 1) / gb;
    uint8_t *raw = make_raw(grains * gb, seed);
    uint8_t *plan = make_plan(grains, seed, o.zeroed_flag ? 3 : 2);
    o.capacity = bytes / 512;
    char line[128];
    snprintf(line, sizeof(line), "RW %llu SPARSE \"%s\"", (unsigned long long)o.capacity,
             o.stream ? "generated-stream.vmdk" : name);
    char *text = descriptor(o.stream ? "streamOptimized" : "monolithicSparse", line, NULL, 0x1234,
                            0xffffffff);
    o.descriptor = text;
    struct buf b;
    build_kdmv(raw, plan, &o, &b);
    put_buf(s, name, &b);
    uint8_t *model = apply(raw, plan, gb, bytes, NULL);
    vdk_disk *d = open_ok(s, name, 0);
    check_reads(d, model, bytes, seed);
    vdk_info info;
    vdk_get_info(d, &info);
    cr_assert_eq(info.capacity, bytes);
    cr_assert_eq(info.cid, 0x1234);
    cr_assert_str_eq(info.adapter, "lsilogic");
    uint64_t alloc = 0;
    cr_assert_eq(vdk_allocated_bytes(d, &alloc), 0);
    uint64_t want = 0;
    for (uint64_t g = 0; g < grains; g++)
        if (plan[g] == G_DATA)
            want += (g + 1) * gb > bytes ? bytes - g * gb : gb;
    cr_assert_eq(alloc, want, "allocated %llu want %llu", (unsigned long long)alloc,
                 (unsigned long long)want);
    vdk_close(d);
    s->ops->destroy(s);
    buf_free(&b);
    free(raw);
    free(plan);
    free(model);
    free(text);
}

Test(kdmv, monolithic_sparse)
{
    kdmv_case((struct kdmv_opts){0}, 8 * MiB, 1, "disk.vmdk");
}

Test(kdmv, small_grains_many_tables_skipped)
{
    kdmv_case((struct kdmv_opts){.grain = 8, .n_gtes = 16, .skip_empty_gts = 1}, 3 * MiB + 4096, 2,
              "disk.vmdk");
}

Test(kdmv, zeroed_grain_entries)
{
    kdmv_case((struct kdmv_opts){.zeroed_flag = 1}, 6 * MiB, 3, "z.vmdk");
}

Test(kdmv, partial_last_grain)
{
    kdmv_case((struct kdmv_opts){0}, 5 * MiB + 3 * 512, 4, "odd.vmdk");
}

Test(kdmv, stream_vmware_layout_renamed)
{
    /* embedded name generated-stream.vmdk, file called otherwise */
    kdmv_case((struct kdmv_opts){.stream = 1}, 8 * MiB, 5, "renamed.vmdk");
}

Test(kdmv, stream_without_empty_tables)
{
    kdmv_case((struct kdmv_opts){.stream = 1, .grain = 8, .n_gtes = 32, .skip_empty_gts = 1},
              4 * MiB + 512, 6, "s.vmdk");
}

Test(kdmv, bare_extent_without_descriptor)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    size_t n = 2 * MiB;
    uint8_t *raw = make_raw(n, 7), *plan = make_plan(n / 65536, 7, 2);
    struct buf b;
    build_kdmv(raw, plan, &(struct kdmv_opts){.capacity = n / 512}, &b);
    put_buf(s, "bare.vmdk", &b);
    vdk_disk *d = open_ok(s, "bare.vmdk", 0);
    uint8_t *model = apply(raw, plan, 65536, n, NULL);
    check_reads(d, model, n, 7);
    vdk_info info;
    vdk_get_info(d, &info);
    cr_assert_str_eq(info.create_type, "monolithicSparse");
    vdk_close(d);
    s->ops->destroy(s);
    buf_free(&b);
    free(raw);
    free(plan);
    free(model);
}

/* base (flat) <- COWD child (grain g) */
static void cowd_case(uint32_t grain, size_t n, uint64_t seed)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    uint8_t *base = make_raw(n, seed);
    put(s, "vm/base-flat.vmdk", base, n);
    char line[128];
    snprintf(line, sizeof(line), "RW %zu VMFS \"base-flat.vmdk\"", n / 512);
    char *bd = descriptor("vmfs", line, NULL, 0xaaaa, 0xffffffff);
    put(s, "vm/base.vmdk", bd, strlen(bd));

    uint64_t gb = grain * 512ull, grains = (n + gb - 1) / gb;
    uint8_t *raw = make_raw(grains * gb, seed + 100);
    uint8_t *plan = make_plan(grains, seed, 2);
    struct buf b;
    build_cowd(raw, plan, n / 512, grain, &b);
    put_buf(s, "vm/base-000001-delta.vmdk", &b);
    snprintf(line, sizeof(line), "RW %zu VMFSSPARSE \"base-000001-delta.vmdk\"", n / 512);
    char *cd = descriptor("vmfsSparse", line, "base.vmdk", 0xbbbb, 0xaaaa);
    put(s, "vm/base-000001.vmdk", cd, strlen(cd));

    vdk_disk *d = open_ok(s, "vm/base-000001.vmdk", 0);
    uint8_t *model = apply(raw, plan, gb, n, base);
    check_reads(d, model, n, seed);
    cr_assert_not_null(vdk_parent(d));
    check_reads(vdk_parent(d), base, n, seed);
    vdk_info info;
    vdk_get_info(d, &info);
    cr_assert_eq(info.chain_depth, 2);
    cr_assert_str_eq(info.parent_hint, "base.vmdk");
    vdk_extent_info x;
    cr_assert_eq(vdk_get_extent(d, 0, &x), 0);
    cr_assert_str_eq(x.format, "cowd");
    vdk_close(d);
    s->ops->destroy(s);
    buf_free(&b);
    free(base);
    free(raw);
    free(plan);
    free(model);
    free(bd);
    free(cd);
}

Test(cowd, grain_1)
{
    cowd_case(1, 3 * MiB, 11);
}

Test(cowd, grain_16_odd_size)
{
    cowd_case(16, 40 * MiB + 512 * 3, 12);
}

Test(sesparse, child_of_sparse_base)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    size_t n = 40 * MiB;
    uint8_t *base = make_raw(n, 21), *bplan = make_plan(n / 65536, 21, 2);
    char line[128];
    snprintf(line, sizeof(line), "RW %zu SPARSE \"base.vmdk\"", n / 512);
    char *bd = descriptor("monolithicSparse", line, NULL, 0x77, 0xffffffff);
    struct buf bb;
    build_kdmv(base, bplan, &(struct kdmv_opts){.capacity = n / 512, .descriptor = bd}, &bb);
    put_buf(s, "base.vmdk", &bb);
    uint8_t *bmodel = apply(base, bplan, 65536, n, NULL);

    uint8_t *raw = make_raw(n, 22), *plan = make_plan(n / 4096, 22, 4);
    struct buf b;
    build_sesparse(raw, plan, n / 512, &b);
    put_buf(s, "base-000001-sesparse.vmdk", &b);
    snprintf(line, sizeof(line), "RW %zu SESPARSE \"base-000001-sesparse.vmdk\"", n / 512);
    char *cd = descriptor("seSparse", line, "base.vmdk", 0x88, 0x77);
    put(s, "base-000001.vmdk", cd, strlen(cd));

    vdk_disk *d = open_ok(s, "base-000001.vmdk", 0);
    uint8_t *model = apply(raw, plan, 4096, n, bmodel);
    check_reads(d, model, n, 22);
    vdk_close(d);
    s->ops->destroy(s);
    buf_free(&b);
    buf_free(&bb);
    free(base);
    free(bplan);
    free(bmodel);
    free(raw);
    free(plan);
    free(model);
    free(bd);
    free(cd);
}

Test(extents, mixed_flat_zero_sparse_rdonly)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    size_t a = 1 * MiB, z = 512 * 7, sp = 2 * MiB, ro = 64 * 1024;
    uint8_t *fa = make_raw(a + 4096, 31);
    put(s, "a.raw", fa, a + 4096);
    uint8_t *rsp = make_raw(sp, 32), *plan = make_plan(sp / 65536, 32, 2);
    struct buf b;
    build_kdmv(rsp, plan, &(struct kdmv_opts){.capacity = sp / 512}, &b);
    put_buf(s, "s.vmdk", &b);
    const char *text = "createType=\"custom\"\nCID=1\nparentCID=ffffffff\n"
                       "RW 2048 FLAT \"a.raw\" 8\nRW 7 ZERO\nRW 4096 SPARSE \"s.vmdk\"\n"
                       "RDONLY 128 FLAT \"a.raw\" 0\nNOACCESS 8 ZERO\n";
    put(s, "m.vmdk", text, strlen(text));
    size_t n = a + z + sp + ro;
    uint8_t *model = calloc(1, n + 4096);
    memcpy(model, fa + 4096, a);
    uint8_t *sm = apply(rsp, plan, 65536, sp, NULL);
    memcpy(model + a + z, sm, sp);
    memcpy(model + a + z + sp, fa, ro);
    vdk_disk *d = open_ok(s, "m.vmdk", 0);
    cr_assert_eq(vdk_capacity(d), n + 4096);
    uint8_t *buf = malloc(n);
    cr_assert_eq(vdk_read(d, buf, n, 0), (int64_t)n);
    cr_assert(memcmp(buf, model, n) == 0);
    cr_assert_eq(vdk_read(d, buf, 512, n), -VDK_E_ACCESS, "NOACCESS extent refuses reads");
    vdk_error e;
    vdk_last_error(d, &e);
    cr_assert(strstr(e.message, "NOACCESS"), "%s", e.message);
    vdk_close(d);
    s->ops->destroy(s);
    buf_free(&b);
    free(fa);
    free(rsp);
    free(plan);
    free(sm);
    free(model);
    free(buf);
}

/* Chain of depth 4 mixing formats; map reports which link answers. */
struct maprec {
    uint64_t covered;
    unsigned max_depth;
};

static int on_range(void *arg, const vdk_range *r)
{
    struct maprec *m = arg;
    m->covered += r->length;
    if (r->depth > m->max_depth)
        m->max_depth = r->depth;
    return 0;
}

Test(chain, four_links_and_map)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    size_t n = 8 * MiB;
    uint8_t *model = NULL;
    uint32_t cid = 0x100;
    char name[32], parent[32], line[128];
    for (int level = 0; level < 4; level++) {
        uint8_t *raw = make_raw(n, 40 + (uint64_t)level),
                *plan = make_plan(n / 65536, 40 + level, 2);
        snprintf(name, sizeof(name), "l%d.vmdk", level);
        snprintf(line, sizeof(line), "RW %zu SPARSE \"%s\"", n / 512, name);
        char *text = descriptor("monolithicSparse", line, level ? parent : NULL, cid + level,
                                level ? cid + level - 1 : 0xffffffff);
        struct buf b;
        build_kdmv(raw, plan, &(struct kdmv_opts){.capacity = n / 512, .descriptor = text}, &b);
        put_buf(s, name, &b);
        uint8_t *m = apply(raw, plan, 65536, n, model);
        free(model);
        model = m;
        strcpy(parent, name);
        buf_free(&b);
        free(raw);
        free(plan);
        free(text);
    }
    vdk_disk *d = open_ok(s, "l3.vmdk", 0);
    check_reads(d, model, n, 44);
    struct maprec m = {0};
    cr_assert_eq(vdk_map(d, 0, n, 0, on_range, &m), 0);
    cr_assert_eq(m.covered, n);
    cr_assert_eq(m.max_depth, 3);
    m = (struct maprec){0};
    cr_assert_eq(vdk_map(d, 0, n, VDK_MAP_THIS_LINK, on_range, &m), 0);
    cr_assert_eq(m.max_depth, 0);
    vdk_disk *one = open_ok(s, "l3.vmdk", VDK_OPEN_SINGLE_LINK);
    cr_assert_null(vdk_parent(one));
    vdk_close(one);
    vdk_close(d);
    s->ops->destroy(s);
    free(model);
}

/* Many threads reading at once see the same bytes as one. */
struct reader {
    vdk_disk *d;
    const uint8_t *model;
    size_t n;
    uint64_t seed;
    int bad;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    uint8_t *buf = malloc(256 * 1024);
    for (int i = 0; i < 400; i++) {
        uint64_t off = rnd(&r->seed) % r->n;
        size_t len = (size_t)(rnd(&r->seed) % (256 * 1024)) + 1;
        if (len > r->n - off)
            len = r->n - off;
        if (vdk_read(r->d, buf, len, off) != (int64_t)len || memcmp(buf, r->model + off, len))
            r->bad++;
    }
    free(buf);
    return NULL;
}

Test(threads, concurrent_reads_of_compressed_chain)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    size_t n = 8 * MiB;
    uint8_t *raw = make_raw(n, 50), *plan = make_plan(n / 65536, 50, 2);
    char line[128];
    snprintf(line, sizeof(line), "RW %zu SPARSE \"base.vmdk\"", n / 512);
    char *text = descriptor("streamOptimized", line, NULL, 9, 0xffffffff);
    struct buf b;
    build_kdmv(raw, plan, &(struct kdmv_opts){.capacity = n / 512, .descriptor = text, .stream = 1},
               &b);
    put_buf(s, "base.vmdk", &b);
    uint8_t *m1 = apply(raw, plan, 65536, n, NULL);
    uint8_t *raw2 = make_raw(n, 51), *plan2 = make_plan(n / 512, 51, 2);
    struct buf c;
    build_cowd(raw2, plan2, n / 512, 1, &c);
    put_buf(s, "child-delta.vmdk", &c);
    snprintf(line, sizeof(line), "RW %zu VMFSSPARSE \"child-delta.vmdk\"", n / 512);
    char *ct = descriptor("vmfsSparse", line, "base.vmdk", 10, 9);
    put(s, "child.vmdk", ct, strlen(ct));
    uint8_t *m2 = apply(raw2, plan2, 512, n, m1);
    vdk_disk *d = open_ok(s, "child.vmdk", 0);
    pthread_t t[8];
    struct reader r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct reader){.d = d, .model = m2, .n = n, .seed = 1000 + (uint64_t)i};
        pthread_create(&t[i], NULL, reader_main, &r[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(r[i].bad, 0, "thread %d saw %d bad reads", i, r[i].bad);
    }
    vdk_close(d);
    s->ops->destroy(s);
    buf_free(&b);
    buf_free(&c);
    free(raw);
    free(plan);
    free(raw2);
    free(plan2);
    free(m1);
    free(m2);
    free(text);
    free(ct);
}

/* A 2 TiB sparse disk opens and reads in a few MiB of heap. */
Test(memory, two_tib_sparse_is_cheap)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    uint64_t sectors = 1ull << 32, grains = sectors / 128;
    uint8_t *plan = calloc(grains, 1);
    uint8_t *raw = make_raw(4 * 65536, 60);
    plan[0] = plan[1] = G_DATA;
    struct buf b;
    /* data only in the first grains; the builder reads raw for DATA grains */
    build_kdmv(raw, plan, &(struct kdmv_opts){.capacity = sectors, .skip_empty_gts = 1}, &b);
    put_buf(s, "big.vmdk", &b);
    buf_free(&b);
    free(plan);
    struct mallinfo2 before = mallinfo2();
    vdk_disk *d = open_ok(s, "big.vmdk", 0);
    uint8_t buf[65536];
    for (uint64_t off = 0; off < (sectors << 9); off += (sectors << 9) / 4096)
        cr_assert_eq(vdk_read(d, buf, sizeof(buf), off), (int64_t)sizeof(buf));
    cr_assert_eq(vdk_read(d, buf, sizeof(buf), 0), (int64_t)sizeof(buf));
    cr_assert(memcmp(buf, raw, sizeof(buf)) == 0);
    struct mallinfo2 after = mallinfo2();
    size_t grew = after.uordblks > before.uordblks ? after.uordblks - before.uordblks : 0;
    cr_assert_lt(grew, 12u << 20, "heap grew by %zu bytes", grew);
    vdk_close(d);
    s->ops->destroy(s);
    free(raw);
}
