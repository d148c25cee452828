//! The poll-mode worker: a pinned thread that polls its (port, rx queue)
//! pairs in bursts of [`BURST`], switches each burst with the NORMAL action
//! (MAC learning + VLAN rules), batches output per destination port and
//! transmits once per port per burst.
//!
//! Per packet there is no allocation, lock, syscall, dynamic dispatch or FFI
//! call: mbuf fields are read directly, DPDK is called once per burst (rx,
//! tx, bulk free, bulk alloc of flood copies).
use crate::flow_key::FlowKey;
use crate::mac_table::MacTable;
use crate::snapshot::{PortConf, Snapshot, SnapshotCell, MAX_PORTS};
use crate::stats::{bump, WorkerStats};
use crate::vlan::Egress;
use dpdk_sys::cycles::tsc;
use dpdk_sys::ethdev::{RxQueue, TxQueue};
use dpdk_sys::mbuf::{Mbuf, MbufBatch};
use dpdk_sys::mempool::Mempool;
use dpdk_sys::BURST;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const TPID_8021Q: [u8; 2] = [0x81, 0x00];

/// What a frame needs on the way out of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagAction {
    Keep,
    /// Remove the outer tag.
    Pop,
    /// Insert an 802.1Q tag with this TCI.
    Push(u16),
    /// Rewrite the outer tag's TCI.
    Set(u16),
}

/// The forwarding decision for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// To one port, with a tag action.
    Unicast(u16, TagAction),
    /// To every other member of `vlan` in the bridge; `in_tci` is the
    /// frame's outer tag as parsed (so flooding does not parse again).
    Flood {
        vlan: u16,
        in_tci: Option<u16>,
    },
    Drop(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Malformed,
    VlanViolation,
    /// Destination learned on the input port, or not a member of the VLAN.
    NoOutput,
}

/// The tag action to send a frame (arrived with outer TCI `in_tci`, if
/// tagged) out of a port that wants it `egress`. PCP bits are kept.
#[inline(always)]
pub fn tag_action(in_tci: Option<u16>, egress: Egress) -> TagAction {
    match (in_tci, egress) {
        (None, Egress::Untagged) => TagAction::Keep,
        (Some(_), Egress::Untagged) => TagAction::Pop,
        (None, Egress::Tagged(vid)) => TagAction::Push(vid),
        (Some(tci), Egress::Tagged(vid)) if tci & 0x0fff == vid => TagAction::Keep,
        (Some(tci), Egress::Tagged(vid)) => TagAction::Set((tci & 0xf000) | vid),
    }
}

/// NORMAL action for a parsed frame that arrived on `in_port` (learns the
/// source as a side effect).
#[inline(always)]
pub fn decide(key: &FlowKey, in_port: &PortConf, snap: &Snapshot, fdb: &MacTable) -> Decision {
    let in_tci = key.has_vlan.then_some(key.vlan_tci);
    let Some(vlan) = in_port.vlan.ingress(key.has_vlan.then(|| key.vid())) else {
        return Decision::Drop(DropReason::VlanViolation);
    };
    let src = key.dl_src.to_u64();
    if key.dl_src.is_unicast() {
        fdb.learn(vlan, src, in_port.port_id);
    }
    if !key.dl_dst.is_unicast() {
        return Decision::Flood { vlan, in_tci };
    }
    match fdb.lookup(vlan, key.dl_dst.to_u64()) {
        None => Decision::Flood { vlan, in_tci },
        Some(p) if p == in_port.port_id => Decision::Drop(DropReason::NoOutput),
        Some(p) => match snap.port(p).and_then(|o| o.vlan.egress(vlan)) {
            Some(eg) => Decision::Unicast(p, tag_action(in_tci, eg)),
            None => Decision::Drop(DropReason::NoOutput),
        },
    }
}

