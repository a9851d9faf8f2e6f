#!/usr/bin/env bash
# shellcheck disable=SC2015 # A && B || fail
# tests/scripts/rolling-upgrade.sh - tools/pool-rolling-upgrade end to
# end on three sim xlmigd agents (run by tests/test_rolling_upgrade.c).
#
#   rolling-upgrade.sh TOOL XLMIG XLMIGD
#
# The upgrade command is this script again (--as-upgrade DIR): it checks
# that the host it upgrades is empty and that no VM was lost, records the
# order, then stops the host's agent, bumps xen_version in the sim
# host.json and restarts the agent on the same control socket and port.
# Flag files in DIR make it fail (fail-H), write a given version
# (newver-H), not restart the agent (nostart-H) or take its time
# (sleep-H).  Checked: argument errors, --dry-run changes nothing, an
# upgrade command failing on h2 stops the run and a rerun continues with
# h2 without upgrading h1 again, the state file, an agent coming back
# older (Xen, then agent version), the agent wait's timeout, SIGTERM
# during an upgrade command.  Every wait is bounded.
set -u

XEN_OLD=4.17.0
XEN_NEW=4.17.1

# ---- helpers shared with the --as-upgrade mode ----

# start_agent DIR NAME LISTEN: start a sim agent (not our child in the
# upgrade mode); its pid in DIR/NAME/pid, its TCP address in .../listen.
start_agent() {
    local d=$1/$2
    rm -f "$d/ready"
    "$xlmigd" --backend sim --foreground --state-dir "$d/state" \
        --listen "$3" --control "$d/ctl.sock" --ready-file "$d/ready" \
        --hostname "$2" --sim-memory 512M \
        >>"$d/agent.log" 2>&1 </dev/null 3<&- 9>&- &
    echo $! >"$d/pid"
    for _ in $(seq 400); do # 20 s: the machine may be busy
        [ -s "$d/ready" ] && grep -q '^listen=' "$d/ready" && break
        sleep 0.05
    done
    sed -n 's/^listen=//p' "$d/ready" >"$d/listen" 2>/dev/null
    [ -s "$d/listen" ] && return 0
    echo "the agent of $2 did not get ready; its log:" >&2
    tail -n 5 "$d/agent.log" >&2
    return 1
}

