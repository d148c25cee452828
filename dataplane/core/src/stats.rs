//! Counters written by one worker each and read by the control thread.
//!
//! Single writer: a worker updates with a plain load + store (no locked
//! instruction), once per burst, on its own cache lines.
use crate::pipeline::{BurstCounts, FilterCounts, ServeCounts};
use crate::port::{PortId, MAX_PORTS};
use std::sync::atomic::{AtomicU64, Ordering};

#[repr(align(64))]
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub fn add(&self, n: u64) {
        if n != 0 {
            self.0.store(
                self.0.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        }
    }
    #[inline(always)]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per-port counters of one worker.
#[repr(align(64))]
#[derive(Default, Debug)]
pub struct PortCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Received and not forwarded: malformed, VLAN violation, no output.
    pub rx_dropped: AtomicU64,
    /// The PMD did not take them, a flood copy could not be allocated, or
    /// they were longer than the port's MTU allows.
    pub tx_dropped: AtomicU64,
    /// Of `tx_dropped`: longer than the port's MTU allows.
    pub tx_oversize: AtomicU64,
    /// Received and dropped by port security, by `SpoofReason::index`.
    pub spoofed: [AtomicU64; 8],
    /// The switch's DHCP server on this port, by `DhcpCounter::index`.
    pub dhcp: [AtomicU64; crate::dhcp::DhcpCounter::COUNT],
    /// ARP requests from this port the ARP responder answered.
    pub arp_answered: AtomicU64,
}

#[inline(always)]
pub fn bump(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// Why packets were dropped, per worker.
#[derive(Default, Debug)]
pub struct DropCounters {
    pub malformed: Counter,
    pub vlan_violation: Counter,
    pub link_local: Counter,
    pub no_output: Counter,
    pub oversize: Counter,
    /// Port security: not the input port's to send.
    pub spoofed: Counter,
    /// Security groups: a new connection no rule admits.
    pub denied: Counter,
    /// Connection tracking: invalid.
    pub ct_invalid: Counter,
    /// Sent nowhere by the flow tables.
    pub flow_drop: Counter,
    /// New connections the tracker had no room for.
    pub ct_full: Counter,
    /// New connections committed to the tracker.
    pub ct_committed: Counter,
    pub tx_full: Counter,
    pub no_mbuf: Counter,
    /// A tunnel's next hop has no known MAC (ARP outstanding).
    pub unresolved: Counter,
}

/// Everything one worker counts.
#[derive(Debug)]
pub struct WorkerStats {
    pub core: usize,
    /// Packets received.
    pub packets: Counter,
    /// TSC cycles of loop iterations that received packets / that did not.
    pub busy_cycles: Counter,
    pub idle_cycles: Counter,
    pub iterations: Counter,
    /// Flow-table lookups answered by the exact-match cache, by the
    /// megaflow cache, and by the classifier.
    pub flow_cache_hits: Counter,
    pub flow_megaflow_hits: Counter,
    pub flow_cache_misses: Counter,
    /// NORMAL decisions taken from the decision cache, and taken afresh.
    pub normal_cache_hits: Counter,
    pub normal_cache_misses: Counter,
    pub drops: DropCounters,
    pub ports: Box<[PortCounters; MAX_PORTS]>,
}

impl WorkerStats {
    /// A port's counters of this worker.
    #[inline(always)]
    pub fn port(&self, p: PortId) -> &PortCounters {
        &self.ports[p.index()]
    }

    /// Counts one burst received on `in_port` (a few stores, once per burst).
    #[inline(always)]
    pub fn count_burst(&self, in_port: PortId, c: &BurstCounts) {
        let pc = self.port(in_port);
        bump(&pc.rx_packets, c.rx_packets);
        bump(&pc.rx_bytes, c.rx_bytes);
        bump(&pc.rx_dropped, c.rx_dropped);
        self.drops.malformed.add(c.malformed);
        self.drops.vlan_violation.add(c.vlan_violation);
        self.drops.link_local.add(c.link_local);
        self.drops.oversize.add(c.oversize);
        self.drops.spoofed.add(c.spoofed);
        self.drops.denied.add(c.denied);
        self.drops.ct_invalid.add(c.ct_invalid);
        self.drops.flow_drop.add(c.flow_drop);
        self.drops.no_output.add(c.no_output);
        self.drops.no_mbuf.add(c.no_mbuf);
    }

    /// Counts what the security stage did to one burst from `in_port`.
    #[inline(always)]
    pub fn count_filter(&self, in_port: PortId, f: &FilterCounts) {
        self.drops.ct_committed.add(f.committed);
        self.drops.ct_full.add(f.table_full);
        let pc = self.port(in_port);
        for (c, &n) in pc.spoofed.iter().zip(&f.spoofed) {
            bump(c, n);
        }
    }

    /// Counts what the switch's services answered in one burst from `in_port`.
    #[inline(always)]
    pub fn count_serve(&self, in_port: PortId, s: &ServeCounts) {
        let pc = self.port(in_port);
        for (c, &n) in pc.dhcp.iter().zip(&s.dhcp) {
            bump(c, n);
        }
        bump(&pc.arp_answered, s.arp_answered);
    }

    pub fn new(core: usize) -> WorkerStats {
        WorkerStats {
            core,
            packets: Counter::default(),
            busy_cycles: Counter::default(),
            idle_cycles: Counter::default(),
            iterations: Counter::default(),
            flow_cache_hits: Counter::default(),
            flow_megaflow_hits: Counter::default(),
            flow_cache_misses: Counter::default(),
            normal_cache_hits: Counter::default(),
            normal_cache_misses: Counter::default(),
            drops: DropCounters::default(),
            ports: Box::new(std::array::from_fn(|_| PortCounters::default())),
        }
    }
}

/// A port's counters summed over workers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortTotals {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    #[serde(default)]
    pub tx_oversize: u64,
    /// Port security drops by `SpoofReason::index`.
    #[serde(default)]
    pub spoofed: [u64; 8],
    /// DHCP server counters by `DhcpCounter::index`.
    #[serde(default)]
    pub dhcp: [u64; crate::dhcp::DhcpCounter::COUNT],
    #[serde(default)]
    pub arp_answered: u64,
}

