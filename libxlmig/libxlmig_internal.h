/*
 * libxlmig_internal.h - declarations shared between libxlmig's source
 * files.  Never installed.  Public API: include/libxlmig.h.
 *
 * Sections:
 *   1. Compiler helpers, byte order
 *   2. Logging (xentoollog) and check results
 *   3. Stream records: per-type tables and content checks (records.c)
 *   4. Stream grammar: which header/record may come next (grammar.c)
 *   5. Synthetic guest streams (synth.c)
 *   6. Guest stream records shared by synth and the sim (guest.c)
 */
#ifndef LIBXLMIG_INTERNAL_H
#define LIBXLMIG_INTERNAL_H

#include <endian.h>
#include <stdarg.h>
#include <string.h>

#include "libxlmig.h"
#include "stream/sr_format.h"

/* ------------------------------------------------------------------ */
/* 1. Compiler helpers, byte order                                     */
/* ------------------------------------------------------------------ */

#define _hidden __attribute__((visibility("hidden")))
#define LXM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define LXM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define LXM_ROUNDUP8(x) (((x) + 7u) & ~(uint64_t)7u)
#define LXM_MIN(a, b) ((a) < (b) ? (a) : (b))

/* Unaligned little-endian/big-endian loads and stores. */
static inline uint16_t lxm__le16(const void *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return le16toh(v);
}
static inline uint32_t lxm__le32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}
static inline uint64_t lxm__le64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}
static inline uint16_t lxm__be16(const void *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return be16toh(v);
}
static inline uint32_t lxm__be32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return be32toh(v);
}
static inline uint64_t lxm__be64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return be64toh(v);
}
static inline void lxm__put_le32(void *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof(v));
}
static inline void lxm__put_le64(void *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof(v));
}
static inline void lxm__put_be16(void *p, uint16_t v)
{
    v = htobe16(v);
    memcpy(p, &v, sizeof(v));
}
static inline void lxm__put_be32(void *p, uint32_t v)
{
    v = htobe32(v);
    memcpy(p, &v, sizeof(v));
}
static inline void lxm__put_be64(void *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, sizeof(v));
}

/* ------------------------------------------------------------------ */
/* 2. Logging and check results                                        */
/* ------------------------------------------------------------------ */

/* xtl_log() when lg is non-NULL.  errnoval: -1 for none. */
_hidden void lxm__log(xentoollog_logger *lg, xentoollog_level level,
                      int errnoval, const char *fmt, ...) LXM_PRINTF(4, 5);
#define LXM_LOG_ERROR(lg, ...) lxm__log((lg), XTL_ERROR, -1, __VA_ARGS__)
#define LXM_LOG_ERRNO(lg, ...) lxm__log((lg), XTL_ERROR, errno, __VA_ARGS__)
#define LXM_LOG_DEBUG(lg, ...) lxm__log((lg), XTL_DEBUG, -1, __VA_ARGS__)

/*
 * The result of a record/grammar check: which rule failed and where.
 * 'at' is relative to the start of what was checked (the record header
 * for record checks); the caller adds the stream offset.
 */
typedef struct lxm__check {
    int rc;
    uint32_t at;
    char msg[200];
} lxm__check;

/*
 * A size as users type it: decimal digits with an optional K, M or G
 * suffix (powers of 1024, either case).  false on anything else or on
 * overflow (parse.c).
 */
_hidden bool lxm__parse_size(const char *s, uint64_t *bytes_r);

/* Fill *c and return rc (a negative LXM_ERROR_STREAM_*). */
_hidden int lxm__check_fail(lxm__check *c, int rc, uint32_t at, const char *fmt,
                            ...) LXM_PRINTF(4, 5);

/* ------------------------------------------------------------------ */
/* 3. Stream records (records.c)                                       */
/* ------------------------------------------------------------------ */

