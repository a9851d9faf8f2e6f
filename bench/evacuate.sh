#!/usr/bin/env bash
# bench/evacuate.sh - parallel batched host evacuation vs sequential
# (issue 6, item 9).  Called by bench/run.sh; prints a markdown section
# on stdout (progress on stderr) and exits non-zero only when the bench
# itself could not run (a goal that is missed is reported, not fatal).
#
# Setup (needs root and iproute2; everything is removed on exit):
#   4 sim agents h0..h3, each in its own network namespace lxmev-hN,
#   joined to a bridge lxmev-br in the root namespace by a veth pair;
#   both ends of every veth shaped with tc tbf (LXM_BENCH_RATE, 1gbit),
#   so every host sends and receives at most that much.  The agents
#   listen on 10.77.0.(N+1):8702; xlmig runs in the root namespace
#   (10.77.0.254) and reaches each agent over its link.
#   40 VMs (LXM_BENCH_VMS) on h0, sizes 256 MiB..1 GiB in a fixed
#   spread (divided by LXM_BENCH_SCALE for quick runs), dirty rates
#   0 / 1000 / 4000 / 12000 pages/s in turn over a 64 MiB working set
#   (also scaled), the same seeds in both runs.
#
# Runs (same agents, same VMs re-created on h0 between them):
#   batch   `xlmig host-evacuate` with batch 10 from a test xapi.conf
#           (evacuation-batch-size = 10), default dest cap (3)
#   seq     the same with --batch-size 1
# Reported: total time of each and their ratio (goal >= 1.8x faster
# than sequential), worst per-VM downtime of each and their ratio (goal
# <= 2x), lost VMs (goal 0: after each run every VM runs on exactly one
# host, none left half-migrated).
#
# Environment: LXM_BENCH_VMS (40), LXM_BENCH_SCALE (1: full size),
# LXM_BENCH_RATE (1gbit), LXM_BENCH_BATCH (10), LXM_BENCH_DIR (work
# dir; default $TMPDIR or /tmp: guest memory files live there),
# LXM_BENCH_MIX (zero=60,code=15,text=15: the rest random).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
xlmig="$top/tools/xlmig/xlmig"
xlmigd="$top/tools/xlmigd/xlmigd"
nr_vms=${LXM_BENCH_VMS:-40}
scale=${LXM_BENCH_SCALE:-1}
rate=${LXM_BENCH_RATE:-1gbit}
batch=${LXM_BENCH_BATCH:-10}
mix=${LXM_BENCH_MIX:-zero=60,code=15,text=15}
hosts=4
ns=lxmev
net=10.77.0

