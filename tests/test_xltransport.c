/*
 * test_xltransport.c - `xlmig xl-transport` and xlmigd's xl-receive,
 * through tests/scripts/xl-transport.sh with a stand-in for xl (the
 * real xl is proven in the Xen lab).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static void run_script(const char *compress)
{
    char cmd[3 * PATH_MAX], *out = NULL;
    const char *xlmigd = getenv("LXM_XLMIGD");
    int rc;

    ck_assert_msg(xlmigd && *xlmigd, "LXM_XLMIGD is not set (make check)");
    snprintf(cmd, sizeof(cmd), "%s/tests/scripts/xl-transport.sh %s %s %s 2>&1",
             lxm_test_top(), lxm_test_xlmig_path(), xlmigd, compress);
    rc = lxm_test_run(cmd, &out);
    ck_assert_msg(rc == 0 && strstr(out, "PASS"), "%s (exit %d):\n%s", cmd, rc,
                  out ? out : "");
    free(out);
}

/* the default codec (lz4 with the page pre-pass) */
START_TEST(test_xlt_default)
{
    run_script("");
}
END_TEST

START_TEST(test_xlt_none)
{
    run_script("none");
}
END_TEST

START_TEST(test_xlt_zstd)
{
    run_script("zstd:3");
}
END_TEST

Suite *lxm_test_xltransport_suite(void)
{
    Suite *s = suite_create("xltransport");
    TCase *tc = tcase_create("fake-xl");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_xlt_default);
    tcase_add_test(tc, test_xlt_none);
    tcase_add_test(tc, test_xlt_zstd);
    suite_add_tcase(s, tc);
    return s;
}
