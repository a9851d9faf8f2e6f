/*
 * xlmig_evacuate_run.c - the running half of `xlmig host-evacuate HOST`:
 * after xlmig_pool.c made the plan (xlmig_evacuate.h), run it through
 * the scheduler (evacuate/scheduler.c) and say what happened to each VM.
 *
 * Entry points (xlmig_evacuate.h): xlmig_evac_run_opt(), xlmig_evac_run().
 *
 * Each migration is a control request "migrate" to the SOURCE host's
 * agent, on a connection of its own, with the destination host's
 * migration address (the pool's migration=, else its agent address);
 * EVENT frames become progress, the REPLY is the migration's report.
 * The source agent's stop-and-copy gate keeps the pauses of parallel
 * migrations apart; here they simply run side by side.
 *
 * Cancel (SIGINT/SIGTERM, taken by a signal thread with sigtimedwait):
 * the first one cancels the scheduler (nothing new starts) and sends
 * the source agent a "cancel" request for every migration in flight
 * (honoured before the commit point: the VM keeps, or resumes, running
 * on the source); their reports then come as for any migration.  When
 * the agent does not take it, that migration's connection is shut down
 * instead: the agent notices the closed connection at its next progress
 * EVENT and cancels.  With the connection gone there is no report, so
 * the migration thread then asks both agents where the VM is (reconcile()):
 * on the destination under its name = migrated (the cancel came too
 * late); running on the source with nothing incoming on the destination
 * = cancelled; neither within RECONCILE_MS = failed, state unknown.
 * Further signals are ignored (with a line saying so) until the run
 * ends.
 *
 * Output: progress on stderr (TTY: one overall bar plus one per
 * in-flight VM, redrawn; else one line per start/retry/end), then the
 * outcome table on stdout; --json: one object instead of the table;
 * --json-events: one JSON object per line on stdout as things happen.
 *
 * Exit status: 0 every VM left the host; 1 some did not (failed,
 * refused); 2 usage; 3 cancelled by a signal.
 *
 * Threads and locks: the scheduler's workers run migrate_job(); the
 * event callback (on_event) runs on them and on the signal thread.
 * run->lock protects the per-VM connection slots, run->out_lock the
 * output and the progress state; both are leaves, never nested.
 */
#define _GNU_SOURCE /* sigtimedwait with pthreads */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libxlmig_internal.h"
#include "migrate/migrate.h"
#include "transport/proto.h"
#include "xlmig_evacuate.h"

/* This file's options (host-evacuate entry of xlmig_cmdtable.c). */
enum {
    XLMIG_OPT_DEST_CAP = XLMIG_OPT_EVAC_RUN_BASE,
    XLMIG_OPT_MAX_ATTEMPTS = XLMIG_OPT_EVAC_RUN_BASE + 1,
    XLMIG_OPT_JSON_EVENTS = XLMIG_OPT_EVAC_RUN_BASE + 2,
};

/* Per frame from the source agent while it migrates (events come at
 * least once per round). */
#define MIGRATE_TIMEOUT_MS 600000
/* After a cancel: how long to look for the VM, and how often. */
#define RECONCILE_MS 120000
#define RECONCILE_POLL_MS 250
/* The agent notices a closed connection at its next EVENT (every 100
 * ms or round); running on the source this long after = cancelled. */
#define RECONCILE_SETTLE_MS 1500
#define BAR_WIDTH 20
#define REDRAW_MS 100
/* A cancel request that finds no migration yet is repeated this long. */
#define CANCEL_RETRY_MS 2000
#define CANCEL_POLL_MS 50

typedef struct run_opts {
    unsigned int dest_cap;
    unsigned int max_attempts;
    bool json_events;
    bool verify;
    uint64_t downtime_ms; /* 0: the agent's default */
    uint64_t bandwidth;   /* bytes/s a migration, 0: no cap */
} run_opts;

/* ---- talking to an agent ----------------------------------------- */

/* Errors quote cap.last cut at 255 characters (%.255s). */
typedef struct agent_conn {
    xlmig_capture_logger cap; /* outlives c, which logs through it */
    lxm__conn *c;
} agent_conn;

static void ac_close(agent_conn *ac)
{
    if (!ac)
        return;
    lxm__conn_free(ac->c);
    free(ac);
}

static agent_conn *ac_open(const char *addr, uint32_t timeout_ms, char *err,
                           size_t err_len)
{
    agent_conn *ac = calloc(1, sizeof(*ac));
    int rc;

    if (!ac) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    xlmig_capture_init(&ac->cap, false);
    rc = lxm__conn_connect(addr, timeout_ms, &ac->cap.vtable, &ac->c);
    if (!rc)
        rc = lxm__proto_hello(ac->c, "cli", NULL, NULL);
    if (rc) {
        snprintf(err, err_len, "%.255s",
                 ac->cap.last[0] ? ac->cap.last : lxm_strerror(rc));
        ac_close(ac);
        return NULL;
    }
    return ac;
}

/* ---- the run ------------------------------------------------------ */

typedef struct vm_bar {
    bool active;
    int dest;
    unsigned int attempt;
    uint32_t round;
    uint64_t sent, total, wire;
    bool suspended;
} vm_bar;

