/*
 * xlmig_pool.c - the pool commands: `pool-list` and the planning half
 * of `host-evacuate` (up to the plan; `--dry-run` stops there).
 *
 * Entry points: xlmig_main_pool_list(), xlmig_main_host_evacuate(),
 * and for xlmig_evacuate_run.c: xlmig_evac_prepare(),
 * xlmig_evac_print_plan(), xlmig_evac_print_plan_json(),
 * xlmig_evac_dispose(), xlmig_evac_agent_addr() (xlmig_evacuate.h).
 *
 * Each pool host's agent is asked on a connection of its own (pool
 * order, one after the other): "host-info"; for the source also "list"
 * and "domain-info" of each domain.  An agent that does not answer
 * makes its host unreachable (a row saying why in pool-list; never a
 * destination), not a failure of the command; only the source must
 * answer.  Connection failures are kept as one line per host rather
 * than printed through the library's logger (shown with -v).
 *
 * Exit statuses of host-evacuate --dry-run: 0 every VM can be placed,
 * 1 some VM cannot (or the source cannot be asked), 2 usage.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libxlmig_internal.h"
#include "transport/proto.h"
#include "xlmig_evacuate.h"

#define AGENT_TIMEOUT_MS 5000
#define AGENT_TIMEOUT_MAX_MS 600000
/* More domains on one host than this is not a host we evacuate. */
#define EVAC_VMS_MAX 4096

/* Until xlmig_evacuate_run.c provides them (null when absent). */
extern int xlmig_evac_run_opt(struct evac_ctx *ctx, int opt, const char *arg)
    __attribute__((weak));
extern int xlmig_evac_run(struct evac_ctx *ctx) __attribute__((weak));

/* ---- talking to one pool host's agent ---- */

/* Errors quote cap.last cut at 255 characters (%.255s). */
typedef struct host_conn {
    xlmig_capture_logger cap; /* outlives c, which logs through it */
    lxm__conn *c;
} host_conn;

static void hc_close(host_conn *hc)
{
    if (!hc)
        return;
    lxm__conn_free(hc->c);
    free(hc);
}

/* Connect and exchange HELLOs; NULL with err set on failure. */
static host_conn *hc_open(const char *addr, uint32_t timeout_ms, char *err,
                          size_t err_len)
{
    host_conn *hc = calloc(1, sizeof(*hc));
    int rc;

    if (!hc) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    xlmig_capture_init(&hc->cap, true);
    rc = lxm__conn_connect(addr, timeout_ms, &hc->cap.vtable, &hc->c);
    if (!rc)
        rc = lxm__proto_hello(hc->c, "cli", NULL, NULL);
    if (rc) {
        snprintf(err, err_len, "%.255s",
                 hc->cap.last[0] ? hc->cap.last : lxm_strerror(rc));
        hc_close(hc);
        return NULL;
    }
    return hc;
}

/* One request (req taken over); *reply_r: caller frees. */
static int hc_call(host_conn *hc, yajl_gen req, yajl_val *reply_r, char *err,
                   size_t err_len)
{
    int rc;

    *reply_r = NULL;
    if (!req) {
        snprintf(err, err_len, "out of memory");
        return LXM_ERROR_NOMEM;
    }
    hc->cap.last[0] = '\0';
    err[0] = '\0';
    rc = lxm__conn_send_json(hc->c, LXM__MSG_REQUEST, req);
    if (!rc)
        rc = lxm__conn_expect(hc->c, LXM__MSG_REPLY, reply_r, err, err_len);
    if (rc && !err[0])
        snprintf(err, err_len, "%.255s",
                 hc->cap.last[0] ? hc->cap.last : lxm_strerror(rc));
    return rc;
}

void xlmig_evac_agent_addr(const lxm__pool_host *h, char *out, size_t len)
{
    xlmig_addr_with_port(h->agent, out, len);
}

/* ---- replies into the planner's structs ---- */

