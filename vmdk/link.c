/* Opening a link (descriptor + extents) and walking its parent chain. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "engine.h"
#include "util.h"

#define MAGIC_KDMV     0x564d444bu
#define MAGIC_COWD     0x44574f43u
#define MAGIC_SESPARSE 0xcafebabeu

int disk_fail(struct vdk_disk *d, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&d->err_lock);
    int r = vdk_vfail(&d->last, code, fmt, ap);
    pthread_mutex_unlock(&d->err_lock);
    va_end(ap);
    return r;
}

int ext_pwrite(struct extent *e, const void *buf, size_t len, uint64_t off)
{
    int64_t w = e->file->ops->pwrite(e->file, buf, len, off);
    if (w < 0)
        return disk_fail(e->disk, vdk_status_from_errno((int)w),
                         "%s: write of %zu bytes at %llu failed: %s", e->name, len,
                         (unsigned long long)off, strerror((int)-w));
    return 0;
}

int ext_order(struct extent *e)
{
    int r = e->file->ops->flush(e->file);
    if (r < 0)
        return disk_fail(e->disk, vdk_status_from_errno(r), "%s: flush failed: %s", e->name,
                         strerror(-r));
    return 0;
}

int ext_pread_exact(struct extent *e, void *buf, size_t len, uint64_t off)
{
    int64_t got = e->file->ops->pread(e->file, buf, len, off);
    if (got < 0)
        return disk_fail(e->disk, vdk_status_from_errno((int)got),
                         "%s: read of %zu bytes at "
                         "%llu failed: %s",
                         e->name, len, (unsigned long long)off, strerror((int)-got));
    if ((size_t)got != len)
        return disk_fail(e->disk, VDK_E_CORRUPT,
                         "%s: %zu bytes at %llu lie past the end of "
                         "the file",
                         e->name, len, (unsigned long long)off);
    return 0;
}

static int ext_read_entry(struct extent *e, uint64_t off, void *out, size_t n)
{
    int r = mcache_read(e->disk->mc, e->fid, e->file, off, out, n);
    if (r == -VDK_E_CORRUPT)
        return disk_fail(e->disk, VDK_E_CORRUPT,
                         "%s: table entry at byte %llu lies past the "
                         "end of the file",
                         e->name, (unsigned long long)off);
    if (r < 0)
        return disk_fail(e->disk, r, "%s: reading table at %llu: %s", e->name,
                         (unsigned long long)off, vdk_strerror(r));
    return 0;
}

int ext_read_u32(struct extent *e, uint64_t off, uint32_t *out)
{
    unsigned char b[4];
    int r = ext_read_entry(e, off, b, 4);
    if (r == 0)
        *out = le32(b);
    return r;
}

int file_fd(vdk_file *f)
{
    const struct vdk_file_ops *o = f->ops;
    return o->version >= 2 && o->fd ? o->fd(f) : -1;
}

int file_can_lend(vdk_file *f)
{
    const struct vdk_file_ops *o = f->ops;
    return o->version >= 3 && o->pin && o->unpin;
}

int ext_read_u32s(struct extent *e, uint64_t off, uint32_t *out, unsigned count)
{
    unsigned char b[MCACHE_BLOCK];
    while (count) {
        /* one cache lookup per block instead of one per entry */
        unsigned k = (unsigned)((MCACHE_BLOCK - off % MCACHE_BLOCK) / 4);
        if (k > count)
            k = count;
        int r = ext_read_entry(e, off, b, (size_t)k * 4);
        if (r < 0)
            return r;
        for (unsigned i = 0; i < k; i++)
            out[i] = le32(b + i * 4);
        out += k;
        off += (uint64_t)k * 4;
        count -= k;
    }
    return 0;
}

int ext_read_u64(struct extent *e, uint64_t off, uint64_t *out)
{
    unsigned char b[8];
    int r = ext_read_entry(e, off, b, 8);
    if (r == 0)
        *out = le64(b);
    return r;
}

