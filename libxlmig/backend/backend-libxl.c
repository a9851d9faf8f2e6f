/*
 * backend-libxl.c - the backend for real Xen 4.17, through libxl (Debian's
 * libxen-dev).  The only file of libxlmig that includes <libxl.h>.
 *
 * Entry points: lxm__backend_libxl_ops (backend/backend.h) and, for the
 * tests, lxm__libxl_write_xl_header().
 *
 * Behaviour follows xl (tools/xl/xl_migrate.c, xl_saverestore.c,
 * xl_vmcontrol.c of Xen 4.17):
 *
 *   save     xl's save header (48 bytes + u32 length + the domain's
 *            libxl_domain_config JSON, c_info.domid 0, NUL included) into
 *            fd, then libxl_domain_suspend(LIBXL_SUSPEND_LIVE or 0) writes
 *            libxl stream v2 (libxc v3 inside) after it.  On failure the
 *            guest is resumed (suspend_cancel), except when it never
 *            answered the suspend request (ERROR_GUEST_TIMEDOUT: it was
 *            never suspended, as xl's failed_suspend).
 *   restore  read exactly the xl header and its optional data from fd,
 *            parse the config (libxl_domain_config_from_json), rename,
 *            then libxl_domain_create_restore(stream_version 2), which
 *            reads the rest up to the END record and leaves the domain
 *            paused.  On failure any domain created is destroyed.
 *
 * Each save runs on its own libxl_ctx, whose logger is a forwarder of
 * our own: libxc's progress reports ("Frames iteration N", "Domain now
 * suspended"; they come back from libxl-save-helper through that ctx's
 * logger) go to that save's progress callback, everything else to the
 * caller's logger.  One ctx per save also makes the save the only
 * synchronous operation on its ctx, which is what libxl_ao_abort(ctx,
 * NULL) needs (libxl.h: "It is possible to abort even an operation
 * which is being performed synchronously").  The abort itself is issued
 * by a small watcher thread per save, never from inside a libxl
 * callback.
 *
 * Threads and locks: the backend's own ctx (b->ctx) is used by any
 * thread (libxl locks it).  b->lock protects the list of saves in
 * progress; each save's slot->lock protects its abort flags.  Lock
 * order: b->lock, then slot->lock.  No libxl call and no callback is
 * made while holding either.
 *
 * libxl itself forks (hotplug scripts, the save helper, QEMU) and, in
 * its default SIGCHLD mode, installs a SIGCHLD handler while it has
 * children: that is libxl's doing, not ours.
 *
 * PVH: libxl_dominfo reports a PVH guest as HVM (the hypervisor's
 * flag); list() and domain_info() take the type from its config.
 *
 * Not done (see the report of issue 3): a per-domain CPUID featureset
 * (libxl has no call for it; zeros), on_boot (not a libxl notion: ""),
 * xl's autoballooning of dom0 before a restore (freemem()).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"

#ifdef LXM_HAVE_LIBXL_BACKEND

#include <libxl.h>
#include <libxl_utils.h>

#define UNSUPPORTED_MSG "libxl backend: cannot open libxl (is this a Xen dom0?)"
#define WATCH_MS 50

/* ------------------------------------------------------------------ */
/* Types                                                               */
/* ------------------------------------------------------------------ */

typedef struct save_slot save_slot;

/*
 * A xentoollog_logger that forwards messages to the caller's logger
 * and, for a save's ctx, turns libxc's progress reports into
 * lxm__save_progress.  vtable must stay first: libxl sees only it.
 */
typedef struct fwd_logger {
    xentoollog_logger vtable;
    /* Immutable after set-up. */
    xentoollog_logger *inner; /* borrowed, NULL ok */
    save_slot *slot;          /* NULL for the backend's own ctx */
    /* Set around libxl_ctx_alloc() in open: demote errors to debug. */
    bool quiet;
} fwd_logger;

/* A save in progress. */
struct save_slot {
    /* Immutable after set-up. */
    uint32_t domid;
    libxl_ctx *ctx;
    lxm__save_progress_fn *progress; /* NULL ok */
    void *opaque;
    bool live;
    fwd_logger log;
    pthread_t watcher;

    /* Owned by whichever thread runs libxl's callbacks for this ctx
     * (one at a time: libxl holds the ctx lock around them). */
    lxm__save_progress p;
    uint64_t pages_before; /* pages of completed rounds */
    uint64_t round_start_ns;

    /* Protected by lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool abort;      /* requested (save_abort or progress) */
    bool abort_sent; /* libxl_ao_abort accepted it */
    bool done;       /* the suspend call returned */

    /* Protected by the backend's lock. */
    save_slot *next;
};

struct lxm__backend {
    /* Immutable after open. */
    libxl_ctx *ctx;
    fwd_logger log;        /* b->ctx's logger */
    xentoollog_logger *lg; /* the caller's, borrowed, NULL ok */

