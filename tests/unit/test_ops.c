/* Operations on existing disks: commit (also interrupted at every write),
 * attach, unlink, check/repair. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "faultstore.h"

#define N (6u << 20)

static void write_pattern(vdk_store *s, const char *name, uint8_t *model, uint64_t seed)
{
    vdk_disk *d;
    vdk_error err = {0};
    cr_assert_eq(vdk_open_store(s, name, 0, &d, &err), 0, "%s", err.message);
    uint8_t buf[70000];
    for (int i = 0; i < 40; i++) {
        uint64_t off = rnd(&seed) % N;
        size_t len = (size_t)(rnd(&seed) % sizeof(buf)) + 1;
        if (len > N - off)
            len = N - off;
        if (i % 5 == 0)
            memset(buf, 0, len);
        else
            fill_random(buf, len, seed + (uint64_t)i);
        cr_assert_eq(vdk_write(d, buf, len, off), (int64_t)len);
        memcpy(model + off, buf, len);
    }
    cr_assert_eq(vdk_close(d), 0);
}

static void child(vdk_store *s, const char *parent, const char *name, const char *type)
{
    vdk_disk *d = open_ok(s, parent, 0);
    vdk_error err = {0};
    cr_assert_eq(vdk_create_child(d, name, type, NULL, &err), 0, "%s", err.message);
    vdk_close(d);
}

/* base <- a <- b, each written; returns the models of a and b. */
static vdk_store *chain3(uint8_t **ma, uint8_t **mb, const char *type)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    vdk_error err = {0};
    vdk_create_params p = {.capacity = N};
    cr_assert_eq(vdk_create(s, "base.vmdk", &p, &err), 0, "%s", err.message);
    uint8_t *m = calloc(1, N);
    write_pattern(s, "base.vmdk", m, 1);
    child(s, "base.vmdk", "a.vmdk", type);
    write_pattern(s, "a.vmdk", m, 2);
    *ma = malloc(N);
    memcpy(*ma, m, N);
    child(s, "a.vmdk", "b.vmdk", type);
    write_pattern(s, "b.vmdk", m, 3);
    *mb = m;
    return s;
}

static int exists(vdk_store *s, const char *name)
{
    struct vdk_stat st;
    return s->ops->stat(s, name, &st) == 0;
}

Test(commit, middle_link_into_base)
{
    const char *types[] = {"monolithicSparse", "vmfsSparse", "seSparse"};
    for (int t = 0; t < 3; t++) {
        uint8_t *ma, *mb;
        vdk_store *s = chain3(&ma, &mb, types[t]);
        vdk_error err = {0};
        cr_assert_eq(vdk_commit(s, "a.vmdk", 0, NULL, NULL, &err), 0, "%s: %s", types[t],
                     err.message);
        cr_assert(!exists(s, "a.vmdk"), "the committed link is removed");
        vdk_disk *d = open_ok(s, "base.vmdk", 0);
        check_reads(d, ma, N, 4);
        vdk_close(d);
        d = open_ok(s, "b.vmdk", 0); /* re-pointed at base, CID matching */
        vdk_info info;
        vdk_get_info(d, &info);
        cr_assert_str_eq(info.parent_hint, "base.vmdk");
        check_reads(d, mb, N, 5);
        vdk_close(d);
        s->ops->destroy(s);
        free(ma);
        free(mb);
    }
}

Test(commit, all_into_base_and_refusals)
{
    uint8_t *ma, *mb;
    vdk_store *s = chain3(&ma, &mb, "monolithicSparse");
    vdk_error err = {0};
    child(s, "a.vmdk", "sibling.vmdk", NULL);
    cr_assert_eq(vdk_commit(s, "b.vmdk", 0, NULL, NULL, &err), -VDK_E_EXISTS);
    cr_assert(strstr(err.message, "sibling"), "%s", err.message);
    cr_assert_eq(vdk_commit(s, "base.vmdk", 0, NULL, NULL, &err), -VDK_E_INVAL);
    cr_assert_eq(vdk_unlink(s, "sibling.vmdk", 0, &err), 0, "%s", err.message);
    cr_assert_eq(vdk_commit(s, "b.vmdk", 1, NULL, NULL, &err), 0, "%s", err.message);
    cr_assert(!exists(s, "a.vmdk") && !exists(s, "b.vmdk"));
    vdk_disk *d = open_ok(s, "base.vmdk", 0);
    check_reads(d, mb, N, 6);
    vdk_close(d);
    s->ops->destroy(s);
    free(ma);
    free(mb);
}

