/* The remote block cache: content through every path (misses, runs,
 * read-ahead, eviction under a small budget, many threads, detach while
 * read-ahead is queued), fetches failing, and read-ahead making few large
 * requests for a sequential read. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bcache.h"

#define BLK (64u << 10)

struct fake {
    unsigned char *data;
    uint64_t size;
    unsigned fetches, fail_every;
    uint64_t largest, fetched;
    pthread_mutex_t lock;
};

static int64_t fake_fetch(void *file, void *buf, size_t len, uint64_t off)
{
    struct fake *f = file;
    pthread_mutex_lock(&f->lock);
    unsigned n = ++f->fetches;
    if (len > f->largest)
        f->largest = len;
    f->fetched += len;
    pthread_mutex_unlock(&f->lock);
    if (f->fail_every && n % f->fail_every == 0)
        return -ECONNRESET;
    if (off >= f->size)
        return 0;
    size_t k = len < f->size - off ? len : (size_t)(f->size - off);
    memcpy(buf, f->data + off, k);
    return (int64_t)k;
}

static struct fake *fake_new(uint64_t size)
{
    struct fake *f = calloc(1, sizeof(*f));
    f->size = size;
    f->data = malloc(size);
    for (uint64_t i = 0; i < size; i++)
        f->data[i] = (unsigned char)(i * 2654435761u >> 13);
    pthread_mutex_init(&f->lock, NULL);
    return f;
}

static void fake_free(struct fake *f)
{
    free(f->data);
    free(f);
}

Test(bcache, sequential_reads_are_read_ahead_in_large_requests)
{
    struct fake *fk = fake_new(64u << 20);
    struct bcache *c;
    cr_assert_eq(bcache_new(BLK, 16u << 20, 4u << 20, 3, fake_fetch, &c), 0);
    struct bcache_file f = {.file = fk, .size = fk->size};
    bcache_attach(c, &f);
    unsigned char *buf = malloc(1 << 20);
    for (uint64_t off = 0; off < fk->size; off += 1 << 20) {
        cr_assert_eq(bcache_read(c, &f, buf, 1 << 20, off), 1 << 20);
        cr_assert(!memcmp(buf, fk->data + off, 1 << 20), "bytes at %llu", (unsigned long long)off);
    }
    bcache_detach(c, &f);
    /* 64 MiB in 1 MiB reads: without read-ahead 64 fetches, with it far
     * fewer, each of several blocks. */
    cr_expect_lt(fk->fetches, 40u, "%u fetches", fk->fetches);
    cr_expect_gt(fk->largest, (uint64_t)4 * BLK);
    bcache_free(c);
    free(buf);
    fake_free(fk);
}

/* Chunks freed by eviction serve later fetches: reading 64 MiB through a
 * 16 MiB cache twice allocates little more than the cache holds (21 MiB
 * here; without reuse about 128 MiB: every fetch a fresh allocation, which
 * the kernel then faults in and clears page by page). */
Test(bcache, freed_chunks_are_reused)
{
    struct fake *fk = fake_new((64u << 20) - 3 * BLK / 2); /* a short last run */
    struct bcache *c;
    cr_assert_eq(bcache_new(BLK, 16u << 20, 4u << 20, 2, fake_fetch, &c), 0);
    struct bcache_file f = {.file = fk, .size = fk->size};
    bcache_attach(c, &f);
    unsigned char *buf = malloc(1 << 20);
    for (int pass = 0; pass < 2; pass++)
        for (uint64_t off = 0; off < fk->size; off += 1 << 20) {
            int64_t want = fk->size - off < (1 << 20) ? (int64_t)(fk->size - off) : 1 << 20;
            cr_assert_eq(bcache_read(c, &f, buf, 1 << 20, off), want);
            cr_assert(!memcmp(buf, fk->data + off, (size_t)want), "pass %d, bytes at %llu", pass,
                      (unsigned long long)off);
        }
    uint64_t a = bcache_allocated(c);
    cr_expect_lt(a, 48ull << 20, "%llu MiB allocated", (unsigned long long)(a >> 20));
    bcache_detach(c, &f);
    bcache_free(c);
    free(buf);
    fake_free(fk);
}

/* A lent block stays put while the cache turns over many times, a pin
 * ends at its block's end, and at the end of the file there is nothing. */
Test(bcache, pinned_blocks_survive_eviction)
{
    struct fake *fk = fake_new(32u << 20);
    struct bcache *c;
    cr_assert_eq(bcache_new(BLK, 1u << 20, 0, 1, fake_fetch, &c), 0);
    struct bcache_file f = {.file = fk, .size = fk->size};
    bcache_attach(c, &f);
    const void *mem = NULL;
    void *pin = NULL;
    cr_assert_eq(bcache_pin(c, &f, 3 * BLK, BLK + 100, &mem, &pin), BLK - 100,
                 "to the block's end");
    unsigned char *buf = malloc(BLK);
    for (uint64_t off = 2 * BLK; off < fk->size; off += BLK)
        cr_assert_eq(bcache_read(c, &f, buf, BLK, off), BLK);
    cr_assert(!memcmp(mem, fk->data + BLK + 100, BLK - 100), "lent bytes changed under the pin");
    bcache_unpin(c, pin);
    cr_assert_eq(bcache_pin(c, &f, 10, fk->size, &mem, &pin), 0);
    cr_assert_eq(bcache_pin(c, &f, 10, fk->size - 4, &mem, &pin), 4);
    cr_assert(!memcmp(mem, fk->data + fk->size - 4, 4));
    bcache_unpin(c, pin);
    bcache_detach(c, &f);
    bcache_free(c);
    free(buf);
    fake_free(fk);
}

