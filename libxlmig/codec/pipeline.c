/*
 * pipeline.c - the encoder and decoder pipelines: raw stream bytes <->
 * checksummed frames, with the block codec on worker threads and the
 * output in order.
 *
 * Entry points:
 *   lxm__encoder_new, _feed, _flush, _finish, _get_stats, _free
 *   lxm__decoder_new, _feed_frame, _feed, _finish, _done, _get_stats,
 *   _free
 *   lxm__codec_default_threads
 *
 * Encoder: feed -> pre-pass (caller's thread) -> fill the open job's
 * chunk -> submit when full -> a worker compresses it and writes the
 * frame -> the caller emits finished jobs in submission order.
 * Decoder: feed_frame -> header, caps, sequence (caller's thread) ->
 * submit -> a worker checks the checksum and decodes -> the caller
 * emits in order through the pre-pass decoder.
 *
 * Threads and ownership (struct pool): a ring of `depth` jobs.  A job
 * belongs to the caller's thread while FREE (being filled) and DONE
 * (being emitted), to the one worker that took it while QUEUED ->
 * RUNNING.  `state`, `submitted`, `next_take` and `stop` are protected
 * by pool.lock; everything else in a job follows the job's owner.
 * There is one lock; callbacks (out_fn, the logger) are only called by
 * the caller's thread, never with the lock held.  Each worker has its
 * own block ctx; the caller's thread uses ctxs[0] when running inline
 * (threads == 1, no workers).
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "libxlmig_internal.h"
#include "codec/codec.h"
#include "transport/proto.h"

#define DEFAULT_CHUNK LXM__STREAM_CHUNK

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

unsigned int lxm__codec_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1)
        return 1;
    return n > (long)LXM__CODEC_THREADS_MAX ? LXM__CODEC_THREADS_MAX
                                            : (unsigned int)n;
}

/* ---- the worker pool ---- */

enum { JOB_FREE, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

typedef struct job {
    /* follows the job's owner (see the top of the file) */
    lxm__buf in;       /* encoder: raw chunk; decoder: the whole frame */
    lxm__buf out;      /* encoder: the frame; decoder: decoded bytes */
    lxm__cframe_hdr h; /* decoder: the parsed header */
    uint64_t seq;
    uint64_t offset; /* decoder: of the frame in the input */
    int rc;
    bool raw; /* encoder: went uncompressed */
    uint64_t ns;
    char why[128]; /* decoder: what was corrupt */
    /* protected by pool.lock */
    int state;
} job;

typedef struct pool pool;
typedef void pool_work_fn(pool *p, lxm__block_ctx *ctx, job *j);

typedef struct worker_arg {
    pool *p;
    unsigned int idx;
} worker_arg;

struct pool {
    /* immutable after pool_init */
    unsigned int nworkers; /* 0: work runs inline in the caller */
    unsigned int depth;
    job *jobs;
    pool_work_fn *work;
    const void *owner;     /* the encoder/decoder (for work) */
    const char *name;      /* thread name prefix */
    lxm__block_ctx **ctxs; /* one per worker, or one for inline */
    pthread_t *tids;
    worker_arg *args;
    unsigned int started; /* threads running */
    bool sync_init;
    /* protected by lock */
    pthread_mutex_t lock;
    pthread_cond_t work_cv; /* a job was queued, or stop */
    pthread_cond_t done_cv; /* a job is done */
    uint64_t submitted;
    uint64_t next_take;
    bool stop;
    /* caller's thread only */
    uint64_t emitted;
};

static void *worker_main(void *opaque)
{
    worker_arg *a = opaque;
    pool *p = a->p;
    lxm__block_ctx *ctx = p->ctxs[a->idx];
    char name[16];
    job *j;

    snprintf(name, sizeof(name), "%s-%u", p->name, a->idx);
    pthread_setname_np(pthread_self(), name);
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (!p->stop && p->next_take == p->submitted)
            pthread_cond_wait(&p->work_cv, &p->lock);
        if (p->stop) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        j = &p->jobs[p->next_take++ % p->depth];
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&p->lock);

