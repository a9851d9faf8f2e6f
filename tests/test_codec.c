/*
 * test_codec.c - the stream codec layer (libxlmig/codec/): codec names
 * and levels, block codecs, frames, the encoder/decoder pipelines and
 * the stream-compress/-decompress commands.
 *
 *   parse      good and bad codec names and levels
 *   block      every codec and level class round trips; zlib output
 *              (fast and stock) is decoded by stock inflate; garbage
 *              does not decode; zlib:1 and :2 keep 0.93 of stock
 *              zlib-1's ratio on mixed memory
 *   pipeline   synth streams through encoder -> decoder, byte exact,
 *              for each codec, threads 1 and 4, pre-pass on and off,
 *              feeding in chunks down to 1 byte, decoding whole frames
 *              and byte streams
 *   corrupt    payload byte, checksum, truncated frame and stream,
 *              reordered/duplicated frames, over-cap lengths, bytes
 *              after the end marker: LXM_ERROR_CORRUPT with one logged
 *              line naming the frame and offset
 *   real       ../shared/xen-streams/pvh-128m (added only when present)
 *   cli        xlmig stream-compress/-decompress round trip, --json,
 *              stdin/stdout, a bad --compress, a corrupted file
 */
#define _GNU_SOURCE /* asprintf */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>
#include <yajl/yajl_tree.h>
#include <zlib.h>

#include "test.h"
#include "codec/codec.h"
#include "transport/proto.h"

/* ---- helpers ---- */

static const char *const codecs[] = {
    "none", "zlib:1", "zlib", "zlib:9", "zstd:-5",
    "zstd", "zstd:3", "lz4",  "lz4:8",
};

static lxm__codec_spec spec_of(const char *s)
{
    lxm__codec_spec spec;
    char err[160];

    ck_assert_msg(lxm__codec_parse(s, &spec, err, sizeof(err)) == 0, "%s: %s",
                  s, err);
    return spec;
}

/* A small synthetic stream: a 1 MiB HVM guest, 2 dirty rounds. */
static void small_stream(lxm_test_buf *b, uint64_t mem)
{
    lxm__synth_opts o = { 0 };

    o.guest_type = LXM_GUEST_X86_HVM;
    o.memory_bytes = mem;
    o.rounds = 2;
    o.vcpus = 1;
    o.seed = 7;
    o.name = "codec";
    memset(b, 0, sizeof(*b));
    lxm_test_synth(&o, LXM_FORMAT_XL, b);
}

/* Frames as the encoder wrote them. */
typedef struct frames {
    lxm__buf all; /* concatenated */
    size_t *off, *len;
    size_t n, cap;
} frames;

static void frames_add(frames *f, size_t off, size_t len)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        f->off = realloc(f->off, f->cap * sizeof(*f->off));
        f->len = realloc(f->len, f->cap * sizeof(*f->len));
        ck_assert(f->off && f->len);
    }
    f->off[f->n] = off;
    f->len[f->n++] = len;
}

static void frames_dispose(frames *f)
{
    lxm__buf_dispose(&f->all);
    free(f->off);
    free(f->len);
    f->off = f->len = NULL;
    f->n = f->cap = 0;
}

static int collect_frame(void *opaque, uint8_t codec, const void *frame,
                         size_t len)
{
    frames *f = opaque;

    ck_assert_uint_eq(codec, ((const uint8_t *)frame)[4]);
    frames_add(f, f->all.len, len);
    return lxm__buf_append(&f->all, frame, len);
}

static int collect_data(void *opaque, const void *buf, size_t len)
{
    return lxm__buf_append(opaque, buf, len);
}

