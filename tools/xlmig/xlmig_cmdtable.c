/*
 * xlmig_cmdtable.c - the commands of xlmig: name, handler, one-line
 * description, usage and options.  `xlmig help`, `xlmig CMD --help`,
 * the option parser and bash completion are all generated from here.
 *
 * Entry points: xlmig_cmd_table[], xlmig_cmd_lookup().
 */
#include <string.h>

#include "xlmig.h"

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
