/*
 * test_cli.c - the xlmig command, run as a program (lxm_test_xlmig_path(),
 * env LXM_XLMIG): stream-synth then stream-info (text and --json, the
 * JSON parsed back with yajl), help and usage errors (exit 2), corrupt
 * streams (exit 1, exactly one line on stderr naming the offset), stdin,
 * --allow-trailing.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "test.h"

/* ---- Helpers ---- */

typedef lxm_test_cli cli_result;

/* A fresh path for a temporary file (created empty; caller unlinks). */
static char *tmp_path(const char *suffix)
{
    char *p = lxm_test_write_tmp("", 0, suffix);

    ck_assert_ptr_nonnull(p);
    return p;
}

/*
 * Run an xlmig command line through the shell and capture its stdout,
 * stderr and exit status.  The line may hold redirections and pipes;
 * "@X" stands for the (quoted) binary, and a line without any "@X"
 * gets it prepended.
 */
static cli_result xlmig(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static cli_result xlmig(const char *fmt, ...)
{
    const char *bin = lxm_test_xlmig_path();
    char args[2048], line[6144];
    const char *p;
    va_list ap;
    size_t n = 0;

    ck_assert_msg(bin && access(bin, X_OK) == 0,
                  "xlmig binary not found (LXM_XLMIG=%s)", bin ? bin : "");
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);

    if (!strstr(args, "@X"))
        n = (size_t)snprintf(line, sizeof(line), "'%s' ", bin);
    for (p = args; *p && n + strlen(bin) + 3 < sizeof(line); p++) {
        if (p[0] == '@' && p[1] == 'X') {
            n += (size_t)snprintf(line + n, sizeof(line) - n, "'%s'", bin);
            p++;
        } else {
            line[n++] = *p;
        }
    }
    line[n] = '\0';

    return lxm_test_cli_run(line);
}

