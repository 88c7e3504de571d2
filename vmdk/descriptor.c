/* Descriptor parser.  Lenient where real files vary (CRLF, trailing blanks,
 * quotes optional, section comments missing, case of keywords), strict where
 * safety needs it (sizes, NUL bytes, extent names). */
#include "descriptor.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "util.h"

static const char *const access_names[] = {"RW", "RDONLY", "NOACCESS"};
static const char *const type_names[] = {"FLAT",       "SPARSE",  "ZERO",    "VMFS",
                                         "VMFSSPARSE", "VMFSRDM", "VMFSRAW", "SESPARSE"};

const char *desc_access_name(int access)
{
    return (unsigned)access < 3 ? access_names[access] : "?";
}

const char *desc_type_name(int type)
{
    return (unsigned)type < sizeof(type_names) / sizeof(*type_names) ? type_names[type] : "?";
}

const char *desc_canonical_create_type(const char *t)
{
    if (!strcasecmp(t, "2GbMaxExtentSparse"))
        return "twoGbMaxExtentSparse";
    if (!strcasecmp(t, "2GbMaxExtentFlat"))
        return "twoGbMaxExtentFlat";
    return t;
}

void desc_free(struct descriptor *d)
{
    if (!d)
        return;
    for (unsigned i = 0; i < d->n_lines; i++) {
        free(d->lines[i].key);
        free(d->lines[i].value);
        free(d->lines[i].raw);
    }
    for (unsigned i = 0; i < d->n_ext; i++)
        free(d->ext[i].file);
    free(d->lines);
    free(d->ext);
    free(d);
}

const char *desc_get(const struct descriptor *d, const char *key)
{
    const char *v = NULL;
    for (unsigned i = 0; i < d->n_lines; i++) {
        const struct desc_line *l = &d->lines[i];
        if ((l->kind == LINE_HEADER || l->kind == LINE_DDB) && !strcasecmp(l->key, key))
            v = l->value; /* the last definition wins, as in VMware's parser */
    }
    return v;
}

static char *dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

struct parser {
    struct descriptor *d;
    const char *fname;
    unsigned lineno;
    vdk_error *err;
};

static int add_line(struct parser *p, struct desc_line l)
{
    struct descriptor *d = p->d;
    if ((d->n_lines & (d->n_lines - 1)) == 0) {
        unsigned cap = d->n_lines ? d->n_lines * 2 : 16;
        void *n = realloc(d->lines, cap * sizeof(*d->lines));
        if (!n)
            return -VDK_E_NOMEM;
        d->lines = n;
    }
    d->lines[d->n_lines++] = l;
    return 0;
}

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Next whitespace-separated token of [*s, end). */
static size_t token(const char **s, const char *end, const char **tok)
{
    while (*s < end && isspace((unsigned char)**s))
        (*s)++;
    *tok = *s;
    while (*s < end && !isspace((unsigned char)**s))
        (*s)++;
    return (size_t)(*s - *tok);
}

static int lookup(const char *tok, size_t n, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (strlen(names[i]) == n && !strncasecmp(tok, names[i], n))
            return i;
    return -1;
}

