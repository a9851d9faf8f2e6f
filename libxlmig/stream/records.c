/*
 * records.c - per-record-type knowledge of the libxl v2 and libxc v3
 * streams: names, how much of a body a check needs, and the content
 * rules Xen 4.17's restore path (xg_sr_restore*.c, libxl_stream_read.c)
 * and its verify-stream-v2 enforce.
 *
 * Entry points:
 *   lxm_record_type_name(), lxm_page_type_name(), lxm_layer_name(),
 *   lxm_guest_type_name(), lxm_page_type_is_valid(),
 *   lxm_page_type_has_data()                      public
 *   lxm__record_head_len(), lxm__record_check()   a record's fixed part
 *   lxm__page_data_check_count/_pfns()            PAGE_DATA
 *   lxm__body_check_*()                           whole-body rules
 *
 * Checks are pure: no state, no allocation, no I/O.  Offsets reported
 * in lxm__check are relative to the record header (body starts at 8).
 */
#include "libxlmig_internal.h"

/* ---- names -------------------------------------------------------- */

static const char *const libxl_names[LXM_LIBXL_NR_TYPES] = {
    [LXM_LIBXL_END] = "END",
    [LXM_LIBXL_LIBXC_CONTEXT] = "LIBXC_CONTEXT",
    [LXM_LIBXL_EMULATOR_XENSTORE_DATA] = "EMULATOR_XENSTORE_DATA",
    [LXM_LIBXL_EMULATOR_CONTEXT] = "EMULATOR_CONTEXT",
    [LXM_LIBXL_CHECKPOINT_END] = "CHECKPOINT_END",
    [LXM_LIBXL_CHECKPOINT_STATE] = "CHECKPOINT_STATE",
};

static const char *const libxc_names[LXM_LIBXC_NR_TYPES] = {
    [LXM_LIBXC_END] = "END",
    [LXM_LIBXC_PAGE_DATA] = "PAGE_DATA",
    [LXM_LIBXC_X86_PV_INFO] = "X86_PV_INFO",
    [LXM_LIBXC_X86_PV_P2M_FRAMES] = "X86_PV_P2M_FRAMES",
    [LXM_LIBXC_X86_PV_VCPU_BASIC] = "X86_PV_VCPU_BASIC",
    [LXM_LIBXC_X86_PV_VCPU_EXTENDED] = "X86_PV_VCPU_EXTENDED",
    [LXM_LIBXC_X86_PV_VCPU_XSAVE] = "X86_PV_VCPU_XSAVE",
    [LXM_LIBXC_SHARED_INFO] = "SHARED_INFO",
    [LXM_LIBXC_X86_TSC_INFO] = "X86_TSC_INFO",
    [LXM_LIBXC_HVM_CONTEXT] = "HVM_CONTEXT",
    [LXM_LIBXC_HVM_PARAMS] = "HVM_PARAMS",
    [LXM_LIBXC_TOOLSTACK] = "TOOLSTACK",
    [LXM_LIBXC_X86_PV_VCPU_MSRS] = "X86_PV_VCPU_MSRS",
    [LXM_LIBXC_VERIFY] = "VERIFY",
    [LXM_LIBXC_CHECKPOINT] = "CHECKPOINT",
    [LXM_LIBXC_CHECKPOINT_DIRTY_PFN_LIST] = "CHECKPOINT_DIRTY_PFN_LIST",
    [LXM_LIBXC_STATIC_DATA_END] = "STATIC_DATA_END",
    [LXM_LIBXC_X86_CPUID_POLICY] = "X86_CPUID_POLICY",
    [LXM_LIBXC_X86_MSR_POLICY] = "X86_MSR_POLICY",
};

static const char *const page_names[LXM_PAGE_NR_TYPES] = {
    [LXM_PAGE_NOTAB] = "NOTAB",
    [LXM_PAGE_L1TAB] = "L1TAB",
    [LXM_PAGE_L2TAB] = "L2TAB",
    [LXM_PAGE_L3TAB] = "L3TAB",
    [LXM_PAGE_L4TAB] = "L4TAB",
    [0x5] = "RESERVED5",
    [0x6] = "RESERVED6",
    [0x7] = "RESERVED7",
    [0x8] = "RESERVED8",
    [LXM_PAGE_L1TAB_PIN] = "L1TAB_PIN",
    [LXM_PAGE_L2TAB_PIN] = "L2TAB_PIN",
    [LXM_PAGE_L3TAB_PIN] = "L3TAB_PIN",
    [LXM_PAGE_L4TAB_PIN] = "L4TAB_PIN",
    [LXM_PAGE_BROKEN] = "BROKEN",
    [LXM_PAGE_XALLOC] = "XALLOC",
    [LXM_PAGE_XTAB] = "XTAB",
};

