/* vdkfs: mount VMware virtual disks as a tree of files. */
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "notify.h"
#include "uring.h"
#include "vdkfs.h"

static const char usage[] =
    "Usage: vdkfs [-o OPTIONS] SOURCE MOUNTPOINT\n"
    "\n"
    "Mount VMware virtual disks (VMDK) as files.  SOURCE is one disk (any link\n"
    "of a snapshot chain: its whole tree is shown) or a folder (a datastore:\n"
    "every disk in it and in its subfolders, grouped into trees by parent).\n"
    "\n"
    "MOUNTPOINT/<disk>/         one per base disk (no parent)\n"
    "    flat                   the raw disk as of this link; writable on a leaf\n"
    "    info                   type, capacity, adapter, CIDs, chain, extents\n"
    "    metadata/<key>         ddb keys: cat reads, echo writes, new files add keys\n"
    "    children/<child>/      redo logs made from this link, same layout\n"
    "    partitions/pN          MBR/GPT partitions of flat (mount -o loop, fuse2fs)\n"
    "    ctl                    write \"child NAME [TYPE]\" to add a redo log\n"
    "xattrs user.vdk.<key> on flat and on the disk folder mirror metadata/.\n"
    "flat honours SEEK_DATA/SEEK_HOLE (cp --sparse, qemu-img), fsync and\n"
    "fallocate --punch-hole / --zero-range.\n"
    "\n"
    "Links that have children, and everything under -o ro, are read-only.\n"
    "\n"
    "Options:\n"
    "    -o ro                  mount read-only\n"
    "    -o snapshot=NAME       only the chain ending at link NAME, read-only\n"
    "                           (file-level restore from a snapshot point)\n"
    "    -f                     stay in the foreground\n"
    "    -d                     debug output (implies -f)\n"
    "    -s                     serve one request at a time\n"
    "    -o threads=N           at most N worker threads (default: one per CPU)\n"
    "    -o uring=on            serve requests over io_uring (Linux 6.14+, with\n"
    "                           fuse.enable_uring=1): random small reads run\n"
    "                           faster, large reads slower (two copies where\n"
    "                           /dev/fuse splices one); local disks only\n"
    "    -o allow_other         let other users in (needs user_allow_other)\n"
    "\n"
    "Remote disks (SOURCE is '[datastore] folder/disk.vmdk' or '[datastore] folder/'):\n"
    "    -o server=URL          ESXi host or vCenter (host[:port] or https://...)\n"
    "    -o user=NAME           user to log in as\n"
    "    -o password_file=FILE  its first line is the password (else $VDK_PASSWORD;\n"
    "                           never on the command line)\n"
    "    -o thumbprint=HEX      the server certificate's SHA-1 (AA:BB:..) or SHA-256;\n"
    "                           without it the system CAs must trust the server\n"
    "    -o cafile=FILE         also trust the CAs in this PEM file\n"
    "    -o datacenter=DC       the datacenter (default: the only one)\n"
    "    -o config=FILE         InitEx-style config (timeouts, log level, cache)\n"
    "    -o vm=VM               SOURCE is then a disk of VM (device key, index,\n"
    "                           label or file name); with -o snapshot=S, as of\n"
    "                           the VM's snapshot S\n"
    "    -o redo=DIR            writes go to a local redo log in DIR whose parent\n"
    "                           is the remote disk (without it: read-only)\n"
    "    -o transports=LIST     accepted modes, ':'-separated; must include https\n"
    "    -h, --help             this text\n"
    "    -V, --version          version\n"
    "\n"
    "Unmount with 'fusermount3 -u MOUNTPOINT'.  SIGTERM and SIGINT unmount too;\n"
    "either way every disk is flushed and its uncleanShutdown mark cleared.\n";

struct opts {
    int threads;
    char *snapshot;
    char *source;
    int ro;
    char *uring;
    struct remote_mount remote;
};

enum { KEY_RO, KEY_HELP, KEY_VERSION };

static const struct fuse_opt spec[] = {
    {"snapshot=%s", offsetof(struct opts, snapshot), 0},
    {"threads=%d", offsetof(struct opts, threads), 0},
    {"uring=%s", offsetof(struct opts, uring), 0},
    {"server=%s", offsetof(struct opts, remote.server), 0},
    {"user=%s", offsetof(struct opts, remote.user), 0},
    {"password_file=%s", offsetof(struct opts, remote.password_file), 0},
    {"thumbprint=%s", offsetof(struct opts, remote.thumbprint), 0},
    {"cafile=%s", offsetof(struct opts, remote.cafile), 0},
    {"datacenter=%s", offsetof(struct opts, remote.datacenter), 0},
    {"config=%s", offsetof(struct opts, remote.config), 0},
    {"vm=%s", offsetof(struct opts, remote.vm), 0},
    {"redo=%s", offsetof(struct opts, remote.redo), 0},
    {"transports=%s", offsetof(struct opts, remote.transports), 0},
    FUSE_OPT_KEY("ro", KEY_RO),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_END,
};

