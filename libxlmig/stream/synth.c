/*
 * synth.c - synthetic migration streams of a made-up x86 guest, shaped
 * like what Xen 4.17's `xl save` / `xl migrate` write, for the CLI's
 * stream-synth, the tests and the benchmarks.
 *
 * Entry point: lxm__synth_write().
 *
 * What is written, in order (the writer checks every step):
 *   [xl header with a libxl-style JSON config]      format xl
 *   [LibxlFmt header, LIBXC_CONTEXT]                format xl/libxl
 *   libxc image + domain header
 *   static data: X86_PV_INFO (PV), X86_CPUID_POLICY, X86_MSR_POLICY,
 *     STATIC_DATA_END; X86_PV_P2M_FRAMES (PV)
 *   memory: round 0 sends every pfn in ascending order, in PAGE_DATA
 *     batches of up to 1024; rounds 1..'rounds' re-send a shrinking,
 *     ascending dirty subset (a hot working set) with new contents; the
 *     last of them is the stop-and-copy round
 *   end of checkpoint: X86_TSC_INFO, then HVM_CONTEXT + HVM_PARAMS
 *     (HVM/PVH) or SHARED_INFO + per-vcpu X86_PV_VCPU_{BASIC,EXTENDED,
 *     XSAVE,MSRS} (PV)
 *   checkpointed (Remus-style): libxc CHECKPOINT; libxl emulator records
 *     (HVM) + CHECKPOINT_END; one more dirty round + end of checkpoint +
 *     CHECKPOINT; libxl emulator records + CHECKPOINT_END
 *   libxc END
 *   [HVM, not checkpointed: EMULATOR_XENSTORE_DATA, EMULATOR_CONTEXT]
 *   [libxl END]
 *
 * The records around the pages (headers, static data, end of
 * checkpoint, emulator records) are guest.c's, shared with the sim
 * backend; this file makes up the memory.
 *
 * Everything derives from opts->seed through our own PRNG (splitmix64
 * to seed xoshiro256**, libxlmig_internal.h), and a page's contents
 * only from (seed, pfn, round), so the output is the same on every run
 * and host.  Pages are built in one reusable 4 MiB batch buffer: no
 * allocation per page.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "libxlmig_internal.h"

#define SYNTH_VCPUS_MAX 128u
#define SYNTH_PAGES_MAX (UINT64_C(1) << 32) /* 16 TiB */

/* ---- the synthetic guest ----------------------------------------- */

typedef struct synth {
    lxm_stream_writer *w;
    const lxm__synth_opts *o;
    lxm__guest_desc g; /* what guest.c writes around the pages */
    bool pv;
    uint64_t npages;       /* RAM pages */
    uint64_t nr_pfns;      /* pfns of round 0 (PV: p2m size) */
    uint64_t special_base; /* HVM: first special pfn */
    /* PV: page tables occupy [pt_base, pt_base + nr_pt), XTAB pfns
     * [npages, nr_pfns). */
    uint64_t pt_base;
    uint32_t nr_pt;
    uint64_t always_hot; /* a pfn dirty in every round */

    /* The current PAGE_DATA batch. */
    uint8_t *buf; /* LXM_PAGE_DATA_MAX_PAGES pages */
    uint64_t pfns[LXM_PAGE_DATA_MAX_PAGES];
    const void *pages[LXM_PAGE_DATA_MAX_PAGES];
    uint32_t count, nr_data;
} synth;

/* ---- page contents ----------------------------------------------- */

/* A page table of 'level' (1-4): a few present entries pointing at
 * guest pfns, as libxc normalises them (pfn << 12 | flags). */
static void fill_pagetable(synth *s, lxm__rng *r, uint8_t *p,
                           unsigned int level)
{
    uint32_t i, used = level == 1 ? 64 + lxm__rng_below(r, 448)
                                  : 1 + lxm__rng_below(r, level == 4 ? 4 : 32);
    uint32_t start = level == 4 ? 256 : lxm__rng_below(r, 512 - used + 1);

    memset(p, 0, LXM_PAGE_SIZE);
    for (i = 0; i < used; i++) {
        uint64_t pfn = lxm__rng_next(r) % s->npages;
        uint64_t flags = level == 1 ? 0x63 : 0x67; /* P RW A D (U) */

        if (level == 1 && !(i % 5))
            flags |= UINT64_C(1) << 63; /* NX */
        lxm__put_le64(p + 8 * (start + i), (pfn << 12) | flags);
    }
}

