/* killwriter: writes that can be checked after a crash (tests/killtest.sh).
 *
 *   killwriter init JOURNAL OFFSET LENGTH zero|pattern
 *   killwriter pattern FILE JOURNAL
 *   killwriter run FILE JOURNAL [-s SEED] [-n EVERY] [-c COUNT]
 *   killwriter verify FILE JOURNAL [--record]
 *
 * The region [OFFSET, OFFSET+LENGTH) of FILE (a mounted vdkfs flat, or a raw
 * image of the disk: same offsets) is cut into 4 KiB blocks.  Every 512-byte
 * sector of a written block says which block, sector and version it is, is
 * filled with bytes derived from those, and ends in a checksum, so anything
 * read back can be identified.  Version 0 is what the region held before the
 * test: zeros, or (init pattern) a pattern on runs of blocks, which 'pattern'
 * writes into a raw file that becomes the parent of a child disk.
 *
 * run loops until COUNT writes are done or the open, a write or an fsync
 * fails because the mount went away (exit status 3).  It plans EVERY writes
 * of 1 to 64 blocks at random places (a third of them in the first eighth of
 * the region, so blocks are overwritten often), each with a new version, appends one intent
 * line per write to JOURNAL ("I version block count") and fsyncs it, does
 * the writes, fsyncs FILE, and only after that fsync returns appends
 * "D first last": those versions are durable.  JOURNAL lives outside the
 * mount and may grow over many runs; each run continues the versions.
 *
 * verify reads every block of the region: each sector must hold its last
 * durable version or a version whose intent came after it; a block mixing
 * such versions (a write cut by the crash) is counted as torn.  An older
 * version or anything else is lost data: exit status 1.  With --record the
 * sectors found newer than their durable version are appended as
 * "O block sector version" lines, so later checks hold them to that. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK     4096u
#define SECT      512u
#define SPB       (BLOCK / SECT)
#define MAX_RUN   64u                   /* blocks per write: 256 KiB */
#define MAGIC     0x54434553574b574bull /* "KWKWSECT" */
#define SHOW_BAD  20
#define EXIT_GONE 3

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *s)
{
    return mix(*s += 0x632be59bd9b4e019ull);
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* FNV-1a over 64-bit words: the sector's checksum. */
static uint64_t fnv(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i + 8 <= n; i += 8)
        h = (h ^ get64(p + i)) * 0x100000001b3ull;
    return h;
}

static int pattern_init; /* version 0 is the pattern, not zeros */

/* Does the base hold the pattern at block b?  In runs of four blocks
 * (16 KiB: 32 COWD grains, one batch of grains whose entries wait for an
 * ordering flush) separated by mostly empty runs, so child writes cross from
 * grains that copy the parent to grains that do not at batch boundaries. */
static int has_pattern(uint64_t b)
{
    return b % 8 < 4 || mix(b ^ 0x5ca1ab1eull) % 4 == 0;
}

/* Sector s of block b at version v; v == 0 is the initial content. */
static void make_sector(unsigned char *p, uint64_t b, unsigned s, uint64_t v)
{
    if (v == 0 && (!pattern_init || !has_pattern(b))) {
        memset(p, 0, SECT);
        return;
    }
    put64(p, MAGIC);
    put64(p + 8, b);
    put64(p + 16, v);
    put64(p + 24, s);
    uint64_t seed = mix(b * 0x100000001b3ull ^ mix(v) ^ s);
    for (unsigned i = 32; i < SECT - 8; i += 8)
        put64(p + i, rnd(&seed));
    put64(p + SECT - 8, fnv(p, SECT - 8));
}

static void make_block(unsigned char *p, uint64_t b, uint64_t v)
{
    for (unsigned s = 0; s < SPB; s++)
        make_sector(p + s * SECT, b, s, v);
}

