/*
 * xapi_conf.c - the evacuation settings from xapi's configuration
 * files: /etc/xapi.conf, then every regular file of /etc/xapi.conf.d/
 * in sorted (strcmp) order; the last setting wins.
 *
 * Entry point: lxm__xapi_conf_load().
 *
 * Syntax, as xapi reads it: one `key = value` a line; everything from
 * the first '#' on is a comment; a line without '=' is ignored; key and
 * value are trimmed of blanks, then one pair of surrounding quotes
 * ("..." or '...') is stripped from the value.  Only
 * evacuation-batch-size is used: an integer, taken as max(1, |n|).  A
 * missing file or directory is not an error; one that cannot be read
 * is.  Directory entries whose names start with '.' are skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "evacuate/evacuate.h"

#define BATCH_KEY "evacuation-batch-size"
/* A batch larger than this is a typo, not a setting. */
#define BATCH_MAX 100000
/* Files of the .d directory read at most (more is an error). */
#define CONF_DIR_MAX 1024

static void set_err(char *err, size_t err_len, const char *fmt, ...)
    LXM_PRINTF(3, 4);
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    if (!err || !err_len)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
           c == '\v';
}

/* Trim s in place; returns the start. */
static char *trim(char *s)
{
    size_t n;

    while (is_blank(*s))
        s++;
    n = strlen(s);
    while (n && is_blank(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Parse an integer value into max(1, |n|); false when it is not one. */
static bool parse_batch(const char *v, unsigned int *batch_r)
{
    long long n;
    char *end;

    if (!*v)
        return false;
    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || *end || end == v)
        return false;
    if (n < 0)
        n = n == LLONG_MIN ? LLONG_MAX : -n;
    if (n > BATCH_MAX)
        return false;
    *batch_r = n < 1 ? 1 : (unsigned int)n;
    return true;
}

/* One file.  ENOENT is fine (0); other failures are errors. */
static int load_file(const char *path, lxm__xapi_conf *c, char *err,
                     size_t err_len)
{
    FILE *f;
    char *line = NULL, *hash, *eq, *key, *val;
    size_t cap = 0, lineno = 0, n;
    unsigned int batch;
    int rc = 0;

    f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        set_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return LXM_ERROR_IO;
    }
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        key = trim(line);
        val = trim(eq + 1);
        n = strlen(val);
        if (n >= 2 && (val[0] == '"' || val[0] == '\'') &&
            val[n - 1] == val[0]) {
            val[n - 1] = '\0';
            val++;
        }
        if (strcmp(key, BATCH_KEY))
            continue;
        if (!parse_batch(val, &batch)) {
            set_err(err, err_len,
                    "%s:%zu: " BATCH_KEY " '%.64s' is not an integer"
                    " (or beyond +-%d)",
                    path, lineno, val, BATCH_MAX);
            rc = LXM_ERROR_INVAL;
            goto out;
        }
        c->batch_size = batch;
        snprintf(c->batch_size_origin, sizeof(c->batch_size_origin), "%s:%zu",
                 path, lineno);
    }
    if (ferror(f)) {
        set_err(err, err_len, "%s: read error", path);
        rc = LXM_ERROR_IO;
    }

out:
    free(line);
    fclose(f);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int lxm__xapi_conf_load(const char *main_path, const char *dir_path,
                        lxm__xapi_conf *c, char *err, size_t err_len)
{
    DIR *dir = NULL;
    struct dirent *de;
    struct stat st;
    char **names = NULL, path[PATH_MAX];
    size_t nr = 0, i;
    int rc;

    if (err && err_len)
        err[0] = '\0';
    c->batch_size = LXM__EVAC_BATCH_DEFAULT;
    snprintf(c->batch_size_origin, sizeof(c->batch_size_origin), "default");
    if (!main_path)
        main_path = LXM__XAPI_CONF;
    if (!dir_path)
        dir_path = LXM__XAPI_CONF_DIR;

    rc = load_file(main_path, c, err, err_len);
    if (rc)
        goto out;

    dir = opendir(dir_path);
    if (!dir) {
        if (errno == ENOENT || errno == ENOTDIR)
            goto out;
        set_err(err, err_len, "%s: cannot read directory: %s", dir_path,
                strerror(errno));
        rc = LXM_ERROR_IO;
        goto out;
    }
    names = calloc(CONF_DIR_MAX, sizeof(*names));
    if (!names) {
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir_path,
                             de->d_name) >= sizeof(path))
            continue;
        if (stat(path, &st) || !S_ISREG(st.st_mode))
            continue;
        if (nr == CONF_DIR_MAX) {
            set_err(err, err_len, "%s: more than %d files", dir_path,
                    CONF_DIR_MAX);
            rc = LXM_ERROR_INVAL;
            goto out;
        }
        names[nr] = strdup(de->d_name);
        if (!names[nr]) {
            rc = LXM_ERROR_NOMEM;
            goto out;
        }
        nr++;
    }
    qsort(names, nr, sizeof(*names), cmp_str);
    for (i = 0; i < nr; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir_path, names[i]);
        rc = load_file(path, c, err, err_len);
        if (rc)
            goto out;
    }
    rc = 0;

out:
    if (rc == LXM_ERROR_NOMEM)
        set_err(err, err_len, "out of memory");
    for (i = 0; names && i < nr; i++)
        free(names[i]);
    free(names);
    if (dir)
        closedir(dir);
    return rc;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
