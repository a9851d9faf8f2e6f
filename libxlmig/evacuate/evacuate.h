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

#endif /* LXM_EVACUATE_H */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
