/*
 * test_writer.c - the stream writer and the synthetic-stream generator.
 *
 * Entry point: lxm_test_writer_suite().
 *
 * Cases:
 *   golden      synthesised PV/HVM/PVH streams in each format pass Xen's
 *               verify-stream-v2; checkpointed streams read back with
 *               our reader in the expected record order
 *   fixtures    the writer reproduces tests/fixtures/ byte for byte, and
 *               verify-stream-v2 accepts those files
 *   refusals    out-of-order and invalid calls are refused with
 *               LXM_ERROR_STATE / LXM_ERROR_INVAL and write nothing
 *   roundtrip   reader(writer(x)) gives x back: a hand-made stream's
 *               records and pages, and synthesised streams rewritten from
 *               their own events byte for byte
 *   fd          lxm_stream_writer_new_fd() writes what the sink would,
 *               also for PAGE_DATA with more iovecs than IOV_MAX, and
 *               across partial writes and EINTR
 *
 * Known defect worked around (not hidden): Xen 4.17's verify-stream-v2
 * under Python 3 rejects every non-empty EMULATOR_XENSTORE_DATA record
 * ("Data not NUL terminated": libxl.py compares a bytes element with a
 * str).  Real HVM saves with QEMU's VGA RAM carry such a record.  When
 * the tool fails with exactly that message, the test checks the record
 * with our own rules and runs the tool again on the stream without that
 * record, which must then pass.
 *
 * Set LXM_UPDATE_FIXTURES=1 to rewrite tests/fixtures/ after a
 * deliberate change of the generator.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "test.h"

/* testutil.c, test-only: the repository top or NULL. */
const char *lxm_test_top(void);

static const char *const fmt_names[] = { "xl", "libxl", "libxc" };

/* ---- golden streams ---------------------------------------------- */

enum { G_PV, G_HVM, G_PVH, G_HVM_CP, G_NR };

static const lxm__synth_opts golden[G_NR] = {
    [G_PV] = { .guest_type = LXM_GUEST_X86_PV,
               .memory_bytes = 1 << 20,
               .rounds = 3,
               .vcpus = 2,
               .seed = 101,
               .name = "gold-pv" },
    [G_HVM] = { .guest_type = LXM_GUEST_X86_HVM,
                .memory_bytes = 1 << 20,
                .rounds = 3,
                .vcpus = 2,
                .seed = 102,
                .name = "gold-hvm" },
    [G_PVH] = { .guest_type = LXM_GUEST_X86_HVM,
                .pvh = true,
                .memory_bytes = 1 << 20,
                .rounds = 2,
                .vcpus = 1,
                .seed = 103,
                .name = "gold-pvh" },
    [G_HVM_CP] = { .guest_type = LXM_GUEST_X86_HVM,
                   .memory_bytes = 512 << 10,
                   .rounds = 2,
                   .vcpus = 2,
                   .seed = 104,
                   .name = "gold-remus",
                   .checkpointed = true },
};

/* A record's place in a read-back stream: its layer and type, as the
 * reader reported them. */
typedef struct rec_ref {
    lxm_stream_layer layer;
    uint32_t type;
    uint64_t offset;
    uint32_t length;
    uint32_t checkpoint;
} rec_ref;

typedef struct rec_list {
    rec_ref *v;
    size_t n, cap;
    uint32_t libxc_headers;
} rec_list;

static int collect_records(void *opaque, const lxm_stream_event *ev)
{
    rec_list *l = opaque;

    if (ev->kind == LXM_EV_LIBXC_HEADER)
        l->libxc_headers++;
    if (ev->kind != LXM_EV_RECORD_END)
        return 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        ck_assert(l->v);
    }
    l->v[l->n++] = (rec_ref){ ev->layer, ev->u.record.type, ev->offset,
                              ev->u.record.length, ev->u.record.checkpoint };
    return 0;
}

static void read_records(const lxm_test_buf *b, lxm_stream_format fmt,
                         rec_list *l)
{
    lxm_stream_error err;
    int rc;

    memset(l, 0, sizeof(*l));
    rc =
        lxm_test_read_buf(b->data, b->len, fmt, 0, 0, collect_records, l, &err);
    ck_assert_msg(rc == 0, "our reader rejects the stream: %s", err.message);
}

static bool output_has(const char *out, const char *what)
{
    return out && strstr(out, what);
}

/*
 * The stream without its EMULATOR_XENSTORE_DATA records (see the file
 * comment), into *out.  Returns how many were dropped.
 */
static unsigned int strip_xenstore_data(const lxm_test_buf *b,
                                        lxm_stream_format fmt,
                                        lxm_test_buf *out)
{
    rec_list l;
    size_t i, from = 0;
    unsigned int dropped = 0;
    struct iovec iov;

    read_records(b, fmt, &l);
    memset(out, 0, sizeof(*out));
    for (i = 0; i < l.n; i++) {
        const rec_ref *r = &l.v[i];

        if (r->layer != LXM_LAYER_LIBXL ||
            r->type != LXM_LIBXL_EMULATOR_XENSTORE_DATA)
            continue;
        iov.iov_base = b->data + from;
        iov.iov_len = r->offset - from;
        ck_assert_int_eq(lxm_test_buf_sink(out, &iov, 1), 0);
        from = r->offset + LXM__RHDR_LEN + LXM_ROUNDUP8(r->length);
        dropped++;
    }
    iov.iov_base = b->data + from;
    iov.iov_len = b->len - from;
    ck_assert_int_eq(lxm_test_buf_sink(out, &iov, 1), 0);
    free(l.v);
    return dropped;
}

/* verify-stream-v2 must accept b (see the file comment for HVM). */
static void assert_xen_accepts(const lxm_test_buf *b, lxm_stream_format fmt,
                               const char *what)
{
    char *path, *out = NULL;
    int status;

    path = lxm_test_write_tmp(b->data, b->len, ".stream");
    status = lxm_test_verify_stream(path, fmt_names[fmt], true, &out);
    unlink(path);
    free(path);

    if (status != 0 && fmt != LXM_FORMAT_LIBXC &&
        output_has(out, "Data not NUL terminated") &&
        output_has(out, "verify_record_emulator_xenstore_data")) {
        lxm_test_buf stripped;

        /* Our reader has already checked the record's strings. */
        ck_assert_uint_ge(strip_xenstore_data(b, fmt, &stripped), 1);
        free(out);
        out = NULL;
        path = lxm_test_write_tmp(stripped.data, stripped.len, ".stream");
        status = lxm_test_verify_stream(path, fmt_names[fmt], true, &out);
        unlink(path);
        free(path);
        lxm_test_buf_dispose(&stripped);
    }
    ck_assert_msg(status == 0,
                  "verify-stream-v2 -f %s rejects %s (exit %d):"
                  "\n%s",
                  fmt_names[fmt], what, status, out ? out : "");
    free(out);
}

/* _i: guest (PV, HVM, PVH) * 3 + format. */
START_TEST(test_golden_verify)
{
    const lxm__synth_opts *o = &golden[_i / 3];
    lxm_stream_format fmt = (lxm_stream_format)(_i % 3);
    lxm_test_buf b = { 0 };
    rec_list l;
    char what[64];

    lxm_test_synth(o, fmt, &b);
    read_records(&b, fmt, &l);
    free(l.v);
    snprintf(what, sizeof(what), "%s (%s format)", o->name, fmt_names[fmt]);
    assert_xen_accepts(&b, fmt, what);
    lxm_test_buf_dispose(&b);
}
END_TEST

/* One expected record; PAGE_DATA stands for a run of them. */
typedef struct exp_rec {
    lxm_stream_layer layer;
    uint32_t type;
} exp_rec;

