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
use super::execute::{apply_tag, push_tag, BurstCounts};
use super::{DropReason, Outputs, TagAction};
use crate::conntrack::{ConnCache, ConnTable, CtPacket, CtState};
use crate::flow_key::FlowKey;
use crate::flow_table::classifier::{FlowCache, Megaflow, PacketFields};
use crate::flow_table::program::{Conntrack, Edit, Emit, FlowTables, Op, Translation};
use crate::flow_table::Masked;
use crate::frame::{Burst, Frame, FramePool, Transmit, BURST};
use crate::offload::wire_len;
use crate::port::{PortId, PortMask, MAX_PORTS};
use crate::view::SwitchView;
use crate::wire::ethernet::SwitchingHeader;
use crate::wire::vlan::set_outer_tci;
use crate::wire::{checksum_adjust, EtherType, Tci};

/// A worker's state for the flow stage: its exact-match cache, a
/// translation to fill per input port and each frame's fields between
/// the two passes. Sized once.
pub struct FlowScratch {
    pub cache: FlowCache,
    /// Where the connections `ct` actions saw last live.
    ct_cache: ConnCache,
    /// Per input port, the translation its frames were given last.
    translations: Box<[Translation; MAX_PORTS]>,
    /// Frame i's first lookup's fields, when it parsed (its key is parsed
    /// again only if its translation is not its predecessor's). Filled in
    /// place: no copy of the fields per frame.
    placed: Box<[PacketFields; BURST]>,
    /// What the first pass made of frame i.
    state: [Placement; BURST],
    /// Per input port, the megaflow its last burst ended in (the one its
    /// translation holds for) and the classifier build it came from:
    /// while the port's tables are that build, the next burst's frames
    /// in it reuse the translation from the first frame on, and their
    /// hash and cache prefetch wait until they are needed.
    carried: Box<[Option<Carried>; MAX_PORTS]>,
}

/// What the first pass made of a frame.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// No fields: a frame too short for an Ethernet header.
    Unparsed,
    /// Fields placed; by the end of the first pass also hashed, their
    /// cache bucket prefetched.
    Placed,
    /// Fields placed in the carried megaflow: not hashed (the carried
    /// translation will most likely answer it).
    Covered,
}

/// A megaflow a port's last burst ended in, and the classifier build
/// whose answer it is.
#[derive(Clone, Copy)]
struct Carried {
    classifier: u64,
    megaflow: Megaflow,
}

impl Default for FlowScratch {
    fn default() -> Self {
        FlowScratch {
            cache: FlowCache::default(),
            ct_cache: ConnCache::new(),
            translations: Box::new([Translation::default(); MAX_PORTS]),
            placed: Box::new([PacketFields::default(); BURST]),
            state: [Placement::Unparsed; BURST],
            carried: Box::new([None; MAX_PORTS]),
        }
    }
}

/// Where a TCP or UDP header keeps its checksum; `None` for other
/// protocols.
fn l4_checksum_at(proto: u8) -> Option<usize> {
    match proto {
        6 => Some(16),
        17 => Some(6),
        _ => None,
    }
}

/// Updates the TCP/UDP checksum at `at` of `l4` for `old` words becoming
/// `new`. A partial checksum (offloaded: the pseudo-header sum, not
/// complemented) takes the change as it is; a UDP checksum of 0 (none)
/// stays 0, and a computed 0 is sent as 0xffff.
fn adjust_l4(l4: &mut [u8], at: usize, udp: bool, partial: bool, old: &[u8], new: &[u8]) {
    let Some(field) = l4.get_mut(at..at + 2) else {
        return;
    };
    let sum = u16::from_be_bytes([field[0], field[1]]);
    let next = if partial {
        !checksum_adjust(!sum, old, new)
    } else if udp && sum == 0 {
        return;
    } else {
        match checksum_adjust(sum, old, new) {
            0 if udp => 0xffff,
            c => c,
        }
    };
    field.copy_from_slice(&next.to_be_bytes());
}

