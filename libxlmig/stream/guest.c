/*
 * guest.c - the records of a Xen 4.17 x86 migration stream that
 * describe the guest rather than its memory, shared by the synthetic
 * streams (synth.c) and the sim backend's save (backend/backend-sim.c),
 * and the page-content generators both use.
 *
 * Entry points (libxlmig_internal.h, section 6):
 *   lxm__guest_config_json()        the xl header's domain config
 *   lxm__guest_stream_begin()       headers, static data, PV P2M frames
 *   lxm__guest_end_of_checkpoint()  TSC, HVM context/params or PV
 *                                   shared info and vcpus
 *   lxm__guest_emulator_records()   libxl EMULATOR_* records (HVM)
 *   lxm__guest_stream_end()         end of checkpoint, libxc END,
 *                                   emulator records, libxl END
 *   lxm__rng_fill(), lxm__fill_code_page(), lxm__fill_text_page(),
 *   lxm__fill_text()
 *
 * Every value derives from the descriptor (its seed for the made-up
 * CPU, device and vcpu state), so output is the same on every run and
 * host: synth's golden fixtures depend on it.  Each entry point uses
 * its own scratch buffer for record bodies, freed before it returns.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <yajl/yajl_gen.h>

#include "libxlmig_internal.h"

#define GUEST_XEN_MAJOR 4
#define GUEST_XEN_MINOR 17

/* One call's view of the guest, and its scratch. */
typedef struct gctx {
    lxm_stream_writer *w;
    const lxm__guest_desc *g;
    bool pv;
    bool hvm_emulator; /* HVM, not PVH: QEMU records */
    uint32_t vcpus;
    uint64_t npages;       /* RAM pages */
    uint64_t nr_pfns;      /* PV: p2m size */
    uint64_t special_base; /* HVM: first special pfn */

    /* Scratch for record bodies. */
    uint8_t *body;
    size_t body_cap;
} gctx;

static void gctx_init(gctx *s, lxm_stream_writer *w, const lxm__guest_desc *g)
{
    memset(s, 0, sizeof(*s));
    s->w = w;
    s->g = g;
    s->pv = g->guest_type == LXM_GUEST_X86_PV;
    s->hvm_emulator = !s->pv && !g->pvh;
    s->vcpus = g->vcpus ? g->vcpus : 1;
    s->npages = g->memory_bytes / LXM_PAGE_SIZE;
    s->nr_pfns = g->nr_pfns > s->npages ? g->nr_pfns : s->npages;
    if (!s->pv)
        s->special_base = lxm__guest_special_base(s->npages);
}

static void gctx_dispose(gctx *s)
{
    free(s->body);
    s->body = NULL;
}

/* Body scratch of at least len bytes, zeroed. */
static uint8_t *body_get(gctx *s, size_t len)
{
    if (len > s->body_cap) {
        uint8_t *p = realloc(s->body, len);

        if (!p)
            return NULL;
        s->body = p;
        s->body_cap = len;
    }
    memset(s->body, 0, len);
    return s->body;
}

void lxm__rng_fill(lxm__rng *r, uint8_t *p, size_t len)
{
    size_t i;

    for (i = 0; i + 8 <= len; i += 8)
        lxm__put_le64(p + i, lxm__rng_next(r));
    if (i < len) {
        uint8_t last[8];

        lxm__put_le64(last, lxm__rng_next(r));
        memcpy(p + i, last, len - i);
    }
}

/* ---- page contents ----------------------------------------------- */

/* Instruction-like snippets: prologues, moves, calls, returns, padding. */
static const struct {
    uint8_t len;
    uint8_t b[8];
    uint8_t imm; /* random bytes after the snippet */
} code_snippets[] = {
    { 4, { 0x55, 0x48, 0x89, 0xe5 }, 0 }, /* push rbp; mov */
    { 4, { 0x48, 0x83, 0xec, 0x20 }, 0 }, /* sub rsp, 0x20 */
    { 3, { 0x48, 0x8b, 0x45 }, 1 },       /* mov rax, [rbp+d8] */
    { 3, { 0x48, 0x89, 0x7d }, 1 },       /* mov [rbp+d8], rdi */
    { 1, { 0xe8 }, 4 },                   /* call rel32 */
    { 1, { 0xe9 }, 4 },                   /* jmp rel32 */
    { 2, { 0x85, 0xc0 }, 0 },             /* test eax, eax */
    { 1, { 0x74 }, 1 },                   /* je rel8 */
    { 1, { 0x75 }, 1 },                   /* jne rel8 */
    { 1, { 0xb8 }, 4 },                   /* mov eax, imm32 */
    { 3, { 0x48, 0x8d, 0x05 }, 4 },       /* lea rax, [rip+d] */
    { 2, { 0x31, 0xc0 }, 0 },             /* xor eax, eax */
    { 2, { 0x5d, 0xc3 }, 0 },             /* pop rbp; ret */
    { 4, { 0x0f, 0x1f, 0x40, 0x00 }, 0 }, /* nopl */
    { 4, { 0xcc, 0xcc, 0xcc, 0xcc }, 0 }, /* int3 padding */
};

