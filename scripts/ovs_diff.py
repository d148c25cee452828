#!/usr/bin/env python3
"""Differential test of the NORMAL action: Ferroswitch against OVS-DPDK.

The same ordered frame corpus goes through both switches, configured alike
(one bridge, five DPDK `net_pcap` ports: access, trunk, native-tagged,
native-untagged, trunk), and what each port transmits is compared byte for
byte, frame by frame, in order. Every difference fails the test unless the
corpus frame it comes from is marked as a deliberate divergence below (each
argued in docs/ARCHITECTURE.md, "L2 rules").

How frames get in, so that their order is the same for both switches:
  * ports p0-p3 receive from veth interfaces in a private network namespace
    (`net_pcap` with `rx_iface`); the test sends the corpus into them one
    group at a time and waits between groups, so learning, moves and floods
    happen in one order on both;
  * port p4 reads a finite pcap file (`rx_pcap`) when it is added, after the
    others are up: frames a veth cannot carry (under 14 bytes) and bursts of
    up to 32 frames that differ only where a per-burst decision cache could
    be fooled (inner tags, lengths), each frame in every burst position.
Every port writes what it sends to its own pcap file (`tx_pcap`).

Runs as root; skips (exit 0, "SKIP: ...") only where OVS-DPDK cannot run.
Usage: scripts/ovs_diff.py [--vswitchd target/ci/vswitchd] [--out DIR]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (shared process and OVS helpers)
from bench import OVS_SCHEMA, OVS_VSWITCHD_DPDK, BenchError, Proc, run_cmd, tail  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GAP_S = 0.12          # pause after each injected group: learning settles in both
VETH_MTU = 9600

# The ports, as (name, OVS Port columns, Ferroswitch TOML lines, mtu). Every
# MTU is 1500: OVS-DPDK cannot set another on a pcap port (the PMD has no
# mtu_set, and OVS then keeps 1500), so jumbo frames (chained mbufs) are
# tested against Ferroswitch alone, in tests/l2_switching.rs.
PORTS = [
    ("p0", {"tag": "10"}, ["tag = 10"], 1500),
    ("p1", {}, [], 1500),
    ("p2", {"vlan_mode": "native-tagged", "tag": "20", "trunks": "0,10,30"},
     ['vlan_mode = "native-tagged"', "tag = 20", "trunks = [0, 10, 30]"], 1500),
    ("p3", {"vlan_mode": "native-untagged", "tag": "30", "trunks": "0,10,20"},
     ['vlan_mode = "native-untagged"', "tag = 30", "trunks = [0, 10, 20]"], 1500),
    ("p4", {}, [], 1500),
]
FILE_PORT = 4


# ---- frames -----------------------------------------------------------------

def mac(s: str) -> bytes:
    return bytes(int(x, 16) for x in s.split(":"))


def vm(port: int, i: int) -> bytes:
    """A VM-style unicast MAC owned by `port`."""
    return bytes([0xfa, 0x16, 0x3e, 0xd0, port, i])


BCAST = b"\xff" * 6
UNKNOWN = bytes([0xfa, 0x16, 0x3e, 0xee, 0xee, 0xee])   # never a source


@dataclasses.dataclass
class Entry:
    id: int
    port: int
    data: bytes
    desc: str
    divergence: str | None = None   # key into DIVERGENCES


def tag(tpid: int, tci: int) -> bytes:
    return struct.pack("!HH", tpid, tci)


def build(dst: bytes, src: bytes, tags: list[tuple[int, int]], length: int, fid: int,
          ethertype: int = 0x0800) -> bytes:
    """dst src tags ethertype payload, `length` bytes; the id in the last 4."""
    f = dst + src + b"".join(tag(t, c) for t, c in tags) + struct.pack("!H", ethertype)
    body = bytes((i * 7 + fid) & 0xff for i in range(max(0, length - len(f))))
    f = (f + body)[:max(length, 0)]
    if len(f) >= len(dst) + len(src) + 4 * len(tags) + 2 + 4:
        f = f[:-4] + struct.pack("!BHB", 0xfd, fid & 0xffff, 0xfd)
    return f


def frame_id(f: bytes) -> int | None:
    if len(f) >= 18 and f[-4] == 0xfd and f[-1] == 0xfd:
        return struct.unpack("!H", f[-3:-1])[0]
    return None


class Corpus:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.groups: list[list[Entry]] = []    # injected, in order
        self.burst_file: list[Entry] = []      # p4's rx file

    def _new(self, port, data_fn, desc, divergence) -> Entry:
        fid = len(self.entries) + 1
        e = Entry(fid, port, data_fn(fid), desc, divergence)
        self.entries.append(e)
        return e

    def group(self, *items) -> None:
        """items: (port, builder(fid) -> bytes, desc[, divergence])."""
        g = [self._new(*(it + (None,) * (4 - len(it)))) for it in items]
        self.groups.append(g)

    def send(self, port, fn, desc, divergence=None) -> None:
        self.group((port, fn, desc, divergence))

    def to_file(self, fn, desc, divergence=None) -> None:
        self.burst_file.append(self._new(FILE_PORT, fn, desc, divergence))


def make_corpus() -> Corpus:
    c = Corpus()
    # 1. Learning: every port announces MACs in the VLANs it carries.
    learners = [
        (0, vm(0, 1), []), (1, vm(1, 1), [(0x8100, 10)]), (1, vm(1, 2), [(0x8100, 20)]),
        (1, vm(1, 3), []), (2, vm(2, 1), []), (2, vm(2, 2), [(0x8100, 10)]),
        (2, vm(2, 3), [(0x8100, 30)]), (3, vm(3, 1), []), (3, vm(3, 2), [(0x8100, 10)]),
        (3, vm(3, 3), [(0x8100, 20)]),
    ]
    for port, src, tags in learners:
        c.send(port, lambda i, s=src, t=tags: build(BCAST, s, t, 64, i),
               f"p{port} announces {src.hex(':')} tags {tags}")
    # 2. Unicast between every pair of learned MACs (same VLAN: one port;
    #    other VLAN: a flood in the sender's VLAN).
    for sp, smac, stags in learners:
        for dp, dmac, _ in learners:
            if dmac == smac:
                continue
            c.send(sp, lambda i, s=smac, d=dmac, t=stags: build(d, s, t, 70, i),
                   f"p{sp} {smac.hex(':')} -> {dmac.hex(':')}")
    # 3. Every port, every tag shape, to broadcast and to an unknown unicast.
    shapes = [
        ("untagged", []), ("prio pcp5", [(0x8100, 0xa000)]), ("prio pcp0", [(0x8100, 0x0000)]),
        ("prio dei", [(0x8100, 0x1000)], "dei"),
        ("vid10 pcp3", [(0x8100, 0x600a)]), ("vid20", [(0x8100, 20)]), ("vid30", [(0x8100, 30)]),
        ("vid40", [(0x8100, 40)]), ("s-tag 10", [(0x88a8, 10)]), ("0x9100 10", [(0x9100, 10)]),
        ("vid10 dei", [(0x8100, 0x100a)], "dei"),
        ("qinq 10/7", [(0x88a8, 10), (0x8100, 7)]), ("c-c 10/7", [(0x8100, 10), (0x8100, 7)]),
        ("c over s 20/9", [(0x8100, 20), (0x88a8, 9)]), ("s-s 10/11", [(0x88a8, 10), (0x88a8, 11)]),
        ("triple 10/7/8", [(0x88a8, 10), (0x8100, 7), (0x8100, 8)]),
        ("prio over c 0/5", [(0x8100, 0x2000), (0x8100, 5)]),
    ]
    for port in range(4):
        for name, tags, *div in shapes:
            for dst, dn in ((BCAST, "bcast"), (UNKNOWN, "unknown")):
                c.send(port, lambda i, d=dst, t=tags, p=port: build(d, vm(p, 0x40), t, 72, i),
                       f"p{port} {name} to {dn}", *div)
        c.send(port, lambda i, p=port: build(BCAST, vm(p, 0x41), [(0x8100, 4095)], 64, i),
               f"p{port} vid 4095", "vid4095")
    # 4. Reserved and multicast destinations: never learned from unless
    #    forwarded; the unicast that follows shows whether the source was.
    dests = [f"01:80:c2:00:00:{x:02x}" for x in range(16)] + [
        "01:80:c2:00:00:10", "01:80:c2:00:00:21", "01:00:0c:cc:cc:cc", "01:00:0c:cc:cc:cd",
        "01:00:0c:cd:cd:cd", "01:00:0c:cc:cc:c3", "00:e0:2b:00:00:00", "00:e0:2b:00:00:01",
        "01:00:5e:00:00:01", "33:33:00:00:00:01"]
    for k, d in enumerate(dests):
        src = bytes([0xfa, 0x16, 0x3e, 0xc0, 0, k])
        port, tags = (1, [(0x8100, 10)]) if k % 2 else (0, [])
        c.send(port, lambda i, d=d, s=src, t=tags: build(mac(d), s, t, 64, i, 0x88cc),
               f"p{port} to {d}")
        c.send(3, lambda i, s=src: build(s, vm(3, 9), [(0x8100, 10)], 64, i),
               f"p3 vlan 10 to {src.hex(':')} (learned from {d}?)")
    # 5. Source kinds: broadcast, multicast and zero sources, then unicast to them.
    for k, s in enumerate([BCAST, mac("01:00:5e:00:00:05"), b"\x00" * 6]):
        c.send(0, lambda i, s=s: build(BCAST, s, [], 64, i), f"p0 from {s.hex(':')}")
        c.send(1, lambda i, s=s: build(s, vm(1, 9), [(0x8100, 10)], 64, i),
               f"p1 vlan 10 to {s.hex(':')}")
    # 6. Self-addressed frames, before and after the address is learned.
    c.send(2, lambda i: build(vm(2, 7), vm(2, 7), [], 64, i), "p2 self-addressed, unknown")
    c.send(2, lambda i: build(vm(2, 7), vm(2, 7), [], 64, i), "p2 self-addressed, learned")
    # 7. Moves: vm(0,1) shows up on p1 (VLAN 10), then p3 talks to it; back.
    #    Each announcement is a header the switch has not seen before: OVS
    #    learns on a datapath miss, and re-learns from a cached flow only when
    #    its revalidator pushes the flow's statistics (up to a second later).
    c.send(1, lambda i: build(BCAST, vm(0, 1), [(0x8100, 10)], 64, i, 0x88b5), "vm(0,1) moves to p1")
    c.send(3, lambda i: build(vm(0, 1), vm(3, 2), [(0x8100, 10)], 64, i), "p3 -> moved vm(0,1)")
    c.send(0, lambda i: build(BCAST, vm(0, 1), [], 64, i, 0x88b6), "vm(0,1) back on p0")
    c.send(3, lambda i: build(vm(0, 1), vm(3, 2), [(0x8100, 10)], 64, i, 0x88b7),
           "p3 -> vm(0,1) again")
    # 8. Lengths around the MTUs (p0, p2: 1500; p1, p3: 9000).
    for length in (1514, 1518, 1522, 1600, 9000, 9018, 9022):
        c.send(0, lambda i, n=length: build(BCAST, vm(0, 2), [], n, i), f"p0 {length} bytes")
        c.send(1, lambda i, n=length: build(BCAST, vm(1, 4), [(0x8100, 10)], n, i),
               f"p1 vlan 10 {length} bytes")
        c.send(3, lambda i, n=length: build(BCAST, vm(3, 4), [], n, i), f"p3 native {length} bytes")
    c.send(0, lambda i: build(vm(1, 1), vm(0, 1), [], 9000, i), "p0 9000 unicast to p1")
    # 9. Runts a veth carries (14-63 bytes), untagged and tagged.
    for n in (14, 15, 16, 17, 18, 19, 20, 30, 42, 59, 60, 63):
        c.send(1, lambda i, n=n: build(BCAST, vm(1, 0x80 + n), [(0x8100, 10)], n, i),
               f"p1 tagged runt {n}")
        c.send(0, lambda i, n=n: build(BCAST, vm(0, 0x80 + n), [], n, i), f"p0 runt {n}")
    # 10. Groups sent back to back: frames in every position of a burst.
    c.group(*[(0, lambda i, k=k: build(BCAST if k % 3 else UNKNOWN, vm(0, 0x60 + k % 4), [], 60 + k, i),
               f"p0 back-to-back {k}") for k in range(32)])
    c.group(*[(1, lambda i, k=k: build(BCAST, vm(1, 0x60 + k % 2),
                                       [(0x8100, 10 if k % 2 else 20)] + [(0x8100, 5)] * (k % 3), 64, i),
               f"p1 back-to-back {k}") for k in range(32)])

    # p4's file, read in bursts of 32 when it is added: runts below 14 bytes,
    # then families of frames with the same first 16 bytes.
    for n in range(1, 14):
        c.to_file(lambda i, n=n: build(BCAST, vm(4, 1), [], n, i), f"p4 runt {n}")
    fams = [(BCAST, vm(4, 2), [(0x8100, 10)]), (UNKNOWN, vm(4, 3), [(0x88a8, 20)]),
            (BCAST, vm(4, 4), []), (mac("01:80:c2:00:00:00"), vm(4, 5), [(0x8100, 10)])]
    inner_variants = [[], [(0x8100, 7)], [(0x8100, 7), (0x8100, 8)], [(0x88a8, 9)]]
    for rnd in range(3):
        for fi, (d, s, outer) in enumerate(fams):
            for vi, inner in enumerate(inner_variants):
                for length in (17, 18, 60, 64 + 8 * rnd):
                    if len(c.burst_file) % 7 == 3:
                        length = 16
                    c.to_file(lambda i, d=d, s=s, t=outer + inner, n=length: build(d, s, t, n, i),
                              f"p4 family {fi} inner {vi} len {length} round {rnd}")
    return c


# ---- pcap ---------------------------------------------------------------------

def write_pcap(path: Path, frames: list[bytes]) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for k, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1, k, len(fr), len(fr)))
            f.write(fr)


def read_pcap(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    out, off = [], 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        out.append(data[off:off + incl])
        off += incl
    return out


# ---- the namespace and the injector ---------------------------------------------

class Namespace:
    def __init__(self, name: str) -> None:
        self.name = name

    def ip(self, *args: str) -> None:
        run_cmd(["ip", "-n", self.name, *args])

    def create(self) -> None:
        run_cmd(["ip", "netns", "add", self.name])
        self.ip("link", "set", "lo", "up")
        for i in range(4):
            a, b = f"d{i}a", f"d{i}b"
            self.ip("link", "add", a, "mtu", str(VETH_MTU), "type", "veth", "peer", "name", b,
                    "mtu", str(VETH_MTU))
        for k in ("all", "default"):
            run_cmd(["ip", "netns", "exec", self.name, "sysctl", "-qw",
                     f"net.ipv6.conf.{k}.disable_ipv6=1"])
        for i in range(4):
            for end in "ab":
                run_cmd(["ip", "netns", "exec", self.name, "sysctl", "-qw",
                         f"net.ipv6.conf.d{i}{end}.disable_ipv6=1"])
                self.ip("link", "set", f"d{i}{end}", "up")

    def delete(self) -> None:
        run_cmd(["ip", "netns", "del", self.name], check=False)


def enter_netns(name: str) -> None:
    """Moves this process into network namespace `name` (setns(2))."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)