/// Carries out an IPv4 edit on the header `ip` (and what follows it);
/// false if it cannot be made (a TTL at its end, a header cut short).
fn edit_ipv4(ip: &mut [u8], e: Edit, partial: bool) -> bool {
    let ihl = usize::from(ip.first().map_or(0, |b| b & 0x0f)) * 4;
    if ihl < 20 || ip.len() < ihl {
        return false;
    }
    let ip_sum = |ip: &mut [u8], old: &[u8], new: &[u8]| {
        let c = checksum_adjust(u16::from_be_bytes([ip[10], ip[11]]), old, new);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    };
    let proto = ip[9];
    // A later fragment carries no L4 header.
    let l4_here = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
    match e {
        Edit::SetNwSrc(a) | Edit::SetNwDst(a) => {
            let at = if matches!(e, Edit::SetNwSrc(_)) {
                12
            } else {
                16
            };
            let mut old = [0u8; 4];
            old.copy_from_slice(&ip[at..at + 4]);
            ip_sum(ip, &old, &a);
            ip[at..at + 4].copy_from_slice(&a);
            // The addresses are in the TCP/UDP pseudo-header.
            if let (true, Some(c)) = (l4_here, l4_checksum_at(proto)) {
                adjust_l4(&mut ip[ihl..], c, proto == 17, partial, &old, &a);
            }
            true
        }
        Edit::SetNwTos(tos) => {
            let old = [ip[0], ip[1]];
            let new = [ip[0], (tos & 0xfc) | (ip[1] & 3)];
            ip_sum(ip, &old, &new);
            ip[1] = new[1];
            true
        }
        Edit::SetTpSrc(port) | Edit::SetTpDst(port) => {
            let Some(c) = l4_checksum_at(proto).filter(|_| l4_here) else {
                return true;
            };
            let at = ihl + if matches!(e, Edit::SetTpSrc(_)) { 0 } else { 2 };
            let Some(old) = ip.get(at..at + 2).map(|o| [o[0], o[1]]) else {
                return false;
            };
            let new = port.to_be_bytes();
            ip[at..at + 2].copy_from_slice(&new);
            // Ports are not in the pseudo-header: a partial sum is
            // finished over them later.
            if !partial {
                adjust_l4(&mut ip[ihl..], c, proto == 17, false, &old, &new);
            }
            true
        }
        Edit::DecTtl | Edit::SetTtl(_) => {
            let ttl = match e {
                Edit::SetTtl(t) => t,
                _ if ip[8] <= 1 => return false,
                _ => ip[8] - 1,
            };
            let old = [ip[8], ip[9]];
            let new = [ttl, ip[9]];
            ip_sum(ip, &old, &new);
            ip[8] = new[0];
            true
        }
        _ => true,
    }
}

/// Carries out an IPv6 edit (hop limit, traffic class); false if it
/// cannot be made.
fn edit_ipv6(ip: &mut [u8], e: Edit) -> bool {
    if ip.len() < 8 {
        return false;
    }
    match e {
        Edit::DecTtl if ip[7] <= 1 => false,
        Edit::DecTtl => {
            ip[7] -= 1;
            true
        }
        Edit::SetTtl(t) => {
            ip[7] = t;
            true
        }
        // The traffic class straddles the first two bytes; ECN kept.
        Edit::SetNwTos(tos) => {
            let class = ((ip[0] & 0x0f) << 4 | ip[1] >> 4) & 3 | tos & 0xfc;
            ip[0] = (ip[0] & 0xf0) | class >> 4;
            ip[1] = (ip[1] & 0x0f) | class << 4;
            true
        }
        _ => true,
    }
}

/// Carries out an L3/L4 edit: on IPv4 (and an IPv6 hop limit); nothing
/// for other packets. False if it cannot be made.
fn edit_l3<F: Frame>(f: &mut F, e: Edit) -> bool {
    let Ok(k) = FlowKey::extract_l2(f.data(), None) else {
        return false;
    };
    let partial = !f.offload().is_none();
    let at = usize::from(k.l3_offset);
    let Some(l3) = f.data_mut().and_then(|d| d.get_mut(at..)) else {
        return false;
    };
    match EtherType(k.dl_type) {
        EtherType::IPV4 => edit_ipv4(l3, e, partial),
        EtherType::IPV6 => edit_ipv6(l3, e),
        _ => true,
    }
}

