/*
 * proto.h - libxlmig's wire protocol: framed messages over a TCP or
 * unix stream socket, between the CLI and its local xlmigd (control)
 * and between two xlmigd (peer).  Specification: docs/protocol.md.
 *
 * Frame: an 8-byte header then the payload.
 *
 *     0     1     2     3     4     5     6     7 octet
 *   +-----------------------+-----+-----+-----------+
 *   | length (LE)           | type|codec| reserved  |
 *   +-----------------------+-----+-----+-----------+
 *   | payload (length bytes): JSON, or stream bytes  |
 *
 * length <= LXM__FRAME_MAX, checked before anything is allocated;
 * reserved must be 0.  Every message but STREAM carries a JSON object
 * (possibly "{}").  codec is 0 (none) except on STREAM frames, where the
 * compression issue defines further ids.
 *
 * Files: transport/conn.c (sockets, framing, timeouts, rate limit),
 * transport/json.c (JSON payload helpers over yajl).
 */
#ifndef LXM_PROTO_H
#define LXM_PROTO_H

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "libxlmig_internal.h"

#define LXM__PROTO_VERSION 1
#define LXM__DEFAULT_PORT 8702 /* xlmigd peer port (TCP) */
#define LXM__DEFAULT_CONTROL "/run/xlmig/xlmigd.sock"
#define LXM__FRAME_HDR_LEN 8
#define LXM__FRAME_MAX (16u << 20)
#define LXM__STREAM_CHUNK (256u << 10) /* stream bytes per STREAM frame */

/* Frame types. */
enum {
    /* both channels */
    LXM__MSG_HELLO = 0x01, /* {"proto":1,"software":..,"role":..,
                                 *  "host":..,"capabilities":[..]} */
    LXM__MSG_ERROR = 0x02, /* {"error":"one line","code":-N} */
    /* control channel: CLI <-> local xlmigd */
    LXM__MSG_REQUEST = 0x03, /* {"cmd":"list"|"host-info"|"migrate"|
                                 *  "sim-create"|"sim-destroy"|..., ...} */
    LXM__MSG_REPLY = 0x04,   /* final answer to a REQUEST */
    LXM__MSG_EVENT = 0x05,   /* progress while a REQUEST runs */
    /* peer channel: source xlmigd -> destination xlmigd and back */
    LXM__MSG_MIGRATE = 0x10,    /* {"name","uuid","memory_bytes","vcpus",
                                 *  "kind","live","source_host"} */
    LXM__MSG_ACCEPT = 0x11,     /* {} : send the stream */
    LXM__MSG_STREAM = 0x12,     /* raw stream bytes (codec byte) */
    LXM__MSG_STREAM_END = 0x13, /* {"bytes":N[,"digest":"hex"]} */
    LXM__MSG_READY = 0x14,      /* {"domid":N[,"digest":"hex"]}: restored,
                                 * paused ("domain received, ready to
                                 * unpause") */
    LXM__MSG_GO = 0x15,         /* {} ("domain is yours, you are cleared
                                 * to unpause") */
    LXM__MSG_RUNNING = 0x16,    /* {"domid":N}: unpaused on the dest */
    LXM__MSG_FAILED = 0x17,     /* {"error","stage"}: either side */
};

/* Codec ids on STREAM frames (issue 5 fills in the others). */
enum {
    LXM__CODEC_NONE = 0,
    LXM__CODEC_ZLIB = 1,
    LXM__CODEC_ZSTD = 2,
    LXM__CODEC_LZ4 = 3,
    LXM__CODEC_PAGES = 0x10, /* page-aware pre-pass */
    /* Issue 5 (codec/frame.c, docs/compression.md): the codec byte of
     * a STREAM frame is the block codec id (bits 0-3) | LXM__CODEC_PAGES
     * when the payload holds pre-pass tokens; LXM__CODEC_END is the
     * compressed stream's end marker. */
    LXM__CODEC_ID_MASK = 0x0f,
    LXM__CODEC_END = 0x0f,
};

const char *lxm__msg_name(uint8_t type);

