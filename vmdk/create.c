/* Creating disks the way VMware lays them out. */
#include "create.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <zlib.h>

#include "util.h"
#include "zpool.h"

#define GRAIN_SECTORS 128u
#define GTES          512u
#define DESC_SECTORS  20u
/* Split extents stay below 2 GiB even when fully allocated (VirtualBox's
 * choice; QEMU cuts at exactly 2 GiB). */
#define SPLIT_SECTORS      (2047ull * 2048)
#define MAX_SPARSE_SECTORS ((1ull << 32) - (1ull << 21)) /* grain sectors are u32 */
#define MAX_COWD_SECTORS   0xffffffffull

static const struct disk_type types[] = {
    {"monolithicSparse", LAY_MONO_SPARSE, 0, 1},
    {"twoGbMaxExtentSparse", LAY_SPLIT_SPARSE, 0, 1},
    {"monolithicFlat", LAY_MONO_FLAT, 0, 0},
    {"twoGbMaxExtentFlat", LAY_SPLIT_FLAT, 0, 0},
    {"vmfs", LAY_VMFS, 0, 0},
    {"vmfsThin", LAY_VMFS, 0, 0},
    {"streamOptimized", LAY_STREAM, 0, 0},
    {"vmfsSparse", LAY_VMFS_SPARSE, 1, 1},
    {"seSparse", LAY_SE_SPARSE, 1, 1},
};

const struct disk_type *create_find_type(const char *name)
{
    name = desc_canonical_create_type(name);
    for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++)
        if (!strcasecmp(types[i].name, name))
            return &types[i];
    return NULL;
}

static void random_bytes(void *p, size_t n)
{
    if (getrandom(p, n, 0) != (ssize_t)n)
        for (size_t i = 0; i < n; i++)
            ((unsigned char *)p)[i] = (unsigned char)rand();
}

/* BIOS geometry as VMware derives it: IDE 16 heads with cylinders capped
 * at 16383, SCSI adapters 255 heads. */
static void geometry(uint64_t sectors, const char *adapter, uint64_t *c, unsigned *h, unsigned *s)
{
    *s = 63;
    *h = strcmp(adapter, "ide") ? 255 : 16;
    *c = sectors / (*h * 63ull);
    if (*h == 16 && *c > 16383)
        *c = 16383;
    if (*c == 0)
        *c = 1;
}

