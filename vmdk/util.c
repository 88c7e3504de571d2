/* Error reporting and store-name arithmetic for the engine. */
#include "util.h"

#include <errno.h>
#include <stdio.h>

int vdk_vfail(vdk_error *err, int code, const char *fmt, va_list ap)
{
    if (code < 0)
        code = -code;
    if (err) {
        err->code = -code;
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
    }
    return -code;
}

int vdk_fail(vdk_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vdk_vfail(err, code, fmt, ap);
    va_end(ap);
    return r;
}

int vdk_status_from_errno(int e)
{
    if (e < 0)
        e = -e;
    switch (e) {
    case 0:
        return 0;
    case ENOENT:
    case ENOTDIR:
        return -VDK_E_NOENT;
    case ENOMEM:
        return -VDK_E_NOMEM;
    case EXDEV:
    case ELOOP:
        return -VDK_E_ESCAPE;
    case EACCES:
    case EPERM:
        return -VDK_E_ACCESS;
    case EROFS:
        return -VDK_E_RDONLY;
    case ENOSPC:
    case EDQUOT:
        return -VDK_E_NOSPC;
    case EEXIST:
        return -VDK_E_EXISTS;
    case EINVAL:
        return -VDK_E_INVAL;
    default:
        return -VDK_E_IO;
    }
}

const char *vdk_basename(const char *name)
{
    const char *s = strrchr(name, '/');
    return s ? s + 1 : name;
}

/* Append component [c, c+n) to out (length *len), handling "." and "..". */
static int push_component(char *out, size_t outlen, size_t *len, const char *c, size_t n)
{
    if (n == 0 || (n == 1 && c[0] == '.'))
        return 0;
    if (n == 2 && c[0] == '.' && c[1] == '.') {
        if (*len == 0)
            return -VDK_E_ESCAPE;
        char *slash = memrchr(out, '/', *len);
        *len = slash ? (size_t)(slash - out) : 0;
        out[*len] = '\0';
        return 0;
    }
    size_t need = *len + (*len ? 1 : 0) + n;
    if (need + 1 > outlen)
        return -VDK_E_INVAL;
    if (*len)
        out[(*len)++] = '/';
    memcpy(out + *len, c, n);
    *len += n;
    out[*len] = '\0';
    return 0;
}

static int push_path(char *out, size_t outlen, size_t *len, const char *p, size_t plen)
{
    size_t i = 0;
    while (i < plen) {
        size_t j = i;
        while (j < plen && p[j] != '/')
            j++;
        int r = push_component(out, outlen, len, p + i, j - i);
        if (r < 0)
            return r;
        i = j + 1;
    }
    return 0;
}

int vdk_name_join(const char *base, const char *rel, char *out, size_t outlen)
{
    if (!rel || !*rel || outlen == 0)
        return -VDK_E_INVAL;
    if (rel[0] == '/' || rel[0] == '\\')
        return -VDK_E_ESCAPE;
    /* Windows-style "C:\..." hints are absolute as well. */
    if (rel[1] == ':' && (rel[2] == '\\' || rel[2] == '/'))
        return -VDK_E_ESCAPE;
    size_t len = 0;
    out[0] = '\0';
    const char *slash = base ? strrchr(base, '/') : NULL;
    if (slash) {
        int r = push_path(out, outlen, &len, base, (size_t)(slash - base));
        if (r < 0)
            return r;
    }
    int r = push_path(out, outlen, &len, rel, strlen(rel));
    if (r < 0)
        return r;
    return len ? 0 : -VDK_E_INVAL;
}

/* A parent hint relative to the child: both live in one store. */
int vdk_name_relative(const char *child, const char *parent, char *out, size_t n)
{
    const char *cs = strrchr(child, '/');
    size_t cdir = cs ? (size_t)(cs - child) + 1 : 0;
    size_t common = 0;
    for (size_t i = 0; i < cdir && child[i] == parent[i]; i++)
        if (child[i] == '/')
            common = i + 1;
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = common; i < cdir; i++)
        if (child[i] == '/')
            len += (size_t)snprintf(out + len, n > len ? n - len : 0, "../");
    snprintf(out + len, n > len ? n - len : 0, "%s", parent + common);
    return strlen(parent + common) + len < n ? 0 : -VDK_E_INVAL;
}
