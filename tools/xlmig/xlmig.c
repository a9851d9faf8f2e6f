/*
 * xlmig.c - main of the xlmig command: global options, dispatch through
 * the command table, help, and the option parser commands share.
 *
 *   xlmig [-v]... [--json] [-H ADDR] COMMAND [options] [operands]
 *   xlmig help [COMMAND]
 *   xlmig --version
 *
 * Entry points for commands: xlmig_getopt(), xlmig_optind(),
 * xlmig_error(), xlmig_usage_error(), xlmig_cmd_help(), and the globals
 * xlmig_logger, xlmig_verbose, xlmig_json, xlmig_host.
 *
 * Hidden, for bash completion: `xlmig help --list-commands` prints one
 * command a line, `xlmig help --list-options COMMAND` one option a line
 * with its argument ("--format xl|libxl|libxc", "--memory SIZE").
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/proto.h"
#include "xlmig.h"

xentoollog_logger *xlmig_logger;
int xlmig_verbose;
bool xlmig_json;
const char *xlmig_host;
bool xlmig_status_line;

/* Options per command: theirs plus -h/--help; plenty of room. */
#define OPTS_MAX 32

void xlmig_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    if (xlmig_status_line) {
        fputs("\r\033[K", stderr);
        xlmig_status_line = false;
    }
    fputs("xlmig: ", stderr);
    if (cmd)
        fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int xlmig_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fputs("xlmig: ", stderr);
    if (cmd)
        fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, " (see 'xlmig %s --help')\n", cmd);
    else
        fputs(" (see 'xlmig help')\n", stderr);
    return XLMIG_EXIT_USAGE;
}

/* ---- Help ---- */

static void print_opt(FILE *f, const struct cmd_opt *o)
{
    char left[64];
    int n;

    if (o->val < XLMIG_OPT_LONG_ONLY)
        n = snprintf(left, sizeof(left), "-%c, --%s%s%s", o->val, o->name,
                     o->arg ? " " : "", o->arg ? o->arg : "");
    else
        n = snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
    if (n < 22)
        fprintf(f, "  %-22s %s\n", left, o->help);
    else
        fprintf(f, "  %s\n  %-22s %s\n", left, "", o->help);
}

void xlmig_cmd_help(const struct cmd_spec *spec)
{
    static const struct cmd_opt help_opt = {
        "help",
        'h',
        NULL,
        "print this help",
    };
    const struct cmd_opt *o;

    printf("Usage: xlmig %s %s\n\n%s.\n\nOptions:\n", spec->name, spec->usage,
           spec->desc);
    for (o = spec->opts; o && o->name; o++)
        print_opt(stdout, o);
    print_opt(stdout, &help_opt);
}

static void general_help(FILE *f)
{
    size_t i;

    fputs("Usage: xlmig [-v] [--json] [-H ADDR] COMMAND [options] [operands]\n"
          "       xlmig help [COMMAND]\n"
          "       xlmig --version\n"
          "\n"
          "Commands:\n",
          f);
    for (i = 0; i < xlmig_cmd_table_len; i++)
        fprintf(f, "  %-22s %s\n", xlmig_cmd_table[i].name,
                xlmig_cmd_table[i].desc);
    fputs("  help [COMMAND]         Describe xlmig or one command\n"
          "\n"
          "Global options:\n"
          "  -v                     more log on stderr\n"
          "  --json                 JSON output from commands that have it\n"
          "  -H, --host ADDR        the agent: control socket path or\n"
          "                         HOST[:PORT] (default $XLMIG_HOST, else\n"
          "                         " LXM__DEFAULT_CONTROL ")\n"
          "  --version              print the version and exit\n"
          "  -h, --help             print this help\n"
          "\n"
          "'xlmig COMMAND --help' describes a command's options.\n",
          f);
}

static int main_help(int argc, char **argv)
{
    const struct cmd_spec *spec;
    const struct cmd_opt *o;
    size_t i;

    if (argc < 2) {
        general_help(stdout);
        return XLMIG_EXIT_OK;
    }
    if (!strcmp(argv[1], "--list-commands")) {
        for (i = 0; i < xlmig_cmd_table_len; i++)
            printf("%s\n", xlmig_cmd_table[i].name);
        printf("help\n");
        return XLMIG_EXIT_OK;
    }
    if (!strcmp(argv[1], "--list-options")) {
        if (argc < 3 || !(spec = xlmig_cmd_lookup(argv[2])))
            return XLMIG_EXIT_USAGE;
        /* "OPTION [ARG]": ARG is a|b|c for a choice, else a name. */
        for (o = spec->opts; o && o->name; o++) {
            printf("--%s%s%s\n", o->name, o->arg ? " " : "",
                   o->arg ? o->arg : "");
            if (o->val < XLMIG_OPT_LONG_ONLY)
                printf("-%c%s%s\n", o->val, o->arg ? " " : "",
                       o->arg ? o->arg : "");
        }
        printf("--help\n-h\n");
        return XLMIG_EXIT_OK;
    }
    spec = xlmig_cmd_lookup(argv[1]);
    if (!spec)
        return xlmig_usage_error(NULL, "unknown command '%s'", argv[1]);
    xlmig_cmd_help(spec);
    return XLMIG_EXIT_OK;
}