/* One PRNG draw per snippet: the low half picks it, the high half is
 * its immediate. */
void lxm__fill_code_page(lxm__rng *r, uint8_t *p)
{
    size_t off = 0;

    while (off < LXM_PAGE_SIZE) {
        uint64_t x = lxm__rng_next(r);
        uint32_t k =
            (uint32_t)(((x & 0xffffffffu) * LXM_ARRAY_SIZE(code_snippets)) >>
                       32);
        size_t n = code_snippets[k].len;
        uint8_t tmp[16];

        memcpy(tmp, code_snippets[k].b, sizeof(code_snippets[k].b));
        lxm__put_le32(tmp + n, (uint32_t)(x >> 32));
        n += code_snippets[k].imm;
        /* A fixed-size copy is faster; the next snippet overwrites the
         * surplus. */
        if (off + sizeof(tmp) <= LXM_PAGE_SIZE) {
            memcpy(p + off, tmp, sizeof(tmp));
        } else {
            n = LXM_MIN(n, LXM_PAGE_SIZE - off);
            memcpy(p + off, tmp, n);
        }
        off += n;
    }
}

#define W(s)                                                                   \
    {                                                                          \
        s, sizeof(s) - 1                                                       \
    }
static const struct {
    char s[16];
    size_t len;
} words[] = {
    W("the"),    W("of"),        W("and"),    W("to"),     W("in"),
    W("is"),     W("that"),      W("for"),    W("it"),     W("as"),
    W("was"),    W("with"),      W("be"),     W("by"),     W("on"),
    W("not"),    W("he"),        W("this"),   W("are"),    W("or"),
    W("his"),    W("from"),      W("at"),     W("which"),  W("but"),
    W("have"),   W("an"),        W("had"),    W("they"),   W("you"),
    W("were"),   W("their"),     W("one"),    W("all"),    W("we"),
    W("can"),    W("her"),       W("has"),    W("there"),  W("been"),
    W("if"),     W("more"),      W("when"),   W("will"),   W("would"),
    W("who"),    W("so"),        W("no"),     W("domain"), W("memory"),
    W("page"),   W("migration"), W("stream"), W("record"), W("kernel"),
    W("device"), W("error"),     W("xen"),    W("guest"),  W("network"),
    W("disk"),   W("config"),    W("value"),  W("return"), W("static"),
    W("struct"), W("const"),     W("int"),
};
#undef W

/* Words and separators, lines of about 64 columns; one draw a word. */
void lxm__fill_text(lxm__rng *r, uint8_t *p, size_t len)
{
    size_t off = 0;
    unsigned int col = 0;

    while (off < len) {
        uint64_t x = lxm__rng_next(r);
        uint32_t k =
            (uint32_t)(((x & 0xffffffffu) * LXM_ARRAY_SIZE(words)) >> 32);
        uint32_t sep = (uint32_t)(x >> 60);
        size_t n = words[k].len;

        if (off + sizeof(words[k].s) <= len) {
            memcpy(p + off, words[k].s, sizeof(words[k].s));
        } else {
            n = LXM_MIN(n, len - off);
            memcpy(p + off, words[k].s, n);
        }
        off += n;
        col += (unsigned int)n;
        if (off == len)
            break;
        if (col > 64) {
            p[off++] = '\n';
            col = 0;
        } else {
            p[off++] = sep == 0 ? ',' : sep == 1 ? '.' : ' ';
            col++;
        }
    }
}

void lxm__fill_text_page(lxm__rng *r, uint8_t *p)
{
    lxm__fill_text(r, p, LXM_PAGE_SIZE);
}
/* ---- JSON domain config (as libxl_domain_config_to_json) ---------- */

static void put_str(yajl_gen g, const char *str)
{
    yajl_gen_string(g, (const unsigned char *)str, strlen(str));
}

static void kv_str(yajl_gen g, const char *key, const char *val)
{
    put_str(g, key);
    put_str(g, val);
}

static void kv_int(yajl_gen g, const char *key, long long val)
{
    put_str(g, key);
    yajl_gen_integer(g, val);
}

/* "key": { (the caller closes it) */
static void kv_map(yajl_gen g, const char *key)
{
    put_str(g, key);
    yajl_gen_map_open(g);
}

