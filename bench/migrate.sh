#!/usr/bin/env bash
# bench/migrate.sh - live migration of a 1 GiB sim guest over loopback,
# against the raw loopback TCP throughput measured in the same run
# (issue 3, item 10).  Called by bench/run.sh; prints a markdown section
# on stdout (progress on stderr) and exits non-zero only when the bench
# itself could not run (a goal that is missed is reported, not fatal).
#
# Scenarios (every migration: a fresh guest created on the source with
# the same seed, migrated with `xlmig migrate --json`, destroyed on the
# destination; directions alternate between the two agents; the idle
# and dirty runs are interleaved so that load drift hits both):
#   floor   bench/tcp-floor: raw loopback TCP bytes/s; wire floor of the
#           guest = its non-zero page bytes / that throughput
#   idle    dirty rate 0, --no-verify            goal: total <= 1.5x floor
#   dirty   51200 pages/s (200 MB/s) over a hot working set,
#           --downtime-ms 20 --no-verify         goal: total <= 1.4x idle,
#                                                downtime <= 20 ms
#           (and one run with the default 300 ms limit, for comparison)
#   busy    204800 pages/s (800 MB/s), policy downtime at 300 ms,
#           --no-verify, 20 runs                 goal: downtime <= 300 ms
#                                                in >= 99% (all 20)
# plus one verified migration (memory digests compared) per scenario:
# its cost is reported separately.
#
# Environment (for quick experiments; the defaults are what `make
# bench` reports): LXM_BENCH_DIR (/dev/shm when writable, else
# $TMPDIR or /tmp), LXM_BENCH_RUNS (timed runs of idle and dirty, 3),
# LXM_BENCH_BUSY_RUNS (20), LXM_BENCH_MEMORY (1G), LXM_BENCH_MIX,
# LXM_BENCH_DIRTY_WS (256M), LXM_BENCH_BUSY_WS (128M).
#
# Starts two xlmigd --backend sim on 127.0.0.1 (free ports, temporary
# state dirs) and stops them, and removes everything, on any exit.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
xlmig=$top/tools/xlmig/xlmig
xlmigd=$top/tools/xlmigd/xlmigd
floor_bin=$top/bench/tcp-floor
for b in "$xlmig" "$xlmigd" "$floor_bin"; do
    [ -x "$b" ] || { echo "bench-migrate: $b is not built" >&2; exit 1; }
done

runs=${LXM_BENCH_RUNS:-5}
busy_runs=${LXM_BENCH_BUSY_RUNS:-20}
memory=${LXM_BENCH_MEMORY:-1G}
mix=${LXM_BENCH_MIX:-zero=10,code=30,text=30}
dirty_rate=51200 # pages/s: 200 MB/s
dirty_ws=${LXM_BENCH_DIRTY_WS:-256M}
busy_rate=204800 # pages/s: 800 MB/s
busy_ws=${LXM_BENCH_BUSY_WS:-128M}
seed=7
mig_timeout=180

# The agents' state dirs hold the guests' memory files: on tmpfs when
# there is one, as guest memory is RAM (on a disk file system the
# kernel's writeback of gigabytes of dirty pages, ours and other
# jobs', shows up in the timings).  LXM_BENCH_DIR overrides.
bench_dir=${LXM_BENCH_DIR:-/dev/shm}
[ -d "$bench_dir" ] && [ -w "$bench_dir" ] || bench_dir=${TMPDIR:-/tmp}
tmp=$(mktemp -d "$bench_dir/xlmig-bench.XXXXXX")
bench_fs=$(stat -f -c %T "$tmp" 2>/dev/null || echo unknown)
pids=()
. "$top/scripts/agents.sh"
cleanup() {
    lxm_stop_pids
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'bench-migrate: %s\n' "$*" >&2; }

# A flat JSON object's field (numbers, booleans, strings without quotes).
jfield() {
    sed -n "s/.*\"$2\":\\(\"[^\"]*\"\\|[^,}]*\\).*/\\1/p" <<<"$1" | tr -d '"'
}

