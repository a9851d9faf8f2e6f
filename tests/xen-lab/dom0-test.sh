#!/bin/sh
# tests/xen-lab/dom0-test.sh - the lab's test steps, run INSIDE the Xen
# dom0 (busybox sh) by dom0-init; run.sh on the host reads the results
# from the serial console and the exported files from the export disk.
#
#   dom0-test.sh setup   start xenstored, xen-init-dom0, xenconsoled and
#                        write the guest config /tmp/labvm.cfg
#   dom0-test.sh all     setup, then every step below, in order
#
# Steps (one PVH guest "labvm", 128 MiB, printing "tick N" each second):
#   dom0-setup      the Xen daemons start
#   guest-create    xl create; the guest prints its first tick
#   xl-save         xl save to a file (exported as labvm-pvh.save)
#   xl-restore      xl restore of it; the ticks go on, no reboot
#   xl-migrate      xl migrate to localhost, live: the baseline
#   xl-migrate-capture  the same through `tee` (the captured bytes are
#                   exported as labvm-pvh.migstream)
#   xlmigd-start    two agents, xlmigd --backend libxl, a and b, on
#                   their own control sockets and ports
#   xlmig-migrate   xlmig migrate --live, agent a -> agent b: the ticks go
#                   on, no reboot, a new domid, no leftover domain
#   xlmig-fault     the same, but agent b is killed (SIGKILL) once
#                   labvm--incoming exists: the guest still runs on the
#                   source and no half-built domain remains
#   xl-transport    stock xl migrate -s "xlmig xl-transport ...": the
#                   stream goes through agent b, which runs xl
#                   migrate-receive; the ticks go on, a new domid
#   xs-hooks        xenstore-hooks against the real xenstored: three sim
#                   agents, xlmig-hawatch, a request written by the hook
#                   helpers evacuates host s1 (the status keys checked)
#
# Output lines for run.sh (everything else is diagnostics):
#   XENLAB STEP name            a step starts
#   XENLAB RESULT name PASS|FAIL text
#   XENLAB TIME name seconds
# Every wait is bounded.  Exported files go to /dev/vda: an index
# ("name offset_MiB bytes" lines, NUL padded) in MiB 0, the files from
# MiB 1 on, each at a MiB boundary.
export PATH=/opt/xlmig/bin:/usr/sbin:/usr/bin:/sbin:/bin
# the project's tools find the libraries dom0 lacks here (build-image.sh)
export LD_LIBRARY_PATH=/opt/xlmig/lib
G=labvm
CFG=/tmp/$G.cfg
CON=/var/log/xen/console
AGENT_DIR=/run/xlmig
PORT_A=8701
PORT_B=8702
FAILED=0
EXPORT_NEXT=1

now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
pass() { echo "XENLAB RESULT $1 PASS $2"; }
# how a bounded command ended (busybox timeout kills with SIGTERM: 143)
ended() {
    case "$1" in
    124 | 137 | 143) echo "timed out (status $1)" ;;
    *) echo "exited $1" ;;
    esac
}
fail() { echo "XENLAB RESULT $1 FAIL $2"; FAILED=1; }
step() { echo; echo "XENLAB STEP $1 at $(now)s"; }
timing() { echo "XENLAB TIME $1 $2"; }

# ---- the guest's console ---------------------------------------------------
# xenconsoled names a log after the domain's name when it first sees it:
# guest-labvm.log, and guest-labvm--incoming.log for the receiving side of
# a localhost migration (xl's or ours).
conlogs() { ls $CON/guest-$G.log $CON/guest-$G--*.log 2>/dev/null; }
console() { for f in $(conlogs); do cat "$f"; done | tr -d '\r'; }
maxtick() {
    console | sed -n 's/^tick \([0-9][0-9]*\) .*/\1/p' |
        awk 'BEGIN { m = -1 } { if ($1 + 0 > m) m = $1 + 0 } END { print m }'
}
banners() { console | grep -c 'xenlab-guest: boot'; }
# wait_tick_above N SECONDS: until the guest prints a tick > N
wait_tick_above() {
    _t=0
    while [ "$_t" -lt "$2" ]; do
        [ "$(maxtick)" -gt "$1" ] && return 0
        sleep 1
        _t=$((_t + 1))
    done
    echo "no tick above $1 in $2 s (last $(maxtick)); console tail:"
    console | tail -n 8
    return 1
}

