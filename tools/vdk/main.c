/* vdk: command line for VMware virtual disks. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"info", cmd_info, "show a disk's type, capacity, chain and extents"},
    {"meta", cmd_meta, "list or read the disk database (ddb) keys"},
    {"map", cmd_map, "show which byte ranges are allocated, and in which link"},
    {"create", cmd_create, "create a new empty disk of any type"},
    {"child", cmd_child, "create a redo log (snapshot link) of a disk"},
    {"attach", cmd_attach, "make a disk the parent of a redo log (branch a chain)"},
    {"commit", cmd_commit, "merge a redo log into its parent (delete a snapshot)"},
    {"rename", cmd_rename, "rename a disk and all its files"},
    {"rm", cmd_rm, "remove a disk and all its files"},
    {"changed", cmd_changed, "byte ranges changed since an earlier link of the chain"},
    {"grow", cmd_grow, "make a disk larger"},
    {"shrink", cmd_shrink, "rewrite a sparse disk without unused or zero grains"},
    {"defragment", cmd_defragment, "rewrite a sparse disk with grains in guest order"},
    {"space", cmd_space, "bytes a clone to a given type would take"},
    {"check", cmd_check, "verify a disk's structures; --repair fixes them"},
    {"clone", cmd_clone, "copy a disk (flattening its chain) into a new disk or raw file"},
    {"convert", cmd_clone, "same as clone"},
    {"transports", cmd_transports, "list the transport modes (file, https)"},
    {"vms", cmd_vms, "show a vSphere VM's disks and snapshots"},
    {"ls", cmd_ls, "list a datastore folder"},
    {"snapshot", cmd_snapshot, "list, create or remove a VM's snapshots"},
    {"prepare", cmd_prepare, "PrepareForAccess: keep vCenter from moving a VM's disks"},
    {"end-access", cmd_end_access, "EndAccess: undo prepare"},
    {"upload", cmd_upload, "copy a local disk's files to a datastore (HTTPS PUT)"},
    {"backup", cmd_backup, "copy a VM's disk at a snapshot to a local disk (full or incremental)"},
    {"restore", cmd_restore, "write a local disk or chain to a datastore"},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: vdk COMMAND [OPTIONS] ARGS...\n"
               "       vdk COMMAND --help\n\n"
               "Work with VMware virtual disks (VMDK): every createType, redo-log chains,\n"
               "COWD (vmfsSparse) and seSparse snapshots, locally or on ESXi/vCenter\n"
               "datastores (--server; see vdk info --help).\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nExit status is 0 on success; otherwise one line on stderr says why.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(c, "--version") || !strcmp(c, "-V")) {
        printf("vdk %s\n", VDK_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++) {
        if (!strcmp(c, commands[i].name)) {
            static char cmd[32];
            snprintf(cmd, sizeof(cmd), "vdk %s", c);
            cli_cmd = cmd;
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "vdk: unknown command '%s' (try 'vdk --help')\n", c);
    return 2;
}
