/*
 * test_precopy.c - the pre-copy policies (libxlmig/migrate/precopy.c).
 *
 * Tables: one row per decision, with the state before it and the
 * decision and non-converging count expected after; sequences: a whole
 * migration's dirty counts fed round by round, with the round at which
 * each policy must stop or give up.  Plus the estimate, names, parse,
 * and the defaults of lxm__save_params_init().
 */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "test.h"

#define MB (UINT64_C(1) << 20)
#define STOP LXM__PRECOPY_STOP_AND_COPY
#define GO LXM__PRECOPY_CONTINUE
#define ABORT LXM__PRECOPY_ABORT

/* ---- single decisions -------------------------------------------- */

static const struct decide_case {
    const char *what;
    lxm__precopy_policy policy;
    uint32_t downtime_ms, max_rounds, converge_rounds;
    uint32_t round;
    uint64_t dirty, prev_dirty, bandwidth;
    uint32_t non_converging; /* before */
    lxm__precopy_decision want;
    uint32_t want_non_converging;
} decide_cases[] = {
    /* downtime: 1000 pages at 100 MiB/s take 39.1 ms, rounded up to 40 */
    { "downtime fits", LXM__PRECOPY_DOWNTIME, 300, 30, 5, 1, 1000, 100000,
      100 * MB, 0, STOP, 0 },
    { "downtime too slow", LXM__PRECOPY_DOWNTIME, 300, 30, 5, 1, 100000, 200000,
      100 * MB, 0, GO, 0 },
    { "downtime exactly at limit", LXM__PRECOPY_DOWNTIME, 40, 30, 5, 2, 1000,
      100000, 100 * MB, 0, STOP, 0 },
    { "downtime 1 ms under", LXM__PRECOPY_DOWNTIME, 39, 30, 5, 2, 1000, 100000,
      100 * MB, 0, GO, 0 },
    { "downtime max rounds", LXM__PRECOPY_DOWNTIME, 300, 30, 5, 30, 100000,
      100000, 100 * MB, 3, STOP, 4 },
    { "downtime no bandwidth yet", LXM__PRECOPY_DOWNTIME, 300, 30, 5, 1, 10,
      100, 0, 0, GO, 0 },
    { "downtime nothing dirty", LXM__PRECOPY_DOWNTIME, 0, 30, 5, 1, 0, 100, 0,
      0, STOP, 0 },
    { "downtime default max rounds", LXM__PRECOPY_DOWNTIME, 300, 0, 0, 30,
      100000, 100000, MB, 0, STOP, 1 },

    /* xen: 5 rounds or < 50 dirty, whatever the bandwidth */
    { "xen 49 dirty", LXM__PRECOPY_XEN, 300, 30, 5, 1, 49, 1000, 1, 0, STOP,
      0 },
    { "xen 50 dirty", LXM__PRECOPY_XEN, 300, 30, 5, 1, 50, 1000, 1, 0, GO, 0 },
    { "xen round 4", LXM__PRECOPY_XEN, 300, 30, 5, 4, 5000, 5000, 1, 0, GO, 1 },
    { "xen round 5", LXM__PRECOPY_XEN, 300, 30, 5, 5, 5000, 5000, 1, 0, STOP,
      1 },
    { "xen ignores fast link", LXM__PRECOPY_XEN, 300, 30, 5, 1, 60, 1000,
      10000 * MB, 0, GO, 0 },
    { "xen max rounds lower", LXM__PRECOPY_XEN, 300, 3, 5, 3, 5000, 9000, 1, 0,
      STOP, 0 },

    /* suspend-if-needed */
    { "suspend converging", LXM__PRECOPY_SUSPEND_IF_NEEDED, 300, 30, 5, 2,
      50000, 100000, 10 * MB, 4, GO, 0 },
    { "suspend 4 flat rounds", LXM__PRECOPY_SUSPEND_IF_NEEDED, 300, 30, 5, 5,
      50000, 50000, 10 * MB, 3, GO, 4 },
    { "suspend 5 flat rounds", LXM__PRECOPY_SUSPEND_IF_NEEDED, 300, 30, 5, 6,
      50000, 50000, 10 * MB, 4, STOP, 5 },
    { "suspend 4% shrink is flat", LXM__PRECOPY_SUSPEND_IF_NEEDED, 300, 30, 5,
      6, 96000, 100000, 10 * MB, 4, STOP, 5 },
    { "suspend 5% shrink converges", LXM__PRECOPY_SUSPEND_IF_NEEDED, 300, 30, 5,
      6, 95000, 100000, 10 * MB, 4, GO, 0 },
    { "suspend growing", LXM__PRECOPY_SUSPEND_IF_NEEDED, 300, 30, 2, 3, 120000,
      100000, 10 * MB, 1, STOP, 2 },
    { "suspend fits", LXM__PRECOPY_SUSPEND_IF_NEEDED, 300, 30, 5, 2, 100, 50000,
      10 * MB, 0, STOP, 0 },
    { "suspend max rounds", LXM__PRECOPY_SUSPEND_IF_NEEDED, 300, 10, 50, 10,
      50000, 60000, 10 * MB, 0, STOP, 0 },

    /* abort-if-busy */
    { "abort fits", LXM__PRECOPY_ABORT_IF_BUSY, 300, 30, 5, 2, 100, 50000,
      10 * MB, 4, STOP, 0 },
    { "abort converging", LXM__PRECOPY_ABORT_IF_BUSY, 300, 30, 5, 2, 50000,
      100000, 10 * MB, 0, GO, 0 },
    { "abort 5 flat rounds", LXM__PRECOPY_ABORT_IF_BUSY, 300, 30, 5, 6, 50000,
      50000, 10 * MB, 4, ABORT, 5 },
    { "abort max rounds", LXM__PRECOPY_ABORT_IF_BUSY, 300, 10, 50, 10, 50000,
      60000, 10 * MB, 0, ABORT, 0 },
    { "abort nothing dirty", LXM__PRECOPY_ABORT_IF_BUSY, 300, 30, 5, 9, 0,
      50000, 0, 4, STOP, 0 },
};

