//! Stage 1: one resolved action per frame of a burst.
use super::{Action, DropReason, FloodSets, TagAction};
use crate::frame::{Burst, Frame, BURST};
use crate::mac_table::{self, BurstTable, Learned, MacKey};
use crate::port::{PortId, PortMask};
use crate::view::{BridgeView, PortView, SwitchView};
use crate::wire::ethernet::{SwitchingHeader, MIN_TAGGED_LEN};
use crate::wire::{EtherType, EthernetAddress};
use cpu::HugeSlice;

/// What [`classify`] found for a burst: an action per frame, the burst's
/// flood sets, and what [`execute`](super::execute) needs to know up front;
/// and the decisions of earlier bursts ([`DecisionCache`]). Sized once;
/// reused for every burst (one per worker).
pub struct Classified {
    actions: [Action; BURST],
    /// What one pass found for the next (every frame's lane is written anew).
    lanes: [Lane; BURST],
    len: usize,
    /// The flood sets that `Action::Flood(n)` refers to.
    pub floods: FloodSets,
    rx_bytes: u64,
    /// The port every frame goes to unchanged, if they all do.
    whole: Option<PortId>,
    /// Every frame has the first one's header window: lane 0 stands for
    /// all of them (the other lanes are stale).
    one_header: bool,
    cache: DecisionCache,
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
            one_header: false,
            cache: DecisionCache::new(),
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
        if i >= self.len.min(BURST) {
            return None;
        }
        let mut j = if self.one_header { 0 } else { i };
        loop {
            let lane = self.lanes[..self.len.min(BURST)].get(j)?;
            match lane.step {
                Step::Lookup | Step::Hit => return Some(lane.ctx.vlan()),
                // Same header as its predecessor: same VLAN.
                Step::AsPrevious => j = j.checked_sub(1)?,
                Step::Decided | Step::Probe => return None,
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

    /// Decisions taken from the cache of earlier bursts, and decisions
    /// taken afresh, since the last call (a worker adds them to its stats
    /// once per burst).
    pub fn take_cache_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.cache.hits),
            std::mem::take(&mut self.cache.misses),
        )
    }
}

/// The decisions of earlier bursts, by input port and header window: the
/// NORMAL action's counterpart of Open vSwitch's exact-match cache. A frame
/// whose (input port, window) was decided before, under the same view and
/// with no MAC table changed since, takes that decision without the VLAN
/// rules, the two MAC-table buckets and the egress rules: one cache line
/// instead of two bucket lines and some 150 instructions.
///
/// Staleness is ruled out by stamps, not by clearing: an entry holds the
/// cache's epoch when it was decided, and the epoch moves on whenever the
/// view (its [`SwitchView::id`]) or the MAC tables' [`generation`] is not
/// what it was at the previous burst. The generation moves on with every
/// moved, evicted, aged or flushed MAC and with every second of the
/// tables' clock (a MAC learned anew was a flood, which is never kept), so
/// an entry lives a second at most: within the
/// second, learning its source again would write nothing (the table keeps
/// seconds), so skipping it loses nothing; the first frame of the next
/// second learns it. Only a unicast output to a known destination is kept
/// (a flood refers to the burst's own flood sets), and not when learning
/// the source did not happen (another worker held its bucket).
///
/// [`generation`]: mac_table::generation
struct DecisionCache {
    lines: HugeSlice<CacheLine>,
    /// The view and the generation the current epoch stands for.
    view: u64,
    generation: u32,
    /// Entries stamped with anything else are stale (0: never filled).
    epoch: u32,
    hits: u64,
    misses: u64,
}

/// 65,536 lines of two decisions (4 MiB on huge pages, as Open vSwitch's
/// signature-match cache per PMD): 8,192 busy (input port, header) pairs,
/// the size of its exact-match cache, fill one way in sixteen, and about
/// 0.1% of them meet a line whose two ways are taken.
const CACHE_LINES: usize = 65_536;
const CACHE_SHIFT: u32 = 64 - CACHE_LINES.trailing_zeros();

#[repr(C, align(64))]
struct CacheLine([Cached; 2]);

// Two decisions per cache line.
const _: () = assert!(std::mem::size_of::<CacheLine>() == 64);

