//! IEEE 802.1Q / 802.1ad VLAN tags.
//!
//! On the wire a tag is 4 bytes: the TPID (0x8100 for a C-tag, 0x88a8 for an
//! S-tag) in place of the EtherType, then the TCI, then the encapsulated
//! EtherType. Like smoltcp, [`VlanTag`] views the bytes *after* the TPID (the
//! TPID belongs to the enclosing header): TCI (2 bytes) and inner EtherType
//! (2 bytes), followed by the payload.
//!
//! # Tag stacks
//!
//! [`VlanStack::parse`] walks the tags after the Ethernet header with this
//! policy (the same one [`FlowKey::extract`](crate::flow_key::FlowKey::extract)
//! applies):
//!
//! * the outermost tag may be 0x88a8 or 0x8100; a tag inside another one must
//!   be 0x8100 (an S-tag nested in a tag is `Malformed`);
//! * at most **two** tags in total are accepted, counting a tag the NIC
//!   already stripped into the mbuf metadata. A third tag is `Malformed`
//!   rather than being treated as payload: the switch drops it (fail closed),
//!   so no frame reaches the L3 classifier with an EtherType of 0x8100/0x88a8
//!   hiding an IP packet from the ACLs;
//! * a tag cut short by the end of the buffer is `Truncated`.
//!
//! 0x9100 (the pre-standard QinQ TPID) is not recognised: such a frame is
//! untagged with EtherType 0x9100.

use core::fmt;

use super::{read_u16, write_u16, EtherType, Result, WireError};

mod field {
    use core::ops::RangeFrom;
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
    pub const PAYLOAD: RangeFrom<usize> = 4..;
}

/// Length of a tag once its TPID is accounted to the enclosing header.
pub const HEADER_LEN: usize = 4;

/// Most tags accepted in a stack (outer + inner).
pub const MAX_TAGS: usize = 2;

/// A Tag Control Information word: PCP (3 bits), DEI (1 bit), VID (12 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Tci(pub u16);

impl Tci {
    /// Mask of the VLAN identifier bits.
    pub const VID_MASK: u16 = 0x0fff;
    /// The drop eligible indicator bit (formerly CFI).
    pub const DEI_BIT: u16 = 0x1000;

    /// A TCI with the given VID and priority and DEI clear. Out-of-range
    /// values are masked: only the low 12 bits of `vid` and the low 3 bits of
    /// `pcp` are used.
    #[inline]
    pub const fn new(vid: u16, pcp: u8) -> Tci {
        Tci((((pcp & 0x07) as u16) << 13) | (vid & Self::VID_MASK))
    }

    /// VLAN identifier (0..=4095).
    #[inline]
    pub const fn vid(self) -> u16 {
        self.0 & Self::VID_MASK
    }

