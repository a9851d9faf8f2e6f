/*
 * libxlmig/evacuate/evacuate.h - host evacuation (issue 6): its
 * configuration, the pool, pre-checks, the placement planner and the
 * scheduler that runs the plan.
 *
 * One file per concern:
 *   xapi_conf.c  /etc/xapi.conf, then /etc/xapi.conf.d/ (evacuation-batch-size)
 *   pool.c       the pool file (/etc/xlmig/pool.conf)
 *   precheck.c   can this VM go to that host?  (pure)
 *   planner.c    which host does each VM go to?  (pure, deterministic)
 *   scheduler.c  runs a plan through the hosts' agents: a sliding
 *                window, retries on other hosts, per-VM outcomes
 *
 * Everything but the scheduler is pure: no sockets, no clocks, no
 * globals; the tests drive it with tables.
 */
#ifndef LXM_EVACUATE_H
#define LXM_EVACUATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xentoollog.h>

#include "backend/backend.h"

/* ---- configuration (xapi_conf.c) ----------------------------------- */

#define LXM__XAPI_CONF "/etc/xapi.conf"
#define LXM__XAPI_CONF_DIR "/etc/xapi.conf.d"
#define LXM__EVAC_BATCH_DEFAULT 10

typedef struct lxm__xapi_conf {
    unsigned int batch_size; /* evacuation-batch-size, >= 1 */
    /* where batch_size came from: "file:line", or "default" */
    char batch_size_origin[300];
} lxm__xapi_conf;

/*
 * Read main_path (NULL: LXM__XAPI_CONF), then every regular file of
 * dir_path (NULL: LXM__XAPI_CONF_DIR) in sorted order, xapi's way: one
 * `key = value` per line, '#' comments, blank lines, one pair of
 * surrounding quotes stripped from the value; the last setting wins.
 * A missing file or directory is not an error.  Keys other than
 * evacuation-batch-size are ignored.  evacuation-batch-size is taken
 * as max(1, |n|); a value that is not an integer is LXM_ERROR_INVAL
 * with "FILE:LINE: ..." in err.
 */
int lxm__xapi_conf_load(const char *main_path, const char *dir_path,
                        lxm__xapi_conf *c, char *err, size_t err_len);

/* ---- the pool (pool.c) --------------------------------------------- */

#define LXM__POOL_CONF "/etc/xlmig/pool.conf"
#define LXM__POOL_MAX_HOSTS 256

typedef struct lxm__pool_host {
    char name[LXM__NAME_MAX];
    char agent[256];     /* AGENT-ADDR[:PORT] or a control socket path */
    char migration[256]; /* migration=ADDR[:PORT]: where peers send the
                          * stream; "" = the agent address */
    /* other key=value pairs, kept for later use ("k=v\0k=v\0\0") */
    char extra[512];
} lxm__pool_host;

typedef struct lxm__pool {
    lxm__pool_host *hosts; /* owned */
    size_t nr_hosts;
} lxm__pool;

/*
 * One host per line: `NAME AGENT-ADDR[:PORT] [key=value ...]`, '#'
 * comments, blank lines.  Duplicate names, a bad address or an unknown
 * malformed pair are LXM_ERROR_INVAL with "FILE:LINE: ..." in err.
 */
int lxm__pool_load(const char *path, lxm__pool *p, char *err, size_t err_len);
void lxm__pool_dispose(lxm__pool *p); /* NULL ok; leaves it empty */
const lxm__pool_host *lxm__pool_find(const lxm__pool *p, const char *name);

/* ---- pre-checks (precheck.c) --------------------------------------- */

/* A host as the planner sees it. */
typedef struct lxm__evac_host {
    const lxm__pool_host *pool; /* borrowed */
    bool reachable;             /* its agent answered */
    lxm__host_info info;        /* valid when reachable */
    uint32_t nr_vms;            /* running guests now */
    bool is_spm;                /* oVirt's SPM grace applies (optional) */
} lxm__evac_host;

/* A VM to move, as the planner sees it. */
typedef struct lxm__evac_vm {
    lxm__domain_info info;
    bool ha_protected; /* warned about, never refused */
} lxm__evac_vm;

typedef enum lxm__check_result {
    LXM__CHECK_OK = 0,
    LXM__CHECK_WARN = 1,   /* may go; reason says what to watch */
    LXM__CHECK_REFUSE = 2, /* must not go there (or anywhere) */
} lxm__check_result;

/*
 * VM-only rules (PCI passthrough, vUSB, nomigrate, on-boot=reset
 * refuse; HA protection warns): true when the VM cannot go anywhere.
 */
lxm__check_result lxm__precheck_vm(const lxm__evac_vm *vm, char *reason,
                                   size_t reason_len);
/*
 * VM -> host rules: destination Xen version >= source, same CPU
 * vendor, destination featureset a superset of the VM's, enough free
 * memory (free_memory as given: the planner passes what is left after
 * its earlier placements).  The first failing rule is the reason.
 */
lxm__check_result lxm__precheck_host(const lxm__evac_vm *vm,
                                     const lxm__host_info *src,
                                     const lxm__evac_host *dst,
                                     uint64_t free_memory, char *reason,
                                     size_t reason_len);