/// Applies a tag action to the frame; false if it could not (no headroom,
/// shared buffer, truncated frame).
#[inline(always)]
pub fn apply_tag(m: &mut Mbuf, action: TagAction) -> bool {
    match action {
        TagAction::Keep => true,
        TagAction::Set(tci) => match m.data_mut() {
            Some(d) if d.len() >= 16 => {
                d[14..16].copy_from_slice(&tci.to_be_bytes());
                true
            }
            _ => false,
        },
        TagAction::Pop => {
            match m.data_mut() {
                Some(d) if d.len() >= 16 => d.copy_within(0..12, 4),
                _ => return false,
            }
            m.adj(4)
        }
        TagAction::Push(tci) => match m.prepend(4) {
            Some(d) if d.len() >= 16 => {
                d.copy_within(4..16, 0);
                d[12..14].copy_from_slice(&TPID_8021Q);
                d[14..16].copy_from_slice(&tci.to_be_bytes());
                true
            }
            _ => false,
        },
    }
}

/// Per-worker state that lives across bursts: queue handles, output
/// batches, spare mbufs for flood copies. Sized once; nothing grows later.
pub struct WorkerState {
    rx: Vec<RxQueue>,
    tx: Vec<Option<TxQueue>>,
    out: Vec<MbufBatch>,
    /// Bytes queued in `out[p]`.
    out_bytes: [u64; MAX_PORTS],
    /// Bit p set: `out[p]` is not empty.
    pending: u64,
    /// Fresh mbufs for flood copies, allocated in bulk.
    spare: MbufBatch,
    /// Dropped mbufs, freed in bulk.
    trash: MbufBatch,
}

/// One pinned poll-mode worker.
pub struct Worker {
    pub index: usize,
    pub cell: Arc<SnapshotCell>,
    pub stats: Arc<WorkerStats>,
    pub pool: Arc<Mempool>,
    pub stop: Arc<AtomicBool>,
}

impl Worker {
    /// Polls until `stop` is set. Runs on the calling thread (already pinned
    /// and registered with the EAL by the caller).
    pub fn run(self) {
        let mut local = self.new_state();
        let mut snap: Arc<Snapshot> = self.cell.load_full();
        self.cell.set_active(self.index, true);
        self.adopt(&snap, &mut local);
        let mut rx_batch = MbufBatch::new();
        let mut t0 = tsc();
        while !self.stop.load(Ordering::Relaxed) {
            // One relaxed load per iteration; the pointer only when it moved.
            if self.cell.generation() != snap.generation {
                snap = self.cell.load_full();
                self.adopt(&snap, &mut local);
            }
            self.cell.quiescent(self.index, snap.generation);
            let mut got = 0usize;
            for qi in 0..local.rx.len() {
                let n = local.rx[qi].rx_burst(&mut rx_batch);
                if n == 0 {
                    continue;
                }
                got += n;
                let in_port = local.rx[qi].port_id();
                self.process_burst(&snap, in_port, &mut rx_batch, &mut local);
            }
            let t1 = tsc();
            let dt = t1.wrapping_sub(t0);
            t0 = t1;
            self.stats.iterations.add(1);
            if got > 0 {
                self.stats.packets.add(got as u64);
                self.stats.busy_cycles.add(dt);
            } else {
                self.stats.idle_cycles.add(dt);
            }
        }
        // Release every queue claim so the control thread may close ports.
        local.rx.clear();
        self.flush(&mut local);
        local.tx.iter_mut().for_each(|t| *t = None);
        self.cell.set_active(self.index, false);
    }

    /// Fresh per-worker state (allocates: call before polling starts).
    pub fn new_state(&self) -> WorkerState {
        WorkerState {
            rx: Vec::with_capacity(MAX_PORTS * 4),
            tx: (0..MAX_PORTS).map(|_| None).collect(),
            out: (0..MAX_PORTS).map(|_| MbufBatch::new()).collect(),
            out_bytes: [0; MAX_PORTS],
            pending: 0,
            spare: MbufBatch::new(),
            trash: MbufBatch::new(),
        }
    }

    /// Switches one received burst from `in_port` and transmits the result:
    /// what the poll loop does per rx burst (public for the benchmarks).
    #[inline(always)]
    pub fn process_burst(
        &self,
        snap: &Snapshot,
        in_port: u16,
        rx: &mut MbufBatch,
        local: &mut WorkerState,
    ) {
        self.switch_burst(snap, in_port, rx, local);
        self.flush(local);
    }

