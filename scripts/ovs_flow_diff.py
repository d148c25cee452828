#!/usr/bin/env python3
"""Differential test of the OpenFlow flow tables: Ferroswitch against OVS-DPDK.

Two corpora, each run through both switches configured alike (the same
ports with the same OpenFlow numbers, the same flows), and what every port
transmits is compared byte for byte, frame by frame, in order:

  * actions: bridge br0, four plain ports p0-p3 (OpenFlow ports 1-4) and a
    flow table (ACTION_FLOWS) that uses every match and action Ferroswitch
    supports, each case keyed by its own destination MAC: outputs and
    copies, in_port, FLOOD, ALL, NORMAL, drop; VLAN, MAC, IPv4, TCP/UDP,
    ICMP, ARP, IPv6 and ND matches; MAC, VLAN (mod_vlan_*, strip_vlan,
    push_vlan onto tagged and untagged frames, set_field/load on the TCI),
    IPv4 and IPv6 edits (the IP header and TCP/UDP checksums must come out
    as OVS computes them), dec_ttl at TTL 1, registers and metadata through
    load/set_field/move across resubmit and goto_table, ct with zones,
    commits, marks and ct_clear. One frame or more per flow: on OVS every
    flow must count a packet (the corpus's own check);
  * neutron: bridge br-int with the flows Neutron's OVS agent and native
    conntrack firewall write (scripts/bench.py NEUTRON_OVS_FLOWS, variant
    sg: port security and the group "egress any, ingress TCP 22 and ICMP";
    local VLAN 2, provider VLAN 3029), the VM on p0 (OpenFlow port 1,
    access VLAN 2), an uplink p1 (port 2, trunk of VLAN 2, where provider
    frames come tagged 3029) and p2 (port 3, trunk, frames tagged 2), and
    frames in an order that walks connection tracking through new, est,
    rpl, rel and inv: egress connections and their replies, ingress SSH
    (allowed, committed), HTTP (dropped), ICMP echoes both ways, an ICMP
    error about a tracked connection, TCP segments of no connection,
    spoofed addresses, ARP and DHCP.

Frames go in as in ovs_diff.py (same namespace, veths and injector): one
group at a time through veths into `net_pcap` ports (`rx_iface`), with a
pause after each, so both switches see the same order; every port writes
what it sends to a pcap file (`tx_pcap`). Each frame carries its corpus id
in its last four bytes (the L4 payload, an ARP trailer, an ND nonce
option), so every output frame is traced to the frame it came from. The
outputs are compared per port as sequences: nothing is ignored or
normalised; a corpus frame marked with a key of DIVERGENCES (the reason
given there) is held instead to what the divergence says each switch sends.

The flows: Ferroswitch gets the file through `vswitchctl del-flows` and
`add-flows`; OVS (fail_mode=secure) through `ovs-ofctl del-flows` and
`add-flows` with ovs-ofctl's default protocol (OpenFlow 1.0 with Nicira
extensions, as bench.py gives flows to OVS), and
the flows that need OpenFlow 1.1 or later (push_vlan, goto_table) with
`-O OpenFlow13`. Every flow has its own cookie: after the run both
switches' `dump-flows` counters are compared flow by flow.

Runs as root; skips (exit 0, "SKIP: ...") only where OVS-DPDK cannot run.
Usage: scripts/ovs_flow_diff.py [--vswitchd target/ci/vswitchd] [--out DIR]
       [--corpus actions|neutron|all]
"""
from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import re
import shutil
import struct
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (shared process and OVS helpers)
import ovs_diff  # noqa: E402  (namespace, injector, pcap files, the two switches)
from bench import BenchError, run_cmd  # noqa: E402
from gen_pcap import csum16 as csum  # noqa: E402  (RFC 1071)
from ovs_diff import Corpus, frame_id, inject, mac, read_pcap  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


# ---- frames -------------------------------------------------------------------

def ip(s: str) -> bytes:
    return ipaddress.ip_address(s).packed


def D(n: int) -> str:
    """The destination MAC that selects case `n` of the actions corpus."""
    return f"02:00:00:00:00:{n:02x}"


def mark(fid: int) -> bytes:
    """The corpus id, as ovs_diff.frame_id reads it from a frame's end."""
    return struct.pack("!BHB", 0xfd, fid & 0xffff, 0xfd)


def payload(fid: int, n: int = 16) -> bytes:
    return bytes((0x41 + i) & 0xff for i in range(n)) + mark(fid)


def eth(dst: str, src: str, tags: list[tuple[int, int]], ethertype: int, body: bytes) -> bytes:
    """dst src [tpid tci]... ethertype body; tags as (tpid, tci)."""
    return (mac(dst) + mac(src) + b"".join(struct.pack("!HH", t, c) for t, c in tags)
            + struct.pack("!H", ethertype) + body)


def ipv4(src: str, dst: str, proto: int, l4: bytes, tos: int = 0, ttl: int = 64,
         ident: int = 1) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(l4), ident, 0x4000, ttl, proto, 0,
                    ip(src), ip(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + l4


def ipv6(src: str, dst: str, nh: int, l4: bytes, tc: int = 0, label: int = 0,
         hlim: int = 64) -> bytes:
    first = (6 << 28) | (tc << 20) | label
    return struct.pack("!IHBB16s16s", first, len(l4), nh, hlim, ip(src), ip(dst)) + l4


def pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    if ":" in src:
        return ip(src) + ip(dst) + struct.pack("!IxxxB", length, proto)
    return ip(src) + ip(dst) + struct.pack("!xBH", proto, length)


def tcp(src: str, dst: str, sport: int, dport: int, flags: int, data: bytes, seq: int = 1000,
        ack: int = 0, win: int = 65535) -> bytes:
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, win, 0, 0) + data
    c = csum(pseudo(src, dst, 6, len(h)) + h)
    return h[:16] + struct.pack("!H", c) + h[18:]


def udp(src: str, dst: str, sport: int, dport: int, data: bytes, checksum: bool = True) -> bytes:
    h = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    if not checksum:
        return h
    c = csum(pseudo(src, dst, 17, len(h)) + h) or 0xffff
    return h[:6] + struct.pack("!H", c) + h[8:]


def icmp(typ: int, code: int, rest: bytes, data: bytes) -> bytes:
    h = struct.pack("!BBH", typ, code, 0) + rest + data
    return h[:2] + struct.pack("!H", csum(h)) + h[4:]


def icmp6(src: str, dst: str, typ: int, code: int, body: bytes) -> bytes:
    h = struct.pack("!BBH", typ, code, 0) + body
    c = csum(pseudo(src, dst, 58, len(h)) + h)
    return h[:2] + struct.pack("!H", c) + h[4:]


def arp(op: int, sha: str, spa: str, tha: str, tpa: str, fid: int) -> bytes:
    """An ARP body with an 18-byte trailer ending in the id (a 60-byte frame)."""
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac(sha), ip(spa), mac(tha), ip(tpa))
    return body + bytes(14) + mark(fid)


def nd(src: str, dst: str, typ: int, target: str, lla: str | None, fid: int) -> bytes:
    """A neighbour solicitation (135) or advertisement (136) for `target`,
    with a link-layer address option if given, then a nonce option (RFC
    3971, ignored by who does not know it) ending in the id."""
    flags = 0x60000000 if typ == 136 else 0
    body = struct.pack("!I16s", flags, ip(target))
    if lla:
        body += struct.pack("!BB6s", 1 if typ == 135 else 2, 1, mac(lla))
    body += struct.pack("!BB", 14, 1) + b"\x5a\x5b" + mark(fid)
    return icmp6(src, dst, typ, 0, body)


