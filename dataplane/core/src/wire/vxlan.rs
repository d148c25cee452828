//! VXLAN (RFC 7348): the 8-byte header, the outer Ethernet/IPv4/UDP or
//! Ethernet/IPv6/UDP header a tunnel endpoint puts around an inner
//! Ethernet frame, and the checks a received tunnel packet must pass
//! before its inner frame is switched.
//!
//! Receive follows the Linux VXLAN driver: the I flag must be set, the
//! reserved bits are ignored, the outer IPv4 checksum must hold and so
//! must a UDP checksum that is not zero (zero means none), and a
//! fragmented outer packet is refused (it would need reassembly). Over
//! IPv6 the UDP header must follow the fixed header (no extension
//! header), and a zero UDP checksum is taken, as Open vSwitch takes it
//! (RFC 6935 allows it for tunnels; Linux refuses it unless
//! `udp6zerocsumrx`). Transmit follows RFC 7348 and the kernel's
//! defaults: reserved bits zero, the source port from a hash of the inner
//! flow so that the underlay's ECMP spreads flows, the UDP checksum zero
//! over IPv4 and computed over IPv6 (RFC 8200 makes it mandatory there,
//! and Linux sends it by default).

use super::ipv4::{Ipv4Packet, MIN_HEADER_LEN as IPV4_HEADER_LEN};
use super::ipv6::{Ipv6Packet, HEADER_LEN as IPV6_HEADER_LEN};
use super::udp::{UdpPacket, HEADER_LEN as UDP_HEADER_LEN};
use super::vlan::{Tci, VlanStack};
use super::{
    ethernet, fold, ipv4_l4_checksum_holds, ipv6_l4_checksum_holds, sum16, EtherType,
    EthernetAddress, EthernetFrame, IpProtocol, Result, WireError,
};
use std::net::IpAddr;

/// The IANA port of VXLAN.
pub const UDP_PORT: u16 = 4789;

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;

/// Bytes an untagged IPv4 tunnel adds in front of the inner frame: outer
/// Ethernet, IPv4 without options, UDP and VXLAN (the 50 bytes Neutron
/// takes off the physical MTU for a VXLAN network over IPv4).
pub const IPV4_OVERHEAD: usize =
    ethernet::HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + HEADER_LEN;

/// The same over IPv6 (Neutron's 70 with `overlay_ip_version = 6`).
pub const IPV6_OVERHEAD: usize =
    ethernet::HEADER_LEN + IPV6_HEADER_LEN + UDP_HEADER_LEN + HEADER_LEN;

/// The "VNI is valid" flag, bit 3 of the first byte.
const FLAG_I: u8 = 0x08;

/// A VXLAN network identifier: 24 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
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

/// Writing one tunnel's outer header in front of its frames, from a
/// template worked out once (Open vSwitch's `tnl_push` keeps such a
/// template too). Implemented per address family, so that a batch is
/// written by one monomorphic loop.
pub trait OuterTemplate: Copy {
    /// Bytes the header adds in front of the inner frame.
    const OVERHEAD: usize;

    /// The same header sent to the next hop `mac` (once per batch: no
    /// checksum covers the MAC).
    fn to(&self, mac: EthernetAddress) -> Self;

    /// The same header with VNI `vni` (a tunnel whose frames pick their
    /// VNI: once per run of frames with the same one).
    fn with_vni(&self, vni: Vni) -> Self;

    /// Writes the outer header at the start of `frame`, in front of the
    /// inner frame of `inner_len` bytes that follows it there, from UDP
    /// port `src_port`. `Truncated` if `frame` is shorter than both;
    /// `Malformed` if the packet would not fit its 16-bit length field.
    fn write(&self, frame: &mut [u8], src_port: u16, inner_len: usize) -> Result<()>;
}

/// An IPv4 tunnel's header: per packet only the IPv4 total length and
/// checksum, the UDP source port and the UDP length change, and the
/// checksum is finished from a sum of the rest kept here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Template {
    bytes: [u8; IPV4_OVERHEAD],
    /// The ones'-complement sum of the outer IPv4 header with its length
    /// and checksum fields zero.
    ip_sum: u64,
}

