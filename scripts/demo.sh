#!/usr/bin/env bash
# scripts/demo.sh - what libxlmig does, in well under a minute (`make demo`).
#
# Starts three simulated hosts on loopback (xlmigd --backend sim, each
# with its own temporary state dir, a free port and a ready file),
# creates VMs of different sizes and dirtying rates, live-migrates them
# between the hosts with `xlmig migrate` (a progress bar on a terminal),
# prints one report line per migration, then evacuates one host (the
# plan, then `xlmig host-evacuate` with progress bars on a terminal), and
# stops everything it started (also on failure or Ctrl-C).
#
# Expects a built tree (`make`; `make demo` builds it first).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
xlmig=$PWD/tools/xlmig/xlmig
xlmigd=$PWD/tools/xlmigd/xlmigd
for b in "$xlmig" "$xlmigd"; do
    [ -x "$b" ] || { echo "demo: $b is not built; run 'make'" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xlmig-demo.XXXXXX")
pids=()
. scripts/agents.sh
cleanup() {
    lxm_stop_pids
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

heading() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# A flat JSON object's field (numbers, booleans, strings without quotes).
jfield() {
    sed -n "s/.*\"$2\":\\(\"[^\"]*\"\\|[^,}]*\\).*/\\1/p" <<<"$1" | tr -d '"'
}

declare -A ctl addr
start_host() {
    local h=$1 d=$tmp/$1
    mkdir -p "$d"
    "$xlmigd" --backend sim --foreground --hostname "$h" \
        --state-dir "$d/state" --control "$d/xlmigd.sock" \
        --listen 127.0.0.1:0 --ready-file "$d/ready" --sim-memory 4G \
        2>"$d/xlmigd.log" &
    pids+=($!)
    lxm_wait_ready "${pids[-1]}" "$d" || {
        [ $? = 1 ] || { echo "demo: xlmigd $h not ready in 10 s" >&2; exit 1; }
        echo "demo: xlmigd $h failed:" >&2
        cat "$d/xlmigd.log" >&2
        exit 1
    }
    ctl[$h]=$LXM_CTL
    addr[$h]=$LXM_ADDR
    printf '%-3s control %s, peers on %s\n' "$h" "${ctl[$h]}" "${addr[$h]}"
}

heading "1. Three simulated hosts on loopback (xlmigd --backend sim)"
for h in h1 h2 h3; do
    start_host "$h"
done

heading "2. VMs of different sizes and dirtying rates"
run "$xlmig" -H "${ctl[h1]}" sim-create --memory 256M --type pv web
run "$xlmig" -H "${ctl[h1]}" sim-create --memory 512M --dirty-rate 2000 \
    --working-set 64M db
run "$xlmig" -H "${ctl[h2]}" sim-create --memory 1G --type hvm \
    --dirty-rate 20000 --working-set 128M cache
for h in h1 h2; do
    run "$xlmig" -H "${ctl[$h]}" list
done

heading "3. Live migrations (downtime policy, 300 ms target)"
rows=()
migrate() {
    local vm=$1 from=$2 to=$3 out status
    shift 3
    printf '$ xlmig -H %s migrate %s%s %s   # %s -> %s\n' "$from" \
        "${*:+$* }" "$vm" "${addr[$to]}" "$from" "$to"
    if out=$("$xlmig" -H "${ctl[$from]}" migrate --json "$@" "$vm" \
        "${addr[$to]}"); then
        status=ok
    else
        status=FAILED
    fi
    rows+=("$(printf '%-6s %-4s %-4s %9s %11s %7s %10.1f %-9s %s' "$vm" \
        "$from" "$to" "$(jfield "$out" total_ms)" \
        "$(jfield "$out" downtime_ms)" "$(jfield "$out" rounds)" \
        "$(awk -v b="$(jfield "$out" bytes_wire)" 'BEGIN { print b / 1e6 }')" \
        "$(jfield "$out" status)" "$(jfield "$out" digest_checked)")")
    [ "$status" = ok ]
}
migrate web h1 h2
migrate db h1 h3
migrate cache h2 h3
migrate web h2 h3 --non-live
migrate db h3 h1 --policy xen

heading "4. Report"
printf '%-6s %-4s %-4s %9s %11s %7s %10s %-9s %s\n' NAME FROM TO TOTAL_MS \
    DOWNTIME_MS ROUNDS MB_WIRE STATUS DIGEST_OK
printf '%s\n' "${rows[@]}"
echo "(DOWNTIME_MS includes the memory-digest check that proves nothing was lost:"
echo " one pass over guest memory on each side while the VM is paused; add"
echo " --no-verify to migrate without it, see docs/benchmarks.md.)"

heading "5. Where the VMs run now (each in exactly one place)"
for h in h1 h2 h3; do
    printf -- '-- %s\n' "$h"
    "$xlmig" -H "${ctl[$h]}" list
done

heading "6. Evacuate host h3: plan, then a sliding window of 2 (xlmig host-evacuate)"
printf 'h1 %s\nh2 %s\nh3 %s\n' "${addr[h1]}" "${addr[h2]}" "${addr[h3]}" >"$tmp/pool.conf"
printf 'evacuation-batch-size = 2\n' >"$tmp/xapi.conf"
for i in 1 2 3; do
    run "$xlmig" -H "${ctl[h3]}" sim-create --memory $((64 * i))M \
        --dirty-rate $((1000 * i)) --working-set 32M "app$i" >/dev/null
done
run "$xlmig" pool-list --pool "$tmp/pool.conf"
run "$xlmig" host-evacuate --dry-run --pool "$tmp/pool.conf" \
    --xapi-conf "$tmp/xapi.conf" --xapi-conf-dir "$tmp/xapi.conf.d" h3
run "$xlmig" host-evacuate --pool "$tmp/pool.conf" \
    --xapi-conf "$tmp/xapi.conf" --xapi-conf-dir "$tmp/xapi.conf.d" h3
for h in h1 h2 h3; do
    printf -- '-- %s\n' "$h"
    "$xlmig" -H "${ctl[$h]}" list
done

heading "Done: stopping the three agents"