/* What a sector that matches no legal version holds, for the report. */
static void describe(const unsigned char *p, char *out, size_t n)
{
    static const unsigned char zero[SECT];
    if (!memcmp(p, zero, SECT))
        snprintf(out, n, "zeros");
    else if (get64(p) != MAGIC)
        snprintf(out, n, "foreign bytes %02x%02x%02x%02x...", p[0], p[1], p[2], p[3]);
    else if (get64(p + SECT - 8) != fnv(p, SECT - 8))
        snprintf(out, n, "a sector of block %" PRIu64 " version %" PRIu64 " with a bad checksum",
                 get64(p + 8), get64(p + 16));
    else
        snprintf(out, n, "block %" PRIu64 " sector %" PRIu64 " version %" PRIu64, get64(p + 8),
                 get64(p + 24), get64(p + 16));
}

/* The version sector s of block b holds, or -1 when it is no sector this
 * test wrote there (a valid checksum and header identify a sector: its
 * filler follows from them). */
static int64_t identify(const unsigned char *p, uint64_t b, unsigned s)
{
    static const unsigned char zero[SECT];
    if (!memcmp(p, zero, SECT))
        return pattern_init && has_pattern(b) ? -1 : 0;
    if (get64(p) != MAGIC || get64(p + 8) != b || get64(p + 24) != s ||
        get64(p + SECT - 8) != fnv(p, SECT - 8) || get64(p + 16) > INT64_MAX)
        return -1;
    int64_t v = (int64_t)get64(p + 16);
    return v == 0 && (!pattern_init || !has_pattern(b)) ? -1 : v;
}

/* ---- the journal ---- */

struct blk {
    uint64_t dur[SPB]; /* durable version of each sector */
    uint64_t *pend;    /* intents not (yet) known durable */
    uint32_t npend, cap;
};

struct intent {
    uint64_t v, b, n;
};

struct model {
    uint64_t off, len, nblocks;
    struct blk *blk;
    uint64_t maxv;
    struct intent *q; /* intents since the last D line */
    size_t nq, qcap;
    uint64_t durable_writes, lines;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "killwriter: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    p = realloc(p, c * size);
    if (!p)
        die("%s", "out of memory");
    *cap = c;
    return p;
}

/* Drop the intents of block k that can no longer be read back. */
static void prune(struct blk *k)
{
    uint64_t lo = k->dur[0];
    for (unsigned s = 1; s < SPB; s++)
        if (k->dur[s] < lo)
            lo = k->dur[s];
    uint32_t w = 0;
    for (uint32_t i = 0; i < k->npend; i++)
        if (k->pend[i] > lo)
            k->pend[w++] = k->pend[i];
    k->npend = w;
}

static void durable(struct model *m, const struct intent *it)
{
    for (uint64_t b = it->b; b < it->b + it->n; b++) {
        struct blk *k = &m->blk[b];
        for (unsigned s = 0; s < SPB; s++)
            if (k->dur[s] < it->v)
                k->dur[s] = it->v;
        prune(k);
    }
    m->durable_writes++;
}

static int journal_line(struct model *m, const char *line)
{
    uint64_t a, b, c;
    if (sscanf(line, "I %" SCNu64 " %" SCNu64 " %" SCNu64, &a, &b, &c) == 3) {
        if (b >= m->nblocks || c == 0 || c > m->nblocks - b || a <= m->maxv)
            return -1;
        m->maxv = a;
        for (uint64_t x = b; x < b + c; x++) {
            struct blk *k = &m->blk[x];
            size_t cap = k->cap;
            k->pend = grow(k->pend, &cap, k->npend + 1u, sizeof(*k->pend));
            k->cap = (uint32_t)cap;
            k->pend[k->npend++] = a;
        }
        m->q = grow(m->q, &m->qcap, m->nq + 1, sizeof(*m->q));
        m->q[m->nq++] = (struct intent){a, b, c};
        return 0;
    }
    if (sscanf(line, "D %" SCNu64 " %" SCNu64, &a, &b) == 2) {
        for (size_t i = 0; i < m->nq; i++)
            if (m->q[i].v >= a && m->q[i].v <= b)
                durable(m, &m->q[i]);
        m->nq = 0; /* older intents were cut by a crash: never durable */
        return 0;
    }
    if (sscanf(line, "O %" SCNu64 " %" SCNu64 " %" SCNu64, &a, &b, &c) == 3) {
        if (a >= m->nblocks || b >= SPB)
            return -1;
        struct blk *k = &m->blk[a];
        if (k->dur[b] < c)
            k->dur[b] = c;
        prune(k);
        return 0;
    }
    return -1;
}

