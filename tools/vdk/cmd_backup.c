/* vdk's backup workflow on vSphere: changed --change-id, upload, backup,
 * restore. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "vdk_remote.h"

/* DISK: see vdk_vm_disk_find. */
static int pick_disk(vdk_conn *c, const char *vm, const char *snap, const char *spec,
                     vdk_vm_disk *out)
{
    vdk_error err = {0};
    if (vdk_vm_disk_find(c, vm, snap, spec, out, &err) < 0)
        return cli_error("%s", err.message), -1;
    return 0;
}

/* VM and optional snapshot spec to morefs. */
static int pick_vm(vdk_conn *c, const char *vmspec, const char *snapspec, char *vm, char *snap)
{
    vdk_error err = {0};
    if (vdk_vm_find(c, vmspec, vm, 128, &err) < 0 ||
        (snapspec && vdk_snapshot_find(c, vm, snapspec, snap, 128, &err) < 0))
        return cli_error("%s", err.message), -1;
    return 0;
}

/* vdk changed --change-id ------------------------------------------------- */

static const char changed_help[] =
    "Usage: vdk changed --server URL --user NAME [OPTIONS] --change-id ID VM DISK\n\n"
    "Changed block tracking (QueryChangedDiskAreas): the byte ranges of DISK that\n"
    "changed since the changeId ID, as of SNAPSHOT (or now).  ID '*' asks for every\n"
    "allocated area (what a first full backup reads).  One 'OFFSET LENGTH' line per\n"
    "range, or --json.  DISK is a device key (2000), an index (0), a label ('Hard\n"
    "disk 1') or the backing file's name.\n\n"
    "Options:\n"
    "  --change-id ID  the changeId a previous backup recorded, or '*'\n"
    "  --snapshot S    the snapshot (name or moref) to compare, as a backup does\n"
    "  --json          machine-readable output\n" CLI_REMOTE_HELP "  -h, --help      this text\n";

struct changed_out {
    int json, first;
    uint64_t total;
};

static int changed_range(void *arg, const vdk_range *rg)
{
    struct changed_out *o = arg;
    if (o->json)
        printf("%s{\"offset\": %llu, \"length\": %llu}", o->first ? "" : ", ",
               (unsigned long long)rg->offset, (unsigned long long)rg->length);
    else
        printf("%llu %llu\n", (unsigned long long)rg->offset, (unsigned long long)rg->length);
    o->first = 0;
    o->total += rg->length;
    return 0;
}

int cmd_changed_remote(int argc, char **argv)
{
    static const struct option own[] = {{"change-id", required_argument, NULL, 'c'},
                                        {"snapshot", required_argument, NULL, 's'},
                                        {"json", no_argument, NULL, 'j'}};
    struct option *all = cli_with_remote_opts(own, 3);
    struct remote_opts r = {0};
    const char *id = NULL, *snapspec = NULL;
    struct changed_out o = {.first = 1};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hq", all, NULL)) != -1) {
        if (cli_remote_option(c, &r))
            continue;
        if (c == 'c')
            id = optarg;
        else if (c == 's')
            snapspec = optarg;
        else if (c == 'j')
            o.json = 1;
        else if (c == 'h')
            return fputs(changed_help, stdout), 0;
        else if (c != 'q')
            return fputs(changed_help, stderr), 2;
    }
    if (optind != argc - 2 || !id)
        return cli_error("expects --change-id ID VM DISK (see --help)"), 2;
    vdk_conn *conn = cli_connect(&r);
    if (!conn)
        return 1;
    char vm[128], snap[128];
    vdk_vm_disk disk;
    int rc = 1;
    if (pick_vm(conn, argv[optind], snapspec, vm, snap) == 0 &&
        pick_disk(conn, vm, snapspec ? snap : NULL, argv[optind + 1], &disk) == 0) {
        vdk_error err = {0};
        if (o.json)
            printf("[");
        int e = vdk_changed_areas(conn, vm, snapspec ? snap : NULL, disk.key, disk.capacity, id,
                                  changed_range, &o, &err);
        if (o.json)
            printf("]\n");
        rc = e < 0 ? cli_error("%s", err.message) : 0;
    }
    cli_disconnect();
    return rc;
}

/* vdk upload -------------------------------------------------------------- */

static const char upload_help[] =
    "Usage: vdk upload --server URL --user NAME [OPTIONS] DISK '[DATASTORE] FOLDER'\n\n"
    "Copy a local disk's own files (its descriptor and extents, not its parents)\n"
    "into a datastore folder with HTTPS PUT, extents first and the descriptor\n"
    "last, so the disk appears only once whole.  Names are kept: a redo log\n"
    "uploaded beside its parent finds it.\n\n"
    "Options:\n"
    "  -q, --quiet     no progress\n" CLI_REMOTE_HELP "  -h, --help      this text\n";

