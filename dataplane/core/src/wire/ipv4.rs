//! IPv4 headers (RFC 791).

use super::{
    checksum, fold, read_array, read_u16, sum16, write_u16, IpProtocol, Result, WireError,
};

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
///
/// [`new_checked`](Self::new_checked) guarantees:
/// `version == 4`, `ihl >= 5`, `header_len <= total_len <= buffer.len()`.
/// [`payload`](Self::payload) stops at `total_len`, so Ethernet padding after
/// the datagram is excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic if the checks
    /// of [`new_checked`](Self::new_checked) do not hold.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after validating version, IHL and lengths.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`new_checked`](Self::new_checked):
    /// * shorter than 20 bytes, than the IHL or than `total_len`: `Truncated`;
    /// * version not 4, IHL below 5, `total_len` below the header: `Malformed`.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_prefix_len(self.buffer.as_ref().len())
    }

    /// The same checks for a buffer that holds the first bytes of a packet
    /// of `whole` bytes (a frame in chained buffers, whose first holds the
    /// headers): the header must be in the buffer, `total_len` within
    /// `whole`. [`payload`](Self::payload) is then the part in the buffer.
    #[inline]
    pub fn check_prefix_len(&self, whole: usize) -> Result<()> {
        let data = self.buffer.as_ref();
        let Some(&[ver_ihl, _, len_hi, len_lo]) = data.first_chunk::<4>() else {
            return Err(WireError::Truncated);
        };
        if data.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if ver_ihl >> 4 != 4 {
            return Err(WireError::Malformed("IP version is not 4"));
        }
        let header_len = usize::from(ver_ihl & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(WireError::Malformed("IPv4 IHL below 5"));
        }
        let total_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        if total_len < header_len {
            return Err(WireError::Malformed(
                "IPv4 total length below header length",
            ));
        }
        if data.len() < header_len || whole.max(data.len()) < total_len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (4 once checked).
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Internet header length in 32-bit words (5..=15 once checked).
    #[inline(always)]
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// Header length in bytes, options included (20..=60 once checked).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// The TOS byte whole: DSCP and ECN.
    #[inline(always)]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Differentiated services code point.
    #[inline(always)]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::TOS] >> 2
    }

    /// Explicit congestion notification bits.
    #[inline(always)]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::TOS] & 0x03
    }

    /// Total length of the datagram (header and payload).
    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    /// Identification.
    #[inline(always)]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    fn flags_frag(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG)
    }

    /// Don't-fragment flag.
    #[inline(always)]
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline(always)]
    pub fn more_frags(&self) -> bool {
        self.flags_frag() & FLAG_MF != 0
    }

    /// Fragment offset **in bytes** (the 13-bit field times 8).
    #[inline(always)]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_frag() & FRAG_OFFSET_MASK) << 3
    }

    /// Part of a fragmented datagram (first fragment included).
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// A fragment other than the first: it carries no L4 header.
    #[inline(always)]
    pub fn is_later_fragment(&self) -> bool {
        self.flags_frag() & FRAG_OFFSET_MASK != 0
    }

    /// Time to live.
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline(always)]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum field.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline(always)]
    pub fn src_addr(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address.
    #[inline(always)]
    pub fn dst_addr(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), field::DST)
    }

    /// Options (bytes 20..header_len; empty when IHL is 5).
    #[inline(always)]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Whether the header checksum is correct.
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        let (b, len) = (self.buffer.as_ref(), self.header_len());
        // A header without options (nearly every one) is summed as a
        // fixed 20 bytes: five words, no loop.
        let sum = match b.first_chunk::<MIN_HEADER_LEN>() {
            Some(h) if len == MIN_HEADER_LEN => sum16(h),
            _ => sum16(&b[..len]),
        };
        fold(sum) == 0
    }

    /// The payload: bytes `header_len..total_len` (padding excluded).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let total = usize::from(self.total_len()).min(data.len());
        &data[self.header_len()..total]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the time to live (the header checksum must be refilled).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the total length (header and payload; the header checksum must
    /// be refilled).
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::TOTAL_LEN, len);
    }

    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Computes the header checksum and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(sum);
    }

    /// Mutable access to the payload (`header_len..total_len`).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 10.0.0.1 -> 10.0.0.2, UDP, no options, 8 bytes of payload, valid checksum.
    pub(crate) const PACKET: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, // ver/ihl, tos, total length 28
        0x12, 0x34, 0x40, 0x00, // ident, DF
        0x40, 0x11, 0x00, 0x00, // ttl 64, UDP, checksum (filled in tests)
        10, 0, 0, 1, // src
        10, 0, 0, 2, // dst
        0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00, // UDP 1234 -> 53
    ];

    pub(crate) fn packet() -> [u8; 28] {
        let mut buf = PACKET;
        Ipv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
        buf
    }

    #[test]
    fn parses_known_packet() {
        let buf = packet();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.ihl(), 5);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment() && !p.is_later_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::UDP);
        assert_eq!((p.dscp(), p.ecn()), (0, 0));
        assert_eq!(p.src_addr(), [10, 0, 0, 1]);
        assert_eq!(p.dst_addr(), [10, 0, 0, 2]);
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &PACKET[20..]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn checksum_known_value() {
        // Classic example header from RFC 1071 discussions / Wikipedia.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let mut p = Ipv4Packet::new_unchecked(&mut hdr[..]);
        p.fill_checksum();
        assert_eq!(p.checksum(), 0xb861);
        assert!(p.verify_checksum());
        p.set_ttl(63);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut buf = packet().to_vec();
        buf.extend_from_slice(&[0xee; 18]);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn options_are_skipped() {
        // IHL 7: 8 bytes of options (NOP NOP NOP EOL + 4 more), total 32.
        let mut buf = vec![
            0x47, 0, 0, 32, 0, 0, 0, 0, 64, 6, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
        ];
        buf.extend_from_slice(&[1, 1, 1, 0, 0, 0, 0, 0]);
        buf.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.options(), &[1, 1, 1, 0, 0, 0, 0, 0]);
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        // Options cut short by the buffer.
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..24]),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn ihl_below_five_is_malformed() {
        for ihl in 0..5u8 {
            let mut buf = packet();
            buf[0] = 0x40 | ihl;
            assert_eq!(
                Ipv4Packet::new_checked(&buf[..]),
                Err(WireError::Malformed("IPv4 IHL below 5"))
            );
        }
    }

    #[test]
    fn bad_version_and_lengths() {
        let mut buf = packet();
        buf[0] = 0x65;
        assert!(matches!(
            Ipv4Packet::new_checked(&buf[..]),
            Err(WireError::Malformed(_))
        ));
        let mut buf = packet();
        buf[3] = 19; // total length below header length
        assert!(matches!(
            Ipv4Packet::new_checked(&buf[..]),
            Err(WireError::Malformed(_))
        ));
        let mut buf = packet();
        buf[3] = 29; // one byte more than the buffer
        assert_eq!(Ipv4Packet::new_checked(&buf[..]), Err(WireError::Truncated));
        let mut buf = packet();
        buf[0] = 0x4f; // IHL 15 = 60 bytes > total length 28
        assert!(matches!(
            Ipv4Packet::new_checked(&buf[..]),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn truncated_at_every_length() {
        let buf = packet();
        for len in 0..buf.len() {
            assert_eq!(
                Ipv4Packet::new_checked(&buf[..len]),
                Err(WireError::Truncated),
                "{len}"
            );
        }
    }

    #[test]
    fn fragments() {
        let mut buf = packet();
        buf[6] = 0x20; // MF, offset 0: first fragment
        buf[7] = 0x00;
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.more_frags() && p.is_fragment() && !p.is_later_fragment());
        assert_eq!(p.frag_offset(), 0);

        buf[6] = 0x00; // last fragment at offset 185 * 8
        buf[7] = 185;
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(!p.more_frags() && p.is_fragment() && p.is_later_fragment());
        assert_eq!(p.frag_offset(), 1480);

        buf[6] = 0x1f; // maximum offset
        buf[7] = 0xff;
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.frag_offset(), 0x1fff * 8);
    }

    #[test]
    fn payload_mut_writes_through() {
        let mut buf = packet();
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.payload_mut()[0] = 0xff;
        assert_eq!(buf[20], 0xff);
    }

    proptest::proptest! {
        // verify_checksum (a fixed-size sum for 20-byte headers) says what
        // the plain checksum over the header says, with options or not,
        // the checksum right or any byte flipped.
        #[test]
        fn verify_checksum_agrees_with_the_checksum(
            words in 5u8..=15, body in proptest::collection::vec(proptest::prelude::any::<u8>(), 60),
            fill in proptest::prelude::any::<bool>(), flip in 0usize..60,
        ) {
            let len = usize::from(words) * 4;
            let mut buf = body;
            buf[0] = 0x40 | words;
            buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            if fill {
                Ipv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
            }
            if flip < len && !fill {
                buf[flip] ^= 0x5a;
            }
            let p = Ipv4Packet::new_unchecked(&buf[..]);
            proptest::prop_assert_eq!(p.verify_checksum(), checksum(&buf[..len]) == 0);
            if fill {
                proptest::prop_assert!(p.verify_checksum());
            }
        }
    }
}
