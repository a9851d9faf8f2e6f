/*
 * test_evacuate_sched.c - the evacuation scheduler (evacuate/scheduler.c)
 * with a scripted migrator, and `xlmig host-evacuate` end to end over
 * three sim agents.
 *
 * The fake migrator holds every migration until the test releases it
 * (condition variables, no sleeps), records how many run at once, in
 * all and per destination, and answers what the script says for each
 * (VM, host).  Plans are written by hand so that the cases do not
 * depend on the planner; retries go through the real lxm__plan_pick().
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "test.h"
#include "evacuate/evacuate.h"
#include "transport/proto.h"

#define MAX_VMS 16
#define MAX_HOSTS 4
#define WAIT_MS 3000

typedef struct fake {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* script */
    lxm__migrate_status result[MAX_VMS][MAX_HOSTS]; /* default MIGRATED */
    bool hold;                                      /* wait for release */
    bool go[MAX_VMS];                               /* release this VM */
    unsigned int release;                           /* tokens */
    bool cancelling;                                /* CANCELLING seen */
    /* observations */
    unsigned int in_flight, max_in_flight;
    unsigned int per_dest[MAX_HOSTS], max_per_dest[MAX_HOSTS];
    unsigned int calls;
    size_t started[64]; /* vm per call, in start order */
    int started_dest[64];
    unsigned int ev_started, ev_finished, ev_retry, ev_cancelling, ev_done;
    unsigned int ev_after_done;
    lxm__evac_counts last_counts;
} fake;

static fake F;
static lxm__pool_host pool_hosts[MAX_HOSTS + 1];
static lxm__evac_host hosts[MAX_HOSTS], src_host;
static lxm__evac_vm vms[MAX_VMS];
static lxm__plan_entry entries[MAX_VMS];
static lxm__plan plan;

static void abs_deadline(struct timespec *ts, unsigned int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static lxm__migrate_status fake_migrate(void *opaque, lxm__evac_job *job,
                                        lxm__migrate_report *rep)
{
    fake *f = opaque;
    lxm__migrate_progress p;
    lxm__migrate_status st;
    bool cancelled = false;

    memset(&p, 0, sizeof(p));
    p.round = 1;
    lxm__evac_job_progress(job, &p);

    pthread_mutex_lock(&f->lock);
    f->in_flight++;
    if (f->in_flight > f->max_in_flight)
        f->max_in_flight = f->in_flight;
    f->per_dest[job->dest]++;
    if (f->per_dest[job->dest] > f->max_per_dest[job->dest])
        f->max_per_dest[job->dest] = f->per_dest[job->dest];
    if (f->calls < LXM_ARRAY_SIZE(f->started)) {
        f->started[f->calls] = job->vm;
        f->started_dest[f->calls] = job->dest;
    }
    f->calls++;
    pthread_cond_broadcast(&f->cond);
    while (f->hold && !f->release && !f->go[job->vm]) {
        if (__atomic_load_n(&job->cancel->requested, __ATOMIC_SEQ_CST)) {
            cancelled = true;
            break;
        }
        pthread_cond_wait(&f->cond, &f->lock);
    }
    if (!cancelled && f->hold && !f->go[job->vm])
        f->release--;
    st = cancelled ? LXM__MIG_CANCELLED : f->result[job->vm][job->dest];
    f->in_flight--;
    f->per_dest[job->dest]--;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);

    rep->status = st;
    rep->total_ms = 100 + job->vm;
    rep->downtime_ms = 10 + job->vm;
    rep->bytes_wire = 1000;
    job->gate_wait_ms = 5;
    if (st != LXM__MIG_MIGRATED)
        snprintf(rep->error, sizeof(rep->error), "scripted %s",
                 lxm__migrate_status_name(st));
    return st;
}

