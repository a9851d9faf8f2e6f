/*
 * xlmig.h - private declarations of the xlmig command.
 *
 * xlmig.c          main: global options, dispatch, help, option parsing
 * xlmig_cmdtable.c the command table: names, handlers, usage, options
 * xlmig_<family>.c one file per command family (xlmig_stream.c: stream-*)
 *
 * Exit statuses: XLMIG_EXIT_OK, _FAIL (the command failed; one line on
 * stderr), _USAGE (bad command line; one line on stderr with a hint).
 */
#ifndef XLMIG_H
#define XLMIG_H

#include <stdbool.h>
#include <stddef.h>

#include <xentoollog.h>

#include "libxlmig.h"

#define XLMIG_EXIT_OK 0
#define XLMIG_EXIT_FAIL 1
#define XLMIG_EXIT_USAGE 2

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

#endif /* XLMIG_H */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
