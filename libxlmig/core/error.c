/*
 * error.c - error strings and check results.
 *
 * Entry points: lxm_strerror(), lxm_version(), lxm__check_fail().
 */
#include <stdio.h>

#include "libxlmig_internal.h"

#define LXM_VERSION_STRING "0.1.0"

const char *lxm_version(void)
{
    return LXM_VERSION_STRING;
}

const char *lxm_strerror(int rc)
{
    switch (rc) {
    case LXM_ERROR_NONE:
        return "success";
    case LXM_ERROR_FAIL:
        return "internal failure";
    case LXM_ERROR_NOMEM:
        return "out of memory";
    case LXM_ERROR_INVAL:
        return "invalid argument";
    case LXM_ERROR_IO:
        return "input/output error";
    case LXM_ERROR_STATE:
        return "not valid in this state";
    case LXM_ERROR_ABORTED:
        return "aborted";
    case LXM_ERROR_STREAM_MAGIC:
        return "not a Xen migration stream (bad magic)";
    case LXM_ERROR_STREAM_VERSION:
        return "unsupported stream version";
    case LXM_ERROR_STREAM_ENDIAN:
        return "unsupported stream byte order";
    case LXM_ERROR_STREAM_RESERVED:
        return "reserved field not zero";
    case LXM_ERROR_STREAM_UNKNOWN_RECORD:
        return "unknown mandatory record";
    case LXM_ERROR_STREAM_RECORD:
        return "invalid record";
    case LXM_ERROR_STREAM_TOO_LONG:
        return "record longer than the cap";
    case LXM_ERROR_STREAM_PADDING:
        return "non-zero record padding";
    case LXM_ERROR_STREAM_PAGE_TYPE:
        return "invalid page type";
    case LXM_ERROR_STREAM_PAGE_COUNT:
        return "invalid PAGE_DATA page count";
    case LXM_ERROR_STREAM_ORDER:
        return "record out of order";
    case LXM_ERROR_STREAM_TRUNCATED:
        return "stream truncated";
    case LXM_ERROR_STREAM_TRAILING:
        return "trailing bytes after the stream";
    case LXM_ERROR_NOTFOUND:
        return "not found";
    case LXM_ERROR_EXISTS:
        return "already exists";
    case LXM_ERROR_NOSPACE:
        return "not enough memory or space on the host";
    case LXM_ERROR_UNSUPPORTED:
        return "not supported by this backend";
    case LXM_ERROR_CONNECT:
        return "cannot connect";
    case LXM_ERROR_PROTOCOL:
        return "protocol error";
    case LXM_ERROR_PEER:
        return "the peer reported a failure";
    case LXM_ERROR_TIMEOUT:
        return "timed out";
    case LXM_ERROR_REFUSED:
        return "refused";
    case LXM_ERROR_CORRUPT:
        return "corrupt compressed data";
    default:
        return "unknown error";
    }
}

int lxm__check_fail(lxm__check *c, int rc, uint32_t at, const char *fmt, ...)
{
    va_list ap;

    c->rc = rc;
    c->at = at;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
    va_end(ap);
    return rc;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