static void make_uuid(uint64_t seed, char out[37])
{
    uint8_t u[16];
    lxm__rng r;

    lxm__rng_seed(&r, lxm__hash3(seed, UINT64_C(0x75756964), 0));
    lxm__rng_fill(&r, u, sizeof(u));
    u[6] = (u[6] & 0x0f) | 0x40; /* version 4 */
    u[8] = (u[8] & 0x3f) | 0x80; /* RFC 4122 variant */
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
             u[11], u[12], u[13], u[14], u[15]);
}

/* *json_r: caller must free().  Key order and layout follow what
 * libxl_domain_config_to_json() gives for such a guest. */
static int make_config(const gctx *s, char **json_r)
{
    const lxm__guest_desc *o = s->g;
    const char *type = s->pv ? "pv" : o->pvh ? "pvh" : "hvm";
    long long memkb = (long long)(o->memory_bytes / 1024);
    const unsigned char *buf;
    char uuid[37], key[16];
    yajl_gen g;
    size_t len;
    uint32_t i;
    int rc;

    *json_r = NULL;
    g = yajl_gen_alloc(NULL);
    if (!g)
        return LXM_ERROR_NOMEM;
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_config(g, yajl_gen_indent_string, "    ");

    if (o->uuid)
        snprintf(uuid, sizeof(uuid), "%s", o->uuid);
    else
        make_uuid(o->seed, uuid);

    yajl_gen_map_open(g);

    kv_map(g, "c_info");
    kv_str(g, "type", type);
    kv_str(g, "name", o->name ? o->name : "synth");
    kv_str(g, "uuid", uuid);
    kv_str(g, "run_hotplug_scripts", "True");
    yajl_gen_map_close(g);

    kv_map(g, "b_info");
    kv_int(g, "max_vcpus", s->vcpus);
    put_str(g, "avail_vcpus");
    yajl_gen_array_open(g);
    for (i = 0; i < s->vcpus; i++)
        yajl_gen_integer(g, i);
    yajl_gen_array_close(g);
    if (!s->pv)
        kv_str(g, "tsc_mode", "native");
    kv_int(g, "max_memkb", memkb);
    kv_int(g, "target_memkb", memkb);
    kv_int(g, "video_memkb", s->hvm_emulator ? 8192 : 0);
    if (s->hvm_emulator) {
        kv_int(g, "shadow_memkb", memkb / 256 + 1024);
        kv_str(g, "device_model_version", "qemu_xen");
    }
    kv_map(g, "sched_params");
    kv_str(g, "sched", "credit2");
    kv_int(g, "weight", 256);
    kv_int(g, "cap", 0);
    yajl_gen_map_close(g);
    kv_str(g, "claim_mode", "True");
    if (!s->hvm_emulator) {
        kv_str(g, "kernel", "/guest/vmlinuz");
        kv_str(g, "cmdline", "console=hvc0 root=/dev/xvda1 ro");
        kv_str(g, "ramdisk", "/guest/initrd.gz");
    }
    snprintf(key, sizeof(key), "type.%s", type);
    kv_map(g, key);
    if (s->hvm_emulator) {
        kv_str(g, "pae", "True");
        kv_str(g, "apic", "True");
        kv_str(g, "acpi", "True");
        kv_str(g, "boot", "c");
        kv_map(g, "vga");
        kv_str(g, "kind", "stdvga");
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
    kv_map(g, "arch_arm");
    yajl_gen_map_close(g);
    kv_map(g, "arch_x86");
    kv_str(g, "msr_relaxed", "False");
    yajl_gen_map_close(g);
    yajl_gen_map_close(g); /* b_info */

    kv_str(g, "on_reboot", "restart");
    kv_str(g, "on_crash", "destroy");
    kv_str(g, "on_soft_reset", "soft_reset");
    yajl_gen_map_close(g);

    if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
        rc = LXM_ERROR_FAIL;
        goto out;
    }
    *json_r = strndup((const char *)buf, len);
    rc = *json_r ? 0 : LXM_ERROR_NOMEM;

out:
    yajl_gen_free(g);
    return rc;
}

/* ---- libxc records ----------------------------------------------- */

/* One CPUID leaf: leaf, subleaf, a, b, c, d. */
static void put_leaf(uint8_t *p, uint32_t leaf, uint32_t subleaf, uint32_t a,
                     uint32_t b, uint32_t c, uint32_t d)
{
    lxm__put_le32(p, leaf);
    lxm__put_le32(p + 4, subleaf);
    lxm__put_le32(p + 8, a);
    lxm__put_le32(p + 12, b);
    lxm__put_le32(p + 16, c);
    lxm__put_le32(p + 20, d);
}

#define NO_SUBLEAF 0xffffffffu