char *create_descriptor(const struct new_disk *nd, uint32_t cid, const char *extent_lines)
{
    uint64_t c;
    unsigned h, s;
    geometry(nd->sectors, nd->adapter, &c, &h, &s);
    unsigned char u[16];
    random_bytes(u, sizeof(u));
    char uuid[64], lcid[40];
    snprintf(uuid, sizeof(uuid),
             "60 00 C2 %02x %02x %02x %02x %02x-%02x %02x %02x %02x %02x %02x %02x %02x", u[3],
             u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    for (int i = 0; i < 16; i++)
        snprintf(lcid + 2 * i, 3, "%02x", u[i] ^ 0x5a);
    int vmfs = nd->type->layout == LAY_VMFS || nd->type->layout == LAY_VMFS_SPARSE ||
               nd->type->layout == LAY_SE_SPARSE;
    size_t need = strlen(extent_lines) + (nd->parent_hint ? strlen(nd->parent_hint) : 0) + 1024;
    char *t = malloc(need);
    if (!t)
        return NULL;
    snprintf(t, need,
             "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=%08x\nparentCID=%08x\n"
             "%screateType=\"%s\"\n%s%s%s\n# Extent description\n%s\n"
             "# The Disk Data Base\n#DDB\n\n"
             "ddb.adapterType = \"%s\"\nddb.geometry.cylinders = \"%llu\"\n"
             "ddb.geometry.heads = \"%u\"\nddb.geometry.sectors = \"%u\"\n"
             "ddb.longContentID = \"%s\"\n%sddb.uuid = \"%s\"\nddb.virtualHWVersion = \"%d\"\n",
             cid, nd->parent_hint ? nd->parent_cid : 0xffffffffu,
             vmfs ? "isNativeSnapshot=\"no\"\n" : "", nd->type->name,
             nd->parent_hint ? "parentFileNameHint=\"" : "", nd->parent_hint ? nd->parent_hint : "",
             nd->parent_hint ? "\"\n" : "", extent_lines, nd->adapter, (unsigned long long)c, h, s,
             lcid, !strcmp(nd->type->name, "vmfsThin") ? "ddb.thinProvisioned = \"1\"\n" : "", uuid,
             nd->hw_version);
    return t;
}

/* ---- files ---- */

struct created {
    vdk_store *st;
    char names[64][VDK_NAME_MAX];
    unsigned n;
};

static int fail_io(vdk_error *err, int neg_errno, const char *what, const char *name)
{
    return vdk_fail(err, vdk_status_from_errno(neg_errno), "%s %s: %s", what, name,
                    strerror(-neg_errno));
}

static int new_file(struct created *cr, const char *name, vdk_file **f, vdk_error *err)
{
    int r = cr->st->ops->open(cr->st, name, VDK_STORE_WRITE | VDK_STORE_CREATE | VDK_STORE_EXCL, f);
    if (r < 0)
        return r == -EEXIST ? vdk_fail(err, VDK_E_EXISTS, "%s already exists", name)
                            : fail_io(err, r, "creating", name);
    if (cr->n < 64)
        snprintf(cr->names[cr->n++], VDK_NAME_MAX, "%s", name);
    return 0;
}

static void undo(struct created *cr)
{
    while (cr->n)
        cr->st->ops->unlink(cr->st, cr->names[--cr->n]);
}

static int write_all(vdk_file *f, const void *p, size_t n, uint64_t off, const char *name,
                     vdk_error *err)
{
    int64_t w = f->ops->pwrite(f, p, n, off);
    return w < 0 ? fail_io(err, (int)w, "writing", name) : 0;
}

static int finish_file(vdk_file *f, const char *name, vdk_error *err)
{
    int r = f->ops->flush(f);
    f->ops->close(f);
    return r < 0 ? fail_io(err, r, "flushing", name) : 0;
}

/* Bytes to place in a new file. */
struct piece {
    const void *data;
    size_t len;
    uint64_t off;
};

/* "dir/.name.vdk-new": where a file is built before it takes its name. */
static void temp_name(const char *name, char *out, size_t n)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    snprintf(out, n, "%.*s.%s.vdk-new", (int)(base - name), name, base);
}

/* Create 'name' of 'size' bytes (zeros, sparse on the host) holding the
 * pieces, written in order (put the header last) into a temporary file that
 * is flushed and only then renamed to 'name': a crash never leaves a file
 * under a disk's name that is not whole. */
static int put_file(struct created *cr, const char *name, uint64_t size, const struct piece *pieces,
                    unsigned n, vdk_error *err)
{
    char tmp[VDK_NAME_MAX];
    struct vdk_stat sb;
    temp_name(name, tmp, sizeof(tmp));
    if (cr->st->ops->stat(cr->st, name, &sb) == 0)
        return vdk_fail(err, VDK_E_EXISTS, "%s already exists", name);
    cr->st->ops->unlink(cr->st, tmp); /* left over by an interrupted create */
    vdk_file *f;
    int r = new_file(cr, tmp, &f, err);
    if (r < 0)
        return r;
    r = f->ops->truncate(f, size);
    if (r < 0)
        r = fail_io(err, r, "sizing", name);
    for (unsigned i = 0; r == 0 && i < n; i++)
        if (pieces[i].len)
            r = write_all(f, pieces[i].data, pieces[i].len, pieces[i].off, name, err);
    if (r < 0) {
        f->ops->close(f);
        return r;
    }
    r = finish_file(f, name, err);
    if (r == 0 && (r = cr->st->ops->stat(cr->st, name, &sb)) == 0)
        r = vdk_fail(err, VDK_E_EXISTS, "%s already exists", name);
    else if (r == -ENOENT && (r = cr->st->ops->rename(cr->st, tmp, name)) < 0)
        r = fail_io(err, r, "renaming into place", name);
    if (r == 0)
        snprintf(cr->names[cr->n - 1], VDK_NAME_MAX, "%s", name); /* undo removes it */
    return r;
}

