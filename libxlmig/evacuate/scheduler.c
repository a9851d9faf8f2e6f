/*
 * scheduler.c - runs an evacuation plan: a sliding window of
 * migrations, a per-destination cap, retries on other hosts, one
 * outcome per VM.
 *
 * Entry points (evacuate.h, "scheduler"): lxm__evac_params_init(),
 * lxm__evac_sched_new(), _run(), _cancel(), _cancelled(), _outcomes(),
 * _counts(), _free(), lxm__evac_job_progress(), lxm__evac_status_name().
 *
 * How a run goes:
 *   _new      checks the plan against the VMs and hosts, gives refused
 *             VMs their outcome, books each planned VM's memory on its
 *             host
 *   _run      reports the refused VMs, starts min(batch_size, VMs to
 *             move) workers, joins them, reports DONE
 *   worker    takes the first pending VM (plan order) whose destination
 *             has fewer than dest_cap migrations coming in, runs the
 *             migrate callback without the lock, then books the result:
 *             migrated; or the host is marked failed for that VM, its
 *             memory given back, and lxm__plan_pick() chooses another
 *             host (pending again) until max_attempts; an UNKNOWN
 *             result (lost after the commit point) is never retried
 *   _cancel   every pending VM is cancelled at once, every running
 *             attempt gets its cancel flag; workers start nothing more
 *
 * A VM is never lost: each is exactly one of pending, running or
 * finished, and a worker exits only when none is pending or running.
 *
 * Lock order: s->lock only (a leaf).  Callbacks are never called with
 * it held: events are built under it and emitted after unlocking.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "libxlmig_internal.h"
#include "evacuate/evacuate.h"

typedef struct vm_state {
    lxm__evac_outcome *o; /* in s->out; dest: the target while pending */
    uint64_t memory;      /* booked on out.dest while not failed */
    lxm__migrate_cancel cancel;
    bool *failed_on; /* nr_hosts entries, into s->failed_on */
} vm_state;

struct lxm__evac_sched {
    /* Immutable after _new. */
    lxm__evac_params p;
    const lxm__evac_host *src;
    const lxm__evac_host *hosts;
    size_t nr_hosts;
    const lxm__evac_vm *vms;
    size_t nr_vms;
    size_t *order; /* vm indices in plan order */
    uint64_t t0;   /* lxm__migrate_now_ms() at _run */

    /* Protected by lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a VM finished or became startable; cancel */
    vm_state *v;
    lxm__evac_outcome *out;  /* nr_vms, vms[] order */
    bool *failed_on;         /* nr_vms * nr_hosts */
    uint64_t *free_left;     /* per host, after the bookings */
    unsigned int *incoming;  /* per host: attempts in flight into it */
    lxm__evac_counts counts; /* running: also the window in use */
    bool cancelling;
    bool ran;
    unsigned int emitters; /* _cancel calls still emitting: DONE waits */
};