    /// Priority code point (0..=7).
    #[inline]
    pub const fn pcp(self) -> u8 {
        // The shift leaves 3 bits: lossless.
        (self.0 >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub const fn dei(self) -> bool {
        self.0 & Self::DEI_BIT != 0
    }

    /// The same TCI with the DEI bit set or cleared.
    #[inline]
    pub const fn with_dei(self, dei: bool) -> Tci {
        if dei {
            Tci(self.0 | Self::DEI_BIT)
        } else {
            Tci(self.0 & !Self::DEI_BIT)
        }
    }
}

impl From<u16> for Tci {
    #[inline]
    fn from(v: u16) -> Self {
        Tci(v)
    }
}

impl From<Tci> for u16 {
    #[inline]
    fn from(v: Tci) -> Self {
        v.0
    }
}

impl fmt::Debug for Tci {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tci")
            .field("vid", &self.vid())
            .field("pcp", &self.pcp())
            .field("dei", &self.dei())
            .finish()
    }
}

/// A view of one VLAN tag, starting at the TCI (just after the TPID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter
    /// than [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    /// Wraps a buffer after checking that it holds TCI and EtherType.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
    }

    /// `Err(Truncated)` if the buffer is shorter than 4 bytes.
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

    /// Header length: always [`HEADER_LEN`] (4).
    #[inline(always)]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The whole TCI.
    #[inline(always)]
    pub fn tci(&self) -> Tci {
        Tci(read_u16(self.buffer.as_ref(), field::TCI))
    }

    /// VLAN identifier.
    #[inline(always)]
    pub fn vid(&self) -> u16 {
        self.tci().vid()
    }

    /// Priority code point.
    #[inline(always)]
    pub fn pcp(&self) -> u8 {
        self.tci().pcp()
    }

    /// Drop eligible indicator.
    #[inline(always)]
    pub fn dei(&self) -> bool {
        self.tci().dei()
    }

    /// The encapsulated EtherType (a TPID again if another tag follows).
    #[inline(always)]
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Everything after the tag.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets the whole TCI.
    #[inline]
    pub fn set_tci(&mut self, tci: Tci) {
        write_u16(self.buffer.as_mut(), field::TCI, tci.0);
    }

    /// Sets the VID, keeping PCP and DEI (only the low 12 bits are used).
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let tci = self.tci().0;
        self.set_tci(Tci((tci & !Tci::VID_MASK) | (vid & Tci::VID_MASK)));
    }

    /// Sets the PCP, keeping DEI and VID (only the low 3 bits are used).
    #[inline]
    pub fn set_pcp(&mut self, pcp: u8) {
        let tci = self.tci().0;
        self.set_tci(Tci((tci & 0x1fff) | (u16::from(pcp & 0x07) << 13)));
    }

    /// Sets or clears the DEI bit.
    #[inline]
    pub fn set_dei(&mut self, dei: bool) {
        let tci = self.tci().with_dei(dei);
        self.set_tci(tci);
    }

    /// Sets the encapsulated EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.0);
    }

    /// Mutable access to everything after the tag.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The VLAN tags of a frame, as walked by [`VlanStack::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct VlanStack {
    /// Outer tag: the one the NIC stripped if any, else the first in the data.
    pub outer: Option<Tci>,
    /// Inner (second) tag, always from the data.
    pub inner: Option<Tci>,
    /// EtherType after all the tags.
    pub ethertype: EtherType,
    /// Bytes of tags found in the data (0, 4 or 8): the L3 header starts at
    /// `ethernet::HEADER_LEN + tags_len` in the frame.
    pub tags_len: usize,
}

const TOO_MANY_TAGS: &str = "more than two VLAN tags";
const NESTED_S_TAG: &str = "802.1ad S-tag inside another VLAN tag";

/// Splits one tag off `data`: (TCI, encapsulated EtherType, rest).
#[inline(always)]
fn take_tag(data: &[u8]) -> Result<(Tci, EtherType, &[u8])> {
    match data.split_first_chunk::<HEADER_LEN>() {
        Some((&[t0, t1, e0, e1], rest)) => Ok((
            Tci(u16::from_be_bytes([t0, t1])),
            EtherType(u16::from_be_bytes([e0, e1])),
            rest,
        )),
        None => Err(WireError::Truncated),
    }
}

impl VlanStack {
    /// Walks the tags that follow an Ethernet header whose EtherType field is
    /// `ethertype`; `data` is the Ethernet payload (what follows that field).
    ///
    /// `stripped_outer` is the TCI the NIC removed into mbuf metadata, if any:
    /// it becomes the outer tag and at most one (0x8100) tag may remain in the
    /// data. See the [module documentation](self) for the policy.
    ///
    /// Never panics; does not allocate.
    #[inline]
    pub fn parse(ethertype: EtherType, data: &[u8], stripped_outer: Option<Tci>) -> Result<Self> {
        let mut stack = VlanStack {
            outer: stripped_outer,
            inner: None,
            ethertype,
            tags_len: 0,
        };
        if !ethertype.is_vlan_tpid() {
            return Ok(stack);
        }
        let (tci, next, rest) = take_tag(data)?;
        stack.ethertype = next;
        stack.tags_len = HEADER_LEN;
        if stripped_outer.is_some() {
            // The tag left in the data is the inner one.
            if ethertype == EtherType::QINQ {
                return Err(WireError::Malformed(NESTED_S_TAG));
            }
            if next.is_vlan_tpid() {
                return Err(WireError::Malformed(TOO_MANY_TAGS));
            }
            stack.inner = Some(tci);
            return Ok(stack);
        }
        stack.outer = Some(tci);
        if !next.is_vlan_tpid() {
            return Ok(stack);
        }
        if next == EtherType::QINQ {
            return Err(WireError::Malformed(NESTED_S_TAG));
        }
        let (tci2, next2, _) = take_tag(rest)?;
        if next2.is_vlan_tpid() {
            return Err(WireError::Malformed(TOO_MANY_TAGS));
        }
        stack.inner = Some(tci2);
        stack.ethertype = next2;
        stack.tags_len = 2 * HEADER_LEN;
        Ok(stack)
    }

