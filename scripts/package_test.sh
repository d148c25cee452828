#!/usr/bin/env bash
# The Debian package, end to end, on this machine (as root):
#   1. builds it (cargo build + cargo deb, profile FSW_PKG_PROFILE, default ci)
#      and installs it with apt-get (the system user, the unit, the config);
#   2. runs ferroswitch.service under a real systemd: the host's when systemd
#      is PID 1, otherwise systemd as PID 1 of a private PID/mount/cgroup
#      namespace (sharing the host's network) over a copy-on-write view of
#      the root file system, so that its boot writes nothing to the host;
#   3. checks the running daemon: its user, its capabilities (exactly the
#      unit's, and the unit's exactly CAP_NET_ADMIN + CAP_NET_RAW), no new
#      privileges, its seccomp filter and sandbox, hugepages, the journal,
#      the control socket's permissions; that the demo topology forwards (two
#      network namespaces on af_packet ports added with the installed
#      vswitchctl: ping crosses the switch), that an internal (TAP) port
#      works, that Restart=on-failure restarts it, that it stops cleanly;
#   4. purges the package and checks that it is gone (files, unit, user).
# Exits non-zero on the first failed check; cleans up on any exit.
#
# Environment: FSW_PKG_PROFILE (ci | release), FSW_PKG_SKIP_BUILD=1 to
# package the binaries already in target/<profile>.
set -euo pipefail

# ------------------------------------------------ systemd as PID 1 (inner) --
# Runs as PID 1 of the namespaces that `unshare` made (see start_systemd):
# builds the root the private systemd sees, then becomes that systemd.
if [ "${1:-}" = --systemd-pid1 ]; then
    work="$2"
    # The root: the host's, read-only below, writes going to a tmpfs
    # (systemd's first boot steps, the service's StateDirectory, the journal).
    mount -t tmpfs -o mode=0755 tmpfs "$work/ns"
    mkdir -p "$work/ns/upper" "$work/ns/work" "$work/ns/root"
    mount -t overlay overlay \
        -o "lowerdir=/,upperdir=$work/ns/upper,workdir=$work/ns/work" "$work/ns/root"
    r="$work/ns/root"
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mount --rbind /sys "$r/sys"
    # This namespace's own cgroup tree (unshare --cgroup rooted it at the
    # cgroup made for it), for systemd to manage.
    mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
    mount -t tmpfs -o mode=0755 tmpfs "$r/run"
    mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
    units="$r/run/systemd/system"
    mkdir -p "$units"
    # What to boot: nothing but the journal; the test starts the service.
    printf '[Unit]\nDescription=Ferroswitch package test\nWants=systemd-journald.socket\n' \
        >"$units/fswpkg-test.target"
    # Boot steps whose effects would reach the host (devices, kernel
    # modules, sysctls, binfmt, the clock, the disks) are masked.
    for u in timers.target getty.target systemd-udevd.service \
        systemd-udev-trigger.service systemd-udev-settle.service \
        systemd-udevd-control.socket systemd-udevd-kernel.socket \
        kmod-static-nodes.service systemd-modules-load.service modprobe@.service \
        systemd-sysctl.service systemd-binfmt.service \
        proc-sys-fs-binfmt_misc.automount systemd-tmpfiles-setup-dev.service \
        systemd-repart.service systemd-firstboot.service \
        systemd-machine-id-commit.service systemd-pcrphase.service \
        systemd-pcrphase-sysinit.service systemd-pstore.service \
        systemd-timesyncd.service systemd-remount-fs.service \
        systemd-fsck-root.service systemd-journald-audit.socket \
        systemd-hwdb-update.service sys-kernel-config.mount \
        sys-kernel-debug.mount sys-kernel-tracing.mount \
        sys-fs-fuse-connections.mount; do
        ln -s /dev/null "$units/$u"
    done
    cd "$r"
    mkdir -p .oldroot
    pivot_root . .oldroot
    umount -l /.oldroot
    rmdir /.oldroot
    # systemd's container mode: no hardware set-up, no console take-over.
    export container=fswpkg-test
    exec /lib/systemd/systemd --system --unit=fswpkg-test.target
fi

