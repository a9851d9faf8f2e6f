/*
 * test_xen_streams.c - real Xen 4.17 `xl save` images (../shared/
 * xen-streams/{pv,pvh}-128m.save.zst, ~140 MB each once decompressed).
 *
 * For each image:
 *   reader   our reader accepts it, fed in 4093-byte and 1 MiB chunks,
 *            with the same statistics both ways
 *   verify   `xlmig stream-info --json` counts the same records per type
 *            as Xen's own `verify-stream-v2 -v -f xl` lists
 *
 * Images are decompressed with `zstd -d` into a temporary file per case,
 * unlinked as soon as it is open (see decompress()).  The runner adds
 * this suite only when the shared directory exists
 * (lxm_test_shared_streams_dir()).
 */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "test.h"

static const struct xen_image {
    const char *name; /* <name>.save.zst */
    uint32_t guest_type;
    const char *json_type; /* stream-info's guest_type */
    const char *domain_name;
} images[] = {
    { "pv-128m", LXM_GUEST_X86_PV, "pv", "tinypv" },
    { "pvh-128m", LXM_GUEST_X86_HVM, "pvh", "tinypvh" },
};

/* test_reader and test_verify each loop over images[]. */
const int lxm_test_xen_streams_ncases = 2 * (int)LXM_ARRAY_SIZE(images);

/*
 * Decompress an image into a temporary file, then unlink it at once and
 * hand back an open fd and its /dev/fd/N name: the 140 MB are freed
 * when the test's process ends, even if an assertion fails first.
 * Subprocesses (popen) inherit the fd and open the same name.
 */
typedef struct image_file {
    int fd;
    char path[32];
} image_file;

static void decompress(const struct xen_image *img, image_file *f)
{
    const char *dir = lxm_test_shared_streams_dir();
    char *tmp, *cmd = NULL;
    int status;

    ck_assert_msg(dir != NULL, "shared xen-streams directory not found");
    tmp = lxm_test_write_tmp("", 0, ".save");
    ck_assert(asprintf(&cmd, "zstd -d -q -f -c '%s/%s.save.zst' >'%s'", dir,
                       img->name, tmp) > 0);
    status = lxm_test_run(cmd, NULL);
    free(cmd);
    f->fd = status == 0 ? open(tmp, O_RDONLY) : -1;
    unlink(tmp);
    free(tmp);
    ck_assert_msg(status == 0, "zstd -d %s/%s.save.zst failed (status %d)", dir,
                  img->name, status);
    ck_assert_msg(f->fd >= 0, "open: %s", strerror(errno));
    snprintf(f->path, sizeof(f->path), "/dev/fd/%d", f->fd);
}

static uint64_t file_size(const image_file *f)
{
    struct stat st;

    ck_assert_int_eq(fstat(f->fd, &st), 0);
    return (uint64_t)st.st_size;
}

/* Read path through a fresh reader with statistics, chunk bytes at a
 * time.  Returns the reader's rc; the stats are in *stats_r. */
static int read_file(const char *path, size_t chunk, lxm_stream_stats **stats_r,
                     lxm_stream_error *err_r)
{
    lxm_stream_reader_opts opts = {
        .format = LXM_FORMAT_XL,
        .flags = LXM_READER_PAGES,
        .callback = lxm_stream_stats_event,
        .name = path,
    };
    lxm_stream_reader *reader = NULL;
    uint8_t *buf;
    ssize_t r;
    int fd, rc;

    ck_assert_int_eq(lxm_stream_stats_new(stats_r), 0);
    opts.opaque = *stats_r;
    ck_assert_int_eq(lxm_stream_reader_new(&opts, &reader), 0);
    buf = malloc(chunk);
    ck_assert_ptr_nonnull(buf);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));

    for (;;) {
        r = read(fd, buf, chunk);
        if (r < 0 && errno == EINTR)
            continue;
        ck_assert_msg(r >= 0, "read %s: %s", path, strerror(errno));
        if (r == 0) {
            rc = lxm_stream_reader_finish(reader);
            break;
        }
        rc = lxm_stream_reader_feed(reader, buf, (size_t)r, NULL);
        if (rc)
            break;
    }
    if (!rc)
        ck_assert(lxm_stream_reader_done(reader));
    *err_r = *lxm_stream_reader_error(reader);
    close(fd);
    free(buf);
    lxm_stream_reader_free(reader);
    return rc;
}

