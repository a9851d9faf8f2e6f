/*
 * test_migrate.c - the migration engine end to end (libxlmig/migrate/):
 * two sim hosts in one process, h1 and h2 (two state dirs), a TCP
 * loopback listener on port 0 and a receiver thread that does what
 * xlmigd's peer listener does (accept, HELLO, MIGRATE frame,
 * lxm__migrate_receive()).
 *
 * Entry point: lxm_test_migrate_suite().
 *
 * Cases (each ends by checking where the VM runs and that nothing is
 * left behind on the other host):
 *   live        a dirtying workload: MIGRATED, gone from h1, RUNNING on
 *               h2 under its name, digests compared, >= 2 rounds,
 *               downtime measured, progress seen, both reports agree
 *   nonlive     non-live of an idle VM: h2's memory equals h1's (digests
 *               taken independently of the engine); bandwidth cap paces
 *   refused     name exists on h2, not enough memory on h2 (MiB figures
 *               in the message), nomigrate, PCI, not running, nobody
 *               listening: REFUSED, VM RUNNING on h1, nothing new on h2
 *   faults      h2's connection dies mid-stream; h2's restore fails
 *               late (a decoy takes the name before GO, so h2 fails
 *               after GO); cancel mid-stream: VM RUNNING on h1 only
 *   malformed   a fake sender's stream with a corrupted PAGE_DATA count:
 *               h2 rejects it with the offset, nothing reaches the
 *               backend's domain list; the fake hears FAILED
 *   fakepeer    a fake receiver: lost after GO -> UNKNOWN, source kept
 *               suspended as NAME--migratedaway; a wrong digest in READY
 *               -> FAILED, source resumed; FAILED after GO -> resumed
 *
 * SIGPIPE is left at its default on purpose: the engine must never
 * raise it (a pipe whose other side gave up is EPIPE, not a signal).
 * Set LXM_TEST_VERBOSE=1 to see the engine's log on stderr.
 */
#define _GNU_SOURCE /* mkdtemp */
#include <errno.h>
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

static const lxm__backend_ops *const ops = &lxm__backend_sim_ops;

/* ------------------------------------------------------------------ */
/* Fixture: two sim hosts and a listener                               */
/* ------------------------------------------------------------------ */

typedef struct host {
    char name[16];
    char dir[PATH_MAX];
    lxm__backend *b;
} host;

static char top[256];
static host h1, h2;
static int lfd = -1;
static char addr[128];
static xentoollog_logger *lg;

static void open_host(host *h, const char *name, uint64_t memory)
{
    lxm__backend_opts bo;
    int rc;

    snprintf(h->name, sizeof(h->name), "%s", name);
    snprintf(h->dir, sizeof(h->dir), "%s/%s", top, name);
    ck_assert_int_eq(mkdir(h->dir, 0700), 0);
    memset(&bo, 0, sizeof(bo));
    bo.state_dir = h->dir;
    bo.logger = lg;
    bo.sim_host_memory = memory;
    bo.sim_hostname = name;
    rc = ops->open(&bo, &h->b);
    ck_assert_msg(rc == 0, "open sim %s: %s", name, lxm_strerror(rc));
}

/* h2's memory can be set per case: reopen it. */
static void reopen_h2(uint64_t memory)
{
    char cmd[PATH_MAX + 16];

    ops->close(h2.b);
    h2.b = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h2.dir);
    ck_assert_int_eq(system(cmd), 0);
    open_host(&h2, "h2", memory);
}

