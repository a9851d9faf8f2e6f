/*
 * test_transport.c - framing, sockets and JSON payloads of the wire
 * protocol (libxlmig/transport/, docs/protocol.md).
 *
 * Entry point: lxm_test_transport_suite().
 *
 * Cases:
 *   frames     every frame type round-trips over a socketpair and over
 *              TCP loopback (both directions), byte counters agree; 1
 *              and 16 MiB frames; the receive buffer is reused
 *   bad        a frame over the cap is refused from its header alone
 *              (no payload read, nothing allocated); reserved bytes,
 *              unknown types, a codec on a JSON frame; EOF cleanly, in
 *              the header and in the payload; refusals on send
 *   time       a silent peer times out within the bound; a connect to a
 *              full backlog times out; shutdown wakes a blocked recv;
 *              the rate limit paces STREAM bytes
 *   json       building/parsing, accessors, bad payloads (not an object,
 *              NUL, too deep, invalid UTF-8 from our side), hello (ok
 *              and version mismatch), expect (ERROR/FAILED -> PEER with
 *              the message, wrong type -> PROTOCOL)
 *   addr       address parsing, unix listen/connect (parent directory
 *              created), stale and live unix sockets, a refused connect's
 *              message, IPv6 loopback when the host has it
 */
#define _GNU_SOURCE /* mallinfo2 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "transport/proto.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static uint64_t ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pair(lxm__conn **a, lxm__conn **b, uint32_t timeout_ms,
                 xentoollog_logger *lg)
{
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(lxm__conn_from_fd(sv[0], timeout_ms, lg, a), 0);
    ck_assert_int_eq(lxm__conn_from_fd(sv[1], timeout_ms, lg, b), 0);
}

/* A TCP loopback pair: *l listening fd closed here. */
static void tcp_pair(lxm__conn **client, lxm__conn **server,
                     xentoollog_logger *lg)
{
    char bound[64];
    int lfd;

    ck_assert_int_eq(
        lxm__conn_listen("127.0.0.1:0", &lfd, bound, sizeof(bound), lg), 0);
    ck_assert_msg(!strncmp(bound, "127.0.0.1:", 10) &&
                      strcmp(bound, "127.0.0.1:0"),
                  "bound %s", bound);
    ck_assert_int_eq(lxm__conn_connect(bound, 2000, lg, client), 0);
    ck_assert_int_eq(lxm__conn_accept(lfd, 2000, lg, server), 0);
    ck_assert_str_eq(lxm__conn_peer(*client), bound);
    ck_assert_msg(!strncmp(lxm__conn_peer(*server), "127.0.0.1:", 10),
                  "peer %s", lxm__conn_peer(*server));
    close(lfd);
}

/* Write raw bytes on c's socket (for malformed frames). */
static void raw(lxm__conn *c, const void *p, size_t len)
{
    ck_assert_int_eq(write(lxm__conn_fd(c), p, len), (ssize_t)len);
}

static void raw_hdr(lxm__conn *c, uint32_t length, uint8_t type, uint8_t codec,
                    uint8_t r0, uint8_t r1)
{
    uint8_t h[8];

    lxm__put_le32(h, length);
    h[4] = type;
    h[5] = codec;
    h[6] = r0;
    h[7] = r1;
    raw(c, h, sizeof(h));
}

/* Half-close c's sending side: the peer reads EOF. */
static void close_write(lxm__conn *c)
{
    ck_assert_int_eq(shutdown(lxm__conn_fd(c), SHUT_WR), 0);
}

static const uint8_t all_types[] = {
    LXM__MSG_HELLO,      LXM__MSG_ERROR,   LXM__MSG_REQUEST, LXM__MSG_REPLY,
    LXM__MSG_EVENT,      LXM__MSG_MIGRATE, LXM__MSG_ACCEPT,  LXM__MSG_STREAM,
    LXM__MSG_STREAM_END, LXM__MSG_READY,   LXM__MSG_GO,      LXM__MSG_RUNNING,
    LXM__MSG_FAILED,
};

/* Send one frame of every type from a to b, check each on arrival. */
static void every_type(lxm__conn *a, lxm__conn *b)
{
    uint64_t out0 = lxm__conn_bytes_out(a), in0 = lxm__conn_bytes_in(b);
    uint64_t wire = 0;
    size_t i;

    for (i = 0; i < LXM_ARRAY_SIZE(all_types); i++) {
        uint8_t t = all_types[i];
        char body[64];
        lxm__frame f;
        uint8_t codec = 0;
        uint32_t len;

        if (t == LXM__MSG_STREAM) {
            codec = LXM__CODEC_ZSTD;
            len = (uint32_t)snprintf(body, sizeof(body), "raw\001\002%zu", i);
        } else {
            len = (uint32_t)snprintf(body, sizeof(body), "{\"i\":%zu}", i);
        }
        ck_assert_int_eq(lxm__conn_send(a, t, codec, body, len), 0);
        ck_assert_int_eq(lxm__conn_recv(b, &f), 0);
        ck_assert_int_eq(f.type, t);
        ck_assert_int_eq(f.codec, codec);
        ck_assert_uint_eq(f.length, len);
        ck_assert(!memcmp(f.payload, body, len));
        ck_assert_str_ne(lxm__msg_name(t), "UNKNOWN");
        wire += 8 + len;
    }
    /* An empty frame. */
    ck_assert_int_eq(lxm__conn_send(a, LXM__MSG_GO, 0, NULL, 0), 0);
    {
        lxm__frame f;

        ck_assert_int_eq(lxm__conn_recv(b, &f), 0);
        ck_assert_int_eq(f.type, LXM__MSG_GO);
        ck_assert_uint_eq(f.length, 0);
    }
    wire += 8;
    ck_assert_uint_eq(lxm__conn_bytes_out(a) - out0, wire);
    ck_assert_uint_eq(lxm__conn_bytes_in(b) - in0, wire);
}

