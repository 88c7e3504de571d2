/* FUSE over io_uring (Linux 6.14 and later, module parameter
 * fuse.enable_uring=1).
 *
 * With /dev/fuse, every request costs the daemon a read and a writev, and
 * the kernel wakes whichever worker waits, often on the other CPU.  Over
 * io_uring, each CPU has its own queue of request slots and one thread
 * pinned to that CPU: a request from a process on CPU n lands in queue n,
 * and one io_uring_enter hands back the reply and waits for the next.
 *
 * libfuse 3.14 predates this transport, so vdkfs keeps libfuse for what it
 * does well (mounting, parsing requests, the reply helpers) and moves only
 * the transport: a custom I/O layer sees the FUSE_INIT exchange, adds the
 * io_uring flag to the reply, and afterwards catches each reply written for
 * a request that came through a ring and commits it there instead.
 * Requests the kernel keeps on /dev/fuse (forget, interrupt) still reach
 * libfuse's own loop.
 *
 * The kernel holds every request from the INIT reply until each queue has
 * registered a slot, so everything that can fail (io_uring_setup, memory)
 * is done before the flag is offered; a mount that cannot use the ring
 * keeps /dev/fuse. */
#define FUSE_USE_VERSION 314
#include "uring.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vdkfs.h"

/* The kernel's interface (include/uapi/linux/fuse.h, ABI 7.42); the
 * system headers here predate it. */
#define OVER_IO_URING_FLAG2  (1u << 9) /* FUSE_OVER_IO_URING, bit 41 */
#define CMD_REGISTER         1u
#define CMD_COMMIT_AND_FETCH 2u

struct ent_in_out {
    uint64_t flags;
    uint64_t commit_id; /* the request's unique, echoed on commit */
    uint32_t payload_sz;
    uint32_t padding;
    uint64_t reserved;
};

struct req_header {
    char in_out[128]; /* fuse_in_header on fetch, fuse_out_header on commit */
    char op_in[128];  /* the operation's fixed argument */
    struct ent_in_out ent;
};

struct cmd_req {
    uint64_t flags;
    uint64_t commit_id;
    uint16_t qid;
    uint8_t padding[6];
};

/* Slots per queue: a thread handles its slots one after another, and more
 * than one lets a burst arrive in one wake-up. */
#define DEPTH    4
#define SQE_SIZE 128 /* IORING_SETUP_SQE128 */
#define KICK_TAG UINT64_MAX
/* A slot's memory: the kernel's header in the first page, then the
 * payload.  The request is rebuilt just below the payload (header, then
 * the fixed argument), so libfuse sees one contiguous buffer as from
 * /dev/fuse and a write's data is not copied. */
#define HEAD_ROOM 4096u

struct queue;

struct rslot {
    struct queue *q;
    struct rslot *next;  /* in the helpers' list */
    struct fuse_buf req; /* the rebuilt request */
    char *mem;           /* HEAD_ROOM + payload */
    struct req_header *hdr;
    char *payload;
    uint64_t unique;
    unsigned op; /* the command in flight */
    struct iovec iov[2];
};

struct queue {
    int qid;
    int ring_fd;
    int kick_fd; /* eventfd: helpers' commits are waiting, or stop */
    pthread_t tid;
    int started;
    pthread_mutex_t lock; /* the submission queue, for replies from other threads */
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    char *sqes;
    struct io_uring_cqe *cqes;
    void *sq_map, *cq_map, *sqe_map;
    size_t sq_len, cq_len, sqe_len;
    struct rslot slots[DEPTH];
};

/* Requests that may wait (flush, fsync, ctl commands, anything while a
 * ctl operation holds the disks) go to helper threads: a queue thread that
 * blocks would stall every process on its CPU. */
#define HELPERS 2

static struct {
    struct fuse_session *se;
    struct fs *fs;
    int fuse_fd;
    int wanted; /* the host offers the transport and the mount wants it */
    _Atomic uint64_t init_unique;
    unsigned n_queues;
    size_t payload;
    struct queue *queues;
    _Atomic int stopping; /* the queues */
    int helpers_stop;     /* under hlock, once the queues are gone */
    int go;               /* under hlock: 1 once the INIT reply went out, -1 to give up */
    pthread_mutex_t hlock;
    pthread_cond_t hcond;
    struct rslot *hhead, *htail;
    pthread_t helper[HELPERS];
    unsigned n_helpers;
} R = {.hlock = PTHREAD_MUTEX_INITIALIZER, .hcond = PTHREAD_COND_INITIALIZER};

