/* FLAT, VMFS, VMFSRDM and VMFSRAW extents: the bytes of the disk lie in a
 * file at a fixed offset. */
#include "engine.h"
#include "util.h"

static int flat_open(struct extent *e, vdk_error *err)
{
    uint64_t need = e->d->offset * SECTOR + e->size;
    if (e->file_size < need)
        return vdk_fail(err, VDK_E_CORRUPT,
                        "%s: flat extent file holds %llu bytes, the "
                        "descriptor needs %llu (offset %llu + %llu sectors): truncated?",
                        e->name, (unsigned long long)e->file_size, (unsigned long long)need,
                        (unsigned long long)e->d->offset, (unsigned long long)e->d->sectors);
    return 0;
}

static int flat_status(struct extent *e, uint64_t off, uint64_t len, struct run *r)
{
    *r = (struct run){.kind = RUN_DATA, .len = len, .file_off = e->d->offset * SECTOR + off};
    return 0;
}

static int flat_write(struct extent *e, uint64_t off, const void *buf, size_t len)
{
    return ext_pwrite(e, buf, len, e->d->offset * SECTOR + off);
}

const struct extent_ops extent_flat_ops = {
    .format = "flat",
    .open = flat_open,
    .status = flat_status,
    .write = flat_write,
};

static int zero_open(struct extent *e, vdk_error *err)
{
    return 0;
}

static int zero_status(struct extent *e, uint64_t off, uint64_t len, struct run *r)
{
    *r = (struct run){.kind = RUN_ZERO, .len = len};
    return 0;
}

const struct extent_ops extent_zero_ops = {
    .format = "zero",
    .open = zero_open,
    .status = zero_status,
};
