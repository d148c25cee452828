//! Packet buffers: an owned handle ([`Mbuf`]) and a fixed burst of them
//! ([`MbufBatch`]). Field reads are plain Rust loads from the `rte_mbuf`
//! struct (no FFI per packet); DPDK is called once per burst.
use crate::mempool::Mempool;
use crate::raw;
use crate::BURST;
use std::ptr::NonNull;
use switch_core::offload::{self, Offload};
use switch_core::wire::IpProtocol;

const RX_VLAN_STRIPPED: u64 = raw::RTE_MBUF_F_RX_VLAN_STRIPPED as u64;
const TX_TCP_SEG: u64 = raw::RTE_MBUF_F_TX_TCP_SEG;
/// "An L4 checksum is pending" (DPDK's TCP checksum request: the switch
/// finishes it itself or hands it to a packet socket, never to a PMD).
const TX_L4_CKSUM: u64 = raw::RTE_MBUF_F_TX_TCP_CKSUM;
const OFFLOAD_FLAGS: u64 = TX_TCP_SEG | raw::RTE_MBUF_F_TX_L4_MASK;
/// `tso_segsz` in `tx_offload` (after l2_len 7, l3_len 9, l4_len 8 bits).
const TSO_SEGSZ_SHIFT: u32 = 24;
const L3_LEN_SHIFT: u32 = 7;
const L4_LEN_SHIFT: u32 = 16;
/// The flags a device that takes offloads reads besides [`OFFLOAD_FLAGS`].
const TX_L3_FLAGS: u64 =
    raw::RTE_MBUF_F_TX_IPV4 | raw::RTE_MBUF_F_TX_IPV6 | raw::RTE_MBUF_F_TX_IP_CKSUM;

/// One packet buffer, owned: freed on drop (one FFI call; the fast path frees
/// in bulk through [`MbufBatch`] instead). Single-segment view of the data.
#[repr(transparent)]
pub struct Mbuf {
    ptr: NonNull<raw::rte_mbuf>,
}

// SAFETY: an mbuf is owned by exactly one holder at a time; moving the handle
// to another thread moves that ownership (DPDK's own model).
unsafe impl Send for Mbuf {}

impl Mbuf {
    #[inline(always)]
    fn m(&self) -> &raw::rte_mbuf {
        // SAFETY: `ptr` is a valid mbuf we own for as long as `self` lives.
        unsafe { self.ptr.as_ref() }
    }

    #[inline(always)]
    fn m_mut(&mut self) -> &mut raw::rte_mbuf {
        // SAFETY: as in `m`, and `&mut self` gives exclusive access.
        unsafe { self.ptr.as_mut() }
    }

