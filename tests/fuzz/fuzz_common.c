/* The bounded walk shared by the fuzz targets (see fuzz_common.h). */
#include "fuzz_common.h"

#include <string.h>

#define MiB        (1ull << 20)
#define READ_HEAD  (256u << 10) /* read at the start of the disk */
#define READ_PIECE (32u << 10)  /* read at the end and at a few offsets between */
#define CHUNK      3000u        /* odd piece size: runs and grains split mid-way */
#define MAP_WINDOW (4 * MiB)    /* mapped at each end of the disk */
#define WHOLE_MAX  (16 * MiB)   /* whole-disk walks (allocated bytes, check) up to this */
#define MAX_RANGES 100000u      /* vdk_map callbacks per walk */

static uint8_t base_flat[FUZZ_BASE_SECTORS * 512];
static const char base_desc[] = "# Disk DescriptorFile\nversion=1\nCID=" FUZZ_BASE_CID
                                "\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n"
                                "# Extent description\nRW 512 FLAT \"base-flat.vmdk\" 0\n\n"
                                "# The Disk Data Base\nddb.adapterType = \"ide\"\n";

static void quiet(const char *line)
{
    (void)line;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Notices (unclean shutdown, change tracking) would flood the output. */
    vdk_set_log(quiet);
    for (size_t i = 0; i < sizeof(base_flat); i++)
        base_flat[i] = (uint8_t)(i * 131 + (i >> 9) + 1);
    return 0;
}

vdk_store *fuzz_store(void)
{
    vdk_store *st;
    if (vdk_store_mem_new(&st) < 0)
        return NULL;
    if (vdk_store_mem_put(st, "base.vmdk", base_desc, strlen(base_desc)) < 0 ||
        vdk_store_mem_put(st, "base-flat.vmdk", base_flat, sizeof(base_flat)) < 0) {
        st->ops->destroy(st);
        return NULL;
    }
    return st;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* memcmp rather than a byte loop: the loop's instrumented compares cost more
 * than the library's work. */
static int all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* What vdk_map promises: ranges in order, without gaps, merged, and (over
 * the whole chain) whatever is not data reads as zeros. */
struct map_walk {
    uint64_t next;
    unsigned links, count;
    int last_kind;
    unsigned last_depth;
    const uint8_t *buf; /* bytes read at [0, buf_len), or NULL */
    uint64_t buf_len;
};

static int on_range(void *arg, const vdk_range *r)
{
    struct map_walk *w = arg;
    FUZZ_ASSERT(r->offset == w->next && r->length > 0);
    FUZZ_ASSERT(r->kind >= VDK_RANGE_DATA && r->kind <= VDK_RANGE_HOLE);
    FUZZ_ASSERT(r->depth < w->links);
    FUZZ_ASSERT(!w->count || r->kind != w->last_kind || r->depth != w->last_depth);
    if (w->buf && r->kind != VDK_RANGE_DATA && r->offset < w->buf_len)
        FUZZ_ASSERT(all_zero(w->buf + r->offset, min64(r->length, w->buf_len - r->offset)));
    w->next += r->length;
    w->last_kind = r->kind;
    w->last_depth = r->depth;
    return ++w->count >= MAX_RANGES;
}

static void map(vdk_disk *d, unsigned links, uint64_t off, uint64_t len, unsigned flags,
                const uint8_t *buf, uint64_t buf_len)
{
    struct map_walk w = {.next = off, .links = links, .buf = buf, .buf_len = buf_len};
    if (flags & VDK_MAP_THIS_LINK)
        w.buf = NULL; /* a hole there may be the parent's data */
    if (vdk_map(d, off, len, flags, on_range, &w) == 0)
        FUZZ_ASSERT(w.next == off + len);
}

static void on_line(void *arg, const char *line)
{
    FUZZ_ASSERT(line[0]);
    ++*(unsigned *)arg;
}

static void check(vdk_disk *d, int repair)
{
    unsigned lines = 0, problems = 0, repaired = 0;
    vdk_check(d, repair, on_line, &lines, &problems, &repaired);
    FUZZ_ASSERT(problems <= lines && (repair || !repaired));
}

static void metadata(vdk_disk *d)
{
    size_t need = 0;
    FUZZ_ASSERT(vdk_meta_keys(d, NULL, 0, &need) == -VDK_E_BUFSMALL && need >= 1);
    char *keys = malloc(need), value[256];
    if (keys && vdk_meta_keys(d, keys, need, NULL) == 0)
        for (const char *k = keys; *k; k += strlen(k) + 1) {
            size_t vn = 0;
            int r = vdk_meta_get(d, k, value, sizeof(value), &vn);
            FUZZ_ASSERT(r == 0 || r == -VDK_E_BUFSMALL || r == -VDK_E_INVAL);
        }
    free(keys);
}

/* Every read-only entry point, within the budget. */
static void walk(vdk_disk *d, int sequential)
{
    vdk_info info;
    vdk_extent_info x;
    FUZZ_ASSERT(vdk_get_info(d, &info) == 0);
    uint64_t cap = vdk_capacity(d);
    FUZZ_ASSERT(info.capacity == cap && cap % 512 == 0 && info.chain_depth >= 1);
    for (unsigned i = 0; i < info.extent_count; i++)
        FUZZ_ASSERT(vdk_get_extent(d, i, &x) == 0);
    FUZZ_ASSERT(vdk_get_extent(d, info.extent_count, &x) == -VDK_E_RANGE);
    metadata(d);

    uint8_t *head = malloc(READ_HEAD), *piece = malloc(READ_PIECE);
    if (!head || !piece)
        goto out;
    int64_t n = vdk_read(d, head, READ_HEAD, 0);
    FUZZ_ASSERT(n < 0 || (uint64_t)n == min64(READ_HEAD, cap));
    /* The same bytes again in odd pieces (the inflate cache, runs cut
     * inside grains); a stream input walks the whole head this way. */
    uint64_t span = n > 0 ? min64((uint64_t)n, sequential ? READ_HEAD : READ_PIECE) : 0;
    for (uint64_t off = 0; off < span; off += CHUNK) {
        size_t k = (size_t)min64(CHUNK, span - off);
        int64_t got = vdk_read(d, piece, k, off);
        if (got < 0)
            break;
        FUZZ_ASSERT((size_t)got == k && !memcmp(piece, head + off, k));
    }
    uint64_t at[] = {cap - min64(cap, READ_PIECE), cap / 5 + 77, cap / 5 * 2, cap / 5 * 3 + 4095,
                     cap / 5 * 4};
    for (size_t i = 0; i < sizeof(at) / sizeof(*at); i++) {
        int64_t got = vdk_read(d, piece, READ_PIECE, at[i]);
        FUZZ_ASSERT(got < 0 || (uint64_t)got == min64(READ_PIECE, cap - min64(cap, at[i])));
    }
    FUZZ_ASSERT(vdk_read(d, piece, 1, cap) == 0);

    uint64_t win = min64(cap, MAP_WINDOW);
    map(d, info.chain_depth, 0, win, 0, n > 0 ? head : NULL, n > 0 ? (uint64_t)n : 0);
    map(d, info.chain_depth, 0, win, VDK_MAP_THIS_LINK, NULL, 0);
    map(d, info.chain_depth, cap - win, win, 0, NULL, 0);
    if (cap <= WHOLE_MAX) {
        uint64_t bytes = 0;
        if (vdk_allocated_bytes(d, &bytes) == 0)
            FUZZ_ASSERT(bytes <= cap);
        check(d, 0);
    }
out:
    free(head);
    free(piece);
}

static void put(vdk_disk *d, uint64_t off, const void *buf, size_t len)
{
    uint64_t cap = vdk_capacity(d);
    if (len > cap || off > cap - len)
        return;
    int64_t w = vdk_write(d, buf, len, off);
    FUZZ_ASSERT(w < 0 || (size_t)w == len);
}

/* A few writes (new grains, a grain rewritten, zeros over data), a
 * discard, a metadata change, then repair. */
static void write_some(vdk_disk *d)
{
    static const uint8_t zeros[4096];
    uint8_t data[4096];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 3);
    uint64_t cap = vdk_capacity(d);
    put(d, 0, data, sizeof(data));
    put(d, cap / 2, data, 512);
    put(d, cap / 3 + 7, data, 3000);
    put(d, cap - min64(cap, 1000), data, 1000);
    put(d, 0, zeros, sizeof(zeros));
    if (cap > (64 << 10))
        vdk_discard(d, 64 << 10, min64(cap - (64 << 10), 256 << 10));
    vdk_flush(d);
    vdk_error err;
    vdk_meta_set(d, "fuzz", "1", &err);
    if (cap <= WHOLE_MAX)
        check(d, 1);
}

