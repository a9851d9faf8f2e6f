/*
 * grammar.c - which header or record may come next in a migration
 * stream.  Shared by the reader (to reject) and the writer (to refuse).
 *
 * Entry points: lxm__grammar_init(), lxm__grammar_{xl,libxl,libxc}_header(),
 * lxm__grammar_record(), lxm__grammar_layer().
 *
 * The order, after libxl_stream_read.c and xg_sr_restore*.c (Xen 4.17):
 *
 *   [xl header] -> LibxlFmt header -> libxl records:
 *       LIBXC_CONTEXT (once) -> libxc image+domain header -> libxc records
 *           ... libxc END -> back to libxl records
 *           ... libxc CHECKPOINT -> libxl records until CHECKPOINT_END,
 *               then libxc records again (no new headers)
 *       EMULATOR_* (HVM only, after the libxc part or in a checkpoint)
 *       END (after the libxc END) -> nothing more
 *
 *   libxc records: static data (X86_PV_INFO, X86_{CPUID,MSR}_POLICY)
 *   then STATIC_DATA_END (v3; a v2 stream implies it at the first
 *   X86_PV_P2M_FRAMES or PAGE_DATA), X86_PV_P2M_FRAMES before PAGE_DATA
 *   for PV, PV records only for PV guests, HVM records only for HVM,
 *   END only once the guest's mandatory context (X86_PV_INFO /
 *   HVM_CONTEXT) has been seen.
 *
 *   The spec says HVM_PARAMS must precede HVM_CONTEXT, but Xen 4.17's
 *   own save path writes HVM_CONTEXT first (see a real `xl save` image)
 *   and its restore accepts either order, so we do too.
 */
#include "libxlmig_internal.h"

void lxm__grammar_init(lxm__grammar *g, lxm_stream_format format,
                       unsigned int flags)
{
    memset(g, 0, sizeof(*g));
    g->format = format;
    g->flags = flags;
    switch (format) {
    case LXM_FORMAT_XL:
        g->expect = LXM__EXPECT_XL_HEADER;
        break;
    case LXM_FORMAT_LIBXL:
        g->expect = LXM__EXPECT_LIBXL_HEADER;
        break;
    case LXM_FORMAT_LIBXC:
        g->expect = LXM__EXPECT_LIBXC_HEADER;
        break;
    }
}

void lxm__grammar_xl_header(lxm__grammar *g)
{
    g->expect = LXM__EXPECT_LIBXL_HEADER;
}

void lxm__grammar_libxl_header(lxm__grammar *g)
{
    g->expect = LXM__EXPECT_LIBXL_RECORD;
}

void lxm__grammar_libxc_header(lxm__grammar *g, uint32_t version,
                               uint32_t guest_type)
{
    g->libxc_version = version;
    g->guest_type = guest_type;
    g->expect = LXM__EXPECT_LIBXC_RECORD;
}

lxm_stream_layer lxm__grammar_layer(const lxm__grammar *g)
{
    switch (g->expect) {
    case LXM__EXPECT_XL_HEADER:
        return LXM_LAYER_XL;
    case LXM__EXPECT_LIBXC_HEADER:
    case LXM__EXPECT_LIBXC_RECORD:
        return LXM_LAYER_LIBXC;
    default:
        return LXM_LAYER_LIBXL;
    }
}

#define ORDER(c, ...)                                                          \
    lxm__check_fail((c), LXM_ERROR_STREAM_ORDER, 0, __VA_ARGS__)

static int libxl_record(lxm__grammar *g, uint32_t type, lxm__check *c)
{
    switch (type) {
    case LXM_LIBXL_END:
        if (g->in_checkpoint)
            return ORDER(c, "libxl END inside a checkpoint"
                            " (CHECKPOINT_END expected)");
        if (!g->seen_libxc_context)
            return ORDER(c, "libxl END before any LIBXC_CONTEXT:"
                            " the stream carries no domain");
        g->expect = LXM__EXPECT_NOTHING;
        return 0;

    case LXM_LIBXL_LIBXC_CONTEXT:
        if (g->seen_libxc_context)
            return ORDER(c, "second LIBXC_CONTEXT record");
        g->seen_libxc_context = true;
        g->expect = LXM__EXPECT_LIBXC_HEADER;
        return 0;

    case LXM_LIBXL_EMULATOR_XENSTORE_DATA:
    case LXM_LIBXL_EMULATOR_CONTEXT:
        if (!g->seen_libxc_context || (!g->libxc_done && !g->in_checkpoint))
            return ORDER(c, "%s before the libxc part of the stream",
                         lxm_record_type_name(LXM_LAYER_LIBXL, type));
        if (g->guest_type != LXM_GUEST_X86_HVM)
            return ORDER(c, "%s in a stream of a %s guest (HVM only)",
                         lxm_record_type_name(LXM_LAYER_LIBXL, type),
                         lxm_guest_type_name(g->guest_type));
        return 0;

    case LXM_LIBXL_CHECKPOINT_END:
        if (!g->in_checkpoint)
            return ORDER(c, "CHECKPOINT_END outside a checkpoint");
        g->in_checkpoint = false;
        g->expect = LXM__EXPECT_LIBXC_RECORD;
        return 0;

    case LXM_LIBXL_CHECKPOINT_STATE:
        if (!(g->flags & LXM_READER_BACKCHANNEL))
            return ORDER(c, "CHECKPOINT_STATE outside a COLO back channel");
        return 0;
    }
    return 0; /* optional records: anywhere */
}