START_TEST(test_reader)
{
    const struct xen_image *img = &images[_i];
    lxm_stream_stats *st_odd = NULL, *st_big = NULL;
    lxm_stream_summary s, s_big;
    lxm_stream_error err;
    image_file f;
    uint64_t size, total = 0, iter_total = 0;
    uint32_t i, t;
    int rc;

    decompress(img, &f);
    size = file_size(&f);
    rc = read_file(f.path, 4093, &st_odd, &err);
    ck_assert_msg(rc == 0, "%s in 4093-byte chunks: %s at offset %llu",
                  img->name, err.message, (unsigned long long)err.offset);
    rc = read_file(f.path, 1 << 20, &st_big, &err);
    ck_assert_msg(rc == 0, "%s in 1 MiB chunks: %s at offset %llu", img->name,
                  err.message, (unsigned long long)err.offset);
    close(f.fd);

    lxm_stream_stats_summary(st_odd, &s);
    lxm_stream_stats_summary(st_big, &s_big);
    ck_assert_msg(!memcmp(&s, &s_big, sizeof(s)),
                  "%s: chunking changed the statistics", img->name);

    ck_assert_uint_eq(s.bytes, size);
    ck_assert_uint_eq(s.record_bytes[0] + s.record_bytes[1] + s.record_bytes[2],
                      size);
    ck_assert(s.have_xl_header);
    ck_assert_uint_eq(s.xl_mandatory_flags,
                      LXM_XL_MANDATORY_JSON | LXM_XL_MANDATORY_STREAMV2);
    ck_assert_str_eq(s.domain_name, img->domain_name);
    ck_assert_str_eq(s.domain_type, img->json_type);
    ck_assert_uint_eq(s.guest_type, img->guest_type);
    ck_assert_uint_eq(s.xen_major, 4);
    ck_assert_uint_eq(s.xen_minor, 17);
    ck_assert_uint_eq(s.libxc_version, 3);
    ck_assert_uint_eq(s.libxl_records[LXM_LIBXL_END], 1);
    ck_assert_uint_eq(s.libxc_records[LXM_LIBXC_END], 1);
    ck_assert_uint_eq(s.checkpoints, 0);

    /* 128 MiB guests, saved (not live-migrated): one pass over memory,
     * so no page is sent twice. */
    ck_assert_uint_ge(s.distinct_pfns, 32768 / 2);
    ck_assert_uint_eq(s.resent_pages, 0);
    ck_assert_uint_le(s.data_pages, s.distinct_pfns);
    ck_assert_uint_gt(s.zero_pages, 0);
    ck_assert_uint_lt(s.zero_pages, s.data_pages);
    ck_assert_uint_ge(s.nr_iterations, 1);
    for (t = 0; t < LXM_PAGE_NR_TYPES; t++)
        total += s.pages_by_type[t];
    for (i = 0; i < s.nr_iterations; i++)
        iter_total += lxm_stream_stats_iteration_pages(st_odd, i);
    ck_assert_uint_eq(iter_total, total);
    ck_assert_uint_eq(s.page_data_bytes, s.data_pages * LXM_PAGE_SIZE);

    lxm_stream_stats_free(st_odd);
    lxm_stream_stats_free(st_big);
}
END_TEST

/* verify-stream-v2's record names, indexed by type (its libxc.py and
 * libxl.py rec_type_to_str). */
static const char *const vsv2_libxl_names[LXM_LIBXL_NR_TYPES] = {
    "End",
    "Libxc context",
    "Emulator xenstore data",
    "Emulator context",
    "Checkpoint end",
    "Checkpoint state",
};
static const char *const vsv2_libxc_names[LXM_LIBXC_NR_TYPES] = {
    "End",
    "Page data",
    "x86 PV info",
    "x86 PV P2M frames",
    "x86 PV vcpu basic",
    "x86 PV vcpu extended",
    "x86 PV vcpu xsave",
    "Shared info",
    "TSC info",
    "HVM context",
    "HVM params",
    "Toolstack",
    "x86 PV vcpu msrs",
    "Verify",
    "Checkpoint",
    "Checkpoint dirty pfn list",
    "Static data end",
    "x86 CPUID policy",
    "x86 MSR policy",
};

static int vsv2_type(const char *const *names, size_t n, const char *name,
                     size_t len)
{
    size_t t;

    for (t = 0; t < n; t++) {
        if (strlen(names[t]) == len && !strncmp(names[t], name, len))
            return (int)t;
    }
    return -1;
}

/* Count records per type in verify-stream-v2 -v output. */
static void vsv2_count(const char *out, uint64_t *libxl, uint64_t *libxc)
{
    const char *line, *eol, *name, *comma;
    unsigned long long n;
    int t;

    for (line = out; *line; line = *eol ? eol + 1 : eol) {
        eol = strchr(line, '\n');
        if (!eol)
            eol = line + strlen(line);
        if (sscanf(line, "Squashed %llu Page Data records together", &n) == 1) {
            libxc[LXM_LIBXC_PAGE_DATA] += n;
            continue;
        }
        if (!strncmp(line, "Libxl Record: ", 14) ||
            !strncmp(line, "Libxc Record: ", 14)) {
            name = line + 14;
            comma = memchr(name, ',', (size_t)(eol - name));
            ck_assert_msg(comma != NULL, "unexpected line: %.*s",
                          (int)(eol - line), line);
            if (line[4] == 'l') {
                t = vsv2_type(vsv2_libxl_names, LXM_LIBXL_NR_TYPES, name,
                              (size_t)(comma - name));
                ck_assert_msg(t >= 0, "unknown libxl record: %.*s",
                              (int)(eol - line), line);
                libxl[t]++;
            } else {
                t = vsv2_type(vsv2_libxc_names, LXM_LIBXC_NR_TYPES, name,
                              (size_t)(comma - name));
                ck_assert_msg(t >= 0, "unknown libxc record: %.*s",
                              (int)(eol - line), line);
                libxc[t]++;
            }
        }
    }
}