#define XL(t)                                                                  \
    {                                                                          \
        LXM_LAYER_LIBXL, LXM_LIBXL_##t                                         \
    }
#define XC(t)                                                                  \
    {                                                                          \
        LXM_LAYER_LIBXC, LXM_LIBXC_##t                                         \
    }

/* The checkpointed HVM stream, as libxl_stream_write.c and
 * xg_sr_save.c order a Remus stream (with a clean END). */
static const exp_rec cp_expected[] = {
    XL(LIBXC_CONTEXT),
    XC(X86_CPUID_POLICY),
    XC(X86_MSR_POLICY),
    XC(STATIC_DATA_END),
    XC(PAGE_DATA),
    XC(X86_TSC_INFO),
    XC(HVM_CONTEXT),
    XC(HVM_PARAMS),
    XC(CHECKPOINT),
    XL(EMULATOR_XENSTORE_DATA),
    XL(EMULATOR_CONTEXT),
    XL(CHECKPOINT_END),
    XC(PAGE_DATA),
    XC(X86_TSC_INFO),
    XC(HVM_CONTEXT),
    XC(HVM_PARAMS),
    XC(CHECKPOINT),
    XL(EMULATOR_XENSTORE_DATA),
    XL(EMULATOR_CONTEXT),
    XL(CHECKPOINT_END),
    XC(END),
    XL(END),
};

/* _i: format. */
START_TEST(test_golden_checkpointed)
{
    lxm_stream_format fmt = (lxm_stream_format)_i;
    const exp_rec beyond = { LXM_LAYER_XL, UINT32_MAX };
    exp_rec want;
    lxm_test_buf b = { 0 };
    rec_list l;
    size_t i, e = 0;
    uint32_t checkpoints = 0;

    lxm_test_synth(&golden[G_HVM_CP], fmt, &b);
    read_records(&b, fmt, &l);
    ck_assert_uint_eq(l.libxc_headers, 1);

    for (i = 0; i < l.n; i++) {
        const rec_ref *r = &l.v[i];

        /* The libxc format has no libxl layer to hand over to. */
        while (fmt == LXM_FORMAT_LIBXC && e < LXM_ARRAY_SIZE(cp_expected) &&
               cp_expected[e].layer == LXM_LAYER_LIBXL)
            e++;
        /* Past the end, want is the xl layer: never matches. */
        want = e < LXM_ARRAY_SIZE(cp_expected) ? cp_expected[e] : beyond;
        ck_assert_msg(r->layer == want.layer && r->type == want.type,
                      "record %zu: %s %s where %s %s is expected", i,
                      lxm_layer_name(r->layer),
                      lxm_record_type_name(r->layer, r->type),
                      lxm_layer_name(want.layer),
                      lxm_record_type_name(want.layer, want.type));
        if (r->layer == LXM_LAYER_LIBXC) {
            ck_assert_uint_eq(r->checkpoint,
                              checkpoints + (r->type == LXM_LIBXC_CHECKPOINT));
            if (r->type == LXM_LIBXC_CHECKPOINT)
                checkpoints++;
        }
        /* Stay on a PAGE_DATA entry while the run goes on. */
        if (!(r->type == LXM_LIBXC_PAGE_DATA && i + 1 < l.n &&
              l.v[i + 1].layer == LXM_LAYER_LIBXC &&
              l.v[i + 1].type == LXM_LIBXC_PAGE_DATA))
            e++;
    }
    while (fmt == LXM_FORMAT_LIBXC && e < LXM_ARRAY_SIZE(cp_expected) &&
           cp_expected[e].layer == LXM_LAYER_LIBXL)
        e++;
    ck_assert_uint_eq(e, LXM_ARRAY_SIZE(cp_expected));
    ck_assert_uint_eq(checkpoints, 2);
    free(l.v);

    /* With no libxl layer there is no hand-off, so Xen's tool can
     * follow it too. */
    if (fmt == LXM_FORMAT_LIBXC)
        assert_xen_accepts(&b, fmt, "a checkpointed libxc stream");
    lxm_test_buf_dispose(&b);
}
END_TEST

/* ---- byte-exact fixtures ----------------------------------------- */

static const struct {
    const char *file;
    lxm__synth_opts o;
} fixtures[] = {
    { "pv-64k.xl",
      { .guest_type = LXM_GUEST_X86_PV,
        .memory_bytes = 64 << 10,
        .rounds = 1,
        .vcpus = 1,
        .seed = 0x5eed0001,
        .name = "fixture-pv" } },
    { "hvm-32k.xl",
      { .guest_type = LXM_GUEST_X86_HVM,
        .memory_bytes = 32 << 10,
        .rounds = 1,
        .vcpus = 1,
        .seed = 0x5eed0002,
        .name = "fixture-hvm" } },
};

static char *fixture_path(const char *file)
{
    const char *top = lxm_test_top();
    char *path;

    ck_assert_msg(top, "cannot find the repository top (set LXM_TOP)");
    path = malloc(strlen(top) + strlen(file) + 32);
    ck_assert(path);
    sprintf(path, "%s/tests/fixtures/%s", top, file);
    return path;
}

static void read_file(const char *path, lxm_test_buf *b)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    ssize_t r;

    ck_assert_msg(fd >= 0, "cannot open fixture %s: %s", path, strerror(errno));
    ck_assert_int_eq(fstat(fd, &st), 0);
    memset(b, 0, sizeof(*b));
    b->cap = (size_t)st.st_size + 1;
    b->data = malloc(b->cap);
    ck_assert(b->data);
    while ((r = read(fd, b->data + b->len, b->cap - b->len)) > 0)
        b->len += (size_t)r;
    ck_assert_int_eq(r, 0);
    close(fd);
}