/* Fail the Nth write of a commit for every N: both links stay readable with
 * their content, and running the commit again finishes the job. */
Test(commit, interrupted_at_every_write)
{
    uint8_t *ma, *mb;
    vdk_store *s = chain3(&ma, &mb, "monolithicSparse");
    vdk_store *probe = faultstore_new(s, 0);
    /* count the writes of a full commit on a copy of the chain */
    vdk_store *copy;
    cr_assert_eq(vdk_store_mem_new(&copy), 0);
    const char *files[] = {"base.vmdk", "a.vmdk", "b.vmdk"};
    for (int i = 0; i < 3; i++) {
        vdk_file *f;
        uint64_t size;
        cr_assert_eq(s->ops->open(s, files[i], VDK_STORE_READ, &f), 0);
        f->ops->size(f, &size);
        uint8_t *buf = malloc(size);
        f->ops->pread(f, buf, size, 0);
        put(copy, files[i], buf, size);
        f->ops->close(f);
        free(buf);
    }
    vdk_store *counter = faultstore_new(copy, 0);
    vdk_error err = {0};
    cr_assert_eq(vdk_commit(counter, "b.vmdk", 0, NULL, NULL, &err), 0, "%s", err.message);
    unsigned long total = faultstore_writes(counter);
    counter->ops->destroy(counter);
    copy->ops->destroy(copy);
    probe->ops->destroy(probe);
    cr_assert_gt(total, 10);
    unsigned long step = total / 60 + 1;
    for (unsigned long n = 1; n <= total; n += step) {
        vdk_store *f = faultstore_new(s, n);
        int r = vdk_commit(f, "b.vmdk", 0, NULL, NULL, &err);
        f->ops->destroy(f);
        if (r == 0)
            break; /* already complete: nothing left to interrupt */
        /* the top of the chain reads as before, whichever link holds it */
        const char *top = exists(s, "b.vmdk") ? "b.vmdk" : "a.vmdk";
        vdk_disk *d = NULL;
        vdk_error oe = {0};
        cr_assert_eq(vdk_open_store(s, top, VDK_OPEN_RDONLY, &d, &oe), 0,
                     "after failing write %lu: %s", n, oe.message);
        check_reads(d, mb, N, n);
        vdk_close(d);
        unsigned problems = 0;
        d = open_ok(s, "a.vmdk", 0);
        vdk_check(d, 0, NULL, NULL, &problems, NULL);
        vdk_close(d);
    }
    /* and a clean run completes it */
    if (exists(s, "b.vmdk"))
        cr_assert_eq(vdk_commit(s, "b.vmdk", 0, NULL, NULL, &err), 0, "%s", err.message);
    vdk_disk *d = open_ok(s, "a.vmdk", 0);
    check_reads(d, mb, N, 7);
    vdk_close(d);
    s->ops->destroy(s);
    free(ma);
    free(mb);
}

Test(attach, rules)
{
    uint8_t *ma, *mb;
    vdk_store *s = chain3(&ma, &mb, "monolithicSparse");
    vdk_error err = {0};
    /* b was made from a's content, not base's */
    cr_assert_eq(vdk_attach(s, "b.vmdk", "base.vmdk", 0, &err), -VDK_E_CID_MISMATCH);
    cr_assert_eq(vdk_attach(s, "a.vmdk", "b.vmdk", 1, &err), -VDK_E_CHAIN, "%s", err.message);
    vdk_create_params p = {.capacity = N / 2};
    cr_assert_eq(vdk_create(s, "small.vmdk", &p, &err), 0);
    cr_assert_eq(vdk_attach(s, "b.vmdk", "small.vmdk", 1, &err), -VDK_E_RANGE);
    /* a branch: a new child of base, attached elsewhere and back */
    child(s, "base.vmdk", "branch.vmdk", NULL);
    cr_assert_eq(vdk_attach(s, "branch.vmdk", "base.vmdk", 0, &err), 0, "%s", err.message);
    cr_assert_eq(vdk_attach(s, "branch.vmdk", "a.vmdk", 1, &err), 0, "%s", err.message);
    vdk_disk *d = open_ok(s, "branch.vmdk", 0);
    check_reads(d, ma, N, 8);
    vdk_close(d);
    s->ops->destroy(s);
    free(ma);
    free(mb);
}

