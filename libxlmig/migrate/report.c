/*
 * report.c - what the migration engine hands back, and the small
 * helpers send.c and receive.c share.
 *
 * Entry points:
 *   lxm__migrate_opts_init()      defaults for lxm__migrate_opts
 *   lxm__migrate_status_name()    "migrated", "failed", ...
 *   lxm__migrate_report_json()    the report's keys into a JSON map
 *   lxm__migrate_codec_caps(), lxm__migrate_compress_check()  codecs
 *   lxm__migrate_now_ms(), lxm__migrate_digest_hex/_parse(),
 *   lxm__migrate_expect(), lxm__migrate_kind_name/_parse()  (internal)
 */
#include <stdio.h>
#include <time.h>

#include "codec/codec.h"
#include "migrate/migrate.h"

void lxm__migrate_opts_init(lxm__migrate_opts *o)
{
    memset(o, 0, sizeof(*o));
    lxm__save_params_init(&o->save);
    o->verify = true;
    o->timeout_ms = 30000;
}

const char *lxm__migrate_status_name(lxm__migrate_status s)
{
    switch (s) {
    case LXM__MIG_MIGRATED:
        return "migrated";
    case LXM__MIG_FAILED:
        return "failed";
    case LXM__MIG_REFUSED:
        return "refused";
    case LXM__MIG_CANCELLED:
        return "cancelled";
    case LXM__MIG_UNKNOWN:
        return "unknown";
    }
    return "unknown";
}

void lxm__migrate_report_json(const lxm__migrate_report *r, yajl_gen g)
{
    lxm__json_str(g, "name", r->name);
    lxm__json_str(g, "status", lxm__migrate_status_name(r->status));
    lxm__json_str(g, "source", r->source);
    lxm__json_str(g, "destination", r->destination);
    lxm__json_str(g, "error", r->error);
    lxm__json_uint(g, "total_ms", r->total_ms);
    lxm__json_uint(g, "downtime_ms", r->downtime_ms);
    lxm__json_uint(g, "rounds", r->rounds);
    lxm__json_uint(g, "pages_sent", r->pages_sent);
    lxm__json_uint(g, "bytes_stream", r->bytes_stream);
    lxm__json_uint(g, "bytes_wire", r->bytes_wire);
    lxm__json_bool(g, "digest_checked", r->digest_checked);
    lxm__json_bool(g, "source_resumed", r->source_resumed);
    lxm__json_uint(g, "gate_wait_ms", r->gate_wait_ms);
    lxm__json_bool(g, "precopy_forced", r->precopy_forced);
    lxm__json_str(g, "codec", r->codec[0] ? r->codec : "none");
    lxm__json_uint(g, "bytes_frames", r->bytes_frames);
    lxm__json_uint(g, "frames", r->frames);
    lxm__json_uint(g, "frames_compressed", r->frames_compressed);
    lxm__json_uint(g, "codec_switches", r->codec_switches);
    lxm__json_uint(g, "prepass_version", r->prepass_version);
    /* stream bytes per STREAM payload byte (1.0 without a codec) */
    lxm__json_key(g, "compress_ratio");
    yajl_gen_double(g, r->bytes_frames
                           ? (double)r->bytes_stream / (double)r->bytes_frames
                           : 1.0);
    if (r->warning[0])
        lxm__json_str(g, "warning", r->warning);
    if (r->auto_choice[0]) {
        lxm__json_str(g, "auto_choice", r->auto_choice);
        lxm__json_uint(g, "auto_link_mbps",
                       (r->auto_link_bps + 500000) / 1000000);
        lxm__json_uint(g, "auto_codec_mbps",
                       (r->auto_codec_bps + 500000) / 1000000);
    }
}

/* ---- codecs (issue 5) ---------------------------------------------- */

