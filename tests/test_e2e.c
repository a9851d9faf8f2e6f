/*
 * test_e2e.c - migration end to end: two (or more) xlmigd agents with
 * the sim backend on loopback, driven by the xlmig command, as a user
 * would.  Suite "e2e".
 *
 * Binaries: env LXM_XLMIGD (else tools/xlmigd/xlmigd under the top) and
 * LXM_XLMIG, set by `make check`.  Each agent runs in the foreground
 * with its own temporary state dir, --listen 127.0.0.1:0 and a ready
 * file giving the port it bound; it dies with the test process
 * (PR_SET_PDEATHSIG) and is stopped, killed if need be, and its
 * directory removed at the end of each test (after a failure, by the
 * test case's unchecked teardown).
 *
 * Cases: a live migration (report, list on both sides, the digest
 * check), a restart keeping its domains, unreachable agents, and the
 * faults of issue 3: receiver killed mid-stream, sender killed,
 * connection dropped, destination short of memory, a malformed stream
 * from a fake peer.  Stream compression (issue 5, tcase "compress"):
 * every codec with dirty rounds, auto and /etc/xlmig.conf (auto picks
 * the raw path over loopback after its link probe), auto to a peer
 * without the "probe" capability (the per-window switch), a peer
 * without codecs, a corrupted frame (LXM_FAULT send-corrupt-after), bad
 * values.  Each fault ends with the VM running on exactly one
 * host, nothing left on the destination (also after restarting it on
 * the same state dir), and one clear line on stderr.
 *
 * Every wait is bounded: agents must be ready in 20 s (agentutil.c), stop
 * in AGENT_STOP_S, commands finish in CLI_TIMEOUT_S (coreutils timeout).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "test.h"
#include "transport/proto.h"

#define AGENT_STOP_S 30
#define CLI_TIMEOUT_S 90
#define CASE_TIMEOUT_S 240
#define MAX_AGENTS 8

/* ---- agents (tests/agentutil.c) ------------------------------------- */

typedef lxm_test_agent agent;

/* Set up by the unchecked fixture, in the runner: every agent's
 * directory is made under it, and it is removed after the test case
 * whatever happened in the (forked) tests.  Check ends a failed test
 * with _exit(), so no atexit() would run there; the agents themselves
 * die with the test process (PR_SET_PDEATHSIG). */
static char e2e_base[64];

static agent *agents[MAX_AGENTS];
static bool atexit_done;

static void cleanup_all(void)
{
    int i;

    for (i = 0; i < MAX_AGENTS; i++) {
        if (!agents[i])
            continue;
        lxm_test_agent_kill(agents[i]);
        lxm_test_rm_rf(agents[i]->dir);
        free(agents[i]);
        agents[i] = NULL;
    }
}

/* A new agent (its --config: dir/xlmig.conf, absent unless a test
 * writes it: never the host's /etc/xlmig.conf). */
static agent *agent_new(const char *name)
{
    agent *a = calloc(1, sizeof(*a));
    int i;

    ck_assert_ptr_nonnull(a);
    if (!atexit_done) {
        atexit(cleanup_all);
        atexit_done = true;
    }
    for (i = 0; i < MAX_AGENTS && agents[i]; i++)
        ;
    ck_assert_int_lt(i, MAX_AGENTS);
    agents[i] = a;
    lxm_test_agent_init(a, e2e_base, name);
    snprintf(a->config, sizeof(a->config), "%s/xlmig.conf", a->dir);
    return a;
}

/* SIGTERM, wait (bounded); returns the wait status.  SIGKILL (and a
 * failed test) if it does not stop in time. */
static int agent_stop(agent *a)
{
    return lxm_test_agent_stop(a, AGENT_STOP_S);
}

/* The agent should die by itself (LXM_FAULT): its wait status. */
static int agent_wait_death(agent *a, int seconds)
{
    int status = lxm_test_wait_pid(a->pid, seconds);

    if (status == -1) {
        lxm_test_agent_kill(a);
        ck_abort_msg("xlmigd %s still running after %d s", a->name, seconds);
    }
    a->pid = 0;
    return status;
}

/* Stop (checking a clean exit 0), remove its directory, forget it. */
static void agent_done(agent *a)
{
    int status, i;

    if (a->pid > 0) {
        status = agent_stop(a);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "xlmigd %s stopped with status 0x%x; log:\n%s", a->name,
                      status, lxm_test_agent_log_tail(a));
    }
    lxm_test_rm_rf(a->dir);
    for (i = 0; i < MAX_AGENTS; i++) {
        if (agents[i] == a)
            agents[i] = NULL;
    }
    free(a);
}

/* ---- the CLI ---------------------------------------------------------- */

typedef lxm_test_cli cli_result;

/* xlmig -H HOST ARGS (host: an agent's control socket, or any ADDR). */
static cli_result xlmig_at(const char *host, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static cli_result xlmig_at(const char *host, const char *fmt, ...)
{
    const char *bin = lxm_test_xlmig_path();
    char args[1024], cmd[4096];
    cli_result r;
    va_list ap;

    ck_assert_msg(bin && access(bin, X_OK) == 0, "xlmig not found (%s)",
                  bin ? bin : "");
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "timeout -k 5 %d '%s' -H '%s' %s", CLI_TIMEOUT_S,
             bin, host, args);
    r = lxm_test_cli_run(cmd);
    ck_assert_msg(r.status != 124, "xlmig %s timed out after %d s", args,
                  CLI_TIMEOUT_S);
    return r;
}

#define xlmig(a, ...) xlmig_at((a)->control, __VA_ARGS__)

