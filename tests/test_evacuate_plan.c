/*
 * test_evacuate_plan.c - the evacuation pre-checks (evacuate/precheck.c)
 * and planner (evacuate/planner.c), pure functions driven by tables.
 * Suite "evacuate_plan".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "evacuate/evacuate.h"

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* Pool entries live here so that hosts can borrow them. */
static lxm__pool_host pool_hosts[16];

static lxm__evac_host mk_host(int slot, const char *name, uint64_t free_mem,
                              uint32_t nr_vms)
{
    lxm__evac_host h;

    memset(&h, 0, sizeof(h));
    memset(&pool_hosts[slot], 0, sizeof(pool_hosts[slot]));
    snprintf(pool_hosts[slot].name, sizeof(pool_hosts[slot].name), "%s", name);
    snprintf(pool_hosts[slot].agent, sizeof(pool_hosts[slot].agent),
             "10.0.0.%d", slot + 1);
    h.pool = &pool_hosts[slot];
    h.reachable = true;
    snprintf(h.info.hostname, sizeof(h.info.hostname), "%s", name);
    h.info.xen_major = 4;
    h.info.xen_minor = 17;
    snprintf(h.info.xen_extra, sizeof(h.info.xen_extra), ".3");
    snprintf(h.info.cpu_vendor, sizeof(h.info.cpu_vendor), "GenuineIntel");
    h.info.featureset[0] = 0xff;
    h.info.featureset[3] = 0xf0;
    h.info.total_memory = 64 * GiB;
    h.info.free_memory = free_mem;
    h.info.nr_domains = nr_vms;
    h.nr_vms = nr_vms;
    return h;
}

static lxm__evac_vm mk_vm(const char *name, uint64_t mem)
{
    lxm__evac_vm v;

    memset(&v, 0, sizeof(v));
    snprintf(v.info.name, sizeof(v.info.name), "%s", name);
    v.info.memory_bytes = mem;
    v.info.vcpus = 1;
    snprintf(v.info.on_boot, sizeof(v.info.on_boot), "start");
    v.info.featureset[0] = 0x0f;
    v.info.featureset[3] = 0x10;
    return v;
}

/* ---- pre-checks: VM rules ---------------------------------------- */

enum { F_PCI = 1, F_VUSB = 2, F_NOMIG = 4, F_RESET = 8, F_HA = 16 };

static const struct vm_case {
    unsigned int flags;
    lxm__check_result want;
    const char *why;
} vm_cases[] = {
    { 0, LXM__CHECK_OK, "" },
    { F_PCI, LXM__CHECK_REFUSE, "PCI passthrough" },
    { F_VUSB, LXM__CHECK_REFUSE, "USB" },
    { F_NOMIG, LXM__CHECK_REFUSE, "nomigrate" },
    { F_RESET, LXM__CHECK_REFUSE, "on-boot=reset" },
    { F_HA, LXM__CHECK_WARN, "HA-protected" },
    /* The first refusal is the reason; HA never hides a refusal. */
    { F_PCI | F_HA, LXM__CHECK_REFUSE, "PCI passthrough" },
    { F_VUSB | F_NOMIG, LXM__CHECK_REFUSE, "USB" },
    { F_NOMIG | F_RESET | F_HA, LXM__CHECK_REFUSE, "nomigrate" },
};

START_TEST(test_precheck_vm)
{
    const struct vm_case *c = &vm_cases[_i];
    lxm__evac_vm vm = mk_vm("v", GiB);
    char reason[256];

    if (c->flags & F_PCI)
        vm.info.nr_pci = 2;
    if (c->flags & F_VUSB)
        vm.info.nr_vusb = 1;
    if (c->flags & F_NOMIG)
        vm.info.nomigrate = true;
    if (c->flags & F_RESET)
        snprintf(vm.info.on_boot, sizeof(vm.info.on_boot), "reset");
    if (c->flags & F_HA)
        vm.ha_protected = true;
    ck_assert_int_eq(lxm__precheck_vm(&vm, reason, sizeof(reason)), c->want);
    if (*c->why)
        ck_assert_msg(strstr(reason, c->why), "case %d: '%s' lacks '%s'", _i,
                      reason, c->why);
    else
        ck_assert_str_eq(reason, "");
}
END_TEST