    /// Takes the queue handles the snapshot assigns to this worker and
    /// releases those it no longer does (not on the per-packet path).
    pub fn adopt(&self, snap: &Snapshot, local: &mut WorkerState) {
        let want: &[(u16, u16)] = snap
            .rx_assignment
            .get(self.index)
            .map(|v| &v[..])
            .unwrap_or(&[]);
        local.rx.retain(|q| {
            want.contains(&(q.port_id(), q.queue()))
                && snap
                    .port(q.port_id())
                    .is_some_and(|p| Arc::ptr_eq(&p.queues, q.port_queues()))
        });
        for &(p, q) in want {
            if local.rx.iter().any(|h| h.port_id() == p && h.queue() == q) {
                continue;
            }
            if let Some(h) = snap.port(p).and_then(|pc| pc.queues.claim_rx(q)) {
                local.rx.push(h);
            }
        }
        for p in 0..MAX_PORTS {
            let keep = match (&local.tx[p], snap.port(p as u16)) {
                (Some(h), Some(pc)) => Arc::ptr_eq(h.port_queues(), &pc.queues),
                _ => false,
            };
            if !keep {
                if let Some(mut h) = local.tx[p].take() {
                    let (sent, dropped) = h.tx_burst(&mut local.out[p]);
                    let c = &self.stats.ports[p];
                    bump(&c.tx_packets, sent as u64);
                    bump(&c.tx_dropped, dropped as u64);
                }
                local.out[p].clear();
                local.pending &= !(1u64 << p);
                local.out_bytes[p] = 0;
                local.tx[p] = snap
                    .port(p as u16)
                    .and_then(|pc| pc.queues.claim_tx(self.index as u16));
            }
        }
    }

