//! Ferroswitch's control plane: the TOML configuration ([`config`]), the
//! daemon and its control thread ([`daemon`]), and the control-socket
//! protocol that `vswitchctl` speaks ([`protocol`]).
pub mod api_client;
pub mod compiler;
pub mod config;
pub mod daemon;
pub mod metrics;
pub mod neutron;
pub mod protocol;
