//! ARP for Ethernet and IPv4 (RFC 826).

use super::{read_array, read_u16, EtherType, EthernetAddress, Result, WireError};

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const HEADER_LEN: usize = 28;

/// Hardware type "Ethernet".
pub const HTYPE_ETHERNET: u16 = 1;

/// ARP operation codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ArpOperation(pub u16);

impl ArpOperation {
    /// Request (1).
    pub const REQUEST: ArpOperation = ArpOperation(1);
    /// Reply (2).
    pub const REPLY: ArpOperation = ArpOperation(2);
}

/// A view of an ARP packet for Ethernet hardware addresses and IPv4 protocol
/// addresses.
///
/// [`new_checked`](Self::new_checked) rejects packets whose hardware type,
/// protocol type or address lengths are not those of Ethernet/IPv4
/// (`Malformed`), since every field offset depends on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter
    /// than [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer after checking its length and that it is Ethernet/IPv4
    /// ARP.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if shorter than 28 bytes, `Err(Malformed)` unless the
    /// hardware/protocol types and lengths are 1/0x0800/6/4.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if read_u16(data, field::HTYPE) != HTYPE_ETHERNET
            || read_u16(data, field::PTYPE) != EtherType::IPV4.0
            || data[field::HLEN] != 6
            || data[field::PLEN] != 4
        {
            return Err(WireError::Malformed("ARP is not Ethernet/IPv4"));
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length: always [`HEADER_LEN`] (28).
    #[inline(always)]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Hardware type (1 = Ethernet).
    #[inline(always)]
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (0x0800 = IPv4).
    #[inline(always)]
    pub fn protocol_type(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::PTYPE))
    }

    /// Operation (1 request, 2 reply, ...).
    #[inline(always)]
    pub fn op(&self) -> ArpOperation {
        ArpOperation(read_u16(self.buffer.as_ref(), field::OPER))
    }

    /// Sender hardware address.
    #[inline(always)]
    pub fn sha(&self) -> EthernetAddress {
        EthernetAddress(read_array(self.buffer.as_ref(), field::SHA))
    }

    /// Sender protocol (IPv4) address.
    #[inline(always)]
    pub fn spa(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), field::SPA)
    }

    /// Target hardware address.
    #[inline(always)]
    pub fn tha(&self) -> EthernetAddress {
        EthernetAddress(read_array(self.buffer.as_ref(), field::THA))
    }

    /// Target protocol (IPv4) address.
    #[inline(always)]
    pub fn tpa(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), field::TPA)
    }

    /// Bytes after the 28-byte packet (Ethernet padding, usually).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// Turns the Ethernet frame `frame`, whose ARP request (IPv4 over
/// Ethernet) starts at `l3`, into the reply of `mac` owning `ip`, in place:
/// the reply goes back to the requester's MAC from `mac`, any VLAN tags
/// kept. False (frame untouched) when there is no request for `ip` at `l3`.
pub fn reply_in_place(frame: &mut [u8], l3: usize, mac: EthernetAddress, ip: [u8; 4]) -> bool {
    let Some(arp) = frame.get(l3..).and_then(|b| ArpPacket::new_checked(b).ok()) else {
        return false;
    };
    if arp.op() != ArpOperation::REQUEST || arp.tpa() != ip || frame.len() < l3 + HEADER_LEN {
        return false;
    }
    let (sha, spa) = (arp.sha(), arp.spa());
    let (eth, rest) = frame.split_at_mut(l3);
    let body = &mut rest[..HEADER_LEN];
    body[field::OPER..field::OPER + 2].copy_from_slice(&ArpOperation::REPLY.0.to_be_bytes());
    body[field::SHA..field::SHA + 6].copy_from_slice(mac.as_bytes());
    body[field::SPA..field::SPA + 4].copy_from_slice(&ip);
    body[field::THA..field::THA + 6].copy_from_slice(sha.as_bytes());
    body[field::TPA..field::TPA + 4].copy_from_slice(&spa);
    eth[0..6].copy_from_slice(sha.as_bytes());
    eth[6..12].copy_from_slice(mac.as_bytes());
    true
}

/// Bytes of an untagged ARP request over Ethernet ([`write_request`]),
/// before the padding to the 60-byte minimum frame.
pub const REQUEST_FRAME_LEN: usize = super::ethernet::HEADER_LEN + HEADER_LEN;