static int on_opt(void *data, const char *arg, int key, struct fuse_args *out)
{
    struct opts *o = data;
    switch (key) {
    case KEY_RO:
        o->ro = 1;
        return 1; /* the kernel mounts it read-only too */
    case KEY_HELP:
        fputs(usage, stdout);
        exit(0);
    case KEY_VERSION:
        printf("vdkfs %s (libfuse %s)\n", VDK_VERSION_STRING, fuse_pkgversion());
        exit(0);
    case FUSE_OPT_KEY_NONOPT:
        if (!o->source) {
            o->source = strdup(arg);
            return 0;
        }
        return 1;
    }
    return 1;
}

/* Split SOURCE into the store folder and, for one disk, its name. */
static int open_source(struct fs *fs, const char *source)
{
    struct stat st;
    if (stat(source, &st) < 0) {
        fprintf(stderr, "vdkfs: %s: %s\n", source, strerror(errno));
        return -1;
    }
    char real[PATH_MAX];
    if (!realpath(source, real)) {
        fprintf(stderr, "vdkfs: %s: %s\n", source, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        char *slash = strrchr(real, '/');
        fs->only = strdup(slash + 1);
        if (slash == real)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
    snprintf(fs->root_path, sizeof(fs->root_path), "%s", real);
    int r = vdk_store_local_new(fs->root_path, &fs->store);
    if (r < 0) {
        fprintf(stderr, "vdkfs: %s: %s\n", fs->root_path, strerror(-r));
        return -1;
    }
    return 0;
}

/* A remote source starts threads and connections (HTTP pool, read-ahead)
 * while it is opened, and threads do not survive fuse_daemonize's fork.
 * So the daemon forks first: the parent waits until the child has mounted
 * (or failed, having said why on the still shared stderr) and exits with
 * its status. */
static int fork_early(void)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        char c;
        if (read(p[0], &c, 1) == 1)
            _exit(0);
        int st = 0;
        waitpid(pid, &st, 0);
        _exit(WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : 1);
    }
    close(p[0]);
    return p[1];
}

/* The mount is up: detach from the terminal and release the parent. */
static void daemon_ready(int fd)
{
    setsid();
    if (chdir("/") < 0)
        return;
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
        if (nul > 2)
            close(nul);
    }
    if (write(fd, "1", 1) < 0)
        return;
    close(fd);
}

/* The disk named on the command line (or by -o snapshot) must be there. */
static int check_named(struct fs *fs, const char *what, const char *name)
{
    for (unsigned i = 1; i < fs->n_nodes; i++) {
        struct node *n = fs->nodes[i];
        const char *b = strrchr(n->name, '/');
        b = b ? b + 1 : n->name;
        if (!n->gone && (!strcmp(n->name, name) || !strcmp(b, name) || !strcmp(n->dname, name))) {
            /* the disk and the links below it: a damaged parent hides the
             * named disk (it lives under the parent's children/) */
            for (struct node *l = n; l && !strcmp(what, "disk");
                 l = l->parent >= 0 ? fs->nodes[l->parent] : NULL)
                if (l->error)
                    vdkfs_say("warning: %s", l->error);
            return 0;
        }
    }
    vdkfs_say("%s %s not found (or it is an extent of another disk)", what, name);
    return -1;
}

