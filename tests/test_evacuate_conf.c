/*
 * test_evacuate_conf.c - the evacuation configuration
 * (evacuate/xapi_conf.c) and the pool file (evacuate/pool.c).  Suite
 * "evacuate_conf".
 *
 * Each case writes its files into a fresh temporary directory.
 */
#define _GNU_SOURCE /* mkdtemp */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "evacuate/evacuate.h"

static char tmpdir[256];

static void mk_tmpdir(void)
{
    const char *t = getenv("TMPDIR");

    snprintf(tmpdir, sizeof(tmpdir), "%s/lxm-evac-conf-XXXXXX",
             t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
    lxm_test_rm_rf(tmpdir);
    tmpdir[0] = '\0';
}

/* tmpdir/rel with text; returns the path (static buffer per call). */
static const char *put(const char *rel, const char *text)
{
    static char paths[8][PATH_MAX];
    static int next;
    char *path = paths[next++ % 8];
    FILE *f;

    snprintf(path, PATH_MAX, "%s/%s", tmpdir, rel);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char *sub(const char *rel)
{
    static char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    return path;
}

/* ---- xapi.conf --------------------------------------------------- */

static const struct conf_case {
    const char *text;
    int rc;
    unsigned int batch;
    int line; /* origin line, 0: "default" */
} conf_cases[] = {
    { "", 0, 10, 0 },
    { "evacuation-batch-size = 4\n", 0, 4, 1 },
    { "evacuation-batch-size=4\n", 0, 4, 1 },
    { "  evacuation-batch-size\t=\t7  \n", 0, 7, 1 },
    { "# evacuation-batch-size = 3\n", 0, 10, 0 },
    { "evacuation-batch-size = 3 # three\n", 0, 3, 1 },
    { "evacuation-batch-size = \"5\"\n", 0, 5, 1 },
    { "evacuation-batch-size = '6'\n", 0, 6, 1 },
    { "evacuation-batch-size = -8\n", 0, 8, 1 }, /* |n| */
    { "evacuation-batch-size = 0\n", 0, 1, 1 },  /* max(1, ..) */
    { "evacuation-batch-size = -0\n", 0, 1, 1 },
    { "other-key = x\nevacuation-batch-size = 2\nlast = y\n", 0, 2, 2 },
    { "evacuation-batch-size = 2\nevacuation-batch-size = 9\n", 0, 9, 2 },
    { "no equals sign here\nevacuation-batch-size = 3\n", 0, 3, 2 },
    { "\n\n# c\nevacuation-batch-size = 12", 0, 12, 4 }, /* no final \n */
    { "evacuation-batch-size = ten\n", LXM_ERROR_INVAL, 0, 1 },
    { "x = 1\nevacuation-batch-size = 4x\n", LXM_ERROR_INVAL, 0, 2 },
    { "evacuation-batch-size =\n", LXM_ERROR_INVAL, 0, 1 },
    { "evacuation-batch-size = \"\"\n", LXM_ERROR_INVAL, 0, 1 },
    { "evacuation-batch-size = 99999999999999999999\n", LXM_ERROR_INVAL, 0, 1 },
    { "evacuation-batch-size = \"5\n", LXM_ERROR_INVAL, 0, 1 },
};

START_TEST(test_conf_table)
{
    const struct conf_case *c = &conf_cases[_i];
    lxm__xapi_conf conf;
    const char *path;
    char err[512], want[PATH_MAX + 32];
    int rc;

    mk_tmpdir();
    path = put("xapi.conf", c->text);
    rc = lxm__xapi_conf_load(path, sub("none.d"), &conf, err, sizeof(err));
    ck_assert_msg(rc == c->rc, "case %d: rc %d, want %d (%s)", _i, rc, c->rc,
                  err);
    if (c->line)
        snprintf(want, sizeof(want), "%s:%d", path, c->line);
    else
        snprintf(want, sizeof(want), "default");
    if (!rc) {
        ck_assert_uint_eq(conf.batch_size, c->batch);
        ck_assert_str_eq(conf.batch_size_origin, want);
    } else {
        /* The error names file and line. */
        strcat(want, ": ");
        ck_assert_msg(!strncmp(err, want, strlen(want)),
                      "case %d: error '%s' does not start with '%s'", _i, err,
                      want);
        ck_assert_ptr_nonnull(strstr(err, "evacuation-batch-size"));
    }
    rm_tmpdir();
}
END_TEST

START_TEST(test_conf_missing_files)
{
    lxm__xapi_conf conf;
    char err[256], main_path[PATH_MAX + 64];

    mk_tmpdir();
    snprintf(main_path, sizeof(main_path), "%s", sub("nope.conf"));
    ck_assert_int_eq(
        lxm__xapi_conf_load(main_path, sub("nope.d"), &conf, err, sizeof(err)),
        0);
    ck_assert_uint_eq(conf.batch_size, LXM__EVAC_BATCH_DEFAULT);
    ck_assert_str_eq(conf.batch_size_origin, "default");
    rm_tmpdir();
}
END_TEST

/* The .d files in sorted order after the main file; later files win;
 * dot files and directories skipped. */
START_TEST(test_conf_dir_order)
{
    lxm__xapi_conf conf;
    char err[256], want[PATH_MAX + 64];
    const char *main_path;

    mk_tmpdir();
    main_path = put("xapi.conf", "evacuation-batch-size = 2\n");
    ck_assert_int_eq(mkdir(sub("conf.d"), 0700), 0);
    /* Written in another order than their names sort. */
    put("conf.d/20-b", "evacuation-batch-size = 20\n");
    put("conf.d/10-a", "evacuation-batch-size = 10\n# x\n");
    put("conf.d/30-c", "unrelated = 1\n");
    put("conf.d/.hidden", "evacuation-batch-size = 99\n");
    ck_assert_int_eq(mkdir(sub("conf.d/40-dir"), 0700), 0);
    ck_assert_int_eq(
        lxm__xapi_conf_load(main_path, sub("conf.d"), &conf, err, sizeof(err)),
        0);
    ck_assert_uint_eq(conf.batch_size, 20);
    snprintf(want, sizeof(want), "%s/20-b:1", sub("conf.d"));
    ck_assert_str_eq(conf.batch_size_origin, want);

    /* A later file overrides the earlier; "|n|" there too. */
    put("conf.d/25-z", "\nevacuation-batch-size = -3\n");
    ck_assert_int_eq(
        lxm__xapi_conf_load(main_path, sub("conf.d"), &conf, err, sizeof(err)),
        0);
    ck_assert_uint_eq(conf.batch_size, 3);
    snprintf(want, sizeof(want), "%s/25-z:2", sub("conf.d"));
    ck_assert_str_eq(conf.batch_size_origin, want);

    /* A malformed value in a .d file names that file and line. */
    put("conf.d/50-bad", "a = b\n\nevacuation-batch-size = 1.5\n");
    ck_assert_int_eq(
        lxm__xapi_conf_load(main_path, sub("conf.d"), &conf, err, sizeof(err)),
        LXM_ERROR_INVAL);
    snprintf(want, sizeof(want), "%s/50-bad:3: ", sub("conf.d"));
    ck_assert_msg(!strncmp(err, want, strlen(want)), "error '%s'", err);

    /* Only the directory: the main file missing is fine. */
    unlink(sub("conf.d/50-bad"));
    snprintf(want, sizeof(want), "%s", sub("missing.conf"));
    ck_assert_int_eq(
        lxm__xapi_conf_load(want, sub("conf.d"), &conf, err, sizeof(err)), 0);
    ck_assert_uint_eq(conf.batch_size, 3);
    rm_tmpdir();
}
END_TEST

/* ---- the pool file ----------------------------------------------- */

START_TEST(test_pool_ok)
{
    lxm__pool p;
    const lxm__pool_host *h;
    char err[256];
    const char *path;

    mk_tmpdir();
    path = put("pool.conf", "# the lab\n"
                            "\n"
                            "h1 10.0.0.1  # default port\n"
                            "h2\t10.0.0.2:8800 migration=192.168.1.2\n"
                            "  h3 /run/xlmig/h3.sock spm=1 rack=4\n"
                            "h4 [fe80::1]:8702 migration=[fe80::2]:9000\n"
                            "h-5.x host5.example.org\n");
    ck_assert_int_eq(lxm__pool_load(path, &p, err, sizeof(err)), 0);
    ck_assert_uint_eq(p.nr_hosts, 5);
    ck_assert_str_eq(p.hosts[0].name, "h1");
    ck_assert_str_eq(p.hosts[0].agent, "10.0.0.1");
    ck_assert_str_eq(p.hosts[0].migration, "");
    ck_assert_str_eq(p.hosts[1].agent, "10.0.0.2:8800");
    ck_assert_str_eq(p.hosts[1].migration, "192.168.1.2");
    h = lxm__pool_find(&p, "h3");
    ck_assert_ptr_eq(h, &p.hosts[2]);
    ck_assert_str_eq(h->agent, "/run/xlmig/h3.sock");
    /* "k=v\0k=v\0\0" */
    ck_assert_str_eq(h->extra, "spm=1");
    ck_assert_str_eq(h->extra + 6, "rack=4");
    ck_assert_int_eq(h->extra[13], '\0');
    ck_assert_str_eq(p.hosts[3].migration, "[fe80::2]:9000");
    ck_assert_str_eq(p.hosts[4].name, "h-5.x");
    ck_assert_ptr_null(lxm__pool_find(&p, "h9"));
    lxm__pool_dispose(&p);
    ck_assert_ptr_null(p.hosts);
    ck_assert_uint_eq(p.nr_hosts, 0);
    lxm__pool_dispose(&p); /* twice is fine */
    lxm__pool_dispose(NULL);
    rm_tmpdir();
}
END_TEST

static const struct pool_bad_case {
    const char *text;
    int line;
    const char *what; /* in the message */
} pool_bad_cases[] = {
    { "h1 10.0.0.1\nh1 10.0.0.2\n", 2, "listed twice" },
    { "h1\n", 1, "no agent address" },
    { "h1 10.0.0.1:99999\n", 1, "bad agent address" },
    { "h1 10.0.0.1:\n", 1, "bad agent address" },
    { "h1 :8702\n", 1, "bad agent address" },
    { "h1 bad!host\n", 1, "bad agent address" },
    { "h1 [zz::1]\n", 1, "bad agent address" },
    { "# c\nh1 10.0.0.1 rack\n", 2, "not a key=value pair" },
    { "h1 10.0.0.1 =4\n", 1, "not a key=value pair" },
    { "h1 10.0.0.1 rack=\n", 1, "not a key=value pair" },
    { "h1 10.0.0.1 rack=1 rack=2\n", 1, "given twice" },
    { "h1 10.0.0.1 migration=a migration=b\n", 1, "given twice" },
    { "h1 10.0.0.1 migration=1.2.3.4:0\n", 1, "bad migration address" },
    { "bad/name 10.0.0.1\n", 1, "bad host name" },
    { "h1 10.0.0.1\n\n\nh2 h2=x\n", 4, "bad agent address" },
};

START_TEST(test_pool_bad)
{
    const struct pool_bad_case *c = &pool_bad_cases[_i];
    lxm__pool p;
    char err[512], want[PATH_MAX + 32];
    const char *path;

    mk_tmpdir();
    path = put("pool.conf", c->text);
    ck_assert_int_eq(lxm__pool_load(path, &p, err, sizeof(err)),
                     LXM_ERROR_INVAL);
    ck_assert_ptr_null(p.hosts);
    snprintf(want, sizeof(want), "%s:%d: ", path, c->line);
    ck_assert_msg(!strncmp(err, want, strlen(want)),
                  "case %d: error '%s' does not start with '%s'", _i, err,
                  want);
    ck_assert_msg(strstr(err, c->what), "case %d: error '%s' lacks '%s'", _i,
                  err, c->what);
    rm_tmpdir();
}
END_TEST

START_TEST(test_pool_missing_and_limits)
{
    lxm__pool p;
    char err[512], *text, line[64];
    size_t i, off = 0;
    const char *path;

    mk_tmpdir();
    ck_assert_int_eq(lxm__pool_load(sub("none.conf"), &p, err, sizeof(err)),
                     LXM_ERROR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "none.conf"));

    /* LXM__POOL_MAX_HOSTS fit; one more does not. */
    text = malloc((LXM__POOL_MAX_HOSTS + 1) * 32);
    ck_assert_ptr_nonnull(text);
    for (i = 0; i <= LXM__POOL_MAX_HOSTS; i++) {
        snprintf(line, sizeof(line), "h%zu 10.0.%zu.%zu\n", i, i / 200,
                 i % 200);
        memcpy(text + off, line, strlen(line) + 1);
        off += strlen(line);
        if (i == LXM__POOL_MAX_HOSTS - 1) {
            path = put("full.conf", text);
            ck_assert_int_eq(lxm__pool_load(path, &p, err, sizeof(err)), 0);
            ck_assert_uint_eq(p.nr_hosts, LXM__POOL_MAX_HOSTS);
            lxm__pool_dispose(&p);
        }
    }
    path = put("over.conf", text);
    free(text);
    ck_assert_int_eq(lxm__pool_load(path, &p, err, sizeof(err)),
                     LXM_ERROR_INVAL);
    ck_assert_ptr_nonnull(strstr(err, "more than"));
    rm_tmpdir();
}
END_TEST

Suite *lxm_test_evacuate_conf_suite(void)
{
    Suite *s = suite_create("evacuate_conf");
    TCase *tc = tcase_create("xapi_conf");

    tcase_add_loop_test(tc, test_conf_table, 0, LXM_ARRAY_SIZE(conf_cases));
    tcase_add_test(tc, test_conf_missing_files);
    tcase_add_test(tc, test_conf_dir_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("pool");
    tcase_add_test(tc, test_pool_ok);
    tcase_add_loop_test(tc, test_pool_bad, 0, LXM_ARRAY_SIZE(pool_bad_cases));
    tcase_add_test(tc, test_pool_missing_and_limits);
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