static void fake_event(void *opaque, const lxm__evac_event *ev)
{
    fake *f = opaque;

    pthread_mutex_lock(&f->lock);
    if (f->ev_done)
        f->ev_after_done++;
    switch (ev->kind) {
    case LXM__EVAC_EV_STARTED:
        f->ev_started++;
        break;
    case LXM__EVAC_EV_FINISHED:
        f->ev_finished++;
        ck_assert_ptr_nonnull(ev->outcome);
        break;
    case LXM__EVAC_EV_RETRY:
        f->ev_retry++;
        break;
    case LXM__EVAC_EV_CANCELLING:
        f->ev_cancelling++;
        f->cancelling = true;
        break;
    case LXM__EVAC_EV_DONE:
        f->ev_done++;
        f->last_counts = ev->counts;
        break;
    case LXM__EVAC_EV_PROGRESS:
        ck_assert_ptr_nonnull(ev->progress);
        break;
    }
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* nr_hosts destinations h1..hN, nr_vms VMs of 1 GiB; plan[i] = dests[i]. */
static void setup(size_t nr_hosts, size_t nr_vms, const int *dests)
{
    size_t i, j;

    memset(&F, 0, sizeof(F));
    pthread_mutex_init(&F.lock, NULL);
    pthread_cond_init(&F.cond, NULL);
    for (i = 0; i < MAX_VMS; i++)
        for (j = 0; j < MAX_HOSTS; j++)
            F.result[i][j] = LXM__MIG_MIGRATED;

    memset(pool_hosts, 0, sizeof(pool_hosts));
    memset(hosts, 0, sizeof(hosts));
    memset(&src_host, 0, sizeof(src_host));
    for (i = 0; i <= nr_hosts; i++) {
        lxm__evac_host *h = i ? &hosts[i - 1] : &src_host;

        snprintf(pool_hosts[i].name, sizeof(pool_hosts[i].name), "h%zu", i);
        snprintf(pool_hosts[i].agent, sizeof(pool_hosts[i].agent),
                 "127.0.0.1:%zu", 9000 + i);
        h->pool = &pool_hosts[i];
        h->reachable = true;
        snprintf(h->info.hostname, sizeof(h->info.hostname), "h%zu", i);
        snprintf(h->info.backend, sizeof(h->info.backend), "sim");
        h->info.xen_major = 4;
        h->info.xen_minor = 17;
        snprintf(h->info.cpu_vendor, sizeof(h->info.cpu_vendor),
                 "GenuineIntel");
        h->info.total_memory = 64ull << 30;
        h->info.free_memory = 64ull << 30;
        h->info.nr_cpus = 8;
    }
    memset(vms, 0, sizeof(vms));
    memset(entries, 0, sizeof(entries));
    for (i = 0; i < nr_vms; i++) {
        snprintf(vms[i].info.name, sizeof(vms[i].info.name), "vm%02zu", i);
        vms[i].info.domid = (uint32_t)(i + 1);
        vms[i].info.memory_bytes = 1ull << 30;
        vms[i].info.vcpus = 1;
        snprintf(vms[i].info.on_boot, sizeof(vms[i].info.on_boot), "restart");
        entries[i].vm = i;
        entries[i].dest = dests[i];
        entries[i].check = dests[i] < 0 ? LXM__CHECK_REFUSE : LXM__CHECK_OK;
        if (dests[i] < 0)
            snprintf(entries[i].reason, sizeof(entries[i].reason),
                     "PCI passthrough");
    }
    plan.entries = entries;
    plan.nr_entries = nr_vms;
    plan.nr_refused = 0;
    for (i = 0; i < nr_vms; i++)
        plan.nr_refused += dests[i] < 0;
}

static lxm__evac_sched *make_sched(size_t nr_hosts, size_t nr_vms,
                                   unsigned int batch, unsigned int cap)
{
    lxm__evac_params p;
    lxm__evac_sched *s = NULL;

    lxm__evac_params_init(&p);
    p.batch_size = batch;
    p.dest_cap = cap;
    p.migrate = fake_migrate;
    p.migrate_opaque = &F;
    p.event = fake_event;
    p.event_opaque = &F;
    ck_assert_int_eq(lxm__evac_sched_new(&p, &src_host, hosts, nr_hosts, vms,
                                         nr_vms, &plan, &s),
                     0);
    return s;
}

typedef struct runner {
    pthread_t t;
    lxm__evac_sched *s;
    int rc;
} runner;

static void *run_thread(void *arg)
{
    runner *r = arg;

    r->rc = lxm__evac_sched_run(r->s);
    return NULL;
}

static void start_run(runner *r, lxm__evac_sched *s)
{
    r->s = s;
    r->rc = -999;
    ck_assert_int_eq(pthread_create(&r->t, NULL, run_thread, r), 0);
}

/* Wait (bounded) until pred holds; F.lock held around. */
#define WAIT_FOR(pred)                                                         \
    do {                                                                       \
        struct timespec ts_;                                                   \
        abs_deadline(&ts_, WAIT_MS);                                           \
        pthread_mutex_lock(&F.lock);                                           \
        while (!(pred)) {                                                      \
            if (pthread_cond_timedwait(&F.cond, &F.lock, &ts_)) {              \
                pthread_mutex_unlock(&F.lock);                                 \
                ck_abort_msg("timed out waiting for " #pred);                  \
            }                                                                  \
        }                                                                      \
        pthread_mutex_unlock(&F.lock);                                         \
    } while (0)

static void release(unsigned int n)
{
    pthread_mutex_lock(&F.lock);
    F.release += n;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
}

/* Every VM has exactly one final outcome; counts add up. */
static void check_all_final(lxm__evac_sched *s, size_t nr_vms)
{
    const lxm__evac_outcome *o = lxm__evac_sched_outcomes(s);
    lxm__evac_counts c;
    size_t i, n = 0;

    lxm__evac_sched_counts(s, &c);
    ck_assert_uint_eq(c.total, nr_vms);
    ck_assert_uint_eq(c.pending, 0);
    ck_assert_uint_eq(c.running, 0);
    ck_assert_uint_eq(c.migrated + c.failed + c.refused + c.cancelled, nr_vms);
    for (i = 0; i < nr_vms; i++) {
        ck_assert_str_eq(o[i].name, vms[i].info.name);
        ck_assert(o[i].status >= LXM__EVAC_MIGRATED);
        n++;
    }
    ck_assert_uint_eq(n, nr_vms);
    ck_assert_uint_eq(F.ev_done, 1);
    ck_assert_uint_eq(F.ev_after_done, 0);
    ck_assert_uint_eq(F.ev_finished, nr_vms);
    ck_assert_uint_eq(F.last_counts.pending + F.last_counts.running, 0);
}

/* The window fills to batch_size and never goes past it. */
START_TEST(test_window)
{
    static const int d[10] = { 0, 1, 2, 0, 1, 2, 0, 1, 2, 0 };
    const lxm__evac_outcome *o;
    lxm__evac_sched *s;
    runner r;
    unsigned int done = 0, i;

    setup(3, 10, d);
    F.hold = true;
    s = make_sched(3, 10, 3, 0);
    start_run(&r, s);
    while (done < 10) {
        unsigned int want = 10 - done < 3 ? 10 - done : 3;

        WAIT_FOR(F.in_flight == want && F.release == 0);
        ck_assert_uint_le(F.max_in_flight, 3);
        release(1);
        done++;
    }
    pthread_join(r.t, NULL);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_uint_eq(F.max_in_flight, 3);
    check_all_final(s, 10);
    o = lxm__evac_sched_outcomes(s);
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(o[i].status, LXM__EVAC_MIGRATED);
        ck_assert_int_eq(o[i].dest, d[i]);
        ck_assert_str_eq(o[i].destination, pool_hosts[d[i] + 1].name);
        ck_assert_uint_eq(o[i].attempts, 1);
        ck_assert_uint_eq(o[i].downtime_ms, 10 + i);
        ck_assert_uint_eq(o[i].gate_wait_ms, 5);
        ck_assert_str_eq(o[i].reason, "");
    }
    ck_assert_uint_eq(F.ev_started, 10);
    lxm__evac_sched_free(s);
}
END_TEST

/* No more than dest_cap into one host, even with room in the window;
 * the window is used for the other host meanwhile. */
START_TEST(test_dest_cap)
{
    static const int d[10] = { 0, 0, 0, 0, 0, 0, 1, 1, 1, 1 };
    lxm__evac_sched *s;
    runner r;
    unsigned int i;

    setup(2, 10, d);
    F.hold = true;
    s = make_sched(2, 10, 5, 2);
    start_run(&r, s);
    /* 2 into h1 + 2 into h2: the window of 5 cannot fill. */
    WAIT_FOR(F.in_flight == 4);
    ck_assert_uint_eq(F.per_dest[0], 2);
    ck_assert_uint_eq(F.per_dest[1], 2);
    for (i = 0; i < 10; i++) {
        release(1);
        WAIT_FOR(F.release == 0);
    }
    pthread_join(r.t, NULL);
    ck_assert_uint_le(F.max_per_dest[0], 2);
    ck_assert_uint_le(F.max_per_dest[1], 2);
    ck_assert_uint_le(F.max_in_flight, 4);
    check_all_final(s, 10);
    ck_assert_uint_eq(F.last_counts.migrated, 10);
    lxm__evac_sched_free(s);
}
END_TEST

/* A VM that fails is retried on another host; the others go on. */
START_TEST(test_retry_elsewhere)
{
    static const int d[6] = { 0, 0, 1, 1, 2, 2 };
    const lxm__evac_outcome *o;
    lxm__evac_sched *s;
    unsigned int i;

    setup(3, 6, d);
    F.result[1][0] = LXM__MIG_FAILED;
    F.result[4][2] = LXM__MIG_REFUSED;
    s = make_sched(3, 6, 3, 0);
    ck_assert_int_eq(lxm__evac_sched_run(s), 0);
    check_all_final(s, 6);
    o = lxm__evac_sched_outcomes(s);
    for (i = 0; i < 6; i++)
        ck_assert_msg(o[i].status == LXM__EVAC_MIGRATED, "%s: %s: %s",
                      o[i].name, lxm__evac_status_name(o[i].status),
                      o[i].reason);
    ck_assert_uint_eq(o[1].attempts, 2);
    ck_assert_int_ne(o[1].dest, 0);
    ck_assert_uint_eq(o[4].attempts, 2);
    ck_assert_int_ne(o[4].dest, 2);
    ck_assert_str_eq(o[1].reason, "");
    ck_assert_uint_eq(o[1].bytes_wire, 2000); /* both attempts */
    ck_assert_uint_eq(o[0].attempts, 1);
    ck_assert_uint_eq(F.ev_retry, 2);
    ck_assert_uint_eq(F.calls, 8);
    lxm__evac_sched_free(s);
}
END_TEST

/* Everything fails: every VM is "failed" after max_attempts, with the
 * hosts tried in its reason; none is lost.  UNKNOWN is never retried. */
START_TEST(test_all_fail)
{
    static const int d[5] = { 0, 1, 2, 0, 1 };
    const lxm__evac_outcome *o;
    lxm__evac_sched *s;
    size_t i, j;

    setup(3, 5, d);
    for (i = 0; i < 5; i++)
        for (j = 0; j < 3; j++)
            F.result[i][j] = LXM__MIG_FAILED;
    for (j = 0; j < 3; j++)
        F.result[3][j] = LXM__MIG_UNKNOWN;
    s = make_sched(3, 5, 2, 0);
    ck_assert_int_eq(lxm__evac_sched_run(s), 0);
    check_all_final(s, 5);
    o = lxm__evac_sched_outcomes(s);
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(o[i].status, LXM__EVAC_FAILED);
        ck_assert_uint_eq(o[i].attempts, i == 3 ? 1 : 2);
        ck_assert_msg(strstr(o[i].reason, "scripted"), "%s", o[i].reason);
        ck_assert_int_ge(o[i].dest, 0);
    }
    ck_assert_msg(strstr(o[3].reason, "state unknown"), "%s", o[3].reason);
    ck_assert_msg(strstr(o[0].reason, "to h1:"), "%s", o[0].reason);
    ck_assert_uint_eq(F.last_counts.failed, 5);
    lxm__evac_sched_free(s);
}
END_TEST

