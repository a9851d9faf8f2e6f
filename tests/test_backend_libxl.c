/*
 * test_backend_libxl.c - the libxl backend, as far as it can be tested
 * without Xen (the real-Xen lab issue proves it on a hypervisor).
 *
 * Entry point: lxm_test_backend_libxl_suite().
 *
 * Cases:
 *   ops        every op is set (memory_digest excepted: NULL) and the
 *              name is "libxl"; lxm__backend_choose("libxl") gives it
 *   open       without Xen (/proc/xen/capabilities absent) open() fails
 *              with LXM_ERROR_UNSUPPORTED and one clear message; on a
 *              Xen host it succeeds instead (the test says which)
 *   header     the xl header the save writes is byte for byte what
 *              lxm_stream_write_xl_header() writes for the same JSON
 *              (with and without a config, and a large one), and our
 *              reader accepts it
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"
#include "backend/backend.h"

#ifdef LXM_HAVE_LIBXL_BACKEND

START_TEST(test_ops_complete)
{
    const lxm__backend_ops *o = &lxm__backend_libxl_ops;

    ck_assert_str_eq(o->name, "libxl");
    ck_assert_ptr_nonnull(o->open);
    ck_assert_ptr_nonnull(o->close);
    ck_assert_ptr_nonnull(o->host_info);
    ck_assert_ptr_nonnull(o->list);
    ck_assert_ptr_nonnull(o->domain_info);
    ck_assert_ptr_nonnull(o->domain_config);
    ck_assert_ptr_nonnull(o->save);
    ck_assert_ptr_nonnull(o->restore);
    ck_assert_ptr_nonnull(o->save_abort);
    ck_assert_ptr_nonnull(o->pause);
    ck_assert_ptr_nonnull(o->unpause);
    ck_assert_ptr_nonnull(o->resume);
    ck_assert_ptr_nonnull(o->destroy);
    ck_assert_ptr_nonnull(o->rename);
    ck_assert_ptr_null(o->memory_digest);
    ck_assert_ptr_eq(lxm__backend_choose("libxl"), o);
    /* close(NULL) is fine. */
    o->close(NULL);
}
END_TEST

START_TEST(test_open_without_xen)
{
    lxm_test_logger cl;
    lxm__backend_opts opts = { .logger = &cl.vtable };
    lxm__backend *b = (lxm__backend *)&cl; /* must be reset to NULL */
    int rc;

    lxm_test_logger_init(&cl);
    rc = lxm__backend_libxl_ops.open(&opts, &b);
    if (access("/proc/xen/capabilities", F_OK) == 0) {
        lxm__host_info hi;

        fprintf(stderr, "NOTE: /proc/xen/capabilities exists: testing that"
                        " the libxl backend opens on this Xen host\n");
        ck_assert_msg(rc == 0, "open on a Xen host: %s (%s)", lxm_strerror(rc),
                      cl.last);
        ck_assert_int_eq(lxm__backend_libxl_ops.host_info(b, &hi), 0);
        ck_assert_str_eq(hi.backend, "libxl");
        ck_assert_uint_gt(hi.total_memory, 0);
        lxm__backend_libxl_ops.close(b);
        return;
    }
    ck_assert_int_eq(rc, LXM_ERROR_UNSUPPORTED);
    ck_assert_ptr_null(b);
    /* One clear error; libxl's own complaints are demoted to debug. */
    ck_assert_int_eq(cl.errors, 1);
    ck_assert_str_eq(cl.last,
                     "libxl backend: cannot open libxl (is this a Xen dom0?)");

    /* Silent with no logger, and opts may be NULL. */
    b = (lxm__backend *)&cl;
    ck_assert_int_eq(lxm__backend_libxl_ops.open(NULL, &b),
                     LXM_ERROR_UNSUPPORTED);
    ck_assert_ptr_null(b);
}
END_TEST

/* What lxm__libxl_write_xl_header() writes to a file. */
static void header_via_backend(const char *json, lxm_test_buf *out)
{
    char path[] = "/tmp/lxm-libxl-hdr-XXXXXX";
    int fd = mkstemp(path);
    ssize_t r;
    off_t end;

    ck_assert_int_ge(fd, 0);
    unlink(path);
    ck_assert_int_eq(lxm__libxl_write_xl_header(fd, json, NULL), 0);
    end = lseek(fd, 0, SEEK_CUR);
    ck_assert_int_gt(end, 0);
    out->len = (size_t)end;
    out->cap = out->len;
    out->data = malloc(out->len);
    ck_assert_ptr_nonnull(out->data);
    r = pread(fd, out->data, out->len, 0);
    ck_assert_int_eq(r, (ssize_t)out->len);
    close(fd);
}

