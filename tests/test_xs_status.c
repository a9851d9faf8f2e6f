/*
 * test_xs_status.c - evacuation status keys (evacuate/xs_status.c) on
 * the in-memory store; the real xenstored is exercised in the Xen lab
 * (tests/xen-lab, step xs-hooks).
 */
#include <string.h>
#include <unistd.h>

#include "test.h"

#include "evacuate/xs_status.h"

#define P "/local/domain/0/xlmig"

START_TEST(test_xs_begin_vm_end)
{
    lxm__xs_status *s = NULL;

    ck_assert_int_eq(lxm__xs_status_open_memory(NULL, &s), 0);
    ck_assert_int_eq(lxm__xs_status_begin(s, "h1", "req-1", "fencing", 3, 10),
                     0);
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/state"), "running");
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/host"), "h1");
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/request-id"), "req-1");
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/reason"), "fencing");
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/total"), "3");
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/batch-size"), "10");
    ck_assert_ptr_nonnull(lxm__xs_status_get(s, "evacuation/started"));

    ck_assert_int_eq(lxm__xs_status_vm(s, "web.1", "migrated", "h2", NULL, 17),
                     0);
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/vm/web_2e1/state"),
                     "migrated");
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/vm/web_2e1/name"),
                     "web.1");
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/vm/web_2e1/destination"),
                     "h2");
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/vm/web_2e1/downtime-ms"),
                     "17");
    ck_assert_ptr_null(lxm__xs_status_get(s, "evacuation/vm/web_2e1/reason"));

    ck_assert_int_eq(lxm__xs_status_counts(s, 1, 0, 2, 0, 0), 0);
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/migrated"), "1");
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/refused"), "2");
    ck_assert_int_eq(lxm__xs_status_end(s, "failed", 1, "2 VMs refused"), 0);
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/state"), "failed");
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/exit-code"), "1");
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/error"),
                     "2 VMs refused");
    /* one transaction per update */
    ck_assert_uint_eq(lxm__xs_status_updates(s), 4);

    /* the next evacuation starts from a clean slate, the request keys
     * (written by the HA daemon) stay */
    ck_assert_int_eq(lxm__xs_status_set(s, "evacuation/request", "req-2"), 0);
    ck_assert_int_eq(lxm__xs_status_begin(s, "h1", "req-2", "", 0, 1), 0);
    ck_assert_ptr_null(lxm__xs_status_get(s, "evacuation/vm/web_2e1/state"));
    ck_assert_ptr_null(lxm__xs_status_get(s, "evacuation/error"));
    ck_assert_ptr_null(lxm__xs_status_get(s, "evacuation/exit-code"));
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/request"), "req-2");
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/state"), "running");
    /* removing a key */
    ck_assert_int_eq(lxm__xs_status_set(s, "evacuation/request", NULL), 0);
    ck_assert_ptr_null(lxm__xs_status_get(s, "evacuation/request"));
    lxm__xs_status_close(s);
}
END_TEST

START_TEST(test_xs_prefix_and_names)
{
    lxm__xs_status *s = NULL;
    char key[16], longname[300];

    ck_assert_int_eq(lxm__xs_status_open_memory("relative", &s),
                     LXM_ERROR_INVAL);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(lxm__xs_status_open_memory("/test/x/", &s), 0);
    ck_assert_int_eq(lxm__xs_status_set(s, "evacuation/state", "idle"), 0);
    ck_assert_str_eq(lxm__xs_status_get(s, "evacuation/state"), "idle");

    ck_assert(lxm__xs_key_component("vm-01_a", key, sizeof(key)));
    ck_assert_str_eq(key, "vm-01_5fa");
    ck_assert(lxm__xs_key_component("a/b", key, sizeof(key)));
    ck_assert_str_eq(key, "a_2fb");
    ck_assert(!lxm__xs_key_component("", key, sizeof(key)));
    ck_assert(!lxm__xs_key_component("0123456789abcdef", key, sizeof(key)));

    /* a name too long for a key path is an error, not a truncation */
    memset(longname, 'v', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ck_assert_int_eq(lxm__xs_status_vm(s, longname, "migrated", NULL, NULL, 0),
                     LXM_ERROR_INVAL);
    lxm__xs_status_close(s);
    lxm__xs_status_close(NULL);
}
END_TEST

START_TEST(test_xs_real_absent)
{
    lxm__xs_status *s = NULL;
    int rc;

    /* On a machine without xenstored: UNSUPPORTED, quietly.  In a dom0
     * (the Xen lab) it opens. */
    rc = lxm__xs_status_open(P, NULL, &s);
    if (access("/var/run/xenstored/socket", F_OK) == 0 ||
        access("/dev/xen/xenbus", F_OK) == 0) {
        ck_assert_int_eq(rc, 0);
        ck_assert_ptr_nonnull(s);
    } else {
        ck_assert_int_eq(rc, LXM_ERROR_UNSUPPORTED);
        ck_assert_ptr_null(s);
    }
    lxm__xs_status_close(s);
}
END_TEST

Suite *lxm_test_xs_status_suite(void)
{
    Suite *s = suite_create("xs_status");
    TCase *tc = tcase_create("keys");

    tcase_add_test(tc, test_xs_begin_vm_end);
    tcase_add_test(tc, test_xs_prefix_and_names);
    tcase_add_test(tc, test_xs_real_absent);
    suite_add_tcase(s, tc);
    return s;
}
