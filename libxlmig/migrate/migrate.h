/*
 * migrate.h - the migration engine: one VM from this host's backend to
 * a peer xlmigd (send) and from a peer into this host's backend
 * (receive), with xl's commit sequence.  Files: migrate/send.c,
 * migrate/receive.c, migrate/report.c; the pre-copy policy is
 * migrate/precopy.c (declared in backend/backend.h).
 *
 * Sequence (docs/protocol.md has the frames):
 *
 *   sender                                   receiver
 *   HELLO                       ->  <-        HELLO
 *   MIGRATE {name, memory, ...} ->
 *                               <-  ACCEPT  | ERROR (pre-check: name in
 *                                             use, memory) -> VM untouched
 *   backend save -> pipe -> reader (validates) -> STREAM frames ->
 *       receiver: reader (validates) -> pipe -> backend restore of
 *       "NAME--incoming" (paused)
 *   STREAM_END {bytes, digest}  ->
 *                               <-  READY {domid, digest} | FAILED
 *   [digests compared where the backend has them: a mismatch fails]
 *   rename source "NAME--migratedaway"
 *   GO                          ->  rename "NAME", unpause
 *                               <-  RUNNING | FAILED (dest copy destroyed)
 *   destroy source copy             (on FAILED: rename back, resume)
 *
 * Before GO every failure resumes the VM on the source, and the
 * receiver destroys whatever it restored.  After GO, FAILED from the
 * receiver means it destroyed its copy, so the source resumes; a lost
 * connection leaves the source copy suspended as NAME--migratedaway and
 * the report names both hosts (the VM may be running on the
 * destination): nobody can know, exactly as with xl.
 *
 * Threads: each call runs on the caller's thread plus one helper thread
 * (the backend's save or restore, joined before returning).  Progress
 * callbacks run on either; they must not block for long.
 */
#ifndef LXM_MIGRATE_H
#define LXM_MIGRATE_H

#include "backend/backend.h"
#include "transport/proto.h"

/* Ask a running lxm__migrate_send() on another thread to stop (only
 * honoured before GO; the VM stays on, or resumes on, the source). */
typedef struct lxm__migrate_cancel {
    volatile int requested;
} lxm__migrate_cancel;

typedef struct lxm__migrate_opts {
    lxm__save_params save;
    bool verify;                 /* compare memory digests before GO when
                                  * the backend has them (default true;
                                  * costs downtime: one pass over memory
                                  * on each side) */
    lxm__migrate_cancel *cancel; /* NULL ok; borrowed */
    uint64_t bandwidth;          /* stream bytes/s to the peer; 0 = no cap */
    uint32_t timeout_ms;         /* each network wait; 0 = 30000 */
    const char *host_name;       /* this host, for messages; NULL ok */
    /* Test hook, NULL ok: called as stream bytes pass (side "send" or
     * "receive", total so far).  xlmigd uses it for LXM_FAULT. */
    void (*on_stream_bytes)(void *opaque, const char *side, uint64_t bytes);
    void *hook_opaque;
    /* Addition (engine, issue 3): where the engine logs; NULL ok (then
     * only report.error says what went wrong); borrowed. */
    xentoollog_logger *logger;
    /* Additions (stream compression, issue 5; docs/compression.md). */
    const char *compress;       /* "none", "auto", or a codec spec
                                 * ("zstd:3"); NULL = "none"; borrowed */
    unsigned int codec_threads; /* encoder/decoder workers; 0 = online
                                 * CPUs, at most LXM__CODEC_THREADS_MAX */
    uint64_t codec_cache_bytes; /* pre-pass delta cache; 0 = default */
    /* Receive: the codecs this host accepts, as HELLO capabilities
     * (NULL = all built in, lxm__migrate_codec_caps()).  Borrowed. */
    const char *const *codec_caps;
    /* Test hook, NULL ok: called with each compressed STREAM frame
     * (header + payload, writable, len bytes) just before it is sent;
     * raw: stream bytes fed so far.  xlmigd uses it for LXM_FAULT
     * send-corrupt-after. */
    void (*on_stream_frame)(void *opaque, uint8_t *frame, size_t len,
                            uint64_t raw);
    /* Addition (issue 5): `auto` to a peer on this host (a loopback
     * connection) sends raw without probing, since no codec beats a
     * memory copy; true: probe it like any other peer (tests). */
    bool auto_probe_same_host;
} lxm__migrate_opts;

