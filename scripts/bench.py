#!/usr/bin/env python3
"""Ferroswitch benchmark harness: the switch against its peers on one machine.

    python3 scripts/bench.py SCENARIO [options]      (usually via scripts/bench.sh)

Every system under test (ferroswitch, OVS-DPDK, testpmd io; with --baseline
also ferroswitch-baseline) gets the same ports: ``net_pcap`` ones (``rx_pcap=FILE,infinite_rx=1``; no tx file, so
transmitted frames are counted and dropped) and, in the vhost scenarios,
vhost-user client ports whose other ends are "VMs" (separate ``dpdk-testpmd``
processes with ``net_virtio_user`` server-mode ports, started afresh before
every run and stopped after it; see VhostScenario). The switch's one
forwarding thread runs on core 1, everything else (the VMs included) on core 0.
Systems run strictly one at a time (a poll-mode thread keeps its core at
100 %). Per run: start, warm up (--warmup s), read the counters, wait
--duration s, read them again, stop; the figures are counter deltas over the
measured wall-clock window between the two reads:

  mpps               packets transmitted per second, summed over the scenario's
                     output ports
  cycles_per_packet  ferroswitch: delta busy_cycles / delta packets (pmd-stats)
                     ovs-dpdk:    "avg processing cycles per packet" of the core-1
                                  PMD (dpif-netdev/pmd-stats-show, cleared at the
                                  window start)
                     testpmd-io, testpmd-vhost: TSC Hz x window / packets
                                  received (its forwarding core always polls)
  cycles_per_packet_wall  TSC Hz x window / packets received, for every system
                     (the same yardstick for all: each PMD core polls 100 %)
  tx_ratio           per direction "in->out": tx(out) / rx(in)
  vm                 (vhost scenarios) the VMs' own port counters over the
                     window, for spotting a VM-side bottleneck

With --runs N > 1 the runs are interleaved (round robin over the systems, each
run a fresh start) and the median and range are reported.

Traffic (flows): --flows distinct UDP 5-tuples per direction, on one pcap
port pair up to 250,000 and on ceil(flows / 250,000) pairs beyond (OVS-DPDK's
shared mbuf pool holds 262,144 frames; each port gets its own pool through
its own mtu_request); see the Flows class.

Traffic (vxlan, vxlan6): --flows UDP flows each way between a VM port (p0)
and an underlay port (p1) whose frames the remote tunnel endpoint
encapsulated, over IPv4 (vxlan) or IPv6 (vxlan6, UDP checksums on both
ways); see the Vxlan and Vxlan6 classes.

Traffic (l2-normal, pvp-vhost): --flows UDP frames per direction, frame i with
source port 1024 + i; --macs N spreads them over N MAC pairs (frame i: pair
i mod N; pair 0 is fa:16:3e:00:00:01 <-> :02, pair k >= 1 fa:16:3e:0a:HH:LL
<-> fa:16:3e:0b:HH:LL, see gen_pcap.py); --macs 1 (the default) is the one
pair of old. With --macs > 1 OVS's bridge gets other_config:mac-table-size
65536, ferroswitch's default table size (OVS's own default is 8192 MACs).
vm2vm-vhost sends one flow from testpmd txonly and refuses --macs > 1.

--baseline REV: ferroswitch as built from git revision REV is measured too, as
system "ferroswitch-baseline", interleaved with the others, configured exactly
like "ferroswitch" but with its own vswitchd and vswitchctl: REV's commit is
built once in a temporary git worktree (`cargo build --release --workspace
--bins`, CARGO_TARGET_DIR=target/bench-baseline/target, shared by all
baseline builds) and its two binaries are cached in target/bench-baseline/<sha>/
(a cached commit is not built again). If that build fails the system is
skipped and the exit status is non-zero. The current tree's binaries come from
target/release (or $CARGO_TARGET_DIR/release), built first with the same cargo
command (quick when nothing changed; a binary left from an older tree would
be measured silently as the current one); --no-build takes them as they are.

Output (stdout): one JSON line per system (with "flows", "macs", the run
parameters and "date"; ferroswitch-baseline's also "rev", as given, and
"commit", its full sha), then one line with the ratios of the medians: Mpps
ratios under "ratios" (with --baseline also "ferroswitch/ferroswitch-baseline"),
and with --baseline "cycles_per_packet_ratios" {"ferroswitch/ferroswitch-baseline"}.
The system lines also go to <out>/<scenario>-results.jsonl, and a chart of
them to <out>/<scenario>-results.svg (scripts/bench_chart.py: Mpps and cycles
per packet per system, the median as a bar, each run as a dot; `python3
scripts/bench_chart.py RESULTS.jsonl [-o OUT.svg]` redraws it from a results
file). Progress goes to stderr, logs of every process to files in --out.

TSC frequency: measured by reading the TSC (rdtsc, through a few bytes of
machine code called via ctypes) against CLOCK_MONOTONIC_RAW over ~0.3 s; if
that is impossible, /proc/cpuinfo "bogomips" / 2 (on x86 the kernel derives it
from the calibrated TSC: lpj = tsc_khz * 1000 / HZ). "cpu MHz" is not used (it
is the current core clock, not the TSC). The value and its source are reported.

Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import ipaddress
import json
import mmap
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPT_DIR.parent
sys.path.insert(0, str(SCRIPT_DIR))
import bench_chart  # noqa: E402  (same directory)
import gen_pcap  # noqa: E402  (same directory)
import neutron_traffic  # noqa: E402  (same directory)

FWD_CORE = 1          # the one forwarding (PMD) thread
CTRL_CORE = 0         # everything else
STOP_GRACE_S = 10.0   # SIGTERM, then SIGKILL after this long
DPDK_RUNTIME_ROOT = Path("/var/run/dpdk")
OVS_VSWITCHD_DPDK = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
LOCK_FILE = "/run/lock/ferroswitch-bench.lock"
ALL_SYSTEMS = ["ferroswitch", "ferroswitch-baseline", "ferroswitch-l2", "ferroswitch-full",
               "ferroswitch-no-tso", "ovs-dpdk", "ovs-dpdk-tso", "testpmd-io", "testpmd-vhost"]
BASELINE = "ferroswitch-baseline"      # --baseline REV: ferroswitch built from another commit
# --baseline: per-commit binary caches (<sha>/vswitchd, <sha>/vswitchctl), the
# cargo target dir all baseline builds share and the (temporary) git worktree
BASELINE_ROOT = REPO_ROOT / "target" / "bench-baseline"
VHOST_CLIENT = "dpdkvhostuserclient"   # Port.kind of a vhost-user client port
VM_MAC_BASE = "fa:16:3e:00:01:"        # MAC prefix of the pvp VM's ports
# ferroswitch's default [dataplane] mac_table_size (the bench config keeps the
# default); with --macs > 1 OVS's bridges get other_config:mac-table-size = this
# (OVS's own default is 8192), so both switches can hold the same number of MACs
FSW_MAC_TABLE_SIZE = 65536


# --------------------------------------------------------------------------
# small utilities
# --------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A system failed to start / measure; the message says why."""


class Interrupted(BaseException):
    """Raised from the signal handler (SIGINT/SIGTERM/SIGHUP) to unwind and clean up."""


def tail(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    | " + l for l in lines[-n:])


def run_cmd(argv: list[str], timeout: float = 30.0, env: dict | None = None,
            check: bool = True, cwd: str | None = None) -> subprocess.CompletedProcess:
    """Run a short helper command on the control core, bounded in time."""
    try:
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout, env=env, cwd=cwd,
                            preexec_fn=_pin_ctrl_core)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"command timed out after {timeout}s: {' '.join(argv)}") from exc
    if check and cp.returncode != 0:
        raise BenchError(f"command failed ({cp.returncode}): {' '.join(argv)}\n"
                         f"{cp.stdout}{cp.stderr}")
    return cp


def _pin_ctrl_core() -> None:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {CTRL_CORE})