impl PortTotals {
    pub fn sum(workers: &[std::sync::Arc<WorkerStats>], port: PortId) -> PortTotals {
        let mut t = PortTotals::default();
        for w in workers {
            if let Some(c) = w.ports.get(port.index()) {
                t.rx_packets += c.rx_packets.load(Ordering::Relaxed);
                t.rx_bytes += c.rx_bytes.load(Ordering::Relaxed);
                t.tx_packets += c.tx_packets.load(Ordering::Relaxed);
                t.tx_bytes += c.tx_bytes.load(Ordering::Relaxed);
                t.rx_dropped += c.rx_dropped.load(Ordering::Relaxed);
                t.tx_dropped += c.tx_dropped.load(Ordering::Relaxed);
                t.tx_oversize += c.tx_oversize.load(Ordering::Relaxed);
                for (s, a) in t.spoofed.iter_mut().zip(&c.spoofed) {
                    *s += a.load(Ordering::Relaxed);
                }
                for (s, a) in t.dhcp.iter_mut().zip(&c.dhcp) {
                    *s += a.load(Ordering::Relaxed);
                }
                t.arp_answered += c.arp_answered.load(Ordering::Relaxed);
            }
        }
        t
    }

    /// Counters since `base` (ports reuse numbers, so the daemon keeps the
    /// totals at the moment a port was added).
    pub fn since(self, base: PortTotals) -> PortTotals {
        PortTotals {
            rx_packets: self.rx_packets.wrapping_sub(base.rx_packets),
            rx_bytes: self.rx_bytes.wrapping_sub(base.rx_bytes),
            tx_packets: self.tx_packets.wrapping_sub(base.tx_packets),
            tx_bytes: self.tx_bytes.wrapping_sub(base.tx_bytes),
            rx_dropped: self.rx_dropped.wrapping_sub(base.rx_dropped),
            tx_dropped: self.tx_dropped.wrapping_sub(base.tx_dropped),
            tx_oversize: self.tx_oversize.wrapping_sub(base.tx_oversize),
            spoofed: std::array::from_fn(|i| self.spoofed[i].wrapping_sub(base.spoofed[i])),
            dhcp: std::array::from_fn(|i| self.dhcp[i].wrapping_sub(base.dhcp[i])),
            arp_answered: self.arp_answered.wrapping_sub(base.arp_answered),
        }
    }
}
