/*
 * backend-sim.c - the simulated hypervisor: the embedded default
 * backend on machines without Xen.
 *
 * Simulated domains have real memory (a file, mmap'd) and a workload
 * thread that dirties it; save() writes a genuine Xen 4.17 migration
 * stream of it (xl header + libxl v2 + libxc v3, what verify-stream-v2
 * accepts) with real pre-copy rounds under a policy (migrate/precopy.c),
 * and restore() builds a domain from any such stream.
 *
 * Entry points: lxm__backend_sim_ops (every op of backend.h),
 * lxm__sim_create(), lxm__sim_set_workload(), lxm__sim_dirty_pages().
 *
 * State directory (opts->state_dir), one per host:
 *   lock               flock()ed while a backend has the dir open
 *   host.json          {"hostname", "next_domid"}: host identity and
 *                      the next domid to hand out; optional overrides
 *                      of the host info (issue 6 pre-check tests):
 *                      "xen_version" ("4.16.2"), "cpu_vendor",
 *                      "featureset" [16 words], kept when rewritten
 *   dom-<domid>.json   one per domain: name, uuid, domid, memory_bytes,
 *                      vcpus, kind (pv/pvh/hvm), state (running, paused,
 *                      suspended, incoming), dirty_rate, working_set,
 *                      seed, nr_pci, nr_vusb, nomigrate, on_boot,
 *                      featureset[16], ha_protected
 *   dom-<domid>.mem    guest memory, pfn * 4096 at offset pfn * 4096;
 *                      sparse: zero pages are holes (ftruncate)
 *   dom-<domid>.extra  pages outside that memory, when a restored stream
 *                      had any (HVM/PVH special pages just below 4 GiB):
 *                      their pfns and contents (sim-extra.h)
 * JSON and .extra files are written to a .tmp file and renamed over the
 * old one.
 *
 * Life cycle of a domain:
 *   sim_create: INCOMING (filling memory) -> RUNNING
 *   restore:    INCOMING (until the stream's END) -> PAUSED
 *   pause/unpause: RUNNING <-> PAUSED
 *   save:       RUNNING -> (stop-and-copy) SUSPENDED; on failure back
 *               to what it was.  A PAUSED domain is saved non-live.
 *               While a save runs, pause/unpause/resume/destroy and
 *               workload changes are refused (LXM_ERROR_STATE)
 *   resume:     SUSPENDED -> RUNNING;  destroy: any state, not saving
 * At open (an xlmigd restart): RUNNING domains run again; INCOMING ones
 * were half received and are deleted; SUSPENDED ones resume, unless
 * their name ends in "--migratedaway" (the migration engine renamed
 * them just before the commit: the VM may be running on the other host,
 * so they stay suspended for a human to decide).
 *
 * restore() reads its fd in 1 MiB chunks and ignores whatever follows
 * the stream's END (the engine feeds it through a pipe of its own).
 * Pages below the configured memory size go to the memory file; pages
 * above it (real Xen HVM/PVH saves carry the special pages libxl puts
 * just below 4 GiB) go to a bounded per-domain table, the "extra pages"
 * (sim-extra.h: at most 4096 of them, pfns below 2^32; beyond either
 * bound the restore fails naming the pfn).  save() sends the extra
 * pages after the memory in its first round and again in the
 * stop-and-copy round, so every round stays in ascending pfn order;
 * memory_digest() hashes them after the memory, in pfn order.  A
 * domain created by sim_create has none.
 *
 * Host: "GenuineIntel", a fixed featureset, Xen "4.17.0-sim",
 * total memory opts->sim_host_memory (0 = 16 GiB), free memory = total
 * minus every domain's memory (its configured size; extra pages, at
 * most 16 MiB a domain, are not counted).
 *
 * The workload: one thread per domain ("sim-wl-<domid>") that, while
 * the domain is RUNNING, dirties dirty_rate pages a second in 1 ms
 * ticks, pseudo-randomly in the first working_set bytes: it changes
 * their contents and sets their bits in the log-dirty bitmap (atomic
 * OR; the saver collects with atomic exchange).  Of 16 writes, 13
 * change one 64-byte line, one writes a log line (64-160 bytes of
 * text), one replaces the page with new text and one zeroes it (see
 * wl_dirty()).  Otherwise it parks on its condition variable.
 *
 * Threads and locks.  Lock order: b->lock, then d->wl_lock.
 *   b->lock     the domain table and every domain's mutable fields
 *               (name, state, saving, workload settings, refs); taken
 *               for short sections only: never while writing a stream,
 *               reading one, filling memory or calling back.
 *   d->wl_lock  the workload's settings and guest memory writes: the
 *               workload modifies memory only under it; a live save
 *               copies a batch of pages under it while the workload
 *               runs; pausing takes it, so once pause returns memory is
 *               frozen.
 * A domain is freed when its last reference goes (the table holds one,
 * each operation borrowing it another); destroy() takes it out of the
 * table and deletes its files at once.  Giving its memory back (the
 * munmap() that frees the pages of the deleted file: about 0.2 s a GiB)
 * is left to the backend's reaper thread ("sim-reaper"), as Xen gives
 * a destroyed domain's pages back in the background (scrubbing): until
 * then that memory is "dying".  host_info() counts it as free (it is
 * coming back: a migration's pre-check must not refuse a VM because of
 * it) and a reservation that needs it waits for it (at most
 * SIM_REAP_WAIT_MS).  close() waits for the reaper to finish.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "backend/backend.h"
#include "backend/sim-extra.h"

#define SIM_DEFAULT_HOST_MEMORY (UINT64_C(16) << 30)
#define SIM_MEMORY_MAX (UINT64_C(1) << 40) /* per domain, 1 TiB */
#define SIM_VCPUS_MAX 128u
#define SIM_META_MAX (64u << 10) /* a metadata file's size cap */
#define SIM_TICK_NS 1000000u     /* workload tick, 1 ms */
#define SIM_BACKLOG_TICKS 20u    /* dirtying owed at most */
#define MIGRATEDAWAY_SUFFIX "--migratedaway"
#define SIM_MAX_ROUNDS 30u      /* precopy.c's default for max_rounds 0 */
#define GATE_SLICE_MS 50u       /* gate wait: progress/cancel checks */
#define SIM_REAP_WAIT_MS 30000u /* a reservation waits for dying memory */

static const uint32_t sim_featureset[LXM__FEATURESET_WORDS] = {
    0x178bfbff, 0xf6fa3203, 0x2c100800, 0x00000121, 0x009c47ab,
    0x00000000, 0x00000000, 0xbc000400, 0x00000000, 0x00000000,
};

typedef struct sim_dom sim_dom;

struct lxm__backend {
    /* Immutable after open. */
    xentoollog_logger *lg;
    char *dir;
    int lock_fd;
    char hostname[LXM__NAME_MAX];
    uint64_t total_memory;
    /* host.json overrides ("" / false: the defaults) */
    char host_xen[32];
    char host_vendor[16];
    uint32_t host_fs[LXM__FEATURESET_WORDS];
    bool host_fs_set;

    /* Protected by lock. */
    pthread_mutex_t lock;
    sim_dom *doms; /* ascending domid */
    uint32_t next_domid;
    /* Destroyed domains whose memory the reaper has still to give back
     * (linked by ->next, each holding one reference), and their size. */
    sim_dom *dying;
    uint64_t dying_bytes;
    bool reaper_quit;
    bool reaper_hold;         /* lxm__sim_reaper_hold() */
    pthread_cond_t reap_cond; /* CLOCK_MONOTONIC; dying changed */
    pthread_t reaper;
    bool reaper_started;
};

struct sim_dom {
    /* Immutable once in the table. */
    lxm__backend *b;
    uint32_t domid;
    char uuid[37];
    uint64_t memory_bytes, npages;
    uint32_t vcpus;
    lxm__guest_kind kind;
    uint64_t seed;
    uint32_t nr_pci, nr_vusb;
    bool nomigrate;
    char on_boot[16];
    uint32_t featureset[LXM__FEATURESET_WORDS];
    bool ha_protected;
    uint8_t *mem;    /* mmap of dom-<domid>.mem, npages pages */
    uint64_t *dirty; /* log-dirty bitmap, atomic access only */
    size_t dirty_words;

    /* Pages outside mem: filled by restore while INCOMING (nobody else
     * sees the domain), or loaded at open; read-only afterwards. */
    lxm__sim_extra extra;

    /* Protected by b->lock. */
    sim_dom *next;
    unsigned int refs;
    char name[LXM__NAME_MAX];
    lxm__dom_state state;
    bool saving;
    uint64_t dirty_rate, working_set;

    /* Any thread sets it (save_abort); the saver reads it.  Atomic. */
    int abort_save;

    /* The workload.  Protected by wl_lock (guest memory writes too). */
    pthread_mutex_t wl_lock;
    pthread_cond_t wl_cond;
    bool wl_run, wl_quit;
    uint64_t wl_rate;     /* pages/s */
    uint64_t wl_ws_pages; /* the hot set: pfns [0, wl_ws_pages) */
    uint64_t wl_t0, wl_done;
    lxm__rng wl_rng;
    /* Set before the thread starts, read after it is joined. */
    pthread_t wl_thread;
    bool wl_started;
};

/* ---- small helpers ----------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *state_name(lxm__dom_state s)
{
    switch (s) {
    case LXM__DOM_RUNNING:
        return "running";
    case LXM__DOM_PAUSED:
        return "paused";
    case LXM__DOM_SUSPENDED:
        return "suspended";
    case LXM__DOM_INCOMING:
        return "incoming";
    }
    return "unknown";
}

static int state_parse(const char *s, lxm__dom_state *st_r)
{
    static const lxm__dom_state all[] = { LXM__DOM_RUNNING, LXM__DOM_PAUSED,
                                          LXM__DOM_SUSPENDED,
                                          LXM__DOM_INCOMING };
    size_t i;

    for (i = 0; s && i < LXM_ARRAY_SIZE(all); i++)
        if (!strcmp(s, state_name(all[i]))) {
            *st_r = all[i];
            return 0;
        }
    return LXM_ERROR_INVAL;
}

static const char *kind_name(lxm__guest_kind k)
{
    return k == LXM__GUEST_PV ? "pv" : k == LXM__GUEST_HVM ? "hvm" : "pvh";
}

static int kind_parse(const char *s, lxm__guest_kind *k_r)
{
    if (!s)
        return LXM_ERROR_INVAL;
    if (!strcmp(s, "pv"))
        *k_r = LXM__GUEST_PV;
    else if (!strcmp(s, "pvh"))
        *k_r = LXM__GUEST_PVH;
    else if (!strcmp(s, "hvm"))
        *k_r = LXM__GUEST_HVM;
    else
        return LXM_ERROR_INVAL;
    return 0;
}

static bool name_ok(const char *name)
{
    size_t len = name ? strlen(name) : 0;

    return len > 0 && len < LXM__NAME_MAX && !strchr(name, '/') &&
           !strchr(name, '\n');
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && !strcmp(s + n - m, suffix);
}

/* "DIR/dom-<domid>.<ext>" into buf (PATH_MAX sized by callers). */
static void dom_path(const lxm__backend *b, uint32_t domid, const char *ext,
                     char *buf, size_t len)
{
    snprintf(buf, len, "%s/dom-%u.%s", b->dir, domid, ext);
}

static void make_uuid(lxm__rng *r, char out[37])
{
    uint8_t u[16];

    lxm__rng_fill(r, u, sizeof(u));
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
             u[11], u[12], u[13], u[14], u[15]);
}

