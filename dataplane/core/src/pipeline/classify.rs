//! Stage 1: one resolved action per frame of a burst.
use super::{Action, DropReason, FloodSets, TagAction};
use crate::frame::{Burst, Frame, BURST};
use crate::mac_table::{MacKey, MacTable};
use crate::port::{PortId, PortMask};
use crate::view::SwitchView;
use crate::wire::ethernet::{SwitchingHeader, MIN_TAGGED_LEN};
use crate::wire::{EtherType, EthernetAddress};

/// What [`classify`] found for a burst: an action per frame, the burst's
/// flood sets, and what [`execute`](super::execute) needs to know up front.
/// Sized once; reused for every burst.
pub struct Classified {
    actions: [Action; BURST],
    /// Pass 1's findings for pass 2 (every frame's lane is written anew).
    lanes: [Lane; BURST],
    len: usize,
    /// The flood sets that `Action::Flood(n)` refers to.
    pub floods: FloodSets,
    rx_bytes: u64,
    /// The port every frame goes to unchanged, if they all do.
    whole: Option<PortId>,
}

impl Default for Classified {
    fn default() -> Self {
        Classified {
            actions: [Action::Drop(DropReason::Malformed); BURST],
            lanes: [Lane::DECIDED; BURST],
            len: 0,
            floods: FloodSets::default(),
            rx_bytes: 0,
            whole: None,
        }
    }
}

impl Classified {
    /// Frame i's action is `actions()[i]`.
    #[inline(always)]
    pub fn actions(&self) -> &[Action] {
        &self.actions[..self.len.min(BURST)]
    }

    /// Bytes received in the burst.
    #[inline(always)]
    pub fn rx_bytes(&self) -> u64 {
        self.rx_bytes
    }

    /// The VLAN frame `i` was classified into (the zone its connection is
    /// tracked in); `None` for a frame classify dropped.
    pub fn vlan_of(&self, i: usize) -> Option<u16> {
        let mut j = i;
        loop {
            let lane = self.lanes[..self.len.min(BURST)].get(j)?;
            match lane.step {
                Step::Lookup => return Some(lane.vlan),
                // Same header as its predecessor: same VLAN.
                Step::AsPrevious => j = j.checked_sub(1)?,
                Step::Decided => return None,
            }
        }
    }

    /// Replaces frame `i`'s action (a later stage refining it); the burst
    /// no longer moves whole.
    pub(super) fn set_action(&mut self, i: usize, action: Action) {
        if let Some(a) = self.actions[..self.len.min(BURST)].get_mut(i) {
            *a = action;
            self.whole = None;
        }
    }

    /// The port every frame of the burst goes to unchanged (no tag edit,
    /// no NIC-stripped tag to put back, none longer than the port's MTU
    /// allows), when they all do: the burst can then move as a whole.
    #[inline(always)]
    pub fn moves_whole(&self) -> Option<PortId> {
        self.whole
    }
}

/// What pass 2 does with a frame.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Its action is already known (dropped).
    Decided,
    /// Same decision inputs as the frame before it: same action.
    AsPrevious,
    /// Learn `src`, look up `dst`.
    Lookup,
}

/// A frame between the two passes of [`classify`]; small, so the burst's
/// lanes stay in a few cache lines.
#[derive(Clone, Copy)]
struct Lane {
    step: Step,
    vlan: u16,
    in_tci: Option<u16>,
    /// The unicast source to learn (`MacKey::NONE`: none).
    src: MacKey,
    /// The unicast destination to look up (`MacKey::NONE`: flood).
    dst: MacKey,
}

impl Lane {
    const DECIDED: Lane = Lane {
        step: Step::Decided,
        vlan: 0,
        in_tci: None,
        src: MacKey::NONE,
        dst: MacKey::NONE,
    };
}