static void header_via_writer(const char *json, lxm_test_buf *out)
{
    lxm_stream_writer *w;

    memset(out, 0, sizeof(*out));
    ck_assert_int_eq(
        lxm_stream_writer_new(LXM_FORMAT_XL, lxm_test_buf_sink, out, NULL, &w),
        0);
    ck_assert_int_eq(lxm_stream_write_xl_header(w, json), 0);
    lxm_stream_writer_free(w);
}

typedef struct seen_header {
    bool seen;
    uint32_t mandatory;
    char config[256];
} seen_header;

static int on_event(void *opaque, const lxm_stream_event *ev)
{
    seen_header *s = opaque;

    if (ev->kind == LXM_EV_XL_HEADER) {
        s->seen = true;
        s->mandatory = ev->u.xl.mandatory_flags;
        snprintf(s->config, sizeof(s->config), "%s",
                 ev->u.xl.config ? ev->u.xl.config : "(none)");
    }
    return 0;
}

START_TEST(test_header_identical)
{
    static const char cfg[] =
        "{\"c_info\":{\"type\":\"hvm\",\"name\":\"vm1\",\"domid\":0},"
        "\"b_info\":{\"max_vcpus\":2,\"max_memkb\":1048576}}";
    const char *jsons[3];
    char *big;
    size_t i;

    big = malloc(300000);
    ck_assert_ptr_nonnull(big);
    memset(big, ' ', 299999);
    big[0] = '{';
    big[299998] = '}';
    big[299999] = '\0';
    jsons[0] = cfg;
    jsons[1] = NULL;
    jsons[2] = big;

    for (i = 0; i < LXM_ARRAY_SIZE(jsons); i++) {
        lxm_test_buf a = { 0 }, w = { 0 };
        seen_header sh = { 0 };
        lxm_stream_error err;
        int rc;

        header_via_backend(jsons[i], &a);
        header_via_writer(jsons[i], &w);
        ck_assert_uint_eq(a.len, w.len);
        ck_assert_msg(!memcmp(a.data, w.data, a.len),
                      "xl header %zu differs from the writer's", i);
        ck_assert_uint_eq(a.len, LXM_XL_HEADER_LEN + 4 +
                                     (jsons[i] ? strlen(jsons[i]) + 1 : 0));

        /* Our strict reader takes it as an xl header; the stream then
         * ends where the libxl header should start. */
        rc = lxm_test_read_buf(a.data, a.len, LXM_FORMAT_XL, 0, 7, on_event,
                               &sh, &err);
        ck_assert_int_eq(rc, LXM_ERROR_STREAM_TRUNCATED);
        ck_assert_uint_eq(err.offset, a.len);
        ck_assert(sh.seen);
        ck_assert_uint_eq(sh.mandatory & LXM_XL_MANDATORY_STREAMV2,
                          LXM_XL_MANDATORY_STREAMV2);
        if (i == 0) {
            ck_assert_str_eq(sh.config, cfg);
            ck_assert_uint_eq(sh.mandatory, LXM_XL_MANDATORY_STREAMV2 |
                                                LXM_XL_MANDATORY_JSON);
        }
        if (i == 1)
            ck_assert_uint_eq(sh.mandatory, LXM_XL_MANDATORY_STREAMV2);
        lxm_test_buf_dispose(&a);
        lxm_test_buf_dispose(&w);
    }
    free(big);

    /* A write error is reported, not ignored. */
    {
        int p[2];

        ck_assert_int_eq(pipe(p), 0);
        close(p[0]);
        signal(SIGPIPE, SIG_IGN);
        ck_assert_int_eq(lxm__libxl_write_xl_header(p[1], cfg, NULL),
                         LXM_ERROR_IO);
        close(p[1]);
    }
}
END_TEST

Suite *lxm_test_backend_libxl_suite(void)
{
    Suite *s = suite_create("backend_libxl");
    TCase *tc = tcase_create("libxl");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_ops_complete);
    tcase_add_test(tc, test_open_without_xen);
    tcase_add_test(tc, test_header_identical);
    suite_add_tcase(s, tc);
    return s;
}

#else /* !LXM_HAVE_LIBXL_BACKEND */

START_TEST(test_not_built)
{
    ck_assert_ptr_null(lxm__backend_choose("libxl"));
}
END_TEST

Suite *lxm_test_backend_libxl_suite(void)
{
    Suite *s = suite_create("backend_libxl");
    TCase *tc = tcase_create("libxl");

    fprintf(stderr, "NOTE: built with LIBXL=n: the libxl backend is absent\n");
    tcase_add_test(tc, test_not_built);
    suite_add_tcase(s, tc);
    return s;
}

#endif /* LXM_HAVE_LIBXL_BACKEND */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
