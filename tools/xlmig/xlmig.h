/*
 * xlmig.h - private declarations of the xlmig command.
 *
 * xlmig.c          main: global options, dispatch, help, option parsing
 * xlmig_cmdtable.c the command table: names, handlers, usage, options
 * xlmig_<family>.c one file per command family (xlmig_stream.c: stream-*,
 *                  xlmig_domain.c: list, host-info, sim-*,
 *                  xlmig_migrate.c: migrate)
 * xlmig_client.c   talking to an xlmigd (-H/--host): request, events, reply
 *
 * Exit statuses: XLMIG_EXIT_OK, _FAIL (the command failed; one line on
 * stderr), _USAGE (bad command line; one line on stderr with a hint),
 * _CANCELLED (migrate, host-evacuate: a SIGINT/SIGTERM cancelled it).
 */
#ifndef XLMIG_H
#define XLMIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xentoollog.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "libxlmig.h"

#define XLMIG_EXIT_OK 0
#define XLMIG_EXIT_FAIL 1
#define XLMIG_EXIT_USAGE 2
#define XLMIG_EXIT_CANCELLED 3

/*
 * One option of a command.  val is the short option letter, or a value
 * >= XLMIG_OPT_LONG_ONLY for options with only a long name.  The same
 * entries drive getopt_long, `--help` and bash completion.
 */
#define XLMIG_OPT_LONG_ONLY 256
enum {
    XLMIG_OPT_JSON = XLMIG_OPT_LONG_ONLY,
    XLMIG_OPT_FORMAT,
    XLMIG_OPT_ALLOW_TRAILING,
    XLMIG_OPT_RECORDS,
    XLMIG_OPT_GUEST,
    XLMIG_OPT_MEMORY,
    XLMIG_OPT_ROUNDS,
    XLMIG_OPT_VCPUS,
    XLMIG_OPT_SEED,
    XLMIG_OPT_NAME,
    XLMIG_OPT_CHECKPOINTED,
    /* agent commands */
    XLMIG_OPT_LIVE,
    XLMIG_OPT_NON_LIVE,
    XLMIG_OPT_POLICY,
    XLMIG_OPT_DOWNTIME_MS,
    XLMIG_OPT_MAX_ROUNDS,
    XLMIG_OPT_BANDWIDTH,
    XLMIG_OPT_NO_VERIFY,
    XLMIG_OPT_TYPE,
    XLMIG_OPT_DIRTY_RATE,
    XLMIG_OPT_WORKING_SET,
    XLMIG_OPT_MIX,
    XLMIG_OPT_AGENT, /* xl-transport */
};

struct cmd_opt {
    const char *name; /* long name, without "--" */
    int val;
    const char *arg;  /* argument name for help; NULL: none */
    const char *help; /* one line */
};

struct cmd_spec {
    const char *name;
    int (*handler)(const struct cmd_spec *spec, int argc, char **argv);
    const char *desc;           /* one line */
    const char *usage;          /* what follows "xlmig NAME " */
    const struct cmd_opt *opts; /* ends with a { NULL } entry; every
                                 * command also takes -h, --help */
};

/* xlmig_cmdtable.c */
extern const struct cmd_spec xlmig_cmd_table[];
extern const size_t xlmig_cmd_table_len;
/* Exact name match; NULL when unknown. */
const struct cmd_spec *xlmig_cmd_lookup(const char *name);

/* xlmig.c: state set from the global options, read by commands. */
extern xentoollog_logger *xlmig_logger; /* stderr; never NULL in cmds */
extern int xlmig_verbose;               /* count of -v */
extern bool xlmig_json;                 /* global --json */
extern const char *xlmig_host;          /* global -H/--host; NULL: env
                                         * XLMIG_HOST, else the default
                                         * control socket */

/* A progress line is on stderr (no newline yet): xlmig_error() clears
 * it before printing. */
extern bool xlmig_status_line;

/* "xlmig: CMD: MESSAGE\n" on stderr (cmd NULL ok). */
void xlmig_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A usage error: one line with a hint on stderr; returns XLMIG_EXIT_USAGE. */
int xlmig_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Full help for one command on stdout. */
void xlmig_cmd_help(const struct cmd_spec *spec);

/*
 * getopt_long over spec->opts plus -h/--help, with getopt's own
 * messages off.  Returns the option's val, or -1 at the end of the
 * options (then argv[*optind_r...] are the operands).  On --help it
 * prints the command's help and returns XLMIG_OPT_HELP; on a bad
 * option it prints the usage error and returns XLMIG_OPT_BAD.  *arg_r
 * gets optarg.  Call with the same state until it returns -1.
 */
#define XLMIG_OPT_HELP (-2)
#define XLMIG_OPT_BAD (-3)
int xlmig_getopt(const struct cmd_spec *spec, int argc, char **argv,
                 const char **arg_r);