struct up_prog {
    struct progress *p;
    uint64_t base;
};

static int on_upload(void *arg, uint64_t done, uint64_t total)
{
    struct up_prog *u = arg;
    progress_update(u->p, u->base + done);
    return 0;
}

/* Upload one local file (a path relative to store st) as "[ds] folder/name". */
static int put_one(vdk_conn *conn, vdk_store *st, const char *name, const char *ds,
                   const char *folder, struct up_prog *u)
{
    char dspath[4096];
    const char *base = strrchr(name, '/');
    snprintf(dspath, sizeof(dspath), "[%s] %s%s%s", ds, folder, *folder ? "/" : "",
             base ? base + 1 : name);
    vdk_error err = {0};
    if (vdk_upload_file(conn, st, name, dspath, on_upload, u, &err) < 0)
        return cli_error("%s", err.message);
    struct vdk_stat sb;
    if (st->ops->stat(st, name, &sb) == 0)
        u->base += sb.size;
    return 0;
}

/* The files of one link: extents (other than the descriptor) then the
 * descriptor.  Store names relative to the disk's folder. */
static int upload_link(vdk_conn *conn, const char *path, const char *ds, const char *folder,
                       int quiet)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (!dir[0])
        snprintf(dir, sizeof(dir), "/");
    vdk_disk *d;
    vdk_error err = {0};
    if (vdk_open(path, VDK_OPEN_RDONLY | VDK_OPEN_SINGLE_LINK | VDK_OPEN_IGNORE_CID, &d, &err) < 0)
        return cli_error("%s", err.message);
    vdk_store *st;
    int r = vdk_store_local_new(dir, &st);
    if (r < 0) {
        vdk_close(d);
        return cli_error("%s: %s", dir, strerror(-r));
    }
    vdk_info info;
    vdk_get_info(d, &info);
    uint64_t total = 0;
    struct vdk_stat sb;
    for (unsigned i = 0; i < info.extent_count; i++) {
        vdk_extent_info x;
        vdk_get_extent(d, i, &x);
        if (x.file[0] && strcmp(x.file, info.name) && st->ops->stat(st, x.file, &sb) == 0)
            total += sb.size;
    }
    if (st->ops->stat(st, info.name, &sb) == 0)
        total += sb.size;
    struct progress p;
    progress_init(&p, total, !quiet);
    struct up_prog u = {&p, 0};
    int rc = 0;
    for (unsigned i = 0; i < info.extent_count && !rc; i++) {
        vdk_extent_info x;
        vdk_get_extent(d, i, &x);
        if (x.file[0] && strcmp(x.file, info.name))
            rc = put_one(conn, st, x.file, ds, folder, &u);
    }
    if (!rc)
        rc = put_one(conn, st, info.name, ds, folder, &u);
    progress_done(&p);
    st->ops->destroy(st);
    vdk_close(d);
    return rc;
}

int cmd_upload(int argc, char **argv)
{
    struct option *all = cli_with_remote_opts(NULL, 0);
    struct remote_opts r = {0};
    int quiet = 0, c;
    while ((c = getopt_long(argc, argv, "hq", all, NULL)) != -1) {
        if (cli_remote_option(c, &r))
            continue;
        if (c == 'q')
            quiet = 1;
        else if (c == 'h')
            return fputs(upload_help, stdout), 0;
        else
            return fputs(upload_help, stderr), 2;
    }
    if (optind != argc - 2)
        return cli_error("expects DISK '[DATASTORE] FOLDER' (see --help)"), 2;
    char ds[256], folder[2048];
    if (vdk_dspath_split(argv[optind + 1], ds, sizeof(ds), folder, sizeof(folder)) < 0)
        return cli_error("'%s' is not a datastore folder like '[datastore1] vm'", argv[optind + 1]);
    size_t fl = strlen(folder);
    while (fl && folder[fl - 1] == '/')
        folder[--fl] = '\0';
    vdk_conn *conn = cli_connect(&r);
    if (!conn)
        return 1;
    int rc = upload_link(conn, argv[optind], ds, folder, quiet);
    cli_disconnect();
    return rc;
}

/* vdk backup -------------------------------------------------------------- */