static void copy_str(char *dst, size_t len, yajl_val v, const char *key)
{
    const char *s = lxm__jstr(v, key);

    snprintf(dst, len, "%s", s ? s : "");
}

static uint64_t juint(yajl_val v, const char *key)
{
    int64_t x = lxm__jint(v, key, 0);

    return x > 0 ? (uint64_t)x : 0;
}

static void featureset_parse(yajl_val v, uint32_t *fs)
{
    yajl_val a = lxm__jget(v, "featureset");
    size_t i;

    memset(fs, 0, LXM__FEATURESET_WORDS * sizeof(*fs));
    if (!a || !YAJL_IS_ARRAY(a))
        return;
    for (i = 0; i < a->u.array.len && i < LXM__FEATURESET_WORDS; i++) {
        yajl_val w = a->u.array.values[i];

        if (YAJL_IS_INTEGER(w) && YAJL_GET_INTEGER(w) >= 0 &&
            YAJL_GET_INTEGER(w) <= UINT32_MAX)
            fs[i] = (uint32_t)YAJL_GET_INTEGER(w);
    }
}

/* A host-info reply.  Agents before issue 6 send only "xen_version". */
static void host_info_parse(yajl_val v, lxm__host_info *hi)
{
    const char *ver = lxm__jstr(v, "xen_version");
    unsigned int major = 0, minor = 0;
    int n = 0;

    memset(hi, 0, sizeof(*hi));
    copy_str(hi->hostname, sizeof(hi->hostname), v, "hostname");
    copy_str(hi->backend, sizeof(hi->backend), v, "backend");
    copy_str(hi->cpu_vendor, sizeof(hi->cpu_vendor), v, "cpu_vendor");
    if (lxm__jget(v, "xen_major")) {
        hi->xen_major = (uint16_t)LXM_MIN(juint(v, "xen_major"), 65535);
        hi->xen_minor = (uint16_t)LXM_MIN(juint(v, "xen_minor"), 65535);
        copy_str(hi->xen_extra, sizeof(hi->xen_extra), v, "xen_extra");
    } else if (ver && sscanf(ver, "%u.%u%n", &major, &minor, &n) == 2) {
        hi->xen_major = (uint16_t)LXM_MIN(major, 65535);
        hi->xen_minor = (uint16_t)LXM_MIN(minor, 65535);
        snprintf(hi->xen_extra, sizeof(hi->xen_extra), "%s", ver + n);
    }
    featureset_parse(v, hi->featureset);
    hi->total_memory = juint(v, "total_memory");
    hi->free_memory = juint(v, "free_memory");
    hi->nr_cpus = (uint32_t)LXM_MIN(juint(v, "nr_cpus"), UINT32_MAX);
    hi->nr_domains = (uint32_t)LXM_MIN(juint(v, "nr_domains"), UINT32_MAX);
}

static void domain_info_parse(yajl_val v, lxm__evac_vm *vm)
{
    lxm__domain_info *di = &vm->info;
    const char *s;

    memset(vm, 0, sizeof(*vm));
    copy_str(di->name, sizeof(di->name), v, "name");
    copy_str(di->uuid, sizeof(di->uuid), v, "uuid");
    di->domid = (uint32_t)LXM_MIN(juint(v, "domid"), UINT32_MAX);
    di->memory_bytes = juint(v, "memory_bytes");
    di->vcpus = (uint32_t)LXM_MIN(juint(v, "vcpus"), UINT32_MAX);
    s = lxm__jstr(v, "type");
    di->kind = s && !strcmp(s, "pv")    ? LXM__GUEST_PV
               : s && !strcmp(s, "hvm") ? LXM__GUEST_HVM
                                        : LXM__GUEST_PVH;
    s = lxm__jstr(v, "state");
    di->state = s && !strcmp(s, "paused")      ? LXM__DOM_PAUSED
                : s && !strcmp(s, "suspended") ? LXM__DOM_SUSPENDED
                                               : LXM__DOM_RUNNING;
    di->nr_pci = (uint32_t)LXM_MIN(juint(v, "nr_pci"), UINT32_MAX);
    di->nr_vusb = (uint32_t)LXM_MIN(juint(v, "nr_vusb"), UINT32_MAX);
    di->nomigrate = lxm__jbool(v, "nomigrate", false);
    copy_str(di->on_boot, sizeof(di->on_boot), v, "on_boot");
    featureset_parse(v, di->featureset);
    di->dirty_rate = juint(v, "dirty_rate");
    di->working_set = juint(v, "working_set");
    di->ha_protected = lxm__jbool(v, "ha_protected", false);
    vm->ha_protected = di->ha_protected;
}

