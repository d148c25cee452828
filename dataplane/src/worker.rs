//! The poll-mode worker: a pinned thread that polls its (port, rx queue)
//! pairs in bursts of [`BURST`] and hands each burst to the switching
//! core's pipeline (`switch_core::pipeline`: classify, the switch's DHCP
//! server for ports that have one, the security stage
//! when some port has port security, execute, transmit),
//! with DPDK's mbufs as the frames, flood copies from the mempool, and the
//! ports' tx queues as the transmit side. The loop itself only moves
//! bursts, adopts new snapshots between them and counts cycles.
//!
//! Per packet there is no allocation, lock, syscall, dynamic dispatch or FFI
//! call: mbuf fields are read directly, DPDK is called once per burst (rx,
//! tx, bulk free, bulk alloc of flood copies).
use crate::snapshot::{Snapshot, SnapshotCell};
use dpdk_sys::ethdev::{RxQueue, TxQueue};
use dpdk_sys::mbuf::{Mbuf, MbufBatch};
use dpdk_sys::mempool::Mempool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use switch_core::conntrack::ConnCache;
use switch_core::frame::{FramePool, Transmit, BURST};
use switch_core::neighbour::{NeighbourTable, Resolution};
use switch_core::offload::{self, Offload};
use switch_core::pipeline::{
    classify, decapsulate, encapsulate, execute, filter, flows, make_request, serve, BurstCounts,
    Classified, Decapsulated, Encapsulated, FlowScratch, Outputs,
};
use switch_core::port::{PortId, PortMask, MAX_PORTS};
use switch_core::stats::{bump, WorkerStats};
use switch_core::view::TunnelPort;
use switch_core::wire::{ethernet, EthernetAddress};

/// The ports' transmit sides as one worker holds them: the pipeline's
/// [`Transmit`].
struct TxPorts {
    queues: Box<[Option<TxQueue>; MAX_PORTS]>,
    stats: Arc<WorkerStats>,
    /// Buffers for segments cut in software, and one frame made contiguous.
    segments: MbufCopies,
    scratch: Vec<u8>,
    /// The burst being sent came from a device that hands over frames with
    /// offloads left (a packet socket, a guest that negotiated them): only
    /// then are frames looked at.
    offloads_in: bool,
    /// Tunnel ports, with the longest frame their uplink sends (set when a
    /// snapshot is adopted): their batches are encapsulated and leave by
    /// the uplink's queue.
    tunnels: Box<[Option<(TunnelPort, u32)>; MAX_PORTS]>,
    /// The tunnels' next hops (the snapshot's).
    neighbours: Arc<NeighbourTable>,
    /// Where the copies that become ARP probes of next hops come from.
    probes: MbufCopies,
    /// The same ports as a set: a transmit to any other port costs one bit
    /// test.
    tunnel_ports: PortMask,
    /// A tunnel port's frames once encapsulated (with the ARP requests for
    /// its next hop and what could not go), and its TCP segments once cut.
    encapsulated: Encapsulated<MbufBatch>,
    cut: MbufBatch,
}

/// Bytes sent of a batch of `of` frames and `bytes` bytes of which the
/// device took the first `sent`: the bytes of a dropped tail are not
/// known any more, so the sent share (exact when nothing was dropped).
#[inline(always)]
fn sent_share(bytes: u64, sent: usize, of: usize) -> u64 {
    if sent == of {
        bytes
    } else {
        bytes * sent as u64 / of.max(1) as u64
    }
}

/// The bytes of the frames in `b`.
fn batch_bytes(b: &MbufBatch) -> u64 {
    (0..b.len())
        .filter_map(|i| b.get(i))
        .map(|m| u64::from(m.pkt_len()))
        .sum()
}

/// The longest frame a packet socket or guest hands over with offloads.
const MAX_OFFLOAD_FRAME: usize = 65_536 + 256;

