/*
 * libxlmig/codec/codec.h - the stream codec layer (issue 5): what sits
 * between the libxl stream and the transport.
 *
 * Pieces, one file each:
 *   buf.c       lxm__buf, a growable byte buffer
 *   pagepass.c  the page-aware pre-pass (zero pages, deltas of re-sent
 *               pages), a byte-exact transform of a libxl stream
 *   (block codecs, checksummed frames and the worker pipeline: see the
 *   sections below)
 */
#ifndef LXM_CODEC_H
#define LXM_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xentoollog.h>

#include "libxlmig.h"

/* ---- lxm__buf (buf.c) ---------------------------------------------- */

/* A growable byte buffer.  Zero-initialise ({0}) to start empty; owns
 * p; lxm__buf_dispose() frees it and leaves the buffer empty. */
typedef struct lxm__buf {
    uint8_t *p;
    size_t len;
    size_t cap;
} lxm__buf;

/* Make room for `more` bytes after len.  LXM_ERROR_NOMEM on failure
 * (the buffer is unchanged). */
int lxm__buf_reserve(lxm__buf *b, size_t more);
int lxm__buf_append(lxm__buf *b, const void *p, size_t n);
void lxm__buf_dispose(lxm__buf *b);
/* A stream writer's sink (lxm_sink_write_fn) appending to the lxm__buf
 * opaque: a stream made in memory. */
int lxm__buf_sink(void *opaque, const struct iovec *iov, int iovcnt);

/* ---- page-aware pre-pass (pagepass.c) ------------------------------ */

/*
 * The encoder takes the bytes of a libxl migration stream as they come
 * (any chunking) and writes a token stream; the decoder turns the token
 * stream back into exactly the same bytes.  The decoder needs no
 * knowledge of the stream grammar: everything it needs is in the
 * tokens.  The encoder recognises libxc PAGE_DATA records (zero pages
 * as a bitmap; pages seen before in this stream delta-encoded against a
 * bounded cache of their last-sent contents; pages or records that
 * would not shrink below 15/16 go raw) and passes everything else as
 * literal bytes.  Bytes it does not understand (an unknown start, a
 * stream that breaks the grammar, xl's migration-protocol banners)
 * are passed through literally, never an error: the pre-pass is an
 * optimisation, the byte-exact round trip is the contract.  The token
 * format is written down in docs/compression.md.
 *
 * The decoder, in contrast, treats its input as untrusted: every length
 * and pfn is checked, a bad token is LXM_ERROR_CORRUPT with a message through the logger naming the
 * token offset, never a crash.
 */
typedef struct lxm__pagepass lxm__pagepass;

typedef struct lxm__pagepass_opts {
    lxm_stream_format format;  /* where the encoded stream starts */
    uint64_t cache_bytes;      /* delta cache; 0 = default 64 MiB; the
                               * decoder must use the same value */
    uint8_t version;           /* encoder: token format 1 or 2, 0 = the
                               * newest (2); the decoder reads both */
    xentoollog_logger *logger; /* NULL ok; borrowed */
} lxm__pagepass_opts;

typedef struct lxm__pagepass_stats {
    uint64_t bytes_in;      /* raw stream bytes */
    uint64_t bytes_out;     /* token bytes */
    uint64_t pages;         /* pages with data seen */
    uint64_t pages_zero;    /* sent as a bitmap bit */
    uint64_t pages_delta;   /* sent as a delta */
    uint64_t pages_raw;     /* sent as they were */
    uint64_t bytes_literal; /* bytes outside PAGE_DATA page payloads */
} lxm__pagepass_stats;

int lxm__pagepass_encoder_new(const lxm__pagepass_opts *o,
                              lxm__pagepass **pp_r);
int lxm__pagepass_decoder_new(const lxm__pagepass_opts *o,
                              lxm__pagepass **pp_r);
void lxm__pagepass_free(lxm__pagepass *pp); /* NULL ok */
/* Feed input; appends output to *out (which the caller owns).  The
 * encoder may hold back bytes of a record it has not seen whole; the
 * decoder may hold back a partial token. */
