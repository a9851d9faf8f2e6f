/*
 * send.c - the sending half of a migration: lxm__migrate_send().
 *
 * Order (migrate.h has the whole sequence and the receiver's side):
 *   1. pre-checks on this host: the domain runs, and nothing pins it
 *      here (nomigrate, PCI passthrough, vUSB)          -> REFUSED
 *   2. connect, HELLO, MIGRATE -> ACCEPT | ERROR         -> REFUSED
 *   3. the saver thread runs ops->save() into a pipe; this thread reads
 *      the pipe, validates every byte with a stream reader (a backend
 *      bug must not reach the peer) and sends STREAM frames.  Fast path
 *      (a backend with lxm__backend_fastpath_of(): the sim): the save
 *      runs on this thread and its stream writer hands each record to
 *      sink_send(), which validates it and sends it from where it is
 *      (sendmsg with iovecs): no pipe, no saver thread.  Both paths go
 *      through send_stream(), where stream bytes become frames
 *   The stop-and-copy gate (o->save.gate, NULL ok) is taken by the
 *   backend before it pauses the guest; after a successful save this
 *   file releases it: on RUNNING, when the source resumes, or on the
 *   way out whatever happened (lost after GO too)
 *   4. join the saver (domain now SUSPENDED), STREAM_END -> READY
 *   5. compare memory digests, rename to NAME--migratedaway, GO
 *      (the commit point)
 *   6. RUNNING -> destroy the source copy               -> MIGRATED
 *      FAILED  -> rename back, resume                    -> FAILED
 *      nothing -> keep the source copy suspended         -> UNKNOWN
 * Any failure before GO resumes the VM here (source_resumed), and the
 * peer hears FAILED so that it destroys what it restored.
 *
 * Threads: the caller's thread does all network I/O and calls every
 * progress callback; the saver thread only runs ops->save().  They
 * share the "saver" group of struct sender under ->lock, a leaf lock:
 * nothing is called with it held.
 */
#define _GNU_SOURCE /* pipe2, pthread_setname_np */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "codec/codec.h"
#include "migrate/migrate.h"

#define AWAY_SUFFIX "--migratedaway"
#define PROGRESS_EVERY_MS 100
/* Largest STREAM frame built from the fast path's records. */
#define STREAM_FRAME_MAX (4u << 20)
#define PIPE_SIZE (1 << 20) /* the saver's pipe (F_SETPIPE_SZ) */

/* `auto` (docs/compression.md): stream bytes per decision window, per
 * probe of the other mode, and windows between probes. */
#define AUTO_WINDOW (32u << 20)
#define AUTO_PROBE (4u << 20)
#define AUTO_PROBE_EVERY 8
/* Hysteresis: the estimated speed-up needed to start compressing, and
 * below which it stops. */
#define AUTO_GAIN_ON 1.2
#define AUTO_GAIN_OFF 1.05
/* The link probe before the stream (docs/protocol.md "Link probe"): one
 * frame to warm the connection up (and to stop early on a slow link),
 * then the measured ones. */
#define LINK_FRAME (1u << 20)
#define LINK_ROUNDS 3
#define LINK_ROUND_FRAMES 2
#define LINK_SLOW_NS (250u * 1000000u) /* first frame slower: done */

/*
 * `auto`: the pre-pass always runs; the block codec is switched between
 * a fast one and none per window of stream bytes.  Estimates (0 =
 * unknown): net, the wire bytes/s the socket takes while it is the
 * bottleneck (bytes per second spent blocked in send); codec, token
 * bytes/s through the block codec (per-worker speed x workers); ratio,
 * token bytes per frame byte with the codec.  Compressing pays when
 * min(codec, ratio x net) > net.  Caller's thread only.
 */
typedef struct auto_ctl {
    lxm__codec_spec fast;
    bool on;      /* this window compresses */
    bool pref;    /* the mode the estimates chose */
    uint64_t end; /* stream bytes at which this window ends */
    unsigned int since_probe;
    uint32_t switches;
    double net, codec, ratio;
    /* Measured end to end: token bytes per wall second of the last
     * compressed and the last raw window (0 = none yet). */
    double tput_on, tput_off;
    /* at the window's start */
    uint64_t t0_ns, send_ns, frame_bytes;
    lxm__encoder_stats st;
} auto_ctl;

typedef struct sender {
    /* Immutable after setup. */
    const lxm__backend_ops *ops;
    lxm__backend *b;
    const lxm__migrate_opts *o;
    lxm__migrate_progress_fn *progress; /* NULL ok */
    void *opaque;
    lxm__migrate_report *rep;
    xentoollog_logger *lg;
    lxm__domain_info info;
    char domid_str[16];       /* for domain_info() after a rename */
    char away[LXM__NAME_MAX]; /* NAME--migratedaway */
    char dest[LXM__NAME_MAX]; /* the peer's host name, for messages */
    const char *dest_addr;
    uint64_t t0; /* entry, ms */
    /* o->save, with fixed_ms from the HELLO round trip (set before the
     * save starts, read-only after). */
    lxm__save_params save;

    /* Owned by the caller's thread. */
    lxm__conn *c;
    bool conn_ok; /* worth sending FAILED on */
    int rfd;      /* pipe read end; -1 */
    lxm_stream_reader *reader;
    uint64_t stream_t0; /* ms */
    uint64_t stream_bytes;
    uint64_t eof_ms;     /* pipe EOF: fallback downtime start */
    uint64_t pages;      /* pfns in PAGE_DATA records */
    uint32_t iterations; /* inferred from pfn order */
    uint64_t last_pfn;
    uint64_t last_progress_ms;
    uint32_t last_round;
    bool last_suspended;
    bool renamed;   /* source is NAME--migratedaway */
    bool gate_held; /* a stop-and-copy gate slot is ours to release */
    const lxm__backend_fastpath *fast; /* NULL: save into a pipe */

    /* The stream codec (issue 5).  enc NULL: raw STREAM frames, the
     * path of old (no copy, no thread). */
    bool use_codec; /* negotiated: enc is made in stream() */
    bool prepass;
    uint8_t prepass_version; /* 0: newest; 1: the peer lacks pages2 */
    bool autom;              /* `auto` */
    bool peer_probe;         /* the peer's HELLO lists LXM__CAP_PROBE */
    lxm__codec_spec spec;
    lxm__encoder *enc;
    uint8_t *scratch; /* for o->on_stream_frame; NULL */
    uint64_t send_ns; /* spent sending compressed frames */
    uint64_t frame_bytes, frames, frames_compressed;
    uint32_t enc_round;
    bool enc_suspended;
    auto_ctl au;

    /* The saver: started once, joined once.  wfd belongs to the saver
     * thread from its start (it closes it). */
    pthread_t saver;
    bool saver_started;
    int wfd;

    /* Protected by lock. */
    pthread_mutex_t lock;
    lxm__save_progress sp; /* latest from the backend */
    uint64_t suspend_ms;   /* 0: not suspended yet */
    bool stop;             /* make the saver's progress abort */
    bool saver_done;
    int save_rc;
} sender;

static void set_error(sender *s, int rc, const char *fmt, ...) LXM_PRINTF(3, 4);
static void report_progress(sender *s, bool force);

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The first error wins: later ones are consequences. */
static void set_error(sender *s, int rc, const char *fmt, ...)
{
    va_list ap;

    if (!s->rep->rc)
        s->rep->rc = rc;
    if (s->rep->error[0])
        return;
    va_start(ap, fmt);
    vsnprintf(s->rep->error, sizeof(s->rep->error), fmt, ap);
    va_end(ap);
    LXM_LOG_ERROR(s->lg, "migrate %s: %s", s->rep->name, s->rep->error);
}