    /* Protected by lock. */
    pthread_mutex_t lock;
    save_slot *saves;
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

/* libxl's ERROR_* to ours. */
static int map_rc(int r)
{
    switch (r) {
    case 0:
        return 0;
    case ERROR_NOMEM:
        return LXM_ERROR_NOMEM;
    case ERROR_INVAL:
        return LXM_ERROR_INVAL;
    case ERROR_DOMAIN_NOTFOUND:
    case ERROR_NOTFOUND:
        return LXM_ERROR_NOTFOUND;
    case ERROR_ABORTED:
        return LXM_ERROR_ABORTED;
    case ERROR_GUEST_TIMEDOUT:
    case ERROR_TIMEDOUT:
        return LXM_ERROR_TIMEOUT;
    case ERROR_NI:
    case ERROR_FEATURE_REMOVED:
        return LXM_ERROR_UNSUPPORTED;
    default:
        return LXM_ERROR_FAIL;
    }
}

static const char *xl_err(int r)
{
    const char *s = libxl_error_to_string((libxl_error)r);

    return s ? s : "unknown libxl error";
}

static void fwd_vmessage(xentoollog_logger *lg, xentoollog_level level,
                         int errnoval, const char *context, const char *fmt,
                         va_list al) LXM_PRINTF(5, 0);
static void fwd_vmessage(xentoollog_logger *lg, xentoollog_level level,
                         int errnoval, const char *context, const char *fmt,
                         va_list al)
{
    fwd_logger *f = (fwd_logger *)lg;

    if (!f->inner)
        return;
    if (f->quiet && level > XTL_DEBUG)
        level = XTL_DEBUG;
    f->inner->vmessage(f->inner, level, errnoval, context, fmt, al);
}

/* "Frames iteration N" (live), "Frames" (non-live) or NULL. */
static bool parse_frames(const char *doing, uint32_t *round_r)
{
    unsigned int n;

    if (!strcmp(doing, "Frames")) {
        *round_r = 1;
        return true;
    }
    if (sscanf(doing, "Frames iteration %u", &n) == 1) {
        *round_r = n + 1; /* libxc counts the first full pass as 0 */
        return true;
    }
    return false;
}

static void slot_request_abort(save_slot *s)
{
    pthread_mutex_lock(&s->lock);
    s->abort = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void fwd_progress(xentoollog_logger *lg, const char *context,
                         const char *doing_what, int percent,
                         unsigned long done, unsigned long total)
{
    fwd_logger *f = (fwd_logger *)lg;
    save_slot *s = f->slot;
    uint32_t round;
    bool report = false;

    if (s && doing_what) {
        if (!strcmp(doing_what, "Domain now suspended")) {
            s->p.suspended = true;
            report = true;
        } else if (parse_frames(doing_what, &round)) {
            if (round != s->p.round) {
                uint64_t now = now_ns();

                /* A new round: the last one's pages are its dirty set;
                 * rate = this round's pages over the last round's
                 * duration (libxc sends what got dirty meanwhile). */
                s->pages_before += s->p.pages_sent;
                if (s->p.round && round > 1) {
                    uint64_t ns = now - s->round_start_ns;

                    s->p.dirty_pages = total;
                    s->p.dirty_rate =
                        ns ? (uint64_t)total * 1000000000u / ns : 0;
                }
                s->p.round = round;
                s->round_start_ns = now;
            }
            s->p.pages_sent = done;
            s->p.pages_total = total;
            /* libxl writes to the fd itself: estimate from pages. */
            s->p.bytes_written =
                (s->pages_before + done) * (uint64_t)LXM_PAGE_SIZE;
            report = true;
        }
        if (report) {
            if (s->progress && s->progress(s->opaque, &s->p))
                slot_request_abort(s);
            return;
        }
    }
    if (f->inner && f->inner->progress)
        f->inner->progress(f->inner, context, doing_what, percent, done, total);
}

static void fwd_destroy(xentoollog_logger *lg)
{
    (void)lg; /* embedded, never freed through the vtable */
}

static void fwd_init(fwd_logger *f, xentoollog_logger *inner, save_slot *s)
{
    memset(f, 0, sizeof(*f));
    f->vtable.vmessage = fwd_vmessage;
    f->vtable.progress = fwd_progress;
    f->vtable.destroy = fwd_destroy;
    f->inner = inner;
    f->slot = s;
}

/* Write all of buf to fd (a pipe or socket, maybe non-blocking). */
static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t r = write(fd, p, len);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd pfd = { .fd = fd, .events = POLLOUT };

                (void)poll(&pfd, 1, -1);
                continue;
            }
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* Read exactly len bytes; 0, or -1 with errno (0 at EOF). */
static int read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t r = read(fd, p, len);

        if (r == 0) {
            errno = 0;
            return -1;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };

                (void)poll(&pfd, 1, -1);
                continue;
            }
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The xl save header                                                  */
/* ------------------------------------------------------------------ */

/*
 * As xl's save_domain_core_writeconfig(): magic, byte order, mandatory
 * flags STREAMv2 (|JSON with a config), optional flags 0, optional data
 * length 4 + config length, then the u32 config length and the config
 * with its NUL.  Fields in this host's byte order, as xl writes them.
 */
