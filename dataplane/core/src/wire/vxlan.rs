//! VXLAN (RFC 7348): the 8-byte header, the outer Ethernet/IPv4/UDP
//! header a tunnel endpoint puts around an inner Ethernet frame, and the
//! checks a received tunnel packet must pass before its inner frame is
//! switched.
//!
//! Receive follows the Linux VXLAN driver: the I flag must be set, the
//! reserved bits are ignored, the outer IPv4 checksum must hold and so
//! must a UDP checksum that is not zero (zero means none over IPv4), and a
//! fragmented outer packet is refused (it would need reassembly). Transmit
//! follows RFC 7348 and the kernel's defaults: reserved bits zero, UDP
//! checksum zero, the source port from a hash of the inner flow so that
//! the underlay's ECMP spreads flows.

use super::ipv4::{Ipv4Packet, MIN_HEADER_LEN as IPV4_HEADER_LEN};
use super::udp::{UdpPacket, HEADER_LEN as UDP_HEADER_LEN};
use super::vlan::{Tci, VlanStack};
use super::{
    ethernet, fold, ipv4_l4_checksum_holds, sum16, EtherType, EthernetAddress, EthernetFrame,
    IpProtocol, Result, WireError,
};

/// The IANA port of VXLAN.
pub const UDP_PORT: u16 = 4789;

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;

/// Bytes an untagged IPv4 tunnel adds in front of the inner frame: outer
/// Ethernet, IPv4 without options, UDP and VXLAN (the 50 bytes Neutron
/// takes off the physical MTU for a VXLAN network over IPv4).
pub const IPV4_OVERHEAD: usize =
    ethernet::HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + HEADER_LEN;

/// The "VNI is valid" flag, bit 3 of the first byte.
const FLAG_I: u8 = 0x08;

/// A VXLAN network identifier: 24 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vni(u32);

impl Vni {
    pub const MAX: u32 = (1 << 24) - 1;

    /// `None` beyond 24 bits.
    #[inline]
    pub const fn new(vni: u32) -> Option<Vni> {
        if vni <= Self::MAX {
            Some(Vni(vni))
        } else {
            None
        }
    }

    #[inline]
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// A view of a VXLAN header and what follows it (the inner frame).
///
/// [`new_checked`](Self::new_checked) guarantees the 8 bytes are there and
/// that the I flag is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is
    /// shorter than 8 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanHeader { buffer }
    }

    /// `Truncated` under 8 bytes; `Malformed` when the I flag is clear
    /// (no valid VNI: RFC 7348 says such a packet is not VXLAN's).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if data[0] & FLAG_I == 0 {
            return Err(WireError::Malformed("VXLAN I flag clear"));
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// The flags byte (the I flag and reserved bits).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    #[inline]
    pub fn vni(&self) -> Vni {
        let d = self.buffer.as_ref();
        Vni(u32::from_be_bytes([0, d[4], d[5], d[6]]))
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// Writes a VXLAN header for `vni` (I flag set, reserved bits zero).
#[inline]
pub fn emit_header(out: &mut [u8; HEADER_LEN], vni: Vni) {
    let v = vni.0.to_be_bytes();
    *out = [FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0];
}

/// The UDP source port for an inner flow's `hash`, spread over
/// `min..=max` (RFC 7348 asks for a hash of the inner headers in the
/// dynamic range, so that the underlay's ECMP spreads the flows; the
/// kernel scales the hash the same way).
#[inline]
pub fn source_port(hash: u32, min: u16, max: u16) -> u16 {
    let (lo, hi) = if min <= max { (min, max) } else { (max, min) };
    let span = u64::from(hi - lo) + 1;
    lo + ((u64::from(hash) * span) >> 32) as u16
}

/// The outer headers of one IPv4 tunnel: from this endpoint (its MAC and
/// address) to a remote endpoint (the next hop's MAC and its address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Tunnel {
    pub src_mac: EthernetAddress,
    pub dst_mac: EthernetAddress,
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub ttl: u8,
    pub tos: u8,
    /// Set DF on the outer packet (the tunnel then never fragments; an
    /// inner frame too big for the path is the network MTU's business).
    pub dont_fragment: bool,
}

