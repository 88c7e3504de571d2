/* The local directory store: names resolved beneath one root by the kernel. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vdk_store.h"

struct local_store {
    vdk_store base;
    int rootfd;
    char root[PATH_MAX];
};

struct local_file {
    vdk_file base;
    int fd;
    uint64_t unkicked; /* bytes written since writeback was last started */
};

/* Start writeback every 32 MiB written: the flush that ends a clone,
 * shrink or long write then finds little left to do, and the disk writes
 * while the next megabytes are read, instead of after. */
#define KICK_BYTES (32ull << 20)

static int valid_name(const char *name)
{
    return name && name[0] != '/' && strlen(name) < PATH_MAX;
}

#define WALK_DEPTH 256 /* folders deep */
#define WALK_LINKS 40  /* symlinks followed, as the kernel allows */

/* Replace the walk's remaining path with symlink target + what followed. */
static int splice_link(char *path, size_t size, const char *target, const char *rest)
{
    if (target[0] == '/')
        return -EXDEV; /* absolute: RESOLVE_BENEATH refuses it too */
    char tmp[PATH_MAX * 2];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s", target, rest) >= sizeof(tmp) ||
        strlen(tmp) >= size)
        return -ENAMETOOLONG;
    strcpy(path, tmp);
    return 0;
}

/* What openat2(RESOLVE_BENEATH) does, for systems without it (kernels
 * before 5.6, seccomp filters that refuse it, valgrind before 3.20): walk
 * the name one component at a time from the root, holding each folder open
 * (O_PATH | O_NOFOLLOW, so nothing can be swapped under the walk), follow
 * symlinks by hand and refuse any step that leaves the root. */
static int walk_beneath(struct local_store *s, const char *name, int flags, mode_t mode)
{
    char path[PATH_MAX * 2], target[PATH_MAX];
    int stack[WALK_DEPTH], depth = 0, links = 0, r = 0, fd = -1;
    stack[0] = s->rootfd;
    snprintf(path, sizeof(path), "%s", name);
    char *p = path;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p) { /* the name ends at a folder */
            fd = openat(stack[depth], ".", flags | O_CLOEXEC, mode);
            r = fd < 0 ? -errno : 0;
            break;
        }
        char comp[NAME_MAX + 1];
        size_t n = strcspn(p, "/");
        if (n > NAME_MAX) {
            r = -ENAMETOOLONG;
            break;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        p += n;
        int last = p[strspn(p, "/")] == '\0';
        if (!strcmp(comp, "."))
            continue;
        if (!strcmp(comp, "..")) {
            if (depth == 0) {
                r = -EXDEV;
                break;
            }
            close(stack[depth--]);
            continue;
        }
        int is_link = 0;
        if (last) {
            fd = openat(stack[depth], comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
            struct stat sb;
            if (fd < 0 && errno == ELOOP)
                is_link = 1;
            else if (fd < 0)
                r = -errno;
            else if ((flags & O_PATH) && fstat(fd, &sb) == 0 && S_ISLNK(sb.st_mode)) {
                close(fd); /* O_PATH | O_NOFOLLOW opened the link itself */
                fd = -1;
                is_link = 1;
            }
            if (!is_link)
                break;
        } else {
            int d = openat(stack[depth], comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            struct stat sb;
            if (d < 0 || fstat(d, &sb) < 0) {
                r = -errno;
                if (d >= 0)
                    close(d);
                break;
            }
            if (S_ISLNK(sb.st_mode)) {
                close(d);
                is_link = 1;
            } else if (!S_ISDIR(sb.st_mode)) {
                close(d);
                r = -ENOTDIR;
                break;
            } else if (depth + 1 >= WALK_DEPTH) {
                close(d);
                r = -ELOOP;
                break;
            } else {
                stack[++depth] = d;
                continue;
            }
        }
        /* a symlink: go on with its target, relative to this folder */
        ssize_t k = readlinkat(stack[depth], comp, target, sizeof(target) - 1);
        if (k < 0) {
            r = -errno;
            break;
        }
        target[k] = '\0';
        if (++links > WALK_LINKS) {
            r = -ELOOP;
            break;
        }
        char rest[PATH_MAX * 2];
        snprintf(rest, sizeof(rest), "%s", p);
        if ((r = splice_link(path, sizeof(path), target, rest)) < 0)
            break;
        p = path;
    }
    while (depth > 0)
        close(stack[depth--]);
    return r < 0 ? r : fd;
}

static int no_openat2; /* set once openat2 said ENOSYS */

/* openat2 confines resolution (symlinks included) beneath the root. */
static int open_beneath(struct local_store *s, const char *name, int flags, mode_t mode)
{
    if (!valid_name(name))
        return -EXDEV;
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    const char *n = *name ? name : ".";
    if (__atomic_load_n(&no_openat2, __ATOMIC_RELAXED))
        return walk_beneath(s, n, flags, mode);
    long fd = syscall(SYS_openat2, s->rootfd, n, &how, sizeof(how));
    if (fd < 0 && errno == ENOSYS) {
        __atomic_store_n(&no_openat2, 1, __ATOMIC_RELAXED);
        return walk_beneath(s, n, flags, mode);
    }
    if (fd < 0)
        return -errno;
    return (int)fd;
}

static int64_t lf_pread(vdk_file *f, void *buf, size_t len, uint64_t off)
{
    int fd = ((struct local_file *)f)->fd;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (int64_t)done;
}

static int64_t lf_pwrite(vdk_file *f, const void *buf, size_t len, uint64_t off)
{
    int fd = ((struct local_file *)f)->fd;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        done += (size_t)n;
    }
    struct local_file *lf = (struct local_file *)f;
    if (__atomic_add_fetch(&lf->unkicked, len, __ATOMIC_RELAXED) >= KICK_BYTES &&
        __atomic_exchange_n(&lf->unkicked, 0, __ATOMIC_RELAXED) >= KICK_BYTES)
        sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* a hint: errors come at flush */
    return (int64_t)done;
}