const char *lxm_record_type_name(lxm_stream_layer layer, uint32_t type)
{
    if (type & LXM_RECORD_OPTIONAL)
        return "OPTIONAL";
    if (layer == LXM_LAYER_LIBXL && type < LXM_LIBXL_NR_TYPES)
        return libxl_names[type];
    if (layer == LXM_LAYER_LIBXC && type < LXM_LIBXC_NR_TYPES)
        return libxc_names[type];
    return "UNKNOWN";
}

const char *lxm_page_type_name(unsigned int type)
{
    return type < LXM_PAGE_NR_TYPES ? page_names[type] : "UNKNOWN";
}

const char *lxm_layer_name(lxm_stream_layer layer)
{
    switch (layer) {
    case LXM_LAYER_XL:
        return "xl";
    case LXM_LAYER_LIBXL:
        return "libxl";
    case LXM_LAYER_LIBXC:
        return "libxc";
    }
    return "unknown";
}

const char *lxm_guest_type_name(uint32_t guest_type)
{
    switch (guest_type) {
    case LXM_GUEST_X86_PV:
        return "x86 PV";
    case LXM_GUEST_X86_HVM:
        return "x86 HVM";
    }
    return "unknown";
}

/* ---- page types --------------------------------------------------- */

bool lxm_page_type_is_valid(unsigned int type)
{
    return type < LXM_PAGE_NR_TYPES && (type < 0x5 || type > 0x8);
}

bool lxm_page_type_has_data(unsigned int type)
{
    /* NOTAB, L1-L4 and their pinned forms; not BROKEN/XALLOC/XTAB. */
    return lxm_page_type_is_valid(type) && type <= LXM_PAGE_L4TAB_PIN;
}

/* ---- a record's fixed part ---------------------------------------- */

uint32_t lxm__record_head_len(lxm_stream_layer layer, uint32_t type,
                              uint32_t length)
{
    uint32_t want = 0;

    if (length > LXM_RECORD_LENGTH_MAX || (type & LXM_RECORD_OPTIONAL))
        return 0;

    if (layer == LXM_LAYER_LIBXL) {
        switch (type) {
        case LXM_LIBXL_EMULATOR_XENSTORE_DATA:
        case LXM_LIBXL_EMULATOR_CONTEXT:
            want = LXM__EMULATOR_HDR_LEN;
            break;
        case LXM_LIBXL_CHECKPOINT_STATE:
            want = LXM__CHECKPOINT_STATE_LEN;
            break;
        }
    } else if (layer == LXM_LAYER_LIBXC) {
        switch (type) {
        case LXM_LIBXC_PAGE_DATA:
            want = LXM__PAGE_DATA_HDR_LEN;
            break;
        case LXM_LIBXC_X86_PV_INFO:
            want = LXM__X86_PV_INFO_LEN;
            break;
        case LXM_LIBXC_X86_PV_P2M_FRAMES:
            want = LXM__P2M_FRAMES_HDR_LEN;
            break;
        case LXM_LIBXC_X86_PV_VCPU_BASIC:
        case LXM_LIBXC_X86_PV_VCPU_EXTENDED:
        case LXM_LIBXC_X86_PV_VCPU_XSAVE:
        case LXM_LIBXC_X86_PV_VCPU_MSRS:
            want = LXM__VCPU_HDR_LEN;
            break;
        case LXM_LIBXC_X86_TSC_INFO:
            want = LXM__TSC_INFO_LEN;
            break;
        case LXM_LIBXC_HVM_PARAMS:
            want = LXM__HVM_PARAMS_HDR_LEN;
            break;
        }
    }
    return LXM_MIN(want, length);
}

#define BODY(off) (LXM__RHDR_LEN + (off))

static int check_empty(uint32_t length, const char *name, lxm__check *c)
{
    if (length != 0)
        return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, 4,
                               "%s record must be empty, length is %u", name,
                               length);
    return 0;
}

