#!/usr/bin/env python3
"""Scale benchmark of the Neutron control plane of vswitchd (issue 4).

    python3 scripts/neutron_scale.py [--ports 10000] [--groups 1000] [--rules 10] [--out DIR]

Starts the real vswitchd (release build) with its Neutron API, a SQLite file
in --out, one PMD on core 1 and a net_pcap uplink, then over HTTP on loopback:
  1. creates --groups security groups with --rules ingress rules each;
  2. creates one provider VLAN network with a /16 subnet;
  3. creates --ports ports (each in one of the groups), timing every request;
  4. lists all ports (GET /v2.0/ports), 5 times;
  5. with --local-ports N (default 24): N of the ports are this host's VMs,
     attached to switch ports (net_null, os-vif's iface-id) before the
     others are created, with port security and the group "local" whose
     rule admits TCP 22 from the members of the group "fleet"; every port
     created joins "fleet" too, so each create changes the remote group of
     every local port's rules (a membership change that reaches many
     ports); then --rule-changes rules are added to and removed from
     "local" (a rule change that reaches every local port);
  6. reads the change-to-dataplane latency (commit reaching the control
     thread -> snapshot in use by every worker) from /metrics, for all
     changes and for those that changed the dataplane;
  7. reads vswitchd's resident memory (VmRSS).
Prints one JSON line with the figures. Python 3 standard library only.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round((len(v) - 1) * q)))]


class Api:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}/v2.0/"

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "X-Auth-Token": "notused"})
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{method} {path}: {e.code} {e.read().decode()}")
        dt = time.perf_counter() - t0
        return (json.loads(raw) if raw else None), dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=10000)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--rules", type=int, default=10)
    ap.add_argument("--networks", type=int, default=100, help="extra VLAN networks (dataplane changes)")
    ap.add_argument("--local-ports", type=int, default=24,
                    help="ports of this host attached to the switch (at most 30: DPDK's 32 ports)")
    ap.add_argument("--rule-changes", type=int, default=100,
                    help="rules added to and removed from the local ports' group")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "neutron-scale"))
    args = ap.parse_args()

    vswitchd = ROOT / "target" / "release" / "vswitchd"
    if not vswitchd.exists():
        subprocess.run(["cargo", "build", "--release", "-p", "control", "--bin", "vswitchd"], cwd=ROOT, check=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "neutron.db"
    for f in out.glob("neutron.db*"):
        f.unlink()
    api_port, metrics_port = free_port(), free_port()
    cfg = out / "vswitchd.toml"
    cfg.write_text(f"""