# Frame builders: fid -> bytes.

def udp4(dst: str, src: str = "02:00:00:00:01:01", tags=(), sip="10.0.0.1", dip="10.0.0.2",
         sport=1024, dport=5001, tos=0, ttl=64, checksum=True):
    return lambda i: eth(dst, src, list(tags), 0x0800, ipv4(
        sip, dip, 17, udp(sip, dip, sport, dport, payload(i), checksum), tos=tos, ttl=ttl))


def tcp4(dst: str, src: str = "02:00:00:00:01:01", tags=(), sip="10.0.0.1", dip="10.0.0.2",
         sport=40000, dport=80, flags=0x02, tos=0, ttl=64, seq=1000, ack=0):
    return lambda i: eth(dst, src, list(tags), 0x0800, ipv4(
        sip, dip, 6, tcp(sip, dip, sport, dport, flags, payload(i), seq, ack), tos=tos, ttl=ttl))


def icmp4(dst: str, src: str = "02:00:00:00:01:01", tags=(), sip="10.0.0.1", dip="10.0.0.2",
          typ=8, code=0, ident=0x77, seq=1, ttl=64):
    return lambda i: eth(dst, src, list(tags), 0x0800, ipv4(
        sip, dip, 1, icmp(typ, code, struct.pack("!HH", ident, seq), payload(i)), ttl=ttl))


def raw4(dst: str, proto: int, src: str = "02:00:00:00:01:01", sip="10.0.0.1", dip="10.0.0.2"):
    return lambda i: eth(dst, src, [], 0x0800, ipv4(sip, dip, proto, payload(i, 22)))


def udp6(dst: str, src: str = "02:00:00:00:01:01", tags=(), sip="fd00:1::5", dip="fd00:2::1",
         sport=1024, dport=5001, tc=0, label=0, hlim=64):
    return lambda i: eth(dst, src, list(tags), 0x86dd, ipv6(
        sip, dip, 17, udp(sip, dip, sport, dport, payload(i)), tc=tc, label=label, hlim=hlim))


def tcp6(dst: str, src: str = "02:00:00:00:01:01", sip="fd00:1::5", dip="fd00:2::1",
         sport=40000, dport=443, flags=0x02):
    return lambda i: eth(dst, src, [], 0x86dd, ipv6(
        sip, dip, 6, tcp(sip, dip, sport, dport, flags, payload(i))))


def echo6(dst: str, src: str = "02:00:00:00:01:01", sip="fd00:1::5", dip="fd00:2::1"):
    return lambda i: eth(dst, src, [], 0x86dd, ipv6(
        sip, dip, 58, icmp6(sip, dip, 128, 0, struct.pack("!HH", 0x66, 1) + payload(i))))


def nd6(dst: str, typ: int, target: str, src: str = "02:00:00:00:01:01", sip="fe80::1",
        dip="ff02::1:ff00:99", lla: str | None = "02:00:00:00:01:01"):
    return lambda i: eth(dst, src, [], 0x86dd, ipv6(sip, dip, 58, nd(sip, dip, typ, target, lla, i),
                                                    hlim=255))


def arp_frame(dst: str, op: int, sha: str, spa: str, tha: str, tpa: str, src: str | None = None,
              tags=()):
    return lambda i: eth(dst, src or sha, list(tags), 0x0806, arp(op, sha, spa, tha, tpa, i))


def l2(dst: str, src: str = "02:00:00:00:01:01", tags=(), ethertype: int = 0x88b5):
    return lambda i: eth(dst, src, list(tags), ethertype, payload(i, 42))


C = 0x8100      # C-tag TPID
S = 0x88a8      # S-tag TPID


# ---- corpus 1: every action and match --------------------------------------------