static unsigned int pv_page_type(const synth *s, uint64_t pfn)
{
    uint64_t i;

    if (!s->pv)
        return LXM_PAGE_NOTAB;
    if (pfn >= s->npages)
        return LXM_PAGE_XTAB;
    if (pfn < s->pt_base || pfn >= s->pt_base + s->nr_pt)
        return LXM_PAGE_NOTAB;

    /* The page-table block: one pinned L4, then L3s, L2s and L1s, every
     * level with a pinned and unpinned share (Linux pins the roots of
     * process page tables). */
    i = pfn - s->pt_base;
    if (i == 0)
        return LXM_PAGE_L4TAB_PIN;
    if (i == 1)
        return LXM_PAGE_L3TAB_PIN;
    if (i == 2)
        return LXM_PAGE_L3TAB;
    if (i == 3)
        return LXM_PAGE_L2TAB;
    if (i == 4)
        return LXM_PAGE_L2TAB_PIN;
    return (i % 2) ? LXM_PAGE_L1TAB : LXM_PAGE_L1TAB_PIN;
}

/* Contents of pfn as sent in 'round' (0 = the first full copy). */
static void fill_page(synth *s, uint8_t *p, uint64_t pfn, uint32_t round,
                      unsigned int type)
{
    lxm__rng r;
    uint32_t kind;

    lxm__rng_seed(&r, lxm__hash3(s->o->seed, pfn, round));

    switch (type) {
    case LXM_PAGE_L1TAB:
    case LXM_PAGE_L1TAB_PIN:
        fill_pagetable(s, &r, p, 1);
        return;
    case LXM_PAGE_L2TAB:
    case LXM_PAGE_L2TAB_PIN:
        fill_pagetable(s, &r, p, 2);
        return;
    case LXM_PAGE_L3TAB:
    case LXM_PAGE_L3TAB_PIN:
        fill_pagetable(s, &r, p, 3);
        return;
    case LXM_PAGE_L4TAB:
    case LXM_PAGE_L4TAB_PIN:
        fill_pagetable(s, &r, p, 4);
        return;
    }

    if (s->special_base && pfn >= s->special_base) {
        /* Special pages: mostly empty rings. */
        memset(p, 0, LXM_PAGE_SIZE);
        lxm__rng_fill(&r, p, 64);
        return;
    }

    /* ~40% zero, 20% code, 20% text, 20% random in the first copy;
     * pages dirtied later are rarely zero. */
    kind = lxm__rng_below(&r, 100);
    if (round > 0 && kind < 40)
        kind = kind < 8 ? 0 : 40 + kind % 60;
    if (kind < 40)
        memset(p, 0, LXM_PAGE_SIZE);
    else if (kind < 60)
        lxm__fill_code_page(&r, p);
    else if (kind < 80)
        lxm__fill_text_page(&r, p);
    else
        lxm__rng_fill(&r, p, LXM_PAGE_SIZE);
}

/* ---- PAGE_DATA batches ------------------------------------------- */

static int batch_flush(synth *s)
{
    int rc;

    if (!s->count)
        return 0;
    rc = lxm_stream_write_page_data(s->w, s->count, s->pfns, s->pages);
    s->count = 0;
    s->nr_data = 0;
    return rc;
}

static int batch_add(synth *s, uint64_t pfn, uint32_t round)
{
    unsigned int type = pv_page_type(s, pfn);
    int rc;

    if (s->count == LXM_PAGE_DATA_MAX_PAGES) {
        rc = batch_flush(s);
        if (rc)
            return rc;
    }
    s->pfns[s->count++] = LXM_PFN_WORD(pfn, type);
    if (lxm_page_type_has_data(type)) {
        uint8_t *p = s->buf + (size_t)s->nr_data * LXM_PAGE_SIZE;

        fill_page(s, p, pfn, round, type);
        s->pages[s->nr_data++] = p;
    }
    return 0;
}

/* Round 0: every pfn, ascending. */
static int send_all(synth *s)
{
    uint64_t pfn;
    uint32_t i;
    int rc;

    for (pfn = 0; pfn < s->nr_pfns; pfn++) {
        rc = batch_add(s, pfn, 0);
        if (rc)
            return rc;
    }
    if (s->special_base)
        for (i = 0; i < LXM__GUEST_SPECIAL_PAGES; i++) {
            rc = batch_add(s, s->special_base + i, 0);
            if (rc)
                return rc;
        }
    return batch_flush(s);
}

/*
 * Round k > 0: the pages the guest dirtied since.  A pfn's "heat" is
 * fixed by the seed; round k re-sends the pfns hotter than a threshold
 * that halves every round (1/4 of memory, 1/8, ...), so each dirty set
 * is a subset of the one before: a working set converging, as pre-copy
 * does.  One pfn is dirty in every round so no round is empty.
 */