/* ------------------------------------------------------------------ */
/* frames                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_socketpair_types)
{
    lxm__conn *a, *b;

    pair(&a, &b, 2000, NULL);
    every_type(a, b);
    every_type(b, a);
    lxm__conn_free(a);
    lxm__conn_free(b);
}
END_TEST

START_TEST(test_tcp_types)
{
    lxm__conn *a, *b;

    tcp_pair(&a, &b, NULL);
    every_type(a, b);
    every_type(b, a);
    lxm__conn_free(a);
    lxm__conn_free(b);
}
END_TEST

typedef struct sender_arg {
    lxm__conn *c;
    const uint8_t *buf;
    uint32_t len;
    int count;
    int rc;
} sender_arg;

static void *sender_main(void *opaque)
{
    sender_arg *s = opaque;
    int i;

    for (i = 0; i < s->count && !s->rc; i++)
        s->rc = lxm__conn_send(s->c, LXM__MSG_STREAM, 0, s->buf, s->len);
    return NULL;
}

static void big_frames(bool tcp)
{
    const uint32_t sizes[] = { 1u << 20, LXM__FRAME_MAX, 1000 };
    lxm__conn *a, *b;
    const uint8_t *first = NULL;
    uint8_t *buf;
    size_t i;

    if (tcp)
        tcp_pair(&a, &b, NULL);
    else
        pair(&a, &b, 10000, NULL);
    buf = malloc(LXM__FRAME_MAX);
    ck_assert_ptr_nonnull(buf);
    for (i = 0; i < LXM__FRAME_MAX; i++)
        buf[i] = (uint8_t)(i * 7 + (i >> 12));

    for (i = 0; i < LXM_ARRAY_SIZE(sizes); i++) {
        sender_arg s = { .c = a, .buf = buf, .len = sizes[i], .count = 2 };
        pthread_t t;
        int k;

        ck_assert_int_eq(pthread_create(&t, NULL, sender_main, &s), 0);
        for (k = 0; k < 2; k++) {
            lxm__frame f;

            ck_assert_int_eq(lxm__conn_recv(b, &f), 0);
            ck_assert_uint_eq(f.length, sizes[i]);
            ck_assert(!memcmp(f.payload, buf, sizes[i]));
            if (i == 1) {
                /* Grown to the cap once, then reused as is. */
                if (!first)
                    first = f.payload;
                ck_assert_ptr_eq(f.payload, first);
            }
            if (i == 2)
                ck_assert_ptr_eq(f.payload, first);
        }
        pthread_join(t, NULL);
        ck_assert_int_eq(s.rc, 0);
    }
    free(buf);
    lxm__conn_free(a);
    lxm__conn_free(b);
}

START_TEST(test_big_frames)
{
    big_frames(false);
    big_frames(true);
}
END_TEST

/* ------------------------------------------------------------------ */
/* bad                                                                 */
/* ------------------------------------------------------------------ */

START_TEST(test_over_cap)
{
    struct mallinfo2 m0, m1;
    lxm__conn *a, *b;
    lxm_test_logger cl;
    lxm__frame f;
    bool can_measure;
    void *probe;

    /* Can mallinfo2 see a large allocation here (not under ASan)? */
    m0 = mallinfo2();
    probe = malloc(LXM__FRAME_MAX + 1);
    m1 = mallinfo2();
    can_measure = probe && m1.hblkhd + m1.uordblks >=
                               m0.hblkhd + m0.uordblks + LXM__FRAME_MAX;
    free(probe);

    lxm_test_logger_init(&cl);
    pair(&a, &b, 2000, &cl.vtable);
    m0 = mallinfo2();
    /* Only the header: if the receiver tried to read a payload it
     * would time out instead of answering at once. */
    raw_hdr(a, LXM__FRAME_MAX + 1, LXM__MSG_STREAM, 0, 0, 0);
    ck_assert_int_eq(lxm__conn_recv(b, &f), LXM_ERROR_PROTOCOL);
    m1 = mallinfo2();
    ck_assert_msg(strstr(cl.last, "over the 16777216 byte cap") &&
                      strstr(cl.last, "16777217"),
                  "message: %s", cl.last);
    ck_assert_str_eq(lxm__conn_last_error(b), cl.last);
    if (can_measure)
        ck_assert_msg(m1.hblkhd + m1.uordblks <
                          m0.hblkhd + m0.uordblks + (1u << 20),
                      "allocated %zu bytes for a refused frame",
                      (m1.hblkhd + m1.uordblks) - (m0.hblkhd + m0.uordblks));

    raw_hdr(a, UINT32_MAX, LXM__MSG_REPLY, 0, 0, 0);
    ck_assert_int_eq(lxm__conn_recv(b, &f), LXM_ERROR_PROTOCOL);
    lxm__conn_free(a);
    lxm__conn_free(b);
}
END_TEST

