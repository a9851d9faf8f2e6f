/*
 * receive.c - the receiving half of a migration: lxm__migrate_receive().
 *
 * Order (migrate.h has the whole sequence and the sender's side):
 *   1. check the MIGRATE request; pre-checks: NAME and NAME--incoming
 *      unused here (EXISTS), enough free memory (NOSPACE) -> ERROR
 *   2. ACCEPT; the restorer thread runs ops->restore() of
 *      "NAME--incoming" from a pipe; this thread receives STREAM frames,
 *      validates every byte with a stream reader BEFORE it goes into the
 *      pipe (a malformed stream from a peer is rejected here, with its
 *      offset, and never reaches the backend), and writes them on
 *      Fast path (lxm__backend_fastpath_of(): the sim): no pipe and no
 *      thread; this thread feeds the validated bytes to the backend's
 *      restore_feed() (restore_begin/_finish/_cancel around it)
 *   3. STREAM_END: close the pipe, join the restorer; the stream must be
 *      complete and the byte counts equal -> READY {domid, digest}
 *   4. GO: rename to NAME, unpause -> RUNNING
 * Any failure before RUNNING destroys what was restored; the sender
 * hears FAILED (if it can) and resumes its copy.  When we fail while
 * the sender is still streaming, we read and drop what it sends until
 * it notices (bounded), so that our FAILED reaches it before the socket
 * is closed.
 *
 * Threads: the caller's thread does all network I/O; the restorer only
 * runs ops->restore() and closes the pipe's read end when it returns.
 * Its results are read after pthread_join() (no lock needed).
 *
 * SIGPIPE: writes into the pipe fail with EPIPE once the restore gave
 * up.  The library installs no handler: SIGPIPE is blocked on the
 * caller's thread for the duration of the call, a SIGPIPE we caused is
 * consumed before the old mask comes back.
 */
#define _GNU_SOURCE /* pipe2, pthread_setname_np */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "codec/codec.h"
#include "migrate/migrate.h"

#define INCOMING_SUFFIX "--incoming"
/* Largest pre-pass delta cache a sender may ask us for. */
#define CODEC_CACHE_MAX (4ull << 30)
#define DRAIN_MS 3000
#define MIB (1024 * 1024)

typedef struct receiver {
    /* Immutable after setup. */
    const lxm__backend_ops *ops;
    lxm__backend *b;
    lxm__conn *c; /* borrowed */
    const lxm__migrate_opts *o;
    lxm__migrate_report *rep;
    xentoollog_logger *lg;
    char name[LXM__NAME_MAX];
    char incoming[LXM__NAME_MAX]; /* NAME--incoming */
    char src[LXM__NAME_MAX + 64]; /* "h1 (127.0.0.1:4242)" */
    uint64_t memory_bytes;
    uint64_t t0;

    /* Owned by the caller's thread. */
    bool conn_ok; /* worth sending FAILED on */
    int wfd;      /* pipe write end; -1 */
    lxm_stream_reader *reader;
    uint64_t stream_bytes;
    uint64_t pages;
    uint32_t iterations;
    uint64_t last_pfn;
    sigset_t old_mask;
    bool sigpipe_was_pending, got_epipe;

    /* The restorer: rfd belongs to it from its start (it closes it);
     * restore_rc and domid are read after the join. */
    pthread_t restorer;
    bool restorer_started;
    int rfd;
    int restore_rc;
    uint32_t domid;
    bool have_domid; /* a domain of ours exists */

    /* The fast path (an in-process backend): no pipe, no restorer
     * thread; this thread feeds the restore.  NULL otherwise. */
    const lxm__backend_fastpath *fast;
    lxm__restore_ctx *rctx; /* between begin and finish/cancel */

    /* Set from STREAM_END. */
    bool want_digest; /* the source compares memory digests */

    /* The stream codec (issue 5), from MIGRATE; caller's thread. */
    bool use_codec;
    bool codec_pages;     /* the pre-pass may be used */
    uint16_t codec_ok;    /* bit per block codec id we accept */
    uint64_t codec_cache; /* pre-pass delta cache bytes */
    lxm__decoder *dec;    /* between start() and the end */
    uint64_t frames;      /* STREAM frames received */
    uint64_t frame_bytes; /* their payload bytes */
    bool stream_failed;   /* FAILED says stage "stream" */
    /* The link probe before the stream (docs/protocol.md). */
    uint64_t probe_bytes; /* PROBE payload bytes read */
    bool probe_done;      /* PROBE_END seen: no more probing */
} receiver;

static void set_error(receiver *r, int rc, const char *fmt, ...)
    LXM_PRINTF(3, 4);

