/*
 * xlmig_cmdtable.c - the commands of xlmig: name, handler, one-line
 * description, usage and options.  `xlmig help`, `xlmig CMD --help`,
 * the option parser and bash completion are all generated from here.
 *
 * Entry points: xlmig_cmd_table[], xlmig_cmd_lookup().
 */
#include <string.h>

#include "xlmig.h"
#include "xlmig_evacuate.h"

static const struct cmd_opt stream_info_opts[] = {
    { "json", XLMIG_OPT_JSON, NULL, "print one JSON object instead of text" },
    { "format", XLMIG_OPT_FORMAT, "xl|libxl|libxc",
      "where the stream starts (default xl)" },
    { "allow-trailing", XLMIG_OPT_ALLOW_TRAILING, NULL,
      "stop at the final END; report bytes after it" },
    { "records", XLMIG_OPT_RECORDS, NULL, "also list the records in order" },
    { NULL, 0, NULL, NULL },
};

static const struct cmd_opt stream_synth_opts[] = {
    { "guest", XLMIG_OPT_GUEST, "pv|pvh|hvm", "guest type (default pvh)" },
    { "memory", XLMIG_OPT_MEMORY, "SIZE",
      "guest memory, K/M/G suffixes (default 64M)" },
    { "rounds", XLMIG_OPT_ROUNDS, "N",
      "pre-copy rounds after the first"
      " (default 3)" },
    { "vcpus", XLMIG_OPT_VCPUS, "N", "number of vCPUs (default 1)" },
    { "seed", XLMIG_OPT_SEED, "N", "seed of the made-up memory (default 1)" },
    { "name", XLMIG_OPT_NAME, "NAME",
      "domain name in the config"
      " (default synth)" },
    { "format", XLMIG_OPT_FORMAT, "xl|libxl|libxc",
      "where the stream starts (default xl)" },
    { "checkpointed", XLMIG_OPT_CHECKPOINTED, NULL,
      "Remus-style stream: 2 checkpoints" },
    { NULL, 0, NULL, NULL },
};

/* Every command that talks to an agent takes --json and -H/--host. */
#define HOST_HELP "the agent: control socket path or HOST[:PORT]"
#define JSON_HELP "print one JSON object instead of text"

static const struct cmd_opt agent_opts[] = {
    { "json", XLMIG_OPT_JSON, NULL, JSON_HELP },
    { "host", 'H', "ADDR", HOST_HELP },
    { NULL, 0, NULL, NULL },
};

static const struct cmd_opt migrate_opts[] = {
    { "json", XLMIG_OPT_JSON, NULL, JSON_HELP },
    { "host", 'H', "ADDR", HOST_HELP },
    { "live", XLMIG_OPT_LIVE, NULL, "pre-copy while the VM runs (default)" },
    { "non-live", XLMIG_OPT_NON_LIVE, NULL,
      "pause the VM, copy, run it on the destination" },
    { "policy", XLMIG_OPT_POLICY,
      "downtime|xen|suspend-if-needed|abort-if-busy",
      "when pre-copy stops (default downtime)" },
    { "downtime-ms", XLMIG_OPT_DOWNTIME_MS, "N",
      "downtime limit of the downtime policy (default 300)" },
    { "max-rounds", XLMIG_OPT_MAX_ROUNDS, "N",
      "pre-copy rounds at most (default 30)" },
    { "bandwidth", XLMIG_OPT_BANDWIDTH, "MBPS",
      "cap the stream at MBPS megabytes/s (default none)" },
    { "no-verify", XLMIG_OPT_NO_VERIFY, NULL,
      "skip the memory digest check before the commit" },
    { "compress", XLMIG_OPT_COMPRESS, "ALG[:L]",
      "auto, none, zlib[:1-9], zstd[:L], lz4[:A] (default: the agent's"
      " /etc/xlmig.conf, else auto)" },
    { NULL, 0, NULL, NULL },
};

