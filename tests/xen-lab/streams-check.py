#!/usr/bin/env python3
"""streams-check.py --xlmig XLMIG --verify VERIFY FILE

Checks a stream captured on real Xen (an `xl save` image or the bytes of
a live `xl migrate`) two ways and compares them:

  xlmig stream-info --json --allow-trailing FILE   (this project)
  verify-stream-v2 -v -f xl -i FILE                (Xen's own checker)

Both must accept the stream, and stream-info's records.libxl.* and
records.libxc.* must equal the number of records of each type that
verify-stream-v2 lists ("Squashed N Page Data records together" counts
N).  Prints a table; the last line is a one-line verdict.  Exit 0 when
everything agrees.  The trailing bytes of a captured `xl migrate` (its
handshake after the stream) are allowed.
"""
import argparse
import json
import re
import subprocess
import sys

# Record types in type order: verify-stream-v2's names (its libxl.py /
# libxc.py) and stream-info's JSON keys.
LIBXL = [("End", "END"), ("Libxc context", "LIBXC_CONTEXT"),
         ("Emulator xenstore data", "EMULATOR_XENSTORE_DATA"),
         ("Emulator context", "EMULATOR_CONTEXT"),
         ("Checkpoint end", "CHECKPOINT_END"),
         ("Checkpoint state", "CHECKPOINT_STATE")]
LIBXC = [("End", "END"), ("Page data", "PAGE_DATA"),
         ("x86 PV info", "X86_PV_INFO"),
         ("x86 PV P2M frames", "X86_PV_P2M_FRAMES"),
         ("x86 PV vcpu basic", "X86_PV_VCPU_BASIC"),
         ("x86 PV vcpu extended", "X86_PV_VCPU_EXTENDED"),
         ("x86 PV vcpu xsave", "X86_PV_VCPU_XSAVE"),
         ("Shared info", "SHARED_INFO"), ("TSC info", "X86_TSC_INFO"),
         ("HVM context", "HVM_CONTEXT"), ("HVM params", "HVM_PARAMS"),
         ("Toolstack", "TOOLSTACK"), ("x86 PV vcpu msrs", "X86_PV_VCPU_MSRS"),
         ("Verify", "VERIFY"), ("Checkpoint", "CHECKPOINT"),
         ("Checkpoint dirty pfn list", "CHECKPOINT_DIRTY_PFN_LIST"),
         ("Static data end", "STATIC_DATA_END"),
         ("x86 CPUID policy", "X86_CPUID_POLICY"),
         ("x86 MSR policy", "X86_MSR_POLICY")]


def verify_counts(verify, path):
    p = subprocess.run([verify, "-v", "-f", "xl", "-i", path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=1800)
    if p.returncode != 0:
        tail = " | ".join(p.stdout.strip().splitlines()[-3:])
        raise RuntimeError("verify-stream-v2 exit %d: %s" % (p.returncode, tail))
    names = {"Libxl": dict(LIBXL), "Libxc": dict(LIBXC)}
    counts = {"libxl": {}, "libxc": {}}
    for line in p.stdout.splitlines():
        m = re.match(r"Squashed (\d+) Page Data records together", line)
        if m:
            c = counts["libxc"]
            c["PAGE_DATA"] = c.get("PAGE_DATA", 0) + int(m.group(1))
            continue
        m = re.match(r"(Libxl|Libxc) Record: ([^,]+),", line)
        if m:
            key = names[m.group(1)].get(m.group(2))
            if key is None:
                raise RuntimeError("unknown record in verify-stream-v2 output: "
                                   + line)
            c = counts[m.group(1).lower()]
            c[key] = c.get(key, 0) + 1
    return counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--xlmig", required=True)
    ap.add_argument("--verify", required=True)
    ap.add_argument("file")
    a = ap.parse_args()

    try:
        p = subprocess.run([a.xlmig, "stream-info", "--json", "--allow-trailing",
                            a.file], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=600)
    except OSError as e:
        print("xlmig stream-info: cannot run %s: %s" % (a.xlmig, e))
        return 1
    if p.returncode != 0:
        print("xlmig stream-info rejects %s (exit %d): %s"
              % (a.file, p.returncode, p.stderr.strip()))
        return 1
    info = json.loads(p.stdout)
    try:
        vc = verify_counts(a.verify, a.file)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        print("verify-stream-v2 on %s: %s" % (a.file, e))
        return 1

    bad = []
    total = 0
    print("%-8s %-26s %12s %12s" % ("layer", "record", "stream-info",
                                    "verify-v2"))
    for layer, table in (("libxl", LIBXL), ("libxc", LIBXC)):
        for _, key in table:
            ours = info["records"][layer].get(key)
            theirs = vc[layer].get(key, 0)
            if ours or theirs:
                print("%-8s %-26s %12s %12d" % (layer, key, ours, theirs))
            if ours != theirs:
                bad.append("%s.%s %s != %d" % (layer, key, ours, theirs))
            total += theirs
    print("bytes %d, guest %s, domain %s, %d data pages, iterations %s, "
          "trailing bytes %d" % (info["bytes"], info["guest_type"],
                                  info["domain_name"], info["data_pages"],
                                  info["iterations"], info["trailing_bytes"]))
    if bad:
        print("stream-info and verify-stream-v2 disagree: " + "; ".join(bad))
        return 1
    print("both accept it; the same %d records per type (%d PAGE_DATA, "
          "%d pre-copy iterations)" % (total, vc["libxc"].get("PAGE_DATA", 0),
                                      len(info["iterations"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
