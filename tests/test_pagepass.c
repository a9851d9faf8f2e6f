/*
 * test_pagepass.c - the page-aware pre-pass (libxlmig/codec/pagepass.c).
 *
 * Cases:
 *   synth       synthetic xl/libxl/libxc streams, chunk sizes 1..all:
 *               the decoded stream's digest equals the original's;
 *               zero pages counted
 *   dirty       a genuine stream whose pre-copy rounds re-send pages
 *               with a few bytes changed: deltas on every re-sent
 *               non-zero page, ratio >= 9 on those rounds; a cache
 *               smaller than the working set still round-trips
 *   robust      random bytes, junk before the stream, a cut stream,
 *               bytes after END: byte-exact, never an encoder error
 *   images      real Xen images when present (../shared/xen-streams,
 *               .cache/xen-lab/streams); skipped with a note otherwise
 *   zero        version 2: pages sent as zero, then written in a few
 *               places, go as deltas against zeros (raw in version 1);
 *               the set of zero pfns is bounded
 *   corrupt     truncation, bad pfn, bad lengths, bad kind, delta of a
 *               pfn never sent (or, in version 1, sent as zero), bad
 *               version, wrong cache size: LXM_ERROR_CORRUPT with a log
 *               line naming the token offset
 */
#define _GNU_SOURCE /* asprintf */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/codec.h"
#include "test.h"

/* Test-only (testutil.c). */
const char *lxm_test_top(void);

/* The digest compared after a round trip: FNV-1a over 8-byte words
 * (and the tail bytes), mixed with the length. */
static uint64_t digest(const uint8_t *p, size_t len)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325) ^ len, w;
    size_t i;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * UINT64_C(0x100000001b3);
    }
    for (; i < len; i++)
        h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

static void encode(const uint8_t *s, size_t len, lxm_stream_format f,
                   size_t chunk, uint64_t cache, lxm__buf *tok,
                   lxm__pagepass_stats *st)
{
    lxm__pagepass_opts o = { .format = f, .cache_bytes = cache };
    lxm__pagepass *e = NULL;
    size_t i, n;

    ck_assert_int_eq(lxm__pagepass_encoder_new(&o, &e), 0);
    if (!chunk)
        chunk = len ? len : 1;
    for (i = 0; i < len; i += n) {
        n = LXM_MIN(chunk, len - i);
        ck_assert_int_eq(lxm__pagepass_feed(e, s + i, n, tok), 0);
    }
    ck_assert_int_eq(lxm__pagepass_finish(e, tok), 0);
    lxm__pagepass_get_stats(e, st);
    lxm__pagepass_free(e);
    ck_assert_uint_eq(st->bytes_in, len);
    ck_assert_uint_eq(st->bytes_out, tok->len);
}

/* Decode t in chunks; returns rc of the first failing call. */
static int decode(const uint8_t *t, size_t len, size_t chunk, uint64_t cache,
                  xentoollog_logger *lg, lxm__buf *out, lxm__pagepass_stats *st)
{
    lxm__pagepass_opts o = { .cache_bytes = cache, .logger = lg };
    lxm__pagepass *d = NULL;
    size_t i, n;
    int rc = 0;

    ck_assert_int_eq(lxm__pagepass_decoder_new(&o, &d), 0);
    if (!chunk)
        chunk = len ? len : 1;
    for (i = 0; i < len && !rc; i += n) {
        n = LXM_MIN(chunk, len - i);
        rc = lxm__pagepass_feed(d, t + i, n, out);
    }
    if (!rc)
        rc = lxm__pagepass_finish(d, out);
    if (st)
        lxm__pagepass_get_stats(d, st);
    lxm__pagepass_free(d);
    return rc;
}

/* Encode with one chunk size, decode with another, compare digests. */
static void roundtrip(const uint8_t *s, size_t len, lxm_stream_format f,
                      size_t chunk, uint64_t cache, lxm__pagepass_stats *st)
{
    lxm__buf tok = { 0 }, out = { 0 };
    lxm__pagepass_stats dst;
    size_t dchunk = chunk ? chunk * 3 + 1 : 0;

    encode(s, len, f, chunk, cache, &tok, st);
    ck_assert_int_eq(decode(tok.p, tok.len, dchunk, cache, NULL, &out, &dst),
                     0);
    ck_assert_uint_eq(out.len, len);
    ck_assert_msg(digest(out.p, out.len) == digest(s, len),
                  "decoded stream differs (chunk %zu, %zu bytes)", chunk, len);
    if (len)
        ck_assert_mem_eq(out.p, s, len);
    ck_assert_uint_eq(dst.bytes_in, len);
    ck_assert_uint_eq(dst.bytes_out, tok.len);
    ck_assert_uint_eq(dst.pages_zero, st->pages_zero);
    ck_assert_uint_eq(dst.pages_delta, st->pages_delta);
    lxm__buf_dispose(&tok);
    lxm__buf_dispose(&out);
}

static void synth_cp(lxm_stream_format f, uint32_t guest_type, uint64_t mem,
                     uint32_t rounds, bool checkpointed, lxm_test_buf *b)
{
    lxm__synth_opts o = {
        .guest_type = guest_type,
        .memory_bytes = mem,
        .rounds = rounds,
        .vcpus = 2,
        .seed = 42,
        .name = "pp",
        .checkpointed = checkpointed,
    };

    lxm_test_synth(&o, f, b);
}

static void synth(lxm_stream_format f, uint32_t guest_type, uint64_t mem,
                  uint32_t rounds, lxm_test_buf *b)
{
    synth_cp(f, guest_type, mem, rounds, false, b);
}

/* ---- synth ------------------------------------------------------------ */