/* The domain_info flag counts as well as the planner's. */
START_TEST(test_precheck_vm_ha_info)
{
    lxm__evac_vm vm = mk_vm("v", GiB);
    char reason[64];

    vm.info.ha_protected = true;
    ck_assert_int_eq(lxm__precheck_vm(&vm, reason, sizeof(reason)),
                     LXM__CHECK_WARN);
    /* Truncated, still terminated. */
    ck_assert_uint_lt(strlen(reason), sizeof(reason));
}
END_TEST

/* ---- pre-checks: host rules -------------------------------------- */

enum {
    H_UNREACH = 1,
    H_OLD_MINOR = 2,
    H_NEWER = 4,
    H_OLD_PATCH = 8,
    H_EXTRA_OTHER = 16,
    H_AMD = 32,
    H_NO_FEATURE = 64,
    H_SHORT = 128,
    H_EXACT = 256,
    H_OLD_MAJOR_NEW_MINOR = 512,
};

static const struct host_case {
    unsigned int flags;
    lxm__check_result want;
    const char *why;
} host_cases[] = {
    { 0, LXM__CHECK_OK, "" },
    { H_UNREACH, LXM__CHECK_REFUSE, "did not answer" },
    { H_OLD_MINOR, LXM__CHECK_REFUSE, "Xen 4.16.3 is older than" },
    { H_OLD_MAJOR_NEW_MINOR, LXM__CHECK_REFUSE, "older" },
    { H_NEWER, LXM__CHECK_OK, "" },
    { H_OLD_PATCH, LXM__CHECK_REFUSE,
      "Xen 4.17.1 is older than the source's"
      " 4.17.3" },
    { H_EXTRA_OTHER, LXM__CHECK_OK, "" }, /* "-rc": patch unknown */
    { H_AMD, LXM__CHECK_REFUSE, "CPU vendor AuthenticAMD" },
    { H_NO_FEATURE, LXM__CHECK_REFUSE, "featureset word 3: 0x00000010" },
    { H_SHORT, LXM__CHECK_REFUSE,
      "not enough free memory (1024 MiB needed,"
      " 1023 MiB free)" },
    { H_EXACT, LXM__CHECK_OK, "" },
    /* The first failing rule is the reason. */
    { H_OLD_MINOR | H_AMD | H_SHORT, LXM__CHECK_REFUSE, "older" },
    { H_AMD | H_NO_FEATURE, LXM__CHECK_REFUSE, "CPU vendor" },
    { H_NO_FEATURE | H_SHORT, LXM__CHECK_REFUSE, "featureset" },
};

START_TEST(test_precheck_host)
{
    const struct host_case *c = &host_cases[_i];
    lxm__evac_host src = mk_host(0, "src", 0, 4);
    lxm__evac_host dst = mk_host(1, "dst", 8 * GiB, 0);
    lxm__evac_vm vm = mk_vm("v", GiB);
    uint64_t free_mem = dst.info.free_memory;
    char reason[256];

    if (c->flags & H_UNREACH)
        dst.reachable = false;
    if (c->flags & H_OLD_MINOR)
        dst.info.xen_minor = 16;
    if (c->flags & H_OLD_MAJOR_NEW_MINOR) {
        dst.info.xen_major = 3;
        dst.info.xen_minor = 99;
    }
    if (c->flags & H_NEWER) {
        dst.info.xen_minor = 18;
        snprintf(dst.info.xen_extra, sizeof(dst.info.xen_extra), ".0");
    }
    if (c->flags & H_OLD_PATCH)
        snprintf(dst.info.xen_extra, sizeof(dst.info.xen_extra), ".1");
    if (c->flags & H_EXTRA_OTHER)
        snprintf(dst.info.xen_extra, sizeof(dst.info.xen_extra), "-rc");
    if (c->flags & H_AMD)
        snprintf(dst.info.cpu_vendor, sizeof(dst.info.cpu_vendor),
                 "AuthenticAMD");
    if (c->flags & H_NO_FEATURE)
        dst.info.featureset[3] = 0xe0;
    if (c->flags & H_SHORT)
        free_mem = GiB - MiB;
    if (c->flags & H_EXACT)
        free_mem = GiB;
    ck_assert_int_eq(lxm__precheck_host(&vm, &src.info, &dst, free_mem, reason,
                                        sizeof(reason)),
                     c->want);
    if (*c->why)
        ck_assert_msg(strstr(reason, c->why), "case %d: '%s' lacks '%s'", _i,
                      reason, c->why);
    else
        ck_assert_str_eq(reason, "");
}
END_TEST

