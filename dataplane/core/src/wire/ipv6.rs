//! IPv6 headers (RFC 8200) and the extension-header walk.

use super::{read_array, read_u16, read_u32, IpProtocol, Result, WireError};

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Most extension headers [`Ipv6Packet::upper_layer`] skips before giving up.
pub const MAX_EXT_HEADERS: usize = 8;

/// Length of the fragment extension header.
pub const FRAG_HEADER_LEN: usize = 8;

/// Where the upper-layer header of an IPv6 packet is, as found by
/// [`Ipv6Packet::upper_layer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Ipv6UpperLayer {
    /// The upper-layer protocol: the first next-header value that is not a
    /// skipped extension header. For a later fragment (see
    /// [`is_later_fragment`](Self::is_later_fragment)) it is the fragment
    /// header's next header, whose header is in the first fragment.
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header from the start of the IPv6 header
    /// (40 plus the extension headers), within the IPv6 packet.
    pub offset: usize,
    /// A fragment extension header was found.
    pub has_frag_header: bool,
    /// The fragment header's M flag (more fragments follow).
    pub more_frags: bool,
    /// The fragment header's offset, in bytes (0 without a fragment header).
    pub frag_offset: u16,
}

impl Ipv6UpperLayer {
    /// A fragment other than the first: the data at `offset` is not an
    /// upper-layer header.
    #[inline(always)]
    pub const fn is_later_fragment(&self) -> bool {
        self.frag_offset != 0
    }
}

/// Whether `nh` is one of the extension headers [`Ipv6Packet::upper_layer`]
/// skips: hop-by-hop options, routing, fragment, destination options.
#[inline]
pub const fn is_skipped_ext_header(nh: IpProtocol) -> bool {
    matches!(nh.0, 0 | 43 | 44 | 60)
}