static int write_static_data(gctx *s)
{
    /* "GenuineIntel", family 6 model 0x9e, and a brand string. */
    static const char brand[48] = "Xen synthetic x86 CPU @ 2.40GHz";
    uint8_t *p, pv_info[LXM__X86_PV_INFO_LEN] = { 8, 4 };
    uint32_t leaf, n = 0;
    int rc;

    if (s->pv) {
        rc = lxm_stream_write_libxc_record(s->w, LXM_LIBXC_X86_PV_INFO, pv_info,
                                           sizeof(pv_info));
        if (rc)
            return rc;
    }

    /* X86_CPUID_POLICY: the leaves libxc collects, as xen_cpuid_leaf_t. */
    p = body_get(s, 64 * LXM__CPUID_LEAF_LEN);
    if (!p)
        return LXM_ERROR_NOMEM;
#define LEAF(...) put_leaf(p + LXM__CPUID_LEAF_LEN * n++, __VA_ARGS__)
    LEAF(0x0, NO_SUBLEAF, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69);
    LEAF(0x1, NO_SUBLEAF, 0x000906ea, 0x00040800 | (s->vcpus << 16), 0xf6fa3203,
         0x178bfbff);
    for (leaf = 0x2; leaf <= 0xc; leaf++) {
        bool indexed = leaf == 0x4 || leaf == 0x7 || leaf == 0xb;

        LEAF(leaf, indexed ? 0 : NO_SUBLEAF,
             leaf == 0x7   ? 0
             : leaf == 0x6 ? 0x4
                           : 0,
             leaf == 0x7 ? 0x009c47ab : 0, 0, leaf == 0x7 ? 0xbc000400 : 0);
    }
    LEAF(0xd, 0, 0x7, 0x340, 0x340, 0);
    LEAF(0xd, 1, 0x1, 0, 0, 0);
    LEAF(0x40000000, NO_SUBLEAF, 0, 0, 0, 0);
    LEAF(0x40000100, NO_SUBLEAF, 0, 0, 0, 0);
    LEAF(0x80000000, NO_SUBLEAF, 0x80000008, 0, 0, 0);
    LEAF(0x80000001, NO_SUBLEAF, 0, 0, 0x00000121, 0x2c100800);
    for (leaf = 0; leaf < 3; leaf++) {
        const char *b = brand + 16 * leaf;

        LEAF(0x80000002 + leaf, NO_SUBLEAF, lxm__le32(b), lxm__le32(b + 4),
             lxm__le32(b + 8), lxm__le32(b + 12));
    }
    LEAF(0x80000005, NO_SUBLEAF, 0, 0, 0, 0);
    LEAF(0x80000006, NO_SUBLEAF, 0, 0, 0x01006040, 0);
    LEAF(0x80000007, NO_SUBLEAF, 0, 0, 0, 0x100);
    LEAF(0x80000008, NO_SUBLEAF, 0x3027, 0, 0, 0);
#undef LEAF
    rc = lxm_stream_write_libxc_record(s->w, LXM_LIBXC_X86_CPUID_POLICY, p,
                                       n * LXM__CPUID_LEAF_LEN);
    if (rc)
        return rc;

    /* X86_MSR_POLICY: PLATFORM_INFO (CPUID faulting for HVM) and
     * ARCH_CAPABILITIES, as xen_msr_entry_t {idx, flags, val}. */
    p = body_get(s, 2 * LXM__MSR_ENTRY_LEN);
    if (!p)
        return LXM_ERROR_NOMEM;
    lxm__put_le32(p, 0xce);
    lxm__put_le64(p + 8, s->pv ? 0 : UINT64_C(0x80000000));
    lxm__put_le32(p + 16, 0x10a);
    rc = lxm_stream_write_libxc_record(s->w, LXM_LIBXC_X86_MSR_POLICY, p,
                                       2 * LXM__MSR_ENTRY_LEN);
    if (rc)
        return rc;

    return lxm_stream_write_libxc_record(s->w, LXM_LIBXC_STATIC_DATA_END, NULL,
                                         0);
}

/* PV start of stream: where the guest's p2m lives. */
static int write_p2m_frames(gctx *s)
{
    uint64_t frames = (s->nr_pfns + 511) / 512, i;
    uint32_t length = (uint32_t)(LXM__P2M_FRAMES_HDR_LEN + 8 * frames);
    uint8_t *p = body_get(s, length);

    if (!p)
        return LXM_ERROR_NOMEM;
    lxm__put_le32(p, 0);
    lxm__put_le32(p + 4, (uint32_t)(s->nr_pfns - 1));
    /* The p2m sits in the top of RAM, allocated downwards. */
    for (i = 0; i < frames; i++)
        lxm__put_le64(p + 8 + 8 * i, s->npages - 1 - (i % s->npages));
    return lxm_stream_write_libxc_record(s->w, LXM_LIBXC_X86_PV_P2M_FRAMES, p,
                                         length);
}