/// Writes `bytes` at `at` in the frame; false if it is too short.
fn set_bytes<F: Frame>(f: &mut F, at: usize, bytes: &[u8]) -> bool {
    f.data_mut()
        .and_then(|d| d.get_mut(at..at + bytes.len()))
        .map(|x| x.copy_from_slice(bytes))
        .is_some()
}

/// Carries out a VLAN edit on a frame whose outer TCI is `tci`.
fn edit_vlan<F: Frame>(f: &mut F, e: Edit, tci: Option<u16>) -> bool {
    let set = |f: &mut F, t: u16| {
        f.data_mut()
            .is_some_and(|d| set_outer_tci(d, Tci(t)).is_ok())
    };
    match (e, tci) {
        (Edit::SetVid(vid), Some(t)) => set(f, (t & 0xf000) | (vid & 0x0fff)),
        (Edit::SetVid(vid), None) => apply_tag(f, TagAction::Push(vid & 0x0fff)),
        (Edit::SetPcp(pcp), Some(t)) => set(f, (t & 0x1fff) | (u16::from(pcp & 7) << 13)),
        (Edit::SetPcp(pcp), None) => apply_tag(f, TagAction::Push(u16::from(pcp & 7) << 13)),
        (Edit::StripVlan, Some(_)) => apply_tag(f, TagAction::Pop),
        _ => true,
    }
}

/// Carries out one edit on a frame's bytes; false if it cannot be made.
#[inline]
pub(super) fn apply_edit<F: Frame>(f: &mut F, e: Edit) -> bool {
    match e {
        Edit::SetVid(_) | Edit::SetPcp(_) | Edit::StripVlan => {
            match SwitchingHeader::parse(f.data(), None) {
                Ok(h) => edit_vlan(f, e, h.outer_tci),
                Err(_) => false,
            }
        }
        Edit::PushVlan(tpid) => push_tag(f, EtherType(tpid), 0),
        Edit::SetDlDst(a) => set_bytes(f, 0, &a.0),
        Edit::SetDlSrc(a) => set_bytes(f, 6, &a.0),
        Edit::SetNwSrc(_)
        | Edit::SetNwDst(_)
        | Edit::SetNwTos(_)
        | Edit::SetTpSrc(_)
        | Edit::SetTpDst(_)
        | Edit::SetTtl(_)
        | Edit::DecTtl => edit_l3(f, e),
    }
}

/// The `ct` action for one frame: its IP packet against the shared
/// connection table (none: tracked and invalid, as a packet conntrack
/// cannot parse). A packet is tracked once per zone per translation, as
/// OVS does not track a packet again in the zone it was tracked in.
pub(super) struct FrameCt<'a> {
    table: Option<&'a ConnTable>,
    cache: Option<&'a mut ConnCache>,
    /// From the L3 header on (its first buffer), and the L3 packet's
    /// whole length.
    l3: &'a [u8],
    whole: usize,
    ethertype: EtherType,
    /// The last zone tracked in and what it said.
    last: Option<(u16, u8, u32)>,
    /// Look only (`trace`): nothing tracked moves, nothing is committed.
    peek: bool,
}

impl<'a> FrameCt<'a> {
    /// For the frame whose first buffer is `data`, `len` bytes in all,
    /// with `key`; `cache` where the worker's connections live; `peek`:
    /// change nothing.
    pub(super) fn new(
        table: Option<&'a ConnTable>,
        cache: Option<&'a mut ConnCache>,
        data: &'a [u8],
        len: usize,
        key: &FlowKey,
        peek: bool,
    ) -> FrameCt<'a> {
        let l3 = usize::from(key.l3_offset);
        FrameCt {
            table,
            cache,
            l3: data.get(l3..).unwrap_or_default(),
            whole: len.saturating_sub(l3),
            ethertype: EtherType(key.dl_type),
            last: None,
            peek,
        }
    }

    fn packet(&self, zone: u16) -> Option<(&'a ConnTable, CtPacket)> {
        let t = self.table?;
        let p = CtPacket::parse_prefix(zone, self.ethertype, self.l3, self.whole).ok()?;
        Some((t, p))
    }
}