static frames *encode(const uint8_t *p, size_t len, const char *codec,
                      unsigned int threads, bool prepass, size_t feed_chunk,
                      uint32_t frame_chunk, lxm__encoder_stats *st_r)
{
    lxm__encoder_opts o = { 0 };
    lxm__encoder *e = NULL;
    frames *f = calloc(1, sizeof(*f));
    size_t at, k;

    ck_assert_ptr_nonnull(f);
    o.spec = spec_of(codec);
    o.threads = threads;
    o.no_prepass = !prepass;
    o.format = LXM_FORMAT_XL;
    o.chunk = frame_chunk;
    o.out = collect_frame;
    o.opaque = f;
    ck_assert_int_eq(lxm__encoder_new(&o, &e), 0);
    for (at = 0; at < len; at += k) {
        k = feed_chunk ? LXM_MIN(feed_chunk, len - at) : len - at;
        ck_assert_int_eq(lxm__encoder_feed(e, p + at, k), 0);
    }
    ck_assert_int_eq(lxm__encoder_finish(e), 0);
    if (st_r)
        lxm__encoder_get_stats(e, st_r);
    lxm__encoder_free(e);
    return f;
}

static void frames_free(frames *f)
{
    if (!f)
        return;
    frames_dispose(f);
    free(f);
}

/* Decode: byte stream in chunks (feed_chunk > 0) or whole frames (0). */
static int decode(const frames *f, const uint8_t *all, size_t all_len,
                  unsigned int threads, size_t feed_chunk, lxm__buf *out,
                  lxm_test_logger *lg)
{
    lxm__decoder_opts o = { 0 };
    lxm__decoder *d = NULL;
    size_t at, k, i;
    int rc = 0;

    o.threads = threads;
    o.format = LXM_FORMAT_XL;
    o.logger = lg ? &lg->vtable : NULL;
    o.out = collect_data;
    o.opaque = out;
    ck_assert_int_eq(lxm__decoder_new(&o, &d), 0);
    if (feed_chunk) {
        for (at = 0; at < all_len && !rc; at += k) {
            k = LXM_MIN(feed_chunk, all_len - at);
            rc = lxm__decoder_feed(d, all + at, k);
        }
    } else {
        for (i = 0; i < f->n && !rc; i++)
            rc = lxm__decoder_feed_frame(d, all + f->off[i], f->len[i]);
    }
    if (!rc)
        rc = lxm__decoder_finish(d);
    if (!rc)
        ck_assert(lxm__decoder_done(d));
    lxm__decoder_free(d);
    return rc;
}

/* ---- parse ---- */