static _Thread_local struct rslot *cur;  /* the ring request this thread serves */
static _Thread_local struct queue *mine; /* the queue this thread runs */

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned submit, unsigned wait, unsigned flags)
{
    return (int)syscall(__NR_io_uring_enter, fd, submit, wait, flags, NULL, 0);
}

/* Count of possible CPUs: the kernel makes one queue per possible CPU and
 * picks the queue by the CPU the requesting process runs on. */
static unsigned possible_cpus(void)
{
    FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
    unsigned n = 0, a, b;
    if (!f)
        return 0;
    for (int c; fscanf(f, "%u", &a) == 1;) {
        b = a;
        if ((c = fgetc(f)) == '-') {
            if (fscanf(f, "%u", &b) != 1)
                break;
            c = fgetc(f);
        }
        n += b >= a ? b - a + 1 : 0;
        if (c != ',')
            break;
    }
    fclose(f);
    return n;
}

static int host_enables(void)
{
    FILE *f = fopen("/sys/module/fuse/parameters/enable_uring", "r");
    int c = f ? fgetc(f) : EOF;
    if (f)
        fclose(f);
    return c == 'Y' || c == '1';
}

static void queue_unmap(struct queue *q)
{
    if (q->sqe_map && q->sqe_map != MAP_FAILED)
        munmap(q->sqe_map, q->sqe_len);
    if (q->cq_map && q->cq_map != MAP_FAILED && q->cq_map != q->sq_map)
        munmap(q->cq_map, q->cq_len);
    if (q->sq_map && q->sq_map != MAP_FAILED)
        munmap(q->sq_map, q->sq_len);
    if (q->ring_fd >= 0)
        close(q->ring_fd);
    if (q->kick_fd >= 0)
        close(q->kick_fd);
    for (unsigned i = 0; i < DEPTH; i++)
        if (q->slots[i].mem)
            munmap(q->slots[i].mem, HEAD_ROOM + R.payload);
}

static int queue_map(struct queue *q)
{
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SQE128;
    q->ring_fd = sys_setup(DEPTH + 2, &p);
    q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->ring_fd < 0 || q->kick_fd < 0)
        return -1;
    q->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    q->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    int single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single && q->cq_len > q->sq_len)
        q->sq_len = q->cq_len;
    q->sq_map = mmap(NULL, q->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->ring_fd,
                     IORING_OFF_SQ_RING);
    if (q->sq_map == MAP_FAILED)
        return -1;
    q->cq_map = single ? q->sq_map
                       : mmap(NULL, q->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                              q->ring_fd, IORING_OFF_CQ_RING);
    q->sqe_len = (size_t)p.sq_entries * SQE_SIZE;
    q->sqe_map = mmap(NULL, q->sqe_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                      q->ring_fd, IORING_OFF_SQES);
    if (q->cq_map == MAP_FAILED || q->sqe_map == MAP_FAILED)
        return -1;
    char *sq = q->sq_map, *cq = q->cq_map;
    q->sq_head = (unsigned *)(sq + p.sq_off.head);
    q->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    q->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    q->sq_array = (unsigned *)(sq + p.sq_off.array);
    q->cq_head = (unsigned *)(cq + p.cq_off.head);
    q->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    q->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    q->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    q->sqes = q->sqe_map;
    for (unsigned i = 0; i < DEPTH; i++) {
        struct rslot *s = &q->slots[i];
        s->mem = mmap(NULL, HEAD_ROOM + R.payload, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (s->mem == MAP_FAILED) {
            s->mem = NULL;
            return -1;
        }
        s->q = q;
        s->hdr = (struct req_header *)s->mem;
        s->payload = s->mem + HEAD_ROOM;
        s->iov[0] = (struct iovec){s->hdr, sizeof(*s->hdr)};
        s->iov[1] = (struct iovec){s->payload, R.payload};
    }
    return 0;
}

/* Add one SQE (queue lock held). */
static struct io_uring_sqe *sqe_next(struct queue *q)
{
    unsigned tail = *q->sq_tail;
    unsigned idx = tail & *q->sq_mask;
    struct io_uring_sqe *sqe = (struct io_uring_sqe *)(q->sqes + (size_t)idx * SQE_SIZE);
    memset(sqe, 0, SQE_SIZE);
    q->sq_array[idx] = idx;
    return sqe;
}

