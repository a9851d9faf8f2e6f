/*
 * xlmig_stream.c - the stream commands of xlmig.
 *
 *   stream-info   read a stream with the strict reader, through
 *                 lxm_stream_stats_event, and print the summary (text,
 *                 or one JSON object with --json)
 *   stream-synth  write a synthetic stream (lxm__synth_write)
 *
 * stream-info with --json prints nothing on stdout when the stream is
 * invalid: the one error line goes to stderr and the exit status is 1,
 * exactly as without --json (docs/man/xlmig.1).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "libxlmig_internal.h"
#include "xlmig.h"

#define READ_CHUNK (1u << 20)

/* ---- Argument parsing ---- */

static bool parse_format(const char *s, lxm_stream_format *fmt_r)
{
    if (!strcmp(s, "xl"))
        *fmt_r = LXM_FORMAT_XL;
    else if (!strcmp(s, "libxl"))
        *fmt_r = LXM_FORMAT_LIBXL;
    else if (!strcmp(s, "libxc"))
        *fmt_r = LXM_FORMAT_LIBXC;
    else
        return false;
    return true;
}

/* A decimal number without sign, at most max. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *val_r)
{
    unsigned long long v;
    char *end;

    if (!*s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *val_r = v;
    return true;
}

static const char *format_name(lxm_stream_format fmt)
{
    switch (fmt) {
    case LXM_FORMAT_XL:
        return "xl";
    case LXM_FORMAT_LIBXL:
        return "libxl";
    case LXM_FORMAT_LIBXC:
        return "libxc";
    }
    return "?";
}

/* ---- stream-info ---- */

typedef struct info_state {
    lxm_stream_stats *stats; /* owned by main_stream_info */
    bool list;               /* --records */
    uint64_t squashed;       /* PAGE_DATA run being counted */
    uint64_t squash_offset;
} info_state;

static void list_flush_squashed(info_state *is)
{
    if (!is->squashed)
        return;
    printf("%12" PRIu64 "  libxc  %" PRIu64 " PAGE_DATA record%s\n",
           is->squash_offset, is->squashed, is->squashed == 1 ? "" : "s");
    is->squashed = 0;
}

/* The --records listing, condensed like verify-stream-v2 -v. */
static void list_event(info_state *is, const lxm_stream_event *ev)
{
    uint32_t type;

    switch (ev->kind) {
    case LXM_EV_XL_HEADER:
        printf("%12" PRIu64 "  xl     header: mandatory 0x%x, optional 0x%x,"
               " config %" PRIu32 " bytes\n",
               ev->offset, ev->u.xl.mandatory_flags, ev->u.xl.optional_flags,
               ev->u.xl.config_len);
        break;
    case LXM_EV_LIBXL_HEADER:
        printf("%12" PRIu64 "  libxl  header: version %" PRIu32
               ", options 0x%" PRIx32 "\n",
               ev->offset, ev->u.libxl_header.version,
               ev->u.libxl_header.options);
        break;
    case LXM_EV_LIBXC_HEADER:
        printf("%12" PRIu64 "  libxc  header: version %" PRIu32 ", %s,"
               " Xen %u.%u\n",
               ev->offset, ev->u.libxc_header.version,
               lxm_guest_type_name(ev->u.libxc_header.guest_type),
               ev->u.libxc_header.xen_major, ev->u.libxc_header.xen_minor);
        break;
    case LXM_EV_RECORD:
        type = ev->u.record.type;
        if (ev->layer == LXM_LAYER_LIBXC && type == LXM_LIBXC_PAGE_DATA) {
            if (!is->squashed++)
                is->squash_offset = ev->offset;
            break;
        }
        list_flush_squashed(is);
        printf("%12" PRIu64 "  %-5s  %s%s, length %" PRIu32 "\n", ev->offset,
               lxm_layer_name(ev->layer),
               lxm_record_type_name(ev->layer, type & ~LXM_RECORD_OPTIONAL),
               type & LXM_RECORD_OPTIONAL ? " (optional)" : "",
               ev->u.record.length);
        break;
    default:
        break;
    }
}