typedef struct run_state {
    /* Immutable after setup. */
    struct evac_ctx *ctx;
    const run_opts *o;
    lxm__evac_sched *s;
    bool tty;
    uint64_t t0;

    /* Protected by lock: the connection of each VM's attempt in flight
     * (NULL: none), shut down by cancel_all(). */
    pthread_mutex_t lock;
    agent_conn **conns;

    /* Protected by out_lock. */
    pthread_mutex_t out_lock;
    vm_bar *bars;
    unsigned int drawn; /* bar lines on screen now */
    uint64_t last_draw;
    lxm__evac_counts counts;
    uint64_t elapsed_ms;
    bool cancelling;

    /* Published in xenstore when there is one (NULL: not); used under
     * out_lock. */
    struct lxm__xs_status *xs;

    /* The signal thread. */
    volatile int done;
    volatile int interrupted;
} run_state;

static const char *host_name(const run_state *r, int h)
{
    return h >= 0 && (size_t)h < r->ctx->nr_hosts ? r->ctx->hosts[h].pool->name
                                                  : "";
}

static void dest_addr(const run_state *r, int h, char *out, size_t len)
{
    const lxm__pool_host *ph = r->ctx->hosts[h].pool;

    if (ph->migration[0])
        xlmig_addr_with_port(ph->migration, out, len);
    else
        xlmig_evac_agent_addr(ph, out, len);
}

/* One line into rep->error (truncated to fit). */
static void rep_error(lxm__migrate_report *rep, const char *fmt, ...)
    LXM_PRINTF(2, 3);
static void rep_error(lxm__migrate_report *rep, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(rep->error, sizeof(rep->error), fmt, ap);
    va_end(ap);
}

/* ---- where is the VM? (after a cancel or a lost connection) ------- */

/* One request {"cmd": cmd, "domain": name} on a connection of its own:
 * 0 with *reply_r (caller frees), else an error (ERROR from the agent:
 * LXM_ERROR_PEER with its code in *code_r). */
static int domain_request(const char *addr, uint32_t timeout_ms,
                          const char *cmd, const char *name, yajl_val *reply_r,
                          int *code_r)
{
    agent_conn *ac;
    yajl_gen req;
    char err[256];
    int rc;

    *reply_r = NULL;
    *code_r = 0;
    ac = ac_open(addr, timeout_ms, err, sizeof(err));
    if (!ac)
        return LXM_ERROR_CONNECT;
    req = lxm__json_new();
    if (!req) {
        ac_close(ac);
        return LXM_ERROR_NOMEM;
    }
    lxm__json_str(req, "cmd", cmd);
    lxm__json_str(req, "domain", name);
    rc = lxm__conn_send_json(ac->c, LXM__MSG_REQUEST, req);
    if (!rc)
        rc = lxm__migrate_expect(ac->c, LXM__MSG_REPLY, reply_r, err,
                                 sizeof(err), code_r);
    ac_close(ac);
    return rc;
}

/* 1 found (state copied), 0 not there, -1 cannot ask. */
static int dom_lookup(const char *addr, uint32_t timeout_ms, const char *name,
                      char *state, size_t state_len)
{
    yajl_val reply = NULL;
    const char *st;
    int rc, ret, code;

    rc = domain_request(addr, timeout_ms, "domain-info", name, &reply, &code);
    if (!rc) {
        st = lxm__jstr(reply, "state");
        snprintf(state, state_len, "%s", st ? st : "");
        ret = 1;
    } else {
        /* ERROR {"code": NOTFOUND}: no such domain there. */
        ret = rc == LXM_ERROR_PEER && code == LXM_ERROR_NOTFOUND ? 0 : -1;
    }
    yajl_tree_free(reply);
    return ret;
}

/*
 * The connection to the source agent is gone (we closed it to cancel,
 * or it broke): find out where the VM runs.  Fills rep.
 */
static lxm__migrate_status reconcile(run_state *r, const char *name, int dest,
                                     bool cancel, lxm__migrate_report *rep)
{
    char src_addr[300], dst_addr[300], away[LXM__NAME_MAX + 16],
        incoming[LXM__NAME_MAX + 16], st[32], st2[32];
    uint32_t tmo = r->ctx->agent_timeout_ms;
    uint64_t start = lxm__migrate_now_ms(), now;
    unsigned int calm = 0;
    int on_dst, on_src, inc, aw;

    xlmig_evac_agent_addr(r->ctx->hosts[r->ctx->src].pool, src_addr,
                          sizeof(src_addr));
    xlmig_evac_agent_addr(r->ctx->hosts[dest].pool, dst_addr, sizeof(dst_addr));
    snprintf(away, sizeof(away), "%s--migratedaway", name);
    snprintf(incoming, sizeof(incoming), "%s--incoming", name);
    for (;;) {
        on_dst = dom_lookup(dst_addr, tmo, name, st, sizeof(st));
        if (on_dst == 1) {
            rep->status = LXM__MIG_MIGRATED;
            rep->error[0] = '\0';
            return rep->status;
        }
        on_src = dom_lookup(src_addr, tmo, name, st, sizeof(st));
        inc = dom_lookup(dst_addr, tmo, incoming, st2, sizeof(st2));
        aw = dom_lookup(src_addr, tmo, away, st2, sizeof(st2));
        now = lxm__migrate_now_ms();
        if (on_dst == 0 && on_src == 1 && !strcmp(st, "running") && inc == 0 &&
            aw == 0) {
            /* Twice in a row, and late enough that the agent noticed. */
            if (++calm >= 2 && now - start >= RECONCILE_SETTLE_MS) {
                rep->status = cancel ? LXM__MIG_CANCELLED : LXM__MIG_FAILED;
                rep->source_resumed = true;
                if (!cancel)
                    rep_error(rep,
                              "lost the connection to the agent of %s while"
                              " migrating; %s still runs there",
                              host_name(r, (int)r->ctx->src), name);
                return rep->status;
            }
        } else {
            calm = 0;
        }
        if (now - start >= RECONCILE_MS)
            break;
        usleep(RECONCILE_POLL_MS * 1000);
    }
    rep->status = LXM__MIG_UNKNOWN;
    rep_error(rep,
              "%s: connection to the agent of %s gone; after %u s neither"
              " host says it runs %s (check %s and %s)",
              cancel ? "cancelled" : "lost", host_name(r, (int)r->ctx->src),
              RECONCILE_MS / 1000, name, host_name(r, (int)r->ctx->src),
              host_name(r, dest));
    return rep->status;
}

