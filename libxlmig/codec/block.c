/*
 * block.c - one-shot block codecs: none, zlib (RFC 1950 format), zstd,
 * lz4; codec names and levels.
 *
 * Entry points: lxm__codec_parse, lxm__codec_spec_format,
 * lxm__codec_name, lxm__codec_impl, lxm__block_ctx_new/_free,
 * lxm__block_ctx_use_stock_zlib, lxm__block_compress,
 * lxm__block_decompress.
 *
 * zlib is produced by ISA-L's igzip when built with LXM_HAVE_ISAL (the
 * fastest by far on guest pages: docs/compression.md), else by
 * libdeflate (LXM_HAVE_LIBDEFLATE), else by stock zlib; it is decoded
 * by libdeflate, else igzip, else stock zlib.  All of them read and
 * write the same format, so either side may lack the fast libraries.
 *
 * A ctx is used by one thread at a time; its library states are made
 * on first use and reused.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>
#ifdef LXM_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif
#ifdef LXM_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "libxlmig_internal.h"
#include "codec/codec.h"
#include "transport/proto.h"

#define ZLIB_LEVEL_DEFAULT 6
#define ZSTD_LEVEL_DEFAULT 1
#define LZ4_ACCEL_DEFAULT 1
#define LZ4_ACCEL_MAX 65537

/* ---- names and levels ---- */

const char *lxm__codec_name(uint8_t codec)
{
    switch (codec & LXM__CODEC_ID_MASK) {
    case LXM__CODEC_NONE:
        return "none";
    case LXM__CODEC_ZLIB:
        return "zlib";
    case LXM__CODEC_ZSTD:
        return "zstd";
    case LXM__CODEC_LZ4:
        return "lz4";
    case LXM__CODEC_END:
        return "end";
    }
    return "?";
}

const char *lxm__codec_impl(uint8_t codec)
{
    switch (codec & LXM__CODEC_ID_MASK) {
    case LXM__CODEC_ZLIB:
#if defined(LXM_HAVE_ISAL)
        return "isa-l igzip";
#elif defined(LXM_HAVE_LIBDEFLATE)
        return "libdeflate";
#else
        return "zlib";
#endif
    case LXM__CODEC_ZSTD:
        return "zstd";
    case LXM__CODEC_LZ4:
        return "lz4";
    case LXM__CODEC_NONE:
        return "none";
    }
    return "?";
}

/* A decimal integer, optionally negative, the whole of s. */
static bool parse_int(const char *s, long min, long max, int *v_r)
{
    char *end;
    long v;

    if (!*s || (*s != '-' && (*s < '0' || *s > '9')))
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *v_r = (int)v;
    return true;
}

int lxm__codec_parse(const char *s, lxm__codec_spec *spec_r, char *err,
                     size_t errlen)
{
    const char *colon = s ? strchr(s, ':') : NULL;
    size_t nlen = colon ? (size_t)(colon - s) : (s ? strlen(s) : 0);
    const char *lv = colon ? colon + 1 : NULL;
    lxm__codec_spec spec = { LXM__CODEC_NONE, 0 };
    long min = 0, max = 0;

    if (!s)
        goto bad_name;
    if (nlen == 4 && !strncmp(s, "none", 4)) {
        if (lv) {
            if (err)
                snprintf(err, errlen, "codec 'none' takes no level ('%s')", s);
            return LXM_ERROR_INVAL;
        }
        *spec_r = spec;
        return 0;
    } else if (nlen == 4 && !strncmp(s, "zlib", 4)) {
        spec.codec = LXM__CODEC_ZLIB;
        spec.level = ZLIB_LEVEL_DEFAULT;
        min = 1;
        max = 9;
    } else if (nlen == 4 && !strncmp(s, "zstd", 4)) {
        spec.codec = LXM__CODEC_ZSTD;
        spec.level = ZSTD_LEVEL_DEFAULT;
        min = ZSTD_minCLevel();
        max = ZSTD_maxCLevel();
    } else if (nlen == 3 && !strncmp(s, "lz4", 3)) {
        spec.codec = LXM__CODEC_LZ4;
        spec.level = LZ4_ACCEL_DEFAULT;
        min = 1;
        max = LZ4_ACCEL_MAX;
    } else {
        goto bad_name;
    }
    if (lv && !parse_int(lv, min, max, &spec.level)) {
        if (err)
            snprintf(err, errlen, "bad %s level '%s' (%s%ld..%ld)",
                     lxm__codec_name(spec.codec), lv,
                     spec.codec == LXM__CODEC_LZ4 ? "acceleration " : "", min,
                     max);
        return LXM_ERROR_INVAL;
    }
    *spec_r = spec;
    return 0;

bad_name:
    if (err)
        snprintf(err, errlen,
                 "unknown codec '%s' (none, zlib[:1-9], zstd[:LEVEL],"
                 " lz4[:ACCEL])",
                 s ? s : "");
    return LXM_ERROR_INVAL;
}

