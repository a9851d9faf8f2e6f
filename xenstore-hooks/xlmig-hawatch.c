/*
 * xenstore-hooks/xlmig-hawatch.c - start a host evacuation when an HA
 * daemon asks for one in xenstore, and say how it went.
 *
 *   xlmig-hawatch [--prefix P] [--host NAME] [--xlmig PATH] [--once]
 *                 [--log FILE] [-- XLMIG-EVACUATE-OPTIONS...]
 *
 * The keys (xenstore-hooks/README.md, evacuate/xs_status.h): the HA
 * daemon writes evacuation/request-reason, optionally
 * evacuation/request-targets, then evacuation/request = an id; we run
 *
 *   xlmig host-evacuate --json-events [--to HOST]... [OPTIONS] NAME
 *
 * with LXM_XS_REQUEST_ID / LXM_XS_REASON in its environment (xlmig
 * publishes its own progress under the same prefix), and when it ends
 * make sure evacuation/state says so even if xlmig could not (it was
 * killed, or it failed before it started publishing).  Writing the
 * running request's id to evacuation/cancel cancels it (SIGINT to
 * xlmig, which leaves every VM not yet moved on this host).  One
 * evacuation at a time: a request while one runs is answered in
 * evacuation/error and otherwise ignored.
 *
 * --once: handle one request, then exit with xlmig's exit status (for
 * scripts and the Xen lab's test).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include "libxlmig.h"

#include "evacuate/xs_status.h"

#define MAX_TARGETS 32
#define MAX_EXTRA 64

typedef struct watcher {
    const char *prefix;
    char host[256];
    const char *xlmig;
    bool once;
    char **extra; /* borrowed from argv */
    int nr_extra;
    struct xs_handle *xsh;
    lxm__xs_status *st;
    char last_id[128]; /* last request started */
    pid_t child;       /* -1: none */
    char child_id[128];
} watcher;

static volatile sig_atomic_t got_term;
static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;

    if (sig == SIGTERM || sig == SIGINT)
        got_term = 1;
    if (write(sig_pipe[1], &c, 1) < 0) {
        /* the pipe is full: a wakeup is pending anyway */
    }
    errno = saved;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    char when[32];
    time_t t = time(NULL);

    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
    fprintf(stderr, "xlmig-hawatch %s: ", when);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* prefix/evacuation/rel, read; "" when absent.  Returns a malloc'd
 * string or NULL (out of memory). */
static char *read_key(watcher *w, const char *rel)
{
    char path[LXM__XS_PATH_MAX];
    unsigned int len;
    char *v;

    snprintf(path, sizeof(path), "%s/evacuation/%s", w->prefix, rel);
    v = xs_read(w->xsh, XBT_NULL, path, &len);
    if (!v)
        return strdup("");
    return v;
}

static void set_key(watcher *w, const char *rel, const char *value)
{
    char path[LXM__XS_PATH_MAX];

    snprintf(path, sizeof(path), "evacuation/%s", rel);
    if (lxm__xs_status_set(w->st, path, value))
        say("cannot write %s/%s", w->prefix, path);
}

