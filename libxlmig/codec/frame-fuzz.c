/*
 * frame-fuzz.c - libFuzzer harness for the codec decoders: the frame
 * header parser and the decoder pipeline (untrusted bytes from the
 * network and from compressed files).  Built by `make fuzz`, never
 * part of the library.
 *
 * Input: byte 0 picks the mode, byte 1 the feed chunk (1..256, or 0 =
 * all at once); the rest is data.
 *   mode & 3 == 0   the data is a frame stream: decode it as a byte
 *                   stream (any chunking)
 *   mode & 3 == 1   the same, fed as whole frames where the headers
 *                   say so (truncated ones included)
 *   mode & 3 >= 2   the data is a raw stream: encode it with the codec
 *                   picked by bits 2-3 (pre-pass on bit 4), flip the
 *                   bytes named by the data's last 4 bytes, decode: a
 *                   clean round trip when nothing was flipped,
 *                   LXM_ERROR_CORRUPT or an exact round trip otherwise
 * Bit 5 picks 2 worker threads instead of inline decoding.
 */
#include <stdlib.h>
#include <string.h>

#include "libxlmig_internal.h"
#include "codec/codec.h"
#include "transport/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sink(void *opaque, const void *buf, size_t len)
{
    lxm__buf *b = opaque;

    if (!b)
        return 0;
    return lxm__buf_append(b, buf, len);
}

static int frames_out(void *opaque, uint8_t codec, const void *frame,
                      size_t len)
{
    (void)codec;
    return lxm__buf_append(opaque, frame, len);
}

static int decode(const uint8_t *p, size_t len, size_t chunk, bool whole,
                  unsigned int threads, lxm__buf *out)
{
    lxm__decoder_opts o = { 0 };
    lxm__decoder *d = NULL;
    lxm__cframe_hdr h;
    size_t at, k;
    int rc;

    o.threads = threads;
    o.cache_bytes = 1 << 20;
    o.out = sink;
    o.opaque = out;
    rc = lxm__decoder_new(&o, &d);
    if (rc)
        return rc;
    for (at = 0; at < len && !rc; at += k) {
        if (whole) {
            k = len - at;
            if (k >= LXM__CFRAME_HDR_LEN &&
                !lxm__cframe_parse_hdr(p + at, &h, NULL, 0) &&
                (size_t)LXM__CFRAME_HDR_LEN + h.payload_len < k)
                k = LXM__CFRAME_HDR_LEN + h.payload_len;
            rc = lxm__decoder_feed_frame(d, p + at, k);
        } else {
            k = chunk ? LXM_MIN(chunk, len - at) : len - at;
            rc = lxm__decoder_feed(d, p + at, k);
        }
    }
    if (!rc)
        rc = lxm__decoder_finish(d);
    lxm__decoder_free(d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const codecs[4] = { "none", "zlib:1", "zstd:-3", "lz4" };
    lxm__encoder_opts eo = { 0 };
    lxm__encoder *e = NULL;
    lxm__buf enc = { 0 }, out = { 0 };
    uint8_t mode, flip[4];
    size_t chunk, i;
    unsigned int threads;
    int rc;

    if (size < 2)
        return 0;
    mode = data[0];
    chunk = data[1];
    data += 2;
    size -= 2;
    threads = mode & 0x20 ? 2 : 1;

    if ((mode & 3) < 2) {
        decode(data, size, chunk, mode & 1, threads, NULL);
        return 0;
    }

    if (size < 4)
        return 0;
    memcpy(flip, data + size - 4, 4);
    size -= 4;
    if (lxm__codec_parse(codecs[(mode >> 2) & 3], &eo.spec, NULL, 0))
        abort();
    eo.threads = threads;
    eo.no_prepass = !(mode & 0x10);
    eo.cache_bytes = 1 << 20;
    eo.chunk = 4096;
    eo.out = frames_out;
    eo.opaque = &enc;
    if (lxm__encoder_new(&eo, &e))
        abort();
    rc = lxm__encoder_feed(e, data, size);
    if (!rc)
        rc = lxm__encoder_finish(e);
    lxm__encoder_free(e);
    if (rc)
        abort(); /* encoding never fails on any input */
    for (i = 0; i < 4 && enc.len; i++) {
        if (flip[i])
            enc.p[(size_t)flip[i] * 131 % enc.len] ^= flip[i];
    }
    rc = decode(enc.p, enc.len, chunk, false, threads, &out);
    if (!rc && (out.len != size || memcmp(out.p, data, size)))
        abort(); /* a decode that succeeds is exact */
    if (!flip[0] && !flip[1] && !flip[2] && !flip[3] && rc)
        abort(); /* an untouched stream decodes */
    if (rc && rc != LXM_ERROR_CORRUPT)
        abort();
    lxm__buf_dispose(&enc);
    lxm__buf_dispose(&out);
    return 0;
}
