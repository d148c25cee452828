//! The switching core of Ferroswitch, with no DPDK dependency: everything
//! the fast path decides, built and tested on plain memory. The PMD worker
//! (the `dataplane` crate) moves bursts between DPDK queues and this core
//! through the [`frame`] traits.
//!
//! * [`wire`]: typed zero-copy views over frame bytes that never panic.
//! * [`flow_key`]: the compact key extracted once per packet.
//! * [`flow_table`]: OpenFlow-style flows in `ovs-ofctl`'s language, and the
//!   reference lookup the classifier will be held to (not in the pipeline
//!   yet).
//! * [`vlan`]: OVS-style VLAN port modes (access, trunk, native-*).
//! * [`offload`]: checksum and TCP segmentation offloads finished in software.
//! * [`mac_table`]: the lock-free MAC-learning table of the NORMAL action.
//! * [`l2pop`]: remote MACs and known addresses of tunnelled networks
//!   (l2population, the ARP responder).
//! * [`acl`]: compiled security-group rule sets per port.
//! * [`conntrack`]: connection tracking (TCP state and windows).
//! * [`dhcp`], [`dhcp6`]: the switch's own DHCPv4 and DHCPv6 servers for
//!   Neutron ports.
//! * [`port`]: switch port numbers and sets of them.
//! * [`frame`]: what the pipeline needs from packet buffers and bursts.
//! * [`view`]: the snapshot's switching view (ports, bridges).
//! * [`rcu`]: RCU-style publication of snapshots to the workers.
//! * [`pipeline`]: the staged burst pipeline: classify, execute, transmit.
//! * [`stats`]: single-writer counters the control thread reads.
//! * [`selfcheck`]: parser invariants shared by proptests and the fuzzer.
pub mod acl;
pub mod conntrack;
pub mod dhcp;
pub mod dhcp6;
pub mod flow_key;
pub mod flow_table;
pub mod frame;
pub mod l2pop;
pub mod mac_table;
pub mod neighbour;
pub mod offload;
pub mod pipeline;
pub mod port;
pub mod rcu;
pub mod selfcheck;
pub mod stats;
pub mod view;
pub mod vlan;
pub mod wire;

pub use frame::BURST;
pub use port::{PortId, PortMask, MAX_PORTS};
