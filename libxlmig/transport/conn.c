/*
 * conn.c - sockets, framing, timeouts and the rate limit of libxlmig's
 * wire protocol (proto.h; specification in docs/protocol.md).
 *
 * Entry points:
 *   lxm__addr_is_unix()
 *   lxm__conn_connect(), lxm__conn_listen(), lxm__conn_accept(),
 *   lxm__conn_from_fd(), lxm__conn_free()        set-up and tear-down
 *   lxm__conn_send(), lxm__conn_recv()           one frame each
 *   lxm__conn_sendv()                            a STREAM frame from
 *                                                an iovec
 *   lxm__conn_shutdown()                         from any thread
 *   lxm__conn_fd(), _peer(), _set_timeout(), _set_rate(), _bytes_out(),
 *   _bytes_in(), _last_error(), _set_error()     accessors
 *   lxm__msg_name()
 *
 * Every socket is non-blocking; each wait is a poll() bounded by the
 * connection's timeout (0 = wait for ever), so a silent peer gives
 * LXM_ERROR_TIMEOUT and connect() cannot hang either.  The timeout is
 * the longest wait for any progress, not a bound on a whole frame.
 *
 * Receive: the 8-byte header is read and checked (length cap, reserved
 * bits, type, codec) before the payload buffer is sized.  The buffer
 * belongs to the connection and only ever grows (up to LXM__FRAME_MAX),
 * so steady-state traffic allocates nothing.
 *
 * Send: header and payload leave in one sendmsg() (MSG_NOSIGNAL: a
 * closed peer is EPIPE, never SIGPIPE), resumed after partial writes
 * and EINTR.  STREAM payload bytes pass a token bucket first when a
 * rate is set.
 *
 * Threads: a connection has at most one sending and one receiving
 * thread at a time.  Fields are grouped below by who owns them.
 * lxm__conn_shutdown() may be called from any thread while the
 * connection exists; it only touches the socket and an atomic flag.
 * One lock, err_lock, around the last error's text (a leaf: nothing is
 * called while holding it).
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "transport/proto.h"

#define PEER_MAX 128
#define ERR_MAX 256
#define RECV_BUF_MIN (64u << 10)
#define RATE_SLEEP_MAX_NS (50u * 1000 * 1000) /* sleep steps <= 50 ms */
#define LISTEN_BACKLOG 16

struct lxm__conn {
    /* Immutable after creation. */
    int fd;
    bool tcp;
    char peer[PEER_MAX];
    xentoollog_logger *lg; /* borrowed, NULL ok */

    /* Set by the owner before threads share the connection; read with
     * relaxed atomics. */
    uint32_t timeout_ms;
    uint64_t rate; /* STREAM payload bytes/s, 0 = off */

    /* Sending thread. */
    int64_t tokens;   /* token bucket, bytes; may go negative */
    uint64_t last_ns; /* last refill, CLOCK_MONOTONIC */
    bool bucket_init;

    /* Receiving thread. */
    uint8_t *buf; /* payload buffer, buf_cap bytes */
    uint32_t buf_cap;

    /* Atomics: any thread. */
    uint64_t bytes_out, bytes_in;
    int shut; /* lxm__conn_shutdown() was called */

    /* The last error's one-line message: err_lock protects err.  Never
     * held while logging. */
    pthread_mutex_t err_lock;
    char err[ERR_MAX];
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* strerror() with a lower-case first letter, for "cannot connect to
 * X: connection refused". */
static const char *errstr(int e, char *buf, size_t len)
{
    snprintf(buf, len, "%s", strerror(e));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
        buf[0] = (char)(buf[0] - 'A' + 'a');
    return buf;
}

/* Record (and log) the connection's error line; returns rc. */
static int conn_fail(lxm__conn *c, int rc, const char *fmt, ...)
    LXM_PRINTF(3, 4);
static void set_error_v(lxm__conn *c, const char *fmt, va_list ap)
    LXM_PRINTF(2, 0);
static void set_error_v(lxm__conn *c, const char *fmt, va_list ap)
{
    char msg[ERR_MAX];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    pthread_mutex_lock(&c->err_lock);
    memcpy(c->err, msg, sizeof(msg));
    pthread_mutex_unlock(&c->err_lock);
    LXM_LOG_ERROR(c->lg, "%s", msg);
}

static int conn_fail(lxm__conn *c, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_error_v(c, fmt, ap);
    va_end(ap);
    return rc;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0)
        return -1;
    if (fl & O_NONBLOCK)
        return 0;
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/*
 * Wait until fd is ready for events or timeout_ms passes (0 = for
 * ever).  Returns 0 when ready, LXM_ERROR_TIMEOUT, or LXM_ERROR_IO with
 * errno set.
 */
static int wait_fd(int fd, short events, uint32_t timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = events };
    uint64_t deadline = 0;
    int r, wait;

