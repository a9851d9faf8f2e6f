/*
 * planner.c - which host does each VM of an evacuated host go to?
 * Pure and deterministic: no I/O, no clocks, no globals; the same input
 * gives the same plan whatever the order of hosts[] and vms[].
 *
 * Entry points: lxm__plan_params_init(), lxm__plan_policy_name(),
 * lxm__plan_policy_parse(), lxm__plan_make(), lxm__plan_dispose(),
 * lxm__plan_pick().
 *
 * VMs are planned largest (memory) first, then by name.  For each, the
 * VM rules (precheck.c) may refuse it outright; otherwise every other
 * reachable host that passes the host rules, with the memory left after
 * the VMs already planned onto it, is a candidate, and the policy picks
 * one; the last tie-breaker is always the host name.  A VM no host can
 * take is refused with every host's reason.
 *
 * Policies:
 *   binpack       the candidate with the least memory left after the
 *                 VM (the fullest that fits): keeps big holes for big
 *                 VMs.  XenServer's way.
 *   even          oVirt's "evenly distributed" on VM counts.  A host's
 *                 count is its running VMs plus those planned onto it,
 *                 plus SpmVmGrace when it is the SPM host.  A host whose
 *                 count would exceed HighVmCount is overloaded: used
 *                 only when no other host fits (with a warning).  Among
 *                 the rest, those less than MigrationThreshold above the
 *                 lowest count are balanced with each other (oVirt does
 *                 not migrate within that window), and the one of them
 *                 with the most memory left wins.  MigrationThreshold 1
 *                 is strict round robin by count.
 *   power-saving  fill hosts that already run VMs (least memory left
 *                 first, as binpack) so that empty hosts can stay off;
 *                 an empty host is woken only when no busy one fits
 *                 (then the one with the most memory).  A host would
 *                 go over HighVmCount only when nothing else fits.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evacuate/evacuate.h"

#define DEF_HIGH_VM_COUNT 10
#define DEF_MIGRATION_THRESHOLD 5
#define DEF_SPM_VM_GRACE 5

void lxm__plan_params_init(lxm__plan_params *p)
{
    memset(p, 0, sizeof(*p));
    p->policy = LXM__PLAN_BINPACK;
    p->high_vm_count = DEF_HIGH_VM_COUNT;
    p->migration_threshold = DEF_MIGRATION_THRESHOLD;
    p->spm_vm_grace = DEF_SPM_VM_GRACE;
}

const char *lxm__plan_policy_name(lxm__plan_policy p)
{
    switch (p) {
    case LXM__PLAN_BINPACK:
        return "binpack";
    case LXM__PLAN_EVEN:
        return "even";
    case LXM__PLAN_POWER_SAVING:
        return "power-saving";
    }
    return "unknown";
}

int lxm__plan_policy_parse(const char *s)
{
    if (!s)
        return -1;
    if (!strcmp(s, "binpack"))
        return LXM__PLAN_BINPACK;
    if (!strcmp(s, "even"))
        return LXM__PLAN_EVEN;
    if (!strcmp(s, "power-saving"))
        return LXM__PLAN_POWER_SAVING;
    return -1;
}

static const char *host_name(const lxm__evac_host *h)
{
    return h->pool ? h->pool->name : h->info.hostname;
}

/* Append "; text" (or text) to buf, truncating quietly. */
static void append(char *buf, size_t len, const char *text)
{
    size_t used = strlen(buf), n;

    if (used && used + 2 < len) {
        memcpy(buf + used, "; ", 2);
        used += 2;
    }
    if (used + 1 >= len)
        return;
    n = LXM_MIN(strlen(text), len - used - 1);
    memcpy(buf + used, text, n);
    buf[used + n] = '\0';
}

/* A candidate's sort keys, for one VM. */
typedef struct cand {
    size_t i;
    uint64_t left;  /* memory left after the VM */
    uint64_t count; /* VMs (with SPM grace) before the VM */
    bool over;      /* count + 1 > HighVmCount */
} cand;

/* Is a better than b for the binpack order (least left, then name)? */
static bool better_fullest(const lxm__evac_host *hosts, const cand *a,
                           const cand *b)
{
    if (a->left != b->left)
        return a->left < b->left;
    return strcmp(host_name(&hosts[a->i]), host_name(&hosts[b->i])) < 0;
}

static bool better_emptiest(const lxm__evac_host *hosts, const cand *a,
                            const cand *b)
{
    if (a->left != b->left)
        return a->left > b->left;
    return strcmp(host_name(&hosts[a->i]), host_name(&hosts[b->i])) < 0;
}

/*
 * Choose among cands[0..n) (n >= 1) for the policy; returns the index
 * into cands.
 */