void lxm__codec_spec_format(const lxm__codec_spec *spec, char *buf, size_t len)
{
    if (spec->codec == LXM__CODEC_NONE)
        snprintf(buf, len, "none");
    else
        snprintf(buf, len, "%s:%d", lxm__codec_name(spec->codec), spec->level);
}

/* ---- contexts ---- */

struct lxm__block_ctx {
    bool stock_zlib; /* produce zlib with stock zlib */
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
    z_stream def; /* stock deflate, level def_level; valid if have_def */
    int def_level;
    bool have_def;
    z_stream inf; /* stock inflate; valid if have_inf */
    bool have_inf;
#ifdef LXM_HAVE_ISAL
    uint8_t *isal_buf[4]; /* level buffers of igzip levels 1..3 */
#endif
#ifdef LXM_HAVE_LIBDEFLATE
    struct libdeflate_compressor *ldc[10]; /* by level */
    struct libdeflate_decompressor *ldd;
#endif
};

int lxm__block_ctx_new(lxm__block_ctx **ctx_r)
{
    lxm__block_ctx *ctx = calloc(1, sizeof(*ctx));

    if (!ctx)
        return LXM_ERROR_NOMEM;
    *ctx_r = ctx;
    return 0;
}

void lxm__block_ctx_free(lxm__block_ctx *ctx)
{
    unsigned int i;

    if (!ctx)
        return;
    ZSTD_freeCCtx(ctx->zc);
    ZSTD_freeDCtx(ctx->zd);
    if (ctx->have_def)
        deflateEnd(&ctx->def);
    if (ctx->have_inf)
        inflateEnd(&ctx->inf);
#ifdef LXM_HAVE_ISAL
    for (i = 0; i < LXM_ARRAY_SIZE(ctx->isal_buf); i++)
        free(ctx->isal_buf[i]);
#endif
#ifdef LXM_HAVE_LIBDEFLATE
    for (i = 0; i < LXM_ARRAY_SIZE(ctx->ldc); i++)
        libdeflate_free_compressor(ctx->ldc[i]);
    libdeflate_free_decompressor(ctx->ldd);
#endif
    (void)i;
    free(ctx);
}

void lxm__block_ctx_use_stock_zlib(lxm__block_ctx *ctx, bool stock)
{
    ctx->stock_zlib = stock;
}

/* ---- zlib ---- */

static int zlib_stock_compress(lxm__block_ctx *ctx, int level, const void *src,
                               size_t len, void *dst, size_t cap, size_t *out_r)
{
    int r;

    if (len > UINT_MAX || cap > UINT_MAX)
        return LXM_ERROR_INVAL;
    if (ctx->have_def && ctx->def_level != level) {
        deflateEnd(&ctx->def);
        ctx->have_def = false;
    }
    if (!ctx->have_def) {
        memset(&ctx->def, 0, sizeof(ctx->def));
        r = deflateInit(&ctx->def, level);
        if (r != Z_OK)
            return r == Z_MEM_ERROR ? LXM_ERROR_NOMEM : LXM_ERROR_FAIL;
        ctx->have_def = true;
        ctx->def_level = level;
    } else if (deflateReset(&ctx->def) != Z_OK) {
        return LXM_ERROR_FAIL;
    }
    ctx->def.next_in = (Bytef *)src;
    ctx->def.avail_in = (uInt)len;
    ctx->def.next_out = dst;
    ctx->def.avail_out = (uInt)cap;
    r = deflate(&ctx->def, Z_FINISH);
    if (r == Z_STREAM_END)
        *out_r = ctx->def.total_out;
    else if (r == Z_OK || r == Z_BUF_ERROR)
        *out_r = 0; /* does not fit */
    else
        return LXM_ERROR_FAIL;
    return 0;
}

static int zlib_stock_decompress(lxm__block_ctx *ctx, const void *src,
                                 size_t len, void *dst, size_t raw_len)
{
    int r;

    if (len > UINT_MAX || raw_len > UINT_MAX)
        return LXM_ERROR_CORRUPT;
    if (!ctx->have_inf) {
        memset(&ctx->inf, 0, sizeof(ctx->inf));
        r = inflateInit(&ctx->inf);
        if (r != Z_OK)
            return r == Z_MEM_ERROR ? LXM_ERROR_NOMEM : LXM_ERROR_FAIL;
        ctx->have_inf = true;
    } else if (inflateReset(&ctx->inf) != Z_OK) {
        return LXM_ERROR_FAIL;
    }
    ctx->inf.next_in = (Bytef *)src;
    ctx->inf.avail_in = (uInt)len;
    ctx->inf.next_out = dst;
    ctx->inf.avail_out = (uInt)raw_len;
    r = inflate(&ctx->inf, Z_FINISH);
    if (r == Z_MEM_ERROR)
        return LXM_ERROR_NOMEM;
    if (r != Z_STREAM_END || ctx->inf.avail_in || ctx->inf.total_out != raw_len)
        return LXM_ERROR_CORRUPT;
    return 0;
}