static int write_tsc_info(gctx *s, uint32_t checkpoint)
{
    uint8_t p[LXM__TSC_INFO_LEN] = { 0 };
    uint64_t h = lxm__hash3(s->g->seed, UINT64_C(0x747363), 0);

    lxm__put_le32(p, 0);                                     /* mode default */
    lxm__put_le32(p + 4, 2000000 + (uint32_t)(h % 1500000)); /* kHz */
    lxm__put_le64(p + 8, UINT64_C(20000000000) + (h >> 40) +
                             UINT64_C(1000000000) * checkpoint); /* ns */
    lxm__put_le32(p + 16, 1); /* incarnation */
    return lxm_stream_write_libxc_record(s->w, LXM_LIBXC_X86_TSC_INFO, p,
                                         sizeof(p));
}

/* One hvm_save_descriptor {u16 typecode, u16 instance, u32 length}. */
static uint8_t *hvm_desc(uint8_t *p, uint16_t typecode, uint16_t instance,
                         uint32_t length)
{
    p[0] = (uint8_t)typecode;
    p[1] = (uint8_t)(typecode >> 8);
    p[2] = (uint8_t)instance;
    p[3] = (uint8_t)(instance >> 8);
    lxm__put_le32(p + 4, length);
    return p + 8;
}

/*
 * HVM_CONTEXT: a plausible hvm save blob: HEADER, per-vcpu CPU, the
 * platform devices (PIC/IOAPIC/PIT/RTC/HPET/PMTIMER only with an
 * emulator), per-vcpu LAPIC state and MTRRs, then END.
 */
static int write_hvm_context(gctx *s, uint32_t checkpoint)
{
    static const struct {
        uint16_t code, len;
        bool per_vcpu, dm;
    } recs[] = {
        { 2, 1032, true, false }, /* CPU */
        { 3, 8, false, true },    /* PIC (x2 below) */
        { 4, 408, false, true },  /* IOAPIC */
        { 5, 24, true, false },   /* LAPIC */
        { 6, 1024, true, false }, /* LAPIC_REGS */
        { 7, 16, false, false },  /* PCI_IRQ */
        { 8, 8, false, false },   /* ISA_IRQ */
        { 9, 8, false, false },   /* PCI_LINK */
        { 10, 56, false, true },  /* PIT */
        { 11, 24, false, true },  /* RTC */
        { 12, 248, false, true }, /* HPET */
        { 13, 8, false, true },   /* PMTIMER */
        { 14, 240, true, false }, /* MTRR */
        { 18, 32, true, false },  /* VMCE_VCPU */
        { 19, 8, true, false },   /* TSC_ADJUST */
    };
    size_t len = 8 + 24 + 8, i;
    uint32_t v, inst;
    uint8_t *p, *q;
    lxm__rng r;

    for (i = 0; i < LXM_ARRAY_SIZE(recs); i++) {
        uint32_t n = recs[i].per_vcpu ? s->vcpus : recs[i].code == 3 ? 2 : 1;

        if (recs[i].dm && !s->hvm_emulator)
            continue;
        len += (size_t)n * (8 + recs[i].len);
    }
    p = body_get(s, len);
    if (!p)
        return LXM_ERROR_NOMEM;
    lxm__rng_seed(&r, lxm__hash3(s->g->seed, UINT64_C(0x68766d), checkpoint));

    /* HEADER: magic, version, changeset, cpuid, gtsc_khz. */
    q = hvm_desc(p, 1, 0, 24);
    lxm__put_le32(q, 0x54381286);
    lxm__put_le32(q + 4, 1);
    lxm__put_le64(q + 8, UINT64_MAX);
    lxm__put_le32(q + 16, 0x000906ea);
    lxm__put_le32(q + 20, 0);
    q += 24;

    for (i = 0; i < LXM_ARRAY_SIZE(recs); i++) {
        uint32_t n = recs[i].per_vcpu ? s->vcpus : recs[i].code == 3 ? 2 : 1;

        if (recs[i].dm && !s->hvm_emulator)
            continue;
        for (inst = 0; inst < n; inst++) {
            q = hvm_desc(q, recs[i].code, (uint16_t)inst, recs[i].len);
            if (recs[i].code == 2) {
                /* FPU control word, MXCSR, then a few registers. */
                q[0] = 0x7f;
                q[1] = 0x03;
                lxm__put_le32(q + 24, 0x1f80);
                lxm__put_le32(q + 28, 0xffff);
                for (v = 0; v < 24; v++)
                    lxm__put_le64(q + 512 + 8 * v,
                                  v < 16 ? lxm__rng_next(&r) >> 16 : 0);
            } else if (recs[i].code == 5) {
                lxm__put_le64(q, UINT64_C(0xfee00d00) | (inst ? 0 : 0x100));
            } else {
                lxm__rng_fill(&r, q, LXM_MIN(recs[i].len, 16u));
            }
            q += recs[i].len;
        }
    }
    hvm_desc(q, 0, 0, 0); /* END */

    return lxm_stream_write_libxc_record(s->w, LXM_LIBXC_HVM_CONTEXT, p,
                                         (uint32_t)len);
}