/*
 * How many leading bytes of a record body the content check needs
 * (the "head"): fixed fields, sub-headers.  For PAGE_DATA this is the
 * 8-byte sub-header only; the pfn words follow (see below).  Never more
 * than LXM__RECORD_HEAD_MAX.
 */
#define LXM__RECORD_HEAD_MAX 32u
_hidden uint32_t lxm__record_head_len(lxm_stream_layer layer, uint32_t type,
                                      uint32_t length);

/*
 * Check a record from its header fields and its head (the first
 * min(length, lxm__record_head_len()) bytes of body).  Covers: unknown
 * mandatory types, deprecated types, length cap, lengths fixed by type,
 * reserved fields, value ranges.  libxc_version gates v3-only records.
 * Offsets in *c are relative to the record header.
 */
_hidden int lxm__record_check(lxm_stream_layer layer, uint32_t type,
                              uint32_t length, const uint8_t *head,
                              uint32_t libxc_version, lxm__check *c);

/*
 * PAGE_DATA: given the sub-header's count and the record length, check
 * the count (1..1024, room for the pfn words).  Then, once the pfn words
 * are in, check every word's reserved bits and type and that length is
 * exactly 8 + 8*count + 4096*(pages with data).  *nr_data_r: pages with
 * data.  Offsets relative to the record header.
 */
_hidden int lxm__page_data_check_count(uint32_t count, uint32_t length,
                                       lxm__check *c);
_hidden int lxm__page_data_check_pfns(uint32_t count, uint32_t length,
                                      const uint64_t *pfn_words,
                                      uint32_t *nr_data_r, lxm__check *c);

/*
 * Incremental body checks that need every byte (only a few records):
 * EMULATOR_XENSTORE_DATA must be NUL terminated with an even number of
 * strings.  Feed body bytes after the head in order, then finish.
 */
typedef struct lxm__body_check {
    lxm_stream_layer layer;
    uint32_t type;
    uint32_t seen; /* body bytes fed, head included */
    uint64_t nuls;
    uint8_t last;
} lxm__body_check;
_hidden void lxm__body_check_init(lxm__body_check *b, lxm_stream_layer layer,
                                  uint32_t type);
_hidden bool lxm__body_check_wanted(lxm_stream_layer layer, uint32_t type);
_hidden void lxm__body_check_feed(lxm__body_check *b, const uint8_t *p,
                                  size_t len);
_hidden int lxm__body_check_finish(lxm__body_check *b, uint32_t length,
                                   lxm__check *c);

/* ------------------------------------------------------------------ */
/* 4. Stream grammar (grammar.c)                                       */
/* ------------------------------------------------------------------ */

/* What the stream expects next. */
typedef enum lxm__expect {
    LXM__EXPECT_XL_HEADER,
    LXM__EXPECT_LIBXL_HEADER,
    LXM__EXPECT_LIBXC_HEADER, /* image header + domain header */
    LXM__EXPECT_LIBXL_RECORD,
    LXM__EXPECT_LIBXC_RECORD,
    LXM__EXPECT_NOTHING, /* stream complete */
} lxm__expect;

/*
 * The layered state machine shared by the reader and the writer, after
 * libxl_stream_read.c and xg_sr_restore.c.  All fields are read-only
 * outside grammar.c.
 */
typedef struct lxm__grammar {
    lxm_stream_format format;
    unsigned int flags; /* LXM_READER_BACKCHANNEL matters */
    lxm__expect expect;
    /* libxl layer */
    bool seen_libxc_context;
    bool libxc_done;    /* libxc END seen */
    bool in_checkpoint; /* libxc CHECKPOINT until CHECKPOINT_END */
    /* libxc layer */
    uint32_t libxc_version;
    uint32_t guest_type;
    bool seen_static_data_end;
    bool seen_pv_info;
    bool seen_p2m_frames;
    bool seen_page_data;
    bool seen_hvm_context; /* END needs one for HVM */
    uint32_t checkpoint;   /* number of libxc CHECKPOINTs so far */
} lxm__grammar;

