/*
 * xlmig_migrate.c - `xlmig migrate DOMAIN HOST[:PORT]`: ask the local
 * agent (-H) to move a domain to the agent at HOST, show its progress,
 * print the report.
 *
 * The agent runs the migration (lxm__migrate_send) and streams EVENT
 * {"event":"progress",...} frames, then one REPLY with the report's
 * keys (migrate/migrate.h).  On a TTY (stderr) the events draw a
 * one-line bar redrawn with \r; elsewhere they are ignored.  Then the
 * report, as text or, with --json, the REPLY as one JSON object.
 *
 * --compress=ALG goes into the request as "compress" (checked here
 * first: a bad value is a usage error); without it the agent's
 * /etc/xlmig.conf decides (default auto).
 *
 * Exit status 0 only when the domain runs on the destination; else 1
 * with one line on stderr saying what failed and where the VM is.
 *
 * SIGINT/SIGTERM (taken by a signal thread with sigwait): the first asks
 * the agent, on a connection of its own, to "cancel" the migration
 * (honoured before the commit point: the VM keeps, or resumes, running
 * on the source) and the report still comes, as for any failed
 * migration, with exit status 3 when it says "cancelled".  When the
 * agent cannot take the cancel, or at a second signal, the migration's
 * connection is shut down instead: the agent cancels when it notices,
 * and there is no report.  Like virsh's Ctrl-C during migrate, which
 * aborts the job and then reports.
 *
 * `xlmig cancel DOMAIN` sends that same request from anywhere.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libxlmig_internal.h"
#include "migrate/migrate.h"
#include "transport/proto.h"
#include "xlmig.h"

/* Per frame from the agent; events come at least once per round. */
#define MIGRATE_TIMEOUT_MS 600000
#define BAR_WIDTH 20

typedef struct bar_state {
    bool tty;
} bar_state;

/* ---- cancel ------------------------------------------------------- */

/* Ask the agent (-H) to cancel its migrations of domain: 0 with their
 * number in *n_r and the reply's JSON in *raw_r (NULL ok; caller frees),
 * or the error (one line printed). */
static int request_cancel(const char *domain, unsigned int *n_r, char **raw_r)
{
    xlmig_agent *a = xlmig_agent_open();
    yajl_val reply = NULL;
    yajl_gen req;
    int rc;

    *n_r = 0;
    if (!a)
        return LXM_ERROR_CONNECT;
    req = xlmig_request_new("cancel");
    lxm__json_str(req, "domain", domain);
    rc = xlmig_agent_call(a, "cancel", req, 10000, NULL, NULL, &reply, raw_r);
    if (!rc)
        *n_r = (unsigned int)lxm__jint(reply, "migrations", 0);
    yajl_tree_free(reply);
    xlmig_agent_close(a);
    return rc;
}

int xlmig_main_cancel(const struct cmd_spec *spec, int argc, char **argv)
{
    char *raw = NULL;
    unsigned int n;
    bool json;
    int ret;

    ret = xlmig_simple_opts(spec, argc, argv, &json);
    if (ret >= 0)
        return ret;
    if (xlmig_optind() + 1 != argc || !*argv[xlmig_optind()])
        return xlmig_usage_error(spec->name, "expected one DOMAIN");
    if (request_cancel(argv[xlmig_optind()], &n, &raw))
        return XLMIG_EXIT_FAIL;
    if (json)
        printf("%s\n", raw);
    else
        printf("cancel of %s requested (%u migration%s; honoured before the"
               " commit point)\n",
               argv[xlmig_optind()], n, n == 1 ? "" : "s");
    free(raw);
    return XLMIG_EXIT_OK;
}

/* The signal thread of a migrate (file-top comment). */
typedef struct sig_watch {
    sigset_t set;
    pthread_t thread;
    xlmig_agent *a; /* the migration's connection */
    const char *domain;
    volatile int signals; /* taken so far (atomic) */
    volatile int done;    /* set before SIGUSR1 ends the thread */
} sig_watch;

