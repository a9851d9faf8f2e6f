/*
 * io.c - small file-descriptor helpers shared by the library and the
 * tools.
 *
 * Entry points: lxm__write_all().
 */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "libxlmig_internal.h"

int lxm__write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    ssize_t r;

    while (len) {
        r = write(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        p += r;
        len -= (size_t)r;
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
