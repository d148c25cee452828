//! Stage 0: the bridge's flow tables, for a bridge that has flows other
//! than the default `priority=0 actions=NORMAL` (any other bridge skips
//! this stage with one test per burst).
//!
//! Every frame is looked up from table 0 ([`FlowTables::translate`]) and
//! its translation carried out at once, in order: header edits on the
//! frame's bytes, and emissions, each of which sends the frame as the
//! edits before it made it (a copy for every emission but the last).
//! Frames emitted to `NORMAL` are gathered into a burst of their own that
//! the worker then runs through the L2 stages ([`classify`](super::classify)
//! and the rest), where the input port's VLAN rules and the MAC table
//! apply to the frame as the flows left it, as in Open vSwitch.
//! Frames sent out directly by a flow bypass the L2 stages, and with them
//! the security stage: flows are the operator's, as in OVS.
use super::execute::{apply_tag, BurstCounts};
use super::{DropReason, Outputs, TagAction};
use crate::flow_key::FlowKey;
use crate::flow_table::classifier::{FlowCache, PacketFields};
use crate::flow_table::program::{Edit, Emit, FlowTables, Op, Translation};
use crate::frame::{Burst, Frame, FramePool, Transmit, BURST};
use crate::offload::wire_len;
use crate::port::{PortId, PortMask};
use crate::view::SwitchView;
use crate::wire::ethernet::SwitchingHeader;
use crate::wire::vlan::set_outer_tci;
use crate::wire::Tci;

/// A worker's state for the flow stage: its exact-match cache, a
/// translation to fill and each frame's key between the two passes.
/// Sized once.
pub struct FlowScratch {
    pub cache: FlowCache,
    translation: Translation,
    /// Frame i's key and first lookup's fields, when it parsed (`ready`).
    keys: Box<[FlowKey; BURST]>,
    placed: Box<[Option<PacketFields>; BURST]>,
}

impl Default for FlowScratch {
    fn default() -> Self {
        FlowScratch {
            cache: FlowCache::default(),
            translation: Translation::default(),
            keys: Box::new([FlowKey::default(); BURST]),
            placed: Box::new([None; BURST]),
        }
    }
}

/// Carries out one edit on a frame's bytes; false if it cannot be made.
#[inline]
pub(super) fn apply_edit<F: Frame>(f: &mut F, e: Edit) -> bool {
    let tci = match SwitchingHeader::parse(f.data(), None) {
        Ok(h) => h.outer_tci,
        Err(_) => return false,
    };
    match (e, tci) {
        (Edit::SetVid(vid), Some(t)) => f
            .data_mut()
            .is_some_and(|d| set_outer_tci(d, Tci((t & 0xf000) | (vid & 0x0fff))).is_ok()),
        (Edit::SetVid(vid), None) => apply_tag(f, TagAction::Push(vid & 0x0fff)),
        (Edit::SetPcp(pcp), Some(t)) => f.data_mut().is_some_and(|d| {
            set_outer_tci(d, Tci((t & 0x1fff) | (u16::from(pcp & 7) << 13))).is_ok()
        }),
        (Edit::SetPcp(pcp), None) => apply_tag(f, TagAction::Push(u16::from(pcp & 7) << 13)),
        (Edit::StripVlan, Some(_)) => apply_tag(f, TagAction::Pop),
        (Edit::StripVlan, None) => true,
        (Edit::SetDlDst(a), _) => f.data_mut().is_some_and(|d| match d.get_mut(0..6) {
            Some(x) => {
                x.copy_from_slice(&a.0);
                true
            }
            None => false,
        }),
        (Edit::SetDlSrc(a), _) => f.data_mut().is_some_and(|d| match d.get_mut(6..12) {
            Some(x) => {
                x.copy_from_slice(&a.0);
                true
            }
            None => false,
        }),
    }
}

/// What an emission reaches: the ports it sends to directly, or NORMAL.
#[inline(always)]
pub(super) fn targets(emit: Emit, in_port: PortId, members: PortMask) -> Option<PortMask> {
    let mut m = PortMask::EMPTY;
    match emit {
        Emit::Normal => return None,
        // OpenFlow: an output to the input port goes nowhere; `in_port`
        // is how a flow sends a frame back.
        Emit::Port(p) if p == in_port => {}
        Emit::Port(p) if members.contains(p) => m.insert(p),
        Emit::Port(_) => {}
        Emit::InPort => m.insert(in_port),
        Emit::Flood | Emit::All => m = members.without(in_port),
    }
    Some(m)
}

