#!/usr/bin/env python3
"""Traffic of the `neutron` benchmark scenario (docs PEERS.md), as pcap files.

p0 is the VM port (untagged), p1 the provider NIC (802.1Q VLAN 3029). The VM
(MAC VM_MAC, fixed IP VM_IP) has the security group "egress any, ingress TCP
22 and ICMP" with port security on. Per replay of the files:

  p0 sends  N UDP egress connections (VM:1024+i -> a UDP server)      pass
            64 TCP SYN-ACKs from port 22 (answers to p1's SYNs)        pass
            64 ICMP echo replies (answers to p1's echo requests)       pass
            64 UDP with a spoofed source IP                            drop
            32 with a spoofed source MAC                               drop
            16 ARP requests with the VM's sender IP                    pass
            16 ARP requests with a spoofed sender IP                   drop
  p1 sends  the N UDP replies                                          pass
            64 TCP SYN to port 22                                      pass
            64 ICMP echo requests                                      pass
            64 TCP SYN to port 80                                      drop
            64 UDP to port 53                                          drop

With N = 1024 (PEERS.md) a correct switch forwards p1.tx/p0.rx = 1168/1280
= 0.9125 and p0.tx/p1.rx = 1152/1280 = 0.900, and its connection tracker
holds N + 128 = 1152 connections. Larger N (up to 16,515,072: 64512 source
ports x 256 server addresses) fills the tracker with that many concurrent
connections, every one of them touched on every replay.

The frames of each file are shuffled (fixed seed), so a burst mixes every
kind. Frames are 64 bytes with the FCS (60-byte records, 64 with the tag);
IPv4, TCP, UDP and ICMP checksums are valid. Python 3 stdlib only.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_pcap import csum16, parse_ipv4, parse_mac, write_pcap  # noqa: E402

PROVIDER_VLAN = 3029
VM_MAC = "fa:16:3e:11:00:01"
VM_IP = "10.0.0.10"
SUBNET = "10.0.0.0/24"
GW_MAC = "fa:16:3e:22:00:01"      # the provider network's router: every remote host is behind it
GW_IP = "10.0.0.1"
UDP_SERVER_NET = (172, 16)        # UDP server i // 64512 + 1 of 172.16.0.0/16 ...
UDP_SERVER_PORT = 5001
SSH_CLIENT = "172.17.0.1"         # opens connections to the VM's port 22
PINGER = "172.18.0.1"             # pings the VM
SCANNER = "172.19.0.1"            # TCP 80 and UDP 53: denied
SPOOFED_IP = "10.0.0.200"
SPOOFED_MAC_PREFIX = "fa:16:3e:66:00:"
FRAME_RECORD = 60                 # 64-byte frames less the FCS
SPORTS = 65536 - 1024             # UDP source ports per server address
MAX_CONNECTIONS = SPORTS * 256
PROTO_ICMP, PROTO_TCP, PROTO_UDP = 1, 6, 17
TCP_SYN, TCP_ACK = 0x02, 0x10


def eth(dst: bytes, src: bytes, ethertype: int, vlan: int | None) -> bytes:
    head = dst + src
    if vlan is not None:
        head += struct.pack("!HH", 0x8100, vlan)
    return head + struct.pack("!H", ethertype)


def pad(frame: bytes, vlan: int | None) -> bytes:
    size = FRAME_RECORD + (4 if vlan is not None else 0)
    return frame + bytes(max(0, size - len(frame)))


def ipv4(src: bytes, dst: bytes, proto: int, l4: bytes, ip_id: int) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ip_id & 0xFFFF, 0, 64, proto, 0,
                      src, dst)
    return hdr[:10] + struct.pack("!H", csum16(hdr)) + hdr[12:] + l4


def l4_checksum(src: bytes, dst: bytes, proto: int, seg: bytes, at: int) -> bytes:
    pseudo = src + dst + struct.pack("!BBH", 0, proto, len(seg))
    cs = csum16(pseudo + seg)
    if proto == PROTO_UDP and cs == 0:
        cs = 0xFFFF
    return seg[:at] + struct.pack("!H", cs) + seg[at + 2:]


def udp(smac, dmac, sip, dip, sport, dport, vlan, ip_id=0) -> bytes:
    payload = bytes(18)   # fills a 60-byte record exactly
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    seg = l4_checksum(sip, dip, PROTO_UDP, seg, 6)
    return pad(eth(dmac, smac, 0x0800, vlan) + ipv4(sip, dip, PROTO_UDP, seg, ip_id), vlan)


def tcp(smac, dmac, sip, dip, sport, dport, flags, seq, ack, vlan) -> bytes:
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    seg = l4_checksum(sip, dip, PROTO_TCP, seg, 16)
    return pad(eth(dmac, smac, 0x0800, vlan) + ipv4(sip, dip, PROTO_TCP, seg, 0), vlan)


def icmp_echo(smac, dmac, sip, dip, icmp_type, ident, vlan) -> bytes:
    msg = struct.pack("!BBHHH", icmp_type, 0, 0, ident, 1) + bytes(18)
    msg = msg[:2] + struct.pack("!H", csum16(msg)) + msg[4:]
    return pad(eth(dmac, smac, 0x0800, vlan) + ipv4(sip, dip, PROTO_ICMP, msg, 0), vlan)


def arp_request(smac, sip, tip, vlan) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, smac, sip, bytes(6), tip)
    return pad(eth(b"\xff" * 6, smac, 0x0806, vlan) + body, vlan)


def udp_server(i: int) -> tuple[bytes, int]:
    """The (server address, VM source port) of UDP connection i."""
    a, b = UDP_SERVER_NET
    return bytes((a, b, 0, i // SPORTS + 1)), 1024 + i % SPORTS


def build(connections: int = 1024, seed: int = 1) -> tuple[list[bytes], list[bytes]]:
    """(p0 frames, p1 frames) with `connections` UDP egress connections."""
    if not 1 <= connections <= MAX_CONNECTIONS:
        raise ValueError(f"connections must be in [1, {MAX_CONNECTIONS}]")
    vm_mac, vm_ip, gw_mac = parse_mac(VM_MAC), parse_ipv4(VM_IP), parse_mac(GW_MAC)
    ssh, pinger, scanner = parse_ipv4(SSH_CLIENT), parse_ipv4(PINGER), parse_ipv4(SCANNER)
    spoofed_ip = parse_ipv4(SPOOFED_IP)
    v = PROVIDER_VLAN
    p0: list[bytes] = []
    p1: list[bytes] = []
    for i in range(connections):
        server, sport = udp_server(i)
        p0.append(udp(vm_mac, gw_mac, vm_ip, server, sport, UDP_SERVER_PORT, None, i))
        p1.append(udp(gw_mac, vm_mac, server, vm_ip, UDP_SERVER_PORT, sport, v, i))
    for j in range(64):
        client_isn, vm_isn = 0x10000000 + j * 0x10000, 0x70000000 + j * 0x10000
        p1.append(tcp(gw_mac, vm_mac, ssh, vm_ip, 40000 + j, 22, TCP_SYN, client_isn, 0, v))
        p0.append(tcp(vm_mac, gw_mac, vm_ip, ssh, 22, 40000 + j, TCP_SYN | TCP_ACK, vm_isn,
                      client_isn + 1, None))
        p1.append(icmp_echo(gw_mac, vm_mac, pinger, vm_ip, 8, j + 1, v))
        p0.append(icmp_echo(vm_mac, gw_mac, vm_ip, pinger, 0, j + 1, None))
        p1.append(tcp(gw_mac, vm_mac, scanner, vm_ip, 50000 + j, 80, TCP_SYN, 0x30000000, 0, v))
        p1.append(udp(gw_mac, vm_mac, scanner, vm_ip, 50000 + j, 53, v))
        p0.append(udp(vm_mac, gw_mac, spoofed_ip, udp_server(0)[0], 3000 + j, UDP_SERVER_PORT,
                      None))
    for k in range(32):
        spoofed_mac = parse_mac(f"{SPOOFED_MAC_PREFIX}{k:02x}")
        p0.append(udp(spoofed_mac, gw_mac, vm_ip, udp_server(0)[0], 4000 + k, UDP_SERVER_PORT,
                      None))
    for k in range(16):
        p0.append(arp_request(vm_mac, vm_ip, parse_ipv4(f"10.0.0.{100 + k}"), None))
        p0.append(arp_request(vm_mac, parse_ipv4(f"10.0.0.{200 + k}"),
                              parse_ipv4(GW_IP), None))
    rng = random.Random(seed)
    rng.shuffle(p0)
    rng.shuffle(p1)
    return p0, p1


FILLER_MAC = "fa:16:3e:11:00:02"   # a second VM of the network, only to fill the tracker
FILLER_IP = "10.0.0.11"
FILLER_SERVER_NET = (172, 20)


def fill(connections: int) -> list[bytes]:
    """One UDP frame from the filler VM per connection (server i // 64512 + 1
    of 172.20.0.0/16, source port 1024 + i % 64512): replayed once, it leaves
    that many unanswered connections in the tracker (60 s each, OVS's
    udp_first) beside the scenario's own."""
    if not 0 <= connections <= MAX_CONNECTIONS:
        raise ValueError(f"fill connections must be in [0, {MAX_CONNECTIONS}]")
    smac, sip, gw = parse_mac(FILLER_MAC), parse_ipv4(FILLER_IP), parse_mac(GW_MAC)
    a, b = FILLER_SERVER_NET
    return [udp(smac, gw, sip, bytes((a, b, 0, i // SPORTS + 1)), 1024 + i % SPORTS,
                UDP_SERVER_PORT, None, i)
            for i in range(connections)]


def expected_ratios(connections: int = 1024) -> tuple[float, float]:
    """(p1.tx/p0.rx, p0.tx/p1.rx) of a correct switch with the security group."""
    return (connections + 144) / (connections + 256), (connections + 128) / (connections + 256)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=1024,
                    help="UDP egress connections (PEERS.md: 1024)")
    ap.add_argument("-o", "--out-dir", required=True, help="writes p0.pcap and p1.pcap here")
    a = ap.parse_args(argv)
    try:
        p0, p1 = build(a.connections)
    except ValueError as exc:
        ap.error(str(exc))
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_pcap(str(out / "p0.pcap"), p0)
    write_pcap(str(out / "p1.pcap"), p1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
