/* Ordered parallel deflate (see zpool.h).
 *
 * A ring of slots: the caller fills the slot at 'tail', workers take slots
 * from 'next' on, and the caller hands them out from 'head' once they are
 * done.  Only the caller moves head and tail, only workers move next, all
 * under one mutex; a slot's buffers are touched by one side at a time. */
#include "zpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "util.h"

enum { SLOT_FREE, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

struct slot {
    unsigned char *in, *out;
    size_t len, zlen;
    uint64_t tag;
    int state, failed;
};

struct zpool {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    struct slot *slots;
    unsigned n_slots;
    uint64_t head, tail, next; /* monotonic: slot index is i % n_slots */
    int stop;
    int level;
    size_t prefix, out_cap;
    z_stream inline_z; /* threads 0: the caller compresses */
    uint16_t *inline_table;
    int inline_ready;
    pthread_t *threads;
    unsigned n_threads;
};

#define SEEN_BITS 14 /* repeat table: 16384 entries, 32 KiB */

static uint32_t seen_hash(uint32_t v)
{
    return (v * 2654435761u) >> (32 - SEEN_BITS);
}

/* Whether the byte histogram of p[0..n) is flat: Renyi entropy >= 7.95
 * bits, so Huffman coding could save under 0.7%.  Four counters per byte
 * value, so runs of one byte do not wait on one counter. */
static int flat_histogram(const unsigned char *p, size_t n)
{
    uint32_t hist[4][256] = {{0}};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        hist[0][p[i]]++;
        hist[1][p[i + 1]]++;
        hist[2][p[i + 2]]++;
        hist[3][p[i + 3]]++;
    }
    for (; i < n; i++)
        hist[0][p[i]]++;
    uint64_t sq = 0;
    for (unsigned c = 0; c < 256; c++) {
        uint64_t h = (uint64_t)hist[0][c] + hist[1][c] + hist[2][c] + hist[3][c];
        sq += h * h;
    }
    return sq * 247 <= (uint64_t)n * n;
}

/* Would deflate find anything to gain in p[0..n)?  Random or already
 * compressed data makes zlib search every position for matches and then
 * store the bytes as they are; at level 6 that search is half the CPU a
 * clone of typical disk data spends.  Two cheap tests stand in for it: a
 * flat byte histogram, and a scan for 4-byte repeats that finds almost none
 * (matches covering under 0.4%).  The scan notes every position but looks
 * up every fourth, which still meets any repeat of 7 bytes or more.  Its
 * table (16384 entries, in L1/L2, 4x faster than one of 65536) keeps an
 * earlier position for 16 KiB of random bytes on average, so repeats that
 * close are found; farther ones (up to zlib's 32 KiB window) are found
 * less often, and a grain stored for that loses only a few per cent of
 * ratio, never data.  Both fail on any text, table, code or zero-padded
 * data. */
static int incompressible(const unsigned char *p, size_t n, uint16_t *last)
{
    if (n < 4096 || n > 65536 || !flat_histogram(p, n))
        return 0;
    memset(last, 0xff, ((size_t)1 << SEEN_BITS) * sizeof(*last));
    size_t matched = 0, limit = n / 256;
    for (size_t i = 0; i + 8 <= n; i += 4) {
        uint64_t w = le64(p + i);
        uint32_t v = (uint32_t)w, h = seen_hash(v), j = last[h];
        if (j != 0xffff) {
            uint32_t u = le32(p + j);
            /* a hit stands for the four positions the scan steps over */
            if (u == v && (matched += 16) > limit)
                return 0;
        }
        last[h] = (uint16_t)i;
        last[seen_hash((uint32_t)(w >> 8))] = (uint16_t)(i + 1);
        last[seen_hash((uint32_t)(w >> 16))] = (uint16_t)(i + 2);
        last[seen_hash((uint32_t)(w >> 24))] = (uint16_t)(i + 3);
    }
    return 1;
}

/* A zlib stream of stored blocks: what zlib itself emits for such data,
 * without the search.  Any inflate reads it. */
static size_t stored(const unsigned char *in, size_t len, unsigned char *out)
{
    size_t o = 0;
    out[o++] = 0x78; /* deflate, 32 KiB window */
    out[o++] = 0x01; /* no dictionary, fastest; (0x78 << 8 | 0x01) % 31 == 0 */
    size_t done = 0;
    do {
        size_t k = len - done > 65535 ? 65535 : len - done;
        out[o++] = done + k == len; /* BFINAL on the last, BTYPE 00 */
        out[o++] = (unsigned char)k;
        out[o++] = (unsigned char)(k >> 8);
        out[o++] = (unsigned char)~k;
        out[o++] = (unsigned char)(~k >> 8);
        memcpy(out + o, in + done, k);
        o += k;
        done += k;
    } while (done < len);
    uLong a = adler32(adler32(0L, Z_NULL, 0), in, (uInt)len);
    for (int i = 3; i >= 0; i--)
        out[o++] = (unsigned char)(a >> (8 * i));
    return o;
}

/* Compress s->in into s->out after the prefix with a stream kept per thread
 * (deflateReset instead of compress2's allocation of ~256 KiB per grain). */
