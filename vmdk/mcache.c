/* Metadata block cache: sharded hash tables with an LRU list per shard. */
#include "mcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SHARDS 16u

struct block {
    uint64_t fid, index;       /* key: file id and block number */
    uint32_t valid;            /* bytes read from the file (short at its end) */
    struct block *hnext;       /* hash chain */
    struct block *prev, *next; /* LRU list, most recent first */
    unsigned char data[MCACHE_BLOCK];
};

struct shard {
    pthread_mutex_t lock;
    struct block **table;
    size_t buckets, count, max;
    uint64_t gen; /* bumped by every write, so a miss racing a write retries */
    struct block *head, *tail;
};

struct mcache {
    struct shard shards[SHARDS];
};

static atomic_uint_fast64_t next_id = 1;

uint64_t mcache_new_id(void)
{
    return atomic_fetch_add(&next_id, 1);
}

static uint64_t hash(uint64_t fid, uint64_t index)
{
    uint64_t h = fid * 0x9e3779b97f4a7c15ull ^ index * 0xc2b2ae3d27d4eb4full;
    return h ^ (h >> 29);
}

/* The shard takes the hash's low bits, so a shard's buckets must come from
 * other bits: with the same ones, every block of a shard fell into 1/16 of
 * its buckets and lookups walked chains 16 times longer (a 64-link chain
 * spent 15% of a sequential read there). */
static size_t bucket_of(const struct shard *s, uint64_t h)
{
    return (size_t)(h >> 16) & (s->buckets - 1);
}

struct mcache *mcache_new(size_t budget)
{
    struct mcache *mc = calloc(1, sizeof(*mc));
    if (!mc)
        return NULL;
    size_t per = budget / sizeof(struct block) / SHARDS;
    if (per < 4)
        per = 4;
    for (unsigned i = 0; i < SHARDS; i++) {
        struct shard *s = &mc->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->max = per;
        s->buckets = 64;
        while (s->buckets < per)
            s->buckets *= 2;
        s->table = calloc(s->buckets, sizeof(*s->table));
        if (!s->table) {
            mcache_free(mc);
            return NULL;
        }
    }
    return mc;
}

static void lru_unlink(struct shard *s, struct block *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        s->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        s->tail = b->prev;
    b->prev = b->next = NULL;
}

static void lru_push(struct shard *s, struct block *b)
{
    b->prev = NULL;
    b->next = s->head;
    if (s->head)
        s->head->prev = b;
    s->head = b;
    if (!s->tail)
        s->tail = b;
}

static void hash_remove(struct shard *s, struct block *b)
{
    struct block **pp = &s->table[bucket_of(s, hash(b->fid, b->index))];
    while (*pp != b)
        pp = &(*pp)->hnext;
    *pp = b->hnext;
}

static struct block *lookup(struct shard *s, uint64_t fid, uint64_t index)
{
    struct block *b = s->table[bucket_of(s, hash(fid, index))];
    while (b && (b->fid != fid || b->index != index))
        b = b->hnext;
    return b;
}

void mcache_free(struct mcache *mc)
{
    if (!mc)
        return;
    for (unsigned i = 0; i < SHARDS; i++) {
        struct shard *s = &mc->shards[i];
        while (s->head) {
            struct block *b = s->head;
            s->head = b->next;
            free(b);
        }
        free(s->table);
        pthread_mutex_destroy(&s->lock);
    }
    free(mc);
}

static int copy_out(const struct block *b, uint64_t off, void *out, size_t n)
{
    size_t in = (size_t)(off % MCACHE_BLOCK);
    if (in + n > b->valid)
        return -VDK_E_CORRUPT;
    memcpy(out, b->data + in, n);
    return 0;
}

int mcache_read(struct mcache *mc, uint64_t fid, vdk_file *f, uint64_t off, void *out, size_t n)
{
    uint64_t index = off / MCACHE_BLOCK;
    struct shard *s = &mc->shards[hash(fid, index) % SHARDS];
    for (;;) {
        pthread_mutex_lock(&s->lock);
        struct block *b = lookup(s, fid, index);
        if (b) {
            lru_unlink(s, b);
            lru_push(s, b);
            int r = copy_out(b, off, out, n);
            pthread_mutex_unlock(&s->lock);
            return r;
        }
        uint64_t gen = s->gen;
        pthread_mutex_unlock(&s->lock);

        /* Miss: read outside the lock so other lookups go on meanwhile. */
        struct block *nb = malloc(sizeof(*nb));
        if (!nb)
            return -VDK_E_NOMEM;
        int64_t got = f->ops->pread(f, nb->data, MCACHE_BLOCK, index * MCACHE_BLOCK);
        if (got < 0) {
            free(nb);
            return vdk_status_from_errno((int)got);
        }
        /* past the end of the file reads as zeros once the file grows */
        memset(nb->data + got, 0, MCACHE_BLOCK - (size_t)got);
        nb->fid = fid;
        nb->index = index;
        nb->valid = (uint32_t)got;
        int r = copy_out(nb, off, out, n);

        pthread_mutex_lock(&s->lock);
        if (s->gen != gen) {
            /* A write landed meanwhile: what we read may predate it. */
            pthread_mutex_unlock(&s->lock);
            free(nb);
            continue;
        }
        if (lookup(s, fid, index)) {
            free(nb); /* another thread filled it first */
        } else {
            size_t bucket = bucket_of(s, hash(fid, index));
            nb->hnext = s->table[bucket];
            s->table[bucket] = nb;
            lru_push(s, nb);
            if (++s->count > s->max) {
                struct block *old = s->tail;
                lru_unlink(s, old);
                hash_remove(s, old);
                s->count--;
                free(old);
            }
        }
        pthread_mutex_unlock(&s->lock);
        return r;
    }
}

int mcache_write(struct mcache *mc, uint64_t fid, vdk_file *f, uint64_t off, const void *data,
                 size_t n)
{
    int64_t w = f->ops->pwrite(f, data, n, off);
    if (w < 0)
        return vdk_status_from_errno((int)w);
    /* Update every cached block the bytes touch; bump generations so that
     * misses in flight re-read. */
    for (uint64_t pos = off; pos < off + n;) {
        uint64_t index = pos / MCACHE_BLOCK;
        size_t in = (size_t)(pos % MCACHE_BLOCK);
        size_t k = (size_t)min_u64(MCACHE_BLOCK - in, off + n - pos);
        struct shard *s = &mc->shards[hash(fid, index) % SHARDS];
        pthread_mutex_lock(&s->lock);
        s->gen++;
        struct block *b = lookup(s, fid, index);
        if (b) {
            memcpy(b->data + in, (const unsigned char *)data + (pos - off), k);
            if (in + k > b->valid)
                b->valid = (uint32_t)(in + k);
        }
        pthread_mutex_unlock(&s->lock);
        pos += k;
    }
    return 0;
}

void mcache_forget(struct mcache *mc, uint64_t fid)
{
    for (unsigned i = 0; i < SHARDS; i++) {
        struct shard *s = &mc->shards[i];
        pthread_mutex_lock(&s->lock);
        struct block *b = s->head;
        while (b) {
            struct block *next = b->next;
            if (b->fid == fid) {
                lru_unlink(s, b);
                hash_remove(s, b);
                s->count--;
                free(b);
            }
            b = next;
        }
        pthread_mutex_unlock(&s->lock);
    }
}