def inject(corpus: Corpus) -> None:
    socks = []
    for i in range(4):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((f"d{i}b", 0))
        socks.append(s)
    try:
        for g in corpus.groups:
            for e in g:
                socks[e.port].send(e.data)
            time.sleep(GAP_S)
    finally:
        for s in socks:
            s.close()


# ---- the two switches -------------------------------------------------------------

def devargs(i: int, out: Path, rx_file: Path) -> str:
    rx = f"rx_pcap={rx_file}" if i == FILE_PORT else f"rx_iface=d{i}a"
    return f"net_pcap{i},{rx},tx_pcap={out / f'p{i}.pcap'}"


class FerroswitchRun:
    def __init__(self, vswitchd: Path, out: Path, rx_file: Path, forward_bpdu: bool):
        self.vswitchd, self.out, self.rx_file = vswitchd, out, rx_file
        self.forward_bpdu = forward_bpdu
        self.proc: Proc | None = None
        self.sock = self.out / "ctl.sock"

    def config_head(self) -> list[str]:
        """The configuration up to the bridges: EAL, dataplane, control."""
        q = lambda s: '"' + str(s) + '"'  # noqa: E731
        return ["[eal]", 'args = ["--no-pci", "--no-huge", "-m", "512", "--no-shconf", '
                f'"--file-prefix", "fswdiff-{os.getpid()}"]',
                "[dataplane]", "pmd_cores = [1]", "control_core = 0",
                "[control]", f"socket = {q(self.sock)}",
                f"state_dir = {q(os.path.dirname(self.sock) + '/state')}"]

    def start(self) -> None:
        q = lambda s: '"' + str(s) + '"'  # noqa: E731
        lines = self.config_head() + [
            "[[bridges]]", 'name = "br0"', f"forward_bpdu = {str(self.forward_bpdu).lower()}"]
        for i, (name, _, toml, mtu) in enumerate(PORTS):
            lines += ["[[bridges.ports]]", f"name = {q(name)}",
                      f"devargs = {q(devargs(i, self.out, self.rx_file))}", f"mtu_request = {mtu}", *toml]
        self.launch(lines)

    def ctl(self, *args: str, check: bool = True, timeout: float = 5):
        ctl = self.vswitchd.parent / "vswitchctl"
        return run_cmd([str(ctl), "--socket", str(self.sock), *args], check=check, timeout=timeout)

    def launch(self, lines: list[str]) -> None:
        """Writes the configuration, starts the daemon, waits for its socket."""
        cfg = self.out / "vswitchd.toml"
        cfg.write_text("\n".join(lines) + "\n")
        self.proc = Proc("vswitchd", [str(self.vswitchd), "--config", str(cfg)],
                         self.out / "vswitchd.log")
        deadline = time.monotonic() + 60
        while True:
            if not self.proc.alive():
                raise BenchError("vswitchd exited:\n" + tail(self.out / "vswitchd.log"))
            if self.ctl("port", "list", check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise BenchError("vswitchd not up:\n" + tail(self.out / "vswitchd.log"))
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


class OvsDaemons:
    """ovsdb-server and ovs-vswitchd-dpdk in a private run directory, DPDK
    initialised; the bridges in `self.bridges` are removed on stop."""

    def __init__(self, out: Path):
        self.out = out
        self.rundir = Path(tempfile.mkdtemp(prefix="fswdiff-ovs-"))
        self.env = dict(os.environ, OVS_RUNDIR=str(self.rundir), OVS_DBDIR=str(self.rundir),
                        OVS_LOGDIR=str(out), OVS_SYSCONFDIR=str(self.rundir))
        self.db_sock = self.rundir / "db.sock"
        self.procs: list[Proc] = []
        self.bridges: list[str] = []

    def vsctl(self, *args: str, check: bool = True):
        return run_cmd(["ovs-vsctl", f"--db=unix:{self.db_sock}", "--timeout=30", *args],
                       timeout=40, env=self.env, check=check)

    def start_daemons(self) -> None:
        db = self.rundir / "conf.db"
        run_cmd(["ovsdb-tool", "create", str(db), OVS_SCHEMA], env=self.env)
        self.procs.append(Proc("ovsdb-server", [
            "ovsdb-server", str(db), f"--remote=punix:{self.db_sock}",
            f"--unixctl={self.rundir / 'ovsdb-server.ctl'}",
            f"--log-file={self.out / 'ovsdb-server.log'}"], self.out / "ovsdb.stdout.log", env=self.env))
        deadline = time.monotonic() + 20
        while not self.db_sock.exists():
            if time.monotonic() > deadline:
                raise BenchError("ovsdb-server socket did not appear")
            time.sleep(0.1)
        self.vsctl("--no-wait", "init")
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
                   f'other_config:dpdk-extra="--no-pci --file-prefix=fswdiff-ovs-{os.getpid()}"',
                   "other_config:dpdk-socket-mem=1024", "other_config:pmd-cpu-mask=0x2",
                   "other_config:dpdk-lcore-mask=0x1")
        self.procs.append(Proc("ovs-vswitchd-dpdk", [
            OVS_VSWITCHD_DPDK, f"unix:{self.db_sock}", f"--unixctl={self.rundir / 'vswitchd.ctl'}",
            f"--log-file={self.out / 'ovs-vswitchd.log'}"], self.out / "ovs-vswitchd.stdout.log",
            env=self.env))
        deadline = time.monotonic() + 90
        while True:
            cp = self.vsctl("--no-wait", "get", "Open_vSwitch", ".", "dpdk_initialized", check=False)
            if cp.returncode == 0 and cp.stdout.strip() == "true":
                break
            if not self.procs[-1].alive() or time.monotonic() > deadline:
                raise BenchError("OVS DPDK did not initialise:\n" + tail(self.out / "ovs-vswitchd.log"))
            time.sleep(0.3)

    def appctl(self, *args: str):
        return run_cmd(["ovs-appctl", "-t", str(self.rundir / "vswitchd.ctl"), *args],
                       env=self.env).stdout

    def stop(self) -> None:
        try:
            if self.procs and self.procs[-1].alive():
                # Closing the ports flushes their tx files.
                for br in self.bridges:
                    self.vsctl("del-br", br, check=False)
        finally:
            for p in reversed(self.procs):
                p.stop()
            shutil.rmtree(self.rundir, ignore_errors=True)


