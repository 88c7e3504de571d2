/* vdkfs's low-level FUSE operations: the mounted tree of DESIGN.md mapped
 * onto libvdk.  Every request is answered from the worker thread that got
 * it; the disk handles are thread-safe, so requests run concurrently. */
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "infotext.h"
#include "vdk_ioctl.h"
#include "notify.h"
#include "uring.h"
#include "vdkfs.h"

#define XATTR_PREFIX "user.vdk."

static struct fs *FS(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static fuse_ino_t ino_of(unsigned node, uint32_t slot)
{
    return (fuse_ino_t)node << 32 | slot;
}

static unsigned node_of(fuse_ino_t ino)
{
    return (unsigned)(ino >> 32);
}

static uint32_t slot_of(fuse_ino_t ino)
{
    return (uint32_t)ino;
}

/* Per-open state of the small text files (info, metadata keys, ctl). */
struct text {
    char *data;
    size_t len;
    int dirty;
};

static const char *const fixed[] = {NULL,       NULL,       "flat",       "info",
                                    "metadata", "children", "partitions", "ctl"};

static int key_value(struct node *n, unsigned k, char **out)
{
    size_t need = 0;
    if (k >= n->n_keys || vdk_meta_get(n->disk, n->keys[k], NULL, 0, &need) != -VDK_E_BUFSMALL)
        return -ENOENT;
    *out = malloc(need);
    if (!*out)
        return -ENOMEM;
    vdk_meta_get(n->disk, n->keys[k], *out, need, NULL);
    return 0;
}

/* Fill st for ino; 0 or -errno. */
static int attr(struct fs *fs, fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_nlink = 1;
    unsigned idx = node_of(ino);
    uint32_t slot = slot_of(ino);
    if (idx == 0) {
        if (slot != S_DIR)
            return -ENOENT;
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
        return 0;
    }
    struct node *n = tree_node(fs, idx);
    if (!n)
        return -ENOENT;
    int w = n->writable;
    switch (slot) {
    case S_DIR:
    case S_META:
    case S_CHILDREN:
    case S_PARTS:
        st->st_mode = S_IFDIR | (slot == S_META && w ? 0755 : 0555);
        st->st_nlink = 2;
        return 0;
    case S_FLAT:
        st->st_mode = S_IFREG | (w ? 0644 : 0444);
        st->st_size = (off_t)n->capacity;
        st->st_blocks = (blkcnt_t)(n->capacity / 512);
        return n->error ? -ENOENT : 0;
    case S_INFO:
        st->st_mode = S_IFREG | 0444;
        st->st_size = 4096; /* read with direct I/O: the real length may differ */
        return 0;
    case S_CTL:
        st->st_mode = S_IFREG | (fs->ro ? 0444 : 0644);
        st->st_size = (off_t)strlen(n->ctl_status);
        return n->error ? -ENOENT : 0;
    }
    pthread_mutex_lock(&n->lock);
    int r = -ENOENT;
    if (slot >= S_PART && n->disk) {
        parts_load(n);
        unsigned p = slot - S_PART;
        if (p >= 1 && p <= n->n_parts && n->parts[p - 1].length) {
            st->st_mode = S_IFREG | (w ? 0644 : 0444);
            st->st_size = (off_t)n->parts[p - 1].length;
            r = 0;
        }
    } else if (slot >= S_KEY && n->disk) {
        char *v;
        r = key_value(n, slot - S_KEY, &v);
        if (r == 0) {
            st->st_mode = S_IFREG | (w ? 0644 : 0444);
            st->st_size = (off_t)strlen(v) + 1;
            free(v);
        }
    }
    pthread_mutex_unlock(&n->lock);
    return r;
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino, double timeout)
{
    struct fuse_entry_param e = {.ino = ino, .attr_timeout = timeout, .entry_timeout = timeout};
    int r = attr(FS(req), ino, &e.attr);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_entry(req, &e);
}

/* The node, with its disk open (for everything that reads the disk). */
static struct node *open_node(struct fs *fs, unsigned idx, int *err)
{
    struct node *n = tree_node(fs, idx);
    if (!n) {
        *err = ENOENT;
        return NULL;
    }
    pthread_mutex_lock(&n->lock);
    vdk_disk *d = node_disk(fs, n);
    int e = errno;
    pthread_mutex_unlock(&n->lock);
    if (!d) {
        *err = e ? e : EIO;
        return NULL;
    }
    return n;
}

/* The node of ino with its disk open, or NULL (a control operation may have
 * closed the handle: it is opened again here). */
static struct node *disk_node(struct fs *fs, fuse_ino_t ino)
{
    int err;
    return open_node(fs, node_of(ino), &err);
}

static unsigned find_kid(struct fs *fs, unsigned *ids, unsigned k, const char *name)
{
    for (unsigned i = 0; i < k; i++) {
        struct node *c = tree_node(fs, ids[i]);
        if (c && !strcmp(c->dname, name))
            return ids[i];
    }
    return 0;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *fs = FS(req);
    unsigned idx = node_of(parent), ids[4096], k;
    uint32_t slot = slot_of(parent);
    if (idx == 0) {
        k = tree_roots(fs, ids, 4096);
        unsigned c = find_kid(fs, ids, k, name);
        if (!c) {
            tree_scan(fs); /* a disk added meanwhile */
            k = tree_roots(fs, ids, 4096);
            c = find_kid(fs, ids, k, name);
        }
        return c ? reply_entry(req, ino_of(c, S_DIR), 1.0) : (void)fuse_reply_err(req, ENOENT);
    }
    struct node *n = tree_node(fs, idx);
    if (!n)
        return (void)fuse_reply_err(req, ENOENT);
    if (slot == S_DIR) {
        for (uint32_t s = S_FLAT; s <= S_CTL; s++)
            if (!strcmp(name, fixed[s]))
                return reply_entry(req, ino_of(idx, s), s == S_FLAT ? 0.0 : 1.0);
        return (void)fuse_reply_err(req, ENOENT);
    }
    if (slot == S_CHILDREN) {
        k = tree_kids(fs, n, ids, 4096);
        unsigned c = find_kid(fs, ids, k, name);
        if (!c) {
            /* children made by other tools show up here; a known child needs
             * no scan (a path 64 links deep scanned the folder 64 times) */
            tree_scan(fs);
            k = tree_kids(fs, n, ids, 4096);
            c = find_kid(fs, ids, k, name);
        }
        /* cached for a second like the roots: with no caching, every open
         * of a leaf 64 links deep sent the kernel through 200 lookups */
        return c ? reply_entry(req, ino_of(c, S_DIR), 1.0) : (void)fuse_reply_err(req, ENOENT);
    }
    int err = 0;
    if (slot == S_META || slot == S_PARTS) {
        if (!open_node(fs, idx, &err))
            return (void)fuse_reply_err(req, err);
        pthread_mutex_lock(&n->lock);
        uint32_t found = 0;
        if (slot == S_META) {
            node_load_keys(n);
            for (unsigned i = 0; i < n->n_keys && !found; i++)
                if (!strcmp(n->keys[i], name))
                    found = S_KEY + i;
        } else if (name[0] == 'p') {
            parts_load(n);
            char *end;
            unsigned long p = strtoul(name + 1, &end, 10);
            if (!*end && p >= 1 && p <= n->n_parts && n->parts[p - 1].length)
                found = S_PART + (uint32_t)p;
        }
        pthread_mutex_unlock(&n->lock);
        return found ? reply_entry(req, ino_of(idx, found), 0.0)
                     : (void)fuse_reply_err(req, ENOENT);
    }
    fuse_reply_err(req, ENOTDIR);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    int r = attr(FS(req), ino, &st);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_attr(req, &st, 0.0);
}

/* ---- directories ---- */

struct dirbuf {
    char *p;
    size_t len;
};

static void dir_add(fuse_req_t req, struct dirbuf *b, const char *name, fuse_ino_t ino, mode_t mode)
{
    struct stat st = {.st_ino = ino, .st_mode = mode};
    size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
    b->p = realloc(b->p, b->len + need);
    fuse_add_direntry(req, b->p + b->len, need, name, &st, (off_t)(b->len + need));
    b->len += need;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    struct fs *fs = FS(req);
    unsigned idx = node_of(ino), ids[4096], k;
    uint32_t slot = slot_of(ino);
    struct dirbuf b = {0};
    dir_add(req, &b, ".", ino, S_IFDIR);
    dir_add(req, &b, "..", FUSE_ROOT_ID, S_IFDIR);
    struct node *n = idx ? tree_node(fs, idx) : NULL;
    if (idx && !n)
        return (void)fuse_reply_err(req, ENOENT);
    int err = 0;
    if (idx == 0 || slot == S_CHILDREN) {
        if (off == 0)
            tree_scan(fs);
        k = idx == 0 ? tree_roots(fs, ids, 4096) : tree_kids(fs, n, ids, 4096);
        for (unsigned i = 0; i < k; i++) {
            struct node *c = tree_node(fs, ids[i]);
            if (c)
                dir_add(req, &b, c->dname, ino_of(ids[i], S_DIR), S_IFDIR);
        }
    } else if (slot == S_DIR) {
        for (uint32_t s = S_FLAT; s <= S_CTL; s++)
            if (!n->error || s == S_INFO)
                dir_add(req, &b, fixed[s], ino_of(idx, s),
                        s == S_META || s == S_CHILDREN || s == S_PARTS ? S_IFDIR : S_IFREG);
    } else if (slot == S_META || slot == S_PARTS) {
        if (!open_node(fs, idx, &err)) {
            free(b.p);
            return (void)fuse_reply_err(req, err);
        }
        pthread_mutex_lock(&n->lock);
        if (slot == S_META) {
            node_load_keys(n);
            for (unsigned i = 0; i < n->n_keys; i++)
                dir_add(req, &b, n->keys[i], ino_of(idx, S_KEY + i), S_IFREG);
        } else {
            parts_load(n);
            for (unsigned i = 0; i < n->n_parts; i++) {
                char pn[16];
                snprintf(pn, sizeof(pn), "p%u", i + 1);
                if (n->parts[i].length)
                    dir_add(req, &b, pn, ino_of(idx, S_PART + i + 1), S_IFREG);
            }
        }
        pthread_mutex_unlock(&n->lock);
    } else {
        free(b.p);
        return (void)fuse_reply_err(req, ENOTDIR);
    }
    if ((size_t)off < b.len)
        fuse_reply_buf(req, b.p + off, b.len - (size_t)off < size ? b.len - (size_t)off : size);
    else
        fuse_reply_buf(req, NULL, 0);
    free(b.p);
}

/* ---- files ---- */

static struct text *text_new(const char *s)
{
    struct text *t = calloc(1, sizeof(*t));
    if (t && s) {
        t->data = strdup(s);
        t->len = strlen(s);
    }
    return t;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *fs = FS(req);
    unsigned idx = node_of(ino);
    uint32_t slot = slot_of(ino);
    int wr = (fi->flags & O_ACCMODE) != O_RDONLY, err = 0;
    struct node *n = idx ? tree_node(fs, idx) : NULL;
    if (!n)
        return (void)fuse_reply_err(req, idx ? ENOENT : EISDIR);
    if (slot == S_INFO) {
        struct text *t = NULL;
        if (wr)
            return (void)fuse_reply_err(req, EACCES);
        if (n->error || !open_node(fs, idx, &err)) {
            char msg[1024];
            snprintf(msg, sizeof(msg), "disk:           %s\nerror:          %s\n", n->name,
                     n->error ? n->error : strerror(err));
            t = text_new(msg);
        } else {
            int st = 0;
            char *s = info_text(n->disk, &st);
            char *full = NULL;
            if (s && asprintf(&full, "%stransport:      %s\n", s,
                              fs->transport[0] ? fs->transport : "file") < 0)
                full = NULL;
            t = text_new(full ? full : s ? s : vdk_strerror(st));
            free(full);
            free(s);
        }
        fi->fh = (uint64_t)(uintptr_t)t;
        fi->direct_io = 1;
        return (void)fuse_reply_open(req, fi);
    }
    if (!open_node(fs, idx, &err))
        return (void)fuse_reply_err(req, err);
    if (wr && (slot != S_CTL || fs->ro) && !n->writable)
        return (void)fuse_reply_err(req, EROFS);
    if (slot == S_FLAT || slot >= S_PART) {
        fi->keep_cache = !n->writable;
        return (void)fuse_reply_open(req, fi);
    }
    struct text *t = NULL;
    if (slot == S_CTL) {
        t = text_new(NULL);
    } else if (slot >= S_KEY) {
        char *v = NULL;
        pthread_mutex_lock(&n->lock);
        int r = key_value(n, slot - S_KEY, &v);
        pthread_mutex_unlock(&n->lock);
        if (r < 0)
            return (void)fuse_reply_err(req, -r);
        size_t l = strlen(v);
        v = realloc(v, l + 2);
        strcpy(v + l, "\n");
        t = text_new(v);
        free(v);
        if (fi->flags & O_TRUNC) {
            t->len = 0;
            t->dirty = 1;
        }
    } else {
        return (void)fuse_reply_err(req, EISDIR);
    }
    fi->fh = (uint64_t)(uintptr_t)t;
    fi->direct_io = 1;
    fuse_reply_open(req, fi);
}

/* Offset and length of a flat-like file inside the disk. */
static int window(struct node *n, uint32_t slot, uint64_t *start, uint64_t *len)
{
    if (slot == S_FLAT) {
        *start = 0;
        *len = n->capacity;
        return 0;
    }
    pthread_mutex_lock(&n->lock);
    parts_load(n); /* an operation on the disk may have dropped the list */
    unsigned p = slot - S_PART;
    int r = p >= 1 && p <= n->n_parts ? 0 : -ENOENT;
    if (r == 0) {
        *start = n->parts[p - 1].start;
        *len = n->parts[p - 1].length;
    }
    pthread_mutex_unlock(&n->lock);
    return r;
}

static int io_errno(vdk_disk *d, int64_t r)
{
    vdk_error e;
    vdk_last_error(d, &e);
    vdkfs_say("%s", e.message);
    return vdk_errno((int)r);
}

/* Each worker thread keeps one buffer for the replies it cannot splice,
 * allocated on its first read and freed when the thread ends: no
 * allocation of up to max_read bytes per request.  The kernel never asks
 * for more than max_read (512 KiB, main.c); the buffer has room for 1 MiB. */
#define RBUF_SIZE (1u << 20)

static pthread_key_t rbuf_key;
static pthread_once_t rbuf_once = PTHREAD_ONCE_INIT;

static void rbuf_key_init(void)
{
    pthread_key_create(&rbuf_key, free);
}

static char *read_buffer(size_t size)
{
    if (size > RBUF_SIZE)
        return NULL;
    pthread_once(&rbuf_once, rbuf_key_init);
    char *p = pthread_getspecific(rbuf_key);
    if (!p && (p = malloc(RBUF_SIZE)) && pthread_setspecific(rbuf_key, p) != 0) {
        free(p);
        p = NULL;
    }
    return p;
}

/* Reply with disk bytes.  A range that sits unchanged in one local file
 * goes to the kernel by splice (page references into a pipe, then one copy
 * into the reader's pages) instead of a pread into memory and a second
 * copy out of it.  Only whole single-file replies are spliced: libfuse
 * 3.14, when a splice of a later piece fails after earlier pieces went into
 * the pipe, falls back to copying from the advanced position, and the
 * reply came out shifted (seen on cold page caches).  Mixed replies are
 * assembled in memory. */
#define READ_SEGS  64
#define SPLICE_MIN (64u << 10)

static int fill_named(char *buf, const vdk_segment *seg, int k)
{
    size_t pos = 0;
    for (int i = 0; i < k; i++) {
        for (size_t done = 0; seg[i].fd >= 0 && done < seg[i].len;) {
            ssize_t got = pread(seg[i].fd, buf + pos + done, (size_t)seg[i].len - done,
                                (off_t)(seg[i].fd_off + done));
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                return got < 0 ? errno : EIO;
            done += (size_t)got;
        }
        pos += (size_t)seg[i].len;
    }
    return 0;
}

/* A reply with lent pieces: one writev from where each piece lies (the
 * kernel copies them straight into the reader's pages), then the pieces
 * go back to their store. */
static void reply_lent(fuse_req_t req, char *buf, vdk_segment *seg, int k)
{
    struct iovec iov[READ_SEGS];
    size_t pos = 0;
    int e = fill_named(buf, seg, k);
    for (int i = 0; i < k; i++) {
        iov[i].iov_base = seg[i].fd == VDK_SEG_LENT ? (void *)seg[i].mem : buf + pos;
        iov[i].iov_len = (size_t)seg[i].len;
        pos += (size_t)seg[i].len;
    }
    if (e)
        fuse_reply_err(req, e);
    else
        fuse_reply_iov(req, iov, k);
    vdk_read_release(seg, k);
}

static void read_flat(fuse_req_t req, struct node *n, size_t size, uint64_t off)
{
    /* over io_uring the reply buffer is the ring's: read straight into it */
    char *ring = uring_payload(size);
    char *buf = ring ? ring : read_buffer(size);
    if (!buf)
        return (void)fuse_reply_err(req, ENOMEM);
    vdk_segment seg[READ_SEGS];
    /* small reads: three splice calls cost more than copying 4 KiB twice
     * (random 4 KiB reads measured 52k IOPS spliced, 67k copied) */
    unsigned room = !ring && size >= SPLICE_MIN ? READ_SEGS : 1;
    /* bytes a remote disk's cache holds are lent, not copied into buf
     * (over io_uring they are copied once anyway, into the ring) */
    int k = ring ? vdk_read_vec(n->disk, buf, size, off, seg, room)
                 : vdk_read_lend(n->disk, buf, size, off, seg, room);
    if (k < 0)
        return (void)fuse_reply_err(req, io_errno(n->disk, k));
    size_t total = 0;
    int lent = 0;
    for (int i = 0; i < k; i++) {
        total += (size_t)seg[i].len;
        lent |= seg[i].fd == VDK_SEG_LENT;
    }
    if (lent)
        return reply_lent(req, buf, seg, k);
    if (!ring && k == 1 && seg[0].fd >= 0) {
        struct fuse_bufvec v = FUSE_BUFVEC_INIT(total);
        v.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        v.buf[0].fd = seg[0].fd;
        v.buf[0].pos = (off_t)seg[0].fd_off;
        /* no SPLICE_MOVE: the backing file's cached pages are not ours */
        return (void)fuse_reply_data(req, &v, 0);
    }
    int e = fill_named(buf, seg, k);
    if (e)
        return (void)fuse_reply_err(req, e);
    fuse_reply_buf(req, buf, total);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct fs *fs = FS(req);
    uint32_t slot = slot_of(ino);
    if (slot == S_FLAT || slot >= S_PART) {
        struct node *n = disk_node(fs, ino);
        uint64_t start, len;
        if (!n || window(n, slot, &start, &len) < 0)
            return (void)fuse_reply_err(req, ENOENT);
        if ((uint64_t)off >= len)
            return (void)fuse_reply_buf(req, NULL, 0);
        if (size > len - (uint64_t)off)
            size = (size_t)(len - (uint64_t)off);
        return read_flat(req, n, size, start + (uint64_t)off);
    }
    struct text *t = (struct text *)(uintptr_t)fi->fh;
    if (slot == S_CTL) {
        struct node *n = tree_node(fs, node_of(ino));
        free(t->data);
        t->data = strdup(n ? n->ctl_status : "");
        t->len = strlen(t->data);
    }
    if ((size_t)off >= t->len)
        return (void)fuse_reply_buf(req, NULL, 0);
    fuse_reply_buf(req, t->data + off, t->len - (size_t)off < size ? t->len - (size_t)off : size);
}

static int text_put(struct text *t, const char *buf, size_t size, off_t off)
{
    if ((size_t)off + size > 65536)
        return -EFBIG;
    size_t end = (size_t)off + size;
    if (end > t->len) {
        char *p = realloc(t->data, end + 1);
        if (!p)
            return -ENOMEM;
        if ((size_t)off > t->len)
            memset(p + t->len, 0, (size_t)off - t->len);
        t->data = p;
        t->len = end;
    }
    memcpy(t->data + off, buf, size);
    t->data[t->len] = '\0';
    t->dirty = 1;
    return 0;
}

static int ctl_command(struct fs *fs, struct node *n, const char *cmd);
static int heavy(struct fs *fs, struct node *n, const char *verb, const char *arg);

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct fs *fs = FS(req);
    uint32_t slot = slot_of(ino);
    struct node *n = tree_node(fs, node_of(ino));
    if (!n)
        return (void)fuse_reply_err(req, ENOENT);
    if (slot == S_FLAT || slot >= S_PART) {
        uint64_t start, len;
        if (!n->writable)
            return (void)fuse_reply_err(req, EROFS);
        if (!disk_node(fs, ino) || window(n, slot, &start, &len) < 0)
            return (void)fuse_reply_err(req, ENOENT);
        if ((uint64_t)off >= len || size > len - (uint64_t)off)
            return (void)fuse_reply_err(req, (uint64_t)off >= len ? ENOSPC : EFBIG);
        int64_t w = vdk_write(n->disk, buf, size, start + (uint64_t)off);
        if (w < 0)
            return (void)fuse_reply_err(req, io_errno(n->disk, w));
        return (void)fuse_reply_write(req, size);
    }
    struct text *t = (struct text *)(uintptr_t)fi->fh;
    if (slot == S_CTL) {
        /* one command per write(2) */
        char cmd[1100];
        snprintf(cmd, sizeof(cmd), "%.*s", (int)(size < 1099 ? size : 1099), buf);
        int r = ctl_command(fs, n, cmd);
        return r < 0 ? (void)fuse_reply_err(req, -r) : (void)fuse_reply_write(req, size);
    }
    int r = text_put(t, buf, size, off);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_write(req, size);
}