    if (timeout_ms)
        deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        if (timeout_ms) {
            uint64_t now = now_ns();

            if (now >= deadline)
                return LXM_ERROR_TIMEOUT;
            wait = (int)((deadline - now + 999999u) / 1000000u);
        } else {
            wait = -1;
        }
        r = poll(&p, 1, wait);
        if (r > 0)
            return 0; /* ready, or POLLERR/POLLHUP: the call says which */
        if (r == 0)
            continue; /* re-check the deadline */
        if (errno != EINTR)
            return LXM_ERROR_IO;
    }
}

/*
 * Split addr into host and port.  "HOST:PORT", "[v6]:PORT", ":PORT"
 * (host 127.0.0.1) and "HOST" (port LXM__DEFAULT_PORT).  Returns 0 or
 * LXM_ERROR_INVAL with why set.
 */
static int split_addr(const char *addr, char *host, size_t host_len, char *port,
                      size_t port_len, const char **why)
{
    const char *colon, *h = addr;
    size_t hl;
    char *end;
    unsigned long p;

    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');

        if (!rb) {
            *why = "missing ']'";
            return LXM_ERROR_INVAL;
        }
        h = addr + 1;
        hl = (size_t)(rb - h);
        if (rb[1] == '\0')
            colon = NULL;
        else if (rb[1] == ':')
            colon = rb + 1;
        else {
            *why = "expected ':PORT' after ']'";
            return LXM_ERROR_INVAL;
        }
    } else {
        colon = strchr(addr, ':');
        if (colon && strchr(colon + 1, ':')) {
            *why = "an IPv6 address needs brackets: [ADDR]:PORT";
            return LXM_ERROR_INVAL;
        }
        hl = colon ? (size_t)(colon - addr) : strlen(addr);
    }
    if (hl >= host_len) {
        *why = "host name too long";
        return LXM_ERROR_INVAL;
    }
    if (hl == 0) {
        if (addr[0] == '[') {
            *why = "empty address in brackets";
            return LXM_ERROR_INVAL;
        }
        snprintf(host, host_len, "127.0.0.1");
    } else {
        memcpy(host, h, hl);
        host[hl] = '\0';
    }

    if (!colon) {
        snprintf(port, port_len, "%d", LXM__DEFAULT_PORT);
        return 0;
    }
    errno = 0;
    p = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end || errno || p > 65535) {
        *why = "port must be a number from 0 to 65535";
        return LXM_ERROR_INVAL;
    }
    snprintf(port, port_len, "%lu", p);
    return 0;
}

/* "1.2.3.4:80" or "[::1]:80" for a socket address. */
static void format_sockaddr(const struct sockaddr *sa, socklen_t len, char *buf,
                            size_t buf_len)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;

        if (len > offsetof(struct sockaddr_un, sun_path) && un->sun_path[0])
            snprintf(buf, buf_len, "%.*s",
                     (int)(len - offsetof(struct sockaddr_un, sun_path)),
                     un->sun_path);
        else
            snprintf(buf, buf_len, "unix socket");
        return;
    }
    if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV)) {
        snprintf(buf, buf_len, "unknown address");
        return;
    }
    if (sa->sa_family == AF_INET6)
        snprintf(buf, buf_len, "[%s]:%s", host, serv);
    else
        snprintf(buf, buf_len, "%s:%s", host, serv);
}

static int unix_sockaddr(const char *path, struct sockaddr_un *un,
                         xentoollog_logger *lg)
{
    memset(un, 0, sizeof(*un));
    un->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(un->sun_path)) {
        LXM_LOG_ERROR(lg, "unix socket path %s is too long (max %zu bytes)",
                      path, sizeof(un->sun_path) - 1);
        return LXM_ERROR_INVAL;
    }
    memcpy(un->sun_path, path, strlen(path) + 1);
    return 0;
}

/* Non-blocking connect on a new socket fd, bounded by timeout_ms.
 * Returns 0 or -1 with errno set (ETIMEDOUT for the timeout). */