START_TEST(test_parse)
{
    static const struct {
        const char *s;
        int rc;
        uint8_t codec;
        int level;
    } t[] = {
        { "none", 0, LXM__CODEC_NONE, 0 },
        { "zlib", 0, LXM__CODEC_ZLIB, 6 },
        { "zlib:1", 0, LXM__CODEC_ZLIB, 1 },
        { "zlib:9", 0, LXM__CODEC_ZLIB, 9 },
        { "zstd", 0, LXM__CODEC_ZSTD, 1 },
        { "zstd:-5", 0, LXM__CODEC_ZSTD, -5 },
        { "zstd:19", 0, LXM__CODEC_ZSTD, 19 },
        { "lz4", 0, LXM__CODEC_LZ4, 1 },
        { "lz4:8", 0, LXM__CODEC_LZ4, 8 },
        { "zlib:0", LXM_ERROR_INVAL, 0, 0 },
        { "zlib:10", LXM_ERROR_INVAL, 0, 0 },
        { "zlib:", LXM_ERROR_INVAL, 0, 0 },
        { "zlib:1x", LXM_ERROR_INVAL, 0, 0 },
        { "zlib:-1", LXM_ERROR_INVAL, 0, 0 },
        { "zstd:99", LXM_ERROR_INVAL, 0, 0 },
        { "zstd:-9999999", LXM_ERROR_INVAL, 0, 0 },
        { "lz4:0", LXM_ERROR_INVAL, 0, 0 },
        { "none:1", LXM_ERROR_INVAL, 0, 0 },
        { "gzip", LXM_ERROR_INVAL, 0, 0 },
        { "", LXM_ERROR_INVAL, 0, 0 },
        { "ZLIB", LXM_ERROR_INVAL, 0, 0 },
        { "zlibx", LXM_ERROR_INVAL, 0, 0 },
    };
    lxm__codec_spec spec;
    char err[160], back[32];
    size_t i;
    int rc;

    for (i = 0; i < LXM_ARRAY_SIZE(t); i++) {
        err[0] = 0;
        rc = lxm__codec_parse(t[i].s, &spec, err, sizeof(err));
        ck_assert_msg(rc == t[i].rc, "'%s': rc %d, want %d", t[i].s, rc,
                      t[i].rc);
        if (rc) {
            ck_assert_msg(err[0] && !strchr(err, '\n'), "'%s': message '%s'",
                          t[i].s, err);
            continue;
        }
        ck_assert_uint_eq(spec.codec, t[i].codec);
        ck_assert_int_eq(spec.level, t[i].level);
        /* the formatted spec parses back to the same */
        lxm__codec_spec_format(&spec, back, sizeof(back));
        ck_assert_int_eq(lxm__codec_parse(back, &spec, NULL, 0), 0);
        ck_assert_uint_eq(spec.codec, t[i].codec);
        ck_assert_int_eq(spec.level, t[i].level);
    }
    ck_assert_ptr_nonnull(strstr(
        (lxm__codec_parse("gzip", &spec, err, sizeof(err)), err), "gzip"));
    ck_assert_ptr_nonnull(strstr(
        (lxm__codec_parse("zlib:12", &spec, err, sizeof(err)), err), "12"));
}
END_TEST

/* ---- block codecs ---- */

START_TEST(test_block)
{
    lxm_test_buf s;
    lxm__block_ctx *ctx = NULL;
    lxm__codec_spec spec;
    uint8_t *dst, *back;
    size_t len, clen, i, pass;
    uLongf zlen;

    small_stream(&s, 1 << 20);
    len = LXM_MIN(s.len, (size_t)LXM__CODEC_CHUNK_MAX);
    dst = malloc(len + 1024);
    back = malloc(len);
    ck_assert(dst && back);
    ck_assert_int_eq(lxm__block_ctx_new(&ctx), 0);

    for (pass = 0; pass < 2; pass++) {
        /* pass 1: zlib through stock zlib in this ctx */
        lxm__block_ctx_use_stock_zlib(ctx, pass == 1);
        for (i = 0; i < LXM_ARRAY_SIZE(codecs); i++) {
            spec = spec_of(codecs[i]);
            if (pass == 1 && spec.codec != LXM__CODEC_ZLIB)
                continue;
            ck_assert_int_eq(lxm__block_compress(ctx, &spec, s.data, len, dst,
                                                 len + 1024, &clen),
                             0);
            ck_assert_msg(clen > 0, "%s produced nothing", codecs[i]);
            if (spec.codec != LXM__CODEC_NONE)
                ck_assert_msg(clen < len, "%s did not compress (%zu >= %zu)",
                              codecs[i], clen, len);
            memset(back, 0xa5, len);
            ck_assert_int_eq(
                lxm__block_decompress(ctx, spec.codec, dst, clen, back, len),
                0);
            ck_assert_msg(!memcmp(back, s.data, len), "%s: round trip differs",
                          codecs[i]);
            /* one byte short of output, or input, is corrupt */
            if (spec.codec != LXM__CODEC_NONE) {
                ck_assert_int_eq(lxm__block_decompress(ctx, spec.codec, dst,
                                                       clen, back, len - 1),
                                 LXM_ERROR_CORRUPT);
                ck_assert_int_eq(lxm__block_decompress(ctx, spec.codec, dst,
                                                       clen - 1, back, len),
                                 LXM_ERROR_CORRUPT);
            }
            if (spec.codec == LXM__CODEC_ZLIB) {
                /* the format is standard zlib: stock inflate reads it */
                zlen = len;
                memset(back, 0, len);
                ck_assert_int_eq(uncompress(back, &zlen, dst, clen), Z_OK);
                ck_assert_uint_eq(zlen, len);
                ck_assert(!memcmp(back, s.data, len));
                /* and the fast decoder reads stock zlib's output too */
                lxm__block_ctx_use_stock_zlib(ctx, false);
                ck_assert_int_eq(lxm__block_decompress(ctx, spec.codec, dst,
                                                       clen, back, len),
                                 0);
                lxm__block_ctx_use_stock_zlib(ctx, pass == 1);
            }
            /* too small a destination: 0, never an overflow */
            ck_assert_int_eq(lxm__block_compress(ctx, &spec, s.data, len, dst,
                                                 clen / 2, &clen),
                             0);
            ck_assert_uint_eq(clen, 0);
        }
    }
    /* garbage does not decode */
    memset(dst, 0x5a, 4096);
    for (i = 1; i <= 3; i++)
        ck_assert_int_eq(
            lxm__block_decompress(ctx, (uint8_t)i, dst, 4096, back, 65536),
            LXM_ERROR_CORRUPT);
    ck_assert_str_eq(lxm__codec_name(LXM__CODEC_ZSTD | LXM__CODEC_PAGES),
                     "zstd");
    lxm__block_ctx_free(ctx);
    lxm__block_ctx_free(NULL);
    free(dst);
    free(back);
    lxm_test_buf_dispose(&s);
}
END_TEST