/* ---- the planner ------------------------------------------------- */

static const char *dest_of(const lxm__plan *p, const lxm__evac_host *hosts,
                           const lxm__evac_vm *vms, const char *vm)
{
    size_t i;

    for (i = 0; i < p->nr_entries; i++)
        if (!strcmp(vms[p->entries[i].vm].info.name, vm))
            return p->entries[i].dest < 0
                       ? "-"
                       : hosts[p->entries[i].dest].pool->name;
    ck_abort_msg("vm %s not in the plan", vm);
    return NULL;
}

static const lxm__plan_entry *entry_of(const lxm__plan *p,
                                       const lxm__evac_vm *vms, const char *vm)
{
    size_t i;

    for (i = 0; i < p->nr_entries; i++)
        if (!strcmp(vms[p->entries[i].vm].info.name, vm))
            return &p->entries[i];
    ck_abort_msg("vm %s not in the plan", vm);
    return NULL;
}

/* Plan and check each VM's destination ("-": refused). */
static void check_plan(const lxm__plan_params *pp, const lxm__evac_host *hosts,
                       size_t nr_hosts, const lxm__evac_vm *vms, size_t nr_vms,
                       const char *const *want)
{
    lxm__plan plan;
    size_t i, refused = 0;

    ck_assert_int_eq(
        lxm__plan_make(pp, &hosts[0], hosts, nr_hosts, vms, nr_vms, &plan), 0);
    ck_assert_uint_eq(plan.nr_entries, nr_vms);
    for (i = 0; i < nr_vms; i++) {
        const char *got = dest_of(&plan, hosts, vms, vms[i].info.name);

        ck_assert_msg(!strcmp(got, want[i]), "vm %s went to %s, want %s",
                      vms[i].info.name, got, want[i]);
        refused += !strcmp(want[i], "-");
    }
    ck_assert_uint_eq(plan.nr_refused, refused);
    lxm__plan_dispose(&plan);
}

START_TEST(test_plan_binpack)
{
    lxm__evac_host hosts[] = {
        mk_host(0, "src", 100 * GiB, 3), /* the source: never a target */
        mk_host(1, "A", 4 * GiB, 0),
        mk_host(2, "B", 2 * GiB, 0),
        mk_host(3, "C", 8 * GiB, 0),
    };
    lxm__evac_vm vms[] = { mk_vm("a", GiB), mk_vm("b", GiB),
                           mk_vm("big", 3 * GiB) };
    /* big first: A is the fullest that fits (1G left); then a: A (0
     * left); then b: B (1G left) before C (7G). */
    const char *want[] = { "A", "B", "A" };

    check_plan(NULL, hosts, 4, vms, 3, want);
}
END_TEST

START_TEST(test_plan_even)
{
    lxm__plan_params pp;
    lxm__evac_host hosts[] = {
        mk_host(0, "src", 0, 3),
        mk_host(1, "A", 4 * GiB, 0),
        mk_host(2, "B", 8 * GiB, 0),
        mk_host(3, "C", 32 * GiB, 6),
    };
    lxm__evac_vm vms[] = { mk_vm("v1", GiB), mk_vm("v2", GiB),
                           mk_vm("v3", GiB) };
    /* MigrationThreshold 5: A and B (0 VMs) are balanced with each other
     * up to 4 VMs apart, C (6) is not; the one with the most memory
     * left wins each time. */
    const char *want5[] = { "B", "B", "B" };
    /* MigrationThreshold 1: by count, then memory left. */
    const char *want1[] = { "B", "A", "B" };

    lxm__plan_params_init(&pp);
    pp.policy = LXM__PLAN_EVEN;
    ck_assert_uint_eq(pp.high_vm_count, 10);
    ck_assert_uint_eq(pp.migration_threshold, 5);
    ck_assert_uint_eq(pp.spm_vm_grace, 5);
    check_plan(&pp, hosts, 4, vms, 3, want5);
    pp.migration_threshold = 1;
    check_plan(&pp, hosts, 4, vms, 3, want1);
    pp.migration_threshold = 0; /* as 1 */
    check_plan(&pp, hosts, 4, vms, 3, want1);
}
END_TEST

