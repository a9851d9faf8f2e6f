/*
 * libxlmig.h - the one installed header of libxlmig.
 *
 * libxlmig carries a Xen VM's migration stream (xl header + libxl v2 +
 * libxc v3 records) between dom0s and adds evacuation, compression and
 * storage motion on top.  This header is the whole public API; it
 * compiles on its own (see `make headers-check`).
 *
 * Sections:
 *   1. Versioning and feature macros
 *   2. Errors
 *   3. Stream wire constants (record types, page types, guest types)
 *   4. Stream reader: incremental, strict, event driven
 *   5. Stream writer
 *   6. Stream statistics (what `xlmig stream-info` shows)
 *
 * Conventions:
 *   - Functions named as actions return 0 or a negative LXM_ERROR_*;
 *     predicates return bool.
 *   - Ownership is written at each declaration.  Free functions accept
 *     NULL.
 *   - Logging goes to a caller-supplied xentoollog_logger (NULL ok: the
 *     library is then silent).  The library installs no signal handlers
 *     and never exits the process.
 */
#ifndef LIBXLMIG_H
#define LIBXLMIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <xentoollog.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* 1. Versioning and feature macros                                    */
/* ------------------------------------------------------------------ */

/* 0xMMmmpp: major, minor, patch of the API. */
#define LXM_API_VERSION 0x000100

#define LXM_HAVE_STREAM_READER 1
#define LXM_HAVE_STREAM_WRITER 1
#define LXM_HAVE_STREAM_STATS 1

/* The library's version string, e.g. "0.1.0". */
const char *lxm_version(void);

/* ------------------------------------------------------------------ */
/* 2. Errors                                                           */
/* ------------------------------------------------------------------ */

/*
 * Every public action returns 0 or one of these.  The numbering is
 * part of the ABI: new codes are only ever appended.
 */
typedef enum lxm_error {
    LXM_ERROR_NONE = 0,
    LXM_ERROR_FAIL = -1, /* unspecified internal failure */
    LXM_ERROR_NOMEM = -2,
    LXM_ERROR_INVAL = -3,   /* bad argument from the caller */
    LXM_ERROR_IO = -4,      /* read/write failed; see errno in log */
    LXM_ERROR_STATE = -5,   /* call not valid in this state */
    LXM_ERROR_ABORTED = -6, /* a callback asked to stop */

    /* Stream validation (the details are in lxm_stream_error). */
    LXM_ERROR_STREAM_MAGIC = -20,          /* bad magic/marker/ident */
    LXM_ERROR_STREAM_VERSION = -21,        /* unsupported format version */
    LXM_ERROR_STREAM_ENDIAN = -22,         /* byte order we do not accept */
    LXM_ERROR_STREAM_RESERVED = -23,       /* reserved field/flag not zero */
    LXM_ERROR_STREAM_UNKNOWN_RECORD = -24, /* unknown mandatory record */
    LXM_ERROR_STREAM_RECORD = -25,         /* record content/length invalid */
    LXM_ERROR_STREAM_TOO_LONG = -26,       /* record longer than the cap */
    LXM_ERROR_STREAM_PADDING = -27,        /* non-zero padding */
    LXM_ERROR_STREAM_PAGE_TYPE = -28,      /* invalid PAGE_DATA page type */
    LXM_ERROR_STREAM_PAGE_COUNT = -29,     /* PAGE_DATA count 0, > 1024, or
                                          inconsistent with length */
    LXM_ERROR_STREAM_ORDER = -30,          /* record not allowed here */
    LXM_ERROR_STREAM_TRUNCATED = -31,      /* EOF inside the stream */
    LXM_ERROR_STREAM_TRAILING = -32,       /* bytes after the final END */

    /* Hosts, domains, peers. */
    LXM_ERROR_NOTFOUND = -40,    /* no such domain/host/file */
    LXM_ERROR_EXISTS = -41,      /* name already in use */
    LXM_ERROR_NOSPACE = -42,     /* not enough memory/disk on the host */
    LXM_ERROR_UNSUPPORTED = -43, /* not possible with this backend */
    LXM_ERROR_CONNECT = -44,     /* cannot reach the peer/agent */
    LXM_ERROR_PROTOCOL = -45,    /* the peer sent something invalid */
    LXM_ERROR_PEER = -46,        /* the peer reported a failure */
    LXM_ERROR_TIMEOUT = -47,
    LXM_ERROR_REFUSED = -48, /* a pre-check or policy refused */

    /* Codecs (compressed frames and files). */
    LXM_ERROR_CORRUPT = -60, /* checksum mismatch, bad token, frame out
                              * of order, or data that does not decode */
} lxm_error;