static int connect_fd(int fd, const struct sockaddr *sa, socklen_t len,
                      uint32_t timeout_ms)
{
    int r, err = 0;
    socklen_t el = sizeof(err);

    do {
        r = connect(fd, sa, len);
    } while (r < 0 && errno == EINTR);
    if (r == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EAGAIN)
        return -1;
    r = wait_fd(fd, POLLOUT, timeout_ms);
    if (r == LXM_ERROR_TIMEOUT) {
        errno = ETIMEDOUT;
        return -1;
    }
    if (r)
        return -1;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        return -1;
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* Wrap fd (taken over, closed on failure too). */
static int conn_new(int fd, bool tcp, const char *peer, uint32_t timeout_ms,
                    xentoollog_logger *lg, lxm__conn **c_r)
{
    lxm__conn *c;

    *c_r = NULL;
    c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return LXM_ERROR_NOMEM;
    }
    pthread_mutex_init(&c->err_lock, NULL);
    c->fd = fd;
    c->tcp = tcp;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->lg = lg;
    c->timeout_ms = timeout_ms;
    if (set_nonblock(fd) < 0) {
        LXM_LOG_ERRNO(lg, "cannot make the socket to %s non-blocking", peer);
        close(fd);
        pthread_mutex_destroy(&c->err_lock);
        free(c);
        return LXM_ERROR_IO;
    }
    if (tcp) {
        int one = 1;

        /* Small control frames must not wait for Nagle. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    *c_r = c;
    return 0;
}

static uint32_t conn_timeout(const lxm__conn *c)
{
    return __atomic_load_n(&c->timeout_ms, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* Addresses and set-up                                                */
/* ------------------------------------------------------------------ */

bool lxm__addr_is_unix(const char *addr)
{
    return addr && strchr(addr, '/') != NULL;
}

static int connect_unix(const char *addr, uint32_t timeout_ms,
                        xentoollog_logger *lg, lxm__conn **c_r)
{
    struct sockaddr_un un;
    char eb[64];
    int fd, rc;

    rc = unix_sockaddr(addr, &un, lg);
    if (rc)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        LXM_LOG_ERRNO(lg, "cannot create a unix socket for %s", addr);
        return LXM_ERROR_IO;
    }
    if (connect_fd(fd, (struct sockaddr *)&un, sizeof(un), timeout_ms) < 0) {
        int e = errno;

        close(fd);
        LXM_LOG_ERROR(lg, "cannot connect to %s: %s", addr,
                      errstr(e, eb, sizeof(eb)));
        return e == ETIMEDOUT ? LXM_ERROR_TIMEOUT : LXM_ERROR_CONNECT;
    }
    return conn_new(fd, false, addr, timeout_ms, lg, c_r);
}

int lxm__conn_connect(const char *addr, uint32_t timeout_ms,
                      xentoollog_logger *lg, lxm__conn **c_r)
{
    struct addrinfo hints, *res = NULL, *ai;
    char host[256], port[8], eb[64];
    const char *why = NULL;
    uint64_t deadline = 0;
    int rc, r, fd = -1, e = 0;

    *c_r = NULL;
    if (!addr || !*addr) {
        LXM_LOG_ERROR(lg, "cannot connect: empty address");
        return LXM_ERROR_INVAL;
    }
    if (lxm__addr_is_unix(addr))
        return connect_unix(addr, timeout_ms, lg, c_r);

    rc = split_addr(addr, host, sizeof(host), port, sizeof(port), &why);
    if (rc) {
        LXM_LOG_ERROR(lg, "cannot connect to %s: bad address: %s", addr, why);
        return rc;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    r = getaddrinfo(host, port, &hints, &res);
    if (r) {
        LXM_LOG_ERROR(lg, "cannot connect to %s: %s", addr,
                      r == EAI_SYSTEM ? errstr(errno, eb, sizeof(eb))
                                      : gai_strerror(r));
        return LXM_ERROR_CONNECT;
    }

    if (timeout_ms)
        deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (ai = res; ai; ai = ai->ai_next) {
        uint32_t left = 0;

        if (timeout_ms) {
            uint64_t now = now_ns();

            if (now >= deadline) {
                e = ETIMEDOUT;
                break;
            }
            left = (uint32_t)((deadline - now + 999999u) / 1000000u);
        }
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect_fd(fd, ai->ai_addr, ai->ai_addrlen, left) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        LXM_LOG_ERROR(lg, "cannot connect to %s: %s", addr,
                      e == ETIMEDOUT ? "timed out" : errstr(e, eb, sizeof(eb)));
        return e == ETIMEDOUT ? LXM_ERROR_TIMEOUT : LXM_ERROR_CONNECT;
    }
    return conn_new(fd, true, addr, timeout_ms, lg, c_r);
}

/* mkdir -p of path's parent directory, mode 0755 for what it creates. */
static int make_parent(const char *path, xentoollog_logger *lg)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *p, *slash;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        {
            char save = *p;

            *p = '\0';
            if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                LXM_LOG_ERRNO(lg, "cannot create directory %s for %s", dir,
                              path);
                return LXM_ERROR_IO;
            }
            *p = save;
        }
        if (*p == '\0')
            break;
    }
    return 0;
}

