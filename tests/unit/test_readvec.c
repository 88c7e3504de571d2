/* vdk_read_vec: the pieces it names in files plus the bytes it copies give
 * exactly what vdk_read gives, for any range and any room; local data runs
 * are named rather than copied; a file shorter than its table claims is an
 * error, as in vdk_read.  vdk_read_lend: the same with pieces a store
 * lends, all of which come back, even when a read fails halfway. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "faultstore.h"

#define MiB (1u << 20)
#define N   (6 * MiB)

static char dir[64];

static void write_file(const char *name, const void *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, p, n), (ssize_t)n);
    close(fd);
}

/* base.vmdk: hosted sparse with data, zeroed and empty grains; top.vmdk: a
 * streamOptimized child (compressed grains travel as memory). */
static void make_chain(uint8_t *model)
{
    uint8_t *raw = make_raw(N, 3), *plan = malloc(N / 65536);
    uint64_t seed = 9;
    for (size_t g = 0; g < N / 65536; g++)
        plan[g] = rnd(&seed) % 4 == 0 ? G_NONE : rnd(&seed) % 5 == 0 ? G_ZERO : G_DATA;
    char line[128];
    snprintf(line, sizeof(line), "RW %u SPARSE \"base.vmdk\"", N / 512);
    char *text = descriptor("monolithicSparse", line, NULL, 7, 0xffffffff);
    struct buf b;
    build_kdmv(raw, plan,
               &(struct kdmv_opts){.capacity = N / 512, .descriptor = text, .zeroed_flag = 1}, &b);
    write_file("base.vmdk", b.p, b.len);
    for (size_t off = 0; off < N; off += 65536)
        if (plan[off / 65536] == G_DATA)
            memcpy(model + off, raw + off, 65536);
        else
            memset(model + off, 0, 65536);
    buf_free(&b);
    free(text);
    uint8_t *raw2 = make_raw(N, 4), *plan2 = malloc(N / 65536);
    for (size_t g = 0; g < N / 65536; g++)
        plan2[g] = g % 7 == 3 ? G_DATA : G_NONE;
    snprintf(line, sizeof(line), "RW %u SPARSE \"top.vmdk\"", N / 512);
    text = descriptor("streamOptimized", line, "base.vmdk", 8, 7);
    build_kdmv(raw2, plan2,
               &(struct kdmv_opts){.capacity = N / 512, .descriptor = text, .stream = 1}, &b);
    write_file("top.vmdk", b.p, b.len);
    for (size_t off = 0; off < N; off += 65536)
        if (plan2[off / 65536] == G_DATA)
            memcpy(model + off, raw2 + off, 65536);
    buf_free(&b);
    free(text);
    free(raw);
    free(raw2);
    free(plan);
    free(plan2);
}

/* Put the answer together as a caller would, and count named pieces. */
static unsigned assemble(const vdk_segment *seg, int k, const uint8_t *buf, uint8_t *out)
{
    size_t pos = 0;
    unsigned named = 0;
    for (int i = 0; i < k; i++) {
        if (seg[i].fd >= 0) {
            ssize_t got = pread(seg[i].fd, out + pos, seg[i].len, (off_t)seg[i].fd_off);
            cr_assert_eq(got, (ssize_t)seg[i].len, "a named piece reads short");
            named++;
        } else if (seg[i].fd == VDK_SEG_LENT) {
            memcpy(out + pos, seg[i].mem, seg[i].len);
        } else {
            memcpy(out + pos, buf + pos, seg[i].len);
        }
        pos += seg[i].len;
    }
    return named;
}

/* rounds random reads (any range, any room from 1 to 16) through
 * vdk_read_vec, or vdk_read_lend with lent_by set, each checked against
 * the model and its lent pieces given back; returns the pieces named in
 * files and, in *lent, the pieces lent. */
