//! ICMP for IPv4 (RFC 792) and IPv6 (RFC 4443).
//!
//! Both views cover the common 8-byte header: type, code, checksum and the
//! 4-byte "rest of header" (identifier and sequence number for echo
//! messages). Every ICMP message, v4 or v6, is at least 8 bytes long.

use super::{checksum, read_u16, Result, WireError};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
}

/// Length of the ICMP header (both versions).
pub const HEADER_LEN: usize = 8;

/// ICMPv4 message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Icmpv4Type(pub u8);

impl Icmpv4Type {
    /// Echo reply.
    pub const ECHO_REPLY: Icmpv4Type = Icmpv4Type(0);
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: Icmpv4Type = Icmpv4Type(3);
    /// Redirect.
    pub const REDIRECT: Icmpv4Type = Icmpv4Type(5);
    /// Echo request.
    pub const ECHO_REQUEST: Icmpv4Type = Icmpv4Type(8);
    /// Time exceeded.
    pub const TIME_EXCEEDED: Icmpv4Type = Icmpv4Type(11);
    /// Parameter problem.
    pub const PARAM_PROBLEM: Icmpv4Type = Icmpv4Type(12);
}

/// ICMPv6 message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Icmpv6Type(pub u8);

impl Icmpv6Type {
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: Icmpv6Type = Icmpv6Type(1);
    /// Packet too big.
    pub const PACKET_TOO_BIG: Icmpv6Type = Icmpv6Type(2);
    /// Time exceeded.
    pub const TIME_EXCEEDED: Icmpv6Type = Icmpv6Type(3);
    /// Parameter problem.
    pub const PARAM_PROBLEM: Icmpv6Type = Icmpv6Type(4);
    /// Echo request.
    pub const ECHO_REQUEST: Icmpv6Type = Icmpv6Type(128);
    /// Echo reply.
    pub const ECHO_REPLY: Icmpv6Type = Icmpv6Type(129);
    /// NDP router solicitation.
    pub const ROUTER_SOLICIT: Icmpv6Type = Icmpv6Type(133);
    /// NDP router advertisement.
    pub const ROUTER_ADVERT: Icmpv6Type = Icmpv6Type(134);
    /// NDP neighbor solicitation.
    pub const NEIGHBOR_SOLICIT: Icmpv6Type = Icmpv6Type(135);
    /// NDP neighbor advertisement.
    pub const NEIGHBOR_ADVERT: Icmpv6Type = Icmpv6Type(136);
    /// NDP redirect.
    pub const REDIRECT: Icmpv6Type = Icmpv6Type(137);
}

#[inline]
fn check_header(data: &[u8]) -> Result<()> {
    if data.len() < HEADER_LEN {
        Err(WireError::Truncated)
    } else {
        Ok(())
    }
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter
    /// than [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wraps a buffer after checking that it holds the 8-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if shorter than 8 bytes.
    #[inline(always)]
    pub fn check_len(&self) -> Result<()> {
        check_header(self.buffer.as_ref())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length: always [`HEADER_LEN`] (8).
    #[inline(always)]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Message type.
    #[inline(always)]
    pub fn msg_type(&self) -> Icmpv4Type {
        Icmpv4Type(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    #[inline(always)]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo request or echo reply.
    #[inline]
    pub fn is_echo(&self) -> bool {
        matches!(
            self.msg_type(),
            Icmpv4Type::ECHO_REQUEST | Icmpv4Type::ECHO_REPLY
        )
    }

    /// Echo identifier (bytes 4..6; meaningful when [`is_echo`](Self::is_echo)).
    #[inline(always)]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (bytes 6..8; meaningful when
    /// [`is_echo`](Self::is_echo)).
    #[inline(always)]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Whether the checksum over the whole buffer is correct (ICMPv4 has no
    /// pseudo-header). The buffer must end where the message ends.
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        checksum(self.buffer.as_ref()) == 0
    }

    /// Data after the 8-byte header (echo data, or the invoking packet of an
    /// error message).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter
    /// than [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps a buffer after checking that it holds the 8-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if shorter than 8 bytes.
    #[inline(always)]
    pub fn check_len(&self) -> Result<()> {
        check_header(self.buffer.as_ref())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length: always [`HEADER_LEN`] (8).
    #[inline(always)]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Message type.
    #[inline(always)]
    pub fn msg_type(&self) -> Icmpv6Type {
        Icmpv6Type(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    #[inline(always)]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field (not verified here: that needs the IPv6 pseudo-header).
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo request or echo reply.
    #[inline]
    pub fn is_echo(&self) -> bool {
        matches!(
            self.msg_type(),
            Icmpv6Type::ECHO_REQUEST | Icmpv6Type::ECHO_REPLY
        )
    }

    /// Echo identifier (bytes 4..6; meaningful when [`is_echo`](Self::is_echo)).
    #[inline(always)]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (bytes 6..8; meaningful when
    /// [`is_echo`](Self::is_echo)).
    #[inline(always)]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Data after the 8-byte header (for NDP messages, the target address and
    /// options start here).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Echo request, ident 0x1234, seq 1, data "abcd", valid checksum.
    pub(crate) fn echo_request_v4() -> Vec<u8> {
        let mut buf = vec![8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd'];
        let sum = checksum(&buf);
        buf[2..4].copy_from_slice(&sum.to_be_bytes());
        buf
    }

    #[test]
    fn icmpv4_echo_request() {
        let buf = echo_request_v4();
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Type::ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert!(p.is_echo());
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert!(p.verify_checksum());
        assert_eq!(p.checksum(), 0x2104);
        assert_eq!(p.payload(), b"abcd");
        assert_eq!(p.header_len(), 8);
    }

    #[test]
    fn icmpv4_error_message() {
        // Port unreachable, then the start of the offending IPv4 header.
        let buf = [3, 3, 0, 0, 0, 0, 0, 0, 0x45, 0, 0, 28];
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Type::DEST_UNREACHABLE);
        assert_eq!(p.msg_code(), 3);
        assert!(!p.is_echo());
        assert_eq!(p.payload(), &[0x45, 0, 0, 28]);
    }

    #[test]
    fn icmpv6_echo_and_ndp() {
        let buf = [128, 0, 0xab, 0xcd, 0x00, 0x07, 0x00, 0x02];
        let p = Icmpv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv6Type::ECHO_REQUEST);
        assert!(p.is_echo());
        assert_eq!(
            (p.echo_ident(), p.echo_seq_no(), p.checksum()),
            (7, 2, 0xabcd)
        );
        assert!(p.payload().is_empty());

        let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
        ns.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let p = Icmpv6Packet::new_checked(&ns[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv6Type::NEIGHBOR_SOLICIT);
        assert!(!p.is_echo());
        assert_eq!(p.payload().len(), 16);
    }

    #[test]
    fn truncated_at_every_length() {
        let buf = echo_request_v4();
        for len in 0..HEADER_LEN {
            assert_eq!(
                Icmpv4Packet::new_checked(&buf[..len]),
                Err(WireError::Truncated)
            );
            assert_eq!(
                Icmpv6Packet::new_checked(&buf[..len]),
                Err(WireError::Truncated)
            );
        }
    }
}
