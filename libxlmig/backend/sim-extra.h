/*
 * sim-extra.h - a simulated domain's pages outside its RAM (sim-extra.c,
 * used by backend-sim.c only).
 *
 * Real Xen 4.17 HVM and PVH saves carry pages above the guest's RAM:
 * the special pages libxl sets up just below 4 GiB (xenstore, console,
 * ioreq, paging/monitor/sharing rings, the identity page table) and,
 * for PVH, the ACPI tables libxl builds at 0xfc000.  The real 128 MiB
 * PVH image has 17: pfns 0xfc000-0xfc008 and 0xfeff8-0xfefff.  A sim
 * domain's RAM is one file of memory_bytes; these pages live beside it
 * in a small table, pfn -> 4 KiB, kept sorted by pfn.
 *
 * Bounds, checked before anything is allocated:
 *   LXM__SIM_EXTRA_MAX        4096 pages (16 MiB) per domain: hundreds
 *                             of times what libxl puts there.  Not
 *                             enough for an HVM guest big enough that
 *                             hvmloader relocated RAM above 4 GiB (RAM
 *                             past the MMIO hole, 64K+ pages): such
 *                             streams are refused, naming the pfn.
 *   LXM__SIM_EXTRA_PFN_LIMIT  pfns below 2^32, i.e. guest physical
 *                             addresses below 16 TiB.  Real Xen bounds
 *                             them by the domain's p2m size; the sim
 *                             holds at most 1 TiB of RAM, so a pfn past
 *                             16 TiB is a broken or hostile stream.
 *
 * On disk (dom-<domid>.extra, written to a .tmp file and renamed):
 *   "LXMSIMX1"  8 bytes magic
 *   count       u32 LE, <= LXM__SIM_EXTRA_MAX, > 0
 *   reserved    u32, zero
 *   pfns        count x u64 LE, strictly ascending
 *   pages       count x 4096 bytes, in the same order
 * No file means no extra pages.
 *
 * Entry points: lxm__sim_extra_init/_dispose(), _put(), _find(),
 * _write(), _read(), _digest().
 *
 * Not thread safe: the owner (backend-sim.c) fills the table while the
 * domain is INCOMING and nobody else can see it; afterwards it is
 * read-only.
 */
#ifndef LXM_SIM_EXTRA_H
#define LXM_SIM_EXTRA_H

#include <xxhash.h>

#include "libxlmig_internal.h"

#define LXM__SIM_EXTRA_MAX 4096u
#define LXM__SIM_EXTRA_PFN_LIMIT (UINT64_C(1) << 32)

typedef struct lxm__sim_extra {
    uint32_t count; /* pages held */
    uint32_t cap;   /* pages allocated, <= LXM__SIM_EXTRA_MAX */
    uint64_t *pfns; /* count, strictly ascending */
    uint32_t *slot; /* slot[i]: where pfns[i]'s page is in data */
    uint8_t *data;  /* cap pages, in arrival order */
} lxm__sim_extra;

_hidden void lxm__sim_extra_init(lxm__sim_extra *x);
/* Frees everything; x is empty (init'ed) after.  NULL ok. */
_hidden void lxm__sim_extra_dispose(lxm__sim_extra *x);

/*
 * Store a copy of page (4096 bytes) as pfn's, replacing any page
 * already there.  LXM_ERROR_INVAL: pfn >= LXM__SIM_EXTRA_PFN_LIMIT;
 * LXM_ERROR_UNSUPPORTED: pfn is new and the table holds
 * LXM__SIM_EXTRA_MAX pages already; LXM_ERROR_NOMEM.  Nothing logged:
 * the caller knows the domain and the stream offset.
 */
_hidden int lxm__sim_extra_put(lxm__sim_extra *x, uint64_t pfn,
                               const void *page);

/* pfn's page (borrowed, valid until the next put or dispose), or NULL. */
_hidden const uint8_t *lxm__sim_extra_find(const lxm__sim_extra *x,
                                           uint64_t pfn);

/* The i-th page in pfn order, i < count. */
static inline const uint8_t *lxm__sim_extra_page(const lxm__sim_extra *x,
                                                 uint32_t i)
{
    return x->data + (size_t)x->slot[i] * LXM_PAGE_SIZE;
}

/*
 * Save the table to path atomically (path.tmp, then rename).  An empty
 * table removes path instead.  Errors are logged (lg: NULL ok).
 */
_hidden int lxm__sim_extra_write(const lxm__sim_extra *x, const char *path,
                                 xentoollog_logger *lg);

/*
 * Load path into x (empty on entry), checking every field against the
 * bounds above, and that every pfn is >= min_pfn (the domain's RAM
 * pages).  LXM_ERROR_NOTFOUND when there is no file (x stays empty);
 * LXM_ERROR_INVAL for a damaged file (logged, x left empty).
 */
_hidden int lxm__sim_extra_read(lxm__sim_extra *x, const char *path,
                                uint64_t min_pfn, xentoollog_logger *lg);

/* Feed the pages to a digest in pfn order: each as its pfn (u64 LE)
 * then its 4096 bytes.  An empty table adds nothing. */
_hidden void lxm__sim_extra_digest(const lxm__sim_extra *x, XXH3_state_t *st);

#endif /* LXM_SIM_EXTRA_H */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