# stop_agent DIR NAME: SIGTERM and wait (bounded) until it is gone.
stop_agent() {
    local d=$1/$2 pid
    pid=$(cat "$d/pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null
    return 1
}

# vm_count AGENT: how many domains the agent lists (fails if no answer).
vm_count() {
    local out
    out=$("$xlmig" -H "$1" list --json) || return 1
    grep -o '"name":' <<<"$out" | wc -l
}

# ---- the upgrade command ----

if [ "${1:-}" = --as-upgrade ]; then
    dir=$2
    # shellcheck source=/dev/null
    . "$dir/env"
    h=${POOL_HOST:-}
    bad() {
        echo "upgrade of ${h:-?}: $*" >>"$dir/errors"
        echo "upgrade of ${h:-?}: $*" >&2
        exit 1
    }
    [ -n "$h" ] && [ -d "$dir/$h" ] || bad "POOL_HOST '$h' is not a test host"
    [ "${POOL_AGENT:-}" = "$dir/$h/ctl.sock" ] || bad "POOL_AGENT is '${POOL_AGENT:-}'"
    [ -n "${POOL_STATE:-}" ] && [ -f "$POOL_STATE" ] || bad "POOL_STATE '${POOL_STATE:-}' is not a file"
    grep -q "^$h upgrading " "$POOL_STATE" || bad "the state file does not say $h is upgrading"
    echo "$h" >>"$dir/order"
    [ -e "$dir/fail-$h" ] && {
        echo "upgrade of $h: simulated failure" >&2
        exit 7
    }
    # the host is empty and no VM was lost
    n=$(vm_count "$POOL_AGENT") || bad "its agent does not answer"
    [ "$n" = 0 ] || bad "$n VMs are still on $h"
    total=0
    for x in h1 h2 h3; do
        n=$(vm_count "$dir/$x/ctl.sock") || bad "the agent of $x does not answer"
        total=$((total + n))
    done
    [ "$total" = "$(cat "$dir/total")" ] || bad "$total VMs in the pool, not $(cat "$dir/total")"
    [ -e "$dir/sleep-$h" ] && sleep "$(cat "$dir/sleep-$h")"
    stop_agent "$dir" "$h" || bad "its agent did not stop"
    ver=$XEN_NEW
    [ -e "$dir/newver-$h" ] && ver=$(cat "$dir/newver-$h")
    sed -i -E "s/\"xen_version\" *: *\"[^\"]*\"/\"xen_version\":\"$ver\"/" "$dir/$h/state/host.json"
    grep -q "\"xen_version\":\"$ver\"" "$dir/$h/state/host.json" || bad "host.json: xen_version not set"
    [ -e "$dir/nostart-$h" ] && exit 0
    listen=$(cat "$dir/$h/listen")
    start_agent "$dir" "$h" "$listen" || bad "its agent did not restart on $listen"
    exit 0
fi

# ---- the test ----

tool=$1 xlmig=$2 xlmigd=$3
self=$(readlink -f "$0")
dir=$(mktemp -d "${TMPDIR:-/tmp}/lxm-rup.XXXXXX")
cleanup() {
    local h
    for h in h1 h2 h3; do stop_agent "$dir" "$h"; done
    [ -n "${KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    echo "--- last run: stdout"
    tail -n 20 "$dir/out" 2>/dev/null
    echo "--- stderr"
    tail -n 20 "$dir/err" 2>/dev/null
    [ -s "$dir/errors" ] && echo "--- upgrade command errors" && cat "$dir/errors"
    exit 1
}
printf 'xlmig=%q\nxlmigd=%q\n' "$xlmig" "$xlmigd" >"$dir/env"

for h in h1 h2 h3; do
    mkdir -p "$dir/$h/state"
    printf '{"hostname": "%s", "next_domid": 1, "xen_version": "%s"}\n' "$h" "$XEN_OLD" \
        >"$dir/$h/state/host.json"
    start_agent "$dir" "$h" 127.0.0.1:0 || fail "the agent of $h did not get ready"
done
pool=$dir/pool.conf
{
    echo "# rolling upgrade test pool"
    for h in h1 h2 h3; do
        echo "$h $dir/$h/ctl.sock migration=$(cat "$dir/$h/listen")"
    done
} >"$pool"
mk() { "$xlmig" -H "$dir/$1/ctl.sock" sim-create --mix zero=100 --memory "$2" "$3" >/dev/null ||
    fail "sim-create $3 on $1"; }
mk h1 8M vm1a
mk h1 16M vm1b
mk h2 16M vm2a
mk h2 8M vm2b
mk h3 12M vm3a
echo 5 >"$dir/total"

# run ARGS...: the tool with stdout/stderr in $dir/out, $dir/err; rc=$?
run() {
    "$tool" --xlmig "$xlmig" --pool "$pool" --poll 0.2 "$@" >"$dir/out" 2>"$dir/err"
    rc=$?
}
one_line_err() { # EXIT PATTERN
    [ "$rc" = "$1" ] || fail "exit $rc, not $1"
    [ "$(wc -l <"$dir/err")" = 1 ] || fail "stderr is not one line"
    grep -q -- "$2" "$dir/err" || fail "stderr does not say '$2'"
}
upcmd=(-- "$self" --as-upgrade "$dir")
xen_of() { "$xlmig" -H "$dir/$1/ctl.sock" host-info --json | sed -n 's/.*"xen_version":"\([^"]*\)".*/\1/p'; }
snapshot() {
    local h
    for h in h1 h2 h3; do
        echo "$h pid $(cat "$dir/$h/pid") xen $(xen_of "$h")"
        "$xlmig" -H "$dir/$h/ctl.sock" list --json | grep -o '"name":"[^"]*"' | sort
    done
}

# -- argument errors: one line each
st=$dir/state
run --state "$st"
one_line_err 2 "no upgrade command"
run --state "$st" --hosts h1,h9 "${upcmd[@]}"
one_line_err 1 "unknown host 'h9'"
run --state "$st" --pool "$dir/nonexistent" "${upcmd[@]}"
one_line_err 1 "nonexistent"
run --state "$st" --timeout soon "${upcmd[@]}"
one_line_err 2 "--timeout 'soon'"
run --state "$st" --evacuate-opt --json "${upcmd[@]}"
one_line_err 2 "evacuate-opt '--json'"
run --state "$st" --frobnicate "${upcmd[@]}"
one_line_err 2 "unknown option '--frobnicate'"
[ ! -e "$st" ] || fail "an argument error wrote the state file"

# -- --dry-run changes nothing
snapshot >"$dir/before"
run --state "$st" --dry-run "${upcmd[@]}"
[ "$rc" = 0 ] || fail "--dry-run: exit $rc"
for h in h1 h2 h3; do
    grep -q "^pool-rolling-upgrade: $h: plan check: " "$dir/out" || fail "--dry-run: no plan check of $h"
    grep -q "^pool-rolling-upgrade: $h: would run: POOL_HOST=$h " "$dir/out" ||
        fail "--dry-run: does not say what it would run on $h"
done
grep -q "Xen $XEN_OLD" "$dir/out" || fail "--dry-run: no Xen version"
snapshot >"$dir/after"
cmp -s "$dir/before" "$dir/after" || fail "--dry-run changed the pool: $(diff "$dir/before" "$dir/after")"
[ ! -e "$st" ] && [ ! -e "$st.lock" ] || fail "--dry-run wrote a state file"
[ ! -e "$dir/order" ] || fail "--dry-run ran the upgrade command"

# -- the upgrade command fails on h2: the run stops there
touch "$dir/fail-h2"
run --state "$st" "${upcmd[@]}"
[ "$rc" = 1 ] || fail "failing upgrade of h2: exit $rc, not 1"
grep -q "h2: the upgrade command failed (exit 7)" "$dir/err" || fail "no clear error for h2"
[ "$(tr '\n' ' ' <"$dir/order")" = "h1 h2 " ] || fail "order: $(tr '\n' ' ' <"$dir/order")"
grep -q "^h1 done [^ ]* $XEN_OLD [^ ]* $XEN_NEW " "$st" || fail "state: h1 is not done: $(cat "$st")"
grep -q "^h2 failed-upgrade " "$st" || fail "state: h2 is not failed-upgrade: $(cat "$st")"
grep -q "^h3 " "$st" && fail "state: h3 was touched: $(cat "$st")"
[ "$(xen_of h1)" = "$XEN_NEW" ] || fail "h1 runs Xen $(xen_of h1)"
[ "$(xen_of h3)" = "$XEN_OLD" ] || fail "h3 was upgraded"
[ ! -s "$dir/errors" ] || fail "the upgrade command found problems"

# -- fixed: the rerun continues with h2, not h1
rm -f "$dir/fail-h2"
run --state "$st" "${upcmd[@]}"
[ "$rc" = 0 ] || fail "rerun: exit $rc"
[ "$(tr '\n' ' ' <"$dir/order")" = "h1 h2 h2 h3 " ] || fail "rerun order: $(tr '\n' ' ' <"$dir/order")"
grep -q "h1: already upgraded" "$dir/out" || fail "rerun: does not say h1 was already upgraded"
for h in h1 h2 h3; do
    grep -q "^$h done [^ ]* $XEN_OLD [^ ]* $XEN_NEW " "$st" || fail "state: $h not done: $(cat "$st")"
    [ "$(xen_of "$h")" = "$XEN_NEW" ] || fail "$h runs Xen $(xen_of "$h")"
done
[ ! -s "$dir/errors" ] || fail "the upgrade command found problems"
total=0
for h in h1 h2 h3; do total=$((total + $(vm_count "$dir/$h/ctl.sock"))); done
[ "$total" = 5 ] || fail "$total VMs after the upgrade, not 5"
# nothing left to do
run --state "$st" "${upcmd[@]}"
[ "$rc" = 0 ] || fail "third run: exit $rc"
[ "$(wc -l <"$dir/order")" = 4 ] || fail "third run upgraded a host again"

# -- an agent back with an older Xen is an error (and stays one)
echo 4.16.3 >"$dir/newver-h3"
run --state "$dir/state2" --hosts h3 "${upcmd[@]}"
[ "$rc" = 1 ] || fail "older Xen: exit $rc"
grep -q "h3: its agent came back with Xen 4.16.3, older than h3's $XEN_NEW" "$dir/err" ||
    fail "older Xen: no clear error"
grep -q "^h3 failed-wait [^ ]* $XEN_NEW [^ ]* 4.16.3 " "$dir/state2" || fail "state2: $(cat "$dir/state2")"
run --state "$dir/state2" --hosts h3 "${upcmd[@]}"
[ "$rc" = 1 ] && grep -q "older than" "$dir/err" || fail "older Xen, rerun: exit $rc"
[ "$(wc -l <"$dir/order")" = 5 ] || fail "older Xen, rerun: the upgrade command ran again"

# -- ... and so is an older agent version (a state file from a newer agent)
printf 'h1 upgraded 99.0 %s - - -\n' "$XEN_NEW" >"$dir/state3"
run --state "$dir/state3" --hosts h1 "${upcmd[@]}"
[ "$rc" = 1 ] || fail "older agent: exit $rc"
grep -q "h1: its agent came back with agent version [0-9.]*, older than h1's 99.0" "$dir/err" ||
    fail "older agent: no clear error"
[ "$(wc -l <"$dir/order")" = 5 ] || fail "older agent: the upgrade command ran"
rm -f "$dir/newver-h3"

# -- an agent that does not come back: bounded by --timeout (h3: empty)
touch "$dir/nostart-h3"
run --state "$dir/state4" --hosts h3 --timeout 1 "${upcmd[@]}"
[ "$rc" = 1 ] || fail "timeout: exit $rc"
grep -q "h3: its agent did not come back within 1 s (last: cannot connect" "$dir/err" ||
    fail "timeout: no clear error"
grep -q "^h3 failed-wait 0.1.0 4.16.3 - - " "$dir/state4" || fail "state4: $(cat "$dir/state4")"
[ "$(wc -l <"$dir/order")" = 6 ] || fail "timeout: the upgrade command did not run once"
rm -f "$dir/nostart-h3"
start_agent "$dir" h3 "$(cat "$dir/h3/listen")" || fail "h3 did not restart"
[ "$(xen_of h3)" = "$XEN_NEW" ] || fail "h3 runs Xen $(xen_of h3)"

# -- SIGTERM during an upgrade command: it finishes, the run stops, the
#    rerun only waits for the agent
echo 1 >"$dir/sleep-h2"
"$tool" --xlmig "$xlmig" --pool "$pool" --poll 0.2 --state "$dir/state5" --hosts h2,h3 \
    "${upcmd[@]}" >"$dir/out" 2>"$dir/err" &
tpid=$!
for _ in $(seq 200); do
    [ "$(wc -l <"$dir/order")" = 7 ] && break
    sleep 0.05
done
[ "$(wc -l <"$dir/order")" = 7 ] || fail "SIGTERM: the upgrade command of h2 did not start"
kill -TERM "$tpid"
wait "$tpid"
rc=$?
[ "$rc" = 3 ] || fail "SIGTERM: exit $rc, not 3"
grep -q "stopped by SIGTERM after the upgrade command of h2 completed" "$dir/err" ||
    fail "SIGTERM: does not say where it stopped"
grep -q "^h2 upgraded " "$dir/state5" || fail "state5: $(cat "$dir/state5")"
grep -q "^h3 " "$dir/state5" && fail "SIGTERM: h3 was touched"
rm -f "$dir/sleep-h2"
run --state "$dir/state5" --hosts h2,h3 "${upcmd[@]}"
[ "$rc" = 0 ] || fail "after SIGTERM, rerun: exit $rc"
[ "$(tail -n 2 "$dir/order" | tr '\n' ' ')" = "h2 h3 " ] ||
    fail "after SIGTERM: order $(tr '\n' ' ' <"$dir/order")"
grep -q "h2: its upgrade command completed in an earlier run" "$dir/out" || fail "after SIGTERM: h2 upgraded again?"
[ ! -s "$dir/errors" ] || fail "the upgrade command found problems"
total=0
for h in h1 h2 h3; do total=$((total + $(vm_count "$dir/$h/ctl.sock"))); done
[ "$total" = 5 ] || fail "$total VMs at the end, not 5"

# -- a host that cannot be evacuated stops the run before anything moves
"$xlmig" -H "$dir/h2/ctl.sock" sim-create --mix zero=100 --memory 8M --pci 1 pci0 >/dev/null ||
    fail "sim-create pci0"
snapshot >"$dir/before"
run --state "$dir/state6" --dry-run --hosts h2 "${upcmd[@]}"
[ "$rc" = 1 ] || fail "--dry-run, h2 with a PCI device: exit $rc, not 1"
grep -q "h2: plan check: cannot be evacuated" "$dir/out" && grep -q "pci0 .*PCI passthrough" "$dir/out" ||
    fail "--dry-run does not say why h2 cannot be evacuated"
run --state "$dir/state6" --hosts h2,h3 "${upcmd[@]}"
[ "$rc" = 1 ] || fail "h2 with a PCI device: exit $rc, not 1"
grep -q "h2: cannot be evacuated; nothing moved" "$dir/err" && grep -q "pci0 .*PCI passthrough" "$dir/err" ||
    fail "h2 with a PCI device: no clear error"
snapshot >"$dir/after"
cmp -s "$dir/before" "$dir/after" || fail "a refused plan moved something: $(diff "$dir/before" "$dir/after")"
[ "$(wc -l <"$dir/order")" = 8 ] || fail "a refused plan ran the upgrade command"
echo PASS