int lxm__pagepass_feed(lxm__pagepass *pp, const void *buf, size_t len,
                       lxm__buf *out);
/* End of input: flush what is held back.  For the decoder, a partial
 * token left over is LXM_ERROR_CORRUPT. */
int lxm__pagepass_finish(lxm__pagepass *pp, lxm__buf *out);
void lxm__pagepass_get_stats(const lxm__pagepass *pp, lxm__pagepass_stats *st);

/* ---- block codecs (block.c) ---------------------------------------- */

/*
 * One-shot compression of one chunk.  Codec ids are the LXM__CODEC_*
 * of transport/proto.h (none, zlib, zstd, lz4).  zlib produces the
 * standard zlib format (RFC 1950), decodable by stock inflate, with the
 * fastest implementation built in: ISA-L igzip (LXM_HAVE_ISAL), else
 * libdeflate (LXM_HAVE_LIBDEFLATE), else stock zlib.  zlib is decoded by
 * libdeflate when built in, else igzip, else stock zlib.
 *
 * Levels (docs/compression.md):
 *   zlib:1..9   default 6; igzip: 1 -> 1, 2-3 -> 2, 4-9 -> 3
 *   zstd:L      ZSTD_minCLevel()..ZSTD_maxCLevel() (negative: fast
 *               levels, as zstd --fast=N), default 1
 *   lz4:A       acceleration 1..65537 (1 = LZ4_compress_default),
 *               default 1
 *   none        no level
 */
#define LXM__CODEC_CHUNK_MAX (4u << 20) /* raw bytes per frame, hard cap */

typedef struct lxm__codec_spec {
    uint8_t codec; /* LXM__CODEC_NONE/ZLIB/ZSTD/LZ4 */
    int level;     /* always explicit (defaults resolved) */
} lxm__codec_spec;

/*
 * "none", "zlib", "zlib:1", "zstd:-5", "lz4", "lz4:8" -> *spec_r.
 * LXM_ERROR_INVAL on anything else; err (NULL ok) gets one line such as
 * "unknown codec 'gzip' (none, zlib[:1-9], zstd[:L], lz4[:A])".
 */
int lxm__codec_parse(const char *s, lxm__codec_spec *spec_r, char *err,
                     size_t errlen);
/* "zstd:-3" etc. into buf (always NUL terminated). */
void lxm__codec_spec_format(const lxm__codec_spec *spec, char *buf, size_t len);
/* "none", "zlib", "zstd", "lz4", or "?" (codec byte flags ignored). */
const char *lxm__codec_name(uint8_t codec);
/* The implementation behind a codec, e.g. "isa-l igzip" for zlib. */
const char *lxm__codec_impl(uint8_t codec);

/* Per-thread scratch state (zstd contexts, igzip level buffers, ...). */
typedef struct lxm__block_ctx lxm__block_ctx;

int lxm__block_ctx_new(lxm__block_ctx **ctx_r);
void lxm__block_ctx_free(lxm__block_ctx *ctx); /* NULL ok */
/* For tests and benchmarks: zlib through stock zlib (both ways). */
void lxm__block_ctx_use_stock_zlib(lxm__block_ctx *ctx, bool stock);

/*
 * Compress src[0..len) into dst (cap bytes).  *out_r: compressed size,
 * or 0 when the result does not fit in cap (the caller then sends the
 * chunk raw).  Errors: LXM_ERROR_INVAL (bad codec/level), _NOMEM,
 * _FAIL (the library failed).
 */
int lxm__block_compress(lxm__block_ctx *ctx, const lxm__codec_spec *spec,
                        const void *src, size_t len, void *dst, size_t cap,
                        size_t *out_r);
/*
 * Decode src[0..len) into exactly raw_len bytes at dst.  Input that
 * does not decode, or decodes to another length, or leaves input over,
 * is LXM_ERROR_CORRUPT (no logging: the caller names the frame).
 */
int lxm__block_decompress(lxm__block_ctx *ctx, uint8_t codec, const void *src,
                          size_t len, void *dst, size_t raw_len);

/* ---- frames (frame.c) ---------------------------------------------- */

