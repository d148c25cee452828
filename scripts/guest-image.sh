#!/usr/bin/env bash
# Builds the tiny Linux guest the end-to-end tests boot under QEMU
# (tests/common/guest.rs): a Debian kernel and a busybox initramfs with
# iperf3, attached to the switch as a vhost-user virtio-net device.
#
#   scripts/guest-image.sh [OUTDIR]     (default /var/lib/ferroswitch/guest)
#
# Outputs OUTDIR/vmlinuz and OUTDIR/initrd.img, and OUTDIR/vmlinux (the same
# kernel uncompressed, booted through PVH: faster under TCG) when the kernel
# has PVH. Idempotent and cached: when
# both exist and are newer than this script, nothing is rebuilt (the packages
# QEMU needs are still checked, which costs a few dpkg-query calls).
#
# Why each piece:
#   * the kernel comes from Debian's linux-image-amd64 (its real image
#     package, resolved through the metapackage), downloaded and unpacked
#     with dpkg-deb: the host's own kernel and /boot are never touched;
#   * the guest has no disk: everything is in the initramfs (gzip'd newc
#     cpio), so a guest boots in seconds under TCG and leaves nothing behind;
#   * virtio-net over PCI needs a few modules that Debian builds as modules
#     (not built in): they are found from the kernel's modules.builtin and
#     modinfo, decompressed here, and insmod'ed by /init in dependency order
#     (the initramfs has no modprobe/depmod data);
#   * /init prints "FSW-READY <uptime>" once eth0 is up, then gives the
#     console (ttyS0) to an interactive shell the test drives;
#   * udhcpc's script applies a lease and prints it as one "FSW-LEASE ..."
#     line, so a test can check every option a DHCP server handed out
#     (udhcpc asks for mtu and staticroutes only with -O mtu -O staticroutes);
#     other events print "FSW-DHCP <event>".
#
# Runs as root (apt). Exit status 0 on success; 1 with a message otherwise.
set -euo pipefail

OUT="${1:-/var/lib/ferroswitch/guest}"
SELF="$(readlink -f "${BASH_SOURCE[0]}")"

