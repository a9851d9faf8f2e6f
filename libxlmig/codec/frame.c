/*
 * frame.c - the compressed frame: header layout, checks, checksum.
 * The layout is in codec.h and docs/compression.md.
 *
 * Entry points: lxm__cframe_put_hdr, lxm__cframe_parse_hdr,
 * lxm__cframe_checksum_ok.
 *
 * Everything here is pure: the pipelines (pipeline.c) keep the
 * sequence numbers, offsets and logging.
 */
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "libxlmig_internal.h"
#include "codec/codec.h"
#include "transport/proto.h"

/* XXH3-64 of the payload, seeded with the XXH3-64 of header bytes
 * 0..23 (so that the checksum covers both). */
static uint64_t frame_checksum(const uint8_t *hdr, const void *payload,
                               uint32_t payload_len)
{
    return XXH3_64bits_withSeed(payload, payload_len, XXH3_64bits(hdr, 24));
}

void lxm__cframe_put_hdr(uint8_t *hdr, uint8_t codec, uint32_t raw_len,
                         uint64_t seq, const void *payload,
                         uint32_t payload_len)
{
    memcpy(hdr, LXM__CFRAME_MAGIC, 4);
    hdr[4] = codec;
    hdr[5] = hdr[6] = hdr[7] = 0;
    lxm__put_le32(hdr + 8, raw_len);
    lxm__put_le32(hdr + 12, payload_len);
    lxm__put_le64(hdr + 16, seq);
    lxm__put_le64(hdr + 24, frame_checksum(hdr, payload, payload_len));
}

#define WHY(...)                                                               \
    do {                                                                       \
        if (why)                                                               \
            snprintf(why, whylen, __VA_ARGS__);                                \
        return LXM_ERROR_CORRUPT;                                              \
    } while (0)

int lxm__cframe_parse_hdr(const uint8_t *hdr, lxm__cframe_hdr *h_r, char *why,
                          size_t whylen)
{
    lxm__cframe_hdr h;
    uint8_t id;

    if (memcmp(hdr, LXM__CFRAME_MAGIC, 4))
        WHY("bad frame magic %02x%02x%02x%02x", hdr[0], hdr[1], hdr[2], hdr[3]);
    if (hdr[5] || hdr[6] || hdr[7])
        WHY("reserved header bytes not zero");
    h.codec = hdr[4];
    h.raw_len = lxm__le32(hdr + 8);
    h.payload_len = lxm__le32(hdr + 12);
    h.seq = lxm__le64(hdr + 16);
    h.checksum = lxm__le64(hdr + 24);

    if (h.codec & ~(LXM__CODEC_ID_MASK | LXM__CODEC_PAGES))
        WHY("unknown codec byte 0x%02x", h.codec);
    id = h.codec & LXM__CODEC_ID_MASK;
    if (id == LXM__CODEC_END) {
        if (h.codec != LXM__CODEC_END)
            WHY("end marker with flags 0x%02x", h.codec);
        if (h.raw_len != LXM__CFRAME_END_LEN ||
            h.payload_len != LXM__CFRAME_END_LEN)
            WHY("end marker of length %u/%u (want %u)", h.raw_len,
                h.payload_len, LXM__CFRAME_END_LEN);
    } else if (id != LXM__CODEC_NONE && id != LXM__CODEC_ZLIB &&
               id != LXM__CODEC_ZSTD && id != LXM__CODEC_LZ4) {
        WHY("unknown codec id %u", id);
    } else if (h.raw_len == 0 || h.raw_len > LXM__CODEC_CHUNK_MAX) {
        WHY("raw length %u out of range (1..%u)", h.raw_len,
            LXM__CODEC_CHUNK_MAX);
    } else if (id == LXM__CODEC_NONE && h.payload_len != h.raw_len) {
        WHY("uncompressed frame with payload length %u != raw length %u",
            h.payload_len, h.raw_len);
    } else if (id != LXM__CODEC_NONE &&
               (h.payload_len == 0 || h.payload_len >= h.raw_len)) {
        WHY("%s payload length %u not below raw length %u", lxm__codec_name(id),
            h.payload_len, h.raw_len);
    }
    *h_r = h;
    return 0;
}

#undef WHY

bool lxm__cframe_checksum_ok(const uint8_t *hdr, const lxm__cframe_hdr *h,
                             const void *payload)
{
    return frame_checksum(hdr, payload, h->payload_len) == h->checksum;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
