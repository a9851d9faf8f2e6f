/*
 * reader.c - incremental, strict reader of xl / libxl v2 / libxc v3
 * migration streams.
 *
 * Entry points:
 *   lxm_stream_reader_new(), lxm_stream_reader_free()
 *   lxm_stream_reader_feed()       bytes in any chunking
 *   lxm_stream_reader_finish()     end of input
 *   lxm_stream_reader_read_fd()    feed from an fd until EOF
 *   lxm_stream_reader_done/offset/error(), lxm_stream_error_format()
 *
 * The reader is a state machine over the bytes; each state collects a
 * fixed number of bytes (a header, a record's head, the pfn words, a
 * page, the padding) or passes body bytes through.  States, in stream
 * order:
 *
 *   HEADER (xl 48 B | libxl 16 B | libxc 40 B) -> [XL_OPTDATA]
 *   -> RHDR (8 B) -> HEAD (fixed part, <= 32 B) -> [PFNS (8 B each)]
 *   -> BODY (pass-through or buffered) | PAGE (4 KiB each)
 *   -> PADDING (0-7 B) -> RHDR or HEADER (layer switch) or DONE
 *
 * Which header or record may come next is grammar.c's business; what a
 * record may contain is records.c's.  Nothing is allocated from a length
 * read off the stream before that length passed its cap.  Events carry
 * the same values however the input is chunked: pages are handed out
 * in place when whole in the input, else from a 4 KiB staging copy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "libxlmig_internal.h"

typedef enum reader_state {
    ST_HEADER,
    ST_XL_OPTDATA,
    ST_RHDR,
    ST_HEAD,
    ST_PFNS,
    ST_BODY,
    ST_PAGE,
    ST_PADDING,
    ST_DONE,
    ST_ERROR,
} reader_state;

struct lxm_stream_reader {
    /* Immutable after _new(). */
    lxm_stream_reader_opts opts;
    char *name; /* owned; NULL ok */

    lxm__grammar g;
    reader_state st;
    int callback_rc; /* last callback result: its failure is not logged
                      * again here */
    uint64_t offset; /* stream bytes consumed */
    lxm_stream_error err;

    /* Staging for fixed-size pieces (headers, record head, padding). */
    uint8_t stage[LXM_XL_HEADER_LEN];
    uint32_t need;      /* bytes the current state collects */
    uint32_t have;      /* ... collected so far */
    uint64_t piece_off; /* stream offset of the piece */

    /* xl optional data: owned, optlen bytes. */
    uint8_t *optdata;
    uint32_t optlen;
    uint32_t xl_mandatory, xl_optional;
    uint64_t xl_off; /* stream offset of the xl header */

    /* Current record. */
    lxm_stream_layer layer;
    uint64_t rec_off;
    uint32_t rtype, rlen;
    uint32_t head_len;
    uint32_t body_done; /* body bytes consumed, head included */
    uint8_t head[LXM__RECORD_HEAD_MAX];
    lxm__body_check bc;
    bool body_checked;

    /* PAGE_DATA: owned, LXM_PAGE_DATA_MAX_PAGES words. */
    uint64_t *pfns;
    uint32_t count, nr_data;
    uint32_t pfn_i; /* next pfn word whose page comes */
    uint8_t *page;  /* owned, one page staging */

    /* LXM_READER_BODIES: owned, body_cap bytes. */
    uint8_t *body;
    uint32_t body_cap;
};

/* ---- errors ------------------------------------------------------- */

static int fail(lxm_stream_reader *r, int rc, uint64_t offset, bool in_record,
                const char *fmt, ...) LXM_PRINTF(5, 6);

static int fail(lxm_stream_reader *r, int rc, uint64_t offset, bool in_record,
                const char *fmt, ...)
{
    lxm_stream_error *e = &r->err;
    char line[512];
    va_list ap;

    e->rc = rc;
    e->offset = offset;
    e->layer = r->layer;
    e->in_record = in_record;
    e->record_type = in_record ? r->rtype : 0;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    r->st = ST_ERROR;

    /* A callback's own failure was reported by whoever detected it. */
    if (rc != r->callback_rc) {
        lxm_stream_error_format(e, r->name, line, sizeof(line));
        LXM_LOG_ERROR(r->opts.logger, "%s", line);
    }
    return rc;
}

