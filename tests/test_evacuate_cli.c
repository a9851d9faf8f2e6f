/*
 * test_evacuate_cli.c - `xlmig pool-list` and `xlmig host-evacuate
 * --dry-run` end to end, against three sim xlmigd agents on loopback and
 * one pool host whose agent is not there.  Suite "evacuate_cli".
 *
 *   h1  the source: web (64M), db (128M, HA-protected), pci0 (32M, one
 *       PCI device), big (512M)
 *   h2  256 MiB of host memory: room for web and db, not for big
 *   h3  16 GiB, but an AuthenticAMD CPU (host.json override): refused
 *       for every VM
 *   h4  a control socket nobody listens on: unreachable
 *
 * Agents run in the foreground with their own state dir and control
 * socket, die with the test process (PR_SET_PDEATHSIG), and are stopped
 * at the end of the case; the fixture removes the directories.  Guests
 * are all-zero (sparse), so creating them costs nothing.  Every wait is
 * bounded (tests/agentutil.c).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "test.h"

#define AGENT_STOP_S 20
#define CLI_TIMEOUT_S 60
#define CASE_TIMEOUT_S 120
#define NR_AGENTS 3

static char base[64];
static lxm_test_agent agents[NR_AGENTS];
static char pool_path[PATH_MAX];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* Start agent name under base (sim_memory: --sim-memory or NULL;
 * host_json: its state/host.json or NULL). */
static void agent_start(lxm_test_agent *a, const char *name,
                        const char *sim_memory, const char *host_json)
{
    char path[PATH_MAX + 16];

    lxm_test_agent_init(a, base, name);
    if (host_json) {
        ck_assert_int_eq(mkdir(a->state, 0700), 0);
        snprintf(path, sizeof(path), "%s/host.json", a->state);
        write_file(path, host_json);
    }
    lxm_test_agent_start(a, NULL, sim_memory);
}

/* ---- the CLI ---- */

typedef lxm_test_cli cli_result;

static cli_result xlmig(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static cli_result xlmig(const char *fmt, ...)
{
    const char *bin = lxm_test_xlmig_path();
    char args[2048], cmd[PATH_MAX + 2200];
    cli_result r;
    va_list ap;

    ck_assert_msg(bin && access(bin, X_OK) == 0, "xlmig not found (%s)",
                  bin ? bin : "");
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "timeout -k 5 %d '%s' %s", CLI_TIMEOUT_S, bin,
             args);
    r = lxm_test_cli_run(cmd);
    ck_assert_msg(r.status != 124, "xlmig %s timed out", args);
    return r;
}

/* The line of out that starts with word (followed by a blank). */
static char *line_of(const char *out, const char *word)
{
    static char line[1024];
    const char *p = out;
    size_t n = strlen(word), len;

    while (p && *p) {
        const char *nl = strchr(p, '\n');

        len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > n && !strncmp(p, word, n) && (p[n] == ' ' || p[n] == '\t')) {
            snprintf(line, sizeof(line), "%.*s", (int)len, p);
            return line;
        }
        p = nl ? nl + 1 : NULL;
    }
    ck_abort_msg("no line for %s in:\n%s", word, out);
    return NULL;
}

static void sim_create(const lxm_test_agent *a, const char *args)
{
    cli_result r =
        xlmig("-H '%s' sim-create --mix zero=100 %s", a->control, args);

    ck_assert_msg(r.status == 0, "sim-create %s on %s: exit %d: %s", args,
                  a->name, r.status, r.err);
    lxm_test_cli_dispose(&r);
}

