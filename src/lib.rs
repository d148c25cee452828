//! Ferroswitch: a userspace DPDK fast-path virtual switch.
//!
//! This root crate only re-exports the workspace crates so the end-to-end
//! tests in `tests/` and the micro-benchmarks in `benches/` can reach them.
pub use control;
pub use dataplane;
pub use dpdk_sys as ffi;