static int lf_flush(vdk_file *f)
{
    return fdatasync(((struct local_file *)f)->fd) < 0 ? -errno : 0;
}

static int lf_size(vdk_file *f, uint64_t *out)
{
    struct stat st;
    if (fstat(((struct local_file *)f)->fd, &st) < 0)
        return -errno;
    *out = (uint64_t)st.st_size;
    return 0;
}

static int lf_truncate(vdk_file *f, uint64_t size)
{
    return ftruncate(((struct local_file *)f)->fd, (off_t)size) < 0 ? -errno : 0;
}

static void lf_close(vdk_file *f)
{
    close(((struct local_file *)f)->fd);
    free(f);
}

static int lf_fd(vdk_file *f)
{
    return ((struct local_file *)f)->fd;
}

static const struct vdk_file_ops local_file_ops = {
    .version = 2,
    .fd = lf_fd,
    .pread = lf_pread,
    .pwrite = lf_pwrite,
    .flush = lf_flush,
    .size = lf_size,
    .truncate = lf_truncate,
    .close = lf_close,
};

static int ls_open(vdk_store *st, const char *name, unsigned flags, vdk_file **out)
{
    int oflags = (flags & VDK_STORE_WRITE) ? O_RDWR : O_RDONLY;
    if (flags & VDK_STORE_CREATE)
        oflags |= O_CREAT;
    if (flags & VDK_STORE_EXCL)
        oflags |= O_EXCL;
    int fd = open_beneath((struct local_store *)st, name, oflags, 0644);
    if (fd < 0)
        return fd;
    struct stat sb;
    if (fstat(fd, &sb) < 0 || S_ISDIR(sb.st_mode)) {
        close(fd);
        return -EISDIR;
    }
    struct local_file *f = calloc(1, sizeof(*f));
    if (!f) {
        close(fd);
        return -ENOMEM;
    }
    f->base.ops = &local_file_ops;
    f->fd = fd;
    *out = &f->base;
    return 0;
}

static int ls_stat(vdk_store *st, const char *name, struct vdk_stat *out)
{
    int fd = open_beneath((struct local_store *)st, name, O_PATH, 0);
    if (fd < 0)
        return fd;
    struct stat sb;
    int r = fstat(fd, &sb) < 0 ? -errno : 0;
    close(fd);
    if (r == 0) {
        out->size = (uint64_t)sb.st_size;
        out->is_dir = S_ISDIR(sb.st_mode);
        out->mtime = (int64_t)sb.st_mtime;
    }
    return r;
}

