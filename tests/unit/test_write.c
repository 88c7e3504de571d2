/* Writes through libvdk against an in-memory model: every alignment,
 * across grain and extent boundaries, zeros, chains, reopen, threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

#define MiB (1u << 20)

static vdk_disk *open_rw(vdk_store *s, const char *name)
{
    vdk_disk *d = NULL;
    vdk_error err = {0};
    int r = vdk_open_store(s, name, 0, &d, &err);
    cr_assert_eq(r, 0, "open rw %s: %s", name, err.message);
    return d;
}

/* Random writes (some all-zero) and read-backs, then reopen and compare. */
static void hammer(vdk_store *s, const char *name, uint8_t *model, size_t n, uint64_t seed,
                   int rounds)
{
    vdk_disk *d = open_rw(s, name);
    vdk_info before;
    vdk_get_info(d, &before);
    uint8_t *buf = malloc(300000), *rb = malloc(300000);
    for (int i = 0; i < rounds; i++) {
        uint64_t off = rnd(&seed) % n;
        size_t len = (size_t)(rnd(&seed) % (i % 5 == 0 ? 300000 : 3000)) + 1;
        if (i % 7 == 0)
            off = off / 512 * 512; /* sector aligned too */
        if (len > n - off)
            len = n - off;
        if (i % 4 == 0)
            memset(buf, 0, len);
        else
            fill_random(buf, len, rnd(&seed));
        int64_t w = vdk_write(d, buf, len, off);
        if (w != (int64_t)len) {
            vdk_error e;
            vdk_last_error(d, &e);
            cr_assert_fail("write %zu at %llu: %lld (%s)", len, (unsigned long long)off,
                           (long long)w, e.message);
        }
        memcpy(model + off, buf, len);
        uint64_t roff = rnd(&seed) % n;
        size_t rl = (size_t)(rnd(&seed) % 200000) + 1;
        if (rl > n - roff)
            rl = n - roff;
        cr_assert_eq(vdk_read(d, rb, rl, roff), (int64_t)rl);
        cr_assert(memcmp(rb, model + roff, rl) == 0, "round %d: read %zu at %llu differs", i, rl,
                  (unsigned long long)roff);
    }
    cr_assert_eq(vdk_flush(d), 0);
    cr_assert_eq(vdk_close(d), 0);
    d = open_ok(s, name, 0);
    vdk_info after;
    vdk_get_info(d, &after);
    cr_assert_neq(after.cid, before.cid, "the first write renews the CID");
    cr_assert_eq(after.unclean, 0, "a clean close clears uncleanShutdown");
    check_reads(d, model, n, seed);
    vdk_close(d);
    free(buf);
    free(rb);
}

static void sparse_case(struct kdmv_opts o, size_t n, uint64_t seed)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    uint32_t grain = o.grain ? o.grain : 128;
    uint64_t grains = (n + grain * 512ull - 1) / (grain * 512ull);
    uint8_t *raw = make_raw(grains * grain * 512, seed);
    uint8_t *plan = calloc(grains, 1);
    for (uint64_t g = 0; g < grains; g += 3)
        plan[g] = G_DATA;
    char line[96];
    snprintf(line, sizeof(line), "RW %zu SPARSE \"d.vmdk\"", n / 512);
    char *text = descriptor("monolithicSparse", line, NULL, 0x55, 0xffffffff);
    o.capacity = n / 512;
    o.descriptor = text;
    struct buf b;
    build_kdmv(raw, plan, &o, &b);
    put_buf(s, "d.vmdk", &b);
    uint8_t *model = calloc(1, n);
    for (uint64_t g = 0; g < grains; g++)
        if (plan[g] == G_DATA)
            memcpy(model + g * grain * 512, raw + g * grain * 512,
                   (g + 1) * grain * 512 > n ? n - g * grain * 512 : grain * 512);
    hammer(s, "d.vmdk", model, n, seed, 2000);
    s->ops->destroy(s);
    buf_free(&b);
    free(raw);
    free(plan);
    free(model);
    free(text);
}