#[derive(Clone, Copy)]
struct Cached {
    window: u128,
    epoch: u32,
    ctx: Context,
    in_port: PortId,
    action: Action,
}

impl DecisionCache {
    fn new() -> DecisionCache {
        let empty = Cached {
            window: 0,
            epoch: 0,
            ctx: Context(0),
            in_port: PortId::from_index(0),
            action: Action::Drop(DropReason::Malformed),
        };
        DecisionCache {
            lines: HugeSlice::new(CACHE_LINES, |_| CacheLine([empty; 2])),
            view: 0,
            generation: 0,
            epoch: 1,
            hits: 0,
            misses: 0,
        }
    }

    /// Moves to a new epoch unless the view and the generation are the
    /// ones of the current epoch.
    #[inline(always)]
    fn begin(&mut self, view: u64, generation: u32) {
        if view != self.view || generation != self.generation {
            self.view = view;
            self.generation = generation;
            self.epoch = self.epoch.wrapping_add(1);
            if self.epoch == 0 {
                // Wrapped (after 2^32 changes): forget everything, so no
                // entry of a former epoch 1 comes back.
                self.lines
                    .iter_mut()
                    .for_each(|l| l.0.iter_mut().for_each(|e| e.epoch = 0));
                self.epoch = 1;
            }
        }
    }

    /// The line a frame's decision lives in.
    #[inline(always)]
    fn line_of(window: u128, in_port: PortId) -> u32 {
        // The first half scrambled by a multiplication before the second
        // and the port join it (a plain fold lets the two addresses of a
        // pair cancel out), the whole by another: the top bits depend on
        // every bit of the window and the port.
        let lo = (window as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let h = (lo ^ (window >> 64) as u64 ^ u64::from(in_port.get()))
            .wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        // CACHE_SHIFT >= 32: the line fits u32.
        (h >> CACHE_SHIFT) as u32
    }

    #[inline(always)]
    fn prefetch(&self, line: u32) {
        // A prefetch never faults: no bounds check.
        cpu::prefetch_ptr(self.lines.as_ptr().wrapping_add(line as usize));
    }

    /// The decision for `window` from `in_port` in line `line`, if current.
    #[inline(always)]
    fn get(&self, line: u32, window: u128, in_port: PortId) -> Option<&Cached> {
        self.lines
            .get(line as usize)?
            .0
            .iter()
            .find(|e| e.window == window && e.in_port == in_port && e.epoch == self.epoch)
    }

    /// Keeps a decision in a stale way of its line, if there is one. A
    /// line whose two ways are current keeps them: evicting one for a
    /// third (input port, window) would, with traffic cycling over the
    /// three, make all three miss every time instead of one.
    #[inline(always)]
    fn put(&mut self, line: u32, window: u128, in_port: PortId, ctx: Context, action: Action) {
        let epoch = self.epoch;
        let Some(l) = self.lines.get_mut(line as usize) else {
            return;
        };
        if let Some(way) = l.0.iter_mut().find(|e| e.epoch != epoch) {
            *way = Cached {
                window,
                epoch,
                ctx,
                in_port,
                action,
            };
        }
    }
}

/// Where a frame stands between the passes of [`classify`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Its action is already known (dropped).
    Decided,
    /// Same decision inputs as the frame before it: same action.
    AsPrevious,
    /// To look for in the decision cache (`window`, `line`).
    Probe,
    /// Found in the decision cache: its action is known, `ctx` is set.
    Hit,
    /// Learn `src`, look up `dst`.
    Lookup,
}

/// A frame between the passes of [`classify`]: one cache line, so the
/// burst's lanes stay in a few.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Lane {
    /// The header window, for the decision cache.
    window: u128,
    /// The unicast source to learn (`MacKey::NONE`: none).
    src: MacKey,
    /// The unicast destination to look up (`MacKey::NONE`: flood).
    dst: MacKey,
    /// The VLAN and the arriving outer TCI, packed ([`Context`]).
    ctx: Context,
    /// The decision cache's line for `window`.
    line: u32,
    step: Step,
    /// Decided from `window` (not by the parser): the decision may be cached.
    windowed: bool,
}

impl Lane {
    const DECIDED: Lane = Lane {
        window: 0,
        src: MacKey::NONE,
        dst: MacKey::NONE,
        ctx: Context(0),
        line: 0,
        step: Step::Decided,
        windowed: false,
    };

