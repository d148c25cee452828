//! The fast path of Ferroswitch.
//!
//! * [`acl`]: compiled security-group rule sets per port.
//! * [`wire`]: typed zero-copy views over frame bytes that never panic.
//! * [`flow_key`]: the compact key extracted once per packet.
//! * [`vlan`]: OVS-style VLAN port modes (access, trunk, native-*).
//! * [`mac_table`]: the lock-free MAC-learning table of the NORMAL action.
//! * [`snapshot`]: immutable configuration published RCU-style.
//! * [`worker`]: the pinned poll-mode worker loop.
//! * [`stats`]: single-writer counters the control thread reads.
//! * [`selfcheck`]: parser invariants shared by proptests and the fuzzer.
pub mod acl;
pub mod flow_key;
pub mod mac_table;
pub mod selfcheck;
pub mod snapshot;
pub mod stats;
pub mod vlan;
pub mod wire;
pub mod worker;