/* ---- one migration (scheduler worker threads) --------------------- */

static lxm__migrate_status status_parse(const char *s)
{
    if (!s)
        return LXM__MIG_UNKNOWN;
    if (!strcmp(s, "migrated"))
        return LXM__MIG_MIGRATED;
    if (!strcmp(s, "failed"))
        return LXM__MIG_FAILED;
    if (!strcmp(s, "refused"))
        return LXM__MIG_REFUSED;
    if (!strcmp(s, "cancelled"))
        return LXM__MIG_CANCELLED;
    return LXM__MIG_UNKNOWN;
}

static uint64_t ju(yajl_val v, const char *key)
{
    int64_t x = lxm__jint(v, key, 0);

    return x > 0 ? (uint64_t)x : 0;
}

static bool cancel_requested(const lxm__evac_job *job)
{
    return __atomic_load_n(&job->cancel->requested, __ATOMIC_SEQ_CST);
}

static lxm__migrate_status migrate_job(void *opaque, lxm__evac_job *job,
                                       lxm__migrate_report *rep)
{
    run_state *r = opaque;
    struct evac_ctx *ctx = r->ctx;
    const char *name = ctx->vms[job->vm].info.name, *err;
    char src_addr[300], dst_addr[300], why[256];
    lxm__migrate_progress p;
    agent_conn *ac;
    yajl_val v = NULL;
    lxm__frame f;
    yajl_gen req;
    bool sent = false;
    int rc;

    snprintf(rep->name, sizeof(rep->name), "%s", name);
    snprintf(rep->source, sizeof(rep->source), "%s", ctx->source);
    snprintf(rep->destination, sizeof(rep->destination), "%s",
             host_name(r, job->dest));
    xlmig_evac_agent_addr(ctx->hosts[ctx->src].pool, src_addr,
                          sizeof(src_addr));
    dest_addr(r, job->dest, dst_addr, sizeof(dst_addr));

    ac = ac_open(src_addr, ctx->agent_timeout_ms, why, sizeof(why));
    if (!ac) {
        rep->status = LXM__MIG_FAILED;
        rep->rc = LXM_ERROR_CONNECT;
        rep_error(rep, "cannot connect to the agent of %s (%s): %s",
                  ctx->source, src_addr, why);
        return rep->status;
    }
    pthread_mutex_lock(&r->lock);
    if (cancel_requested(job)) {
        pthread_mutex_unlock(&r->lock);
        ac_close(ac);
        rep->status = LXM__MIG_CANCELLED;
        rep_error(rep, "cancelled before it started");
        return rep->status;
    }
    r->conns[job->vm] = ac;
    pthread_mutex_unlock(&r->lock);

    req = lxm__json_new();
    if (!req) {
        rc = LXM_ERROR_NOMEM;
        goto lost;
    }
    lxm__json_str(req, "cmd", "migrate");
    lxm__json_str(req, "domain", name);
    lxm__json_str(req, "destination", dst_addr);
    lxm__json_bool(req, "live", true);
    lxm__json_bool(req, "verify", r->o->verify);
    if (r->o->downtime_ms)
        lxm__json_uint(req, "downtime_ms", r->o->downtime_ms);
    if (r->o->bandwidth)
        lxm__json_uint(req, "bandwidth", r->o->bandwidth);
    rc = lxm__conn_send_json(ac->c, LXM__MSG_REQUEST, req);
    if (rc)
        goto lost;
    sent = true;
    lxm__conn_set_timeout(ac->c, MIGRATE_TIMEOUT_MS);

    for (;;) {
        rc = lxm__conn_recv(ac->c, &f);
        if (rc)
            goto lost;
        rc = lxm__frame_json(&f, &v);
        if (rc)
            goto lost;
        if (f.type == LXM__MSG_EVENT) {
            memset(&p, 0, sizeof(p));
            p.round = (uint32_t)ju(v, "round");
            p.pages_sent = ju(v, "pages_sent");
            p.pages_total = ju(v, "pages_total");
            p.dirty_rate = ju(v, "dirty_rate");
            p.bytes_wire = ju(v, "bytes_wire");
            p.elapsed_ms = ju(v, "elapsed_ms");
            p.eta_ms = ju(v, "eta_ms");
            p.suspended = lxm__jbool(v, "suspended", false);
            lxm__evac_job_progress(job, &p);
        } else if (f.type == LXM__MSG_REPLY) {
            rep->status = status_parse(lxm__jstr(v, "status"));
            err = lxm__jstr(v, "error");
            rep_error(rep, "%s", err ? err : "");
            rep->rc = (int)lxm__jint(v, "code", 0);
            rep->total_ms = ju(v, "total_ms");
            rep->downtime_ms = ju(v, "downtime_ms");
            rep->rounds = (uint32_t)ju(v, "rounds");
            rep->bytes_wire = ju(v, "bytes_wire");
            rep->source_resumed = lxm__jbool(v, "source_resumed", false);
            job->gate_wait_ms = ju(v, "gate_wait_ms");
            break;
        } else if (f.type == LXM__MSG_ERROR) {
            /* The agent refused the request: nothing moved. */
            err = lxm__jstr(v, "error");
            rep->status = LXM__MIG_REFUSED;
            rep->rc = (int)lxm__jint(v, "code", LXM_ERROR_PEER);
            rep_error(rep, "%s", err && *err ? err : "the agent refused");
            break;
        } else {
            rc = LXM_ERROR_PROTOCOL;
            goto lost;
        }
        yajl_tree_free(v);
        v = NULL;
    }
    yajl_tree_free(v);
    pthread_mutex_lock(&r->lock);
    r->conns[job->vm] = NULL;
    pthread_mutex_unlock(&r->lock);
    ac_close(ac);
    return rep->status;

lost:
    yajl_tree_free(v);
    snprintf(why, sizeof(why), "%.255s",
             ac->cap.last[0] ? ac->cap.last : lxm_strerror(rc));
    pthread_mutex_lock(&r->lock);
    r->conns[job->vm] = NULL;
    pthread_mutex_unlock(&r->lock);
    ac_close(ac); /* the agent sees the close: it cancels */
    if (!sent) {
        rep->status =
            cancel_requested(job) ? LXM__MIG_CANCELLED : LXM__MIG_FAILED;
        rep->rc = rc;
        rep_error(rep, "agent of %s: %s", ctx->source, why);
        return rep->status;
    }
    reconcile(r, name, job->dest, cancel_requested(job), rep);
    if (rep->status == LXM__MIG_UNKNOWN && !cancel_requested(job))
        rep->rc = rc;
    return rep->status;
}