Test(write, monolithic_sparse)
{
    sparse_case((struct kdmv_opts){0}, 16 * MiB, 1);
}

Test(write, sparse_tables_allocated_on_demand)
{
    /* GD entries of 0: a write must create the grain table first */
    sparse_case((struct kdmv_opts){.grain = 8, .n_gtes = 16, .skip_empty_gts = 1}, 6 * MiB + 1536,
                2);
}

Test(write, zeroed_grain_flag)
{
    sparse_case((struct kdmv_opts){.zeroed_flag = 1}, 8 * MiB, 3);
}

Test(write, flat_and_multi_extent_boundaries)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    size_t a = 3 * MiB + 512, b = 2 * MiB;
    uint8_t *fa = make_raw(a + 8192, 4);
    put(s, "a-f001.vmdk", fa, a + 8192);
    uint8_t plan[64] = {0};
    struct buf sb;
    build_kdmv(fa, plan, &(struct kdmv_opts){.capacity = b / 512}, &sb);
    put_buf(s, "a-s002.vmdk", &sb);
    char text[512];
    snprintf(text, sizeof(text),
             "CID=1\nparentCID=ffffffff\ncreateType=\"custom\"\n"
             "RW %zu FLAT \"a-f001.vmdk\" 16\nRW %zu SPARSE \"a-s002.vmdk\"\n",
             a / 512, b / 512);
    put(s, "a.vmdk", text, strlen(text));
    uint8_t *model = calloc(1, a + b);
    memcpy(model, fa + 8192, a);
    hammer(s, "a.vmdk", model, a + b, 5, 2000);
    /* the flat file's first 8 KiB (before the extent's offset) is untouched */
    vdk_file *f;
    cr_assert_eq(s->ops->open(s, "a-f001.vmdk", VDK_STORE_READ, &f), 0);
    uint8_t head[8192];
    cr_assert_eq(f->ops->pread(f, head, sizeof(head), 0), (int64_t)sizeof(head));
    cr_assert(memcmp(head, fa, sizeof(head)) == 0);
    f->ops->close(f);
    s->ops->destroy(s);
    buf_free(&sb);
    free(fa);
    free(model);
}

/* COWD and sparse children: writes copy what lies below into new grains. */
static void child_case(int cowd, uint64_t seed)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    size_t n = 12 * MiB + 4096;
    uint8_t *base = make_raw(n, seed);
    put(s, "base-flat.vmdk", base, n);
    char line[96];
    snprintf(line, sizeof(line), "RW %zu VMFS \"base-flat.vmdk\"", n / 512);
    char *bd = descriptor("vmfs", line, NULL, 0x10, 0xffffffff);
    put(s, "base.vmdk", bd, strlen(bd));
    uint8_t *plan = calloc(n / 512 + 1, 1);
    struct buf b;
    char *cd;
    if (cowd) {
        build_cowd(base, plan, n / 512, 1, &b);
        put_buf(s, "kid-delta.vmdk", &b);
        snprintf(line, sizeof(line), "RW %zu VMFSSPARSE \"kid-delta.vmdk\"", n / 512);
        cd = descriptor("vmfsSparse", line, "base.vmdk", 0x20, 0x10);
        put(s, "kid.vmdk", cd, strlen(cd));
    } else {
        snprintf(line, sizeof(line), "RW %zu SPARSE \"kid.vmdk\"", n / 512);
        cd = descriptor("monolithicSparse", line, "base.vmdk", 0x20, 0x10);
        build_kdmv(base, plan, &(struct kdmv_opts){.capacity = n / 512, .descriptor = cd}, &b);
        put_buf(s, "kid.vmdk", &b);
    }
    uint8_t *model = malloc(n);
    memcpy(model, base, n);
    hammer(s, "kid.vmdk", model, n, seed, 1500);
    /* the parent is untouched */
    vdk_disk *p = open_ok(s, "base.vmdk", 0);
    check_reads(p, base, n, seed);
    vdk_close(p);
    /* and the child's parentCID still matches: the parent was not written */
    vdk_close(open_ok(s, "kid.vmdk", 0));
    s->ops->destroy(s);
    buf_free(&b);
    free(base);
    free(plan);
    free(model);
    free(bd);
    free(cd);
}

