/* libvdk's public disk API over the VMDK engine. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "../vmdk/engine.h"
#include "../vmdk/sparse32.h"
#include "../vmdk/util.h"

int vdk_open_store(vdk_store *store, const char *name, unsigned flags, vdk_disk **out,
                   vdk_error *err)
{
    if (!store || !name || !out)
        return vdk_fail(err, VDK_E_INVAL, "vdk_open_store: missing argument");
    return chain_open(store, name, flags, out, err);
}

int vdk_open(const char *path, unsigned flags, vdk_disk **out, vdk_error *err)
{
    if (!path || !*path || !out)
        return vdk_fail(err, VDK_E_INVAL, "vdk_open: missing path");
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base)
        return vdk_fail(err, VDK_E_INVAL, "%s: names a folder, not a disk", path);
    if (slash && (size_t)(slash - path) >= sizeof(dir))
        return vdk_fail(err, VDK_E_INVAL, "%s: path too long", path);
    if (slash == path)
        strcpy(dir, "/");
    else if (slash)
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    else
        strcpy(dir, ".");
    vdk_store *st;
    int r = vdk_store_local_new(dir, &st);
    if (r < 0)
        return vdk_fail(err, vdk_status_from_errno(r), "%s: %s", dir, strerror(-r));
    r = chain_open(st, base, flags, out, err);
    if (r < 0) {
        st->ops->destroy(st);
        return r;
    }
    (*out)->owned_store = st;
    return 0;
}

int vdk_close(vdk_disk *disk)
{
    if (!disk)
        return 0;
    vdk_store *st = disk->owned_store;
    int r = chain_close_checked(disk);
    if (st)
        st->ops->destroy(st);
    return r;
}

int64_t vdk_write(vdk_disk *disk, const void *buf, size_t len, uint64_t off)
{
    return chain_write(disk, buf, len, off);
}

int vdk_flush(vdk_disk *disk)
{
    return chain_flush(disk);
}

vdk_disk *vdk_parent(const vdk_disk *disk)
{
    return disk->parent;
}

uint64_t vdk_capacity(const vdk_disk *disk)
{
    return disk->capacity;
}

int64_t vdk_read(vdk_disk *disk, void *buf, size_t len, uint64_t off)
{
    return chain_read(disk, buf, len, off);
}

int vdk_read_vec(vdk_disk *disk, void *buf, size_t len, uint64_t off, vdk_segment *seg,
                 unsigned max)
{
    return chain_read_vec(disk, buf, len, off, seg, max, 0);
}

int vdk_read_lend(vdk_disk *disk, void *buf, size_t len, uint64_t off, vdk_segment *seg,
                  unsigned max)
{
    return chain_read_vec(disk, buf, len, off, seg, max, 1);
}

void vdk_read_release(vdk_segment *seg, int n)
{
    chain_release(seg, n);
}

void vdk_last_error(vdk_disk *disk, vdk_error *err)
{
    pthread_mutex_lock(&disk->err_lock);
    *err = disk->last;
    pthread_mutex_unlock(&disk->err_lock);
}

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

static uint32_t ddb_u32(const struct descriptor *d, const char *key)
{
    const char *v = desc_get(d, key);
    if (!v)
        return 0;
    char *end;
    unsigned long x = strtoul(v, &end, 10);
    return (*end || x > UINT32_MAX) ? 0 : (uint32_t)x;
}

int vdk_get_info(const vdk_disk *disk, vdk_info *out)
{
    const struct descriptor *d = disk->desc;
    memset(out, 0, sizeof(*out));
    copy_str(out->name, sizeof(out->name), disk->name);
    copy_str(out->create_type, sizeof(out->create_type),
             desc_canonical_create_type(d->create_type));
    out->capacity = disk->capacity;
    copy_str(out->adapter, sizeof(out->adapter), desc_get(d, "ddb.adapterType"));
    out->hw_version = (int)ddb_u32(d, "ddb.virtualHWVersion");
    out->cylinders = ddb_u32(d, "ddb.geometry.cylinders");
    out->heads = ddb_u32(d, "ddb.geometry.heads");
    out->sectors = ddb_u32(d, "ddb.geometry.sectors");
    out->cid = d->cid;
    out->parent_cid = d->parent_cid;
    copy_str(out->parent_hint, sizeof(out->parent_hint), d->parent_hint);
    if (d->parent_hint &&
        vdk_name_join(disk->name, d->parent_hint, out->parent_name, sizeof(out->parent_name)) < 0 &&
        !(d->parent_hint[0] == '/' && disk->store->ops->relativize &&
          disk->store->ops->relativize(disk->store, d->parent_hint, out->parent_name,
                                       sizeof(out->parent_name)) == 0))
        out->parent_name[0] = '\0';
    copy_str(out->uuid, sizeof(out->uuid), desc_get(d, "ddb.uuid"));
    out->extent_count = disk->n_ext;
    out->chain_depth = disk->depth;
    out->descriptor_version = d->version;
    out->change_tracking = desc_get(d, "changeTrackPath") != NULL;
    out->unclean = disk->unclean;
    return 0;
}

int vdk_get_extent(const vdk_disk *disk, unsigned index, vdk_extent_info *out)
{
    if (index >= disk->n_ext)
        return -VDK_E_RANGE;
    const struct extent *e = &disk->ext[index];
    memset(out, 0, sizeof(*out));
    copy_str(out->access, sizeof(out->access), desc_access_name(e->d->access));
    copy_str(out->type, sizeof(out->type), desc_type_name(e->d->type));
    out->sectors = e->d->sectors;
    copy_str(out->file, sizeof(out->file), e->name);
    out->offset = e->d->offset;
    copy_str(out->format, sizeof(out->format), e->format);
    return 0;
}

/* Copy s (with its NUL) to buf, or say how much room it needs. */
static int give(const char *s, size_t n, char *buf, size_t buflen, size_t *needed)
{
    if (needed)
        *needed = n;
    if (!buf || buflen < n)
        return -VDK_E_BUFSMALL;
    memcpy(buf, s, n);
    return 0;
}

