/*
 * precopy.c - the pre-copy policies: when a live save stops iterating
 * and copies the rest with the guest paused (or gives up).
 *
 * Entry points (backend/backend.h):
 *   lxm__precopy_decide()       called after each round by a backend
 *                               that owns the pre-copy loop (the sim)
 *   lxm__precopy_estimate_ms()  stop-and-copy time of a dirty set
 *   lxm__precopy_downtime_ms()  the same plus the fixed commit cost
 *   lxm__precopy_policy_name(), lxm__precopy_policy_parse()
 *
 * Pure: no I/O, no clocks, no threads; tested with tables
 * (tests/test_precopy.c).
 *
 * The policies, after round st->round (1 = the full first copy) with
 * st->dirty_pages waiting to be sent:
 *   downtime           stop when the estimated downtime (stop-and-copy
 *                      time plus p->fixed_ms, the commit's round
 *                      trips) is <= downtime_ms, or at max_rounds
 *   xen                libxc's simple_precopy_policy (xg_sr_save.c):
 *                      stop after 5 rounds or when fewer than 50 pages
 *                      are dirty (and at max_rounds, if lower)
 *   suspend-if-needed  stop when the estimate fits, or after
 *                      converge_rounds rounds in a row that did not
 *                      shrink the dirty set, or at max_rounds
 *   abort-if-busy      stop when the estimate fits; give up after
 *                      converge_rounds non-converging rounds or at
 *                      max_rounds (the guest keeps running)
 *
 * A round "converges" when the dirty set shrank by at least
 * CONVERGE_PERCENT against the round before.
 */
#include <errno.h>
#include <string.h>

#include "backend/backend.h"

/* What lxm__save_params_init() sets (backend.c); a 0 here means the
 * same. */
#define DEFAULT_MAX_ROUNDS 30u
#define DEFAULT_CONVERGE_ROUNDS 5u

/* libxc's SPP_MAX_ITERATIONS and SPP_TARGET_DIRTY_COUNT. */
#define XEN_MAX_ITERATIONS 5u
#define XEN_TARGET_DIRTY_COUNT 50u

/* The dirty set must shrink by this much to count as converging. */
#define CONVERGE_PERCENT 5u

/* Stream bytes per dirty page: its data and its PAGE_DATA pfn word. */
#define BYTES_PER_PAGE (LXM_PAGE_SIZE + 8u)

static const char *const policy_names[] = {
    [LXM__PRECOPY_DOWNTIME] = "downtime",
    [LXM__PRECOPY_XEN] = "xen",
    [LXM__PRECOPY_SUSPEND_IF_NEEDED] = "suspend-if-needed",
    [LXM__PRECOPY_ABORT_IF_BUSY] = "abort-if-busy",
};

const char *lxm__precopy_policy_name(lxm__precopy_policy p)
{
    if ((unsigned int)p < LXM_ARRAY_SIZE(policy_names) && policy_names[p])
        return policy_names[p];
    return "unknown";
}

int lxm__precopy_policy_parse(const char *s, lxm__precopy_policy *p_r)
{
    unsigned int i;

    if (!s)
        return LXM_ERROR_INVAL;
    for (i = 0; i < LXM_ARRAY_SIZE(policy_names); i++)
        if (!strcmp(s, policy_names[i])) {
            *p_r = (lxm__precopy_policy)i;
            return 0;
        }
    return LXM_ERROR_INVAL;
}

uint64_t lxm__precopy_estimate_ms(uint64_t dirty_pages, uint64_t bandwidth)
{
    unsigned __int128 bytes_ms;

    if (!dirty_pages)
        return 0;
    if (!bandwidth)
        return UINT64_MAX;
    /* Rounded up: a set that needs 0.2 ms is not free. */
    bytes_ms = (unsigned __int128)dirty_pages * BYTES_PER_PAGE * 1000u;
    bytes_ms = (bytes_ms + bandwidth - 1) / bandwidth;
    return bytes_ms > UINT64_MAX ? UINT64_MAX : (uint64_t)bytes_ms;
}

/* Did the dirty set shrink enough since the round before? */
uint64_t lxm__precopy_downtime_ms(const lxm__save_params *p,
                                  uint64_t dirty_pages, uint64_t bandwidth)
{
    uint64_t est = lxm__precopy_estimate_ms(dirty_pages, bandwidth);

    return est > UINT64_MAX - p->fixed_ms ? UINT64_MAX : est + p->fixed_ms;
}

static bool converging(const lxm__precopy_state *st)
{
    unsigned __int128 now = (unsigned __int128)st->dirty_pages * 100u;
    unsigned __int128 before =
        (unsigned __int128)st->prev_dirty_pages * (100u - CONVERGE_PERCENT);

    return now <= before && st->dirty_pages < st->prev_dirty_pages;
}

lxm__precopy_decision lxm__precopy_decide(const lxm__save_params *p,
                                          lxm__precopy_state *st)
{
    uint32_t max_rounds = p->max_rounds ? p->max_rounds : DEFAULT_MAX_ROUNDS;
    uint32_t converge_rounds =
        p->converge_rounds ? p->converge_rounds : DEFAULT_CONVERGE_ROUNDS;
    bool fits;

    if (converging(st))
        st->non_converging = 0;
    else
        st->non_converging++;

    /* Nothing left to copy while running: every policy stops. */
    if (!st->dirty_pages)
        return LXM__PRECOPY_STOP_AND_COPY;

    fits = lxm__precopy_downtime_ms(p, st->dirty_pages, st->bandwidth) <=
           p->downtime_ms;

    switch (p->policy) {
    case LXM__PRECOPY_XEN:
        if (st->dirty_pages < XEN_TARGET_DIRTY_COUNT ||
            st->round >= LXM_MIN(XEN_MAX_ITERATIONS, max_rounds))
            return LXM__PRECOPY_STOP_AND_COPY;
        return LXM__PRECOPY_CONTINUE;

    case LXM__PRECOPY_SUSPEND_IF_NEEDED:
        if (fits || st->non_converging >= converge_rounds ||
            st->round >= max_rounds)
            return LXM__PRECOPY_STOP_AND_COPY;
        return LXM__PRECOPY_CONTINUE;

    case LXM__PRECOPY_ABORT_IF_BUSY:
        if (fits)
            return LXM__PRECOPY_STOP_AND_COPY;
        if (st->non_converging >= converge_rounds || st->round >= max_rounds)
            return LXM__PRECOPY_ABORT;
        return LXM__PRECOPY_CONTINUE;

    case LXM__PRECOPY_DOWNTIME:
    default:
        if (fits || st->round >= max_rounds)
            return LXM__PRECOPY_STOP_AND_COPY;
        return LXM__PRECOPY_CONTINUE;
    }
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