static int check_exact(uint32_t length, uint32_t want, const char *name,
                       lxm__check *c)
{
    if (length != want)
        return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, 4,
                               "%s length must be %u, is %u", name, want,
                               length);
    return 0;
}

static int check_at_least(uint32_t length, uint32_t want, const char *name,
                          lxm__check *c)
{
    if (length < want)
        return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, 4,
                               "%s length must be at least %u, is %u", name,
                               want, length);
    return 0;
}

static int check_multiple(uint32_t length, uint32_t unit, uint32_t min,
                          const char *name, lxm__check *c)
{
    if (length < min || length % unit)
        return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, 4,
                               "%s length %u is not a non-zero multiple of %u",
                               name, length, unit);
    return 0;
}

static int check_reserved32(const uint8_t *head, uint32_t off, const char *name,
                            lxm__check *c)
{
    uint32_t v = lxm__le32(head + off);

    if (v)
        return lxm__check_fail(c, LXM_ERROR_STREAM_RESERVED, BODY(off),
                               "%s reserved field is 0x%08x, must be 0", name,
                               v);
    return 0;
}

static int check_libxl(uint32_t type, uint32_t length, const uint8_t *head,
                       lxm__check *c)
{
    const char *name = lxm_record_type_name(LXM_LAYER_LIBXL, type);
    uint32_t v;
    int rc;

    switch (type) {
    case LXM_LIBXL_END:
    case LXM_LIBXL_LIBXC_CONTEXT:
    case LXM_LIBXL_CHECKPOINT_END:
        return check_empty(length, name, c);

    case LXM_LIBXL_EMULATOR_XENSTORE_DATA:
    case LXM_LIBXL_EMULATOR_CONTEXT:
        rc = check_at_least(length, LXM__EMULATOR_HDR_LEN, name, c);
        if (rc)
            return rc;
        v = lxm__le32(head);
        if (v > LXM__EMULATOR_ID_MAX)
            return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, BODY(0),
                                   "%s: unknown emulator id %u", name, v);
        return 0;

    case LXM_LIBXL_CHECKPOINT_STATE:
        rc = check_at_least(length, LXM__CHECKPOINT_STATE_LEN, name, c);
        if (rc)
            return rc;
        v = lxm__le32(head);
        if (v > LXM__CHECKPOINT_STATE_MAX)
            return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, BODY(0),
                                   "%s: unknown control id %u", name, v);
        return 0;
    }

    return lxm__check_fail(c, LXM_ERROR_STREAM_UNKNOWN_RECORD, 0,
                           "unknown mandatory libxl record type 0x%08x", type);
}