/* Exit status 0, nothing on stderr. */
static void assert_ok(const cli_result *r, const char *what)
{
    ck_assert_msg(r->status == 0, "%s: exit %d, stderr: %s", what, r->status,
                  r->err);
}

/* Exit 1 and exactly one line on stderr beginning with "xlmig: ". */
static void assert_one_line_error(const cli_result *r, const char *what)
{
    const char *nl = strchr(r->err, '\n');

    ck_assert_msg(r->status == 1, "%s: exit %d (expected 1), stderr: %s", what,
                  r->status, r->err);
    ck_assert_msg(!strncmp(r->err, "xlmig: ", 7), "%s: stderr '%s'", what,
                  r->err);
    ck_assert_msg(nl && nl[1] == '\0', "%s: stderr is not one line: '%s'", what,
                  r->err);
}

static yajl_val parse_json(const char *text)
{
    char eb[256];
    yajl_val v = yajl_tree_parse(text, eb, sizeof(eb));

    ck_assert_msg(v && YAJL_IS_OBJECT(v), "not a JSON object (%s): '%s'", eb,
                  text);
    return v;
}

/*
 * `xlmig list --json` on a: the state of domain name ("" when absent,
 * in static storage) and the number of domains.
 */
static const char *domain_state(agent *a, const char *name, int *n_r)
{
    static char state[32];
    cli_result r = xlmig(a, "list --json");
    yajl_val v, doms, d;
    size_t i;

    assert_ok(&r, "list --json");
    v = parse_json(r.out);
    doms = lxm__jget(v, "domains");
    ck_assert_msg(doms && YAJL_IS_ARRAY(doms), "no domains array: %s", r.out);
    state[0] = '\0';
    for (i = 0; i < doms->u.array.len; i++) {
        d = doms->u.array.values[i];
        ck_assert_ptr_nonnull(lxm__jstr(d, "name"));
        ck_assert_ptr_nonnull(lxm__jstr(d, "state"));
        if (!strcmp(lxm__jstr(d, "name"), name))
            snprintf(state, sizeof(state), "%s", lxm__jstr(d, "state"));
    }
    if (n_r)
        *n_r = (int)doms->u.array.len;
    yajl_tree_free(v);
    lxm_test_cli_dispose(&r);
    return state;
}

/* name runs on a and nowhere on b. */
static void assert_runs_only_on(agent *a, agent *b, const char *name)
{
    ck_assert_msg(!strcmp(domain_state(a, name, NULL), "running"),
                  "%s is not running on %s", name, a->name);
    ck_assert_msg(!strcmp(domain_state(b, name, NULL), ""), "%s is also on %s",
                  name, b->name);
}

/*
 * b has no domains and all its memory free; wait up to seconds for it
 * (a receiver cleans up when it notices a lost sender).
 */