/* Static string describing rc (never NULL, also for unknown codes). */
const char *lxm_strerror(int rc);

/* ------------------------------------------------------------------ */
/* 3. Stream wire constants                                            */
/*    Sources: xen docs/specs/libxl-migration-stream.pandoc,           */
/*    libxc-migration-stream.pandoc, tools/xl/xl.h (Xen 4.17).         */
/* ------------------------------------------------------------------ */

/* Where a stream starts, as verify-stream-v2's -f. */
typedef enum lxm_stream_format {
    LXM_FORMAT_XL = 0,    /* xl save header, then libxl v2 */
    LXM_FORMAT_LIBXL = 1, /* LibxlFmt header, records, libxc inside */
    LXM_FORMAT_LIBXC = 2, /* XENF image header, domain header, records */
} lxm_stream_format;

/* The layer a record belongs to. */
typedef enum lxm_stream_layer {
    LXM_LAYER_XL = 0,
    LXM_LAYER_LIBXL = 1,
    LXM_LAYER_LIBXC = 2,
} lxm_stream_layer;

/* xl save header (48 bytes, fields in the saver's byte order). */
#define LXM_XL_MAGIC "Xen saved domain, xl format\n \0 \r"
#define LXM_XL_MAGIC_LEN 32
#define LXM_XL_HEADER_LEN 48
#define LXM_XL_BYTEORDER 0x01020304u
#define LXM_XL_MANDATORY_JSON (1u << 0)
#define LXM_XL_MANDATORY_STREAMV2 (1u << 1)

/* libxl stream v2 records. */
#define LXM_LIBXL_END 0x00000000u
#define LXM_LIBXL_LIBXC_CONTEXT 0x00000001u
#define LXM_LIBXL_EMULATOR_XENSTORE_DATA 0x00000002u
#define LXM_LIBXL_EMULATOR_CONTEXT 0x00000003u
#define LXM_LIBXL_CHECKPOINT_END 0x00000004u
#define LXM_LIBXL_CHECKPOINT_STATE 0x00000005u
#define LXM_LIBXL_NR_TYPES 6u

/* libxc stream v3 records (Xen 4.17). */
#define LXM_LIBXC_END 0x00000000u
#define LXM_LIBXC_PAGE_DATA 0x00000001u
#define LXM_LIBXC_X86_PV_INFO 0x00000002u
#define LXM_LIBXC_X86_PV_P2M_FRAMES 0x00000003u
#define LXM_LIBXC_X86_PV_VCPU_BASIC 0x00000004u
#define LXM_LIBXC_X86_PV_VCPU_EXTENDED 0x00000005u
#define LXM_LIBXC_X86_PV_VCPU_XSAVE 0x00000006u
#define LXM_LIBXC_SHARED_INFO 0x00000007u
#define LXM_LIBXC_X86_TSC_INFO 0x00000008u
#define LXM_LIBXC_HVM_CONTEXT 0x00000009u
#define LXM_LIBXC_HVM_PARAMS 0x0000000au
#define LXM_LIBXC_TOOLSTACK 0x0000000bu
#define LXM_LIBXC_X86_PV_VCPU_MSRS 0x0000000cu
#define LXM_LIBXC_VERIFY 0x0000000du
#define LXM_LIBXC_CHECKPOINT 0x0000000eu
#define LXM_LIBXC_CHECKPOINT_DIRTY_PFN_LIST 0x0000000fu
#define LXM_LIBXC_STATIC_DATA_END 0x00000010u
#define LXM_LIBXC_X86_CPUID_POLICY 0x00000011u
#define LXM_LIBXC_X86_MSR_POLICY 0x00000012u
#define LXM_LIBXC_NR_TYPES 0x13u