static int write_hvm_params(gctx *s)
{
    /* index, value: the magic pfns libxl set up, as a real save shows. */
    const uint64_t sp = s->special_base;
    const uint64_t params[][2] = {
        { 1, sp + 4 },          /* STORE_PFN */
        { 5, sp + 5 },          /* IOREQ_PFN */
        { 6, sp + 3 },          /* BUFIOREQ_PFN */
        { 27, sp + 0 },         /* PAGING_RING_PFN */
        { 28, sp + 1 },         /* MONITOR_RING_PFN */
        { 29, sp + 2 },         /* SHARING_RING_PFN */
        { 17, sp + 7 },         /* CONSOLE_PFN */
        { 12, (sp + 6) << 12 }, /* IDENT_PT */
    };
    const uint32_t n = LXM_ARRAY_SIZE(params);
    uint32_t length = LXM__HVM_PARAMS_HDR_LEN + n * LXM__HVM_PARAM_LEN, i;
    uint8_t *p = body_get(s, length);

    if (!p)
        return LXM_ERROR_NOMEM;
    lxm__put_le32(p, n);
    for (i = 0; i < n; i++) {
        lxm__put_le64(p + 8 + 16 * i, params[i][0]);
        lxm__put_le64(p + 16 + 16 * i, params[i][1]);
    }
    return lxm_stream_write_libxc_record(s->w, LXM_LIBXC_HVM_PARAMS, p, length);
}

static int write_shared_info(gctx *s, uint32_t checkpoint)
{
    uint8_t *p = body_get(s, LXM_PAGE_SIZE);
    uint32_t v;
    lxm__rng r;

    if (!p)
        return LXM_ERROR_NOMEM;
    lxm__rng_seed(&r,
                  lxm__hash3(s->g->seed, UINT64_C(0x736861726564), checkpoint));
    /* vcpu_info[]: 64 bytes each; time info at +32. */
    for (v = 0; v < LXM_MIN(s->vcpus, 32u); v++) {
        uint8_t *vi = p + 64 * v;

        vi[1] = 1;                                       /* upcall mask */
        lxm__put_le64(vi + 8, 0);                        /* pending sel */
        lxm__put_le32(vi + 32, 2 * (checkpoint + 1));    /* version */
        lxm__put_le64(vi + 40, lxm__rng_next(&r) >> 20); /* tsc stamp */
        lxm__put_le64(vi + 48, lxm__rng_next(&r) >> 28); /* system time */
        lxm__put_le32(vi + 56, 0xd1ff5f79);              /* tsc mul */
        vi[60] = 0xff;                                   /* tsc shift */
    }
    /* wc_version, wc_sec, wc_nsec after the event channel bitmaps. */
    lxm__put_le32(p + 0xc00, 2);
    lxm__put_le32(p + 0xc04, 1700000000u + (uint32_t)(s->g->seed % 100000));
    return lxm_stream_write_libxc_record(s->w, LXM_LIBXC_SHARED_INFO, p,
                                         LXM_PAGE_SIZE);
}

/* The four per-vcpu PV records: header {vcpu_id, reserved}, then the
 * blob libxc got from the hypervisor. */
