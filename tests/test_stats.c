/*
 * test_stats.c - stream statistics (libxlmig/stream/stats.c).
 *
 * Hand-built event sequences, fed straight to lxm_stream_stats_event:
 * iteration inference, zero pages, distinct/re-sent pfns (near 2^52 and
 * across 32K-pfn chunks), the JSON config.  Then synthetic streams
 * through the real reader, checked against what synth.c writes by
 * construction.
 */
#include <stdlib.h>
#include <string.h>

#include "test.h"

/* ---- Hand-built events ---- */

static lxm_stream_stats *new_stats(void)
{
    lxm_stream_stats *st = NULL;

    ck_assert_int_eq(lxm_stream_stats_new(&st), 0);
    ck_assert_ptr_nonnull(st);
    return st;
}

/* One PAGE_DATA record: RECORD, a PAGE per data page, RECORD_END. */
static void feed_page_data(lxm_stream_stats *st, const uint64_t *words,
                           uint32_t count, uint32_t segment, const void *page)
{
    static uint64_t offset = 0;
    lxm_stream_event ev;
    uint32_t i, nr_data = 0;

    for (i = 0; i < count; i++)
        nr_data += lxm_page_type_has_data(words[i] >> LXM_PFN_TYPE_SHIFT);

    memset(&ev, 0, sizeof(ev));
    ev.kind = LXM_EV_RECORD;
    ev.layer = LXM_LAYER_LIBXC;
    ev.offset = offset;
    ev.u.record.type = LXM_LIBXC_PAGE_DATA;
    ev.u.record.length = 8 + 8 * count + LXM_PAGE_SIZE * nr_data;
    ev.u.record.pfns = words;
    ev.u.record.count = count;
    ev.u.record.nr_data_pages = nr_data;
    ev.u.record.checkpoint = segment;
    ck_assert_int_eq(lxm_stream_stats_event(st, &ev), 0);

    for (i = 0; i < count; i++) {
        lxm_stream_event pe;

        if (!lxm_page_type_has_data(words[i] >> LXM_PFN_TYPE_SHIFT))
            continue;
        memset(&pe, 0, sizeof(pe));
        pe.kind = LXM_EV_PAGE;
        pe.layer = LXM_LAYER_LIBXC;
        pe.u.page.pfn = words[i] & LXM_PFN_MASK;
        pe.u.page.page_type = (uint32_t)(words[i] >> LXM_PFN_TYPE_SHIFT);
        pe.u.page.index = i;
        pe.u.page.data = page;
        ck_assert_int_eq(lxm_stream_stats_event(st, &pe), 0);
    }

    ev.kind = LXM_EV_RECORD_END;
    ck_assert_int_eq(lxm_stream_stats_event(st, &ev), 0);
    offset += 8 + LXM_ROUNDUP8(ev.u.record.length);
}

static void feed_pfns(lxm_stream_stats *st, const uint64_t *pfns,
                      uint32_t count, uint32_t segment)
{
    static const uint8_t page[LXM_PAGE_SIZE] = { 1 };
    uint64_t words[LXM_PAGE_DATA_MAX_PAGES];
    uint32_t i;

    ck_assert_uint_le(count, LXM_PAGE_DATA_MAX_PAGES);
    for (i = 0; i < count; i++)
        words[i] = LXM_PFN_WORD(pfns[i], LXM_PAGE_NOTAB);
    feed_page_data(st, words, count, segment, page);
}

/*
 * Iteration inference.  Each case: up to 4 records of up to 8 pfns
 * (count 0 ends the list), the libxc segment of each, and the expected
 * pages per iteration (0 ends).
 */
