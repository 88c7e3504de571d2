/* vdkfs internals: the tree of disks a mount shows, and its nodes. */
#ifndef VDKFS_H
#define VDKFS_H

#include <pthread.h>
#include <stdint.h>

#include "vdk.h"

/* File kinds inside a disk directory; an inode is (node << 32 | slot). */
enum slot {
    S_DIR = 1, /* the disk directory itself (or the root for node 0) */
    S_FLAT,
    S_INFO,
    S_META,     /* metadata/ */
    S_CHILDREN, /* children/ */
    S_PARTS,    /* partitions/ */
    S_CTL,
    S_KEY = 16,        /* metadata/<key>: S_KEY + key index */
    S_PART = 1u << 20, /* partitions/pN: S_PART + N */
};

struct part {
    uint64_t start, length; /* bytes */
};

struct node {
    unsigned idx;
    char *name;  /* store name of the descriptor */
    char *dname; /* directory name shown */
    int parent;  /* node index, or -1 for a root disk */
    unsigned *kids;
    unsigned n_kids;
    char *error; /* why it cannot be opened, or NULL */
    int gone;    /* no longer in the folder */
    uint64_t capacity;
    pthread_mutex_t lock; /* guards everything below */
    vdk_disk *disk;       /* opened on first use */
    int writable;         /* a leaf on a read-write mount */
    char **keys;          /* metadata key names in a stable order (index = inode slot) */
    unsigned n_keys;
    struct part *parts;
    unsigned n_parts;
    unsigned parts_max; /* most partitions ever shown (never lowered) */
    int parts_loaded;
    char ctl_status[512];
};

struct fs {
    vdk_store *store;
    char root_path[4096];
    const char *only;     /* single-disk mode: show the tree holding this disk */
    const char *snapshot; /* -o snapshot=NAME: only the chain ending at NAME */
    char transport[600];  /* shown in info (VixDiskLib_GetTransportMode) */
    int ro;
    /* Data requests hold it shared; operations that replace a disk's files
     * (grow, shrink, defragment, attach, commit) hold it exclusively. */
    pthread_rwlock_t ops_lock;
    int heavy; /* operations holding or waiting for ops_lock exclusively (atomic) */
    struct fuse_session *se;
    pthread_mutex_t lock; /* the node table */
    struct node **nodes;  /* index 0 is unused (the root) */
    unsigned n_nodes;
    int debug;
};

/* -o server=... : where a remote SOURCE lives. */
struct remote_mount {
    char *server, *user, *password_file, *thumbprint, *cafile, *datacenter, *config;
    char *vm, *vm_snapshot, *redo, *transports;
    struct vdk_conn *conn;
    vdk_store *lower; /* the datastore store under the overlay */
};
/* Connect and set fs->store/only/root_path for a remote SOURCE; -1 after
 * saying why. */
int remote_source(struct fs *fs, struct remote_mount *m, const char *source);
void remote_close(struct remote_mount *m);

/* (Re)read the folder: new disks appear, vanished ones are marked gone. */
int tree_scan(struct fs *fs);
/* Root disks (parent -1, visible) in order; returns the count. */
unsigned tree_roots(struct fs *fs, unsigned *out, unsigned max);
/* Node by index (NULL when out of range or gone). */
struct node *tree_node(struct fs *fs, unsigned idx);
/* Visible children of a node (respecting -o snapshot). */
unsigned tree_kids(struct fs *fs, struct node *n, unsigned *out, unsigned max);
/* The disk handle of a node, opened on first use (NULL with errno set). */
vdk_disk *node_disk(struct fs *fs, struct node *n);
/* One line on stderr, "vdkfs: " first; control characters (which names
 * and values read from a disk may hold) are shown as '?'. */
void vdkfs_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reload the metadata key list from the handle (lock held). */
void node_load_keys(struct node *n);
/* Close every handle cleanly; -1 if any failed. */
int tree_close(struct fs *fs);

/* Partitions of a disk (MBR, extended, GPT) into n->parts (lock held). */
void parts_load(struct node *n);

struct fuse_session;

/* The low-level operations table. */
struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops vdkfs_ops;

#endif
