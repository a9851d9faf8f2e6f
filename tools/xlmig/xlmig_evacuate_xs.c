/*
 * xlmig_evacuate_xs.c - `xlmig host-evacuate` publishes its progress and
 * result in xenstore, where an HA daemon and other dom0 tools read them
 * (keys: xenstore-hooks/README.md, libxlmig/evacuate/xs_status.h).
 *
 * Only when there is a xenstored to talk to (a Xen dom0); elsewhere
 * nothing is published and nothing is said about it unless -v.  The
 * request id and reason come from xlmig-hawatch (LXM_XS_REQUEST_ID,
 * LXM_XS_REASON); a run started by hand gets "cli-PID".  LXM_XS_PREFIX
 * overrides the prefix.  A failed xenstore write is one warning line and
 * never stops the evacuation.
 *
 * Entry points: xlmig_evac_xs_open(), xlmig_evac_xs_event(),
 * xlmig_evac_xs_end(), xlmig_evac_xs_close().
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "evacuate/xs_status.h"
#include "xlmig_evacuate.h"

static void warn_once(lxm__xs_status **xs, int rc)
{
    if (!rc)
        return;
    xlmig_error("host-evacuate",
                "cannot update the status in xenstore (%s); going on "
                "without it",
                lxm_strerror(rc));
    lxm__xs_status_close(*xs);
    *xs = NULL;
}

lxm__xs_status *xlmig_evac_xs_open(const struct evac_ctx *ctx,
                                   unsigned int batch_size)
{
    lxm__xs_status *xs = NULL;
    const char *id = getenv("LXM_XS_REQUEST_ID");
    const char *reason = getenv("LXM_XS_REASON");
    char own_id[32];
    size_t i;
    int rc;

    if (lxm__xs_status_open(getenv("LXM_XS_PREFIX"),
                            xlmig_verbose ? xlmig_logger : NULL, &xs))
        return NULL;
    if (!id || !*id) {
        snprintf(own_id, sizeof(own_id), "cli-%ld", (long)getpid());
        id = own_id;
    }
    rc = lxm__xs_status_begin(xs, ctx->source, id,
                              reason ? reason : "xlmig host-evacuate",
                              (unsigned int)ctx->nr_vms, batch_size);
    for (i = 0; !rc && i < ctx->plan.nr_entries; i++) {
        const lxm__plan_entry *e = &ctx->plan.entries[i];

        rc = lxm__xs_status_vm(
            xs, ctx->vms[e->vm].info.name, e->dest < 0 ? "refused" : "planned",
            e->dest < 0 ? NULL : ctx->hosts[e->dest].pool->name,
            e->reason[0] ? e->reason : NULL, 0);
    }
    warn_once(&xs, rc);
    return xs;
}

void xlmig_evac_xs_event(lxm__xs_status **xs, const struct evac_ctx *ctx,
                         const lxm__evac_event *ev)
{
    const lxm__evac_counts *c = &ev->counts;
    const lxm__evac_outcome *o = ev->outcome;
    const char *dest;
    int rc = 0;

    if (!*xs)
        return;
    dest = ev->dest >= 0 && (size_t)ev->dest < ctx->nr_hosts
               ? ctx->hosts[ev->dest].pool->name
               : NULL;
    switch (ev->kind) {
    case LXM__EVAC_EV_STARTED:
        rc = lxm__xs_status_vm(*xs, ctx->vms[ev->vm].info.name, "migrating",
                               dest, NULL, 0);
        break;
    case LXM__EVAC_EV_RETRY:
        rc = lxm__xs_status_vm(*xs, o->name, "retrying", dest,
                               o->reason[0] ? o->reason : NULL, 0);
        break;
    case LXM__EVAC_EV_FINISHED:
        rc = lxm__xs_status_vm(*xs, o->name, lxm__evac_status_name(o->status),
                               o->destination[0] ? o->destination : NULL,
                               o->reason[0] ? o->reason : NULL, o->downtime_ms);
        break;
    default:
        /* progress: the counters only, and not on every event */
        if (ev->kind == LXM__EVAC_EV_PROGRESS)
            return;
        break;
    }
    if (!rc)
        rc = lxm__xs_status_counts(
            *xs, (unsigned int)c->migrated, (unsigned int)c->failed,
            (unsigned int)c->refused, (unsigned int)c->cancelled,
            (unsigned int)c->running);
    warn_once(xs, rc);
}

void xlmig_evac_xs_end(lxm__xs_status **xs, const lxm__evac_counts *c,
                       bool cancelled, int exit_status)
{
    char err[128];
    int rc;

    if (!*xs)
        return;
    err[0] = '\0';
    if (c->migrated != c->total)
        snprintf(err, sizeof(err),
                 "%zu of %zu VMs still on the host (%zu failed, %zu refused,"
                 " %zu cancelled)",
                 c->total - c->migrated, c->total, c->failed, c->refused,
                 c->cancelled);
    rc = lxm__xs_status_end(*xs,
                            c->migrated == c->total ? "done"
                            : cancelled             ? "cancelled"
                                                    : "failed",
                            exit_status, err[0] ? err : NULL);
    warn_once(xs, rc);
}

void xlmig_evac_xs_close(lxm__xs_status *xs)
{
    lxm__xs_status_close(xs);
}