START_TEST(test_plan_even_high_vm_count)
{
    lxm__plan_params pp;
    lxm__evac_host hosts[] = {
        mk_host(0, "src", 0, 2),
        mk_host(1, "A", 16 * GiB, 10), /* at HighVmCount already */
        mk_host(2, "B", 2 * GiB, 3),
    };
    lxm__evac_vm vms[] = { mk_vm("small", GiB), mk_vm("large", 4 * GiB) };
    const char *want[] = { "B", "A" };
    lxm__plan plan;
    const lxm__plan_entry *e;

    lxm__plan_params_init(&pp);
    pp.policy = LXM__PLAN_EVEN;
    /* large: only A fits: placed over HighVmCount, with a warning.
     * small: B is under the limit. */
    check_plan(&pp, hosts, 3, vms, 2, want);
    ck_assert_int_eq(lxm__plan_make(&pp, &hosts[0], hosts, 3, vms, 2, &plan),
                     0);
    e = entry_of(&plan, vms, "large");
    ck_assert_int_eq(e->check, LXM__CHECK_WARN);
    ck_assert_ptr_nonnull(strstr(e->reason, "over HighVmCount 10"));
    e = entry_of(&plan, vms, "small");
    ck_assert_int_eq(e->check, LXM__CHECK_OK);
    lxm__plan_dispose(&plan);

    /* A higher limit: A (count 10) is not overloaded, but B has fewer
     * VMs. */
    pp.high_vm_count = 20;
    pp.migration_threshold = 1;
    {
        const char *want2[] = { "B", "A" };

        check_plan(&pp, hosts, 3, vms, 2, want2);
    }
}
END_TEST

START_TEST(test_plan_even_spm_grace)
{
    lxm__plan_params pp;
    lxm__evac_host hosts[] = {
        mk_host(0, "src", 0, 1),
        mk_host(1, "A", 8 * GiB, 0),
        mk_host(2, "B", 8 * GiB, 3),
    };
    lxm__evac_vm vms[] = { mk_vm("v", GiB) };
    const char *want_spm[] = { "B" };   /* A counts 0 + 5 */
    const char *want_nospm[] = { "A" }; /* A counts 0 */

    lxm__plan_params_init(&pp);
    pp.policy = LXM__PLAN_EVEN;
    pp.migration_threshold = 1;
    hosts[1].is_spm = true;
    check_plan(&pp, hosts, 3, vms, 1, want_spm);
    pp.spm_vm_grace = 0;
    check_plan(&pp, hosts, 3, vms, 1, want_nospm);
    pp.spm_vm_grace = 5;
    hosts[1].is_spm = false;
    check_plan(&pp, hosts, 3, vms, 1, want_nospm);
    /* The grace can push the SPM host over HighVmCount: avoided. */
    hosts[1].is_spm = true;
    hosts[1].nr_vms = 5; /* 5 + 5 = 10: one more is 11 */
    hosts[2].nr_vms = 9;
    pp.migration_threshold = 5;
    check_plan(&pp, hosts, 3, vms, 1, want_spm);
}
END_TEST