START_TEST(test_bad_headers)
{
    lxm__conn *a, *b;
    lxm_test_logger cl;
    lxm__frame f;

    lxm_test_logger_init(&cl);
    pair(&a, &b, 2000, &cl.vtable);

    raw_hdr(a, 2, LXM__MSG_REPLY, 0, 0, 1);
    ck_assert_int_eq(lxm__conn_recv(b, &f), LXM_ERROR_PROTOCOL);
    ck_assert_msg(strstr(cl.last, "reserved"), "%s", cl.last);
    lxm__conn_free(a);
    lxm__conn_free(b);

    pair(&a, &b, 2000, &cl.vtable);
    raw_hdr(a, 2, LXM__MSG_REPLY, 0, 0x80, 0);
    ck_assert_int_eq(lxm__conn_recv(b, &f), LXM_ERROR_PROTOCOL);
    lxm__conn_free(a);
    lxm__conn_free(b);

    pair(&a, &b, 2000, &cl.vtable);
    raw_hdr(a, 2, 0x7f, 0, 0, 0);
    ck_assert_int_eq(lxm__conn_recv(b, &f), LXM_ERROR_PROTOCOL);
    ck_assert_msg(strstr(cl.last, "unknown type 0x7f"), "%s", cl.last);
    lxm__conn_free(a);
    lxm__conn_free(b);

    pair(&a, &b, 2000, &cl.vtable);
    raw_hdr(a, 0, 0x00, 0, 0, 0);
    ck_assert_int_eq(lxm__conn_recv(b, &f), LXM_ERROR_PROTOCOL);
    lxm__conn_free(a);
    lxm__conn_free(b);

    /* A codec byte belongs to STREAM frames only. */
    pair(&a, &b, 2000, &cl.vtable);
    raw_hdr(a, 2, LXM__MSG_READY, LXM__CODEC_ZLIB, 0, 0);
    ck_assert_int_eq(lxm__conn_recv(b, &f), LXM_ERROR_PROTOCOL);
    lxm__conn_free(a);
    lxm__conn_free(b);

    /* What we refuse to send. */
    pair(&a, &b, 2000, &cl.vtable);
    ck_assert_int_eq(lxm__conn_send(a, 0x7f, 0, "{}", 2), LXM_ERROR_INVAL);
    ck_assert_int_eq(
        lxm__conn_send(a, LXM__MSG_STREAM, 0, "x", LXM__FRAME_MAX + 1),
        LXM_ERROR_INVAL);
    ck_assert_int_eq(lxm__conn_send(a, LXM__MSG_REPLY, 1, "{}", 2),
                     LXM_ERROR_INVAL);
    ck_assert_uint_eq(lxm__conn_bytes_out(a), 0);
    lxm__conn_free(a);
    lxm__conn_free(b);
}
END_TEST