static bool cancelled(const sender *s)
{
    return s->o->cancel &&
           __atomic_load_n(&s->o->cancel->requested, __ATOMIC_RELAXED);
}

static uint64_t wire_bytes(const sender *s)
{
    if (!s->c)
        return 0;
    return lxm__conn_bytes_out(s->c) + lxm__conn_bytes_in(s->c);
}

/* ---- progress ------------------------------------------------------ */

/* Saver thread. */
static int save_progress(void *opaque, const lxm__save_progress *p)
{
    sender *s = opaque;
    int stop;

    pthread_mutex_lock(&s->lock);
    s->sp = *p;
    if (p->suspended && !s->suspend_ms)
        s->suspend_ms = lxm__migrate_now_ms();
    stop = s->stop;
    pthread_mutex_unlock(&s->lock);

    return stop || cancelled(s);
}

/* The fast path: the save runs on the caller's thread, so progress is
 * passed on from here too. */
static int save_progress_direct(void *opaque, const lxm__save_progress *p)
{
    sender *s = opaque;
    int stop = save_progress(opaque, p);

    report_progress(s, false);
    return stop;
}

/* Caller's thread: pass progress on, at most every PROGRESS_EVERY_MS
 * unless the round or the suspended flag changed. */
static void report_progress(sender *s, bool force)
{
    lxm__migrate_progress p;
    lxm__save_progress sp;
    uint64_t now = lxm__migrate_now_ms(), left, rate, st_ms;
    bool suspended;

    if (!s->progress)
        return;

    pthread_mutex_lock(&s->lock);
    sp = s->sp;
    suspended = s->suspend_ms != 0;
    pthread_mutex_unlock(&s->lock);

    if (!force && now - s->last_progress_ms < PROGRESS_EVERY_MS &&
        sp.round == s->last_round && suspended == s->last_suspended)
        return;
    s->last_progress_ms = now;
    s->last_round = sp.round;
    s->last_suspended = suspended;

    memset(&p, 0, sizeof(p));
    p.round = sp.round;
    p.pages_sent = sp.pages_sent;
    p.pages_total = sp.pages_total;
    p.dirty_rate = sp.dirty_rate;
    p.bytes_wire = wire_bytes(s);
    p.elapsed_ms = now - s->t0;
    p.suspended = suspended;
    /* ETA of this round from the stream's average speed so far. */
    st_ms = s->stream_t0 ? now - s->stream_t0 : 0;
    if (st_ms && s->stream_bytes && sp.pages_total > sp.pages_sent) {
        rate = s->stream_bytes * 1000 / st_ms; /* bytes/s */
        left = (sp.pages_total - sp.pages_sent) * LXM_PAGE_SIZE;
        if (rate)
            p.eta_ms = left * 1000 / rate;
    }
    s->progress(s->opaque, &p);
}

/* Reader callback: count pages and infer pre-copy iterations. */
static int on_stream_event(void *opaque, const lxm_stream_event *ev)
{
    sender *s = opaque;
    uint64_t first;

    if (ev->kind != LXM_EV_RECORD || ev->layer != LXM_LAYER_LIBXC ||
        ev->u.record.type != LXM_LIBXC_PAGE_DATA || !ev->u.record.count ||
        !ev->u.record.pfns)
        return 0;
    s->pages += ev->u.record.count;
    first = ev->u.record.pfns[0] & LXM_PFN_MASK;
    if (!s->iterations || first <= s->last_pfn)
        s->iterations++;
    s->last_pfn = ev->u.record.pfns[ev->u.record.count - 1] & LXM_PFN_MASK;
    return 0;
}

/* ---- the saver thread ---------------------------------------------- */

static void *saver_main(void *arg)
{
    sender *s = arg;
    sigset_t set;
    int rc;

    pthread_setname_np(pthread_self(), "lxm-save");
    /* When this thread's reader gives up, writing into the pipe must
     * fail with EPIPE, not kill the process: SIGPIPE is blocked on this
     * thread only (a pending one goes away with the thread), so the
     * library installs no handler and touches no other thread. */
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    rc = s->ops->save(s->b, s->info.domid, s->wfd, &s->save, save_progress, s);
    close(s->wfd);

    pthread_mutex_lock(&s->lock);
    s->save_rc = rc;
    s->saver_done = true;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Join the saver; returns its rc.  With abort set, stop it first: its
 * progress callback says stop, the backend is asked to abort, and the
 * pipe is closed under it. */
static int join_saver(sender *s, bool abort)
{
    bool done;
    int rc;

    if (!s->saver_started)
        return LXM_ERROR_STATE;
    if (abort) {
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        done = s->saver_done;
        pthread_mutex_unlock(&s->lock);
        if (!done && s->ops->save_abort)
            s->ops->save_abort(s->b, s->info.domid);
        if (s->rfd >= 0) {
            close(s->rfd);
            s->rfd = -1;
        }
    }
    pthread_join(s->saver, NULL);
    s->saver_started = false;
    pthread_mutex_lock(&s->lock);
    rc = s->save_rc;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Let the next migration of this host stop its guest. */
static void gate_release(sender *s)
{
    if (!s->gate_held)
        return;
    s->gate_held = false;
    lxm__stopcopy_gate_release(s->o->save.gate);
}

/* ---- failure before (or refused after) GO: the VM runs here -------- */

static void resume_source(sender *s)
{
    lxm__domain_info di;
    int rc;

    if (s->renamed) {
        rc = s->ops->rename(s->b, s->info.domid, s->info.name);
        if (rc)
            LXM_LOG_ERROR(s->lg,
                          "migrate %s: cannot rename domain %u back"
                          " from %s: %s",
                          s->info.name, s->info.domid, s->away,
                          lxm_strerror(rc));
        else
            s->renamed = false;
    }
    rc = s->ops->domain_info(s->b, s->domid_str, &di);
    if (!rc && di.state == LXM__DOM_SUSPENDED) {
        rc = s->ops->resume(s->b, s->info.domid);
        if (rc)
            LXM_LOG_ERROR(s->lg, "migrate %s: cannot resume domain %u: %s",
                          s->info.name, s->info.domid, lxm_strerror(rc));
        rc = s->ops->domain_info(s->b, s->domid_str, &di);
    }
    s->rep->source_resumed = !rc && di.state == LXM__DOM_RUNNING;
    gate_release(s);
    if (!s->rep->source_resumed)
        set_error(s, LXM_ERROR_FAIL,
                  "domain %s (%u) could not be resumed on %s", s->info.name,
                  s->info.domid, s->rep->source);
}

/* Tell the peer, if it can still hear us, that we give up. */
static void tell_peer_failed(sender *s, const char *stage)
{
    yajl_gen g;

    if (!s->c || !s->conn_ok)
        return;
    g = lxm__json_new();
    if (!g)
        return;
    lxm__json_str(g, "error",
                  s->rep->error[0] ? s->rep->error : "migration aborted");
    lxm__json_int(g, "code", s->rep->rc ? s->rep->rc : LXM_ERROR_FAIL);
    lxm__json_str(g, "stage", stage);
    if (lxm__conn_send_json(s->c, LXM__MSG_FAILED, g))
        s->conn_ok = false;
}

/* Why the connection failed, for a message. */
static const char *conn_why(const sender *s, int rc)
{
    const char *e = s->c ? lxm__conn_last_error(s->c) : "";

    return e && e[0] ? e : lxm_strerror(rc);
}

/* Describe a failed wait for a frame from the peer; when is "waiting
 * for READY", "during the stream", ... */
static void peer_error(sender *s, int rc, const char *peer_msg, int code,
                       const char *when)
{
    switch (rc) {
    case LXM_ERROR_PEER:
        set_error(s, code ? code : rc, "destination %s failed: %s", s->dest,
                  peer_msg);
        break;
    case LXM_ERROR_TIMEOUT:
        s->conn_ok = false;
        set_error(s, rc, "destination %s (%s) did not answer within %u ms %s",
                  s->dest, s->dest_addr, s->o->timeout_ms, when);
        break;
    case LXM_ERROR_PROTOCOL:
        s->conn_ok = false;
        set_error(s, rc, "destination %s (%s) broke the protocol %s: %s",
                  s->dest, s->dest_addr, when,
                  peer_msg[0] ? peer_msg : conn_why(s, rc));
        break;
    default:
        s->conn_ok = false;
        set_error(s, rc, "connection to destination %s lost %s: %s", s->dest,
                  when, conn_why(s, rc));
        break;
    }
}

/* ---- 1, 2: pre-checks and the request ------------------------------ */

static int precheck(sender *s, const char *domain)
{
    lxm__domain_info *di = &s->info;
    int rc;

    rc = s->ops->domain_info(s->b, domain, di);
    if (rc) {
        set_error(s, rc, "no domain %s on %s: %s", domain, s->rep->source,
                  lxm_strerror(rc));
        return rc;
    }
    snprintf(s->rep->name, sizeof(s->rep->name), "%s", di->name);
    snprintf(s->domid_str, sizeof(s->domid_str), "%u", di->domid);
    if (strlen(di->name) + strlen(AWAY_SUFFIX) >= sizeof(s->away)) {
        set_error(s, LXM_ERROR_REFUSED,
                  "domain name %s is too long to"
                  " migrate (at most %zu characters)",
                  di->name, sizeof(s->away) - 1 - strlen(AWAY_SUFFIX));
        return LXM_ERROR_REFUSED;
    }
    snprintf(s->away, sizeof(s->away), "%s" AWAY_SUFFIX, di->name);

    if (di->state != LXM__DOM_RUNNING) {
        set_error(s, LXM_ERROR_STATE, "domain %s (%u) is not running on %s",
                  di->name, di->domid, s->rep->source);
        return LXM_ERROR_STATE;
    }
    if (di->nomigrate) {
        set_error(s, LXM_ERROR_REFUSED, "domain %s (%u) has nomigrate set",
                  di->name, di->domid);
        return LXM_ERROR_REFUSED;
    }
    if (di->nr_pci) {
        set_error(s, LXM_ERROR_REFUSED,
                  "domain %s (%u) has %u PCI"
                  " passthrough device(s), which cannot migrate",
                  di->name, di->domid, di->nr_pci);
        return LXM_ERROR_REFUSED;
    }
    if (di->nr_vusb) {
        set_error(s, LXM_ERROR_REFUSED,
                  "domain %s (%u) has %u virtual USB"
                  " device(s), which cannot migrate",
                  di->name, di->domid, di->nr_vusb);
        return LXM_ERROR_REFUSED;
    }
    return 0;
}

/* true when c is a loopback connection (127/8, ::1, v4-mapped 127/8)
 * or a unix socket: the peer runs on this host. */
static bool peer_on_this_host(lxm__conn *c)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)&ss;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;

    if (getpeername(lxm__conn_fd(c), (struct sockaddr *)&ss, &len) < 0)
        return false;
    switch (ss.ss_family) {
    case AF_UNIX:
        return true;
    case AF_INET:
        return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    case AF_INET6:
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
                in6->sin6_addr.s6_addr[12] == 127);
    default:
        return false;
    }
}