impl Ipv4Tunnel {
    /// Writes the [`IPV4_OVERHEAD`] bytes of outer header at the start of
    /// `out`, for an inner frame of `inner_len` bytes that follows them:
    /// IPv4 checksum filled, UDP checksum zero. `Truncated` if `out` is
    /// shorter than the header; `Malformed` if the outer packet would not
    /// fit IPv4's 16-bit length.
    pub fn write_header(
        &self,
        out: &mut [u8],
        vni: Vni,
        src_port: u16,
        ident: u16,
        inner_len: usize,
    ) -> Result<()> {
        let Some(out) = out.first_chunk_mut::<IPV4_OVERHEAD>() else {
            return Err(WireError::Truncated);
        };
        let ip_len = IPV4_HEADER_LEN + UDP_HEADER_LEN + HEADER_LEN + inner_len;
        let Ok(ip_len16) = u16::try_from(ip_len) else {
            return Err(WireError::Malformed("VXLAN packet over 65535 bytes"));
        };
        let udp_len = ip_len16 - IPV4_HEADER_LEN as u16;
        let mut eth = EthernetFrame::new_unchecked(&mut out[..]);
        eth.set_dst_addr(self.dst_mac);
        eth.set_src_addr(self.src_mac);
        eth.set_ethertype(EtherType::IPV4);
        let rest = &mut out[ethernet::HEADER_LEN..];
        let (ip, rest) = rest.split_at_mut(IPV4_HEADER_LEN);
        let flags: u16 = if self.dont_fragment { 0x4000 } else { 0 };
        ip[0] = 0x45;
        ip[1] = self.tos;
        ip[2..4].copy_from_slice(&ip_len16.to_be_bytes());
        ip[4..6].copy_from_slice(&ident.to_be_bytes());
        ip[6..8].copy_from_slice(&flags.to_be_bytes());
        ip[8] = self.ttl;
        ip[9] = IpProtocol::UDP.0;
        ip[12..16].copy_from_slice(&self.src_ip);
        ip[16..20].copy_from_slice(&self.dst_ip);
        Ipv4Packet::new_unchecked(&mut *ip).fill_checksum();
        let (udp, vxlan) = rest.split_at_mut(UDP_HEADER_LEN);
        udp[0..2].copy_from_slice(&src_port.to_be_bytes());
        udp[2..4].copy_from_slice(&UDP_PORT.to_be_bytes());
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        udp[6..8].fill(0);
        if let Some(h) = vxlan.first_chunk_mut::<HEADER_LEN>() {
            emit_header(h, vni);
        }
        Ok(())
    }
}

/// One tunnel's outer header worked out once (Open vSwitch's `tnl_push`
/// keeps such a template too): per packet only the IPv4 total length and
/// checksum, the UDP source port and the UDP length change, and the
/// checksum is finished from a sum of the rest kept here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderTemplate {
    bytes: [u8; IPV4_OVERHEAD],
    /// The ones'-complement sum of the outer IPv4 header with its length
    /// and checksum fields zero.
    ip_sum: u64,
}

impl Ipv4Tunnel {
    /// This tunnel's header for VNI `vni`, ready for [`HeaderTemplate::write`].
    pub fn template(&self, vni: Vni) -> HeaderTemplate {
        let mut bytes = [0u8; IPV4_OVERHEAD];
        // Nothing can fail for an empty inner frame into 50 bytes.
        let _ = self.write_header(&mut bytes, vni, 0, 0, 0);
        let mut ip =
            Ipv4Packet::new_unchecked(&mut bytes[ethernet::HEADER_LEN..][..IPV4_HEADER_LEN]);
        ip.set_total_len(0);
        ip.set_checksum(0);
        let ip_sum = sum16(&bytes[ethernet::HEADER_LEN..][..IPV4_HEADER_LEN]);
        HeaderTemplate { bytes, ip_sum }
    }
}

impl HeaderTemplate {
    /// The same header sent to the next hop `mac` (once per batch: the
    /// MAC is not in the IPv4 checksum).
    #[inline(always)]
    pub fn to(&self, mac: EthernetAddress) -> HeaderTemplate {
        let mut t = *self;
        t.bytes[..6].copy_from_slice(mac.as_bytes());
        t
    }