class OvsRun(OvsDaemons):
    def __init__(self, out: Path, rx_file: Path, forward_bpdu: bool):
        super().__init__(out)
        self.forward_bpdu = forward_bpdu
        self.bridges = ["br0"]
        # OVS polls a new port's rx queue before its bridge port exists, and
        # drops what arrives meanwhile: p4 starts on an empty file, and its
        # frames are put in place and read once the port is in the bridge.
        self.frames_file = rx_file
        self.rx_file = rx_file.with_name("p4-rx-ovs.pcap")
        write_pcap(self.rx_file, [])

    def start(self) -> None:
        self.start_daemons()
        self.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                   f"other_config:forward-bpdu={str(self.forward_bpdu).lower()}")
        # p0-p3 first, in one transaction; the file port once they are up.
        for batch in (range(4), [FILE_PORT]):
            cmd: list[str] = []
            for i in batch:
                name, cols, _, mtu = PORTS[i]
                cmd += ["--", "add-port", "br0", name, *[f"{k}={v}" for k, v in cols.items()],
                        "--", "set", "Interface", name, "type=dpdk",
                        f"options:dpdk-devargs={devargs(i, self.out, self.rx_file)}",
                        f"mtu_request={mtu}"]
            self.vsctl(*cmd)
            for i in batch:
                name = PORTS[i][0]
                deadline = time.monotonic() + 30
                while True:
                    cp = self.vsctl("get", "Interface", name, "ofport")
                    if cp.stdout.strip() not in ("-1", "[]", ""):
                        break
                    if time.monotonic() > deadline:
                        raise BenchError(f"OVS port {name} did not come up:\n"
                                         + tail(self.out / "ovs-vswitchd.log"))
                    time.sleep(0.2)
            time.sleep(0.5)
        # The file port's frames, read from the start when its device
        # restarts (a new rx ring size makes OVS stop and start it).
        tmp = self.rx_file.with_suffix(".tmp")
        shutil.copyfile(self.frames_file, tmp)
        os.replace(tmp, self.rx_file)
        self.vsctl("set", "Interface", PORTS[FILE_PORT][0], "options:n_rxq_desc=1024")
        deadline = time.monotonic() + 30
        ctl = ["ovs-appctl", "-t", str(self.rundir / "vswitchd.ctl"), "dpctl/show"]
        while "configured_rxq_descriptors=1024" not in run_cmd(ctl, env=self.env).stdout:
            if time.monotonic() > deadline:
                raise BenchError("OVS did not restart p4:\n" + tail(self.out / "ovs-vswitchd.log"))
            time.sleep(0.2)


