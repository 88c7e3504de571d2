/* Partition tables: MBR (with logical partitions in extended ones) and GPT.
 * Partition N is pN: MBR primaries are 1-4, logicals 5 on; GPT entries are
 * numbered by their slot. */
#include <stdlib.h>
#include <string.h>

#include "vdkfs.h"

#define MAX_PARTS 256

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void add(struct node *n, unsigned num, uint64_t start, uint64_t len)
{
    if (num == 0 || num > MAX_PARTS || len == 0 || start >= n->capacity)
        return;
    if (len > n->capacity - start)
        len = n->capacity - start;
    if (num > n->n_parts) {
        n->parts = realloc(n->parts, num * sizeof(*n->parts));
        memset(n->parts + n->n_parts, 0, (num - n->n_parts) * sizeof(*n->parts));
        n->n_parts = num;
    }
    if (num > n->parts_max)
        n->parts_max = num;
    n->parts[num - 1] = (struct part){start, len};
}

static int read_at(struct node *n, void *buf, size_t len, uint64_t off)
{
    return vdk_read(n->disk, buf, len, off) == (int64_t)len ? 0 : -1;
}

static int gpt(struct node *n)
{
    unsigned char h[512];
    if (read_at(n, h, sizeof(h), 512) < 0 || memcmp(h, "EFI PART", 8))
        return 0;
    uint64_t table = rd64(h + 72) * 512;
    uint32_t count = rd32(h + 80), esize = rd32(h + 84);
    if (esize < 128 || esize > 4096 || count > 1024)
        return 0;
    unsigned char *e = malloc(esize);
    for (uint32_t i = 0; e && i < count && i < MAX_PARTS; i++) {
        if (read_at(n, e, esize, table + (uint64_t)i * esize) < 0)
            break;
        static const unsigned char unused[16];
        uint64_t first = rd64(e + 32), last = rd64(e + 40);
        if (memcmp(e, unused, 16) && last >= first)
            add(n, i + 1, first * 512, (last - first + 1) * 512);
    }
    free(e);
    return 1;
}

static void mbr(struct node *n, const unsigned char *s)
{
    uint64_t ext = 0;
    for (int i = 0; i < 4; i++) {
        const unsigned char *p = s + 446 + 16 * i;
        uint8_t type = p[4];
        uint64_t lba = rd32(p + 8), count = rd32(p + 12);
        if (!type || !count)
            continue;
        if (type == 0x05 || type == 0x0f || type == 0x85)
            ext = ext ? ext : lba;
        else
            add(n, (unsigned)i + 1, lba * 512, count * 512);
    }
    /* logical partitions: a chain of EBRs, each relative to the extended
     * partition (links) or to its own EBR (the partition) */
    uint64_t ebr = ext;
    for (unsigned num = 5; ebr && num <= MAX_PARTS; num++) {
        unsigned char b[512];
        if (read_at(n, b, sizeof(b), ebr * 512) < 0 || b[510] != 0x55 || b[511] != 0xaa)
            break;
        const unsigned char *p = b + 446;
        if (p[4] && rd32(p + 12))
            add(n, num, (ebr + rd32(p + 8)) * 512, (uint64_t)rd32(p + 12) * 512);
        uint64_t next = rd32(p + 16 + 8);
        if (!p[16 + 4] || !next || ext + next <= ebr)
            break; /* also stops loops: EBRs must move forward */
        ebr = ext + next;
    }
}

void parts_load(struct node *n)
{
    if (n->parts_loaded || !n->disk)
        return;
    n->parts_loaded = 1;
    unsigned char s[512];
    if (read_at(n, s, sizeof(s), 0) < 0 || s[510] != 0x55 || s[511] != 0xaa)
        return;
    /* a protective MBR announces GPT */
    if (s[446 + 4] == 0xee && gpt(n))
        return;
    mbr(n, s);
}