START_TEST(test_synth_chunks)
{
    static const size_t chunks[] = { 1, 7, 4093, 0 };
    lxm_test_buf b = { 0 };
    lxm__pagepass_stats st;
    size_t i;

    /* Small enough for 1-byte chunks. */
    synth(LXM_FORMAT_XL, LXM_GUEST_X86_PV, 256 << 10, 2, &b);
    for (i = 0; i < LXM_ARRAY_SIZE(chunks); i++) {
        roundtrip(b.data, b.len, LXM_FORMAT_XL, chunks[i], 0, &st);
        ck_assert_uint_gt(st.pages, 0);
        ck_assert_uint_gt(st.pages_zero, 0);
        ck_assert_uint_eq(st.pages,
                          st.pages_zero + st.pages_delta + st.pages_raw);
    }
    lxm_test_buf_dispose(&b);
}
END_TEST

static const struct {
    lxm_stream_format f;
    uint32_t guest_type;
    bool checkpointed; /* libxc CHECKPOINT / libxl CHECKPOINT_END */
} layouts[] = {
    { LXM_FORMAT_XL, LXM_GUEST_X86_HVM, false },
    { LXM_FORMAT_XL, LXM_GUEST_X86_PV, false },
    { LXM_FORMAT_LIBXL, LXM_GUEST_X86_HVM, false },
    { LXM_FORMAT_LIBXC, LXM_GUEST_X86_PV, false },
    { LXM_FORMAT_XL, LXM_GUEST_X86_HVM, true },
};

static int count_pages(void *opaque, const lxm_stream_event *ev)
{
    if (ev->kind == LXM_EV_PAGE)
        (*(uint64_t *)opaque)++;
    return 0;
}

/* Every layout: every page is recognised (as the reader sees them), and
 * the stream shrinks. */
START_TEST(test_synth_formats)
{
    lxm_test_buf b = { 0 };
    lxm__pagepass_stats st;
    uint64_t pages = 0;

    synth_cp(layouts[_i].f, layouts[_i].guest_type, 4 << 20, 3,
             layouts[_i].checkpointed, &b);
    roundtrip(b.data, b.len, layouts[_i].f, 4093, 0, &st);
    ck_assert_uint_gt(st.pages_zero, 0);
    ck_assert_int_eq(lxm_test_read_buf(b.data, b.len, layouts[_i].f,
                                       LXM_READER_PAGES, 0, count_pages, &pages,
                                       NULL),
                     0);
    ck_assert_uint_gt(pages, 0);
    ck_assert_uint_eq(st.pages, pages);
    ck_assert_uint_eq(st.bytes_literal, b.len - pages * LXM_PAGE_SIZE);
    ck_assert_uint_lt(st.bytes_out, b.len * 9 / 10);
    lxm_test_buf_dispose(&b);
}
END_TEST

/* ---- dirty rounds ----------------------------------------------------- */

#define DIRTY_PAGES 512u /* 2 MiB working set */
#define DIRTY_ROUNDS 4u

typedef struct dirty_stream {
    lxm_test_buf b;
    uint64_t expect_delta; /* non-zero pages whose last send was too */
    uint64_t expect_zero;
    size_t round1_off; /* stream offset where round 1 starts */
} dirty_stream;

/* A writer of guest g's xl stream into b, its records up to the pages
 * written; guest_end() writes the rest and frees it. */
static lxm_stream_writer *guest_begin(lxm_test_buf *b, const lxm__guest_desc *g)
{
    lxm_stream_writer *w = NULL;

    ck_assert_int_eq(
        lxm_stream_writer_new(LXM_FORMAT_XL, lxm_test_buf_sink, b, NULL, &w),
        0);
    ck_assert_int_eq(lxm__guest_stream_begin(w, g), 0);
    return w;
}

static void guest_end(lxm_stream_writer *w, const lxm__guest_desc *g)
{
    ck_assert_int_eq(lxm__guest_stream_end(w, g), 0);
    ck_assert(lxm_stream_writer_done(w));
    lxm_stream_writer_free(w);
}

/*
 * A genuine xl stream (HVM) whose memory is re-sent DIRTY_ROUNDS times
 * with a few words changed per page, as a running guest would: what
 * lxm__synth does not model (its rounds rewrite whole pages).
 */
static void make_dirty(dirty_stream *ds)
{
    lxm__guest_desc g = {
        .guest_type = LXM_GUEST_X86_HVM,
        .memory_bytes = (uint64_t)DIRTY_PAGES * LXM_PAGE_SIZE,
        .vcpus = 1,
        .seed = 5,
        .name = "dirty",
    };
    lxm_stream_writer *w = NULL;
    uint8_t *mem = malloc((size_t)DIRTY_PAGES * LXM_PAGE_SIZE);
    bool sent_nonzero[DIRTY_PAGES] = { false };
    uint64_t words[256];
    const void *pages[256];
    lxm__rng r;
    uint32_t round, i, k, n;

    ck_assert_ptr_nonnull(mem);
    memset(ds, 0, sizeof(*ds));
    lxm__rng_seed(&r, 99);
    for (i = 0; i < DIRTY_PAGES; i++) {
        uint8_t *p = mem + (size_t)i * LXM_PAGE_SIZE;

        if (i % 8 == 0)
            memset(p, 0, LXM_PAGE_SIZE);
        else if (i % 8 == 1)
            lxm__fill_code_page(&r, p);
        else
            lxm__fill_text_page(&r, p);
    }
    w = guest_begin(&ds->b, &g);
    for (round = 0; round <= DIRTY_ROUNDS; round++) {
        if (round == 1)
            ds->round1_off = ds->b.len;
        for (i = 0; round && i < DIRTY_PAGES; i++) {
            uint8_t *p = mem + (size_t)i * LXM_PAGE_SIZE;

            if (i % 8 == 0)
                continue; /* stays zero */
            if (i % 8 == 4) {
                /* Zero in odd rounds, new text in even ones: the
                 * cache drops and re-adds these pfns. */
                if (round % 2)
                    memset(p, 0, LXM_PAGE_SIZE);
                else
                    lxm__fill_text_page(&r, p);
                continue;
            }
            for (k = 0; k < 1 + lxm__rng_below(&r, 6); k++) {
                uint64_t v = lxm__rng_next(&r);

                memcpy(p + 8 * lxm__rng_below(&r, 512), &v, 8);
            }
        }
        /* Rounds re-send every page, in records of 256. */
        for (i = 0; i < DIRTY_PAGES; i += n) {
            n = LXM_MIN(256u, DIRTY_PAGES - i);
            for (k = 0; k < n; k++) {
                words[k] = LXM_PFN_WORD(i + k, LXM_PAGE_NOTAB);
                pages[k] = mem + (size_t)(i + k) * LXM_PAGE_SIZE;
                if ((i + k) % 8 == 0 || ((i + k) % 8 == 4 && round % 2)) {
                    ds->expect_zero++;
                    sent_nonzero[i + k] = false;
                } else {
                    if (sent_nonzero[i + k] && (i + k) % 8 != 4)
                        ds->expect_delta++;
                    sent_nonzero[i + k] = true;
                }
            }
            ck_assert_int_eq(lxm_stream_write_page_data(w, n, words, pages), 0);
        }
    }
    guest_end(w, &g);
    free(mem);
}