# One case per destination MAC D(n) (a few cases share one); flows given
# without a cookie get cookie = their line number. Flows that need OpenFlow
# 1.1+ in OVS (push_vlan, goto_table) are added to OVS with -O OpenFlow13.
ACTION_FLOWS = f"""
# outputs: copies, in_port, output to the input port, FLOOD, ALL, drop
dl_dst={D(1)},actions=output:2,output:3,output:2
dl_dst={D(2)},actions=in_port,output:1,output:4
dl_dst={D(3)},actions=FLOOD
dl_dst={D(4)},actions=ALL
dl_dst={D(5)},actions=drop
# NORMAL under a masked dl_dst; a masked dl_src above it
priority=10,dl_dst=02:00:00:00:06:00/ff:ff:ff:ff:ff:00,actions=NORMAL
priority=20,dl_dst=02:00:00:00:06:00/ff:ff:ff:ff:ff:00,dl_src=0a:00:00:00:00:00/ff:00:00:00:00:00,actions=output:4
# in_port
in_port=3,dl_dst={D(7)},actions=output:1
in_port=4,dl_dst={D(7)},actions=output:2,output:1
# VLAN matches (frames from port 4)
priority=30,dl_dst={D(8)},dl_vlan=10,dl_vlan_pcp=5,actions=output:2,output:3
priority=20,dl_dst={D(8)},dl_vlan=10,actions=output:2
priority=20,dl_dst={D(8)},dl_vlan=0xffff,actions=output:3
priority=25,dl_dst={D(8)},dl_vlan=0,actions=output:1
priority=15,dl_dst={D(8)},vlan_tci=0x1014/0x1fff,actions=output:3,output:1
priority=10,dl_dst={D(8)},vlan_tci=0x1000/0x1000,actions=output:1,output:2
# dl_type
dl_dst={D(9)},dl_type=0x88b5,actions=output:2
priority=1,dl_dst={D(9)},actions=output:3
# IPv4: addresses, protocol, TOS/DSCP/ECN, TTL, ports with masks, ICMP
priority=40,ip,dl_dst={D(10)},nw_src=10.1.0.0/16,nw_dst=10.2.3.0/24,actions=output:2
priority=35,ip,dl_dst={D(10)},nw_proto=47,actions=output:3
priority=34,ip,dl_dst={D(10)},nw_tos=40,actions=output:4
priority=33,ip,dl_dst={D(10)},ip_dscp=46,actions=output:2,output:3
priority=32,ip,dl_dst={D(10)},nw_ecn=3,actions=output:4,output:2
priority=31,ip,dl_dst={D(10)},nw_ttl=1,actions=output:3,output:4
priority=30,tcp,dl_dst={D(10)},tp_dst=0x1f90/0xfff0,actions=output:2
priority=30,udp,dl_dst={D(10)},tp_src=53,actions=output:3
priority=29,udp,dl_dst={D(10)},tp_dst=0x0400/0xfc00,actions=output:4
priority=27,tcp,dl_dst={D(10)},tp_src=0x1100/0xff00,actions=output:3,output:2
priority=28,icmp,dl_dst={D(10)},icmp_type=8,icmp_code=0,actions=output:2
priority=28,icmp,dl_dst={D(10)},icmp_type=3,icmp_code=3,actions=output:3
priority=1,dl_dst={D(10)},actions=output:4,output:3
# TCP flags
tcp,dl_dst={D(11)},tcp_flags=+syn-ack,actions=output:2
tcp,dl_dst={D(11)},tcp_flags=+syn+ack,actions=output:3
tcp,dl_dst={D(11)},tcp_flags=+fin,actions=output:4
priority=20,tcp,dl_dst={D(11)},tcp_flags=0x010/0x017,actions=output:2,output:4
priority=1,tcp,dl_dst={D(11)},actions=output:3,output:4
# ARP (frames from port 2)
priority=40,arp,dl_dst={D(12)},arp_op=2,actions=output:4
priority=30,arp,dl_dst={D(12)},arp_sha=fa:16:3e:00:00:0a,arp_tpa=10.0.0.2,actions=output:1
priority=30,arp,dl_dst={D(12)},arp_sha=fa:16:3e:00:00:0b,actions=output:3
priority=20,arp,dl_dst={D(12)},arp_spa=10.0.0.0/24,arp_tha=00:00:00:00:00:00,actions=output:1,output:3
priority=15,arp,dl_dst={D(12)},arp_op=1,arp_tha=02:00:00:00:00:00/02:00:00:00:00:00,actions=output:1
priority=10,arp,dl_dst={D(12)},arp_sha=fa:16:3e:00:00:00/ff:ff:ff:00:00:00,actions=output:4,output:3
# IPv6 and ND
priority=40,ipv6,dl_dst={D(13)},ipv6_src=fd00:1::/64,actions=output:2
priority=35,ipv6,dl_dst={D(13)},ipv6_dst=2001:db8::/32,ipv6_label=0x12345,actions=output:3
priority=34,ipv6,dl_dst={D(13)},ipv6_label=0x5/0xf,actions=output:4
priority=30,icmp6,dl_dst={D(13)},icmp_type=128,actions=output:2,output:4
priority=30,icmp6,dl_dst={D(13)},icmp_type=135,nd_target=fd00::99,actions=output:3
priority=29,icmp6,dl_dst={D(13)},icmp_type=135,nd_target=fd00::/64,actions=output:4
priority=30,icmp6,dl_dst={D(13)},icmp_type=136,nd_target=fe80::1,actions=output:2,output:3
priority=25,tcp6,dl_dst={D(13)},tp_dst=443,actions=output:3
priority=1,dl_dst={D(13)},actions=output:3,output:2
# IPv4 edits: mod_* and the checksums
tcp,dl_dst={D(0x20)},actions=mod_nw_src:192.168.9.9,mod_nw_dst:172.16.0.1,mod_tp_src:4000,mod_tp_dst:80,mod_nw_tos:184,dec_ttl,output:2
udp,dl_dst={D(0x20)},actions=mod_nw_src:192.168.9.9,mod_nw_dst:172.16.0.1,mod_tp_src:4000,mod_tp_dst:80,mod_nw_tos:184,dec_ttl,output:3
icmp,dl_dst={D(0x20)},actions=mod_nw_src:192.168.9.9,mod_nw_dst:172.16.0.1,dec_ttl,output:4
# set_field
tcp,dl_dst={D(0x21)},actions=set_field:10.9.8.7->ip_src,set_field:10.9.8.6->ip_dst,set_field:46->ip_dscp,set_field:9->nw_ttl,set_field:1234->tcp_src,set_field:4321->tcp_dst,output:2
udp,dl_dst={D(0x21)},actions=set_field:0x48->nw_tos,set_field:5353->udp_src,set_field:5354->udp_dst,output:3
# load (whole and partial fields) and move between header fields
tcp,dl_dst={D(0x22)},actions=load:0xc0a80001->NXM_OF_IP_SRC[],load:0x50->NXM_OF_TCP_DST[],load:0x3->NXM_OF_IP_DST[0..7],output:2
udp,dl_dst={D(0x22)},actions=load:0x7->NXM_OF_UDP_SRC[8..11],load:0x1->NXM_OF_IP_SRC[24..31],output:3
tcp,dl_dst={D(0x23)},actions=move:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[],move:NXM_OF_TCP_SRC[]->NXM_OF_TCP_DST[],output:2
udp,dl_dst={D(0x23)},actions=move:NXM_OF_UDP_DST[]->NXM_OF_UDP_SRC[],move:NXM_OF_IP_DST[0..7]->NXM_NX_IP_TTL[],output:3
# dec_ttl at TTL 1: what was output before stays sent
ip,dl_dst={D(0x24)},actions=output:2,dec_ttl,output:3
# IPv6: hop limit and traffic class
ipv6,dl_dst={D(0x25)},actions=dec_ttl,set_field:46->ip_dscp,output:2
ipv6,dl_dst={D(0x26)},actions=mod_nw_tos:72,set_field:9->nw_ttl,output:3,dec_ttl,output:4
# VLAN edits
dl_dst={D(0x30)},actions=mod_vlan_vid:7,output:2
dl_dst={D(0x31)},actions=mod_vlan_pcp:5,output:2
dl_dst={D(0x32)},actions=strip_vlan,output:2
dl_dst={D(0x33)},actions=push_vlan:0x8100,output:2
dl_dst={D(0x34)},actions=push_vlan:0x88a8,set_field:4101->vlan_vid,output:2,set_field:3->vlan_pcp,output:3
dl_dst={D(0x35)},vlan_tci=0x1000/0x1000,actions=set_field:4101->vlan_vid,set_field:6->vlan_pcp,output:2
priority=1,dl_dst={D(0x35)},actions=set_field:0x1234->vlan_tci,output:3
dl_dst={D(0x36)},actions=load:0x1005->NXM_OF_VLAN_TCI[],output:2,load:0->NXM_OF_VLAN_TCI[],output:3
dl_dst={D(0x37)},vlan_tci=0x1000/0x1000,actions=load:0x7->NXM_OF_VLAN_TCI[0..11],output:2,set_field:0->vlan_tci,output:3
# MAC edits
dl_dst={D(0x38)},actions=mod_dl_src:02:00:00:00:aa:aa,mod_dl_dst:02:00:00:00:bb:bb,output:2,set_field:02:00:00:00:cc:cc->eth_src,set_field:02:00:00:00:dd:dd->eth_dst,output:3,load:0xee->NXM_OF_ETH_DST[0..7],move:NXM_OF_ETH_DST[]->NXM_OF_ETH_SRC[],output:4
# registers and metadata across resubmit
dl_dst={D(0x40)},actions=load:0x2a->NXM_NX_REG3[],move:NXM_OF_ETH_SRC[0..15]->NXM_NX_REG4[0..15],set_field:0xabcd->reg7,load:0x5->OXM_OF_METADATA[],resubmit(,3),output:4
table=3,reg3=0x2a,reg4=0x0101/0xffff,reg7=0xabcd,metadata=5,actions=move:NXM_NX_REG3[0..7]->NXM_OF_ETH_DST[0..7],output:2
table=3,priority=1,actions=output:3
dl_dst={D(0x41)},actions=load:1->NXM_NX_REG0[],load:2->NXM_NX_REG1[],load:3->NXM_NX_REG2[],load:4->NXM_NX_REG3[],load:5->NXM_NX_REG4[],load:6->NXM_NX_REG5[],load:7->NXM_NX_REG6[],load:8->NXM_NX_REG7[],resubmit(,4)
table=4,reg0=1,reg1=2,reg2=3,reg3=4,reg4=5,reg5=6,reg6=7,reg7=8,actions=output:2,resubmit(,5)
table=5,actions=move:NXM_OF_IN_PORT[]->NXM_NX_REG2[0..15],resubmit(,6)
table=6,reg2=1,actions=output:3
table=6,reg2=2,actions=output:4
# goto_table and metadata masks
dl_dst={D(0x42)},actions=set_field:0x12->metadata,goto_table:7
dl_dst={D(0x43)},actions=goto_table:7
table=7,metadata=0x10/0xf0,actions=output:3
table=7,priority=1,actions=output:4
# ct: zones (a number, a register), commit with a mark, est/rpl, ct_clear
udp,in_port=1,dl_dst={D(0x50)},actions=ct(table=8,zone=7)
udp,in_port=2,dl_dst={D(0x51)},actions=load:7->NXM_NX_REG6[],ct(table=8,zone=NXM_NX_REG6[0..15])
table=8,udp,ct_state=+new+trk,ct_zone=7,actions=ct(commit,zone=7,exec(load:0x5->NXM_NX_CT_MARK[])),output:2
table=8,udp,ct_state=+est-rpl+trk,ct_mark=5,actions=output:3
table=8,udp,ct_state=+est+rpl+trk,ct_zone=7,ct_mark=5,actions=output:1
udp,dl_dst={D(0x52)},actions=ct(table=9,zone=8)
table=9,actions=ct_clear,resubmit(,10)
table=10,ct_state=-trk,actions=output:4
table=10,ct_state=+trk,actions=output:3
udp,dl_dst={D(0x53)},actions=ct(table=10,zone=9),output:2
# commit and continue in a table at once, the mark set on the way
udp,dl_dst={D(0x56)},actions=load:12->NXM_NX_REG6[],ct(commit,table=12,zone=NXM_NX_REG6[0..15],exec(load:0x9->NXM_NX_CT_MARK[]))
udp,in_port=2,dl_dst={D(0x57)},actions=ct(table=12,zone=12)
table=12,udp,ct_state=+new+trk,ct_zone=12,ct_mark=9,actions=output:2
table=12,udp,ct_state=+est+rpl+trk,ct_zone=12,ct_mark=9,actions=output:1,output:4
# an edit before ct (DIVERGENCES: ct-before-edits)
udp,dl_dst={D(0x54)},actions=mod_nw_dst:10.6.0.9,ct(table=11,zone=10)
udp,in_port=2,dl_dst={D(0x55)},actions=ct(table=11,zone=10)
table=11,udp,ct_state=+new+trk,actions=ct(commit,zone=10),output:2
table=11,udp,ct_state=+est+rpl+trk,actions=output:1
"""


