/* The VMDK text descriptor: parsed into header keys, extent lines and the
 * ddb table, with every original line kept so it can be written back. */
#ifndef VDK_DESCRIPTOR_H
#define VDK_DESCRIPTOR_H

#include <stdint.h>

#include "vdk.h"

/* Limits that keep hostile descriptors from costing memory or overflowing
 * sector arithmetic. */
#define DESC_MAX_BYTES   (1u << 20)
#define DESC_MAX_EXTENTS 4096u
#define DESC_MAX_SECTORS (1ull << 47) /* 64 PiB: beyond any VMware disk */

enum ext_access { EA_RW, EA_RDONLY, EA_NOACCESS };
enum ext_type {
    ET_FLAT,
    ET_SPARSE,
    ET_ZERO,
    ET_VMFS,
    ET_VMFSSPARSE,
    ET_VMFSRDM,
    ET_VMFSRAW,
    ET_SESPARSE,
};

struct desc_extent {
    int access; /* enum ext_access */
    int type;   /* enum ext_type */
    uint64_t sectors;
    char *file;      /* NULL for ZERO */
    uint64_t offset; /* sectors into the file (FLAT, VMFS) */
    int has_offset;  /* the line spelled the offset out */
};

enum line_kind { LINE_RAW, LINE_HEADER, LINE_EXTENT, LINE_DDB };

struct desc_line {
    int kind;        /* enum line_kind */
    char *key;       /* HEADER/DDB: key as written ("ddb.uuid") */
    char *value;     /* HEADER/DDB: value without quotes */
    char *raw;       /* RAW: the line as read (no line ending) */
    int quoted;      /* HEADER/DDB: the value was written in quotes */
    int spaced;      /* HEADER/DDB: written "key = value" rather than "key=value" */
    unsigned extent; /* EXTENT: index into ext[] */
};

struct descriptor {
    int version;
    uint32_t cid, parent_cid;
    const char *create_type; /* points into lines; "" if absent */
    const char *parent_hint; /* NULL if absent */
    struct desc_extent *ext;
    unsigned n_ext;
    struct desc_line *lines;
    unsigned n_lines;
};

/* Parse len bytes of text (stops at the first NUL).  'fname' names the file
 * in error messages. */
int desc_parse(const char *text, size_t len, const char *fname, struct descriptor **out,
               vdk_error *err);
void desc_free(struct descriptor *d);

/* The descriptor as text, every line kept (malloc'd, NUL-terminated). */
char *desc_format(const struct descriptor *d);

/* Set a header or ddb key (full name), adding it when absent.  Values with
 * quotes, line breaks or control characters are refused (-VDK_E_INVAL), so
 * a value can never inject descriptor lines. */
int desc_set(struct descriptor *d, const char *key, const char *value, vdk_error *err);

/* Drop every line setting 'key' (internal use: VixDiskLib never removes
 * ddb keys). */
int desc_remove(struct descriptor *d, const char *key);

/* Append an extent line after the last one (the file name is copied). */
int desc_add_extent(struct descriptor *d, const struct desc_extent *x);

/* Value of a header or ddb key (full key, e.g. "ddb.adapterType"), or NULL. */
const char *desc_get(const struct descriptor *d, const char *key);

/* Canonical names. */
const char *desc_access_name(int access);
const char *desc_type_name(int type);
/* Canonical createType for aliases ("2GbMaxExtentSparse"), else as given. */
const char *desc_canonical_create_type(const char *t);

#endif
