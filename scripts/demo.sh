#!/usr/bin/env bash
# Runs Ferroswitch on its bundled default config, with real frames:
# two network namespaces (fsw-ns1 10.99.0.1, fsw-ns2 10.99.0.2) whose veth
# host ends (fsw-h1, fsw-h2) are ports of the switch (afpacket: packet sockets) in
# access VLAN 10. Installs what is missing, builds, checks that ping crosses
# the switch, then keeps the switch in the foreground until Ctrl-C.
# Safe to run twice: it re-creates its namespaces and removes them on exit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh || { rc=$?; [ "$rc" -eq 2 ] && echo "demo: cargo is required" >&2; exit "$rc"; }
echo "demo: building (cargo build --release)..." >&2
cargo build --release --workspace --bins -q

vswitchd="$root/target/release/vswitchd"
vswitchctl="$root/target/release/vswitchctl"
sock=/run/ferroswitch/vswitchd.sock

cleanup_ns() {
    for i in 1 2; do
        ip netns del "fsw-ns$i" 2>/dev/null || true
        ip link del "fsw-h$i" 2>/dev/null || true
    done
}

pid=""
stop_switch() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    cleanup_ns
}
trap stop_switch EXIT
trap 'exit 130' INT TERM

cleanup_ns
for i in 1 2; do
    ip netns add "fsw-ns$i"
    ip link add "fsw-h$i" type veth peer name eth0 netns "fsw-ns$i"
    # The host ends are switch ports only: keep the host's own IPv6 chatter off them.
    sysctl -qw "net.ipv6.conf.fsw-h$i.disable_ipv6=1" 2>/dev/null || true
    ip netns exec "fsw-ns$i" ip addr add "10.99.0.$i/24" dev eth0
    ip netns exec "fsw-ns$i" ip link set eth0 up
    ip netns exec "fsw-ns$i" ip link set lo up
    ip link set "fsw-h$i" up
done

echo "demo: starting vswitchd on the bundled default config (vswitchd --print-default-config shows it)" >&2
"$vswitchd" &
pid=$!
for _ in $(seq 200); do
    "$vswitchctl" --socket "$sock" port list >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "demo: vswitchd exited" >&2; exit 1; }
    sleep 0.1
done

echo
"$vswitchctl" --socket "$sock" port list
echo
echo "demo: ping from fsw-ns1 (10.99.0.1) to fsw-ns2 (10.99.0.2) across the switch:"
ip netns exec fsw-ns1 ping -c 3 -i 0.2 -W 2 10.99.0.2
echo
"$vswitchctl" --socket "$sock" fdb show
cat <<MSG

Ferroswitch is running (PID $pid). Try, in another terminal:
  ip netns exec fsw-ns1 ping 10.99.0.2           # traffic across the switch
  $vswitchctl port stats                         # rx/tx/dropped per port (--json)
  $vswitchctl fdb show                           # learned MACs per VLAN
  $vswitchctl pmd-stats                          # cycles per packet of the PMD core
  $vswitchctl port add br-int vm3 net_tap0,iface=fsw-tap0 --tag 10   # hot-plug a port
  $vswitchctl port del vm3
  $vswitchctl network create net1 --provider-network-type vlan --provider-physical-network physnet1 --provider-segment 3001
  $vswitchctl subnet create s1 --network net1 --subnet-range 10.1.0.0/24
  $vswitchctl port create vm1-eth0 --network net1    # Neutron API on 127.0.0.1:9696 (openstack client works too)
  curl -s 127.0.0.1:9108/metrics | head               # Prometheus metrics
Press Ctrl-C to stop the switch and remove the namespaces.
MSG
wait "$pid"
