#!/usr/bin/env bash
# bench/compress.sh - whole live migrations with --compress=auto against
# --compress=none (and lz4, zstd for information), over loopback and
# over a 1 Gbit/s link (issue 5, items 4 and 7).  Called by bench/run.sh;
# prints a markdown section "## bench/compress" on stdout (progress on
# stderr); exits non-zero only when the bench itself could not run (a
# goal that is missed is a FAIL in the table, not a failed run).
#
# Links:
#   loopback  two sim agents on 127.0.0.1 (free ports)
#   1gbit     each agent in its own network namespace (lxmcz<PID>a/b),
#             joined by one veth pair (10.78.0.1 <-> 10.78.0.2), both
#             ends shaped with `tc qdisc add dev ... root tbf rate 1gbit
#             burst 512kb latency 50ms`.  Needs root and iproute2; if the
#             namespaces cannot be made, the script fails loudly.  The
#             namespaces (and the veth with them) are deleted on any exit.
# Guests: LXM_BENCH_MEMORY (512M) with --mix zero=40,code=20,text=20 (the
# rest random), seed 11; "idle" (dirty rate 0) and "dirty" (12800 pages/s
# = 50 MB/s over a 64 MiB working set).  Every migration: a fresh guest on
# the source, `xlmig migrate --json --no-verify --compress=C`, destroyed
# on the destination; directions alternate; the codecs are interleaved
# within each run so that load drift hits all of them.
# Goals (issue 5): median total time auto / none <= 1.1 over loopback,
# <= 0.65 over 1 Gbit/s (per scenario).
#
# Environment: LXM_BENCH_MEMORY (512M), LXM_BENCH_COMPRESS_RUNS (3),
# LXM_BENCH_RATE (1gbit), LXM_BENCH_DIR (/dev/shm when writable),
# LXM_BENCH_LINKS ("loopback 1gbit"), LXM_BENCH_CODECS ("none auto lz4
# zstd").
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
xlmig=$top/tools/xlmig/xlmig
xlmigd=$top/tools/xlmigd/xlmigd
for b in "$xlmig" "$xlmigd"; do
    [ -x "$b" ] || { echo "bench-compress: $b is not built" >&2; exit 1; }
done

memory=${LXM_BENCH_MEMORY:-512M}
runs=${LXM_BENCH_COMPRESS_RUNS:-3}
rate=${LXM_BENCH_RATE:-1gbit}
links=${LXM_BENCH_LINKS:-loopback 1gbit}
codecs=${LXM_BENCH_CODECS:-none auto lz4 zstd}
mix=zero=40,code=20,text=20
seed=11
dirty_rate=12800 # pages/s: 50 MB/s
dirty_ws=64M
mig_timeout=300
net=10.78.0
ns=lxmcz$$

bench_dir=${LXM_BENCH_DIR:-/dev/shm}
[ -d "$bench_dir" ] && [ -w "$bench_dir" ] || bench_dir=${TMPDIR:-/tmp}
tmp=$(mktemp -d "$bench_dir/xlmig-compress.XXXXXX")
pids=()
made_ns=()

