/*
 * test_gate.c - the stop-and-copy gate (migrate/gate.c) and its use by
 * the sim backend and the migration engine, plus the engine's pipe
 * path (the one the libxl backend takes).
 *
 * Entry point: lxm_test_gate_suite().
 *
 * Cases:
 *   basic       slots 2: try_take/take/take_for/release, a blocked take
 *               woken by a release (stats count it), cancel, bad slots
 *   concurrent  two live migrations of dirtying VMs from one sim host,
 *               one gate slot: both MIGRATED, their downtime windows
 *               (pause seen by the progress callback .. RUNNING) do not
 *               overlap, the gate is free afterwards
 *   fail_save   non-live migration whose connection dies during the
 *               stop-and-copy: FAILED, source resumed, gate free
 *   fail_commit a fake destination answers STREAM_END with FAILED (the
 *               save succeeded, before GO): it checks the gate is held
 *               then; FAILED, source resumed, gate free
 *   pipe_path   a copy of the sim's ops table (no fast path): the
 *               pipe and saver/restorer threads still migrate, digests
 *               compared
 */
#define _GNU_SOURCE /* mkdtemp */
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "migrate/migrate.h"

#define MIB (UINT64_C(1) << 20)
#define NET_TIMEOUT_MS 5000

static lxm__backend_ops pipe_ops; /* a copy: no fast path */
static const lxm__backend_ops *ops = &lxm__backend_sim_ops;

static char top[256];
static lxm__backend *b1, *b2;
static int lfd = -1;
static char addr[128];

static lxm__backend *open_host(const char *name)
{
    lxm__backend_opts bo;
    char dir[PATH_MAX];
    lxm__backend *b = NULL;

    snprintf(dir, sizeof(dir), "%s/%s", top, name);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    memset(&bo, 0, sizeof(bo));
    bo.state_dir = dir;
    bo.sim_hostname = name;
    ck_assert_int_eq(lxm__backend_sim_ops.open(&bo, &b), 0);
    return b;
}