static int check_libxc(uint32_t type, uint32_t length, const uint8_t *head,
                       uint32_t libxc_version, lxm__check *c)
{
    const char *name = lxm_record_type_name(LXM_LAYER_LIBXC, type);
    int rc;

    switch (type) {
    case LXM_LIBXC_END:
    case LXM_LIBXC_VERIFY:
    case LXM_LIBXC_CHECKPOINT:
        return check_empty(length, name, c);

    case LXM_LIBXC_STATIC_DATA_END:
        if (libxc_version < 3)
            return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, 0,
                                   "%s record in a v%u stream (v3 only)", name,
                                   libxc_version);
        return check_empty(length, name, c);

    case LXM_LIBXC_PAGE_DATA:
        /* count is checked by lxm__page_data_check_count() */
        rc = check_at_least(length, LXM__PAGE_DATA_HDR_LEN + 8, name, c);
        if (rc)
            return rc;
        return check_reserved32(head, 4, name, c);

    case LXM_LIBXC_X86_PV_INFO: {
        uint8_t width, levels;

        rc = check_exact(length, LXM__X86_PV_INFO_LEN, name, c);
        if (rc)
            return rc;
        width = head[0];
        levels = head[1];
        if (width != 4 && width != 8)
            return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, BODY(0),
                                   "%s: guest width %u, must be 4 or 8", name,
                                   width);
        if (levels != 3 && levels != 4)
            return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, BODY(1),
                                   "%s: %u page table levels, must be 3 or 4",
                                   name, levels);
        if (lxm__le16(head + 2))
            return lxm__check_fail(c, LXM_ERROR_STREAM_RESERVED, BODY(2),
                                   "%s reserved field is not 0", name);
        return check_reserved32(head, 4, name, c);
    }

    case LXM_LIBXC_X86_PV_P2M_FRAMES: {
        uint32_t start, end;

        rc = check_multiple(length, 8, LXM__P2M_FRAMES_HDR_LEN + 8, name, c);
        if (rc)
            return rc;
        start = lxm__le32(head);
        end = lxm__le32(head + 4);
        if (start > end)
            return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, BODY(0),
                                   "%s: start pfn 0x%x above end pfn 0x%x",
                                   name, start, end);
        return 0;
    }

    case LXM_LIBXC_X86_PV_VCPU_BASIC:
    case LXM_LIBXC_X86_PV_VCPU_EXTENDED:
    case LXM_LIBXC_X86_PV_VCPU_XSAVE:
    case LXM_LIBXC_X86_PV_VCPU_MSRS:
        rc = check_at_least(length, LXM__VCPU_HDR_LEN, name, c);
        if (rc)
            return rc;
        return check_reserved32(head, 4, name, c);

    case LXM_LIBXC_SHARED_INFO:
        return check_exact(length, LXM_PAGE_SIZE, name, c);

    case LXM_LIBXC_X86_TSC_INFO:
        rc = check_exact(length, LXM__TSC_INFO_LEN, name, c);
        if (rc)
            return rc;
        return check_reserved32(head, 20, name, c);

    case LXM_LIBXC_HVM_CONTEXT:
        return check_at_least(length, 1, name, c);

    case LXM_LIBXC_HVM_PARAMS: {
        uint32_t count;

        rc = check_at_least(length, LXM__HVM_PARAMS_HDR_LEN, name, c);
        if (rc)
            return rc;
        rc = check_reserved32(head, 4, name, c);
        if (rc)
            return rc;
        count = lxm__le32(head);
        if ((uint64_t)count * LXM__HVM_PARAM_LEN + LXM__HVM_PARAMS_HDR_LEN !=
            length)
            return lxm__check_fail(
                c, LXM_ERROR_STREAM_RECORD, BODY(0),
                "%s: %u params need length %llu, is %u", name, count,
                (unsigned long long)count * LXM__HVM_PARAM_LEN +
                    LXM__HVM_PARAMS_HDR_LEN,
                length);
        return 0;
    }

    case LXM_LIBXC_TOOLSTACK:
        return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, 0,
                               "%s record is deprecated; Xen 4.17 rejects it",
                               name);

    case LXM_LIBXC_CHECKPOINT_DIRTY_PFN_LIST:
        if (length % 8)
            return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, 4,
                                   "%s length %u is not a multiple of 8", name,
                                   length);
        return 0;

    case LXM_LIBXC_X86_CPUID_POLICY:
    case LXM_LIBXC_X86_MSR_POLICY:
        if (libxc_version < 3)
            return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, 0,
                                   "%s record in a v%u stream (v3 only)", name,
                                   libxc_version);
        return check_multiple(length,
                              type == LXM_LIBXC_X86_CPUID_POLICY
                                  ? LXM__CPUID_LEAF_LEN
                                  : LXM__MSR_ENTRY_LEN,
                              1, name, c);
    }

    return lxm__check_fail(c, LXM_ERROR_STREAM_UNKNOWN_RECORD, 0,
                           "unknown mandatory libxc record type 0x%08x", type);
}

int lxm__record_check(lxm_stream_layer layer, uint32_t type, uint32_t length,
                      const uint8_t *head, uint32_t libxc_version,
                      lxm__check *c)
{
    if (length > LXM_RECORD_LENGTH_MAX)
        return lxm__check_fail(c, LXM_ERROR_STREAM_TOO_LONG, 4,
                               "%s %s record length %u exceeds the %u byte cap",
                               lxm_layer_name(layer),
                               lxm_record_type_name(layer, type), length,
                               LXM_RECORD_LENGTH_MAX);
    if (type & LXM_RECORD_OPTIONAL)
        return 0;
    if (layer == LXM_LAYER_LIBXL)
        return check_libxl(type, length, head, c);
    return check_libxc(type, length, head, libxc_version, c);
}

/* ---- PAGE_DATA ---------------------------------------------------- */