Test(write, cowd_child)
{
    child_case(1, 6);
}

Test(write, sparse_child)
{
    child_case(0, 7);
}

Test(write, refusals)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    uint8_t raw[65536 * 4] = {1}, plan[4] = {G_DATA, 0, 0, 0};
    char *text = descriptor("streamOptimized", "RW 512 SPARSE \"s.vmdk\"", NULL, 1, 0xffffffff);
    struct buf b;
    build_kdmv(raw, plan, &(struct kdmv_opts){.capacity = 512, .stream = 1, .descriptor = text},
               &b);
    put_buf(s, "s.vmdk", &b);
    vdk_disk *d = open_rw(s, "s.vmdk");
    cr_assert_eq(vdk_write(d, raw, 512, 0), -VDK_E_UNSUPPORTED);
    vdk_error e;
    vdk_last_error(d, &e);
    cr_assert(strstr(e.message, "streamOptimized"), "%s", e.message);
    cr_assert_eq(vdk_write(d, raw, 512, 512 * 512), -VDK_E_RANGE);
    vdk_close(d);
    d = open_ok(s, "s.vmdk", 0);
    cr_assert_eq(vdk_write(d, raw, 512, 0), -VDK_E_RDONLY);
    vdk_close(d);
    const char *ro = "createType=\"custom\"\nRDONLY 8 ZERO\nRW 8 ZERO\n";
    put(s, "r.vmdk", ro, strlen(ro));
    d = open_rw(s, "r.vmdk");
    cr_assert_eq(vdk_write(d, raw, 512, 0), -VDK_E_RDONLY);
    uint8_t zeros[512] = {0};
    cr_assert_eq(vdk_write(d, zeros, 512, 4096), 512, "zeros into a ZERO extent are fine");
    cr_assert_eq(vdk_write(d, raw, 512, 4096), -VDK_E_UNSUPPORTED);
    vdk_close(d);
    s->ops->destroy(s);
    buf_free(&b);
    free(text);
}

/* Writers in many threads (overlapping grains, disjoint bytes) and readers. */
struct worker {
    vdk_disk *d;
    int id;
    size_t n;
    int bad;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t buf[4096];
    /* each thread owns every 8th 4 KiB block: neighbours share grains */
    for (size_t blk = (size_t)w->id; blk * 4096 < w->n; blk += 8) {
        memset(buf, w->id + 1, sizeof(buf));
        if (vdk_write(w->d, buf, sizeof(buf), blk * 4096) != (int64_t)sizeof(buf))
            w->bad++;
        if (vdk_read(w->d, buf, sizeof(buf), blk * 4096) != (int64_t)sizeof(buf) ||
            buf[0] != w->id + 1 || buf[4095] != w->id + 1)
            w->bad++;
    }
    return NULL;
}

Test(write, concurrent_writers)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    size_t n = 16 * MiB;
    uint8_t *plan = calloc(n / 65536, 1);
    char *text = descriptor("monolithicSparse", "RW 32768 SPARSE \"t.vmdk\"", NULL, 1, 0xffffffff);
    struct buf b;
    build_kdmv(NULL, plan, &(struct kdmv_opts){.capacity = n / 512, .descriptor = text}, &b);
    put_buf(s, "t.vmdk", &b);
    vdk_disk *d = open_rw(s, "t.vmdk");
    pthread_t t[8];
    struct worker w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (struct worker){.d = d, .id = i, .n = n};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].bad, 0, "thread %d: %d bad", i, w[i].bad);
    }
    cr_assert_eq(vdk_close(d), 0);
    uint8_t *model = malloc(n);
    for (size_t blk = 0; blk * 4096 < n; blk++)
        memset(model + blk * 4096, (int)(blk % 8) + 1, 4096);
    d = open_ok(s, "t.vmdk", 0);
    check_reads(d, model, n, 9);
    uint64_t alloc;
    cr_assert_eq(vdk_allocated_bytes(d, &alloc), 0);
    cr_assert_eq(alloc, n, "each grain allocated once");
    vdk_close(d);
    s->ops->destroy(s);
    buf_free(&b);
    free(plan);
    free(model);
    free(text);
}