die() { echo "guest-image: ERROR: $*" >&2; exit 1; }
say() { echo "guest-image: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get install)"

# ---------------------------------------------------------------- packages --
PACKAGES=(qemu-system-x86 busybox-static iperf3 cpio)

# shellcheck source=lib/packages.sh
source "$(dirname "$SELF")/lib/packages.sh"
ensure_packages guest-image "${PACKAGES[@]}"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing after install"

# ------------------------------------------------------------------- cache --
mkdir -p "$OUT"
# Two test processes may build at once: one builds, the other waits for it.
exec 9>"$OUT/.lock"
flock 9
if [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.img" ] \
        && [ "$OUT/vmlinuz" -nt "$SELF" ] && [ "$OUT/initrd.img" -nt "$SELF" ]; then
    exit 0
fi

WORK="$(mktemp -d /tmp/fsw-guest-image.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------ kernel --
# linux-image-amd64 is a metapackage: its one linux-image-* dependency is the
# package holding the kernel and its modules.
KPKG="$(apt-cache depends linux-image-amd64 2>/dev/null \
    | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)"
if [ -z "$KPKG" ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    KPKG="$(apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)"
fi
[ -n "$KPKG" ] || die "cannot resolve the kernel package linux-image-amd64 depends on"

# The .deb is kept, so editing this script does not download it again.
CACHE="$OUT/cache"
mkdir -p "$CACHE"
deb="$(ls "$CACHE/${KPKG}"_*.deb 2>/dev/null | head -n1 || true)"
if [ -z "$deb" ]; then
    say "downloading $KPKG"
    rm -f "$CACHE"/linux-image-*.deb
    # apt-get download writes to the current directory; as root it warns
    # that _apt cannot write there (harmless: it downloads unsandboxed).
    (cd "$CACHE" && apt-get download -qq "$KPKG" >"$WORK/download.log" 2>&1) \
        || (apt-get update -qq >/dev/null 2>&1 && cd "$CACHE" && apt-get download -qq "$KPKG" >"$WORK/download.log" 2>&1) \
        || { cat "$WORK/download.log" >&2; die "apt-get download $KPKG failed"; }
    deb="$(ls "$CACHE/${KPKG}"_*.deb | head -n1)"
fi
dpkg-deb -x "$deb" "$WORK/kernel"
KVER="${KPKG#linux-image-}"
[ -f "$WORK/kernel/boot/vmlinuz-$KVER" ] || die "no boot/vmlinuz-$KVER in $deb"
MODDIR="$WORK/kernel/lib/modules/$KVER"
[ -d "$MODDIR" ] || MODDIR="$WORK/kernel/usr/lib/modules/$KVER"
[ -d "$MODDIR" ] || die "no lib/modules/$KVER in $deb"
KCONFIG="$WORK/kernel/boot/config-$KVER"

# ----------------------------------------------------------------- modules --
# The file of module NAME ('-' and '_' are the same in module names), or
# nothing when it is built in.
module_file() {
    local n="${1//-/_}" f
    f="$(find "$MODDIR/kernel" -type f \( -name "$n.ko" -o -name "$n.ko.xz" -o -name "$n.ko.zst" \
        -o -name "${n//_/-}.ko" -o -name "${n//_/-}.ko.xz" -o -name "${n//_/-}.ko.zst" \) | head -n1)"
    if [ -n "$f" ]; then echo "$f"; return 0; fi
    if grep -Eq "/(${n}|${n//_/-})\.ko$" "$MODDIR/modules.builtin" 2>/dev/null; then return 0; fi
    die "module $1 is neither a file nor in modules.builtin of $KVER"
}

ORDER=()   # dependencies first
declare -A SEEN=()
add_module() {
    local n="${1//-/_}" f dep
    [ -n "${SEEN[$n]:-}" ] && return 0
    SEEN[$n]=1
    f="$(module_file "$n")"
    [ -n "$f" ] || return 0   # built in
    for dep in $(modinfo -F depends "$f" | tr ',' ' '); do
        add_module "$dep"
    done
    ORDER+=("$n:$f")
}
# virtio-net over PCI; af_packet for udhcpc's raw socket (when not built in).
for m in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
         failover net_failover virtio_net af_packet; do
    add_module "$m"
done

# --------------------------------------------------------------- initramfs --
ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,lib/modules,usr/share/udhcpc}
chmod 1777 "$ROOT/tmp"

# busybox-static's binary: needs no library in the guest.
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "$BUSYBOX (busybox-static) not found"
cp "$BUSYBOX" "$ROOT/bin/busybox"
# Every applet as a symlink where busybox would install it.
if "$ROOT/bin/busybox" --list-full >/dev/null 2>&1; then
    "$ROOT/bin/busybox" --list-full | while read -r app; do
        [ "$app" = bin/busybox ] && continue
        mkdir -p "$ROOT/$(dirname "$app")"
        ln -sf /bin/busybox "$ROOT/$app"
    done
else
    for app in $("$ROOT/bin/busybox" --list); do
        [ "$app" = busybox ] || ln -sf busybox "$ROOT/bin/$app"
    done
fi

# iperf3 and every library ldd names, at the paths ldd names (the loader
# included: the binary's PT_INTERP is an absolute path).
IPERF3="$(command -v iperf3)" || die "iperf3 missing"
cp -L "$IPERF3" "$ROOT/usr/bin/iperf3"
ldd "$IPERF3" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
    mkdir -p "$ROOT$(dirname "$lib")"
    cp -L "$lib" "$ROOT$lib"
done

# Modules, decompressed (busybox insmod may not read .xz/.zst).
: >"$ROOT/etc/modules"
for entry in "${ORDER[@]}"; do
    n="${entry%%:*}"; f="${entry#*:}"
    case "$f" in
        *.ko.xz)  xz -dc "$f" >"$ROOT/lib/modules/$n.ko" ;;
        *.ko.zst) zstd -qdc "$f" >"$ROOT/lib/modules/$n.ko" ;;
        *)        cp "$f" "$ROOT/lib/modules/$n.ko" ;;
    esac
    echo "$n" >>"$ROOT/etc/modules"
done

echo "root:x:0:0:root:/root:/bin/sh" >"$ROOT/etc/passwd"
echo "root:x:0:" >"$ROOT/etc/group"
echo "guest" >"$ROOT/etc/hostname"
: >"$ROOT/etc/resolv.conf"