        p->work(p, ctx, j);

        pthread_mutex_lock(&p->lock);
        j->state = JOB_DONE;
        pthread_cond_broadcast(&p->done_cv);
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

static void pool_dispose(pool *p)
{
    unsigned int i, nctx = p->nworkers ? p->nworkers : 1;

    if (p->started) {
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->work_cv);
        pthread_mutex_unlock(&p->lock);
        for (i = 0; i < p->started; i++)
            pthread_join(p->tids[i], NULL);
        p->started = 0;
    }
    if (p->sync_init) {
        pthread_cond_destroy(&p->done_cv);
        pthread_cond_destroy(&p->work_cv);
        pthread_mutex_destroy(&p->lock);
        p->sync_init = false;
    }
    if (p->jobs) {
        for (i = 0; i < p->depth; i++) {
            lxm__buf_dispose(&p->jobs[i].in);
            lxm__buf_dispose(&p->jobs[i].out);
        }
    }
    if (p->ctxs) {
        for (i = 0; i < nctx; i++)
            lxm__block_ctx_free(p->ctxs[i]);
    }
    free(p->jobs);
    free(p->ctxs);
    free(p->tids);
    free(p->args);
    p->jobs = NULL;
    p->ctxs = NULL;
    p->tids = NULL;
    p->args = NULL;
}

/* threads: 0 = default, 1 = inline.  On failure the pool is disposed
 * of. */
static int pool_init(pool *p, unsigned int threads, pool_work_fn *work,
                     const void *owner, const char *name)
{
    unsigned int i, nctx;
    int rc, r;

    memset(p, 0, sizeof(*p));
    if (!threads)
        threads = lxm__codec_default_threads();
    if (threads > LXM__CODEC_THREADS_MAX)
        threads = LXM__CODEC_THREADS_MAX;
    p->nworkers = threads > 1 ? threads : 0;
    p->depth = threads > 1 ? 2 * threads : 1;
    p->work = work;
    p->owner = owner;
    p->name = name;
    nctx = p->nworkers ? p->nworkers : 1;
    p->jobs = calloc(p->depth, sizeof(*p->jobs));
    p->ctxs = calloc(nctx, sizeof(*p->ctxs));
    p->tids = calloc(nctx, sizeof(*p->tids));
    p->args = calloc(nctx, sizeof(*p->args));
    if (!p->jobs || !p->ctxs || !p->tids || !p->args) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    for (i = 0; i < nctx; i++) {
        rc = lxm__block_ctx_new(&p->ctxs[i]);
        if (rc)
            goto out;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->sync_init = true;
    for (i = 0; i < p->nworkers; i++) {
        p->args[i].p = p;
        p->args[i].idx = i;
        r = pthread_create(&p->tids[i], NULL, worker_main, &p->args[i]);
        if (r) {
            rc = r == EAGAIN ? LXM_ERROR_NOMEM : LXM_ERROR_FAIL;
            goto out;
        }
        p->started++;
    }
    rc = 0;

out:
    if (rc)
        pool_dispose(p);
    return rc;
}

/* The job the caller may fill next, or NULL when the ring is full (the
 * oldest must be emitted first). */
static job *pool_slot(pool *p)
{
    if (p->submitted - p->emitted >= p->depth)
        return NULL;
    return &p->jobs[p->submitted % p->depth];
}

static void pool_submit(pool *p, job *j)
{
    if (!p->nworkers) {
        p->work(p, p->ctxs[0], j);
        j->state = JOB_DONE;
        p->submitted++;
        return;
    }
    pthread_mutex_lock(&p->lock);
    j->state = JOB_QUEUED;
    p->submitted++;
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->lock);
}

/* Wait for the oldest job not yet emitted; NULL when there is none.
 * *wait_ns grows by the time spent waiting. */