# ---- domains -----------------------------------------------------------------
domid_of() { xl domid "$1" 2>/dev/null; }
# the state column of xl list, e.g. "-b----"; empty when there is none
state_of() { xl list "$1" 2>/dev/null | awk 'NR == 2 { print $5 }'; }
leftovers() {
    xl list 2>/dev/null | awk 'NR > 1 { print $1 }' |
        grep -E -- '--(incoming|migratedaway)$' | tr '\n' ' '
}
# the guest exists and is not paused
guest_running() {
    _s=$(state_of $G)
    [ -n "$_s" ] && case "$_s" in ??p*) return 1 ;; *) return 0 ;; esac
}
# A step that needs the guest: recreate it when an earlier step lost it,
# so that one failure does not take the later steps with it.
ensure_guest() {
    guest_running && return 0
    echo "($G is not running: recreating it for this step)"
    xl destroy $G >/dev/null 2>&1
    timeout 300 xl create $CFG || return 1
    wait_tick_above -1 300
}
# check_alive STEP BEFORE_TICK BEFORE_BANNERS: the guest runs after a
# step, its ticks go on, and it did not boot again
check_alive() {
    if ! guest_running; then
        fail "$1" "$G is not running after the step (state '$(state_of $G)')"
        return 1
    fi
    if ! wait_tick_above "$2" 180; then
        fail "$1" "$G prints no tick after tick $2 within 180 s"
        return 1
    fi
    if [ "$(banners)" != "$3" ]; then
        fail "$1" "$G booted again (boot banners $3 -> $(banners)); ticks restarted"
        return 1
    fi
    return 0
}

# ---- export disk -------------------------------------------------------------
write_index() {
    dd if=/tmp/export-index of=/dev/vda bs=1M count=1 conv=notrunc,sync 2>/dev/null
    sync
}
# export_file PATH NAME: copy PATH to the export disk as NAME
export_file() {
    [ -b /dev/vda ] || { echo "export: no /dev/vda; $2 not exported"; return 1; }
    [ -f "$1" ] || return 1
    _sz=$(stat -c %s "$1")
    _s=$(now)
    dd if="$1" of=/dev/vda bs=1M seek=$EXPORT_NEXT conv=notrunc 2>/dev/null || {
        echo "export: dd of $1 failed"
        return 1
    }
    echo "$2 $EXPORT_NEXT $_sz" >>/tmp/export-index
    EXPORT_NEXT=$((EXPORT_NEXT + (_sz + 1048575) / 1048576))
    write_index
    echo "export: $2 ($_sz bytes) in $(since "$_s") s"
}

# ---- setup -------------------------------------------------------------------
setup() {
    step dom0-setup
    mkdir -p /var/lib/xen /var/lib/xenstored /run/xen /run/xenstored $CON $AGENT_DIR
    : >/tmp/export-index
    cat /opt/xlmig/BUILD-INFO 2>/dev/null
    _s=$(now)
    if ! xenstored --pid-file /run/xenstored.pid; then
        fail dom0-setup "xenstored did not start"
        return 1
    fi
    xen-init-dom0 || echo "xen-init-dom0 failed"
    if ! xenconsoled --log=guest --log-dir=$CON --pid-file=/run/xenconsoled.pid; then
        fail dom0-setup "xenconsoled did not start"
        return 1
    fi
    timing dom0-setup "$(since "$_s")"
    xl info | grep -E 'xen_version|xen_caps|nr_cpus|total_memory|free_memory|virt_caps'
    cat >$CFG <<EOF
name = "$G"
type = "pvh"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/initrd.gz"
extra = "console=hvc0 rdinit=/init loglevel=4"
memory = 128
maxmem = 128
vcpus = 1
on_crash = "preserve"
# QEMU's emulated SVM has no NRIP-save; Xen 4.17 then cannot emulate an
# intercepted RDTSCP and the guest hangs.  "native" does not intercept.
tsc_mode = "native"
EOF
    pass dom0-setup "xenstored, xen-init-dom0, xenconsoled"
}

