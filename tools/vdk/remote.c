/* The vdk command line's side of remote disks: connection options, one
 * connection per process, opening "[datastore] path" disks. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vdk_remote.h"

static vdk_conn *conn;
static vdk_store *remote_store;

int cli_remote_option(int opt, struct remote_opts *r)
{
    switch (opt) {
    case OPT_SERVER:
        r->server = optarg;
        return 1;
    case OPT_USER:
        r->user = optarg;
        return 1;
    case OPT_PWFILE:
        r->password_file = optarg;
        return 1;
    case OPT_THUMB:
        r->thumbprint = optarg;
        return 1;
    case OPT_CAFILE:
        r->cafile = optarg;
        return 1;
    case OPT_DC:
        r->datacenter = optarg;
        return 1;
    case OPT_CONFIG:
        r->config = optarg;
        return 1;
    case OPT_REMOTE_RO:
        r->readonly = 1;
        return 1;
    case OPT_TRANSPORTS:
        r->transports = optarg;
        return 1;
    }
    return 0;
}

struct option *cli_with_remote_opts(const struct option *own, size_t n)
{
    static struct option all[48];
    static const struct option remote[] = {
        CLI_REMOTE_LONGOPTS, {"help", no_argument, NULL, 'h'}, {"quiet", no_argument, NULL, 'q'}};
    size_t k = 0;
    for (size_t i = 0; i < n && k < 40; i++)
        all[k++] = own[i];
    for (size_t i = 0; i < sizeof(remote) / sizeof(*remote); i++)
        all[k++] = remote[i];
    all[k] = (struct option){0};
    return all;
}

static void log_line(const char *line)
{
    fprintf(stderr, "%s: %s\n", cli_cmd, line);
}

vdk_conn *cli_connect(const struct remote_opts *r)
{
    if (conn)
        return conn;
    vdk_set_log(log_line);
    vdk_conn_params p = {.server = r->server,
                         .user = r->user,
                         .password_file = r->password_file,
                         .thumbprint = r->thumbprint,
                         .cafile = r->cafile,
                         .datacenter = r->datacenter,
                         .config = r->config,
                         .flags = r->readonly ? VDK_CONN_READONLY : 0,
                         .transports = r->transports};
    vdk_error err = {0};
    if (vdk_connect(&p, &conn, &err) < 0) {
        cli_error("%s", err.message);
        conn = NULL;
    }
    return conn;
}

void cli_disconnect(void)
{
    if (remote_store)
        remote_store->ops->destroy(remote_store);
    remote_store = NULL;
    vdk_disconnect(conn);
    conn = NULL;
}

vdk_disk *cli_open_remote(const char *dspath, const struct open_opts *o)
{
    char ds[256], path[2048];
    if (vdk_dspath_split(dspath, ds, sizeof(ds), path, sizeof(path)) < 0 || !path[0]) {
        cli_error("'%s' is not a datastore path like '[datastore1] vm/vm.vmdk'", dspath);
        return NULL;
    }
    if (!(o->flags & VDK_OPEN_RDONLY)) {
        cli_error("%s: remote disks are opened read-only; write through a local redo log "
                  "(vdkfs -o redo=DIR) or 'vdk backup' a copy",
                  dspath);
        return NULL;
    }
    vdk_conn *c = cli_connect(&o->remote);
    if (!c)
        return NULL;
    /* The disk's folder is the store: its parents and extents live there. */
    char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    if (slash)
        *slash = '\0';
    vdk_error err = {0};
    if (vdk_conn_store(c, ds, slash ? path : "", &remote_store, &err) < 0) {
        cli_error("%s", err.message);
        return NULL;
    }
    vdk_disk *d = NULL;
    if (vdk_open_store(remote_store, name, o->flags, &d, &err) < 0) {
        cli_error("%s: %s", dspath, err.message);
        return NULL;
    }
    return d;
}