def run_switch(sw, corpus: Corpus) -> dict[str, list[bytes]]:
    sw.start()
    try:
        time.sleep(1.0)      # p4's file is read in full
        inject(corpus)
        time.sleep(0.5)
    finally:
        sw.stop()
    return {name: read_pcap(sw.out / f"{name}.pcap") for name, *_ in PORTS}


# ---- comparison -------------------------------------------------------------------

# Deliberate divergences: corpus frames marked with one of these keys may come
# out differently; what Ferroswitch does instead is checked, not ignored.
DIVERGENCES = {
    "vid4095": "802.1Q reserves VID 4095: Ferroswitch drops it on ingress, OVS forwards it.",
    "dei": "Ferroswitch keeps a tag's DEI bit when it rewrites the tag (802.1Q: the DEI "
           "belongs to the frame); OVS clears it. Compared with DEI cleared on both sides, "
           "and Ferroswitch's copy must still carry it.",
}
DEI = 0x1000


def outer_tci(f: bytes) -> int | None:
    if len(f) >= 16 and struct.unpack("!H", f[12:14])[0] in (0x8100, 0x88a8):
        return struct.unpack("!H", f[14:16])[0]
    return None


def without_dei(f: bytes) -> bytes:
    t = outer_tci(f)
    return f if t is None else f[:14] + struct.pack("!H", t & ~DEI) + f[16:]


