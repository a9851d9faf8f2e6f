/*
 * test_rolling_upgrade.c - tools/pool-rolling-upgrade end to end,
 * through tests/scripts/rolling-upgrade.sh: three sim xlmigd agents
 * with small VMs, an upgrade command that restarts each host's agent
 * with a newer Xen version, a failure on host 2 and the resumed run,
 * --dry-run, agents that come back older or not at all, SIGTERM.
 * Suite "rolling_upgrade".
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

START_TEST(test_rolling_upgrade_sim)
{
    char cmd[4 * PATH_MAX], *out = NULL;
    const char *xlmigd = getenv("LXM_XLMIGD");
    const char *top = lxm_test_top();
    int rc;

    ck_assert_msg(xlmigd && *xlmigd, "LXM_XLMIGD is not set (make check)");
    ck_assert_msg(top != NULL, "no repository top (LXM_TOP)");
    snprintf(cmd, sizeof(cmd),
             "%s/tests/scripts/rolling-upgrade.sh %s/tools/pool-rolling-upgrade"
             " %s %s 2>&1",
             top, top, lxm_test_xlmig_path(), xlmigd);
    rc = lxm_test_run(cmd, &out);
    ck_assert_msg(rc == 0 && out && strstr(out, "PASS"), "%s (exit %d):\n%s",
                  cmd, rc, out ? out : "");
    free(out);
}
END_TEST

Suite *lxm_test_rolling_upgrade_suite(void)
{
    Suite *s = suite_create("rolling_upgrade");
    TCase *tc = tcase_create("sim-pool");

    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_rolling_upgrade_sim);
    suite_add_tcase(s, tc);
    return s;
}