/// Writes into `frame` (at least [`REQUEST_FRAME_LEN`] bytes; anything
/// after them is zeroed, as padding) an untagged ARP request from `mac`
/// owning `ip` asking who has `target`, sent to `to` (broadcast, or the
/// MAC last known for `target`: a unicast probe, as Linux sends to
/// confirm an entry). False, `frame` untouched, when it is too short.
pub fn write_request(
    frame: &mut [u8],
    to: EthernetAddress,
    mac: EthernetAddress,
    ip: [u8; 4],
    target: [u8; 4],
) -> bool {
    let Some((head, padding)) = frame.split_at_mut_checked(REQUEST_FRAME_LEN) else {
        return false;
    };
    let (eth, body) = head.split_at_mut(super::ethernet::HEADER_LEN);
    eth[0..6].copy_from_slice(to.as_bytes());
    eth[6..12].copy_from_slice(mac.as_bytes());
    eth[12..14].copy_from_slice(&EtherType::ARP.0.to_be_bytes());
    body[field::HTYPE..field::HTYPE + 2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
    body[field::PTYPE..field::PTYPE + 2].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
    body[field::HLEN] = 6;
    body[field::PLEN] = 4;
    body[field::OPER..field::OPER + 2].copy_from_slice(&ArpOperation::REQUEST.0.to_be_bytes());
    body[field::SHA..field::SHA + 6].copy_from_slice(mac.as_bytes());
    body[field::SPA..field::SPA + 4].copy_from_slice(&ip);
    // RFC 826: the target hardware address is unknown (zero) in a request.
    body[field::THA..field::THA + 6].fill(0);
    body[field::TPA..field::TPA + 4].copy_from_slice(&target);
    padding.fill(0);
    true
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// who-has 10.0.0.2 tell 10.0.0.1, from 02:00:00:00:00:01.
    pub(crate) const REQUEST: [u8; 28] = [
        0x00, 0x01, // htype
        0x08, 0x00, // ptype
        6, 4, // hlen, plen
        0x00, 0x01, // request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // sha
        10, 0, 0, 1, // spa
        0, 0, 0, 0, 0, 0, // tha
        10, 0, 0, 2, // tpa
    ];

    #[test]
    fn a_request_is_answered_in_place() {
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        frame.extend_from_slice(&REQUEST);
        let me = EthernetAddress::new(2, 0, 0, 0, 0, 2);
        assert!(
            !reply_in_place(&mut frame.clone(), 14, me, [10, 0, 0, 9]),
            "not ours"
        );
        assert!(reply_in_place(&mut frame, 14, me, [10, 0, 0, 2]));
        assert_eq!(&frame[..12], &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
        let p = ArpPacket::new_checked(&frame[14..]).unwrap();
        assert_eq!(p.op(), ArpOperation::REPLY);
        assert_eq!((p.sha(), p.spa()), (me, [10, 0, 0, 2]));
        assert_eq!(
            (p.tha(), p.tpa()),
            (EthernetAddress::new(2, 0, 0, 0, 0, 1), [10, 0, 0, 1])
        );
        assert!(
            !reply_in_place(&mut frame, 14, me, [10, 0, 0, 2]),
            "a reply is no request"
        );
    }

    #[test]
    fn parses_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::IPV4);
        assert_eq!(p.op(), ArpOperation::REQUEST);
        assert_eq!(p.sha(), EthernetAddress::new(2, 0, 0, 0, 0, 1));
        assert_eq!(p.spa(), [10, 0, 0, 1]);
        assert_eq!(p.tha(), EthernetAddress::ZERO);
        assert_eq!(p.tpa(), [10, 0, 0, 2]);
        assert_eq!(p.header_len(), 28);
        assert!(p.payload().is_empty());
    }

    #[test]
    fn padding_is_payload() {
        let mut buf = REQUEST.to_vec();
        buf.extend_from_slice(&[0; 18]);
        let p = ArpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 18);
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                ArpPacket::new_checked(&REQUEST[..len]),
                Err(WireError::Truncated)
            );
        }
    }

    #[test]
    fn rejects_other_hardware_or_protocol() {
        for (at, value) in [(1, 6), (2, 0x86), (4, 8), (5, 16)] {
            let mut buf = REQUEST;
            buf[at] = value;
            assert!(
                matches!(
                    ArpPacket::new_checked(&buf[..]),
                    Err(WireError::Malformed(_))
                ),
                "byte {at} = {value}"
            );
        }
    }
}
