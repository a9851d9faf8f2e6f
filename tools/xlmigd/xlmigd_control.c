/*
 * xlmigd_control.c - control requests, from the xlmig command (or
 * anything speaking the protocol) to this host's agent.
 *
 * Entry point: xlmigd_control_request(), called by a connection thread
 * for each REQUEST frame.  The requests and their replies are listed in
 * transport/proto.h (the contract with tools/xlmig/) and in
 * docs/protocol.md; every request is answered by exactly one REPLY or
 * one ERROR {"error","code"}, and "migrate" sends EVENT frames first.
 *
 * A "migrate" runs lxm__migrate_send() on the connection's thread; its
 * progress callbacks (on the engine's threads) send EVENT frames under
 * xc->send_lock.  If the client goes away the migration is cancelled
 * (honoured before GO; the VM then keeps running here).  A "cancel"
 * request, on another connection, cancels it the same way while its
 * client stays: that client still gets the migration's report.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xlmigd.h"

/* Bounds on request values (anything larger is a client bug). */
#define MAX_DOWNTIME_MS 3600000
#define MAX_ROUNDS 10000
#define MAX_VCPUS 512
#define MAX_DEVICES 64 /* sim-create nr_pci, nr_vusb */
/* Progress EVENTs are sent at most this often (and on every new round). */
#define EVENT_INTERVAL_MS 100
/* A client that does not read its events for this long is gone. */
#define EVENT_SEND_TIMEOUT_MS 5000


/* Send g (NULL: out of memory, an ERROR instead) as the REPLY. */
static int send_reply(xlmigd_conn *xc, yajl_gen g)
{
    int rc;

    if (!g) {
        pthread_mutex_lock(&xc->send_lock);
        lxm__conn_send_error(xc->c, LXM__MSG_ERROR, LXM_ERROR_NOMEM,
                             "out of memory");
        pthread_mutex_unlock(&xc->send_lock);
        return LXM_ERROR_NOMEM;
    }

    pthread_mutex_lock(&xc->send_lock);
    rc = lxm__conn_send_json(xc->c, LXM__MSG_REPLY, g);
    pthread_mutex_unlock(&xc->send_lock);
    return rc;
}

/* One ERROR frame: "message" (one line) and rc. */
static int send_err(xlmigd_conn *xc, int rc, const char *fmt, ...)
    LXM_PRINTF(3, 4);
static int send_err(xlmigd_conn *xc, int rc, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    LXM_LOG_DEBUG(xc->d->lg, "request from %s failed: %s", xc->peer, msg);
    pthread_mutex_lock(&xc->send_lock);
    lxm__conn_send_error(xc->c, LXM__MSG_ERROR, rc, "%s", msg);
    pthread_mutex_unlock(&xc->send_lock);
    return 0;
}

static const char *state_name(lxm__dom_state s)
{
    switch (s) {
    case LXM__DOM_RUNNING:
        return "running";
    case LXM__DOM_PAUSED:
        return "paused";
    case LXM__DOM_SUSPENDED:
        return "suspended";
    case LXM__DOM_INCOMING:
        return "incoming";
    }
    return "unknown";
}

static const char *kind_name(lxm__guest_kind k)
{
    switch (k) {
    case LXM__GUEST_PV:
        return "pv";
    case LXM__GUEST_PVH:
        return "pvh";
    case LXM__GUEST_HVM:
        return "hvm";
    }
    return "unknown";
}

static bool kind_parse(const char *s, lxm__guest_kind *k_r)
{
    if (!strcmp(s, "pv"))
        *k_r = LXM__GUEST_PV;
    else if (!strcmp(s, "pvh"))
        *k_r = LXM__GUEST_PVH;
    else if (!strcmp(s, "hvm"))
        *k_r = LXM__GUEST_HVM;
    else
        return false;
    return true;
}

/* One domain as a JSON map (a "list" entry). */
static void domain_json(yajl_gen g, const lxm__domain_info *di)
{
    yajl_gen_map_open(g);
    lxm__json_str(g, "name", di->name);
    lxm__json_uint(g, "domid", di->domid);
    lxm__json_str(g, "state", state_name(di->state));
    lxm__json_str(g, "type", kind_name(di->kind));
    lxm__json_uint(g, "memory_bytes", di->memory_bytes);
    lxm__json_uint(g, "vcpus", di->vcpus);
    lxm__json_uint(g, "dirty_rate", di->dirty_rate);
    yajl_gen_map_close(g);
}

