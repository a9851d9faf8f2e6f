/*
 * test_autocodec.c - `--compress=auto`'s choice before the stream
 * (libxlmig/migrate/autocodec.c).
 *
 * Cases:
 *   decide      table: link rate, --bandwidth cap and codec rate in,
 *               raw or codec path out (unknown rates keep the codec
 *               path; the margin's edge on both sides)
 *   codec_rate  the self-measurement gives a plausible non-zero rate,
 *               is  cached (the second call is instant and equal), and
 *               worker counts are clamped
 * The end-to-end cases (the probe on the wire, a peer without the
 * "probe" capability) are in test_e2e.c, tcase "compress".
 */
#include <inttypes.h>
#include <time.h>

#include "codec/codec.h"
#include "migrate/migrate.h"
#include "test.h"

#define MB 1000000ull

START_TEST(test_decide_table)
{
    static const struct {
        uint64_t link, cap, codec;
        lxm__auto_choice want;
        const char *why;
    } cases[] = {
        /* unknown rates: the per-window switch decides, as before */
        { 0, 0, 900 * MB, LXM__AUTO_CODEC, "link not probed" },
        { 2000 * MB, 0, 0, LXM__AUTO_CODEC, "codec not measured" },
        { 0, 100 * MB, 0, LXM__AUTO_CODEC, "nothing known" },
        /* loopback: the link outruns the codec */
        { 2000 * MB, 0, 900 * MB, LXM__AUTO_RAW, "loopback" },
        { 450 * MB, 0, 186 * MB, LXM__AUTO_RAW, "loaded loopback" },
        /* 1 Gbit/s against a codec several times faster */
        { 119 * MB, 0, 900 * MB, LXM__AUTO_CODEC, "1 Gbit/s" },
        /* 1 Gbit/s against a codec starved of CPU */
        { 119 * MB, 0, 60 * MB, LXM__AUTO_RAW, "1 Gbit/s, busy CPUs" },
        /* the margin: codec must be >= 2x the link */
        { 500 * MB, 0, 1000 * MB, LXM__AUTO_CODEC, "exactly the margin" },
        { 500 * MB, 0, 1000 * MB - 1, LXM__AUTO_RAW, "just below it" },
        { 500 * MB, 0, 700 * MB, LXM__AUTO_RAW, "faster, not by the margin" },
        /* --bandwidth caps the link */
        { 2000 * MB, 100 * MB, 900 * MB, LXM__AUTO_CODEC, "capped link" },
        { 2000 * MB, 3000 * MB, 900 * MB, LXM__AUTO_RAW, "cap above link" },
        { 1, 0, 1, LXM__AUTO_RAW, "tiny rates" },
        { UINT64_C(1) << 40, 0, UINT64_C(1) << 41, LXM__AUTO_CODEC,
          "huge rates" },
    };
    size_t i;

    for (i = 0; i < LXM_ARRAY_SIZE(cases); i++)
        ck_assert_msg(lxm__auto_decide(cases[i].link, cases[i].cap,
                                       cases[i].codec) == cases[i].want,
                      "case %zu (%s): link %" PRIu64 ", cap %" PRIu64
                      ", codec %" PRIu64 ": expected %s",
                      i, cases[i].why, cases[i].link, cases[i].cap,
                      cases[i].codec,
                      cases[i].want == LXM__AUTO_RAW ? "raw" : "codec");
}
END_TEST

static uint64_t ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

START_TEST(test_codec_rate)
{
    uint64_t r1, r2, r3, t0;

    r1 = lxm__auto_codec_rate(1, NULL);
    /* A 6 MiB sample: anything below 1 MB/s means it measured nothing
     * sensible, above 100 GB/s that it skipped the work. */
    ck_assert_uint_gt(r1, 1 * MB);
    ck_assert_uint_lt(r1, 100000 * MB);
    t0 = ms_now();
    r2 = lxm__auto_codec_rate(1, NULL);
    ck_assert_uint_eq(r1, r2);
    ck_assert_uint_lt(ms_now() - t0, 5); /* cached: no second run */
    /* Worker counts beyond the cap share the cap's entry. */
    r3 = lxm__auto_codec_rate(LXM__CODEC_THREADS_MAX + 5, NULL);
    ck_assert_uint_eq(r3, lxm__auto_codec_rate(LXM__CODEC_THREADS_MAX, NULL));
}
END_TEST

Suite *lxm_test_autocodec_suite(void)
{
    Suite *s = suite_create("autocodec");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_decide_table);
    tcase_add_test(tc, test_codec_rate);
    suite_add_tcase(s, tc);
    return s;
}