# ---- xl: create, save, restore, migrate ---------------------------------
do_create() {
    step guest-create
    _s=$(now)
    if ! timeout 300 xl create $CFG; then
        fail guest-create "xl create failed or took over 300 s"
        return 1
    fi
    timing xl-create "$(since "$_s")"
    if ! wait_tick_above -1 300; then
        fail guest-create "created, but no tick on its console within 300 s"
        return 1
    fi
    timing guest-first-tick "$(since "$_s")"
    pass guest-create "PVH 128 MiB, ticking after $(since "$_s") s"
}

do_save_restore() {
    step xl-save
    rm -f /tmp/$G.save
    if ! ensure_guest; then
        fail xl-save "no running guest"
        fail xl-restore "no running guest"
        return 1
    fi
    wait_tick_above 2 60 >/dev/null
    before=$(maxtick)
    nb=$(banners)
    _s=$(now)
    if timeout 600 xl save $G /tmp/$G.save && [ -s /tmp/$G.save ]; then
        timing xl-save "$(since "$_s")"
        pass xl-save "$(stat -c %s /tmp/$G.save) bytes at tick $before"
    else
        fail xl-save "xl save failed or took over 600 s"
    fi
    step xl-restore
    if [ ! -s /tmp/$G.save ]; then
        fail xl-restore "no save image"
        return 1
    fi
    _s=$(now)
    if ! timeout 600 xl restore /tmp/$G.save; then
        fail xl-restore "xl restore failed or took over 600 s"
    else
        timing xl-restore "$(since "$_s")"
        check_alive xl-restore "$before" "$nb" &&
            pass xl-restore "ticks go on: $before -> $(maxtick), no reboot"
    fi
    export_file /tmp/$G.save $G-pvh.save
    rm -f /tmp/$G.save
}

# xl_migrate STEP RECEIVER [TRANSPORT]: a live localhost `xl migrate`;
# without TRANSPORT, -s "" means no ssh: the "host" operand (RECEIVER) is
# the whole receiving command; with it, xl runs "TRANSPORT RECEIVER xl
# migrate-receive" as it would run ssh
xl_migrate() {
    step $1
    if ! ensure_guest; then
        fail $1 "no running guest"
        return 1
    fi
    before=$(maxtick)
    nb=$(banners)
    id0=$(domid_of $G)
    _s=$(now)
    timeout 900 xl migrate -s "${3:-}" $G "$2" >/tmp/$1.log 2>&1
    rc=$?
    t=$(since "$_s")
    tail -n 12 /tmp/$1.log
    xl list
    if [ $rc != 0 ]; then
        fail $1 "xl migrate $(ended $rc) after $t s: $(grep -m1 -i error /tmp/$1.log)"
        xl destroy $G--incoming >/dev/null 2>&1
        return 1
    fi
    timing $1 "$t"
    id1=$(domid_of $G)
    check_alive $1 "$before" "$nb" || return 1
    if [ "$id0" = "$id1" ]; then
        fail $1 "domid $id0 unchanged: not migrated"
    elif [ -n "$(leftovers)" ]; then
        fail $1 "leftover domains: $(leftovers)"
    else
        pass $1 "live, localhost, in $t s; domid $id0 -> $id1; ticks $before -> $(maxtick)"
    fi
}

do_xl_migrate() {
    # the baseline: nothing between sender and receiver but a pipe
    xl_migrate xl-migrate "xl migrate-receive"
    # the same through a tee, to capture the stream.  lab-tee moves 1 MiB
    # per system call; busybox tee's 4 KiB calls (slow in a PV dom0 under
    # TCG) made this take ~110 s instead of ~15 s.
    rm -f /tmp/$G.migstream
    tee=tee
    command -v lab-tee >/dev/null 2>&1 && tee=lab-tee
    xl_migrate xl-migrate-capture "$tee /tmp/$G.migstream | xl migrate-receive"
    ls -l /tmp/$G.migstream 2>/dev/null
    export_file /tmp/$G.migstream $G-pvh.migstream
    rm -f /tmp/$G.migstream
}

