//! Typed, zero-copy views over frame bytes.
//!
//! The design follows smoltcp's `wire` module: every header has a view
//! `struct Xxx<T: AsRef<[u8]>> { buffer: T }` that borrows (or owns) the bytes
//! and decodes fields on access.
//!
//! * `new_checked(buffer)` validates the length (and the few structural fields
//!   the other accessors depend on, such as IPv4's IHL), so that **no accessor
//!   of a view built with `new_checked` can panic**, whatever the bytes are.
//! * `new_unchecked(buffer)` skips that validation; accessors of such a view may
//!   panic when the buffer is too short. Use it only on bytes you built or
//!   already checked.
//! * Setters exist where `T: AsMut<[u8]>` for the fields a switch rewrites
//!   (Ethernet addresses and EtherType, the VLAN TCI, IPv4 TTL and checksum).
//!
//! Multi-byte fields are big-endian on the wire and are returned in host order.
//! Addresses are returned as plain arrays (`[u8; 4]`, `[u8; 16]`) or as
//! [`EthernetAddress`]; `std::net::Ipv4Addr::from(arr)` converts for free.

use core::fmt;
use core::str::FromStr;

pub mod arp;
pub mod dhcpv4;
pub mod dhcpv6;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod ndisc;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vxlan;

pub use arp::{ArpOperation, ArpPacket};
pub use ethernet::EthernetFrame;
pub use icmp::{Icmpv4Packet, Icmpv4Type, Icmpv6Packet, Icmpv6Type};
pub use ipv4::Ipv4Packet;
pub use ipv6::{Ipv6Packet, Ipv6UpperLayer};
pub use tcp::{TcpFlags, TcpPacket};
pub use udp::UdpPacket;
pub use vlan::{Tci, VlanStack, VlanTag};

/// Why a view could not be built over a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the header (or than a length field says).
    #[error("buffer truncated")]
    Truncated,
    /// A structural field has a value the view cannot work with.
    #[error("malformed header: {0}")]
    Malformed(&'static str),
}

/// Result alias for the `wire` module.
pub type Result<T> = core::result::Result<T, WireError>;

/// Reads a big-endian `u16` at `at`. Callers guarantee `at + 2 <= buf.len()`.
#[inline(always)]
fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Reads a big-endian `u32` at `at`. Callers guarantee `at + 4 <= buf.len()`.
#[inline(always)]
fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Writes a big-endian `u16` at `at`. Callers guarantee `at + 2 <= buf.len()`.
#[inline(always)]
fn write_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Copies `N` bytes starting at `at`. Callers guarantee `at + N <= buf.len()`.
#[inline(always)]
fn read_array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

/// The one's complement sum (RFC 1071) of `data`'s 16-bit big-endian words,
/// unfolded (an odd trailing byte is padded with zero): sums of several
/// parts add up before [`fold`] makes a checksum of them. Only its value
/// folded means anything (it is the words' sum modulo 0xffff, zero only
/// for zero data).
#[inline]
pub fn sum16(data: &[u8]) -> u64 {
    // Eight bytes at a time, as two 32-bit words: 2^16 is 1 modulo 0xffff,
    // so a 32-bit word adds what its two halves add (RFC 1071's "deferred
    // carries"). A u64 accumulator cannot overflow for any slice that fits
    // in memory (2^61 bytes of 0xff).
    let mut sum: u64 = 0;
    let mut quads = data.chunks_exact(8);
    for q in &mut quads {
        let w = u64::from_be_bytes([q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]]);
        sum += (w >> 32) + (w & 0xffff_ffff);
    }
    // The last 0-7 bytes without a loop: a 4-, a 2- and a 1-byte part
    // (a 20-byte IPv4 header ends in one 32-bit word).
    let mut rest = quads.remainder();
    if let Some((w, tail)) = rest.split_first_chunk::<4>() {
        sum += u64::from(u32::from_be_bytes(*w));
        rest = tail;
    }
    if let Some((w, tail)) = rest.split_first_chunk::<2>() {
        sum += u64::from(u16::from_be_bytes(*w));
        rest = tail;
    }
    if let [last] = rest {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// The checksum of an unfolded [`sum16`] (or of several added up): the one's
/// complement of the sum folded to 16 bits.
#[inline]
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // `sum <= 0xffff` here, so the conversion is lossless.
    !(sum as u16)
}