/// The bytes an L2 decision depends on, which are exactly the bytes the
/// parser reads: the two addresses and the EtherType (14 bytes), and for a
/// tagged frame the outer TCI (16). Whatever follows (inner tags, the IP
/// header, the payload, the length) changes nothing, so two frames with
/// equal header keys get the same decision from the same table; the
/// output port's MTU is checked per frame later. Frames that could be
/// too short to parse (under 16 bytes, or tagged and under 18, where a
/// partial tag is malformed) and frames with a tag stripped by the NIC have
/// no key: each is decided on its own.
#[inline(always)]
fn header_key(f: &impl Frame) -> Option<u128> {
    if f.stripped_tci().is_some() {
        return None;
    }
    let d = f.data();
    let head = *d.first_chunk::<16>()?;
    // In little-endian order byte i of a window is bits 8i..8i+8.
    let a = u128::from_le_bytes(head);
    if !EtherType(u16::from_be_bytes([head[12], head[13]])).is_vlan_tpid() {
        // Untagged: bytes 0..14.
        return Some(a & (u128::MAX >> 16));
    }
    // Tagged: bytes 0..16 of a frame that holds the whole tag.
    (d.len() >= MIN_TAGGED_LEN).then_some(a)
}

/// Where a known destination's frame leaves and how it arrived: its output
/// port, VLAN and arriving tag, all [`forward`] reads of a frame.
type OutputKey = (PortId, u16, Option<u16>);

/// How many frames ahead of the one being decided [`classify`] prefetches
/// MAC buckets.
const PREFETCH_AHEAD: usize = 8;

/// Starts loading the buckets a lane will learn and look up in.
#[inline(always)]
fn prefetch_lane(fdb: &MacTable, lane: &Lane) {
    if lane.step == Step::Lookup {
        if !lane.src.is_none() {
            fdb.prefetch(lane.src);
        }
        if !lane.dst.is_none() {
            fdb.prefetch(lane.dst);
        }
    }
}

/// The addresses (as [`EthernetAddress::to_u64`] packs them) and the outer
/// TCI of a frame with header key `key`: what [`SwitchingHeader::parse`]
/// reads, taken from the 16 bytes already loaded.
#[inline(always)]
fn header_fields(key: u128) -> (u64, u64, Option<u16>) {
    const MAC: u64 = 0xffff_ffff_ffff;
    // Byte i of the window is bits 8i..8i+8: an address's first byte is
    // its lowest, so a byte swap makes it the most significant.
    let dst = ((key as u64) & MAC).swap_bytes() >> 16;
    let src = (((key >> 48) as u64) & MAC).swap_bytes() >> 16;
    let ethertype = ((key >> 96) as u16).swap_bytes();
    let tci = EtherType(ethertype)
        .is_vlan_tpid()
        .then(|| ((key >> 112) as u16).swap_bytes());
    (dst, src, tci)
}

/// Where a frame in `vlan` from `in_port` goes once the MAC table said
/// where its destination is (`known`) or that it does not know: to that
/// port, tagged as it wants the VLAN; nowhere if that is the input port,
/// not among `members` (the ports the frame may reach: a tunnel's frame
/// never goes to another tunnel) or not in the VLAN; else a flood over
/// `members` (resolved into `floods`).
#[inline(always)]
pub(super) fn forward(
    view: &SwitchView,
    floods: &mut FloodSets,
    members: &PortMask,
    in_port: PortId,
    known: Option<PortId>,
    vlan: u16,
    in_tci: Option<u16>,
) -> Action {
    match known {
        Some(p) if p == in_port || !members.contains(p) => Action::Drop(DropReason::NoOutput),
        Some(p) => match view.port(p).and_then(|o| o.vlan.egress(vlan)) {
            Some(eg) => Action::Output(p, TagAction::for_egress(in_tci, eg)),
            None => Action::Drop(DropReason::NoOutput),
        },
        None => floods.resolve(view, *members, in_port, vlan, in_tci),
    }
}

