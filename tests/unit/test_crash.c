/* Crash states: every workload runs once through a recording store; then
 * every state a crash could leave is rebuilt (each prefix of the log, and
 * prefixes missing some writes that no flush had made durable yet) and must
 * open, be brought to clean by check --repair, and read back every byte that
 * was flushed before the crash.
 *
 * VDK_CRASH_REORDERS (default 2) sets how many random subsets of the
 * un-flushed writes are dropped at each cut; VDK_CRASH_WRITES (default 36)
 * the guest writes of the write workloads.  The long run sets both higher. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "recstore.h"

#define MIB    (1024u * 1024u)
#define CAP    (36u * MIB) /* two grain tables of 64 KiB grains */
#define SEC    512u
#define NWIN   3
#define MAX_WR 4096
#define MAX_FL 1024

/* Guest writes land in three windows: the start, across the first grain
 * table boundary (32 MiB), and the end.  Only they are compared. */
static const uint64_t win_off[NWIN] = {0, 31 * MIB + MIB / 2, CAP - MIB};
static const uint64_t win_len = MIB;

struct gwrite {
    uint64_t off, len;
    uint32_t id; /* 0: zeros */
    size_t at;   /* log position of its start marker */
};

struct model {
    uint8_t *init; /* the windows before the workload */
    struct gwrite w[MAX_WR];
    size_t nw;
    size_t fl_begin[MAX_FL], fl_end[MAX_FL]; /* flush markers */
    size_t nf;
};

static char state_desc[96]; /* which state is being checked, for failures */

static void quiet(const char *line)
{
    (void)line; /* thousands of "not closed cleanly" notices */
}

