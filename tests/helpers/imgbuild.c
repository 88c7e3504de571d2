/* Test-only image writers; see imgbuild.h. */
#include "imgbuild.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct built_layout built;

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

void buf_put(struct buf *b, uint64_t off, const void *data, size_t n)
{
    size_t end = (size_t)off + n;
    if (end > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < end)
            cap *= 2;
        b->p = realloc(b->p, cap);
        memset(b->p + b->cap, 0, cap - b->cap);
        b->cap = cap;
    }
    if (data)
        memcpy(b->p + off, data, n);
    if (end > b->len)
        b->len = end;
}

void buf_free(struct buf *b)
{
    free(b->p);
    *b = (struct buf){0};
}

static uint64_t up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

static void kdmv_header(uint8_t *h, const struct kdmv_opts *o, uint64_t gd, uint64_t overhead,
                        uint64_t desc_sectors)
{
    memset(h, 0, 512);
    memcpy(h, "KDMV", 4);
    put32(h + 4, o->stream ? 3 : (o->zeroed_flag ? 2 : 1));
    put32(h + 8, 1u | (o->zeroed_flag ? 4u : 0) | (o->stream ? 0x30000u : 0));
    put64(h + 12, o->capacity);
    put64(h + 20, o->grain);
    put64(h + 28, desc_sectors ? 1 : 0);
    put64(h + 36, desc_sectors);
    put32(h + 44, o->n_gtes);
    put64(h + 56, gd);
    put64(h + 64, overhead);
    h[73] = '\n';
    h[74] = ' ';
    h[75] = '\r';
    h[76] = '\n';
    h[77] = o->stream ? 1 : 0;
}

static void marker(struct buf *b, uint64_t at, uint64_t val, uint32_t type)
{
    uint8_t m[512] = {0};
    put64(m, val);
    put32(m + 12, type);
    buf_put(b, at, m, 512);
}

void build_kdmv(const uint8_t *raw, const uint8_t *plan, const struct kdmv_opts *in,
                struct buf *out)
{
    struct kdmv_opts o = *in;
    if (!o.grain)
        o.grain = 128;
    if (!o.n_gtes)
        o.n_gtes = 512;
    uint64_t gbytes = (uint64_t)o.grain * 512;
    uint64_t grains = (o.capacity + o.grain - 1) / o.grain;
    uint64_t n_gt = (grains + o.n_gtes - 1) / o.n_gtes;
    uint64_t gd_sectors = up(n_gt * 4, 512) / 512;
    uint64_t gt_sectors = up((uint64_t)o.n_gtes * 4, 512) / 512;
    uint64_t desc_sectors = o.descriptor ? (o.stream ? 1 : 20) : 0;
    uint32_t *gd = calloc(n_gt, 4);
    uint32_t *gt = calloc(n_gt * o.n_gtes, 4);
    *out = (struct buf){0};
    uint8_t h[512];
    if (o.descriptor)
        buf_put(out, 512, o.descriptor, strlen(o.descriptor));