/* "featureset": [words] */
static void featureset_json(yajl_gen g, const uint32_t *fs)
{
    unsigned int i;

    lxm__json_key(g, "featureset");
    yajl_gen_array_open(g);
    for (i = 0; i < LXM__FEATURESET_WORDS; i++)
        yajl_gen_integer(g, fs[i]);
    yajl_gen_array_close(g);
}

/* The "domain" field, or an ERROR sent and NULL. */
static const char *want_domain(xlmigd_conn *xc, yajl_val req, const char *cmd)
{
    const char *dom = lxm__jstr(req, "domain");

    if (!dom || !*dom)
        send_err(xc, LXM_ERROR_INVAL, "%s: no domain given", cmd);
    return dom && *dom ? dom : NULL;
}

/* domain_info, or an ERROR sent ("no domain 'x' on host h"). */
static int lookup(xlmigd_conn *xc, const char *dom, lxm__domain_info *di)
{
    xlmigd *d = xc->d;
    int rc;

    rc = d->ops->domain_info(d->b, dom, di);
    if (rc == LXM_ERROR_NOTFOUND)
        send_err(xc, rc, "no domain '%s' on host %s", dom, d->hostname);
    else if (rc)
        send_err(xc, rc, "domain '%s' on host %s: %s", dom, d->hostname,
                 lxm_strerror(rc));
    return rc;
}

/* ---- list, host-info, domain-info --------------------------------- */

static int req_list(xlmigd_conn *xc, yajl_val req)
{
    xlmigd *d = xc->d;
    lxm__domain_info *list = NULL;
    yajl_gen g;
    int n = 0, i, rc;

    (void)req;
    rc = d->ops->list(d->b, &list, &n);
    if (rc)
        return send_err(xc, rc, "cannot list the domains of %s: %s",
                        d->hostname, lxm_strerror(rc));
    g = lxm__json_new();
    if (!g) {
        free(list);
        return send_err(xc, LXM_ERROR_NOMEM, "out of memory");
    }
    lxm__json_str(g, "host", d->hostname);
    lxm__json_key(g, "domains");
    yajl_gen_array_open(g);
    for (i = 0; i < n; i++)
        domain_json(g, &list[i]);
    yajl_gen_array_close(g);
    free(list);
    send_reply(xc, g);
    return 0;
}

static int req_host_info(xlmigd_conn *xc, yajl_val req)
{
    xlmigd *d = xc->d;
    lxm__host_info hi;
    char ver[64];
    yajl_gen g;
    int rc;

    (void)req;
    rc = d->ops->host_info(d->b, &hi);
    if (rc)
        return send_err(xc, rc, "cannot read the host info of %s: %s",
                        d->hostname, lxm_strerror(rc));
    g = lxm__json_new();
    if (!g)
        return send_err(xc, LXM_ERROR_NOMEM, "out of memory");
    snprintf(ver, sizeof(ver), "%u.%u%s", hi.xen_major, hi.xen_minor,
             hi.xen_extra);
    lxm__json_str(g, "hostname", d->hostname);
    lxm__json_str(g, "backend", hi.backend);
    lxm__json_str(g, "xen_version", ver);
    lxm__json_uint(g, "xen_major", hi.xen_major);
    lxm__json_uint(g, "xen_minor", hi.xen_minor);
    lxm__json_str(g, "xen_extra", hi.xen_extra);
    lxm__json_str(g, "cpu_vendor", hi.cpu_vendor);
    featureset_json(g, hi.featureset);
    lxm__json_uint(g, "total_memory", hi.total_memory);
    lxm__json_uint(g, "free_memory", hi.free_memory);
    lxm__json_uint(g, "nr_cpus", hi.nr_cpus);
    lxm__json_uint(g, "nr_domains", hi.nr_domains);
    lxm__json_str(g, "listen", d->listen_addr);
    lxm__json_str(g, "software", lxm_version());
    lxm__json_int(g, "proto", LXM__PROTO_VERSION);
    send_reply(xc, g);
    return 0;
}