static void *sig_main(void *arg)
{
    sig_watch *w = arg;
    unsigned int n;
    int sig;

    for (;;) {
        if (sigwait(&w->set, &sig))
            continue;
        if (sig == SIGUSR1) {
            if (__atomic_load_n(&w->done, __ATOMIC_SEQ_CST))
                break;
            continue;
        }
        if (__atomic_add_fetch(&w->signals, 1, __ATOMIC_SEQ_CST) > 1) {
            fprintf(stderr,
                    "\nxlmig: migrate: %s again: closing the connection (the"
                    " agent cancels when it notices; no report)\n",
                    sig == SIGINT ? "SIGINT" : "SIGTERM");
            xlmig_agent_shutdown(w->a);
            continue;
        }
        fprintf(stderr,
                "\nxlmig: migrate: %s: cancelling the migration of %s"
                " (honoured before the commit point)\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM", w->domain);
        if (request_cancel(w->domain, &n, NULL) || !n) {
            fprintf(stderr, "xlmig: migrate: closing the connection instead"
                            " (the agent cancels when it notices)\n");
            xlmig_agent_shutdown(w->a);
        }
    }
    return NULL;
}

/* Block SIGINT and SIGTERM here and take them on a thread (SIGUSR1, sent
 * to it by sig_watch_stop(), ends it: no pthread_cancel, which
 * sanitizers' thread teardown does not survive); *old_r gets the mask to
 * restore.  false: could not (signals keep their default). */
static bool sig_watch_start(sig_watch *w, sigset_t *old_r)
{
    sigemptyset(&w->set);
    sigaddset(&w->set, SIGINT);
    sigaddset(&w->set, SIGTERM);
    sigaddset(&w->set, SIGUSR1);
    if (pthread_sigmask(SIG_BLOCK, &w->set, old_r))
        return false;
    if (pthread_create(&w->thread, NULL, sig_main, w)) {
        pthread_sigmask(SIG_SETMASK, old_r, NULL);
        return false;
    }
    return true;
}

static void sig_watch_stop(sig_watch *w, const sigset_t *old)
{
    __atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
    pthread_kill(w->thread, SIGUSR1);
    pthread_join(w->thread, NULL);
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* ---- migrate ------------------------------------------------------ */

static void fmt_eta(uint64_t ms, char *buf, size_t len)
{
    if (!ms)
        snprintf(buf, len, "--");
    else if (ms < 60000)
        snprintf(buf, len, "%" PRIu64 "s", (ms + 999) / 1000);
    else
        snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", ms / 60000,
                 (ms % 60000) / 1000);
}

