/* vdk's vSphere subcommands: transports, vms, ls, snapshot, prepare,
 * end-access, changed --change-id, upload, backup, restore. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "vdk_remote.h"

#define REMOTE_USAGE_TAIL CLI_REMOTE_HELP "  -h, --help      this text\n"

/* getopt over the remote options plus a command's own; returns the option
 * or -1 at the end, 'h' for help, '?' for a bad option. */
static int next_opt(int argc, char **argv, const char *shorts, const struct option *own,
                    size_t n_own, struct remote_opts *r)
{
    struct option *all = cli_with_remote_opts(own, n_own);
    int c;
    while ((c = getopt_long(argc, argv, shorts, all, NULL)) != -1)
        if (!cli_remote_option(c, r))
            return c;
    return -1;
}

static int usage_error(const char *help)
{
    fputs(help, stderr);
    return 2;
}

static int on_task_progress(void *arg, uint64_t done, uint64_t total)
{
    progress_update(arg, done);
    return 0;
}

/* vdk transports ---------------------------------------------------------- */

static const char transports_help[] =
    "Usage: vdk transports [--json]\n\n"
    "List the transport modes (VixDiskLib_ListTransportModes):\n"
    "  file    disks in local folders (and folders mounted from NFS/VMFS)\n"
    "  https   datastore files over the host's /folder HTTPS interface\n"
    "nbd and nbdssl (VMware's NFC protocol) are not offered.\n";

int cmd_transports(int argc, char **argv)
{
    int json = argc > 1 && !strcmp(argv[1], "--json");
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
        return fputs(transports_help, stdout), 0;
    if (argc > 1 + json)
        return usage_error(transports_help);
    const char *const *m = vdk_transport_modes();
    if (json)
        printf("[");
    for (unsigned i = 0; m[i]; i++)
        if (json)
            printf("%s\"%s\"", i ? ", " : "", m[i]);
        else
            printf("%s\n", m[i]);
    if (json)
        printf("]\n");
    return 0;
}

/* vdk vms ----------------------------------------------------------------- */

static const char vms_help[] = "Usage: vdk vms --server URL --user NAME [OPTIONS] VM\n\n"
                               "Show a virtual machine's moref, disks (device key, label, "
                               "capacity, backing file,\nchangeId) and snapshot tree.\n\n"
                               "VM is a name, an inventory path (/DC/vm/folder/name) or a moref "
                               "(vm-42).\n\nOptions:\n  --json          machine-readable output\n"
                               "" REMOTE_USAGE_TAIL;

static void print_disks_json(const vdk_vm_disk *d, unsigned n)
{
    printf("[");
    for (unsigned i = 0; i < n; i++) {
        printf("%s{\"key\": %d, \"label\": ", i ? ", " : "", d[i].key);
        json_str(stdout, d[i].label);
        printf(", \"capacity\": %llu, \"file\": ", (unsigned long long)d[i].capacity);
        json_str(stdout, d[i].file);
        printf(", \"changeId\": ");
        json_str(stdout, d[i].change_id);
        printf("}");
    }
    printf("]");
}

int cmd_vms(int argc, char **argv)
{
    static const struct option own[] = {{"json", no_argument, NULL, 'j'}};
    struct remote_opts r = {0};
    int json = 0, c;
    while ((c = next_opt(argc, argv, "h", own, 1, &r)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'h')
            return fputs(vms_help, stdout), 0;
        else
            return usage_error(vms_help);
    }
    if (optind != argc - 1)
        return cli_error("expects one VM (see --help)"), 2;
    vdk_conn *conn = cli_connect(&r);
    if (!conn)
        return 1;
    char vm[128];
    vdk_error err = {0};
    vdk_vm_disk *disks = NULL;
    vdk_snapshot *snaps = NULL;
    unsigned nd = 0, ns = 0;
    int rc = 0;
    if (vdk_vm_find(conn, argv[optind], vm, sizeof(vm), &err) < 0 ||
        vdk_vm_disks(conn, vm, NULL, &disks, &nd, &err) < 0 ||
        vdk_snapshot_list(conn, vm, &snaps, &ns, &err) < 0) {
        rc = cli_error("%s", err.message);
    } else if (json) {
        printf("{\"moref\": ");
        json_str(stdout, vm);
        printf(", \"disks\": ");
        print_disks_json(disks, nd);
        printf(", \"snapshots\": %u}\n", ns);
    } else {
        printf("%s (%s)\n", argv[optind], vm);
        for (unsigned i = 0; i < nd; i++)
            printf("  disk %d  %-12s %llu bytes  %s%s%s\n", disks[i].key, disks[i].label,
                   (unsigned long long)disks[i].capacity, disks[i].file,
                   disks[i].change_id[0] ? "  changeId " : "", disks[i].change_id);
        for (unsigned i = 0; i < ns; i++)
            printf("  snapshot %*s%s (%s)%s\n", (int)snaps[i].depth * 2, "", snaps[i].name,
                   snaps[i].moref, snaps[i].current ? " <- current" : "");
    }
    free(disks);
    free(snaps);
    cli_disconnect();
    return rc;
}

