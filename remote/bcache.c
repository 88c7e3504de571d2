/* bcache.c - block cache, single-flight fetches and sequential read-ahead. */
#include "bcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS    4096u
#define JOB_BLOCKS 32u /* blocks per read-ahead request (8 MiB) */
/* Freed chunks kept for the next fetch.  A chunk is megabytes: malloc
 * hands such sizes back to the kernel on free, and the next one costs a
 * page fault and a page clear per 4 KiB (8% of a remote sequential read's
 * CPU).  Two cover the read-ahead in flight; at most this much is kept. */
#define SPARE_CHUNKS 2u

enum { LOADING, READY };

/* One fetched run of blocks: its entries point into it, so a ranged GET
 * lands in the cache without another copy. */
struct chunk {
    unsigned refs;
    size_t size; /* charged to the budget while any block of it lives */
    size_t room; /* allocated bytes of data */
    char data[];
};

struct entry {
    uint64_t fid, blk;
    int state;
    unsigned users;
    struct chunk *chunk;
    char *data;
    size_t len;
    struct entry *hnext, *prev, *next; /* hash chain; LRU list (READY only) */
};

struct job {
    struct bcache_file *f;
    uint64_t blk;
    unsigned count;
    struct job *next;
};

struct bcache {
    pthread_mutex_t lock;
    pthread_cond_t changed, work;
    size_t block, budget, used, readahead;
    bcache_fetch_fn fetch;
    struct entry *hash[BUCKETS];
    struct entry lru; /* sentinel: lru.next is the most recent */
    struct job *jobs, **jobs_tail;
    uint64_t next_id;
    unsigned nworkers, want_workers;
    int stop;
    pthread_t *workers;
    struct chunk *spare[SPARE_CHUNKS]; /* freed chunks for reuse */
    uint64_t allocated;                /* bytes of chunks ever allocated */
};

static unsigned bucket(uint64_t fid, uint64_t blk)
{
    uint64_t h = (fid * 0x9e3779b97f4a7c15ull) ^ (blk * 0xff51afd7ed558ccdull);
    return (unsigned)(h >> 40) % BUCKETS;
}

static struct entry *lookup(struct bcache *c, uint64_t fid, uint64_t blk)
{
    for (struct entry *e = c->hash[bucket(fid, blk)]; e; e = e->hnext)
        if (e->fid == fid && e->blk == blk)
            return e;
    return NULL;
}

static void lru_unlink(struct entry *e)
{
    if (e->prev) {
        e->prev->next = e->next;
        e->next->prev = e->prev;
        e->prev = e->next = NULL;
    }
}

static void lru_front(struct bcache *c, struct entry *e)
{
    lru_unlink(e);
    e->next = c->lru.next;
    e->prev = &c->lru;
    c->lru.next->prev = e;
    c->lru.next = e;
}

/* A chunk nobody uses any more (lock held): kept as a spare in place of
 * an empty slot or a smaller spare (a short run, the end of a file, must
 * not hold the slots for good), else freed.  Chunks larger than a
 * read-ahead job (a long demand read) are not kept. */
static void chunk_release(struct bcache *c, struct chunk *ch)
{
    c->used -= ch->size;
    unsigned slot = 0; /* an empty slot, else the smallest spare */
    for (unsigned i = 1; i < SPARE_CHUNKS && c->spare[slot]; i++)
        if (!c->spare[i] || c->spare[i]->room < c->spare[slot]->room)
            slot = i;
    struct chunk *out = ch;
    if (ch->room <= (size_t)JOB_BLOCKS * c->block &&
        (!c->spare[slot] || c->spare[slot]->room < ch->room)) {
        out = c->spare[slot];
        c->spare[slot] = ch;
    }
    free(out);
}

/* A chunk with room for size bytes: a spare that fits, or a new one. */
static struct chunk *chunk_get(struct bcache *c, size_t size)
{
    struct chunk *ch = NULL;
    pthread_mutex_lock(&c->lock);
    for (unsigned i = 0; i < SPARE_CHUNKS && !ch; i++)
        if (c->spare[i] && c->spare[i]->room >= size) {
            ch = c->spare[i];
            c->spare[i] = NULL;
        }
    pthread_mutex_unlock(&c->lock);
    if (!ch && (ch = malloc(sizeof(*ch) + size))) {
        ch->room = size;
        pthread_mutex_lock(&c->lock);
        c->allocated += size;
        pthread_mutex_unlock(&c->lock);
    }
    return ch;
}