/* Read [off, off+len) by pins as the engine lends a run: one piece per
 * block, each asking for the rest of the range. */
static void lend_read(struct bcache *c, struct bcache_file *f, uint64_t off, size_t len,
                      unsigned char *out)
{
    for (size_t done = 0; done < len;) {
        const void *mem;
        void *pin;
        int64_t n = bcache_pin(c, f, len - done, off + done, &mem, &pin);
        cr_assert_gt(n, 0, "pin at %llu", (unsigned long long)(off + done));
        memcpy(out + done, mem, (size_t)n);
        bcache_unpin(c, pin);
        done += (size_t)n;
    }
}

/* The pieces of one lent read are one read: random reads across a block
 * boundary fetch what they need, not the read-ahead window each; a
 * sequential stream of lent reads is still read ahead. */
Test(bcache, lent_reads_follow_runs_like_copied_ones)
{
    struct fake *fk = fake_new(64u << 20);
    struct bcache *c;
    cr_assert_eq(bcache_new(BLK, 64u << 20, 16u << 20, 2, fake_fetch, &c), 0);
    struct bcache_file f = {.file = fk, .size = fk->size};
    bcache_attach(c, &f);
    unsigned char *buf = malloc(4 * BLK);
    uint64_t seed = 5;
    for (int i = 0; i < 20; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t off = (seed >> 20) % (fk->size - 4 * BLK) / BLK * BLK + BLK / 2;
        lend_read(c, &f, off, 2 * BLK, buf);
        cr_assert(!memcmp(buf, fk->data + off, 2 * BLK), "bytes at %llu", (unsigned long long)off);
    }
    bcache_detach(c, &f);
    cr_expect_leq(fk->fetched, 20ull * 3 * BLK, "20 random reads of 2 blocks fetched %llu KiB",
                  (unsigned long long)(fk->fetched >> 10));
    fk->fetches = 0;
    bcache_attach(c, &f);
    for (uint64_t off = 0; off < fk->size; off += 4 * BLK) {
        lend_read(c, &f, off, 4 * BLK, buf);
        cr_assert(!memcmp(buf, fk->data + off, 4 * BLK), "bytes at %llu", (unsigned long long)off);
    }
    bcache_detach(c, &f);
    cr_expect_lt(fk->fetches, (unsigned)(fk->size / (4 * BLK)) / 2,
                 "sequential lent reads: %u fetches", fk->fetches);
    bcache_free(c);
    free(buf);
    fake_free(fk);
}

struct worker_arg {
    struct bcache *c;
    struct bcache_file *f;
    struct fake *fk;
    unsigned seed;
    int bad;
};

static void *random_reader(void *p)
{
    struct worker_arg *a = p;
    unsigned char buf[200000];
    for (int i = 0; i < 400; i++) {
        a->seed = a->seed * 1103515245u + 12345u;
        uint64_t off = (a->seed >> 3) % (a->fk->size + 1000);
        size_t len = 1 + (a->seed >> 7) % sizeof(buf);
        /* now and then a sequential stretch, which starts read-ahead */
        int64_t want =
            off >= a->fk->size ? 0 : (int64_t)(len < a->fk->size - off ? len : a->fk->size - off);
        int64_t got = bcache_read(a->c, a->f, buf, len, off);
        if (got == -ECONNRESET)
            continue;
        if (got != want || (got > 0 && memcmp(buf, a->fk->data + off, (size_t)got)))
            a->bad++;
    }
    return NULL;
}

static void many_threads(size_t budget, unsigned fail_every)
{
    struct fake *fk = fake_new((24u << 20) + 12345);
    fk->fail_every = fail_every;
    struct bcache *c;
    cr_assert_eq(bcache_new(BLK, budget, 2u << 20, 2, fake_fetch, &c), 0);
    struct bcache_file f = {.file = fk, .size = fk->size};
    bcache_attach(c, &f);
    pthread_t t[6];
    struct worker_arg a[6];
    for (int i = 0; i < 6; i++) {
        a[i] = (struct worker_arg){c, &f, fk, 77u * (unsigned)i + 1, 0};
        pthread_create(&t[i], NULL, random_reader, &a[i]);
    }
    int bad = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        bad += a[i].bad;
    }
    bcache_detach(c, &f);
    bcache_free(c);
    fake_free(fk);
    cr_expect_eq(bad, 0, "%d reads returned wrong bytes or lengths", bad);
}

Test(bcache, threads_with_a_small_budget)
{
    many_threads(1u << 20, 0); /* raised to the minimum: constant eviction */
}

Test(bcache, threads_with_a_large_budget)
{
    many_threads(64u << 20, 0);
}

Test(bcache, failing_fetches_are_errors_not_data)
{
    many_threads(2u << 20, 7);
}

Test(bcache, detach_with_read_ahead_queued)
{
    struct fake *fk = fake_new(32u << 20);
    struct bcache *c;
    cr_assert_eq(bcache_new(BLK, 32u << 20, 16u << 20, 1, fake_fetch, &c), 0);
    unsigned char buf[4096];
    for (int round = 0; round < 20; round++) {
        struct bcache_file f = {.file = fk, .size = fk->size};
        bcache_attach(c, &f);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(bcache_read(c, &f, buf, sizeof(buf), (uint64_t)i * sizeof(buf)),
                         (int64_t)sizeof(buf));
        bcache_detach(c, &f); /* must wait for or drop the queued jobs */
    }
    bcache_free(c);
    fake_free(fk);
}
