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

#endif /* LXM_CODEC_H */