# --------------------------------------------------------------- the test --
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
self="$root/scripts/package_test.sh"

PROFILE="${FSW_PKG_PROFILE:-ci}"
CARGO_DEB_VERSION=3.8.0
UNIT=ferroswitch.service
CONFIG=/etc/ferroswitch/vswitchd.toml
SOCK=/run/ferroswitch/vswitchd.sock
# The capabilities vswitchd needs (packaging/ferroswitch.service says why);
# the unit must grant exactly these.
WANT_CAPS="cap_net_admin,cap_net_raw"
NS=(fswpkg-ns1 fswpkg-ns2)
VETH=(fswpkg-h1 fswpkg-h2)
TAP=fswpkg-tap0

started=$SECONDS
checks=0
say() { echo "package_test: $*" >&2; }
ok() {
    checks=$((checks + 1))
    echo "package_test: ok: $*"
}
fail() {
    echo "package_test: FAIL: $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || fail "must run as root (installs a package, runs systemd)"
[ "$PROFILE" = ci ] || [ "$PROFILE" = release ] || fail "FSW_PKG_PROFILE=$PROFILE: ci or release"

work="$(mktemp -d /tmp/fswpkg.XXXXXX)"
installed=0
sd_pid=""   # the private systemd (PID 1 of its namespace), as the host sees it
unshare_pid=""
pool_before=""   # the hugepage pool before the test grew it
cgroup=""

# Runs a command where the service's systemd is: in its namespaces, or here.
sd() {
    if [ -n "$sd_pid" ]; then
        timeout 60 nsenter -t "$sd_pid" -a "$@"
    else
        timeout 60 "$@"
    fi
}
ctl() { sd /usr/bin/vswitchctl --socket "$SOCK" "$@"; }

stop_systemd() {
    [ -n "$sd_pid" ] || return 0
    if kill -0 "$sd_pid" 2>/dev/null; then
        sd systemctl stop "$UNIT" >/dev/null 2>&1 || true
        # SIGRTMIN+4: systemd powers off, which for PID 1 of a PID
        # namespace ends the namespace.
        kill -s SIGRTMIN+4 "$sd_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$sd_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$sd_pid" 2>/dev/null || true
    fi
    [ -z "$unshare_pid" ] || wait "$unshare_pid" 2>/dev/null || true
    sd_pid=""
}

remove_cgroup() {
    [ -n "$cgroup" ] && [ -d "$cgroup" ] || return 0
    find "$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ ! -d "$cgroup" ] || say "WARNING: cannot remove cgroup $cgroup"
}

remove_topology() {
    for i in 0 1; do
        ip netns del "${NS[$i]}" 2>/dev/null || true
        ip link del "${VETH[$i]}" 2>/dev/null || true
    done
    ip link del "$TAP" 2>/dev/null || true
}

purge_package() {
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get purge -y -q ferroswitch \
        >>"$work/apt.log" 2>&1 || timeout 120 dpkg --purge ferroswitch >>"$work/apt.log" 2>&1
}

cleanup() {
    rc=$?
    trap - EXIT INT TERM
    stop_systemd
    remove_cgroup
    remove_topology
    # The pages the test made the unit reserve go back (free ones only).
    if [ -n "$pool_before" ] && [ "$(cat /proc/sys/vm/nr_hugepages)" -gt "$pool_before" ]; then
        echo "$pool_before" >/proc/sys/vm/nr_hugepages || say "WARNING: cannot give back the hugepages"
    fi
    if [ "$installed" = 1 ] && dpkg-query -W ferroswitch >/dev/null 2>&1; then
        say "purging the package"
        purge_package || say "WARNING: purge failed (log: $work/apt.log)"
    fi
    if [ "$rc" -ne 0 ]; then
        say "FAILED after $((SECONDS - started))s; logs kept in $work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Shows the service's state and journal, then fails.
fail_unit() {
    sd systemctl status "$UNIT" --no-pager -l 2>&1 | tail -n 20 >&2 || true
    sd journalctl -u "$UNIT" --no-pager -n 40 2>&1 >&2 || true
    fail "$*"
}

# ------------------------------------------------------------ preconditions --
if dpkg-query -W -f='${Status}' ferroswitch 2>/dev/null | grep -q installed; then
    fail "the package ferroswitch is installed already; this test installs and purges it: remove it first"
fi
for port in 9108 9696; do
    # The packaged config's metrics and Neutron API addresses.
    if ss -Hltn "sport = :$port" | grep -q .; then
        fail "127.0.0.1:$port is in use (another vswitchd?); the packaged config listens there"
    fi
done
bash scripts/setup.sh || { rc=$?; [ "$rc" -eq 2 ] && say "cargo is required"; exit "$rc"; }
for tool in unshare nsenter systemctl systemd-analyze capsh ip ss python3; do
    command -v "$tool" >/dev/null || fail "$tool is missing"
done
if ! cargo deb --version >/dev/null 2>&1; then
    say "installing cargo-deb $CARGO_DEB_VERSION (cargo install)"
    timeout 1500 cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked -q \
        || fail "cargo install cargo-deb failed"
fi

# -------------------------------------------------------------------- build --
if [ "${FSW_PKG_SKIP_BUILD:-0}" != 1 ]; then
    say "building (cargo build --profile $PROFILE --workspace --bins)"
    cargo build --profile "$PROFILE" --workspace --bins -q
fi
say "packaging (cargo deb -p control --profile $PROFILE --no-build)"
cargo deb -p control --profile "$PROFILE" --no-build -q >"$work/cargo-deb.out" 2>&1 \
    || { cat "$work/cargo-deb.out" >&2; fail "cargo deb failed"; }
deb="$(grep '\.deb$' "$work/cargo-deb.out" | tail -n 1)"
[ -f "$deb" ] || { cat "$work/cargo-deb.out" >&2; fail "cargo deb named no .deb"; }
ok "built $(basename "$deb") ($(du -h "$deb" | cut -f1))"
t_built=$SECONDS

# ------------------------------------------------------------------ install --
say "installing $deb (apt-get)"
installed=1
DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends "$deb" \
    >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; fail "apt-get install failed"; }
[ "$(dpkg-query -W -f='${Status}' ferroswitch)" = "install ok installed" ] \
    || fail "ferroswitch is not installed after apt-get install"
ok "apt-get install: $(dpkg-query -W -f='${Package} ${Version}' ferroswitch)"

files=(/usr/bin/vswitchd /usr/bin/vswitchctl /usr/bin/neutron-server
    "/lib/systemd/system/$UNIT" /usr/libexec/ferroswitch/reserve-hugepages
    "$CONFIG" /etc/default/ferroswitch)
for f in "${files[@]}"; do
    [ -f "$f" ] || fail "$f is not installed"
    dpkg -S "$f" >/dev/null 2>&1 || fail "$f is not the package's"
done
ok "installed: ${files[*]}"
for f in "$CONFIG" /etc/default/ferroswitch; do
    dpkg-query -W -f='${Conffiles}\n' ferroswitch | grep -q "^ $f " || fail "$f is not a conffile"
done
ok "conffiles: $CONFIG /etc/default/ferroswitch"

pw="$(getent passwd ferroswitch)" || fail "no user ferroswitch"
uid="$(cut -d: -f3 <<<"$pw")"
gid="$(getent group ferroswitch | cut -d: -f3)" || fail "no group ferroswitch"
[ "$uid" -lt 1000 ] || fail "ferroswitch (uid $uid) is not a system user"
[ "$(cut -d: -f4 <<<"$pw")" = "$gid" ] || fail "ferroswitch's primary group is not ferroswitch"
[ "$(cut -d: -f7 <<<"$pw")" = /usr/sbin/nologin ] || fail "ferroswitch has a login shell"
ok "system user ferroswitch (uid $uid, gid $gid, no login shell)"

[ ! -e "/etc/systemd/system/multi-user.target.wants/$UNIT" ] \
    || fail "the unit was enabled on installation"
ok "the unit is installed neither enabled nor started"

/usr/bin/vswitchd --config "$CONFIG" --check >"$work/check.out" 2>&1 \
    || { cat "$work/check.out" >&2; fail "vswitchd --check rejects the packaged config"; }
ok "vswitchd --config $CONFIG --check"

# No output at all: systemd-analyze prints every doubt about a unit.
if ! systemd-analyze verify "/lib/systemd/system/$UNIT" >"$work/verify.out" 2>&1 \
    || [ -s "$work/verify.out" ]; then
    cat "$work/verify.out" >&2
    fail "systemd-analyze verify $UNIT"
fi
ok "systemd-analyze verify $UNIT: clean"

# ------------------------------------------------------------------ systemd --
if [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm)" = systemd ]; then
    say "systemd is PID 1 here: the host's systemd runs the unit"
else
    say "PID 1 is $(cat /proc/1/comm), not systemd: booting systemd in private namespaces"
    # A cgroup of the unified (v2) hierarchy for the private systemd to own.
    if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
        cg2=/sys/fs/cgroup
    elif [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
        cg2=/sys/fs/cgroup/unified
    else
        fail "no cgroup2 hierarchy mounted (/sys/fs/cgroup or /sys/fs/cgroup/unified)"
    fi
    cgroup="$cg2/fswpkg-test-$$"
    mkdir "$cgroup"
    mkdir "$work/ns"
    (
        echo "$BASHPID" >"$cgroup/cgroup.procs"
        exec unshare --pid --fork --mount --propagation private --cgroup --uts --ipc \
            "$self" --systemd-pid1 "$work"
    ) >"$work/systemd-boot.log" 2>&1 &
    unshare_pid=$!
    for _ in $(seq 100); do
        sd_pid="$(pgrep -P "$unshare_pid" || true)"
        [ -n "$sd_pid" ] && [ "$(cat "/proc/$sd_pid/comm" 2>/dev/null)" = systemd ] && break
        sd_pid=""
        kill -0 "$unshare_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$sd_pid" ] || { cat "$work/systemd-boot.log" >&2; fail "systemd did not start in its namespace"; }
    state=""
    for _ in $(seq 150); do
        state="$(sd systemctl is-system-running 2>/dev/null || true)"
        case "$state" in running | degraded) break ;; esac
        sleep 0.2
    done
    case "$state" in
        running) ;;
        *)
            sd systemctl --failed --no-pager >&2 || true
            fail "the private systemd is '$state', not running"
            ;;
    esac
    ok "$(sd systemctl --version | head -n 1) is PID 1 of a private PID/mount/cgroup namespace (host PID $sd_pid)"
