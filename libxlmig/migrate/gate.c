/*
 * gate.c - the stop-and-copy gate (backend.h): at most `slots`
 * migrations of one host have their guest paused at once, so that the
 * downtime windows of parallel migrations do not overlap and each one
 * gets the whole link for its stop-and-copy.
 *
 * Entry points: lxm__stopcopy_gate_new(), _free(), _try_take(),
 * _take(), _take_for(), _release(), _stats().
 *
 * A counting semaphore under one mutex and a condition variable on
 * CLOCK_MONOTONIC.  take() (take_for() without a bound) waits in slices of at most CANCEL_POLL_MS so
 * that a cancel flag set by another thread is seen within that time.
 * Lock order: g->lock is a leaf; nothing is called with it held.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "backend/backend.h"

#define CANCEL_POLL_MS 10u

struct lxm__stopcopy_gate {
    /* Immutable after new. */
    unsigned int slots;

    /* Protected by lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned int taken;
    uint64_t waits;   /* take() calls that had to wait */
    uint64_t wait_ms; /* their total wait */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int lxm__stopcopy_gate_new(unsigned int slots, lxm__stopcopy_gate **g_r)
{
    pthread_condattr_t ca;
    lxm__stopcopy_gate *g;

    *g_r = NULL;
    if (!slots)
        return LXM_ERROR_INVAL;
    g = calloc(1, sizeof(*g));
    if (!g)
        return LXM_ERROR_NOMEM;
    g->slots = slots;
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cond, &ca);
    pthread_condattr_destroy(&ca);
    *g_r = g;
    return 0;
}

void lxm__stopcopy_gate_free(lxm__stopcopy_gate *g)
{
    if (!g)
        return;
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

bool lxm__stopcopy_gate_try_take(lxm__stopcopy_gate *g)
{
    bool ok;

    pthread_mutex_lock(&g->lock);
    ok = g->taken < g->slots;
    if (ok)
        g->taken++;
    pthread_mutex_unlock(&g->lock);
    return ok;
}

int lxm__stopcopy_gate_take_for(lxm__stopcopy_gate *g, volatile int *cancel,
                                uint32_t timeout_ms)
{
    uint64_t t0 = mono_ms(), now;
    struct timespec ts;
    bool waited = false;
    int rc = 0;

    pthread_mutex_lock(&g->lock);
    while (g->taken >= g->slots) {
        if (cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED)) {
            rc = LXM_ERROR_ABORTED;
            break;
        }
        now = mono_ms();
        if (timeout_ms != UINT32_MAX && now - t0 >= timeout_ms) {
            rc = LXM_ERROR_TIMEOUT;
            break;
        }
        waited = true;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)CANCEL_POLL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cond, &g->lock, &ts);
    }
    if (!rc)
        g->taken++;
    if (waited) {
        g->wait_ms += mono_ms() - t0;
        if (!rc)
            g->waits++;
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

int lxm__stopcopy_gate_take(lxm__stopcopy_gate *g, volatile int *cancel)
{
    return lxm__stopcopy_gate_take_for(g, cancel, UINT32_MAX);
}

void lxm__stopcopy_gate_release(lxm__stopcopy_gate *g)
{
    pthread_mutex_lock(&g->lock);
    if (g->taken)
        g->taken--;
    pthread_mutex_unlock(&g->lock);
    pthread_cond_signal(&g->cond);
}

void lxm__stopcopy_gate_stats(lxm__stopcopy_gate *g, uint64_t *waits_r,
                              uint64_t *wait_ms_r)
{
    pthread_mutex_lock(&g->lock);
    if (waits_r)
        *waits_r = g->waits;
    if (wait_ms_r)
        *wait_ms_r = g->wait_ms;
    pthread_mutex_unlock(&g->lock);
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
