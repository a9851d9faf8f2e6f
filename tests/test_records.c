/*
 * test_records.c - table tests of records.c (record content rules) and
 * grammar.c (record order).
 */
#include <stdio.h>

#include "test.h"

/* ---- lxm__record_check ------------------------------------------- */

typedef struct record_case {
    const char *what;
    lxm_stream_layer layer;
    uint32_t type;
    uint32_t length;
    uint8_t head[LXM__RECORD_HEAD_MAX];
    uint32_t libxc_version;
    int rc;
    uint32_t at; /* checked when rc != 0 */
} record_case;

#define XC LXM_LAYER_LIBXC
#define XL LXM_LAYER_LIBXL

static const record_case record_cases[] = {
    { "libxc END empty", XC, LXM_LIBXC_END, 0, { 0 }, 3, 0, 0 },
    { "libxc END not empty",
      XC,
      LXM_LIBXC_END,
      8,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "VERIFY not empty",
      XC,
      LXM_LIBXC_VERIFY,
      1,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "CHECKPOINT not empty",
      XC,
      LXM_LIBXC_CHECKPOINT,
      8,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "STATIC_DATA_END in v2",
      XC,
      LXM_LIBXC_STATIC_DATA_END,
      0,
      { 0 },
      2,
      LXM_ERROR_STREAM_RECORD,
      0 },
    { "STATIC_DATA_END v3", XC, LXM_LIBXC_STATIC_DATA_END, 0, { 0 }, 3, 0, 0 },
    { "unknown mandatory libxc",
      XC,
      0x13,
      0,
      { 0 },
      3,
      LXM_ERROR_STREAM_UNKNOWN_RECORD,
      0 },
    { "unknown mandatory libxc high",
      XC,
      0x7fffffff,
      0,
      { 0 },
      3,
      LXM_ERROR_STREAM_UNKNOWN_RECORD,
      0 },
    { "optional libxc", XC, 0x80000013, 100, { 0 }, 3, 0, 0 },
    { "unknown mandatory libxl",
      XL,
      6,
      0,
      { 0 },
      3,
      LXM_ERROR_STREAM_UNKNOWN_RECORD,
      0 },
    { "optional libxl", XL, 0x80000001, 3, { 0 }, 3, 0, 0 },
    { "over the cap",
      XC,
      LXM_LIBXC_HVM_CONTEXT,
      (128u << 20) + 1,
      { 0 },
      3,
      LXM_ERROR_STREAM_TOO_LONG,
      4 },
    { "optional over the cap",
      XC,
      0x80000000,
      0xffffffffu,
      { 0 },
      3,
      LXM_ERROR_STREAM_TOO_LONG,
      4 },
    { "at the cap", XC, LXM_LIBXC_HVM_CONTEXT, 128u << 20, { 0 }, 3, 0, 0 },
    { "PAGE_DATA too short",
      XC,
      LXM_LIBXC_PAGE_DATA,
      8,
      { 1 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "PAGE_DATA reserved",
      XC,
      LXM_LIBXC_PAGE_DATA,
      16,
      { 1, 0, 0, 0, 1 },
      3,
      LXM_ERROR_STREAM_RESERVED,
      12 },
    { "PV_INFO ok", XC, LXM_LIBXC_X86_PV_INFO, 8, { 8, 4 }, 3, 0, 0 },
    { "PV_INFO width 2",
      XC,
      LXM_LIBXC_X86_PV_INFO,
      8,
      { 2, 4 },
      3,
      LXM_ERROR_STREAM_RECORD,
      8 },
    { "PV_INFO levels 5",
      XC,
      LXM_LIBXC_X86_PV_INFO,
      8,
      { 8, 5 },
      3,
      LXM_ERROR_STREAM_RECORD,
      9 },
    { "PV_INFO reserved",
      XC,
      LXM_LIBXC_X86_PV_INFO,
      8,
      { 4, 3, 0, 0, 0, 9 },
      3,
      LXM_ERROR_STREAM_RESERVED,
      12 },
    { "PV_INFO length 16",
      XC,
      LXM_LIBXC_X86_PV_INFO,
      16,
      { 8, 4 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "P2M_FRAMES ok",
      XC,
      LXM_LIBXC_X86_PV_P2M_FRAMES,
      16,
      { 0, 0, 0, 0, 1 },
      3,
      0,
      0 },
    { "P2M_FRAMES no frame",
      XC,
      LXM_LIBXC_X86_PV_P2M_FRAMES,
      8,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "P2M_FRAMES odd length",
      XC,
      LXM_LIBXC_X86_PV_P2M_FRAMES,
      20,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "P2M_FRAMES start > end",
      XC,
      LXM_LIBXC_X86_PV_P2M_FRAMES,
      16,
      { 2, 0, 0, 0, 1 },
      3,
      LXM_ERROR_STREAM_RECORD,
      8 },
    { "VCPU_BASIC empty context ok",
      XC,
      LXM_LIBXC_X86_PV_VCPU_BASIC,
      8,
      { 0 },
      3,
      0,
      0 },
    { "VCPU_XSAVE short",
      XC,
      LXM_LIBXC_X86_PV_VCPU_XSAVE,
      4,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "VCPU_MSRS reserved",
      XC,
      LXM_LIBXC_X86_PV_VCPU_MSRS,
      16,
      { 0, 0, 0, 0, 0, 0, 0, 1 },
      3,
      LXM_ERROR_STREAM_RESERVED,
      12 },
    { "SHARED_INFO 4096", XC, LXM_LIBXC_SHARED_INFO, 4096, { 0 }, 3, 0, 0 },
    { "SHARED_INFO 4095",
      XC,
      LXM_LIBXC_SHARED_INFO,
      4095,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "TSC_INFO 24", XC, LXM_LIBXC_X86_TSC_INFO, 24, { 2 }, 3, 0, 0 },
    { "TSC_INFO 16",
      XC,
      LXM_LIBXC_X86_TSC_INFO,
      16,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "TSC_INFO reserved",
      XC,
      LXM_LIBXC_X86_TSC_INFO,
      24,
      { [20] = 1 },
      3,
      LXM_ERROR_STREAM_RESERVED,
      28 },
    { "HVM_CONTEXT empty",
      XC,
      LXM_LIBXC_HVM_CONTEXT,
      0,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "HVM_PARAMS 2 params", XC, LXM_LIBXC_HVM_PARAMS, 40, { 2 }, 3, 0, 0 },
    { "HVM_PARAMS zero params ok",
      XC,
      LXM_LIBXC_HVM_PARAMS,
      8,
      { 0 },
      3,
      0,
      0 },
    { "HVM_PARAMS count mismatch",
      XC,
      LXM_LIBXC_HVM_PARAMS,
      40,
      { 3 },
      3,
      LXM_ERROR_STREAM_RECORD,
      8 },
    { "HVM_PARAMS reserved",
      XC,
      LXM_LIBXC_HVM_PARAMS,
      8,
      { 0, 0, 0, 0, 1 },
      3,
      LXM_ERROR_STREAM_RESERVED,
      12 },
    { "TOOLSTACK deprecated",
      XC,
      LXM_LIBXC_TOOLSTACK,
      8,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      0 },
    { "DIRTY_PFN_LIST odd",
      XC,
      LXM_LIBXC_CHECKPOINT_DIRTY_PFN_LIST,
      12,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "CPUID 2 leaves", XC, LXM_LIBXC_X86_CPUID_POLICY, 48, { 0 }, 3, 0, 0 },
    { "CPUID 25 bytes",
      XC,
      LXM_LIBXC_X86_CPUID_POLICY,
      25,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "CPUID empty",
      XC,
      LXM_LIBXC_X86_CPUID_POLICY,
      0,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "CPUID in v2",
      XC,
      LXM_LIBXC_X86_CPUID_POLICY,
      24,
      { 0 },
      2,
      LXM_ERROR_STREAM_RECORD,
      0 },
    { "MSR 1 entry", XC, LXM_LIBXC_X86_MSR_POLICY, 16, { 0 }, 3, 0, 0 },
    { "MSR 24 bytes",
      XC,
      LXM_LIBXC_X86_MSR_POLICY,
      24,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "libxl END not empty",
      XL,
      LXM_LIBXL_END,
      8,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "LIBXC_CONTEXT not empty",
      XL,
      LXM_LIBXL_LIBXC_CONTEXT,
      8,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "CHECKPOINT_END not empty",
      XL,
      LXM_LIBXL_CHECKPOINT_END,
      8,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "EMULATOR_CONTEXT qemu-upstream",
      XL,
      LXM_LIBXL_EMULATOR_CONTEXT,
      20,
      { 2 },
      3,
      0,
      0 },
    { "EMULATOR_CONTEXT id 3",
      XL,
      LXM_LIBXL_EMULATOR_CONTEXT,
      20,
      { 3 },
      3,
      LXM_ERROR_STREAM_RECORD,
      8 },
    { "EMULATOR_XENSTORE_DATA short",
      XL,
      LXM_LIBXL_EMULATOR_XENSTORE_DATA,
      4,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
    { "CHECKPOINT_STATE ok",
      XL,
      LXM_LIBXL_CHECKPOINT_STATE,
      4,
      { 3 },
      3,
      0,
      0 },
    { "CHECKPOINT_STATE id 4",
      XL,
      LXM_LIBXL_CHECKPOINT_STATE,
      4,
      { 4 },
      3,
      LXM_ERROR_STREAM_RECORD,
      8 },
    { "CHECKPOINT_STATE empty",
      XL,
      LXM_LIBXL_CHECKPOINT_STATE,
      0,
      { 0 },
      3,
      LXM_ERROR_STREAM_RECORD,
      4 },
};

START_TEST(test_record_check_table)
{
    const record_case *t = &record_cases[_i];
    lxm__check c = { 0 };
    int rc;

    rc = lxm__record_check(t->layer, t->type, t->length, t->head,
                           t->libxc_version, &c);
    ck_assert_msg(rc == t->rc, "%s: rc %d (%s), want %d", t->what, rc, c.msg,
                  t->rc);
    if (rc) {
        ck_assert_msg(c.at == t->at, "%s: at %u, want %u", t->what, c.at,
                      t->at);
        ck_assert_msg(c.msg[0] != '\0', "%s: no message", t->what);
    }
}
END_TEST

START_TEST(test_head_len_bounded)
{
    uint32_t type;

    for (type = 0; type < 0x20; type++) {
        ck_assert_uint_le(lxm__record_head_len(XC, type, 1u << 20),
                          LXM__RECORD_HEAD_MAX);
        ck_assert_uint_le(lxm__record_head_len(XL, type, 1u << 20),
                          LXM__RECORD_HEAD_MAX);
        /* never more than the body, never for over-long records */
        ck_assert_uint_le(lxm__record_head_len(XC, type, 3), 3);
        ck_assert_uint_eq(lxm__record_head_len(XC, type, 0xffffffffu), 0);
    }
}
END_TEST

/* ---- PAGE_DATA ---------------------------------------------------- */

START_TEST(test_page_count)
{
    lxm__check c;

    ck_assert_int_eq(lxm__page_data_check_count(0, 16, &c),
                     LXM_ERROR_STREAM_PAGE_COUNT);
    ck_assert_int_eq(lxm__page_data_check_count(1025, 1u << 24, &c),
                     LXM_ERROR_STREAM_PAGE_COUNT);
    ck_assert_int_eq(lxm__page_data_check_count(1024, 8 + 8 * 1024, &c), 0);
    ck_assert_int_eq(lxm__page_data_check_count(3, 8 + 8 * 2, &c),
                     LXM_ERROR_STREAM_PAGE_COUNT);
}
END_TEST

START_TEST(test_page_types)
{
    unsigned int t;

    for (t = 0; t < 16; t++) {
        uint64_t w = LXM_PFN_WORD(7, t);
        uint32_t len = 16 + (lxm_page_type_has_data(t) ? 4096 : 0), nr = 99;
        lxm__check c;
        int rc = lxm__page_data_check_pfns(1, len, &w, &nr, &c);

        if (t >= 5 && t <= 8) {
            ck_assert_msg(rc == LXM_ERROR_STREAM_PAGE_TYPE, "type %u", t);
            ck_assert_uint_eq(c.at, 16);
            ck_assert(!lxm_page_type_is_valid(t));
        } else {
            ck_assert_msg(rc == 0, "type %u: %s", t, c.msg);
            ck_assert_uint_eq(nr, lxm_page_type_has_data(t));
        }
    }
    /* has data: NOTAB, L1-L4, pinned L1-L4; not BROKEN/XALLOC/XTAB */
    ck_assert(lxm_page_type_has_data(LXM_PAGE_L4TAB_PIN));
    ck_assert(!lxm_page_type_has_data(LXM_PAGE_BROKEN));
    ck_assert(!lxm_page_type_has_data(LXM_PAGE_XALLOC));
    ck_assert(!lxm_page_type_has_data(LXM_PAGE_XTAB));
}
END_TEST

START_TEST(test_page_pfns)
{
    uint64_t w[3] = { LXM_PFN_WORD(1, 0), LXM_PFN_WORD(2, 0xf),
                      LXM_PFN_WORD(3, 1) };
    uint32_t nr;
    lxm__check c;

    ck_assert_int_eq(lxm__page_data_check_pfns(3, 8 + 24 + 8192, w, &nr, &c),
                     0);
    ck_assert_uint_eq(nr, 2);
    ck_assert_int_eq(lxm__page_data_check_pfns(3, 8 + 24 + 4096, w, &nr, &c),
                     LXM_ERROR_STREAM_PAGE_COUNT);
    w[1] |= UINT64_C(1) << 55; /* reserved bits 52-59 */
    ck_assert_int_eq(lxm__page_data_check_pfns(3, 8 + 24 + 8192, w, &nr, &c),
                     LXM_ERROR_STREAM_RESERVED);
    ck_assert_uint_eq(c.at, 8 + 8 + 8);
}
END_TEST

/* ---- xenstore data ------------------------------------------------ */

static int xs_check(const char *data, uint32_t len)
{
    lxm__body_check b;
    lxm__check c;
    uint8_t hdr[8] = { 2 };

    lxm__body_check_init(&b, XL, LXM_LIBXL_EMULATOR_XENSTORE_DATA);
    lxm__body_check_feed(&b, hdr, sizeof(hdr));
    lxm__body_check_feed(&b, (const uint8_t *)data, len);
    return lxm__body_check_finish(&b, 8 + len, &c);
}

START_TEST(test_xenstore_data)
{
    ck_assert_int_eq(xs_check("", 0), 0);
    ck_assert_int_eq(xs_check("k\0v\0", 4), 0);
    ck_assert_int_eq(xs_check("k\0v\0a\0\0", 7), 0);
    ck_assert_int_eq(xs_check("k\0v", 3), LXM_ERROR_STREAM_RECORD);
    ck_assert_int_eq(xs_check("k\0v\0x\0", 6), LXM_ERROR_STREAM_RECORD);
}
END_TEST

/* ---- grammar ------------------------------------------------------ */

/* A sequence of record types fed to a fresh grammar, and the index
 * at which it must fail (-1: never). */
typedef struct grammar_case {
    const char *what;
    lxm_stream_format format;
    uint32_t guest_type;
    uint32_t version;
    unsigned int flags;
    int n;
    struct {
        lxm_stream_layer layer;
        uint32_t type;
    } seq[12];
    int fail_at;
} grammar_case;

#define L(t)                                                                   \
    {                                                                          \
        XL, LXM_LIBXL_##t                                                      \
    }
#define C(t)                                                                   \
    {                                                                          \
        XC, LXM_LIBXC_##t                                                      \
    }
#define HVM LXM_GUEST_X86_HVM
#define PV LXM_GUEST_X86_PV

static const grammar_case grammar_cases[] = {
    { "hvm",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      9,
      { L(LIBXC_CONTEXT), C(X86_CPUID_POLICY), C(STATIC_DATA_END), C(PAGE_DATA),
        C(X86_TSC_INFO), C(HVM_CONTEXT), C(HVM_PARAMS), C(END), L(END) },
      -1 },
    { "hvm with emulator",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      7,
      { L(LIBXC_CONTEXT), C(STATIC_DATA_END), C(HVM_CONTEXT), C(END),
        L(EMULATOR_XENSTORE_DATA), L(EMULATOR_CONTEXT), L(END) },
      -1 },
    { "pv",
      LXM_FORMAT_LIBXL,
      PV,
      3,
      0,
      10,
      { L(LIBXC_CONTEXT), C(X86_PV_INFO), C(STATIC_DATA_END),
        C(X86_PV_P2M_FRAMES), C(PAGE_DATA), C(SHARED_INFO),
        C(X86_PV_VCPU_BASIC), C(X86_PV_VCPU_MSRS), C(END), L(END) },
      -1 },
    { "libxc only",
      LXM_FORMAT_LIBXC,
      HVM,
      3,
      0,
      3,
      { C(STATIC_DATA_END), C(HVM_CONTEXT), C(END) },
      -1 },
    { "checkpointed",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      12,
      { L(LIBXC_CONTEXT), C(STATIC_DATA_END), C(PAGE_DATA), C(HVM_CONTEXT),
        C(CHECKPOINT), L(EMULATOR_CONTEXT), L(CHECKPOINT_END), C(PAGE_DATA),
        C(HVM_CONTEXT), C(END), L(EMULATOR_CONTEXT), L(END) },
      -1 },
    { "v2 infers STATIC_DATA_END",
      LXM_FORMAT_LIBXL,
      HVM,
      2,
      0,
      4,
      { L(LIBXC_CONTEXT), C(PAGE_DATA), C(HVM_CONTEXT), C(END) },
      -1 },
    { "page before STATIC_DATA_END",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      2,
      { L(LIBXC_CONTEXT), C(PAGE_DATA) },
      1 },
    { "second STATIC_DATA_END",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      3,
      { L(LIBXC_CONTEXT), C(STATIC_DATA_END), C(STATIC_DATA_END) },
      2 },
    { "CPUID after STATIC_DATA_END",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      3,
      { L(LIBXC_CONTEXT), C(STATIC_DATA_END), C(X86_CPUID_POLICY) },
      2 },
    { "PV record in HVM",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      2,
      { L(LIBXC_CONTEXT), C(X86_PV_INFO) },
      1 },
    { "HVM record in PV",
      LXM_FORMAT_LIBXL,
      PV,
      3,
      0,
      2,
      { L(LIBXC_CONTEXT), C(HVM_PARAMS) },
      1 },
    { "P2M before PV_INFO",
      LXM_FORMAT_LIBXL,
      PV,
      3,
      0,
      2,
      { L(LIBXC_CONTEXT), C(X86_PV_P2M_FRAMES) },
      1 },
    { "PV page before P2M",
      LXM_FORMAT_LIBXL,
      PV,
      3,
      0,
      4,
      { L(LIBXC_CONTEXT), C(X86_PV_INFO), C(STATIC_DATA_END), C(PAGE_DATA) },
      3 },
    { "PV END without PV_INFO", LXM_FORMAT_LIBXC, PV, 3, 0, 1, { C(END) }, 0 },
    { "HVM END without context",
      LXM_FORMAT_LIBXC,
      HVM,
      3,
      0,
      2,
      { C(STATIC_DATA_END), C(END) },
      1 },
    { "second LIBXC_CONTEXT",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      5,
      { L(LIBXC_CONTEXT), C(STATIC_DATA_END), C(HVM_CONTEXT), C(END),
        L(LIBXC_CONTEXT) },
      4 },
    { "libxl END first", LXM_FORMAT_LIBXL, HVM, 3, 0, 1, { L(END) }, 0 },
    { "emulator before libxc",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      1,
      { L(EMULATOR_CONTEXT) },
      0 },
    { "emulator for PV",
      LXM_FORMAT_LIBXL,
      PV,
      3,
      0,
      7,
      { L(LIBXC_CONTEXT), C(X86_PV_INFO), C(STATIC_DATA_END),
        C(X86_PV_P2M_FRAMES), C(PAGE_DATA), C(END), L(EMULATOR_CONTEXT) },
      6 },
    { "CHECKPOINT_END outside",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      5,
      { L(LIBXC_CONTEXT), C(STATIC_DATA_END), C(HVM_CONTEXT), C(END),
        L(CHECKPOINT_END) },
      4 },
    { "END inside checkpoint",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      5,
      { L(LIBXC_CONTEXT), C(STATIC_DATA_END), C(HVM_CONTEXT), C(CHECKPOINT),
        L(END) },
      4 },
    { "CHECKPOINT_STATE main stream",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      1,
      { L(CHECKPOINT_STATE) },
      0 },
    { "CHECKPOINT_STATE back channel",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      LXM_READER_BACKCHANNEL,
      2,
      { L(CHECKPOINT_STATE), L(CHECKPOINT_STATE) },
      -1 },
    { "dirty pfn list main stream",
      LXM_FORMAT_LIBXC,
      HVM,
      3,
      0,
      1,
      { C(CHECKPOINT_DIRTY_PFN_LIST) },
      0 },
    { "optional anywhere",
      LXM_FORMAT_LIBXL,
      HVM,
      3,
      0,
      3,
      { { XL, 0x80000007 }, L(LIBXC_CONTEXT), { XC, 0x80000001 } },
      -1 },
};

START_TEST(test_grammar_table)
{
    const grammar_case *t = &grammar_cases[_i];
    lxm__grammar g;
    lxm__check c;
    int i, rc;

    lxm__grammar_init(&g, t->format, t->flags);
    if (t->format == LXM_FORMAT_LIBXL)
        lxm__grammar_libxl_header(&g);
    else
        lxm__grammar_libxc_header(&g, t->version, t->guest_type);

    for (i = 0; i < t->n; i++) {
        if (g.expect == LXM__EXPECT_LIBXC_HEADER)
            lxm__grammar_libxc_header(&g, t->version, t->guest_type);
        ck_assert_msg(lxm__grammar_layer(&g) == t->seq[i].layer,
                      "%s: step %d: expected layer %s", t->what, i,
                      lxm_layer_name(lxm__grammar_layer(&g)));
        rc = lxm__grammar_record(&g, t->seq[i].type, &c);
        if (i == t->fail_at) {
            ck_assert_msg(rc == LXM_ERROR_STREAM_ORDER, "%s: step %d accepted",
                          t->what, i);
            return;
        }
        ck_assert_msg(rc == 0, "%s: step %d: %s", t->what, i, c.msg);
    }
    ck_assert_msg(t->fail_at < 0, "%s: never failed", t->what);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(lxm_record_type_name(XC, LXM_LIBXC_PAGE_DATA),
                     "PAGE_DATA");
    ck_assert_str_eq(lxm_record_type_name(XL, LXM_LIBXL_LIBXC_CONTEXT),
                     "LIBXC_CONTEXT");
    ck_assert_str_eq(lxm_record_type_name(XC, 0x99), "UNKNOWN");
    ck_assert_str_eq(lxm_page_type_name(LXM_PAGE_L1TAB_PIN), "L1TAB_PIN");
    ck_assert_str_eq(lxm_strerror(LXM_ERROR_STREAM_TRAILING),
                     "trailing bytes after the stream");
    ck_assert_str_eq(lxm_strerror(-999), "unknown error");
}
END_TEST

Suite *lxm_test_records_suite(void)
{
    Suite *s = suite_create("records");
    TCase *tc = tcase_create("records");

    tcase_add_loop_test(tc, test_record_check_table, 0,
                        LXM_ARRAY_SIZE(record_cases));
    tcase_add_test(tc, test_head_len_bounded);
    tcase_add_test(tc, test_page_count);
    tcase_add_test(tc, test_page_types);
    tcase_add_test(tc, test_page_pfns);
    tcase_add_test(tc, test_xenstore_data);
    tcase_add_loop_test(tc, test_grammar_table, 0,
                        LXM_ARRAY_SIZE(grammar_cases));
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}
