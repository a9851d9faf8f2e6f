/*
 * xlmig_evacuate.h - the pool and evacuation commands of xlmig, shared
 * between the planning half (xlmig_pool.c: `pool-list`, and
 * `host-evacuate` up to the plan and --dry-run) and the running half
 * (xlmig_evacuate_run.c: the scheduler run).
 *
 * `xlmig host-evacuate HOST`:
 *   1. xlmig_evac_prepare(): options, xapi.conf, the pool file, every
 *      host's "host-info", the source's "list" + "domain-info" each,
 *      pre-checks and the plan, into a struct evac_ctx;
 *   2. with --dry-run: xlmig_evac_print_plan() (or, with --json,
 *      xlmig_evac_print_plan_json()) and exit 0 when every VM is
 *      placed, else 1;
 *   3. otherwise xlmig_evac_run(ctx) (xlmig_evacuate_run.c), which
 *      prints what it wants (the plan printers are there for it) and
 *      returns the exit status.
 *
 * Options a run needs beyond the planning ones: add them to the
 * host-evacuate entry of xlmig_cmdtable.c with values from
 * XLMIG_OPT_EVAC_RUN_BASE on; xlmig_evac_prepare() passes every option
 * it does not know to xlmig_evac_run_opt().
 */
#ifndef XLMIG_EVACUATE_H
#define XLMIG_EVACUATE_H

#include <limits.h>

#include "evacuate/evacuate.h"
#include "xlmig.h"

/* Option values (beyond xlmig.h's enum, so both halves can add some). */
enum {
    XLMIG_OPT_EVAC_BASE = XLMIG_OPT_LONG_ONLY + 100,
    XLMIG_OPT_POOL = XLMIG_OPT_EVAC_BASE,
    XLMIG_OPT_BATCH_SIZE,
    XLMIG_OPT_XAPI_CONF,
    XLMIG_OPT_XAPI_CONF_DIR,
    XLMIG_OPT_DRY_RUN,
    XLMIG_OPT_HIGH_VM_COUNT,
    XLMIG_OPT_MIGRATION_THRESHOLD,
    XLMIG_OPT_SPM_VM_GRACE,
    XLMIG_OPT_AGENT_TIMEOUT,
    /* sim-create's pre-check flags */
    XLMIG_OPT_PCI,
    XLMIG_OPT_VUSB,
    XLMIG_OPT_NOMIGRATE,
    XLMIG_OPT_ON_BOOT,
    XLMIG_OPT_HA,
    XLMIG_OPT_TO, /* host-evacuate --to HOST */
    /* xlmig_evacuate_run.c's own options start here */
    XLMIG_OPT_EVAC_RUN_BASE = XLMIG_OPT_LONG_ONLY + 150,
};

#define XLMIG_EVAC_MAX_TARGETS 32

/* Everything the plan was made from, and the plan. */
struct evac_ctx {
    /* The command line. */
    const char *cmd;    /* "host-evacuate", for error lines */
    const char *source; /* HOST operand: a pool host name */
    bool json, dry_run;
    uint32_t agent_timeout_ms; /* per connect and request */
    lxm__plan_params params;
    lxm__xapi_conf conf; /* batch_size: xapi.conf's, or --batch-size
                          * (origin "--batch-size") */
    char pool_path[PATH_MAX];

    /* The pool, and each host as the planner sees it (same order,
     * hosts[i].pool == &pool.hosts[i]).  host_err[i]: why hosts[i] is
     * unreachable ("" when reachable). */
    lxm__pool pool;
    lxm__evac_host *hosts;
    char (*host_err)[256];
    size_t nr_hosts;
    size_t src; /* index of the source in hosts[] */

    /* The source's VMs, in the order its agent listed them. */
    lxm__evac_vm *vms;
    size_t nr_vms;

    lxm__plan plan; /* entries[].vm indexes vms, .dest hosts */

    /* --to: the only hosts that may receive VMs (borrowed from argv;
     * none: every other pool host). */
    const char *targets[XLMIG_EVAC_MAX_TARGETS];
    size_t nr_targets;

    void *run; /* xlmig_evacuate_run.c's options: one malloc'd block,
                * freed by xlmig_evac_dispose() */
};

/*
 * Parse the options and operand, load xapi.conf and the pool, ask the
 * agents, pre-check and plan.  Returns -1 when ctx holds a plan (go
 * on), else the exit status (usage error, --help, or a failure already
 * reported on stderr).  Call xlmig_evac_dispose() in every case.
 */
int xlmig_evac_prepare(const struct cmd_spec *spec, int argc, char **argv,
                       struct evac_ctx *ctx);
/* The plan as text on stdout: placed VMs, then the refused ones. */
void xlmig_evac_print_plan(const struct evac_ctx *ctx);
/* The plan as one JSON object on stdout (the --dry-run --json output). */
void xlmig_evac_print_plan_json(const struct evac_ctx *ctx);
void xlmig_evac_dispose(struct evac_ctx *ctx); /* NULL ok */

/* The pool host's agent address with the default port added; its
 * migration address ("" = the agent's). */
void xlmig_evac_agent_addr(const lxm__pool_host *h, char *out, size_t len);

/*
 * Provided by xlmig_evacuate_run.c (weak here: until it exists,
 * host-evacuate without --dry-run says it cannot run yet).
 * xlmig_evac_run_opt: an option of spec not known to the planning half;
 * returns -1 when taken, else the exit status (usage error printed).
 * xlmig_evac_run: run ctx->plan; the command's exit status.
 */
int xlmig_evac_run_opt(struct evac_ctx *ctx, int opt, const char *arg);
int xlmig_evac_run(struct evac_ctx *ctx);

/* xlmig_evacuate_xs.c: progress and result in xenstore, when there is
 * one (NULL: not published).  _event and _end take the handle by
 * reference: after a failed write they close it and say so once. */
struct lxm__xs_status;
struct lxm__xs_status *xlmig_evac_xs_open(const struct evac_ctx *ctx,
                                          unsigned int batch_size);
void xlmig_evac_xs_event(struct lxm__xs_status **xs, const struct evac_ctx *ctx,
                         const lxm__evac_event *ev);
void xlmig_evac_xs_end(struct lxm__xs_status **xs, const lxm__evac_counts *c,
                       bool cancelled, int exit_status);
void xlmig_evac_xs_close(struct lxm__xs_status *xs);

/* Command handlers (xlmig_pool.c). */
int xlmig_main_pool_list(const struct cmd_spec *spec, int argc, char **argv);
int xlmig_main_host_evacuate(const struct cmd_spec *spec, int argc,
                             char **argv);

#endif /* XLMIG_EVACUATE_H */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