/* A metadata file's new value: its text without one trailing newline. */
static int commit_key(struct fs *fs, fuse_ino_t ino, struct text *t)
{
    if (!t || !t->dirty)
        return 0;
    struct node *n = disk_node(fs, ino);
    if (!n)
        return -ENOENT;
    char *v = strndup(t->data ? t->data : "", t->len);
    if (!v)
        return -ENOMEM;
    size_t l = strlen(v);
    if (l && v[l - 1] == '\n')
        v[--l] = '\0';
    pthread_mutex_lock(&n->lock);
    unsigned k = slot_of(ino) - S_KEY;
    vdk_error err = {0};
    int r = k < n->n_keys ? vdk_meta_set(n->disk, n->keys[k], v, &err) : -VDK_E_NOTFOUND;
    pthread_mutex_unlock(&n->lock);
    free(v);
    if (r < 0) {
        vdkfs_say("%s", err.message);
        return -vdk_errno(r);
    }
    t->dirty = 0;
    return 0;
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    uint32_t slot = slot_of(ino);
    int r = 0;
    if (slot >= S_KEY && slot < S_PART)
        r = commit_key(FS(req), ino, (struct text *)(uintptr_t)fi->fh);
    fuse_reply_err(req, -r);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    struct node *n = disk_node(FS(req), ino);
    uint32_t slot = slot_of(ino);
    int r = 0;
    if (n && (slot == S_FLAT || slot >= S_PART)) {
        int64_t f = vdk_flush(n->disk);
        r = f < 0 ? -io_errno(n->disk, f) : 0;
    } else if (slot >= S_KEY && slot < S_PART) {
        r = commit_key(FS(req), ino, (struct text *)(uintptr_t)fi->fh);
    }
    fuse_reply_err(req, -r);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    uint32_t slot = slot_of(ino);
    struct text *t = (struct text *)(uintptr_t)fi->fh;
    if (slot != S_FLAT && slot < S_PART && t) {
        if (slot >= S_KEY)
            commit_key(FS(req), ino, t);
        free(t->data);
        free(t);
    }
    fuse_reply_err(req, 0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *st, int to_set,
                       struct fuse_file_info *fi)
{
    struct fs *fs = FS(req);
    uint32_t slot = slot_of(ino);
    struct node *n = tree_node(fs, node_of(ino));
    if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
        return (void)fuse_reply_err(req, EPERM);
    if ((to_set & FUSE_SET_ATTR_SIZE) && slot == S_CTL) {
        /* "echo cmd > ctl" truncates first: nothing to do */
    } else if (to_set & FUSE_SET_ATTR_SIZE) {
        if (!n || !n->writable)
            return (void)fuse_reply_err(req, EROFS);
        if (slot == S_FLAT) {
            if ((uint64_t)st->st_size < n->capacity)
                return (void)fuse_reply_err(req, EINVAL); /* capacity never shrinks */
            if ((uint64_t)st->st_size > n->capacity) {
                char size[32];
                snprintf(size, sizeof(size), "%llu", (unsigned long long)st->st_size);
                int r = heavy(fs, n, "grow", size);
                if (r < 0)
                    return (void)fuse_reply_err(req, -r);
            }
        } else if (slot >= S_KEY && slot < S_PART) {
            struct text *t = fi ? (struct text *)(uintptr_t)fi->fh : NULL;
            if (t) {
                t->len = (size_t)st->st_size < t->len ? (size_t)st->st_size : t->len;
                t->dirty = 1;
            } else if (st->st_size == 0) {
                struct text empty = {.data = NULL, .len = 0, .dirty = 1};
                int r = commit_key(fs, ino, &empty);
                if (r < 0)
                    return (void)fuse_reply_err(req, -r);
            }
        } else {
            return (void)fuse_reply_err(req, EINVAL);
        }
    }
    struct stat out;
    int r = attr(fs, ino, &out);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_attr(req, &out, 0.0);
}

/* New files are new metadata keys. */
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    struct fs *fs = FS(req);
    int err = 0;
    if (slot_of(parent) != S_META || node_of(parent) == 0)
        return (void)fuse_reply_err(req, EPERM);
    struct node *n = open_node(fs, node_of(parent), &err);
    if (!n)
        return (void)fuse_reply_err(req, err);
    if (!n->writable)
        return (void)fuse_reply_err(req, EROFS);
    pthread_mutex_lock(&n->lock);
    vdk_error verr = {0};
    int r = vdk_meta_set(n->disk, name, "", &verr);
    if (r == 0)
        node_load_keys(n);
    unsigned k = 0;
    while (k < n->n_keys && strcmp(n->keys[k], name))
        k++;
    pthread_mutex_unlock(&n->lock);
    if (r < 0) {
        vdkfs_say("%s", verr.message);
        return (void)fuse_reply_err(req, vdk_errno(r));
    }
    struct fuse_entry_param e = {.ino = ino_of(n->idx, S_KEY + k)};
    attr(fs, e.ino, &e.attr);
    struct text *t = text_new("");
    fi->fh = (uint64_t)(uintptr_t)t;
    fi->direct_io = 1;
    fuse_reply_create(req, &e, fi);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fuse_reply_err(req, EPERM); /* keys cannot be removed, as in VixDiskLib */
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    if (statvfs(FS(req)->root_path, &sv) < 0)
        return (void)fuse_reply_err(req, errno);
    sv.f_namemax = 255;
    fuse_reply_statfs(req, &sv);
}