    /// Writes what [`Ipv4Tunnel::write_header`] writes (with the IPv4
    /// identification 0) at the start of `out`, for an inner frame of
    /// `inner_len` bytes from UDP port `src_port`: a copy and four fields.
    #[inline(always)]
    pub fn write(&self, out: &mut [u8], src_port: u16, inner_len: usize) -> Result<()> {
        let Some(out) = out.first_chunk_mut::<IPV4_OVERHEAD>() else {
            return Err(WireError::Truncated);
        };
        let Ok(ip_len) = u16::try_from(IPV4_HEADER_LEN + UDP_HEADER_LEN + HEADER_LEN + inner_len)
        else {
            return Err(WireError::Malformed("VXLAN packet over 65535 bytes"));
        };
        *out = self.bytes;
        let (ip, rest) = out[ethernet::HEADER_LEN..].split_at_mut(IPV4_HEADER_LEN);
        let mut ip = Ipv4Packet::new_unchecked(ip);
        ip.set_total_len(ip_len);
        ip.set_checksum(fold(self.ip_sum + u64::from(ip_len)));
        let mut udp = UdpPacket::new_unchecked(&mut rest[..UDP_HEADER_LEN]);
        udp.set_src_port(src_port);
        udp.set_len(ip_len - IPV4_HEADER_LEN as u16);
        Ok(())
    }
}

/// What a received VXLAN-over-IPv4 packet carries, and where its inner
/// frame lies in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapsulated {
    /// The outer VLAN tag, if the underlay frame had one.
    pub outer_tci: Option<Tci>,
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub src_port: u16,
    pub ttl: u8,
    pub tos: u8,
    pub vni: Vni,
    /// The inner Ethernet frame is `frame[inner..inner + inner_len]`.
    pub inner: usize,
    pub inner_len: usize,
}

/// Parses `frame` (an outer Ethernet frame, untagged or with one or two
/// tags) as VXLAN over IPv4 to UDP port `udp_port`, checking what the
/// module's header says a receiver checks; the error says why it is not
/// a tunnel packet this endpoint takes. `csum_partial`: the frame came
/// with its checksum left to an offload (virtio's `NEEDS_CSUM`, a packet
/// socket's `TP_STATUS_CSUMNOTREADY`), so its UDP checksum field holds the
/// pseudo-header sum and is not verified. Never panics.
#[inline]
pub fn parse_ipv4(frame: &[u8], udp_port: u16, csum_partial: bool) -> Result<Decapsulated> {
    parse_ipv4_tagged(
        frame,
        &VlanStack::from_frame(frame, None)?,
        udp_port,
        csum_partial,
    )
}