int main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct opts o = {0};
    if (fuse_opt_parse(&args, &o, spec, on_opt) < 0)
        return 2;
    struct fuse_cmdline_opts cl;
    if (fuse_parse_cmdline(&args, &cl) != 0)
        return 2;
    if (!o.source || !cl.mountpoint) {
        fputs(usage, stderr);
        return 2;
    }
    if (o.uring && strcmp(o.uring, "on") && strcmp(o.uring, "off")) {
        fprintf(stderr, "vdkfs: -o uring=%s: expected 'on' or 'off'\n", o.uring);
        return 2;
    }
    int uring = o.uring && !strcmp(o.uring, "on");
    static struct fs fs;
    pthread_mutex_init(&fs.lock, NULL);
    pthread_rwlock_init(&fs.ops_lock, NULL);
    fs.ro = o.ro;
    fs.debug = cl.debug;
    int remote = o.remote.server || o.remote.config || o.source[0] == '[';
    int ready_fd = remote && !cl.foreground ? fork_early() : -1;
    if (remote && o.remote.vm) {
        /* snapshot= names the VM's snapshot, not a link of the chain. */
        o.remote.vm_snapshot = o.snapshot;
        o.snapshot = NULL;
    }
    if (remote ? remote_source(&fs, &o.remote, o.source) < 0 : open_source(&fs, o.source) < 0) {
        remote_close(&o.remote);
        return 1;
    }
    if (uring && remote) {
        /* remote reads wait on the network: one thread per CPU queue would
         * serialise them */
        vdkfs_say("-o uring=on: remote disks are served through /dev/fuse");
        uring = 0;
    }
    if (remote && fs.ro && !o.ro)
        fuse_opt_add_arg(&args, "-oro");
    if (o.snapshot) {
        size_t l = strlen(o.snapshot);
        if (l <= 5 || strcmp(o.snapshot + l - 5, ".vmdk"))
            fs.snapshot = o.snapshot;
        else
            fs.snapshot = strndup(o.snapshot, l - 5);
    }
    tree_scan(&fs);
    if ((fs.only && check_named(&fs, "disk", fs.only) < 0) ||
        (o.snapshot && check_named(&fs, "snapshot", fs.snapshot) < 0)) {
        remote_close(&o.remote); /* logs out: no session left on the server */
        return 1;
    }
    fuse_opt_add_arg(&args, "-odefault_permissions");
    /* 512 KiB reads: a spliced reply (header and data) must fit in one pipe,
     * and pipes stop at 1 MiB for ordinary users; a 1 MiB read fell back to
     * copying through a fresh buffer and ran at half the speed */
    fuse_opt_add_arg(&args, "-omax_read=524288");
    char fsname[PATH_MAX + 32];
    snprintf(fsname, sizeof(fsname), "-ofsname=vdkfs:%s,subtype=vdkfs", o.source);
    fuse_opt_add_arg(&args, fsname);

    struct fuse_session *se = fuse_session_new(&args, &vdkfs_ops, sizeof(vdkfs_ops), &fs);
    if (!se) {
        remote_close(&o.remote);
        return 1;
    }
    fs.se = se;
    int rc = -1;
    if (fuse_set_signal_handlers(se) == 0) {
        int mounted = fuse_session_mount(se, cl.mountpoint) == 0;
        if (mounted && uring_attach(se, &fs, uring) < 0) {
            vdkfs_say("cannot set up the request transport");
            fuse_session_unmount(se);
            mounted = 0;
        }
        if (mounted) {
            if (ready_fd >= 0)
                daemon_ready(ready_fd);
            else
                fuse_daemonize(cl.foreground);
            if (cl.singlethread) {
                rc = fuse_session_loop(se);
            } else {
                struct fuse_loop_config *cfg = fuse_loop_cfg_create();
                /* More workers than CPUs only adds wake-ups (measured: 2 CPUs
                 * serve 4 KiB random reads fastest with 2 threads). */
                long cpus = sysconf(_SC_NPROCESSORS_ONLN);
                int threads = o.threads > 0 ? o.threads : cpus < 2 ? 2 : cpus > 16 ? 16 : (int)cpus;
                fuse_loop_cfg_set_clone_fd(cfg, 1);
                fuse_loop_cfg_set_max_threads(cfg, (unsigned)threads);
                /* keep idle threads: creating and destroying them per burst
                 * costs more than it saves */
                fuse_loop_cfg_set_idle_threads(cfg, (unsigned)threads);
                rc = fuse_session_loop_mt(se, cfg);
                fuse_loop_cfg_destroy(cfg);
            }
            notify_quiesce();
            fuse_session_unmount(se);
            uring_stop();
        }
        fuse_remove_signal_handlers(se);
    }
    notify_stop();
    fuse_session_destroy(se);
    if (tree_close(&fs) < 0)
        rc = -1;
    fs.store->ops->destroy(fs.store);
    remote_close(&o.remote);
    fuse_opt_free_args(&args);
    free(cl.mountpoint);
    if (fs.snapshot != o.snapshot)
        free((char *)fs.snapshot);
    free(o.snapshot);
    free(o.uring);
    free(o.source);
    free((char *)fs.only);
    /* a signal (SIGTERM, SIGINT, SIGHUP) is how daemons are told to stop */
    return rc < 0 ? 1 : 0;
}