static void sqe_push(struct queue *q)
{
    atomic_store_explicit((_Atomic unsigned *)q->sq_tail, *q->sq_tail + 1, memory_order_release);
}

static void add_cmd(struct rslot *s, unsigned op)
{
    struct io_uring_sqe *sqe = sqe_next(s->q);
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = R.fuse_fd;
    sqe->cmd_op = op;
    sqe->user_data = (uint64_t)(uintptr_t)s;
    s->op = op;
    if (op == CMD_REGISTER) {
        sqe->addr = (uint64_t)(uintptr_t)s->iov;
        sqe->len = 2;
    }
    struct cmd_req *c = (struct cmd_req *)sqe->cmd;
    c->qid = (uint16_t)s->q->qid;
    c->commit_id = op == CMD_COMMIT_AND_FETCH ? s->unique : 0;
    sqe_push(s->q);
}

/* add_cmd under the queue lock: the queue thread and helpers both add */
static void add_cmd_locked(struct rslot *s, unsigned op)
{
    pthread_mutex_lock(&s->q->lock);
    add_cmd(s, op);
    pthread_mutex_unlock(&s->q->lock);
}

static void add_kick_poll(struct queue *q)
{
    struct io_uring_sqe *sqe = sqe_next(q);
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = q->kick_fd;
    sqe->poll32_events = POLLIN;
    sqe->user_data = KICK_TAG;
    sqe_push(q);
}

/* SQEs added and not yet taken by the kernel (queue lock held). */
static unsigned unsubmitted(struct queue *q)
{
    return *q->sq_tail - atomic_load_explicit((_Atomic unsigned *)q->sq_head, memory_order_acquire);
}

/* Reads from this size on go to helpers too: a large read is two copies
 * (into the ring, then into the reader), and the kernel splits a reader's
 * 1 MiB into two requests on the same CPU's queue; helpers read both into
 * the ring on both CPUs at once, while the copy out to the reader stays
 * with the queue thread, which commits (sequential 1 MiB reads: 0.48-0.55 s
 * per GiB; /dev/fuse splices them in 0.2 s). */
#define BIG_READ (128u << 10)

/* Whether the queue thread may answer this itself: lookups and
 * attributes, small reads and writes of data files, unless a ctl
 * operation holds (or waits for) the disks. */
static int quick(const struct fuse_in_header *in, const void *arg)
{
    if (__atomic_load_n(&R.fs->heavy, __ATOMIC_SEQ_CST))
        return 0;
    uint32_t slot = (uint32_t)in->nodeid;
    switch (in->opcode) {
    case FUSE_WRITE:
        return slot == S_FLAT || slot >= S_PART;
    case FUSE_READ: {
        struct fuse_read_in r;
        memcpy(&r, arg, sizeof(r));
        return r.size < BIG_READ;
    }
    case FUSE_LOOKUP:
    case FUSE_GETATTR:
    case FUSE_OPENDIR:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
    case FUSE_RELEASEDIR:
    case FUSE_STATFS:
    case FUSE_ACCESS:
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR:
    case FUSE_LSEEK:
        return 1;
    default:
        return 0;
    }
}

static void dispatch(struct rslot *s)
{
    cur = s;
    fuse_session_process_buf(R.se, &s->req);
    cur = NULL;
}

static void *helper_main(void *arg)
{
    pthread_mutex_lock(&R.hlock);
    for (;;) {
        while (!R.hhead && !R.helpers_stop)
            pthread_cond_wait(&R.hcond, &R.hlock);
        struct rslot *s = R.hhead;
        if (!s)
            break;
        R.hhead = s->next;
        if (!R.hhead)
            R.htail = NULL;
        pthread_mutex_unlock(&R.hlock);
        dispatch(s);
        pthread_mutex_lock(&R.hlock);
    }
    pthread_mutex_unlock(&R.hlock);
    return NULL;
}

static void hand_off(struct rslot *s)
{
    pthread_mutex_lock(&R.hlock);
    s->next = NULL;
    if (R.htail)
        R.htail->next = s;
    else
        R.hhead = s;
    R.htail = s;
    pthread_cond_signal(&R.hcond);
    pthread_mutex_unlock(&R.hlock);
}

/* Rebuild the request as /dev/fuse would have delivered it and let
 * libfuse dispatch it; the reply comes back through io_writev. */