/*
 * A frame: a 32-byte header, then the payload.  One frame is the
 * payload of one transport STREAM message (whose codec byte repeats the
 * frame's), and files are a header then frames (docs/compression.md).
 *
 *   0  4  magic "LXMF"
 *   4  1  codec byte: block codec id (bits 0-3) | LXM__CODEC_PAGES
 *         (pre-pass tokens inside); LXM__CODEC_END: the end marker
 *   5  3  reserved, 0
 *   8  4  raw length (LE): bytes after the block codec, 1..CHUNK_MAX
 *  12  4  payload length (LE): == raw for none, < raw otherwise
 *  16  8  sequence number (LE), from 0, +1 per frame
 *  24  8  checksum (LE): XXH3-64 of the payload seeded with the
 *         XXH3-64 of bytes 0..23
 *
 * The end marker (codec LXM__CODEC_END, raw length = payload length =
 * 24) carries the total raw stream length (LE u64) and the XXH3-128 of
 * the raw stream (high then low half, LE u64 each).
 */
#define LXM__CFRAME_HDR_LEN 32u
#define LXM__CFRAME_MAGIC "LXMF"
#define LXM__CFRAME_END_LEN 24u
/* Largest frame: header + a raw chunk. */
#define LXM__CFRAME_MAX (LXM__CFRAME_HDR_LEN + LXM__CODEC_CHUNK_MAX)

typedef struct lxm__cframe_hdr {
    uint8_t codec;
    uint32_t raw_len;
    uint32_t payload_len;
    uint64_t seq;
    uint64_t checksum;
} lxm__cframe_hdr;

/* Write the header for payload (checksum computed here). */
void lxm__cframe_put_hdr(uint8_t *hdr, uint8_t codec, uint32_t raw_len,
                         uint64_t seq, const void *payload,
                         uint32_t payload_len);
/*
 * Parse and check a header: magic, reserved bytes, codec, the caps and
 * the raw/payload relation.  No checksum check (that needs the
 * payload).  LXM_ERROR_CORRUPT with a reason in why (NULL ok).
 */
int lxm__cframe_parse_hdr(const uint8_t *hdr, lxm__cframe_hdr *h_r, char *why,
                          size_t whylen);
/* Does the checksum in h match the header bytes and payload? */
bool lxm__cframe_checksum_ok(const uint8_t *hdr, const lxm__cframe_hdr *h,
                             const void *payload);

/* ---- encoder and decoder pipelines (pipeline.c) -------------------- */

/*
 * Encoder: raw stream bytes in (any chunking) -> the page pre-pass (in
 * the caller's thread, sequential) -> chunks of opts.chunk bytes ->
 * block codec on N worker threads -> frames out, in order, through
 * out_fn, always called in the caller's thread from inside
 * lxm__encoder_feed/_flush/_finish (never while an internal lock is
 * held).  threads == 1 compresses inline, without threads.
 *
 * Decoder: frames in (whole frames, or a byte stream of frames in any
 * chunking) -> sequence and caps checked in the caller's thread ->
 * checksum then block decode on the workers -> in order, the pre-pass
 * decoder -> raw bytes out through out_fn (caller's thread).  The end
 * marker is checked against the total length and XXH3-128 of the
 * bytes produced.
 *
 * Errors are sticky: after a failure every call returns the same rc.
 * A bad frame is LXM_ERROR_CORRUPT, logged once as
 * "compressed stream: frame SEQ at offset OFF: REASON".
 */

/* Encoder output: one frame (header + payload), borrowed during the
 * call; codec is the frame's codec byte (for the transport header).
 * A non-zero return stops the encoder and is returned by the call. */
typedef int lxm__codec_frame_fn(void *opaque, uint8_t codec, const void *frame,
                                size_t len);
/* Decoder output: raw stream bytes, borrowed during the call. */
typedef int lxm__codec_data_fn(void *opaque, const void *buf, size_t len);

#define LXM__CODEC_THREADS_MAX 16u