static int info_event(void *opaque, const lxm_stream_event *ev)
{
    info_state *is = opaque;

    if (is->list)
        list_event(is, ev);
    return lxm_stream_stats_event(is->stats, ev);
}

/* "pv", "pvh", "hvm" or NULL when there was no libxc header. */
static const char *guest_kind(const lxm_stream_summary *s)
{
    switch (s->guest_type) {
    case LXM_GUEST_X86_PV:
        return "pv";
    case LXM_GUEST_X86_HVM:
        return strcmp(s->domain_type, "pvh") ? "hvm" : "pvh";
    default:
        return NULL;
    }
}

static double percent(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static double mib(uint64_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

static void print_summary(const char *name, const lxm_stream_stats *stats,
                          const lxm_stream_summary *s, bool trailing,
                          uint64_t trailing_bytes)
{
    const char *kind = guest_kind(s);
    unsigned int layer;
    uint32_t t, i;

    printf("file:            %s\n", name);
    if (kind) {
        printf("guest type:      %s (libxc %s)\n",
               !strcmp(kind, "pv")    ? "PV"
               : !strcmp(kind, "pvh") ? "PVH"
                                      : "HVM",
               lxm_guest_type_name(s->guest_type));
        printf("xen version:     %u.%u\n", s->xen_major, s->xen_minor);
        printf("libxc version:   %" PRIu32 "\n", s->libxc_version);
    }
    if (s->have_xl_header)
        printf("domain name:     %s\n"
               "xl header:       mandatory 0x%" PRIx32 ", optional 0x%" PRIx32
               ", config %" PRIu32 " bytes\n",
               s->domain_name[0] ? s->domain_name : "(none)",
               s->xl_mandatory_flags, s->xl_optional_flags, s->xl_config_len);
    printf("bytes:           %" PRIu64 " (%.1f MiB)\n", s->bytes,
           mib(s->bytes));
    for (layer = 0; layer < LXM_ARRAY_SIZE(s->record_bytes); layer++) {
        if (s->record_bytes[layer])
            printf("  %-5s          %" PRIu64 "\n",
                   lxm_layer_name((lxm_stream_layer)layer),
                   s->record_bytes[layer]);
    }
    if (trailing)
        printf("trailing bytes:  %" PRIu64 "\n", trailing_bytes);

    printf("records:\n");
    for (t = 0; t < LXM_LIBXL_NR_TYPES; t++) {
        if (s->libxl_records[t])
            printf("  libxl  %-28s %10" PRIu64 "\n",
                   lxm_record_type_name(LXM_LAYER_LIBXL, t),
                   s->libxl_records[t]);
    }
    for (t = 0; t < LXM_LIBXC_NR_TYPES; t++) {
        if (s->libxc_records[t])
            printf("  libxc  %-28s %10" PRIu64 "\n",
                   lxm_record_type_name(LXM_LAYER_LIBXC, t),
                   s->libxc_records[t]);
    }
    if (s->optional_records)
        printf("  %-35s %10" PRIu64 "\n", "optional (skipped)",
               s->optional_records);

    printf("pages by type:\n");
    for (t = 0; t < LXM_PAGE_NR_TYPES; t++) {
        if (s->pages_by_type[t])
            printf("  %-35s %10" PRIu64 "\n", lxm_page_type_name(t),
                   s->pages_by_type[t]);
    }
    printf("data pages:      %" PRIu64 " (%.1f MiB)\n", s->data_pages,
           mib(s->page_data_bytes));
    printf("zero pages:      %" PRIu64 " (%.1f%%)\n", s->zero_pages,
           percent(s->zero_pages, s->data_pages));
    printf("distinct pfns:   %" PRIu64 "\n", s->distinct_pfns);
    printf("re-sent pages:   %" PRIu64 "\n", s->resent_pages);
    printf("max pfn:         0x%" PRIx64 "\n", s->max_pfn);
    printf("iterations:      %" PRIu32, s->nr_iterations);
    for (i = 0; i < s->nr_iterations; i++)
        printf("%s%" PRIu64, i ? ", " : " (pages: ",
               lxm_stream_stats_iteration_pages(stats, i));
    printf("%s\n", s->nr_iterations ? ")" : "");
    printf("checkpoints:     %" PRIu32 "\n", s->checkpoints);
}

/* ---- JSON ---- */

static void gen_key(yajl_gen g, const char *key)
{
    yajl_gen_string(g, (const unsigned char *)key, strlen(key));
}

static void gen_str(yajl_gen g, const char *key, const char *val)
{
    gen_key(g, key);
    if (val)
        yajl_gen_string(g, (const unsigned char *)val, strlen(val));
    else
        yajl_gen_null(g);
}

static void gen_u64(yajl_gen g, const char *key, uint64_t val)
{
    char buf[24];
    int n;

    if (key)
        gen_key(g, key);
    n = snprintf(buf, sizeof(buf), "%" PRIu64, val);
    yajl_gen_number(g, buf, (size_t)n);
}

static int print_json(const char *name, const lxm_stream_stats *stats,
                      const lxm_stream_summary *s, uint64_t trailing_bytes)
{
    const unsigned char *buf;
    char version[16];
    yajl_gen g;
    size_t len;
    uint32_t t, i;
    int ret = XLMIG_EXIT_FAIL;

    g = yajl_gen_alloc(NULL);
    if (!g)
        goto out;
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_config(g, yajl_gen_indent_string, "  ");

    yajl_gen_map_open(g);
    gen_str(g, "file", name);
    gen_u64(g, "bytes", s->bytes);
    gen_str(g, "guest_type", guest_kind(s));
    gen_str(g, "domain_name", s->domain_name[0] ? s->domain_name : NULL);
    if (s->guest_type) {
        snprintf(version, sizeof(version), "%u.%u", s->xen_major, s->xen_minor);
        gen_str(g, "xen_version", version);
        gen_u64(g, "libxc_version", s->libxc_version);
    } else {
        gen_str(g, "xen_version", NULL);
        gen_key(g, "libxc_version");
        yajl_gen_null(g);
    }

    gen_key(g, "xl_header");
    if (s->have_xl_header) {
        yajl_gen_map_open(g);
        gen_u64(g, "mandatory_flags", s->xl_mandatory_flags);
        gen_u64(g, "optional_flags", s->xl_optional_flags);
        gen_u64(g, "config_len", s->xl_config_len);
        yajl_gen_map_close(g);
    } else {
        yajl_gen_null(g);
    }

    gen_key(g, "records");
    yajl_gen_map_open(g);
    gen_key(g, "libxl");
    yajl_gen_map_open(g);
    for (t = 0; t < LXM_LIBXL_NR_TYPES; t++)
        gen_u64(g, lxm_record_type_name(LXM_LAYER_LIBXL, t),
                s->libxl_records[t]);
    yajl_gen_map_close(g);
    gen_key(g, "libxc");
    yajl_gen_map_open(g);
    for (t = 0; t < LXM_LIBXC_NR_TYPES; t++)
        gen_u64(g, lxm_record_type_name(LXM_LAYER_LIBXC, t),
                s->libxc_records[t]);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    gen_u64(g, "optional_records", s->optional_records);

    gen_key(g, "pages_by_type");
    yajl_gen_map_open(g);
    for (t = 0; t < LXM_PAGE_NR_TYPES; t++) {
        if (lxm_page_type_is_valid(t))
            gen_u64(g, lxm_page_type_name(t), s->pages_by_type[t]);
    }
    yajl_gen_map_close(g);

    gen_u64(g, "data_pages", s->data_pages);
    gen_u64(g, "page_data_bytes", s->page_data_bytes);
    gen_u64(g, "zero_pages", s->zero_pages);
    gen_u64(g, "distinct_pfns", s->distinct_pfns);
    gen_u64(g, "resent_pages", s->resent_pages);
    gen_u64(g, "max_pfn", s->max_pfn);
    gen_key(g, "iterations");
    yajl_gen_array_open(g);
    for (i = 0; i < s->nr_iterations; i++)
        gen_u64(g, NULL, lxm_stream_stats_iteration_pages(stats, i));
    yajl_gen_array_close(g);
    gen_u64(g, "checkpoints", s->checkpoints);
    gen_u64(g, "trailing_bytes", trailing_bytes);
    yajl_gen_map_close(g);

    if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
        goto out;
    fwrite(buf, 1, len, stdout);
    if (!len || buf[len - 1] != '\n')
        putchar('\n');
    ret = XLMIG_EXIT_OK;

out:
    if (ret)
        xlmig_error("stream-info", "cannot generate JSON");
    if (g)
        yajl_gen_free(g);
    return ret;
}

/*
 * Feed fd to the reader.  With STOP_AT_END, count what follows the
 * stream into *trailing_r.  Returns an LXM_ERROR_* (read errors:
 * LXM_ERROR_IO with errno in *errno_r).
 */
static int read_stream(lxm_stream_reader *reader, int fd, bool stop_at_end,
                       uint64_t *trailing_r, int *errno_r)
{
    uint8_t *buf;
    size_t consumed;
    ssize_t r;
    int rc;

    *trailing_r = 0;
    *errno_r = 0;
    buf = malloc(READ_CHUNK);
    if (!buf)
        return LXM_ERROR_NOMEM;

    for (;;) {
        r = read(fd, buf, READ_CHUNK);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *errno_r = errno;
            rc = LXM_ERROR_IO;
            goto out;
        }
        if (r == 0)
            break;
        if (stop_at_end && lxm_stream_reader_done(reader)) {
            *trailing_r += (uint64_t)r;
            continue;
        }
        rc = lxm_stream_reader_feed(reader, buf, (size_t)r, &consumed);
        if (rc)
            goto out;
        *trailing_r += (uint64_t)r - consumed;
    }
    rc = lxm_stream_reader_finish(reader);

out:
    free(buf);
    return rc;
}

int xlmig_main_stream_info(const struct cmd_spec *spec, int argc, char **argv)
{
    lxm_stream_reader_opts ro = { .format = LXM_FORMAT_XL };
    lxm_stream_reader *reader = NULL;
    const lxm_stream_error *err;
    lxm_stream_summary sum;
    info_state is = { .stats = NULL };
    bool json = xlmig_json, allow_trailing = false;
    const char *arg, *path, *name;
    uint64_t trailing = 0;
    char msg[512];
    int opt, fd = -1, rd_errno, rc, ret = XLMIG_EXIT_FAIL;

    while ((opt = xlmig_getopt(spec, argc, argv, &arg)) != -1) {
        switch (opt) {
        case XLMIG_OPT_HELP:
            return XLMIG_EXIT_OK;
        case XLMIG_OPT_JSON:
            json = true;
            break;
        case XLMIG_OPT_FORMAT:
            if (!parse_format(arg, &ro.format))
                return xlmig_usage_error(spec->name,
                                         "--format: '%s' is"
                                         " not xl, libxl or libxc",
                                         arg);
            break;
        case XLMIG_OPT_ALLOW_TRAILING:
            allow_trailing = true;
            break;
        case XLMIG_OPT_RECORDS:
            is.list = true;
            break;
        default:
            return XLMIG_EXIT_USAGE;
        }
    }
    if (xlmig_optind() + 1 != argc)
        return xlmig_usage_error(spec->name, xlmig_optind() >= argc
                                                 ? "no FILE given"
                                                 : "more than one FILE");
    path = argv[xlmig_optind()];
    name = strcmp(path, "-") ? path : "<stdin>";
    if (json)
        is.list = false;

    if (!strcmp(path, "-")) {
        fd = STDIN_FILENO;
    } else {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            xlmig_error(spec->name, "%s: %s", path, strerror(errno));
            goto out;
        }
    }

    rc = lxm_stream_stats_new(&is.stats);
    if (rc) {
        xlmig_error(spec->name, "%s", lxm_strerror(rc));
        goto out;
    }
    ro.flags = LXM_READER_PAGES | (allow_trailing ? LXM_READER_STOP_AT_END : 0);
    ro.callback = info_event;
    ro.opaque = &is;
    /* The reader's error is reported once, below; its log only with -v. */
    ro.logger = xlmig_verbose ? xlmig_logger : NULL;
    ro.name = name;
    rc = lxm_stream_reader_new(&ro, &reader);
    if (rc) {
        xlmig_error(spec->name, "%s", lxm_strerror(rc));
        goto out;
    }

    rc = read_stream(reader, fd, allow_trailing, &trailing, &rd_errno);
    if (is.list)
        list_flush_squashed(&is);
    if (rc) {
        err = lxm_stream_reader_error(reader);
        if (rc == LXM_ERROR_IO && rd_errno) {
            xlmig_error(spec->name, "%s: read: %s", name, strerror(rd_errno));
        } else if (err && err->rc && err->message[0]) {
            lxm_stream_error_format(err, name, msg, sizeof(msg));
            xlmig_error(spec->name, "%s", msg);
        } else {
            xlmig_error(spec->name, "%s: offset %" PRIu64 ": %s", name,
                        lxm_stream_reader_offset(reader), lxm_strerror(rc));
        }
        goto out;
    }

    lxm_stream_stats_summary(is.stats, &sum);
    if (json) {
        ret = print_json(name, is.stats, &sum, trailing);
    } else {
        if (is.list)
            printf("\n");
        print_summary(name, is.stats, &sum, allow_trailing, trailing);
        ret = XLMIG_EXIT_OK;
    }

out:
    lxm_stream_reader_free(reader);
    lxm_stream_stats_free(is.stats);
    if (fd > STDIN_FILENO)
        close(fd);
    return ret;
}