/* The first error wins: later ones are consequences. */
static void set_error(receiver *r, int rc, const char *fmt, ...)
{
    va_list ap;

    if (!r->rep->rc)
        r->rep->rc = rc;
    if (r->rep->error[0])
        return;
    va_start(ap, fmt);
    vsnprintf(r->rep->error, sizeof(r->rep->error), fmt, ap);
    va_end(ap);
    LXM_LOG_ERROR(r->lg, "incoming %s: %s", r->name[0] ? r->name : "domain",
                  r->rep->error);
}

/* ---- SIGPIPE on the caller's thread -------------------------------- */

static void sigpipe_block(receiver *r)
{
    sigset_t set, pending;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    r->sigpipe_was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, &r->old_mask);
}

static void sigpipe_restore(receiver *r)
{
    struct timespec zero = { 0, 0 };
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    if (r->got_epipe && !r->sigpipe_was_pending)
        while (sigtimedwait(&set, NULL, &zero) > 0)
            ;
    pthread_sigmask(SIG_SETMASK, &r->old_mask, NULL);
}

/* ---- the restorer thread ------------------------------------------- */

static void *restorer_main(void *arg)
{
    receiver *r = arg;

    pthread_setname_np(pthread_self(), "lxm-restore");
    r->restore_rc = r->ops->restore(r->b, r->rfd, r->incoming, &r->domid);
    close(r->rfd);
    return NULL;
}

/* Close our end of the pipe (the restore sees EOF) and join it; on
 * the fast path, finish the restore. */
static void join_restorer(receiver *r)
{
    if (r->rctx) {
        r->restore_rc = r->fast->restore_finish(r->rctx, &r->domid);
        r->rctx = NULL;
        if (!r->restore_rc)
            r->have_domid = true;
        return;
    }
    if (r->wfd >= 0) {
        close(r->wfd);
        r->wfd = -1;
    }
    if (!r->restorer_started)
        return;
    pthread_join(r->restorer, NULL);
    r->restorer_started = false;
    if (!r->restore_rc)
        r->have_domid = true;
}

/* ---- failure: leave nothing behind --------------------------------- */

static void destroy_ours(receiver *r)
{
    lxm__domain_info di;
    int rc;

    if (r->rctx) {
        if (r->fast->restore_cancel)
            r->fast->restore_cancel(r->rctx);
        r->rctx = NULL;
    }
    join_restorer(r);
    if (r->have_domid) {
        rc = r->ops->destroy(r->b, r->domid);
        if (rc)
            LXM_LOG_ERROR(r->lg, "incoming %s: cannot destroy domain %u: %s",
                          r->name, r->domid, lxm_strerror(rc));
        else
            r->have_domid = false;
    }
    /* A failed restore leaves nothing, says the backend contract; make
     * sure of it (the pre-check made NAME--incoming ours alone). */
    if (!r->ops->domain_info(r->b, r->incoming, &di)) {
        rc = r->ops->destroy(r->b, di.domid);
        if (rc)
            LXM_LOG_ERROR(r->lg, "incoming %s: cannot destroy %s (%u): %s",
                          r->name, r->incoming, di.domid, lxm_strerror(rc));
    }
}

static void tell_sender_failed(receiver *r, const char *stage)
{
    yajl_gen g;

    if (!r->conn_ok)
        return;
    g = lxm__json_new();
    if (!g)
        return;
    lxm__json_str(g, "error", r->rep->error);
    lxm__json_int(g, "code", r->rep->rc ? r->rep->rc : LXM_ERROR_FAIL);
    lxm__json_str(g, "stage", stage);
    if (lxm__conn_send_json(r->c, LXM__MSG_FAILED, g))
        r->conn_ok = false;
}

/* We failed while the sender still streams: drop its frames until it
 * notices our FAILED and gives up (or DRAIN_MS pass), so that closing
 * the socket does not reset the connection under our message. */
static void drain_sender(receiver *r)
{
    uint64_t until = lxm__migrate_now_ms() + DRAIN_MS;
    lxm__frame f;

    if (!r->conn_ok)
        return;
    lxm__conn_set_timeout(r->c, 500);
    while (lxm__migrate_now_ms() < until) {
        if (lxm__conn_recv(r->c, &f))
            break;
        if (f.type != LXM__MSG_STREAM && f.type != LXM__MSG_PROBE)
            break;
    }
    lxm__conn_set_timeout(r->c, r->o->timeout_ms);
}

/* Describe a failed receive from the sender; when: "during the
 * stream", "waiting for GO". */