/// The Internet checksum (RFC 1071) of `data`: the one's complement of the
/// one's complement sum of its 16-bit big-endian words (an odd trailing byte
/// is padded with zero).
///
/// Computing it over a header whose checksum field is correct yields `0`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum16(data))
}

/// A checksum `sum` (as it sits in a header) after the 16-bit words `old`
/// covered were replaced by `new` (the same length, even): RFC 1624's
/// HC' = ~(~HC + ~m + m'), so a rewrite need not read the data again.
#[inline]
pub fn checksum_adjust(sum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut acc = u64::from(!sum);
    for (o, n) in old.chunks(2).zip(new.chunks(2)) {
        let word = |c: &[u8]| u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        acc += u64::from(!(word(o) as u16)) + word(n);
    }
    fold(acc)
}

/// The checksum of a TCP or UDP `segment` (header, checksum field zero, and
/// data) carried in IPv4 from `src` to `dst`: over the pseudo-header and the
/// segment (RFC 768, RFC 9293). A UDP checksum of 0 is sent as 0xffff.
#[inline]
pub fn ipv4_l4_checksum(src: [u8; 4], dst: [u8; 4], proto: IpProtocol, segment: &[u8]) -> u16 {
    match fold(ipv4_l4_sum(src, dst, proto, segment)) {
        0 if proto == IpProtocol::UDP => 0xffff,
        c => c,
    }
}

/// Whether a received TCP or UDP `segment` (its checksum field as it came)
/// carried in IPv4 from `src` to `dst` checks out: pseudo-header and
/// segment sum to zero.
#[inline]
pub fn ipv4_l4_checksum_holds(
    src: [u8; 4],
    dst: [u8; 4],
    proto: IpProtocol,
    segment: &[u8],
) -> bool {
    fold(ipv4_l4_sum(src, dst, proto, segment)) == 0
}

/// The unfolded sum of the IPv4 pseudo-header and `segment`.
#[inline(always)]
fn ipv4_l4_sum(src: [u8; 4], dst: [u8; 4], proto: IpProtocol, segment: &[u8]) -> u64 {
    sum16(&src) + sum16(&dst) + u64::from(proto.0) + segment.len() as u64 + sum16(segment)
}

/// The checksum of a TCP or UDP `segment` (checksum field zero) carried in
/// IPv6 from `src` to `dst` (RFC 8200 8.1; UDP's is mandatory there, and 0
/// is sent as 0xffff).
#[inline]
pub fn ipv6_l4_checksum(src: [u8; 16], dst: [u8; 16], proto: IpProtocol, segment: &[u8]) -> u16 {
    match fold(ipv6_l4_sum(src, dst, proto, segment)) {
        0 if proto == IpProtocol::UDP => 0xffff,
        c => c,
    }
}

/// Whether a received TCP or UDP `segment` (its checksum field as it came)
/// carried in IPv6 from `src` to `dst` checks out.
#[inline]
pub fn ipv6_l4_checksum_holds(
    src: [u8; 16],
    dst: [u8; 16],
    proto: IpProtocol,
    segment: &[u8],
) -> bool {
    fold(ipv6_l4_sum(src, dst, proto, segment)) == 0
}