def median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def rnd(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


class Proc:
    """A background process we started; stopped by its PID only."""

    live: list["Proc"] = []

    def __init__(self, name: str, argv: list[str], logfile: Path, env: dict | None = None,
                 cwd: str | None = None, stdin_pipe: bool = False, ctrl_core: bool = False):
        self.name, self.argv, self.logfile = name, argv, logfile
        self._log = open(logfile, "ab")
        self._log.write(f"# {time.strftime('%F %T')} $ {' '.join(argv)}\n".encode())
        self._log.flush()
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            start_new_session=True,  # terminal Ctrl-C reaches us only; we stop it in order
            preexec_fn=_pin_ctrl_core if ctrl_core else None)
        self.pid = self.popen.pid
        Proc.live.append(self)
        log(f"started {name} pid {self.pid} (log {logfile})")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> int | None:
        if self.alive():
            log(f"stopping {self.name} pid {self.pid} (SIGTERM)")
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log(f"{self.name} pid {self.pid} ignored SIGTERM for {STOP_GRACE_S:.0f}s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(10)
        if self.popen.stdin:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        with contextlib.suppress(OSError):
            self._log.close()
        if self in Proc.live:
            Proc.live.remove(self)
        return self.popen.returncode

    @classmethod
    def stop_all(cls) -> None:
        for p in reversed(list(cls.live)):
            p.stop()


def hugepages() -> tuple[int, int]:
    total = free = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_Total:"):
                total = int(line.split()[1])
            elif line.startswith("HugePages_Free:"):
                free = int(line.split()[1])
    return total, free


# Bytes of hugepage memory one mbuf of ferroswitch's pool takes (2176-byte
# data room, the rte_mbuf header, the mempool's object header), rounded up.
MBUF_FOOTPRINT = 2560


def eal_memory_mb(mbufs: int) -> int:
    """ferroswitch's EAL -m: its mbuf pool plus room for rings, tables, stacks."""
    return max(1024, mbufs * MBUF_FOOTPRINT // (1 << 20) + 512)


HUGEPAGES_SYSCTL = Path("/proc/sys/vm/nr_hugepages")
_hugepages_restore: list[int] = []    # the count to go back to at exit, if raised


def ensure_hugepages(mb: int) -> None:
    """At least `mb` MiB of free 2 MiB hugepages, raising nr_hugepages if
    needed (restored by restore_hugepages() at exit). A scenario whose ports
    hold a million frames needs several GiB; the default set-up has 3."""
    total, free = hugepages()
    need = -(-mb // 2)
    if free >= need:
        return
    want = total + need - free
    log(f"hugepages: {free} free of {total}, {need} needed: nr_hugepages -> {want}")
    if not _hugepages_restore:
        _hugepages_restore.append(total)
    HUGEPAGES_SYSCTL.write_text(f"{want}\n")
    total, free = hugepages()
    if free < need:
        raise BenchError(f"only {free} free 2 MiB hugepages after asking for {want} "
                         f"({need} needed): not enough free memory")


def restore_hugepages() -> None:
    if _hugepages_restore:
        n = _hugepages_restore.pop()
        log(f"hugepages: nr_hugepages back to {n}")
        with contextlib.suppress(OSError):
            HUGEPAGES_SYSCTL.write_text(f"{n}\n")


def core_busy_fraction(core: int, interval: float = 0.5) -> float:
    def sample():
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{core} "):
                    v = [int(x) for x in line.split()[1:]]
                    idle = v[3] + (v[4] if len(v) > 4 else 0)
                    return sum(v), idle
        return 0, 0
    t0, i0 = sample()
    time.sleep(interval)
    t1, i1 = sample()
    return 0.0 if t1 == t0 else 1.0 - (i1 - i0) / (t1 - t0)


def remove_dpdk_runtime_dir(prefix: str) -> None:
    """Remove /var/run/dpdk/<prefix> of a process of ours that has exited."""
    d = DPDK_RUNTIME_ROOT / prefix
    if prefix and d.is_dir() and d.parent == DPDK_RUNTIME_ROOT:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# TSC frequency
# --------------------------------------------------------------------------

def _rdtsc_func():
    # rdtsc; shl rdx,32; or rax,rdx; ret
    code = bytes.fromhex("0f31" "48c1e220" "4809d0" "c3")
    buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    fn = ctypes.CFUNCTYPE(ctypes.c_uint64)(addr)
    fn._keep = buf  # keep the mapping alive
    return fn


def tsc_hz() -> tuple[float | None, str]:
    """TSC frequency in Hz and how it was obtained."""
    bogo = None
    try:
        with open("/proc/cpuinfo") as f:
            txt = f.read()
        m = re.search(r"^bogomips\s*:\s*([\d.]+)", txt, re.M)
        flags = re.search(r"^flags\s*:(.*)$", txt, re.M)
        if m and flags and "constant_tsc" in flags.group(1).split():
            bogo = float(m.group(1)) / 2 * 1e6
    except OSError:
        pass
    if os.uname().machine == "x86_64":
        try:
            rdtsc = _rdtsc_func()
            clk = time.CLOCK_MONOTONIC_RAW
            estimates = []
            for _ in range(3):
                # Bracket each clock read by two TSC reads; keep the tightest pair.
                def pair():
                    best = None
                    for _ in range(20):
                        a = rdtsc(); t = time.clock_gettime_ns(clk); b = rdtsc()
                        if best is None or b - a < best[0]:
                            best = (b - a, (a + b) // 2, t)
                    return best[1], best[2]
                c0, t0 = pair()
                time.sleep(0.1)
                c1, t1 = pair()
                estimates.append((c1 - c0) * 1e9 / (t1 - t0))
            hz = statistics.median(estimates)
            src = "rdtsc vs CLOCK_MONOTONIC_RAW"
            if bogo:
                src += f" (bogomips/2 = {bogo / 1e6:.2f} MHz, {100 * (hz - bogo) / bogo:+.2f}%)"
            return hz, src
        except Exception as exc:  # noqa: BLE001  (fall back below)
            log(f"rdtsc calibration failed ({exc}); falling back to bogomips/2")
    if bogo:
        return bogo, "/proc/cpuinfo bogomips/2"
    return None, "unknown"


# --------------------------------------------------------------------------
# context, scenario, measurement records
# --------------------------------------------------------------------------

@dataclass
class Ctx:
    args: argparse.Namespace
    out: Path
    tsc_hz: float | None
    tsc_src: str
    uid: str                  # unique per bench invocation (pid)
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))


@dataclass
class Port:
    name: str                 # p0, p1, ...
    devargs: str              # net_pcapN,rx_pcap=...,infinite_rx=1 ("" for a vhost port)
    # "dpdk" (a DPDK vdev given by devargs) or VHOST_CLIENT (a vhost-user client
    # port; vhost_server_path is the socket of the VM, set for every run)
    kind: str = "dpdk"
    vhost_server_path: str | None = None
    # OVS-like VLAN mode, all optional (None: plain trunk, the OVS default)
    tag: int | None = None
    trunks: list[int] | None = None
    vlan_mode: str | None = None


@dataclass
class Snapshot:
    t: float                                  # monotonic midpoint of the reads
    ports: dict[str, dict[str, int]]          # name -> rx, tx, rx_dropped, tx_dropped
    extra: dict = field(default_factory=dict)


class Scenario:
    """A traffic + topology definition. Subclass and register in SCENARIOS.

    prepare() writes the traffic and returns the ports; ``directions`` lists
    (in_port, out_port, expected tx/rx ratio; None: reported, not checked).
    Hooks let a scenario customise each system (OVS flows, ferroswitch config,
    extra processes); the defaults build one bridge with all ports and the
    default NORMAL behaviour.

    Per-run extra processes (e.g. VMs): before_start() runs before the system
    starts, after_start() once it is up, after_stop() after it has stopped
    (also on errors and interrupts; it must be idempotent). extra_procs() are
    watched like the system's own processes; extra_snapshot() is read right
    after every system snapshot and extra_results() turns two of them into
    results.
    """

    name = ""
    systems = ["ferroswitch", "ovs-dpdk", "testpmd-io"]
    require_tx = False      # True: no packet transmitted on the output ports is an error
    # --macs N > 1 (N MAC pairs in the generated traffic) makes sense here
    supports_macs = True

    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.ports: list[Port] = []
        self.directions: list[tuple[str, str, float | None]] = []

    def prepare(self) -> None:
        raise NotImplementedError

    @property
    def output_ports(self) -> list[str]:
        return sorted({d[1] for d in self.directions})

    @property
    def input_ports(self) -> list[str]:
        return sorted({d[0] for d in self.directions})

    # --- per-run hooks (extra processes) ------------------------------------
    def before_start(self, system: "System") -> None: pass
    def after_start(self, system: "System") -> None: pass
    def after_stop(self, system: "System") -> None: pass
    def extra_procs(self) -> list["Proc"]: return []
    def extra_snapshot(self) -> dict | None: return None
    def extra_results(self, e0: dict | None, e1: dict | None) -> dict: return {}
    def summary_extra(self) -> dict: return {}     # added to the JSON line of every system
    def fill_tracker(self, system: "Ferroswitch", neutron) -> None:
        """ferroswitch-full: a second VM of the network, in the same group,
        replays fill.pcap once (net_pcap without infinite_rx) before p0
        comes: its connections stay tracked (60 s unanswered) while the
        scenario runs, so the tracker holds --fill-to connections."""
        t0 = time.monotonic()
        filler = neutron("port", "create", "filler-eth0", "--network", "provider",
                         "--mac-address", neutron_traffic.FILLER_MAC,
                         "--fixed-ip",
                         f"subnet=provider-v4,ip-address={neutron_traffic.FILLER_IP}",
                         "--security-group", "bench")
        system.ctl("port", "add", "br-int", "p2",
                   f"net_pcap2,rx_pcap={self.fill_pcap.resolve()}",
                   "--iface-id", filler["id"], timeout=60)
        deadline = time.monotonic() + 120
        while True:
            n = json.loads(system.ctl("conntrack", "stats", "--json").stdout)["connections"]
            if n >= self.fill:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"the tracker holds {n} connections, not {self.fill}, "
                                 "120 s after the filler started")
            time.sleep(0.5)
        log(f"{system.name}: tracker filled with {n} connections "
            f"({time.monotonic() - t0:.1f} s)")

    def window_results(self, system: "System") -> dict: return {}   # read right after the window

    def frames_held(self) -> int:
        """Frames the switch's pool holds for the ports' infinite_rx replay."""
        return self.ctx.args.flows * sum(1 for p in self.ports if p.kind == "dpdk")

    def ovs_hugepages_mb(self) -> int:
        """Hugepage memory OVS-DPDK needs beyond the default set-up's (0: none)."""
        return 0

    def ferroswitch_config_extra(self, system: "Ferroswitch") -> list[str]:
        """More TOML lines for ferroswitch's config (e.g. a [neutron] section)."""
        return []

    # --- per-system hooks ------------------------------------------------
    def ovs_configure(self, ovs: "OvsDpdk") -> None:
        """Create bridges/ports/flows in the private OVS instance."""
        br = ovs.bridge
        ovs.vsctl("add-br", br, "--", "set", "Bridge", br, "datapath_type=netdev")
        if self.ctx.args.macs > 1:
            # OVS learns at most 8192 MACs by default; give it ferroswitch's table size.
            ovs.vsctl("set", "Bridge", br, f"other_config:mac-table-size={FSW_MAC_TABLE_SIZE}")
            log(f"OVS bridge {br}: other_config:mac-table-size={FSW_MAC_TABLE_SIZE} "
                f"(--macs {self.ctx.args.macs})")
        for p in self.ports:
            if p.kind == VHOST_CLIENT:
                cmd = ["add-port", br, p.name, "--", "set", "Interface", p.name,
                       f"type={VHOST_CLIENT}", f"options:vhost-server-path={p.vhost_server_path}"]
            else:
                cmd = ["add-port", br, p.name, "--", "set", "Interface", p.name, "type=dpdk",
                       f"options:dpdk-devargs={p.devargs}"]
            if p.tag is not None:
                cmd += ["--", "set", "Port", p.name, f"tag={p.tag}"]
            if p.trunks:
                cmd += ["--", "set", "Port", p.name, "trunks=" + ",".join(map(str, p.trunks))]
            if p.vlan_mode:
                cmd += ["--", "set", "Port", p.name, f"vlan_mode={p.vlan_mode}"]
            ovs.vsctl(*cmd, timeout=60)

    def ferroswitch_bridges(self, system: "Ferroswitch | None" = None) -> list[dict]:
        ports = []
        for p in self.ports:
            if p.kind == VHOST_CLIENT:
                d = {"name": p.name, "type": VHOST_CLIENT,
                     "vhost_server_path": p.vhost_server_path}
            else:
                d = {"name": p.name, "devargs": p.devargs}
            if p.tag is not None:
                d["tag"] = p.tag
            if p.trunks:
                d["trunks"] = p.trunks
            if p.vlan_mode:
                d["vlan_mode"] = p.vlan_mode
            ports.append(d)
        return [{"name": "br0", "ports": ports}]

    def testpmd_vdevs(self) -> list[str]:
        """testpmd-as-the-switch --vdev arguments, in self.ports order (= port ids)."""
        vdevs, nvhost = [], 0
        for p in self.ports:
            if p.kind == VHOST_CLIENT:
                vdevs.append(f"net_vhost{nvhost},iface={p.vhost_server_path},client=1")
                nvhost += 1
            else:
                vdevs.append(p.devargs)
        return vdevs

    def testpmd_forward_args(self) -> list[str]:
        return ["--forward-mode", "io"]


class L2Normal(Scenario):
    """Two pcap ports on one bridge, default NORMAL (MAC learning) forwarding.

    p0 replays --flows UDP frames fa:16:3e:00:00:01 -> :02, p1 the mirror; a
    correct switch sends everything from p0 to p1 and back (tx/rx = 1.0).
    With --macs N the frames spread over N MAC pairs (frame i: pair i mod N,
    gen_pcap.mac_pairs), so the switch learns and looks up 2N MACs.
    """

    name = "l2-normal"

    def prepare(self) -> None:
        a = self.ctx.args
        tdir = self.ctx.out / "traffic"
        tdir.mkdir(parents=True, exist_ok=True)
        for i, rev in ((0, False), (1, True)):
            path = tdir / f"p{i}.pcap"
            frames = gen_pcap.build_frames(flows=a.flows, frame_size=a.frame_size,
                                           vlan=a.vlan, reverse=rev, macs=a.macs)
            gen_pcap.write_pcap(str(path), frames)
            self.ports.append(Port(f"p{i}", f"net_pcap{i},rx_pcap={path.resolve()},infinite_rx=1"))
        self.directions = [("p0", "p1", 1.0), ("p1", "p0", 1.0)]
        log(f"traffic: {a.flows} flows, {macs_text(a.macs)}, {a.frame_size}-byte frames"
            + (f", VLAN {a.vlan}" if a.vlan is not None else "") + f" -> {tdir}")


def macs_text(macs: int) -> str:
    """How the traffic's MAC pairs read in the log (and a warning if too many)."""
    if macs > 1 and 2 * macs > FSW_MAC_TABLE_SIZE:
        log(f"WARNING: --macs {macs}: {2 * macs} MACs do not fit the switches' MAC tables "
            f"({FSW_MAC_TABLE_SIZE} entries): entries get evicted, lookups miss and flood")
    if macs == 1:
        return "1 MAC pair"
    return f"{macs} MAC pairs ({2 * macs} MACs)"


class TestpmdVm:
    """A "VM": a dpdk-testpmd process whose ports are ``net_virtio_user`` in server
    mode (the vhost-user frontend, i.e. what a guest's virtio-net driver is).

    Its lcores (main and forwarding) are on CTRL_CORE. --in-memory (no hugepage
    files; its memory is shared with the switch as memfd descriptors) and
    --single-file-segments (one region per memseg list, else the backend fails
    with "Too many memory regions"); --iova-mode va (with PA, large rings fail:
    the tx header memzone must be physically contiguous). A server-mode port
    blocks in accept() until the switch connects, and the ports are probed in
    order, so the socket of port N+1 appears only once port N is connected: the
    switch's vhost-user client must retry connecting (DPDK's vhost client
    reconnect does).
    """

    def __init__(self, name: str, sockets: list[Path], macs: list[str], fwd_args: list[str],
                 prefix: str, logfile: Path, queue_size: int = 1024, mem_mb: int = 128,
                 mbufs: int | None = None):
        self.name, self.sockets, self.macs = name, sockets, macs
        self.fwd_args, self.prefix, self.logfile = fwd_args, prefix, logfile
        self.queue_size, self.mem_mb, self.mbufs = queue_size, mem_mb, mbufs
        self.proc: Proc | None = None
        self.tele: Path | None = None

    def start(self) -> None:
        argv = ["dpdk-testpmd", "--lcores", f"0@{CTRL_CORE},1@{CTRL_CORE}", "--no-pci",
                "--in-memory", "--single-file-segments", "--iova-mode", "va", "-m", str(self.mem_mb),
                "--file-prefix", self.prefix]
        for i, (sock, mac) in enumerate(zip(self.sockets, self.macs)):
            argv += ["--vdev", f"net_virtio_user{i},path={sock},server=1,"
                               f"queue_size={self.queue_size},mac={mac}"]
        # The virtio PMD uses min(--rxd/--txd, queue_size) descriptors; testpmd's
        # default (0) means 512. Mbufs: every ring full plus caches and bursts.
        mbufs = self.mbufs or max(16384, 2 * len(self.sockets) * self.queue_size + 8192)
        argv += ["--", *self.fwd_args, "--auto-start", "--nb-cores", "1",
                 "--rxd", str(self.queue_size), "--txd", str(self.queue_size),
                 "--total-num-mbufs", str(mbufs)]
        # Without interactive mode testpmd waits for Enter on stdin: keep a pipe open.
        self.proc = Proc(self.name, argv, self.logfile, stdin_pipe=True, ctrl_core=True)

    def check_alive(self) -> None:
        if self.proc and not self.proc.alive():
            raise BenchError(f"{self.name} (pid {self.proc.pid}) exited with "
                             f"{self.proc.popen.returncode}:\n{tail(self.logfile)}")

    def wait_listening(self, deadline: float) -> None:
        """Until the first server socket exists (the later ones follow one by one)."""
        while not self.sockets[0].exists():
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: {self.sockets[0]} did not appear\n{tail(self.logfile)}")
            time.sleep(0.1)

    def wait_ready(self, deadline: float) -> None:
        """Until every port is connected (testpmd finished probing: telemetry is up)."""
        self.tele = wait_testpmd_telemetry(self.prefix, len(self.sockets), deadline,
                                           self.check_alive)
        if not self.tele:
            raise BenchError(f"{self.name}: not all of {[str(x) for x in self.sockets]} connected "
                             f"(is the switch's vhost-user client up?)\n{tail(self.logfile)}")

    def stats(self) -> list[dict]:
        replies = telemetry_query(self.tele, *[f"/ethdev/stats,{i}" for i in range(len(self.sockets))])
        return [{"rx": r["/ethdev/stats"]["ipackets"], "tx": r["/ethdev/stats"]["opackets"],
                 "rx_bytes": r["/ethdev/stats"]["ibytes"]}
                for r in replies]

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
        remove_dpdk_runtime_dir(self.prefix)


class VhostScenario(Scenario):
    """Base of the vhost-user scenarios: the switch's vhost-user ports are clients
    of "VMs" (TestpmdVm), started afresh for every run before the switch (fresh
    sockets in a fresh directory) and stopped after it. Subclasses fill
    ``self.ports`` (vhost ports with kind=VHOST_CLIENT) and ``self.vm_layout``:
    (VM name, [switch port of each VM port], [MAC of each VM port], testpmd args).
    """

    systems = ["ferroswitch", "ovs-dpdk", "testpmd-vhost"]
    require_tx = True
    OVS_LOCAL_VLAN = 4094
    vm_queue_size = 1024    # virtio ring size of the VMs' ports (QEMU's maximum), all used
    vm_mem_mb = 128         # each VM's EAL memory (-m)
    vm_mbufs: int | None = None   # each VM's --total-num-mbufs (None: enough for its rings)

    def __init__(self, ctx: Ctx):
        super().__init__(ctx)
        self.vm_layout: list[tuple[str, list[str], list[str], list[str]]] = []
        self.vms: list[TestpmdVm] = []
        self.sock_dir: Path | None = None
        self.queue_size = ctx.args.vm_queue_size or self.vm_queue_size
        if ctx.args.vlan is not None:
            raise BenchError(f"--vlan does not apply to {self.name} (the ports are access ports)")

    def port(self, name: str) -> Port:
        return next(p for p in self.ports if p.name == name)

    def summary_extra(self) -> dict:
        return {"vm_queue_size": self.queue_size}

    def ovs_configure(self, ovs: "OvsDpdk") -> None:
        super().ovs_configure(ovs)
        # The bridge's own (LOCAL, TAP) port is a trunk of every VLAN: NORMAL would
        # flood the never-learned destination there too (one more output per
        # packet, which the other systems do not have). Park it in an unused VLAN.
        ovs.vsctl("set", "Port", ovs.bridge, f"tag={self.OVS_LOCAL_VLAN}")

    def before_start(self, system: "System") -> None:
        self.after_stop(system)
        self.sock_dir = Path(tempfile.mkdtemp(prefix="fsw-vhu-"))
        for vm_name, port_names, macs, fwd in self.vm_layout:
            socks = []
            for pn in port_names:
                sock = self.sock_dir / f"{pn}.sock"
                if len(str(sock)) >= 100:
                    raise BenchError(f"vhost-user socket path too long: {sock}")
                self.port(pn).vhost_server_path = str(sock)
                socks.append(sock)
            vm = TestpmdVm(vm_name, socks, macs, fwd, f"{system.prefix}-{vm_name}",
                           system.dir / f"{vm_name}-r{system.run_idx}.log",
                           self.queue_size, self.vm_mem_mb, self.vm_mbufs)
            self.vms.append(vm)
            vm.start()
        deadline = time.monotonic() + self.ctx.args.start_timeout
        for vm in self.vms:
            vm.wait_listening(deadline)

    def after_start(self, system: "System") -> None:
        deadline = time.monotonic() + self.ctx.args.start_timeout
        for vm in self.vms:
            vm.wait_ready(deadline)
        log(f"VMs connected: {', '.join(vm.name for vm in self.vms)}")

    def after_stop(self, system: "System") -> None:
        for vm in reversed(list(self.vms)):
            vm.stop()
            self.vms.remove(vm)
        if self.sock_dir:
            shutil.rmtree(self.sock_dir, ignore_errors=True)
            self.sock_dir = None

    def extra_procs(self) -> list["Proc"]:
        return [vm.proc for vm in self.vms if vm.proc]

    def extra_snapshot(self) -> dict | None:
        try:
            return {vm.name: (time.monotonic(), vm.stats()) for vm in self.vms}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log(f"warning: VM counters unreadable: {exc}")
            return None

    def extra_results(self, e0, e1) -> dict:
        if not e0 or not e1:
            return {}
        vms = {}
        for vm_name, port_names, _, _ in self.vm_layout:
            (t0, st0), (t1, st1) = e0[vm_name], e1[vm_name]
            ports = {}
            for i, pn in enumerate(port_names):
                rx, tx = st1[i]["rx"] - st0[i]["rx"], st1[i]["tx"] - st0[i]["tx"]
                ports[pn] = {"rx": rx, "tx": tx, "rx_mpps": rnd(rx / (t1 - t0) / 1e6),
                             "tx_mpps": rnd(tx / (t1 - t0) / 1e6)}
            vms[vm_name] = {"ports": ports}
        return {"vm": vms}


def _vhost_frames(ctx: Ctx) -> tuple[Path, Path]:
    """p0.pcap (as l2-normal's) and an empty pcap (a net_pcap port that never receives)."""
    a = ctx.args
    tdir = ctx.out / "traffic"
    tdir.mkdir(parents=True, exist_ok=True)
    p0, empty = tdir / "p0.pcap", tdir / "empty.pcap"
    gen_pcap.write_pcap(str(p0), gen_pcap.build_frames(flows=a.flows, frame_size=a.frame_size,
                                                       macs=a.macs))
    gen_pcap.write_pcap(str(empty), [])
    return p0.resolve(), empty.resolve()


class PvpVhost(VhostScenario):
    """Physical-VM-Physical: p0 -> vhu0 -> "VM" -> vhu1 -> p1, one bridge, NORMAL.

    p0: net_pcap replaying --flows UDP frames fa:16:3e:00:00:01 -> :02
    (rx_pcap, infinite_rx=1; with --macs N spread over N MAC pairs as in
    l2-normal: the switch then learns N sources per VLAN, the destinations are
    never learned either way); p1: net_pcap whose rx file is empty (it never
    receives; what it transmits is counted and dropped; net_pcap needs an rx
    or tx stream). The VM is one testpmd with two virtio-user ports, io
    forwarding between them (vhu0 -> vhu1; nothing comes back). VLANs, the same
    for every system that has them (ferroswitch, OVS): p0 and vhu0 access
    VLAN 100, vhu1 and p1 access VLAN 200, so NORMAL cannot flood p0's frames
    anywhere but vhu0, nor the VM's anywhere but p1 (:02 is never learned: the
    frames are flooded, but each VLAN has exactly one other port, which is
    equivalent to unicast). testpmd-vhost (testpmd as the switch, vhost PMD)
    has no VLANs: its ports are p0, vhost0, vhost1, p1 in that order, paired
    (p0,vhost0) and (vhost1,p1) by io forwarding.

    Mpps = packets transmitted on p1 per second. The pcap source never runs
    dry: the switch takes from p0 what its PMD has time for and drops at vhu0
    what does not fit into the VM's ring, so the p0->p1 tx/rx ratio is
    reported, not checked; a run must transmit something on p1. The VM (io
    forwarding alone on core 0) tops out near 8 Mpps here, which caps the
    fastest switches.
    """

    name = "pvp-vhost"

    def prepare(self) -> None:
        p0, empty = _vhost_frames(self.ctx)
        self.ports = [Port("p0", f"net_pcap0,rx_pcap={p0},infinite_rx=1", tag=100),
                      Port("vhu0", "", kind=VHOST_CLIENT, tag=100),
                      Port("vhu1", "", kind=VHOST_CLIENT, tag=200),
                      Port("p1", f"net_pcap1,rx_pcap={empty}", tag=200)]
        self.directions = [("p0", "p1", None)]
        self.vm_layout = [("vm", ["vhu0", "vhu1"], [VM_MAC_BASE + "01", VM_MAC_BASE + "02"],
                           ["--forward-mode", "io"])]
        log(f"traffic: {self.ctx.args.flows} flows, {macs_text(self.ctx.args.macs)}, "
            f"{self.ctx.args.frame_size}-byte frames -> {p0}; VM io-forwards vhu0 -> vhu1")


class Vm2VmVhost(VhostScenario):
    """VM to VM on one host, socket to socket: vm1 -> vhu0 -> switch -> vhu1 -> vm2.

    vm1: testpmd txonly on one virtio-user port (MAC fa:16:3e:00:00:01), one
    UDP flow 10.0.0.1 -> 10.0.1.1 of --frame-size frames (--txpkts size-4) to
    fa:16:3e:00:00:02 (--eth-peer); vm2: testpmd rxonly on one virtio-user port
    with MAC fa:16:3e:00:00:02. Both VMs' lcores share core 0. vhu0 and vhu1 are
    access ports of VLAN 100 (ferroswitch, OVS). vm2 never sends, so :02 is
    never learned and the switch floods: to the only other port of the VLAN,
    i.e. the same as unicast. testpmd-vhost: testpmd io-forwarding between its
    two vhost ports.

    Mpps = packets the switch transmits to vhu1 per second (what vm2 gets);
    the vhu0->vhu1 tx/rx ratio is reported, not checked; a run must transmit
    something on vhu1.

    Both VMs poll on the one core 0, so the kernel runs them in turns of a few
    ms, never at once: while vm2 waits for the core, vhu1's ring fills and the
    switch drops; while vm1 waits, nothing comes in. With 1024-entry rings that
    caps every switch alike at about one ring per turn (~0.13 Mpps here), so
    the VM rings are 32768 entries (the virtio maximum, --vm-queue-size): then
    the VMs' turns on core 0 still set the pace (~3.3 Mpps here), for every
    switch alike: this scenario checks vhost-to-vhost switching works and
    loses little, it does not rank the switches.
    The "vm" block of each run shows the VMs' own rates.
    """

    name = "vm2vm-vhost"
    vm_queue_size = 32768
    supports_macs = False   # vm1's testpmd txonly sends one flow between two MACs

    def prepare(self) -> None:
        fs = self.ctx.args.frame_size
        self.ports = [Port("vhu0", "", kind=VHOST_CLIENT, tag=100),
                      Port("vhu1", "", kind=VHOST_CLIENT, tag=100)]
        self.directions = [("vhu0", "vhu1", None)]
        self.vm_layout = [
            ("vm1", ["vhu0"], ["fa:16:3e:00:00:01"],
             ["--forward-mode", "txonly", "--txpkts", str(fs - gen_pcap.ETH_FCS_LEN),
              "--eth-peer", "0,fa:16:3e:00:00:02", "--tx-ip", "10.0.0.1,10.0.1.1"]),
            ("vm2", ["vhu1"], ["fa:16:3e:00:00:02"], ["--forward-mode", "rxonly"])]
        log(f"traffic: vm1 txonly, one UDP flow of {fs}-byte frames -> vm2 rxonly")


class TsoGen:
    """The sending "VM" of vm-tso: fsw-tsogen (benches/tools/tsogen.rs) on one
    net_virtio_user port in server mode, on CTRL_CORE. It streams one TCP/IPv4
    flow: 64 KB TSO segments (MSS 1448, partial checksum) when the switch
    offers the guest checksum offload and TSO, else MSS-sized frames with full
    checksums, as a Linux guest does with and without them."""

    def __init__(self, socket_path: Path, mac: str, dst_mac: str, prefix: str,
                 logfile: Path, seconds: float):
        self.socket, self.mac, self.dst_mac = socket_path, mac, dst_mac
        self.prefix, self.logfile, self.seconds = prefix, logfile, seconds
        self.proc: Proc | None = None
        self.name = "gen"

    def start(self) -> None:
        exe = _target_dir() / "fsw-tsogen"
        if not exe.is_file():
            raise BenchError(f"{exe} is missing (built with the ferroswitch binaries)")
        self.proc = Proc(self.name, [str(exe), "--socket", str(self.socket), "--mac", self.mac,
                                     "--dst-mac", self.dst_mac, "--seconds", str(self.seconds),
                                     "--file-prefix", self.prefix, "--core", str(CTRL_CORE)],
                         self.logfile, ctrl_core=True)

    def check_alive(self) -> None:
        if self.proc and not self.proc.alive():
            raise BenchError(f"fsw-tsogen (pid {self.proc.pid}) exited with "
                             f"{self.proc.popen.returncode}:\n{tail(self.logfile)}")

    def wait_listening(self, deadline: float) -> None:
        while not self.socket.exists():
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"fsw-tsogen: {self.socket} did not appear\n{tail(self.logfile)}")
            time.sleep(0.1)

    def wait_ready(self, deadline: float) -> None:
        while "connected on" not in self.logfile.read_text(errors="replace"):
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"fsw-tsogen: the switch did not connect\n{tail(self.logfile)}")
            time.sleep(0.1)

    def offloads(self) -> bool | None:
        text = self.logfile.read_text(errors="replace")
        if "offloads on" in text:
            return True
        return False if "offloads off" in text else None

    def stats(self) -> list[dict]:
        return [{"rx": 0, "tx": 0, "rx_bytes": 0}]

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
        remove_dpdk_runtime_dir(self.prefix)