static void sender_error(receiver *r, int rc, const char *when)
{
    const char *why = lxm__conn_last_error(r->c);

    if (!why || !why[0])
        why = lxm_strerror(rc);
    r->conn_ok = false;
    switch (rc) {
    case LXM_ERROR_TIMEOUT:
        set_error(r, rc,
                  "source %s sent nothing for %u ms %s (stream byte %" PRIu64
                  ")",
                  r->src, r->o->timeout_ms, when, r->stream_bytes);
        break;
    case LXM_ERROR_PROTOCOL:
        set_error(r, rc,
                  "source %s broke the protocol %s (stream byte %" PRIu64
                  "): %s",
                  r->src, when, r->stream_bytes, why);
        break;
    default:
        set_error(r, rc,
                  "connection from source %s lost %s (stream byte %" PRIu64
                  "): %s",
                  r->src, when, r->stream_bytes, why);
        break;
    }
}

/* ---- 1: the request ------------------------------------------------ */

static bool name_ok(const char *s)
{
    const char *p;

    if (!s || !s[0] || s[0] == '.' || s[0] == '-')
        return false;
    if (strlen(s) + strlen(INCOMING_SUFFIX) >= LXM__NAME_MAX)
        return false;
    for (p = s; *p; p++)
        if (*p <= ' ' || *p > '~' || *p == '/' || *p == '\\' || *p == '"')
            return false;
    return true;
}

/* Which codecs we accept: our HELLO's capabilities. */
static void codec_accepts(receiver *r)
{
    const char *const *caps =
        r->o->codec_caps ? r->o->codec_caps : lxm__migrate_codec_caps();
    static const uint8_t ids[] = { LXM__CODEC_ZLIB, LXM__CODEC_ZSTD,
                                   LXM__CODEC_LZ4 };
    char cap[32];
    size_t i;

    r->codec_ok = 1u << LXM__CODEC_NONE;
    for (; *caps; caps++) {
        if (!strcmp(*caps, LXM__CAP_PAGES))
            r->codec_pages = true;
        for (i = 0; i < LXM_ARRAY_SIZE(ids); i++) {
            snprintf(cap, sizeof(cap), LXM__CAP_CODEC_PREFIX "%s",
                     lxm__codec_name(ids[i]));
            if (!strcmp(*caps, cap))
                r->codec_ok |= 1u << ids[i];
        }
    }
}

/* The MIGRATE keys of the codec (docs/protocol.md "Codecs"). */
static int check_codec(receiver *r, yajl_val req)
{
    const char *codec = lxm__jstr(req, "codec"), *fmt;
    int64_t cache = lxm__jint(req, "codec_cache_bytes", 0);
    bool pages = lxm__jbool(req, "codec_pages", false);
    int rc;

    snprintf(r->rep->codec, sizeof(r->rep->codec), "%s",
             codec && *codec ? codec : "none");
    if (!codec || !strcmp(codec, "none"))
        return 0;
    codec_accepts(r);
    if (r->codec_ok == 1u << LXM__CODEC_NONE && !r->codec_pages) {
        rc = LXM_ERROR_UNSUPPORTED;
        set_error(r, rc,
                  "source %s wants to send a compressed stream (%s); this"
                  " host accepts none",
                  r->src, codec);
        return rc;
    }
    if (pages && !r->codec_pages) {
        rc = LXM_ERROR_UNSUPPORTED;
        set_error(r, rc,
                  "source %s wants to use the page pre-pass, which this host"
                  " does not accept",
                  r->src);
        return rc;
    }
    fmt = lxm__jstr(req, "codec_format");
    if (cache < 0 || (uint64_t)cache > CODEC_CACHE_MAX ||
        (fmt && strcmp(fmt, "xl"))) {
        rc = LXM_ERROR_PROTOCOL;
        set_error(r, rc,
                  "invalid codec parameters in the request from %s"
                  " (codec_cache_bytes %" PRId64 ", codec_format %s)",
                  r->src, cache, fmt ? fmt : "xl");
        return rc;
    }
    r->use_codec = true;
    r->codec_pages = pages;
    r->codec_cache = (uint64_t)cache;
    return 0;
}

