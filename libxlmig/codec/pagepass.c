/*
 * pagepass.c - the page-aware pre-pass: a byte-exact transform of a
 * libxl migration stream that sends zero pages as bits and re-sent
 * pages as deltas against their last-sent contents.
 *
 * Entry points (codec.h):
 *   lxm__pagepass_encoder_new / _decoder_new
 *   lxm__pagepass_feed     any chunking, down to 1 byte
 *   lxm__pagepass_finish   flush, END token (encoder) / check it (decoder)
 *   lxm__pagepass_get_stats, lxm__pagepass_free
 *
 * Token stream, versions 1 and 2 (docs/compression.md, "Page pre-pass
 * tokens"):
 *
 *   header   "LXP" version (0x01 or 0x02), varint cache_pages (must
 *            equal the decoder's)
 *   0x00     END: the last token; nothing may follow
 *   0x01     LIT  varint n (>= 1), n bytes copied as they are
 *   0x02     PAGES: one libxc PAGE_DATA record
 *              varint count (1..1024)
 *              count x varint (zigzag(pfn - (prev_pfn + 1)) << 4 | type)
 *                (prev_pfn starts at -1; reserved pfn-word bits are 0)
 *              kind map: 2 bits per page with data, LSB first, padded
 *                with 0 bits: 0 zero, 1 raw, 2 delta, 3 invalid
 *              per non-zero data page: raw = 4096 bytes; delta =
 *                varint L (0..3839; written in 2 bytes here), then L
 *                bytes of runs
 *                {varint skip, varint n (>= 1), n new bytes} against
 *                the cached page; bytes not covered are unchanged
 *   All varints are unsigned LEB128 of at most 10 bytes.  The record
 *   header (type 1, length 8 + 8*count + 4096*pages with data) and the
 *   sub-header (count, reserved 0) are implied.
 *
 * Cache (mirrored exactly by both sides; it depends only on tokens):
 *   cache_pages = cache_bytes / 4096 entries, each one pfn's last-sent
 *   contents.  Deltas in a PAGES token refer to the cache as it was
 *   before the token.  After the token, its data pages are applied in
 *   order: a zero page drops its pfn's entry (a later delta of it is
 *   invalid in version 1); a raw or delta page stores the page and
 *   makes its entry the most recently sent; a new entry takes the most
 *   recently freed slot, else a never used one, else evicts the least
 *   recently sent.
 *   Version 2 applies them in two passes: the zero pages and the pages
 *   whose pfn had an entry before the token first, then the others, so
 *   that a new entry never evicts the base of a delta still to apply.
 *   Version 2 also keeps the set of pfns whose last-sent page was zero
 *   (bitmaps of 32768 pfns, at most max(16, cache_pages / 8) of them,
 *   at most 65536; a zero page whose bitmap cannot be had is not
 *   recorded): a delta of a pfn in that set, not in the cache, is
 *   against a page of zeros, as QEMU's XBZRLE caches the zero pages it
 *   sends.  A zero page adds its pfn; any other page removes it.
 *
 * Encoder: walks the stream layers incrementally (xl header and config,
 * libxl header and records, the libxc headers and records inside
 * LIBXC_CONTEXT) and holds back only the record header it is reading or
 * a PAGE_DATA record until it is whole (of a record that spans feeds,
 * only the raw pages once its pfn words are in: see "a PAGE_DATA record
 * that spans feeds"); every other byte goes out as LIT at once.
 * Anything it does not recognise sends it to SEARCH: literal bytes
 * while it looks for the format's magic again.  It never fails on its
 * input.  Decoder: treats tokens as untrusted; LIT bytes are streamed,
 * a PAGES token is held only while incomplete (bounded by its largest
 * valid size).
 *
 * Stats: bytes_in counts stream bytes, bytes_out token bytes, for both
 * directions.  A PAGE_DATA record the encoder sends as LIT (it would not
 * shrink) counts its pages as raw.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "codec/codec.h"
#include "libxlmig_internal.h"

#define PP_VERSION 2u /* the newest; the decoder reads 1 and 2 */
#define TOK_END 0x00u
#define TOK_LIT 0x01u
#define TOK_PAGES 0x02u

#define KIND_ZERO 0u
#define KIND_RAW 1u
#define KIND_DELTA 2u

#define DEFAULT_CACHE_BYTES (UINT64_C(64) << 20)
#define MAX_CACHE_PAGES (UINT64_C(1) << 28)     /* 1 TiB of cache */
#define DELTA_MAX (LXM_PAGE_SIZE * 15 / 16 - 1) /* 3839 */
#define VARINT_MAX 10u
#define SLAB_PAGES 512u /* cache pages per allocation: 2 MiB */
/* The largest PAGE_DATA record (header included) the encoder takes. */
#define REC_MAX                                                                \
    (LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN +                                  \
     (size_t)LXM_PAGE_DATA_MAX_PAGES * (8 + LXM_PAGE_SIZE))

static const uint8_t pp_magic[3] = { 'L', 'X', 'P' };
/* Version 2: the base of a delta of a pfn last sent as zero. */
static const uint8_t zero_page[LXM_PAGE_SIZE];

/* The page types with data, as lxm_page_type_has_data(), one bit per
 * type: inline, it is asked once per pfn word. */
#define TYPE_BIT(t) (1u << LXM_PAGE_##t)
#define DATA_TYPES                                                             \
    (TYPE_BIT(NOTAB) | TYPE_BIT(L1TAB) | TYPE_BIT(L2TAB) | TYPE_BIT(L3TAB) |   \
     TYPE_BIT(L4TAB) | TYPE_BIT(L1TAB_PIN) | TYPE_BIT(L2TAB_PIN) |             \
     TYPE_BIT(L3TAB_PIN) | TYPE_BIT(L4TAB_PIN))

static inline bool type_has_data(uint64_t type)
{
    return (DATA_TYPES >> (type & 0xf)) & 1;
}

/* ---- varints --------------------------------------------------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* >0: bytes used; 0: incomplete; -1: longer than 10 bytes. */
static int get_varint(const uint8_t *p, size_t avail, uint64_t *v_r)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < VARINT_MAX; i++) {
        if (i == avail)
            return 0;
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v_r = v;
            return (int)i + 1;
        }
    }
    return -1;
}

static uint64_t zigzag(uint64_t d)
{
    return (d << 1) ^ (uint64_t) - (int64_t)(d >> 63);
}

static uint64_t unzigzag(uint64_t z)
{
    return (z >> 1) ^ (uint64_t) - (int64_t)(z & 1);
}

/* ---- page helpers ---------------------------------------------------- */

static inline uint64_t ld64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

/* 16 bytes, unaligned (SSE2 on x86-64, NEON on arm64). */
typedef uint64_t v16 __attribute__((vector_size(16), aligned(1)));