_hidden void lxm__grammar_init(lxm__grammar *g, lxm_stream_format format,
                               unsigned int flags);
/* The headers, once parsed and checked by the caller. */
_hidden void lxm__grammar_xl_header(lxm__grammar *g);
_hidden void lxm__grammar_libxl_header(lxm__grammar *g);
_hidden void lxm__grammar_libxc_header(lxm__grammar *g, uint32_t version,
                                       uint32_t guest_type);
/*
 * A record header of the expected layer arrived: is this type allowed
 * here?  On success the state advances as if the record were complete
 * (every layer-switching record has an empty body).  Offsets in *c are
 * relative to the record header.
 */
_hidden int lxm__grammar_record(lxm__grammar *g, uint32_t type, lxm__check *c);
_hidden lxm_stream_layer lxm__grammar_layer(const lxm__grammar *g);

/* ------------------------------------------------------------------ */
/* 5. Synthetic guest streams (synth.c)                                */
/* ------------------------------------------------------------------ */

/*
 * Writes a complete, genuine-format stream for a made-up x86 guest:
 * memory with a mix of zero, code-like, text-like and random pages,
 * 'rounds' pre-copy iterations re-sending a shrinking dirty set, then
 * the stop-and-copy round and the guest-type records Xen 4.17 writes.
 * Deterministic for a given seed.  Used by `xlmig stream-synth`, the
 * tests and the benchmarks; the sim backend builds on it later.
 */
typedef struct lxm__synth_opts {
    uint32_t guest_type;   /* LXM_GUEST_X86_PV or _HVM */
    bool pvh;              /* HVM only: config says "pvh" */
    uint64_t memory_bytes; /* multiple of 4096 */
    uint32_t rounds;       /* pre-copy rounds after the first */
    uint32_t vcpus;
    uint64_t seed;
    const char *name;  /* domain name for the JSON config */
    bool checkpointed; /* Remus-style: 2 checkpoints, then END */
} lxm__synth_opts;

_hidden int lxm__synth_write(lxm_stream_writer *w, const lxm__synth_opts *o);

/* writer.c, for synth.c: what the writer's stream expects next (synth
 * starts at whatever header the writer's format begins with and knows
 * whether a libxl layer wraps the libxc one). */
_hidden lxm__expect lxm__stream_writer_expect(const lxm_stream_writer *w);

/* ------------------------------------------------------------------ */
/* 6. Guest streams shared by synth.c and the sim backend (guest.c)    */
/*    (added for issue 3)                                              */
/* ------------------------------------------------------------------ */

/*
 * A deterministic PRNG: splitmix64 seeds xoshiro256**.  Inline because
 * the page fillers draw from it for every few bytes.
 */
typedef struct lxm__rng {
    uint64_t s[4];
} lxm__rng;

static inline uint64_t lxm__splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* A well-mixed 64-bit value of up to three inputs. */
static inline uint64_t lxm__hash3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t x = a;

    x = lxm__splitmix64(&x) ^ b;
    x = lxm__splitmix64(&x) ^ c;
    return lxm__splitmix64(&x);
}

static inline void lxm__rng_seed(lxm__rng *r, uint64_t seed)
{
    unsigned int i;

    for (i = 0; i < 4; i++)
        r->s[i] = lxm__splitmix64(&seed);
}

static inline uint64_t lxm__rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t lxm__rng_next(lxm__rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = lxm__rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lxm__rotl64(s[3], 45);
    return result;
}

/* Uniform-enough value in [0, n), n > 0. */
static inline uint32_t lxm__rng_below(lxm__rng *r, uint32_t n)
{
    return (uint32_t)(((lxm__rng_next(r) >> 32) * n) >> 32);
}

_hidden void lxm__rng_fill(lxm__rng *r, uint8_t *p, size_t len);