    /// Makes this the lane of a frame with header window `window` from
    /// `in_port`, to look for in the decision cache; returns its line.
    #[inline(always)]
    fn probe(&mut self, window: u128, in_port: PortId) -> u32 {
        self.window = window;
        self.line = DecisionCache::line_of(window, in_port);
        self.step = Step::Probe;
        self.windowed = true;
        self.line
    }
}

/// A frame's VLAN (bits 0..12), its arriving outer TCI (bits 12..28) and
/// whether it had one (bit 28), in one word: with the output port below
/// it, the key under which pass 3 reuses an egress action.
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

/// How many frames ahead of the one it probes [`classify`] prefetches
/// decision-cache lines (and how many lines pass 1 asks for at once).
const PREFETCH_AHEAD: usize = 8;

/// Starts loading the buckets a lane will learn and look up in. A lane
/// without a key has `MacKey::NONE` there (bucket 0): a prefetch is only a
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

/// What a frame with these addresses and outer TCI gets from its input
/// port's VLAN rules and the bridge: its context and MAC keys, or why it
/// is dropped.
#[inline(always)]
fn admit(
    port: &PortView,
    forward_bpdu: bool,
    fdb: &BurstTable,
    (dst, src, in_tci): (u64, u64, Option<u16>),
) -> Result<(Context, MacKey, MacKey), DropReason> {
    let Some(vlan) = port.vlan.ingress(in_tci.map(|t| t & 0x0fff)) else {
        return Err(DropReason::VlanViolation);
    };
    let dst = EthernetAddress::from_u64(dst);
    // As Open vSwitch: after the VLAN check, before learning.
    if !forward_bpdu && dst.is_reserved() {
        return Err(DropReason::LinkLocal);
    }
    let src = if EthernetAddress::from_u64(src).is_unicast() {
        fdb.key(vlan, src)
    } else {
        MacKey::NONE
    };
    let dst = if dst.is_unicast() {
        fdb.key(vlan, dst.to_u64())
    } else {
        MacKey::NONE
    };
    Ok((Context::new(vlan, in_tci), src, dst))
}

/// A frame without a header window (a NIC-stripped tag, or short) made a
/// `Step::Lookup` lane by the parser, its buckets asked for; or why it is
/// dropped. Out of line: rare, and pass 1's loop keeps its registers.
#[cold]
#[inline(never)]
fn parse_lane(
    port: &PortView,
    forward_bpdu: bool,
    fdb: &BurstTable,
    f: &impl Frame,
    lane: &mut Lane,
) -> Result<(), DropReason> {
    let h =
        SwitchingHeader::parse(f.data(), f.stripped_tci()).map_err(|_| DropReason::Malformed)?;
    let (ctx, src, dst) = admit(
        port,
        forward_bpdu,
        fdb,
        (h.dst.to_u64(), h.src.to_u64(), h.outer_tci),
    )?;
    *lane = Lane {
        ctx,
        src,
        dst,
        step: Step::Lookup,
        windowed: false,
        ..*lane
    };
    prefetch_lane(fdb, lane);
    Ok(())
}

