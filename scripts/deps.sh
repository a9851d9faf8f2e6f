#!/usr/bin/env bash
# scripts/deps.sh - install what libxlmig needs to build and test.
#
#   scripts/deps.sh           install whatever is missing (idempotent)
#   scripts/deps.sh --check   exit 0 only if everything is present;
#                             otherwise list what is missing and exit 1
#
# 1. Debian packages, through apt-get, only when dpkg says one is not
#    installed (so a second run does nothing and needs no network).
# 2. Xen's own stream checker, verify-stream-v2, without installing the
#    hypervisor: the xen-utils-4.17 .deb is downloaded into .cache/debs/,
#    unpacked into .cache/xen-utils/, and run through the wrapper
#    .cache/bin/verify-stream-v2 (what LXM_VERIFY_STREAM points at).
#
# Runs as root (as CI does) or through sudo.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=$top/.cache
xen_pkg=xen-utils-4.17
xen_lib=usr/lib/xen-4.17
wrapper=$cache/bin/verify-stream-v2

packages=(
    build-essential pkg-config
    libxen-dev libyajl-dev zlib1g-dev libzstd-dev liblz4-dev libxxhash-dev
    libisal-dev libdeflate-dev
    check libsubunit-dev
    python3 zstd
    clang llvm libclang-rt-14-dev clang-format cppcheck
)

say() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

# Set missing=(packages of the list that dpkg does not report installed).
missing=()
find_missing_packages() {
    local installed p
    installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" \
                2>/dev/null | awk '$NF == "installed" { print $1 }') || true
    missing=()
    for p in "${packages[@]}"; do
        grep -qxF "$p" <<<"$installed" || missing+=("$p")
    done
}

# The newest downloaded xen-utils .deb, or nothing.
cached_deb() {
    find "$cache/debs" -maxdepth 1 -name "${xen_pkg}_*.deb" -printf '%T@ %p\n' \
        2>/dev/null | sort -rn | head -n 1 | cut -d' ' -f2-
}

wrapper_works() {
    [ -x "$wrapper" ] && "$wrapper" --help >/dev/null 2>&1
}

# Run a command as root: directly, or through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run '$*' (not root and no sudo); run this script as root"
    fi
}

apt_get() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -y -q "$@"
}

check_only() {
    local rc=0
    find_missing_packages
    if [ ${#missing[@]} -gt 0 ]; then
        say "missing packages: ${missing[*]}"
        rc=1
    fi
    if ! wrapper_works; then
        say "missing: $wrapper (Xen's verify-stream-v2; run 'make deps')"
        rc=1
    fi
    return $rc
}

install_packages() {
    find_missing_packages
    if [ ${#missing[@]} -eq 0 ]; then
        say "all ${#packages[@]} packages installed"
        return 0
    fi
    say "installing: ${missing[*]}"
    apt_get update
    apt_get install --no-install-recommends "${missing[@]}"
    find_missing_packages
    [ ${#missing[@]} -eq 0 ] ||
        die "still missing after apt-get install: ${missing[*]}"
}

# apt-get download writes into the current directory.  As root, apt
# drops to the _apt user to download, which cannot write into a root
# owned cache; tell it to stay root there.
apt_download() {
    local opts=(-q)
    [ "$(id -u)" -ne 0 ] || opts+=(-o APT::Sandbox::User=root)
    (cd "$cache/debs" && apt-get "${opts[@]}" download "$xen_pkg")
}

install_verify_stream() {
    if wrapper_works; then
        say "verify-stream-v2 ready: $wrapper"
        return 0
    fi
    command -v dpkg-deb >/dev/null || die "dpkg-deb not found"
    mkdir -p "$cache/debs" "$cache/bin"

    local deb
    deb=$(cached_deb)
    if [ -z "$deb" ]; then
        say "downloading $xen_pkg (for verify-stream-v2 only; nothing is installed)"
        if ! apt_download; then
            # Package lists may be missing or stale: refresh, then retry.
            apt_get update
            apt_download || die "cannot download $xen_pkg with apt-get"
        fi
        deb=$(cached_deb)
        [ -n "$deb" ] || die "apt-get download left no ${xen_pkg}_*.deb in $cache/debs"
    fi

    say "unpacking $(basename "$deb") into .cache/xen-utils/"
    rm -rf "$cache/xen-utils"
    dpkg-deb -x "$deb" "$cache/xen-utils"
    [ -f "$cache/xen-utils/$xen_lib/bin/verify-stream-v2" ] ||
        die "$(basename "$deb") has no $xen_lib/bin/verify-stream-v2"

    # Paths are found from the wrapper's own place, so the tree can move.
    cat >"$wrapper.tmp" <<EOF
#!/bin/sh
# Xen 4.17's verify-stream-v2, unpacked by scripts/deps.sh from
# $(basename "$deb"); nothing is installed system-wide.
here=\$(cd "\$(dirname "\$0")/.." && pwd)
PYTHONPATH="\$here/xen-utils/$xen_lib/lib/python\${PYTHONPATH:+:\$PYTHONPATH}" \\
    exec /usr/bin/python3 "\$here/xen-utils/$xen_lib/bin/verify-stream-v2" "\$@"
EOF
    chmod 0755 "$wrapper.tmp"
    mv -f "$wrapper.tmp" "$wrapper"
    wrapper_works || die "$wrapper does not run (is python3 installed?)"
    say "verify-stream-v2 ready: $wrapper"
}

case "${1:-}" in
--check)
    check_only
    ;;
"")
    install_packages
    install_verify_stream
    ;;
-h|--help)
    sed -n '2,14s/^# \{0,1\}//p' "$0"
    ;;
*)
    die "unknown option '$1' (try --help)"
    ;;
esac
