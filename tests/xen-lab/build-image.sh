#!/usr/bin/env bash
# tests/xen-lab/build-image.sh - build the Xen lab's boot files from
# Debian 12 packages, plus an overlay with this checkout's tools.
#
#   tests/xen-lab/build-image.sh          (run.sh calls it; root or sudo)
#
# Nothing of Xen is installed on the host.  The hypervisor, the toolstack
# and the kernel are fetched with `apt-get download` and unpacked with
# `dpkg-deb -x`.  Only host tools are installed with apt-get when missing
# (qemu-system-x86, busybox-static, cpio, kmod, binutils, python3).
#
# Everything lives under $XENLAB_DIR (default .cache/xen-lab/, git-ignored):
#   debs/     the downloaded .debs (the slow part; kept between runs)
#   stage/    the .debs unpacked
#   build/    the trees the initramfs images are made from
#   img/      what QEMU boots:
#     xen              the hypervisor (multiboot ELF)
#     vmlinuz          Debian's 6.1 kernel, for dom0 and for the guest
#     base-initrd.gz   dom0: busybox, the Xen toolstack, modules, guest
#                      payload, /init (dom0-init); cached, rebuilt only
#                      when the .debs or the lab's files change
#     project.cpio.gz  this checkout: xlmig, xlmigd, xlmig-hawatch and
#                      xlmig-ha-hooks.sh, the libraries they
#                      need that dom0 lacks, dom0-test.sh, lab-tee;
#                      rebuilt always
#     dom0-initrd.gz   base-initrd.gz + project.cpio.gz (the kernel takes
#                      concatenated archives)
#
# The project's binaries are taken from LXM_XLMIG / LXM_XLMIGD (default
# tools/xlmig/xlmig, tools/xlmigd/xlmigd); a missing one is left out and
# dom0-test.sh reports the steps that need it as failed.
# XENLAB_AGENT_ENV="VAR=value ..." is put in the agents' environment.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
lab=${XENLAB_DIR:-$top/.cache/xen-lab}
debs=$lab/debs
stage=$lab/stage
build=$lab/build
img=$lab/img
xenver=4.17
xlmig_bin=${LXM_XLMIG:-$top/tools/xlmig/xlmig}
xlmigd_bin=${LXM_XLMIGD:-$top/tools/xlmigd/xlmigd}

t0=$(date +%s)
say() { printf '[xen-lab build %3ds] %s\n' $(($(date +%s) - t0)) "$*"; }
die() { printf 'xen-lab build: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root for '$*'"; fi
}

# ---- host tools ----------------------------------------------------------
host_pkgs=(qemu-system-x86 busybox-static cpio kmod binutils gzip python3)
missing=()
for p in "${host_pkgs[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' ||
        missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -y -q install \
        --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
fi
[ -x /bin/busybox ] || die "/bin/busybox missing (busybox-static)"

# ---- the .debs -----------------------------------------------------------
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
       awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$kpkg" ] || die "cannot find the kernel package behind linux-image-amd64"