static void assert_empty(agent *b, int seconds)
{
    struct timespec ts = { 0, 100 * 1000 * 1000 };
    cli_result r;
    yajl_val v;
    int n = -1, i;
    int64_t total = -1, avail = -2;

    for (i = 0; i < seconds * 10; i++) {
        domain_state(b, "", &n);
        r = xlmig(b, "host-info --json");
        assert_ok(&r, "host-info --json");
        v = parse_json(r.out);
        total = lxm__jint(v, "total_memory", -1);
        avail = lxm__jint(v, "free_memory", -2);
        yajl_tree_free(v);
        lxm_test_cli_dispose(&r);
        if (n == 0 && total == avail)
            return;
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("%s is not empty after %d s: %d domains, %" PRId64
                 " of %" PRId64 " bytes free",
                 b->name, seconds, n, avail, total);
}

static void sim_create(agent *a, const char *name, const char *opts)
{
    cli_result r = xlmig(a, "sim-create %s %s", opts, name);

    assert_ok(&r, "sim-create");
    lxm_test_cli_dispose(&r);
    ck_assert_str_eq(domain_state(a, name, NULL), "running");
}

/* ---- cases ---------------------------------------------------------- */

START_TEST(test_live_migration)
{
    agent *a = agent_new("h1"), *b = agent_new("h2");
    cli_result r;
    yajl_val v;
    int n;

    lxm_test_agent_start(a, NULL, NULL);
    lxm_test_agent_start(b, NULL, NULL);
    sim_create(a, "vm1", "--memory 64M --dirty-rate 2000 --working-set 8M");

    /* The uncompressed path (the agents' default is auto). */
    r = xlmig(a, "migrate --json --live --compress=none vm1 %s", b->listen);
    assert_ok(&r, "migrate");
    ck_assert_str_eq(r.err, "");
    v = parse_json(r.out);
    ck_assert_str_eq(lxm__jstr(v, "status"), "migrated");
    ck_assert_str_eq(lxm__jstr(v, "name"), "vm1");
    ck_assert_ptr_nonnull(lxm__jget(v, "total_ms"));
    ck_assert_ptr_nonnull(lxm__jget(v, "downtime_ms"));
    ck_assert_int_ge(lxm__jint(v, "rounds", 0), 1);
    ck_assert_int_ge(lxm__jint(v, "bytes_wire", 0), 64 << 20);
    ck_assert_int_le(lxm__jint(v, "downtime_ms", -1),
                     lxm__jint(v, "total_ms", -1));
    ck_assert_msg(lxm__jbool(v, "digest_checked", false),
                  "memory digests not compared: %s", r.out);
    ck_assert_str_eq(lxm__jstr(v, "codec"), "none");
    ck_assert_int_eq(lxm__jint(v, "bytes_frames", 0),
                     lxm__jint(v, "bytes_stream", -1));
    yajl_tree_free(v);
    lxm_test_cli_dispose(&r);

    assert_runs_only_on(b, a, "vm1");
    domain_state(a, "", &n);
    ck_assert_int_eq(n, 0);

    /* And back, non-live, in text. */
    r = xlmig(b, "migrate --non-live vm1 %s", a->listen);
    assert_ok(&r, "migrate back");
    ck_assert_msg(strstr(r.out, "vm1: migrated from h2 to") != NULL,
                  "report: %s", r.out);
    ck_assert_msg(strstr(r.out, "downtime") && strstr(r.out, "rounds"),
                  "report: %s", r.out);
    ck_assert_str_eq(r.err, "");
    lxm_test_cli_dispose(&r);
    assert_runs_only_on(a, b, "vm1");
    assert_empty(b, 1);

    agent_done(a);
    agent_done(b);
}
END_TEST

/*
 * Cancel: `xlmig cancel` from another process, then SIGTERM to `xlmig
 * migrate` itself.  Both end with the report (status "cancelled", the
 * engine's own numbers), the VM running on the source only and the
 * destination empty; the signalled migrate exits 3.  --bandwidth keeps
 * each migration of the 64M guest at 3 s or more, so both arrive while
 * it runs.
 */
START_TEST(test_cancel)
{
    agent *a = agent_new("h1"), *b = agent_new("h2");
    const char *bin = lxm_test_xlmig_path();
    char cmd[4 * PATH_MAX];
    cli_result r;
    yajl_val v;

    lxm_test_agent_start(a, NULL, NULL);
    lxm_test_agent_start(b, NULL, NULL);
    sim_create(a, "vm1", "--memory 64M --dirty-rate 1000 --working-set 8M");

    /* Nothing to cancel yet: a clear error. */
    r = xlmig(a, "cancel vm1");
    assert_one_line_error(&r, "cancel with no migration");
    ck_assert_msg(strstr(r.err, "no migration of vm1 in progress on h1"), "%s",
                  r.err);
    lxm_test_cli_dispose(&r);

    /* xlmig cancel (retried until the migration is there). */
    snprintf(cmd, sizeof(cmd),
             "'%s' -H '%s' migrate --json --bandwidth 20 vm1 %s"
             " >'%s/mig.json' 2>/dev/null & m=$!;"
             " for i in $(seq 100); do '%s' -H '%s' cancel vm1 >/dev/null"
             " 2>&1 && break; sleep 0.1; done; echo tries=$i;"
             " wait $m; echo rc=$?; cat '%s/mig.json'",
             bin, a->control, b->listen, a->dir, bin, a->control, a->dir);
    r = lxm_test_cli_run(cmd);
    ck_assert_msg(strstr(r.out, "rc=1\n") && !strstr(r.out, "tries=100"), "%s",
                  r.out);
    v = parse_json(strchr(strstr(r.out, "rc=1\n"), '\n') + 1);
    ck_assert_str_eq(lxm__jstr(v, "status"), "cancelled");
    ck_assert_str_eq(lxm__jstr(v, "error"), "cancelled by request");
    ck_assert(lxm__jbool(v, "source_resumed", false));
    ck_assert_int_gt(lxm__jint(v, "total_ms", 0), 0);
    ck_assert_int_gt(lxm__jint(v, "bytes_wire", 0), 0);
    yajl_tree_free(v);
    lxm_test_cli_dispose(&r);
    assert_runs_only_on(a, b, "vm1");
    assert_empty(b, 5);

    /* SIGTERM to xlmig migrate (SIGINT is ignored in a background job of
     * a non-interactive shell; both take the same path). */
    snprintf(cmd, sizeof(cmd),
             "'%s' -H '%s' migrate --bandwidth 20 vm1 %s & m=$!; sleep 1;"
             " kill -TERM $m; wait $m; echo rc=$?",
             bin, a->control, b->listen);
    r = lxm_test_cli_run(cmd);
    ck_assert_msg(strstr(r.out, "rc=3\n"), "out: %s err: %s", r.out, r.err);
    ck_assert_msg(strstr(r.err, "SIGTERM: cancelling the migration of vm1") &&
                      strstr(r.err, "cancelled: cancelled by request"),
                  "%s", r.err);
    lxm_test_cli_dispose(&r);
    assert_runs_only_on(a, b, "vm1");
    assert_empty(b, 5);

    agent_done(a);
    agent_done(b);
}
END_TEST

START_TEST(test_restart_keeps_domains)
{
    agent *a = agent_new("h1");
    cli_result r;
    int status, n;

    lxm_test_agent_start(a, NULL, NULL);
    sim_create(a, "vm-a", "--memory 16M --dirty-rate 500");
    sim_create(a, "vm-b", "--memory 8M --type pv");
    r = xlmig(a, "sim-create --memory 8M vm-a");
    assert_one_line_error(&r, "duplicate sim-create");
    lxm_test_cli_dispose(&r);

    status = agent_stop(a);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "stop: status 0x%x", status);
    r = xlmig(a, "list");
    assert_one_line_error(&r, "list while stopped");
    lxm_test_cli_dispose(&r);

    lxm_test_agent_start(a, NULL, NULL);
    ck_assert_str_eq(domain_state(a, "vm-a", &n), "running");
    ck_assert_str_eq(domain_state(a, "vm-b", NULL), "running");
    ck_assert_int_eq(n, 2);

    r = xlmig(a, "sim-destroy vm-b");
    assert_ok(&r, "sim-destroy");
    lxm_test_cli_dispose(&r);
    ck_assert_str_eq(domain_state(a, "vm-b", &n), "");
    ck_assert_int_eq(n, 1);
    r = xlmig(a, "sim-destroy vm-b");
    assert_one_line_error(&r, "sim-destroy of a missing domain");
    lxm_test_cli_dispose(&r);
    agent_done(a);
}
END_TEST