/* The pool of the file-top comment. */
static void pool_up(void)
{
    char text[4 * PATH_MAX];

    agent_start(&agents[0], "h1", NULL, NULL);
    agent_start(&agents[1], "h2", "256M", NULL);
    agent_start(&agents[2], "h3", NULL,
                "{\"hostname\": \"h3\", \"next_domid\": 1,"
                " \"cpu_vendor\": \"AuthenticAMD\"}\n");
    snprintf(pool_path, sizeof(pool_path), "%s/pool.conf", base);
    snprintf(text, sizeof(text),
             "# the test pool\n"
             "h1 %s\n"
             "h2 %s migration=127.0.0.1:1\n"
             "h3 %s\n"
             "h4 %s/nobody.sock\n",
             agents[0].control, agents[1].control, agents[2].control, base);
    write_file(pool_path, text);
    sim_create(&agents[0], "--memory 64M web");
    sim_create(&agents[0], "--memory 128M --ha db");
    sim_create(&agents[0], "--memory 32M --pci 1 pci0");
    sim_create(&agents[0], "--memory 512M big");
}

static void pool_down(void)
{
    int i;

    for (i = 0; i < NR_AGENTS; i++) {
        if (agents[i].pid > 0)
            lxm_test_agent_stop(&agents[i], AGENT_STOP_S);
    }
}

START_TEST(test_pool_list)
{
    cli_result r;
    yajl_val v, hosts, h;
    char err[128], *l;

    pool_up();
    r = xlmig("pool-list --pool '%s'", pool_path);
    ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
    ck_assert_str_eq(r.err, "");
    l = line_of(r.out, "h1");
    ck_assert_msg(strstr(l, " yes ") && strstr(l, "4.17.0-sim") &&
                      strstr(l, "GenuineIntel") && strstr(l, "16G"),
                  "%s", l);
    /* four VMs: the last column */
    ck_assert_msg(strlen(l) > 2 && !strcmp(l + strlen(l) - 2, " 4"), "%s", l);
    l = line_of(r.out, "h2");
    ck_assert_msg(strstr(l, "256M"), "%s", l);
    l = line_of(r.out, "h3");
    ck_assert_msg(strstr(l, "AuthenticAMD"), "%s", l);
    l = line_of(r.out, "h4");
    ck_assert_msg(strstr(l, " no ") && strstr(l, "nobody.sock"), "%s", l);
    lxm_test_cli_dispose(&r);

    r = xlmig("pool-list --pool '%s' --json", pool_path);
    ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
    v = yajl_tree_parse(r.out, err, sizeof(err));
    ck_assert_msg(v != NULL, "not JSON: %s: %s", err, r.out);
    {
        const char *path[] = { "hosts", NULL };

        hosts = yajl_tree_get(v, path, yajl_t_array);
    }
    ck_assert_ptr_nonnull(hosts);
    ck_assert_uint_eq(hosts->u.array.len, 4);
    h = hosts->u.array.values[0];
    {
        const char *pr[] = { "reachable", NULL },
                   *pd[] = { "nr_domains", NULL };
        const char *pe[] = { "error", NULL };

        ck_assert(YAJL_IS_TRUE(yajl_tree_get(h, pr, yajl_t_any)));
        ck_assert_int_eq(YAJL_GET_INTEGER(yajl_tree_get(h, pd, yajl_t_number)),
                         4);
        h = hosts->u.array.values[3];
        ck_assert(YAJL_IS_FALSE(yajl_tree_get(h, pr, yajl_t_any)));
        ck_assert_ptr_nonnull(yajl_tree_get(h, pe, yajl_t_string));
    }
    yajl_tree_free(v);
    lxm_test_cli_dispose(&r);

    /* A bad pool file: one line naming file and line. */
    write_file(pool_path, "h1 /x.sock\nh1 /y.sock\n");
    r = xlmig("pool-list --pool '%s'", pool_path);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "pool.conf:2: host h1 is listed twice"), "%s",
                  r.err);
    lxm_test_cli_dispose(&r);
    pool_down();
}
END_TEST