static void write_file(const char *path, const lxm_test_buf *b)
{
    FILE *f = fopen(path, "wb");

    ck_assert_msg(f, "cannot create %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(b->data, 1, b->len, f), b->len);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_fixture_bytes)
{
    const char *update = getenv("LXM_UPDATE_FIXTURES");
    char *path = fixture_path(fixtures[_i].file);
    lxm_test_buf want, got = { 0 };
    size_t i;

    lxm_test_synth(&fixtures[_i].o, LXM_FORMAT_XL, &got);
    if (update && !strcmp(update, "1"))
        write_file(path, &got);

    read_file(path, &want);
    for (i = 0; i < want.len && i < got.len; i++)
        if (want.data[i] != got.data[i])
            break;
    ck_assert_msg(want.len == got.len && i == want.len,
                  "%s: the writer's output differs from the fixture at byte"
                  " %zu (fixture %zu bytes, now %zu); if the generator was"
                  " changed on purpose, rerun with LXM_UPDATE_FIXTURES=1",
                  fixtures[_i].file, i, want.len, got.len);

    lxm_test_buf_dispose(&want);
    lxm_test_buf_dispose(&got);
    free(path);
}
END_TEST

START_TEST(test_fixture_xen_accepts)
{
    char *path = fixture_path(fixtures[_i].file);
    lxm_test_buf b;
    rec_list l;

    read_file(path, &b);
    read_records(&b, LXM_FORMAT_XL, &l);
    free(l.v);
    assert_xen_accepts(&b, LXM_FORMAT_XL, fixtures[_i].file);
    lxm_test_buf_dispose(&b);
    free(path);
}
END_TEST

/* ---- refusals ---------------------------------------------------- */

/* A writer on a buffer, with a helper to see nothing was written. */
typedef struct wfix {
    lxm_stream_writer *w;
    lxm_test_buf b;
} wfix;

static void wfix_new(wfix *f, lxm_stream_format fmt)
{
    memset(f, 0, sizeof(*f));
    ck_assert_int_eq(
        lxm_stream_writer_new(fmt, lxm_test_buf_sink, &f->b, NULL, &f->w), 0);
}

static void wfix_dispose(wfix *f)
{
    lxm_stream_writer_free(f->w);
    lxm_test_buf_dispose(&f->b);
}

/* rc is want, and neither the stream nor the offset moved. */
#define REFUSED(f, call, want)                                                 \
    do {                                                                       \
        uint64_t off_ = lxm_stream_writer_offset((f)->w);                      \
        size_t len_ = (f)->b.len;                                              \
        int rc_ = (call);                                                      \
        ck_assert_msg(rc_ == (want), "%s: rc %d (%s), want %d (%s)", #call,    \
                      rc_, lxm_strerror(rc_), (want), lxm_strerror(want));     \
        ck_assert_uint_eq(lxm_stream_writer_offset((f)->w), off_);             \
        ck_assert_uint_eq((f)->b.len, len_);                                   \
    } while (0)

#define OK(call) ck_assert_int_eq((call), 0)

static const uint8_t tsc_body[LXM__TSC_INFO_LEN];
static const uint8_t hvm_ctx_body[16] = { 1 };

/* Up to where PAGE_DATA may come, for an HVM guest. */
static void to_page_data(wfix *f, lxm_stream_format fmt)
{
    wfix_new(f, fmt);
    if (fmt == LXM_FORMAT_XL)
        OK(lxm_stream_write_xl_header(f->w, "{}\n"));
    if (fmt != LXM_FORMAT_LIBXC) {
        OK(lxm_stream_write_libxl_header(f->w));
        OK(lxm_stream_write_libxl_record(f->w, LXM_LIBXL_LIBXC_CONTEXT, NULL,
                                         0));
    }
    OK(lxm_stream_write_libxc_header(f->w, LXM_GUEST_X86_HVM, 4, 17));
    OK(lxm_stream_write_libxc_record(f->w, LXM_LIBXC_STATIC_DATA_END, NULL, 0));
}

START_TEST(test_refuse_order)
{
    static uint8_t page[LXM_PAGE_SIZE];
    const void *pages[1] = { page };
    uint64_t pfn = LXM_PFN_WORD(0, LXM_PAGE_NOTAB);
    wfix f;

    /* A libxc record before its header, in each format. */
    wfix_new(&f, LXM_FORMAT_XL);
    REFUSED(&f,
            lxm_stream_write_libxc_record(f.w, LXM_LIBXC_X86_TSC_INFO, tsc_body,
                                          sizeof(tsc_body)),
            LXM_ERROR_STATE);
    REFUSED(&f, lxm_stream_write_libxl_header(f.w), LXM_ERROR_STATE);
    REFUSED(&f, lxm_stream_write_libxc_header(f.w, LXM_GUEST_X86_HVM, 4, 17),
            LXM_ERROR_STATE);
    OK(lxm_stream_write_xl_header(f.w, NULL));
    REFUSED(&f, lxm_stream_write_xl_header(f.w, NULL), LXM_ERROR_STATE);
    OK(lxm_stream_write_libxl_header(f.w));
    REFUSED(&f,
            lxm_stream_write_libxc_record(f.w, LXM_LIBXC_X86_TSC_INFO, tsc_body,
                                          sizeof(tsc_body)),
            LXM_ERROR_STATE);
    REFUSED(&f, lxm_stream_write_libxc_header(f.w, LXM_GUEST_X86_HVM, 4, 17),
            LXM_ERROR_STATE);
    /* libxl END with no domain in the stream */
    REFUSED(&f, lxm_stream_write_libxl_record(f.w, LXM_LIBXL_END, NULL, 0),
            LXM_ERROR_STATE);
    wfix_dispose(&f);

    wfix_new(&f, LXM_FORMAT_LIBXC);
    REFUSED(&f, lxm_stream_write_libxc_record(f.w, LXM_LIBXC_END, NULL, 0),
            LXM_ERROR_STATE);
    REFUSED(&f, lxm_stream_write_page_data(f.w, 1, &pfn, pages),
            LXM_ERROR_STATE);
    REFUSED(&f, lxm_stream_write_xl_header(f.w, NULL), LXM_ERROR_STATE);
    REFUSED(&f, lxm_stream_write_libxl_record(f.w, LXM_LIBXL_END, NULL, 0),
            LXM_ERROR_STATE);
    wfix_dispose(&f);

    /* PAGE_DATA before STATIC_DATA_END; static data after it. */
    wfix_new(&f, LXM_FORMAT_LIBXC);
    OK(lxm_stream_write_libxc_header(f.w, LXM_GUEST_X86_HVM, 4, 17));
    REFUSED(&f, lxm_stream_write_page_data(f.w, 1, &pfn, pages),
            LXM_ERROR_STATE);
    REFUSED(&f,
            lxm_stream_write_libxc_record(f.w, LXM_LIBXC_HVM_CONTEXT,
                                          hvm_ctx_body, sizeof(hvm_ctx_body)),
            LXM_ERROR_STATE);
    /* libxc END before the guest's context */
    REFUSED(&f, lxm_stream_write_libxc_record(f.w, LXM_LIBXC_END, NULL, 0),
            LXM_ERROR_STATE);
    /* a PV record in an HVM stream */
    {
        uint8_t pv_info[LXM__X86_PV_INFO_LEN] = { 8, 4 };

        REFUSED(&f,
                lxm_stream_write_libxc_record(f.w, LXM_LIBXC_X86_PV_INFO,
                                              pv_info, sizeof(pv_info)),
                LXM_ERROR_STATE);
    }
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_STATIC_DATA_END, NULL, 0));
    REFUSED(
        &f,
        lxm_stream_write_libxc_record(f.w, LXM_LIBXC_STATIC_DATA_END, NULL, 0),
        LXM_ERROR_STATE);
    OK(lxm_stream_write_page_data(f.w, 1, &pfn, pages));
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_HVM_CONTEXT, hvm_ctx_body,
                                     sizeof(hvm_ctx_body)));
    ck_assert(!lxm_stream_writer_done(f.w));
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_END, NULL, 0));
    ck_assert(lxm_stream_writer_done(f.w));
    /* END twice */
    REFUSED(&f, lxm_stream_write_libxc_record(f.w, LXM_LIBXC_END, NULL, 0),
            LXM_ERROR_STATE);
    wfix_dispose(&f);

    /* libxl record while libxc expected, and END twice at libxl. */
    to_page_data(&f, LXM_FORMAT_XL);
    REFUSED(&f, lxm_stream_write_libxl_record(f.w, LXM_LIBXL_END, NULL, 0),
            LXM_ERROR_STATE);
    REFUSED(
        &f,
        lxm_stream_write_libxl_record(f.w, LXM_LIBXL_CHECKPOINT_END, NULL, 0),
        LXM_ERROR_STATE);
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_HVM_CONTEXT, hvm_ctx_body,
                                     sizeof(hvm_ctx_body)));
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_END, NULL, 0));
    REFUSED(&f, lxm_stream_write_libxc_record(f.w, LXM_LIBXC_END, NULL, 0),
            LXM_ERROR_STATE);
    REFUSED(
        &f,
        lxm_stream_write_libxl_record(f.w, LXM_LIBXL_LIBXC_CONTEXT, NULL, 0),
        LXM_ERROR_STATE);
    REFUSED(
        &f,
        lxm_stream_write_libxl_record(f.w, LXM_LIBXL_CHECKPOINT_END, NULL, 0),
        LXM_ERROR_STATE);
    OK(lxm_stream_write_libxl_record(f.w, LXM_LIBXL_END, NULL, 0));
    ck_assert(lxm_stream_writer_done(f.w));
    REFUSED(&f, lxm_stream_write_libxl_record(f.w, LXM_LIBXL_END, NULL, 0),
            LXM_ERROR_STATE);
    REFUSED(&f, lxm_stream_write_libxc_record(f.w, LXM_LIBXC_END, NULL, 0),
            LXM_ERROR_STATE);
    wfix_dispose(&f);

    /* Emulator records belong to HVM guests. */
    wfix_new(&f, LXM_FORMAT_LIBXL);
    OK(lxm_stream_write_libxl_header(f.w));
    OK(lxm_stream_write_libxl_record(f.w, LXM_LIBXL_LIBXC_CONTEXT, NULL, 0));
    OK(lxm_stream_write_libxc_header(f.w, LXM_GUEST_X86_PV, 4, 17));
    {
        uint8_t emu[LXM__EMULATOR_HDR_LEN] = { 2 };

        REFUSED(&f,
                lxm_stream_write_libxl_record(f.w, LXM_LIBXL_EMULATOR_CONTEXT,
                                              emu, sizeof(emu)),
                LXM_ERROR_STATE);
        /* HVM records in a PV stream */
        REFUSED(&f,
                lxm_stream_write_libxc_record(f.w, LXM_LIBXC_HVM_CONTEXT,
                                              hvm_ctx_body,
                                              sizeof(hvm_ctx_body)),
                LXM_ERROR_STATE);
    }
    wfix_dispose(&f);
}
END_TEST