START_TEST(test_dirty_deltas)
{
    dirty_stream ds;
    lxm__buf tok = { 0 };
    lxm__pagepass_stats st, st0;
    uint64_t rounds_in, rounds_out;

    make_dirty(&ds);
    roundtrip(ds.b.data, ds.b.len, LXM_FORMAT_XL, 65536, 0, &st);
    ck_assert_uint_gt(ds.expect_delta, 0);
    ck_assert_uint_eq(st.pages_delta, ds.expect_delta);
    ck_assert_uint_eq(st.pages_zero, ds.expect_zero);
    ck_assert_uint_eq(st.pages, (DIRTY_ROUNDS + 1) * DIRTY_PAGES);

    /* The ratio of the re-sent rounds alone: >= 9. */
    encode(ds.b.data, ds.round1_off, LXM_FORMAT_XL, 0, 0, &tok, &st0);
    lxm__buf_dispose(&tok);
    rounds_in = ds.b.len - ds.round1_off;
    rounds_out = st.bytes_out - st0.bytes_out;
    ck_assert_msg(rounds_in >= 9 * rounds_out,
                  "delta rounds: %llu -> %llu bytes, ratio < 9",
                  (unsigned long long)rounds_in,
                  (unsigned long long)rounds_out);
    lxm_test_buf_dispose(&ds.b);
}
END_TEST

START_TEST(test_dirty_small_cache)
{
    static const uint64_t caches[] = { 4096, 16 * 4096, 300 * 4096, 4095 };
    dirty_stream ds;
    lxm__pagepass_stats st, big;
    size_t i;

    make_dirty(&ds);
    roundtrip(ds.b.data, ds.b.len, LXM_FORMAT_XL, 0, 0, &big);
    for (i = 0; i < LXM_ARRAY_SIZE(caches); i++) {
        roundtrip(ds.b.data, ds.b.len, LXM_FORMAT_XL, 4093, caches[i], &st);
        ck_assert_uint_lt(st.pages_delta, big.pages_delta);
        ck_assert_uint_gt(st.bytes_out, big.bytes_out);
    }
    /* 300 of 448 non-zero pages fit: some deltas still happen. */
    roundtrip(ds.b.data, ds.b.len, LXM_FORMAT_XL, 0, 300 * 4096, &st);
    ck_assert_uint_gt(st.pages_delta, 0);
    lxm_test_buf_dispose(&ds.b);
}
END_TEST

/*
 * The cache policy itself, with a cache of 2 pages: a zero page frees
 * its pfn's slot, a re-sent page becomes the most recently sent, and the
 * least recently sent is evicted.  A decoder that kept zero pages, or
 * evicted in another order, would meet a delta it cannot apply.
 */
START_TEST(test_cache_policy)
{
    static const struct {
        uint64_t pfn;
        char kind;   /* 'n'ew contents, 'z'ero, 'm'odified */
        char expect; /* 'r'aw, 'z'ero, 'd'elta */
    } seq[] = {
        { 10, 'n', 'r' }, { 11, 'n', 'r' }, /* cache: 11 10 */
        { 11, 'z', 'z' },                   /* 10, one slot free */
        { 12, 'n', 'r' },                   /* 12 10 (free slot) */
        { 10, 'm', 'd' },                   /* 10 12 */
        { 13, 'n', 'r' },                   /* 13 10 (12 evicted) */
        { 10, 'm', 'd' },                   /* 10 13 */
        { 12, 'm', 'r' },                   /* 12 10 (13 evicted) */
        { 13, 'm', 'r' },                   /* 13 12 */
        { 12, 'm', 'd' },
    };
    lxm__guest_desc g = {
        .guest_type = LXM_GUEST_X86_HVM,
        .memory_bytes = 64 * LXM_PAGE_SIZE,
        .seed = 1,
    };
    uint8_t(*mem)[LXM_PAGE_SIZE] = calloc(64, LXM_PAGE_SIZE);
    lxm_test_buf b = { 0 };
    lxm_stream_writer *w = NULL;
    lxm__pagepass_stats st, prev = { 0 };
    lxm__buf tok = { 0 };
    lxm__rng r;
    size_t i;

    lxm__rng_seed(&r, 8);
    w = guest_begin(&b, &g);
    for (i = 0; i < LXM_ARRAY_SIZE(seq); i++) {
        uint8_t *p = mem[seq[i].pfn];
        uint64_t word = LXM_PFN_WORD(seq[i].pfn, LXM_PAGE_NOTAB);
        const void *pages[1] = { p };

        if (seq[i].kind == 'n')
            lxm__fill_text_page(&r, p);
        else if (seq[i].kind == 'z')
            memset(p, 0, LXM_PAGE_SIZE);
        else
            p[lxm__rng_below(&r, LXM_PAGE_SIZE)] ^= 0x5a;
        ck_assert_int_eq(lxm_stream_write_page_data(w, 1, &word, pages), 0);
    }
    guest_end(w, &g);
    free(mem);

    roundtrip(b.data, b.len, LXM_FORMAT_XL, 0, 2 * LXM_PAGE_SIZE, &st);
    /* Then page by page: each record is fed whole, so the stats step. */
    {
        lxm__pagepass_opts o = { .format = LXM_FORMAT_XL,
                                 .cache_bytes = 2 * LXM_PAGE_SIZE };
        lxm__pagepass *e = NULL;
        size_t off = 0, rec = 8 + 8 + 8 + LXM_PAGE_SIZE, n = 0;
        uint8_t *first;

        first = memmem(b.data, b.len, "\x01\0\0\0\x10\x10\0\0\x01\0", 10);
        ck_assert_ptr_nonnull(first);
        ck_assert_int_eq(lxm__pagepass_encoder_new(&o, &e), 0);
        off = (size_t)(first - b.data);
        ck_assert_int_eq(lxm__pagepass_feed(e, b.data, off, &tok), 0);
        for (i = 0; i < LXM_ARRAY_SIZE(seq); i++, off += rec) {
            ck_assert_int_eq(lxm__pagepass_feed(e, b.data + off, rec, &tok), 0);
            lxm__pagepass_get_stats(e, &st);
            n = seq[i].expect == 'r'   ? st.pages_raw - prev.pages_raw
                : seq[i].expect == 'z' ? st.pages_zero - prev.pages_zero
                                       : st.pages_delta - prev.pages_delta;
            ck_assert_msg(n == 1, "step %zu (pfn %llu): not sent as '%c'", i,
                          (unsigned long long)seq[i].pfn, seq[i].expect);
            prev = st;
        }
        lxm__pagepass_free(e);
    }
    lxm__buf_dispose(&tok);
    lxm_test_buf_dispose(&b);
}
END_TEST