    if (!o.stream) {
        /* header, descriptor, GD, GTs, then grains in guest order */
        uint64_t sec = 1 + desc_sectors;
        uint64_t gd_at = sec;
        sec += gd_sectors;
        for (uint64_t t = 0; t < n_gt; t++) {
            int used = 0;
            for (uint64_t g = t * o.n_gtes; g < grains && g < (t + 1) * o.n_gtes; g++)
                used |= plan[g] != G_NONE;
            if (used || !o.skip_empty_gts) {
                gd[t] = (uint32_t)sec;
                sec += gt_sectors;
            }
        }
        uint64_t overhead = up(sec, o.grain);
        built.gd_off = gd_at * 512;
        built.first_gt = (uint64_t)gd[0] * 512;
        built.first_grain = overhead * 512;
        sec = overhead;
        for (uint64_t g = 0; g < grains; g++) {
            if (plan[g] == G_ZERO)
                gt[g] = 1;
            if (plan[g] != G_DATA)
                continue;
            gt[g] = (uint32_t)sec;
            buf_put(out, sec * 512, raw + g * gbytes, gbytes);
            sec += o.grain;
        }
        for (uint64_t t = 0; t < n_gt; t++) {
            uint8_t e[4];
            put32(e, gd[t]);
            buf_put(out, gd_at * 512 + t * 4, e, 4);
            for (uint64_t i = 0; gd[t] && i < o.n_gtes; i++) {
                put32(e, gt[t * o.n_gtes + i]);
                buf_put(out, (uint64_t)gd[t] * 512 + i * 4, e, 4);
            }
        }
        buf_put(out, overhead * 512, NULL, 0);
        if (out->len < overhead * 512)
            buf_put(out, overhead * 512 - 1, "", 1);
        kdmv_header(h, &o, gd_at, overhead, desc_sectors);
        buf_put(out, 0, h, 512);
    } else {
        /* VMware's stream: grains, each table after its grains, GD, footer */
        uint64_t overhead = 128;
        uint64_t at = overhead * 512;
        built.first_grain = at;
        uint8_t *z = malloc(compressBound(gbytes));
        for (uint64_t t = 0; t < n_gt; t++) {
            int used = 0;
            for (uint64_t g = t * o.n_gtes; g < grains && g < (t + 1) * o.n_gtes; g++) {
                if (plan[g] == G_ZERO)
                    gt[g] = 1;
                if (plan[g] != G_DATA)
                    continue;
                used = 1;
                uLongf zl = compressBound(gbytes);
                compress2(z, &zl, raw + g * gbytes, gbytes, 6);
                uint8_t m[12];
                put64(m, g * o.grain);
                put32(m + 8, (uint32_t)zl);
                gt[g] = (uint32_t)(at / 512);
                buf_put(out, at, m, 12);
                buf_put(out, at + 12, z, zl);
                at = up(at + 12 + zl, 512);
            }
            if (!used && o.skip_empty_gts)
                continue;
            marker(out, at, gt_sectors, 1);
            at += 512;
            gd[t] = (uint32_t)(at / 512);
            if (t == 0)
                built.first_gt = at;
            for (uint64_t i = 0; i < o.n_gtes; i++) {
                uint8_t e[4];
                put32(e, t * o.n_gtes + i < grains ? gt[t * o.n_gtes + i] : 0);
                buf_put(out, at + i * 4, e, 4);
            }
            at += gt_sectors * 512;
        }
        free(z);
        marker(out, at, gd_sectors, 2);
        at += 512;
        built.gd_off = at;
        for (uint64_t t = 0; t < n_gt; t++) {
            uint8_t e[4];
            put32(e, gd[t]);
            buf_put(out, at + t * 4, e, 4);
        }
        uint64_t gd_at = at / 512;
        at += gd_sectors * 512;
        marker(out, at, 1, 3);
        at += 512;
        kdmv_header(h, &o, gd_at, overhead, desc_sectors);
        buf_put(out, at, h, 512);
        at += 512;
        marker(out, at, 0, 0);
        kdmv_header(h, &o, 0xffffffffffffffffull, overhead, desc_sectors);
        buf_put(out, 0, h, 512);
    }
    free(gd);
    free(gt);
}

void build_cowd(const uint8_t *raw, const uint8_t *plan, uint64_t capacity, uint32_t grain,
                struct buf *out)
{
    const uint64_t per_gt = 4096;
    uint64_t gbytes = (uint64_t)grain * 512;
    uint64_t grains = (capacity + grain - 1) / grain;
    uint64_t n_gd = (capacity + per_gt * grain - 1) / (per_gt * grain);
    uint64_t sec = 4 + up(n_gd * 4, 512) / 512;
    *out = (struct buf){0};
    built.gd_off = 4 * 512;
    built.first_gt = 0;
    built.first_grain = 0;
    for (uint64_t t = 0; t < n_gd; t++) {
        int used = 0;
        for (uint64_t g = t * per_gt; g < grains && g < (t + 1) * per_gt; g++)
            used |= plan[g] == G_DATA;
        if (!used)
            continue;
        uint8_t e[4];
        put32(e, (uint32_t)sec);
        buf_put(out, 4 * 512 + t * 4, e, 4);
        uint64_t gt_at = sec * 512;
        if (!built.first_gt)
            built.first_gt = gt_at;
        sec += per_gt * 4 / 512;
        for (uint64_t g = t * per_gt; g < grains && g < (t + 1) * per_gt; g++) {
            if (plan[g] != G_DATA)
                continue;
            put32(e, (uint32_t)sec);
            buf_put(out, gt_at + (g - t * per_gt) * 4, e, 4);
            if (!built.first_grain)
                built.first_grain = sec * 512;
            buf_put(out, sec * 512, raw + g * gbytes, gbytes);
            sec += grain;
        }
    }
    uint8_t h[2048] = {0};
    memcpy(h, "COWD", 4);
    put32(h + 4, 1);
    put32(h + 8, 3);
    put32(h + 12, (uint32_t)capacity);
    put32(h + 16, grain);
    put32(h + 20, 4);
    put32(h + 24, (uint32_t)n_gd);
    put32(h + 28, (uint32_t)sec);
    buf_put(out, 0, h, sizeof(h));
    if (out->len < sec * 512)
        buf_put(out, sec * 512 - 1, "", 1);
}