class VmTso(VhostScenario):
    """Guest offloads, guest to guest: gen -> vhu0 -> switch -> vhu1 -> rx.

    gen: fsw-tsogen (TsoGen), one TCP stream of 64 KB TSO segments with
    checksum-offload metadata when the switch offers a guest offloads, else
    MSS-sized (1,448-byte payload) frames it checksums itself. rx: testpmd
    rxonly on one virtio-user port with the TCP/UDP checksum and LRO receive
    offloads (its virtio PMD then negotiates the guest-side checksum and TSO
    features, as a Linux guest's driver does).
    vhu0 and vhu1 are access ports of VLAN 100; rx never sends, so the switch
    floods to the VLAN's one other port (= unicast).

    The figure is goodput: TCP payload bytes rx received per second, in
    Gbit/s (its ibytes minus 54 header bytes per frame it was handed).
    Systems: ferroswitch (userspace_tso on, the default), ferroswitch-no-tso
    (off), ovs-dpdk (no userspace-tso-enable) and ovs-dpdk-tso (with it), one
    PMD core each. Both "VMs" share core 0.
    """

    name = "vm-tso"
    systems = ["ferroswitch", "ferroswitch-no-tso", "ovs-dpdk", "ovs-dpdk-tso"]
    supports_macs = False
    vm_mem_mb = 512         # 4,096 buffers of 64 KB
    vm_mbufs = 4096

    def prepare(self) -> None:
        self.ports = [Port("vhu0", "", kind=VHOST_CLIENT, tag=100),
                      Port("vhu1", "", kind=VHOST_CLIENT, tag=100)]
        self.directions = [("vhu0", "vhu1", None)]
        # TCP and UDP checksum (0x0c) and LRO (0x10) on receive, and 64 KB
        # buffers, as a Linux guest's virtio-net posts large receive buffers
        # when it negotiated TSO (without mergeable buffers, 64 KB ones): a
        # segment fills one (2 KB ones take 33, 16 KB ones 4, and the
        # receiving VM, not the switch, sets the pace).
        self.vm_layout = [("rx", ["vhu1"], ["fa:16:3e:00:00:02"],
                           ["--forward-mode", "rxonly", "--rx-offloads", "0x1c",
                            "--mbuf-size", "65535"])]
        self.gen: TsoGen | None = None
        log("traffic: fsw-tsogen, one TCP stream (64 KB TSO segments when offered, else "
            "MSS-sized frames) -> testpmd rxonly with LRO")

    def before_start(self, system: "System") -> None:
        super().before_start(system)
        sock = self.sock_dir / "vhu0.sock"
        self.port("vhu0").vhost_server_path = str(sock)
        a = self.ctx.args
        self.gen = TsoGen(sock, "fa:16:3e:00:00:01", "fa:16:3e:00:00:02",
                          f"{system.prefix}-gen", system.dir / f"gen-r{system.run_idx}.log",
                          a.warmup + a.duration + a.start_timeout + 30)
        self.gen.start()
        self.gen.wait_listening(time.monotonic() + a.start_timeout)

    def after_start(self, system: "System") -> None:
        super().after_start(system)
        self.gen.wait_ready(time.monotonic() + self.ctx.args.start_timeout)
        log(f"fsw-tsogen connected: offloads {'on' if self.gen.offloads() else 'off'}")

    def after_stop(self, system: "System") -> None:
        if getattr(self, "gen", None):
            self.gen.stop()
            self.gen = None
        super().after_stop(system)

    def extra_procs(self) -> list["Proc"]:
        procs = super().extra_procs()
        if getattr(self, "gen", None) and self.gen.proc:
            procs.append(self.gen.proc)
        return procs

    def ferroswitch_bridges(self, system: "Ferroswitch | None" = None) -> list[dict]:
        brs = super().ferroswitch_bridges(system)
        if system is not None and getattr(system, "userspace_tso", True) is False:
            for br in brs:
                br["userspace_tso"] = False
        return brs

    def extra_results(self, e0, e1) -> dict:
        res = super().extra_results(e0, e1)
        if not e0 or not e1:
            return res
        (t0, st0), (t1, st1) = e0["rx"], e1["rx"]
        pkts = st1[0]["rx"] - st0[0]["rx"]
        nbytes = st1[0]["rx_bytes"] - st0[0]["rx_bytes"]
        window = t1 - t0
        res["goodput_gbps"] = rnd((nbytes - 54 * pkts) * 8 / window / 1e9)
        res["rx_frames_per_s"] = rnd(pkts / window)
        res["rx_avg_frame_bytes"] = rnd(nbytes / pkts, 1) if pkts else None
        res["gen_offloads"] = self.gen.offloads() if getattr(self, "gen", None) else None
        return res