int lxm__page_data_check_count(uint32_t count, uint32_t length, lxm__check *c)
{
    if (count == 0)
        return lxm__check_fail(c, LXM_ERROR_STREAM_PAGE_COUNT, BODY(0),
                               "PAGE_DATA with a count of 0");
    if (count > LXM_PAGE_DATA_MAX_PAGES)
        return lxm__check_fail(c, LXM_ERROR_STREAM_PAGE_COUNT, BODY(0),
                               "PAGE_DATA count %u exceeds %u", count,
                               LXM_PAGE_DATA_MAX_PAGES);
    if (length < LXM__PAGE_DATA_HDR_LEN + 8 * count)
        return lxm__check_fail(c, LXM_ERROR_STREAM_PAGE_COUNT, 4,
                               "PAGE_DATA length %u too short for %u pfns",
                               length, count);
    return 0;
}

int lxm__page_data_check_pfns(uint32_t count, uint32_t length,
                              const uint64_t *pfn_words, uint32_t *nr_data_r,
                              lxm__check *c)
{
    uint32_t i, nr_data = 0;
    uint64_t want;

    for (i = 0; i < count; i++) {
        uint64_t w = pfn_words[i];
        unsigned int type = (unsigned int)(w >> LXM_PFN_TYPE_SHIFT);
        uint32_t at = BODY(LXM__PAGE_DATA_HDR_LEN + 8 * i);

        if (w & LXM__PFN_RESERVED_MASK)
            return lxm__check_fail(c, LXM_ERROR_STREAM_RESERVED, at,
                                   "PAGE_DATA pfn[%u] 0x%016llx has reserved"
                                   " bits set",
                                   i, (unsigned long long)w);
        if (!lxm_page_type_is_valid(type))
            return lxm__check_fail(c, LXM_ERROR_STREAM_PAGE_TYPE, at,
                                   "PAGE_DATA pfn[%u] 0x%016llx has invalid"
                                   " page type 0x%x",
                                   i, (unsigned long long)w, type);
        if (lxm_page_type_has_data(type))
            nr_data++;
    }

    want = LXM__PAGE_DATA_HDR_LEN + 8 * (uint64_t)count +
           (uint64_t)LXM_PAGE_SIZE * nr_data;
    if (want != length)
        return lxm__check_fail(c, LXM_ERROR_STREAM_PAGE_COUNT, 4,
                               "PAGE_DATA length %u inconsistent with %u pfns"
                               " of which %u carry data (expected %llu)",
                               length, count, nr_data,
                               (unsigned long long)want);
    *nr_data_r = nr_data;
    return 0;
}

/* ---- whole-body rules --------------------------------------------- */

bool lxm__body_check_wanted(lxm_stream_layer layer, uint32_t type)
{
    return layer == LXM_LAYER_LIBXL && type == LXM_LIBXL_EMULATOR_XENSTORE_DATA;
}

void lxm__body_check_init(lxm__body_check *b, lxm_stream_layer layer,
                          uint32_t type)
{
    memset(b, 0, sizeof(*b));
    b->layer = layer;
    b->type = type;
}

void lxm__body_check_feed(lxm__body_check *b, const uint8_t *p, size_t len)
{
    size_t i, skip = 0;

    if (!len)
        return;
    /* The emulator header (head) is not part of the key/value data. */
    if (b->seen < LXM__EMULATOR_HDR_LEN)
        skip = LXM_MIN(len, (size_t)(LXM__EMULATOR_HDR_LEN - b->seen));
    for (i = skip; i < len; i++)
        b->nuls += !p[i];
    if (skip < len)
        b->last = p[len - 1];
    b->seen += (uint32_t)len;
}

int lxm__body_check_finish(lxm__body_check *b, uint32_t length, lxm__check *c)
{
    if (length <= LXM__EMULATOR_HDR_LEN)
        return 0; /* no key/value data at all is fine */
    if (b->last != 0)
        return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, BODY(length - 1),
                               "EMULATOR_XENSTORE_DATA is not NUL terminated");
    if (b->nuls % 2)
        return lxm__check_fail(c, LXM_ERROR_STREAM_RECORD, BODY(0),
                               "EMULATOR_XENSTORE_DATA has %llu strings,"
                               " not key/value pairs",
                               (unsigned long long)b->nuls);
    return 0;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
