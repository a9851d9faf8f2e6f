/*
 * reader-fuzz.c - libFuzzer harness for the stream reader (untrusted
 * bytes from the network and from save files).  Built by `make fuzz`,
 * never part of the library.
 *
 * Input: byte 0 picks the format (xl/libxl/libxc) and the reader flags,
 * byte 1 the chunk size (1..256, or 0 = all at once); the rest is the
 * stream.  Every event's borrowed data is read in full so that ASan sees
 * any out-of-bounds pointer the reader hands out.
 */
#include <stddef.h>
#include <stdint.h>

#include "libxlmig_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int touch(void *opaque, const lxm_stream_event *ev)
{
    volatile uint8_t *sink = opaque;
    const uint8_t *p = NULL;
    size_t i, n = 0;

    switch (ev->kind) {
    case LXM_EV_XL_HEADER:
        p = (const uint8_t *)ev->u.xl.config;
        n = ev->u.xl.config_len;
        break;
    case LXM_EV_RECORD:
    case LXM_EV_RECORD_END:
        p = (const uint8_t *)ev->u.record.pfns;
        n = p ? 8 * (size_t)ev->u.record.count : 0;
        break;
    case LXM_EV_RECORD_BODY:
        p = ev->u.body.data;
        n = ev->u.body.length;
        break;
    case LXM_EV_PAGE:
        p = ev->u.page.data;
        n = LXM_PAGE_SIZE;
        break;
    default:
        break;
    }
    for (i = 0; i < n; i++)
        *sink ^= p[i];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned int flag_sets[4] = {
        0,
        LXM_READER_PAGES,
        LXM_READER_BODIES,
        LXM_READER_PAGES | LXM_READER_BODIES | LXM_READER_STOP_AT_END,
    };
    volatile uint8_t sink = 0;
    lxm_stream_reader_opts opts = { 0 };
    lxm_stream_reader *r = NULL;
    size_t chunk, off, used;
    int rc = 0;

    if (size < 2)
        return 0;
    opts.format = (lxm_stream_format)(data[0] % 3);
    opts.flags = flag_sets[(data[0] >> 2) & 3];
    if (data[0] & 0x10)
        opts.flags |= LXM_READER_BACKCHANNEL;
    opts.callback = touch;
    opts.opaque = (void *)&sink;
    chunk = data[1];
    data += 2;
    size -= 2;

    if (lxm_stream_reader_new(&opts, &r))
        return 0;
    for (off = 0; off < size && !rc; off += used) {
        size_t n = chunk ? LXM_MIN(chunk, size - off) : size - off;

        rc = lxm_stream_reader_feed(r, data + off, n, &used);
        if (!rc && used < n)
            break; /* STOP_AT_END */
    }
    if (!rc)
        lxm_stream_reader_finish(r);
    lxm_stream_reader_free(r);
    return 0;
}