START_TEST(test_plan_power_saving)
{
    lxm__plan_params pp;
    lxm__evac_host hosts[] = {
        mk_host(0, "src", 0, 2),
        mk_host(1, "A", 3 * GiB, 0),  /* empty, fullest */
        mk_host(2, "C", 8 * GiB, 1),  /* busy */
        mk_host(3, "E", 12 * GiB, 0), /* empty */
        mk_host(4, "F", 16 * GiB, 0), /* empty, most memory */
    };
    lxm__evac_vm vms[] = { mk_vm("small", 2 * GiB) };
    lxm__evac_vm big[] = { mk_vm("huge", 10 * GiB) };
    lxm__evac_vm both[] = { mk_vm("huge", 10 * GiB), mk_vm("small", 2 * GiB),
                            mk_vm("tiny", GiB) };
    const char *want_bp[] = { "A" }, *want_ps[] = { "C" };
    const char *want_bp_big[] = { "E" }, *want_ps_big[] = { "F" };
    /* huge wakes F; small then goes to the fullest busy host (C: 6G
     * left, F: 4G left -> F); tiny too (F 3G left... F has 4G-1G=3G
     * vs C 7G: F). */
    const char *want_ps_both[] = { "F", "F", "F" };

    lxm__plan_params_init(&pp);
    /* binpack takes the fullest host, even an empty one. */
    check_plan(&pp, hosts, 5, vms, 1, want_bp);
    check_plan(&pp, hosts, 5, big, 1, want_bp_big);
    pp.policy = LXM__PLAN_POWER_SAVING;
    /* power saving fills a busy host and leaves the empty ones off */
    check_plan(&pp, hosts, 5, vms, 1, want_ps);
    /* and wakes the empty host with the most memory only when needed */
    check_plan(&pp, hosts, 5, big, 1, want_ps_big);
    check_plan(&pp, hosts, 5, both, 3, want_ps_both);
    /* A busy host at HighVmCount is avoided while an empty one fits. */
    hosts[2].nr_vms = 10;
    check_plan(&pp, hosts, 5, vms, 1, want_ps_big);
}
END_TEST

START_TEST(test_plan_refusals)
{
    lxm__evac_host hosts[] = {
        mk_host(0, "src", 0, 5),
        mk_host(1, "A", 4 * GiB, 0),
        mk_host(2, "B", 2 * GiB, 0),
        mk_host(3, "down", 64 * GiB, 0),
    };
    lxm__evac_vm vms[] = {
        mk_vm("pci", GiB),
        mk_vm("huge", 32 * GiB),
        mk_vm("ha", GiB),
        mk_vm("ok", 3 * GiB),
    };
    lxm__plan plan;
    const lxm__plan_entry *e;

    hosts[3].reachable = false;
    vms[0].info.nr_pci = 1;
    vms[2].ha_protected = true;
    ck_assert_int_eq(lxm__plan_make(NULL, &hosts[0], hosts, 4, vms, 4, &plan),
                     0);
    ck_assert_uint_eq(plan.nr_entries, 4);
    ck_assert_uint_eq(plan.nr_refused, 2);

    e = entry_of(&plan, vms, "pci");
    ck_assert_int_eq(e->dest, -1);
    ck_assert_int_eq(e->check, LXM__CHECK_REFUSE);
    ck_assert_ptr_nonnull(strstr(e->reason, "PCI passthrough (1 device)"));

    /* Not enough memory anywhere: every host's reason. */
    e = entry_of(&plan, vms, "huge");
    ck_assert_int_eq(e->dest, -1);
    ck_assert_int_eq(e->check, LXM__CHECK_REFUSE);
    ck_assert_msg(strstr(e->reason, "no host can take it: A: not enough free"
                                    " memory (32768 MiB needed, 4096 MiB"
                                    " free)"),
                  "%s", e->reason);
    ck_assert_msg(strstr(e->reason, "B: not enough free memory"), "%s",
                  e->reason);
    ck_assert_msg(strstr(e->reason, "down: its agent did not answer"), "%s",
                  e->reason);
    ck_assert_ptr_null(strstr(e->reason, "src"));

    /* The HA VM is placed, with its warning. */
    e = entry_of(&plan, vms, "ha");
    ck_assert_int_ge(e->dest, 1);
    ck_assert_int_eq(e->check, LXM__CHECK_WARN);
    ck_assert_ptr_nonnull(strstr(e->reason, "HA-protected"));

    e = entry_of(&plan, vms, "ok");
    ck_assert_str_eq(hosts[e->dest].pool->name, "A");
    ck_assert_str_eq(e->reason, "");
    /* Planned largest first. */
    ck_assert_str_eq(vms[plan.entries[0].vm].info.name, "huge");
    ck_assert_str_eq(vms[plan.entries[1].vm].info.name, "ok");
    lxm__plan_dispose(&plan);
    lxm__plan_dispose(&plan);
    lxm__plan_dispose(NULL);

    /* A pool of one. */
    ck_assert_int_eq(
        lxm__plan_make(NULL, &hosts[0], hosts, 1, &vms[3], 1, &plan), 0);
    ck_assert_uint_eq(plan.nr_refused, 1);
    ck_assert_str_eq(plan.entries[0].reason, "no other host in the pool");
    lxm__plan_dispose(&plan);

    /* Nothing to move. */
    ck_assert_int_eq(lxm__plan_make(NULL, &hosts[0], hosts, 4, NULL, 0, &plan),
                     0);
    ck_assert_uint_eq(plan.nr_entries, 0);
    lxm__plan_dispose(&plan);
}
END_TEST