static void serve(struct rslot *s)
{
    struct fuse_in_header in;
    memcpy(&in, s->hdr->in_out, sizeof(in));
    uint32_t payload = s->hdr->ent.payload_sz;
    s->unique = s->hdr->ent.commit_id;
    size_t arg = in.len >= sizeof(in) + payload ? in.len - sizeof(in) - payload : SIZE_MAX;
    if (arg > sizeof(s->hdr->op_in) || payload > R.payload) {
        vdkfs_say("io_uring: malformed request (opcode %u, %u bytes)", in.opcode, in.len);
        struct fuse_out_header *out = (struct fuse_out_header *)s->hdr->in_out;
        *out = (struct fuse_out_header){.len = sizeof(*out), .error = -EIO, .unique = s->unique};
        s->hdr->ent.payload_sz = 0;
        add_cmd_locked(s, CMD_COMMIT_AND_FETCH);
        return;
    }
    char *start = s->payload - arg - sizeof(in);
    memcpy(start, &in, sizeof(in));
    memcpy(start + sizeof(in), s->hdr->op_in, arg);
    s->req = (struct fuse_buf){.size = in.len, .mem = start};
    if (quick(&in, s->hdr->op_in) && pthread_rwlock_tryrdlock(&R.fs->ops_lock) == 0) {
        /* Holding the disks shared across the request closes the gap
         * between the check above and the operation's own (recursive,
         * reader-preferring) read lock: a ctl operation that took them in
         * between would stall this CPU's queue until it ends. */
        dispatch(s);
        pthread_rwlock_unlock(&R.fs->ops_lock);
    } else {
        hand_off(s);
    }
}

/* A failed command.  Returns 1 when the queue should stop. */
static int failed(struct queue *q, struct rslot *s, int res)
{
    if (res == -EAGAIN || res == -EINTR) {
        add_cmd_locked(s, s->op); /* try again */
        return 0;
    }
    if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED)
        return 1; /* the mount is going away */
    vdkfs_say("io_uring queue %d: %s: %s", q->qid, s->op == CMD_REGISTER ? "register" : "commit",
              strerror(-res));
    /* A reply the kernel no longer waits for (an aborted request) loses
     * its slot there: register the buffers again.  A refused registration
     * turns the kernel back to /dev/fuse; the slot stays idle. */
    if (s->op == CMD_COMMIT_AND_FETCH)
        add_cmd_locked(s, CMD_REGISTER);
    return 0;
}