/* A marker of an incoming migration the agent was serving when it died
 * makes the next start destroy the half-built domain it names (under
 * libxl that domain would otherwise outlive the agent), and only that
 * one. */
START_TEST(test_restart_destroys_half_received)
{
    agent *a = agent_new("h1");
    char path[PATH_MAX + 64];
    FILE *fp;
    int n, status;

    lxm_test_agent_start(a, NULL, NULL);
    sim_create(a, "vm--incoming", "--memory 8M");
    sim_create(a, "other--incoming", "--memory 8M");
    status = agent_stop(a);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "stop: status 0x%x", status);

    snprintf(path, sizeof(path), "%s/incoming", a->state);
    ck_assert(mkdir(path, 0755) == 0 || errno == EEXIST);
    snprintf(path, sizeof(path), "%s/incoming/vm--incoming", a->state);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fclose(fp);

    lxm_test_agent_start(a, NULL, NULL);
    ck_assert_str_eq(domain_state(a, "vm--incoming", &n), "");
    ck_assert_str_eq(domain_state(a, "other--incoming", NULL), "running");
    ck_assert_int_eq(n, 1);
    ck_assert_int_ne(access(path, F_OK), 0);
    agent_done(a);
}
END_TEST

START_TEST(test_unreachable)
{
    agent *a = agent_new("h1");
    cli_result r;

    r = xlmig_at("/tmp/lxm-e2e-nonexistent/xlmigd.sock", "list");
    assert_one_line_error(&r, "list without an agent");
    ck_assert_str_eq(r.err, "xlmig: cannot connect to agent "
                            "/tmp/lxm-e2e-nonexistent/xlmigd.sock: no such"
                            " file (is xlmigd running?)\n");
    lxm_test_cli_dispose(&r);

    lxm_test_agent_start(a, NULL, NULL);
    sim_create(a, "vm1", "--memory 8M");
    /* Port 1 on loopback: nobody listens there. */
    r = xlmig(a, "migrate vm1 127.0.0.1:1");
    assert_one_line_error(&r, "migrate to an unreachable host");
    ck_assert_msg(strstr(r.err, "127.0.0.1:1") != NULL, "stderr: %s", r.err);
    lxm_test_cli_dispose(&r);
    ck_assert_str_eq(domain_state(a, "vm1", NULL), "running");

    r = xlmig(a, "migrate no-such-vm %s", a->listen);
    assert_one_line_error(&r, "migrate of a missing domain");
    lxm_test_cli_dispose(&r);
    agent_done(a);
}
END_TEST

/* The common end of a fault: one line, VM on a only, b empty, and b
 * still empty once restarted on its state dir. */
static void fault_epilogue(agent *a, agent *b, const cli_result *r,
                           const char *what)
{
    assert_one_line_error(r, what);
    if (b->pid == 0) /* killed: it comes back on its state dir */
        lxm_test_agent_start(b, NULL, NULL);
    assert_runs_only_on(a, b, "vm1");
    assert_empty(b, 10);
    agent_stop(b);
    lxm_test_agent_start(b, NULL, NULL);
    assert_empty(b, 1);
    assert_runs_only_on(a, b, "vm1");
}

START_TEST(test_fault_receiver_killed)
{
    agent *a = agent_new("h1"), *b = agent_new("h2");
    cli_result r;
    int status;

    lxm_test_agent_start(a, NULL, NULL);
    lxm_test_agent_start(b, "recv-crash-after=4194304", NULL);
    sim_create(a, "vm1", "--memory 32M --dirty-rate 1000");

    r = xlmig(a, "migrate vm1 %s", b->listen);
    status = agent_wait_death(b, 10);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 137,
                  "receiver status 0x%x", status);
    fault_epilogue(a, b, &r, "migrate, receiver killed");
    lxm_test_cli_dispose(&r);
    agent_done(a);
    agent_done(b);
}
END_TEST

START_TEST(test_fault_sender_killed)
{
    agent *a = agent_new("h1"), *b = agent_new("h2");
    cli_result r;
    int status;

    lxm_test_agent_start(a, "send-crash-after=4194304", NULL);
    lxm_test_agent_start(b, NULL, NULL);
    sim_create(a, "vm1", "--memory 32M --dirty-rate 1000");

    r = xlmig(a, "migrate vm1 %s", b->listen);
    assert_one_line_error(&r, "migrate, sender killed");
    ck_assert_msg(strstr(r.err, "closed the connection") != NULL, "stderr: %s",
                  r.err);
    status = agent_wait_death(a, 10);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 137,
                  "sender status 0x%x", status);
    /* The destination noticed and kept nothing. */
    assert_empty(b, 15);
    /* The source comes back with its VM running. */
    lxm_test_agent_start(a, NULL, NULL);
    fault_epilogue(a, b, &r, "migrate, sender killed");
    lxm_test_cli_dispose(&r);
    agent_done(a);
    agent_done(b);
}
END_TEST

START_TEST(test_fault_connection_dropped)
{
    agent *a = agent_new("h1"), *b = agent_new("h2");
    cli_result r;

    lxm_test_agent_start(a, "send-drop-after=4194304", NULL);
    lxm_test_agent_start(b, NULL, NULL);
    sim_create(a, "vm1", "--memory 32M --dirty-rate 1000");

    r = xlmig(a, "migrate vm1 %s", b->listen);
    ck_assert_msg(strstr(r.err, "still runs on h1") != NULL, "stderr: %s",
                  r.err);
    fault_epilogue(a, b, &r, "migrate, connection dropped");
    lxm_test_cli_dispose(&r);
    /* The source agent is fine: the VM can go now (the fault fires only
     * once per migration, so restart the source without it). */
    agent_stop(a);
    lxm_test_agent_start(a, NULL, NULL);
    r = xlmig(a, "migrate vm1 %s", b->listen);
    assert_ok(&r, "migrate after the drop");
    lxm_test_cli_dispose(&r);
    assert_runs_only_on(b, a, "vm1");
    agent_done(a);
    agent_done(b);
}
END_TEST

