/*
 * test_parse.c - table tests of the parsers for user-typed values
 * (core/parse.c), shared by xlmig and xlmigd.
 */
#include "test.h"

static const struct size_case {
    const char *in;
    bool ok;
    uint64_t bytes;
} size_cases[] = {
    { "0", true, 0 },
    { "4096", true, 4096 },
    { "64K", true, 64u << 10 },
    { "64k", true, 64u << 10 },
    { "512M", true, 512u << 20 },
    { "1G", true, 1u << 30 },
    { "1536m", true, UINT64_C(1536) << 20 },
    { "17179869183G", true, UINT64_C(17179869183) << 30 },
    { "17179869184G", false, 0 }, /* 2^64: overflow */
    { "18446744073709551615", true, UINT64_MAX },
    { "18446744073709551616", false, 0 },
    { "", false, 0 },
    { "-1", false, 0 },
    { "+1", false, 0 },
    { " 1", false, 0 },
    { "1 ", false, 0 },
    { "12Q", false, 0 },
    { "1KB", false, 0 },
    { "1T", false, 0 },
    { "M", false, 0 },
    { "0x10", false, 0 },
};

START_TEST(test_parse_size)
{
    const struct size_case *t = &size_cases[_i];
    uint64_t v = 12345;
    bool ok = lxm__parse_size(t->in, &v);

    ck_assert_msg(ok == t->ok, "'%s': %s", t->in, ok ? "accepted" : "refused");
    if (ok)
        ck_assert_uint_eq(v, t->bytes);
    else
        ck_assert_uint_eq(v, 12345); /* untouched */
}
END_TEST

START_TEST(test_parse_size_null)
{
    uint64_t v = 1;

    ck_assert(!lxm__parse_size(NULL, &v));
}
END_TEST

Suite *lxm_test_parse_suite(void)
{
    Suite *s = suite_create("parse");
    TCase *tc = tcase_create("size");

    tcase_add_loop_test(tc, test_parse_size, 0, LXM_ARRAY_SIZE(size_cases));
    tcase_add_test(tc, test_parse_size_null);
    suite_add_tcase(s, tc);
    return s;
}