    /// Switches one received burst into the per-port output batches.
    #[inline(always)]
    fn switch_burst(
        &self,
        snap: &Snapshot,
        in_port_id: u16,
        rx: &mut MbufBatch,
        local: &mut WorkerState,
    ) {
        let n = rx.len();
        let Some(in_port) = snap.port(in_port_id) else {
            bump(
                &self.stats.ports[in_port_id as usize % MAX_PORTS].rx_dropped,
                rx.clear() as u64,
            );
            return;
        };
        let Some(bridge) = snap.bridges.get(in_port.bridge) else {
            bump(
                &self.stats.ports[in_port_id as usize].rx_dropped,
                rx.clear() as u64,
            );
            return;
        };
        let fdb: &MacTable = &bridge.fdb;
        // Warm every frame's first line before the decision loop reads it.
        for i in 0..n {
            if let Some(m) = rx.get(i) {
                m.prefetch_data();
            }
        }
        // Phase 1: a decision per frame. Frames whose Ethernet+tag bytes
        // equal the previous frame's get its decision without a second
        // parse and lookup (the previous frame already learned the source).
        let mut decisions = [Decision::Drop(DropReason::Malformed); BURST];
        // The flood set of the last multi-port flood decision.
        let mut flood_set: Option<FloodSet> = None;
        let mut rx_bytes = 0u64;
        let mut last_hdr = 0u128;
        let mut last: Option<Decision> = None;
        let mut uniform = true;
        // rx_burst fills slots 0..n without gaps, so decision i is frame i
        // both here and in phase 2's drain.
        debug_assert!(rx.is_compact());
        for (i, decision) in decisions[..n].iter_mut().enumerate() {
            let Some(m) = rx.get_mut(i) else { continue };
            rx_bytes += m.pkt_len() as u64;
            if m.rx_vlan_tci().is_some() && !restore_stripped_tag(m) {
                *decision = Decision::Drop(DropReason::Malformed);
                uniform = false;
                continue;
            }
            let data = m.data();
            // 22 bytes cover everything an L2 parse reads (two tags).
            let hdr = data.get(..16).filter(|_| data.len() >= 22).map(|h| {
                let mut b = [0u8; 16];
                b.copy_from_slice(h);
                u128::from_ne_bytes(b)
            });
            let d = match (hdr, last) {
                (Some(h), Some(d)) if h == last_hdr => d,
                _ => {
                    let d = match FlowKey::extract_l2(data, None) {
                        Ok(key) => match decide(&key, in_port, snap, fdb) {
                            // Flooding to one port is sending to it.
                            Decision::Flood { vlan, in_tci } => {
                                let set = FloodSet::new(snap, in_port, vlan, in_tci);
                                let d = match set.targets() {
                                    [] => Decision::Drop(DropReason::NoOutput),
                                    &[(p, action)] => Decision::Unicast(p, action),
                                    _ => Decision::Flood { vlan, in_tci },
                                };
                                // Phase 2 floods with it.
                                if let Decision::Flood { .. } = d {
                                    flood_set = Some(set);
                                }
                                d
                            }
                            d => d,
                        },
                        Err(_) => Decision::Drop(DropReason::Malformed),
                    };
                    uniform &= i == 0;
                    match hdr {
                        Some(h) => {
                            last_hdr = h;
                            last = Some(d);
                        }
                        None => last = None,
                    }
                    d
                }
            };
            *decision = d;
        }

        // Phase 2, fast case: the whole burst to one port unchanged (one
        // flow, or flows between the same two MACs) moves as one batch.
        if let (true, Decision::Unicast(p, TagAction::Keep)) = (uniform, decisions[0]) {
            let p = p as usize % MAX_PORTS;
            if local.out[p].is_empty() && rx.is_compact() {
                std::mem::swap(&mut local.out[p], rx);
                local.out_bytes[p] += rx_bytes;
                local.pending |= 1u64 << p;
                self.finish_burst(in_port_id, n, rx_bytes, 0);
                return;
            }
        }

        // Phase 2, general case: frame by frame. Flood targets come from
        // phase 1 (worked out again only when a burst floods in two VLANs).
        let mut dropped = 0u64;
        for (i, mut m) in rx.drain().enumerate() {
            match decisions[i] {
                Decision::Unicast(p, action) => {
                    if apply_tag(&mut m, action) {
                        self.enqueue(local, p, m);
                    } else {
                        self.stats.drops.malformed.add(1);
                        dropped += 1;
                        drop_into(&mut local.trash, m);
                    }
                }
                Decision::Flood { vlan, in_tci } => {
                    let set = match flood_set {
                        Some(ref set) if set.is_for(vlan, in_tci) => set,
                        _ => flood_set.insert(FloodSet::new(snap, in_port, vlan, in_tci)),
                    };
                    if !self.flood(set, m, local) {
                        dropped += 1;
                    }
                }
                Decision::Drop(reason) => {
                    match reason {
                        DropReason::Malformed => self.stats.drops.malformed.add(1),
                        DropReason::VlanViolation => self.stats.drops.vlan_violation.add(1),
                        DropReason::NoOutput => self.stats.drops.no_output.add(1),
                    }
                    dropped += 1;
                    drop_into(&mut local.trash, m);
                }
            }
        }
        local.trash.clear();
        self.finish_burst(in_port_id, n, rx_bytes, dropped);
    }

    #[inline(always)]
    fn finish_burst(&self, in_port_id: u16, n: usize, rx_bytes: u64, dropped: u64) {
        let c = &self.stats.ports[in_port_id as usize % MAX_PORTS];
        bump(&c.rx_packets, n as u64);
        bump(&c.rx_bytes, rx_bytes);
        bump(&c.rx_dropped, dropped);
    }

    #[inline(always)]
    fn enqueue(&self, local: &mut WorkerState, port: u16, m: Mbuf) {
        let p = port as usize % MAX_PORTS;
        local.out_bytes[p] += m.pkt_len() as u64;
        local.pending |= 1u64 << p;
        if let Err(m) = local.out[p].push(m) {
            // Cannot happen (flushed when full below); never lose it silently.
            drop_into(&mut local.trash, m);
            bump(&self.stats.ports[p].tx_dropped, 1);
        }
        if local.out[p].is_full() {
            self.flush_port(local, p);
        }
    }