void lxm__migrate_opts_init(lxm__migrate_opts *o);

typedef struct lxm__migrate_progress {
    uint32_t round;
    uint64_t pages_sent;  /* this round */
    uint64_t pages_total; /* this round */
    uint64_t dirty_rate;  /* pages/s */
    uint64_t bytes_wire;  /* so far */
    uint64_t elapsed_ms;
    uint64_t eta_ms; /* 0 = unknown */
    bool suspended;  /* stop-and-copy under way */
} lxm__migrate_progress;

typedef void lxm__migrate_progress_fn(void *opaque,
                                      const lxm__migrate_progress *p);

typedef enum lxm__migrate_status {
    LXM__MIG_MIGRATED = 0,  /* runs on the destination only */
    LXM__MIG_FAILED = 1,    /* runs on the source only */
    LXM__MIG_REFUSED = 2,   /* never started; runs on the source */
    LXM__MIG_CANCELLED = 3, /* stopped by request; on the source */
    LXM__MIG_UNKNOWN = 4,   /* lost after GO: see report.error */
} lxm__migrate_status;

typedef struct lxm__migrate_report {
    lxm__migrate_status status;
    int rc;          /* 0 or LXM_ERROR_* */
    char error[256]; /* one line, "" on success */
    char name[LXM__NAME_MAX];
    char source[LXM__NAME_MAX];
    char destination[LXM__NAME_MAX];
    uint32_t dest_domid;
    uint64_t total_ms;    /* request to RUNNING */
    uint64_t downtime_ms; /* paused on source -> RUNNING received */
    uint32_t rounds;
    uint64_t pages_sent;
    uint64_t bytes_stream; /* libxl stream bytes */
    uint64_t bytes_wire;   /* socket bytes, frames included */
    bool digest_checked;   /* memory digests compared and equal */
    bool source_resumed;   /* failure: the VM runs on the source */
    /* Additions (issues 3 and 6). */
    uint64_t gate_wait_ms; /* waited for the host's stop-and-copy gate */
    bool precopy_forced;   /* pre-copy stopped at max_rounds without
                            * converging (a warning was logged) */
    /* Additions (issue 5): the stream codec. */
    char codec[64];             /* "none", "lz4", "auto(lz4)", ... */
    char warning[256];          /* e.g. a codec the peer lacks; "" */
    uint64_t bytes_frames;      /* STREAM payload bytes */
    uint64_t frames;            /* compressed-stream frames (end incl.) */
    uint64_t frames_compressed; /* of which a block codec shrank */
    uint32_t codec_switches;    /* auto: times it changed mode */
    uint8_t prepass_version;    /* page pre-pass tokens: 1, 2; 0: none */
    /* Additions (issue 5 item 4): what `auto` chose before the stream
     * (autocodec.c); auto_choice "" when auto was not asked for. */
    char auto_choice[24];    /* "raw", "codec", "codec (no probe)" */
    uint64_t auto_link_bps;  /* probed link, bytes/s; 0 = not probed */
    uint64_t auto_codec_bps; /* this host's codec path, bytes/s;
                              * 0 = not estimated */
} lxm__migrate_report;

const char *lxm__migrate_status_name(lxm__migrate_status s);
/* Adds the report's keys to an open JSON map: name, status, source,
 * destination, error, total_ms, downtime_ms, rounds, pages_sent,
 * bytes_stream, bytes_wire, digest_checked, source_resumed,
 * gate_wait_ms, precopy_forced; and (issue 5) codec, bytes_frames,
 * frames, frames_compressed, compress_ratio, codec_switches, warning
 * (when set); with auto_choice set: auto_choice, auto_link_mbps and
 * auto_codec_mbps (10^6 bytes/s, rounded; 0 = unknown). */
void lxm__migrate_report_json(const lxm__migrate_report *r, yajl_gen g);

/*
 * Move domain (name or domid) to the xlmigd at dest_addr.  Returns 0
 * when it runs on the destination; otherwise the error, with *rep
 * saying where the VM is.  rep is always filled in.
 */