static int store_err(vdk_error *err, int neg_errno, const char *what, const char *name)
{
    int code = vdk_status_from_errno(neg_errno);
    if (code == -VDK_E_ESCAPE) {
        const char *noun = strncmp(what, "opening ", 8) ? what : what + 8;
        return vdk_fail(err, VDK_E_ESCAPE,
                        "%s \"%s\" lies outside the disk's folder (absolute "
                        "path, \"..\" or a symlink leading out): refused",
                        noun, name);
    }
    return vdk_fail(err, code, "%s \"%s\": %s", what, name, strerror(-neg_errno));
}

/* Turn a name written in file 'base' into a store name. */
static int resolve_name(struct vdk_disk *d, const char *base, const char *rel, char *out,
                        size_t outlen, const char *what, vdk_error *err)
{
    int r = vdk_name_join(base, rel, out, outlen);
    if (r == -VDK_E_ESCAPE && rel[0] == '/' && d->store->ops->relativize &&
        d->store->ops->relativize(d->store, rel, out, outlen) == 0)
        r = 0;
    if (r == -VDK_E_ESCAPE)
        return vdk_fail(err, VDK_E_ESCAPE,
                        "%s: %s \"%s\" lies outside the disk's folder: "
                        "refused",
                        base, what, rel);
    if (r < 0)
        return vdk_fail(err, VDK_E_INVAL, "%s: %s \"%s\" is not a usable name", base, what, rel);
    return 0;
}

/* A descriptor for a bare sparse file that has none (a lone extent). */
static int synthesize(struct vdk_disk *d, const char *type, const char *etype, uint64_t sectors,
                      vdk_error *err)
{
    char text[VDK_NAME_MAX + 160];
    int n = snprintf(text, sizeof(text),
                     "version=1\nCID=ffffffff\nparentCID=ffffffff\n"
                     "createType=\"%s\"\nRW %llu %s \"%s\"\n",
                     type, (unsigned long long)sectors, etype, vdk_basename(d->name));
    if (n < 0 || (size_t)n >= sizeof(text))
        return vdk_fail(err, VDK_E_INVAL, "%s: name too long", d->name);
    d->desc_embedded = 1;
    return desc_parse(text, (size_t)n, d->name, &d->desc, err);
}

/* Text up to the first NUL (QEMU pads descriptor files with NULs). */
static int looks_like_text(const unsigned char *p, size_t n)
{
    if (n == 0 || p[0] == 0)
        return 0;
    for (size_t i = 0; i < n && p[i]; i++)
        if ((p[i] < 0x20 && !strchr("\t\r\n", p[i])) || p[i] == 0x7f)
            return 0;
    return 1;
}