/* ---- robustness ------------------------------------------------------- */

START_TEST(test_random_bytes)
{
    static const size_t sizes[] = { 0, 1, 47, 48, 1000, 200000 };
    static const size_t chunks[] = { 1, 5, 4096, 0 };
    lxm__pagepass_stats st;
    lxm__rng r;
    uint8_t *p;
    size_t i, j;

    lxm__rng_seed(&r, 3);
    for (i = 0; i < LXM_ARRAY_SIZE(sizes); i++) {
        p = malloc(sizes[i] + 1);
        lxm__rng_fill(&r, p, sizes[i]);
        for (j = 0; j < LXM_ARRAY_SIZE(chunks); j++) {
            if (sizes[i] > 1000 && chunks[j] == 1)
                continue;
            roundtrip(p, sizes[i], _i, chunks[j], 0, &st);
            ck_assert_uint_eq(st.pages, 0);
        }
        free(p);
    }
}
END_TEST

/*
 * Junk (with a partial xl magic in it) before a stream, a banner after
 * it, the stream cut short: byte-exact, and the pages after the junk
 * are still found.
 */
START_TEST(test_junk_and_cut)
{
    static const size_t chunks[] = { 1, 3, 31, 4093, 0 };
    static const char banner[] = "migration receiver ready, send binary"
                                 " domain data.\n";
    lxm_test_buf b = { 0 };
    lxm__pagepass_stats st, ref;
    size_t i, jl = 100 + 20 + sizeof(banner), len;
    uint8_t *j;

    synth(LXM_FORMAT_XL, LXM_GUEST_X86_HVM, 512 << 10, 1, &b);
    roundtrip(b.data, b.len, LXM_FORMAT_XL, 0, 0, &ref);

    j = malloc(jl + b.len + sizeof(banner));
    memset(j, 'x', 100);
    memcpy(j + 100, LXM_XL_MAGIC, 20); /* a false start */
    memcpy(j + 120, banner, sizeof(banner));
    memcpy(j + jl, b.data, b.len);
    memcpy(j + jl + b.len, banner, sizeof(banner));
    len = jl + b.len + sizeof(banner);
    for (i = 0; i < LXM_ARRAY_SIZE(chunks); i++) {
        if (chunks[i] == 1)
            continue;
        roundtrip(j, len, LXM_FORMAT_XL, chunks[i], 0, &st);
        ck_assert_uint_eq(st.pages_zero, ref.pages_zero);
        ck_assert_uint_eq(st.pages, ref.pages);
    }
    /* Cut inside a PAGE_DATA record, the first one after the headers. */
    for (i = 0; i < LXM_ARRAY_SIZE(chunks); i++)
        roundtrip(j, jl + b.len / 3, LXM_FORMAT_XL, chunks[i], 0, &st);
    lxm_test_buf_dispose(&b);
    free(j);
}
END_TEST

START_TEST(test_two_streams)
{
    lxm_test_buf b = { 0 };
    lxm__pagepass_stats st, one;
    uint8_t *two;

    /* Two streams back to back: the encoder starts over after END. */
    synth(LXM_FORMAT_XL, LXM_GUEST_X86_HVM, 512 << 10, 0, &b);
    roundtrip(b.data, b.len, LXM_FORMAT_XL, 0, 0, &one);
    ck_assert_uint_eq(one.pages_delta, 0);
    two = malloc(2 * b.len);
    memcpy(two, b.data, b.len);
    memcpy(two + b.len, b.data, b.len);
    roundtrip(two, 2 * b.len, LXM_FORMAT_XL, 4093, 0, &st);
    ck_assert_uint_eq(st.pages, 2 * one.pages);
    /* The second copy: zero pages, and deltas of length 0. */
    ck_assert_uint_eq(st.pages_delta, one.pages - one.pages_zero);
    free(two);
    lxm_test_buf_dispose(&b);
}
END_TEST

/* ---- real images ------------------------------------------------------ */