static unsigned int count_lines(const char *s)
{
    unsigned int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* stderr is exactly one line, beginning with prefix. */
static void assert_one_line(const cli_result *r, const char *prefix)
{
    ck_assert_msg(count_lines(r->err) == 1 &&
                      r->err[strlen(r->err) - 1] == '\n',
                  "stderr is not one line: '%s'", r->err);
    ck_assert_msg(!strncmp(r->err, prefix, strlen(prefix)),
                  "stderr '%s' does not begin with '%s'", r->err, prefix);
}

static yajl_val parse_json(const char *text)
{
    char errbuf[256];
    yajl_val v = yajl_tree_parse(text, errbuf, sizeof(errbuf));

    ck_assert_msg(v != NULL, "not JSON (%s): %s", errbuf, text);
    ck_assert(YAJL_IS_OBJECT(v));
    return v;
}

static yajl_val jget(yajl_val root, const char *a, const char *b, const char *c,
                     yajl_type type)
{
    const char *path[4] = { a, b, c, NULL };
    yajl_val v = yajl_tree_get(root, path, yajl_t_any);

    ck_assert_msg(v != NULL, "JSON key %s%s%s%s%s missing", a, b ? "." : "",
                  b ? b : "", c ? "." : "", c ? c : "");
    if (type != yajl_t_any)
        ck_assert_msg(v->type == type, "JSON key %s: type %d, expected %d", a,
                      v->type, type);
    return v;
}

static long long jint(yajl_val root, const char *a, const char *b,
                      const char *c)
{
    yajl_val v = jget(root, a, b, c, yajl_t_number);

    ck_assert_msg(YAJL_IS_INTEGER(v), "JSON key %s: not an integer", a);
    return YAJL_GET_INTEGER(v);
}

static const char *jstr(yajl_val root, const char *a)
{
    return YAJL_GET_STRING(jget(root, a, NULL, NULL, yajl_t_string));
}

static off_t file_size(const char *path)
{
    struct stat st;

    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_size;
}

/* A synthetic stream by lxm_test_synth, in *buf_r and (path_r non-NULL)
 * in a new temp file *path_r (caller unlinks and frees). */
static void synth_file(uint32_t guest_type, bool pvh, uint64_t memory,
                       uint32_t rounds, lxm_test_buf *buf_r, char **path_r)
{
    lxm__synth_opts o = {
        .guest_type = guest_type,
        .pvh = pvh,
        .memory_bytes = memory,
        .rounds = rounds,
        .vcpus = 1,
        .seed = 3,
        .name = "cliguest",
    };
    lxm_test_buf buf = { NULL, 0, 0 };

    lxm_test_synth(&o, LXM_FORMAT_XL, &buf);
    if (path_r) {
        *path_r = lxm_test_write_tmp(buf.data, buf.len, ".xl");
        ck_assert_ptr_nonnull(*path_r);
    }
    if (buf_r)
        *buf_r = buf;
    else
        lxm_test_buf_dispose(&buf);
}

/* ---- stream-synth, then stream-info ---- */

static const struct synth_info_case {
    const char *guest;
    const char *memory;
    uint64_t distinct_pfns; /* synth.c: PV adds XTAB pfns at the top,
                                 * HVM 8 special pages at 0xfeff8 */
    uint64_t max_pfn;
    uint32_t rounds;
    const char *format;
    const char *json_type;
    bool xl;
} synth_info_cases[] = {
    { "pv", "2M", 514, 513, 2, "xl", "pv", true },
    { "pvh", "1024K", 264, 0xfefff, 1, "xl", "pvh", true },
    { "hvm", "1M", 264, 0xfefff, 0, "xl", "hvm", true },
    { "pv", "512K", 130, 129, 1, "libxl", "pv", false },
    { "hvm", "512K", 136, 0xfefff, 3, "libxc", "hvm", false },
};

START_TEST(test_synth_info_json)
{
    const struct synth_info_case *c = &synth_info_cases[_i];
    char *path = tmp_path(".stream");
    cli_result r;
    yajl_val root, v;
    long long sum = 0;
    size_t i;

    r = xlmig("stream-synth --guest %s --memory %s --rounds %u --format %s"
              " --seed 5 --name web-7 '%s'",
              c->guest, c->memory, c->rounds, c->format, path);
    ck_assert_msg(r.status == 0, "stream-synth: %d: %s", r.status, r.err);
    ck_assert_str_eq(r.err, "");
    lxm_test_cli_dispose(&r);
    ck_assert_int_gt(file_size(path), 0);

    r = xlmig("stream-info --json --format %s '%s'", c->format, path);
    ck_assert_msg(r.status == 0, "stream-info: %d: %s", r.status, r.err);
    ck_assert_str_eq(r.err, "");
    root = parse_json(r.out);

    ck_assert_str_eq(jstr(root, "file"), path);
    ck_assert_int_eq(jint(root, "bytes", NULL, NULL), file_size(path));
    if (c->xl) {
        ck_assert_str_eq(jstr(root, "guest_type"), c->json_type);
        ck_assert_str_eq(jstr(root, "domain_name"), "web-7");
        ck_assert_int_eq(jint(root, "xl_header", "mandatory_flags", NULL),
                         LXM_XL_MANDATORY_JSON | LXM_XL_MANDATORY_STREAMV2);
        ck_assert_int_eq(jint(root, "xl_header", "optional_flags", NULL), 0);
        ck_assert_int_gt(jint(root, "xl_header", "config_len", NULL), 0);
    } else {
        /* No config: PVH is indistinguishable from HVM. */
        ck_assert_str_eq(jstr(root, "guest_type"),
                         strcmp(c->guest, "pv") ? "hvm" : "pv");
        ck_assert(
            YAJL_IS_NULL(jget(root, "domain_name", NULL, NULL, yajl_t_any)));
        ck_assert(
            YAJL_IS_NULL(jget(root, "xl_header", NULL, NULL, yajl_t_any)));
    }
    ck_assert_str_eq(jstr(root, "xen_version"), "4.17");
    ck_assert_int_eq(jint(root, "libxc_version", NULL, NULL), 3);

    ck_assert_int_eq(jint(root, "records", "libxc", "END"), 1);
    ck_assert_int_gt(jint(root, "records", "libxc", "PAGE_DATA"), 0);
    ck_assert_int_eq(jint(root, "records", "libxc", "STATIC_DATA_END"), 1);
    ck_assert_int_eq(jint(root, "records", "libxl", "END"),
                     strcmp(c->format, "libxc") ? 1 : 0);
    ck_assert_int_eq(jint(root, "records", "libxl", "LIBXC_CONTEXT"),
                     strcmp(c->format, "libxc") ? 1 : 0);
    ck_assert_int_eq(jint(root, "optional_records", NULL, NULL), 0);
    ck_assert_int_eq(jint(root, "distinct_pfns", NULL, NULL),
                     (long long)c->distinct_pfns);
    ck_assert_int_eq(jint(root, "max_pfn", NULL, NULL), (long long)c->max_pfn);
    ck_assert_int_eq(jint(root, "page_data_bytes", NULL, NULL),
                     jint(root, "data_pages", NULL, NULL) * 4096);
    ck_assert_int_le(jint(root, "zero_pages", NULL, NULL),
                     jint(root, "data_pages", NULL, NULL));
    ck_assert_int_le(jint(root, "resent_pages", NULL, NULL),
                     jint(root, "data_pages", NULL, NULL));
    ck_assert_int_eq(jint(root, "checkpoints", NULL, NULL), 0);
    ck_assert_int_eq(jint(root, "trailing_bytes", NULL, NULL), 0);
    jint(root, "pages_by_type", "NOTAB", NULL);
    jint(root, "pages_by_type", "XTAB", NULL);

    v = jget(root, "iterations", NULL, NULL, yajl_t_array);
    /* synth.c: round 0, then 'rounds' dirty rounds. */
    ck_assert_uint_eq(YAJL_GET_ARRAY(v)->len, c->rounds + 1);
    ck_assert_int_eq(YAJL_GET_INTEGER(YAJL_GET_ARRAY(v)->values[0]),
                     (long long)c->distinct_pfns);
    for (i = 0; i < YAJL_GET_ARRAY(v)->len; i++)
        sum += YAJL_GET_INTEGER(YAJL_GET_ARRAY(v)->values[i]);
    ck_assert_int_ge(sum, jint(root, "data_pages", NULL, NULL));

    yajl_tree_free(root);
    lxm_test_cli_dispose(&r);

    /* The global --json gives the same object. */
    r = xlmig("--json stream-info --format %s '%s'", c->format, path);
    ck_assert_int_eq(r.status, 0);
    root = parse_json(r.out);
    ck_assert_int_eq(jint(root, "bytes", NULL, NULL), file_size(path));
    yajl_tree_free(root);
    lxm_test_cli_dispose(&r);

    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_synth_info_text)
{
    char *path = tmp_path(".xl");
    cli_result r;

    r = xlmig("stream-synth --guest pvh --memory 1M --rounds 2 '%s'", path);
    ck_assert_msg(r.status == 0, "stream-synth: %s", r.err);
    lxm_test_cli_dispose(&r);

    r = xlmig("stream-info '%s'", path);
    ck_assert_msg(r.status == 0, "stream-info: %s", r.err);
    ck_assert_str_eq(r.err, "");
    ck_assert_ptr_nonnull(strstr(r.out, "guest type:      PVH"));
    ck_assert_ptr_nonnull(strstr(r.out, "domain name:     synth"));
    ck_assert_ptr_nonnull(strstr(r.out, "xen version:     4.17"));
    ck_assert_ptr_nonnull(strstr(r.out, "distinct pfns:   264\n"));
    ck_assert_ptr_nonnull(strstr(r.out, "iterations:      3 (pages: 264,"));
    ck_assert_ptr_nonnull(strstr(r.out, "PAGE_DATA"));
    /* The summary does not list records one by one. */
    ck_assert_ptr_null(strstr(r.out, "length"));
    lxm_test_cli_dispose(&r);

    r = xlmig("stream-info --records '%s'", path);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "xl     header:"));
    ck_assert_ptr_nonnull(strstr(r.out, "libxc  header: version 3"));
    ck_assert_ptr_nonnull(strstr(r.out, "libxl  LIBXC_CONTEXT, length 0"));
    ck_assert_ptr_nonnull(strstr(r.out, "libxc  STATIC_DATA_END, length 0"));
    ck_assert_ptr_nonnull(strstr(r.out, " PAGE_DATA records\n"));
    ck_assert_ptr_nonnull(strstr(r.out, "libxl  END, length 0"));
    ck_assert_ptr_nonnull(strstr(r.out, "distinct pfns:"));
    lxm_test_cli_dispose(&r);

    unlink(path);
    free(path);
}
END_TEST