    /// The frame bytes of the first segment.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: DPDK guarantees buf_addr + data_off .. + data_len lies
        // inside the buffer of buf_len bytes owned by this mbuf.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// Mutable frame bytes; `None` when the buffer is shared (refcnt > 1).
    #[inline(always)]
    pub fn data_mut(&mut self) -> Option<&mut [u8]> {
        let m = self.m_mut();
        if m.refcnt != 1 {
            return None;
        }
        // SAFETY: as in `data`; refcnt 1 means no one else sees the bytes.
        Some(unsafe {
            std::slice::from_raw_parts_mut(
                (m.buf_addr as *mut u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        })
    }

    #[inline(always)]
    pub fn data_len(&self) -> u16 {
        self.m().data_len
    }

    /// Whole packet length over all segments.
    #[inline(always)]
    pub fn pkt_len(&self) -> u32 {
        self.m().pkt_len
    }

    /// Port id the PMD received it on.
    #[inline(always)]
    pub fn port(&self) -> u16 {
        self.m().port
    }

    #[inline(always)]
    pub fn ol_flags(&self) -> u64 {
        self.m().ol_flags
    }

    /// RSS hash computed by the NIC (0 when the PMD has none).
    #[inline(always)]
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: every variant of this union is plain integers.
        unsafe { self.m().__bindgen_anon_2.hash.rss }
    }

    /// The outer VLAN TCI when the NIC stripped the tag into the metadata.
    #[inline(always)]
    pub fn rx_vlan_tci(&self) -> Option<u16> {
        let m = self.m();
        (m.ol_flags & RX_VLAN_STRIPPED != 0).then_some(m.vlan_tci)
    }

    /// Forget a stripped tag (after the switch took it into account).
    #[inline(always)]
    pub fn clear_rx_vlan(&mut self) {
        self.m_mut().ol_flags &= !(RX_VLAN_STRIPPED | raw::RTE_MBUF_F_RX_VLAN as u64);
    }

    /// Records a tag the receiving side took out of the data (as a NIC
    /// that strips tags does).
    #[inline(always)]
    pub fn set_rx_vlan(&mut self, tci: u16) {
        let m = self.m_mut();
        m.vlan_tci = tci;
        m.ol_flags |= RX_VLAN_STRIPPED | raw::RTE_MBUF_F_RX_VLAN as u64;
    }

    /// What is left to finish of the frame's checksum or segmentation, kept
    /// in DPDK's own transmit-offload flags and `tso_segsz`. Only the flag
    /// word (first cache line) is read for a frame without offloads.
    #[inline(always)]
    pub fn offload(&self) -> Offload {
        let m = self.m();
        if m.ol_flags & OFFLOAD_FLAGS == 0 {
            return Offload::NONE;
        }
        let tcp_mss = if m.ol_flags & TX_TCP_SEG != 0 {
            // SAFETY: every variant of this union is plain integers.
            (unsafe { m.__bindgen_anon_3.tx_offload } >> TSO_SEGSZ_SHIFT) as u16
        } else {
            0
        };
        Offload {
            partial_checksum: true,
            tcp_mss,
        }
    }

    /// Records what is left to finish (`Offload::NONE`: nothing).
    #[inline(always)]
    pub fn set_offload(&mut self, o: Offload) {
        let m = self.m_mut();
        m.ol_flags &= !OFFLOAD_FLAGS;
        if o.partial_checksum || o.tcp_mss > 0 {
            m.ol_flags |= TX_L4_CKSUM;
        }
        if o.tcp_mss > 0 {
            m.ol_flags |= TX_TCP_SEG;
            // SAFETY: as in `offload`; only the tso_segsz bits change.
            let t = unsafe { m.__bindgen_anon_3.tx_offload };
            let t = (t & !(0xffff << TSO_SEGSZ_SHIFT)) | (u64::from(o.tcp_mss) << TSO_SEGSZ_SHIFT);
            m.__bindgen_anon_3.tx_offload = t;
        }
    }

    /// Spells out what is left to finish the way a device that takes
    /// offloads (a vhost-user guest, a NIC with TSO) reads it: the exact L4
    /// checksum flag, IPv4 or IPv6, and the header lengths, from the frame as
    /// it leaves (a tag may have been pushed or popped since it arrived).
    /// A frame whose headers do not allow it has its offloads dropped and
    /// goes as it is, as a packet socket sends one.
    ///
    /// `ip_checksum`: an IPv4 segment to cut also asks for its IP header
    /// checksum (a NIC's TSO or DPDK's GSO fills it per segment; a guest
    /// needs none, the header it gets is whole).
    #[inline]
    pub fn prepare_tx_offload(&mut self, ip_checksum: bool) {
        let o = self.offload();
        if o.is_none() {
            return;
        }
        let frame = self.data();
        let Some(at) = offload::layers(frame) else {
            self.set_offload(Offload::NONE);
            return;
        };
        let tcp = at.proto == IpProtocol::TCP;
        let l4_len = if tcp {
            frame
                .get(at.l4 + 12)
                .map_or(20, |b| usize::from(b >> 4) * 4)
        } else {
            8
        };
        let m = self.m_mut();
        m.ol_flags &= !(OFFLOAD_FLAGS | TX_L3_FLAGS);
        m.ol_flags |= if tcp {
            raw::RTE_MBUF_F_TX_TCP_CKSUM
        } else {
            raw::RTE_MBUF_F_TX_UDP_CKSUM
        };
        m.ol_flags |= if at.v6 {
            raw::RTE_MBUF_F_TX_IPV6
        } else {
            raw::RTE_MBUF_F_TX_IPV4
        };
        let mss = if tcp { o.tcp_mss } else { 0 };
        if mss > 0 {
            m.ol_flags |= TX_TCP_SEG;
            if ip_checksum && !at.v6 {
                m.ol_flags |= raw::RTE_MBUF_F_TX_IP_CKSUM;
            }
        }
        // l2_len 7 bits, l3_len 9, l4_len 8: `layers` stops at two tags and
        // a 60-byte IPv4 header, a TCP header is at most 60 bytes.
        let t = at.l3 as u64
            | ((at.l4 - at.l3) as u64) << L3_LEN_SHIFT
            | (l4_len as u64) << L4_LEN_SHIFT
            | u64::from(mss) << TSO_SEGSZ_SHIFT;
        m.__bindgen_anon_3.tx_offload = t;
    }

    /// Free bytes in front of the data.
    #[inline(always)]
    pub fn headroom(&self) -> u16 {
        self.m().data_off
    }

    /// Grows the data by `n` bytes at the front (`rte_pktmbuf_prepend`) and
    /// returns the whole data; `None` (nothing changed) without headroom or
    /// when the buffer is shared.
    #[inline(always)]
    pub fn prepend(&mut self, n: u16) -> Option<&mut [u8]> {
        let m = self.m_mut();
        if m.refcnt != 1 || m.data_off < n || m.data_len.checked_add(n).is_none() {
            return None;
        }
        m.data_off -= n;
        m.data_len += n;
        m.pkt_len += n as u32;
        self.data_mut()
    }

    /// Drops `n` bytes from the front (`rte_pktmbuf_adj`); false (nothing
    /// changed) when the first segment is shorter or the buffer is shared.
    #[inline(always)]
    pub fn adj(&mut self, n: u16) -> bool {
        let m = self.m_mut();
        if m.refcnt != 1 || m.data_len < n {
            return false;
        }
        m.data_off += n;
        m.data_len -= n;
        m.pkt_len -= n as u32;
        true
    }

    /// Sets a one-segment buffer's data length to `len` (as
    /// `rte_pktmbuf_append`/`rte_pktmbuf_trim` would) and returns its data;
    /// `None`, with nothing changed, when shared, chained, or when `len`
    /// bytes do not fit behind `data_off`.
    #[inline(always)]
    pub fn resize(&mut self, len: u16) -> Option<&mut [u8]> {
        let m = self.m_mut();
        if m.refcnt != 1
            || m.nb_segs != 1
            || u32::from(m.data_off) + u32::from(len) > u32::from(m.buf_len)
        {
            return None;
        }
        m.data_len = len;
        m.pkt_len = u32::from(len);
        self.data_mut()
    }

    /// Bytes a fresh buffer can hold behind its headroom.
    #[inline(always)]
    pub fn room(&self) -> usize {
        let m = self.m();
        (m.buf_len as usize).saturating_sub(m.data_off as usize)
    }

    /// Makes this (fresh, single-segment) buffer hold a copy of `src`;
    /// false when it does not fit.
    #[inline]
    pub fn copy_from(&mut self, src: &[u8]) -> bool {
        let m = self.m_mut();
        let room = (m.buf_len as usize).saturating_sub(m.data_off as usize);
        if src.len() > room || m.nb_segs != 1 || m.refcnt != 1 {
            return false;
        }
        m.data_len = src.len() as u16;
        m.pkt_len = src.len() as u32;
        m.ol_flags = 0;
        match self.data_mut() {
            Some(d) => {
                d.copy_from_slice(src);
                true
            }
            None => false,
        }
    }

    /// How many segments the frame spans (1 unless the PMD chained buffers
    /// for a frame longer than one).
    #[inline(always)]
    pub fn nb_segs(&self) -> u16 {
        self.m().nb_segs
    }

    /// The frame's bytes, segment by segment (the first is [`Mbuf::data`]).
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            next: Some(self.ptr),
            left: self.m().nb_segs,
            _frame: std::marker::PhantomData,
        }
    }

    /// Appends `tail` (a single-segment buffer) as this frame's last
    /// segment; false, with `tail` freed, when either buffer is shared or
    /// the chain would outgrow DPDK's counters.
    pub fn append_segment(&mut self, tail: Mbuf) -> bool {
        let (tail_len, tail_ok) = {
            let t = tail.m();
            (
                t.data_len,
                t.nb_segs == 1 && t.refcnt == 1 && t.next.is_null(),
            )
        };
        let m = self.m();
        let nb_segs = m.nb_segs;
        if !tail_ok
            || m.refcnt != 1
            || nb_segs == u16::MAX
            || m.pkt_len.checked_add(u32::from(tail_len)).is_none()
        {
            return false;
        }
        // Walk to the last segment, nb_segs - 1 links at most.
        let mut last: *mut raw::rte_mbuf = self.ptr.as_ptr();
        for _ in 1..nb_segs {
            // SAFETY: `last` is a segment of the chain we own; its `next` is
            // a valid segment while fewer than nb_segs were walked.
            let next = unsafe { (*last).next };
            if next.is_null() {
                break;
            }
            last = next;
        }
        let tail_ptr = tail.ptr.as_ptr();
        std::mem::forget(tail);
        // SAFETY: `last` is the chain's last segment, owned by us; the tail
        // buffer is owned (its handle was forgotten) and is now owned by the
        // chain, freed with it.
        unsafe { (*last).next = tail_ptr };
        let m = self.m_mut();
        m.nb_segs += 1;
        m.pkt_len += u32::from(tail_len);
        true
    }

    /// Hints the CPU to fetch the first cache line of the frame.
    #[inline(always)]
    pub fn prefetch_data(&self) {
        let m = self.m();
        crate::cycles::prefetch((m.buf_addr as *const u8).wrapping_add(m.data_off as usize));
    }

    /// Allocates one buffer (`rte_pktmbuf_alloc`): for control-path use.
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        let mut b = MbufBatch::new();
        b.alloc_bulk_from(pool, 1).then(|| b.take(0)).flatten()
    }
}