static int read_descriptor(struct vdk_disk *d, vdk_error *err)
{
    unsigned char head[512];
    vdk_file *f = d->desc_file;
    int64_t got = f->ops->pread(f, head, sizeof(head), 0);
    if (got < 0)
        return store_err(err, (int)got, "reading", d->name);
    if (got < 4)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: file too small to be a VMDK (%lld bytes)", d->name,
                        (long long)got);
    if (d->flags & VDK_OPEN_RAW) {
        uint64_t size;
        int r = f->ops->size(f, &size);
        if (r < 0)
            return store_err(err, r, "reading", d->name);
        if (size == 0 || size % SECTOR)
            return vdk_fail(err, VDK_E_INVAL,
                            "%s: a raw image must be a non-zero multiple of "
                            "512 bytes (it is %llu)",
                            d->name, (unsigned long long)size);
        return synthesize(d, "monolithicFlat", "FLAT", size / SECTOR, err);
    }
    uint32_t magic = le32(head);
    if (magic == MAGIC_KDMV) {
        if (got < 512)
            return vdk_fail(err, VDK_E_CORRUPT,
                            "%s: sparse header truncated (%lld of 512 "
                            "bytes)",
                            d->name, (long long)got);
        uint64_t doff = le64(head + 28), dsize = le64(head + 36);
        if (doff == 0 || dsize == 0)
            return synthesize(d, "monolithicSparse", "SPARSE", le64(head + 12), err);
        if (dsize > DESC_MAX_BYTES / SECTOR || doff > UINT64_MAX / SECTOR / 2)
            return vdk_fail(err, VDK_E_CORRUPT,
                            "%s: embedded descriptor of %llu sectors at "
                            "sector %llu is out of bounds",
                            d->name, (unsigned long long)dsize, (unsigned long long)doff);
        size_t len = (size_t)dsize * SECTOR;
        d->desc_off = doff * SECTOR;
        d->desc_room = len;
        char *text = malloc(len);
        if (!text)
            return -VDK_E_NOMEM;
        got = f->ops->pread(f, text, len, doff * SECTOR);
        int r;
        if (got < 0)
            r = store_err(err, (int)got, "reading", d->name);
        else if ((size_t)got < len)
            r = vdk_fail(err, VDK_E_CORRUPT,
                         "%s: embedded descriptor (sector %llu, %llu "
                         "sectors) lies past the end of the file",
                         d->name, (unsigned long long)doff, (unsigned long long)dsize);
        else
            r = desc_parse(text, len, d->name, &d->desc, err);
        free(text);
        d->desc_embedded = 1;
        return r;
    }
    if (magic == MAGIC_COWD)
        return synthesize(d, "vmfsSparse", "VMFSSPARSE", le32(head + 12), err);
    if (magic == MAGIC_SESPARSE && got >= 24 && le32(head + 4) == 0)
        return synthesize(d, "seSparse", "SESPARSE", le64(head + 16), err);

    uint64_t size;
    int r = f->ops->size(f, &size);
    if (r < 0)
        return store_err(err, r, "reading", d->name);
    if (size > DESC_MAX_BYTES || !looks_like_text(head, (size_t)got))
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: not a VMDK (no sparse header magic and not "
                        "a text descriptor)",
                        d->name);
    char *text = malloc((size_t)size + 1);
    if (!text)
        return -VDK_E_NOMEM;
    got = f->ops->pread(f, text, (size_t)size, 0);
    if (got < 0) {
        free(text);
        return store_err(err, (int)got, "reading", d->name);
    }
    r = desc_parse(text, (size_t)got, d->name, &d->desc, err);
    free(text);
    return r;
}

static const struct extent_ops *sparse_driver(struct extent *e, vdk_error *err)
{
    unsigned char m[8];
    int64_t got = e->file->ops->pread(e->file, m, sizeof(m), 0);
    if (got < 0) {
        store_err(err, (int)got, "reading extent", e->name);
        return NULL;
    }
    if (got == 8) {
        if (le32(m) == MAGIC_KDMV)
            return &extent_kdmv_ops;
        if (le32(m) == MAGIC_COWD)
            return &extent_cowd_ops;
        if (le64(m) == MAGIC_SESPARSE)
            return &extent_sesparse_ops;
    }
    vdk_fail(err, VDK_E_CORRUPT, "%s: %s extent has no KDMV, COWD or seSparse header", e->name,
             desc_type_name(e->d->type));
    return NULL;
}

static int open_extent(struct vdk_disk *d, struct extent *e, vdk_error *err)
{
    const struct desc_extent *de = e->d;
    e->disk = d;
    e->fid = mcache_new_id();
    if (de->type == ET_ZERO) {
        e->ops = &extent_zero_ops;
        e->format = e->ops->format;
        return 0;
    }
    char name[VDK_NAME_MAX];
    if (d->desc_embedded &&
        (d->n_ext == 1 || !strcmp(vdk_basename(de->file), vdk_basename(d->name)))) {
        /* The data lives in the file that holds the descriptor, whatever
         * name the descriptor gives it (files get renamed). */
        snprintf(name, sizeof(name), "%s", d->name);
        e->file = d->desc_file;
    } else {
        int r = resolve_name(d, d->name, de->file, name, sizeof(name), "extent", err);
        if (r < 0)
            return r;
        r = d->store->ops->open(d->store, name, d->writable ? VDK_STORE_WRITE : VDK_STORE_READ,
                                &e->file);
        if (r < 0)
            return store_err(err, r, "opening extent", name);
        e->owns_file = 1;
    }
    if (!(e->name = strdup(name)))
        return -VDK_E_NOMEM;
    int r = e->file->ops->size(e->file, &e->file_size);
    if (r < 0)
        return store_err(err, r, "reading", name);
    switch (de->type) {
    case ET_FLAT:
    case ET_VMFS:
    case ET_VMFSRDM:
    case ET_VMFSRAW:
        e->ops = &extent_flat_ops;
        break;
    default:
        if (!(e->ops = sparse_driver(e, err)))
            return err ? err->code : -VDK_E_CORRUPT;
    }
    e->format = e->ops->format;
    return e->ops->open(e, err);
}

