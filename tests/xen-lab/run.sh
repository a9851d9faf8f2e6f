#!/usr/bin/env bash
# tests/xen-lab/run.sh - boot real Xen 4.17 + a Debian dom0 under QEMU
# (TCG) and run dom0-test.sh in it; `make check-xen` runs this.
#
#   tests/xen-lab/run.sh                 build the image, boot, test
#   MODE=shell tests/xen-lab/run.sh      an interactive dom0 on this
#                                        terminal (Ctrl-a x quits QEMU)
#
# Environment:
#   TIMEOUT=3000   seconds QEMU may run at most (the whole test)
#   CPU=qemu64,+svm,+npt  SMP=2  MEM=2048 (MiB)  DOM0_MEM=768M
#   NO_BUILD=1     skip build-image.sh (use the images as they are)
#   STEPS=save+xl+xlmig+xs  the dom0 step groups to run (default all; a
#                  partial run reports the others as "not reached")
#   XENLAB_DIR     the lab's folder (default .cache/xen-lab)
#   LXM_XLMIG / LXM_VERIFY_STREAM  the host's xlmig and verify-stream-v2
#   XEN_EXTRA / DOM0_EXTRA  more hypervisor / dom0 kernel arguments
#
# After the run, on the host: the exported streams are carved out of the
# export disk into $XENLAB_DIR/streams/ (labvm-pvh.save: `xl save`;
# labvm-pvh.migstream: the bytes of a live `xl migrate`), and for each
# `xlmig stream-info --json` must count the same records per type as
# Xen's `verify-stream-v2 -v` (streams-check.py).  The run's serial log,
# other exported logs and summary.txt are in $XENLAB_DIR/runs/<stamp>/.
# Exit 0 only if every step passed; on a failure the serial log's tail
# is printed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
export XENLAB_DIR=${XENLAB_DIR:-$top/.cache/xen-lab}
lab=$XENLAB_DIR
img=$lab/img
MODE=${MODE:-run}
TIMEOUT=${TIMEOUT:-3000}
CPU=${CPU:-qemu64,+svm,+npt}
SMP=${SMP:-2}
MEM=${MEM:-2048}
DOM0_MEM=${DOM0_MEM:-768M}
xlmig=${LXM_XLMIG:-$top/tools/xlmig/xlmig}
verify=${LXM_VERIFY_STREAM:-$top/.cache/bin/verify-stream-v2}

# the steps, in order; a step with no RESULT line failed ("not reached")
steps=(boot dom0-setup guest-create xl-save xl-restore xl-migrate xl-migrate-capture
       xlmigd-start xlmig-migrate xlmig-fault xs-hooks xl-transport
       stream-info-save
       stream-info-migration)

t_start=$(date +%s)
# The XENLAB lines of the serial log.  xl's progress output ends in \r
# and no newline, so a line can start after one: split there too.
xenlab_lines() { tr '\r' '\n' <"$serial" | sed -n 's/^.*\(XENLAB .*\)$/\1/p'; }
say() { printf '[xen-lab %4ds] %s\n' $(($(date +%s) - t_start)) "$*"; }

if [ "${NO_BUILD:-0}" != 1 ]; then
    "$here/build-image.sh" || { echo "xen-lab: build-image.sh failed" >&2; exit 1; }
fi
for f in xen vmlinuz dom0-initrd.gz; do
    [ -s "$img/$f" ] || { echo "xen-lab: $img/$f missing (run build-image.sh)" >&2; exit 1; }
done
t_built=$(date +%s)

stamp=$(date +%Y%m%d-%H%M%S)
out=$lab/runs/$stamp
mkdir -p "$out" "$lab/streams"
serial=$out/serial.log
export_img=$lab/export.img
rm -f "$export_img"
truncate -s 2G "$export_img"

# Xen: serial console; smap=0 (under TCG a PV dom0 dies at its first
# exception bounce with SMAP on); no scrubbing (slow under TCG).
xen_args="console=com1 com1=115200,8n1 dom0_mem=$DOM0_MEM,max:$DOM0_MEM"
xen_args="$xen_args dom0_max_vcpus=$SMP loglvl=all guest_loglvl=all"
xen_args="$xen_args bootscrub=false console_timestamps=boot smap=0 ${XEN_EXTRA:-}"
# NB: QEMU's multiboot -initrd separates modules with ',': none in here.
dom0_args="console=hvc0 earlyprintk=xen rdinit=/init loglevel=5 xenlab=$MODE xenlab_steps=${STEPS:-save+xl+xlmig+xs} ${DOM0_EXTRA:-}"
# -cpu: qemu64 (no XSAVE/AVX) + SVM with nested paging.  "-cpu max"
# corrupts dom0 processes at random once guests run; SVM+NPT gives PVH
# guests HAP log-dirty, the only live migration Debian's Xen (no shadow
# paging) can do.
qemu=(qemu-system-x86_64 -machine pc,accel=tcg -cpu "$CPU" -smp "$SMP" -m "$MEM"
      -display none -no-reboot -monitor none -nic none
      -kernel "$img/xen" -append "$xen_args"
      -initrd "$img/vmlinuz $dom0_args,$img/dom0-initrd.gz"
      -drive "file=$export_img,format=raw,if=virtio,cache=unsafe")

if [ "$MODE" = shell ]; then
    "${qemu[@]}" -serial mon:stdio
    rm -f "$export_img"
    exit 0
fi

qpid=
cleanup() {
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
        kill "$qpid" 2>/dev/null
        sleep 2
        kill -9 "$qpid" 2>/dev/null
    fi
}
trap cleanup EXIT
trap 'echo "xen-lab: interrupted"; exit 130' INT TERM