/* With one other host only, a failure has nowhere to go. */
START_TEST(test_no_other_host)
{
    static const int d[2] = { 0, 0 };
    const lxm__evac_outcome *o;
    lxm__evac_sched *s;

    setup(1, 2, d);
    F.result[0][0] = LXM__MIG_FAILED;
    s = make_sched(1, 2, 2, 0);
    ck_assert_int_eq(lxm__evac_sched_run(s), 0);
    check_all_final(s, 2);
    o = lxm__evac_sched_outcomes(s);
    ck_assert_int_eq(o[0].status, LXM__EVAC_FAILED);
    ck_assert_uint_eq(o[0].attempts, 1);
    ck_assert_msg(strstr(o[0].reason, "no other host"), "%s", o[0].reason);
    ck_assert_int_eq(o[1].status, LXM__EVAC_MIGRATED);
    lxm__evac_sched_free(s);
}
END_TEST

START_TEST(test_refused)
{
    static const int d[4] = { 0, -1, 1, -1 };
    const lxm__evac_outcome *o;
    lxm__evac_sched *s;

    setup(2, 4, d);
    s = make_sched(2, 4, 4, 0);
    ck_assert_int_eq(lxm__evac_sched_run(s), 0);
    check_all_final(s, 4);
    o = lxm__evac_sched_outcomes(s);
    ck_assert_int_eq(o[1].status, LXM__EVAC_REFUSED);
    ck_assert_int_eq(o[3].status, LXM__EVAC_REFUSED);
    ck_assert_str_eq(o[1].reason, "PCI passthrough");
    ck_assert_uint_eq(o[1].attempts, 0);
    ck_assert_int_eq(o[1].dest, -1);
    ck_assert_int_eq(o[0].status, LXM__EVAC_MIGRATED);
    ck_assert_uint_eq(F.calls, 2);
    ck_assert_uint_eq(F.last_counts.refused, 2);
    lxm__evac_sched_free(s);
}
END_TEST