/* The CLI's synthesiser and the library's agree byte for byte. */
START_TEST(test_synth_matches_library)
{
    lxm__synth_opts o = {
        .guest_type = LXM_GUEST_X86_HVM,
        .pvh = true,
        .memory_bytes = 1 << 20,
        .rounds = 2,
        .vcpus = 2,
        .seed = 9,
        .name = "same",
    };
    lxm_test_buf buf = { NULL, 0, 0 };
    char *path = tmp_path(".xl"), *data;
    cli_result r;
    size_t len;

    r = xlmig("stream-synth --memory 1M --rounds 2 --vcpus 2 --seed 9"
              " --name same '%s'",
              path);
    ck_assert_msg(r.status == 0, "stream-synth: %s", r.err);
    lxm_test_cli_dispose(&r);

    lxm_test_synth(&o, LXM_FORMAT_XL, &buf);
    data = lxm_test_slurp(path, &len);
    ck_assert_uint_eq(len, buf.len);
    ck_assert(!memcmp(data, buf.data, len));
    free(data);
    lxm_test_buf_dispose(&buf);
    unlink(path);
    free(path);
}
END_TEST

/* ---- stdin and stdout ---- */

START_TEST(test_stdin)
{
    char *path;
    cli_result r;
    yajl_val root;

    synth_file(LXM_GUEST_X86_PV, false, 1 << 20, 1, NULL, &path);

    /* Redirected file. */
    r = xlmig("stream-info --json - <'%s'", path);
    ck_assert_msg(r.status == 0, "stream-info -: %s", r.err);
    root = parse_json(r.out);
    ck_assert_str_eq(jstr(root, "file"), "<stdin>");
    ck_assert_int_eq(jint(root, "bytes", NULL, NULL), file_size(path));
    ck_assert_str_eq(jstr(root, "domain_name"), "cliguest");
    yajl_tree_free(root);
    lxm_test_cli_dispose(&r);

    /* A pipe, fed in small writes. */
    r = xlmig("dd if='%s' bs=4093 status=none | @X stream-info --json -", path);
    ck_assert_msg(r.status == 0, "pipe: %s", r.err);
    root = parse_json(r.out);
    ck_assert_int_eq(jint(root, "bytes", NULL, NULL), file_size(path));
    yajl_tree_free(root);
    lxm_test_cli_dispose(&r);

    /* stream-synth to stdout, straight into stream-info. */
    r = xlmig("@X stream-synth --guest hvm --memory 512K - |"
              " @X stream-info --json -");
    ck_assert_msg(r.status == 0, "synth | info: %s", r.err);
    root = parse_json(r.out);
    ck_assert_str_eq(jstr(root, "guest_type"), "hvm");
    ck_assert_int_eq(jint(root, "distinct_pfns", NULL, NULL), 136);
    yajl_tree_free(root);
    lxm_test_cli_dispose(&r);

    unlink(path);
    free(path);
}
END_TEST