/// The segments of a frame, in order: see [`Mbuf::segments`].
pub struct Segments<'a> {
    next: Option<NonNull<raw::rte_mbuf>>,
    left: u16,
    _frame: std::marker::PhantomData<&'a Mbuf>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let seg = self.next?;
        self.left -= 1;
        // SAFETY: `seg` is a segment of the frame borrowed for 'a (the head,
        // or a `next` link of the chain, which DPDK keeps valid while the
        // head is owned); its data lies inside its buffer as in `data`.
        unsafe {
            let m = seg.as_ref();
            self.next = NonNull::new(m.next);
            Some(std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            ))
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; it is not used after this.
        unsafe { raw::rte_pktmbuf_free(self.ptr.as_ptr()) }
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("port", &self.port())
            .field("len", &self.pkt_len())
            .finish()
    }
}

/// Up to [`BURST`] owned mbufs in a fixed array (no heap). Slots `0..len`
/// may be taken out (`None`) while a burst is processed; what is left is
/// freed in one bulk call on [`MbufBatch::clear`] or drop.
#[repr(C)]
pub struct MbufBatch {
    // Option<Mbuf> has the layout of `*mut rte_mbuf` (null = None), so the
    // array doubles as DPDK's `struct rte_mbuf **` burst argument.
    slots: [Option<Mbuf>; BURST],
    len: usize,
    /// Some slot below `len` was emptied by `take`.
    holes: bool,
}

