//! Stage 1: one resolved action per frame of a burst.
use super::{Action, DropReason, FloodSets, TagAction};
use crate::frame::{Burst, Frame, BURST};
use crate::mac_table::{BurstTable, MacKey};
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
                Step::Lookup => return Some(lane.ctx.vlan()),
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
    /// The VLAN and the arriving outer TCI, packed ([`Context`]).
    ctx: Context,
    /// The unicast source to learn (`MacKey::NONE`: none).
    src: MacKey,
    /// The unicast destination to look up (`MacKey::NONE`: flood).
    dst: MacKey,
}

impl Lane {
    const DECIDED: Lane = Lane {
        step: Step::Decided,
        ctx: Context(0),
        src: MacKey::NONE,
        dst: MacKey::NONE,
    };
}

/// A frame's VLAN (bits 0..12), its arriving outer TCI (bits 12..28) and
/// whether it had one (bit 28), in one word: with the output port below
/// it, the key under which pass 2 reuses an egress action.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Context(u32);

impl Context {
    #[inline(always)]
    fn new(vlan: u16, in_tci: Option<u16>) -> Context {
        let tci = in_tci.map_or(0, |t| (1 << 16) | u32::from(t));
        Context(u32::from(vlan & 0x0fff) | tci << 12)
    }

    #[inline(always)]
    fn vlan(self) -> u16 {
        (self.0 & 0x0fff) as u16
    }

    #[inline(always)]
    fn in_tci(self) -> Option<u16> {
        (self.0 >> 28 != 0).then_some((self.0 >> 12) as u16)
    }

    /// The reuse key of a frame in this context whose destination is on `port`.
    #[inline(always)]
    fn output_key(self, port: PortId) -> u64 {
        u64::from(self.0) << 16 | u64::from(port.get())
    }
}

/// The window the bytes an L2 decision depends on lie in: the first 16
/// bytes, which hold the two addresses and the EtherType, and for a tagged
/// frame the outer TCI (what the parser reads). Whatever follows (inner
/// tags, the IP header, the payload, the length) changes nothing, so two
/// frames with equal windows get the same decision from the same table;
/// the output port's MTU is checked per frame later. Frames shorter than a
/// whole tag (18 bytes: a partial tag is malformed) and frames with a tag
/// stripped by the NIC have no window: each is decided on its own.
#[inline(always)]
fn header_window(f: &impl Frame) -> Option<u128> {
    if f.stripped_tci().is_some() {
        return None;
    }
    let d = f.data();
    if d.len() < MIN_TAGGED_LEN {
        return None;
    }
    // In little-endian order byte i of the window is bits 8i..8i+8.
    Some(u128::from_le_bytes(*d.first_chunk::<16>()?))
}

/// How many frames ahead of the one being decided [`classify`] prefetches
/// MAC buckets.
const PREFETCH_AHEAD: usize = 8;

/// Starts loading the buckets a lane will learn and look up in. A lane
/// without a key has `MacKey::NONE` (bucket 0) there, and a lane classify
/// decided in pass 1 whatever an earlier burst left: a prefetch is only a
/// hint, so checking costs more than the odd useless one.
#[inline(always)]
fn prefetch_lane(fdb: &BurstTable, lane: &Lane) {
    fdb.prefetch(lane.src);
    fdb.prefetch(lane.dst);
}