static const char backup_help[] =
    "Usage: vdk backup --server URL --user NAME [OPTIONS] VM DISK OUTPUT.vmdk\n\n"
    "Copy a VM's disk, as of a snapshot, into a local disk.  A full backup clones\n"
    "the remote chain into OUTPUT (-t type, default monolithicSparse).  With\n"
    "--incremental BASE, OUTPUT becomes a redo log of the local disk BASE (the\n"
    "previous backup) holding only the areas QueryChangedDiskAreas reports as\n"
    "changed since BASE's changeId, so BASE+OUTPUT read as the disk does now.\n"
    "Each backup records the disk's changeId and source in its ddb (keys\n"
    "vdk.changeId, vdk.source) for the next incremental one.\n\n"
    "The usual procedure: vdk prepare VM; vdk snapshot create VM backup;\n"
    "vdk backup --snapshot backup VM 0 full.vmdk; vdk snapshot remove VM backup;\n"
    "vdk end-access VM.\n\n"
    "Options:\n"
    "  --snapshot S    read the disk as of snapshot S (name or moref); without it\n"
    "                  the running disk is read, which is not consistent\n"
    "  -t, --type T    createType of a full backup (default monolithicSparse)\n"
    "  --incremental BASE  write a redo log of BASE with the changed areas only\n"
    "  --change-id ID  changeId to compare with (default: BASE's vdk.changeId)\n"
    "  -f, --force     replace OUTPUT\n"
    "  -q, --quiet     no progress\n" CLI_REMOTE_HELP "  -h, --help      this text\n";

struct backup_opts {
    struct remote_opts r;
    const char *snap, *type, *base, *change_id;
    int force, quiet;
};

static int on_clone_progress(void *arg, uint64_t done, uint64_t total)
{
    progress_update(arg, done);
    return 0;
}

/* Record where a backup came from, for the next incremental one. */
static int stamp(const char *path, const vdk_vm_disk *disk)
{
    vdk_disk *d;
    vdk_error err = {0};
    if (vdk_open(path, VDK_OPEN_SINGLE_LINK | VDK_OPEN_IGNORE_CID, &d, &err) < 0)
        return cli_error("%s", err.message);
    int r = 0;
    if (disk->change_id[0])
        r = vdk_meta_set(d, "vdk.changeId", disk->change_id, &err);
    if (r == 0)
        r = vdk_meta_set(d, "vdk.source", disk->file, &err);
    int c = vdk_close(d);
    if (r < 0 || c < 0)
        return cli_error("%s: %s", path, err.message[0] ? err.message : vdk_strerror(r ? r : c));
    return 0;
}

struct incr {
    vdk_disk *src, *dst;
    char *buf;
    struct progress p;
    uint64_t done;
    int failed;
};

#define INCR_CHUNK (1u << 20)

static int copy_changed(void *arg, const vdk_range *rg)
{
    struct incr *in = arg;
    for (uint64_t off = rg->offset; off < rg->offset + rg->length;) {
        size_t n = rg->offset + rg->length - off < INCR_CHUNK
                       ? (size_t)(rg->offset + rg->length - off)
                       : INCR_CHUNK;
        int64_t got = vdk_read(in->src, in->buf, n, off);
        if (got != (int64_t)n)
            return cli_disk_error(in->src, got < 0 ? (int)got : -VDK_E_IO), in->failed = 1, 1;
        int64_t put = vdk_write(in->dst, in->buf, n, off);
        if (put != (int64_t)n)
            return cli_disk_error(in->dst, put < 0 ? (int)put : -VDK_E_IO), in->failed = 1, 1;
        off += n;
        in->done += n;
        progress_update(&in->p, in->done);
    }
    return 0;
}