/* ---- xattrs: user.vdk.<key> mirrors metadata/<key> ---- */

static struct node *xattr_node(fuse_req_t req, fuse_ino_t ino, int *err)
{
    uint32_t slot = slot_of(ino);
    if (node_of(ino) == 0 || (slot != S_DIR && slot != S_FLAT)) {
        *err = ENODATA;
        return NULL;
    }
    return open_node(FS(req), node_of(ino), err);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    int err = 0;
    /* asked before every write when xattrs exist: answer without the disk */
    if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)))
        return (void)fuse_reply_err(req, ENODATA);
    struct node *n = xattr_node(req, ino, &err);
    if (!n)
        return (void)fuse_reply_err(req, err);
    size_t need = 0;
    const char *key = name + strlen(XATTR_PREFIX);
    if (vdk_meta_get(n->disk, key, NULL, 0, &need) != -VDK_E_BUFSMALL)
        return (void)fuse_reply_err(req, ENODATA);
    char *v = malloc(need);
    vdk_meta_get(n->disk, key, v, need, NULL);
    if (size == 0)
        fuse_reply_xattr(req, need - 1);
    else if (size < need - 1)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, v, need - 1);
    free(v);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    int err = 0;
    struct node *n = xattr_node(req, ino, &err);
    if (!n)
        return (void)(err == ENODATA ? fuse_reply_xattr(req, 0) : fuse_reply_err(req, err));
    size_t need = 0;
    vdk_meta_keys(n->disk, NULL, 0, &need);
    char *keys = malloc(need);
    vdk_meta_keys(n->disk, keys, need, NULL);
    size_t total = 0;
    for (char *k = keys; *k; k += strlen(k) + 1)
        total += strlen(XATTR_PREFIX) + strlen(k) + 1;
    char *out = malloc(total + 1), *p = out;
    for (char *k = keys; *k; k += strlen(k) + 1)
        p += sprintf(p, "%s%s", XATTR_PREFIX, k) + 1;
    if (size == 0)
        fuse_reply_xattr(req, total);
    else if (size < total)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, out, total);
    free(keys);
    free(out);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    int err = 0;
    if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)))
        return (void)fuse_reply_err(req, ENOTSUP);
    struct node *n = xattr_node(req, ino, &err);
    if (!n)
        return (void)fuse_reply_err(req, err == ENODATA ? ENOTSUP : err);
    if (!n->writable)
        return (void)fuse_reply_err(req, EROFS);
    char *v = strndup(value, size);
    vdk_error verr = {0};
    pthread_mutex_lock(&n->lock);
    int r = vdk_meta_set(n->disk, name + strlen(XATTR_PREFIX), v, &verr);
    node_load_keys(n);
    pthread_mutex_unlock(&n->lock);
    free(v);
    if (r < 0)
        vdkfs_say("%s", verr.message);
    fuse_reply_err(req, r < 0 ? vdk_errno(r) : 0);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    fuse_reply_err(req, strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) ? ENODATA : EPERM);
}

