/*
 * backend.c - choosing a backend, and the parameter helpers shared by
 * every backend.
 *
 * Entry points (backend/backend.h):
 *   lxm__backend_choose()          "auto", "sim", "libxl"
 *   lxm__save_params_init()        live, downtime policy, 300 ms, 30/5
 *   lxm__sim_create_params_init()  a 1-vcpu PVH sim guest, typical mix
 *   lxm__sim_parse_mix()           "zero=40,code=20,text=20"
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

#define XEN_CAPABILITIES "/proc/xen/capabilities"

/* True when this is a Xen control domain (dom0). */
static bool is_xen_dom0(void)
{
    char buf[256];
    size_t n;
    FILE *f = fopen(XEN_CAPABILITIES, "r");

    if (!f)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, "control_d") != NULL;
}

const lxm__backend_ops *lxm__backend_choose(const char *name)
{
    if (!name || !strcmp(name, "auto")) {
#ifdef LXM_HAVE_LIBXL_BACKEND
        if (is_xen_dom0())
            return &lxm__backend_libxl_ops;
#else
        (void)is_xen_dom0;
#endif
        return &lxm__backend_sim_ops;
    }
    if (!strcmp(name, "sim"))
        return &lxm__backend_sim_ops;
#ifdef LXM_HAVE_LIBXL_BACKEND
    if (!strcmp(name, "libxl"))
        return &lxm__backend_libxl_ops;
#endif
    return NULL;
}

void lxm__save_params_init(lxm__save_params *p)
{
    memset(p, 0, sizeof(*p));
    p->live = true;
    p->policy = LXM__PRECOPY_DOWNTIME;
    p->downtime_ms = 300;
    p->max_rounds = 30;
    p->converge_rounds = 5;
}

void lxm__sim_create_params_init(lxm__sim_create_params *p)
{
    memset(p, 0, sizeof(*p));
    p->memory_bytes = 64u << 20;
    p->vcpus = 1;
    p->kind = LXM__GUEST_PVH;
    /* Roughly an idle Linux guest: much zero, some code and text. */
    p->mix_zero = 40;
    p->mix_code = 20;
    p->mix_text = 20;
    p->seed = 1;
}

/* One "key=N" item of a mix spec; N in 0..100. */
static int parse_item(const char *item, size_t len, lxm__sim_create_params *p)
{
    static const char *const keys[] = { "zero", "code", "text", "random" };
    uint32_t *fields[] = { &p->mix_zero, &p->mix_code, &p->mix_text, NULL };
    const char *eq = memchr(item, '=', len);
    unsigned long v = 0;
    size_t klen, i, d;

    if (!eq)
        return LXM_ERROR_INVAL;
    klen = (size_t)(eq - item);
    if (eq + 1 == item + len)
        return LXM_ERROR_INVAL;
    for (d = (size_t)(eq + 1 - item); d < len; d++) {
        if (item[d] < '0' || item[d] > '9')
            return LXM_ERROR_INVAL;
        v = v * 10 + (unsigned long)(item[d] - '0');
        if (v > 100)
            return LXM_ERROR_INVAL;
    }
    for (i = 0; i < LXM_ARRAY_SIZE(keys); i++) {
        if (klen != strlen(keys[i]) || memcmp(item, keys[i], klen))
            continue;
        if (fields[i])
            *fields[i] = (uint32_t)v;
        /* "random" is the rest; accepted for symmetry and checked by
         * the caller's sum below. */
        return 0;
    }
    return LXM_ERROR_INVAL;
}

int lxm__sim_parse_mix(const char *spec, lxm__sim_create_params *p)
{
    lxm__sim_create_params tmp = *p;
    const char *s = spec, *end;
    int rc;

    if (!spec || !*spec)
        return LXM_ERROR_INVAL;
    /* Keys not named are 0 (the rest is random). */
    tmp.mix_zero = tmp.mix_code = tmp.mix_text = 0;
    for (;;) {
        end = strchr(s, ',');
        if (!end)
            end = s + strlen(s);
        rc = parse_item(s, (size_t)(end - s), &tmp);
        if (rc)
            return rc;
        if (!*end)
            break;
        s = end + 1;
    }
    if (tmp.mix_zero + tmp.mix_code + tmp.mix_text > 100)
        return LXM_ERROR_INVAL;
    *p = tmp;
    return 0;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
