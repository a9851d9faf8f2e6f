/*
 * stats.c - stream statistics: what `xlmig stream-info` reports.
 *
 * Entry points (include/libxlmig.h section 6):
 *   lxm_stream_stats_new / _free
 *   lxm_stream_stats_event      a reader callback; feeds everything below
 *   lxm_stream_stats_summary    copies the totals out
 *   lxm_stream_stats_iteration_pages
 *
 * What each event contributes:
 *   XL_HEADER      header flags, config length; the JSON config is parsed
 *                  (yajl_tree) for c_info.name and c_info.type.  A config
 *                  that is not JSON is not an error here: validating the
 *                  stream is the reader's job, so the fields stay "".
 *   LIBXC_HEADER   libxc version, guest type, Xen version.
 *   RECORD         PAGE_DATA: page types, pfns (distinct / re-sent / max),
 *                  pre-copy iterations, data pages.
 *   PAGE           zero-page check (only with LXM_READER_PAGES).
 *   RECORD_END     record counts and bytes per layer.
 *
 * Bytes per layer include that layer's stream headers (the xl header
 * and its optional data, the libxl header, the libxc image and domain
 * headers), so the three add up to the stream's size.
 *
 * Pfn tracking: pfns are < 2^52, so "seen" is a sparse two-level bitmap:
 * an open-addressing hash of 32K-pfn chunks (4 KiB of bits each),
 * allocated when a chunk's first pfn shows up, with the last chunk
 * cached for the usual ascending runs.  Memory is bounded by the
 * distinct pfns seen (at most one chunk each).  Nothing is allocated per
 * page: only per new chunk and per new iteration.
 *
 * Iterations: libxc sends one iteration's pfns in ascending order, so a
 * new iteration starts at a pfn not greater than the previous one in the
 * same libxc segment, and at the first page of each segment (after a
 * CHECKPOINT).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "libxlmig_internal.h"

#define CHUNK_SHIFT 15 /* 32K pfns per chunk */
/*
 * Bound on the pfn set: 64K chunks = 256 MiB of bits, a dense 8 TiB
 * guest.  A hostile stream spreading its pfns one per chunk would
 * otherwise cost 4 KiB per 8-byte pfn word; past the bound the stats
 * callback fails with LXM_ERROR_NOMEM and the reader stops.
 */
#define CHUNKS_MAX (1u << 16)
#define CHUNK_PFNS (1u << CHUNK_SHIFT)
#define CHUNK_WORDS (CHUNK_PFNS / 64) /* 512 x u64 = 4 KiB */
#define CHUNK_TABLE_MIN 64u           /* slots, power of two */

typedef struct pfn_chunk {
    uint64_t index; /* pfn >> CHUNK_SHIFT */
    uint64_t bits[CHUNK_WORDS];
} pfn_chunk;

struct lxm_stream_stats {
    lxm_stream_summary s;

    /* Seen pfns: hash of chunks (slot NULL = empty), owned here. */
    pfn_chunk **chunks;
    size_t nr_slots; /* power of two or 0 */
    size_t nr_chunks;
    pfn_chunk *last_chunk; /* cache, borrowed */

    /* Iterations: pages in each, growable. */
    uint64_t *iter_pages;
    uint32_t iter_cap;
    bool have_prev_pfn;
    uint64_t prev_pfn;
    uint32_t prev_segment;
};

static const uint64_t zero_page[LXM_PAGE_SIZE / sizeof(uint64_t)];

int lxm_stream_stats_new(lxm_stream_stats **stats_r)
{
    lxm_stream_stats *st;

    if (!stats_r)
        return LXM_ERROR_INVAL;
    st = calloc(1, sizeof(*st));
    if (!st)
        return LXM_ERROR_NOMEM;
    *stats_r = st;
    return 0;
}

void lxm_stream_stats_free(lxm_stream_stats *stats)
{
    size_t i;

    if (!stats)
        return;
    for (i = 0; i < stats->nr_slots; i++)
        free(stats->chunks[i]);
    free(stats->chunks);
    free(stats->iter_pages);
    free(stats);
}

/* ---- Sparse pfn bitmap ---- */

static size_t chunk_hash(uint64_t index, size_t nr_slots)
{
    /* Fibonacci hashing; nr_slots is a power of two. */
    return (size_t)((index * UINT64_C(0x9e3779b97f4a7c15)) >> 32) &
           (nr_slots - 1);
}

static void chunk_insert_slot(pfn_chunk **slots, size_t nr_slots, pfn_chunk *c)
{
    size_t i = chunk_hash(c->index, nr_slots);

    while (slots[i])
        i = (i + 1) & (nr_slots - 1);
    slots[i] = c;
}

