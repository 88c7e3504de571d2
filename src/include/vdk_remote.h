/*
 * vdk_remote.h - libvdk's remote half: disks on ESXi hosts and vCenter.
 *
 * Modelled on VixDiskLib_ConnectEx and the vSphere calls a backup needs.  A
 * connection is a logged-in vSphere API session (SOAP on /sdk) plus an HTTPS
 * transport to the datastores (/folder/...).  vdk_conn_store() gives a
 * vdk_store over one datastore, so vdk_open_store() and every operation work
 * on remote disks as on local ones.
 *
 * Datastore paths are written as VMware does: "[datastore1] vm/vm.vmdk".
 * TLS is verified against the system CAs, an extra CA file, or a pinned
 * certificate thumbprint (SHA-1 "AA:BB:..." as VDDK takes it, or SHA-256);
 * an untrusted certificate without a pin is refused.  The password is
 * never logged.
 */
#ifndef VDK_REMOTE_H
#define VDK_REMOTE_H

#include "vdk.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vdk_conn vdk_conn;

typedef struct vdk_conn_params {
    const char *server; /* "host", "host:port" or "https://host[:port]" */
    const char *user;
    const char *password;      /* NULL: read password_file, else $VDK_PASSWORD */
    const char *password_file; /* its first line is the password */
    const char *thumbprint;    /* NULL or the server certificate's SHA-1/SHA-256 */
    const char *cafile;        /* NULL or a PEM file of extra trusted CAs */
    const char *datacenter;    /* NULL: the only one (ESXi: ha-datacenter) */
    const char *config;        /* NULL or an InitEx-style config file; its keys
                                  vdk.server, vdk.user, vdk.passwordFile,
                                  vdk.thumbprint, vdk.caFile and
                                  vdk.datacenter fill in what is NULL here */
    unsigned flags;            /* VDK_CONN_* */
    /* NULL, or the transport modes the caller accepts, ':'-separated as
     * VDDK takes them ("nbdssl:https"); the connection fails unless one of
     * them is offered. */
    const char *transports;
} vdk_conn_params;

enum {
    VDK_CONN_READONLY = 1u << 0, /* refuse every call that changes the server */
};

/* Connect and log in. */
VDK_API int vdk_connect(const vdk_conn_params *p, vdk_conn **out, vdk_error *err);
/* Log out and free the connection; stores made from it must be gone. */
VDK_API void vdk_disconnect(vdk_conn *c);

/* "HostAgent" (ESXi) or "VirtualCenter". */
VDK_API const char *vdk_conn_api_type(const vdk_conn *c);
/* The datacenter the connection works in. */
VDK_API const char *vdk_conn_datacenter(const vdk_conn *c);

/* Transport modes, NULL-terminated: "file", "https" (and later "nbd",
 * "nbdssl", reserved for VMware's NFC protocol). */
VDK_API const char *const *vdk_transport_modes(void);

/* Split "[ds] path/x.vmdk" into ds and path; -VDK_E_INVAL if malformed. */
VDK_API int vdk_dspath_split(const char *dspath, char *ds, size_t dslen, char *path,
                             size_t pathlen);

/* A read-only store over folder 'folder' ("" for the top) of datastore
 * 'ds'; names are paths inside that folder and cannot leave it. */
VDK_API int vdk_conn_store(vdk_conn *c, const char *ds, const char *folder, vdk_store **out,
                           vdk_error *err);

/* A store that writes into the local folder 'local_root' and reads names it
 * does not hold from 'lower' (a remote datastore): redo logs of remote disks
 * live locally while their parents stay remote.  Neither store is owned. */
VDK_API int vdk_store_overlay_new(vdk_store *lower, const char *local_root, vdk_store **out);

/* Upload size bytes of file 'name' of 'src' to "[ds] path" with PUT. */
VDK_API int vdk_upload_file(vdk_conn *c, vdk_store *src, const char *name, const char *dspath,
                            vdk_progress_cb cb, void *arg, vdk_error *err);

/* Virtual machines, snapshots and disks ---------------------------------- */

/* Find a VM by moref ("vm-42"), inventory path ("/DC/vm/folder/name") or
 * name; copies its moref. */
VDK_API int vdk_vm_find(vdk_conn *c, const char *spec, char *moref, size_t len, vdk_error *err);

typedef struct vdk_vm_disk {
    int key;             /* device key (2000, ...) */
    uint64_t capacity;   /* bytes */
    char file[1024];     /* "[ds] vm/vm-000001.vmdk": the disk's top link */
    char change_id[128]; /* backing changeId, "" if change tracking is off */
    char label[128];     /* "Hard disk 1" */
} vdk_vm_disk;

/* The VM's disks (at snapshot 'snap', a moref, or now when NULL).  *out is
 * malloc'd; free() it. */
VDK_API int vdk_vm_disks(vdk_conn *c, const char *vm, const char *snap, vdk_vm_disk **out,
                         unsigned *count, vdk_error *err);

/* One disk of the VM (at snapshot 'snap' or now), named by device key
 * ("2000"), index ("0": the first disk), label ("Hard disk 1"), backing
 * file ("[ds] vm/vm.vmdk") or its file name ("vm.vmdk"). */
VDK_API int vdk_vm_disk_find(vdk_conn *c, const char *vm, const char *snap, const char *spec,
                             vdk_vm_disk *out, vdk_error *err);

typedef struct vdk_snapshot {
    char moref[128];
    char name[256];
    char description[512];
    char created[64]; /* ISO 8601 as the server gives it */
    int id;
    unsigned depth; /* 0 for a root snapshot */
    int current;    /* the VM runs from this snapshot */
    int quiesced;
} vdk_snapshot;

/* The snapshot tree, depth first.  *out is malloc'd; free() it. */
VDK_API int vdk_snapshot_list(vdk_conn *c, const char *vm, vdk_snapshot **out, unsigned *count,
                              vdk_error *err);
/* Find a snapshot of vm by moref or name (a unique name). */
VDK_API int vdk_snapshot_find(vdk_conn *c, const char *vm, const char *spec, char *moref,
                              size_t len, vdk_error *err);

enum {
    VDK_SNAP_QUIESCE = 1u << 0, /* ask VMware Tools to quiesce the guest */
    VDK_SNAP_MEMORY = 1u << 1,  /* include the memory state */
};
/* Take a snapshot and wait for it; cb gets done/total = percent/100. */
VDK_API int vdk_snapshot_create(vdk_conn *c, const char *vm, const char *name, const char *desc,
                                unsigned flags, vdk_progress_cb cb, void *arg, char *moref,
                                size_t len, vdk_error *err);
VDK_API int vdk_snapshot_remove(vdk_conn *c, const char *snap, int children, vdk_progress_cb cb,
                                void *arg, vdk_error *err);

/* QueryChangedDiskAreas over the whole disk: cb gets each changed range
 * (kind VDK_RANGE_DATA).  change_id "*" asks for every allocated area. */
VDK_API int vdk_changed_areas(vdk_conn *c, const char *vm, const char *snap, int disk_key,
                              uint64_t capacity, const char *change_id, vdk_range_cb cb, void *arg,
                              vdk_error *err);

/* PrepareForAccess / EndAccess: stop (and allow again) vCenter from moving
 * the VM's disks while a backup reads them.  identity names the caller. */
VDK_API int vdk_prepare_for_access(vdk_conn *c, const char *vm, const char *identity,
                                   vdk_error *err);
VDK_API int vdk_end_access(vdk_conn *c, const char *vm, const char *identity, vdk_error *err);

#ifdef __cplusplus
}
#endif
#endif