/* Cancel with two in flight, one done: the in-flight ones are asked to
 * stop, the rest never start; none is lost. */
START_TEST(test_cancel_midway)
{
    static const int d[6] = { 0, 1, 0, 1, 0, 1 };
    const lxm__evac_outcome *o;
    lxm__evac_sched *s;
    runner r;
    size_t i, migrated = 0, cancelled = 0;

    setup(2, 6, d);
    F.hold = true;
    s = make_sched(2, 6, 2, 0);
    start_run(&r, s);
    WAIT_FOR(F.in_flight == 2);
    pthread_mutex_lock(&F.lock);
    F.go[0] = true;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
    WAIT_FOR(F.in_flight == 2 && F.calls == 3 && F.release == 0);
    lxm__evac_sched_cancel(s);
    lxm__evac_sched_cancel(s); /* idempotent */
    ck_assert(lxm__evac_sched_cancelled(s));
    pthread_join(r.t, NULL);
    ck_assert_int_eq(r.rc, 0);
    check_all_final(s, 6);
    ck_assert_uint_eq(F.ev_cancelling, 1);
    ck_assert_uint_eq(F.calls, 3);
    o = lxm__evac_sched_outcomes(s);
    for (i = 0; i < 6; i++) {
        if (o[i].status == LXM__EVAC_MIGRATED)
            migrated++;
        else if (o[i].status == LXM__EVAC_CANCELLED)
            cancelled++;
    }
    ck_assert_uint_eq(migrated, 1);
    ck_assert_uint_eq(cancelled, 5);
    /* Which started is the plan order: vm00, vm01, then vm02. */
    ck_assert_int_eq(o[0].status, LXM__EVAC_MIGRATED);
    ck_assert_msg(strstr(o[1].reason, "cancelled while migrating"), "%s",
                  o[1].reason);
    ck_assert_msg(strstr(o[5].reason, "before it started"), "%s", o[5].reason);
    ck_assert_uint_eq(o[5].attempts, 0);
    lxm__evac_sched_free(s);
}
END_TEST

