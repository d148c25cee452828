//! Stages 2 and 3: carry a burst's actions out into per-port output
//! batches, and transmit them.
use super::{Action, Classified, DropReason, FloodSet, TagAction};
use crate::frame::{Burst, Frame, FramePool, Transmit};
use crate::offload::wire_len;
use crate::port::{PortId, PortMask, MAX_PORTS};
use crate::view::SwitchView;
use crate::wire::vlan::{insert_tag_with, remove_outer_tag, set_outer_tci, HEADER_LEN as TAG_LEN};
use crate::wire::{EtherType, Tci};

/// What one burst did, for the worker's counters (kept once per burst).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BurstCounts {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Received and sent nowhere.
    pub rx_dropped: u64,
    pub malformed: u64,
    pub vlan_violation: u64,
    pub link_local: u64,
    pub no_output: u64,
    /// Frames (or copies) longer than their output port's MTU allows.
    pub oversize: u64,
    pub spoofed: u64,
    pub denied: u64,
    pub ct_invalid: u64,
    /// Sent nowhere by the flow tables.
    pub flow_drop: u64,
    /// Flood copies that could not be made.
    pub no_mbuf: u64,
}

impl BurstCounts {
    #[inline(always)]
    pub(super) fn dropped(&mut self, reason: DropReason) {
        self.rx_dropped += 1;
        match reason {
            DropReason::Malformed => self.malformed += 1,
            DropReason::VlanViolation => self.vlan_violation += 1,
            DropReason::LinkLocal => self.link_local += 1,
            DropReason::NoOutput => self.no_output += 1,
            DropReason::Spoofed => self.spoofed += 1,
            DropReason::Denied => self.denied += 1,
            DropReason::CtInvalid => self.ct_invalid += 1,
            DropReason::FlowTable => self.flow_drop += 1,
        }
    }
}

/// A worker's output batches, one per port, plus the frames to release.
/// Sized once; nothing grows later.
pub struct Outputs<B: Burst> {
    batches: Box<[B; MAX_PORTS]>,
    bytes: [u64; MAX_PORTS],
    pending: PortMask,
    discarded: B,
}

impl<B: Burst> Default for Outputs<B> {
    fn default() -> Self {
        Outputs {
            batches: Box::new(std::array::from_fn(|_| B::default())),
            bytes: [0; MAX_PORTS],
            pending: PortMask::EMPTY,
            discarded: B::default(),
        }
    }
}

impl<B: Burst> Outputs<B> {
    /// Queues `f` for `port`; a batch that fills up is transmitted at once.
    #[inline(always)]
    pub fn enqueue<T: Transmit<B>>(&mut self, port: PortId, f: B::Frame, tx: &mut T) {
        let i = port.index();
        self.bytes[i] += u64::from(f.pkt_len());
        self.pending.insert(port);
        if let Err(f) = self.batches[i].push(f) {
            // Cannot happen (a full batch is sent below); never lose it silently.
            tx.lost(port, 1);
            self.discard(f);
        }
        if self.batches[i].is_full() {
            self.transmit(port, tx);
        }
    }

    /// Sends `port`'s batch now.
    #[inline(always)]
    fn transmit<T: Transmit<B>>(&mut self, port: PortId, tx: &mut T) {
        let i = port.index();
        self.pending.remove(port);
        let bytes = std::mem::take(&mut self.bytes[i]);
        if !self.batches[i].is_empty() {
            tx.transmit(port, &mut self.batches[i], bytes);
        }
    }

    /// Stage 3: every pending batch to its port, once.
    #[inline(always)]
    pub fn flush<T: Transmit<B>>(&mut self, tx: &mut T) {
        let mut pending = self.pending;
        while let Some(port) = pending.pop_first() {
            self.transmit(port, tx);
        }
    }