/* Children made by vdk_create_child, of every child type, hammered. */
static void made_child(const char *type, uint64_t seed)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    size_t n = 20 * MiB + 3 * 512;
    vdk_error err = {0};
    vdk_create_params p = {.capacity = n, .adapter = "pvscsi"};
    cr_assert_eq(vdk_create(s, "vm/base.vmdk", &p, &err), 0, "%s", err.message);
    uint8_t *model = make_raw(n, seed);
    vdk_disk *d;
    cr_assert_eq(vdk_open_store(s, "vm/base.vmdk", 0, &d, &err), 0, "%s", err.message);
    cr_assert_eq(vdk_write(d, model, n, 0), (int64_t)n);
    cr_assert_eq(vdk_close(d), 0);
    d = open_ok(s, "vm/base.vmdk", 0);
    char name[VDK_NAME_MAX];
    cr_assert_eq(vdk_create_child(d, NULL, type, name, &err), 0, "%s", err.message);
    vdk_close(d);
    cr_assert_str_eq(name, "vm/base-000001.vmdk");
    d = open_ok(s, name, 0);
    vdk_info info;
    vdk_get_info(d, &info);
    cr_assert_str_eq(info.create_type, type);
    cr_assert_str_eq(info.adapter, "pvscsi");
    cr_assert_str_eq(info.parent_hint, "base.vmdk");
    check_reads(d, model, n, seed);
    vdk_close(d);
    hammer(s, name, model, n, seed, 1500);
    /* a grandchild with an explicit name in another folder of the store */
    d = open_ok(s, name, 0);
    cr_assert_eq(vdk_create_child(d, "snaps/g.vmdk", type, NULL, &err), 0, "%s", err.message);
    vdk_close(d);
    d = open_ok(s, "snaps/g.vmdk", 0);
    vdk_get_info(d, &info);
    cr_assert_str_eq(info.parent_hint, "../vm/base-000001.vmdk");
    vdk_close(d);
    hammer(s, "snaps/g.vmdk", model, n, seed + 1, 500);
    s->ops->destroy(s);
    free(model);
}

Test(child, monolithic_sparse)
{
    made_child("monolithicSparse", 20);
}

Test(child, vmfs_sparse)
{
    made_child("vmfsSparse", 21);
}

Test(child, se_sparse)
{
    made_child("seSparse", 22);
}

Test(child, split_sparse)
{
    made_child("twoGbMaxExtentSparse", 23);
}