/* Read JOURNAL into m.  A last line without its newline (an append cut
 * short) is ignored and, with fix, cut off so appends start cleanly. */
static void journal_load(const char *path, struct model *m, int fix)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot open the journal %s: %s", path, strerror(errno));
    char line[256], init[16];
    if (!fgets(line, sizeof(line), f) ||
        sscanf(line, "R %" SCNu64 " %" SCNu64 " %15s", &m->off, &m->len, init) != 3 ||
        m->off % BLOCK || m->len % BLOCK || m->len == 0)
        die("%s: no region line", path);
    pattern_init = !strcmp(init, "pattern");
    m->nblocks = m->len / BLOCK;
    m->blk = calloc(m->nblocks, sizeof(*m->blk));
    if (!m->blk)
        die("%s", "out of memory");
    long good = ftell(f);
    while (fgets(line, sizeof(line), f)) {
        if (!strchr(line, '\n'))
            break;
        if (journal_line(m, line) < 0) {
            fprintf(stderr, "killwriter: %s: bad line: %s", path, line);
            exit(2);
        }
        m->lines++;
        good = ftell(f);
    }
    fclose(f);
    if (fix && truncate(path, good) < 0)
        die("cannot truncate %s", path);
}

static void model_free(struct model *m)
{
    for (uint64_t b = 0; b < m->nblocks; b++)
        free(m->blk[b].pend);
    free(m->blk);
    free(m->q);
}

static int journal_fd(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0)
        die("cannot open the journal %s: %s", path, strerror(errno));
    return fd;
}