static bool is_pv_record(uint32_t type)
{
    switch (type) {
    case LXM_LIBXC_X86_PV_INFO:
    case LXM_LIBXC_X86_PV_P2M_FRAMES:
    case LXM_LIBXC_X86_PV_VCPU_BASIC:
    case LXM_LIBXC_X86_PV_VCPU_EXTENDED:
    case LXM_LIBXC_X86_PV_VCPU_XSAVE:
    case LXM_LIBXC_X86_PV_VCPU_MSRS:
    case LXM_LIBXC_SHARED_INFO:
        return true;
    }
    return false;
}

static bool is_hvm_record(uint32_t type)
{
    return type == LXM_LIBXC_HVM_CONTEXT || type == LXM_LIBXC_HVM_PARAMS;
}

/* v2 streams have no STATIC_DATA_END: libxc infers it (spec, "v3 compat
 * with v2") at the first X86_PV_P2M_FRAMES (PV) or PAGE_DATA (HVM). */
static int need_static_data_end(lxm__grammar *g, uint32_t type, lxm__check *c)
{
    if (g->seen_static_data_end)
        return 0;
    if (g->libxc_version < 3) {
        g->seen_static_data_end = true;
        return 0;
    }
    return ORDER(c, "%s before STATIC_DATA_END",
                 lxm_record_type_name(LXM_LAYER_LIBXC, type));
}

static int libxc_record(lxm__grammar *g, uint32_t type, lxm__check *c)
{
    const char *name = lxm_record_type_name(LXM_LAYER_LIBXC, type);
    bool pv = g->guest_type == LXM_GUEST_X86_PV;
    int rc;

    if (type & LXM_RECORD_OPTIONAL)
        return 0;
    if (is_pv_record(type) && !pv)
        return ORDER(c, "%s in a stream of a %s guest", name,
                     lxm_guest_type_name(g->guest_type));
    if (is_hvm_record(type) && pv)
        return ORDER(c, "%s in a stream of a %s guest", name,
                     lxm_guest_type_name(g->guest_type));

    switch (type) {
    case LXM_LIBXC_END:
        if (pv && !g->seen_pv_info)
            return ORDER(c, "libxc END before X86_PV_INFO");
        if (!pv && !g->seen_hvm_context)
            return ORDER(c, "libxc END before HVM_CONTEXT");
        g->libxc_done = true;
        g->expect = g->format == LXM_FORMAT_LIBXC ? LXM__EXPECT_NOTHING
                                                  : LXM__EXPECT_LIBXL_RECORD;
        return 0;

    case LXM_LIBXC_CHECKPOINT:
        g->checkpoint++;
        if (g->format != LXM_FORMAT_LIBXC) {
            g->in_checkpoint = true;
            g->expect = LXM__EXPECT_LIBXL_RECORD;
        }
        return 0;

    case LXM_LIBXC_STATIC_DATA_END:
        if (g->seen_static_data_end)
            return ORDER(c, "second STATIC_DATA_END");
        if (pv && !g->seen_pv_info)
            return ORDER(c, "STATIC_DATA_END before X86_PV_INFO");
        g->seen_static_data_end = true;
        return 0;

    case LXM_LIBXC_X86_PV_INFO:
        if (g->seen_pv_info)
            return ORDER(c, "second X86_PV_INFO");
        if (g->seen_static_data_end)
            return ORDER(c, "X86_PV_INFO after STATIC_DATA_END");
        g->seen_pv_info = true;
        return 0;

    case LXM_LIBXC_X86_CPUID_POLICY:
    case LXM_LIBXC_X86_MSR_POLICY:
        if (g->seen_static_data_end)
            return ORDER(c, "%s after STATIC_DATA_END", name);
        return 0;

    case LXM_LIBXC_X86_PV_P2M_FRAMES:
        if (!g->seen_pv_info)
            return ORDER(c, "X86_PV_P2M_FRAMES before X86_PV_INFO");
        rc = need_static_data_end(g, type, c);
        if (rc)
            return rc;
        g->seen_p2m_frames = true;
        return 0;

    case LXM_LIBXC_PAGE_DATA:
        if (pv && !g->seen_p2m_frames)
            return ORDER(c, "PAGE_DATA before X86_PV_P2M_FRAMES");
        rc = need_static_data_end(g, type, c);
        if (rc)
            return rc;
        g->seen_page_data = true;
        return 0;

    case LXM_LIBXC_X86_PV_VCPU_BASIC:
    case LXM_LIBXC_X86_PV_VCPU_EXTENDED:
    case LXM_LIBXC_X86_PV_VCPU_XSAVE:
    case LXM_LIBXC_X86_PV_VCPU_MSRS:
    case LXM_LIBXC_SHARED_INFO:
        if (!g->seen_p2m_frames)
            return ORDER(c, "%s before X86_PV_P2M_FRAMES", name);
        return 0;

    case LXM_LIBXC_HVM_PARAMS:
        return need_static_data_end(g, type, c);

    case LXM_LIBXC_HVM_CONTEXT:
        rc = need_static_data_end(g, type, c);
        if (rc)
            return rc;
        g->seen_hvm_context = true;
        return 0;

    case LXM_LIBXC_CHECKPOINT_DIRTY_PFN_LIST:
        if (!(g->flags & LXM_READER_BACKCHANNEL))
            return ORDER(c, "CHECKPOINT_DIRTY_PFN_LIST outside a COLO back"
                            " channel");
        return 0;
    }
    return 0; /* X86_TSC_INFO, VERIFY: anywhere */
}

int lxm__grammar_record(lxm__grammar *g, uint32_t type, lxm__check *c)
{
    switch (g->expect) {
    case LXM__EXPECT_LIBXL_RECORD:
        return libxl_record(g, type, c);
    case LXM__EXPECT_LIBXC_RECORD:
        return libxc_record(g, type, c);
    default:
        return ORDER(c, "record where a header or nothing is expected");
    }
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
