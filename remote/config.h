/*
 * config.h - the InitEx-style configuration file (internal).
 *
 * Lines "key = value" ('#' starts a comment), with VixDiskLib's key names
 * where they have a meaning here, mapped onto the HTTPS transport:
 *   vixDiskLib.nfc.RequestTimeoutMs   SOAP and HTTP request timeout
 *   vixDiskLib.nfc.ReadTimeoutMs      no data for this long fails a read
 *   vixDiskLib.nfc.WriteTimeoutMs     same for uploads
 *   vixDiskLib.nfc.AcceptTimeoutMs    connect timeout
 *   vixDiskLib.transport.LogLevel     0-6 as VDDK (>= 4 logs requests)
 *   vixDiskLib.disklib.EnableCache    0/1: the block cache of remote reads
 *   vdk.remote.CacheMiB, vdk.remote.ReadAheadKiB, vdk.remote.Connections,
 *   vdk.remote.Retries, vdk.remote.TaskTimeoutS
 *                                     vdk's own tuning keys
 *   vdk.server, vdk.user, vdk.passwordFile, vdk.thumbprint, vdk.caFile,
 *   vdk.datacenter                    connection parameters
 * Unknown keys warn (VDDK has many that mean nothing here); a known key
 * with a bad value is an error.
 */
#ifndef VDK_REMOTE_CONFIG_H
#define VDK_REMOTE_CONFIG_H

#include <stddef.h>

struct rconfig {
    long request_timeout_ms;
    long read_timeout_ms;
    long write_timeout_ms;
    long connect_timeout_ms;
    int log_level;  /* VDDK's 0..6 */
    int cache;      /* 1: block cache on */
    long cache_mib; /* cache budget per datastore store */
    long readahead_kib;
    int connections; /* HTTP handles kept alive */
    int retries;
    long task_timeout_s; /* a vSphere task (snapshot, search) ends by then */
    /* connection parameters (vdk.server, ...), "" when not given */
    char server[512], user[256], password_file[1024], thumbprint[160], cafile[1024];
    char datacenter[256];
};

/* Defaults, then the file (when path is not NULL).  Warnings go to warn
 * (one line each); returns 0 or -EINVAL / -errno with err set. */
int rconfig_load(struct rconfig *c, const char *path, void (*warn)(const char *line), char *err,
                 size_t errlen);

#endif
