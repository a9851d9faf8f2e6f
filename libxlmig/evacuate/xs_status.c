/*
 * libxlmig/evacuate/xs_status.c - evacuation status in xenstore (the
 * keys are in xs_status.h and xenstore-hooks/README.md).
 *
 * Each update is built as a list of operations (write key, remove
 * subtree) and applied at once: to xenstore in one transaction (retried
 * on EAGAIN, as xenstore transactions may be), or to the in-memory store
 * the tests use.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef LXM_HAVE_XENSTORE
#include <xenstore.h>
#endif

#include "libxlmig_internal.h"

#include "evacuate/xs_status.h"

#define XS_OPS_MAX 16
#define XS_TXN_RETRIES 10
#define MEM_KEYS_MAX 4096

typedef struct xs_op {
    char path[LXM__XS_PATH_MAX];
    char *value; /* owned; NULL: remove the subtree at path */
} xs_op;

typedef struct mem_kv {
    char *path;  /* owned */
    char *value; /* owned */
} mem_kv;

struct lxm__xs_status {
    char prefix[LXM__XS_PATH_MAX - 64];
    xentoollog_logger *lg; /* borrowed, NULL ok */
    unsigned int updates;
    /* the pending update */
    xs_op ops[XS_OPS_MAX];
    unsigned int nr_ops;
    bool overflow;
    /* exactly one of the two stores */
#ifdef LXM_HAVE_XENSTORE
    struct xs_handle *xsh;
#endif
    mem_kv *mem; /* NULL unless the memory store */
    unsigned int nr_mem;
};

/* ---- building an update -------------------------------------------- */

static void ops_reset(lxm__xs_status *s)
{
    unsigned int i;

    for (i = 0; i < s->nr_ops; i++)
        free(s->ops[i].value);
    s->nr_ops = 0;
    s->overflow = false;
}

/* Queue "prefix/rel = value" (value NULL: remove).  Errors (too many
 * operations, a path too long, no memory) are remembered in overflow
 * and reported by apply(). */
static void LXM_PRINTF(3, 4)
    op_add(lxm__xs_status *s, const char *value, const char *relfmt, ...)
{
    xs_op *op;
    va_list ap;
    int n, m;

    if (s->nr_ops >= XS_OPS_MAX) {
        s->overflow = true;
        return;
    }
    op = &s->ops[s->nr_ops];
    n = (int)strlen(s->prefix); /* < sizeof(op->path) - 64 */
    memcpy(op->path, s->prefix, (size_t)n);
    op->path[n++] = '/';
    va_start(ap, relfmt);
    m = vsnprintf(op->path + n, sizeof(op->path) - (size_t)n, relfmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)n + (size_t)m >= sizeof(op->path)) {
        s->overflow = true;
        return;
    }
    op->value = NULL;
    if (value) {
        op->value = strdup(value);
        if (!op->value) {
            s->overflow = true;
            return;
        }
    }
    s->nr_ops++;
}

static void op_addu(lxm__xs_status *s, const char *rel, uint64_t v)
{
    char buf[24];

    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    op_add(s, buf, "%s", rel);
}

/* ---- the memory store ---------------------------------------------- */

/* true when path is at or under top */
static bool path_under(const char *path, const char *top)
{
    size_t n = strlen(top);

    return !strncmp(path, top, n) && (path[n] == '\0' || path[n] == '/');
}

static int mem_apply(lxm__xs_status *s)
{
    unsigned int i, j;
    const xs_op *op;

    for (i = 0; i < s->nr_ops; i++) {
        op = &s->ops[i];
        if (!op->value) {
            for (j = 0; j < s->nr_mem;) {
                if (path_under(s->mem[j].path, op->path)) {
                    free(s->mem[j].path);
                    free(s->mem[j].value);
                    s->mem[j] = s->mem[--s->nr_mem];
                } else {
                    j++;
                }
            }
            continue;
        }
        for (j = 0; j < s->nr_mem; j++)
            if (!strcmp(s->mem[j].path, op->path))
                break;
        if (j == s->nr_mem) {
            if (s->nr_mem >= MEM_KEYS_MAX)
                return LXM_ERROR_NOSPACE;
            s->mem[j].path = strdup(op->path);
            s->mem[j].value = NULL;
            if (!s->mem[j].path)
                return LXM_ERROR_NOMEM;
            s->nr_mem++;
        }
        free(s->mem[j].value);
        s->mem[j].value = strdup(op->value);
        if (!s->mem[j].value)
            return LXM_ERROR_NOMEM;
    }
    return 0;
}

