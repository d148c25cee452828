//! The PMD side of Ferroswitch: snapshots that pair the switching view with
//! the ports' DPDK queues ([`snapshot`]), and the pinned poll-mode worker
//! that moves bursts between those queues and the switching core
//! ([`worker`]). Everything the fast path decides lives in `switch_core`,
//! re-exported here.
pub mod snapshot;
pub mod worker;

pub use switch_core::{
    acl, conntrack, dhcp, dhcp6, flow_key, flow_table, frame, l2pop, mac_table, neighbour,
    pipeline, port, selfcheck, stats, view, vlan, wire,
};