impl Ipv4Tunnel {
    /// This tunnel's header for VNI `vni`, ready for [`OuterTemplate::write`].
    pub fn template(&self, vni: Vni) -> Ipv4Template {
        let mut bytes = [0u8; IPV4_OVERHEAD];
        // Nothing can fail for an empty inner frame into 50 bytes.
        let _ = self.write_header(&mut bytes, vni, 0, 0, 0);
        let mut ip =
            Ipv4Packet::new_unchecked(&mut bytes[ethernet::HEADER_LEN..][..IPV4_HEADER_LEN]);
        ip.set_total_len(0);
        ip.set_checksum(0);
        let ip_sum = sum16(&bytes[ethernet::HEADER_LEN..][..IPV4_HEADER_LEN]);
        Ipv4Template { bytes, ip_sum }
    }
}

impl OuterTemplate for Ipv4Template {
    const OVERHEAD: usize = IPV4_OVERHEAD;

    #[inline(always)]
    fn to(&self, mac: EthernetAddress) -> Ipv4Template {
        let mut t = *self;
        t.bytes[..6].copy_from_slice(mac.as_bytes());
        t
    }

    #[inline(always)]
    fn with_vni(&self, vni: Vni) -> Ipv4Template {
        // No checksum covers the VXLAN header (the UDP checksum is zero).
        let mut t = *self;
        let mut vxlan = [0u8; HEADER_LEN];
        emit_header(&mut vxlan, vni);
        t.bytes[IPV4_OVERHEAD - HEADER_LEN..].copy_from_slice(&vxlan);
        t
    }