START_TEST(test_decide)
{
    const struct decide_case *c = &decide_cases[_i];
    lxm__save_params p;
    lxm__precopy_state st;
    lxm__precopy_decision d;

    lxm__save_params_init(&p);
    p.policy = c->policy;
    p.downtime_ms = c->downtime_ms;
    p.max_rounds = c->max_rounds;
    p.converge_rounds = c->converge_rounds;
    memset(&st, 0, sizeof(st));
    st.round = c->round;
    st.dirty_pages = c->dirty;
    st.prev_dirty_pages = c->prev_dirty;
    st.bandwidth = c->bandwidth;
    st.non_converging = c->non_converging;

    d = lxm__precopy_decide(&p, &st);
    ck_assert_msg(d == c->want, "%s: decision %d, want %d", c->what, (int)d,
                  (int)c->want);
    ck_assert_msg(st.non_converging == c->want_non_converging,
                  "%s: non_converging %u, want %u", c->what, st.non_converging,
                  c->want_non_converging);
}
END_TEST

/* ---- whole sequences --------------------------------------------- */

#define SEQ_MAX 12

static const struct seq_case {
    const char *what;
    lxm__precopy_policy policy;
    uint64_t bandwidth;
    uint64_t dirty[SEQ_MAX]; /* after rounds 1, 2, ...; 0-terminated
                              * (a 0 would stop every policy anyway) */
    uint32_t want_round;     /* the round after which it decides */
    lxm__precopy_decision want;
} seq_cases[] = {
    /* A 1 GiB guest over 1 GB/s whose working set converges: 25000
     * pages fit in 300 ms (~105 ms), so downtime stops at round 3. */
    { "downtime converges",
      LXM__PRECOPY_DOWNTIME,
      1000 * MB,
      { 200000, 90000, 25000, 8000 },
      3,
      STOP },
    /* A hot guest that never shrinks below what 300 ms carries: the
     * max-rounds bound (30) ends it. */
    { "downtime busy hits max rounds",
      LXM__PRECOPY_DOWNTIME,
      100 * MB,
      { 100000, 100000, 100000, 100000, 100000, 100000, 100000, 100000, 100000,
        100000, 100000, 100000 },
      30,
      STOP },
    { "xen stops at 5",
      LXM__PRECOPY_XEN,
      100 * MB,
      { 100000, 90000, 80000, 70000, 60000, 50000 },
      5,
      STOP },
    { "xen stops under 50",
      LXM__PRECOPY_XEN,
      100 * MB,
      { 1000, 300, 40, 10 },
      3,
      STOP },
    { "suspend-if-needed after 5 flat",
      LXM__PRECOPY_SUSPEND_IF_NEEDED,
      100 * MB,
      { 100000, 80000, 79000, 81000, 80000, 80500, 80000, 79900, 80000 },
      7,
      STOP },
    { "abort-if-busy after 5 flat",
      LXM__PRECOPY_ABORT_IF_BUSY,
      100 * MB,
      { 100000, 80000, 79000, 81000, 80000, 80500, 80000, 79900, 80000 },
      7,
      ABORT },
    { "abort-if-busy converging is fine",
      LXM__PRECOPY_ABORT_IF_BUSY,
      100 * MB,
      { 100000, 50000, 20000, 9000, 6000 },
      5,
      STOP },
};

START_TEST(test_sequence)
{
    const struct seq_case *c = &seq_cases[_i];
    lxm__save_params p;
    lxm__precopy_state st;
    lxm__precopy_decision d = GO;
    uint32_t round, n = 0;

    while (n < SEQ_MAX && c->dirty[n])
        n++;
    lxm__save_params_init(&p);
    p.policy = c->policy;
    memset(&st, 0, sizeof(st));
    st.prev_dirty_pages = 262144; /* round 1 sent all of 1 GiB */
    st.bandwidth = c->bandwidth;
    for (round = 1; round <= 100; round++) {
        /* Past the table's end, the last value repeats. */
        st.round = round;
        st.dirty_pages = c->dirty[LXM_MIN(round, n) - 1];
        d = lxm__precopy_decide(&p, &st);
        st.prev_dirty_pages = st.dirty_pages;
        if (d != GO)
            break;
    }
    ck_assert_msg(d == c->want && round == c->want_round,
                  "%s: decision %d after round %u, want %d after %u", c->what,
                  (int)d, round, (int)c->want, c->want_round);
}
END_TEST

