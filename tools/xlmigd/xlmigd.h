/*
 * xlmigd.h - private declarations of xlmigd, the per-host agent.
 *
 * xlmigd.c          main: options, daemonizing, listeners, accept
 *                   threads, connection threads, signals, shutdown
 * xlmigd_control.c  control requests from the CLI (REQUEST -> REPLY)
 * xlmigd_peer.c     incoming migrations (MIGRATE -> lxm__migrate_receive)
 *                   and the test-only fault injection (LXM_FAULT)
 *
 * Threads: the main thread waits for SIGINT/SIGTERM (blocked in every
 * thread, taken with sigwait); one accept thread per listening socket;
 * one detached thread per connection, counted in xlmigd.nr_conns.
 * Shutdown: stop accepting, shut down idle connections, cancel the
 * migrations this host sends, wait (bounded) for the connection threads,
 * close the backend.
 *
 * Lock order: xlmigd.lock, then xlmigd_conn.send_lock.  Neither is held
 * while calling into the backend or the migration engine.
 */
#ifndef XLMIGD_H
#define XLMIGD_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "libxlmig_internal.h"
#include "backend/backend.h"
#include "migrate/migrate.h"
#include "transport/proto.h"

/* Seconds shutdown waits for busy connections before it shuts them
 * down, and then again before it gives up on them. */
#define XLMIGD_STOP_GRACE_S 20
#define XLMIGD_STOP_FORCE_S 5

/* Per-frame network timeout on agent connections (ms). */
#define XLMIGD_CONN_TIMEOUT_MS 30000
/* A connection waiting for its next request is dropped after this. */
#define XLMIGD_IDLE_TIMEOUT_MS 600000

/*
 * Test-only fault injection, from the environment variable LXM_FAULT:
 * comma-separated "recv-crash-after=BYTES", "send-crash-after=BYTES",
 * "send-drop-after=BYTES", "send-corrupt-after=BYTES".  0 = off.
 * Immutable after startup.
 */
typedef struct xlmigd_fault {
    uint64_t recv_crash_after;   /* _exit(137) once a migration into this
                                * host received that many stream bytes */
    uint64_t send_crash_after;   /* _exit(137) once a migration from this
                                * host sent that many */
    uint64_t send_drop_after;    /* shut the peer connection down then */
    uint64_t send_corrupt_after; /* flip one payload byte of the first
                                  * compressed STREAM frame sent after
                                  * that many stream bytes */
} xlmigd_fault;

/* /etc/xlmig.conf (--config) and --codecs (xlmigd_config.c).
 * Immutable after startup. */
typedef struct xlmigd_config {
    bool loaded;               /* the file existed */
    char compress[32];         /* default of migrate's "compress": "auto" */
    bool auto_probe_same_host; /* auto-same-host = probe */
    const char *caps[8];       /* HELLO capabilities, NULL-terminated */
} xlmigd_config;

/* Read path (a missing file leaves the defaults).  Errors name
 * FILE:LINE in err. */
int xlmigd_config_load(const char *path, xlmigd_config *cfg, char *err,
                       size_t errlen);
/* --codecs "all" (NULL), "none", or "zlib,zstd,lz4,pages" -> cfg->caps. */
int xlmigd_codecs_parse(const char *list, xlmigd_config *cfg, char *err,
                        size_t errlen);

typedef struct xlmigd xlmigd;
typedef struct xlmigd_conn xlmigd_conn;

struct xlmigd_conn {
    /* Immutable after accept. */
    xlmigd *d;
    lxm__conn *c;  /* owned; freed by the connection thread */
    char peer[96]; /* "unix" or "127.0.0.1:4242" */
    bool control;  /* came in on the unix control socket */

    /* Protected by d->lock. */
    xlmigd_conn *next;              /* d->conns list */
    bool busy;                      /* serving a request: not shut down at
                                * once on stop */
    bool sending;                   /* running lxm__migrate_send */
    char mig_domain[LXM__NAME_MAX]; /* while sending: the domain asked
                                     * for (name or domid) */

    /* Written with __atomic stores (stop, progress), read by the engine. */
    lxm__migrate_cancel cancel;

    /* Serialises frames sent on c from progress callbacks (which run on
     * the engine's threads) and the final reply. */
    pthread_mutex_t send_lock;
    bool client_gone; /* protected by send_lock */
};

struct xlmigd {
    /* Immutable after setup. */
    const lxm__backend_ops *ops;
    lxm__backend *b;
    xentoollog_logger *lg;
    char hostname[LXM__NAME_MAX];
    char state_dir[PATH_MAX];
    char control_path[PATH_MAX];
    char listen_addr[128]; /* as bound (port 0 resolved) */
    uint16_t listen_port;
    bool is_sim;
    xlmigd_fault fault;
    /* Outgoing migrations' stop-and-copy gate (--stop-copy-slots);
     * NULL: none.  Thread-safe itself. */
    lxm__stopcopy_gate *gate;
    const char *xl_path; /* --xl-path: what xl-receive runs */
    xlmigd_config cfg;   /* --config, --codecs (issue 5) */

    /* Protected by lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when nr_conns drops */
    xlmigd_conn *conns;
    unsigned int nr_conns;
    bool stopping;
};

/* xlmigd.c: ask the main thread to stop (as SIGTERM does). */
void xlmigd_request_stop(xlmigd *d);

/* xlmigd_control.c: serve one REQUEST frame (f's payload is read
 * before anything else is received).  Returns 0, or non-zero when the
 * connection should be closed. */
int xlmigd_control_request(xlmigd_conn *xc, const lxm__frame *f);

/* xlmigd_peer.c: serve an incoming migration whose MIGRATE frame is f.
 * The connection is closed afterwards. */
/* Destroy domains left by incoming migrations this agent was doing when
 * it died (markers in <state-dir>/incoming/).  Call once after the
 * backend is open. */
void xlmigd_cleanup_incoming(xlmigd *d);
void xlmigd_peer_migrate(xlmigd_conn *xc, const lxm__frame *f);

/* xlmigd_xlrecv.c: serve REQUEST {"cmd":"xl-receive"}: run xl
 * migrate-receive for a stock `xl migrate -s "xlmig xl-transport"`.
 * Always returns 1 (the connection is used up). */
int xlmigd_xl_receive(xlmigd_conn *xc, yajl_val req);

/* xlmigd_peer.c: parse LXM_FAULT (NULL ok).  LXM_ERROR_INVAL with a
 * message on stderr for a bad spec. */
int xlmigd_fault_parse(const char *spec, xlmigd_fault *f);
/* The lxm__migrate_opts.on_stream_bytes hook; opaque: an xlmigd_hook. */
typedef struct xlmigd_hook {
    xlmigd *d;
    char dest[128]; /* send: the destination address */
    bool dropped;
    bool corrupted;
} xlmigd_hook;
void xlmigd_fault_hook(void *opaque, const char *side, uint64_t bytes);
/* The lxm__migrate_opts.on_stream_frame hook (send-corrupt-after). */
void xlmigd_fault_frame_hook(void *opaque, uint8_t *frame, size_t len,
                             uint64_t raw);

#endif /* XLMIGD_H */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