/*
 * Control requests (REQUEST {"cmd": ...}), answered by one REPLY or one
 * ERROR {"error","code"}; "migrate" sends EVENT frames before its REPLY.
 *
 *   list         -> {"domains":[{"name","domid","state","type",
 *                    "memory_bytes","vcpus","dirty_rate"}]}
 *                   state: "running"|"paused"|"suspended"
 *                   type: "pv"|"pvh"|"hvm"
 *   host-info    -> {"hostname","backend","xen_version","cpu_vendor",
 *                    "total_memory","free_memory","nr_cpus","nr_domains",
 *                    "xen_major","xen_minor","xen_extra" (".7"),
 *                    "featureset":[16 words]}
 *   domain-info {"domain"} -> one entry as in list, plus "uuid",
 *                    "nr_pci","nr_vusb","nomigrate","on_boot",
 *                    "ha_protected","featureset":[16 words]
 *   migrate {"domain","destination":"HOST:PORT","live":bool,
 *            "policy":"downtime"|"xen"|"suspend-if-needed"|
 *            "abort-if-busy","downtime_ms","max_rounds",
 *            "bandwidth" (bytes/s, 0 none),"verify":bool}
 *                -> EVENT {"event":"progress","round","pages_sent",
 *                          "pages_total","dirty_rate","bytes_wire",
 *                          "elapsed_ms","eta_ms","suspended"}...
 *                -> REPLY {the lxm__migrate_report_json keys}; a failed
 *                   migration is a REPLY with "status" != "migrated"
 *   cancel {"domain"} -> {"migrations": n}: this agent's migrations of
 *                   that domain (name or domid) are cancelled, honoured
 *                   before the commit point; their own "migrate"
 *                   clients get the reports.  NOTFOUND: none running
 *   sim-create {"name","memory_bytes","vcpus","type","dirty_rate"
 *               (pages/s),"working_set" (bytes),"mix" (spec string),
 *               "seed","nr_pci","nr_vusb","nomigrate","on_boot",
 *               "ha_protected"}   -> {"name","domid"}
 *   sim-destroy {"domain"}         -> {}
 *   sim-digest {"domain"}          -> {"digest":"32 hex digits"}
 *   shutdown                       -> {} then the agent exits
 */

/* ---- connections (transport/conn.c) ------------------------------- */

typedef struct lxm__conn lxm__conn;

typedef struct lxm__frame {
    uint8_t type;
    uint8_t codec;
    uint32_t length;
    const uint8_t *payload; /* borrowed: valid until the next recv
                                 * on the same connection */
} lxm__frame;

/*
 * Addresses: "HOST:PORT" (TCP; HOST may be a name, IPv4, or [IPv6]),
 * ":PORT" (TCP on 127.0.0.1), or a path containing '/' (unix socket).
 */
bool lxm__addr_is_unix(const char *addr);

/* *c_r: caller frees with lxm__conn_free().  timeout_ms: for connect
 * and, later, for every send/recv (0 = none). */
int lxm__conn_connect(const char *addr, uint32_t timeout_ms,
                      xentoollog_logger *lg, lxm__conn **c_r);
/* Listen on addr; *fd_r: the listening socket (caller closes).
 * bound_r (NULL ok): the address actually bound (port 0 resolved). */
int lxm__conn_listen(const char *addr, int *fd_r, char *bound_r,
                     size_t bound_len, xentoollog_logger *lg);
/* Accept one connection on a listening fd. */
int lxm__conn_accept(int listen_fd, uint32_t timeout_ms, xentoollog_logger *lg,
                     lxm__conn **c_r);
/* Wrap an already connected fd (taken over: closed by _free). */
int lxm__conn_from_fd(int fd, uint32_t timeout_ms, xentoollog_logger *lg,
                      lxm__conn **c_r);
void lxm__conn_free(lxm__conn *c); /* NULL ok; closes */

int lxm__conn_fd(const lxm__conn *c);
const char *lxm__conn_peer(const lxm__conn *c); /* "127.0.0.1:4242" */
void lxm__conn_set_timeout(lxm__conn *c, uint32_t timeout_ms);
/* Cap outgoing payload bytes per second (0 = unlimited): token bucket
 * applied to STREAM frames, for `xlmig migrate --bandwidth`. */
void lxm__conn_set_rate(lxm__conn *c, uint64_t bytes_per_sec);
/* Bytes sent/received on the socket, frame headers included. */
uint64_t lxm__conn_bytes_out(const lxm__conn *c);
uint64_t lxm__conn_bytes_in(const lxm__conn *c);

int lxm__conn_send(lxm__conn *c, uint8_t type, uint8_t codec,
                   const void *payload, uint32_t length);
/*
 * Receive one frame.  LXM_ERROR_CONNECT when the peer closed the
 * connection (cleanly or not), LXM_ERROR_TIMEOUT, LXM_ERROR_PROTOCOL
 * for a bad header (length over the cap, reserved bits, unknown type).
 */
int lxm__conn_recv(lxm__conn *c, lxm__frame *f);
/* Shut down both directions (wakes a thread blocked in recv). */
void lxm__conn_shutdown(lxm__conn *c);

/* ---- JSON payloads (transport/json.c) ----------------------------- */

/* A generator with an open top-level map: add keys, then send. */
yajl_gen lxm__json_new(void);
void lxm__json_str(yajl_gen g, const char *key, const char *val);
void lxm__json_int(yajl_gen g, const char *key, int64_t val);
void lxm__json_uint(yajl_gen g, const char *key, uint64_t val);
void lxm__json_bool(yajl_gen g, const char *key, bool val);
void lxm__json_key(yajl_gen g, const char *key); /* then a yajl_gen_* */
/* Close the map, send as one frame of type, free g (always). */
int lxm__conn_send_json(lxm__conn *c, uint8_t type, yajl_gen g);
/* {"error": msg, "code": rc} as a frame of type (ERROR or FAILED). */
int lxm__conn_send_error(lxm__conn *c, uint8_t type, int rc, const char *fmt,
                         ...) LXM_PRINTF(4, 5);