/* ---- xenstore ------------------------------------------------------ */

#ifdef LXM_HAVE_XENSTORE
static int xs_apply(lxm__xs_status *s)
{
    xs_transaction_t t;
    unsigned int i, tries;
    bool ok;
    const xs_op *op;

    for (tries = 0; tries < XS_TXN_RETRIES; tries++) {
        t = xs_transaction_start(s->xsh);
        if (t == XBT_NULL) {
            LXM_LOG_ERROR(s->lg, "xenstore: cannot start a transaction: %s",
                          strerror(errno));
            return LXM_ERROR_IO;
        }
        ok = true;
        for (i = 0; i < s->nr_ops && ok; i++) {
            op = &s->ops[i];
            if (op->value)
                ok = xs_write(s->xsh, t, op->path, op->value,
                              (unsigned int)strlen(op->value));
            else
                ok = xs_rm(s->xsh, t, op->path) || errno == ENOENT;
            if (!ok)
                LXM_LOG_ERROR(s->lg, "xenstore: %s %s: %s",
                              op->value ? "write" : "rm", op->path,
                              strerror(errno));
        }
        if (!ok) {
            xs_transaction_end(s->xsh, t, true);
            return LXM_ERROR_IO;
        }
        if (xs_transaction_end(s->xsh, t, false))
            return 0;
        if (errno != EAGAIN) {
            LXM_LOG_ERROR(s->lg, "xenstore: transaction failed: %s",
                          strerror(errno));
            return LXM_ERROR_IO;
        }
    }
    LXM_LOG_ERROR(s->lg, "xenstore: transaction conflicted %u times",
                  XS_TXN_RETRIES);
    return LXM_ERROR_IO;
}
#endif

static int apply(lxm__xs_status *s)
{
    int rc;

    if (s->overflow) {
        LXM_LOG_ERROR(s->lg,
                      "xenstore status under %s: a key path is too "
                      "long or the update too large",
                      s->prefix);
        rc = LXM_ERROR_INVAL;
        goto out;
    }
    if (s->mem)
        rc = mem_apply(s);
    else
#ifdef LXM_HAVE_XENSTORE
        rc = xs_apply(s);
#else
        rc = LXM_ERROR_UNSUPPORTED;
#endif
    if (!rc)
        s->updates++;
out:
    ops_reset(s);
    return rc;
}

/* ---- opening and closing ------------------------------------------- */

static int status_new(const char *prefix, lxm__xs_status **s_r)
{
    lxm__xs_status *s;
    size_t n;

    if (!prefix)
        prefix = LXM__XS_PREFIX;
    n = strlen(prefix);
    while (n > 1 && prefix[n - 1] == '/')
        n--;
    if (prefix[0] != '/' || n >= sizeof(s->prefix))
        return LXM_ERROR_INVAL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return LXM_ERROR_NOMEM;
    memcpy(s->prefix, prefix, n);
    *s_r = s;
    return 0;
}

int lxm__xs_status_open(const char *prefix, xentoollog_logger *lg,
                        lxm__xs_status **s_r)
{
    lxm__xs_status *s = NULL;
    int rc;

    *s_r = NULL;
    rc = status_new(prefix, &s);
    if (rc)
        goto out;
    s->lg = lg;
#ifdef LXM_HAVE_XENSTORE
    s->xsh = xs_open(0);
    if (!s->xsh) {
        LXM_LOG_DEBUG(lg, "no xenstore (%s): status not published",
                      strerror(errno));
        rc = LXM_ERROR_UNSUPPORTED;
        goto out;
    }
    *s_r = s;
    s = NULL;
    rc = 0;
#else
    LXM_LOG_DEBUG(lg, "built without xenstore: status not published");
    rc = LXM_ERROR_UNSUPPORTED;
#endif
out:
    lxm__xs_status_close(s);
    return rc;
}

int lxm__xs_status_open_memory(const char *prefix, lxm__xs_status **s_r)
{
    lxm__xs_status *s = NULL;
    int rc;

    *s_r = NULL;
    rc = status_new(prefix, &s);
    if (rc)
        goto out;
    s->mem = calloc(MEM_KEYS_MAX, sizeof(*s->mem));
    if (!s->mem) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    *s_r = s;
    s = NULL;
out:
    lxm__xs_status_close(s);
    return rc;
}