/* ---- estimate, names, defaults ----------------------------------- */

START_TEST(test_estimate)
{
    /* (4096 + 8) bytes a page. */
    ck_assert_uint_eq(lxm__precopy_estimate_ms(0, 0), 0);
    ck_assert_uint_eq(lxm__precopy_estimate_ms(0, 1000), 0);
    ck_assert_uint_eq(lxm__precopy_estimate_ms(1, 0), UINT64_MAX);
    ck_assert_uint_eq(lxm__precopy_estimate_ms(1000, 4104000), 1000);
    ck_assert_uint_eq(lxm__precopy_estimate_ms(1, 4104000), 1); /* 0.001 */
    ck_assert_uint_eq(lxm__precopy_estimate_ms(1000, 4104001), 1000);
    /* Huge sets do not overflow. */
    ck_assert_uint_eq(lxm__precopy_estimate_ms(UINT64_MAX, 1), UINT64_MAX);
    ck_assert_uint_eq(lxm__precopy_estimate_ms(UINT64_C(1) << 40, UINT64_MAX),
                      1);
}
END_TEST

/* The commit's round trips (fixed_ms) count in the downtime: a set that
 * fits the limit alone does not once they are added. */
START_TEST(test_fixed_cost)
{
    lxm__save_params p;
    lxm__precopy_state st;

    lxm__save_params_init(&p);
    p.policy = LXM__PRECOPY_DOWNTIME;
    p.downtime_ms = 300;
    memset(&st, 0, sizeof(st));
    st.round = 2;
    st.dirty_pages = 290000; /* 290 ms at 4104000000 B/s ... */
    st.prev_dirty_pages = 400000;
    st.bandwidth = UINT64_C(4104000000);
    ck_assert_uint_eq(
        lxm__precopy_downtime_ms(&p, st.dirty_pages, st.bandwidth), 290);
    ck_assert_int_eq(lxm__precopy_decide(&p, &st), LXM__PRECOPY_STOP_AND_COPY);
    p.fixed_ms = 20; /* ... and 20 ms of commit: 310 > 300 */
    ck_assert_uint_eq(
        lxm__precopy_downtime_ms(&p, st.dirty_pages, st.bandwidth), 310);
    ck_assert_int_eq(lxm__precopy_decide(&p, &st), LXM__PRECOPY_CONTINUE);
    p.fixed_ms = UINT32_MAX; /* saturates */
    ck_assert_uint_eq(lxm__precopy_downtime_ms(&p, 1, 0), UINT64_MAX);
}
END_TEST

START_TEST(test_names)
{
    static const char *const names[] = { "downtime", "xen", "suspend-if-needed",
                                         "abort-if-busy" };
    lxm__precopy_policy p;
    size_t i;

    for (i = 0; i < LXM_ARRAY_SIZE(names); i++) {
        ck_assert_int_eq(lxm__precopy_policy_parse(names[i], &p), 0);
        ck_assert_int_eq(p, (int)i);
        ck_assert_str_eq(lxm__precopy_policy_name(p), names[i]);
    }
    ck_assert_int_eq(lxm__precopy_policy_parse("Xen", &p), LXM_ERROR_INVAL);
    ck_assert_int_eq(lxm__precopy_policy_parse("", &p), LXM_ERROR_INVAL);
    ck_assert_int_eq(lxm__precopy_policy_parse(NULL, &p), LXM_ERROR_INVAL);
    ck_assert_str_eq(lxm__precopy_policy_name((lxm__precopy_policy)17),
                     "unknown");
}
END_TEST

START_TEST(test_defaults)
{
    lxm__save_params p;

    memset(&p, 0xff, sizeof(p));
    lxm__save_params_init(&p);
    ck_assert(p.live);
    ck_assert_int_eq(p.policy, LXM__PRECOPY_DOWNTIME);
    ck_assert_uint_eq(p.downtime_ms, 300);
    ck_assert_uint_eq(p.max_rounds, 30);
    ck_assert_uint_eq(p.converge_rounds, 5);
}
END_TEST

Suite *lxm_test_precopy_suite(void)
{
    Suite *s = suite_create("precopy");
    TCase *tc = tcase_create("policies");

    tcase_add_loop_test(tc, test_decide, 0, LXM_ARRAY_SIZE(decide_cases));
    tcase_add_loop_test(tc, test_sequence, 0, LXM_ARRAY_SIZE(seq_cases));
    tcase_add_test(tc, test_estimate);
    tcase_add_test(tc, test_fixed_cost);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_defaults);
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
