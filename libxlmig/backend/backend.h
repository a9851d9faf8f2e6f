/*
 * backend.h - the hypervisor backend ops table.
 *
 * Everything above this line (transport, codec, migration engine,
 * evacuation) is the same code for every backend.  Two backends:
 *
 *   backend-libxl.c  real Xen 4.17 through libxl (the only file that
 *                    includes <libxl.h>)
 *   backend-sim.c    simulated domains whose save/restore produce and
 *                    consume genuine Xen-format streams (the default on
 *                    machines without Xen)
 *
 * Threading: a backend instance may be called from several threads at
 * once (one per migration); each implementation does its own locking
 * and never calls back while holding it.  save() and restore() block
 * the calling thread until done.
 *
 * Errors: 0 or a negative LXM_ERROR_*; the backend logs the detail
 * once, where it is detected, through the logger given at open.
 */
#ifndef LXM_BACKEND_H
#define LXM_BACKEND_H

#include "libxlmig_internal.h"

#define LXM__NAME_MAX 64
#define LXM__FEATURESET_WORDS 16

typedef enum lxm__guest_kind {
    LXM__GUEST_PV = 0,
    LXM__GUEST_PVH = 1,
    LXM__GUEST_HVM = 2,
} lxm__guest_kind;

typedef enum lxm__dom_state {
    LXM__DOM_RUNNING = 0,
    LXM__DOM_PAUSED = 1,    /* paused by request */
    LXM__DOM_SUSPENDED = 2, /* saved (stop-and-copy done), not yet
                               * destroyed or resumed */
    LXM__DOM_INCOMING = 3,  /* being restored; invisible to list() */
} lxm__dom_state;

typedef struct lxm__domain_info {
    uint32_t domid;
    char name[LXM__NAME_MAX];
    char uuid[37];
    uint64_t memory_bytes;
    uint32_t vcpus;
    lxm__guest_kind kind;
    lxm__dom_state state;
    /* Refusal reasons for migration pre-checks (issue 6). */
    uint32_t nr_pci;  /* PCI passthrough devices */
    uint32_t nr_vusb; /* virtual USB controllers/devices */
    bool nomigrate;
    char on_boot[16]; /* "start", "reset", ... ("" = unknown) */
    /* Featureset the VM was started with (CPUID policy words). */
    uint32_t featureset[LXM__FEATURESET_WORDS];
    /* sim only: workload */
    uint64_t dirty_rate;  /* pages/s */
    uint64_t working_set; /* bytes */
    /* Addition (issue 6): an HA daemon protects (restarts) this VM;
     * evacuation pre-checks warn about it.  sim: from its metadata;
     * libxl: always false (no HA information there). */
    bool ha_protected;
} lxm__domain_info;

typedef struct lxm__host_info {
    char hostname[LXM__NAME_MAX];
    char backend[16]; /* "libxl", "sim" */
    uint16_t xen_major, xen_minor;
    char xen_extra[32];  /* ".7" etc */
    char cpu_vendor[16]; /* "GenuineIntel", "AuthenticAMD" */
    uint32_t featureset[LXM__FEATURESET_WORDS];
    uint64_t total_memory; /* bytes */
    uint64_t free_memory;  /* bytes available for new domains */
    uint32_t nr_cpus;
    uint32_t nr_domains; /* guests, dom0 excluded */
} lxm__host_info;

/* ---- save ---------------------------------------------------------- */

/* Pre-copy policies (only for backends that own the pre-copy loop; the
 * libxl backend accepts LXM__PRECOPY_XEN only, and non-live). */
typedef enum lxm__precopy_policy {
    LXM__PRECOPY_DOWNTIME = 0,          /* default: stop when estimated
                                  * downtime <= downtime_ms */
    LXM__PRECOPY_XEN = 1,               /* libxc's: 5 rounds or < 50 dirty */
    LXM__PRECOPY_SUSPEND_IF_NEEDED = 2, /* RHV: after N non-converging
                                  * rounds, stop and copy anyway */
    LXM__PRECOPY_ABORT_IF_BUSY = 3,     /* give up (VM stays on source) */
} lxm__precopy_policy;