static int all_zero_or(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static int count_data(void *arg, const vdk_range *r)
{
    if (r->kind == VDK_RANGE_DATA)
        *(uint64_t *)arg += r->length;
    return 0;
}

/* Zeros written where reads already give zeros allocate nothing; zeros over
 * a parent's data hide it. */
Test(write, zeros_stay_sparse)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    vdk_error err = {0};
    vdk_create_params p = {.capacity = 4 * MiB};
    cr_assert_eq(vdk_create(s, "b.vmdk", &p, &err), 0, "%s", err.message);
    vdk_disk *d;
    cr_assert_eq(vdk_open_store(s, "b.vmdk", 0, &d, NULL), 0);
    uint8_t *zeros = calloc(1, MiB), *ones = malloc(MiB);
    memset(ones, 1, MiB);
    cr_assert_eq(vdk_write(d, zeros, MiB, 0), MiB);
    uint64_t alloc = 0;
    cr_assert_eq(vdk_allocated_bytes(d, &alloc), 0);
    cr_assert_eq(alloc, 0, "zeros allocated %llu bytes", (unsigned long long)alloc);
    cr_assert_eq(vdk_write(d, ones, MiB, MiB), MiB);
    cr_assert_eq(vdk_close(d), 0);
    const char *types[] = {"monolithicSparse", "vmfsSparse", "seSparse"};
    for (int t = 0; t < 3; t++) {
        d = open_ok(s, "b.vmdk", 0);
        char name[VDK_NAME_MAX];
        snprintf(name, sizeof(name), "c%d.vmdk", t);
        cr_assert_eq(vdk_create_child(d, name, types[t], NULL, &err), 0, "%s", err.message);
        vdk_close(d);
        cr_assert_eq(vdk_open_store(s, name, 0, &d, NULL), 0);
        cr_assert_eq(vdk_write(d, zeros, MiB, 2 * MiB), MiB); /* over zeros: nothing */
        cr_assert_eq(vdk_write(d, zeros, 4096, MiB), 4096);   /* over data: must hide it */
        uint8_t buf[8192];
        cr_assert_eq(vdk_read(d, buf, sizeof(buf), MiB), (int64_t)sizeof(buf));
        cr_assert(all_zero_or(buf, 4096, 0) && buf[4096] == 1, "%s: zeros did not hide", types[t]);
        uint64_t mine = 0;
        cr_assert_eq(vdk_map(d, 0, 4 * MiB, VDK_MAP_THIS_LINK, count_data, &mine), 0);
        cr_assert_leq(mine, 65536, "%s: %llu bytes allocated for one hidden block", types[t],
                      (unsigned long long)mine);
        cr_assert_eq(vdk_close(d), 0);
    }
    s->ops->destroy(s);
    free(zeros);
    free(ones);
}

/* Long writes into a new base disk place runs of whole grains with one data
 * write and one table write per table: runs that cross a grain table, start
 * a new table, stop at zero grains and at grains already allocated must all
 * read back, keep the redundant tables in step and survive a reopen. */
Test(write, grain_runs_across_tables)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    vdk_error err = {0};
    const size_t n = 80 * MiB, G = 65536;
    vdk_create_params p = {.capacity = n};
    cr_assert_eq(vdk_create(s, "r.vmdk", &p, &err), 0, "%s", err.message);
    uint8_t *model = calloc(1, n), *buf = malloc(n);
    uint64_t seed = 7;
    vdk_disk *d = open_rw(s, "r.vmdk");
    /* a few grains already there, inside what the long write covers */
    for (uint64_t g = 500; g < 520; g += 7) {
        fill_random(model + g * G, G, rnd(&seed));
        cr_assert_eq(vdk_write(d, model + g * G, G, g * G), (int64_t)G);
    }
    /* 40 MiB from just before the first table's end (32 MiB), unaligned,
     * every fifth grain zeros */
    uint64_t off = 32 * MiB - 3 * G - 1000;
    size_t len = 40 * MiB;
    fill_random(buf, len, rnd(&seed));
    for (uint64_t g = (off + G - 1) / G; g * G + G <= off + len; g += 5)
        memset(buf + (g * G - off), 0, G);
    cr_assert_eq(vdk_write(d, buf, len, off), (int64_t)len);
    memcpy(model + off, buf, len);
    check_reads(d, model, n, seed);
    cr_assert_eq(vdk_close(d), 0);
    d = open_ok(s, "r.vmdk", 0);
    check_reads(d, model, n, seed);
    unsigned problems = 1;
    cr_assert_eq(vdk_check(d, 0, NULL, NULL, &problems, NULL), 0);
    cr_assert_eq(problems, 0, "check found %u problems", problems);
    uint64_t alloc = 0;
    cr_assert_eq(vdk_allocated_bytes(d, &alloc), 0);
    cr_assert_leq(alloc, (uint64_t)len * 4 / 5 + 4 * G, "zero grains were stored: %llu bytes",
                  (unsigned long long)alloc);
    vdk_close(d);
    s->ops->destroy(s);
    free(model);
    free(buf);
}
