/*
 * sr_format.h - wire layout of the xl, libxl v2 and libxc v3 streams.
 *
 * Written from Xen 4.17's docs/specs/libxl-migration-stream.pandoc,
 * docs/specs/libxc-migration-stream.pandoc and tools/xl/xl.h.  The
 * record type numbers are in include/libxlmig.h (public); this file has
 * the sizes and offsets only the stream code needs.
 *
 * Byte order: the libxl and libxc image headers are big-endian; the xl
 * header, libxc domain header and all records are in the saver's order,
 * which we accept only as little-endian (x86; as verify-stream-v2 does).
 */
#ifndef LXM_SR_FORMAT_H
#define LXM_SR_FORMAT_H

/* xl save header: magic[32], byteorder, mandatory, optional, optlen. */
#define LXM__XL_OFF_BYTEORDER 32
#define LXM__XL_OFF_MANDATORY 36
#define LXM__XL_OFF_OPTIONAL 40
#define LXM__XL_OFF_OPTLEN 44
#define LXM__XL_MANDATORY_ALL                                                  \
    (LXM_XL_MANDATORY_JSON | LXM_XL_MANDATORY_STREAMV2)
/* Optional data we are willing to hold (xl itself has no cap). */
#define LXM__XL_OPTDATA_MAX (16u << 20)

/* libxl header: ident(8, BE) version(4, BE) options(4, BE). */
#define LXM__LIBXL_HEADER_LEN 16
#define LXM__LIBXL_IDENT UINT64_C(0x4c6962786c466d74) /* "LibxlFmt" */
#define LXM__LIBXL_VERSION 2u
#define LXM__LIBXL_OPT_BIG_ENDIAN (1u << 0)
#define LXM__LIBXL_OPT_LEGACY (1u << 1)
#define LXM__LIBXL_OPT_RESERVED 0xfffffffcu

/* libxc image header: marker(8) id(4) version(4) options(2) rsvd(2+4),
 * all big-endian; then the domain header: type(4) page_shift(2)
 * rsvd(2) xen_major(4) xen_minor(4), in the stream's order. */
#define LXM__LIBXC_IHDR_LEN 24
#define LXM__LIBXC_DHDR_LEN 16
#define LXM__LIBXC_HEADERS_LEN (LXM__LIBXC_IHDR_LEN + LXM__LIBXC_DHDR_LEN)
#define LXM__LIBXC_MARKER UINT64_C(0xffffffffffffffff)
#define LXM__LIBXC_IDENT 0x58454e46u /* "XENF" */
#define LXM__LIBXC_VERSION_MIN 2u
#define LXM__LIBXC_VERSION 3u /* what Xen 4.17 writes */
#define LXM__LIBXC_OPT_BIG_ENDIAN 0x0001u
#define LXM__LIBXC_OPT_RESERVED 0xfffeu
#define LXM__PAGE_SHIFT 12

/* Record header: type(4) length(4); body padded to 8. */
#define LXM__RHDR_LEN 8

/* Body layouts (offsets within the body). */
#define LXM__PAGE_DATA_HDR_LEN 8 /* count(4) rsvd(4), then pfns */
#define LXM__PFN_RESERVED_MASK (((UINT64_C(1) << 60) - 1) & ~LXM_PFN_MASK)
#define LXM__X86_PV_INFO_LEN 8    /* width(1) levels(1) rsvd(2+4) */
#define LXM__P2M_FRAMES_HDR_LEN 8 /* start(4) end(4) then u64 frames */
#define LXM__VCPU_HDR_LEN 8       /* vcpu_id(4) rsvd(4) then blob */
#define LXM__TSC_INFO_LEN 24      /* mode khz nsec(8) incarnation rsvd */
#define LXM__HVM_PARAMS_HDR_LEN 8 /* count(4) rsvd(4) then {idx, val} */
#define LXM__HVM_PARAM_LEN 16
#define LXM__CPUID_LEAF_LEN 24      /* xen_cpuid_leaf_t */
#define LXM__MSR_ENTRY_LEN 16       /* xen_msr_entry_t */
#define LXM__EMULATOR_HDR_LEN 8     /* emulator_id(4) index(4) */
#define LXM__EMULATOR_ID_MAX 2u     /* unknown, qemu-trad, qemu-upstream */
#define LXM__CHECKPOINT_STATE_LEN 4 /* control_id(4) */
#define LXM__CHECKPOINT_STATE_MAX 3u

#endif /* LXM_SR_FORMAT_H */