static uint8_t *load(const char *path, size_t *len_r)
{
    char *cmd = NULL, *tmp;
    uint8_t *p = NULL;
    FILE *fp;
    struct stat stt;
    size_t n = strlen(path);

    if (n > 4 && !strcmp(path + n - 4, ".zst")) {
        tmp = lxm_test_write_tmp("", 0, ".save");
        ck_assert(asprintf(&cmd, "zstd -d -q -f -c '%s' >'%s'", path, tmp) > 0);
        ck_assert_int_eq(lxm_test_run(cmd, NULL), 0);
        free(cmd);
        fp = fopen(tmp, "rb");
        unlink(tmp);
        free(tmp);
    } else {
        fp = fopen(path, "rb");
    }
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fstat(fileno(fp), &stt), 0);
    *len_r = (size_t)stt.st_size;
    p = malloc(*len_r + 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(fread(p, 1, *len_r, fp), *len_r);
    fclose(fp);
    return p;
}

START_TEST(test_images)
{
    static const char *const shared[] = { "pv-128m.save.zst",
                                          "pvh-128m.save.zst" };
    const char *top = lxm_test_top(), *env = getenv("LXM_SHARED_DIR");
    char path[4096];
    lxm__pagepass_stats st;
    struct dirent *de;
    size_t i, len;
    uint8_t *p;
    int found = 0;
    DIR *d;

    for (i = 0; i < LXM_ARRAY_SIZE(shared) && (top || env); i++) {
        if (env)
            snprintf(path, sizeof(path), "%s/xen-streams/%s", env, shared[i]);
        else
            snprintf(path, sizeof(path), "%s/../shared/xen-streams/%s", top,
                     shared[i]);
        if (access(path, R_OK))
            continue;
        p = load(path, &len);
        roundtrip(p, len, LXM_FORMAT_XL, 1 << 20, 0, &st);
        ck_assert_uint_gt(st.pages_zero, 0);
        ck_assert_uint_lt(st.bytes_out, len);
        free(p);
        found++;
    }
    snprintf(path, sizeof(path), "%s/.cache/xen-lab/streams", top ? top : ".");
    d = top ? opendir(path) : NULL;
    while (d && (de = readdir(d))) {
        char f[4400];

        /* The live-migration captures (the saves are like ../shared's). */
        if (!strstr(de->d_name, ".migstream"))
            continue;
        snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
        p = load(f, &len);
        roundtrip(p, len, LXM_FORMAT_XL, 65521, 0, &st);
        ck_assert_uint_gt(st.pages_zero, 0);
        if (strstr(de->d_name, ".migstream"))
            ck_assert_uint_gt(st.pages_delta, 0);
        free(p);
        found++;
    }
    if (d)
        closedir(d);
    if (!found)
        printf("NOTE: pagepass images: no real Xen image found"
               " (../shared/xen-streams, .cache/xen-lab/streams);"
               " nothing checked\n");
}
END_TEST

/* ---- corrupt tokens --------------------------------------------------- */

/* "LXP" 1, cache of 16384 pages (the default 64 MiB). */
static const uint8_t hdr_default[] = { 'L', 'X', 'P', 1, 0x80, 0x80, 0x01 };

static void expect_corrupt(const uint8_t *tok, size_t len, const char *what)
{
    static const size_t chunks[] = { 0, 1, 3 };
    lxm_test_logger lg;
    lxm__buf out = { 0 };
    size_t i;
    int rc;

    for (i = 0; i < LXM_ARRAY_SIZE(chunks); i++) {
        lxm_test_logger_init(&lg);
        rc = decode(tok, len, chunks[i], 0, &lg.vtable, &out, NULL);
        ck_assert_msg(rc == LXM_ERROR_CORRUPT, "%s (chunk %zu): rc %d", what,
                      chunks[i], rc);
        ck_assert_msg(lg.errors == 1, "%s: %d errors logged", what, lg.errors);
        ck_assert_msg(strstr(lg.last, "page pre-pass") != NULL, "%s: '%s'",
                      what, lg.last);
        out.len = 0;
    }
    lxm__buf_dispose(&out);
}

static size_t build(uint8_t *b, const uint8_t *body, size_t n)
{
    memcpy(b, hdr_default, sizeof(hdr_default));
    memcpy(b + sizeof(hdr_default), body, n);
    return sizeof(hdr_default) + n;
}