/*
 * A socket file is already at path: remove it only if nobody answers
 * on it (a stale socket from an agent that died).  A live agent's
 * socket, or a file that is not a socket, is LXM_ERROR_EXISTS.
 */
static int clear_stale_socket(const char *path, const struct sockaddr_un *un,
                              xentoollog_logger *lg)
{
    struct stat st;
    int fd, r, e;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        LXM_LOG_ERRNO(lg, "cannot listen on %s: stat", path);
        return LXM_ERROR_IO;
    }
    if (!S_ISSOCK(st.st_mode)) {
        LXM_LOG_ERROR(lg, "cannot listen on %s: it exists and is not a socket",
                      path);
        return LXM_ERROR_EXISTS;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        LXM_LOG_ERRNO(lg, "cannot create a unix socket for %s", path);
        return LXM_ERROR_IO;
    }
    r = connect_fd(fd, (const struct sockaddr *)un, sizeof(*un), 1000);
    e = errno;
    close(fd);
    if (r == 0 || e == ETIMEDOUT || e == EAGAIN) {
        LXM_LOG_ERROR(lg,
                      "cannot listen on %s: another process is listening"
                      " there (is xlmigd already running?)",
                      path);
        return LXM_ERROR_EXISTS;
    }
    if (e != ECONNREFUSED) {
        char eb[64];

        LXM_LOG_ERROR(lg,
                      "cannot listen on %s: probing the existing socket: %s",
                      path, errstr(e, eb, sizeof(eb)));
        return LXM_ERROR_IO;
    }
    LXM_LOG_DEBUG(lg, "removing stale socket %s", path);
    if (unlink(path) < 0 && errno != ENOENT) {
        LXM_LOG_ERRNO(lg, "cannot remove stale socket %s", path);
        return LXM_ERROR_IO;
    }
    return 0;
}

static int listen_unix(const char *path, int *fd_r, char *bound_r,
                       size_t bound_len, xentoollog_logger *lg)
{
    struct sockaddr_un un;
    int fd = -1, rc;

    rc = unix_sockaddr(path, &un, lg);
    if (rc)
        goto out;
    rc = make_parent(path, lg);
    if (rc)
        goto out;
    rc = clear_stale_socket(path, &un, lg);
    if (rc)
        goto out;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        LXM_LOG_ERRNO(lg, "cannot create a unix socket for %s", path);
        rc = LXM_ERROR_IO;
        goto out;
    }
    if (bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
        rc = errno == EADDRINUSE ? LXM_ERROR_EXISTS : LXM_ERROR_IO;
        LXM_LOG_ERRNO(lg, "cannot listen on %s: bind", path);
        goto out;
    }
    if (listen(fd, LISTEN_BACKLOG) < 0) {
        LXM_LOG_ERRNO(lg, "cannot listen on %s", path);
        rc = LXM_ERROR_IO;
        goto out;
    }
    if (bound_r && bound_len)
        snprintf(bound_r, bound_len, "%s", path);
    *fd_r = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int lxm__conn_listen(const char *addr, int *fd_r, char *bound_r,
                     size_t bound_len, xentoollog_logger *lg)
{
    struct addrinfo hints, *res = NULL, *ai;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[256], port[8], eb[64];
    const char *why = NULL;
    int rc, r, fd = -1, e = 0, one = 1;

    *fd_r = -1;
    if (!addr || !*addr) {
        LXM_LOG_ERROR(lg, "cannot listen: empty address");
        return LXM_ERROR_INVAL;
    }
    if (lxm__addr_is_unix(addr))
        return listen_unix(addr, fd_r, bound_r, bound_len, lg);

    rc = split_addr(addr, host, sizeof(host), port, sizeof(port), &why);
    if (rc) {
        LXM_LOG_ERROR(lg, "cannot listen on %s: bad address: %s", addr, why);
        return rc;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    r = getaddrinfo(host, port, &hints, &res);
    if (r) {
        LXM_LOG_ERROR(lg, "cannot listen on %s: %s", addr,
                      r == EAI_SYSTEM ? errstr(errno, eb, sizeof(eb))
                                      : gai_strerror(r));
        return LXM_ERROR_INVAL;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, LISTEN_BACKLOG) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        LXM_LOG_ERROR(lg, "cannot listen on %s: %s", addr,
                      errstr(e, eb, sizeof(eb)));
        return e == EADDRINUSE ? LXM_ERROR_EXISTS : LXM_ERROR_IO;
    }
    if (bound_r && bound_len) {
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            format_sockaddr((struct sockaddr *)&ss, sl, bound_r, bound_len);
        else
            snprintf(bound_r, bound_len, "%s", addr);
    }
    *fd_r = fd;
    return 0;
}