Test(unlink, children_protect_parents)
{
    uint8_t *ma, *mb;
    vdk_store *s = chain3(&ma, &mb, "vmfsSparse");
    vdk_error err = {0};
    cr_assert_eq(vdk_unlink(s, "a.vmdk", 0, &err), -VDK_E_EXISTS);
    cr_assert(strstr(err.message, "b.vmdk"), "%s", err.message);
    cr_assert(exists(s, "a-delta.vmdk"));
    cr_assert_eq(vdk_unlink(s, "b.vmdk", 0, &err), 0, "%s", err.message);
    cr_assert(!exists(s, "b.vmdk") && !exists(s, "b-delta.vmdk"));
    cr_assert_eq(vdk_unlink(s, "a.vmdk", 0, &err), 0, "%s", err.message);
    cr_assert(!exists(s, "a.vmdk") && !exists(s, "a-delta.vmdk"));
    cr_assert_eq(vdk_unlink(s, "a.vmdk", 0, &err), -VDK_E_NOENT);
    s->ops->destroy(s);
    free(ma);
    free(mb);
}

static uint64_t file_size(vdk_store *s, const char *name)
{
    struct vdk_stat st;
    cr_assert_eq(s->ops->stat(s, name, &st), 0, "%s", name);
    return st.size;
}

/* Shrink a base (zeros written over data free their grains) and children
 * of every format (zeros over the parent's data must stay). */
Test(shrink, base_and_children)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    vdk_error err = {0};
    vdk_create_params p = {.capacity = N};
    cr_assert_eq(vdk_create(s, "solo.vmdk", &p, &err), 0, "%s", err.message);
    uint8_t *m0 = calloc(1, N);
    write_pattern(s, "solo.vmdk", m0, 11);
    /* zero half of the data: the grains stay allocated until shrink */
    vdk_disk *d;
    cr_assert_eq(vdk_open_store(s, "solo.vmdk", 0, &d, &err), 0);
    uint8_t *z = calloc(1, N / 2);
    cr_assert_eq(vdk_write(d, z, N / 2, 0), N / 2);
    memset(m0, 0, N / 2);
    cr_assert_eq(vdk_close(d), 0);
    d = open_ok(s, "solo.vmdk", 0);
    vdk_info before;
    vdk_get_info(d, &before);
    vdk_close(d);
    uint64_t was = file_size(s, "solo.vmdk"), saved = 0;
    cr_assert_eq(vdk_shrink(s, "solo.vmdk", NULL, NULL, &saved, &err), 0, "%s", err.message);
    cr_assert_lt(file_size(s, "solo.vmdk"), was);
    cr_assert_eq(saved, was - file_size(s, "solo.vmdk"));
    d = open_ok(s, "solo.vmdk", 0);
    check_reads(d, m0, N, 9);
    vdk_info after;
    vdk_get_info(d, &after);
    cr_assert_eq(after.cid, before.cid, "content unchanged: CID unchanged");
    vdk_close(d);
    free(z);
    free(m0);
    s->ops->destroy(s);
    uint8_t *ma, *mb;
    const char *types[] = {"monolithicSparse", "vmfsSparse", "seSparse"};
    for (int t = 0; t < 3; t++) {
        s = chain3(&ma, &mb, types[t]);
        /* zeros over the parent's data in the top link */
        cr_assert_eq(vdk_open_store(s, "b.vmdk", 0, &d, &err), 0);
        uint8_t zz[8192] = {0};
        cr_assert_eq(vdk_write(d, zz, sizeof(zz), 4096), (int64_t)sizeof(zz));
        memset(mb + 4096, 0, sizeof(zz));
        cr_assert_eq(vdk_close(d), 0);
        cr_assert_eq(vdk_defragment(s, "b.vmdk", NULL, NULL, &err), 0, "%s: %s", types[t],
                     err.message);
        d = open_ok(s, "b.vmdk", 0);
        check_reads(d, mb, N, 10);
        vdk_close(d);
        unsigned problems = 1;
        cr_assert_eq(vdk_open_store(s, "b.vmdk", 0, &d, &err), 0);
        cr_assert_eq(vdk_check(d, 0, NULL, NULL, &problems, NULL), 0);
        cr_assert_eq(problems, 0, "%s: check after defragment", types[t]);
        vdk_close(d);
        s->ops->destroy(s);
        free(ma);
        free(mb);
    }
}