typedef struct lxm__save_params {
    bool live; /* false: pause, copy, done */
    lxm__precopy_policy policy;
    uint32_t downtime_ms;     /* DOWNTIME limit, default 300 */
    uint32_t max_rounds;      /* bound for every policy, default 30 */
    uint32_t converge_rounds; /* SUSPEND/ABORT: non-converging
                                  * rounds tolerated, default 5 */
    /* Addition (issue 6): the host's stop-and-copy gate, NULL ok
     * (borrowed).  A backend that owns the pre-copy loop takes it
     * before it pauses the guest: when another migration from this
     * host holds it, the loop keeps doing live rounds (within
     * max_rounds) and then waits for it.  The migration engine releases
     * it once the destination confirms RUNNING or the source resumes,
     * so downtime windows of parallel migrations never overlap. */
    struct lxm__stopcopy_gate *gate;
    /* Addition (issue 3): what a stop-and-copy costs besides its pages,
     * in ms: the commit's round trips to the destination (the migration
     * engine measures them; 0 for a save to a file).  Added to every
     * downtime estimate of the policies. */
    uint32_t fixed_ms;
} lxm__save_params;

/*
 * The stop-and-copy gate (migrate/gate.c), one per host agent: at most
 * `slots` migrations of this host are paused at once (default 1).
 * Lock order: the gate's lock is a leaf.  try_take returns true when
 * taken; take waits (cancel: NULL ok, polled every 10 ms; returns
 * LXM_ERROR_ABORTED when *cancel becomes non-zero).
 */
typedef struct lxm__stopcopy_gate lxm__stopcopy_gate;
int lxm__stopcopy_gate_new(unsigned int slots, lxm__stopcopy_gate **g_r);
void lxm__stopcopy_gate_free(lxm__stopcopy_gate *g); /* NULL ok */
bool lxm__stopcopy_gate_try_take(lxm__stopcopy_gate *g);
int lxm__stopcopy_gate_take(lxm__stopcopy_gate *g, volatile int *cancel);
void lxm__stopcopy_gate_release(lxm__stopcopy_gate *g);
/* Migrations that waited for the gate, and the ms they waited (stats). */
void lxm__stopcopy_gate_stats(lxm__stopcopy_gate *g, uint64_t *waits_r,
                              uint64_t *wait_ms_r);

void lxm__save_params_init(lxm__save_params *p);

/* What a round-by-round save reports (progress callback). */
typedef struct lxm__save_progress {
    uint32_t round;         /* 1 = the first full copy */
    uint64_t pages_sent;    /* in this round so far */
    uint64_t pages_total;   /* planned for this round */
    uint64_t dirty_pages;   /* dirty set at the end of last round */
    uint64_t dirty_rate;    /* pages/s, measured */
    uint64_t bytes_written; /* stream bytes written so far */
    bool suspended;         /* set once: the guest is paused for
                                  * stop-and-copy; time stamp of the
                                  * downtime start */
    /* Addition (issue 6): the stop-and-copy gate (params->gate). */
    bool gate_held;        /* this save holds a slot; after a successful
                                  * save the engine releases it (a failed
                                  * save has released it already) */
    uint64_t gate_wait_ms; /* time spent waiting for it */
    /* Addition (issue 3): the policy stopped at max_rounds although the
     * dirty set did not fit its downtime limit (logged as a warning). */
    bool precopy_forced;
} lxm__save_progress;

/* Called from the saving thread; return non-zero to abort the save. */
typedef int lxm__save_progress_fn(void *opaque, const lxm__save_progress *p);

/*
 * The pre-copy policy, pure (migrate/precopy.c): called after each
 * round by backends that own the loop.  bandwidth: bytes/s measured on
 * the fd (the consumer's speed, back-pressure included).
 */
typedef enum lxm__precopy_decision {
    LXM__PRECOPY_CONTINUE = 0,
    LXM__PRECOPY_STOP_AND_COPY = 1,
    LXM__PRECOPY_ABORT = 2,
} lxm__precopy_decision;

typedef struct lxm__precopy_state {
    uint32_t round;            /* rounds completed, >= 1 */
    uint64_t dirty_pages;      /* dirty now (would be sent next) */
    uint64_t prev_dirty_pages; /* dirty at the end of the round before */
    uint64_t bandwidth;        /* bytes/s */
    uint32_t non_converging;   /* rounds in a row dirty did not shrink
                                  * (maintained by lxm__precopy_decide) */
} lxm__precopy_state;

/* Decide; updates st->non_converging. */
lxm__precopy_decision lxm__precopy_decide(const lxm__save_params *p,
                                          lxm__precopy_state *st);
/* Estimated stop-and-copy time for dirty pages at bandwidth, in ms. */
uint64_t lxm__precopy_estimate_ms(uint64_t dirty_pages, uint64_t bandwidth);
/* The downtime the policies compare with p->downtime_ms: that estimate
 * plus p->fixed_ms (saturating). */