/* After xlmig_getopt returned -1: index of the first operand. */
int xlmig_optind(void);

/* Command handlers (one file per family). */
int xlmig_main_stream_info(const struct cmd_spec *spec, int argc, char **argv);
int xlmig_main_stream_synth(const struct cmd_spec *spec, int argc, char **argv);
int xlmig_main_list(const struct cmd_spec *spec, int argc, char **argv);
int xlmig_main_host_info(const struct cmd_spec *spec, int argc, char **argv);
int xlmig_main_sim_create(const struct cmd_spec *spec, int argc, char **argv);
int xlmig_main_sim_destroy(const struct cmd_spec *spec, int argc, char **argv);
int xlmig_main_migrate(const struct cmd_spec *spec, int argc, char **argv);
int xlmig_main_cancel(const struct cmd_spec *spec, int argc, char **argv);
/* xlmig_domain.c: the options of an agent command without its own
 * (--json, -H): -1 when the operands start at xlmig_optind(), else the
 * exit status. */
int xlmig_simple_opts(const struct cmd_spec *spec, int argc, char **argv,
                      bool *json_r);
int xlmig_main_xl_transport(const struct cmd_spec *spec, int argc, char **argv);

/* xlmig_domain.c: argument parsing shared by the agent commands.  A
 * decimal number without sign, at most max.  (Sizes: lxm__parse_size.) */
bool xlmig_parse_u64(const char *s, uint64_t max, uint64_t *val_r);

/* ---- xlmig_client.c: talking to an agent ---- */

typedef struct xlmig_agent xlmig_agent;

/* The agent address: xlmig_host, env XLMIG_HOST, or the default. */
const char *xlmig_agent_addr(void);
/* "HOST" -> "HOST:8702" (the default port); a unix socket path (it has
 * a '/') or an address with a port is copied unchanged. */
void xlmig_addr_with_port(const char *in, char *out, size_t len);

/*
 * Connect to the agent and exchange HELLOs.  On failure one line on
 * stderr ("xlmig: cannot connect to agent ADDR: REASON") and NULL.
 * Caller frees with xlmig_agent_close() (NULL ok).
 */
xlmig_agent *xlmig_agent_open(void);
void xlmig_agent_close(xlmig_agent *a);
/* Shut the connection down under a call blocked on it (any thread): the
 * call returns a lost connection. */
void xlmig_agent_shutdown(xlmig_agent *a);

/*
 * A xentoollog_logger for the library's connection code that keeps the
 * last error-level message in last ("" when none) instead of printing
 * it; with forward set, every message also goes on to xlmig_logger under
 * -v.  Init before use; it must outlive the connection logging through
 * it.
 */
typedef struct xlmig_capture_logger {
    xentoollog_logger vtable;
    char last[512];
    bool forward;
} xlmig_capture_logger;

void xlmig_capture_init(xlmig_capture_logger *cl, bool forward);

/* A request: an open JSON map with "cmd" set; add fields, then call. */
yajl_gen xlmig_request_new(const char *cmd);

/* Called for each EVENT frame (its parsed JSON, borrowed). */
typedef void xlmig_event_fn(void *opaque, yajl_val ev);

/*
 * Send req (taken over, freed) and wait for the REPLY, passing EVENTs
 * to event_fn (NULL ok).  timeout_ms: for each frame (0 = none).
 * Returns 0 with *reply_r (caller yajl_tree_free()s) and *raw_r (NULL
 * ok; the reply's JSON text, NUL terminated, caller frees).  On an
 * ERROR reply or a lost connection: prints one line
 * "xlmig: CMD: MESSAGE" on stderr and returns the error code.
 */
int xlmig_agent_call(xlmig_agent *a, const char *cmd, yajl_gen req,
                     uint32_t timeout_ms, xlmig_event_fn *event_fn,
                     void *opaque, yajl_val *reply_r, char **raw_r);

/* ---- xlmig_compress.c: stream-compress, stream-decompress (issue 5) ----
 * Option values beyond the enum above, so that other families can add
 * theirs; XLMIG_OPT_COMPRESS and XLMIG_OPT_THREADS are meant to be
 * shared with `migrate --compress`. */
enum {
    XLMIG_OPT_CODEC_BASE = XLMIG_OPT_LONG_ONLY + 200,
    XLMIG_OPT_COMPRESS = XLMIG_OPT_CODEC_BASE,
    XLMIG_OPT_THREADS,
    XLMIG_OPT_NO_PAGES,
    XLMIG_OPT_CACHE,
};

int xlmig_main_stream_compress(const struct cmd_spec *spec, int argc,
                               char **argv);
int xlmig_main_stream_decompress(const struct cmd_spec *spec, int argc,
                                 char **argv);

#endif /* XLMIG_H */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