/* A hosted sparse extent laid out as VMware and QEMU do: header, descriptor,
 * redundant directory and tables, directory and tables, then grains; the
 * (zero) tables exist from the start, so directory entries are never 0. */
static int kdmv_file(struct created *cr, const char *name, uint64_t sectors, const char *desc,
                     vdk_error *err)
{
    uint64_t grains = (sectors + GRAIN_SECTORS - 1) / GRAIN_SECTORS;
    uint64_t n_gt = (grains + GTES - 1) / GTES;
    uint64_t gd_sectors = (n_gt * 4 + SECTOR - 1) / SECTOR, gt_sectors = GTES * 4 / SECTOR;
    uint64_t desc_sectors = desc ? DESC_SECTORS : 0;
    uint64_t rgd = 1 + desc_sectors, gd = rgd + gd_sectors + n_gt * gt_sectors;
    uint64_t overhead =
        (gd + gd_sectors + n_gt * gt_sectors + GRAIN_SECTORS - 1) / GRAIN_SECTORS * GRAIN_SECTORS;
    if (desc && strlen(desc) > DESC_SECTORS * SECTOR)
        return vdk_fail(err, VDK_E_INVAL, "%s: descriptor too long", name);
    unsigned char h[512] = {0};
    memcpy(h, "KDMV", 4);
    put_le32(h + 4, 1);
    put_le32(h + 8, 3); /* newline test valid, redundant directory in use */
    put_le64(h + 12, sectors);
    put_le64(h + 20, GRAIN_SECTORS);
    put_le64(h + 28, desc ? 1 : 0);
    put_le64(h + 36, desc_sectors);
    put_le32(h + 44, GTES);
    put_le64(h + 48, rgd);
    put_le64(h + 56, gd);
    put_le64(h + 64, overhead);
    memcpy(h + 73, "\n \r\n", 4);
    /* the redundant directory, then the primary one: each names its tables */
    unsigned char *dirs = calloc(2, gd_sectors * SECTOR);
    if (!dirs)
        return -VDK_E_NOMEM;
    for (int copy = 0; copy < 2; copy++) {
        uint64_t at = copy ? gd : rgd;
        for (uint64_t i = 0; i < n_gt; i++)
            put_le32(dirs + copy * gd_sectors * SECTOR + i * 4,
                     (uint32_t)(at + gd_sectors + i * gt_sectors));
    }
    struct piece p[] = {{dirs, gd_sectors * SECTOR, rgd * SECTOR},
                        {dirs + gd_sectors * SECTOR, gd_sectors * SECTOR, gd * SECTOR},
                        {desc, desc ? strlen(desc) : 0, SECTOR},
                        {h, sizeof(h), 0}};
    int r = put_file(cr, name, overhead * SECTOR, p, 4, err);
    free(dirs);
    return r;
}

static int flat_file(struct created *cr, const char *name, uint64_t sectors, vdk_error *err)
{
    return put_file(cr, name, sectors * SECTOR, NULL, 0, err);
}

/* A COWD redo log: 2048-byte header, directory at sector 4, tables and
 * grains appended as they are written. */
static int cowd_file(struct created *cr, const char *name, uint64_t sectors, const char *parent,
                     vdk_error *err)
{
    uint64_t n_gd = (sectors + 4096 - 1) / 4096; /* grain of one sector */
    uint64_t gd_sectors = (n_gd * 4 + SECTOR - 1) / SECTOR;
    unsigned char h[2048] = {0};
    memcpy(h, "COWD", 4);
    put_le32(h + 4, 1);
    put_le32(h + 8, 3);
    put_le32(h + 12, (uint32_t)sectors);
    put_le32(h + 16, 1);
    put_le32(h + 20, 4);
    put_le32(h + 24, (uint32_t)n_gd);
    put_le32(h + 28, (uint32_t)(4 + gd_sectors));
    if (parent)
        snprintf((char *)h + 32, 1024, "%s", parent);
    put_le32(h + 1060, 1); /* generation */
    struct piece p[] = {{h, sizeof(h), 0}};
    return put_file(cr, name, (4 + gd_sectors) * SECTOR, p, 1, err);
}