static int parse_extent(struct parser *p, const char *s, const char *end, int access)
{
    const char *tok;
    size_t n = token(&s, end, &tok); /* access, already known */
    struct desc_extent e = {.access = access};
    n = token(&s, end, &tok);
    if (parse_u64(tok, n, &e.sectors) < 0 || e.sectors == 0 || e.sectors > DESC_MAX_SECTORS)
        return vdk_fail(p->err, VDK_E_CORRUPT,
                        "%s: line %u: extent size '%.*s' is not a valid "
                        "sector count",
                        p->fname, p->lineno, (int)n, tok);
    n = token(&s, end, &tok);
    e.type = lookup(tok, n, type_names, (int)(sizeof(type_names) / sizeof(*type_names)));
    if (e.type < 0)
        return vdk_fail(p->err, VDK_E_UNSUPPORTED, "%s: line %u: unknown extent type '%.*s'",
                        p->fname, p->lineno, (int)n, tok);
    while (s < end && isspace((unsigned char)*s))
        s++;
    if (s < end) {
        const char *name;
        size_t nl;
        if (*s == '"') {
            name = ++s;
            while (s < end && *s != '"')
                s++;
            if (s == end)
                return vdk_fail(p->err, VDK_E_CORRUPT,
                                "%s: line %u: unterminated quote in "
                                "extent file name",
                                p->fname, p->lineno);
            nl = (size_t)(s++ - name);
        } else {
            nl = token(&s, end, &name);
        }
        if (nl == 0)
            return vdk_fail(p->err, VDK_E_CORRUPT, "%s: line %u: empty extent file name", p->fname,
                            p->lineno);
        /* desc_format writes names in quotes, so an unquoted name holding
         * one would read back as another name after the first rewrite
         * (CID renewal, vdk meta) and leave the disk unopenable. */
        if (memchr(name, '"', nl))
            return vdk_fail(p->err, VDK_E_CORRUPT, "%s: line %u: quote inside extent file name",
                            p->fname, p->lineno);
        if (!(e.file = dup_range(name, nl)))
            return -VDK_E_NOMEM;
        n = token(&s, end, &tok);
        e.has_offset = n != 0;
        if (n && (parse_u64(tok, n, &e.offset) < 0 || e.offset > DESC_MAX_SECTORS)) {
            free(e.file);
            return vdk_fail(p->err, VDK_E_CORRUPT,
                            "%s: line %u: extent offset '%.*s' is not "
                            "a valid sector number",
                            p->fname, p->lineno, (int)n, tok);
        }
    }
    if (!e.file && e.type != ET_ZERO)
        return vdk_fail(p->err, VDK_E_CORRUPT, "%s: line %u: %s extent without a file name",
                        p->fname, p->lineno, type_names[e.type]);
    struct descriptor *d = p->d;
    if (d->n_ext >= DESC_MAX_EXTENTS) {
        free(e.file);
        return vdk_fail(p->err, VDK_E_CORRUPT, "%s: more than %u extents", p->fname,
                        DESC_MAX_EXTENTS);
    }
    void *ne = realloc(d->ext, (d->n_ext + 1) * sizeof(*d->ext));
    if (!ne) {
        free(e.file);
        return -VDK_E_NOMEM;
    }
    d->ext = ne;
    d->ext[d->n_ext] = e;
    int r = add_line(p, (struct desc_line){.kind = LINE_EXTENT, .extent = d->n_ext});
    if (r == 0)
        d->n_ext++;
    else
        free(e.file);
    return r;
}

static int valid_key(const char *k, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)k[i]) && !strchr("._-", k[i]))
            return 0;
    return 1;
}

static int parse_keyval(struct parser *p, const char *s, const char *end, const char *eq)
{
    const char *ke = eq;
    while (ke > s && isspace((unsigned char)ke[-1]))
        ke--;
    const char *v = eq + 1;
    while (v < end && isspace((unsigned char)*v))
        v++;
    const char *ve = end;
    int quoted = v < ve && *v == '"';
    if (quoted) {
        v++;
        /* Up to the last quote, so a value holding quotes survives. */
        const char *q = ve;
        while (q > v && q[-1] != '"')
            q--;
        if (q > v)
            ve = q - 1;
    }
    struct desc_line l = {.kind = strncasecmp(s, "ddb.", 4) ? LINE_HEADER : LINE_DDB,
                          .quoted = quoted,
                          .spaced = ke < eq};
    l.key = dup_range(s, (size_t)(ke - s));
    l.value = dup_range(v, (size_t)(ve - v));
    int r = (l.key && l.value) ? add_line(p, l) : -VDK_E_NOMEM;
    if (r < 0) {
        free(l.key);
        free(l.value);
    }
    return r;
}

static int parse_line(struct parser *p, const char *s, const char *end)
{
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    const char *tok = s;
    const char *t = s;
    size_t n = token(&t, end, &tok);
    int access = lookup(tok, n, access_names, 3);
    if (s < end && *s != '#' && access >= 0)
        return parse_extent(p, s, end, access);
    const char *eq = memchr(s, '=', (size_t)(end - s));
    if (s < end && *s != '#' && eq) {
        const char *ke = eq;
        while (ke > s && isspace((unsigned char)ke[-1]))
            ke--;
        if (valid_key(s, (size_t)(ke - s)))
            return parse_keyval(p, s, end, eq);
    }
    /* Comments, blanks and lines we do not understand are kept verbatim. */
    struct desc_line l = {.kind = LINE_RAW, .raw = dup_range(s, (size_t)(end - s))};
    if (!l.raw)
        return -VDK_E_NOMEM;
    int r = add_line(p, l);
    if (r < 0)
        free(l.raw);
    return r;
}