impl TxPorts {
    /// Finishes every frame of `batch` in software, in frame order: a
    /// partial checksum filled, a TCP segment still to cut cut into fresh
    /// buffers (as is a chained frame with a partial checksum), each frame
    /// that results handed to `sink`. What cannot be finished (not TCP/UDP
    /// over IP, no buffer) is dropped. Returns how many were dropped.
    fn finish_offloads(
        batch: &mut MbufBatch,
        segments: &mut MbufCopies,
        scratch: &mut Vec<u8>,
        mut sink: impl FnMut(Mbuf),
    ) -> u64 {
        let mut unfinished = 0u64;
        for mut m in batch.drain() {
            let o = m.offload();
            if o.is_none() {
                sink(m);
                continue;
            }
            if o.tcp_mss == 0 && m.nb_segs() == 1 {
                if m.data_mut().is_some_and(offload::finish_checksum) {
                    m.set_offload(Offload::NONE);
                    sink(m);
                } else {
                    unfinished += 1;
                }
                continue;
            }
            // Cut (or, for a chained frame with a partial checksum only,
            // finish as one segment) from a contiguous copy.
            scratch.clear();
            m.segments().for_each(|seg| scratch.extend_from_slice(seg));
            let mss = if o.tcp_mss == 0 { u16::MAX } else { o.tcp_mss };
            let mut lost = false;
            let cut = offload::segment_tcp(scratch, mss, |h, p, _| {
                let seg = segments.fresh().and_then(|mut s| {
                    let ok = s.copy_from(h)
                        && s.resize((h.len() + p.len()) as u16).is_some_and(|d| {
                            d[h.len()..].copy_from_slice(p);
                            true
                        });
                    ok.then_some(s)
                });
                match seg {
                    Some(s) => {
                        sink(s);
                        true
                    }
                    None => {
                        lost = true;
                        false
                    }
                }
            });
            if cut.is_none() || lost {
                unfinished += 1;
            }
        }
        unfinished
    }

    /// Sends `batch` out of `tx`, a device that takes no offloads, with
    /// every offload finished ([`Self::finish_offloads`]); a batch that
    /// fills up goes at once. Returns (frames sent, bytes sent, frames
    /// dropped).
    fn send_finished(
        tx: &mut TxQueue,
        batch: &mut MbufBatch,
        segments: &mut MbufCopies,
        scratch: &mut Vec<u8>,
    ) -> (u64, u64, u64) {
        let mut out = MbufBatch::new();
        let (mut sent, mut bytes, mut dropped) = (0u64, 0u64, 0u64);
        let mut send = |out: &mut MbufBatch| {
            let b = batch_bytes(out);
            let n = out.len();
            let (s, d) = tx.tx_burst(out);
            sent += s as u64;
            bytes += sent_share(b, s, n);
            dropped += d as u64;
        };
        let unfinished = Self::finish_offloads(batch, segments, scratch, |m| {
            if let Err(m) = out.push(m) {
                send(&mut out);
                let _ = out.push(m);
            }
        });
        if !out.is_empty() {
            send(&mut out);
        }
        (sent, bytes, dropped + unfinished)
    }