/* A seSparse redo log in the shape ESXi gives it: constant header,
 * volatile header, journal, directory, room for every grain table, free
 * bitmap and backmap, then the grains, appended as they are written.  All
 * offsets are in sectors. */
static int sesparse_file(struct created *cr, const char *name, uint64_t sectors, vdk_error *err)
{
    uint64_t grains = (sectors + 7) / 8, n_gd = (grains + 4095) / 4096;
    uint64_t gd = 5, gd_sectors = (n_gd * 8 + SECTOR - 1) / SECTOR;
    uint64_t gt = gd + gd_sectors, bitmap = gt + n_gd * 64, backmap = bitmap + 1;
    uint64_t data = (backmap + 1 + 7) / 8 * 8;
    uint64_t regions[8][2] = {{1, 1},          {2, 1},      {3, 2},       {gd, gd_sectors},
                              {gt, n_gd * 64}, {bitmap, 1}, {backmap, 1}, {data, grains * 8}};
    unsigned char h[512] = {0}, v[512] = {0};
    put_le64(h, 0xcafebabeull);
    put_le64(h + 8, 0x0000000200000001ull);
    put_le64(h + 16, sectors);
    put_le64(h + 24, 8);
    put_le64(h + 32, 64);
    for (int i = 0; i < 8; i++) {
        put_le64(h + 80 + 16 * i, regions[i][0]);
        put_le64(h + 88 + 16 * i, regions[i][1]);
    }
    put_le64(v, 0xcafecafeull);
    struct piece p[] = {{v, sizeof(v), SECTOR}, {h, sizeof(h), 0}};
    return put_file(cr, name, data * SECTOR, p, 2, err);
}

/* "dir/disk.vmdk" -> "dir/disk" + suffix + ".vmdk" (store name) and the
 * bare file name for the extent line. */
void extent_name(const char *name, const char *suffix, char *full, char *base)
{
    const char *b = vdk_basename(name);
    size_t stem = strlen(name);
    if (stem > 5 && !strcasecmp(name + stem - 5, ".vmdk"))
        stem -= 5;
    snprintf(full, VDK_NAME_MAX, "%.*s%s.vmdk", (int)stem, name, suffix);
    snprintf(base, VDK_NAME_MAX, "%s", vdk_basename(full));
    (void)b;
}

static int put_descriptor(struct created *cr, const char *name, const char *text, vdk_error *err)
{
    struct piece p[] = {{text, strlen(text), 0}};
    return put_file(cr, name, strlen(text), p, 1, err);
}

static int check_capacity(const char *name, const struct new_disk *nd, vdk_error *err)
{
    int lay = nd->type->layout;
    uint64_t max = lay == LAY_MONO_SPARSE || lay == LAY_STREAM ? MAX_SPARSE_SECTORS
                   : lay == LAY_VMFS_SPARSE                    ? MAX_COWD_SECTORS
                                                               : DESC_MAX_SECTORS / 2;
    if (nd->sectors == 0)
        return vdk_fail(err, VDK_E_INVAL, "%s: capacity must be at least one sector", name);
    if (nd->sectors > max)
        return vdk_fail(err, VDK_E_RANGE,
                        "%s: %s holds at most %llu bytes (%.1f TiB); use "
                        "twoGbMaxExtentSparse or a flat type for larger disks",
                        name, nd->type->name, (unsigned long long)(max * SECTOR),
                        (double)max / (1ull << 31));
    return 0;
}