static unsigned env_or(const char *name, unsigned dflt)
{
    const char *v = getenv(name);
    return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

/* The 512 bytes write 'id' puts at sector lba. */
static void pattern(uint32_t id, uint64_t lba, uint8_t *out)
{
    if (id == 0) {
        memset(out, 0, SEC);
        return;
    }
    uint64_t st = ((uint64_t)id << 40) ^ (lba * 0x9e3779b97f4a7c15ull);
    for (unsigned i = 0; i < SEC; i += 8) {
        uint64_t v = rnd(&st);
        memcpy(out + i, &v, 8);
    }
}

static int win_index(uint64_t off)
{
    for (int i = 0; i < NWIN; i++)
        if (off >= win_off[i] && off < win_off[i] + win_len)
            return i;
    return -1;
}

/* Where in the window buffer (NWIN * win_len bytes) guest byte off sits. */
static size_t win_pos(uint64_t off)
{
    int i = win_index(off);
    return (size_t)i * win_len + (size_t)(off - win_off[i]);
}

static uint8_t *read_windows(vdk_disk *d)
{
    uint8_t *b = malloc(NWIN * win_len);
    for (int i = 0; i < NWIN; i++) {
        uint64_t cap = vdk_capacity(d), off = win_off[i], n = win_len;
        memset(b + i * win_len, 0, win_len);
        if (off >= cap)
            continue;
        if (off + n > cap)
            n = cap - off;
        int64_t r = vdk_read(d, b + i * win_len, (size_t)n, off);
        if (r != (int64_t)n) {
            vdk_error e;
            vdk_last_error(d, &e);
            free(b);
            cr_log_error("read of window %d failed: %s", i, e.message);
            return NULL;
        }
    }
    return b;
}

/* One guest write of pattern 'id' through the recording store. */
static void guest_write(vdk_disk *d, vdk_store *rec, struct model *m, uint64_t off, uint64_t len,
                        uint32_t id)
{
    cr_assert_lt(m->nw, MAX_WR);
    struct gwrite *w = &m->w[m->nw++];
    *w = (struct gwrite){off, len, id, recstore_mark(rec, 1)};
    uint8_t *buf = malloc(len);
    for (uint64_t s = 0; s < len; s += SEC)
        pattern(id, (off + s) / SEC, buf + s);
    int64_t r = vdk_write(d, buf, len, off);
    free(buf);
    cr_assert_eq(r, (int64_t)len, "workload write failed: %lld", (long long)r);
}

static void guest_flush(vdk_disk *d, vdk_store *rec, struct model *m)
{
    cr_assert_lt(m->nf, MAX_FL);
    m->fl_begin[m->nf] = recstore_mark(rec, 2);
    cr_assert_eq(vdk_flush(d), 0);
    m->fl_end[m->nf++] = recstore_mark(rec, 3);
}

/* The windows as the last flush completed before 'cut' left them. */
static uint8_t *durable_image(const struct model *m, size_t cut, size_t *since)
{
    size_t fb = 0;
    for (size_t i = 0; i < m->nf; i++)
        if (m->fl_end[i] < cut)
            fb = m->fl_begin[i];
    uint8_t *img = malloc(NWIN * win_len);
    memcpy(img, m->init, NWIN * win_len);
    for (size_t i = 0; i < m->nw && m->w[i].at < fb; i++)
        for (uint64_t s = 0; s < m->w[i].len; s += SEC)
            pattern(m->w[i].id, (m->w[i].off + s) / SEC, img + win_pos(m->w[i].off + s));
    *since = fb;
    return img;
}

/* What a sector's bytes are, for failure messages: -1 zeros, 0 the initial
 * content, i + 1 guest write i, -2 none of these. */
static int identify(const struct model *m, const uint8_t *sector, size_t pos, uint64_t off)
{
    uint8_t alt[SEC];
    int code = -2;
    pattern(0, 0, alt);
    if (!memcmp(alt, sector, SEC))
        code = -1;
    if (!memcmp(m->init + pos, sector, SEC))
        code = 0;
    for (size_t i = 0; code == -2 && i < m->nw; i++) {
        pattern(m->w[i].id, off / SEC, alt);
        if (!memcmp(alt, sector, SEC))
            code = (int)i + 1;
    }
    return code;
}

/* Compare what a crash state reads with the model: each sector holds its
 * durable content or what a write begun after that flush put there. */
static void compare(const struct model *m, const uint8_t *got, size_t cut, const char *what)
{
    size_t since;
    uint8_t *want = durable_image(m, cut, &since);
    uint8_t alt[SEC];
    for (size_t p = 0; p < NWIN * win_len; p += SEC) {
        if (!memcmp(got + p, want + p, SEC))
            continue;
        uint64_t off = win_off[p / win_len] + p % win_len;
        int ok = 0;
        for (size_t i = 0; !ok && i < m->nw; i++) {
            const struct gwrite *w = &m->w[i];
            if (w->at < since || w->at >= cut || off < w->off || off >= w->off + w->len)
                continue;
            pattern(w->id, off / SEC, alt);
            ok = !memcmp(alt, got + p, SEC);
        }
        if (!ok) {
            /* say what the sector holds instead, to tell lost from garbage */
            int holds = identify(m, got + p, p, off);
            int wants = identify(m, want + p, p, off);
            cr_log_error("%s: flushed content is code %d (write no. %d)", what, wants, wants - 1);
            cr_log_error("%s: at op %zu, sector %llu holds %s %d (zero: -1, initial: 0, "
                         "unknown: -2); last completed flush began at op %zu; %s",
                         what, cut, (unsigned long long)(off / SEC),
                         holds > 0 ? "guest write no." : "code", holds > 0 ? holds - 1 : holds,
                         since, state_desc);
            free(want);
            cr_assert_fail("%s: crash at op %zu: guest byte %llu holds neither its flushed content "
                           "nor a later write",
                           what, cut, (unsigned long long)off);
        }
    }
    free(want);
}

static void collect(void *arg, const char *line)
{
    char *buf = arg;
    size_t n = strlen(buf);
    snprintf(buf + n, 2048 - n, "%s%s", n ? "; " : "", line);
}

/* Open the state; repair it; it must then check clean on a fresh open.
 * Returns the disk opened read-only (caller closes). */
static vdk_disk *recover(vdk_store *st, const char *name, size_t cut, const char *what)
{
    vdk_disk *d = NULL;
    vdk_error err = {0};
    int r = vdk_open_store(st, name, VDK_OPEN_RDONLY, &d, &err);
    cr_assert_eq(r, 0, "%s: crash at op %zu: does not open: %s", what, cut, err.message);
    vdk_close(d);
    r = vdk_open_store(st, name, 0, &d, &err);
    cr_assert_eq(r, 0, "%s: crash at op %zu: does not open for repair: %s", what, cut, err.message);
    unsigned problems = 0, repaired = 0;
    /* every other state relies on the repair a writable open makes of an
     * unclean link by itself */
    if (cut % 2 == 0)
        cr_assert_eq(vdk_check(d, 1, NULL, NULL, &problems, &repaired), 0);
    cr_assert_eq(vdk_close(d), 0, "%s: crash at op %zu: close after repair failed", what, cut);
    r = vdk_open_store(st, name, VDK_OPEN_RDONLY, &d, &err);
    cr_assert_eq(r, 0, "%s: crash at op %zu: does not open after repair: %s", what, cut,
                 err.message);
    vdk_info info;
    vdk_get_info(d, &info);
    cr_assert_eq(info.unclean, 0, "%s: crash at op %zu: still unclean after repair", what, cut);
    problems = 0;
    char report[2048] = "";
    cr_assert_eq(vdk_check(d, 0, collect, report, &problems, NULL), 0);
    cr_assert_eq(problems, 0, "%s: crash at op %zu: %u problems remain after repair (%u fixed): %s",
                 what, cut, problems, repaired, report);
    return d;
}

/* What a workload's crash states must satisfy. */
struct scenario {
    const char *what;
    struct model m;
    const char *name;                /* the disk to open after a crash */
    const char *alt;                 /* or this one when 'name' is gone (commit) */
    uint64_t cap_old, cap_new;       /* grow: either capacity is fine */
    const char *key, *v_old, *v_new; /* metadata: either value is fine */
    const char *also;                /* if present, must open and read the same */
};

static int exists(vdk_store *s, const char *name)
{
    struct vdk_stat st;
    return s->ops->stat(s, name, &st) == 0;
}

static void verify_state(struct scenario *sc, vdk_store *st, size_t cut)
{
    const char *name = sc->alt && !exists(st, sc->name) ? sc->alt : sc->name;
    vdk_disk *d = recover(st, name, cut, sc->what);
    if (sc->cap_new) {
        uint64_t c = vdk_capacity(d);
        cr_assert(c == sc->cap_old || c == sc->cap_new, "%s: crash at op %zu: capacity %llu",
                  sc->what, cut, (unsigned long long)c);
    }
    if (sc->key) {
        char v[256];
        size_t need;
        cr_assert_eq(vdk_meta_get(d, sc->key, v, sizeof(v), &need), 0);
        cr_assert(!strcmp(v, sc->v_old) || !strcmp(v, sc->v_new), "%s: crash at op %zu: %s is '%s'",
                  sc->what, cut, sc->key, v);
    }
    uint8_t *got = read_windows(d);
    cr_assert(got, "%s: crash at op %zu: read failed after repair", sc->what, cut);
    compare(&sc->m, got, cut, sc->what);
    free(got);
    vdk_close(d);
    if (sc->also && exists(st, sc->also)) {
        vdk_error err = {0};
        int r = vdk_open_store(st, sc->also, VDK_OPEN_RDONLY, &d, &err);
        cr_assert_eq(r, 0, "%s: crash at op %zu: %s exists but does not open: %s", sc->what, cut,
                     sc->also, err.message);
        got = read_windows(d);
        cr_assert(got);
        compare(&sc->m, got, cut, sc->what);
        free(got);
        vdk_close(d);
    }
}

/* Rebuild and verify every crash state of the recorded run. */
static size_t enumerate(struct scenario *sc, vdk_store *rec, const struct rec_snapshot *start)
{
    vdk_set_log(quiet);
    size_t n;
    recstore_log(rec, &n);
    unsigned reorders = env_or("VDK_CRASH_REORDERS", 2);
    uint8_t *pending = calloc(n + 1, 1), *drop = calloc(n + 1, 1);
    vdk_store *run = rec_snapshot_store(start); /* ops [0, k) applied */
    vdk_store *ck = rec_copy(run);              /* a point with nothing pending */
    size_t ck_at = 0, states = 0, reordered = 0;
    uint64_t seed = 42;
    /* Long logs (one-sector COWD grains, big grows) are sampled: every
     * step-th cut, plus all cuts with nothing pending, so the test command
     * stays short; VDK_CRASH_MAX_CUTS=0 checks every cut. */
    unsigned max_cuts = env_or("VDK_CRASH_MAX_CUTS", 400);
    size_t step = max_cuts && n > max_cuts ? n / max_cuts + 1 : 1;
    for (size_t k = 0; k <= n; k++) {
        if (k > 0)
            rec_apply(rec, run, k - 1, k, NULL);
        const struct rec_op *log = recstore_log(rec, &n);
        if (k > 0 && log[k - 1].kind == REC_MARK)
            continue; /* a marker changes nothing: same state as before it */
        size_t np = rec_pending(rec, k, pending);
        if (k % step && k != n && np)
            continue;
        vdk_store *st = rec_copy(run);
        snprintf(state_desc, sizeof(state_desc), "the whole prefix");
        verify_state(sc, st, k);
        st->ops->destroy(st);
        states++;
        if (np == 0) {
            ck->ops->destroy(ck);
            ck = rec_copy(run);
            ck_at = k;
            continue;
        }
        for (unsigned t = 0; t < reorders; t++) {
            memset(drop, 0, n + 1);
            size_t dropped = 0;
            for (size_t i = ck_at; i < k; i++)
                if (pending[i] && (rnd(&seed) & 1))
                    drop[i] = 1, dropped++;
            if (dropped == 0)
                continue;
            st = rec_copy(ck);
            rec_apply(rec, st, ck_at, k, drop);
            snprintf(state_desc, sizeof(state_desc), "the prefix without %zu of %zu pending writes",
                     dropped, np);
            verify_state(sc, st, k);
            st->ops->destroy(st);
            states++, reordered++;
        }
    }
    run->ops->destroy(run);
    ck->ops->destroy(ck);
    free(pending);
    free(drop);
    fprintf(stderr, "crash[%s]: %zu ops logged, %zu crash states checked (%zu with lost writes)\n",
            sc->what, n, states, reordered);
    cr_assert_gt(states, 3);
    return states;
}

/* ---- building the starting disks ---- */

static void make_disk(vdk_store *s, const char *name, const char *type)
{
    vdk_create_params p = {.type = type, .capacity = CAP};
    vdk_error err = {0};
    cr_assert_eq(vdk_create(s, name, &p, &err), 0, "%s", err.message);
}

/* Data in every window, written and closed (durable before the workload). */
static void fill(vdk_store *s, const char *name, uint32_t id_base)
{
    vdk_disk *d;
    vdk_error err = {0};
    cr_assert_eq(vdk_open_store(s, name, 0, &d, &err), 0, "%s", err.message);
    uint8_t *buf = malloc(256 * 1024);
    for (int i = 0; i < NWIN; i++)
        for (uint64_t o = 0; o < win_len; o += 384 * 1024) {
            uint64_t off = win_off[i] + o, len = 256 * 1024;
            for (uint64_t q = 0; q < len; q += SEC)
                pattern(id_base + (uint32_t)i, (off + q) / SEC, buf + q);
            cr_assert_eq(vdk_write(d, buf, len, off), (int64_t)len);
        }
    free(buf);
    cr_assert_eq(vdk_close(d), 0);
}

static void make_child(vdk_store *s, const char *parent, const char *name, const char *type)
{
    vdk_disk *d;
    vdk_error err = {0};
    cr_assert_eq(vdk_open_store(s, parent, 0, &d, &err), 0, "%s", err.message);
    cr_assert_eq(vdk_create_child(d, name, type, NULL, &err), 0, "%s", err.message);
    vdk_close(d);
}

static void take_init(struct scenario *sc, vdk_store *s, const char *name)
{
    vdk_disk *d;
    vdk_error err = {0};
    cr_assert_eq(vdk_open_store(s, name, VDK_OPEN_RDONLY, &d, &err), 0, "%s", err.message);
    sc->m.init = read_windows(d);
    cr_assert(sc->m.init);
    vdk_close(d);
}

/* Random writes (a sixth all zeros) inside the windows, a flush every few. */
static void random_writes(vdk_disk *d, vdk_store *rec, struct model *m, unsigned count,
                          uint64_t seed)
{
    for (unsigned i = 0; i < count; i++) {
        int w = (int)(rnd(&seed) % NWIN);
        uint64_t len = (rnd(&seed) % 192 + 1) * SEC;
        uint64_t off = win_off[w] + (rnd(&seed) % ((win_len - len) / SEC)) * SEC;
        uint32_t id = (i % 6 == 5) ? 0 : (uint32_t)(1000 + i);
        guest_write(d, rec, m, off, len, id);
        if (rnd(&seed) % 4 == 0)
            guest_flush(d, rec, m);
    }
}

static struct scenario *new_scenario(const char *what, const char *name)
{
    struct scenario *sc = calloc(1, sizeof(*sc));
    sc->what = what;
    sc->name = name;
    return sc;
}

static void free_scenario(struct scenario *sc)
{
    free(sc->m.init);
    free(sc);
}

/* The write workload on disk 'top' of store s (already built). */
static void write_workload(const char *what, vdk_store *s, const char *top)
{
    struct scenario *sc = new_scenario(what, top);
    take_init(sc, s, top);
    struct rec_snapshot start;
    rec_snapshot_take(s, &start);
    vdk_store *rec = recstore_new(s);
    vdk_disk *d;
    vdk_error err = {0};
    cr_assert_eq(vdk_open_store(rec, top, 0, &d, &err), 0, "%s", err.message);
    random_writes(d, rec, &sc->m, env_or("VDK_CRASH_WRITES", 36), 7);
    sc->m.fl_begin[sc->m.nf] = recstore_mark(rec, 2);
    cr_assert_eq(vdk_close(d), 0);
    sc->m.fl_end[sc->m.nf++] = recstore_mark(rec, 3);
    enumerate(sc, rec, &start);
    rec->ops->destroy(rec);
    rec_snapshot_free(&start);
    free_scenario(sc);
}

Test(crash, writes_monolithic_sparse, .timeout = 3600)
{
    vdk_store *s;
    vdk_store_mem_new(&s);
    make_disk(s, "d.vmdk", "monolithicSparse");
    fill(s, "d.vmdk", 10);
    write_workload("monolithicSparse writes", s, "d.vmdk");
    s->ops->destroy(s);
}

Test(crash, writes_twogb_sparse, .timeout = 3600)
{
    vdk_store *s;
    vdk_store_mem_new(&s);
    make_disk(s, "d.vmdk", "twoGbMaxExtentSparse");
    write_workload("twoGbMaxExtentSparse writes", s, "d.vmdk");
    s->ops->destroy(s);
}

static void child_writes(const char *what, const char *type)
{
    vdk_store *s;
    vdk_store_mem_new(&s);
    make_disk(s, "base.vmdk", "monolithicSparse");
    fill(s, "base.vmdk", 20);
    make_child(s, "base.vmdk", "child.vmdk", type);
    write_workload(what, s, "child.vmdk");
    s->ops->destroy(s);
}

Test(crash, writes_sparse_child, .timeout = 3600)
{
    child_writes("monolithicSparse child writes", "monolithicSparse");
}

Test(crash, writes_vmfs_sparse_child, .timeout = 3600)
{
    child_writes("vmfsSparse child writes", "vmfsSparse");
}

Test(crash, writes_sesparse_child, .timeout = 3600)
{
    child_writes("seSparse child writes", "seSparse");
}

/* A store operation (grow, metadata, child, commit, shrink, defragment)
 * recorded and enumerated; content must be exactly the starting one. */
typedef void (*store_op)(vdk_store *rec, struct scenario *sc);

static void op_workload(struct scenario *sc, vdk_store *s, store_op op)
{
    /* commit: the top's view now is what either link must show later */
    take_init(sc, s, sc->name);
    struct rec_snapshot start;
    rec_snapshot_take(s, &start);
    vdk_store *rec = recstore_new(s);
    op(rec, sc);
    enumerate(sc, rec, &start);
    rec->ops->destroy(rec);
    rec_snapshot_free(&start);
}

static void do_grow(vdk_store *rec, struct scenario *sc)
{
    vdk_error err = {0};
    cr_assert_eq(vdk_grow(rec, sc->name, sc->cap_new, &err), 0, "%s", err.message);
}

static void grow_case(const char *what, const char *type, uint64_t to)
{
    vdk_store *s;
    vdk_store_mem_new(&s);
    make_disk(s, "g.vmdk", type);
    fill(s, "g.vmdk", 30);
    struct scenario *sc = new_scenario(what, "g.vmdk");
    sc->cap_old = CAP;
    sc->cap_new = to;
    op_workload(sc, s, do_grow);
    free_scenario(sc);
    s->ops->destroy(s);
}

Test(crash, grow_sparse, .timeout = 3600)
{
    /* far enough that the grain directory outgrows its place and moves */
    grow_case("grow monolithicSparse", "monolithicSparse", 40ull << 30);
}

Test(crash, grow_twogb, .timeout = 3600)
{
    grow_case("grow twoGbMaxExtentSparse", "twoGbMaxExtentSparse", 5ull << 30);
}

static void do_meta(vdk_store *rec, struct scenario *sc)
{
    vdk_disk *d;
    vdk_error err = {0};
    cr_assert_eq(vdk_open_store(rec, sc->name, 0, &d, &err), 0, "%s", err.message);
    cr_assert_eq(vdk_meta_set(d, sc->key, sc->v_new, &err), 0, "%s", err.message);
    cr_assert_eq(vdk_close(d), 0);
}

static void meta_case(const char *what, const char *type, const char *value)
{
    vdk_store *s;
    vdk_store_mem_new(&s);
    make_disk(s, "m.vmdk", type);
    fill(s, "m.vmdk", 40);
    struct scenario *sc = new_scenario(what, "m.vmdk");
    sc->key = "adapterType";
    sc->v_old = "ide";
    sc->v_new = value;
    op_workload(sc, s, do_meta);
    free_scenario(sc);
    s->ops->destroy(s);
}

Test(crash, metadata, .timeout = 3600)
{
    meta_case("metadata in place", "monolithicSparse", "lsilogic");
    meta_case("metadata, separate descriptor", "twoGbMaxExtentSparse", "buslogic");
}

static const char *child_type;

static void do_child(vdk_store *rec, struct scenario *sc)
{
    vdk_disk *d;
    vdk_error err = {0};
    cr_assert_eq(vdk_open_store(rec, sc->name, 0, &d, &err), 0, "%s", err.message);
    cr_assert_eq(vdk_create_child(d, "c.vmdk", child_type, NULL, &err), 0, "%s", err.message);
    vdk_close(d);
}

Test(crash, child_creation, .timeout = 3600)
{
    const char *types[] = {"monolithicSparse", "twoGbMaxExtentSparse", "vmfsSparse", "seSparse"};
    for (int t = 0; t < 4; t++) {
        vdk_store *s;
        vdk_store_mem_new(&s);
        make_disk(s, "p.vmdk", "monolithicSparse");
        fill(s, "p.vmdk", 50);
        struct scenario *sc = new_scenario(types[t], "p.vmdk");
        sc->also = "c.vmdk";
        child_type = types[t];
        op_workload(sc, s, do_child);
        free_scenario(sc);
        s->ops->destroy(s);
    }
}

static void do_commit(vdk_store *rec, struct scenario *sc)
{
    vdk_error err = {0};
    cr_assert_eq(vdk_commit(rec, sc->name, 0, NULL, NULL, &err), 0, "%s", err.message);
}

Test(crash, commit, .timeout = 3600)
{
    vdk_store *s;
    vdk_store_mem_new(&s);
    make_disk(s, "base.vmdk", "monolithicSparse");
    fill(s, "base.vmdk", 60);
    make_child(s, "base.vmdk", "a.vmdk", "monolithicSparse");
    fill(s, "a.vmdk", 70);
    make_child(s, "a.vmdk", "b.vmdk", "monolithicSparse");
    /* b holds a few scattered grains over a's */
    vdk_disk *d;
    vdk_error err = {0};
    cr_assert_eq(vdk_open_store(s, "b.vmdk", 0, &d, &err), 0, "%s", err.message);
    uint8_t buf[8192];
    for (int i = 0; i < NWIN; i++) {
        for (unsigned q = 0; q < sizeof(buf); q += SEC)
            pattern(80, (win_off[i] + 100 * 1024 + q) / SEC, buf + q);
        cr_assert_eq(vdk_write(d, buf, sizeof(buf), win_off[i] + 100 * 1024), 8192);
    }
    vdk_close(d);
    struct scenario *sc = new_scenario("commit", "b.vmdk");
    sc->alt = "a.vmdk";
    op_workload(sc, s, do_commit);
    free_scenario(sc);
    s->ops->destroy(s);
}

static void do_shrink(vdk_store *rec, struct scenario *sc)
{
    vdk_error err = {0};
    cr_assert_eq(vdk_shrink(rec, sc->name, NULL, NULL, NULL, &err), 0, "%s", err.message);
}

static void do_defrag(vdk_store *rec, struct scenario *sc)
{
    vdk_error err = {0};
    cr_assert_eq(vdk_defragment(rec, sc->name, NULL, NULL, &err), 0, "%s", err.message);
}

static void rewrite_case(const char *what, const char *type, store_op op)
{
    vdk_store *s;
    vdk_store_mem_new(&s);
    make_disk(s, "r.vmdk", type);
    fill(s, "r.vmdk", 90);
    /* zero some of it again, so shrink has something to free */
    vdk_disk *d;
    vdk_error err = {0};
    cr_assert_eq(vdk_open_store(s, "r.vmdk", 0, &d, &err), 0, "%s", err.message);
    uint8_t *z = calloc(1, 128 * 1024);
    cr_assert_eq(vdk_write(d, z, 128 * 1024, win_off[1] + 384 * 1024), 128 * 1024);
    free(z);
    vdk_close(d);
    struct scenario *sc = new_scenario(what, "r.vmdk");
    op_workload(sc, s, op);
    free_scenario(sc);
    s->ops->destroy(s);
}

Test(crash, shrink, .timeout = 3600)
{
    rewrite_case("shrink monolithicSparse", "monolithicSparse", do_shrink);
    rewrite_case("shrink twoGbMaxExtentSparse", "twoGbMaxExtentSparse", do_shrink);
}

Test(crash, defragment, .timeout = 3600)
{
    rewrite_case("defragment monolithicSparse", "monolithicSparse", do_defrag);
}