    /// Sends tunnel port `port`'s `batch` (of `bytes` inner bytes): a
    /// TCP segment still to cut is cut first, then every frame gets the
    /// tunnel's outer headers and leaves by its uplink. Counted as sent by
    /// the tunnel port and by the uplink; what could not go as the tunnel
    /// port's transmit drops. Kept out of line: `transmit` stays as small
    /// as it was for every other port.
    #[inline(never)]
    fn transmit_tunnel(&mut self, port: PortId, batch: &mut MbufBatch, bytes: u64) {
        let TxPorts {
            tunnels,
            queues,
            stats,
            segments,
            scratch,
            encapsulated,
            cut,
            neighbours,
            probes,
            ..
        } = self;
        let Some((tunnel, max_frame)) = &tunnels[port.index()] else {
            return;
        };
        let max_frame = *max_frame;
        let c = stats.port(port);
        let Some(tx) = queues[tunnel.uplink.index()].as_mut() else {
            bump(&c.tx_dropped, batch.clear() as u64);
            return;
        };
        let uplink = stats.port(tunnel.uplink);
        let len = batch.len();
        let mut send = |b: &mut MbufBatch| {
            let e = encapsulate(tunnel, neighbours, max_frame, b, encapsulated, probes);
            if !encapsulated.requests.is_empty() {
                // The uplink's own frames (not the tunnel port's).
                let (sent, dropped) = tx.tx_burst(&mut encapsulated.requests);
                bump(&uplink.tx_packets, sent as u64);
                bump(&uplink.tx_bytes, (sent * ethernet::MIN_FRAME_LEN) as u64);
                bump(&uplink.tx_dropped, dropped as u64);
            }
            let n = encapsulated.frames.len();
            let (sent, dropped) = tx.tx_burst(&mut encapsulated.frames);
            bump(&c.tx_packets, sent as u64);
            bump(&uplink.tx_packets, sent as u64);
            bump(&uplink.tx_bytes, sent_share(e.bytes, sent, n));
            bump(
                &c.tx_dropped,
                dropped as u64 + e.lost + e.oversize + e.unresolved,
            );
            bump(&c.tx_oversize, e.oversize);
            stats.drops.oversize.add(e.oversize);
            stats.drops.unresolved.add(e.unresolved);
            stats.drops.tx_full.add(dropped as u64);
            encapsulated.dropped.clear();
            sent
        };
        let to_cut = (0..len).any(|i| {
            batch.get(i).is_some_and(|m| {
                let o = m.offload();
                o.tcp_mss != 0 || (o.partial_checksum && m.nb_segs() > 1)
            })
        });
        if !to_cut {
            let sent = send(batch);
            bump(&c.tx_bytes, sent_share(bytes, sent, len));
            return;
        }
        let mut sent_bytes = 0u64;
        let mut flush = |cut: &mut MbufBatch| {
            let b = batch_bytes(cut);
            let n = cut.len();
            let sent = send(cut);
            sent_bytes += sent_share(b, sent, n);
        };
        let unfinished = Self::finish_offloads(batch, segments, scratch, |m| {
            if let Err(m) = cut.push(m) {
                flush(cut);
                let _ = cut.push(m);
            }
        });
        if !cut.is_empty() {
            flush(cut);
        }
        bump(&c.tx_bytes, sent_bytes);
        bump(&c.tx_dropped, unfinished);
    }
}

impl Transmit<MbufBatch> for TxPorts {
    #[inline(always)]
    fn transmit(&mut self, port: PortId, batch: &mut MbufBatch, bytes: u64) {
        if self.tunnel_ports.contains(port) {
            self.transmit_tunnel(port, batch, bytes);
            return;
        }
        let c = self.stats.port(port);
        let len = batch.len();
        match self.queues[port.index()].as_mut() {
            Some(tx) => {
                // Frames with offloads left (from a packet socket or a guest
                // that hands them) are readied for a device that takes them
                // and finished in software for any other. Bursts from other
                // devices cost one test per transmit.
                let mut refused = 0;
                if self.offloads_in
                    && (0..len).any(|i| batch.get(i).is_some_and(|m| !m.offload().is_none()))
                {
                    if !tx.takes_offloads() {
                        let (sent, sent_bytes, dropped) =
                            Self::send_finished(tx, batch, &mut self.segments, &mut self.scratch);
                        bump(&c.tx_packets, sent);
                        bump(&c.tx_bytes, sent_bytes);
                        bump(&c.tx_dropped, dropped);
                        return;
                    }
                    tx.prepare_offloads(batch);
                    refused = len - batch.len();
                }
                let (sent, dropped) = tx.tx_burst(batch);
                bump(&c.tx_packets, sent as u64);
                bump(&c.tx_bytes, sent_share(bytes, sent, len));
                if dropped + refused > 0 {
                    bump(&c.tx_dropped, (dropped + refused) as u64);
                    self.stats.drops.tx_full.add(dropped as u64);
                }
            }
            None => {
                let dropped = batch.clear();
                bump(&c.tx_dropped, dropped as u64);
            }
        }
    }