static int fail_check(lxm_stream_reader *r, const lxm__check *c)
{
    return fail(r, c->rc, r->rec_off + c->at, true, "%s", c->msg);
}

void lxm_stream_error_format(const lxm_stream_error *err, const char *name,
                             char *buf, size_t len)
{
    char where[80];

    if (err->in_record)
        snprintf(where, sizeof(where), "%s %s: ", lxm_layer_name(err->layer),
                 lxm_record_type_name(err->layer, err->record_type));
    else
        snprintf(where, sizeof(where), "%s: ", lxm_layer_name(err->layer));
    snprintf(buf, len, "%s%soffset %llu: %s%s", name ? name : "",
             name ? ": " : "", (unsigned long long)err->offset, where,
             err->message);
}

/* ---- lifecycle ---------------------------------------------------- */

static void expect_next(lxm_stream_reader *r);

int lxm_stream_reader_new(const lxm_stream_reader_opts *opts,
                          lxm_stream_reader **reader_r)
{
    lxm_stream_reader *r = NULL;
    int rc;

    if (!opts || !reader_r || opts->format > LXM_FORMAT_LIBXC) {
        rc = LXM_ERROR_INVAL;
        goto out;
    }

    r = calloc(1, sizeof(*r));
    if (!r) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    r->opts = *opts;
    r->opts.name = NULL;
    if (opts->name) {
        r->name = strdup(opts->name);
        if (!r->name) {
            rc = LXM_ERROR_NOMEM;
            goto out;
        }
    }
    r->pfns = malloc(LXM_PAGE_DATA_MAX_PAGES * sizeof(*r->pfns));
    r->page = malloc(LXM_PAGE_SIZE);
    if (!r->pfns || !r->page) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }

    lxm__grammar_init(&r->g, opts->format, opts->flags);
    expect_next(r);

    *reader_r = r;
    r = NULL;
    rc = 0;

out:
    lxm_stream_reader_free(r);
    return rc;
}

void lxm_stream_reader_free(lxm_stream_reader *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->optdata);
    free(r->pfns);
    free(r->page);
    free(r->body);
    free(r);
}

bool lxm_stream_reader_done(const lxm_stream_reader *r)
{
    return r->st == ST_DONE;
}

uint64_t lxm_stream_reader_offset(const lxm_stream_reader *r)
{
    return r->offset;
}

const lxm_stream_error *lxm_stream_reader_error(const lxm_stream_reader *r)
{
    return &r->err;
}

/* ---- events ------------------------------------------------------- */

static int emit(lxm_stream_reader *r, lxm_stream_event *ev)
{
    int rc;

    if (!r->opts.callback)
        return 0;
    ev->layer = r->layer;
    rc = r->opts.callback(r->opts.opaque, ev);
    r->callback_rc = rc;
    if (rc)
        return fail(r, rc, ev->offset,
                    ev->kind != LXM_EV_XL_HEADER &&
                        ev->kind != LXM_EV_LIBXL_HEADER &&
                        ev->kind != LXM_EV_LIBXC_HEADER,
                    "stopped by the event callback (%s)", lxm_strerror(rc));
    return 0;
}

static void collect(lxm_stream_reader *r, reader_state st, uint32_t need)
{
    r->st = st;
    r->need = need;
    r->have = 0;
    r->piece_off = r->offset;
}

/* After a header or a record: what the grammar wants next. */
static void expect_next(lxm_stream_reader *r)
{
    r->layer = lxm__grammar_layer(&r->g);
    switch (r->g.expect) {
    case LXM__EXPECT_XL_HEADER:
        collect(r, ST_HEADER, LXM_XL_HEADER_LEN);
        break;
    case LXM__EXPECT_LIBXL_HEADER:
        collect(r, ST_HEADER, LXM__LIBXL_HEADER_LEN);
        break;
    case LXM__EXPECT_LIBXC_HEADER:
        collect(r, ST_HEADER, LXM__LIBXC_HEADERS_LEN);
        break;
    case LXM__EXPECT_LIBXL_RECORD:
    case LXM__EXPECT_LIBXC_RECORD:
        collect(r, ST_RHDR, LXM__RHDR_LEN);
        break;
    case LXM__EXPECT_NOTHING:
        r->st = ST_DONE;
        break;
    }
}

