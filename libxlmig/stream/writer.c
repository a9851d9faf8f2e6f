/*
 * writer.c - the stream writer: xl header, LibxlFmt header, libxl v2
 * records, libxc v3 image/domain headers and records, exactly as Xen
 * 4.17's xl, libxl_stream_write.c and xg_sr_save*.c lay them out.
 *
 * Entry points:
 *   lxm_stream_writer_new(), lxm_stream_writer_new_fd(),
 *   lxm_stream_writer_free()                       lifetime
 *   lxm_stream_write_xl_header(), _libxl_header(), _libxl_record(),
 *   _libxc_header(), _libxc_record(), _page_data(), _raw()   emitting
 *   lxm_stream_writer_done(), lxm_stream_writer_offset()     queries
 *   lxm__stream_writer_expect()                    for synth.c
 *
 * Every call is checked before a byte leaves, with the reader's own
 * rules: records.c decides whether a record's content is valid (else
 * LXM_ERROR_INVAL) and the grammar (grammar.c) whether the header or
 * record may come here (else LXM_ERROR_STATE); content first, as the
 * reader does.  A refused call writes nothing and leaves the writer as
 * it was: the grammar is advanced on a copy, committed only once the
 * sink took the bytes.
 *
 * Each header or record goes to the sink as one iovec array: record
 * header, body (borrowed), zero padding.  PAGE_DATA pages are borrowed
 * too, never copied.  A sink failure is sticky: the stream is broken
 * and every later call returns the same error.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "libxlmig_internal.h"

/* Entries in the per-record iovec array: record header + sub-header,
 * pfn words, up to 1024 pages, padding. */
#define WRITER_IOV_MAX (LXM_PAGE_DATA_MAX_PAGES + 4)

#ifdef IOV_MAX
#define FD_IOV_MAX IOV_MAX
#else
#define FD_IOV_MAX 1024
#endif

struct lxm_stream_writer {
    /* Immutable after lxm_stream_writer_new*(). */
    lxm_stream_format format;
    lxm_sink_write_fn *sink;
    void *opaque;              /* borrowed */
    xentoollog_logger *logger; /* borrowed, NULL ok */
    int fd;                    /* new_fd only (borrowed), else -1 */

    /* Stream state. */
    lxm__grammar g;
    uint64_t offset; /* bytes the sink accepted */
    int failed;      /* sticky sink error, or 0 */

    /* Scratch, reused for every record (no allocation per record). */
    uint64_t pfns[LXM_PAGE_DATA_MAX_PAGES]; /* pfn words, little-endian */
    struct iovec iov[WRITER_IOV_MAX];
    struct iovec fd_iov[FD_IOV_MAX]; /* fd sink: the part not yet written */
};

static const uint8_t zeros[8];

static const char *expect_name(lxm__expect e)
{
    switch (e) {
    case LXM__EXPECT_XL_HEADER:
        return "the xl header";
    case LXM__EXPECT_LIBXL_HEADER:
        return "the LibxlFmt header";
    case LXM__EXPECT_LIBXC_HEADER:
        return "the libxc image header";
    case LXM__EXPECT_LIBXL_RECORD:
        return "a libxl record";
    case LXM__EXPECT_LIBXC_RECORD:
        return "a libxc record";
    case LXM__EXPECT_NOTHING:
        return "nothing (the stream is complete)";
    }
    return "?";
}

/* Log a refusal once, where it is detected, and return rc. */
static int refuse(lxm_stream_writer *w, int rc, const char *what,
                  const char *why)
{
    lxm__log(w->logger, XTL_ERROR, -1,
             "stream writer: offset %" PRIu64 ": refusing %s: %s", w->offset,
             what, why);
    return rc;
}

static int refuse_place(lxm_stream_writer *w, const char *what)
{
    char why[96];

    snprintf(why, sizeof(why), "the stream expects %s here",
             expect_name(w->g.expect));
    return refuse(w, LXM_ERROR_STATE, what, why);
}

/*
 * Hand iov to the sink and account for it.  Nothing was written when
 * this returns the sticky error of an earlier failure.
 */