/* ---- Help and usage errors ---- */

START_TEST(test_help)
{
    cli_result r, r2;

    r = xlmig("--help");
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "stream-info"));
    ck_assert_ptr_nonnull(strstr(r.out, "stream-synth"));
    lxm_test_cli_dispose(&r);

    r = xlmig("help");
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "Usage: xlmig"));
    lxm_test_cli_dispose(&r);

    r = xlmig("help stream-info");
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "Usage: xlmig stream-info"));
    ck_assert_ptr_nonnull(strstr(r.out, "--allow-trailing"));
    ck_assert_ptr_nonnull(strstr(r.out, "--json"));
    r2 = xlmig("stream-info --help");
    ck_assert_int_eq(r2.status, 0);
    ck_assert_str_eq(r.out, r2.out);
    lxm_test_cli_dispose(&r);
    lxm_test_cli_dispose(&r2);

    r = xlmig("stream-synth -h");
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "--memory SIZE"));
    ck_assert_ptr_nonnull(strstr(r.out, "--checkpointed"));
    lxm_test_cli_dispose(&r);

    r = xlmig("--version");
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, lxm_version()));
    lxm_test_cli_dispose(&r);

    /* What bash completion uses. */
    r = xlmig("help --list-commands");
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "stream-info\n"));
    lxm_test_cli_dispose(&r);
    r = xlmig("help --list-options stream-synth");
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "--rounds N\n"));
    ck_assert_ptr_nonnull(strstr(r.out, "--guest pv|pvh|hvm\n"));
    ck_assert_ptr_nonnull(strstr(r.out, "--checkpointed\n"));
    lxm_test_cli_dispose(&r);
}
END_TEST