static void start_evacuation(watcher *w, const char *id)
{
    char *reason = read_key(w, "request-reason");
    char *targets = read_key(w, "request-targets");
    char *argv[8 + 2 * MAX_TARGETS + MAX_EXTRA];
    char *tok, *save = NULL;
    int argc = 0, i, nt = 0;
    pid_t pid;

    if (!reason || !targets) {
        say("out of memory reading request %s", id);
        goto out;
    }
    argv[argc++] = (char *)w->xlmig;
    argv[argc++] = (char *)"host-evacuate";
    argv[argc++] = (char *)"--json-events";
    for (tok = strtok_r(targets, " \t,", &save); tok;
         tok = strtok_r(NULL, " \t,", &save)) {
        if (++nt > MAX_TARGETS) {
            set_key(w, "error", "request-targets: more than 32 hosts");
            say("request %s refused: more than %d targets", id, MAX_TARGETS);
            goto out;
        }
        argv[argc++] = (char *)"--to";
        argv[argc++] = tok;
    }
    for (i = 0; i < w->nr_extra; i++)
        argv[argc++] = w->extra[i];
    argv[argc++] = w->host;
    argv[argc] = NULL;

    snprintf(w->last_id, sizeof(w->last_id), "%s", id);
    /* what an HA daemon sees until xlmig publishes its own state */
    if (lxm__xs_status_begin(w->st, w->host, id, reason, 0, 0) ||
        lxm__xs_status_set(w->st, "evacuation/state", "planning"))
        say("cannot publish the start of request %s", id);

    pid = fork();
    if (pid < 0) {
        say("fork: %s", strerror(errno));
        lxm__xs_status_end(w->st, "failed", 127, "xlmig-hawatch: fork failed");
        goto out;
    }
    if (pid == 0) {
        setenv("LXM_XS_REQUEST_ID", id, 1);
        setenv("LXM_XS_REASON", reason, 1);
        setenv("LXM_XS_PREFIX", w->prefix, 1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        execv(w->xlmig, argv);
        fprintf(stderr, "xlmig-hawatch: cannot run %s: %s\n", w->xlmig,
                strerror(errno));
        _exit(127);
    }
    w->child = pid;
    snprintf(w->child_id, sizeof(w->child_id), "%s", id);
    say("request %s (%s): evacuating %s, pid %d", id,
        reason[0] ? reason : "no reason given", w->host, (int)pid);
out:
    free(reason);
    free(targets);
}

/* The child ended: make sure state says so. */
static void child_ended(watcher *w, int status)
{
    char *state = read_key(w, "state");
    char *rid = read_key(w, "request-id");
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char err[160];
    bool final;

    final = state && rid && !strcmp(rid, w->child_id) &&
            (!strcmp(state, "done") || !strcmp(state, "failed") ||
             !strcmp(state, "cancelled"));
    if (!final) {
        if (WIFEXITED(status))
            snprintf(err, sizeof(err),
                     "xlmig exited with status %d before "
                     "it reported a result",
                     code);
        else
            snprintf(err, sizeof(err), "xlmig was killed by signal %d",
                     WTERMSIG(status));
        lxm__xs_status_end(w->st, code == 0 ? "done" : "failed", code, err);
    }
    say("request %s finished: exit status %d (%s)", w->child_id, code,
        final ? state : "state set by the watcher");
    w->child = -1;
    free(state);
    free(rid);
}

static void on_watch(watcher *w, const char *path)
{
    char *v;
    const char *rel = strrchr(path, '/');

    rel = rel ? rel + 1 : path;
    if (!strcmp(rel, "request")) {
        v = read_key(w, "request");
        if (!v || !v[0] || !strcmp(v, w->last_id)) {
            free(v);
            return;
        }
        if (w->child > 0) {
            say("request %s ignored: request %s is still running", v,
                w->child_id);
            set_key(w, "error", "a request arrived while another ran");
            snprintf(w->last_id, sizeof(w->last_id), "%s", v);
        } else {
            start_evacuation(w, v);
        }
        free(v);
    } else if (!strcmp(rel, "cancel")) {
        v = read_key(w, "cancel");
        if (v && w->child > 0 && v[0] && !strcmp(v, w->child_id)) {
            say("request %s: cancel asked; stopping xlmig", w->child_id);
            kill(w->child, SIGINT);
        }
        free(v);
    }
}

static int watch_loop(watcher *w)
{
    struct pollfd pfd[2];
    unsigned int n;
    char **ev, buf[64], path[LXM__XS_PATH_MAX];
    int status, rc = 0;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/evacuation/request", w->prefix);
    if (!xs_watch(w->xsh, path, "request"))
        goto watch_fail;
    snprintf(path, sizeof(path), "%s/evacuation/cancel", w->prefix);
    if (!xs_watch(w->xsh, path, "cancel"))
        goto watch_fail;

    for (;;) {
        if (got_term) {
            if (w->child > 0) {
                say("stopping: cancelling request %s first", w->child_id);
                kill(w->child, SIGINT);
                if (waitpid(w->child, &status, 0) == w->child)
                    child_ended(w, status);
            }
            return rc;
        }
        pfd[0].fd = xs_fileno(w->xsh);
        pfd[0].events = POLLIN;
        pfd[1].fd = sig_pipe[0];
        pfd[1].events = POLLIN;
        if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
            say("poll: %s", strerror(errno));
            return 1;
        }
        if (pfd[1].revents & POLLIN) {
            while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
                ;
        }
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == w->child) {
                child_ended(w, status);
                rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
                if (w->once)
                    return rc;
            }
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            while ((ev = xs_check_watch(w->xsh)) != NULL) {
                (void)n;
                on_watch(w, ev[XS_WATCH_PATH]);
                free(ev);
            }
            if (errno != EAGAIN) {
                say("xenstore connection lost: %s", strerror(errno));
                return 1;
            }
        }
    }