/* ---- headers ------------------------------------------------------ */

static int xl_header(lxm_stream_reader *r)
{
    const uint8_t *h = r->stage;
    uint32_t byteorder = lxm__le32(h + LXM__XL_OFF_BYTEORDER);
    uint32_t bad;

    r->xl_off = r->piece_off;
    if (memcmp(h, LXM_XL_MAGIC, LXM_XL_MAGIC_LEN))
        return fail(r, LXM_ERROR_STREAM_MAGIC, r->piece_off, false,
                    "xl header: bad magic (not an `xl save` image or"
                    " migration stream)");
    if (byteorder == 0x04030201u)
        return fail(r, LXM_ERROR_STREAM_ENDIAN,
                    r->piece_off + LXM__XL_OFF_BYTEORDER, false,
                    "xl header: big-endian stream, only little-endian"
                    " (x86) is supported");
    if (byteorder != LXM_XL_BYTEORDER)
        return fail(r, LXM_ERROR_STREAM_ENDIAN,
                    r->piece_off + LXM__XL_OFF_BYTEORDER, false,
                    "xl header: bad byte order mark 0x%08x", byteorder);

    r->xl_mandatory = lxm__le32(h + LXM__XL_OFF_MANDATORY);
    r->xl_optional = lxm__le32(h + LXM__XL_OFF_OPTIONAL);
    r->optlen = lxm__le32(h + LXM__XL_OFF_OPTLEN);

    bad = r->xl_mandatory & ~LXM__XL_MANDATORY_ALL;
    if (bad)
        return fail(r, LXM_ERROR_STREAM_VERSION,
                    r->piece_off + LXM__XL_OFF_MANDATORY, false,
                    "xl header: unknown mandatory flags 0x%x", bad);
    if (!(r->xl_mandatory & LXM_XL_MANDATORY_STREAMV2))
        return fail(r, LXM_ERROR_STREAM_VERSION,
                    r->piece_off + LXM__XL_OFF_MANDATORY, false,
                    "xl header: legacy (pre-Xen 4.6, not v2) stream is"
                    " not supported");
    if (r->optlen > LXM__XL_OPTDATA_MAX)
        return fail(r, LXM_ERROR_STREAM_TOO_LONG,
                    r->piece_off + LXM__XL_OFF_OPTLEN, false,
                    "xl header: optional data length %u exceeds %u", r->optlen,
                    LXM__XL_OPTDATA_MAX);
    if (r->optlen) {
        free(r->optdata);
        r->optdata = malloc(r->optlen);
        if (!r->optdata)
            return fail(r, LXM_ERROR_NOMEM, r->piece_off, false,
                        "xl header: cannot allocate %u bytes", r->optlen);
    }
    return 0;
}

