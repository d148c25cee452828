//! `vswitchd`: the control thread ([`daemon`]) that brings up the EAL,
//! the ports ([`port`]: what backs each one) and the pinned PMD workers,
//! serves the control socket and Prometheus ([`metrics`]), and compiles the
//! Neutron model into the dataplane's snapshots ([`compiler`]). Its
//! configuration and socket protocol are in `control_api`, the Neutron
//! service in `neutron`.
pub mod compiler;
pub mod daemon;
pub mod metrics;
pub mod perms;
pub mod port;
