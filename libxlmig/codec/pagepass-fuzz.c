/*
 * pagepass-fuzz.c - libFuzzer harness for the page pre-pass
 * (codec/pagepass.c).  Built by `make fuzz`, never part of the library.
 *
 * Input: byte 0 picks the mode, byte 1 the chunk size (1..255, 0 = all
 * at once); the rest is the data.
 *   mode bit 0 set: decode the data as an untrusted token stream
 *     (bit 1 set: behind a valid stream header, so the fuzzer reaches
 *     the tokens at once).  Any result but 0 or LXM_ERROR_CORRUPT, or
 *     a crash, is a bug.
 *   mode bit 0 clear: encode the data as a stream (format = bits 2-3
 *     mod 3; the seeds, xl streams, land here: 'X' is even and picks
 *     libxc, found inside), decode the tokens, and abort unless
 *     the bytes come back exactly: the encoder must never fail on its
 *     input and the round trip must be byte-exact.
 * The cache is 16 pages so that eviction is exercised.
 */
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "libxlmig_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CACHE (16u * LXM_PAGE_SIZE)

static int feed_all(lxm__pagepass *pp, const uint8_t *p, size_t len,
                    size_t chunk, lxm__buf *out)
{
    size_t off, n;
    int rc = 0;

    for (off = 0; off < len && !rc; off += n) {
        n = chunk ? LXM_MIN(chunk, len - off) : len - off;
        rc = lxm__pagepass_feed(pp, p + off, n, out);
    }
    return rc ? rc : lxm__pagepass_finish(pp, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* "LXP" 1, varint 16 (pages) */
    static const uint8_t hdr[] = { 'L', 'X', 'P', 1, 16 };
    lxm__pagepass_opts o = { .cache_bytes = FUZZ_CACHE };
    lxm__pagepass *enc = NULL, *dec = NULL;
    lxm__buf tok = { 0 }, out = { 0 };
    unsigned int mode;
    size_t chunk;
    int rc;

    if (size < 2)
        return 0;
    mode = data[0];
    chunk = data[1];
    data += 2;
    size -= 2;
    o.format = (lxm_stream_format)(((mode >> 2) & 3) % 3);

    if (lxm__pagepass_decoder_new(&o, &dec))
        goto out;
    if (mode & 1) {
        if (mode & 2) {
            rc = lxm__pagepass_feed(dec, hdr, sizeof(hdr), &out);
            if (rc)
                abort();
        }
        rc = feed_all(dec, data, size, chunk, &out);
        if (rc && rc != LXM_ERROR_CORRUPT)
            abort();
        goto out;
    }

    if (lxm__pagepass_encoder_new(&o, &enc))
        goto out;
    if (feed_all(enc, data, size, chunk, &tok))
        abort(); /* the encoder never fails on its input */
    rc = feed_all(dec, tok.p, tok.len, chunk ? chunk * 7 + 1 : 0, &out);
    if (rc || out.len != size || (size && memcmp(out.p, data, size)))
        abort();

out:
    lxm__pagepass_free(enc);
    lxm__pagepass_free(dec);
    lxm__buf_dispose(&tok);
    lxm__buf_dispose(&out);
    return 0;
}