void fuzz_disk(vdk_store *st, const char *name, unsigned flags)
{
    vdk_disk *d = NULL;
    vdk_error err = {0};
    int r = vdk_open_store(st, name, VDK_OPEN_RDONLY, &d, &err);
    if (r < 0) {
        /* A refusal always says what is wrong, and in which file. */
        FUZZ_ASSERT(err.message[0] && d == NULL);
        return;
    }
    walk(d, flags & FUZZ_SEQUENTIAL);
    vdk_close(d);
    if (!(flags & FUZZ_WRITE) || vdk_open_store(st, name, 0, &d, &err) < 0)
        return;
    write_some(d);
    vdk_close(d);
    /* What the writes and the repair left must read cleanly too. */
    if (vdk_open_store(st, name, VDK_OPEN_RDONLY, &d, &err) == 0) {
        walk(d, 0);
        vdk_close(d);
    }
}

void fuzz_redo_log(const uint8_t *data, size_t size, const char *type, const char *create,
                   uint64_t sectors)
{
    /* The header's capacity, kept within what a descriptor may say, so the
     * fixed descriptor agrees with most inputs and the extent itself is
     * what gets tested. */
    if (sectors == 0 || sectors > (1ull << 47))
        sectors = sectors ? 1ull << 47 : 1;
    char desc[512];
    snprintf(desc, sizeof(desc),
             "# Disk DescriptorFile\nversion=1\nCID=fedcba98\nparentCID=" FUZZ_BASE_CID
             "\ncreateType=\"%s\"\nparentFileNameHint=\"base.vmdk\"\n\n"
             "RW %llu %s \"disk-extent.vmdk\"\n\nddb.adapterType = \"lsilogic\"\n",
             create, (unsigned long long)sectors, type);
    vdk_store *st = fuzz_store();
    if (!st)
        return;
    if (vdk_store_mem_put(st, "disk.vmdk", desc, strlen(desc)) == 0 &&
        vdk_store_mem_put(st, "disk-extent.vmdk", data, size) == 0)
        fuzz_disk(st, "disk.vmdk", FUZZ_WRITE);
    st->ops->destroy(st);
}