    /// [`parse`](Self::parse) on a whole frame (Ethernet header included):
    /// `Err(Truncated)` if it is shorter than 14 bytes.
    #[inline]
    pub fn from_frame(frame: &[u8], stripped_outer: Option<Tci>) -> Result<Self> {
        match frame.split_first_chunk::<{ super::ethernet::HEADER_LEN }>() {
            Some((hdr, rest)) => {
                let ethertype = EtherType(u16::from_be_bytes([hdr[12], hdr[13]]));
                Self::parse(ethertype, rest, stripped_outer)
            }
            None => Err(WireError::Truncated),
        }
    }

    /// Offset of the L3 header in the frame: `14 + tags_len`.
    #[inline(always)]
    pub const fn l3_offset(&self) -> usize {
        // Saturating: the fields are public, so `tags_len` may be anything.
        self.tags_len.saturating_add(super::ethernet::HEADER_LEN)
    }

    /// Number of tags, the stripped one included.
    #[inline(always)]
    pub const fn count(&self) -> usize {
        self.outer.is_some() as usize + self.inner.is_some() as usize
    }
}

/// Bytes of the two MAC addresses, which stay at the front of a frame when
/// a tag is inserted or removed behind them.
const ADDRESSES_LEN: usize = 12;

/// Inserts an 802.1Q tag with `tci` behind the MAC addresses. `frame` is
/// the Ethernet frame with [`HEADER_LEN`] bytes of new room in front of it
/// (what `prepend(4)` returns): the addresses move into the room and the
/// tag takes their old place. `Err(Truncated)`, nothing changed, when there
/// are not even room and addresses.
#[inline(always)]
pub fn insert_tag(frame: &mut [u8], tci: Tci) -> Result<()> {
    insert_tag_with(frame, EtherType::VLAN, tci)
}

/// [`insert_tag`] with TPID `tpid` (0x88a8 for an S-tag).
#[inline(always)]
pub fn insert_tag_with(frame: &mut [u8], tpid: EtherType, tci: Tci) -> Result<()> {
    if frame.len() < HEADER_LEN + ADDRESSES_LEN + 2 {
        return Err(WireError::Truncated);
    }
    frame.copy_within(HEADER_LEN..HEADER_LEN + ADDRESSES_LEN, 0);
    let mut eth = super::EthernetFrame::new_unchecked(&mut *frame);
    eth.set_ethertype(tpid);
    VlanTag::new_unchecked(&mut frame[super::ethernet::HEADER_LEN..]).set_tci(tci);
    Ok(())
}

/// Removes the outer tag of a tagged frame by moving the MAC addresses over
/// it: afterwards the frame starts [`HEADER_LEN`] bytes later (the caller
/// drops them, `adj(4)`). `Err`, nothing changed, when the frame has no
/// whole outer tag.
#[inline(always)]
pub fn remove_outer_tag(frame: &mut [u8]) -> Result<()> {
    let eth = super::EthernetFrame::new_checked(&*frame)?;
    if !eth.ethertype().is_vlan_tpid() {
        return Err(WireError::Malformed("no VLAN tag"));
    }
    VlanTag::new_checked(eth.payload())?;
    frame.copy_within(0..ADDRESSES_LEN, HEADER_LEN);
    Ok(())
}