START_TEST(test_corrupt_handmade)
{
    /* PAGES, 1 page, pfn 5 (zigzag 10 << 4 = 0xa0 0x01), type 0. */
    static const uint8_t never_sent[] = { 2, 1, 0xa0, 0x01, 0x02,
                                          3, 0, 1,    0xaa, 0 };
    static const uint8_t kind3[] = { 2, 1, 0xa0, 0x01, 0x03, 0 };
    static const uint8_t map_pad[] = { 2, 1, 0xa0, 0x01, 0x40, 0 };
    static const uint8_t count0[] = { 2, 0, 0 };
    static const uint8_t count_big[] = { 2, 0x81, 0x08, 0 }; /* 1025 */
    /* pfn 2^52: zigzag(2^52) = 2^53, << 4 = 2^57 (9-byte varint). */
    static const uint8_t bad_pfn[] = { 2,    1,    0x80, 0x80, 0x80, 0x80,
                                       0x80, 0x80, 0x80, 0x80, 0x02, 0 };
    static const uint8_t long_varint[] = { 1,    0x80, 0x80, 0x80, 0x80, 0x80,
                                           0x80, 0x80, 0x80, 0x80, 0x80, 0x01 };
    static const uint8_t empty_lit[] = { 1, 0, 0 };
    static const uint8_t unknown[] = { 7 };
    static const uint8_t after_end[] = { 0, 1, 1, 'x' };
    static const uint8_t lit_cut[] = { 1, 5, 'a', 'b' };
    static const uint8_t no_end[] = { 1, 1, 'a' };
    /* Delta of pfn 0 after it was sent raw: runs out of the page, then a
     * length over 3839. */
    uint8_t b[16384], body[8300];
    size_t n;

    n = build(b, never_sent, sizeof(never_sent));
    expect_corrupt(b, n, "delta of a pfn never sent");
    n = build(b, kind3, sizeof(kind3));
    expect_corrupt(b, n, "kind 3");
    n = build(b, map_pad, sizeof(map_pad));
    expect_corrupt(b, n, "map padding");
    n = build(b, count0, sizeof(count0));
    expect_corrupt(b, n, "count 0");
    n = build(b, count_big, sizeof(count_big));
    expect_corrupt(b, n, "count 1025");
    n = build(b, bad_pfn, sizeof(bad_pfn));
    expect_corrupt(b, n, "pfn >= 2^52");
    n = build(b, long_varint, sizeof(long_varint));
    expect_corrupt(b, n, "11-byte varint");
    n = build(b, empty_lit, sizeof(empty_lit));
    expect_corrupt(b, n, "empty literal");
    n = build(b, unknown, sizeof(unknown));
    expect_corrupt(b, n, "unknown token");
    n = build(b, after_end, sizeof(after_end));
    expect_corrupt(b, n, "bytes after END");
    n = build(b, lit_cut, sizeof(lit_cut));
    expect_corrupt(b, n, "literal cut short");
    n = build(b, no_end, sizeof(no_end));
    expect_corrupt(b, n, "no END");
    expect_corrupt((const uint8_t *)"LXQ\1", 4, "bad magic");
    expect_corrupt((const uint8_t *)"LXP\3\x80\x80\x01\0", 8, "bad version");
    expect_corrupt((const uint8_t *)"LXP\0\x80\x80\x01\0", 8, "version 0");
    /* Cache size 1 page, decoder has the default. */
    expect_corrupt((const uint8_t *)"LXP\1\1\0", 6, "cache size mismatch");

    /* pfn 0 raw (kind 1), then pfn 0 as a delta with bad runs. */
    n = 0;
    body[n++] = 2;
    body[n++] = 1;
    body[n++] = 0; /* pfn 0 */
    body[n++] = 1; /* raw */
    memset(body + n, 0x11, LXM_PAGE_SIZE);
    n += LXM_PAGE_SIZE;
    {
        static const uint8_t run_out[] = { 2, 1, 0, 2, 4, 0xff, 0x1f, 2, 1 };
        static const uint8_t run_zero[] = { 2, 1, 0, 2, 2, 0, 0 };
        static const uint8_t too_long[] = { 2, 1, 0, 2, 0x80, 0x1e };
        static const uint8_t ok[] = { 2, 1, 0, 2, 3, 0x10, 1, 0x22, 0 };
        lxm__buf out = { 0 };
        size_t m;

        memcpy(body + n, ok, sizeof(ok));
        m = build(b, body, n + sizeof(ok));
        ck_assert_int_eq(decode(b, m, 0, 0, NULL, &out, NULL), 0);
        ck_assert_uint_eq(out.len, 2 * (16 + 8 + LXM_PAGE_SIZE));
        ck_assert_uint_eq(out.p[out.len - LXM_PAGE_SIZE + 0x10], 0x22);
        ck_assert_uint_eq(out.p[out.len - LXM_PAGE_SIZE + 0x11], 0x11);
        lxm__buf_dispose(&out);

        memcpy(body + n, run_out, sizeof(run_out));
        m = build(b, body, n + sizeof(run_out));
        expect_corrupt(b, m, "delta run past the page");
        memcpy(body + n, run_zero, sizeof(run_zero));
        m = build(b, body, n + sizeof(run_zero));
        expect_corrupt(b, m, "delta run of 0 bytes");
        memcpy(body + n, too_long, sizeof(too_long));
        m = build(b, body, n + sizeof(too_long));
        expect_corrupt(b, m, "delta length 3840");
    }

    /* pfn 5 sent as zero (kind 0), then as a delta.  Version 1: not in
     * the cache, corrupt; version 2: against a page of zeros. */
    {
        static const uint8_t zero_then_delta[] = {
            2, 1, 0xa0, 0x01, 0x00,                /* pfn 5 zero */
            2, 1, 0xa0, 0x01, 0x02, 3, 7, 1, 0x5a, /* pfn 5 delta */
            0,
        };
        lxm__buf out = { 0 };
        size_t m;

        m = build(b, zero_then_delta, sizeof(zero_then_delta));
        expect_corrupt(b, m, "version 1: delta of a pfn sent as zero");
        b[3] = 2;
        ck_assert_int_eq(decode(b, m, 1, 0, NULL, &out, NULL), 0);
        ck_assert_uint_eq(out.len, 2 * (16 + 8 + LXM_PAGE_SIZE));
        for (size_t i = 0; i < LXM_PAGE_SIZE; i++)
            ck_assert_uint_eq(out.p[out.len - LXM_PAGE_SIZE + i],
                              i == 7 ? 0x5a : 0);
        lxm__buf_dispose(&out);
        /* version 2, a delta of a pfn never sent is still corrupt */
        m = build(b, never_sent, sizeof(never_sent));
        b[3] = 2;
        expect_corrupt(b, m, "version 2: delta of a pfn never sent");
    }
}
END_TEST

/*
 * Pages first sent as zero, then written in a few places (memory a
 * guest allocates and fills in), as version 2 and version 1 encode
 * them: deltas against zeros in v2, raw in v1; byte-exact both.  With
 * a small cache, the pfns in bitmaps past the set's bound (16 bitmaps
 * of 32768 pfns) are not known to be zero and go raw.
 */
#define ZB_PAGES 40u