/// [`parse_ipv4`] of a frame whose tags (`VlanStack::from_frame(frame,
/// None)`) the caller has already walked.
#[inline]
pub fn parse_ipv4_tagged(
    frame: &[u8],
    tags: &VlanStack,
    udp_port: u16,
    csum_partial: bool,
) -> Result<Decapsulated> {
    if tags.ethertype != EtherType::IPV4 {
        return Err(WireError::Malformed("outer EtherType not IPv4"));
    }
    let l3 = ethernet::HEADER_LEN + tags.tags_len;
    let ip = Ipv4Packet::new_checked(frame.get(l3..).unwrap_or_default())?;
    if ip.is_fragment() {
        return Err(WireError::Malformed("fragmented VXLAN packet"));
    }
    if ip.protocol() != IpProtocol::UDP {
        return Err(WireError::Malformed("outer protocol not UDP"));
    }
    if !ip.verify_checksum() {
        return Err(WireError::Malformed("outer IPv4 checksum"));
    }
    let segment = ip.payload();
    let udp = UdpPacket::new_checked(segment)?;
    if udp.dst_port() != udp_port {
        return Err(WireError::Malformed("not the VXLAN port"));
    }
    // `new_checked` holds the length field inside the segment.
    let segment = &segment[..usize::from(udp.len())];
    if !csum_partial
        && udp.checksum() != 0
        && !ipv4_l4_checksum_holds(ip.src_addr(), ip.dst_addr(), IpProtocol::UDP, segment)
    {
        return Err(WireError::Malformed("outer UDP checksum"));
    }
    let vxlan = VxlanHeader::new_checked(&segment[UDP_HEADER_LEN..])?;
    let inner_len = vxlan.payload().len();
    if inner_len < ethernet::HEADER_LEN {
        return Err(WireError::Truncated);
    }
    Ok(Decapsulated {
        outer_tci: tags.outer,
        src_ip: ip.src_addr(),
        dst_ip: ip.dst_addr(),
        src_port: udp.src_port(),
        ttl: ip.ttl(),
        tos: ip.tos(),
        vni: vxlan.vni(),
        inner: l3 + ip.header_len() + UDP_HEADER_LEN + HEADER_LEN,
        inner_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4_l4_checksum;
    use proptest::prelude::*;

    fn tunnel() -> Ipv4Tunnel {
        Ipv4Tunnel {
            src_mac: EthernetAddress::new(0x02, 0, 0, 0, 0, 1),
            dst_mac: EthernetAddress::new(0x02, 0, 0, 0, 0, 2),
            src_ip: [192, 0, 2, 1],
            dst_ip: [192, 0, 2, 2],
            ttl: 64,
            tos: 0,
            dont_fragment: true,
        }
    }

    proptest! {
        // The template writes exactly what write_header writes (with the
        // IPv4 identification 0), whatever the tunnel and the frame.
        #[test]
        fn the_template_writes_what_write_header_writes(
            mac in any::<[u8; 12]>(), src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
            ttl in any::<u8>(), tos in any::<u8>(), df in any::<bool>(),
            vni in 0u32..=Vni::MAX, sport in any::<u16>(), inner_len in 0usize..70_000,
        ) {
            let t = Ipv4Tunnel {
                src_mac: EthernetAddress::from_slice(&mac[..6]).unwrap(),
                dst_mac: EthernetAddress::from_slice(&mac[6..]).unwrap(),
                src_ip: src,
                dst_ip: dst,
                ttl,
                tos,
                dont_fragment: df,
            };
            let vni = Vni::new(vni).unwrap();
            let (mut a, mut b) = ([0u8; IPV4_OVERHEAD], [0u8; IPV4_OVERHEAD]);
            let want = t.write_header(&mut a, vni, sport, 0, inner_len);
            // The next hop's MAC is the one given, not the template's.
            let elsewhere = Ipv4Tunnel { dst_mac: EthernetAddress::from_u64(0), ..t };
            let got = elsewhere.template(vni).to(t.dst_mac).write(&mut b, sport, inner_len);
            prop_assert_eq!(want.is_ok(), got.is_ok());
            if want.is_ok() {
                prop_assert_eq!(a, b);
            }
        }
    }

    fn encapsulate(t: &Ipv4Tunnel, vni: Vni, sport: u16, inner: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; IPV4_OVERHEAD + inner.len()];
        t.write_header(&mut out, vni, sport, 7, inner.len())
            .unwrap();
        out[IPV4_OVERHEAD..].copy_from_slice(inner);
        out
    }

    #[test]
    fn the_outer_header_is_rfc_7348s_byte_for_byte() {
        let inner = [0xaau8; 60];
        let f = encapsulate(&tunnel(), Vni::new(0x12_3456).unwrap(), 49152, &inner);
        let want: [u8; IPV4_OVERHEAD] = [
            // Ethernet: next hop, this endpoint, IPv4.
            0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00,
            // IPv4: 20 + 8 + 8 + 60 = 96 bytes, id 7, DF, TTL 64, UDP.
            0x45, 0, 0, 96, 0, 7, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
            // UDP: 49152 -> 4789, 76 bytes, no checksum.
            0xc0, 0x00, 0x12, 0xb5, 0, 76, 0, 0, // VXLAN: I flag, VNI 0x123456.
            0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0,
        ];
        let mut got = [0u8; IPV4_OVERHEAD];
        got.copy_from_slice(&f[..IPV4_OVERHEAD]);
        // The checksum is checked apart: it is whatever makes the sum hold.
        assert!(Ipv4Packet::new_checked(&f[14..]).unwrap().verify_checksum());
        got[24..26].fill(0);
        assert_eq!(got, want);
    }

    #[test]
    fn source_ports_stay_in_range_and_spread() {
        assert_eq!(source_port(0, 32768, 61000), 32768);
        assert_eq!(source_port(u32::MAX, 32768, 61000), 61000);
        assert_eq!(source_port(u32::MAX, 61000, 32768), 61000);
        assert_eq!(source_port(12345, 5, 5), 5);
        let mut seen = std::collections::HashSet::new();
        for h in 0..1000u32 {
            seen.insert(source_port(h.wrapping_mul(0x9e37_79b9), 32768, 61000));
        }
        assert!(seen.len() > 900);
    }

    #[test]
    fn packets_a_receiver_refuses() {
        let inner = [0x55u8; 64];
        let good = encapsulate(&tunnel(), Vni::new(5).unwrap(), 40000, &inner);
        assert!(parse_ipv4(&good, UDP_PORT, false).is_ok());
        let bad = |at: usize, v: u8| {
            let mut f = good.clone();
            f[at] = v;
            parse_ipv4(&f, UDP_PORT, false)
        };
        // Another port, the I flag clear, a bad IP checksum, a fragment,
        // another protocol, not IPv4.
        assert!(parse_ipv4(&good, 8472, false).is_err());
        assert_eq!(bad(42, 0), Err(WireError::Malformed("VXLAN I flag clear")));
        assert_eq!(
            bad(22, 63),
            Err(WireError::Malformed("outer IPv4 checksum"))
        );
        assert!(bad(21, 1).is_err());
        assert!(bad(23, 6).is_err());
        assert!(bad(12, 0x86).is_err());
        // Reserved bits are ignored on receipt, as Linux does.
        assert!(bad(43, 0xff).is_ok());
        // A UDP checksum that is not zero must hold.
        let mut f = good.clone();
        f[40..42].copy_from_slice(&[0x12, 0x34]);
        assert_eq!(
            parse_ipv4(&f, UDP_PORT, false),
            Err(WireError::Malformed("outer UDP checksum"))
        );
        // Left to an offload: not verified.
        assert!(parse_ipv4(&f, UDP_PORT, true).is_ok());
        let segment = &good[34..];
        let sum = ipv4_l4_checksum([192, 0, 2, 1], [192, 0, 2, 2], IpProtocol::UDP, segment);
        let mut f = good.clone();
        f[40..42].copy_from_slice(&sum.to_be_bytes());
        assert!(parse_ipv4(&f, UDP_PORT, false).is_ok());
    }

    #[test]
    fn no_prefix_of_a_tunnel_packet_parses_and_none_panics() {
        let f = encapsulate(&tunnel(), Vni::new(9).unwrap(), 40000, &[1u8; 14]);
        for n in 0..f.len() {
            assert!(
                parse_ipv4(&f[..n], UDP_PORT, false).is_err(),
                "prefix of {n} bytes"
            );
        }
        assert!(parse_ipv4(&f, UDP_PORT, false).is_ok());
        assert!(tunnel()
            .write_header(&mut [0u8; IPV4_OVERHEAD - 1], Vni::new(1).unwrap(), 1, 1, 0)
            .is_err());
        assert!(tunnel()
            .write_header(&mut [0u8; IPV4_OVERHEAD], Vni::new(1).unwrap(), 1, 1, 65536)
            .is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// What is encapsulated decapsulates to the same inner frame and
        /// tunnel fields, with or without an outer tag and trailing padding.
        #[test]
        fn decapsulation_undoes_encapsulation(
            vni in 0..=Vni::MAX,
            sport in any::<u16>(),
            ttl in any::<u8>(),
            tos in any::<u8>(),
            df in any::<bool>(),
            src_ip in any::<[u8; 4]>(),
            dst_ip in any::<[u8; 4]>(),
            inner in proptest::collection::vec(any::<u8>(), 14..300),
            tag in proptest::option::of(0u16..4095),
            pad in 0usize..40,
        ) {
            let t = Ipv4Tunnel { ttl, tos, dont_fragment: df, src_ip, dst_ip, ..tunnel() };
            let vni = Vni::new(vni).unwrap();
            let mut f = encapsulate(&t, vni, sport, &inner);
            if let Some(vid) = tag {
                f.splice(12..12, [0x81, 0x00, (vid >> 8) as u8, vid as u8]);
            }
            f.extend(std::iter::repeat_n(0u8, pad));
            let d = parse_ipv4(&f, UDP_PORT, false).unwrap();
            prop_assert_eq!(&f[d.inner..d.inner + d.inner_len], &inner[..]);
            prop_assert_eq!(d.vni, vni);
            prop_assert_eq!((d.src_ip, d.dst_ip, d.src_port, d.ttl, d.tos), (src_ip, dst_ip, sport, ttl, tos));
            prop_assert_eq!(d.outer_tci.map(|t| t.0), tag);
        }

        /// Any bytes: an error or a view inside the frame, never a panic.
        #[test]
        fn any_bytes_parse_or_fail_inside_the_frame(
            f in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            if let Ok(d) = parse_ipv4(&f, UDP_PORT, false) {
                prop_assert!(d.inner + d.inner_len <= f.len());
            }
            if let Ok(h) = VxlanHeader::new_checked(&f[..]) {
                prop_assert!(h.vni().get() <= Vni::MAX);
                prop_assert_eq!(h.payload().len(), f.len() - HEADER_LEN);
            }
        }
    }
}
