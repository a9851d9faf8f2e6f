/*
 * xlmig_compress.c - the codec commands of xlmig (libxlmig/codec/).
 *
 *   stream-compress    IN -> a compressed stream file: the file header,
 *                      then the encoder's frames, the last one the end
 *                      marker (docs/compression.md)
 *   stream-decompress  a compressed stream file -> the original bytes
 *
 * The file header (32 bytes, little endian):
 *
 *   0  8  magic "\x89XLMIGZ\n"
 *   8  2  format version, 1
 *  10  1  pre-pass: 1 on, 0 off
 *  11  1  lxm_stream_format of the stream (what the pre-pass parsed)
 *  12  4  reserved, 0
 *  16  8  pre-pass delta cache bytes (the decoder must use the same)
 *  24  8  XXH3-64 of bytes 0..23
 *
 * Both commands stream (bounded memory) and take `-` for stdin/stdout.
 * On failure: one line on stderr, exit 1, and no output file left.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "libxlmig_internal.h"
#include "codec/codec.h"
#include "transport/proto.h"
#include "xlmig.h"

#define FILE_MAGIC "\x89XLMIGZ\n"
#define FILE_HDR_LEN 32
#define FILE_VERSION 1
#define READ_CHUNK (1u << 20)
#define CACHE_MAX (UINT64_C(64) << 30)

typedef struct io {
    const char *cmd;
    const char *in_path, *out_path;
    int in_fd, out_fd;
    bool created; /* out_path was created by us */
} io;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *out_name(const io *f)
{
    return f->created ? f->out_path : "<stdout>";
}

static const char *in_name(const io *f)
{
    return f->in_fd == STDIN_FILENO ? "<stdin>" : f->in_path;
}

