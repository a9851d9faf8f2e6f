# xenstore-hooks/xlmig-ha-hooks.sh - shell helpers for HA hook scripts:
# ask xlmig-hawatch for a host evacuation through xenstore and follow it.
# Source this file (installed as /usr/share/xlmig/xlmig-ha-hooks.sh):
#
#   . /usr/share/xlmig/xlmig-ha-hooks.sh
#   id=$(xlmig_evacuate_request "host fencing soon" [TARGET-HOST...]) || exit 1
#   xlmig_evacuate_wait "$id" 600      # exit 0: every VM left this host
#   xlmig_evacuate_status              # every key, "key = value"
#   xlmig_evacuate_cancel "$id"
#
# Keys: xenstore-hooks/README.md.  XLMIG_XS_PREFIX overrides the prefix
# (default /local/domain/0/xlmig).  Needs xenstore-read/-write/-ls
# (Debian's xenstore-utils).

XLMIG_XS_PREFIX=${XLMIG_XS_PREFIX:-/local/domain/0/xlmig}

_xlmig_xs_key() { printf '%s/evacuation/%s' "$XLMIG_XS_PREFIX" "$1"; }

# xlmig_xs_read KEY: the value, or nothing when the key is absent.
xlmig_xs_read() { xenstore-read "$(_xlmig_xs_key "$1")" 2>/dev/null || true; }

# xlmig_evacuate_request REASON [TARGET...]: writes a request and prints
# its id.  Fails when no watcher runs (evacuation/watcher is not ready).
xlmig_evacuate_request() {
    local reason=$1 id
    shift
    if [ "$(xlmig_xs_read watcher)" != ready ]; then
        echo "xlmig_evacuate_request: xlmig-hawatch is not running" \
             "($(_xlmig_xs_key watcher) is not 'ready')" >&2
        return 1
    fi
    id="ha-$(date +%s)-$$"
    xenstore-write "$(_xlmig_xs_key request-reason)" "$reason" \
                   "$(_xlmig_xs_key request-targets)" "$*" || return 1
    xenstore-write "$(_xlmig_xs_key request)" "$id" || return 1
    printf '%s\n' "$id"
}

# xlmig_evacuate_wait ID [TIMEOUT-SECONDS]: waits until request ID ends
# (default timeout 3600).  Prints the final state; returns 0 for done,
# 1 for failed or cancelled, 2 on timeout.
xlmig_evacuate_wait() {
    local id=$1 timeout=${2:-3600} t0 state
    t0=$(date +%s)
    while :; do
        if [ "$(xlmig_xs_read request-id)" = "$id" ]; then
            state=$(xlmig_xs_read state)
            case $state in
            done) echo done; return 0 ;;
            failed|cancelled) echo "$state"; return 1 ;;
            esac
        fi
        if [ $(( $(date +%s) - t0 )) -ge "$timeout" ]; then
            echo "timeout"
            return 2
        fi
        sleep 1
    done
}

# xlmig_evacuate_cancel ID: asks the watcher to cancel request ID.
xlmig_evacuate_cancel() { xenstore-write "$(_xlmig_xs_key cancel)" "$1"; }

# xlmig_evacuate_status: every key under the prefix.
xlmig_evacuate_status() { xenstore-ls -f "$XLMIG_XS_PREFIX/evacuation" 2>/dev/null; }