impl Default for MbufBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl MbufBatch {
    pub const fn new() -> Self {
        MbufBatch {
            slots: [const { None }; BURST],
            len: 0,
            holes: false,
        }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.len == BURST
    }

    /// Appends; gives the mbuf back when full.
    #[inline(always)]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        match self.slots.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(m);
                self.len += 1;
                Ok(())
            }
            None => Err(m),
        }
    }

    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<&Mbuf> {
        self.slots[..self.len].get(i)?.as_ref()
    }

    #[inline(always)]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Mbuf> {
        self.slots[..self.len].get_mut(i)?.as_mut()
    }

    /// Moves slot `i` out, leaving it empty.
    #[inline(always)]
    pub fn take(&mut self, i: usize) -> Option<Mbuf> {
        self.holes = true;
        self.slots[..self.len].get_mut(i)?.take()
    }

    /// True when slots `0..len` are all full.
    #[inline(always)]
    pub fn is_compact(&self) -> bool {
        !self.holes
    }

    /// Removes and returns the last mbuf.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<Mbuf> {
        while self.len > 0 {
            self.len -= 1;
            if let Some(m) = self.slots[self.len].take() {
                return Some(m);
            }
        }
        None
    }

    /// Frees every mbuf still held, in one `rte_pktmbuf_free_bulk` call,
    /// and empties the batch. Returns how many were freed.
    #[inline]
    pub fn clear(&mut self) -> usize {
        let mut ptrs = [std::ptr::null_mut::<raw::rte_mbuf>(); BURST];
        let mut n = 0;
        for slot in &mut self.slots[..self.len] {
            if let Some(m) = slot.take() {
                ptrs[n] = m.ptr.as_ptr();
                std::mem::forget(m);
                n += 1;
            }
        }
        self.len = 0;
        self.holes = false;
        if n > 0 {
            // SAFETY: the n pointers are owned mbufs whose handles were forgotten.
            unsafe { raw::rte_pktmbuf_free_bulk(ptrs.as_mut_ptr(), n as u32) };
        }
        n
    }

    /// Fills the batch with `n` fresh buffers (one `rte_pktmbuf_alloc_bulk`
    /// call); the batch must be empty. False when the pool is short.
    pub fn alloc_bulk_from(&mut self, pool: &Mempool, n: usize) -> bool {
        if self.len != 0 || n > BURST {
            return false;
        }
        // SAFETY: slots[0..n] are None (len 0), laid out as `*mut rte_mbuf`;
        // on success DPDK writes n valid owned mbuf pointers there.
        let ret = unsafe { raw::rte_pktmbuf_alloc_bulk(pool.as_ptr(), self.raw_slots(), n as u32) };
        if ret == 0 {
            self.len = n;
            true
        } else {
            false
        }
    }

    /// The slot array as DPDK's burst argument.
    #[inline(always)]
    pub(crate) fn raw_slots(&mut self) -> *mut *mut raw::rte_mbuf {
        self.slots.as_mut_ptr().cast()
    }

    /// After DPDK wrote `n` mbufs at slots `len..len+n`.
    #[inline(always)]
    pub(crate) fn set_len(&mut self, len: usize) {
        debug_assert!(len <= BURST);
        self.len = len.min(BURST);
    }

    /// Moves every mbuf out, in order; the batch is empty when the iterator
    /// is dropped (anything not consumed is freed in bulk).
    #[inline(always)]
    pub fn drain(&mut self) -> Drain<'_> {
        Drain {
            batch: self,
            next: 0,
        }
    }

    /// After DPDK took ownership of slots `0..n` (tx burst): forgets them
    /// and frees the rest in one bulk call. Returns how many were freed.
    #[inline(always)]
    pub(crate) fn consumed_front(&mut self, n: usize) -> usize {
        let len = self.len;
        let n = n.min(len);
        let rest = len - n;
        if rest > 0 {
            // SAFETY: slots n..len hold owned mbufs (the batch is compact);
            // they are freed here and nulled below without running Drop.
            unsafe { raw::rte_pktmbuf_free_bulk(self.raw_slots().add(n), rest as u32) };
        }
        // SAFETY: slots 0..len are `Option<Mbuf>`, whose all-zero bit pattern
        // is `None`; the mbufs they held now belong to DPDK (0..n) or were
        // freed just above (n..len), so overwriting them without Drop is right.
        unsafe { std::ptr::write_bytes(self.slots.as_mut_ptr(), 0, len) };
        self.len = 0;
        self.holes = false;
        rest
    }

    /// After a transmit took the first `n` mbufs: the rest move to the
    /// front and stay in the batch (nothing is freed).
    pub(crate) fn keep_after(&mut self, n: usize) {
        let len = self.len;
        let n = n.min(len);
        // SAFETY: slots 0..n are `Option<Mbuf>` whose mbufs now belong to
        // DPDK: zeroing them (all-zero is `None`) forgets them without Drop.
        unsafe { std::ptr::write_bytes(self.slots.as_mut_ptr(), 0, n) };
        self.slots[..len].rotate_left(n);
        self.len = len - n;
    }

    /// Closes gaps left by `take` so slots `0..len` are all full (needed
    /// before handing the array to tx burst).
    #[inline]
    pub fn compact(&mut self) {
        let mut w = 0;
        for r in 0..self.len {
            if self.slots[r].is_some() {
                self.slots.swap(w, r);
                w += 1;
            }
        }
        self.len = w;
        self.holes = false;
    }
}