    #[inline(always)]
    fn lost(&mut self, port: PortId, frames: u64) {
        bump(&self.stats.port(port).tx_dropped, frames);
    }

    #[inline(always)]
    fn oversize(&mut self, port: PortId, frames: u64) {
        let c = self.stats.port(port);
        bump(&c.tx_dropped, frames);
        bump(&c.tx_oversize, frames);
    }
}

/// Flood copies: fresh mbufs taken from the pool 32 at a time.
struct MbufCopies {
    spare: MbufBatch,
    pool: Arc<Mempool>,
}

impl MbufCopies {
    #[inline(always)]
    fn fresh(&mut self) -> Option<Mbuf> {
        match self.spare.pop() {
            Some(c) => Some(c),
            None => {
                self.spare.alloc_bulk_from(&self.pool, BURST);
                self.spare.pop()
            }
        }
    }
}

impl FramePool for MbufCopies {
    type Frame = Mbuf;

    /// A copy of the whole frame, however the PMD laid it out: a frame it
    /// chained (a jumbo frame) is copied into as many fresh buffers as its
    /// bytes need (a PMD's later segments may have no headroom, so they
    /// can be longer than a fresh buffer holds).
    #[inline(always)]
    fn copy_of(&mut self, src: &Mbuf) -> Option<Mbuf> {
        let mut head = self.fresh()?;
        if src.nb_segs() == 1 && head.copy_from(src.data()) {
            head.set_offload(src.offload());
            return Some(head);
        }
        // Fresh buffers come from one pool: each holds `room` bytes.
        let room = head.room().max(1);
        let mut chunks = src.segments().flat_map(|seg| seg.chunks(room));
        if !head.copy_from(chunks.next().unwrap_or_default()) {
            return None;
        }
        for chunk in chunks {
            let mut s = self.fresh()?;
            if !s.copy_from(chunk) || !head.append_segment(s) {
                return None;
            }
        }
        head.set_offload(src.offload());
        Some(head)
    }
}