/* ---- pipelines ---- */

static void roundtrip(const lxm_test_buf *s, const char *codec,
                      unsigned int threads, bool prepass, size_t feed_chunk,
                      uint32_t frame_chunk, size_t dec_chunk)
{
    lxm__encoder_stats st;
    lxm__buf out = { 0 };
    frames *f;
    int rc;

    f = encode(s->data, s->len, codec, threads, prepass, feed_chunk,
               frame_chunk, &st);
    ck_assert_uint_eq(st.bytes_in, s->len);
    ck_assert_uint_eq(st.bytes_out, f->all.len);
    ck_assert_uint_eq(st.frames, f->n);
    ck_assert_uint_eq(st.threads, threads);
    /* the end marker is last */
    ck_assert_uint_eq(f->all.p[f->off[f->n - 1] + 4], LXM__CODEC_END);
    if (strcmp(codec, "none") && (!frame_chunk || frame_chunk >= 4096))
        ck_assert_msg(f->all.len < s->len / 10 * 8,
                      "%s threads %u pre-pass %d: %zu -> %zu bytes", codec,
                      threads, prepass, s->len, f->all.len);
    rc = decode(f, f->all.p, f->all.len, threads, dec_chunk, &out, NULL);
    ck_assert_msg(rc == 0, "%s threads %u pre-pass %d: decode: %s", codec,
                  threads, prepass, lxm_strerror(rc));
    ck_assert_uint_eq(out.len, s->len);
    ck_assert_msg(!memcmp(out.p, s->data, s->len),
                  "%s threads %u pre-pass %d: decoded stream differs", codec,
                  threads, prepass);
    lxm__buf_dispose(&out);
    frames_free(f);
}

/*
 * zlib:1 and zlib:2 keep 0.93 of stock zlib-1's ratio on mixed memory
 * (issue 5's bound): a 256 KiB chunk of a synth stream's first round,
 * a third of its non-zero pages random.  Sizes, not speeds: they are
 * the same on every run.  igzip's larger default level buffer (one
 * Huffman code over 64K tokens of random and text pages) fails this.
 */