static void close_link(struct vdk_disk *d)
{
    if (!d)
        return;
    for (unsigned i = 0; i < d->n_ext; i++) {
        struct extent *e = &d->ext[i];
        if (e->ops && e->ops->close)
            e->ops->close(e);
        if (e->owns_file)
            e->file->ops->close(e->file);
        if (d->mc && e->fid)
            mcache_forget(d->mc, e->fid);
        free(e->name);
    }
    free(d->ext);
    if (d->desc_file)
        d->desc_file->ops->close(d->desc_file);
    desc_free(d->desc);
    if (d->owns_mc)
        mcache_free(d->mc);
    pthread_mutex_destroy(&d->err_lock);
    pthread_mutex_destroy(&d->meta_lock);
    free(d->name);
    free(d);
}

static int open_link(vdk_store *st, const char *name, unsigned flags, int writable,
                     struct mcache *mc, struct vdk_disk **out, vdk_error *err)
{
    struct vdk_disk *d = calloc(1, sizeof(*d));
    if (!d)
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    pthread_mutex_init(&d->err_lock, NULL);
    pthread_mutex_init(&d->meta_lock, NULL);
    d->store = st;
    d->flags = flags;
    d->writable = writable;
    d->mc = mc;
    d->name = strdup(name);
    int r = d->name ? 0 : -VDK_E_NOMEM;
    if (r == 0) {
        r = st->ops->open(st, name, writable ? VDK_STORE_WRITE : VDK_STORE_READ, &d->desc_file);
        if (r < 0) {
            d->desc_file = NULL;
            r = store_err(err, r, "opening", name);
        }
    }
    if (r == 0)
        r = read_descriptor(d, err);
    if (r == 0) {
        d->n_ext = d->desc->n_ext;
        d->ext = calloc(d->n_ext, sizeof(*d->ext));
        r = d->ext ? 0 : -VDK_E_NOMEM;
    }
    for (unsigned i = 0; r == 0 && i < d->n_ext; i++) {
        struct extent *e = &d->ext[i];
        e->d = &d->desc->ext[i];
        e->start = d->capacity;
        e->size = e->d->sectors * SECTOR;
        d->capacity += e->size;
        r = open_extent(d, e, err);
    }
    if (r < 0) {
        if (r == -VDK_E_NOMEM && err && !err->message[0])
            vdk_fail(err, VDK_E_NOMEM, "%s: out of memory", name);
        close_link(d);
        return r;
    }
    *out = d;
    return 0;
}

void chain_close(struct vdk_disk *d)
{
    /* Parents first: the top link owns the cache they share. */
    if (!d)
        return;
    chain_close(d->parent);
    close_link(d);
}

/* Say which child's parent failed to open. */
static int wrap_parent(vdk_error *err, int r, const char *child)
{
    if (err) {
        char msg[sizeof(err->message)];
        snprintf(msg, sizeof(msg), "%s", err->message);
        snprintf(err->message, sizeof(err->message), "parent of %.200s: %.290s", child, msg);
    }
    return r;
}