static const struct usage_case {
    const char *args;
    const char *prefix; /* of the one stderr line */
} usage_cases[] = {
    { "", "xlmig: no command given" },
    { "frobnicate", "xlmig: unknown command 'frobnicate'" },
    { "-x stream-info f", "xlmig: unknown option '-x'" },
    { "--nope", "xlmig: unknown option '--nope'" },
    { "help frobnicate", "xlmig: unknown command 'frobnicate'" },
    { "stream-info", "xlmig: stream-info: no FILE given" },
    { "stream-info a b", "xlmig: stream-info: more than one FILE" },
    { "stream-info --nope f", "xlmig: stream-info: unknown option '--nope'" },
    { "stream-info -q f", "xlmig: stream-info: unknown option '-q'" },
    { "stream-info --format", "xlmig: stream-info: option '--format' needs" },
    { "stream-info --format xm f",
      "xlmig: stream-info: --format: 'xm' is not xl, libxl or libxc" },
    { "stream-info --json=1 f",
      "xlmig: stream-info: unknown option '--json=1'" },
    { "stream-synth --memory 12Q f",
      "xlmig: stream-synth: --memory: '12Q' is not a size" },
    { "stream-synth --memory 1000 f",
      "xlmig: stream-synth: --memory: '1000' is not a multiple of 4K" },
    { "stream-synth --memory 0 f",
      "xlmig: stream-synth: --memory: '0' is not a multiple of 4K" },
    { "stream-synth --memory 99999999999999999999G f",
      "xlmig: stream-synth: --memory: '99999999999999999999G' is not a size" },
    { "stream-synth --guest arm f",
      "xlmig: stream-synth: --guest: 'arm' is not pv, pvh or hvm" },
    { "stream-synth --rounds -1 f",
      "xlmig: stream-synth: --rounds: '-1' is not a number" },
    { "stream-synth --vcpus 0 f",
      "xlmig: stream-synth: --vcpus: '0' is not a number" },
    { "stream-synth --seed 1x f",
      "xlmig: stream-synth: --seed: '1x' is not a number" },
    { "stream-synth", "xlmig: stream-synth: no FILE given" },
};

