/*
 * autocodec.c - what `--compress=auto` decides before the stream starts
 * (issue 5 item 4; docs/compression.md "auto"):
 *
 *   lxm__auto_decide()      pure: link rate, cap, codec rate -> raw or
 *                           the codec path (table-tested)
 *   lxm__auto_codec_rate()  this host's codec path throughput, measured
 *                           per worker count and cached for a minute
 *
 * The link rate comes from the PROBE frames send.c exchanges with the
 * destination (docs/protocol.md "Link probe").
 *
 * Threads: lxm__auto_codec_rate() may be called from any thread.  The
 * synthetic stream is built once (pthread_once) and read-only after;
 * the cache of rates is protected by rate_lock, a leaf lock: the
 * measurement runs without it held.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>

#include "codec/codec.h"
#include "migrate/migrate.h"

/* The sample: a synthetic guest of this size, one pass, no rounds. */
#define SAMPLE_MEMORY (6u << 20)
#define SAMPLE_SEED 0x5eedu
#define FEED_CHUNK (256u << 10) /* as the engine feeds it */
#define RUNS 2                  /* the best of (the first warms up) */
/* A measurement is kept this long: the host's load changes, and one
 * taken at a busy moment must not decide for the agent's lifetime. */
#define RATE_TTL_NS (60ull * 1000000000u)

lxm__auto_choice lxm__auto_decide(uint64_t link_bps, uint64_t cap_bps,
                                  uint64_t codec_bps)
{
    uint64_t link = link_bps;

    if (!link || !codec_bps)
        return LXM__AUTO_CODEC;
    if (cap_bps && cap_bps < link)
        link = cap_bps;
    /* Both well below 2^60: no overflow. */
    return codec_bps < LXM__AUTO_MARGIN * link ? LXM__AUTO_RAW
                                               : LXM__AUTO_CODEC;
}

/* ---- the sample stream (built once) -------------------------------- */

static pthread_once_t sample_once = PTHREAD_ONCE_INIT;
static lxm__buf sample; /* read-only after sample_once; never freed */

static void sample_make(void)
{
    lxm_stream_writer *w = NULL;
    lxm__synth_opts so;
    lxm__buf b = { 0 };

    memset(&so, 0, sizeof(so));
    so.guest_type = LXM_GUEST_X86_HVM;
    so.memory_bytes = SAMPLE_MEMORY;
    so.rounds = 0;
    so.vcpus = 1;
    so.seed = SAMPLE_SEED;
    so.name = "auto-sample";
    if (lxm_stream_writer_new(LXM_FORMAT_XL, lxm__buf_sink, &b, NULL, &w) ||
        lxm__synth_write(w, &so)) {
        lxm__buf_dispose(&b);
    } else {
        sample = b;
    }
    lxm_stream_writer_free(w);
}

/* ---- measuring ------------------------------------------------------ */

static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;
/* Protected by rate_lock: bytes/s per worker count (0 = not yet) and
 * when it was measured. */
static uint64_t rates[LXM__CODEC_THREADS_MAX + 1];
static uint64_t rates_at[LXM__CODEC_THREADS_MAX + 1];

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The encoder's output goes nowhere: only its speed counts. */
static int discard(void *opaque, uint8_t codec, const void *frame, size_t len)
{
    uint64_t *out = opaque;

    (void)codec;
    (void)frame;
    *out += len;
    return 0;
}

/* One pass of the sample through pre-pass + lz4; bytes/s or 0. */
static uint64_t measure_once(unsigned int threads, xentoollog_logger *lg)
{
    lxm__encoder_opts eo;
    lxm__encoder *e = NULL;
    uint64_t out = 0, t0, ns;
    size_t off, n;
    int rc;

    memset(&eo, 0, sizeof(eo));
    eo.spec.codec = LXM__CODEC_LZ4;
    eo.spec.level = 1;
    eo.threads = threads;
    eo.format = LXM_FORMAT_XL;
    eo.cache_bytes = 1u << 20; /* no page is re-sent in the sample */
    eo.logger = lg;
    eo.out = discard;
    eo.opaque = &out;

    t0 = mono_ns();
    rc = lxm__encoder_new(&eo, &e);
    for (off = 0; !rc && off < sample.len; off += n) {
        n = LXM_MIN((size_t)FEED_CHUNK, sample.len - off);
        rc = lxm__encoder_feed(e, sample.p + off, n);
    }
    if (!rc)
        rc = lxm__encoder_finish(e);
    ns = mono_ns() - t0;
    lxm__encoder_free(e);
    if (rc || !ns || !out)
        return 0;
    return (uint64_t)((double)sample.len * 1e9 / (double)ns);
}

uint64_t lxm__auto_codec_rate(unsigned int threads, xentoollog_logger *lg)
{
    uint64_t rate, best = 0, t0;
    int i;

    if (!threads)
        threads = lxm__codec_default_threads();
    threads = LXM_MIN(threads, LXM__CODEC_THREADS_MAX);

    pthread_mutex_lock(&rate_lock);
    rate = rates[threads];
    if (rate && mono_ns() - rates_at[threads] >= RATE_TTL_NS)
        rate = 0;
    pthread_mutex_unlock(&rate_lock);
    if (rate)
        return rate;

    pthread_once(&sample_once, sample_make);
    if (!sample.len) {
        lxm__log(lg, XTL_WARN, -1,
                 "auto: cannot build the codec sample; assuming the codec"
                 " path pays");
        return 0;
    }
    t0 = mono_ns();
    for (i = 0; i < RUNS; i++) {
        rate = measure_once(threads, lg);
        if (rate > best)
            best = rate;
    }
    if (!best)
        return 0;
    LXM_LOG_DEBUG(lg,
                  "auto: codec path (pre-pass + lz4, %u workers) %" PRIu64
                  " MB/s on a %zu byte sample (measured in %" PRIu64 " ms)",
                  threads, best / 1000000, sample.len,
                  (mono_ns() - t0) / 1000000);

    pthread_mutex_lock(&rate_lock);
    rates[threads] = best;
    rates_at[threads] = mono_ns();
    pthread_mutex_unlock(&rate_lock);
    return best;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
