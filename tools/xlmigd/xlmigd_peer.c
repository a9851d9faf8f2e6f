/*
 * xlmigd_peer.c - incoming migrations, and the test-only faults.
 *
 * Entry points:
 *   xlmigd_peer_migrate()  a peer's MIGRATE frame arrived: hand the
 *                          connection to lxm__migrate_receive(), which
 *                          runs the pre-checks, the stream and the
 *                          commit sequence (migrate/migrate.h)
 *   xlmigd_fault_parse()   LXM_FAULT from the environment
 *   xlmigd_fault_hook()    the engine's on_stream_bytes hook
 *   xlmigd_fault_frame_hook()  its on_stream_frame hook
 *
 * LXM_FAULT is for the end-to-end tests only (tests/test_e2e.c); it is
 * documented as such in xlmigd(8).  It makes this agent die (as if
 * killed: _exit(137), nothing cleaned up) or drop its peer connection
 * once a migration has moved a given number of stream bytes, or
 * corrupt one compressed STREAM frame it sends (send-corrupt-after:
 * the receiver must catch it by the frame's checksum and abort).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xlmigd.h"

/* ---- markers of incoming migrations -------------------------------- */

/*
 * While a migration comes in, <state-dir>/incoming/NAME--incoming says
 * so.  If this agent dies mid-way (killed, crashed), the half-built
 * domain would outlive it under libxl (it lives in the hypervisor), so
 * the next start destroys every domain a marker names.  Only our own
 * markers count: an `xl migrate-receive` beside us uses the same
 * --incoming suffix and must be left alone.
 */
/* state dir + "/incoming/" + a d_name or NAME--incoming */
#define MARKER_PATH_MAX (PATH_MAX + 512)

static bool marker_name_ok(const char *name)
{
    const char *p;

    if (!name || !*name || strlen(name) >= LXM__NAME_MAX - 16 || name[0] == '.')
        return false;
    for (p = name; *p; p++) {
        if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
            return false;
    }
    return true;
}

static void marker_path(const xlmigd *d, const char *name, char *buf,
                        size_t len)
{
    snprintf(buf, len, "%s/incoming/%s--incoming", d->state_dir, name);
}

static bool marker_create(xlmigd *d, const char *name, const char *peer)
{
    char path[MARKER_PATH_MAX], dir[MARKER_PATH_MAX];
    FILE *fp;

    if (!marker_name_ok(name))
        return false;
    snprintf(dir, sizeof(dir), "%s/incoming", d->state_dir);
    if (mkdir(dir, 0755) && errno != EEXIST) {
        LXM_LOG_ERRNO(d->lg, "cannot create %s", dir);
        return false;
    }
    marker_path(d, name, path, sizeof(path));
    fp = fopen(path, "w");
    if (!fp) {
        LXM_LOG_ERRNO(d->lg, "cannot create %s", path);
        return false;
    }
    fprintf(fp, "%s\n", peer);
    fclose(fp);
    return true;
}

static void marker_remove(xlmigd *d, const char *name)
{
    char path[MARKER_PATH_MAX];

    marker_path(d, name, path, sizeof(path));
    if (unlink(path) && errno != ENOENT)
        LXM_LOG_ERRNO(d->lg, "cannot remove %s", path);
}

