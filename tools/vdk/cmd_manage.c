/* vdk attach, commit, rm, changed: operations on existing disks. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A store for the folder of 'path' (or --root) and the names in it. */
struct where {
    vdk_store *st;
    char name[VDK_NAME_MAX];
    char other[VDK_NAME_MAX]; /* locate2: the second disk's name */
};

static int locate(const char *path, const struct open_opts *oo, struct where *w)
{
    char root[4096];
    if (oo->root) {
        snprintf(root, sizeof(root), "%s", oo->root);
    } else {
        const char *slash = strrchr(path, '/');
        snprintf(root, sizeof(root), "%.*s", slash ? (slash == path ? 1 : (int)(slash - path)) : 1,
                 slash ? path : ".");
    }
    if (cli_store_name(path, oo, path, w->name, sizeof(w->name)) < 0)
        return -1;
    int r = vdk_store_local_new(root, &w->st);
    return r < 0 ? cli_error("%s: %s", root, strerror(-r)), -1 : 0;
}

/* Two disks in one store (attach CHILD PARENT, rename SRC DST). */
static int locate2(const char *path, const char *other, const struct open_opts *oo, struct where *w)
{
    if (locate(path, oo, w) < 0)
        return -1;
    if (cli_store_name(other, oo, path, w->other, sizeof(w->other)) < 0) {
        w->st->ops->destroy(w->st);
        return -1;
    }
    return 0;
}

/* A progress line sized to the disk's capacity. */
static void progress_for(struct where *w, struct progress *prog)
{
    vdk_disk *d;
    progress_init(prog, 1, 1);
    if (vdk_open_store(w->st, w->name, VDK_OPEN_RDONLY | VDK_OPEN_SINGLE_LINK, &d, NULL) == 0) {
        prog->total = vdk_capacity(d);
        vdk_close(d);
    }
}