static size_t policy_choose(const lxm__plan_params *pp,
                            const lxm__evac_host *hosts, const cand *cands,
                            size_t n, const uint32_t *count)
{
    size_t k, best = SIZE_MAX;
    bool any_under = false, any_busy = false;
    uint64_t min_count = UINT64_MAX, window;

    for (k = 0; k < n; k++)
        if (!cands[k].over)
            any_under = true;

    switch (pp->policy) {
    case LXM__PLAN_EVEN:
        for (k = 0; k < n; k++)
            if ((!any_under || !cands[k].over) && cands[k].count < min_count)
                min_count = cands[k].count;
        window = pp->migration_threshold ? pp->migration_threshold : 1;
        for (k = 0; k < n; k++) {
            if (any_under && cands[k].over)
                continue;
            if (cands[k].count >= min_count + window)
                continue;
            if (best == SIZE_MAX ||
                better_emptiest(hosts, &cands[k], &cands[best]))
                best = k;
        }
        return best;
    case LXM__PLAN_POWER_SAVING:
        for (k = 0; k < n; k++)
            if ((!any_under || !cands[k].over) && count[cands[k].i])
                any_busy = true;
        for (k = 0; k < n; k++) {
            if (any_under && cands[k].over)
                continue;
            if (any_busy != !!count[cands[k].i])
                continue;
            if (best == SIZE_MAX ||
                (any_busy ? better_fullest(hosts, &cands[k], &cands[best])
                          : better_emptiest(hosts, &cands[k], &cands[best])))
                best = k;
        }
        return best;
    case LXM__PLAN_BINPACK:
    default:
        for (k = 0; k < n; k++)
            if (best == SIZE_MAX ||
                better_fullest(hosts, &cands[k], &cands[best]))
                best = k;
        return best;
    }
}

/*
 * One VM (VM rules already passed): the host index or -1.  free[],
 * count[]: each host's memory left and VMs now; excluded NULL ok.  On
 * -1, reason says why; on a pick, warn (may be "") says what to watch.
 * cands: scratch room for nr_hosts entries.
 */
static int choose(const lxm__plan_params *pp, const lxm__evac_host *src,
                  const lxm__evac_host *hosts, size_t nr_hosts,
                  const uint64_t *free_mem, const uint32_t *count,
                  const bool *excluded, const lxm__evac_vm *vm, cand *cands,
                  char *reason, size_t reason_len, char *warn, size_t warn_len)
{
    char why[256], line[LXM__NAME_MAX + 300], all[1024] = "";
    const char *src_name = host_name(src);
    size_t i, n = 0, k, nr_others = 0;
    uint64_t grace;

    warn[0] = '\0';
    for (i = 0; i < nr_hosts; i++) {
        const lxm__evac_host *h = &hosts[i];

        if (!strcmp(host_name(h), src_name))
            continue;
        nr_others++;
        if (excluded && excluded[i]) {
            snprintf(line, sizeof(line), "%s: excluded", host_name(h));
            append(all, sizeof(all), line);
            continue;
        }
        if (lxm__precheck_host(vm, &src->info, h, free_mem[i], why,
                               sizeof(why)) == LXM__CHECK_REFUSE) {
            snprintf(line, sizeof(line), "%s: %s", host_name(h), why);
            append(all, sizeof(all), line);
            continue;
        }
        grace =
            pp->policy == LXM__PLAN_EVEN && h->is_spm ? pp->spm_vm_grace : 0;
        cands[n].i = i;
        cands[n].left = free_mem[i] - vm->info.memory_bytes;
        cands[n].count = (uint64_t)count[i] + grace;
        cands[n].over = cands[n].count + 1 > pp->high_vm_count &&
                        pp->policy != LXM__PLAN_BINPACK;
        n++;
    }
    if (!n) {
        if (!nr_others)
            snprintf(reason, reason_len, "no other host in the pool");
        else
            snprintf(reason, reason_len, "no host can take it: %s", all);
        return -1;
    }
    k = policy_choose(pp, hosts, cands, n, count);
    if (cands[k].over)
        snprintf(warn, warn_len,
                 "%s will run %" PRIu64 " VMs, over HighVmCount %" PRIu32,
                 host_name(&hosts[cands[k].i]), cands[k].count + 1,
                 pp->high_vm_count);
    return (int)cands[k].i;
}

/* Planning order: largest first, then by name, then input order. */
typedef struct order_key {
    const lxm__evac_vm *vms;
    size_t idx;
} order_key;

