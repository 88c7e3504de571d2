/* dsstore.c - a vdk_store over one datastore of a vSphere connection:
 * stat with HEAD, reads with ranged GETs through the block cache, listing
 * with HostDatastoreBrowser.SearchDatastore_Task.  It is read-only: writes
 * to remote disks go to local redo logs (see overlay.c), and whole files
 * reach a datastore with vdk_upload_file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bcache.h"
#include "engine.h"
#include "conn.h"
#include "util.h"
#include "xml.h"

#define BLOCK (256u << 10)

struct ds_store {
    vdk_store base;
    vdk_conn *c;
    char ds[256];
    char folder[1024]; /* "" or "dir/sub": the store's root in the datastore */
    char browser[128];
    struct bcache *cache; /* NULL when the cache is off */
};

struct ds_file {
    vdk_file base;
    struct ds_store *s;
    struct bcache_file cf;
    char url[3072];
};

static int64_t fetch(void *file, void *buf, size_t len, uint64_t off)
{
    struct ds_file *f = file;
    char err[512];
    unsigned gen = rvim_generation(&f->s->c->vim);
    int64_t r = rhttp_get_range(f->s->c->http, f->url, buf, len, off, err, sizeof(err));
    /* vCenter ends idle sessions (30 minutes by default): a mount left
     * alone that long logs in again on its next read. */
    if (r == -EKEYEXPIRED && rvim_relogin(&f->s->c->vim, gen, err, sizeof(err)) == 0)
        r = rhttp_get_range(f->s->c->http, f->url, buf, len, off, err, sizeof(err));
    if (r == -EKEYEXPIRED)
        r = -EACCES;
    /* HEAD gave the size: ending early is the server's fault, not a
     * damaged disk. */
    if (r >= 0 && (uint64_t)r < len && off + (uint64_t)r < f->cf.size) {
        snprintf(err, sizeof(err), "GET %.300s: %lld of %zu bytes at %llu arrived", f->url,
                 (long long)r, len, (unsigned long long)off);
        r = -EIO;
    }
    if (r < 0)
        vdk_log("[%s] %s", f->s->ds, err);
    return r;
}

static int64_t ds_pread(vdk_file *vf, void *buf, size_t len, uint64_t off)
{
    struct ds_file *f = (struct ds_file *)vf;
    if (f->s->cache)
        return bcache_read(f->s->cache, &f->cf, buf, len, off);
    if (off >= f->cf.size)
        return 0;
    size_t want = len < f->cf.size - off ? len : (size_t)(f->cf.size - off);
    return fetch(f, buf, want, off);
}

static int64_t ds_pwrite(vdk_file *vf, const void *buf, size_t len, uint64_t off)
{
    return -EROFS;
}

static int ds_flush(vdk_file *vf)
{
    return 0;
}

static int ds_size(vdk_file *vf, uint64_t *out)
{
    *out = ((struct ds_file *)vf)->cf.size;
    return 0;
}

static int ds_truncate(vdk_file *vf, uint64_t size)
{
    return -EROFS;
}

static void ds_close(vdk_file *vf)
{
    struct ds_file *f = (struct ds_file *)vf;
    if (f->s->cache)
        bcache_detach(f->s->cache, &f->cf);
    free(f);
}

/* Lent bytes are the cache's own: a whole read of a cached remote disk
 * then goes to the reader with one copy fewer. */
static int64_t ds_pin(vdk_file *vf, size_t len, uint64_t off, const void **mem, void **pin)
{
    struct ds_file *f = (struct ds_file *)vf;
    if (!f->s->cache)
        return -EOPNOTSUPP;
    return bcache_pin(f->s->cache, &f->cf, len, off, mem, pin);
}

static void ds_unpin(vdk_file *vf, void *pin)
{
    struct ds_file *f = (struct ds_file *)vf;
    bcache_unpin(f->s->cache, pin);
}

static const struct vdk_file_ops file_ops = {
    .version = 3,
    .pread = ds_pread,
    .pwrite = ds_pwrite,
    .flush = ds_flush,
    .size = ds_size,
    .truncate = ds_truncate,
    .close = ds_close,
    .pin = ds_pin,
    .unpin = ds_unpin,
};