/* ---- allocation: SEEK_DATA / SEEK_HOLE, punching holes ---- */

struct seek {
    int want_data;
    uint64_t from, found;
};

static int on_seek(void *arg, const vdk_range *r)
{
    struct seek *s = arg;
    int data = r->kind == VDK_RANGE_DATA;
    if (data == s->want_data) {
        s->found = r->offset > s->from ? r->offset : s->from;
        return 1;
    }
    return 0;
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
    struct node *n = disk_node(FS(req), ino);
    uint32_t slot = slot_of(ino);
    uint64_t start, len;
    if (!n || (slot != S_FLAT && slot < S_PART) || window(n, slot, &start, &len) < 0)
        return (void)fuse_reply_err(req, EINVAL);
    if (whence != SEEK_DATA && whence != SEEK_HOLE)
        return (void)fuse_reply_err(req, EINVAL);
    if (off < 0 || (uint64_t)off >= len)
        return (void)fuse_reply_err(req, ENXIO);
    struct seek s = {.want_data = whence == SEEK_DATA, .from = start + (uint64_t)off};
    s.found = UINT64_MAX;
    int r = vdk_map(n->disk, s.from, len - (uint64_t)off, 0, on_seek, &s);
    if (r < 0)
        return (void)fuse_reply_err(req, io_errno(n->disk, r));
    if (s.found == UINT64_MAX) {
        if (whence == SEEK_DATA)
            return (void)fuse_reply_err(req, ENXIO);
        s.found = start + len; /* the virtual hole at the end */
    }
    fuse_reply_lseek(req, (off_t)(s.found - start));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t length,
                         struct fuse_file_info *fi)
{
    struct node *n = disk_node(FS(req), ino);
    uint32_t slot = slot_of(ino);
    uint64_t start, len;
    if (!n || (slot != S_FLAT && slot < S_PART) || window(n, slot, &start, &len) < 0)
        return (void)fuse_reply_err(req, EOPNOTSUPP);
    if (!n->writable)
        return (void)fuse_reply_err(req, EROFS);
    if (off < 0 || length <= 0 || (uint64_t)off + (uint64_t)length > len)
        return (void)fuse_reply_err(req, mode ? EINVAL : EFBIG);
    if (mode == 0)
        return (void)fuse_reply_err(req, 0); /* space is taken on write */
    if (mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) && mode != FALLOC_FL_ZERO_RANGE &&
        mode != (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))
        return (void)fuse_reply_err(req, EOPNOTSUPP);
    /* punched grains of a base disk are freed; elsewhere zeros are written */
    int r = vdk_discard(n->disk, start + (uint64_t)off, (uint64_t)length);
    if (r < 0)
        return (void)fuse_reply_err(req, io_errno(n->disk, r));
    fuse_reply_err(req, 0);
}