START_TEST(test_usage_errors)
{
    const struct usage_case *c = &usage_cases[_i];
    cli_result r = xlmig("%s", c->args);

    ck_assert_msg(r.status == 2, "'%s': exit %d, expected 2", c->args,
                  r.status);
    ck_assert_str_eq(r.out, "");
    assert_one_line(&r, c->prefix);
    lxm_test_cli_dispose(&r);
    /* Nothing was created for the operand "f". */
    ck_assert_int_ne(access("f", F_OK), 0);
}
END_TEST

/* ---- Invalid streams ---- */

typedef struct first_page_data {
    uint64_t offset; /* record header of the first PAGE_DATA */
    bool found;
} first_page_data;

static int find_page_data(void *opaque, const lxm_stream_event *ev)
{
    first_page_data *f = opaque;

    if (ev->kind == LXM_EV_RECORD && ev->layer == LXM_LAYER_LIBXC &&
        ev->u.record.type == LXM_LIBXC_PAGE_DATA && !f->found) {
        f->found = true;
        f->offset = ev->offset;
    }
    return 0;
}

START_TEST(test_bad_count)
{
    lxm_test_buf buf = { NULL, 0, 0 };
    first_page_data f = { 0, false };
    char *path, prefix[512];
    cli_result r;

    synth_file(LXM_GUEST_X86_HVM, false, 512 << 10, 1, &buf, NULL);
    ck_assert_int_eq(lxm_test_read_buf(buf.data, buf.len, LXM_FORMAT_XL, 0, 0,
                                       find_page_data, &f, NULL),
                     0);
    ck_assert(f.found);
    /* count is the first field of the body. */
    lxm__put_le32(buf.data + f.offset + 8, 2000);
    path = lxm_test_write_tmp(buf.data, buf.len, ".xl");

    snprintf(prefix, sizeof(prefix),
             "xlmig: stream-info: %s: offset %" PRIu64 ": libxc PAGE_DATA: ",
             path, f.offset + 8);
    r = xlmig("stream-info '%s'", path);
    ck_assert_int_eq(r.status, 1);
    ck_assert_str_eq(r.out, "");
    assert_one_line(&r, prefix);
    ck_assert_ptr_nonnull(strstr(r.err, "2000"));
    lxm_test_cli_dispose(&r);

    /* --json: the same line, nothing on stdout. */
    r = xlmig("stream-info --json '%s'", path);
    ck_assert_int_eq(r.status, 1);
    ck_assert_str_eq(r.out, "");
    assert_one_line(&r, prefix);
    lxm_test_cli_dispose(&r);

    /* -v: the reader's own log may add lines, the status stays. */
    r = xlmig("-v stream-info '%s'", path);
    ck_assert_int_eq(r.status, 1);
    lxm_test_cli_dispose(&r);

    unlink(path);
    free(path);
    lxm_test_buf_dispose(&buf);
}
END_TEST

START_TEST(test_truncated)
{
    lxm_test_buf buf = { NULL, 0, 0 };
    static const size_t cuts[] = { 0, 20, 48, 1000, 5000 };
    char *path, prefix[512];
    cli_result r;
    size_t k, len;

    synth_file(LXM_GUEST_X86_PV, false, 512 << 10, 1, &buf, NULL);
    for (k = 0; k <= LXM_ARRAY_SIZE(cuts); k++) {
        len = k < LXM_ARRAY_SIZE(cuts) ? cuts[k] : buf.len / 2;
        path = lxm_test_write_tmp(buf.data, len, ".xl");
        r = xlmig("stream-info '%s'", path);
        ck_assert_msg(r.status == 1, "cut at %zu: exit %d", len, r.status);
        ck_assert_str_eq(r.out, "");
        snprintf(prefix, sizeof(prefix), "xlmig: stream-info: %s: offset ",
                 path);
        assert_one_line(&r, prefix);
        lxm_test_cli_dispose(&r);
        unlink(path);
        free(path);
    }
    lxm_test_buf_dispose(&buf);
}
END_TEST