START_TEST(test_block_zlib_ratio)
{
    static const char *const fast[] = { "zlib:1", "zlib:2" };
    lxm_test_buf s;
    lxm__block_ctx *ctx = NULL;
    lxm__codec_spec spec;
    size_t len = 256 << 10, cap = 2 * len, stock, ours, i;
    uint8_t *dst = malloc(cap);

    ck_assert_ptr_nonnull(dst);
    small_stream(&s, 8 << 20);
    ck_assert_uint_ge(s.len, (1 << 20) + len);
    ck_assert_int_eq(lxm__block_ctx_new(&ctx), 0);
    spec = spec_of("zlib:1");
    lxm__block_ctx_use_stock_zlib(ctx, true);
    ck_assert_int_eq(lxm__block_compress(ctx, &spec, s.data + (1 << 20), len,
                                         dst, cap, &stock),
                     0);
    lxm__block_ctx_use_stock_zlib(ctx, false);
    for (i = 0; i < LXM_ARRAY_SIZE(fast); i++) {
        spec = spec_of(fast[i]);
        ck_assert_int_eq(lxm__block_compress(ctx, &spec, s.data + (1 << 20),
                                             len, dst, cap, &ours),
                         0);
        ck_assert_msg(ours > 0 && ours * 93 <= stock * 100,
                      "%s: %zu bytes, stock zlib-1 %zu: ratio %.3f of stock's",
                      fast[i], ours, stock, (double)stock / (double)ours);
    }
    lxm__block_ctx_free(ctx);
    lxm_test_buf_dispose(&s);
    free(dst);
}
END_TEST

START_TEST(test_pipeline)
{
    static const unsigned int threads[] = { 1, 4 };
    lxm_test_buf s;
    size_t i, t, pp;

    small_stream(&s, 1 << 20);
    for (i = 0; i < LXM_ARRAY_SIZE(codecs); i++) {
        for (t = 0; t < LXM_ARRAY_SIZE(threads); t++) {
            for (pp = 0; pp < 2; pp++) {
                /* whole frames; then a byte stream in odd chunks */
                roundtrip(&s, codecs[i], threads[t], pp, 65521, 64 << 10, 0);
                roundtrip(&s, codecs[i], threads[t], pp, 0, 0, 4093);
            }
        }
    }
    lxm_test_buf_dispose(&s);
}
END_TEST

START_TEST(test_pipeline_tiny_chunks)
{
    lxm_test_buf s;

    /* fed one byte at a time, framed in 1000-byte chunks, decoded one
     * byte at a time */
    small_stream(&s, 256 << 10);
    roundtrip(&s, "zstd:-3", 4, true, 1, 1000, 1);
    roundtrip(&s, "zlib:1", 1, false, 7, 4096, 1);
    /* 1-byte frames, of the stream's first 20000 bytes */
    s.len = 20000;
    roundtrip(&s, "lz4", 4, true, 4096, 1, 0);
    roundtrip(&s, "zlib", 2, false, 333, 1, 1);
    lxm_test_buf_dispose(&s);
}
END_TEST

START_TEST(test_pipeline_empty_and_flush)
{
    lxm__encoder_opts o = { 0 };
    lxm__encoder *e = NULL;
    frames f;
    lxm__buf out = { 0 };
    uint8_t x[3] = { 1, 2, 3 };

    /* an empty stream is just the end marker */
    memset(&f, 0, sizeof(f));
    o.spec = spec_of("zlib");
    o.threads = 2;
    o.out = collect_frame;
    o.opaque = &f;
    ck_assert_int_eq(lxm__encoder_new(&o, &e), 0);
    ck_assert_int_eq(lxm__encoder_flush(e), 0);
    ck_assert_uint_eq(f.n, 0);
    ck_assert_int_eq(lxm__encoder_feed(e, x, 3), 0);
    ck_assert_int_eq(lxm__encoder_flush(e), 0);
    ck_assert_uint_ge(f.n, 1); /* flushed data is out */
    ck_assert_int_eq(lxm__encoder_finish(e), 0);
    ck_assert_int_eq(lxm__encoder_feed(e, x, 3), LXM_ERROR_STATE);
    lxm__encoder_free(e);
    ck_assert_int_eq(decode(&f, f.all.p, f.all.len, 2, 0, &out, NULL), 0);
    ck_assert_uint_eq(out.len, 3);
    ck_assert(!memcmp(out.p, x, 3));
    lxm__buf_dispose(&out);
    frames_dispose(&f);
    lxm__encoder_free(NULL);
    lxm__decoder_free(NULL);
}
END_TEST