/* Records with this bit set may be skipped by a receiver. */
#define LXM_RECORD_OPTIONAL 0x80000000u

/* libxc caps: record body length, pages per PAGE_DATA record. */
#define LXM_RECORD_LENGTH_MAX (128u << 20)
#define LXM_PAGE_DATA_MAX_PAGES 1024u
#define LXM_PAGE_SIZE 4096u

/* libxc domain header guest types. */
#define LXM_GUEST_X86_PV 1u
#define LXM_GUEST_X86_HVM 2u /* also PVH: libxc saves PVH as HVM */

/* PAGE_DATA pfn word: type in bits 63-60, pfn in 51-0. */
#define LXM_PFN_MASK ((UINT64_C(1) << 52) - 1)
#define LXM_PFN_TYPE_SHIFT 60
#define LXM_PFN_WORD(pfn, type)                                                \
    (((uint64_t)(type) << LXM_PFN_TYPE_SHIFT) | ((pfn)&LXM_PFN_MASK))

/* XEN_DOMCTL_PFINFO_* page types (shifted down to 0..15). */
#define LXM_PAGE_NOTAB 0x0u
#define LXM_PAGE_L1TAB 0x1u
#define LXM_PAGE_L2TAB 0x2u
#define LXM_PAGE_L3TAB 0x3u
#define LXM_PAGE_L4TAB 0x4u
#define LXM_PAGE_L1TAB_PIN 0x9u
#define LXM_PAGE_L2TAB_PIN 0xau
#define LXM_PAGE_L3TAB_PIN 0xbu
#define LXM_PAGE_L4TAB_PIN 0xcu
#define LXM_PAGE_BROKEN 0xdu
#define LXM_PAGE_XALLOC 0xeu
#define LXM_PAGE_XTAB 0xfu
#define LXM_PAGE_NR_TYPES 16u

/* True for page types 0x5-0x8 and any other value Xen rejects. */
bool lxm_page_type_is_valid(unsigned int type);
/* True when a page of this type carries 4096 bytes of data. */
bool lxm_page_type_has_data(unsigned int type);

/* Names for printing: "PAGE_DATA", "LIBXC_CONTEXT", "L1TAB_PIN".
 * Static strings; unknown values give "UNKNOWN". */
const char *lxm_record_type_name(lxm_stream_layer layer, uint32_t type);
const char *lxm_page_type_name(unsigned int type);
const char *lxm_layer_name(lxm_stream_layer layer);
const char *lxm_guest_type_name(uint32_t guest_type);

/* ------------------------------------------------------------------ */
/* 4. Stream reader                                                    */
/* ------------------------------------------------------------------ */

/*
 * The reader is incremental: feed it bytes in chunks of any size (one
 * byte at a time gives the same events as the whole stream at once).
 * It validates as strictly as Xen 4.17's restore path and emits events
 * carrying stream offsets.  It never buffers page contents unless a
 * page straddles two chunks (then one 4 KiB staging copy), and it never
 * allocates for a length before checking it against the caps above.
 *
 * Checkpointed (Remus/COLO) streams are followed across layers: a libxc
 * CHECKPOINT hands the stream back to libxl, whose CHECKPOINT_END hands
 * it back to libxc (no new headers), as libxl_stream_read.c does.
 */