/*
 * The codec, from o->compress and what the peer's HELLO says it can
 * decode: a codec it did not list falls back to none, with a warning in
 * the log and the report.  LXM_ERROR_INVAL for a bad o->compress.
 */
static int choose_codec(sender *s, yajl_val hello)
{
    const char *want = s->o->compress ? s->o->compress : "none";
    char cap[32], err[160];
    bool has_codec, has_pages;
    int rc;

    snprintf(s->rep->codec, sizeof(s->rep->codec), "none");
    if (!strcmp(want, "none"))
        return 0;
    if (!strcmp(want, "auto") && !s->o->auto_probe_same_host &&
        peer_on_this_host(s->c)) {
        /* the stream never leaves this host's memory: nothing to win */
        snprintf(s->rep->codec, sizeof(s->rep->codec),
                 "none (auto: peer on this host)");
        snprintf(s->rep->auto_choice, sizeof(s->rep->auto_choice),
                 "raw (same host)");
        return 0;
    }
    if (!strcmp(want, "auto")) {
        s->autom = true;
        rc = lxm__codec_parse("lz4", &s->spec, err, sizeof(err));
    } else {
        rc = lxm__codec_parse(want, &s->spec, err, sizeof(err));
    }
    if (rc) {
        set_error(s, LXM_ERROR_INVAL, "bad compression '%s': %s", want, err);
        return LXM_ERROR_INVAL;
    }
    snprintf(cap, sizeof(cap), LXM__CAP_CODEC_PREFIX "%s",
             lxm__codec_name(s->spec.codec));
    has_codec =
        s->spec.codec == LXM__CODEC_NONE || lxm__hello_has_cap(hello, cap);
    has_pages = lxm__hello_has_cap(hello, LXM__CAP_PAGES);
    if (!has_codec || (s->autom && !has_pages)) {
        snprintf(s->rep->warning, sizeof(s->rep->warning),
                 "destination %.64s cannot decode %.32s (its HELLO does not"
                 " list %.32s); sending the stream uncompressed",
                 s->dest, s->autom ? "the page pre-pass" : want,
                 s->autom ? LXM__CAP_PAGES : cap);
        lxm__log(s->lg, XTL_WARN, -1, "migrate %s: %s", s->info.name,
                 s->rep->warning);
        s->autom = false;
        return 0;
    }
    s->use_codec = true;
    s->prepass = has_pages;
    s->prepass_version = lxm__hello_has_cap(hello, LXM__CAP_PAGES2) ? 0 : 1;
    if (s->autom)
        snprintf(s->rep->codec, sizeof(s->rep->codec), "auto(%s)",
                 lxm__codec_name(s->spec.codec));
    else
        lxm__codec_spec_format(&s->spec, s->rep->codec, sizeof(s->rep->codec));
    return 0;
}