uint64_t lxm__precopy_downtime_ms(const lxm__save_params *p,
                                  uint64_t dirty_pages, uint64_t bandwidth);
/* "downtime", "xen", "suspend-if-needed", "abort-if-busy". */
const char *lxm__precopy_policy_name(lxm__precopy_policy p);
int lxm__precopy_policy_parse(const char *s, lxm__precopy_policy *p_r);

/* ---- the ops table ------------------------------------------------- */

typedef struct lxm__backend lxm__backend;

typedef struct lxm__backend_opts {
    const char *state_dir;     /* sim: where domains live; NULL ok for
                                  * libxl (it keeps nothing) */
    xentoollog_logger *logger; /* borrowed; NULL ok */
    uint64_t sim_host_memory;  /* sim: host RAM for domains, bytes;
                                  * 0 = 16 GiB */
    const char *sim_hostname;  /* sim: NULL = gethostname() */
} lxm__backend_opts;

typedef struct lxm__backend_ops {
    const char *name;

    /* *b_r: caller must close(). */
    int (*open)(const lxm__backend_opts *opts, lxm__backend **b_r);
    void (*close)(lxm__backend *b); /* NULL ok; sim: domains stay on
                                         * disk and keep "running" */

    int (*host_info)(lxm__backend *b, lxm__host_info *info_r);
    /* *list_r: malloc'd array of *n_r, caller frees.  Excludes dom0 and
     * domains being restored. */
    int (*list)(lxm__backend *b, lxm__domain_info **list_r, int *n_r);
    /* By name or by decimal domid.  LXM_ERROR_NOTFOUND if none. */
    int (*domain_info)(lxm__backend *b, const char *name_or_id,
                       lxm__domain_info *info_r);
    /* libxl_domain_config as JSON (what xl puts in its save header).
     * *json_r: caller frees. */
    int (*domain_config)(lxm__backend *b, uint32_t domid, char **json_r);

    /*
     * Save the domain into fd (a pipe or socket; borrowed, not closed)
     * as a complete xl-format stream (xl header with the JSON config,
     * libxl v2, libxc v3, END).  On success the domain is left
     * SUSPENDED: the caller then destroy()s it (migration committed) or
     * resume()s it (migration failed after the save).  On failure the
     * backend has already resumed it where that is possible; it is
     * RUNNING again.  progress: NULL ok.
     */
    int (*save)(lxm__backend *b, uint32_t domid, int fd,
                const lxm__save_params *params, lxm__save_progress_fn *progress,
                void *opaque);

    /*
     * Create a domain from an xl-format stream read from fd (borrowed)
     * until its final END; bytes after it are not read.  name: NULL =
     * the name in the stream's config.  The new domain is left PAUSED
     * on success; on failure nothing of it remains.
     */
    int (*restore)(lxm__backend *b, int fd, const char *name,
                   uint32_t *domid_r);

    /* Cancel a save() in progress from another thread (libxl_ao_abort);
     * save() then fails with LXM_ERROR_ABORTED and resumes the guest. */
    int (*save_abort)(lxm__backend *b, uint32_t domid);

    int (*pause)(lxm__backend *b, uint32_t domid);
    int (*unpause)(lxm__backend *b, uint32_t domid);
    /* After a save: run the domain again on this host (suspend_cancel). */
    int (*resume)(lxm__backend *b, uint32_t domid);
    int (*destroy)(lxm__backend *b, uint32_t domid);
    int (*rename)(lxm__backend *b, uint32_t domid, const char *name);

    /* Optional (NULL when unsupported).  XXH3-128 of guest memory (a
     * fast checksum, not a security hash); sim only: proves a migration
     * lost nothing.  Only meaningful while the domain is not running. */
    int (*memory_digest)(lxm__backend *b, uint32_t domid, uint8_t digest[16]);
} lxm__backend_ops;

extern const lxm__backend_ops lxm__backend_sim_ops;
#ifdef LXM_HAVE_LIBXL_BACKEND
extern const lxm__backend_ops lxm__backend_libxl_ops;
#endif

/*
 * "auto": libxl when /proc/xen/capabilities says control_d (and the
 * libxl backend is built in), else sim.  "sim", "libxl".  Returns NULL
 * for an unknown or unavailable name.
 */
const lxm__backend_ops *lxm__backend_choose(const char *name);

/* ---- sim-only extras (backend-sim.c) ------------------------------- */