/// Per-worker state that lives across bursts: queue handles, the pipeline's
/// scratch and output batches, spare mbufs. Sized once; nothing grows later.
pub struct WorkerState {
    rx: Vec<RxQueue>,
    tx: TxPorts,
    classified: Classified,
    outputs: Outputs<MbufBatch>,
    copies: MbufCopies,
    /// Where the connections this worker saw last live in the tracker.
    ct_cache: ConnCache,
    /// The flow stage's exact-match cache and scratch.
    flow_scratch: FlowScratch,
    /// Frames the flow tables emitted to NORMAL, for the L2 stages.
    normal: MbufBatch,
    /// An uplink's burst split into its own frames and its tunnels'.
    decapsulated: Decapsulated<MbufBatch>,
    /// One tunnel port's inner frames of that burst.
    tunnel_rx: MbufBatch,
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
        let mut t0 = cpu::tsc();
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
                local.tx.offloads_in = local.rx[qi].port_queues().hands_offloads();
                if snap.view.is_uplink(in_port) {
                    self.receive_uplink(&snap, in_port, &mut rx_batch, &mut local);
                } else {
                    self.process_burst(&snap, in_port, &mut rx_batch, &mut local);
                }
            }
            let t1 = cpu::tsc();
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
        local.outputs.flush(&mut local.tx);
        local.tx.queues.iter_mut().for_each(|t| *t = None);
        self.cell.set_active(self.index, false);
    }

    /// Fresh per-worker state (allocates: call before polling starts).
    pub fn new_state(&self) -> WorkerState {
        WorkerState {
            rx: Vec::with_capacity(MAX_PORTS * 4),
            tx: TxPorts {
                queues: Box::new(std::array::from_fn(|_| None)),
                stats: Arc::clone(&self.stats),
                segments: MbufCopies {
                    spare: MbufBatch::new(),
                    pool: Arc::clone(&self.pool),
                },
                scratch: Vec::with_capacity(MAX_OFFLOAD_FRAME),
                offloads_in: false,
                tunnels: Box::new([const { None }; MAX_PORTS]),
                neighbours: Arc::default(),
                probes: MbufCopies {
                    spare: MbufBatch::new(),
                    pool: Arc::clone(&self.pool),
                },
                tunnel_ports: PortMask::EMPTY,
                encapsulated: Encapsulated::default(),
                cut: MbufBatch::new(),
            },
            decapsulated: Decapsulated::default(),
            tunnel_rx: MbufBatch::new(),
            classified: Classified::default(),
            ct_cache: ConnCache::new(),
            flow_scratch: FlowScratch::default(),
            normal: MbufBatch::new(),
            outputs: Outputs::default(),
            copies: MbufCopies {
                spare: MbufBatch::new(),
                pool: Arc::clone(&self.pool),
            },
        }
    }

    /// The three stages on one received burst from `in_port`, transmit
    /// included: what the poll loop does per rx burst (public for the
    /// benchmarks).
    #[inline(always)]
    pub fn process_burst(
        &self,
        snap: &Snapshot,
        in_port: PortId,
        rx: &mut MbufBatch,
        local: &mut WorkerState,
    ) {
        // A bridge with flows of its own: the flow tables first; what they
        // emit to NORMAL goes on through the L2 stages, counted once.
        let mut received = None;
        if let Some(tables) = snap.view.flows_of(in_port) {
            let c = flows(
                &snap.view,
                tables,
                snap.conntrack.as_deref(),
                &mut local.flow_scratch,
                self.index,
                in_port,
                rx,
                &mut local.normal,
                &mut local.outputs,
                &mut local.copies,
                &mut local.tx,
            );
            let cache = &mut local.flow_scratch.cache;
            self.stats
                .flow_cache_hits
                .add(std::mem::take(&mut cache.hits));
            self.stats
                .flow_megaflow_hits
                .add(std::mem::take(&mut cache.mega_hits));
            self.stats
                .flow_cache_misses
                .add(std::mem::take(&mut cache.misses));
            std::mem::swap(rx, &mut local.normal);
            if rx.is_empty() {
                local.outputs.flush(&mut local.tx);
                self.stats.count_burst(in_port, &c);
                return;
            }
            received = Some(c);
        }
        classify(&snap.view, in_port, rx, &mut local.classified);
        let (hits, misses) = local.classified.take_cache_counts();
        self.stats.normal_cache_hits.add(hits);
        self.stats.normal_cache_misses.add(misses);
        if let Some(s) = serve(&snap.view, in_port, rx, &mut local.classified) {
            self.stats.count_serve(in_port, &s);
        }
        if let Some(ct) = &snap.conntrack {
            let f = filter(
                &snap.view,
                ct,
                &mut local.ct_cache,
                in_port,
                rx,
                &mut local.classified,
            );
            self.stats.count_filter(in_port, &f);
        }
        let counts = execute(
            &snap.view,
            &local.classified,
            rx,
            &mut local.outputs,
            &mut local.copies,
            &mut local.tx,
        );
        local.outputs.flush(&mut local.tx);
        match received {
            None => self.stats.count_burst(in_port, &counts),
            Some(c) => {
                // Received as the flow stage counted them (before edits);
                // the L2 stages add their drops.
                self.stats.count_burst(in_port, &c);
                self.stats.count_burst(
                    in_port,
                    &BurstCounts {
                        rx_packets: 0,
                        rx_bytes: 0,
                        ..counts
                    },
                );
            }
        }
    }

    /// A burst from an uplink that holds tunnel endpoints: its tunnel
    /// packets are decapsulated and switched as received on their tunnel
    /// ports, one run per port; the rest as received on the uplink. Kept
    /// out of line: the poll loop stays as small as it was for every other
    /// port.
    #[inline(never)]
    fn receive_uplink(
        &self,
        snap: &Snapshot,
        uplink: PortId,
        rx: &mut MbufBatch,
        local: &mut WorkerState,
    ) {
        let counts = decapsulate(&snap.view, uplink, rx, &mut local.decapsulated);
        self.stats.count_burst(uplink, &counts);
        local.decapsulated.dropped.clear();
        let answers = &mut local.decapsulated.answers;
        if !answers.is_empty() {
            let bytes = batch_bytes(answers);
            local.tx.transmit(uplink, answers, bytes);
        }
        std::mem::swap(rx, &mut local.decapsulated.rest);
        if !rx.is_empty() {
            self.process_burst(snap, uplink, rx, local);
        }
        let mut inner = std::mem::take(&mut local.tunnel_rx);
        while let Some(port) = local.decapsulated.next_run(&mut inner) {
            self.process_burst(snap, port, &mut inner, local);
            // Consumed by the stages; anything left is released.
            inner.clear();
        }
        local.tunnel_rx = inner;
    }

    /// Takes the queue handles the snapshot assigns to this worker and
    /// releases those it no longer does (not on the per-packet path).
    pub fn adopt(&self, snap: &Snapshot, local: &mut WorkerState) {
        let want: &[(PortId, u16)] = snap
            .rx_assignment
            .get(self.index)
            .map(|v| &v[..])
            .unwrap_or(&[]);
        local.rx.retain(|q| {
            want.contains(&(q.port_id(), q.queue()))
                && snap
                    .queues(q.port_id())
                    .is_some_and(|p| Arc::ptr_eq(p, q.port_queues()))
        });
        for &(p, q) in want {
            if local.rx.iter().any(|h| h.port_id() == p && h.queue() == q) {
                continue;
            }
            if let Some(h) = snap.queues(p).and_then(|pq| pq.claim_rx(q)) {
                local.rx.push(h);
            }
        }
        local.tx.tunnel_ports = snap.view.tunnel_ports();
        local.tx.neighbours = Arc::clone(snap.view.neighbours());
        for p in PortId::all() {
            local.tx.tunnels[p.index()] = snap
                .view
                .tunnel(p)
                .map(|t| (t.clone(), snap.view.max_frame(t.uplink)));
            let wanted = snap.queues(p);
            let keep = match (&local.tx.queues[p.index()], wanted) {
                (Some(h), Some(pq)) => Arc::ptr_eq(h.port_queues(), pq),
                (None, None) => true,
                _ => false,
            };
            if keep {
                continue;
            }
            // Anything still queued for the old port goes (or is counted
            // lost) before its handle does.
            local.outputs.flush_port(p, &mut local.tx);
            local.outputs.discard_port(p);
            local.tx.queues[p.index()] = None;
            local.tx.queues[p.index()] = wanted.and_then(|pq| pq.claim_tx(self.index as u16));
        }
        local.tx.solicit_next_hops();
    }
}