    /// Sends `port`'s batch now (before its transmit side goes away).
    pub fn flush_port<T: Transmit<B>>(&mut self, port: PortId, tx: &mut T) {
        if self.pending.contains(port) {
            self.transmit(port, tx);
        }
    }

    /// Releases `port`'s queued frames without sending them; how many.
    pub fn discard_port(&mut self, port: PortId) -> usize {
        self.pending.remove(port);
        self.bytes[port.index()] = 0;
        self.batches[port.index()].clear()
    }

    /// Ports with frames queued.
    pub fn pending(&self) -> PortMask {
        self.pending
    }

    /// Queues `f` to be released with the burst's other drops.
    #[inline(always)]
    pub fn discard(&mut self, f: B::Frame) {
        if let Err(f) = self.discarded.push(f) {
            self.discarded.clear();
            // Room now; were there none, dropping `f` releases it anyway.
            let _ = self.discarded.push(f);
        }
    }

    /// Releases everything discarded (once per burst).
    #[inline(always)]
    pub fn release_discarded(&mut self) {
        if !self.discarded.is_empty() {
            self.discarded.clear();
        }
    }
}

/// Applies a tag edit to a frame's bytes; false, with the frame unchanged,
/// when it cannot be made (no headroom, shared buffer, truncated frame).
#[inline(always)]
pub fn apply_tag<F: Frame>(f: &mut F, action: TagAction) -> bool {
    match action {
        TagAction::Keep => true,
        TagAction::Set(tci) => f
            .data_mut()
            .is_some_and(|d| set_outer_tci(d, Tci(tci)).is_ok()),
        TagAction::Pop => {
            f.data_mut().is_some_and(|d| remove_outer_tag(d).is_ok()) && f.adj(TAG_LEN)
        }
        TagAction::Push(tci) => push_tag(f, EtherType::VLAN, tci),
    }
}

/// Pushes a tag with `tpid` and `tci` in front of the frame's tags
/// (`push_vlan` takes an S-tag's TPID too).
pub(super) fn push_tag<F: Frame>(f: &mut F, tpid: EtherType, tci: u16) -> bool {
    let Some(d) = f.prepend(TAG_LEN) else {
        return false;
    };
    if insert_tag_with(d, tpid, Tci(tci)).is_ok() {
        return true;
    }
    // Undo the room made for the tag.
    f.adj(TAG_LEN);
    false
}

/// Stage 2: carries out `classified`'s actions on the burst `rx` it was
/// made from (with `view`, the snapshot it was classified in), into `out`;
/// batches that fill up go through `tx` at once.
///
/// Contract: consumes every frame of `rx` (it is empty afterwards): each
/// goes to one output batch, is copied to several (`pool` makes the
/// copies, whole, however many segments the frame has; the original goes
/// to the last port), or is released with the burst's drops. Frames are
/// tag-edited as their action says, a stripped tag counting as part of the
/// frame. A frame (or copy) longer than its output port's `max_frame` after
/// the edit is dropped and counted through `tx.oversize`, never cut. A
/// burst whose frames all go to one port unchanged moves as a whole,
/// without touching a frame (a full one straight to `tx`).
#[inline(always)]
pub fn execute<B, P, T>(
    view: &SwitchView,
    classified: &Classified,
    rx: &mut B,
    out: &mut Outputs<B>,
    pool: &mut P,
    tx: &mut T,
) -> BurstCounts
where
    B: Burst,
    P: FramePool<Frame = B::Frame>,
    T: Transmit<B>,
{
    let actions = classified.actions();
    let mut c = BurstCounts {
        rx_packets: actions.len() as u64,
        rx_bytes: classified.rx_bytes(),
        ..BurstCounts::default()
    };
    if let Some(p) = classified.moves_whole() {
        let i = p.index();
        if out.batches[i].is_empty() && rx.len() == actions.len() {
            if rx.is_full() {
                // A full batch goes at once, as `enqueue`'s do.
                tx.transmit(p, rx, c.rx_bytes);
            } else {
                std::mem::swap(&mut out.batches[i], rx);
                out.bytes[i] += c.rx_bytes;
                out.pending.insert(p);
            }
            return c;
        }
    }
    for (i, &action) in actions.iter().enumerate() {
        let Some(mut f) = rx.take(i) else { continue };
        let (p, tag) = match action {
            Action::Output(p, tag) => (p, tag),
            // The switch's answer leaves the port it came from as it is.
            Action::Answer(p) => (p, TagAction::Keep),
            Action::Flood(n) => {
                match classified.floods.get(n) {
                    Some(set) => flood(view, set, f, out, pool, tx, &mut c),
                    None => {
                        c.dropped(DropReason::NoOutput);
                        out.discard(f);
                    }
                }
                continue;
            }
            Action::Drop(reason) => {
                c.dropped(reason);
                out.discard(f);
                continue;
            }
        };
        let tag = match f.stripped_tci() {
            None => tag,
            Some(t) => {
                f.clear_stripped_tci();
                tag.on_data(Some(t))
            }
        };
        if !apply_tag(&mut f, tag) {
            c.dropped(DropReason::Malformed);
            out.discard(f);
        } else if wire_len(f.data(), f.pkt_len(), f.offload()) > view.max_frame(p) {
            c.oversize += 1;
            c.rx_dropped += 1;
            tx.oversize(p, 1);
            out.discard(f);
        } else {
            out.enqueue(p, f, tx);
        }
    }
    // Every slot was taken: this only resets the burst.
    rx.clear();
    out.release_discarded();
    c
}