static void squeeze(struct zpool *p, z_stream *z, uint16_t *table, struct slot *s)
{
    if (incompressible(s->in, s->len, table)) {
        s->zlen = stored(s->in, s->len, s->out + p->prefix);
        s->failed = 0;
        return;
    }
    z->next_in = s->in;
    z->avail_in = (uInt)s->len;
    z->next_out = s->out + p->prefix;
    z->avail_out = (uInt)(p->out_cap - p->prefix);
    int r = deflate(z, Z_FINISH);
    s->failed = r != Z_STREAM_END;
    s->zlen = (size_t)z->total_out;
    deflateReset(z);
}

static void *worker(void *arg)
{
    struct zpool *p = arg;
    z_stream z = {0};
    uint16_t *table = malloc(((size_t)1 << SEEN_BITS) * sizeof(*table));
    int ok = table && deflateInit(&z, p->level) == Z_OK;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->next == p->tail)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stop)
            break;
        struct slot *s = &p->slots[p->next++ % p->n_slots];
        s->state = SLOT_BUSY;
        pthread_mutex_unlock(&p->mu);
        if (ok)
            squeeze(p, &z, table, s);
        else
            s->failed = 1;
        pthread_mutex_lock(&p->mu);
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    if (ok)
        deflateEnd(&z);
    free(table);
    return NULL;
}

unsigned zpool_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 1)
        return 0;
    return n > 16 ? 16u : (unsigned)n;
}

int zpool_new(unsigned threads, int level, size_t max_in, size_t prefix, struct zpool **out)
{
    struct zpool *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    p->level = level;
    p->prefix = prefix;
    p->out_cap = prefix + compressBound((uLong)max_in);
    /* four slots a worker keep them busy while the caller reads and writes */
    p->n_slots = threads ? threads * 4 : 1;
    p->slots = calloc(p->n_slots, sizeof(*p->slots));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    int ok = p->slots != NULL;
    for (unsigned i = 0; ok && i < p->n_slots; i++) {
        p->slots[i].in = malloc(max_in ? max_in : 1);
        p->slots[i].out = malloc(p->out_cap);
        ok = p->slots[i].in && p->slots[i].out;
    }
    if (ok && !threads) {
        p->inline_table = malloc(((size_t)1 << SEEN_BITS) * sizeof(*p->inline_table));
        ok = p->inline_table && deflateInit(&p->inline_z, level) == Z_OK;
        p->inline_ready = ok;
    }
    p->threads = threads ? calloc(threads, sizeof(*p->threads)) : NULL;
    ok = ok && (!threads || p->threads);
    for (unsigned i = 0; ok && i < threads; i++) {
        ok = pthread_create(&p->threads[i], NULL, worker, p) == 0;
        if (ok)
            p->n_threads++;
    }
    if (!ok) {
        zpool_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

/* Hand out the oldest slot (waiting for it when 'wait'); 1 if one went. */
static int emit_head(struct zpool *p, int wait, zpool_emit_fn emit, void *arg, int *rc)
{
    pthread_mutex_lock(&p->mu);
    struct slot *s = &p->slots[p->head % p->n_slots];
    while (wait && p->head != p->tail && s->state != SLOT_DONE)
        pthread_cond_wait(&p->done, &p->mu);
    int ready = p->head != p->tail && s->state == SLOT_DONE;
    pthread_mutex_unlock(&p->mu);
    if (!ready)
        return 0;
    /* the slot is the caller's now: workers never go back to a done slot */
    if (s->failed)
        *rc = -1;
    else
        *rc = emit(arg, s->tag, s->out, s->zlen);
    pthread_mutex_lock(&p->mu);
    s->state = SLOT_FREE;
    p->head++;
    pthread_mutex_unlock(&p->mu);
    return *rc < 0 ? 0 : 1;
}

int zpool_put(struct zpool *p, uint64_t tag, const void *in, size_t len, zpool_emit_fn emit,
              void *arg)
{
    int rc = 0;
    while (emit_head(p, 0, emit, arg, &rc))
        ;
    while (rc == 0 && p->tail - p->head == p->n_slots && emit_head(p, 1, emit, arg, &rc))
        ;
    if (rc < 0)
        return rc;
    struct slot *s = &p->slots[p->tail % p->n_slots];
    memcpy(s->in, in, len);
    s->len = len;
    s->tag = tag;
    if (!p->n_threads) {
        squeeze(p, &p->inline_z, p->inline_table, s);
        s->state = SLOT_DONE;
        p->tail++;
        emit_head(p, 0, emit, arg, &rc);
        return rc;
    }
    pthread_mutex_lock(&p->mu);
    s->state = SLOT_QUEUED;
    p->tail++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int zpool_drain(struct zpool *p, zpool_emit_fn emit, void *arg)
{
    int rc = 0;
    while (rc == 0 && p->head != p->tail && emit_head(p, 1, emit, arg, &rc))
        ;
    return rc;
}

void zpool_free(struct zpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    if (p->inline_ready)
        deflateEnd(&p->inline_z);
    free(p->inline_table);
    for (unsigned i = 0; p->slots && i < p->n_slots; i++) {
        free(p->slots[i].in);
        free(p->slots[i].out);
    }
    free(p->slots);
    free(p->threads);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
