/* Internal helpers shared by the engine: little-endian access, error
 * reporting and store-name arithmetic.  Not part of the public API. */
#ifndef VDK_UTIL_H
#define VDK_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "vdk.h"

#define SECTOR 512u

static inline uint16_t le16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t le32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t le64(const void *p)
{
    const uint8_t *b = p;
    return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32;
}

static inline void put_le16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(void *p, uint32_t v)
{
    uint8_t *b = p;
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_le64(void *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Whether n bytes at p are all zero. */
static inline int vdk_all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

/* Fill err (if not NULL) and return -code. */
int vdk_fail(vdk_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* format(printf, 3, 0): clang's -Wformat-nonliteral wants callers' formats checked. */
int vdk_vfail(vdk_error *err, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Map a negative errno from a store to a negative vdk_status. */
int vdk_status_from_errno(int neg_errno);

/* Resolve 'rel' (a name written inside the file 'base', e.g. an extent or a
 * parent hint) against the directory of 'base' and normalise it.  Fails with
 * -VDK_E_ESCAPE when the result would leave the store or 'rel' is absolute,
 * -VDK_E_INVAL when it is empty or too long. */
int vdk_name_join(const char *base, const char *rel, char *out, size_t outlen);

/* How file 'child' names file 'parent' (both store names), e.g.
 * "../base/base.vmdk": the inverse of vdk_name_join. */
int vdk_name_relative(const char *child, const char *parent, char *out, size_t n);

/* Pointer to the last component of a store name. */
const char *vdk_basename(const char *name);

#endif