void build_sesparse(const uint8_t *raw, const uint8_t *plan, uint64_t capacity, struct buf *out)
{
    const uint64_t gtes = 4096, gbytes = 4096;
    uint64_t grains = (capacity + 7) / 8;
    uint64_t n_gd = (grains + gtes - 1) / gtes;
    uint64_t gd_sectors = up(n_gd * 8, 512) / 512;
    uint64_t n_tables = 0;
    for (uint64_t t = 0; t < n_gd; t++) {
        int used = 0;
        for (uint64_t g = t * gtes; g < grains && g < (t + 1) * gtes; g++)
            used |= plan[g] != G_NONE;
        n_tables += used;
    }
    uint64_t n_data = 0;
    for (uint64_t g = 0; g < grains; g++)
        n_data += plan[g] == G_DATA;
    /* sectors: 0 header, 1 volatile, 2 journal header, 3-4 journal, GD, GTs,
     * bitmap, backmap, grains */
    uint64_t gd_at = 5, gt_at = gd_at + gd_sectors, bm_at = gt_at + n_tables * 64;
    uint64_t back_at = bm_at + 1, gr_at = up(back_at + 1, 8);
    enum { SE_GAP = 5000 };
    *out = (struct buf){0};
    built.gd_off = gd_at * 512;
    built.first_gt = gt_at * 512;
    built.first_grain = gr_at * 512;
    uint64_t table = 0, next = 0;
    for (uint64_t t = 0; t < n_gd; t++) {
        int used = 0;
        for (uint64_t g = t * gtes; g < grains && g < (t + 1) * gtes; g++)
            used |= plan[g] != G_NONE;
        if (!used)
            continue;
        uint8_t e[8];
        put64(e, 0x1000000000000000ull | table);
        buf_put(out, gd_at * 512 + t * 8, e, 8);
        uint64_t base = (gt_at + table * 64) * 512;
        for (uint64_t g = t * gtes; g < grains && g < (t + 1) * gtes; g++) {
            uint64_t v = 0;
            if (plan[g] == G_ZERO)
                v = 0x2000000000000000ull;
            else if (plan[g] == G_UNMAPPED)
                v = 0x1000000000000000ull;
            else if (plan[g] == G_DATA) {
                /* grains stored in reverse after a gap, so indexes pass 4096
                 * and both halves of the split index encoding are used */
                uint64_t idx = SE_GAP + n_data - 1 - next++;
                v = 0x3000000000000000ull | (idx & 0xfff) << 48 | idx >> 12;
                buf_put(out, (gr_at + idx * 8) * 512, raw + g * gbytes, gbytes);
            }
            put64(e, v);
            buf_put(out, base + (g - t * gtes) * 8, e, 8);
        }
        table++;
    }
    uint8_t h[512] = {0};
    put64(h, 0xcafebabeull);
    put64(h + 8, 0x0000000200000001ull);
    put64(h + 16, capacity);
    put64(h + 24, 8);
    put64(h + 32, 64);
    uint64_t regions[][2] = {{1, 1},
                             {2, 1},
                             {3, 2},
                             {gd_at, gd_sectors},
                             {gt_at, n_tables * 64},
                             {bm_at, 1},
                             {back_at, 1},
                             {gr_at, (SE_GAP + n_data) * 8}};
    for (int i = 0; i < 8; i++) {
        put64(h + 80 + 16 * i, regions[i][0]);
        put64(h + 88 + 16 * i, regions[i][1]);
    }
    buf_put(out, 0, h, 512);
    uint8_t v[512] = {0};
    put64(v, 0xcafecafeull);
    buf_put(out, 512, v, 512);
    uint64_t end = (gr_at + (SE_GAP + n_data) * 8) * 512;
    if (out->len < end)
        buf_put(out, end - 1, "", 1);
}