/// Classifies the burst `rx` that arrived on `in_port`, into `out`.
///
/// Contract: reads the frames and never changes them; leaves one action per
/// frame in `out` (frame i's at `out.actions()[i]`) with every flood
/// resolved: a flood to no port is a drop, to one port an output, to more
/// an `Action::Flood` of a set in `out.floods`. The actions are exactly
/// those of deciding each frame alone, in order: parse, the input port's
/// VLAN rules, the link-local drop, learning the unicast source in the
/// bridge's MAC table, looking up the destination. A frame with the same
/// decision inputs as its predecessor reuses its action, and a frame
/// decided from the [`DecisionCache`] skips learning, which within that
/// second would write nothing.
///
/// First, a check that every frame repeats the first one's header window
/// (one flow, or flows between two MACs); then that frame alone goes
/// through passes 2-4 and its action is every frame's. Otherwise four
/// passes, each over the burst: (1) the header windows, repeats of
/// the previous frame's, the cache lines to probe (the first
/// [`PREFETCH_AHEAD`] frames' asked for at once), and frames the parser
/// must see (a NIC-stripped tag, short); (2) the cache probes, loading the
/// line of the frame [`PREFETCH_AHEAD`] further on meanwhile; a miss gets
/// its VLAN rules and MAC keys, and its buckets are asked for; (3) the
/// misses learn, look up, resolve and fill the cache; (4) repeats take
/// their predecessor's action, and whether the burst moves whole is known.
pub fn classify<B: Burst>(view: &SwitchView, in_port: PortId, rx: &B, out: &mut Classified) {
    let n = rx.len().min(BURST);
    out.len = n;
    out.floods.clear();
    out.rx_bytes = 0;
    out.whole = None;
    out.one_header = false;
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
    // The generation before anything is read from the tables.
    out.cache.begin(view.id(), mac_table::generation());
    let fdb = bridge.fdb.for_burst();
    let forward_bpdu = bridge.forward_bpdu;

    // Every frame repeats the first one's window (one flow, or flows
    // between the same two MACs): one frame is decided, for all. Checked
    // first, with the lengths summed on the way, from the buffer headers
    // the windows are read through; a burst of many headers stops at its
    // second frame.
    let first = rx.get(0).and_then(header_window);
    let mut longest = 0u32;
    let mut rx_bytes = 0u64;
    let mut repeated = 0;
    if let Some(w) = first {
        for i in 0..n {
            // Frame 0's window is `w` itself.
            let Some(f) = rx.get(i).filter(|&f| i == 0 || header_window(f) == Some(w)) else {
                break;
            };
            let len = f.pkt_len();
            rx_bytes += u64::from(len);
            longest = longest.max(len);
            repeated = i + 1;
        }
    }
    // The rest: their lengths, and the lines pass 1 reads asked for.
    for i in repeated..n {
        if let Some(f) = rx.get(i) {
            f.prefetch();
            let len = f.pkt_len();
            rx_bytes += u64::from(len);
            longest = longest.max(len);
        }
    }
    out.rx_bytes = rx_bytes;
    let one_header = n > 1 && repeated == n;
    out.one_header = one_header;
    let mut stripped_any = false;
    if one_header {
        // Lane 0 stands for every frame (`one_header`): the others' lanes
        // are not written.
        if let (Some(lane), Some(w)) = (out.lanes.first_mut(), first) {
            out.cache.prefetch(lane.probe(w, in_port));
        }
    } else {
        // Pass 1: windows, repeats, cache lines; the parser for the rest.
        let mut previous = None;
        for i in 0..n {
            let (Some(lane), Some(f)) = (out.lanes.get_mut(i), rx.get(i)) else {
                if let (Some(lane), Some(action)) = (out.lanes.get_mut(i), out.actions.get_mut(i)) {
                    lane.step = Step::Decided;
                    *action = Action::Drop(DropReason::Malformed);
                }
                previous = None;
                continue;
            };
            let window = header_window(f);
            if window.is_some() && window == previous {
                lane.step = Step::AsPrevious;
                continue;
            }
            previous = window;
            let Some(w) = window else {
                // A stripped tag, or short: the parser decides, and the
                // frame is decided afresh (it has no window to be cached by).
                stripped_any |= f.stripped_tci().is_some();
                if let Err(why) = parse_lane(port, forward_bpdu, &fdb, f, lane) {
                    lane.step = Step::Decided;
                    if let Some(action) = out.actions.get_mut(i) {
                        *action = Action::Drop(why);
                    }
                }
                continue;
            };
            let line = lane.probe(w, in_port);
            // The first frames' lines load while pass 1 goes on.
            if i < PREFETCH_AHEAD {
                out.cache.prefetch(line);
            }
        }
    }

    let count = if one_header { 1 } else { n };
    let (whole, whole_port) = decide(view, in_port, port, bridge, &fdb, out, count);
    if one_header {
        fill_from_first(&mut out.actions[..n]);
    }
    out.whole = whole_port.filter(|&p| whole && !stripped_any && longest <= view.max_frame(p));
}

/// Gives every action the first one's. Eight at a time from a block
/// built once: a store per action (an action is six bytes) would cost a
/// burst of 32 some 120 instructions.
#[inline(always)]
fn fill_from_first(actions: &mut [Action]) {
    let Some(&first) = actions.first() else {
        return;
    };
    let block = [first; 8];
    let mut chunks = actions.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&block);
    }
    chunks.into_remainder().fill(first);
}