int lxm__conn_accept(int listen_fd, uint32_t timeout_ms, xentoollog_logger *lg,
                     lxm__conn **c_r)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    char peer[PEER_MAX];
    uint64_t deadline = 0;
    int fd, rc;

    *c_r = NULL;
    if (timeout_ms)
        deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint32_t left = 0;

        if (timeout_ms) {
            uint64_t now = now_ns();

            if (now >= deadline)
                return LXM_ERROR_TIMEOUT;
            left = (uint32_t)((deadline - now + 999999u) / 1000000u);
        }
        rc = wait_fd(listen_fd, POLLIN, left);
        if (rc == LXM_ERROR_TIMEOUT)
            return rc;
        if (rc) {
            LXM_LOG_ERRNO(lg, "accept: poll");
            return rc;
        }
        sl = sizeof(ss);
        fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl,
                     SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0)
            break;
        /* The client may have gone between poll and accept. */
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK ||
            errno == ECONNABORTED || errno == EPROTO)
            continue;
        LXM_LOG_ERRNO(lg, "accept");
        return errno == EMFILE || errno == ENFILE || errno == ENOMEM
                   ? LXM_ERROR_NOMEM
                   : LXM_ERROR_IO;
    }

    if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un un;
        socklen_t ul = sizeof(un);

        /* Unix clients are unnamed: name the connection by our path. */
        if (getsockname(listen_fd, (struct sockaddr *)&un, &ul) == 0)
            format_sockaddr((struct sockaddr *)&un, ul, peer, sizeof(peer));
        else
            snprintf(peer, sizeof(peer), "unix socket");
        return conn_new(fd, false, peer, timeout_ms, lg, c_r);
    }
    format_sockaddr((struct sockaddr *)&ss, sl, peer, sizeof(peer));
    return conn_new(fd, true, peer, timeout_ms, lg, c_r);
}

int lxm__conn_from_fd(int fd, uint32_t timeout_ms, xentoollog_logger *lg,
                      lxm__conn **c_r)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char peer[PEER_MAX];
    bool tcp = false;

    *c_r = NULL;
    if (fd < 0)
        return LXM_ERROR_INVAL;
    snprintf(peer, sizeof(peer), "fd %d", fd);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
            tcp = true;
            format_sockaddr((struct sockaddr *)&ss, sl, peer, sizeof(peer));
        } else if (ss.ss_family == AF_UNIX && sl > sizeof(sa_family_t) &&
                   ((struct sockaddr_un *)&ss)->sun_path[0]) {
            format_sockaddr((struct sockaddr *)&ss, sl, peer, sizeof(peer));
        }
    }
    return conn_new(fd, tcp, peer, timeout_ms, lg, c_r);
}

void lxm__conn_free(lxm__conn *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    pthread_mutex_destroy(&c->err_lock);
    free(c);
}

/* ------------------------------------------------------------------ */
/* Accessors                                                           */
/* ------------------------------------------------------------------ */

int lxm__conn_fd(const lxm__conn *c)
{
    return c ? c->fd : -1;
}

const char *lxm__conn_peer(const lxm__conn *c)
{
    return c ? c->peer : "(none)";
}

void lxm__conn_set_error(lxm__conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_error_v(c, fmt, ap);
    va_end(ap);
}

const char *lxm__conn_last_error(const lxm__conn *c)
{
    /* A copy per thread: the sending and receiving threads may both be
     * failing at once. */
    static __thread char copy[ERR_MAX];

    if (!c)
        return "";
    pthread_mutex_lock((pthread_mutex_t *)&c->err_lock);
    memcpy(copy, c->err, sizeof(copy));
    pthread_mutex_unlock((pthread_mutex_t *)&c->err_lock);
    return copy;
}

void lxm__conn_set_timeout(lxm__conn *c, uint32_t timeout_ms)
{
    __atomic_store_n(&c->timeout_ms, timeout_ms, __ATOMIC_RELAXED);
}

void lxm__conn_set_rate(lxm__conn *c, uint64_t bytes_per_sec)
{
    __atomic_store_n(&c->rate, bytes_per_sec, __ATOMIC_RELAXED);
}

uint64_t lxm__conn_bytes_out(const lxm__conn *c)
{
    return __atomic_load_n(&c->bytes_out, __ATOMIC_RELAXED);
}