static void drop(struct bcache *c, struct entry *e)
{
    struct entry **p = &c->hash[bucket(e->fid, e->blk)];
    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
    lru_unlink(e);
    if (e->chunk && !--e->chunk->refs)
        chunk_release(c, e->chunk);
    free(e);
}

/* Keep within the budget: free least recently used blocks nobody copies. */
static void evict(struct bcache *c)
{
    struct entry *e = c->lru.prev;
    while (c->used > c->budget && e != &c->lru) {
        struct entry *prev = e->prev;
        if (!e->users)
            drop(c, e);
        e = prev;
    }
}

static struct entry *insert_loading(struct bcache *c, struct bcache_file *f, uint64_t blk)
{
    struct entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->fid = f->id;
    e->blk = blk;
    e->state = LOADING;
    unsigned b = bucket(f->id, blk);
    e->hnext = c->hash[b];
    c->hash[b] = e;
    return e;
}

static size_t block_len(struct bcache *c, struct bcache_file *f, uint64_t blk)
{
    uint64_t start = blk * c->block;
    return start >= f->size ? 0 : (size_t)(f->size - start < c->block ? f->size - start : c->block);
}

/* Fetch blocks [blk, blk+n) (all LOADING and ours) with one request, then
 * publish them; on failure remove them so waiters fetch for themselves. */
static int fill_run(struct bcache *c, struct bcache_file *f, uint64_t blk, unsigned n)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += block_len(c, f, blk + i);
    struct chunk *ch = chunk_get(c, total ? total : 1);
    int64_t got = ch ? c->fetch(f->file, ch->data, total, blk * c->block) : -ENOMEM;
    pthread_mutex_lock(&c->lock);
    size_t pos = 0;
    if (ch) {
        ch->refs = 1; /* ours until the loop ends */
        ch->size = total;
        c->used += total;
    }
    for (unsigned i = 0; i < n; i++) {
        struct entry *e = lookup(c, f->id, blk + i);
        size_t len = block_len(c, f, blk + i);
        if (!e)
            continue;
        if (got < 0 || (size_t)got < pos + len) {
            drop(c, e);
        } else {
            e->chunk = ch;
            ch->refs++;
            e->data = ch->data + pos;
            e->len = len;
            e->state = READY;
            lru_front(c, e);
        }
        pos += len;
    }
    if (ch && !--ch->refs)
        chunk_release(c, ch);
    evict(c);
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
    if (got < 0)
        return (int)got;
    return (size_t)got < total ? -EIO : 0;
}

static void *worker(void *arg)
{
    struct bcache *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->jobs && !c->stop)
            pthread_cond_wait(&c->work, &c->lock);
        if (c->stop)
            break;
        struct job *j = c->jobs;
        c->jobs = j->next;
        if (!c->jobs)
            c->jobs_tail = &c->jobs;
        pthread_mutex_unlock(&c->lock);
        fill_run(c, j->f, j->blk, j->count);
        pthread_mutex_lock(&c->lock);
        j->f->inflight--;
        pthread_cond_broadcast(&c->changed);
        free(j);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int bcache_new(size_t block, size_t budget, size_t readahead, unsigned workers,
               bcache_fetch_fn fetch, struct bcache **out)
{
    struct bcache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
    pthread_cond_init(&c->work, NULL);
    c->block = block;
    c->budget = budget < 16 * block ? 16 * block : budget;
    /* Read-ahead beyond half the budget would evict itself. */
    c->readahead = readahead > c->budget / 2 ? c->budget / 2 : readahead;
    c->fetch = fetch;
    c->lru.next = c->lru.prev = &c->lru;
    c->jobs_tail = &c->jobs;
    c->workers = calloc(workers ? workers : 1, sizeof(pthread_t));
    if (!c->workers) {
        free(c);
        return -ENOMEM;
    }
    /* Workers start with the first read-ahead: a daemon that forks after
     * opening its disks (vdkfs) would otherwise lose them in the fork. */
    c->want_workers = workers;
    *out = c;
    return 0;
}

