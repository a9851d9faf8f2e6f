/*
 * libxlmig/evacuate/xs_status.h - evacuation requests and status in
 * xenstore (issue 6), where an HA daemon and other dom0 tools meet us.
 *
 * The keys, all under a prefix (default LXM__XS_PREFIX, dom0's own
 * area), are written down in xenstore-hooks/README.md:
 *
 *   evacuation/request          an HA daemon writes a request id here
 *   evacuation/request-reason   (optional, written before request)
 *   evacuation/request-targets  (optional) "host host ..."
 *   evacuation/cancel           write the running request's id
 *   evacuation/watcher          "ready" while xlmig-hawatch runs
 *   evacuation/state            idle|planning|running|done|failed|
 *                               cancelled
 *   evacuation/{request-id,host,reason,started,finished,batch-size,
 *     total,migrated,failed,refused,cancelled,in-flight,exit-code,
 *     error}
 *   evacuation/vm/<name>/{state,destination,reason,downtime-ms}
 *
 * One status update is one xenstore transaction, so a reader never
 * sees the counters of one update with the VM keys of another.
 *
 * Entry points: lxm__xs_status_open(), _open_memory(), _close(),
 * _begin(), _vm(), _counts(), _end(), _get() (memory store only), and
 * lxm__xs_key_component().
 */
#ifndef LXM_XS_STATUS_H
#define LXM_XS_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xentoollog.h>

#define LXM__XS_PREFIX "/local/domain/0/xlmig"
#define LXM__XS_PATH_MAX 256

typedef struct lxm__xs_status lxm__xs_status;

/* The real xenstore (libxenstore).  LXM_ERROR_UNSUPPORTED when there is
 * none to talk to (no xenstored: not a Xen dom0, or built without
 * xenstore), which callers treat as "do not publish". */
int lxm__xs_status_open(const char *prefix, xentoollog_logger *lg,
                        lxm__xs_status **s_r);
/* An in-memory store with the same behaviour, for the tests. */
int lxm__xs_status_open_memory(const char *prefix, lxm__xs_status **s_r);
void lxm__xs_status_close(lxm__xs_status *s); /* NULL ok */

/* The value at prefix/rel in a memory store (NULL: absent).  Borrowed
 * until the next update. */
const char *lxm__xs_status_get(lxm__xs_status *s, const char *rel);
/* Updates applied so far (transactions), for the tests. */
unsigned int lxm__xs_status_updates(const lxm__xs_status *s);

/* A new evacuation: clears the keys of the last one (not the request
 * keys), state "running". */
int lxm__xs_status_begin(lxm__xs_status *s, const char *host,
                         const char *request_id, const char *reason,
                         unsigned int nr_vms, unsigned int batch_size);
/* One VM's state ("planned", "migrating", "migrated", "failed",
 * "refused", "cancelled"); destination/reason NULL ok. */
int lxm__xs_status_vm(lxm__xs_status *s, const char *vm, const char *state,
                      const char *destination, const char *reason,
                      uint64_t downtime_ms);
int lxm__xs_status_counts(lxm__xs_status *s, unsigned int migrated,
                          unsigned int failed, unsigned int refused,
                          unsigned int cancelled, unsigned int in_flight);
/* The end: state "done", "failed" or "cancelled"; error NULL ok. */
int lxm__xs_status_end(lxm__xs_status *s, const char *state, int exit_code,
                       const char *error);
/* Write (or with value NULL remove) one key under the prefix, e.g.
 * "evacuation/watcher" (the watcher's own keys). */
int lxm__xs_status_set(lxm__xs_status *s, const char *rel, const char *value);

/* A VM name as one path component: [A-Za-z0-9_-] kept, every other
 * byte as _xx (hex); false when it does not fit in out_len. */
bool lxm__xs_key_component(const char *name, char *out, size_t out_len);

#endif /* LXM_XS_STATUS_H */