static long long json_count(yajl_val root, const char *layer, const char *type)
{
    const char *path[] = { "records", layer, type, NULL };
    yajl_val v = yajl_tree_get(root, path, yajl_t_number);

    ck_assert_msg(v && YAJL_IS_INTEGER(v), "records.%s.%s missing", layer,
                  type);
    return YAJL_GET_INTEGER(v);
}

START_TEST(test_verify)
{
    const struct xen_image *img = &images[_i];
    uint64_t libxl[LXM_LIBXL_NR_TYPES] = { 0 };
    uint64_t libxc[LXM_LIBXC_NR_TYPES] = { 0 };
    const char *type_path[] = { "guest_type", NULL };
    const char *name_path[] = { "domain_name", NULL };
    const char *bytes_path[] = { "bytes", NULL };
    char *cmd = NULL, *out = NULL, *vout = NULL;
    const char *xlmig = lxm_test_xlmig_path();
    char errbuf[256];
    yajl_val root, v;
    uint32_t t;
    image_file f;
    int status;

    ck_assert_msg(xlmig != NULL, "xlmig binary not found (LXM_XLMIG)");
    decompress(img, &f);
    ck_assert(asprintf(&cmd, "'%s' stream-info --json '%s'", xlmig, f.path) >
              0);
    status = lxm_test_run(cmd, &out);
    free(cmd);
    ck_assert_msg(status == 0, "xlmig stream-info %s: status %d", img->name,
                  status);

    status = lxm_test_verify_stream(f.path, "xl", true, &vout);
    ck_assert_msg(status == 0, "verify-stream-v2 %s: status %d: %s", img->name,
                  status, vout ? vout : "");
    vsv2_count(vout, libxl, libxc);
    ck_assert_uint_eq(libxl[LXM_LIBXL_END], 1);
    ck_assert_uint_gt(libxc[LXM_LIBXC_PAGE_DATA], 0);

    root = yajl_tree_parse(out, errbuf, sizeof(errbuf));
    ck_assert_msg(root != NULL, "stream-info --json: %s", errbuf);
    for (t = 0; t < LXM_LIBXL_NR_TYPES; t++)
        ck_assert_msg(
            (uint64_t)json_count(root, "libxl",
                                 lxm_record_type_name(LXM_LAYER_LIBXL, t)) ==
                libxl[t],
            "%s: libxl %s: stream-info %lld, verify-stream-v2 %llu", img->name,
            lxm_record_type_name(LXM_LAYER_LIBXL, t),
            json_count(root, "libxl", lxm_record_type_name(LXM_LAYER_LIBXL, t)),
            (unsigned long long)libxl[t]);
    for (t = 0; t < LXM_LIBXC_NR_TYPES; t++)
        ck_assert_msg(
            (uint64_t)json_count(root, "libxc",
                                 lxm_record_type_name(LXM_LAYER_LIBXC, t)) ==
                libxc[t],
            "%s: libxc %s: stream-info %lld, verify-stream-v2 %llu", img->name,
            lxm_record_type_name(LXM_LAYER_LIBXC, t),
            json_count(root, "libxc", lxm_record_type_name(LXM_LAYER_LIBXC, t)),
            (unsigned long long)libxc[t]);

    v = yajl_tree_get(root, type_path, yajl_t_string);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(YAJL_GET_STRING(v), img->json_type);
    v = yajl_tree_get(root, name_path, yajl_t_string);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(YAJL_GET_STRING(v), img->domain_name);
    v = yajl_tree_get(root, bytes_path, yajl_t_number);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq((uint64_t)YAJL_GET_INTEGER(v), file_size(&f));

    yajl_tree_free(root);
    free(out);
    free(vout);
    close(f.fd);
}
END_TEST

Suite *lxm_test_xen_streams_suite(void)
{
    Suite *s = suite_create("xen_streams");
    TCase *tc;

    tc = tcase_create("images");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_reader, 0, LXM_ARRAY_SIZE(images));
    tcase_add_loop_test(tc, test_verify, 0, LXM_ARRAY_SIZE(images));
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
