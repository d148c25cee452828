//! Ferroswitch's control plane: the TOML configuration ([`config`]), the
//! daemon and its control thread ([`daemon`]), and the control-socket
//! protocol that `vswitchctl` speaks ([`protocol`]), and what backs a switch
//! port ([`port`]).
pub mod api_client;
pub mod compiler;
pub mod config;
pub mod daemon;
pub mod metrics;
pub mod neutron;
pub mod port;
pub mod protocol;

/// Logs to stderr (colour only on a terminal), filtered by `RUST_LOG`
/// (default `info`): the daemons' common set-up.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