static int request(sender *s)
{
    uint64_t t_hello, rtt_us;
    yajl_val hello = NULL;
    const char *peer_host;
    char *config = NULL;
    char err[256];
    yajl_gen g;
    int rc, code;

    rc = lxm__conn_connect(s->dest_addr, s->o->timeout_ms, s->lg, &s->c);
    if (rc) {
        set_error(s, rc, "cannot connect to %s%s", s->dest_addr,
                  rc == LXM_ERROR_TIMEOUT ? ": timed out" : "");
        goto out;
    }
    s->conn_ok = true;
    t_hello = now_ns();
    rc = lxm__proto_hello_caps(s->c, "peer", s->rep->source,
                               lxm__migrate_codec_caps(), &hello);
    /* The commit is two round trips like this one (STREAM_END/READY,
     * GO/RUNNING): the policy counts them in its downtime estimate. */
    rtt_us = (now_ns() - t_hello) / 1000u;
    s->save.fixed_ms = (uint32_t)LXM_MIN((2 * rtt_us + 999) / 1000, 10000u);
    if (rc) {
        s->conn_ok = false;
        set_error(s, rc, "handshake with %s failed: %s", s->dest_addr,
                  conn_why(s, rc));
        goto out;
    }
    peer_host = lxm__jstr(hello, "host");
    if (peer_host && peer_host[0]) {
        snprintf(s->dest, sizeof(s->dest), "%s", peer_host);
        snprintf(s->rep->destination, sizeof(s->rep->destination), "%s",
                 peer_host);
    }
    rc = choose_codec(s, hello);
    if (rc)
        goto out;
    s->peer_probe = lxm__hello_has_cap(hello, LXM__CAP_PROBE);

    g = lxm__json_new();
    if (!g) {
        rc = LXM_ERROR_NOMEM;
        set_error(s, rc, "out of memory");
        goto out;
    }
    lxm__json_str(g, "name", s->info.name);
    lxm__json_str(g, "uuid", s->info.uuid);
    lxm__json_uint(g, "memory_bytes", s->info.memory_bytes);
    lxm__json_uint(g, "vcpus", s->info.vcpus);
    lxm__json_str(g, "kind", lxm__migrate_kind_name(s->info.kind));
    lxm__json_bool(g, "live", s->o->save.live);
    lxm__json_str(g, "source_host", s->rep->source);
    if (s->use_codec) {
        /* What the receiver's decoder needs (docs/protocol.md). */
        lxm__json_str(g, "codec", s->rep->codec);
        lxm__json_bool(g, "codec_pages", s->prepass);
        lxm__json_uint(g, "codec_cache_bytes", s->o->codec_cache_bytes);
        lxm__json_str(g, "codec_format", "xl");
    }
    /* The domain config as xl keeps it, for the destination's records;
     * the stream's xl header carries it too. */
    if (s->ops->domain_config &&
        !s->ops->domain_config(s->b, s->info.domid, &config) && config)
        lxm__json_str(g, "config", config);
    rc = lxm__conn_send_json(s->c, LXM__MSG_MIGRATE, g);
    if (rc) {
        s->conn_ok = false;
        set_error(s, rc, "cannot send the request to %s (%s): %s", s->dest,
                  s->dest_addr, lxm_strerror(rc));
        goto out;
    }

    rc = lxm__migrate_expect(s->c, LXM__MSG_ACCEPT, NULL, err, sizeof(err),
                             &code);
    if (rc == LXM_ERROR_PEER) {
        rc = code && code != LXM_ERROR_PEER ? code : LXM_ERROR_REFUSED;
        set_error(s, rc, "destination %s refused: %s", s->dest, err);
        goto out;
    }
    if (rc) {
        peer_error(s, rc, err, 0, "waiting for ACCEPT");
        goto out;
    }

out:
    free(config);
    yajl_tree_free(hello);
    return rc;
}

/* ---- 3: the stream ------------------------------------------------- */

/* The peer spoke (or hung up) while we were streaming: read why. */
static int peer_interrupts(sender *s)
{
    char err[256];
    int rc, code;

    rc = lxm__migrate_expect(s->c, LXM__MSG_FAILED, NULL, err, sizeof(err),
                             &code);
    if (!rc) /* cannot happen: FAILED is turned into PEER */
        rc = LXM_ERROR_PEER;
    peer_error(s, rc, err, code, "during the stream");
    if (rc == LXM_ERROR_PEER)
        s->conn_ok = false; /* it gave up; no need to answer */
    return rc;
}

/* After a failed send (when: "sending the stream", ...): the peer may
 * have said why before hanging up. */
static void send_failed(sender *s, int send_rc, const char *when)
{
    char err[256], why[256];
    int rc, code;

    snprintf(why, sizeof(why), "%s", conn_why(s, send_rc));
    s->conn_ok = false;
    lxm__conn_set_timeout(s->c, 1000);
    rc = lxm__migrate_expect(s->c, LXM__MSG_FAILED, NULL, err, sizeof(err),
                             &code);
    if (rc == LXM_ERROR_PEER)
        set_error(s, code, "destination %s failed: %s", s->dest, err);
    else
        set_error(s, send_rc,
                  "connection to destination %s lost %s (stream byte %" PRIu64
                  "): %s",
                  s->dest, when, s->stream_bytes, why);
}

/*
 * Wait until the socket takes more, watching for the peer at the same
 * time: a receiver that gave up may only have half-closed (its FIN does
 * not wake a sender blocked on a full window, and its RST can be lost
 * to a race), so we never block in a send with nothing else to wake us.
 */
static int wait_writable(sender *s)
{
    struct pollfd p;
    uint64_t deadline = lxm__migrate_now_ms() + s->o->timeout_ms;
    int r, rc;

    for (;;) {
        p.fd = lxm__conn_fd(s->c);
        p.events = POLLOUT | POLLIN | POLLRDHUP;
        p.revents = 0;
        r = poll(&p, 1, PROGRESS_EVERY_MS * 2);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = LXM_ERROR_IO;
            set_error(s, rc, "poll: %s", strerror(errno));
            return rc;
        }
        if (p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))
            return peer_interrupts(s);
        if (p.revents & POLLOUT)
            return 0;
        if (cancelled(s)) {
            rc = LXM_ERROR_ABORTED;
            set_error(s, rc, "cancelled by request");
            return rc;
        }
        if (lxm__migrate_now_ms() >= deadline) {
            rc = LXM_ERROR_TIMEOUT;
            s->conn_ok = false;
            set_error(s, rc,
                      "destination %s (%s) read nothing for %u ms (stream"
                      " byte %" PRIu64 ")",
                      s->dest, s->dest_addr, s->o->timeout_ms, s->stream_bytes);
            return rc;
        }
        report_progress(s, false);
    }
}

/* ---- 3 with a codec (issue 5) ------------------------------------- */

/* The encoder's output (lxm__codec_frame_fn): one frame, one STREAM
 * message, on this thread. */
static int enc_out(void *opaque, uint8_t codec, const void *frame, size_t len)
{
    sender *s = opaque;
    uint64_t t0 = now_ns();
    const void *p = frame;
    int rc;

    if (s->o->on_stream_frame) {
        /* Test hook: it may change the frame, so it gets a copy. */
        if (!s->scratch)
            s->scratch = malloc(LXM__CFRAME_MAX);
        if (!s->scratch || len > LXM__CFRAME_MAX) {
            set_error(s, LXM_ERROR_NOMEM, "out of memory");
            return LXM_ERROR_NOMEM;
        }
        memcpy(s->scratch, frame, len);
        s->o->on_stream_frame(s->o->hook_opaque, s->scratch, len,
                              s->stream_bytes);
        p = s->scratch;
    }
    rc = wait_writable(s);
    if (rc)
        return rc;
    rc = lxm__conn_send(s->c, LXM__MSG_STREAM, codec, p, (uint32_t)len);
    if (rc) {
        send_failed(s, rc, "sending the stream");
        return rc;
    }
    s->send_ns += now_ns() - t0;
    s->frame_bytes += len;
    s->frames++;
    if (codec != LXM__CODEC_END && (codec & LXM__CODEC_ID_MASK))
        s->frames_compressed++;
    return 0;
}

/* An encoder call failed: enc_out said why already, or this is the
 * encoder's own failure. */
static int enc_failed(sender *s, int rc, const char *what)
{
    set_error(s, rc, "%s the stream of %s with %s: %s", what, s->info.name,
              s->rep->codec, lxm_strerror(rc));
    return rc;
}

/* auto: start a window in mode on, of len stream bytes. */
static int auto_start(sender *s, bool on, uint64_t len)
{
    static const lxm__codec_spec none = { LXM__CODEC_NONE, 0 };
    auto_ctl *a = &s->au;
    int rc;

    rc = lxm__encoder_set_spec(s->enc, on ? &a->fast : &none);
    if (rc)
        return enc_failed(s, rc, "switching the codec of");
    if (on != a->on && s->frames)
        a->switches++;
    a->on = on;
    a->end = s->stream_bytes + len;
    a->t0_ns = now_ns();
    a->send_ns = s->send_ns;
    a->frame_bytes = s->frame_bytes;
    lxm__encoder_get_stats(s->enc, &a->st);
    return 0;
}

