/*
 * xlmigd.c - the per-host agent of libxlmig: main, options, daemonizing,
 * the listeners and their accept threads, one thread per connection,
 * signals and shutdown.  docs/man/xlmigd.8 is the user's view.
 *
 *   xlmigd [--backend auto|libxl|sim] [--state-dir DIR]
 *          [--listen HOST:PORT] [--control PATH] [--foreground]
 *          [--sim-memory SIZE] [--hostname NAME] [--ready-file FILE]
 *          [--stop-copy-slots N] [--config FILE] [--codecs LIST] [-v]
 *
 * Order of startup: options, LXM_FAULT, backend choice, daemonize (the
 * first parent waits until the agent is ready or has failed, and exits
 * accordingly), logger, signals, backend open, control socket, TCP
 * listener, accept threads, pid and ready files, then the main thread
 * sleeps in sigwait.  Shutdown (SIGINT, SIGTERM, or the "shutdown"
 * request) undoes it in reverse; see stop_agent().
 *
 * Every connection, on either listener, starts with HELLO both ways.
 * Then REQUEST frames (control, xlmigd_control.c) are answered one at a
 * time, or one MIGRATE frame starts an incoming migration
 * (xlmigd_peer.c) after which the connection is closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xlmigd.h"

#define DEFAULT_STATE_DIR "/var/lib/xlmig"
#define DEFAULT_LISTEN "127.0.0.1:8702"
#define DEFAULT_CONFIG "/etc/xlmig.conf"

typedef struct options {
    const char *backend;
    char state_dir[PATH_MAX];
    const char *listen;
    char control[PATH_MAX];
    char ready_file[PATH_MAX];
    const char *hostname;
    uint64_t sim_memory;
    unsigned int stop_copy_slots; /* 0: no gate */
    const char *xl_path;          /* xl-receive's xl */
    const char *config;           /* --config (issue 5) */
    const char *codecs;           /* --codecs; NULL: all */
    bool foreground;
    int verbose;
} options;

/* One listening socket and its accept thread. */
typedef struct listener {
    xlmigd *d;
    int fd;
    bool control;
    bool started;
    pthread_t thread;
} listener;

static int stop_pipe[2] = { -1, -1 };

/*
 * When daemonized, messages go to the log file and, until the agent is
 * ready, to the caller's terminal too: why it could not start is then
 * seen where it was started.  ->also is cleared (atomically) once ready.
 */
typedef struct tee_logger {
    xentoollog_logger vtable;
    xentoollog_logger *main; /* owned */
    xentoollog_logger *also; /* owned; NULL once ready */
} tee_logger;

static void tee_vmessage(xentoollog_logger *lg, xentoollog_level level,
                         int errnoval, const char *context, const char *format,
                         va_list al) __attribute__((format(printf, 5, 0)));
static void tee_vmessage(xentoollog_logger *lg, xentoollog_level level,
                         int errnoval, const char *context, const char *format,
                         va_list al)
{
    tee_logger *t = (tee_logger *)lg;
    xentoollog_logger *also = __atomic_load_n(&t->also, __ATOMIC_ACQUIRE);
    va_list copy;

    va_copy(copy, al);
    xtl_logv(t->main, level, errnoval, context, format, al);
    if (also)
        xtl_logv(also, level, errnoval, context, format, copy);
    va_end(copy);
}

static void usage(FILE *f)
{
    fputs(
        "Usage: xlmigd [options]\n"
        "\n"
        "The libxlmig agent: serves the xlmig command on a unix socket and\n"
        "migrations from and to other hosts' agents over TCP.\n"
        "\n"
        "Options:\n"
        "  --backend auto|libxl|sim  hypervisor backend (default auto)\n"
        "  --state-dir DIR           state (sim domains, pid, log; default\n"
        "                            " DEFAULT_STATE_DIR ")\n"
        "  --listen HOST:PORT        TCP address for peers (default\n"
        "                            " DEFAULT_LISTEN "; port 0: any)\n"
        "  --control PATH            control socket (default\n"
        "                            " LXM__DEFAULT_CONTROL ")\n"
        "  -f, --foreground          do not daemonize; log to stderr\n"
        "  --sim-memory SIZE         sim: host memory for domains (K/M/G;\n"
        "                            default 16G)\n"
        "  --hostname NAME           sim: this host's name\n"
        "  --stop-copy-slots N       outgoing migrations paused at once\n"
        "                            (default 1; 0: no limit)\n"
        "  --xl-path PATH            the xl that xl-receive runs (default\n"
        "                            xl on PATH)\n"
        "  --config FILE             configuration (default\n"
        "                            " DEFAULT_CONFIG "; missing: defaults)\n"
        "  --codecs LIST             stream codecs accepted from peers: all\n"
        "                            (default), none, or zlib,zstd,lz4,pages\n"
        "  --ready-file FILE         write control=PATH and listen=ADDR\n"
        "                            there once listening\n"
        "  -v, --verbose             debug logging\n"
        "  --version                 print the version and exit\n"
        "  -h, --help                print this help\n",
        f);
}