# The flows Neutron's OVS agent and its native (conntrack) firewall driver
# write for one VM port and one provider network, as docs
# NEUTRON-OVS-FLOWS.md (shared/docs) lists them: {lv} local VLAN, {pv}
# provider VLAN, {mac}/{ip} the VM port's. Ofports: br-int VM = 1,
# int-br-phy = 2; br-phy NIC = 1, phy-br-int = 2.
NEUTRON_OVS_FLOWS = {
    "br-phy": """
table=0,priority=4,in_port=2,dl_vlan={lv},actions=mod_vlan_vid:{pv},NORMAL
table=0,priority=2,in_port=2,actions=drop
table=0,priority=1,actions=NORMAL
""",
    "br-int vlan": """
table=0,priority=3,in_port=2,dl_vlan={pv},actions=mod_vlan_vid:{lv},NORMAL
table=0,priority=2,in_port=2,actions=drop
table=0,priority=1,actions=NORMAL
""",
    "br-int common": """
table=0,priority=3,in_port=2,dl_vlan={pv},actions=mod_vlan_vid:{lv},resubmit(,60)
table=0,priority=2,in_port=2,actions=drop
table=0,priority=0,actions=resubmit(,60)
table=60,priority=100,in_port=1,actions=load:1->NXM_NX_REG5[],load:{lv}->NXM_NX_REG6[],resubmit(,71)
table=60,priority=90,dl_vlan={lv},dl_dst={mac},actions=load:1->NXM_NX_REG5[],load:{lv}->NXM_NX_REG6[],strip_vlan,resubmit(,81)
table=60,priority=3,actions=NORMAL
table=71,priority=95,arp,reg5=1,in_port=1,dl_src={mac},arp_spa={ip},actions=resubmit(,94)
table=71,priority=80,udp,reg5=1,in_port=1,tp_src=68,tp_dst=67,actions=resubmit(,73)
table=71,priority=70,udp,reg5=1,in_port=1,tp_src=67,tp_dst=68,actions=resubmit(,93)
table=71,priority=10,reg5=1,in_port=1,actions=resubmit(,93)
table=71,priority=0,actions=drop
table=91,priority=1,actions=resubmit(,94)
table=93,priority=0,actions=drop
table=94,priority=1,actions=NORMAL
""",
    "br-int portsec": """
table=71,priority=65,ip,reg5=1,in_port=1,dl_src={mac},nw_src={ip},actions=resubmit(,73)
table=73,priority=80,reg5=1,actions=resubmit(,91)
table=73,priority=0,actions=drop
table=81,priority=1,reg5=1,actions=output:1
""",
    "br-int sg": """
table=71,priority=65,ct_state=-trk,ip,reg5=1,in_port=1,dl_src={mac},nw_src={ip},actions=ct(table=72,zone=NXM_NX_REG6[0..15])
table=72,priority=77,ct_state=+est-rel-rpl,ip,reg5=1,actions=resubmit(,73)
table=72,priority=77,ct_state=+new-est,ip,reg5=1,actions=resubmit(,73)
table=72,priority=50,ct_state=+inv+trk,actions=resubmit(,93)
table=72,priority=50,ct_mark=0x1,reg5=1,actions=resubmit(,93)
table=72,priority=50,ct_state=+est-rel+rpl,ct_zone={lv},ct_mark=0,reg5=1,actions=resubmit(,91)
table=72,priority=50,ct_state=-new-est+rel-inv,ct_zone={lv},ct_mark=0,reg5=1,actions=resubmit(,91)
table=72,priority=40,ct_state=-est,reg5=1,actions=resubmit(,93)
table=72,priority=40,ct_state=+est,ip,reg5=1,actions=ct(commit,zone=NXM_NX_REG6[0..15],exec(load:1->NXM_NX_CT_MARK[]))
table=72,priority=0,actions=drop
table=73,priority=100,reg6={lv},dl_dst={mac},actions=load:1->NXM_NX_REG5[],resubmit(,81)
table=73,priority=90,ct_state=+new-est,ip,reg5=1,actions=ct(commit,zone=NXM_NX_REG6[0..15]),resubmit(,91)
table=73,priority=80,reg5=1,actions=resubmit(,91)
table=73,priority=0,actions=drop
table=81,priority=100,arp,reg5=1,actions=output:1
table=81,priority=95,ct_state=-trk,ip,reg5=1,actions=ct(table=82,zone=NXM_NX_REG6[0..15])
table=81,priority=80,ct_state=+trk,reg5=1,actions=resubmit(,82)
table=81,priority=0,actions=drop
table=82,priority=77,ct_state=+new-est,tcp,reg5=1,tp_dst=22,actions=ct(commit,zone=NXM_NX_REG6[0..15]),output:1
table=82,priority=77,ct_state=+est-rel-rpl,tcp,reg5=1,tp_dst=22,actions=output:1
table=82,priority=77,ct_state=+new-est,icmp,reg5=1,actions=ct(commit,zone=NXM_NX_REG6[0..15]),output:1
table=82,priority=77,ct_state=+est-rel-rpl,icmp,reg5=1,actions=output:1
table=82,priority=50,ct_state=+inv+trk,actions=resubmit(,93)
table=82,priority=50,ct_mark=0x1,reg5=1,actions=resubmit(,93)
table=82,priority=50,ct_state=+est-rel+rpl,ct_zone={lv},ct_mark=0,reg5=1,actions=output:1
table=82,priority=50,ct_state=-new-est+rel-inv,ct_zone={lv},ct_mark=0,reg5=1,actions=output:1
table=82,priority=40,ct_state=-est,reg5=1,actions=resubmit(,93)
table=82,priority=40,ct_state=+est,ip,reg5=1,actions=ct(commit,zone=NXM_NX_REG6[0..15],exec(load:1->NXM_NX_CT_MARK[]))
table=82,priority=0,actions=drop
""",
}
# Which br-int blocks each variant adds up (br-phy is the same for all).
NEUTRON_VARIANTS = {
    "sg": ["br-int common", "br-int sg"],         # port security + stateful security group
    "portsec": ["br-int common", "br-int portsec"],   # OVS only: no ferroswitch equivalent
    "vlan": ["br-int vlan"],                      # VLAN translation only
}


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Neutron(Scenario):
    """PEERS.md's `neutron` scenario: a VM port and a provider NIC under
    Neutron's pipeline, traffic from scripts/neutron_traffic.py (its
    docstring lists every frame and its fate).

    p0 is the VM port (untagged), p1 the provider NIC (VLAN 3029, a local VLAN
    inside). --variant sg (default): the VM's Neutron port has port security
    and the group "egress any, ingress TCP 22 and ICMP", a correct switch
    forwards p0->p1 0.9125 and p1->p0 0.900 (with --connections 1024);
    --variant vlan: port security off, VLAN translation only, everything
    passes. --variant portsec is OVS's anti-spoofing without conntrack
    (PEERS.md's middle row), measured for OVS only.

    ovs-dpdk: br-int (fail_mode=secure; p0 = ofport 1 with tag=2, patch
    int-br-phy = 2) and br-phy (p1 = 1, patch phy-br-int = 2) programmed with
    exactly NEUTRON_OVS_FLOWS for the variant (written to <out>/ovs-dpdk/).
    ferroswitch (and ferroswitch-baseline): its Neutron API, on a fresh SQLite
    file per run, gets a provider VLAN network on physnet1 (bridge_mappings:
    p1 is the uplink), a subnet, the group and the VM's port with the
    traffic's MAC and IP, through `vswitchctl`; then p0 is added with the
    port's iface-id (os-vif's way), so no frame crosses before the policy is
    in place. ferroswitch-l2: the same ports as plain L2 ports, no Neutron
    (p0 access VLAN 1, p1 trunk translating 3029 <-> 1): what
    port_security_enabled=false must cost no more than. ferroswitch-full:
    as ferroswitch, but first a second VM port of the group (p2, net_pcap
    replaying fill.pcap once) opens connections until the tracker holds
    --fill-to (default 1,000,000) with the scenario's own; the same traffic
    is then measured among a million tracked connections.
    """

    name = "neutron"
    systems = ["ferroswitch", "ferroswitch-l2", "ferroswitch-full", "ovs-dpdk"]
    require_tx = True
    supports_macs = False
    ovs_local_vlan = 2
    fsw_local_vlan = 1        # the first local VLAN ferroswitch's Neutron service hands out

    def prepare(self) -> None:
        a = self.ctx.args
        tdir = self.ctx.out / "traffic"
        tdir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        frames = neutron_traffic.build(a.connections)
        self.held = 0
        for i, fr in enumerate(frames):
            path = tdir / f"p{i}.pcap"
            gen_pcap.write_pcap(str(path), fr)
            self.held += len(fr)
            self.ports.append(Port(f"p{i}", f"net_pcap{i},rx_pcap={path.resolve()},infinite_rx=1"))
        if a.variant == "sg":
            r01, r10 = neutron_traffic.expected_ratios(a.connections)
        else:
            r01 = r10 = 1.0
        self.directions = [("p0", "p1", rnd(r01, 4)), ("p1", "p0", rnd(r10, 4))]
        log(f"traffic: neutron, {a.connections} UDP connections, {len(frames[0])} + "
            f"{len(frames[1])} frames, variant {a.variant} -> {tdir} "
            f"({time.monotonic() - t0:.1f} s)")
        # ferroswitch-full: a second VM fills the tracker up to --fill-to.
        self.fill = max(0, a.fill_to - (a.connections + 128))
        self.fill_pcap = tdir / "fill.pcap"
        if "ferroswitch-full" in a.systems:
            if a.variant != "sg":
                raise BenchError("ferroswitch-full needs --variant sg (a tracker to fill)")
            gen_pcap.write_pcap(str(self.fill_pcap), neutron_traffic.fill(self.fill))
            log(f"traffic: {self.fill} filler connections -> {self.fill_pcap}")

    def frames_held(self) -> int:
        return self.held

    def summary_extra(self) -> dict:
        return {"variant": self.ctx.args.variant, "connections": self.ctx.args.connections,
                "fill_to": self.ctx.args.fill_to}

    # --- OVS-DPDK: the agent's bridges and flows -----------------------------
    def ovs_configure(self, ovs: "OvsDpdk") -> None:
        a = self.ctx.args
        br_int, br_phy = ovs.bridge + "i", ovs.bridge + "p"
        ovs.bridges = [br_int, br_phy]
        for br in (br_int, br_phy):
            ovs.vsctl("add-br", br, "--", "set", "Bridge", br, "datapath_type=netdev",
                      "fail_mode=secure")
        p0, p1 = self.ports
        for br, port, ofport, extra in ((br_int, p0, 1, ["--", "set", "Port", "p0",
                                                        f"tag={self.ovs_local_vlan}"]),
                                        (br_phy, p1, 1, [])):
            ovs.vsctl("add-port", br, port.name, "--", "set", "Interface", port.name,
                      "type=dpdk", f"options:dpdk-devargs={port.devargs}",
                      f"ofport_request={ofport}", *extra, timeout=60)
        for br, name, peer in ((br_int, "int-br-phy", "phy-br-int"),
                               (br_phy, "phy-br-int", "int-br-phy")):
            ovs.vsctl("add-port", br, name, "--", "set", "Interface", name, "type=patch",
                      f"options:peer={peer}", "ofport_request=2")
        subst = {"lv": self.ovs_local_vlan, "pv": neutron_traffic.PROVIDER_VLAN,
                 "mac": neutron_traffic.VM_MAC, "ip": neutron_traffic.VM_IP}
        for br, blocks in ((br_phy, ["br-phy"]), (br_int, NEUTRON_VARIANTS[a.variant])):
            text = "".join(NEUTRON_OVS_FLOWS[b] for b in blocks).format(**subst)
            path = ovs.logdir / f"flows-{br}.txt"
            path.write_text(text.lstrip())
            ovs.ofctl("del-flows", br)
            ovs.ofctl("add-flows", br, str(path))
            dump = ovs.ofctl("dump-flows", br, "--no-stats").stdout
            (ovs.logdir / f"dump-flows-{br}.txt").write_text(dump)
            want = len(text.split())
            got = sum(1 for line in dump.splitlines() if "actions=" in line)
            if got != want:
                raise BenchError(f"OVS {br}: {got} flows installed, {want} written ({path})")
        log(f"OVS: {br_int} (p0 tag={self.ovs_local_vlan}) and {br_phy} (p1), "
            f"Neutron flows of variant {a.variant}")

    # --- ferroswitch: the Neutron model through its own API ---------------
    def ovs_hugepages_mb(self) -> int:
        """Hugepage memory OVS-DPDK needs beyond the default set-up's (0: none)."""
        return 0

    def ferroswitch_config_extra(self, system: "Ferroswitch") -> list[str]:
        if system.plain_l2:
            return []
        system.api = f"http://127.0.0.1:{free_tcp_port()}"
        db = system.dir / f"neutron-r{system.run_idx}.db"
        for f in system.dir.glob(db.name + "*"):
            f.unlink()
        return ["[neutron]", f"listen = {json.dumps(system.api.removeprefix('http://'))}",
                f"database = {json.dumps(str(db))}",
                'network_vlan_ranges = ["physnet1:3000:3099"]',
                'bridge_mappings = ["physnet1:p1"]', ""]

    def ferroswitch_bridges(self, system: "Ferroswitch | None" = None) -> list[dict]:
        p0, p1 = self.ports
        if system is not None and system.plain_l2:
            lv = self.fsw_local_vlan
            return [{"name": "br-int", "ports": [
                {"name": "p0", "devargs": p0.devargs, "tag": lv},
                {"name": "p1", "devargs": p1.devargs, "trunks": [lv],
                 "vlan_translations": [[neutron_traffic.PROVIDER_VLAN, lv]]}]}]
        # p0 comes once Neutron holds its port (after_start)
        return [{"name": "br-int", "ports": [{"name": "p1", "devargs": p1.devargs}]}]

    def after_start(self, system: "System") -> None:
        if not isinstance(system, Ferroswitch) or system.plain_l2:
            return
        a = self.ctx.args

        def neutron(*args) -> dict:
            out = system.ctl(*args, "--api", system.api, "--json", timeout=30).stdout
            return json.loads(out) if out.strip() else {}
        t0 = time.monotonic()
        neutron("network", "create", "provider", "--provider-network-type", "vlan",
                "--provider-physical-network", "physnet1",
                "--provider-segment", str(neutron_traffic.PROVIDER_VLAN))
        neutron("subnet", "create", "provider-v4", "--network", "provider",
                "--subnet-range", neutron_traffic.SUBNET)
        port_args = ["port", "create", "vm1-eth0", "--network", "provider",
                     "--mac-address", neutron_traffic.VM_MAC,
                     "--fixed-ip", f"subnet=provider-v4,ip-address={neutron_traffic.VM_IP}"]
        if a.variant == "sg":
            # A new group allows all egress (IPv4 and IPv6), as Neutron's do.
            neutron("security-group", "create", "bench")
            neutron("security-group", "rule", "create", "bench", "--ingress",
                    "--protocol", "tcp", "--dst-port", "22")
            neutron("security-group", "rule", "create", "bench", "--ingress",
                    "--protocol", "icmp")
            port_args += ["--security-group", "bench"]
        else:
            port_args += ["--disable-port-security", "--no-security-group"]
        if system.fill:
            self.fill_tracker(system, neutron)
        port = neutron(*port_args)
        system.ctl("port", "add", "br-int", "p0", self.ports[0].devargs,
                   "--iface-id", port["id"], timeout=60)
        deadline = time.monotonic() + 30
        while (status := neutron("port", "show", port["id"]).get("status")) != "ACTIVE":
            if time.monotonic() > deadline:
                raise BenchError(f"Neutron port {port['id']} is {status}, not ACTIVE, 30 s "
                                 f"after p0 was added\n{tail(system.proc.logfile)}")
            time.sleep(0.2)
        log(f"{system.name}: Neutron network, subnet, "
            + ("group, " if a.variant == "sg" else "")
            + f"port {port['id']} ACTIVE on p0 ({time.monotonic() - t0:.1f} s)")

    def window_results(self, system: "System") -> dict:
        """How many connections each tracker holds at the end of the window."""
        if isinstance(system, Ferroswitch) and not system.plain_l2:
            st = json.loads(system.ctl("conntrack", "stats", "--json").stdout)
            return {"conntrack": {k: st.get(k) for k in (
                "connections", "max_connections", "per_state", "refused_full", "invalid")}}
        if isinstance(system, OvsDpdk):
            txt = system.appctl("dpctl/ct-stats-show")
            m = re.search(r"Total:\s*(\d+)", txt)
            return {"conntrack": {"connections": int(m.group(1)) if m else 0}}
        return {}


