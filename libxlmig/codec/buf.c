/*
 * buf.c - lxm__buf, the growable byte buffer of the codec layer.
 *
 * Entry points: lxm__buf_reserve, lxm__buf_append, lxm__buf_dispose.
 */
#include <stdlib.h>
#include <string.h>

#include "libxlmig_internal.h"
#include "codec/codec.h"

int lxm__buf_reserve(lxm__buf *b, size_t more)
{
    size_t need, cap;
    uint8_t *p;

    if (more > SIZE_MAX - b->len)
        return LXM_ERROR_NOMEM;
    need = b->len + more;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->p, cap);
    if (!p)
        return LXM_ERROR_NOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int lxm__buf_append(lxm__buf *b, const void *p, size_t n)
{
    int rc;

    if (!n)
        return 0;
    rc = lxm__buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

void lxm__buf_dispose(lxm__buf *b)
{
    if (!b)
        return;
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int lxm__buf_sink(void *opaque, const struct iovec *iov, int iovcnt)
{
    lxm__buf *b = opaque;
    int i, rc;

    for (i = 0; i < iovcnt; i++) {
        rc = lxm__buf_append(b, iov[i].iov_base, iov[i].iov_len);
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