/* The optional data is in: check the config, emit LXM_EV_XL_HEADER. */
static int xl_optdata(lxm_stream_reader *r)
{
    lxm_stream_event ev = { .kind = LXM_EV_XL_HEADER, .offset = r->xl_off };
    uint32_t config_len = 0;
    const char *config = NULL;
    bool json = r->xl_mandatory & LXM_XL_MANDATORY_JSON;

    if (r->optlen) {
        if (r->optlen < 4)
            return fail(r, LXM_ERROR_STREAM_RECORD, r->piece_off, false,
                        "xl header: optional data of %u bytes too short"
                        " for a config length",
                        r->optlen);
        config_len = lxm__le32(r->optdata);
        if (config_len > r->optlen - 4)
            return fail(r, LXM_ERROR_STREAM_RECORD, r->piece_off, false,
                        "xl header: config length %u exceeds the optional"
                        " data (%u bytes)",
                        config_len, r->optlen - 4);
        if (config_len)
            config = (const char *)r->optdata + 4;
    }
    if (json) {
        char errbuf[128];
        yajl_val tree;

        if (!config_len || config[config_len - 1] != '\0')
            return fail(r, LXM_ERROR_STREAM_RECORD, r->piece_off + 4, false,
                        "xl header: JSON config flag set but the config"
                        " is %s",
                        config_len ? "not NUL terminated" : "missing");
        errbuf[0] = '\0';
        tree = yajl_tree_parse(config, errbuf, sizeof(errbuf));
        if (!tree || !YAJL_IS_OBJECT(tree)) {
            char *nl = strchr(errbuf, '\n');

            if (nl)
                *nl = '\0';
            yajl_tree_free(tree);
            return fail(r, LXM_ERROR_STREAM_RECORD, r->piece_off + 4, false,
                        "xl header: domain config is not a JSON object%s%s",
                        errbuf[0] ? ": " : "", errbuf);
        }
        yajl_tree_free(tree);
    }

    ev.u.xl.mandatory_flags = r->xl_mandatory;
    ev.u.xl.optional_flags = r->xl_optional;
    ev.u.xl.optional_data_len = r->optlen;
    ev.u.xl.config = config;
    ev.u.xl.config_len = config_len;
    lxm__grammar_xl_header(&r->g);
    return emit(r, &ev);
}

static int libxl_header(lxm_stream_reader *r)
{
    const uint8_t *h = r->stage;
    lxm_stream_event ev = { .kind = LXM_EV_LIBXL_HEADER,
                            .offset = r->piece_off };
    uint64_t ident = lxm__be64(h);
    uint32_t version = lxm__be32(h + 8), options = lxm__be32(h + 12);

    if (ident != LXM__LIBXL_IDENT)
        return fail(r, LXM_ERROR_STREAM_MAGIC, r->piece_off, false,
                    "libxl header: bad ident 0x%016llx (expected"
                    " \"LibxlFmt\")",
                    (unsigned long long)ident);
    if (version != LXM__LIBXL_VERSION)
        return fail(r, LXM_ERROR_STREAM_VERSION, r->piece_off + 8, false,
                    "libxl header: version %u, only %u is supported", version,
                    LXM__LIBXL_VERSION);
    if (options & LXM__LIBXL_OPT_RESERVED)
        return fail(r, LXM_ERROR_STREAM_RESERVED, r->piece_off + 12, false,
                    "libxl header: reserved option bits 0x%x set",
                    options & LXM__LIBXL_OPT_RESERVED);
    if (options & LXM__LIBXL_OPT_BIG_ENDIAN)
        return fail(r, LXM_ERROR_STREAM_ENDIAN, r->piece_off + 12, false,
                    "libxl header: big-endian stream, only little-endian"
                    " (x86) is supported");

    ev.u.libxl_header.version = version;
    ev.u.libxl_header.options = options;
    lxm__grammar_libxl_header(&r->g);
    return emit(r, &ev);
}

