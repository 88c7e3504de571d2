/* vdkfs's remote sources: a disk or folder on an ESXi/vCenter datastore,
 * or a VM's disk (at a snapshot), with writes going to a local redo log. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdk_remote.h"
#include "vdkfs.h"

/* "[ds] folder/disk.vmdk" or, with vm, a disk of the VM (key, index, label
 * or file name), as of its snapshot when one is named. */
static int resolve_vm_disk(vdk_conn *c, const struct remote_mount *m, const char *spec,
                           char *dspath, size_t len)
{
    char vm[128], snap[128];
    vdk_error err = {0};
    if (vdk_vm_find(c, m->vm, vm, sizeof(vm), &err) < 0 ||
        (m->vm_snapshot && vdk_snapshot_find(c, vm, m->vm_snapshot, snap, sizeof(snap), &err) < 0))
        return vdkfs_say("%s", err.message), -1;
    vdk_vm_disk d;
    if (vdk_vm_disk_find(c, vm, m->vm_snapshot ? snap : NULL, spec, &d, &err) < 0)
        return vdkfs_say("%s", err.message), -1;
    snprintf(dspath, len, "%s", d.file);
    return 0;
}

/* Reuse or make the local redo log "<disk>-vdkredo.vmdk" of the remote
 * disk; it becomes the writable leaf. */
static int make_redo(struct fs *fs, const char *name)
{
    char redo[VDK_NAME_MAX];
    size_t k = strlen(name);
    snprintf(redo, sizeof(redo), "%.*s-vdkredo.vmdk", (int)(k > 5 ? k - 5 : k), name);
    struct vdk_stat st;
    if (fs->store->ops->stat(fs->store, redo, &st) == 0)
        return 0;
    vdk_disk *d;
    vdk_error err = {0};
    if (vdk_open_store(fs->store, name, VDK_OPEN_RDONLY, &d, &err) < 0)
        return vdkfs_say("%s", err.message), -1;
    int r = vdk_create_child(d, redo, NULL, NULL, &err);
    vdk_close(d);
    if (r < 0)
        return vdkfs_say("redo log %s/%s: %s", fs->root_path, redo, err.message), -1;
    vdkfs_say("writes go to the local redo log %s/%s", fs->root_path, redo);
    return 0;
}

int remote_source(struct fs *fs, struct remote_mount *m, const char *source)
{
    vdk_conn_params p = {.server = m->server,
                         .user = m->user,
                         .password_file = m->password_file,
                         .thumbprint = m->thumbprint,
                         .cafile = m->cafile,
                         .datacenter = m->datacenter,
                         .config = m->config,
                         .flags = VDK_CONN_READONLY,
                         .transports = m->transports};
    vdk_error err = {0};
    if (vdk_connect(&p, &m->conn, &err) < 0)
        return vdkfs_say("%s", err.message), -1;
    char dspath[4096], ds[256], path[2048];
    if (m->vm) {
        if (resolve_vm_disk(m->conn, m, source, dspath, sizeof(dspath)) < 0)
            return -1;
    } else {
        snprintf(dspath, sizeof(dspath), "%s", source);
    }
    if (vdk_dspath_split(dspath, ds, sizeof(ds), path, sizeof(path)) < 0)
        return vdkfs_say("'%s' is not a datastore path like '[datastore1] vm/vm.vmdk'", dspath), -1;
    size_t pl = strlen(path);
    int folder = !pl || path[pl - 1] == '/' || pl < 5 || strcmp(path + pl - 5, ".vmdk");
    char *slash = strrchr(path, '/');
    const char *name = NULL;
    if (!folder) {
        name = slash ? slash + 1 : path;
        if (slash)
            *slash = '\0';
        else
            path[0] = '\0';
    }
    if (vdk_conn_store(m->conn, ds, path, &m->lower, &err) < 0)
        return vdkfs_say("%s", err.message), -1;
    snprintf(fs->transport, sizeof(fs->transport), "https (%.200s, datastore %.200s)",
             m->server ? m->server : "server from the config file", ds);
    fs->only = name ? strdup(name) : NULL;
    if (!m->redo) {
        if (!fs->ro)
            vdkfs_say("remote disks are mounted read-only; -o redo=DIR keeps writes in a "
                      "local redo log");
        fs->ro = 1;
        fs->store = m->lower;
        snprintf(fs->root_path, sizeof(fs->root_path), "/");
        m->lower = NULL;
        return 0;
    }
    int r = vdk_store_overlay_new(m->lower, m->redo, &fs->store);
    if (r < 0)
        return vdkfs_say("redo folder %s: %s", m->redo, strerror(-r)), -1;
    if (!realpath(m->redo, fs->root_path))
        snprintf(fs->root_path, sizeof(fs->root_path), "%s", m->redo);
    /* Read-only with a redo folder shows what earlier writes left there. */
    if (name && !fs->ro && make_redo(fs, name) < 0)
        return -1;
    return 0;
}

void remote_close(struct remote_mount *m)
{
    if (m->lower)
        m->lower->ops->destroy(m->lower);
    m->lower = NULL;
    vdk_disconnect(m->conn);
    m->conn = NULL;
    char **strs[] = {&m->server, &m->user,       &m->password_file, &m->thumbprint,
                     &m->cafile, &m->datacenter, &m->config,        &m->vm,
                     &m->redo,   &m->transports};
    for (size_t i = 0; i < sizeof(strs) / sizeof(*strs); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}