static int usage_error(const char *fmt, ...) LXM_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("xlmigd: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see 'xlmigd --help')\n", stderr);
    return 2;
}

/* path made absolute against the cwd (we chdir("/") when daemonizing). */
static int absolute_path(const char *path, char *out, size_t len)
{
    char cwd[PATH_MAX];
    int n;

    if (path[0] == '/') {
        n = snprintf(out, len, "%s", path);
    } else {
        if (!getcwd(cwd, sizeof(cwd)))
            return -1;
        n = snprintf(out, len, "%s/%s", cwd, path);
    }
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int parse_options(int argc, char **argv, options *o)
{
    enum {
        OPT_BACKEND = 256,
        OPT_STATE_DIR,
        OPT_LISTEN,
        OPT_CONTROL,
        OPT_SIM_MEMORY,
        OPT_HOSTNAME,
        OPT_READY_FILE,
        OPT_VERSION,
        OPT_STOP_COPY_SLOTS,
        OPT_XL_PATH,
        OPT_CONFIG,
        OPT_CODECS,
    };
    static const struct option longopts[] = {
        { "backend", required_argument, NULL, OPT_BACKEND },
        { "state-dir", required_argument, NULL, OPT_STATE_DIR },
        { "listen", required_argument, NULL, OPT_LISTEN },
        { "control", required_argument, NULL, OPT_CONTROL },
        { "foreground", no_argument, NULL, 'f' },
        { "sim-memory", required_argument, NULL, OPT_SIM_MEMORY },
        { "hostname", required_argument, NULL, OPT_HOSTNAME },
        { "ready-file", required_argument, NULL, OPT_READY_FILE },
        { "stop-copy-slots", required_argument, NULL, OPT_STOP_COPY_SLOTS },
        { "xl-path", required_argument, NULL, OPT_XL_PATH },
        { "config", required_argument, NULL, OPT_CONFIG },
        { "codecs", required_argument, NULL, OPT_CODECS },
        { "verbose", no_argument, NULL, 'v' },
        { "version", no_argument, NULL, OPT_VERSION },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *state_dir = DEFAULT_STATE_DIR;
    const char *control = LXM__DEFAULT_CONTROL;
    const char *ready = NULL;
    int opt;

    memset(o, 0, sizeof(*o));
    o->backend = "auto";
    o->listen = DEFAULT_LISTEN;
    o->stop_copy_slots = 1;
    o->xl_path = "xl";
    o->config = DEFAULT_CONFIG;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":fvh", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_BACKEND:
            o->backend = optarg;
            break;
        case OPT_STATE_DIR:
            state_dir = optarg;
            break;
        case OPT_LISTEN:
            o->listen = optarg;
            break;
        case OPT_CONTROL:
            control = optarg;
            break;
        case 'f':
            o->foreground = true;
            break;
        case OPT_SIM_MEMORY:
            if (!lxm__parse_size(optarg, &o->sim_memory) || !o->sim_memory)
                return usage_error("bad --sim-memory '%s'", optarg);
            break;
        case OPT_HOSTNAME:
            if (!*optarg || strlen(optarg) >= LXM__NAME_MAX)
                return usage_error("bad --hostname '%s'", optarg);
            o->hostname = optarg;
            break;
        case OPT_READY_FILE:
            ready = optarg;
            break;
        case OPT_CONFIG:
            if (!*optarg)
                return usage_error("bad --config ''");
            o->config = optarg;
            break;
        case OPT_CODECS:
            o->codecs = optarg;
            break;
        case OPT_XL_PATH:
            if (!*optarg || strlen(optarg) >= PATH_MAX)
                return usage_error("bad --xl-path '%s'", optarg);
            o->xl_path = optarg;
            break;
        case OPT_STOP_COPY_SLOTS: {
            char *end;
            unsigned long n;

            errno = 0;
            n = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || n > 1024 || optarg[0] == '-')
                return usage_error("bad --stop-copy-slots '%s' (0-1024)",
                                   optarg);
            o->stop_copy_slots = (unsigned int)n;
            break;
        }
        case 'v':
            o->verbose++;
            break;
        case OPT_VERSION:
            printf("xlmigd %s (libxlmig API 0x%06x, protocol %d)\n",
                   lxm_version(), LXM_API_VERSION, LXM__PROTO_VERSION);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        case ':':
            return usage_error("option '%s' needs an argument",
                               argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected operand '%s'", argv[optind]);
    if (absolute_path(state_dir, o->state_dir, sizeof(o->state_dir)))
        return usage_error("bad --state-dir '%s'", state_dir);
    if (absolute_path(control, o->control, sizeof(o->control)))
        return usage_error("bad --control '%s'", control);
    if (ready && absolute_path(ready, o->ready_file, sizeof(o->ready_file)))
        return usage_error("bad --ready-file '%s'", ready);
    if (lxm__addr_is_unix(o->listen))
        return usage_error("--listen wants HOST:PORT, not '%s'", o->listen);
    return 0;
}

/* mkdir -p, mode for the directories created. */
static int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t i, len = strlen(path);

    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, mode) && errno != EEXIST)
            return -1;
        buf[i] = i == len ? '\0' : '/';
    }
    return 0;
}