/// Iterator of [`MbufBatch::drain`].
pub struct Drain<'a> {
    batch: &'a mut MbufBatch,
    next: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline(always)]
    fn next(&mut self) -> Option<Mbuf> {
        while self.next < self.batch.len {
            let m = self.batch.slots[self.next].take();
            self.next += 1;
            if m.is_some() {
                return m;
            }
        }
        None
    }
}

impl Drop for Drain<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.next >= self.batch.len {
            self.batch.len = 0;
            self.batch.holes = false;
        } else {
            self.batch.clear();
        }
    }
}

impl Drop for MbufBatch {
    fn drop(&mut self) {
        self.clear();
    }
}

impl switch_core::frame::Frame for Mbuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }
    #[inline(always)]
    fn data_mut(&mut self) -> Option<&mut [u8]> {
        Mbuf::data_mut(self)
    }
    #[inline(always)]
    fn pkt_len(&self) -> u32 {
        Mbuf::pkt_len(self)
    }
    #[inline(always)]
    fn stripped_tci(&self) -> Option<u16> {
        self.rx_vlan_tci()
    }
    #[inline(always)]
    fn clear_stripped_tci(&mut self) {
        self.clear_rx_vlan()
    }
    #[inline(always)]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        Mbuf::prepend(self, u16::try_from(n).ok()?)
    }
    #[inline(always)]
    fn adj(&mut self, n: usize) -> bool {
        u16::try_from(n).is_ok_and(|n| Mbuf::adj(self, n))
    }
    #[inline(always)]
    fn resize(&mut self, len: usize) -> Option<&mut [u8]> {
        Mbuf::resize(self, u16::try_from(len).ok()?)
    }
    #[inline(always)]
    fn offload(&self) -> Offload {
        Mbuf::offload(self)
    }
    #[inline(always)]
    fn set_offload(&mut self, o: Offload) {
        Mbuf::set_offload(self, o)
    }
    #[inline(always)]
    fn prefetch(&self) {
        self.prefetch_data()
    }
}