/* ---- corruption ---- */

/* Decode a damaged copy; expect CORRUPT with one line naming a frame. */
static void expect_corrupt(const frames *f, const uint8_t *all, size_t len,
                           bool whole_frames, const char *what,
                           const char *needle)
{
    lxm_test_logger lg;
    lxm__buf out = { 0 };
    int rc;

    lxm_test_logger_init(&lg);
    rc = decode(f, all, len, 4, whole_frames ? 0 : 10007, &out, &lg);
    ck_assert_msg(rc == LXM_ERROR_CORRUPT, "%s: rc %d (%s)", what, rc,
                  lxm_strerror(rc));
    ck_assert_msg(lg.errors >= 1, "%s: nothing logged", what);
    ck_assert_msg(strstr(lg.first, "frame ") && strstr(lg.first, "offset"),
                  "%s: message '%s'", what, lg.first);
    ck_assert_msg(!needle || strstr(lg.first, needle),
                  "%s: message '%s' lacks '%s'", what, lg.first, needle);
    lxm__buf_dispose(&out);
}

START_TEST(test_corrupt)
{
    lxm_test_buf s;
    frames *f, g;
    uint8_t *c;
    size_t n, i, a, b;

    small_stream(&s, 1 << 20);
    f = encode(s.data, s.len, "zstd:1", 4, true, 0, 64 << 10, NULL);
    ck_assert_uint_ge(f->n, 5);
    n = f->all.len;
    c = malloc(n + 64);
    ck_assert_ptr_nonnull(c);

#define FRESH() memcpy(c, f->all.p, n)
    /* a payload byte of frame 2 */
    FRESH();
    c[f->off[2] + LXM__CFRAME_HDR_LEN + 5] ^= 0x40;
    expect_corrupt(f, c, n, true, "payload byte", "checksum");
    expect_corrupt(f, c, n, false, "payload byte (bytes)", "checksum");
    /* the checksum itself */
    FRESH();
    c[f->off[1] + 24] ^= 1;
    expect_corrupt(f, c, n, true, "checksum", "frame 1 ");
    /* the end marker's digest */
    FRESH();
    c[f->off[f->n - 1] + LXM__CFRAME_HDR_LEN + 9] ^= 1;
    expect_corrupt(f, c, n, true, "end marker", "end marker");
    /* a truncated stream: the last frame cut short, then no end marker */
    FRESH();
    expect_corrupt(f, c, f->off[f->n - 1] - 3, false, "truncated", "truncated");
    expect_corrupt(f, c, f->off[f->n - 1], false, "no end marker",
                   "no end marker");
    /* bytes after the end marker */
    FRESH();
    memset(c + n, 0, 8);
    expect_corrupt(f, c, n + 8, false, "trailing", "after the end marker");
    /* over-cap lengths, checked before anything is allocated */
    FRESH();
    lxm__put_le32(c + f->off[0] + 8, LXM__CODEC_CHUNK_MAX + 1);
    expect_corrupt(f, c, n, false, "raw over cap", "out of range");
    FRESH();
    lxm__put_le32(c + f->off[0] + 12, 0xfffffff0u);
    expect_corrupt(f, c, n, false, "payload over cap", "payload length");
    /* unknown codec byte, bad magic */
    FRESH();
    c[f->off[0] + 4] = 0x2a;
    expect_corrupt(f, c, n, true, "codec byte", "codec");
    FRESH();
    c[f->off[0]] = 'X';
    expect_corrupt(f, c, n, false, "magic", "magic");

    /* frames 1 and 2 swapped; frame 1 repeated; frame 1 left out */
    for (i = 0; i < 3; i++) {
        memset(&g, 0, sizeof(g));
        for (a = 0; a < f->n; a++) {
            b = a;
            if (i == 0 && (a == 1 || a == 2))
                b = 3 - a;
            if (i == 2 && a == 1)
                continue;
            frames_add(&g, f->off[b], f->len[b]);
            if (i == 1 && a == 1)
                frames_add(&g, f->off[b], f->len[b]);
        }
        expect_corrupt(&g, f->all.p, n, true, "order", "sequence number");
        frames_dispose(&g);
    }
    /* a truncated frame fed whole */
    memset(&g, 0, sizeof(g));
    frames_add(&g, f->off[0], f->len[0] - 1);
    expect_corrupt(&g, f->all.p, n, true, "short frame", "truncated");
    frames_dispose(&g);
#undef FRESH

    free(c);
    frames_free(f);
    lxm_test_buf_dispose(&s);
}
END_TEST

