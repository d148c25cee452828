//! UDP headers (RFC 768).

use super::{read_u16, write_u16, Result, WireError};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
///
/// [`new_checked`](Self::new_checked) guarantees `8 <= length <=
/// buffer.len()`, and [`payload`](Self::payload) stops at `length`.
/// [`new_checked_header`](Self::new_checked_header) only checks the 8-byte
/// header, for the first fragment of a fragmented datagram, whose length field
/// covers bytes carried by later fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if the checks
    /// of [`new_checked`](Self::new_checked) do not hold.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a buffer after validating the length field against it.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Wraps a buffer after checking only that the 8-byte header is there and
    /// that the length field is at least 8. [`payload`](Self::payload) of such
    /// a view is clamped to the buffer.
    #[inline]
    pub fn new_checked_header(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_header()?;
        Ok(packet)
    }

    #[inline]
    fn check_header(&self) -> Result<usize> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let length = usize::from(read_u16(data, field::LENGTH));
        if length < HEADER_LEN {
            return Err(WireError::Malformed("UDP length below 8"));
        }
        Ok(length)
    }

    /// `Truncated` if shorter than 8 bytes or than the length field;
    /// `Malformed` if the length field is below 8.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let length = self.check_header()?;
        if self.buffer.as_ref().len() < length {
            return Err(WireError::Truncated);
        }
        Ok(())
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

    /// Length field (header and data).
    #[inline(always)]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the datagram carries no data (length field of 8 or less).
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum field (0 = none for IPv4; not verified here).
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Data after the header, up to the length field (and, for a view from
    /// [`new_checked_header`](Self::new_checked_header), the buffer's end).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = usize::from(self.len()).min(data.len());
        data.get(HEADER_LEN..end).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port (a view from `new_checked` holds the header).
    #[inline(always)]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Sets the length field (header and data).
    #[inline(always)]
    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 1234 -> 53, length 12, 4 bytes of data.
    pub(crate) const DATAGRAM: [u8; 12] = [
        0x04, 0xd2, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn parses_known_datagram() {
        let p = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 1234);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0x1234);
        assert_eq!(p.header_len(), 8);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn trailing_bytes_are_not_payload() {
        let mut buf = DATAGRAM.to_vec();
        buf.push(0xff);
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..DATAGRAM.len() {
            assert_eq!(
                UdpPacket::new_checked(&DATAGRAM[..len]),
                Err(WireError::Truncated)
            );
        }
    }

    #[test]
    fn header_only_check_for_first_fragments() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                UdpPacket::new_checked_header(&DATAGRAM[..len]),
                Err(WireError::Truncated)
            );
        }
        for len in HEADER_LEN..DATAGRAM.len() {
            let p = UdpPacket::new_checked_header(&DATAGRAM[..len]).unwrap();
            assert_eq!(p.dst_port(), 53);
            assert_eq!(p.payload(), &DATAGRAM[8..len]);
        }
    }

    #[test]
    fn length_below_header_is_malformed() {
        for l in 0..8u8 {
            let mut buf = DATAGRAM;
            buf[5] = l;
            assert_eq!(
                UdpPacket::new_checked(&buf[..]),
                Err(WireError::Malformed("UDP length below 8"))
            );
            assert!(UdpPacket::new_checked_header(&buf[..]).is_err());
        }
    }
}