/* auto: the window is over: measure it (after sending all of it), then
 * start the next one. */
static int auto_step(sender *s)
{
    auto_ctl *a = &s->au;
    lxm__encoder_stats st;
    uint64_t wall, send_ns, wire, tok, blk, out;
    double gain = 0;
    bool next;
    int rc;

    rc = lxm__encoder_flush(s->enc);
    if (rc)
        return enc_failed(s, rc, "sending");
    lxm__encoder_get_stats(s->enc, &st);
    wall = now_ns() - a->t0_ns;
    send_ns = s->send_ns - a->send_ns;
    wire = s->frame_bytes - a->frame_bytes;
    tok = st.bytes_tokens - a->st.bytes_tokens;
    blk = st.ns_block - a->st.ns_block;
    out = st.bytes_out - a->st.bytes_out;
    if (a->on) {
        if (blk && tok >= (256u << 10))
            a->codec = (double)tok * 1e9 / (double)blk * st.threads;
        if (out && tok)
            a->ratio = (double)tok / (double)out;
    }
    /* The socket's speed shows only while it holds us up: always when
     * nothing is compressed (sending is then all there is to do after
     * the pre-pass), else when at least half the window was spent
     * blocked in send. */
    if (send_ns >= 1000000 && wire && (!a->on || send_ns * 2 >= wall))
        a->net = (double)wire * 1e9 / (double)send_ns;

    if (wall && tok >= (1u << 20)) {
        if (a->on)
            a->tput_on = (double)tok * 1e9 / (double)wall;
        else
            a->tput_off = (double)tok * 1e9 / (double)wall;
    }
    /* The model says what compressing could give; what the last windows
     * of each mode actually achieved overrules it (the CPUs may be
     * shared with the receiver or other guests, which the model does
     * not see). */
    if (a->codec && a->ratio && a->net)
        gain = LXM_MIN(a->codec, a->ratio * a->net) / a->net;
    if (a->tput_on && a->tput_off)
        gain = LXM_MIN(gain ? gain : 1e9, a->tput_on / a->tput_off);
    if (gain)
        a->pref = a->pref ? gain >= AUTO_GAIN_OFF : gain >= AUTO_GAIN_ON;
    LXM_LOG_DEBUG(s->lg,
                  "migrate %s: auto: window %s, net %.0f MB/s, codec %.0f"
                  " MB/s, ratio %.2f, measured %.0f/%.0f MB/s, gain %.2f"
                  " -> %s",
                  s->info.name, a->on ? "compressed" : "raw", a->net / 1e6,
                  a->codec / 1e6, a->ratio, a->tput_on / 1e6, a->tput_off / 1e6,
                  gain, a->pref ? "compress" : "raw");

    if (!a->codec || !a->ratio)
        return auto_start(s, true, AUTO_PROBE); /* measure the codec */
    if (!a->net)
        return auto_start(s, false, AUTO_PROBE); /* measure the socket */
    next = a->pref;
    if (++a->since_probe >= AUTO_PROBE_EVERY) {
        /* Now and then, look at the other mode again. */
        a->since_probe = 0;
        if (a->pref) {
            a->net = 0; /* the raw probe measures it afresh */
            a->tput_off = 0;
        } else {
            a->codec = 0;
            a->ratio = 0;
            a->tput_on = 0;
        }
        return auto_start(s, !a->pref, AUTO_PROBE);
    }
    return auto_start(s, next, AUTO_WINDOW);
}

/* ---- auto: raw or codec path, before the stream (issue 5 item 4) --- */

/* Send n PROBE frames of LINK_FRAME bytes and wait for their acks;
 * *ns_r: from the first send to the last ack. */
static int probe_frames(sender *s, const uint8_t *buf, unsigned int n,
                        uint64_t *sent, uint64_t *ns_r)
{
    uint64_t t0 = now_ns();
    char err[256];
    yajl_val v = NULL;
    unsigned int i;
    int rc, code;

    for (i = 0; i < n; i++) {
        rc = lxm__conn_send(s->c, LXM__MSG_PROBE, LXM__CODEC_NONE, buf,
                            LINK_FRAME);
        if (rc) {
            send_failed(s, rc, "probing the link");
            return rc;
        }
    }
    for (i = 0; i < n; i++) {
        *sent += LINK_FRAME;
        rc = lxm__migrate_expect(s->c, LXM__MSG_PROBE_ACK, &v, err, sizeof(err),
                                 &code);
        if (rc) {
            peer_error(s, rc, err, code, "probing the link");
            return rc;
        }
        if (lxm__jint(v, "bytes", -1) != (int64_t)*sent) {
            s->conn_ok = false;
            set_error(s, LXM_ERROR_PROTOCOL,
                      "destination %s (%s) broke the protocol probing the"
                      " link: PROBE_ACK says %" PRId64 " bytes, %" PRIu64
                      " were sent",
                      s->dest, s->dest_addr, lxm__jint(v, "bytes", -1), *sent);
            yajl_tree_free(v);
            return LXM_ERROR_PROTOCOL;
        }
        yajl_tree_free(v);
        v = NULL;
    }
    *ns_r = now_ns() - t0;
    return 0;
}

/*
 * The link's bytes/s, from PROBE frames the peer reads and acks: after
 * one frame that warms the connection up, the best of LINK_ROUNDS
 * rounds of LINK_ROUND_FRAMES frames, each timed to its last ack (a
 * pause of either end, a busy CPU, is not the link).
 */
static int probe_link(sender *s, uint64_t *bps_r)
{
    uint64_t sent = 0, ns, bps;
    uint8_t *buf;
    unsigned int i;
    int rc;

    *bps_r = 0;
    buf = calloc(1, LINK_FRAME); /* what it holds does not matter */
    if (!buf) {
        set_error(s, LXM_ERROR_NOMEM, "out of memory");
        return LXM_ERROR_NOMEM;
    }
    rc = probe_frames(s, buf, 1, &sent, &ns);
    if (!rc && ns >= LINK_SLOW_NS) /* a slow link: enough said */
        *bps_r = (uint64_t)((double)LINK_FRAME * 1e9 / (double)ns);
    for (i = 0; !rc && !*bps_r && i < LINK_ROUNDS; i++) {
        rc = probe_frames(s, buf, LINK_ROUND_FRAMES, &sent, &ns);
        bps = ns ? (uint64_t)((double)LINK_ROUND_FRAMES * LINK_FRAME * 1e9 /
                              (double)ns)
                 : 0;
        if (!rc && bps > *bps_r)
            *bps_r = bps;
    }
    free(buf);
    return rc;
}

/*
 * auto with a peer that answers the probe: measure the link and this
 * host's codec path, decide (lxm__auto_decide), and tell the peer with
 * PROBE_END.  Raw: the stream goes exactly as with --compress=none.
 */
