//! A snapshot as the workers get it: the switching view (what to do with
//! a frame) plus the device side (each port's queues, and which worker
//! polls which rx queue). Published RCU-style through a [`SnapshotCell`].
use dpdk_sys::ethdev::PortQueues;
use std::sync::Arc;
use switch_core::conntrack::ConnTable;
use switch_core::port::{PortId, MAX_PORTS};
use switch_core::rcu::Generation;
use switch_core::view::SwitchView;

/// The whole fast-path configuration at one instant.
#[derive(Debug)]
pub struct Snapshot {
    pub generation: u64,
    pub view: SwitchView,
    /// Per port: the queues workers claim.
    queues: Box<[Option<Arc<PortQueues>>; MAX_PORTS]>,
    /// Per worker: the (port, rx queue) pairs it polls.
    pub rx_assignment: Vec<Vec<(PortId, u16)>>,
    /// The connection tracker, shared by every snapshot once some port has
    /// port security; `None` before: no frame is filtered.
    pub conntrack: Option<Arc<ConnTable>>,
}

/// The cell workers load snapshots from.
pub type SnapshotCell = switch_core::rcu::SnapshotCell<Snapshot>;

impl Snapshot {
    /// No port, no bridge, `workers` empty assignments.
    pub fn empty(workers: usize) -> Snapshot {
        Snapshot::new(0, SwitchView::default(), vec![Vec::new(); workers])
    }

    pub fn new(
        generation: u64,
        view: SwitchView,
        rx_assignment: Vec<Vec<(PortId, u16)>>,
    ) -> Snapshot {
        Snapshot {
            generation,
            view,
            queues: Box::new(std::array::from_fn(|_| None)),
            rx_assignment,
            conntrack: None,
        }
    }

    /// Gives port `p` its queues.
    pub fn set_queues(&mut self, p: PortId, queues: Arc<PortQueues>) {
        self.queues[p.index()] = Some(queues);
    }

    #[inline(always)]
    pub fn queues(&self, p: PortId) -> Option<&Arc<PortQueues>> {
        self.queues[p.index()].as_ref()
    }
}

impl Generation for Snapshot {
    fn generation(&self) -> u64 {
        self.generation
    }
}