#define IT_NR 4
#define IT_PFNS 8
static const struct iter_case {
    const char *what;
    struct {
        uint32_t count;
        uint32_t segment;
        uint64_t pfns[IT_PFNS];
    } rec[IT_NR];
    uint64_t expect[8];
} iter_cases[] = {
    { "one ascending record", { { 5, 0, { 0, 1, 2, 3, 4 } } }, { 5 } },
    { "ascending across records is one iteration",
      { { 3, 0, { 0, 1, 2 } }, { 2, 0, { 3, 100 } } },
      { 5 } },
    { "restart at 0 starts an iteration",
      { { 4, 0, { 0, 1, 2, 3 } }, { 2, 0, { 0, 2 } } },
      { 4, 2 } },
    { "an equal pfn starts an iteration",
      { { 3, 0, { 7, 7, 7 } } },
      { 1, 1, 1 } },
    { "descent inside one record", { { 4, 0, { 10, 3, 7, 1 } } }, { 1, 2, 1 } },
    { "dirty sets shrinking, like pre-copy",
      { { 8, 0, { 0, 1, 2, 3, 4, 5, 6, 7 } },
        { 3, 0, { 1, 4, 6 } },
        { 1, 0, { 4 } },
        { 2, 0, { 0, 7 } } },
      { 8, 3, 1, 2 } },
    { "a new libxc segment starts an iteration",
      { { 2, 0, { 0, 1 } }, { 2, 1, { 2, 3 } }, { 1, 2, { 9 } } },
      { 2, 2, 1 } },
    { "pfns near 2^52",
      { { 3, 0, { LXM_PFN_MASK - 2, LXM_PFN_MASK - 1, LXM_PFN_MASK } },
        { 1, 0, { LXM_PFN_MASK } } },
      { 3, 1 } },
};

START_TEST(test_iterations)
{
    const struct iter_case *c = &iter_cases[_i];
    lxm_stream_stats *st = new_stats();
    lxm_stream_summary s;
    uint32_t r, n = 0;

    for (r = 0; r < IT_NR && c->rec[r].count; r++)
        feed_pfns(st, c->rec[r].pfns, c->rec[r].count, c->rec[r].segment);
    while (n < LXM_ARRAY_SIZE(c->expect) && c->expect[n])
        n++;

    lxm_stream_stats_summary(st, &s);
    ck_assert_msg(s.nr_iterations == n, "%s: %u iterations, expected %u",
                  c->what, s.nr_iterations, n);
    for (r = 0; r < n; r++)
        ck_assert_msg(
            lxm_stream_stats_iteration_pages(st, r) == c->expect[r],
            "%s: iteration %u: %llu pages, "
            "expected %llu",
            c->what, r,
            (unsigned long long)lxm_stream_stats_iteration_pages(st, r),
            (unsigned long long)c->expect[r]);
    ck_assert_uint_eq(lxm_stream_stats_iteration_pages(st, n), 0);
    lxm_stream_stats_free(st);
}
END_TEST

/* Many iterations: the growable array. */
START_TEST(test_iterations_many)
{
    lxm_stream_stats *st = new_stats();
    lxm_stream_summary s;
    uint64_t pfns[3];
    uint32_t i;

    for (i = 0; i < 1000; i++) {
        pfns[0] = 5;
        pfns[1] = 6 + i;
        pfns[2] = 7 + 2 * i;
        feed_pfns(st, pfns, i % 3 + 1, 0);
    }
    lxm_stream_stats_summary(st, &s);
    ck_assert_uint_eq(s.nr_iterations, 1000);
    for (i = 0; i < 1000; i++)
        ck_assert_uint_eq(lxm_stream_stats_iteration_pages(st, i), i % 3 + 1);
    lxm_stream_stats_free(st);
}
END_TEST

/* ---- Zero pages ---- */

START_TEST(test_zero_pages)
{
    static uint8_t pages[5][LXM_PAGE_SIZE];
    lxm_stream_stats *st = new_stats();
    lxm_stream_summary s;
    uint64_t word;
    unsigned int i;

    /* 0: zero; 1: last byte set; 2: first byte set; 3: a middle bit
     * set; 4: zero. */
    memset(pages, 0, sizeof(pages));
    pages[1][LXM_PAGE_SIZE - 1] = 1;
    pages[2][0] = 0x80;
    pages[3][2049] = 0x10;

    for (i = 0; i < 5; i++) {
        word = LXM_PFN_WORD(i, LXM_PAGE_NOTAB);
        feed_page_data(st, &word, 1, 0, pages[i]);
    }
    /* Pages without data are never zero pages (they have no page). */
    word = LXM_PFN_WORD(5, LXM_PAGE_XTAB);
    feed_page_data(st, &word, 1, 0, NULL);

    lxm_stream_stats_summary(st, &s);
    ck_assert_uint_eq(s.data_pages, 5);
    ck_assert_uint_eq(s.page_data_bytes, 5 * LXM_PAGE_SIZE);
    ck_assert_uint_eq(s.zero_pages, 2);
    ck_assert_uint_eq(s.pages_by_type[LXM_PAGE_NOTAB], 5);
    ck_assert_uint_eq(s.pages_by_type[LXM_PAGE_XTAB], 1);
    ck_assert_uint_eq(s.libxc_records[LXM_LIBXC_PAGE_DATA], 6);
    lxm_stream_stats_free(st);
}
END_TEST