static int make(struct created *cr, const char *name, const struct new_disk *nd, vdk_error *err)
{
    uint32_t cid;
    random_bytes(&cid, sizeof(cid));
    if (cid == 0xffffffffu)
        cid = 0xfffffffeu;
    char full[VDK_NAME_MAX], base[VDK_NAME_MAX];
    size_t cap = 256 + (nd->sectors / SPLIT_SECTORS + 1) * (VDK_NAME_MAX / 8);
    char *lines = calloc(1, cap);
    char *desc = NULL;
    int r = lines ? 0 : -VDK_E_NOMEM;
    int lay = nd->type->layout;
    if (r == 0 && (lay == LAY_SPLIT_SPARSE || lay == LAY_SPLIT_FLAT)) {
        size_t len = 0;
        for (uint64_t at = 0, i = 1; r == 0 && at < nd->sectors; at += SPLIT_SECTORS, i++) {
            uint64_t n = min_u64(SPLIT_SECTORS, nd->sectors - at);
            char suffix[16];
            snprintf(suffix, sizeof(suffix), "-%c%03llu", lay == LAY_SPLIT_SPARSE ? 's' : 'f',
                     (unsigned long long)i);
            extent_name(name, suffix, full, base);
            if (lay == LAY_SPLIT_SPARSE) {
                len += (size_t)snprintf(lines + len, cap - len, "RW %llu SPARSE \"%s\"\n",
                                        (unsigned long long)n, base);
                r = kdmv_file(cr, full, n, NULL, err);
            } else {
                len += (size_t)snprintf(lines + len, cap - len, "RW %llu FLAT \"%s\" 0\n",
                                        (unsigned long long)n, base);
                r = flat_file(cr, full, n, err);
            }
        }
    } else if (r == 0 && lay == LAY_MONO_SPARSE) {
        snprintf(lines, cap, "RW %llu SPARSE \"%s\"\n", (unsigned long long)nd->sectors,
                 vdk_basename(name));
    } else if (r == 0 && (lay == LAY_MONO_FLAT || lay == LAY_VMFS)) {
        extent_name(name, "-flat", full, base);
        snprintf(lines, cap, lay == LAY_VMFS ? "RW %llu VMFS \"%s\"\n" : "RW %llu FLAT \"%s\" 0\n",
                 (unsigned long long)nd->sectors, base);
        r = flat_file(cr, full, nd->sectors, err);
    } else if (r == 0 && lay == LAY_VMFS_SPARSE) {
        extent_name(name, "-delta", full, base);
        snprintf(lines, cap, "RW %llu VMFSSPARSE \"%s\"\n", (unsigned long long)nd->sectors, base);
        r = cowd_file(cr, full, nd->sectors, nd->parent_hint, err);
    } else if (r == 0 && lay == LAY_SE_SPARSE) {
        extent_name(name, "-sesparse", full, base);
        snprintf(lines, cap, "RW %llu SESPARSE \"%s\"\n", (unsigned long long)nd->sectors, base);
        r = sesparse_file(cr, full, nd->sectors, err);
    }
    if (r == 0 && !(desc = create_descriptor(nd, cid, lines)))
        r = vdk_fail(err, VDK_E_NOMEM, "out of memory");
    if (r == 0)
        r = lay == LAY_MONO_SPARSE ? kdmv_file(cr, name, nd->sectors, desc, err)
                                   : put_descriptor(cr, name, desc, err);
    free(lines);
    free(desc);
    return r;
}

int create_disk(vdk_store *st, const char *name, const struct new_disk *nd, vdk_error *err)
{
    int r = check_capacity(name, nd, err);
    if (r < 0)
        return r;
    if (nd->type->layout == LAY_STREAM) {
        struct stream_w *w;
        r = stream_open(st, name, nd, &w, err);
        return r < 0 ? r : stream_finish(w, 0, err);
    }
    struct created cr = {.st = st};
    r = make(&cr, name, nd, err);
    if (r < 0) {
        undo(&cr);
        return r;
    }
    char dir[VDK_NAME_MAX];
    const char *slash = strrchr(name, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - name) : 0, name);
    st->ops->sync_dir(st, dir);
    return 0;
}

/* ---- streamOptimized, written in VMware's order ---- */

struct stream_w {
    vdk_store *st;
    char name[VDK_NAME_MAX];
    vdk_file *f;
    uint64_t sectors, grains, n_gt;
    uint64_t at;     /* next byte to write */
    uint64_t cur_gt; /* table being filled */
    uint32_t *gt;    /* its entries */
    int gt_used;
    uint32_t *gd;
    unsigned char header[512];
    struct zpool *pool; /* compresses grains on the CPUs, hands them back in order */
    uint64_t next_gi;   /* stream_put's order check */
    vdk_error *err;     /* where sw_emit reports (the current put's or finish's) */
    int failed;         /* sw_emit has reported an error */
};

static int sw_write(struct stream_w *w, const void *p, size_t n, vdk_error *err)
{
    int r = write_all(w->f, p, n, w->at, w->name, err);
    w->at += (n + SECTOR - 1) / SECTOR * SECTOR;
    return r;
}

