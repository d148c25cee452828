//! RCU-style configuration snapshots.
//!
//! The control thread builds an immutable [`Snapshot`] and publishes it with
//! one atomic pointer swap ([`SnapshotCell::publish`]). Workers pick up the
//! new pointer between bursts, never blocking, and report the generation they
//! run ([`SnapshotCell::quiescent`]). Once every worker has reported the new
//! generation no one can still use the old one: the control thread then drops
//! its last reference (so memory is freed off the fast path) and may close
//! ports that the new snapshot no longer has.
use crate::mac_table::MacTable;
use crate::vlan::PortVlan;
use arc_swap::ArcSwap;
use dpdk_sys::ethdev::PortQueues;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ports are indexed by their DPDK port id, which is below this bound.
pub const MAX_PORTS: usize = dpdk_sys::raw::RTE_MAX_ETHPORTS as usize;

/// A port as the fast path sees it.
#[derive(Debug)]
pub struct PortConf {
    pub port_id: u16,
    pub name: String,
    pub bridge: usize,
    pub vlan: PortVlan,
    pub queues: Arc<PortQueues>,
    /// Security-group rule set of the Neutron port attached here, if any.
    pub acl: Option<Arc<crate::acl::PortAcl>>,
}

/// A bridge: its own MAC table and flood domain.
#[derive(Debug)]
pub struct BridgeConf {
    pub name: String,
    pub fdb: Arc<MacTable>,
    /// Bit p set: port id p belongs to this bridge.
    pub port_mask: u64,
}

/// The whole fast-path configuration at one instant.
#[derive(Debug)]
pub struct Snapshot {
    pub generation: u64,
    /// Indexed by DPDK port id.
    pub ports: Vec<Option<PortConf>>,
    pub bridges: Vec<BridgeConf>,
    /// Per worker: the (port id, rx queue) pairs it polls.
    pub rx_assignment: Vec<Vec<(u16, u16)>>,
}

impl Snapshot {
    pub fn empty(workers: usize) -> Snapshot {
        Snapshot {
            generation: 0,
            ports: (0..MAX_PORTS).map(|_| None).collect(),
            bridges: Vec::new(),
            rx_assignment: vec![Vec::new(); workers],
        }
    }

    #[inline(always)]
    pub fn port(&self, port_id: u16) -> Option<&PortConf> {
        self.ports.get(port_id as usize)?.as_ref()
    }
}

#[repr(align(64))]
#[derive(Default)]
struct WorkerSync {
    seen: AtomicU64,
    active: AtomicBool,
}

/// The published snapshot plus each worker's last seen generation.
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    /// Generation of `current`, so workers poll one integer, not the pointer.
    generation: AtomicU64,
    workers: Box<[WorkerSync]>,
}

impl SnapshotCell {
    pub fn new(initial: Snapshot, workers: usize) -> SnapshotCell {
        SnapshotCell {
            generation: AtomicU64::new(initial.generation),
            current: ArcSwap::from_pointee(initial),
            workers: (0..workers).map(|_| WorkerSync::default()).collect(),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The current snapshot (worker side: a few atomic ops, no lock).
    #[inline(always)]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Worker `w` is running generation `gen` and holds nothing older.
    #[inline(always)]
    pub fn quiescent(&self, w: usize, gen: u64) {
        if let Some(s) = self.workers.get(w) {
            if s.seen.load(Ordering::Relaxed) != gen {
                s.seen.store(gen, Ordering::Release);
            }
        }
    }

    /// Marks worker `w` as polling (or gone: a stopped worker does not hold
    /// up grace periods).
    pub fn set_active(&self, w: usize, active: bool) {
        if let Some(s) = self.workers.get(w) {
            s.active.store(active, Ordering::Release);
        }
    }

    /// Publishes `next` (its generation must be higher) and returns the
    /// previous snapshot, which the caller keeps until [`Self::synchronize`].
    pub fn publish(&self, next: Snapshot) -> Arc<Snapshot> {
        let gen = next.generation;
        let prev = self.current.swap(Arc::new(next));
        self.generation.store(gen, Ordering::Release);
        prev
    }

    /// Generation of the current snapshot.
    #[inline(always)]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Waits until every active worker has moved to generation `gen` or
    /// later: a grace period. False on timeout.
    pub fn synchronize(&self, gen: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.workers.iter().all(|s| {
                !s.active.load(Ordering::Acquire) || s.seen.load(Ordering::Acquire) >= gen
            });
            if done {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}
