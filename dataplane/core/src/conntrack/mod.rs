//! Connection tracking for the stateful security-group stage: per
//! protocol, a connection's state and whether a packet belongs to it.
//!
//! * [`tcp`]: TCP's state machine with sequence-window checks.
pub mod tcp;