int lxm__libxl_write_xl_header(int fd, const char *config_json,
                               xentoollog_logger *lg)
{
    uint8_t hdr[LXM_XL_HEADER_LEN + 4];
    uint32_t v, config_len = 0, mandatory = LXM_XL_MANDATORY_STREAMV2;

    if (config_json) {
        size_t len = strlen(config_json) + 1;

        if (len > LXM__XL_OPTDATA_MAX - 4) {
            LXM_LOG_ERROR(lg,
                          "domain config of %zu bytes is too large for"
                          " the xl header",
                          len);
            return LXM_ERROR_INVAL;
        }
        config_len = (uint32_t)len;
        mandatory |= LXM_XL_MANDATORY_JSON;
    }
    memcpy(hdr, LXM_XL_MAGIC, LXM_XL_MAGIC_LEN);
    v = LXM_XL_BYTEORDER;
    memcpy(hdr + LXM__XL_OFF_BYTEORDER, &v, 4);
    memcpy(hdr + LXM__XL_OFF_MANDATORY, &mandatory, 4);
    v = 0;
    memcpy(hdr + LXM__XL_OFF_OPTIONAL, &v, 4);
    v = 4 + config_len;
    memcpy(hdr + LXM__XL_OFF_OPTLEN, &v, 4);
    memcpy(hdr + LXM_XL_HEADER_LEN, &config_len, 4);

    if (write_all(fd, hdr, sizeof(hdr)) < 0 ||
        (config_len && write_all(fd, config_json, config_len) < 0)) {
        LXM_LOG_ERRNO(lg, "cannot write the xl save header");
        return LXM_ERROR_IO;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* open / close                                                        */
/* ------------------------------------------------------------------ */

static void libxl_close(lxm__backend *b)
{
    if (!b)
        return;
    libxl_ctx_free(b->ctx);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static int libxl_open(const lxm__backend_opts *opts, lxm__backend **b_r)
{
    lxm__backend *b;
    xentoollog_logger *lg = opts ? opts->logger : NULL;
    int r;

    *b_r = NULL;
    b = calloc(1, sizeof(*b));
    if (!b)
        return LXM_ERROR_NOMEM;
    b->lg = lg;
    pthread_mutex_init(&b->lock, NULL);
    fwd_init(&b->log, lg, NULL);

    /* Without Xen, libxl complains at length; we say it once. */
    b->log.quiet = true;
    r = libxl_ctx_alloc(&b->ctx, LIBXL_VERSION, 0, &b->log.vtable);
    b->log.quiet = false;
    if (r || !b->ctx) {
        LXM_LOG_ERROR(lg, "%s", UNSUPPORTED_MSG);
        b->ctx = NULL;
        libxl_close(b);
        return LXM_ERROR_UNSUPPORTED;
    }
    *b_r = b;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Information                                                         */
/* ------------------------------------------------------------------ */

/* vendor_id from /proc/cpuinfo ("GenuineIntel"), or "". */
static void cpu_vendor(char *buf, size_t len)
{
    char line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");

    buf[0] = '\0';
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        char *colon, *v, *end;

        if (strncmp(line, "vendor_id", 9))
            continue;
        colon = strchr(line, ':');
        if (!colon)
            break;
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
            ;
        end = v + strlen(v);
        while (end > v && isspace((unsigned char)end[-1]))
            *--end = '\0';
        snprintf(buf, len, "%s", v);
        break;
    }
    fclose(f);
}

/* Restores in progress (xl's and ours) carry this suffix. */
static bool incoming_name(const char *name)
{
    static const char suffix[] = "--incoming";
    size_t n = strlen(name), s = sizeof(suffix) - 1;

    return n >= s && !strcmp(name + n - s, suffix);
}

static lxm__guest_kind kind_of(libxl_domain_type t)
{
    switch (t) {
    case LIBXL_DOMAIN_TYPE_HVM:
        return LXM__GUEST_HVM;
    case LIBXL_DOMAIN_TYPE_PVH:
        return LXM__GUEST_PVH;
    default:
        return LXM__GUEST_PV;
    }
}

/*
 * libxl_dominfo knows PV and HVM only (the hypervisor's flag): a PVH
 * guest is an HVM container there.  Its configuration says which.  For
 * list(); domain_info() reads the configuration anyway.
 */
static void refine_kind(lxm__backend *b, lxm__domain_info *info)
{
    libxl_domain_config cfg;

    if (info->kind != LXM__GUEST_HVM)
        return;
    libxl_domain_config_init(&cfg);
    if (!libxl_retrieve_domain_configuration(b->ctx, info->domid, &cfg, NULL))
        info->kind = kind_of(cfg.c_info.type);
    libxl_domain_config_dispose(&cfg);
}

/* Shut down for a suspend (what a save leaves), by dominfo.  A domain
 * that cannot be looked up counts as suspended (resume will say). */
static bool is_suspended(lxm__backend *b, uint32_t domid)
{
    libxl_dominfo d;
    bool susp = true;

    libxl_dominfo_init(&d);
    if (!libxl_domain_info(b->ctx, &d, domid))
        susp = d.shutdown && d.shutdown_reason == LIBXL_SHUTDOWN_REASON_SUSPEND;
    libxl_dominfo_dispose(&d);
    return susp;
}

/* Fill what libxl_dominfo says (name included). */
static void info_from_dominfo(lxm__backend *b, const libxl_dominfo *d,
                              lxm__domain_info *info)
{
    char *name;

    memset(info, 0, sizeof(*info));
    info->domid = d->domid;
    name = libxl_domid_to_name(b->ctx, d->domid);
    snprintf(info->name, sizeof(info->name), "%s", name ? name : "");
    free(name);
    snprintf(info->uuid, sizeof(info->uuid), LIBXL_UUID_FMT,
             LIBXL_UUID_BYTES(d->uuid));
    info->memory_bytes = d->current_memkb * 1024;
    info->vcpus = d->vcpu_online;
    info->kind = kind_of(d->domain_type);
    if (d->shutdown && d->shutdown_reason == LIBXL_SHUTDOWN_REASON_SUSPEND)
        info->state = LXM__DOM_SUSPENDED;
    else if (d->paused)
        info->state = LXM__DOM_PAUSED;
    else
        info->state = LXM__DOM_RUNNING;
}

static int libxl_host_info(lxm__backend *b, lxm__host_info *info_r)
{
    const libxl_version_info *vi;
    libxl_physinfo pi;
    libxl_dominfo *list;
    int r, n, i;

    memset(info_r, 0, sizeof(*info_r));
    if (gethostname(info_r->hostname, sizeof(info_r->hostname) - 1) < 0)
        snprintf(info_r->hostname, sizeof(info_r->hostname), "localhost");
    snprintf(info_r->backend, sizeof(info_r->backend), "libxl");

    vi = libxl_get_version_info(b->ctx);
    if (!vi) {
        LXM_LOG_ERROR(b->lg, "libxl backend: cannot get the Xen version");
        return LXM_ERROR_FAIL;
    }
    info_r->xen_major = (uint16_t)vi->xen_version_major;
    info_r->xen_minor = (uint16_t)vi->xen_version_minor;
    snprintf(info_r->xen_extra, sizeof(info_r->xen_extra), "%s",
             vi->xen_version_extra ? vi->xen_version_extra : "");

    libxl_physinfo_init(&pi);
    r = libxl_get_physinfo(b->ctx, &pi);
    if (r) {
        LXM_LOG_ERROR(b->lg,
                      "libxl backend: cannot get host memory and"
                      " CPUs: %s",
                      xl_err(r));
        libxl_physinfo_dispose(&pi);
        return map_rc(r);
    }
    info_r->total_memory = pi.total_pages * (uint64_t)LXM_PAGE_SIZE;
    info_r->free_memory = pi.free_pages * (uint64_t)LXM_PAGE_SIZE;
    info_r->nr_cpus = pi.nr_cpus;
    for (i = 0; i < 8 && i < LXM__FEATURESET_WORDS; i++)
        info_r->featureset[i] = pi.hw_cap[i];
    libxl_physinfo_dispose(&pi);

    cpu_vendor(info_r->cpu_vendor, sizeof(info_r->cpu_vendor));

    list = libxl_list_domain(b->ctx, &n);
    if (list) {
        for (i = 0; i < n; i++) {
            if (list[i].domid != 0)
                info_r->nr_domains++;
        }
        libxl_dominfo_list_free(list, n);
    }
    return 0;
}

static int libxl_list(lxm__backend *b, lxm__domain_info **list_r, int *n_r)
{
    libxl_dominfo *list;
    lxm__domain_info *out;
    int n, i, k = 0;

    *list_r = NULL;
    *n_r = 0;
    list = libxl_list_domain(b->ctx, &n);
    if (!list) {
        LXM_LOG_ERROR(b->lg, "libxl backend: cannot list domains");
        return LXM_ERROR_FAIL;
    }
    out = calloc(n ? (size_t)n : 1, sizeof(*out));
    if (!out) {
        libxl_dominfo_list_free(list, n);
        return LXM_ERROR_NOMEM;
    }
    for (i = 0; i < n; i++) {
        if (list[i].domid == 0 || list[i].dying)
            continue;
        info_from_dominfo(b, &list[i], &out[k]);
        if (incoming_name(out[k].name))
            continue;
        refine_kind(b, &out[k]);
        k++;
    }
    libxl_dominfo_list_free(list, n);
    *list_r = out;
    *n_r = k;
    return 0;
}

/* By decimal domid or by name. */
static int resolve(lxm__backend *b, const char *name_or_id, uint32_t *domid_r)
{
    const char *p;
    char *end;
    unsigned long v;

    for (p = name_or_id; *p >= '0' && *p <= '9'; p++)
        ;
    if (*name_or_id && !*p) {
        errno = 0;
        v = strtoul(name_or_id, &end, 10);
        if (!errno && v < UINT32_MAX) {
            *domid_r = (uint32_t)v;
            return 0;
        }
    }
    if (libxl_name_to_domid(b->ctx, name_or_id, domid_r)) {
        LXM_LOG_ERROR(b->lg, "no domain named %s", name_or_id);
        return LXM_ERROR_NOTFOUND;
    }
    return 0;
}

static int libxl_domain_info_op(lxm__backend *b, const char *name_or_id,
                                lxm__domain_info *info_r)
{
    libxl_dominfo d;
    libxl_domain_config cfg;
    uint32_t domid;
    int rc, r;

    memset(info_r, 0, sizeof(*info_r));
    rc = resolve(b, name_or_id, &domid);
    if (rc)
        return rc;
    if (domid == 0) {
        LXM_LOG_ERROR(b->lg, "domain 0 is the control domain, not a guest");
        return LXM_ERROR_NOTFOUND;
    }

    libxl_dominfo_init(&d);
    r = libxl_domain_info(b->ctx, &d, domid);
    if (r) {
        LXM_LOG_ERROR(b->lg, "no domain %s (domid %" PRIu32 "): %s", name_or_id,
                      domid, xl_err(r));
        libxl_dominfo_dispose(&d);
        return r == ERROR_DOMAIN_NOTFOUND ? LXM_ERROR_NOTFOUND : map_rc(r);
    }
    info_from_dominfo(b, &d, info_r);
    libxl_dominfo_dispose(&d);

    /*
     * The refusal reasons come from the configuration.  A domain half
     * way through creation (a restore an agent crash interrupted) has
     * none yet: it still exists, with what dominfo says, so that it can
     * be found and destroyed; anything that needs its configuration
     * (a save) fails later with its own error.
     */
    libxl_domain_config_init(&cfg);
    r = libxl_retrieve_domain_configuration(b->ctx, domid, &cfg, NULL);
    if (r) {
        lxm__log(b->lg, XTL_WARN, -1,
                 "no configuration for domain %s (domid %" PRIu32
                 ", being created or destroyed?): %s",
                 info_r->name, domid, xl_err(r));
        libxl_domain_config_dispose(&cfg);
        return 0;
    }
    info_r->kind = kind_of(cfg.c_info.type); /* PVH: HVM in dominfo */
    info_r->nr_pci = (uint32_t)(cfg.num_pcidevs > 0 ? cfg.num_pcidevs : 0);
    info_r->nr_vusb = (uint32_t)((cfg.num_usbctrls > 0 ? cfg.num_usbctrls : 0) +
                                 (cfg.num_usbdevs > 0 ? cfg.num_usbdevs : 0));
    info_r->nomigrate = !libxl_defbool_is_default(cfg.b_info.disable_migrate) &&
                        libxl_defbool_val(cfg.b_info.disable_migrate);
    if (cfg.b_info.max_vcpus && !info_r->vcpus)
        info_r->vcpus = (uint32_t)cfg.b_info.max_vcpus;
    info_r->on_boot[0] = '\0'; /* not a libxl notion */
    libxl_domain_config_dispose(&cfg);
    return 0;
}

/* The config xl puts in its save header: retrieved, domid 0. */
static int config_json(lxm__backend *b, uint32_t domid, char **json_r)
{
    libxl_domain_config cfg;
    char *json;
    int r;

    *json_r = NULL;
    libxl_domain_config_init(&cfg);
    r = libxl_retrieve_domain_configuration(b->ctx, domid, &cfg, NULL);
    if (r) {
        LXM_LOG_ERROR(
            b->lg, "cannot retrieve the configuration of domid %" PRIu32 ": %s",
            domid, xl_err(r));
        libxl_domain_config_dispose(&cfg);
        return map_rc(r);
    }
    cfg.c_info.domid = 0; /* as xl without -p: a new domid at restore */
    json = libxl_domain_config_to_json(b->ctx, &cfg);
    libxl_domain_config_dispose(&cfg);
    if (!json) {
        LXM_LOG_ERROR(b->lg,
                      "cannot convert the configuration of domid %" PRIu32
                      " to JSON",
                      domid);
        return LXM_ERROR_FAIL;
    }
    *json_r = json;
    return 0;
}

static int libxl_domain_config_op(lxm__backend *b, uint32_t domid,
                                  char **json_r)
{
    return config_json(b, domid, json_r);
}

/* ------------------------------------------------------------------ */
/* save                                                                */
/* ------------------------------------------------------------------ */

/* Issues libxl_ao_abort from outside libxl when an abort is asked. */
static void *watcher_main(void *opaque)
{
    save_slot *s = opaque;

    pthread_mutex_lock(&s->lock);
    while (!s->done) {
        struct timespec ts;

        if (s->abort && !s->abort_sent) {
            int r;

            pthread_mutex_unlock(&s->lock);
            r = libxl_ao_abort(s->ctx, NULL);
            pthread_mutex_lock(&s->lock);
            /* ERROR_NOTFOUND: not started yet, or just finished; the
             * next tick tries again (or sees done). */
            if (r == 0 || r == ERROR_ABORTED)
                s->abort_sent = true;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WATCH_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void slot_free(save_slot *s)
{
    if (!s)
        return;
    libxl_ctx_free(s->ctx);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void saves_unlink(lxm__backend *b, save_slot *s)
{
    save_slot **pp;

    pthread_mutex_lock(&b->lock);
    for (pp = &b->saves; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
}

static int libxl_save(lxm__backend *b, uint32_t domid, int fd,
                      const lxm__save_params *params,
                      lxm__save_progress_fn *progress, void *opaque)
{
    lxm__save_params defaults;
    save_slot *s = NULL;
    char *json = NULL, *name = NULL;
    bool watching = false;
    int rc, r;

    if (!params) {
        lxm__save_params_init(&defaults);
        defaults.policy = LXM__PRECOPY_XEN;
        params = &defaults;
    }
    name = libxl_domid_to_name(b->ctx, domid);
    if (params->live && params->policy != LXM__PRECOPY_XEN) {
        LXM_LOG_ERROR(b->lg,
                      "cannot save domain %s (domid %" PRIu32 "): policy %s"
                      " needs a backend that owns the pre-copy loop (the"
                      " libxl backend runs libxc's: use policy xen)",
                      name ? name : "?", domid,
                      lxm__precopy_policy_name(params->policy));
        rc = LXM_ERROR_UNSUPPORTED;
        goto out;
    }

    rc = config_json(b, domid, &json);
    if (rc)
        goto out;

    s = calloc(1, sizeof(*s));
    if (!s) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    s->domid = domid;
    s->progress = progress;
    s->opaque = opaque;
    s->live = params->live;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    fwd_init(&s->log, b->lg, s);
    r = libxl_ctx_alloc(&s->ctx, LIBXL_VERSION, 0, &s->log.vtable);
    if (r) {
        LXM_LOG_ERROR(b->lg, "cannot save domain %s: libxl_ctx_alloc: %s",
                      name ? name : "?", xl_err(r));
        s->ctx = NULL;
        rc = map_rc(r);
        goto out;
    }

    /*
     * The stop-and-copy gate (backend.h): libxc's pre-copy loop runs
     * inside libxl_domain_suspend() with no hook before its final
     * pause, so this backend holds a slot for its whole save.
     */
    if (params->gate) {
        uint64_t t0 = now_ns();

        while ((rc = lxm__stopcopy_gate_take_for(params->gate, NULL, 100))) {
            s->p.gate_wait_ms = (now_ns() - t0) / 1000000u;
            if (s->progress && s->progress(s->opaque, &s->p)) {
                rc = LXM_ERROR_ABORTED;
                goto out;
            }
        }
        s->p.gate_wait_ms = (now_ns() - t0) / 1000000u;
        s->p.gate_held = true;
        if (s->progress && s->progress(s->opaque, &s->p)) {
            rc = LXM_ERROR_ABORTED;
            goto out;
        }
    }

    /* Before anything is written: from here the guest may be touched. */
    rc = lxm__libxl_write_xl_header(fd, json, b->lg);
    if (rc)
        goto out;

    if (pthread_create(&s->watcher, NULL, watcher_main, s) == 0) {
        watching = true;
        pthread_setname_np(s->watcher, "lxm-libxl-abort");
    }
    pthread_mutex_lock(&b->lock);
    s->next = b->saves;
    b->saves = s;
    pthread_mutex_unlock(&b->lock);

    r = libxl_domain_suspend(s->ctx, domid, fd,
                             params->live ? LIBXL_SUSPEND_LIVE : 0, NULL);

    saves_unlink(b, s);
    pthread_mutex_lock(&s->lock);
    s->done = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (watching)
        pthread_join(s->watcher, NULL);

    if (r == 0) {
        rc = 0;
        goto out;
    }
    rc = s->abort && r == ERROR_ABORTED ? LXM_ERROR_ABORTED : map_rc(r);
    if (rc == LXM_ERROR_FAIL)
        rc = LXM_ERROR_IO; /* mostly: the stream's reader went away */
    if (r == ERROR_GUEST_TIMEDOUT) {
        /* The guest never suspended: it still runs (xl's
         * failed_suspend does not resume either). */
        LXM_LOG_ERROR(b->lg,
                      "cannot save domain %s (domid %" PRIu32 "): the"
                      " guest did not answer the suspend request",
                      name ? name : "?", domid);
        goto out;
    }
    if (!is_suspended(b, domid)) {
        /* It failed in a live round (the reader went away, say): the
         * guest was never suspended and runs on; nothing to resume. */
        LXM_LOG_ERROR(b->lg,
                      "cannot save domain %s (domid %" PRIu32 "): %s; it"
                      " was not suspended yet and keeps running",
                      name ? name : "?", domid,
                      s->abort ? "aborted" : xl_err(r));
        goto out;
    }
    LXM_LOG_ERROR(b->lg,
                  "cannot save domain %s (domid %" PRIu32 "): %s; resuming"
                  " it",
                  name ? name : "?", domid, s->abort ? "aborted" : xl_err(r));
    r = libxl_domain_resume(b->ctx, domid, 1, NULL);
    if (r)
        LXM_LOG_ERROR(b->lg,
                      "domain %s (domid %" PRIu32 ") did not resume after"
                      " the failed save: %s",
                      name ? name : "?", domid, xl_err(r));
out:
    if (rc && s && s->p.gate_held)
        lxm__stopcopy_gate_release(params->gate); /* failed: not held */
    slot_free(s);
    free(json);
    free(name);
    return rc;
}

static int libxl_save_abort(lxm__backend *b, uint32_t domid)
{
    save_slot *s;
    int rc = LXM_ERROR_NOTFOUND;

    pthread_mutex_lock(&b->lock);
    for (s = b->saves; s; s = s->next) {
        if (s->domid == domid) {
            slot_request_abort(s);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (rc)
        LXM_LOG_ERROR(b->lg, "no save of domid %" PRIu32 " in progress", domid);
    return rc;
}

/* ------------------------------------------------------------------ */
/* restore                                                             */
/* ------------------------------------------------------------------ */

/* Read and check the xl header; *config_r: the JSON (caller frees). */
static int read_xl_header(lxm__backend *b, int fd, char **config_r)
{
    uint8_t hdr[LXM_XL_HEADER_LEN];
    uint32_t byteorder, mandatory, optlen, config_len;
    uint8_t *opt = NULL;
    int rc;

    *config_r = NULL;
    if (read_all(fd, hdr, sizeof(hdr)) < 0) {
        LXM_LOG_ERROR(b->lg, "restore: cannot read the xl header: %s",
                      errno ? strerror(errno) : "end of stream");
        return errno ? LXM_ERROR_IO : LXM_ERROR_STREAM_TRUNCATED;
    }
    if (memcmp(hdr, LXM_XL_MAGIC, LXM_XL_MAGIC_LEN)) {
        LXM_LOG_ERROR(b->lg, "restore: offset 0: not an xl save stream"
                             " (bad magic)");
        return LXM_ERROR_STREAM_MAGIC;
    }
    memcpy(&byteorder, hdr + LXM__XL_OFF_BYTEORDER, 4);
    memcpy(&mandatory, hdr + LXM__XL_OFF_MANDATORY, 4);
    memcpy(&optlen, hdr + LXM__XL_OFF_OPTLEN, 4);
    if (byteorder != LXM_XL_BYTEORDER) {
        LXM_LOG_ERROR(b->lg,
                      "restore: offset %u: byte order 0x%08" PRIx32
                      " is not this host's",
                      LXM__XL_OFF_BYTEORDER, byteorder);
        return LXM_ERROR_STREAM_ENDIAN;
    }
    if (mandatory & ~LXM__XL_MANDATORY_ALL) {
        LXM_LOG_ERROR(b->lg,
                      "restore: offset %u: unknown mandatory flags"
                      " 0x%08" PRIx32,
                      LXM__XL_OFF_MANDATORY, mandatory);
        return LXM_ERROR_STREAM_RESERVED;
    }
    if (!(mandatory & LXM_XL_MANDATORY_STREAMV2) ||
        !(mandatory & LXM_XL_MANDATORY_JSON)) {
        LXM_LOG_ERROR(b->lg,
                      "restore: offset %u: need a stream v2 with a"
                      " JSON config (flags 0x%08" PRIx32 ")",
                      LXM__XL_OFF_MANDATORY, mandatory);
        return LXM_ERROR_UNSUPPORTED;
    }
    if (optlen < 4 || optlen > LXM__XL_OPTDATA_MAX) {
        LXM_LOG_ERROR(b->lg,
                      "restore: offset %u: optional data length %" PRIu32
                      " out of range (4..%u)",
                      LXM__XL_OFF_OPTLEN, optlen, LXM__XL_OPTDATA_MAX);
        return LXM_ERROR_STREAM_RECORD;
    }
    opt = malloc(optlen);
    if (!opt)
        return LXM_ERROR_NOMEM;
    if (read_all(fd, opt, optlen) < 0) {
        LXM_LOG_ERROR(b->lg, "restore: cannot read the xl optional data: %s",
                      errno ? strerror(errno) : "end of stream");
        rc = errno ? LXM_ERROR_IO : LXM_ERROR_STREAM_TRUNCATED;
        goto out;
    }
    memcpy(&config_len, opt, 4);
    if (config_len == 0 || config_len > optlen - 4 ||
        opt[4 + config_len - 1] != '\0' ||
        memchr(opt + 4, '\0', config_len - 1)) {
        LXM_LOG_ERROR(b->lg,
                      "restore: offset %u: config length %" PRIu32
                      " does not fit the optional data (%" PRIu32
                      " bytes) or is not one NUL-terminated string",
                      LXM_XL_HEADER_LEN, config_len, optlen);
        rc = LXM_ERROR_STREAM_RECORD;
        goto out;
    }
    /* The config becomes the buffer itself: move it to the front. */
    memmove(opt, opt + 4, config_len);
    *config_r = (char *)opt;
    opt = NULL;
    rc = 0;
out:
    free(opt);
    return rc;
}

static int libxl_restore(lxm__backend *b, int fd, const char *name,
                         uint32_t *domid_r)
{
    libxl_domain_config cfg;
    libxl_domain_restore_params params;
    uint32_t domid = INVALID_DOMID;
    char *json = NULL;
    int rc, r;

    *domid_r = INVALID_DOMID;
    libxl_domain_config_init(&cfg);
    libxl_domain_restore_params_init(&params);

    rc = read_xl_header(b, fd, &json);
    if (rc)
        goto out;
    r = libxl_domain_config_from_json(b->ctx, &cfg, json);
    if (r) {
        LXM_LOG_ERROR(b->lg,
                      "restore: the stream's domain config is not"
                      " valid libxl JSON: %s",
                      xl_err(r));
        rc = LXM_ERROR_STREAM_RECORD;
        goto out;
    }
    if (name) {
        char *copy = strdup(name);

        if (!copy) {
            rc = LXM_ERROR_NOMEM;
            goto out;
        }
        free(cfg.c_info.name);
        cfg.c_info.name = copy;
    }
    /* As xl: a saved domid that is not a valid guest's means "any". */
    if (!libxl_domid_valid_guest(cfg.c_info.domid))
        cfg.c_info.domid = INVALID_DOMID;

    params.checkpointed_stream = LIBXL_CHECKPOINTED_STREAM_NONE;
    params.stream_version = 2;
    r = libxl_domain_create_restore(b->ctx, &cfg, &domid, fd, -1, &params, NULL,
                                    NULL);
    if (r) {
        LXM_LOG_ERROR(b->lg, "cannot restore domain %s: %s",
                      cfg.c_info.name ? cfg.c_info.name : "?", xl_err(r));
        rc = map_rc(r);
        if (rc == LXM_ERROR_FAIL)
            rc = LXM_ERROR_IO;
        /* libxl destroys what it half-made, except perhaps when
         * aborted; make sure nothing remains. */
        if (domid != (uint32_t)INVALID_DOMID && libxl_domid_valid_guest(domid))
            (void)libxl_domain_destroy(b->ctx, domid, NULL);
        goto out;
    }
    *domid_r = domid;
    rc = 0;
out:
    free(json);
    libxl_domain_restore_params_dispose(&params);
    libxl_domain_config_dispose(&cfg);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Simple operations                                                   */
/* ------------------------------------------------------------------ */

static int op_result(lxm__backend *b, int r, const char *what, uint32_t domid)
{
    if (!r)
        return 0;
    LXM_LOG_ERROR(b->lg, "cannot %s domid %" PRIu32 ": %s", what, domid,
                  xl_err(r));
    return map_rc(r);
}

static int libxl_pause(lxm__backend *b, uint32_t domid)
{
    return op_result(b, libxl_domain_pause(b->ctx, domid, NULL), "pause",
                     domid);
}

static int libxl_unpause(lxm__backend *b, uint32_t domid)
{
    return op_result(b, libxl_domain_unpause(b->ctx, domid, NULL), "unpause",
                     domid);
}

static int libxl_resume(lxm__backend *b, uint32_t domid)
{
    return op_result(b, libxl_domain_resume(b->ctx, domid, 1, NULL), "resume",
                     domid);
}

static int libxl_destroy(lxm__backend *b, uint32_t domid)
{
    return op_result(b, libxl_domain_destroy(b->ctx, domid, NULL), "destroy",
                     domid);
}

static int libxl_rename(lxm__backend *b, uint32_t domid, const char *name)
{
    /* old_name NULL: whatever it is called now. */
    return op_result(b, libxl_domain_rename(b->ctx, domid, NULL, name),
                     "rename", domid);
}

const lxm__backend_ops lxm__backend_libxl_ops = {
    .name = "libxl",
    .open = libxl_open,
    .close = libxl_close,
    .host_info = libxl_host_info,
    .list = libxl_list,
    .domain_info = libxl_domain_info_op,
    .domain_config = libxl_domain_config_op,
    .save = libxl_save,
    .restore = libxl_restore,
    .save_abort = libxl_save_abort,
    .pause = libxl_pause,
    .unpause = libxl_unpause,
    .resume = libxl_resume,
    .destroy = libxl_destroy,
    .rename = libxl_rename,
    .memory_digest = NULL, /* no cheap way to read guest memory */
};

#else /* !LXM_HAVE_LIBXL_BACKEND */

/* Built without libxenlight: nothing here (ISO C wants a declaration). */
typedef int lxm__backend_libxl_absent;

#endif /* LXM_HAVE_LIBXL_BACKEND */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