START_TEST(test_refuse_page_data)
{
    static uint8_t page[LXM_PAGE_SIZE];
    static uint64_t pfns[LXM_PAGE_DATA_MAX_PAGES + 1];
    static const void *pages[LXM_PAGE_DATA_MAX_PAGES + 1];
    unsigned int t, i;
    wfix f;

    for (i = 0; i < LXM_ARRAY_SIZE(pfns); i++) {
        pfns[i] = LXM_PFN_WORD(i, LXM_PAGE_NOTAB);
        pages[i] = page;
    }

    to_page_data(&f, LXM_FORMAT_LIBXC);

    /* count 0 and 1025 */
    REFUSED(&f, lxm_stream_write_page_data(f.w, 0, pfns, pages),
            LXM_ERROR_INVAL);
    REFUSED(&f,
            lxm_stream_write_page_data(f.w, LXM_PAGE_DATA_MAX_PAGES + 1, pfns,
                                       pages),
            LXM_ERROR_INVAL);
    OK(lxm_stream_write_page_data(f.w, LXM_PAGE_DATA_MAX_PAGES, pfns, pages));

    /* reserved bits 52-59 of a pfn word */
    for (i = 52; i < 60; i++) {
        uint64_t w[2] = { LXM_PFN_WORD(1, 0), (UINT64_C(1) << i) | 2 };

        REFUSED(&f, lxm_stream_write_page_data(f.w, 2, w, pages),
                LXM_ERROR_INVAL);
    }

    /* page types 5..8 */
    for (t = 5; t <= 8; t++) {
        uint64_t w = LXM_PFN_WORD(3, t);

        REFUSED(&f, lxm_stream_write_page_data(f.w, 1, &w, pages),
                LXM_ERROR_INVAL);
    }

    /* missing pages */
    REFUSED(&f, lxm_stream_write_page_data(f.w, 1, pfns, NULL),
            LXM_ERROR_INVAL);
    {
        const void *holes[2] = { page, NULL };

        REFUSED(&f, lxm_stream_write_page_data(f.w, 2, pfns, holes),
                LXM_ERROR_INVAL);
    }

    /* Pages without data need no page: XTAB, XALLOC, BROKEN. */
    {
        uint64_t w[3] = { LXM_PFN_WORD(7, LXM_PAGE_XTAB),
                          LXM_PFN_WORD(8, LXM_PAGE_XALLOC),
                          LXM_PFN_WORD(9, LXM_PAGE_BROKEN) };
        uint64_t before = lxm_stream_writer_offset(f.w);

        OK(lxm_stream_write_page_data(f.w, 3, w, NULL));
        ck_assert_uint_eq(lxm_stream_writer_offset(f.w) - before,
                          LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN + 3 * 8);
    }
    wfix_dispose(&f);
}
END_TEST

START_TEST(test_refuse_content)
{
    static const uint8_t page[LXM_PAGE_SIZE];
    uint8_t tsc[LXM__TSC_INFO_LEN + 8] = { 0 };
    uint8_t pv_info[LXM__X86_PV_INFO_LEN] = { 8, 4 };
    uint8_t p2m[16] = { 0, 0, 0, 0, 0xff };
    uint8_t emu[64] = { 2 };
    wfix f;

    /* TSC_INFO must be 24 bytes with a zero reserved field. */
    to_page_data(&f, LXM_FORMAT_LIBXC);
    REFUSED(&f,
            lxm_stream_write_libxc_record(f.w, LXM_LIBXC_X86_TSC_INFO, tsc, 23),
            LXM_ERROR_INVAL);
    REFUSED(&f,
            lxm_stream_write_libxc_record(f.w, LXM_LIBXC_X86_TSC_INFO, tsc, 25),
            LXM_ERROR_INVAL);
    tsc[20] = 1;
    REFUSED(&f,
            lxm_stream_write_libxc_record(f.w, LXM_LIBXC_X86_TSC_INFO, tsc,
                                          LXM__TSC_INFO_LEN),
            LXM_ERROR_INVAL);
    tsc[20] = 0;
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_X86_TSC_INFO, tsc,
                                     LXM__TSC_INFO_LEN));
    /* unknown mandatory type, deprecated TOOLSTACK, empty HVM_CONTEXT,
     * non-empty END, no body for a length, PAGE_DATA the wrong way */
    REFUSED(&f, lxm_stream_write_libxc_record(f.w, 0x42, NULL, 0),
            LXM_ERROR_INVAL);
    REFUSED(&f, lxm_stream_write_libxc_record(f.w, LXM_LIBXC_TOOLSTACK, tsc, 8),
            LXM_ERROR_INVAL);
    REFUSED(&f,
            lxm_stream_write_libxc_record(f.w, LXM_LIBXC_HVM_CONTEXT, NULL, 0),
            LXM_ERROR_INVAL);
    REFUSED(&f, lxm_stream_write_libxc_record(f.w, LXM_LIBXC_END, tsc, 8),
            LXM_ERROR_INVAL);
    REFUSED(&f,
            lxm_stream_write_libxc_record(f.w, LXM_LIBXC_HVM_CONTEXT, NULL, 8),
            LXM_ERROR_INVAL);
    REFUSED(&f,
            lxm_stream_write_libxc_record(f.w, LXM_LIBXC_PAGE_DATA, tsc, 16),
            LXM_ERROR_INVAL);
    /* an optional record may go anywhere */
    OK(lxm_stream_write_libxc_record(f.w, LXM_RECORD_OPTIONAL | 0x42, tsc, 5));
    wfix_dispose(&f);

    /* SHARED_INFO must be 4096 bytes; X86_PV_INFO checks its fields. */
    wfix_new(&f, LXM_FORMAT_LIBXC);
    OK(lxm_stream_write_libxc_header(f.w, LXM_GUEST_X86_PV, 4, 17));
    pv_info[0] = 5;
    REFUSED(&f,
            lxm_stream_write_libxc_record(f.w, LXM_LIBXC_X86_PV_INFO, pv_info,
                                          sizeof(pv_info)),
            LXM_ERROR_INVAL);
    pv_info[0] = 8;
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_X86_PV_INFO, pv_info,
                                     sizeof(pv_info)));
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_STATIC_DATA_END, NULL, 0));
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_X86_PV_P2M_FRAMES, p2m,
                                     sizeof(p2m)));
    REFUSED(
        &f,
        lxm_stream_write_libxc_record(f.w, LXM_LIBXC_SHARED_INFO, page, 4095),
        LXM_ERROR_INVAL);
    REFUSED(
        &f,
        lxm_stream_write_libxc_record(f.w, LXM_LIBXC_SHARED_INFO, page, 4104),
        LXM_ERROR_INVAL);
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_SHARED_INFO, page,
                                     LXM_PAGE_SIZE));
    wfix_dispose(&f);

    /* libxl: EMULATOR_XENSTORE_DATA strings, emulator ids; headers. */
    to_page_data(&f, LXM_FORMAT_LIBXL);
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_HVM_CONTEXT, hvm_ctx_body,
                                     sizeof(hvm_ctx_body)));
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_END, NULL, 0));
    memcpy(emu + 8, "key\0value", 9); /* no final NUL */
    REFUSED(&f,
            lxm_stream_write_libxl_record(f.w, LXM_LIBXL_EMULATOR_XENSTORE_DATA,
                                          emu, 17),
            LXM_ERROR_INVAL);
    memcpy(emu + 8, "key\0value\0odd\0", 14); /* odd number of strings */
    REFUSED(&f,
            lxm_stream_write_libxl_record(f.w, LXM_LIBXL_EMULATOR_XENSTORE_DATA,
                                          emu, 22),
            LXM_ERROR_INVAL);
    OK(lxm_stream_write_libxl_record(f.w, LXM_LIBXL_EMULATOR_XENSTORE_DATA, emu,
                                     18));
    emu[0] = 3; /* unknown emulator */
    REFUSED(
        &f,
        lxm_stream_write_libxl_record(f.w, LXM_LIBXL_EMULATOR_CONTEXT, emu, 16),
        LXM_ERROR_INVAL);
    REFUSED(&f, lxm_stream_write_libxl_record(f.w, 0x17, NULL, 0),
            LXM_ERROR_INVAL);
    REFUSED(&f, lxm_stream_write_libxl_record(f.w, LXM_LIBXL_END, emu, 8),
            LXM_ERROR_INVAL);
    OK(lxm_stream_write_libxl_record(f.w, LXM_LIBXL_END, NULL, 0));
    wfix_dispose(&f);

    wfix_new(&f, LXM_FORMAT_LIBXC);
    REFUSED(&f, lxm_stream_write_libxc_header(f.w, 3, 4, 17), LXM_ERROR_INVAL);
    REFUSED(&f, lxm_stream_write_libxc_header(f.w, 0, 4, 17), LXM_ERROR_INVAL);
    wfix_dispose(&f);

    /* Constructor arguments. */
    {
        lxm_stream_writer *w = (void *)1;

        ck_assert_int_eq(
            lxm_stream_writer_new(LXM_FORMAT_XL, NULL, NULL, NULL, &w),
            LXM_ERROR_INVAL);
        ck_assert_ptr_null(w);
        w = (void *)1;
        ck_assert_int_eq(lxm_stream_writer_new_fd(LXM_FORMAT_XL, -1, NULL, &w),
                         LXM_ERROR_INVAL);
        ck_assert_ptr_null(w);
        ck_assert_int_eq(lxm_stream_writer_new((lxm_stream_format)7,
                                               lxm_test_buf_sink, NULL, NULL,
                                               &w),
                         LXM_ERROR_INVAL);
        lxm_stream_writer_free(NULL);
    }
}
END_TEST

