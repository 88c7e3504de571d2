/* config.c - parse the InitEx-style configuration file. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct key {
    const char *name;
    size_t off;
    int is_int; /* else long */
    long min, max;
} keys[] = {
    {"vixDiskLib.nfc.RequestTimeoutMs", offsetof(struct rconfig, request_timeout_ms), 0, 1,
     86400000},
    {"vixDiskLib.nfc.ReadTimeoutMs", offsetof(struct rconfig, read_timeout_ms), 0, 1, 86400000},
    {"vixDiskLib.nfc.WriteTimeoutMs", offsetof(struct rconfig, write_timeout_ms), 0, 1, 86400000},
    {"vixDiskLib.nfc.AcceptTimeoutMs", offsetof(struct rconfig, connect_timeout_ms), 0, 1,
     86400000},
    {"vixDiskLib.transport.LogLevel", offsetof(struct rconfig, log_level), 1, 0, 6},
    {"vixDiskLib.disklib.EnableCache", offsetof(struct rconfig, cache), 1, 0, 1},
    {"vdk.remote.CacheMiB", offsetof(struct rconfig, cache_mib), 0, 1, 65536},
    {"vdk.remote.ReadAheadKiB", offsetof(struct rconfig, readahead_kib), 0, 0, 1048576},
    {"vdk.remote.Connections", offsetof(struct rconfig, connections), 1, 1, 64},
    {"vdk.remote.Retries", offsetof(struct rconfig, retries), 1, 0, 100},
    {"vdk.remote.TaskTimeoutS", offsetof(struct rconfig, task_timeout_s), 0, 1, 604800},
};

static const struct skey {
    const char *name;
    size_t off, len;
} skeys[] = {
    {"vdk.server", offsetof(struct rconfig, server), sizeof(((struct rconfig *)0)->server)},
    {"vdk.user", offsetof(struct rconfig, user), sizeof(((struct rconfig *)0)->user)},
    {"vdk.passwordFile", offsetof(struct rconfig, password_file),
     sizeof(((struct rconfig *)0)->password_file)},
    {"vdk.thumbprint", offsetof(struct rconfig, thumbprint),
     sizeof(((struct rconfig *)0)->thumbprint)},
    {"vdk.caFile", offsetof(struct rconfig, cafile), sizeof(((struct rconfig *)0)->cafile)},
    {"vdk.datacenter", offsetof(struct rconfig, datacenter),
     sizeof(((struct rconfig *)0)->datacenter)},
};

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    /* VDDK's files quote values now and then: "value". */
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

static int set_key(struct rconfig *c, const char *k, const char *v, unsigned line,
                   void (*warn)(const char *), char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof(skeys) / sizeof(*skeys); i++) {
        if (strcasecmp(skeys[i].name, k))
            continue;
        if (strlen(v) >= skeys[i].len) {
            snprintf(err, errlen, "config line %u: %s is too long", line, skeys[i].name);
            return -EINVAL;
        }
        snprintf((char *)c + skeys[i].off, skeys[i].len, "%s", v);
        return 0;
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
        if (strcasecmp(keys[i].name, k))
            continue;
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (!*v || *end || errno || n < keys[i].min || n > keys[i].max) {
            snprintf(err, errlen,
                     "config line %u: %s wants a whole number from %ld to %ld, not '%.64s'", line,
                     keys[i].name, keys[i].min, keys[i].max, v);
            return -EINVAL;
        }
        if (keys[i].is_int)
            *(int *)((char *)c + keys[i].off) = (int)n;
        else
            *(long *)((char *)c + keys[i].off) = n;
        return 0;
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "config line %u: key '%.100s' has no meaning here, ignored", line,
             k);
    if (warn)
        warn(msg);
    return 0;
}

static int parse_line(struct rconfig *c, char *s, unsigned line, void (*warn)(const char *),
                      char *err, size_t errlen)
{
    char *hash = strchr(s, '#');
    if (hash)
        *hash = '\0';
    s = trim(s);
    if (!*s)
        return 0;
    char *eq = strchr(s, '=');
    if (!eq) {
        snprintf(err, errlen, "config line %u: expected 'key = value'", line);
        return -EINVAL;
    }
    *eq = '\0';
    return set_key(c, trim(s), trim(eq + 1), line, warn, err, errlen);
}

int rconfig_load(struct rconfig *c, const char *path, void (*warn)(const char *line), char *err,
                 size_t errlen)
{
    *c = (struct rconfig){.request_timeout_ms = 180000,
                          .read_timeout_ms = 60000,
                          .write_timeout_ms = 60000,
                          .connect_timeout_ms = 30000,
                          .log_level = 1,
                          .cache = 1,
                          .cache_mib = 192,
                          .readahead_kib = 65536,
                          .connections = 4,
                          .retries = 3,
                          .task_timeout_s = 6 * 3600};
    if (!path)
        return 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    char buf[1024];
    unsigned line = 0;
    int rc = 0;
    while (!rc && fgets(buf, sizeof(buf), f)) {
        line++;
        if (!strchr(buf, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s: line %u is too long", path, line);
            rc = -EINVAL;
            break;
        }
        rc = parse_line(c, buf, line, warn, err, errlen);
    }
    fclose(f);
    if (rc < 0 && strncmp(err, path, strlen(path))) {
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "%s: %s", path, err);
        snprintf(err, errlen, "%s", tmp);
    }
    return rc;
}