/// Sends `f` to every port of `set`: a copy per port but the last, which
/// gets the frame itself. A port whose MTU the frame exceeds gets nothing.
#[inline]
fn flood<B, P, T>(
    view: &SwitchView,
    set: &FloodSet,
    mut f: B::Frame,
    out: &mut Outputs<B>,
    pool: &mut P,
    tx: &mut T,
    c: &mut BurstCounts,
) where
    B: Burst,
    P: FramePool<Frame = B::Frame>,
    T: Transmit<B>,
{
    let stripped = f.stripped_tci();
    if stripped.is_some() {
        f.clear_stripped_tci();
    }
    let Some((&(last, last_tag), rest)) = set.targets().split_last() else {
        c.dropped(DropReason::NoOutput);
        out.discard(f);
        return;
    };
    // What a tag edit makes of the length: one tag more or less (of each
    // segment's, for a TCP segment still to be cut).
    let len = wire_len(f.data(), f.pkt_len(), f.offload());
    let fits = |p: PortId, tag: TagAction| {
        let out_len = match tag.on_data(stripped) {
            TagAction::Push(_) => len + TAG_LEN as u32,
            TagAction::Pop => len.saturating_sub(TAG_LEN as u32),
            TagAction::Keep | TagAction::Set(_) => len,
        };
        out_len <= view.max_frame(p)
    };
    let mut sent = false;
    for &(p, tag) in rest {
        if !fits(p, tag) {
            c.oversize += 1;
            tx.oversize(p, 1);
            continue;
        }
        match pool.copy_of(&f) {
            Some(mut copy) => {
                if apply_tag(&mut copy, tag.on_data(stripped)) {
                    out.enqueue(p, copy, tx);
                    sent = true;
                } else {
                    c.malformed += 1;
                    out.discard(copy);
                }
            }
            None => {
                c.no_mbuf += 1;
                tx.lost(p, 1);
            }
        }
    }
    if !fits(last, last_tag) {
        c.oversize += 1;
        tx.oversize(last, 1);
        if !sent {
            c.rx_dropped += 1;
        }
        out.discard(f);
    } else if apply_tag(&mut f, last_tag.on_data(stripped)) {
        out.enqueue(last, f, tx);
    } else {
        c.dropped(DropReason::Malformed);
        out.discard(f);
    }
}