static int chunks_grow(lxm_stream_stats *st)
{
    size_t nr = st->nr_slots ? st->nr_slots * 2 : CHUNK_TABLE_MIN;
    pfn_chunk **slots;
    size_t i;

    slots = calloc(nr, sizeof(*slots));
    if (!slots)
        return LXM_ERROR_NOMEM;
    for (i = 0; i < st->nr_slots; i++) {
        if (st->chunks[i])
            chunk_insert_slot(slots, nr, st->chunks[i]);
    }
    free(st->chunks);
    st->chunks = slots;
    st->nr_slots = nr;
    return 0;
}

/* The chunk holding pfn, allocated if new.  NULL: out of memory, or
 * CHUNKS_MAX reached. */
static pfn_chunk *chunk_get(lxm_stream_stats *st, uint64_t pfn)
{
    uint64_t index = pfn >> CHUNK_SHIFT;
    pfn_chunk *c;
    size_t i;

    if (st->last_chunk && st->last_chunk->index == index)
        return st->last_chunk;

    if (st->nr_slots) {
        i = chunk_hash(index, st->nr_slots);
        while ((c = st->chunks[i])) {
            if (c->index == index) {
                st->last_chunk = c;
                return c;
            }
            i = (i + 1) & (st->nr_slots - 1);
        }
    }

    if (st->nr_chunks >= CHUNKS_MAX)
        return NULL;
    /* Keep the load factor at or under 1/2. */
    if ((st->nr_chunks + 1) * 2 > st->nr_slots && chunks_grow(st))
        return NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->index = index;
    chunk_insert_slot(st->chunks, st->nr_slots, c);
    st->nr_chunks++;
    st->last_chunk = c;
    return c;
}

/* ---- Iterations ---- */

static int iteration_add_page(lxm_stream_stats *st, uint64_t pfn,
                              uint32_t segment)
{
    lxm_stream_summary *s = &st->s;
    uint64_t *n;
    uint32_t cap;

    if (!st->have_prev_pfn || segment != st->prev_segment ||
        pfn <= st->prev_pfn) {
        if (s->nr_iterations == st->iter_cap) {
            if (st->iter_cap >= UINT32_MAX / 2)
                return LXM_ERROR_NOMEM;
            cap = st->iter_cap ? st->iter_cap * 2 : 16;
            n = realloc(st->iter_pages, cap * sizeof(*n));
            if (!n)
                return LXM_ERROR_NOMEM;
            st->iter_pages = n;
            st->iter_cap = cap;
        }
        st->iter_pages[s->nr_iterations++] = 0;
    }
    st->iter_pages[s->nr_iterations - 1]++;
    st->have_prev_pfn = true;
    st->prev_pfn = pfn;
    st->prev_segment = segment;
    return 0;
}

/* ---- Events ---- */

static void parse_config(lxm_stream_summary *s, const char *config,
                         uint32_t config_len)
{
    static const char *name_path[] = { "c_info", "name", NULL };
    static const char *type_path[] = { "c_info", "type", NULL };
    char *copy = NULL;
    const char *json, *str;
    yajl_val tree = NULL, v;

    s->domain_name[0] = '\0';
    s->domain_type[0] = '\0';
    if (!config || !config_len)
        goto out;

    /* yajl wants a NUL-terminated string; the saver should have
     * written one, but the config is stream data: don't rely on it. */
    if (config[config_len - 1] == '\0') {
        json = config;
    } else {
        copy = strndup(config, config_len);
        if (!copy)
            goto out;
        json = copy;
    }

    tree = yajl_tree_parse(json, NULL, 0);
    if (!tree)
        goto out;
    v = yajl_tree_get(tree, name_path, yajl_t_string);
    str = YAJL_GET_STRING(v);
    if (str)
        snprintf(s->domain_name, sizeof(s->domain_name), "%s", str);
    v = yajl_tree_get(tree, type_path, yajl_t_string);
    str = YAJL_GET_STRING(v);
    if (str &&
        (!strcmp(str, "pv") || !strcmp(str, "pvh") || !strcmp(str, "hvm")))
        snprintf(s->domain_type, sizeof(s->domain_type), "%s", str);

out:
    yajl_tree_free(tree);
    free(copy);
}

static void layer_bytes(lxm_stream_summary *s, lxm_stream_layer layer,
                        uint64_t offset, uint64_t len)
{
    if ((unsigned int)layer < LXM_ARRAY_SIZE(s->record_bytes))
        s->record_bytes[layer] += len;
    if (offset + len > s->bytes)
        s->bytes = offset + len;
}

