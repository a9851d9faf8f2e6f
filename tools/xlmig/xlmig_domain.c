/*
 * xlmig_domain.c - the agent commands about domains and hosts.
 *
 *   list         the domains of the agent's host (text table, or the
 *                agent's {"domains":[...]} with --json)
 *   host-info    the host: backend, Xen version, CPU, memory, domains
 *   sim-create   create a simulated domain (sim backend only)
 *   sim-destroy  destroy a simulated domain
 *
 * Also the argument parsers the agent commands share:
 * xlmig_parse_u64().
 *
 * With --json the agent's REPLY is printed as it came (one JSON object
 * a line); the keys are listed in transport/proto.h and xlmig(1).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libxlmig_internal.h"
#include "transport/proto.h"
#include "xlmig.h"
#include "xlmig_evacuate.h" /* sim-create's pre-check options */

/* Each request may take this long (sim-create fills memory). */
#define CALL_TIMEOUT_MS 120000

bool xlmig_parse_u64(const char *s, uint64_t max, uint64_t *val_r)
{
    unsigned long long v;
    char *end;

    if (!*s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *val_r = v;
    return true;
}

/* "512M", "1G", "1536M", "64K" */
static const char *fmt_size(uint64_t bytes, char *buf, size_t len)
{
    if (bytes && !(bytes & ((1ull << 30) - 1)))
        snprintf(buf, len, "%" PRIu64 "G", bytes >> 30);
    else if (bytes && !(bytes & ((1ull << 20) - 1)))
        snprintf(buf, len, "%" PRIu64 "M", bytes >> 20);
    else
        snprintf(buf, len, "%" PRIu64 "K", bytes >> 10);
    return buf;
}

static const char *jstr_or(yajl_val v, const char *key, const char *def)
{
    const char *s = lxm__jstr(v, key);

    return s ? s : def;
}

/*
 * The options every agent command without its own takes (--json, -H);
 * returns -1 when the operands start at xlmig_optind(), else the exit
 * status.
 */
int xlmig_simple_opts(const struct cmd_spec *spec, int argc, char **argv,
                      bool *json_r)
{
    const char *arg;
    int opt;

    *json_r = xlmig_json;
    while ((opt = xlmig_getopt(spec, argc, argv, &arg)) != -1) {
        switch (opt) {
        case XLMIG_OPT_JSON:
            *json_r = true;
            break;
        case 'H':
            xlmig_host = arg;
            break;
        case XLMIG_OPT_HELP:
            return XLMIG_EXIT_OK;
        default:
            return XLMIG_EXIT_USAGE;
        }
    }
    return -1;
}

/* Open, call, close.  Returns the exit status; on 0, *reply_r and *raw_r. */
static int call_agent(const char *cmd, yajl_gen req, yajl_val *reply_r,
                      char **raw_r)
{
    xlmig_agent *a;
    int rc;

    a = xlmig_agent_open();
    if (!a) {
        yajl_gen_free(req);
        return XLMIG_EXIT_FAIL;
    }
    rc = xlmig_agent_call(a, cmd, req, CALL_TIMEOUT_MS, NULL, NULL, reply_r,
                          raw_r);
    xlmig_agent_close(a);
    return rc ? XLMIG_EXIT_FAIL : XLMIG_EXIT_OK;
}

/* ---- list ---- */

int xlmig_main_list(const struct cmd_spec *spec, int argc, char **argv)
{
    yajl_val reply = NULL, doms, d;
    char *raw = NULL, mem[32];
    bool json;
    size_t i;
    int ret;

    ret = xlmig_simple_opts(spec, argc, argv, &json);
    if (ret >= 0)
        return ret;
    if (xlmig_optind() < argc)
        return xlmig_usage_error(spec->name, "unexpected operand '%s'",
                                 argv[xlmig_optind()]);
    ret = call_agent(spec->name, xlmig_request_new("list"), &reply, &raw);
    if (ret)
        return ret;
    if (json) {
        printf("%s\n", raw);
        goto out;
    }
    doms = lxm__jget(reply, "domains");
    printf("%-24s %6s %-10s %-4s %8s %5s %9s\n", "NAME", "DOMID", "STATE",
           "TYPE", "MEMORY", "VCPUS", "DIRTY/S");
    for (i = 0; doms && YAJL_IS_ARRAY(doms) && i < doms->u.array.len; i++) {
        d = doms->u.array.values[i];
        printf("%-24s %6" PRId64 " %-10s %-4s %8s %5" PRId64 " %9" PRId64 "\n",
               jstr_or(d, "name", "?"), lxm__jint(d, "domid", -1),
               jstr_or(d, "state", "?"), jstr_or(d, "type", "?"),
               fmt_size((uint64_t)lxm__jint(d, "memory_bytes", 0), mem,
                        sizeof(mem)),
               lxm__jint(d, "vcpus", 0), lxm__jint(d, "dirty_rate", 0));
    }
out:
    yajl_tree_free(reply);
    free(raw);
    return XLMIG_EXIT_OK;
}

/* ---- host-info ---- */

int xlmig_main_host_info(const struct cmd_spec *spec, int argc, char **argv)
{
    yajl_val reply = NULL;
    char *raw = NULL;
    bool json;
    int ret;

    ret = xlmig_simple_opts(spec, argc, argv, &json);
    if (ret >= 0)
        return ret;
    if (xlmig_optind() < argc)
        return xlmig_usage_error(spec->name, "unexpected operand '%s'",
                                 argv[xlmig_optind()]);
    ret = call_agent(spec->name, xlmig_request_new("host-info"), &reply, &raw);
    if (ret)
        return ret;
    if (json) {
        printf("%s\n", raw);
    } else {
        printf("hostname:      %s\n", jstr_or(reply, "hostname", "?"));
        printf("backend:       %s\n", jstr_or(reply, "backend", "?"));
        printf("xen_version:   %s\n", jstr_or(reply, "xen_version", "?"));
        printf("cpu_vendor:    %s\n", jstr_or(reply, "cpu_vendor", "?"));
        printf("nr_cpus:       %" PRId64 "\n", lxm__jint(reply, "nr_cpus", 0));
        printf("total_memory:  %" PRId64 " MiB\n",
               lxm__jint(reply, "total_memory", 0) >> 20);
        printf("free_memory:   %" PRId64 " MiB\n",
               lxm__jint(reply, "free_memory", 0) >> 20);
        printf("nr_domains:    %" PRId64 "\n",
               lxm__jint(reply, "nr_domains", 0));
        printf("listen:        %s\n", jstr_or(reply, "listen", "?"));
    }
    yajl_tree_free(reply);
    free(raw);
    return XLMIG_EXIT_OK;
}

/* ---- sim-create ---- */

int xlmig_main_sim_create(const struct cmd_spec *spec, int argc, char **argv)
{
    yajl_val reply = NULL;
    yajl_gen req;
    char *raw = NULL;
    const char *arg, *type = NULL, *mix = NULL, *name, *on_boot = NULL;
    uint64_t memory = 0, vcpus = 1, dirty = 0, wset = 0, seed = 0;
    uint64_t pci = 0, vusb = 0;
    bool json = xlmig_json, have_seed = false, nomigrate = false, ha = false;
    int opt, ret;

    while ((opt = xlmig_getopt(spec, argc, argv, &arg)) != -1) {
        switch (opt) {
        case XLMIG_OPT_JSON:
            json = true;
            break;
        case 'H':
            xlmig_host = arg;
            break;
        case XLMIG_OPT_MEMORY:
            if (!lxm__parse_size(arg, &memory) || !memory || memory % 4096)
                return xlmig_usage_error(spec->name,
                                         "bad --memory '%s' (a multiple of"
                                         " 4K, e.g. 256M)",
                                         arg);
            break;
        case XLMIG_OPT_VCPUS:
            if (!xlmig_parse_u64(arg, 512, &vcpus) || !vcpus)
                return xlmig_usage_error(spec->name, "bad --vcpus '%s'", arg);
            break;
        case XLMIG_OPT_TYPE:
            if (strcmp(arg, "pv") && strcmp(arg, "pvh") && strcmp(arg, "hvm"))
                return xlmig_usage_error(spec->name, "bad --type '%s'", arg);
            type = arg;
            break;
        case XLMIG_OPT_DIRTY_RATE:
            if (!xlmig_parse_u64(arg, INT64_MAX, &dirty))
                return xlmig_usage_error(spec->name, "bad --dirty-rate '%s'",
                                         arg);
            break;
        case XLMIG_OPT_WORKING_SET:
            if (!lxm__parse_size(arg, &wset) || wset > INT64_MAX)
                return xlmig_usage_error(spec->name, "bad --working-set '%s'",
                                         arg);
            break;
        case XLMIG_OPT_MIX:
            mix = arg;
            break;
        case XLMIG_OPT_SEED:
            if (!xlmig_parse_u64(arg, INT64_MAX, &seed))
                return xlmig_usage_error(spec->name, "bad --seed '%s'", arg);
            have_seed = true;
            break;
        case XLMIG_OPT_PCI:
            if (!xlmig_parse_u64(arg, 64, &pci))
                return xlmig_usage_error(spec->name, "bad --pci '%s' (0-64)",
                                         arg);
            break;
        case XLMIG_OPT_VUSB:
            if (!xlmig_parse_u64(arg, 64, &vusb))
                return xlmig_usage_error(spec->name, "bad --vusb '%s' (0-64)",
                                         arg);
            break;
        case XLMIG_OPT_NOMIGRATE:
            nomigrate = true;
            break;
        case XLMIG_OPT_ON_BOOT:
            if (strcmp(arg, "start") && strcmp(arg, "reset"))
                return xlmig_usage_error(
                    spec->name, "bad --on-boot '%s' (start, reset)", arg);
            on_boot = arg;
            break;
        case XLMIG_OPT_HA:
            ha = true;
            break;
        case XLMIG_OPT_HELP:
            return XLMIG_EXIT_OK;
        default:
            return XLMIG_EXIT_USAGE;
        }
    }
    if (xlmig_optind() + 1 != argc)
        return xlmig_usage_error(spec->name, "expected one NAME");
    name = argv[xlmig_optind()];
    if (!memory)
        return xlmig_usage_error(spec->name, "--memory is required");
    if (memory > INT64_MAX)
        return xlmig_usage_error(spec->name, "--memory too large");

    req = xlmig_request_new("sim-create");
    lxm__json_str(req, "name", name);
    lxm__json_uint(req, "memory_bytes", memory);
    lxm__json_uint(req, "vcpus", vcpus);
    if (type)
        lxm__json_str(req, "type", type);
    lxm__json_uint(req, "dirty_rate", dirty);
    lxm__json_uint(req, "working_set", wset);
    if (mix)
        lxm__json_str(req, "mix", mix);
    if (have_seed)
        lxm__json_uint(req, "seed", seed);
    if (pci)
        lxm__json_uint(req, "nr_pci", pci);
    if (vusb)
        lxm__json_uint(req, "nr_vusb", vusb);
    if (nomigrate)
        lxm__json_bool(req, "nomigrate", true);
    if (on_boot)
        lxm__json_str(req, "on_boot", on_boot);
    if (ha)
        lxm__json_bool(req, "ha_protected", true);
    ret = call_agent(spec->name, req, &reply, &raw);
    if (ret)
        return ret;
    if (json)
        printf("%s\n", raw);
    else
        printf("%s: created, domid %" PRId64 "\n", jstr_or(reply, "name", name),
               lxm__jint(reply, "domid", -1));
    yajl_tree_free(reply);
    free(raw);
    return XLMIG_EXIT_OK;
}

/* ---- sim-destroy ---- */

int xlmig_main_sim_destroy(const struct cmd_spec *spec, int argc, char **argv)
{
    yajl_val reply = NULL;
    yajl_gen req;
    char *raw = NULL;
    bool json;
    int ret;

    ret = xlmig_simple_opts(spec, argc, argv, &json);
    if (ret >= 0)
        return ret;
    if (xlmig_optind() + 1 != argc)
        return xlmig_usage_error(spec->name, "expected one NAME");
    req = xlmig_request_new("sim-destroy");
    lxm__json_str(req, "domain", argv[xlmig_optind()]);
    ret = call_agent(spec->name, req, &reply, &raw);
    if (ret)
        return ret;
    if (json)
        printf("%s\n", raw);
    yajl_tree_free(reply);
    free(raw);
    return XLMIG_EXIT_OK;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