uint64_t lxm__conn_bytes_in(const lxm__conn *c)
{
    return __atomic_load_n(&c->bytes_in, __ATOMIC_RELAXED);
}

void lxm__conn_shutdown(lxm__conn *c)
{
    if (!c)
        return;
    __atomic_store_n(&c->shut, 1, __ATOMIC_RELEASE);
    /* Wakes poll() in another thread: the socket reads EOF and writes
     * EPIPE from now on. */
    (void)shutdown(c->fd, SHUT_RDWR);
}

static bool is_shut(const lxm__conn *c)
{
    return __atomic_load_n(&c->shut, __ATOMIC_ACQUIRE) != 0;
}

const char *lxm__msg_name(uint8_t type)
{
    switch (type) {
    case LXM__MSG_HELLO:
        return "HELLO";
    case LXM__MSG_ERROR:
        return "ERROR";
    case LXM__MSG_REQUEST:
        return "REQUEST";
    case LXM__MSG_REPLY:
        return "REPLY";
    case LXM__MSG_EVENT:
        return "EVENT";
    case LXM__MSG_MIGRATE:
        return "MIGRATE";
    case LXM__MSG_ACCEPT:
        return "ACCEPT";
    case LXM__MSG_STREAM:
        return "STREAM";
    case LXM__MSG_STREAM_END:
        return "STREAM_END";
    case LXM__MSG_READY:
        return "READY";
    case LXM__MSG_GO:
        return "GO";
    case LXM__MSG_RUNNING:
        return "RUNNING";
    case LXM__MSG_FAILED:
        return "FAILED";
    case LXM__MSG_PROBE:
        return "PROBE";
    case LXM__MSG_PROBE_ACK:
        return "PROBE_ACK";
    case LXM__MSG_PROBE_END:
        return "PROBE_END";
    default:
        return "UNKNOWN";
    }
}

static bool msg_known(uint8_t type)
{
    return strcmp(lxm__msg_name(type), "UNKNOWN") != 0;
}

/* ------------------------------------------------------------------ */
/* Sending                                                             */
/* ------------------------------------------------------------------ */

/* Credit the bucket for the time since the last refill, up to burst. */
static void bucket_refill(lxm__conn *c, uint64_t rate, int64_t burst)
{
    uint64_t now = now_ns();
    unsigned __int128 add;

    add = (unsigned __int128)(now - c->last_ns) * rate / 1000000000u;
    if (add >= (unsigned __int128)(burst - c->tokens)) {
        c->tokens = burst;
        c->last_ns = now;
    } else if (add) {
        /* Advance the refill time only by what was credited, so
         * rounding never loses time. */
        c->tokens += (int64_t)add;
        c->last_ns += (uint64_t)(add * 1000000000u / rate);
    }
}

/*
 * Token bucket: refill at rate, holding at most one STREAM chunk; take
 * n (the level may go negative) and sleep, in steps of at most 50 ms,
 * until it is back to zero.  A shutdown ends the wait.
 */
static int rate_wait(lxm__conn *c, uint32_t n)
{
    uint64_t rate = __atomic_load_n(&c->rate, __ATOMIC_RELAXED);
    const int64_t burst = LXM__STREAM_CHUNK;

    if (!rate)
        return 0;
    if (!c->bucket_init) {
        c->tokens = burst;
        c->last_ns = now_ns();
        c->bucket_init = true;
    }
    bucket_refill(c, rate, burst);
    c->tokens -= n;
    while (c->tokens < 0) {
        uint64_t need_ns;
        struct timespec ts;

        if (is_shut(c))
            return conn_fail(c, LXM_ERROR_CONNECT,
                             "connection to %s was shut down", c->peer);
        need_ns = (uint64_t)(-c->tokens) * 1000000000u / rate + 1;
        if (need_ns > RATE_SLEEP_MAX_NS)
            need_ns = RATE_SLEEP_MAX_NS;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)need_ns;
        nanosleep(&ts, NULL);
        bucket_refill(c, rate, burst);
    }
    return 0;
}

static int send_error(lxm__conn *c, int e)
{
    char eb[64];

    if (is_shut(c))
        return conn_fail(c, LXM_ERROR_CONNECT, "connection to %s was shut down",
                         c->peer);
    if (e == EPIPE || e == ECONNRESET || e == ENOTCONN)
        return conn_fail(c, LXM_ERROR_CONNECT,
                         "connection to %s lost while sending: %s", c->peer,
                         errstr(e, eb, sizeof(eb)));
    return conn_fail(c, LXM_ERROR_IO, "cannot send to %s: %s", c->peer,
                     errstr(e, eb, sizeof(eb)));
}