/* The exact bytes of the headers, as xl, libxl and libxc write them. */
START_TEST(test_header_bytes)
{
    static const uint8_t libxl_hdr[16] = {
        'L', 'i', 'b', 'x', 'l', 'F', 'm', 't', 0, 0, 0, 2, 0, 0, 0, 0,
    };
    static const uint8_t libxc_hdr[40] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'X', 'E',
        'N',  'F',  0,    0,    0,    3,    0,    0,    0,   0,
        0,    0,    0,    0,    2,    0,    0,    0,    12,  0,
        0,    0,    4,    0,    0,    0,    17,   0,    0,   0,
    };
    const char *json = "{\"c_info\": {}}\n";
    size_t jlen = strlen(json) + 1;
    uint8_t *p;
    wfix f;

    wfix_new(&f, LXM_FORMAT_XL);
    OK(lxm_stream_write_xl_header(f.w, json));
    p = f.b.data;
    ck_assert_uint_eq(f.b.len, 48 + 4 + jlen);
    ck_assert_mem_eq(p, LXM_XL_MAGIC, 32);
    ck_assert_uint_eq(lxm__le32(p + 32), 0x01020304);
    ck_assert_uint_eq(lxm__le32(p + 36),
                      LXM_XL_MANDATORY_STREAMV2 | LXM_XL_MANDATORY_JSON);
    ck_assert_uint_eq(lxm__le32(p + 40), 0);
    ck_assert_uint_eq(lxm__le32(p + 44), 4 + jlen);
    ck_assert_uint_eq(lxm__le32(p + 48), jlen);
    ck_assert_mem_eq(p + 52, json, jlen);
    OK(lxm_stream_write_libxl_header(f.w));
    ck_assert_mem_eq(f.b.data + 52 + jlen, libxl_hdr, 16);
    OK(lxm_stream_write_libxl_record(f.w, LXM_LIBXL_LIBXC_CONTEXT, NULL, 0));
    ck_assert_uint_eq(lxm__le32(f.b.data + 68 + jlen), 1);
    ck_assert_uint_eq(lxm__le32(f.b.data + 72 + jlen), 0);
    OK(lxm_stream_write_libxc_header(f.w, LXM_GUEST_X86_HVM, 4, 17));
    ck_assert_mem_eq(f.b.data + 76 + jlen, libxc_hdr, 40);
    ck_assert_uint_eq(lxm_stream_writer_offset(f.w), 116 + jlen);
    /* A record is padded to 8 with zeros. */
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_STATIC_DATA_END, NULL, 0));
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_HVM_CONTEXT, "\x01\x02\x03",
                                     3));
    p = f.b.data + 116 + jlen + 8;
    ck_assert_uint_eq(lxm__le32(p), LXM_LIBXC_HVM_CONTEXT);
    ck_assert_uint_eq(lxm__le32(p + 4), 3);
    ck_assert_mem_eq(p + 8, "\x01\x02\x03\0\0\0\0\0", 8);
    ck_assert_uint_eq(f.b.len, 116 + jlen + 8 + 16);
    wfix_dispose(&f);

    /* No config: STREAMV2 only, and a zero config length. */
    wfix_new(&f, LXM_FORMAT_XL);
    OK(lxm_stream_write_xl_header(f.w, NULL));
    ck_assert_uint_eq(f.b.len, 52);
    ck_assert_uint_eq(lxm__le32(f.b.data + 36), LXM_XL_MANDATORY_STREAMV2);
    ck_assert_uint_eq(lxm__le32(f.b.data + 44), 4);
    ck_assert_uint_eq(lxm__le32(f.b.data + 48), 0);
    wfix_dispose(&f);
}
END_TEST

/* A failing sink makes the writer fail for good. */
static int failing_sink(void *opaque, const struct iovec *iov, int iovcnt)
{
    int *calls = opaque;

    (void)iov;
    (void)iovcnt;
    (*calls)++;
    return LXM_ERROR_IO;
}

START_TEST(test_sink_failure)
{
    lxm_stream_writer *w;
    int calls = 0;

    OK(lxm_stream_writer_new(LXM_FORMAT_LIBXL, failing_sink, &calls, NULL, &w));
    ck_assert_int_eq(lxm_stream_write_libxl_header(w), LXM_ERROR_IO);
    ck_assert_int_eq(lxm_stream_writer_offset(w), 0);
    ck_assert_int_eq(lxm_stream_write_libxl_header(w), LXM_ERROR_IO);
    ck_assert_int_eq(lxm_stream_write_raw(w, "x", 1), LXM_ERROR_IO);
    ck_assert_int_eq(calls, 1);
    lxm_stream_writer_free(w);
}
END_TEST