fi

# ------------------------------------------------------- the unit's promises --
# What systemd parsed from the installed unit: the test follows the unit.
show() { sd systemctl show -p "$1" --value "$UNIT"; }
[ "$(show User)" = ferroswitch ] || fail "the unit's User= is '$(show User)'"
[ "$(show Group)" = ferroswitch ] || fail "the unit's Group= is '$(show Group)'"
unit_amb="$(show AmbientCapabilities | tr ' ' '\n' | sort | paste -sd, -)"
unit_bnd="$(show CapabilityBoundingSet | tr ' ' '\n' | sort | paste -sd, -)"
[ "$unit_amb" = "$WANT_CAPS" ] || fail "the unit's AmbientCapabilities are '$unit_amb', want $WANT_CAPS"
[ "$unit_bnd" = "$WANT_CAPS" ] || fail "the unit's CapabilityBoundingSet is '$unit_bnd', want $WANT_CAPS"
[ "$(show NoNewPrivileges)" = yes ] || fail "the unit lacks NoNewPrivileges=yes"
[ "$(show Restart)" = on-failure ] || fail "the unit's Restart= is '$(show Restart)'"
ok "unit: User=Group=ferroswitch, capabilities $WANT_CAPS, NoNewPrivileges, Restart=on-failure"

# ---------------------------------------------------------------- topology --
remove_topology
for i in 0 1; do
    ip netns add "${NS[$i]}"
    ip link add "${VETH[$i]}" type veth peer name eth0 netns "${NS[$i]}"
    # The host ends are switch ports only: keep the host's IPv6 chatter off.
    sysctl -qw "net.ipv6.conf.${VETH[$i]}.disable_ipv6=1" 2>/dev/null || true
    ip netns exec "${NS[$i]}" ip addr add "10.98.0.$((i + 1))/24" dev eth0
    ip netns exec "${NS[$i]}" ip link set eth0 up
    ip netns exec "${NS[$i]}" ip link set lo up
    ip link set "${VETH[$i]}" up