/* Returns 1 when the queue should stop. */
static int reap(struct queue *q)
{
    unsigned head = *q->cq_head;
    unsigned tail = atomic_load_explicit((_Atomic unsigned *)q->cq_tail, memory_order_acquire);
    int stop = 0;
    for (; head != tail; head++) {
        struct io_uring_cqe *c = &q->cqes[head & *q->cq_mask];
        struct rslot *s = (struct rslot *)(uintptr_t)c->user_data;
        if (c->user_data == KICK_TAG) {
            uint64_t v;
            if (read(q->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                stop = 1;
            stop |= atomic_load(&R.stopping);
            if (!stop) { /* the poll is one-shot: arm it again */
                pthread_mutex_lock(&q->lock);
                add_kick_poll(q);
                pthread_mutex_unlock(&q->lock);
            }
        } else if (c->res < 0)
            stop |= failed(q, s, c->res);
        else
            serve(s);
    }
    atomic_store_explicit((_Atomic unsigned *)q->cq_head, head, memory_order_release);
    return stop;
}

/* Wait until the INIT reply offered the ring (1) or it was given up (-1). */
static int wait_go(void)
{
    pthread_mutex_lock(&R.hlock);
    while (!R.go)
        pthread_cond_wait(&R.hcond, &R.hlock);
    int go = R.go;
    pthread_mutex_unlock(&R.hlock);
    return go;
}

static void set_go(int go)
{
    pthread_mutex_lock(&R.hlock);
    R.go = go;
    pthread_cond_broadcast(&R.hcond);
    pthread_mutex_unlock(&R.hlock);
}

static void *queue_main(void *arg)
{
    struct queue *q = arg;
    mine = q;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(q->qid, &set);
    /* a CPU that is not online only loses the locality, not the queue */
    (void)sched_setaffinity(0, sizeof(set), &set);
    if (wait_go() < 0)
        return NULL;
    pthread_mutex_lock(&q->lock);
    for (unsigned i = 0; i < DEPTH; i++)
        add_cmd(&q->slots[i], CMD_REGISTER);
    add_kick_poll(q);
    pthread_mutex_unlock(&q->lock);
    /* Only this thread submits: the kernel delivers a slot's next request
     * through the submitting thread, and a helper that submitted would then
     * own the slot while it waits on something slow. */
    for (unsigned backoff = 0; !atomic_load(&R.stopping);) {
        pthread_mutex_lock(&q->lock);
        unsigned n = unsubmitted(q);
        pthread_mutex_unlock(&q->lock);
        int r = sys_enter(q->ring_fd, n, 1, IORING_ENTER_GETEVENTS);
        if (r < 0 && errno != EINTR) {
            /* EAGAIN, ENOMEM, EBUSY: passing; the SQEs stay queued.  A
             * queue that stopped would stall its CPU for good. */
            if (errno != EAGAIN && errno != ENOMEM && errno != EBUSY && !backoff)
                vdkfs_say("io_uring queue %d: %s", q->qid, strerror(errno));
            usleep(backoff < 100 ? ++backoff * 100 : 10000);
        } else {
            backoff = 0;
        }
        if (reap(q))
            break;
    }
    return NULL;
}

/* ---- the custom I/O layer libfuse writes through ------------------------ */

static ssize_t io_read(int fd, void *buf, size_t len, void *ud)
{
    ssize_t r = read(fd, buf, len);
    const struct fuse_in_header *in = buf;
    if (r >= (ssize_t)(sizeof(*in) + sizeof(struct fuse_init_in)) && in->opcode == FUSE_INIT) {
        const struct fuse_init_in *ii = (const void *)(in + 1);
        if ((ii->flags & FUSE_INIT_EXT) && (ii->flags2 & OVER_IO_URING_FLAG2))
            atomic_store(&R.init_unique, in->unique);
    }
    return r;
}

static int start_queues(void);

/* The INIT reply: offer the ring when every queue, its thread and the
 * helpers are ready (from the reply on, the kernel holds every request until
 * each queue registered). */
static ssize_t init_reply(int fd, struct iovec *iov, int count)
{
    struct fuse_init_out io;
    if (count != 2 || iov[1].iov_len < sizeof(io))
        return writev(fd, iov, count);
    memcpy(&io, iov[1].iov_base, sizeof(io));
    /* the kernel wants room for its largest request or reply */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (io.flags & FUSE_MAX_PAGES) ? io.max_pages : 32;
    R.payload = io.max_write > pages * page ? io.max_write : pages * page;
    if (R.payload < 8192)
        R.payload = 8192;
    int ok = start_queues() == 0;
    if (ok) {
        io.flags |= FUSE_INIT_EXT;
        io.flags2 |= OVER_IO_URING_FLAG2;
    }
    struct iovec v[2] = {iov[0], {&io, sizeof(io)}};
    ssize_t r = writev(fd, v, 2);
    if (ok)
        set_go(r >= 0 ? 1 : -1);
    return r;
}

static ssize_t commit(struct rslot *s, const struct iovec *iov, int count)
{
    size_t total = 0;
    for (int i = 1; i < count; i++)
        total += iov[i].iov_len;
    struct fuse_out_header out;
    memcpy(&out, iov[0].iov_base, sizeof(out));
    if (total > R.payload) {
        out.error = -EIO;
        total = 0;
    } else if (!(count == 2 && iov[1].iov_base == s->payload)) {
        size_t at = 0;
        for (int i = 1; i < count; i++) {
            memcpy(s->payload + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
    }
    out.len = (uint32_t)(sizeof(out) + total);
    memcpy(s->hdr->in_out, &out, sizeof(out));
    s->hdr->ent.payload_sz = (uint32_t)total;
    struct queue *q = s->q;
    add_cmd_locked(s, CMD_COMMIT_AND_FETCH);
    if (mine != q) { /* a helper: the queue thread submits it */
        uint64_t one = 1;
        if (write(q->kick_fd, &one, sizeof(one)) < 0)
            vdkfs_say("io_uring queue %d: %s", q->qid, strerror(errno));
    }
    return (ssize_t)(sizeof(out) + total);
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *ud)
{
    const struct fuse_out_header *out = iov[0].iov_base;
    if (cur && out->unique == cur->unique) {
        struct rslot *s = cur;
        cur = NULL; /* one reply per request */
        return commit(s, iov, count);
    }
    uint64_t iu = atomic_load(&R.init_unique);
    if (iu && out->unique == iu) {
        atomic_store(&R.init_unique, 0);
        return init_reply(fd, iov, count);
    }
    return writev(fd, iov, count);
}

/* Queue threads first (a queue may still hand requests to the helpers),
 * then the helpers, once nothing can reach them. */
static void stop_threads(void)
{
    atomic_store(&R.stopping, 1);
    pthread_mutex_lock(&R.hlock);
    if (!R.go)
        R.go = -1;
    pthread_cond_broadcast(&R.hcond);
    pthread_mutex_unlock(&R.hlock);
    for (unsigned i = 0; i < R.n_queues; i++) {
        struct queue *q = &R.queues[i];
        if (q->started) {
            uint64_t one = 1;
            if (write(q->kick_fd, &one, sizeof(one)) < 0)
                vdkfs_say("io_uring: cannot stop queue %u", i);
            pthread_join(q->tid, NULL);
            q->started = 0;
        }
    }
    pthread_mutex_lock(&R.hlock);
    R.helpers_stop = 1;
    pthread_cond_broadcast(&R.hcond);
    pthread_mutex_unlock(&R.hlock);
    for (unsigned i = 0; i < R.n_helpers; i++)
        pthread_join(R.helper[i], NULL);
    R.n_helpers = 0;
}

static void free_queues(void)
{
    for (unsigned i = 0; i < R.n_queues; i++) {
        queue_unmap(&R.queues[i]);
        pthread_mutex_destroy(&R.queues[i].lock);
    }
    free(R.queues);
    R.queues = NULL;
    R.n_queues = 0;
}

/* Rings, buffers and threads for every possible CPU; -1 (after saying
 * why) leaves nothing behind. */
static int start_queues(void)
{
    unsigned n = possible_cpus();
    if (n == 0 || n > 1024 || !(R.queues = calloc(n, sizeof(*R.queues))))
        return -1;
    int bad = 0;
    for (unsigned i = 0; i < n && !bad; i++, R.n_queues++) {
        struct queue *q = &R.queues[i];
        q->qid = (int)i;
        q->ring_fd = q->kick_fd = -1;
        pthread_mutex_init(&q->lock, NULL);
        bad = queue_map(q) < 0;
    }
    for (unsigned i = 0; i < HELPERS && !bad; i++) {
        bad = (errno = pthread_create(&R.helper[i], NULL, helper_main, NULL)) != 0;
        R.n_helpers += !bad;
    }
    for (unsigned i = 0; i < n && !bad; i++) {
        bad = (errno = pthread_create(&R.queues[i].tid, NULL, queue_main, &R.queues[i])) != 0;
        R.queues[i].started = !bad;
    }
    if (!bad)
        return 0;
    vdkfs_say("io_uring: %s; serving through /dev/fuse", strerror(errno));
    stop_threads();
    free_queues();
    atomic_store(&R.stopping, 0);
    R.helpers_stop = 0;
    return -1;
}

int uring_attach(struct fuse_session *se, struct fs *fs, int want)
{
    if (!want)
        return 0; /* libfuse's own I/O, splice included */
    if (!host_enables()) {
        vdkfs_say("-o uring=on: the kernel does not allow FUSE over io_uring "
                  "(/sys/module/fuse/parameters/enable_uring); serving through /dev/fuse");
        return 0;
    }
    R.se = se;
    R.fs = fs;
    /* a descriptor of our own: unmounting closes the session's while the
     * queues may still be committing */
    R.fuse_fd = fcntl(fuse_session_fd(se), F_DUPFD_CLOEXEC, 0);
    if (R.fuse_fd < 0)
        return 0;
    R.wanted = 1;
    /* No splice hooks: vdkfs does not ask for spliced replies when the ring
     * is wanted (uring_wanted), since one would miss the ring and leave its
     * reader waiting. */
    static const struct fuse_custom_io io = {.read = io_read, .writev = io_writev};
    int r = fuse_session_custom_io(se, &io, fuse_session_fd(se));
    if (r < 0) {
        close(R.fuse_fd);
        R.wanted = 0;
    }
    return r;
}

int uring_wanted(void)
{
    return R.wanted;
}

char *uring_payload(size_t size)
{
    return cur && size <= R.payload ? cur->payload : NULL;
}

void uring_stop(void)
{
    stop_threads();
    free_queues();
    if (R.wanted)
        close(R.fuse_fd);
    R.wanted = 0;
}