/* Ask the source agent to cancel VM i's migration: true when it took
 * it.  Its migrate request may not have reached the agent yet (NOTFOUND):
 * asked again while the migration is in flight, up to CANCEL_RETRY_MS. */
static bool cancel_one(run_state *r, const char *src_addr, size_t i)
{
    struct timespec ts = { 0, CANCEL_POLL_MS * 1000000L };
    yajl_val reply = NULL;
    bool took = false, inflight;
    unsigned int n;
    int rc, code;

    for (n = 0; n <= CANCEL_RETRY_MS / CANCEL_POLL_MS; n++) {
        rc = domain_request(src_addr, r->ctx->agent_timeout_ms, "cancel",
                            r->ctx->vms[i].info.name, &reply, &code);
        took = !rc && lxm__jint(reply, "migrations", 0) > 0;
        yajl_tree_free(reply);
        reply = NULL;
        if (took || rc != LXM_ERROR_PEER || code != LXM_ERROR_NOTFOUND)
            break;
        pthread_mutex_lock(&r->lock);
        inflight = r->conns[i] != NULL;
        pthread_mutex_unlock(&r->lock);
        if (!inflight)
            return true; /* over already: its own report says how */
        nanosleep(&ts, NULL);
    }
    return took;
}

/*
 * Cancel the run: the scheduler first (so nothing new registers), then
 * every migration in flight, with a "cancel" request to the source
 * agent: each migration's own connection then still brings its report.
 * Where the agent does not take it (an agent without "cancel", or it
 * cannot be reached), that connection is shut down instead, and
 * reconcile() finds the VM.
 */
static void cancel_all(run_state *r)
{
    struct evac_ctx *ctx = r->ctx;
    char src_addr[300];
    bool *busy;
    size_t i;

    lxm__evac_sched_cancel(r->s);
    busy = calloc(ctx->nr_vms ? ctx->nr_vms : 1, sizeof(*busy));
    xlmig_evac_agent_addr(ctx->hosts[ctx->src].pool, src_addr,
                          sizeof(src_addr));
    pthread_mutex_lock(&r->lock);
    for (i = 0; i < ctx->nr_vms; i++) {
        if (busy)
            busy[i] = r->conns[i] != NULL;
        else if (r->conns[i])
            lxm__conn_shutdown(r->conns[i]->c);
    }
    pthread_mutex_unlock(&r->lock);
    for (i = 0; busy && i < ctx->nr_vms; i++) {
        if (!busy[i] || cancel_one(r, src_addr, i))
            continue;
        pthread_mutex_lock(&r->lock);
        if (r->conns[i])
            lxm__conn_shutdown(r->conns[i]->c);
        pthread_mutex_unlock(&r->lock);
    }
    free(busy);
}

/* ---- output ------------------------------------------------------- */

static void fmt_elapsed(uint64_t ms, char *buf, size_t len)
{
    snprintf(buf, len, "%02u:%02u", (unsigned int)(ms / 60000 % 10000),
             (unsigned int)((ms / 1000) % 60));
}