static int auto_choose(sender *s)
{
    lxm__migrate_report *rep = s->rep;
    lxm__auto_choice choice;
    uint64_t link, codec;
    yajl_gen g;
    int rc;

    if (!s->peer_probe) {
        snprintf(rep->auto_choice, sizeof(rep->auto_choice),
                 "codec (no probe)");
        return 0;
    }
    /* This host's CPUs first (cached after the first migration), then
     * the link, so that neither disturbs the other. */
    codec = lxm__auto_codec_rate(s->o->codec_threads, s->lg);
    rc = probe_link(s, &link);
    if (rc)
        return rc;
    choice = lxm__auto_decide(link, s->o->bandwidth, codec);
    rep->auto_link_bps = link;
    rep->auto_codec_bps = codec;
    snprintf(rep->auto_choice, sizeof(rep->auto_choice), "%s",
             choice == LXM__AUTO_RAW ? "raw" : "codec");

    g = lxm__json_new();
    if (!g) {
        set_error(s, LXM_ERROR_NOMEM, "out of memory");
        return LXM_ERROR_NOMEM;
    }
    lxm__json_str(g, "codec", choice == LXM__AUTO_RAW ? "none" : rep->codec);
    rc = lxm__conn_send_json(s->c, LXM__MSG_PROBE_END, g);
    if (rc) {
        send_failed(s, rc, "sending PROBE_END");
        return rc;
    }
    lxm__log(s->lg, XTL_INFO, -1,
             "migrate %s: auto: link %" PRIu64 " MB/s%s, codec path %" PRIu64
             " MB/s: %s",
             s->info.name, link / 1000000,
             s->o->bandwidth ? " (capped by --bandwidth)" : "", codec / 1000000,
             choice == LXM__AUTO_RAW ? "sending raw" : "compressing");
    if (choice == LXM__AUTO_RAW) {
        s->use_codec = false;
        s->autom = false;
        s->prepass = false;
        snprintf(rep->codec, sizeof(rep->codec),
                 "none (auto: link %u MB/s, codec %u MB/s)",
                 (unsigned int)LXM_MIN(link / 1000000, 999999),
                 (unsigned int)LXM_MIN(codec / 1000000, 999999));
    }
    return 0;
}

static int codec_start(sender *s)
{
    lxm__encoder_opts eo;
    int rc;

    memset(&eo, 0, sizeof(eo));
    eo.spec = s->spec;
    eo.threads = s->o->codec_threads;
    eo.no_prepass = !s->prepass;
    eo.format = LXM_FORMAT_XL;
    eo.cache_bytes = s->o->codec_cache_bytes;
    eo.prepass_version = s->prepass_version;
    eo.logger = s->lg;
    eo.out = enc_out;
    eo.opaque = s;
    rc = lxm__encoder_new(&eo, &s->enc);
    if (rc) {
        set_error(s, rc, "cannot set up %s for the stream of %s: %s",
                  s->rep->codec, s->info.name, lxm_strerror(rc));
        return rc;
    }
    if (s->autom) {
        /* The first window measures the codec (then auto_step measures
         * the socket, then decides). */
        s->au.fast = s->spec;
        s->au.on = true;
        rc = auto_start(s, true, AUTO_PROBE);
    }
    return rc;
}

/* Send what the encoder holds when a pre-copy round ends or the guest
 * was stopped, so that nothing waits in it while the source does. */
static int codec_round_flush(sender *s)
{
    uint32_t round;
    bool suspended;
    int rc;

    pthread_mutex_lock(&s->lock);
    round = s->sp.round;
    suspended = s->suspend_ms != 0;
    pthread_mutex_unlock(&s->lock);
    if (round == s->enc_round && suspended == s->enc_suspended)
        return 0;
    s->enc_round = round;
    s->enc_suspended = suspended;
    rc = lxm__encoder_flush(s->enc);
    return rc ? enc_failed(s, rc, "sending") : 0;
}

/* The codec's half of send_stream(). */
static int send_encoded(sender *s, const struct iovec *iov, int n)
{
    int i, rc;

    for (i = 0; i < n; i++) {
        if (cancelled(s)) {
            rc = LXM_ERROR_ABORTED;
            set_error(s, rc, "cancelled by request");
            return rc;
        }
        rc = lxm__encoder_feed(s->enc, iov[i].iov_base, iov[i].iov_len);
        if (rc)
            return enc_failed(s, rc, "compressing");
        s->stream_bytes += iov[i].iov_len;
        if (s->o->on_stream_bytes)
            s->o->on_stream_bytes(s->o->hook_opaque, "send", s->stream_bytes);
    }
    rc = codec_round_flush(s);
    if (!rc && s->autom && s->stream_bytes >= s->au.end)
        rc = auto_step(s);
    report_progress(s, false);
    return rc;
}

/*
 * Stream bytes (iov[0..n), in stream order) to the peer: this is where
 * stream bytes become STREAM frames (the codec layer of issue 5 goes
 * here).  Every byte is validated by the stream reader first: a backend
 * bug must not reach the peer.  Frames hold at most STREAM_FRAME_MAX
 * bytes; the bytes go into the socket from where they are.
 */
static int send_stream(sender *s, const struct iovec *iov, int n)
{
    const lxm_stream_error *se;
    struct iovec part[64];
    size_t skip = 0, frame;
    char line[256];
    int i, k, rc;

    for (i = 0; i < n; i++) {
        rc = lxm_stream_reader_feed(s->reader, iov[i].iov_base, iov[i].iov_len,
                                    NULL);
        if (rc) {
            se = lxm_stream_reader_error(s->reader);
            lxm_stream_error_format(se, "stream", line, sizeof(line));
            set_error(s, rc,
                      "the backend wrote an invalid stream for %s"
                      " (not sent): %s",
                      s->info.name, line);
            return rc;
        }
    }
    if (s->enc)
        return send_encoded(s, iov, n);

    while (n > 0) {
        if (cancelled(s)) {
            rc = LXM_ERROR_ABORTED;
            set_error(s, rc, "cancelled by request");
            return rc;
        }
        rc = wait_writable(s);
        if (rc)
            return rc;
        /* Up to STREAM_FRAME_MAX bytes, or 64 entries, from iov. */
        frame = 0;
        for (k = 0; n > 0 && k < (int)LXM_ARRAY_SIZE(part) &&
                    frame < STREAM_FRAME_MAX;) {
            size_t len = iov->iov_len - skip;

            if (!len) {
                iov++;
                n--;
                skip = 0;
                continue;
            }
            len = LXM_MIN(len, STREAM_FRAME_MAX - frame);
            part[k].iov_base = (uint8_t *)iov->iov_base + skip;
            part[k].iov_len = len;
            k++;
            frame += len;
            skip += len;
        }
        if (!frame)
            break;
        rc = lxm__conn_sendv(s->c, LXM__MSG_STREAM, LXM__CODEC_NONE, part, k);
        if (rc) {
            send_failed(s, rc, "sending the stream");
            return rc;
        }
        s->stream_bytes += frame;
        if (s->o->on_stream_bytes)
            s->o->on_stream_bytes(s->o->hook_opaque, "send", s->stream_bytes);
        report_progress(s, false);
    }
    return 0;
}

/* The fast path's sink (lxm_sink_write_fn): the backend's stream
 * writer hands each record here, on this (the caller's) thread. */
static int sink_send(void *opaque, const struct iovec *iov, int iovcnt)
{
    return send_stream(opaque, iov, iovcnt);
}