START_TEST(test_trailing)
{
    static const char garbage[44] = "xl migrate handshake would go here....";
    lxm_test_buf buf = { NULL, 0, 0 };
    char *path, prefix[512];
    uint8_t *data;
    cli_result r;
    yajl_val root;

    synth_file(LXM_GUEST_X86_HVM, true, 512 << 10, 1, &buf, NULL);
    data = malloc(buf.len + sizeof(garbage));
    ck_assert_ptr_nonnull(data);
    memcpy(data, buf.data, buf.len);
    memcpy(data + buf.len, garbage, sizeof(garbage));
    path = lxm_test_write_tmp(data, buf.len + sizeof(garbage), ".xl");

    /* Strict: trailing bytes are an error, at the end of the stream. */
    r = xlmig("stream-info '%s'", path);
    ck_assert_int_eq(r.status, 1);
    snprintf(prefix, sizeof(prefix), "xlmig: stream-info: %s: offset %zu", path,
             buf.len);
    assert_one_line(&r, prefix);
    lxm_test_cli_dispose(&r);

    /* --allow-trailing: valid, and the count is reported. */
    r = xlmig("stream-info --allow-trailing --json '%s'", path);
    ck_assert_msg(r.status == 0, "--allow-trailing: %s", r.err);
    root = parse_json(r.out);
    ck_assert_int_eq(jint(root, "trailing_bytes", NULL, NULL),
                     (long long)sizeof(garbage));
    ck_assert_int_eq(jint(root, "bytes", NULL, NULL), (long long)buf.len);
    yajl_tree_free(root);
    lxm_test_cli_dispose(&r);

    r = xlmig("stream-info --allow-trailing - <'%s'", path);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "trailing bytes:  44\n"));
    lxm_test_cli_dispose(&r);

    /* Without trailing bytes, --allow-trailing reports 0. */
    unlink(path);
    free(path);
    path = lxm_test_write_tmp(buf.data, buf.len, ".xl");
    r = xlmig("stream-info --allow-trailing --json '%s'", path);
    ck_assert_int_eq(r.status, 0);
    root = parse_json(r.out);
    ck_assert_int_eq(jint(root, "trailing_bytes", NULL, NULL), 0);
    yajl_tree_free(root);
    lxm_test_cli_dispose(&r);

    unlink(path);
    free(path);
    free(data);
    lxm_test_buf_dispose(&buf);
}
END_TEST

START_TEST(test_missing_file)
{
    cli_result r = xlmig("stream-info /nonexistent/xlmig-test.xl");

    ck_assert_int_eq(r.status, 1);
    assert_one_line(&r, "xlmig: stream-info: /nonexistent/xlmig-test.xl: ");
    lxm_test_cli_dispose(&r);

    r = xlmig("stream-synth /nonexistent/dir/out.xl");
    ck_assert_int_eq(r.status, 1);
    assert_one_line(&r, "xlmig: stream-synth: /nonexistent/dir/out.xl: ");
    lxm_test_cli_dispose(&r);

    /* Not a stream at all. */
    r = xlmig("stream-info /etc/passwd");
    ck_assert_int_eq(r.status, 1);
    assert_one_line(&r, "xlmig: stream-info: /etc/passwd: offset 0");
    lxm_test_cli_dispose(&r);
}
END_TEST

Suite *lxm_test_cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc;

    tc = tcase_create("streams");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_synth_info_json, 0,
                        LXM_ARRAY_SIZE(synth_info_cases));
    tcase_add_test(tc, test_synth_info_text);
    tcase_add_test(tc, test_synth_matches_library);
    tcase_add_test(tc, test_stdin);
    suite_add_tcase(s, tc);

    tc = tcase_create("usage");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_help);
    tcase_add_loop_test(tc, test_usage_errors, 0, LXM_ARRAY_SIZE(usage_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("invalid");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bad_count);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_trailing);
    tcase_add_test(tc, test_missing_file);
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
