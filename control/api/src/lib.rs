//! The switch daemon's interface, shared by `vswitchd` and `vswitchctl`:
//! the TOML configuration (validated, every error naming its key:
//! [`config`]) and the control socket's protocol, one JSON request and one
//! JSON response per connection ([`protocol`]). Links no DPDK.
pub mod config;
pub mod protocol;