/* ---- Option parsing for commands ---- */

static const struct cmd_spec *getopt_spec;
static struct option getopt_long_opts[OPTS_MAX + 1];
static char getopt_short[2 * OPTS_MAX + 4];

static void getopt_build(const struct cmd_spec *spec)
{
    const struct cmd_opt *o;
    size_t n = 0, s = 0;

    getopt_short[s++] = ':'; /* report missing arguments as ':' */
    getopt_short[s++] = 'h';
    for (o = spec->opts; o && o->name && n < OPTS_MAX - 1; o++, n++) {
        getopt_long_opts[n].name = o->name;
        getopt_long_opts[n].has_arg = o->arg ? required_argument : no_argument;
        getopt_long_opts[n].flag = NULL;
        getopt_long_opts[n].val = o->val;
        if (o->val < XLMIG_OPT_LONG_ONLY) {
            getopt_short[s++] = (char)o->val;
            if (o->arg)
                getopt_short[s++] = ':';
        }
    }
    getopt_long_opts[n].name = "help";
    getopt_long_opts[n].has_arg = no_argument;
    getopt_long_opts[n].flag = NULL;
    getopt_long_opts[n].val = 'h';
    n++;
    memset(&getopt_long_opts[n], 0, sizeof(getopt_long_opts[n]));
    getopt_short[s] = '\0';
    getopt_spec = spec;
    optind = 0; /* GNU: full re-initialisation */
    opterr = 0;
}

int xlmig_getopt(const struct cmd_spec *spec, int argc, char **argv,
                 const char **arg_r)
{
    int opt, longindex = -1;

    if (getopt_spec != spec)
        getopt_build(spec);
    *arg_r = NULL;
    opt = getopt_long(argc, argv, getopt_short, getopt_long_opts, &longindex);
    switch (opt) {
    case -1:
        getopt_spec = NULL;
        return -1;
    case 'h':
        xlmig_cmd_help(spec);
        getopt_spec = NULL;
        return XLMIG_OPT_HELP;
    case '?':
        if (optopt && optopt < XLMIG_OPT_LONG_ONLY)
            xlmig_usage_error(spec->name, "unknown option '-%c'", optopt);
        else
            xlmig_usage_error(spec->name, "unknown option '%s'",
                              argv[optind - 1]);
        getopt_spec = NULL;
        return XLMIG_OPT_BAD;
    case ':':
        xlmig_usage_error(spec->name, "option '%s' needs an argument",
                          argv[optind - 1]);
        getopt_spec = NULL;
        return XLMIG_OPT_BAD;
    default:
        *arg_r = optarg;
        return opt;
    }
}

int xlmig_optind(void)
{
    return optind;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    static const struct option global_opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "host", required_argument, NULL, 'H' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const struct cmd_spec *spec;
    const char *cmd;
    int opt, ret;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:vhH:", global_opts, NULL)) != -1) {
        switch (opt) {
        case 'v':
            xlmig_verbose++;
            break;
        case 'j':
            xlmig_json = true;
            break;
        case 'H':
            xlmig_host = optarg;
            break;
        case 'V':
            printf("xlmig %s (libxlmig API 0x%06x)\n", lxm_version(),
                   LXM_API_VERSION);
            return XLMIG_EXIT_OK;
        case 'h':
            general_help(stdout);
            return XLMIG_EXIT_OK;
        case ':':
            return xlmig_usage_error(NULL, "option '%s' needs an argument",
                                     argv[optind - 1]);
        default:
            if (optopt && optopt < XLMIG_OPT_LONG_ONLY)
                return xlmig_usage_error(NULL, "unknown option '-%c'", optopt);
            return xlmig_usage_error(NULL, "unknown option '%s'",
                                     argv[optind - 1]);
        }
    }

    if (optind >= argc)
        return xlmig_usage_error(NULL, "no command given");
    cmd = argv[optind];
    argc -= optind;
    argv += optind;

    if (!strcmp(cmd, "help"))
        return main_help(argc, argv);

    spec = xlmig_cmd_lookup(cmd);
    if (!spec)
        return xlmig_usage_error(NULL, "unknown command '%s'", cmd);

    xlmig_logger = (xentoollog_logger *)xtl_createlogger_stdiostream(
        stderr, xlmig_verbose ? XTL_DEBUG : XTL_ERROR, 0);
    if (!xlmig_logger) {
        xlmig_error(NULL, "cannot create a logger");
        return XLMIG_EXIT_FAIL;
    }

    ret = spec->handler(spec, argc, argv);

    xtl_logger_destroy(xlmig_logger);
    xlmig_logger = NULL;
    if (fflush(stdout) && ret == XLMIG_EXIT_OK) {
        xlmig_error(cmd, "writing to stdout failed");
        ret = XLMIG_EXIT_FAIL;
    }
    return ret;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