/* ---- round trip -------------------------------------------------- */

static uint64_t fnv1a(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* What a reader saw, as comparable numbers. */
typedef struct ev_sum {
    int kind;
    int layer;
    uint64_t offset;
    uint64_t a, b, c;
} ev_sum;

typedef struct ev_log {
    ev_sum *v;
    size_t n, cap;
} ev_log;

static void ev_log_add(ev_log *l, const lxm_stream_event *ev, uint64_t a,
                       uint64_t b, uint64_t c)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        ck_assert(l->v);
    }
    l->v[l->n++] = (ev_sum){ ev->kind, ev->layer, ev->offset, a, b, c };
}

static void ev_log_event(ev_log *l, const lxm_stream_event *ev)
{
    switch (ev->kind) {
    case LXM_EV_XL_HEADER:
        ev_log_add(l, ev, ev->u.xl.mandatory_flags, ev->u.xl.config_len,
                   ev->u.xl.config ? fnv1a(ev->u.xl.config, ev->u.xl.config_len)
                                   : 0);
        break;
    case LXM_EV_LIBXC_HEADER:
        ev_log_add(
            l, ev, ev->u.libxc_header.guest_type, ev->u.libxc_header.version,
            ev->u.libxc_header.xen_major * 100u + ev->u.libxc_header.xen_minor);
        break;
    case LXM_EV_RECORD:
    case LXM_EV_RECORD_END:
        ev_log_add(l, ev, ev->u.record.type, ev->u.record.length,
                   ev->u.record.pfns
                       ? fnv1a(ev->u.record.pfns, 8 * ev->u.record.count)
                       : ev->u.record.checkpoint);
        break;
    case LXM_EV_RECORD_BODY:
        ev_log_add(l, ev, ev->u.body.type, ev->u.body.length,
                   fnv1a(ev->u.body.data, ev->u.body.length));
        break;
    case LXM_EV_PAGE:
        ev_log_add(l, ev, ev->u.page.pfn, ev->u.page.page_type,
                   fnv1a(ev->u.page.data, LXM_PAGE_SIZE));
        break;
    default:
        ev_log_add(l, ev, 0, 0, 0);
        break;
    }
}

/* Re-writes a stream from a reader's events (with BODIES|PAGES). */
typedef struct rewriter {
    lxm_stream_writer *w;
    ev_log log;
    lxm_stream_layer layer;
    uint32_t type, length;
    uint8_t *body;
    uint32_t count, nr_pages;
    uint64_t pfns[LXM_PAGE_DATA_MAX_PAGES];
    uint8_t *pages; /* 1024 pages */
    const void *page_ptrs[LXM_PAGE_DATA_MAX_PAGES];
} rewriter;

static int rewrite_event(void *opaque, const lxm_stream_event *ev)
{
    rewriter *rw = opaque;
    int rc = 0;

    ev_log_event(&rw->log, ev);
    switch (ev->kind) {
    case LXM_EV_XL_HEADER:
        rc = lxm_stream_write_xl_header(rw->w, ev->u.xl.config);
        break;
    case LXM_EV_LIBXL_HEADER:
        rc = lxm_stream_write_libxl_header(rw->w);
        break;
    case LXM_EV_LIBXC_HEADER:
        rc = lxm_stream_write_libxc_header(rw->w, ev->u.libxc_header.guest_type,
                                           ev->u.libxc_header.xen_major,
                                           ev->u.libxc_header.xen_minor);
        break;
    case LXM_EV_RECORD:
        rw->layer = ev->layer;
        rw->type = ev->u.record.type;
        rw->length = ev->u.record.length;
        rw->nr_pages = 0;
        rw->count = ev->u.record.count;
        if (ev->u.record.pfns)
            memcpy(rw->pfns, ev->u.record.pfns, 8 * (size_t)rw->count);
        break;
    case LXM_EV_RECORD_BODY:
        ck_assert_uint_eq(ev->u.body.length, rw->length);
        free(rw->body);
        rw->body = malloc(rw->length + 1);
        ck_assert(rw->body);
        if (rw->length)
            memcpy(rw->body, ev->u.body.data, rw->length);
        break;
    case LXM_EV_PAGE:
        ck_assert_uint_lt(rw->nr_pages, LXM_PAGE_DATA_MAX_PAGES);
        ck_assert_uint_eq(rw->pfns[ev->u.page.index] & LXM_PFN_MASK,
                          ev->u.page.pfn);
        memcpy(rw->pages + (size_t)rw->nr_pages * LXM_PAGE_SIZE,
               ev->u.page.data, LXM_PAGE_SIZE);
        rw->page_ptrs[rw->nr_pages] =
            rw->pages + (size_t)rw->nr_pages * LXM_PAGE_SIZE;
        rw->nr_pages++;
        break;
    case LXM_EV_RECORD_END:
        if (rw->layer == LXM_LAYER_LIBXC && rw->type == LXM_LIBXC_PAGE_DATA) {
            ck_assert_uint_eq(rw->nr_pages, ev->u.record.nr_data_pages);
            rc = lxm_stream_write_page_data(rw->w, rw->count, rw->pfns,
                                            rw->page_ptrs);
        } else if (rw->layer == LXM_LAYER_LIBXC) {
            rc = lxm_stream_write_libxc_record(rw->w, rw->type, rw->body,
                                               rw->length);
        } else {
            rc = lxm_stream_write_libxl_record(rw->w, rw->type, rw->body,
                                               rw->length);
        }
        free(rw->body);
        rw->body = NULL;
        break;
    default:
        break;
    }
    return rc;
}

static int log_only(void *opaque, const lxm_stream_event *ev)
{
    ev_log_event(opaque, ev);
    return 0;
}

/* _i: golden case * 2 + (0: xl format, 1: libxc format). */
START_TEST(test_roundtrip_synth)
{
    const lxm__synth_opts *o = &golden[_i / 2];
    lxm_stream_format fmt = _i % 2 ? LXM_FORMAT_LIBXC : LXM_FORMAT_XL;
    const unsigned int flags = LXM_READER_BODIES | LXM_READER_PAGES;
    lxm_test_buf a = { 0 }, b = { 0 };
    rewriter *rw = calloc(1, sizeof(*rw));
    ev_log again = { 0 };
    lxm_stream_error err;
    size_t i;
    int rc;

    ck_assert(rw);
    rw->pages = malloc((size_t)LXM_PAGE_DATA_MAX_PAGES * LXM_PAGE_SIZE);
    ck_assert(rw->pages);

    lxm_test_synth(o, fmt, &a);
    OK(lxm_stream_writer_new(fmt, lxm_test_buf_sink, &b, NULL, &rw->w));
    rc = lxm_test_read_buf(a.data, a.len, fmt, flags, 4093, rewrite_event, rw,
                           &err);
    ck_assert_msg(rc == 0, "%s: %s (%s)", o->name, lxm_strerror(rc),
                  err.message);
    ck_assert(lxm_stream_writer_done(rw->w));
    ck_assert_uint_eq(b.len, a.len);
    ck_assert_msg(!memcmp(a.data, b.data, a.len),
                  "%s: rewritten stream differs", o->name);

    /* Reading the copy gives the same events: records, bodies, pages. */
    rc =
        lxm_test_read_buf(b.data, b.len, fmt, flags, 0, log_only, &again, &err);
    ck_assert_msg(rc == 0, "%s", err.message);
    ck_assert_uint_eq(again.n, rw->log.n);
    for (i = 0; i < again.n; i++)
        ck_assert_msg(!memcmp(&again.v[i], &rw->log.v[i], sizeof(ev_sum)),
                      "event %zu differs", i);

    lxm_stream_writer_free(rw->w);
    free(rw->log.v);
    free(rw->pages);
    free(rw);
    free(again.v);
    lxm_test_buf_dispose(&a);
    lxm_test_buf_dispose(&b);
}
END_TEST