static int libxc_header(lxm_stream_reader *r)
{
    const uint8_t *h = r->stage, *d = r->stage + LXM__LIBXC_IHDR_LEN;
    uint64_t doff = r->piece_off + LXM__LIBXC_IHDR_LEN;
    lxm_stream_event ev = { .kind = LXM_EV_LIBXC_HEADER,
                            .offset = r->piece_off };
    uint32_t version = lxm__be32(h + 12), type = lxm__le32(d);
    uint32_t major = lxm__le32(d + 8), minor = lxm__le32(d + 12);
    uint16_t options = lxm__be16(h + 16), page_shift = lxm__le16(d + 4);

    if (lxm__be64(h) != LXM__LIBXC_MARKER)
        return fail(r, LXM_ERROR_STREAM_MAGIC, r->piece_off, false,
                    "libxc image header: bad marker 0x%016llx (a legacy"
                    " image?)",
                    (unsigned long long)lxm__be64(h));
    if (lxm__be32(h + 8) != LXM__LIBXC_IDENT)
        return fail(r, LXM_ERROR_STREAM_MAGIC, r->piece_off + 8, false,
                    "libxc image header: bad id 0x%08x (expected \"XENF\")",
                    lxm__be32(h + 8));
    if (version < LXM__LIBXC_VERSION_MIN || version > LXM__LIBXC_VERSION)
        return fail(r, LXM_ERROR_STREAM_VERSION, r->piece_off + 12, false,
                    "libxc image header: version %u, supported %u-%u", version,
                    LXM__LIBXC_VERSION_MIN, LXM__LIBXC_VERSION);
    if (options & LXM__LIBXC_OPT_RESERVED)
        return fail(r, LXM_ERROR_STREAM_RESERVED, r->piece_off + 16, false,
                    "libxc image header: reserved option bits 0x%x set",
                    options & LXM__LIBXC_OPT_RESERVED);
    if (options & LXM__LIBXC_OPT_BIG_ENDIAN)
        return fail(r, LXM_ERROR_STREAM_ENDIAN, r->piece_off + 16, false,
                    "libxc image header: big-endian stream, only"
                    " little-endian (x86) is supported");
    if (lxm__be16(h + 18) || lxm__be32(h + 20))
        return fail(r, LXM_ERROR_STREAM_RESERVED, r->piece_off + 18, false,
                    "libxc image header: reserved field not zero");
    if (type != LXM_GUEST_X86_PV && type != LXM_GUEST_X86_HVM)
        return fail(r, LXM_ERROR_STREAM_RECORD, doff, false,
                    "libxc domain header: guest type %u is not x86 PV (1)"
                    " or x86 HVM (2)",
                    type);
    if (page_shift != LXM__PAGE_SHIFT)
        return fail(r, LXM_ERROR_STREAM_RECORD, doff + 4, false,
                    "libxc domain header: page shift %u, must be %u",
                    page_shift, LXM__PAGE_SHIFT);
    if (lxm__le16(d + 6))
        return fail(r, LXM_ERROR_STREAM_RESERVED, doff + 6, false,
                    "libxc domain header: reserved field not zero");
    if (major > UINT16_MAX || minor > UINT16_MAX)
        return fail(r, LXM_ERROR_STREAM_RECORD, doff + 8, false,
                    "libxc domain header: implausible Xen version %u.%u", major,
                    minor);

    ev.u.libxc_header.version = version;
    ev.u.libxc_header.options = options;
    ev.u.libxc_header.guest_type = type;
    ev.u.libxc_header.page_shift = page_shift;
    ev.u.libxc_header.xen_major = (uint16_t)major;
    ev.u.libxc_header.xen_minor = (uint16_t)minor;
    lxm__grammar_libxc_header(&r->g, version, type);
    return emit(r, &ev);
}

static int header_done(lxm_stream_reader *r)
{
    int rc;

    switch (r->g.expect) {
    case LXM__EXPECT_XL_HEADER:
        rc = xl_header(r);
        if (rc)
            return rc;
        if (r->optlen) {
            collect(r, ST_XL_OPTDATA, r->optlen);
            return 0;
        }
        rc = xl_optdata(r);
        break;
    case LXM__EXPECT_LIBXL_HEADER:
        rc = libxl_header(r);
        break;
    default:
        rc = libxc_header(r);
        break;
    }
    if (!rc)
        expect_next(r);
    return rc;
}

/* ---- records ------------------------------------------------------ */

static int record_end(lxm_stream_reader *r)
{
    lxm_stream_event ev = { .kind = LXM_EV_RECORD_END, .offset = r->rec_off };
    lxm__check c;
    int rc;

    if (r->body_checked) {
        rc = lxm__body_check_finish(&r->bc, r->rlen, &c);
        if (rc)
            return fail_check(r, &c);
    }
    if ((r->opts.flags & LXM_READER_BODIES) &&
        !(r->layer == LXM_LAYER_LIBXC && r->rtype == LXM_LIBXC_PAGE_DATA)) {
        lxm_stream_event bev = { .kind = LXM_EV_RECORD_BODY,
                                 .offset = r->rec_off };

        bev.u.body.type = r->rtype;
        bev.u.body.data = r->body;
        bev.u.body.length = r->rlen;
        rc = emit(r, &bev);
        if (rc)
            return rc;
    }

    ev.u.record.type = r->rtype;
    ev.u.record.length = r->rlen;
    ev.u.record.checkpoint = r->g.checkpoint;
    if (r->layer == LXM_LAYER_LIBXC && r->rtype == LXM_LIBXC_PAGE_DATA) {
        ev.u.record.pfns = r->pfns;
        ev.u.record.count = r->count;
        ev.u.record.nr_data_pages = r->nr_data;
    }
    rc = emit(r, &ev);
    if (rc)
        return rc;

    expect_next(r);
    if (r->st == ST_DONE) {
        lxm_stream_event eev = { .kind = LXM_EV_STREAM_END,
                                 .offset = r->rec_off };

        rc = emit(r, &eev);
        if (rc)
            return rc;
        r->st = ST_DONE;
    }
    return 0;
}