    /// Writes what [`Ipv4Tunnel::write_header`] writes (with the IPv4
    /// identification 0): a copy and four fields. Only the header's bytes
    /// of `frame` are touched.
    #[inline(always)]
    fn write(&self, frame: &mut [u8], src_port: u16, inner_len: usize) -> Result<()> {
        let Some(out) = frame.first_chunk_mut::<IPV4_OVERHEAD>() else {
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

/// The outer headers of one IPv6 tunnel: from this endpoint (its MAC and
/// address) to a remote endpoint (the next hop's MAC and its address).
/// The flow label is zero, as Linux sends by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Tunnel {
    pub src_mac: EthernetAddress,
    pub dst_mac: EthernetAddress,
    pub src_ip: [u8; 16],
    pub dst_ip: [u8; 16],
    pub hop_limit: u8,
    pub traffic_class: u8,
}

impl Ipv6Tunnel {
    /// Writes the [`IPV6_OVERHEAD`] bytes of outer header at the start of
    /// `frame`, in front of the inner frame of `inner_len` bytes that
    /// follows them there: the UDP checksum covers it. `Truncated` if
    /// `frame` is shorter than both; `Malformed` if the UDP datagram would
    /// not fit its 16-bit length.
    pub fn write_header(
        &self,
        frame: &mut [u8],
        vni: Vni,
        src_port: u16,
        inner_len: usize,
    ) -> Result<()> {
        let Some(whole) = frame.get_mut(..IPV6_OVERHEAD + inner_len) else {
            return Err(WireError::Truncated);
        };
        let Ok(udp_len) = u16::try_from(UDP_HEADER_LEN + HEADER_LEN + inner_len) else {
            return Err(WireError::Malformed("VXLAN packet over 65535 bytes"));
        };
        let mut eth = EthernetFrame::new_unchecked(&mut whole[..]);
        eth.set_dst_addr(self.dst_mac);
        eth.set_src_addr(self.src_mac);
        eth.set_ethertype(EtherType::IPV6);
        let (ip, rest) = whole[ethernet::HEADER_LEN..].split_at_mut(IPV6_HEADER_LEN);
        let tc = u32::from(self.traffic_class) << 20;
        ip[0..4].copy_from_slice(&((6 << 28) | tc).to_be_bytes());
        ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
        ip[6] = IpProtocol::UDP.0;
        ip[7] = self.hop_limit;
        ip[8..24].copy_from_slice(&self.src_ip);
        ip[24..40].copy_from_slice(&self.dst_ip);
        let (udp, vxlan) = rest.split_at_mut(UDP_HEADER_LEN);
        udp[0..2].copy_from_slice(&src_port.to_be_bytes());
        udp[2..4].copy_from_slice(&UDP_PORT.to_be_bytes());
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        udp[6..8].fill(0);
        if let Some(h) = vxlan.first_chunk_mut::<HEADER_LEN>() {
            emit_header(h, vni);
        }
        let sum = super::ipv6_l4_checksum(
            self.src_ip,
            self.dst_ip,
            IpProtocol::UDP,
            &rest[..usize::from(udp_len)],
        );
        rest[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(())
    }

    /// This tunnel's header for VNI `vni`, ready for [`OuterTemplate::write`].
    pub fn template(&self, vni: Vni) -> Ipv6Template {
        let mut bytes = [0u8; IPV6_OVERHEAD];
        // Nothing can fail for an empty inner frame into 70 bytes.
        let _ = self.write_header(&mut bytes, vni, 0, 0);
        // The UDP checksum is written per packet: none in the template.
        bytes[ethernet::HEADER_LEN + IPV6_HEADER_LEN + 6..][..2].fill(0);
        let udp = &bytes[ethernet::HEADER_LEN + IPV6_HEADER_LEN..];
        // Everything the UDP checksum covers that no packet changes: the
        // pseudo-header's addresses and next header, the destination port
        // and the VXLAN header.
        let fixed = sum16(&self.src_ip)
            + sum16(&self.dst_ip)
            + u64::from(IpProtocol::UDP.0)
            + u64::from(UDP_PORT)
            + sum16(&udp[UDP_HEADER_LEN..UDP_HEADER_LEN + HEADER_LEN]);
        Ipv6Template { bytes, fixed }
    }
}

/// An IPv6 tunnel's header: per packet the payload length, the UDP source
/// port, length and checksum change; the checksum sums the inner frame
/// once and adds the rest kept here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Template {
    bytes: [u8; IPV6_OVERHEAD],
    /// See [`Ipv6Tunnel::template`].
    fixed: u64,
}

impl OuterTemplate for Ipv6Template {
    const OVERHEAD: usize = IPV6_OVERHEAD;

    #[inline(always)]
    fn to(&self, mac: EthernetAddress) -> Ipv6Template {
        let mut t = *self;
        t.bytes[..6].copy_from_slice(mac.as_bytes());
        t
    }

    #[inline(always)]
    fn with_vni(&self, vni: Vni) -> Ipv6Template {
        // The UDP checksum covers the VXLAN header: its fixed part trades
        // the old VNI's words for the new one's (it only ever grew by
        // them, so nothing underflows).
        let mut t = *self;
        let mut vxlan = [0u8; HEADER_LEN];
        emit_header(&mut vxlan, vni);
        let at = IPV6_OVERHEAD - HEADER_LEN;
        t.fixed = t.fixed - sum16(&t.bytes[at..]) + sum16(&vxlan);
        t.bytes[at..].copy_from_slice(&vxlan);
        t
    }

    /// Writes what [`Ipv6Tunnel::write_header`] writes: a copy, four
    /// fields and a sum over the inner frame.
    #[inline(always)]
    fn write(&self, frame: &mut [u8], src_port: u16, inner_len: usize) -> Result<()> {
        let Some(whole) = frame.get_mut(..IPV6_OVERHEAD + inner_len) else {
            return Err(WireError::Truncated);
        };
        let Ok(udp_len) = u16::try_from(UDP_HEADER_LEN + HEADER_LEN + inner_len) else {
            return Err(WireError::Malformed("VXLAN packet over 65535 bytes"));
        };
        let (out, inner) = whole.split_at_mut(IPV6_OVERHEAD);
        out.copy_from_slice(&self.bytes);
        out[ethernet::HEADER_LEN + 4..][..2].copy_from_slice(&udp_len.to_be_bytes());
        let udp = &mut out[ethernet::HEADER_LEN + IPV6_HEADER_LEN..][..UDP_HEADER_LEN];
        udp[0..2].copy_from_slice(&src_port.to_be_bytes());
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        // The length counts twice: in the pseudo-header and the UDP header.
        let sum = self.fixed + 2 * u64::from(udp_len) + u64::from(src_port) + sum16(inner);
        let sum = match fold(sum) {
            0 => 0xffff,
            c => c,
        };
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(())
    }
}

/// A tunnel's outer headers, of either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OuterHeader {
    V4(Ipv4Tunnel),
    V6(Ipv6Tunnel),
}

/// A tunnel's header template, of either family: encapsulation matches it
/// once per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderTemplate {
    V4(Ipv4Template),
    V6(Ipv6Template),
}