int lxm__migrate_send(const lxm__backend_ops *ops, lxm__backend *b,
                      const char *domain, const char *dest_addr,
                      const lxm__migrate_opts *o,
                      lxm__migrate_progress_fn *progress, void *opaque,
                      lxm__migrate_report *rep);

/*
 * Serve one incoming migration on c, whose MIGRATE frame (parsed: req)
 * has just been read.  Runs the pre-checks, then the receive and the
 * commit.  c is borrowed.  rep (NULL ok) says what happened.
 */
int lxm__migrate_receive(const lxm__backend_ops *ops, lxm__backend *b,
                         lxm__conn *c, yajl_val req, const lxm__migrate_opts *o,
                         lxm__migrate_report *rep);

/* ---- Addition (engine, issue 3): internals shared by send.c,
 *      receive.c and report.c; not for callers of the engine. ---- */

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t lxm__migrate_now_ms(void);
/* 16-byte digest <-> 32 lowercase hex digits (hex: 33 bytes). */
void lxm__migrate_digest_hex(const uint8_t digest[16], char hex[33]);
/* false unless s is exactly 32 hex digits. */
bool lxm__migrate_digest_parse(const char *s, uint8_t digest[16]);
/*
 * Receive one frame of type want, as lxm__conn_expect(), but an ERROR
 * or FAILED frame also yields the peer's "code" in *code_r (NULL ok;
 * LXM_ERROR_PEER when it sent none).  Connection errors are returned
 * as they are (LXM_ERROR_CONNECT, _TIMEOUT, _PROTOCOL).
 */
int lxm__migrate_expect(lxm__conn *c, uint8_t want, yajl_val *v_r, char *err,
                        size_t err_len, int *code_r);
/* Addition (issue 5): the HELLO capabilities of the codecs this build
 * decodes (NULL-terminated, static): "codec:zlib", "codec:zstd",
 * "codec:lz4", "codec:pages"; and (issue 5 item 4) "probe": this end
 * answers the link probe (lxm__migrate_receive() always does). */
const char *const *lxm__migrate_codec_caps(void);
/* "none", "auto" or a codec spec: 0, else LXM_ERROR_INVAL with one line
 * in err (NULL ok). */
int lxm__migrate_compress_check(const char *s, char *err, size_t errlen);

/* ---- Addition (issue 5 item 4): `auto` picks the raw or the codec
 *      path before the stream (migrate/autocodec.c; docs/compression.md
 *      "auto"). ---- */

typedef enum lxm__auto_choice {
    LXM__AUTO_CODEC = 0, /* pre-pass + lz4 switched per window */
    LXM__AUTO_RAW = 1,   /* the whole stream as `--compress=none` */
} lxm__auto_choice;

/* The codec path must be at least this many times faster than the link
 * to be chosen: it shares the CPUs with the saver, the sender's
 * framing and (on one host) the receiver's decoding. */
#define LXM__AUTO_MARGIN 2u

/*
 * Pure: link_bps, the probed link (bytes/s; 0 = unknown); cap_bps, the
 * --bandwidth cap (0 = none); codec_bps, what this host's codec path
 * takes (0 = unknown).  RAW when codec_bps < LXM__AUTO_MARGIN x
 * min(link, cap); CODEC otherwise, and whenever a rate is unknown (the
 * behaviour of old: the per-window switch decides alone).
 */
lxm__auto_choice lxm__auto_decide(uint64_t link_bps, uint64_t cap_bps,
                                  uint64_t codec_bps);
/*
 * Bytes/s of the codec path (page pre-pass + lz4 on threads workers;
 * 0 = online CPUs) on this host: measured on a synthetic 6 MiB stream
 * with a realistic page mix (40% zero, 20% code, 20% text, 20% random)
 * the first time a worker count is asked for, then cached for 60 s
 * (a few ms each time on an idle host; the sample is built once per
 * process).  0 if it could not be measured.
 * Thread-safe; lg NULL ok.
 */
uint64_t lxm__auto_codec_rate(unsigned int threads, xentoollog_logger *lg);

/* "pv", "pvh", "hvm" and back (-1 when unknown). */
const char *lxm__migrate_kind_name(lxm__guest_kind k);
int lxm__migrate_kind_parse(const char *s);

#endif /* LXM_MIGRATE_H */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