/* Cancel before run: nothing starts. */
START_TEST(test_cancel_before_run)
{
    static const int d[3] = { 0, 1, -1 };
    lxm__evac_sched *s;

    setup(2, 3, d);
    s = make_sched(2, 3, 2, 0);
    lxm__evac_sched_cancel(s);
    ck_assert_int_eq(lxm__evac_sched_run(s), 0);
    check_all_final(s, 3);
    ck_assert_uint_eq(F.calls, 0);
    ck_assert_uint_eq(F.last_counts.cancelled, 2);
    ck_assert_uint_eq(F.last_counts.refused, 1);
    lxm__evac_sched_free(s);
}
END_TEST

/* batch 1: one at a time, in plan order. */
START_TEST(test_sequential)
{
    static const int d[5] = { 1, 0, 1, 0, 1 };
    lxm__evac_sched *s;
    size_t i;

    setup(2, 5, d);
    /* plan order is not vms[] order */
    for (i = 0; i < 5; i++)
        entries[i].vm = 4 - i;
    s = make_sched(2, 5, 1, 0);
    ck_assert_int_eq(lxm__evac_sched_run(s), 0);
    check_all_final(s, 5);
    ck_assert_uint_eq(F.max_in_flight, 1);
    ck_assert_uint_eq(F.calls, 5);
    for (i = 0; i < 5; i++) {
        ck_assert_uint_eq(F.started[i], 4 - i);
        ck_assert_int_eq(F.started_dest[i], d[i]);
    }
    lxm__evac_sched_free(s);
}
END_TEST

/* A plan that does not fit the VMs is rejected. */
START_TEST(test_bad_plan)
{
    static const int d[2] = { 0, 5 };
    lxm__evac_params p;
    lxm__evac_sched *s = NULL;

    setup(2, 2, d);
    lxm__evac_params_init(&p);
    p.migrate = fake_migrate;
    ck_assert_int_eq(
        lxm__evac_sched_new(&p, &src_host, hosts, 2, vms, 2, &plan, &s),
        LXM_ERROR_INVAL);
    entries[1].dest = 1;
    entries[1].vm = 0; /* twice */
    ck_assert_int_eq(
        lxm__evac_sched_new(&p, &src_host, hosts, 2, vms, 2, &plan, &s),
        LXM_ERROR_INVAL);
    ck_assert_ptr_null(s);
    p.batch_size = 0;
    entries[1].vm = 1;
    ck_assert_int_eq(
        lxm__evac_sched_new(&p, &src_host, hosts, 2, vms, 2, &plan, &s),
        LXM_ERROR_INVAL);
}
END_TEST

/* ---- end to end: xlmig host-evacuate over three sim agents ---------- */

#define E2E_AGENTS 3
#define E2E_CLI_S 60

static char e2e_dir[64];
static lxm_test_agent e2e[E2E_AGENTS];