cat >"$ROOT/init" <<'EOF'
#!/bin/sh
# Ferroswitch test guest (scripts/guest-image.sh): modules, lo and eth0 up,
# "FSW-READY <uptime>", then an interactive shell on the console.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
# Kernel messages would interleave with the shell's output on the console.
dmesg -n 1
hostname -F /etc/hostname
for m in $(cat /etc/modules); do
    insmod "/lib/modules/$m.ko" || echo "FSW-INSMOD-FAILED $m"
done
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ "$i" -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
ip link set eth0 up || echo "FSW-NO-ETH0"
echo "FSW-READY $(cut -d' ' -f1 /proc/uptime)"
# PID 1 must not exit (the kernel would panic): the shell runs as its child,
# in its own session with ttyS0 as controlling terminal (job control, ^C).
while true; do
    setsid cttyhack sh -l
done
EOF
chmod 0755 "$ROOT/init"

cat >"$ROOT/etc/profile" <<'EOF'
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
export PS1='guest# '
EOF

cat >"$ROOT/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
# udhcpc event script: applies the lease and prints it on one line.
uptime=$(cut -d' ' -f1 /proc/uptime)
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        echo "FSW-DHCP deconfig"
        ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
        [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
        if [ -n "$router" ]; then
            while ip route del default dev "$interface" 2>/dev/null; do :; done
            for r in $router; do
                ip route add default via "$r" dev "$interface" && break
            done
        fi
        : >/etc/resolv.conf
        [ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
        for d in $dns; do
            echo "nameserver $d" >>/etc/resolv.conf
        done
        echo "FSW-LEASE ip=$ip mask=$mask router=$router dns=$dns domain=$domain mtu=$mtu hostname=$hostname lease=$lease serverid=$serverid staticroutes=$staticroutes uptime=$uptime"
        ;;
    *)
        echo "FSW-DHCP $1"
        ;;
esac
exit 0
EOF
chmod 0755 "$ROOT/usr/share/udhcpc/default.script"
# Debian's busybox runs /etc/udhcpc/default.script unless told (-s).
mkdir -p "$ROOT/etc/udhcpc"
ln -s /usr/share/udhcpc/default.script "$ROOT/etc/udhcpc/default.script"

# ------------------------------------------------------------------ output --
(cd "$ROOT" && find . -print0 | LC_ALL=C sort -z \
    | cpio --null -o -H newc --owner=0:0 --quiet) | gzip -6 >"$WORK/initrd.img"
cp "$WORK/kernel/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
# The uncompressed kernel (ELF), when it can be had: QEMU boots it through
# its PVH entry point, which saves the ~4 s a TCG guest spends
# decompressing the xz'd bzImage. Optional: the harness falls back to vmlinuz.
rm -f "$OUT/vmlinux"
if grep -q '^CONFIG_PVH=y' "$KCONFIG" 2>/dev/null; then
    off="$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$WORK/vmlinuz" | head -n1 | cut -d: -f1 || true)"
    # Not a pipe: xz stops reading after the stream (pipefail, SIGPIPE).
    if [ -n "$off" ] && tail -c +"$((off + 1))" "$WORK/vmlinuz" >"$WORK/payload.xz" \
            && xz -dc --single-stream <"$WORK/payload.xz" >"$WORK/vmlinux" 2>/dev/null \
            && [ "$(head -c 4 "$WORK/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ]; then
        mv -f "$WORK/vmlinux" "$OUT/vmlinux"
    else
        say "no uncompressed kernel extracted from vmlinuz-$KVER: guests boot the bzImage"
    fi
fi
# Renamed into place: a reader never sees a half-written file.
mv -f "$WORK/vmlinuz" "$OUT/vmlinuz"
mv -f "$WORK/initrd.img" "$OUT/initrd.img"
echo "$KVER" >"$OUT/kernel-version"
printf '%s\n' "${ORDER[@]%%:*}" >"$OUT/modules"
say "built $OUT/vmlinuz ($KVER) and $OUT/initrd.img ($(du -h "$OUT/initrd.img" | cut -f1)); modules: $(tr '\n' ' ' <"$OUT/modules")"