impl TxPorts {
    /// Asks by ARP for every tunnel next hop not known yet (whose request
    /// for this second no worker has sent): a tunnel that has just come up,
    /// on a restarted host or towards one, resolves before its first frame
    /// instead of losing it. When a snapshot is adopted, not per packet.
    fn solicit_next_hops(&mut self) {
        let table = Arc::clone(&self.neighbours);
        let now = table.now();
        for n in table.entries() {
            if n.resolve(now, table.aging()) != Resolution::Unknown {
                continue;
            }
            let Some(tx) = self.queues[n.hop.uplink.index()].as_mut() else {
                continue;
            };
            if !n.claim_request(now) {
                continue;
            }
            let Some(mut m) = self.probes.fresh() else {
                continue;
            };
            if !make_request(&mut m, &n.hop, EthernetAddress::BROADCAST) {
                continue;
            }
            let mut one = MbufBatch::new();
            let _ = one.push(m);
            let (sent, dropped) = tx.tx_burst(&mut one);
            let c = self.stats.port(n.hop.uplink);
            bump(&c.tx_packets, sent as u64);
            bump(&c.tx_bytes, (sent * ethernet::MIN_FRAME_LEN) as u64);
            bump(&c.tx_dropped, dropped as u64);
            n.requests.fetch_add(sent as u64, Ordering::Relaxed);
        }
    }
}