void lxm__xs_status_close(lxm__xs_status *s)
{
    unsigned int i;

    if (!s)
        return;
    ops_reset(s);
#ifdef LXM_HAVE_XENSTORE
    if (s->xsh)
        xs_close(s->xsh);
#endif
    for (i = 0; i < s->nr_mem; i++) {
        free(s->mem[i].path);
        free(s->mem[i].value);
    }
    free(s->mem);
    free(s);
}

const char *lxm__xs_status_get(lxm__xs_status *s, const char *rel)
{
    char path[LXM__XS_PATH_MAX];
    unsigned int i;

    if (!s->mem)
        return NULL;
    snprintf(path, sizeof(path), "%s/%s", s->prefix, rel);
    for (i = 0; i < s->nr_mem; i++)
        if (!strcmp(s->mem[i].path, path))
            return s->mem[i].value;
    return NULL;
}

unsigned int lxm__xs_status_updates(const lxm__xs_status *s)
{
    return s->updates;
}

/* ---- updates ------------------------------------------------------- */

bool lxm__xs_key_component(const char *name, char *out, size_t out_len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    unsigned char ch;

    if (!name[0])
        return false;
    for (; *name; name++) {
        ch = (unsigned char)*name;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || ch == '-') {
            if (o + 1 >= out_len)
                return false;
            out[o++] = (char)ch;
        } else {
            if (o + 3 >= out_len)
                return false;
            out[o++] = '_';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return true;
}

static void now_key(lxm__xs_status *s, const char *rel)
{
    op_addu(s, rel, (uint64_t)time(NULL));
}

int lxm__xs_status_begin(lxm__xs_status *s, const char *host,
                         const char *request_id, const char *reason,
                         unsigned int nr_vms, unsigned int batch_size)
{
    static const char *const cleared[] = {
        "vm",     "finished", "exit-code", "error",     "migrated",
        "failed", "refused",  "cancelled", "in-flight",
    };
    unsigned int i;

    for (i = 0; i < sizeof(cleared) / sizeof(cleared[0]); i++)
        op_add(s, NULL, "evacuation/%s", cleared[i]);
    op_add(s, "running", "evacuation/state");
    op_add(s, host ? host : "", "evacuation/host");
    op_add(s, request_id ? request_id : "", "evacuation/request-id");
    op_add(s, reason ? reason : "", "evacuation/reason");
    now_key(s, "evacuation/started");
    op_addu(s, "evacuation/total", nr_vms);
    op_addu(s, "evacuation/batch-size", batch_size);
    return apply(s);
}

int lxm__xs_status_vm(lxm__xs_status *s, const char *vm, const char *state,
                      const char *destination, const char *reason,
                      uint64_t downtime_ms)
{
    char key[LXM__XS_PATH_MAX / 2], buf[24];

    if (!lxm__xs_key_component(vm, key, sizeof(key))) {
        LXM_LOG_ERROR(s->lg,
                      "xenstore status: VM name '%s' is too long "
                      "for a key",
                      vm);
        return LXM_ERROR_INVAL;
    }
    op_add(s, state, "evacuation/vm/%s/state", key);
    op_add(s, vm, "evacuation/vm/%s/name", key);
    if (destination)
        op_add(s, destination, "evacuation/vm/%s/destination", key);
    if (reason)
        op_add(s, reason, "evacuation/vm/%s/reason", key);
    if (downtime_ms) {
        snprintf(buf, sizeof(buf), "%" PRIu64, downtime_ms);
        op_add(s, buf, "evacuation/vm/%s/downtime-ms", key);
    }
    return apply(s);
}

int lxm__xs_status_counts(lxm__xs_status *s, unsigned int migrated,
                          unsigned int failed, unsigned int refused,
                          unsigned int cancelled, unsigned int in_flight)
{
    op_addu(s, "evacuation/migrated", migrated);
    op_addu(s, "evacuation/failed", failed);
    op_addu(s, "evacuation/refused", refused);
    op_addu(s, "evacuation/cancelled", cancelled);
    op_addu(s, "evacuation/in-flight", in_flight);
    return apply(s);
}

int lxm__xs_status_end(lxm__xs_status *s, const char *state, int exit_code,
                       const char *error)
{
    char buf[16];

    snprintf(buf, sizeof(buf), "%d", exit_code);
    op_add(s, buf, "evacuation/exit-code");
    if (error)
        op_add(s, error, "evacuation/error");
    now_key(s, "evacuation/finished");
    /* last, so that a reader watching state sees the rest set */
    op_add(s, state, "evacuation/state");
    return apply(s);
}

int lxm__xs_status_set(lxm__xs_status *s, const char *rel, const char *value)
{
    op_add(s, value, "%s", rel);
    return apply(s);
}