def flow_traffic(flows: int, frame_size: int, reverse: bool, start: int = 0) -> list[bytes]:
    """`flows` distinct UDP 5-tuples between fa:16:3e:00:00:01 (10.0.0.0/16
    side) and :02 (10.0.1.1:5001), flows start .. start + flows - 1: flow i
    comes from 10.0.(2 + (i >> 14) / 256).((i >> 14) % 256), port 1024 +
    (i & 0x3fff), so a million flows need 62 source addresses."""
    a_mac, b_mac = gen_pcap.mac_pairs(1)[0]
    dip = gen_pcap.parse_ipv4("10.0.1.1")
    record_len = frame_size - gen_pcap.ETH_FCS_LEN
    frames = []
    for i in range(start, start + flows):
        sip = bytes([10, 0, 2 + (i >> 14) // 256, (i >> 14) % 256])
        sport = 1024 + (i & 0x3FFF)
        if reverse:
            frames.append(gen_pcap.udp_frame(b_mac, a_mac, dip, sip, 5001, sport, record_len,
                                             ip_id=i & 0xFFFF))
        else:
            frames.append(gen_pcap.udp_frame(a_mac, b_mac, sip, dip, sport, 5001, record_len,
                                             ip_id=i & 0xFFFF))
    return frames


def flow_rules(rules: int, seed: int = 15, wide: bool = False, pairs: int = 1) -> list[str]:
    """`rules` flows in ovs-ofctl syntax, the same for both switches: the
    two per port pair that carry the traffic (ofport 2j+1 -> 2j+2 and back,
    priority 10) and a default drop, and the rest ACL-like rules at higher
    priorities that the
    traffic never matches (its sources are in 10.0.0.0/8, theirs in
    172.16.0.0/12): 5-tuples with /16, /24 or /32 prefixes on each address,
    TCP or UDP, with or without a destination port (18 masks), and every
    tenth a MAC rule (dl_src). So a lookup must search every subtable whose
    rules outrank the traffic's. `rules` = 1: one flow, `udp,actions=FLOOD`
    (the other port of a two-port bridge); with more than one pair,
    `udp,actions=in_port` (each frame back out of its own port: one flow
    that forwards every frame exactly once). `wide`: every rule also matches
    reg0=0, true of every packet in table 0, so the decisions are the same
    and Ferroswitch's classifier works over its whole (wide) field layout."""
    out = _flow_rules(rules, seed, pairs)
    if wide:
        out = [re.sub(r"^(priority=\d+)", r"\1,reg0=0", line) for line in out]
    return out


def _flow_rules(rules: int, seed: int, pairs: int) -> list[str]:
    if rules < 1:
        raise BenchError("--rules must be at least 1")
    if rules == 1:
        return ["priority=10,udp,actions=FLOOD" if pairs == 1
                else "priority=10,udp,actions=in_port"]
    if rules < 2 * pairs + 1:
        raise BenchError(f"--rules: 1, or at least {2 * pairs + 1} (the forwarding flows of "
                         f"{pairs} port pair(s) and the default)")
    rng = random.Random(seed)
    out = []
    for j in range(pairs):
        a, b = 2 * j + 1, 2 * j + 2
        out += [f"priority=10,udp,in_port={a},nw_dst=10.0.1.0/24,actions=output:{b}",
                f"priority=10,udp,in_port={b},nw_dst=10.0.0.0/16,actions=output:{a}"]
    out.append("priority=0,actions=drop")
    seen = set()
    while len(out) < rules:
        prio = rng.randrange(100, 30000)
        if len(out) % 10 == 9:
            mac = "02:%02x:%02x:%02x:%02x:%02x" % tuple(rng.randrange(256) for _ in range(5))
            key = (prio, mac)
            line = f"priority={prio},dl_src={mac},actions=drop"
        else:
            def prefix() -> str:
                length = rng.choice((16, 24, 32))
                addr = (172 << 24) | (16 << 16) | rng.randrange(1 << 20)
                addr &= (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
                return f"{addr >> 24}.{addr >> 16 & 255}.{addr >> 8 & 255}.{addr & 255}/{length}"
            proto = rng.choice(("tcp", "udp"))
            src, dst = prefix(), prefix()
            port = f",tp_dst={rng.randrange(1, 65536)}" if rng.random() < 0.5 else ""
            key = (prio, proto, src, dst, port)
            line = f"priority={prio},{proto},nw_src={src},nw_dst={dst}{port},actions=drop"
        if key in seen:
            continue
        seen.add(key)
        out.append(line)
    return out


def rss_kib(pid: int) -> int:
    """A process's resident set (VmRSS), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# Frames one pcap port of the flows scenario replays at most. OVS-DPDK puts
# every port whose MTU rounds to the same 1 KiB buffer size in one shared
# pool of 262,144 mbufs, and net_pcap's infinite_rx holds its whole file in
# that pool; so past this many flows each way the traffic is split over
# port pairs, each port with its own MTU and so its own pool.
OVS_SHARED_POOL_MBUFS = 262_144     # OVS's MAX_NB_MBUF
OVS_MTU_BUCKET = 1024               # OVS rounds frame sizes to this for its pools
FLOWS_PER_PCAP_PORT = 250_000       # a pool's mbufs, less room for bursts and caches


def ovs_pool_mtu(n: int) -> int:
    """The mtu_request that puts the flows scenario's port n in a pool of its own."""
    return 1500 + OVS_MTU_BUCKET * n


class Flows(Scenario):
    """OpenFlow tables on pcap ports (issue 15): --rules flows (flow_rules:
    ACL-like 5-tuple rules with prefixes, MAC rules, the forwarding flows, a
    default drop) and --flows distinct UDP flows (flow_traffic) each way; a
    correct switch sends everything from p0 to p1 and back (tx/rx = 1.0).

    Up to FLOWS_PER_PCAP_PORT flows each way, one port pair (p0, p1).
    Beyond, ceil(flows / FLOWS_PER_PCAP_PORT) pairs (p0, p1), (p2, p3), ...
    share the flows, each pair with its own two forwarding flows, and OVS
    gives port n `mtu_request` 1500 + 1024 n so that each port gets a pool
    of its own (the frames are 64 bytes; the MTU only picks the pool).
    Both switches get the same ports and rules.

    Both switches get the same flow text (<out>/traffic/flows.txt), OVS
    through `ovs-ofctl del-flows` + `add-flows`, ferroswitch through
    `vswitchctl del-flows` + `add-flows --volatile` on a bridge whose ports
    are added after the flows (so no frame crosses before). Each run
    records the wall time of that add-flows (`install_s`) and what it added
    to the switch process's resident memory (`rss_per_rule_bytes`).
    """

    name = "flows"
    systems = ["ferroswitch", "ovs-dpdk"]
    require_tx = True
    supports_macs = False

    def prepare(self) -> None:
        a = self.ctx.args
        tdir = self.ctx.out / "traffic"
        tdir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        self.pairs = -(-a.flows // FLOWS_PER_PCAP_PORT)
        for j in range(self.pairs):
            start = j * a.flows // self.pairs
            count = (j + 1) * a.flows // self.pairs - start
            for i, rev in ((2 * j, False), (2 * j + 1, True)):
                path = tdir / f"p{i}.pcap"
                gen_pcap.write_pcap(str(path), flow_traffic(count, a.frame_size, rev, start))
                self.ports.append(Port(f"p{i}",
                                       f"net_pcap{i},rx_pcap={path.resolve()},infinite_rx=1"))
        self.flows_file = tdir / "flows.txt"
        self.rules = flow_rules(a.rules, wide=a.wide, pairs=self.pairs)
        self.flows_file.write_text("\n".join(self.rules) + "\n")
        if a.rules == 1 and self.pairs > 1:
            # actions=in_port: each port sends back what it receives.
            self.directions = [(p.name, p.name, 1.0) for p in self.ports]
        else:
            self.directions = [d for j in range(self.pairs)
                               for d in ((f"p{2 * j}", f"p{2 * j + 1}", 1.0),
                                         (f"p{2 * j + 1}", f"p{2 * j}", 1.0))]
        log(f"traffic: {a.flows} UDP flows each way over {self.pairs} port pair(s), "
            f"{a.frame_size}-byte frames; {len(self.rules)} rules -> {tdir} "
            f"({time.monotonic() - t0:.1f} s)")

    def frames_held(self) -> int:
        return 2 * self.ctx.args.flows

    def ovs_hugepages_mb(self) -> int:
        """Hugepage memory OVS's pools need: one of 262,144 mbufs per port
        beyond one pair, each buffer its MTU's 1 KiB bucket plus headroom,
        header and dp_packet (about 640 bytes), plus the 1 GiB socket-mem."""
        if self.pairs == 1:
            return 0
        per_port = [OVS_SHARED_POOL_MBUFS * (2 * OVS_MTU_BUCKET + OVS_MTU_BUCKET * n + 640)
                    for n in range(len(self.ports))]
        return 1024 + 512 + sum(per_port) // (1 << 20)

    def summary_extra(self) -> dict:
        return {"rules": self.ctx.args.rules, "wide": self.ctx.args.wide}

    def ovs_configure(self, ovs: "OvsDpdk") -> None:
        br = ovs.bridge
        ovs.vsctl("add-br", br, "--", "set", "Bridge", br, "datapath_type=netdev")
        for i, p in enumerate(self.ports):
            mtu = [f"mtu_request={ovs_pool_mtu(i)}"] if self.pairs > 1 else []
            ovs.vsctl("add-port", br, p.name, "--", "set", "Interface", p.name, "type=dpdk",
                      f"options:dpdk-devargs={p.devargs}", f"ofport_request={i + 1}", *mtu,
                      timeout=120)
        ovs.ofctl("del-flows", br)
        pid = ovs.vswitchd.pid
        rss0 = rss_kib(pid)
        t0 = time.monotonic()
        ovs.ofctl("add-flows", br, str(self.flows_file), timeout=1800)
        ovs.flow_install_s = time.monotonic() - t0
        time.sleep(1)
        ovs.flow_rss_kib = rss_kib(pid) - rss0
        got = sum(1 for line in ovs.ofctl("dump-flows", br, "--no-stats", timeout=600)
                  .stdout.splitlines() if "actions=" in line)
        if got != len(self.rules):
            raise BenchError(f"OVS {br}: {got} flows installed, {len(self.rules)} written")
        log(f"OVS: {got} flows in {ovs.flow_install_s:.2f} s")

    def ferroswitch_bridges(self, system: "Ferroswitch | None" = None) -> list[dict]:
        # p0 and p1 come after the flows (after_start): ports 1 and 2.
        return [{"name": "br0", "ports": []}]

    def after_start(self, system: "System") -> None:
        if not isinstance(system, Ferroswitch):
            return
        system.ctl("del-flows", "br0")
        pid = system.proc.pid
        rss0 = rss_kib(pid)
        t0 = time.monotonic()
        system.ctl("add-flows", "br0", str(self.flows_file), "--volatile", timeout=1800)
        system.flow_install_s = time.monotonic() - t0
        time.sleep(1)
        system.flow_rss_kib = rss_kib(pid) - rss0
        n = len(json.loads(system.ctl("dump-flows", "br0", "--json", timeout=600).stdout))
        if n != len(self.rules):
            raise BenchError(f"ferroswitch br0: {n} flows installed, {len(self.rules)} written")
        for p in self.ports:
            system.ctl("port", "add", "br0", p.name, p.devargs, timeout=60)
        log(f"{system.name}: {n} flows in {system.flow_install_s:.2f} s, then "
            f"{', '.join(p.name for p in self.ports)}")

    def window_results(self, system: "System") -> dict:
        install = getattr(system, "flow_install_s", None)
        rss = getattr(system, "flow_rss_kib", None)
        return {"install_s": rnd(install, 3),
                "rss_per_rule_bytes": rnd(rss * 1024 / len(self.rules), 1)
                if rss is not None else None}


# The vxlan scenario's underlay: this switch's tunnel endpoint and the remote
# one, in RFC 2544's benchmarking range (OVS's endpoint address sits on a TAP
# in this host's namespace while it runs: it must not be any real network).
VXLAN_PREFIX = "198.18.0.0/24"
VXLAN_LOCAL_IP, VXLAN_LOCAL_MAC = "198.18.0.1", "02:fe:00:00:00:01"
VXLAN_REMOTE_IP, VXLAN_REMOTE_MAC = "198.18.0.2", "02:fe:00:00:00:02"
VXLAN_VNI = 4242
VXLAN_PORT = 4789


def vxlan_frame(inner: bytes, sport: int) -> bytes:
    """``inner`` as the remote endpoint sends it to this switch's endpoint:
    Ethernet, IPv4 (no DF), UDP ``sport`` -> 4789 with checksum 0 (RFC
    7348's choice over IPv4), VXLAN with the I flag and VXLAN_VNI."""
    vxlan = struct.pack("!BxxxI", 0x08, VXLAN_VNI << 8)
    udp_len = 8 + len(vxlan) + len(inner)
    udp = struct.pack("!HHHH", sport, VXLAN_PORT, udp_len, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0,
                     gen_pcap.parse_ipv4(VXLAN_REMOTE_IP), gen_pcap.parse_ipv4(VXLAN_LOCAL_IP))
    ip = ip[:10] + struct.pack("!H", gen_pcap.csum16(ip)) + ip[12:]
    eth = (gen_pcap.parse_mac(VXLAN_LOCAL_MAC) + gen_pcap.parse_mac(VXLAN_REMOTE_MAC)
           + struct.pack("!H", 0x0800))
    return eth + ip + udp + vxlan + inner


class Vxlan(Scenario):
    """A VXLAN tenant network's fast path (issue 16): p0, a VM's port on
    the integration bridge, replays --flows UDP flows of --frame-size
    frames fa:16:3e:00:00:01 -> :02 (to a VM behind the remote endpoint);
    p1, the underlay port on the physical bridge, replays the mirror
    frames encapsulated by the remote endpoint 198.18.0.2 to this switch's
    198.18.0.1 (VNI 4242, a UDP source port per flow). A correct switch
    encapsulates everything from p0 out of p1 and decapsulates everything
    from p1 out of p0 (tx/rx = 1.0 both ways; the frames leave p1 50 bytes
    longer).

    Ferroswitch: br-int (p0, a `vxlan` port to 198.18.0.2, key 4242, next
    hop 02:fe:00:00:00:02) and br-phy (p1 with tunnel_ip 198.18.0.1 and
    tunnel_mac 02:fe:00:00:00:01). OVS-DPDK: its userspace tunnelling as
    its documentation sets it up: br-int (p0, `type=vxlan` with
    options:remote_ip and options:key), br-phy (p1, other_config:hwaddr
    02:fe:00:00:00:01) whose internal port (a TAP OVS makes and removes)
    holds 198.18.0.1/24 (the kernel's connected route tells OVS where
    198.18.0.2 is), and the next hop's MAC set with `tnl/arp/set`. The run
    refuses to start if this host already has an address or route in
    198.18.0.0/24.
    """

    name = "vxlan"
    systems = ["ferroswitch", "ovs-dpdk"]
    require_tx = True
    supports_macs = False
    # The underlay: its prefix, the two endpoints, how the remote one
    # encapsulates, and what OVS needs on top of the vxlan scenario's setup.
    prefix, prefix_len, ip_flag = VXLAN_PREFIX, 24, "-4"
    local_ip, remote_ip = VXLAN_LOCAL_IP, VXLAN_REMOTE_IP
    underlay_frame = staticmethod(vxlan_frame)
    ovs_tunnel_options: list[str] = []
    ovs_neighbour_cmd = "tnl/arp/set"

    def add_endpoint_address(self, dev: str) -> None:
        run_cmd(["ip", "addr", "add", f"{self.local_ip}/{self.prefix_len}", "dev", dev])

    def prepare(self) -> None:
        a = self.ctx.args
        tdir = self.ctx.out / "traffic"
        tdir.mkdir(parents=True, exist_ok=True)
        vm = gen_pcap.build_frames(flows=a.flows, frame_size=a.frame_size)
        back = gen_pcap.build_frames(flows=a.flows, frame_size=a.frame_size, reverse=True)
        underlay = [self.underlay_frame(f, 49152 + i % 16384) for i, f in enumerate(back)]
        for i, frames in ((0, vm), (1, underlay)):
            path = tdir / f"p{i}.pcap"
            gen_pcap.write_pcap(str(path), frames)
            self.ports.append(Port(f"p{i}", f"net_pcap{i},rx_pcap={path.resolve()},infinite_rx=1"))
        self.directions = [("p0", "p1", 1.0), ("p1", "p0", 1.0)]
        log(f"traffic: {a.flows} UDP flows each way, {a.frame_size}-byte inner frames; "
            f"p1's encapsulated by {self.remote_ip} (VNI {VXLAN_VNI}) -> {tdir}")

    def ovs_configure(self, ovs: "OvsDpdk") -> None:
        br, phy = ovs.bridge, ovs.bridge + "p"
        ovs.bridges.append(phy)
        p0, p1 = self.ports
        ovs.vsctl("add-br", br, "--", "set", "Bridge", br, "datapath_type=netdev")
        ovs.vsctl("add-port", br, p0.name, "--", "set", "Interface", p0.name, "type=dpdk",
                  f"options:dpdk-devargs={p0.devargs}", timeout=60)
        ovs.vsctl("add-port", br, "vx", "--", "set", "Interface", "vx", "type=vxlan",
                  f"options:remote_ip={self.remote_ip}", f"options:key={VXLAN_VNI}",
                  *self.ovs_tunnel_options)
        ovs.vsctl("add-br", phy, "--", "set", "Bridge", phy, "datapath_type=netdev",
                  f"other_config:hwaddr={VXLAN_LOCAL_MAC}")
        ovs.vsctl("add-port", phy, p1.name, "--", "set", "Interface", p1.name, "type=dpdk",
                  f"options:dpdk-devargs={p1.devargs}", timeout=60)
        # The bridge's internal port (a TAP OVS made, gone with the bridge)
        # holds the endpoint address; never on top of a real network.
        taken = run_cmd(["ip", self.ip_flag, "route", "show", "table", "all", "match",
                         self.prefix]).stdout
        clash = [ln for ln in taken.splitlines()
                 if not ln.startswith(("default", "multicast", "local fe80", "fe80"))]
        if clash:
            raise BenchError(f"this host already routes {self.prefix}: {clash}")
        self.add_endpoint_address(phy)
        run_cmd(["ip", "link", "set", phy, "up"])
        ovs.appctl(self.ovs_neighbour_cmd, phy, self.remote_ip, VXLAN_REMOTE_MAC)
        deadline = time.monotonic() + 10
        while True:
            routes = ovs.appctl("ovs/route/show")
            if f"{self.prefix} dev {phy}" in routes:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"OVS has no route to {self.remote_ip} over {phy}:\n{routes}")
            time.sleep(0.2)
        (ovs.logdir / "tnl-ports.txt").write_text(ovs.appctl("tnl/ports/show", "-v"))

    def ferroswitch_bridges(self, system: "Ferroswitch | None" = None) -> list[dict]:
        p0, p1 = self.ports
        return [{"name": "br-int", "ports": [
                    {"name": p0.name, "devargs": p0.devargs},
                    {"name": "vx", "type": "vxlan", "remote_ip": self.remote_ip,
                     "key": VXLAN_VNI, "remote_mac": VXLAN_REMOTE_MAC}]},
                {"name": "br-phy", "ports": [
                    {"name": p1.name, "devargs": p1.devargs,
                     "tunnel_ip": f"{self.local_ip}/{self.prefix_len}",
                     "tunnel_mac": VXLAN_LOCAL_MAC}]}]


# The vxlan6 scenario's underlay: RFC 5180's IPv6 benchmarking range.
VXLAN6_PREFIX = "2001:2::/64"
VXLAN6_LOCAL_IP, VXLAN6_REMOTE_IP = "2001:2::1", "2001:2::2"


def vxlan6_frame(inner: bytes, sport: int) -> bytes:
    """``inner`` as the remote endpoint sends it over IPv6: Ethernet, IPv6
    (hop limit 64), UDP ``sport`` -> 4789 with its checksum (mandatory over
    IPv6, and Linux's default), VXLAN with the I flag and VXLAN_VNI."""
    src = ipaddress.IPv6Address(VXLAN6_REMOTE_IP).packed
    dst = ipaddress.IPv6Address(VXLAN6_LOCAL_IP).packed
    vxlan = struct.pack("!BxxxI", 0x08, VXLAN_VNI << 8)
    udp_len = 8 + len(vxlan) + len(inner)
    udp = struct.pack("!HHHH", sport, VXLAN_PORT, udp_len, 0) + vxlan + inner
    pseudo = src + dst + struct.pack("!IxxxB", udp_len, 17)
    csum = gen_pcap.csum16(pseudo + udp + (b"\0" if len(udp) % 2 else b"")) or 0xffff
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    ip = struct.pack("!IHBB", 6 << 28, udp_len, 17, 64) + src + dst
    eth = (gen_pcap.parse_mac(VXLAN_LOCAL_MAC) + gen_pcap.parse_mac(VXLAN_REMOTE_MAC)
           + struct.pack("!H", 0x86DD))
    return eth + ip + udp


class Vxlan6(Vxlan):
    """The vxlan scenario over an IPv6 underlay: the remote endpoint
    2001:2::2 encapsulates p1's frames to this switch's 2001:2::1 (70
    bytes of outer header, the UDP checksum computed); p0's frames leave
    p1 70 bytes longer, with their UDP checksum. Ferroswitch as in vxlan
    with IPv6 addresses (it computes the checksum: Linux's default).
    OVS-DPDK as in vxlan with IPv6 addresses on br-phy's internal port,
    the next hop set with `tnl/neigh/set`, and options:csum=true on the
    tunnel so that it computes the same checksum."""

    name = "vxlan6"
    prefix, prefix_len, ip_flag = VXLAN6_PREFIX, 64, "-6"
    local_ip, remote_ip = VXLAN6_LOCAL_IP, VXLAN6_REMOTE_IP
    underlay_frame = staticmethod(vxlan6_frame)
    ovs_tunnel_options = ["options:csum=true"]
    ovs_neighbour_cmd = "tnl/neigh/set"

    def add_endpoint_address(self, dev: str) -> None:
        run_cmd(["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=0"])
        run_cmd(["ip", "-6", "addr", "add", f"{self.local_ip}/{self.prefix_len}", "dev", dev,
                 "nodad"])


SCENARIOS: dict[str, type[Scenario]] = {c.name: c for c in (L2Normal, PvpVhost, Vm2VmVhost, VmTso,
                                                            Neutron, Flows, Vxlan, Vxlan6)}


# --------------------------------------------------------------------------
# systems under test
# --------------------------------------------------------------------------

class System:
    """One system under test for one run. Subclasses implement the hooks."""

    name = ""

    def __init__(self, ctx: Ctx, scen: Scenario, run_idx: int):
        self.ctx, self.scen, self.run_idx = ctx, scen, run_idx
        self.dir = ctx.out / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prefix = f"fsw-bench-{self.name}-{ctx.uid}-r{run_idx}"
        self.procs: list[Proc] = []

    @classmethod
    def unavailable(cls, ctx: Ctx) -> str | None:
        """None if the system can run, else the reason it is skipped."""
        return None

    @classmethod
    def summary_fields(cls) -> dict:
        """Added to the system's JSON line right after its name."""
        return {}

    def start(self) -> None: raise NotImplementedError
    def snapshot(self) -> Snapshot: raise NotImplementedError
    def begin_window(self) -> None: pass
    def end_window(self, s0: Snapshot, s1: Snapshot, rx_pkts: int) -> dict:
        """System-specific results, at least {"cycles_per_packet": ...}."""
        return {"cycles_per_packet": None}
    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        remove_dpdk_runtime_dir(self.prefix)

    def check_alive(self) -> None:
        for p in self.procs + self.scen.extra_procs():
            if not p.alive():
                raise BenchError(f"{p.name} (pid {p.pid}) exited with {p.popen.returncode}:\n"
                                 f"{tail(p.logfile)}")

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.check_alive()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.5, left))


# ---- testpmd -----------------------------------------------------------------

def telemetry_query(sock_path: Path, *cmds: str, timeout: float = 5.0) -> list:
    """Query a DPDK telemetry v2 socket (unix SOCK_SEQPACKET, JSON replies)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    try:
        s.connect(str(sock_path))
        hello = json.loads(s.recv(65536))
        bufsz = max(65536, int(hello.get("max_output_len", 16384)) + 1024)
        out = []
        for c in cmds:
            s.send(c.encode())
            out.append(json.loads(s.recv(bufsz)))
        return out
    finally:
        s.close()


def wait_testpmd_telemetry(prefix: str, nports: int, deadline: float, check_alive) -> Path | None:
    """The telemetry socket of the testpmd with this --file-prefix once it lists
    >= nports ethdevs (it lands in the runtime dir even with --in-memory), or
    None at the deadline."""
    rundir = DPDK_RUNTIME_ROOT / prefix
    while time.monotonic() < deadline:
        check_alive()
        for cand in sorted(rundir.glob("dpdk_telemetry.v2*")):
            try:
                stats = telemetry_query(cand, "/ethdev/list")[0]
                if len(stats.get("/ethdev/list") or []) >= nports:
                    return cand
            except (OSError, ValueError):
                pass
        time.sleep(0.2)
    return None


class TestpmdIo(System):
    """testpmd as the switch: io forwarding, default paired port topology."""

    name = "testpmd-io"

    @classmethod
    def unavailable(cls, ctx):
        return None if shutil.which("dpdk-testpmd") else "dpdk-testpmd not found (package dpdk-dev)"

    def start(self) -> None:
        argv = ["dpdk-testpmd", "--lcores", f"{CTRL_CORE}@{CTRL_CORE},{FWD_CORE}@{FWD_CORE}",
                "--no-pci", "--in-memory", "-m", "256", "--file-prefix", self.prefix]
        for vdev in self.scen.testpmd_vdevs():
            argv += ["--vdev", vdev]
        argv += ["--", *self.scen.testpmd_forward_args(), "--auto-start", "--nb-cores", "1",
                 "--total-num-mbufs", "32768"]
        self.port_ids = {p.name: i for i, p in enumerate(self.scen.ports)}
        # Without interactive mode testpmd waits for Enter on stdin: keep a pipe open.
        self.proc = Proc("dpdk-testpmd", argv, self.dir / f"testpmd-r{self.run_idx}.log",
                         stdin_pipe=True)
        self.procs.append(self.proc)
        self.sock = wait_testpmd_telemetry(self.prefix, len(self.port_ids),
                                           time.monotonic() + 60, self.check_alive)
        if not self.sock:
            raise BenchError(f"testpmd telemetry socket not ready in {DPDK_RUNTIME_ROOT / self.prefix}"
                             f"\n{tail(self.proc.logfile)}")
        log(f"testpmd up; telemetry {self.sock}")

    def snapshot(self) -> Snapshot:
        t0 = time.monotonic()
        replies = telemetry_query(self.sock, *[f"/ethdev/stats,{i}" for i in self.port_ids.values()])
        t1 = time.monotonic()
        ports = {}
        for (name, _), r in zip(self.port_ids.items(), replies):
            st = r["/ethdev/stats"]
            ports[name] = {"rx": st["ipackets"], "tx": st["opackets"],
                           "rx_dropped": st["imissed"] + st["rx_nombuf"], "tx_dropped": st["oerrors"]}
        return Snapshot((t0 + t1) / 2, ports)

    def end_window(self, s0, s1, rx_pkts):
        if not self.ctx.tsc_hz or rx_pkts <= 0:
            return {"cycles_per_packet": None}
        return {"cycles_per_packet": self.ctx.tsc_hz * (s1.t - s0.t) / rx_pkts,
                "cycles_per_packet_method": "TSC Hz x window / packets received"}


class TestpmdVhost(TestpmdIo):
    """testpmd as the switch in the vhost scenarios: its vhost-user ports are
    ``net_vhost`` vdevs in client mode (``iface=SOCK,client=1``, see
    Scenario.testpmd_vdevs), io forwarding between the pairs (0,1), (2,3)..."""

    name = "testpmd-vhost"


# ---- OVS-DPDK ----------------------------------------------------------------

def _int0(text: str) -> int:
    return int(text) if text.isdigit() else 0


class OvsDpdk(System):
    name = "ovs-dpdk"
    userspace_tso = False     # other_config:userspace-tso-enable (OVS's default: false)

    @classmethod
    def unavailable(cls, ctx):
        for b in ("ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-appctl"):
            if not shutil.which(b):
                return f"{b} not found (package openvswitch-switch)"
        if not os.access(OVS_VSWITCHD_DPDK, os.X_OK):
            return f"{OVS_VSWITCHD_DPDK} not found (package openvswitch-switch-dpdk)"
        if not os.path.exists(OVS_SCHEMA):
            return f"{OVS_SCHEMA} not found"
        return None

    def __init__(self, ctx, scen, run_idx):
        super().__init__(ctx, scen, run_idx)
        # Short private dir for the sockets (AF_UNIX paths are limited to 107 bytes).
        self.rundir = Path(tempfile.mkdtemp(prefix="fsw-ovs-"))
        self.logdir = self.dir / f"r{run_idx}"
        if self.logdir.exists():
            shutil.rmtree(self.logdir)
        self.logdir.mkdir(parents=True)
        self.db = self.rundir / "conf.db"
        self.db_sock = self.rundir / "db.sock"
        self.ctl = self.rundir / "ovs-vswitchd.ctl"
        self.bridge = f"fswbr{os.getpid() % 100000}"   # kernel TAP name, <= 15 chars
        self.bridges = [self.bridge]     # every bridge the scenario names (TAP clean-up)
        self.env = dict(os.environ, OVS_RUNDIR=str(self.rundir), OVS_DBDIR=str(self.rundir),
                        OVS_LOGDIR=str(self.logdir), OVS_SYSCONFDIR=str(self.rundir))
        self.bridges_created = False
        self.vswitchd = None

    def vsctl(self, *args, timeout: float = 30, check: bool = True):
        return run_cmd(["ovs-vsctl", f"--db=unix:{self.db_sock}", f"--timeout={int(timeout)}",
                        *args], timeout=timeout + 5, env=self.env, check=check)

    def ofctl(self, *args, timeout: float = 30):
        return run_cmd(["ovs-ofctl", *args], timeout=timeout, env=self.env)

    def appctl(self, *args, timeout: float = 15):
        return run_cmd(["ovs-appctl", "-t", str(self.ctl), f"--timeout={int(timeout)}", *args],
                       timeout=timeout + 5, env=self.env).stdout

    def start(self) -> None:
        if (mb := self.scen.ovs_hugepages_mb()):
            ensure_hugepages(mb)
        run_cmd(["ovsdb-tool", "create", str(self.db), OVS_SCHEMA], env=self.env)
        self.procs.append(Proc("ovsdb-server", [
            "ovsdb-server", str(self.db), f"--remote=punix:{self.db_sock}",
            f"--unixctl={self.rundir / 'ovsdb-server.ctl'}",
            f"--pidfile={self.rundir / 'ovsdb-server.pid'}",
            f"--log-file={self.logdir / 'ovsdb-server.log'}"],
            self.logdir / "ovsdb-server.stdout.log", env=self.env, ctrl_core=True))
        deadline = time.monotonic() + 20
        while not self.db_sock.exists():
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError("ovsdb-server socket did not appear")
            time.sleep(0.1)
        self.vsctl("--no-wait", "init")
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                   "other_config:dpdk-init=true",
                   f'other_config:dpdk-extra="--no-pci --file-prefix={self.prefix}"',
                   "other_config:dpdk-socket-mem=1024",
                   f"other_config:pmd-cpu-mask={1 << FWD_CORE:#x}",
                   f"other_config:dpdk-lcore-mask={1 << CTRL_CORE:#x}",
                   f"other_config:userspace-tso-enable={str(self.userspace_tso).lower()}")
        # Foreground, pinned to the control core; the PMD thread pins itself to core 1.
        self.vswitchd = Proc("ovs-vswitchd-dpdk", [
            OVS_VSWITCHD_DPDK, f"unix:{self.db_sock}",
            f"--pidfile={self.rundir / 'ovs-vswitchd.pid'}", f"--unixctl={self.ctl}",
            f"--log-file={self.logdir / 'ovs-vswitchd.log'}"],
            self.logdir / "ovs-vswitchd.stdout.log", env=self.env, ctrl_core=True)
        self.procs.append(self.vswitchd)
        deadline = time.monotonic() + 90
        while True:
            self.check_alive()
            cp = self.vsctl("--no-wait", "get", "Open_vSwitch", ".", "dpdk_initialized", check=False)
            if cp.returncode == 0 and cp.stdout.strip() == "true":
                break
            if time.monotonic() > deadline:
                raise BenchError("OVS DPDK initialisation timed out\n"
                                 + tail(self.logdir / "ovs-vswitchd.log"))
            time.sleep(0.3)
        self.bridges_created = True
        self.scen.ovs_configure(self)
        for p in self.scen.ports:
            cp = self.vsctl("get", "Interface", p.name, "ofport", "error")
            ofport, err = cp.stdout.split("\n")[:2]
            if ofport.strip() in ("-1", "[]") or err.strip() not in ("[]", ""):
                raise BenchError(f"OVS port {p.name} failed: ofport={ofport} error={err}\n"
                                 + tail(self.logdir / "ovs-vswitchd.log"))
        rxq = self.appctl("dpif-netdev/pmd-rxq-show")
        (self.logdir / "pmd-rxq-show.txt").write_text(rxq)
        if f"core_id {FWD_CORE}" not in rxq:
            raise BenchError(f"OVS PMD not on core {FWD_CORE}:\n{rxq}")
        log(f"ovs-dpdk up: bridge {self.bridge}, ports {[p.name for p in self.scen.ports]}")

    _port_re = re.compile(r"^\s*port \d+: (\S+)")
    # "?" where the netdev lacks the counter (vhost-user ports: errors:?)
    _rx_re = re.compile(r"RX packets:(\d+) errors:(\d+|\?) dropped:(\d+|\?)")
    _tx_re = re.compile(r"TX packets:(\d+) errors:(\d+|\?) dropped:(\d+|\?)")

    def snapshot(self) -> Snapshot:
        t0 = time.monotonic()
        txt = self.appctl("dpctl/show", "-s")
        t1 = time.monotonic()
        ports, cur = {}, None
        for line in txt.splitlines():
            m = self._port_re.match(line)
            if m:
                cur = m.group(1)
                ports[cur] = {}
                continue
            if cur is None:
                continue
            if (m := self._rx_re.search(line)):
                ports[cur].update(rx=int(m.group(1)), rx_dropped=_int0(m.group(3)))
            elif (m := self._tx_re.search(line)):
                ports[cur].update(tx=int(m.group(1)), tx_dropped=_int0(m.group(3)))
        missing = [p.name for p in self.scen.ports if "rx" not in ports.get(p.name, {})]
        if missing:
            raise BenchError(f"dpctl/show -s lacks ports {missing}:\n{txt}")
        return Snapshot((t0 + t1) / 2, ports)

    def begin_window(self) -> None:
        self.appctl("dpif-netdev/pmd-stats-clear")

    def end_window(self, s0, s1, rx_pkts):
        txt = self.appctl("dpif-netdev/pmd-stats-show")
        (self.logdir / "pmd-stats-show.txt").write_text(txt)
        block, blocks = None, {}
        for line in txt.splitlines():
            m = re.match(r"^pmd thread numa_id \d+ core_id (\d+):", line)
            if m:
                block = blocks.setdefault(int(m.group(1)), {})
                continue
            if line and not line[0].isspace():
                block = None
                continue
            if block is not None and ":" in line:
                k, v = line.strip().split(":", 1)
                m = re.match(r"\s*([\d.]+)", v)
                if m:
                    block[k.strip()] = float(m.group(1))
        b = blocks.get(FWD_CORE, {})
        return {"cycles_per_packet": b.get("avg processing cycles per packet"),
                "cycles_per_packet_method": "pmd-stats-show avg processing cycles per packet",
                "pmd_avg_cycles_per_packet_incl_idle": b.get("avg cycles per packet"),
                "pmd_packets_received": b.get("packets received"),
                "pmd_passes_per_packet": b.get("avg. datapath passes per packet")}

    def stop(self) -> None:
        try:
            if self.bridges_created and self.vswitchd and self.vswitchd.alive():
                # Remove the bridges first: their TAP-backed internal ports outlive OVS.
                cp = self.vsctl("list-br", check=False, timeout=10)
                for br in cp.stdout.split():
                    log(f"removing OVS bridge {br}")
                    self.vsctl("del-br", br, check=False, timeout=20)
        except BenchError as exc:
            log(f"warning: bridge removal failed: {exc}")
        finally:
            super().stop()
            # A TAP left over by a killed vswitchd: remove the ones we named.
            for br in self.bridges:
                if Path(f"/sys/class/net/{br}").exists():
                    run_cmd(["ip", "link", "del", br], check=False)
            shutil.rmtree(self.rundir, ignore_errors=True)


class OvsDpdkTso(OvsDpdk):
    """OVS-DPDK with other_config:userspace-tso-enable=true (vm-tso): its
    vhost-user ports offer guests checksum offload and TSO and pass their TSO
    segments on (set before DPDK initialises, as OVS requires)."""

    name = "ovs-dpdk-tso"
    userspace_tso = True


# ---- ferroswitch ---------------------------------------------------------------

def _target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target") / "release"


def _find_cargo() -> str | None:
    return shutil.which("cargo") or next(
        (str(c) for c in (Path.home() / ".cargo/bin/cargo", Path("/root/.cargo/bin/cargo"))
         if c.is_file() and os.access(c, os.X_OK)), None)


CARGO_BUILD = ["cargo", "build", "--release", "--workspace", "--bins"]


def cargo_build(cargo: str, cwd: Path, logfile: Path, timeout: float,
                env: dict | None = None) -> int | str:
    """Run CARGO_BUILD in cwd, output to logfile; its exit code or "timeout".
    Interrupted or timed out: the whole process group (cargo and its rustc
    children, started in a session of their own) is stopped."""
    with open(logfile, "wb") as f:
        f.write(f"# {time.strftime('%F %T')} $ {' '.join(CARGO_BUILD)} (in {cwd})\n".encode())
        f.flush()
        p = subprocess.Popen([cargo, *CARGO_BUILD[1:]], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                             stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            return "timeout"
        finally:
            if p.poll() is None:
                log(f"stopping cargo build pid {p.pid} and its children")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
                    p.wait()


def git(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return run_cmd(["git", "-C", str(REPO_ROOT), *args], timeout=timeout, check=check)


def resolve_rev(rev: str) -> str:
    """The full sha of commit-ish ``rev`` in this repository (BenchError if none)."""
    if not rev or rev.startswith("-"):
        raise BenchError(f"bad revision {rev!r}")
    if not shutil.which("git"):
        raise BenchError("git not found")
    cp = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False, timeout=30)
    sha = cp.stdout.strip()
    if cp.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", sha):
        raise BenchError(f"{rev!r} is not a commit of {REPO_ROOT} "
                         f"(git rev-parse --verify {rev}^{{commit}} failed)")
    return sha


class Ferroswitch(System):
    name = "ferroswitch"
    build_failed: str | None = None
    built = False             # built in this run already (built once per run)
    plain_l2 = False          # ferroswitch-l2: the scenario's plain-L2 configuration
    fill = False              # ferroswitch-full: the tracker filled first

    @classmethod
    def binaries(cls) -> tuple[Path, Path]:
        t = _target_dir()
        return t / "vswitchd", t / "vswitchctl"

    @classmethod
    def build(cls, ctx: Ctx) -> None:
        cargo = _find_cargo()
        if not cargo:
            cls.build_failed = "cargo not found (install Rust with rustup; see scripts/setup.sh)"
            return
        blog = ctx.out / "ferroswitch" / "build.log"
        blog.parent.mkdir(parents=True, exist_ok=True)
        log(f"building ferroswitch: {' '.join(CARGO_BUILD)} (log {blog})")
        rc = cargo_build(cargo, REPO_ROOT, blog, ctx.args.build_timeout)
        Ferroswitch.built = True
        if rc != 0:
            cls.build_failed = f"cargo build failed ({rc}); see {blog}:\n{tail(blog, 15)}"

    @classmethod
    def unavailable(cls, ctx):
        vswitchd, vswitchctl = cls.binaries()
        if cls.build_failed:
            return cls.build_failed
        for b in (vswitchd, vswitchctl):
            if not b.is_file():
                return (f"{b} is missing (ferroswitch not built yet: "
                        f"`{' '.join(CARGO_BUILD)}` produced no such binary; "
                        f"build log {ctx.out / 'ferroswitch' / 'build.log'})")
        return None

    def start(self) -> None:
        self.vswitchd_bin, self.vswitchctl_bin = self.binaries()
        self.sock = self.dir / f"vswitchd-r{self.run_idx}.sock"
        if len(str(self.sock)) > 100:
            self._tmp = Path(tempfile.mkdtemp(prefix="fsw-ctl-"))
            self.sock = self._tmp / "vswitchd.sock"
        with contextlib.suppress(FileNotFoundError):
            self.sock.unlink()
        # Flows a run keeps (vswitchctl without --volatile) stay its own.
        self.state_dir = self.dir / f"state-r{self.run_idx}"
        shutil.rmtree(self.state_dir, ignore_errors=True)
        cfg = self.dir / f"vswitchd-r{self.run_idx}.toml"
        cfg.write_text(self.config_toml())
        ensure_hugepages(self.eal_mb + 64)
        self.proc = Proc("vswitchd", [str(self.vswitchd_bin), "--config", str(cfg)],
                         self.dir / f"vswitchd-r{self.run_idx}.log", cwd=str(REPO_ROOT))
        self.procs.append(self.proc)
        deadline = time.monotonic() + self.ctx.args.start_timeout
        while True:
            self.check_alive()
            try:
                cp = self.ctl("port", "list", check=False, timeout=5)
            except BenchError as exc:
                # The socket is bound before the EAL: a big pool (a million
                # frames held) takes longer than one try to set up.
                cp = subprocess.CompletedProcess([], 1, "", str(exc))
            if cp.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"vswitchd not up after {self.ctx.args.start_timeout}s "
                                 f"(last vswitchctl: {cp.stderr.strip()})\n{tail(self.proc.logfile)}")
            time.sleep(0.3)
        log(f"{self.name} up ({self.vswitchd_bin}): {cp.stdout.strip()!r}")

    def config_toml(self) -> str:
        def q(s: str) -> str:
            return json.dumps(s)  # a JSON string is a valid TOML basic string
        # net_pcap with infinite_rx keeps every frame of its file in mbufs of
        # the switch's pool: the default pool (16383) unless those and the
        # rings (8192 is plenty) need more.
        held = self.scen.frames_held()
        mbufs = max(16383, (1 << (held + 8192).bit_length()) - 1)
        self.eal_mb = eal_memory_mb(mbufs)
        eal = ["--no-pci", "--in-memory", "--file-prefix", self.prefix, "-m", str(self.eal_mb)]
        lines = ["# written by scripts/bench.py", "[eal]",
                 "args = [" + ", ".join(q(a) for a in eal) + "]", "",
                 "[dataplane]", f"pmd_cores = [{FWD_CORE}]", f"control_core = {CTRL_CORE}",
                 f"mbufs = {mbufs}", "",
                 "[control]", f"socket = {q(str(self.sock))}"]
        # Builds before control.state_dir (a --baseline) refuse the key;
        # a build that has it names it somewhere in its binary.
        if b"state_dir" in Path(self.vswitchd_bin).read_bytes():
            lines.append(f"state_dir = {q(str(self.state_dir))}")
        lines.append("")
        if getattr(self.ctx.args, "max_connections", None):
            lines += ["[conntrack]", f"max_connections = {self.ctx.args.max_connections}", ""]
        lines += self.scen.ferroswitch_config_extra(self)
        for br in self.scen.ferroswitch_bridges(self):
            lines += ["[[bridges]]", f"name = {q(br['name'])}"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in br.items() if k not in ("name", "ports")]
            lines.append("")
            for p in br["ports"]:
                lines.append("[[bridges.ports]]")
                for k, v in p.items():
                    if isinstance(v, str):
                        lines.append(f"{k} = {q(v)}")
                    elif isinstance(v, list):
                        lines.append(f"{k} = [{', '.join(str(x) for x in v)}]")
                    else:
                        lines.append(f"{k} = {v}")
                lines.append("")
        return "\n".join(lines)

    def ctl(self, *args, check=True, timeout=10):
        return run_cmd([str(self.vswitchctl_bin), "--socket", str(self.sock), *args],
                       timeout=timeout, check=check)

    def snapshot(self) -> Snapshot:
        t0 = time.monotonic()
        ports_js = json.loads(self.ctl("port", "stats", "--json").stdout)
        pmd_js = json.loads(self.ctl("pmd-stats", "--json").stdout)
        t1 = time.monotonic()
        ports = {p["name"]: {"rx": p["rx_packets"], "tx": p["tx_packets"],
                             "rx_dropped": p.get("rx_dropped", 0), "tx_dropped": p.get("tx_dropped", 0)}
                 for p in ports_js}
        return Snapshot((t0 + t1) / 2, ports, {"pmd": pmd_js})

    def end_window(self, s0, s1, rx_pkts):
        before = {w["core"]: w for w in s0.extra["pmd"]}
        busy = pkts = idle = 0
        for w in s1.extra["pmd"]:
            b = before.get(w["core"], {})
            busy += w["busy_cycles"] - b.get("busy_cycles", 0)
            idle += w["idle_cycles"] - b.get("idle_cycles", 0)
            pkts += w["packets"] - b.get("packets", 0)
        return {"cycles_per_packet": busy / pkts if pkts > 0 else None,
                "cycles_per_packet_method": "delta busy_cycles / delta packets (pmd-stats)",
                "pmd_packets": pkts, "pmd_busy_fraction": rnd(busy / (busy + idle), 4)
                if busy + idle > 0 else None}

    def stop(self) -> None:
        super().stop()
        if getattr(self, "sock", None):
            with contextlib.suppress(OSError):
                self.sock.unlink()
        if getattr(self, "_tmp", None):
            shutil.rmtree(self._tmp, ignore_errors=True)


class FerroswitchBaseline(Ferroswitch):
    """Ferroswitch built from another git revision (--baseline REV), configured
    exactly like ``ferroswitch`` (same generated config, same ports) but run
    with its own vswitchd and vswitchctl.

    build(): REV's commit is checked out in a detached git worktree
    (BASELINE_ROOT/worktree), built there with CARGO_BUILD and
    CARGO_TARGET_DIR=BASELINE_ROOT/target (shared by all baseline builds, so
    dependencies compile once; the main target/release is never touched), the
    two binaries are copied to BASELINE_ROOT/<sha>/ and the worktree is removed.
    A commit whose cache already holds both binaries is not built again.
    """

    name = BASELINE
    build_failed: str | None = None
    rev: str | None = None        # as given to --baseline
    commit: str | None = None     # its full sha

    @classmethod
    def cache_dir(cls) -> Path:
        return BASELINE_ROOT / (cls.commit or "unknown")

    @classmethod
    def binaries(cls) -> tuple[Path, Path]:
        d = cls.cache_dir()
        return d / "vswitchd", d / "vswitchctl"

    @classmethod
    def summary_fields(cls) -> dict:
        return {"rev": cls.rev, "commit": cls.commit}

    @classmethod
    def build(cls, ctx: Ctx) -> None:
        cls.rev, cls.commit = ctx.args.baseline, ctx.args.baseline_commit
        if all(b.is_file() for b in cls.binaries()):
            log(f"{cls.name}: {cls.rev} = {cls.commit}: cached binaries in {cls.cache_dir()}")
            return
        cargo = _find_cargo()
        if not cargo:
            cls.build_failed = "cargo not found (install Rust with rustup; see scripts/setup.sh)"
            return
        blog = ctx.out / cls.name / "build.log"
        blog.parent.mkdir(parents=True, exist_ok=True)
        BASELINE_ROOT.mkdir(parents=True, exist_ok=True)
        wt, tdir = BASELINE_ROOT / "worktree", BASELINE_ROOT / "target"
        log(f"{cls.name}: building {cls.rev} = {cls.commit} in worktree {wt}: "
            f"{' '.join(CARGO_BUILD)} with CARGO_TARGET_DIR={tdir} (log {blog}); "
            "this takes minutes")
        t0 = time.monotonic()
        try:
            cls._remove_worktree(wt)
            git("worktree", "add", "--detach", str(wt), cls.commit, timeout=600)
            env = dict(os.environ, CARGO_TARGET_DIR=str(tdir))
            rc = cargo_build(cargo, wt, blog, ctx.args.build_timeout, env=env)
            if rc != 0:
                cls.build_failed = (f"cargo build of {cls.rev} ({cls.commit[:12]}) failed ({rc}); "
                                    f"see {blog}:\n{tail(blog, 15)}")
                return
            built = [tdir / "release" / b.name for b in cls.binaries()]
            missing = [str(b) for b in built if not b.is_file()]
            if missing:
                cls.build_failed = (f"the build of {cls.rev} ({cls.commit[:12]}) produced no "
                                    f"{', '.join(missing)}; see {blog}")
                return
            # Copy into a fresh directory, then rename: a cache dir is complete or absent.
            tmp = Path(tempfile.mkdtemp(prefix=f".{cls.commit}.", dir=BASELINE_ROOT))
            try:
                tmp.chmod(0o755)
                for b in built:
                    shutil.copy2(b, tmp / b.name)
                shutil.rmtree(cls.cache_dir(), ignore_errors=True)
                os.rename(tmp, cls.cache_dir())
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            log(f"{cls.name}: built {cls.commit[:12]} in {time.monotonic() - t0:.0f} s; "
                f"binaries cached in {cls.cache_dir()}")
        except (BenchError, OSError) as exc:
            cls.build_failed = f"building {cls.rev} ({cls.commit[:12]}) failed: {exc}"
        finally:
            cls._remove_worktree(wt)

    @staticmethod
    def _remove_worktree(wt: Path) -> None:
        if wt.exists():
            git("worktree", "remove", "--force", str(wt), check=False)
            shutil.rmtree(wt, ignore_errors=True)
        git("worktree", "prune", check=False)

    @classmethod
    def unavailable(cls, ctx):
        if cls.build_failed:
            return cls.build_failed
        for b in cls.binaries():
            if not b.is_file():
                return f"{b} is missing (baseline {cls.rev} not built)"
        return None


class FerroswitchNoTso(Ferroswitch):
    """The current ferroswitch with its bridge's userspace_tso off (vm-tso):
    guests are offered no checksum offload or TSO, as under OVS-DPDK without
    userspace-tso-enable."""

    name = "ferroswitch-no-tso"
    userspace_tso = False


class FerroswitchFull(Ferroswitch):
    """The current ferroswitch in the neutron scenario with its tracker
    filled to --fill-to connections by a second VM before the traffic
    starts (same traffic, same ports measured): the scenario's own
    connections stay a few thousand among a million."""

    name = "ferroswitch-full"
    fill = True


class FerroswitchL2(Ferroswitch):
    """The current ferroswitch with the scenario's ports configured as plain
    L2 ports (no Neutron, no port security): the neutron scenario's yardstick
    for a port with port_security_enabled=false."""

    name = "ferroswitch-l2"
    plain_l2 = True


SYSTEMS: dict[str, type[System]] = {
    c.name: c for c in (Ferroswitch, FerroswitchBaseline, FerroswitchL2, FerroswitchFull,
                        FerroswitchNoTso, OvsDpdk, OvsDpdkTso, TestpmdIo, TestpmdVhost)}


# --------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------

CURRENT: list[System] = []   # the system being measured (for cleanup on signals)


def measure(system: System) -> dict:
    ctx, scen = system.ctx, system.scen
    CURRENT[:] = [system]
    a = ctx.args
    hp_total, hp_free0 = hugepages()
    busy = core_busy_fraction(FWD_CORE)
    if busy > 0.5:
        log(f"WARNING: core {FWD_CORE} is already {busy:.0%} busy: another poll-mode process "
            "may be running; figures will be wrong")
    try:
        scen.before_start(system)
        system.start()
        scen.after_start(system)
        log(f"{system.name} run {system.run_idx + 1}: warm-up {a.warmup}s")
        system.sleep(a.warmup)
        system.begin_window()
        s0 = system.snapshot()
        e0 = scen.extra_snapshot()
        log(f"{system.name} run {system.run_idx + 1}: measuring {a.duration}s")
        system.sleep(a.duration)
        s1 = system.snapshot()
        e1 = scen.extra_snapshot()
        system.check_alive()
        window = s1.t - s0.t
        delta = {n: {k: s1.ports[n].get(k, 0) - s0.ports.get(n, {}).get(k, 0)
                     for k in ("rx", "tx", "rx_dropped", "tx_dropped")}
                 for n in (p.name for p in scen.ports)}
        tx = sum(delta[p]["tx"] for p in scen.output_ports)
        rx = sum(delta[p]["rx"] for p in scen.input_ports)
        res = system.end_window(s0, s1, rx)
        res.update(scen.extra_results(e0, e1))
        res.update(scen.window_results(system))
    finally:
        try:
            system.stop()
        finally:
            scen.after_stop(system)   # the VMs etc. go after the switch
            CURRENT.clear()
    _, hp_free1 = hugepages()
    if hp_free1 < hp_free0:
        log(f"WARNING: {hp_free0 - hp_free1} hugepages not freed after {system.name}")
    ratios = {f"{i}->{o}": rnd(delta[o]["tx"] / delta[i]["rx"], 4) if delta[i]["rx"] else None
              for i, o, _ in scen.directions}
    expected = {f"{i}->{o}": e for i, o, e in scen.directions}
    run = {"mpps": rnd(tx / window / 1e6), "rx_mpps": rnd(rx / window / 1e6),
           "cycles_per_packet": rnd(res.pop("cycles_per_packet"), 1),
           "cycles_per_packet_wall": rnd(ctx.tsc_hz * window / rx, 1) if ctx.tsc_hz and rx else None,
           "tx_ratio": ratios, "window_s": rnd(window, 3), "ports": delta}
    run.update({k: v for k, v in res.items() if k != "cycles_per_packet_method"})
    run["cycles_per_packet_method"] = res.get("cycles_per_packet_method")
    bad = {d: r for d, r in ratios.items()
           if expected[d] is not None and (r is None or abs(r - expected[d]) > 0.02)}
    if bad:
        log(f"WARNING: {system.name}: tx/rx per direction {bad} differs from expected {expected}")
    if scen.require_tx and tx <= 0:
        raise BenchError(f"no packet transmitted on {scen.output_ports} in the window "
                         f"(ports {delta})")
    log(f"{system.name} run {system.run_idx + 1}: {run['mpps']} Mpps, "
        f"{run['cycles_per_packet']} cycles/pkt, tx_ratio {ratios}")
    return run


def summarize(scen: Scenario, name: str, runs: list[dict], errors: list[str], ctx: Ctx) -> dict:
    a = ctx.args
    ok = [r for r in runs if r]
    line: dict = {"scenario": scen.name, "system": name, **SYSTEMS[name].summary_fields()}
    mp = [r["mpps"] for r in ok]
    cpp = [r["cycles_per_packet"] for r in ok if r["cycles_per_packet"] is not None]
    cppw = [r["cycles_per_packet_wall"] for r in ok if r["cycles_per_packet_wall"] is not None]
    line["mpps"] = rnd(median(mp))
    line["cycles_per_packet"] = rnd(median(cpp), 1)
    dirs = [f"{i}->{o}" for i, o, _ in scen.directions]
    line["tx_ratio"] = {d: rnd(median([r["tx_ratio"][d] for r in ok if r["tx_ratio"][d] is not None]), 4)
                        for d in dirs} if ok else None
    line["tx_ratio_expected"] = {f"{i}->{o}": e for i, o, e in scen.directions}
    if len(ok) > 1:
        line["mpps_range"] = [min(mp), max(mp)]
        line["cycles_per_packet_range"] = [min(cpp), max(cpp)] if cpp else None
    line["rx_mpps"] = rnd(median([r["rx_mpps"] for r in ok]))
    # Scenario figures besides Mpps (vm-tso: goodput), as medians.
    for k in ("goodput_gbps",):
        xs = [r[k] for r in ok if r.get(k) is not None]
        if xs:
            line[k] = rnd(median(xs))
            if len(xs) > 1:
                line[f"{k}_range"] = [min(xs), max(xs)]
    line["cycles_per_packet_wall"] = rnd(median(cppw), 1)
    line["runs"] = runs
    if errors:
        line["errors"] = errors
    line.update({"flows": a.flows, "macs": a.macs, "frame_size": a.frame_size, "vlan": a.vlan,
                 "warmup_s": a.warmup, "duration_s": a.duration, "runs_requested": a.runs,
                 "date": ctx.date,
                 **scen.summary_extra(),
                 "tsc_hz": round(ctx.tsc_hz) if ctx.tsc_hz else None,
                 "logs": str(ctx.out / name)})
    return line


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Benchmark ferroswitch against OVS-DPDK and testpmd on pcap and vhost-user ports.",
        epilog="Scenarios: " + ", ".join(SCENARIOS),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--flows", type=int, default=1024,
                    help="UDP flows (frames) per direction (source ports 1024 + i)")
    ap.add_argument("--macs", type=int, default=1, metavar="N",
                    help="MAC pairs in the traffic: flow i goes A_k <-> B_k, k = i mod N "
                    "(2N MACs; pair 0 = fa:16:3e:00:00:01/02, pair k>=1 = fa:16:3e:0a:HH:LL/"
                    "fa:16:3e:0b:HH:LL, HHLL=k); N <= --flows, N <= 65535; not vm2vm-vhost. "
                    f"N > 1 also sets OVS's mac-table-size to {FSW_MAC_TABLE_SIZE} "
                    "(ferroswitch's default)")
    ap.add_argument("--frame-size", type=int, default=64, help="bytes, including the 4-byte FCS")
    ap.add_argument("--vlan", type=int, default=None, metavar="VID",
                    help="802.1Q-tag the traffic (ports stay plain trunks; l2-normal only)")
    ap.add_argument("--vm-queue-size", type=int, default=argparse.SUPPRESS, metavar="N",
                    help="virtio ring size of the VMs' ports (vhost scenarios; default: "
                    + "; ".join(f"{n}: {c.vm_queue_size}" for n, c in SCENARIOS.items()
                                if hasattr(c, "vm_queue_size")) + ")")
    ap.add_argument("--variant", choices=sorted(NEUTRON_VARIANTS), default="sg",
                    help="neutron: sg = port security + the stateful security group, vlan = "
                    "VLAN translation only (port security off), portsec = OVS's anti-spoofing "
                    "without conntrack (OVS only)")
    ap.add_argument("--connections", type=int, default=1024, metavar="N",
                    help="neutron: UDP egress connections in the traffic (PEERS.md: 1024; "
                    "the tracker then holds N + 128)")
    ap.add_argument("--fill-to", type=int, default=1_000_000, metavar="N",
                    help="neutron, system ferroswitch-full: connections in its tracker while the "
                    "scenario runs (a second VM opens the difference first)")
    ap.add_argument("--max-connections", type=int, default=None, metavar="N",
                    help="neutron: ferroswitch's [conntrack] max_connections (its default: "
                    "1,000,000)")
    ap.add_argument("--rules", type=int, default=100, metavar="N",
                    help="flows: flow-table rules (flow_rules: 1, or 3 and more; past "
                    f"{FLOWS_PER_PCAP_PORT} --flows the traffic takes several port pairs, "
                    "each with two forwarding rules, see Flows)")
    ap.add_argument("--wide", action="store_true",
                    help="flows: every rule also matches reg0=0 (the same decisions, over "
                         "Ferroswitch's wide field layout)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before the window")
    ap.add_argument("--duration", type=float, default=10.0, help="measurement window, seconds")
    ap.add_argument("--runs", type=int, default=1, help=">1: median and range reported")
    ap.add_argument("--systems", default=argparse.SUPPRESS,
                    help="comma-separated subset of " + ",".join(ALL_SYSTEMS)
                    + " (default: the scenario's systems: "
                    + "; ".join(f"{n}: {','.join(c.systems)}" for n, c in SCENARIOS.items())
                    + f"; {BASELINE} only with --baseline, which adds it after ferroswitch)")
    ap.add_argument("--baseline", metavar="REV", default=None,
                    help=f"also measure ferroswitch built from git revision REV (any commit-ish) "
                    f"as system {BASELINE}, interleaved with the others and configured like "
                    f"ferroswitch; built once per commit in a git worktree "
                    f"(CARGO_TARGET_DIR={BASELINE_ROOT.relative_to(REPO_ROOT)}/target), "
                    f"binaries cached in {BASELINE_ROOT.relative_to(REPO_ROOT)}/<sha>/")
    ap.add_argument("--out", default=str(REPO_ROOT / "bench-out"),
                    help="directory for the logs, the traffic, <scenario>-results.jsonl and "
                    "the chart <scenario>-results.svg")
    ap.add_argument("--build", action="store_true",
                    help="build ferroswitch first (" + " ".join(CARGO_BUILD) + "): the default, "
                    "kept so recorded commands still run")
    ap.add_argument("--no-build", action="store_true",
                    help="measure target/release's binaries as they are (built only if missing)")
    ap.add_argument("--build-timeout", type=float, default=1800)
    ap.add_argument("--start-timeout", type=float, default=60,
                    help="seconds to wait for a system to come up")
    ap.add_argument("--lock-timeout", type=float, default=600,
                    help="seconds to wait for another bench run to finish")
    a = ap.parse_args(argv)
    if getattr(a, "systems", None) is None:
        a.systems = list(SCENARIOS[a.scenario].systems)
        if a.scenario == "neutron":
            a.systems = {"sg": ["ferroswitch", "ovs-dpdk"], "portsec": ["ovs-dpdk"],
                         "vlan": ["ferroswitch", "ferroswitch-l2", "ovs-dpdk"]}[a.variant]
    else:
        a.systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    for s in a.systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s!r} (known: {', '.join(SYSTEMS)})")
    if len(set(a.systems)) != len(a.systems):
        ap.error(f"--systems lists a system twice: {','.join(a.systems)}")
    if a.baseline is None:
        if BASELINE in a.systems:
            ap.error(f"--systems {BASELINE} needs --baseline REV (the git revision to build)")
        a.baseline_commit = None
    else:
        try:
            a.baseline_commit = resolve_rev(a.baseline)
        except BenchError as exc:
            ap.error(f"--baseline: {exc}")
        if BASELINE not in a.systems:   # right after ferroswitch (or first)
            at = a.systems.index("ferroswitch") + 1 if "ferroswitch" in a.systems else 0
            a.systems.insert(at, BASELINE)
    if a.runs < 1 or a.warmup < 0 or a.duration <= 0:
        ap.error("--runs >= 1, --warmup >= 0, --duration > 0")
    a.vm_queue_size = getattr(a, "vm_queue_size", None)
    if a.vm_queue_size is not None and (a.vm_queue_size < 64 or a.vm_queue_size > 32768
                                        or a.vm_queue_size & (a.vm_queue_size - 1)):
        ap.error("--vm-queue-size: a power of 2 in [64, 32768]")
    if a.scenario != "neutron" and (a.variant != "sg" or a.connections != 1024):
        ap.error("--variant and --connections are options of the neutron scenario")
    if a.scenario == "neutron":
        if not 1 <= a.connections <= neutron_traffic.MAX_CONNECTIONS:
            ap.error(f"--connections: 1 to {neutron_traffic.MAX_CONNECTIONS}")
        if a.variant == "portsec" and any(s.startswith("ferroswitch") for s in a.systems):
            ap.error("--variant portsec is OVS's flow set only (ferroswitch's port security "
                     "always comes with its security groups): --systems ovs-dpdk")
    if a.macs > 1 and not SCENARIOS[a.scenario].supports_macs:
        ap.error(f"--macs {a.macs}: {a.scenario} does not take --macs > 1 (its traffic is "
                 + ("vm1's testpmd txonly: one flow between two fixed MACs)"
                    if a.scenario == "vm2vm-vhost" else "fixed: scripts/neutron_traffic.py)"))
    if a.scenario == "flows":
        # flow_traffic spreads flows over source addresses too.
        if not 1 <= a.flows <= 1 << 22:
            ap.error("--flows: 1 to 4194304 for the flows scenario")
        return a
    try:
        gen_pcap.build_frames(flows=a.flows, frame_size=a.frame_size, vlan=a.vlan, macs=a.macs)
    except ValueError as exc:
        ap.error(str(exc))
    return a


def install_signal_handlers() -> None:
    def first(signum, _frame):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, again)
        raise Interrupted(signal.Signals(signum).name)

    def again(signum, _frame):
        log(f"{signal.Signals(signum).name}: still cleaning up, please wait")

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, first)


@contextlib.contextmanager
def bench_lock(timeout: float):
    Path(LOCK_FILE).parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as f:
        deadline = time.monotonic() + timeout
        warned = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BenchError(f"another bench run holds {LOCK_FILE}")
                if not warned:
                    log(f"another bench run holds {LOCK_FILE}; waiting up to {timeout:.0f}s")
                    warned = True
                time.sleep(1)
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def main(argv=None) -> int:
    a = parse_args(argv)
    if os.geteuid() != 0:
        log("must run as root (hugepages, DPDK)")
        return 1
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    install_signal_handlers()
    rc = 0
    try:
        with bench_lock(a.lock_timeout):
            hz, src = tsc_hz()
            log(f"TSC {hz / 1e6:.2f} MHz ({src})" if hz else "TSC frequency unknown")
            ctx = Ctx(a, out, hz, src, str(os.getpid()))
            scen = SCENARIOS[a.scenario](ctx)
            scen.prepare()

            systems = []
            # the baseline goes wherever ferroswitch does
            scen_systems = scen.systems + ([BASELINE] if "ferroswitch" in scen.systems else [])
            for name in a.systems:
                cls = SYSTEMS[name]
                if name not in scen_systems:
                    log(f"skipping {name}: not part of scenario {scen.name}")
                    continue
                # vm-tso's guest, fsw-tsogen, is built with ferroswitch's binaries.
                tsogen_missing = scen.name == VmTso.name and not (_target_dir() / "fsw-tsogen").is_file()
                if cls in (Ferroswitch, FerroswitchL2, FerroswitchFull, FerroswitchNoTso) or tsogen_missing:
                    missing = any(not b.is_file() for b in Ferroswitch.binaries()) or tsogen_missing
                    if (not a.no_build and not Ferroswitch.built) or missing:
                        Ferroswitch.build(ctx)
                elif cls is FerroswitchBaseline:
                    FerroswitchBaseline.build(ctx)
                why = cls.unavailable(ctx)
                if why:
                    log(f"SKIPPING {name}: {why}")
                    if cls is FerroswitchBaseline:
                        rc = 1      # asked for explicitly with --baseline
                    continue
                systems.append(cls)

            results: dict[str, list] = {c.name: [] for c in systems}
            errors: dict[str, list] = {c.name: [] for c in systems}
            for r in range(a.runs):
                for cls in systems:
                    log(f"=== {cls.name}: run {r + 1}/{a.runs} ({scen.name})")
                    try:
                        results[cls.name].append(measure(cls(ctx, scen, r)))
                    except BenchError as exc:
                        log(f"ERROR: {cls.name} run {r + 1}: {exc}")
                        errors[cls.name].append(str(exc).splitlines()[0])
                        rc = 1

            lines = {}
            for cls in systems:
                lines[cls.name] = summarize(scen, cls.name, results[cls.name], errors[cls.name], ctx)
                print(json.dumps(lines[cls.name]), flush=True)

            def ratio(x, y, key="mpps"):
                mx = lines.get(x, {}).get(key)
                my = lines.get(y, {}).get(key)
                return rnd(mx / my, 4) if mx is not None and my else None
            # The scenario's testpmd (testpmd-io or testpmd-vhost) is the reference.
            base = next((n for n in scen.systems if n.startswith("testpmd")), "testpmd-io")
            ratios = {"scenario": scen.name, "ratios": {
                "ferroswitch/ovs-dpdk": ratio("ferroswitch", "ovs-dpdk"),
                f"ferroswitch/{base}": ratio("ferroswitch", base),
                f"ovs-dpdk/{base}": ratio("ovs-dpdk", base)}}
            if "ferroswitch-l2" in lines:   # port_security=false against plain L2 ports
                ratios["ratios"]["ferroswitch/ferroswitch-l2"] = ratio("ferroswitch", "ferroswitch-l2")
            if "ferroswitch-full" in lines:  # what a full tracker keeps
                ratios["ratios"]["ferroswitch-full/ferroswitch"] = ratio("ferroswitch-full",
                                                                         "ferroswitch")
            if a.baseline is not None:
                ratios["ratios"][f"ferroswitch/{BASELINE}"] = ratio("ferroswitch", BASELINE)
                ratios["cycles_per_packet_ratios"] = {
                    f"ferroswitch/{BASELINE}": ratio("ferroswitch", BASELINE, "cycles_per_packet")}
            print(json.dumps(ratios), flush=True)
            results_file = out / f"{scen.name}-results.jsonl"
            results_file.write_text("".join(json.dumps(v) + "\n" for v in lines.values()))
            log(f"results: {results_file}")
            if not lines:
                log("no system was measured: no chart")
            else:
                try:
                    svg = bench_chart.write_chart(list(lines.values()),
                                                  out / f"{scen.name}-results.svg")
                    log(f"chart: {svg}")
                except Exception as exc:  # noqa: BLE001  (the results are written already)
                    log(f"ERROR: chart not drawn: {exc!r}")
                    rc = 1
    except Interrupted as exc:
        log(f"interrupted ({exc}); cleaning up")
        rc = 130
    except BenchError as exc:
        log(f"ERROR: {exc}")
        rc = 1
    finally:
        # Anything left by an interrupted stop (stop() is idempotent).
        for s in CURRENT:
            with contextlib.suppress(Exception):
                s.stop()
            with contextlib.suppress(Exception):
                s.scen.after_stop(s)
        Proc.stop_all()
        restore_hugepages()
    return rc


if __name__ == "__main__":
    sys.exit(main())