static bool uuid_ok(const char *s)
{
    size_t i;

    if (!s || strlen(s) != 36)
        return false;
    for (i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? s[i] != '-'
                 : !((s[i] >= '0' && s[i] <= '9') ||
                     (s[i] >= 'a' && s[i] <= 'f') ||
                     (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    }
    return true;
}

/* ---- JSON files -------------------------------------------------- */

static void gen_str(yajl_gen g, const char *key, const char *val)
{
    yajl_gen_string(g, (const unsigned char *)key, strlen(key));
    yajl_gen_string(g, (const unsigned char *)val, strlen(val));
}

static void gen_int(yajl_gen g, const char *key, uint64_t val)
{
    yajl_gen_string(g, (const unsigned char *)key, strlen(key));
    yajl_gen_integer(g, (long long)val);
}

/* Write the generator's text to path, atomically. */
static int write_json_file(lxm__backend *b, yajl_gen g, const char *path)
{
    const unsigned char *buf;
    char tmp[PATH_MAX];
    size_t len;
    int fd = -1, rc, r;

    if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
        rc = LXM_ERROR_FAIL;
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        LXM_LOG_ERRNO(b->lg, "sim: cannot create %s", tmp);
        rc = LXM_ERROR_IO;
        goto out;
    }
    r = lxm__write_all(fd, buf, len);
    if (r < 0) {
        errno = -r;
        LXM_LOG_ERRNO(b->lg, "sim: cannot write %s", tmp);
        rc = LXM_ERROR_IO;
        goto out;
    }
    if (close(fd)) {
        fd = -1;
        LXM_LOG_ERRNO(b->lg, "sim: cannot write %s", tmp);
        rc = LXM_ERROR_IO;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path)) {
        LXM_LOG_ERRNO(b->lg, "sim: cannot rename %s to %s", tmp, path);
        rc = LXM_ERROR_IO;
        goto out;
    }
    rc = 0;

out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    return rc;
}

/* Read a whole small file, NUL terminated.  *text_r: caller frees. */
static int read_small_file(lxm__backend *b, const char *path, char **text_r)
{
    char *text = NULL;
    size_t len = 0;
    ssize_t r;
    int fd, rc;

    *text_r = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return LXM_ERROR_NOTFOUND;
        LXM_LOG_ERRNO(b->lg, "sim: cannot open %s", path);
        return LXM_ERROR_IO;
    }
    text = malloc(SIM_META_MAX + 1);
    if (!text) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    while (len < SIM_META_MAX) {
        r = read(fd, text + len, SIM_META_MAX - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            LXM_LOG_ERRNO(b->lg, "sim: cannot read %s", path);
            rc = LXM_ERROR_IO;
            goto out;
        }
        if (!r)
            break;
        len += (size_t)r;
    }
    if (len == SIM_META_MAX) {
        LXM_LOG_ERROR(b->lg, "sim: %s is larger than %u bytes", path,
                      SIM_META_MAX);
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    text[len] = '\0';
    *text_r = text;
    text = NULL;
    rc = 0;

out:
    free(text);
    close(fd);
    return rc;
}

static yajl_val jget(yajl_val v, const char *k1, const char *k2)
{
    const char *path[] = { k1, k2, NULL };

    return yajl_tree_get(v, path, yajl_t_any);
}

static const char *jstr(yajl_val v, const char *k1, const char *k2)
{
    yajl_val x = jget(v, k1, k2);

    return YAJL_IS_STRING(x) ? YAJL_GET_STRING(x) : NULL;
}

static bool ju64(yajl_val v, const char *k1, const char *k2, uint64_t *out)
{
    yajl_val x = jget(v, k1, k2);

    if (!YAJL_IS_INTEGER(x) || YAJL_GET_INTEGER(x) < 0)
        return false;
    *out = (uint64_t)YAJL_GET_INTEGER(x);
    return true;
}

/* Called with b->lock held. */
static int host_write(lxm__backend *b)
{
    char path[PATH_MAX];
    yajl_gen g = yajl_gen_alloc(NULL);
    int rc;

    if (!g)
        return LXM_ERROR_NOMEM;
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_map_open(g);
    gen_str(g, "hostname", b->hostname);
    gen_int(g, "next_domid", b->next_domid);
    if (b->host_xen[0])
        gen_str(g, "xen_version", b->host_xen);
    if (b->host_vendor[0])
        gen_str(g, "cpu_vendor", b->host_vendor);
    if (b->host_fs_set) {
        unsigned int i;

        yajl_gen_string(g, (const unsigned char *)"featureset", 10);
        yajl_gen_array_open(g);
        for (i = 0; i < LXM__FEATURESET_WORDS; i++)
            yajl_gen_integer(g, b->host_fs[i]);
        yajl_gen_array_close(g);
    }
    yajl_gen_map_close(g);
    snprintf(path, sizeof(path), "%s/host.json", b->dir);
    rc = write_json_file(b, g, path);
    yajl_gen_free(g);
    return rc;
}

/* Called with b->lock held. */
static int meta_write(lxm__backend *b, const sim_dom *d)
{
    char path[PATH_MAX];
    yajl_gen g = yajl_gen_alloc(NULL);
    unsigned int i;
    int rc;

    if (!g)
        return LXM_ERROR_NOMEM;
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_map_open(g);
    gen_str(g, "name", d->name);
    gen_str(g, "uuid", d->uuid);
    gen_int(g, "domid", d->domid);
    gen_int(g, "memory_bytes", d->memory_bytes);
    gen_int(g, "vcpus", d->vcpus);
    gen_str(g, "kind", kind_name(d->kind));
    gen_str(g, "state", state_name(d->state));
    gen_int(g, "dirty_rate", d->dirty_rate);
    gen_int(g, "working_set", d->working_set);
    gen_int(g, "seed", d->seed & INT64_MAX);
    gen_int(g, "nr_pci", d->nr_pci);
    gen_int(g, "nr_vusb", d->nr_vusb);
    yajl_gen_string(g, (const unsigned char *)"nomigrate", 9);
    yajl_gen_bool(g, d->nomigrate);
    gen_str(g, "on_boot", d->on_boot);
    yajl_gen_string(g, (const unsigned char *)"featureset", 10);
    yajl_gen_array_open(g);
    for (i = 0; i < LXM__FEATURESET_WORDS; i++)
        yajl_gen_integer(g, d->featureset[i]);
    yajl_gen_array_close(g);
    yajl_gen_string(g, (const unsigned char *)"ha_protected", 12);
    yajl_gen_bool(g, d->ha_protected);
    yajl_gen_map_close(g);
    dom_path(b, d->domid, "json", path, sizeof(path));
    rc = write_json_file(b, g, path);
    yajl_gen_free(g);
    return rc;
}

static void dom_unlink_files(lxm__backend *b, uint32_t domid)
{
    char path[PATH_MAX];

    dom_path(b, domid, "json", path, sizeof(path));
    unlink(path);
    dom_path(b, domid, "mem", path, sizeof(path));
    unlink(path);
    dom_path(b, domid, "extra", path, sizeof(path));
    unlink(path);
    dom_path(b, domid, "extra.tmp", path, sizeof(path));
    unlink(path);
}

/* ---- domains: allocation, memory, the table ----------------------- */

static sim_dom *dom_alloc(lxm__backend *b)
{
    sim_dom *d = calloc(1, sizeof(*d));
    pthread_condattr_t ca;

    if (!d)
        return NULL;
    d->b = b;
    d->refs = 1;
    pthread_mutex_init(&d->wl_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->wl_cond, &ca);
    pthread_condattr_destroy(&ca);
    memcpy(d->featureset, sim_featureset, sizeof(d->featureset));
    snprintf(d->on_boot, sizeof(d->on_boot), "start");
    lxm__sim_extra_init(&d->extra);
    return d;
}