static int req_domain_info(xlmigd_conn *xc, yajl_val req)
{
    lxm__domain_info di;
    const char *dom;
    yajl_gen g;

    dom = want_domain(xc, req, "domain-info");
    if (!dom || lookup(xc, dom, &di))
        return 0;
    g = lxm__json_new();
    if (!g)
        return send_err(xc, LXM_ERROR_NOMEM, "out of memory");
    /* A "list" entry plus the details, as the reply's own map. */
    lxm__json_str(g, "name", di.name);
    lxm__json_uint(g, "domid", di.domid);
    lxm__json_str(g, "state", state_name(di.state));
    lxm__json_str(g, "type", kind_name(di.kind));
    lxm__json_uint(g, "memory_bytes", di.memory_bytes);
    lxm__json_uint(g, "vcpus", di.vcpus);
    lxm__json_uint(g, "dirty_rate", di.dirty_rate);
    lxm__json_str(g, "uuid", di.uuid);
    lxm__json_uint(g, "working_set", di.working_set);
    lxm__json_uint(g, "nr_pci", di.nr_pci);
    lxm__json_uint(g, "nr_vusb", di.nr_vusb);
    lxm__json_bool(g, "nomigrate", di.nomigrate);
    lxm__json_str(g, "on_boot", di.on_boot);
    lxm__json_bool(g, "ha_protected", di.ha_protected);
    featureset_json(g, di.featureset);
    send_reply(xc, g);
    return 0;
}

/* ---- migrate ------------------------------------------------------ */

typedef struct progress_ctx {
    xlmigd_conn *xc;
    const char *domain;
    /* Protected by xc->send_lock. */
    uint64_t last_ms;
    uint32_t last_round;
    bool last_suspended;
} progress_ctx;

static void cancel_request(xlmigd_conn *xc)
{
    __atomic_store_n(&xc->cancel.requested, 1, __ATOMIC_SEQ_CST);
}

/* Engine threads: forward progress as EVENT frames, rate limited. */
static void progress_event(void *opaque, const lxm__migrate_progress *p)
{
    progress_ctx *ctx = opaque;
    xlmigd_conn *xc = ctx->xc;
    uint64_t now = lxm__migrate_now_ms();
    yajl_gen g;

    pthread_mutex_lock(&xc->send_lock);
    if (xc->client_gone)
        goto out;
    if (p->round == ctx->last_round && p->suspended == ctx->last_suspended &&
        now - ctx->last_ms < EVENT_INTERVAL_MS)
        goto out;
    ctx->last_ms = now;
    ctx->last_round = p->round;
    ctx->last_suspended = p->suspended;
    g = lxm__json_new();
    if (!g)
        goto out;
    lxm__json_str(g, "event", "progress");
    lxm__json_uint(g, "round", p->round);
    lxm__json_uint(g, "pages_sent", p->pages_sent);
    lxm__json_uint(g, "pages_total", p->pages_total);
    lxm__json_uint(g, "dirty_rate", p->dirty_rate);
    lxm__json_uint(g, "bytes_wire", p->bytes_wire);
    lxm__json_uint(g, "elapsed_ms", p->elapsed_ms);
    lxm__json_uint(g, "eta_ms", p->eta_ms);
    lxm__json_bool(g, "suspended", p->suspended);
    if (lxm__conn_send_json(xc->c, LXM__MSG_EVENT, g)) {
        xc->client_gone = true;
        cancel_request(xc);
        LXM_LOG_ERROR(xc->d->lg,
                      "migrate %s: the client (%s) went away; cancelling",
                      ctx->domain, xc->peer);
    }
out:
    pthread_mutex_unlock(&xc->send_lock);
}