def action_corpus() -> Corpus:
    c = Corpus()
    s = c.send      # (port, builder, description): one frame per group
    # outputs
    s(0, udp4(D(1)), "output:2,output:3,output:2")
    s(0, udp4(D(2)), "in_port, output to the input port, output:4")
    s(1, udp4(D(3)), "FLOOD from port 2")
    s(2, udp4(D(4)), "ALL from port 3")
    s(0, udp4(D(5)), "drop")
    s(3, udp4(D(0x7f)), "no flow matches")
    # NORMAL: unknown, learned, another VLAN, learned there
    s(1, l2("02:00:00:00:06:02", "02:00:00:00:06:01"), "NORMAL to an unknown MAC")
    s(3, l2("02:00:00:00:06:01", "02:00:00:00:06:02"), "NORMAL to a learned MAC")
    s(0, l2("02:00:00:00:06:02", "02:00:00:00:06:03", [(C, 5)]), "NORMAL in VLAN 5, unknown there")
    s(3, l2("02:00:00:00:06:03", "02:00:00:00:06:02", [(C, 5)]), "NORMAL in VLAN 5, learned")
    s(0, l2("02:00:00:00:06:09", "0a:11:22:33:44:55"), "masked dl_src")
    # in_port
    s(2, udp4(D(7)), "in_port=3")
    s(3, udp4(D(7)), "in_port=4")
    s(0, udp4(D(7)), "in_port=1: no flow")
    # VLAN matches
    for tags, what in (([], "untagged"), ([(C, 10)], "VID 10"), ([(C, 0xa00a)], "VID 10 PCP 5"),
                       ([(C, 20)], "VID 20"), ([(C, 30)], "VID 30"), ([(C, 0x6000)], "priority tag PCP 3"),
                       ([(S, 10)], "S-tag VID 10"), ([(C, 0x300a)], "VID 10 PCP 1 DEI")):
        s(3, udp4(D(8), tags=tags), f"VLAN match: {what}")
    s(0, l2(D(9)), "dl_type 0x88b5")
    s(0, l2(D(9), ethertype=0x88b6), "dl_type 0x88b6")
    # IPv4 matches
    s(0, udp4(D(10), sip="10.1.2.3", dip="10.2.3.4"), "nw_src/16 nw_dst/24")
    s(0, raw4(D(10), 47), "nw_proto 47")
    s(0, udp4(D(10), tos=0x28), "nw_tos 40")
    s(0, udp4(D(10), tos=0xb8), "ip_dscp 46")
    s(0, udp4(D(10), tos=0xbb), "ip_dscp 46, ECN 3")
    s(0, udp4(D(10), tos=0x03), "nw_ecn 3")
    s(0, udp4(D(10), ttl=1), "nw_ttl 1")
    s(0, tcp4(D(10), dport=8085), "tp_dst 8085 in 0x1f90/0xfff0")
    s(0, tcp4(D(10), dport=8096), "tp_dst 8096 outside 0x1f90/0xfff0")
    s(0, tcp4(D(10), sport=0x1122), "tp_src 0x1122 in 0x1100/0xff00")
    s(0, udp4(D(10), sport=53, dport=3000), "udp tp_src 53")
    s(0, udp4(D(10), sport=999, dport=1030), "udp tp_dst 1030 in 0x400/0xfc00")
    s(0, udp4(D(10), sport=999, dport=2048), "udp tp_dst 2048 outside 0x400/0xfc00")
    s(0, icmp4(D(10)), "icmp echo")
    s(0, icmp4(D(10), typ=3, code=3, ident=0, seq=0), "icmp port unreachable")
    s(0, icmp4(D(10), typ=0), "icmp echo reply")
    # TCP flags
    for flags, what in ((0x02, "SYN"), (0x12, "SYN-ACK"), (0x11, "FIN-ACK"), (0x10, "ACK"),
                        (0x18, "PSH-ACK"), (0x04, "RST"), (0x14, "RST-ACK")):
        s(0, tcp4(D(11), flags=flags, ack=5000 if flags & 0x10 else 0), f"tcp_flags {what}")
    # ARP, from port 2
    s(1, arp_frame(D(12), 2, "fa:16:3e:00:00:0a", "10.0.0.2", "02:00:00:00:01:01", "10.0.0.1"), "ARP reply")
    s(1, arp_frame(D(12), 1, "fa:16:3e:00:00:0a", "10.0.0.1", "00:00:00:00:00:00", "10.0.0.2"),
      "ARP request, sha 0a, tpa 10.0.0.2")
    s(1, arp_frame(D(12), 1, "fa:16:3e:00:00:0b", "10.0.0.1", "00:00:00:00:00:00", "10.0.0.3"),
      "ARP request, sha 0b")
    s(1, arp_frame(D(12), 1, "52:54:00:00:00:0c", "10.0.0.7", "00:00:00:00:00:00", "10.0.0.3"),
      "ARP request, spa 10.0.0.7, tha 0")
    s(1, arp_frame(D(12), 1, "52:54:00:00:00:0c", "10.9.0.2", "02:00:00:00:00:01", "10.9.0.3"),
      "ARP request, tha 02:...")
    s(1, arp_frame(D(12), 1, "fa:16:3e:00:00:0d", "10.9.0.1", "00:00:00:00:00:00", "10.9.0.3"),
      "ARP request, sha fa:16:3e/24")
    # IPv6 and ND
    s(0, udp6(D(13)), "ipv6_src fd00:1::/64")
    s(0, udp6(D(13), sip="fd00:9::1", dip="2001:db8::2", label=0x12345), "ipv6_dst, ipv6_label")
    s(0, udp6(D(13), sip="fd00:9::1", dip="2001:db8::2", label=0xabc5), "ipv6_label masked")
    s(0, echo6(D(13), sip="fd00:9::1"), "icmp6 echo request")
    s(0, nd6(D(13), 135, "fd00::99"), "ND NS, target fd00::99")
    s(0, nd6(D(13), 135, "fd00::7"), "ND NS, target fd00::7")
    s(0, nd6(D(13), 135, "fd00::8", lla=None), "ND NS without SLL, target fd00::8")
    s(0, nd6(D(13), 136, "fe80::1", sip="fe80::1", dip="fe80::2"), "ND NA, target fe80::1")
    s(0, tcp6(D(13), sip="fd00:9::1"), "tcp6 tp_dst 443")
    s(0, udp6(D(13), sip="fe80::1", dip="ff02::1"), "IPv6 fallback")
    # IPv4 edits
    s(0, tcp4(D(0x20), flags=0x18, ack=77, tos=0x01), "mod_* on TCP")
    s(0, udp4(D(0x20), tos=0x03), "mod_* on UDP with a checksum")
    s(0, udp4(D(0x20), checksum=False), "mod_* on UDP without a checksum")
    s(0, icmp4(D(0x20)), "mod_nw_* on ICMP")
    s(0, tcp4(D(0x21)), "set_field on TCP")
    s(0, udp4(D(0x21), tos=0x02), "set_field on UDP")
    s(0, tcp4(D(0x22)), "load into TCP/IP")
    s(0, udp4(D(0x22), sport=0x1234), "load into parts of UDP/IP")
    s(0, tcp4(D(0x23), sip="10.0.0.11", dip="10.0.0.12", sport=1111, dport=2222), "move on TCP/IP")
    s(0, udp4(D(0x23), sip="10.0.0.11", dip="10.0.0.12", sport=1111, dport=2222), "move on UDP/IP")
    s(0, udp4(D(0x24), ttl=5), "output, dec_ttl (TTL 5), output")
    s(0, udp4(D(0x24), ttl=1), "output, dec_ttl (TTL 1), output")
    s(0, udp4(D(0x24), ttl=0), "output, dec_ttl (TTL 0), output")
    s(0, udp6(D(0x25), tc=0x03, label=0x12345), "IPv6 dec_ttl, DSCP")
    s(0, udp6(D(0x25), hlim=1), "IPv6 dec_ttl at hop limit 1")
    s(0, udp6(D(0x26), tc=0xb9), "IPv6 mod_nw_tos, set nw_ttl, dec_ttl")
    # VLAN edits, on untagged and tagged frames
    for n, what in ((0x30, "mod_vlan_vid"), (0x31, "mod_vlan_pcp"), (0x32, "strip_vlan"),
                    (0x33, "push_vlan 0x8100"), (0x34, "push_vlan 0x88a8, set_field vlan_vid/pcp"),
                    (0x35, "set_field vlan_vid/pcp or vlan_tci"), (0x36, "load VLAN_TCI"),
                    (0x37, "load VLAN_TCI[0..11], set_field vlan_tci 0")):
        s(0, udp4(D(n)), f"{what}: untagged")
        s(0, udp4(D(n), tags=[(C, 0x600a)]), f"{what}: VID 10 PCP 3")
    s(0, udp4(D(0x33), tags=[(S, 0x2009)]), "push_vlan 0x8100: S-tag VID 9 PCP 1")
    s(0, udp4(D(0x38)), "MAC edits")
    # registers, metadata, resubmit, goto_table
    s(0, udp4(D(0x40), src="02:00:00:00:01:01"), "registers: reg4 matches")
    s(0, udp4(D(0x40), src="02:00:00:00:01:02"), "registers: reg4 does not match")
    s(0, udp4(D(0x41)), "reg0-7, in_port moved (port 1)")
    s(1, udp4(D(0x41)), "reg0-7, in_port moved (port 2)")
    s(0, udp4(D(0x42)), "goto_table, metadata 0x12")
    s(0, udp4(D(0x43)), "goto_table, metadata 0")
    # ct
    s(0, udp4(D(0x50), sip="10.5.0.1", dip="10.5.0.2", sport=3000, dport=4000), "ct: new, committed")
    s(0, udp4(D(0x50), sip="10.5.0.1", dip="10.5.0.2", sport=3000, dport=4000),
      "ct: new again (no reply yet)")
    s(1, udp4(D(0x51), D(0x50), sip="10.5.0.2", dip="10.5.0.1", sport=4000, dport=3000),
      "ct: reply, zone from a register")
    s(0, udp4(D(0x50), sip="10.5.0.1", dip="10.5.0.2", sport=3000, dport=4000), "ct: est, marked")
    s(0, udp4(D(0x52), sip="10.5.0.1", dip="10.5.0.3"), "ct, then ct_clear")
    s(0, udp4(D(0x53), sip="10.5.0.1", dip="10.5.0.4"), "ct(table=), then output")
    s(0, udp4(D(0x56), sip="10.5.1.1", dip="10.5.1.2", sport=3000, dport=4000),
      "ct(commit,table=) with a mark: new")
    s(1, udp4(D(0x57), D(0x56), sip="10.5.1.2", dip="10.5.1.1", sport=4000, dport=3000),
      "ct(commit,table=) with a mark: the reply")
    s(0, udp4(D(0x54), sip="10.6.0.1", dip="10.6.0.2", sport=3000, dport=4000),
      "mod_nw_dst, then ct: new, committed")
    s(1, udp4(D(0x55), D(0x54), sip="10.6.0.9", dip="10.6.0.1", sport=4000, dport=3000),
      "ct: reply to the address as edited", "ct-before-edits")
    s(1, udp4(D(0x55), D(0x54), sip="10.6.0.2", dip="10.6.0.1", sport=4000, dport=3000),
      "ct: reply to the address as received", "ct-before-edits")
    return c