/* The body (pages included) is consumed: padding, then the end. */
static int body_done(lxm_stream_reader *r)
{
    uint32_t pad = (uint32_t)(LXM_ROUNDUP8(r->rlen) - r->rlen);

    if (pad) {
        collect(r, ST_PADDING, pad);
        return 0;
    }
    return record_end(r);
}

/* After the head (and pfns): announce the record, then its body. */
static int record_begin(lxm_stream_reader *r)
{
    lxm_stream_event ev = { .kind = LXM_EV_RECORD, .offset = r->rec_off };
    bool page_data =
        r->layer == LXM_LAYER_LIBXC && r->rtype == LXM_LIBXC_PAGE_DATA;
    lxm__check c;
    int rc;

    /* The grammar last: a record with bad content is reported as such
     * even where it would also be out of order. */
    rc = lxm__grammar_record(&r->g, r->rtype, &c);
    if (rc)
        return fail_check(r, &c);

    ev.u.record.type = r->rtype;
    ev.u.record.length = r->rlen;
    ev.u.record.checkpoint = r->g.checkpoint;
    if (page_data) {
        ev.u.record.pfns = r->pfns;
        ev.u.record.count = r->count;
        ev.u.record.nr_data_pages = r->nr_data;
    }
    rc = emit(r, &ev);
    if (rc)
        return rc;

    r->body_checked = lxm__body_check_wanted(r->layer, r->rtype);
    if (r->body_checked) {
        lxm__body_check_init(&r->bc, r->layer, r->rtype);
        lxm__body_check_feed(&r->bc, r->head, r->head_len);
    }

    if ((r->opts.flags & LXM_READER_BODIES) && !page_data) {
        /* rlen passed the cap in lxm__record_check(). */
        if (r->rlen > r->body_cap) {
            uint8_t *nb = realloc(r->body, r->rlen);

            if (!nb)
                return fail(r, LXM_ERROR_NOMEM, r->rec_off, true,
                            "cannot allocate %u bytes for the body", r->rlen);
            r->body = nb;
            r->body_cap = r->rlen;
        }
        if (r->head_len)
            memcpy(r->body, r->head, r->head_len);
    }

    if (page_data && r->nr_data && (r->opts.flags & LXM_READER_PAGES)) {
        r->pfn_i = 0;
        collect(r, ST_PAGE, LXM_PAGE_SIZE);
        return 0;
    }
    if (r->body_done < r->rlen) {
        r->st = ST_BODY;
        return 0;
    }
    return body_done(r);
}

static int head_done(lxm_stream_reader *r)
{
    lxm__check c;
    int rc;

    rc = lxm__record_check(r->layer, r->rtype, r->rlen, r->head,
                           r->g.libxc_version, &c);
    if (rc)
        return fail_check(r, &c);
    r->body_done = r->head_len;

    if (r->layer == LXM_LAYER_LIBXC && r->rtype == LXM_LIBXC_PAGE_DATA) {
        r->count = lxm__le32(r->head);
        rc = lxm__page_data_check_count(r->count, r->rlen, &c);
        if (rc)
            return fail_check(r, &c);
        collect(r, ST_PFNS, 8 * r->count);
        return 0;
    }
    return record_begin(r);
}