/* ---- control ---- */

static void set_status(struct node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_status(struct node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&n->lock);
    vsnprintf(n->ctl_status, sizeof(n->ctl_status), fmt, ap);
    pthread_mutex_unlock(&n->lock);
    va_end(ap);
}

static int ctl_child(struct fs *fs, struct node *n, char *args)
{
    char *name = strtok(args, " \t"), *type = strtok(NULL, " \t");
    if (!name)
        return -EINVAL;
    char full[VDK_NAME_MAX];
    const char *slash = strrchr(n->name, '/');
    size_t l = strlen(name);
    int has_ext = l > 5 && !strcasecmp(name + l - 5, ".vmdk");
    if (strchr(name, '/') || name[0] == '.')
        return -EINVAL;
    snprintf(full, sizeof(full), "%.*s%s%s", slash ? (int)(slash - n->name + 1) : 0, n->name, name,
             has_ext ? "" : ".vmdk");
    vdk_error err = {0};
    int r = vdk_create_child(n->disk, full, type, NULL, &err);
    if (r < 0) {
        set_status(n, "child %s: %s\n", name, err.message);
        return -vdk_errno(r);
    }
    set_status(n, "child %s: done (%s)\n", name, full);
    tree_scan(fs); /* this link now has a child: it turns read-only */
    return 0;
}