static int emit(lxm_stream_writer *w, const struct iovec *iov, int iovcnt,
                const char *what)
{
    uint64_t total = 0;
    int i, rc;

    if (w->failed)
        return w->failed;

    for (i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;

    rc = w->sink(w->opaque, iov, iovcnt);
    if (rc) {
        if (rc > 0)
            rc = LXM_ERROR_FAIL;
        w->failed = rc;
        lxm__log(w->logger, XTL_ERROR, -1,
                 "stream writer: offset %" PRIu64 ": writing %s failed: %s",
                 w->offset, what, lxm_strerror(rc));
        return rc;
    }
    w->offset += total;
    return 0;
}

/* ---- lifetime ----------------------------------------------------- */

int lxm_stream_writer_new(lxm_stream_format format, lxm_sink_write_fn *sink,
                          void *opaque, xentoollog_logger *logger,
                          lxm_stream_writer **writer_r)
{
    lxm_stream_writer *w = NULL;
    int rc;

    if (!writer_r) {
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    *writer_r = NULL;
    if (!sink || (format != LXM_FORMAT_XL && format != LXM_FORMAT_LIBXL &&
                  format != LXM_FORMAT_LIBXC)) {
        lxm__log(logger, XTL_ERROR, -1, "stream writer: %s",
                 !sink ? "no sink given" : "unknown stream format");
        rc = LXM_ERROR_INVAL;
        goto out;
    }

    w = calloc(1, sizeof(*w));
    if (!w) {
        lxm__log(logger, XTL_ERROR, errno, "stream writer: allocation failed");
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    w->format = format;
    w->sink = sink;
    w->opaque = opaque;
    w->logger = logger;
    w->fd = -1;
    lxm__grammar_init(&w->g, format, 0);

    *writer_r = w;
    w = NULL;
    rc = 0;

out:
    free(w);
    return rc;
}

/* The sink of lxm_stream_writer_new_fd(): opaque is the writer.  Loops
 * over partial writes and EINTR, at most FD_IOV_MAX entries at a time. */
static int fd_sink(void *opaque, const struct iovec *iov, int iovcnt)
{
    lxm_stream_writer *w = opaque;
    struct iovec *v = w->fd_iov;
    size_t skip = 0; /* bytes of iov[0] already written */
    ssize_t r;
    int n;

    while (iovcnt > 0) {
        /* Drop what is done (and empty entries). */
        if (skip == iov[0].iov_len) {
            iov++;
            iovcnt--;
            skip = 0;
            continue;
        }

        v[0].iov_base = (uint8_t *)iov[0].iov_base + skip;
        v[0].iov_len = iov[0].iov_len - skip;
        for (n = 1; n < iovcnt && n < FD_IOV_MAX; n++)
            v[n] = iov[n];

        r = writev(w->fd, v, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            lxm__log(w->logger, XTL_ERROR, errno,
                     "stream writer: write to fd %d failed", w->fd);
            return LXM_ERROR_IO;
        }
        if (r == 0) {
            lxm__log(w->logger, XTL_ERROR, -1,
                     "stream writer: write to fd %d wrote nothing", w->fd);
            return LXM_ERROR_IO;
        }

        /* Advance over r bytes. */
        while (r > 0) {
            size_t left = iov[0].iov_len - skip;

            if ((size_t)r < left) {
                skip += (size_t)r;
                r = 0;
            } else {
                r -= (ssize_t)left;
                iov++;
                iovcnt--;
                skip = 0;
            }
        }
    }
    return 0;
}

int lxm_stream_writer_new_fd(lxm_stream_format format, int fd,
                             xentoollog_logger *logger,
                             lxm_stream_writer **writer_r)
{
    lxm_stream_writer *w = NULL;
    int rc;

    if (!writer_r) {
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    *writer_r = NULL;
    if (fd < 0) {
        lxm__log(logger, XTL_ERROR, -1, "stream writer: bad fd %d", fd);
        rc = LXM_ERROR_INVAL;
        goto out;
    }

    /* The sink's opaque is the writer itself: set below. */
    rc = lxm_stream_writer_new(format, fd_sink, NULL, logger, &w);
    if (rc)
        goto out;
    w->opaque = w;
    w->fd = fd;

    *writer_r = w;
    w = NULL;
    rc = 0;

out:
    lxm_stream_writer_free(w);
    return rc;
}

void lxm_stream_writer_free(lxm_stream_writer *writer)
{
    free(writer);
}

/* ---- headers ------------------------------------------------------ */

int lxm_stream_write_xl_header(lxm_stream_writer *w, const char *json_config)
{
    uint8_t hdr[LXM_XL_HEADER_LEN + 4];
    struct iovec iov[2];
    uint32_t config_len = 0, mandatory = LXM_XL_MANDATORY_STREAMV2;
    int iovcnt = 1, rc;

    if (w->g.expect != LXM__EXPECT_XL_HEADER)
        return refuse_place(w, "the xl header");

    if (json_config) {
        size_t len = strlen(json_config) + 1; /* xl counts the NUL */

        if (len > LXM__XL_OPTDATA_MAX - 4) {
            char why[96];

            snprintf(why, sizeof(why),
                     "config of %zu bytes exceeds the %u byte cap", len,
                     LXM__XL_OPTDATA_MAX - 4);
            return refuse(w, LXM_ERROR_INVAL, "the xl header", why);
        }
        config_len = (uint32_t)len;
        mandatory |= LXM_XL_MANDATORY_JSON;
    }

    /* As xl's save_domain_core_writeconfig(): the optional data is the
     * u32 config length (written even when 0), then the config. */
    memcpy(hdr, LXM_XL_MAGIC, LXM_XL_MAGIC_LEN);
    lxm__put_le32(hdr + LXM__XL_OFF_BYTEORDER, LXM_XL_BYTEORDER);
    lxm__put_le32(hdr + LXM__XL_OFF_MANDATORY, mandatory);
    lxm__put_le32(hdr + LXM__XL_OFF_OPTIONAL, 0);
    lxm__put_le32(hdr + LXM__XL_OFF_OPTLEN, 4 + config_len);
    lxm__put_le32(hdr + LXM_XL_HEADER_LEN, config_len);

    iov[0].iov_base = hdr;
    iov[0].iov_len = sizeof(hdr);
    if (config_len) {
        iov[1].iov_base = (void *)json_config;
        iov[1].iov_len = config_len;
        iovcnt = 2;
    }

    rc = emit(w, iov, iovcnt, "the xl header");
    if (rc)
        return rc;
    lxm__grammar_xl_header(&w->g);
    return 0;
}

int lxm_stream_write_libxl_header(lxm_stream_writer *w)
{
    uint8_t hdr[LXM__LIBXL_HEADER_LEN];
    struct iovec iov;
    int rc;

    if (w->g.expect != LXM__EXPECT_LIBXL_HEADER)
        return refuse_place(w, "the LibxlFmt header");

    /* ident, version, options (little-endian stream, not legacy). */
    lxm__put_be64(hdr, LXM__LIBXL_IDENT);
    lxm__put_be32(hdr + 8, LXM__LIBXL_VERSION);
    lxm__put_be32(hdr + 12, 0);

    iov.iov_base = hdr;
    iov.iov_len = sizeof(hdr);
    rc = emit(w, &iov, 1, "the LibxlFmt header");
    if (rc)
        return rc;
    lxm__grammar_libxl_header(&w->g);
    return 0;
}

int lxm_stream_write_libxc_header(lxm_stream_writer *w, uint32_t guest_type,
                                  uint16_t xen_major, uint16_t xen_minor)
{
    uint8_t hdr[LXM__LIBXC_HEADERS_LEN];
    uint8_t *d = hdr + LXM__LIBXC_IHDR_LEN;
    struct iovec iov;
    int rc;

    if (w->g.expect != LXM__EXPECT_LIBXC_HEADER)
        return refuse_place(w, "the libxc header");
    if (guest_type != LXM_GUEST_X86_PV && guest_type != LXM_GUEST_X86_HVM) {
        char why[64];

        snprintf(why, sizeof(why), "unknown guest type %" PRIu32, guest_type);
        return refuse(w, LXM_ERROR_INVAL, "the libxc header", why);
    }

    /* Image header, big-endian: marker, "XENF", version, options,
     * reserved. */
    lxm__put_be64(hdr, LXM__LIBXC_MARKER);
    lxm__put_be32(hdr + 8, LXM__LIBXC_IDENT);
    lxm__put_be32(hdr + 12, LXM__LIBXC_VERSION);
    lxm__put_be16(hdr + 16, 0);
    lxm__put_be16(hdr + 18, 0);
    lxm__put_be32(hdr + 20, 0);
    /* Domain header, stream order: type, page_shift, reserved, Xen
     * version. */
    lxm__put_le32(d, guest_type);
    d[4] = LXM__PAGE_SHIFT;
    d[5] = 0;
    d[6] = d[7] = 0;
    lxm__put_le32(d + 8, xen_major);
    lxm__put_le32(d + 12, xen_minor);

    iov.iov_base = hdr;
    iov.iov_len = sizeof(hdr);
    rc = emit(w, &iov, 1, "the libxc header");
    if (rc)
        return rc;
    lxm__grammar_libxc_header(&w->g, LXM__LIBXC_VERSION, guest_type);
    return 0;
}

/* ---- records ------------------------------------------------------ */

/* Does the stream expect a record of this layer here at all? */
static int check_layer(lxm_stream_writer *w, lxm_stream_layer layer,
                       const char *what)
{
    lxm__expect want = layer == LXM_LAYER_LIBXL ? LXM__EXPECT_LIBXL_RECORD
                                                : LXM__EXPECT_LIBXC_RECORD;

    if (w->g.expect != want)
        return refuse_place(w, what);
    return 0;
}

/*
 * May a record of this type come here?  Checked after the content, as
 * the reader does.  On success *next_r holds the grammar as it will be
 * once the record is out.
 */
static int check_order(lxm_stream_writer *w, uint32_t type, const char *what,
                       lxm__grammar *next_r)
{
    lxm__check c;

    *next_r = w->g;
    memset(&c, 0, sizeof(c));
    if (lxm__grammar_record(next_r, type, &c))
        return refuse(w, LXM_ERROR_STATE, what, c.msg);
    return 0;
}

static void record_what(char *buf, size_t len, lxm_stream_layer layer,
                        uint32_t type)
{
    snprintf(buf, len, "%s %s record (type 0x%08" PRIx32 ")",
             lxm_layer_name(layer), lxm_record_type_name(layer, type), type);
}

static int write_record(lxm_stream_writer *w, lxm_stream_layer layer,
                        uint32_t type, const void *body, uint32_t length)
{
    const uint8_t *head = body ? body : zeros;
    uint8_t rhdr[LXM__RHDR_LEN];
    uint32_t pad = (uint32_t)(LXM_ROUNDUP8(length) - length);
    lxm__grammar next;
    lxm__check c;
    char what[96];
    int iovcnt = 0, rc;

    record_what(what, sizeof(what), layer, type);

    rc = check_layer(w, layer, what);
    if (rc)
        return rc;

    if (length && !body)
        return refuse(w, LXM_ERROR_INVAL, what,
                      "no body for a non-zero length");
    if (layer == LXM_LAYER_LIBXC && type == LXM_LIBXC_PAGE_DATA)
        return refuse(w, LXM_ERROR_INVAL, what,
                      "PAGE_DATA goes through lxm_stream_write_page_data()");

    memset(&c, 0, sizeof(c));
    if (lxm__record_check(layer, type, length, head, w->g.libxc_version, &c))
        return refuse(w, LXM_ERROR_INVAL, what, c.msg);

    if (lxm__body_check_wanted(layer, type)) {
        lxm__body_check b;

        lxm__body_check_init(&b, layer, type);
        lxm__body_check_feed(&b, head, length);
        if (lxm__body_check_finish(&b, length, &c))
            return refuse(w, LXM_ERROR_INVAL, what, c.msg);
    }

    rc = check_order(w, type, what, &next);
    if (rc)
        return rc;

    lxm__put_le32(rhdr, type);
    lxm__put_le32(rhdr + 4, length);
    w->iov[iovcnt].iov_base = rhdr;
    w->iov[iovcnt++].iov_len = sizeof(rhdr);
    if (length) {
        w->iov[iovcnt].iov_base = (void *)body;
        w->iov[iovcnt++].iov_len = length;
    }
    if (pad) {
        w->iov[iovcnt].iov_base = (void *)zeros;
        w->iov[iovcnt++].iov_len = pad;
    }

    rc = emit(w, w->iov, iovcnt, what);
    if (rc)
        return rc;
    w->g = next;
    return 0;
}

int lxm_stream_write_libxl_record(lxm_stream_writer *w, uint32_t type,
                                  const void *body, uint32_t length)
{
    return write_record(w, LXM_LAYER_LIBXL, type, body, length);
}

int lxm_stream_write_libxc_record(lxm_stream_writer *w, uint32_t type,
                                  const void *body, uint32_t length)
{
    return write_record(w, LXM_LAYER_LIBXC, type, body, length);
}

int lxm_stream_write_page_data(lxm_stream_writer *w, uint32_t count,
                               const uint64_t *pfn_words,
                               const void *const *pages)
{
    uint8_t hdr[LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN];
    const char *what = "libxc PAGE_DATA record";
    uint32_t i, nr_data = 0, checked_nr;
    uint64_t length;
    lxm__grammar next;
    lxm__check c;
    int iovcnt = 0, rc;

    rc = check_layer(w, LXM_LAYER_LIBXC, what);
    if (rc)
        return rc;

    memset(&c, 0, sizeof(c));
    if (count == 0 || count > LXM_PAGE_DATA_MAX_PAGES) {
        /* Let records.c word the refusal. */
        lxm__page_data_check_count(count, UINT32_MAX, &c);
        return refuse(w, LXM_ERROR_INVAL, what, c.msg);
    }
    if (!pfn_words)
        return refuse(w, LXM_ERROR_INVAL, what, "no pfn words");

    for (i = 0; i < count; i++) {
        unsigned int type = (unsigned int)(pfn_words[i] >> LXM_PFN_TYPE_SHIFT);

        if (lxm_page_type_has_data(type))
            nr_data++;
        w->pfns[i] = htole64(pfn_words[i]);
    }
    length = LXM__PAGE_DATA_HDR_LEN + 8 * (uint64_t)count +
             (uint64_t)LXM_PAGE_SIZE * nr_data;

    /* Sub-header: count, reserved. */
    lxm__put_le32(hdr, LXM_LIBXC_PAGE_DATA);
    lxm__put_le32(hdr + 4, (uint32_t)length);
    lxm__put_le32(hdr + LXM__RHDR_LEN, count);
    lxm__put_le32(hdr + LXM__RHDR_LEN + 4, 0);

    if (lxm__record_check(LXM_LAYER_LIBXC, LXM_LIBXC_PAGE_DATA,
                          (uint32_t)length, hdr + LXM__RHDR_LEN,
                          w->g.libxc_version, &c) ||
        lxm__page_data_check_count(count, (uint32_t)length, &c) ||
        lxm__page_data_check_pfns(count, (uint32_t)length, pfn_words,
                                  &checked_nr, &c))
        return refuse(w, LXM_ERROR_INVAL, what, c.msg);

    if (nr_data && !pages)
        return refuse(w, LXM_ERROR_INVAL, what,
                      "no pages for pfns that carry data");
    for (i = 0; i < nr_data; i++)
        if (!pages[i]) {
            char why[64];

            snprintf(why, sizeof(why), "page %" PRIu32 " is NULL", i);
            return refuse(w, LXM_ERROR_INVAL, what, why);
        }

    rc = check_order(w, LXM_LIBXC_PAGE_DATA, what, &next);
    if (rc)
        return rc;

    w->iov[iovcnt].iov_base = hdr;
    w->iov[iovcnt++].iov_len = sizeof(hdr);
    w->iov[iovcnt].iov_base = w->pfns;
    w->iov[iovcnt++].iov_len = 8 * (size_t)count;
    /* Pages, borrowed; neighbours in memory share one entry. */
    for (i = 0; i < nr_data; i++) {
        struct iovec *last = &w->iov[iovcnt - 1];

        if (i && (const uint8_t *)last->iov_base + last->iov_len ==
                     (const uint8_t *)pages[i]) {
            last->iov_len += LXM_PAGE_SIZE;
            continue;
        }
        w->iov[iovcnt].iov_base = (void *)pages[i];
        w->iov[iovcnt++].iov_len = LXM_PAGE_SIZE;
    }

    rc = emit(w, w->iov, iovcnt, what);
    if (rc)
        return rc;
    w->g = next;
    return 0;
}

int lxm_stream_write_raw(lxm_stream_writer *w, const void *buf, size_t len)
{
    struct iovec iov;

    if (!len)
        return w->failed;
    if (!buf)
        return refuse(w, LXM_ERROR_INVAL, "raw bytes", "NULL buffer");
    iov.iov_base = (void *)buf;
    iov.iov_len = len;
    return emit(w, &iov, 1, "raw bytes");
}

/* ---- queries ------------------------------------------------------ */

bool lxm_stream_writer_done(const lxm_stream_writer *w)
{
    return w->g.expect == LXM__EXPECT_NOTHING;
}

uint64_t lxm_stream_writer_offset(const lxm_stream_writer *w)
{
    return w->offset;
}

lxm__expect lxm__stream_writer_expect(const lxm_stream_writer *w)
{
    return w->g.expect;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
