/* Test-only image writers that follow the published layouts independently of
 * the engine: hosted sparse (plain and stream-optimized), COWD and seSparse.
 * Each builds a whole file in memory from a raw image and a per-grain plan. */
#ifndef VDK_IMGBUILD_H
#define VDK_IMGBUILD_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *p;
    size_t len, cap;
};
void buf_put(struct buf *b, uint64_t off, const void *data, size_t n);
void buf_free(struct buf *b);

/* What a grain of the plan holds. */
enum { G_NONE = 0, G_DATA = 1, G_ZERO = 2, G_UNMAPPED = 3 };

struct kdmv_opts {
    uint64_t capacity;      /* sectors */
    uint32_t grain;         /* sectors (default 128) */
    uint32_t n_gtes;        /* default 512 */
    int zeroed_flag;        /* header flag bit 2 (GTE 1 = zero grain) */
    int stream;             /* VMware stream layout: compressed grains, markers,
                             * GD_AT_END, footer, end-of-stream */
    int skip_empty_gts;     /* GD entry 0 for tables without grains */
    const char *descriptor; /* embedded text, or NULL for none */
};
void build_kdmv(const uint8_t *raw, const uint8_t *plan, const struct kdmv_opts *o,
                struct buf *out);

/* COWD (vmfsSparse) with grain size 'grain' sectors. */
void build_cowd(const uint8_t *raw, const uint8_t *plan, uint64_t capacity, uint32_t grain,
                struct buf *out);

/* seSparse as ESXi lays it out (grain 8 sectors, tables of 4096 u64). */
void build_sesparse(const uint8_t *raw, const uint8_t *plan, uint64_t capacity, struct buf *out);

/* Offsets of interest in the last built image, for corruption tests. */
struct built_layout {
    uint64_t gd_off;   /* bytes */
    uint64_t first_gt; /* bytes */
    uint64_t first_grain;
};
extern struct built_layout built;

#endif