say() { printf 'bench-compress: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

. "$top/scripts/agents.sh"
stop_agents() { lxm_stop_pids; }
cleanup() {
    local n
    stop_agents
    for n in "${made_ns[@]}"; do
        ip netns del "$n" 2>/dev/null || say "could not delete namespace $n"
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A flat JSON object's field (numbers, booleans, strings without quotes).
jfield() {
    sed -n "s/.*\"$2\":\\(\"[^\"]*\"\\|[^,}]*\\).*/\\1/p" <<<"$1" | tr -d '"'
}
median() {
    printf '%s\n' "$@" | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (!NR) { print "-"; exit }
            if (NR % 2) print v[(NR + 1) / 2]
            else print (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "-" && a <= b) }'; }

# ---- agents -----------------------------------------------------------

declare -A ctl addr
# start_host NAME LISTEN [NETNS]
start_host() {
    local h=$1 listen=$2 n=${3:-} d=$tmp/$1
    local -a pre=()
    mkdir -p "$d"
    rm -f "$d/ready"
    [ -n "$n" ] && pre=(ip netns exec "$n")
    # No /etc/xlmig.conf: every migration names its codec.
    "${pre[@]}" "$xlmigd" --backend sim --foreground --hostname "$h" \
        --state-dir "$d/state" --control "$d/xlmigd.sock" \
        --listen "$listen" --ready-file "$d/ready" --sim-memory 4G \
        --config "$d/none.conf" --verbose 2>>"$d/xlmigd.log" &
    pids+=($!)
    lxm_wait_ready "${pids[-1]}" "$d" || {
        [ $? = 1 ] || die "xlmigd $h not ready in 10 s"
        cat "$d/xlmigd.log" >&2
        die "xlmigd $h did not start"
    }
    ctl[$h]=$LXM_CTL
    addr[$h]=$LXM_ADDR
}

make_link() {
    if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
        die "ip and tc (iproute2) are needed: apt-get install iproute2"
    fi
    [ "$(id -u)" = 0 ] || die "network namespaces need root"
    local a=${ns}a b=${ns}b
    ip netns add "$a" || die "cannot create network namespace $a"
    made_ns+=("$a")
    ip netns add "$b" || die "cannot create network namespace $b"
    made_ns+=("$b")
    ip -n "$a" link add eth0 type veth peer name eth0 netns "$b" ||
        die "cannot create the veth pair between $a and $b"
    ip -n "$a" addr add "$net.1/24" dev eth0
    ip -n "$b" addr add "$net.2/24" dev eth0
    local n
    for n in "$a" "$b"; do
        ip -n "$n" link set lo up
        ip -n "$n" link set eth0 up
        tc -n "$n" qdisc add dev eth0 root tbf rate "$rate" burst 512kb \
            latency 50ms || die "tc tbf failed in $n"
    done
    ip -n "$a" link show eth0 | grep -q 'state UP' ||
        sleep 1 # the veth comes up asynchronously
}

# ---- one migration ----------------------------------------------------

out=''
# migrate_once SRC DST RATE WS CODEC
migrate_once() {
    local src=$1 dst=$2 rate=$3 ws=$4 codec=$5
    "$xlmig" -H "${ctl[$src]}" sim-create --json --memory "$memory" \
        --mix "$mix" --seed "$seed" --dirty-rate "$rate" \
        ${ws:+--working-set "$ws"} g >/dev/null ||
        die "sim-create on $src failed"
    if ! out=$(timeout "$mig_timeout" "$xlmig" -H "${ctl[$src]}" migrate \
        --json --no-verify --compress="$codec" g "${addr[$dst]}"); then
        say "migration $src -> $dst ($codec) failed: ${out:-no report}"
        [ -n "$out" ] || out='{"status":"error"}'
    fi
    "$xlmig" -H "${ctl[$dst]}" sim-destroy g >/dev/null 2>&1 || true
    "$xlmig" -H "${ctl[$src]}" sim-destroy g >/dev/null 2>&1 || true
}

# Results: T[link,scenario,codec] = space-separated total_ms of the
# runs that migrated; F[...] failures; W, B: wire bytes, last auto
# choice/rates.
declare -A T F W C
run_link() {
    local link=$1 sc i codec src dst r ws
    for i in $(seq "$runs"); do
        if ((i % 2)); then src=h1 dst=h2; else src=h2 dst=h1; fi
        for sc in idle dirty; do
            if [ "$sc" = idle ]; then r=0 ws=''; else r=$dirty_rate ws=$dirty_ws; fi
            for codec in $codecs; do
                migrate_once "$src" "$dst" "$r" "$ws" "$codec"
                local k="$link,$sc,$codec"
                if [ "$(jfield "$out" status)" = migrated ]; then
                    T[$k]+="$(jfield "$out" total_ms) "
                    W[$k]=$(jfield "$out" bytes_wire)
                    [ "$codec" = auto ] && C[$k]="$(jfield "$out" codec)"
                else
                    F[$k]=$((${F[$k]:-0} + 1))
                fi
                say "$link $sc run $i $codec: $(jfield "$out" status)" \
                    "total $(jfield "$out" total_ms) ms," \
                    "wire $(jfield "$out" bytes_wire) B," \
                    "codec $(jfield "$out" codec)"
            done
        done
    done
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
start_s=$(date +%s)
for link in $links; do
    case $link in
    loopback)
        say "loopback: two agents on 127.0.0.1; $runs runs"
        start_host h1 127.0.0.1:0
        start_host h2 127.0.0.1:0
        ;;
    1gbit)
        say "$rate: two agents in network namespaces over a shaped veth;" \
            "$runs runs"
        make_link
        start_host h1 "$net.1:0" "${ns}a"
        start_host h2 "$net.2:0" "${ns}b"
        ;;
    *) die "unknown link $link (loopback, 1gbit)" ;;
    esac
    run_link "$link"
    stop_agents
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the section -------------------------------------------------------