/// The unfolded sum of the IPv6 pseudo-header and `segment`.
#[inline(always)]
fn ipv6_l4_sum(src: [u8; 16], dst: [u8; 16], proto: IpProtocol, segment: &[u8]) -> u64 {
    sum16(&src) + sum16(&dst) + u64::from(proto.0) + segment.len() as u64 + sum16(segment)
}

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    /// `00:00:00:00:00:00`.
    pub const ZERO: EthernetAddress = EthernetAddress([0; 6]);

    /// Builds an address from its six octets.
    #[inline]
    pub const fn new(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8) -> Self {
        EthernetAddress([a, b, c, d, e, f])
    }

    /// Builds an address from a slice, or `None` unless it is exactly 6 bytes.
    #[inline]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 6]>::try_from(bytes).ok().map(EthernetAddress)
    }

    /// The six octets.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Unpacks the low 48 bits of `value` (the first octet is bits 47..40);
    /// the high 16 bits are ignored.
    #[inline]
    pub const fn from_u64(value: u64) -> Self {
        let b = value.to_be_bytes();
        EthernetAddress([b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// Packs the address into the low 48 bits of a `u64` (high 16 bits zero).
    #[inline]
    pub const fn to_u64(self) -> u64 {
        let a = self.0;
        u64::from_be_bytes([0, 0, a[0], a[1], a[2], a[3], a[4], a[5]])
    }

    /// `ff:ff:ff:ff:ff:ff`.
    #[inline]
    pub const fn is_broadcast(&self) -> bool {
        self.to_u64() == 0xffff_ffff_ffff
    }

    /// The group bit (I/G, least significant bit of the first octet) is set.
    /// The broadcast address is multicast too.
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Not a group address (so not broadcast either).
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The locally administered bit (U/L) is set.
    #[inline]
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// All octets are zero.
    #[inline]
    pub const fn is_zero(&self) -> bool {
        self.to_u64() == 0
    }

    /// A link-local control protocol's address, which a bridge must not
    /// forward: IEEE 802.1D's reserved group 01:80:c2:00:00:00-0f (STP,
    /// PAUSE, LACP, 802.1X, LLDP, ...), Extreme's EDP and EAPS, and Cisco's
    /// ISL, CDP/VTP/DTP/PAgP/UDLD, PVST+, UplinkFast and CFM addresses. The
    /// same set as Open vSwitch's `eth_addr_is_reserved`, which its NORMAL
    /// action drops unless the bridge has `forward-bpdu`.
    #[inline]
    pub const fn is_reserved(&self) -> bool {
        let v = self.to_u64();
        // Every reserved address starts with 00 or 01: one test clears
        // nearly every other address.
        if v >> 41 != 0 {
            return false;
        }
        match v >> 24 {
            0x0180c2 => v & !0xf == 0x0180_c200_0000,
            0x00e02b => matches!(v, 0x00e0_2b00_0000 | 0x00e0_2b00_0004 | 0x00e0_2b00_0006),
            0x01000c => {
                matches!(
                    v,
                    0x0100_0c00_0000 | 0x0100_0ccc_cccc | 0x0100_0ccc_cccd | 0x0100_0ccd_cdcd
                ) || v & !0x7 == 0x0100_0ccc_ccc0
            }
            _ => false,
        }
    }
}

impl From<[u8; 6]> for EthernetAddress {
    #[inline]
    fn from(bytes: [u8; 6]) -> Self {
        EthernetAddress(bytes)
    }
}

impl From<EthernetAddress> for [u8; 6] {
    #[inline]
    fn from(addr: EthernetAddress) -> Self {
        addr.0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text is not six two-digit hex octets separated by `:` (or all by `-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid Ethernet address (expected aa:bb:cc:dd:ee:ff)")]
pub struct ParseAddressError;

impl FromStr for EthernetAddress {
    type Err = ParseAddressError;

    /// Accepts `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`, hex digits in either
    /// case, exactly two digits per octet.
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 17 {
            return Err(ParseAddressError);
        }
        let sep = bytes[2];
        if sep != b':' && sep != b'-' {
            return Err(ParseAddressError);
        }
        let mut out = [0u8; 6];
        for (i, chunk) in bytes.chunks(3).enumerate() {
            let (hi, lo) = match chunk {
                [h, l] if i == 5 => (*h, *l),
                [h, l, s] if i < 5 && *s == sep => (*h, *l),
                _ => return Err(ParseAddressError),
            };
            let digit = |c: u8| (c as char).to_digit(16).ok_or(ParseAddressError);
            // Two hex digits: at most 0xff, lossless.
            out[i] = (digit(hi)? * 16 + digit(lo)?) as u8;
        }
        Ok(EthernetAddress(out))
    }
}

impl serde::Serialize for EthernetAddress {
    /// Serialized as the `aa:bb:cc:dd:ee:ff` string.
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EthernetAddress {
    /// Deserialized from the string forms [`FromStr`] accepts.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = EthernetAddress;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an Ethernet address such as \"aa:bb:cc:dd:ee:ff\"")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> core::result::Result<Self::Value, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// An EtherType (the 16-bit protocol field after the MAC addresses or a VLAN
/// tag). Unknown values are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// IEEE 802.1Q customer VLAN tag (C-tag) TPID.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IEEE 802.1ad service VLAN tag (S-tag, "QinQ") TPID.
    pub const QINQ: EtherType = EtherType(0x88a8);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(0x86dd);

    /// Whether this value is a VLAN TPID this crate parses (0x8100 or 0x88a8).
    #[inline]
    pub const fn is_vlan_tpid(self) -> bool {
        self.0 == Self::VLAN.0 || self.0 == Self::QINQ.0
    }
}

impl From<u16> for EtherType {
    #[inline]
    fn from(v: u16) -> Self {
        EtherType(v)
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(v: EtherType) -> Self {
        v.0
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EtherType::IPV4 => f.write_str("IPv4"),
            EtherType::ARP => f.write_str("ARP"),
            EtherType::VLAN => f.write_str("802.1Q"),
            EtherType::QINQ => f.write_str("802.1ad"),
            EtherType::IPV6 => f.write_str("IPv6"),
            EtherType(other) => write!(f, "0x{other:04x}"),
        }
    }
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EtherType({self})")
    }
}

/// An IP protocol number (IPv4 protocol / IPv6 next header).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// IPv6 hop-by-hop options extension header.
    pub const HOP_BY_HOP: IpProtocol = IpProtocol(0);
    /// ICMP for IPv4.
    pub const ICMP: IpProtocol = IpProtocol(1);
    /// TCP.
    pub const TCP: IpProtocol = IpProtocol(6);
    /// UDP.
    pub const UDP: IpProtocol = IpProtocol(17);
    /// IPv6 routing extension header.
    pub const IPV6_ROUTE: IpProtocol = IpProtocol(43);
    /// IPv6 fragment extension header.
    pub const IPV6_FRAG: IpProtocol = IpProtocol(44);
    /// ICMP for IPv6.
    pub const ICMPV6: IpProtocol = IpProtocol(58);
    /// IPv6 "no next header".
    pub const IPV6_NO_NXT: IpProtocol = IpProtocol(59);
    /// IPv6 destination options extension header.
    pub const IPV6_OPTS: IpProtocol = IpProtocol(60);
}

impl From<u8> for IpProtocol {
    #[inline]
    fn from(v: u8) -> Self {
        IpProtocol(v)
    }
}

impl From<IpProtocol> for u8 {
    #[inline]
    fn from(v: IpProtocol) -> Self {
        v.0
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IpProtocol::HOP_BY_HOP => f.write_str("HOPOPT"),
            IpProtocol::ICMP => f.write_str("ICMP"),
            IpProtocol::TCP => f.write_str("TCP"),
            IpProtocol::UDP => f.write_str("UDP"),
            IpProtocol::IPV6_ROUTE => f.write_str("IPv6-Route"),
            IpProtocol::IPV6_FRAG => f.write_str("IPv6-Frag"),
            IpProtocol::ICMPV6 => f.write_str("ICMPv6"),
            IpProtocol::IPV6_NO_NXT => f.write_str("IPv6-NoNxt"),
            IpProtocol::IPV6_OPTS => f.write_str("IPv6-Opts"),
            IpProtocol(other) => write!(f, "{other}"),
        }
    }
}

impl fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpProtocol({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    #[test]
    fn mac_display_parse_roundtrip() {
        let mac = EthernetAddress::new(0x02, 0x00, 0x5e, 0x10, 0xab, 0xff);
        assert_eq!(mac.to_string(), "02:00:5e:10:ab:ff");
        assert_eq!(format!("{mac:?}"), "02:00:5e:10:ab:ff");
        assert_eq!("02:00:5e:10:ab:ff".parse::<EthernetAddress>(), Ok(mac));
        assert_eq!("02-00-5E-10-AB-FF".parse::<EthernetAddress>(), Ok(mac));
    }

    #[test]
    fn mac_parse_rejects_garbage() {
        for bad in [
            "",
            "02:00:5e:10:ab",
            "02:00:5e:10:ab:ff:",
            "02:00:5e:10:ab:fg",
            "02-00:5e:10:ab:ff",
            "2:00:5e:10:ab:ff0",
            "02:00:5e:10:ab:+f",
            "0200:5e:10:ab:ff0",
            "02:00:5e:10:ab:f\u{e9}",
        ] {
            assert_eq!(
                bad.parse::<EthernetAddress>(),
                Err(ParseAddressError),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn mac_classes() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(!EthernetAddress::BROADCAST.is_unicast());
        let mcast = EthernetAddress::new(0x01, 0x00, 0x5e, 0, 0, 1);
        assert!(mcast.is_multicast() && !mcast.is_broadcast() && !mcast.is_unicast());
        let ucast = EthernetAddress::new(0x02, 0, 0, 0, 0, 1);
        assert!(ucast.is_unicast() && ucast.is_local() && !ucast.is_multicast());
        assert!(EthernetAddress::ZERO.is_zero() && EthernetAddress::ZERO.is_unicast());
    }

    #[test]
    fn mac_u64_packing() {
        let mac = EthernetAddress::new(0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc);
        assert_eq!(mac.to_u64(), 0x1234_5678_9abc);
        assert_eq!(EthernetAddress::from_u64(0x1234_5678_9abc), mac);
        assert_eq!(EthernetAddress::from_u64(0xffff_1234_5678_9abc), mac);
        assert_eq!(
            EthernetAddress::from_u64(u64::MAX),
            EthernetAddress::BROADCAST
        );
        assert_eq!(EthernetAddress::from_slice(&[1, 2, 3]), None);
        assert_eq!(
            EthernetAddress::from_slice(&[1, 2, 3, 4, 5, 6]),
            Some(EthernetAddress([1, 2, 3, 4, 5, 6]))
        );
    }

    #[test]
    fn mac_deserializes_from_string() {
        use serde::de::{value::Error, IntoDeserializer};
        use serde::Deserialize;
        let de = "aa:bb:cc:00:01:02".into_deserializer();
        let mac: core::result::Result<EthernetAddress, Error> = EthernetAddress::deserialize(de);
        assert_eq!(mac, Ok(EthernetAddress::new(0xaa, 0xbb, 0xcc, 0, 1, 2)));
        let de = "not a mac".into_deserializer();
        let bad: core::result::Result<EthernetAddress, Error> = EthernetAddress::deserialize(de);
        assert!(bad.is_err());
    }

    #[test]
    fn an_adjusted_checksum_is_the_recomputed_one() {
        let mut h = [
            0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 1, 1,
        ];
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        let new = [192u8, 168, 7, 9];
        let adjusted = checksum_adjust(c, &h[12..16], &new);
        h[12..16].copy_from_slice(&new);
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(adjusted, checksum(&h));
    }

    #[test]
    fn checksum_rfc1071_example() {
        // RFC 1071 section 3 example words: 0001 f203 f4f5 f6f7 -> sum ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        assert_eq!(checksum(&[]), 0xffff);
        // Odd length: trailing byte is the high byte of a zero-padded word.
        assert_eq!(checksum(&[0x12]), !0x1200);
    }

    #[test]
    fn a_filled_in_l4_checksum_verifies_to_zero() {
        // UDP 68 -> 67, 4 bytes of data, odd-length data too.
        for data in [&[1u8, 2, 3, 4][..], &[9, 8, 7]] {
            let mut seg = vec![0, 68, 0, 67, 0, 8 + data.len() as u8, 0, 0];
            seg.extend_from_slice(data);
            let (src, dst) = ([10, 0, 0, 2], [10, 0, 0, 5]);
            let c = ipv4_l4_checksum(src, dst, IpProtocol::UDP, &seg);
            seg[6..8].copy_from_slice(&c.to_be_bytes());
            let pseudo = sum16(&src) + sum16(&dst) + 17 + seg.len() as u64;
            assert_eq!(fold(pseudo + sum16(&seg)), 0);
        }
    }

    /// Builds every view over `data` with `new_checked`; when that succeeds,
    /// calls every accessor (the contract: none may panic).
    fn exercise_all_views(data: &[u8]) {
        crate::selfcheck::check_views(data);
        crate::selfcheck::check_offloads(data);
    }

    proptest! {
        /// sum16 folds to what RFC 1071's word-by-word sum folds to, for
        /// any bytes and any split into parts added up.
        #[test]
        fn sum16_folds_as_the_word_by_word_sum(data in vec(any::<u8>(), 0..300), cut in 0usize..300) {
            let reference = |d: &[u8]| -> u64 {
                d.chunks(2)
                    .map(|w| u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
                    .sum()
            };
            prop_assert_eq!(fold(sum16(&data)), fold(reference(&data)));
            prop_assert_eq!(sum16(&data) == 0, reference(&data) == 0);
            // An even cut: the parts' sums add up to the whole's.
            let cut = (cut.min(data.len())) & !1;
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(fold(sum16(a) + sum16(b)), fold(reference(&data)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1024,
            // Do not write regression files into the source tree.
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn views_never_panic_on_arbitrary_bytes(
            data in vec(any::<u8>(), 0..200),
        ) {
            exercise_all_views(&data);
        }

        /// Biased inputs: first byte set to IPv4/IPv6 versions with sane IHLs
        /// and small length fields, so the deeper checks are reached.
        #[test]
        fn views_never_panic_on_plausible_headers(
            first in prop_oneof![
                Just(0x45u8),
                Just(0x4f),
                Just(0x60),
                any::<u8>()
            ],
            len_hi in 0u8..2,
            rest in vec(any::<u8>(), 0..200),
        ) {
            let mut data = vec![first, 0, len_hi];
            data.extend_from_slice(&rest);
            exercise_all_views(&data);
            // The IPv6 payload length lives at bytes 4..6.
            if data.len() > 5 {
                data[4] = 0;
            }
            exercise_all_views(&data);
        }

        #[test]
        fn mac_text_round_trips(bytes in any::<[u8; 6]>()) {
            let mac = EthernetAddress(bytes);
            prop_assert_eq!(mac.to_string().parse::<EthernetAddress>(), Ok(mac));
            prop_assert_eq!(EthernetAddress::from_u64(mac.to_u64()), mac);
        }

        #[test]
        fn mac_parse_never_panics(s in ".{0,24}") {
            let _ = s.parse::<EthernetAddress>();
        }
    }

    #[test]
    fn ethertype_and_protocol_display() {
        assert_eq!(EtherType::IPV4.to_string(), "IPv4");
        assert_eq!(EtherType(0x1234).to_string(), "0x1234");
        assert!(EtherType::QINQ.is_vlan_tpid() && EtherType::VLAN.is_vlan_tpid());
        assert!(!EtherType::IPV6.is_vlan_tpid());
        assert_eq!(IpProtocol::TCP.to_string(), "TCP");
        assert_eq!(IpProtocol(200).to_string(), "200");
        assert_eq!(u16::from(EtherType::ARP), 0x0806);
    }
}