static int send_dirty(synth *s, uint32_t round)
{
    uint32_t shift = LXM_MIN(round + 1, 24u);
    uint64_t threshold = (UINT64_C(1) << 32) >> shift;
    uint64_t pfn;
    int rc;

    for (pfn = 0; pfn < s->npages; pfn++) {
        uint64_t heat =
            lxm__hash3(s->o->seed ^ UINT64_C(0x6865617431), pfn, 0) >> 32;

        if (heat >= threshold && pfn != s->always_hot)
            continue;
        rc = batch_add(s, pfn, round);
        if (rc)
            return rc;
    }
    return batch_flush(s);
}


/* ---- the whole stream -------------------------------------------- */

/* The writer's logger is private to writer.c, so a bad option is only
 * reported as LXM_ERROR_INVAL; callers validate user input first. */
static int check_opts(const lxm__synth_opts *o)
{
    const char *why = NULL;

    if (o->guest_type != LXM_GUEST_X86_PV && o->guest_type != LXM_GUEST_X86_HVM)
        why = "guest type must be x86 PV or HVM";
    else if (o->pvh && o->guest_type != LXM_GUEST_X86_HVM)
        why = "PVH is an HVM guest type";
    else if (!o->memory_bytes || o->memory_bytes % LXM_PAGE_SIZE)
        why = "memory must be a non-zero multiple of 4096 bytes";
    else if (o->memory_bytes / LXM_PAGE_SIZE > SYNTH_PAGES_MAX)
        why = "memory too large";
    else if (o->vcpus > SYNTH_VCPUS_MAX)
        why = "too many vcpus";
    else if (o->rounds > 64)
        why = "more than 64 pre-copy rounds";
    if (why)
        return LXM_ERROR_INVAL;
    return 0;
}

int lxm__synth_write(lxm_stream_writer *w, const lxm__synth_opts *o)
{
    synth s;
    uint32_t round, cp;
    int rc;

    memset(&s, 0, sizeof(s));
    rc = check_opts(o);
    if (rc)
        goto out;

    s.w = w;
    s.o = o;
    s.pv = o->guest_type == LXM_GUEST_X86_PV;
    s.npages = o->memory_bytes / LXM_PAGE_SIZE;
    s.nr_pfns = s.npages;
    if (s.pv) {
        /* Ballooned-out pfns at the top of the p2m: XTAB, no data. */
        s.nr_pfns += 2 + s.npages / 2048;
        s.nr_pt = (uint32_t)LXM_MIN(s.npages / 2, 7 + s.npages / 256);
        s.pt_base = s.npages / 4;
    } else {
        s.special_base = lxm__guest_special_base(s.npages);
    }
    s.always_hot = lxm__hash3(o->seed, UINT64_C(0x686f74), 0) % s.npages;

    s.g.guest_type = o->guest_type;
    s.g.pvh = o->pvh;
    s.g.memory_bytes = o->memory_bytes;
    s.g.nr_pfns = s.nr_pfns;
    s.g.vcpus = o->vcpus;
    s.g.seed = o->seed;
    s.g.name = o->name;

    s.buf = malloc((size_t)LXM_PAGE_DATA_MAX_PAGES * LXM_PAGE_SIZE);
    if (!s.buf) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }

    rc = lxm__guest_stream_begin(w, &s.g);
    if (rc)
        goto out;

    /* The live part: full copy, then the dirty rounds. */
    rc = send_all(&s);
    if (rc)
        goto out;
    for (round = 1; round <= o->rounds; round++) {
        rc = send_dirty(&s, round);
        if (rc)
            goto out;
    }
    if (!o->checkpointed) {
        rc = lxm__guest_stream_end(w, &s.g);
        goto out;
    }

    rc = lxm__guest_end_of_checkpoint(w, &s.g, 0);
    if (rc)
        goto out;
    for (cp = 0; cp < 2; cp++) {
        if (cp) {
            rc = send_dirty(&s, o->rounds + cp);
            if (rc)
                goto out;
            rc = lxm__guest_end_of_checkpoint(w, &s.g, cp);
            if (rc)
                goto out;
        }
        rc = lxm_stream_write_libxc_record(w, LXM_LIBXC_CHECKPOINT, NULL, 0);
        if (rc)
            goto out;
        if (lxm__stream_writer_expect(w) == LXM__EXPECT_LIBXL_RECORD) {
            rc = lxm__guest_emulator_records(w, &s.g, cp);
            if (rc)
                goto out;
            rc = lxm_stream_write_libxl_record(w, LXM_LIBXL_CHECKPOINT_END,
                                               NULL, 0);
            if (rc)
                goto out;
        }
    }
    rc = lxm_stream_write_libxc_record(w, LXM_LIBXC_END, NULL, 0);
    if (rc)
        goto out;
    if (lxm__stream_writer_expect(w) == LXM__EXPECT_LIBXL_RECORD)
        rc = lxm_stream_write_libxl_record(w, LXM_LIBXL_END, NULL, 0);

out:
    free(s.buf);
    return rc;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
