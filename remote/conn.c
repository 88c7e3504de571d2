/* conn.c - VixDiskLib_ConnectEx: log in to ESXi or vCenter, pick the
 * datacenter, and name datastore files. */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "util.h"
#include "xml.h"

static void log_line(const char *line)
{
    vdk_log("%s", line);
}

/* VDDK's LogLevel 0..6 onto the transport's 0..3. */
static int http_log_level(int vddk)
{
    return vddk >= 5 ? 3 : vddk >= 4 ? 2 : vddk >= 1 ? 1 : 0;
}

static int make_base(const char *server, char *out, size_t len)
{
    const char *scheme = strstr(server, "://") ? "" : "https://";
    int n = snprintf(out, len, "%s%s", scheme, server);
    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    /* "https://vc/sdk" and "https://vc/": the SDK path is ours to add. */
    char *host = strstr(out, "://") + 3;
    char *slash = strchr(host, '/');
    if (slash)
        *slash = '\0';
    if (!*host || (strncmp(out, "https://", 8) && strncmp(out, "http://", 7)))
        return -EINVAL;
    return 0;
}

struct dc_pick {
    const char *want;
    char first[256];
    char names[512];
    unsigned count, found;
};

static int dc_cb(void *arg, xmlNodePtr obj)
{
    struct dc_pick *p = arg;
    char name[256];
    rxml_text(rvim_prop(obj, "name"), name, sizeof(name));
    if (!p->count++)
        snprintf(p->first, sizeof(p->first), "%s", name);
    size_t k = strlen(p->names);
    snprintf(p->names + k, sizeof(p->names) - k, "%s%s", k ? ", " : "", name);
    if (p->want && !strcmp(p->want, name))
        p->found = 1;
    return 0;
}

static int pick_datacenter(vdk_conn *c, const char *want, vdk_error *err)
{
    static const char *const paths[] = {"name", NULL};
    struct dc_pick p = {.want = want};
    char msg[512];
    int r = rvim_each(&c->vim, "Datacenter", paths, dc_cb, &p, msg, sizeof(msg));
    if (r < 0)
        return vdk_fail(err, vdk_status_from_errno(r), "%s", msg);
    if (want && !p.found)
        return vdk_fail(err, -VDK_E_NOENT, "%s: no datacenter '%s' (there are: %s)", c->base, want,
                        p.count ? p.names : "none");
    if (!want && p.count != 1)
        return vdk_fail(err, -VDK_E_INVAL,
                        p.count ? "%s has several datacenters (%s): choose one with --datacenter"
                                : "%s has no datacenter%s",
                        c->base, p.names);
    snprintf(c->datacenter, sizeof(c->datacenter), "%s", want ? want : p.first);
    return 0;
}

static const char *pick(const char *given, const char *from_config)
{
    return given && *given ? given : *from_config ? from_config : NULL;
}

/* The first line of a password file, without its line end. */
static int read_password(const char *path, char *out, size_t len, vdk_error *err)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return vdk_fail(err, vdk_status_from_errno(-errno), "password file %s: %s", path,
                        strerror(errno));
    setvbuf(f, NULL, _IONBF, 0); /* no stdio copy of the password left behind */
    int ok = fgets(out, (int)len, f) != NULL;
    fclose(f);
    if (!ok)
        return vdk_fail(err, VDK_E_INVAL, "password file %s is empty", path);
    size_t n = strcspn(out, "\r\n");
    if (!out[n] && n == len - 1)
        return vdk_fail(err, VDK_E_INVAL, "password file %s: the password is longer than %zu bytes",
                        path, len - 2);
    out[n] = '\0';
    return 0;
}

static int open_session(vdk_conn *c, const vdk_conn_params *p, const char *password, vdk_error *err)
{
    char msg[512];
    const char *thumb = pick(p->thumbprint, c->cfg.thumbprint);
    struct rhttp_opts o = {.base = c->base,
                           .thumbprint = thumb,
                           .cafile = pick(p->cafile, c->cfg.cafile),
                           .connect_timeout_ms = c->cfg.connect_timeout_ms,
                           .read_timeout_ms = c->cfg.read_timeout_ms,
                           .write_timeout_ms = c->cfg.write_timeout_ms,
                           .retries = (unsigned)c->cfg.retries,
                           .pool = (unsigned)c->cfg.connections + 1,
                           .log_level = http_log_level(c->cfg.log_level),
                           .log = log_line,
                           .request_timeout_ms = c->cfg.request_timeout_ms};
    int r = rhttp_new(&o, &c->http, msg, sizeof(msg));
    if (r < 0)
        return vdk_fail(err, vdk_status_from_errno(r), "%s: %s", c->base, msg);
    c->vim.http = c->http;
    c->vim.task_timeout_s = c->cfg.task_timeout_s;
    r = rvim_login(&c->vim, pick(p->user, c->cfg.user), password, msg, sizeof(msg));
    if (r < 0)
        return vdk_fail(err, vdk_status_from_errno(r), "%s: %s", c->base, msg);
    const char *dc = pick(p->datacenter, c->cfg.datacenter);
    return pick_datacenter(c, dc, err);
}

