/*
 * agentutil.c - sim xlmigd agents for the end-to-end suites (e2e,
 * evacuate_cli, evacuate_sched) and recursive removal of temporary
 * directories.
 *
 * Entry points (declared in test.h): lxm_test_xlmigd_path,
 * lxm_test_rm_rf, lxm_test_wait_pid, lxm_test_agent_init,
 * lxm_test_agent_start, lxm_test_agent_stop, lxm_test_agent_kill,
 * lxm_test_agent_log_tail.
 *
 * An agent is `xlmigd --backend sim --foreground` with its own state
 * dir, control socket, ready file and log under one directory, listening
 * on 127.0.0.1:0.  It dies with the test process (PR_SET_PDEATHSIG).
 * Every wait is bounded.
 */
#define _GNU_SOURCE /* nftw */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define AGENT_READY_S 20
#define POLL_NS (20 * 1000 * 1000)

const char *lxm_test_xlmigd_path(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("LXM_XLMIGD"), *top;

    if (env && *env)
        return env;
    top = lxm_test_top();
    ck_assert_msg(top != NULL, "LXM_XLMIGD unset and no repository top");
    snprintf(path, sizeof(path), "%s/tools/xlmigd/xlmigd", top);
    return path;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void lxm_test_rm_rf(const char *dir)
{
    if (dir && dir[0])
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int lxm_test_wait_pid(pid_t pid, int seconds)
{
    struct timespec ts = { 0, POLL_NS };
    int status, i;

    for (i = 0; i < seconds * 50; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return status;
        if (r < 0)
            return -2;
        nanosleep(&ts, NULL);
    }
    return -1;
}

void lxm_test_agent_init(lxm_test_agent *a, const char *base, const char *name)
{
    memset(a, 0, sizeof(*a));
    ck_assert_msg(base && base[0], "no base directory");
    snprintf(a->name, sizeof(a->name), "%s", name);
    snprintf(a->dir, sizeof(a->dir), "%s/%s-XXXXXX", base, name);
    ck_assert_ptr_nonnull(mkdtemp(a->dir));
    snprintf(a->state, sizeof(a->state), "%s/state", a->dir);
    snprintf(a->control, sizeof(a->control), "%s/ctl.sock", a->dir);
    snprintf(a->ready, sizeof(a->ready), "%s/ready", a->dir);
    snprintf(a->log, sizeof(a->log), "%s/agent.log", a->dir);
}

const char *lxm_test_agent_log_tail(const lxm_test_agent *a)
{
    static char buf[2048];
    FILE *f = fopen(a->log, "r");
    long size;
    size_t n;

    buf[0] = '\0';
    if (!f)
        return buf;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0,
          SEEK_SET);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* In the child: exec the agent; never returns. */
static void agent_exec(const lxm_test_agent *a, const char *bin,
                       const char *fault, const char *sim_memory)
{
    const char *argv[24];
    int n = 0, i, fd;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    fd = open(a->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    if (fault)
        setenv("LXM_FAULT", fault, 1);
    else
        unsetenv("LXM_FAULT");
    argv[n++] = bin;
    argv[n++] = "--backend";
    argv[n++] = "sim";
    argv[n++] = "--foreground";
    argv[n++] = "--state-dir";
    argv[n++] = a->state;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--control";
    argv[n++] = a->control;
    argv[n++] = "--ready-file";
    argv[n++] = a->ready;
    argv[n++] = "--hostname";
    argv[n++] = a->name;
    if (a->config[0]) {
        argv[n++] = "--config";
        argv[n++] = a->config;
    }
    for (i = 0; i < 4 && a->extra[i]; i++)
        argv[n++] = a->extra[i];
    if (sim_memory) {
        argv[n++] = "--sim-memory";
        argv[n++] = sim_memory;
    }
    argv[n] = NULL;
    execv(bin, (char *const *)argv);
    _exit(127);
}

void lxm_test_agent_start(lxm_test_agent *a, const char *fault,
                          const char *sim_memory)
{
    const char *bin = lxm_test_xlmigd_path();
    struct timespec ts = { 0, POLL_NS };
    char line[256];
    FILE *f;
    pid_t pid;
    int i, status;

    ck_assert_msg(access(bin, X_OK) == 0, "xlmigd not found at %s", bin);
    ck_assert_int_eq(a->pid, 0);
    unlink(a->ready);
    fflush(NULL);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        agent_exec(a, bin, fault, sim_memory);
    a->pid = pid;

    for (i = 0; i < AGENT_READY_S * 50; i++) {
        if (access(a->ready, R_OK) == 0)
            break;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            a->pid = 0;
            ck_abort_msg("xlmigd %s exited (status 0x%x) before it was"
                         " ready; log:\n%s",
                         a->name, status, lxm_test_agent_log_tail(a));
        }
        nanosleep(&ts, NULL);
    }
    ck_assert_msg(i < AGENT_READY_S * 50, "xlmigd %s not ready in %d s:\n%s",
                  a->name, AGENT_READY_S, lxm_test_agent_log_tail(a));

    f = fopen(a->ready, "r");
    ck_assert_ptr_nonnull(f);
    a->listen[0] = '\0';
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "listen=", 7))
            snprintf(a->listen, sizeof(a->listen), "%s", line + 7);
        else if (!strncmp(line, "control=", 8))
            ck_assert_str_eq(line + 8, a->control);
    }
    fclose(f);
    ck_assert_msg(a->listen[0] && strncmp(a->listen, "127.0.0.1:", 10) == 0 &&
                      strcmp(a->listen, "127.0.0.1:0") != 0,
                  "ready file of %s: listen '%s'", a->name, a->listen);
}

void lxm_test_agent_kill(lxm_test_agent *a)
{
    if (a->pid > 0) {
        kill(a->pid, SIGKILL);
        waitpid(a->pid, NULL, 0);
        a->pid = 0;
    }
}

int lxm_test_agent_stop(lxm_test_agent *a, int seconds)
{
    int status;

    ck_assert_int_gt(a->pid, 0);
    kill(a->pid, SIGTERM);
    status = lxm_test_wait_pid(a->pid, seconds);
    if (status == -1) {
        lxm_test_agent_kill(a);
        ck_abort_msg("xlmigd %s did not stop in %d s", a->name, seconds);
    }
    a->pid = 0;
    return status;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