/// Runs the burst `rx` from `in_port` through `tables` (its bridge's):
/// frames sent out by flows are queued in `out` (copies from `pool`),
/// frames emitted to NORMAL are moved into `normal` (empty on entry) for
/// the L2 stages, the rest are released. Returns the burst's counts: every
/// frame received, and the drops of this stage (a frame no flow emits is
/// a `flow_drop`).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn flows<B, P, T>(
    view: &SwitchView,
    tables: &FlowTables,
    scratch: &mut FlowScratch,
    worker: usize,
    in_port: PortId,
    rx: &mut B,
    normal: &mut B,
    out: &mut Outputs<B>,
    pool: &mut P,
    tx: &mut T,
) -> BurstCounts
where
    B: Burst,
    P: FramePool<Frame = B::Frame>,
    T: Transmit<B>,
{
    let n = rx.len().min(BURST);
    let mut c = BurstCounts {
        rx_packets: n as u64,
        ..BurstCounts::default()
    };
    let members = view
        .port(in_port)
        .and_then(|p| view.bridge(p.bridge))
        .map_or(PortMask::EMPTY, |b| b.ports);
    for i in 0..n {
        if let Some(f) = rx.get(i) {
            f.prefetch();
        }
    }
    // Pass 1: every frame's key, and its first lookup's cache bucket
    // prefetched, before any lookup.
    for (i, (key, placed)) in scratch.keys[..n]
        .iter_mut()
        .zip(scratch.placed[..n].iter_mut())
        .enumerate()
    {
        *placed = None;
        let Some(f) = rx.get_mut(i) else { continue };
        // A tag the NIC stripped is part of the frame the flows see.
        if let Some(t) = f.stripped_tci() {
            f.clear_stripped_tci();
            if !apply_tag(f, TagAction::Push(t)) {
                continue;
            }
        }
        // As far as the frame parses: a bad L3 header still has L2 fields.
        let parsed = FlowKey::extract_l4_chained(f.data(), f.pkt_len() as usize, None)
            .or_else(|_| FlowKey::extract_l2(f.data(), None));
        if let Ok(k) = parsed {
            *key = k;
            *placed = Some(tables.place(&scratch.cache, in_port, key));
        }
    }
    // Pass 2: translate and carry out, in frame order.
    let FlowScratch {
        cache,
        translation: t,
        keys,
        placed,
    } = scratch;
    for i in 0..n {
        let Some(mut f) = rx.take(i) else { continue };
        let len = f.pkt_len();
        c.rx_bytes += u64::from(len);
        let (Some(key), Some(Some(placed))) = (keys.get(i), placed.get(i)) else {
            c.dropped(DropReason::Malformed);
            out.discard(f);
            continue;
        };
        tables.translate(cache, worker, in_port, key, placed, t);
        tables.count(worker, t.hits(), u64::from(len));
        if t.overflow {
            c.dropped(DropReason::FlowTable);
            out.discard(f);
            continue;
        }
        let ops = t.ops();
        let Some(last) = ops.iter().rposition(|o| matches!(o, Op::Emit(_))) else {
            c.dropped(DropReason::FlowTable);
            out.discard(f);
            continue;
        };
        let mut sent = false;
        let mut broken = false;
        for &op in &ops[..last] {
            match op {
                Op::Edit(e) => {
                    if !apply_edit(&mut f, e) {
                        broken = true;
                        break;
                    }
                }
                Op::Emit(e) => match pool.copy_of(&f) {
                    Some(copy) => {
                        sent |= emit(
                            view, e, in_port, members, copy, normal, out, pool, tx, &mut c,
                        )
                    }
                    None => c.no_mbuf += 1,
                },
            }
        }
        if broken {
            c.dropped(DropReason::Malformed);
            out.discard(f);
            continue;
        }
        let oversize = c.oversize;
        if let Some(&Op::Emit(e)) = ops.get(last) {
            sent |= emit(view, e, in_port, members, f, normal, out, pool, tx, &mut c);
        }
        if !sent {
            // Sent nowhere: too long for every port it was for, or for no
            // port at all (an output to the input port, to a port gone).
            c.rx_dropped += 1;
            c.flow_drop += u64::from(c.oversize == oversize);
        }
    }
    rx.clear();
    c
}

/// Sends `f` where `e` says (a copy from `pool` for every port but the
/// last); true if it went somewhere.
#[allow(clippy::too_many_arguments)]
#[inline]
fn emit<B, P, T>(
    view: &SwitchView,
    e: Emit,
    in_port: PortId,
    members: PortMask,
    f: B::Frame,
    normal: &mut B,
    out: &mut Outputs<B>,
    pool: &mut P,
    tx: &mut T,
    c: &mut BurstCounts,
) -> bool
where
    B: Burst,
    P: FramePool<Frame = B::Frame>,
    T: Transmit<B>,
{
    let Some(ports) = targets(e, in_port, members) else {
        return match normal.push(f) {
            Ok(()) => true,
            Err(f) => {
                // More NORMAL emissions than a burst holds.
                c.no_output += 1;
                out.discard(f);
                false
            }
        };
    };
    let len = wire_len(f.data(), f.pkt_len(), f.offload());
    let mut fits = ports;
    for p in ports.iter() {
        if len > view.max_frame(p) {
            fits.remove(p);
            c.oversize += 1;
            tx.oversize(p, 1);
        }
    }
    let Some(last) = fits.iter().last() else {
        out.discard(f);
        return false;
    };
    for p in fits.without(last).iter() {
        match pool.copy_of(&f) {
            Some(copy) => out.enqueue(p, copy, tx),
            None => {
                c.no_mbuf += 1;
                tx.lost(p, 1);
            }
        }
    }
    out.enqueue(last, f, tx);
    true
}