/* ---- a real Xen image ---- */

START_TEST(test_real_image)
{
    const char *dir = lxm_test_shared_streams_dir();
    char *tmp = lxm_test_write_tmp("", 0, ".save"), *cmd = NULL;
    lxm__encoder_stats st;
    lxm__buf out = { 0 };
    lxm_test_buf s = { 0 };
    struct stat sb;
    frames *f;
    FILE *fp;
    int rc;

    ck_assert_msg(dir != NULL, "shared xen-streams directory not found");
    ck_assert(asprintf(&cmd, "zstd -d -q -f -c '%s/pvh-128m.save.zst' >'%s'",
                       dir, tmp) > 0);
    rc = lxm_test_run(cmd, NULL);
    free(cmd);
    fp = fopen(tmp, "rb");
    unlink(tmp);
    free(tmp);
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fstat(fileno(fp), &sb), 0);
    s.len = (size_t)sb.st_size;
    s.data = malloc(s.len);
    ck_assert_ptr_nonnull(s.data);
    ck_assert_uint_eq(fread(s.data, 1, s.len, fp), s.len);
    fclose(fp);

    /* the design card's codec, pre-pass on, 4 workers */
    f = encode(s.data, s.len, "zlib", 4, true, 1 << 20, 0, &st);
    ck_assert_msg(f->all.len < s.len / 3, "pvh-128m: %zu -> %zu bytes", s.len,
                  f->all.len);
    rc = decode(f, f->all.p, f->all.len, 4, 0, &out, NULL);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(out.len, s.len);
    ck_assert(!memcmp(out.p, s.data, s.len));
    lxm__buf_dispose(&out);
    frames_free(f);
    free(s.data);
}
END_TEST

/* ---- the xlmig commands ---- */

static char *tmpfile_path(const char *suffix)
{
    return lxm_test_write_tmp("", 0, suffix);
}