#ifdef LXM_HAVE_ISAL
/* zlib:L -> igzip level: 1 -> 1, 2-3 -> 2, 4-9 -> 3. */
static int isal_level(int level)
{
    return level <= 1 ? 1 : level <= 3 ? 2 : 3;
}

static int zlib_isal_compress(lxm__block_ctx *ctx, int level, const void *src,
                              size_t len, void *dst, size_t cap, size_t *out_r)
{
    /*
     * The level buffer bounds a deflate block (16K tokens at SMALL):
     * levels 1 and 2 keep one Huffman code per block, so larger blocks
     * mix random pages with text and code under one code and lose ~9%
     * of stock zlib's ratio on mixed guest memory; 16K tokens, zlib's
     * own block size at memLevel 8, keeps it within ~5% for ~10% of
     * the speed (docs/compression.md, "Codecs and levels").  Level 3
     * is within 1% of stock zlib with its default buffer.
     */
    static const uint32_t buf_size[4] = {
        0,
        ISAL_DEF_LVL1_SMALL,
        ISAL_DEF_LVL2_SMALL,
        ISAL_DEF_LVL3_DEFAULT,
    };
    struct isal_zstream s;
    int lv = isal_level(level), r;

    if (len > UINT32_MAX || cap > UINT32_MAX)
        return LXM_ERROR_INVAL;
    if (!ctx->isal_buf[lv]) {
        ctx->isal_buf[lv] = malloc(buf_size[lv]);
        if (!ctx->isal_buf[lv])
            return LXM_ERROR_NOMEM;
    }
    isal_deflate_stateless_init(&s);
    s.level = (uint32_t)lv;
    s.level_buf = ctx->isal_buf[lv];
    s.level_buf_size = buf_size[lv];
    s.gzip_flag = IGZIP_ZLIB;
    s.end_of_stream = 1;
    s.flush = NO_FLUSH;
    s.next_in = (uint8_t *)src;
    s.avail_in = (uint32_t)len;
    s.next_out = dst;
    s.avail_out = (uint32_t)cap;
    r = isal_deflate_stateless(&s);
    if (r == STATELESS_OVERFLOW) {
        *out_r = 0;
        return 0;
    }
    if (r != COMP_OK)
        return LXM_ERROR_FAIL;
    *out_r = s.total_out;
    return 0;
}

#ifndef LXM_HAVE_LIBDEFLATE
static int zlib_isal_decompress(const void *src, size_t len, void *dst,
                                size_t raw_len)
{
    struct inflate_state s;
    int r;

    if (len > UINT32_MAX || raw_len > UINT32_MAX)
        return LXM_ERROR_CORRUPT;
    isal_inflate_init(&s);
    s.crc_flag = ISAL_ZLIB;
    s.next_in = (uint8_t *)src;
    s.avail_in = (uint32_t)len;
    s.next_out = dst;
    s.avail_out = (uint32_t)raw_len;
    r = isal_inflate_stateless(&s);
    if (r != ISAL_DECOMP_OK || s.avail_in || s.total_out != raw_len)
        return LXM_ERROR_CORRUPT;
    return 0;
}
#endif
#endif /* LXM_HAVE_ISAL */

#ifdef LXM_HAVE_LIBDEFLATE
#ifndef LXM_HAVE_ISAL
static int zlib_ld_compress(lxm__block_ctx *ctx, int level, const void *src,
                            size_t len, void *dst, size_t cap, size_t *out_r)
{
    if (level < 1 || level > 9)
        return LXM_ERROR_INVAL;
    if (!ctx->ldc[level]) {
        ctx->ldc[level] = libdeflate_alloc_compressor(level);
        if (!ctx->ldc[level])
            return LXM_ERROR_NOMEM;
    }
    *out_r = libdeflate_zlib_compress(ctx->ldc[level], src, len, dst, cap);
    return 0;
}
#endif

static int zlib_ld_decompress(lxm__block_ctx *ctx, const void *src, size_t len,
                              void *dst, size_t raw_len)
{
    size_t in = 0, out = 0;

    if (!ctx->ldd) {
        ctx->ldd = libdeflate_alloc_decompressor();
        if (!ctx->ldd)
            return LXM_ERROR_NOMEM;
    }
    if (libdeflate_zlib_decompress_ex(ctx->ldd, src, len, dst, raw_len, &in,
                                      &out) != LIBDEFLATE_SUCCESS ||
        in != len || out != raw_len)
        return LXM_ERROR_CORRUPT;
    return 0;
}
#endif /* LXM_HAVE_LIBDEFLATE */