impl switch_core::frame::Burst for MbufBatch {
    type Frame = Mbuf;
    #[inline(always)]
    fn len(&self) -> usize {
        MbufBatch::len(self)
    }
    #[inline(always)]
    fn get(&self, i: usize) -> Option<&Mbuf> {
        MbufBatch::get(self, i)
    }
    #[inline(always)]
    fn get_mut(&mut self, i: usize) -> Option<&mut Mbuf> {
        MbufBatch::get_mut(self, i)
    }
    #[inline(always)]
    fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        MbufBatch::push(self, m)
    }
    #[inline(always)]
    fn take(&mut self, i: usize) -> Option<Mbuf> {
        MbufBatch::take(self, i)
    }
    #[inline(always)]
    fn clear(&mut self) -> usize {
        MbufBatch::clear(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eal::Eal;
    use std::sync::Arc;

    /// Every buffer a batch took from the pool goes back, whatever path it
    /// leaves the batch by. One test: the EAL starts once per process.
    #[test]
    fn batch_bookkeeping_returns_every_buffer() {
        let prefix = format!("fsw-ffi-test-{}", std::process::id());
        let eal = Arc::new(
            Eal::init(&[
                "-l",
                "0",
                "--no-pci",
                "--no-huge",
                "-m",
                "64",
                "--no-shconf",
                "--no-telemetry",
                "--file-prefix",
                &prefix,
            ])
            .expect("EAL"),
        );
        let pool = Arc::new(Mempool::new_pktmbuf(&eal, "ffi_test", 255, 0, 2176, -1).unwrap());
        drop(eal); // the pool keeps it alive
        assert_eq!(pool.in_use(), 0);

        // Bulk alloc fills slots 0..n; clear frees them in one call.
        let mut b = MbufBatch::new();
        assert!(b.alloc_bulk_from(&pool, BURST));
        assert!(b.is_full() && b.is_compact());
        assert!(!b.alloc_bulk_from(&pool, 1), "only into an empty batch");
        assert_eq!(pool.in_use(), BURST as u32);
        assert_eq!(b.clear(), BURST);
        assert!(b.is_empty());
        assert_eq!(pool.in_use(), 0);

        // take leaves holes; compact closes them in order; pop skips holes.
        assert!(b.alloc_bulk_from(&pool, 8));
        for i in 0..8 {
            assert!(b.get_mut(i).unwrap().copy_from(&[i as u8; 60]));
        }
        let taken = b.take(2).unwrap();
        assert!(b.take(2).is_none() && b.get(2).is_none());
        assert!(!b.is_compact());
        drop(taken); // a single free
        assert_eq!(pool.in_use(), 7);
        let last = b.take(7).unwrap();
        assert_eq!(
            b.pop().map(|m| m.data()[0]),
            Some(6),
            "pop skips the hole at 7"
        );
        drop(last);
        b.compact();
        assert!(b.is_compact());
        let order: Vec<u8> = (0..b.len()).map(|i| b.get(i).unwrap().data()[0]).collect();
        assert_eq!(order, [0, 1, 3, 4, 5]);

        // drain hands out in order; what is left when it stops is freed.
        let mut d = b.drain();
        assert_eq!(d.next().map(|m| m.data()[0]), Some(0));
        drop(d);
        assert!(b.is_empty());
        assert_eq!(pool.in_use(), 0);

        // push refuses the 33rd; consumed_front frees the unsent tail.
        assert!(b.alloc_bulk_from(&pool, BURST));
        let extra = Mbuf::alloc(&pool).unwrap();
        assert!(b.push(extra).is_err()); // given back and dropped: freed
        assert_eq!(b.consumed_front(0), BURST);
        assert_eq!(pool.in_use(), 0);

        // Frame edits on a real mbuf: room in front, drop from the front.
        let mut m = Mbuf::alloc(&pool).unwrap();
        assert!(m.copy_from(&[9; 20]));
        let room = m.headroom();
        use switch_core::frame::Frame;
        assert_eq!(Frame::prepend(&mut m, 4).map(|d| d.len()), Some(24));
        assert_eq!(m.headroom(), room - 4);
        assert!(Frame::adj(&mut m, 4));
        assert!(!Frame::adj(&mut m, 21));
        assert!(Frame::prepend(&mut m, 1 << 17).is_none());
        assert_eq!((Frame::pkt_len(&m), Frame::stripped_tci(&m)), (20, None));
        drop(m);

        // Chains: segments in order, lengths summed, freed as one.
        let mut head = Mbuf::alloc(&pool).unwrap();
        assert!(head.copy_from(&[1; 100]));
        for (len, byte) in [(50, 2u8), (7, 3)] {
            let mut seg = Mbuf::alloc(&pool).unwrap();
            assert!(seg.copy_from(&vec![byte; len]));
            assert!(head.append_segment(seg));
        }
        assert_eq!(
            (head.nb_segs(), head.pkt_len(), head.data_len()),
            (3, 157, 100)
        );
        let segs: Vec<(usize, u8)> = head.segments().map(|s| (s.len(), s[0])).collect();
        assert_eq!(segs, [(100, 1), (50, 2), (7, 3)]);
        let chained = Mbuf::alloc(&pool).unwrap();
        let mut other = Mbuf::alloc(&pool).unwrap();
        assert!(other.append_segment(Mbuf::alloc(&pool).unwrap()));
        assert!(
            !head.append_segment(other),
            "only single segments are appended"
        );
        assert_eq!(pool.in_use(), 4);
        drop(chained);
        drop(head);
        assert_eq!(pool.in_use(), 0);

        // A pool dropped with a buffer out is leaked, not freed under it.
        let kept = Mbuf::alloc(&pool).unwrap();
        drop(pool);
        assert_eq!(kept.data_len(), 0);
        drop(kept);
        // The leaked EAL never cleans up after itself: its directory goes here.
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    }
}