static int run(char **out_r, char **err_r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int run(char **out_r, char **err_r, const char *fmt, ...)
{
    char *line = NULL, *cmd = NULL, *errp = tmpfile_path(".err");
    FILE *ef;
    va_list ap;
    size_t n;
    int status;

    va_start(ap, fmt);
    ck_assert(vasprintf(&line, fmt, ap) > 0);
    va_end(ap);
    ck_assert(asprintf(&cmd, "{ %s ; } 2>'%s'", line, errp) > 0);
    status = lxm_test_run(cmd, out_r);
    if (err_r) {
        *err_r = calloc(1, 4096);
        ck_assert_ptr_nonnull(*err_r);
        ef = fopen(errp, "r");
        ck_assert_ptr_nonnull(ef);
        n = fread(*err_r, 1, 4095, ef);
        (*err_r)[n] = 0;
        fclose(ef);
    }
    unlink(errp);
    free(errp);
    free(line);
    free(cmd);
    return status;
}

START_TEST(test_cli)
{
    const char *x = lxm_test_xlmig_path();
    char *raw = tmpfile_path(".xl"), *z = tmpfile_path(".xlz"),
         *back = tmpfile_path(".back"), *out = NULL, *err = NULL;
    yajl_val j, v;
    const char *path_in[] = { "bytes_in", NULL };
    const char *path_out[] = { "bytes_out", NULL };
    char ebuf[256];
    int fd;
    uint8_t byte;

    ck_assert_msg(x && access(x, X_OK) == 0, "xlmig not found");
    ck_assert_int_eq(run(NULL, NULL,
                         "'%s' stream-synth --guest pv --memory 2M"
                         " --rounds 2 '%s'",
                         x, raw),
                     0);
    /* round trip, with --json */
    ck_assert_int_eq(run(&out, &err,
                         "'%s' stream-compress --compress=zstd:-3 --threads 3"
                         " --json '%s' '%s'",
                         x, raw, z),
                     0);
    j = yajl_tree_parse(out, ebuf, sizeof(ebuf));
    ck_assert_msg(j != NULL, "--json output '%s': %s", out, ebuf);
    v = yajl_tree_get(j, path_in, yajl_t_number);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_gt(YAJL_GET_INTEGER(v), 0);
    v = yajl_tree_get(j, path_out, yajl_t_number);
    ck_assert_ptr_nonnull(v);
    yajl_tree_free(j);
    free(out);
    free(err);
    ck_assert_int_eq(
        run(NULL, NULL, "'%s' stream-decompress '%s' '%s'", x, z, back), 0);
    ck_assert_int_eq(run(NULL, NULL, "cmp -s '%s' '%s'", raw, back), 0);
    /* stdin/stdout, zlib, no pre-pass */
    ck_assert_int_eq(
        run(NULL, NULL,
            "'%s' stream-compress --compress zlib:1 --no-pages"
            " - - <'%s' | '%s' stream-decompress - - | cmp -s - '%s'",
            x, raw, x, raw),
        0);
    /* a bad --compress value: usage error, one line naming it */
    ck_assert_int_eq(run(&out, &err,
                         "'%s' stream-compress --compress=zstd:99 '%s' '%s'", x,
                         raw, z),
                     2);
    ck_assert_msg(strstr(err, "zstd") && strstr(err, "99"), "stderr: '%s'",
                  err);
    free(out);
    free(err);
    /* a corrupted file: exit 1, one line naming the frame */
    fd = open(z, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, &byte, 1, 300), 1);
    byte ^= 0x10;
    ck_assert_int_eq(pwrite(fd, &byte, 1, 300), 1);
    close(fd);
    ck_assert_int_eq(
        run(&out, &err, "'%s' stream-decompress '%s' '%s'", x, z, back), 1);
    ck_assert_msg(strstr(err, "frame") &&
                      strchr(err, '\n') == strrchr(err, '\n'),
                  "stderr: '%s'", err);
    free(out);
    free(err);

    unlink(raw);
    unlink(z);
    unlink(back);
    free(raw);
    free(z);
    free(back);
}
END_TEST

Suite *lxm_test_codec_suite(void)
{
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("codec");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_block);
    tcase_add_test(tc, test_block_zlib_ratio);
    tcase_add_test(tc, test_pipeline);
    tcase_add_test(tc, test_pipeline_tiny_chunks);
    tcase_add_test(tc, test_pipeline_empty_and_flush);
    tcase_add_test(tc, test_corrupt);
    tcase_add_test(tc, test_cli);
    if (lxm_test_shared_streams_dir())
        tcase_add_test(tc, test_real_image);
    suite_add_tcase(s, tc);
    return s;
}