static int req_migrate(xlmigd_conn *xc, yajl_val req)
{
    xlmigd *d = xc->d;
    lxm__migrate_opts opts;
    lxm__migrate_report rep;
    progress_ctx ctx;
    xlmigd_hook hook;
    const char *dom, *dest, *policy, *compress;
    char why[160];
    int64_t v;
    yajl_gen g;
    bool stopping;
    int rc;

    dom = want_domain(xc, req, "migrate");
    if (!dom)
        return 0;
    dest = lxm__jstr(req, "destination");
    if (!dest || !*dest)
        return send_err(xc, LXM_ERROR_INVAL, "migrate: no destination given");

    lxm__migrate_opts_init(&opts);
    opts.save.gate = xc->d->gate; /* NULL: --stop-copy-slots 0 */
    opts.save.live = lxm__jbool(req, "live", true);
    /* libxc owns the pre-copy loop under the libxl backend: its own
     * policy is the only one, so that is the default there. */
    if (strcmp(d->ops->name, "sim"))
        opts.save.policy = LXM__PRECOPY_XEN;
    policy = lxm__jstr(req, "policy");
    if (policy && *policy &&
        lxm__precopy_policy_parse(policy, &opts.save.policy))
        return send_err(xc, LXM_ERROR_INVAL,
                        "migrate: unknown policy '%s' (downtime, xen,"
                        " suspend-if-needed, abort-if-busy)",
                        policy);
    v = lxm__jint(req, "downtime_ms", 0);
    if (v < 0 || v > MAX_DOWNTIME_MS)
        return send_err(xc, LXM_ERROR_INVAL,
                        "migrate: downtime_ms %" PRId64 " out of range", v);
    if (v)
        opts.save.downtime_ms = (uint32_t)v;
    v = lxm__jint(req, "max_rounds", 0);
    if (v < 0 || v > MAX_ROUNDS)
        return send_err(xc, LXM_ERROR_INVAL,
                        "migrate: max_rounds %" PRId64 " out of range", v);
    if (v)
        opts.save.max_rounds = (uint32_t)v;
    v = lxm__jint(req, "bandwidth", 0);
    if (v < 0)
        return send_err(xc, LXM_ERROR_INVAL,
                        "migrate: bandwidth %" PRId64 " out of range", v);
    opts.bandwidth = (uint64_t)v;
    opts.verify = lxm__jbool(req, "verify", true);
    /* The codec: the request's, else /etc/xlmig.conf's (issue 5). */
    compress = lxm__jstr(req, "compress");
    if (!compress || !*compress)
        compress = d->cfg.compress;
    if (lxm__migrate_compress_check(compress, why, sizeof(why)))
        return send_err(xc, LXM_ERROR_INVAL, "migrate: bad compress '%s': %s",
                        compress, why);
    opts.compress = compress;
    opts.auto_probe_same_host = d->cfg.auto_probe_same_host;
    opts.cancel = &xc->cancel;
    opts.host_name = d->hostname;
    opts.logger = d->lg; /* e.g. the codec fallback warning */
    if (d->fault.send_crash_after || d->fault.send_drop_after ||
        d->fault.send_corrupt_after) {
        memset(&hook, 0, sizeof(hook));
        hook.d = d;
        snprintf(hook.dest, sizeof(hook.dest), "%s", dest);
        opts.on_stream_bytes = xlmigd_fault_hook;
        opts.hook_opaque = &hook;
        if (d->fault.send_corrupt_after)
            opts.on_stream_frame = xlmigd_fault_frame_hook;
    }

    memset(&ctx, 0, sizeof(ctx));
    ctx.xc = xc;
    ctx.domain = dom;
    ctx.last_round = UINT32_MAX;
    pthread_mutex_lock(&xc->send_lock);
    xc->client_gone = false;
    pthread_mutex_unlock(&xc->send_lock);
    lxm__conn_set_timeout(xc->c, EVENT_SEND_TIMEOUT_MS);

    pthread_mutex_lock(&d->lock);
    __atomic_store_n(&xc->cancel.requested, 0, __ATOMIC_SEQ_CST);
    snprintf(xc->mig_domain, sizeof(xc->mig_domain), "%s", dom);
    xc->sending = true;
    stopping = d->stopping;
    pthread_mutex_unlock(&d->lock);
    if (stopping)
        cancel_request(xc);

    lxm__log(d->lg, XTL_INFO, -1, "migrate %s to %s (%s, requested by %s)", dom,
             dest, opts.save.live ? "live" : "non-live", xc->peer);
    memset(&rep, 0, sizeof(rep));
    rc = lxm__migrate_send(d->ops, d->b, dom, dest, &opts, progress_event, &ctx,
                           &rep);

    pthread_mutex_lock(&d->lock);
    xc->sending = false;
    pthread_mutex_unlock(&d->lock);

    if (rc)
        lxm__log(d->lg, XTL_ERROR, -1, "migrate %s to %s: %s: %s", dom, dest,
                 lxm__migrate_status_name(rep.status),
                 rep.error[0] ? rep.error : lxm_strerror(rc));
    else
        lxm__log(d->lg, XTL_INFO, -1,
                 "migrate %s to %s: done in %" PRIu64 " ms, downtime %" PRIu64
                 " ms, %" PRIu32 " rounds, %" PRIu64 " bytes on the wire",
                 dom, dest, rep.total_ms, rep.downtime_ms, rep.rounds,
                 rep.bytes_wire);

    lxm__conn_set_timeout(xc->c, XLMIGD_CONN_TIMEOUT_MS);
    g = lxm__json_new();
    if (!g)
        return 1;
    lxm__migrate_report_json(&rep, g);
    if (rc)
        lxm__json_int(g, "code", rc);
    return send_reply(xc, g) ? 1 : 0;
}

