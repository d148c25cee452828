//! Checksum and segmentation offloads, as a kernel or a guest hands them
//! over: a frame whose TCP/UDP checksum field holds only the pseudo-header
//! sum ("partial", Linux's CHECKSUM_PARTIAL, DPDK's `RTE_MBUF_F_TX_*_CKSUM`,
//! virtio's NEEDS_CSUM), and a TCP segment larger than the MTU that is to be
//! cut into MSS-sized ones (GSO/TSO). Where the output port takes them (a
//! packet socket with virtio-net headers, a guest that negotiated them)
//! they pass untouched; elsewhere they are finished here, in software.
//!
//! Offsets are found by parsing the frame as it leaves (a tag may have been
//! pushed or popped on the way), never trusted from the input side.
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::{fold, sum16, EtherType, IpProtocol};

/// What is left to do to a frame before it can go on a wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offload {
    /// Its TCP or UDP checksum holds only the pseudo-header sum.
    pub partial_checksum: bool,
    /// A TCP segment to cut into segments of at most this many payload
    /// bytes (0: none). Implies a partial checksum.
    pub tcp_mss: u16,
}

impl Offload {
    pub const NONE: Offload = Offload {
        partial_checksum: false,
        tcp_mss: 0,
    };

    pub fn is_none(&self) -> bool {
        !self.partial_checksum && self.tcp_mss == 0
    }
}

/// Where a frame's IP and transport headers start, and what they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    pub l3: usize,
    pub l4: usize,
    pub v6: bool,
    pub proto: IpProtocol,
}

/// Checksum field offset inside TCP and UDP headers.
const TCP_CSUM: usize = 16;
const UDP_CSUM: usize = 6;