static const struct cmd_opt sim_create_opts[] = {
    { "json", XLMIG_OPT_JSON, NULL, JSON_HELP },
    { "host", 'H', "ADDR", HOST_HELP },
    { "memory", XLMIG_OPT_MEMORY, "SIZE",
      "guest memory, K/M/G suffixes (required)" },
    { "vcpus", XLMIG_OPT_VCPUS, "N", "number of vCPUs (default 1)" },
    { "type", XLMIG_OPT_TYPE, "pv|pvh|hvm", "guest type" },
    { "dirty-rate", XLMIG_OPT_DIRTY_RATE, "PAGES/S",
      "pages/s the workload dirties (default 0: idle)" },
    { "working-set", XLMIG_OPT_WORKING_SET, "SIZE",
      "hot memory the workload dirties (default all)" },
    { "mix", XLMIG_OPT_MIX, "SPEC",
      "initial content, e.g. zero=40,code=20,text=20 (rest random)" },
    { "seed", XLMIG_OPT_SEED, "N", "seed of the initial content" },
    /* pre-check flags (issue 6) */
    { "pci", XLMIG_OPT_PCI, "N", "PCI passthrough devices (default 0)" },
    { "vusb", XLMIG_OPT_VUSB, "N", "virtual USB devices (default 0)" },
    { "nomigrate", XLMIG_OPT_NOMIGRATE, NULL, "mark it nomigrate" },
    { "on-boot", XLMIG_OPT_ON_BOOT, "start|reset",
      "what happens to its disks at boot (default start)" },
    { "ha", XLMIG_OPT_HA, NULL, "mark it HA-protected" },
    { NULL, 0, NULL, NULL },
};

#define POOL_HELP "the pool file (default " LXM__POOL_CONF ")"

static const struct cmd_opt pool_list_opts[] = {
    { "json", XLMIG_OPT_JSON, NULL, JSON_HELP },
    { "pool", XLMIG_OPT_POOL, "FILE", POOL_HELP },
    { NULL, 0, NULL, NULL },
};

static const struct cmd_opt host_evacuate_opts[] = {
    { "json", XLMIG_OPT_JSON, NULL, JSON_HELP },
    { "pool", XLMIG_OPT_POOL, "FILE", POOL_HELP },
    { "policy", XLMIG_OPT_POLICY, "binpack|even|power-saving",
      "where VMs go (default binpack)" },
    { "batch-size", XLMIG_OPT_BATCH_SIZE, "N",
      "migrations at once (default: xapi.conf's evacuation-batch-size,"
      " else 10)" },
    { "xapi-conf", XLMIG_OPT_XAPI_CONF, "FILE",
      "xapi's config file (default " LXM__XAPI_CONF ")" },
    { "xapi-conf-dir", XLMIG_OPT_XAPI_CONF_DIR, "DIR",
      "its drop-in directory (default " LXM__XAPI_CONF_DIR ")" },
    { "to", XLMIG_OPT_TO, "HOST",
      "only this host may receive VMs (repeat for more; default: every"
      " other pool host)" },
    { "dry-run", XLMIG_OPT_DRY_RUN, NULL,
      "print the plan and what prevents the evacuation; move nothing" },
    { "high-vm-count", XLMIG_OPT_HIGH_VM_COUNT, "N",
      "even/power-saving: VMs a host may run (default 10)" },
    { "migration-threshold", XLMIG_OPT_MIGRATION_THRESHOLD, "N",
      "even: VM counts this close are balanced (default 5)" },
    { "spm-vm-grace", XLMIG_OPT_SPM_VM_GRACE, "N",
      "even: VM slots kept free on spm=1 hosts (default 5)" },
    { "agent-timeout-ms", XLMIG_OPT_AGENT_TIMEOUT, "MS",
      "per agent connect and request (default 5000)" },
    /* running (xlmig_evacuate_run.c) */
    { "dest-cap", XLMIG_OPT_EVAC_RUN_BASE, "N",
      "migrations at once into one host (default 3, 0: no cap)" },
    { "max-attempts", XLMIG_OPT_EVAC_RUN_BASE + 1, "N",
      "tries per VM, each on another host (default 2)" },
    { "json-events", XLMIG_OPT_EVAC_RUN_BASE + 2, NULL,
      "one JSON object per line on stdout as things happen" },
    { "downtime-ms", XLMIG_OPT_DOWNTIME_MS, "MS",
      "downtime goal of each migration (the agent's default)" },
    { "bandwidth", XLMIG_OPT_BANDWIDTH, "MBPS",
      "cap each migration's stream at MBPS MB/s (default none)" },
    { "no-verify", XLMIG_OPT_NO_VERIFY, NULL,
      "do not compare memory digests before each commit" },
    { NULL, 0, NULL, NULL },
};

