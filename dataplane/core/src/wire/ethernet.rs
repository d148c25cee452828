//! Ethernet II frames.

use super::{read_array, read_u16, write_u16, EtherType, EthernetAddress, Result, WireError};

mod field {
    use core::ops::{Range, RangeFrom};
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// Length of the Ethernet II header (two addresses and the EtherType).
pub const HEADER_LEN: usize = 14;

/// The shortest Ethernet frame without its FCS: what a frame the switch
/// makes is padded to.
pub const MIN_FRAME_LEN: usize = 60;

/// A view of an Ethernet II frame (without FCS: DPDK mbufs do not carry it).
///
/// The payload is everything after the 14-byte header, so for a tagged frame
/// [`ethertype`](Self::ethertype) is the TPID and the payload starts with the
/// tag's TCI (see [`VlanTag`](super::VlanTag) and
/// [`VlanStack`](super::VlanStack)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter
    /// than [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer after checking that it holds the whole header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Err(Truncated)` if the buffer is shorter than the header.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length: always [`HEADER_LEN`].
    #[inline(always)]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Destination MAC address.
    #[inline(always)]
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress(read_array(self.buffer.as_ref(), field::DESTINATION.start))
    }

    /// Source MAC address.
    #[inline(always)]
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress(read_array(self.buffer.as_ref(), field::SOURCE.start))
    }

    /// EtherType (the TPID when the frame is VLAN-tagged).
    #[inline(always)]
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Everything after the 14-byte header.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.0);
    }

    /// Mutable access to everything after the header.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// What the NORMAL action reads of a frame, as Open vSwitch does: the two
/// addresses and the outer VLAN tag (TPID 0x8100 or 0x88a8). Tags behind the
/// outer one are payload: they are carried, never looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchingHeader {
    pub dst: EthernetAddress,
    pub src: EthernetAddress,
    /// The outer tag's TCI: the one the NIC stripped into the packet's
    /// metadata, else the first tag in the data; `None` when untagged.
    pub outer_tci: Option<u16>,
}

/// Shortest frame with a whole outer tag: the addresses, the TPID, the TCI
/// and the EtherType behind it (Open vSwitch's rule too: a shorter frame
/// whose EtherType is a TPID carries a partial tag).
pub const MIN_TAGGED_LEN: usize = HEADER_LEN + 4;

impl SwitchingHeader {
    /// Parses the header of `frame`, whose outer tag the NIC may have
    /// `stripped`. Errors: shorter than an Ethernet header, or a partial
    /// outer tag. Never panics; does not allocate.
    #[inline(always)]
    pub fn parse(frame: &[u8], stripped: Option<u16>) -> Result<SwitchingHeader> {
        let Some((&[d0, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5, t0, t1], rest)) =
            frame.split_first_chunk::<HEADER_LEN>()
        else {
            return Err(WireError::Truncated);
        };
        let outer_tci = match stripped {
            Some(tci) => Some(tci),
            None if EtherType(u16::from_be_bytes([t0, t1])).is_vlan_tpid() => match rest {
                [c0, c1, _, _, ..] => Some(u16::from_be_bytes([*c0, *c1])),
                _ => return Err(WireError::Malformed("partial VLAN tag")),
            },
            None => None,
        };
        Ok(SwitchingHeader {
            dst: EthernetAddress([d0, d1, d2, d3, d4, d5]),
            src: EthernetAddress([s0, s1, s2, s3, s4, s5]),
            outer_tci,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switching_header_reads_the_outer_tag_only() {
        let mut f = FRAME.to_vec();
        assert_eq!(
            SwitchingHeader::parse(&f, None).map(|h| (h.dst, h.outer_tci)),
            Ok((EthernetAddress::BROADCAST, None))
        );
        // S-tag 5 over C-tag 7 over C-tag 9: only the S-tag counts.
        f.splice(
            12..12,
            [
                0x88, 0xa8, 0x00, 0x05, 0x81, 0x00, 0x00, 0x07, 0x81, 0x00, 0x00, 0x09,
            ],
        );
        assert_eq!(SwitchingHeader::parse(&f, None).unwrap().outer_tci, Some(5));
        assert_eq!(
            SwitchingHeader::parse(&f[..18], None).unwrap().outer_tci,
            Some(5)
        );
        for len in 14..18 {
            assert!(
                SwitchingHeader::parse(&f[..len], None).is_err(),
                "partial tag, {len}"
            );
        }
        for len in 0..14 {
            assert_eq!(
                SwitchingHeader::parse(&f[..len], None),
                Err(WireError::Truncated)
            );
        }
        // A stripped tag is the outer one, whatever the data holds.
        assert_eq!(
            SwitchingHeader::parse(&f[..14], Some(0x2003))
                .unwrap()
                .outer_tci,
            Some(0x2003)
        );
    }

    #[test]
    fn reserved_addresses_are_the_ovs_set() {
        let reserved = |v: u64| EthernetAddress::from_u64(v).is_reserved();
        for low in 0..=0xf {
            assert!(reserved(0x0180_c200_0000 + low), "01:80:c2:00:00:{low:02x}");
        }
        for v in [
            0x00e0_2b00_0000u64,
            0x00e0_2b00_0004,
            0x00e0_2b00_0006,
            0x0100_0c00_0000,
            0x0100_0ccc_cccc,
            0x0100_0ccc_cccd,
            0x0100_0ccd_cdcd,
            0x0100_0ccc_ccc0,
            0x0100_0ccc_ccc7,
        ] {
            assert!(reserved(v), "{v:012x}");
        }
        for v in [
            0x0180_c200_0010u64,
            0x0180_c200_0021,
            0x0100_0ccc_ccc8,
            0x00e0_2b00_0001,
            0xffff_ffff_ffff,
            0x0100_5e00_0001,
            0x3333_0000_0001,
            0,
        ] {
            assert!(!reserved(v), "{v:012x}");
        }
    }

    const FRAME: [u8; 18] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x06, // ARP
        0xde, 0xad, 0xbe, 0xef, // payload
    ];

    #[test]
    fn parses_known_frame() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(f.src_addr(), EthernetAddress::new(2, 0, 0, 0, 0, 1));
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn header_only_frame_has_empty_payload() {
        let f = EthernetFrame::new_checked(&FRAME[..14]).unwrap();
        assert!(f.payload().is_empty());
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&FRAME[..len]),
                Err(WireError::Truncated),
                "len {len}"
            );
        }
    }

    #[test]
    fn setters_rewrite_in_place() {
        let mut buf = FRAME;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr(EthernetAddress::new(1, 2, 3, 4, 5, 6));
        f.set_src_addr(EthernetAddress::new(6, 5, 4, 3, 2, 1));
        f.set_ethertype(EtherType::IPV6);
        f.payload_mut()[0] = 0;
        assert_eq!(f.dst_addr(), EthernetAddress::new(1, 2, 3, 4, 5, 6));
        assert_eq!(f.src_addr(), EthernetAddress::new(6, 5, 4, 3, 2, 1));
        assert_eq!(f.ethertype(), EtherType::IPV6);
        assert_eq!(
            &buf[..14],
            &[1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2, 1, 0x86, 0xdd]
        );
        assert_eq!(buf[14], 0);
    }
}