/* Pump the pipe to the peer until EOF or an error. */
static int pump(sender *s)
{
    struct pollfd pfd[2];
    struct iovec iov;
    uint8_t *buf;
    ssize_t n;
    int r, rc;

    buf = malloc(LXM__STREAM_CHUNK);
    if (!buf) {
        rc = LXM_ERROR_NOMEM;
        set_error(s, rc, "out of memory");
        goto out;
    }

    for (;;) {
        if (cancelled(s)) {
            rc = LXM_ERROR_ABORTED;
            set_error(s, rc, "cancelled by request");
            goto out;
        }
        pfd[0].fd = s->rfd;
        pfd[0].events = POLLIN;
        pfd[1].fd = lxm__conn_fd(s->c);
        pfd[1].events = POLLIN;
        pfd[0].revents = pfd[1].revents = 0;
        r = poll(pfd, 2, PROGRESS_EVERY_MS * 2);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = LXM_ERROR_IO;
            set_error(s, rc, "poll: %s", strerror(errno));
            goto out;
        }
        if (pfd[1].revents) {
            rc = peer_interrupts(s);
            goto out;
        }
        if (!pfd[0].revents) {
            /* The saver is quiet: what the encoder holds goes now. */
            if (s->enc) {
                rc = lxm__encoder_flush(s->enc);
                if (rc) {
                    enc_failed(s, rc, "sending");
                    goto out;
                }
            }
            report_progress(s, false);
            continue;
        }

        n = read(s->rfd, buf, LXM__STREAM_CHUNK);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            rc = LXM_ERROR_IO;
            set_error(s, rc, "reading the saved stream of %s: %s", s->info.name,
                      strerror(errno));
            goto out;
        }
        if (n == 0)
            break;

        iov.iov_base = buf;
        iov.iov_len = (size_t)n;
        rc = send_stream(s, &iov, 1);
        if (rc)
            goto out;
    }
    s->eof_ms = lxm__migrate_now_ms();
    rc = 0;

out:
    free(buf);
    return rc;
}

static int stream(sender *s)
{
    lxm_stream_reader_opts ro;
    const lxm_stream_error *se;
    lxm__domain_info di;
    char line[256];
    int pfd[2], rc, save_rc;

    memset(&ro, 0, sizeof(ro));
    ro.format = LXM_FORMAT_XL;
    ro.callback = on_stream_event;
    ro.opaque = s;
    ro.logger = NULL; /* we log the one line ourselves */
    ro.name = s->info.name;
    rc = lxm_stream_reader_new(&ro, &s->reader);
    if (rc) {
        set_error(s, rc, "cannot create a stream reader: %s", lxm_strerror(rc));
        return rc;
    }

    if (s->o->bandwidth)
        lxm__conn_set_rate(s->c, s->o->bandwidth);
    if (s->autom && s->use_codec) {
        rc = auto_choose(s);
        if (rc)
            return rc;
    }
    if (s->use_codec) {
        rc = codec_start(s);
        if (rc)
            return rc;
    }
    s->stream_t0 = lxm__migrate_now_ms();

    if (s->fast) {
        /* In-process backend: its writer sends frames through
         * sink_send() on this thread; no pipe, no saver thread. */
        save_rc = s->fast->save_sink(s->b, s->info.domid, sink_send, s,
                                     &s->save, save_progress_direct, s);
        s->eof_ms = lxm__migrate_now_ms();
        rc = s->rep->error[0] ? (s->rep->rc ? s->rep->rc : LXM_ERROR_FAIL) : 0;
    } else {
        if (pipe2(pfd, O_CLOEXEC)) {
            rc = LXM_ERROR_IO;
            set_error(s, rc, "pipe: %s", strerror(errno));
            return rc;
        }
        s->rfd = pfd[0];
        s->wfd = pfd[1];
        /* Fewer, larger reads (best effort). */
        (void)fcntl(s->wfd, F_SETPIPE_SZ, PIPE_SIZE);
        if (pthread_create(&s->saver, NULL, saver_main, s)) {
            rc = LXM_ERROR_FAIL;
            set_error(s, rc, "cannot start the saver thread");
            close(s->wfd);
            s->wfd = -1;
            return rc;
        }
        s->saver_started = true;

        rc = pump(s);
        save_rc = join_saver(s, rc != 0);
    }
    /* A successful save leaves a gate slot held (backend.h). */
    pthread_mutex_lock(&s->lock);
    s->gate_held = !save_rc && s->sp.gate_held && s->o->save.gate;
    pthread_mutex_unlock(&s->lock);
    report_progress(s, true);
    if (rc)
        return rc;

    if (save_rc) {
        if (save_rc == LXM_ERROR_ABORTED && cancelled(s))
            set_error(s, save_rc, "cancelled by request");
        else
            set_error(s, save_rc, "saving %s (%u) on %s failed: %s",
                      s->info.name, s->info.domid, s->rep->source,
                      lxm_strerror(save_rc));
        return save_rc;
    }
    rc = lxm_stream_reader_finish(s->reader);
    if (rc) {
        se = lxm_stream_reader_error(s->reader);
        lxm_stream_error_format(se, "stream", line, sizeof(line));
        set_error(s, rc, "the backend's stream for %s is incomplete: %s",
                  s->info.name, line);
        return rc;
    }
    if (s->enc) {
        /* The rest, then the end marker, before STREAM_END. */
        rc = lxm__encoder_finish(s->enc);
        if (rc)
            return enc_failed(s, rc, "finishing");
    }
    rc = s->ops->domain_info(s->b, s->domid_str, &di);
    if (rc || di.state != LXM__DOM_SUSPENDED) {
        rc = rc ? rc : LXM_ERROR_STATE;
        set_error(s, rc, "domain %s (%u) is not suspended after its save",
                  s->info.name, s->info.domid);
        return rc;
    }
    return 0;
}

/* ---- 4-6: the commit ---------------------------------------------- */

/* Returns the status to report; rep->rc/error are set on failure. */
static lxm__migrate_status commit(sender *s)
{
    uint8_t src_digest[16], dst_digest[16];
    bool have_src = false, have_dst = false;
    yajl_val ready = NULL, running = NULL;
    char hex[33], err[256];
    uint64_t suspend_ms;
    yajl_gen g;
    int rc, code;
    lxm__migrate_status st = LXM__MIG_FAILED;

    /*
     * STREAM_END goes first, so that the destination finishes its
     * restore and computes its digest while we compute ours: both are
     * inside the downtime window, and in parallel they cost one pass
     * over memory instead of two.
     */
    g = lxm__json_new();
    if (!g) {
        set_error(s, LXM_ERROR_NOMEM, "out of memory");
        goto resume;
    }
    lxm__json_uint(g, "bytes", s->stream_bytes);
    lxm__json_bool(g, "verify", s->o->verify && s->ops->memory_digest);
    rc = lxm__conn_send_json(s->c, LXM__MSG_STREAM_END, g);
    if (rc) {
        send_failed(s, rc, "sending STREAM_END");
        goto resume;
    }

    if (s->o->verify && s->ops->memory_digest) {
        rc = s->ops->memory_digest(s->b, s->info.domid, src_digest);
        if (rc) {
            set_error(s, rc, "cannot compute the memory digest of %s: %s",
                      s->info.name, lxm_strerror(rc));
            goto resume;
        }
        lxm__migrate_digest_hex(src_digest, hex);
        have_src = true;
    }

    rc = lxm__migrate_expect(s->c, LXM__MSG_READY, &ready, err, sizeof(err),
                             &code);
    if (rc) {
        peer_error(s, rc, err, code, "waiting for READY");
        if (rc == LXM_ERROR_PEER)
            s->conn_ok = false;
        goto resume;
    }
    s->rep->dest_domid = (uint32_t)lxm__jint(ready, "domid", 0);
    if (lxm__jstr(ready, "digest")) {
        if (!lxm__migrate_digest_parse(lxm__jstr(ready, "digest"),
                                       dst_digest)) {
            set_error(s, LXM_ERROR_PROTOCOL,
                      "destination %s sent an"
                      " invalid memory digest",
                      s->dest);
            goto resume;
        }
        have_dst = true;
    }
    if (have_src && have_dst) {
        if (memcmp(src_digest, dst_digest, sizeof(src_digest))) {
            set_error(s, LXM_ERROR_FAIL,
                      "memory digest mismatch: %s has"
                      " %s, %s received something else",
                      s->rep->source, hex, s->dest);
            goto resume;
        }
        s->rep->digest_checked = true;
    }
    if (cancelled(s)) {
        set_error(s, LXM_ERROR_ABORTED, "cancelled by request");
        st = LXM__MIG_CANCELLED;
        goto resume;
    }

    rc = s->ops->rename(s->b, s->info.domid, s->away);
    if (rc) {
        set_error(s, rc, "cannot rename %s to %s on %s: %s", s->info.name,
                  s->away, s->rep->source, lxm_strerror(rc));
        goto resume;
    }
    s->renamed = true;

    /* The commit point: once GO may have left, the source must not run
     * unless the destination says it destroyed its copy. */
    g = lxm__json_new();
    rc = g ? lxm__conn_send_json(s->c, LXM__MSG_GO, g) : LXM_ERROR_NOMEM;
    if (!rc)
        rc = lxm__migrate_expect(s->c, LXM__MSG_RUNNING, &running, err,
                                 sizeof(err), &code);
    if (rc == LXM_ERROR_PEER) {
        set_error(s, code, "destination %s failed to start %s: %s", s->dest,
                  s->info.name, err);
        s->conn_ok = false;
        goto resume;
    }
    if (rc) {
        set_error(s, rc,
                  "migration to %s failed after the commit point: the VM"
                  " may be running on %s; the source copy is kept suspended"
                  " as %s on %s (%s)",
                  s->dest, s->dest, s->away, s->rep->source,
                  rc == LXM_ERROR_PROTOCOL && err[0] ? err : conn_why(s, rc));
        st = LXM__MIG_UNKNOWN;
        goto out;
    }

    /* It runs there: downtime ends now, and the next migration of this
     * host may stop its guest. */
    pthread_mutex_lock(&s->lock);
    suspend_ms = s->suspend_ms;
    pthread_mutex_unlock(&s->lock);
    if (!suspend_ms)
        suspend_ms = s->eof_ms ? s->eof_ms : s->stream_t0;
    s->rep->downtime_ms = lxm__migrate_now_ms() - suspend_ms;
    gate_release(s);
    s->rep->dest_domid =
        (uint32_t)lxm__jint(running, "domid", s->rep->dest_domid);

    rc = s->ops->destroy(s->b, s->info.domid);
    if (rc) {
        /* Still a success: the VM runs on the destination only (ours is
         * suspended).  Say what is left behind. */
        set_error(s, 0,
                  "migrated, but the suspended source copy %s (%u) on %s"
                  " could not be destroyed: %s",
                  s->away, s->info.domid, s->rep->source, lxm_strerror(rc));
    }
    st = LXM__MIG_MIGRATED;
    goto out;

resume:
    tell_peer_failed(s, "commit");
    resume_source(s);

out:
    yajl_tree_free(ready);
    yajl_tree_free(running);
    return st;
}