typedef enum lxm_stream_event_kind {
    LXM_EV_XL_HEADER = 0, /* u.xl */
    LXM_EV_LIBXL_HEADER,  /* u.libxl_header */
    LXM_EV_LIBXC_HEADER,  /* u.libxc_header: image + domain header */
    LXM_EV_RECORD,        /* u.record: header and fixed part parsed */
    LXM_EV_RECORD_BODY,   /* u.body: whole body (LXM_READER_BODIES) */
    LXM_EV_PAGE,          /* u.page: one page (LXM_READER_PAGES) */
    LXM_EV_RECORD_END,    /* u.record: body and padding validated */
    LXM_EV_STREAM_END,    /* the outermost END record is complete */
} lxm_stream_event_kind;

typedef struct lxm_stream_event {
    lxm_stream_event_kind kind;
    lxm_stream_layer layer;
    /* Stream offset of what the event describes: the header, the record
     * header, or (LXM_EV_PAGE) the first byte of the page's data. */
    uint64_t offset;
    union {
        struct {
            uint32_t mandatory_flags;
            uint32_t optional_flags;
            uint32_t optional_data_len;
            /* The domain config (JSON when LXM_XL_MANDATORY_JSON), NUL
             * terminated by the saver; borrowed, valid during the
             * callback only.  NULL when the saver wrote none. */
            const char *config;
            uint32_t config_len; /* including the NUL */
        } xl;
        struct {
            uint32_t version;
            uint32_t options;
        } libxl_header;
        struct {
            uint32_t version; /* image header: 2 or 3 */
            uint16_t options;
            uint32_t guest_type; /* LXM_GUEST_* */
            uint16_t page_shift;
            uint16_t xen_major;
            uint16_t xen_minor;
        } libxc_header;
        struct {
            uint32_t type;
            uint32_t length; /* body length, without padding */
            /* PAGE_DATA only: the pfn words (borrowed, valid until the
             * record's LXM_EV_RECORD_END), their count, and how many
             * of them carry data. */
            const uint64_t *pfns;
            uint32_t count;
            uint32_t nr_data_pages;
            /* 0 for the first libxc segment; +1 after each libxc
             * CHECKPOINT (Remus/COLO). */
            uint32_t checkpoint;
        } record;
        struct {
            uint32_t type;
            const void *data; /* borrowed, valid in callback */
            uint32_t length;
        } body;
        struct {
            uint64_t pfn;
            uint32_t page_type; /* LXM_PAGE_* */
            uint32_t index;     /* index in the record's pfns */
            const void *data;   /* 4096 bytes, borrowed */
        } page;
    } u;
} lxm_stream_event;

/*
 * Called for each event, on the thread that called feed/finish.  Return
 * 0 to go on; any other value stops the reader, which then returns that
 * value from lxm_stream_reader_feed() (use a negative LXM_ERROR_*).
 */
typedef int lxm_stream_event_fn(void *opaque, const lxm_stream_event *ev);

/* Reader flags. */
#define LXM_READER_BODIES                                                      \
    0x1u                      /* deliver whole bodies of non-PAGE_DATA
                                 * records (buffered, ≤ the length cap) */
#define LXM_READER_PAGES 0x2u /* deliver LXM_EV_PAGE for each data page */
#define LXM_READER_STOP_AT_END                                                 \
    0x4u /* stop consuming at the final END
                                 * instead of failing on trailing bytes:
                                 * on a migration socket, what follows
                                 * belongs to the migration protocol */
#define LXM_READER_BACKCHANNEL                                                 \
    0x8u /* a COLO back channel: accept
                                 * CHECKPOINT_STATE and
                                 * CHECKPOINT_DIRTY_PFN_LIST */

typedef struct lxm_stream_reader_opts {
    lxm_stream_format format;
    unsigned int flags;            /* LXM_READER_* */
    lxm_stream_event_fn *callback; /* NULL ok: validate only */
    void *opaque;                  /* passed to callback */
    xentoollog_logger *logger;     /* NULL ok; borrowed, must
                                         * outlive the reader */
    const char *name;              /* for messages, e.g. a file
                                         * name; NULL ok; copied */
} lxm_stream_reader_opts;