/*
 * cancel {"domain"}: cancel this agent's outgoing migrations of that
 * domain (name or domid), as a closed client connection would, but
 * their clients stay connected and get the reports (status
 * "cancelled", or "migrated" when the cancel came after the commit
 * point, which it cannot undo).  -> {"migrations": n}; NOTFOUND when
 * none is in progress.
 */
static int req_cancel(xlmigd_conn *xc, yajl_val req)
{
    xlmigd *d = xc->d;
    lxm__domain_info di;
    xlmigd_conn *o;
    const char *dom;
    char id[16] = "";
    unsigned int n = 0;
    yajl_gen g;

    dom = want_domain(xc, req, "cancel");
    if (!dom)
        return 0;
    /* A migration asked for by name matches a cancel by domid and the
     * other way round: the domain's name and domid, here (rare) rather
     * than in every migrate. */
    memset(&di, 0, sizeof(di));
    if (!d->ops->domain_info(d->b, dom, &di))
        snprintf(id, sizeof(id), "%" PRIu32, di.domid);
    pthread_mutex_lock(&d->lock);
    for (o = d->conns; o; o = o->next) {
        if (!o->sending)
            continue;
        if (strcmp(o->mig_domain, dom) &&
            (!di.name[0] || strcmp(o->mig_domain, di.name)) &&
            (!id[0] || strcmp(o->mig_domain, id)))
            continue;
        cancel_request(o);
        n++;
    }
    pthread_mutex_unlock(&d->lock);
    if (!n)
        return send_err(xc, LXM_ERROR_NOTFOUND,
                        "no migration of %s in progress on %s", dom,
                        d->hostname);
    lxm__log(d->lg, XTL_INFO, -1,
             "cancel of the migration of %s requested by %s", dom, xc->peer);
    g = lxm__json_new();
    if (!g)
        return send_err(xc, LXM_ERROR_NOMEM, "out of memory");
    lxm__json_uint(g, "migrations", n);
    send_reply(xc, g);
    return 0;
}

/* ---- sim-create, sim-destroy, sim-digest -------------------------- */

