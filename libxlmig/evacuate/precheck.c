/*
 * precheck.c - can this VM leave its host, and can it go to that one?
 * Pure: no I/O, no globals; the reasons are one line each.
 *
 * Entry points: lxm__precheck_vm(), lxm__precheck_host().
 *
 * VM rules, in this order (the first refusal is the reason):
 *   PCI passthrough (nr_pci > 0)       refuse
 *   virtual USB (nr_vusb > 0)          refuse
 *   nomigrate                          refuse
 *   on_boot "reset"                    refuse (its disks are reset at
 *                                      boot: a moved VM would lose them)
 *   HA-protected                       warn
 * Host rules, in this order:
 *   the destination's agent answered
 *   Xen version >= the source's (major, minor, then the patch level
 *   of xen_extra's leading ".N" when both have one)
 *   the same CPU vendor as the source
 *   the destination's featureset has every bit of the VM's
 *   the VM's memory <= free_memory
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evacuate/evacuate.h"

lxm__check_result lxm__precheck_vm(const lxm__evac_vm *vm, char *reason,
                                   size_t reason_len)
{
    const lxm__domain_info *di = &vm->info;

    if (reason_len)
        reason[0] = '\0';
    if (di->nr_pci) {
        snprintf(reason, reason_len,
                 "PCI passthrough (%" PRIu32 " device%s) cannot migrate",
                 di->nr_pci, di->nr_pci == 1 ? "" : "s");
        return LXM__CHECK_REFUSE;
    }
    if (di->nr_vusb) {
        snprintf(reason, reason_len,
                 "virtual USB (%" PRIu32 " device%s) cannot migrate",
                 di->nr_vusb, di->nr_vusb == 1 ? "" : "s");
        return LXM__CHECK_REFUSE;
    }
    if (di->nomigrate) {
        snprintf(reason, reason_len, "marked nomigrate");
        return LXM__CHECK_REFUSE;
    }
    if (!strcmp(di->on_boot, "reset")) {
        snprintf(reason, reason_len,
                 "on-boot=reset: its disks are reset at boot");
        return LXM__CHECK_REFUSE;
    }
    if (vm->ha_protected || di->ha_protected) {
        snprintf(reason, reason_len,
                 "HA-protected: its HA daemon may restart it while it moves");
        return LXM__CHECK_WARN;
    }
    return LXM__CHECK_OK;
}

/* The patch level in ".7", ".0-sim", "-rc1"...: -1 when none. */
static long patch_level(const char *extra)
{
    char *end;
    long v;

    if (extra[0] != '.' || extra[1] < '0' || extra[1] > '9')
        return -1;
    v = strtol(extra + 1, &end, 10);
    return v < 0 ? -1 : v;
}

/* <0, 0, >0 like strcmp; patch levels only count when both have one. */
static int xen_cmp(const lxm__host_info *a, const lxm__host_info *b)
{
    long pa, pb;

    if (a->xen_major != b->xen_major)
        return a->xen_major < b->xen_major ? -1 : 1;
    if (a->xen_minor != b->xen_minor)
        return a->xen_minor < b->xen_minor ? -1 : 1;
    pa = patch_level(a->xen_extra);
    pb = patch_level(b->xen_extra);
    if (pa < 0 || pb < 0 || pa == pb)
        return 0;
    return pa < pb ? -1 : 1;
}

lxm__check_result lxm__precheck_host(const lxm__evac_vm *vm,
                                     const lxm__host_info *src,
                                     const lxm__evac_host *dst,
                                     uint64_t free_memory, char *reason,
                                     size_t reason_len)
{
    const lxm__host_info *di = &dst->info;
    unsigned int i;

    if (reason_len)
        reason[0] = '\0';
    if (!dst->reachable) {
        snprintf(reason, reason_len, "its agent did not answer");
        return LXM__CHECK_REFUSE;
    }
    if (xen_cmp(di, src) < 0) {
        snprintf(reason, reason_len,
                 "Xen %u.%u%s is older than the source's %u.%u%s",
                 di->xen_major, di->xen_minor, di->xen_extra, src->xen_major,
                 src->xen_minor, src->xen_extra);
        return LXM__CHECK_REFUSE;
    }
    if (strcmp(di->cpu_vendor, src->cpu_vendor)) {
        snprintf(reason, reason_len, "CPU vendor %s, the source has %s",
                 di->cpu_vendor[0] ? di->cpu_vendor : "unknown",
                 src->cpu_vendor[0] ? src->cpu_vendor : "unknown");
        return LXM__CHECK_REFUSE;
    }
    for (i = 0; i < LXM__FEATURESET_WORDS; i++) {
        uint32_t missing = vm->info.featureset[i] & ~di->featureset[i];

        if (missing) {
            snprintf(reason, reason_len,
                     "lacks CPU features the VM uses (featureset word %u:"
                     " 0x%08" PRIx32 ")",
                     i, missing);
            return LXM__CHECK_REFUSE;
        }
    }
    if (vm->info.memory_bytes > free_memory) {
        snprintf(reason, reason_len,
                 "not enough free memory (%" PRIu64 " MiB needed, %" PRIu64
                 " MiB free)",
                 (vm->info.memory_bytes + (1u << 20) - 1) >> 20,
                 free_memory >> 20);
        return LXM__CHECK_REFUSE;
    }
    return LXM__CHECK_OK;
}

/*
 * Local variables:
 * mode: C
 * c-basic-offset: 4
 * indent-tabs-mode: nil
 * End:
 */