/* ---- stream-synth ---- */

/* Far more than a test wants; keeps a typo from filling the disk. */
#define SYNTH_MEMORY_MAX (UINT64_C(64) << 30)
#define SYNTH_ROUNDS_MAX 64u /* synth.c's limits */
#define SYNTH_VCPUS_MAX 128u

int xlmig_main_stream_synth(const struct cmd_spec *spec, int argc, char **argv)
{
    lxm__synth_opts so = {
        .guest_type = LXM_GUEST_X86_HVM,
        .pvh = true,
        .memory_bytes = UINT64_C(64) << 20,
        .rounds = 3,
        .vcpus = 1,
        .seed = 1,
        .name = "synth",
    };
    lxm_stream_format format = LXM_FORMAT_XL;
    lxm_stream_writer *w = NULL;
    const char *arg, *path;
    uint64_t v;
    int opt, fd = -1, rc, ret = XLMIG_EXIT_FAIL;
    bool created = false;

    while ((opt = xlmig_getopt(spec, argc, argv, &arg)) != -1) {
        switch (opt) {
        case XLMIG_OPT_HELP:
            return XLMIG_EXIT_OK;
        case XLMIG_OPT_GUEST:
            if (!strcmp(arg, "pv")) {
                so.guest_type = LXM_GUEST_X86_PV;
                so.pvh = false;
            } else if (!strcmp(arg, "pvh")) {
                so.guest_type = LXM_GUEST_X86_HVM;
                so.pvh = true;
            } else if (!strcmp(arg, "hvm")) {
                so.guest_type = LXM_GUEST_X86_HVM;
                so.pvh = false;
            } else {
                return xlmig_usage_error(spec->name,
                                         "--guest: '%s' is not"
                                         " pv, pvh or hvm",
                                         arg);
            }
            break;
        case XLMIG_OPT_MEMORY:
            if (!lxm__parse_size(arg, &v))
                return xlmig_usage_error(spec->name,
                                         "--memory: '%s' is not"
                                         " a size",
                                         arg);
            if (!v || v % LXM_PAGE_SIZE || v > SYNTH_MEMORY_MAX)
                return xlmig_usage_error(spec->name,
                                         "--memory: '%s' is not"
                                         " a multiple of 4K between 4K and"
                                         " 64G",
                                         arg);
            so.memory_bytes = v;
            break;
        case XLMIG_OPT_ROUNDS:
            if (!parse_u64(arg, SYNTH_ROUNDS_MAX, &v))
                return xlmig_usage_error(spec->name,
                                         "--rounds: '%s' is not"
                                         " a number from 0 to %u",
                                         arg, SYNTH_ROUNDS_MAX);
            so.rounds = (uint32_t)v;
            break;
        case XLMIG_OPT_VCPUS:
            if (!parse_u64(arg, SYNTH_VCPUS_MAX, &v) || !v)
                return xlmig_usage_error(spec->name,
                                         "--vcpus: '%s' is not"
                                         " a number from 1 to %u",
                                         arg, SYNTH_VCPUS_MAX);
            so.vcpus = (uint32_t)v;
            break;
        case XLMIG_OPT_SEED:
            if (!parse_u64(arg, UINT64_MAX, &v))
                return xlmig_usage_error(spec->name,
                                         "--seed: '%s' is not"
                                         " a number",
                                         arg);
            so.seed = v;
            break;
        case XLMIG_OPT_NAME:
            if (!*arg || strlen(arg) > 63)
                return xlmig_usage_error(spec->name, "--name: must be 1 to"
                                                     " 63 characters");
            so.name = arg;
            break;
        case XLMIG_OPT_FORMAT:
            if (!parse_format(arg, &format))
                return xlmig_usage_error(spec->name,
                                         "--format: '%s' is"
                                         " not xl, libxl or libxc",
                                         arg);
            break;
        case XLMIG_OPT_CHECKPOINTED:
            so.checkpointed = true;
            break;
        default:
            return XLMIG_EXIT_USAGE;
        }
    }
    if (xlmig_optind() + 1 != argc)
        return xlmig_usage_error(spec->name, xlmig_optind() >= argc
                                                 ? "no FILE given"
                                                 : "more than one FILE");
    path = argv[xlmig_optind()];

    if (!strcmp(path, "-")) {
        if (isatty(STDOUT_FILENO)) {
            xlmig_error(spec->name, "not writing a binary stream to a"
                                    " terminal");
            goto out;
        }
        fflush(stdout);
        fd = STDOUT_FILENO;
    } else {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (fd < 0) {
            xlmig_error(spec->name, "%s: %s", path, strerror(errno));
            goto out;
        }
        created = true;
    }

    rc = lxm_stream_writer_new_fd(format, fd, xlmig_logger, &w);
    if (!rc)
        rc = lxm__synth_write(w, &so);
    if (rc) {
        xlmig_error(spec->name, "%s: writing a %s stream: %s",
                    created ? path : "<stdout>", format_name(format),
                    lxm_strerror(rc));
        goto out;
    }
    if (created) {
        if (close(fd)) {
            fd = -1;
            xlmig_error(spec->name, "%s: %s", path, strerror(errno));
            goto out;
        }
        fd = -1;
    }
    ret = XLMIG_EXIT_OK;

out:
    lxm_stream_writer_free(w);
    if (created && fd >= 0)
        close(fd);
    if (created && ret)
        unlink(path); /* no half-written stream left behind */
    return ret;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