/* "spm=1" (yes, true) among the pool host's extra pairs. */
static bool pool_host_is_spm(const lxm__pool_host *h)
{
    const char *p = h->extra;

    while (p < h->extra + sizeof(h->extra) && *p) {
        if (!strcmp(p, "spm=1") || !strcmp(p, "spm=yes") ||
            !strcmp(p, "spm=true"))
            return true;
        p += strlen(p) + 1;
    }
    return false;
}

/* "1.5G", "512M" */
static const char *fmt_mem(uint64_t bytes, char *buf, size_t len)
{
    if (bytes >= (1ull << 30) && bytes % (1ull << 30))
        snprintf(buf, len, "%.1fG", (double)bytes / (1ull << 30));
    else if (bytes >= (1ull << 30))
        snprintf(buf, len, "%" PRIu64 "G", bytes >> 30);
    else
        snprintf(buf, len, "%" PRIu64 "M", bytes >> 20);
    return buf;
}

/*
 * Ask every host of ctx->pool for its host-info; fills ctx->hosts and
 * ctx->host_err.  Returns 0 or LXM_ERROR_NOMEM.
 */
static int query_hosts(struct evac_ctx *ctx)
{
    char addr[PATH_MAX];
    yajl_val reply;
    host_conn *hc;
    size_t i;

    ctx->nr_hosts = ctx->pool.nr_hosts;
    ctx->hosts = calloc(ctx->nr_hosts ? ctx->nr_hosts : 1, sizeof(*ctx->hosts));
    ctx->host_err =
        calloc(ctx->nr_hosts ? ctx->nr_hosts : 1, sizeof(*ctx->host_err));
    if (!ctx->hosts || !ctx->host_err)
        return LXM_ERROR_NOMEM;
    for (i = 0; i < ctx->nr_hosts; i++) {
        lxm__evac_host *h = &ctx->hosts[i];

        h->pool = &ctx->pool.hosts[i];
        h->is_spm = pool_host_is_spm(h->pool);
        xlmig_evac_agent_addr(h->pool, addr, sizeof(addr));
        hc = hc_open(addr, ctx->agent_timeout_ms, ctx->host_err[i],
                     sizeof(ctx->host_err[i]));
        if (!hc)
            continue;
        if (!hc_call(hc, xlmig_request_new("host-info"), &reply,
                     ctx->host_err[i], sizeof(ctx->host_err[i]))) {
            host_info_parse(reply, &h->info);
            h->reachable = true;
            h->nr_vms = h->info.nr_domains;
            yajl_tree_free(reply);
        }
        hc_close(hc);
    }
    return 0;
}

/* ---- pool-list ---- */

