/*
 * testutil.c - helpers shared by the test suites (declared in test.h).
 *
 * Entry points: lxm_test_shared_streams_dir(), lxm_test_buf_dispose(),
 * lxm_test_buf_sink(), lxm_test_synth(), lxm_test_read_buf(),
 * lxm_test_write_tmp(), lxm_test_verify_stream(), lxm_test_xlmig_path(),
 * lxm_test_run(), lxm_test_top().
 *
 * Paths: the repository top is env LXM_TOP, else the nearest directory
 * at or above the cwd holding .git.  Everything derived from it is
 * computed once and cached for the life of the process.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static bool is_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

const char *lxm_test_top(void)
{
    static char top[PATH_MAX];
    static bool done;
    const char *env;
    char probe[PATH_MAX + 8];

    if (done)
        return top[0] ? top : NULL;
    done = true;

    env = getenv("LXM_TOP");
    if (env && *env) {
        snprintf(top, sizeof(top), "%s", env);
        return top;
    }
    if (!getcwd(top, sizeof(top))) {
        top[0] = 0;
        return NULL;
    }
    for (;;) {
        char *slash;

        snprintf(probe, sizeof(probe), "%s/.git", top);
        if (access(probe, F_OK) == 0)
            return top;
        slash = strrchr(top, '/');
        if (!slash || slash == top) {
            top[0] = 0;
            return NULL;
        }
        *slash = 0;
    }
}

const char *lxm_test_shared_streams_dir(void)
{
    static char dir[PATH_MAX];
    static bool done;
    const char *env = getenv("LXM_SHARED_DIR"), *top;
    char probe[PATH_MAX + 32];

    if (done)
        return dir[0] ? dir : NULL;
    done = true;

    if (env && *env) {
        snprintf(dir, sizeof(dir), "%s/xen-streams", env);
    } else {
        top = lxm_test_top();
        if (!top)
            return NULL;
        snprintf(dir, sizeof(dir), "%s/../shared/xen-streams", top);
    }
    snprintf(probe, sizeof(probe), "%s/pvh-128m.save.zst", dir);
    if (!is_file(probe))
        dir[0] = 0;
    return dir[0] ? dir : NULL;
}

/* ---- in-memory streams ------------------------------------------- */

void lxm_test_buf_dispose(lxm_test_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int lxm_test_buf_sink(void *opaque, const struct iovec *iov, int iovcnt)
{
    lxm_test_buf *b = opaque;
    size_t need = b->len;
    int i;

    for (i = 0; i < iovcnt; i++)
        need += iov[i].iov_len;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        uint8_t *p;

        while (cap < need)
            cap *= 2;
        p = realloc(b->data, cap);
        if (!p)
            return LXM_ERROR_NOMEM;
        b->data = p;
        b->cap = cap;
    }
    for (i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_len)
            continue;
        memcpy(b->data + b->len, iov[i].iov_base, iov[i].iov_len);
        b->len += iov[i].iov_len;
    }
    return 0;
}

void lxm_test_synth(const lxm__synth_opts *o, lxm_stream_format format,
                    lxm_test_buf *out)
{
    lxm_stream_writer *w = NULL;
    int rc;

    rc = lxm_stream_writer_new(format, lxm_test_buf_sink, out, NULL, &w);
    ck_assert_int_eq(rc, 0);
    rc = lxm__synth_write(w, o);
    ck_assert_msg(rc == 0, "lxm__synth_write(%s): %s", o->name ? o->name : "?",
                  lxm_strerror(rc));
    ck_assert(lxm_stream_writer_done(w));
    ck_assert_uint_eq(lxm_stream_writer_offset(w), out->len);
    lxm_stream_writer_free(w);
}

int lxm_test_read_buf(const void *buf, size_t len, lxm_stream_format format,
                      unsigned int flags, size_t chunk, lxm_stream_event_fn *cb,
                      void *opaque, lxm_stream_error *err_r)
{
    lxm_stream_reader_opts opts = {
        .format = format,
        .flags = flags,
        .callback = cb,
        .opaque = opaque,
        .name = "test",
    };
    lxm_stream_reader *r = NULL;
    const uint8_t *p = buf;
    size_t off = 0;
    int rc;

    rc = lxm_stream_reader_new(&opts, &r);
    ck_assert_int_eq(rc, 0);

    if (!chunk)
        chunk = len ? len : 1;
    while (off < len) {
        size_t n = LXM_MIN(chunk, len - off), used = 0;

        rc = lxm_stream_reader_feed(r, p + off, n, &used);
        if (rc)
            goto out;
        off += used;
        if (used < n)
            break; /* STOP_AT_END: the stream ended */
    }
    rc = lxm_stream_reader_finish(r);

out:
    if (err_r)
        *err_r = *lxm_stream_reader_error(r);
    lxm_stream_reader_free(r);
    return rc;
}

char *lxm_test_write_tmp(const void *buf, size_t len, const char *suffix)
{
    const char *tmpdir = getenv("TMPDIR");
    size_t slen = suffix ? strlen(suffix) : 0;
    const uint8_t *p = buf;
    char *path = NULL;
    int fd;

    if (!tmpdir || !*tmpdir)
        tmpdir = "/tmp";
    path = malloc(strlen(tmpdir) + slen + 20);
    ck_assert(path);
    sprintf(path, "%s/lxm-test-XXXXXX%s", tmpdir, suffix ? suffix : "");
    fd = mkstemps(path, (int)slen);
    ck_assert_msg(fd >= 0, "mkstemps(%s): %s", path, strerror(errno));
    while (len) {
        ssize_t r = write(fd, p, len);

        if (r < 0 && errno == EINTR)
            continue;
        ck_assert_msg(r > 0, "write(%s): %s", path, strerror(errno));
        p += r;
        len -= (size_t)r;
    }
    ck_assert_int_eq(close(fd), 0);
    return path;
}

