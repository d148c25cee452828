#!/usr/bin/env python3
"""Write benchmark traffic as a classic libpcap file (linktype Ethernet).

One UDP/IPv4 frame per flow; flow i uses UDP source port SRC_PORT + i (default
1024 + i), everything else is the same. ``--reverse`` writes the mirror image
(MACs, IPs and ports swapped), i.e. the replies: p0.pcap = forward, p1.pcap =
mirror, as in docs PEERS.md's l2-normal scenario.

``--macs N`` (default 1) spreads the flows over N MAC pairs: flow i goes from
host A_k to host B_k with k = i mod N (so --flows must be >= --macs). Pair 0
is always --src-mac -> --dst-mac (fa:16:3e:00:00:01 -> :02), so N = 1 writes
exactly what it always did; pair k >= 1 is fa:16:3e:0a:HH:LL ->
fa:16:3e:0b:HH:LL with HHLL = k (N <= 65535). All 2N addresses are distinct
unicast ones.

``--frame-size`` counts the 4-byte Ethernet FCS (as traffic generators do), so
a 64-byte frame is a 60-byte pcap record. ``--vlan VID`` inserts an 802.1Q tag
after the MAC addresses, which grows every record by 4 bytes.

IPv4 header checksums and UDP checksums are valid. Python 3 stdlib only; it
can also be imported (``build_frames`` / ``write_pcap``) by the bench harness.
"""

from __future__ import annotations

import argparse
import ipaddress
import struct
import sys

PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps, native field order below
LINKTYPE_ETHERNET = 1
ETH_FCS_LEN = 4
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_VLAN = 0x8100
IPPROTO_UDP = 17
MIN_FRAME = 64
MAX_FRAME = 9216
MAX_MACS = 0xFFFF
MAC_PREFIX = bytes.fromhex("fa163e")   # pairs k >= 1: A_k = fa:16:3e:0a:k, B_k = fa:16:3e:0b:k


def parse_mac(text: str) -> bytes:
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6:
        raise argparse.ArgumentTypeError(f"bad MAC address {text!r}")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad MAC address {text!r}") from exc


def parse_ipv4(text: str) -> bytes:
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad IPv4 address {text!r}") from exc


