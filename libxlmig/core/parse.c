/*
 * parse.c - parsers for values users type (command lines, config).
 *
 * Entry point: lxm__parse_size().
 */
#include <errno.h>
#include <stdlib.h>

#include "libxlmig_internal.h"

bool lxm__parse_size(const char *s, uint64_t *bytes_r)
{
    unsigned long long v;
    unsigned int shift = 0;
    char *end;

    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return false;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    default:
        break;
    }
    if (*end || v > (UINT64_MAX >> shift))
        return false;
    *bytes_r = (uint64_t)v << shift;
    return true;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