static int zlib_compress(lxm__block_ctx *ctx, int level, const void *src,
                         size_t len, void *dst, size_t cap, size_t *out_r)
{
    if (ctx->stock_zlib)
        return zlib_stock_compress(ctx, level, src, len, dst, cap, out_r);
#if defined(LXM_HAVE_ISAL)
    return zlib_isal_compress(ctx, level, src, len, dst, cap, out_r);
#elif defined(LXM_HAVE_LIBDEFLATE)
    return zlib_ld_compress(ctx, level, src, len, dst, cap, out_r);
#else
    return zlib_stock_compress(ctx, level, src, len, dst, cap, out_r);
#endif
}

static int zlib_decompress(lxm__block_ctx *ctx, const void *src, size_t len,
                           void *dst, size_t raw_len)
{
    if (ctx->stock_zlib)
        return zlib_stock_decompress(ctx, src, len, dst, raw_len);
#if defined(LXM_HAVE_LIBDEFLATE)
    return zlib_ld_decompress(ctx, src, len, dst, raw_len);
#elif defined(LXM_HAVE_ISAL)
    return zlib_isal_decompress(src, len, dst, raw_len);
#else
    return zlib_stock_decompress(ctx, src, len, dst, raw_len);
#endif
}

/* ---- the entry points ---- */

int lxm__block_compress(lxm__block_ctx *ctx, const lxm__codec_spec *spec,
                        const void *src, size_t len, void *dst, size_t cap,
                        size_t *out_r)
{
    size_t z;
    int n;

    *out_r = 0;
    switch (spec->codec) {
    case LXM__CODEC_NONE:
        if (len > cap)
            return 0;
        memcpy(dst, src, len);
        *out_r = len;
        return 0;
    case LXM__CODEC_ZLIB:
        if (spec->level < 1 || spec->level > 9)
            return LXM_ERROR_INVAL;
        return zlib_compress(ctx, spec->level, src, len, dst, cap, out_r);
    case LXM__CODEC_ZSTD:
        if (spec->level < ZSTD_minCLevel() || spec->level > ZSTD_maxCLevel())
            return LXM_ERROR_INVAL;
        if (!ctx->zc) {
            ctx->zc = ZSTD_createCCtx();
            if (!ctx->zc)
                return LXM_ERROR_NOMEM;
        }
        z = ZSTD_compressCCtx(ctx->zc, dst, cap, src, len, spec->level);
        if (ZSTD_isError(z)) {
            if (ZSTD_getErrorCode(z) == ZSTD_error_dstSize_tooSmall)
                return 0;
            return LXM_ERROR_FAIL;
        }
        *out_r = z;
        return 0;
    case LXM__CODEC_LZ4:
        if (spec->level < 1 || spec->level > LZ4_ACCEL_MAX)
            return LXM_ERROR_INVAL;
        if (len > LZ4_MAX_INPUT_SIZE)
            return LXM_ERROR_INVAL;
        n = LZ4_compress_fast(src, dst, (int)len,
                              (int)LXM_MIN(cap, (size_t)INT_MAX), spec->level);
        *out_r = n > 0 ? (size_t)n : 0;
        return 0;
    }
    return LXM_ERROR_INVAL;
}

int lxm__block_decompress(lxm__block_ctx *ctx, uint8_t codec, const void *src,
                          size_t len, void *dst, size_t raw_len)
{
    size_t z;
    int n;

    switch (codec) {
    case LXM__CODEC_NONE:
        if (len != raw_len)
            return LXM_ERROR_CORRUPT;
        memcpy(dst, src, len);
        return 0;
    case LXM__CODEC_ZLIB:
        return zlib_decompress(ctx, src, len, dst, raw_len);
    case LXM__CODEC_ZSTD:
        if (!ctx->zd) {
            ctx->zd = ZSTD_createDCtx();
            if (!ctx->zd)
                return LXM_ERROR_NOMEM;
        }
        z = ZSTD_decompressDCtx(ctx->zd, dst, raw_len, src, len);
        if (ZSTD_isError(z) || z != raw_len)
            return LXM_ERROR_CORRUPT;
        return 0;
    case LXM__CODEC_LZ4:
        if (len > INT_MAX || raw_len > INT_MAX)
            return LXM_ERROR_CORRUPT;
        n = LZ4_decompress_safe(src, dst, (int)len, (int)raw_len);
        if (n < 0 || (size_t)n != raw_len)
            return LXM_ERROR_CORRUPT;
        return 0;
    }
    return LXM_ERROR_CORRUPT;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