static int write_pv_vcpus(gctx *s, uint32_t checkpoint)
{
    const uint32_t basic = 5168, extended = 64, xsave = 16 + 512 + 64 + 256;
    const uint32_t msrs = 2 * 16;
    uint32_t v;
    uint8_t *p;
    lxm__rng r;
    int rc;

    for (v = 0; v < s->vcpus; v++) {
        lxm__rng_seed(
            &r, lxm__hash3(s->g->seed, UINT64_C(0x76637075) + v, checkpoint));

        /* BASIC: vcpu_guest_context: FPU state, flags, registers. */
        p = body_get(s, LXM__VCPU_HDR_LEN + basic);
        if (!p)
            return LXM_ERROR_NOMEM;
        lxm__put_le32(p, v);
        p[8] = 0x7f;
        p[9] = 0x03;
        lxm__put_le32(p + 8 + 24, 0x1f80);
        lxm__put_le32(p + 8 + 28, 0xffff);
        lxm__put_le64(p + 8 + 512, 0x1a);        /* VGCF flags */
        lxm__rng_fill(&r, p + 8 + 520, 21 * 8);  /* user_regs */
        lxm__put_le64(p + 8 + 4096, 0x80050033); /* cr0 */
        lxm__put_le64(p + 8 + 4120, 0x000406f0); /* cr4 */
        rc = lxm_stream_write_libxc_record(s->w, LXM_LIBXC_X86_PV_VCPU_BASIC, p,
                                           LXM__VCPU_HDR_LEN + basic);
        if (rc)
            return rc;

        /* EXTENDED: xen_domctl_ext_vcpucontext. */
        p = body_get(s, LXM__VCPU_HDR_LEN + extended);
        if (!p)
            return LXM_ERROR_NOMEM;
        lxm__put_le32(p, v);
        lxm__put_le32(p + 8 + 12, 0x40);
        lxm__put_le64(p + 8 + 16, UINT64_C(0xffffffff81027f50));
        lxm__put_le32(p + 8 + 40, 1);
        lxm__put_le32(p + 8 + 44, 2);
        rc = lxm_stream_write_libxc_record(s->w, LXM_LIBXC_X86_PV_VCPU_EXTENDED,
                                           p, LXM__VCPU_HDR_LEN + extended);
        if (rc)
            return rc;

        /* XSAVE: xcr0, xcr0_accum, then the x87/SSE/AVX save area. */
        p = body_get(s, LXM__VCPU_HDR_LEN + xsave);
        if (!p)
            return LXM_ERROR_NOMEM;
        lxm__put_le32(p, v);
        lxm__put_le64(p + 8, 0x7);
        lxm__put_le64(p + 16, 0x7);
        p[24] = 0x7f;
        p[25] = 0x03;
        lxm__put_le32(p + 24 + 24, 0x1f80);
        lxm__rng_fill(&r, p + 24 + 160, 16 * 8); /* some xmm */
        lxm__put_le64(p + 24 + 512, 0x7);        /* xstate_bv */
        rc = lxm_stream_write_libxc_record(s->w, LXM_LIBXC_X86_PV_VCPU_XSAVE, p,
                                           LXM__VCPU_HDR_LEN + xsave);
        if (rc)
            return rc;

        /* MSRS: {index, reserved, value}: SPEC_CTRL, TSC_AUX. */
        p = body_get(s, LXM__VCPU_HDR_LEN + msrs);
        if (!p)
            return LXM_ERROR_NOMEM;
        lxm__put_le32(p, v);
        lxm__put_le32(p + 8, 0x48);
        lxm__put_le32(p + 24, 0xc0000103);
        lxm__put_le64(p + 32, v);
        rc = lxm_stream_write_libxc_record(s->w, LXM_LIBXC_X86_PV_VCPU_MSRS, p,
                                           LXM__VCPU_HDR_LEN + msrs);
        if (rc)
            return rc;
    }
    return 0;
}

/* What libxc writes once the guest is paused (end_of_checkpoint). */
static int write_end_of_checkpoint(gctx *s, uint32_t checkpoint)
{
    int rc;

    rc = write_tsc_info(s, checkpoint);
    if (rc)
        return rc;
    if (s->pv) {
        rc = write_shared_info(s, checkpoint);
        if (rc)
            return rc;
        return write_pv_vcpus(s, checkpoint);
    }
    rc = write_hvm_context(s, checkpoint);
    if (rc)
        return rc;
    return write_hvm_params(s);
}

/* ---- libxl emulator records -------------------------------------- */

static int write_emulator_records(gctx *s, uint32_t checkpoint)
{
    /* The physmap keys libxl__save_emulator_xenstore_data() collects
     * for QEMU's VGA RAM. */
    static const char xs_data[] = "physmap/f0000000/start_addr\0f0000000\0"
                                  "physmap/f0000000/size\0800000\0"
                                  "physmap/f0000000/name\0vga.vram";
    static const char *const sections[] = {
        "timer", "cpu_common", "i440FX",   "PIIX3",
        "vga",   "e1000",      "piix4_pm", "xen_platform",
    };
    uint32_t xs_len = LXM__EMULATOR_HDR_LEN + sizeof(xs_data);
    uint32_t length, i;
    uint8_t *p, *q;
    lxm__rng r;
    int rc;

    if (!s->hvm_emulator)
        return 0;

    p = body_get(s, xs_len);
    if (!p)
        return LXM_ERROR_NOMEM;
    lxm__put_le32(p, 2); /* qemu-upstream */
    memcpy(p + LXM__EMULATOR_HDR_LEN, xs_data, sizeof(xs_data));
    rc = lxm_stream_write_libxl_record(s->w, LXM_LIBXL_EMULATOR_XENSTORE_DATA,
                                       p, xs_len);
    if (rc)
        return rc;

    /*
     * EMULATOR_CONTEXT: a small QEMU device-state file as QEMU's
     * xen-save-devices-state writes it: "QEVM", version 3, the machine
     * configuration, one full section per device, EOF.
     */
    p = body_get(s, 8192);
    if (!p)
        return LXM_ERROR_NOMEM;
    lxm__rng_seed(&r, lxm__hash3(s->g->seed, UINT64_C(0x71656d75), checkpoint));
    lxm__put_le32(p, 2);
    q = p + LXM__EMULATOR_HDR_LEN;
    memcpy(q, "QEVM", 4);
    lxm__put_be32(q + 4, 3);
    q += 8;
    *q++ = 0x07; /* CONFIGURATION */
    lxm__put_be32(q, 5);
    memcpy(q + 4, "xenfv", 5);
    q += 9;
    for (i = 0; i < LXM_ARRAY_SIZE(sections); i++) {
        size_t idlen = strlen(sections[i]);
        uint32_t dlen = 16 + lxm__rng_below(&r, 400);

        *q++ = 0x04; /* SECTION_FULL */
        lxm__put_be32(q, i + 1);
        q[4] = (uint8_t)idlen;
        memcpy(q + 5, sections[i], idlen);
        q += 5 + idlen;
        lxm__put_be32(q, 0);                             /* instance */
        lxm__put_be32(q + 4, 1 + lxm__rng_below(&r, 3)); /* version */
        q += 8;
        memset(q, 0, dlen);
        lxm__rng_fill(&r, q, dlen / 3);
        q += dlen;
        *q++ = 0x7e; /* SECTION_FOOTER */
        lxm__put_be32(q, i + 1);
        q += 4;
    }
    *q++ = 0x00; /* EOF */
    length = (uint32_t)(q - p);

    return lxm_stream_write_libxl_record(s->w, LXM_LIBXL_EMULATOR_CONTEXT, p,
                                         length);
}