/* What went wrong, for the first error the reader hit. */
typedef struct lxm_stream_error {
    int rc;          /* LXM_ERROR_*; 0 if no error */
    uint64_t offset; /* stream offset of the offending field */
    lxm_stream_layer layer;
    bool in_record; /* record_type below is meaningful */
    uint32_t record_type;
    char message[256]; /* one line, no trailing newline */
} lxm_stream_error;

typedef struct lxm_stream_reader lxm_stream_reader;

/* *reader_r: caller must lxm_stream_reader_free(). */
int lxm_stream_reader_new(const lxm_stream_reader_opts *opts,
                          lxm_stream_reader **reader_r);
void lxm_stream_reader_free(lxm_stream_reader *reader);

/*
 * Feed len bytes.  *consumed_r (NULL ok) is set to how many were taken:
 * all of them, unless the stream ended with LXM_READER_STOP_AT_END set
 * or an error occurred.  After an error every later call returns the
 * same error.
 */
int lxm_stream_reader_feed(lxm_stream_reader *reader, const void *buf,
                           size_t len, size_t *consumed_r);
/* End of input: LXM_ERROR_STREAM_TRUNCATED unless the stream is done. */
int lxm_stream_reader_finish(lxm_stream_reader *reader);
/* Read fd to EOF (or to the end of the stream with STOP_AT_END), feeding
 * the reader, then finish.  The fd stays open. */
int lxm_stream_reader_read_fd(lxm_stream_reader *reader, int fd);

bool lxm_stream_reader_done(const lxm_stream_reader *reader);
uint64_t lxm_stream_reader_offset(const lxm_stream_reader *reader);
/* Borrowed; valid until the reader is freed. */
const lxm_stream_error *
lxm_stream_reader_error(const lxm_stream_reader *reader);

/*
 * Format an error as one line: "NAME: offset 1234: libxc PAGE_DATA:
 * count 2000 exceeds 1024".  Writes at most len bytes (NUL included).
 */