impl OuterHeader {
    /// This endpoint's address.
    pub fn src_ip(&self) -> IpAddr {
        match self {
            OuterHeader::V4(t) => IpAddr::from(t.src_ip),
            OuterHeader::V6(t) => IpAddr::from(t.src_ip),
        }
    }

    /// The remote endpoint's address.
    pub fn dst_ip(&self) -> IpAddr {
        match self {
            OuterHeader::V4(t) => IpAddr::from(t.dst_ip),
            OuterHeader::V6(t) => IpAddr::from(t.dst_ip),
        }
    }

    /// This endpoint's MAC.
    pub fn src_mac(&self) -> EthernetAddress {
        match self {
            OuterHeader::V4(t) => t.src_mac,
            OuterHeader::V6(t) => t.src_mac,
        }
    }

    /// Bytes the header adds in front of a frame.
    pub fn overhead(&self) -> usize {
        match self {
            OuterHeader::V4(_) => IPV4_OVERHEAD,
            OuterHeader::V6(_) => IPV6_OVERHEAD,
        }
    }

    /// The header for VNI `vni`.
    pub fn template(&self, vni: Vni) -> HeaderTemplate {
        match self {
            OuterHeader::V4(t) => HeaderTemplate::V4(t.template(vni)),
            OuterHeader::V6(t) => HeaderTemplate::V6(t.template(vni)),
        }
    }
}

/// What a received VXLAN packet carries, and where its inner frame lies
/// in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapsulated {
    /// The outer VLAN tag, if the underlay frame had one.
    pub outer_tci: Option<Tci>,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub src_port: u16,
    /// The TTL, or the hop limit.
    pub ttl: u8,
    /// The type of service, or the traffic class.
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
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let u = udp_vxlan(ip.payload(), udp_port, csum_partial, |segment| {
        ipv4_l4_checksum_holds(src, dst, IpProtocol::UDP, segment)
    })?;
    Ok(Decapsulated {
        outer_tci: tags.outer,
        src_ip: IpAddr::from(src),
        dst_ip: IpAddr::from(dst),
        src_port: u.src_port,
        ttl: ip.ttl(),
        tos: ip.tos(),
        vni: u.vni,
        inner: l3 + ip.header_len() + UDP_HEADER_LEN + HEADER_LEN,
        inner_len: u.inner_len,
    })
}

/// What [`udp_vxlan`] reads of a UDP datagram carrying VXLAN.
struct UdpVxlan {
    src_port: u16,
    vni: Vni,
    inner_len: usize,
}

/// The receive checks of the UDP datagram `segment` (an IP packet's
/// payload) as VXLAN to `udp_port`, the same over either IP version:
/// `checksum_holds` is asked about the datagram unless its checksum is
/// zero or `csum_partial`.
#[inline(always)]
fn udp_vxlan(
    segment: &[u8],
    udp_port: u16,
    csum_partial: bool,
    checksum_holds: impl FnOnce(&[u8]) -> bool,
) -> Result<UdpVxlan> {
    let udp = UdpPacket::new_checked(segment)?;
    if udp.dst_port() != udp_port {
        return Err(WireError::Malformed("not the VXLAN port"));
    }
    // `new_checked` holds the length field inside the segment.
    let segment = &segment[..usize::from(udp.len())];
    if !csum_partial && udp.checksum() != 0 && !checksum_holds(segment) {
        return Err(WireError::Malformed("outer UDP checksum"));
    }
    let vxlan = VxlanHeader::new_checked(&segment[UDP_HEADER_LEN..])?;
    let inner_len = vxlan.payload().len();
    if inner_len < ethernet::HEADER_LEN {
        return Err(WireError::Truncated);
    }
    Ok(UdpVxlan {
        src_port: udp.src_port(),
        vni: vxlan.vni(),
        inner_len,
    })
}

