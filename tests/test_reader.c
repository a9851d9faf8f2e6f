/*
 * test_reader.c - the stream reader: one negative test per validation
 * rule (each names the error code and the offset it must report),
 * chunking equivalence, trailing bytes, STOP_AT_END, callbacks.
 *
 * Streams are built here byte by byte with a deliberately naive builder
 * (not with our writer), so that a bug shared by the writer and the
 * reader cannot hide; the writer's own tests cover the other direction.
 */
#include <stdio.h>
#include <stdlib.h>

#include "test.h"

/* ---- a naive stream builder --------------------------------------- */

typedef struct sb {
    uint8_t data[1 << 16];
    size_t len;
} sb;

static void sb_bytes(sb *b, const void *p, size_t n)
{
    ck_assert_uint_le(b->len + n, sizeof(b->data));
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void sb_u8(sb *b, uint8_t v)
{
    sb_bytes(b, &v, 1);
}
static void sb_le16(sb *b, uint16_t v)
{
    sb_u8(b, v & 0xff);
    sb_u8(b, v >> 8);
}
static void sb_le32(sb *b, uint32_t v)
{
    sb_le16(b, v & 0xffff);
    sb_le16(b, v >> 16);
}
static void sb_le64(sb *b, uint64_t v)
{
    sb_le32(b, (uint32_t)v);
    sb_le32(b, (uint32_t)(v >> 32));
}
static void sb_be16(sb *b, uint16_t v)
{
    sb_u8(b, v >> 8);
    sb_u8(b, v & 0xff);
}
static void sb_be32(sb *b, uint32_t v)
{
    sb_be16(b, v >> 16);
    sb_be16(b, v & 0xffff);
}
static void sb_be64(sb *b, uint64_t v)
{
    sb_be32(b, (uint32_t)(v >> 32));
    sb_be32(b, (uint32_t)v);
}

static void sb_fill(sb *b, uint8_t v, size_t n)
{
    while (n--)
        sb_u8(b, v);
}

/* A record: header, body, zero padding.  Returns its offset. */
static size_t sb_rec(sb *b, uint32_t type, const void *body, uint32_t len)
{
    size_t off = b->len;

    sb_le32(b, type);
    sb_le32(b, len);
    if (len)
        sb_bytes(b, body, len);
    sb_fill(b, 0, (8 - len % 8) % 8);
    return off;
}

static void sb_xl(sb *b, const char *json)
{
    uint32_t clen = json ? (uint32_t)strlen(json) + 1 : 0;

    sb_bytes(b, LXM_XL_MAGIC, LXM_XL_MAGIC_LEN);
    sb_le32(b, 0x01020304);
    sb_le32(b, 2 | (json ? 1 : 0));
    sb_le32(b, 0);
    sb_le32(b, json ? 4 + clen : 0);
    if (json) {
        sb_le32(b, clen);
        sb_bytes(b, json, clen);
    }
}

static void sb_libxl_hdr(sb *b)
{
    sb_be64(b, UINT64_C(0x4c6962786c466d74));
    sb_be32(b, 2);
    sb_be32(b, 0);
}

static void sb_libxc_hdr(sb *b, uint32_t version, uint32_t guest)
{
    sb_be64(b, ~UINT64_C(0));
    sb_be32(b, 0x58454e46);
    sb_be32(b, version);
    sb_be16(b, 0);
    sb_be16(b, 0);
    sb_be32(b, 0);
    sb_le32(b, guest);
    sb_le16(b, 12);
    sb_le16(b, 0);
    sb_le32(b, 4);
    sb_le32(b, 17);
}

/* PAGE_DATA with n pfns from first; XTAB for every third.  Page i is
 * filled with byte (pfn & 0xff). */
static size_t sb_pages(sb *b, uint64_t first, uint32_t n)
{
    size_t off = b->len;
    uint32_t i, ndata = 0;

    for (i = 0; i < n; i++)
        ndata += (i % 3 != 2);
    sb_le32(b, LXM_LIBXC_PAGE_DATA);
    sb_le32(b, 8 + 8 * n + 4096 * ndata);
    sb_le32(b, n);
    sb_le32(b, 0);
    for (i = 0; i < n; i++)
        sb_le64(b, LXM_PFN_WORD(first + i,
                                i % 3 == 2 ? LXM_PAGE_XTAB : LXM_PAGE_NOTAB));
    for (i = 0; i < n; i++)
        if (i % 3 != 2)
            sb_fill(b, (uint8_t)(first + i), 4096);
    return off;
}

/* Offsets of interest in the reference stream. */
typedef struct ref {
    size_t xl, libxl, libxc, cpuid, sde, pages, pages2, tsc, hvmctx, params,
        xcend, xsdata, emuctx, xlend;
} ref;

#define JSON "{\"c_info\":{\"type\":\"hvm\",\"name\":\"t\"}}"

/* A complete HVM stream exercising most record kinds. */
static void build_hvm(sb *b, ref *o)
{
    static const uint8_t cpuid[48], msr[16], tsc[24] = { 2 }, ctx[40] = { 1 };
    uint8_t params[40] = { 2 };
    static const uint8_t xs[8 + 12] = { 2,   0,   0,   0,   0,   0,   0,
                                        0,   'k', '1', 0,   'v', '1', 0,
                                        'k', '2', 0,   'v', 0,   0 };
    static const uint8_t emu[8 + 5] = { 2, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3 };

    memset(o, 0, sizeof(*o));
    b->len = 0;
    o->xl = b->len;
    sb_xl(b, JSON);
    o->libxl = b->len;
    sb_libxl_hdr(b);
    sb_rec(b, LXM_LIBXL_LIBXC_CONTEXT, NULL, 0);
    o->libxc = b->len;
    sb_libxc_hdr(b, 3, LXM_GUEST_X86_HVM);
    o->cpuid = sb_rec(b, LXM_LIBXC_X86_CPUID_POLICY, cpuid, sizeof(cpuid));
    sb_rec(b, LXM_LIBXC_X86_MSR_POLICY, msr, sizeof(msr));
    o->sde = sb_rec(b, LXM_LIBXC_STATIC_DATA_END, NULL, 0);
    o->pages = sb_pages(b, 0x10, 4);
    o->pages2 = sb_pages(b, 0x10, 2); /* a second round */
    o->tsc = sb_rec(b, LXM_LIBXC_X86_TSC_INFO, tsc, sizeof(tsc));
    o->hvmctx = sb_rec(b, LXM_LIBXC_HVM_CONTEXT, ctx, 37); /* padded */
    o->params = sb_rec(b, LXM_LIBXC_HVM_PARAMS, params, sizeof(params));
    o->xcend = sb_rec(b, LXM_LIBXC_END, NULL, 0);
    o->xsdata = sb_rec(b, LXM_LIBXL_EMULATOR_XENSTORE_DATA, xs, 8 + 11);
    o->emuctx = sb_rec(b, LXM_LIBXL_EMULATOR_CONTEXT, emu, sizeof(emu));
    o->xlend = sb_rec(b, LXM_LIBXL_END, NULL, 0);
}

/* ---- an event log to compare runs --------------------------------- */

typedef struct evlog {
    uint64_t hash; /* FNV-1a over every event's fields */
    unsigned int n[LXM_EV_STREAM_END + 1];
    unsigned int pages;
    int abort_at; /* return ABORTED at this event (-1) */
    unsigned int seen;
} evlog;

static void mix(evlog *l, const void *p, size_t n)
{
    const uint8_t *q = p;

    while (n--) {
        l->hash ^= *q++;
        l->hash *= UINT64_C(0x100000001b3);
    }
}

static int log_event(void *opaque, const lxm_stream_event *ev)
{
    evlog *l = opaque;

    if ((int)l->seen++ == l->abort_at)
        return LXM_ERROR_ABORTED;
    l->n[ev->kind]++;
    mix(l, &ev->kind, sizeof(ev->kind));
    mix(l, &ev->layer, sizeof(ev->layer));
    mix(l, &ev->offset, sizeof(ev->offset));
    switch (ev->kind) {
    case LXM_EV_XL_HEADER:
        mix(l, ev->u.xl.config, ev->u.xl.config_len);
        break;
    case LXM_EV_LIBXC_HEADER:
        mix(l, &ev->u.libxc_header.guest_type, 4);
        break;
    case LXM_EV_RECORD:
    case LXM_EV_RECORD_END:
        mix(l, &ev->u.record.type, 4);
        mix(l, &ev->u.record.length, 4);
        mix(l, &ev->u.record.checkpoint, 4);
        if (ev->u.record.pfns)
            mix(l, ev->u.record.pfns, 8 * ev->u.record.count);
        break;
    case LXM_EV_RECORD_BODY:
        mix(l, ev->u.body.data, ev->u.body.length);
        break;
    case LXM_EV_PAGE:
        l->pages++;
        mix(l, &ev->u.page.pfn, 8);
        mix(l, ev->u.page.data, LXM_PAGE_SIZE);
        break;
    default:
        break;
    }
    return 0;
}

static void evlog_init(evlog *l)
{
    memset(l, 0, sizeof(*l));
    l->hash = UINT64_C(0xcbf29ce484222325);
    l->abort_at = -1;
}

#define ALL (LXM_READER_PAGES | LXM_READER_BODIES)

/* ---- positive ----------------------------------------------------- */

START_TEST(test_reference_stream)
{
    static sb b;
    ref o;
    evlog l;
    lxm_stream_error e;

    build_hvm(&b, &o);
    evlog_init(&l);
    ck_assert_int_eq(lxm_test_read_buf(b.data, b.len, LXM_FORMAT_XL, ALL, 0,
                                       log_event, &l, &e),
                     0);
    ck_assert_uint_eq(l.n[LXM_EV_XL_HEADER], 1);
    ck_assert_uint_eq(l.n[LXM_EV_LIBXL_HEADER], 1);
    ck_assert_uint_eq(l.n[LXM_EV_LIBXC_HEADER], 1);
    ck_assert_uint_eq(l.n[LXM_EV_RECORD], 13);
    ck_assert_uint_eq(l.n[LXM_EV_RECORD_END], 13);
    ck_assert_uint_eq(l.n[LXM_EV_RECORD_BODY], 11);
    ck_assert_uint_eq(l.n[LXM_EV_STREAM_END], 1);
    ck_assert_uint_eq(l.pages, 3 + 2);
}
END_TEST

/* Same events for every chunk size, for the reference stream and for
 * synthetic PV / HVM / checkpointed streams from synth.c. */
static const size_t chunks[] = { 1, 2, 3, 7, 8, 13, 4095, 4096, 4097, 65536 };

static void check_chunking(const uint8_t *data, size_t len,
                           lxm_stream_format fmt)
{
    evlog whole, part;
    size_t i;

    evlog_init(&whole);
    ck_assert_int_eq(
        lxm_test_read_buf(data, len, fmt, ALL, 0, log_event, &whole, NULL), 0);
    for (i = 0; i < LXM_ARRAY_SIZE(chunks); i++) {
        evlog_init(&part);
        ck_assert_int_eq(lxm_test_read_buf(data, len, fmt, ALL, chunks[i],
                                           log_event, &part, NULL),
                         0);
        ck_assert_msg(part.hash == whole.hash,
                      "chunk size %zu gives other events", chunks[i]);
        ck_assert_uint_eq(part.seen, whole.seen);
    }
}

START_TEST(test_chunking_reference)
{
    static sb b;
    ref o;

    build_hvm(&b, &o);
    check_chunking(b.data, b.len, LXM_FORMAT_XL);
    /* the libxl and libxc parts alone, as verify-stream-v2 -f takes */
    check_chunking(b.data + o.libxl, b.len - o.libxl, LXM_FORMAT_LIBXL);
}
END_TEST

static const lxm__synth_opts synth_cases[] = {
    { .guest_type = LXM_GUEST_X86_PV,
      .memory_bytes = 256 << 10,
      .rounds = 2,
      .vcpus = 2,
      .seed = 7,
      .name = "pv" },
    { .guest_type = LXM_GUEST_X86_HVM,
      .memory_bytes = 256 << 10,
      .rounds = 2,
      .vcpus = 1,
      .seed = 8,
      .name = "hvm" },
    { .guest_type = LXM_GUEST_X86_HVM,
      .pvh = true,
      .memory_bytes = 128 << 10,
      .rounds = 1,
      .vcpus = 1,
      .seed = 9,
      .name = "pvh" },
    { .guest_type = LXM_GUEST_X86_HVM,
      .memory_bytes = 128 << 10,
      .rounds = 1,
      .vcpus = 1,
      .seed = 10,
      .name = "remus",
      .checkpointed = true },
};

START_TEST(test_chunking_synth)
{
    lxm_test_buf buf = { 0 };

    lxm_test_synth(&synth_cases[_i], LXM_FORMAT_XL, &buf);
    check_chunking(buf.data, buf.len, LXM_FORMAT_XL);
    lxm_test_buf_dispose(&buf);
}
END_TEST

START_TEST(test_checkpoint_layers)
{
    lxm_test_buf buf = { 0 };
    evlog l;

    lxm_test_synth(&synth_cases[3], LXM_FORMAT_XL, &buf);
    evlog_init(&l);
    ck_assert_int_eq(lxm_test_read_buf(buf.data, buf.len, LXM_FORMAT_XL, 0, 0,
                                       log_event, &l, NULL),
                     0);
    /* one libxc header however many checkpoints */
    ck_assert_uint_eq(l.n[LXM_EV_LIBXC_HEADER], 1);
    lxm_test_buf_dispose(&buf);
}
END_TEST

/* ---- negative: one per rule --------------------------------------- */

typedef enum base { B_XL, B_LIBXL, B_LIBXC } base;

typedef struct neg_case {
    const char *what;
    /* patch: at ref field + delta, write len bytes of val (LE) */
    size_t ref_field; /* offsetof(ref, ...) */
    size_t delta;
    int width; /* 1, 2, 4, 8 bytes; 0 = truncate there;
                                 * -1 = big-endian 4 bytes */
    uint64_t val;
    int rc;
    size_t err_field; /* expected error offset: ref + delta */
    size_t err_delta;
} neg_case;

#define R(f) offsetof(ref, f)

static const neg_case neg_cases[] = {
    /* xl header */
    { "xl magic", R(xl), 0, 1, 'Y', LXM_ERROR_STREAM_MAGIC, R(xl), 0 },
    { "xl big-endian", R(xl), 32, 4, 0x04030201, LXM_ERROR_STREAM_ENDIAN, R(xl),
      32 },
    { "xl byteorder junk", R(xl), 32, 4, 0x11223344, LXM_ERROR_STREAM_ENDIAN,
      R(xl), 32 },
    { "xl mandatory flag", R(xl), 36, 4, 0x7, LXM_ERROR_STREAM_VERSION, R(xl),
      36 },
    { "xl legacy stream", R(xl), 36, 4, 0x1, LXM_ERROR_STREAM_VERSION, R(xl),
      36 },
    { "xl optdata too long", R(xl), 44, 4, 0x7fffffff,
      LXM_ERROR_STREAM_TOO_LONG, R(xl), 44 },
    { "xl config too long", R(xl), 48, 4, 0x1000, LXM_ERROR_STREAM_RECORD,
      R(xl), 48 },
    { "xl config not NUL terminated", R(libxl), -1, 1, '}',
      LXM_ERROR_STREAM_RECORD, R(xl), 52 },
    { "xl config not JSON", R(xl), 53, 1, '[', LXM_ERROR_STREAM_RECORD, R(xl),
      52 },
    /* libxl header */
    { "libxl ident", R(libxl), 0, 1, 'l', LXM_ERROR_STREAM_MAGIC, R(libxl), 0 },
    { "libxl version", R(libxl), 8, -1, 3, LXM_ERROR_STREAM_VERSION, R(libxl),
      8 },
    { "libxl reserved options", R(libxl), 12, -1, 0x100,
      LXM_ERROR_STREAM_RESERVED, R(libxl), 12 },
    { "libxl big-endian", R(libxl), 12, -1, 1, LXM_ERROR_STREAM_ENDIAN,
      R(libxl), 12 },
    /* libxc headers */
    { "libxc marker", R(libxc), 0, 1, 0, LXM_ERROR_STREAM_MAGIC, R(libxc), 0 },
    { "libxc id", R(libxc), 8, -1, 0x58454e47, LXM_ERROR_STREAM_MAGIC, R(libxc),
      8 },
    { "libxc version 4", R(libxc), 12, -1, 4, LXM_ERROR_STREAM_VERSION,
      R(libxc), 12 },
    { "libxc version 1", R(libxc), 12, -1, 1, LXM_ERROR_STREAM_VERSION,
      R(libxc), 12 },
    { "libxc reserved options", R(libxc), 16, 1, 0x80,
      LXM_ERROR_STREAM_RESERVED, R(libxc), 16 },
    { "libxc big-endian", R(libxc), 17, 1, 1, LXM_ERROR_STREAM_ENDIAN, R(libxc),
      16 },
    { "libxc header reserved", R(libxc), 20, 1, 1, LXM_ERROR_STREAM_RESERVED,
      R(libxc), 18 },
    { "guest type PVH(3)", R(libxc), 24, 4, 3, LXM_ERROR_STREAM_RECORD,
      R(libxc), 24 },
    { "guest type 0", R(libxc), 24, 4, 0, LXM_ERROR_STREAM_RECORD, R(libxc),
      24 },
    { "page shift 13", R(libxc), 28, 2, 13, LXM_ERROR_STREAM_RECORD, R(libxc),
      28 },
    { "domain header reserved", R(libxc), 30, 2, 1, LXM_ERROR_STREAM_RESERVED,
      R(libxc), 30 },
    /* records */
    { "unknown mandatory libxc", R(tsc), 0, 4, 0x42,
      LXM_ERROR_STREAM_UNKNOWN_RECORD, R(tsc), 0 },
    { "unknown mandatory libxl", R(emuctx), 0, 4, 0x42,
      LXM_ERROR_STREAM_UNKNOWN_RECORD, R(emuctx), 0 },
    { "record over 128 MiB", R(hvmctx), 4, 4, (128u << 20) + 8,
      LXM_ERROR_STREAM_TOO_LONG, R(hvmctx), 4 },
    { "padding", R(hvmctx), 8 + 37, 1, 0xee, LXM_ERROR_STREAM_PADDING,
      R(hvmctx), 8 + 37 },
    { "last padding byte", R(hvmctx), 8 + 39, 1, 1, LXM_ERROR_STREAM_PADDING,
      R(hvmctx), 8 + 39 },
    { "PAGE_DATA count 0", R(pages), 8, 4, 0, LXM_ERROR_STREAM_PAGE_COUNT,
      R(pages), 8 },
    { "PAGE_DATA count 1025", R(pages), 8, 4, 1025, LXM_ERROR_STREAM_PAGE_COUNT,
      R(pages), 8 },
    { "PAGE_DATA count 3 of 4", R(pages), 8, 4, 3, LXM_ERROR_STREAM_PAGE_COUNT,
      R(pages), 4 },
    { "PAGE_DATA length", R(pages), 4, 4, 8 + 32 + 4096 * 2,
      LXM_ERROR_STREAM_PAGE_COUNT, R(pages), 4 },
    { "PAGE_DATA reserved", R(pages), 12, 1, 1, LXM_ERROR_STREAM_RESERVED,
      R(pages), 12 },
    { "pfn reserved bits", R(pages), 16 + 6, 1, 0x20, LXM_ERROR_STREAM_RESERVED,
      R(pages), 16 },
    { "page type 5", R(pages), 16 + 8 + 7, 1, 0x50, LXM_ERROR_STREAM_PAGE_TYPE,
      R(pages), 24 },
    { "page type 8", R(pages), 16 + 8 + 7, 1, 0x80, LXM_ERROR_STREAM_PAGE_TYPE,
      R(pages), 24 },
    { "XTAB turned NOTAB", R(pages), 16 + 16 + 7, 1, 0x00,
      LXM_ERROR_STREAM_PAGE_COUNT, R(pages), 4 },
    { "TSC length", R(tsc), 4, 4, 16, LXM_ERROR_STREAM_RECORD, R(tsc), 4 },
    { "TSC reserved", R(tsc), 8 + 20, 1, 1, LXM_ERROR_STREAM_RESERVED, R(tsc),
      8 + 20 },
    { "HVM_PARAMS count", R(params), 8, 4, 1, LXM_ERROR_STREAM_RECORD,
      R(params), 8 },
    { "CPUID length", R(cpuid), 4, 4, 40, LXM_ERROR_STREAM_RECORD, R(cpuid),
      4 },
    { "END not empty", R(xcend), 4, 4, 8, LXM_ERROR_STREAM_RECORD, R(xcend),
      4 },
    { "TOOLSTACK", R(tsc), 0, 4, LXM_LIBXC_TOOLSTACK, LXM_ERROR_STREAM_RECORD,
      R(tsc), 0 },
    { "xenstore data not NUL terminated", R(xsdata), 8 + 18, 1, 'x',
      LXM_ERROR_STREAM_RECORD, R(xsdata), 8 + 18 },
    { "emulator id", R(emuctx), 8, 4, 9, LXM_ERROR_STREAM_RECORD, R(emuctx),
      8 },
    /* order */
    { "STATIC_DATA_END missing", R(sde), 0, 4, 0x80000010,
      LXM_ERROR_STREAM_ORDER, R(pages), 0 },
    { "PV record in HVM stream", R(tsc), 0, 4, LXM_LIBXC_X86_PV_VCPU_BASIC,
      LXM_ERROR_STREAM_ORDER, R(tsc), 0 },
    { "CHECKPOINT_END outside a checkpoint", R(emuctx), 0, 4,
      LXM_LIBXL_CHECKPOINT_END, LXM_ERROR_STREAM_RECORD, R(emuctx), 4 },
    { "libxc END before HVM_CONTEXT", R(hvmctx), 0, 4, 0x80000009,
      LXM_ERROR_STREAM_ORDER, R(xcend), 0 },
    /* truncation */
    { "truncated in xl header", R(xl), 20, 0, 0, LXM_ERROR_STREAM_TRUNCATED,
      R(xl), 20 },
    { "truncated in config", R(xl), 60, 0, 0, LXM_ERROR_STREAM_TRUNCATED, R(xl),
      60 },
    { "truncated in libxc header", R(libxc), 30, 0, 0,
      LXM_ERROR_STREAM_TRUNCATED, R(libxc), 30 },
    { "truncated in page data", R(pages), 100, 0, 0, LXM_ERROR_STREAM_TRUNCATED,
      R(pages), 100 },
    { "truncated in padding", R(hvmctx), 8 + 38, 0, 0,
      LXM_ERROR_STREAM_TRUNCATED, R(hvmctx), 8 + 38 },
    { "truncated before libxc END", R(xcend), 0, 0, 0,
      LXM_ERROR_STREAM_TRUNCATED, R(xcend), 0 },
    { "truncated before libxl END", R(xlend), 0, 0, 0,
      LXM_ERROR_STREAM_TRUNCATED, R(xlend), 0 },
};

static size_t ref_at(const ref *o, size_t field)
{
    size_t v;

    memcpy(&v, (const uint8_t *)o + field, sizeof(v));
    return v;
}

START_TEST(test_negative)
{
    const neg_case *t = &neg_cases[_i];
    static sb b;
    ref o;
    size_t at, want;
    lxm_stream_error e;
    int rc, k;

    build_hvm(&b, &o);
    at = ref_at(&o, t->ref_field) + t->delta;
    want = ref_at(&o, t->err_field) + t->err_delta;
    if (t->width == 0) {
        b.len = at;
    } else if (t->width < 0) {
        for (k = 0; k < 4; k++)
            b.data[at + k] = (uint8_t)(t->val >> (8 * (3 - k)));
    } else {
        for (k = 0; k < t->width; k++)
            b.data[at + k] = (uint8_t)(t->val >> (8 * k));
    }

    rc =
        lxm_test_read_buf(b.data, b.len, LXM_FORMAT_XL, ALL, 0, NULL, NULL, &e);
    ck_assert_msg(rc == t->rc, "%s: rc %d (%s: %s), want %d (%s)", t->what, rc,
                  lxm_strerror(rc), e.message, t->rc, lxm_strerror(t->rc));
    ck_assert_msg(e.offset == want, "%s: offset %llu, want %zu (%s)", t->what,
                  (unsigned long long)e.offset, want, e.message);
    ck_assert_msg(e.message[0], "%s: no message", t->what);

    /* byte by byte: the same error at the same offset */
    rc =
        lxm_test_read_buf(b.data, b.len, LXM_FORMAT_XL, ALL, 1, NULL, NULL, &e);
    ck_assert_int_eq(rc, t->rc);
    ck_assert_uint_eq(e.offset, want);
}
END_TEST

/* Every proper prefix of a valid stream is truncated, never accepted,
 * never another error. */
START_TEST(test_every_prefix_truncated)
{
    static sb b;
    ref o;
    size_t cut;

    build_hvm(&b, &o);
    for (cut = 0; cut < b.len;
         cut += (cut < 200 || cut > b.len - 200) ? 1 : 61) {
        lxm_stream_error e;
        int rc = lxm_test_read_buf(b.data, cut, LXM_FORMAT_XL, ALL, 0, NULL,
                                   NULL, &e);

        ck_assert_msg(rc == LXM_ERROR_STREAM_TRUNCATED, "prefix %zu: rc %d: %s",
                      cut, rc, e.message);
        ck_assert_uint_eq(e.offset, cut);
    }
}
END_TEST

START_TEST(test_trailing)
{
    static sb b;
    ref o;
    lxm_stream_error e;
    size_t len;

    build_hvm(&b, &o);
    len = b.len;
    sb_bytes(&b, "junk", 4);
    ck_assert_int_eq(
        lxm_test_read_buf(b.data, b.len, LXM_FORMAT_XL, 0, 0, NULL, NULL, &e),
        LXM_ERROR_STREAM_TRAILING);
    ck_assert_uint_eq(e.offset, len);
    /* also when the junk arrives in a later chunk */
    ck_assert_int_eq(
        lxm_test_read_buf(b.data, b.len, LXM_FORMAT_XL, 0, 5, NULL, NULL, &e),
        LXM_ERROR_STREAM_TRAILING);
    ck_assert_uint_eq(e.offset, len);
}
END_TEST

START_TEST(test_stop_at_end)
{
    static sb b;
    ref o;
    lxm_stream_reader *r = NULL;
    lxm_stream_reader_opts opts = { .format = LXM_FORMAT_XL,
                                    .flags = LXM_READER_STOP_AT_END };
    size_t len, used = 0;

    build_hvm(&b, &o);
    len = b.len;
    sb_bytes(&b, "domain is yours", 15);
    ck_assert_int_eq(lxm_stream_reader_new(&opts, &r), 0);
    ck_assert_int_eq(lxm_stream_reader_feed(r, b.data, b.len, &used), 0);
    ck_assert_uint_eq(used, len);
    ck_assert(lxm_stream_reader_done(r));
    ck_assert_int_eq(lxm_stream_reader_finish(r), 0);
    lxm_stream_reader_free(r);
}
END_TEST

START_TEST(test_callback_abort)
{
    static sb b;
    ref o;
    evlog l;
    lxm_stream_reader *r = NULL;
    lxm_stream_reader_opts opts = { .format = LXM_FORMAT_XL,
                                    .callback = log_event,
                                    .opaque = &l };
    size_t used;

    build_hvm(&b, &o);
    evlog_init(&l);
    l.abort_at = 5;
    ck_assert_int_eq(lxm_stream_reader_new(&opts, &r), 0);
    ck_assert_int_eq(lxm_stream_reader_feed(r, b.data, b.len, &used),
                     LXM_ERROR_ABORTED);
    ck_assert_uint_lt(used, b.len);
    /* sticky */
    ck_assert_int_eq(lxm_stream_reader_feed(r, b.data, 1, NULL),
                     LXM_ERROR_ABORTED);
    ck_assert_int_eq(lxm_stream_reader_finish(r), LXM_ERROR_ABORTED);
    ck_assert_int_eq(lxm_stream_reader_error(r)->rc, LXM_ERROR_ABORTED);
    lxm_stream_reader_free(r);
}
END_TEST

START_TEST(test_error_format)
{
    static sb b;
    ref o;
    lxm_stream_error e;
    char line[300];

    build_hvm(&b, &o);
    b.data[o.pages + 8] = 0; /* count 0 */
    ck_assert_int_eq(
        lxm_test_read_buf(b.data, b.len, LXM_FORMAT_XL, 0, 0, NULL, NULL, &e),
        LXM_ERROR_STREAM_PAGE_COUNT);
    lxm_stream_error_format(&e, "vm.save", line, sizeof(line));
    ck_assert_msg(strstr(line, "vm.save: offset ") == line, "%s", line);
    ck_assert_msg(strstr(line, "libxc PAGE_DATA: "), "%s", line);
    ck_assert_msg(!strchr(line, '\n'), "%s", line);
}
END_TEST

START_TEST(test_bad_args)
{
    lxm_stream_reader *r = NULL;
    lxm_stream_reader_opts opts = { .format = 7 };

    ck_assert_int_eq(lxm_stream_reader_new(&opts, &r), LXM_ERROR_INVAL);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(lxm_stream_reader_new(NULL, &r), LXM_ERROR_INVAL);
    lxm_stream_reader_free(NULL);
}
END_TEST

/* A v2 libxc stream (Xen 4.6-4.13) without STATIC_DATA_END is fine. */
START_TEST(test_libxc_v2)
{
    static sb b;
    static const uint8_t ctx[8] = { 1 };

    b.len = 0;
    sb_libxc_hdr(&b, 2, LXM_GUEST_X86_HVM);
    sb_pages(&b, 0, 2);
    sb_rec(&b, LXM_LIBXC_HVM_CONTEXT, ctx, sizeof(ctx));
    sb_rec(&b, LXM_LIBXC_END, NULL, 0);
    ck_assert_int_eq(lxm_test_read_buf(b.data, b.len, LXM_FORMAT_LIBXC, ALL, 3,
                                       NULL, NULL, NULL),
                     0);
}
END_TEST

Suite *lxm_test_reader_suite(void)
{
    Suite *s = suite_create("reader");
    TCase *tc = tcase_create("reader");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reference_stream);
    tcase_add_test(tc, test_chunking_reference);
    tcase_add_loop_test(tc, test_chunking_synth, 0,
                        LXM_ARRAY_SIZE(synth_cases));
    tcase_add_test(tc, test_checkpoint_layers);
    tcase_add_loop_test(tc, test_negative, 0, LXM_ARRAY_SIZE(neg_cases));
    tcase_add_test(tc, test_every_prefix_truncated);
    tcase_add_test(tc, test_trailing);
    tcase_add_test(tc, test_stop_at_end);
    tcase_add_test(tc, test_callback_abort);
    tcase_add_test(tc, test_error_format);
    tcase_add_test(tc, test_bad_args);
    tcase_add_test(tc, test_libxc_v2);
    suite_add_tcase(s, tc);
    return s;
}
