/*
 * bench/reader.c - stream reader throughput against memcpy of the same
 * bytes, measured in the same run (machines here are shared and noisy:
 * only the ratio means anything).
 *
 * Usage: bench-reader [--runs N] [--chunk BYTES] NAME=FILE...
 * FILE is a raw (decompressed) stream.  Prints one markdown table row
 * per corpus:
 *   memcpy        copying the bytes once (the baseline)
 *   pipe+reader   each 64 KiB chunk copied into a buffer (what read()
 *                 from libxl's pipe costs) and fed to the reader: the
 *                 reader's real cost on a migration path.  Goal: >= 0.5x
 *                 memcpy.
 *   reader walk   the reader alone on bytes already in memory: it reads
 *                 headers and pfn words and skips page data, so this is
 *                 far above memory bandwidth by design
 *   reader+stats  every page handed to lxm_stream_stats_event (zero
 *                 test, pfn sets): what `xlmig stream-info` does
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libxlmig.h"

#include "benchutil.h"


static uint8_t *load(const char *path, size_t *len_r)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t got = 0;
    ssize_t n;
    int fd = open(path, O_RDONLY);

    if (fd < 0 || fstat(fd, &st) < 0)
        goto fail;
    buf = malloc(st.st_size ? st.st_size : 1);
    if (!buf)
        goto fail;
    while (got < (size_t)st.st_size) {
        n = read(fd, buf + got, st.st_size - got);
        if (n <= 0)
            goto fail;
        got += n;
    }
    close(fd);
    *len_r = got;
    return buf;

fail:
    perror(path);
    free(buf);
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* One pass of the reader over buf in chunk-sized feeds; seconds. */
static double read_pass(const uint8_t *buf, size_t len, size_t chunk,
                        bool stats, uint8_t *bounce)
{
    lxm_stream_reader_opts o = { .format = LXM_FORMAT_XL };
    lxm_stream_stats *s = NULL;
    lxm_stream_reader *r = NULL;
    size_t off, used;
    double t0, t;

    if (stats) {
        if (lxm_stream_stats_new(&s))
            exit(1);
        o.flags = LXM_READER_PAGES;
        o.callback = lxm_stream_stats_event;
        o.opaque = s;
    }
    if (lxm_stream_reader_new(&o, &r))
        exit(1);
    t0 = lxm_bench_now();
    for (off = 0; off < len; off += used) {
        size_t n = len - off < chunk ? len - off : chunk;
        const uint8_t *p = buf + off;

        if (bounce) {
            memcpy(bounce, p, n);
            p = bounce;
        }
        if (lxm_stream_reader_feed(r, p, n, &used)) {
            fprintf(stderr, "bench-reader: stream error: %s\n",
                    lxm_stream_reader_error(r)->message);
            exit(1);
        }
    }
    if (lxm_stream_reader_finish(r))
        exit(1);
    t = lxm_bench_now() - t0;
    lxm_stream_reader_free(r);
    lxm_stream_stats_free(s);
    return t;
}

int main(int argc, char **argv)
{
    int runs = 7, i, a;
    size_t chunk = 64 << 10;

    printf("| corpus | bytes | memcpy GB/s | pipe+reader GB/s"
           " | reader walk GB/s | reader+stats GB/s"
           " | pipe+reader / memcpy |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    for (a = 1; a < argc; a++) {
        double tm[64], tp[64], tr[64], ts[64], gm, gp, gr, gs;
        uint8_t *bounce;
        const char *eq;
        uint8_t *buf, *dst;
        size_t len;

        if (!strcmp(argv[a], "--runs") && a + 1 < argc) {
            runs = atoi(argv[++a]);
            if (runs < 1 || runs > 64)
                runs = 7;
            continue;
        }
        if (!strcmp(argv[a], "--chunk") && a + 1 < argc) {
            chunk = strtoul(argv[++a], NULL, 0);
            if (!chunk)
                chunk = 64 << 10;
            continue;
        }
        eq = strchr(argv[a], '=');
        if (!eq) {
            fprintf(stderr, "usage: bench-reader [--runs N] [--chunk B]"
                            " NAME=FILE...\n");
            return 2;
        }
        buf = load(eq + 1, &len);
        dst = malloc(len);
        bounce = malloc(chunk);
        if (!buf || !dst || !bounce)
            return 1;
        memset(dst, 1, len); /* fault the pages in before timing */

        /* Interleave the four so drift hits them alike. */
        for (i = 0; i < runs; i++) {
            double t0 = lxm_bench_now();

            memcpy(dst, buf, len);
            __asm__ volatile("" : : "r"(dst) : "memory");
            tm[i] = lxm_bench_now() - t0;
            tp[i] = read_pass(buf, len, chunk, false, bounce);
            tr[i] = read_pass(buf, len, chunk, false, NULL);
            ts[i] = read_pass(buf, len, chunk, true, NULL);
        }
        gm = len / lxm_bench_median(tm, runs) / 1e9;
        gp = len / lxm_bench_median(tp, runs) / 1e9;
        gr = len / lxm_bench_median(tr, runs) / 1e9;
        gs = len / lxm_bench_median(ts, runs) / 1e9;
        printf("| %.*s | %zu | %.2f | %.2f | %.1f | %.2f | %.2f |\n",
               (int)(eq - argv[a]), argv[a], len, gm, gp, gr, gs, gp / gm);
        fflush(stdout);
        free(buf);
        free(dst);
        free(bounce);
    }
    return 0;
}