/// Passes 2 to 4 of [`classify`] on its first `count` lanes (pass 1's
/// work): the cache probes, the misses decided afresh, the repeats. Returns
/// whether every action is an output with no tag edit to one port, and
/// that port.
#[inline(always)]
fn decide(
    view: &SwitchView,
    in_port: PortId,
    port: &PortView,
    bridge: &BridgeView,
    fdb: &BurstTable,
    out: &mut Classified,
    count: usize,
) -> (bool, Option<PortId>) {
    let forward_bpdu = bridge.forward_bpdu;
    // Pass 2: the decision cache; a miss is admitted and its buckets are
    // asked for.
    let mut misses = 0usize;
    let mut hits = 0usize;
    let cache = &mut out.cache;
    let lanes = &mut out.lanes[..count];
    for i in 0..count {
        if let Some(ahead) = lanes.get(i + PREFETCH_AHEAD) {
            if ahead.step == Step::Probe {
                cache.prefetch(ahead.line);
            }
        }
        let (Some(lane), Some(action)) = (lanes.get_mut(i), out.actions.get_mut(i)) else {
            break;
        };
        if lane.step != Step::Probe {
            misses += usize::from(lane.step == Step::Lookup);
            continue;
        }
        if let Some(e) = cache.get(lane.line, lane.window, in_port) {
            *action = e.action;
            lane.ctx = e.ctx;
            lane.step = Step::Hit;
            hits += 1;
            continue;
        }
        match admit(port, forward_bpdu, fdb, header_fields(lane.window)) {
            Ok((ctx, src, dst)) => {
                lane.ctx = ctx;
                lane.src = src;
                lane.dst = dst;
                lane.step = Step::Lookup;
                prefetch_lane(fdb, lane);
                misses += 1;
            }
            Err(why) => {
                *action = Action::Drop(why);
                lane.step = Step::Decided;
            }
        }
    }
    cache.misses += misses as u64;
    cache.hits += hits as u64;

    // Pass 3: learn, look up, resolve the floods, keep what can be kept.
    if misses > 0 {
        let members = view.reachable_from(in_port, bridge.ports);
        let remote = bridge.known.as_deref();
        // The last known destination's output key (port, VLAN, arriving
        // tag: all `forward` reads of a frame) and its action: the same
        // again costs one comparison instead of the port's VLAN rules.
        let mut last: Option<(u64, Action)> = None;
        for (lane, action) in lanes.iter().zip(&mut out.actions) {
            if lane.step != Step::Lookup {
                continue;
            }
            let learned = if lane.src.is_none() {
                Learned::Unchanged
            } else {
                fdb.learn(lane.src, in_port)
            };
            let known = if lane.dst.is_none() {
                None
            } else {
                // l2population first: a remote port's MAC is where the
                // model says, whatever was learned.
                remote
                    .and_then(|k| k.remote_port(lane.dst.packed()))
                    .or_else(|| fdb.lookup(lane.dst))
            };
            let key = known.map(|p| lane.ctx.output_key(p));
            let a = match last {
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
                    a
                }
            };
            *action = a;
            // Only an output to a known destination, decided from a
            // window, with the source learned.
            if lane.windowed
                && matches!(a, Action::Output(..))
                && !matches!(learned, Learned::Skipped | Learned::Full)
            {
                cache.put(lane.line, lane.window, in_port, lane.ctx, a);
            }
        }
    }

    // Pass 4: repeats, and whether the burst moves whole. A repeat's
    // action comes from a register: reading back the one just stored
    // would wait for the stores of its fields to drain.
    let mut whole = true;
    let mut whole_port = None;
    let mut previous_action = Action::Drop(DropReason::Malformed);
    for (lane, action) in lanes.iter().zip(&mut out.actions) {
        if lane.step == Step::AsPrevious {
            // Never frame 0: it has no previous header.
            *action = previous_action;
            continue;
        }
        previous_action = *action;
        match previous_action {
            Action::Output(p, TagAction::Keep) if whole_port.is_none_or(|w| w == p) => {
                whole_port = Some(p)
            }
            _ => whole = false,
        }
    }
    (whole, whole_port)
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
