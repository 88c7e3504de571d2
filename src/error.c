/* Status codes: text and errno equivalents. */
#include <errno.h>

#include "vdk.h"

const char *vdk_strerror(int status)
{
    switch (status < 0 ? -status : status) {
    case VDK_OK:
        return "success";
    case VDK_E_INVAL:
        return "invalid argument";
    case VDK_E_NOMEM:
        return "out of memory";
    case VDK_E_NOENT:
        return "no such file";
    case VDK_E_IO:
        return "input/output error";
    case VDK_E_CORRUPT:
        return "disk structures are damaged";
    case VDK_E_UNSUPPORTED:
        return "unsupported disk feature";
    case VDK_E_ESCAPE:
        return "name lies outside the disk's folder";
    case VDK_E_ACCESS:
        return "access denied";
    case VDK_E_CID_MISMATCH:
        return "parent content id does not match";
    case VDK_E_CHAIN:
        return "parent chain loops or is too deep";
    case VDK_E_RDONLY:
        return "disk is read-only";
    case VDK_E_NOSPC:
        return "no space left";
    case VDK_E_RANGE:
        return "beyond the disk's capacity";
    case VDK_E_EXISTS:
        return "already exists";
    case VDK_E_BUFSMALL:
        return "buffer too small";
    case VDK_E_NOTFOUND:
        return "no such key";
    default:
        return "unknown error";
    }
}

int vdk_errno(int status)
{
    switch (status < 0 ? -status : status) {
    case VDK_OK:
        return 0;
    case VDK_E_INVAL:
        return EINVAL;
    case VDK_E_NOMEM:
        return ENOMEM;
    case VDK_E_NOENT:
    case VDK_E_NOTFOUND:
        return ENOENT;
    case VDK_E_UNSUPPORTED:
        return ENOTSUP;
    case VDK_E_ESCAPE:
    case VDK_E_ACCESS:
        return EACCES;
    case VDK_E_RDONLY:
        return EROFS;
    case VDK_E_NOSPC:
        return ENOSPC;
    case VDK_E_RANGE:
        return EFBIG;
    case VDK_E_EXISTS:
        return EEXIST;
    case VDK_E_BUFSMALL:
        return ERANGE;
    case VDK_E_CHAIN:
        return ELOOP;
    default:
        return EIO;
    }
}