static int pfns_done(lxm_stream_reader *r)
{
    lxm__check c;
    uint32_t i;
    int rc;

    for (i = 0; i < r->count; i++)
        r->pfns[i] = le64toh(r->pfns[i]);
    rc = lxm__page_data_check_pfns(r->count, r->rlen, r->pfns, &r->nr_data, &c);
    if (rc)
        return fail_check(r, &c);
    r->body_done += 8 * r->count;
    return record_begin(r);
}

static int rhdr_done(lxm_stream_reader *r)
{
    r->rec_off = r->piece_off;
    r->rtype = lxm__le32(r->stage);
    r->rlen = lxm__le32(r->stage + 4);
    r->head_len = lxm__record_head_len(r->layer, r->rtype, r->rlen);
    r->count = r->nr_data = 0;
    if (r->head_len) {
        collect(r, ST_HEAD, r->head_len);
        return 0;
    }
    return head_done(r);
}

/* ---- pages -------------------------------------------------------- */

/* Index of the next pfn word, from r->pfn_i on, whose page has data. */
static uint32_t next_data_pfn(const lxm_stream_reader *r, uint32_t i)
{
    while (i < r->count && !lxm_page_type_has_data((
                               unsigned int)(r->pfns[i] >> LXM_PFN_TYPE_SHIFT)))
        i++;
    return i;
}

static int page_done(lxm_stream_reader *r, const uint8_t *data)
{
    lxm_stream_event ev = { .kind = LXM_EV_PAGE, .offset = r->piece_off };
    uint32_t i = next_data_pfn(r, r->pfn_i);
    int rc;

    ev.u.page.pfn = r->pfns[i] & LXM_PFN_MASK;
    ev.u.page.page_type = (uint32_t)(r->pfns[i] >> LXM_PFN_TYPE_SHIFT);
    ev.u.page.index = i;
    ev.u.page.data = data;
    rc = emit(r, &ev);
    if (rc)
        return rc;

    r->pfn_i = i + 1;
    r->body_done += LXM_PAGE_SIZE;
    if (r->body_done < r->rlen) {
        collect(r, ST_PAGE, LXM_PAGE_SIZE);
        return 0;
    }
    return body_done(r);
}

/* ---- feeding ------------------------------------------------------ */

/* The staging destination of a collecting state. */
static uint8_t *stage_for(lxm_stream_reader *r)
{
    switch (r->st) {
    case ST_XL_OPTDATA:
        return r->optdata;
    case ST_HEAD:
        return r->head;
    case ST_PFNS:
        return (uint8_t *)r->pfns;
    case ST_PAGE:
        return r->page;
    default:
        return r->stage;
    }
}

static int collected(lxm_stream_reader *r, const uint8_t *piece)
{
    uint32_t i;

    switch (r->st) {
    case ST_HEADER:
        return header_done(r);
    case ST_XL_OPTDATA: {
        int rc = xl_optdata(r);

        if (!rc)
            expect_next(r);
        return rc;
    }
    case ST_RHDR:
        return rhdr_done(r);
    case ST_HEAD:
        return head_done(r);
    case ST_PFNS:
        return pfns_done(r);
    case ST_PAGE:
        return page_done(r, piece);
    case ST_PADDING:
        for (i = 0; i < r->need; i++)
            if (piece[i])
                return fail(r, LXM_ERROR_STREAM_PADDING, r->piece_off + i, true,
                            "padding byte %u is 0x%02x, must be 0", i,
                            piece[i]);
        return record_end(r);
    default:
        return fail(r, LXM_ERROR_FAIL, r->offset, false,
                    "reader in state %d collected bytes", (int)r->st);
    }
}