static int simple_opts(int argc, char **argv, const char *help, struct open_opts *oo, int *force,
                       int *all)
{
    static const struct option opts[] = {{"force", no_argument, NULL, 'f'},
                                         {"all", no_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         CLI_OPEN_LONGOPTS,
                                         {0}};
    int c;
    while ((c = getopt_long(argc, argv, "fhr", opts, NULL)) != -1) {
        if (cli_open_option(c, oo))
            continue;
        if (c == 'f' && force)
            *force = 1;
        else if (c == 'a' && all)
            *all = 1;
        else if (c == 'h')
            return fputs(help, stdout), 0;
        else
            return fputs(help, stderr), 2;
    }
    return -1;
}

static const char attach_help[] =
    "Usage: vdk attach [--force] CHILD PARENT\n\n"
    "Make PARENT the parent of the redo log CHILD (VixDiskLib_Attach): its\n"
    "parentFileNameHint and parentCID are rewritten.  With 'vdk child' this\n"
    "branches a new line of snapshots at any point of a chain.  Refused when the\n"
    "sizes differ, when it would make a loop, and, unless --force, when CHILD\n"
    "was not made from PARENT's current content (parentCID != PARENT's CID).\n\n"
    "Options:\n"
    "  -f, --force     attach even when the content ids differ\n"
    "      --root DIR  the folder tree both live in (default: CHILD's folder)\n"
    "  -h, --help      this text\n";

int cmd_attach(int argc, char **argv)
{
    struct open_opts oo = {0};
    int force = 0, r = simple_opts(argc, argv, attach_help, &oo, &force, NULL);
    if (r >= 0)
        return r;
    if (optind != argc - 2)
        return cli_error("expects CHILD PARENT (see --help)"), 2;
    struct where w;
    if (locate2(argv[optind], argv[optind + 1], &oo, &w) < 0)
        return 1;
    vdk_error err = {0};
    r = vdk_attach(w.st, w.name, w.other, force, &err);
    w.st->ops->destroy(w.st);
    return r < 0 ? cli_error("%s", err.message) : 0;
}

static const char commit_help[] =
    "Usage: vdk commit [--all] CHILD\n\n"
    "Merge the redo log CHILD into its parent, as deleting a snapshot does: the\n"
    "parent gets CHILD's data, CHILD's own children are re-pointed at the parent,\n"
    "and CHILD's files are removed.  With --all, go on down to the base, leaving\n"
    "one disk.  Refused when the parent has other children (they would change).\n"
    "An interruption leaves both links readable; run it again to finish.\n\n"
    "Options:\n"
    "      --all       collapse the whole chain into its base\n"
    "  -q, --quiet     no progress line\n"
    "      --root DIR  the folder tree of the chain (default: CHILD's folder)\n"
    "  -h, --help      this text\n";

static int on_progress(void *arg, uint64_t done, uint64_t total)
{
    progress_update(arg, done);
    return 0;
}

int cmd_commit(int argc, char **argv)
{
    struct open_opts oo = {0};
    int all = 0, r = simple_opts(argc, argv, commit_help, &oo, NULL, &all);
    if (r >= 0)
        return r;
    if (optind != argc - 1)
        return cli_error("expects CHILD (see --help)"), 2;
    struct where w;
    if (locate(argv[optind], &oo, &w) < 0)
        return 1;
    vdk_error err = {0};
    struct progress prog;
    progress_for(&w, &prog);
    r = vdk_commit(w.st, w.name, all, on_progress, &prog, &err);
    progress_done(&prog);
    w.st->ops->destroy(w.st);
    return r < 0 ? cli_error("%s", err.message) : 0;
}

static const char rm_help[] =
    "Usage: vdk rm [--force] DISK\n\n"
    "Remove DISK's descriptor and every extent file it names (VixDiskLib_Unlink).\n"
    "Refused when another disk in the same folder names DISK as its parent,\n"
    "since that child would be orphaned, unless --force.\n\n"
    "Options:\n"
    "  -f, --force     remove even a disk that has children\n"
    "  -h, --help      this text\n";

int cmd_rm(int argc, char **argv)
{
    struct open_opts oo = {0};
    int force = 0, r = simple_opts(argc, argv, rm_help, &oo, &force, NULL);
    if (r >= 0)
        return r;
    if (optind != argc - 1)
        return cli_error("expects one DISK (see --help)"), 2;
    struct where w;
    if (locate(argv[optind], &oo, &w) < 0)
        return 1;
    vdk_error err = {0};
    r = vdk_unlink(w.st, w.name, force, &err);
    w.st->ops->destroy(w.st);
    return r < 0 ? cli_error("%s", err.message) : 0;
}

static const char changed_help[] =
    "Usage: vdk changed [--json] --since LINK DISK\n\n"
    "Print the byte ranges of DISK that differ from the earlier link LINK of its\n"
    "chain (what QueryChangedDiskAreas gives a backup): the ranges held by the\n"
    "links above LINK.  Found from the redo logs' allocation, without reading\n"
    "data.  LINK is a file name (with or without .vmdk) of a link of the chain.\n\n"
    "Options:\n"
    "      --since LINK  the earlier point\n"
    "      --json        [{\"start\": N, \"length\": N}, ...]\n" CLI_OPEN_HELP
    "  -h, --help        this text\n";

struct changed {
    unsigned below; /* links above LINK have depth < below */
    int json, first;
    uint64_t start, length, total;
};

static void emit(struct changed *c)
{
    if (!c->length)
        return;
    if (c->json)
        printf("%s\n  {\"start\": %llu, \"length\": %llu}", c->first ? "" : ",",
               (unsigned long long)c->start, (unsigned long long)c->length);
    else
        printf("%llu %llu\n", (unsigned long long)c->start, (unsigned long long)c->length);
    c->first = 0;
    c->total += c->length;
    c->length = 0;
}

static int on_range(void *arg, const vdk_range *r)
{
    struct changed *c = arg;
    if (r->depth >= c->below || r->kind == VDK_RANGE_HOLE)
        return 0;
    if (c->length && c->start + c->length == r->offset) {
        c->length += r->length;
        return 0;
    }
    emit(c);
    c->start = r->offset;
    c->length = r->length;
    return 0;
}

static int same_link(const char *name, const char *want)
{
    const char *b = strrchr(name, '/');
    b = b ? b + 1 : name;
    size_t l = strlen(want);
    return !strcmp(b, want) || (!strncmp(b, want, l) && !strcmp(b + l, ".vmdk"));
}

int cmd_changed(int argc, char **argv)
{
    /* --change-id asks vSphere's change tracking instead of the chain. */
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], "--change-id", 11))
            return cmd_changed_remote(argc, argv);
    static const struct option opts[] = {{"since", required_argument, NULL, 's'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         CLI_OPEN_LONGOPTS,
                                         {0}};
    struct open_opts oo = {0};
    struct changed c = {.first = 1};
    const char *since = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "hr", opts, NULL)) != -1) {
        if (cli_open_option(o, &oo))
            continue;
        if (o == 's')
            since = optarg;
        else if (o == 'j')
            c.json = 1;
        else if (o == 'h')
            return fputs(changed_help, stdout), 0;
        else
            return fputs(changed_help, stderr), 2;
    }
    if (optind != argc - 1 || !since)
        return cli_error("expects --since LINK DISK (see --help)"), 2;
    vdk_disk *d = cli_open(argv[optind], &oo);
    if (!d)
        return 1;
    unsigned depth = 0;
    vdk_disk *l = d;
    for (; l; l = vdk_parent(l), depth++) {
        vdk_info info;
        vdk_get_info(l, &info);
        if (same_link(info.name, since))
            break;
    }
    if (!l) {
        cli_close(d);
        return cli_error("%s is not a link of %s's chain", since, argv[optind]);
    }
    c.below = depth;
    if (c.json)
        printf("[");
    int r = vdk_map(d, 0, vdk_capacity(d), 0, on_range, &c);
    emit(&c);
    if (c.json)
        printf("\n]\n");
    int rc = r < 0 ? cli_disk_error(d, r) : 0;
    if (!c.json && rc == 0)
        fprintf(stderr, "%llu bytes changed since %s\n", (unsigned long long)c.total, since);
    cli_close(d);
    return rc;
}