const char *const *lxm__migrate_codec_caps(void)
{
    static const char *const caps[] = {
        LXM__CAP_CODEC_PREFIX "zlib",
        LXM__CAP_CODEC_PREFIX "zstd",
        LXM__CAP_CODEC_PREFIX "lz4",
        LXM__CAP_PAGES,
        LXM__CAP_PAGES2, /* xlmigd --codecs: with "pages" (index 3) */
        /* Not a codec, but listed with them (docs/protocol.md "Link
         * probe"): `xlmigd --codecs` with an explicit list leaves it
         * out, as an agent that predates it would. */
        LXM__CAP_PROBE,
        NULL,
    };

    return caps;
}

int lxm__migrate_compress_check(const char *s, char *err, size_t errlen)
{
    lxm__codec_spec spec;

    if (s && !strcmp(s, "auto"))
        return 0;
    if (!s || lxm__codec_parse(s, &spec, err, errlen)) {
        if (err && errlen && !s)
            snprintf(err, errlen, "no codec given");
        return LXM_ERROR_INVAL;
    }
    return 0;
}

/* ---- internals shared by send.c and receive.c ---------------------- */

uint64_t lxm__migrate_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void lxm__migrate_digest_hex(const uint8_t digest[16], char hex[33])
{
    static const char digits[] = "0123456789abcdef";
    int i;

    for (i = 0; i < 16; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 0xf];
    }
    hex[32] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool lxm__migrate_digest_parse(const char *s, uint8_t digest[16])
{
    int i, hi, lo;

    if (!s || strlen(s) != 32)
        return false;
    for (i = 0; i < 16; i++) {
        hi = hexval(s[2 * i]);
        lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        digest[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

int lxm__migrate_expect(lxm__conn *c, uint8_t want, yajl_val *v_r, char *err,
                        size_t err_len, int *code_r)
{
    lxm__frame f;
    yajl_val v = NULL;
    const char *msg;
    int64_t code;
    int rc;

    if (v_r)
        *v_r = NULL;
    if (code_r)
        *code_r = 0;
    if (err && err_len)
        err[0] = '\0';

    rc = lxm__conn_recv(c, &f);
    if (rc)
        goto out;

    if (f.type == LXM__MSG_ERROR || f.type == LXM__MSG_FAILED) {
        msg = NULL;
        code = 0;
        if (!lxm__frame_json(&f, &v)) {
            msg = lxm__jstr(v, "error");
            code = lxm__jint(v, "code", 0);
        }
        if (err && err_len)
            snprintf(err, err_len, "%s",
                     msg ? msg : "failed (no reason given)");
        if (code_r)
            *code_r = (code < 0 && code > -1000) ? (int)code : LXM_ERROR_PEER;
        rc = LXM_ERROR_PEER;
        goto out;
    }
    if (f.type != want) {
        if (err && err_len)
            snprintf(err, err_len, "expected %s, got %s", lxm__msg_name(want),
                     lxm__msg_name(f.type));
        rc = LXM_ERROR_PROTOCOL;
        goto out;
    }
    if (v_r) {
        rc = lxm__frame_json(&f, &v);
        if (rc) {
            if (err && err_len)
                snprintf(err, err_len, "%s is not a JSON object",
                         lxm__msg_name(want));
            goto out;
        }
        *v_r = v;
        v = NULL;
    }
    rc = 0;

out:
    yajl_tree_free(v);
    return rc;
}

const char *lxm__migrate_kind_name(lxm__guest_kind k)
{
    switch (k) {
    case LXM__GUEST_PV:
        return "pv";
    case LXM__GUEST_PVH:
        return "pvh";
    case LXM__GUEST_HVM:
        return "hvm";
    }
    return "unknown";
}

int lxm__migrate_kind_parse(const char *s)
{
    if (!s)
        return -1;
    if (!strcmp(s, "pv"))
        return LXM__GUEST_PV;
    if (!strcmp(s, "pvh"))
        return LXM__GUEST_PVH;
    if (!strcmp(s, "hvm"))
        return LXM__GUEST_HVM;
    return -1;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