[eal]
args = ["--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--file-prefix", "fsw-scale-{os.getpid()}"]
[dataplane]
pmd_cores = [1]
control_core = 0
[control]
socket = "{out}/ctl.sock"
state_dir = "{out}/state"
metrics_listen = "127.0.0.1:{metrics_port}"
[neutron]
listen = "127.0.0.1:{api_port}"
database = "{db}"
host = "compute-1"
network_vlan_ranges = ["physnet1:3000:3999"]
bridge_mappings = ["physnet1:uplink"]
vhost_socket_dir = "{out}/vhu"
[[bridges]]
name = "br-int"
[[bridges.ports]]
name = "uplink"
devargs = "net_pcap0,tx_pcap=/dev/null"
""")
    log = open(out / "vswitchd.log", "w")
    proc = subprocess.Popen(["taskset", "-c", "0", str(vswitchd), "--config", str(cfg)], stdout=log, stderr=log)
    try:
        api = Api(api_port)
        deadline = time.time() + 30
        while True:
            try:
                api.call("GET", "networks")
                break
            except (urllib.error.URLError, ConnectionError, SystemExit):
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit("vswitchd did not come up; see " + str(out / "vswitchd.log"))
                time.sleep(0.1)

        t0 = time.time()
        groups, rule_lat, group_lat = [], [], []
        for g in range(args.groups):
            body, dt = api.call("POST", "security-groups", {"security_group": {"name": f"sg{g}"}})
            group_lat.append(dt)
            gid = body["security_group"]["id"]
            groups.append(gid)
            for r in range(args.rules):
                _, dt = api.call("POST", "security-group-rules", {"security_group_rule": {
                    "security_group_id": gid, "direction": "ingress", "ethertype": "IPv4",
                    "protocol": "tcp", "port_range_min": 1000 + r, "port_range_max": 1000 + r,
                    "remote_ip_prefix": f"10.{g % 250}.{r}.0/24"}})
                rule_lat.append(dt)
        print(f"[scale] {args.groups} groups x {args.rules} rules in {time.time() - t0:.1f}s", file=sys.stderr)

        # Networks on the mapped physnet: each one changes the uplink's VLAN
        # translations, i.e. the dataplane.
        for n in range(args.networks):
            api.call("POST", "networks", {"network": {"name": f"net{n}", "provider:network_type": "vlan",
                                                      "provider:physical_network": "physnet1",
                                                      "provider:segmentation_id": 3000 + n}})
        net, _ = api.call("POST", "networks", {"network": {"name": "scale", "provider:network_type": "vlan",
                                                            "provider:physical_network": "physnet1",
                                                            "provider:segmentation_id": 3500}})
        net_id = net["network"]["id"]
        api.call("POST", "subnets", {"subnet": {"network_id": net_id, "cidr": "10.0.0.0/16", "ip_version": 4}})
        fleet = api.call("POST", "security-groups", {"security_group": {"name": "fleet"}})[0]["security_group"]["id"]
        local = api.call("POST", "security-groups", {"security_group": {"name": "local"}})[0]["security_group"]["id"]
        api.call("POST", "security-group-rules", {"security_group_rule": {
            "security_group_id": local, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22, "remote_group_id": fleet}})
        vswitchctl = ROOT / "target" / "release" / "vswitchctl"
        for i in range(args.local_ports):
            body, _ = api.call("POST", "ports", {"port": {"network_id": net_id, "name": f"local{i}",
                                                           "security_groups": [local, fleet]}})
            cp = subprocess.run([str(vswitchctl), "--socket", str(out / "ctl.sock"), "port", "add", "br-int",
                                 f"vm{i}", f"net_null{i + 1},no-rx=1", "--iface-id", body["port"]["id"]],
                                capture_output=True, text=True, timeout=60)
            if cp.returncode != 0:
                raise SystemExit(f"port add vm{i}: {cp.stderr}")
        if args.local_ports:
            print(f"[scale] {args.local_ports} local ports attached", file=sys.stderr)
        t0 = time.time()
        port_lat = []
        for i in range(args.ports):
            sgs = ([groups[i % len(groups)]] if groups else []) + ([fleet] if args.local_ports else [])
            _, dt = api.call("POST", "ports", {"port": {"network_id": net_id, "name": f"p{i}",
                                                         "security_groups": sgs,
                                                         "binding:host_id": "compute-1"}})
            port_lat.append(dt)
            if i and i % 2000 == 0:
                print(f"[scale] {i} ports, last p99 so far {pct(port_lat, 0.99) * 1e3:.2f} ms", file=sys.stderr)
        print(f"[scale] {args.ports} ports in {time.time() - t0:.1f}s", file=sys.stderr)

        change_lat = []
        for r in range(args.rule_changes if args.local_ports else 0):
            body, dt = api.call("POST", "security-group-rules", {"security_group_rule": {
                "security_group_id": local, "direction": "ingress", "ethertype": "IPv4", "protocol": "udp",
                "port_range_min": 2000 + r, "port_range_max": 2000 + r}})
            change_lat.append(dt)
            _, dt = api.call("DELETE", f"security-group-rules/{body['security_group_rule']['id']}")
            change_lat.append(dt)

        list_times = []
        for _ in range(5):
            body, dt = api.call("GET", "ports")
            # Besides ours, the subnet's DHCP port (device_owner network:dhcp),
            # which the service creates as Neutron's DHCP agent does.
            ours = [p for p in body["ports"] if not p.get("device_owner", "").startswith("network:")]
            assert len(ours) == args.ports + args.local_ports, (len(ours), len(body["ports"]))
            list_times.append(dt)

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).read().decode()
        q = {}
        for line in metrics.splitlines():
            if line.startswith("ferroswitch_neutron_apply_quantile_seconds"):
                which = line.split('changes="')[1].split('"')[0]
                name = line.split('quantile="')[1].split('"')[0]
                q[(which, name)] = float(line.rsplit(" ", 1)[1])
            if line.startswith("ferroswitch_neutron_applied_changes"):
                which = line.split('changes="')[1].split('"')[0]
                q[(which, "count")] = int(float(line.rsplit(" ", 1)[1]))
        rss_kib = 0
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
        result = {
            "scenario": "neutron-scale",
            "ports": args.ports, "security_groups": args.groups, "rules_per_group": args.rules,
            "port_create_ms": {"p50": round(pct(port_lat, 0.5) * 1e3, 3), "p99": round(pct(port_lat, 0.99) * 1e3, 3),
                               "max": round(max(port_lat) * 1e3, 3)},
            # p99 per window of 2,000 creates: flat when nothing per create
            # grows with the number of ports.
            "port_create_p99_ms_by_2000": [round(pct(port_lat[i:i + 2000], 0.99) * 1e3, 3)
                                           for i in range(0, len(port_lat), 2000)],
            "rule_create_ms": {"p50": round(pct(rule_lat, 0.5) * 1e3, 3), "p99": round(pct(rule_lat, 0.99) * 1e3, 3)} if rule_lat else None,
            "local_ports": args.local_ports,
            "local_rule_change_ms": {"p50": round(pct(change_lat, 0.5) * 1e3, 3),
                                     "p99": round(pct(change_lat, 0.99) * 1e3, 3),
                                     "changes": len(change_lat)} if change_lat else None,
            "list_all_ports_ms": {"median": round(statistics.median(list_times) * 1e3, 1), "max": round(max(list_times) * 1e3, 1)},
            "change_to_dataplane_ms": {
                which: {"p50": round(q.get((which, "0.5"), float("nan")) * 1e3, 3),
                        "p99": round(q.get((which, "0.99"), float("nan")) * 1e3, 3),
                        "max": round(q.get((which, "1"), float("nan")) * 1e3, 3),
                        "changes": q.get((which, "count"))}
                for which in ("all", "dataplane")},
            "vswitchd_rss_mib": round(rss_kib / 1024, 1),
            "database_mib": round(sum(f.stat().st_size for f in out.glob("neutron.db*")) / 2**20, 1),
        }
        print(json.dumps(result))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