def describe(f: bytes, corpus: dict[int, Entry]) -> str:
    fid = frame_id(f)
    e = corpus.get(fid) if fid is not None else None
    what = f"#{fid} {e.desc}" if e else "(no id)"
    return f"{what}: {len(f)} bytes {f[:22].hex()}"


class Sources:
    """Which corpus entry, and which burst of it, an output frame came from:
    by the id in its last bytes, or for frames too short to keep one by its
    source MAC (unique among short entries), else the file port's burst."""

    def __init__(self, corpus: Corpus) -> None:
        self.by_id = {e.id: e for e in corpus.entries}
        self.segment: dict[int, str] = {e.id: "file" for e in corpus.burst_file}
        for gi, g in enumerate(corpus.groups):
            for e in g:
                self.segment[e.id] = f"group {gi}"
        self.short: dict[bytes, Entry] = {}
        for e in corpus.entries:
            if len(e.data) < 30 and len(e.data) >= 12 and e.port != FILE_PORT:
                assert e.data[6:12] not in self.short, f"short frames share a source: {e.desc}"
                self.short[e.data[6:12]] = e

    def entry(self, f: bytes) -> Entry | None:
        fid = frame_id(f)
        if fid in self.by_id:
            return self.by_id[fid]
        return self.short.get(f[6:12])

    def key(self, f: bytes) -> str:
        e = self.entry(f)
        return self.segment[e.id] if e else "file"