/* Remote disks travel over "https"; a list without it cannot be served. */
static int check_transports(const char *list, vdk_error *err)
{
    if (!list || !*list)
        return 0;
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", list);
    for (char *save = NULL, *m = strtok_r(copy, ":", &save); m; m = strtok_r(NULL, ":", &save))
        if (!strcmp(m, "https"))
            return 0;
    return vdk_fail(err, VDK_E_UNSUPPORTED,
                    "none of the transports '%s' is available for remote disks: vdk offers https "
                    "(nbd and nbdssl, VMware's NFC protocol, are not implemented)",
                    list);
}

int vdk_connect(const vdk_conn_params *p, vdk_conn **out, vdk_error *err)
{
    *out = NULL;
    int tr = check_transports(p->transports, err);
    if (tr < 0)
        return tr;
    vdk_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    c->flags = p->flags;
    char msg[512], pwbuf[512];
    int r = rconfig_load(&c->cfg, p->config, log_line, msg, sizeof(msg));
    if (r < 0) {
        free(c);
        return vdk_fail(err, VDK_E_INVAL, "%s", msg);
    }
    const char *server = pick(p->server, c->cfg.server);
    const char *pwfile = pick(p->password_file, c->cfg.password_file);
    const char *password = p->password;
    r = 0;
    if (!server)
        r = vdk_fail(err, VDK_E_INVAL, "no server given");
    else if (!pick(p->user, c->cfg.user))
        r = vdk_fail(err, VDK_E_INVAL, "%s: no user name given", server);
    else if (make_base(server, c->base, sizeof(c->base)) < 0)
        r = vdk_fail(err, VDK_E_INVAL, "'%s' is not a server name or https:// URL", server);
    if (!r && !password && pwfile && (r = read_password(pwfile, pwbuf, sizeof(pwbuf), err)) == 0)
        password = pwbuf;
    if (!r && !password && !(password = getenv("VDK_PASSWORD")))
        r = vdk_fail(err, VDK_E_INVAL,
                     "%s: no password (give a password file, or set VDK_PASSWORD)", server);
    if (!r)
        r = open_session(c, p, password, err);
    memset(pwbuf, 0, sizeof(pwbuf));
    if (r < 0) {
        vdk_disconnect(c);
        return r;
    }
    *out = c;
    return 0;
}

void vdk_disconnect(vdk_conn *c)
{
    if (!c)
        return;
    if (c->vim.http)
        rvim_logout(&c->vim);
    if (c->http)
        rhttp_free(c->http);
    free(c);
}

const char *vdk_conn_api_type(const vdk_conn *c)
{
    return c->vim.api_type;
}

const char *vdk_conn_datacenter(const vdk_conn *c)
{
    return c->datacenter;
}

const char *const *vdk_transport_modes(void)
{
    static const char *const modes[] = {"file", "https", NULL};
    return modes;
}

int vdk_dspath_split(const char *dspath, char *ds, size_t dslen, char *path, size_t pathlen)
{
    const char *close = dspath[0] == '[' ? strchr(dspath, ']') : NULL;
    if (!close || close == dspath + 1)
        return -VDK_E_INVAL;
    size_t k = (size_t)(close - dspath - 1);
    if (k >= dslen)
        return -VDK_E_INVAL;
    memcpy(ds, dspath + 1, k);
    ds[k] = '\0';
    const char *rest = close + 1;
    while (*rest == ' ')
        rest++;
    if ((size_t)snprintf(path, pathlen, "%s", rest) >= pathlen)
        return -VDK_E_INVAL;
    return 0;
}

int rconn_folder_url(const vdk_conn *c, const char *ds, const char *path, char *out, size_t outlen)
{
    char p[2048], d[512], s[512];
    if (rhttp_escape(path, 0, p, sizeof(p)) < 0 ||
        rhttp_escape(c->datacenter, 1, d, sizeof(d)) < 0 || rhttp_escape(ds, 1, s, sizeof(s)) < 0)
        return -ENAMETOOLONG;
    int n = snprintf(out, outlen, "/folder/%s?dcPath=%s&dsName=%s", p, d, s);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}