typedef struct lxm__sim_create_params {
    const char *name;
    uint64_t memory_bytes; /* multiple of 4096 */
    uint32_t vcpus;
    lxm__guest_kind kind;
    uint64_t dirty_rate;  /* pages/s the workload dirties */
    uint64_t working_set; /* bytes of hot memory it dirties;
                                  * 0 = all of memory */
    /* Initial content mix in percent; the rest is random. */
    uint32_t mix_zero, mix_code, mix_text;
    uint64_t seed;
    /* Pre-check flags (issue 6 tests): */
    uint32_t nr_pci, nr_vusb;
    bool nomigrate;
    const char *on_boot; /* NULL = "start" */
    /* Addition (issue 6): marked HA-protected (pre-check warning). */
    bool ha_protected;
} lxm__sim_create_params;

void lxm__sim_create_params_init(lxm__sim_create_params *p);
/* Parse "zero=40,code=20,text=20" (rest random) into p. */
int lxm__sim_parse_mix(const char *spec, lxm__sim_create_params *p);

/* Create and start a simulated domain.  LXM_ERROR_EXISTS for a
 * duplicate name, LXM_ERROR_NOSPACE when host memory is short. */
int lxm__sim_create(lxm__backend *b, const lxm__sim_create_params *p,
                    uint32_t *domid_r);
/* Change a running domain's workload (0 = idle). */
int lxm__sim_set_workload(lxm__backend *b, uint32_t domid, uint64_t dirty_rate,
                          uint64_t working_set);

/* ---- sim-only extras, added for issue 3 (backend-sim.c) ------------ */

/* Pages set in a domain's log-dirty bitmap now (not cleared): lets the
 * tests watch the workload.  Any state. */
int lxm__sim_dirty_pages(lxm__backend *b, uint32_t domid, uint64_t *n_r);
/* Tests: while held, the reaper gives no memory of destroyed domains
 * back (it stays counted as used); releasing lets it catch up. */
void lxm__sim_reaper_hold(lxm__backend *b, bool hold);

/* ---- libxl-only extras, added for issue 3 (backend-libxl.c) -------- */

#ifdef LXM_HAVE_LIBXL_BACKEND
/* Write xl's save header for config_json (NUL-terminated; NULL = none)
 * to fd, as the libxl backend's save() does before
 * libxl_domain_suspend(): byte for byte what xl's
 * save_domain_core_writeconfig() writes.  Exposed for the tests. */
int lxm__libxl_write_xl_header(int fd, const char *config_json,
                               xentoollog_logger *lg);
#endif

/* ---- additions (engine, issues 3 and 6) ---------------------------- */

/* The gate's take() with a bound: LXM_ERROR_TIMEOUT when no slot came
 * free within timeout_ms (for a backend that must also watch other
 * cancel conditions while it waits). */
int lxm__stopcopy_gate_take_for(lxm__stopcopy_gate *g, volatile int *cancel,
                                uint32_t timeout_ms);

/*
 * Optional fast paths of an in-process backend (issue 3 item 10): the
 * engine uses them instead of save()/restore() through a pipe, saving
 * two copies of every byte and a thread hop on each side.  The libxl
 * backend has none (libxl wants an fd).  Same contracts as save() and
 * restore() otherwise.
 */
typedef struct lxm__restore_ctx lxm__restore_ctx;

typedef struct lxm__backend_fastpath {
    /* save() through sink (the stream writer's sink: all of iov or a
     * negative LXM_ERROR_*) instead of an fd.  The iov memory is only
     * valid during the call. */
    int (*save_sink)(lxm__backend *b, uint32_t domid, lxm_sink_write_fn *sink,
                     void *sink_opaque, const lxm__save_params *params,
                     lxm__save_progress_fn *progress, void *opaque);
    /* restore() fed by the caller: begin, feed stream bytes (any
     * chunking; bytes after the END are ignored), then finish (the
     * domain is PAUSED, *domid_r set) or cancel (nothing remains).
     * Both finish and cancel free ctx; finish also on failure. */
    int (*restore_begin)(lxm__backend *b, const char *name,
                         lxm__restore_ctx **ctx_r);
    int (*restore_feed)(lxm__restore_ctx *ctx, const void *buf, size_t len);
    int (*restore_finish)(lxm__restore_ctx *ctx, uint32_t *domid_r);
    void (*restore_cancel)(lxm__restore_ctx *ctx); /* NULL ok */
} lxm__backend_fastpath;

/* The fast paths of ops, or NULL (every backend but the sim, and any
 * copy of an ops table: tests use one to force the pipe path). */
const lxm__backend_fastpath *
lxm__backend_fastpath_of(const lxm__backend_ops *ops);
extern const lxm__backend_fastpath lxm__backend_sim_fastpath;

#endif /* LXM_BACKEND_H */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