/// [`parse_ipv4_tagged`] for VXLAN over IPv6: the UDP header right after
/// the fixed header, its checksum verified unless zero or `csum_partial`.
#[inline]
pub fn parse_ipv6_tagged(
    frame: &[u8],
    tags: &VlanStack,
    udp_port: u16,
    csum_partial: bool,
) -> Result<Decapsulated> {
    if tags.ethertype != EtherType::IPV6 {
        return Err(WireError::Malformed("outer EtherType not IPv6"));
    }
    let l3 = ethernet::HEADER_LEN + tags.tags_len;
    let ip = Ipv6Packet::new_checked(frame.get(l3..).unwrap_or_default())?;
    if ip.next_header() != IpProtocol::UDP {
        return Err(WireError::Malformed("outer next header not UDP"));
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let u = udp_vxlan(ip.payload(), udp_port, csum_partial, |segment| {
        ipv6_l4_checksum_holds(src, dst, IpProtocol::UDP, segment)
    })?;
    Ok(Decapsulated {
        outer_tci: tags.outer,
        src_ip: IpAddr::from(src),
        dst_ip: IpAddr::from(dst),
        src_port: u.src_port,
        ttl: ip.hop_limit(),
        tos: ip.traffic_class(),
        vni: u.vni,
        inner: l3 + IPV6_HEADER_LEN + UDP_HEADER_LEN + HEADER_LEN,
        inner_len: u.inner_len,
    })
}

/// [`parse_ipv6_tagged`] of a frame whose tags are walked here.
#[inline]
pub fn parse_ipv6(frame: &[u8], udp_port: u16, csum_partial: bool) -> Result<Decapsulated> {
    parse_ipv6_tagged(
        frame,
        &VlanStack::from_frame(frame, None)?,
        udp_port,
        csum_partial,
    )
}

/// A VXLAN packet over IPv4 or IPv6, by its outer EtherType.
#[inline]
pub fn parse_tagged(
    frame: &[u8],
    tags: &VlanStack,
    udp_port: u16,
    csum_partial: bool,
) -> Result<Decapsulated> {
    if tags.ethertype == EtherType::IPV6 {
        parse_ipv6_tagged(frame, tags, udp_port, csum_partial)
    } else {
        parse_ipv4_tagged(frame, tags, udp_port, csum_partial)
    }
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

    fn tunnel6() -> Ipv6Tunnel {
        Ipv6Tunnel {
            src_mac: EthernetAddress::new(0x02, 0, 0, 0, 0, 1),
            dst_mac: EthernetAddress::new(0x02, 0, 0, 0, 0, 2),
            src_ip: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            dst_ip: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            hop_limit: 64,
            traffic_class: 0,
        }
    }

    fn encapsulate6(t: &Ipv6Tunnel, vni: Vni, sport: u16, inner: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; IPV6_OVERHEAD + inner.len()];
        out[IPV6_OVERHEAD..].copy_from_slice(inner);
        t.write_header(&mut out, vni, sport, inner.len()).unwrap();
        out
    }

    #[test]
    fn the_ipv6_outer_header_is_rfc_7348s_with_its_udp_checksum() {
        let inner = [0xaau8; 60];
        let f = encapsulate6(&tunnel6(), Vni::new(0x12_3456).unwrap(), 49152, &inner);
        let t = tunnel6();
        let mut want = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd];
        // IPv6: version 6, payload 8 + 8 + 60 = 76, UDP, hop limit 64.
        want.extend_from_slice(&[0x60, 0, 0, 0, 0, 76, 17, 64]);
        want.extend_from_slice(&t.src_ip);
        want.extend_from_slice(&t.dst_ip);
        // UDP: 49152 -> 4789, 76 bytes, checksum apart; VXLAN.
        want.extend_from_slice(&[0xc0, 0x00, 0x12, 0xb5, 0, 76, 0, 0]);
        want.extend_from_slice(&[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        let mut got = f[..IPV6_OVERHEAD].to_vec();
        got[60..62].fill(0);
        assert_eq!(got, want);
        let udp = &f[54..];
        assert!(crate::wire::ipv6_l4_checksum_holds(
            t.src_ip,
            t.dst_ip,
            IpProtocol::UDP,
            udp
        ));
        assert_ne!(&f[60..62], &[0, 0]);
    }

    #[test]
    fn ipv6_packets_a_receiver_refuses_or_takes() {
        let good = encapsulate6(&tunnel6(), Vni::new(5).unwrap(), 40000, &[0x55u8; 64]);
        assert!(parse_ipv6(&good, UDP_PORT, false).is_ok());
        assert!(parse_tagged(
            &good,
            &VlanStack::from_frame(&good, None).unwrap(),
            UDP_PORT,
            false
        )
        .is_ok());
        assert!(parse_ipv4(&good, UDP_PORT, false).is_err());
        let bad = |at: usize, v: u8| {
            let mut f = good.clone();
            f[at] = v;
            parse_ipv6(&f, UDP_PORT, false)
        };
        // A UDP checksum that does not hold; another next header (an
        // extension header first is not taken); another port; the I flag.
        assert_eq!(
            bad(61, good[61] ^ 1),
            Err(WireError::Malformed("outer UDP checksum"))
        );
        assert_eq!(
            bad(20, 0),
            Err(WireError::Malformed("outer next header not UDP"))
        );
        assert!(bad(57, 0).is_err());
        assert!(bad(62, 0).is_err());
        // A zero checksum is taken (RFC 6935, as Open vSwitch); left to an
        // offload, not verified.
        let mut f = good.clone();
        f[60..62].fill(0);
        assert!(parse_ipv6(&f, UDP_PORT, false).is_ok());
        f[60] = 1;
        assert!(parse_ipv6(&f, UDP_PORT, true).is_ok());
        for n in 0..good.len() {
            assert!(
                parse_ipv6(&good[..n], UDP_PORT, false).is_err(),
                "prefix of {n} bytes"
            );
        }
        assert!(tunnel6()
            .write_header(&mut [0u8; IPV6_OVERHEAD + 3], Vni::new(1).unwrap(), 1, 4)
            .is_err());
    }

    proptest! {
        // A template moved to another VNI is the template made for that
        // VNI, its IPv6 checksum sum included.
        #[test]
        fn a_template_moved_to_another_vni_is_that_vnis_template(
            a in 0u32..=Vni::MAX, b in 0u32..=Vni::MAX,
        ) {
            let (a, b) = (Vni::new(a).unwrap(), Vni::new(b).unwrap());
            prop_assert_eq!(tunnel().template(a).with_vni(b), tunnel().template(b));
            prop_assert_eq!(tunnel6().template(a).with_vni(b), tunnel6().template(b));
        }

        // The IPv6 template writes exactly what write_header writes.
        #[test]
        fn the_ipv6_template_writes_what_write_header_writes(
            mac in any::<[u8; 12]>(), src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
            hop_limit in any::<u8>(), traffic_class in any::<u8>(),
            vni in 0u32..=Vni::MAX, sport in any::<u16>(),
            inner in proptest::collection::vec(any::<u8>(), 14..400),
        ) {
            let t = Ipv6Tunnel {
                src_mac: EthernetAddress::from_slice(&mac[..6]).unwrap(),
                dst_mac: EthernetAddress::from_slice(&mac[6..]).unwrap(),
                src_ip: src,
                dst_ip: dst,
                hop_limit,
                traffic_class,
            };
            let vni = Vni::new(vni).unwrap();
            let want = encapsulate6(&t, vni, sport, &inner);
            let elsewhere = Ipv6Tunnel { dst_mac: EthernetAddress::from_u64(0), ..t };
            let mut got = vec![0u8; IPV6_OVERHEAD + inner.len()];
            got[IPV6_OVERHEAD..].copy_from_slice(&inner);
            elsewhere.template(vni).to(t.dst_mac).write(&mut got, sport, inner.len()).unwrap();
            prop_assert_eq!(&want, &got);
            let d = parse_ipv6(&got, UDP_PORT, false).unwrap();
            prop_assert_eq!(&got[d.inner..d.inner + d.inner_len], &inner[..]);
            prop_assert_eq!(
                (d.src_ip, d.dst_ip, d.src_port, d.ttl, d.tos, d.vni),
                (IpAddr::from(src), IpAddr::from(dst), sport, hop_limit, traffic_class, vni)
            );
        }

        /// Any bytes: an error or a view inside the frame, never a panic.
        #[test]
        fn any_bytes_parse_as_ipv6_or_fail_inside_the_frame(
            f in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            if let Ok(d) = parse_ipv6(&f, UDP_PORT, false) {
                prop_assert!(d.inner + d.inner_len <= f.len());
            }
        }
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
            prop_assert_eq!((d.src_ip, d.dst_ip, d.src_port, d.ttl, d.tos), (IpAddr::from(src_ip), IpAddr::from(dst_ip), sport, ttl, tos));
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
