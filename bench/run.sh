#!/usr/bin/env bash
# bench/run.sh - run the benchmarks and rewrite docs/benchmarks.md.
# Called by `make bench` after building bench/ (optimised, no sanitizers).
# Corpora: real Xen 4.17 `xl save` images from ../shared/xen-streams
# (when present) and synthetic streams made here.  Every figure that is
# compared is measured in this same run; only ratios are meant to be read.
# Sections: the stream reader (bench/reader), then live migration
# between two sim agents (bench/migrate.sh, with bench/tcp-floor).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
xlmig="$top/tools/xlmig/xlmig"
shared="${LXM_SHARED_DIR:-$top/../shared}/xen-streams"
out="$top/docs/benchmarks.md"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# section NAME MISSING CMD...: CMD prints a markdown section ("## bench/
# NAME ..."), appended to $out.  When it fails, that is said loudly and
# in the document: "## bench/NAME", then "MISSING this `make bench`:"
# and the last line of its stderr.
section() {
    local name=$1 missing=$2 text
    shift 2
    if text=$("$@" 2> >(tee "$tmp/$name.err" >&2)); then
        printf '\n%s\n' "$text" >> "$out"
        echo "bench: wrote the $name section to $out" >&2
    else
        echo "bench: FAILED: bench/$name could not run (see above)" >&2
        printf '\n## bench/%s\n\n%s this `make bench`: %s\n' "$name" \
            "$missing" "$(tail -1 "$tmp/$name.err")" >> "$out"
    fi
}

corpora=()
for img in pv-128m pvh-128m; do
    if [ -f "$shared/$img.save.zst" ]; then
        zstd -q -d -f "$shared/$img.save.zst" -o "$tmp/$img.save"
        corpora+=("$img=$tmp/$img.save")
    else
        echo "bench: $shared/$img.save.zst absent, skipping that corpus" >&2
    fi
done
"$xlmig" stream-synth --guest hvm --memory 256M --rounds 4 --seed 1 \
    --name bench "$tmp/synth-hvm-256m.xl"
corpora+=("synth-hvm-256m=$tmp/synth-hvm-256m.xl")

echo "bench: reader vs memcpy on ${#corpora[@]} corpora..." >&2
reader_table=$("$top/bench/reader" --runs 7 "${corpora[@]}")
echo "$reader_table"

{
    cat <<HDR
# Benchmarks

Produced by \`make bench\` (bench/run.sh) on $(date -u +%Y-%m-%d), host
$(nproc) cores, $(uname -m). Machines here are shared and noisy: each
table compares against a baseline measured in the same run, so read the
ratios, not the absolute figures.

## Stream reader vs memcpy

Command: \`bench/reader --runs 7 NAME=FILE...\` (median of 7 interleaved
runs; the reader is fed 64 KiB chunks, as from a pipe).

- *memcpy*: copying the same bytes once (the baseline).
- *pipe+reader*: each 64 KiB chunk copied into a buffer, as \`read()\` from
  libxl's pipe does, then fed to the reader with full validation of every
  header, record, pfn word and padding byte: the reader's real cost on a
  migration path. **Goal (issue 2): pipe+reader / memcpy >= 0.5.**
- *reader walk*: the reader alone on bytes already in memory. It walks
  headers and pfn words and skips page data without touching it, so this
  is far above memory bandwidth by design (it does not copy pages).
- *reader+stats*: also hands every page to \`lxm_stream_stats_event\`
  (zero-page test, pfn sets, iterations): what \`xlmig stream-info\` does.

$reader_table
HDR
} > "$out"

# Live migration: bench/migrate.sh starts and stops its own agents.
echo "bench: live migration (two sim agents, about 3 minutes)..." >&2
migrate_section=$(bash "$top/bench/migrate.sh")
printf '%s\n' "$migrate_section" >> "$out"
echo "bench: wrote $out" >&2

# ---- Host evacuation (issue 6): bench/evacuate.sh ----------------------
# Needs root (network namespaces, tc); starts and removes its own agents
# and namespaces.  LXM_BENCH_SCALE etc. pass through (see the script).
# When it cannot run, that is said loudly and in the document.
echo "bench: host evacuation (4 sim hosts in network namespaces," \
    "batch 10 vs 1; many minutes at full size)..." >&2
section evacuate "Not run by" bash "$top/bench/evacuate.sh"

# ---- Stream codecs (issue 5, item 7): bench/codec ---------------------
# Corpora: the real images in ../shared/xen-streams and the Xen lab's
# exports in .cache/xen-lab/streams (when present; bench/codec finds
# them, honouring LXM_SHARED_DIR), plus a synth stream and a live save
# of a sim domain made in-process.  Baselines (memcpy, stock zlib-1,
# `zstd --fast` as a process) are measured in the same run.  It prints
# its own "## bench/codec" section, PASS/FAIL per goal included; a goal
# that fails is a FAIL in the table, not a failed run.  A few minutes.
echo "bench: stream codecs (bench/codec; a few minutes)..." >&2
section codec "Failed in" "$top/bench/codec" --runs 3 --threads 2

# ---- Stream compression, whole migrations (issue 5, item 4): ----------
# bench/compress.sh.  auto vs none (lz4, zstd for information) over
# loopback and over a 1 Gbit/s veth between two network namespaces
# (needs root and iproute2; it makes and removes its own namespaces).
# It prints its own "## bench/compress" section with PASS/FAIL per goal;
# when it cannot run, that is said loudly and in the document.
echo "bench: compression in whole migrations (bench/compress.sh;" \
    "loopback and 1 Gbit/s, several minutes)..." >&2
section compress "Not run by" bash "$top/bench/compress.sh"