/* A shrink that fails at any write leaves the disk as it was. */
Test(shrink, interrupted_at_every_write)
{
    uint8_t *ma, *mb;
    vdk_store *s = chain3(&ma, &mb, "monolithicSparse");
    vdk_error err = {0};
    for (unsigned long n = 1; n < 400; n += 7) {
        vdk_store *f = faultstore_new(s, n);
        uint64_t saved;
        int r = vdk_shrink(f, "a.vmdk", NULL, NULL, &saved, &err);
        f->ops->destroy(f);
        vdk_disk *d = open_ok(s, "b.vmdk", 0);
        check_reads(d, mb, N, n);
        vdk_close(d);
        if (r == 0)
            break;
    }
    s->ops->destroy(s);
    free(ma);
    free(mb);
}

/* Grow within the directory's sectors and past them (the directory moves). */
Test(grow, sparse_in_place_and_relocated)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    vdk_error err = {0};
    vdk_create_params p = {.capacity = N};
    cr_assert_eq(vdk_create(s, "g.vmdk", &p, &err), 0, "%s", err.message);
    uint64_t sizes[] = {100ull << 20, 5ull << 30};
    uint8_t *m = calloc(1, N);
    write_pattern(s, "g.vmdk", m, 12);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(vdk_grow(s, "g.vmdk", sizes[i], &err), 0, "%s", err.message);
        vdk_disk *d;
        cr_assert_eq(vdk_open_store(s, "g.vmdk", 0, &d, &err), 0, "%s", err.message);
        cr_assert_eq(vdk_capacity(d), sizes[i]);
        uint8_t buf[65536], tail[65536] = {0};
        cr_assert_eq(vdk_read(d, buf, sizeof(buf), sizes[i] - sizeof(buf)), (int64_t)sizeof(buf));
        cr_assert(memcmp(buf, tail, sizeof(buf)) == 0, "the new range reads as zeros");
        memset(buf, 0x77, sizeof(buf));
        cr_assert_eq(vdk_write(d, buf, sizeof(buf), sizes[i] - sizeof(buf)), (int64_t)sizeof(buf));
        uint8_t *cur = malloc(N);
        cr_assert_eq(vdk_read(d, cur, N, 0), N);
        cr_assert(memcmp(cur, m, N) == 0, "old content kept after growing to %llu",
                  (unsigned long long)sizes[i]);
        free(cur);
        unsigned problems = 1;
        cr_assert_eq(vdk_check(d, 0, NULL, NULL, &problems, NULL), 0);
        cr_assert_eq(problems, 0);
        cr_assert_eq(vdk_close(d), 0);
        d = open_ok(s, "g.vmdk", 0);
        cr_assert_eq(vdk_read(d, buf, sizeof(buf), sizes[i] - sizeof(buf)), (int64_t)sizeof(buf));
        cr_assert_eq(buf[0], 0x77);
        vdk_close(d);
    }
    cr_assert_eq(vdk_grow(s, "g.vmdk", N, &err), -VDK_E_INVAL);
    free(m);
    s->ops->destroy(s);
}

/* Punching a hole frees a base disk's grains; in a child it hides the parent. */
Test(discard, base_frees_child_hides)
{
    uint8_t *ma, *mb;
    vdk_store *s = chain3(&ma, &mb, "monolithicSparse");
    vdk_error err = {0};
    vdk_disk *d;
    cr_assert_eq(vdk_unlink(s, "b.vmdk", 0, &err), 0);
    cr_assert_eq(vdk_open_store(s, "a.vmdk", 0, &d, &err), 0);
    cr_assert_eq(vdk_discard(d, 65536 + 100, 3 * 65536), 0);
    memset(ma + 65536 + 100, 0, 3 * 65536);
    check_reads(d, ma, N, 13);
    cr_assert_eq(vdk_close(d), 0);
    cr_assert_eq(vdk_unlink(s, "a.vmdk", 0, &err), 0);
    cr_assert_eq(vdk_open_store(s, "base.vmdk", 0, &d, &err), 0);
    uint64_t before, after;
    cr_assert_eq(vdk_allocated_bytes(d, &before), 0);
    cr_assert_eq(vdk_discard(d, 0, N), 0);
    cr_assert_eq(vdk_allocated_bytes(d, &after), 0);
    cr_assert_gt(before, 0);
    cr_assert_eq(after, 0, "%llu bytes still allocated", (unsigned long long)after);
    uint8_t *z = calloc(1, N);
    check_reads(d, z, N, 14);
    cr_assert_eq(vdk_close(d), 0);
    free(z);
    s->ops->destroy(s);
    free(ma);
    free(mb);
}