/* "40G" -> bytes (powers of 1024); -1 when not a size. */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    uint64_t mul = 1;
    switch (*end) {
    case 'k':
    case 'K':
        mul = 1ull << 10;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1ull << 20;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1ull << 30;
        end++;
        break;
    case 't':
    case 'T':
        mul = 1ull << 40;
        end++;
        break;
    }
    if (end == s || v <= 0 || v * (double)mul > 9.0e18 ||
        (*end && strcmp(end, "B") && strcmp(end, "iB")))
        return -1;
    *out = ((uint64_t)(v * (double)mul + 0.5) + 511) / 512 * 512;
    return 0;
}

/* Close a node's disk so an operation can replace its files; the next
 * request opens it again. */
static void release_disk(struct node *n)
{
    pthread_mutex_lock(&n->lock);
    if (n->disk && vdk_close(n->disk) < 0)
        vdkfs_say("%s: closing failed", n->name);
    n->disk = NULL;
    free(n->parts);
    n->parts = NULL;
    n->n_parts = 0;
    n->parts_loaded = 0;
    pthread_mutex_unlock(&n->lock);
}

/* The partitions a node ever showed (inodes S_PART + 1 .. n): an earlier
 * operation may have dropped its list while the kernel still caches them. */
static unsigned node_parts(struct node *n)
{
    pthread_mutex_lock(&n->lock);
    unsigned k = n->parts_max;
    pthread_mutex_unlock(&n->lock);
    return k;
}