static int open_parent(struct vdk_disk *top, struct vdk_disk *cur, unsigned flags, vdk_error *err)
{
    char pname[VDK_NAME_MAX];
    int r = resolve_name(cur, cur->name, cur->desc->parent_hint, pname, sizeof(pname),
                         "parentFileNameHint", err);
    if (r < 0)
        return r;
    unsigned links = 0;
    for (struct vdk_disk *l = top; l; l = l->parent) {
        links++;
        if (!strcmp(l->name, pname))
            return vdk_fail(err, VDK_E_CHAIN, "%s: parent chain loops back to %s", cur->name,
                            pname);
    }
    if (links >= CHAIN_MAX_DEPTH)
        return vdk_fail(err, VDK_E_CHAIN, "%s: parent chain deeper than %u links", top->name,
                        CHAIN_MAX_DEPTH);
    struct vdk_disk *p;
    r = open_link(top->store, pname, flags, 0, top->mc, &p, err);
    if (r < 0)
        return wrap_parent(err, r, cur->name);
    cur->parent = p;
    if (!(flags & VDK_OPEN_IGNORE_CID) && cur->desc->parent_cid != p->desc->cid)
        return vdk_fail(err, VDK_E_CID_MISMATCH,
                        "%s: parentCID %08x does not match CID %08x "
                        "of its parent %s (the parent changed after the child was made)",
                        cur->name, cur->desc->parent_cid, p->desc->cid, pname);
    return 0;
}

/* Raise or lower every extent's "open for writing" mark, durably. */
static int mark_unclean(struct vdk_disk *d, int unclean, vdk_error *err)
{
    for (unsigned i = 0; i < d->n_ext; i++) {
        struct extent *e = &d->ext[i];
        if (!e->ops->set_unclean || e->d->access != EA_RW)
            continue;
        int r = e->ops->set_unclean(e, unclean);
        if (r == 0)
            r = vdk_status_from_errno(e->file->ops->flush(e->file));
        if (r < 0)
            return vdk_fail(err, r, "%s: cannot %s the uncleanShutdown mark: %s", e->name,
                            unclean ? "set" : "clear", vdk_strerror(r));
    }
    return 0;
}

/* A link left open by a crash may hold table entries whose grains never
 * reached the disk; appending new grains there would make those entries
 * point at other data.  As VMware does, check and repair it before the
 * first write. */
static int repair_unclean(struct vdk_disk *d, vdk_error *err)
{
    struct check_ctx c = {0};
    int was_unclean = d->unclean;
    int r = link_check(d, 1, &c);
    if (r < 0) {
        vdk_last_error(d, err);
        return r;
    }
    if (was_unclean || c.repaired)
        vdk_log("%s was not closed cleanly: checked it, %u repair%s made", d->name, c.repaired,
                c.repaired == 1 ? "" : "s");
    return 0;
}

/* seSparse has no uncleanShutdown mark of its own (ESXi relies on its
 * journal), so a writable seSparse link is always checked at open. */
static int has_sesparse(const struct vdk_disk *d)
{
    for (unsigned i = 0; i < d->n_ext; i++)
        if (d->ext[i].ops == &extent_sesparse_ops)
            return 1;
    return 0;
}

int chain_open(vdk_store *store, const char *name, unsigned flags, struct vdk_disk **out,
               vdk_error *err)
{
    if (err)
        *err = (vdk_error){0};
    struct mcache *mc = mcache_new(MCACHE_BUDGET);
    if (!mc)
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    struct vdk_disk *top;
    int r = open_link(store, name, flags, !(flags & VDK_OPEN_RDONLY), mc, &top, err);
    if (r < 0) {
        mcache_free(mc);
        return r;
    }
    top->owns_mc = 1;
    for (struct vdk_disk *cur = top;
         r == 0 && cur->desc->parent_hint && !(flags & VDK_OPEN_SINGLE_LINK); cur = cur->parent)
        r = open_parent(top, cur, flags, err);
    if (r < 0) {
        chain_close(top);
        return r;
    }
    unsigned n = 0;
    for (struct vdk_disk *l = top; l; l = l->parent)
        n++;
    for (struct vdk_disk *l = top; l; l = l->parent)
        l->depth = n--;
    if (top->writable && (top->unclean || has_sesparse(top)) &&
        (r = repair_unclean(top, err)) < 0) {
        chain_close(top);
        return r;
    }
    if (top->writable && (r = mark_unclean(top, 1, err)) < 0) {
        chain_close(top);
        return r;
    }
    *out = top;
    return 0;
}

