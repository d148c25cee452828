//! Connection tracking for the stateful security-group stage: per
//! protocol, a connection's state and whether a packet belongs to it, in a
//! table all workers share.
//!
//! * [`tcp`]: TCP's state machine with sequence-window checks.
//! * [`table`]: the shared, bounded connection table: lock-free lookups,
//!   per-connection locks, expiry by a sweep.
pub mod table;
pub mod tcp;

pub use table::{Conn, ConnKey, ConnState, ConnTable, InsertError, Timeouts};
