/*
 * xlmig_client.c - how xlmig talks to an xlmigd: connect (unix control
 * socket or HOST:PORT), HELLO, one REQUEST, EVENTs, the REPLY or ERROR.
 *
 * Entry points: xlmig_agent_addr(), xlmig_addr_with_port(),
 * xlmig_agent_open(), xlmig_agent_close(), xlmig_request_new(),
 * xlmig_agent_call(), xlmig_capture_init().
 *
 * The library's connection code logs its failures through a logger;
 * here that logger keeps the last message instead of printing it (and
 * passes it on to stderr with -v), so that every failure ends as one
 * line: "xlmig: cannot connect to agent ADDR: REASON".
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libxlmig_internal.h"
#include "transport/proto.h"
#include "xlmig.h"

#define CONNECT_TIMEOUT_MS 10000

struct xlmig_agent {
    xlmig_capture_logger cap; /* outlives c, which logs through it */
    lxm__conn *c;
    char addr[PATH_MAX];
};

static void capture_vmessage(xentoollog_logger *lg, xentoollog_level level,
                             int errnoval, const char *context,
                             const char *format, va_list al)
    __attribute__((format(printf, 5, 0)));
static void capture_vmessage(xentoollog_logger *lg, xentoollog_level level,
                             int errnoval, const char *context,
                             const char *format, va_list al)
{
    xlmig_capture_logger *cl = (xlmig_capture_logger *)lg;
    va_list copy;

    va_copy(copy, al);
    if (level >= XTL_ERROR)
        vsnprintf(cl->last, sizeof(cl->last), format, al);
    if (cl->forward && xlmig_verbose && xlmig_logger)
        xtl_logv(xlmig_logger, level, errnoval, context, format, copy);
    va_end(copy);
}

void xlmig_capture_init(xlmig_capture_logger *cl, bool forward)
{
    memset(cl, 0, sizeof(*cl));
    cl->vtable.vmessage = capture_vmessage;
    cl->forward = forward;
}

const char *xlmig_agent_addr(void)
{
    const char *env;

    if (xlmig_host && *xlmig_host)
        return xlmig_host;
    env = getenv("XLMIG_HOST");
    if (env && *env)
        return env;
    return LXM__DEFAULT_CONTROL;
}

void xlmig_addr_with_port(const char *in, char *out, size_t len)
{
    const char *rb = strchr(in, ']');
    bool has_port;

    if (lxm__addr_is_unix(in))
        has_port = true;
    else if (in[0] == '[')
        has_port = rb && rb[1] == ':';
    else
        has_port = strchr(in, ':') != NULL;
    if (has_port)
        snprintf(out, len, "%s", in);
    else
        snprintf(out, len, "%s:%d", in, LXM__DEFAULT_PORT);
}

/* The reason in "cannot connect to ADDR: REASON", made friendlier. */
static void connect_reason(const xlmig_capture_logger *cl, const char *addr,
                           int rc, char *out, size_t len)
{
    const char *msg = cl->last, *p;
    char prefix[PATH_MAX + 32];

    snprintf(prefix, sizeof(prefix), "cannot connect to %s: ", addr);
    if (!*msg) {
        snprintf(out, len, "%s", lxm_strerror(rc));
        return;
    }
    p = !strncmp(msg, prefix, strlen(prefix)) ? msg + strlen(prefix) : msg;
    if (!strcmp(p, "no such file or directory"))
        snprintf(out, len, "no such file (is xlmigd running?)");
    else if (!strcmp(p, "connection refused"))
        snprintf(out, len, "connection refused (is xlmigd running?)");
    else
        snprintf(out, len, "%s", p);
}