def csum16(data: bytes) -> int:
    """RFC 1071 Internet checksum (ones' complement of the ones' complement sum)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(src_mac: bytes, dst_mac: bytes, src_ip: bytes, dst_ip: bytes,
              sport: int, dport: int, record_len: int, vlan: int | None = None,
              pcp: int = 0, ip_id: int = 0, ttl: int = 64) -> bytes:
    """One Ethernet/[802.1Q]/IPv4/UDP frame of exactly ``record_len`` bytes (no FCS)."""
    l2 = dst_mac + src_mac
    if vlan is not None:
        l2 += struct.pack("!HH", ETHERTYPE_VLAN, ((pcp & 7) << 13) | (vlan & 0x0FFF))
    l2 += struct.pack("!H", ETHERTYPE_IPV4)
    payload_len = record_len - len(l2) - 20 - 8
    if payload_len < 0:
        raise ValueError(f"record length {record_len} too small for the headers")
    # Recognisable, deterministic payload.
    payload = bytes((i & 0xFF) for i in range(payload_len))
    udp_len = 8 + payload_len
    ip_total = 20 + udp_len
    ip_hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_total, ip_id & 0xFFFF, 0,
                         ttl, IPPROTO_UDP, 0, src_ip, dst_ip)
    ip_hdr = ip_hdr[:10] + struct.pack("!H", csum16(ip_hdr)) + ip_hdr[12:]
    udp_hdr = struct.pack("!HHHH", sport, dport, udp_len, 0)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, IPPROTO_UDP, udp_len)
    ucs = csum16(pseudo + udp_hdr + payload) or 0xFFFF
    udp_hdr = udp_hdr[:6] + struct.pack("!H", ucs)
    return l2 + ip_hdr + udp_hdr + payload


def mac_pairs(macs: int = 1, src_mac: str = "fa:16:3e:00:00:01",
              dst_mac: str = "fa:16:3e:00:00:02") -> list[tuple[bytes, bytes]]:
    """The ``macs`` (A_k, B_k) MAC pairs of build_frames: pair 0 is (src_mac,
    dst_mac), pair k >= 1 is (fa:16:3e:0a:HH:LL, fa:16:3e:0b:HH:LL), HHLL = k."""
    if not 1 <= macs <= MAX_MACS:
        raise ValueError(f"--macs must be in [1, {MAX_MACS}]")
    pairs = [(parse_mac(src_mac), parse_mac(dst_mac))]
    for k in range(1, macs):
        lo = struct.pack("!H", k)
        pairs.append((MAC_PREFIX + b"\x0a" + lo, MAC_PREFIX + b"\x0b" + lo))
    if macs > 1:
        every = [m for pair in pairs for m in pair]
        if len(set(every)) != len(every):
            raise ValueError(f"--src-mac {src_mac} / --dst-mac {dst_mac} collide with each "
                             "other or with the generated MACs of --macs "
                             f"{macs} (fa:16:3e:0a:*, fa:16:3e:0b:*)")
        if any(m[0] & 1 for m in every):
            raise ValueError("--src-mac / --dst-mac must be unicast with --macs > 1")
    return pairs


def build_frames(flows: int = 1024, frame_size: int = 64,
                 src_mac: str = "fa:16:3e:00:00:01", dst_mac: str = "fa:16:3e:00:00:02",
                 src_ip: str = "10.0.0.1", dst_ip: str = "10.0.1.1",
                 src_port: int = 1024, dst_port: int = 5001,
                 vlan: int | None = None, reverse: bool = False,
                 macs: int = 1) -> list[bytes]:
    """Frame i: UDP source port src_port + i, MAC pair i mod ``macs`` (see mac_pairs)."""
    if flows < 1:
        raise ValueError("--flows must be >= 1")
    if not 1 <= macs <= MAX_MACS:
        raise ValueError(f"--macs must be in [1, {MAX_MACS}]")
    if flows < macs:
        raise ValueError(f"--flows ({flows}) must be >= --macs ({macs}): "
                         "each MAC pair needs at least one flow")
    if not MIN_FRAME <= frame_size <= MAX_FRAME:
        raise ValueError(f"--frame-size must be in [{MIN_FRAME}, {MAX_FRAME}]")
    if src_port + flows - 1 > 0xFFFF:
        raise ValueError(f"--flows {flows} from source port {src_port} overflows 65535")
    if vlan is not None and not 0 <= vlan <= 4095:
        raise ValueError("--vlan must be in [0, 4095]")
    pairs = mac_pairs(macs, src_mac, dst_mac)
    sip, dip = parse_ipv4(src_ip), parse_ipv4(dst_ip)
    record_len = frame_size - ETH_FCS_LEN + (4 if vlan is not None else 0)
    frames = []
    for i in range(flows):
        smac, dmac = pairs[i % macs]
        sport, dport = src_port + i, dst_port
        if reverse:
            frames.append(udp_frame(dmac, smac, dip, sip, dport, sport, record_len,
                                    vlan=vlan, ip_id=i))
        else:
            frames.append(udp_frame(smac, dmac, sip, dip, sport, dport, record_len,
                                    vlan=vlan, ip_id=i))
    return frames


def write_pcap(path: str, frames: list[bytes], snaplen: int = 65535) -> None:
    with open(path, "wb") as f:
        # Little-endian classic pcap header (what libpcap writes on x86).
        f.write(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        for i, frame in enumerate(frames):
            ts_sec, ts_usec = divmod(i, 1_000_000)
            f.write(struct.pack("<IIII", ts_sec, ts_usec, len(frame), len(frame)))
            f.write(frame)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--flows", type=int, default=1024, help="number of UDP flows (frames)")
    ap.add_argument("--macs", type=int, default=1, metavar="N",
                    help="MAC pairs: flow i uses pair i mod N (pair 0: --src-mac/--dst-mac, "
                    "pair k>=1: fa:16:3e:0a:HH:LL / fa:16:3e:0b:HH:LL with HHLL=k); "
                    f"1 <= N <= min(--flows, {MAX_MACS})")
    ap.add_argument("--frame-size", type=int, default=64,
                    help="Ethernet frame size including the 4-byte FCS (record = size-4, +4 with --vlan)")
    ap.add_argument("--src-mac", default="fa:16:3e:00:00:01", help="source MAC of pair 0")
    ap.add_argument("--dst-mac", default="fa:16:3e:00:00:02", help="destination MAC of pair 0")
    ap.add_argument("--src-ip", default="10.0.0.1")
    ap.add_argument("--dst-ip", default="10.0.1.1")
    ap.add_argument("--src-port", type=int, default=1024, help="UDP source port of flow 0")
    ap.add_argument("--dst-port", type=int, default=5001, help="UDP destination port")
    ap.add_argument("--vlan", type=int, default=None, metavar="VID", help="add an 802.1Q tag")
    ap.add_argument("--reverse", action="store_true",
                    help="write the mirror traffic (swap MACs, IPs and ports)")
    ap.add_argument("-o", "--output", required=True, metavar="FILE")
    args = ap.parse_args(argv)
    try:
        frames = build_frames(args.flows, args.frame_size, args.src_mac, args.dst_mac,
                              args.src_ip, args.dst_ip, args.src_port, args.dst_port,
                              args.vlan, args.reverse, args.macs)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        ap.error(str(exc))
    write_pcap(args.output, frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