static int check_request(receiver *r, yajl_val req)
{
    const char *name = lxm__jstr(req, "name"), *uuid;
    int64_t mem = lxm__jint(req, "memory_bytes", -1);
    lxm__host_info hi;
    lxm__domain_info di;
    uint64_t need_mib, free_mib;
    int rc;

    if (!name_ok(name)) {
        rc = LXM_ERROR_PROTOCOL;
        set_error(r, rc, "invalid domain name in the request from %s", r->src);
        return rc;
    }
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->incoming, sizeof(r->incoming), "%s" INCOMING_SUFFIX, name);
    snprintf(r->rep->name, sizeof(r->rep->name), "%s", name);
    if (mem <= 0 || (uint64_t)mem % LXM_PAGE_SIZE) {
        rc = LXM_ERROR_PROTOCOL;
        set_error(r, rc, "invalid memory_bytes in the request for %s", name);
        return rc;
    }
    if (lxm__jstr(req, "kind") &&
        lxm__migrate_kind_parse(lxm__jstr(req, "kind")) < 0) {
        rc = LXM_ERROR_PROTOCOL;
        set_error(r, rc, "invalid guest kind %s in the request for %s",
                  lxm__jstr(req, "kind"), name);
        return rc;
    }
    r->memory_bytes = (uint64_t)mem;
    rc = check_codec(r, req);
    if (rc)
        return rc;

    /*
     * A domain of that name is fine only when it is the VM itself: a
     * migration to the same host (as xl allows), where the source copy
     * becomes NAME--migratedaway before GO and ours takes the name.
     */
    uuid = lxm__jstr(req, "uuid");
    if (!r->ops->domain_info(r->b, r->name, &di) &&
        !(uuid && *uuid && !strcmp(uuid, di.uuid))) {
        rc = LXM_ERROR_EXISTS;
        set_error(r, rc, "a domain named %s already exists on %s (domid %u)",
                  r->name, r->rep->destination, di.domid);
        return rc;
    }
    if (!r->ops->domain_info(r->b, r->incoming, &di)) {
        rc = LXM_ERROR_EXISTS;
        set_error(r, rc, "%s is already being migrated to %s", r->name,
                  r->rep->destination);
        return rc;
    }
    rc = r->ops->host_info(r->b, &hi);
    if (rc) {
        set_error(r, rc, "cannot read host information: %s", lxm_strerror(rc));
        return rc;
    }
    if (hi.free_memory < r->memory_bytes) {
        need_mib = (r->memory_bytes + MIB - 1) / MIB;
        free_mib = hi.free_memory / MIB;
        rc = LXM_ERROR_NOSPACE;
        set_error(r, rc,
                  "not enough memory (needs %" PRIu64 " MiB, %" PRIu64
                  " MiB free)",
                  need_mib, free_mib);
        return rc;
    }
    return 0;
}

/* ---- 2, 3: the stream ---------------------------------------------- */

static int on_stream_event(void *opaque, const lxm_stream_event *ev)
{
    receiver *r = opaque;
    uint64_t first;

    if (ev->kind != LXM_EV_RECORD || ev->layer != LXM_LAYER_LIBXC ||
        ev->u.record.type != LXM_LIBXC_PAGE_DATA || !ev->u.record.count ||
        !ev->u.record.pfns)
        return 0;
    r->pages += ev->u.record.count;
    first = ev->u.record.pfns[0] & LXM_PFN_MASK;
    if (!r->iterations || first <= r->last_pfn)
        r->iterations++;
    r->last_pfn = ev->u.record.pfns[ev->u.record.count - 1] & LXM_PFN_MASK;
    return 0;
}