void bcache_free(struct bcache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stop = 1;
    pthread_cond_broadcast(&c->work);
    pthread_mutex_unlock(&c->lock);
    for (unsigned i = 0; i < c->nworkers; i++)
        pthread_join(c->workers[i], NULL);
    while (c->jobs) {
        struct job *j = c->jobs;
        c->jobs = j->next;
        free(j);
    }
    for (unsigned b = 0; b < BUCKETS; b++)
        while (c->hash[b])
            drop(c, c->hash[b]);
    for (unsigned i = 0; i < SPARE_CHUNKS; i++)
        free(c->spare[i]);
    free(c->workers);
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void bcache_attach(struct bcache *c, struct bcache_file *f)
{
    pthread_mutex_lock(&c->lock);
    f->id = ++c->next_id;
    pthread_mutex_unlock(&c->lock);
}

/* Whether a block of the file is being copied or is lent (lock held). */
static int file_busy(struct bcache *c, struct bcache_file *f)
{
    for (unsigned b = 0; b < BUCKETS; b++)
        for (struct entry *e = c->hash[b]; e; e = e->hnext)
            if (e->fid == f->id && e->users)
                return 1;
    return 0;
}

void bcache_detach(struct bcache *c, struct bcache_file *f)
{
    pthread_mutex_lock(&c->lock);
    /* Queued read-ahead of this file is pointless now. */
    for (struct job **p = &c->jobs; *p;) {
        struct job *j = *p;
        if (j->f != f) {
            p = &j->next;
            continue;
        }
        *p = j->next;
        for (unsigned i = 0; i < j->count; i++) {
            struct entry *e = lookup(c, f->id, j->blk + i);
            if (e)
                drop(c, e);
        }
        f->inflight--;
        free(j);
    }
    c->jobs_tail = &c->jobs;
    while (*c->jobs_tail)
        c->jobs_tail = &(*c->jobs_tail)->next;
    /* blocks still lent must not be freed under their borrower */
    while (f->inflight || file_busy(c, f))
        pthread_cond_wait(&c->changed, &c->lock);
    for (unsigned b = 0; b < BUCKETS; b++)
        for (struct entry *e = c->hash[b], *n; e; e = n) {
            n = e->hnext;
            if (e->fid == f->id)
                drop(c, e);
        }
    pthread_mutex_unlock(&c->lock);
}

static void start_workers(struct bcache *c)
{
    while (c->nworkers < c->want_workers &&
           pthread_create(&c->workers[c->nworkers], NULL, worker, c) == 0)
        c->nworkers++;
    c->want_workers = c->nworkers; /* a failed create is not retried */
}

/* Queue read-ahead of the window after 'blk' (called with the lock). */
static void read_ahead(struct bcache *c, struct bcache_file *f, uint64_t blk)
{
    start_workers(c);
    uint64_t last = f->size ? (f->size - 1) / c->block : 0;
    uint64_t end = blk + c->readahead / c->block;
    uint64_t b = f->ahead_next > blk ? f->ahead_next : blk + 1;
    if (end > last)
        end = last;
    /* Requests cost the server a round of work each: wait until a whole
     * job's worth of the window is free (or the file ends) before asking. */
    if (end < last && end + 1 < b + JOB_BLOCKS)
        return;
    while (c->nworkers && b <= end) {
        if (lookup(c, f->id, b)) {
            b++;
            continue;
        }
        struct job *j = calloc(1, sizeof(*j));
        if (!j)
            break;
        j->f = f;
        j->blk = b;
        while (j->count < JOB_BLOCKS && b <= end && !lookup(c, f->id, b)) {
            if (!insert_loading(c, f, b))
                break;
            j->count++;
            b++;
        }
        if (!j->count) {
            free(j);
            break;
        }
        f->inflight++;
        *c->jobs_tail = j;
        c->jobs_tail = &j->next;
        pthread_cond_signal(&c->work);
    }
    f->ahead_next = b;
}

/* Block blk, fetched first (with the run of missing blocks up to
 * last_blk) if the cache lacks it, and held (users) for the caller to copy
 * or lend: *got of its bytes from skip on, at most want.  NULL with *err
 * set on failure. */
static struct entry *acquire(struct bcache *c, struct bcache_file *f, uint64_t blk,
                             uint64_t last_blk, size_t skip, size_t want, size_t *got, int *err)
{
    pthread_mutex_lock(&c->lock);
    for (;;) {
        struct entry *e = lookup(c, f->id, blk);
        if (e && e->state == READY) {
            e->users++;
            lru_front(c, e);
            pthread_mutex_unlock(&c->lock);
            size_t k = e->len > skip ? e->len - skip : 0;
            *got = k < want ? k : want;
            return e;
        }
        if (e) {
            pthread_cond_wait(&c->changed, &c->lock);
            continue;
        }
        /* A run stays well inside the budget, so publishing it cannot
         * evict it again before it is copied out. */
        unsigned n = 0, max = (unsigned)(c->budget / c->block / 4);
        while (n < max && blk + n <= last_blk && !lookup(c, f->id, blk + n) &&
               insert_loading(c, f, blk + n))
            n++;
        pthread_mutex_unlock(&c->lock);
        int r = n ? fill_run(c, f, blk, n) : -ENOMEM;
        if (r < 0) {
            *err = r;
            return NULL;
        }
        pthread_mutex_lock(&c->lock);
    }
}

static void release(struct bcache *c, struct entry *e)
{
    pthread_mutex_lock(&c->lock);
    if (!--e->users)
        pthread_cond_broadcast(&c->changed); /* bcache_detach may wait */
    pthread_mutex_unlock(&c->lock);
}

/* After a read of [off, off+done): follow sequential runs and keep their
 * read-ahead going. */
static void note_read(struct bcache *c, struct bcache_file *f, uint64_t off, size_t done,
                      uint64_t last)
{
    pthread_mutex_lock(&c->lock);
    /* A read that starts near where the last ones ended continues a
     * sequential run; near, because concurrent FUSE threads deliver the
     * pieces of one stream slightly out of order. */
    uint64_t slack = 4 * (uint64_t)c->block;
    int near = off + slack >= f->seq_next && off <= f->seq_next + slack;
    f->run = near ? f->run + 1 : 0;
    if (!near || off + done > f->seq_next)
        f->seq_next = off + done;
    if (f->run >= 1 && c->readahead >= c->block)
        read_ahead(c, f, last);
    else if (!near)
        f->ahead_next = 0;
    pthread_mutex_unlock(&c->lock);
}

/* len cut to what the file holds from off on (0 past its end). */
static size_t within(const struct bcache_file *f, uint64_t off, size_t len)
{
    if (off >= f->size)
        return 0;
    return len > f->size - off ? (size_t)(f->size - off) : len;
}

int64_t bcache_read(struct bcache *c, struct bcache_file *f, void *buf, size_t len, uint64_t off)
{
    if (!(len = within(f, off, len)))
        return 0;
    uint64_t first = off / c->block, last = (off + len - 1) / c->block;
    size_t done = 0;
    for (uint64_t b = first; b <= last; b++) {
        size_t skip = b == first ? (size_t)(off % c->block) : 0, n = 0;
        int err = 0;
        struct entry *e = acquire(c, f, b, last, skip, len - done, &n, &err);
        if (!e)
            return err;
        memcpy((char *)buf + done, e->data + skip, n);
        release(c, e);
        if (n == 0)
            break;
        done += n;
    }
    note_read(c, f, off, done, last);
    return (int64_t)done;
}

/* A read lent block by block asks for the rest of its range after each
 * piece: those continuations are one read, not a sequential run of them
 * (which would start read-ahead of the whole window after one random
 * read across a block boundary). */
static void note_pin(struct bcache *c, struct bcache_file *f, uint64_t off, size_t len, size_t n,
                     uint64_t blk)
{
    pthread_mutex_lock(&c->lock);
    int cont = off == f->seq_next && off + len == f->pin_end;
    f->pin_end = off + len;
    if (cont)
        f->seq_next = off + n;
    pthread_mutex_unlock(&c->lock);
    if (!cont)
        note_read(c, f, off, n, blk);
}

int64_t bcache_pin(struct bcache *c, struct bcache_file *f, size_t len, uint64_t off,
                   const void **mem, void **pin)
{
    if (!(len = within(f, off, len)))
        return 0;
    uint64_t blk = off / c->block, last = (off + len - 1) / c->block;
    size_t skip = (size_t)(off % c->block), n = 0;
    int err = 0;
    /* the run up to last is fetched at once, as a read of len would */
    struct entry *e = acquire(c, f, blk, last, skip, len, &n, &err);
    if (!e)
        return err;
    if (!n) {
        release(c, e);
        return 0;
    }
    *mem = e->data + skip;
    *pin = e;
    note_pin(c, f, off, len, n, blk);
    return (int64_t)n;
}

void bcache_unpin(struct bcache *c, void *pin)
{
    release(c, pin);
}

uint64_t bcache_allocated(struct bcache *c)
{
    pthread_mutex_lock(&c->lock);
    uint64_t a = c->allocated;
    pthread_mutex_unlock(&c->lock);
    return a;
}