static int incremental_backup(vdk_conn *conn, const char *vm, const char *snap,
                              const vdk_vm_disk *disk, vdk_disk *src, const char *out,
                              const struct backup_opts *o)
{
    vdk_error err = {0};
    vdk_disk *base;
    if (vdk_open(o->base, VDK_OPEN_RDONLY, &base, &err) < 0)
        return cli_error("%s", err.message);
    char id[256] = "";
    size_t need;
    if (o->change_id)
        snprintf(id, sizeof(id), "%s", o->change_id);
    else if (vdk_meta_get(base, "vdk.changeId", id, sizeof(id), &need) < 0 || !id[0]) {
        vdk_close(base);
        return cli_error("%s records no changeId (vdk.changeId): give --change-id", o->base);
    }
    if (vdk_capacity(base) != vdk_capacity(src)) {
        vdk_close(base);
        return cli_error("%s holds %llu bytes but the disk %llu: not a backup of it", o->base,
                         (unsigned long long)vdk_capacity(base),
                         (unsigned long long)vdk_capacity(src));
    }
    vdk_close(base);
    /* The child goes beside BASE: its parent hint is BASE's name. */
    const char *bslash = strrchr(o->base, '/'), *oslash = strrchr(out, '/');
    size_t bdir = bslash ? (size_t)(bslash - o->base) : 0,
           odir = oslash ? (size_t)(oslash - out) : 0;
    if (bdir != odir || strncmp(o->base, out, bdir))
        return cli_error("OUTPUT must lie in the folder of BASE (%.*s)", (int)bdir,
                         bdir ? o->base : ".");
    vdk_disk *parent;
    if (vdk_open(o->base, 0, &parent, &err) < 0)
        return cli_error("%s", err.message);
    int r = vdk_create_child(parent, oslash ? oslash + 1 : out, NULL, NULL, &err);
    vdk_close(parent);
    if (r < 0)
        return cli_error("%s", err.message);
    struct incr in = {.src = src, .buf = malloc(INCR_CHUNK)};
    if (!in.buf)
        return cli_error("out of memory");
    if (vdk_open(out, 0, &in.dst, &err) < 0) {
        free(in.buf);
        return cli_error("%s", err.message);
    }
    progress_init(&in.p, disk->capacity, !o->quiet);
    r = vdk_changed_areas(conn, vm, snap, disk->key, disk->capacity, id, copy_changed, &in, &err);
    progress_done(&in.p);
    int rc = r < 0 && !in.failed ? cli_error("%s", err.message) : r ? 1 : 0;
    if (vdk_close(in.dst) < 0 && !rc)
        rc = cli_error("%s: closing failed", out);
    free(in.buf);
    if (!rc && !o->quiet)
        fprintf(stderr, "%s: %llu changed bytes since changeId %s\n", cli_cmd,
                (unsigned long long)in.done, id);
    return rc;
}

int cmd_backup(int argc, char **argv)
{
    static const struct option own[] = {{"snapshot", required_argument, NULL, 's'},
                                        {"type", required_argument, NULL, 't'},
                                        {"incremental", required_argument, NULL, 'I'},
                                        {"change-id", required_argument, NULL, 'c'},
                                        {"force", no_argument, NULL, 'f'}};
    struct option *all = cli_with_remote_opts(own, 5);
    struct backup_opts o = {0};
    int c;
    while ((c = getopt_long(argc, argv, "t:fhq", all, NULL)) != -1) {
        if (cli_remote_option(c, &o.r))
            continue;
        switch (c) {
        case 's':
            o.snap = optarg;
            break;
        case 't':
            o.type = optarg;
            break;
        case 'I':
            o.base = optarg;
            break;
        case 'c':
            o.change_id = optarg;
            break;
        case 'f':
            o.force = 1;
            break;
        case 'q':
            o.quiet = 1;
            break;
        case 'h':
            return fputs(backup_help, stdout), 0;
        default:
            return fputs(backup_help, stderr), 2;
        }
    }
    if (optind != argc - 3)
        return cli_error("expects VM DISK OUTPUT (see --help)"), 2;
    if (o.base && o.type)
        return cli_error("--type applies to full backups; an incremental one is a redo log"), 2;
    vdk_conn *conn = cli_connect(&o.r);
    if (!conn)
        return 1;
    char vm[128], snap[128];
    vdk_vm_disk disk;
    int rc = 1;
    if (pick_vm(conn, argv[optind], o.snap, vm, snap) == 0 &&
        pick_disk(conn, vm, o.snap ? snap : NULL, argv[optind + 1], &disk) == 0) {
        struct open_opts oo = {.flags = VDK_OPEN_RDONLY, .remote = o.r};
        vdk_disk *src = cli_open_remote(disk.file, &oo);
        const char *out = argv[optind + 2];
        if (src) {
            rc = o.base ? incremental_backup(conn, vm, o.snap ? snap : NULL, &disk, src, out, &o)
                        : cli_clone_to(src, out, &(vdk_create_params){.type = o.type}, o.force,
                                       o.quiet);
            vdk_close(src);
            if (!rc)
                rc = stamp(out, &disk);
        }
    }
    cli_disconnect();
    return rc;
}

/* vdk restore ------------------------------------------------------------- */