xlmig_agent *xlmig_agent_open(void)
{
    xlmig_agent *a;
    char reason[512];
    int rc;

    a = calloc(1, sizeof(*a));
    if (!a) {
        xlmig_error(NULL, "out of memory");
        return NULL;
    }
    xlmig_capture_init(&a->cap, true);
    xlmig_addr_with_port(xlmig_agent_addr(), a->addr, sizeof(a->addr));

    rc = lxm__conn_connect(a->addr, CONNECT_TIMEOUT_MS, &a->cap.vtable, &a->c);
    if (rc) {
        connect_reason(&a->cap, a->addr, rc, reason, sizeof(reason));
        xlmig_error(NULL, "cannot connect to agent %s: %s", a->addr, reason);
        goto fail;
    }
    a->cap.last[0] = '\0';
    rc = lxm__proto_hello(a->c, "cli", NULL, NULL);
    if (rc) {
        xlmig_error(NULL, "agent %s: %s", a->addr,
                    a->cap.last[0] ? a->cap.last : lxm_strerror(rc));
        goto fail;
    }
    return a;

fail:
    xlmig_agent_close(a);
    return NULL;
}

void xlmig_agent_shutdown(xlmig_agent *a)
{
    if (a)
        lxm__conn_shutdown(a->c);
}

void xlmig_agent_close(xlmig_agent *a)
{
    if (!a)
        return;
    lxm__conn_free(a->c);
    free(a);
}

yajl_gen xlmig_request_new(const char *cmd)
{
    yajl_gen g = lxm__json_new();

    lxm__json_str(g, "cmd", cmd);
    return g;
}

int xlmig_agent_call(xlmig_agent *a, const char *cmd, yajl_gen req,
                     uint32_t timeout_ms, xlmig_event_fn *event_fn,
                     void *opaque, yajl_val *reply_r, char **raw_r)
{
    lxm__frame f;
    yajl_val v = NULL;
    const char *msg;
    int64_t code;
    int rc;

    *reply_r = NULL;
    if (raw_r)
        *raw_r = NULL;
    if (!req) {
        xlmig_error(cmd, "out of memory");
        return LXM_ERROR_NOMEM;
    }
    a->cap.last[0] = '\0';
    lxm__conn_set_timeout(a->c, CONNECT_TIMEOUT_MS);
    rc = lxm__conn_send_json(a->c, LXM__MSG_REQUEST, req);
    if (rc)
        goto lost;
    lxm__conn_set_timeout(a->c, timeout_ms);

    for (;;) {
        rc = lxm__conn_recv(a->c, &f);
        if (rc)
            goto lost;
        rc = lxm__frame_json(&f, &v);
        if (rc) {
            xlmig_error(cmd, "agent %s sent a %s frame that is not JSON",
                        a->addr, lxm__msg_name(f.type));
            return rc;
        }
        switch (f.type) {
        case LXM__MSG_EVENT:
            if (event_fn)
                event_fn(opaque, v);
            yajl_tree_free(v);
            v = NULL;
            break;
        case LXM__MSG_REPLY:
            if (raw_r) {
                *raw_r = strndup((const char *)f.payload, f.length);
                if (!*raw_r) {
                    yajl_tree_free(v);
                    xlmig_error(cmd, "out of memory");
                    return LXM_ERROR_NOMEM;
                }
            }
            *reply_r = v;
            return 0;
        case LXM__MSG_ERROR:
            msg = lxm__jstr(v, "error");
            code = lxm__jint(v, "code", LXM_ERROR_PEER);
            xlmig_error(cmd, "%s", msg && *msg ? msg : "the agent failed");
            yajl_tree_free(v);
            return code < 0 && code > -1000 ? (int)code : LXM_ERROR_PEER;
        default:
            xlmig_error(cmd, "agent %s sent an unexpected %s frame", a->addr,
                        lxm__msg_name(f.type));
            yajl_tree_free(v);
            return LXM_ERROR_PROTOCOL;
        }
    }

lost:
    if (rc == LXM_ERROR_CONNECT)
        xlmig_error(cmd, "agent %s closed the connection", a->addr);
    else
        xlmig_error(cmd, "agent %s: %s", a->addr,
                    a->cap.last[0] ? a->cap.last : lxm_strerror(rc));
    return rc;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