/* Write text to path atomically (a temporary file, then rename). */
static int write_file(const char *path, const char *text)
{
    char tmp[PATH_MAX + 8];
    FILE *f;
    int r;

    r = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (r < 0 || (size_t)r >= sizeof(tmp))
        return -1;
    f = fopen(tmp, "w");
    if (!f)
        return -1;
    fputs(text, f);
    if (fclose(f)) {
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/*
 * Double fork.  The original process waits for one byte on a pipe from
 * the agent: 'R' (ready) -> exit 0, anything else or EOF -> exit 1 (the
 * agent has said why on stderr, still the caller's until it is ready).
 * Returns the write end in the agent.
 */
static int daemonize(int *notify_r)
{
    int p[2], null_fd, status;
    pid_t pid;
    char c = 0;
    ssize_t r;

    if (pipe(p)) {
        perror("xlmigd: pipe");
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        perror("xlmigd: fork");
        return -1;
    }
    if (pid > 0) {
        close(p[1]);
        do {
            r = read(p[0], &c, 1);
        } while (r < 0 && errno == EINTR);
        waitpid(pid, &status, 0);
        _exit(r == 1 && c == 'R' ? 0 : 1);
    }
    close(p[0]);
    if (setsid() < 0) {
        perror("xlmigd: setsid");
        _exit(1);
    }
    pid = fork();
    if (pid < 0) {
        perror("xlmigd: fork");
        _exit(1);
    }
    if (pid > 0)
        _exit(0);
    if (chdir("/")) {
        perror("xlmigd: chdir /");
        _exit(1);
    }
    umask(022);
    null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
        dup2(null_fd, STDIN_FILENO);
        dup2(null_fd, STDOUT_FILENO);
        if (null_fd > STDERR_FILENO)
            close(null_fd);
    }
    *notify_r = p[1];
    return 0;
}

/* ---- connections -------------------------------------------------- */

void xlmigd_request_stop(xlmigd *d)
{
    (void)d;
    kill(getpid(), SIGTERM);
}

static void conn_unlink(xlmigd_conn *xc)
{
    xlmigd *d = xc->d;
    xlmigd_conn **pp;

    pthread_mutex_lock(&d->lock);
    for (pp = &d->conns; *pp; pp = &(*pp)->next) {
        if (*pp == xc) {
            *pp = xc->next;
            break;
        }
    }
    d->nr_conns--;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* Mark xc busy or idle; false when the agent is stopping. */
static bool conn_set_busy(xlmigd_conn *xc, bool busy)
{
    xlmigd *d = xc->d;
    bool stopping;

    pthread_mutex_lock(&d->lock);
    xc->busy = busy;
    stopping = d->stopping;
    pthread_mutex_unlock(&d->lock);
    return !stopping;
}

/*
 * Wait for the next frame.  False when the client closed the connection
 * (the normal end of a CLI session, not worth an error in the log), was
 * shut down, or stayed idle too long.  conn.c reads exactly one frame at
 * a time, so nothing can be waiting in its buffers.
 */
static bool wait_request(xlmigd_conn *xc)
{
    struct pollfd pfd;
    char ch;
    int r;

    pfd.fd = lxm__conn_fd(xc->c);
    pfd.events = POLLIN;
    do {
        r = poll(&pfd, 1, XLMIGD_IDLE_TIMEOUT_MS);
    } while (r < 0 && errno == EINTR);
    if (r <= 0)
        return false;
    r = (int)recv(pfd.fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    return r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

static void *conn_main(void *arg)
{
    xlmigd_conn *xc = arg;
    xlmigd *d = xc->d;
    yajl_val hello = NULL;
    lxm__frame f;
    int rc;

    lxm__conn_set_timeout(xc->c, XLMIGD_CONN_TIMEOUT_MS);
    rc =
        lxm__proto_hello_caps(xc->c, "agent", d->hostname, d->cfg.caps, &hello);
    if (rc) {
        LXM_LOG_DEBUG(d->lg, "connection from %s: no hello: %s", xc->peer,
                      lxm_strerror(rc));
        goto out;
    }
    LXM_LOG_DEBUG(d->lg, "connection from %s (%s, host %s)", xc->peer,
                  lxm__jstr(hello, "role") ? lxm__jstr(hello, "role") : "?",
                  lxm__jstr(hello, "host") ? lxm__jstr(hello, "host") : "?");

    for (;;) {
        if (!conn_set_busy(xc, false) || !wait_request(xc))
            break;
        rc = lxm__conn_recv(xc->c, &f);
        if (rc) {
            if (rc != LXM_ERROR_CONNECT)
                LXM_LOG_DEBUG(d->lg, "connection from %s: %s", xc->peer,
                              lxm_strerror(rc));
            break;
        }
        if (!conn_set_busy(xc, true)) {
            lxm__conn_send_error(xc->c, LXM__MSG_ERROR, LXM_ERROR_STATE,
                                 "xlmigd on %s is shutting down", d->hostname);
            break;
        }
        lxm__conn_set_timeout(xc->c, XLMIGD_CONN_TIMEOUT_MS);
        if (f.type == LXM__MSG_REQUEST) {
            if (xlmigd_control_request(xc, &f))
                break;
        } else if (f.type == LXM__MSG_MIGRATE) {
            xlmigd_peer_migrate(xc, &f);
            break;
        } else {
            LXM_LOG_ERROR(d->lg, "connection from %s: unexpected %s frame",
                          xc->peer, lxm__msg_name(f.type));
            lxm__conn_send_error(xc->c, LXM__MSG_ERROR, LXM_ERROR_PROTOCOL,
                                 "xlmigd on %s: unexpected %s frame",
                                 d->hostname, lxm__msg_name(f.type));
            break;
        }
    }

out:
    yajl_tree_free(hello);
    /* Nothing of d may be used after this: the main thread may be
     * tearing the agent down once nr_conns reaches 0. */
    conn_unlink(xc);
    lxm__conn_free(xc->c);
    pthread_mutex_destroy(&xc->send_lock);
    free(xc);
    return NULL;
}

/* Take over c: register it and start its thread (or drop it). */
static void conn_start(xlmigd *d, lxm__conn *c, bool control)
{
    xlmigd_conn *xc;
    pthread_attr_t attr;
    pthread_t tid;
    const char *peer;
    int r;

    xc = calloc(1, sizeof(*xc));
    if (!xc) {
        LXM_LOG_ERROR(d->lg, "out of memory for a connection");
        lxm__conn_free(c);
        return;
    }
    xc->d = d;
    xc->c = c;
    xc->control = control;
    peer = lxm__conn_peer(c);
    snprintf(xc->peer, sizeof(xc->peer), "%s",
             peer && *peer ? peer : (control ? "unix" : "?"));
    pthread_mutex_init(&xc->send_lock, NULL);

    pthread_mutex_lock(&d->lock);
    if (d->stopping) {
        pthread_mutex_unlock(&d->lock);
        goto drop;
    }
    xc->busy = true; /* until its thread waits for a request */
    xc->next = d->conns;
    d->conns = xc;
    d->nr_conns++;
    pthread_mutex_unlock(&d->lock);

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    r = pthread_create(&tid, &attr, conn_main, xc);
    pthread_attr_destroy(&attr);
    if (r == 0)
        return;
    LXM_LOG_ERROR(d->lg, "cannot start a thread for %s: %s", xc->peer,
                  strerror(r));
    conn_unlink(xc);
drop:
    lxm__conn_free(c);
    pthread_mutex_destroy(&xc->send_lock);
    free(xc);
}

static void *accept_main(void *arg)
{
    listener *l = arg;
    xlmigd *d = l->d;
    struct pollfd pfd[2];
    lxm__conn *c;
    int r, rc;

    for (;;) {
        pfd[0].fd = l->fd;
        pfd[0].events = POLLIN;
        pfd[1].fd = stop_pipe[0];
        pfd[1].events = POLLIN;
        r = poll(pfd, 2, -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            LXM_LOG_ERRNO(d->lg, "poll on a listening socket");
            break;
        }
        if (pfd[1].revents)
            break;
        if (!(pfd[0].revents & POLLIN))
            continue;
        /* Short: a client gone between poll and accept must not keep
         * this thread from seeing the stop pipe. */
        rc = lxm__conn_accept(l->fd, 1000, d->lg, &c);
        if (rc == LXM_ERROR_TIMEOUT)
            continue;
        if (rc) {
            /* EMFILE and friends: do not spin. */
            struct timespec ts = { 0, 100 * 1000 * 1000 };

            nanosleep(&ts, NULL);
            continue;
        }
        conn_start(d, c, l->control);
    }
    return NULL;
}

/* ---- setup and teardown ------------------------------------------- */

static bool wait_conns(xlmigd *d, unsigned int seconds)
{
    struct timespec deadline;
    bool done;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&d->lock);
    while (d->nr_conns) {
        if (pthread_cond_timedwait(&d->cond, &d->lock, &deadline) == ETIMEDOUT)
            break;
    }
    done = d->nr_conns == 0;
    pthread_mutex_unlock(&d->lock);
    return done;
}

/*
 * Stop accepting; shut idle connections down; ask the migrations this
 * host sends to cancel (honoured before GO); wait for every connection
 * thread, at most XLMIGD_STOP_GRACE_S, then shut the rest down and wait
 * XLMIGD_STOP_FORCE_S more.  Returns false when some are still running:
 * the backend must then not be closed under them.
 */
static bool stop_agent(xlmigd *d, listener *ls, int nls)
{
    xlmigd_conn *xc;
    unsigned int left;
    int i;

    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    for (xc = d->conns; xc; xc = xc->next) {
        if (!xc->busy)
            lxm__conn_shutdown(xc->c);
        else if (xc->sending)
            __atomic_store_n(&xc->cancel.requested, 1, __ATOMIC_SEQ_CST);
    }
    pthread_mutex_unlock(&d->lock);

    if (write(stop_pipe[1], "x", 1) < 0)
        LXM_LOG_ERRNO(d->lg, "waking the accept threads");
    for (i = 0; i < nls; i++) {
        if (ls[i].started)
            pthread_join(ls[i].thread, NULL);
        if (ls[i].fd >= 0)
            close(ls[i].fd);
        ls[i].fd = -1;
    }
    unlink(d->control_path);

    if (wait_conns(d, XLMIGD_STOP_GRACE_S))
        return true;
    pthread_mutex_lock(&d->lock);
    LXM_LOG_ERROR(d->lg,
                  "%u connection(s) still busy after %d s; shutting them"
                  " down",
                  d->nr_conns, XLMIGD_STOP_GRACE_S);
    for (xc = d->conns; xc; xc = xc->next)
        lxm__conn_shutdown(xc->c);
    pthread_mutex_unlock(&d->lock);
    if (wait_conns(d, XLMIGD_STOP_FORCE_S))
        return true;
    pthread_mutex_lock(&d->lock);
    left = d->nr_conns;
    pthread_mutex_unlock(&d->lock);
    LXM_LOG_ERROR(d->lg,
                  "%u connection(s) did not finish; exiting without"
                  " closing the backend",
                  left);
    return false;
}

int main(int argc, char **argv)
{
    static xlmigd agent;
    xlmigd *d = &agent;
    options o;
    listener ls[2];
    lxm__backend_opts bopts;
    lxm__host_info hi;
    xentoollog_logger_stdiostream *stdio_lg = NULL, *startup_lg = NULL;
    tee_logger tee;
    FILE *log_file = NULL;
    sigset_t sigs;
    char pid_file[PATH_MAX + 16], text[2 * PATH_MAX + 256];
    const char *colon;
    int notify_fd = -1, ret = 1, rc, r, sig = 0, i;
    bool pid_written = false, clean;

    rc = parse_options(argc, argv, &o);
    if (rc)
        return rc;

    memset(ls, 0, sizeof(ls));
    memset(&tee, 0, sizeof(tee));
    ls[0].fd = ls[1].fd = -1;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    snprintf(d->state_dir, sizeof(d->state_dir), "%s", o.state_dir);
    snprintf(d->control_path, sizeof(d->control_path), "%s", o.control);

    if (xlmigd_fault_parse(getenv("LXM_FAULT"), &d->fault))
        return 2;
    /* /etc/xlmig.conf, then --codecs (issue 5). */
    if (xlmigd_config_load(o.config, &d->cfg, text, sizeof(text)) ||
        xlmigd_codecs_parse(o.codecs, &d->cfg, text, sizeof(text))) {
        fprintf(stderr, "xlmigd: %s\n", text);
        return 2;
    }
    d->ops = lxm__backend_choose(o.backend);
    if (!d->ops) {
        fprintf(stderr, "xlmigd: backend '%s' is unknown or not built in\n",
                o.backend);
        return 2;
    }
    d->is_sim = d->ops == &lxm__backend_sim_ops;
    d->xl_path = o.xl_path;
    if (mkdir_p(d->state_dir, 0755)) {
        fprintf(stderr, "xlmigd: cannot create state dir %s: %s\n",
                d->state_dir, strerror(errno));
        return 1;
    }

    if (!o.foreground && daemonize(&notify_fd))
        return 1;

    /* Logging: stderr in the foreground, a file in the state dir when
     * daemonized (its errors before "ready" also reach the terminal). */
    if (!o.foreground) {
        snprintf(text, sizeof(text), "%s/xlmigd.log", d->state_dir);
        log_file = fopen(text, "a");
        if (!log_file) {
            fprintf(stderr, "xlmigd: cannot open %s: %s\n", text,
                    strerror(errno));
            goto out;
        }
        setvbuf(log_file, NULL, _IOLBF, 0);
    }
    stdio_lg = xtl_createlogger_stdiostream(
        log_file ? log_file : stderr, o.verbose ? XTL_DEBUG : XTL_INFO,
        XTL_STDIOSTREAM_HIDE_PROGRESS |
            (log_file ? XTL_STDIOSTREAM_SHOW_DATE | XTL_STDIOSTREAM_SHOW_PID
                      : 0));
    if (!stdio_lg) {
        fprintf(stderr, "xlmigd: cannot create a logger\n");
        goto out;
    }
    d->lg = (xentoollog_logger *)stdio_lg;
    if (log_file) {
        startup_lg = xtl_createlogger_stdiostream(stderr, XTL_ERROR, 0);
        tee.vtable.vmessage = tee_vmessage;
        tee.main = (xentoollog_logger *)stdio_lg;
        tee.also = (xentoollog_logger *)startup_lg;
        d->lg = &tee.vtable;
    }

    /* Signals: SIGINT/SIGTERM are taken by the main thread's sigwait;
     * every thread created from here on inherits the mask. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    memset(&bopts, 0, sizeof(bopts));
    bopts.state_dir = d->state_dir;
    bopts.logger = d->lg;
    bopts.sim_host_memory = o.sim_memory;
    bopts.sim_hostname = o.hostname;
    rc = d->ops->open(&bopts, &d->b);
    if (rc) {
        LXM_LOG_ERROR(d->lg, "cannot open the %s backend: %s", d->ops->name,
                      lxm_strerror(rc));
        goto out;
    }
    xlmigd_cleanup_incoming(d);
    if (o.stop_copy_slots) {
        rc = lxm__stopcopy_gate_new(o.stop_copy_slots, &d->gate);
        if (rc) {
            LXM_LOG_ERROR(d->lg, "cannot create the stop-and-copy gate: %s",
                          lxm_strerror(rc));
            goto out;
        }
    }
    rc = d->ops->host_info(d->b, &hi);
    if (rc) {
        LXM_LOG_ERROR(d->lg, "cannot read host info: %s", lxm_strerror(rc));
        goto out;
    }
    snprintf(d->hostname, sizeof(d->hostname), "%s",
             o.hostname ? o.hostname : hi.hostname);

    /* conn.c creates the directory and removes a stale socket, but
     * never one a live agent answers on. */
    rc = lxm__conn_listen(d->control_path, &ls[0].fd, NULL, 0, d->lg);
    if (rc)
        goto out; /* conn.c said why */
    chmod(d->control_path, 0600);
    ls[0].control = true;
    rc = lxm__conn_listen(o.listen, &ls[1].fd, d->listen_addr,
                          sizeof(d->listen_addr), d->lg);
    if (rc) {
        unlink(d->control_path); /* conn.c said why */
        goto out;
    }
    if (!d->listen_addr[0])
        snprintf(d->listen_addr, sizeof(d->listen_addr), "%s", o.listen);
    colon = strrchr(d->listen_addr, ':');
    d->listen_port = colon ? (uint16_t)atoi(colon + 1) : 0;

    if (pipe(stop_pipe)) {
        LXM_LOG_ERRNO(d->lg, "pipe");
        unlink(d->control_path);
        goto out;
    }
    for (i = 0; i < 2; i++) {
        ls[i].d = d;
        r = pthread_create(&ls[i].thread, NULL, accept_main, &ls[i]);
        if (r) {
            LXM_LOG_ERROR(d->lg, "cannot start the accept thread: %s",
                          strerror(r));
            stop_agent(d, ls, 2);
            goto out;
        }
        ls[i].started = true;
    }

    if (!o.foreground) {
        snprintf(pid_file, sizeof(pid_file), "%s/xlmigd.pid", d->state_dir);
        snprintf(text, sizeof(text), "%d\n", (int)getpid());
        if (write_file(pid_file, text))
            LXM_LOG_ERRNO(d->lg, "cannot write %s", pid_file);
        else
            pid_written = true;
    }
    if (o.ready_file[0]) {
        snprintf(text, sizeof(text), "control=%s\nlisten=%s\n", d->control_path,
                 d->listen_addr);
        if (write_file(o.ready_file, text)) {
            LXM_LOG_ERRNO(d->lg, "cannot write %s", o.ready_file);
            stop_agent(d, ls, 2);
            goto out;
        }
    }
    lxm__log(d->lg, XTL_INFO, -1,
             "xlmigd %s ready: host %s, backend %s, control %s, peers on %s%s",
             lxm_version(), d->hostname, d->ops->name, d->control_path,
             d->listen_addr,
             d->fault.recv_crash_after || d->fault.send_crash_after ||
                     d->fault.send_drop_after
                 ? " (LXM_FAULT set: test faults armed)"
                 : "");
    if (notify_fd >= 0) {
        int null_fd = open("/dev/null", O_WRONLY);

        __atomic_store_n(&tee.also, NULL, __ATOMIC_RELEASE);

        if (null_fd >= 0) {
            dup2(null_fd, STDERR_FILENO);
            close(null_fd);
        }
        if (write(notify_fd, "R", 1) != 1)
            LXM_LOG_ERRNO(d->lg, "telling the parent we are ready");
        close(notify_fd);
        notify_fd = -1;
    }

    for (;;) {
        r = sigwait(&sigs, &sig);
        if (r == 0 && (sig == SIGINT || sig == SIGTERM))
            break;
    }
    lxm__log(d->lg, XTL_INFO, -1, "signal %d: stopping", sig);

    clean = stop_agent(d, ls, 2);
    if (o.ready_file[0])
        unlink(o.ready_file);
    if (!clean) {
        /* Threads still use the backend: leave it to the kernel. */
        ret = 1;
        goto out_exit;
    }
    d->ops->close(d->b);
    d->b = NULL;
    lxm__log(d->lg, XTL_INFO, -1, "stopped");
    ret = 0;

out:
    if (d->b)
        d->ops->close(d->b);
    d->b = NULL;
    lxm__stopcopy_gate_free(d->gate); /* no thread uses it any more */
    d->gate = NULL;
out_exit:
    if (pid_written)
        unlink(pid_file);
    if (notify_fd >= 0)
        close(notify_fd); /* the parent exits 1 */
    if (stop_pipe[0] >= 0) {
        close(stop_pipe[0]);
        close(stop_pipe[1]);
    }
    if (ret == 0) {
        xtl_logger_destroy((xentoollog_logger *)stdio_lg);
        xtl_logger_destroy((xentoollog_logger *)startup_lg);
    }
    if (log_file && ret == 0)
        fclose(log_file);
    if (ret != 0)
        _exit(ret);
    return ret;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