/* A hand-made stream: what goes in comes out, record by record and page
 * by page. */
START_TEST(test_roundtrip_handmade)
{
    enum { NPAGES = 70 };
    static uint8_t pages[NPAGES][LXM_PAGE_SIZE];
    const void *ptrs[NPAGES];
    uint64_t pfns[NPAGES + 2];
    uint8_t ctx[13], params[8 + 16] = { 1 };
    ev_log log = { 0 };
    size_t i, pi = 0, nrec = 0;
    uint32_t ndata = 0;
    wfix f;

    for (i = 0; i < NPAGES; i++) {
        memset(pages[i], (int)(i * 7 + 1), LXM_PAGE_SIZE);
        pages[i][i] = 0;
        ptrs[i] = pages[NPAGES - 1 - i]; /* not adjacent in memory */
    }
    for (i = 0; i < NPAGES + 2; i++)
        pfns[i] = LXM_PFN_WORD(i * 3, i == 5 || i == 40 ? LXM_PAGE_XTAB
                                                        : LXM_PAGE_NOTAB);
    for (i = 0; i < sizeof(ctx); i++)
        ctx[i] = (uint8_t)(0xa0 + i);

    to_page_data(&f, LXM_FORMAT_XL);
    OK(lxm_stream_write_page_data(f.w, 50, pfns, ptrs));
    /* pfns 5 and 40 are XTAB: the first record carries 48 pages */
    OK(lxm_stream_write_page_data(f.w, NPAGES + 2 - 50, pfns + 50, ptrs + 48));
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_HVM_CONTEXT, ctx,
                                     sizeof(ctx)));
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_HVM_PARAMS, params,
                                     sizeof(params)));
    OK(lxm_stream_write_libxc_record(f.w, LXM_LIBXC_END, NULL, 0));
    OK(lxm_stream_write_libxl_record(f.w, LXM_LIBXL_END, NULL, 0));
    ck_assert(lxm_stream_writer_done(f.w));

    OK(lxm_test_read_buf(f.b.data, f.b.len, LXM_FORMAT_XL,
                         LXM_READER_BODIES | LXM_READER_PAGES, 1, log_only,
                         &log, NULL));

    /* Pages: in order, with their pfns and contents. */
    for (i = 0; i < log.n; i++) {
        const ev_sum *e = &log.v[i];

        if (e->kind == LXM_EV_PAGE) {
            while (pfns[pi] >> LXM_PFN_TYPE_SHIFT == LXM_PAGE_XTAB)
                pi++;
            ck_assert_uint_eq(e->a, pfns[pi] & LXM_PFN_MASK);
            ck_assert_uint_eq(e->c, fnv1a(ptrs[ndata], LXM_PAGE_SIZE));
            pi++;
            ndata++;
        }
        if (e->kind == LXM_EV_RECORD_BODY && e->a == LXM_LIBXC_HVM_CONTEXT) {
            ck_assert_uint_eq(e->b, sizeof(ctx));
            ck_assert_uint_eq(e->c, fnv1a(ctx, sizeof(ctx)));
        }
        if (e->kind == LXM_EV_RECORD_END)
            nrec++;
    }
    ck_assert_uint_eq(ndata, NPAGES);
    /* LIBXC_CONTEXT, STATIC_DATA_END, 2 PAGE_DATA, HVM_CONTEXT,
     * HVM_PARAMS, libxc END, libxl END */
    ck_assert_uint_eq(nrec, 8);

    free(log.v);
    wfix_dispose(&f);
}
END_TEST

/* ---- the fd writer ----------------------------------------------- */

START_TEST(test_fd_writer)
{
    enum { NPAGES = LXM_PAGE_DATA_MAX_PAGES };
    const lxm__synth_opts *o = &golden[G_PV];
    uint8_t *mem = malloc((size_t)2 * NPAGES * LXM_PAGE_SIZE);
    static uint64_t pfns[NPAGES];
    static const void *ptrs[NPAGES];
    lxm_test_buf want = { 0 }, got;
    lxm_stream_writer *w;
    char *path;
    size_t i;
    int fd;

    ck_assert(mem);
    /* Every other page: 1026 iovecs, more than IOV_MAX. */
    for (i = 0; i < NPAGES; i++) {
        memset(mem + 2 * i * LXM_PAGE_SIZE, (int)i, LXM_PAGE_SIZE);
        ptrs[i] = mem + 2 * i * LXM_PAGE_SIZE;
        pfns[i] = LXM_PFN_WORD(i, LXM_PAGE_NOTAB);
    }

    lxm_test_synth(o, LXM_FORMAT_XL, &want);
    path = lxm_test_write_tmp("", 0, ".fd");
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_ge(fd, 0);
    OK(lxm_stream_writer_new_fd(LXM_FORMAT_XL, fd, NULL, &w));
    OK(lxm__synth_write(w, o));
    ck_assert(lxm_stream_writer_done(w));
    ck_assert_uint_eq(lxm_stream_writer_offset(w), want.len);
    lxm_stream_writer_free(w);
    close(fd);
    read_file(path, &got);
    ck_assert_uint_eq(got.len, want.len);
    ck_assert(!memcmp(got.data, want.data, want.len));
    lxm_test_buf_dispose(&got);

    /* A scattered PAGE_DATA through the fd and through a buffer. */
    lxm_test_buf_dispose(&want);
    {
        wfix f;

        to_page_data(&f, LXM_FORMAT_LIBXC);
        OK(lxm_stream_write_page_data(f.w, NPAGES, pfns, ptrs));
        want = f.b;
        f.b = (lxm_test_buf){ 0 };
        wfix_dispose(&f);
    }
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_ge(fd, 0);
    OK(lxm_stream_writer_new_fd(LXM_FORMAT_LIBXC, fd, NULL, &w));
    OK(lxm_stream_write_libxc_header(w, LXM_GUEST_X86_HVM, 4, 17));
    OK(lxm_stream_write_libxc_record(w, LXM_LIBXC_STATIC_DATA_END, NULL, 0));
    OK(lxm_stream_write_page_data(w, NPAGES, pfns, ptrs));
    ck_assert_uint_eq(lxm_stream_writer_offset(w), want.len);
    lxm_stream_writer_free(w);
    close(fd);
    read_file(path, &got);
    ck_assert_uint_eq(got.len, want.len);
    ck_assert(!memcmp(got.data, want.data, want.len));

    /* A closed fd: an I/O error, not a crash. */
    fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    OK(lxm_stream_writer_new_fd(LXM_FORMAT_LIBXL, fd, NULL, &w));
    ck_assert_int_eq(lxm_stream_write_libxl_header(w), LXM_ERROR_IO);
    lxm_stream_writer_free(w);
    close(fd);

    unlink(path);
    free(path);
    free(mem);
    lxm_test_buf_dispose(&got);
    lxm_test_buf_dispose(&want);
}
END_TEST

/* Drains a pipe slowly, so that the writer sees it full. */
typedef struct slow_reader {
    int fd;
    lxm_test_buf got;
} slow_reader;