/* An operation changed the bytes node idx reads, and so those of every
 * link below it: drop what the kernel caches of their flat and partitions
 * (read-only links keep their pages across opens). */
static void stale_tree(struct fs *fs, unsigned idx, unsigned depth)
{
    struct node *n = tree_node(fs, idx);
    if (!n || depth > 4096)
        return;
    unsigned k = node_parts(n);
    notify_inval(fs->se, ino_of(idx, S_FLAT));
    for (unsigned i = 1; i <= k; i++)
        notify_inval(fs->se, ino_of(idx, S_PART + i));
    pthread_mutex_lock(&fs->lock);
    unsigned nk = n->n_kids;
    unsigned *kids = nk ? malloc(nk * sizeof(*kids)) : NULL;
    if (kids)
        memcpy(kids, n->kids, nk * sizeof(*kids));
    pthread_mutex_unlock(&fs->lock);
    for (unsigned i = 0; kids && i < nk; i++)
        stale_tree(fs, kids[i], depth + 1);
    free(kids);
}

/* grow, shrink, defragment, attach and commit: the same as vdk's commands,
 * with every request to the mount held back meanwhile. */
static int heavy(struct fs *fs, struct node *n, const char *verb, const char *arg)
{
    vdk_error err = {0};
    uint64_t size = 0, saved = 0;
    char target[VDK_NAME_MAX];
    int r = 0;
    if (!strcmp(verb, "grow") && (!arg || parse_size(arg, &size) < 0)) {
        set_status(n, "grow: '%s' is not a size (try 40G)\n", arg ? arg : "");
        return -EINVAL;
    }
    if (!strcmp(verb, "attach")) {
        const char *slash = strrchr(n->name, '/');
        if (!arg || arg[0] == '/' || strstr(arg, ".."))
            return set_status(n, "attach: give a disk in this folder\n"), -EINVAL;
        snprintf(target, sizeof(target), "%.*s%s", slash ? (int)(slash - n->name + 1) : 0, n->name,
                 arg);
    }
    __atomic_add_fetch(&fs->heavy, 1, __ATOMIC_SEQ_CST);
    pthread_rwlock_wrlock(&fs->ops_lock);
    struct node *p = n->parent >= 0 ? tree_node(fs, (unsigned)n->parent) : NULL;
    int commit = !strcmp(verb, "commit");
    /* commit changes the parent's bytes, attach this disk's */
    struct node *changed = commit ? p : !strcmp(verb, "attach") ? n : NULL;
    release_disk(n);
    if (p && commit)
        release_disk(p);
    if (!strcmp(verb, "grow"))
        r = vdk_grow(fs->store, n->name, size, &err);
    else if (!strcmp(verb, "shrink"))
        r = vdk_shrink(fs->store, n->name, NULL, NULL, &saved, &err);
    else if (!strcmp(verb, "defragment"))
        r = vdk_defragment(fs->store, n->name, NULL, NULL, &err);
    else if (!strcmp(verb, "attach"))
        r = vdk_attach(fs->store, n->name, target, 0, &err);
    else
        r = vdk_commit(fs->store, n->name, 0, NULL, NULL, &err);
    pthread_rwlock_unlock(&fs->ops_lock);
    __atomic_sub_fetch(&fs->heavy, 1, __ATOMIC_SEQ_CST);
    if (r < 0)
        set_status(n, "%s: %s\n", verb, err.message);
    else
        set_status(n, "%s: done\n", verb);
    tree_scan(fs); /* sizes, parents and children may have changed */
    /* the command returns once the kernel dropped the old bytes (and the
     * committed child's entry); bounded, see notify_wait */
    if (changed)
        stale_tree(fs, changed->idx, 0);
    if (p && commit && r >= 0)
        notify_inval_entry(fs->se, ino_of(p->idx, S_CHILDREN), n->dname);
    if (changed && notify_wait(5000) < 0)
        vdkfs_say("%s: the kernel may still show cached bytes from before %s", n->name, verb);
    return r < 0 ? -vdk_errno(r) : 0;
}

static int ctl_command(struct fs *fs, struct node *n, const char *cmd)
{
    char line[1100];
    snprintf(line, sizeof(line), "%s", cmd);
    line[strcspn(line, "\r\n")] = '\0';
    char *verb = strtok(line, " \t"), *rest = strtok(NULL, "");
    if (!verb)
        return -EINVAL;
    if (fs->ro || fs->snapshot)
        return -EROFS;
    if (rest)
        rest += strspn(rest, " \t");
    if (!strcmp(verb, "child"))
        return ctl_child(fs, n, rest ? rest : (char[]){""});
    if (!strcmp(verb, "grow") || !strcmp(verb, "shrink") || !strcmp(verb, "defragment") ||
        !strcmp(verb, "attach") || !strcmp(verb, "commit")) {
        /* flat's size may change: its attributes are never cached, so a
         * grow shows at once; changed bytes are dropped from the kernel's
         * cache by heavy() (through the notifier thread, notify.c) */
        return heavy(fs, n, verb, rest);
    }
    set_status(n, "%s: unknown command (child, grow, shrink, defragment, attach, commit)\n", verb);
    return -EINVAL;
}