int ext_read_below(struct extent *e, uint64_t off, void *buf, size_t len)
{
    struct vdk_disk *p = e->disk->parent;
    int64_t got = p ? chain_read(p, buf, len, e->start + off) : 0;
    if (got < 0) {
        vdk_error pe;
        vdk_last_error(p, &pe);
        return disk_fail(e->disk, (int)got, "reading the parent: %s", pe.message);
    }
    memset((char *)buf + got, 0, len - (size_t)got);
    return 0;
}

/* Where the descriptor's file lives, for the directory sync after a replace. */
static void dir_of(const char *name, char *out, size_t n)
{
    const char *slash = strrchr(name, '/');
    snprintf(out, n, "%.*s", slash ? (int)(slash - name) : 0, name);
}

static int replace_file(struct vdk_disk *d, const char *text, size_t len, vdk_error *err)
{
    char tmp[VDK_NAME_MAX + 16], dir[VDK_NAME_MAX];
    snprintf(tmp, sizeof(tmp), "%s.vdk-new", d->name);
    vdk_file *f;
    int r = d->store->ops->open(d->store, tmp, VDK_STORE_WRITE | VDK_STORE_CREATE, &f);
    if (r < 0)
        return store_err(err, r, "creating", tmp);
    r = f->ops->truncate(f, 0);
    if (r == 0) {
        int64_t w = f->ops->pwrite(f, text, len, 0);
        r = w < 0 ? (int)w : 0;
    }
    if (r == 0)
        r = f->ops->flush(f);
    f->ops->close(f);
    if (r == 0)
        r = d->store->ops->rename(d->store, tmp, d->name);
    dir_of(d->name, dir, sizeof(dir));
    if (r == 0)
        r = d->store->ops->sync_dir(d->store, dir);
    if (r < 0) {
        d->store->ops->unlink(d->store, tmp);
        return store_err(err, r, "replacing the descriptor", d->name);
    }
    return 0;
}

int link_write_descriptor(struct vdk_disk *d, vdk_error *err)
{
    char *text = desc_format(d->desc);
    if (!text)
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    size_t len = strlen(text);
    int r;
    if (!d->desc_embedded) {
        r = replace_file(d, text, len, err);
    } else if (d->desc_room == 0) {
        r = vdk_fail(err, VDK_E_UNSUPPORTED, "%s: this sparse file has no descriptor area",
                     d->name);
    } else if (len > d->desc_room) {
        r = vdk_fail(err, VDK_E_NOSPC,
                     "%s: the descriptor (%zu bytes) no longer fits the %llu "
                     "bytes reserved for it",
                     d->name, len, (unsigned long long)d->desc_room);
    } else {
        /* In place, padded with NULs over the whole reserved area. */
        char *area = calloc(1, (size_t)d->desc_room);
        r = area ? 0 : -VDK_E_NOMEM;
        if (r == 0) {
            memcpy(area, text, len);
            int64_t w =
                d->desc_file->ops->pwrite(d->desc_file, area, (size_t)d->desc_room, d->desc_off);
            r = w < 0 ? (int)w : d->desc_file->ops->flush(d->desc_file);
            if (r < 0)
                r = store_err(err, r, "writing the descriptor of", d->name);
            free(area);
        }
    }
    free(text);
    return r;
}

/* VMware gives a disk a new CID on its first change after each open, so
 * children made before can tell their parent moved on. */
void (*vdk_log_hook)(const char *line);

void vdk_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (vdk_log_hook)
        vdk_log_hook(line);
    else
        fprintf(stderr, "libvdk: %s\n", line);
}

/* Change tracking (descriptor version 3, changeTrackPath, a -ctk.vmdk file)
 * records which blocks VMware wrote.  Its layout is not public, so vdk
 * cannot update it: before the first change, tracking is switched off
 * cleanly (version 1, key removed, ctk file set aside) rather than left to
 * lie to a backup. */
