/*
 * log.c - logging through the caller's xentoollog_logger.
 *
 * Entry point: lxm__log().  A NULL logger means silence.
 */
#include <stdio.h>

#include "libxlmig_internal.h"

void lxm__log(xentoollog_logger *lg, xentoollog_level level, int errnoval,
              const char *fmt, ...)
{
    va_list ap;

    if (!lg)
        return;
    va_start(ap, fmt);
    xtl_logv(lg, level, errnoval, "libxlmig", fmt, ap);
    va_end(ap);
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
