/*
 * sim-extra.c - a simulated domain's pages outside its RAM: the table,
 * its file, its part of the memory digest.  See sim-extra.h for the
 * bounds and the file format.
 *
 * Entry points: lxm__sim_extra_init(), lxm__sim_extra_dispose(),
 * lxm__sim_extra_put(), lxm__sim_extra_find(), lxm__sim_extra_write(),
 * lxm__sim_extra_read(), lxm__sim_extra_digest().
 *
 * Pages are stored in arrival order (slots) and indexed by a sorted pfn
 * array, so a new pfn costs a memmove of 12-byte index entries at worst,
 * never of pages: streams send pfns ascending, so it is an append.
 * Capacity doubles from EXTRA_CAP_MIN up to LXM__SIM_EXTRA_MAX.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/sim-extra.h"

#define EXTRA_MAGIC "LXMSIMX1"
#define EXTRA_HDR_LEN 16u
#define EXTRA_CAP_MIN 16u

void lxm__sim_extra_init(lxm__sim_extra *x)
{
    memset(x, 0, sizeof(*x));
}

void lxm__sim_extra_dispose(lxm__sim_extra *x)
{
    if (!x)
        return;
    free(x->pfns);
    free(x->slot);
    free(x->data);
    lxm__sim_extra_init(x);
}

/* Index of the first pfn >= pfn (count if none). */
static uint32_t lower_bound(const lxm__sim_extra *x, uint64_t pfn)
{
    uint32_t lo = 0, hi = x->count;

    /* Streams send pfns ascending: check the end first. */
    if (!hi || x->pfns[hi - 1] < pfn)
        return hi;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (x->pfns[mid] < pfn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Room for at least n pages; n <= LXM__SIM_EXTRA_MAX. */
static int reserve(lxm__sim_extra *x, uint32_t n)
{
    uint32_t cap = x->cap ? x->cap : EXTRA_CAP_MIN;
    uint64_t *pfns;
    uint32_t *slot;
    uint8_t *data;

    if (n <= x->cap)
        return 0;
    while (cap < n)
        cap *= 2;
    if (cap > LXM__SIM_EXTRA_MAX)
        cap = LXM__SIM_EXTRA_MAX;
    /* Each array is replaced as soon as it is grown: a later failure
     * leaves bigger arrays and the old cap, which is still right. */
    pfns = realloc(x->pfns, (size_t)cap * sizeof(*pfns));
    if (!pfns)
        return LXM_ERROR_NOMEM;
    x->pfns = pfns;
    slot = realloc(x->slot, (size_t)cap * sizeof(*slot));
    if (!slot)
        return LXM_ERROR_NOMEM;
    x->slot = slot;
    data = realloc(x->data, (size_t)cap * LXM_PAGE_SIZE);
    if (!data)
        return LXM_ERROR_NOMEM;
    x->data = data;
    x->cap = cap;
    return 0;
}

int lxm__sim_extra_put(lxm__sim_extra *x, uint64_t pfn, const void *page)
{
    uint32_t i;
    int rc;

    if (pfn >= LXM__SIM_EXTRA_PFN_LIMIT)
        return LXM_ERROR_INVAL;
    i = lower_bound(x, pfn);
    if (i < x->count && x->pfns[i] == pfn) {
        memcpy(x->data + (size_t)x->slot[i] * LXM_PAGE_SIZE, page,
               LXM_PAGE_SIZE);
        return 0;
    }
    if (x->count >= LXM__SIM_EXTRA_MAX)
        return LXM_ERROR_UNSUPPORTED;
    rc = reserve(x, x->count + 1);
    if (rc)
        return rc;
    memmove(x->pfns + i + 1, x->pfns + i,
            (size_t)(x->count - i) * sizeof(*x->pfns));
    memmove(x->slot + i + 1, x->slot + i,
            (size_t)(x->count - i) * sizeof(*x->slot));
    x->pfns[i] = pfn;
    x->slot[i] = x->count; /* the next free slot */
    memcpy(x->data + (size_t)x->count * LXM_PAGE_SIZE, page, LXM_PAGE_SIZE);
    x->count++;
    return 0;
}

const uint8_t *lxm__sim_extra_find(const lxm__sim_extra *x, uint64_t pfn)
{
    uint32_t i = lower_bound(x, pfn);

    return i < x->count && x->pfns[i] == pfn ? lxm__sim_extra_page(x, i) : NULL;
}

/* ---- the file ---------------------------------------------------- */

/* 0, or -1 with errno (0 at a short file). */
static int read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    ssize_t r;

    while (len) {
        r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (!r)
                errno = 0;
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int lxm__sim_extra_write(const lxm__sim_extra *x, const char *path,
                         xentoollog_logger *lg)
{
    uint8_t hdr[EXTRA_HDR_LEN], le[8];
    char tmp[PATH_MAX];
    uint32_t i;
    int fd = -1, rc;

    if (!x->count) {
        if (unlink(path) && errno != ENOENT) {
            LXM_LOG_ERRNO(lg, "sim: cannot remove %s", path);
            return LXM_ERROR_IO;
        }
        return 0;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        LXM_LOG_ERRNO(lg, "sim: cannot create %s", tmp);
        rc = LXM_ERROR_IO;
        goto out;
    }
    memcpy(hdr, EXTRA_MAGIC, 8);
    lxm__put_le32(hdr + 8, x->count);
    lxm__put_le32(hdr + 12, 0);
    if (lxm__write_all(fd, hdr, sizeof(hdr)))
        goto werr;
    /* Small: 8 bytes a pfn, at most 32 KiB of writes of 8 bytes. */
    for (i = 0; i < x->count; i++) {
        lxm__put_le64(le, x->pfns[i]);
        if (lxm__write_all(fd, le, sizeof(le)))
            goto werr;
    }
    for (i = 0; i < x->count; i++)
        if (lxm__write_all(fd, lxm__sim_extra_page(x, i), LXM_PAGE_SIZE))
            goto werr;
    if (close(fd)) {
        fd = -1;
        goto werr;
    }
    fd = -1;
    if (rename(tmp, path)) {
        LXM_LOG_ERRNO(lg, "sim: cannot rename %s to %s", tmp, path);
        rc = LXM_ERROR_IO;
        goto out;
    }
    return 0;

werr:
    rc = errno == ENOSPC ? LXM_ERROR_NOSPACE : LXM_ERROR_IO;
    LXM_LOG_ERRNO(lg, "sim: cannot write %s", tmp);
out:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

int lxm__sim_extra_read(lxm__sim_extra *x, const char *path, uint64_t min_pfn,
                        xentoollog_logger *lg)
{
    uint8_t hdr[EXTRA_HDR_LEN], le[8];
    const char *why = NULL;
    struct stat st;
    uint32_t count, i;
    uint64_t pfn;
    int fd, rc, err = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return LXM_ERROR_NOTFOUND;
        LXM_LOG_ERRNO(lg, "sim: cannot open %s", path);
        return LXM_ERROR_IO;
    }
    if (fstat(fd, &st) || read_all(fd, hdr, sizeof(hdr))) {
        err = errno;
        why = "cannot read the header";
        goto bad;
    }
    count = lxm__le32(hdr + 8);
    if (memcmp(hdr, EXTRA_MAGIC, 8) || lxm__le32(hdr + 12)) {
        why = "bad magic";
        goto bad;
    }
    if (!count || count > LXM__SIM_EXTRA_MAX) {
        why = "page count out of range";
        goto bad;
    }
    if ((uint64_t)st.st_size !=
        EXTRA_HDR_LEN + (uint64_t)count * (8 + LXM_PAGE_SIZE)) {
        why = "size does not match the page count";
        goto bad;
    }
    rc = reserve(x, count);
    if (rc)
        goto out;
    for (i = 0; i < count; i++) {
        if (read_all(fd, le, sizeof(le))) {
            err = errno;
            why = "cannot read the pfns";
            goto bad;
        }
        pfn = lxm__le64(le);
        if (pfn < min_pfn || pfn >= LXM__SIM_EXTRA_PFN_LIMIT ||
            (i && pfn <= x->pfns[i - 1])) {
            why = "pfns out of range or not ascending";
            goto bad;
        }
        x->pfns[i] = pfn;
        x->slot[i] = i;
    }
    if (read_all(fd, x->data, (size_t)count * LXM_PAGE_SIZE)) {
        err = errno;
        why = "cannot read the pages";
        goto bad;
    }
    x->count = count;
    rc = 0;
    goto out;

bad:
    if (err) {
        errno = err;
        LXM_LOG_ERRNO(lg, "sim: %s: %s", path, why);
    } else {
        LXM_LOG_ERROR(lg, "sim: %s: damaged: %s", path, why);
    }
    rc = LXM_ERROR_INVAL;
out:
    if (rc)
        lxm__sim_extra_dispose(x);
    close(fd);
    return rc;
}

void lxm__sim_extra_digest(const lxm__sim_extra *x, XXH3_state_t *st)
{
    uint8_t le[8];
    uint32_t i;

    for (i = 0; i < x->count; i++) {
        lxm__put_le64(le, x->pfns[i]);
        XXH3_128bits_update(st, le, sizeof(le));
        XXH3_128bits_update(st, lxm__sim_extra_page(x, i), LXM_PAGE_SIZE);
    }
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