START_TEST(test_fault_destination_memory)
{
    agent *a = agent_new("h1"), *b = agent_new("h2");
    cli_result r;

    lxm_test_agent_start(a, NULL, NULL);
    lxm_test_agent_start(b, NULL, "32M");
    sim_create(a, "vm1", "--memory 64M --dirty-rate 1000");

    r = xlmig(a, "migrate --json vm1 %s", b->listen);
    ck_assert_msg(strstr(r.err, "memory") != NULL, "stderr: %s", r.err);
    ck_assert_msg(strstr(r.out, "\"status\"") != NULL, "stdout: %s", r.out);
    fault_epilogue(a, b, &r, "migrate to a host short of memory");
    lxm_test_cli_dispose(&r);
    agent_done(a);
    agent_done(b);
}
END_TEST

/* Offset of the first libxc PAGE_DATA record in a stream. */
typedef struct find_page_data {
    uint64_t offset;
    bool found;
} find_page_data;

static int find_page_data_event(void *opaque, const lxm_stream_event *ev)
{
    find_page_data *fp = opaque;

    if (!fp->found && ev->kind == LXM_EV_RECORD &&
        ev->layer == LXM_LAYER_LIBXC &&
        ev->u.record.type == LXM_LIBXC_PAGE_DATA) {
        fp->offset = ev->offset;
        fp->found = true;
    }
    return 0;
}

START_TEST(test_fault_malformed_stream)
{
    agent *b = agent_new("h2");
    lxm__synth_opts o = {
        .guest_type = LXM_GUEST_X86_HVM,
        .memory_bytes = 4 << 20,
        .rounds = 1,
        .vcpus = 1,
        .seed = 7,
        .name = "evil",
    };
    lxm_test_buf buf = { NULL, 0, 0 };
    find_page_data fp = { 0, false };
    char err[512], needle[64];
    lxm__conn *c = NULL;
    yajl_gen g;
    size_t off, n;
    int rc;

    lxm_test_synth(&o, LXM_FORMAT_XL, &buf);
    rc = lxm_test_read_buf(buf.data, buf.len, LXM_FORMAT_XL, 0, 0,
                           find_page_data_event, &fp, NULL);
    ck_assert_int_eq(rc, 0);
    ck_assert(fp.found);
    /* PAGE_DATA body: count (u32), reserved (u32): count 2000 > 1024. */
    lxm__put_le32(buf.data + fp.offset + 8, 2000);

    lxm_test_agent_start(b, NULL, NULL);
    rc = lxm__conn_connect(b->listen, 5000, NULL, &c);
    ck_assert_int_eq(rc, 0);
    lxm__conn_set_timeout(c, 20000);
    ck_assert_int_eq(lxm__proto_hello(c, "peer", "fake", NULL), 0);
    g = lxm__json_new();
    lxm__json_str(g, "name", "evil");
    lxm__json_str(g, "uuid", "5a3f4c2e-0000-4000-8000-000000000001");
    lxm__json_uint(g, "memory_bytes", o.memory_bytes);
    lxm__json_uint(g, "vcpus", 1);
    lxm__json_str(g, "kind", "hvm");
    lxm__json_bool(g, "live", true);
    lxm__json_str(g, "source_host", "fake");
    ck_assert_int_eq(lxm__conn_send_json(c, LXM__MSG_MIGRATE, g), 0);
    rc = lxm__conn_expect(c, LXM__MSG_ACCEPT, NULL, err, sizeof(err));
    ck_assert_msg(rc == 0, "no ACCEPT: %s (%s)", lxm_strerror(rc), err);

    /* The whole stream; the receiver may stop reading at the fault. */
    for (off = 0; off < buf.len; off += n) {
        n = LXM_MIN(buf.len - off, (size_t)LXM__STREAM_CHUNK);
        if (lxm__conn_send(c, LXM__MSG_STREAM, LXM__CODEC_NONE, buf.data + off,
                           (uint32_t)n))
            break;
    }
    g = lxm__json_new();
    lxm__json_uint(g, "bytes", buf.len);
    lxm__conn_send_json(c, LXM__MSG_STREAM_END, g);

    err[0] = '\0';
    rc = lxm__conn_expect(c, LXM__MSG_READY, NULL, err, sizeof(err));
    ck_assert_msg(rc == LXM_ERROR_PEER, "expected FAILED, got %s (%s)",
                  lxm_strerror(rc), err);
    snprintf(needle, sizeof(needle), "offset %" PRIu64, fp.offset + 8);
    ck_assert_msg(strstr(err, needle) != NULL,
                  "the error does not name %s: '%s'", needle, err);
    ck_assert_msg(strchr(err, '\n') == NULL, "not one line: '%s'", err);
    lxm__conn_free(c);
    lxm_test_buf_dispose(&buf);

    assert_empty(b, 10);
    agent_stop(b);
    lxm_test_agent_start(b, NULL, NULL);
    assert_empty(b, 1);
    agent_done(b);
}
END_TEST


/* ---- stream compression (issue 5) -------------------------------- */