/* ---- Distinct and re-sent pfns ---- */

#define PFN_TOP LXM_PFN_MASK
static const struct pfn_case {
    const char *what;
    uint32_t count;
    uint64_t words[12];
    uint64_t distinct, resent, max_pfn;
} pfn_cases[] = {
    { "all new",
      4,
      { LXM_PFN_WORD(0, 0), LXM_PFN_WORD(1, 0), LXM_PFN_WORD(2, 0),
        LXM_PFN_WORD(3, 0) },
      4,
      0,
      3 },
    { "resent in order",
      6,
      { LXM_PFN_WORD(0, 0), LXM_PFN_WORD(1, 0), LXM_PFN_WORD(2, 0),
        LXM_PFN_WORD(0, 0), LXM_PFN_WORD(2, 0), LXM_PFN_WORD(2, 0) },
      3,
      3,
      2 },
    { "chunk boundary 32767/32768",
      6,
      { LXM_PFN_WORD(32767, 0), LXM_PFN_WORD(32768, 0), LXM_PFN_WORD(65535, 0),
        LXM_PFN_WORD(65536, 0), LXM_PFN_WORD(32768, 0),
        LXM_PFN_WORD(32767, 0) },
      4,
      2,
      65536 },
    { "near 2^52",
      7,
      { LXM_PFN_WORD(PFN_TOP, 0), LXM_PFN_WORD(PFN_TOP - 1, 0),
        LXM_PFN_WORD(PFN_TOP - 32768, 0), LXM_PFN_WORD(0, 0),
        LXM_PFN_WORD(PFN_TOP, 0), LXM_PFN_WORD(PFN_TOP - 32768, 0),
        LXM_PFN_WORD(PFN_TOP & ~UINT64_C(32767), 0) },
      5,
      2,
      PFN_TOP },
    { "pfns without data count as seen, not as re-sent",
      5,
      { LXM_PFN_WORD(9, LXM_PAGE_XTAB), LXM_PFN_WORD(9, LXM_PAGE_XTAB),
        LXM_PFN_WORD(9, LXM_PAGE_NOTAB), LXM_PFN_WORD(10, LXM_PAGE_L1TAB),
        LXM_PFN_WORD(10, LXM_PAGE_BROKEN) },
      2,
      1,
      10 },
};

START_TEST(test_pfns)
{
    static const uint8_t page[LXM_PAGE_SIZE];
    const struct pfn_case *c = &pfn_cases[_i];
    lxm_stream_stats *st = new_stats();
    lxm_stream_summary s;

    feed_page_data(st, c->words, c->count, 0, page);
    lxm_stream_stats_summary(st, &s);
    ck_assert_msg(s.distinct_pfns == c->distinct, "%s: distinct %llu", c->what,
                  (unsigned long long)s.distinct_pfns);
    ck_assert_msg(s.resent_pages == c->resent, "%s: resent %llu", c->what,
                  (unsigned long long)s.resent_pages);
    ck_assert_msg(s.max_pfn == c->max_pfn, "%s: max_pfn %llx", c->what,
                  (unsigned long long)s.max_pfn);
    lxm_stream_stats_free(st);
}
END_TEST

/* Thousands of scattered chunks (hash growth), then all re-sent. */
START_TEST(test_pfns_scattered)
{
    lxm_stream_stats *st = new_stats();
    lxm_stream_summary s;
    uint64_t pfns[1000];
    uint32_t round, i, j;

    for (round = 0; round < 2; round++) {
        for (i = 0; i < 5; i++) {
            for (j = 0; j < 1000; j++)
                pfns[j] =
                    (((uint64_t)(i * 1000 + j) * UINT64_C(0x9e3779b9)) << 8) &
                    LXM_PFN_MASK;
            feed_pfns(st, pfns, 1000, 0);
        }
    }
    lxm_stream_stats_summary(st, &s);
    ck_assert_uint_eq(s.distinct_pfns, 5000);
    ck_assert_uint_eq(s.resent_pages, 5000);
    ck_assert_uint_eq(s.data_pages, 10000);
    lxm_stream_stats_free(st);
}
END_TEST