die() {
    echo "bench/evacuate: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tc)"
if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
    echo "bench/evacuate: installing iproute2" >&2
    apt-get install -y -q iproute2 >&2 || die "cannot install iproute2"
fi
[ -x "$xlmig" ] && [ -x "$xlmigd" ] || die "build first (make)"
command -v python3 >/dev/null || die "needs python3 for the numbers"

work=$(mktemp -d "${LXM_BENCH_DIR:-${TMPDIR:-/tmp}}/lxm-bench-evac-XXXXXX")
pids=()

cleanup() {
    local p i
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    for ((i = 0; i < hosts; i++)); do
        ip link del "$ns-v$i" 2>/dev/null || true
        ip netns del "$ns-h$i" 2>/dev/null || true
    done
    ip link del "$ns-br" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- network ----------------------------------------------------------
for ((i = 0; i < hosts; i++)); do
    if ip netns list | grep -qw "$ns-h$i"; then
        die "namespace $ns-h$i exists (another run, or a stale one: ip netns del $ns-h$i)"
    fi
done
ip link add "$ns-br" type bridge || die "cannot create bridge $ns-br"
ip addr add "$net.254/24" dev "$ns-br"
ip link set "$ns-br" up
for ((i = 0; i < hosts; i++)); do
    ip netns add "$ns-h$i" || die "cannot create network namespace $ns-h$i"
    ip link add "$ns-v$i" type veth peer name eth0 netns "$ns-h$i" ||
        die "cannot create veth $ns-v$i"
    ip link set "$ns-v$i" master "$ns-br" up
    ip -n "$ns-h$i" addr add "$net.$((i + 1))/24" dev eth0
    ip -n "$ns-h$i" link set eth0 up
    ip -n "$ns-h$i" link set lo up
    # Both directions of the link: host egress, and bridge -> host.
    tc -n "$ns-h$i" qdisc add dev eth0 root tbf rate "$rate" burst 512kb \
        latency 50ms || die "tc tbf failed in $ns-h$i"
    tc qdisc add dev "$ns-v$i" root tbf rate "$rate" burst 512kb \
        latency 50ms || die "tc tbf failed on $ns-v$i"
done

# ---- agents -----------------------------------------------------------
: >"$work/pool.conf"
for ((i = 0; i < hosts; i++)); do
    mkdir -p "$work/h$i"
    ip netns exec "$ns-h$i" "$xlmigd" --backend sim --foreground \
        --state-dir "$work/h$i/state" --listen "$net.$((i + 1)):8702" \
        --control "$work/h$i/ctl.sock" --ready-file "$work/h$i/ready" \
        --hostname "h$i" --sim-memory 64G >"$work/h$i/log" 2>&1 &
    pids+=($!)
    echo "h$i $net.$((i + 1)):8702" >>"$work/pool.conf"
done
for ((i = 0; i < hosts; i++)); do
    for ((t = 0; t < 200; t++)); do
        [ -f "$work/h$i/ready" ] && break
        sleep 0.1
    done
    [ -f "$work/h$i/ready" ] || die "agent h$i not ready: $(tail -3 "$work/h$i/log")"
done
mkdir -p "$work/xapi.conf.d"
printf '# bench/evacuate.sh\nevacuation-batch-size = %s\n' "$batch" \
    >"$work/xapi.conf"

# ---- VMs --------------------------------------------------------------
rates=(0 1000 4000 12000)
vm_mib() { # 256..1024 MiB, a fixed spread
    echo $(((256 + ($1 * 389) % 769) / scale))
}
create_vms() {
    local j mib total=0
    for ((j = 1; j <= nr_vms; j++)); do
        mib=$(vm_mib "$j")
        total=$((total + mib))
        "$xlmig" -H "$work/h0/ctl.sock" sim-create --memory "${mib}M" \
            --dirty-rate "${rates[$((j % 4))]}" \
            --working-set "$((64 / scale > 0 ? 64 / scale : 1))M" \
            --mix "$mix" --seed "$j" "$(printf 'vm%02d' "$j")" >/dev/null
    done
    echo "$total"
}
destroy_all() {
    local i n
    for ((i = 0; i < hosts; i++)); do
        for n in $("$xlmig" -H "$work/h$i/ctl.sock" list --json |
            python3 -c 'import json,sys; [print(d["name"]) for d in json.load(sys.stdin)["domains"]]'); do
            "$xlmig" -H "$work/h$i/ctl.sock" sim-destroy "$n" >/dev/null
        done
    done
}
# Every VM on exactly one host, nothing half-migrated: prints lost VMs.
lost_vms() {
    local i
    for ((i = 0; i < hosts; i++)); do
        "$xlmig" -H "$work/h$i/ctl.sock" list --json
        echo
    done | python3 -c '
import json, sys
n = int(sys.argv[1]); seen = {}
for line in sys.stdin:
    if line.strip():
        for d in json.loads(line)["domains"]:
            seen[d["name"]] = seen.get(d["name"], 0) + 1
want = ["vm%02d" % j for j in range(1, n + 1)]
lost = [w for w in want if seen.get(w, 0) != 1]
lost += [k for k in seen if k not in want]
print(len(lost))' "$nr_vms"
}

run_one() { # label, extra args
    local label=$1 rc=0
    shift
    destroy_all
    echo "bench/evacuate: creating $nr_vms VMs on h0..." >&2
    mib_total=$(create_vms)
    echo "bench/evacuate: $label: evacuating h0 ($mib_total MiB)..." >&2
    "$xlmig" host-evacuate --json --pool "$work/pool.conf" \
        --xapi-conf "$work/xapi.conf" --xapi-conf-dir "$work/xapi.conf.d" \
        "$@" h0 >"$work/$label.json" 2>"$work/$label.err" || rc=$?
    echo "$rc" >"$work/$label.rc"
    lost_vms >"$work/$label.lost"
    echo "bench/evacuate: $label: exit $rc, lost $(cat "$work/$label.lost")" >&2
}

run_one batch
run_one seq --batch-size 1

python3 - "$work" "$nr_vms" "$scale" "$rate" "$mib_total" "$mix" <<'PY'
import json, os, sys
work, nr, scale, rate, mib, mix = sys.argv[1:7]
r = {}
for k in ("batch", "seq"):
    with open(f"{work}/{k}.json") as f:
        j = json.load(f)
    j["rc"] = open(f"{work}/{k}.rc").read().strip()
    j["lost"] = int(open(f"{work}/{k}.lost").read().strip())
    r[k] = j
b, s = r["batch"], r["seq"]
speed = s["total_ms"] / b["total_ms"] if b["total_ms"] else 0
down = (b["worst_downtime_ms"] / s["worst_downtime_ms"]
        if s["worst_downtime_ms"] else 0)
def mean(j, k):
    v = [x[k] for x in j["vms"] if x["status"] == "migrated"]
    return sum(v) / len(v) if v else 0
ok = lambda c: "yes" if c else "**no**"
def in_flight(j):
    # most migrations running at once, from the VMs' start/end times
    ev = []
    for x in j["vms"]:
        if x["attempts"]:
            ev += [(x["start_ms"], 1), (x["end_ms"], -1)]
    cur = best = 0
    for _, d in sorted(ev, key=lambda e: (e[0], e[1])):
        cur += d
        best = max(best, cur)
    return best
def dests(j):
    c = {}
    for x in j["vms"]:
        if x["destination"]:
            c[x["destination"]] = c.get(x["destination"], 0) + 1
    return " ".join(f"{k}:{c[k]}" for k in sorted(c))
print(f"""## bench/evacuate

4 sim hosts, each in its own network namespace, veth links to a bridge
shaped with tc tbf at {rate} both ways; {nr} VMs on h0 ({mib} MiB in all,
sizes 256 MiB-1 GiB divided by {scale}, dirty rates 0/1000/4000/12000
pages/s, mix {mix}); evacuated with batch {b["batch_size"]} (from
{os.path.basename(b["batch_size_origin"])} of a test xapi.conf, dest cap {b["dest_cap"]}) and with batch 1, same
run, same agents, the VMs re-created between the runs.

| run | batch | max in flight | total (s) | migrated | failed | worst downtime (ms) | mean downtime (ms) | mean gate wait (ms) | lost VMs | exit | destinations |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |""")
for k in ("batch", "seq"):
    j = r[k]
    t = j["totals"]
    print(f'| {k} | {j["batch_size"]} | {in_flight(j)} | '
          f'{j["total_ms"] / 1000:.1f} | '
          f'{t["migrated"]} | {t["failed"]} | {j["worst_downtime_ms"]} | '
          f'{mean(j, "downtime_ms"):.0f} | {mean(j, "gate_wait_ms"):.0f} | '
          f'{j["lost"]} | {j["rc"]} | {dests(j)} |')
print(f"""
| goal | measured | met |
| --- | ---: | --- |
| batch >= 1.8x faster than sequential | {speed:.2f}x | {ok(speed >= 1.8)} |
| worst downtime <= 2x sequential's worst | {down:.2f}x | {ok(0 < down <= 2)} |
| lost VMs = 0 | {b["lost"] + s["lost"]} | {ok(b["lost"] + s["lost"] == 0)} |
""")
PY
