/*
 * xlmigd_xlrecv.c - the receiving end of xlmig's transport for stock
 * `xl migrate` (docs/protocol.md, "xl transport"):
 *
 *   xl migrate -s "xlmig xl-transport [--compress=ALG]" DOMAIN HOST
 *
 * runs `xlmig xl-transport ... HOST xl [-t] [-T] [-v..] migrate-receive
 * [-e] [-d] [-p]` on the sending host; that connects here and sends
 * REQUEST {"cmd":"xl-receive","argv":["xl",...]}.  We run that xl
 * command (only `xl migrate-receive` with the flags xl itself passes),
 * feed it the stream (decoded) on its stdin and send its stdout back,
 * so that xl's own protocol (banner, ready, go, result) runs end to end.
 *
 *   client -> agent   STREAM (codec byte: none, or frames of the codec
 *                     layer, docs/compression.md) ... STREAM_END
 *   agent -> client   ACCEPT {} once xl runs; STREAM (codec none) with
 *                     xl's stdout; REPLY {"exit":N} when xl has exited
 *
 * If the client goes away, xl's stdin is closed: xl sees a truncated
 * stream and removes the domain it was building, as it does when ssh
 * drops; after XLRECV_KILL_S more seconds it is killed.
 *
 * Entry point: xlmigd_xl_receive().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec/codec.h"
#include "xlmigd.h"

#define XLRECV_MAX_ARGS 16
#define XLRECV_CHUNK (64u << 10)
#define XLRECV_KILL_S 60

typedef struct xlrecv {
    xlmigd_conn *xc;
    int in_fd;  /* xl's stdin (write end); -1 once xl stopped reading */
    int out_fd; /* xl's stdout (read end) */
    /* written by the output thread, read after join */
    uint64_t bytes_back;
    int out_rc;
} xlrecv;

/* Only what xl migrate itself puts in the rune: global -t, -T, -v...
 * before the command, and -e, -d, -p, -F after it. */
static bool arg_allowed(const char *a, bool after_cmd)
{
    size_t i;

    if (a[0] != '-' || !a[1])
        return false;
    if (after_cmd)
        return !a[2] && strchr("edpF", a[1]);
    if (!strcmp(a, "-t") || !strcmp(a, "-T"))
        return true;
    for (i = 1; a[i]; i++)
        if (a[i] != 'v')
            return false;
    return true;
}

/* argv_r[0..n-1] borrowed from req; NULL-terminated.  err: why not. */
static bool parse_argv(yajl_val req, const char **argv_r, char *err,
                       size_t err_len)
{
    yajl_val a = lxm__jget(req, "argv");
    size_t i, n;
    bool seen_cmd = false;
    const char *s;

    if (!a || !YAJL_IS_ARRAY(a)) {
        snprintf(err, err_len, "xl-receive without an \"argv\" array");
        return false;
    }
    n = a->u.array.len;
    if (n < 2 || n > XLRECV_MAX_ARGS) {
        snprintf(err, err_len, "xl-receive: %zu arguments (2..%d allowed)", n,
                 XLRECV_MAX_ARGS);
        return false;
    }
    for (i = 0; i < n; i++) {
        s = YAJL_IS_STRING(a->u.array.values[i])
                ? YAJL_GET_STRING(a->u.array.values[i])
                : NULL;
        if (!s) {
            snprintf(err, err_len, "xl-receive: argument %zu is not a string",
                     i);
            return false;
        }
        argv_r[i] = s;
        if (i == 0) {
            if (strcmp(s, "xl")) {
                snprintf(err, err_len,
                         "xl-receive runs only 'xl migrate-receive', not "
                         "'%.64s'",
                         s);
                return false;
            }
        } else if (!seen_cmd && !strcmp(s, "migrate-receive")) {
            seen_cmd = true;
        } else if (!arg_allowed(s, seen_cmd)) {
            snprintf(err, err_len,
                     "xl-receive: argument '%.64s' is not one xl migrate "
                     "passes",
                     s);
            return false;
        }
    }
    argv_r[n] = NULL;
    if (!seen_cmd) {
        snprintf(err, err_len, "xl-receive: no 'migrate-receive' in argv");
        return false;
    }
    return true;
}

