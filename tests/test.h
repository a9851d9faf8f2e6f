/*
 * test.h - shared declarations of the Check test runner.
 *
 * One suite per module: each tests/test_<module>.c defines
 * lxm_test_<module>_suite() and runner.c adds it.  Helpers live in
 * testutil.c and agentutil.c (sim xlmigd agents).
 */
#ifndef LXM_TEST_H
#define LXM_TEST_H

#include <check.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "libxlmig_internal.h"

Suite *lxm_test_records_suite(void);
Suite *lxm_test_parse_suite(void);
Suite *lxm_test_reader_suite(void);
Suite *lxm_test_writer_suite(void);
Suite *lxm_test_stats_suite(void);
Suite *lxm_test_xen_streams_suite(void);
Suite *lxm_test_cli_suite(void);
Suite *lxm_test_transport_suite(void);
Suite *lxm_test_backend_libxl_suite(void);
Suite *lxm_test_migrate_suite(void);
Suite *lxm_test_precopy_suite(void);
Suite *lxm_test_sim_suite(void);
Suite *lxm_test_e2e_suite(void);
Suite *lxm_test_codec_suite(void);
Suite *lxm_test_xs_status_suite(void);
Suite *lxm_test_xltransport_suite(void);
Suite *lxm_test_evacuate_sched_suite(void);
Suite *lxm_test_evacuate_conf_suite(void);
Suite *lxm_test_evacuate_plan_suite(void);
Suite *lxm_test_evacuate_cli_suite(void);
Suite *lxm_test_gate_suite(void);
Suite *lxm_test_pagepass_suite(void);
Suite *lxm_test_rolling_upgrade_suite(void);
Suite *lxm_test_autocodec_suite(void);

/*
 * The suites whose every case needs ../shared; the runner asks before
 * adding them and counts their cases as skipped when it is absent.
 * Returns the shared xen-streams directory, or NULL.
 */
const char *lxm_test_shared_streams_dir(void);
/* Number of cases lxm_test_xen_streams_suite() registers. */
extern const int lxm_test_xen_streams_ncases;

/* An in-memory stream, grown by a writer sink. */
typedef struct lxm_test_buf {
    uint8_t *data;
    size_t len, cap;
} lxm_test_buf;

void lxm_test_buf_dispose(lxm_test_buf *b);
/* lxm_sink_write_fn appending to an lxm_test_buf (opaque). */
int lxm_test_buf_sink(void *opaque, const struct iovec *iov, int iovcnt);

/* Write a synthetic stream (see lxm__synth_opts) into *out. */
void lxm_test_synth(const lxm__synth_opts *o, lxm_stream_format format,
                    lxm_test_buf *out);

/*
 * Feed buf to a fresh reader in chunks of 'chunk' bytes (0 = all at
 * once).  Returns the reader's rc; *err_r (NULL ok) gets the error.
 */
int lxm_test_read_buf(const void *buf, size_t len, lxm_stream_format format,
                      unsigned int flags, size_t chunk, lxm_stream_event_fn *cb,
                      void *opaque, lxm_stream_error *err_r);

/* Write buf to a new temporary file; returns its path (caller frees,
 * caller unlinks). */
char *lxm_test_write_tmp(const void *buf, size_t len, const char *suffix);

/*
 * Xen's own verify-stream-v2 (from Debian's xen-utils-4.17, unpacked by
 * `make deps` under .cache/): run it on path with -f fmt ("xl",
 * "libxl", "libxc").  Returns its exit status; *out_r (NULL ok) gets
 * its stdout+stderr (caller frees).  Fails the current test when the
 * tool is missing: tests never silently pass without it.
 */
int lxm_test_verify_stream(const char *path, const char *fmt, bool verbose,
                           char **out_r);

/*
 * A xentoollog_logger capturing error-level messages: the first (the one
 * a failure is about) and the last, and how many.  Init before use.
 */
typedef struct lxm_test_logger {
    xentoollog_logger vtable;
    char first[512];
    char last[512];
    int errors;
} lxm_test_logger;

void lxm_test_logger_init(lxm_test_logger *c);

/* Path of the built xlmig binary (env LXM_XLMIG, set by the Makefile). */
const char *lxm_test_xlmig_path(void);
/* The checkout's top directory (LXM_TOP, else found from the cwd). */
const char *lxm_test_top(void);
/* Run a shell command line; *out_r gets stdout (caller frees); returns
 * the exit status (or -1). */
int lxm_test_run(const char *cmdline, char **out_r);
/* A whole file, NUL terminated (*len_r: its length, NULL ok); fails the
 * test when it cannot be read.  Caller frees. */
char *lxm_test_slurp(const char *path, size_t *len_r);

/* What a command printed and how it ended (lxm_test_cli_run). */
typedef struct lxm_test_cli {
    int status; /* exit status, -1: did not exit */
    char *out;  /* stdout, NUL terminated */
    char *err;  /* stderr, NUL terminated */
} lxm_test_cli;

/* Run a shell command line (redirections and pipes allowed) with its
 * stdin on /dev/null, capturing stdout and stderr. */
lxm_test_cli lxm_test_cli_run(const char *cmdline);
void lxm_test_cli_dispose(lxm_test_cli *r);

/* ---- sim agents and temporary directories (agentutil.c) ---- */

/* The xlmigd binary (env LXM_XLMIGD, else tools/xlmigd/xlmigd under the
 * top); fails the test when neither is known. */
const char *lxm_test_xlmigd_path(void);
/* Remove dir and everything under it (NULL or "" ok; errors ignored). */
void lxm_test_rm_rf(const char *dir);
/* Wait up to seconds for pid: its wait status, -1 if still running, -2
 * if waitpid failed. */
int lxm_test_wait_pid(pid_t pid, int seconds);

/*
 * `xlmigd --backend sim --foreground --listen 127.0.0.1:0` with its own
 * state dir, control socket, ready file and log under dir; it dies with
 * the test process.  Init, then optionally fill config/extra (or put
 * files in state), then start.
 */
typedef struct lxm_test_agent {
    char name[32];          /* --hostname */
    char dir[128];          /* BASE/NAME-XXXXXX, made by init */
    char state[PATH_MAX];   /* dir/state */
    char control[PATH_MAX]; /* dir/ctl.sock */
    char ready[PATH_MAX];   /* dir/ready */
    char log[PATH_MAX];     /* dir/agent.log: stdout and stderr */
    char listen[256];       /* from the ready file, after start */
    char config[PATH_MAX];  /* --config when not "" */
    const char *extra[4];   /* more options for the next start; NULL */
    pid_t pid;              /* 0: not running */
} lxm_test_agent;

/* Set the paths and make dir (a temporary under base). */
void lxm_test_agent_init(lxm_test_agent *a, const char *base, const char *name);
/* Start it (fault: LXM_FAULT, sim_memory: --sim-memory; NULL: none) and
 * wait (20 s at most) for its ready file; fills listen.  Fails the test
 * if it exits or is not ready in time. */
void lxm_test_agent_start(lxm_test_agent *a, const char *fault,
                          const char *sim_memory);
/* SIGTERM and wait up to seconds: the wait status.  Fails the test
 * (after SIGKILL) if it does not stop in time.  Must be running. */
int lxm_test_agent_stop(lxm_test_agent *a, int seconds);
/* SIGKILL and reap, if running. */
void lxm_test_agent_kill(lxm_test_agent *a);
/* The last 2 KiB of its log, for failure messages (static storage). */
const char *lxm_test_agent_log_tail(const lxm_test_agent *a);

#endif /* LXM_TEST_H */
