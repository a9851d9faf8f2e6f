#!/usr/bin/env bash
# tests/scripts/xl-transport.sh - `xlmig xl-transport` end to end with a
# stand-in for xl (run by tests/test_xltransport.c; the real xl is
# proven in the Xen lab).
#
#   xl-transport.sh XLMIG XLMIGD [COMPRESS]
#
# A sim xlmigd runs with --xl-path pointing at a fake xl that behaves
# like xl migrate-receive on the wire: it writes a banner, reads the
# stream (exactly its length), answers "ready", reads what the sender
# says then until EOF, writes a result line and exits 3.  The sender
# side waits for "ready" before it closes the stream, as xl does: bytes
# held back anywhere in the transport would hang it (bounded: 20 s).
# Checked: the stream arrives byte for byte, the lines come back on
# stdout in order, the exit status is the fake xl's, and the agent
# refuses anything but xl migrate-receive.
set -u
xlmig=$1 xlmigd=$2 compress=${3:-}
dir=$(mktemp -d "${TMPDIR:-/tmp}/lxm-xlt.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- agent log"; tail -n 30 "$dir/agent.log"; exit 1; }

cat >"$dir/xl" <<FAKE
#!/bin/sh
# a stand-in for: xl [-t] [-T] [-v..] migrate-receive [-e] [-d] [-p]
echo "\$*" >"$dir/xl.args"
printf 'xl migration receiver ready, send binary domain data.\n'
head -c 5000000 >"$dir/received"
printf 'domain received, ready to unpause\n'
cat >"$dir/after"
printf 'migration target: got it\n'
exit 3
FAKE
chmod +x "$dir/xl"

"$xlmigd" --backend sim --foreground --state-dir "$dir/state" \
    --listen 127.0.0.1:0 --control "$dir/ctl.sock" --ready-file "$dir/ready" \
    --hostname xlt --xl-path "$dir/xl" >"$dir/agent.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$dir/ready" ] && break; sleep 0.05; done
listen=$(sed -n 's/^listen=//p' "$dir/ready")
[ -n "$listen" ] || fail "the agent did not get ready"

head -c 3000000 /dev/urandom >"$dir/stream"
head -c 2000000 /dev/zero >>"$dir/stream"
copt=()
[ -n "$compress" ] && copt=(--compress="$compress")

# the sending xl: the stream, then (only once the receiver said ready)
# its go-ahead, then the end of its stdin
sender() {
    cat "$dir/stream"
    for _ in $(seq 400); do
        grep -q 'ready to unpause' "$dir/out" 2>/dev/null && break
        sleep 0.05
    done
    grep -q 'ready to unpause' "$dir/out" || touch "$dir/sender-timeout"
    printf 'go\n'
}
sender | "$xlmig" xl-transport "${copt[@]}" --agent "$listen" somehost xl -t -vv \
    migrate-receive -e -p >"$dir/out" 2>"$dir/err"
rc=$?
[ ! -e "$dir/sender-timeout" ] ||
    fail "the receiver never said ready: stream bytes held back in the transport"
[ "$(cat "$dir/after" 2>/dev/null)" = go ] || fail "what followed the stream: '$(cat "$dir/after" 2>/dev/null)'"
[ $rc = 3 ] || fail "exit status $rc, not the fake xl's 3; stderr: $(cat "$dir/err")"
cmp -s "$dir/stream" "$dir/received" || fail "the stream did not arrive byte for byte"
[ "$(cat "$dir/xl.args")" = "-t -vv migrate-receive -e -p" ] ||
    fail "xl ran with '$(cat "$dir/xl.args")'"
printf 'xl migration receiver ready, send binary domain data.\ndomain received, ready to unpause\nmigration target: got it\n' |
    cmp -s - "$dir/out" || fail "stdout: $(cat "$dir/out")"
# the codec did its job: 3 MB random + 2 MB zeros
wire=$(sed -n 's/.*xl exited 3 (\([0-9]*\) bytes in.*/\1/p' "$dir/agent.log")
if [ "$compress" = none ]; then
    [ "$wire" = 5000003 ] || fail "--compress=none: $wire bytes on the wire, not 5000000 + 3"
else
    [ -n "$wire" ] && [ "$wire" -lt 3500000 ] ||
        fail "--compress=${compress:-default}: $wire bytes on the wire for 5000000"
fi

# only xl migrate-receive, with xl's own flags
for bad in "xl create /etc/passwd" "sh -c id" "xl migrate-receive --script=/bin/sh" \
           "xl -c migrate-receive"; do
    # shellcheck disable=SC2086
    "$xlmig" xl-transport --agent "$listen" somehost $bad </dev/null \
        >"$dir/out" 2>"$dir/err"
    rc=$?
    [ $rc != 0 ] || fail "'$bad' was run"
    grep -q "xl-receive" "$dir/err" || fail "'$bad': stderr does not say why: $(cat "$dir/err")"
done
[ ! -e "$dir/received.bad" ] || fail "a refused command ran"

# a peer that is not there: a clear error
"$xlmig" xl-transport --agent 127.0.0.1:1 somehost xl migrate-receive </dev/null \
    >/dev/null 2>"$dir/err" && fail "no agent, yet exit 0"
grep -q "cannot connect" "$dir/err" || fail "no agent: stderr $(cat "$dir/err")"
echo "PASS"