# ---- xlmigd / xlmig ------------------------------------------------------
have_tools() {
    command -v xlmigd >/dev/null 2>&1 && command -v xlmig >/dev/null 2>&1
}
no_tools() {
    _w=""
    command -v xlmigd >/dev/null 2>&1 || _w="xlmigd"
    command -v xlmig >/dev/null 2>&1 || _w="$_w xlmig"
    echo "not built:$_w ${_w:+(tools/xlmigd/xlmigd, tools/xlmig/xlmig; run make)}"
}
AGENTS_UP=0
# start_agent NAME PORT: xlmigd --backend libxl in the background
start_agent() {
    rm -f $AGENT_DIR/$1.ready
    mkdir -p /var/lib/xlmig-$1
    env $(cat /opt/xlmig/agent.env 2>/dev/null) \
        xlmigd --backend libxl --foreground --state-dir /var/lib/xlmig-$1 \
        --listen 127.0.0.1:$2 --control $AGENT_DIR/$1.sock \
        --ready-file $AGENT_DIR/$1.ready -v >>/tmp/xlmigd-$1.log 2>&1 &
    eval "PID_$1=$!"
    _t=0
    while [ $_t -lt 60 ]; do
        [ -e $AGENT_DIR/$1.ready ] && return 0
        kill -0 "$(eval echo \$PID_$1)" 2>/dev/null || break
        sleep 1
        _t=$((_t + 1))
    done
    echo "xlmigd $1 not ready within 60 s; its log:"
    tail -n 20 /tmp/xlmigd-$1.log
    return 1
}
# stop_agent NAME: SIGTERM, then SIGKILL after 20 s
stop_agent() {
    _p=$(eval echo "\${PID_$1:-}")
    [ -n "$_p" ] || return 0
    kill "$_p" 2>/dev/null
    _t=0
    while kill -0 "$_p" 2>/dev/null && [ $_t -lt 20 ]; do
        sleep 1
        _t=$((_t + 1))
    done
    kill -9 "$_p" 2>/dev/null
    wait "$_p" 2>/dev/null
    eval "PID_$1="
}

do_agents() {
    step xlmigd-start
    if ! have_tools; then
        fail xlmigd-start "$(no_tools)"
        return 1
    fi
    if ! ensure_guest; then
        fail xlmigd-start "no running guest"
        return 1
    fi
    _s=$(now)
    if ! start_agent a $PORT_A || ! start_agent b $PORT_B; then
        fail xlmigd-start "xlmigd --backend libxl did not get ready (log above)"
        return 1
    fi
    timing xlmigd-start "$(since "$_s")"
    out=$(timeout 60 xlmig -H $AGENT_DIR/a.sock list --json 2>&1)
    rc=$?
    echo "$out"
    if [ $rc != 0 ]; then
        fail xlmigd-start "xlmig list --json exited $rc"
    elif ! echo "$out" | grep -q "\"$G\""; then
        fail xlmigd-start "xlmig list --json does not show $G"
    elif ! echo "$out" | grep -q '"type":"pvh"'; then
        # libxl's dominfo calls a PVH guest HVM; its config says PVH
        fail xlmigd-start "xlmig list --json does not show $G as type pvh"
    else
        AGENTS_UP=1
        pass xlmigd-start "agents a (:$PORT_A) and b (:$PORT_B) ready; xlmig list shows $G (pvh)"
    fi
}