/* Fill one 4096-byte page with instruction-like bytes or with
 * English-like text, drawing from r; lxm__fill_text() fills len bytes
 * (a page's worth draws the same text as lxm__fill_text_page()). */
_hidden void lxm__fill_code_page(lxm__rng *r, uint8_t *page);
_hidden void lxm__fill_text_page(lxm__rng *r, uint8_t *page);
_hidden void lxm__fill_text(lxm__rng *r, uint8_t *p, size_t len);

/* HVM "special" pages (xenstore, console, ioreq, ...): where libxl's
 * HVM/PVH layout puts them, just below 4 GiB (or above small RAM). */
#define LXM__GUEST_SPECIAL_PAGES 8u
static inline uint64_t lxm__guest_special_base(uint64_t npages)
{
    return npages + LXM__GUEST_SPECIAL_PAGES <= UINT64_C(0xfeff8)
               ? UINT64_C(0xfeff8)
               : npages + 0x100;
}

/*
 * The guest a stream describes: everything but its memory.  Used to
 * write the records before and after the pages, exactly as Xen 4.17
 * orders them:
 *
 *   lxm__guest_stream_begin: [xl header + JSON config] [libxl header,
 *     LIBXC_CONTEXT] (whatever the writer's format starts with), libxc
 *     headers, X86_PV_INFO (PV), X86_CPUID_POLICY, X86_MSR_POLICY,
 *     STATIC_DATA_END, X86_PV_P2M_FRAMES (PV)
 *   ... the caller's PAGE_DATA records ...
 *   lxm__guest_stream_end: end of checkpoint (X86_TSC_INFO, then
 *     HVM_CONTEXT + HVM_PARAMS or SHARED_INFO + per-vcpu PV records),
 *     libxc END, emulator records (HVM), libxl END
 *
 * Checkpointed streams use the pieces: lxm__guest_end_of_checkpoint()
 * and lxm__guest_emulator_records().  Record contents are made up but
 * plausible, and derive from 'seed' only.
 */
typedef struct lxm__guest_desc {
    uint32_t guest_type;   /* LXM_GUEST_X86_PV or _HVM */
    bool pvh;              /* HVM only: the config says "pvh" */
    uint64_t memory_bytes; /* multiple of 4096, non-zero */
    uint64_t nr_pfns;      /* PV: p2m size, >= memory pages; 0 = pages */
    uint32_t vcpus;        /* 0 = 1 */
    uint64_t seed;         /* vcpu/device state; uuid when none given */
    const char *name;      /* NULL = "synth" */
    const char *uuid;      /* NULL = derived from seed */
} lxm__guest_desc;

/* The libxl_domain_config JSON the xl header carries.  *json_r: caller
 * frees. */
_hidden int lxm__guest_config_json(const lxm__guest_desc *g, char **json_r);
_hidden int lxm__guest_stream_begin(lxm_stream_writer *w,
                                    const lxm__guest_desc *g);
_hidden int lxm__guest_end_of_checkpoint(lxm_stream_writer *w,
                                         const lxm__guest_desc *g,
                                         uint32_t checkpoint);
/* No-op unless an HVM guest with an emulator and a libxl layer. */
_hidden int lxm__guest_emulator_records(lxm_stream_writer *w,
                                        const lxm__guest_desc *g,
                                        uint32_t checkpoint);
_hidden int lxm__guest_stream_end(lxm_stream_writer *w,
                                  const lxm__guest_desc *g);

/* ---- core/io.c: file-descriptor helpers (added for the dedupe) ---- */

/*
 * Write all len bytes of buf to fd (blocking), retrying EINTR and
 * partial writes.  Returns 0, or -errno of the failed write() (errno is
 * left set too).
 */
_hidden int lxm__write_all(int fd, const void *buf, size_t len);

#endif /* LIBXLMIG_INTERNAL_H */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