/* A hostile stream spreading one pfn per 32K-pfn chunk must hit the
 * bound on the pfn set (64K chunks), not eat 4 KiB per pfn word. */
START_TEST(test_pfns_sparse_bounded)
{
    lxm_stream_stats *st = new_stats();
    lxm_stream_event ev;
    uint64_t words[1024];
    uint32_t rec, j;
    int rc = 0;

    memset(&ev, 0, sizeof(ev));
    ev.kind = LXM_EV_RECORD;
    ev.layer = LXM_LAYER_LIBXC;
    ev.u.record.type = LXM_LIBXC_PAGE_DATA;
    ev.u.record.pfns = words;
    ev.u.record.count = 1024;
    ev.u.record.length = 8 + 8 * 1024;
    for (rec = 0; rec < 65 && !rc; rec++) {
        for (j = 0; j < 1024; j++)
            words[j] =
                LXM_PFN_WORD((uint64_t)(rec * 1024 + j) << 15, LXM_PAGE_XTAB);
        rc = lxm_stream_stats_event(st, &ev);
    }
    ck_assert_int_eq(rc, LXM_ERROR_NOMEM);
    ck_assert_uint_eq(rec, 65); /* 64 records fit: 65536 chunks */
    lxm_stream_stats_free(st);
}
END_TEST

/* ---- xl header and JSON config ---- */

static const struct config_case {
    const char *what;
    uint32_t mandatory;
    const char *config;
    bool nul; /* config_len includes a NUL */
    const char *name, *type;
} config_cases[] = {
    { "pvh", LXM_XL_MANDATORY_JSON | LXM_XL_MANDATORY_STREAMV2,
      "{\"c_info\": {\"type\": \"pvh\", \"name\": \"tinypvh\"}}", true,
      "tinypvh", "pvh" },
    { "pv, name first", LXM_XL_MANDATORY_JSON,
      "{\"c_info\": {\"name\": \"web-1\", \"type\": \"pv\"}, \"b_info\": {}}",
      true, "web-1", "pv" },
    { "hvm without NUL in config_len", LXM_XL_MANDATORY_JSON,
      "{\"c_info\": {\"type\": \"hvm\", \"name\": \"w\"}}", false, "w", "hvm" },
    { "not JSON", LXM_XL_MANDATORY_JSON, "name = \"x\"\ntype = \"pv\"\n", true,
      "", "" },
    { "truncated JSON", LXM_XL_MANDATORY_JSON,
      "{\"c_info\": {\"type\": \"pv\", \"name\": \"x\"", true, "", "" },
    { "JSON flag unset", LXM_XL_MANDATORY_STREAMV2,
      "{\"c_info\": {\"type\": \"pv\", \"name\": \"x\"}}", true, "", "" },
    { "unknown type, name kept", LXM_XL_MANDATORY_JSON,
      "{\"c_info\": {\"type\": \"arm\", \"name\": \"a\"}}", true, "a", "" },
    { "wrong JSON types", LXM_XL_MANDATORY_JSON,
      "{\"c_info\": {\"type\": 3, \"name\": [\"a\"]}}", true, "", "" },
    { "no c_info", LXM_XL_MANDATORY_JSON, "[1, 2, 3]", true, "", "" },
    { "long name truncated", LXM_XL_MANDATORY_JSON,
      "{\"c_info\": {\"name\": \"0123456789012345678901234567890123456789"
      "012345678901234567890123456789\"}}",
      true, "012345678901234567890123456789012345678901234567890123456789012",
      "" },
};