static int req_sim_create(xlmigd_conn *xc, yajl_val req)
{
    xlmigd *d = xc->d;
    lxm__sim_create_params p;
    const char *name, *type, *mix, *on_boot;
    uint32_t domid = 0;
    int64_t v;
    yajl_gen g;
    int rc;

    lxm__sim_create_params_init(&p);
    name = lxm__jstr(req, "name");
    if (!name || !*name || strlen(name) >= LXM__NAME_MAX)
        return send_err(xc, LXM_ERROR_INVAL,
                        "sim-create: a name of 1 to %d bytes is needed",
                        LXM__NAME_MAX - 1);
    p.name = name;
    v = lxm__jint(req, "memory_bytes", 0);
    if (v <= 0 || v % 4096)
        return send_err(xc, LXM_ERROR_INVAL,
                        "sim-create %s: memory must be a positive multiple"
                        " of 4 KiB",
                        name);
    p.memory_bytes = (uint64_t)v;
    v = lxm__jint(req, "vcpus", 1);
    if (v < 1 || v > MAX_VCPUS)
        return send_err(xc, LXM_ERROR_INVAL,
                        "sim-create %s: vcpus must be 1 to %d", name,
                        MAX_VCPUS);
    p.vcpus = (uint32_t)v;
    type = lxm__jstr(req, "type");
    if (type && *type && !kind_parse(type, &p.kind))
        return send_err(xc, LXM_ERROR_INVAL,
                        "sim-create %s: unknown type '%s' (pv, pvh, hvm)", name,
                        type);
    v = lxm__jint(req, "dirty_rate", 0);
    if (v < 0)
        return send_err(xc, LXM_ERROR_INVAL,
                        "sim-create %s: negative dirty rate", name);
    p.dirty_rate = (uint64_t)v;
    v = lxm__jint(req, "working_set", 0);
    if (v < 0 || (uint64_t)v > p.memory_bytes)
        return send_err(xc, LXM_ERROR_INVAL,
                        "sim-create %s: working set larger than memory", name);
    p.working_set = (uint64_t)v;
    mix = lxm__jstr(req, "mix");
    if (mix && *mix && lxm__sim_parse_mix(mix, &p))
        return send_err(xc, LXM_ERROR_INVAL,
                        "sim-create %s: bad mix '%s' (e.g."
                        " zero=40,code=20,text=20)",
                        name, mix);
    v = lxm__jint(req, "seed", -1);
    if (v >= 0)
        p.seed = (uint64_t)v;
    /* Pre-check flags (issue 6). */
    v = lxm__jint(req, "nr_pci", 0);
    if (v < 0 || v > MAX_DEVICES)
        return send_err(xc, LXM_ERROR_INVAL,
                        "sim-create %s: nr_pci must be 0 to %d", name,
                        MAX_DEVICES);
    p.nr_pci = (uint32_t)v;
    v = lxm__jint(req, "nr_vusb", 0);
    if (v < 0 || v > MAX_DEVICES)
        return send_err(xc, LXM_ERROR_INVAL,
                        "sim-create %s: nr_vusb must be 0 to %d", name,
                        MAX_DEVICES);
    p.nr_vusb = (uint32_t)v;
    p.nomigrate = lxm__jbool(req, "nomigrate", false);
    p.ha_protected = lxm__jbool(req, "ha_protected", false);
    on_boot = lxm__jstr(req, "on_boot");
    if (on_boot && *on_boot) {
        if (strlen(on_boot) >= sizeof(((lxm__domain_info *)0)->on_boot))
            return send_err(xc, LXM_ERROR_INVAL,
                            "sim-create %s: on_boot too long", name);
        p.on_boot = on_boot;
    }

    rc = lxm__sim_create(d->b, &p, &domid);
    if (rc == LXM_ERROR_EXISTS)
        return send_err(xc, rc, "sim-create: a domain named '%s' exists on %s",
                        name, d->hostname);
    if (rc == LXM_ERROR_NOSPACE)
        return send_err(xc, rc,
                        "sim-create %s: not enough free memory on %s for"
                        " %" PRIu64 " MiB",
                        name, d->hostname, p.memory_bytes >> 20);
    if (rc)
        return send_err(xc, rc, "sim-create %s on %s: %s", name, d->hostname,
                        lxm_strerror(rc));
    lxm__log(d->lg, XTL_INFO, -1,
             "created sim domain %s (domid %" PRIu32 ", %" PRIu64
             " MiB, dirty rate %" PRIu64 " pages/s)",
             name, domid, p.memory_bytes >> 20, p.dirty_rate);
    g = lxm__json_new();
    if (!g)
        return send_err(xc, LXM_ERROR_NOMEM, "out of memory");
    lxm__json_str(g, "name", name);
    lxm__json_uint(g, "domid", domid);
    send_reply(xc, g);
    return 0;
}

