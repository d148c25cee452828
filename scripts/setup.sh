#!/usr/bin/env bash
# Ferroswitch benchmark/dev machine set-up (Debian 12, run as root).
#
# Idempotent: safe to run any number of times. Quiet unless something is
# missing or fails.
#   * installs the packages the build and the benchmark harness need (only the
#     missing ones, through scripts/lib/packages.sh; `apt-get update` only
#     when an install fails);
#   * never starts or enables the system Open vSwitch service: while apt runs,
#     a temporary /usr/sbin/policy-rc.d (exit 101) is put in place unless one
#     already exists. The benchmark runs its own private OVS instance (private
#     rundir/dbdir/logdir and sockets), so a running system OVS is left alone;
#   * reserves >= 1536 x 2 MiB hugepages and mounts hugetlbfs on /dev/hugepages
#     (warns, does not fail, when the kernel grants fewer);
#   * checks that `cargo` is available.
#
# Exit status: 0 ok; 2 only cargo is missing (everything else done); 1 error.
#
# Environment: FSW_HUGEPAGES (default 1536), FSW_SETUP_VERBOSE=1 for chatter.
set -euo pipefail

HUGEPAGES_WANT="${FSW_HUGEPAGES:-1536}"
VERBOSE="${FSW_SETUP_VERBOSE:-0}"

PACKAGES=(
    libdpdk-dev dpdk-dev clang libclang-dev pkg-config libpcap-dev
    openvswitch-switch-dpdk iproute2 iputils-ping tcpdump python3 python3-venv ethtool iperf3 isc-dhcp-client
    # udhcpc for the DHCP tests (and the guest image's userland)
    busybox-static
    # The etcd client's protocol is generated at build time (protoc, and the
    # well-known types of libprotobuf-dev); the multi-host tests start a
    # real etcd and ask its members who leads (etcdctl).
    protobuf-compiler libprotobuf-dev etcd-server etcd-client
)

say()  { [ "$VERBOSE" = 1 ] && echo "setup: $*" >&2 || true; }
warn() { echo "setup: WARNING: $*" >&2; }
die()  { echo "setup: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (hugepages, package install)"

# ---------------------------------------------------------------- packages --
# shellcheck source=lib/packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"
ensure_packages setup "${PACKAGES[@]}"

[ -x /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk ] \
    || die "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk missing (openvswitch-switch-dpdk)"
command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd missing (dpdk-dev)"
[ -r /usr/share/openvswitch/vswitch.ovsschema ] || die "/usr/share/openvswitch/vswitch.ovsschema missing"

# --------------------------------------------------------------- hugepages --
nr_file=/proc/sys/vm/nr_hugepages
have="$(cat "$nr_file")"
if [ "$have" -lt "$HUGEPAGES_WANT" ]; then
    say "raising nr_hugepages $have -> $HUGEPAGES_WANT"
    echo "$HUGEPAGES_WANT" >"$nr_file" 2>/dev/null || warn "cannot write $nr_file"
    have="$(cat "$nr_file")"
    if [ "$have" -lt "$HUGEPAGES_WANT" ]; then
        # Compaction may free enough contiguous memory on a second try.
        sync; echo 1 >/proc/sys/vm/compact_memory 2>/dev/null || true
        echo "$HUGEPAGES_WANT" >"$nr_file" 2>/dev/null || true
        have="$(cat "$nr_file")"
    fi
    [ "$have" -ge "$HUGEPAGES_WANT" ] \
        || warn "kernel granted only $have of $HUGEPAGES_WANT 2 MiB hugepages; OVS-DPDK may fail"
fi
mkdir -p /dev/hugepages
mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages \
    || warn "cannot mount hugetlbfs on /dev/hugepages"

# ------------------------------------------------------------------- cargo --
if ! command -v cargo >/dev/null 2>&1; then
    for c in "${CARGO_HOME:-$HOME/.cargo}/bin" /root/.cargo/bin; do
        if [ -x "$c/cargo" ]; then
            warn "cargo is at $c/cargo but not on PATH; add it: export PATH=\"$c:\$PATH\""
            exit 0
        fi
    done
    echo "setup: ERROR: cargo not found. Install the Rust toolchain with rustup" >&2
    echo "setup:        (https://rustup.rs: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh)" >&2
    echo "setup:        and make sure ~/.cargo/bin is on PATH." >&2
    exit 2   # distinct code: everything else is fine (bench.sh can still run the peers)
fi

say "ok"
exit 0