do_xlmig_migrate() {
    step xlmig-migrate
    if ! have_tools; then
        fail xlmig-migrate "$(no_tools)"
        return 1
    fi
    if [ $AGENTS_UP != 1 ]; then
        fail xlmig-migrate "the agents are not running (xlmigd-start failed)"
        return 1
    fi
    if ! ensure_guest; then
        fail xlmig-migrate "no running guest"
        return 1
    fi
    before=$(maxtick)
    nb=$(banners)
    id0=$(domid_of $G)
    _s=$(now)
    timeout 900 xlmig -H $AGENT_DIR/a.sock migrate --live --policy xen --json $G 127.0.0.1:$PORT_B \
        >/tmp/xlmig-migrate.log 2>&1
    rc=$?
    t=$(since "$_s")
    cat /tmp/xlmig-migrate.log
    xl list
    if [ $rc != 0 ]; then
        fail xlmig-migrate "xlmig migrate $(ended $rc) after $t s: $(grep -m1 '^xlmig:' /tmp/xlmig-migrate.log)"
        echo "--- xlmigd a"; tail -n 15 /tmp/xlmigd-a.log
        echo "--- xlmigd b"; tail -n 15 /tmp/xlmigd-b.log
        return 1
    fi
    timing xlmig-migrate "$t"
    id1=$(domid_of $G)
    check_alive xlmig-migrate "$before" "$nb" || return 1
    if [ "$id0" = "$id1" ]; then
        fail xlmig-migrate "domid $id0 unchanged: not migrated"
    elif [ -n "$(leftovers)" ]; then
        fail xlmig-migrate "leftover domains: $(leftovers)"
    elif ! timeout 60 xlmig -H $AGENT_DIR/b.sock list --json 2>/dev/null | grep -q "\"$G\""; then
        fail xlmig-migrate "agent b does not list $G"
    else
        dt=$(sed -n 's/.*"downtime_ms":\([0-9]*\).*/\1/p' /tmp/xlmig-migrate.log)
        rounds=$(sed -n 's/.*"rounds":\([0-9]*\).*/\1/p' /tmp/xlmig-migrate.log)
        pass xlmig-migrate "libxl backend, live, localhost, in $t s (downtime ${dt:-?} ms, ${rounds:-?} rounds); domid $id0 -> $id1; ticks $before -> $(maxtick)"
    fi
}

do_xlmig_fault() {
    step xlmig-fault
    if ! have_tools; then
        fail xlmig-fault "$(no_tools)"
        return 1
    fi
    if [ $AGENTS_UP != 1 ]; then
        fail xlmig-fault "the agents are not running (xlmigd-start failed)"
        return 1
    fi
    if ! ensure_guest; then
        fail xlmig-fault "no running guest"
        return 1
    fi
    before=$(maxtick)
    nb=$(banners)
    id0=$(domid_of $G)
    timeout 900 xlmig -H $AGENT_DIR/a.sock migrate --live --policy xen $G 127.0.0.1:$PORT_B \
        >/tmp/xlmig-fault.log 2>&1 &
    cpid=$!
    # wait for the half-built domain on the receiving side
    _t=0
    while [ $_t -lt 300 ] && kill -0 $cpid 2>/dev/null; do
        xl list $G--incoming >/dev/null 2>&1 && break
        sleep 1
        _t=$((_t + 1))
    done
    if ! xl list $G--incoming >/dev/null 2>&1; then
        kill $cpid 2>/dev/null
        wait $cpid
        cat /tmp/xlmig-fault.log
        if [ -s /tmp/xlmig-fault.log ]; then
            fail xlmig-fault "xlmig migrate ended before $G--incoming appeared: $(grep -m1 '^xlmig:' /tmp/xlmig-fault.log)"
        else
            fail xlmig-fault "no $G--incoming appeared within 300 s"
        fi
        return 1
    fi
    sleep 3 # pages are flowing now
    kill -9 "$PID_b"
    wait "$PID_b" 2>/dev/null
    PID_b=
    echo "killed xlmigd b (SIGKILL) $_t s after the start; $G--incoming existed"
    xl list
    _s=$(now)
    _t=0
    while kill -0 $cpid 2>/dev/null && [ $_t -lt 300 ]; do
        sleep 1
        _t=$((_t + 1))
    done
    if kill -0 $cpid 2>/dev/null; then
        kill -9 $cpid 2>/dev/null
        wait $cpid
        fail xlmig-fault "xlmig migrate still running 300 s after the receiver died"
        return 1
    fi
    wait $cpid
    rc=$?
    det=$(since "$_s")
    timing xlmig-fault-detect "$det"
    cat /tmp/xlmig-fault.log
    echo "--- xlmigd a"; tail -n 10 /tmp/xlmigd-a.log
    if [ $rc = 0 ]; then
        fail xlmig-fault "xlmig migrate succeeded although its receiver was killed"
        return 1
    fi
    check_alive xlmig-fault "$before" "$nb" || return 1
    if [ "$(domid_of $G)" != "$id0" ]; then
        fail xlmig-fault "$G has domid $(domid_of $G), not the source's $id0"
        return 1
    fi
    # the half-built domain: gone by itself, or once b is restarted (what
    # a supervisor does with a crashed agent)
    _t=0
    while [ -n "$(leftovers)" ] && [ $_t -lt 60 ]; do
        sleep 1
        _t=$((_t + 1))
    done
    how="removed by the source side"
    if [ -n "$(leftovers)" ]; then
        echo "after 60 s still there: $(leftovers); restarting xlmigd b"
        start_agent b $PORT_B || echo "xlmigd b did not restart"
        _t=0
        while [ -n "$(leftovers)" ] && [ $_t -lt 60 ]; do
            sleep 1
            _t=$((_t + 1))
        done
        how="removed when xlmigd b restarted"
    fi
    xl list
    if [ -n "$(leftovers)" ]; then
        fail xlmig-fault "source kept $G running (xlmig exit $rc, xlmig ended $det s after the kill), but the half-built $(leftovers)remains, also after restarting xlmigd b"
        for d in $(leftovers); do xl destroy "$d"; done
        return 1
    fi
    pass xlmig-fault "receiver killed mid-stream: xlmig exit $rc $det s later, $G runs on (domid $id0), ticks $before -> $(maxtick); half-built domain $how"
}