/* vdk ls ------------------------------------------------------------------ */

static const char ls_help[] =
    "Usage: vdk ls --server URL --user NAME [OPTIONS] '[DATASTORE] FOLDER'\n\n"
    "List a datastore folder (HostDatastoreBrowser): size, modification time, name;\n"
    "folders end in '/'.\n\nOptions:\n" REMOTE_USAGE_TAIL;

static int ls_entry(void *arg, const char *name, const struct vdk_stat *st)
{
    char when[32] = "-";
    time_t t = (time_t)st->mtime;
    struct tm tm;
    if (st->mtime && gmtime_r(&t, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
    printf("%14llu  %s  %s%s\n", (unsigned long long)st->size, when, name, st->is_dir ? "/" : "");
    return 0;
}

int cmd_ls(int argc, char **argv)
{
    struct remote_opts r = {0};
    int c;
    while ((c = next_opt(argc, argv, "h", NULL, 0, &r)) != -1)
        return c == 'h' ? (fputs(ls_help, stdout), 0) : usage_error(ls_help);
    if (optind != argc - 1)
        return cli_error("expects one '[DATASTORE] FOLDER' (see --help)"), 2;
    char ds[256], path[2048];
    if (vdk_dspath_split(argv[optind], ds, sizeof(ds), path, sizeof(path)) < 0)
        return cli_error("'%s' is not a datastore path like '[datastore1] vm'", argv[optind]);
    vdk_conn *conn = cli_connect(&r);
    if (!conn)
        return 1;
    vdk_store *st;
    vdk_error err = {0};
    int rc = 0;
    if (vdk_conn_store(conn, ds, path, &st, &err) < 0) {
        rc = cli_error("%s", err.message);
    } else {
        int e = st->ops->list(st, "", ls_entry, NULL);
        if (e < 0)
            rc = cli_error("%s: %s", argv[optind], strerror(-e));
        st->ops->destroy(st);
    }
    cli_disconnect();
    return rc;
}

/* vdk snapshot ------------------------------------------------------------ */

static const char snapshot_help[] =
    "Usage: vdk snapshot list   [OPTIONS] VM\n"
    "       vdk snapshot create [OPTIONS] [--quiesce] [--memory] [--description TEXT] VM NAME\n"
    "       vdk snapshot remove [OPTIONS] [--children] VM SNAPSHOT\n\n"
    "List, take or delete snapshots of a virtual machine (CreateSnapshot_Task,\n"
    "RemoveSnapshot_Task), waiting for the task with progress.  A backup takes a\n"
    "snapshot, reads the disks as of it, then removes it.  VM is a name, an\n"
    "inventory path or a moref; SNAPSHOT a name or a moref (snapshot-7).\n\n"
    "Options:\n"
    "  --quiesce       quiesce the guest's file systems first (VMware Tools)\n"
    "  --memory        include the memory state\n"
    "  --description TEXT  the snapshot's description\n"
    "  --children      also remove the snapshots below it\n"
    "  --json          (list) machine-readable output\n"
    "  -q, --quiet     no progress\n" REMOTE_USAGE_TAIL;

static int snapshot_list(vdk_conn *conn, const char *vm, int json, vdk_error *err)
{
    vdk_snapshot *s;
    unsigned n;
    if (vdk_snapshot_list(conn, vm, &s, &n, err) < 0)
        return -1;
    if (json)
        printf("[");
    for (unsigned i = 0; i < n; i++) {
        if (!json) {
            printf("%-16s %*s%s%s  %s\n", s[i].moref, (int)s[i].depth * 2, "", s[i].name,
                   s[i].current ? " (current)" : "", s[i].created);
            continue;
        }
        printf("%s\n  {\"moref\": ", i ? "," : "");
        json_str(stdout, s[i].moref);
        printf(", \"name\": ");
        json_str(stdout, s[i].name);
        printf(", \"description\": ");
        json_str(stdout, s[i].description);
        printf(", \"created\": ");
        json_str(stdout, s[i].created);
        printf(", \"id\": %d, \"depth\": %u, \"current\": %s, \"quiesced\": %s}", s[i].id,
               s[i].depth, s[i].current ? "true" : "false", s[i].quiesced ? "true" : "false");
    }
    if (json)
        printf("\n]\n");
    free(s);
    return 0;
}

int cmd_snapshot(int argc, char **argv)
{
    static const struct option own[] = {{"quiesce", no_argument, NULL, 'Q'},
                                        {"memory", no_argument, NULL, 'M'},
                                        {"description", required_argument, NULL, 'D'},
                                        {"children", no_argument, NULL, 'c'},
                                        {"json", no_argument, NULL, 'j'}};
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
        return argc < 2 ? usage_error(snapshot_help) : (fputs(snapshot_help, stdout), 0);
    const char *verb = argv[1];
    struct remote_opts r = {0};
    const char *desc = NULL;
    unsigned flags = 0;
    int children = 0, json = 0, quiet = 0, c;
    while ((c = next_opt(argc - 1, argv + 1, "hq", own, 5, &r)) != -1) {
        switch (c) {
        case 'q':
            quiet = 1;
            break;
        case 'Q':
            flags |= VDK_SNAP_QUIESCE;
            break;
        case 'M':
            flags |= VDK_SNAP_MEMORY;
            break;
        case 'D':
            desc = optarg;
            break;
        case 'c':
            children = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            return fputs(snapshot_help, stdout), 0;
        default:
            return usage_error(snapshot_help);
        }
    }
    int nargs = argc - 1 - optind;
    char **args = argv + 1 + optind;
    int want = !strcmp(verb, "list") ? 1 : 2;
    if (strcmp(verb, "list") && strcmp(verb, "create") && strcmp(verb, "remove"))
        return cli_error("unknown action '%s': list, create or remove", verb), 2;
    if (nargs != want)
        return cli_error("%s expects %s (see --help)", verb, want == 1 ? "VM" : "VM NAME"), 2;
    vdk_conn *conn = cli_connect(&r);
    if (!conn)
        return 1;
    char vm[128], snap[128];
    vdk_error err = {0};
    int rc = vdk_vm_find(conn, args[0], vm, sizeof(vm), &err);
    struct progress p;
    progress_init(&p, 100, !quiet);
    if (rc == 0 && !strcmp(verb, "list")) {
        rc = snapshot_list(conn, vm, json, &err);
    } else if (rc == 0 && !strcmp(verb, "create")) {
        rc = vdk_snapshot_create(conn, vm, args[1], desc, flags, on_task_progress, &p, snap,
                                 sizeof(snap), &err);
        progress_done(&p);
        if (rc == 0)
            printf("%s\n", snap);
    } else if (rc == 0) {
        rc = vdk_snapshot_find(conn, vm, args[1], snap, sizeof(snap), &err);
        if (rc == 0)
            rc = vdk_snapshot_remove(conn, snap, children, on_task_progress, &p, &err);
        progress_done(&p);
    }
    if (rc < 0)
        rc = cli_error("%s", err.message);
    cli_disconnect();
    return rc ? 1 : 0;
}

/* vdk prepare / end-access ------------------------------------------------ */

static const char prepare_help[] =
    "Usage: vdk prepare    [OPTIONS] [--identity NAME] VM\n"
    "       vdk end-access [OPTIONS] [--identity NAME] VM\n\n"
    "PrepareForAccess / EndAccess: before a backup reads a VM's disks, ask\n"
    "vCenter not to relocate or migrate the VM (AuthorizationManager.\n"
    "DisableMethods); afterwards allow it again.  Needs vCenter: a standalone\n"
    "ESXi host has no such call and is refused with a clear error.\n\n"
    "Options:\n"
    "  --identity NAME the application named in vCenter's task list (default: vdk)\n"
    "" REMOTE_USAGE_TAIL;

static int access_cmd(int argc, char **argv, int prepare)
{
    static const struct option own[] = {{"identity", required_argument, NULL, 'i'}};
    struct remote_opts r = {0};
    const char *identity = "vdk";
    int c;
    while ((c = next_opt(argc, argv, "h", own, 1, &r)) != -1) {
        if (c == 'i')
            identity = optarg;
        else
            return c == 'h' ? (fputs(prepare_help, stdout), 0) : usage_error(prepare_help);
    }
    if (optind != argc - 1)
        return cli_error("expects one VM (see --help)"), 2;
    vdk_conn *conn = cli_connect(&r);
    if (!conn)
        return 1;
    char vm[128];
    vdk_error err = {0};
    int rc = vdk_vm_find(conn, argv[optind], vm, sizeof(vm), &err);
    if (rc == 0)
        rc = prepare ? vdk_prepare_for_access(conn, vm, identity, &err)
                     : vdk_end_access(conn, vm, identity, &err);
    if (rc < 0)
        rc = cli_error("%s", err.message);
    cli_disconnect();
    return rc ? 1 : 0;
}

int cmd_prepare(int argc, char **argv)
{
    return access_cmd(argc, argv, 1);
}

int cmd_end_access(int argc, char **argv)
{
    return access_cmd(argc, argv, 0);
}