say "booting Xen under QEMU (TCG, -cpu $CPU, $MEM MiB); serial log $serial"
t_boot=$(date +%s)
"${qemu[@]}" -serial "file:$serial" </dev/null >"$out/qemu.log" 2>&1 &
qpid=$!
peak=0
shown=0
timed_out=0
marks_seen=" "
while kill -0 "$qpid" 2>/dev/null; do
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$qpid/status" 2>/dev/null)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    for m in "Xen version:xen" "Linux version:dom0-kernel"; do
        case "$marks_seen" in *" ${m#*:} "*) continue ;; esac
        if grep -aq "${m%%:*}" "$serial" 2>/dev/null; then
            marks_seen="$marks_seen${m#*:} "
            say "${m#*:} started"
        fi
    done
    # progress: the XENLAB lines printed so far
    n=$(xenlab_lines 2>/dev/null | wc -l)
    if [ "${n:-0}" -gt "$shown" ]; then
        xenlab_lines | tail -n +$((shown + 1)) |
            head -n $((n - shown)) | while read -r l; do say "$l"; done
        shown=$n
    fi
    if [ $(($(date +%s) - t_boot)) -gt "$TIMEOUT" ]; then
        say "TIMEOUT: QEMU still running after ${TIMEOUT}s; killing it"
        timed_out=1
        cleanup
        break
    fi
    sleep 2
done
wait "$qpid" 2>/dev/null
qrc=$?
qpid=
t_qemu=$(($(date +%s) - t_boot))
say "QEMU exited ($qrc) after ${t_qemu}s, peak RSS $((peak / 1024)) MiB"

# ---- carve the exported files out of the export disk -------------------
head -c 1048576 "$export_img" | tr -d '\0' >"$out/export-index.txt"
while read -r name off size; do
    [ -n "$name" ] || continue
    case "$name" in
    *.save | *.migstream) dest=$lab/streams/$name ;;
    *) dest=$out/$name ;;
    esac
    dd if="$export_img" of="$dest" bs=1M skip="$off" \
        count=$(((size + 1048575) / 1048576)) 2>/dev/null
    truncate -s "$size" "$dest"
done <"$out/export-index.txt"
rm -f "$export_img"

# ---- results -------------------------------------------------------------
results=$out/results.txt
xenlab_lines | sed -n 's/^XENLAB RESULT //p' >"$results"
xenlab_lines | grep -q '^XENLAB dom0-up' && echo "boot PASS Xen + dom0 up" >>"$results"

# stream-info against verify-stream-v2 on the exported streams; only
# streams this run exported count (a stale file from an earlier run
# would prove nothing)
check_stream() { # STEP FILE
    local f=$lab/streams/$2
    if ! grep -q "^$2 " "$out/export-index.txt"; then
        echo "$1 FAIL $2 was not exported by this run" >>"$results"
        return
    fi
    say "$1: stream-info vs verify-stream-v2 on $2"
    if python3 "$here/streams-check.py" --xlmig "$xlmig" --verify "$verify" \
        "$f" >"$out/$1.txt" 2>&1; then
        echo "$1 PASS $(tail -n 1 "$out/$1.txt")" >>"$results"
    else
        echo "$1 FAIL $(tail -n 1 "$out/$1.txt")" >>"$results"
    fi
    sed 's/^/    /' "$out/$1.txt"
}
check_stream stream-info-save labvm-pvh.save
check_stream stream-info-migration labvm-pvh.migstream

t_end=$(date +%s)
{
    echo "xen-lab run $stamp: build $((t_built - t_start))s, QEMU ${t_qemu}s" \
         "(timeout $TIMEOUT, timed out: $timed_out), total $((t_end - t_start))s," \
         "QEMU peak RSS $((peak / 1024)) MiB, -cpu $CPU -smp $SMP -m $MEM"
    echo
    fails=0
    for s in "${steps[@]}"; do
        line=$(grep -m1 "^$s " "$results")
        if [ -z "$line" ]; then
            printf '  %-22s FAIL  not reached\n' "$s"
            fails=$((fails + 1))
        else
            r=$(echo "$line" | cut -d' ' -f2)
            printf '  %-22s %-5s %s\n' "$s" "$r" "$(echo "$line" | cut -d' ' -f3-)"
            [ "$r" = PASS ] || fails=$((fails + 1))
        fi
    done
    echo
    echo "timings (seconds, in dom0):"
    xenlab_lines | sed -n 's/^XENLAB TIME /  /p'
    xl_t=$(xenlab_lines | awk '$2 == "TIME" && $3 == "xl-migrate" { print $4 }')
    xm_t=$(xenlab_lines | awk '$2 == "TIME" && $3 == "xlmig-migrate" { print $4 }')
    echo
    echo "live localhost migration, 128 MiB PVH guest: xlmig (libxl backend)" \
         "${xm_t:-n/a} s, xl migrate ${xl_t:-n/a} s"
    echo
    if [ $fails = 0 ]; then echo "xen-lab: PASS (all ${#steps[@]} steps)"
    else echo "xen-lab: FAIL ($fails of ${#steps[@]} steps)"; fi
} >"$out/summary.txt"
if grep -q '^xen-lab: FAIL' "$out/summary.txt"; then
    echo "--- serial log tail ($serial)"
    tr -d '\r' <"$serial" | tail -n 60
fi
echo "--- summary ($out/summary.txt; streams in $lab/streams/)"
cat "$out/summary.txt"
grep -q '^xen-lab: PASS' "$out/summary.txt"