static job *pool_oldest(pool *p, uint64_t *wait_ns)
{
    job *j;
    uint64_t t0;

    if (p->emitted == p->submitted)
        return NULL;
    j = &p->jobs[p->emitted % p->depth];
    if (!p->nworkers)
        return j;
    t0 = now_ns();
    pthread_mutex_lock(&p->lock);
    while (j->state != JOB_DONE)
        pthread_cond_wait(&p->done_cv, &p->lock);
    pthread_mutex_unlock(&p->lock);
    *wait_ns += now_ns() - t0;
    return j;
}

/* The oldest job was emitted: it is free again. */
static void pool_release(pool *p, job *j)
{
    j->in.len = 0;
    j->out.len = 0;
    j->rc = 0;
    j->raw = false;
    j->ns = 0;
    j->why[0] = '\0';
    if (p->nworkers) {
        pthread_mutex_lock(&p->lock);
        j->state = JOB_FREE;
        pthread_mutex_unlock(&p->lock);
    } else {
        j->state = JOB_FREE;
    }
    p->emitted++;
}

/* ---- encoder ---- */

struct lxm__encoder {
    /* immutable after _new (read by the workers) */
    lxm__codec_spec spec;
    uint32_t chunk;
    bool prepass;
    xentoollog_logger *lg;
    lxm__codec_frame_fn *out;
    void *opaque;
    /* caller's thread only */
    pool p;
    lxm__pagepass *pp; /* NULL: no pre-pass */
    lxm__buf tok;      /* pre-pass output not yet in a chunk */
    job *cur;          /* the job being filled, or NULL */
    XXH3_state_t *digest;
    uint64_t seq;
    int rc; /* sticky */
    bool finished;
    lxm__encoder_stats st;
};

static void encode_work(pool *p, lxm__block_ctx *ctx, job *j)
{
    const lxm__encoder *e = p->owner;
    uint32_t len = (uint32_t)j->in.len;
    /* the output must stay below 15/16 of the input */
    size_t cap = ((size_t)len * 15 + 15) / 16 - 1;
    uint8_t flag = e->prepass ? LXM__CODEC_PAGES : 0, codec;
    size_t clen = 0;
    uint64_t t0 = now_ns();
    int rc;

    rc = lxm__buf_reserve(&j->out, LXM__CFRAME_HDR_LEN + len);
    if (rc)
        goto out;
    if (e->spec.codec != LXM__CODEC_NONE) {
        rc = lxm__block_compress(ctx, &e->spec, j->in.p, len,
                                 j->out.p + LXM__CFRAME_HDR_LEN, cap, &clen);
        if (rc)
            goto out;
    }
    if (clen) {
        codec = e->spec.codec | flag;
    } else {
        memcpy(j->out.p + LXM__CFRAME_HDR_LEN, j->in.p, len);
        clen = len;
        codec = LXM__CODEC_NONE | flag;
        j->raw = e->spec.codec != LXM__CODEC_NONE;
    }
    lxm__cframe_put_hdr(j->out.p, codec, len, j->seq,
                        j->out.p + LXM__CFRAME_HDR_LEN, (uint32_t)clen);
    j->out.len = LXM__CFRAME_HDR_LEN + clen;

out:
    j->rc = rc;
    j->ns = now_ns() - t0;
}

/* Emit the oldest job (waiting for it). */
static int enc_emit_one(lxm__encoder *e)
{
    job *j = pool_oldest(&e->p, &e->st.ns_wait);
    int rc;

    if (!j)
        return 0;
    e->st.ns_block += j->ns;
    rc = j->rc;
    if (rc) {
        LXM_LOG_ERROR(e->lg,
                      "compressed stream: compressing frame %" PRIu64
                      " with %s: %s",
                      j->seq, lxm__codec_name(e->spec.codec), lxm_strerror(rc));
    } else {
        rc = e->out(e->opaque, j->out.p[4], j->out.p, j->out.len);
        e->st.bytes_out += j->out.len;
        e->st.frames++;
        e->st.frames_raw += j->raw;
    }
    pool_release(&e->p, j);
    return rc;
}

static int enc_submit(lxm__encoder *e)
{
    job *j = e->cur;

    e->cur = NULL;
    j->seq = e->seq++;
    pool_submit(&e->p, j);
    /* inline: emit at once, nothing is gained by holding it */
    if (!e->p.nworkers)
        return enc_emit_one(e);
    return 0;
}