def compare(fsw: dict[str, list[bytes]], ovs: dict[str, list[bytes]], corpus: Corpus) -> list[str]:
    """Per port: the same frames from the same burst, byte for byte (OVS
    batches a burst's frames by flow, so the order within one burst is not
    compared; bursts follow each other in corpus order in both)."""
    src = Sources(corpus)
    problems = []

    def norm(f: bytes) -> bytes:
        e = src.entry(f)
        return without_dei(f) if e and e.divergence == "dei" else f

    def strict(frames: list[bytes]) -> dict[str, list[bytes]]:
        seg: dict[str, list[bytes]] = {}
        for f in frames:
            e = src.entry(f)
            if e and e.divergence == "vid4095":
                continue
            seg.setdefault(src.key(f), []).append(norm(f))
        return {k: sorted(v) for k, v in seg.items()}

    for name, *_ in PORTS:
        a, b = strict(fsw[name]), strict(ovs[name])
        for key in sorted(set(a) | set(b), key=lambda k: (k != "file", len(k), k)):
            fa, fb = a.get(key, []), b.get(key, [])
            if fa == fb:
                continue
            msg = [f"{name}, {key}: {len(fa)} frames from ferroswitch, {len(fb)} from OVS"]
            for who, mine, theirs in (("only ferroswitch sent", fa, fb), ("only OVS sent", fb, fa)):
                rest = list(theirs)
                for f in mine:
                    if f in rest:
                        rest.remove(f)
                    else:
                        msg.append(f"  {who}: {describe(f, src.by_id)}")
            problems.append("\n".join(msg[:30]))
        # What the divergences promise of Ferroswitch.
        for f in fsw[name]:
            e = src.entry(f)
            if e and e.divergence == "vid4095":
                problems.append(f"{name}: VID 4095 frame #{e.id} was forwarded by ferroswitch")
            if e and e.divergence == "dei" and outer_tci(f) is not None \
                    and outer_tci(f) & DEI == 0 and outer_tci(f) & 0x0fff:
                problems.append(f"{name}: #{e.id} {e.desc} lost its DEI bit in ferroswitch")
    return problems