static const struct cmd_opt stream_compress_opts[] = {
    { "json", XLMIG_OPT_JSON, NULL, "print a JSON summary on stdout" },
    { "compress", XLMIG_OPT_COMPRESS, "ALG[:L]",
      "none, zlib[:1-9], zstd[:L], lz4[:A] (default zlib)" },
    { "threads", XLMIG_OPT_THREADS, "N", "codec threads (default: CPUs)" },
    { "no-pages", XLMIG_OPT_NO_PAGES, NULL, "no page-aware pre-pass" },
    { "cache", XLMIG_OPT_CACHE, "SIZE",
      "pre-pass delta cache, K/M/G suffixes (default 64M)" },
    { "format", XLMIG_OPT_FORMAT, "xl|libxl|libxc",
      "where the stream starts (default xl)" },
    { NULL, 0, NULL, NULL },
};

static const struct cmd_opt stream_decompress_opts[] = {
    { "json", XLMIG_OPT_JSON, NULL, "print a JSON summary on stdout" },
    { "threads", XLMIG_OPT_THREADS, "N", "codec threads (default: CPUs)" },
    { NULL, 0, NULL, NULL },
};

static const struct cmd_opt xl_transport_opts[] = {
    { "agent", XLMIG_OPT_AGENT, "ADDR",
      "the receiving agent (default HOST:8702)" },
    { "compress", XLMIG_OPT_COMPRESS, "ALG",
      "none|zlib[:L]|zstd[:L]|lz4 (default lz4)" },
    { NULL, 0, NULL, NULL },
};

const struct cmd_spec xlmig_cmd_table[] = {
    {
        "stream-info",
        xlmig_main_stream_info,
        "Check a saved or captured stream and summarise it",
        "[options] FILE|-",
        stream_info_opts,
    },
    {
        "stream-synth",
        xlmig_main_stream_synth,
        "Write a synthetic stream of a made-up guest",
        "[options] FILE|-",
        stream_synth_opts,
    },
    {
        "stream-compress",
        xlmig_main_stream_compress,
        "Compress a saved stream into xlmig's framed format",
        "[options] IN|- OUT|-",
        stream_compress_opts,
    },
    {
        "stream-decompress",
        xlmig_main_stream_decompress,
        "Restore a compressed stream, byte for byte",
        "[options] IN|- OUT|-",
        stream_decompress_opts,
    },
    {
        "list",
        xlmig_main_list,
        "List the domains of the agent's host",
        "[options]",
        agent_opts,
    },
    {
        "host-info",
        xlmig_main_host_info,
        "Describe the agent's host",
        "[options]",
        agent_opts,
    },
    {
        "migrate",
        xlmig_main_migrate,
        "Move a domain to another host's agent",
        "[options] DOMAIN HOST[:PORT]",
        migrate_opts,
    },
    {
        "cancel",
        xlmig_main_cancel,
        "Cancel this host's outgoing migration of a domain",
        "[options] DOMAIN",
        agent_opts,
    },
    {
        "sim-create",
        xlmig_main_sim_create,
        "Create a simulated domain (sim backend)",
        "[options] --memory SIZE NAME",
        sim_create_opts,
    },
    {
        "sim-destroy",
        xlmig_main_sim_destroy,
        "Destroy a simulated domain (sim backend)",
        "[options] NAME",
        agent_opts,
    },
    {
        "pool-list",
        xlmig_main_pool_list,
        "List the pool's hosts with their agents' host info",
        "[options]",
        pool_list_opts,
    },
    {
        "host-evacuate",
        xlmig_main_host_evacuate,
        "Move every VM off a pool host (--dry-run: plan only)",
        "[options] HOST",
        host_evacuate_opts,
    },
    {
        "xl-transport",
        xlmig_main_xl_transport,
        "Carry stock xl migrate's stream (xl migrate -s)",
        "[options] HOST xl [XL-OPTIONS] migrate-receive [OPTIONS]",
        xl_transport_opts,
    },
};

const size_t xlmig_cmd_table_len =
    sizeof(xlmig_cmd_table) / sizeof(xlmig_cmd_table[0]);

const struct cmd_spec *xlmig_cmd_lookup(const char *name)
{
    size_t i;

    for (i = 0; i < xlmig_cmd_table_len; i++) {
        if (!strcmp(xlmig_cmd_table[i].name, name))
            return &xlmig_cmd_table[i];
    }
    return NULL;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