# ---- the xenstore hooks -----------------------------------------------------
# Three sim hosts (xlmigd --backend sim) in dom0 make a pool; the HA
# watcher (xlmig-hawatch) runs against the real xenstored; an "HA
# daemon" (xlmig-ha-hooks.sh) writes a request with xenstore-write and
# waits for the status keys: every VM leaves host s1.
XS_PREFIX=/local/domain/0/xlmig
xs_key() { xenstore-read "$XS_PREFIX/evacuation/$1" 2>/dev/null; }
start_sim_agent() {
    rm -f $AGENT_DIR/$1.ready
    mkdir -p /var/lib/xlmig-$1
    xlmigd --backend sim --hostname $1 --sim-memory 256M --foreground \
        --state-dir /var/lib/xlmig-$1 --listen 127.0.0.1:$2 \
        --control $AGENT_DIR/$1.sock --ready-file $AGENT_DIR/$1.ready \
        >>/tmp/xlmigd-$1.log 2>&1 &
    eval "PID_$1=$!"
    _t=0
    while [ $_t -lt 30 ]; do
        [ -e $AGENT_DIR/$1.ready ] && return 0
        sleep 1
        _t=$((_t + 1))
    done
    echo "sim xlmigd $1 not ready within 30 s"; tail -n 20 /tmp/xlmigd-$1.log
    return 1
}
do_xs_hooks() {
    step xs-hooks
    if ! have_tools || ! command -v xlmig-hawatch >/dev/null 2>&1; then
        fail xs-hooks "not built: xlmig, xlmigd or xlmig-hawatch (run make)"
        return 1
    fi
    _s=$(now)
    if ! start_sim_agent s1 8711 || ! start_sim_agent s2 8712 ||
       ! start_sim_agent s3 8713; then
        fail xs-hooks "the sim agents did not start"
        return 1
    fi
    printf 's1 127.0.0.1:8711\ns2 127.0.0.1:8712\ns3 127.0.0.1:8713\n' >/tmp/pool.conf
    for v in vm1 vm2 vm3 vm4; do
        if ! timeout 60 xlmig -H $AGENT_DIR/s1.sock sim-create $v --memory 16M \
            --dirty-rate 200 >/dev/null; then
            fail xs-hooks "xlmig sim-create $v on s1 failed"
            return 1
        fi
    done
    xlmig-hawatch --host s1 --once --xlmig "$(command -v xlmig)" \
        --log /tmp/xlmig-hawatch.log -- --pool /tmp/pool.conf --batch-size 2 \
        >/tmp/xlmig-hawatch.out 2>&1 &
    _w=$!
    _t=0
    while [ "$(xs_key watcher)" != ready ] && [ $_t -lt 20 ]; do
        sleep 1
        _t=$((_t + 1))
    done
    # shellcheck disable=SC1091
    . /opt/xlmig/share/xlmig-ha-hooks.sh
    if ! id=$(xlmig_evacuate_request "xen-lab: HA hook test"); then
        fail xs-hooks "xlmig_evacuate_request failed (watcher key: '$(xs_key watcher)')"
        kill $_w 2>/dev/null
        return 1
    fi
    st=$(xlmig_evacuate_wait "$id" 180)
    timing xs-hooks-evacuate "$(since "$_s")"
    _t=0
    while kill -0 $_w 2>/dev/null && [ $_t -lt 30 ]; do sleep 1; _t=$((_t + 1)); done
    kill $_w 2>/dev/null
    wait $_w
    wrc=$?
    xenstore-ls -f $XS_PREFIX 2>/dev/null | head -n 60
    cat /tmp/xlmig-hawatch.log
    # list --json is one line: count the "name" keys, not lines
    nvms() { timeout 30 xlmig -H $AGENT_DIR/$1.sock list --json | grep -o '"name"' | wc -l; }
    left=$(nvms s1)
    n2=$(nvms s2)
    n3=$(nvms s3)
    vm1=$(xs_key vm/vm1/state)
    if [ "$st" != done ]; then
        fail xs-hooks "request $id ended '$st' (state '$(xs_key state)', error '$(xs_key error)')"
    elif [ "$(xs_key migrated)" != 4 ] || [ "$(xs_key request-id)" != "$id" ]; then
        fail xs-hooks "status keys: migrated '$(xs_key migrated)', request-id '$(xs_key request-id)'"
    elif [ "$vm1" != migrated ]; then
        fail xs-hooks "vm/vm1/state is '$vm1'"
    elif [ "$left" != 0 ] || [ $((n2 + n3)) != 4 ]; then
        fail xs-hooks "VMs: $left left on s1, $n2 on s2, $n3 on s3"
    elif [ "$wrc" != 0 ]; then
        fail xs-hooks "xlmig-hawatch --once exited $wrc"
    else
        pass xs-hooks "real xenstored: request $id -> 4 VMs s1 -> s2/s3 ($n2/$n3), state done, keys checked"
    fi
    stop_agent s1
    stop_agent s2
    stop_agent s3
}

