//! What the pipeline needs from a packet buffer and a burst of them, and
//! nothing more: the switching core's side of the device boundary, as
//! smoltcp's `phy::Device` separates its stack from the device.
//!
//! The PMD worker implements these traits for DPDK's mbufs (`dpdk_sys`);
//! [`mem`] implements them over plain memory, so every stage runs in unit
//! tests, property tests and benchmarks without DPDK. The pipeline is
//! generic over them: one monomorphised copy per device type, no dynamic
//! dispatch per packet.

/// Frames per burst everywhere in the switch.
pub const BURST: usize = 32;

/// One packet buffer, owned by whoever holds it.
pub trait Frame {
    /// The bytes of the first (usually only) segment, from the destination
    /// MAC on, without FCS.
    fn data(&self) -> &[u8];
    /// The same, writable; `None` when the buffer is shared with another
    /// owner (a clone) and must not change.
    fn data_mut(&mut self) -> Option<&mut [u8]>;
    /// The whole packet's length over every segment.
    fn pkt_len(&self) -> u32;
    /// The outer tag's TCI when the NIC stripped it into metadata.
    fn stripped_tci(&self) -> Option<u16>;
    /// Forgets the stripped tag (the frame leaves without it).
    fn clear_stripped_tci(&mut self);
    /// Grows the data by `n` bytes at the front and returns all of it;
    /// `None`, with nothing changed, without headroom or when shared.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Drops `n` bytes from the front; false, with nothing changed, when the
    /// first segment is shorter or the buffer shared.
    fn adj(&mut self, n: usize) -> bool;
    /// Sets the length of a frame held in one segment to `len` bytes (the
    /// bytes past the old end are not cleared) and returns its data;
    /// `None`, with nothing changed, when the buffer is shared, chained,
    /// or has no room for `len` bytes behind its start.
    fn resize(&mut self, len: usize) -> Option<&mut [u8]>;
    /// What is left to finish of its checksum or segmentation
    /// (`offload`); none for a frame every byte of which is final.
    fn offload(&self) -> crate::offload::Offload;
    /// Records what is left to finish (`Offload::NONE`: nothing).
    fn set_offload(&mut self, o: crate::offload::Offload);
    /// A hint to start loading the first bytes of the data.
    #[inline(always)]
    fn prefetch(&self) {}
}

/// Up to [`BURST`] owned frames in a fixed array: what one rx call returns
/// and one tx call sends. Slots may be emptied while a burst is processed.
pub trait Burst: Default {
    type Frame: Frame;

    /// Slots in use, including emptied ones.
    fn len(&self) -> usize;

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    fn is_full(&self) -> bool {
        self.len() >= BURST
    }

    fn get(&self, i: usize) -> Option<&Self::Frame>;
    fn get_mut(&mut self, i: usize) -> Option<&mut Self::Frame>;
    /// Appends; gives the frame back when full.
    fn push(&mut self, f: Self::Frame) -> Result<(), Self::Frame>;
    /// Moves slot `i` out, leaving it empty.
    fn take(&mut self, i: usize) -> Option<Self::Frame>;
    /// Releases every frame still held (in one call to the device where it
    /// can) and empties the burst; returns how many.
    fn clear(&mut self) -> usize;
}

/// Where flood copies come from.
pub trait FramePool {
    type Frame: Frame;
    /// A new frame holding the same packet as `src` (every segment), or
    /// `None` when no buffer is left.
    fn copy_of(&mut self, src: &Self::Frame) -> Option<Self::Frame>;
}

/// The transmit side of a device: hands a port's output batch over.
pub trait Transmit<B: Burst> {
    /// Sends `batch` (holding `bytes` bytes) out of `port` and leaves it
    /// empty; what the device did not take is released and counted by the
    /// implementation.
    fn transmit(&mut self, port: crate::port::PortId, batch: &mut B, bytes: u64);
    /// `frames` meant for `port` could not be made (no buffer for a flood
    /// copy): counted as the port's transmit drops.
    fn lost(&mut self, port: crate::port::PortId, frames: u64);
    /// `frames` meant for `port` were longer than its MTU allows and were
    /// dropped: counted as the port's transmit drops (and, where the device
    /// keeps one, its oversize counter).
    fn oversize(&mut self, port: crate::port::PortId, frames: u64) {
        self.lost(port, frames);
    }
}

/// Frames and bursts over plain memory: for tests and benchmarks of the
/// pipeline without DPDK, and as the reference of what a device must do.
pub mod mem {
    use super::{Burst, Frame, FramePool, BURST};

    /// Headroom in front of a fresh frame, as DPDK's mbufs have.
    pub const HEADROOM: usize = 128;

