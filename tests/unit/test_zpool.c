/* The streamOptimized writer's parallel deflate: every buffer comes back in
 * the order it went in, inflates to what went in, incompressible data is
 * stored without a search and everything else is really compressed. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common.h"
#include "zpool.h"

#define G      65536u
#define PREFIX 12u

/* What the inputs were, and what came back. */
struct seen {
    uint8_t **in;
    size_t *len;
    unsigned n, next;
    size_t stored, total_z, total_in;
    int stop_at; /* emit fails at this tag (-1: never) */
};

static int check_emit(void *arg, uint64_t tag, unsigned char *out, size_t zlen)
{
    struct seen *s = arg;
    cr_assert_eq(tag, s->next, "buffer %llu came back in place of %u", (unsigned long long)tag,
                 s->next);
    if (s->stop_at >= 0 && tag == (uint64_t)s->stop_at)
        return -42;
    for (unsigned i = 0; i < PREFIX; i++)
        out[i] = 0xee; /* the prefix is the caller's */
    uint8_t *back = malloc(G);
    uLongf bl = G;
    cr_assert_eq(uncompress(back, &bl, out + PREFIX, (uLong)zlen), Z_OK,
                 "tag %llu does not inflate", (unsigned long long)tag);
    cr_assert_eq(bl, s->len[tag]);
    cr_assert(!memcmp(back, s->in[tag], bl), "tag %llu inflates to other bytes",
              (unsigned long long)tag);
    free(back);
    /* a stored stream is 2 + 5 per 64 KiB block + data + 4 */
    if (zlen == s->len[tag] + 2 + 5 * ((s->len[tag] + 65534) / 65535) + 4 && out[PREFIX + 1] == 1)
        s->stored++;
    s->total_z += zlen;
    s->total_in += s->len[tag];
    s->next++;
    return 0;
}

/* Kinds of grain: 0 random, 1 text, 2 zeros, 3 a random 4 KiB block
 * repeated, 4 random bytes from a 16-letter alphabet, 5 a short tail, 6 a
 * random 30011-byte run repeated (an odd distance, inside zlib's window),
 * 7 random with its second half copies of a 1001-byte piece of the first.
 * All but 0 have a flat enough histogram or repeats for deflate to gain. */
static void make(uint8_t *p, size_t *len, unsigned kind, uint64_t seed)
{
    static const char words[] = "grain table directory redo log snapshot parent ";
    *len = kind == 5 ? 1000 : G;
    switch (kind) {
    case 0:
    case 5:
        fill_random(p, *len, seed);
        break;
    case 1:
        for (size_t i = 0; i < G; i++)
            p[i] = (uint8_t)words[(i * 7 + seed) % (sizeof(words) - 1)];
        break;
    case 2:
        memset(p, 0, G);
        break;
    case 3:
        fill_random(p, 4096, seed);
        for (size_t i = 4096; i < G; i += 4096)
            memcpy(p + i, p, 4096);
        break;
    case 6:
        fill_random(p, 30011, seed);
        for (size_t i = 30011; i < G; i++)
            p[i] = p[i - 30011];
        break;
    case 7:
        fill_random(p, G, seed);
        for (size_t i = G / 2; i < G; i++)
            p[i] = p[1000 + (i - G / 2) % 1001];
        break;
    default:
        fill_random(p, G, seed);
        for (size_t i = 0; i < G; i++)
            p[i] &= 0x0f;
        break;
    }
}

static void run(unsigned threads, unsigned n, int stop_at)
{
    struct seen s = {.n = n, .stop_at = stop_at};
    s.in = calloc(n, sizeof(*s.in));
    s.len = calloc(n, sizeof(*s.len));
    struct zpool *p;
    cr_assert_eq(zpool_new(threads, 6, G, PREFIX, &p), 0);
    unsigned random_grains = 0;
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        s.in[i] = malloc(G);
        unsigned kind = i % 8;
        random_grains += kind == 0;
        make(s.in[i], &s.len[i], kind, i + 1);
        rc = zpool_put(p, i, s.in[i], s.len[i], check_emit, &s);
    }
    if (rc == 0)
        rc = zpool_drain(p, check_emit, &s);
    zpool_free(p);
    if (stop_at >= 0) {
        cr_assert_eq(rc, -42, "the emit error is returned");
        cr_assert_eq(s.next, (unsigned)stop_at, "nothing is emitted after a failed emit");
    } else {
        cr_assert_eq(rc, 0);
        cr_assert_eq(s.next, n, "every buffer came back");
        /* random grains and only they are stored; the rest compress */
        cr_assert_eq(s.stored, random_grains, "%zu stored, %u random", s.stored, random_grains);
        cr_assert(n == 0 || s.total_z < s.total_in * 3 / 5, "%zu of %zu", s.total_z, s.total_in);
    }
    for (unsigned i = 0; i < n; i++)
        free(s.in[i]);
    free(s.in);
    free(s.len);
}

Test(zpool, inline_in_order)
{
    run(0, 60, -1);
}
Test(zpool, two_threads_in_order)
{
    run(2, 300, -1);
}
Test(zpool, many_threads_in_order)
{
    run(7, 300, -1);
}
Test(zpool, emit_error_stops_the_pool)
{
    run(3, 200, 37);
}
Test(zpool, emit_error_inline)
{
    run(0, 20, 5);
}
Test(zpool, nothing_queued)
{
    run(2, 0, -1);
}