done

# -------------------------------------------------------------------- start --
# The unit's hugepage step must grow the pool when too few pages are free:
# ask for 8 more than are free now (the pool is given back on exit).
pool_before="$(cat /proc/sys/vm/nr_hugepages)"
free_before="$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)"
want_pages=$((free_before + 8))
sd sed -i "s/^FERROSWITCH_HUGEPAGES=.*/FERROSWITCH_HUGEPAGES=$want_pages/" /etc/default/ferroswitch
say "systemctl start $UNIT"
sd systemctl start "$UNIT" || fail_unit "systemctl start $UNIT failed"
wait_ready() {
    for _ in $(seq 150); do
        [ "$(show ActiveState)" = active ] && ctl port list >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}
wait_ready || fail_unit "$UNIT is not active with its control socket answering"
pid="$(show MainPID)"
[ "$pid" -gt 0 ] || fail_unit "no MainPID"
ok "$UNIT active, MainPID $pid, control socket $SOCK answers"

status="$(sd cat "/proc/$pid/status")"
field() { awk -v k="$1:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' <<<"$status"; }
[ "$(sd readlink "/proc/$pid/exe")" = /usr/bin/vswitchd ] || fail "MainPID is not /usr/bin/vswitchd"
exec_argv="$(show ExecStart | sed -n 's/.*argv\[\]=\([^;]*\) ;.*/\1/p')"
cmdline="$(sd cat "/proc/$pid/cmdline" | tr '\0' ' ' | sed 's/ $//')"
if [ -z "$exec_argv" ] || [ "$cmdline" != "$exec_argv" ]; then
    fail "the daemon runs '$cmdline', the unit's ExecStart is '$exec_argv'"
fi
ok "the daemon runs the unit's ExecStart: $cmdline"
[ "$(field Uid)" = "$uid $uid $uid $uid" ] || fail "Uid: $(field Uid), want $uid (real, effective, saved, fs)"
[ "$(field Gid)" = "$gid $gid $gid $gid" ] || fail "Gid: $(field Gid), want $gid"
[ "$(field Groups)" = "$gid" ] || fail "supplementary groups: $(field Groups), want $gid"
ok "vswitchd runs as ferroswitch: Uid $uid, Gid $gid, groups $gid"
for c in CapPrm CapEff CapBnd CapAmb; do
    caps="$(capsh --decode="$(field "$c")" | sed 's/^0x[0-9a-f]*=//')"
    [ "$caps" = "$WANT_CAPS" ] || fail "$c $(field "$c") = '$caps', want $WANT_CAPS"
done
ok "CapPrm = CapEff = CapBnd = CapAmb = $(field CapEff) = $WANT_CAPS"
[ "$(field NoNewPrivs)" = 1 ] || fail "NoNewPrivs: $(field NoNewPrivs)"
[ "$(field Seccomp)" = 2 ] || fail "Seccomp: $(field Seccomp), want 2 (filter)"
ok "NoNewPrivs 1, Seccomp 2 (SystemCallFilter in force)"

# The sandbox as the daemon sees it, in its own mount namespace.
mounts="$(sd cat "/proc/$pid/mountinfo")"
awk '$5 == "/" { print $6 }' <<<"$mounts" | grep -qw ro || fail "/ is writable for the daemon (ProtectSystem=strict)"
awk '$5 == "/run/ferroswitch" { print $6 }' <<<"$mounts" | grep -qw rw || fail "/run/ferroswitch is not writable for the daemon"
awk '$5 == "/var/lib/ferroswitch" { print $6 }' <<<"$mounts" | grep -qw rw \
    || fail "/var/lib/ferroswitch is not writable for the daemon"
awk '$5 == "/tmp" { print $4 }' <<<"$mounts" | grep -q systemd-private || fail "/tmp is not private (PrivateTmp)"
ok "sandbox: / read-only, /run/ferroswitch and /var/lib/ferroswitch writable, private /tmp"

# Hugepages without privilege: the EAL's memory is memfd hugetlb segments.
segs="$(sd grep -c 'memfd:seg' "/proc/$pid/maps" || true)"
[ "${segs:-0}" -gt 0 ] || fail "the EAL mapped no hugepage segments"
ok "EAL memory: $segs hugepage (memfd) segments, IOVA as VA"

pool_after="$(cat /proc/sys/vm/nr_hugepages)"
[ "$pool_after" -ge $((pool_before + 8)) ] \
    || fail "the hugepage pool is $pool_after, want >= $((pool_before + 8)) (FERROSWITCH_HUGEPAGES=$want_pages)"
ok "ExecStartPre=+reserve-hugepages grew the pool $pool_before -> $pool_after for $want_pages free pages"

journal="$(sd journalctl -u "$UNIT" --no-pager -o cat)"
grep -q '^reserve-hugepages: ' <<<"$journal" || fail "no reserve-hugepages line in the journal"
grep -q 'vswitchd running' <<<"$journal" || fail "no 'vswitchd running' in the journal"
ok "journal: $(grep '^reserve-hugepages: ' <<<"$journal" | tail -n 1); 'vswitchd running'"

[ "$(sd stat -c '%U:%G %a' /run/ferroswitch)" = "ferroswitch:ferroswitch 755" ] \
    || fail "/run/ferroswitch is $(sd stat -c '%U:%G %a' /run/ferroswitch), want ferroswitch:ferroswitch 755"
sock_mode="$(sd stat -c '%U %a' "$SOCK")"
[ "$sock_mode" = "ferroswitch 660" ] || fail "the control socket is '$sock_mode', want ferroswitch 660"
[ "$(sd stat -c '%U:%G %a' /run/ferroswitch/vhost-user)" = "ferroswitch:ferroswitch 750" ] \
    || fail "/run/ferroswitch/vhost-user is $(sd stat -c '%U:%G %a' /run/ferroswitch/vhost-user), want ferroswitch:ferroswitch 750"
if sd setpriv --reuid=nobody --regid=nogroup --clear-groups \
    /usr/bin/vswitchctl --socket "$SOCK" port list >"$work/nobody.out" 2>&1; then
    fail "user nobody can use the control socket"
fi
grep -q 'Permission denied' "$work/nobody.out" || { cat "$work/nobody.out" >&2; fail "nobody was refused for another reason"; }
ok "control socket: $SOCK ferroswitch 0660, /run/ferroswitch/vhost-user 0750, in /run/ferroswitch (0755); user nobody is refused"
[ "$(sd stat -c %U /var/lib/ferroswitch/neutron.db)" = ferroswitch ] \
    || fail "the Neutron store is not in /var/lib/ferroswitch, owned by ferroswitch"
ok "Neutron store /var/lib/ferroswitch/neutron.db, owned by ferroswitch"

# ------------------------------------------------------ the demo topology --
for i in 0 1; do
    ctl port add br-int "vm$((i + 1))" --type afpacket --iface "${VETH[$i]}" --tag 10 >/dev/null \
        || fail_unit "vswitchctl port add vm$((i + 1)) (af_packet on ${VETH[$i]}) failed"
done
ok "vswitchctl port add: vm1, vm2 (af_packet on ${VETH[*]}, access VLAN 10)"
ip netns exec "${NS[0]}" ping -c 3 -i 0.2 -W 2 10.98.0.2 >"$work/ping.out" 2>&1 \
    || { cat "$work/ping.out" >&2; fail_unit "ping ${NS[0]} -> ${NS[1]} across the switch failed"; }
ok "ping ${NS[0]} (10.98.0.1) -> ${NS[1]} (10.98.0.2) across the switch: $(grep -o '[0-9]* received' "$work/ping.out")"
ctl port stats --json >"$work/stats.json" || fail "vswitchctl port stats failed"
python3 - "$work/stats.json" <<'PY' || fail "port counters do not show the ping"
import json, sys
stats = json.load(open(sys.argv[1]))
ports = {p["name"]: p for p in (stats if isinstance(stats, list) else stats.get("ports", []))}
for name in ("vm1", "vm2"):
    p = ports[name]
    assert p["rx_packets"] >= 3 and p["tx_packets"] >= 3, (name, p)
PY
ok "port stats: vm1 and vm2 each received and sent >= 3 frames"

ctl port add br-int "$TAP" --type internal --tag 10 >/dev/null \
    || fail_unit "vswitchctl port add $TAP --type internal (TAP) failed"
ip link show "$TAP" >/dev/null 2>&1 || fail "the internal port's TAP $TAP does not exist"
ctl port del "$TAP" >/dev/null || fail "vswitchctl port del $TAP failed"
! ip link show "$TAP" >/dev/null 2>&1 || fail "the TAP $TAP is still there after port del"
ok "internal port $TAP: the TAP appears, and goes with port del"

# A vhost-user port whose socket the switch creates (a VM would connect):
# the vhost PMD works in the sandbox, its socket lands in the packaged
# vhost_sock_dir.
ctl port add br-int vhu0 --type dpdkvhostuser --tag 10 >/dev/null \
    || fail_unit "vswitchctl port add vhu0 --type dpdkvhostuser failed"
sd test -S /run/ferroswitch/vhost-user/vhu0 || fail "no vhost-user socket /run/ferroswitch/vhost-user/vhu0"
vhu_mode="$(sd stat -c '%U:%G %a' /run/ferroswitch/vhost-user/vhu0)"
[ "$vhu_mode" = "ferroswitch:ferroswitch 660" ] || fail "vhu0's socket is $vhu_mode, want ferroswitch:ferroswitch 660"
ctl port del vhu0 >/dev/null || fail "vswitchctl port del vhu0 failed"
ok "dpdkvhostuser port vhu0: socket /run/ferroswitch/vhost-user/vhu0 created ($vhu_mode), port deleted"

# --------------------------------------------------------- Restart=on-failure --
sd kill -KILL "$pid"
new=""
for _ in $(seq 100); do
    new="$(show MainPID)"
    [ "${new:-0}" -gt 0 ] && [ "$new" != "$pid" ] && break
    sleep 0.2
done
if [ "${new:-0}" -eq 0 ] || [ "$new" = "$pid" ]; then
    fail_unit "no restart after SIGKILL"
fi
wait_ready || fail_unit "the restarted $UNIT does not answer"
[ "$(show NRestarts)" = 1 ] || fail "NRestarts is $(show NRestarts), want 1"
ok "Restart=on-failure: after SIGKILL of $pid, systemd restarted it (MainPID $new, NRestarts 1)"

# --------------------------------------------------------------------- stop --
sd systemctl stop "$UNIT" || fail_unit "systemctl stop failed"
[ "$(show ActiveState)" = inactive ] || fail_unit "$UNIT is $(show ActiveState) after stop"
[ "$(show Result)" = success ] || fail_unit "stop: Result=$(show Result)"
! sd test -e /run/ferroswitch || fail "/run/ferroswitch remains after stop"
grep -q 'stopping' <<<"$(sd journalctl -u "$UNIT" --no-pager -o cat)" || fail "no 'stopping' in the journal"
ok "systemctl stop: inactive, Result=success (clean exit on SIGTERM), /run/ferroswitch removed"

stop_systemd
remove_cgroup
remove_topology
echo "$pool_before" >/proc/sys/vm/nr_hugepages
[ "$(cat /proc/sys/vm/nr_hugepages)" = "$pool_before" ] || say "WARNING: the hugepage pool is not back to $pool_before"

# -------------------------------------------------------------------- purge --
say "apt-get purge ferroswitch"
purge_package || { tail -n 30 "$work/apt.log" >&2; fail "apt-get purge failed"; }
installed=0
! dpkg-query -W -f='${Status}' ferroswitch 2>/dev/null | grep -q installed \
    || fail "ferroswitch is still installed"
for f in "${files[@]}" /etc/ferroswitch /usr/libexec/ferroswitch; do
    [ ! -e "$f" ] || fail "$f remains after purge"
done
! getent passwd ferroswitch >/dev/null || fail "the user ferroswitch remains after purge"
! getent group ferroswitch >/dev/null || fail "the group ferroswitch remains after purge"
ok "apt-get purge: binaries, unit, config and the user ferroswitch are gone"

echo "package_test: $checks passed, 0 failed ($((SECONDS - t_built))s after the build, $((SECONDS - started))s in all)"
