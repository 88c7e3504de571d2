/* conn.h - a vSphere connection's internals, shared by the remote files. */
#ifndef VDK_REMOTE_CONN_H
#define VDK_REMOTE_CONN_H

#include "config.h"
#include "http.h"
#include "soap.h"
#include "vdk_remote.h"

struct vdk_conn {
    struct rvim vim;
    struct rhttp *http;
    struct rconfig cfg;
    char base[512];       /* scheme://host:port */
    char datacenter[256]; /* the dcPath of datastore URLs */
    unsigned flags;
};

/* "/folder/PATH?dcPath=DC&dsName=DS" for a datastore file. */
int rconn_folder_url(const vdk_conn *c, const char *ds, const char *path, char *out, size_t outlen);

#endif