static int sw_marker(struct stream_w *w, uint64_t val, uint32_t type, vdk_error *err)
{
    unsigned char m[512] = {0};
    put_le64(m, val);
    put_le32(m + 12, type);
    return sw_write(w, m, sizeof(m), err);
}

/* Emit the table being filled (if it has entries) after its grains. */
static int sw_flush_gt(struct stream_w *w, vdk_error *err)
{
    if (!w->gt_used)
        return 0;
    int r = sw_marker(w, GTES * 4 / SECTOR, 1, err);
    if (r == 0) {
        w->gd[w->cur_gt] = (uint32_t)(w->at / SECTOR);
        unsigned char t[GTES * 4];
        for (unsigned i = 0; i < GTES; i++)
            put_le32(t + i * 4, w->gt[i]);
        r = sw_write(w, t, sizeof(t), err);
    }
    memset(w->gt, 0, GTES * 4);
    w->gt_used = 0;
    return r;
}

int stream_open(vdk_store *st, const char *name, const struct new_disk *nd, struct stream_w **out,
                vdk_error *err)
{
    int r = check_capacity(name, nd, err);
    if (r < 0)
        return r;
    struct stream_w *w = calloc(1, sizeof(*w));
    if (!w)
        return -VDK_E_NOMEM;
    w->st = st;
    snprintf(w->name, sizeof(w->name), "%s", name);
    w->sectors = nd->sectors;
    w->grains = (nd->sectors + GRAIN_SECTORS - 1) / GRAIN_SECTORS;
    w->n_gt = (w->grains + GTES - 1) / GTES;
    w->gt = calloc(GTES, 4);
    w->gd = calloc(w->n_gt, 4);
    /* level 6, as VMware's and qemu's writers: the size stays theirs */
    if (zpool_new(zpool_default_threads(), 6, STREAM_GRAIN, 12, &w->pool) < 0)
        w->pool = NULL;
    uint32_t cid;
    random_bytes(&cid, sizeof(cid));
    char lines[VDK_NAME_MAX + 64];
    snprintf(lines, sizeof(lines), "RW %llu SPARSE \"%s\"\n", (unsigned long long)nd->sectors,
             vdk_basename(name));
    char *desc = create_descriptor(nd, cid == 0xffffffffu ? 1 : cid, lines);
    if (!w->gt || !w->gd || !w->pool || !desc) {
        free(desc);
        stream_finish(w, 1, NULL);
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    }
    struct created cr = {.st = st};
    r = new_file(&cr, name, &w->f, err);
    uint64_t dsec = (strlen(desc) + SECTOR - 1) / SECTOR;
    unsigned char *h = w->header;
    memcpy(h, "KDMV", 4);
    put_le32(h + 4, 3);
    put_le32(h + 8, 0x30001); /* newline test, compressed grains, markers */
    put_le64(h + 12, nd->sectors);
    put_le64(h + 20, GRAIN_SECTORS);
    put_le64(h + 28, 1);
    put_le64(h + 36, dsec);
    put_le32(h + 44, GTES);
    put_le64(h + 56, 0xffffffffffffffffull); /* GD_AT_END: see the footer */
    put_le64(h + 64, GRAIN_SECTORS);
    memcpy(h + 73, "\n \r\n", 4);
    put_le16(h + 77, 1);
    if (r == 0) {
        w->at = 0;
        r = sw_write(w, h, 512, err);
    }
    if (r == 0)
        r = sw_write(w, desc, strlen(desc), err);
    w->at = GRAIN_SECTORS * SECTOR;
    free(desc);
    if (r < 0) {
        stream_finish(w, 1, NULL);
        return r;
    }
    *out = w;
    return 0;
}

/* One compressed grain, in order: the 12-byte grain marker (LBA, size)
 * goes in the room zpool left before the zlib stream. */