static int enc_fill(lxm__encoder *e, const uint8_t *p, size_t n)
{
    size_t k;
    int rc;

    while (n) {
        while (!e->cur) {
            e->cur = pool_slot(&e->p);
            if (!e->cur) {
                rc = enc_emit_one(e);
                if (rc)
                    return rc;
            }
        }
        k = LXM_MIN(n, (size_t)e->chunk - e->cur->in.len);
        rc = lxm__buf_append(&e->cur->in, p, k);
        if (rc)
            return rc;
        p += k;
        n -= k;
        e->st.bytes_tokens += k;
        if (e->cur->in.len == e->chunk) {
            rc = enc_submit(e);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int lxm__encoder_new(const lxm__encoder_opts *o, lxm__encoder **e_r)
{
    lxm__pagepass_opts po = { 0 };
    lxm__encoder *e = NULL;
    int rc;

    if (!o->out || o->chunk > LXM__CODEC_CHUNK_MAX ||
        (o->spec.codec != LXM__CODEC_NONE && o->spec.codec != LXM__CODEC_ZLIB &&
         o->spec.codec != LXM__CODEC_ZSTD && o->spec.codec != LXM__CODEC_LZ4)) {
        LXM_LOG_ERROR(o->logger, "compressed stream: bad encoder options");
        return LXM_ERROR_INVAL;
    }
    e = calloc(1, sizeof(*e));
    if (!e)
        return LXM_ERROR_NOMEM;
    e->spec = o->spec;
    e->chunk = o->chunk ? o->chunk : DEFAULT_CHUNK;
    e->prepass = !o->no_prepass;
    e->lg = o->logger;
    e->out = o->out;
    e->opaque = o->opaque;
    e->digest = XXH3_createState();
    if (!e->digest) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    XXH3_128bits_reset(e->digest);
    if (e->prepass) {
        po.format = o->format;
        po.cache_bytes = o->cache_bytes;
        po.version = o->prepass_version;
        po.logger = o->logger;
        rc = lxm__pagepass_encoder_new(&po, &e->pp);
        if (rc)
            goto out;
    }
    rc = pool_init(&e->p, o->threads, encode_work, e, "lxm-enc");
    if (rc)
        goto out;
    e->st.threads = e->p.nworkers ? e->p.nworkers : 1;
    *e_r = e;
    e = NULL;

out:
    if (e) {
        lxm__pagepass_free(e->pp);
        XXH3_freeState(e->digest);
        free(e);
    }
    return rc;
}

void lxm__encoder_free(lxm__encoder *e)
{
    if (!e)
        return;
    pool_dispose(&e->p);
    lxm__pagepass_free(e->pp);
    lxm__buf_dispose(&e->tok);
    XXH3_freeState(e->digest);
    free(e);
}

int lxm__encoder_feed(lxm__encoder *e, const void *buf, size_t len)
{
    uint64_t t0;
    int rc;

    if (e->rc)
        return e->rc;
    if (e->finished)
        return LXM_ERROR_STATE;
    if (!len)
        return 0;
    e->st.bytes_in += len;
    XXH3_128bits_update(e->digest, buf, len);
    if (e->pp) {
        t0 = now_ns();
        rc = lxm__pagepass_feed(e->pp, buf, len, &e->tok);
        e->st.ns_prepass += now_ns() - t0;
        if (rc)
            goto out;
        rc = enc_fill(e, e->tok.p, e->tok.len);
        e->tok.len = 0;
    } else {
        rc = enc_fill(e, buf, len);
    }
out:
    e->rc = rc;
    return rc;
}

/* Submit the partial chunk, then emit everything. */
static int enc_drain(lxm__encoder *e)
{
    int rc;

    if (e->cur && e->cur->in.len) {
        rc = enc_submit(e);
        if (rc)
            return rc;
    }
    while (e->p.emitted != e->p.submitted) {
        rc = enc_emit_one(e);
        if (rc)
            return rc;
    }
    return 0;
}

int lxm__encoder_flush(lxm__encoder *e)
{
    if (e->rc)
        return e->rc;
    if (e->finished)
        return LXM_ERROR_STATE;
    e->rc = enc_drain(e);
    return e->rc;
}

int lxm__encoder_finish(lxm__encoder *e)
{
    uint8_t frame[LXM__CFRAME_HDR_LEN + LXM__CFRAME_END_LEN];
    uint8_t *end = frame + LXM__CFRAME_HDR_LEN;
    XXH128_hash_t h;
    uint64_t t0;
    int rc;

    if (e->rc)
        return e->rc;
    if (e->finished)
        return LXM_ERROR_STATE;
    if (e->pp) {
        t0 = now_ns();
        rc = lxm__pagepass_finish(e->pp, &e->tok);
        e->st.ns_prepass += now_ns() - t0;
        if (rc)
            goto out;
        rc = enc_fill(e, e->tok.p, e->tok.len);
        e->tok.len = 0;
        if (rc)
            goto out;
    }
    rc = enc_drain(e);
    if (rc)
        goto out;
    h = XXH3_128bits_digest(e->digest);
    lxm__put_le64(end, e->st.bytes_in);
    lxm__put_le64(end + 8, h.high64);
    lxm__put_le64(end + 16, h.low64);
    lxm__cframe_put_hdr(frame, LXM__CODEC_END, LXM__CFRAME_END_LEN, e->seq++,
                        end, LXM__CFRAME_END_LEN);
    rc = e->out(e->opaque, LXM__CODEC_END, frame, sizeof(frame));
    e->st.bytes_out += sizeof(frame);
    e->st.frames++;
    e->finished = true;
out:
    e->rc = rc;
    return rc;
}

void lxm__encoder_get_stats(const lxm__encoder *e, lxm__encoder_stats *st)
{
    *st = e->st;
    memset(&st->pages, 0, sizeof(st->pages));
    if (e->pp)
        lxm__pagepass_get_stats(e->pp, &st->pages);
}

/* ---- decoder ---- */

struct lxm__decoder {
    /* immutable after _new */
    lxm__pagepass_opts po;
    uint64_t base_offset;
    xentoollog_logger *lg;
    lxm__codec_data_fn *out;
    void *opaque;
    /* caller's thread only */
    pool p;
    lxm__pagepass *pp; /* made at the first PAGES frame */
    int pages;         /* -1: no data frame yet; 0/1: PAGES flag */
    lxm__buf tok;      /* pre-pass decoder output */
    lxm__buf acc;      /* _feed: a partial frame */
    uint32_t acc_need; /* its full length once the header is in */
    XXH3_state_t *digest;
    uint64_t seq;    /* expected next */
    uint64_t offset; /* of the next frame in the input */
    bool done;       /* end marker seen and checked */
    int rc;          /* sticky */
    uint64_t ns_wait;
    lxm__decoder_stats st;
};

static void decode_work(pool *p, lxm__block_ctx *ctx, job *j)
{
    const uint8_t *hdr = j->in.p;
    uint64_t t0 = now_ns();
    int rc;

    (void)p;
    if (!lxm__cframe_checksum_ok(hdr, &j->h, hdr + LXM__CFRAME_HDR_LEN)) {
        snprintf(j->why, sizeof(j->why), "checksum mismatch");
        rc = LXM_ERROR_CORRUPT;
        goto out;
    }
    rc = lxm__buf_reserve(&j->out, j->h.raw_len);
    if (rc)
        goto out;
    rc = lxm__block_decompress(ctx, j->h.codec & LXM__CODEC_ID_MASK,
                               hdr + LXM__CFRAME_HDR_LEN, j->h.payload_len,
                               j->out.p, j->h.raw_len);
    if (rc == LXM_ERROR_CORRUPT)
        snprintf(j->why, sizeof(j->why), "%s payload does not decode",
                 lxm__codec_name(j->h.codec));
    else if (!rc)
        j->out.len = j->h.raw_len;
out:
    j->rc = rc;
    j->ns = now_ns() - t0;
}

static int dec_corrupt(lxm__decoder *d, uint64_t seq, uint64_t offset,
                       const char *why)
{
    LXM_LOG_ERROR(
        d->lg, "compressed stream: frame %" PRIu64 " at offset %" PRIu64 ": %s",
        seq, d->base_offset + offset, why);
    return LXM_ERROR_CORRUPT;
}

static int dec_write(lxm__decoder *d, const uint8_t *p, size_t n)
{
    if (!n)
        return 0;
    XXH3_128bits_update(d->digest, p, n);
    d->st.bytes_out += n;
    return d->out(d->opaque, p, n);
}

static int dec_emit_one(lxm__decoder *d)
{
    job *j = pool_oldest(&d->p, &d->ns_wait);
    uint64_t t0;
    int rc;

    if (!j)
        return 0;
    d->st.ns_block += j->ns;
    rc = j->rc;
    if (rc == LXM_ERROR_CORRUPT) {
        rc = dec_corrupt(d, j->seq, j->offset, j->why);
    } else if (rc) {
        LXM_LOG_ERROR(d->lg,
                      "compressed stream: frame %" PRIu64 " at offset %" PRIu64
                      ": %s",
                      j->seq, d->base_offset + j->offset, lxm_strerror(rc));
    } else if (d->pp) {
        t0 = now_ns();
        d->tok.len = 0;
        rc = lxm__pagepass_feed(d->pp, j->out.p, j->out.len, &d->tok);
        d->st.ns_prepass += now_ns() - t0;
        if (!rc)
            rc = dec_write(d, d->tok.p, d->tok.len);
        d->tok.len = 0;
    } else {
        rc = dec_write(d, j->out.p, j->out.len);
    }
    pool_release(&d->p, j);
    return rc;
}

static int dec_drain(lxm__decoder *d)
{
    int rc;

    while (d->p.emitted != d->p.submitted) {
        rc = dec_emit_one(d);
        if (rc)
            return rc;
    }
    return 0;
}

int lxm__decoder_new(const lxm__decoder_opts *o, lxm__decoder **d_r)
{
    lxm__decoder *d;
    int rc;

    if (!o->out) {
        LXM_LOG_ERROR(o->logger, "compressed stream: bad decoder options");
        return LXM_ERROR_INVAL;
    }
    d = calloc(1, sizeof(*d));
    if (!d)
        return LXM_ERROR_NOMEM;
    d->po.format = o->format;
    d->po.cache_bytes = o->cache_bytes;
    d->po.logger = o->logger;
    d->base_offset = o->base_offset;
    d->lg = o->logger;
    d->out = o->out;
    d->opaque = o->opaque;
    d->pages = -1;
    d->digest = XXH3_createState();
    if (!d->digest) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    XXH3_128bits_reset(d->digest);
    rc = pool_init(&d->p, o->threads, decode_work, d, "lxm-dec");
    if (rc)
        goto out;
    d->st.threads = d->p.nworkers ? d->p.nworkers : 1;
    *d_r = d;
    d = NULL;
out:
    if (d) {
        XXH3_freeState(d->digest);
        free(d);
    }
    return rc;
}

void lxm__decoder_free(lxm__decoder *d)
{
    if (!d)
        return;
    pool_dispose(&d->p);
    lxm__pagepass_free(d->pp);
    lxm__buf_dispose(&d->tok);
    lxm__buf_dispose(&d->acc);
    XXH3_freeState(d->digest);
    free(d);
}

/* The end marker: everything before it is out; check the totals. */
static int dec_end(lxm__decoder *d, const uint8_t *frame,
                   const lxm__cframe_hdr *h, uint64_t offset)
{
    const uint8_t *end = frame + LXM__CFRAME_HDR_LEN;
    XXH128_hash_t got;
    uint64_t total;
    char why[160];
    int rc;

    if (!lxm__cframe_checksum_ok(frame, h, end))
        return dec_corrupt(d, h->seq, offset, "end marker checksum mismatch");
    rc = dec_drain(d);
    if (rc)
        return rc;
    if (d->pp) {
        d->tok.len = 0;
        rc = lxm__pagepass_finish(d->pp, &d->tok);
        if (!rc)
            rc = dec_write(d, d->tok.p, d->tok.len);
        d->tok.len = 0;
        if (rc)
            return rc;
    }
    total = lxm__le64(end);
    if (total != d->st.bytes_out) {
        snprintf(why, sizeof(why),
                 "end marker says %" PRIu64 " stream bytes, decoded %" PRIu64,
                 total, d->st.bytes_out);
        return dec_corrupt(d, h->seq, offset, why);
    }
    got = XXH3_128bits_digest(d->digest);
    if (got.high64 != lxm__le64(end + 8) || got.low64 != lxm__le64(end + 16))
        return dec_corrupt(d, h->seq, offset,
                           "end marker: digest of the decoded stream does"
                           " not match");
    d->done = true;
    return 0;
}

static int dec_frame(lxm__decoder *d, const uint8_t *frame, size_t len)
{
    lxm__cframe_hdr h;
    uint64_t offset = d->offset;
    char why[160];
    job *j;
    int pages, rc;

    if (d->done)
        return dec_corrupt(d, d->seq, offset, "data after the end marker");
    if (len < LXM__CFRAME_HDR_LEN) {
        snprintf(why, sizeof(why), "truncated frame (%zu bytes)", len);
        return dec_corrupt(d, d->seq, offset, why);
    }
    rc = lxm__cframe_parse_hdr(frame, &h, why, sizeof(why));
    if (rc)
        return dec_corrupt(d, d->seq, offset, why);
    if (len != (size_t)LXM__CFRAME_HDR_LEN + h.payload_len) {
        snprintf(why, sizeof(why),
                 "frame of %zu bytes, header says %u + %u (truncated?)", len,
                 LXM__CFRAME_HDR_LEN, h.payload_len);
        return dec_corrupt(d, d->seq, offset, why);
    }
    if (h.seq != d->seq) {
        snprintf(why, sizeof(why),
                 "sequence number %" PRIu64 ", expected %" PRIu64
                 " (frame lost, repeated or out of order)",
                 h.seq, d->seq);
        return dec_corrupt(d, d->seq, offset, why);
    }
    d->seq++;
    d->offset += len;
    d->st.bytes_in += len;
    d->st.frames++;
    if (h.codec == LXM__CODEC_END)
        return dec_end(d, frame, &h, offset);

    pages = !!(h.codec & LXM__CODEC_PAGES);
    if (d->pages < 0) {
        d->pages = pages;
        if (pages) {
            rc = lxm__pagepass_decoder_new(&d->po, &d->pp);
            if (rc)
                return rc;
        }
    } else if (d->pages != pages) {
        return dec_corrupt(d, h.seq, offset,
                           pages ? "pre-pass frame in a plain stream"
                                 : "plain frame in a pre-pass stream");
    }

    while (!(j = pool_slot(&d->p))) {
        rc = dec_emit_one(d);
        if (rc)
            return rc;
    }
    rc = lxm__buf_append(&j->in, frame, len);
    if (rc)
        return rc;
    j->h = h;
    j->seq = h.seq;
    j->offset = offset;
    pool_submit(&d->p, j);
    if (!d->p.nworkers)
        return dec_emit_one(d);
    return 0;
}

int lxm__decoder_feed_frame(lxm__decoder *d, const void *frame, size_t len)
{
    if (d->rc)
        return d->rc;
    if (d->acc.len)
        d->rc = dec_corrupt(d, d->seq, d->offset,
                            "whole frame fed after a partial one");
    else
        d->rc = dec_frame(d, frame, len);
    return d->rc;
}

/* The full length of the frame whose header is at hdr (caps checked). */
static int dec_frame_len(lxm__decoder *d, const uint8_t *hdr, uint32_t *len_r)
{
    lxm__cframe_hdr h;
    char why[160];

    if (lxm__cframe_parse_hdr(hdr, &h, why, sizeof(why)))
        return dec_corrupt(d, d->seq, d->offset, why);
    *len_r = LXM__CFRAME_HDR_LEN + h.payload_len;
    return 0;
}

static int dec_bytes(lxm__decoder *d, const uint8_t *p, size_t len)
{
    uint32_t flen;
    size_t k;
    int rc;

    while (len) {
        if (d->done)
            return dec_corrupt(d, d->seq, d->offset,
                               "data after the end marker");
        if (!d->acc.len && len >= LXM__CFRAME_HDR_LEN) {
            /* the common case: whole frames straight from the input */
            rc = dec_frame_len(d, p, &flen);
            if (rc)
                return rc;
            if (len >= flen) {
                rc = dec_frame(d, p, flen);
                if (rc)
                    return rc;
                p += flen;
                len -= flen;
                continue;
            }
        }
        if (d->acc.len < LXM__CFRAME_HDR_LEN) {
            k = LXM_MIN(len, LXM__CFRAME_HDR_LEN - d->acc.len);
            rc = lxm__buf_append(&d->acc, p, k);
            if (rc)
                return rc;
            p += k;
            len -= k;
            if (d->acc.len < LXM__CFRAME_HDR_LEN)
                break;
            rc = dec_frame_len(d, d->acc.p, &d->acc_need);
            if (rc)
                return rc;
        }
        k = LXM_MIN(len, d->acc_need - d->acc.len);
        rc = lxm__buf_append(&d->acc, p, k);
        if (rc)
            return rc;
        p += k;
        len -= k;
        if (d->acc.len == d->acc_need) {
            rc = dec_frame(d, d->acc.p, d->acc.len);
            d->acc.len = 0;
            if (rc)
                return rc;
        }
    }
    return 0;
}

int lxm__decoder_feed(lxm__decoder *d, const void *buf, size_t len)
{
    if (d->rc)
        return d->rc;
    d->rc = dec_bytes(d, buf, len);
    return d->rc;
}

int lxm__decoder_finish(lxm__decoder *d)
{
    char why[160];
    int rc;

    if (d->rc)
        return d->rc;
    rc = dec_drain(d);
    if (rc)
        goto out;
    if (d->acc.len) {
        snprintf(why, sizeof(why), "truncated frame (%zu bytes at the end)",
                 d->acc.len);
        rc = dec_corrupt(d, d->seq, d->offset, why);
    } else if (!d->done) {
        rc = dec_corrupt(d, d->seq, d->offset,
                         "truncated stream: no end marker");
    }
out:
    d->rc = rc;
    return rc;
}

bool lxm__decoder_done(const lxm__decoder *d)
{
    return d->done;
}

void lxm__decoder_get_stats(const lxm__decoder *d, lxm__decoder_stats *st)
{
    *st = d->st;
}

/* ---- addition (migration engine, issue 5: `auto`) ------------------- */

/*
 * Switch the block codec of a running encoder, between frames: every
 * byte fed so far goes out with the old spec first (as
 * lxm__encoder_flush()), then the following chunks use the new one.
 * Once drained no worker holds a job, and the next job is handed over
 * under pool.lock, so the workers see the new spec without a lock of
 * their own.  The pre-pass and the sequence numbers go on unchanged;
 * frames name their codec, so the decoder needs nothing.  Declared in
 * transport/proto.h (codec.h is frozen).
 */
int lxm__encoder_set_spec(lxm__encoder *e, const lxm__codec_spec *spec)
{
    if (e->rc)
        return e->rc;
    if (e->finished)
        return LXM_ERROR_STATE;
    if (spec->codec != LXM__CODEC_NONE && spec->codec != LXM__CODEC_ZLIB &&
        spec->codec != LXM__CODEC_ZSTD && spec->codec != LXM__CODEC_LZ4)
        return LXM_ERROR_INVAL;
    if (spec->codec == e->spec.codec && spec->level == e->spec.level)
        return 0;
    e->rc = enc_drain(e);
    if (!e->rc)
        e->spec = *spec;
    return e->rc;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