/* A file's contents contain needle (static helper for agent logs). */
static bool file_has(const char *path, const char *needle)
{
    char *text = lxm_test_slurp(path, NULL);
    bool found = strstr(text, needle) != NULL;

    free(text);
    return found;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* Migrate vm1 from -> to with --compress=alg (NULL: the agent's
 * default); checks the report (codec: want_codec, or its prefix when
 * want_codec ends with '*') and returns it (caller frees). */
static yajl_val migrate_codec(agent *from, agent *to, const char *alg,
                              const char *want_codec)
{
    char opt[64] = "";
    cli_result r;
    yajl_val v;
    size_t n;

    if (alg)
        snprintf(opt, sizeof(opt), "--compress=%s", alg);
    r = xlmig(from, "migrate --json %s vm1 %s", opt, to->listen);
    ck_assert_msg(r.status == 0, "migrate %s: exit %d, stderr: %s\nlog:\n%s",
                  opt, r.status, r.err, lxm_test_agent_log_tail(to));
    v = parse_json(r.out);
    ck_assert_str_eq(lxm__jstr(v, "status"), "migrated");
    ck_assert_msg(lxm__jbool(v, "digest_checked", false),
                  "%s: memory digests not compared: %s", opt, r.out);
    n = strlen(want_codec);
    if (n && want_codec[n - 1] == '*')
        n--;
    else
        n++; /* the NUL too: the whole string */
    ck_assert_msg(
        lxm__jstr(v, "codec") && !strncmp(lxm__jstr(v, "codec"), want_codec, n),
        "%s: codec %s, expected %s", opt, lxm__jstr(v, "codec"), want_codec);
    lxm_test_cli_dispose(&r);
    assert_runs_only_on(to, from, "vm1");
    return v;
}

/* Every codec, there and back, with dirty rounds: the destination's
 * memory digest matches each time (the engine's check before GO). */
START_TEST(test_compress_every_codec)
{
    static const struct {
        const char *alg, *codec;
    } cases[] = {
        { "lz4", "lz4:1" },       { "zstd", "zstd:1" }, { "zlib:1", "zlib:1" },
        { "zstd:-3", "zstd:-3" }, { "zlib", "zlib:6" },
    };
    agent *a = agent_new("h1"), *b = agent_new("h2"), *from, *to;
    yajl_val v;
    size_t i;

    lxm_test_agent_start(a, NULL, NULL);
    lxm_test_agent_start(b, NULL, NULL);
    sim_create(a, "vm1",
               "--memory 16M --dirty-rate 2000 --working-set 4M"
               " --mix zero=40,code=20,text=20");
    for (i = 0; i < LXM_ARRAY_SIZE(cases); i++) {
        from = i % 2 ? b : a;
        to = i % 2 ? a : b;
        v = migrate_codec(from, to, cases[i].alg, cases[i].codec);
        ck_assert_int_ge(lxm__jint(v, "rounds", 0), 2);
        ck_assert_int_gt(lxm__jint(v, "frames", 0), 1);
        ck_assert_int_gt(lxm__jint(v, "frames_compressed", 0), 0);
        ck_assert_msg(lxm__jint(v, "bytes_frames", 0) * 3 / 2 <
                          lxm__jint(v, "bytes_stream", 0),
                      "%s did not compress: %" PRId64 " of %" PRId64,
                      cases[i].alg, lxm__jint(v, "bytes_frames", 0),
                      lxm__jint(v, "bytes_stream", 0));
        ck_assert_ptr_null(lxm__jget(v, "warning"));
        yajl_tree_free(v);
    }
    agent_done(a);
    agent_done(b);
}
END_TEST

/* auto over loopback, to an agent that answers the link probe: the
 * link outruns the codec path, so the whole stream goes raw, exactly as
 * with --compress=none, and the report says why. */
static void assert_auto_raw(yajl_val v)
{
    ck_assert_str_eq(lxm__jstr(v, "auto_choice"), "raw");
    ck_assert_int_gt(lxm__jint(v, "auto_link_mbps", 0), 0);
    ck_assert_int_gt(lxm__jint(v, "auto_codec_mbps", 0), 0);
    ck_assert_int_lt(lxm__jint(v, "auto_codec_mbps", 0),
                     2 * lxm__jint(v, "auto_link_mbps", 0));
    ck_assert_int_eq(lxm__jint(v, "frames_compressed", -1), 0);
    ck_assert_int_eq(lxm__jint(v, "codec_switches", -1), 0);
    ck_assert_int_eq(lxm__jint(v, "bytes_frames", 0),
                     lxm__jint(v, "bytes_stream", -1));
    /* The probe is on the wire too: 7 MiB, or only its first MiB when
     * that was slow (a loaded host, a sanitizer build). */
    ck_assert_int_ge(lxm__jint(v, "bytes_wire", 0),
                     lxm__jint(v, "bytes_stream", 0) + (1 << 20));
}

/* auto is the default without a config file; a config file changes
 * the default; --compress overrides it. */
START_TEST(test_compress_auto_and_config)
{
    agent *a = agent_new("h1"), *b = agent_new("h2");
    yajl_val v;

    lxm_test_agent_start(a, NULL, NULL);
    lxm_test_agent_start(b, NULL, NULL);
    sim_create(a, "vm1", "--memory 24M --dirty-rate 1000 --working-set 4M");
    /* By default a peer on this host gets the raw stream, unprobed. */
    v = migrate_codec(a, b, NULL, "none (auto: peer on this host)");
    ck_assert_str_eq(lxm__jstr(v, "auto_choice"), "raw (same host)");
    ck_assert_int_eq(lxm__jint(v, "frames_compressed", -1), 0);
    ck_assert_int_lt(lxm__jint(v, "bytes_wire", 0),
                     lxm__jint(v, "bytes_stream", 0) + (1 << 20));
    yajl_tree_free(v);

    /* auto-same-host = probe: measured like a remote peer. */
    agent_stop(a);
    write_text(a->config, "auto-same-host = probe\n");
    lxm_test_agent_start(a, NULL, NULL);
    v = migrate_codec(b, a, NULL, "none (auto: peer on this host)");
    yajl_tree_free(v);
    v = migrate_codec(a, b, NULL, "none (auto: link *");
    assert_auto_raw(v);
    yajl_tree_free(v);

    /* b's default from its config file (comments, quotes). */
    agent_stop(b);
    write_text(b->config, "# test\n\ncompress = \"zstd:-1\"   # fast\n");
    lxm_test_agent_start(b, NULL, NULL);
    v = migrate_codec(b, a, NULL, "zstd:-1");
    yajl_tree_free(v);
    v = migrate_codec(a, b, "auto", "none (auto: *");
    assert_auto_raw(v);
    yajl_tree_free(v);
    v = migrate_codec(b, a, "none", "none");
    ck_assert_ptr_null(lxm__jget(v, "auto_choice"));
    yajl_tree_free(v);
    agent_done(a);
    agent_done(b);
}
END_TEST

/* A destination whose HELLO lacks "probe" (as before issue 5 item 4;
 * here: an explicit --codecs list) still gets a working auto: the
 * pre-pass throughout and lz4 switched per window, without PROBE
 * frames, which it would refuse as unknown. */
START_TEST(test_compress_auto_peer_without_probe)
{
    agent *a = agent_new("h1"), *b = agent_new("h2");
    yajl_val v;

    b->extra[0] = "--codecs";
    b->extra[1] = "zlib,zstd,lz4,pages";
    write_text(a->config, "auto-same-host = probe\n");
    lxm_test_agent_start(a, NULL, NULL);
    lxm_test_agent_start(b, NULL, NULL);
    sim_create(a, "vm1", "--memory 24M --dirty-rate 1000 --working-set 4M");
    v = migrate_codec(a, b, "auto", "auto(lz4)");
    ck_assert_str_eq(lxm__jstr(v, "auto_choice"), "codec (no probe)");
    ck_assert_int_eq(lxm__jint(v, "auto_link_mbps", -1), 0);
    /* The first window compresses (it measures the codec), the second
     * does not (it measures the socket). */
    ck_assert_int_gt(lxm__jint(v, "frames_compressed", 0), 0);
    ck_assert_int_lt(lxm__jint(v, "frames_compressed", 0),
                     lxm__jint(v, "frames", 0));
    ck_assert_int_lt(lxm__jint(v, "bytes_frames", 0),
                     lxm__jint(v, "bytes_stream", 0));
    /* No probe bytes went to it. */
    ck_assert_int_lt(lxm__jint(v, "bytes_wire", 0),
                     lxm__jint(v, "bytes_stream", 0));
    yajl_tree_free(v);
    agent_done(a);
    agent_done(b);
}
END_TEST

/* The pre-pass token version follows the destination's HELLO: 2 to an
 * agent listing "codec:pages2", 1 to one of before it (here: --codecs
 * with "pages1"), and both decode to the same guest. */
START_TEST(test_compress_prepass_versions)
{
    agent *a = agent_new("h1"), *b = agent_new("h2");
    yajl_val v;

    b->extra[0] = "--codecs";
    b->extra[1] = "zlib,pages1";
    lxm_test_agent_start(a, NULL, NULL);
    lxm_test_agent_start(b, NULL, NULL);
    sim_create(a, "vm1", "--memory 24M --dirty-rate 2000 --working-set 4M");
    v = migrate_codec(a, b, "zlib", "zlib:6");
    ck_assert_int_eq(lxm__jint(v, "prepass_version", -1), 1);
    ck_assert_int_gt(lxm__jint(v, "frames_compressed", 0), 0);
    yajl_tree_free(v);
    v = migrate_codec(b, a, "zlib", "zlib:6");
    ck_assert_int_eq(lxm__jint(v, "prepass_version", -1), 2);
    yajl_tree_free(v);
    v = migrate_codec(a, b, "none", "none");
    ck_assert_int_eq(lxm__jint(v, "prepass_version", -1), 0);
    yajl_tree_free(v);
    agent_done(a);
    agent_done(b);
}
END_TEST

/* A destination that lists no codec in its HELLO gets the stream
 * uncompressed, with a warning in the report and the source's log. */
START_TEST(test_compress_peer_without_codecs)
{
    agent *a = agent_new("h1"), *b = agent_new("h2");
    yajl_val v;

    b->extra[0] = "--codecs";
    b->extra[1] = "none";
    /* auto as if b were another host (else: raw for a peer on this
     * host, before any codec question) */
    write_text(a->config, "auto-same-host = probe\n");
    lxm_test_agent_start(a, NULL, NULL);
    lxm_test_agent_start(b, NULL, NULL);
    sim_create(a, "vm1", "--memory 16M --dirty-rate 1000");
    v = migrate_codec(a, b, "zstd", "none");
    ck_assert_msg(lxm__jstr(v, "warning") &&
                      strstr(lxm__jstr(v, "warning"), "codec:zstd"),
                  "no warning naming codec:zstd");
    ck_assert_int_eq(lxm__jint(v, "frames_compressed", -1), 0);
    ck_assert_int_eq(lxm__jint(v, "bytes_frames", 0),
                     lxm__jint(v, "bytes_stream", -1));
    yajl_tree_free(v);
    ck_assert_msg(file_has(a->log, "cannot decode zstd"), "log of h1:\n%s",
                  lxm_test_agent_log_tail(a));
    /* auto needs the pre-pass: none too. */
    v = migrate_codec(b, a, "lz4", "lz4:1");
    yajl_tree_free(v);
    v = migrate_codec(a, b, "auto", "none");
    ck_assert_ptr_nonnull(lxm__jstr(v, "warning"));
    yajl_tree_free(v);
    agent_done(a);
    agent_done(b);
}
END_TEST

/* One flipped byte in a compressed frame: the receiver catches it by
 * the checksum, fails the migration at stage "stream", destroys what
 * it had; the VM keeps running on the source. */
START_TEST(test_compress_corrupt_frame)
{
    agent *a = agent_new("h1"), *b = agent_new("h2");
    cli_result r;

    lxm_test_agent_start(a, "send-corrupt-after=4194304", NULL);
    lxm_test_agent_start(b, NULL, NULL);
    sim_create(a, "vm1", "--memory 32M --dirty-rate 1000");

    r = xlmig(a, "migrate --compress=lz4 vm1 %s", b->listen);
    ck_assert_msg(strstr(r.err, "corrupt") != NULL, "stderr: %s", r.err);
    ck_assert_msg(strstr(r.err, "still runs on h1") != NULL, "stderr: %s",
                  r.err);
    ck_assert_msg(file_has(b->log, "compressed stream: frame"),
                  "log of h2:\n%s", lxm_test_agent_log_tail(b));
    ck_assert_msg(file_has(a->log, "LXM_FAULT: corrupted"), "log of h1:\n%s",
                  lxm_test_agent_log_tail(a));
    fault_epilogue(a, b, &r, "migrate, corrupt frame");
    lxm_test_cli_dispose(&r);
    agent_done(a);
    agent_done(b);
}
END_TEST

/* Bad values: a usage error naming the value; a bad config file line
 * stops the agent with FILE:LINE. */
START_TEST(test_compress_bad_values)
{
    agent *a = agent_new("h1");
    char cmd[5 * PATH_MAX + 512], *out = NULL;
    cli_result r;
    int status;

    lxm_test_agent_start(a, NULL, NULL);
    sim_create(a, "vm1", "--memory 8M");
    r = xlmig(a, "migrate --compress=gzip vm1 %s", a->listen);
    ck_assert_msg(r.status == 2, "exit %d, stderr: %s", r.status, r.err);
    ck_assert_msg(strstr(r.err, "'gzip'") != NULL, "stderr: %s", r.err);
    lxm_test_cli_dispose(&r);
    r = xlmig(a, "migrate --compress=zstd:99 vm1 %s", a->listen);
    ck_assert_msg(r.status == 2 && strstr(r.err, "zstd:99"), "stderr: %s",
                  r.err);
    lxm_test_cli_dispose(&r);
    agent_stop(a);

    write_text(a->config, "# xlmig.conf\n\ncompress = lz5\n");
    snprintf(cmd, sizeof(cmd),
             "timeout -k 5 20 '%s' --backend sim --foreground --state-dir"
             " '%s' --listen 127.0.0.1:0 --control '%s' --config '%s' 2>&1",
             lxm_test_xlmigd_path(), a->state, a->control, a->config);
    status = lxm_test_run(cmd, &out);
    ck_assert_msg(status == 2, "xlmigd exit %d: %s", status, out);
    ck_assert_msg(out && strstr(out, "xlmig.conf:3:") && strstr(out, "lz5"),
                  "xlmigd: %s", out);
    free(out);
    out = NULL;
    write_text(a->config, "compres = lz4\n");
    status = lxm_test_run(cmd, &out);
    ck_assert_msg(status == 2 && out && strstr(out, "xlmig.conf:1:"),
                  "xlmigd exit %d: %s", status, out ? out : "");
    free(out);
    out = NULL;
    write_text(a->config, "\nauto-same-host = sometimes\n");
    status = lxm_test_run(cmd, &out);
    ck_assert_msg(status == 2 && out &&
                      strstr(out, "xlmig.conf:2: bad auto-same-host"),
                  "xlmigd exit %d: %s", status, out ? out : "");
    free(out);
    agent_done(a);
}
END_TEST

static void e2e_setup(void)
{
    snprintf(e2e_base, sizeof(e2e_base), "/tmp/lxm-e2e-XXXXXX");
    if (!mkdtemp(e2e_base))
        e2e_base[0] = '\0';
}

static void e2e_teardown(void)
{
    lxm_test_rm_rf(e2e_base);
    e2e_base[0] = '\0';
}

Suite *lxm_test_e2e_suite(void)
{
    Suite *s = suite_create("e2e");
    TCase *tc;

    tc = tcase_create("migrate");
    tcase_add_unchecked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, CASE_TIMEOUT_S);
    tcase_add_test(tc, test_live_migration);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_restart_keeps_domains);
    tcase_add_test(tc, test_restart_destroys_half_received);
    tcase_add_test(tc, test_unreachable);
    suite_add_tcase(s, tc);

    tc = tcase_create("faults");
    tcase_add_unchecked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, CASE_TIMEOUT_S);
    tcase_add_test(tc, test_fault_receiver_killed);
    tcase_add_test(tc, test_fault_sender_killed);
    tcase_add_test(tc, test_fault_connection_dropped);
    tcase_add_test(tc, test_fault_destination_memory);
    tcase_add_test(tc, test_fault_malformed_stream);
    suite_add_tcase(s, tc);

    tc = tcase_create("compress");
    tcase_add_unchecked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, CASE_TIMEOUT_S);
    tcase_add_test(tc, test_compress_every_codec);
    tcase_add_test(tc, test_compress_auto_and_config);
    tcase_add_test(tc, test_compress_auto_peer_without_probe);
    tcase_add_test(tc, test_compress_prepass_versions);
    tcase_add_test(tc, test_compress_peer_without_codecs);
    tcase_add_test(tc, test_compress_corrupt_frame);
    tcase_add_test(tc, test_compress_bad_values);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