/* ---- entry points ------------------------------------------------ */

int lxm__guest_config_json(const lxm__guest_desc *g, char **json_r)
{
    gctx s;

    gctx_init(&s, NULL, g);
    return make_config(&s, json_r);
}

int lxm__guest_stream_begin(lxm_stream_writer *w, const lxm__guest_desc *g)
{
    gctx s;
    char *json = NULL;
    int rc;

    gctx_init(&s, w, g);

    /* The headers the writer's format begins with. */
    if (lxm__stream_writer_expect(w) == LXM__EXPECT_XL_HEADER) {
        rc = make_config(&s, &json);
        if (rc)
            goto out;
        rc = lxm_stream_write_xl_header(w, json);
        if (rc)
            goto out;
    }
    if (lxm__stream_writer_expect(w) == LXM__EXPECT_LIBXL_HEADER) {
        rc = lxm_stream_write_libxl_header(w);
        if (rc)
            goto out;
    }
    if (lxm__stream_writer_expect(w) == LXM__EXPECT_LIBXL_RECORD) {
        rc = lxm_stream_write_libxl_record(w, LXM_LIBXL_LIBXC_CONTEXT, NULL, 0);
        if (rc)
            goto out;
    }
    rc = lxm_stream_write_libxc_header(w, g->guest_type, GUEST_XEN_MAJOR,
                                       GUEST_XEN_MINOR);
    if (rc)
        goto out;

    rc = write_static_data(&s);
    if (rc)
        goto out;
    if (s.pv) {
        rc = write_p2m_frames(&s);
        if (rc)
            goto out;
    }

out:
    free(json);
    gctx_dispose(&s);
    return rc;
}

int lxm__guest_end_of_checkpoint(lxm_stream_writer *w, const lxm__guest_desc *g,
                                 uint32_t checkpoint)
{
    gctx s;
    int rc;

    gctx_init(&s, w, g);
    rc = write_end_of_checkpoint(&s, checkpoint);
    gctx_dispose(&s);
    return rc;
}

int lxm__guest_emulator_records(lxm_stream_writer *w, const lxm__guest_desc *g,
                                uint32_t checkpoint)
{
    gctx s;
    int rc;

    if (lxm__stream_writer_expect(w) != LXM__EXPECT_LIBXL_RECORD)
        return 0;
    gctx_init(&s, w, g);
    rc = write_emulator_records(&s, checkpoint);
    gctx_dispose(&s);
    return rc;
}

int lxm__guest_stream_end(lxm_stream_writer *w, const lxm__guest_desc *g)
{
    gctx s;
    int rc;

    gctx_init(&s, w, g);
    rc = write_end_of_checkpoint(&s, 0);
    if (rc)
        goto out;
    rc = lxm_stream_write_libxc_record(w, LXM_LIBXC_END, NULL, 0);
    if (rc)
        goto out;
    if (lxm__stream_writer_expect(w) == LXM__EXPECT_LIBXL_RECORD) {
        rc = write_emulator_records(&s, 0);
        if (rc)
            goto out;
        rc = lxm_stream_write_libxl_record(w, LXM_LIBXL_END, NULL, 0);
    }

out:
    gctx_dispose(&s);
    return rc;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