# ---- the end -----------------------------------------------------------------
finish() {
    step collect
    stop_agent a
    stop_agent b
    xl list
    dmesg | grep -iE 'segfault|traps:|general protection' | tail -n 5
    console >/tmp/labvm-console.log
    xl dmesg >/tmp/xl-dmesg.log 2>&1
    for f in /tmp/labvm-console.log /tmp/xl-dmesg.log /tmp/xl-migrate.log /tmp/xl-migrate-capture.log \
        /tmp/xlmig-migrate.log /tmp/xlmig-fault.log /tmp/xlmigd-a.log /tmp/xlmigd-b.log; do
        [ -f "$f" ] && export_file "$f" "$(basename "$f")" >/dev/null
    done
    echo "XENLAB END failed=$FAILED"
}

case "${1:-all}" in
setup)
    setup
    ;;
all)
    # xenlab_steps=create+xl+xlmig on the dom0 command line (run.sh's
    # STEPS) runs a subset; the default is every group
    groups=" $(sed -n 's/.*xenlab_steps=\([a-z+]*\).*/\1/p' /proc/cmdline | tr + ' ') "
    [ "$groups" = "  " ] && groups=" create save xl xlmig xs "
    want() { case "$groups" in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
    setup || { finish; exit 1; }
    do_create
    want save && do_save_restore
    want xl && do_xl_migrate
    if want xlmig; then
        do_agents
        do_xlmig_migrate
        do_xlmig_fault
    fi
    want xs && do_xs_hooks
    if want xlmig && [ "$AGENTS_UP" = 1 ]; then
        # stock xl, with xlmig as its transport instead of ssh: agent b
        # runs xl migrate-receive
        xl_migrate xl-transport 127.0.0.1 "xlmig xl-transport --agent 127.0.0.1:$PORT_B"
    fi
    finish
    ;;
*)
    echo "usage: dom0-test.sh setup|all" >&2
    exit 2
    ;;
esac
[ $FAILED = 0 ]
