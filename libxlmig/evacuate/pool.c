/*
 * pool.c - the pool file (default /etc/xlmig/pool.conf): the hosts an
 * evacuation may use, one a line:
 *
 *     NAME AGENT-ADDR[:PORT] [key=value ...]
 *
 * '#' starts a comment (to the end of the line); blank lines are
 * skipped.  NAME: letters, digits, '.', '_', '-' (below LXM__NAME_MAX
 * bytes), unique.  AGENT-ADDR: HOST[:PORT], [IPv6][:PORT], or a unix
 * control socket path (it contains '/').  Pairs: migration=ADDR[:PORT]
 * (where peers send the stream); any other key=value is kept in
 * ->extra for later use.  A token without '=', an empty key or value,
 * or a key given twice is an error.
 *
 * Entry points: lxm__pool_load(), lxm__pool_dispose(), lxm__pool_find().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evacuate/evacuate.h"

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

static bool name_ok(const char *s)
{
    size_t n = strlen(s), i;

    if (!n || n >= LXM__NAME_MAX)
        return false;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool port_ok(const char *p)
{
    unsigned long v;
    char *end;

    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    v = strtoul(p, &end, 10);
    return !errno && !*end && v >= 1 && v <= 65535;
}

static bool host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

/* HOST[:PORT], [IPv6][:PORT], or a path with '/'; fits in len. */
static bool addr_ok(const char *s, size_t len)
{
    const char *colon, *rb, *p;

    if (!*s || strlen(s) >= len)
        return false;
    if (strchr(s, '/'))
        return true;
    if (s[0] == '[') {
        rb = strchr(s, ']');
        if (!rb || rb == s + 1)
            return false;
        for (p = s + 1; p < rb; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                  (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'))
                return false;
        if (!rb[1])
            return true;
        return rb[1] == ':' && port_ok(rb + 2);
    }
    colon = strchr(s, ':');
    if (colon == s)
        return false;
    for (p = s; *p && p != colon; p++)
        if (!host_char_ok(*p))
            return false;
    return !colon || port_ok(colon + 1);
}

/* Append "k=v\0" to extra (which ends "\0\0" or is empty). */
static bool extra_add(char *extra, size_t len, const char *pair)
{
    size_t used = 0, n = strlen(pair);

    while (used < len && extra[used])
        used += strlen(extra + used) + 1;
    if (used + n + 2 > len)
        return false;
    memcpy(extra + used, pair, n + 1);
    extra[used + n + 1] = '\0';
    return true;
}

static bool extra_has_key(const char *extra, size_t len, const char *key,
                          size_t klen)
{
    size_t used = 0;

    while (used < len && extra[used]) {
        if (!strncmp(extra + used, key, klen) && extra[used + klen] == '=')
            return true;
        used += strlen(extra + used) + 1;
    }
    return false;
}

/* One host line, split in place into tokens. */
static int parse_line(char *line, const char *path, size_t lineno,
                      lxm__pool_host *h, char *err, size_t err_len)
{
    char *tok, *save = NULL, *eq;
    size_t klen;
    int i = 0;

    memset(h, 0, sizeof(*h));
    for (tok = strtok_r(line, " \t\r\n", &save); tok;
         tok = strtok_r(NULL, " \t\r\n", &save), i++) {
        if (i == 0) {
            if (!name_ok(tok)) {
                set_err(err, err_len,
                        "%s:%zu: bad host name '%.64s' (letters, digits,"
                        " '.', '_', '-'; at most %d bytes)",
                        path, lineno, tok, LXM__NAME_MAX - 1);
                return LXM_ERROR_INVAL;
            }
            snprintf(h->name, sizeof(h->name), "%s", tok);
            continue;
        }
        if (i == 1) {
            if (strchr(tok, '=') || !addr_ok(tok, sizeof(h->agent))) {
                set_err(err, err_len,
                        "%s:%zu: host %s: bad agent address '%.64s'"
                        " (HOST[:PORT], [IPv6][:PORT] or a socket path)",
                        path, lineno, h->name, tok);
                return LXM_ERROR_INVAL;
            }
            snprintf(h->agent, sizeof(h->agent), "%s", tok);
            continue;
        }
        eq = strchr(tok, '=');
        if (!eq || eq == tok || !eq[1]) {
            set_err(err, err_len,
                    "%s:%zu: host %s: '%.64s' is not a key=value pair", path,
                    lineno, h->name, tok);
            return LXM_ERROR_INVAL;
        }
        klen = (size_t)(eq - tok);
        if (klen == 9 && !strncmp(tok, "migration", 9)) {
            if (h->migration[0]) {
                set_err(err, err_len, "%s:%zu: host %s: migration given twice",
                        path, lineno, h->name);
                return LXM_ERROR_INVAL;
            }
            if (!addr_ok(eq + 1, sizeof(h->migration))) {
                set_err(err, err_len,
                        "%s:%zu: host %s: bad migration address '%.64s'", path,
                        lineno, h->name, eq + 1);
                return LXM_ERROR_INVAL;
            }
            snprintf(h->migration, sizeof(h->migration), "%s", eq + 1);
            continue;
        }
        if (extra_has_key(h->extra, sizeof(h->extra), tok, klen)) {
            set_err(err, err_len, "%s:%zu: host %s: %.*s given twice", path,
                    lineno, h->name, (int)LXM_MIN(klen, 64), tok);
            return LXM_ERROR_INVAL;
        }
        if (!extra_add(h->extra, sizeof(h->extra), tok)) {
            set_err(err, err_len,
                    "%s:%zu: host %s: too many key=value pairs (%zu bytes"
                    " at most)",
                    path, lineno, h->name, sizeof(h->extra) - 1);
            return LXM_ERROR_INVAL;
        }
    }
    if (i == 1) {
        set_err(err, err_len, "%s:%zu: host %s: no agent address", path, lineno,
                h->name);
        return LXM_ERROR_INVAL;
    }
    return 0;
}

int lxm__pool_load(const char *path, lxm__pool *p, char *err, size_t err_len)
{
    FILE *f;
    char *line = NULL, *hash, *s;
    size_t cap = 0, lineno = 0, i;
    lxm__pool_host h;
    int rc = 0;

    if (err && err_len)
        err[0] = '\0';
    p->hosts = NULL;
    p->nr_hosts = 0;
    if (!path)
        path = LXM__POOL_CONF;
    f = fopen(path, "re");
    if (!f) {
        set_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return errno == ENOENT ? LXM_ERROR_NOTFOUND : LXM_ERROR_IO;
    }
    p->hosts = calloc(LXM__POOL_MAX_HOSTS, sizeof(*p->hosts));
    if (!p->hosts) {
        set_err(err, err_len, "out of memory");
        rc = LXM_ERROR_NOMEM;
        goto out;
    }
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        for (s = line; *s == ' ' || *s == '\t' || *s == '\r' || *s == '\n';)
            s++;
        if (!*s)
            continue;
        rc = parse_line(s, path, lineno, &h, err, err_len);
        if (rc)
            goto out;
        for (i = 0; i < p->nr_hosts; i++) {
            if (!strcmp(p->hosts[i].name, h.name)) {
                set_err(err, err_len, "%s:%zu: host %s is listed twice", path,
                        lineno, h.name);
                rc = LXM_ERROR_INVAL;
                goto out;
            }
        }
        if (p->nr_hosts == LXM__POOL_MAX_HOSTS) {
            set_err(err, err_len, "%s:%zu: more than %d hosts", path, lineno,
                    LXM__POOL_MAX_HOSTS);
            rc = LXM_ERROR_INVAL;
            goto out;
        }
        p->hosts[p->nr_hosts++] = h;
    }
    if (ferror(f)) {
        set_err(err, err_len, "%s: read error", path);
        rc = LXM_ERROR_IO;
    }

out:
    free(line);
    fclose(f);
    if (rc)
        lxm__pool_dispose(p);
    return rc;
}

void lxm__pool_dispose(lxm__pool *p)
{
    if (!p)
        return;
    free(p->hosts);
    p->hosts = NULL;
    p->nr_hosts = 0;
}

const lxm__pool_host *lxm__pool_find(const lxm__pool *p, const char *name)
{
    size_t i;

    for (i = 0; p && name && i < p->nr_hosts; i++)
        if (!strcmp(p->hosts[i].name, name))
            return &p->hosts[i];
    return NULL;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