static int req_sim_destroy(xlmigd_conn *xc, yajl_val req)
{
    xlmigd *d = xc->d;
    lxm__domain_info di;
    const char *dom;
    int rc;

    dom = want_domain(xc, req, "sim-destroy");
    if (!dom || lookup(xc, dom, &di))
        return 0;
    rc = d->ops->destroy(d->b, di.domid);
    if (rc)
        return send_err(xc, rc, "sim-destroy %s on %s: %s", dom, d->hostname,
                        lxm_strerror(rc));
    lxm__log(d->lg, XTL_INFO, -1, "destroyed sim domain %s (domid %" PRIu32 ")",
             di.name, di.domid);
    send_reply(xc, lxm__json_new());
    return 0;
}

static int req_sim_digest(xlmigd_conn *xc, yajl_val req)
{
    static const char digits[] = "0123456789abcdef";
    xlmigd *d = xc->d;
    lxm__domain_info di;
    uint8_t digest[16];
    char hex[33];
    const char *dom;
    yajl_gen g;
    int rc, i;

    if (!d->ops->memory_digest)
        return send_err(xc, LXM_ERROR_UNSUPPORTED,
                        "sim-digest: the %s backend has no memory digests",
                        d->ops->name);
    dom = want_domain(xc, req, "sim-digest");
    if (!dom || lookup(xc, dom, &di))
        return 0;
    rc = d->ops->memory_digest(d->b, di.domid, digest);
    if (rc)
        return send_err(xc, rc, "sim-digest %s on %s: %s", dom, d->hostname,
                        lxm_strerror(rc));
    for (i = 0; i < 16; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 0xf];
    }
    hex[32] = '\0';
    g = lxm__json_new();
    if (!g)
        return send_err(xc, LXM_ERROR_NOMEM, "out of memory");
    lxm__json_str(g, "digest", hex);
    lxm__json_str(g, "state", state_name(di.state));
    send_reply(xc, g);
    return 0;
}

static int req_shutdown(xlmigd_conn *xc, yajl_val req)
{
    (void)req;
    lxm__log(xc->d->lg, XTL_INFO, -1, "shutdown requested by %s", xc->peer);
    send_reply(xc, lxm__json_new());
    xlmigd_request_stop(xc->d);
    return 1;
}

/* ---- dispatch ----------------------------------------------------- */

static const struct request {
    const char *cmd;
    int (*fn)(xlmigd_conn *xc, yajl_val req);
    bool sim_only;
} requests[] = {
    { "list", req_list, false },
    { "host-info", req_host_info, false },
    { "domain-info", req_domain_info, false },
    { "migrate", req_migrate, false },
    { "cancel", req_cancel, false },
    { "sim-create", req_sim_create, true },
    { "sim-destroy", req_sim_destroy, true },
    { "sim-digest", req_sim_digest, false },
    { "shutdown", req_shutdown, false },
    { "xl-receive", xlmigd_xl_receive, false },
};

int xlmigd_control_request(xlmigd_conn *xc, const lxm__frame *f)
{
    xlmigd *d = xc->d;
    const struct request *r = NULL;
    yajl_val req = NULL;
    const char *cmd;
    size_t i;
    int rc, ret = 0;

    rc = lxm__frame_json(f, &req);
    if (rc) {
        send_err(xc, LXM_ERROR_PROTOCOL, "request is not a JSON object");
        return 1;
    }
    cmd = lxm__jstr(req, "cmd");
    if (!cmd) {
        send_err(xc, LXM_ERROR_PROTOCOL, "request without \"cmd\"");
        goto out;
    }
    for (i = 0; i < LXM_ARRAY_SIZE(requests); i++) {
        if (!strcmp(requests[i].cmd, cmd)) {
            r = &requests[i];
            break;
        }
    }
    if (!r) {
        send_err(xc, LXM_ERROR_UNSUPPORTED, "unknown request '%.64s'", cmd);
        goto out;
    }
    if (r->sim_only && !d->is_sim) {
        send_err(xc, LXM_ERROR_UNSUPPORTED,
                 "%s: only with the sim backend (%s runs %s)", cmd, d->hostname,
                 d->ops->name);
        goto out;
    }
    LXM_LOG_DEBUG(d->lg, "request %s from %s", cmd, xc->peer);
    ret = r->fn(xc, req);

out:
    yajl_tree_free(req);
    return ret;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