static int disable_change_tracking(struct vdk_disk *d, vdk_error *err)
{
    const char *ctk = desc_get(d->desc, "changeTrackPath");
    if (!ctk && d->desc->version != 3)
        return 0;
    char name[VDK_NAME_MAX], aside[VDK_NAME_MAX + 16];
    if (ctk && vdk_name_join(d->name, ctk, name, sizeof(name)) == 0) {
        snprintf(aside, sizeof(aside), "%s.vdk-disabled", name);
        int r = d->store->ops->rename(d->store, name, aside);
        if (r < 0 && r != -ENOENT)
            return vdk_fail(err, vdk_status_from_errno(r),
                            "%s: cannot set the change "
                            "tracking file %s aside: %s",
                            d->name, name, strerror(-r));
        vdk_log("%s: change tracking switched off before modifying the disk (its file is "
                "now %s); enable it again from vSphere",
                d->name, aside);
    }
    int r = desc_remove(d->desc, "changeTrackPath");
    return r < 0 ? r : desc_set(d->desc, "version", "1", err);
}

int link_renew_cid(struct vdk_disk *d)
{
    if (__atomic_load_n(&d->cid_changed, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&d->meta_lock);
    int r = 0;
    if (!d->cid_changed) {
        uint32_t cid;
        do {
            if (getrandom(&cid, sizeof(cid), 0) != sizeof(cid))
                cid = (uint32_t)time(NULL) ^ (uint32_t)(uintptr_t)d;
        } while (cid == d->desc->cid || cid == 0xffffffffu);
        char v[16];
        snprintf(v, sizeof(v), "%08x", cid);
        vdk_error err = {0};
        r = disable_change_tracking(d, &err);
        if (r == 0)
            r = desc_set(d->desc, "CID", v, &err);
        if (r == 0)
            r = link_write_descriptor(d, &err);
        if (r < 0)
            disk_fail(d, r, "%s", err.message);
        else
            __atomic_store_n(&d->cid_changed, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&d->meta_lock);
    return r;
}

int64_t chain_write(struct vdk_disk *d, const void *buf, size_t len, uint64_t off)
{
    if (!d->writable)
        return disk_fail(d, VDK_E_RDONLY, "%s: opened read-only", d->name);
    if (off > d->capacity || len > d->capacity - off)
        return disk_fail(d, VDK_E_RANGE,
                         "%s: write of %zu bytes at %llu passes the capacity "
                         "(%llu bytes)",
                         d->name, len, (unsigned long long)off, (unsigned long long)d->capacity);
    int r = len ? link_renew_cid(d) : 0;
    size_t done = 0;
    while (r == 0 && done < len) {
        struct extent *e = link_find_extent(d, off + done);
        size_t n = (size_t)min_u64(len - done, e->start + e->size - (off + done));
        const unsigned char *p = (const unsigned char *)buf + done;
        if (e->d->access != EA_RW)
            r = disk_fail(d, VDK_E_RDONLY, "%s: extent %u is %s", d->name, (unsigned)(e - d->ext),
                          desc_access_name(e->d->access));
        else if (e->d->type == ET_ZERO)
            r = vdk_all_zero(p, n) ? 0
                                   : disk_fail(d, VDK_E_UNSUPPORTED,
                                               "%s: extent %u is a ZERO "
                                               "extent and cannot hold data",
                                               d->name, (unsigned)(e - d->ext));
        else if (!e->ops->write)
            r = disk_fail(d, VDK_E_UNSUPPORTED, "%s: writing %s extents is not supported", e->name,
                          e->format);
        else
            r = e->ops->write(e, off + done - e->start, p, n);
        done += n;
    }
    return r < 0 ? r : (int64_t)len;
}

int chain_flush(struct vdk_disk *d)
{
    if (!d->writable)
        return 0;
    for (unsigned i = 0; i < d->n_ext; i++) {
        struct extent *e = &d->ext[i];
        if (!e->file)
            continue;
        int r = e->file->ops->flush(e->file);
        if (r < 0)
            return disk_fail(d, vdk_status_from_errno(r), "%s: flush failed: %s", e->name,
                             strerror(-r));
    }
    return 0;
}

int chain_close_checked(struct vdk_disk *d)
{
    int r = 0;
    if (d->writable) {
        vdk_error err = {0};
        r = chain_flush(d);
        if (r == 0)
            r = mark_unclean(d, 0, &err);
        if (r < 0 && err.message[0])
            disk_fail(d, r, "%s", err.message);
    }
    chain_close(d);
    return r;
}