# Median / min / max of numbers given as arguments.
stat_of() {
    local what=$1
    shift
    printf '%s\n' "$@" | sort -g | awk -v w="$what" '
        { v[NR] = $1 }
        END {
            if (!NR) { print "-"; exit }
            if (w == "min") print v[1]
            else if (w == "max") print v[NR]
            else if (NR % 2) print v[(NR + 1) / 2]
            else print (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
verdict() { if "$@"; then echo "**pass**"; else echo "**FAIL**"; fi; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

declare -A ctl addr dir
start_host() {
    local h=$1 d=$tmp/$1
    mkdir -p "$d"
    dir[$h]=$d
    "$xlmigd" --backend sim --foreground --hostname "$h" \
        --state-dir "$d/state" --control "$d/xlmigd.sock" \
        --listen 127.0.0.1:0 --ready-file "$d/ready" --sim-memory 4G \
        --verbose 2>"$d/xlmigd.log" &
    pids+=($!)
    lxm_wait_ready "${pids[-1]}" "$d" || {
        [ $? = 1 ] || { say "xlmigd $h not ready in 10 s"; exit 1; }
        say "xlmigd $h failed:"
        cat "$d/xlmigd.log" >&2
        exit 1
    }
    ctl[$h]=$LXM_CTL
    addr[$h]=$LXM_ADDR
}

# Bytes of the non-zero pages of a freshly created sim guest: the sim
# leaves zero pages as holes in its sparse memory file, so its allocated
# blocks are exactly the non-zero pages (restored guests are not sparse:
# only a fresh one tells).  Empty if the file is not where expected.
nonzero_bytes() {
    local f=${dir[$1]}/state/dom-$2.mem
    [ -f "$f" ] && stat -c '%b %B' "$f" | awk '{ printf "%d", $1 * $2 }'
}

# The pre-copy policy's downtime estimate when it chose to stop, from
# the source agent's debug log lines after line $2:
#   "sim: save of domain N: round R: D dirty, B B/s, fixed F ms, decision 1"
# = D pages * (4096 + 8) bytes / B + F (the commit's round trips), in ms
# (precopy.c's formula).
policy_estimate() {
    tail -n +"$(($2 + 1))" "${dir[$1]}/xlmigd.log" |
        sed -n 's/.*round [0-9]*: \([0-9]*\) dirty, \([0-9]*\) B\/s, fixed \([0-9]*\) ms, decision 1.*/\1 \2 \3/p' |
        tail -n 1 | awk '$2 > 0 { printf "%.0f", $1 * 4104 * 1000 / $2 + $3 }'
}

# migrate_once SRC DST RATE WS [migrate options...]: create "g" on SRC,
# migrate it to DST, destroy it; sets $out (the JSON report, or an
# object with status "error"), $estimate and $domid_src.
out='' estimate='' domid_src='' nz_measured=''
migrate_once() {
    local src=$1 dst=$2 rate=$3 ws=$4 created log_lines
    shift 4
    created=$("$xlmig" -H "${ctl[$src]}" sim-create --json --memory "$memory" \
        --mix "$mix" --seed "$seed" --dirty-rate "$rate" \
        ${ws:+--working-set "$ws"} g) ||
        { say "sim-create on $src failed"; exit 1; }
    domid_src=$(jfield "$created" domid)
    if [ -z "$nz_measured" ]; then
        nz_measured=$(nonzero_bytes "$src" "$domid_src")
    fi
    log_lines=$(wc -l <"${dir[$src]}/xlmigd.log")
    # --compress=none: the raw path these figures have always measured
    # (the agents' default is auto; bench/compress.sh compares codecs).
    if ! out=$(timeout "$mig_timeout" "$xlmig" -H "${ctl[$src]}" migrate \
        --json --compress=none "$@" g "${addr[$dst]}"); then
        say "migration $src -> $dst failed: ${out:-no report}"
        [ -n "$out" ] || out='{"status":"error"}'
    fi
    estimate=$(policy_estimate "$src" "$log_lines")
    # Wherever it ended up (both on failure is not possible, but check).
    "$xlmig" -H "${ctl[$dst]}" sim-destroy g >/dev/null 2>&1 || true
    "$xlmig" -H "${ctl[$src]}" sim-destroy g >/dev/null 2>&1 || true
}

row() {
    local n=$1 from=$2 to=$3
    printf '| %s | %s→%s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" \
        "$from" "$to" "$(jfield "$out" total_ms)" \
        "$(jfield "$out" downtime_ms)" "${estimate:--}" \
        "$(jfield "$out" rounds)" "$(jfield "$out" pages_sent)" \
        "$(jfield "$out" bytes_wire)" "$(jfield "$out" status)"
}
table_head() {
    printf '| run | hosts | total ms | downtime ms | policy estimate ms |'
    printf ' rounds | pages sent | bytes on the wire | status |\n'
    printf '|---|---|---:|---:|---:|---:|---:|---:|---|\n'
}

# Per scenario (idle, dirty, busy): NAME_rows (markdown), and over the
# timed runs that migrated NAME_totals, NAME_downs, NAME_rounds (ms,
# ms, count); NAME_failed counts timed runs that did not.
idle_rows='' dirty_rows='' busy_rows=''
# shellcheck disable=SC2034 # used through the namerefs of timed()
idle_totals=() idle_downs=() idle_rounds=() idle_failed=0
dirty_totals=() dirty_downs=() dirty_rounds=() dirty_failed=0
busy_totals=() busy_downs=() busy_rounds=() busy_failed=0

# timed NAME LABEL SRC DST RATE WS [migrate options...]: one migration
# for scenario NAME; a numeric LABEL is a timed run and counts in the
# statistics, any other (the verified run, comparisons) is a row only.
timed() {
    local name=$1 label=$2 src=$3 dst=$4 rate=$5 ws=$6
    shift 6
    local -n rows_r=${name}_rows tot_r=${name}_totals
    local -n down_r=${name}_downs rnd_r=${name}_rounds fail_r=${name}_failed
    migrate_once "$src" "$dst" "$rate" "$ws" "$@"
    rows_r+=$(row "$label" "$src" "$dst")$'\n'
    if [[ $label =~ ^[0-9]+$ ]]; then
        if [ "$(jfield "$out" status)" = migrated ]; then
            tot_r+=("$(jfield "$out" total_ms)")
            down_r+=("$(jfield "$out" downtime_ms)")
            rnd_r+=("$(jfield "$out" rounds)")
        else
            fail_r=$((fail_r + 1))
        fi
    fi
    say "$name $label: $(jfield "$out" status)" \
        "total $(jfield "$out" total_ms) ms," \
        "downtime $(jfield "$out" downtime_ms) ms" \
        "(estimate ${estimate:--})," \
        "$(jfield "$out" rounds) rounds," \
        "digest_checked $(jfield "$out" digest_checked)"
}

# Timed runs alternate directions: h1->h2 for odd i, h2->h1 for even.
pair() { if (($1 % 2)); then echo "h1 h2"; else echo "h2 h1"; fi; }

# ---- run ----------------------------------------------------------

load0=$(loadavg)
qemus=$(pgrep -c qemu-system 2>/dev/null || true)
start_s=$(date +%s)
say "load average $load0; starting two sim agents"
start_host h1
start_host h2

say "raw loopback TCP throughput..."
floor_json=$("$floor_bin" --json --bytes 1G --runs 5)
tcp_bps=$(jfield "$floor_json" median_bytes_per_s)
tcp_min=$(jfield "$floor_json" min_bytes_per_s)
tcp_max=$(jfield "$floor_json" max_bytes_per_s)
say "loopback TCP: median $(awk -v b="$tcp_bps" 'BEGIN { printf "%.2f", b / 1e9 }') GB/s"

# 2 and 3 interleaved, so that drift in the machine's load hits the
# idle baseline and the dirtying guest alike.
say "idle and 200 MB/s dirtying over $dirty_ws, $runs runs each..."
for i in $(seq "$runs"); do
    # shellcheck disable=SC2046 # two words on purpose
    timed idle "$i" $(pair "$i") 0 '' --no-verify
    # shellcheck disable=SC2046
    timed dirty "$i" $(pair "$i") "$dirty_rate" "$dirty_ws" --no-verify \
        --downtime-ms 20
done
timed idle verified h1 h2 0 ''
idle_verified=$out
timed dirty verified h1 h2 "$dirty_rate" "$dirty_ws" --downtime-ms 20
dirty_verified=$out
timed dirty "300 ms limit" h2 h1 "$dirty_rate" "$dirty_ws" --no-verify

# 4. 800 MB/s, downtime policy 300 ms
say "800 MB/s dirtying over $busy_ws, $busy_runs runs..."
for i in $(seq "$busy_runs"); do
    # shellcheck disable=SC2046
    timed busy "$i" $(pair "$i") "$busy_rate" "$busy_ws" --no-verify \
        --policy downtime --downtime-ms 300
done
timed busy verified h1 h2 "$busy_rate" "$busy_ws" --policy downtime \
    --downtime-ms 300
busy_verified=$out

# ---- figures ------------------------------------------------------

idle_total=$(stat_of median "${idle_totals[@]}")
idle_down=$(stat_of median "${idle_downs[@]}")
idle_wire=$(jfield "$idle_verified" bytes_wire)
mem_bytes=$(numfmt --from=iec "$memory")
zero_pct=$(sed -n 's/.*zero=\([0-9]*\).*/\1/p' <<<"$mix")
nz_mix=$(awk -v m="$mem_bytes" -v z="${zero_pct:-0}" \
    'BEGIN { printf "%d", m * (100 - z) / 100 }')
if [ -n "$nz_measured" ]; then
    nz=$nz_measured
    nz_source="allocated blocks of the fresh guest's sparse memory file"
    nz_source+=" (the sim leaves zero pages as holes)"
else
    nz=$nz_mix
    nz_source="the mix: $((100 - ${zero_pct:-0}))% of memory"
fi
floor_ms=$(awk -v n="$nz" -v b="$tcp_bps" 'BEGIN { printf "%.0f", n / b * 1000 }')
full_floor_ms=$(awk -v n="$idle_wire" -v b="$tcp_bps" \
    'BEGIN { printf "%.0f", n / b * 1000 }')
idle_ratio=$(ratio "$idle_total" "$floor_ms")
idle_full_ratio=$(ratio "$idle_total" "$full_floor_ms")
idle_ok=$(verdict eval "[ $idle_failed = 0 ] && le $idle_ratio 1.5")

dirty_total=$(stat_of median "${dirty_totals[@]}")
dirty_down_max=$(stat_of max "${dirty_downs[@]}")
dirty_down_med=$(stat_of median "${dirty_downs[@]}")
dirty_rounds_med=$(stat_of median "${dirty_rounds[@]}")
dirty_ratio=$(ratio "$dirty_total" "$idle_total")
dirty_t_ok=$(verdict eval "[ $dirty_failed = 0 ] && le $dirty_ratio 1.4")
dirty_d_ok=$(verdict eval "[ $dirty_failed = 0 ] && le $dirty_down_max 20")

busy_kept=0
for d in "${busy_downs[@]}"; do
    if le "$d" 300; then busy_kept=$((busy_kept + 1)); fi
done
busy_pct=$(awk -v k="$busy_kept" -v n="$busy_runs" 'BEGIN { printf "%.0f", k * 100 / n }')
busy_ok=$(verdict eval "awk -v k=$busy_kept -v n=$busy_runs 'BEGIN { exit !(k * 100 >= 99 * n) }'")
mmm() { echo "$(stat_of min "$@") / $(stat_of median "$@") / $(stat_of max "$@")"; }
busy_down=$(mmm "${busy_downs[@]}")
busy_rounds_mmm=$(mmm "${busy_rounds[@]}")
busy_total=$(mmm "${busy_totals[@]}")
busy_down_med=$(stat_of median "${busy_downs[@]}")

load1=$(loadavg)
elapsed=$(($(date +%s) - start_s))
say "done in ${elapsed} s; load average $load1"

gb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e9 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
verify_line() {
    local v=$1 base=$2
    printf 'Verified run: total %s ms, downtime %s ms, digest_checked %s,' \
        "$(jfield "$v" total_ms)" "$(jfield "$v" downtime_ms)" \
        "$(jfield "$v" digest_checked)"
    printf ' status %s: the digests added about %s ms to the downtime' \
        "$(jfield "$v" status)" \
        "$(awk -v a="$(jfield "$v" downtime_ms)" -v b="$base" \
            'BEGIN { printf "%.0f", a - b }')"
    printf ' (one sample, against the median of the unverified runs).\n'
}

cat <<EOF

## Live migration (sim backend, loopback)

Command: \`bash bench/migrate.sh\` (run by bench/run.sh; took ${elapsed} s).
Two agents \`xlmigd --backend sim --foreground --listen 127.0.0.1:0
--sim-memory 4G\` on this host, state dirs (the guests' memory files)
under $bench_dir ($bench_fs). Every migration is of a fresh $memory
guest created with the same content, then destroyed on the
destination; directions alternate h1→h2, h2→h1 (a fresh guest each
time because a migrated sim guest arrives idle, see the notes):

    xlmig -H H sim-create --json --memory $memory --mix $mix \\
        --seed $seed --dirty-rate RATE [--working-set WS] g
    xlmig -H H migrate --json --no-verify [OPTIONS] g PEER:PORT
    xlmig -H PEER sim-destroy g

Load average at the start ${load0}, at the end ${load1} ($(nproc)
cores; QEMU processes running: ${qemus:-0}). Timed runs use
\`--no-verify\`; one more run per scenario verifies (the memory digests
of both copies compared inside the downtime window: this proves
nothing was lost) and its cost is given apart.

**Guest mix** \`--mix $mix\` (the rest random): ${zero_pct}% zero
pages, the rest code-, text- and random-like, as in a guest that has
been busy for a while. Like Xen 4.17's own stream, the sim sends every
page, zero pages in full (compression, issue 5, will not), so a
migration carries $(mib "$idle_wire") MiB while the wire floor counts
only the $(mib "$nz") MiB of non-zero pages. With more zero pages (the
default mix has 40%) that floor ratio gets worse in proportion, for a
reason no transport change short of skipping zero pages can remove, so
both floors are shown.

| goal (issue 3, item 10) | measured | result |
|---|---|---|
| idle: total ≤ 1.5 × wire floor | ${idle_ratio} × ($idle_total ms vs $floor_ms ms) | $idle_ok |
| 200 MB/s: total ≤ 1.4 × idle | ${dirty_ratio} × ($dirty_total ms vs $idle_total ms) | $dirty_t_ok |
| 200 MB/s: downtime ≤ 20 ms | max $dirty_down_max ms | $dirty_d_ok |
| 800 MB/s, downtime policy 300 ms: limit held in ≥ 99% of $busy_runs | $busy_kept of $busy_runs | $busy_ok |

### 1. Wire floor

\`bench/tcp-floor --json --bytes 1G --runs 5\`: one process sends 1 GiB
from memory over 127.0.0.1, another reads and discards it.

| measure | value |
|---|---:|
| loopback TCP, median of 5 (min / max) | $(gb "$tcp_bps") GB/s ($(gb "$tcp_min") / $(gb "$tcp_max")) |
| non-zero page bytes of the guest | $nz ($(mib "$nz") MiB) |
| same, expected from the mix | $nz_mix |
| **wire floor** = non-zero page bytes / TCP | **$floor_ms ms** |
| full-stream floor = bytes on the wire / TCP | $full_floor_ms ms |

Non-zero page bytes: $nz_source.

### 2. Idle guest

Dirty rate 0; \`migrate --json --no-verify g PEER\` (downtime policy,
default 300 ms limit).

$(table_head)
$idle_rows
| goal | measured | result |
|---|---|---|
| median total ≤ 1.5 × wire floor | $idle_total ms = **${idle_ratio} ×** the wire floor ($floor_ms ms); ${idle_full_ratio} × the full-stream floor ($full_floor_ms ms) | $idle_ok |

Median downtime $idle_down ms. $(verify_line "$idle_verified" "$idle_down")

### 3. 200 MB/s dirtying

\`--dirty-rate $dirty_rate --working-set $dirty_ws\`: 51200 pages/s =
200 MB/s of dirtied pages, over a $dirty_ws hot set. Timed runs:
\`migrate --json --no-verify --downtime-ms 20 g PEER\`; the row "300 ms
limit" is one run with the default limit instead, for comparison (the
policy then stops as soon as the dirty set fits in 300 ms).

$(table_head)
$dirty_rows
| goal | measured | result |
|---|---|---|
| median total ≤ 1.4 × idle median | $dirty_total ms = **${dirty_ratio} ×** idle ($idle_total ms) | $dirty_t_ok |
| downtime ≤ 20 ms (every timed run) | max **$dirty_down_max ms** (median $dirty_down_med, rounds median $dirty_rounds_med) | $dirty_d_ok |

$(verify_line "$dirty_verified" "$dirty_down_med")

### 4. Downtime policy at 300 ms, 800 MB/s dirtying

\`--dirty-rate $busy_rate --working-set $busy_ws\`: 204800 pages/s =
800 MB/s of dirtied pages over a $busy_ws hot set, which takes about
the limit to send at the pre-copy bandwidth, so the policy must rely
on its estimate (a smaller set fits after round 1 whatever it does; a
much larger one never converges, see the notes). \`migrate --json
--no-verify --policy downtime --downtime-ms 300 g PEER\`, $busy_runs
runs back and forth.

$(table_head)
$busy_rows
| goal | measured | result |
|---|---|---|
| downtime ≤ 300 ms in ≥ 99% of $busy_runs runs | **$busy_kept of $busy_runs** ($busy_pct%) | $busy_ok |

Downtime min / median / max: $busy_down ms; rounds min / median / max:
$busy_rounds_mmm; total min / median / max: $busy_total ms. Failed
migrations: $busy_failed. $(verify_line "$busy_verified" "$busy_down_med")

### Notes

- *Downtime* is the engine's: the source paused for the stop-and-copy
  until the destination reports the guest running; *total* is from the
  request to the end of the commit, as \`xlmig migrate --json\` reports.
  *Policy estimate*: the downtime the pre-copy policy predicted when it
  decided to stop (last dirty set × 4104 bytes / the last round's
  bandwidth, plus the commit's two round trips as measured at the
  handshake; from the source agent's \`--verbose\` log).
- The floor is two copies (send, receive) on two cores. A sim
  migration now makes three: the sim's save hands each PAGE_DATA
  record to the engine on the same thread (no pipe), which validates
  it and sends it as one STREAM frame straight from the guest's memory
  with sendmsg(); the receiving agent validates each frame and feeds
  it to the restore on the same thread, which pwrite()s runs of pages
  into the new guest's sparse memory file and skips zero pages (they
  stay holes). The third copy, into the page cache of that file (ext4
  allocation included), and the fixed cost of the commit (both
  agents' domain bookkeeping, destroying the 1 GiB source copy) are
  what separates it from the floor. The libxl backend still goes
  through a pipe (1 MiB, F_SETPIPE_SZ), as libxl wants an fd.
- The agents run with the default \`--stop-copy-slots 1\`: one guest
  of a host paused at a time; these runs migrate one guest at a time,
  so the gate never waits here.
- The digest check reads all guest memory on both hosts (in parallel)
  inside the downtime window: it is what separates the verified rows'
  downtime from the others.
- A sim guest's workload (dirty rate, working set) is not carried by
  the migration: the guest runs idle on the destination, so
  back-and-forth runs of one guest would measure idle guests after the
  first hop; hence a fresh guest per run.
- Scenario 4's hot set decides what is tested. At 800 MB/s a 64 MiB
  set fits the limit after round 1 whatever the policy does; a 256 MiB
  set does not converge at this bandwidth (every round finds most of
  it dirty again): the downtime policy then iterates until one round
  happens to measure enough bandwidth, or stops at \`--max-rounds\`
  (30) whatever the estimate. 128 MiB is the size at which the
  estimate itself must be right.
- The estimate divides by the bandwidth of the last pre-copy round,
  measured while the workload still runs and contends with the copy;
  the stop-and-copy runs with the guest paused and goes faster, so the
  estimate errs on the safe side (compare the two columns).
- "800 MB/s" counts dirtied pages (204800 pages/s × 4 KiB), as Xen's
  dirty rate does; most of the workload's writes change one cache
  line of a page.
EOF