impl Conntrack for FrameCt<'_> {
    fn track(&mut self, zone: u16) -> (u8, u32) {
        if let Some((_, s, m)) = self.last.filter(|l| l.0 == zone) {
            return (s, m);
        }
        let (s, m) = match self.packet(zone) {
            None => (CtState::TRK | CtState::INV, 0),
            Some((t, p)) if self.peek => {
                let (s, m) = t.peek_marked(&p);
                (s.0, m)
            }
            Some((t, p)) => {
                let (s, m) = t.track_marked(self.cache.as_deref_mut(), t.slot(&p.key), &p);
                (s.0, m)
            }
        };
        self.last = Some((zone, s, m));
        (s, m)
    }

    fn commit(&mut self, zone: u16, mark: Option<Masked<u32>>) {
        if self.peek {
            return;
        }
        let Some((t, p)) = self.packet(zone) else {
            return;
        };
        // Tracked already, or a packet that opens nothing: no new entry.
        let _ = t.commit(&p);
        if let Some(m) = mark {
            t.set_mark(&p.key, m.value, m.mask);
        }
    }
}

/// A frame's key as far as it parses: a bad L3 header still has L2
/// fields; `None` only for a frame too short for an Ethernet header.
#[inline(always)]
pub(super) fn key_of<F: Frame>(f: &F) -> Option<FlowKey> {
    FlowKey::extract_l4_chained(f.data(), f.pkt_len() as usize, None)
        .or_else(|_| FlowKey::extract_l2(f.data(), None))
        .ok()
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
    conntrack: Option<&ConnTable>,
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
    let members = view.bridge_of(in_port).map_or(PortMask::EMPTY, |b| b.ports);
    for i in 0..n {
        if let Some(f) = rx.get(i) {
            f.prefetch();
        }
    }
    // Pass 1: every frame's lookup fields; then, unless its port's last
    // burst's megaflow covers it, its first lookup's cache bucket
    // prefetched, before any lookup. Two loops: the second reads the
    // fields back once the first's stores have settled (read right after
    // being written piecemeal, they would stall the load).
    let FlowScratch {
        cache,
        ct_cache,
        translations,
        placed,
        state,
        carried,
    } = scratch;
    let t = &mut translations[in_port.index()];
    let carried = &mut carried[in_port.index()];
    // The megaflow the port's last burst ended in, and the translation
    // its frames were given, still stand if the tables are the same build.
    let classifier = tables.classifier_id();
    let mut prev: Option<Megaflow> = carried
        .as_ref()
        .filter(|c| c.classifier == classifier)
        .map(|c| c.megaflow);
    for (i, (placed, state)) in placed[..n].iter_mut().zip(&mut state[..n]).enumerate() {
        *state = Placement::Unparsed;
        let Some(f) = rx.get_mut(i) else { continue };
        // A tag the NIC stripped is part of the frame the flows see.
        if let Some(t) = f.stripped_tci() {
            f.clear_stripped_tci();
            if !apply_tag(f, TagAction::Push(t)) {
                continue;
            }
        }
        if !tables.fill_frame(in_port, f.data(), f.pkt_len() as usize, placed) {
            let Some(key) = key_of(f) else { continue };
            tables.fill_into(in_port, &key, placed);
        }
        *state = Placement::Placed;
    }
    for (placed, state) in placed[..n].iter_mut().zip(&mut state[..n]) {
        if *state == Placement::Unparsed {
            continue;
        }
        if prev.as_ref().is_some_and(|mf| mf.covers(placed)) {
            *state = Placement::Covered;
        } else {
            tables.hash_and_prefetch(cache, placed);
        }
    }
    // Pass 2: translate and carry out, in frame order.
    // Where `t` sends a frame unchanged to one port, that port and the
    // longest frame it takes: the frames that reuse such a translation
    // go straight to the port's batch.
    let one_port = |t: &Translation| match t.ops() {
        [Op::Emit(e)] if !t.overflow => targets(*e, in_port, members)
            .and_then(|m| m.single())
            .map(|p| (p, view.max_frame(p))),
        _ => None,
    };
    let mut direct = prev.and(one_port(t));
    let mut translated = false;
    let mut run = Run::default();
    for i in 0..n {
        let Some(mut f) = rx.take(i) else { continue };
        let len = f.pkt_len();
        c.rx_bytes += u64::from(len);
        let parsed = placed
            .get_mut(i)
            .zip(state.get(i).copied())
            .filter(|&(_, s)| s != Placement::Unparsed);
        let Some((placed, state)) = parsed else {
            c.dropped(DropReason::Malformed);
            out.discard(f);
            continue;
        };
        // A frame in the megaflow its predecessor's one lookup was
        // answered under translates as that one did: no lookup, no
        // translation (frames of one aggregate come in runs). Until the
        // burst's first translation, `prev` is the megaflow the first pass
        // tested every frame against: a frame it found covered is in it.
        let covered = state == Placement::Covered;
        if (covered && !translated) || prev.as_ref().is_some_and(|mf| mf.covers(placed)) {
            run.reused += 1;
            cache.mega_hits += 1;
        } else {
            let Some(key) = key_of(&f) else {
                c.dropped(DropReason::Malformed);
                out.discard(f);
                continue;
            };
            let mut ct = FrameCt::new(
                conntrack,
                Some(&mut *ct_cache),
                f.data(),
                len as usize,
                &key,
                false,
            );
            if covered {
                placed.rehash();
            }
            run.flush(tables, worker, t);
            tables.translate(cache, worker, in_port, key, placed, t, &mut ct);
            translated = true;
            prev = t
                .single_lookup()
                .and_then(|m| cache.megaflow(classifier, placed, m));
            direct = one_port(t);
        }
        run.packets += 1;
        run.bytes += u64::from(len);
        if let Some((p, max)) = direct {
            // What `emit` does for one port, when the frame fits.
            if wire_len(f.data(), len, f.offload()) <= max {
                out.enqueue(p, f, tx);
                continue;
            }
        }
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
        let mut broken = None;
        for &op in &ops[..last] {
            match op {
                Op::Edit(e) => {
                    if !apply_edit(&mut f, e) {
                        broken = Some(e);
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
        if let Some(e) = broken {
            // A TTL at its end is the flow's drop; anything else a frame
            // the edit could not be made on.
            c.dropped(if e == Edit::DecTtl {
                DropReason::FlowTable
            } else {
                DropReason::Malformed
            });
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
    run.flush(tables, worker, t);
    *carried = prev.map(|megaflow| Carried {
        classifier,
        megaflow,
    });
    rx.clear();
    c
}

/// The packets one translation answered since it was made, counted into
/// its flows' and table 0's counters once, when the translation is
/// replaced or the burst ends (a counter bump per run, not per packet).
#[derive(Default)]
struct Run {
    packets: u64,
    bytes: u64,
    /// Of them, those that reused it (their table-0 lookup not counted
    /// by [`FlowTables::translate`]).
    reused: u64,
}

impl Run {
    #[inline(always)]
    fn flush(&mut self, tables: &FlowTables, worker: usize, t: &Translation) {
        if self.packets != 0 {
            tables.count(worker, t.hits(), self.packets, self.bytes);
        }
        if self.reused != 0 {
            tables.count_lookups(worker, 0, self.reused, !t.hits().is_empty());
        }
        *self = Run::default();
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::mem::MemFrame;
    use crate::wire::{checksum, ipv4_l4_checksum, IpProtocol};

    /// An IPv4 frame of `proto` (TCP or UDP) 10.0.0.1:1000 -> 10.0.0.2:80
    /// with valid checksums (a UDP one of 0 when `udp_sum` is false).
    fn frame(proto: u8, udp_sum: bool) -> Vec<u8> {
        let l4_len = if proto == 6 { 20 } else { 8 } + 6;
        let mut f = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0];
        let total = (20 + l4_len) as u16;
        f.extend_from_slice(&[0x45, 0x10]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let c = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let mut l4 = vec![0x03, 0xe8, 0, 80];
        if proto == 6 {
            l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        } else {
            l4.extend_from_slice(&(l4_len as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
        }
        l4.extend_from_slice(b"hello!");
        let at = if proto == 6 { 16 } else { 6 };
        if proto == 6 || udp_sum {
            let c = ipv4_l4_checksum([10, 0, 0, 1], [10, 0, 0, 2], IpProtocol(proto), &l4);
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        f.extend_from_slice(&l4);
        f
    }

    /// The IP header's checksum and the TCP/UDP one hold.
    fn sums_hold(f: &[u8]) -> bool {
        let ip = &f[14..34];
        let l4 = &f[34..];
        let (src, dst) = (
            [ip[12], ip[13], ip[14], ip[15]],
            [ip[16], ip[17], ip[18], ip[19]],
        );
        let at = if ip[9] == 6 { 16 } else { 6 };
        let mut zeroed = l4.to_vec();
        let given = u16::from_be_bytes([l4[at], l4[at + 1]]);
        zeroed[at..at + 2].copy_from_slice(&[0, 0]);
        let want = ipv4_l4_checksum(src, dst, IpProtocol(ip[9]), &zeroed);
        checksum(ip) == 0 && (given == want || (ip[9] == 17 && given == 0))
    }

    #[test]
    fn l3_and_l4_rewrites_keep_every_checksum_valid() {
        for (proto, udp_sum) in [(6, true), (17, true), (17, false)] {
            for e in [
                Edit::SetNwSrc([192, 168, 1, 7]),
                Edit::SetNwDst([172, 16, 255, 254]),
                Edit::SetNwTos(0xb8),
                Edit::SetTpSrc(40000),
                Edit::SetTpDst(8080),
                Edit::DecTtl,
            ] {
                let mut f = MemFrame::new(&frame(proto, udp_sum));
                assert!(apply_edit(&mut f, e), "{e:?}");
                let b = f.bytes();
                assert!(sums_hold(b), "{e:?} on proto {proto}");
                match e {
                    Edit::SetNwSrc(a) => assert_eq!(b[26..30], a),
                    Edit::SetNwDst(a) => assert_eq!(b[30..34], a),
                    Edit::SetNwTos(t) => assert_eq!(b[15], t),
                    Edit::SetTpSrc(p) => assert_eq!(b[34..36], p.to_be_bytes()),
                    Edit::SetTpDst(p) => assert_eq!(b[36..38], p.to_be_bytes()),
                    Edit::DecTtl => assert_eq!(b[22], 63),
                    _ => {}
                }
                if proto == 17 && !udp_sum {
                    assert_eq!(b[40..42], [0, 0], "no UDP checksum stays none");
                }
            }
        }
    }

    #[test]
    fn a_ttl_at_its_end_cannot_be_decremented_and_other_packets_are_left_alone() {
        let mut bytes = frame(6, true);
        bytes[22] = 1;
        let mut f = MemFrame::new(&bytes);
        assert!(!apply_edit(&mut f, Edit::DecTtl));
        // ARP: nothing to rewrite, nothing refused.
        let arp = [
            vec![0xff; 6],
            vec![0, 0, 0, 0, 0, 1],
            vec![0x08, 0x06],
            vec![0; 28],
        ]
        .concat();
        let mut f = MemFrame::new(&arp);
        assert!(apply_edit(&mut f, Edit::SetNwSrc([1, 2, 3, 4])));
        assert_eq!(f.bytes(), &arp[..]);
    }
}
