#!/usr/bin/env python3
"""Control-plane scale of a Ferroswitch cloud sharing one Neutron model in
etcd (issue 16): H hosts x P ports against a real etcd and the real daemons.

    python3 scripts/cluster_scale.py [--hosts 100] [--ports-per-host 100]
        [--networks 20] [--changes 200] [--network-type vlan|vxlan] [--out DIR]
        [--bin-dir target/release]

1. Starts a real etcd (Debian's etcd-server) on loopback ports.
2. Plays the hosts' registrations: H hosts are registered under leases, as
   their daemons would register themselves (the last one, host-H, is a real
   vswitchd later and registers again itself).
3. Through one API (neutron-server, "api"): --networks tenant networks
   with a subnet each, then P ports bound to each host (one bulk create of
   P ports per host, spread over the networks).
4. Starts H-1 neutron-server processes as the control planes of hosts
   1..H-1: the same store, watch and model code as the daemon, without a
   dataplane. Each reads the whole model (timed).
5. Starts the real vswitchd as host-H (EAL without hugepages, one PMD on
   core 1) and times its convergence: from its start to its /metrics
   showing the model at the revision etcd had when it started, compiled
   into the local VLANs of every network its ports are on.
6. Makes --changes port updates through the API, one every 20 ms; every
   process measures each change's watch lag (commit to arrival, the same
   clock) and reports its quantiles (neutron-server at exit, vswitchd on
   /metrics).
Prints one JSON line with the figures. Python 3 standard library only.
"""
import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from neutron_scale import Api, free_port, pct  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def etcd_call(url, path, body):
    req = urllib.request.Request(f"{url}/v3/{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def b64(s):
    return base64.b64encode(s.encode()).decode()


def metrics(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def start_server(binary, cfg_path, log_path):
    log = open(log_path, "w")
    p = subprocess.Popen([str(binary), "--config", str(cfg_path)], stdout=subprocess.PIPE, stderr=log, text=True)
    return p


def wait_listening(p, what):
    line = p.stdout.readline()
    if not line.startswith("listening on "):
        raise SystemExit(f"{what} did not start: {line!r}")
    return int(line.rsplit(":", 1)[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--ports-per-host", type=int, default=100)
    ap.add_argument("--networks", type=int, default=20)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--network-type", choices=["vlan", "vxlan"], default="vlan",
                    help="the tenant networks' type; with vxlan every host registers a tunnel endpoint and "
                         "host-H's vswitchd runs l2population over the whole cloud")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "cluster-scale"))
    ap.add_argument("--bin-dir", default=str(ROOT / "target" / "release"),
                    help="where neutron-server and vswitchd are (built there with --release if missing)")
    args = ap.parse_args()
    rel = Path(args.bin_dir)
    if not (rel / "neutron-server").exists() or not (rel / "vswitchd").exists():
        subprocess.run(["cargo", "build", "--release", "-p", "neutron", "-p", "control", "--bins"], cwd=ROOT,
                       check=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fsw-cluster-"))
    procs = []
    etcd_url = f"http://127.0.0.1:{free_port()}"
    peer = f"http://127.0.0.1:{free_port()}"
    etcd = subprocess.Popen(["etcd", "--name", "m1", "--data-dir", str(work / "etcd"),
                             "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                             "--initial-cluster", f"m1={peer}", "--max-txn-ops", "10000",
                             "--log-level", "warn"], stderr=open(out / "etcd.log", "w"))
    procs.append(etcd)
    try:
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{etcd_url}/health", timeout=1) as r:
                    if b"true" in r.read():
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("etcd did not start")
            time.sleep(0.05)

        cluster = f'[cluster]\netcd_endpoints = ["{etcd_url}"]\ntimeout_ms = 10000\n'
        vxlan = args.network_type == "vxlan"
        # Host h's tunnel endpoint (RFC 2544's benchmarking range).
        endpoint = lambda h: f"198.18.{h // 256}.{h % 256}"  # noqa: E731
        tenant = 'tenant_network_type = "vxlan"\nvni_ranges = ["1000:1999"]\n' if vxlan else ""
        vhu = out / "vhu"
        # 2. The hosts' registrations, as their daemons write them.
        lease = etcd_call(etcd_url, "lease/grant", {"TTL": 3600})["ID"]
        for h in range(1, args.hosts + 1):
            rec = {"host": f"host-{h}", "bridge_mappings": {"physnet1": "uplink"},
                   "vhost_socket_dir": str(vhu), "integration_bridge": "br-int", "started_at": "played"}
            if vxlan:
                rec["tunnel_ip"] = endpoint(h)
            etcd_call(etcd_url, "kv/put", {"key": b64(f"/ferroswitch/hosts/host-{h}"),
                                          "value": b64(json.dumps(rec)), "lease": lease})

        def server_cfg(name, host):
            p = work / f"{name}.toml"
            p.write_text(f'listen = "127.0.0.1:0"\ndatabase = "{work}/{name}.db"\nhost = "{host}"\n'
                         f'network_vlan_ranges = ["physnet1:100:3999"]\nbridge_mappings = ["physnet1:uplink"]\n'
                         f'{tenant}{cluster}')
            return p

        # 3. The model, through one API.
        api_proc = start_server(rel / "neutron-server", server_cfg("api", "api"), out / "api.log")
        procs.append(api_proc)
        api = Api(wait_listening(api_proc, "the API"))
        t0 = time.time()
        nets = []
        for n in range(args.networks):
            body, _ = api.call("POST", "networks", {"network": {"name": f"net{n}"}})
            nid = body["network"]["id"]
            api.call("POST", "subnets", {"subnet": {"network_id": nid, "cidr": f"10.{n}.0.0/16", "ip_version": 4}})
            nets.append(nid)
        bulk = []
        for h in range(1, args.hosts + 1):
            ports = [{"network_id": nets[(h + i) % len(nets)], "name": f"h{h}p{i}", "binding:host_id": f"host-{h}"}
                     for i in range(args.ports_per_host)]
            _, dt = api.call("POST", "ports", {"ports": ports})
            bulk.append(dt)
        populate = time.time() - t0
        print(f"[cluster] {args.hosts} x {args.ports_per_host} ports in {populate:.1f}s", file=sys.stderr)
        listed, _ = api.call("GET", "ports?fields=id")
        assert len(listed["ports"]) == args.hosts * args.ports_per_host, len(listed["ports"])

        # 4. The other hosts' control planes.
        # Started a few at a time: this machine's two cores serve etcd and
        # every reader of the whole model at once.
        t0 = time.time()
        watchers = []
        for first in range(1, args.hosts, 8):
            batch = []
            for h in range(first, min(first + 8, args.hosts)):
                p = start_server(rel / "neutron-server", server_cfg(f"host-{h}", f"host-{h}"), out / f"host-{h}.log")
                procs.append(p)
                batch.append((h, p))
            for h, p in batch:
                wait_listening(p, f"host-{h}")
            watchers.extend(p for _, p in batch)
        watchers_up = time.time() - t0
        print(f"[cluster] {len(watchers)} control planes up in {watchers_up:.1f}s", file=sys.stderr)

        # 5. The real daemon on host-H.
        me = f"host-{args.hosts}"
        metrics_port, api_port = free_port(), free_port()
        my_nets = {nets[(args.hosts + i) % len(nets)] for i in range(args.ports_per_host)}
        rev_at_start = int(etcd_call(etcd_url, "kv/range", {"key": b64("/ferroswitch/model/revision")})
                           ["kvs"][0]["mod_revision"])
        cfg = work / "vswitchd.toml"
        cfg.write_text(f"""[eal]
args = ["--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--file-prefix", "fsw-cluster-{os.getpid()}"]
[dataplane]
pmd_cores = [1]
control_core = 0
[control]
socket = "{work}/ctl.sock"
state_dir = "{work}/state"
metrics_listen = "127.0.0.1:{metrics_port}"
[neutron]
listen = "127.0.0.1:{api_port}"
database = "{work}/unused.db"
host = "{me}"
network_vlan_ranges = ["physnet1:100:3999"]
bridge_mappings = ["physnet1:uplink"]
vhost_socket_dir = "{vhu}"
{tenant}{f'local_ip = "{endpoint(args.hosts)}"' if vxlan else ""}
[[bridges]]
name = "br-int"
[[bridges.ports]]
name = "uplink"
devargs = "net_null0,no-rx=1"
{f'tunnel_ip = "{endpoint(args.hosts)}/16"' if vxlan else ""}
{cluster}""")
        t0 = time.time()
        vs = subprocess.Popen([str(rel / "vswitchd"), "--config", str(cfg)], stdout=open(out / "vswitchd.log", "w"),
                              stderr=subprocess.STDOUT)
        procs.append(vs)
        converge = None
        while time.time() - t0 < 60:
            m = metrics(metrics_port)
            if m and m.get("ferroswitch_cluster_model_revision", 0) >= rev_at_start \
                    and m.get("ferroswitch_neutron_local_vlans", 0) >= len(my_nets):
                converge = time.time() - t0
                break
            if vs.poll() is not None:
                raise SystemExit(f"vswitchd exited; see {out / 'vswitchd.log'}")
            time.sleep(0.005)
        if converge is None:
            raise SystemExit(f"vswitchd did not converge in 60 s; see {out / 'vswitchd.log'}")
        print(f"[cluster] vswitchd ({me}, {args.ports_per_host} ports on {len(my_nets)} networks) converged in "
              f"{converge * 1e3:.0f} ms", file=sys.stderr)
        # Where the time went, from the daemon's log.
        phases = {}
        for line in (out / "vswitchd.log").read_text(errors="replace").splitlines():
            for key, needle in (("model_read_s", "neutron state restored"), ("conntrack_up_s", "connection tracker up"),
                                ("running_s", "vswitchd running")):
                if needle in line and key not in phases:
                    stamp = line.split()[0].rstrip("Z")
                    when = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone \
                        + float("0" + stamp[19:])
                    phases[key] = round(when - t0, 3)

        # 6. Port changes, reaching every host.
        ids = [p["id"] for p in listed["ports"]]
        change_lat = []
        for c in range(args.changes):
            pid = ids[(c * 7919) % len(ids)]
            _, dt = api.call("PUT", f"ports/{pid}", {"port": {"name": f"changed-{c}"}})
            change_lat.append(dt)
            time.sleep(0.02)
        time.sleep(1)
        vm = metrics(metrics_port) or {}
        members = []
        for h, p in enumerate(watchers, 1):
            p.send_signal(signal.SIGTERM)
        for h, p in enumerate(watchers, 1):
            text, _ = p.communicate(timeout=30)
            line = next((ln for ln in text.splitlines() if ln.startswith("cluster ")), None)
            if line is None:
                raise SystemExit(f"host-{h} printed no figures")
            members.append(json.loads(line[len("cluster "):]))
        members.append({
            "watched_commits": int(vm.get("ferroswitch_cluster_watched_commits_total", 0)),
            "lag_p50_micros": vm.get('ferroswitch_cluster_watch_lag_seconds{quantile="0.5"}', 0) * 1e6,
            "lag_p99_micros": vm.get('ferroswitch_cluster_watch_lag_seconds{quantile="0.99"}', 0) * 1e6,
            "lag_max_micros": vm.get('ferroswitch_cluster_watch_lag_seconds{quantile="1"}', 0) * 1e6,
        })
        (out / "members.json").write_text(json.dumps(members, indent=1))
        short = [m for m in members if m["watched_commits"] < args.changes]
        result = {
            "hosts": args.hosts, "ports": args.hosts * args.ports_per_host, "networks": args.networks,
            "populate_s": round(populate, 2),
            "bulk_create_p99_ms": round(pct(bulk, 0.99) * 1e3, 1),
            "control_planes_up_s": round(watchers_up, 2),
            "vswitchd_converge_ms": round(converge * 1e3, 1),
            "vswitchd_phases": phases,
            "changes": args.changes,
            "change_request_p99_ms": round(pct(change_lat, 0.99) * 1e3, 2),
            "hosts_missing_changes": len(short),
            "watch_lag_p50_ms_median_host": round(pct([m["lag_p50_micros"] for m in members], 0.5) / 1e3, 2),
            "watch_lag_p99_ms_median_host": round(pct([m["lag_p99_micros"] for m in members], 0.5) / 1e3, 2),
            "watch_lag_p99_ms_worst_host": round(max(m["lag_p99_micros"] for m in members) / 1e3, 2),
            "watch_lag_p99_ms_vswitchd": round(members[-1]["lag_p99_micros"] / 1e3, 2),
            "watch_lag_max_ms": round(max(m["lag_max_micros"] for m in members) / 1e3, 2),
        }
        if vxlan:
            # l2population on host-H: the tunnel ports it opened (one per
            # other host, while switch port numbers last).
            result["network_type"] = "vxlan"
            result["vswitchd_tunnel_ports"] = sum(1 for k in vm if k.startswith("ferroswitch_tunnel_remote_macs{"))
            result["vswitchd_remote_macs"] = int(sum(v for k, v in vm.items()
                                                     if k.startswith("ferroswitch_tunnel_remote_macs{")))
        print(json.dumps(result))
        if short:
            raise SystemExit(f"{len(short)} hosts saw fewer than {args.changes} commits")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