static const char restore_help[] =
    "Usage: vdk restore --server URL --user NAME [OPTIONS] DISK '[DATASTORE] FOLDER/NAME.vmdk'\n\n"
    "Write a local disk (its chain merged, e.g. a full backup plus incremental\n"
    "ones) to a datastore as a new disk NAME.vmdk: it is first cloned into a\n"
    "temporary folder beside DISK as type -t (default vmfs: the descriptor plus\n"
    "NAME-flat.vmdk, what ESXi runs), then uploaded with HTTPS PUT, data first and\n"
    "descriptor last.  Attach the result to a VM, or use it to replace a disk\n"
    "while the VM is off.\n\n"
    "Options:\n"
    "  -t, --type T    createType on the datastore (vmfs, vmfsThin, monolithicSparse,\n"
    "                  streamOptimized, ...)\n"
    "  -f, --force     replace NAME.vmdk when the datastore has it already\n"
    "  -q, --quiet     no progress\n" CLI_REMOTE_HELP "  -h, --help      this text\n";

static void remove_tree(const char *dir, const char *name)
{
    vdk_store *st;
    if (vdk_store_local_new(dir, &st) == 0) {
        vdk_unlink(st, name, 1, NULL);
        st->ops->destroy(st);
    }
    rmdir(dir);
}

int cmd_restore(int argc, char **argv)
{
    static const struct option own[] = {{"type", required_argument, NULL, 't'},
                                        {"force", no_argument, NULL, 'f'}};
    struct option *all = cli_with_remote_opts(own, 2);
    struct remote_opts r = {0};
    const char *type = "vmfs";
    int quiet = 0, force = 0, c;
    while ((c = getopt_long(argc, argv, "t:fhq", all, NULL)) != -1) {
        if (cli_remote_option(c, &r))
            continue;
        if (c == 't')
            type = optarg;
        else if (c == 'f')
            force = 1;
        else if (c == 'q')
            quiet = 1;
        else if (c == 'h')
            return fputs(restore_help, stdout), 0;
        else
            return fputs(restore_help, stderr), 2;
    }
    if (optind != argc - 2)
        return cli_error("expects DISK '[DATASTORE] FOLDER/NAME.vmdk' (see --help)"), 2;
    const char *local = argv[optind], *target = argv[optind + 1];
    char ds[256], path[2048];
    size_t tl = strlen(target);
    if (vdk_dspath_split(target, ds, sizeof(ds), path, sizeof(path)) < 0 || tl < 6 ||
        strcmp(target + tl - 5, ".vmdk"))
        return cli_error("'%s' is not a datastore file like '[datastore1] vm/restored.vmdk'",
                         target);
    char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    if (slash)
        *slash = '\0';
    const char *folder = slash ? path : "";
    /* PUT replaces files: a VM's own disk is not overwritten by accident. */
    vdk_conn *conn = cli_connect(&r);
    if (!conn)
        return 1;
    vdk_store *ds_st;
    vdk_error derr = {0};
    struct vdk_stat sb;
    if (vdk_conn_store(conn, ds, folder, &ds_st, &derr) == 0) {
        int exists = ds_st->ops->stat(ds_st, name, &sb) == 0;
        ds_st->ops->destroy(ds_st);
        if (exists && !force) {
            cli_disconnect();
            return cli_error("%s exists on the datastore (use --force to replace it)", target);
        }
    }
    struct open_opts oo = {.flags = 0};
    vdk_disk *src = cli_open(local, &oo);
    if (!src)
        return 1;
    char tmp[PATH_MAX];
    const char *ls = strrchr(local, '/');
    snprintf(tmp, sizeof(tmp), "%.*s/.vdk-restore-XXXXXX", ls ? (int)(ls - local) : 1,
             ls ? local : ".");
    if (!mkdtemp(tmp)) {
        cli_close(src);
        return cli_error("%s: %s", tmp, strerror(errno));
    }
    int rc = 0;
    vdk_store *st;
    int e = vdk_store_local_new(tmp, &st);
    if (e < 0) {
        rc = cli_error("%s: %s", tmp, strerror(-e));
    } else {
        struct progress p;
        progress_init(&p, vdk_capacity(src), !quiet);
        vdk_create_params cp = {.type = type};
        vdk_error err = {0};
        if (vdk_clone(src, st, name, &cp, on_clone_progress, &p, &err) < 0)
            rc = cli_error("%s", err.message);
        progress_done(&p);
        st->ops->destroy(st);
    }
    cli_close(src);
    if (!rc) {
        conn = cli_connect(&r); /* cli_close of DISK logged out */
        char full[PATH_MAX + 2048];
        snprintf(full, sizeof(full), "%s/%s", tmp, name);
        rc = conn ? upload_link(conn, full, ds, folder, quiet) : 1;
        cli_disconnect();
    }
    remove_tree(tmp, name);
    return rc;
}
