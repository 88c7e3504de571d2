/* Dropping the kernel's cached pages of files whose bytes changed under
 * them (a commit rewrites the parent's data, an attach gives a child other
 * bytes through its new parent).  A read-only disk's flat is opened with
 * keep_cache, so without this a handle held across the change, or any later
 * open, would go on reading the old bytes.
 *
 * The notifications go out from a thread of their own: the kernel's
 * invalidation waits for pages that reads in flight hold locked, and those
 * reads need a request thread to finish (sent from the request thread of a
 * single-threaded loop it would never end). */
#define FUSE_USE_VERSION 314
#include "notify.h"

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct job {
    uint64_t ino;
    struct job *next;
    char name[]; /* "": the inode's pages; else the entry 'name' in dir ino */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct fuse_session *se;
    struct job *head, **tail;
    uint64_t queued, sent; /* jobs queued and sent (or dropped) so far */
    int started, stop;
    pthread_t thread;
} N = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Waits time out on the monotonic clock: a clock step must not cut the
 * wait short or stretch it. */
static void init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&N.cond, &a);
    pthread_condattr_destroy(&a);
    N.tail = &N.head;
}

static void *notifier(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&N.lock);
    for (;;) {
        while (!N.head && !N.stop)
            pthread_cond_wait(&N.cond, &N.lock);
        if (!N.head)
            break; /* stopping; what was queued went out or was dropped */
        struct job *j = N.head;
        N.head = j->next;
        if (!N.head)
            N.tail = &N.head;
        pthread_mutex_unlock(&N.lock);
        /* -ENOENT (the kernel never looked the file up, so it caches
         * nothing of it) and errors after unmount are expected */
        if (j->name[0])
            fuse_lowlevel_notify_inval_entry(N.se, (fuse_ino_t)j->ino, j->name, strlen(j->name));
        else
            fuse_lowlevel_notify_inval_inode(N.se, (fuse_ino_t)j->ino, 0, 0);
        free(j);
        pthread_mutex_lock(&N.lock);
        N.sent++;
        pthread_cond_broadcast(&N.cond);
    }
    pthread_mutex_unlock(&N.lock);
    return NULL;
}

static void queue(struct fuse_session *se, uint64_t ino, const char *name)
{
    pthread_once(&once, init);
    size_t nl = strlen(name);
    struct job *j = malloc(sizeof(*j) + nl + 1);
    if (!j)
        return;
    j->ino = ino;
    j->next = NULL;
    memcpy(j->name, name, nl + 1);
    pthread_mutex_lock(&N.lock);
    int ok = !N.stop;
    if (ok && !N.started) {
        N.se = se;
        ok = N.started = pthread_create(&N.thread, NULL, notifier, NULL) == 0;
    }
    if (ok) {
        *N.tail = j;
        N.tail = &j->next;
        N.queued++;
        pthread_cond_broadcast(&N.cond);
    }
    pthread_mutex_unlock(&N.lock);
    if (!ok)
        free(j);
}

void notify_inval(struct fuse_session *se, uint64_t ino)
{
    queue(se, ino, "");
}

void notify_inval_entry(struct fuse_session *se, uint64_t dir, const char *name)
{
    if (name[0])
        queue(se, dir, name);
}

int notify_wait(unsigned ms)
{
    pthread_once(&once, init);
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += ms / 1000;
    end.tv_nsec += (long)(ms % 1000) * 1000000;
    if (end.tv_nsec >= 1000000000) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&N.lock);
    uint64_t want = N.queued; /* what is queued now; later work is not ours */
    int r = 0;
    while (N.started && N.sent < want && r == 0)
        r = pthread_cond_timedwait(&N.cond, &N.lock, &end);
    int done = N.sent >= want;
    pthread_mutex_unlock(&N.lock);
    return done ? 0 : -1;
}

void notify_quiesce(void)
{
    pthread_once(&once, init);
    pthread_mutex_lock(&N.lock);
    N.stop = 1;
    while (N.head) {
        struct job *j = N.head;
        N.head = j->next;
        free(j);
        N.sent++; /* dropped: nobody waits for it any more */
    }
    N.tail = &N.head;
    pthread_cond_broadcast(&N.cond);
    pthread_mutex_unlock(&N.lock);
}

void notify_stop(void)
{
    pthread_once(&once, init);
    pthread_mutex_lock(&N.lock);
    N.stop = 1;
    int started = N.started;
    pthread_cond_broadcast(&N.cond);
    pthread_mutex_unlock(&N.lock);
    if (started)
        pthread_join(N.thread, NULL);
}