START_TEST(test_config)
{
    const struct config_case *c = &config_cases[_i];
    lxm_stream_stats *st = new_stats();
    lxm_stream_summary s;
    lxm_stream_event ev;
    size_t len = strlen(c->config);
    char *copy;

    /* A private copy, so a missing NUL is really missing. */
    copy = malloc(len + 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, c->config, len + 1);
    if (!c->nul)
        copy[len] = '}'; /* not part of config_len, not a NUL */

    memset(&ev, 0, sizeof(ev));
    ev.kind = LXM_EV_XL_HEADER;
    ev.layer = LXM_LAYER_XL;
    ev.u.xl.mandatory_flags = c->mandatory;
    ev.u.xl.optional_flags = 0;
    ev.u.xl.config = copy;
    ev.u.xl.config_len = (uint32_t)(len + (c->nul ? 1 : 0));
    ev.u.xl.optional_data_len = ev.u.xl.config_len;
    ck_assert_int_eq(lxm_stream_stats_event(st, &ev), 0);

    lxm_stream_stats_summary(st, &s);
    ck_assert(s.have_xl_header);
    ck_assert_uint_eq(s.xl_mandatory_flags, c->mandatory);
    ck_assert_uint_eq(s.xl_config_len, ev.u.xl.config_len);
    ck_assert_msg(!strcmp(s.domain_name, c->name), "%s: name '%s'", c->what,
                  s.domain_name);
    ck_assert_msg(!strcmp(s.domain_type, c->type), "%s: type '%s'", c->what,
                  s.domain_type);
    ck_assert_uint_eq(s.record_bytes[LXM_LAYER_XL],
                      LXM_XL_HEADER_LEN + ev.u.xl.optional_data_len);
    lxm_stream_stats_free(st);
    free(copy);
}
END_TEST

START_TEST(test_null_ok)
{
    lxm_stream_summary s;

    lxm_stream_stats_free(NULL);
    memset(&s, 0xff, sizeof(s));
    lxm_stream_stats_summary(NULL, &s);
    ck_assert_uint_eq(s.bytes, 0);
    ck_assert_uint_eq(lxm_stream_stats_iteration_pages(NULL, 0), 0);
    ck_assert_int_eq(lxm_stream_stats_new(NULL), LXM_ERROR_INVAL);
}
END_TEST

/* ---- Synthetic streams through the reader ---- */

static const struct synth_case {
    const char *what;
    uint32_t guest_type;
    bool pvh;
    uint64_t memory;
    uint32_t rounds;
    uint32_t vcpus;
    bool checkpointed;
    lxm_stream_format format;
    const char *type;
} synth_cases[] = {
    { "pvh 4M 3 rounds", LXM_GUEST_X86_HVM, true, 4 << 20, 3, 1, false,
      LXM_FORMAT_XL, "pvh" },
    { "hvm 2M 0 rounds", LXM_GUEST_X86_HVM, false, 2 << 20, 0, 2, false,
      LXM_FORMAT_XL, "hvm" },
    { "pv 4M 2 rounds", LXM_GUEST_X86_PV, false, 4 << 20, 2, 2, false,
      LXM_FORMAT_XL, "pv" },
    { "pv 1M libxl format", LXM_GUEST_X86_PV, false, 1 << 20, 1, 1, false,
      LXM_FORMAT_LIBXL, "" },
    { "hvm 1M libxc format", LXM_GUEST_X86_HVM, false, 1 << 20, 1, 1, false,
      LXM_FORMAT_LIBXC, "" },
    { "pvh 2M checkpointed", LXM_GUEST_X86_HVM, true, 2 << 20, 2, 1, true,
      LXM_FORMAT_XL, "pvh" },
};

static lxm_stream_stats *synth_stats(const struct synth_case *c, size_t chunk,
                                     lxm_test_buf *buf, lxm_stream_summary *s)
{
    lxm__synth_opts o = {
        .guest_type = c->guest_type,
        .pvh = c->pvh,
        .memory_bytes = c->memory,
        .rounds = c->rounds,
        .vcpus = c->vcpus,
        .seed = 7,
        .name = "statsguest",
        .checkpointed = c->checkpointed,
    };
    lxm_stream_stats *st = new_stats();
    lxm_stream_error err;
    int rc;

    if (!buf->data)
        lxm_test_synth(&o, c->format, buf);
    rc = lxm_test_read_buf(buf->data, buf->len, c->format, LXM_READER_PAGES,
                           chunk, lxm_stream_stats_event, st, &err);
    ck_assert_msg(rc == 0, "%s: reader: %s", c->what, err.message);
    lxm_stream_stats_summary(st, s);
    return st;
}