# ---- corpus 2: Neutron's firewall flows ------------------------------------------------

VM_MAC, VM_IP = "fa:16:3e:00:00:0a", "10.0.0.5"
B_MAC, B_IP = "fa:16:3e:00:00:0b", "10.0.0.9"      # on p2, VLAN 2
P_MAC, P_IP = "fa:16:3e:00:00:0c", "10.0.0.10"     # behind the uplink p1, VLAN 3029
LV, PV = 2, 3029
BCAST = "ff:ff:ff:ff:ff:ff"


def neutron_flows() -> str:
    subst = {"lv": LV, "pv": PV, "mac": VM_MAC, "ip": VM_IP}
    return "".join(bench.NEUTRON_OVS_FLOWS[b] for b in bench.NEUTRON_VARIANTS["sg"]).format(**subst)


def neutron_corpus() -> Corpus:
    c = Corpus()
    s = c.send
    vm, b, prov = 0, 2, 1          # ports: the VM, p2 (VLAN 2), the uplink (VLAN 3029)
    tb, tp = [(C, LV)], [(C, PV)]

    def v4(src, dst, sip, dip, l4fn, tags=()):
        proto, l4 = l4fn(sip, dip)
        return lambda i: eth(dst, src, list(tags), 0x0800, ipv4(sip, dip, proto, l4(i)))

    def T(sport, dport, flags, seq, ack=0):
        return lambda sip, dip: (6, lambda i: tcp(sip, dip, sport, dport, flags, payload(i), seq, ack))

    def U(sport, dport):
        return lambda sip, dip: (17, lambda i: udp(sip, dip, sport, dport, payload(i)))

    def E(typ, ident, seq=1):
        return lambda sip, dip: (1, lambda i: icmp(typ, 0, struct.pack("!HH", ident, seq), payload(i)))

    n = len(payload(0))      # TCP data per segment: sequence numbers advance by it
    # ARP and DHCP
    s(b, arp_frame(BCAST, 1, B_MAC, B_IP, "00:00:00:00:00:00", VM_IP, tags=tb),
      "B asks for the VM's address (broadcast, NORMAL)")
    s(vm, arp_frame(B_MAC, 2, VM_MAC, VM_IP, B_MAC, B_IP), "the VM answers")
    s(vm, arp_frame(BCAST, 1, VM_MAC, "10.0.0.6", "00:00:00:00:00:00", B_IP), "ARP with a spoofed spa")
    s(b, arp_frame(VM_MAC, 1, B_MAC, B_IP, "00:00:00:00:00:00", VM_IP, tags=tb), "unicast ARP to the VM")
    s(vm, lambda i: eth(BCAST, VM_MAC, [], 0x0800, ipv4(
        "0.0.0.0", "255.255.255.255", 17, udp("0.0.0.0", "255.255.255.255", 68, 67, payload(i, 40)))),
      "DHCP discover")
    # An egress UDP connection and its reply, an ICMP error about it.
    s(vm, v4(VM_MAC, B_MAC, VM_IP, B_IP, U(4000, 53)), "egress UDP, new")
    s(b, v4(B_MAC, VM_MAC, B_IP, VM_IP, U(53, 4000), tb), "its reply (est, rpl)")
    s(vm, v4(VM_MAC, B_MAC, VM_IP, B_IP, U(4000, 53)), "egress UDP again (est)")
    s(b, lambda i: eth(VM_MAC, B_MAC, tb, 0x0800, ipv4(B_IP, VM_IP, 1, icmp(
        3, 3, b"\0\0\0\0", ipv4(VM_IP, B_IP, 17, udp(VM_IP, B_IP, 4000, 53, payload(0)))[:28]
        + payload(i, 0)))), "ICMP port unreachable about it (rel)")
    s(b, v4(B_MAC, VM_MAC, B_IP, VM_IP, U(53, 4001), tb), "UDP to the VM of no connection")
    # An egress TCP connection through the uplink (provider VLAN 3029).
    s(vm, v4(VM_MAC, P_MAC, VM_IP, P_IP, T(33000, 443, 0x02, 100)), "egress SYN (new)")
    s(prov, v4(P_MAC, VM_MAC, P_IP, VM_IP, T(443, 33000, 0x12, 900, 101 + n), tp),
      "its SYN-ACK from VLAN 3029 (est, rpl)")
    s(vm, v4(VM_MAC, P_MAC, VM_IP, P_IP, T(33000, 443, 0x10, 101 + n, 901 + n)), "the ACK (est)")
    s(prov, v4(P_MAC, VM_MAC, P_IP, VM_IP, T(443, 33000, 0x18, 901 + n, 101 + 2 * n), tp),
      "data from the server (est, rpl)")
    # Ingress SSH: allowed and committed, the VM answers, the client goes on.
    s(b, v4(B_MAC, VM_MAC, B_IP, VM_IP, T(5555, 22, 0x02, 7000), tb), "ingress SSH SYN (new)")
    s(vm, v4(VM_MAC, B_MAC, VM_IP, B_IP, T(22, 5555, 0x12, 300, 7001 + n)), "the VM's SYN-ACK (est, rpl)")
    s(b, v4(B_MAC, VM_MAC, B_IP, VM_IP, T(5555, 22, 0x10, 7001 + n, 301 + n), tb), "the client's ACK (est)")
    # Ingress HTTP: dropped.
    s(b, v4(B_MAC, VM_MAC, B_IP, VM_IP, T(5556, 80, 0x02, 8000), tb), "ingress HTTP SYN (dropped)")
    s(vm, v4(VM_MAC, B_MAC, VM_IP, B_IP, T(80, 5556, 0x12, 500, 8001 + n)),
      "a SYN-ACK to it from the VM (new, no SYN seen)")
    # ICMP echoes both ways.
    s(b, v4(B_MAC, VM_MAC, B_IP, VM_IP, E(8, 0x99), tb), "ingress echo request (new)")
    s(vm, v4(VM_MAC, B_MAC, VM_IP, B_IP, E(0, 0x99)), "the VM's echo reply (est, rpl)")
    s(vm, v4(VM_MAC, P_MAC, VM_IP, P_IP, E(8, 0x42)), "egress echo request (new)")
    s(prov, v4(P_MAC, VM_MAC, P_IP, VM_IP, E(0, 0x42), tp), "its reply from VLAN 3029 (est, rpl)")
    # TCP segments of no connection: flags no connection can start with
    # (invalid), both ways; then bare ACKs, which OVS's conntrack takes
    # for a connection picked up mid-stream (new), not for invalid.
    s(b, v4(B_MAC, VM_MAC, B_IP, VM_IP, T(6000, 22, 0x01, 4242), tb), "ingress FIN without ACK (inv)")
    s(b, v4(B_MAC, VM_MAC, B_IP, VM_IP, T(6004, 22, 0x03, 4242), tb), "ingress SYN+FIN (inv)")
    s(vm, v4(VM_MAC, B_MAC, VM_IP, B_IP, T(6001, 9000, 0x00, 4242)), "egress segment without flags (inv)")
    s(b, v4(B_MAC, VM_MAC, B_IP, VM_IP, T(6002, 22, 0x10, 4242, 1), tb), "ingress ACK of no connection",
      "tcp-pickup")
    s(vm, v4(VM_MAC, B_MAC, VM_IP, B_IP, T(6003, 9000, 0x10, 4242, 1)), "egress ACK of no connection",
      "tcp-pickup")
    # Spoofing: another source IP, another source MAC.
    s(vm, v4(VM_MAC, B_MAC, "10.0.0.6", B_IP, U(4000, 53)), "egress UDP from a spoofed IP")
    s(vm, v4("fa:16:3e:00:00:99", B_MAC, VM_IP, B_IP, U(4000, 53)), "egress UDP from a spoofed MAC")
    # The local VLAN only: another VLAN, untagged, to the VM's MAC.
    s(b, v4(B_MAC, VM_MAC, B_IP, VM_IP, E(8, 0x98), [(C, 5)]), "echo to the VM in VLAN 5")
    s(b, v4(B_MAC, VM_MAC, B_IP, VM_IP, E(8, 0x97)), "echo to the VM untagged")
    s(prov, v4(P_MAC, VM_MAC, P_IP, VM_IP, U(53, 4000), tp), "UDP from VLAN 3029 of no connection")
    s(prov, v4(P_MAC, VM_MAC, P_IP, VM_IP, E(8, 0x96), [(C, 77)]), "echo from the uplink in VLAN 77")
    return c


