#!/usr/bin/env bash
# scripts/demo.sh - what libxlmig does today, in a minute (`make demo`).
#
# Makes up a PVH guest's migration stream with `xlmig stream-synth`,
# reads it back with `xlmig stream-info` (text, then JSON), and has Xen
# 4.17's own verify-stream-v2 check it.  Everything happens in a
# temporary directory that is removed on exit.
#
# Expects a built tree (`make`) and `make deps` (for verify-stream-v2).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
xlmig=tools/xlmig/xlmig
verify=${LXM_VERIFY_STREAM:-.cache/bin/verify-stream-v2}

[ -x "$xlmig" ] || { echo "demo: $xlmig is not built; run 'make'" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xlmig-demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
stream=$tmp/demo-vm.xl

heading() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

heading "1. Write the stream a PVH guest (64 MiB, 3 pre-copy rounds) would send"
run "$xlmig" stream-synth --guest pvh --memory 64M --rounds 3 --name demo-vm \
    "$stream"
printf '(%s bytes)\n' "$(stat -c %s "$stream")"

heading "2. Check and summarise it: xlmig stream-info"
run "$xlmig" stream-info "$stream"

heading "3. The same, for scripts: xlmig stream-info --json"
run "$xlmig" stream-info --json "$stream"

heading "4. Xen 4.17's own checker agrees: verify-stream-v2 -f xl"
if [ -x "$verify" ]; then
    run "$verify" -f xl -i "$stream"
    echo "verify-stream-v2: OK"
else
    echo "verify-stream-v2 not found at $verify; run 'make deps'" >&2
    exit 1
fi