kver=${kpkg#linux-image-}
xen_pkgs="xen-hypervisor-$xenver-amd64 xen-utils-$xenver xen-utils-common
 xenstore-utils libxenmisc$xenver libxenstore4 libxencall1 libxenevtchn1
 libxenforeignmemory1 libxengnttab1 libxentoollog1 libxentoolcore1
 libxendevicemodel1 libxenhypfs1 libyajl2"
# the toolstack's runtime libraries come from the archive too
lib_pkgs="libc6 libgcc-s1 zlib1g liblzma5 libzstd1 libuuid1"
mkdir -p "$debs"
need=()
for p in $xen_pkgs $lib_pkgs $kpkg; do
    compgen -G "$debs/${p}_*.deb" >/dev/null || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    say "apt-get download ${need[*]}"
    dl_opts=(-qq)
    [ "$(id -u)" -ne 0 ] || dl_opts+=(-o APT::Sandbox::User=root)
    (cd "$debs" && apt-get "${dl_opts[@]}" download "${need[@]}") ||
        die "apt-get download failed (run apt-get update?)"
fi

# The tools are built against the host's libxenlight; dom0 gets the
# archive's.  Say so when the two differ.
deb_ver=$(dpkg-deb -f "$(ls "$debs"/libxenmisc${xenver}_*.deb | tail -n 1)" Version)
host_ver=$(dpkg-query -W -f='${Version}' "libxenmisc$xenver" 2>/dev/null || true)
if [ -n "$host_ver" ] && [ "$host_ver" != "$deb_ver" ]; then
    say "WARNING: host libxenmisc$xenver $host_ver, dom0 gets $deb_ver"
fi

# ---- unpack --------------------------------------------------------------
deb_key=$(ls "$debs" | md5sum | cut -c1-12)
if [ ! -e "$stage/.unpacked-$deb_key" ]; then
    say "unpacking $(ls "$debs" | wc -l) .debs"
    rm -rf "$stage"
    mkdir -p "$stage"
    for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$stage"; done
    depmod -b "$stage" "$kver"
    touch "$stage/.unpacked-$deb_key"
fi
mkdir -p "$img" "$build"

# ---- ELF closure: copy files and the libraries they need -----------------
# copy_closure ROOT FILE...: FILEs are paths inside $stage; each is copied
# to the same path under ROOT with the DT_NEEDED libraries it pulls in,
# found in the stage's library directories.
stage_libdirs="$stage/lib/x86_64-linux-gnu $stage/usr/lib/x86_64-linux-gnu"
copy_closure() {
    local root=$1 f lib d found target
    shift
    local queue=("$@") seen=" "
    while [ ${#queue[@]} -gt 0 ]; do
        f=${queue[0]}
        queue=("${queue[@]:1}")
        case "$seen" in *" $f "*) continue ;; esac
        seen="$seen$f "
        [ -e "$stage/$f" ] || [ -L "$stage/$f" ] || die "not in the stage: $f"
        mkdir -p "$root/$(dirname "$f")"
        cp -a "$stage/$f" "$root/$f"
        if [ -L "$stage/$f" ]; then
            target=$(readlink "$stage/$f")
            case "$target" in
            /*) queue+=("${target#/}") ;;
            *) queue+=("$(dirname "$f")/$target") ;;
            esac
            continue
        fi
        for lib in $(readelf -d "$stage/$f" 2>/dev/null |
                     sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            found=
            for d in $stage_libdirs; do
                if [ -e "$d/$lib" ]; then
                    queue+=("${d#"$stage"/}/$lib")
                    found=y
                    break
                fi
            done
            [ -n "$found" ] || die "$f needs $lib, which no unpacked .deb has"
        done
    done
}

# ---- base image (cached) -------------------------------------------------
base_key=$( { echo "$deb_key $kver"; cat "$here/build-image.sh" \
              "$here/dom0-init" "$here/guest-init"; } | md5sum | cut -c1-12)
if [ ! -e "$img/base-initrd.gz" ] || [ "$(cat "$img/base.key" 2>/dev/null)" != "$base_key" ]; then
    say "building the guest initramfs"
    zcat "$stage/boot/xen-$xenver-amd64.gz" >"$img/xen"
    cp "$stage/boot/vmlinuz-$kver" "$img/vmlinuz"
    g=$build/guest-root
    rm -rf "$g"
    mkdir -p "$g"/{bin,proc,sys,dev}
    cp /bin/busybox "$g/bin/busybox"
    cp "$here/guest-init" "$g/init"
    chmod 755 "$g/init"
    (cd "$g" && find . | cpio -o -H newc --quiet | gzip -9) >"$build/guest-initrd.gz"

    say "building the dom0 initramfs"
    r=$build/dom0-root
    rm -rf "$r"
    mkdir -p "$r"/{bin,sbin,etc,proc,sys,dev,run,tmp,var/log,var/lib/xen,guest,usr/sbin,usr/bin}
    cp /bin/busybox "$r/bin/busybox"
    ln -s ../run "$r/var/run"
    b=usr/lib/xen-$xenver/bin
    copy_closure "$r" $b/xl $b/xenstored $b/xenconsoled $b/xenconsole \
        $b/libxl-save-helper $b/xen-init-dom0 usr/bin/xenstore \
        usr/bin/xen-detect
    # glibc dlopen()s libgcc_s for pthread_cancel; xl (and any libxl
    # user) aborts at exit without it
    copy_closure "$r" lib64/ld-linux-x86-64.so.2 lib/x86_64-linux-gnu/libgcc_s.so.1
    for c in read write ls list rm exists watch chmod; do
        ln -sf xenstore "$r/usr/bin/xenstore-$c"
    done
    for c in xl xenstored xenconsoled xen-init-dom0; do
        ln -sf ../lib/xen-$xenver/bin/$c "$r/usr/sbin/$c"
    done
    mkdir -p "$r/etc/xen"
    cp -a "$stage/etc/xen/xl.conf" "$r/etc/xen/"
    ldconfig -r "$r" 2>/dev/null || true
    # Xen device drivers, and virtio-blk for the export disk
    : >"$r/modules.load"
    for m in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd virtio_pci virtio_blk; do
        modprobe -d "$stage" -S "$kver" --show-depends "$m" |
            awk '$1 == "insmod" { print $2 }'
    done | awk '!seen[$0]++' | while read -r ko; do
        rel=${ko#"$stage"/}
        mkdir -p "$r/$(dirname "$rel")"
        cp "$ko" "$r/$rel"
        echo "/$rel" >>"$r/modules.load"
    done
    cp "$img/vmlinuz" "$r/guest/vmlinuz"
    cp "$build/guest-initrd.gz" "$r/guest/initrd.gz"
    cp "$here/dom0-init" "$r/init"
    chmod 755 "$r/init"
    (cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$img/base-initrd.gz.tmp"
    mv "$img/base-initrd.gz.tmp" "$img/base-initrd.gz"
    echo "$base_key" >"$img/base.key"
    echo "$kver" >"$img/kver"
fi

# ---- project overlay (always rebuilt: it is small) -----------------------
say "building the project overlay"
p=$build/project-root
rm -rf "$p"
mkdir -p "$p/opt/xlmig/bin" "$p/opt/xlmig/lib"
cp "$here/dom0-test.sh" "$p/dom0-test.sh"
chmod 755 "$p/dom0-test.sh"
# lab-tee: the stream capture (busybox tee's 4 KiB calls are too slow)
${CC:-gcc} -std=gnu11 -O2 -Wall -Wextra -Werror -o "$p/opt/xlmig/bin/lab-tee" \
    "$here/lab-tee.c" || die "cannot build lab-tee"
base_root=$build/dom0-root
info=$p/opt/xlmig/BUILD-INFO
{
    echo "checkout: $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)"
    echo "built: $(date -u +%FT%TZ)"
} >"$info"
hawatch_bin=${LXM_HAWATCH:-$top/xenstore-hooks/xlmig-hawatch}
mkdir -p "$p/opt/xlmig/share"
cp "$top/xenstore-hooks/xlmig-ha-hooks.sh" "$p/opt/xlmig/share/"
for bin in "$xlmig_bin" "$xlmigd_bin" "$hawatch_bin"; do
    name=$(basename "$bin")
    if [ ! -x "$bin" ]; then
        say "$name: not built ($bin); dom0 steps that need it will fail"
        echo "$name: missing" >>"$info"
        continue
    fi
    cp "$bin" "$p/opt/xlmig/bin/$name"
    # its libraries: those dom0 has from the archive are not copied again
    ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r lib; do
        base=$(basename "$lib")
        case "$base" in
        libasan* | libtsan* | libubsan*)
            say "WARNING: $name is a sanitizer build ($base); rebuild with 'make all'" ;;
        esac
        if [ -e "$base_root/lib/x86_64-linux-gnu/$base" ] ||
           [ -e "$base_root/usr/lib/x86_64-linux-gnu/$base" ]; then
            continue
        fi
        cp -L "$lib" "$p/opt/xlmig/lib/$base"
    done
    if ldd "$bin" | grep -q libxenlight; then
        echo "$name: $(stat -c %s "$bin") bytes, links libxenlight" >>"$info"
    else
        echo "$name: $(stat -c %s "$bin") bytes, no libxenlight" >>"$info"
    fi
done
# extra environment for the agents in dom0 (e.g. LXM_FAULT=...)
if [ -n "${XENLAB_AGENT_ENV:-}" ]; then
    echo "$XENLAB_AGENT_ENV" >"$p/opt/xlmig/agent.env"
    echo "agent environment: $XENLAB_AGENT_ENV" >>"$info"
fi
(cd "$p" && find . | cpio -o -H newc --quiet | gzip -1) >"$img/project.cpio.gz"
cat "$img/base-initrd.gz" "$img/project.cpio.gz" >"$img/dom0-initrd.gz"
sed 's/^/    /' "$info"
say "done: $(du -sh "$img" | cut -f1) in $img"