goal_of() { if [ "$1" = loopback ]; then echo 1.1; else echo 0.65; fi; }
{
    cat <<HDR
## bench/compress

Whole live migrations, \`--compress=auto\` against \`--compress=none\`
(lz4 and zstd for information), issue 5 item 4. Produced by
\`bash bench/compress.sh\` (from \`make bench\`) on $(date -u +%Y-%m-%d),
$(nproc) cores, load average $load0 at the start and $load1 at the end
($(($(date +%s) - start_s)) s). A $memory sim guest,
\`--mix $mix\` (the rest random), seed $seed; *idle*: dirty rate 0;
*dirty*: $dirty_rate pages/s (50 MB/s) over a $dirty_ws working set.
Each migration: \`xlmig migrate --json --no-verify --compress=C g PEER\`,
a fresh guest each time, directions alternating, codecs interleaved;
median of $runs runs of the total time (request to RUNNING).

- *loopback*: both agents on 127.0.0.1.
- *1gbit*: each agent in its own network namespace, one veth pair
  between them, both ends shaped with
  \`tc qdisc add dev eth0 root tbf rate $rate burst 512kb latency 50ms\`.

**Goals (issue 5): auto / none <= 1.1 over loopback, <= 0.65 over
1 Gbit/s.** auto's choice is the report's \`codec\` (link probe and
codec estimate, \`docs/compression.md\` "auto").

| link | scenario | codec | median total ms | runs (ms) | wire bytes (last) | vs none | goal |
|---|---|---|---:|---|---:|---:|---|
HDR
    for link in $links; do
        for sc in idle dirty; do
            # shellcheck disable=SC2086 # word splitting on purpose
            none_med=$(median ${T[$link,$sc,none]:-})
            for codec in $codecs; do
                k="$link,$sc,$codec"
                # shellcheck disable=SC2086
                med=$(median ${T[$k]:-})
                rt=$(ratio "$med" "$none_med")
                goal=''
                if [ "$codec" = auto ]; then
                    g=$(goal_of "$link")
                    if [ -n "${F[$k]:-}" ] || [ -n "${F[$link,$sc,none]:-}" ]; then
                        goal="**FAIL** (failed runs)"
                    elif le "$rt" "$g"; then
                        goal="**PASS** (<= $g)"
                    else
                        goal="**FAIL** (> $g)"
                    fi
                fi
                runs_s=$(echo "${T[$k]:-}" | xargs | tr ' ' ',')
                [ -n "${F[$k]:-}" ] && runs_s+=" (${F[$k]} failed)"
                printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' \
                    "$link" "$sc" "$codec" "$med" "${runs_s:--}" \
                    "${W[$k]:--}" "$rt" "$goal"
            done
        done
    done
    echo
    echo "auto's choice (last run of each):"
    echo
    for link in $links; do
        for sc in idle dirty; do
            [ -n "${C[$link,$sc,auto]:-}" ] &&
                echo "- $link, $sc: \`${C[$link,$sc,auto]}\`"
        done
    done
    echo
}