static void *slow_read(void *opaque)
{
    slow_reader *sr = opaque;
    uint8_t chunk[1500];
    unsigned int n = 0;
    ssize_t r;

    for (;;) {
        struct iovec iov;

        r = read(sr->fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        iov.iov_base = chunk;
        iov.iov_len = (size_t)r;
        if (lxm_test_buf_sink(&sr->got, &iov, 1))
            break;
        if (!(++n % 64))
            usleep(200);
    }
    return NULL;
}

static void on_alarm(int sig)
{
    (void)sig;
}

/*
 * Partial writes and EINTR: a pipe drained slowly by a thread while a
 * 1 kHz SIGALRM (no SA_RESTART) interrupts the writer's writev().
 */
START_TEST(test_fd_partial_writes)
{
    const lxm__synth_opts *o = &golden[G_HVM];
    struct sigaction sa, old_sa;
    struct itimerval it = { { 0, 1000 }, { 0, 1000 } }, no_it = { 0 };
    sigset_t alrm, old_mask;
    slow_reader sr = { 0 };
    lxm_test_buf want = { 0 };
    lxm_stream_writer *w;
    pthread_t th;
    int fds[2], rc;

    lxm_test_synth(o, LXM_FORMAT_XL, &want);
    ck_assert_int_eq(pipe(fds), 0);
    sr.fd = fds[0];

    /* The reader thread never takes the signal. */
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &alrm, &old_mask), 0);
    ck_assert_int_eq(pthread_create(&th, NULL, slow_read, &sr), 0);
    ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &old_mask, NULL), 0);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGALRM, &sa, &old_sa), 0);
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);

    OK(lxm_stream_writer_new_fd(LXM_FORMAT_XL, fds[1], NULL, &w));
    rc = lxm__synth_write(w, o);

    setitimer(ITIMER_REAL, &no_it, NULL);
    sigaction(SIGALRM, &old_sa, NULL);
    close(fds[1]);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    close(fds[0]);

    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(lxm_stream_writer_offset(w), want.len);
    ck_assert_uint_eq(sr.got.len, want.len);
    ck_assert(!memcmp(sr.got.data, want.data, want.len));
    lxm_stream_writer_free(w);
    lxm_test_buf_dispose(&sr.got);
    lxm_test_buf_dispose(&want);
}
END_TEST

/* ---- the synthetic guest ----------------------------------------- */

/* Same seed, same bytes; another seed, other bytes. */
START_TEST(test_synth_deterministic)
{
    lxm__synth_opts o = golden[G_PV];
    lxm_test_buf a = { 0 }, b = { 0 }, c = { 0 };

    lxm_test_synth(&o, LXM_FORMAT_XL, &a);
    lxm_test_synth(&o, LXM_FORMAT_XL, &b);
    o.seed++;
    lxm_test_synth(&o, LXM_FORMAT_XL, &c);
    ck_assert_uint_eq(a.len, b.len);
    ck_assert(!memcmp(a.data, b.data, a.len));
    ck_assert(a.len != c.len || memcmp(a.data, c.data, a.len));
    lxm_test_buf_dispose(&a);
    lxm_test_buf_dispose(&b);
    lxm_test_buf_dispose(&c);
}
END_TEST

/* The shape the statistics see: rounds, page mix, PV page types. */
START_TEST(test_synth_shape)
{
    lxm__synth_opts o = golden[G_PV];
    lxm_test_buf b = { 0 };
    lxm_stream_stats *st;
    lxm_stream_summary sum;
    uint64_t npages, prev = UINT64_MAX;
    uint32_t i;

    o.memory_bytes = 8 << 20;
    npages = o.memory_bytes / LXM_PAGE_SIZE;
    lxm_test_synth(&o, LXM_FORMAT_XL, &b);
    OK(lxm_stream_stats_new(&st));
    OK(lxm_test_read_buf(b.data, b.len, LXM_FORMAT_XL, LXM_READER_PAGES, 0,
                         lxm_stream_stats_event, st, NULL));
    lxm_stream_stats_summary(st, &sum);

    ck_assert_str_eq(sum.domain_type, "pv");
    ck_assert_str_eq(sum.domain_name, o.name);
    ck_assert_uint_eq(sum.nr_iterations, o.rounds + 1);
    ck_assert_uint_ge(lxm_stream_stats_iteration_pages(st, 0), npages);
    for (i = 1; i <= o.rounds; i++) {
        uint64_t n = lxm_stream_stats_iteration_pages(st, i);

        ck_assert_uint_gt(n, 0);
        ck_assert_uint_lt(n, prev); /* a shrinking dirty set */
        prev = n;
    }
    /* round 0 is ~40% zero pages */
    ck_assert_uint_gt(sum.zero_pages, npages * 30 / 100);
    ck_assert_uint_lt(sum.zero_pages, npages * 50 / 100);
    ck_assert_uint_gt(sum.pages_by_type[LXM_PAGE_L4TAB_PIN], 0);
    ck_assert_uint_gt(sum.pages_by_type[LXM_PAGE_L3TAB], 0);
    ck_assert_uint_gt(sum.pages_by_type[LXM_PAGE_L2TAB], 0);
    ck_assert_uint_gt(sum.pages_by_type[LXM_PAGE_L1TAB], 0);
    ck_assert_uint_gt(sum.pages_by_type[LXM_PAGE_L1TAB_PIN], 0);
    ck_assert_uint_gt(sum.pages_by_type[LXM_PAGE_XTAB], 0);
    ck_assert_uint_eq(sum.libxc_records[LXM_LIBXC_X86_PV_VCPU_BASIC], o.vcpus);
    ck_assert_uint_eq(sum.libxc_records[LXM_LIBXC_X86_PV_VCPU_MSRS], o.vcpus);

    lxm_stream_stats_free(st);
    lxm_test_buf_dispose(&b);
}
END_TEST

START_TEST(test_synth_bad_opts)
{
    lxm__synth_opts o = golden[G_HVM];
    lxm_test_buf b = { 0 };
    lxm_stream_writer *w;

    OK(lxm_stream_writer_new(LXM_FORMAT_XL, lxm_test_buf_sink, &b, NULL, &w));
    o.memory_bytes = 4095;
    ck_assert_int_eq(lxm__synth_write(w, &o), LXM_ERROR_INVAL);
    o.memory_bytes = 0;
    ck_assert_int_eq(lxm__synth_write(w, &o), LXM_ERROR_INVAL);
    o = golden[G_PV];
    o.pvh = true;
    ck_assert_int_eq(lxm__synth_write(w, &o), LXM_ERROR_INVAL);
    o = golden[G_PV];
    o.guest_type = 3;
    ck_assert_int_eq(lxm__synth_write(w, &o), LXM_ERROR_INVAL);
    ck_assert_uint_eq(b.len, 0);
    lxm_stream_writer_free(w);
}
END_TEST

Suite *lxm_test_writer_suite(void)
{
    Suite *s = suite_create("writer");
    TCase *tc;

    tc = tcase_create("golden");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_golden_verify, 0, 9);
    tcase_add_loop_test(tc, test_golden_checkpointed, 0, 3);
    suite_add_tcase(s, tc);

    tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_fixture_bytes, 0,
                        (int)LXM_ARRAY_SIZE(fixtures));
    tcase_add_loop_test(tc, test_fixture_xen_accepts, 0,
                        (int)LXM_ARRAY_SIZE(fixtures));
    suite_add_tcase(s, tc);

    tc = tcase_create("refusals");
    tcase_add_test(tc, test_refuse_order);
    tcase_add_test(tc, test_refuse_page_data);
    tcase_add_test(tc, test_refuse_content);
    tcase_add_test(tc, test_header_bytes);
    tcase_add_test(tc, test_sink_failure);
    suite_add_tcase(s, tc);

    tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_roundtrip_synth, 0, 2 * G_NR);
    tcase_add_test(tc, test_roundtrip_handmade);
    tcase_add_test(tc, test_fd_writer);
    tcase_add_test(tc, test_fd_partial_writes);
    suite_add_tcase(s, tc);

    tc = tcase_create("synth");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_synth_deterministic);
    tcase_add_test(tc, test_synth_shape);
    tcase_add_test(tc, test_synth_bad_opts);
    suite_add_tcase(s, tc);

    return s;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