static int sw_emit(void *arg, uint64_t gi, unsigned char *z, size_t zl)
{
    struct stream_w *w = arg;
    int r = 0;
    if (gi / GTES != w->cur_gt) {
        r = sw_flush_gt(w, w->err);
        w->cur_gt = gi / GTES;
    }
    put_le64(z, gi * GRAIN_SECTORS);
    put_le32(z + 8, (uint32_t)zl);
    w->gt[gi % GTES] = (uint32_t)(w->at / SECTOR);
    w->gt_used = 1;
    if (r == 0 && (w->at + 12 + zl) / SECTOR > UINT32_MAX)
        r = vdk_fail(w->err, VDK_E_NOSPC, "%s: stream file passes 2 TiB", w->name);
    else if (r == 0)
        r = sw_write(w, z, 12 + zl, w->err);
    w->failed = r < 0;
    return r;
}

/* A pool error that sw_emit did not report is zlib's own. */
static int sw_pool_error(struct stream_w *w, int r, vdk_error *err)
{
    if (r < 0 && !w->failed) {
        w->failed = 1;
        return vdk_fail(err, VDK_E_NOMEM, "%s: compression failed", w->name);
    }
    return r;
}

int stream_put(struct stream_w *w, uint64_t gi, const void *grain, vdk_error *err)
{
    if (w->failed)
        return vdk_fail(err, VDK_E_IO, "%s: an earlier write failed", w->name);
    if (gi >= w->grains || gi < w->next_gi)
        return vdk_fail(err, VDK_E_INVAL, "%s: stream grains must come in increasing order",
                        w->name);
    w->next_gi = gi + 1;
    uint64_t left = (w->sectors - gi * GRAIN_SECTORS) * SECTOR;
    w->err = err;
    int r = zpool_put(w->pool, gi, grain, (size_t)min_u64(STREAM_GRAIN, left), sw_emit, w);
    return sw_pool_error(w, r, err);
}

int stream_finish(struct stream_w *w, int abort, vdk_error *err)
{
    int r = 0;
    if (!abort && w->failed)
        r = vdk_fail(err, VDK_E_IO, "%s: an earlier write failed", w->name);
    if (!abort && r == 0) {
        w->err = err;
        r = sw_pool_error(w, zpool_drain(w->pool, sw_emit, w), err);
    }
    if (!abort && r == 0) {
        r = sw_flush_gt(w, err);
        uint64_t gd_sectors = (w->n_gt * 4 + SECTOR - 1) / SECTOR;
        if (r == 0)
            r = sw_marker(w, gd_sectors, 2, err);
        uint64_t gd_at = w->at / SECTOR;
        unsigned char *gd = calloc(1, gd_sectors * SECTOR);
        if (r == 0 && !gd)
            r = vdk_fail(err, VDK_E_NOMEM, "out of memory");
        for (uint64_t i = 0; r == 0 && i < w->n_gt; i++)
            put_le32(gd + i * 4, w->gd[i]);
        if (r == 0)
            r = sw_write(w, gd, gd_sectors * SECTOR, err);
        free(gd);
        if (r == 0)
            r = sw_marker(w, 1, 3, err);
        unsigned char footer[512];
        memcpy(footer, w->header, 512);
        put_le64(footer + 56, gd_at);
        if (r == 0)
            r = sw_write(w, footer, 512, err);
        if (r == 0)
            r = sw_marker(w, 0, 0, err);
        if (r == 0) {
            int fr = w->f->ops->flush(w->f);
            if (fr < 0)
                r = fail_io(err, fr, "flushing", w->name);
        }
    }
    if (w->f)
        w->f->ops->close(w->f);
    if ((abort || r < 0) && w->f)
        w->st->ops->unlink(w->st, w->name);
    zpool_free(w->pool);
    free(w->gt);
    free(w->gd);
    free(w);
    return r;
}

int create_extent_file(vdk_store *st, const char *name, int format, uint64_t sectors,
                       const char *desc, const char *parent, vdk_error *err)
{
    struct created cr = {.st = st};
    int r = format == FMT_COWD       ? cowd_file(&cr, name, sectors, parent, err)
            : format == FMT_SESPARSE ? sesparse_file(&cr, name, sectors, err)
            : format == FMT_FLAT     ? flat_file(&cr, name, sectors, err)
                                     : kdmv_file(&cr, name, sectors, desc, err);
    if (r < 0)
        undo(&cr);
    return r;
}