static const char space_help[] =
    "Usage: vdk space [-t TYPE] [--json] DISK\n\n"
    "Print an upper bound of the bytes 'vdk clone -t TYPE DISK OUT' will take\n"
    "(VixDiskLib_SpaceNeededForClone): the grains holding data plus the grain\n"
    "tables for sparse types, the capacity for flat ones.  TYPE defaults to\n"
    "monolithicSparse.\n\n"
    "Options:\n"
    "  -t, --type TYPE   the clone's type\n"
    "      --json        {\"bytes\": N}\n" CLI_OPEN_HELP "  -h, --help        this text\n";

int cmd_space(int argc, char **argv)
{
    static const struct option opts[] = {{"type", required_argument, NULL, 't'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         CLI_OPEN_LONGOPTS,
                                         {0}};
    struct open_opts oo = {0};
    const char *type = NULL;
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "t:hr", opts, NULL)) != -1) {
        if (cli_open_option(c, &oo))
            continue;
        if (c == 't')
            type = optarg;
        else if (c == 'j')
            json = 1;
        else if (c == 'h')
            return fputs(space_help, stdout), 0;
        else
            return fputs(space_help, stderr), 2;
    }
    if (optind != argc - 1)
        return cli_error("expects one DISK (see --help)"), 2;
    vdk_disk *d = cli_open(argv[optind], &oo);
    if (!d)
        return 1;
    uint64_t bytes = 0;
    vdk_error err = {0};
    int r = vdk_space_for_clone(d, type, &bytes, &err);
    cli_close(d);
    if (r < 0)
        return cli_error("%s", err.message);
    if (json)
        printf("{\"bytes\": %llu}\n", (unsigned long long)bytes);
    else
        printf("%llu\n", (unsigned long long)bytes);
    return 0;
}

static const char shrink_help[] =
    "Usage: vdk shrink DISK\n"
    "       vdk defragment DISK\n\n"
    "Rewrite DISK's sparse extents (VixDiskLib_Shrink, VixDiskLib_Defragment):\n"
    "grains in guest order and contiguous, no unused space, and in a base disk\n"
    "no all-zero grains, so the files get smaller and sequential reads faster.\n"
    "Content, capacity and CID are unchanged.  Each extent is written to a new\n"
    "file that replaces the old one by rename: an interruption leaves the disk\n"
    "as it was.  Flat extents are left alone.  Do not run it on a mounted disk.\n\n"
    "Options:\n"
    "  -q, --quiet     no progress line\n"
    "      --root DIR  the folder tree of DISK's chain (default: DISK's folder)\n"
    "  -h, --help      this text\n";