static void setup(void)
{
    snprintf(top, sizeof(top), "/tmp/lxm-test-gate-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(top));
    b1 = open_host("h1");
    b2 = open_host("h2");
    ck_assert_int_eq(
        lxm__conn_listen("127.0.0.1:0", &lfd, addr, sizeof(addr), NULL), 0);
    ops = &lxm__backend_sim_ops;
}

static void teardown(void)
{
    lxm__backend_sim_ops.close(b1);
    lxm__backend_sim_ops.close(b2);
    b1 = b2 = NULL;
    if (lfd >= 0)
        close(lfd);
    lfd = -1;
    lxm_test_rm_rf(top);
}

static uint32_t create_vm(const char *name, uint64_t memory,
                          uint64_t dirty_rate, uint64_t working_set)
{
    lxm__sim_create_params p;
    uint32_t domid = 0;

    lxm__sim_create_params_init(&p);
    p.name = name;
    p.memory_bytes = memory;
    p.dirty_rate = dirty_rate;
    p.working_set = working_set;
    p.seed = 11;
    ck_assert_int_eq(lxm__sim_create(b1, &p, &domid), 0);
    return domid;
}

static lxm__dom_state state_of(lxm__backend *b, const char *name)
{
    lxm__domain_info di;

    ck_assert_int_eq(lxm__backend_sim_ops.domain_info(b, name, &di), 0);
    return di.state;
}

/* ---- the real receiver ---------------------------------------------- */

typedef struct rx {
    pthread_t t;
    lxm__migrate_opts o;
    lxm__migrate_report rep;
    int rc;
    uint64_t kill_at; /* shut the connection after so many bytes */
    lxm__conn *c;
} rx;

static void rx_hook(void *opaque, const char *side, uint64_t bytes)
{
    rx *r = opaque;

    if (!strcmp(side, "receive") && r->kill_at && bytes >= r->kill_at) {
        r->kill_at = 0;
        lxm__conn_shutdown(r->c);
    }
}

static void *rx_main(void *arg)
{
    rx *r = arg;
    yajl_val req = NULL;
    lxm__conn *c = NULL;
    char err[256];

    r->rc = lxm__conn_accept(lfd, NET_TIMEOUT_MS, NULL, &c);
    if (!r->rc)
        r->rc = lxm__proto_hello(c, "peer", "h2", NULL);
    if (!r->rc)
        r->rc = lxm__conn_expect(c, LXM__MSG_MIGRATE, &req, err, sizeof(err));
    if (!r->rc) {
        r->c = c;
        r->rc = lxm__migrate_receive(ops, b2, c, req, &r->o, &r->rep);
    }
    yajl_tree_free(req);
    lxm__conn_free(c);
    return NULL;
}

static void rx_start(rx *r)
{
    memset(r, 0, sizeof(*r));
    lxm__migrate_opts_init(&r->o);
    r->o.timeout_ms = NET_TIMEOUT_MS;
    r->o.host_name = "h2";
    r->o.on_stream_bytes = rx_hook;
    r->o.hook_opaque = r;
    ck_assert_int_eq(pthread_create(&r->t, NULL, rx_main, r), 0);
}

/* ---- the sender ------------------------------------------------------ */

typedef struct tx {
    pthread_t t;
    const char *name;
    lxm__migrate_opts o;
    lxm__migrate_report rep;
    int rc;
    uint64_t paused_ms; /* first progress with suspended set */
} tx;

static void tx_progress(void *opaque, const lxm__migrate_progress *p)
{
    tx *t = opaque;

    if (p->suspended && !t->paused_ms)
        t->paused_ms = lxm__migrate_now_ms();
}

static void tx_opts(tx *t, const char *name, lxm__stopcopy_gate *g)
{
    memset(t, 0, sizeof(*t));
    t->name = name;
    lxm__migrate_opts_init(&t->o);
    t->o.timeout_ms = NET_TIMEOUT_MS;
    t->o.host_name = "h1";
    t->o.save.gate = g;
}

static void *tx_main(void *arg)
{
    tx *t = arg;

    t->rc = lxm__migrate_send(ops, b1, t->name, addr, &t->o, tx_progress, t,
                              &t->rep);
    return NULL;
}

/* ------------------------------------------------------------------ */

typedef struct waiter {
    lxm__stopcopy_gate *g;
    volatile int cancel;
    int rc;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;

    w->rc = lxm__stopcopy_gate_take(w->g, &w->cancel);
    return NULL;
}

START_TEST(test_basic)
{
    lxm__stopcopy_gate *g = NULL;
    uint64_t waits = 9, wait_ms = 9, t0;
    pthread_t t;
    waiter w;

    ck_assert_int_eq(lxm__stopcopy_gate_new(0, &g), LXM_ERROR_INVAL);
    ck_assert_ptr_null(g);
    lxm__stopcopy_gate_free(NULL);
    ck_assert_int_eq(lxm__stopcopy_gate_new(2, &g), 0);
    lxm__stopcopy_gate_stats(g, &waits, &wait_ms);
    ck_assert_uint_eq(waits, 0);
    ck_assert_uint_eq(wait_ms, 0);

    ck_assert(lxm__stopcopy_gate_try_take(g));
    ck_assert_int_eq(lxm__stopcopy_gate_take(g, NULL), 0);
    ck_assert(!lxm__stopcopy_gate_try_take(g));
    ck_assert_int_eq(lxm__stopcopy_gate_take_for(g, NULL, 30),
                     LXM_ERROR_TIMEOUT);
    lxm__stopcopy_gate_release(g);
    ck_assert(lxm__stopcopy_gate_try_take(g));
    ck_assert(!lxm__stopcopy_gate_try_take(g));

    /* A blocked take is woken by a release. */
    memset(&w, 0, sizeof(w));
    w.g = g;
    w.rc = 1;
    ck_assert_int_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    usleep(60 * 1000);
    ck_assert_int_eq(__atomic_load_n(&w.rc, __ATOMIC_SEQ_CST), 1);
    lxm__stopcopy_gate_release(g);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(w.rc, 0);
    lxm__stopcopy_gate_stats(g, &waits, &wait_ms);
    ck_assert_uint_eq(waits, 1);
    ck_assert_uint_ge(wait_ms, 40);
    ck_assert(!lxm__stopcopy_gate_try_take(g));

    /* Cancel wakes a blocked take without taking. */
    w.rc = 1;
    w.cancel = 0;
    ck_assert_int_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    usleep(30 * 1000);
    t0 = lxm__migrate_now_ms();
    __atomic_store_n(&w.cancel, 1, __ATOMIC_SEQ_CST);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(w.rc, LXM_ERROR_ABORTED);
    ck_assert_uint_lt(lxm__migrate_now_ms() - t0, 500);
    /* Cancelled before it starts: no wait at all. */
    ck_assert_int_eq(lxm__stopcopy_gate_take(g, &w.cancel), LXM_ERROR_ABORTED);

    /* Both slots still ours: two releases free both. */
    lxm__stopcopy_gate_release(g);
    lxm__stopcopy_gate_release(g);
    ck_assert(lxm__stopcopy_gate_try_take(g));
    ck_assert(lxm__stopcopy_gate_try_take(g));
    lxm__stopcopy_gate_release(g);
    lxm__stopcopy_gate_release(g);
    lxm__stopcopy_gate_free(g);
}
END_TEST

START_TEST(test_concurrent)
{
    lxm__stopcopy_gate *g = NULL;
    tx a, b;
    rx ra, rb;
    tx *first, *second;

    ck_assert_int_eq(lxm__stopcopy_gate_new(1, &g), 0);
    create_vm("va", 32 * MIB, 3000, 4 * MIB);
    create_vm("vb", 32 * MIB, 3000, 4 * MIB);
    rx_start(&ra);
    rx_start(&rb);
    tx_opts(&a, "va", g);
    tx_opts(&b, "vb", g);
    /* verify: the digests make each stop-and-copy window long enough
     * that two unsynchronised ones would overlap. */
    ck_assert_int_eq(pthread_create(&a.t, NULL, tx_main, &a), 0);
    ck_assert_int_eq(pthread_create(&b.t, NULL, tx_main, &b), 0);
    ck_assert_int_eq(pthread_join(a.t, NULL), 0);
    ck_assert_int_eq(pthread_join(b.t, NULL), 0);
    ck_assert_int_eq(pthread_join(ra.t, NULL), 0);
    ck_assert_int_eq(pthread_join(rb.t, NULL), 0);

    ck_assert_msg(a.rc == 0 && a.rep.status == LXM__MIG_MIGRATED, "va: %d %s",
                  a.rc, a.rep.error);
    ck_assert_msg(b.rc == 0 && b.rep.status == LXM__MIG_MIGRATED, "vb: %d %s",
                  b.rc, b.rep.error);
    ck_assert(a.rep.digest_checked && b.rep.digest_checked);
    ck_assert_uint_ne(a.paused_ms, 0);
    ck_assert_uint_ne(b.paused_ms, 0);
    ck_assert_int_eq(state_of(b2, "va"), LXM__DOM_RUNNING);
    ck_assert_int_eq(state_of(b2, "vb"), LXM__DOM_RUNNING);

    /* [paused, paused + downtime] lies within the gate's hold (the
     * downtime ends just before the release; ms rounding: 1 ms). */
    first = a.paused_ms <= b.paused_ms ? &a : &b;
    second = first == &a ? &b : &a;
    ck_assert_msg(second->paused_ms + 1 >=
                      first->paused_ms + first->rep.downtime_ms,
                  "downtime windows overlap: %s paused at %" PRIu64
                  " for %" PRIu64 " ms, %s paused at %" PRIu64,
                  first->name, first->paused_ms, first->rep.downtime_ms,
                  second->name, second->paused_ms);
    ck_assert(lxm__stopcopy_gate_try_take(g));
    lxm__stopcopy_gate_release(g);
    lxm__stopcopy_gate_free(g);
}
END_TEST

START_TEST(test_fail_save)
{
    lxm__stopcopy_gate *g = NULL;
    tx a;
    rx r;

    ck_assert_int_eq(lxm__stopcopy_gate_new(1, &g), 0);
    create_vm("vf", 16 * MIB, 0, 0);
    rx_start(&r);
    r.kill_at = 2 * MIB;
    tx_opts(&a, "vf", g);
    a.o.save.live = false; /* the gate is taken before any page */
    tx_main(&a);
    ck_assert_int_eq(pthread_join(r.t, NULL), 0);
    ck_assert_int_ne(a.rc, 0);
    ck_assert_int_eq(a.rep.status, LXM__MIG_FAILED);
    ck_assert(a.rep.source_resumed);
    ck_assert_uint_ne(a.paused_ms, 0); /* it did stop the guest */
    ck_assert_int_eq(state_of(b1, "vf"), LXM__DOM_RUNNING);
    ck_assert(lxm__stopcopy_gate_try_take(g));
    lxm__stopcopy_gate_release(g);
    lxm__stopcopy_gate_free(g);
}
END_TEST

/* A destination that takes the whole stream, checks that the source
 * holds the gate, then answers FAILED instead of READY. */
typedef struct fake {
    pthread_t t;
    lxm__stopcopy_gate *g;
    bool gate_was_held;
    int rc;
} fake;

static void *fake_main(void *arg)
{
    fake *f = arg;
    lxm__conn *c = NULL;
    lxm__frame fr;
    char err[256];

    f->rc = lxm__conn_accept(lfd, NET_TIMEOUT_MS, NULL, &c);
    if (!f->rc)
        f->rc = lxm__proto_hello(c, "peer", "fake", NULL);
    if (!f->rc)
        f->rc = lxm__conn_expect(c, LXM__MSG_MIGRATE, NULL, err, sizeof(err));
    if (!f->rc)
        f->rc = lxm__conn_send_json(c, LXM__MSG_ACCEPT, lxm__json_new());
    while (!f->rc) {
        f->rc = lxm__conn_recv(c, &fr);
        if (f->rc || fr.type == LXM__MSG_STREAM_END)
            break;
    }
    if (!f->rc) {
        f->gate_was_held = !lxm__stopcopy_gate_try_take(f->g);
        if (!f->gate_was_held)
            lxm__stopcopy_gate_release(f->g);
        f->rc = lxm__conn_send_error(c, LXM__MSG_FAILED, LXM_ERROR_FAIL,
                                     "fake: no thanks");
        /* Wait for the sender to hang up. */
        lxm__conn_recv(c, &fr);
    }
    lxm__conn_free(c);
    return NULL;
}

START_TEST(test_fail_commit)
{
    lxm__stopcopy_gate *g = NULL;
    fake f;
    tx a;

    ck_assert_int_eq(lxm__stopcopy_gate_new(1, &g), 0);
    create_vm("vc", 16 * MIB, 0, 0);
    memset(&f, 0, sizeof(f));
    f.g = g;
    ck_assert_int_eq(pthread_create(&f.t, NULL, fake_main, &f), 0);
    tx_opts(&a, "vc", g);
    tx_main(&a);
    ck_assert_int_eq(pthread_join(f.t, NULL), 0);
    ck_assert_int_eq(f.rc, 0);
    ck_assert_msg(f.gate_was_held, "the source did not hold the gate");
    ck_assert_int_ne(a.rc, 0);
    ck_assert_int_eq(a.rep.status, LXM__MIG_FAILED);
    ck_assert(a.rep.source_resumed);
    ck_assert_ptr_nonnull(strstr(a.rep.error, "no thanks"));
    ck_assert_int_eq(state_of(b1, "vc"), LXM__DOM_RUNNING);
    ck_assert(lxm__stopcopy_gate_try_take(g));
    lxm__stopcopy_gate_release(g);
    lxm__stopcopy_gate_free(g);
}
END_TEST

START_TEST(test_pipe_path)
{
    lxm__stopcopy_gate *g = NULL;
    tx a;
    rx r;

    pipe_ops = lxm__backend_sim_ops;
    ops = &pipe_ops;
    ck_assert_ptr_null(lxm__backend_fastpath_of(ops));
    ck_assert_ptr_nonnull(lxm__backend_fastpath_of(&lxm__backend_sim_ops));
    ck_assert_int_eq(lxm__stopcopy_gate_new(1, &g), 0);
    create_vm("vp", 16 * MIB, 2000, 2 * MIB);
    rx_start(&r);
    tx_opts(&a, "vp", g);
    tx_main(&a);
    ck_assert_int_eq(pthread_join(r.t, NULL), 0);
    ck_assert_msg(a.rc == 0, "pipe path: %s", a.rep.error);
    ck_assert(a.rep.digest_checked);
    ck_assert_uint_ge(a.rep.rounds, 2);
    ck_assert_int_eq(state_of(b2, "vp"), LXM__DOM_RUNNING);
    ck_assert(lxm__stopcopy_gate_try_take(g));
    lxm__stopcopy_gate_release(g);
    lxm__stopcopy_gate_free(g);
}
END_TEST

Suite *lxm_test_gate_suite(void)
{
    Suite *s = suite_create("gate");
    TCase *tc;

    tc = tcase_create("basic");
    tcase_add_test(tc, test_basic);
    suite_add_tcase(s, tc);

    tc = tcase_create("migrations");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_concurrent);
    tcase_add_test(tc, test_fail_save);
    tcase_add_test(tc, test_fail_commit);
    tcase_add_test(tc, test_pipe_path);
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