int lxm_stream_reader_feed(lxm_stream_reader *r, const void *buf, size_t len,
                           size_t *consumed_r)
{
    const uint8_t *p = buf;
    size_t left = len;
    int rc = 0;

    if (!r || (!buf && len)) {
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    if (r->st == ST_ERROR) {
        rc = r->err.rc;
        goto out;
    }

    while (left) {
        if (r->st == ST_DONE) {
            if (r->opts.flags & LXM_READER_STOP_AT_END)
                break;
            rc = fail(r, LXM_ERROR_STREAM_TRAILING, r->offset, false,
                      "%zu trailing bytes after the end of the stream", left);
            goto out;
        }

        if (r->st == ST_BODY) {
            uint32_t n =
                (uint32_t)LXM_MIN(left, (size_t)(r->rlen - r->body_done));

            if (r->body_checked)
                lxm__body_check_feed(&r->bc, p, n);
            if (r->body && (r->opts.flags & LXM_READER_BODIES) &&
                !(r->layer == LXM_LAYER_LIBXC &&
                  r->rtype == LXM_LIBXC_PAGE_DATA))
                memcpy(r->body + r->body_done, p, n);
            r->body_done += n;
            r->offset += n;
            p += n;
            left -= n;
            if (r->body_done == r->rlen) {
                rc = body_done(r);
                if (rc)
                    goto out;
            }
            continue;
        }

        if (r->st == ST_PAGE && r->have == 0 && left >= LXM_PAGE_SIZE) {
            /* Whole page in the input: hand it out in place. */
            r->offset += LXM_PAGE_SIZE;
            p += LXM_PAGE_SIZE;
            left -= LXM_PAGE_SIZE;
            rc = page_done(r, p - LXM_PAGE_SIZE);
            if (rc)
                goto out;
            continue;
        }

        {
            uint32_t n = (uint32_t)LXM_MIN(left, (size_t)(r->need - r->have));
            uint8_t *dst = stage_for(r);

            memcpy(dst + r->have, p, n);
            r->have += n;
            r->offset += n;
            p += n;
            left -= n;
            if (r->have == r->need) {
                rc = collected(r, dst);
                if (rc)
                    goto out;
            }
        }
    }

out:
    if (consumed_r)
        *consumed_r = len - left;
    return rc;
}

static const char *state_what(const lxm_stream_reader *r)
{
    switch (r->st) {
    case ST_HEADER:
        switch (r->g.expect) {
        case LXM__EXPECT_XL_HEADER:
            return "the xl header";
        case LXM__EXPECT_LIBXL_HEADER:
            return "the libxl header";
        default:
            return "the libxc image/domain header";
        }
    case ST_XL_OPTDATA:
        return "the xl domain config";
    case ST_RHDR:
        return "a record header";
    case ST_HEAD:
    case ST_PFNS:
    case ST_BODY:
    case ST_PAGE:
    case ST_PADDING:
        return "a record";
    default:
        return "the stream";
    }
}

int lxm_stream_reader_finish(lxm_stream_reader *r)
{
    bool in_record;

    if (!r)
        return LXM_ERROR_INVAL;
    if (r->st == ST_ERROR)
        return r->err.rc;
    if (r->st == ST_DONE)
        return 0;

    in_record = r->st >= ST_HEAD && r->st <= ST_PADDING;
    if (r->st == ST_RHDR && r->have == 0)
        return fail(r, LXM_ERROR_STREAM_TRUNCATED, r->offset, false,
                    "stream truncated: ends before the %s END record",
                    r->g.format == LXM_FORMAT_LIBXC ||
                            r->layer == LXM_LAYER_LIBXC
                        ? "libxc"
                        : "libxl");
    return fail(r, LXM_ERROR_STREAM_TRUNCATED, r->offset, in_record,
                "stream truncated inside %s", state_what(r));
}

int lxm_stream_reader_read_fd(lxm_stream_reader *r, int fd)
{
    size_t bufsz = 1u << 20, used;
    uint8_t *buf = NULL;
    ssize_t n;
    int rc;

    if (!r || fd < 0) {
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    buf = malloc(bufsz);
    if (!buf) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }

    for (;;) {
        n = read(fd, buf, bufsz);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            LXM_LOG_ERRNO(r->opts.logger, "%s: read at offset %llu",
                          r->name ? r->name : "stream",
                          (unsigned long long)r->offset);
            rc = LXM_ERROR_IO;
            goto out;
        }
        if (n == 0)
            break;
        rc = lxm_stream_reader_feed(r, buf, (size_t)n, &used);
        if (rc)
            goto out;
        if (used < (size_t)n)
            break; /* LXM_READER_STOP_AT_END: the stream is over */
    }
    rc = lxm_stream_reader_finish(r);

out:
    free(buf);
    return rc;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