static int ls_list(vdk_store *st, const char *dir, vdk_list_cb cb, void *arg)
{
    int fd = open_beneath((struct local_store *)st, dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = -errno;
        close(fd);
        return e;
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct stat sb;
        struct vdk_stat vs = {.is_dir = de->d_type == DT_DIR};
        /* Stat regular files only: a directory may be a mount point (even
         * vdkfs's own, inside the folder it serves), and stat'ing it would
         * wait on that filesystem. */
        if ((de->d_type == DT_REG || de->d_type == DT_UNKNOWN) &&
            fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT) == 0) {
            vs.size = (uint64_t)sb.st_size;
            vs.is_dir = S_ISDIR(sb.st_mode);
            vs.mtime = (int64_t)sb.st_mtime;
        }
        r = cb(arg, de->d_name, &vs);
    }
    closedir(d);
    return r;
}

/* Open the directory holding 'name' beneath the root; *base gets the last
 * component.  Used so rename/unlink cannot be redirected by symlinks. */
static int parent_dir(struct local_store *s, const char *name, const char **base)
{
    if (!valid_name(name) || !*name)
        return -EXDEV;
    const char *slash = strrchr(name, '/');
    char dir[PATH_MAX];
    if (slash) {
        memcpy(dir, name, (size_t)(slash - name));
        dir[slash - name] = '\0';
        *base = slash + 1;
    } else {
        strcpy(dir, ".");
        *base = name;
    }
    if (!**base || !strcmp(*base, ".") || !strcmp(*base, ".."))
        return -EXDEV;
    return open_beneath(s, dir, O_PATH | O_DIRECTORY, 0);
}

static int ls_rename(vdk_store *st, const char *from, const char *to)
{
    struct local_store *s = (struct local_store *)st;
    const char *b1, *b2;
    int d1 = parent_dir(s, from, &b1);
    if (d1 < 0)
        return d1;
    int d2 = parent_dir(s, to, &b2);
    if (d2 < 0) {
        close(d1);
        return d2;
    }
    int r = renameat(d1, b1, d2, b2) < 0 ? -errno : 0;
    close(d1);
    close(d2);
    return r;
}

static int ls_unlink(vdk_store *st, const char *name)
{
    const char *b;
    int d = parent_dir((struct local_store *)st, name, &b);
    if (d < 0)
        return d;
    int r = unlinkat(d, b, 0) < 0 ? -errno : 0;
    close(d);
    return r;
}

static int ls_sync_dir(vdk_store *st, const char *dir)
{
    int fd = open_beneath((struct local_store *)st, dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static int ls_relativize(vdk_store *st, const char *abs, char *out, size_t outlen)
{
    struct local_store *s = (struct local_store *)st;
    size_t n = strlen(s->root);
    if (abs[0] != '/' || strncmp(abs, s->root, n) != 0)
        return -EXDEV;
    const char *rest = abs + n;
    if (n > 1) {
        if (*rest != '/')
            return -EXDEV;
        rest++;
    }
    if (strlen(rest) + 1 > outlen)
        return -ENAMETOOLONG;
    strcpy(out, rest);
    return 0;
}

static void ls_destroy(vdk_store *st)
{
    struct local_store *s = (struct local_store *)st;
    close(s->rootfd);
    free(s);
}

static const struct vdk_store_ops local_store_ops = {
    .version = 1,
    .open = ls_open,
    .stat = ls_stat,
    .list = ls_list,
    .rename = ls_rename,
    .unlink = ls_unlink,
    .sync_dir = ls_sync_dir,
    .relativize = ls_relativize,
    .destroy = ls_destroy,
};

int vdk_store_local_new(const char *root, vdk_store **out)
{
    struct local_store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    if (!realpath(root, s->root)) {
        int e = -errno;
        free(s);
        return e;
    }
    s->rootfd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s->rootfd < 0) {
        int e = -errno;
        free(s);
        return e;
    }
    s->base.ops = &local_store_ops;
    *out = &s->base;
    return 0;
}
