/*
 * bench/tcp-floor.c - raw loopback TCP throughput: the wire floor that
 * bench/migrate.sh compares migrations against (same run, same box).
 *
 * Usage: tcp-floor [--bytes SIZE] [--runs N] [--chunk SIZE] [--json]
 *
 * Each run: a child process accepts one connection on 127.0.0.1 (an
 * ephemeral port), reads everything into one buffer and discards it;
 * the parent connects and sends SIZE bytes (default 1 GiB) from a
 * buffer already in memory (at most 64 MiB, non-zero, faulted in
 * before timing, sent over and over) in write()s of --chunk bytes
 * (default 256 KiB), then half-closes.  The child answers with one
 * byte once it has read all of them; the time is from connect() to
 * that byte.  Default socket buffers, as xlmigd uses.
 *
 * Prints the median, minimum and maximum throughput of --runs runs
 * (default 5) in bytes/s; with --json one object:
 *   {"bytes":N,"runs":R,"chunk":C,"median_bytes_per_s":X,
 *    "min_bytes_per_s":Y,"max_bytes_per_s":Z}
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define RUNS_MAX 64
#define SRC_MAX (64u << 20)


/* "1G", "256M", "4096": bytes; 0 on a malformed size. */
static uint64_t parse_size(const char *s)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return 0;
    switch (*end) {
    case 'G':
    case 'g':
        v <<= 10;
        /* fall through */
    case 'M':
    case 'm':
        v <<= 10;
        /* fall through */
    case 'K':
    case 'k':
        v <<= 10;
        end++;
        break;
    default:
        break;
    }
    return *end ? 0 : v;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    ssize_t n;

    while (len) {
        n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The child: accept one connection, read and discard until EOF, answer
 * one byte when all expected bytes came.  Exit status 0 on success. */
static int receiver(int lfd, uint64_t bytes, size_t chunk)
{
    uint8_t *buf = malloc(chunk);
    uint64_t got = 0;
    uint8_t ack = 1;
    ssize_t n;
    int fd;

    if (!buf)
        return 1;
    fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
        perror("tcp-floor: accept");
        return 1;
    }
    for (;;) {
        n = read(fd, buf, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("tcp-floor: read");
            return 1;
        }
        if (n == 0)
            break;
        got += (uint64_t)n;
    }
    if (got != bytes) {
        fprintf(stderr, "tcp-floor: received %" PRIu64 " of %" PRIu64 "\n", got,
                bytes);
        return 1;
    }
    if (write_all(fd, &ack, 1))
        return 1;
    close(fd);
    free(buf);
    return 0;
}

/* One run; seconds, or a negative number on failure. */
static double one_run(const uint8_t *src, size_t src_len, uint64_t bytes,
                      size_t chunk)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    uint64_t left = bytes;
    size_t off = 0;
    double t0, t = -1;
    uint8_t ack;
    int lfd = -1, fd = -1, status;
    pid_t pid = -1;
    ssize_t n;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0) {
        perror("tcp-floor: listen on 127.0.0.1");
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        perror("tcp-floor: fork");
        goto out;
    }
    if (pid == 0)
        _exit(receiver(lfd, bytes, chunk));
    close(lfd);
    lfd = -1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("tcp-floor: socket");
        goto out;
    }
    t0 = lxm_bench_now();
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("tcp-floor: connect");
        goto out;
    }
    while (left) {
        size_t len = chunk;

        if (len > left)
            len = (size_t)left;
        if (len > src_len - off)
            len = src_len - off;
        if (write_all(fd, src + off, len)) {
            perror("tcp-floor: write");
            goto out;
        }
        left -= len;
        off = off + len == src_len ? 0 : off + len;
    }
    shutdown(fd, SHUT_WR);
    do {
        n = read(fd, &ack, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        fprintf(stderr, "tcp-floor: no answer from the receiver\n");
        goto out;
    }
    t = lxm_bench_now() - t0;

out:
    if (fd >= 0)
        close(fd);
    if (lfd >= 0)
        close(lfd);
    if (pid > 0) {
        if (t < 0)
            kill(pid, SIGKILL);
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status))
            t = -1;
    }
    return t;
}

static void usage(void)
{
    fprintf(stderr, "usage: tcp-floor [--bytes SIZE] [--runs N]"
                    " [--chunk SIZE] [--json]\n");
}

int main(int argc, char **argv)
{
    uint64_t bytes = UINT64_C(1) << 30, chunk = 256u << 10;
    double t[RUNS_MAX], bps[RUNS_MAX], med;
    bool json = false;
    uint8_t *src;
    size_t src_len, i;
    int runs = 5, a;

    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--json")) {
            json = true;
        } else if (!strcmp(argv[a], "--bytes") && a + 1 < argc) {
            bytes = parse_size(argv[++a]);
        } else if (!strcmp(argv[a], "--chunk") && a + 1 < argc) {
            chunk = parse_size(argv[++a]);
        } else if (!strcmp(argv[a], "--runs") && a + 1 < argc) {
            runs = atoi(argv[++a]);
        } else {
            usage();
            return 2;
        }
    }
    if (!bytes || !chunk || chunk > SRC_MAX || runs < 1 || runs > RUNS_MAX) {
        usage();
        return 2;
    }

    src_len = bytes < SRC_MAX ? (size_t)bytes : SRC_MAX;
    if (src_len < chunk)
        chunk = src_len;
    src = malloc(src_len);
    if (!src) {
        perror("tcp-floor: malloc");
        return 1;
    }
    /* Non-zero, not trivially compressible, faulted in. */
    for (i = 0; i < src_len; i++)
        src[i] = (uint8_t)(i * 2654435761u >> 13) | 1;

    for (a = 0; a < runs; a++) {
        t[a] = one_run(src, src_len, bytes, (size_t)chunk);
        if (t[a] <= 0) {
            fprintf(stderr, "tcp-floor: run %d failed\n", a + 1);
            return 1;
        }
        bps[a] = (double)bytes / t[a];
    }
    med = lxm_bench_median(bps, runs); /* sorts: bps[0] is the minimum */
    if (json)
        printf("{\"bytes\":%" PRIu64 ",\"runs\":%d,\"chunk\":%" PRIu64
               ",\"median_bytes_per_s\":%.0f,\"min_bytes_per_s\":%.0f"
               ",\"max_bytes_per_s\":%.0f}\n",
               bytes, runs, chunk, med, bps[0], bps[runs - 1]);
    else
        printf("loopback TCP, %" PRIu64 " bytes x %d runs: median %.2f GB/s"
               " (min %.2f, max %.2f)\n",
               bytes, runs, med / 1e9, bps[0] / 1e9, bps[runs - 1] / 1e9);
    free(src);
    return 0;
}
