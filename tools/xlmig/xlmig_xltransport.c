/*
 * xlmig_xltransport.c - `xlmig xl-transport`: a transport for stock
 * `xl migrate`, in place of ssh:
 *
 *   xl migrate -s "xlmig xl-transport [--compress=ALG]" DOMAIN HOST
 *
 * xl runs `sh -c "exec xlmig xl-transport ... HOST xl ... migrate-receive
 * ..."` with a pipe pair on our stdin/stdout, exactly as it would run
 * ssh.  We connect to HOST's xlmigd (port 8702, or --agent), ask it to
 * run the same xl command (REQUEST xl-receive; the agent allows only xl
 * migrate-receive with xl's own flags), send our stdin to it as STREAM
 * frames (compressed with --compress, default lz4 with the page
 * pre-pass; flushed whenever stdin has nothing more for now, since xl's
 * protocol waits for answers) and copy what comes back (xl's messages)
 * to our stdout.  Our exit status is the remote xl's.
 *
 * Entry point: xlmig_main_xl_transport().
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/codec.h"
#include "libxlmig_internal.h"
#include "transport/proto.h"
#include "xlmig.h"

#define XLT_CHUNK (256u << 10)
#define XLT_MAX_ARGS 16
#define XLT_CONNECT_TIMEOUT_MS 10000
#define XLT_DEFAULT_CODEC "lz4"

typedef struct xlt {
    lxm__conn *c;
    int stop_fd;       /* readable: the sending thread stops */
    lxm__encoder *enc; /* NULL: codec none */
    /* set by the sending thread, read after join */
    int send_rc;
    uint64_t bytes_out;
    char send_err[160];
} xlt;

/* The encoder's output: one STREAM frame per codec frame. */
static int send_frame(void *opaque, uint8_t codec, const void *frame,
                      size_t len)
{
    xlt *t = opaque;

    return lxm__conn_send(t->c, LXM__MSG_STREAM, codec, frame, (uint32_t)len);
}

/* true when stdin has nothing more to read right now */
static bool stdin_idle(void)
{
    struct pollfd p = { .fd = 0, .events = POLLIN };

    return poll(&p, 1, 0) == 0;
}

