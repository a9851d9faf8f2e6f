/*
 * xlmigd_config.c - /etc/xlmig.conf, and which codecs this agent
 * speaks.
 *
 * Entry points:
 *   xlmigd_config_load()   read the configuration file (missing: the
 *                          built-in defaults)
 *   xlmigd_codecs_parse()  --codecs LIST -> HELLO capabilities
 *
 * The file (docs/xlmig.conf.example): "key = value" lines, '#' starts a
 * comment (whole line, or after blank space), blank lines are ignored,
 * one pair of double quotes around a value is stripped.  Keys:
 *   compress   the default of `xlmig migrate --compress`: none, auto,
 *              zlib[:L], zstd[:L], lz4[:A] (built-in default auto)
 *   auto-same-host  raw (default): `auto` sends raw to a peer on this
 *              host (loopback), where no codec can beat a memory copy;
 *              probe: measure the link as for any other peer
 * Anything else (no '=', an unknown key, a bad value, a line too long)
 * is an error naming FILE:LINE: a typo must not silently change how
 * migrations run.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "codec/codec.h"
#include "xlmigd.h"

#define LINE_MAX_LEN 1024

static char *trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int xlmigd_config_load(const char *path, xlmigd_config *cfg, char *err,
                       size_t errlen)
{
    char line[LINE_MAX_LEN + 2], why[160], *key, *val, *eq, *hash;
    unsigned int lineno = 0;
    size_t len;
    FILE *f;
    int rc = 0;

    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->compress, sizeof(cfg->compress), "auto");
    f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0; /* the built-in defaults */
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return LXM_ERROR_IO;
    }
    cfg->loaded = true;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        len = strlen(line);
        if (len > LINE_MAX_LEN && line[len - 1] != '\n') {
            snprintf(err, errlen, "%s:%u: line longer than %d bytes", path,
                     lineno, LINE_MAX_LEN);
            rc = LXM_ERROR_INVAL;
            goto out;
        }
        /* '#' at the start or after blank space begins a comment. */
        for (hash = line; (hash = strchr(hash, '#')); hash++) {
            if (hash == line || isspace((unsigned char)hash[-1])) {
                *hash = '\0';
                break;
            }
        }
        key = trim(line);
        if (!*key)
            continue;
        eq = strchr(key, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%u: expected KEY = VALUE, not '%.64s'",
                     path, lineno, key);
            rc = LXM_ERROR_INVAL;
            goto out;
        }
        *eq = '\0';
        key = trim(key);
        val = trim(eq + 1);
        len = strlen(val);
        if (len >= 2 && val[0] == '"' && val[len - 1] == '"') {
            val[len - 1] = '\0';
            val++;
        }
        if (!strcmp(key, "compress")) {
            if (lxm__migrate_compress_check(val, why, sizeof(why))) {
                snprintf(err, errlen, "%s:%u: bad compress '%.64s': %s", path,
                         lineno, val, why);
                rc = LXM_ERROR_INVAL;
                goto out;
            }
            snprintf(cfg->compress, sizeof(cfg->compress), "%s", val);
        } else if (!strcmp(key, "auto-same-host")) {
            if (strcmp(val, "raw") && strcmp(val, "probe")) {
                snprintf(err, errlen,
                         "%s:%u: bad auto-same-host '%.64s' (raw or probe)",
                         path, lineno, val);
                rc = LXM_ERROR_INVAL;
                goto out;
            }
            cfg->auto_probe_same_host = !strcmp(val, "probe");
        } else {
            snprintf(err, errlen,
                     "%s:%u: unknown key '%.64s' (known: compress,"
                     " auto-same-host)",
                     path, lineno, key);
            rc = LXM_ERROR_INVAL;
            goto out;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        rc = LXM_ERROR_IO;
    }

out:
    fclose(f);
    return rc;
}

int xlmigd_codecs_parse(const char *list, xlmigd_config *cfg, char *err,
                        size_t errlen)
{
    static const char *const names[] = { "zlib", "zstd", "lz4", "pages",
                                         "pages1" };
    char buf[128], *item, *save = NULL;
    unsigned int n = 0;
    size_t i;

    if (!list || !strcmp(list, "all")) {
        const char *const *all = lxm__migrate_codec_caps();

        for (; *all && n + 1 < LXM_ARRAY_SIZE(cfg->caps); all++)
            cfg->caps[n++] = *all;
        cfg->caps[n] = NULL;
        return 0;
    }
    if (strlen(list) >= sizeof(buf)) {
        snprintf(err, errlen, "bad --codecs '%.64s...'", list);
        return LXM_ERROR_INVAL;
    }
    memcpy(buf, list, strlen(list) + 1);
    if (!strcmp(buf, "none")) {
        cfg->caps[0] = NULL;
        return 0;
    }
    for (item = strtok_r(buf, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        for (i = 0; i < LXM_ARRAY_SIZE(names); i++) {
            if (!strcmp(item, names[i]))
                break;
        }
        if (i == LXM_ARRAY_SIZE(names)) {
            snprintf(err, errlen,
                     "bad --codecs '%s': unknown '%s' (all, none, or a list"
                     " of zlib, zstd, lz4, pages, pages1)",
                     list, item);
            return LXM_ERROR_INVAL;
        }
        if (n + 1 >= LXM_ARRAY_SIZE(cfg->caps)) {
            snprintf(err, errlen, "bad --codecs '%s': too many entries", list);
            return LXM_ERROR_INVAL;
        }
        /* The caps strings are static: "codec:" + the name; "pages"
         * is every pre-pass version this agent decodes, "pages1" the
         * version 1 only (as an agent of before version 2). */
        cfg->caps[n++] = lxm__migrate_codec_caps()[i < 4 ? i : 3];
        if (!strcmp(names[i], "pages")) {
            if (n + 1 >= LXM_ARRAY_SIZE(cfg->caps)) {
                snprintf(err, errlen, "bad --codecs '%s': too many entries",
                         list);
                return LXM_ERROR_INVAL;
            }
            cfg->caps[n++] = LXM__CAP_PAGES2;
        }
    }
    cfg->caps[n] = NULL;
    return 0;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