static int page_data(lxm_stream_stats *st, const lxm_stream_event *ev)
{
    lxm_stream_summary *s = &st->s;
    const uint64_t *pfns = ev->u.record.pfns;
    uint32_t i, type, bit;
    uint64_t pfn, *word;
    pfn_chunk *c;
    bool seen;
    int rc;

    if (!pfns)
        return 0;

    for (i = 0; i < ev->u.record.count; i++) {
        type = (uint32_t)(pfns[i] >> LXM_PFN_TYPE_SHIFT);
        pfn = pfns[i] & LXM_PFN_MASK;

        s->pages_by_type[type & (LXM_PAGE_NR_TYPES - 1)]++;

        c = chunk_get(st, pfn);
        if (!c)
            return LXM_ERROR_NOMEM;
        bit = (uint32_t)(pfn & (CHUNK_PFNS - 1));
        word = &c->bits[bit / 64];
        seen = *word & (UINT64_C(1) << (bit % 64));
        if (!seen) {
            *word |= UINT64_C(1) << (bit % 64);
            s->distinct_pfns++;
        }
        if (lxm_page_type_has_data(type)) {
            s->data_pages++;
            s->page_data_bytes += LXM_PAGE_SIZE;
            if (seen)
                s->resent_pages++;
        }
        if (pfn > s->max_pfn)
            s->max_pfn = pfn;

        rc = iteration_add_page(st, pfn, ev->u.record.checkpoint);
        if (rc)
            return rc;
    }
    return 0;
}

static void count_record(lxm_stream_summary *s, const lxm_stream_event *ev)
{
    uint32_t type = ev->u.record.type;

    if (type & LXM_RECORD_OPTIONAL) {
        s->optional_records++;
    } else if (ev->layer == LXM_LAYER_LIBXL) {
        if (type < LXM_LIBXL_NR_TYPES)
            s->libxl_records[type]++;
    } else if (ev->layer == LXM_LAYER_LIBXC) {
        if (type < LXM_LIBXC_NR_TYPES)
            s->libxc_records[type]++;
        if (type == LXM_LIBXC_CHECKPOINT)
            s->checkpoints++;
    }
}

int lxm_stream_stats_event(void *opaque, const lxm_stream_event *ev)
{
    lxm_stream_stats *st = opaque;
    lxm_stream_summary *s;

    if (!st || !ev)
        return LXM_ERROR_INVAL;
    s = &st->s;

    switch (ev->kind) {
    case LXM_EV_XL_HEADER:
        s->have_xl_header = true;
        s->xl_mandatory_flags = ev->u.xl.mandatory_flags;
        s->xl_optional_flags = ev->u.xl.optional_flags;
        s->xl_config_len = ev->u.xl.config_len;
        if (ev->u.xl.mandatory_flags & LXM_XL_MANDATORY_JSON)
            parse_config(s, ev->u.xl.config, ev->u.xl.config_len);
        layer_bytes(s, LXM_LAYER_XL, ev->offset,
                    LXM_XL_HEADER_LEN + (uint64_t)ev->u.xl.optional_data_len);
        break;
    case LXM_EV_LIBXL_HEADER:
        layer_bytes(s, LXM_LAYER_LIBXL, ev->offset, LXM__LIBXL_HEADER_LEN);
        break;
    case LXM_EV_LIBXC_HEADER:
        s->libxc_version = ev->u.libxc_header.version;
        s->guest_type = ev->u.libxc_header.guest_type;
        s->xen_major = ev->u.libxc_header.xen_major;
        s->xen_minor = ev->u.libxc_header.xen_minor;
        layer_bytes(s, LXM_LAYER_LIBXC, ev->offset, LXM__LIBXC_HEADERS_LEN);
        break;
    case LXM_EV_RECORD:
        if (ev->layer == LXM_LAYER_LIBXC &&
            ev->u.record.type == LXM_LIBXC_PAGE_DATA)
            return page_data(st, ev);
        break;
    case LXM_EV_PAGE:
        if (ev->u.page.data &&
            !memcmp(ev->u.page.data, zero_page, sizeof(zero_page)))
            s->zero_pages++;
        break;
    case LXM_EV_RECORD_END:
        count_record(s, ev);
        layer_bytes(s, ev->layer, ev->offset,
                    LXM__RHDR_LEN +
                        LXM_ROUNDUP8((uint64_t)ev->u.record.length));
        break;
    case LXM_EV_RECORD_BODY:
    case LXM_EV_STREAM_END:
        break;
    }
    return 0;
}

void lxm_stream_stats_summary(const lxm_stream_stats *stats,
                              lxm_stream_summary *summary_r)
{
    if (!summary_r)
        return;
    if (!stats) {
        memset(summary_r, 0, sizeof(*summary_r));
        return;
    }
    *summary_r = stats->s;
}

uint64_t lxm_stream_stats_iteration_pages(const lxm_stream_stats *stats,
                                          uint32_t i)
{
    if (!stats || i >= stats->s.nr_iterations)
        return 0;
    return stats->iter_pages[i];
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
