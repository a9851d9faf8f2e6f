# scripts/agents.sh - sourced by scripts/demo.sh, bench/migrate.sh and
# bench/compress.sh, which start sim xlmigd agents of their own: wait
# for one to be ready, and stop them all.  Expects the array "pids".

# lxm_wait_ready PID DIR: wait up to 10 s for the agent PID to write
# DIR/ready; then LXM_CTL and LXM_ADDR hold its control socket and
# listen address.  Returns 1 when the agent exited first, 2 when it was
# not ready in time.
lxm_wait_ready() {
    local pid=$1 ready=$2/ready
    for _ in $(seq 100); do
        [ -f "$ready" ] && break
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    [ -f "$ready" ] || return 2
    LXM_CTL=$(sed -n 's/^control=//p' "$ready")
    LXM_ADDR=$(sed -n 's/^listen=//p' "$ready")
}

# Stop every agent in "pids": SIGTERM, up to 10 s each (xlmigd stops in
# well under that here), then SIGKILL; reap them and empty the array.
lxm_stop_pids() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}