/* Parse a frame's JSON object; *v_r: caller yajl_tree_free()s.
 * LXM_ERROR_PROTOCOL if it is not a JSON object. */
int lxm__frame_json(const lxm__frame *f, yajl_val *v_r);
/* Field accessors: NULL/def when absent or of another type. */
const char *lxm__jstr(yajl_val obj, const char *key);
int64_t lxm__jint(yajl_val obj, const char *key, int64_t def);
bool lxm__jbool(yajl_val obj, const char *key, bool def);
yajl_val lxm__jget(yajl_val obj, const char *key);

/*
 * Send our HELLO {"proto","software","role","host","capabilities"} and
 * read the peer's.  LXM_ERROR_PROTOCOL on another protocol version (the
 * message names both).  *peer_r (NULL ok): the peer's HELLO, caller
 * frees.  role: "cli", "agent", "peer".
 */
int lxm__proto_hello(lxm__conn *c, const char *role, const char *host,
                     yajl_val *peer_r);

/*
 * Wait for a frame of type want.  An ERROR or FAILED frame instead is
 * turned into LXM_ERROR_PEER with its message copied to err (NULL ok,
 * err_len bytes); any other type is LXM_ERROR_PROTOCOL.  On success *v_r
 * (NULL ok) gets the parsed JSON.
 */
int lxm__conn_expect(lxm__conn *c, uint8_t want, yajl_val *v_r, char *err,
                     size_t err_len);

/* ---- additions (transport, issue 3) -------------------------------- */

/* The last error on c as one line, e.g. "peer 10.0.0.2:8702 closed the
 * connection" ("" if none).  Borrowed: valid until the next call on c
 * by the same thread. */
const char *lxm__conn_last_error(const lxm__conn *c);
/* Record a one-line error as c's last error and log it once through
 * c's logger (for callers that detect a protocol error themselves). */
void lxm__conn_set_error(lxm__conn *c, const char *fmt, ...) LXM_PRINTF(2, 3);

/* ---- additions (engine, issue 3 item 10) -------------------------- */

struct iovec;
/* Send one STREAM frame whose payload is iov[0..n) concatenated (at
 * most LXM__FRAME_MAX bytes), straight from where the bytes are. */
int lxm__conn_sendv(lxm__conn *c, uint8_t type, uint8_t codec,
                    const struct iovec *iov, int n);

/* ---- additions (codec negotiation, issue 5) ------------------------- */

/*
 * HELLO capabilities naming the codecs an agent can decode
 * (docs/protocol.md "Codecs"): "codec:zlib", "codec:zstd", "codec:lz4",
 * "codec:pages" (the page pre-pass) and "codec:pages2" (its token
 * version 2: deltas against zeros).  A sender uses a codec only when
 * the peer listed it, and pre-pass version 2 only with "codec:pages2".
 */
#define LXM__CAP_CODEC_PREFIX "codec:"
#define LXM__CAP_PAGES "codec:pages"
#define LXM__CAP_PAGES2 "codec:pages2"

/* As lxm__proto_hello(), listing caps (NULL-terminated array; NULL ok:
 * none) in our "capabilities". */
int lxm__proto_hello_caps(lxm__conn *c, const char *role, const char *host,
                          const char *const *caps, yajl_val *peer_r);
/* Does the HELLO hello (NULL ok) list capability cap? */
bool lxm__hello_has_cap(yajl_val hello, const char *cap);

struct lxm__encoder;
struct lxm__codec_spec;
/* codec/pipeline.c (declared here: codec.h is frozen).  Switch a
 * running encoder's block codec between frames: what was fed so far is
 * sent with the old one first (as lxm__encoder_flush).  Errors as
 * lxm__encoder_flush, LXM_ERROR_INVAL for an unknown codec. */
int lxm__encoder_set_spec(struct lxm__encoder *e,
                          const struct lxm__codec_spec *spec);

/* ---- additions (auto link probe, issue 5 item 4) ------------------- */

/*
 * docs/protocol.md "Link probe": between ACCEPT and the first STREAM
 * frame a source whose `auto` must choose between the raw and the codec
 * path may measure the link, only when the destination's HELLO lists
 * LXM__CAP_PROBE:
 *   PROBE (filler bytes, discarded) ...  ->
 *                                        <-  PROBE_ACK {"bytes":N} each
 *   PROBE_END {"codec": "none" | MIGRATE's codec}  ->
 * then STREAM as usual, raw when PROBE_END said "none".
 */
enum {
    LXM__MSG_PROBE = 0x18,     /* filler bytes, 1..LXM__FRAME_MAX */
    LXM__MSG_PROBE_ACK = 0x19, /* {"bytes": probe bytes read so far} */
    LXM__MSG_PROBE_END = 0x1a, /* {"codec": what the stream uses} */
};
#define LXM__CAP_PROBE "probe"
/* Most probe bytes a destination reads in one migration. */
#define LXM__PROBE_MAX (64u << 20)

#endif /* LXM_PROTO_H */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
