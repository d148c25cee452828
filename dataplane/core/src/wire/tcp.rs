//! TCP headers (RFC 9293).

use core::fmt;

use super::{read_u16, read_u32, Result, WireError};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// Length of a TCP header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// The eight TCP flag bits of byte 13 (the NS bit is not included).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// URG.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECE.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// CWR.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// Whether every bit of `other` is set in `self`.
    #[inline]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        write!(f, "TcpFlags(")?;
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

/// A view of a TCP segment.
///
/// [`new_checked`](Self::new_checked) guarantees `data_offset >= 5` and that
/// the whole header, options included, is in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if the checks
    /// of [`new_checked`](Self::new_checked) do not hold.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after validating the data offset against its length.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if shorter than 20 bytes or than the data offset;
    /// `Malformed` if the data offset is below 5.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let header_len = usize::from(data[field::DATA_OFFSET] >> 4) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(WireError::Malformed("TCP data offset below 5"));
        }
        if data.len() < header_len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    #[inline(always)]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ)
    }

    /// Acknowledgement number.
    #[inline(always)]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK)
    }

    /// Data offset in 32-bit words (5..=15 once checked).
    #[inline(always)]
    pub fn data_offset(&self) -> u8 {
        self.buffer.as_ref()[field::DATA_OFFSET] >> 4
    }

    /// Header length in bytes, options included.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// The flags byte (FIN..CWR).
    #[inline(always)]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// The NS (ECN nonce, historic) bit.
    #[inline(always)]
    pub fn ns(&self) -> bool {
        self.buffer.as_ref()[field::DATA_OFFSET] & 0x01 != 0
    }

    /// Window size.
    #[inline(always)]
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum field (not verified here: that needs the IP pseudo-header).
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline(always)]
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Options (bytes 20..header_len).
    #[inline(always)]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Segment data after the header.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 443 -> 49152, seq 1, ack 2, data offset 6 (one MSS option), SYN|ACK.
    pub(crate) const SEGMENT: [u8; 26] = [
        0x01, 0xbb, 0xc0, 0x00, // ports
        0x00, 0x00, 0x00, 0x01, // seq
        0x00, 0x00, 0x00, 0x02, // ack
        0x60, 0x12, 0xff, 0xff, // data offset 6, SYN|ACK, window
        0xab, 0xcd, 0x00, 0x07, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0xaa, 0xbb, // data
    ];

    #[test]
    fn parses_known_segment() {
        let p = TcpPacket::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!(p.src_port(), 443);
        assert_eq!(p.dst_port(), 49152);
        assert_eq!(p.seq_number(), 1);
        assert_eq!(p.ack_number(), 2);
        assert_eq!(p.data_offset(), 6);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), TcpFlags::SYN | TcpFlags::ACK);
        assert!(p.flags().contains(TcpFlags::SYN) && !p.flags().contains(TcpFlags::FIN));
        assert!(!p.ns());
        assert_eq!(p.window_len(), 0xffff);
        assert_eq!(p.checksum(), 0xabcd);
        assert_eq!(p.urgent_at(), 7);
        assert_eq!(p.options(), &[0x02, 0x04, 0x05, 0xb4]);
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
        assert_eq!(format!("{:?}", p.flags()), "TcpFlags(SYN|ACK)");
    }

    #[test]
    fn truncated_at_every_length() {
        // 24 bytes of header: anything shorter is truncated.
        for len in 0..24 {
            assert_eq!(
                TcpPacket::new_checked(&SEGMENT[..len]),
                Err(WireError::Truncated)
            );
        }
        assert!(TcpPacket::new_checked(&SEGMENT[..24])
            .unwrap()
            .payload()
            .is_empty());
    }

    #[test]
    fn data_offset_below_five_is_malformed() {
        for off in 0..5u8 {
            let mut buf = SEGMENT;
            buf[12] = off << 4;
            assert_eq!(
                TcpPacket::new_checked(&buf[..]),
                Err(WireError::Malformed("TCP data offset below 5"))
            );
        }
        let mut buf = SEGMENT;
        buf[12] = 0xf0; // 60 bytes of header in a 26-byte buffer
        assert_eq!(TcpPacket::new_checked(&buf[..]), Err(WireError::Truncated));
    }
}