/* Names stay inside the datastore: no absolute paths, no "..". */
static int check_name(const char *name)
{
    if (name[0] == '/')
        return -EXDEV;
    for (const char *p = name; *p;) {
        const char *slash = strchr(p, '/');
        size_t k = slash ? (size_t)(slash - p) : strlen(p);
        if (k == 2 && p[0] == '.' && p[1] == '.')
            return -EXDEV;
        p += k + (slash != NULL);
    }
    return 0;
}

/* The datastore path of a store name. */
static int full_name(const struct ds_store *s, const char *name, char *out, size_t len)
{
    int r = check_name(name);
    if (r < 0)
        return r;
    int n = snprintf(out, len, "%s%s%s", s->folder, s->folder[0] && name[0] ? "/" : "", name);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int head(struct ds_store *s, const char *name, char *url, size_t ulen,
                struct rhttp_reply *rep)
{
    char path[2048];
    int r = full_name(s, name, path, sizeof(path));
    if (r < 0)
        return r;
    r = rconn_folder_url(s->c, s->ds, path, url, ulen);
    if (r < 0)
        return r;
    char err[512];
    unsigned gen = rvim_generation(&s->c->vim);
    r = rhttp_head(s->c->http, url, rep, err, sizeof(err));
    if (r == -EKEYEXPIRED && rvim_relogin(&s->c->vim, gen, err, sizeof(err)) == 0)
        r = rhttp_head(s->c->http, url, rep, err, sizeof(err));
    if (r == -EKEYEXPIRED)
        r = -EACCES;
    if (r < 0 && r != -ENOENT)
        vdk_log("[%s] %s: %s", s->ds, name, err);
    return r;
}

static int ds_open(vdk_store *vs, const char *name, unsigned flags, vdk_file **out)
{
    struct ds_store *s = (struct ds_store *)vs;
    if (flags & (VDK_STORE_WRITE | VDK_STORE_CREATE))
        return -EROFS;
    struct ds_file *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    struct rhttp_reply rep = {0};
    int r = head(s, name, f->url, sizeof(f->url), &rep);
    struct rhttp_reply got = rep; /* the free may clear it */
    rhttp_reply_free(&rep);
    rep = got;
    if (r == 0 && rep.status >= 300 && rep.status < 400)
        r = -EISDIR;
    if (r < 0 || !rep.has_length) {
        free(f);
        return r < 0 ? r : -EIO;
    }
    f->base.ops = &file_ops;
    f->s = s;
    f->cf.file = f;
    f->cf.size = rep.length;
    if (s->cache)
        bcache_attach(s->cache, &f->cf);
    *out = &f->base;
    return 0;
}

static int ds_stat(vdk_store *vs, const char *name, struct vdk_stat *st)
{
    struct ds_store *s = (struct ds_store *)vs;
    memset(st, 0, sizeof(*st));
    if (!*name) {
        st->is_dir = 1;
        return 0;
    }
    char url[3072];
    struct rhttp_reply rep = {0};
    int r = head(s, name, url, sizeof(url), &rep);
    struct rhttp_reply got = rep;
    rhttp_reply_free(&rep);
    rep = got;
    if (r < 0)
        return r;
    /* A folder answers with a redirect to "name/" or an HTML listing
     * without a length. */
    st->is_dir = (rep.status >= 300 && rep.status < 400) || !rep.has_length;
    st->size = st->is_dir ? 0 : rep.length;
    st->mtime = rep.mtime;
    return 0;
}

static int64_t parse_time(const char *t)
{
    struct tm tm = {0};
    if (!strptime(t, "%Y-%m-%dT%H:%M:%S", &tm))
        return 0;
    return (int64_t)timegm(&tm);
}

static int ds_list(vdk_store *vs, const char *dir, vdk_list_cb cb, void *arg)
{
    struct ds_store *s = (struct ds_store *)vs;
    char rel[2048], path[2400], msg[512], task[128];
    int r = full_name(s, dir, rel, sizeof(rel));
    if (r < 0)
        return r;
    snprintf(path, sizeof(path), "[%s] %s", s->ds, rel);
    struct rbuf b = {0};
    rbuf_moref(&b, "_this", "HostDatastoreBrowser", s->browser);
    rbuf_elem(&b, "datastorePath", path);
    rbuf_add(&b, "<searchSpec><details><fileType>false</fileType><fileSize>true</fileSize>"
                 "<modification>true</modification><fileOwner>false</fileOwner></details>"
                 "<matchPattern>*</matchPattern>"
                 "</searchSpec>");
    xmlDocPtr doc;
    xmlNodePtr ret;
    r = rvim_call_buf(&s->c->vim, "SearchDatastore_Task", &b, &doc, &ret, msg, sizeof(msg));
    if (r < 0) {
        vdk_log("[%s] listing %s: %s", s->ds, dir, msg);
        return r;
    }
    rxml_ptext(ret, "returnval", task, sizeof(task));
    xmlFreeDoc(doc);
    xmlNodePtr res;
    r = rvim_wait_task(&s->c->vim, task, NULL, NULL, NULL, 0, &doc, &res, msg, sizeof(msg));
    if (r < 0) {
        /* A missing folder fails the task with FileNotFound. */
        if (strstr(msg, "(FileNotFound)"))
            return -ENOENT;
        vdk_log("[%s] listing %s: %s", s->ds, dir, msg);
        return r;
    }
    for (xmlNodePtr f = rxml_child(res, "file"); f && !r; f = rxml_next_same(f)) {
        char name[1024], type[64], t[64];
        rxml_ptext(f, "path", name, sizeof(name));
        if (!name[0] || strchr(name, '/'))
            continue;
        struct vdk_stat st = {0};
        st.is_dir = !strcmp(rxml_attr(f, "type", type, sizeof(type)), "FolderFileInfo");
        int64_t size = rxml_pint(f, "fileSize", 0);
        st.size = st.is_dir || size < 0 ? 0 : (uint64_t)size;
        st.mtime = parse_time(rxml_ptext(f, "modification", t, sizeof(t)));
        r = cb(arg, name, &st);
    }
    xmlFreeDoc(doc);
    return r;
}

static int ds_rename(vdk_store *vs, const char *from, const char *to)
{
    return -EROFS;
}

static int ds_unlink(vdk_store *vs, const char *name)
{
    return -EROFS;
}

static int ds_sync_dir(vdk_store *vs, const char *dir)
{
    return 0;
}

/* Parent hints written on ESXi are often "/vmfs/volumes/<ds>/vm/x.vmdk" or
 * "[ds] vm/x.vmdk": both name a file of this datastore. */
static int ds_relativize(vdk_store *vs, const char *abs, char *out, size_t outlen)
{
    struct ds_store *s = (struct ds_store *)vs;
    char ds[256], path[2048];
    if (vdk_dspath_split(abs, ds, sizeof(ds), path, sizeof(path)) == 0) {
        if (strcmp(ds, s->ds))
            return -EXDEV;
    } else {
        char prefix[300];
        snprintf(prefix, sizeof(prefix), "/vmfs/volumes/%s/", s->ds);
        size_t k = strlen(prefix);
        if (strncmp(abs, prefix, k))
            return -EXDEV;
        snprintf(path, sizeof(path), "%s", abs + k);
    }
    if (check_name(path) < 0)
        return -EXDEV;
    const char *rest = path;
    size_t k = strlen(s->folder);
    if (k) {
        if (strncmp(path, s->folder, k) || path[k] != '/')
            return -EXDEV;
        rest = path + k + 1;
    }
    return (size_t)snprintf(out, outlen, "%s", rest) >= outlen ? -ENAMETOOLONG : 0;
}

static void ds_destroy(vdk_store *vs)
{
    struct ds_store *s = (struct ds_store *)vs;
    bcache_free(s->cache);
    free(s);
}

static const struct vdk_store_ops store_ops = {
    1, ds_open, ds_stat, ds_list, ds_rename, ds_unlink, ds_sync_dir, ds_relativize, ds_destroy};

struct ds_pick {
    const char *want;
    char browser[128];
    char names[512];
    int found;
};

static int ds_cb(void *arg, xmlNodePtr obj)
{
    struct ds_pick *p = arg;
    char name[256];
    rxml_text(rvim_prop(obj, "name"), name, sizeof(name));
    size_t k = strlen(p->names);
    snprintf(p->names + k, sizeof(p->names) - k, "%s%s", k ? ", " : "", name);
    if (!strcmp(name, p->want)) {
        p->found = 1;
        rxml_text(rvim_prop(obj, "browser"), p->browser, sizeof(p->browser));
    }
    return 0;
}

int vdk_conn_store(vdk_conn *c, const char *ds, const char *folder, vdk_store **out, vdk_error *err)
{
    size_t fl = folder ? strlen(folder) : 0;
    while (fl && folder[fl - 1] == '/')
        fl--;
    if (fl >= sizeof(((struct ds_store *)0)->folder) || (folder && check_name(folder) < 0))
        return vdk_fail(err, VDK_E_ESCAPE, "[%s] %s: not a folder inside the datastore", ds,
                        folder);
    static const char *const paths[] = {"name", "browser", NULL};
    struct ds_pick p = {.want = ds};
    char msg[512];
    int r = rvim_each(&c->vim, "Datastore", paths, ds_cb, &p, msg, sizeof(msg));
    if (r < 0)
        return vdk_fail(err, vdk_status_from_errno(r), "%s", msg);
    if (!p.found)
        return vdk_fail(err, VDK_E_NOENT, "no datastore '%s' (there are: %s)", ds,
                        p.names[0] ? p.names : "none");
    struct ds_store *s = calloc(1, sizeof(*s));
    if (!s)
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    s->base.ops = &store_ops;
    s->c = c;
    snprintf(s->ds, sizeof(s->ds), "%s", ds);
    snprintf(s->folder, sizeof(s->folder), "%.*s", (int)fl, folder ? folder : "");
    snprintf(s->browser, sizeof(s->browser), "%s", p.browser);
    if (c->cfg.cache &&
        bcache_new(BLOCK, (size_t)c->cfg.cache_mib << 20, (size_t)c->cfg.readahead_kib << 10,
                   (unsigned)c->cfg.connections, fetch, &s->cache) < 0) {
        free(s);
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    }
    *out = &s->base;
    return 0;
}

struct upload_src {
    vdk_file *f;
};

static int64_t upload_read(void *arg, void *buf, size_t len, uint64_t off)
{
    struct upload_src *u = arg;
    return u->f->ops->pread(u->f, buf, len, off);
}

struct upload_prog {
    vdk_progress_cb cb;
    void *arg;
};

static void upload_progress(void *arg, uint64_t done, uint64_t total)
{
    struct upload_prog *p = arg;
    if (p->cb)
        p->cb(p->arg, done, total);
}

int vdk_upload_file(vdk_conn *c, vdk_store *src, const char *name, const char *dspath,
                    vdk_progress_cb cb, void *arg, vdk_error *err)
{
    if (c->flags & VDK_CONN_READONLY)
        return vdk_fail(err, VDK_E_RDONLY, "upload: the connection is read-only");
    char ds[256], path[2048], url[3072], msg[512];
    if (vdk_dspath_split(dspath, ds, sizeof(ds), path, sizeof(path)) < 0 || !path[0])
        return vdk_fail(err, VDK_E_INVAL, "'%s' is not a datastore path like '[ds] dir/file'",
                        dspath);
    if (check_name(path) < 0)
        return vdk_fail(err, VDK_E_ESCAPE, "%s: the path leaves the datastore", dspath);
    if (rconn_folder_url(c, ds, path, url, sizeof(url)) < 0)
        return vdk_fail(err, VDK_E_INVAL, "%s: name too long", dspath);
    vdk_file *f;
    int r = src->ops->open(src, name, VDK_STORE_READ, &f);
    if (r < 0)
        return vdk_fail(err, vdk_status_from_errno(r), "%s: %s", name, strerror(-r));
    uint64_t size;
    r = f->ops->size(f, &size);
    if (r == 0) {
        struct upload_src u = {f};
        struct upload_prog p = {cb, arg};
        unsigned gen = rvim_generation(&c->vim);
        r = rhttp_put(c->http, url, size, upload_read, &u, upload_progress, &p, msg, sizeof(msg));
        /* A restore clones before it uploads: the session may have ended. */
        if (r == -EKEYEXPIRED && rvim_relogin(&c->vim, gen, msg, sizeof(msg)) == 0)
            r = rhttp_put(c->http, url, size, upload_read, &u, upload_progress, &p, msg,
                          sizeof(msg));
        if (r == -EKEYEXPIRED)
            r = -EACCES;
        if (r < 0)
            vdk_fail(err, vdk_status_from_errno(r), "upload to %s: %s", dspath, msg);
    } else {
        vdk_fail(err, vdk_status_from_errno(r), "%s: %s", name, strerror(-r));
    }
    f->ops->close(f);
    return r < 0 ? vdk_status_from_errno(r) : 0;
}
