#!/usr/bin/env bash
# tests/scripts/xl-transport.sh - `xlmig xl-transport` end to end with a
# stand-in for xl (run by tests/test_xltransport.c; the real xl is
# proven in the Xen lab).
#
#   xl-transport.sh XLMIG XLMIGD [COMPRESS]
#
# A sim xlmigd runs with --xl-path pointing at a fake xl that behaves
# like xl migrate-receive on the wire: it writes a banner, copies its
# stdin (the stream) to a file, then writes a result line and exits 3.
# Checked: the stream arrives byte for byte, the banner and result come
# back on stdout in order, the exit status is the fake xl's, and the
# agent refuses anything but xl migrate-receive.
set -u
xlmig=$1 xlmigd=$2 compress=${3:-}
dir=$(mktemp -d "${TMPDIR:-/tmp}/lxm-xlt.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- agent log"; tail -n 30 "$dir/agent.log"; exit 1; }

cat >"$dir/xl" <<FAKE
#!/bin/sh
# a stand-in for: xl [-t] [-T] [-v..] migrate-receive [-e] [-d] [-p]
echo "\$*" >"$dir/xl.args"
printf 'xl migration receiver ready, send binary domain data.\n'
cat >"$dir/received"
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

"$xlmig" xl-transport "${copt[@]}" --agent "$listen" somehost xl -t -vv \
    migrate-receive -e -p <"$dir/stream" >"$dir/out" 2>"$dir/err"
rc=$?
[ $rc = 3 ] || fail "exit status $rc, not the fake xl's 3; stderr: $(cat "$dir/err")"
cmp -s "$dir/stream" "$dir/received" || fail "the stream did not arrive byte for byte"
[ "$(cat "$dir/xl.args")" = "-t -vv migrate-receive -e -p" ] ||
    fail "xl ran with '$(cat "$dir/xl.args")'"
printf 'xl migration receiver ready, send binary domain data.\nmigration target: got it\n' |
    cmp -s - "$dir/out" || fail "stdout: $(cat "$dir/out")"

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