/// Rewrites the TCI of a tagged frame's outer tag (its TPID stays).
#[inline(always)]
pub fn set_outer_tci(frame: &mut [u8], tci: Tci) -> Result<()> {
    if !super::EthernetFrame::new_checked(&*frame)?
        .ethertype()
        .is_vlan_tpid()
    {
        return Err(WireError::Malformed("no VLAN tag"));
    }
    let tag = frame
        .get_mut(super::ethernet::HEADER_LEN..)
        .ok_or(WireError::Truncated)?;
    VlanTag::new_checked(tag)?.set_tci(tci);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tci_fields() {
        let tci = Tci(0xb00a); // pcp 5, dei 1, vid 10
        assert_eq!(tci.pcp(), 5);
        assert!(tci.dei());
        assert_eq!(tci.vid(), 10);
        assert_eq!(Tci::new(10, 5).with_dei(true), tci);
        assert_eq!(Tci::new(0xffff, 0xff), Tci(0xefff));
        assert_eq!(Tci::new(4095, 7).with_dei(false).0, 0xefff);
        assert_eq!(format!("{tci:?}"), "Tci { vid: 10, pcp: 5, dei: true }");
    }

    #[test]
    fn tag_view_and_setters() {
        let mut buf = [0x20, 0x64, 0x08, 0x00, 0x45];
        let tag = VlanTag::new_checked(&buf[..]).unwrap();
        assert_eq!(tag.vid(), 100);
        assert_eq!(tag.pcp(), 1);
        assert!(!tag.dei());
        assert_eq!(tag.ethertype(), EtherType::IPV4);
        assert_eq!(tag.payload(), &[0x45]);
        assert_eq!(tag.header_len(), 4);

        let mut tag = VlanTag::new_checked(&mut buf[..]).unwrap();
        tag.set_vid(0xfff);
        assert_eq!((tag.vid(), tag.pcp()), (0xfff, 1));
        tag.set_pcp(7);
        assert_eq!((tag.vid(), tag.pcp()), (0xfff, 7));
        tag.set_dei(true);
        assert!(tag.dei());
        tag.set_vid(5);
        assert_eq!(tag.tci(), Tci::new(5, 7).with_dei(true));
        tag.set_tci(Tci::new(42, 0));
        tag.set_ethertype(EtherType::IPV6);
        tag.payload_mut()[0] = 0x60;
        assert_eq!(buf, [0x00, 0x2a, 0x86, 0xdd, 0x60]);
    }

    #[test]
    fn tag_truncated_at_every_length() {
        let buf = [0x20, 0x64, 0x08, 0x00];
        for len in 0..HEADER_LEN {
            assert_eq!(VlanTag::new_checked(&buf[..len]), Err(WireError::Truncated));
        }
        assert!(VlanTag::new_checked(&buf[..]).unwrap().payload().is_empty());
    }

    fn frame(tags: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
        let mut f = vec![0xff; 12];
        for &(tpid, tci) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&[0x45, 0, 0, 20]);
        f
    }

    #[test]
    fn untagged() {
        let s = VlanStack::from_frame(&frame(&[], 0x0800), None).unwrap();
        assert_eq!(s.outer, None);
        assert_eq!(s.inner, None);
        assert_eq!(s.ethertype, EtherType::IPV4);
        assert_eq!((s.tags_len, s.l3_offset(), s.count()), (0, 14, 0));
    }

    #[test]
    fn single_ctag() {
        let s = VlanStack::from_frame(&frame(&[(0x8100, 0x0064)], 0x86dd), None).unwrap();
        assert_eq!(s.outer, Some(Tci(100)));
        assert_eq!(s.inner, None);
        assert_eq!(s.ethertype, EtherType::IPV6);
        assert_eq!((s.tags_len, s.l3_offset(), s.count()), (4, 18, 1));
    }

    #[test]
    fn single_stag() {
        let s = VlanStack::from_frame(&frame(&[(0x88a8, 0x0064)], 0x0806), None).unwrap();
        assert_eq!(
            (s.outer, s.inner, s.ethertype),
            (Some(Tci(100)), None, EtherType::ARP)
        );
    }

    #[test]
    fn qinq_stag_then_ctag() {
        let f = frame(&[(0x88a8, 0xa00a), (0x8100, 0x0014)], 0x0800);
        let s = VlanStack::from_frame(&f, None).unwrap();
        assert_eq!(s.outer, Some(Tci(0xa00a)));
        assert_eq!(s.inner, Some(Tci(20)));
        assert_eq!(s.ethertype, EtherType::IPV4);
        assert_eq!((s.tags_len, s.l3_offset(), s.count()), (8, 22, 2));
        assert_eq!(f[s.l3_offset()], 0x45);
    }

    #[test]
    fn double_ctag_is_accepted() {
        let f = frame(&[(0x8100, 1), (0x8100, 2)], 0x0800);
        let s = VlanStack::from_frame(&f, None).unwrap();
        assert_eq!((s.outer, s.inner), (Some(Tci(1)), Some(Tci(2))));
    }

    #[test]
    fn nested_stag_is_malformed() {
        let f = frame(&[(0x8100, 1), (0x88a8, 2)], 0x0800);
        assert_eq!(
            VlanStack::from_frame(&f, None),
            Err(WireError::Malformed(NESTED_S_TAG))
        );
        let f = frame(&[(0x88a8, 1), (0x88a8, 2)], 0x0800);
        assert!(matches!(
            VlanStack::from_frame(&f, None),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn third_tag_is_malformed() {
        let f = frame(&[(0x88a8, 1), (0x8100, 2), (0x8100, 3)], 0x0800);
        assert_eq!(
            VlanStack::from_frame(&f, None),
            Err(WireError::Malformed(TOO_MANY_TAGS))
        );
    }

    #[test]
    fn stripped_outer_makes_data_tag_inner() {
        let f = frame(&[(0x8100, 7)], 0x0800);
        let s = VlanStack::from_frame(&f, Some(Tci(300))).unwrap();
        assert_eq!((s.outer, s.inner), (Some(Tci(300)), Some(Tci(7))));
        assert_eq!((s.tags_len, s.l3_offset(), s.count()), (4, 18, 2));

        let f = frame(&[], 0x0800);
        let s = VlanStack::from_frame(&f, Some(Tci(300))).unwrap();
        assert_eq!((s.outer, s.inner, s.tags_len), (Some(Tci(300)), None, 0));

        // Stripped + two in data = three tags.
        let f = frame(&[(0x8100, 1), (0x8100, 2)], 0x0800);
        assert_eq!(
            VlanStack::from_frame(&f, Some(Tci(300))),
            Err(WireError::Malformed(TOO_MANY_TAGS))
        );
        // An S-tag cannot be inside the stripped tag.
        let f = frame(&[(0x88a8, 1)], 0x0800);
        assert_eq!(
            VlanStack::from_frame(&f, Some(Tci(300))),
            Err(WireError::Malformed(NESTED_S_TAG))
        );
    }

    #[test]
    fn truncated_tags_at_every_length() {
        let f = frame(&[(0x88a8, 1), (0x8100, 2)], 0x0800);
        for len in 0..14 {
            assert_eq!(
                VlanStack::from_frame(&f[..len], None),
                Err(WireError::Truncated)
            );
        }
        // The tags end at 22; anything shorter cuts one of them.
        for len in 14..22 {
            assert_eq!(
                VlanStack::from_frame(&f[..len], None),
                Err(WireError::Truncated),
                "len {len}"
            );
        }
        for len in 22..=f.len() {
            assert!(VlanStack::from_frame(&f[..len], None).is_ok());
        }
    }

    #[test]
    fn tag_edits_round_trip() {
        let untagged: Vec<u8> = (1..=12).chain([0x08, 0x00, 0xaa, 0xbb]).collect();
        let mut room = vec![0u8; 4];
        room.extend_from_slice(&untagged);
        insert_tag(&mut room, Tci::new(100, 5)).unwrap();
        assert_eq!(&room[..12], &untagged[..12]);
        assert_eq!(&room[12..16], &[0x81, 0x00, 0xa0, 0x64]);
        assert_eq!(&room[16..], &untagged[12..]);

        set_outer_tci(&mut room, Tci(0x0fff)).unwrap();
        assert_eq!(&room[14..16], &[0x0f, 0xff]);

        remove_outer_tag(&mut room).unwrap();
        assert_eq!(&room[4..], &untagged[..]);

        // Nothing changes on frames that cannot take the edit.
        let mut short = vec![0u8; 17];
        assert_eq!(insert_tag(&mut short, Tci(1)), Err(WireError::Truncated));
        assert!(short.iter().all(|&b| b == 0));
        let mut plain = untagged.clone();
        assert!(remove_outer_tag(&mut plain).is_err());
        assert!(set_outer_tci(&mut plain, Tci(1)).is_err());
        assert_eq!(plain, untagged);
        let mut cut = untagged[..12].to_vec();
        cut.extend_from_slice(&[0x81, 0x00, 0x00]);
        assert_eq!(remove_outer_tag(&mut cut), Err(WireError::Truncated));
        assert_eq!(set_outer_tci(&mut cut, Tci(1)), Err(WireError::Truncated));
    }
}