const char *lxm__evac_status_name(lxm__evac_status s)
{
    switch (s) {
    case LXM__EVAC_PENDING:
        return "pending";
    case LXM__EVAC_RUNNING:
        return "migrating";
    case LXM__EVAC_MIGRATED:
        return "migrated";
    case LXM__EVAC_FAILED:
        return "failed";
    case LXM__EVAC_REFUSED:
        return "refused";
    case LXM__EVAC_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}

void lxm__evac_params_init(lxm__evac_params *p)
{
    memset(p, 0, sizeof(*p));
    p->batch_size = LXM__EVAC_BATCH_DEFAULT;
    p->dest_cap = LXM__EVAC_DEST_CAP_DEFAULT;
    p->max_attempts = LXM__EVAC_ATTEMPTS_DEFAULT;
    lxm__plan_params_init(&p->plan);
}

static uint64_t elapsed(const lxm__evac_sched *s)
{
    uint64_t now = lxm__migrate_now_ms();

    return now > s->t0 ? now - s->t0 : 0;
}

static void host_name(const lxm__evac_sched *s, int h, char *buf, size_t len)
{
    const char *n = NULL;

    if (h >= 0 && (size_t)h < s->nr_hosts && s->hosts[h].pool)
        n = s->hosts[h].pool->name;
    snprintf(buf, len, "%s", n ? n : "");
}

/* Append "; more" (or just "more") to a reason, truncating. */
static void reason_add(char *r, size_t len, const char *fmt, ...)
    LXM_PRINTF(3, 4);
static void reason_add(char *r, size_t len, const char *fmt, ...)
{
    size_t used = strlen(r);
    va_list ap;

    if (used && used + 2 < len) {
        memcpy(r + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(r + used, len - used, fmt, ap);
    va_end(ap);
}

static void count_move(lxm__evac_sched *s, lxm__evac_status from,
                       lxm__evac_status to)
{
    size_t *slot[] = {
        [LXM__EVAC_PENDING] = &s->counts.pending,
        [LXM__EVAC_RUNNING] = &s->counts.running,
        [LXM__EVAC_MIGRATED] = &s->counts.migrated,
        [LXM__EVAC_FAILED] = &s->counts.failed,
        [LXM__EVAC_REFUSED] = &s->counts.refused,
        [LXM__EVAC_CANCELLED] = &s->counts.cancelled,
    };

    (*slot[from])--;
    (*slot[to])++;
}

static void book(lxm__evac_sched *s, vm_state *v, int h)
{
    v->o->dest = h;
    host_name(s, h, v->o->destination, sizeof(v->o->destination));
    s->free_left[h] =
        s->free_left[h] > v->memory ? s->free_left[h] - v->memory : 0;
}

static void unbook(lxm__evac_sched *s, vm_state *v)
{
    if (v->o->dest >= 0)
        s->free_left[v->o->dest] += v->memory;
}

int lxm__evac_sched_new(const lxm__evac_params *p, const lxm__evac_host *src,
                        const lxm__evac_host *hosts, size_t nr_hosts,
                        const lxm__evac_vm *vms, size_t nr_vms,
                        const lxm__plan *plan, lxm__evac_sched **s_r)
{
    lxm__evac_sched *s = NULL;
    const lxm__plan_entry *e;
    vm_state *v;
    size_t i, cells;
    bool *seen = NULL;
    int rc = LXM_ERROR_INVAL;

    *s_r = NULL;
    if (!p || !p->migrate || !p->batch_size || !p->max_attempts || !src ||
        nr_hosts > LXM__POOL_MAX_HOSTS || (nr_hosts && !hosts) ||
        (nr_vms && !vms) || !plan || plan->nr_entries != nr_vms)
        return LXM_ERROR_INVAL;

    s = calloc(1, sizeof(*s));
    seen = calloc(nr_vms ? nr_vms : 1, sizeof(*seen));
    if (!s || !seen) {
        rc = LXM_ERROR_NOMEM;
        goto fail;
    }
    s->p = *p;
    s->src = src;
    s->hosts = hosts;
    s->nr_hosts = nr_hosts;
    s->vms = vms;
    s->nr_vms = nr_vms;
    s->order = calloc(nr_vms ? nr_vms : 1, sizeof(*s->order));
    s->v = calloc(nr_vms ? nr_vms : 1, sizeof(*s->v));
    s->out = calloc(nr_vms ? nr_vms : 1, sizeof(*s->out));
    cells = nr_vms * nr_hosts; /* hosts <= LXM__POOL_MAX_HOSTS */
    s->failed_on = calloc(cells ? cells : 1, sizeof(*s->failed_on));
    s->free_left = calloc(nr_hosts ? nr_hosts : 1, sizeof(*s->free_left));
    s->incoming = calloc(nr_hosts ? nr_hosts : 1, sizeof(*s->incoming));
    if (!s->order || !s->v || !s->out || !s->failed_on || !s->free_left ||
        !s->incoming) {
        rc = LXM_ERROR_NOMEM;
        goto fail;
    }
    for (i = 0; i < nr_hosts; i++)
        s->free_left[i] = hosts[i].reachable ? hosts[i].info.free_memory : 0;

    s->counts.total = nr_vms;
    for (i = 0; i < nr_vms; i++) {
        e = &plan->entries[i];
        if (e->vm >= nr_vms || seen[e->vm] ||
            (e->dest >= 0 && (size_t)e->dest >= nr_hosts))
            goto fail;
        seen[e->vm] = true;
        s->order[i] = e->vm;
        v = &s->v[e->vm];
        v->o = &s->out[e->vm];
        v->failed_on = &s->failed_on[e->vm * nr_hosts];
        v->memory = vms[e->vm].info.memory_bytes;
        snprintf(v->o->name, sizeof(v->o->name), "%s", vms[e->vm].info.name);
        v->o->dest = -1;
        if (e->dest < 0) {
            v->o->status = LXM__EVAC_REFUSED;
            snprintf(v->o->reason, sizeof(v->o->reason), "%s",
                     e->reason[0] ? e->reason : "no host can take it");
            s->counts.refused++;
        } else {
            v->o->status = LXM__EVAC_PENDING;
            book(s, v, e->dest);
            s->counts.pending++;
        }
    }
    free(seen);
    seen = NULL;

    if (pthread_mutex_init(&s->lock, NULL)) {
        rc = LXM_ERROR_FAIL;
        goto fail;
    }
    if (pthread_cond_init(&s->cond, NULL)) {
        pthread_mutex_destroy(&s->lock);
        rc = LXM_ERROR_FAIL;
        goto fail;
    }
    *s_r = s;
    return 0;

fail:
    free(seen);
    if (s) {
        free(s->order);
        free(s->v);
        free(s->out);
        free(s->failed_on);
        free(s->free_left);
        free(s->incoming);
        free(s);
    }
    return rc;
}

void lxm__evac_sched_free(lxm__evac_sched *s)
{
    if (!s)
        return;
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s->order);
    free(s->v);
    free(s->out);
    free(s->failed_on);
    free(s->free_left);
    free(s->incoming);
    free(s);
}

const lxm__evac_outcome *lxm__evac_sched_outcomes(const lxm__evac_sched *s)
{
    /* Read after _run: the workers are joined, nothing changes. */
    return s->out;
}

void lxm__evac_sched_counts(lxm__evac_sched *s, lxm__evac_counts *c)
{
    pthread_mutex_lock(&s->lock);
    *c = s->counts;
    pthread_mutex_unlock(&s->lock);
}

bool lxm__evac_sched_cancelled(lxm__evac_sched *s)
{
    bool r;

    pthread_mutex_lock(&s->lock);
    r = s->cancelling;
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* ---- events --------------------------------------------------------- */

static void emit(const lxm__evac_sched *s, const lxm__evac_event *ev)
{
    if (s->p.event)
        s->p.event(s->p.event_opaque, ev);
}

/* Fill an event's common part.  Caller holds s->lock. */
static void event_init(lxm__evac_sched *s, lxm__evac_event *ev,
                       lxm__evac_event_kind kind, size_t vm, int dest,
                       unsigned int attempt)
{
    memset(ev, 0, sizeof(*ev));
    ev->kind = kind;
    ev->vm = vm;
    ev->dest = dest;
    ev->attempt = attempt;
    ev->counts = s->counts;
    ev->elapsed_ms = elapsed(s);
}

void lxm__evac_job_progress(lxm__evac_job *job, const lxm__migrate_progress *p)
{
    lxm__evac_sched *s = job->sched;
    lxm__evac_event ev;

    pthread_mutex_lock(&s->lock);
    event_init(s, &ev, LXM__EVAC_EV_PROGRESS, job->vm, job->dest, job->attempt);
    pthread_mutex_unlock(&s->lock);
    ev.progress = p;
    emit(s, &ev);
}

/* ---- cancel --------------------------------------------------------- */

/*
 * Cancel every pending VM; flag the running ones.  Caller holds
 * s->lock; *done_r (malloc'd, caller frees after emitting FINISHED for
 * each) lists the VMs cancelled here.  Returns false if already
 * cancelling.
 */
static bool cancel_locked(lxm__evac_sched *s, size_t **done_r, size_t *nr_r)
{
    size_t i, *done;
    vm_state *v;

    *done_r = NULL;
    *nr_r = 0;
    if (s->cancelling)
        return false;
    s->cancelling = true;
    done = calloc(s->nr_vms ? s->nr_vms : 1, sizeof(*done));
    for (i = 0; i < s->nr_vms; i++) {
        v = &s->v[i];
        if (v->o->status == LXM__EVAC_RUNNING) {
            __atomic_store_n(&v->cancel.requested, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        if (v->o->status != LXM__EVAC_PENDING)
            continue;
        unbook(s, v);
        count_move(s, LXM__EVAC_PENDING, LXM__EVAC_CANCELLED);
        v->o->status = LXM__EVAC_CANCELLED;
        v->o->end_ms = elapsed(s);
        reason_add(v->o->reason, sizeof(v->o->reason), "%s",
                   v->o->attempts ? "cancelled before its retry"
                                  : "cancelled before it started");
        if (done)
            done[(*nr_r)++] = i;
    }
    pthread_cond_broadcast(&s->cond);
    *done_r = done;
    return true;
}

/* Emit CANCELLING and a FINISHED per VM in done (freed). */
static void emit_cancelled(lxm__evac_sched *s, size_t *done, size_t nr)
{
    lxm__evac_outcome snap;
    lxm__evac_event ev;
    size_t i;

    pthread_mutex_lock(&s->lock);
    event_init(s, &ev, LXM__EVAC_EV_CANCELLING, 0, -1, 0);
    pthread_mutex_unlock(&s->lock);
    emit(s, &ev);
    for (i = 0; i < nr; i++) {
        pthread_mutex_lock(&s->lock);
        snap = s->out[done[i]];
        event_init(s, &ev, LXM__EVAC_EV_FINISHED, done[i], snap.dest,
                   snap.attempts);
        pthread_mutex_unlock(&s->lock);
        ev.outcome = &snap;
        emit(s, &ev);
    }
    free(done);
}

void lxm__evac_sched_cancel(lxm__evac_sched *s)
{
    size_t *done, nr;
    bool first, ran;

    pthread_mutex_lock(&s->lock);
    first = cancel_locked(s, &done, &nr);
    ran = s->ran;
    if (first && ran)
        s->emitters++;
    pthread_mutex_unlock(&s->lock);
    if (!first || !ran) {
        free(done); /* before _run: _run reports them */
        return;
    }
    emit_cancelled(s, done, nr);
    pthread_mutex_lock(&s->lock);
    s->emitters--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* ---- workers -------------------------------------------------------- */

/* The first pending VM, in plan order, whose host has room.  Caller
 * holds s->lock.  Returns its index or -1. */
static ssize_t pick_startable(lxm__evac_sched *s)
{
    size_t i, vm;
    vm_state *v;

    if (s->cancelling)
        return -1;
    for (i = 0; i < s->nr_vms; i++) {
        vm = s->order[i];
        v = &s->v[vm];
        if (v->o->status != LXM__EVAC_PENDING)
            continue;
        if (s->p.dest_cap && s->incoming[v->o->dest] >= s->p.dest_cap)
            continue;
        return (ssize_t)vm;
    }
    return -1;
}

/*
 * Book one attempt's result.  Caller holds s->lock.  Fills ev (and
 * snap) with the event to emit after unlocking: FINISHED or RETRY.
 */
static void book_result(lxm__evac_sched *s, lxm__evac_job *job,
                        lxm__migrate_status st, const lxm__migrate_report *rep,
                        lxm__evac_event *ev, lxm__evac_outcome *snap)
{
    vm_state *v = &s->v[job->vm];
    char tried[LXM__NAME_MAX], why[256];
    const char *err = rep->error[0] ? rep->error : lxm_strerror(rep->rc);
    lxm__evac_status to;
    int next = -1;

    s->incoming[job->dest]--;
    v->o->total_ms = rep->total_ms;
    v->o->downtime_ms = rep->downtime_ms;
    v->o->bytes_wire += rep->bytes_wire;
    v->o->gate_wait_ms += job->gate_wait_ms;
    host_name(s, job->dest, tried, sizeof(tried));

    if (st == LXM__MIG_MIGRATED) {
        to = LXM__EVAC_MIGRATED;
        v->o->reason[0] = '\0';
    } else if (st == LXM__MIG_UNKNOWN) {
        /* It may run on the destination: never start it again. */
        to = LXM__EVAC_FAILED;
        reason_add(v->o->reason, sizeof(v->o->reason),
                   "to %s: state unknown after the commit point: %s", tried,
                   err);
    } else if (s->cancelling) {
        unbook(s, v);
        to = LXM__EVAC_CANCELLED;
        if (st == LXM__MIG_CANCELLED)
            reason_add(v->o->reason, sizeof(v->o->reason),
                       "cancelled while migrating to %s; it runs on the source",
                       tried);
        else
            reason_add(v->o->reason, sizeof(v->o->reason),
                       "to %s: %s; not retried (cancelled)", tried, err);
    } else {
        v->failed_on[job->dest] = true;
        unbook(s, v);
        reason_add(v->o->reason, sizeof(v->o->reason), "to %s: %s", tried, err);
        to = LXM__EVAC_FAILED;
        if (v->o->attempts < s->p.max_attempts) {
            why[0] = '\0';
            next = lxm__plan_pick(&s->p.plan, s->src, s->hosts, s->nr_hosts,
                                  s->free_left, v->failed_on, &s->vms[job->vm],
                                  why, sizeof(why));
            if (next >= 0 && (size_t)next < s->nr_hosts &&
                !v->failed_on[next]) {
                to = LXM__EVAC_PENDING;
                book(s, v, next);
            } else {
                reason_add(v->o->reason, sizeof(v->o->reason),
                           "no other host: %s", why[0] ? why : "none fits");
            }
        }
    }
    if (to != LXM__EVAC_PENDING)
        v->o->end_ms = elapsed(s);
    if (to == LXM__EVAC_FAILED || to == LXM__EVAC_CANCELLED) {
        /* Where it was last tried (the VM is on the source). */
        v->o->dest = job->dest;
        snprintf(v->o->destination, sizeof(v->o->destination), "%s", tried);
    }
    count_move(s, LXM__EVAC_RUNNING, to);
    v->o->status = to;
    *snap = *v->o;
    event_init(s, ev,
               to == LXM__EVAC_PENDING ? LXM__EVAC_EV_RETRY
                                       : LXM__EVAC_EV_FINISHED,
               job->vm, v->o->dest, job->attempt);
    ev->outcome = snap;
    pthread_cond_broadcast(&s->cond);
}

static void *worker(void *arg)
{
    lxm__evac_sched *s = arg;
    lxm__migrate_report rep;
    lxm__migrate_status st;
    lxm__evac_outcome snap;
    lxm__evac_event ev;
    lxm__evac_job job;
    vm_state *v;
    ssize_t vm;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        vm = pick_startable(s);
        if (vm < 0) {
            if (!s->counts.pending && !s->counts.running)
                break;
            if (s->cancelling && !s->counts.pending)
                break; /* the running ones finish on their workers */
            pthread_cond_wait(&s->cond, &s->lock);
            continue;
        }
        v = &s->v[vm];
        count_move(s, LXM__EVAC_PENDING, LXM__EVAC_RUNNING);
        v->o->status = LXM__EVAC_RUNNING;
        v->o->attempts++;
        if (v->o->attempts == 1)
            v->o->start_ms = elapsed(s);
        __atomic_store_n(&v->cancel.requested, 0, __ATOMIC_SEQ_CST);
        s->incoming[v->o->dest]++;
        memset(&job, 0, sizeof(job));
        job.vm = (size_t)vm;
        job.dest = v->o->dest;
        job.attempt = v->o->attempts;
        job.cancel = &v->cancel;
        job.sched = s;
        event_init(s, &ev, LXM__EVAC_EV_STARTED, job.vm, job.dest, job.attempt);
        pthread_mutex_unlock(&s->lock);

        emit(s, &ev);
        memset(&rep, 0, sizeof(rep));
        st = s->p.migrate(s->p.migrate_opaque, &job, &rep);
        if (st > LXM__MIG_UNKNOWN)
            st = LXM__MIG_UNKNOWN; /* a callback bug: assume the worst */
        rep.status = st;

        pthread_mutex_lock(&s->lock);
        book_result(s, &job, st, &rep, &ev, &snap);
        pthread_mutex_unlock(&s->lock);
        emit(s, &ev);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- run ------------------------------------------------------------ */

int lxm__evac_sched_run(lxm__evac_sched *s)
{
    lxm__evac_outcome snap;
    lxm__evac_event ev;
    pthread_t *tids = NULL;
    size_t i, nr_workers, started = 0, *done = NULL, nr_done = 0;
    bool cancel_first;
    char tname[16]; /* a thread name's limit */
    int rc = 0;

    pthread_mutex_lock(&s->lock);
    if (s->ran) {
        pthread_mutex_unlock(&s->lock);
        return LXM_ERROR_INVAL;
    }
    s->ran = true;
    s->t0 = lxm__migrate_now_ms();
    cancel_first = s->cancelling;
    nr_workers = LXM_MIN((size_t)s->p.batch_size, s->counts.pending);
    pthread_mutex_unlock(&s->lock);

    /* Refused VMs first: they have their outcome already. */
    for (i = 0; i < s->nr_vms; i++) {
        pthread_mutex_lock(&s->lock);
        snap = s->out[s->order[i]];
        event_init(s, &ev, LXM__EVAC_EV_FINISHED, s->order[i], -1, 0);
        pthread_mutex_unlock(&s->lock);
        if (snap.status != LXM__EVAC_REFUSED)
            continue;
        ev.outcome = &snap;
        emit(s, &ev);
    }
    if (cancel_first) {
        /* Cancelled before _run: report what _cancel did. */
        pthread_mutex_lock(&s->lock);
        for (i = 0; i < s->nr_vms; i++)
            if (s->out[i].status == LXM__EVAC_CANCELLED)
                nr_done++;
        done = calloc(nr_done ? nr_done : 1, sizeof(*done));
        nr_done = 0;
        for (i = 0; done && i < s->nr_vms; i++)
            if (s->out[i].status == LXM__EVAC_CANCELLED)
                done[nr_done++] = i;
        pthread_mutex_unlock(&s->lock);
        emit_cancelled(s, done, nr_done);
        nr_workers = 0;
    }

    if (nr_workers) {
        tids = calloc(nr_workers, sizeof(*tids));
        for (i = 0; tids && i < nr_workers; i++) {
            if (pthread_create(&tids[i], NULL, worker, s))
                break;
            snprintf(tname, sizeof(tname), "lxm-evac-%u",
                     (unsigned int)(i % 1000));
            pthread_setname_np(tids[i], tname);
            started++;
        }
        if (!started) {
            /* Nothing can run: every VM stays where it is. */
            rc = tids ? LXM_ERROR_FAIL : LXM_ERROR_NOMEM;
            lxm__evac_sched_cancel(s);
        }
        for (i = 0; i < started; i++)
            pthread_join(tids[i], NULL);
        free(tids);
    }

    pthread_mutex_lock(&s->lock);
    while (s->emitters) /* DONE is the last event */
        pthread_cond_wait(&s->cond, &s->lock);
    event_init(s, &ev, LXM__EVAC_EV_DONE, 0, -1, 0);
    pthread_mutex_unlock(&s->lock);
    emit(s, &ev);
    return rc;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