void xlmigd_cleanup_incoming(xlmigd *d)
{
    char dir[MARKER_PATH_MAX], path[2 * MARKER_PATH_MAX];
    lxm__domain_info info;
    struct dirent *e;
    DIR *dp;
    int rc;

    snprintf(dir, sizeof(dir), "%s/incoming", d->state_dir);
    dp = opendir(dir);
    if (!dp)
        return;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        if (!d->ops->domain_info(d->b, e->d_name, &info)) {
            rc = d->ops->destroy(d->b, info.domid);
            lxm__log(d->lg, rc ? XTL_ERROR : XTL_WARN, -1,
                     "%s half-received domain %s (domid %" PRIu32
                     ") left by an interrupted incoming migration%s%s",
                     rc ? "cannot destroy" : "destroyed", e->d_name, info.domid,
                     rc ? ": " : "", rc ? lxm_strerror(rc) : "");
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(dp);
}

void xlmigd_peer_migrate(xlmigd_conn *xc, const lxm__frame *f)
{
    bool marked;
    xlmigd *d = xc->d;
    lxm__migrate_opts opts;
    lxm__migrate_report rep;
    xlmigd_hook hook;
    yajl_val req = NULL;
    const char *name;
    int rc;

    rc = lxm__frame_json(f, &req);
    if (rc) {
        LXM_LOG_ERROR(d->lg, "MIGRATE from %s is not a JSON object", xc->peer);
        lxm__conn_send_error(xc->c, LXM__MSG_ERROR, LXM_ERROR_PROTOCOL,
                             "xlmigd on %s: MIGRATE is not a JSON object",
                             d->hostname);
        return;
    }
    name = lxm__jstr(req, "name");

    lxm__migrate_opts_init(&opts);
    opts.host_name = d->hostname;
    opts.codec_caps = d->cfg.caps; /* as our HELLO said */
    opts.logger = d->lg;           /* e.g. which frame was corrupt */
    if (d->fault.recv_crash_after) {
        memset(&hook, 0, sizeof(hook));
        hook.d = d;
        opts.on_stream_bytes = xlmigd_fault_hook;
        opts.hook_opaque = &hook;
    }
    lxm__log(d->lg, XTL_INFO, -1, "incoming migration of %s from %s",
             name ? name : "?", xc->peer);
    memset(&rep, 0, sizeof(rep));
    marked = marker_create(d, name, xc->peer);
    rc = lxm__migrate_receive(d->ops, d->b, xc->c, req, &opts, &rep);
    if (marked)
        marker_remove(d, name);
    if (rc)
        lxm__log(d->lg, XTL_ERROR, -1,
                 "incoming migration of %s from %s: %s: %s", name ? name : "?",
                 xc->peer, lxm__migrate_status_name(rep.status),
                 rep.error[0] ? rep.error : lxm_strerror(rc));
    else
        lxm__log(d->lg, XTL_INFO, -1,
                 "incoming migration of %s from %s: running here as domid"
                 " %" PRIu32,
                 name ? name : "?", xc->peer, rep.dest_domid);
    yajl_tree_free(req);
}

/* ---- LXM_FAULT ----------------------------------------------------- */

int xlmigd_fault_parse(const char *spec, xlmigd_fault *f)
{
    static const struct {
        const char *key;
        size_t off;
    } keys[] = {
        { "recv-crash-after", offsetof(xlmigd_fault, recv_crash_after) },
        { "send-crash-after", offsetof(xlmigd_fault, send_crash_after) },
        { "send-drop-after", offsetof(xlmigd_fault, send_drop_after) },
        { "send-corrupt-after", offsetof(xlmigd_fault, send_corrupt_after) },
    };
    char buf[256], *item, *save = NULL, *eq, *end;
    unsigned long long v;
    size_t i;

    memset(f, 0, sizeof(*f));
    if (!spec || !*spec)
        return 0;
    if (strlen(spec) >= sizeof(buf))
        goto bad;
    memcpy(buf, spec, strlen(spec) + 1);
    for (item = strtok_r(buf, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        eq = strchr(item, '=');
        if (!eq)
            goto bad;
        *eq = '\0';
        for (i = 0; i < LXM_ARRAY_SIZE(keys); i++) {
            if (!strcmp(item, keys[i].key))
                break;
        }
        if (i == LXM_ARRAY_SIZE(keys) || eq[1] < '0' || eq[1] > '9')
            goto bad;
        errno = 0;
        v = strtoull(eq + 1, &end, 10);
        if (errno || *end || !v)
            goto bad;
        *(uint64_t *)((char *)f + keys[i].off) = v;
    }
    return 0;

bad:
    fprintf(stderr,
            "xlmigd: bad LXM_FAULT '%s' (test only: recv-crash-after=BYTES,"
            " send-crash-after=BYTES, send-drop-after=BYTES,"
            " send-corrupt-after=BYTES)\n",
            spec);
    return LXM_ERROR_INVAL;
}

static uint16_t sockaddr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

/*
 * The engine owns the connection to the destination; find it among our
 * fds (a TCP socket whose peer port is the destination's and whose
 * local port is not our listening port) and shut it down.
 */
static void drop_connection(xlmigd_hook *h)
{
    xlmigd *d = h->d;
    struct sockaddr_storage ss;
    socklen_t sl;
    const char *colon = strrchr(h->dest, ':');
    unsigned long port = colon ? strtoul(colon + 1, NULL, 10) : 0;
    struct dirent *de;
    DIR *dir;
    int fd, n = 0;

    dir = port ? opendir("/proc/self/fd") : NULL;
    if (!dir) {
        LXM_LOG_ERROR(d->lg, "LXM_FAULT: cannot find the connection to %s",
                      h->dest);
        return;
    }
    while ((de = readdir(dir))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        fd = atoi(de->d_name);
        sl = sizeof(ss);
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) ||
            sockaddr_port(&ss) != port)
            continue;
        sl = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) ||
            sockaddr_port(&ss) == d->listen_port)
            continue;
        shutdown(fd, SHUT_RDWR);
        n++;
    }
    closedir(dir);
    LXM_LOG_ERROR(d->lg, "LXM_FAULT: dropped %d connection(s) to %s", n,
                  h->dest);
}

void xlmigd_fault_hook(void *opaque, const char *side, uint64_t bytes)
{
    xlmigd_hook *h = opaque;
    const xlmigd_fault *f = &h->d->fault;
    bool send = !strcmp(side, "send");

    if ((!send && f->recv_crash_after && bytes >= f->recv_crash_after) ||
        (send && f->send_crash_after && bytes >= f->send_crash_after)) {
        LXM_LOG_ERROR(h->d->lg,
                      "LXM_FAULT: dying after %" PRIu64 " stream bytes (%s)",
                      bytes, side);
        _exit(137);
    }
    if (send && f->send_drop_after && bytes >= f->send_drop_after &&
        !__atomic_exchange_n(&h->dropped, true, __ATOMIC_SEQ_CST))
        drop_connection(h);
}

/* Flip one byte in the payload of the first data frame sent once raw
 * stream bytes have gone by; the frame header (and so its length and
 * sequence) stays intact, only the checksum can tell. */
void xlmigd_fault_frame_hook(void *opaque, uint8_t *frame, size_t len,
                             uint64_t raw)
{
    xlmigd_hook *h = opaque;
    const xlmigd_fault *f = &h->d->fault;

    if (!f->send_corrupt_after || raw < f->send_corrupt_after ||
        len <= LXM__FRAME_HDR_LEN * 4 || frame[4] == LXM__CODEC_END ||
        h->corrupted)
        return;
    h->corrupted = true;
    frame[len / 2] ^= 0x20;
    LXM_LOG_ERROR(h->d->lg,
                  "LXM_FAULT: corrupted a STREAM frame after %" PRIu64
                  " stream bytes",
                  raw);
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