START_TEST(test_dry_run)
{
    char conf[PATH_MAX + 16], confdir[PATH_MAX + 16], err[128], *l;
    const char *pv[] = { "vms", NULL };
    cli_result r;
    yajl_val v, vms;
    size_t i;

    pool_up();
    snprintf(conf, sizeof(conf), "%s/xapi.conf", base);
    snprintf(confdir, sizeof(confdir), "%s/xapi.conf.d", base);
    write_file(conf, "# test\nevacuation-batch-size = \"-3\"\n");

    r = xlmig("host-evacuate --pool '%s' --xapi-conf '%s' --xapi-conf-dir"
              " '%s' --dry-run h1",
              pool_path, conf, confdir);
    /* Two VMs cannot go anywhere: exit 1. */
    ck_assert_msg(r.status == 1, "exit %d: %s\n%s", r.status, r.err, r.out);
    ck_assert_msg(strstr(r.out, "batch size 3 (") &&
                      strstr(r.out, "xapi.conf:2)"),
                  "%s", r.out);
    ck_assert_msg(strstr(r.out, "Host h4 is unreachable"), "%s", r.out);
    l = line_of(r.out, "web");
    ck_assert_msg(strstr(l, " h2"), "%s", l);
    l = line_of(r.out, "db");
    ck_assert_msg(strstr(l, " h2") && strstr(l, "HA-protected"), "%s", l);
    l = line_of(r.out, "pci0");
    ck_assert_msg(strstr(l, "PCI passthrough (1 device)"), "%s", l);
    l = line_of(r.out, "big");
    ck_assert_msg(strstr(l, "h2: not enough free memory") &&
                      strstr(l, "h3: CPU vendor AuthenticAMD") &&
                      strstr(l, "h4: its agent did not answer"),
                  "%s", l);
    ck_assert_msg(strstr(r.out, "2 VMs prevent the evacuation"), "%s", r.out);
    lxm_test_cli_dispose(&r);

    /* JSON, and --batch-size over xapi.conf. */
    r = xlmig("host-evacuate --pool '%s' --xapi-conf '%s' --xapi-conf-dir"
              " '%s' --dry-run --json --batch-size 2 h1",
              pool_path, conf, confdir);
    ck_assert_msg(r.status == 1, "exit %d: %s", r.status, r.err);
    v = yajl_tree_parse(r.out, err, sizeof(err));
    ck_assert_msg(v != NULL, "not JSON: %s: %s", err, r.out);
    ck_assert_ptr_nonnull(strstr(r.out, "\"batch_size\":2"));
    ck_assert_ptr_nonnull(strstr(r.out, "\"refused\":2"));
    vms = yajl_tree_get(v, pv, yajl_t_array);
    ck_assert_ptr_nonnull(vms);
    ck_assert_uint_eq(vms->u.array.len, 4);
    for (i = 0; i < vms->u.array.len; i++) {
        const char *pn[] = { "name", NULL }, *ps[] = { "status", NULL };
        const char *pd[] = { "destination", NULL };
        yajl_val e = vms->u.array.values[i];
        const char *name = YAJL_GET_STRING(yajl_tree_get(e, pn, yajl_t_string));
        const char *st = YAJL_GET_STRING(yajl_tree_get(e, ps, yajl_t_string));
        yajl_val d = yajl_tree_get(e, pd, yajl_t_any);

        ck_assert_ptr_nonnull(name);
        ck_assert_ptr_nonnull(st);
        if (!strcmp(name, "pci0") || !strcmp(name, "big")) {
            ck_assert_str_eq(st, "refused");
            ck_assert(YAJL_IS_NULL(d));
        } else {
            ck_assert_str_eq(st, "planned");
            ck_assert_str_eq(YAJL_GET_STRING(d), "h2");
        }
    }
    yajl_tree_free(v);
    lxm_test_cli_dispose(&r);

    /* Without the refused VMs, every VM can be placed: exit 0. */
    r = xlmig("-H '%s' sim-destroy pci0", agents[0].control);
    ck_assert_int_eq(r.status, 0);
    lxm_test_cli_dispose(&r);
    r = xlmig("-H '%s' sim-destroy big", agents[0].control);
    ck_assert_int_eq(r.status, 0);
    lxm_test_cli_dispose(&r);
    r = xlmig("host-evacuate --pool '%s' --xapi-conf '%s' --xapi-conf-dir"
              " '%s' --dry-run h1",
              pool_path, conf, confdir);
    ck_assert_msg(r.status == 0, "exit %d: %s\n%s", r.status, r.err, r.out);
    ck_assert_msg(strstr(r.out, "2 of 2 VMs can be placed"), "%s", r.out);
    lxm_test_cli_dispose(&r);

    /* --to (an HA daemon's request-targets): only those hosts receive */
    r = xlmig("host-evacuate --pool '%s' --xapi-conf '%s' --xapi-conf-dir"
              " '%s' --dry-run --to h2 h1",
              pool_path, conf, confdir);
    ck_assert_msg(r.status == 0, "exit %d: %s\n%s", r.status, r.err, r.out);
    ck_assert_msg(strstr(r.out, "2 of 2 VMs can be placed") &&
                      strstr(r.out, "h3 is unreachable (not a --to target)"),
                  "%s", r.out);
    lxm_test_cli_dispose(&r);
    r = xlmig("host-evacuate --pool '%s' --xapi-conf '%s' --xapi-conf-dir"
              " '%s' --dry-run --to h3 h1",
              pool_path, conf, confdir);
    ck_assert_msg(r.status == 1, "exit %d: %s\n%s", r.status, r.err, r.out);
    l = line_of(r.out, "web");
    ck_assert_msg(!strstr(l, " h2 ") && strstr(l, "h3: CPU vendor"), "%s", l);
    lxm_test_cli_dispose(&r);
    r = xlmig("host-evacuate --pool '%s' --dry-run --to h9 h1", pool_path);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "--to h9: not a host of the pool file"), "%s",
                  r.err);
    lxm_test_cli_dispose(&r);
    r = xlmig("host-evacuate --pool '%s' --dry-run --to h1 h1", pool_path);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "--to h1: that is the host to evacuate"), "%s",
                  r.err);
    lxm_test_cli_dispose(&r);

    /* A malformed xapi.conf: exit 1, one line naming file and line. */
    write_file(conf, "\n\nevacuation-batch-size = lots\n");
    r = xlmig("host-evacuate --pool '%s' --xapi-conf '%s' --xapi-conf-dir"
              " '%s' --dry-run h1",
              pool_path, conf, confdir);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "xapi.conf:3: evacuation-batch-size 'lots'") &&
                      strchr(r.err, '\n') == r.err + strlen(r.err) - 1,
                  "%s", r.err);
    lxm_test_cli_dispose(&r);

    /* A host not in the pool; the source unreachable; usage. */
    r = xlmig("host-evacuate --pool '%s' --xapi-conf-dir '%s' --dry-run h9",
              pool_path, confdir);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "host h9 is not in the pool file"));
    lxm_test_cli_dispose(&r);
    r = xlmig("host-evacuate --pool '%s' --xapi-conf-dir '%s' --dry-run h4",
              pool_path, confdir);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "cannot ask the source h4"));
    lxm_test_cli_dispose(&r);
    r = xlmig("host-evacuate --pool '%s' --dry-run", pool_path);
    ck_assert_int_eq(r.status, 2);
    lxm_test_cli_dispose(&r);
    r = xlmig("host-evacuate --pool '%s' --policy fastest --dry-run h1",
              pool_path);
    ck_assert_int_eq(r.status, 2);
    lxm_test_cli_dispose(&r);
    pool_down();
}
END_TEST

static void setup(void)
{
    snprintf(base, sizeof(base), "/tmp/lxm-evac-XXXXXX");
    if (!mkdtemp(base))
        base[0] = '\0';
}

static void teardown(void)
{
    int i;

    for (i = 0; i < NR_AGENTS; i++)
        lxm_test_agent_kill(&agents[i]);
    lxm_test_rm_rf(base);
    base[0] = '\0';
}

Suite *lxm_test_evacuate_cli_suite(void)
{
    Suite *s = suite_create("evacuate_cli");
    TCase *tc = tcase_create("cli");

    /* Checked fixtures: a fresh base directory for each test. */
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, CASE_TIMEOUT_S);
    tcase_add_test(tc, test_pool_list);
    tcase_add_test(tc, test_dry_run);
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