static unsigned random_reads(vdk_disk *d, const uint8_t *model, uint64_t seed, int rounds,
                             vdk_store *lent_by, unsigned *lent)
{
    uint8_t *buf = malloc(2 * MiB), *out = malloc(2 * MiB);
    vdk_segment seg[16];
    unsigned named = 0;
    *lent = 0;
    for (int i = 0; i < rounds; i++) {
        uint64_t off = rnd(&seed) % N;
        size_t len = (size_t)(rnd(&seed) % (2 * MiB)) + 1;
        unsigned room = 1 + (unsigned)(rnd(&seed) % 16);
        int k = lent_by ? vdk_read_lend(d, buf, len, off, seg, room)
                        : vdk_read_vec(d, buf, len, off, seg, room);
        size_t want = len < N - off ? len : N - off;
        cr_assert_gt(k, 0);
        cr_assert_leq((unsigned)k, room);
        size_t total = 0;
        for (int j = 0; j < k; j++) {
            total += seg[j].len;
            *lent += seg[j].fd == VDK_SEG_LENT;
        }
        cr_assert_eq(total, want, "pieces cover %zu of %zu bytes", total, want);
        named += assemble(seg, k, buf, out);
        cr_assert(!memcmp(out, model + off, want), "read at %llu+%zu (room %u, lending %d) differs",
                  (unsigned long long)off, len, room, lent_by != NULL);
        if (room == 1)
            cr_assert_eq(seg[0].fd, -1, "one piece of room: everything is copied");
        if (lent_by) {
            vdk_read_release(seg, k);
            cr_assert_eq(faultstore_lent(lent_by), 0, "%ld pieces not given back",
                         faultstore_lent(lent_by));
        }
    }
    free(buf);
    free(out);
    return named;
}

/* The test's folder goes, passed or failed (a fini runs after a failed
 * assertion too). */
static void remove_dir(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/base.vmdk", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/top.vmdk", dir);
    unlink(path);
    rmdir(dir);
}

Test(read_vec, pieces_rebuild_the_bytes, .fini = remove_dir)
{
    snprintf(dir, sizeof(dir), "/tmp/vdk-readvec-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    uint8_t *model = malloc(N);
    make_chain(model);
    vdk_store *st;
    cr_assert_eq(vdk_store_local_new(dir, &st), 0);
    vdk_disk *d = open_ok(st, "top.vmdk", VDK_OPEN_RDONLY);
    uint8_t *buf = malloc(2 * MiB), *out = malloc(2 * MiB);
    vdk_segment seg[16];
    unsigned lent;
    unsigned named = random_reads(d, model, 77, 400, NULL, &lent);
    cr_assert_eq(lent, 0, "vdk_read_vec lent pieces");
    cr_assert_gt(named, 100, "local data runs are named, not copied (%u named)", named);
    cr_assert_eq(vdk_read_vec(d, buf, 10, N, seg, 4), 0, "past the capacity: nothing");
    vdk_close(d);
    /* a base whose file was cut short: the named path must not hide it */
    char path[128];
    snprintf(path, sizeof(path), "%s/base.vmdk", dir);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(truncate(path, sb.st_size - 3 * 65536), 0);
    d = open_ok(st, "base.vmdk", VDK_OPEN_RDONLY);
    int64_t whole = vdk_read(d, buf, 2 * MiB, N - 2 * MiB);
    int k = vdk_read_vec(d, buf, 2 * MiB, N - 2 * MiB, seg, 16);
    cr_assert_lt(whole, 0, "the test needs a grain past the cut");
    cr_assert_eq(k, (int)whole, "read_vec fails as vdk_read does (%d vs %lld)", k,
                 (long long)whole);
    vdk_close(d);
    st->ops->destroy(st);
    free(buf);
    free(out);
    free(model);
}

Test(read_vec, lent_pieces_rebuild_the_bytes, .fini = remove_dir)
{
    snprintf(dir, sizeof(dir), "/tmp/vdk-readlend-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    uint8_t *model = malloc(N);
    make_chain(model);
    vdk_store *local, *st;
    cr_assert_eq(vdk_store_local_new(dir, &local), 0);
    st = faultstore_new(local, 0);
    faultstore_lend(st, 100000, 0); /* pieces end inside grains too */
    vdk_disk *d = open_ok(st, "top.vmdk", VDK_OPEN_RDONLY);
    uint8_t *buf = malloc(2 * MiB);
    vdk_segment seg[16];
    unsigned lent;
    random_reads(d, model, 78, 300, st, &lent);
    cr_assert_gt(lent, 100, "data runs are lent, not copied (%u lent)", lent);
    /* vdk_read_vec never lends */
    int k = vdk_read_vec(d, buf, 2 * MiB, 0, seg, 16);
    cr_assert_gt(k, 0);
    for (int j = 0; j < k; j++)
        cr_assert_neq(seg[j].fd, VDK_SEG_LENT);
    vdk_close(d);
    /* a pin failing after others succeeded: the read fails, nothing stays lent */
    d = open_ok(st, "base.vmdk", VDK_OPEN_RDONLY);
    faultstore_lend(st, 100000, 3);
    k = vdk_read_lend(d, buf, 2 * MiB, 0, seg, 16);
    cr_assert_lt(k, 0, "the third pin failed: %d", k);
    cr_assert_eq(faultstore_lent(st), 0, "%ld pieces left lent", faultstore_lent(st));
    vdk_close(d);
    st->ops->destroy(st);
    local->ops->destroy(local);
    free(buf);
    free(model);
}