static void make_zero_then_written(lxm_test_buf *b, uint64_t pfn_stride)
{
    lxm__guest_desc g = {
        .guest_type = LXM_GUEST_X86_HVM,
        .memory_bytes = 64 << 20,
        .vcpus = 1,
        .seed = 3,
        .name = "zero-written",
    };
    static uint8_t mem[ZB_PAGES][LXM_PAGE_SIZE];
    lxm_stream_writer *w = NULL;
    uint64_t words[ZB_PAGES];
    const void *pages[ZB_PAGES];
    uint32_t round, i;

    memset(mem, 0, sizeof(mem));
    memset(b, 0, sizeof(*b));
    for (i = 0; i < ZB_PAGES; i++) {
        words[i] = LXM_PFN_WORD(i * pfn_stride, LXM_PAGE_NOTAB);
        pages[i] = mem[i];
    }
    w = guest_begin(b, &g);
    for (round = 0; round < 3; round++) {
        for (i = 0; round && i < ZB_PAGES; i++)
            memset(mem[i] + 64 * ((i + round) % 64), (int)(round + i), 24);
        ck_assert_int_eq(lxm_stream_write_page_data(w, ZB_PAGES, words, pages),
                         0);
    }
    guest_end(w, &g);
}

/* Encode b fed chunk bytes at a time (records that span feeds have
 * their pages classified as they come), decode, compare. */
static void encode_version(const lxm_test_buf *b, uint8_t version,
                           uint64_t cache, size_t chunk,
                           lxm__pagepass_stats *st)
{
    lxm__pagepass_opts o = { .format = LXM_FORMAT_XL,
                             .cache_bytes = cache,
                             .version = version };
    lxm__buf tok = { 0 }, out = { 0 };
    lxm__pagepass *e = NULL;
    size_t i, n;

    ck_assert_int_eq(lxm__pagepass_encoder_new(&o, &e), 0);
    for (i = 0; i < b->len; i += n) {
        n = LXM_MIN(chunk, b->len - i);
        ck_assert_int_eq(lxm__pagepass_feed(e, b->data + i, n, &tok), 0);
    }
    ck_assert_int_eq(lxm__pagepass_finish(e, &tok), 0);
    lxm__pagepass_get_stats(e, st);
    lxm__pagepass_free(e);
    ck_assert_uint_eq(tok.p[3], version ? version : 2);
    ck_assert_int_eq(decode(tok.p, tok.len, 4093, cache, NULL, &out, NULL), 0);
    ck_assert_uint_eq(out.len, b->len);
    ck_assert_mem_eq(out.p, b->data, b->len);
    lxm__buf_dispose(&tok);
    lxm__buf_dispose(&out);
}

/*
 * A cache entry evicted while its own token is applied: with a 16-page
 * cache full of pfns 100..115, a record re-sends pfns 0..3 (new) and
 * then 100..103 as deltas.  Version 1 applies pages in order, so 0..3
 * evict 100..103 first: streamed (the record spans feeds), the encoder
 * keeps those delta pages' bytes, so that its cache gets what the
 * decoder's gets.  Version 2 applies 100..103 first (0..3 then evict
 * 104..107).  Either way the next round's edits of 100..103 are deltas
 * again (with the bytes dropped, the encoder's entries would be
 * garbage: raw pages at best, a corrupt stream when the garbage
 * happened to be close).
 */
START_TEST(test_evicted_in_token)
{
    lxm__guest_desc g = {
        .guest_type = LXM_GUEST_X86_HVM,
        .memory_bytes = 64 << 20,
        .vcpus = 1,
        .seed = 4,
        .name = "evict",
    };
    static uint8_t mem[8][LXM_PAGE_SIZE], hot[16][LXM_PAGE_SIZE];
    static const size_t chunks[] = { SIZE_MAX, 4093 };
    lxm_stream_writer *w = NULL;
    uint64_t words[16];
    const void *pages[16];
    lxm__pagepass_stats st;
    lxm_test_buf b = { 0 };
    lxm__rng r;
    uint32_t i;
    size_t c;

    lxm__rng_seed(&r, 12);
    for (i = 0; i < 16; i++)
        lxm__fill_text_page(&r, hot[i]);
    for (i = 0; i < 4; i++)
        lxm__fill_code_page(&r, mem[i]);
    w = guest_begin(&b, &g);
    /* round 0: pfns 100..115 */
    for (i = 0; i < 16; i++) {
        words[i] = LXM_PFN_WORD(100 + i, LXM_PAGE_NOTAB);
        pages[i] = hot[i];
    }
    ck_assert_int_eq(lxm_stream_write_page_data(w, 16, words, pages), 0);
    /* round 1: pfns 0..3 (new), then 100..103 edited */
    for (i = 0; i < 8; i++) {
        words[i] = LXM_PFN_WORD(i < 4 ? i : 96 + i, LXM_PAGE_NOTAB);
        if (i >= 4)
            memset(hot[i - 4] + 512, 0x11 * (int)i, 24);
        pages[i] = i < 4 ? mem[i] : hot[i - 4];
    }
    ck_assert_int_eq(lxm_stream_write_page_data(w, 8, words, pages), 0);
    /* round 2: 100..103 edited again */
    for (i = 0; i < 4; i++) {
        words[i] = LXM_PFN_WORD(100 + i, LXM_PAGE_NOTAB);
        memset(hot[i] + 2048, 0x22 + (int)i, 24);
        pages[i] = hot[i];
    }
    ck_assert_int_eq(lxm_stream_write_page_data(w, 4, words, pages), 0);
    guest_end(w, &g);

    for (c = 0; c < 2 * LXM_ARRAY_SIZE(chunks); c++) {
        encode_version(&b, (uint8_t)(1 + c / LXM_ARRAY_SIZE(chunks)),
                       16 * LXM_PAGE_SIZE, chunks[c % LXM_ARRAY_SIZE(chunks)],
                       &st);
        ck_assert_uint_eq(st.pages_raw, 16 + 4);
        ck_assert_uint_eq(st.pages_delta, 4 + 4);
    }
    /* Cut anywhere (inside the streamed records too, kept delta pages
     * and all): still byte-exact. */
    for (c = 0; c < b.len; c += 1999)
        roundtrip(b.data, c, LXM_FORMAT_XL, 4093, 16 * LXM_PAGE_SIZE, &st);
    lxm_test_buf_dispose(&b);
}
END_TEST