typedef struct lxm__encoder_opts {
    lxm__codec_spec spec;      /* {0} = none */
    unsigned int threads;      /* 0 = online CPUs, at most THREADS_MAX */
    bool no_prepass;           /* default (false): pre-pass on */
    lxm_stream_format format;  /* for the pre-pass: where the stream
                                * starts */
    uint64_t cache_bytes;      /* pre-pass delta cache; 0 = default */
    uint8_t prepass_version;   /* pre-pass token format; 0 = newest
                                * (a peer without "codec:pages2": 1) */
    uint32_t chunk;            /* raw bytes per frame; 0 = 256 KiB */
    xentoollog_logger *logger; /* NULL ok; borrowed */
    lxm__codec_frame_fn *out;  /* required */
    void *opaque;
} lxm__encoder_opts;

typedef struct lxm__encoder_stats {
    uint64_t bytes_in;     /* raw stream bytes fed */
    uint64_t bytes_tokens; /* after the pre-pass (= bytes_in without) */
    uint64_t bytes_out;    /* frame bytes emitted, headers included */
    uint64_t frames;       /* emitted, end marker included */
    uint64_t frames_raw;   /* sent uncompressed (would not shrink) */
    uint64_t ns_prepass;   /* time in the pre-pass (caller's thread) */
    uint64_t ns_block;     /* time in the block codec, all workers */
    uint64_t ns_wait;      /* caller's time waiting for workers */
    unsigned int threads;
    lxm__pagepass_stats pages; /* zero without the pre-pass */
} lxm__encoder_stats;

typedef struct lxm__encoder lxm__encoder;

int lxm__encoder_new(const lxm__encoder_opts *o, lxm__encoder **e_r);
void lxm__encoder_free(lxm__encoder *e); /* NULL ok; stops workers */
int lxm__encoder_feed(lxm__encoder *e, const void *buf, size_t len);
/* Send what has been fed so far (as far as the pre-pass lets go of
 * it: it may hold back a partial record) and wait until every frame is
 * out.  For the engine: at the end of a pre-copy round. */
int lxm__encoder_flush(lxm__encoder *e);
/* End of the stream: flush everything, then the end marker. */
int lxm__encoder_finish(lxm__encoder *e);
void lxm__encoder_get_stats(const lxm__encoder *e, lxm__encoder_stats *st);

typedef struct lxm__decoder_opts {
    unsigned int threads;      /* 0 = online CPUs, at most THREADS_MAX */
    lxm_stream_format format;  /* for the pre-pass decoder */
    uint64_t cache_bytes;      /* must match the encoder's */
    uint64_t base_offset;      /* added to offsets in messages */
    xentoollog_logger *logger; /* NULL ok; borrowed */
    lxm__codec_data_fn *out;   /* required */
    void *opaque;
} lxm__decoder_opts;

typedef struct lxm__decoder_stats {
    uint64_t bytes_in;  /* frame bytes, headers included */
    uint64_t bytes_out; /* raw stream bytes produced */
    uint64_t frames;
    uint64_t ns_block; /* checksum + block decode, all workers */
    uint64_t ns_prepass;
    unsigned int threads;
} lxm__decoder_stats;

typedef struct lxm__decoder lxm__decoder;

int lxm__decoder_new(const lxm__decoder_opts *o, lxm__decoder **d_r);
void lxm__decoder_free(lxm__decoder *d); /* NULL ok */
/* Exactly one frame (a STREAM message's payload). */
int lxm__decoder_feed_frame(lxm__decoder *d, const void *frame, size_t len);
/* A byte stream of frames (files), any chunking. */
int lxm__decoder_feed(lxm__decoder *d, const void *buf, size_t len);
/* Wait for every frame to be decoded and written.  The end marker must
 * have been seen (else LXM_ERROR_CORRUPT: truncated). */
int lxm__decoder_finish(lxm__decoder *d);
/* Has the end marker been seen (and checked)? */
bool lxm__decoder_done(const lxm__decoder *d);
void lxm__decoder_get_stats(const lxm__decoder *d, lxm__decoder_stats *st);

/* Online CPUs, capped at LXM__CODEC_THREADS_MAX (at least 1). */
unsigned int lxm__codec_default_threads(void);

#endif /* LXM_CODEC_H */