# ---- topologies ----------------------------------------------------------------------

@dataclasses.dataclass
class Topology:
    name: str
    bridge: str
    ports: list[tuple[str, dict, list[str]]]    # name, OVS Port columns, Ferroswitch TOML
    flows: list[str]                            # one a line, each with its own cookie
    corpus: Corpus
    cover: bool                                 # every flow must count a packet (on OVS)


def with_cookies(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(f"cookie={len(out) + 1:#x},{line}")
    return out


def topologies() -> list[Topology]:
    plain = [(f"p{i}", {}, []) for i in range(4)]
    return [
        Topology("actions", "br0", plain, with_cookies(ACTION_FLOWS), action_corpus(), True),
        Topology("neutron", "br-int",
                 [("p0", {"tag": str(LV)}, [f"tag = {LV}"]),
                  ("p1", {"trunks": str(LV)}, [f"trunks = [{LV}]"]),
                  ("p2", {}, [])],
                 with_cookies(neutron_flows()), neutron_corpus(), False),
    ]


def needs_of13(flow: str) -> bool:
    """OVS's default protocol (OpenFlow 1.0 + NXM) cannot carry these."""
    return "push_vlan" in flow or "goto_table" in flow


# ---- the two switches -------------------------------------------------------------------

def devargs(i: int, name: str, out: Path) -> str:
    return f"net_pcap{i},rx_iface=d{i}a,tx_pcap={out / f'{name}.pcap'}"


COOKIE_RE = re.compile(r"cookie=(0x[0-9a-f]+)")
PACKETS_RE = re.compile(r"n_packets=(\d+)")


def counters(dump: str) -> dict[int, int]:
    """cookie -> n_packets, from dump-flows text."""
    out = {}
    for line in dump.splitlines():
        c, p = COOKIE_RE.search(line), PACKETS_RE.search(line)
        if c and p:
            out[int(c.group(1), 16)] = out.get(int(c.group(1), 16), 0) + int(p.group(1))
    return out


class FerroswitchFlows(ovs_diff.FerroswitchRun):
    def __init__(self, vswitchd: Path, out: Path, topo: Topology):
        super().__init__(vswitchd, out, out / "unused", False)
        self.topo = topo

    def start(self) -> None:
        t = self.topo
        q = lambda s: '"' + str(s) + '"'  # noqa: E731
        lines = self.config_head() + ["[[bridges]]", f"name = {q(t.bridge)}"]
        for i, (name, _, toml) in enumerate(t.ports):
            lines += ["[[bridges.ports]]", f"name = {q(name)}",
                      f"devargs = {q(devargs(i, name, self.out))}", *toml]
        self.launch(lines)
        path = self.out / "flows.txt"
        path.write_text("\n".join(t.flows) + "\n")
        self.ctl("del-flows", t.bridge)
        self.ctl("add-flows", t.bridge, str(path), timeout=30)
        n = len(counters(self.dump()))
        if n != len(t.flows):
            raise BenchError(f"ferroswitch {t.bridge}: {n} flows installed, {len(t.flows)} written")

    def dump(self) -> str:
        return self.ctl("dump-flows", self.topo.bridge).stdout

    def counters(self) -> dict[int, int]:
        time.sleep(0.5)
        dump = self.dump()
        (self.out / "dump-flows.txt").write_text(dump)
        return counters(dump)


class OvsFlows(ovs_diff.OvsDaemons):
    def __init__(self, out: Path, topo: Topology):
        super().__init__(out)
        self.topo = topo
        self.bridges = [topo.bridge]

    def ofctl(self, *args: str):
        return run_cmd(["ovs-ofctl", *args], env=self.env, timeout=30)

    def start(self) -> None:
        t = self.topo
        self.start_daemons()
        cmd = ["add-br", t.bridge, "--", "set", "Bridge", t.bridge, "datapath_type=netdev",
               "fail_mode=secure", "protocols=OpenFlow10,OpenFlow13"]
        for i, (name, cols, _) in enumerate(t.ports):
            cmd += ["--", "add-port", t.bridge, name, *[f"{k}={v}" for k, v in cols.items()],
                    "--", "set", "Interface", name, "type=dpdk",
                    f"options:dpdk-devargs={devargs(i, name, self.out)}", f"ofport_request={i + 1}"]
        self.vsctl(*cmd)
        for i, (name, _, _) in enumerate(t.ports):
            deadline = time.monotonic() + 30
            while self.vsctl("get", "Interface", name, "ofport").stdout.strip() != str(i + 1):
                if time.monotonic() > deadline:
                    raise BenchError(f"OVS port {name} did not come up as {i + 1}:\n"
                                     + bench.tail(self.out / "ovs-vswitchd.log"))
                time.sleep(0.2)
        self.ofctl("del-flows", t.bridge)
        for of13 in (False, True):
            flows = [f for f in t.flows if needs_of13(f) == of13]
            if not flows:
                continue
            path = self.out / f"flows-{'of13' if of13 else 'default'}.txt"
            path.write_text("\n".join(flows) + "\n")
            self.ofctl(*(["-O", "OpenFlow13"] if of13 else []), "add-flows", t.bridge, str(path))
        n = len(counters(self.dump()))
        if n != len(t.flows):
            raise BenchError(f"OVS {t.bridge}: {n} flows installed, {len(t.flows)} written")
        time.sleep(0.5)

    def dump(self) -> str:
        return self.ofctl("-O", "OpenFlow13", "dump-flows", self.topo.bridge).stdout

    def counters(self) -> dict[int, int]:
        # The datapath's statistics reach the flows when the revalidators run.
        time.sleep(0.5)
        self.appctl("revalidator/wait")
        self.appctl("revalidator/wait")
        dump = self.dump()
        (self.out / "dump-flows.txt").write_text(dump)
        return counters(dump)


def run_switch(sw, topo: Topology) -> tuple[dict[str, list[bytes]], dict[int, int]]:
    sw.start()
    try:
        time.sleep(1.0)
        inject(topo.corpus)
        time.sleep(0.5)
        stats = sw.counters()
    finally:
        sw.stop()
    return {name: read_pcap(sw.out / f"{name}.pcap") for name, *_ in topo.ports}, stats


# ---- comparison ---------------------------------------------------------------------------

@dataclasses.dataclass
class Divergence:
    """A deliberate difference: what each switch must send, per port, for
    a corpus frame marked with its key (given the frame as injected)."""
    reason: str
    ovs: Callable[[bytes], dict[str, list[bytes]]]
    ferroswitch: Callable[[bytes], dict[str, list[bytes]]]
    # What the marked frames (all of them in a corpus) add to flow counters
    # in OVS minus what they add in Ferroswitch, by a piece of the flow's
    # text found in exactly one flow; the other flows must agree.
    counters: dict[str, int] = dataclasses.field(default_factory=dict)


def reply_to_edited(f: bytes) -> bool:
    return f[26:30] == ip("10.6.0.9")


# Deliberate divergences: corpus frames marked with one of these keys come
# out differently; what each switch sends for them is checked, not ignored.
DIVERGENCES: dict[str, Divergence] = {
    "ct-before-edits": Divergence(
        "Ferroswitch tracks a packet from its bytes as received: an edit before ct "
        "(mod_nw_dst here) is not seen by connection tracking, where OVS commits the edit "
        "first (docs/ARCHITECTURE.md, the flows stage, 'a documented divergence'). So the "
        "reply to the address as edited is a reply in OVS (output:1) and new in "
        "Ferroswitch (output:2, its input port: nothing), and the reply to the address as "
        "received the other way round.",
        ovs=lambda f: {"p0": [f]} if reply_to_edited(f) else {},
        ferroswitch=lambda f: {} if reply_to_edited(f) else {"p0": [f]}),
    "tcp-pickup": Divergence(
        "A TCP segment of no connection other than a SYN is +inv in Ferroswitch's connection "
        "tracking; OVS's userspace conntrack (like Linux with nf_conntrack_tcp_loose=1) takes a "
        "bare ACK for a connection picked up mid-stream: +new, committed by the firewall if a "
        "rule allows its port. Ferroswitch keeps the stricter rule its security-group stage "
        "relies on (docs/ARCHITECTURE.md, connection tracking): a mid-stream ACK never opens a "
        "connection. Ingress ACK to port 22: OVS delivers it to the VM untagged; egress ACK: OVS "
        "sends it through NORMAL tagged VLAN 2; Ferroswitch drops both (table 93).",
        ovs=lambda f: ({"p0": [f[:12] + f[16:]]} if f[12:14] == b"\x81\x00"
                       else {"p2": [f[:12] + b"\x81\x00\x00\x02" + f[12:]]}),
        ferroswitch=lambda f: {},
        counters={
            "table=82,priority=77,ct_state=+new-est,tcp,reg5=1,tp_dst=22": 1,
            "table=82,priority=50,ct_state=+inv+trk": -1,
            "table=72,priority=77,ct_state=+new-est": 1,
            "table=72,priority=50,ct_state=+inv+trk": -1,
            "table=73,priority=90,ct_state=+new-est": 1,
            "table=91,priority=1": 1,
            "table=94,priority=1": 1,
            "table=93,priority=0": -2,
        }),
}


def describe(f: bytes, by_id: dict) -> str:
    fid = frame_id(f)
    e = by_id.get(fid)
    what = f"#{fid} {e.desc}" if e else "(no id)"
    return f"{what}: {len(f)} bytes {f.hex()}"


def compare(fsw: dict[str, list[bytes]], ovs: dict[str, list[bytes]], topo: Topology) -> list[str]:
    """Per port: the same frames in the same order, byte for byte; a
    difference is reported per corpus frame, with the frame as sent."""
    by_id = {e.id: e for e in topo.corpus.entries}
    problems = []

    def divergent(f: bytes) -> bool:
        e = by_id.get(frame_id(f))
        return e is not None and e.divergence is not None

    for e in topo.corpus.entries:
        if e.divergence is None:
            continue
        d = DIVERGENCES[e.divergence]
        for who, got, want in (("ferroswitch", fsw, d.ferroswitch(e.data)), ("OVS", ovs, d.ovs(e.data))):
            for name, *_ in topo.ports:
                sent = [f for f in got[name] if frame_id(f) == e.id]
                if sent != want.get(name, []):
                    problems.append(
                        f"{topo.name} {name}: frame #{e.id} ({e.desc}, divergence {e.divergence}): "
                        f"{who} sent {[f.hex() for f in sent]}, the divergence says "
                        f"{[f.hex() for f in want.get(name, [])]}")
    for name, *_ in topo.ports:
        a = [f for f in fsw[name] if not divergent(f)]
        b = [f for f in ovs[name] if not divergent(f)]
        if a == b:
            continue
        per: dict[int | None, tuple[list[bytes], list[bytes]]] = {}
        for who, frames in ((0, a), (1, b)):
            for f in frames:
                per.setdefault(frame_id(f), ([], []))[who].append(f)
        order_only = True
        for fid in sorted(per, key=lambda k: (k is None, k or 0)):
            fa, fb = per[fid]
            if fa == fb:
                continue
            order_only = False
            e = by_id.get(fid)
            head = f"{topo.name} {name}: frame #{fid} " + (
                f"({e.desc}, in on {topo.ports[e.port][0]}): {e.data.hex()}" if e else "(no id)")
            msg = [head]
            for f in fa:
                msg.append(f"  ferroswitch sent {len(f)} bytes {f.hex()}")
            for f in fb:
                msg.append(f"  OVS sent         {len(f)} bytes {f.hex()}")
            if not fa:
                msg.append("  ferroswitch sent nothing")
            if not fb:
                msg.append("  OVS sent nothing")
            problems.append("\n".join(msg))
        if order_only:
            problems.append(f"{topo.name} {name}: the same frames in another order:\n"
                            + "\n".join(f"  ferroswitch {describe(f, by_id)}" for f in a) + "\n"
                            + "\n".join(f"  OVS         {describe(f, by_id)}" for f in b))
    return problems


def compare_counters(fsw: dict[int, int], ovs: dict[int, int], topo: Topology) -> list[str]:
    problems = []
    # What the corpus's deliberate divergences put between the counters.
    delta = [0] * (len(topo.flows) + 1)
    for key in {e.divergence for e in topo.corpus.entries if e.divergence}:
        for piece, d in DIVERGENCES[key].counters.items():
            at = [k for k, flow in enumerate(topo.flows, 1) if piece in flow]
            if len(at) != 1:
                problems.append(f"{topo.name}: divergence {key}: {piece!r} names {len(at)} flows")
                continue
            delta[at[0]] += d
    for k, flow in enumerate(topo.flows, 1):
        if (fsw.get(k) or 0) + delta[k] != (ovs.get(k) or 0):
            problems.append(f"{topo.name}: n_packets {fsw.get(k)} in ferroswitch, {ovs.get(k)} in OVS: "
                            f"{flow}")
    return problems


# ---- main ------------------------------------------------------------------------------------

def inner(args) -> int:
    out = Path(args.out)
    failures = 0
    for topo in topologies():
        if args.corpus not in ("all", topo.name):
            continue
        c = topo.corpus
        print(f"ovs_flow_diff: {topo.name}: {len(topo.flows)} flows, {len(c.entries)} frames on "
              f"{len(topo.ports)} ports", flush=True)
        results, stats = {}, {}
        for kind in ("ferroswitch", "ovs-dpdk"):
            d = out / topo.name / kind
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            sw = FerroswitchFlows(Path(args.vswitchd), d, topo) if kind == "ferroswitch" \
                else OvsFlows(d, topo)
            t0 = time.monotonic()
            results[kind], stats[kind] = run_switch(sw, topo)
            sent = sum(len(v) for v in results[kind].values())
            print(f"ovs_flow_diff: {topo.name} {kind}: {sent} frames out "
                  f"({time.monotonic() - t0:.1f} s)", flush=True)
        problems = compare(results["ferroswitch"], results["ovs-dpdk"], topo)
        problems += compare_counters(stats["ferroswitch"], stats["ovs-dpdk"], topo)
        if topo.cover:
            problems += [f"{topo.name}: the corpus never hits flow {f}" for k, f in enumerate(topo.flows, 1)
                         if not stats["ovs-dpdk"].get(k)]
        if sum(len(v) for v in results["ovs-dpdk"].values()) == 0:
            problems.append(f"{topo.name}: OVS sent nothing: the comparison proves nothing")
        for p in problems:
            print(f"DIFF {p}")
        failures += len(problems)
    if DIVERGENCES:
        print("ovs_flow_diff: divergences allowed: "
              + "; ".join(f"{k}: {v.reason}" for k, v in DIVERGENCES.items()))
    print(f"ovs_flow_diff: {'PASS' if failures == 0 else f'FAIL ({failures} differences)'}")
    return 0 if failures == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vswitchd", default=str(REPO / "target" / "ci" / "vswitchd"))
    ap.add_argument("--out", default=None, help="keep the pcaps, flows and logs here")
    ap.add_argument("--corpus", default="all", choices=["all", "actions", "neutron"])
    args = ap.parse_args()
    return ovs_diff.run_isolated("ovs_flow_diff", args, inner, "fswfdiff", "fswflowdiff-",
                                 tools=(("ovs-ofctl", "openvswitch-switch"),))


if __name__ == "__main__":
    sys.exit(main())
