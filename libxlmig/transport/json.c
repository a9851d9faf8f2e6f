/*
 * json.c - JSON payloads of libxlmig's wire protocol (proto.h), over
 * yajl: yajl_gen to build them, yajl_tree to parse them.
 *
 * Entry points:
 *   lxm__json_new(), lxm__json_str(), _int(), _uint(), _bool(), _key()
 *   lxm__conn_send_json(), lxm__conn_send_error()       building/sending
 *   lxm__frame_json(), lxm__jstr(), _jint(), _jbool(), _jget()  parsing
 *   lxm__proto_hello(), _hello_caps(), lxm__conn_expect() exchanges
 *   lxm__hello_has_cap()
 *
 * Payloads are untrusted: before yajl_tree_parse() sees one it must be
 * free of NUL bytes and nest at most JSON_DEPTH_MAX deep (yajl_tree's
 * free is recursive, so a deep payload would be a stack overflow).
 * Generated strings are checked as UTF-8 by yajl; one that is not (a
 * name with stray bytes) is sent with those bytes replaced by '?',
 * since the peer's parser would refuse the whole frame.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "transport/proto.h"

#define JSON_DEPTH_MAX 64

/* ------------------------------------------------------------------ */
/* Building                                                            */
/* ------------------------------------------------------------------ */

yajl_gen lxm__json_new(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        return NULL;
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    if (yajl_gen_map_open(g) != yajl_gen_status_ok) {
        yajl_gen_free(g);
        return NULL;
    }
    return g;
}

/* A string, with invalid UTF-8 replaced by '?' if yajl refuses it. */
static void gen_string(yajl_gen g, const char *s)
{
    size_t len = strlen(s), i;
    char *copy;

    if (yajl_gen_string(g, (const unsigned char *)s, len) !=
        yajl_gen_invalid_string)
        return;
    copy = strdup(s);
    if (!copy) {
        yajl_gen_string(g, (const unsigned char *)"?", 1);
        return;
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char)copy[i] >= 0x80)
            copy[i] = '?';
    }
    yajl_gen_string(g, (const unsigned char *)copy, len);
    free(copy);
}

void lxm__json_key(yajl_gen g, const char *key)
{
    if (g)
        gen_string(g, key);
}

void lxm__json_str(yajl_gen g, const char *key, const char *val)
{
    if (!g)
        return;
    gen_string(g, key);
    if (val)
        gen_string(g, val);
    else
        yajl_gen_null(g);
}

void lxm__json_int(yajl_gen g, const char *key, int64_t val)
{
    if (!g)
        return;
    gen_string(g, key);
    yajl_gen_integer(g, (long long)val);
}

void lxm__json_uint(yajl_gen g, const char *key, uint64_t val)
{
    char num[24];
    int n;

    if (!g)
        return;
    gen_string(g, key);
    /* yajl_gen_integer takes a long long: go through the text. */
    n = snprintf(num, sizeof(num), "%" PRIu64, val);
    yajl_gen_number(g, num, (size_t)n);
}

void lxm__json_bool(yajl_gen g, const char *key, bool val)
{
    if (!g)
        return;
    gen_string(g, key);
    yajl_gen_bool(g, val);
}