START_TEST(test_eof)
{
    lxm__conn *a, *b;
    lxm_test_logger cl;
    lxm__frame f;

    lxm_test_logger_init(&cl);

    /* Clean close between frames. */
    pair(&a, &b, 2000, &cl.vtable);
    ck_assert_int_eq(lxm__conn_send(a, LXM__MSG_GO, 0, "{}", 2), 0);
    close_write(a);
    ck_assert_int_eq(lxm__conn_recv(b, &f), 0);
    ck_assert_int_eq(lxm__conn_recv(b, &f), LXM_ERROR_CONNECT);
    ck_assert_msg(strstr(cl.last, "closed the connection") &&
                      !strstr(cl.last, "middle"),
                  "%s", cl.last);
    lxm__conn_free(a);
    lxm__conn_free(b);

    /* EOF inside the header. */
    pair(&a, &b, 2000, &cl.vtable);
    raw(a, "\002\0\0", 3);
    close_write(a);
    ck_assert_int_eq(lxm__conn_recv(b, &f), LXM_ERROR_CONNECT);
    ck_assert_msg(strstr(cl.last, "middle of a frame header") &&
                      strstr(cl.last, "got 3 of 8"),
                  "%s", cl.last);
    lxm__conn_free(a);
    lxm__conn_free(b);

    /* EOF inside the payload. */
    pair(&a, &b, 2000, &cl.vtable);
    raw_hdr(a, 100, LXM__MSG_STREAM, 0, 0, 0);
    raw(a, "0123456789", 10);
    close_write(a);
    ck_assert_int_eq(lxm__conn_recv(b, &f), LXM_ERROR_CONNECT);
    ck_assert_msg(strstr(cl.last, "got 18 of 108"), "%s", cl.last);
    lxm__conn_free(a);
    lxm__conn_free(b);

    /* Sending to a closed peer: an error, not SIGPIPE. */
    pair(&a, &b, 2000, &cl.vtable);
    lxm__conn_free(b);
    ck_assert_int_eq(lxm__conn_send(a, LXM__MSG_GO, 0, "{}", 2),
                     LXM_ERROR_CONNECT);
    ck_assert_msg(strstr(cl.last, "lost while sending"), "%s", cl.last);
    lxm__conn_free(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* time                                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_timeout)
{
    lxm__conn *a, *b;
    lxm_test_logger cl;
    lxm__frame f;
    uint64_t t0, dt;

    lxm_test_logger_init(&cl);
    pair(&a, &b, 200, &cl.vtable);
    t0 = ms_now();
    ck_assert_int_eq(lxm__conn_recv(b, &f), LXM_ERROR_TIMEOUT);
    dt = ms_now() - t0;
    ck_assert_msg(dt >= 190 && dt < 1500, "timed out after %llu ms",
                  (unsigned long long)dt);
    ck_assert_msg(strstr(cl.last, "timed out after 200 ms"), "%s", cl.last);

    /* A peer that stops in the middle of a frame times out too. */
    raw_hdr(a, 50, LXM__MSG_STREAM, 0, 0, 0);
    raw(a, "abc", 3);
    lxm__conn_set_timeout(b, 100);
    t0 = ms_now();
    ck_assert_int_eq(lxm__conn_recv(b, &f), LXM_ERROR_TIMEOUT);
    dt = ms_now() - t0;
    ck_assert_msg(dt >= 90 && dt < 1500, "%llu ms", (unsigned long long)dt);

    /* A peer that does not read: send times out once buffers fill. */
    {
        static uint8_t chunk[1 << 20];
        int i, rc = 0;

        lxm__conn_set_timeout(b, 200);
        lxm__conn_set_timeout(a, 200);
        t0 = ms_now();
        for (i = 0; i < 64 && !rc; i++)
            rc = lxm__conn_send(a, LXM__MSG_STREAM, 0, chunk, sizeof(chunk));
        ck_assert_int_eq(rc, LXM_ERROR_TIMEOUT);
        ck_assert(ms_now() - t0 < 3000);
    }
    lxm__conn_free(a);
    lxm__conn_free(b);
}
END_TEST

START_TEST(test_connect_timeout)
{
    char bound[64];
    lxm_test_logger cl;
    lxm__conn *c = NULL;
    int lfd, fill[8], i, n = 0, rc;
    uint64_t t0, dt;

    lxm_test_logger_init(&cl);
    ck_assert_int_eq(
        lxm__conn_listen("127.0.0.1:0", &lfd, bound, sizeof(bound), NULL), 0);
    /* Fill the accept queue (backlog 0); later SYNs are dropped. */
    ck_assert_int_eq(listen(lfd, 0), 0);
    for (i = 0; i < 8; i++) {
        lxm__conn *x;

        if (lxm__conn_connect(bound, 100, NULL, &x) == 0) {
            fill[n++] = dup(lxm__conn_fd(x));
            lxm__conn_free(x);
        }
    }
    t0 = ms_now();
    rc = lxm__conn_connect(bound, 300, &cl.vtable, &c);
    dt = ms_now() - t0;
    if (rc == 0) {
        /* Some kernels answer anyway (syncookies); nothing to test. */
        fprintf(stderr, "NOTE: connect to a full backlog succeeded here;"
                        " connect timeout not exercised\n");
        lxm__conn_free(c);
    } else {
        ck_assert_int_eq(rc, LXM_ERROR_TIMEOUT);
        ck_assert_msg(dt >= 290 && dt < 2000, "%llu ms",
                      (unsigned long long)dt);
        ck_assert_msg(strstr(cl.last, "timed out"), "%s", cl.last);
    }
    for (i = 0; i < n; i++)
        close(fill[i]);
    close(lfd);
}
END_TEST

typedef struct recv_arg {
    lxm__conn *c;
    int rc;
    uint64_t at;
} recv_arg;

static void *recv_main(void *opaque)
{
    recv_arg *r = opaque;
    lxm__frame f;

    r->rc = lxm__conn_recv(r->c, &f);
    r->at = ms_now();
    return NULL;
}

START_TEST(test_shutdown_wakes)
{
    lxm__conn *a, *b;
    recv_arg r = { 0 };
    pthread_t t;
    struct timespec ts = { 0, 100 * 1000 * 1000 };
    uint64_t t0;

    pair(&a, &b, 0, NULL); /* no timeout: only shutdown can end it */
    r.c = b;
    ck_assert_int_eq(pthread_create(&t, NULL, recv_main, &r), 0);
    nanosleep(&ts, NULL);
    t0 = ms_now();
    lxm__conn_shutdown(b);
    pthread_join(t, NULL);
    ck_assert_int_eq(r.rc, LXM_ERROR_CONNECT);
    ck_assert(r.at - t0 < 1000);
    ck_assert_msg(strstr(lxm__conn_last_error(b), "shut down"), "%s",
                  lxm__conn_last_error(b));
    lxm__conn_free(a);
    lxm__conn_free(b);
}
END_TEST

typedef struct drain_arg {
    lxm__conn *c;
    uint64_t bytes;
    int rc;
} drain_arg;

static void *drain_main(void *opaque)
{
    drain_arg *d = opaque;
    lxm__frame f;

    for (;;) {
        d->rc = lxm__conn_recv(d->c, &f);
        if (d->rc)
            break;
        if (f.type == LXM__MSG_STREAM_END)
            break;
        d->bytes += f.length;
    }
    return NULL;
}

/* Send total bytes in STREAM chunks at rate; returns elapsed ms. */
static uint64_t paced(uint64_t rate, uint64_t total, bool tcp)
{
    static uint8_t chunk[LXM__STREAM_CHUNK];
    lxm__conn *a, *b;
    drain_arg d = { 0 };
    pthread_t t;
    uint64_t t0, sent = 0, dt;

    if (tcp)
        tcp_pair(&a, &b, NULL);
    else
        pair(&a, &b, 5000, NULL);
    lxm__conn_set_rate(a, rate);
    d.c = b;
    ck_assert_int_eq(pthread_create(&t, NULL, drain_main, &d), 0);
    t0 = ms_now();
    while (sent < total) {
        uint32_t n = (uint32_t)LXM_MIN(total - sent, sizeof(chunk));

        ck_assert_int_eq(lxm__conn_send(a, LXM__MSG_STREAM, 0, chunk, n), 0);
        sent += n;
    }
    /* JSON frames are never paced. */
    ck_assert_int_eq(lxm__conn_send(a, LXM__MSG_STREAM_END, 0, "{}", 2), 0);
    dt = ms_now() - t0;
    pthread_join(t, NULL);
    ck_assert_int_eq(d.rc, 0);
    ck_assert_uint_eq(d.bytes, total);
    lxm__conn_free(a);
    lxm__conn_free(b);
    return dt;
}

START_TEST(test_rate_limit)
{
    uint64_t dt;

    /* 4 MiB at 8 MiB/s: >= ~0.47 s (one chunk of burst). */
    dt = paced(8u << 20, 4u << 20, false);
    ck_assert_msg(dt >= 450 && dt < 1500, "4 MiB at 8 MiB/s took %llu ms",
                  (unsigned long long)dt);
    /* Over TCP, at 16 MiB/s. */
    dt = paced(16u << 20, 4u << 20, true);
    ck_assert_msg(dt >= 200 && dt < 1000, "4 MiB at 16 MiB/s took %llu ms",
                  (unsigned long long)dt);
    /* Off: fast. */
    dt = paced(0, 16u << 20, false);
    ck_assert_msg(dt < 1000, "unlimited 16 MiB took %llu ms",
                  (unsigned long long)dt);
}
END_TEST

/* ------------------------------------------------------------------ */
/* json                                                                */
/* ------------------------------------------------------------------ */

static int parse_text(const char *s, yajl_val *v)
{
    lxm__frame f = { .type = LXM__MSG_REPLY,
                     .length = (uint32_t)strlen(s),
                     .payload = (const uint8_t *)s };

    return lxm__frame_json(&f, v);
}

START_TEST(test_json)
{
    lxm__conn *a, *b;
    lxm__frame f;
    yajl_val v;
    yajl_gen g;
    char deep[400];
    size_t i;

    pair(&a, &b, 2000, NULL);
    g = lxm__json_new();
    lxm__json_str(g, "name", "vm \"1\"\n");
    lxm__json_str(g, "none", NULL);
    lxm__json_int(g, "neg", -42);
    lxm__json_uint(g, "big", UINT64_C(9007199254740993));
    lxm__json_bool(g, "yes", true);
    lxm__json_bool(g, "no", false);
    lxm__json_str(g, "bad-utf8", "caf\xe9");
    lxm__json_key(g, "list");
    yajl_gen_array_open(g);
    yajl_gen_integer(g, 1);
    yajl_gen_array_close(g);
    ck_assert_int_eq(lxm__conn_send_json(a, LXM__MSG_REPLY, g), 0);
    ck_assert_int_eq(lxm__conn_recv(b, &f), 0);
    ck_assert_int_eq(lxm__frame_json(&f, &v), 0);
    ck_assert_str_eq(lxm__jstr(v, "name"), "vm \"1\"\n");
    ck_assert_ptr_null(lxm__jstr(v, "none"));
    ck_assert_ptr_nonnull(lxm__jget(v, "none"));
    ck_assert_int_eq(lxm__jint(v, "neg", 0), -42);
    ck_assert_int_eq(lxm__jint(v, "big", 0), 9007199254740993LL);
    ck_assert(lxm__jbool(v, "yes", false));
    ck_assert(!lxm__jbool(v, "no", true));
    ck_assert(lxm__jbool(v, "absent", true));
    ck_assert_str_eq(lxm__jstr(v, "bad-utf8"), "caf?");
    /* Wrong types give the default. */
    ck_assert_int_eq(lxm__jint(v, "name", 7), 7);
    ck_assert_ptr_null(lxm__jstr(v, "neg"));
    ck_assert(lxm__jbool(v, "neg", true));
    ck_assert_ptr_nonnull(lxm__jget(v, "list"));
    ck_assert_ptr_null(lxm__jget(NULL, "list"));
    yajl_tree_free(v);

    /* send_error */
    ck_assert_int_eq(lxm__conn_send_error(a, LXM__MSG_ERROR, LXM_ERROR_NOTFOUND,
                                          "no domain %s", "vm9"),
                     0);
    ck_assert_int_eq(lxm__conn_recv(b, &f), 0);
    ck_assert_int_eq(f.type, LXM__MSG_ERROR);
    ck_assert_int_eq(lxm__frame_json(&f, &v), 0);
    ck_assert_str_eq(lxm__jstr(v, "error"), "no domain vm9");
    ck_assert_int_eq(lxm__jint(v, "code", 0), LXM_ERROR_NOTFOUND);
    yajl_tree_free(v);

    /* Bad payloads. */
    ck_assert_int_eq(parse_text("[1,2]", &v), LXM_ERROR_PROTOCOL);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(parse_text("{\"a\":", &v), LXM_ERROR_PROTOCOL);
    ck_assert_int_eq(parse_text("", &v), LXM_ERROR_PROTOCOL);
    ck_assert_int_eq(parse_text("\"s\"", &v), LXM_ERROR_PROTOCOL);
    {
        lxm__frame nul = { .type = LXM__MSG_REPLY,
                           .length = 9,
                           .payload = (const uint8_t *)"{\"a\":1}\0x" };

        ck_assert_int_eq(lxm__frame_json(&nul, &v), LXM_ERROR_PROTOCOL);
    }
    for (i = 0; i < 200; i++)
        deep[i] = '[';
    deep[0] = '{';
    memcpy(deep + 1, "\"k\":", 4);
    deep[5] = '[';
    deep[200] = '\0';
    ck_assert_int_eq(parse_text(deep, &v), LXM_ERROR_PROTOCOL);
    /* Brackets inside strings do not count. */
    ck_assert_int_eq(parse_text("{\"k\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                                "[[[[[[[[\\\"\"}",
                                &v),
                     0);
    yajl_tree_free(v);
    lxm__conn_free(a);
    lxm__conn_free(b);
}
END_TEST

typedef struct hello_arg {
    lxm__conn *c;
    int rc;
    char role[16];
} hello_arg;

static void *hello_main(void *opaque)
{
    hello_arg *h = opaque;
    yajl_val v = NULL;

    h->rc = lxm__proto_hello(h->c, "agent", "h2", &v);
    if (!h->rc)
        snprintf(h->role, sizeof(h->role), "%s", lxm__jstr(v, "role"));
    yajl_tree_free(v);
    return NULL;
}

START_TEST(test_hello)
{
    lxm__conn *a, *b;
    hello_arg h = { 0 };
    pthread_t t;
    lxm_test_logger cl;
    yajl_val v = NULL;
    lxm__frame f;
    yajl_gen g;

    /* Both sides at once. */
    pair(&a, &b, 2000, NULL);
    h.c = b;
    ck_assert_int_eq(pthread_create(&t, NULL, hello_main, &h), 0);
    ck_assert_int_eq(lxm__proto_hello(a, "peer", "h1", &v), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(h.rc, 0);
    ck_assert_str_eq(h.role, "peer");
    ck_assert_str_eq(lxm__jstr(v, "role"), "agent");
    ck_assert_str_eq(lxm__jstr(v, "host"), "h2");
    ck_assert_int_eq(lxm__jint(v, "proto", 0), LXM__PROTO_VERSION);
    ck_assert_ptr_nonnull(strstr(lxm__jstr(v, "software"), "libxlmig"));
    ck_assert(YAJL_IS_ARRAY(lxm__jget(v, "capabilities")));
    yajl_tree_free(v);
    lxm__conn_free(a);
    lxm__conn_free(b);

    /* A peer from the future. */
    lxm_test_logger_init(&cl);
    pair(&a, &b, 2000, &cl.vtable);
    g = lxm__json_new();
    lxm__json_int(g, "proto", 99);
    lxm__json_str(g, "role", "agent");
    lxm__json_str(g, "unknown-key", "ignored");
    ck_assert_int_eq(lxm__conn_send_json(b, LXM__MSG_HELLO, g), 0);
    ck_assert_int_eq(lxm__proto_hello(a, "peer", "h1", &v), LXM_ERROR_PROTOCOL);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(cl.last, "version 99") && strstr(cl.last, "version 1"),
                  "%s", cl.last);
    /* The peer got our HELLO and then an ERROR naming both versions. */
    ck_assert_int_eq(lxm__conn_recv(b, &f), 0);
    ck_assert_int_eq(f.type, LXM__MSG_HELLO);
    ck_assert_int_eq(lxm__conn_recv(b, &f), 0);
    ck_assert_int_eq(f.type, LXM__MSG_ERROR);
    ck_assert_int_eq(lxm__frame_json(&f, &v), 0);
    ck_assert_ptr_nonnull(strstr(lxm__jstr(v, "error"), "99"));
    yajl_tree_free(v);
    lxm__conn_free(a);
    lxm__conn_free(b);

    /* A HELLO without a version. */
    pair(&a, &b, 2000, &cl.vtable);
    ck_assert_int_eq(lxm__conn_send(b, LXM__MSG_HELLO, 0, "{}", 2), 0);
    ck_assert_int_eq(lxm__proto_hello(a, "cli", NULL, NULL),
                     LXM_ERROR_PROTOCOL);
    lxm__conn_free(a);
    lxm__conn_free(b);
}
END_TEST

START_TEST(test_expect)
{
    lxm__conn *a, *b;
    lxm_test_logger cl;
    char err[128];
    yajl_val v;
    yajl_gen g;

    lxm_test_logger_init(&cl);
    pair(&a, &b, 2000, &cl.vtable);

    /* ERROR instead of ACCEPT: PEER with the peer's message. */
    ck_assert_int_eq(lxm__conn_send_error(b, LXM__MSG_ERROR, LXM_ERROR_EXISTS,
                                          "domain vm1 already exists on h2"),
                     0);
    ck_assert_int_eq(lxm__conn_expect(a, LXM__MSG_ACCEPT, &v, err, sizeof(err)),
                     LXM_ERROR_PEER);
    ck_assert_ptr_null(v);
    ck_assert_str_eq(err, "domain vm1 already exists on h2");
    ck_assert_msg(strstr(cl.last, "domain vm1 already exists on h2"), "%s",
                  cl.last);

    /* FAILED with a stage. */
    g = lxm__json_new();
    lxm__json_str(g, "error", "restore failed");
    lxm__json_str(g, "stage", "restore");
    ck_assert_int_eq(lxm__conn_send_json(b, LXM__MSG_FAILED, g), 0);
    ck_assert_int_eq(
        lxm__conn_expect(a, LXM__MSG_READY, NULL, err, sizeof(err)),
        LXM_ERROR_PEER);
    ck_assert_str_eq(err, "restore failed (stage: restore)");

    /* FAILED when FAILED is wanted is a match. */
    g = lxm__json_new();
    lxm__json_str(g, "error", "x");
    ck_assert_int_eq(lxm__conn_send_json(b, LXM__MSG_FAILED, g), 0);
    ck_assert_int_eq(lxm__conn_expect(a, LXM__MSG_FAILED, &v, NULL, 0), 0);
    ck_assert_str_eq(lxm__jstr(v, "error"), "x");
    yajl_tree_free(v);

    /* Another type: PROTOCOL. */
    ck_assert_int_eq(lxm__conn_send(b, LXM__MSG_GO, 0, "{}", 2), 0);
    ck_assert_int_eq(lxm__conn_expect(a, LXM__MSG_READY, &v, err, sizeof(err)),
                     LXM_ERROR_PROTOCOL);
    ck_assert_msg(strstr(err, "sent GO, expected READY"), "%s", err);

    /* Not JSON: PROTOCOL. */
    ck_assert_int_eq(lxm__conn_send(b, LXM__MSG_READY, 0, "nope", 4), 0);
    ck_assert_int_eq(lxm__conn_expect(a, LXM__MSG_READY, &v, err, sizeof(err)),
                     LXM_ERROR_PROTOCOL);

    /* The right one. */
    g = lxm__json_new();
    lxm__json_int(g, "domid", 7);
    ck_assert_int_eq(lxm__conn_send_json(b, LXM__MSG_READY, g), 0);
    ck_assert_int_eq(lxm__conn_expect(a, LXM__MSG_READY, &v, err, sizeof(err)),
                     0);
    ck_assert_int_eq(lxm__jint(v, "domid", -1), 7);
    yajl_tree_free(v);

    /* EOF: CONNECT, with the message in err. */
    lxm__conn_free(b);
    ck_assert_int_eq(lxm__conn_expect(a, LXM__MSG_READY, &v, err, sizeof(err)),
                     LXM_ERROR_CONNECT);
    ck_assert_msg(strstr(err, "closed the connection"), "%s", err);
    lxm__conn_free(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* addr                                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_addresses)
{
    static const char *const bad[] = {
        "::1:80", "[::1", "[::1]80", "h:99999", "h:abc", "h:", "[]:80", "h:-1",
    };
    lxm_test_logger cl;
    lxm__conn *c;
    size_t i;
    int fd;

    ck_assert(lxm__addr_is_unix("/run/xlmig/xlmigd.sock"));
    ck_assert(lxm__addr_is_unix("./sock"));
    ck_assert(!lxm__addr_is_unix("h1:8702"));
    ck_assert(!lxm__addr_is_unix(":8702"));
    ck_assert(!lxm__addr_is_unix("[::1]:8702"));
    ck_assert(!lxm__addr_is_unix(NULL));

    lxm_test_logger_init(&cl);
    for (i = 0; i < LXM_ARRAY_SIZE(bad); i++) {
        ck_assert_msg(lxm__conn_connect(bad[i], 100, &cl.vtable, &c) ==
                          LXM_ERROR_INVAL,
                      "connect %s", bad[i]);
        ck_assert_ptr_null(c);
        ck_assert_msg(strstr(cl.last, bad[i]), "%s", cl.last);
        ck_assert_msg(lxm__conn_listen(bad[i], &fd, NULL, 0, NULL) ==
                          LXM_ERROR_INVAL,
                      "listen %s", bad[i]);
        ck_assert_int_eq(fd, -1);
    }
    ck_assert_int_eq(lxm__conn_connect("", 100, NULL, &c), LXM_ERROR_INVAL);
    ck_assert_int_eq(
        lxm__conn_connect("no-such-host.invalid:8702", 2000, &cl.vtable, &c),
        LXM_ERROR_CONNECT);
    ck_assert_msg(strstr(cl.last, "cannot connect to no-such-host.invalid"),
                  "%s", cl.last);
}
END_TEST

START_TEST(test_tcp_forms)
{
    char bound[64], addr[160];
    lxm__conn *c, *s;
    lxm_test_logger cl;
    int lfd, rc;

    /* ":PORT" is 127.0.0.1. */
    ck_assert_int_eq(lxm__conn_listen(":0", &lfd, bound, sizeof(bound), NULL),
                     0);
    ck_assert_msg(!strncmp(bound, "127.0.0.1:", 10), "%s", bound);
    snprintf(addr, sizeof(addr), ":%s", strchr(bound, ':') + 1);
    ck_assert_int_eq(lxm__conn_connect(addr, 1000, NULL, &c), 0);
    ck_assert_int_eq(lxm__conn_accept(lfd, 1000, NULL, &s), 0);
    ck_assert_int_eq(lxm__conn_send(c, LXM__MSG_HELLO, 0, "{}", 2), 0);
    lxm__conn_free(c);
    lxm__conn_free(s);
    /* localhost by name. */
    snprintf(addr, sizeof(addr), "localhost:%s", strchr(bound, ':') + 1);
    rc = lxm__conn_connect(addr, 1000, NULL, &c);
    ck_assert_int_eq(rc, 0);
    lxm__conn_free(c);
    /* accept with nobody coming: TIMEOUT. */
    ck_assert_int_eq(lxm__conn_accept(lfd, 0, NULL, &s), 0); /* localhost */
    lxm__conn_free(s);
    ck_assert_int_eq(lxm__conn_accept(lfd, 100, NULL, &s), LXM_ERROR_TIMEOUT);
    close(lfd);

    /* Refused, with the one-line message. */
    lxm_test_logger_init(&cl);
    ck_assert_int_eq(lxm__conn_connect(bound, 1000, &cl.vtable, &c),
                     LXM_ERROR_CONNECT);
    snprintf(addr, sizeof(addr), "cannot connect to %s: connection refused",
             bound);
    ck_assert_str_eq(cl.last, addr);

    /* A port in use. */
    ck_assert_int_eq(
        lxm__conn_listen("127.0.0.1:0", &lfd, bound, sizeof(bound), NULL), 0);
    {
        int fd2;

        ck_assert_int_eq(lxm__conn_listen(bound, &fd2, NULL, 0, NULL),
                         LXM_ERROR_EXISTS);
    }
    close(lfd);

    /* IPv6 loopback, where the host has it. */
    if (lxm__conn_listen("[::1]:0", &lfd, bound, sizeof(bound), NULL) == 0) {
        ck_assert_msg(!strncmp(bound, "[::1]:", 6), "%s", bound);
        ck_assert_int_eq(lxm__conn_connect(bound, 1000, NULL, &c), 0);
        ck_assert_int_eq(lxm__conn_accept(lfd, 1000, NULL, &s), 0);
        every_type(c, s);
        ck_assert_msg(!strncmp(lxm__conn_peer(s), "[::1]:", 6), "%s",
                      lxm__conn_peer(s));
        lxm__conn_free(c);
        lxm__conn_free(s);
        close(lfd);
    } else {
        fprintf(stderr, "NOTE: no IPv6 loopback here; [::1] not tested\n");
    }
}
END_TEST

/* A fresh directory under TMPDIR; caller removes. */
static void tmpdir(char *buf, size_t len)
{
    const char *t = getenv("TMPDIR");

    snprintf(buf, len, "%s/lxm-transport-XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

START_TEST(test_unix)
{
    char dir[256], path[300], sub[280], bound[300];
    struct sockaddr_un un;
    struct stat st;
    lxm__conn *c, *s;
    lxm_test_logger cl;
    int lfd, lfd2, fd;

    tmpdir(dir, sizeof(dir));
    snprintf(sub, sizeof(sub), "%s/run/xlmig", dir);
    snprintf(path, sizeof(path), "%s/xlmigd.sock", sub);

    /* Parent directories are created, 0755. */
    ck_assert_int_eq(lxm__conn_listen(path, &lfd, bound, sizeof(bound), NULL),
                     0);
    ck_assert_str_eq(bound, path);
    ck_assert_int_eq(stat(sub, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0755);
    ck_assert_int_eq(lxm__conn_connect(path, 1000, NULL, &c), 0);
    ck_assert_int_eq(lxm__conn_accept(lfd, 1000, NULL, &s), 0);
    ck_assert_str_eq(lxm__conn_peer(c), path);
    ck_assert_str_eq(lxm__conn_peer(s), path);
    every_type(c, s);
    every_type(s, c);
    lxm__conn_free(c);
    lxm__conn_free(s);

    /* A live agent's socket is not stolen. */
    lxm_test_logger_init(&cl);
    ck_assert_int_eq(lxm__conn_listen(path, &lfd2, NULL, 0, &cl.vtable),
                     LXM_ERROR_EXISTS);
    ck_assert_msg(strstr(cl.last, "another process is listening"), "%s",
                  cl.last);
    ck_assert_int_eq(lxm__conn_connect(path, 1000, NULL, &c), 0);
    lxm__conn_free(c);
    close(lfd);

    /* Stale: the socket file of a dead listener is replaced. */
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(lxm__conn_connect(path, 1000, NULL, &c),
                     LXM_ERROR_CONNECT);
    ck_assert_int_eq(lxm__conn_listen(path, &lfd, NULL, 0, NULL), 0);
    ck_assert_int_eq(lxm__conn_connect(path, 1000, NULL, &c), 0);
    lxm__conn_free(c);
    close(lfd);
    unlink(path);

    /* Stale from a bound-but-never-listening socket, too. */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    ck_assert_uint_lt(strlen(path), sizeof(un.sun_path));
    memcpy(un.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
    close(fd);
    ck_assert_int_eq(lxm__conn_listen(path, &lfd, NULL, 0, NULL), 0);
    close(lfd);
    unlink(path);

    /* Not a socket: refused, left alone. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(lxm__conn_listen(path, &lfd, NULL, 0, &cl.vtable),
                     LXM_ERROR_EXISTS);
    ck_assert_msg(strstr(cl.last, "not a socket"), "%s", cl.last);
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    unlink(path);

    /* No agent at all. */
    ck_assert_int_eq(lxm__conn_connect(path, 1000, &cl.vtable, &c),
                     LXM_ERROR_CONNECT);
    ck_assert_msg(strstr(cl.last, "no such file"), "%s", cl.last);

    /* A path longer than sun_path. */
    {
        char longp[200];

        memset(longp, 'a', sizeof(longp) - 1);
        longp[0] = '/';
        longp[sizeof(longp) - 1] = '\0';
        ck_assert_int_eq(lxm__conn_listen(longp, &lfd, NULL, 0, NULL),
                         LXM_ERROR_INVAL);
    }

    rmdir(sub);
    snprintf(sub, sizeof(sub), "%s/run", dir);
    rmdir(sub);
    rmdir(dir);
}
END_TEST

Suite *lxm_test_transport_suite(void)
{
    Suite *s = suite_create("transport");
    TCase *tc;

    tc = tcase_create("frames");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_socketpair_types);
    tcase_add_test(tc, test_tcp_types);
    tcase_add_test(tc, test_big_frames);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_over_cap);
    tcase_add_test(tc, test_bad_headers);
    tcase_add_test(tc, test_eof);
    suite_add_tcase(s, tc);

    tc = tcase_create("time");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_connect_timeout);
    tcase_add_test(tc, test_shutdown_wakes);
    tcase_add_test(tc, test_rate_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("json");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_hello);
    tcase_add_test(tc, test_expect);
    suite_add_tcase(s, tc);

    tc = tcase_create("addr");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_addresses);
    tcase_add_test(tc, test_tcp_forms);
    tcase_add_test(tc, test_unix);
    suite_add_tcase(s, tc);

    return s;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