static int cmp_vm(const void *pa, const void *pb)
{
    const order_key *a = pa, *b = pb;
    const lxm__domain_info *x = &a->vms[a->idx].info;
    const lxm__domain_info *y = &b->vms[b->idx].info;
    int c;

    if (x->memory_bytes != y->memory_bytes)
        return x->memory_bytes > y->memory_bytes ? -1 : 1;
    c = strcmp(x->name, y->name);
    if (c)
        return c;
    c = strcmp(x->uuid, y->uuid);
    if (c)
        return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

int lxm__plan_make(const lxm__plan_params *pp, const lxm__evac_host *src,
                   const lxm__evac_host *hosts, size_t nr_hosts,
                   const lxm__evac_vm *vms, size_t nr_vms, lxm__plan *plan)
{
    lxm__plan_params defaults;
    order_key *order = NULL;
    uint64_t *free_mem = NULL;
    uint32_t *count = NULL;
    cand *cands = NULL;
    char warn[256];
    size_t i;
    int rc = 0, dest;

    memset(plan, 0, sizeof(*plan));
    if (!src || (nr_hosts && !hosts) || (nr_vms && !vms))
        return LXM_ERROR_INVAL;
    if (!pp) {
        lxm__plan_params_init(&defaults);
        pp = &defaults;
    }
    order = calloc(nr_vms ? nr_vms : 1, sizeof(*order));
    free_mem = calloc(nr_hosts ? nr_hosts : 1, sizeof(*free_mem));
    count = calloc(nr_hosts ? nr_hosts : 1, sizeof(*count));
    cands = calloc(nr_hosts ? nr_hosts : 1, sizeof(*cands));
    plan->entries = calloc(nr_vms ? nr_vms : 1, sizeof(*plan->entries));
    if (!order || !free_mem || !count || !cands || !plan->entries) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    for (i = 0; i < nr_hosts; i++) {
        free_mem[i] = hosts[i].reachable ? hosts[i].info.free_memory : 0;
        count[i] = hosts[i].nr_vms;
    }
    for (i = 0; i < nr_vms; i++) {
        order[i].vms = vms;
        order[i].idx = i;
    }
    qsort(order, nr_vms, sizeof(*order), cmp_vm);

    for (i = 0; i < nr_vms; i++) {
        lxm__plan_entry *e = &plan->entries[i];
        const lxm__evac_vm *vm = &vms[order[i].idx];

        e->vm = order[i].idx;
        e->dest = -1;
        e->check = lxm__precheck_vm(vm, e->reason, sizeof(e->reason));
        if (e->check == LXM__CHECK_REFUSE) {
            plan->nr_refused++;
            continue;
        }
        dest = choose(pp, src, hosts, nr_hosts, free_mem, count, NULL, vm,
                      cands, e->reason, sizeof(e->reason), warn, sizeof(warn));
        if (dest < 0) {
            e->check = LXM__CHECK_REFUSE;
            plan->nr_refused++;
            continue;
        }
        e->dest = dest;
        free_mem[dest] -= vm->info.memory_bytes;
        count[dest]++;
        if (warn[0]) {
            e->check = LXM__CHECK_WARN;
            append(e->reason, sizeof(e->reason), warn);
        }
    }
    plan->nr_entries = nr_vms;

out:
    free(order);
    free(free_mem);
    free(count);
    free(cands);
    if (rc)
        lxm__plan_dispose(plan);
    return rc;
}

void lxm__plan_dispose(lxm__plan *plan)
{
    if (!plan)
        return;
    free(plan->entries);
    memset(plan, 0, sizeof(*plan));
}

int lxm__plan_pick(const lxm__plan_params *pp, const lxm__evac_host *src,
                   const lxm__evac_host *hosts, size_t nr_hosts,
                   const uint64_t *free_memory, const bool *excluded,
                   const lxm__evac_vm *vm, char *reason, size_t reason_len)
{
    lxm__plan_params defaults;
    uint32_t *count = NULL;
    cand *cands = NULL;
    char warn[256];
    size_t i;
    int dest = -1;

    if (reason_len)
        reason[0] = '\0';
    if (!src || !vm || (nr_hosts && (!hosts || !free_memory))) {
        snprintf(reason, reason_len, "bad arguments");
        return -1;
    }
    if (!pp) {
        lxm__plan_params_init(&defaults);
        pp = &defaults;
    }
    if (lxm__precheck_vm(vm, reason, reason_len) == LXM__CHECK_REFUSE)
        return -1;
    count = calloc(nr_hosts ? nr_hosts : 1, sizeof(*count));
    cands = calloc(nr_hosts ? nr_hosts : 1, sizeof(*cands));
    if (!count || !cands) {
        snprintf(reason, reason_len, "out of memory");
        goto out;
    }
    for (i = 0; i < nr_hosts; i++)
        count[i] = hosts[i].nr_vms;
    dest = choose(pp, src, hosts, nr_hosts, free_memory, count, excluded, vm,
                  cands, reason, reason_len, warn, sizeof(warn));
    if (dest >= 0)
        snprintf(reason, reason_len, "%s", warn);

out:
    free(count);
    free(cands);
    return dest;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