/* ---- the entry point ---------------------------------------------- */

int lxm__migrate_send(const lxm__backend_ops *ops, lxm__backend *b,
                      const char *domain, const char *dest_addr,
                      const lxm__migrate_opts *o,
                      lxm__migrate_progress_fn *progress, void *opaque,
                      lxm__migrate_report *rep)
{
    lxm__migrate_opts defaults;
    lxm__host_info hi;
    sender s_, *s = &s_;
    int rc;

    memset(rep, 0, sizeof(*rep));
    rep->status = LXM__MIG_REFUSED;
    if (!o) {
        lxm__migrate_opts_init(&defaults);
        o = &defaults;
    }

    memset(s, 0, sizeof(*s));
    s->t0 = lxm__migrate_now_ms();
    s->ops = ops;
    s->b = b;
    s->o = o;
    s->progress = progress;
    s->opaque = opaque;
    s->rep = rep;
    s->lg = o->logger;
    s->rfd = s->wfd = -1;
    s->dest_addr = dest_addr ? dest_addr : "";
    s->fast = lxm__backend_fastpath_of(ops);
    if (s->fast && !s->fast->save_sink)
        s->fast = NULL;
    pthread_mutex_init(&s->lock, NULL);

    snprintf(rep->name, sizeof(rep->name), "%s", domain ? domain : "");
    if (o->host_name)
        snprintf(rep->source, sizeof(rep->source), "%s", o->host_name);
    else if (!ops->host_info(b, &hi))
        snprintf(rep->source, sizeof(rep->source), "%s", hi.hostname);
    if (!rep->source[0] && gethostname(rep->source, sizeof(rep->source) - 1))
        snprintf(rep->source, sizeof(rep->source), "this host");
    snprintf(rep->destination, sizeof(rep->destination), "%s", s->dest_addr);
    snprintf(s->dest, sizeof(s->dest), "%s", s->dest_addr);

    if (!domain || !dest_addr || !dest_addr[0]) {
        rc = LXM_ERROR_INVAL;
        set_error(s, rc, "migrate: a domain and a destination are needed");
        goto out;
    }
    if (o->timeout_ms == 0) {
        /* 0 means the default, as documented. */
        defaults = *o;
        defaults.timeout_ms = 30000;
        o = s->o = &defaults;
    }
    s->save = o->save;

    rc = precheck(s, domain);
    if (!rc)
        rc = cancelled(s) ? LXM_ERROR_ABORTED : 0;
    if (!rc)
        rc = request(s);
    if (rc) {
        /* Nothing was touched: the VM runs here as before. */
        if (rc == LXM_ERROR_ABORTED) {
            set_error(s, rc, "cancelled by request");
            rep->status = LXM__MIG_CANCELLED;
        }
        rep->source_resumed = false;
        goto out;
    }

    rep->status = LXM__MIG_FAILED;
    rc = stream(s);
    if (rc) {
        /* Stopped before STREAM_END: the saver is joined; the backend
         * resumed the guest if the save failed, we resume it if the save
         * completed. */
        if (cancelled(s))
            rep->status = LXM__MIG_CANCELLED;
        tell_peer_failed(s, "stream");
        resume_source(s);
        goto out;
    }

    rep->status = commit(s);
    rc = rep->status == LXM__MIG_MIGRATED ? 0 : rep->rc;
    if (!rc && rep->status != LXM__MIG_MIGRATED)
        rc = LXM_ERROR_FAIL;

out:
    if (s->saver_started)
        join_saver(s, true);
    /* Every path ends here: lost after GO too (the source copy stays
     * suspended, but no longer needs the link). */
    gate_release(s);
    if (s->rfd >= 0)
        close(s->rfd);
    rep->rounds = s->sp.round ? s->sp.round : s->iterations;
    rep->gate_wait_ms = s->sp.gate_wait_ms;
    rep->precopy_forced = s->sp.precopy_forced;
    if (rep->precopy_forced)
        lxm__log(s->lg, XTL_WARN, -1,
                 "migrate %s: pre-copy did not converge within max_rounds;"
                 " stopped and copied anyway",
                 rep->name);
    rep->pages_sent = s->pages;
    rep->bytes_stream = s->stream_bytes;
    rep->bytes_wire = wire_bytes(s);
    rep->bytes_frames = s->enc ? s->frame_bytes : s->stream_bytes;
    rep->frames = s->frames;
    rep->frames_compressed = s->frames_compressed;
    rep->codec_switches = s->au.switches;
    if (s->enc && s->prepass)
        rep->prepass_version = s->prepass_version ? s->prepass_version : 2;
    lxm__encoder_free(s->enc);
    free(s->scratch);
    if (rc && !rep->rc)
        rep->rc = rc;
    if (rep->status == LXM__MIG_MIGRATED)
        rep->rc = 0;
    lxm__conn_free(s->c);
    lxm_stream_reader_free(s->reader);
    pthread_mutex_destroy(&s->lock);
    rep->total_ms = lxm__migrate_now_ms() - s->t0;
    return rep->status == LXM__MIG_MIGRATED ? 0 : (rep->rc ? rep->rc : rc);
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