static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
                     struct fuse_file_info *fi, unsigned flags, const void *in_buf, size_t in_bufsz,
                     size_t out_bufsz)
{
    struct fs *fs = FS(req);
    struct node *n = tree_node(fs, node_of(ino));
    if (slot_of(ino) != S_FLAT || !n)
        return (void)fuse_reply_err(req, ENOTTY);
    if (fs->ro || fs->snapshot)
        return (void)fuse_reply_err(req, EROFS);
    char buf[64];
    int r;
    switch (cmd) {
    case VDK_IOC_GROW:
        if (in_bufsz < sizeof(uint64_t))
            return (void)fuse_reply_err(req, EINVAL);
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)*(const uint64_t *)in_buf);
        r = heavy(fs, n, "grow", buf);
        break;
    case VDK_IOC_SHRINK:
        r = heavy(fs, n, "shrink", NULL);
        break;
    case VDK_IOC_DEFRAGMENT:
        r = heavy(fs, n, "defragment", NULL);
        break;
    case VDK_IOC_ATTACH: {
        if (in_bufsz < sizeof(struct vdk_ioc_path))
            return (void)fuse_reply_err(req, EINVAL);
        char path[sizeof(((struct vdk_ioc_path *)0)->path) + 1];
        snprintf(path, sizeof(path), "%s", ((const struct vdk_ioc_path *)in_buf)->path);
        r = heavy(fs, n, "attach", path);
        break;
    }
    default:
        return (void)fuse_reply_err(req, ENOTTY);
    }
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_ioctl(req, 0, NULL, 0);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    conn->max_background = 64;
    conn->max_read = 1u << 19; /* see main.c: spliced replies fit a pipe */
    conn->max_write = 1u << 20;
    /* splice replies: data runs of local files reach readers with one copy */
    if (!uring_wanted())
        conn->want |= conn->capable & FUSE_CAP_SPLICE_WRITE;
    /* but not requests: a write arrives through a pipe and a second read
     * for nothing, since writes are handled from memory anyway */
    conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ;
    conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
    /* flat reports its size with no attribute caching (a grow shows at
     * once), and with auto_inval_data the kernel then asks for the
     * attributes before every read: two requests per read (random 4 KiB
     * reads: 3.0 context switches per read, 1.5 without).  Its only use,
     * dropping cached pages when size or mtime change, does not apply: the
     * mtime is fixed and a grow leaves the cached range as it was. */
    conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
}

/* Every request that may touch a disk holds ops_lock shared; ctl writes,
 * ioctls and size changes take it exclusively inside heavy(). */
#define SHARED(name, params, args)                                                                 \
    static void locked_##name params                                                               \
    {                                                                                              \
        struct fs *fs_ = FS(req); /* req is gone once answered */                                  \
        pthread_rwlock_rdlock(&fs_->ops_lock);                                                     \
        op_##name args;                                                                            \
        pthread_rwlock_unlock(&fs_->ops_lock);                                                     \
    }

SHARED(lookup, (fuse_req_t req, fuse_ino_t p, const char *n), (req, p, n))
SHARED(getattr, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *f), (req, i, f))
SHARED(readdir, (fuse_req_t req, fuse_ino_t i, size_t s, off_t o, struct fuse_file_info *f),
       (req, i, s, o, f))
SHARED(open, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *f), (req, i, f))
SHARED(read, (fuse_req_t req, fuse_ino_t i, size_t s, off_t o, struct fuse_file_info *f),
       (req, i, s, o, f))
SHARED(flush, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *f), (req, i, f))
SHARED(fsync, (fuse_req_t req, fuse_ino_t i, int d, struct fuse_file_info *f), (req, i, d, f))
SHARED(release, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *f), (req, i, f))
SHARED(create, (fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, struct fuse_file_info *f),
       (req, p, n, m, f))
SHARED(getxattr, (fuse_req_t req, fuse_ino_t i, const char *n, size_t s), (req, i, n, s))
SHARED(listxattr, (fuse_req_t req, fuse_ino_t i, size_t s), (req, i, s))
SHARED(setxattr, (fuse_req_t req, fuse_ino_t i, const char *n, const char *v, size_t s, int f),
       (req, i, n, v, s, f))
SHARED(lseek, (fuse_req_t req, fuse_ino_t i, off_t o, int w, struct fuse_file_info *f),
       (req, i, o, w, f))
SHARED(fallocate, (fuse_req_t req, fuse_ino_t i, int m, off_t o, off_t l, struct fuse_file_info *f),
       (req, i, m, o, l, f))

/* ctl writes and size changes run their operation without the shared lock */
static void locked_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                         struct fuse_file_info *fi)
{
    if (slot_of(ino) == S_CTL)
        return op_write(req, ino, buf, size, off, fi);
    struct fs *fs = FS(req);
    pthread_rwlock_rdlock(&fs->ops_lock);
    op_write(req, ino, buf, size, off, fi);
    pthread_rwlock_unlock(&fs->ops_lock);
}

static void locked_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *st, int to_set,
                           struct fuse_file_info *fi)
{
    if (slot_of(ino) == S_FLAT && (to_set & FUSE_SET_ATTR_SIZE))
        return op_setattr(req, ino, st, to_set, fi);
    struct fs *fs = FS(req);
    pthread_rwlock_rdlock(&fs->ops_lock);
    op_setattr(req, ino, st, to_set, fi);
    pthread_rwlock_unlock(&fs->ops_lock);
}

const struct fuse_lowlevel_ops vdkfs_ops = {
    .init = op_init,
    .lookup = locked_lookup,
    .getattr = locked_getattr,
    .setattr = locked_setattr,
    .readdir = locked_readdir,
    .open = locked_open,
    .read = locked_read,
    .write = locked_write,
    .flush = locked_flush,
    .fsync = locked_fsync,
    .release = locked_release,
    .create = locked_create,
    .unlink = op_unlink,
    .statfs = op_statfs,
    .getxattr = locked_getxattr,
    .listxattr = locked_listxattr,
    .setxattr = locked_setxattr,
    .removexattr = op_removexattr,
    .lseek = locked_lseek,
    .fallocate = locked_fallocate,
    .ioctl = op_ioctl,
};