/// A view of an IPv6 packet.
///
/// [`new_checked`](Self::new_checked) guarantees `version == 6` and
/// `40 + payload_len <= buffer.len()`. [`payload`](Self::payload) stops at
/// `40 + payload_len`, so Ethernet padding is excluded. Jumbograms (payload
/// length 0 with a jumbo option) are not supported: their payload is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic if the checks
    /// of [`new_checked`](Self::new_checked) do not hold.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer after validating the version and lengths.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if shorter than 40 bytes or than `40 + payload_len`;
    /// `Malformed` if the version is not 6.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_prefix_len(self.buffer.as_ref().len())
    }

    /// The same checks for a buffer that holds the first bytes of a packet
    /// of `whole` bytes (a frame in chained buffers): the fixed header must
    /// be in the buffer, `payload_len` within `whole`.
    /// [`payload`](Self::payload) is then the part in the buffer.
    #[inline]
    pub fn check_prefix_len(&self, whole: usize) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if data[field::VER_TC_FLOW] >> 4 != 6 {
            return Err(WireError::Malformed("IP version is not 6"));
        }
        if whole.max(data.len()) - HEADER_LEN < usize::from(read_u16(data, field::PAYLOAD_LEN)) {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the fixed header: always [`HEADER_LEN`] (40). Use
    /// [`upper_layer`](Self::upper_layer) for the extension headers.
    #[inline(always)]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Version field (6 once checked).
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    /// Traffic class.
    #[inline(always)]
    pub fn traffic_class(&self) -> u8 {
        // Bits 27..20 of the first word: lossless after the mask.
        ((read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) & 0xff) as u8
    }

    /// Flow label (20 bits).
    #[inline(always)]
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length (everything after the fixed header, extension headers
    /// included).
    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// Next header of the fixed header.
    #[inline(always)]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    /// Hop limit.
    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline(always)]
    pub fn src_addr(&self) -> [u8; 16] {
        read_array(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address.
    #[inline(always)]
    pub fn dst_addr(&self) -> [u8; 16] {
        read_array(self.buffer.as_ref(), field::DST)
    }

    /// The payload: bytes `40..40 + payload_len` (extension headers included,
    /// padding excluded).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = (HEADER_LEN + usize::from(self.payload_len())).min(data.len());
        &data[HEADER_LEN..end]
    }

    /// Skips hop-by-hop, routing, destination-options and fragment extension
    /// headers (in any order, at most [`MAX_EXT_HEADERS`] of them) to find the
    /// upper-layer protocol and its offset. Stops at a fragment header whose
    /// offset is not zero: what follows is not a header.
    ///
    /// Other extension headers (AH, ESP, mobility, ...) are reported as the
    /// upper-layer protocol. The order rules of RFC 8200 (hop-by-hop first)
    /// are not enforced.
    ///
    /// Errors: `Truncated` if an extension header runs past the payload,
    /// `Malformed` if more than [`MAX_EXT_HEADERS`] are chained.
    #[inline]
    pub fn upper_layer(&self) -> Result<Ipv6UpperLayer> {
        let payload = self.payload();
        let mut upper = Ipv6UpperLayer {
            protocol: self.next_header(),
            offset: HEADER_LEN,
            ..Ipv6UpperLayer::default()
        };
        // Offset within `payload`; only ever advanced past bytes that exist.
        let mut at = 0usize;
        let mut count = 0usize;
        while is_skipped_ext_header(upper.protocol) {
            if count == MAX_EXT_HEADERS {
                return Err(WireError::Malformed("too many IPv6 extension headers"));
            }
            count += 1;
            let rest = payload.get(at..).unwrap_or_default();
            if upper.protocol == IpProtocol::IPV6_FRAG {
                let Some(&[next, _, off_hi, off_lo, ..]) = rest.first_chunk::<FRAG_HEADER_LEN>()
                else {
                    return Err(WireError::Truncated);
                };
                let off_flags = u16::from_be_bytes([off_hi, off_lo]);
                upper.protocol = IpProtocol(next);
                upper.has_frag_header = true;
                upper.frag_offset = off_flags & 0xfff8;
                upper.more_frags = off_flags & 0x0001 != 0;
                at += FRAG_HEADER_LEN;
                if upper.frag_offset != 0 {
                    break;
                }
            } else {
                let Some(&[next, len]) = rest.first_chunk::<2>() else {
                    return Err(WireError::Truncated);
                };
                let ext_len = (usize::from(len) + 1) * 8;
                if rest.len() < ext_len {
                    return Err(WireError::Truncated);
                }
                upper.protocol = IpProtocol(next);
                at += ext_len;
            }
        }
        upper.offset = HEADER_LEN + at;
        Ok(upper)
    }

    /// The bytes at the upper-layer header found by
    /// [`upper_layer`](Self::upper_layer), to the end of the payload.
    #[inline]
    pub fn upper_layer_payload(&self, upper: &Ipv6UpperLayer) -> &[u8] {
        self.payload()
            .get(upper.offset.saturating_sub(HEADER_LEN)..)
            .unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Fixed header: tc 0xab, flow 0x12345, `payload_len`, `next_header`,
    /// hop limit 64, 2001:db8::1 -> 2001:db8::2.
    pub(crate) fn header(payload_len: u16, next_header: u8) -> Vec<u8> {
        let mut v = vec![0x6a, 0xb1, 0x23, 0x45];
        v.extend_from_slice(&payload_len.to_be_bytes());
        v.extend_from_slice(&[next_header, 64]);
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v
    }

    const UDP: [u8; 8] = [0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00];

    #[test]
    fn parses_fixed_header() {
        let mut buf = header(8, 17);
        buf.extend_from_slice(&UDP);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xab);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), IpProtocol::UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr()[15], 1);
        assert_eq!(p.dst_addr()[..4], [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.payload(), &UDP);
        let upper = p.upper_layer().unwrap();
        assert_eq!(upper.protocol, IpProtocol::UDP);
        assert_eq!(upper.offset, 40);
        assert!(!upper.has_frag_header && !upper.is_later_fragment());
        assert_eq!(p.upper_layer_payload(&upper), &UDP);
    }

    #[test]
    fn padding_is_excluded() {
        let mut buf = header(8, 17);
        buf.extend_from_slice(&UDP);
        buf.extend_from_slice(&[0xee; 6]);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), &UDP);
    }

    #[test]
    fn truncated_at_every_length() {
        let mut buf = header(8, 17);
        buf.extend_from_slice(&UDP);
        for len in 0..buf.len() {
            assert_eq!(
                Ipv6Packet::new_checked(&buf[..len]),
                Err(WireError::Truncated)
            );
        }
    }

    #[test]
    fn bad_version() {
        let mut buf = header(0, 59);
        buf[0] = 0x4a;
        assert!(matches!(
            Ipv6Packet::new_checked(&buf[..]),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn hop_limit_setter() {
        let mut buf = header(0, 59);
        let mut p = Ipv6Packet::new_checked(&mut buf[..]).unwrap();
        p.set_hop_limit(1);
        assert_eq!(p.hop_limit(), 1);
        assert_eq!(buf[7], 1);
    }

    /// Hop-by-hop (8 bytes) -> routing (24 bytes) -> dst opts (16) -> TCP.
    fn with_ext_headers() -> Vec<u8> {
        let mut ext = vec![43, 0, 1, 4, 0, 0, 0, 0]; // HBH: PadN
        ext.extend_from_slice(&[60, 2, 0, 0, 0, 0, 0, 0]); // routing, 3 * 8 bytes
        ext.extend_from_slice(&[0; 16]);
        ext.extend_from_slice(&[6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // dst opts
        let tcp = [
            0x01, 0xbb, 0xc0, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ];
        ext.extend_from_slice(&tcp);
        let mut buf = header(u16::try_from(ext.len()).unwrap(), 0);
        buf.extend_from_slice(&ext);
        buf
    }

    #[test]
    fn skips_extension_headers() {
        let buf = with_ext_headers();
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        let upper = p.upper_layer().unwrap();
        assert_eq!(upper.protocol, IpProtocol::TCP);
        assert_eq!(upper.offset, 40 + 8 + 24 + 16);
        assert_eq!(p.upper_layer_payload(&upper)[..2], [0x01, 0xbb]);
    }

    #[test]
    fn extension_header_truncated_by_payload_len() {
        let buf = with_ext_headers();
        // Shrink payload_len so each extension header in turn is cut short
        // (or missing): always Truncated, never a walk past the payload.
        for plen in 0..(8 + 24 + 16) {
            let mut b = buf.clone();
            b[4..6].copy_from_slice(&u16::to_be_bytes(plen));
            let p = Ipv6Packet::new_checked(&b[..]).unwrap();
            assert_eq!(p.upper_layer(), Err(WireError::Truncated), "plen {plen}");
        }
        // Exactly the extension headers: the walk succeeds (TCP is the
        // upper layer's problem).
        let mut b = buf.clone();
        b[4..6].copy_from_slice(&u16::to_be_bytes(8 + 24 + 16));
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer().unwrap().offset, 88);
    }

    #[test]
    fn fragments() {
        // First fragment: offset 0, M = 1, then UDP.
        let mut buf = header(16, 44);
        buf.extend_from_slice(&[17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        buf.extend_from_slice(&UDP);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        let upper = p.upper_layer().unwrap();
        assert_eq!(upper.protocol, IpProtocol::UDP);
        assert_eq!(upper.offset, 48);
        assert!(upper.has_frag_header && upper.more_frags && !upper.is_later_fragment());

        // Later fragment: offset 1448 (181 * 8), M = 0. The data after the
        // fragment header looks like a hop-by-hop header but must not be walked.
        let mut buf = header(16, 44);
        buf.extend_from_slice(&[0, 0, 0x05, 0xa8, 0xde, 0xad, 0xbe, 0xef]);
        buf.extend_from_slice(&[0xff; 8]);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        let upper = p.upper_layer().unwrap();
        assert_eq!(upper.protocol, IpProtocol::HOP_BY_HOP);
        assert_eq!(upper.frag_offset, 1448);
        assert!(upper.is_later_fragment() && !upper.more_frags);
        assert_eq!(upper.offset, 48);

        // Fragment header cut short.
        let mut buf = header(4, 44);
        buf.extend_from_slice(&[17, 0, 0, 1]);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(WireError::Truncated));
    }

    #[test]
    fn too_many_extension_headers() {
        // n destination-options headers (8 bytes each) then no-next-header.
        let chain = |n: usize| {
            let mut ext = Vec::new();
            for i in 0..n {
                let next = if i + 1 == n { 59 } else { 60 };
                ext.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
            }
            let mut buf = header(u16::try_from(ext.len()).unwrap(), 60);
            buf.extend_from_slice(&ext);
            buf
        };
        let buf = chain(MAX_EXT_HEADERS);
        let upper = Ipv6Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(upper.protocol, IpProtocol::IPV6_NO_NXT);
        assert_eq!(upper.offset, 40 + 8 * MAX_EXT_HEADERS);
        let buf = chain(MAX_EXT_HEADERS + 1);
        assert!(matches!(
            Ipv6Packet::new_checked(&buf[..]).unwrap().upper_layer(),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn other_extension_headers_are_upper_layer() {
        // AH (51) is reported, not skipped.
        let mut buf = header(12, 51);
        buf.extend_from_slice(&[6, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.upper_layer().unwrap().protocol, IpProtocol(51));
    }
}