static int parse_hex32(const char *v, uint32_t *out)
{
    size_t n = strlen(v);
    if (n == 0 || n > 8)
        return -1;
    uint32_t x = 0;
    for (size_t i = 0; i < n; i++) {
        int c = tolower((unsigned char)v[i]);
        if (!isxdigit(c))
            return -1;
        x = x << 4 | (uint32_t)(isdigit(c) ? c - '0' : c - 'a' + 10);
    }
    *out = x;
    return 0;
}

static int interpret_header(struct parser *p)
{
    struct descriptor *d = p->d;
    p->lineno = 0;
    const char *v;
    d->version = 1;
    if ((v = desc_get(d, "version")) != NULL) {
        char *e;
        long x = strtol(v, &e, 10);
        if (*e || x < 1 || x > 3)
            return vdk_fail(p->err, VDK_E_UNSUPPORTED,
                            "%s: descriptor version '%s' is not "
                            "1, 2 or 3",
                            p->fname, v);
        d->version = (int)x;
    }
    d->cid = 0xffffffffu;
    if ((v = desc_get(d, "CID")) && parse_hex32(v, &d->cid) < 0)
        return vdk_fail(p->err, VDK_E_CORRUPT, "%s: CID '%s' is not a 32-bit hex number", p->fname,
                        v);
    d->parent_cid = 0xffffffffu;
    if ((v = desc_get(d, "parentCID")) && parse_hex32(v, &d->parent_cid) < 0)
        return vdk_fail(p->err, VDK_E_CORRUPT,
                        "%s: parentCID '%s' is not a 32-bit hex "
                        "number",
                        p->fname, v);
    d->create_type = desc_get(d, "createType");
    if (!d->create_type)
        d->create_type = "";
    d->parent_hint = desc_get(d, "parentFileNameHint");
    if (d->parent_hint && !*d->parent_hint)
        d->parent_hint = NULL;
    if (d->n_ext == 0)
        return vdk_fail(p->err, VDK_E_CORRUPT, "%s: descriptor has no extent lines", p->fname);
    uint64_t total = 0;
    for (unsigned i = 0; i < d->n_ext; i++) {
        total += d->ext[i].sectors;
        if (total > DESC_MAX_SECTORS)
            return vdk_fail(p->err, VDK_E_CORRUPT,
                            "%s: extents add up to more than %llu "
                            "sectors",
                            p->fname, (unsigned long long)DESC_MAX_SECTORS);
    }
    return 0;
}

int desc_parse(const char *text, size_t len, const char *fname, struct descriptor **out,
               vdk_error *err)
{
    const char *nul = memchr(text, '\0', len);
    if (nul)
        len = (size_t)(nul - text);
    if (len > DESC_MAX_BYTES)
        return vdk_fail(err, VDK_E_CORRUPT, "%s: descriptor larger than %u bytes", fname,
                        DESC_MAX_BYTES);
    struct parser p = {.fname = fname, .err = err};
    if (!(p.d = calloc(1, sizeof(*p.d))))
        return -VDK_E_NOMEM;
    const char *s = text, *end = text + len;
    int r = 0;
    while (r == 0 && s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        p.lineno++;
        r = parse_line(&p, s, le);
        s = nl ? nl + 1 : end;
    }
    if (r == 0)
        r = interpret_header(&p);
    if (r < 0) {
        if (r == -VDK_E_NOMEM)
            vdk_fail(err, VDK_E_NOMEM, "%s: out of memory parsing the descriptor", fname);
        desc_free(p.d);
        return r;
    }
    *out = p.d;
    return 0;
}

static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return 0;
        }
        char *nb = realloc(*buf, *cap * 2 + (size_t)n);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = *cap * 2 + (size_t)n;
    }
}

char *desc_format(const struct descriptor *d)
{
    size_t len = 0, cap = 1024;
    char *b = malloc(cap);
    int r = b ? 0 : -1;
    for (unsigned i = 0; r == 0 && i < d->n_lines; i++) {
        const struct desc_line *l = &d->lines[i];
        if (l->kind == LINE_RAW) {
            r = append(&b, &len, &cap, "%s\n", l->raw);
        } else if (l->kind == LINE_EXTENT) {
            const struct desc_extent *e = &d->ext[l->extent];
            r = append(&b, &len, &cap, "%s %llu %s", access_names[e->access],
                       (unsigned long long)e->sectors, type_names[e->type]);
            if (r == 0 && e->file)
                r = append(&b, &len, &cap, " \"%s\"", e->file);
            if (r == 0 && e->has_offset)
                r = append(&b, &len, &cap, " %llu", (unsigned long long)e->offset);
            if (r == 0)
                r = append(&b, &len, &cap, "\n");
        } else {
            const char *q = l->quoted ? "\"" : "";
            r = append(&b, &len, &cap, "%s%s%s%s%s\n", l->key, l->spaced ? " = " : "=", q, l->value,
                       q);
        }
    }
    if (r < 0) {
        free(b);
        return NULL;
    }
    return b;
}