# ---- main -------------------------------------------------------------------------

def inner(args) -> int:
    corpus = make_corpus()
    out = Path(args.out)
    n = len(corpus.entries)
    print(f"ovs_diff: {n} frames ({sum(len(g) for g in corpus.groups)} injected in "
          f"{len(corpus.groups)} groups, {len(corpus.burst_file)} from p4's file)", flush=True)
    failures = 0
    for forward_bpdu in (False, True):
        results = {}
        for kind in ("ferroswitch", "ovs-dpdk"):
            d = out / f"bpdu-{str(forward_bpdu).lower()}" / kind
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            rx = d / "p4-rx.pcap"
            write_pcap(rx, [e.data for e in corpus.burst_file])
            sw = (FerroswitchRun(Path(args.vswitchd), d, rx, forward_bpdu) if kind == "ferroswitch"
                  else OvsRun(d, rx, forward_bpdu))
            t0 = time.monotonic()
            results[kind] = run_switch(sw, corpus)
            sent = sum(len(v) for v in results[kind].values())
            print(f"ovs_diff: forward_bpdu={forward_bpdu} {kind}: {sent} frames out "
                  f"({time.monotonic() - t0:.1f} s)", flush=True)
        problems = compare(results["ferroswitch"], results["ovs-dpdk"], corpus)
        for p in problems:
            print(f"DIFF (forward_bpdu={forward_bpdu}) {p}")
        failures += len(problems)
        if sum(len(v) for v in results["ovs-dpdk"].values()) == 0:
            print("ovs_diff: OVS sent nothing: the comparison proves nothing")
            failures += 1
    print("ovs_diff: divergences allowed: " + "; ".join(f"{k}: {v}" for k, v in DIVERGENCES.items()))
    print(f"ovs_diff: {'PASS' if failures == 0 else f'FAIL ({failures} differences)'}")
    return 0 if failures == 0 else 1