/* Start agent i, "hI" (sim, 1 GiB, loopback port 0); fault: LXM_FAULT. */
static void e2e_start(int i, const char *fault)
{
    char name[16];

    snprintf(name, sizeof(name), "h%d", i);
    lxm_test_agent_init(&e2e[i], e2e_dir, name);
    lxm_test_agent_start(&e2e[i], fault, "1G");
}

static void e2e_setup(void)
{
    snprintf(e2e_dir, sizeof(e2e_dir), "/tmp/lxm-evac-XXXXXX");
    if (!mkdtemp(e2e_dir))
        e2e_dir[0] = '\0';
    memset(e2e, 0, sizeof(e2e));
}

static void e2e_teardown(void)
{
    int i;

    for (i = 0; i < E2E_AGENTS; i++)
        lxm_test_agent_kill(&e2e[i]);
    lxm_test_rm_rf(e2e_dir);
}

/* Run xlmig with args; its stdout in *out_r (caller frees). */
static int e2e_xlmig(char **out_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int e2e_xlmig(char **out_r, const char *fmt, ...)
{
    char args[1024], cmd[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd),
             "timeout -k 5 %d '%s' %s </dev/null 2>>'%s/cli.err'", E2E_CLI_S,
             lxm_test_xlmig_path(), args, e2e_dir);
    return lxm_test_run(cmd, out_r);
}

static void e2e_pool(char *pool, size_t len)
{
    FILE *f;
    int i;

    snprintf(pool, len, "%s/pool.conf", e2e_dir);
    f = fopen(pool, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "# test pool\n");
    for (i = 0; i < E2E_AGENTS; i++)
        fprintf(f, "%s %s\n", e2e[i].name, e2e[i].listen);
    fclose(f);
}

/* The agent's domains as parsed JSON (caller frees). */
static yajl_val e2e_list(int i)
{
    char *out = NULL;
    yajl_val v;

    ck_assert_int_eq(e2e_xlmig(&out, "-H '%s' list --json", e2e[i].control), 0);
    v = yajl_tree_parse(out, NULL, 0);
    ck_assert_msg(v != NULL, "list --json: %s", out);
    free(out);
    return v;
}

static size_t e2e_count(yajl_val list)
{
    yajl_val d = lxm__jget(list, "domains");

    ck_assert(d && YAJL_IS_ARRAY(d));
    return d->u.array.len;
}

/* Create nr VMs on h0, evacuate it at batch 3 with --json; returns the
 * parsed output and checks what must hold whatever happened. */
static yajl_val e2e_evacuate(size_t nr, int *status_r)
{
    const char *ctl = e2e[0].control;
    char pool[PATH_MAX], *out = NULL;
    yajl_val v, jvms, lists[E2E_AGENTS];
    size_t i, placed = 0;
    int j;

    for (i = 0; i < nr; i++) {
        ck_assert_int_eq(e2e_xlmig(NULL,
                                   "-H '%s' sim-create --memory 12M"
                                   " --dirty-rate 300 vm%zu >/dev/null",
                                   ctl, i),
                         0);
    }
    e2e_pool(pool, sizeof(pool));
    *status_r = e2e_xlmig(&out,
                          "host-evacuate --json --pool '%s' --batch-size 3"
                          " --xapi-conf /nonexistent --xapi-conf-dir"
                          " /nonexistent h0",
                          pool);
    v = yajl_tree_parse(out ? out : "", NULL, 0);
    ck_assert_msg(v != NULL, "host-evacuate --json printed: %s",
                  out ? out : "");
    free(out);
    ck_assert_int_eq(lxm__jint(v, "batch_size", 0), 3);
    ck_assert_str_eq(lxm__jstr(v, "batch_size_origin"), "--batch-size");
    jvms = lxm__jget(v, "vms");
    ck_assert(jvms && YAJL_IS_ARRAY(jvms));
    ck_assert_uint_eq(jvms->u.array.len, nr);
    for (i = 0; i < nr; i++) {
        yajl_val e = jvms->u.array.values[i];

        ck_assert_ptr_nonnull(lxm__jstr(e, "name"));
        ck_assert_ptr_nonnull(lxm__jstr(e, "status"));
        ck_assert_ptr_nonnull(lxm__jget(e, "destination"));
        ck_assert_ptr_nonnull(lxm__jstr(e, "reason"));
        ck_assert_ptr_nonnull(lxm__jget(e, "downtime_ms"));
        ck_assert_ptr_nonnull(lxm__jget(e, "total_ms"));
        ck_assert_ptr_nonnull(lxm__jget(e, "bytes_wire"));
        ck_assert_ptr_nonnull(lxm__jget(e, "attempts"));
        ck_assert_ptr_nonnull(lxm__jget(e, "gate_wait_ms"));
    }
    /* No VM lost or doubled: nr in all, across the live agents. */
    for (j = 0; j < E2E_AGENTS; j++) {
        if (e2e[j].pid > 0 && waitpid(e2e[j].pid, NULL, WNOHANG) == e2e[j].pid)
            e2e[j].pid = 0; /* died (LXM_FAULT) */
        lists[j] = e2e[j].pid > 0 ? e2e_list(j) : NULL;
        if (lists[j])
            placed += e2e_count(lists[j]);
        yajl_tree_free(lists[j]);
    }
    ck_assert_uint_eq(placed, nr);
    return v;
}