    /// Sends `m` to every port of its flood set: a copy per extra port, the
    /// original to the last. False if nothing went.
    fn flood(&self, set: &FloodSet, m: Mbuf, local: &mut WorkerState) -> bool {
        let targets = set.targets();
        let k = targets.len();
        if k == 0 {
            self.stats.drops.no_output.add(1);
            drop_into(&mut local.trash, m);
            return false;
        }
        for &(p, action) in &targets[..k - 1] {
            let copy = match local.spare.pop() {
                Some(c) => Some(c),
                None => {
                    local.spare.alloc_bulk_from(&self.pool, BURST);
                    local.spare.pop()
                }
            };
            match copy {
                Some(mut c) => {
                    if c.copy_from(m.data()) && apply_tag(&mut c, action) {
                        self.enqueue(local, p, c);
                    } else {
                        drop_into(&mut local.trash, c);
                    }
                }
                None => {
                    self.stats.drops.no_mbuf.add(1);
                    bump(&self.stats.ports[p as usize].tx_dropped, 1);
                }
            }
        }
        let (p, action) = targets[k - 1];
        let mut m = m;
        if apply_tag(&mut m, action) {
            self.enqueue(local, p, m);
        } else {
            self.stats.drops.malformed.add(1);
            drop_into(&mut local.trash, m);
        }
        true
    }

    #[inline(always)]
    fn flush_port(&self, local: &mut WorkerState, p: usize) {
        local.pending &= !(1u64 << p);
        let bytes = std::mem::take(&mut local.out_bytes[p]);
        let len = local.out[p].len();
        if len == 0 {
            return;
        }
        let c = &self.stats.ports[p];
        match local.tx[p].as_mut() {
            Some(tx) => {
                let (sent, dropped) = tx.tx_burst(&mut local.out[p]);
                bump(&c.tx_packets, sent as u64);
                // Bytes of a dropped tail are not known any more: count the
                // sent share (exact when nothing was dropped).
                bump(
                    &c.tx_bytes,
                    if sent == len {
                        bytes
                    } else {
                        bytes * sent as u64 / len as u64
                    },
                );
                if dropped > 0 {
                    bump(&c.tx_dropped, dropped as u64);
                    self.stats.drops.tx_full.add(dropped as u64);
                }
            }
            None => {
                let dropped = local.out[p].clear();
                bump(&c.tx_dropped, dropped as u64);
            }
        }
    }

    #[inline(always)]
    fn flush(&self, local: &mut WorkerState) {
        let mut pending = local.pending;
        while pending != 0 {
            let p = pending.trailing_zeros() as usize;
            pending &= pending - 1;
            self.flush_port(local, p);
        }
    }
}

/// The ports a frame flooded in `vlan` goes to, with the tag action each
/// needs: every port of the bridge in that VLAN but the input one.
pub struct FloodSet {
    vlan: u16,
    in_tci: Option<u16>,
    targets: [(u16, TagAction); MAX_PORTS],
    len: usize,
}

impl FloodSet {
    #[inline]
    pub fn new(snap: &Snapshot, in_port: &PortConf, vlan: u16, in_tci: Option<u16>) -> FloodSet {
        let mut set = FloodSet {
            vlan,
            in_tci,
            targets: [(0u16, TagAction::Keep); MAX_PORTS],
            len: 0,
        };
        let mask = snap.bridges.get(in_port.bridge).map_or(0, |b| b.port_mask);
        let mut rest = mask & !(1u64 << in_port.port_id);
        while rest != 0 {
            let p = rest.trailing_zeros() as u16;
            rest &= rest - 1;
            if let Some(eg) = snap.port(p).and_then(|o| o.vlan.egress(vlan)) {
                if set.len < MAX_PORTS {
                    set.targets[set.len] = (p, tag_action(in_tci, eg));
                    set.len += 1;
                }
            }
        }
        set
    }

    pub fn targets(&self) -> &[(u16, TagAction)] {
        &self.targets[..self.len]
    }

    fn is_for(&self, vlan: u16, in_tci: Option<u16>) -> bool {
        self.vlan == vlan && self.in_tci == in_tci
    }
}

/// NICs that strip the tag into metadata: put it back in the frame so
/// every later step sees one representation.
#[cold]
fn restore_stripped_tag(m: &mut Mbuf) -> bool {
    let tci = m.rx_vlan_tci().unwrap_or(0);
    m.clear_rx_vlan();
    apply_tag(m, TagAction::Push(tci))
}

/// Queues `m` for the burst's bulk free.
#[inline(always)]
fn drop_into(trash: &mut MbufBatch, m: Mbuf) {
    if let Err(m) = trash.push(m) {
        trash.clear();
        let _ = trash.push(m);
    }
}