/* ---- the planner (planner.c) --------------------------------------- */

typedef enum lxm__plan_policy {
    LXM__PLAN_BINPACK = 0, /* default: fullest host that fits */
    LXM__PLAN_EVEN = 1,    /* oVirt's evenly distributed */
    LXM__PLAN_POWER_SAVING = 2,
} lxm__plan_policy;

typedef struct lxm__plan_params {
    lxm__plan_policy policy;
    /* oVirt's evenly-distributed parameters (defaults 10, 5, 5) */
    uint32_t high_vm_count;
    uint32_t migration_threshold;
    uint32_t spm_vm_grace;
} lxm__plan_params;

void lxm__plan_params_init(lxm__plan_params *p);
const char *lxm__plan_policy_name(lxm__plan_policy p);
int lxm__plan_policy_parse(const char *s); /* -1 when unknown */

typedef struct lxm__plan_entry {
    size_t vm;               /* index into the vms array */
    int dest;                /* index into the hosts array, -1: none */
    lxm__check_result check; /* OK, WARN (placed) or REFUSE (dest -1) */
    char reason[256];        /* why refused, or the warning; "" */
} lxm__plan_entry;

typedef struct lxm__plan {
    lxm__plan_entry *entries; /* owned; one per VM, in planning order */
    size_t nr_entries;
    size_t nr_refused;
} lxm__plan;

/*
 * Place every VM of src on hosts[] (src itself excluded by name;
 * unreachable hosts skipped).  Deterministic: the same input gives the
 * same plan (ties broken by host name, VMs planned largest first, then
 * by name).  Returns 0 also when some VMs are refused (see nr_refused).
 */
int lxm__plan_make(const lxm__plan_params *pp, const lxm__evac_host *src,
                   const lxm__evac_host *hosts, size_t nr_hosts,
                   const lxm__evac_vm *vms, size_t nr_vms, lxm__plan *plan);
void lxm__plan_dispose(lxm__plan *plan); /* NULL ok */

/*
 * Pick another host for one VM (a retry after a failed migration):
 * like the planner for that VM alone, skipping hosts whose excluded[i]
 * is true, with free_memory[i] as each host's memory left.  Returns
 * the host index or -1 (reason set).
 */
int lxm__plan_pick(const lxm__plan_params *pp, const lxm__evac_host *src,
                   const lxm__evac_host *hosts, size_t nr_hosts,
                   const uint64_t *free_memory, const bool *excluded,
                   const lxm__evac_vm *vm, char *reason, size_t reason_len);

/* ---- scheduler (scheduler.c) --------------------------------------- */

#include "migrate/migrate.h" /* the scheduler's callbacks use its types */

/*
 * Runs a plan: a sliding window of at most batch_size migrations, at
 * most dest_cap of them into any one host, a failed VM retried on
 * another host (lxm__plan_pick, skipping the hosts that failed for it,
 * with the memory each host has left), the others never stopped.  The
 * migrations themselves are a callback (the CLI sends "migrate" to the
 * source host's agent; the tests script outcomes), run on the
 * scheduler's worker threads; the source agent's stop-and-copy gate
 * keeps their pauses apart.
 *
 * Threads: lxm__evac_sched_run() starts batch_size workers and returns
 * when every VM has an outcome.  The migrate callback runs on a worker;
 * the event callback on a worker or the caller of _run() or _cancel(),
 * possibly on several at once, never with the scheduler's lock held.
 * lxm__evac_sched_cancel() may be called from any thread (not from a
 * signal handler), also from the callbacks.
 */

#define LXM__EVAC_DEST_CAP_DEFAULT 3
#define LXM__EVAC_ATTEMPTS_DEFAULT 2

typedef enum lxm__evac_status {
    LXM__EVAC_PENDING = 0, /* not started yet (or waiting for a retry) */
    LXM__EVAC_RUNNING = 1,
    LXM__EVAC_MIGRATED = 2,  /* runs on destination */
    LXM__EVAC_FAILED = 3,    /* every attempt failed: on the source, or
                              * (reason says so) state unknown */
    LXM__EVAC_REFUSED = 4,   /* the plan found no host for it */
    LXM__EVAC_CANCELLED = 5, /* stays on, or resumed on, the source */
} lxm__evac_status;

/* "pending", "migrating", "migrated", "failed", "refused", "cancelled" */
const char *lxm__evac_status_name(lxm__evac_status s);

/* One VM's outcome.  Times are ms since the run started. */
typedef struct lxm__evac_outcome {
    char name[LXM__NAME_MAX];
    lxm__evac_status status;
    int dest;                        /* host index: where it runs when
                                      * migrated, else the last tried;
                                      * -1: none */
    char destination[LXM__NAME_MAX]; /* that host's name, "" */
    char reason[512];                /* why not migrated; "" */
    unsigned int attempts;           /* migrations started */
    uint64_t start_ms, end_ms;       /* first start, final end (0: never
                                      * started) */
    uint64_t total_ms;               /* the last attempt's */
    uint64_t downtime_ms;            /* the last attempt's */
    uint64_t bytes_wire;             /* all attempts */
    uint64_t gate_wait_ms;           /* all attempts */
} lxm__evac_outcome;

