//! Connection tracking for the stateful security-group stage: per
//! protocol, a connection's state and whether a packet belongs to it, in a
//! table all workers share.
//!
//! * [`packet`]: a frame's L3 bytes as connection tracking reads them.
//! * [`tcp`]: TCP's state machine with sequence-window checks.
//! * [`table`]: the shared, bounded connection table: lock-free lookups,
//!   per-connection locks, expiry by a sweep.
//! * [`track`]: OVS's `ct` and `ct(commit)` over the table: a packet's
//!   `ct_state` (new, est, rel, rpl, inv).
pub mod packet;
pub mod table;
pub mod tcp;
pub mod track;

pub use packet::Untracked;
pub use table::{Conn, ConnCache, ConnKey, ConnState, ConnTable, CtSlot, InsertError, Timeouts};
pub use track::{CtPacket, CtState, L4};