static int safe_value(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == '"' || *p == 0x7f)
            return 0;
    return strlen(v) < 4096;
}

int desc_set(struct descriptor *d, const char *key, const char *value, vdk_error *err)
{
    if (!valid_key(key, strlen(key)) || strlen(key) > 200)
        return vdk_fail(err, VDK_E_INVAL, "'%s' is not a valid key name", key);
    if (!safe_value(value))
        return vdk_fail(err, VDK_E_INVAL,
                        "value for %s holds a quote, a line break or a "
                        "control character (or is longer than 4095 bytes)",
                        key);
    char *nv = strdup(value);
    if (!nv)
        return -VDK_E_NOMEM;
    int kind = strncasecmp(key, "ddb.", 4) ? LINE_HEADER : LINE_DDB;
    int found = -1, last_same = -1;
    for (unsigned i = 0; i < d->n_lines; i++) {
        if (d->lines[i].kind == kind)
            last_same = (int)i;
        if (d->lines[i].kind == kind && !strcasecmp(d->lines[i].key, key))
            found = (int)i;
    }
    if (found >= 0) {
        free(d->lines[found].value);
        d->lines[found].value = nv;
    } else {
        struct desc_line l = {
            .kind = kind, .key = strdup(key), .value = nv, .quoted = 1, .spaced = kind == LINE_DDB};
        /* header numbers are written bare, as VMware does */
        if (kind == LINE_HEADER && (!strcasecmp(key, "CID") || !strcasecmp(key, "parentCID") ||
                                    !strcasecmp(key, "version")))
            l.quoted = 0;
        struct parser p = {.d = d};
        if (!l.key || add_line(&p, l) < 0) {
            free(l.key);
            free(nv);
            return -VDK_E_NOMEM;
        }
        /* move it after the last line of its kind (or keep it at the end) */
        unsigned at = last_same >= 0 ? (unsigned)last_same + 1 : d->n_lines - 1;
        struct desc_line moved = d->lines[d->n_lines - 1];
        memmove(&d->lines[at + 1], &d->lines[at], (d->n_lines - 1 - at) * sizeof(*d->lines));
        d->lines[at] = moved;
    }
    struct parser p = {.d = d, .fname = "descriptor", .err = err};
    return interpret_header(&p);
}

int desc_add_extent(struct descriptor *d, const struct desc_extent *x)
{
    struct desc_extent e = *x;
    if (e.file && !(e.file = strdup(e.file)))
        return -VDK_E_NOMEM;
    void *ne = realloc(d->ext, (d->n_ext + 1) * sizeof(*d->ext));
    if (!ne) {
        free(e.file);
        return -VDK_E_NOMEM;
    }
    d->ext = ne;
    d->ext[d->n_ext] = e;
    /* the new line goes after the last extent line */
    unsigned at = d->n_lines;
    for (unsigned i = 0; i < d->n_lines; i++)
        if (d->lines[i].kind == LINE_EXTENT)
            at = i + 1;
    struct parser p = {.d = d};
    if (add_line(&p, (struct desc_line){.kind = LINE_EXTENT, .extent = d->n_ext}) < 0) {
        free(e.file);
        return -VDK_E_NOMEM;
    }
    d->n_ext++;
    struct desc_line moved = d->lines[d->n_lines - 1];
    memmove(&d->lines[at + 1], &d->lines[at], (d->n_lines - 1 - at) * sizeof(*d->lines));
    d->lines[at] = moved;
    return 0;
}

int desc_remove(struct descriptor *d, const char *key)
{
    for (unsigned i = 0; i < d->n_lines; i++) {
        struct desc_line *l = &d->lines[i];
        if ((l->kind == LINE_HEADER || l->kind == LINE_DDB) && !strcasecmp(l->key, key)) {
            free(l->key);
            free(l->value);
            memmove(l, l + 1, (d->n_lines - i - 1) * sizeof(*l));
            d->n_lines--;
            i--;
        }
    }
    struct parser p = {.d = d, .fname = "descriptor"};
    return interpret_header(&p);
}