/* Memory taken by earlier placements is not offered again. */
START_TEST(test_plan_capacity)
{
    lxm__evac_host hosts[] = {
        mk_host(0, "src", 0, 5),
        mk_host(1, "A", 3 * GiB, 0),
        mk_host(2, "B", 2 * GiB, 0),
    };
    lxm__evac_vm vms[] = { mk_vm("v1", 2 * GiB), mk_vm("v2", 2 * GiB),
                           mk_vm("v3", 2 * GiB) };
    const char *want[] = { "B", "A", "-" };

    check_plan(NULL, hosts, 3, vms, 3, want);
}
END_TEST

/* Same input, same plan; shuffled input, same placement by name. */
START_TEST(test_plan_determinism)
{
    static const lxm__plan_policy policies[] = { LXM__PLAN_BINPACK,
                                                 LXM__PLAN_EVEN,
                                                 LXM__PLAN_POWER_SAVING };
    lxm__evac_host hosts[6], shuffled[6];
    lxm__evac_vm vms[12], vshuf[12];
    char names[12][LXM__NAME_MAX], name[16];
    lxm__plan_params pp;
    lxm__plan p1, p2, p3;
    size_t i, k;

    hosts[0] = mk_host(0, "src", 0, 12);
    for (i = 1; i < 6; i++) {
        snprintf(name, sizeof(name), "h%zu", i);
        /* Equal hosts in pairs: the name breaks the ties. */
        hosts[i] = mk_host((int)i, name, (4 + (i / 2) * 2) * GiB, (i / 2));
    }
    for (i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "vm%02zu", i);
        vms[i] = mk_vm(name, (i % 3 + 1) * 512 * MiB);
    }
    for (k = 0; k < LXM_ARRAY_SIZE(policies); k++) {
        lxm__plan_params_init(&pp);
        pp.policy = policies[k];
        pp.migration_threshold = 2;
        ck_assert_int_eq(lxm__plan_make(&pp, &hosts[0], hosts, 6, vms, 12, &p1),
                         0);
        ck_assert_int_eq(lxm__plan_make(&pp, &hosts[0], hosts, 6, vms, 12, &p2),
                         0);
        ck_assert_uint_eq(p1.nr_entries, p2.nr_entries);
        ck_assert_int_eq(
            memcmp(p1.entries, p2.entries, p1.nr_entries * sizeof(*p1.entries)),
            0);
        /* Reverse the hosts (the source last) and rotate the VMs. */
        for (i = 0; i < 6; i++)
            shuffled[i] = hosts[5 - i];
        for (i = 0; i < 12; i++)
            vshuf[i] = vms[(i + 5) % 12];
        ck_assert_int_eq(
            lxm__plan_make(&pp, &shuffled[5], shuffled, 6, vshuf, 12, &p3), 0);
        for (i = 0; i < 12; i++) {
            snprintf(names[i], sizeof(names[i]), "%s",
                     dest_of(&p1, hosts, vms, vms[i].info.name));
            ck_assert_msg(!strcmp(names[i], dest_of(&p3, shuffled, vshuf,
                                                    vms[i].info.name)),
                          "%s: %s vm %s: %s vs %s",
                          lxm__plan_policy_name(policies[k]), "shuffled",
                          vms[i].info.name, names[i],
                          dest_of(&p3, shuffled, vshuf, vms[i].info.name));
            ck_assert_str_ne(names[i], "-");
        }
        lxm__plan_dispose(&p1);
        lxm__plan_dispose(&p2);
        lxm__plan_dispose(&p3);
    }
}
END_TEST