/* Write all of iov[0..n) to the socket. */
static int send_all(lxm__conn *c, struct iovec *iov, int n)
{
    bool use_sendmsg = true;
    int rc;

    while (n > 0) {
        ssize_t r;

        if (use_sendmsg) {
            struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };

            r = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (r < 0 && errno == ENOTSOCK) {
                use_sendmsg = false; /* a pipe from lxm__conn_from_fd */
                continue;
            }
        } else {
            r = writev(c->fd, iov, n);
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return send_error(c, errno);
            rc = wait_fd(c->fd, POLLOUT, conn_timeout(c));
            if (rc == LXM_ERROR_TIMEOUT)
                return conn_fail(c, rc,
                                 "timed out after %" PRIu32
                                 " ms sending to %s (peer not reading)",
                                 conn_timeout(c), c->peer);
            if (rc)
                return send_error(c, errno);
            continue;
        }
        __atomic_fetch_add(&c->bytes_out, (uint64_t)r, __ATOMIC_RELAXED);
        while (n > 0 && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
    return 0;
}

int lxm__conn_send(lxm__conn *c, uint8_t type, uint8_t codec,
                   const void *payload, uint32_t length)
{
    uint8_t hdr[LXM__FRAME_HDR_LEN];
    struct iovec iov[2];
    int n = 1, rc;

    if (!msg_known(type))
        return conn_fail(c, LXM_ERROR_INVAL,
                         "refusing to send a frame of unknown type 0x%02x"
                         " to %s",
                         type, c->peer);
    if (length > LXM__FRAME_MAX)
        return conn_fail(c, LXM_ERROR_INVAL,
                         "refusing to send a %s frame of %" PRIu32
                         " bytes to %s (cap %u)",
                         lxm__msg_name(type), length, c->peer, LXM__FRAME_MAX);
    if (codec && type != LXM__MSG_STREAM)
        return conn_fail(c, LXM_ERROR_INVAL,
                         "refusing to send a %s frame with codec %u",
                         lxm__msg_name(type), codec);
    if (length && !payload)
        return LXM_ERROR_INVAL;

    if (type == LXM__MSG_STREAM) {
        rc = rate_wait(c, length);
        if (rc)
            return rc;
    }

    lxm__put_le32(hdr, length);
    hdr[4] = type;
    hdr[5] = codec;
    hdr[6] = 0;
    hdr[7] = 0;
    iov[0].iov_base = hdr;
    iov[0].iov_len = sizeof(hdr);
    if (length) {
        iov[1].iov_base = (void *)payload;
        iov[1].iov_len = length;
        n = 2;
    }
    return send_all(c, iov, n);
}

/*
 * One frame whose payload is the concatenation of iov[0..n): the
 * bytes go from where they are straight into the socket (no staging
 * copy).  Sent with at most SENDV_IOV entries per sendmsg().
 */
#define SENDV_IOV 1024
int lxm__conn_sendv(lxm__conn *c, uint8_t type, uint8_t codec,
                    const struct iovec *iov, int n)
{
    uint8_t hdr[LXM__FRAME_HDR_LEN];
    struct iovec v[SENDV_IOV];
    uint64_t length = 0;
    int i, k, rc;

    for (i = 0; i < n; i++)
        length += iov[i].iov_len;
    if (type != LXM__MSG_STREAM)
        return conn_fail(c, LXM_ERROR_INVAL,
                         "refusing to send a %s frame from an iovec",
                         lxm__msg_name(type));
    if (length > LXM__FRAME_MAX)
        return conn_fail(c, LXM_ERROR_INVAL,
                         "refusing to send a %s frame of %" PRIu64
                         " bytes to %s (cap %u)",
                         lxm__msg_name(type), length, c->peer, LXM__FRAME_MAX);
    rc = rate_wait(c, (uint32_t)length);
    if (rc)
        return rc;

    lxm__put_le32(hdr, (uint32_t)length);
    hdr[4] = type;
    hdr[5] = codec;
    hdr[6] = 0;
    hdr[7] = 0;
    v[0].iov_base = hdr;
    v[0].iov_len = sizeof(hdr);
    k = 1;
    for (i = 0; i < n; i++) {
        if (!iov[i].iov_len)
            continue;
        if (k == SENDV_IOV) {
            rc = send_all(c, v, k);
            if (rc)
                return rc;
            k = 0;
        }
        v[k++] = iov[i];
    }
    return send_all(c, v, k);
}

/* ------------------------------------------------------------------ */
/* Receiving                                                           */
/* ------------------------------------------------------------------ */

/*
 * Read exactly len bytes into p.  what/got/total describe the frame for
 * the EOF message: got bytes of total already in before this call.
 */
static int recv_all(lxm__conn *c, uint8_t *p, size_t len, const char *what,
                    size_t got, size_t total)
{
    size_t done = 0;
    char eb[64];
    int rc;

    while (done < len) {
        /* read(), not recv(): lxm__conn_from_fd may wrap a pipe. */
        ssize_t r = read(c->fd, p + done, len - done);

        if (r > 0) {
            done += (size_t)r;
            __atomic_fetch_add(&c->bytes_in, (uint64_t)r, __ATOMIC_RELAXED);
            continue;
        }
        if (r == 0 || errno == ECONNRESET || errno == ENOTCONN) {
            if (is_shut(c))
                return conn_fail(c, LXM_ERROR_CONNECT,
                                 "connection to %s was shut down", c->peer);
            if (got + done == 0)
                return conn_fail(c, LXM_ERROR_CONNECT,
                                 "peer %s closed the connection", c->peer);
            return conn_fail(c, LXM_ERROR_CONNECT,
                             "peer %s closed the connection in the middle"
                             " of a %s (got %zu of %zu bytes)",
                             c->peer, what, got + done, total);
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return conn_fail(c, LXM_ERROR_IO, "cannot receive from %s: %s",
                             c->peer, errstr(errno, eb, sizeof(eb)));
        rc = wait_fd(c->fd, POLLIN, conn_timeout(c));
        if (rc == LXM_ERROR_TIMEOUT)
            return conn_fail(
                c, rc, "timed out after %" PRIu32 " ms waiting for peer %s",
                conn_timeout(c), c->peer);
        if (rc)
            return conn_fail(c, LXM_ERROR_IO, "cannot receive from %s: %s",
                             c->peer, errstr(errno, eb, sizeof(eb)));
    }
    return 0;
}

/* Make the payload buffer hold len bytes (len <= LXM__FRAME_MAX). */
static int reserve(lxm__conn *c, uint32_t len)
{
    uint32_t cap;
    uint8_t *p;

    if (len <= c->buf_cap)
        return 0;
    cap = c->buf_cap ? c->buf_cap : RECV_BUF_MIN;
    while (cap < len)
        cap = cap > LXM__FRAME_MAX / 2 ? LXM__FRAME_MAX : cap * 2;
    p = malloc(cap);
    if (!p)
        return conn_fail(c, LXM_ERROR_NOMEM,
                         "cannot allocate %" PRIu32
                         " bytes for a frame from %s",
                         cap, c->peer);
    free(c->buf);
    c->buf = p;
    c->buf_cap = cap;
    return 0;
}

int lxm__conn_recv(lxm__conn *c, lxm__frame *f)
{
    uint8_t hdr[LXM__FRAME_HDR_LEN];
    uint32_t length;
    uint8_t type, codec;
    int rc;

    memset(f, 0, sizeof(*f));
    rc = recv_all(c, hdr, sizeof(hdr), "frame header", 0, sizeof(hdr));
    if (rc)
        return rc;
    length = lxm__le32(hdr);
    type = hdr[4];
    codec = hdr[5];

    /* Everything about the header is checked before any allocation. */
    if (length > LXM__FRAME_MAX)
        return conn_fail(c, LXM_ERROR_PROTOCOL,
                         "peer %s sent a frame of %" PRIu32
                         " bytes, over the %u byte cap",
                         c->peer, length, LXM__FRAME_MAX);
    if (hdr[6] || hdr[7])
        return conn_fail(c, LXM_ERROR_PROTOCOL,
                         "peer %s sent a frame with reserved bytes"
                         " 0x%02x%02x (must be 0)",
                         c->peer, hdr[6], hdr[7]);
    if (!msg_known(type))
        return conn_fail(c, LXM_ERROR_PROTOCOL,
                         "peer %s sent a frame of unknown type 0x%02x", c->peer,
                         type);
    if (codec && type != LXM__MSG_STREAM)
        return conn_fail(c, LXM_ERROR_PROTOCOL,
                         "peer %s sent a %s frame with codec %u"
                         " (only STREAM frames have a codec)",
                         c->peer, lxm__msg_name(type), codec);

    if (length) {
        rc = reserve(c, length);
        if (rc)
            return rc;
        rc = recv_all(c, c->buf, length, "frame", sizeof(hdr),
                      sizeof(hdr) + length);
        if (rc)
            return rc;
    }
    f->type = type;
    f->codec = codec;
    f->length = length;
    f->payload = length ? c->buf : (const uint8_t *)"";
    return 0;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