int xlmig_main_pool_list(const struct cmd_spec *spec, int argc, char **argv)
{
    struct evac_ctx ctx;
    const char *arg, *pool_path = NULL;
    char err[PATH_MAX + 300], free_s[32], total_s[32], xen[64];
    yajl_gen g = NULL;
    const unsigned char *buf;
    size_t i, len;
    int opt, ret = XLMIG_EXIT_FAIL;

    memset(&ctx, 0, sizeof(ctx));
    ctx.json = xlmig_json;
    ctx.agent_timeout_ms = AGENT_TIMEOUT_MS;
    while ((opt = xlmig_getopt(spec, argc, argv, &arg)) != -1) {
        switch (opt) {
        case XLMIG_OPT_JSON:
            ctx.json = true;
            break;
        case XLMIG_OPT_POOL:
            pool_path = arg;
            break;
        case XLMIG_OPT_HELP:
            return XLMIG_EXIT_OK;
        default:
            return XLMIG_EXIT_USAGE;
        }
    }
    if (xlmig_optind() < argc)
        return xlmig_usage_error(spec->name, "unexpected operand '%s'",
                                 argv[xlmig_optind()]);
    if (lxm__pool_load(pool_path, &ctx.pool, err, sizeof(err))) {
        xlmig_error(spec->name, "%s", err);
        goto out;
    }
    if (query_hosts(&ctx)) {
        xlmig_error(spec->name, "out of memory");
        goto out;
    }

    if (ctx.json) {
        g = lxm__json_new();
        if (!g) {
            xlmig_error(spec->name, "out of memory");
            goto out;
        }
        lxm__json_str(g, "pool", pool_path ? pool_path : LXM__POOL_CONF);
        lxm__json_key(g, "hosts");
        yajl_gen_array_open(g);
        for (i = 0; i < ctx.nr_hosts; i++) {
            const lxm__evac_host *h = &ctx.hosts[i];

            yajl_gen_map_open(g);
            lxm__json_str(g, "name", h->pool->name);
            lxm__json_str(g, "agent", h->pool->agent);
            lxm__json_str(g, "migration", h->pool->migration);
            lxm__json_bool(g, "reachable", h->reachable);
            if (!h->reachable) {
                lxm__json_str(g, "error", ctx.host_err[i]);
            } else {
                snprintf(xen, sizeof(xen), "%u.%u%s", h->info.xen_major,
                         h->info.xen_minor, h->info.xen_extra);
                lxm__json_str(g, "hostname", h->info.hostname);
                lxm__json_str(g, "backend", h->info.backend);
                lxm__json_str(g, "xen_version", xen);
                lxm__json_str(g, "cpu_vendor", h->info.cpu_vendor);
                lxm__json_uint(g, "free_memory", h->info.free_memory);
                lxm__json_uint(g, "total_memory", h->info.total_memory);
                lxm__json_uint(g, "nr_cpus", h->info.nr_cpus);
                lxm__json_uint(g, "nr_domains", h->info.nr_domains);
            }
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
        yajl_gen_map_close(g);
        yajl_gen_get_buf(g, &buf, &len);
        printf("%.*s\n", (int)len, (const char *)buf);
        ret = XLMIG_EXIT_OK;
        goto out;
    }

    printf("%-16s %-24s %-9s %-12s %-13s %7s %7s %4s %4s\n", "NAME", "ADDRESS",
           "REACHABLE", "XEN", "CPU", "FREE", "TOTAL", "CPUS", "VMS");
    for (i = 0; i < ctx.nr_hosts; i++) {
        const lxm__evac_host *h = &ctx.hosts[i];

        if (!h->reachable) {
            printf("%-16s %-24s %-9s %s\n", h->pool->name, h->pool->agent, "no",
                   ctx.host_err[i]);
            continue;
        }
        snprintf(xen, sizeof(xen), "%u.%u%s", h->info.xen_major,
                 h->info.xen_minor, h->info.xen_extra);
        printf("%-16s %-24s %-9s %-12s %-13s %7s %7s %4" PRIu32 " %4" PRIu32
               "\n",
               h->pool->name, h->pool->agent, "yes", xen, h->info.cpu_vendor,
               fmt_mem(h->info.free_memory, free_s, sizeof(free_s)),
               fmt_mem(h->info.total_memory, total_s, sizeof(total_s)),
               h->info.nr_cpus, h->info.nr_domains);
    }
    ret = XLMIG_EXIT_OK;

out:
    if (g)
        yajl_gen_free(g);
    xlmig_evac_dispose(&ctx);
    return ret;
}

/* ---- host-evacuate: the plan ---- */

/* The source's VMs: "list", then "domain-info" for each. */
static int query_vms(struct evac_ctx *ctx)
{
    const lxm__evac_host *src = &ctx->hosts[ctx->src];
    char addr[PATH_MAX], err[512];
    yajl_val reply = NULL, doms, info;
    host_conn *hc;
    yajl_gen req;
    const char *name;
    size_t i, n;
    int ret = XLMIG_EXIT_FAIL;

    xlmig_evac_agent_addr(src->pool, addr, sizeof(addr));
    hc = hc_open(addr, ctx->agent_timeout_ms, err, sizeof(err));
    if (!hc) {
        xlmig_error(ctx->cmd, "cannot ask the source %s (%s): %s",
                    src->pool->name, addr, err);
        return XLMIG_EXIT_FAIL;
    }
    if (hc_call(hc, xlmig_request_new("list"), &reply, err, sizeof(err))) {
        xlmig_error(ctx->cmd, "source %s: list: %s", src->pool->name, err);
        goto out;
    }
    doms = lxm__jget(reply, "domains");
    n = doms && YAJL_IS_ARRAY(doms) ? doms->u.array.len : 0;
    if (n > EVAC_VMS_MAX) {
        xlmig_error(ctx->cmd, "source %s lists %zu domains (at most %d)",
                    src->pool->name, n, EVAC_VMS_MAX);
        goto out;
    }
    ctx->vms = calloc(n ? n : 1, sizeof(*ctx->vms));
    if (!ctx->vms) {
        xlmig_error(ctx->cmd, "out of memory");
        goto out;
    }
    for (i = 0; i < n; i++) {
        name = lxm__jstr(doms->u.array.values[i], "name");
        if (!name || !*name)
            continue;
        req = xlmig_request_new("domain-info");
        lxm__json_str(req, "domain", name);
        if (hc_call(hc, req, &info, err, sizeof(err))) {
            /* Gone since the list: nothing to move. */
            xlmig_error(ctx->cmd, "source %s: %s: %s (skipped)",
                        src->pool->name, name, err);
            continue;
        }
        domain_info_parse(info, &ctx->vms[ctx->nr_vms++]);
        yajl_tree_free(info);
    }
    ret = -1;

out:
    yajl_tree_free(reply);
    hc_close(hc);
    return ret;
}

static bool parse_u32(const char *s, uint32_t max, uint32_t *v_r)
{
    uint64_t v;

    if (!xlmig_parse_u64(s, max, &v))
        return false;
    *v_r = (uint32_t)v;
    return true;
}

int xlmig_evac_prepare(const struct cmd_spec *spec, int argc, char **argv,
                       struct evac_ctx *ctx)
{
    const char *arg, *pool_path = NULL, *conf = NULL, *conf_dir = NULL;
    char err[PATH_MAX + 300];
    uint32_t batch = 0;
    int opt, policy, ret;
    size_t i;

    memset(ctx, 0, sizeof(*ctx));
    ctx->cmd = spec->name;
    ctx->json = xlmig_json;
    ctx->agent_timeout_ms = AGENT_TIMEOUT_MS;
    lxm__plan_params_init(&ctx->params);
    while ((opt = xlmig_getopt(spec, argc, argv, &arg)) != -1) {
        switch (opt) {
        case XLMIG_OPT_JSON:
            ctx->json = true;
            break;
        case XLMIG_OPT_POOL:
            pool_path = arg;
            break;
        case XLMIG_OPT_POLICY:
            policy = lxm__plan_policy_parse(arg);
            if (policy < 0)
                return xlmig_usage_error(spec->name,
                                         "unknown --policy '%s' (binpack,"
                                         " even, power-saving)",
                                         arg);
            ctx->params.policy = (lxm__plan_policy)policy;
            break;
        case XLMIG_OPT_BATCH_SIZE:
            if (!parse_u32(arg, 100000, &batch) || !batch)
                return xlmig_usage_error(
                    spec->name, "bad --batch-size '%s' (1 to 100000)", arg);
            break;
        case XLMIG_OPT_XAPI_CONF:
            conf = arg;
            break;
        case XLMIG_OPT_XAPI_CONF_DIR:
            conf_dir = arg;
            break;
        case XLMIG_OPT_DRY_RUN:
            ctx->dry_run = true;
            break;
        case XLMIG_OPT_TO:
            if (ctx->nr_targets >= XLMIG_EVAC_MAX_TARGETS)
                return xlmig_usage_error(spec->name, "more than %d --to hosts",
                                         XLMIG_EVAC_MAX_TARGETS);
            ctx->targets[ctx->nr_targets++] = arg;
            break;
        case XLMIG_OPT_HIGH_VM_COUNT:
            if (!parse_u32(arg, 1000000, &ctx->params.high_vm_count))
                return xlmig_usage_error(spec->name, "bad --high-vm-count '%s'",
                                         arg);
            break;
        case XLMIG_OPT_MIGRATION_THRESHOLD:
            if (!parse_u32(arg, 1000000, &ctx->params.migration_threshold))
                return xlmig_usage_error(spec->name,
                                         "bad --migration-threshold '%s'", arg);
            break;
        case XLMIG_OPT_SPM_VM_GRACE:
            if (!parse_u32(arg, 1000000, &ctx->params.spm_vm_grace))
                return xlmig_usage_error(spec->name, "bad --spm-vm-grace '%s'",
                                         arg);
            break;
        case XLMIG_OPT_AGENT_TIMEOUT:
            if (!parse_u32(arg, AGENT_TIMEOUT_MAX_MS, &ctx->agent_timeout_ms) ||
                !ctx->agent_timeout_ms)
                return xlmig_usage_error(spec->name,
                                         "bad --agent-timeout-ms '%s'", arg);
            break;
        case XLMIG_OPT_HELP:
            return XLMIG_EXIT_OK;
        case XLMIG_OPT_BAD:
            return XLMIG_EXIT_USAGE;
        default:
            if (!xlmig_evac_run_opt)
                return xlmig_usage_error(spec->name, "unsupported option");
            ret = xlmig_evac_run_opt(ctx, opt, arg);
            if (ret >= 0)
                return ret;
            break;
        }
    }
    if (xlmig_optind() + 1 != argc)
        return xlmig_usage_error(spec->name, "expected one HOST");
    ctx->source = argv[xlmig_optind()];

    if (lxm__xapi_conf_load(conf, conf_dir, &ctx->conf, err, sizeof(err))) {
        xlmig_error(spec->name, "%s", err);
        return XLMIG_EXIT_FAIL;
    }
    if (batch) {
        ctx->conf.batch_size = batch;
        snprintf(ctx->conf.batch_size_origin,
                 sizeof(ctx->conf.batch_size_origin), "--batch-size");
    }
    snprintf(ctx->pool_path, sizeof(ctx->pool_path), "%s",
             pool_path ? pool_path : LXM__POOL_CONF);
    if (lxm__pool_load(ctx->pool_path, &ctx->pool, err, sizeof(err))) {
        xlmig_error(spec->name, "%s", err);
        return XLMIG_EXIT_FAIL;
    }
    if (!lxm__pool_find(&ctx->pool, ctx->source)) {
        xlmig_error(spec->name, "host %s is not in the pool file %s",
                    ctx->source, ctx->pool_path);
        return XLMIG_EXIT_FAIL;
    }
    ctx->src =
        (size_t)(lxm__pool_find(&ctx->pool, ctx->source) - ctx->pool.hosts);
    for (i = 0; i < ctx->nr_targets; i++) {
        if (!lxm__pool_find(&ctx->pool, ctx->targets[i])) {
            xlmig_error(spec->name, "--to %s: not a host of the pool file %s",
                        ctx->targets[i], ctx->pool_path);
            return XLMIG_EXIT_FAIL;
        }
        if (!strcmp(ctx->targets[i], ctx->source)) {
            xlmig_error(spec->name, "--to %s: that is the host to evacuate",
                        ctx->targets[i]);
            return XLMIG_EXIT_FAIL;
        }
    }
    if (query_hosts(ctx)) {
        xlmig_error(spec->name, "out of memory");
        return XLMIG_EXIT_FAIL;
    }
    /* --to: every other host is left out of the plan (and the retries) */
    for (i = 0; ctx->nr_targets && i < ctx->nr_hosts; i++) {
        size_t t;

        if (i == ctx->src)
            continue;
        for (t = 0; t < ctx->nr_targets; t++)
            if (!strcmp(ctx->targets[t], ctx->hosts[i].pool->name))
                break;
        if (t == ctx->nr_targets && ctx->hosts[i].reachable) {
            ctx->hosts[i].reachable = false;
            snprintf(ctx->host_err[i], sizeof(ctx->host_err[i]),
                     "not a --to target");
        }
    }
    if (!ctx->hosts[ctx->src].reachable) {
        xlmig_error(spec->name, "cannot ask the source %s (%s): %s",
                    ctx->source, ctx->hosts[ctx->src].pool->agent,
                    ctx->host_err[ctx->src]);
        return XLMIG_EXIT_FAIL;
    }
    ret = query_vms(ctx);
    if (ret >= 0)
        return ret;
    if (lxm__plan_make(&ctx->params, &ctx->hosts[ctx->src], ctx->hosts,
                       ctx->nr_hosts, ctx->vms, ctx->nr_vms, &ctx->plan)) {
        xlmig_error(spec->name, "cannot plan: out of memory");
        return XLMIG_EXIT_FAIL;
    }
    return -1;
}

void xlmig_evac_print_plan(const struct evac_ctx *ctx)
{
    const lxm__plan *p = &ctx->plan;
    char mem[32];
    size_t i, placed = p->nr_entries - p->nr_refused;

    printf("Evacuation plan for %s: %zu VM%s, policy %s, batch size %u (%s)\n",
           ctx->source, ctx->nr_vms, ctx->nr_vms == 1 ? "" : "s",
           lxm__plan_policy_name(ctx->params.policy), ctx->conf.batch_size,
           ctx->conf.batch_size_origin);
    for (i = 0; i < ctx->nr_hosts; i++)
        if (!ctx->hosts[i].reachable)
            printf("Host %s is unreachable (%s): not used\n",
                   ctx->hosts[i].pool->name, ctx->host_err[i]);
    if (placed) {
        printf("\n%-24s %7s  %-16s %s\n", "VM", "MEMORY", "DESTINATION",
               "WARNING");
        for (i = 0; i < p->nr_entries; i++) {
            const lxm__plan_entry *e = &p->entries[i];

            if (e->dest < 0)
                continue;
            printf("%-24s %7s  %-16s %s\n", ctx->vms[e->vm].info.name,
                   fmt_mem(ctx->vms[e->vm].info.memory_bytes, mem, sizeof(mem)),
                   ctx->hosts[e->dest].pool->name,
                   e->check == LXM__CHECK_WARN ? e->reason : "");
        }
    }
    if (p->nr_refused) {
        printf("\n%zu VM%s prevent%s the evacuation:\n", p->nr_refused,
               p->nr_refused == 1 ? "" : "s", p->nr_refused == 1 ? "s" : "");
        printf("%-24s %7s  %s\n", "VM", "MEMORY", "WHY");
        for (i = 0; i < p->nr_entries; i++) {
            const lxm__plan_entry *e = &p->entries[i];

            if (e->dest >= 0)
                continue;
            printf("%-24s %7s  %s\n", ctx->vms[e->vm].info.name,
                   fmt_mem(ctx->vms[e->vm].info.memory_bytes, mem, sizeof(mem)),
                   e->reason);
        }
    }
    printf("\n%zu of %zu VM%s can be placed%s\n", placed, p->nr_entries,
           p->nr_entries == 1 ? "" : "s",
           p->nr_refused ? "; the host cannot be fully evacuated" : "");
}

void xlmig_evac_print_plan_json(const struct evac_ctx *ctx)
{
    const lxm__plan *p = &ctx->plan;
    const unsigned char *buf;
    yajl_gen g = lxm__json_new();
    size_t i, len;

    if (!g) {
        xlmig_error(ctx->cmd, "out of memory");
        return;
    }
    lxm__json_str(g, "source", ctx->source);
    lxm__json_str(g, "policy", lxm__plan_policy_name(ctx->params.policy));
    lxm__json_uint(g, "batch_size", ctx->conf.batch_size);
    lxm__json_str(g, "batch_size_origin", ctx->conf.batch_size_origin);
    lxm__json_bool(g, "dry_run", ctx->dry_run);
    lxm__json_uint(g, "placed", p->nr_entries - p->nr_refused);
    lxm__json_uint(g, "refused", p->nr_refused);
    lxm__json_key(g, "vms");
    yajl_gen_array_open(g);
    for (i = 0; i < p->nr_entries; i++) {
        const lxm__plan_entry *e = &p->entries[i];

        yajl_gen_map_open(g);
        lxm__json_str(g, "name", ctx->vms[e->vm].info.name);
        lxm__json_uint(g, "memory_bytes", ctx->vms[e->vm].info.memory_bytes);
        lxm__json_str(g, "status", e->dest >= 0 ? "planned" : "refused");
        lxm__json_key(g, "destination");
        if (e->dest >= 0) {
            const char *d = ctx->hosts[e->dest].pool->name;

            yajl_gen_string(g, (const unsigned char *)d, strlen(d));
        } else {
            yajl_gen_null(g);
        }
        lxm__json_str(g, "reason", e->dest < 0 ? e->reason : "");
        lxm__json_str(g, "warning",
                      e->check == LXM__CHECK_WARN ? e->reason : "");
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    lxm__json_key(g, "hosts");
    yajl_gen_array_open(g);
    for (i = 0; i < ctx->nr_hosts; i++) {
        yajl_gen_map_open(g);
        lxm__json_str(g, "name", ctx->hosts[i].pool->name);
        lxm__json_bool(g, "reachable", ctx->hosts[i].reachable);
        lxm__json_bool(g, "source", i == ctx->src);
        if (ctx->hosts[i].reachable)
            lxm__json_uint(g, "free_memory", ctx->hosts[i].info.free_memory);
        else
            lxm__json_str(g, "error", ctx->host_err[i]);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    yajl_gen_get_buf(g, &buf, &len);
    printf("%.*s\n", (int)len, (const char *)buf);
    yajl_gen_free(g);
}

void xlmig_evac_dispose(struct evac_ctx *ctx)
{
    if (!ctx)
        return;
    lxm__plan_dispose(&ctx->plan);
    free(ctx->vms);
    ctx->vms = NULL;
    ctx->nr_vms = 0;
    free(ctx->hosts);
    ctx->hosts = NULL;
    free(ctx->host_err);
    ctx->host_err = NULL;
    ctx->nr_hosts = 0;
    lxm__pool_dispose(&ctx->pool);
    free(ctx->run);
    ctx->run = NULL;
}

int xlmig_main_host_evacuate(const struct cmd_spec *spec, int argc, char **argv)
{
    struct evac_ctx ctx;
    int ret;

    ret = xlmig_evac_prepare(spec, argc, argv, &ctx);
    if (ret >= 0)
        goto out;
    if (ctx.dry_run) {
        if (ctx.json)
            xlmig_evac_print_plan_json(&ctx);
        else
            xlmig_evac_print_plan(&ctx);
        ret = ctx.plan.nr_refused ? XLMIG_EXIT_FAIL : XLMIG_EXIT_OK;
        goto out;
    }
    if (!xlmig_evac_run) {
        xlmig_error(spec->name, "running an evacuation is not built in yet;"
                                " use --dry-run");
        ret = XLMIG_EXIT_FAIL;
        goto out;
    }
    ret = xlmig_evac_run(&ctx);

out:
    xlmig_evac_dispose(&ctx);
    return ret;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