/* xl's stdout -> STREAM frames to the client. */
static void *output_thread(void *arg)
{
    xlrecv *x = arg;
    uint8_t *buf = malloc(XLRECV_CHUNK);
    ssize_t r;
    int rc = 0;

    if (!buf) {
        x->out_rc = LXM_ERROR_NOMEM;
        return NULL;
    }
    for (;;) {
        r = read(x->out_fd, buf, XLRECV_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        pthread_mutex_lock(&x->xc->send_lock);
        rc = lxm__conn_send(x->xc->c, LXM__MSG_STREAM, LXM__CODEC_NONE, buf,
                            (uint32_t)r);
        pthread_mutex_unlock(&x->xc->send_lock);
        if (rc)
            break;
        x->bytes_back += (uint64_t)r;
    }
    x->out_rc = rc;
    free(buf);
    return NULL;
}

/* Stream bytes for xl (raw, or out of the decoder). */
static int to_xl(void *opaque, const void *buf, size_t len)
{
    xlrecv *x = opaque;

    if (x->in_fd >= 0 && lxm__write_all(x->in_fd, buf, len) < 0) {
        /* xl stopped reading (it failed): drop the rest quietly, its
         * exit status tells the sender */
        close(x->in_fd);
        x->in_fd = -1;
    }
    return 0;
}

/* Wait for pid at most secs seconds; then SIGKILL it and reap. */
static int wait_child(pid_t pid, int secs)
{
    int status = 0, i;
    pid_t r;

    for (i = 0; i < secs * 10; i++) {
        r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        usleep(100000);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

int xlmigd_xl_receive(xlmigd_conn *xc, yajl_val req)
{
    xlmigd *d = xc->d;
    const char *argv[XLRECV_MAX_ARGS + 1];
    char err[192];
    int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 };
    int status, rc, code;
    pid_t pid = -1;
    pthread_t th;
    bool th_started = false, client_ok = true;
    xlrecv x = { .xc = xc, .out_fd = -1, .in_fd = -1 };
    lxm__decoder *dec = NULL;
    lxm__decoder_opts dopts;
    lxm__frame f;
    uint64_t bytes_in = 0;
    yajl_gen g;

    if (!parse_argv(req, argv, err, sizeof(err))) {
        LXM_LOG_ERROR(d->lg, "%s: %s", xc->peer, err);
        lxm__conn_send_error(xc->c, LXM__MSG_ERROR, LXM_ERROR_REFUSED, "%s",
                             err);
        return 1;
    }
    if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0) {
        lxm__conn_send_error(xc->c, LXM__MSG_ERROR, LXM_ERROR_IO,
                             "xl-receive on %s: pipe: %s", d->hostname,
                             strerror(errno));
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        lxm__conn_send_error(xc->c, LXM__MSG_ERROR, LXM_ERROR_IO,
                             "xl-receive on %s: fork: %s", d->hostname,
                             strerror(errno));
        goto out;
    }
    if (pid == 0) {
        /* the child: xl migrate-receive with the pipes as stdin/stdout */
        sigset_t none;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(in_pipe[0], 0) < 0 || dup2(out_pipe[1], 1) < 0)
            _exit(127);
        execvp(d->xl_path, (char *const *)argv);
        fprintf(stderr, "xlmigd: xl-receive: cannot run %s: %s\n", d->xl_path,
                strerror(errno));
        _exit(127);
    }
    close(in_pipe[0]);
    in_pipe[0] = -1;
    close(out_pipe[1]);
    out_pipe[1] = -1;
    x.in_fd = in_pipe[1];
    in_pipe[1] = -1;
    x.out_fd = out_pipe[0];
    out_pipe[0] = -1;
    lxm__log(d->lg, XTL_INFO, -1, "xl-receive from %s: running %s (pid %d)",
             xc->peer, d->xl_path, (int)pid);

    /* xl's pauses (restoring, waiting for "go") can be long */
    lxm__conn_set_timeout(xc->c, 0);
    pthread_mutex_lock(&xc->send_lock);
    rc = lxm__conn_send_json(xc->c, LXM__MSG_ACCEPT, lxm__json_new());
    pthread_mutex_unlock(&xc->send_lock);
    if (rc) {
        client_ok = false;
        goto wait;
    }
    if (pthread_create(&th, NULL, output_thread, &x)) {
        LXM_LOG_ERROR(d->lg, "xl-receive: cannot start a thread");
        client_ok = false;
        goto wait;
    }
    th_started = true;

    for (;;) {
        rc = lxm__conn_recv(xc->c, &f);
        if (rc) {
            LXM_LOG_ERROR(
                d->lg,
                "xl-receive from %s: the sender went away after %" PRIu64
                " bytes (%s); closing xl's stdin",
                xc->peer, bytes_in, lxm__conn_last_error(xc->c));
            client_ok = false;
            break;
        }
        if (f.type == LXM__MSG_STREAM_END) {
            rc = dec ? lxm__decoder_finish(dec) : 0;
            if (rc) {
                LXM_LOG_ERROR(d->lg, "xl-receive from %s: %s", xc->peer,
                              lxm_strerror(rc));
                client_ok = false;
            }
            break;
        }
        if (f.type != LXM__MSG_STREAM) {
            LXM_LOG_ERROR(d->lg, "xl-receive from %s: unexpected %s frame",
                          xc->peer, lxm__msg_name(f.type));
            client_ok = false;
            break;
        }
        bytes_in += f.length;
        if (f.codec == LXM__CODEC_NONE && !dec) {
            to_xl(&x, f.payload, f.length);
            continue;
        }
        if (!dec) {
            memset(&dopts, 0, sizeof(dopts));
            dopts.format = LXM_FORMAT_XL;
            /* inline: each frame's bytes reach xl before the next
             * frame is read, since xl may be waiting for them to
             * answer (a pipelined decoder would hold the last ones) */
            dopts.threads = 1;
            dopts.logger = d->lg;
            dopts.out = to_xl;
            dopts.opaque = &x;
            rc = lxm__decoder_new(&dopts, &dec);
            if (rc) {
                LXM_LOG_ERROR(d->lg, "xl-receive: no decoder: %s",
                              lxm_strerror(rc));
                client_ok = false;
                break;
            }
        }
        rc = lxm__decoder_feed_frame(dec, f.payload, f.length);
        if (rc) {
            /* corrupt: xl gets a truncated stream and cleans up */
            LXM_LOG_ERROR(d->lg,
                          "xl-receive from %s: stream frame after %" PRIu64
                          " bytes: %s",
                          xc->peer, bytes_in, lxm_strerror(rc));
            pthread_mutex_lock(&xc->send_lock);
            lxm__conn_send_error(xc->c, LXM__MSG_ERROR, rc,
                                 "xl-receive on %s: stream frame after %" PRIu64
                                 " bytes: %s; xl gets a truncated stream",
                                 d->hostname, bytes_in, lxm_strerror(rc));
            pthread_mutex_unlock(&xc->send_lock);
            client_ok = false;
            break;
        }
    }

wait:
    if (x.in_fd >= 0) {
        close(x.in_fd);
        x.in_fd = -1;
    }
    status = wait_child(pid, client_ok ? 24 * 3600 : XLRECV_KILL_S);
    pid = -1;
    if (th_started)
        pthread_join(th, NULL);
    code = status < 0            ? 127
           : WIFEXITED(status)   ? WEXITSTATUS(status)
           : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                 : 127;
    lxm__log(d->lg, XTL_INFO, -1,
             "xl-receive from %s: xl exited %d (%" PRIu64 " bytes in, %" PRIu64
             " back)",
             xc->peer, code, bytes_in, x.bytes_back);
    if (client_ok) {
        g = lxm__json_new();
        lxm__json_int(g, "exit", code);
        lxm__json_uint(g, "bytes", bytes_in);
        pthread_mutex_lock(&xc->send_lock);
        lxm__conn_send_json(xc->c, LXM__MSG_REPLY, g);
        pthread_mutex_unlock(&xc->send_lock);
    }

out:
    if (pid > 0)
        wait_child(pid, XLRECV_KILL_S);
    if (x.in_fd >= 0)
        close(x.in_fd);
    lxm__decoder_free(dec);
    if (x.out_fd >= 0)
        close(x.out_fd);
    for (rc = 0; rc < 2; rc++) {
        if (in_pipe[rc] >= 0)
            close(in_pipe[rc]);
        if (out_pipe[rc] >= 0)
            close(out_pipe[rc]);
    }
    return 1;
}