/* One progress EVENT: redraw the bar. */
static void bar_event(void *opaque, yajl_val ev)
{
    bar_state *bs = opaque;
    uint64_t round, sent, total, rate, wire, eta;
    char bar[BAR_WIDTH + 1], phase[24], etas[32];
    unsigned int pct, fill, i;
    const char *what = lxm__jstr(ev, "event");

    if (!bs->tty || !what || strcmp(what, "progress"))
        return;
    round = (uint64_t)lxm__jint(ev, "round", 0);
    sent = (uint64_t)lxm__jint(ev, "pages_sent", 0);
    total = (uint64_t)lxm__jint(ev, "pages_total", 0);
    rate = (uint64_t)lxm__jint(ev, "dirty_rate", 0);
    wire = (uint64_t)lxm__jint(ev, "bytes_wire", 0);
    eta = (uint64_t)lxm__jint(ev, "eta_ms", 0);
    if (sent > total)
        sent = total;
    pct = total ? (unsigned int)(sent * 100 / total) : 0;
    fill = pct * BAR_WIDTH / 100;
    for (i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[BAR_WIDTH] = '\0';
    if (lxm__jbool(ev, "suspended", false))
        snprintf(phase, sizeof(phase), "stop-and-copy");
    else
        snprintf(phase, sizeof(phase), "round %" PRIu64, round);
    fmt_eta(eta, etas, sizeof(etas));
    fprintf(stderr,
            "\r\033[K%-13s [%s] %3u%% %" PRIu64 "/%" PRIu64
            " pages  dirty %" PRIu64 " p/s  %.1f MB  ETA %s",
            phase, bar, pct, sent, total, rate, (double)wire / 1e6, etas);
    fflush(stderr);
    xlmig_status_line = true;
}

static void bar_clear(void)
{
    if (xlmig_status_line)
        fputs("\r\033[K", stderr);
    fflush(stderr);
    xlmig_status_line = false;
}

static const char *jstr_or(yajl_val v, const char *key, const char *def)
{
    const char *s = lxm__jstr(v, key);

    return s && *s ? s : def;
}

/* "  codec  lz4, ratio 3.21, 97% of frames compressed" */
static void compress_line(yajl_val r)
{
    const char *codec = jstr_or(r, "codec", "none");
    yajl_val ratio = lxm__jget(r, "compress_ratio");
    int64_t frames = lxm__jint(r, "frames", 0);
    int64_t comp = lxm__jint(r, "frames_compressed", 0);

    printf("  codec          %8s", codec);
    if (strcmp(codec, "none") && ratio && YAJL_IS_NUMBER(ratio))
        printf(", ratio %.2f, %" PRId64 "%% of frames compressed",
               YAJL_GET_DOUBLE(ratio), frames ? comp * 100 / frames : 0);
    printf("\n");
    if (lxm__jstr(r, "warning"))
        printf("  warning        %s\n", lxm__jstr(r, "warning"));
}

static void print_report(yajl_val r)
{
    printf("%s: migrated from %s to %s\n", jstr_or(r, "name", "?"),
           jstr_or(r, "source", "?"), jstr_or(r, "destination", "?"));
    printf("  total time     %8" PRId64 " ms\n", lxm__jint(r, "total_ms", 0));
    printf("  downtime       %8" PRId64 " ms\n",
           lxm__jint(r, "downtime_ms", 0));
    printf("  rounds         %8" PRId64 "\n", lxm__jint(r, "rounds", 0));
    printf("  pages sent     %8" PRId64 "\n", lxm__jint(r, "pages_sent", 0));
    printf("  on the wire    %8.1f MB\n",
           (double)lxm__jint(r, "bytes_wire", 0) / 1e6);
    compress_line(r);
    printf("  memory digest  %8s\n",
           lxm__jbool(r, "digest_checked", false) ? "checked" : "-");
}

int xlmig_main_migrate(const struct cmd_spec *spec, int argc, char **argv)
{
    xlmig_agent *a = NULL;
    yajl_val reply = NULL;
    yajl_gen req;
    bar_state bs = { false };
    sig_watch w;
    sigset_t old;
    bool watching;
    char dest[256], *raw = NULL;
    const char *arg, *policy = NULL, *dom, *status, *compress = NULL;
    char why[160];
    uint64_t downtime = 0, rounds = 0, mbps = 0;
    bool json = xlmig_json, live = true, verify = true;
    int opt, rc, ret = XLMIG_EXIT_FAIL;

    while ((opt = xlmig_getopt(spec, argc, argv, &arg)) != -1) {
        switch (opt) {
        case XLMIG_OPT_JSON:
            json = true;
            break;
        case 'H':
            xlmig_host = arg;
            break;
        case XLMIG_OPT_LIVE:
            live = true;
            break;
        case XLMIG_OPT_NON_LIVE:
            live = false;
            break;
        case XLMIG_OPT_POLICY:
            if (strcmp(arg, "downtime") && strcmp(arg, "xen") &&
                strcmp(arg, "suspend-if-needed") &&
                strcmp(arg, "abort-if-busy"))
                return xlmig_usage_error(spec->name, "unknown --policy '%s'",
                                         arg);
            policy = arg;
            break;
        case XLMIG_OPT_DOWNTIME_MS:
            if (!xlmig_parse_u64(arg, 3600000, &downtime) || !downtime)
                return xlmig_usage_error(spec->name, "bad --downtime-ms '%s'",
                                         arg);
            break;
        case XLMIG_OPT_MAX_ROUNDS:
            if (!xlmig_parse_u64(arg, 10000, &rounds) || !rounds)
                return xlmig_usage_error(spec->name, "bad --max-rounds '%s'",
                                         arg);
            break;
        case XLMIG_OPT_BANDWIDTH:
            if (!xlmig_parse_u64(arg, 1000000, &mbps) || !mbps)
                return xlmig_usage_error(spec->name,
                                         "bad --bandwidth '%s' (MB/s)", arg);
            break;
        case XLMIG_OPT_NO_VERIFY:
            verify = false;
            break;
        case XLMIG_OPT_COMPRESS:
            if (lxm__migrate_compress_check(arg, why, sizeof(why)))
                return xlmig_usage_error(spec->name, "bad --compress '%s': %s",
                                         arg, why);
            compress = arg;
            break;
        case XLMIG_OPT_HELP:
            return XLMIG_EXIT_OK;
        default:
            return XLMIG_EXIT_USAGE;
        }
    }
    if (xlmig_optind() + 2 != argc)
        return xlmig_usage_error(spec->name, "expected DOMAIN HOST[:PORT]");
    dom = argv[xlmig_optind()];
    if (!*argv[xlmig_optind() + 1])
        return xlmig_usage_error(spec->name, "empty HOST");
    xlmig_addr_with_port(argv[xlmig_optind() + 1], dest, sizeof(dest));

    a = xlmig_agent_open();
    if (!a)
        return XLMIG_EXIT_FAIL;
    req = xlmig_request_new("migrate");
    lxm__json_str(req, "domain", dom);
    lxm__json_str(req, "destination", dest);
    lxm__json_bool(req, "live", live);
    if (policy)
        lxm__json_str(req, "policy", policy);
    if (downtime)
        lxm__json_uint(req, "downtime_ms", downtime);
    if (rounds)
        lxm__json_uint(req, "max_rounds", rounds);
    lxm__json_uint(req, "bandwidth", mbps * 1000000);
    lxm__json_bool(req, "verify", verify);
    if (compress)
        lxm__json_str(req, "compress", compress);

    bs.tty = isatty(STDERR_FILENO);
    memset(&w, 0, sizeof(w));
    w.a = a;
    w.domain = dom;
    watching = sig_watch_start(&w, &old);
    rc = xlmig_agent_call(a, spec->name, req, MIGRATE_TIMEOUT_MS, bar_event,
                          &bs, &reply, &raw);
    if (watching)
        sig_watch_stop(&w, &old);
    bar_clear();
    if (rc && __atomic_load_n(&w.signals, __ATOMIC_SEQ_CST))
        ret = XLMIG_EXIT_CANCELLED;
    if (rc)
        goto out; /* xlmig_agent_call printed the line */

    status = jstr_or(reply, "status", "unknown");
    if (json)
        printf("%s\n", raw);
    if (!strcmp(status, "migrated")) {
        if (!json)
            print_report(reply);
        ret = XLMIG_EXIT_OK;
    } else if (!strcmp(status, "unknown")) {
        xlmig_error(spec->name, "%s: %s", dom,
                    jstr_or(reply, "error", "state unknown after commit"));
    } else {
        xlmig_error(spec->name, "%s to %s: %s: %s (%s still runs on %s)", dom,
                    dest, status, jstr_or(reply, "error", "no reason given"),
                    dom, jstr_or(reply, "source", "the source"));
        if (!strcmp(status, "cancelled") &&
            __atomic_load_n(&w.signals, __ATOMIC_SEQ_CST))
            ret = XLMIG_EXIT_CANCELLED;
    }

out:
    yajl_tree_free(reply);
    free(raw);
    xlmig_agent_close(a);
    return ret;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