START_TEST(test_e2e_evacuate)
{
    yajl_val v, jvms, l;
    size_t i;
    int status, j;

    for (j = 0; j < E2E_AGENTS; j++)
        e2e_start(j, NULL);
    v = e2e_evacuate(6, &status);
    ck_assert_int_eq(status, 0);
    ck_assert_int_eq(lxm__jint(lxm__jget(v, "totals"), "migrated", -1), 6);
    jvms = lxm__jget(v, "vms");
    for (i = 0; i < 6; i++) {
        yajl_val e = jvms->u.array.values[i];
        const char *d = lxm__jstr(e, "destination");

        ck_assert_str_eq(lxm__jstr(e, "status"), "migrated");
        ck_assert_msg(d && (!strcmp(d, "h1") || !strcmp(d, "h2")), "%s",
                      d ? d : "null");
        /* a real count: more than the frames' overhead, but not
         * necessarily the 12 MiB of memory (the agents' default codec is
         * auto, which compresses when it measures a slow link) */
        ck_assert_int_gt(lxm__jint(e, "bytes_wire", 0), 1 << 20);
    }
    l = e2e_list(0);
    ck_assert_uint_eq(e2e_count(l), 0); /* the source is empty */
    yajl_tree_free(l);
    yajl_tree_free(v);
}
END_TEST

/*
 * On a terminal: progress bars (redrawn with cursor-up escapes), and a
 * SIGINT cancels cleanly: exit 3, nothing new starts, the migration in
 * flight is cancelled through the agent and reports, no VM lost or
 * doubled, and those not yet moved still run on the source.
 * --bandwidth 20 (MB/s) makes each migration of a 48M VM last seconds:
 * the SIGINT comes once vm0's bar shows bytes sent.
 */
#define TTY_VMS 6

/* Append what the pty has within ms to buf (NUL terminated); false at
 * EOF (the child closed it). */
/* Some bar line of vm0 shows megabytes sent (text after the last
 * "vm0 ... % " is " X.Y MB" with X.Y > 0). */
static bool vm0_sending(const char *out)
{
    const char *p = out, *pct;
    double mb;

    while ((p = strstr(p, "  vm0 "))) {
        pct = strchr(p, '%');
        if (pct && sscanf(pct + 1, " %lf MB", &mb) == 1 && mb > 0)
            return true;
        p++;
    }
    return false;
}

static bool pty_read(int fd, char *buf, size_t cap, size_t *len, int ms)
{
    struct pollfd p = { fd, POLLIN, 0 };
    ssize_t n;

    if (poll(&p, 1, ms) <= 0)
        return true;
    n = read(fd, buf + *len, cap - 1 - *len);
    if (n <= 0)
        return n < 0 && errno == EINTR;
    *len += (size_t)n;
    buf[*len] = '\0';
    return true;
}