/* Append text and make it durable. */
static void journal_put(int fd, const char *text, size_t len)
{
    while (len) {
        ssize_t w = write(fd, text, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("journal write failed: %s", strerror(errno));
        text += w;
        len -= (size_t)w;
    }
    if (fsync(fd) < 0)
        die("journal fsync failed: %s", strerror(errno));
}

/* ---- modes ---- */

static int cmd_init(int argc, char **argv)
{
    if (argc != 6 || (strcmp(argv[5], "zero") && strcmp(argv[5], "pattern")))
        die("%s", "usage: killwriter init JOURNAL OFFSET LENGTH zero|pattern");
    uint64_t off = strtoull(argv[3], NULL, 0), len = strtoull(argv[4], NULL, 0);
    if (off % BLOCK || len % BLOCK || !len)
        die("%s", "OFFSET and LENGTH must be multiples of 4096");
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        die("cannot create %s", argv[2]);
    char line[128];
    int n = snprintf(line, sizeof(line), "R %" PRIu64 " %" PRIu64 " %s\n", off, len, argv[5]);
    journal_put(fd, line, (size_t)n);
    close(fd);
    return 0;
}

static int cmd_pattern(int argc, char **argv)
{
    if (argc != 4)
        die("%s", "usage: killwriter pattern FILE JOURNAL");
    struct model m = {0};
    journal_load(argv[3], &m, 0);
    if (!pattern_init)
        die("%s: the journal's initial content is zeros", argv[3]);
    int fd = open(argv[2], O_WRONLY);
    if (fd < 0)
        die("cannot open %s: %s", argv[2], strerror(errno));
    unsigned char buf[BLOCK];
    for (uint64_t b = 0; b < m.nblocks; b++) {
        if (!has_pattern(b))
            continue;
        make_block(buf, b, 0);
        if (pwrite(fd, buf, BLOCK, (off_t)(m.off + b * BLOCK)) != BLOCK)
            die("writing %s failed", argv[2]);
    }
    if (fsync(fd) < 0 || close(fd) < 0)
        die("closing %s failed", argv[2]);
    model_free(&m);
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    if (argc < 4)
        die("%s", "usage: killwriter run FILE JOURNAL [-s SEED] [-n EVERY] [-c COUNT]");
    uint64_t seed = (uint64_t)getpid(), every = 8, count = 0;
    for (int i = 4; i + 1 < argc; i += 2) {
        uint64_t v = strtoull(argv[i + 1], NULL, 0);
        if (!strcmp(argv[i], "-s"))
            seed = v;
        else if (!strcmp(argv[i], "-n") && v > 0)
            every = v;
        else if (!strcmp(argv[i], "-c"))
            count = v;
        else
            die("unknown option %s", argv[i]);
    }
    struct model m = {0};
    journal_load(argv[3], &m, 1);
    int jfd = journal_fd(argv[3]);
    int direct = 1;
    int fd = open(argv[2], O_WRONLY | O_DIRECT);
    if (fd < 0 && errno == EINVAL) {
        direct = 0;
        fd = open(argv[2], O_WRONLY);
    }
    if (fd < 0 && (errno == ENOTCONN || errno == ECONNABORTED)) {
        /* the daemon died while it opened the disk (a slow open) */
        fprintf(stderr, "killwriter: 0 writes; stopped: opening %s: %s\n", argv[2],
                strerror(errno));
        model_free(&m);
        close(jfd);
        return EXIT_GONE;
    }
    if (fd < 0)
        die("cannot open %s: %s", argv[2], strerror(errno));
    unsigned char *buf;
    if (posix_memalign((void **)&buf, BLOCK, MAX_RUN * BLOCK))
        die("%s", "out of memory");
    struct intent *plan = calloc(every, sizeof(*plan));
    char *text = malloc(every * 64 + 64);
    if (!plan || !text)
        die("%s", "out of memory");
    uint64_t writes = 0, syncs = 0, blocks = 0, hot = m.nblocks / 8 ? m.nblocks / 8 : 1;
    const char *why = NULL;
    while (!why && (!count || writes < count)) {
        size_t tl = 0;
        uint64_t first = m.maxv + 1;
        for (uint64_t i = 0; i < every; i++) {
            uint64_t r = rnd(&seed);
            uint64_t n = 1 + rnd(&seed) % (r % 3 == 0 ? MAX_RUN : 4);
            uint64_t span = r % 3 == 1 ? hot : m.nblocks;
            if (n > m.nblocks)
                n = m.nblocks;
            uint64_t b = rnd(&seed) % span;
            if (n > 4 && rnd(&seed) % 2)
                b -= b % 8; /* a long write from the start of a pattern run */
            if (b + n > m.nblocks)
                b = m.nblocks - n;
            plan[i] = (struct intent){++m.maxv, b, n};
            tl += (size_t)sprintf(text + tl, "I %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", plan[i].v,
                                  b, n);
        }
        journal_put(jfd, text, tl);
        uint64_t done = 0;
        for (; done < every && (!count || writes < count); done++) {
            const struct intent *it = &plan[done];
            for (uint64_t k = 0; k < it->n; k++)
                make_block(buf + k * BLOCK, it->b + k, it->v);
            size_t len = (size_t)(it->n * BLOCK);
            ssize_t w = pwrite(fd, buf, len, (off_t)(m.off + it->b * BLOCK));
            if (w != (ssize_t)len) {
                why = w < 0 ? strerror(errno) : "short write";
                break;
            }
            writes++;
            blocks += it->n;
        }
        if (why)
            break;
        if (fsync(fd) < 0) {
            why = strerror(errno);
            break;
        }
        syncs++;
        tl = (size_t)sprintf(text, "D %" PRIu64 " %" PRIu64 "\n", first, first + done - 1);
        journal_put(jfd, text, tl);
    }
    fprintf(stderr,
            "killwriter: %" PRIu64 " writes (%" PRIu64 " blocks, %s), %" PRIu64
            " fsyncs journaled%s%s\n",
            writes, blocks, direct ? "O_DIRECT" : "buffered", syncs, why ? "; stopped: " : "",
            why ? why : "");
    close(jfd);
    close(fd);
    free(buf);
    free(plan);
    free(text);
    model_free(&m);
    return why ? EXIT_GONE : 0;
}

static int cmd_verify(int argc, char **argv)
{
    int record = argc == 5 && !strcmp(argv[4], "--record");
    if (argc != 4 && !record)
        die("%s", "usage: killwriter verify FILE JOURNAL [--record]");
    struct model m = {0};
    journal_load(argv[3], &m, record);
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0)
        die("cannot open %s: %s", argv[2], strerror(errno));
    unsigned char got[BLOCK];
    uint64_t untouched = 0, at_durable = 0, newer = 0, torn = 0, bad = 0;
    size_t ocap = 0, on = 0;
    char *obs = NULL;
    for (uint64_t b = 0; b < m.nblocks; b++) {
        struct blk *k = &m.blk[b];
        ssize_t r = pread(fd, got, BLOCK, (off_t)(m.off + b * BLOCK));
        if (r != BLOCK) {
            fprintf(stderr, "killwriter: reading block %" PRIu64 " of %s: %s\n", b, argv[2],
                    r < 0 ? strerror(errno) : "short read");
            free(obs);
            model_free(&m);
            return 1;
        }
        uint64_t seen[SPB];
        int ok = 1, any_dur = 0;
        for (unsigned s = 0; s < SPB && ok; s++) {
            const unsigned char *p = got + s * SECT;
            int64_t v = identify(p, b, s);
            if (v >= 0 && (uint64_t)v == k->dur[s]) {
                seen[s] = k->dur[s];
                any_dur |= k->dur[s] != 0;
                continue;
            }
            /* a later version is legal if an intent names it */
            ok = 0;
            for (uint32_t i = 0; v > 0 && i < k->npend && !ok; i++)
                if (k->pend[i] == (uint64_t)v && k->pend[i] > k->dur[s]) {
                    seen[s] = k->pend[i];
                    ok = 1;
                }
            if (!ok && bad++ < SHOW_BAD) {
                char what[160];
                describe(p, what, sizeof(what));
                fprintf(stderr,
                        "killwriter: LOST: block %" PRIu64 " (byte %" PRIu64 ") sector %u "
                        "should hold version %" PRIu64 "%s, holds %s\n",
                        b, m.off + b * BLOCK + s * SECT, s, k->dur[s],
                        k->npend ? " or a later intent" : "", what);
            }
        }
        if (!ok)
            continue;
        int all_dur = 1, same = 1;
        for (unsigned s = 0; s < SPB; s++) {
            all_dur &= seen[s] == k->dur[s];
            same &= seen[s] == seen[0];
            if (seen[s] > k->dur[s]) {
                obs = grow(obs, &ocap, on + 80, 1);
                on += (size_t)sprintf(obs + on, "O %" PRIu64 " %u %" PRIu64 "\n", b, s, seen[s]);
            }
        }
        if (all_dur && !any_dur)
            untouched++;
        else if (all_dur)
            at_durable++;
        else if (same)
            newer++;
        else
            torn++;
    }
    close(fd);
    printf("verify: %" PRIu64 " blocks: %" PRIu64 " at their durable version, %" PRIu64
           " newer (written after the last fsync), %" PRIu64 " torn between legal versions, "
           "%" PRIu64 " never durably written and as before, %" PRIu64 " LOST\n",
           m.nblocks, at_durable, newer, torn, untouched, bad);
    if (record && on && !bad) {
        int jfd = journal_fd(argv[3]);
        journal_put(jfd, obs, on);
        close(jfd);
    }
    free(obs);
    model_free(&m);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "init"))
        return cmd_init(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "pattern"))
        return cmd_pattern(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "run"))
        return cmd_run(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "verify"))
        return cmd_verify(argc, argv);
    fprintf(stderr, "usage: killwriter init|pattern|run|verify ... (see the source)\n");
    return 2;
}