    /// A frame in a `Vec`, with DPDK-like headroom and a stripped tag.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct MemFrame {
        buf: Vec<u8>,
        start: usize,
        /// The NIC stripped this outer tag into metadata.
        pub stripped: Option<u16>,
        /// Shared with another owner: writes are refused.
        pub shared: bool,
        /// What is left to finish (an input with offloads set it).
        pub offload: crate::offload::Offload,
    }

    impl MemFrame {
        pub fn new(bytes: &[u8]) -> MemFrame {
            let mut buf = vec![0u8; HEADROOM];
            buf.extend_from_slice(bytes);
            MemFrame {
                buf,
                start: HEADROOM,
                stripped: None,
                shared: false,
                offload: crate::offload::Offload::NONE,
            }
        }

        /// A frame whose outer tag the NIC already stripped.
        pub fn with_stripped(bytes: &[u8], tci: u16) -> MemFrame {
            MemFrame {
                stripped: Some(tci),
                ..MemFrame::new(bytes)
            }
        }

        pub fn bytes(&self) -> &[u8] {
            &self.buf[self.start..]
        }
    }

    impl Frame for MemFrame {
        fn data(&self) -> &[u8] {
            self.bytes()
        }
        fn data_mut(&mut self) -> Option<&mut [u8]> {
            (!self.shared).then(|| &mut self.buf[self.start..])
        }
        fn pkt_len(&self) -> u32 {
            (self.buf.len() - self.start) as u32
        }
        fn stripped_tci(&self) -> Option<u16> {
            self.stripped
        }
        fn clear_stripped_tci(&mut self) {
            self.stripped = None;
        }
        fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
            if self.shared || self.start < n {
                return None;
            }
            self.start -= n;
            self.data_mut()
        }
        fn offload(&self) -> crate::offload::Offload {
            self.offload
        }
        fn set_offload(&mut self, o: crate::offload::Offload) {
            self.offload = o;
        }
        fn resize(&mut self, len: usize) -> Option<&mut [u8]> {
            if self.shared {
                return None;
            }
            self.buf.resize(self.start + len, 0);
            self.data_mut()
        }
        fn adj(&mut self, n: usize) -> bool {
            if self.shared || self.buf.len() - self.start < n {
                return false;
            }
            self.start += n;
            true
        }
    }

    /// A burst of [`MemFrame`]s; counts what it released.
    #[derive(Debug, Default)]
    pub struct MemBurst {
        slots: Vec<Option<MemFrame>>,
        /// Frames released by [`Burst::clear`] over the burst's life.
        pub released: usize,
    }

    impl MemBurst {
        pub fn from_frames(frames: impl IntoIterator<Item = MemFrame>) -> MemBurst {
            let mut b = MemBurst::default();
            for f in frames {
                assert!(b.push(f).is_ok(), "more than BURST frames");
            }
            b
        }

        /// The frames still held, in slot order.
        pub fn frames(&self) -> impl Iterator<Item = &MemFrame> {
            self.slots.iter().flatten()
        }
    }

    impl Burst for MemBurst {
        type Frame = MemFrame;
        fn len(&self) -> usize {
            self.slots.len()
        }
        fn get(&self, i: usize) -> Option<&MemFrame> {
            self.slots.get(i)?.as_ref()
        }
        fn get_mut(&mut self, i: usize) -> Option<&mut MemFrame> {
            self.slots.get_mut(i)?.as_mut()
        }
        fn push(&mut self, f: MemFrame) -> Result<(), MemFrame> {
            if self.slots.len() >= BURST {
                return Err(f);
            }
            self.slots.push(Some(f));
            Ok(())
        }
        fn take(&mut self, i: usize) -> Option<MemFrame> {
            self.slots.get_mut(i)?.take()
        }
        fn clear(&mut self) -> usize {
            let n = self.slots.iter().flatten().count();
            self.slots.clear();
            self.released += n;
            n
        }
    }

    /// Copies for floods, with an optional limit to test running out.
    #[derive(Debug, Default)]
    pub struct MemPool {
        /// Copies left; `None` = unlimited.
        pub left: Option<usize>,
        pub copies: usize,
    }

    impl FramePool for MemPool {
        type Frame = MemFrame;
        fn copy_of(&mut self, src: &MemFrame) -> Option<MemFrame> {
            if let Some(left) = &mut self.left {
                *left = left.checked_sub(1)?;
            }
            self.copies += 1;
            Some(MemFrame::new(src.bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mem::*;
    use super::*;

    #[test]
    fn mem_frame_front_ops() {
        let mut f = MemFrame::new(&[1, 2, 3]);
        assert_eq!(f.pkt_len(), 3);
        assert_eq!(f.prepend(2).map(|d| d.len()), Some(5));
        assert!(f.adj(4));
        assert_eq!(f.data(), &[3]);
        assert!(!f.adj(2), "shorter than asked");
        assert!(f.prepend(mem::HEADROOM + 10).is_none());
        f.shared = true;
        assert!(f.data_mut().is_none() && f.prepend(1).is_none() && !f.adj(1));
    }

    #[test]
    fn mem_burst_bookkeeping() {
        let mut b = MemBurst::default();
        for i in 0..BURST {
            assert!(b.push(MemFrame::new(&[i as u8])).is_ok());
        }
        assert!(b.is_full());
        assert!(b.push(MemFrame::new(&[0])).is_err());
        assert_eq!(b.take(3).map(|f| f.data()[0]), Some(3));
        assert!(b.get(3).is_none());
        assert_eq!(b.clear(), BURST - 1);
        assert!(b.is_empty());
        assert_eq!(b.released, BURST - 1);
    }
}