START_TEST(test_e2e_evacuate_tty_sigint)
{
    static char out[1 << 20];
    char pool[PATH_MAX], args[PATH_MAX + 256];
    size_t len = 0, i, on_src, placed = 0;
    yajl_val l, doms;
    int fd, status = -1, j, k;
    bool sent = false;
    char st[16], *row;
    unsigned int tries;
    uint64_t ms;
    double wire;
    pid_t pid;

    for (j = 0; j < E2E_AGENTS; j++)
        e2e_start(j, NULL);
    for (i = 0; i < TTY_VMS; i++)
        ck_assert_int_eq(e2e_xlmig(NULL,
                                   "-H '%s' sim-create --memory 48M"
                                   " --dirty-rate 1000 --working-set 16M"
                                   " vm%zu >/dev/null",
                                   e2e[0].control, i),
                         0);
    e2e_pool(pool, sizeof(pool));
    snprintf(args, sizeof(args), "%s", pool);

    pid = forkpty(&fd, NULL, NULL, NULL);
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl(lxm_test_xlmig_path(), "xlmig", "host-evacuate", "--pool", args,
              "--batch-size", "1", "--bandwidth", "20", "--no-verify",
              "--xapi-conf", "/nonexistent", "--xapi-conf-dir", "/nonexistent",
              "h0", (char *)NULL);
        _exit(127);
    }
    /* Wait for a VM's bar, then interrupt; read to the end (60 s). */
    for (k = 0; k < 6000; k++) {
        if (!pty_read(fd, out, sizeof(out), &len, 10))
            break;
        if (!sent && vm0_sending(out)) {
            ck_assert_int_eq(kill(pid, SIGINT), 0);
            sent = true;
        }
        if (waitpid(pid, &status, WNOHANG) == pid) {
            while (pty_read(fd, out, sizeof(out), &len, 50) &&
                   len + 1 < sizeof(out) && k++ < 6000)
                ;
            pid = 0;
            break;
        }
    }
    close(fd);
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    ck_assert_msg(sent, "no progress bar on the terminal; output:\n%s", out);
    ck_assert_msg(strstr(out, "\033[1A") != NULL,
                  "bars not redrawn in place; output:\n%s", out);
    ck_assert_msg(strstr(out, "cancelling") != NULL,
                  "no word of the cancel; output:\n%s", out);
    /* The one in flight was cancelled by a "cancel" request, so its
     * report came from the agent: time and bytes on the wire in its
     * table row (a VM found afterwards by asking has none). */
    row = strstr(out, "\nvm0 ");
    ck_assert_msg(row != NULL, "no table row for vm0; output:\n%s", out);
    ck_assert_int_eq(sscanf(row + 1, "vm0 %15s %*s %u %" SCNu64 " %*u %lf", st,
                            &tries, &ms, &wire),
                     4);
    ck_assert_msg(!strcmp(st, "cancelled") && tries == 1 && ms > 0 && wire > 0,
                  "vm0: %s, try %u, %" PRIu64 " ms, %.1f MB: not the"
                  " agent's report of a cancel; output:\n%s",
                  st, tries, ms, wire, out);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 3,
                  "exit status 0x%x (expected exit 3); output:\n%s", status,
                  out);

    /* Nothing lost or doubled; what stayed on h0 still runs there. */
    for (j = 0; j < E2E_AGENTS; j++) {
        l = e2e_list(j);
        doms = lxm__jget(l, "domains");
        placed += e2e_count(l);
        if (j == 0) {
            on_src = e2e_count(l);
            for (i = 0; i < on_src; i++)
                ck_assert_str_eq(lxm__jstr(doms->u.array.values[i], "state"),
                                 "running");
        }
        yajl_tree_free(l);
    }
    ck_assert_uint_eq(placed, TTY_VMS);
    ck_assert_uint_ge(on_src, 1); /* the cancel stopped the rest */
}
END_TEST

/* h1 dies on its first incoming stream: its VMs go to h2 instead. */
START_TEST(test_e2e_evacuate_retry)
{
    yajl_val v, jvms, l;
    size_t i, retried = 0;
    int status;

    e2e_start(0, NULL);
    e2e_start(1, "recv-crash-after=2000000");
    e2e_start(2, NULL);
    v = e2e_evacuate(6, &status);
    ck_assert_int_eq(status, 0);
    jvms = lxm__jget(v, "vms");
    for (i = 0; i < 6; i++) {
        yajl_val e = jvms->u.array.values[i];

        ck_assert_str_eq(lxm__jstr(e, "status"), "migrated");
        ck_assert_str_eq(lxm__jstr(e, "destination"), "h2");
        retried += lxm__jint(e, "attempts", 0) == 2;
    }
    ck_assert_uint_ge(retried, 1);
    l = e2e_list(0);
    ck_assert_uint_eq(e2e_count(l), 0);
    yajl_tree_free(l);
    l = e2e_list(2);
    ck_assert_uint_eq(e2e_count(l), 6);
    yajl_tree_free(l);
    yajl_tree_free(v);
}
END_TEST

Suite *lxm_test_evacuate_sched_suite(void)
{
    Suite *s = suite_create("evacuate_sched");
    TCase *tc = tcase_create("scheduler");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_window);
    tcase_add_test(tc, test_dest_cap);
    tcase_add_test(tc, test_retry_elsewhere);
    tcase_add_test(tc, test_all_fail);
    tcase_add_test(tc, test_no_other_host);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_cancel_midway);
    tcase_add_test(tc, test_cancel_before_run);
    tcase_add_test(tc, test_sequential);
    tcase_add_test(tc, test_bad_plan);
    suite_add_tcase(s, tc);

    tc = tcase_create("e2e");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_e2e_evacuate);
    tcase_add_test(tc, test_e2e_evacuate_retry);
    tcase_add_test(tc, test_e2e_evacuate_tty_sigint);
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