static void bar_fill(char *bar, unsigned int pct)
{
    unsigned int i, fill = pct * BAR_WIDTH / 100;

    for (i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[BAR_WIDTH] = '\0';
}

/* Erase the bars drawn last time.  out_lock held. */
static void bars_erase(run_state *r)
{
    while (r->drawn) {
        fputs("\033[1A\r\033[K", stderr);
        r->drawn--;
    }
}

/* Draw the overall line and one per in-flight VM.  out_lock held. */
static void bars_draw(run_state *r)
{
    const lxm__evac_counts *c = &r->counts;
    size_t done = c->migrated + c->failed + c->refused + c->cancelled, i;
    char bar[BAR_WIDTH + 1], el[32];
    unsigned int pct;
    vm_bar *b;

    bars_erase(r);
    pct = c->total ? (unsigned int)(done * 100 / c->total) : 100;
    bar_fill(bar, pct);
    fmt_elapsed(r->elapsed_ms, el, sizeof(el));
    fprintf(stderr,
            "%s %s [%s] %zu/%zu done: %zu migrated, %zu failed, %zu refused,"
            " %zu cancelled; %zu in flight  %s\n",
            r->cancelling ? "cancelling" : "evacuating", r->ctx->source, bar,
            done, c->total, c->migrated, c->failed, c->refused, c->cancelled,
            c->running, el);
    r->drawn++;
    for (i = 0; i < r->ctx->nr_vms; i++) {
        b = &r->bars[i];
        if (!b->active)
            continue;
        pct = b->total
                  ? (unsigned int)(LXM_MIN(b->sent, b->total) * 100 / b->total)
                  : 0;
        bar_fill(bar, pct);
        fprintf(stderr, "  %-20s -> %-12s %s [%s] %3u%% %8.1f MB%s%s\n",
                r->ctx->vms[i].info.name, host_name(r, b->dest),
                b->suspended ? "stop+copy" : "pre-copy ", bar, pct,
                (double)b->wire / 1e6, b->attempt > 1 ? "  (retry)" : "", "");
        r->drawn++;
    }
    fflush(stderr);
}

static void json_event_common(yajl_gen g, const char *what,
                              const lxm__evac_event *ev)
{
    lxm__json_str(g, "event", what);
    lxm__json_uint(g, "elapsed_ms", ev->elapsed_ms);
    lxm__json_uint(g, "total", ev->counts.total);
    lxm__json_uint(g, "pending", ev->counts.pending);
    lxm__json_uint(g, "in_flight", ev->counts.running);
    lxm__json_uint(g, "migrated", ev->counts.migrated);
    lxm__json_uint(g, "failed", ev->counts.failed);
    lxm__json_uint(g, "refused", ev->counts.refused);
    lxm__json_uint(g, "cancelled", ev->counts.cancelled);
}

static void json_nullable(yajl_gen g, const char *key, const char *s)
{
    lxm__json_key(g, key);
    if (s && *s)
        yajl_gen_string(g, (const unsigned char *)s, strlen(s));
    else
        yajl_gen_null(g);
}

/* The keys of one VM's outcome (also the --json "vms" entries). */
static void json_outcome(yajl_gen g, const run_state *r,
                         const lxm__evac_outcome *o)
{
    lxm__json_str(g, "name", o->name);
    lxm__json_str(g, "status", lxm__evac_status_name(o->status));
    json_nullable(g, "destination",
                  o->status == LXM__EVAC_MIGRATED ? o->destination : NULL);
    json_nullable(g, "last_tried",
                  o->status == LXM__EVAC_MIGRATED || !o->attempts
                      ? NULL
                      : o->destination);
    lxm__json_str(g, "reason", o->reason);
    lxm__json_uint(g, "attempts", o->attempts);
    lxm__json_uint(g, "start_ms", o->start_ms);
    lxm__json_uint(g, "end_ms", o->end_ms);
    lxm__json_uint(g, "total_ms", o->total_ms);
    lxm__json_uint(g, "downtime_ms", o->downtime_ms);
    lxm__json_uint(g, "bytes_wire", o->bytes_wire);
    lxm__json_uint(g, "gate_wait_ms", o->gate_wait_ms);
    (void)r;
}

static void json_print(yajl_gen g)
{
    const unsigned char *buf;
    size_t len;

    yajl_gen_map_close(g);
    yajl_gen_get_buf(g, &buf, &len);
    printf("%.*s\n", (int)len, (const char *)buf);
    fflush(stdout);
    yajl_gen_free(g);
}

static void json_event(run_state *r, const lxm__evac_event *ev)
{
    const lxm__evac_vm *vm = &r->ctx->vms[ev->vm];
    const lxm__migrate_progress *p = ev->progress;
    yajl_gen g = lxm__json_new();

    if (!g)
        return;
    switch (ev->kind) {
    case LXM__EVAC_EV_STARTED:
        json_event_common(g, "vm-start", ev);
        lxm__json_str(g, "name", vm->info.name);
        lxm__json_str(g, "destination", host_name(r, ev->dest));
        lxm__json_uint(g, "attempt", ev->attempt);
        break;
    case LXM__EVAC_EV_PROGRESS:
        json_event_common(g, "vm-progress", ev);
        lxm__json_str(g, "name", vm->info.name);
        lxm__json_str(g, "destination", host_name(r, ev->dest));
        lxm__json_uint(g, "attempt", ev->attempt);
        lxm__json_uint(g, "round", p->round);
        lxm__json_uint(g, "pages_sent", p->pages_sent);
        lxm__json_uint(g, "pages_total", p->pages_total);
        lxm__json_uint(g, "dirty_rate", p->dirty_rate);
        lxm__json_uint(g, "bytes_wire", p->bytes_wire);
        lxm__json_bool(g, "suspended", p->suspended);
        break;
    case LXM__EVAC_EV_RETRY:
        json_event_common(g, "vm-retry", ev);
        lxm__json_str(g, "name", vm->info.name);
        lxm__json_uint(g, "attempt", ev->attempt);
        lxm__json_str(g, "next", host_name(r, ev->dest));
        lxm__json_str(g, "reason", ev->outcome->reason);
        break;
    case LXM__EVAC_EV_FINISHED:
        json_event_common(g, "vm-done", ev);
        json_outcome(g, r, ev->outcome);
        break;
    case LXM__EVAC_EV_CANCELLING:
        json_event_common(g, "cancelling", ev);
        break;
    case LXM__EVAC_EV_DONE:
        json_event_common(g, "done", ev);
        lxm__json_bool(g, "interrupted", r->interrupted);
        break;
    }
    json_print(g);
}

/* A line on stderr for the important events (not on a TTY). */
static void line_event(run_state *r, const lxm__evac_event *ev)
{
    const lxm__evac_outcome *o = ev->outcome;
    const char *name = r->ctx->vms[ev->vm].info.name;
    char el[32];

    fmt_elapsed(ev->elapsed_ms, el, sizeof(el));
    switch (ev->kind) {
    case LXM__EVAC_EV_STARTED:
        fprintf(stderr, "[%s] %s: migrating to %s%s\n", el, name,
                host_name(r, ev->dest), ev->attempt > 1 ? " (retry)" : "");
        break;
    case LXM__EVAC_EV_RETRY:
        fprintf(stderr, "[%s] %s: %s; retrying on %s\n", el, name, o->reason,
                host_name(r, ev->dest));
        break;
    case LXM__EVAC_EV_FINISHED:
        if (o->status == LXM__EVAC_MIGRATED)
            fprintf(stderr,
                    "[%s] %s: migrated to %s in %" PRIu64
                    " ms, downtime %" PRIu64 " ms\n",
                    el, name, o->destination, o->total_ms, o->downtime_ms);
        else
            fprintf(stderr, "[%s] %s: %s: %s\n", el, name,
                    lxm__evac_status_name(o->status), o->reason);
        break;
    case LXM__EVAC_EV_CANCELLING:
        fprintf(stderr,
                "[%s] cancelling: nothing new starts; %zu in flight asked to"
                " stop (they stay on %s)\n",
                el, ev->counts.running, r->ctx->source);
        break;
    default:
        break;
    }
    fflush(stderr);
}

static void on_event(void *opaque, const lxm__evac_event *ev)
{
    run_state *r = opaque;
    vm_bar *b = NULL;
    uint64_t now;
    bool draw = true;

    pthread_mutex_lock(&r->out_lock);
    r->counts = ev->counts;
    r->elapsed_ms = ev->elapsed_ms;
    if (ev->kind != LXM__EVAC_EV_CANCELLING && ev->kind != LXM__EVAC_EV_DONE)
        b = &r->bars[ev->vm];
    switch (ev->kind) {
    case LXM__EVAC_EV_STARTED:
        memset(b, 0, sizeof(*b));
        b->active = true;
        b->dest = ev->dest;
        b->attempt = ev->attempt;
        break;
    case LXM__EVAC_EV_PROGRESS:
        b->round = ev->progress->round;
        b->sent = ev->progress->pages_sent;
        b->total = ev->progress->pages_total;
        b->wire = ev->progress->bytes_wire;
        b->suspended = ev->progress->suspended;
        now = lxm__migrate_now_ms();
        draw = now - r->last_draw >= REDRAW_MS;
        break;
    case LXM__EVAC_EV_RETRY:
    case LXM__EVAC_EV_FINISHED:
        b->active = false;
        break;
    case LXM__EVAC_EV_CANCELLING:
        r->cancelling = true;
        break;
    case LXM__EVAC_EV_DONE:
        break;
    }

    xlmig_evac_xs_event(&r->xs, r->ctx, ev);
    if (r->o->json_events)
        json_event(r, ev);
    if (r->tty) {
        if (ev->kind == LXM__EVAC_EV_FINISHED ||
            ev->kind == LXM__EVAC_EV_RETRY ||
            ev->kind == LXM__EVAC_EV_CANCELLING) {
            bars_erase(r);
            line_event(r, ev);
        }
        if (ev->kind == LXM__EVAC_EV_DONE) {
            bars_erase(r);
        } else if (draw) {
            bars_draw(r);
            r->last_draw = lxm__migrate_now_ms();
        }
    } else if (!r->o->json_events) {
        line_event(r, ev);
    }
    pthread_mutex_unlock(&r->out_lock);
}

/* ---- signals ------------------------------------------------------ */

static void *signal_thread(void *arg)
{
    run_state *r = arg;
    struct timespec ts = { 0, 100 * 1000000L };
    sigset_t set;
    int sig;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    while (!__atomic_load_n(&r->done, __ATOMIC_SEQ_CST)) {
        sig = sigtimedwait(&set, NULL, &ts);
        if (sig < 0)
            continue;
        pthread_mutex_lock(&r->out_lock);
        bars_erase(r);
        if (!r->interrupted)
            fprintf(stderr,
                    "xlmig: %s: %s: cancelling: no new migrations; %zu in"
                    " flight are asked to stop and stay on (or resume on)"
                    " %s\n",
                    r->ctx->cmd, sig == SIGINT ? "SIGINT" : "SIGTERM",
                    r->counts.running, r->ctx->source);
        else
            fprintf(stderr,
                    "xlmig: %s: already cancelling; waiting for %zu in-flight"
                    " migration(s) to stop (signal ignored)\n",
                    r->ctx->cmd, r->counts.running);
        fflush(stderr);
        pthread_mutex_unlock(&r->out_lock);
        if (!r->interrupted) {
            __atomic_store_n(&r->interrupted, 1, __ATOMIC_SEQ_CST);
            cancel_all(r);
        }
    }
    return NULL;
}

/* ---- results ------------------------------------------------------ */

static void print_table(const run_state *r, const lxm__evac_outcome *o,
                        uint64_t total_ms)
{
    const struct evac_ctx *ctx = r->ctx;
    uint64_t worst = 0;
    size_t i, migrated = 0;

    printf("%-20s %-9s %-12s %3s %9s %9s %9s  %s\n", "NAME", "STATUS",
           "DESTINATION", "TRY", "TIME(ms)", "DOWN(ms)", "WIRE(MB)", "REASON");
    for (i = 0; i < ctx->nr_vms; i++) {
        printf("%-20s %-9s %-12s %3u %9" PRIu64 " %9" PRIu64 " %9.1f  %s\n",
               o[i].name, lxm__evac_status_name(o[i].status),
               o[i].status == LXM__EVAC_MIGRATED ? o[i].destination : "-",
               o[i].attempts, o[i].total_ms, o[i].downtime_ms,
               (double)o[i].bytes_wire / 1e6, o[i].reason);
        if (o[i].status == LXM__EVAC_MIGRATED) {
            migrated++;
            if (o[i].downtime_ms > worst)
                worst = o[i].downtime_ms;
        }
    }
    printf("%zu of %zu VMs left %s in %.1f s (batch %u from %s); worst"
           " downtime %" PRIu64 " ms\n",
           migrated, ctx->nr_vms, ctx->source, (double)total_ms / 1000,
           ctx->conf.batch_size, ctx->conf.batch_size_origin, worst);
}

static void print_json(const run_state *r, const lxm__evac_outcome *o,
                       const lxm__evac_counts *c, uint64_t total_ms,
                       int exit_status)
{
    const struct evac_ctx *ctx = r->ctx;
    yajl_gen g = lxm__json_new();
    uint64_t worst = 0;
    size_t i;

    if (!g) {
        xlmig_error(ctx->cmd, "out of memory");
        return;
    }
    for (i = 0; i < ctx->nr_vms; i++)
        if (o[i].status == LXM__EVAC_MIGRATED && o[i].downtime_ms > worst)
            worst = o[i].downtime_ms;
    lxm__json_str(g, "source", ctx->source);
    lxm__json_str(g, "policy", lxm__plan_policy_name(ctx->params.policy));
    lxm__json_uint(g, "batch_size", ctx->conf.batch_size);
    lxm__json_str(g, "batch_size_origin", ctx->conf.batch_size_origin);
    lxm__json_uint(g, "dest_cap", r->o->dest_cap);
    lxm__json_uint(g, "max_attempts", r->o->max_attempts);
    lxm__json_bool(g, "interrupted", r->interrupted);
    lxm__json_uint(g, "total_ms", total_ms);
    lxm__json_uint(g, "worst_downtime_ms", worst);
    lxm__json_int(g, "exit_status", exit_status);
    lxm__json_key(g, "totals");
    yajl_gen_map_open(g);
    lxm__json_uint(g, "vms", c->total);
    lxm__json_uint(g, "migrated", c->migrated);
    lxm__json_uint(g, "failed", c->failed);
    lxm__json_uint(g, "refused", c->refused);
    lxm__json_uint(g, "cancelled", c->cancelled);
    yajl_gen_map_close(g);
    lxm__json_key(g, "vms");
    yajl_gen_array_open(g);
    for (i = 0; i < ctx->nr_vms; i++) {
        yajl_gen_map_open(g);
        json_outcome(g, r, &o[i]);
        lxm__json_uint(g, "memory_bytes", ctx->vms[i].info.memory_bytes);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    json_print(g);
}

/* ---- entry points ------------------------------------------------- */

static run_opts *opts_get(struct evac_ctx *ctx)
{
    run_opts *o = ctx->run;

    if (o)
        return o;
    o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->dest_cap = LXM__EVAC_DEST_CAP_DEFAULT;
    o->max_attempts = LXM__EVAC_ATTEMPTS_DEFAULT;
    o->verify = true;
    ctx->run = o;
    return o;
}

int xlmig_evac_run_opt(struct evac_ctx *ctx, int opt, const char *arg)
{
    run_opts *o = opts_get(ctx);
    uint64_t v;

    if (!o) {
        xlmig_error(ctx->cmd, "out of memory");
        return XLMIG_EXIT_FAIL;
    }
    switch (opt) {
    case XLMIG_OPT_DEST_CAP:
        if (!xlmig_parse_u64(arg, 1000, &v))
            return xlmig_usage_error(ctx->cmd,
                                     "bad --dest-cap '%s' (0 = no cap)", arg);
        o->dest_cap = (unsigned int)v;
        return -1;
    case XLMIG_OPT_MAX_ATTEMPTS:
        if (!xlmig_parse_u64(arg, 100, &v) || !v)
            return xlmig_usage_error(ctx->cmd,
                                     "bad --max-attempts '%s' (1 to 100)", arg);
        o->max_attempts = (unsigned int)v;
        return -1;
    case XLMIG_OPT_JSON_EVENTS:
        o->json_events = true;
        return -1;
    case XLMIG_OPT_DOWNTIME_MS:
        if (!xlmig_parse_u64(arg, 3600000, &v) || !v)
            return xlmig_usage_error(ctx->cmd, "bad --downtime-ms '%s'", arg);
        o->downtime_ms = v;
        return -1;
    case XLMIG_OPT_BANDWIDTH:
        if (!xlmig_parse_u64(arg, 1000000, &v) || !v)
            return xlmig_usage_error(ctx->cmd, "bad --bandwidth '%s' (MB/s)",
                                     arg);
        o->bandwidth = v * 1000000;
        return -1;
    case XLMIG_OPT_NO_VERIFY:
        o->verify = false;
        return -1;
    default:
        return xlmig_usage_error(ctx->cmd, "unsupported option");
    }
}

int xlmig_evac_run(struct evac_ctx *ctx)
{
    run_state r;
    lxm__evac_params p;
    lxm__evac_counts c;
    const lxm__evac_outcome *o;
    sigset_t set, old;
    pthread_t sig_tid;
    bool sig_started = false;
    uint64_t total_ms;
    int rc, ret = XLMIG_EXIT_FAIL;

    memset(&r, 0, sizeof(r));
    r.ctx = ctx;
    r.o = opts_get(ctx);
    if (!r.o) {
        xlmig_error(ctx->cmd, "out of memory");
        return XLMIG_EXIT_FAIL;
    }
    r.tty = isatty(STDERR_FILENO) && !r.o->json_events;
    pthread_mutex_init(&r.lock, NULL);
    pthread_mutex_init(&r.out_lock, NULL);
    r.conns = calloc(ctx->nr_vms ? ctx->nr_vms : 1, sizeof(*r.conns));
    r.bars = calloc(ctx->nr_vms ? ctx->nr_vms : 1, sizeof(*r.bars));
    if (!r.conns || !r.bars) {
        xlmig_error(ctx->cmd, "out of memory");
        goto out;
    }

    lxm__evac_params_init(&p);
    p.batch_size = ctx->conf.batch_size ? ctx->conf.batch_size : 1;
    p.dest_cap = r.o->dest_cap;
    p.max_attempts = r.o->max_attempts;
    p.plan = ctx->params;
    p.migrate = migrate_job;
    p.migrate_opaque = &r;
    p.event = on_event;
    p.event_opaque = &r;
    rc = lxm__evac_sched_new(&p, &ctx->hosts[ctx->src], ctx->hosts,
                             ctx->nr_hosts, ctx->vms, ctx->nr_vms, &ctx->plan,
                             &r.s);
    if (rc) {
        xlmig_error(ctx->cmd, "cannot run the plan: %s", lxm_strerror(rc));
        goto out;
    }

    r.xs = xlmig_evac_xs_open(ctx, p.batch_size);
    if (r.o->json_events) {
        yajl_gen g = lxm__json_new();

        if (g) {
            lxm__json_str(g, "event", "start");
            lxm__json_str(g, "source", ctx->source);
            lxm__json_uint(g, "total", ctx->nr_vms);
            lxm__json_uint(g, "planned",
                           ctx->plan.nr_entries - ctx->plan.nr_refused);
            lxm__json_uint(g, "refused", ctx->plan.nr_refused);
            lxm__json_uint(g, "batch_size", p.batch_size);
            lxm__json_str(g, "batch_size_origin", ctx->conf.batch_size_origin);
            lxm__json_uint(g, "dest_cap", p.dest_cap);
            json_print(g);
        }
    } else if (!ctx->json) {
        fprintf(stderr,
                "evacuating %s: %zu VMs (%zu refused by the plan), batch %u"
                " (%s), at most %u into one host\n",
                ctx->source, ctx->nr_vms, ctx->plan.nr_refused, p.batch_size,
                ctx->conf.batch_size_origin, p.dest_cap);
    }

    /* Signals go to the signal thread only: block them before any
     * thread starts (the workers inherit the mask). */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    if (!pthread_create(&sig_tid, NULL, signal_thread, &r))
        sig_started = true;

    r.t0 = lxm__migrate_now_ms();
    rc = lxm__evac_sched_run(r.s);
    total_ms = lxm__migrate_now_ms() - r.t0;

    __atomic_store_n(&r.done, 1, __ATOMIC_SEQ_CST);
    if (sig_started)
        pthread_join(sig_tid, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        xlmig_error(ctx->cmd, "cannot start the migrations: %s",
                    lxm_strerror(rc));

    lxm__evac_sched_counts(r.s, &c);
    o = lxm__evac_sched_outcomes(r.s);
    if (c.migrated == c.total)
        ret = XLMIG_EXIT_OK;
    else if (r.interrupted)
        ret = XLMIG_EXIT_CANCELLED;
    else
        ret = XLMIG_EXIT_FAIL;
    xlmig_evac_xs_end(&r.xs, &c, r.interrupted, ret);
    if (ctx->json)
        print_json(&r, o, &c, total_ms, ret);
    else if (!r.o->json_events)
        print_table(&r, o, total_ms);
    if (ret != XLMIG_EXIT_OK && !ctx->json && !r.o->json_events)
        xlmig_error(ctx->cmd,
                    "%zu of %zu VMs are still on %s (%zu failed, %zu refused,"
                    " %zu cancelled)",
                    c.total - c.migrated, c.total, ctx->source, c.failed,
                    c.refused, c.cancelled);

out:
    xlmig_evac_xs_close(r.xs);
    lxm__evac_sched_free(r.s);
    free(r.conns);
    free(r.bars);
    pthread_mutex_destroy(&r.lock);
    pthread_mutex_destroy(&r.out_lock);
    return ret;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