static int rewrite_cmd(int argc, char **argv, int shrink)
{
    struct open_opts oo = {0};
    int r = simple_opts(argc, argv, shrink_help, &oo, NULL, NULL);
    if (r >= 0)
        return r;
    if (optind != argc - 1)
        return cli_error("expects one DISK (see --help)"), 2;
    struct where w;
    if (locate(argv[optind], &oo, &w) < 0)
        return 1;
    struct progress prog;
    progress_for(&w, &prog);
    vdk_error err = {0};
    uint64_t saved = 0;
    r = shrink ? vdk_shrink(w.st, w.name, on_progress, &prog, &saved, &err)
               : vdk_defragment(w.st, w.name, on_progress, &prog, &err);
    progress_done(&prog);
    w.st->ops->destroy(w.st);
    if (r < 0)
        return cli_error("%s", err.message);
    if (shrink)
        printf("%llu bytes freed\n", (unsigned long long)saved);
    return 0;
}

int cmd_shrink(int argc, char **argv)
{
    return rewrite_cmd(argc, argv, 1);
}

int cmd_defragment(int argc, char **argv)
{
    return rewrite_cmd(argc, argv, 0);
}

static const char grow_help[] =
    "Usage: vdk grow DISK SIZE\n\n"
    "Make DISK larger (VixDiskLib_Grow); SIZE as for 'vdk create' (10G, 2T...).\n"
    "The old content stays and the new range reads as zeros.  Flat extents get\n"
    "longer, sparse ones get more grain tables, split disks get new extent\n"
    "files; the geometry in the descriptor follows.  The partitions and file\n"
    "systems inside are not touched: grow them with the guest's tools.\n"
    "Refused for redo logs, for disks that have redo logs (commit them first)\n"
    "and for streamOptimized; a capacity never shrinks.\n\n"
    "Options:\n"
    "      --root DIR  the folder tree of DISK (default: DISK's folder)\n"
    "  -h, --help      this text\n";

int cmd_grow(int argc, char **argv)
{
    struct open_opts oo = {0};
    int r = simple_opts(argc, argv, grow_help, &oo, NULL, NULL);
    if (r >= 0)
        return r;
    uint64_t size;
    if (optind != argc - 2)
        return cli_error("expects DISK SIZE (see --help)"), 2;
    if (parse_size(argv[optind + 1], &size) < 0)
        return cli_error("'%s' is not a size (try 40G)", argv[optind + 1]), 2;
    struct where w;
    if (locate(argv[optind], &oo, &w) < 0)
        return 1;
    vdk_error err = {0};
    r = vdk_grow(w.st, w.name, size, &err);
    w.st->ops->destroy(w.st);
    return r < 0 ? cli_error("%s", err.message) : 0;
}

static const char rename_help[] =
    "Usage: vdk rename SRC DST\n\n"
    "Rename a disk (VixDiskLib_Rename) within its folder: every file follows\n"
    "(SRC-s001.vmdk becomes DST-s001.vmdk, SRC-flat.vmdk DST-flat.vmdk), the\n"
    "descriptor names them anew, and redo logs beside it get the new parent name.\n"
    "Nothing is overwritten; a failure puts back what had moved.\n\n"
    "Options:\n"
    "  -h, --help      this text\n";

int cmd_rename(int argc, char **argv)
{
    struct open_opts oo = {0};
    int r = simple_opts(argc, argv, rename_help, &oo, NULL, NULL);
    if (r >= 0)
        return r;
    if (optind != argc - 2)
        return cli_error("expects SRC DST (see --help)"), 2;
    struct where w;
    if (locate2(argv[optind], argv[optind + 1], &oo, &w) < 0)
        return 1;
    vdk_error err = {0};
    r = vdk_rename(w.st, w.name, w.other, &err);
    w.st->ops->destroy(w.st);
    return r < 0 ? cli_error("%s", err.message) : 0;
}