/* All of buf into the pipe.  EPIPE: the restore stopped reading. */
static int pipe_write(receiver *r, const uint8_t *buf, size_t len)
{
    ssize_t n;

    while (len) {
        n = write(r->wfd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EPIPE)
                r->got_epipe = true;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int restore_stopped(receiver *r);

/* Stream bytes, validated, to the restore.  On failure the error is
 * set (restore_stopped() or the reader's). */
static int deliver(receiver *r, const uint8_t *buf, size_t len)
{
    const lxm_stream_error *se;
    char line[sizeof(se->message) + LXM__NAME_MAX + 96];
    int rc;

    /* Validate first: what fails never reaches the backend. */
    rc = lxm_stream_reader_feed(r->reader, buf, len, NULL);
    if (rc) {
        se = lxm_stream_reader_error(r->reader);
        lxm_stream_error_format(se, NULL, line, sizeof(line));
        set_error(r, rc, "malformed stream from %s: %s", r->src, line);
        return rc;
    }
    if (r->rctx) {
        rc = r->fast->restore_feed(r->rctx, buf, len);
        if (rc) {
            r->restore_rc = rc;
            return restore_stopped(r);
        }
    } else {
        rc = pipe_write(r, buf, len);
        if (rc)
            return restore_stopped(r);
    }
    r->stream_bytes += len;
    if (r->o->on_stream_bytes)
        r->o->on_stream_bytes(r->o->hook_opaque, "receive", r->stream_bytes);
    return 0;
}

/* The decoder's output (lxm__codec_data_fn), on this thread. */
static int decoded(void *opaque, const void *buf, size_t len)
{
    return deliver(opaque, buf, len);
}

static int start_decoder(receiver *r)
{
    lxm__decoder_opts d;
    int rc;

    memset(&d, 0, sizeof(d));
    d.threads = r->o->codec_threads;
    d.format = LXM_FORMAT_XL;
    d.cache_bytes = r->codec_cache;
    d.logger = r->lg;
    d.out = decoded;
    d.opaque = r;
    rc = lxm__decoder_new(&d, &r->dec);
    if (rc)
        set_error(r, rc, "cannot set up the %s decoder: %s", r->rep->codec,
                  lxm_strerror(rc));
    return rc;
}

/* A compressed frame failed: our own failure downstream (its error is
 * set already) or a bad frame. */
static int decode_failed(receiver *r, int rc, const char *what)
{
    r->stream_failed = true;
    if (rc == LXM_ERROR_CORRUPT)
        set_error(r, rc,
                  "compressed stream from %s is corrupt%s%s (%" PRIu64
                  " STREAM frames received, %" PRIu64
                  " stream bytes decoded): the migration is aborted",
                  r->src, what[0] ? " " : "", what, r->frames, r->stream_bytes);
    else
        set_error(r, rc, "decoding the stream from %s: %s", r->src,
                  lxm_strerror(rc));
    return rc;
}

/* One STREAM frame of a compressed stream. */
static int receive_frame(receiver *r, const lxm__frame *f)
{
    uint8_t id = f->codec & LXM__CODEC_ID_MASK;
    int rc;

    r->frames++;
    r->frame_bytes += f->length;
    if (f->codec != LXM__CODEC_END &&
        ((f->codec & ~(LXM__CODEC_ID_MASK | LXM__CODEC_PAGES)) ||
         !(r->codec_ok & (1u << id)) ||
         ((f->codec & LXM__CODEC_PAGES) && !r->codec_pages))) {
        rc = LXM_ERROR_PROTOCOL;
        r->stream_failed = true;
        set_error(r, rc,
                  "source %s sent a STREAM frame with codec byte 0x%02x,"
                  " which was not negotiated",
                  r->src, f->codec);
        return rc;
    }
    rc = lxm__decoder_feed_frame(r->dec, f->payload, f->length);
    if (rc)
        return decode_failed(r, rc, "");
    return 0;
}

static int start(receiver *r)
{
    lxm_stream_reader_opts ro;
    char rname[LXM__NAME_MAX + 96];
    int p[2], rc;

    snprintf(rname, sizeof(rname), "malformed stream from %s", r->src);
    memset(&ro, 0, sizeof(ro));
    ro.format = LXM_FORMAT_XL;
    ro.callback = on_stream_event;
    ro.opaque = r;
    ro.logger = NULL; /* we log the one line ourselves */
    ro.name = rname;
    rc = lxm_stream_reader_new(&ro, &r->reader);
    if (rc) {
        set_error(r, rc, "cannot create a stream reader: %s", lxm_strerror(rc));
        return rc;
    }
    if (r->use_codec) {
        rc = start_decoder(r);
        if (rc)
            return rc;
    }
    if (r->fast) {
        rc = r->fast->restore_begin(r->b, r->incoming, &r->rctx);
        if (rc)
            set_error(r, rc, "cannot start restoring %s on %s: %s", r->name,
                      r->rep->destination, lxm_strerror(rc));
        return rc;
    }
    if (pipe2(p, O_CLOEXEC)) {
        rc = LXM_ERROR_IO;
        set_error(r, rc, "pipe: %s", strerror(errno));
        return rc;
    }
    r->rfd = p[0];
    r->wfd = p[1];
    if (pthread_create(&r->restorer, NULL, restorer_main, r)) {
        close(r->rfd);
        r->rfd = -1;
        rc = LXM_ERROR_FAIL;
        set_error(r, rc, "cannot start the restore thread");
        return rc;
    }
    r->restorer_started = true;
    return 0;
}

/* The restore stopped reading before the stream ended: why? */
static int restore_stopped(receiver *r)
{
    if (r->rctx) {
        /* A failed feed: nothing of it may remain. */
        if (r->fast->restore_cancel)
            r->fast->restore_cancel(r->rctx);
        r->rctx = NULL;
    }
    join_restorer(r);
    if (r->restore_rc) {
        set_error(r, r->restore_rc,
                  "restoring %s on %s failed at stream"
                  " byte %" PRIu64 ": %s",
                  r->name, r->rep->destination, r->stream_bytes,
                  lxm_strerror(r->restore_rc));
        return r->restore_rc;
    }
    set_error(r, LXM_ERROR_FAIL,
              "restoring %s on %s stopped reading at"
              " stream byte %" PRIu64,
              r->name, r->rep->destination, r->stream_bytes);
    return LXM_ERROR_FAIL;
}

/* PROBE (filler, dropped) and PROBE_END: only before the first STREAM
 * frame (docs/protocol.md "Link probe"). */
static int receive_probe(receiver *r, const lxm__frame *f)
{
    const char *codec;
    yajl_val v = NULL;
    yajl_gen g;
    int rc;

    if (r->frames || r->probe_done ||
        (f->type == LXM__MSG_PROBE &&
         (uint64_t)f->length > LXM__PROBE_MAX - r->probe_bytes)) {
        rc = LXM_ERROR_PROTOCOL;
        set_error(r, rc,
                  "source %s sent %s %s (%" PRIu64 " probe bytes so far)",
                  r->src, lxm__msg_name(f->type),
                  r->frames       ? "after the stream began"
                  : r->probe_done ? "after PROBE_END"
                                  : "beyond the probe limit",
                  r->probe_bytes);
        return rc;
    }
    if (f->type == LXM__MSG_PROBE) {
        r->probe_bytes += f->length;
        g = lxm__json_new();
        if (!g) {
            set_error(r, LXM_ERROR_NOMEM, "out of memory");
            return LXM_ERROR_NOMEM;
        }
        lxm__json_uint(g, "bytes", r->probe_bytes);
        rc = lxm__conn_send_json(r->c, LXM__MSG_PROBE_ACK, g);
        if (rc) {
            r->conn_ok = false;
            set_error(r, rc, "cannot answer the link probe of %s: %s", r->src,
                      lxm_strerror(rc));
        }
        return rc;
    }

    /* PROBE_END: the stream that follows uses MIGRATE's codec, or none
     * (then it is exactly a stream without codec). */
    r->probe_done = true;
    rc = lxm__frame_json(f, &v);
    codec = rc ? NULL : lxm__jstr(v, "codec");
    if (codec && !strcmp(codec, "none")) {
        lxm__decoder_free(r->dec);
        r->dec = NULL;
        r->use_codec = false;
        r->codec_pages = false;
        snprintf(r->rep->codec, sizeof(r->rep->codec), "none (auto)");
    } else if (!codec || !r->use_codec || strcmp(codec, r->rep->codec)) {
        rc = LXM_ERROR_PROTOCOL;
        set_error(r, rc,
                  "source %s sent PROBE_END with codec %.40s, but MIGRATE"
                  " said %s",
                  r->src, codec ? codec : "(none given)", r->rep->codec);
    }
    yajl_tree_free(v);
    return rc;
}

/*
 * Receive the stream up to STREAM_END.  On failure *drain_r says
 * whether the sender may still be streaming.
 */
static int receive_stream(receiver *r, yajl_val *end_r, bool *drain_r)
{
    lxm__frame f;
    yajl_val v;
    int rc;

    *end_r = NULL;
    *drain_r = false;
    for (;;) {
        rc = lxm__conn_recv(r->c, &f);
        if (rc) {
            sender_error(r, rc, "during the stream");
            return rc;
        }
        switch (f.type) {
        case LXM__MSG_STREAM:
            *drain_r = true;
            if (r->dec) {
                rc = receive_frame(r, &f);
                if (rc)
                    return rc;
                break;
            }
            r->frames++;
            r->frame_bytes += f.length;
            if (f.codec != LXM__CODEC_NONE) {
                rc = LXM_ERROR_UNSUPPORTED;
                set_error(r, rc,
                          "source %s uses stream codec %u, which this"
                          " host does not support",
                          r->src, f.codec);
                return rc;
            }
            /* Here STREAM frames become stream bytes again (with a
             * codec: receive_frame() -> the decoder -> deliver()). */
            rc = deliver(r, f.payload, f.length);
            if (rc)
                return rc;
            break;
        case LXM__MSG_PROBE:
        case LXM__MSG_PROBE_END:
            *drain_r = f.type == LXM__MSG_PROBE;
            rc = receive_probe(r, &f);
            if (rc)
                return rc;
            break;
        case LXM__MSG_STREAM_END:
            *drain_r = false;
            if (r->dec) {
                /* Every frame decoded and delivered, the end marker
                 * seen and its length and digest checked. */
                rc = lxm__decoder_finish(r->dec);
                if (rc)
                    return decode_failed(r, rc, "at its end");
            }
            rc = lxm__frame_json(&f, &v);
            if (rc) {
                set_error(r, rc, "source %s sent an invalid STREAM_END",
                          r->src);
                return rc;
            }
            *end_r = v;
            return 0;
        case LXM__MSG_FAILED:
        case LXM__MSG_ERROR:
            *drain_r = false;
            r->conn_ok = false; /* it gave up: no need to answer */
            v = NULL;
            lxm__frame_json(&f, &v);
            rc = LXM_ERROR_PEER;
            set_error(r, rc, "source %s gave up at stream byte %" PRIu64 ": %s",
                      r->src, r->stream_bytes,
                      lxm__jstr(v, "error") ? lxm__jstr(v, "error")
                                            : "no reason given");
            yajl_tree_free(v);
            return rc;
        default:
            rc = LXM_ERROR_PROTOCOL;
            set_error(r, rc, "source %s sent %s during the stream", r->src,
                      lxm__msg_name(f.type));
            return rc;
        }
    }
}

/* After STREAM_END: the restore must have consumed a complete stream. */
static int finish_stream(receiver *r, yajl_val end)
{
    const lxm_stream_error *se;
    char line[sizeof(se->message) + 32];
    int64_t bytes = lxm__jint(end, "bytes", -1);
    int rc;

    join_restorer(r);
    rc = lxm_stream_reader_finish(r->reader);
    if (rc) {
        se = lxm_stream_reader_error(r->reader);
        lxm_stream_error_format(se, NULL, line, sizeof(line));
        set_error(r, rc, "stream from %s ended early: %s", r->src, line);
        return rc;
    }
    if (bytes < 0 || (uint64_t)bytes != r->stream_bytes) {
        rc = LXM_ERROR_PROTOCOL;
        set_error(r, rc,
                  "source %s says it sent %" PRId64 " stream bytes,"
                  " %" PRIu64 " arrived",
                  r->src, bytes, r->stream_bytes);
        return rc;
    }
    if (r->restore_rc) {
        set_error(r, r->restore_rc, "restoring %s on %s failed: %s", r->name,
                  r->rep->destination, lxm_strerror(r->restore_rc));
        return r->restore_rc;
    }
    r->rep->dest_domid = r->domid;
    r->want_digest = lxm__jbool(end, "verify", false);
    return 0;
}

/* ---- 3, 4: READY, GO, RUNNING -------------------------------------- */

static int commit(receiver *r)
{
    uint8_t digest[16];
    char hex[33], err[256];
    yajl_gen g;
    int rc, code;

    g = lxm__json_new();
    if (!g) {
        rc = LXM_ERROR_NOMEM;
        set_error(r, rc, "out of memory");
        return rc;
    }
    lxm__json_uint(g, "domid", r->domid);
    if (r->want_digest && r->o->verify && r->ops->memory_digest) {
        rc = r->ops->memory_digest(r->b, r->domid, digest);
        if (rc) {
            yajl_gen_free(g);
            set_error(r, rc,
                      "cannot compute the memory digest of %s (%u):"
                      " %s",
                      r->incoming, r->domid, lxm_strerror(rc));
            return rc;
        }
        lxm__migrate_digest_hex(digest, hex);
        lxm__json_str(g, "digest", hex);
    }
    rc = lxm__conn_send_json(r->c, LXM__MSG_READY, g);
    if (rc) {
        r->conn_ok = false;
        set_error(r, rc, "cannot tell source %s we are ready: %s", r->src,
                  lxm_strerror(rc));
        return rc;
    }

    rc = lxm__migrate_expect(r->c, LXM__MSG_GO, NULL, err, sizeof(err), &code);
    if (rc == LXM_ERROR_PEER) {
        r->conn_ok = false;
        set_error(r, code, "source %s gave up before GO: %s", r->src, err);
        return code;
    }
    if (rc) {
        sender_error(r, rc, "waiting for GO");
        return rc;
    }

    /* GO: the sender renamed its copy away and waits for us. */
    rc = r->ops->rename(r->b, r->domid, r->name);
    if (rc) {
        set_error(r, rc, "cannot rename %s (%u) to %s on %s: %s", r->incoming,
                  r->domid, r->name, r->rep->destination, lxm_strerror(rc));
        return rc;
    }
    rc = r->ops->unpause(r->b, r->domid);
    if (rc) {
        set_error(r, rc, "cannot start %s (%u) on %s: %s", r->name, r->domid,
                  r->rep->destination, lxm_strerror(rc));
        return rc;
    }
    r->have_domid = false; /* it is the VM now, not a partial copy */

    g = lxm__json_new();
    if (g)
        lxm__json_uint(g, "domid", r->domid);
    rc = g ? lxm__conn_send_json(r->c, LXM__MSG_RUNNING, g) : LXM_ERROR_NOMEM;
    if (rc) {
        /* It runs here; the sender cannot know and keeps its copy
         * suspended (UNKNOWN on its side).  Say so. */
        set_error(r, 0,
                  "%s runs on %s (domid %u) but RUNNING could not be sent to"
                  " source %s: %s; its suspended copy there must be destroyed"
                  " by hand",
                  r->name, r->rep->destination, r->domid, r->src,
                  lxm_strerror(rc));
    }
    return 0;
}

/* ---- the entry point ---------------------------------------------- */

int lxm__migrate_receive(const lxm__backend_ops *ops, lxm__backend *b,
                         lxm__conn *c, yajl_val req, const lxm__migrate_opts *o,
                         lxm__migrate_report *rep)
{
    lxm__migrate_opts defaults;
    lxm__migrate_report local;
    lxm__host_info hi;
    receiver r_, *r = &r_;
    yajl_val end = NULL;
    const char *src;
    bool drain = false;
    int rc;

    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof(*rep));
    rep->status = LXM__MIG_REFUSED;
    if (!o) {
        lxm__migrate_opts_init(&defaults);
        o = &defaults;
    } else if (!o->timeout_ms) {
        defaults = *o;
        defaults.timeout_ms = 30000;
        o = &defaults;
    }

    memset(r, 0, sizeof(*r));
    r->t0 = lxm__migrate_now_ms();
    r->ops = ops;
    r->b = b;
    r->c = c;
    r->o = o;
    r->rep = rep;
    r->lg = o->logger;
    r->rfd = r->wfd = -1;
    r->conn_ok = true;
    r->fast = lxm__backend_fastpath_of(ops);
    if (r->fast && (!r->fast->restore_begin || !r->fast->restore_feed ||
                    !r->fast->restore_finish))
        r->fast = NULL;

    src = lxm__jstr(req, "source_host");
    snprintf(rep->source, sizeof(rep->source), "%s",
             src && src[0] ? src : lxm__conn_peer(c));
    if (src && src[0])
        snprintf(r->src, sizeof(r->src), "%s (%s)", rep->source,
                 lxm__conn_peer(c));
    else
        snprintf(r->src, sizeof(r->src), "%s", lxm__conn_peer(c));
    if (o->host_name)
        snprintf(rep->destination, sizeof(rep->destination), "%s",
                 o->host_name);
    else if (!ops->host_info(b, &hi))
        snprintf(rep->destination, sizeof(rep->destination), "%s", hi.hostname);
    if (!rep->destination[0])
        snprintf(rep->destination, sizeof(rep->destination), "this host");
    lxm__conn_set_timeout(c, o->timeout_ms);

    rc = check_request(r, req);
    if (rc) {
        lxm__conn_send_error(c, LXM__MSG_ERROR, rc, "%s", rep->error);
        goto out;
    }
    rc = lxm__conn_send_json(c, LXM__MSG_ACCEPT, lxm__json_new());
    if (rc) {
        set_error(r, rc, "cannot accept the migration of %s from %s: %s",
                  r->name, r->src, lxm_strerror(rc));
        goto out;
    }

    rep->status = LXM__MIG_FAILED;
    sigpipe_block(r);
    rc = start(r);
    if (!rc)
        rc = receive_stream(r, &end, &drain);
    if (!rc)
        rc = finish_stream(r, end);
    if (!rc)
        rc = commit(r);
    if (rc) {
        destroy_ours(r);
        tell_sender_failed(r, drain || r->stream_failed ? "stream" : "commit");
        if (drain)
            drain_sender(r);
    } else {
        rep->status = LXM__MIG_MIGRATED;
    }
    join_restorer(r);
    sigpipe_restore(r);

out:
    rep->rounds = r->iterations;
    rep->pages_sent = r->pages;
    rep->bytes_stream = r->stream_bytes;
    rep->bytes_wire = lxm__conn_bytes_in(c) + lxm__conn_bytes_out(c);
    rep->bytes_frames = r->frame_bytes;
    rep->frames = r->frames;
    rep->total_ms = lxm__migrate_now_ms() - r->t0;
    lxm__decoder_free(r->dec);
    if (rep->status == LXM__MIG_MIGRATED)
        rep->rc = 0;
    else if (!rep->rc)
        rep->rc = rc ? rc : LXM_ERROR_FAIL;
    yajl_tree_free(end);
    lxm_stream_reader_free(r->reader);
    return rep->status == LXM__MIG_MIGRATED ? 0 : rep->rc;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