def run_isolated(name: str, args, inner, ns_prefix: str, tmp_prefix: str,
                 tools: tuple[tuple[str, str], ...] = ()) -> int:
    """A differential run's frame: skip (exit 0, "SKIP: ...") where OVS-DPDK
    cannot run, else run `inner(args)` holding the benchmark lock, in a
    network namespace of its own, and stop everything started on the way.
    `tools`: (program, Debian package) that must be there too."""
    if os.geteuid() != 0:
        print(f"SKIP: {name} needs root (namespaces, DPDK)")
        return 0
    why = bench.OvsDpdk.unavailable(None)
    for tool, package in tools:
        if not why and not shutil.which(tool):
            why = f"{tool} not found (package {package})"
    if why:
        print(f"SKIP: OVS-DPDK cannot run here: {why}")
        return 0
    if not Path(args.vswitchd).is_file():
        print(f"{name}: {args.vswitchd} missing: build it first (cargo build --profile ci)")
        return 1
    keep = args.out is not None
    args.out = args.out or tempfile.mkdtemp(prefix=tmp_prefix)
    ns = Namespace(f"{ns_prefix}{os.getpid()}")
    try:
        # One switch on the PMD core at a time: no benchmark beside this.
        with bench.bench_lock(1800):
            ns.create()
            enter_netns(ns.name)
            return inner(args)
    except BenchError as exc:
        print(f"{name}: ERROR: {exc}")
        return 1
    finally:
        Proc.stop_all()
        ns.delete()
        if not keep:
            shutil.rmtree(args.out, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vswitchd", default=str(REPO / "target" / "ci" / "vswitchd"))
    ap.add_argument("--out", default=None, help="keep the pcaps and logs here")
    args = ap.parse_args()
    return run_isolated("ovs_diff", args, inner, "fswdiff", "fswdiff-")


if __name__ == "__main__":
    sys.exit(main())