static int open_files(io *f, bool binary_out)
{
    if (!strcmp(f->in_path, "-")) {
        f->in_fd = STDIN_FILENO;
    } else {
        f->in_fd = open(f->in_path, O_RDONLY | O_CLOEXEC);
        if (f->in_fd < 0) {
            xlmig_error(f->cmd, "%s: %s", f->in_path, strerror(errno));
            return -1;
        }
    }
    if (!strcmp(f->out_path, "-")) {
        if (binary_out && isatty(STDOUT_FILENO)) {
            xlmig_error(f->cmd, "not writing a binary stream to a terminal");
            return -1;
        }
        fflush(stdout);
        f->out_fd = STDOUT_FILENO;
    } else {
        f->out_fd =
            open(f->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (f->out_fd < 0) {
            xlmig_error(f->cmd, "%s: %s", f->out_path, strerror(errno));
            return -1;
        }
        f->created = true;
    }
    return 0;
}

/* Close; on failure remove what we created.  Returns ret or FAIL. */
static int close_files(io *f, int ret)
{
    if (f->in_fd > STDIN_FILENO)
        close(f->in_fd);
    f->in_fd = -1;
    if (f->created && f->out_fd >= 0) {
        if (close(f->out_fd) && ret == XLMIG_EXIT_OK) {
            xlmig_error(f->cmd, "%s: %s", f->out_path, strerror(errno));
            ret = XLMIG_EXIT_FAIL;
        }
    }
    f->out_fd = -1;
    if (f->created && ret != XLMIG_EXIT_OK)
        unlink(f->out_path);
    return ret;
}

static int write_all(io *f, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    ssize_t r;

    while (len) {
        r = write(f->out_fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            xlmig_error(f->cmd, "%s: write: %s", out_name(f),
                        r < 0 ? strerror(errno) : "no progress");
            return LXM_ERROR_IO;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* Read up to len bytes (short only at EOF).  -1 on error (reported). */
static ssize_t read_full(io *f, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t got = 0;
    ssize_t r;

    while (got < len) {
        r = read(f->in_fd, p + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            xlmig_error(f->cmd, "%s: read: %s", in_name(f), strerror(errno));
            return -1;
        }
        if (!r)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int frame_out(void *opaque, uint8_t codec, const void *frame, size_t len)
{
    (void)codec;
    return write_all(opaque, frame, len);
}

static int data_out(void *opaque, const void *buf, size_t len)
{
    return write_all(opaque, buf, len);
}

static bool parse_threads(const char *s, unsigned int *t_r)
{
    uint64_t v;

    if (!xlmig_parse_u64(s, LXM__CODEC_THREADS_MAX, &v) || !v)
        return false;
    *t_r = (unsigned int)v;
    return true;
}

static void print_json(const char *cmd, const char *codec, const char *impl,
                       unsigned int threads, bool pages, uint64_t in,
                       uint64_t out, uint64_t frames, uint64_t ns)
{
    printf("{\"command\":\"%s\",\"codec\":\"%s\",\"impl\":\"%s\","
           "\"threads\":%u,\"pre_pass\":%s,\"bytes_in\":%" PRIu64
           ",\"bytes_out\":%" PRIu64 ",\"ratio\":%.4f,\"frames\":%" PRIu64
           ",\"ms\":%.3f}\n",
           cmd, codec, impl, threads, pages ? "true" : "false", in, out,
           !strcmp(cmd, "stream-compress")
               ? (out ? (double)in / (double)out : 0)
               : (in ? (double)out / (double)in : 0),
           frames, (double)ns / 1e6);
}

/* ---- stream-compress ---- */

int xlmig_main_stream_compress(const struct cmd_spec *spec, int argc,
                               char **argv)
{
    lxm__encoder_opts eo = { 0 };
    lxm__encoder_stats st;
    lxm__encoder *e = NULL;
    io f = { spec->name, NULL, NULL, -1, -1, false };
    uint8_t hdr[FILE_HDR_LEN], *buf = NULL;
    bool json = xlmig_json;
    char err[200], name[32];
    const char *arg;
    uint64_t t0, v;
    ssize_t n;
    int opt, rc, ret = XLMIG_EXIT_FAIL;

    eo.spec.codec = LXM__CODEC_ZLIB;
    if (lxm__codec_parse("zlib", &eo.spec, NULL, 0))
        return XLMIG_EXIT_FAIL;
    eo.format = LXM_FORMAT_XL;
    while ((opt = xlmig_getopt(spec, argc, argv, &arg)) != -1) {
        switch (opt) {
        case XLMIG_OPT_HELP:
            return XLMIG_EXIT_OK;
        case XLMIG_OPT_JSON:
            json = true;
            break;
        case XLMIG_OPT_COMPRESS:
            if (lxm__codec_parse(arg, &eo.spec, err, sizeof(err)))
                return xlmig_usage_error(spec->name, "--compress: %s", err);
            break;
        case XLMIG_OPT_THREADS:
            if (!parse_threads(arg, &eo.threads))
                return xlmig_usage_error(spec->name,
                                         "--threads: '%s' is not a number"
                                         " from 1 to %u",
                                         arg, LXM__CODEC_THREADS_MAX);
            break;
        case XLMIG_OPT_NO_PAGES:
            eo.no_prepass = true;
            break;
        case XLMIG_OPT_CACHE:
            if (!lxm__parse_size(arg, &v) || !v || v > CACHE_MAX)
                return xlmig_usage_error(spec->name,
                                         "--cache: '%s' is not a size"
                                         " from 1 to 64G",
                                         arg);
            eo.cache_bytes = v;
            break;
        case XLMIG_OPT_FORMAT:
            if (!strcmp(arg, "xl"))
                eo.format = LXM_FORMAT_XL;
            else if (!strcmp(arg, "libxl"))
                eo.format = LXM_FORMAT_LIBXL;
            else if (!strcmp(arg, "libxc"))
                eo.format = LXM_FORMAT_LIBXC;
            else
                return xlmig_usage_error(spec->name,
                                         "--format: '%s' is"
                                         " not xl, libxl or libxc",
                                         arg);
            break;
        default:
            return XLMIG_EXIT_USAGE;
        }
    }
    if (xlmig_optind() + 2 != argc)
        return xlmig_usage_error(spec->name, "want IN and OUT (- for"
                                             " stdin/stdout)");
    f.in_path = argv[xlmig_optind()];
    f.out_path = argv[xlmig_optind() + 1];
    if (json && !strcmp(f.out_path, "-"))
        return xlmig_usage_error(spec->name, "--json needs OUT to be a file");
    if (!eo.cache_bytes)
        eo.cache_bytes = UINT64_C(64) << 20;

    t0 = now_ns();
    if (open_files(&f, true))
        goto out;
    buf = malloc(READ_CHUNK);
    if (!buf) {
        xlmig_error(spec->name, "out of memory");
        goto out;
    }

    memcpy(hdr, FILE_MAGIC, 8);
    hdr[8] = FILE_VERSION;
    hdr[9] = 0;
    hdr[10] = !eo.no_prepass;
    hdr[11] = (uint8_t)eo.format;
    memset(hdr + 12, 0, 4);
    lxm__put_le64(hdr + 16, eo.cache_bytes);
    lxm__put_le64(hdr + 24, XXH3_64bits(hdr, 24));
    if (write_all(&f, hdr, sizeof(hdr)))
        goto out;

    eo.logger = xlmig_logger;
    eo.out = frame_out;
    eo.opaque = &f;
    rc = lxm__encoder_new(&eo, &e);
    if (rc) {
        xlmig_error(spec->name, "cannot start the encoder: %s",
                    lxm_strerror(rc));
        goto out;
    }
    for (;;) {
        n = read_full(&f, buf, READ_CHUNK);
        if (n < 0)
            goto out;
        if (!n)
            break;
        rc = lxm__encoder_feed(e, buf, (size_t)n);
        if (rc)
            goto fail;
    }
    rc = lxm__encoder_finish(e);
    if (rc)
        goto fail;
    lxm__encoder_get_stats(e, &st);
    ret = close_files(&f, XLMIG_EXIT_OK);
    if (ret == XLMIG_EXIT_OK && json) {
        lxm__codec_spec_format(&eo.spec, name, sizeof(name));
        print_json(spec->name, name, lxm__codec_impl(eo.spec.codec), st.threads,
                   !eo.no_prepass, st.bytes_in, st.bytes_out + FILE_HDR_LEN,
                   st.frames, now_ns() - t0);
    }
    goto out;

fail:
    if (rc != LXM_ERROR_IO) /* write errors were reported already */
        xlmig_error(spec->name, "%s: %s", in_name(&f), lxm_strerror(rc));
out:
    lxm__encoder_free(e);
    free(buf);
    return close_files(&f, ret);
}

/* ---- stream-decompress ---- */

int xlmig_main_stream_decompress(const struct cmd_spec *spec, int argc,
                                 char **argv)
{
    lxm__decoder_opts dopts = { 0 };
    lxm__decoder_stats st;
    lxm__decoder *d = NULL;
    io f = { spec->name, NULL, NULL, -1, -1, false };
    uint8_t hdr[FILE_HDR_LEN], *buf = NULL;
    bool json = xlmig_json, pages;
    const char *arg;
    uint64_t t0;
    ssize_t n;
    int opt, rc, ret = XLMIG_EXIT_FAIL;

    while ((opt = xlmig_getopt(spec, argc, argv, &arg)) != -1) {
        switch (opt) {
        case XLMIG_OPT_HELP:
            return XLMIG_EXIT_OK;
        case XLMIG_OPT_JSON:
            json = true;
            break;
        case XLMIG_OPT_THREADS:
            if (!parse_threads(arg, &dopts.threads))
                return xlmig_usage_error(spec->name,
                                         "--threads: '%s' is not a number"
                                         " from 1 to %u",
                                         arg, LXM__CODEC_THREADS_MAX);
            break;
        default:
            return XLMIG_EXIT_USAGE;
        }
    }
    if (xlmig_optind() + 2 != argc)
        return xlmig_usage_error(spec->name, "want IN and OUT (- for"
                                             " stdin/stdout)");
    f.in_path = argv[xlmig_optind()];
    f.out_path = argv[xlmig_optind() + 1];
    if (json && !strcmp(f.out_path, "-"))
        return xlmig_usage_error(spec->name, "--json needs OUT to be a file");

    t0 = now_ns();
    if (open_files(&f, true))
        goto out;
    buf = malloc(READ_CHUNK);
    if (!buf) {
        xlmig_error(spec->name, "out of memory");
        goto out;
    }
    n = read_full(&f, hdr, sizeof(hdr));
    if (n < 0)
        goto out;
    if ((size_t)n < sizeof(hdr) || memcmp(hdr, FILE_MAGIC, 8)) {
        xlmig_error(spec->name, "%s: not a compressed xlmig stream (bad magic)",
                    in_name(&f));
        goto out;
    }
    if (lxm__le64(hdr + 24) != XXH3_64bits(hdr, 24)) {
        xlmig_error(spec->name, "%s: file header checksum mismatch",
                    in_name(&f));
        goto out;
    }
    if (lxm__le16(hdr + 8) != FILE_VERSION) {
        xlmig_error(spec->name, "%s: format version %u, this xlmig reads %u",
                    in_name(&f), lxm__le16(hdr + 8), FILE_VERSION);
        goto out;
    }
    if (hdr[10] > 1 || hdr[11] > LXM_FORMAT_LIBXC || lxm__le32(hdr + 12) ||
        lxm__le64(hdr + 16) > CACHE_MAX) {
        xlmig_error(spec->name, "%s: bad file header (offset 10..23)",
                    in_name(&f));
        goto out;
    }
    pages = hdr[10];
    dopts.format = (lxm_stream_format)hdr[11];
    dopts.cache_bytes = lxm__le64(hdr + 16);
    dopts.base_offset = FILE_HDR_LEN;
    dopts.logger = xlmig_logger;
    dopts.out = data_out;
    dopts.opaque = &f;
    rc = lxm__decoder_new(&dopts, &d);
    if (rc) {
        xlmig_error(spec->name, "cannot start the decoder: %s",
                    lxm_strerror(rc));
        goto out;
    }
    for (;;) {
        n = read_full(&f, buf, READ_CHUNK);
        if (n < 0)
            goto out;
        if (!n)
            break;
        rc = lxm__decoder_feed(d, buf, (size_t)n);
        if (rc)
            goto fail;
    }
    rc = lxm__decoder_finish(d);
    if (rc)
        goto fail;
    lxm__decoder_get_stats(d, &st);
    ret = close_files(&f, XLMIG_EXIT_OK);
    if (ret == XLMIG_EXIT_OK && json)
        print_json(spec->name, "-", "-", st.threads, pages,
                   st.bytes_in + FILE_HDR_LEN, st.bytes_out, st.frames,
                   now_ns() - t0);
    goto out;

fail:
    /* CORRUPT was logged by the decoder, as one line naming the frame */
    if (rc != LXM_ERROR_IO && rc != LXM_ERROR_CORRUPT)
        xlmig_error(spec->name, "%s: %s", in_name(&f), lxm_strerror(rc));
out:
    lxm__decoder_free(d);
    free(buf);
    return close_files(&f, ret);
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