void lxm_stream_error_format(const lxm_stream_error *err, const char *name,
                             char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* 5. Stream writer                                                    */
/* ------------------------------------------------------------------ */

/*
 * The writer produces streams that Xen's verify-stream-v2 and libxl
 * accept: it runs the same grammar and record checks as the reader
 * before a byte leaves, and refuses (LXM_ERROR_INVAL/STATE) anything
 * the reader would reject.  Padding is added for you.
 *
 * Typical sequence (format LXM_FORMAT_XL):
 *   lxm_stream_write_xl_header(w, json)
 *   lxm_stream_write_libxl_header(w)
 *   lxm_stream_write_libxl_record(w, LXM_LIBXL_LIBXC_CONTEXT, NULL, 0)
 *   lxm_stream_write_libxc_header(w, LXM_GUEST_X86_HVM, 4, 17)
 *   lxm_stream_write_libxc_record(w, LXM_LIBXC_X86_CPUID_POLICY, ...)
 *   ... STATIC_DATA_END, lxm_stream_write_page_data() ..., END
 *   lxm_stream_write_libxl_record(w, LXM_LIBXL_END, NULL, 0)
 */

/* Write all of iov or fail (negative LXM_ERROR_*). */
typedef int lxm_sink_write_fn(void *opaque, const struct iovec *iov,
                              int iovcnt);

typedef struct lxm_stream_writer lxm_stream_writer;

/* *writer_r: caller must lxm_stream_writer_free(). sink/opaque are
 * borrowed.  logger: NULL ok, borrowed. */
int lxm_stream_writer_new(lxm_stream_format format, lxm_sink_write_fn *sink,
                          void *opaque, xentoollog_logger *logger,
                          lxm_stream_writer **writer_r);
/* Convenience: a sink writing to fd (borrowed, not closed). */
int lxm_stream_writer_new_fd(lxm_stream_format format, int fd,
                             xentoollog_logger *logger,
                             lxm_stream_writer **writer_r);
void lxm_stream_writer_free(lxm_stream_writer *writer);

/* json_config: NUL-terminated domain config JSON, or NULL for none. */
int lxm_stream_write_xl_header(lxm_stream_writer *writer,
                               const char *json_config);
int lxm_stream_write_libxl_header(lxm_stream_writer *writer);
int lxm_stream_write_libxl_record(lxm_stream_writer *writer, uint32_t type,
                                  const void *body, uint32_t length);
int lxm_stream_write_libxc_header(lxm_stream_writer *writer,
                                  uint32_t guest_type, uint16_t xen_major,
                                  uint16_t xen_minor);
/* Any libxc record but PAGE_DATA. */
int lxm_stream_write_libxc_record(lxm_stream_writer *writer, uint32_t type,
                                  const void *body, uint32_t length);
/*
 * One PAGE_DATA record: count pfn words (LXM_PFN_WORD), and one 4096-byte
 * page per pfn whose type carries data, in order.  pages[] are borrowed
 * and written without copying.
 */
int lxm_stream_write_page_data(lxm_stream_writer *writer, uint32_t count,
                               const uint64_t *pfn_words,
                               const void *const *pages);
/* Append raw bytes already in wire format (e.g. forwarding).  The
 * grammar is not re-checked: callers must have validated them. */
int lxm_stream_write_raw(lxm_stream_writer *writer, const void *buf,
                         size_t len);

bool lxm_stream_writer_done(const lxm_stream_writer *writer);
uint64_t lxm_stream_writer_offset(const lxm_stream_writer *writer);

/* ------------------------------------------------------------------ */
/* 6. Stream statistics                                                */
/* ------------------------------------------------------------------ */

/*
 * Everything `xlmig stream-info` reports, gathered by a reader
 * callback.  Pre-copy iterations are inferred: libxc sends the pfns of
 * one iteration in ascending order, so an iteration ends where a pfn is
 * not greater than the one before it.
 */
typedef struct lxm_stream_stats lxm_stream_stats;

/* *stats_r: caller must lxm_stream_stats_free(). */
int lxm_stream_stats_new(lxm_stream_stats **stats_r);
void lxm_stream_stats_free(lxm_stream_stats *stats);
/* Pass as the reader's callback with the stats as opaque (set
 * LXM_READER_PAGES to count zero pages). */
int lxm_stream_stats_event(void *stats, const lxm_stream_event *ev);

typedef struct lxm_stream_summary {
    uint64_t bytes; /* stream bytes consumed */
    bool have_xl_header;
    uint32_t xl_mandatory_flags;
    uint32_t xl_optional_flags;
    uint32_t xl_config_len;
    char domain_name[64]; /* from the JSON config, or "" */
    char domain_type[16]; /* "pv", "pvh", "hvm" or "" */
    uint32_t libxc_version;
    uint32_t guest_type; /* LXM_GUEST_*, 0 if none */
    uint16_t xen_major, xen_minor;
    uint64_t libxl_records[LXM_LIBXL_NR_TYPES];
    uint64_t libxc_records[LXM_LIBXC_NR_TYPES];
    uint64_t optional_records; /* records with LXM_RECORD_OPTIONAL */
    uint64_t record_bytes[3];  /* per layer: headers+bodies+padding */
    uint64_t pages_by_type[LXM_PAGE_NR_TYPES];
    uint64_t data_pages;      /* pages with 4 KiB of data */
    uint64_t page_data_bytes; /* 4096 * data_pages */
    uint64_t zero_pages;      /* data pages that are all zero */
    uint64_t distinct_pfns;
    uint64_t resent_pages; /* data pages whose pfn came before */
    uint64_t max_pfn;
    uint32_t checkpoints; /* libxc CHECKPOINT records */
    uint32_t nr_iterations;
} lxm_stream_summary;

/* Copies the totals so far into *summary_r. */
void lxm_stream_stats_summary(const lxm_stream_stats *stats,
                              lxm_stream_summary *summary_r);
/* Pages (with and without data) in iteration i < nr_iterations. */
uint64_t lxm_stream_stats_iteration_pages(const lxm_stream_stats *stats,
                                          uint32_t i);

#ifdef __cplusplus
}
#endif

#endif /* LIBXLMIG_H */

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