watch_fail:
    say("cannot watch %s: %s", path, strerror(errno));
    return 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xlmig-hawatch [--prefix P] [--host NAME] [--xlmig PATH]"
            " [--once] [--log FILE]\n"
            "                     [-- XLMIG-HOST-EVACUATE-OPTIONS...]\n"
            "  --prefix P    xenstore prefix (default %s)\n"
            "  --host NAME   this host's name in the pool file (default"
            " the hostname)\n"
            "  --xlmig PATH  the xlmig to run (default xlmig on PATH:"
            " /usr/bin/xlmig)\n"
            "  --once        handle one request, exit with xlmig's"
            " status\n"
            "  --log FILE    append messages to FILE instead of stderr\n",
            LXM__XS_PREFIX);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "prefix", required_argument, NULL, 'p' },
        { "host", required_argument, NULL, 'H' },
        { "xlmig", required_argument, NULL, 'x' },
        { "once", no_argument, NULL, 'o' },
        { "log", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    watcher w = { .prefix = LXM__XS_PREFIX,
                  .xlmig = "/usr/bin/xlmig",
                  .child = -1 };
    struct sigaction sa;
    int c, rc = 1, fd;
    char *id = NULL;

    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            w.prefix = optarg;
            break;
        case 'H':
            snprintf(w.host, sizeof(w.host), "%s", optarg);
            break;
        case 'x':
            w.xlmig = optarg;
            break;
        case 'o':
            w.once = true;
            break;
        case 'l':
            fd = open(optarg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (fd < 0 || dup2(fd, 2) < 0) {
                fprintf(stderr, "xlmig-hawatch: --log %s: %s\n", optarg,
                        strerror(errno));
                return 2;
            }
            close(fd);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    w.extra = argv + optind;
    w.nr_extra = argc - optind;
    if (w.nr_extra > MAX_EXTRA) {
        fprintf(stderr, "xlmig-hawatch: more than %d xlmig options\n",
                MAX_EXTRA);
        return 2;
    }
    if (w.prefix[0] != '/' || strlen(w.prefix) > 128) {
        fprintf(stderr, "xlmig-hawatch: --prefix must be an absolute "
                        "xenstore path of at most 128 characters\n");
        return 2;
    }
    if (!w.host[0] && gethostname(w.host, sizeof(w.host) - 1) < 0) {
        fprintf(stderr, "xlmig-hawatch: gethostname: %s\n", strerror(errno));
        return 2;
    }
    if (access(w.xlmig, X_OK) < 0) {
        fprintf(stderr, "xlmig-hawatch: --xlmig %s: %s\n", w.xlmig,
                strerror(errno));
        return 2;
    }

    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "xlmig-hawatch: pipe: %s\n", strerror(errno));
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);

    w.xsh = xs_open(0);
    if (!w.xsh) {
        fprintf(stderr,
                "xlmig-hawatch: cannot connect to xenstored: %s "
                "(is this a Xen dom0 with xenstored running?)\n",
                strerror(errno));
        goto out;
    }
    if (lxm__xs_status_open(w.prefix, NULL, &w.st)) {
        fprintf(stderr, "xlmig-hawatch: cannot open xenstore for the "
                        "status keys\n");
        goto out;
    }
    /* A request already there was handled (or abandoned) by an earlier
     * watcher: only a new id starts an evacuation. */
    id = read_key(&w, "request");
    if (id)
        snprintf(w.last_id, sizeof(w.last_id), "%s", id);
    free(id);
    id = read_key(&w, "state");
    if (id && (!strcmp(id, "running") || !strcmp(id, "planning")))
        lxm__xs_status_end(w.st, "failed", 1,
                           "the watcher restarted during the evacuation");
    free(id);
    set_key(&w, "watcher", "ready");
    say("watching %s/evacuation/request for host %s", w.prefix, w.host);

    rc = watch_loop(&w);
    set_key(&w, "watcher", NULL);
out:
    lxm__xs_status_close(w.st);
    if (w.xsh)
        xs_close(w.xsh);
    return rc;
}