/// Finds the IP and TCP/UDP headers of `frame` (behind up to two tags; IPv6
/// without extension headers; IPv4 not fragmented), as offloads need them.
pub fn layers(frame: &[u8]) -> Option<Layers> {
    let mut at = 12;
    let mut ethertype = EtherType(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    for _ in 0..2 {
        if !ethertype.is_vlan_tpid() {
            break;
        }
        at += 4;
        ethertype = EtherType(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    }
    let l3 = at + 2;
    let ip = frame.get(l3..)?;
    let (l4, v6, proto) = match ethertype {
        EtherType::IPV4 => {
            let ihl = usize::from(*ip.first()? & 0x0f) * 4;
            if *ip.first()? >> 4 != 4 || ihl < 20 || ip.len() < ihl {
                return None;
            }
            // A fragment's transport header is not whole.
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                return None;
            }
            (l3 + ihl, false, IpProtocol(ip[9]))
        }
        EtherType::IPV6 if ip.len() >= 40 && ip[0] >> 4 == 6 => (l3 + 40, true, IpProtocol(ip[6])),
        _ => return None,
    };
    let csum = match proto {
        IpProtocol::TCP => TCP_CSUM,
        IpProtocol::UDP => UDP_CSUM,
        _ => return None,
    };
    (frame.len() >= l4 + csum + 2).then_some(Layers { l3, l4, v6, proto })
}

/// The pseudo-header sum of a transport segment of `len` bytes.
fn pseudo_sum(frame: &[u8], at: &Layers, len: usize) -> u64 {
    let (src, dst) = if at.v6 {
        (at.l3 + 8..at.l3 + 24, at.l3 + 24..at.l3 + 40)
    } else {
        (at.l3 + 12..at.l3 + 16, at.l3 + 16..at.l3 + 20)
    };
    sum16(&frame[src]) + sum16(&frame[dst]) + u64::from(at.proto.0) + len as u64
}

/// The length of the longest frame `frame` (its first segment's bytes, of
/// `pkt_len` in all) puts on a wire: its segments' when it is a TCP segment
/// to cut (its headers plus `mss`), else its own.
pub fn wire_len(frame: &[u8], pkt_len: u32, offload: Offload) -> u32 {
    if offload.tcp_mss == 0 {
        return pkt_len;
    }
    match layers(frame).and_then(|at| Some(at.l4 + usize::from(*frame.get(at.l4 + 12)? >> 4) * 4)) {
        Some(hdr) => pkt_len.min((hdr + usize::from(offload.tcp_mss)) as u32),
        None => pkt_len,
    }
}

/// Whether the TCP or UDP checksum of `frame` is right (false when it is
/// not TCP or UDP over IP as [`layers`] reads it).
pub fn l4_checksum_ok(frame: &[u8]) -> bool {
    layers(frame).is_some_and(|at| {
        fold(pseudo_sum(frame, &at, frame.len() - at.l4) + sum16(&frame[at.l4..])) == 0
    })
}

/// Writes the full TCP or UDP checksum of the segment at `at.l4..` (the
/// rest of `frame`), whatever its checksum field held.
pub fn fill_l4_checksum(frame: &mut [u8], at: &Layers) {
    let off = at.l4
        + if at.proto == IpProtocol::TCP {
            TCP_CSUM
        } else {
            UDP_CSUM
        };
    frame[off..off + 2].fill(0);
    let seg_len = frame.len() - at.l4;
    let mut c = fold(pseudo_sum(frame, at, seg_len) + sum16(&frame[at.l4..]));
    if c == 0 && at.proto == IpProtocol::UDP {
        c = 0xffff;
    }
    frame[off..off + 2].copy_from_slice(&c.to_be_bytes());
}

/// Finishes a partial checksum in place; false (frame unchanged) when the
/// frame is not TCP or UDP over IP as [`layers`] reads it.
pub fn finish_checksum(frame: &mut [u8]) -> bool {
    match layers(frame) {
        Some(at) => {
            fill_l4_checksum(frame, &at);
            true
        }
        None => false,
    }
}

/// Cuts the TCP segment `frame` (headers, then payload; any checksum) into
/// segments of at most `mss` payload bytes, as a NIC's TSO does, and hands
/// each, complete with IP lengths, IPv4 identifiers counted up from the
/// original's, sequence numbers, flags (FIN and PSH on the last only, CWR
/// on the first only) and checksums, to `emit`, which writes it into a
/// fresh frame and returns false to stop (no buffer). Returns how many were
/// emitted, or `None` (nothing emitted) when `frame` is not TCP over IP.
/// A frame whose payload fits in one segment is emitted as one, finished.
pub fn segment_tcp(
    frame: &[u8],
    mss: u16,
    mut emit: impl FnMut(&[u8], &[u8], &Layers) -> bool,
) -> Option<usize> {
    let at = layers(frame)?;
    if at.proto != IpProtocol::TCP || mss == 0 {
        return None;
    }
    let doff = usize::from(*frame.get(at.l4 + 12)? >> 4) * 4;
    let hdr_len = at.l4 + doff;
    if doff < 20 || frame.len() < hdr_len {
        return None;
    }
    let (headers, payload) = frame.split_at(hdr_len);
    let seq = u32::from_be_bytes(headers[at.l4 + 4..at.l4 + 8].try_into().ok()?);
    let ident = u16::from_be_bytes([headers[at.l3 + 4], headers[at.l3 + 5]]);
    let flags = headers[at.l4 + 13];
    let chunks = payload.len().div_ceil(usize::from(mss)).max(1);
    let mut hdr = [0u8; 256];
    let hdr = hdr.get_mut(..hdr_len)?;
    for (i, chunk) in payload
        .chunks(usize::from(mss))
        .chain(payload.is_empty().then_some(payload))
        .enumerate()
    {
        hdr.copy_from_slice(headers);
        let last = i + 1 == chunks;
        let l4_len = doff + chunk.len();
        if at.v6 {
            hdr[at.l3 + 4..at.l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        } else {
            let total = (at.l4 - at.l3 + l4_len) as u16;
            hdr[at.l3 + 2..at.l3 + 4].copy_from_slice(&total.to_be_bytes());
            hdr[at.l3 + 4..at.l3 + 6].copy_from_slice(&ident.wrapping_add(i as u16).to_be_bytes());
            Ipv4Packet::new_unchecked(&mut hdr[at.l3..at.l4]).fill_checksum();
        }
        let offset = (i * usize::from(mss)) as u32;
        hdr[at.l4 + 4..at.l4 + 8].copy_from_slice(&seq.wrapping_add(offset).to_be_bytes());
        let mut f = flags;
        if !last {
            f &= !(0x01 | 0x08); // FIN, PSH
        }
        if i > 0 {
            f &= !0x80; // CWR
        }
        hdr[at.l4 + 13] = f;
        // The checksum over the pseudo-header, this header and this chunk
        // (the header's length is a multiple of 4: the chunk's words line
        // up with the header's).
        hdr[at.l4 + TCP_CSUM..at.l4 + TCP_CSUM + 2].fill(0);
        let c = fold(pseudo_sum(hdr, &at, l4_len) + sum16(&hdr[at.l4..]) + sum16(chunk));
        hdr[at.l4 + TCP_CSUM..at.l4 + TCP_CSUM + 2].copy_from_slice(&c.to_be_bytes());
        if !emit(hdr, chunk, &at) {
            return Some(i);
        }
    }
    Some(chunks)
}

/// The virtio-net header a packet socket with `PACKET_VNET_HDR` reads and
/// writes in front of each frame (host byte order, 10 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub const LEN: usize = 10;
    pub const F_NEEDS_CSUM: u8 = 1;
    pub const GSO_NONE: u8 = 0;
    pub const GSO_TCPV4: u8 = 1;
    pub const GSO_UDP: u8 = 3;
    pub const GSO_TCPV6: u8 = 4;
    pub const GSO_ECN: u8 = 0x80;

    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b: &[u8; 10] = b.get(..10)?.try_into().ok()?;
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    pub fn write(&self, out: &mut [u8; 10]) {
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
    }

    /// What the header asks of the frame behind it. UDP fragmentation
    /// offload is not taken (a partial checksum is).
    pub fn offload(&self) -> Offload {
        let gso = self.gso_type & !Self::GSO_ECN;
        Offload {
            partial_checksum: self.flags & Self::F_NEEDS_CSUM != 0,
            tcp_mss: match gso {
                Self::GSO_TCPV4 | Self::GSO_TCPV6 => self.gso_size,
                _ => 0,
            },
        }
    }

    /// The header that hands `frame` with `offload` to the kernel.
    pub fn for_frame(frame: &[u8], offload: Offload) -> VnetHdr {
        let Some(at) = layers(frame).filter(|_| !offload.is_none()) else {
            return VnetHdr::default();
        };
        let tcp = at.proto == IpProtocol::TCP;
        let mut h = VnetHdr {
            flags: Self::F_NEEDS_CSUM,
            csum_start: at.l4 as u16,
            csum_offset: if tcp { TCP_CSUM } else { UDP_CSUM } as u16,
            ..VnetHdr::default()
        };
        if offload.tcp_mss > 0 && tcp {
            let doff = usize::from(frame.get(at.l4 + 12).copied().unwrap_or(0x50) >> 4) * 4;
            h.gso_type = if at.v6 {
                Self::GSO_TCPV6
            } else {
                Self::GSO_TCPV4
            };
            h.gso_size = offload.tcp_mss;
            h.hdr_len = (at.l4 + doff) as u16;
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;
    use proptest::prelude::*;

    /// An Ethernet frame carrying TCP (IPv4 or IPv6) with `payload`; its
    /// TCP checksum holds only the pseudo-header sum, as the kernel leaves
    /// it for an offload.
    fn tcp_frame(v6: bool, payload: &[u8], flags: u8, tag: bool) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        if tag {
            f.extend_from_slice(&[0x81, 0, 0, 7]);
        }
        let tcp_len = 32 + payload.len();
        if v6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            f.extend_from_slice(&[0xfd; 16]);
            f.extend_from_slice(&[0xfe; 16]);
        } else {
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            f.extend_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
            f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
            let l3 = f.len() - 20;
            let c = checksum(&f[l3..]);
            f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let l4 = f.len();
        f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]); // ports 40000 -> 5201
        f.extend_from_slice(&0xffff_ff00u32.to_be_bytes()); // seq, wraps
        f.extend_from_slice(&7u32.to_be_bytes());
        f.extend_from_slice(&[0x80, flags, 0x01, 0xf5, 0, 0, 0, 0]);
        f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP timestamps
        f.extend_from_slice(payload);
        // The pseudo-header sum, folded and not complemented.
        let at = layers(&f).unwrap();
        assert_eq!(at.l4, l4);
        let p = !fold(pseudo_sum(&f, &at, tcp_len));
        f[l4 + 16..l4 + 18].copy_from_slice(&p.to_be_bytes());
        f
    }

    fn tcp_ok(f: &[u8]) -> bool {
        l4_checksum_ok(f)
    }

    #[test]
    fn a_partial_checksum_is_finished() {
        for (v6, tag) in [(false, false), (true, false), (false, true)] {
            let mut f = tcp_frame(v6, b"hello, world", 0x18, tag);
            assert!(!tcp_ok(&f));
            assert!(finish_checksum(&mut f));
            assert!(tcp_ok(&f), "v6 {v6} tag {tag}");
        }
        let mut arp = vec![0xff; 12];
        arp.extend_from_slice(&[8, 6]);
        arp.resize(60, 0);
        let before = arp.clone();
        assert!(!finish_checksum(&mut arp));
        assert_eq!(arp, before);
    }

    #[test]
    fn the_virtio_net_header_round_trips_and_says_what_to_do() {
        let f = tcp_frame(false, &[0; 3000], 0x18, false);
        let h = VnetHdr::for_frame(
            &f,
            Offload {
                partial_checksum: true,
                tcp_mss: 1448,
            },
        );
        assert_eq!(
            (
                h.flags,
                h.gso_type,
                h.gso_size,
                h.csum_start,
                h.csum_offset,
                h.hdr_len
            ),
            (1, VnetHdr::GSO_TCPV4, 1448, 34, 16, 34 + 32)
        );
        let mut b = [0u8; 10];
        h.write(&mut b);
        assert_eq!(VnetHdr::parse(&b), Some(h));
        assert_eq!(h.offload().tcp_mss, 1448);
        assert_eq!(VnetHdr::for_frame(&f, Offload::NONE), VnetHdr::default());
        assert!(VnetHdr::default().offload().is_none());
    }

    proptest! {
        /// Segments carry the payload in order, at most `mss` each, with
        /// lengths, identifiers, sequence numbers, flags and checksums as
        /// a NIC's TSO writes them.
        #[test]
        fn segments_are_what_tso_makes(
            v6 in any::<bool>(),
            tag in any::<bool>(),
            len in 0usize..6000,
            mss in 1u16..1500,
            flags in prop_oneof![Just(0x10u8), Just(0x18), Just(0x19), Just(0x98)],
        ) {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let f = tcp_frame(v6, &payload, flags, tag);
            let at = layers(&f).unwrap();
            let mut segs: Vec<Vec<u8>> = Vec::new();
            let n = segment_tcp(&f, mss, |h, p, _| {
                segs.push([h, p].concat());
                true
            });
            let want = len.div_ceil(usize::from(mss)).max(1);
            prop_assert_eq!(n, Some(want));
            prop_assert_eq!(segs.len(), want);
            let mut joined = Vec::new();
            for (i, s) in segs.iter().enumerate() {
                let hdr = at.l4 + 32;
                let p = &s[hdr..];
                prop_assert!(p.len() <= usize::from(mss));
                joined.extend_from_slice(p);
                prop_assert!(tcp_ok(s), "segment {} checksum", i);
                let seq = u32::from_be_bytes(s[at.l4 + 4..at.l4 + 8].try_into().unwrap());
                prop_assert_eq!(seq, 0xffff_ff00u32.wrapping_add((i * usize::from(mss)) as u32));
                let fl = s[at.l4 + 13];
                let last = i + 1 == want;
                prop_assert_eq!(fl & 0x09 != 0, last && flags & 0x09 != 0);
                prop_assert_eq!(fl & 0x80 != 0, i == 0 && flags & 0x80 != 0);
                if v6 {
                    let pl = u16::from_be_bytes([s[at.l3 + 4], s[at.l3 + 5]]);
                    prop_assert_eq!(usize::from(pl), s.len() - at.l4);
                } else {
                    prop_assert_eq!(checksum(&s[at.l3..at.l4]), 0);
                    let total = u16::from_be_bytes([s[at.l3 + 2], s[at.l3 + 3]]);
                    prop_assert_eq!(usize::from(total), s.len() - at.l3);
                    let id = u16::from_be_bytes([s[at.l3 + 4], s[at.l3 + 5]]);
                    prop_assert_eq!(id, 0x1234u16.wrapping_add(i as u16));
                }
            }
            prop_assert_eq!(joined, payload);
        }

        /// Whatever the bytes, nothing panics and nothing is emitted for
        /// what is not TCP.
        #[test]
        fn any_bytes_are_refused_or_segmented(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            mss in 0u16..100,
        ) {
            let mut b = bytes.clone();
            let _ = finish_checksum(&mut b);
            let _ = VnetHdr::for_frame(&bytes, Offload { partial_checksum: true, tcp_mss: mss });
            let mut total = 0;
            if let Some(n) = segment_tcp(&bytes, mss, |h, p, _| { total += h.len() + p.len(); true }) {
                prop_assert!(n >= 1);
            }
        }
    }
}
