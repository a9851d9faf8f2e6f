/*
 * runner.c - the one Check runner of libxlmig.  `make check` runs it;
 * its last line is Check's own summary.
 *
 * Environment: CK_RUN_SUITE / CK_RUN_CASE select (Check's own), and
 * LXM_SHARED_DIR overrides where ../shared is looked for.
 */
#include <stdio.h>
#include <stdlib.h>

#include "test.h"

int main(void)
{
    SRunner *sr;
    int failed;

    sr = srunner_create(lxm_test_records_suite());
    srunner_add_suite(sr, lxm_test_parse_suite());
    srunner_add_suite(sr, lxm_test_reader_suite());
    srunner_add_suite(sr, lxm_test_writer_suite());
    srunner_add_suite(sr, lxm_test_stats_suite());
    srunner_add_suite(sr, lxm_test_cli_suite());
    srunner_add_suite(sr, lxm_test_transport_suite());
    srunner_add_suite(sr, lxm_test_backend_libxl_suite());
    srunner_add_suite(sr, lxm_test_precopy_suite());
    srunner_add_suite(sr, lxm_test_sim_suite());
    srunner_add_suite(sr, lxm_test_migrate_suite());
    srunner_add_suite(sr, lxm_test_e2e_suite());
    srunner_add_suite(sr, lxm_test_codec_suite());
    srunner_add_suite(sr, lxm_test_xs_status_suite());
    srunner_add_suite(sr, lxm_test_xltransport_suite());
    srunner_add_suite(sr, lxm_test_evacuate_sched_suite());
    srunner_add_suite(sr, lxm_test_evacuate_conf_suite());
    srunner_add_suite(sr, lxm_test_evacuate_plan_suite());
    srunner_add_suite(sr, lxm_test_evacuate_cli_suite());
    srunner_add_suite(sr, lxm_test_gate_suite());
    srunner_add_suite(sr, lxm_test_pagepass_suite());
    srunner_add_suite(sr, lxm_test_rolling_upgrade_suite());
    srunner_add_suite(sr, lxm_test_autocodec_suite());

    if (lxm_test_shared_streams_dir()) {
        srunner_add_suite(sr, lxm_test_xen_streams_suite());
    } else {
        /* Said before Check's summary so that line stays the last. */
        printf("SKIPPED: %d real Xen 4.17 image cases: ../shared/xen-streams"
               " is absent (set LXM_SHARED_DIR); counted as skipped, not"
               " passed\n",
               lxm_test_xen_streams_ncases);
    }

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