START_TEST(test_synth)
{
    const struct synth_case *c = &synth_cases[_i];
    lxm_test_buf buf = { NULL, 0, 0 };
    lxm_stream_stats *st;
    lxm_stream_summary s;
    uint64_t pages = c->memory / LXM_PAGE_SIZE, total = 0, iter_total = 0;
    uint64_t pfns, max_pfn, layers;
    uint32_t i, t;

    st = synth_stats(c, 0, &buf, &s);

    /* Bytes: everything, and the layers add up. */
    ck_assert_uint_eq(s.bytes, buf.len);
    layers = s.record_bytes[0] + s.record_bytes[1] + s.record_bytes[2];
    ck_assert_uint_eq(layers, s.bytes);

    /* Headers. */
    ck_assert_uint_eq(s.guest_type, c->guest_type);
    ck_assert_uint_eq(s.xen_major, 4);
    ck_assert_uint_eq(s.xen_minor, 17);
    ck_assert_uint_eq(s.libxc_version, 3);
    ck_assert(s.have_xl_header == (c->format == LXM_FORMAT_XL));
    ck_assert_str_eq(s.domain_type, c->type);
    ck_assert_str_eq(s.domain_name,
                     c->format == LXM_FORMAT_XL ? "statsguest" : "");

    /* Structure (synth.c writes the END records also when
     * checkpointed, after its two CHECKPOINTs). */
    if (c->format != LXM_FORMAT_LIBXC) {
        ck_assert_uint_eq(s.libxl_records[LXM_LIBXL_LIBXC_CONTEXT], 1);
        ck_assert_uint_eq(s.libxl_records[LXM_LIBXL_END], 1);
        ck_assert_uint_eq(s.libxl_records[LXM_LIBXL_CHECKPOINT_END],
                          c->checkpointed ? 2 : 0);
    }
    ck_assert_uint_eq(s.libxc_records[LXM_LIBXC_END], 1);
    ck_assert_uint_eq(s.libxc_records[LXM_LIBXC_STATIC_DATA_END], 1);
    ck_assert_uint_eq(s.checkpoints, c->checkpointed ? 2 : 0);
    ck_assert_uint_eq(s.libxc_records[LXM_LIBXC_CHECKPOINT], s.checkpoints);
    ck_assert_uint_eq(s.optional_records, 0);
    if (c->guest_type == LXM_GUEST_X86_PV) {
        ck_assert_uint_eq(s.libxc_records[LXM_LIBXC_X86_PV_INFO], 1);
        ck_assert_uint_eq(s.libxc_records[LXM_LIBXC_X86_PV_P2M_FRAMES], 1);
        ck_assert_uint_eq(s.libxc_records[LXM_LIBXC_X86_PV_VCPU_BASIC],
                          c->vcpus * (c->checkpointed ? 2 : 1));
        /* Ballooned-out pfns at the top of the p2m, and page tables. */
        pfns = pages + 2 + pages / 2048;
        max_pfn = pfns - 1;
        ck_assert_uint_eq(s.pages_by_type[LXM_PAGE_XTAB], pfns - pages);
        ck_assert_uint_gt(s.pages_by_type[LXM_PAGE_L1TAB] +
                              s.pages_by_type[LXM_PAGE_L1TAB_PIN],
                          0);
    } else {
        ck_assert_uint_eq(s.libxc_records[LXM_LIBXC_HVM_CONTEXT],
                          c->checkpointed ? 2 : 1);
        ck_assert_uint_eq(s.libxc_records[LXM_LIBXC_HVM_PARAMS],
                          c->checkpointed ? 2 : 1);
        /* 8 special pages at 0xfeff8 (below 4 GiB). */
        pfns = pages + 8;
        max_pfn = 0xfefff;
        ck_assert_uint_eq(s.pages_by_type[LXM_PAGE_NOTAB], s.data_pages);
    }

    /* Pages: every pfn at least once, pages add up over types and
     * iterations, data pages are those with data. */
    ck_assert_uint_eq(s.distinct_pfns, pfns);
    ck_assert_uint_eq(s.max_pfn, max_pfn);
    for (t = 0; t < LXM_PAGE_NR_TYPES; t++) {
        if (s.pages_by_type[t])
            ck_assert(lxm_page_type_is_valid(t));
        total += s.pages_by_type[t];
    }
    for (i = 0; i < s.nr_iterations; i++)
        iter_total += lxm_stream_stats_iteration_pages(st, i);
    ck_assert_uint_eq(iter_total, total);
    ck_assert_uint_le(s.data_pages, total);
    ck_assert_uint_eq(s.page_data_bytes, s.data_pages * LXM_PAGE_SIZE);
    /* Everything after round 0 is a re-send of a page with data. */
    ck_assert_uint_eq(s.resent_pages, total - pfns);
    /* synth writes a mix: some zero pages, not all. */
    ck_assert_uint_gt(s.zero_pages, 0);
    ck_assert_uint_lt(s.zero_pages, s.data_pages);

    /* Iterations (synth.c): round 0 sends every pfn, then 'rounds'
     * shrinking dirty rounds; a checkpointed stream adds one dirty
     * round in the second libxc segment. */
    ck_assert_msg(s.nr_iterations == c->rounds + 1 + c->checkpointed,
                  "%s: %u iterations, expected %u", c->what, s.nr_iterations,
                  c->rounds + 1 + c->checkpointed);
    ck_assert_uint_eq(lxm_stream_stats_iteration_pages(st, 0), pfns);
    for (i = 1; i < s.nr_iterations; i++) {
        ck_assert_uint_gt(lxm_stream_stats_iteration_pages(st, i), 0);
        if (i <= c->rounds)
            ck_assert_uint_le(lxm_stream_stats_iteration_pages(st, i),
                              lxm_stream_stats_iteration_pages(st, i - 1));
    }

    lxm_stream_stats_free(st);
    lxm_test_buf_dispose(&buf);
}
END_TEST