/* ---- external programs ------------------------------------------- */

/* 'arg' quoted for sh: 'it'\''s'.  Caller frees. */
static char *shell_quote(const char *arg)
{
    size_t n = 3, i;
    char *q, *o;

    for (i = 0; arg[i]; i++)
        n += arg[i] == '\'' ? 4 : 1;
    q = o = calloc(n, 1);
    ck_assert(q);
    *o++ = '\'';
    for (i = 0; arg[i]; i++) {
        if (arg[i] == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = arg[i];
        }
    }
    *o++ = '\'';
    *o = 0;
    return q;
}

int lxm_test_run(const char *cmdline, char **out_r)
{
    char *out = NULL;
    size_t len = 0, cap = 0;
    FILE *f;
    int status;

    if (out_r)
        *out_r = NULL;
    fflush(NULL);
    f = popen(cmdline, "r");
    if (!f)
        return -1;
    for (;;) {
        size_t n;

        if (cap - len < 4096) {
            char *p;

            cap = cap ? 2 * cap : 8192;
            p = realloc(out, cap);
            ck_assert(p);
            out = p;
        }
        n = fread(out + len, 1, cap - len - 1, f);
        if (!n)
            break;
        len += n;
    }
    out[len] = 0;
    status = pclose(f);
    if (out_r)
        *out_r = out;
    else
        free(out);
    if (status == -1 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

char *lxm_test_slurp(const char *path, size_t *len_r)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    ck_assert_msg(f != NULL, "cannot open %s", path);
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 65536 * 2;
            buf = realloc(buf, cap + 1);
            ck_assert_ptr_nonnull(buf);
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    if (len_r)
        *len_r = len;
    return buf;
}

lxm_test_cli lxm_test_cli_run(const char *cmdline)
{
    lxm_test_cli r = { -1, NULL, NULL };
    char *errpath = lxm_test_write_tmp("", 0, ".err"), *cmd;
    size_t n;

    ck_assert_ptr_nonnull(errpath);
    n = strlen(cmdline) + strlen(errpath) + 32;
    cmd = malloc(n);
    ck_assert_ptr_nonnull(cmd);
    snprintf(cmd, n, "{ %s ; } 2>'%s' </dev/null", cmdline, errpath);
    r.status = lxm_test_run(cmd, &r.out);
    if (!r.out) {
        r.out = strdup("");
        ck_assert_ptr_nonnull(r.out);
    }
    r.err = lxm_test_slurp(errpath, NULL);
    unlink(errpath);
    free(errpath);
    free(cmd);
    return r;
}

void lxm_test_cli_dispose(lxm_test_cli *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static const char *verify_stream_tool(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("LXM_VERIFY_STREAM"), *top;

    if (env && *env)
        return env;
    top = lxm_test_top();
    if (!top)
        return NULL;
    snprintf(path, sizeof(path), "%s/.cache/bin/verify-stream-v2", top);
    return path;
}

int lxm_test_verify_stream(const char *path, const char *fmt, bool verbose,
                           char **out_r)
{
    const char *tool = verify_stream_tool();
    char *qtool, *qpath, *qfmt, *cmd;
    int rc;

    ck_assert_msg(tool && access(tool, X_OK) == 0,
                  "Xen's verify-stream-v2 is missing (%s): run `make deps`"
                  " or set LXM_VERIFY_STREAM; this test cannot pass"
                  " without it",
                  tool ? tool : "no repository top found");

    qtool = shell_quote(tool);
    qpath = shell_quote(path);
    qfmt = shell_quote(fmt);
    cmd = malloc(strlen(qtool) + strlen(qfmt) + strlen(qpath) + 32);
    ck_assert(cmd);
    sprintf(cmd, "%s -f %s%s -i %s 2>&1", qtool, qfmt, verbose ? " -v" : "",
            qpath);
    rc = lxm_test_run(cmd, out_r);
    free(cmd);
    free(qtool);
    free(qpath);
    free(qfmt);
    return rc;
}

const char *lxm_test_xlmig_path(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("LXM_XLMIG"), *top;

    if (env && *env)
        return env;
    top = lxm_test_top();
    if (!top)
        return NULL;
    snprintf(path, sizeof(path), "%s/tools/xlmig/xlmig", top);
    return is_file(path) ? path : NULL;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */

/* ---- a capturing logger -------------------------------------------- */

static void cap_vmessage(xentoollog_logger *lg, xentoollog_level level,
                         int errnoval, const char *context, const char *fmt,
                         va_list ap) LXM_PRINTF(5, 0);
static void cap_vmessage(xentoollog_logger *lg, xentoollog_level level,
                         int errnoval, const char *context, const char *fmt,
                         va_list ap)
{
    lxm_test_logger *c = (lxm_test_logger *)lg;

    (void)errnoval;
    (void)context;
    if (level < XTL_ERROR)
        return;
    vsnprintf(c->last, sizeof(c->last), fmt, ap);
    if (!c->errors++)
        memcpy(c->first, c->last, sizeof(c->first));
}

static void cap_progress(xentoollog_logger *lg, const char *context,
                         const char *doing_what, int percent,
                         unsigned long done, unsigned long total)
{
    (void)lg, (void)context, (void)doing_what, (void)percent, (void)done;
    (void)total;
}

static void cap_destroy(xentoollog_logger *lg)
{
    (void)lg;
}

void lxm_test_logger_init(lxm_test_logger *c)
{
    memset(c, 0, sizeof(*c));
    c->vtable.vmessage = cap_vmessage;
    c->vtable.progress = cap_progress;
    c->vtable.destroy = cap_destroy;
}