START_TEST(test_zero_then_written)
{
    lxm_test_buf b;
    lxm__pagepass_stats v1, v2, v2small;

    static const size_t chunks[] = { SIZE_MAX, 65536, 4093 };
    size_t c;

    make_zero_then_written(&b, 1);
    for (c = 0; c < LXM_ARRAY_SIZE(chunks); c++) {
        encode_version(&b, 1, 0, chunks[c], &v1);
        encode_version(&b, 0, 0, chunks[c], &v2);
        ck_assert_uint_eq(v1.pages_zero, ZB_PAGES);
        ck_assert_uint_eq(v1.pages_raw, ZB_PAGES);   /* round 1 */
        ck_assert_uint_eq(v1.pages_delta, ZB_PAGES); /* round 2 */
        ck_assert_uint_eq(v2.pages_zero, ZB_PAGES);
        ck_assert_uint_eq(v2.pages_raw, 0);
        ck_assert_uint_eq(v2.pages_delta, 2 * ZB_PAGES);
        ck_assert_uint_lt(v2.bytes_out + 30 * LXM_PAGE_SIZE, v1.bytes_out);
    }
    lxm_test_buf_dispose(&b);

    /* One pfn per bitmap, 40 bitmaps; a 512 KiB cache (128 pages)
     * keeps max(16, 128 / 8) = 16 of them. */
    make_zero_then_written(&b, UINT64_C(1) << 15);
    encode_version(&b, 2, 512 << 10, 65536, &v2small);
    ck_assert_uint_eq(v2small.pages_raw, ZB_PAGES - 16);
    ck_assert_uint_eq(v2small.pages_delta, ZB_PAGES + 16);
    lxm_test_buf_dispose(&b);
}
END_TEST

/* Every proper prefix of a valid token stream is an error, and flipped
 * bytes never crash (rc 0 or CORRUPT). */
START_TEST(test_corrupt_truncated)
{
    dirty_stream ds;
    lxm__buf tok = { 0 }, out = { 0 };
    lxm__pagepass_stats st;
    lxm_test_logger lg;
    size_t cut, step;
    lxm__rng r;
    int rc, i;

    make_dirty(&ds);
    encode(ds.b.data, ds.b.len, LXM_FORMAT_XL, 0, 0, &tok, &st);
    step = tok.len / 37 + 1;
    for (cut = 0; cut < tok.len; cut += step) {
        lxm_test_logger_init(&lg);
        rc = decode(tok.p, cut, 4096, 0, &lg.vtable, &out, NULL);
        ck_assert_msg(rc == LXM_ERROR_CORRUPT, "cut at %zu: rc %d", cut, rc);
        ck_assert_msg(strstr(lg.last, "offset") != NULL, "%s", lg.last);
        out.len = 0;
    }
    rc = decode(tok.p, tok.len - 1, 0, 0, NULL, &out, NULL);
    ck_assert_int_eq(rc, LXM_ERROR_CORRUPT);
    out.len = 0;

    lxm__rng_seed(&r, 11);
    for (i = 0; i < 60; i++) {
        size_t at =
            sizeof(hdr_default) +
            lxm__rng_below(&r, (uint32_t)(tok.len - sizeof(hdr_default)));
        uint8_t old = tok.p[at];

        tok.p[at] ^= (uint8_t)(1 + lxm__rng_below(&r, 255));
        rc = decode(tok.p, tok.len, 8191, 0, NULL, &out, NULL);
        ck_assert_msg(rc == 0 || rc == LXM_ERROR_CORRUPT, "flip at %zu: %d", at,
                      rc);
        tok.p[at] = old;
        out.len = 0;
    }
    lxm__buf_dispose(&out);
    lxm__buf_dispose(&tok);
    lxm_test_buf_dispose(&ds.b);
}
END_TEST

START_TEST(test_opts)
{
    lxm__pagepass_opts o = { .cache_bytes = UINT64_C(1) << 60 };
    lxm__pagepass *pp = (lxm__pagepass *)&o;

    ck_assert_int_eq(lxm__pagepass_encoder_new(&o, &pp), LXM_ERROR_INVAL);
    ck_assert_ptr_null(pp);
    o.cache_bytes = 0;
    o.format = (lxm_stream_format)9;
    ck_assert_int_eq(lxm__pagepass_decoder_new(&o, &pp), LXM_ERROR_INVAL);
    lxm__pagepass_free(NULL);
}
END_TEST

Suite *lxm_test_pagepass_suite(void)
{
    Suite *s = suite_create("pagepass");
    TCase *tc;

    tc = tcase_create("synth");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_synth_chunks);
    tcase_add_loop_test(tc, test_synth_formats, 0,
                        (int)LXM_ARRAY_SIZE(layouts));
    suite_add_tcase(s, tc);

    tc = tcase_create("dirty");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_dirty_deltas);
    tcase_add_test(tc, test_dirty_small_cache);
    tcase_add_test(tc, test_zero_then_written);
    tcase_add_test(tc, test_evicted_in_token);
    tcase_add_test(tc, test_cache_policy);
    suite_add_tcase(s, tc);

    tc = tcase_create("robust");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_random_bytes, LXM_FORMAT_XL,
                        LXM_FORMAT_LIBXC + 1);
    tcase_add_test(tc, test_junk_and_cut);
    tcase_add_test(tc, test_two_streams);
    tcase_add_test(tc, test_opts);
    suite_add_tcase(s, tc);

    tc = tcase_create("images");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_images);
    suite_add_tcase(s, tc);

    tc = tcase_create("corrupt");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_corrupt_handmade);
    tcase_add_test(tc, test_corrupt_truncated);
    suite_add_tcase(s, tc);
    return s;
}