static void setup(void)
{
    const char *v = getenv("LXM_TEST_VERBOSE");
    int rc;

    lg = NULL;
    if (v && *v && *v != '0')
        lg = (xentoollog_logger *)xtl_createlogger_stdiostream(stderr,
                                                               XTL_DEBUG, 0);
    snprintf(top, sizeof(top), "/tmp/lxm-test-migrate-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(top));
    open_host(&h1, "h1", 0);
    open_host(&h2, "h2", 0);
    rc = lxm__conn_listen("127.0.0.1:0", &lfd, addr, sizeof(addr), lg);
    ck_assert_msg(rc == 0, "listen: %s", lxm_strerror(rc));
}

static void teardown(void)
{
    char cmd[PATH_MAX + 16];

    ops->close(h1.b);
    ops->close(h2.b);
    h1.b = h2.b = NULL;
    if (lfd >= 0)
        close(lfd);
    lfd = -1;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
    if (system(cmd))
        fprintf(stderr, "cannot remove %s\n", top);
    if (lg)
        xtl_logger_destroy(lg);
    lg = NULL;
}

/* ---- domains ------------------------------------------------------- */

static uint32_t create_vm(host *h, const char *name, uint64_t memory,
                          uint64_t dirty_rate, uint64_t working_set)
{
    lxm__sim_create_params p;
    uint32_t domid;
    int rc;

    lxm__sim_create_params_init(&p);
    p.name = name;
    p.memory_bytes = memory;
    p.vcpus = 2;
    p.kind = LXM__GUEST_HVM;
    p.dirty_rate = dirty_rate;
    p.working_set = working_set;
    p.seed = 42;
    rc = lxm__sim_create(h->b, &p, &domid);
    ck_assert_msg(rc == 0, "sim_create %s on %s: %s", name, h->name,
                  lxm_strerror(rc));
    return domid;
}

/* The domain's state, or -1 when h has none of that name. */
static int dom_state(host *h, const char *name)
{
    lxm__domain_info di;

    if (ops->domain_info(h->b, name, &di))
        return -1;
    return (int)di.state;
}

static int nr_domains(host *h)
{
    lxm__domain_info *list = NULL;
    int n = -1, rc;

    rc = ops->list(h->b, &list, &n);
    ck_assert_int_eq(rc, 0);
    free(list);
    return n;
}

/* The VM runs on h1 only, as before, and h2 holds exactly what it held
 * before (nothing of the VM, no NAME--incoming). */
static void assert_on_source_only(const char *name, int h2_domains)
{
    char incoming[LXM__NAME_MAX], away[LXM__NAME_MAX];

    snprintf(incoming, sizeof(incoming), "%s--incoming", name);
    snprintf(away, sizeof(away), "%s--migratedaway", name);
    ck_assert_int_eq(dom_state(&h1, name), LXM__DOM_RUNNING);
    ck_assert_int_eq(dom_state(&h1, away), -1);
    ck_assert_int_eq(dom_state(&h2, incoming), -1);
    ck_assert_int_eq(nr_domains(&h2), h2_domains);
}

static void digest_paused(host *h, const char *name, uint8_t d[16])
{
    lxm__domain_info di;

    ck_assert_int_eq(ops->domain_info(h->b, name, &di), 0);
    ck_assert_int_eq(ops->pause(h->b, di.domid), 0);
    ck_assert_int_eq(ops->memory_digest(h->b, di.domid, d), 0);
    ck_assert_int_eq(ops->unpause(h->b, di.domid), 0);
}

/* ------------------------------------------------------------------ */
/* The receiver thread (what xlmigd's peer listener does)              */
/* ------------------------------------------------------------------ */

typedef struct receiver {
    pthread_t t;
    lxm__backend *b;
    lxm__migrate_opts o;
    lxm__migrate_report rep;
    int rc;
    bool served;  /* lxm__migrate_receive() ran */
    lxm__conn *c; /* for the hook */
    /* hook actions */
    uint64_t kill_at;  /* shut the connection down after this
                                  * many stream bytes (0: never) */
    const char *decoy; /* create a domain of this name on h2
                                  * once the stream flows */
    bool hooked;
} receiver;

static void rx_hook(void *opaque, const char *side, uint64_t bytes)
{
    receiver *r = opaque;

    ck_assert_str_eq(side, "receive");
    if (r->hooked)
        return;
    if (r->kill_at && bytes >= r->kill_at) {
        r->hooked = true;
        lxm__conn_shutdown(r->c);
    }
    if (r->decoy) {
        r->hooked = true;
        create_vm(&h2, r->decoy, 4 * MIB, 0, 0);
    }
}

static void *receiver_main(void *arg)
{
    receiver *r = arg;
    yajl_val req = NULL;
    lxm__conn *c = NULL;
    char err[256];

    r->rc = lxm__conn_accept(lfd, NET_TIMEOUT_MS, lg, &c);
    if (r->rc)
        return NULL;
    r->rc = lxm__proto_hello(c, "peer", "h2", NULL);
    if (!r->rc)
        r->rc = lxm__conn_expect(c, LXM__MSG_MIGRATE, &req, err, sizeof(err));
    if (!r->rc) {
        r->c = c;
        r->rc = lxm__migrate_receive(ops, r->b, c, req, &r->o, &r->rep);
        r->served = true;
    }
    yajl_tree_free(req);
    lxm__conn_free(c);
    return NULL;
}

static void receiver_start(receiver *r)
{
    memset(r, 0, sizeof(*r));
    r->b = h2.b;
    lxm__migrate_opts_init(&r->o);
    r->o.timeout_ms = NET_TIMEOUT_MS;
    r->o.host_name = "h2";
    r->o.logger = lg;
    r->o.on_stream_bytes = rx_hook;
    r->o.hook_opaque = r;
}

static void receiver_go(receiver *r)
{
    ck_assert_int_eq(pthread_create(&r->t, NULL, receiver_main, r), 0);
}

static void receiver_join(receiver *r)
{
    ck_assert_int_eq(pthread_join(r->t, NULL), 0);
}

/* ---- the sender ---------------------------------------------------- */

typedef struct progress_log {
    int calls;
    uint32_t max_round;
    bool saw_suspended;
    uint64_t last_bytes;
    bool bytes_monotonic;
} progress_log;

static void on_progress(void *opaque, const lxm__migrate_progress *p)
{
    progress_log *pl = opaque;

    if (!pl->calls)
        pl->bytes_monotonic = true;
    pl->calls++;
    if (p->round > pl->max_round)
        pl->max_round = p->round;
    if (p->suspended)
        pl->saw_suspended = true;
    if (p->bytes_wire < pl->last_bytes)
        pl->bytes_monotonic = false;
    pl->last_bytes = p->bytes_wire;
}

static void sender_opts(lxm__migrate_opts *o)
{
    lxm__migrate_opts_init(o);
    o->timeout_ms = NET_TIMEOUT_MS;
    o->host_name = "h1";
    o->logger = lg;
}

static void print_report(const char *what, const lxm__migrate_report *r)
{
    if (!lg)
        return;
    fprintf(stderr,
            "%s: %s rc=%d '%s' total=%" PRIu64 "ms down=%" PRIu64
            "ms rounds=%u pages=%" PRIu64 " stream=%" PRIu64 " wire=%" PRIu64
            "\n",
            what, lxm__migrate_status_name(r->status), r->rc, r->error,
            r->total_ms, r->downtime_ms, r->rounds, r->pages_sent,
            r->bytes_stream, r->bytes_wire);
}

/* ------------------------------------------------------------------ */
/* live, nonlive                                                       */
/* ------------------------------------------------------------------ */

START_TEST(test_live)
{
    lxm__migrate_report rep;
    lxm__migrate_opts o;
    lxm__domain_info di;
    progress_log pl;
    receiver rx;
    yajl_gen g;
    const unsigned char *json;
    size_t len;
    int rc;

    create_vm(&h1, "web", 16 * MIB, 20000, 4 * MIB);
    receiver_start(&rx);
    receiver_go(&rx);

    sender_opts(&o);
    o.save.live = true;
    o.save.policy = LXM__PRECOPY_XEN;
    memset(&pl, 0, sizeof(pl));
    rc = lxm__migrate_send(ops, h1.b, "web", addr, &o, on_progress, &pl, &rep);
    receiver_join(&rx);
    print_report("live send", &rep);
    print_report("live recv", &rx.rep);

    ck_assert_msg(rc == 0, "migrate: %s", rep.error);
    ck_assert_int_eq(rep.status, LXM__MIG_MIGRATED);
    ck_assert_int_eq(rep.rc, 0);
    ck_assert_str_eq(rep.error, "");
    ck_assert_str_eq(rep.name, "web");
    ck_assert_str_eq(rep.source, "h1");
    ck_assert_str_eq(rep.destination, "h2");
    ck_assert(rep.digest_checked);
    ck_assert(!rep.source_resumed);
    ck_assert_uint_ge(rep.rounds, 2);
    ck_assert_uint_ge(rep.pages_sent, 16 * MIB / LXM_PAGE_SIZE);
    ck_assert_uint_gt(rep.bytes_stream, 0);
    ck_assert_uint_gt(rep.bytes_wire, rep.bytes_stream);
    ck_assert_uint_lt(rep.downtime_ms, rep.total_ms);

    /* Progress: rounds, the suspended mark, growing byte counts. */
    ck_assert_int_gt(pl.calls, 0);
    ck_assert_uint_ge(pl.max_round, 2);
    ck_assert(pl.saw_suspended);
    ck_assert(pl.bytes_monotonic);

    /* The receiver saw the same stream. */
    ck_assert_int_eq(rx.rc, 0);
    ck_assert_int_eq(rx.rep.status, LXM__MIG_MIGRATED);
    ck_assert_uint_eq(rx.rep.bytes_stream, rep.bytes_stream);
    ck_assert_uint_eq(rx.rep.pages_sent, rep.pages_sent);
    ck_assert_str_eq(rx.rep.source, "h1");
    ck_assert_str_eq(rx.rep.destination, "h2");
    ck_assert_uint_eq(rx.rep.dest_domid, rep.dest_domid);

    /* The VM runs in exactly one place, under its own name. */
    ck_assert_int_eq(dom_state(&h1, "web"), -1);
    ck_assert_int_eq(dom_state(&h1, "web--migratedaway"), -1);
    ck_assert_int_eq(nr_domains(&h1), 0);
    ck_assert_int_eq(dom_state(&h2, "web"), LXM__DOM_RUNNING);
    ck_assert_int_eq(dom_state(&h2, "web--incoming"), -1);
    ck_assert_int_eq(nr_domains(&h2), 1);
    ck_assert_int_eq(ops->domain_info(h2.b, "web", &di), 0);
    ck_assert_uint_eq(di.domid, rep.dest_domid);
    ck_assert_uint_eq(di.memory_bytes, 16 * MIB);

    /* The JSON report carries the names scripts depend on. */
    g = lxm__json_new();
    lxm__migrate_report_json(&rep, g);
    ck_assert_int_eq(yajl_gen_map_close(g), yajl_gen_status_ok);
    ck_assert_int_eq(yajl_gen_get_buf(g, &json, &len), yajl_gen_status_ok);
    ck_assert_ptr_nonnull(
        strstr((const char *)json, "\"status\":\"migrated\""));
    ck_assert_ptr_nonnull(strstr((const char *)json, "\"total_ms\":"));
    ck_assert_ptr_nonnull(strstr((const char *)json, "\"downtime_ms\":"));
    ck_assert_ptr_nonnull(strstr((const char *)json, "\"rounds\":"));
    ck_assert_ptr_nonnull(strstr((const char *)json, "\"bytes_wire\":"));
    yajl_gen_free(g);
}
END_TEST

START_TEST(test_nonlive)
{
    uint8_t before[16], after[16];
    lxm__migrate_report rep;
    lxm__migrate_opts o;
    receiver rx;
    int rc;

    create_vm(&h1, "db", 8 * MIB, 0, 0);
    digest_paused(&h1, "db", before);
    receiver_start(&rx);
    receiver_go(&rx);

    sender_opts(&o);
    o.save.live = false;
    rc = lxm__migrate_send(ops, h1.b, "db", addr, &o, NULL, NULL, &rep);
    receiver_join(&rx);
    print_report("nonlive", &rep);

    ck_assert_msg(rc == 0, "migrate: %s", rep.error);
    ck_assert_int_eq(rep.status, LXM__MIG_MIGRATED);
    ck_assert(rep.digest_checked);
    ck_assert_uint_ge(rep.rounds, 1);
    ck_assert_uint_le(rep.downtime_ms, rep.total_ms);
    ck_assert_int_eq(nr_domains(&h1), 0);
    ck_assert_int_eq(dom_state(&h2, "db"), LXM__DOM_RUNNING);

    /* Nothing lost, checked outside the engine: an idle VM's memory on
     * h2 equals what h1 had. */
    digest_paused(&h2, "db", after);
    ck_assert_mem_eq(before, after, sizeof(before));
}
END_TEST

START_TEST(test_bandwidth)
{
    lxm__migrate_report rep;
    lxm__migrate_opts o;
    receiver rx;
    uint64_t floor_ms;
    int rc;

    create_vm(&h1, "slow", 4 * MIB, 0, 0);
    receiver_start(&rx);
    receiver_go(&rx);

    sender_opts(&o);
    o.save.live = false;
    o.bandwidth = 2 * MIB; /* bytes/s: well under the 4 MiB guest */
    rc = lxm__migrate_send(ops, h1.b, "slow", addr, &o, NULL, NULL, &rep);
    receiver_join(&rx);
    print_report("bandwidth", &rep);

    ck_assert_msg(rc == 0, "migrate: %s", rep.error);
    /* The token bucket may start with a burst of up to a second's
     * worth; beyond it, the cap holds. */
    floor_ms = rep.bytes_stream > o.bandwidth
                   ? (rep.bytes_stream - o.bandwidth) * 1000 / o.bandwidth
                   : 0;
    ck_assert_uint_ge(floor_ms, 500); /* the cap really was in the way */
    ck_assert_uint_ge(rep.total_ms + 20, floor_ms * 8 / 10);
    /* Non-live: the VM is paused from the first page to RUNNING, so the
     * whole capped transfer is downtime (a bound that load cannot
     * break, unlike a ratio to the total). */
    ck_assert_uint_ge(rep.downtime_ms + 20, floor_ms * 8 / 10);
    ck_assert_uint_le(rep.downtime_ms, rep.total_ms);
    ck_assert_int_eq(dom_state(&h2, "slow"), LXM__DOM_RUNNING);
}
END_TEST

/* ------------------------------------------------------------------ */
/* refused                                                             */
/* ------------------------------------------------------------------ */

/* To the same host, as xl allows: the receiver sees the source copy
 * under the VM's name (same uuid) and must not refuse; afterwards one
 * copy remains, running, under its own name. */
START_TEST(test_same_host)
{
    lxm__migrate_report rep;
    lxm__migrate_opts o;
    receiver rx;
    int rc;

    create_vm(&h1, "loop", 4 * MIB, 500, 0);
    receiver_start(&rx);
    rx.b = h1.b;
    receiver_go(&rx);

    sender_opts(&o);
    rc = lxm__migrate_send(ops, h1.b, "loop", addr, &o, NULL, NULL, &rep);
    receiver_join(&rx);
    print_report("same host", &rep);

    ck_assert_msg(rc == 0, "migrate: %s", rep.error);
    ck_assert_int_eq(rep.status, LXM__MIG_MIGRATED);
    ck_assert(rep.digest_checked);
    ck_assert_int_eq(nr_domains(&h1), 1);
    ck_assert_int_eq(dom_state(&h1, "loop"), LXM__DOM_RUNNING);
}
END_TEST

START_TEST(test_refused_exists)
{
    lxm__migrate_report rep;
    lxm__migrate_opts o;
    receiver rx;
    int rc;

    create_vm(&h1, "app", 4 * MIB, 1000, 0);
    create_vm(&h2, "app", 4 * MIB, 0, 0);
    receiver_start(&rx);
    receiver_go(&rx);

    sender_opts(&o);
    rc = lxm__migrate_send(ops, h1.b, "app", addr, &o, NULL, NULL, &rep);
    receiver_join(&rx);
    print_report("exists", &rep);

    ck_assert_int_eq(rc, LXM_ERROR_EXISTS);
    ck_assert_int_eq(rep.status, LXM__MIG_REFUSED);
    ck_assert_int_eq(rep.rc, LXM_ERROR_EXISTS);
    ck_assert_msg(strstr(rep.error, "destination h2 refused: ") == rep.error,
                  "%s", rep.error);
    ck_assert_ptr_nonnull(strstr(rep.error, "already exists"));
    ck_assert_uint_eq(rep.bytes_stream, 0);
    ck_assert_int_eq(rx.rep.status, LXM__MIG_REFUSED);
    assert_on_source_only("app", 1);
}
END_TEST

START_TEST(test_refused_memory)
{
    lxm__migrate_report rep;
    lxm__migrate_opts o;
    receiver rx;
    int rc;

    reopen_h2(12 * MIB);
    create_vm(&h2, "other", 4 * MIB, 0, 0); /* 8 MiB left */
    create_vm(&h1, "big", 16 * MIB, 1000, 0);
    receiver_start(&rx);
    receiver_go(&rx);

    sender_opts(&o);
    rc = lxm__migrate_send(ops, h1.b, "big", addr, &o, NULL, NULL, &rep);
    receiver_join(&rx);
    print_report("nospace", &rep);

    ck_assert_int_eq(rc, LXM_ERROR_NOSPACE);
    ck_assert_int_eq(rep.status, LXM__MIG_REFUSED);
    ck_assert_str_eq(rep.error, "destination h2 refused: not enough memory"
                                " (needs 16 MiB, 8 MiB free)");
    assert_on_source_only("big", 1);
}
END_TEST

START_TEST(test_refused_local)
{
    lxm__sim_create_params p;
    lxm__migrate_report rep;
    lxm__migrate_opts o;
    lxm__domain_info di;
    uint32_t domid;
    int rc;

    /* Nobody accepts on lfd: these never reach the network. */
    lxm__sim_create_params_init(&p);
    p.name = "pinned";
    p.memory_bytes = 4 * MIB;
    p.nomigrate = true;
    ck_assert_int_eq(lxm__sim_create(h1.b, &p, &domid), 0);
    p.name = "gpu";
    p.nomigrate = false;
    p.nr_pci = 1;
    ck_assert_int_eq(lxm__sim_create(h1.b, &p, &domid), 0);
    p.name = "usb";
    p.nr_pci = 0;
    p.nr_vusb = 2;
    ck_assert_int_eq(lxm__sim_create(h1.b, &p, &domid), 0);
    p.name = "stopped";
    p.nr_vusb = 0;
    ck_assert_int_eq(lxm__sim_create(h1.b, &p, &domid), 0);
    ck_assert_int_eq(ops->pause(h1.b, domid), 0);

    sender_opts(&o);
    rc = lxm__migrate_send(ops, h1.b, "pinned", addr, &o, NULL, NULL, &rep);
    ck_assert_int_eq(rc, LXM_ERROR_REFUSED);
    ck_assert_int_eq(rep.status, LXM__MIG_REFUSED);
    ck_assert_ptr_nonnull(strstr(rep.error, "nomigrate"));
    ck_assert_uint_eq(rep.bytes_wire, 0);

    rc = lxm__migrate_send(ops, h1.b, "gpu", addr, &o, NULL, NULL, &rep);
    ck_assert_int_eq(rc, LXM_ERROR_REFUSED);
    ck_assert_ptr_nonnull(strstr(rep.error, "1 PCI passthrough"));

    rc = lxm__migrate_send(ops, h1.b, "usb", addr, &o, NULL, NULL, &rep);
    ck_assert_int_eq(rc, LXM_ERROR_REFUSED);
    ck_assert_ptr_nonnull(strstr(rep.error, "2 virtual USB"));

    rc = lxm__migrate_send(ops, h1.b, "stopped", addr, &o, NULL, NULL, &rep);
    ck_assert_int_eq(rc, LXM_ERROR_STATE);
    ck_assert_int_eq(rep.status, LXM__MIG_REFUSED);
    ck_assert_ptr_nonnull(strstr(rep.error, "not running"));

    rc = lxm__migrate_send(ops, h1.b, "nosuch", addr, &o, NULL, NULL, &rep);
    ck_assert_int_eq(rc, LXM_ERROR_NOTFOUND);
    ck_assert_int_eq(rep.status, LXM__MIG_REFUSED);

    /* A destination that is not there. */
    close(lfd);
    lfd = -1;
    rc = lxm__migrate_send(ops, h1.b, "usb", addr, &o, NULL, NULL, &rep);
    ck_assert_int_eq(rep.status, LXM__MIG_REFUSED);
    rc = lxm__migrate_send(ops, h1.b, "stopped", addr, &o, NULL, NULL, &rep);
    ck_assert_int_eq(rc, LXM_ERROR_STATE);
    p.name = "free";
    p.nr_vusb = 0;
    ck_assert_int_eq(lxm__sim_create(h1.b, &p, &domid), 0);
    rc = lxm__migrate_send(ops, h1.b, "free", addr, &o, NULL, NULL, &rep);
    ck_assert_int_eq(rc, LXM_ERROR_CONNECT);
    ck_assert_int_eq(rep.status, LXM__MIG_REFUSED);
    ck_assert_ptr_nonnull(strstr(rep.error, addr));

    ck_assert_int_eq(ops->domain_info(h1.b, "free", &di), 0);
    ck_assert_int_eq(di.state, LXM__DOM_RUNNING);
    ck_assert_int_eq(dom_state(&h1, "pinned"), LXM__DOM_RUNNING);
    ck_assert_int_eq(dom_state(&h1, "gpu"), LXM__DOM_RUNNING);
    ck_assert_int_eq(dom_state(&h1, "usb"), LXM__DOM_RUNNING);
    ck_assert_int_eq(dom_state(&h1, "stopped"), LXM__DOM_PAUSED);
    ck_assert_int_eq(nr_domains(&h2), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* faults                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_receiver_dies)
{
    lxm__migrate_report rep;
    lxm__migrate_opts o;
    receiver rx;
    int rc;

    create_vm(&h1, "vm", 16 * MIB, 5000, 2 * MIB);
    receiver_start(&rx);
    rx.kill_at = 3 * MIB;
    receiver_go(&rx);

    sender_opts(&o);
    o.save.live = true;
    rc = lxm__migrate_send(ops, h1.b, "vm", addr, &o, NULL, NULL, &rep);
    receiver_join(&rx);
    print_report("receiver dies", &rep);
    print_report("receiver dies (rx)", &rx.rep);

    ck_assert_int_ne(rc, 0);
    ck_assert_int_eq(rep.status, LXM__MIG_FAILED);
    ck_assert(rep.source_resumed);
    ck_assert_msg(strstr(rep.error, "h2"), "%s", rep.error);
    /* Noticed at once, not after a network timeout: a sender blocked on
     * a full window still sees the receiver go. */
    ck_assert_uint_lt(rep.total_ms, NET_TIMEOUT_MS / 2);
    ck_assert(rx.served);
    ck_assert_int_eq(rx.rep.status, LXM__MIG_FAILED);
    ck_assert_ptr_nonnull(strstr(rx.rep.error, "connection"));
    assert_on_source_only("vm", 0);
}
END_TEST

START_TEST(test_failed_after_go)
{
    lxm__migrate_report rep;
    lxm__migrate_opts o;
    receiver rx;
    int rc;

    /* A domain named like the VM appears on h2 after the pre-checks:
     * h2's rename at GO fails, it destroys its copy, says FAILED, and
     * h1 renames back and resumes. */
    create_vm(&h1, "vm", 8 * MIB, 2000, 0);
    receiver_start(&rx);
    rx.decoy = "vm";
    receiver_go(&rx);

    sender_opts(&o);
    o.save.live = true;
    rc = lxm__migrate_send(ops, h1.b, "vm", addr, &o, NULL, NULL, &rep);
    receiver_join(&rx);
    print_report("failed after go", &rep);

    ck_assert_int_ne(rc, 0);
    ck_assert_int_eq(rep.status, LXM__MIG_FAILED);
    ck_assert(rep.source_resumed);
    ck_assert_msg(strstr(rep.error, "destination h2 failed to start vm"), "%s",
                  rep.error);
    ck_assert_int_eq(rx.rep.status, LXM__MIG_FAILED);
    /* h2 holds the decoy only. */
    assert_on_source_only("vm", 1);
}
END_TEST

static void cancel_hook(void *opaque, const char *side, uint64_t bytes)
{
    lxm__migrate_cancel *cancel = opaque;

    ck_assert_str_eq(side, "send");
    if (bytes >= 2 * MIB)
        __atomic_store_n(&cancel->requested, 1, __ATOMIC_RELAXED);
}

START_TEST(test_cancel)
{
    lxm__migrate_cancel cancel = { 0 };
    lxm__migrate_report rep;
    lxm__migrate_opts o;
    receiver rx;
    int rc;

    create_vm(&h1, "vm", 16 * MIB, 5000, 2 * MIB);
    receiver_start(&rx);
    receiver_go(&rx);

    sender_opts(&o);
    o.save.live = true;
    o.cancel = &cancel;
    o.on_stream_bytes = cancel_hook;
    o.hook_opaque = &cancel;
    rc = lxm__migrate_send(ops, h1.b, "vm", addr, &o, NULL, NULL, &rep);
    receiver_join(&rx);
    print_report("cancel", &rep);

    ck_assert_int_ne(rc, 0);
    ck_assert_int_eq(rep.status, LXM__MIG_CANCELLED);
    ck_assert(rep.source_resumed);
    ck_assert_ptr_nonnull(strstr(rep.error, "cancel"));
    ck_assert_int_eq(rx.rep.status, LXM__MIG_FAILED);
    assert_on_source_only("vm", 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* malformed: a fake sender                                            */
/* ------------------------------------------------------------------ */

/* The last PAGE_DATA record's offset: corrupting it lets most of the
 * stream reach the backend's restore first. */
typedef struct last_page_data {
    uint64_t offset;
    bool found;
} last_page_data;

static int find_page_data(void *opaque, const lxm_stream_event *ev)
{
    last_page_data *f = opaque;

    if (ev->kind == LXM_EV_RECORD && ev->layer == LXM_LAYER_LIBXC &&
        ev->u.record.type == LXM_LIBXC_PAGE_DATA) {
        f->offset = ev->offset;
        f->found = true;
    }
    return 0;
}

START_TEST(test_malformed)
{
    lxm__synth_opts so = { .guest_type = LXM_GUEST_X86_PV,
                           .memory_bytes = 2 * MIB,
                           .rounds = 1,
                           .vcpus = 1,
                           .seed = 7,
                           .name = "evil" };
    lxm_test_buf buf = { 0 };
    last_page_data fpd = { 0 };
    char err[512], expect_off[64];
    receiver rx;
    lxm__conn *c = NULL;
    yajl_gen g;
    size_t off, n;
    int rc;

    lxm_test_synth(&so, LXM_FORMAT_XL, &buf);
    ck_assert_int_eq(lxm_test_read_buf(buf.data, buf.len, LXM_FORMAT_XL, 0, 0,
                                       find_page_data, &fpd, NULL),
                     0);
    ck_assert(fpd.found);
    /* PAGE_DATA body: count (u32), reserved (u32), after the 8-byte
     * record header. */
    lxm__put_le32(buf.data + fpd.offset + 8, 2000);
    snprintf(expect_off, sizeof(expect_off), "offset %" PRIu64, fpd.offset + 8);

    receiver_start(&rx);
    receiver_go(&rx);

    ck_assert_int_eq(lxm__conn_connect(addr, NET_TIMEOUT_MS, lg, &c), 0);
    ck_assert_int_eq(lxm__proto_hello(c, "peer", "evil-host", NULL), 0);
    g = lxm__json_new();
    lxm__json_str(g, "name", "evil");
    lxm__json_uint(g, "memory_bytes", 2 * MIB);
    lxm__json_uint(g, "vcpus", 1);
    lxm__json_str(g, "kind", "pv");
    lxm__json_bool(g, "live", true);
    lxm__json_str(g, "source_host", "evil-host");
    ck_assert_int_eq(lxm__conn_send_json(c, LXM__MSG_MIGRATE, g), 0);
    ck_assert_int_eq(lxm__conn_expect(c, LXM__MSG_ACCEPT, NULL, NULL, 0), 0);

    /* In small frames: those before the bad one reach the backend's
     * restore, which must then be undone. */
    for (off = 0; off < buf.len; off += n) {
        n = LXM_MIN((size_t)16384, buf.len - off);
        rc = lxm__conn_send(c, LXM__MSG_STREAM, LXM__CODEC_NONE, buf.data + off,
                            (uint32_t)n);
        if (rc)
            break;
    }
    g = lxm__json_new();
    lxm__json_uint(g, "bytes", buf.len);
    lxm__conn_send_json(c, LXM__MSG_STREAM_END, g);

    rc = lxm__conn_expect(c, LXM__MSG_READY, NULL, err, sizeof(err));
    ck_assert_int_eq(rc, LXM_ERROR_PEER);
    ck_assert_msg(strstr(err, expect_off), "'%s' lacks '%s'", err, expect_off);
    ck_assert_msg(strstr(err, "malformed stream from evil-host"), "%s", err);
    lxm__conn_free(c);
    receiver_join(&rx);
    print_report("malformed (rx)", &rx.rep);

    ck_assert_int_eq(rx.rep.status, LXM__MIG_FAILED);
    ck_assert_int_eq(rx.rep.rc, LXM_ERROR_STREAM_PAGE_COUNT);
    ck_assert_uint_gt(rx.rep.bytes_stream, 1 * MIB);
    ck_assert_uint_le(rx.rep.bytes_stream, fpd.offset);
    ck_assert_ptr_nonnull(strstr(rx.rep.error, expect_off));
    ck_assert_int_eq(nr_domains(&h2), 0);
    ck_assert_int_eq(dom_state(&h2, "evil--incoming"), -1);
    ck_assert_int_eq(dom_state(&h2, "evil"), -1);
    lxm_test_buf_dispose(&buf);
}
END_TEST

START_TEST(test_bad_requests)
{
    static const char *const names[] = {
        "",
        "../etc",
        "a/b",
        "x\ny",
        ".hidden",
        /* 54 characters: no room for "--incoming" */
        "012345678901234567890123456789012345678901234567890123",
    };
    receiver rx;
    lxm__conn *c;
    yajl_gen g;
    char err[256];
    size_t i;

    for (i = 0; i < LXM_ARRAY_SIZE(names); i++) {
        receiver_start(&rx);
        receiver_go(&rx);
        ck_assert_int_eq(lxm__conn_connect(addr, NET_TIMEOUT_MS, lg, &c), 0);
        ck_assert_int_eq(lxm__proto_hello(c, "peer", "h1", NULL), 0);
        g = lxm__json_new();
        lxm__json_str(g, "name", names[i]);
        lxm__json_uint(g, "memory_bytes", 4 * MIB);
        ck_assert_int_eq(lxm__conn_send_json(c, LXM__MSG_MIGRATE, g), 0);
        ck_assert_int_eq(
            lxm__conn_expect(c, LXM__MSG_ACCEPT, NULL, err, sizeof(err)),
            LXM_ERROR_PEER);
        ck_assert_ptr_nonnull(strstr(err, "invalid domain name"));
        lxm__conn_free(c);
        receiver_join(&rx);
        ck_assert_int_eq(rx.rep.status, LXM__MIG_REFUSED);
        ck_assert_int_eq(rx.rc, LXM_ERROR_PROTOCOL);
    }
    ck_assert_int_eq(nr_domains(&h2), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* fakepeer: a fake receiver                                           */
/* ------------------------------------------------------------------ */

enum fake_mode { FAKE_LOST_AFTER_GO, FAKE_BAD_DIGEST, FAKE_FAILED_AFTER_GO };

typedef struct fake_rx {
    pthread_t t;
    enum fake_mode mode;
    int rc;         /* 0: the script ran as planned */
    char said[256]; /* the sender's FAILED message */
} fake_rx;

static void *fake_rx_main(void *arg)
{
    fake_rx *f = arg;
    lxm__conn *c = NULL;
    lxm__frame fr;
    yajl_gen g;
    int rc;

    rc = lxm__conn_accept(lfd, NET_TIMEOUT_MS, lg, &c);
    if (!rc)
        rc = lxm__proto_hello(c, "peer", "h2", NULL);
    if (!rc)
        rc = lxm__conn_expect(c, LXM__MSG_MIGRATE, NULL, NULL, 0);
    if (!rc)
        rc = lxm__conn_send_json(c, LXM__MSG_ACCEPT, lxm__json_new());
    while (!rc) {
        rc = lxm__conn_recv(c, &fr);
        if (!rc && fr.type == LXM__MSG_STREAM_END)
            break;
        if (!rc && fr.type != LXM__MSG_STREAM)
            rc = LXM_ERROR_PROTOCOL;
    }
    if (rc)
        goto out;
    g = lxm__json_new();
    lxm__json_uint(g, "domid", 77);
    if (f->mode == FAKE_BAD_DIGEST)
        lxm__json_str(g, "digest", "00112233445566778899aabbccddeeff");
    rc = lxm__conn_send_json(c, LXM__MSG_READY, g);
    if (rc)
        goto out;
    switch (f->mode) {
    case FAKE_LOST_AFTER_GO:
        rc = lxm__conn_expect(c, LXM__MSG_GO, NULL, NULL, 0);
        break; /* and hang up */
    case FAKE_BAD_DIGEST:
        rc = lxm__conn_expect(c, LXM__MSG_GO, NULL, f->said, sizeof(f->said));
        rc = rc == LXM_ERROR_PEER ? 0 : LXM_ERROR_FAIL;
        break;
    case FAKE_FAILED_AFTER_GO:
        rc = lxm__conn_expect(c, LXM__MSG_GO, NULL, NULL, 0);
        if (!rc)
            rc = lxm__conn_send_error(c, LXM__MSG_FAILED, LXM_ERROR_FAIL,
                                      "cannot unpause (test)");
        break;
    }

out:
    f->rc = rc;
    lxm__conn_free(c);
    return NULL;
}

static void fake_send(enum fake_mode mode, lxm__migrate_report *rep, fake_rx *f)
{
    lxm__migrate_opts o;

    create_vm(&h1, "vm", 4 * MIB, 1000, 0);
    memset(f, 0, sizeof(*f));
    f->mode = mode;
    ck_assert_int_eq(pthread_create(&f->t, NULL, fake_rx_main, f), 0);
    sender_opts(&o);
    o.save.live = true;
    lxm__migrate_send(ops, h1.b, "vm", addr, &o, NULL, NULL, rep);
    ck_assert_int_eq(pthread_join(f->t, NULL), 0);
    print_report("fake", rep);
    ck_assert_msg(f->rc == 0, "fake receiver: %s", lxm_strerror(f->rc));
}

START_TEST(test_lost_after_go)
{
    lxm__migrate_report rep;
    fake_rx f;

    fake_send(FAKE_LOST_AFTER_GO, &rep, &f);
    ck_assert_int_eq(rep.status, LXM__MIG_UNKNOWN);
    ck_assert_int_ne(rep.rc, 0);
    ck_assert(!rep.source_resumed);
    ck_assert_msg(strstr(rep.error, "migration to h2 failed after the commit"
                                    " point"),
                  "%s", rep.error);
    ck_assert_msg(strstr(rep.error, "the VM may be running on h2; the source"
                                    " copy is kept suspended as"
                                    " vm--migratedaway on h1"),
                  "%s", rep.error);
    ck_assert_int_eq(dom_state(&h1, "vm"), -1);
    ck_assert_int_eq(dom_state(&h1, "vm--migratedaway"), LXM__DOM_SUSPENDED);
}
END_TEST

START_TEST(test_bad_digest)
{
    lxm__migrate_report rep;
    fake_rx f;

    fake_send(FAKE_BAD_DIGEST, &rep, &f);
    ck_assert_int_eq(rep.status, LXM__MIG_FAILED);
    ck_assert(rep.source_resumed);
    ck_assert(!rep.digest_checked);
    ck_assert_ptr_nonnull(strstr(rep.error, "memory digest mismatch"));
    ck_assert_ptr_nonnull(strstr(f.said, "memory digest mismatch"));
    ck_assert_int_eq(dom_state(&h1, "vm"), LXM__DOM_RUNNING);
    ck_assert_int_eq(dom_state(&h1, "vm--migratedaway"), -1);
}
END_TEST

START_TEST(test_fake_failed_after_go)
{
    lxm__migrate_report rep;
    fake_rx f;

    fake_send(FAKE_FAILED_AFTER_GO, &rep, &f);
    ck_assert_int_eq(rep.status, LXM__MIG_FAILED);
    ck_assert(rep.source_resumed);
    ck_assert_ptr_nonnull(strstr(rep.error, "cannot unpause (test)"));
    ck_assert_int_eq(dom_state(&h1, "vm"), LXM__DOM_RUNNING);
    ck_assert_int_eq(dom_state(&h1, "vm--migratedaway"), -1);
}
END_TEST

/* ------------------------------------------------------------------ */

Suite *lxm_test_migrate_suite(void)
{
    Suite *s = suite_create("migrate");
    TCase *tc;

    tc = tcase_create("live");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_live);
    suite_add_tcase(s, tc);

    tc = tcase_create("nonlive");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_nonlive);
    tcase_add_test(tc, test_bandwidth);
    suite_add_tcase(s, tc);

    tc = tcase_create("refused");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_same_host);
    tcase_add_test(tc, test_refused_exists);
    tcase_add_test(tc, test_refused_memory);
    tcase_add_test(tc, test_refused_local);
    suite_add_tcase(s, tc);

    tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_receiver_dies);
    tcase_add_test(tc, test_failed_after_go);
    tcase_add_test(tc, test_cancel);
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_bad_requests);
    suite_add_tcase(s, tc);

    tc = tcase_create("fakepeer");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_lost_after_go);
    tcase_add_test(tc, test_bad_digest);
    tcase_add_test(tc, test_fake_failed_after_go);
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