/// Classifies the burst `rx` that arrived on `in_port`, into `out`.
///
/// Contract: reads the frames and never changes them; learns the unicast
/// source of every frame it admits (parsed, in a VLAN of the port, not to a
/// link-local address) in the bridge's MAC table; leaves one action per frame in `out`
/// (frame i's at `out.actions()[i]`) with every flood resolved: a flood
/// to no port is a drop, to one port an output, to more an
/// `Action::Flood` of a set in `out.floods`. The actions are exactly those
/// of deciding each frame alone, in order (a frame with the same decision
/// inputs as its predecessor reuses its action instead of a second lookup).
///
/// Two passes: the first parses every frame, applies the input port's VLAN
/// rules and hashes the MAC keys of the whole burst; the second learns,
/// looks up and resolves frame by frame, loading the buckets of the frame
/// [`PREFETCH_AHEAD`] frames further on meanwhile.
pub fn classify<B: Burst>(view: &SwitchView, in_port: PortId, rx: &B, out: &mut Classified) {
    let n = rx.len().min(BURST);
    out.len = n;
    out.floods.clear();
    out.rx_bytes = 0;
    out.whole = None;
    let Some((port, bridge)) = view
        .port(in_port)
        .and_then(|p| Some((p, view.bridge(p.bridge)?)))
    else {
        // A port the snapshot does not know (any more): nowhere to go.
        for i in 0..n {
            out.rx_bytes += rx.get(i).map_or(0, |f| u64::from(f.pkt_len()));
        }
        out.actions[..n].fill(Action::Drop(DropReason::NoOutput));
        return;
    };
    let fdb = &*bridge.fdb;
    let clock = fdb.clock();
    for i in 0..n {
        if let Some(f) = rx.get(i) {
            f.prefetch();
        }
    }

    // Pass 1: parse, VLAN rules, keys.
    let mut stripped_any = false;
    let mut longest = 0u32;
    let mut rx_bytes = 0u64;
    let mut previous = None;
    // Every frame after the first repeats its predecessor's header (one
    // flow, or flows between the same two MACs): pass 2 decides one frame.
    let mut one_header = true;
    for (i, lane) in out.lanes[..n].iter_mut().enumerate() {
        // Dropped unless found otherwise.
        lane.step = Step::Decided;
        let Some(f) = rx.get(i) else {
            out.actions[i] = Action::Drop(DropReason::Malformed);
            previous = None;
            one_header = false;
            continue;
        };
        let len = f.pkt_len();
        rx_bytes += u64::from(len);
        longest = longest.max(len);
        let header = header_key(f);
        if header.is_some() && header == previous {
            lane.step = Step::AsPrevious;
            continue;
        }
        one_header &= i == 0;
        previous = header;
        let (dst, src, in_tci) = match header {
            Some(key) => header_fields(key),
            // A stripped tag, or short: the parser decides.
            None => {
                let stripped = f.stripped_tci();
                stripped_any |= stripped.is_some();
                let Ok(h) = SwitchingHeader::parse(f.data(), stripped) else {
                    out.actions[i] = Action::Drop(DropReason::Malformed);
                    continue;
                };
                (h.dst.to_u64(), h.src.to_u64(), h.outer_tci)
            }
        };
        let Some(vlan) = port.vlan.ingress(in_tci.map(|t| t & 0x0fff)) else {
            out.actions[i] = Action::Drop(DropReason::VlanViolation);
            continue;
        };
        // As Open vSwitch: after the VLAN check, before learning.
        if !bridge.forward_bpdu && EthernetAddress::from_u64(dst).is_reserved() {
            out.actions[i] = Action::Drop(DropReason::LinkLocal);
            continue;
        }
        let src = if EthernetAddress::from_u64(src).is_unicast() {
            fdb.key(vlan, src)
        } else {
            MacKey::NONE
        };
        let dst = if EthernetAddress::from_u64(dst).is_unicast() {
            fdb.key(vlan, dst)
        } else {
            MacKey::NONE
        };
        *lane = Lane {
            step: Step::Lookup,
            vlan,
            in_tci,
            src,
            dst,
        };
    }

    out.rx_bytes = rx_bytes;

    // Pass 2: learn, look up, resolve floods, in frame order.
    let members = view.reachable_from(in_port, bridge.ports);
    let mut whole = true;
    let mut whole_port = None;
    let decide = if one_header { n.min(1) } else { n };
    // The buckets of the first frames now, then each frame's when the one
    // PREFETCH_AHEAD before it is decided: a few misses in flight at any
    // time, overlapped with the decisions, instead of the whole burst's
    // queueing up for the core's miss slots at once.
    let lanes = &out.lanes[..decide];
    // The last known destination's port, the (VLAN, tag) it was reached
    // in and the action: the same again (as every frame of a burst between
    // two ports is) costs one comparison instead of the port's VLAN rules.
    let mut last: Option<(OutputKey, Action)> = None;
    for lane in lanes.iter().take(PREFETCH_AHEAD) {
        prefetch_lane(fdb, lane);
    }
    for (i, lane) in lanes.iter().enumerate() {
        if let Some(ahead) = lanes.get(i + PREFETCH_AHEAD) {
            prefetch_lane(fdb, ahead);
        }
        let action = match lane.step {
            Step::Decided => out.actions[i],
            // Never frame 0: it has no previous header.
            Step::AsPrevious => out.actions[i.saturating_sub(1)],
            Step::Lookup => {
                if !lane.src.is_none() {
                    fdb.learn_at(lane.src, in_port, clock);
                }
                let known = if lane.dst.is_none() {
                    None
                } else {
                    // l2population first: a remote port's MAC is where
                    // the model says, whatever was learned.
                    bridge
                        .known
                        .as_deref()
                        .and_then(|k| k.remote_port(lane.dst.packed()))
                        .or_else(|| fdb.lookup_at(lane.dst, clock))
                };
                let to = known.map(|p| (p, lane.vlan, lane.in_tci));
                match last {
                    Some((seen, a)) if Some(seen) == to => a,
                    _ => {
                        let a = forward(
                            view,
                            &mut out.floods,
                            &members,
                            in_port,
                            known,
                            lane.vlan,
                            lane.in_tci,
                        );
                        if let Some(t) = to {
                            last = Some((t, a));
                        }
                        a
                    }
                }
            }
        };
        out.actions[i] = action;
        if whole {
            match action {
                Action::Output(p, TagAction::Keep) if whole_port.is_none_or(|w| w == p) => {
                    whole_port = Some(p)
                }
                _ => whole = false,
            }
        }
    }
    if one_header && n > 1 {
        let first = out.actions[0];
        out.actions[1..n].fill(first);
    }
    out.whole = whole_port.filter(|&p| whole && !stripped_any && longest <= view.max_frame(p));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::mem::MemFrame;
    use proptest::prelude::*;

    proptest! {
        /// The fields taken from a header key are the parser's, for
        /// frames with a key (TPIDs made likely, so tagged frames occur).
        #[test]
        fn header_fields_are_what_the_parser_reads(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..24),
            tpid in 0usize..4,
        ) {
            if bytes.len() >= 14 {
                let t: [u8; 2] = [[0x81, 0x00], [0x88, 0xa8], [0x08, 0x00], [bytes[12], bytes[13]]][tpid];
                bytes[12..14].copy_from_slice(&t);
            }
            let f = MemFrame::new(&bytes);
            if let Some(key) = header_key(&f) {
                let h = SwitchingHeader::parse(&bytes, None).unwrap();
                prop_assert_eq!(
                    header_fields(key),
                    (h.dst.to_u64(), h.src.to_u64(), h.outer_tci)
                );
            }
        }
    }
}