/* The same summary however the reader is fed. */
START_TEST(test_synth_chunked)
{
    static const size_t chunks[] = { 1, 7, 4093, 4096, 65537 };
    const struct synth_case *c = &synth_cases[_i];
    lxm_test_buf buf = { NULL, 0, 0 };
    lxm_stream_stats *st0, *st;
    lxm_stream_summary s0, s;
    size_t k;
    uint32_t i;

    st0 = synth_stats(c, 0, &buf, &s0);
    for (k = 0; k < LXM_ARRAY_SIZE(chunks); k++) {
        if (chunks[k] == 1 && buf.len > (1u << 20))
            continue; /* byte by byte only for small streams */
        st = synth_stats(c, chunks[k], &buf, &s);
        ck_assert_msg(!memcmp(&s, &s0, sizeof(s)),
                      "%s: chunk %zu gives another summary", c->what,
                      chunks[k]);
        for (i = 0; i < s.nr_iterations; i++)
            ck_assert_uint_eq(lxm_stream_stats_iteration_pages(st, i),
                              lxm_stream_stats_iteration_pages(st0, i));
        lxm_stream_stats_free(st);
    }
    lxm_stream_stats_free(st0);
    lxm_test_buf_dispose(&buf);
}
END_TEST

Suite *lxm_test_stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc;

    tc = tcase_create("events");
    tcase_add_loop_test(tc, test_iterations, 0, LXM_ARRAY_SIZE(iter_cases));
    tcase_add_test(tc, test_iterations_many);
    tcase_add_test(tc, test_zero_pages);
    tcase_add_loop_test(tc, test_pfns, 0, LXM_ARRAY_SIZE(pfn_cases));
    tcase_add_test(tc, test_pfns_scattered);
    tcase_add_test(tc, test_pfns_sparse_bounded);
    tcase_add_loop_test(tc, test_config, 0, LXM_ARRAY_SIZE(config_cases));
    tcase_add_test(tc, test_null_ok);
    suite_add_tcase(s, tc);

    tc = tcase_create("synth");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_synth, 0, LXM_ARRAY_SIZE(synth_cases));
    tcase_add_loop_test(tc, test_synth_chunked, 0, LXM_ARRAY_SIZE(synth_cases));
    suite_add_tcase(s, tc);

    return s;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