typedef struct lxm__evac_counts {
    size_t total, pending, running, migrated, failed, refused, cancelled;
} lxm__evac_counts;

/* One migration attempt as the migrate callback sees it. */
typedef struct lxm__evac_job {
    size_t vm;            /* index into vms[] */
    int dest;             /* index into hosts[] */
    unsigned int attempt; /* 1, 2, ... */
    /* Set when the run is cancelled: the callback stops its migration
     * (the VM stays on, or resumes on, the source). */
    lxm__migrate_cancel *cancel;
    uint64_t gate_wait_ms;         /* out: set by the callback (0 ok) */
    struct lxm__evac_sched *sched; /* private */
} lxm__evac_job;

/*
 * Migrate vms[job->vm] to hosts[job->dest].  Fills rep (zeroed before
 * the call; status, error, total_ms, downtime_ms, bytes_wire are used)
 * and returns rep->status.  Call lxm__evac_job_progress() as it goes.
 */
typedef lxm__migrate_status lxm__evac_migrate_fn(void *opaque,
                                                 lxm__evac_job *job,
                                                 lxm__migrate_report *rep);

typedef enum lxm__evac_event_kind {
    LXM__EVAC_EV_STARTED = 0,    /* an attempt began: vm, dest, attempt */
    LXM__EVAC_EV_PROGRESS = 1,   /* progress of an attempt */
    LXM__EVAC_EV_RETRY = 2,      /* an attempt failed; vm goes to dest
                                  * next (outcome->reason: why) */
    LXM__EVAC_EV_FINISHED = 3,   /* a VM has its outcome (also refused and
                                  * cancelled-before-start VMs) */
    LXM__EVAC_EV_CANCELLING = 4, /* cancel requested: no new starts */
    LXM__EVAC_EV_DONE = 5,       /* every VM has an outcome (last event) */
} lxm__evac_event_kind;

typedef struct lxm__evac_event {
    lxm__evac_event_kind kind;
    size_t vm;                             /* not for CANCELLING, DONE */
    int dest;                              /* -1 when none */
    unsigned int attempt;                  /* STARTED, PROGRESS, RETRY */
    const lxm__evac_outcome *outcome;      /* a snapshot: FINISHED, RETRY */
    const lxm__migrate_progress *progress; /* PROGRESS */
    lxm__evac_counts counts;               /* after this event */
    uint64_t elapsed_ms;                   /* since the run started */
} lxm__evac_event;

typedef void lxm__evac_event_fn(void *opaque, const lxm__evac_event *ev);

typedef struct lxm__evac_params {
    unsigned int batch_size;   /* window: migrations in flight, >= 1 */
    unsigned int dest_cap;     /* in flight into one host; 0: no cap */
    unsigned int max_attempts; /* per VM, >= 1 (first host + retries) */
    lxm__plan_params plan;     /* for choosing retry hosts */
    lxm__evac_migrate_fn *migrate;
    void *migrate_opaque;
    lxm__evac_event_fn *event; /* NULL ok */
    void *event_opaque;
} lxm__evac_params;

/* batch 10, dest_cap 3, 2 attempts, default plan params, no callbacks. */
void lxm__evac_params_init(lxm__evac_params *p);

typedef struct lxm__evac_sched lxm__evac_sched;

/*
 * A scheduler for plan (made by lxm__plan_make for src, hosts and vms).
 * Everything passed is borrowed and must outlive the scheduler.
 * LXM_ERROR_INVAL when the params or the plan do not fit together.
 */
int lxm__evac_sched_new(const lxm__evac_params *p, const lxm__evac_host *src,
                        const lxm__evac_host *hosts, size_t nr_hosts,
                        const lxm__evac_vm *vms, size_t nr_vms,
                        const lxm__plan *plan, lxm__evac_sched **s_r);
void lxm__evac_sched_free(lxm__evac_sched *s); /* NULL ok; after _run */
/* Run every VM to an outcome.  Once per scheduler.  0, or an error when
 * no worker could be started (then every VM is cancelled, none moved). */
int lxm__evac_sched_run(lxm__evac_sched *s);
/* No new starts; in-flight attempts are asked to stop.  Idempotent;
 * before _run() it makes _run() cancel everything at once. */
void lxm__evac_sched_cancel(lxm__evac_sched *s);
bool lxm__evac_sched_cancelled(lxm__evac_sched *s);
/* Outcomes, one per VM in vms[] order; valid until _free (read them
 * after _run returned). */
const lxm__evac_outcome *lxm__evac_sched_outcomes(const lxm__evac_sched *s);
void lxm__evac_sched_counts(lxm__evac_sched *s, lxm__evac_counts *c);
/* From a migrate callback: pass progress on as a PROGRESS event. */
void lxm__evac_job_progress(lxm__evac_job *job, const lxm__migrate_progress *p);

#endif /* LXM_EVACUATE_H */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