/* Map (and with create, make) the memory file; allocate the bitmap. */
static int dom_map(lxm__backend *b, sim_dom *d, bool create)
{
    char path[PATH_MAX];
    struct stat st;
    int fd, rc;
    void *p;

    d->npages = d->memory_bytes / LXM_PAGE_SIZE;
    d->dirty_words = (size_t)((d->npages + 63) / 64);
    d->dirty = calloc(d->dirty_words ? d->dirty_words : 1, sizeof(uint64_t));
    if (!d->dirty)
        return LXM_ERROR_NOMEM;

    dom_path(b, d->domid, "mem", path, sizeof(path));
    fd =
        open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
    if (fd < 0) {
        LXM_LOG_ERRNO(b->lg, "sim: domain %u: cannot open %s", d->domid, path);
        return errno == ENOENT ? LXM_ERROR_NOTFOUND : LXM_ERROR_IO;
    }
    if (create) {
        if (ftruncate(fd, (off_t)d->memory_bytes)) {
            LXM_LOG_ERRNO(b->lg, "sim: domain %u: cannot size %s", d->domid,
                          path);
            rc = errno == ENOSPC || errno == EFBIG ? LXM_ERROR_NOSPACE
                                                   : LXM_ERROR_IO;
            goto out;
        }
    } else if (fstat(fd, &st) || (uint64_t)st.st_size != d->memory_bytes) {
        LXM_LOG_ERROR(b->lg, "sim: domain %u: %s is not %" PRIu64 " bytes",
                      d->domid, path, d->memory_bytes);
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    p = mmap(NULL, (size_t)d->memory_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
             fd, 0);
    if (p == MAP_FAILED) {
        LXM_LOG_ERRNO(b->lg, "sim: domain %u: cannot map %s", d->domid, path);
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    d->mem = p;
    rc = 0;

out:
    close(fd);
    return rc;
}

/* The workload thread must not be running (never started or joined). */
static void dom_free(sim_dom *d)
{
    if (!d)
        return;
    if (d->mem)
        munmap(d->mem, (size_t)d->memory_bytes);
    free(d->dirty);
    lxm__sim_extra_dispose(&d->extra);
    pthread_cond_destroy(&d->wl_cond);
    pthread_mutex_destroy(&d->wl_lock);
    free(d);
}

/* Insert in domid order.  b->lock held. */
static void table_insert(lxm__backend *b, sim_dom *d)
{
    sim_dom **pp = &b->doms;

    while (*pp && (*pp)->domid < d->domid)
        pp = &(*pp)->next;
    d->next = *pp;
    *pp = d;
}

/* b->lock held. */
static void table_remove(lxm__backend *b, sim_dom *d)
{
    sim_dom **pp = &b->doms;

    while (*pp && *pp != d)
        pp = &(*pp)->next;
    if (*pp)
        *pp = d->next;
    d->next = NULL;
}

/* b->lock held.  Any state, INCOMING included. */
static sim_dom *table_find_name(lxm__backend *b, const char *name)
{
    sim_dom *d;

    for (d = b->doms; d; d = d->next)
        if (!strcmp(d->name, name))
            return d;
    return NULL;
}

/* b->lock held.  Dying memory not included. */
static uint64_t table_used_memory(lxm__backend *b)
{
    uint64_t used = 0;
    sim_dom *d;

    for (d = b->doms; d; d = d->next)
        used += d->memory_bytes;
    return used;
}

/* b->lock held.  By domid, INCOMING excluded. */
static sim_dom *table_find_id(lxm__backend *b, uint32_t domid)
{
    sim_dom *d;

    for (d = b->doms; d; d = d->next)
        if (d->domid == domid && d->state != LXM__DOM_INCOMING)
            return d;
    return NULL;
}

/* ---- the workload ------------------------------------------------ */

/* Dirty n pages of the hot set.  wl_lock held. */
static void wl_dirty(sim_dom *d, uint64_t n)
{
    uint64_t ws = d->wl_ws_pages;

    while (n--) {
        uint64_t x = lxm__rng_next(&d->wl_rng);
        uint64_t pfn = (uint64_t)(((unsigned __int128)x * ws) >> 64);
        uint8_t *page = d->mem + pfn * LXM_PAGE_SIZE;
        uint32_t what = (uint32_t)(x & 15);

        if (what == 0) {
            /* A freed buffer. */
            memset(page, 0, LXM_PAGE_SIZE);
        } else if (what == 1) {
            /* A page of text written anew (a file read in). */
            lxm__fill_text_page(&d->wl_rng, page);
        } else if (what == 2) {
            /* A log line, 64-160 bytes over older ones (a ring). */
            size_t len = 64 + (size_t)((x >> 16) % 97);
            size_t off = (size_t)((x >> 24) % (LXM_PAGE_SIZE - len));

            lxm__fill_text(&d->wl_rng, page + off, len);
        } else {
            /* A cache line changed: counters, pointers, list heads. */
            lxm__rng_fill(&d->wl_rng, page + ((x >> 8) & 63) * 64, 64);
        }
        __atomic_fetch_or(&d->dirty[pfn / 64], UINT64_C(1) << (pfn % 64),
                          __ATOMIC_RELAXED);
    }
}

static void *wl_main(void *arg)
{
    sim_dom *d = arg;
    struct timespec ts;
    uint64_t now, due, n, cap;

    pthread_mutex_lock(&d->wl_lock);
    while (!d->wl_quit) {
        if (!d->wl_run || !d->wl_rate || !d->wl_ws_pages) {
            pthread_cond_wait(&d->wl_cond, &d->wl_lock);
            continue;
        }
        now = now_ns();
        due = (uint64_t)((unsigned __int128)(now - d->wl_t0) * d->wl_rate /
                         1000000000u);
        n = due - d->wl_done;
        cap = d->wl_rate * SIM_BACKLOG_TICKS / 1000u + 1;
        if (n > cap) {
            /* Fell behind (a long batch copy): forgive the backlog. */
            d->wl_done = due - cap;
            n = cap;
        }
        wl_dirty(d, n);
        d->wl_done += n;

        now += SIM_TICK_NS;
        ts.tv_sec = (time_t)(now / 1000000000u);
        ts.tv_nsec = (long)(now % 1000000000u);
        pthread_cond_timedwait(&d->wl_cond, &d->wl_lock, &ts);
    }
    pthread_mutex_unlock(&d->wl_lock);
    return NULL;
}

/* Set the workload's mode.  Once this returns with run false, memory no
 * longer changes.  wl_lock not held; b->lock may be. */
static void wl_set(sim_dom *d, bool run, uint64_t rate, uint64_t working_set)
{
    uint64_t ws = working_set ? working_set / LXM_PAGE_SIZE : d->npages;

    pthread_mutex_lock(&d->wl_lock);
    d->wl_run = run;
    d->wl_rate = rate;
    d->wl_ws_pages = LXM_MIN(ws ? ws : 1, d->npages);
    d->wl_t0 = now_ns();
    d->wl_done = 0;
    pthread_cond_broadcast(&d->wl_cond);
    pthread_mutex_unlock(&d->wl_lock);
}

/* b->lock held: apply d->state and the workload settings. */
static void wl_apply(sim_dom *d)
{
    wl_set(d, d->state == LXM__DOM_RUNNING, d->dirty_rate, d->working_set);
}

static int wl_start(lxm__backend *b, sim_dom *d)
{
    char name[16];
    int r;

    lxm__rng_seed(&d->wl_rng, lxm__hash3(d->seed, d->domid, now_ns()));
    r = pthread_create(&d->wl_thread, NULL, wl_main, d);
    if (r) {
        errno = r;
        LXM_LOG_ERRNO(b->lg, "sim: domain %u: cannot start its workload",
                      d->domid);
        return LXM_ERROR_FAIL;
    }
    d->wl_started = true;
    snprintf(name, sizeof(name), "sim-wl-%u", d->domid);
    pthread_setname_np(d->wl_thread, name);
    return 0;
}

static void wl_stop(sim_dom *d)
{
    if (!d->wl_started)
        return;
    pthread_mutex_lock(&d->wl_lock);
    d->wl_quit = true;
    pthread_cond_broadcast(&d->wl_cond);
    pthread_mutex_unlock(&d->wl_lock);
    pthread_join(d->wl_thread, NULL);
    d->wl_started = false;
}

/* ---- references -------------------------------------------------- */

/* Find a domain (not INCOMING) by name or decimal domid and take a
 * reference.  *d_r: release with dom_put(). */
static int dom_get(lxm__backend *b, const char *name_or_id, sim_dom **d_r)
{
    sim_dom *d = NULL;
    char *end;
    unsigned long id;

    if (!name_or_id || !*name_or_id)
        return LXM_ERROR_INVAL;
    pthread_mutex_lock(&b->lock);
    id = strtoul(name_or_id, &end, 10);
    if (*name_or_id >= '0' && *name_or_id <= '9' && !*end && id <= UINT32_MAX)
        d = table_find_id(b, (uint32_t)id);
    if (!d) {
        d = table_find_name(b, name_or_id);
        if (d && d->state == LXM__DOM_INCOMING)
            d = NULL;
    }
    if (d)
        d->refs++;
    pthread_mutex_unlock(&b->lock);
    *d_r = d;
    return d ? 0 : LXM_ERROR_NOTFOUND;
}

static int dom_get_id(lxm__backend *b, uint32_t domid, sim_dom **d_r)
{
    sim_dom *d;

    pthread_mutex_lock(&b->lock);
    d = table_find_id(b, domid);
    if (d)
        d->refs++;
    pthread_mutex_unlock(&b->lock);
    *d_r = d;
    if (!d)
        LXM_LOG_ERROR(b->lg, "sim: no domain with domid %u", domid);
    return d ? 0 : LXM_ERROR_NOTFOUND;
}

/* Drop a reference; the last one stops the workload and frees. */
static void dom_put(sim_dom *d)
{
    lxm__backend *b;
    bool last;

    if (!d)
        return;
    b = d->b;
    pthread_mutex_lock(&b->lock);
    last = --d->refs == 0;
    pthread_mutex_unlock(&b->lock);
    if (last) {
        wl_stop(d);
        dom_free(d);
    }
}

/* ---- the reaper: memory of destroyed domains (file-top comment) --- */

static void *reaper_main(void *arg)
{
    lxm__backend *b = arg;
    uint64_t bytes;
    sim_dom *d;

    pthread_mutex_lock(&b->lock);
    for (;;) {
        d = b->reaper_hold && !b->reaper_quit ? NULL : b->dying;
        if (!d) {
            if (b->reaper_quit)
                break;
            pthread_cond_wait(&b->reap_cond, &b->lock);
            continue;
        }
        b->dying = d->next;
        d->next = NULL;
        bytes = d->memory_bytes;
        pthread_mutex_unlock(&b->lock);
        dom_put(d);
        pthread_mutex_lock(&b->lock);
        b->dying_bytes -= bytes;
        pthread_cond_broadcast(&b->reap_cond);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

void lxm__sim_reaper_hold(lxm__backend *b, bool hold)
{
    pthread_mutex_lock(&b->lock);
    b->reaper_hold = hold;
    pthread_cond_broadcast(&b->reap_cond);
    pthread_mutex_unlock(&b->lock);
}

/* Hand d, out of the table, and the caller's reference to the reaper
 * (without one: put it here). */
static void dom_reap(lxm__backend *b, sim_dom *d)
{
    pthread_mutex_lock(&b->lock);
    if (b->reaper_started) {
        d->next = b->dying;
        b->dying = d;
        b->dying_bytes += d->memory_bytes;
        pthread_cond_broadcast(&b->reap_cond);
        d = NULL;
    }
    pthread_mutex_unlock(&b->lock);
    dom_put(d);
}

/* b->lock held.  Wait until the dying memory is given back or need
 * bytes are free besides it (bounded). */
static void wait_for_dying(lxm__backend *b, uint64_t need)
{
    struct timespec until;
    uint64_t used;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += SIM_REAP_WAIT_MS / 1000;
    while (b->dying_bytes) {
        used = table_used_memory(b) + b->dying_bytes;
        if (used <= b->total_memory && b->total_memory - used >= need)
            return;
        if (pthread_cond_timedwait(&b->reap_cond, &b->lock, &until) ==
            ETIMEDOUT)
            return;
    }
}

/* ---- open / close / host ----------------------------------------- */

/* Load one dom-<domid>.json; NULL on a broken file (logged). */
static sim_dom *load_domain(lxm__backend *b, uint32_t domid)
{
    char path[PATH_MAX], err[128];
    char *text = NULL;
    yajl_val v = NULL, fs;
    sim_dom *d = NULL;
    const char *s;
    uint64_t x;
    size_t i;

    dom_path(b, domid, "json", path, sizeof(path));
    if (read_small_file(b, path, &text))
        goto bad;
    v = yajl_tree_parse(text, err, sizeof(err));
    if (!v) {
        LXM_LOG_ERROR(b->lg, "sim: %s: not JSON: %s", path, err);
        goto bad;
    }
    d = dom_alloc(b);
    if (!d)
        goto bad;
    d->domid = domid;
    s = jstr(v, "name", NULL);
    if (!name_ok(s))
        goto broken;
    snprintf(d->name, sizeof(d->name), "%s", s);
    s = jstr(v, "uuid", NULL);
    if (!uuid_ok(s))
        goto broken;
    snprintf(d->uuid, sizeof(d->uuid), "%s", s);
    if (!ju64(v, "memory_bytes", NULL, &d->memory_bytes) || !d->memory_bytes ||
        d->memory_bytes % LXM_PAGE_SIZE || d->memory_bytes > SIM_MEMORY_MAX)
        goto broken;
    if (!ju64(v, "vcpus", NULL, &x) || !x || x > SIM_VCPUS_MAX)
        goto broken;
    d->vcpus = (uint32_t)x;
    if (kind_parse(jstr(v, "kind", NULL), &d->kind) ||
        state_parse(jstr(v, "state", NULL), &d->state))
        goto broken;
    if (!ju64(v, "dirty_rate", NULL, &d->dirty_rate) ||
        !ju64(v, "working_set", NULL, &d->working_set) ||
        !ju64(v, "seed", NULL, &d->seed))
        goto broken;
    if (ju64(v, "nr_pci", NULL, &x))
        d->nr_pci = (uint32_t)x;
    if (ju64(v, "nr_vusb", NULL, &x))
        d->nr_vusb = (uint32_t)x;
    d->nomigrate = YAJL_IS_TRUE(jget(v, "nomigrate", NULL));
    s = jstr(v, "on_boot", NULL);
    if (s)
        snprintf(d->on_boot, sizeof(d->on_boot), "%s", s);
    fs = jget(v, "featureset", NULL);
    if (YAJL_IS_ARRAY(fs))
        for (i = 0; i < fs->u.array.len && i < LXM__FEATURESET_WORDS; i++)
            if (YAJL_IS_INTEGER(fs->u.array.values[i]))
                d->featureset[i] =
                    (uint32_t)YAJL_GET_INTEGER(fs->u.array.values[i]);
    d->ha_protected = YAJL_IS_TRUE(jget(v, "ha_protected", NULL));
    yajl_tree_free(v);
    free(text);
    return d;

broken:
    LXM_LOG_ERROR(b->lg, "sim: %s: missing or invalid fields; ignored", path);
bad:
    yajl_tree_free(v);
    free(text);
    dom_free(d);
    return NULL;
}

/* host.json's optional host-info overrides; logged when invalid. */
static int load_host_overrides(lxm__backend *b, yajl_val v, const char *path)
{
    unsigned int major, minor, i;
    const char *s;
    yajl_val fs;

    s = jstr(v, "xen_version", NULL);
    if (s) {
        if (sscanf(s, "%u.%u", &major, &minor) != 2 || major > 65535 ||
            minor > 65535 || strlen(s) >= sizeof(b->host_xen)) {
            LXM_LOG_ERROR(b->lg, "sim: %s: bad xen_version '%.32s'", path, s);
            return LXM_ERROR_INVAL;
        }
        snprintf(b->host_xen, sizeof(b->host_xen), "%s", s);
    }
    s = jstr(v, "cpu_vendor", NULL);
    if (s) {
        if (!*s || strlen(s) >= sizeof(b->host_vendor)) {
            LXM_LOG_ERROR(b->lg, "sim: %s: bad cpu_vendor '%.32s'", path, s);
            return LXM_ERROR_INVAL;
        }
        snprintf(b->host_vendor, sizeof(b->host_vendor), "%s", s);
    }
    fs = jget(v, "featureset", NULL);
    if (fs) {
        if (!YAJL_IS_ARRAY(fs) || fs->u.array.len > LXM__FEATURESET_WORDS) {
            LXM_LOG_ERROR(b->lg, "sim: %s: featureset: at most %d words", path,
                          LXM__FEATURESET_WORDS);
            return LXM_ERROR_INVAL;
        }
        for (i = 0; i < fs->u.array.len; i++) {
            yajl_val w = fs->u.array.values[i];

            if (!YAJL_IS_INTEGER(w) || YAJL_GET_INTEGER(w) < 0 ||
                YAJL_GET_INTEGER(w) > UINT32_MAX) {
                LXM_LOG_ERROR(b->lg, "sim: %s: featureset word %u invalid",
                              path, i);
                return LXM_ERROR_INVAL;
            }
            b->host_fs[i] = (uint32_t)YAJL_GET_INTEGER(w);
        }
        b->host_fs_set = true;
    }
    return 0;
}

static int load_host(lxm__backend *b, const lxm__backend_opts *opts)
{
    char path[PATH_MAX], err[128];
    char *text = NULL;
    yajl_val v = NULL;
    const char *s;
    uint64_t x;
    int rc;

    b->next_domid = 1;
    snprintf(path, sizeof(path), "%s/host.json", b->dir);
    rc = read_small_file(b, path, &text);
    if (rc && rc != LXM_ERROR_NOTFOUND)
        return rc;
    if (text) {
        v = yajl_tree_parse(text, err, sizeof(err));
        if (!v) {
            LXM_LOG_ERROR(b->lg, "sim: %s: not JSON: %s", path, err);
            rc = LXM_ERROR_INVAL;
            goto out;
        }
        if (ju64(v, "next_domid", NULL, &x) && x > 0 && x < UINT32_MAX / 2)
            b->next_domid = (uint32_t)x;
        s = jstr(v, "hostname", NULL);
        if (s && name_ok(s))
            snprintf(b->hostname, sizeof(b->hostname), "%s", s);
        rc = load_host_overrides(b, v, path);
        if (rc)
            goto out;
    }
    if (opts->sim_hostname && *opts->sim_hostname)
        snprintf(b->hostname, sizeof(b->hostname), "%s", opts->sim_hostname);
    if (!b->hostname[0]) {
        if (gethostname(b->hostname, sizeof(b->hostname) - 1))
            snprintf(b->hostname, sizeof(b->hostname), "localhost");
        b->hostname[sizeof(b->hostname) - 1] = '\0';
    }
    rc = 0;

out:
    yajl_tree_free(v);
    free(text);
    return rc;
}

/* Load d's extra pages, if it has any.  Logged on failure. */
static int load_extra(lxm__backend *b, sim_dom *d)
{
    char path[PATH_MAX];
    int rc;

    dom_path(b, d->domid, "extra", path, sizeof(path));
    rc = lxm__sim_extra_read(&d->extra, path, d->npages, b->lg);
    if (rc == LXM_ERROR_NOTFOUND)
        return 0;
    if (rc)
        LXM_LOG_ERROR(b->lg,
                      "sim: domain %u (%s): extra pages file unusable; "
                      "ignored",
                      d->domid, d->name);
    return rc;
}

/* Load every domain; apply the restart rules (file-top comment). */
static int load_domains(lxm__backend *b)
{
    DIR *dir = opendir(b->dir);
    struct dirent *de;
    sim_dom *d;
    unsigned int domid;
    int n, rc = 0;
    char tail[8];

    if (!dir) {
        LXM_LOG_ERRNO(b->lg, "sim: cannot read state dir %s", b->dir);
        return LXM_ERROR_IO;
    }
    while ((de = readdir(dir))) {
        n = sscanf(de->d_name, "dom-%u.%7s", &domid, tail);
        if (n != 2 || strcmp(tail, "json") || !domid || domid >= UINT32_MAX / 2)
            continue;
        /* Never hand out a domid seen on disk, even a deleted one. */
        if (domid >= b->next_domid)
            b->next_domid = domid + 1;
        d = load_domain(b, domid);
        if (!d)
            continue;
        if (d->state == LXM__DOM_INCOMING) {
            lxm__log(b->lg, XTL_WARN, -1,
                     "sim: domain %u (%s) was half received when the agent "
                     "stopped; deleted",
                     domid, d->name);
            dom_unlink_files(b, domid);
            dom_free(d);
            continue;
        }
        if (dom_map(b, d, false)) {
            LXM_LOG_ERROR(b->lg,
                          "sim: domain %u (%s): memory file unusable; "
                          "ignored",
                          domid, d->name);
            dom_free(d);
            continue;
        }
        if (load_extra(b, d)) {
            dom_free(d);
            continue;
        }
        if (d->state == LXM__DOM_SUSPENDED) {
            if (has_suffix(d->name, MIGRATEDAWAY_SUFFIX)) {
                lxm__log(b->lg, XTL_WARN, -1,
                         "sim: domain %u (%s) left suspended: a migration to "
                         "another host did not confirm; check the destination",
                         domid, d->name);
            } else {
                d->state = LXM__DOM_RUNNING;
                lxm__log(b->lg, XTL_INFO, -1,
                         "sim: domain %u (%s) was suspended for a migration "
                         "that did not finish; resumed",
                         domid, d->name);
                meta_write(b, d);
            }
        }
        if (table_find_name(b, d->name)) {
            LXM_LOG_ERROR(b->lg, "sim: domain %u: name %s used twice; ignored",
                          domid, d->name);
            dom_free(d);
            continue;
        }
        table_insert(b, d);
    }
    closedir(dir);

    for (d = b->doms; d && !rc; d = d->next) {
        rc = wl_start(b, d);
        if (!rc)
            wl_apply(d);
    }
    return rc;
}

static void sim_close(lxm__backend *b)
{
    sim_dom *d;

    if (!b)
        return;
    if (b->reaper_started) {
        pthread_mutex_lock(&b->lock);
        b->reaper_quit = true;
        pthread_cond_broadcast(&b->reap_cond);
        pthread_mutex_unlock(&b->lock);
        pthread_join(b->reaper, NULL);
    }
    pthread_cond_destroy(&b->reap_cond);
    while ((d = b->doms)) {
        b->doms = d->next;
        wl_stop(d);
        dom_free(d);
    }
    if (b->lock_fd >= 0)
        close(b->lock_fd);
    pthread_mutex_destroy(&b->lock);
    free(b->dir);
    free(b);
}

static int sim_open(const lxm__backend_opts *opts, lxm__backend **b_r)
{
    lxm__backend *b = NULL;
    char path[PATH_MAX];
    pthread_condattr_t ca;
    int rc;

    *b_r = NULL;
    if (!opts || !opts->state_dir || !*opts->state_dir) {
        LXM_LOG_ERROR(opts ? opts->logger : NULL,
                      "sim: a state directory is required");
        return LXM_ERROR_INVAL;
    }
    b = calloc(1, sizeof(*b));
    if (!b)
        return LXM_ERROR_NOMEM;
    b->lock_fd = -1;
    b->lg = opts->logger;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->reap_cond, &ca);
    pthread_condattr_destroy(&ca);
    b->total_memory =
        opts->sim_host_memory ? opts->sim_host_memory : SIM_DEFAULT_HOST_MEMORY;
    b->dir = strdup(opts->state_dir);
    if (!b->dir) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    if (mkdir(b->dir, 0700) && errno != EEXIST) {
        LXM_LOG_ERRNO(b->lg, "sim: cannot create state dir %s", b->dir);
        rc = LXM_ERROR_IO;
        goto out;
    }
    snprintf(path, sizeof(path), "%s/lock", b->dir);
    b->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (b->lock_fd < 0) {
        LXM_LOG_ERRNO(b->lg, "sim: cannot open %s", path);
        rc = LXM_ERROR_IO;
        goto out;
    }
    if (flock(b->lock_fd, LOCK_EX | LOCK_NB)) {
        LXM_LOG_ERRNO(b->lg, "sim: state dir %s is in use by another backend",
                      b->dir);
        rc = errno == EWOULDBLOCK ? LXM_ERROR_EXISTS : LXM_ERROR_IO;
        goto out;
    }
    rc = load_host(b, opts);
    if (rc)
        goto out;
    rc = load_domains(b);
    if (rc)
        goto out;
    pthread_mutex_lock(&b->lock);
    rc = host_write(b);
    pthread_mutex_unlock(&b->lock);
    if (rc)
        goto out;
    /* Without the reaper, destroy() gives memory back itself. */
    b->reaper_started = !pthread_create(&b->reaper, NULL, reaper_main, b);
    if (b->reaper_started)
        pthread_setname_np(b->reaper, "sim-reaper");
    *b_r = b;
    b = NULL;

out:
    sim_close(b);
    return rc;
}

static int sim_host_info(lxm__backend *b, lxm__host_info *info_r)
{
    sim_dom *d;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t used;

    memset(info_r, 0, sizeof(*info_r));
    snprintf(info_r->hostname, sizeof(info_r->hostname), "%s", b->hostname);
    snprintf(info_r->backend, sizeof(info_r->backend), "sim");
    info_r->xen_major = 4;
    info_r->xen_minor = 17;
    snprintf(info_r->xen_extra, sizeof(info_r->xen_extra), ".0-sim");
    if (b->host_xen[0]) {
        unsigned int major = 0, minor = 0;
        int n = 0;

        sscanf(b->host_xen, "%u.%u%n", &major, &minor, &n);
        info_r->xen_major = (uint16_t)major;
        info_r->xen_minor = (uint16_t)minor;
        snprintf(info_r->xen_extra, sizeof(info_r->xen_extra), "%s",
                 b->host_xen + n);
    }
    snprintf(info_r->cpu_vendor, sizeof(info_r->cpu_vendor), "%s",
             b->host_vendor[0] ? b->host_vendor : "GenuineIntel");
    memcpy(info_r->featureset, b->host_fs_set ? b->host_fs : sim_featureset,
           sizeof(info_r->featureset));
    info_r->total_memory = b->total_memory;
    info_r->nr_cpus = ncpu > 0 ? (uint32_t)ncpu : 1;

    pthread_mutex_lock(&b->lock);
    used = table_used_memory(b);
    for (d = b->doms; d; d = d->next)
        if (d->state != LXM__DOM_INCOMING)
            info_r->nr_domains++;
    pthread_mutex_unlock(&b->lock);
    info_r->free_memory = used < b->total_memory ? b->total_memory - used : 0;
    return 0;
}

/* b->lock held. */
static void fill_info(const sim_dom *d, lxm__domain_info *info)
{
    memset(info, 0, sizeof(*info));
    info->domid = d->domid;
    snprintf(info->name, sizeof(info->name), "%s", d->name);
    snprintf(info->uuid, sizeof(info->uuid), "%s", d->uuid);
    info->memory_bytes = d->memory_bytes;
    info->vcpus = d->vcpus;
    info->kind = d->kind;
    info->state = d->state;
    info->nr_pci = d->nr_pci;
    info->nr_vusb = d->nr_vusb;
    info->nomigrate = d->nomigrate;
    snprintf(info->on_boot, sizeof(info->on_boot), "%s", d->on_boot);
    memcpy(info->featureset, d->featureset, sizeof(info->featureset));
    info->ha_protected = d->ha_protected;
    info->dirty_rate = d->dirty_rate;
    info->working_set = d->working_set;
}

static int sim_list(lxm__backend *b, lxm__domain_info **list_r, int *n_r)
{
    lxm__domain_info *list;
    sim_dom *d;
    int n = 0;

    *list_r = NULL;
    *n_r = 0;
    pthread_mutex_lock(&b->lock);
    for (d = b->doms; d; d = d->next)
        n++;
    list = calloc(n ? (size_t)n : 1, sizeof(*list));
    if (!list) {
        pthread_mutex_unlock(&b->lock);
        return LXM_ERROR_NOMEM;
    }
    n = 0;
    for (d = b->doms; d; d = d->next)
        if (d->state != LXM__DOM_INCOMING)
            fill_info(d, &list[n++]);
    pthread_mutex_unlock(&b->lock);
    *list_r = list;
    *n_r = n;
    return 0;
}

static int sim_domain_info(lxm__backend *b, const char *name_or_id,
                           lxm__domain_info *info_r)
{
    sim_dom *d;
    int rc = dom_get(b, name_or_id, &d);

    if (rc)
        return rc;
    pthread_mutex_lock(&b->lock);
    fill_info(d, info_r);
    pthread_mutex_unlock(&b->lock);
    dom_put(d);
    return 0;
}

/* What guest.c needs to describe d.  b->lock held (for the name). */
static void guest_desc(const sim_dom *d, lxm__guest_desc *g, char *name,
                       size_t name_len)
{
    memset(g, 0, sizeof(*g));
    g->guest_type =
        d->kind == LXM__GUEST_PV ? LXM_GUEST_X86_PV : LXM_GUEST_X86_HVM;
    g->pvh = d->kind == LXM__GUEST_PVH;
    g->memory_bytes = d->memory_bytes;
    g->vcpus = d->vcpus;
    g->seed = d->seed;
    snprintf(name, name_len, "%s", d->name);
    g->name = name;
    g->uuid = d->uuid;
}

static int sim_domain_config(lxm__backend *b, uint32_t domid, char **json_r)
{
    lxm__guest_desc g;
    char name[LXM__NAME_MAX];
    sim_dom *d;
    int rc;

    *json_r = NULL;
    rc = dom_get_id(b, domid, &d);
    if (rc)
        return rc;
    pthread_mutex_lock(&b->lock);
    guest_desc(d, &g, name, sizeof(name));
    pthread_mutex_unlock(&b->lock);
    rc = lxm__guest_config_json(&g, json_r);
    dom_put(d);
    return rc;
}

/* ---- create ------------------------------------------------------ */

/* What page pfn of a fresh domain holds, into page; false for a zero
 * page (left as a hole, page untouched). */
static bool initial_page(const lxm__sim_create_params *p, uint64_t pfn,
                         uint8_t *page)
{
    uint32_t code = p->mix_zero + p->mix_code;
    uint32_t text = code + p->mix_text;
    lxm__rng r;
    uint32_t k;

    lxm__rng_seed(&r, lxm__hash3(p->seed, pfn, UINT64_C(0x73696d)));
    k = lxm__rng_below(&r, 100);
    if (k < p->mix_zero)
        return false;
    if (k < code)
        lxm__fill_code_page(&r, page);
    else if (k < text)
        lxm__fill_text_page(&r, page);
    else
        lxm__rng_fill(&r, page, LXM_PAGE_SIZE);
    return true;
}

/*
 * Fill a fresh (all-hole) memory file with the mix, deterministic from
 * p->seed.  Through pwrite() of runs of non-zero pages from one 1 MiB
 * buffer: no page faults, no allocation per page; zero pages stay
 * holes.
 */
static int fill_memory(lxm__backend *b, sim_dom *d,
                       const lxm__sim_create_params *p)
{
    const uint32_t chunk = 256;
    char path[PATH_MAX];
    uint8_t *buf = NULL;
    uint64_t base, pfn;
    uint32_t i, run;
    int fd, rc;

    dom_path(b, d->domid, "mem", path, sizeof(path));
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        LXM_LOG_ERRNO(b->lg, "sim: domain %u: cannot open %s", d->domid, path);
        return LXM_ERROR_IO;
    }
    buf = malloc((size_t)chunk * LXM_PAGE_SIZE);
    if (!buf) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    for (base = 0; base < d->npages; base += chunk) {
        uint32_t n = (uint32_t)LXM_MIN((uint64_t)chunk, d->npages - base);
        bool data[256];

        for (i = 0; i < n; i++)
            data[i] =
                initial_page(p, base + i, buf + (size_t)i * LXM_PAGE_SIZE);
        for (i = 0; i < n; i += run) {
            size_t off = 0, len;

            for (run = 1; i + run < n && data[i + run] == data[i]; run++)
                ;
            if (!data[i])
                continue;
            pfn = base + i;
            len = (size_t)run * LXM_PAGE_SIZE;
            while (off < len) {
                ssize_t r =
                    pwrite(fd, buf + (size_t)i * LXM_PAGE_SIZE + off, len - off,
                           (off_t)(pfn * LXM_PAGE_SIZE + off));

                if (r < 0 && errno == EINTR)
                    continue;
                if (r <= 0) {
                    LXM_LOG_ERRNO(b->lg, "sim: domain %u: cannot write %s",
                                  d->domid, path);
                    rc = errno == ENOSPC ? LXM_ERROR_NOSPACE : LXM_ERROR_IO;
                    goto out;
                }
                off += (size_t)r;
            }
        }
    }
    rc = 0;

out:
    free(buf);
    close(fd);
    return rc;
}

/*
 * Reserve a new INCOMING domain in the table: name unique, memory
 * available, a domid.  d's immutable fields must be set but domid.
 * Persists its metadata.
 */
static int reserve_domain(lxm__backend *b, sim_dom *d, const char *what)
{
    uint64_t used;
    int rc;

    pthread_mutex_lock(&b->lock);
    wait_for_dying(b, d->memory_bytes);
    if (table_find_name(b, d->name)) {
        LXM_LOG_ERROR(b->lg, "sim: %s %s: a domain of that name exists", what,
                      d->name);
        rc = LXM_ERROR_EXISTS;
        goto out;
    }
    used = table_used_memory(b) + b->dying_bytes; /* still dying: used */
    if (used > b->total_memory || b->total_memory - used < d->memory_bytes) {
        LXM_LOG_ERROR(b->lg,
                      "sim: %s %s: not enough host memory: %" PRIu64
                      " MiB needed, %" PRIu64 " MiB free of %" PRIu64,
                      what, d->name, d->memory_bytes >> 20,
                      used < b->total_memory ? (b->total_memory - used) >> 20
                                             : 0,
                      b->total_memory >> 20);
        rc = LXM_ERROR_NOSPACE;
        goto out;
    }
    d->domid = b->next_domid++;
    d->state = LXM__DOM_INCOMING;
    rc = host_write(b);
    if (!rc)
        rc = meta_write(b, d);
    if (rc)
        goto out;
    table_insert(b, d);

out:
    pthread_mutex_unlock(&b->lock);
    return rc;
}

/* Take a reserved domain out again and delete its files. */
static void unreserve_domain(lxm__backend *b, sim_dom *d)
{
    pthread_mutex_lock(&b->lock);
    table_remove(b, d);
    pthread_mutex_unlock(&b->lock);
    dom_unlink_files(b, d->domid);
}

int lxm__sim_create(lxm__backend *b, const lxm__sim_create_params *p,
                    uint32_t *domid_r)
{
    sim_dom *d = NULL;
    bool reserved = false;
    const char *why = NULL;
    lxm__rng r;
    int rc;

    if (!b || !p)
        return LXM_ERROR_INVAL;
    if (!name_ok(p->name))
        why = "name must be 1-63 characters without '/'";
    else if (!p->memory_bytes || p->memory_bytes % LXM_PAGE_SIZE)
        why = "memory must be a non-zero multiple of 4096 bytes";
    else if (p->memory_bytes > SIM_MEMORY_MAX)
        why = "memory larger than 1 TiB";
    else if (p->vcpus > SIM_VCPUS_MAX)
        why = "more than 128 vcpus";
    else if (p->kind != LXM__GUEST_PV && p->kind != LXM__GUEST_PVH &&
             p->kind != LXM__GUEST_HVM)
        why = "unknown guest type";
    else if ((uint64_t)p->mix_zero + p->mix_code + p->mix_text > 100)
        why = "memory mix adds up to more than 100%";
    else if (p->working_set > p->memory_bytes)
        why = "working set larger than memory";
    else if (p->on_boot && strlen(p->on_boot) >= sizeof(d->on_boot))
        why = "on_boot too long";
    if (why) {
        LXM_LOG_ERROR(b->lg, "sim: cannot create domain %s: %s",
                      p->name ? p->name : "(null)", why);
        return LXM_ERROR_INVAL;
    }

    d = dom_alloc(b);
    if (!d)
        return LXM_ERROR_NOMEM;
    snprintf(d->name, sizeof(d->name), "%s", p->name);
    lxm__rng_seed(&r, lxm__hash3(p->seed, now_ns(), (uintptr_t)d));
    make_uuid(&r, d->uuid);
    d->memory_bytes = p->memory_bytes;
    d->vcpus = p->vcpus ? p->vcpus : 1;
    d->kind = p->kind;
    d->seed = p->seed & INT64_MAX;
    d->nr_pci = p->nr_pci;
    d->nr_vusb = p->nr_vusb;
    d->nomigrate = p->nomigrate;
    d->ha_protected = p->ha_protected;
    if (p->on_boot)
        snprintf(d->on_boot, sizeof(d->on_boot), "%s", p->on_boot);
    d->dirty_rate = p->dirty_rate;
    d->working_set = p->working_set;

    rc = reserve_domain(b, d, "create");
    if (rc)
        goto out;
    reserved = true;
    rc = dom_map(b, d, true);
    if (rc)
        goto out;
    rc = fill_memory(b, d, p);
    if (rc)
        goto out;
    rc = wl_start(b, d);
    if (rc)
        goto out;

    pthread_mutex_lock(&b->lock);
    d->state = LXM__DOM_RUNNING;
    rc = meta_write(b, d);
    if (!rc)
        wl_apply(d);
    pthread_mutex_unlock(&b->lock);
    if (rc)
        goto out;
    LXM_LOG_DEBUG(b->lg, "sim: created domain %u (%s), %" PRIu64 " MiB",
                  d->domid, d->name, d->memory_bytes >> 20);
    if (domid_r)
        *domid_r = d->domid;
    d = NULL;

out:
    if (d) {
        if (reserved)
            unreserve_domain(b, d);
        wl_stop(d);
        dom_free(d);
    }
    return rc;
}

int lxm__sim_set_workload(lxm__backend *b, uint32_t domid, uint64_t dirty_rate,
                          uint64_t working_set)
{
    sim_dom *d;
    int rc = dom_get_id(b, domid, &d);

    if (rc)
        return rc;
    pthread_mutex_lock(&b->lock);
    if (working_set > d->memory_bytes) {
        LXM_LOG_ERROR(b->lg, "sim: domain %u: working set larger than memory",
                      domid);
        rc = LXM_ERROR_INVAL;
    } else if (d->saving) {
        LXM_LOG_ERROR(b->lg, "sim: domain %u: a save is in progress", domid);
        rc = LXM_ERROR_STATE;
    } else {
        d->dirty_rate = dirty_rate;
        d->working_set = working_set;
        rc = meta_write(b, d);
        wl_apply(d);
    }
    pthread_mutex_unlock(&b->lock);
    dom_put(d);
    return rc;
}

/* ---- pause / unpause / resume / destroy / rename ------------------ */

/*
 * Move d from one of the states in 'from' (a bit mask of 1 << state)
 * to 'to'.  Refused while a save runs.  Already in 'to': no-op.
 */
static int transition(lxm__backend *b, uint32_t domid, unsigned int from,
                      lxm__dom_state to, const char *what)
{
    sim_dom *d;
    int rc = dom_get_id(b, domid, &d);

    if (rc)
        return rc;
    pthread_mutex_lock(&b->lock);
    if (d->saving) {
        LXM_LOG_ERROR(b->lg,
                      "sim: cannot %s domain %u (%s): a save is in "
                      "progress",
                      what, domid, d->name);
        rc = LXM_ERROR_STATE;
    } else if (d->state == to) {
        rc = 0;
    } else if (!(from & (1u << d->state))) {
        LXM_LOG_ERROR(b->lg, "sim: cannot %s domain %u (%s): it is %s", what,
                      domid, d->name, state_name(d->state));
        rc = LXM_ERROR_STATE;
    } else {
        d->state = to;
        wl_apply(d);
        rc = meta_write(b, d);
    }
    pthread_mutex_unlock(&b->lock);
    dom_put(d);
    return rc;
}

static int sim_pause(lxm__backend *b, uint32_t domid)
{
    return transition(b, domid, 1u << LXM__DOM_RUNNING, LXM__DOM_PAUSED,
                      "pause");
}

static int sim_unpause(lxm__backend *b, uint32_t domid)
{
    return transition(b, domid, 1u << LXM__DOM_PAUSED, LXM__DOM_RUNNING,
                      "unpause");
}

static int sim_resume(lxm__backend *b, uint32_t domid)
{
    return transition(b, domid, 1u << LXM__DOM_SUSPENDED, LXM__DOM_RUNNING,
                      "resume");
}

static int sim_destroy(lxm__backend *b, uint32_t domid)
{
    sim_dom *d;
    int rc = dom_get_id(b, domid, &d);

    if (rc)
        return rc;
    pthread_mutex_lock(&b->lock);
    if (d->saving) {
        LXM_LOG_ERROR(b->lg,
                      "sim: cannot destroy domain %u (%s): a save is "
                      "in progress",
                      domid, d->name);
        rc = LXM_ERROR_STATE;
    } else {
        table_remove(b, d);
        d->refs--; /* the table's */
        wl_set(d, false, 0, 0);
        LXM_LOG_DEBUG(b->lg, "sim: destroyed domain %u (%s)", domid, d->name);
    }
    pthread_mutex_unlock(&b->lock);
    if (!rc) {
        /* The files go now (mapped, their pages stay until the munmap). */
        dom_unlink_files(b, domid);
        dom_reap(b, d); /* takes our reference */
        d = NULL;
    }
    dom_put(d);
    return rc;
}

static int sim_rename(lxm__backend *b, uint32_t domid, const char *name)
{
    sim_dom *d, *other;
    char old[LXM__NAME_MAX];
    int rc;

    if (!name_ok(name)) {
        LXM_LOG_ERROR(b->lg, "sim: cannot rename domain %u: invalid name",
                      domid);
        return LXM_ERROR_INVAL;
    }
    rc = dom_get_id(b, domid, &d);
    if (rc)
        return rc;
    pthread_mutex_lock(&b->lock);
    other = table_find_name(b, name);
    if (other && other != d) {
        LXM_LOG_ERROR(b->lg, "sim: cannot rename domain %u to %s: name in use",
                      domid, name);
        rc = LXM_ERROR_EXISTS;
    } else {
        snprintf(old, sizeof(old), "%s", d->name);
        snprintf(d->name, sizeof(d->name), "%s", name);
        rc = meta_write(b, d);
        if (rc)
            snprintf(d->name, sizeof(d->name), "%s", old);
    }
    pthread_mutex_unlock(&b->lock);
    dom_put(d);
    return rc;
}

/*
 * XXH3-128 of a domain's memory, read from the memory file with pread()
 * rather than through the mapping: a mapping that was just set up (a
 * restored domain) or never touched (zero pages are holes) would take a
 * page fault per page, which costs several times the hash itself and
 * sits in the downtime window of a verified migration.  MAP_SHARED
 * stores are in the page cache, so pread() sees exactly the mapping.
 * Then the extra pages in pfn order, each as its pfn (u64 LE) and its
 * bytes: without any, the digest is that of the memory file alone.
 * Called with d->wl_lock held.
 */
static int digest_memory(lxm__backend *b, sim_dom *d, XXH128_hash_t *h_r)
{
    const size_t chunk = 1u << 20;
    XXH3_state_t *st = NULL;
    uint8_t *buf = NULL;
    char path[PATH_MAX];
    uint64_t off = 0;
    ssize_t n;
    int fd = -1, rc;

    st = XXH3_createState();
    buf = malloc(chunk);
    if (!st || !buf) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    XXH3_128bits_reset(st);
    dom_path(b, d->domid, "mem", path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        LXM_LOG_ERRNO(b->lg, "sim: domain %u: cannot open %s", d->domid, path);
        rc = LXM_ERROR_IO;
        goto out;
    }
    while (off < d->memory_bytes) {
        n = pread(fd, buf, LXM_MIN(chunk, (size_t)(d->memory_bytes - off)),
                  (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            LXM_LOG_ERRNO(b->lg, "sim: domain %u: cannot read %s at %" PRIu64,
                          d->domid, path, off);
            rc = LXM_ERROR_IO;
            goto out;
        }
        XXH3_128bits_update(st, buf, (size_t)n);
        off += (uint64_t)n;
    }
    lxm__sim_extra_digest(&d->extra, st);
    *h_r = XXH3_128bits_digest(st);
    rc = 0;

out:
    if (fd >= 0)
        close(fd);
    free(buf);
    XXH3_freeState(st);
    return rc;
}

static int sim_memory_digest(lxm__backend *b, uint32_t domid,
                             uint8_t digest[16])
{
    XXH128_canonical_t c;
    XXH128_hash_t h;
    sim_dom *d;
    int rc = dom_get_id(b, domid, &d);

    if (rc)
        return rc;
    /* Consistent even while running: the workload waits. */
    pthread_mutex_lock(&d->wl_lock);
    rc = digest_memory(b, d, &h);
    pthread_mutex_unlock(&d->wl_lock);
    if (!rc) {
        XXH128_canonicalFromHash(&c, h);
        memcpy(digest, c.digest, 16);
    }
    dom_put(d);
    return rc;
}

int lxm__sim_dirty_pages(lxm__backend *b, uint32_t domid, uint64_t *n_r)
{
    sim_dom *d;
    uint64_t n = 0;
    size_t i;
    int rc = dom_get_id(b, domid, &d);

    if (rc)
        return rc;
    for (i = 0; i < d->dirty_words; i++)
        n += (uint64_t)__builtin_popcountll(
            __atomic_load_n(&d->dirty[i], __ATOMIC_RELAXED));
    dom_put(d);
    *n_r = n;
    return 0;
}

static int sim_save_abort(lxm__backend *b, uint32_t domid)
{
    sim_dom *d;
    int rc = dom_get_id(b, domid, &d);

    if (rc)
        return rc;
    pthread_mutex_lock(&b->lock);
    if (!d->saving)
        rc = LXM_ERROR_STATE;
    else
        __atomic_store_n(&d->abort_save, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&b->lock);
    dom_put(d);
    return rc;
}

/* ---- save -------------------------------------------------------- */

typedef struct saver {
    lxm__backend *b;
    sim_dom *d;
    lxm_stream_writer *w;
    const lxm__save_params *params;
    lxm__save_progress_fn *progress;
    void *opaque;
    lxm__save_progress prog;
    bool copy;     /* the workload runs: copy pages under wl_lock */
    uint64_t *set; /* pfns to send this round (d->dirty_words words) */
    uint8_t *buf;  /* copy mode: one batch of pages */
    uint64_t pfns[LXM_PAGE_DATA_MAX_PAGES];
    const void *pages[LXM_PAGE_DATA_MAX_PAGES];
    uint32_t count;
} saver;

static int save_report(saver *s)
{
    int r;

    if (__atomic_load_n(&s->d->abort_save, __ATOMIC_RELAXED)) {
        LXM_LOG_ERROR(s->b->lg, "sim: save of domain %u: aborted by request",
                      s->d->domid);
        return LXM_ERROR_ABORTED;
    }
    s->prog.bytes_written = lxm_stream_writer_offset(s->w);
    if (!s->progress)
        return 0;
    r = s->progress(s->opaque, &s->prog);
    if (r) {
        LXM_LOG_ERROR(s->b->lg, "sim: save of domain %u: stopped by the caller",
                      s->d->domid);
        return LXM_ERROR_ABORTED;
    }
    return 0;
}

/* Page pfn of d: in memory or among the extra pages (the caller only
 * asks for pfns that exist). */
static const uint8_t *dom_page(const sim_dom *d, uint64_t pfn)
{
    return pfn < d->npages ? d->mem + pfn * LXM_PAGE_SIZE
                           : lxm__sim_extra_find(&d->extra, pfn);
}

static int save_flush(saver *s)
{
    sim_dom *d = s->d;
    uint32_t i;
    int rc;

    if (!s->count)
        return 0;
    if (s->copy) {
        pthread_mutex_lock(&d->wl_lock);
        for (i = 0; i < s->count; i++) {
            uint8_t *dst = s->buf + (size_t)i * LXM_PAGE_SIZE;

            memcpy(dst, dom_page(d, s->pfns[i]), LXM_PAGE_SIZE);
            s->pages[i] = dst;
        }
        pthread_mutex_unlock(&d->wl_lock);
    } else {
        for (i = 0; i < s->count; i++)
            s->pages[i] = dom_page(d, s->pfns[i]);
    }
    /* NOTAB pages: the pfn word is the pfn. */
    rc = lxm_stream_write_page_data(s->w, s->count, s->pfns, s->pages);
    if (rc) {
        LXM_LOG_ERROR(s->b->lg,
                      "sim: save of domain %u: cannot write pages "
                      "at stream offset %" PRIu64 ": %s",
                      d->domid, lxm_stream_writer_offset(s->w),
                      lxm_strerror(rc));
        return rc;
    }
    s->prog.pages_sent += s->count;
    s->count = 0;
    return save_report(s);
}

/*
 * Send every pfn in s->set, ascending, and clear the set; with extra,
 * then every extra page (all above memory: the round stays ascending).
 * nr_pages: how many pfns s->set holds.
 */
static int save_round(saver *s, uint32_t round, uint64_t nr_pages, bool extra)
{
    const lxm__sim_extra *x = &s->d->extra;
    size_t i;
    int rc;

    s->prog.round = round;
    s->prog.pages_sent = 0;
    s->prog.pages_total = nr_pages + (extra ? x->count : 0);
    rc = save_report(s);
    if (rc)
        return rc;
    for (i = 0; i < s->d->dirty_words; i++) {
        uint64_t w = s->set[i];

        s->set[i] = 0;
        while (w) {
            s->pfns[s->count++] =
                (uint64_t)i * 64 + (uint64_t)__builtin_ctzll(w);
            w &= w - 1;
            if (s->count == LXM_PAGE_DATA_MAX_PAGES) {
                rc = save_flush(s);
                if (rc)
                    return rc;
            }
        }
    }
    for (i = 0; extra && i < x->count; i++) {
        s->pfns[s->count++] = x->pfns[i];
        if (s->count == LXM_PAGE_DATA_MAX_PAGES) {
            rc = save_flush(s);
            if (rc)
                return rc;
        }
    }
    return save_flush(s);
}

/* Move the log-dirty bits into s->set; returns how many are set. */
static uint64_t save_collect(saver *s)
{
    uint64_t n = 0;
    size_t i;

    for (i = 0; i < s->d->dirty_words; i++) {
        s->set[i] |= __atomic_exchange_n(&s->d->dirty[i], 0, __ATOMIC_ACQ_REL);
        n += (uint64_t)__builtin_popcountll(s->set[i]);
    }
    return n;
}

static void save_set_all(saver *s)
{
    uint64_t rem = s->d->npages % 64;
    size_t i;

    for (i = 0; i < s->d->dirty_words; i++)
        s->set[i] = UINT64_MAX;
    if (rem)
        s->set[s->d->dirty_words - 1] = (UINT64_C(1) << rem) - 1;
}

/* Stop the guest for the stop-and-copy: from now on memory is frozen. */
static int save_suspend(saver *s)
{
    lxm__backend *b = s->b;

    pthread_mutex_lock(&b->lock);
    s->d->state = LXM__DOM_SUSPENDED;
    wl_apply(s->d);
    meta_write(b, s->d);
    pthread_mutex_unlock(&b->lock);
    s->copy = false;
    s->prog.suspended = true;
    return save_report(s);
}

/*
 * The stop-and-copy gate (params->gate), before pausing.  Returns 0
 * when held (or there is no gate), 1 when the caller should do another
 * live round (another migration of this host is paused and rounds are
 * left), or a negative LXM_ERROR_*.  Blocks when live rounds are of no
 * use (nothing dirty, or max_rounds reached), watching save_abort() and
 * the caller's progress callback every GATE_SLICE_MS.
 */
static int save_gate(saver *s, uint64_t dirty, uint32_t round,
                     uint32_t max_rounds)
{
    lxm__stopcopy_gate *g = s->params->gate;
    uint64_t t0;
    int rc;

    if (!g || s->prog.gate_held)
        return 0;
    if (lxm__stopcopy_gate_try_take(g)) {
        s->prog.gate_held = true;
        return 0;
    }
    if (dirty && round < max_rounds) {
        LXM_LOG_DEBUG(s->b->lg,
                      "sim: save of domain %u: round %u: the stop-and-copy "
                      "gate is busy; another live round",
                      s->d->domid, round);
        return 1;
    }
    LXM_LOG_DEBUG(s->b->lg,
                  "sim: save of domain %u: waiting for the stop-and-copy gate",
                  s->d->domid);
    t0 = now_ns();
    for (;;) {
        rc = lxm__stopcopy_gate_take_for(g, &s->d->abort_save, GATE_SLICE_MS);
        s->prog.gate_wait_ms += (now_ns() - t0) / 1000000u;
        t0 = now_ns();
        if (!rc)
            break;
        if (rc != LXM_ERROR_TIMEOUT) {
            LXM_LOG_ERROR(s->b->lg,
                          "sim: save of domain %u: aborted by request while "
                          "waiting for the stop-and-copy gate",
                          s->d->domid);
            return LXM_ERROR_ABORTED;
        }
        rc = save_report(s);
        if (rc)
            return rc;
    }
    s->prog.gate_held = true;
    return 0;
}

static int save_live(saver *s)
{
    const lxm__save_params *p = s->params;
    lxm__precopy_state st;
    lxm__precopy_decision dec;
    uint64_t t0, bytes0, bytes, elapsed, dirty;
    uint32_t round = 1;
    uint32_t max_rounds = p->max_rounds ? p->max_rounds : SIM_MAX_ROUNDS;
    bool forced_logged = false;
    size_t i;
    int rc;

    /* Round 1: clear the log, send everything (extra pages too). */
    for (i = 0; i < s->d->dirty_words; i++)
        __atomic_store_n(&s->d->dirty[i], 0, __ATOMIC_RELEASE);
    memset(&st, 0, sizeof(st));
    st.prev_dirty_pages = s->d->npages;
    save_set_all(s);
    t0 = now_ns();
    bytes0 = lxm_stream_writer_offset(s->w);
    rc = save_round(s, round, s->d->npages, true);
    if (rc)
        return rc;

    for (;;) {
        elapsed = now_ns() - t0;
        if (!elapsed)
            elapsed = 1;
        dirty = save_collect(s);
        st.round = round;
        st.dirty_pages = dirty;
        bytes = lxm_stream_writer_offset(s->w) - bytes0;
        st.bandwidth =
            (uint64_t)((unsigned __int128)bytes * 1000000000u / elapsed);
        s->prog.dirty_pages = dirty;
        s->prog.dirty_rate =
            (uint64_t)((unsigned __int128)dirty * 1000000000u / elapsed);
        dec = lxm__precopy_decide(p, &st);
        st.prev_dirty_pages = dirty;
        LXM_LOG_DEBUG(
            s->b->lg,
            "sim: save of domain %u: round %u: %" PRIu64 " dirty, %" PRIu64
            " B/s, fixed %" PRIu32 " ms, decision %d",
            s->d->domid, round, dirty, st.bandwidth, p->fixed_ms, (int)dec);
        if (dec == LXM__PRECOPY_ABORT) {
            LXM_LOG_ERROR(s->b->lg,
                          "sim: save of domain %u: migration aborted by "
                          "policy %s: dirty set not converging after %u "
                          "rounds",
                          s->d->domid, lxm__precopy_policy_name(p->policy),
                          round);
            return LXM_ERROR_REFUSED;
        }
        if (dec == LXM__PRECOPY_STOP_AND_COPY) {
            if (!forced_logged && dirty && st.round >= max_rounds &&
                lxm__precopy_downtime_ms(p, dirty, st.bandwidth) >
                    p->downtime_ms) {
                /* Stopping because of the bound, not because it fits. */
                forced_logged = true;
                s->prog.precopy_forced = true;
                lxm__log(s->b->lg, XTL_WARN, -1,
                         "sim: save of domain %u: pre-copy did not "
                         "converge in %u rounds (%" PRIu64 " pages still "
                         "dirty): stopping and copying anyway",
                         s->d->domid, round, dirty);
            }
            rc = save_gate(s, dirty, round, max_rounds);
            if (rc < 0)
                return rc;
            if (rc == 0)
                break;
            /* Another migration of this host is paused: keep copying
             * live while we wait for our turn. */
        }
        round++;
        t0 = now_ns();
        bytes0 = lxm_stream_writer_offset(s->w);
        rc = save_round(s, round, dirty, false);
        if (rc)
            return rc;
    }

    /* Stop and copy: what was dirty plus what got dirty since, and the
     * extra pages again (on real Xen the special pages change under
     * pre-copy: the frozen copy is the one that counts). */
    rc = save_suspend(s);
    if (rc)
        return rc;
    dirty = save_collect(s);
    s->prog.dirty_pages = dirty;
    return save_round(s, round + 1, dirty, true);
}

/* save() into fd (>= 0) or through sink (fast path). */
static int save_any(lxm__backend *b, uint32_t domid, int fd,
                    lxm_sink_write_fn *sink, void *sink_opaque,
                    const lxm__save_params *params,
                    lxm__save_progress_fn *progress, void *opaque)
{
    lxm__save_params defaults;
    lxm__guest_desc g;
    char name[LXM__NAME_MAX];
    lxm__dom_state before = LXM__DOM_RUNNING;
    bool marked = false;
    saver s;
    sim_dom *d = NULL;
    int rc;

    memset(&s, 0, sizeof(s));
    if (!params) {
        lxm__save_params_init(&defaults);
        params = &defaults;
    }
    rc = dom_get_id(b, domid, &d);
    if (rc)
        return rc;

    pthread_mutex_lock(&b->lock);
    if (d->saving) {
        LXM_LOG_ERROR(b->lg, "sim: domain %u (%s): already being saved", domid,
                      d->name);
        rc = LXM_ERROR_STATE;
    } else if (d->state != LXM__DOM_RUNNING && d->state != LXM__DOM_PAUSED) {
        LXM_LOG_ERROR(b->lg, "sim: cannot save domain %u (%s): it is %s", domid,
                      d->name, state_name(d->state));
        rc = LXM_ERROR_STATE;
    } else {
        d->saving = true;
        __atomic_store_n(&d->abort_save, 0, __ATOMIC_RELAXED);
        before = d->state;
        marked = true;
        /* The pages change under us only while the workload runs. */
        s.copy = d->state == LXM__DOM_RUNNING && d->dirty_rate > 0;
        guest_desc(d, &g, name, sizeof(name));
    }
    pthread_mutex_unlock(&b->lock);
    if (rc)
        goto out;

    s.b = b;
    s.d = d;
    s.params = params;
    s.progress = progress;
    s.opaque = opaque;
    s.set = calloc(d->dirty_words, sizeof(uint64_t));
    s.buf =
        s.copy ? malloc((size_t)LXM_PAGE_DATA_MAX_PAGES * LXM_PAGE_SIZE) : NULL;
    if (!s.set || (s.copy && !s.buf)) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    if (sink)
        rc = lxm_stream_writer_new(LXM_FORMAT_XL, sink, sink_opaque, b->lg,
                                   &s.w);
    else
        rc = lxm_stream_writer_new_fd(LXM_FORMAT_XL, fd, b->lg, &s.w);
    if (rc)
        goto out;
    rc = lxm__guest_stream_begin(s.w, &g);
    if (rc) {
        LXM_LOG_ERROR(b->lg,
                      "sim: save of domain %u: cannot write the stream "
                      "headers: %s",
                      domid, lxm_strerror(rc));
        goto out;
    }

    if (params->live && before == LXM__DOM_RUNNING) {
        rc = save_live(&s);
    } else {
        s.prog.round = 1;
        rc = save_gate(&s, 0, 1, 1);
        if (!rc)
            rc = save_suspend(&s);
        if (!rc) {
            save_set_all(&s);
            rc = save_round(&s, 1, d->npages, true);
        }
    }
    if (rc)
        goto out;

    rc = lxm__guest_stream_end(s.w, &g);
    if (rc) {
        LXM_LOG_ERROR(b->lg,
                      "sim: save of domain %u: cannot write the end of "
                      "the stream: %s",
                      domid, lxm_strerror(rc));
        goto out;
    }
    s.prog.bytes_written = lxm_stream_writer_offset(s.w);
    LXM_LOG_DEBUG(b->lg, "sim: saved domain %u: %u rounds, %" PRIu64 " bytes",
                  domid, s.prog.round, s.prog.bytes_written);
    if (progress)
        progress(opaque, &s.prog);

out:
    if (rc && s.prog.gate_held) {
        /* A failed save holds no slot (backend.h). */
        lxm__stopcopy_gate_release(params->gate);
        s.prog.gate_held = false;
    }
    if (marked) {
        pthread_mutex_lock(&b->lock);
        d->saving = false;
        if (rc && d->state != before) {
            /* Failed: the guest runs (or stays paused) here again. */
            d->state = before;
            wl_apply(d);
            meta_write(b, d);
        }
        pthread_mutex_unlock(&b->lock);
    }
    lxm_stream_writer_free(s.w);
    free(s.set);
    free(s.buf);
    dom_put(d);
    return rc;
}

static int sim_save(lxm__backend *b, uint32_t domid, int fd,
                    const lxm__save_params *params,
                    lxm__save_progress_fn *progress, void *opaque)
{
    if (fd < 0) {
        LXM_LOG_ERROR(b->lg, "sim: save of domain %u: bad fd %d", domid, fd);
        return LXM_ERROR_INVAL;
    }
    return save_any(b, domid, fd, NULL, NULL, params, progress, opaque);
}

static int sim_save_sink(lxm__backend *b, uint32_t domid,
                         lxm_sink_write_fn *sink, void *sink_opaque,
                         const lxm__save_params *params,
                         lxm__save_progress_fn *progress, void *opaque)
{
    if (!sink)
        return LXM_ERROR_INVAL;
    return save_any(b, domid, -1, sink, sink_opaque, params, progress, opaque);
}

/* ---- restore ----------------------------------------------------- */

/*
 * Pages go into the memory file with pwrite(), not through the mapping:
 * no page fault and no zeroing per page.  Runs of consecutive pfns whose
 * data lie one after the other in the fed buffer are written with one
 * call; zero pages never written before are skipped (the fresh file is
 * sparse: they stay holes).
 */
#define RESTORE_RUN_MAX 512u /* pages per pwrite() */
#define RESTORE_READ_CHUNK (1u << 20)

struct lxm__restore_ctx {
    lxm__backend *b;
    char *name; /* override, NULL ok; owned */
    sim_dom *d; /* reserved once the xl header is in */
    bool reserved;
    bool done;
    lxm_stream_reader *rd;
    int mem_fd;        /* O_WRONLY on the memory file; -1 */
    uint64_t *written; /* pfns written so far (bitmap) */
    /* The buffer being fed: page data inside it stays valid until the
     * feed returns, so runs may point into it. */
    const uint8_t *feed_lo, *feed_hi;
    uint64_t run_pfn;
    const uint8_t *run_data;
    uint32_t run_n;
};
typedef struct lxm__restore_ctx restorer;

/* Make the domain the xl header's config describes. */
static int restore_header(restorer *rs, const lxm_stream_event *ev)
{
    lxm__backend *b = rs->b;
    char err[128];
    yajl_val v = NULL;
    const char *s, *name;
    uint64_t memkb = 0, vcpus = 1;
    sim_dom *d = NULL;
    lxm__rng r;
    int rc;

    if (!ev->u.xl.config || !ev->u.xl.config_len ||
        !(ev->u.xl.mandatory_flags & LXM_XL_MANDATORY_JSON)) {
        LXM_LOG_ERROR(b->lg, "sim: restore: the stream's xl header carries no "
                             "JSON domain config");
        return LXM_ERROR_INVAL;
    }
    if (ev->u.xl.config[ev->u.xl.config_len - 1] != '\0') {
        LXM_LOG_ERROR(b->lg, "sim: restore: the domain config is not NUL "
                             "terminated");
        return LXM_ERROR_INVAL;
    }
    v = yajl_tree_parse(ev->u.xl.config, err, sizeof(err));
    if (!v) {
        LXM_LOG_ERROR(b->lg, "sim: restore: the domain config is not JSON: %s",
                      err);
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    d = dom_alloc(b);
    if (!d) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }

    name = rs->name ? rs->name : jstr(v, "c_info", "name");
    if (!name_ok(name)) {
        LXM_LOG_ERROR(b->lg, "sim: restore: missing or invalid domain name "
                             "(c_info.name)");
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    snprintf(d->name, sizeof(d->name), "%s", name);
    if (kind_parse(jstr(v, "c_info", "type"), &d->kind)) {
        LXM_LOG_ERROR(b->lg,
                      "sim: restore of %s: c_info.type must be pv, pvh "
                      "or hvm",
                      d->name);
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    if (!ju64(v, "b_info", "max_memkb", &memkb) || !memkb)
        ju64(v, "b_info", "target_memkb", &memkb);
    if (!memkb || memkb % 4 || memkb > SIM_MEMORY_MAX / 1024) {
        LXM_LOG_ERROR(b->lg,
                      "sim: restore of %s: b_info.max_memkb %" PRIu64
                      " is not a usable memory size",
                      d->name, memkb);
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    d->memory_bytes = memkb * 1024;
    ju64(v, "b_info", "max_vcpus", &vcpus);
    if (!vcpus || vcpus > SIM_VCPUS_MAX) {
        LXM_LOG_ERROR(b->lg,
                      "sim: restore of %s: b_info.max_vcpus %" PRIu64
                      " out of range",
                      d->name, vcpus);
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    d->vcpus = (uint32_t)vcpus;
    lxm__rng_seed(&r, lxm__hash3(now_ns(), (uintptr_t)d, memkb));
    s = jstr(v, "c_info", "uuid");
    if (uuid_ok(s))
        snprintf(d->uuid, sizeof(d->uuid), "%s", s);
    else
        make_uuid(&r, d->uuid);
    d->seed = lxm__rng_next(&r) & INT64_MAX;

    rc = reserve_domain(b, d, "restore");
    if (rc)
        goto out;
    rs->d = d;
    rs->reserved = true;
    d = NULL;
    rc = dom_map(b, rs->d, true);
    if (rc)
        goto out;
    rs->written =
        calloc(rs->d->dirty_words ? rs->d->dirty_words : 1, sizeof(uint64_t));
    if (!rs->written) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    {
        char path[PATH_MAX];

        dom_path(b, rs->d->domid, "mem", path, sizeof(path));
        rs->mem_fd = open(path, O_WRONLY | O_CLOEXEC);
        if (rs->mem_fd < 0) {
            LXM_LOG_ERRNO(b->lg, "sim: restore: cannot open %s", path);
            rc = LXM_ERROR_IO;
        }
    }

out:
    dom_free(d);
    yajl_tree_free(v);
    return rc;
}

/* A page beyond the domain's memory: keep it among its extra pages. */
static int restore_extra(restorer *rs, const lxm_stream_event *ev)
{
    sim_dom *d = rs->d;
    uint64_t pfn = ev->u.page.pfn;
    int rc = lxm__sim_extra_put(&d->extra, pfn, ev->u.page.data);

    if (rc == LXM_ERROR_INVAL)
        LXM_LOG_ERROR(rs->b->lg,
                      "sim: restore of domain %u (%s): pfn %#" PRIx64
                      " at stream offset %" PRIu64 " is beyond its memory "
                      "(%" PRIu64 " pages) and above the highest pfn the "
                      "sim accepts (%#" PRIx64 ")",
                      d->domid, d->name, pfn, ev->offset, d->npages,
                      LXM__SIM_EXTRA_PFN_LIMIT - 1);
    else if (rc == LXM_ERROR_UNSUPPORTED)
        LXM_LOG_ERROR(rs->b->lg,
                      "sim: restore of domain %u (%s): pfn %#" PRIx64
                      " at stream offset %" PRIu64 " is beyond its memory "
                      "(%" PRIu64 " pages) and the sim keeps at most %u "
                      "such pages",
                      d->domid, d->name, pfn, ev->offset, d->npages,
                      LXM__SIM_EXTRA_MAX);
    else if (rc)
        LXM_LOG_ERROR(rs->b->lg,
                      "sim: restore of domain %u (%s): cannot keep pfn "
                      "%#" PRIx64 " at stream offset %" PRIu64 ": %s",
                      d->domid, d->name, pfn, ev->offset, lxm_strerror(rc));
    return rc;
}

static bool page_is_zero(const uint8_t *p)
{
    return !p[0] && !memcmp(p, p + 1, LXM_PAGE_SIZE - 1);
}

/* Write the pending run of pages. */
static int restore_flush(restorer *rs)
{
    size_t len = (size_t)rs->run_n * LXM_PAGE_SIZE, off = 0;
    ssize_t r;

    while (off < len) {
        r = pwrite(rs->mem_fd, rs->run_data + off, len - off,
                   (off_t)(rs->run_pfn * LXM_PAGE_SIZE + off));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            LXM_LOG_ERRNO(rs->b->lg,
                          "sim: restore of domain %u (%s): cannot write "
                          "pfn %#" PRIx64 " to its memory file",
                          rs->d->domid, rs->d->name,
                          rs->run_pfn + off / LXM_PAGE_SIZE);
            rs->run_n = 0;
            return errno == ENOSPC ? LXM_ERROR_NOSPACE : LXM_ERROR_IO;
        }
        off += (size_t)r;
    }
    rs->run_n = 0;
    return 0;
}

static int restore_page(restorer *rs, uint64_t pfn, const uint8_t *data)
{
    uint64_t bit = UINT64_C(1) << (pfn % 64);
    uint64_t *w = &rs->written[pfn / 64];
    int rc;

    if (!(*w & bit) && page_is_zero(data))
        return 0; /* a hole already */
    *w |= bit;
    if (rs->run_n && rs->run_n < RESTORE_RUN_MAX &&
        pfn == rs->run_pfn + rs->run_n &&
        data == rs->run_data + (size_t)rs->run_n * LXM_PAGE_SIZE)
        goto extend;
    rc = rs->run_n ? restore_flush(rs) : 0;
    if (rc)
        return rc;
    rs->run_pfn = pfn;
    rs->run_data = data;
extend:
    rs->run_n++;
    /* Staged by the reader (split across feeds): not valid later. */
    if (data < rs->feed_lo || data >= rs->feed_hi)
        return restore_flush(rs);
    return 0;
}

static int restore_event(void *opaque, const lxm_stream_event *ev)
{
    restorer *rs = opaque;
    sim_dom *d = rs->d;
    bool pv;

    if (ev->kind == LXM_EV_XL_HEADER)
        return restore_header(rs, ev);
    if (!d)
        return LXM_ERROR_INVAL; /* the reader starts with the xl header */

    switch (ev->kind) {
    case LXM_EV_LIBXC_HEADER:
        pv = ev->u.libxc_header.guest_type == LXM_GUEST_X86_PV;
        if (pv != (d->kind == LXM__GUEST_PV)) {
            LXM_LOG_ERROR(rs->b->lg,
                          "sim: restore of domain %u (%s): the "
                          "config says %s but the libxc stream is %s",
                          d->domid, d->name, kind_name(d->kind),
                          lxm_guest_type_name(ev->u.libxc_header.guest_type));
            return LXM_ERROR_INVAL;
        }
        return 0;

    case LXM_EV_PAGE:
        if (ev->u.page.pfn >= d->npages)
            return restore_extra(rs, ev);
        return restore_page(rs, ev->u.page.pfn, ev->u.page.data);

    case LXM_EV_STREAM_END:
        rs->done = true;
        return 0;

    default:
        return 0;
    }
}

static void sim_restore_cancel(restorer *rs)
{
    if (!rs)
        return;
    lxm_stream_reader_free(rs->rd);
    if (rs->mem_fd >= 0)
        close(rs->mem_fd);
    if (rs->d) {
        if (rs->reserved)
            unreserve_domain(rs->b, rs->d);
        wl_stop(rs->d);
        dom_free(rs->d);
    }
    free(rs->written);
    free(rs->name);
    free(rs);
}

static int sim_restore_begin(lxm__backend *b, const char *name,
                             restorer **ctx_r)
{
    lxm_stream_reader_opts ro;
    restorer *rs;
    int rc;

    *ctx_r = NULL;
    if (name && !name_ok(name)) {
        LXM_LOG_ERROR(b->lg, "sim: restore: invalid domain name");
        return LXM_ERROR_INVAL;
    }
    rs = calloc(1, sizeof(*rs));
    if (!rs)
        return LXM_ERROR_NOMEM;
    rs->b = b;
    rs->mem_fd = -1;
    if (name && !(rs->name = strdup(name))) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    memset(&ro, 0, sizeof(ro));
    ro.format = LXM_FORMAT_XL;
    ro.flags = LXM_READER_PAGES | LXM_READER_STOP_AT_END;
    ro.callback = restore_event;
    ro.opaque = rs;
    ro.logger = b->lg;
    ro.name = "sim restore stream";
    rc = lxm_stream_reader_new(&ro, &rs->rd);
    if (rc)
        goto out;
    *ctx_r = rs;
    rs = NULL;

out:
    sim_restore_cancel(rs);
    return rc;
}

static int sim_restore_feed(restorer *rs, const void *buf, size_t len)
{
    int rc, frc;

    if (rs->done)
        return 0; /* what follows the END is not ours */
    rs->feed_lo = buf;
    rs->feed_hi = (const uint8_t *)buf + len;
    rc = lxm_stream_reader_feed(rs->rd, buf, len, NULL);
    frc = rs->run_n ? restore_flush(rs) : 0;
    rs->feed_lo = rs->feed_hi = NULL;
    return rc ? rc : frc;
}

static int sim_restore_finish(restorer *rs, uint32_t *domid_r)
{
    lxm__backend *b = rs->b;
    char path[PATH_MAX];
    int rc;

    if (!rs->done || !rs->d) {
        LXM_LOG_ERROR(b->lg, "sim: restore: the stream ended early");
        rc = LXM_ERROR_STREAM_TRUNCATED;
        goto out;
    }

    /* Before the state leaves INCOMING: a restart in between deletes
     * the domain with its files. */
    dom_path(b, rs->d->domid, "extra", path, sizeof(path));
    rc = lxm__sim_extra_write(&rs->d->extra, path, b->lg);
    if (rc)
        goto out;
    rc = wl_start(b, rs->d);
    if (rc)
        goto out;
    pthread_mutex_lock(&b->lock);
    rs->d->state = LXM__DOM_PAUSED;
    rc = meta_write(b, rs->d);
    if (rc)
        rs->d->state = LXM__DOM_INCOMING;
    else
        wl_apply(rs->d);
    pthread_mutex_unlock(&b->lock);
    if (rc)
        goto out;
    LXM_LOG_DEBUG(b->lg, "sim: restored domain %u (%s), %u extra pages",
                  rs->d->domid, rs->d->name, rs->d->extra.count);
    if (domid_r)
        *domid_r = rs->d->domid;
    rs->d = NULL; /* the table's now */

out:
    sim_restore_cancel(rs);
    return rc;
}

/* The fd path: the same, reading fd in 1 MiB chunks up to the END. */
static int sim_restore(lxm__backend *b, int fd, const char *name,
                       uint32_t *domid_r)
{
    restorer *rs = NULL;
    uint8_t *buf = NULL;
    ssize_t n;
    int rc;

    rc = sim_restore_begin(b, name, &rs);
    if (rc)
        return rc;
    buf = malloc(RESTORE_READ_CHUNK);
    if (!buf) {
        rc = LXM_ERROR_NOMEM;
        goto fail;
    }
    while (!rs->done) {
        n = read(fd, buf, RESTORE_READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            LXM_LOG_ERRNO(b->lg, "sim: restore: cannot read the stream");
            rc = LXM_ERROR_IO;
            goto fail;
        }
        if (n == 0)
            break; /* finish() says it ended early */
        rc = sim_restore_feed(rs, buf, (size_t)n);
        if (rc)
            goto fail;
    }
    free(buf);
    return sim_restore_finish(rs, domid_r);

fail:
    free(buf);
    sim_restore_cancel(rs);
    return rc;
}

const lxm__backend_ops lxm__backend_sim_ops = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .host_info = sim_host_info,
    .list = sim_list,
    .domain_info = sim_domain_info,
    .domain_config = sim_domain_config,
    .save = sim_save,
    .restore = sim_restore,
    .save_abort = sim_save_abort,
    .pause = sim_pause,
    .unpause = sim_unpause,
    .resume = sim_resume,
    .destroy = sim_destroy,
    .rename = sim_rename,
    .memory_digest = sim_memory_digest,
};

const lxm__backend_fastpath lxm__backend_sim_fastpath = {
    .save_sink = sim_save_sink,
    .restore_begin = sim_restore_begin,
    .restore_feed = sim_restore_feed,
    .restore_finish = sim_restore_finish,
    .restore_cancel = sim_restore_cancel,
};

const lxm__backend_fastpath *
lxm__backend_fastpath_of(const lxm__backend_ops *ops)
{
    return ops == &lxm__backend_sim_ops ? &lxm__backend_sim_fastpath : NULL;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