START_TEST(test_plan_pick)
{
    lxm__evac_host hosts[] = {
        mk_host(0, "src", 0, 3),
        mk_host(1, "A", 2 * GiB, 0),
        mk_host(2, "B", 4 * GiB, 0),
        mk_host(3, "C", 8 * GiB, 0),
    };
    uint64_t free_mem[4] = { 64 * GiB, 2 * GiB, 4 * GiB, 8 * GiB };
    bool excluded[4] = { false, false, false, false };
    lxm__evac_vm vm = mk_vm("v", 2 * GiB);
    char reason[256];

    /* binpack: A is fullest. */
    ck_assert_int_eq(lxm__plan_pick(NULL, &hosts[0], hosts, 4, free_mem,
                                    excluded, &vm, reason, sizeof(reason)),
                     1);
    ck_assert_str_eq(reason, "");
    /* A failed for it: B next. */
    excluded[1] = true;
    ck_assert_int_eq(lxm__plan_pick(NULL, &hosts[0], hosts, 4, free_mem,
                                    excluded, &vm, reason, sizeof(reason)),
                     2);
    /* B's memory is gone meanwhile: C. */
    free_mem[2] = GiB;
    ck_assert_int_eq(lxm__plan_pick(NULL, &hosts[0], hosts, 4, free_mem,
                                    excluded, &vm, reason, sizeof(reason)),
                     3);
    /* Everything excluded or full: -1 with the reasons. */
    excluded[3] = true;
    ck_assert_int_eq(lxm__plan_pick(NULL, &hosts[0], hosts, 4, free_mem,
                                    excluded, &vm, reason, sizeof(reason)),
                     -1);
    ck_assert_msg(strstr(reason, "A: excluded"), "%s", reason);
    ck_assert_msg(strstr(reason, "B: not enough free memory"), "%s", reason);
    ck_assert_msg(strstr(reason, "C: excluded"), "%s", reason);
    /* NULL excluded: none. */
    ck_assert_int_eq(lxm__plan_pick(NULL, &hosts[0], hosts, 4, free_mem, NULL,
                                    &vm, reason, sizeof(reason)),
                     1);
    /* A VM rule refuses before any host. */
    vm.info.nomigrate = true;
    ck_assert_int_eq(lxm__plan_pick(NULL, &hosts[0], hosts, 4, free_mem, NULL,
                                    &vm, reason, sizeof(reason)),
                     -1);
    ck_assert_ptr_nonnull(strstr(reason, "nomigrate"));
}
END_TEST

START_TEST(test_plan_policy_names)
{
    ck_assert_int_eq(lxm__plan_policy_parse("binpack"), LXM__PLAN_BINPACK);
    ck_assert_int_eq(lxm__plan_policy_parse("even"), LXM__PLAN_EVEN);
    ck_assert_int_eq(lxm__plan_policy_parse("power-saving"),
                     LXM__PLAN_POWER_SAVING);
    ck_assert_int_eq(lxm__plan_policy_parse("Even"), -1);
    ck_assert_int_eq(lxm__plan_policy_parse(""), -1);
    ck_assert_int_eq(lxm__plan_policy_parse(NULL), -1);
    ck_assert_str_eq(lxm__plan_policy_name(LXM__PLAN_POWER_SAVING),
                     "power-saving");
    ck_assert_str_eq(lxm__plan_policy_name(LXM__PLAN_EVEN), "even");
    ck_assert_str_eq(lxm__plan_policy_name(LXM__PLAN_BINPACK), "binpack");
}
END_TEST

Suite *lxm_test_evacuate_plan_suite(void)
{
    Suite *s = suite_create("evacuate_plan");
    TCase *tc = tcase_create("precheck");

    tcase_add_loop_test(tc, test_precheck_vm, 0, LXM_ARRAY_SIZE(vm_cases));
    tcase_add_test(tc, test_precheck_vm_ha_info);
    tcase_add_loop_test(tc, test_precheck_host, 0, LXM_ARRAY_SIZE(host_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("planner");
    tcase_add_test(tc, test_plan_binpack);
    tcase_add_test(tc, test_plan_even);
    tcase_add_test(tc, test_plan_even_high_vm_count);
    tcase_add_test(tc, test_plan_even_spm_grace);
    tcase_add_test(tc, test_plan_power_saving);
    tcase_add_test(tc, test_plan_refusals);
    tcase_add_test(tc, test_plan_capacity);
    tcase_add_test(tc, test_plan_determinism);
    tcase_add_test(tc, test_plan_pick);
    tcase_add_test(tc, test_plan_policy_names);
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