int vdk_meta_keys(const vdk_disk *disk, char *buf, size_t buflen, size_t *needed)
{
    const struct descriptor *d = disk->desc;
    size_t total = 1;
    for (unsigned i = 0; i < d->n_lines; i++)
        if (d->lines[i].kind == LINE_DDB)
            total += strlen(d->lines[i].key) - 4 + 1;
    if (needed)
        *needed = total;
    if (!buf || buflen < total)
        return -VDK_E_BUFSMALL;
    char *p = buf;
    for (unsigned i = 0; i < d->n_lines; i++) {
        if (d->lines[i].kind != LINE_DDB)
            continue;
        size_t n = strlen(d->lines[i].key + 4) + 1;
        memcpy(p, d->lines[i].key + 4, n);
        p += n;
    }
    *p = '\0';
    return 0;
}

int vdk_meta_get(const vdk_disk *disk, const char *key, char *buf, size_t buflen, size_t *needed)
{
    char full[256];
    if (!key || snprintf(full, sizeof(full), "ddb.%s", key) >= (int)sizeof(full))
        return -VDK_E_INVAL;
    const char *v = desc_get(disk->desc, full);
    if (!v)
        return -VDK_E_NOTFOUND;
    return give(v, strlen(v) + 1, buf, buflen, needed);
}

static unsigned link_index(const vdk_disk *top, const vdk_disk *l)
{
    unsigned i = 0;
    for (const vdk_disk *p = top; p && p != l; p = p->parent)
        i++;
    return i;
}

int vdk_map(vdk_disk *disk, uint64_t off, uint64_t len, unsigned flags, vdk_range_cb cb, void *arg)
{
    if (off >= disk->capacity)
        return 0;
    len = min_u64(len, disk->capacity - off);
    vdk_range cur = {.offset = off, .length = 0};
    uint64_t pos = off, end = off + len;
    while (pos < end) {
        struct vdk_disk *l = NULL;
        struct extent *e = NULL;
        struct run r = {0};
        int rc = chain_resolve(disk, pos, end - pos, (flags & VDK_MAP_THIS_LINK) != 0, &l, &e, &r);
        if (rc < 0)
            return rc;
        vdk_range nr = {.offset = pos, .length = r.len, .depth = link_index(disk, l)};
        nr.kind = (r.kind == RUN_DATA || r.kind == RUN_INDIRECT) ? VDK_RANGE_DATA
                  : r.kind == RUN_ZERO                           ? VDK_RANGE_ZERO
                                                                 : VDK_RANGE_HOLE;
        if (cur.length && cur.kind == nr.kind && cur.depth == nr.depth) {
            cur.length += nr.length;
        } else {
            if (cur.length && (rc = cb(arg, &cur)) != 0)
                return rc;
            cur = nr;
        }
        pos += r.len;
    }
    return cur.length ? cb(arg, &cur) : 0;
}

static int add_data(void *arg, const vdk_range *r)
{
    if (r->kind == VDK_RANGE_DATA)
        *(uint64_t *)arg += r->length;
    return 0;
}

int vdk_allocated_bytes(vdk_disk *disk, uint64_t *out)
{
    *out = 0;
    return vdk_map(disk, 0, disk->capacity, VDK_MAP_THIS_LINK, add_data, out);
}

int vdk_check(vdk_disk *disk, int repair, vdk_report_cb cb, void *arg, unsigned *problems,
              unsigned *repaired)
{
    struct check_ctx ctx = {.cb = cb, .arg = arg};
    int r = link_check(disk, repair, &ctx);
    if (problems)
        *problems = ctx.problems;
    if (repaired)
        *repaired = ctx.repaired;
    return r;
}

void vdk_set_log(void (*hook)(const char *line))
{
    vdk_log_hook = hook;
}

int vdk_discard(vdk_disk *disk, uint64_t off, uint64_t len)
{
    static const unsigned char zeros[65536];
    if (!disk->writable)
        return -VDK_E_RDONLY;
    if (off > disk->capacity || len > disk->capacity - off)
        return -VDK_E_RANGE;
    /* zeros first: they keep what reads see right in every case (and stay
     * sparse where nothing was allocated) */
    for (uint64_t pos = 0; pos < len;) {
        size_t k = (size_t)min_u64(sizeof(zeros), len - pos);
        int64_t w = chain_write(disk, zeros, k, off + pos);
        if (w < 0)
            return (int)w;
        pos += k;
    }
    if (disk->parent)
        return 0; /* a freed grain would show the parent: zeros must stay */
    for (unsigned i = 0; i < disk->n_ext; i++) {
        struct extent *e = &disk->ext[i];
        uint64_t a = off > e->start ? off - e->start : 0;
        uint64_t b = min_u64(off + len, e->start + e->size);
        if (b <= e->start || a >= e->size ||
            (e->ops != &extent_kdmv_ops && e->ops != &extent_cowd_ops))
            continue;
        int r = s32_discard(e, e->priv, a, b - e->start - a);
        if (r < 0 && r != -VDK_E_UNSUPPORTED)
            return r;
    }
    return 0;
}