/// The addresses (as [`EthernetAddress::to_u64`] packs them) and the outer
/// TCI of a frame with header window `key`: what [`SwitchingHeader::parse`]
/// reads, taken from the 16 bytes already loaded.
#[inline(always)]
fn header_fields(key: u128) -> (u64, u64, Option<u16>) {
    const MAC: u64 = 0xffff_ffff_ffff;
    // Byte i of the window is bits 8i..8i+8: an address's first byte is
    // its lowest, so a byte swap makes it the most significant.
    let dst = ((key as u64) & MAC).swap_bytes() >> 16;
    let src = (((key >> 48) as u64) & MAC).swap_bytes() >> 16;
    // The EtherType as it lies in the window, compared with the TPIDs in
    // that order (no swap).
    let ethertype = (key >> 96) as u16;
    let tpid = |t: EtherType| ethertype == t.0.swap_bytes();
    let tci = (tpid(EtherType::VLAN) || tpid(EtherType::QINQ))
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
/// rules and hashes the MAC keys of the whole burst (asking for the first
/// [`PREFETCH_AHEAD`] frames' buckets as it goes); the second learns, looks
/// up and resolves frame by frame, loading the buckets of the frame
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
    let fdb = bridge.fdb.for_burst();
    // The frames' lengths sit in the buffer headers the prefetches read.
    let mut longest = 0u32;
    let mut rx_bytes = 0u64;
    for i in 0..n {
        if let Some(f) = rx.get(i) {
            f.prefetch();
            let len = f.pkt_len();
            rx_bytes += u64::from(len);
            longest = longest.max(len);
        }
    }
    out.rx_bytes = rx_bytes;

    // Pass 1: parse, VLAN rules, keys.
    let forward_bpdu = bridge.forward_bpdu;
    let mut stripped_any = false;
    let mut previous = None;
    // Every frame after the first repeats its predecessor's header (one
    // flow, or flows between the same two MACs): pass 2 decides one frame.
    let mut one_header = true;
    let pass1 = out.lanes[..n].iter_mut().zip(&mut out.actions[..n]);
    for (i, (lane, action)) in pass1.enumerate() {
        // Dropped unless found otherwise.
        lane.step = Step::Decided;
        let Some(f) = rx.get(i) else {
            *action = Action::Drop(DropReason::Malformed);
            previous = None;
            one_header = false;
            continue;
        };
        let window = header_window(f);
        if window.is_some() && window == previous {
            lane.step = Step::AsPrevious;
            continue;
        }
        one_header &= i == 0;
        previous = window;
        let (dst, src, in_tci) = match window {
            Some(w) => header_fields(w),
            // A stripped tag, or short: the parser decides.
            None => {
                let stripped = f.stripped_tci();
                stripped_any |= stripped.is_some();
                let Ok(h) = SwitchingHeader::parse(f.data(), stripped) else {
                    *action = Action::Drop(DropReason::Malformed);
                    continue;
                };
                (h.dst.to_u64(), h.src.to_u64(), h.outer_tci)
            }
        };
        let Some(vlan) = port.vlan.ingress(in_tci.map(|t| t & 0x0fff)) else {
            *action = Action::Drop(DropReason::VlanViolation);
            continue;
        };
        let dst = EthernetAddress::from_u64(dst);
        // As Open vSwitch: after the VLAN check, before learning.
        if !forward_bpdu && dst.is_reserved() {
            *action = Action::Drop(DropReason::LinkLocal);
            continue;
        }
        *lane = Lane {
            step: Step::Lookup,
            ctx: Context::new(vlan, in_tci),
            src: if EthernetAddress::from_u64(src).is_unicast() {
                fdb.key(vlan, src)
            } else {
                MacKey::NONE
            },
            dst: if dst.is_unicast() {
                fdb.key(vlan, dst.to_u64())
            } else {
                MacKey::NONE
            },
        };
        // The first frames' buckets load while pass 1 goes on, so that
        // pass 2 does not start by waiting for them.
        if i < PREFETCH_AHEAD {
            prefetch_lane(&fdb, lane);
        }
    }

    // Pass 2: learn, look up, resolve floods, in frame order.
    let members = view.reachable_from(in_port, bridge.ports);
    let remote = bridge.known.as_deref();
    // Whether every action so far is an output to `whole_port` with no tag
    // edit. Only a newly resolved action can change it: a frame that
    // reuses an action (its predecessor's or the last known destination's)
    // was checked with that action's first frame.
    let mut whole = true;
    let mut whole_port = None;
    let decide = if one_header { n.min(1) } else { n };
    // The buckets of the first frames were asked for in pass 1; each later
    // frame's are when the one PREFETCH_AHEAD before it is decided: a few
    // misses in flight at any time, overlapped with the decisions, instead
    // of the whole burst's queueing up for the core's miss slots at once.
    let lanes = &out.lanes[..decide];
    // The last known destination's output key (port, VLAN, arriving tag:
    // all `forward` reads of a frame) and its action: the same again (as
    // every frame of a burst between two ports is) costs one comparison
    // instead of the port's VLAN rules.
    let mut last: Option<(u64, Action)> = None;
    let mut previous_action = Action::Drop(DropReason::Malformed);
    for (i, (lane, action)) in lanes.iter().zip(&mut out.actions).enumerate() {
        if let Some(ahead) = lanes.get(i + PREFETCH_AHEAD) {
            prefetch_lane(&fdb, ahead);
        }
        let a = match lane.step {
            // A drop of pass 1.
            Step::Decided => {
                whole = false;
                *action
            }
            // Never frame 0: it has no previous header.
            Step::AsPrevious => previous_action,
            Step::Lookup => {
                if !lane.src.is_none() {
                    fdb.learn(lane.src, in_port);
                }
                let known = if lane.dst.is_none() {
                    None
                } else {
                    // l2population first: a remote port's MAC is where
                    // the model says, whatever was learned.
                    remote
                        .and_then(|k| k.remote_port(lane.dst.packed()))
                        .or_else(|| fdb.lookup(lane.dst))
                };
                let key = known.map(|p| lane.ctx.output_key(p));
                match last {
                    Some((seen, a)) if Some(seen) == key => a,
                    _ => {
                        let a = forward(
                            view,
                            &mut out.floods,
                            &members,
                            in_port,
                            known,
                            lane.ctx.vlan(),
                            lane.ctx.in_tci(),
                        );
                        if let Some(k) = key {
                            last = Some((k, a));
                        }
                        match a {
                            Action::Output(p, TagAction::Keep)
                                if whole_port.is_none_or(|w| w == p) =>
                            {
                                whole_port = Some(p)
                            }
                            _ => whole = false,
                        }
                        a
                    }
                }
            }
        };
        // Kept in a register: reading the action back would wait for the
        // stores of its fields to drain.
        *action = a;
        previous_action = a;
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
            if let Some(key) = header_window(&f) {
                let h = SwitchingHeader::parse(&bytes, None).unwrap();
                prop_assert_eq!(
                    header_fields(key),
                    (h.dst.to_u64(), h.src.to_u64(), h.outer_tci)
                );
            }
        }
    }
}