/* stdin -> STREAM frames, then STREAM_END. */
static void *send_thread(void *arg)
{
    xlt *t = arg;
    uint8_t *buf = malloc(XLT_CHUNK);
    ssize_t r;
    int rc = 0;
    yajl_gen g;

    if (!buf) {
        rc = LXM_ERROR_NOMEM;
        snprintf(t->send_err, sizeof(t->send_err), "out of memory");
        goto out;
    }
    for (;;) {
        struct pollfd pfd[2] = { { .fd = 0, .events = POLLIN },
                                 { .fd = t->stop_fd, .events = POLLIN } };

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            rc = LXM_ERROR_IO;
            snprintf(t->send_err, sizeof(t->send_err), "poll: %s",
                     strerror(errno));
            goto out;
        }
        if (pfd[1].revents) {
            rc = LXM_ERROR_ABORTED;
            snprintf(t->send_err, sizeof(t->send_err), "stopped");
            goto out;
        }
        r = read(0, buf, XLT_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = LXM_ERROR_IO;
            snprintf(t->send_err, sizeof(t->send_err),
                     "reading xl's stream on stdin: %s", strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        if (!t->enc) {
            rc = lxm__conn_send(t->c, LXM__MSG_STREAM, LXM__CODEC_NONE, buf,
                                (uint32_t)r);
        } else {
            /* xl may now wait for an answer to what it wrote: do not
             * keep any of it back */
            rc = lxm__encoder_feed(t->enc, buf, (size_t)r);
            if (!rc && stdin_idle())
                rc = lxm__encoder_flush(t->enc);
        }
        if (rc) {
            snprintf(t->send_err, sizeof(t->send_err), "sending: %s",
                     lxm__conn_last_error(t->c));
            goto out;
        }
        t->bytes_out += (uint64_t)r;
    }
    if (t->enc) {
        rc = lxm__encoder_finish(t->enc);
        if (rc) {
            snprintf(t->send_err, sizeof(t->send_err), "sending: %s",
                     lxm__conn_last_error(t->c));
            goto out;
        }
    }
    g = lxm__json_new();
    lxm__json_uint(g, "bytes", t->bytes_out);
    rc = lxm__conn_send_json(t->c, LXM__MSG_STREAM_END, g);
    if (rc)
        snprintf(t->send_err, sizeof(t->send_err), "sending: %s",
                 lxm__conn_last_error(t->c));
out:
    t->send_rc = rc;
    free(buf);
    return NULL;
}

int xlmig_main_xl_transport(const struct cmd_spec *spec, int argc, char **argv)
{
    char addr[PATH_MAX], cname[32];
    const char *agent = NULL, *arg, *host, *compress = XLT_DEFAULT_CODEC;
    lxm__codec_spec cspec;
    lxm__encoder_opts eo;
    int i, first, rc, ret = XLMIG_EXIT_FAIL;
    lxm__conn *c = NULL;
    lxm__frame f;
    yajl_gen g = NULL;
    yajl_val v = NULL, hello = NULL;
    xlt t = { .stop_fd = -1 };
    int stop_pipe[2] = { -1, -1 };
    pthread_t th;
    bool th_started = false, got_reply = false;
    char err[256];

    /* Options end at HOST: what follows is xl's command line, whose own
     * options (-t, -e ...) must not be taken for ours. */
    for (first = 1; first < argc && argv[first][0] == '-'; first++) {
        arg = argv[first];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            xlmig_cmd_help(spec);
            return XLMIG_EXIT_OK;
        } else if (!strcmp(arg, "--agent") && first + 1 < argc) {
            agent = argv[++first];
        } else if (!strncmp(arg, "--agent=", 8)) {
            agent = arg + 8;
        } else if (!strcmp(arg, "--compress") && first + 1 < argc) {
            compress = argv[++first];
        } else if (!strncmp(arg, "--compress=", 11)) {
            compress = arg + 11;
        } else {
            return xlmig_usage_error(spec->name, "unknown option '%s'", arg);
        }
    }
    if (argc - first < 3)
        return xlmig_usage_error(spec->name,
                                 "expected HOST xl ... migrate-receive ... "
                                 "(the command xl migrate -s runs)");
    if (argc - first - 1 > XLT_MAX_ARGS)
        return xlmig_usage_error(spec->name, "more than %d remote arguments",
                                 XLT_MAX_ARGS);
    if (lxm__codec_parse(compress, &cspec, err, sizeof(err)))
        return xlmig_usage_error("xl-transport", "--compress: %s", err);
    host = argv[first];
    xlmig_addr_with_port(agent ? agent : host, addr, sizeof(addr));

    rc = lxm__conn_connect(addr, XLT_CONNECT_TIMEOUT_MS, xlmig_logger, &c);
    if (rc) {
        xlmig_error(spec->name, "cannot connect to the agent on %s: %s", addr,
                    lxm_strerror(rc));
        goto out;
    }
    rc = lxm__proto_hello(c, "cli", NULL, &hello);
    if (rc) {
        xlmig_error(spec->name, "agent %s: %s", addr, lxm__conn_last_error(c));
        goto out;
    }
    g = lxm__json_new();
    lxm__json_str(g, "cmd", "xl-receive");
    lxm__codec_spec_format(&cspec, cname, sizeof(cname));
    lxm__json_str(g, "compress", cname);
    lxm__json_key(g, "argv");
    yajl_gen_array_open(g);
    for (i = first + 1; i < argc; i++)
        yajl_gen_string(g, (const unsigned char *)argv[i], strlen(argv[i]));
    yajl_gen_array_close(g);
    rc = lxm__conn_send_json(c, LXM__MSG_REQUEST, g);
    g = NULL;
    if (!rc)
        rc = lxm__conn_expect(c, LXM__MSG_ACCEPT, NULL, err, sizeof(err));
    if (rc) {
        xlmig_error(spec->name, "agent %s: %s", addr,
                    rc == LXM_ERROR_PEER ? err : lxm__conn_last_error(c));
        goto out;
    }

    /* xl's pauses (the receiver restoring, the sender waiting for the
     * ready message) can be long: no per-frame timeout from here on */
    lxm__conn_set_timeout(c, 0);
    t.c = c;
    if (cspec.codec != LXM__CODEC_NONE) {
        memset(&eo, 0, sizeof(eo));
        eo.spec = cspec;
        eo.format = LXM_FORMAT_XL;
        /* An agent that predates pre-pass version 2 reads version 1. */
        eo.prepass_version = lxm__hello_has_cap(hello, LXM__CAP_PAGES2) ? 0 : 1;
        eo.logger = xlmig_logger;
        eo.out = send_frame;
        eo.opaque = &t;
        rc = lxm__encoder_new(&eo, &t.enc);
        if (rc) {
            xlmig_error(spec->name, "cannot set up %s: %s", cname,
                        lxm_strerror(rc));
            goto out;
        }
    }
    if (pipe(stop_pipe) < 0) {
        xlmig_error(spec->name, "pipe: %s", strerror(errno));
        goto out;
    }
    t.stop_fd = stop_pipe[0];
    if (pthread_create(&th, NULL, send_thread, &t)) {
        xlmig_error(spec->name, "cannot start a thread");
        goto out;
    }
    th_started = true;

    for (;;) {
        rc = lxm__conn_recv(c, &f);
        if (rc) {
            xlmig_error(spec->name, "agent %s: %s", addr,
                        lxm__conn_last_error(c));
            break;
        }
        if (f.type == LXM__MSG_STREAM) {
            if (lxm__write_all(1, f.payload, f.length) < 0) {
                /* local xl went away: nothing more to tell it */
                xlmig_error(spec->name, "writing to xl: %s", strerror(errno));
                break;
            }
            continue;
        }
        if (f.type == LXM__MSG_REPLY) {
            if (!lxm__frame_json(&f, &v)) {
                got_reply = true;
                ret = (int)lxm__jint(v, "exit", XLMIG_EXIT_FAIL);
                if (ret < 0 || ret > 255)
                    ret = XLMIG_EXIT_FAIL;
            }
            break;
        }
        if (f.type == LXM__MSG_ERROR) {
            if (!lxm__frame_json(&f, &v) && lxm__jstr(v, "error"))
                xlmig_error(spec->name, "agent %s: %s", addr,
                            lxm__jstr(v, "error"));
            break;
        }
        xlmig_error(spec->name, "agent %s: unexpected %s frame", addr,
                    lxm__msg_name(f.type));
        break;
    }
    /* our stdout is xl's: close it so that xl sees the end */
    close(1);
    /* the remote xl has exited (or the agent is gone): what is left on
     * stdin has nowhere to go; stop the sender, wherever it waits */
    if (write(stop_pipe[1], "x", 1) < 0) {
        /* cannot happen with an empty pipe; shutdown still wakes it */
    }
    lxm__conn_shutdown(c);

out:
    if (th_started) {
        pthread_join(th, NULL);
        if (t.send_rc && !got_reply)
            xlmig_error(spec->name, "%s", t.send_err);
    }
    if (g)
        yajl_gen_free(g);
    yajl_tree_free(v);
    yajl_tree_free(hello);
    lxm__conn_free(c);
    lxm__encoder_free(t.enc);
    for (i = 0; i < 2; i++)
        if (stop_pipe[i] >= 0)
            close(stop_pipe[i]);
    return ret;
}