static inline v16 ld128(const uint8_t *p)
{
    v16 v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static inline bool v16_zero(v16 v)
{
    return !(v[0] | v[1]);
}

/* 512 bytes per test, four accumulators: ~1.6x memcpy in cache with
 * SSE2, memory bound outside it. */
static bool page_is_zero_sse2(const uint8_t *p)
{
    size_t i, j;

    for (i = 0; i < LXM_PAGE_SIZE; i += 512) {
        v16 a = ld128(p + i), b = ld128(p + i + 16), c = ld128(p + i + 32),
            d = ld128(p + i + 48);

        for (j = 64; j < 512; j += 64) {
            a |= ld128(p + i + j);
            b |= ld128(p + i + j + 16);
            c |= ld128(p + i + j + 32);
            d |= ld128(p + i + j + 48);
        }
        if (!v16_zero(a | b | c | d))
            return false;
    }
    return true;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_AVX2_DISPATCH 1
/*
 * The same with 32-byte vectors, chosen at run time (pp->avx2).  The
 * vector type never leaves this function, which returns an int: no
 * AVX value crosses a call made without AVX (-Wpsabi).
 */
__attribute__((target("avx2"))) static int page_is_zero_avx2(const uint8_t *p)
{
    typedef uint64_t v32 __attribute__((vector_size(32), aligned(1)));
    size_t i, j;

    for (i = 0; i < LXM_PAGE_SIZE; i += 1024) {
        v32 a, b, c, d;

        memcpy(&a, p + i, 32);
        memcpy(&b, p + i + 32, 32);
        memcpy(&c, p + i + 64, 32);
        memcpy(&d, p + i + 96, 32);
        for (j = 128; j < 1024; j += 128) {
            v32 e, f, g, h;

            memcpy(&e, p + i + j, 32);
            memcpy(&f, p + i + j + 32, 32);
            memcpy(&g, p + i + j + 64, 32);
            memcpy(&h, p + i + j + 96, 32);
            a |= e;
            b |= f;
            c |= g;
            d |= h;
        }
        a |= b | c | d;
        if (a[0] | a[1] | a[2] | a[3])
            return 0;
    }
    return 1;
}
#endif

static inline bool page_is_zero(bool avx2, const uint8_t *p)
{
#ifdef HAVE_AVX2_DISPATCH
    if (avx2)
        return page_is_zero_avx2(p);
#else
    (void)avx2;
#endif
    return page_is_zero_sse2(p);
}

static bool cpu_has_avx2(void)
{
#ifdef HAVE_AVX2_DISPATCH
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

/* Each of the four 8-byte words at a differs from the one at b
 * (one branch for the four). */
static inline bool words_differ4(const uint8_t *a, const uint8_t *b)
{
    return (ld64(a) != ld64(b)) + (ld64(a + 8) != ld64(b + 8)) +
               (ld64(a + 16) != ld64(b + 16)) +
               (ld64(a + 24) != ld64(b + 24)) ==
           4;
}

/*
 * Runs of bytes where cur differs from old, in 8-byte words: a run
 * starts at the first differing byte of a differing word and ends at
 * the last differing byte of the last word of a stretch of differing
 * words.  Writes into d (room for DELTA_MAX + 16).  Returns
 * the length (0: unchanged), or SIZE_MAX when it would exceed DELTA_MAX
 * (send raw).  Fetches next (the cached page of the page after this
 * one) a line per 64 bytes scanned, so that its scan finds it in the
 * CPU cache: cached pages are scattered in memory.  Fetches the page
 * after cur in the input the same way (the hardware prefetcher stops at
 * page boundaries; past the end of the input a prefetch is harmless).
 */
static size_t delta_encode(const uint8_t *cur, const uint8_t *old, uint8_t *d,
                           const uint8_t *next)
{
    size_t i = 0, j, jmax, n = 0, prev = 0, start, stop;
    uint64_t x;

    for (;;) {
        while (i + 64 <= LXM_PAGE_SIZE &&
               (__builtin_prefetch(next + i),
                __builtin_prefetch(cur + LXM_PAGE_SIZE + i),
                v16_zero((ld128(cur + i) ^ ld128(old + i)) |
                         (ld128(cur + i + 16) ^ ld128(old + i + 16)) |
                         (ld128(cur + i + 32) ^ ld128(old + i + 32)) |
                         (ld128(cur + i + 48) ^ ld128(old + i + 48)))))
            i += 64;
        while (i < LXM_PAGE_SIZE && ld64(cur + i) == ld64(old + i))
            i += 8;
        if (i >= LXM_PAGE_SIZE)
            break;
        x = le64toh(ld64(cur + i) ^ ld64(old + i));
        start = i + (size_t)__builtin_ctzll(x) / 8;
        /* The run goes on while words differ, four at a time first.
         * It ends at or after j - 7, so past jmax it is too long: a
         * page that changed all over is not scanned to its end. */
        if (n + 2 * 2 >= DELTA_MAX)
            return SIZE_MAX;
        jmax = start + 7 + (DELTA_MAX - 2 * 2 - n);
        j = i + 8;
        for (;;) {
            while (j + 32 <= LXM_PAGE_SIZE && j <= jmax &&
                   words_differ4(cur + j, old + j))
                j += 32;
            if (j > jmax)
                return SIZE_MAX;
            if (j >= LXM_PAGE_SIZE || ld64(cur + j) == ld64(old + j))
                break;
            j += 8;
        }
        x = le64toh(ld64(cur + j - 8) ^ ld64(old + j - 8));
        stop = j - (size_t)__builtin_clzll(x) / 8;
        /* skip and length are < 4096: two varint bytes each at most */
        if (n + 2 * 2 + (stop - start) > DELTA_MAX)
            return SIZE_MAX;
        n += put_varint(d + n, start - prev);
        n += put_varint(d + n, stop - start);
        if (stop - start <= 16 && start + 16 <= LXM_PAGE_SIZE)
            memcpy(d + n, cur + start, 16); /* short runs: no call */
        else
            memcpy(d + n, cur + start, stop - start);
        n += stop - start;
        prev = stop;
        i = j;
    }
    return n;
}

/* Apply runs already checked by delta_check(). */
static void delta_apply(uint8_t *page, const uint8_t *d, size_t len)
{
    size_t off = 0, pos = 0;
    uint64_t skip = 0, n = 0;

    while (off < len) {
        off += (size_t)get_varint(d + off, len - off, &skip);
        off += (size_t)get_varint(d + off, len - off, &n);
        pos += (size_t)skip;
        memcpy(page + pos, d + off, (size_t)n);
        pos += (size_t)n;
        off += (size_t)n;
    }
}

/* Every run inside the page, every length inside d. */
static bool delta_check(const uint8_t *d, size_t len)
{
    size_t off = 0;
    uint64_t pos = 0, skip, n;
    int u;

    while (off < len) {
        u = get_varint(d + off, len - off, &skip);
        if (u <= 0)
            return false;
        off += (size_t)u;
        u = get_varint(d + off, len - off, &n);
        if (u <= 0)
            return false;
        off += (size_t)u;
        if (n == 0 || skip > LXM_PAGE_SIZE || n > LXM_PAGE_SIZE ||
            pos + skip + n > LXM_PAGE_SIZE || n > len - off)
            return false;
        pos += skip + n;
        off += (size_t)n;
    }
    return true;
}

/* ---- the page cache -------------------------------------------------- */

#define NIL UINT32_MAX

typedef struct cache_entry {
    uint64_t pfn;
    uint32_t prev, next; /* LRU list, head = most recently sent */
    uint32_t gen;        /* token that last stored this entry */
} cache_entry;

typedef struct page_cache {
    uint32_t max;  /* entries at most (cache_pages) */
    uint32_t used; /* entries ever handed out (indices < used) */
    uint32_t live; /* entries in the hash */
    uint32_t head, tail, free_list;
    cache_entry *ents; /* ents_cap entries */
    uint32_t ents_cap;
    uint32_t *hash; /* hash_size slots: entry index + 1, 0 = empty */
    uint32_t hash_size;
    uint8_t **slabs; /* slab s holds entries s*SLAB_PAGES.. */
    uint32_t gen;    /* PAGES tokens applied */
} page_cache;

static void cache_init(page_cache *c, uint32_t max)
{
    memset(c, 0, sizeof(*c));
    c->max = max;
    c->head = c->tail = c->free_list = NIL;
}

static size_t slab_bytes(const page_cache *c)
{
    return (size_t)LXM_MIN(c->max, SLAB_PAGES) * LXM_PAGE_SIZE;
}

/*
 * One slab of page slots, NULL when out of memory.  A whole slab is
 * 2 MiB, aligned so that it can be one huge page, and populated here:
 * the slots are written at once anyway, and faulting them in 4 KiB at
 * a time cost more than the copies into them.  (Both madvise calls are
 * hints: older kernels refuse them and the pages fault in as used.)
 */
static uint8_t *slab_alloc(const page_cache *c)
{
    size_t len = slab_bytes(c), head;
    uint8_t *p;

    if (len < (size_t)SLAB_PAGES * LXM_PAGE_SIZE) {
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
        return p == MAP_FAILED ? NULL : p;
    }
    p = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    head = (len - (uintptr_t)p % len) % len;
    if (head)
        munmap(p, head);
    munmap(p + head + len, len - head);
    p += head;
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_WRITE
    madvise(p, len, MADV_POPULATE_WRITE);
#endif
    return p;
}

static void cache_dispose(page_cache *c)
{
    uint32_t s;

    if (c->slabs) {
        for (s = 0; s < (c->max + SLAB_PAGES - 1) / SLAB_PAGES; s++)
            if (c->slabs[s])
                munmap(c->slabs[s], slab_bytes(c));
    }
    free(c->slabs);
    free(c->ents);
    free(c->hash);
    memset(c, 0, sizeof(*c));
}

static inline uint8_t *cache_page(page_cache *c, uint32_t idx)
{
    return c->slabs[idx / SLAB_PAGES] +
           (size_t)(idx % SLAB_PAGES) * LXM_PAGE_SIZE;
}

static inline uint32_t pfn_hash(uint64_t pfn, uint32_t mask)
{
    return (uint32_t)((pfn * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & mask;
}

/* Entry index of pfn, or NIL. */
static uint32_t cache_find(const page_cache *c, uint64_t pfn)
{
    uint32_t mask = c->hash_size - 1, h, v;

    if (!c->live)
        return NIL;
    for (h = pfn_hash(pfn, mask);; h = (h + 1) & mask) {
        v = c->hash[h];
        if (!v)
            return NIL;
        if (c->ents[v - 1].pfn == pfn)
            return v - 1;
    }
}

static void hash_insert(page_cache *c, uint32_t idx)
{
    uint32_t mask = c->hash_size - 1, h;

    for (h = pfn_hash(c->ents[idx].pfn, mask); c->hash[h]; h = (h + 1) & mask)
        ;
    c->hash[h] = idx + 1;
}

/* Linear probing with backward-shift deletion (no tombstones). */
static void hash_remove(page_cache *c, uint32_t idx)
{
    uint32_t mask = c->hash_size - 1, h, j, home;

    for (h = pfn_hash(c->ents[idx].pfn, mask); c->hash[h] != idx + 1;
         h = (h + 1) & mask)
        ;
    for (j = (h + 1) & mask; c->hash[j]; j = (j + 1) & mask) {
        home = pfn_hash(c->ents[c->hash[j] - 1].pfn, mask);
        /* Move j back to h unless its home lies cyclically in (h, j]. */
        if (((j - home) & mask) >= ((j - h) & mask)) {
            c->hash[h] = c->hash[j];
            h = j;
        }
    }
    c->hash[h] = 0;
}

static int hash_grow(page_cache *c)
{
    uint32_t size = c->hash_size ? c->hash_size * 2 : 1024, i;
    uint32_t *old = c->hash, old_size = c->hash_size;

    c->hash = calloc(size, sizeof(*c->hash));
    if (!c->hash) {
        c->hash = old;
        return LXM_ERROR_NOMEM;
    }
    c->hash_size = size;
    for (i = 0; i < old_size; i++)
        if (old[i])
            hash_insert(c, old[i] - 1);
    free(old);
    return 0;
}

static void lru_unlink(page_cache *c, uint32_t idx)
{
    cache_entry *e = &c->ents[idx];

    if (e->prev != NIL)
        c->ents[e->prev].next = e->next;
    else
        c->head = e->next;
    if (e->next != NIL)
        c->ents[e->next].prev = e->prev;
    else
        c->tail = e->prev;
}

static void lru_push_head(page_cache *c, uint32_t idx)
{
    cache_entry *e = &c->ents[idx];

    e->prev = NIL;
    e->next = c->head;
    if (c->head != NIL)
        c->ents[c->head].prev = idx;
    else
        c->tail = idx;
    c->head = idx;
}

/* A zero page was sent for pfn: forget it. */
static void cache_drop(page_cache *c, uint64_t pfn)
{
    uint32_t idx = cache_find(c, pfn);

    if (idx == NIL)
        return;
    hash_remove(c, idx);
    lru_unlink(c, idx);
    c->live--;
    c->ents[idx].next = c->free_list;
    c->free_list = idx;
}

/*
 * Page 'page' was sent for pfn; when sent as a delta ('delta'), d/dlen
 * are its runs against the entry as it was before this token, or, with
 * zero_base, against a page of zeros (version 2: no entry then).
 * Stores the page: by applying the runs when the entry still holds that
 * base (not yet stored by this token) or the base is zeros, else by
 * copying 'page'.  page may be NULL when the runs are enough (the
 * encoder does not keep such pages; LXM_ERROR_FAIL if one is needed
 * after all).  Allocation failure returns LXM_ERROR_NOMEM.  Either
 * error ends the stream: the sides would diverge.
 */
static int cache_store(page_cache *c, uint64_t pfn, const uint8_t *page,
                       const uint8_t *d, size_t dlen, bool delta,
                       bool zero_base)
{
    uint32_t idx = cache_find(c, pfn);
    int rc;

    if (!c->max)
        return 0;
    if (idx != NIL) {
        lru_unlink(c, idx);
        lru_push_head(c, idx);
        if (delta && !zero_base && c->ents[idx].gen != c->gen)
            delta_apply(cache_page(c, idx), d, dlen);
        else if (!page)
            return LXM_ERROR_FAIL;
        else
            memcpy(cache_page(c, idx), page, LXM_PAGE_SIZE);
        c->ents[idx].gen = c->gen;
        return 0;
    }
    if (!page && !(delta && zero_base))
        return LXM_ERROR_FAIL;
    if ((c->live + 1) * 2 > c->hash_size) {
        rc = hash_grow(c);
        if (rc)
            return rc;
    }
    if (c->free_list != NIL) {
        idx = c->free_list;
        c->free_list = c->ents[idx].next;
    } else if (c->used < c->max) {
        idx = c->used;
        if (idx == c->ents_cap) {
            uint32_t ncap = c->ents_cap ? c->ents_cap * 2 : 1024;
            cache_entry *n;

            if (ncap > c->max)
                ncap = c->max;
            n = realloc(c->ents, ncap * sizeof(*n));
            if (!n)
                return LXM_ERROR_NOMEM;
            c->ents = n;
            c->ents_cap = ncap;
        }
        if (!c->slabs) {
            c->slabs = calloc((c->max + SLAB_PAGES - 1) / SLAB_PAGES,
                              sizeof(*c->slabs));
            if (!c->slabs)
                return LXM_ERROR_NOMEM;
        }
        if (!c->slabs[idx / SLAB_PAGES]) {
            c->slabs[idx / SLAB_PAGES] = slab_alloc(c);
            if (!c->slabs[idx / SLAB_PAGES])
                return LXM_ERROR_NOMEM;
        }
        c->used++;
    } else {
        idx = c->tail;
        hash_remove(c, idx);
        lru_unlink(c, idx);
        c->live--;
    }
    c->ents[idx].pfn = pfn;
    c->ents[idx].gen = c->gen;
    if (delta && zero_base) {
        memset(cache_page(c, idx), 0, LXM_PAGE_SIZE);
        delta_apply(cache_page(c, idx), d, dlen);
    } else {
        memcpy(cache_page(c, idx), page, LXM_PAGE_SIZE);
    }
    hash_insert(c, idx);
    lru_push_head(c, idx);
    c->live++;
    return 0;
}

/* ---- pfns last sent as zero (version 2) ------------------------------ */

#define ZCHUNK_SHIFT 15u /* pfns per bitmap: 32768 */
#define ZCHUNK_WORDS ((1u << ZCHUNK_SHIFT) / 64)
#define ZCHUNKS_MAX 65536u

typedef struct zero_set {
    uint32_t max;    /* bitmaps at most; 0: off */
    uint32_t n;      /* bitmaps in use */
    uint32_t mask;   /* hash slots - 1 (slots >= 2 * max) */
    uint64_t *keys;  /* per slot: pfn >> ZCHUNK_SHIFT, + 1; 0 = empty */
    uint64_t **bits; /* per slot: its bitmap */
} zero_set;

static void zset_init(zero_set *z, uint32_t cache_pages)
{
    memset(z, 0, sizeof(*z));
    if (cache_pages)
        z->max =
            LXM_MIN(cache_pages / 8 > 16 ? cache_pages / 8 : 16u, ZCHUNKS_MAX);
}

static void zset_dispose(zero_set *z)
{
    uint32_t i;

    if (z->keys)
        for (i = 0; i <= z->mask; i++)
            free(z->bits[i]);
    free(z->keys);
    free(z->bits);
    memset(z, 0, sizeof(*z));
}

/* pfn's bitmap, made when 'make' and there is room (else NULL). */
static uint64_t *zset_chunk(zero_set *z, uint64_t pfn, bool make, int *rc_r)
{
    uint64_t key = (pfn >> ZCHUNK_SHIFT) + 1;
    uint32_t h, slots;

    *rc_r = 0;
    if (!z->keys) {
        if (!make || !z->max)
            return NULL;
        for (slots = 32; slots < 2 * z->max; slots *= 2)
            ;
        z->keys = calloc(slots, sizeof(*z->keys));
        z->bits = calloc(slots, sizeof(*z->bits));
        if (!z->keys || !z->bits) {
            free(z->keys);
            free(z->bits);
            z->keys = NULL;
            z->bits = NULL;
            *rc_r = LXM_ERROR_NOMEM;
            return NULL;
        }
        z->mask = slots - 1;
    }
    for (h = (uint32_t)((key * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & z->mask;;
         h = (h + 1) & z->mask) {
        if (z->keys[h] == key)
            return z->bits[h];
        if (!z->keys[h])
            break;
    }
    if (!make || z->n == z->max)
        return NULL;
    z->bits[h] = calloc(ZCHUNK_WORDS, sizeof(uint64_t));
    if (!z->bits[h]) {
        *rc_r = LXM_ERROR_NOMEM;
        return NULL;
    }
    z->keys[h] = key;
    z->n++;
    return z->bits[h];
}

static bool zset_has(zero_set *z, uint64_t pfn)
{
    uint32_t bit = (uint32_t)(pfn & ((1u << ZCHUNK_SHIFT) - 1));
    uint64_t *b;
    int rc;

    if (!z->n)
        return false;
    b = zset_chunk(z, pfn, false, &rc);
    return b && (b[bit / 64] >> (bit % 64)) & 1;
}

/* pfn was sent as a zero page (zero) or with data (!zero). */
static int zset_note(zero_set *z, uint64_t pfn, bool zero)
{
    uint32_t bit = (uint32_t)(pfn & ((1u << ZCHUNK_SHIFT) - 1));
    uint64_t *b;
    int rc;

    if (!zero && !z->n)
        return 0;
    b = zset_chunk(z, pfn, zero, &rc);
    if (b && zero)
        b[bit / 64] |= UINT64_C(1) << (bit % 64);
    else if (b)
        b[bit / 64] &= ~(UINT64_C(1) << (bit % 64));
    return rc;
}

/* ---- the object ------------------------------------------------------ */

typedef enum enc_state {
    ENC_SEARCH,    /* literal, looking for the format's magic */
    ENC_XL_HDR,    /* collecting the 48-byte xl header */
    ENC_XL_OPT,    /* skipping the xl optional data */
    ENC_LIBXL_HDR, /* collecting the 16-byte libxl header */
    ENC_LIBXC_HDR, /* collecting the 40 bytes of libxc headers */
    ENC_REC,       /* holding a record header / PAGE_DATA record */
    ENC_SKIP,      /* literal record body */
} enc_state;

typedef enum dec_state {
    DEC_HDR,   /* stream header */
    DEC_TOKEN, /* at a token boundary, or holding a partial token */
    DEC_LIT,   /* inside a LIT token's bytes */
    DEC_DONE,  /* after END */
} dec_state;

/* Per data page of the PAGES token being built or applied. */
typedef struct page_ref {
    uint64_t pfn;
    uint8_t kind;
    size_t page_off; /* encoder: in the record; decoder: a raw
                        * page in the token, then in the record */
    size_t d_off;    /* delta runs: encoder in out, decoder in the token */
    uint32_t d_len;
    uint32_t cidx; /* cache entry before this token, or NIL (encoder:
                    * every page; decoder: raw and delta pages) */
} page_ref;

/* Where scan_pages() stopped in a PAGES token that is not complete. */
typedef enum scan_phase {
    SCAN_COUNT, /* nothing scanned (0: the state after a whole token) */
    SCAN_PFNS,  /* pfn words, i of count */
    SCAN_MAP,   /* the kind map */
    SCAN_DATA,  /* the data pages, i of nr */
} scan_phase;

typedef struct scan_state {
    scan_phase phase;
    size_t o;       /* token bytes scanned */
    size_t map_off; /* the kind map (SCAN_DATA) */
    uint64_t count, prev;
    uint32_t i, nr;
} scan_state;

struct lxm__pagepass {
    /* immutable after _new */
    bool encoder;
    lxm_stream_format format;
    xentoollog_logger *lg;
    bool avx2; /* page_is_zero_avx2() */
    uint32_t cache_pages;
    uint8_t version; /* token format: the encoder's, or the header's */

    /* both directions */
    page_cache cache;
    zero_set zs; /* version 2 */
    lxm__pagepass_stats st;
    uint64_t words[LXM_PAGE_DATA_MAX_PAGES];
    page_ref refs[LXM_PAGE_DATA_MAX_PAGES];

    /* encoder */
    bool started; /* stream header written */
    enc_state es;
    bool in_libxc;      /* record layer: libxc (else libxl) */
    bool libxc_seen;    /* LIBXC_CONTEXT's headers read */
    uint64_t need;      /* ENC_XL_OPT, ENC_SKIP: bytes left */
    uint32_t skip_type; /* ENC_SKIP: the record's type */
    uint8_t hdr[64];    /* header being collected (also sent as LIT) */
    size_t hdr_len;
    uint8_t tail[48]; /* ENC_SEARCH: last bytes seen (< magic length) */
    size_t tail_len;
    lxm__buf rec; /* ENC_REC: held bytes when they span feeds */
    size_t rec_want;
    size_t rec_got;    /* record bytes received (rec.len: held) */
    size_t rec_pages;  /* offset of the record's pages, 0: not known */
    bool rec_streamed; /* its pages are classified as they come */
    uint32_t rec_nr;   /* streamed: data pages */
    uint32_t rec_done; /* streamed: pages classified */
    uint32_t rec_nz, rec_nd;
    uint32_t rec_held; /* streamed: pages kept in rec */
    bool rec_hold;     /* streamed: keep delta pages too (see
                        * rec_stream_start()) */
    lxm__buf runs;     /* streamed: the delta pages' runs */

    /* decoder */
    dec_state ds;
    uint8_t dhdr[4 + VARINT_MAX];
    size_t dhdr_len;
    uint32_t scan_count, scan_nr; /* the PAGES token scanned */
    scan_state sc;                /* scan_pages() of a partial token */
    lxm__buf tok;                 /* partial token */
    size_t tok_need;
    uint64_t lit_left;
    uint64_t in_off; /* token bytes before the current token */
};

static int pp_new(const lxm__pagepass_opts *o, bool enc, lxm__pagepass **pp_r)
{
    lxm__pagepass *pp;
    uint64_t bytes = o && o->cache_bytes ? o->cache_bytes : DEFAULT_CACHE_BYTES;

    *pp_r = NULL;
    if (bytes / LXM_PAGE_SIZE > MAX_CACHE_PAGES)
        return LXM_ERROR_INVAL;
    if (o && o->format != LXM_FORMAT_XL && o->format != LXM_FORMAT_LIBXL &&
        o->format != LXM_FORMAT_LIBXC)
        return LXM_ERROR_INVAL;
    if (o && o->version > PP_VERSION)
        return LXM_ERROR_INVAL;
    pp = calloc(1, sizeof(*pp));
    if (!pp)
        return LXM_ERROR_NOMEM;
    pp->encoder = enc;
    pp->avx2 = cpu_has_avx2();
    pp->format = o ? o->format : LXM_FORMAT_XL;
    pp->lg = o ? o->logger : NULL;
    pp->cache_pages = (uint32_t)(bytes / LXM_PAGE_SIZE);
    pp->version = o && o->version ? o->version : PP_VERSION;
    cache_init(&pp->cache, pp->cache_pages);
    zset_init(&pp->zs, pp->cache_pages);
    pp->es = ENC_SEARCH;
    pp->ds = DEC_HDR;
    *pp_r = pp;
    return 0;
}

int lxm__pagepass_encoder_new(const lxm__pagepass_opts *o, lxm__pagepass **pp_r)
{
    return pp_new(o, true, pp_r);
}

int lxm__pagepass_decoder_new(const lxm__pagepass_opts *o, lxm__pagepass **pp_r)
{
    return pp_new(o, false, pp_r);
}

void lxm__pagepass_free(lxm__pagepass *pp)
{
    if (!pp)
        return;
    cache_dispose(&pp->cache);
    zset_dispose(&pp->zs);
    lxm__buf_dispose(&pp->rec);
    lxm__buf_dispose(&pp->runs);
    lxm__buf_dispose(&pp->tok);
    free(pp);
}

void lxm__pagepass_get_stats(const lxm__pagepass *pp, lxm__pagepass_stats *st)
{
    *st = pp->st;
}

/* ---- encoder --------------------------------------------------------- */

static int emit_lit(lxm__pagepass *pp, const uint8_t *p, size_t n,
                    lxm__buf *out)
{
    uint8_t h[1 + VARINT_MAX];
    size_t hl;
    int rc;

    if (!n)
        return 0;
    h[0] = TOK_LIT;
    hl = 1 + put_varint(h + 1, n);
    rc = lxm__buf_reserve(out, hl + n);
    if (rc)
        return rc;
    memcpy(out->p + out->len, h, hl);
    memcpy(out->p + out->len + hl, p, n);
    out->len += hl + n;
    pp->st.bytes_out += hl + n;
    pp->st.bytes_literal += n;
    return 0;
}

static int enc_start(lxm__pagepass *pp, lxm__buf *out)
{
    uint8_t h[sizeof(pp_magic) + 1 + VARINT_MAX];
    size_t n;
    int rc;

    if (pp->started)
        return 0;
    memcpy(h, pp_magic, sizeof(pp_magic));
    h[sizeof(pp_magic)] = pp->version;
    n = sizeof(pp_magic) + 1 +
        put_varint(h + sizeof(pp_magic) + 1, pp->cache_pages);
    rc = lxm__buf_append(out, h, n);
    if (rc)
        return rc;
    pp->st.bytes_out += n;
    pp->started = true;
    return 0;
}

static const uint8_t libxc_magic[12] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 'X',  'E',  'N',  'F' };

static const uint8_t *search_magic(const lxm__pagepass *pp, size_t *len_r)
{
    switch (pp->format) {
    case LXM_FORMAT_XL:
        *len_r = LXM_XL_MAGIC_LEN;
        return (const uint8_t *)LXM_XL_MAGIC;
    case LXM_FORMAT_LIBXL:
        *len_r = 8;
        return (const uint8_t *)"LibxlFmt";
    default:
        *len_r = sizeof(libxc_magic);
        return libxc_magic;
    }
}

static enc_state first_header_state(const lxm__pagepass *pp)
{
    switch (pp->format) {
    case LXM_FORMAT_XL:
        return ENC_XL_HDR;
    case LXM_FORMAT_LIBXL:
        return ENC_LIBXL_HDR;
    default:
        return ENC_LIBXC_HDR;
    }
}

static size_t header_len(enc_state s)
{
    switch (s) {
    case ENC_XL_HDR:
        return LXM_XL_HEADER_LEN;
    case ENC_LIBXL_HDR:
        return LXM__LIBXL_HEADER_LEN;
    default:
        return LXM__LIBXC_HEADERS_LEN;
    }
}

/*
 * Lost: back to searching.  seen[0..n) are bytes already sent (a header
 * that did not check out, minus its first byte): a magic in them starts
 * a header at once (they cannot hold a whole one: n < header length),
 * else their last bytes become the search tail.  seen may point into
 * pp->hdr.
 */
static void enc_lost(lxm__pagepass *pp, const uint8_t *seen, size_t n)
{
    size_t mlen, keep;
    const uint8_t *m = search_magic(pp, &mlen);
    const uint8_t *hit = memmem(seen, n, m, mlen);

    if (hit) {
        keep = n - (size_t)(hit - seen);
        memmove(pp->hdr, hit, keep);
        pp->hdr_len = keep;
        pp->tail_len = 0;
        pp->es = first_header_state(pp);
        return;
    }
    keep = LXM_MIN(n, mlen - 1);
    memmove(pp->tail, seen + n - keep, keep);
    pp->tail_len = keep;
    pp->hdr_len = 0;
    pp->es = ENC_SEARCH;
}

/*
 * ENC_SEARCH over p[0..n): returns how many bytes stay literal before a
 * header starts (n when none does).  When the magic began in bytes of
 * earlier chunks, those go to hdr and 0 is returned.
 */
static size_t enc_search(lxm__pagepass *pp, const uint8_t *p, size_t n)
{
    size_t mlen, wl, k, tl = pp->tail_len;
    const uint8_t *m = search_magic(pp, &mlen), *hit;
    uint8_t win[2 * sizeof(pp->tail)];

    /* A magic that starts in the tail and ends in p. */
    if (tl) {
        k = LXM_MIN(n, mlen - 1);
        memcpy(win, pp->tail, tl);
        memcpy(win + tl, p, k);
        wl = tl + k;
        hit = memmem(win, wl, m, mlen);
        if (hit && (size_t)(hit - win) < tl) {
            pp->hdr_len = tl - (size_t)(hit - win);
            memcpy(pp->hdr, hit, pp->hdr_len);
            pp->tail_len = 0;
            pp->es = first_header_state(pp);
            return 0;
        }
    }
    hit = memmem(p, n, m, mlen);
    if (hit) {
        pp->hdr_len = 0;
        pp->tail_len = 0;
        pp->es = first_header_state(pp);
        return (size_t)(hit - p);
    }
    /* Keep the last mlen - 1 bytes (of tail + p). */
    k = LXM_MIN(mlen - 1, tl + n);
    if (n >= k) {
        memcpy(pp->tail, p + n - k, k);
    } else {
        memmove(pp->tail, pp->tail + tl - (k - n), k - n);
        memcpy(pp->tail + (k - n), p, n);
    }
    pp->tail_len = k;
    return n;
}

/* A header in hdr is complete: check it and move on. */
static void enc_header_done(lxm__pagepass *pp)
{
    const uint8_t *h = pp->hdr;

    switch (pp->es) {
    case ENC_XL_HDR:
        if (memcmp(h, LXM_XL_MAGIC, LXM_XL_MAGIC_LEN) ||
            lxm__le32(h + LXM__XL_OFF_BYTEORDER) != LXM_XL_BYTEORDER ||
            lxm__le32(h + LXM__XL_OFF_OPTLEN) > LXM__XL_OPTDATA_MAX)
            goto lost;
        pp->need = lxm__le32(h + LXM__XL_OFF_OPTLEN);
        pp->es = pp->need ? ENC_XL_OPT : ENC_LIBXL_HDR;
        break;
    case ENC_LIBXL_HDR:
        if (lxm__be64(h) != LXM__LIBXL_IDENT ||
            lxm__be32(h + 8) != LXM__LIBXL_VERSION ||
            (lxm__be32(h + 12) & LXM__LIBXL_OPT_BIG_ENDIAN))
            goto lost;
        pp->in_libxc = false;
        pp->libxc_seen = false;
        pp->rec_want = LXM__RHDR_LEN;
        pp->es = ENC_REC;
        break;
    case ENC_LIBXC_HDR:
        if (memcmp(h, libxc_magic, sizeof(libxc_magic)) ||
            lxm__be32(h + 12) < LXM__LIBXC_VERSION_MIN ||
            lxm__be32(h + 12) > LXM__LIBXC_VERSION ||
            (lxm__be16(h + 16) & LXM__LIBXC_OPT_BIG_ENDIAN) ||
            lxm__le16(h + LXM__LIBXC_IHDR_LEN + 4) != LXM__PAGE_SHIFT)
            goto lost;
        pp->in_libxc = true;
        pp->libxc_seen = true;
        pp->rec_want = LXM__RHDR_LEN;
        pp->es = ENC_REC;
        break;
    default:
        break;
    }
    pp->hdr_len = 0;
    return;
lost:
    enc_lost(pp, h + 1, pp->hdr_len - 1);
}

/* After a generic record of 'type' in the current layer. */
static void enc_after_record(lxm__pagepass *pp, uint32_t type)
{
    pp->rec_want = LXM__RHDR_LEN;
    pp->es = ENC_REC;
    if (!pp->in_libxc) {
        switch (type) {
        case LXM_LIBXL_END:
            pp->tail_len = 0;
            pp->es = ENC_SEARCH;
            break;
        case LXM_LIBXL_LIBXC_CONTEXT:
            if (!pp->libxc_seen)
                pp->es = ENC_LIBXC_HDR;
            else
                pp->in_libxc = true;
            break;
        case LXM_LIBXL_CHECKPOINT_END:
            if (pp->libxc_seen)
                pp->in_libxc = true;
            break;
        }
    } else if (type == LXM_LIBXC_END) {
        if (pp->format == LXM_FORMAT_LIBXC) {
            pp->tail_len = 0;
            pp->es = ENC_SEARCH;
        } else {
            pp->in_libxc = false;
        }
    } else if (type == LXM_LIBXC_CHECKPOINT && pp->format != LXM_FORMAT_LIBXC) {
        pp->in_libxc = false;
    }
}

static uint32_t count_data_pages(const uint8_t *w, uint32_t count)
{
    uint32_t i, nr = 0;

    for (i = 0; i < count; i++)
        nr += type_has_data(lxm__le64(w + 8 * (size_t)i) >> LXM_PFN_TYPE_SHIFT);
    return nr;
}

/*
 * The head of a PAGES token for count pfn words at w (nr of them with
 * data) at out->len: tag, count, the pfn deltas and a zeroed kind map,
 * with room reserved after it for nr pages.  *o_r: where the pages go,
 * *map_r: the map's offset.
 */
static int enc_token_head(lxm__buf *out, const uint8_t *w, uint32_t count,
                          uint32_t nr, size_t *o_r, size_t *map_r)
{
    uint64_t prev = UINT64_MAX, word, pfn;
    size_t o, bound;
    uint32_t i;
    uint8_t *q;
    int rc;

    bound = 1 + VARINT_MAX + (size_t)count * VARINT_MAX + (nr + 3) / 4 +
            (size_t)nr * (LXM_PAGE_SIZE + VARINT_MAX);
    rc = lxm__buf_reserve(out, bound);
    if (rc)
        return rc;
    q = out->p;
    o = out->len;
    q[o++] = TOK_PAGES;
    o += put_varint(q + o, count);
    for (i = 0; i < count; i++) {
        word = lxm__le64(w + 8 * (size_t)i);
        pfn = word & LXM_PFN_MASK;
        o += put_varint(q + o, zigzag(pfn - (prev + 1)) << 4 |
                                   word >> LXM_PFN_TYPE_SHIFT);
        prev = pfn;
    }
    *map_r = o;
    memset(q + o, 0, (nr + 3) / 4);
    *o_r = o + (nr + 3) / 4;
    return 0;
}

/*
 * What a delta of ref's page would be against, as both sides know it
 * before this token: its cached page; in version 2, for a pfn last sent
 * as zero, a page of zeros; else NULL (the page goes raw).
 */
static const uint8_t *delta_base(lxm__pagepass *pp, const page_ref *ref)
{
    if (ref->cidx != NIL)
        return cache_page(&pp->cache, ref->cidx);
    if (pp->version >= 2 && zset_has(&pp->zs, ref->pfn))
        return zero_page;
    return NULL;
}

/*
 * The cached page the next page's delta will read, for delta_encode()
 * to fetch while it scans this one (self when there is none).
 */
static const uint8_t *next_cached(lxm__pagepass *pp, const page_ref *ref,
                                  bool last, const uint8_t *self)
{
    return !last && ref[1].cidx != NIL ? cache_page(&pp->cache, ref[1].cidx)
                                       : self;
}

/*
 * After a PAGES token, encoder and decoder update their caches the same
 * way (so that they stay equal: refs[i].cidx must be set for every page
 * with data) and count its record (rec_len bytes, nr data pages: nz
 * zero, nd delta).  Page i is at pages + refs[i].page_off
 * (SIZE_MAX: not kept, see rec_stream_start()), its delta runs at runs +
 * refs[i].d_off, its base was its cache entry refs[i].cidx (NIL: zeros).
 */
static int token_done(lxm__pagepass *pp, const uint8_t *pages,
                      const uint8_t *runs, size_t rec_len, uint32_t nr,
                      uint32_t nz, uint32_t nd)
{
    uint32_t i, pass;
    int rc;

    pp->cache.gen++;
    for (i = 0; pp->version >= 2 && i < nr; i++) {
        rc = zset_note(&pp->zs, pp->refs[i].pfn, pp->refs[i].kind == KIND_ZERO);
        if (rc)
            return rc;
    }
    /* Version 1: in order.  Version 2: the pages whose pfn had an entry
     * before the token (and the zero pages) first, then the others, so
     * that no new entry evicts the base of a delta still to apply. */
    for (pass = 0; pass < (pp->version >= 2 ? 2u : 1u); pass++) {
        for (i = 0; i < nr; i++) {
            page_ref *ref = &pp->refs[i];

            if (pp->version >= 2 &&
                (ref->kind == KIND_ZERO || ref->cidx != NIL) != (pass == 0))
                continue;
            if (ref->kind == KIND_ZERO) {
                cache_drop(&pp->cache, ref->pfn);
                continue;
            }
            rc = cache_store(&pp->cache, ref->pfn,
                             ref->page_off == SIZE_MAX ? NULL
                                                       : pages + ref->page_off,
                             runs + ref->d_off, ref->d_len,
                             ref->kind == KIND_DELTA, ref->cidx == NIL);
            if (rc)
                return rc;
        }
    }
    pp->st.bytes_literal += rec_len - (size_t)nr * LXM_PAGE_SIZE;
    pp->st.pages += nr;
    pp->st.pages_zero += nz;
    pp->st.pages_delta += nd;
    pp->st.pages_raw += nr - nz - nd;
    return 0;
}

/*
 * A whole PAGE_DATA record r (rlen = 8 + length bytes; count and
 * reserved field checked): a PAGES token, or LIT when the record does
 * not fit the token format or would not shrink.  The cache changes only
 * when the token goes out.
 */
static int enc_page_record(lxm__pagepass *pp, const uint8_t *r, size_t rlen,
                           lxm__buf *out)
{
    uint32_t count = lxm__le32(r + LXM__RHDR_LEN), i, nr, nz = 0, nd = 0;
    const uint8_t *w = r + LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN;
    const uint8_t *pages = w + 8 * (size_t)count;
    uint64_t word, pfn;
    size_t mark = out->len, o, map_off, dl;
    bool len_ok;
    uint8_t *q;
    int rc;

    nr = count_data_pages(w, count);
    len_ok = rlen == LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN +
                         8 * (size_t)count + (size_t)nr * LXM_PAGE_SIZE;
    if (!len_ok)
        goto literal;
    for (i = 0; i < count; i++)
        if (lxm__le64(w + 8 * (size_t)i) & LXM__PFN_RESERVED_MASK)
            goto literal;

    rc = enc_token_head(out, w, count, nr, &o, &map_off);
    if (rc)
        return rc;
    q = out->p;
    nr = 0;
    for (i = 0; i < count; i++) {
        word = lxm__le64(w + 8 * (size_t)i);
        pfn = word & LXM_PFN_MASK;
        if (type_has_data(word >> LXM_PFN_TYPE_SHIFT)) {
            pp->refs[nr].pfn = pfn;
            pp->refs[nr++].cidx = cache_find(&pp->cache, pfn);
        }
    }
    for (i = 0; i < nr; i++) {
        const uint8_t *pg = pages + (size_t)i * LXM_PAGE_SIZE;
        page_ref *ref = &pp->refs[i];
        const uint8_t *base;

        /* The cached pages are scattered: start fetching the next. */
        if (i + 1 < nr && ref[1].cidx != NIL) {
            const uint8_t *nx = cache_page(&pp->cache, ref[1].cidx);

            __builtin_prefetch(nx);
            __builtin_prefetch(nx + 64);
            __builtin_prefetch(nx + 128);
            __builtin_prefetch(nx + 192);
        }
        ref->page_off = (size_t)(pg - r);
        ref->d_off = 0;
        ref->d_len = 0;
        if (page_is_zero(pp->avx2, pg)) {
            ref->kind = KIND_ZERO;
            nz++;
            continue;
        }
        /* The runs go straight to the token, after L's two bytes
         * (bound leaves room for DELTA_MAX + 16 of them). */
        base = delta_base(pp, ref);
        dl = base ? delta_encode(pg, base, q + o + 2,
                                 next_cached(pp, ref, i + 1 == nr, base))
                  : SIZE_MAX;
        if (dl != SIZE_MAX) {
            /* L < 16384: always two varint bytes (a valid, if not
             * minimal, LEB128 encoding of L < 128). */
            q[o] = (uint8_t)(dl | 0x80);
            q[o + 1] = (uint8_t)(dl >> 7);
            o += 2;
            ref->kind = KIND_DELTA;
            ref->d_off = o;
            ref->d_len = (uint32_t)dl;
            o += dl;
            nd++;
        } else {
            ref->kind = KIND_RAW;
            memcpy(q + o, pg, LXM_PAGE_SIZE);
            o += LXM_PAGE_SIZE;
        }
        q[map_off + i / 4] |= (uint8_t)(ref->kind << (2 * (i % 4)));
    }
    if (o - mark >= rlen)
        goto literal;
    out->len = o;
    pp->st.bytes_out += o - mark;
    return token_done(pp, r, out->p, rlen, nr, nz, nd);

literal:
    out->len = mark;
    rc = emit_lit(pp, r, rlen, out);
    if (rc)
        return rc;
    if (len_ok) {
        nr = count_data_pages(w, count);
        pp->st.pages += nr;
        pp->st.pages_raw += nr;
        pp->st.bytes_literal -= (uint64_t)nr * LXM_PAGE_SIZE;
    }
    return 0;
}

/*
 * The held record bytes (rec_want of them) are at r: decide what they
 * are.  *lit_r: true when they stay literal (the caller sends them).
 * On a whole PAGE_DATA record the token is already out.
 */
static int enc_record_step(lxm__pagepass *pp, const uint8_t *r, bool *lit_r,
                           lxm__buf *out)
{
    uint32_t type = lxm__le32(r), len = lxm__le32(r + 4), count;
    bool page_data = pp->in_libxc && type == LXM_LIBXC_PAGE_DATA;

    *lit_r = false;
    if (pp->rec_want == LXM__RHDR_LEN) {
        if (len > LXM_RECORD_LENGTH_MAX) {
            /* Not a stream we understand any more. */
            *lit_r = true;
            enc_lost(pp, r + 1, LXM__RHDR_LEN - 1);
            return 0;
        }
        if (page_data && len % 8 == 0 && len >= LXM__PAGE_DATA_HDR_LEN + 8 &&
            len <= REC_MAX - LXM__RHDR_LEN) {
            pp->rec_want = LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN;
            return 0;
        }
        goto generic;
    }
    if (pp->rec_want == LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN) {
        count = lxm__le32(r + LXM__RHDR_LEN);
        if (count < 1 || count > LXM_PAGE_DATA_MAX_PAGES ||
            lxm__le32(r + LXM__RHDR_LEN + 4) != 0 ||
            len < LXM__PAGE_DATA_HDR_LEN + 8 * (uint64_t)count ||
            len >
                LXM__PAGE_DATA_HDR_LEN + (8 + (uint64_t)LXM_PAGE_SIZE) * count)
            goto generic;
        pp->rec_want = LXM__RHDR_LEN + (size_t)len;
        return 0;
    }
    pp->rec_want = LXM__RHDR_LEN;
    return enc_page_record(pp, r, LXM__RHDR_LEN + (size_t)len, out);

generic:
    *lit_r = true;
    pp->need = LXM_ROUNDUP8(len) - (pp->rec_want - LXM__RHDR_LEN);
    pp->rec_want = LXM__RHDR_LEN;
    if (pp->need) {
        /* enc_after_record() runs when the body is through. */
        pp->es = ENC_SKIP;
        pp->skip_type = type;
    } else {
        enc_after_record(pp, type);
    }
    return 0;
}

/* ---- a PAGE_DATA record that spans feeds ------------------------------
 *
 * Such a record is held in rec until it is whole.  Once its pfn words
 * are in, and when its token is sure to be smaller than the record
 * (it would be with every page raw), its pages are classified as they
 * complete, against the cache as it is before the token (it does not
 * change until the token goes out), and only raw pages stay in rec:
 * zero pages are dropped, delta pages leave their runs in pp->runs.
 * The token, built when the record is whole, is the one
 * enc_page_record() makes of the whole record.  rec_got counts the
 * record bytes received, rec.len those held.
 */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void rec_reset(lxm__pagepass *pp)
{
    pp->rec.len = 0;
    pp->rec_got = 0;
    pp->rec_pages = 0;
    pp->rec_streamed = false;
}

/* The pfn words are in rec: stream the pages when the token must shrink. */
static void rec_stream_start(lxm__pagepass *pp)
{
    const uint8_t *r = pp->rec.p;
    uint32_t count = lxm__le32(r + LXM__RHDR_LEN), i, nr;
    const uint8_t *w = r + LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN;
    uint64_t prev = UINT64_MAX, word, pfn, type, fresh = 0;
    bool ascending = true;
    size_t hl;

    nr = count_data_pages(w, count);
    if (pp->rec_want != pp->rec_pages + (size_t)nr * LXM_PAGE_SIZE)
        return;
    hl = 1 + varint_len(count) + (nr + 3) / 4;
    nr = 0;
    for (i = 0; i < count; i++) {
        word = lxm__le64(w + 8 * (size_t)i);
        if (word & LXM__PFN_RESERVED_MASK)
            return;
        pfn = word & LXM_PFN_MASK;
        type = word >> LXM_PFN_TYPE_SHIFT;
        hl += varint_len(zigzag(pfn - (prev + 1)) << 4 | type);
        ascending = ascending && (i == 0 || pfn > prev);
        prev = pfn;
        if (type_has_data(type)) {
            pp->refs[nr].pfn = pfn;
            pp->refs[nr].cidx = cache_find(&pp->cache, pfn);
            fresh += pp->refs[nr++].cidx == NIL;
        }
    }
    if (hl + (size_t)nr * LXM_PAGE_SIZE >= pp->rec_want)
        return;
    pp->rec_streamed = true;
    pp->rec_nr = nr;
    pp->rec_done = pp->rec_nz = pp->rec_nd = pp->rec_held = 0;
    /*
     * A delta page is dropped once classified: after the token, its
     * entry gets the runs applied (or, against zeros, a new entry
     * zeros + runs).  That needs its base entry to still be there when
     * the token is applied: no pfn twice in the record, and, in version
     * 1 (pages applied in order), no eviction while the token adds
     * entries (at most 'fresh' of them); version 2 applies the pages
     * with entries first.  Else its bytes are kept too, as the decoder
     * has them.
     */
    pp->rec_hold = !ascending ||
                   (pp->version < 2 && pp->cache.live + fresh > pp->cache.max);
    pp->runs.len = 0;
}

/*
 * Page rec_done is pg: classify it.  *keep_r: the caller keeps its bytes
 * in rec, at offset off (raw pages; delta pages too when rec_hold).
 */
static int rec_classify(lxm__pagepass *pp, const uint8_t *pg, size_t off,
                        bool *keep_r)
{
    page_ref *ref = &pp->refs[pp->rec_done];
    const uint8_t *base;
    size_t dl;
    int rc;

    *keep_r = false;
    ref->page_off = SIZE_MAX;
    if (pp->rec_done + 1 < pp->rec_nr && ref[1].cidx != NIL) {
        const uint8_t *nx = cache_page(&pp->cache, ref[1].cidx);

        __builtin_prefetch(nx);
        __builtin_prefetch(nx + 64);
        __builtin_prefetch(nx + 128);
        __builtin_prefetch(nx + 192);
    }
    pp->rec_done++;
    ref->d_off = 0;
    ref->d_len = 0;
    if (page_is_zero(pp->avx2, pg)) {
        ref->kind = KIND_ZERO;
        pp->rec_nz++;
        return 0;
    }
    base = delta_base(pp, ref);
    if (base) {
        rc = lxm__buf_reserve(&pp->runs, DELTA_MAX + 16);
        if (rc)
            return rc;
        dl = delta_encode(
            pg, base, pp->runs.p + pp->runs.len,
            next_cached(pp, ref, pp->rec_done == pp->rec_nr, base));
        if (dl != SIZE_MAX) {
            ref->kind = KIND_DELTA;
            ref->d_off = pp->runs.len;
            ref->d_len = (uint32_t)dl;
            pp->runs.len += dl;
            pp->rec_nd++;
            *keep_r = pp->rec_hold;
            goto out;
        }
    }
    ref->kind = KIND_RAW;
    *keep_r = true;
out:
    if (*keep_r) {
        ref->page_off = off;
        pp->rec_held++;
    }
    return 0;
}

/* n more bytes of the held record (at most what it still needs). */
static int rec_feed(lxm__pagepass *pp, const uint8_t *p, size_t n)
{
    size_t k, in_page;
    bool keep;
    int rc;

    rc = lxm__buf_reserve(&pp->rec, LXM_MIN(pp->rec_want, n));
    if (rc)
        return rc;
    while (n) {
        if (!pp->rec_streamed) {
            k = n;
            /* Stop where the count, then where the pages, start. */
            if (pp->rec_want > LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN) {
                if (pp->rec_got < LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN)
                    k = LXM_MIN(n, LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN -
                                       pp->rec_got);
                else if (pp->rec_pages && pp->rec_got < pp->rec_pages)
                    k = LXM_MIN(n, pp->rec_pages - pp->rec_got);
            }
            rc = lxm__buf_append(&pp->rec, p, k);
            if (rc)
                return rc;
            pp->rec_got += k;
            p += k;
            n -= k;
            if (pp->rec_want <= LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN)
                continue;
            if (!pp->rec_pages &&
                pp->rec_got == LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN) {
                pp->rec_pages =
                    LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN +
                    8 * (size_t)lxm__le32(pp->rec.p + LXM__RHDR_LEN);
                if (pp->rec_pages >= pp->rec_want)
                    pp->rec_pages = SIZE_MAX; /* never streamed */
            }
            if (pp->rec_got == pp->rec_pages)
                rec_stream_start(pp);
            continue;
        }
        in_page = (pp->rec_got - pp->rec_pages) % LXM_PAGE_SIZE;
        if (!in_page && n >= LXM_PAGE_SIZE) {
            /* A whole page in p: held only when it must be kept. */
            rc = rec_classify(pp, p, pp->rec.len, &keep);
            if (!rc && keep)
                rc = lxm__buf_append(&pp->rec, p, LXM_PAGE_SIZE);
            if (rc)
                return rc;
            pp->rec_got += LXM_PAGE_SIZE;
            p += LXM_PAGE_SIZE;
            n -= LXM_PAGE_SIZE;
            continue;
        }
        k = LXM_MIN(n, LXM_PAGE_SIZE - in_page);
        rc = lxm__buf_append(&pp->rec, p, k);
        if (rc)
            return rc;
        pp->rec_got += k;
        p += k;
        n -= k;
        if (in_page + k < LXM_PAGE_SIZE)
            continue;
        rc = rec_classify(pp, pp->rec.p + pp->rec.len - LXM_PAGE_SIZE,
                          pp->rec.len - LXM_PAGE_SIZE, &keep);
        if (rc)
            return rc;
        if (!keep)
            pp->rec.len -= LXM_PAGE_SIZE;
    }
    return 0;
}

/* The streamed record is whole: its PAGES token, then the cache. */
static int rec_stream_done(lxm__pagepass *pp, lxm__buf *out)
{
    const uint8_t *r = pp->rec.p;
    uint32_t count = lxm__le32(r + LXM__RHDR_LEN), i, nr = pp->rec_nr;
    const uint8_t *w = r + LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN;
    size_t mark = out->len, o, map_off;
    uint8_t *q;
    int rc;

    rc = enc_token_head(out, w, count, nr, &o, &map_off);
    if (rc)
        return rc;
    q = out->p;
    for (i = 0; i < nr; i++) {
        page_ref *ref = &pp->refs[i];

        q[map_off + i / 4] |= (uint8_t)(ref->kind << (2 * (i % 4)));
        switch (ref->kind) {
        case KIND_RAW:
            memcpy(q + o, r + ref->page_off, LXM_PAGE_SIZE);
            o += LXM_PAGE_SIZE;
            break;
        case KIND_DELTA:
            /* As enc_page_record(): L in two varint bytes. */
            q[o] = (uint8_t)(ref->d_len | 0x80);
            q[o + 1] = (uint8_t)(ref->d_len >> 7);
            o += 2;
            memcpy(q + o, pp->runs.p + ref->d_off, ref->d_len);
            ref->d_off = o;
            o += ref->d_len;
            break;
        default:
            break;
        }
    }
    out->len = o;
    pp->st.bytes_out += o - mark;
    return token_done(pp, r, out->p, pp->rec_got, nr, pp->rec_nz, pp->rec_nd);
}

/*
 * The stream ends inside a streamed record: put the bytes it dropped
 * back into rec (zero pages, delta pages from their cached page and
 * runs), so that rec holds the record's received bytes again.
 */
static int rec_unstream(lxm__pagepass *pp)
{
    lxm__buf b = { 0 };
    size_t tail;
    uint32_t i;
    uint8_t *pg;
    int rc;

    if (!pp->rec_streamed)
        return 0;
    rc = lxm__buf_reserve(&b, pp->rec_got);
    if (rc)
        return rc;
    memcpy(b.p, pp->rec.p, pp->rec_pages);
    b.len = pp->rec_pages;
    for (i = 0; i < pp->rec_done; i++) {
        page_ref *ref = &pp->refs[i];

        pg = b.p + b.len;
        if (ref->page_off != SIZE_MAX) {
            memcpy(pg, pp->rec.p + ref->page_off, LXM_PAGE_SIZE);
        } else if (ref->kind == KIND_ZERO) {
            memset(pg, 0, LXM_PAGE_SIZE);
        } else {
            memcpy(pg, delta_base(pp, ref), LXM_PAGE_SIZE);
            delta_apply(pg, pp->runs.p + ref->d_off, ref->d_len);
        }
        b.len += LXM_PAGE_SIZE;
    }
    /* A page that had not all come yet follows the kept ones. */
    tail = pp->rec.len - pp->rec_pages - (size_t)pp->rec_held * LXM_PAGE_SIZE;
    memcpy(b.p + b.len, pp->rec.p + pp->rec.len - tail, tail);
    b.len += tail;
    lxm__buf_dispose(&pp->rec);
    pp->rec = b;
    pp->rec_streamed = false;
    return 0;
}

static int enc_feed(lxm__pagepass *pp, const uint8_t *p, size_t len,
                    lxm__buf *out)
{
    const uint8_t *end = p + len, *lit = p, *hold = NULL;
    size_t n;
    bool lit_rec;
    int rc;

    while (p < end) {
        switch (pp->es) {
        case ENC_SEARCH:
            p += enc_search(pp, p, (size_t)(end - p));
            break;
        case ENC_XL_HDR:
        case ENC_LIBXL_HDR:
        case ENC_LIBXC_HDR:
            n = LXM_MIN(header_len(pp->es) - pp->hdr_len, (size_t)(end - p));
            memcpy(pp->hdr + pp->hdr_len, p, n);
            pp->hdr_len += n;
            p += n;
            if (pp->hdr_len == header_len(pp->es))
                enc_header_done(pp);
            break;
        case ENC_XL_OPT:
        case ENC_SKIP:
            n = (size_t)LXM_MIN(pp->need, (uint64_t)(end - p));
            p += n;
            pp->need -= n;
            if (!pp->need) {
                if (pp->es == ENC_XL_OPT)
                    pp->es = ENC_LIBXL_HDR;
                else
                    enc_after_record(pp, pp->skip_type);
            }
            break;
        case ENC_REC:
            if (!pp->rec_got) {
                /* The record starts in this chunk, at hold. */
                if (!hold)
                    hold = p;
                if ((size_t)(end - hold) < pp->rec_want) {
                    p = end;
                    break;
                }
                p = hold + pp->rec_want;
                if (pp->rec_want > LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN) {
                    /* A whole PAGE_DATA record: the literal before it
                     * goes first. */
                    rc = emit_lit(pp, lit, (size_t)(hold - lit), out);
                    if (rc)
                        return rc;
                    lit = p;
                }
                /* Bytes that stay literal are part of [lit, p). */
                rc = enc_record_step(pp, hold, &lit_rec, out);
                if (rc)
                    return rc;
                if (pp->es != ENC_REC || pp->rec_want == LXM__RHDR_LEN)
                    hold = NULL;
                break;
            }
            /* Continuing a record held from earlier chunks. */
            n = LXM_MIN(pp->rec_want - pp->rec_got, (size_t)(end - p));
            rc = rec_feed(pp, p, n);
            if (rc)
                return rc;
            p += n;
            lit = p;
            if (pp->rec_got < pp->rec_want)
                break;
            if (pp->rec_streamed) {
                pp->rec_want = LXM__RHDR_LEN;
                rc = rec_stream_done(pp, out);
            } else {
                rc = enc_record_step(pp, pp->rec.p, &lit_rec, out);
                if (!rc && lit_rec)
                    rc = emit_lit(pp, pp->rec.p, pp->rec.len, out);
            }
            if (rc)
                return rc;
            if (pp->es != ENC_REC || pp->rec_want == LXM__RHDR_LEN)
                rec_reset(pp);
            break;
        }
    }
    if (hold) {
        /* Keep the partial record; what is before it goes out. */
        rc = emit_lit(pp, lit, (size_t)(hold - lit), out);
        if (!rc)
            rc = rec_feed(pp, hold, (size_t)(end - hold));
        return rc;
    }
    return emit_lit(pp, lit, (size_t)(end - lit), out);
}

/* ---- decoder --------------------------------------------------------- */

static int corrupt(lxm__pagepass *pp, uint64_t at, const char *what)
{
    LXM_LOG_ERROR(pp->lg,
                  "page pre-pass: corrupt token at offset %llu of the token"
                  " stream: %s",
                  (unsigned long long)at, what);
    return LXM_ERROR_CORRUPT;
}

/*
 * Scan a PAGES token at t[0..avail): >0 its length; 0 incomplete, with
 * *need_r the bytes it needs at least (> avail); <0 corrupt (*why_r).
 * Fills pp->words, pp->refs, pp->scan_count and pp->scan_nr.  Every
 * length is checked before it is used, so *need_r stays below the
 * largest valid token (~4.2 MB).  An incomplete scan keeps its place
 * in pp->sc and goes on from there when called again with more of the
 * same token (a held token only grows), so a token that arrives in
 * many pieces is scanned once.
 */
static long scan_pages(lxm__pagepass *pp, const uint8_t *t, size_t avail,
                       size_t *need_r, const char **why_r)
{
    scan_state *sc = &pp->sc;
    size_t o = sc->o, o2, k;
    uint64_t count = sc->count, v, pfn, prev = sc->prev;
    uint32_t i = sc->i, nr = sc->nr, j;
    int u;

#define NEED(at, k)                                                            \
    do {                                                                       \
        if ((at) + (k) > avail) {                                              \
            *need_r = (at) + (k);                                              \
            goto incomplete;                                                   \
        }                                                                      \
    } while (0)
#define VARINT(at, var, what)                                                  \
    do {                                                                       \
        u = get_varint(t + (at), avail - (at), &(var));                        \
        if (u == 0) {                                                          \
            *need_r = avail + 1;                                               \
            goto incomplete;                                                   \
        }                                                                      \
        if (u < 0) {                                                           \
            *why_r = what;                                                     \
            goto corrupt;                                                      \
        }                                                                      \
        (at) += (size_t)u;                                                     \
    } while (0)

    switch (sc->phase) {
    case SCAN_COUNT:
        o = 1;
        prev = UINT64_MAX;
        i = nr = 0;
        VARINT(o, count, "page count varint too long");
        if (count < 1 || count > LXM_PAGE_DATA_MAX_PAGES) {
            *why_r = "page count not in 1..1024";
            goto corrupt;
        }
        sc->phase = SCAN_PFNS;
        /* fall through */
    case SCAN_PFNS:
        for (; i < count; i++) {
            if (o < avail && t[o] < 0x80) /* most are one byte */
                v = t[o++];
            else
                VARINT(o, v, "pfn varint too long");
            pfn = prev + 1 + unzigzag(v >> 4);
            if (pfn > LXM_PFN_MASK) {
                *why_r = "pfn out of range";
                goto corrupt;
            }
            pp->words[i] = LXM_PFN_WORD(pfn, v & 0xf);
            prev = pfn;
            pp->refs[nr].pfn = pfn;
            nr += type_has_data(v);
        }
        sc->phase = SCAN_MAP;
        /* fall through */
    case SCAN_MAP:
        NEED(o, (nr + 3) / 4);
        sc->map_off = o;
        o += (nr + 3) / 4;
        if (nr % 4 && t[o - 1] >> (2 * (nr % 4))) {
            *why_r = "kind map padding not zero";
            goto corrupt;
        }
        i = 0;
        sc->phase = SCAN_DATA;
        /* fall through */
    case SCAN_DATA:
        for (; i < nr; i++) {
            page_ref *ref = &pp->refs[i];

            ref->kind = (t[sc->map_off + i / 4] >> (2 * (i % 4))) & 3;
            switch (ref->kind) {
            case KIND_ZERO:
                break;
            case KIND_RAW:
                if (o + LXM_PAGE_SIZE > avail) {
                    /* Ask for the raw and zero pages up to the next
                     * delta at once. */
                    k = o + LXM_PAGE_SIZE;
                    for (j = i + 1; j < nr; j++) {
                        unsigned int kind =
                            (t[sc->map_off + j / 4] >> (2 * (j % 4))) & 3;

                        if (kind == KIND_RAW)
                            k += LXM_PAGE_SIZE;
                        else if (kind != KIND_ZERO)
                            break;
                    }
                    *need_r = k;
                    goto incomplete;
                }
                ref->page_off = o;
                o += LXM_PAGE_SIZE;
                break;
            case KIND_DELTA:
                o2 = o;
                VARINT(o2, v, "delta length varint too long");
                if (v > DELTA_MAX) {
                    *why_r = "delta length over 3839";
                    goto corrupt;
                }
                NEED(o2, v);
                if (!delta_check(t + o2, (size_t)v)) {
                    *why_r = "delta run outside the page or its data";
                    goto corrupt;
                }
                ref->d_off = o2;
                ref->d_len = (uint32_t)v;
                o = o2 + (size_t)v;
                break;
            default:
                *why_r = "invalid page kind 3";
                goto corrupt;
            }
        }
        break;
    }
    pp->scan_count = (uint32_t)count;
    pp->scan_nr = nr;
    memset(sc, 0, sizeof(*sc));
    return (long)o;

incomplete:
    sc->o = o;
    sc->count = count;
    sc->prev = prev;
    sc->i = i;
    sc->nr = nr;
    return 0;

corrupt:
    memset(sc, 0, sizeof(*sc));
    return -1;
#undef NEED
#undef VARINT
}

/* Write the record a scanned PAGES token t stands for; update the cache. */
static int dec_pages(lxm__pagepass *pp, const uint8_t *t, lxm__buf *out)
{
    uint32_t count = pp->scan_count, nr = pp->scan_nr, i, nz = 0, nd = 0;
    size_t rlen = LXM__RHDR_LEN + LXM__PAGE_DATA_HDR_LEN + 8 * (size_t)count +
                  (size_t)nr * LXM_PAGE_SIZE;
    uint8_t *q, *pg;
    char why[96];
    int rc;

    rc = lxm__buf_reserve(out, rlen);
    if (rc)
        return rc;
    q = out->p + out->len;
    lxm__put_le32(q, LXM_LIBXC_PAGE_DATA);
    lxm__put_le32(q + 4, (uint32_t)(rlen - LXM__RHDR_LEN));
    lxm__put_le32(q + 8, count);
    lxm__put_le32(q + 12, 0);
    for (i = 0; i < count; i++)
        lxm__put_le64(q + 16 + 8 * (size_t)i, pp->words[i]);
    pg = q + 16 + 8 * (size_t)count;
    for (i = 0; i < nr; i++, pg += LXM_PAGE_SIZE) {
        page_ref *ref = &pp->refs[i];
        const uint8_t *base;

        switch (ref->kind) {
        case KIND_ZERO:
            memset(pg, 0, LXM_PAGE_SIZE);
            nz++;
            break;
        case KIND_RAW:
            memcpy(pg, t + ref->page_off, LXM_PAGE_SIZE);
            ref->d_off = 0;
            ref->d_len = 0;
            ref->cidx = cache_find(&pp->cache, ref->pfn);
            break;
        default:
            ref->cidx = cache_find(&pp->cache, ref->pfn);
            base = delta_base(pp, ref);
            if (!base) {
                snprintf(why, sizeof(why),
                         "delta for pfn %#llx, which is not in the cache%s",
                         (unsigned long long)ref->pfn,
                         pp->version >= 2 ? " nor last sent as zero" : "");
                return corrupt(pp, pp->in_off, why);
            }
            memcpy(pg, base, LXM_PAGE_SIZE);
            delta_apply(pg, t + ref->d_off, ref->d_len);
            nd++;
            break;
        }
        /* From here the page is in the record (token_done()). */
        ref->page_off = (size_t)i * LXM_PAGE_SIZE;
    }
    rc = token_done(pp, q + 16 + 8 * (size_t)count, t, rlen, nr, nz, nd);
    if (rc)
        return rc;
    out->len += rlen;
    pp->st.bytes_in += rlen;
    return 0;
}

/*
 * One token (or a LIT's header) at t[0..avail), avail >= 1: *used_r
 * bytes consumed, or 0 with *need_r set when incomplete.
 */
static int dec_token(lxm__pagepass *pp, const uint8_t *t, size_t avail,
                     size_t *used_r, size_t *need_r, lxm__buf *out)
{
    const char *why = NULL;
    size_t need = 0;
    uint64_t v;
    long l;
    int u, rc;

    *used_r = 0;
    switch (t[0]) {
    case TOK_END:
        pp->ds = DEC_DONE;
        *used_r = 1;
        return 0;
    case TOK_LIT:
        u = get_varint(t + 1, avail - 1, &v);
        if (u == 0) {
            *need_r = avail + 1;
            return 0;
        }
        if (u < 0 || v == 0)
            return corrupt(pp, pp->in_off,
                           u < 0 ? "literal length varint too long"
                                 : "empty literal");
        pp->lit_left = v;
        pp->ds = DEC_LIT;
        *used_r = 1 + (size_t)u;
        return 0;
    case TOK_PAGES:
        l = scan_pages(pp, t, avail, &need, &why);
        if (l < 0)
            return corrupt(pp, pp->in_off, why);
        if (l == 0) {
            *need_r = need;
            return 0;
        }
        rc = dec_pages(pp, t, out);
        if (rc)
            return rc;
        *used_r = (size_t)l;
        return 0;
    default:
        return corrupt(pp, pp->in_off, "unknown token type");
    }
}

/* The stream header, held in dhdr until complete. */
static int dec_header(lxm__pagepass *pp, const uint8_t *p, size_t len,
                      size_t *used_r)
{
    size_t n = 0, m = sizeof(pp_magic) + 1;
    uint64_t v;
    int u;

    while (n < len) {
        pp->dhdr[pp->dhdr_len++] = p[n++];
        if (pp->dhdr_len < m) {
            if (pp->dhdr[pp->dhdr_len - 1] != pp_magic[pp->dhdr_len - 1])
                return corrupt(pp, pp->dhdr_len - 1,
                               "not a page pre-pass stream (magic)");
            continue;
        }
        if (pp->dhdr_len == m) {
            pp->version = pp->dhdr[m - 1];
            if (pp->version < 1 || pp->version > PP_VERSION)
                return corrupt(pp, m - 1, "unsupported pre-pass version");
            continue;
        }
        u = get_varint(pp->dhdr + m, pp->dhdr_len - m, &v);
        if (u < 0)
            return corrupt(pp, m, "cache size varint too long");
        if (u == 0)
            continue;
        if (v != pp->cache_pages) {
            LXM_LOG_ERROR(pp->lg,
                          "page pre-pass: the stream was encoded with a"
                          " cache of %llu pages, this decoder has %u",
                          (unsigned long long)v, pp->cache_pages);
            return LXM_ERROR_CORRUPT;
        }
        pp->in_off = pp->dhdr_len;
        pp->ds = DEC_TOKEN;
        break;
    }
    *used_r = n;
    return 0;
}

static int dec_feed(lxm__pagepass *pp, const uint8_t *p, size_t len,
                    lxm__buf *out)
{
    const uint8_t *end = p + len;
    size_t n, used, need = 0;
    int rc;

    while (p < end) {
        switch (pp->ds) {
        case DEC_HDR:
            rc = dec_header(pp, p, (size_t)(end - p), &used);
            if (rc)
                return rc;
            p += used;
            break;
        case DEC_LIT:
            n = (size_t)LXM_MIN(pp->lit_left, (uint64_t)(end - p));
            rc = lxm__buf_append(out, p, n);
            if (rc)
                return rc;
            p += n;
            pp->lit_left -= n;
            pp->in_off += n;
            pp->st.bytes_in += n;
            pp->st.bytes_literal += n;
            if (!pp->lit_left)
                pp->ds = DEC_TOKEN;
            break;
        case DEC_DONE:
            return corrupt(pp, pp->in_off, "bytes after the END token");
        case DEC_TOKEN:
            if (!pp->tok.len) {
                rc = dec_token(pp, p, (size_t)(end - p), &used, &need, out);
                if (rc)
                    return rc;
                if (used) {
                    p += used;
                    pp->in_off += used;
                    break;
                }
                /* Incomplete: hold it (need is bounded, see scan_pages). */
                rc = lxm__buf_append(&pp->tok, p, (size_t)(end - p));
                if (rc)
                    return rc;
                pp->tok_need = need;
                p = end;
                break;
            }
            n = LXM_MIN(pp->tok_need - pp->tok.len, (size_t)(end - p));
            rc = lxm__buf_append(&pp->tok, p, n);
            if (rc)
                return rc;
            p += n;
            if (pp->tok.len < pp->tok_need)
                break;
            rc = dec_token(pp, pp->tok.p, pp->tok.len, &used, &need, out);
            if (rc)
                return rc;
            if (!used) {
                pp->tok_need = need;
                break;
            }
            /* need was a lower bound, so the token is all of tok. */
            pp->in_off += used;
            pp->tok.len = 0;
            break;
        }
    }
    return 0;
}

/* ---- entry points ---------------------------------------------------- */

int lxm__pagepass_feed(lxm__pagepass *pp, const void *buf, size_t len,
                       lxm__buf *out)
{
    int rc;

    if (pp->encoder) {
        rc = enc_start(pp, out);
        if (rc)
            return rc;
        pp->st.bytes_in += len;
        return len ? enc_feed(pp, buf, len, out) : 0;
    }
    pp->st.bytes_out += len;
    return dec_feed(pp, buf, len, out);
}

int lxm__pagepass_finish(lxm__pagepass *pp, lxm__buf *out)
{
    uint8_t end = TOK_END;
    int rc;

    if (pp->encoder) {
        rc = enc_start(pp, out);
        if (rc)
            return rc;
        if (pp->es == ENC_REC && pp->rec_got) {
            rc = rec_unstream(pp);
            if (!rc)
                rc = emit_lit(pp, pp->rec.p, pp->rec.len, out);
            if (rc)
                return rc;
            rec_reset(pp);
        }
        rc = lxm__buf_append(out, &end, 1);
        if (rc)
            return rc;
        pp->st.bytes_out++;
        pp->es = ENC_SEARCH;
        pp->tail_len = 0;
        return 0;
    }
    switch (pp->ds) {
    case DEC_DONE:
        return 0;
    case DEC_HDR:
        return corrupt(pp, pp->dhdr_len, "truncated stream header");
    case DEC_LIT:
        return corrupt(pp, pp->in_off, "truncated literal");
    default:
        return corrupt(pp, pp->in_off,
                       pp->tok.len ? "truncated token" : "no END token");
    }
}