int lxm__conn_send_json(lxm__conn *c, uint8_t type, yajl_gen g)
{
    const unsigned char *buf;
    size_t len;
    int rc;

    if (!g)
        return LXM_ERROR_NOMEM;
    if (yajl_gen_map_close(g) != yajl_gen_status_ok ||
        yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
        rc = LXM_ERROR_FAIL; /* keys and values did not pair up: a bug */
        goto out;
    }
    if (len > LXM__FRAME_MAX) {
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    rc = lxm__conn_send(c, type, LXM__CODEC_NONE, buf, (uint32_t)len);
out:
    yajl_gen_free(g);
    return rc;
}

int lxm__conn_send_error(lxm__conn *c, uint8_t type, int rc, const char *fmt,
                         ...)
{
    char msg[512];
    va_list ap;
    yajl_gen g;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    g = lxm__json_new();
    lxm__json_str(g, "error", msg);
    lxm__json_int(g, "code", rc);
    return lxm__conn_send_json(c, type, g);
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

/* Deepest [ / { nesting outside strings; stops counting at max + 1. */
static unsigned int json_depth(const uint8_t *p, uint32_t len, unsigned int max)
{
    unsigned int depth = 0, deepest = 0;
    bool in_str = false, esc = false;
    uint32_t i;

    for (i = 0; i < len; i++) {
        uint8_t ch = p[i];

        if (in_str) {
            if (esc)
                esc = false;
            else if (ch == '\\')
                esc = true;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > deepest) {
                deepest = depth;
                if (deepest > max)
                    break;
            }
        } else if ((ch == ']' || ch == '}') && depth) {
            depth--;
        }
    }
    return deepest;
}

int lxm__frame_json(const lxm__frame *f, yajl_val *v_r)
{
    char errbuf[128];
    char *text;
    yajl_val v;

    *v_r = NULL;
    if (!f->length || !f->payload)
        return LXM_ERROR_PROTOCOL;
    if (memchr(f->payload, '\0', f->length))
        return LXM_ERROR_PROTOCOL;
    if (json_depth(f->payload, f->length, JSON_DEPTH_MAX) > JSON_DEPTH_MAX)
        return LXM_ERROR_PROTOCOL;

    /* yajl_tree_parse() wants a NUL-terminated string. */
    text = malloc((size_t)f->length + 1);
    if (!text)
        return LXM_ERROR_NOMEM;
    memcpy(text, f->payload, f->length);
    text[f->length] = '\0';
    v = yajl_tree_parse(text, errbuf, sizeof(errbuf));
    free(text);
    if (!v)
        return LXM_ERROR_PROTOCOL;
    if (!YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        return LXM_ERROR_PROTOCOL;
    }
    *v_r = v;
    return 0;
}

yajl_val lxm__jget(yajl_val obj, const char *key)
{
    size_t i;

    if (!obj || !key || !YAJL_IS_OBJECT(obj))
        return NULL;
    /* The last of duplicate keys wins, as in most parsers. */
    for (i = obj->u.object.len; i-- > 0;) {
        if (!strcmp(obj->u.object.keys[i], key))
            return obj->u.object.values[i];
    }
    return NULL;
}

const char *lxm__jstr(yajl_val obj, const char *key)
{
    yajl_val v = lxm__jget(obj, key);

    return v && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

int64_t lxm__jint(yajl_val obj, const char *key, int64_t def)
{
    yajl_val v = lxm__jget(obj, key);

    return v && YAJL_IS_INTEGER(v) ? (int64_t)YAJL_GET_INTEGER(v) : def;
}

bool lxm__jbool(yajl_val obj, const char *key, bool def)
{
    yajl_val v = lxm__jget(obj, key);

    if (v && YAJL_IS_TRUE(v))
        return true;
    if (v && YAJL_IS_FALSE(v))
        return false;
    return def;
}

/* ------------------------------------------------------------------ */
/* Exchanges                                                           */
/* ------------------------------------------------------------------ */

static void set_err(char *err, size_t err_len, const char *msg)
{
    if (err && err_len)
        snprintf(err, err_len, "%s", msg);
}

/* Log and keep a one-line failure, the way conn.c does. */
static int expect_fail(lxm__conn *c, int rc, char *err, size_t err_len,
                       const char *fmt, ...) LXM_PRINTF(5, 6);
static int expect_fail(lxm__conn *c, int rc, char *err, size_t err_len,
                       const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lxm__conn_set_error(c, "%s", msg);
    set_err(err, err_len, msg);
    return rc;
}

int lxm__conn_expect(lxm__conn *c, uint8_t want, yajl_val *v_r, char *err,
                     size_t err_len)
{
    lxm__frame f;
    yajl_val v = NULL;
    int rc;

    if (v_r)
        *v_r = NULL;
    set_err(err, err_len, "");
    rc = lxm__conn_recv(c, &f);
    if (rc) {
        set_err(err, err_len, lxm__conn_last_error(c));
        return rc;
    }

    if (f.type == LXM__MSG_ERROR || f.type == LXM__MSG_FAILED) {
        const char *msg = NULL, *stage = NULL;

        if (lxm__frame_json(&f, &v) == 0) {
            msg = lxm__jstr(v, "error");
            stage = lxm__jstr(v, "stage");
        }
        if (want == f.type) {
            /* The caller waits for exactly this (e.g. FAILED). */
            goto matched;
        }
        {
            char line[512];

            snprintf(line, sizeof(line), "%s%s%s%s",
                     msg ? msg : "error without a message",
                     stage ? " (stage: " : "", stage ? stage : "",
                     stage ? ")" : "");
            set_err(err, err_len, line);
            lxm__conn_set_error(c, "peer %s reported: %s", lxm__conn_peer(c),
                                line);
        }
        rc = LXM_ERROR_PEER;
        goto out;
    }
    if (f.type != want) {
        rc = expect_fail(c, LXM_ERROR_PROTOCOL, err, err_len,
                         "peer %s sent %s, expected %s", lxm__conn_peer(c),
                         lxm__msg_name(f.type), lxm__msg_name(want));
        goto out;
    }
    if (want == LXM__MSG_STREAM) {
        rc = 0; /* raw bytes: nothing to parse */
        goto out;
    }
    rc = lxm__frame_json(&f, &v);
    if (rc) {
        rc = expect_fail(c, rc, err, err_len,
                         "peer %s sent a %s frame whose payload is not a"
                         " JSON object",
                         lxm__conn_peer(c), lxm__msg_name(f.type));
        goto out;
    }
matched:
    if (v_r) {
        *v_r = v;
        v = NULL;
    }
    rc = 0;
out:
    yajl_tree_free(v);
    return rc;
}

int lxm__proto_hello(lxm__conn *c, const char *role, const char *host,
                     yajl_val *peer_r)
{
    return lxm__proto_hello_caps(c, role, host, NULL, peer_r);
}

bool lxm__hello_has_cap(yajl_val hello, const char *cap)
{
    yajl_val a = lxm__jget(hello, "capabilities");
    size_t i;

    if (!a || !YAJL_IS_ARRAY(a) || !cap)
        return false;
    for (i = 0; i < a->u.array.len; i++) {
        yajl_val v = a->u.array.values[i];

        if (YAJL_IS_STRING(v) && !strcmp(v->u.string, cap))
            return true;
    }
    return false;
}

int lxm__proto_hello_caps(lxm__conn *c, const char *role, const char *host,
                          const char *const *caps, yajl_val *peer_r)
{
    yajl_val v = NULL;
    yajl_gen g;
    char err[256], software[64];
    int64_t proto;
    int rc;

    if (peer_r)
        *peer_r = NULL;
    g = lxm__json_new();
    lxm__json_int(g, "proto", LXM__PROTO_VERSION);
    snprintf(software, sizeof(software), "libxlmig %s", lxm_version());
    lxm__json_str(g, "software", software);
    lxm__json_str(g, "role", role ? role : "");
    lxm__json_str(g, "host", host ? host : "");
    lxm__json_key(g, "capabilities");
    if (g) {
        yajl_gen_array_open(g);
        for (; caps && *caps; caps++)
            yajl_gen_string(g, (const unsigned char *)*caps, strlen(*caps));
        yajl_gen_array_close(g);
    }
    rc = lxm__conn_send_json(c, LXM__MSG_HELLO, g);
    if (rc)
        goto out;

    rc = lxm__conn_expect(c, LXM__MSG_HELLO, &v, err, sizeof(err));
    if (rc)
        goto out;
    proto = lxm__jint(v, "proto", -1);
    if (proto != LXM__PROTO_VERSION) {
        char msg[200];

        if (proto < 0)
            snprintf(msg, sizeof(msg),
                     "peer %s sent a HELLO without a protocol version;"
                     " we speak version %d",
                     lxm__conn_peer(c), LXM__PROTO_VERSION);
        else
            snprintf(msg, sizeof(msg),
                     "peer %s speaks libxlmig protocol version %" PRId64
                     ", we speak version %d",
                     lxm__conn_peer(c), proto, LXM__PROTO_VERSION);
        lxm__conn_set_error(c, "%s", msg);
        /* Tell the peer too (best effort): it may not check. */
        (void)lxm__conn_send_error(c, LXM__MSG_ERROR, LXM_ERROR_PROTOCOL,
                                   "protocol version mismatch: %s speaks %d,"
                                   " you speak %" PRId64,
                                   host && *host ? host : "this host",
                                   LXM__PROTO_VERSION, proto);
        rc = LXM_ERROR_PROTOCOL;
        goto out;
    }
    if (peer_r) {
        *peer_r = v;
        v = NULL;
    }
out:
    yajl_tree_free(v);
    return rc;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
