//! File descriptors: every API, metrics and control-socket connection holds
//! one. The soft `RLIMIT_NOFILE` is raised to the hard one at start, and the
//! API's connection limit is kept below it with room left for the control
//! socket, `/metrics`, the ports and the store, so a flood of connections
//! is turned away by the limit, not by `accept: Too many open files`.
use super::error::DaemonError;
use super::socket::MAX_CLIENTS;
use crate::metrics::METRICS_LIMITS;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors kept for everything but the listeners' connections: DPDK
/// (hugepage files, eventfds, vhost-user and af_packet sockets), SQLite,
/// the tokio runtimes, logs.
pub const RESERVED: u64 = 512;
/// The fewest API connections the daemon starts with.
pub const MIN_API_CONNECTIONS: u64 = 16;

/// Raises the soft descriptor limit to the hard one and returns how many
/// API connections fit (the configured `neutron.max_connections`, lowered
/// with a warning when the limit is short).
pub(super) fn descriptor_budget(
    neutron: Option<&neutron::NeutronConfig>,
) -> Result<usize, DaemonError> {
    let nofile = raise_nofile();
    let others = RESERVED + MAX_CLIENTS as u64 + METRICS_LIMITS.max_connections as u64;
    let Some(n) = neutron else {
        return Ok(0);
    };
    let room = nofile.saturating_sub(others);
    if room < MIN_API_CONNECTIONS {
        return Err(DaemonError::Config(control_api::config::ConfigError {
            key: "neutron.max_connections".into(),
            reason: format!(
                "the file-descriptor limit (RLIMIT_NOFILE) is {nofile}: the API needs at \
                 least {MIN_API_CONNECTIONS} beyond the {others} kept for the rest; raise it \
                 (ulimit -n, LimitNOFILE=)"
            ),
        }));
    }
    if n.max_connections as u64 > room {
        tracing::warn!(
            "neutron.max_connections {} lowered to {room}: RLIMIT_NOFILE is {nofile}, {others} are kept for the control socket, /metrics, ports and the store",
            n.max_connections
        );
        return Ok(room as usize);
    }
    Ok(n.max_connections)
}

/// The soft `RLIMIT_NOFILE` after raising it as far as allowed.
fn raise_nofile() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::debug!("RLIMIT_NOFILE raised from {soft} to {hard}");
                hard
            }
            Err(e) => {
                tracing::warn!("cannot raise RLIMIT_NOFILE from {soft} to {hard}: {e}");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            tracing::warn!("cannot read RLIMIT_NOFILE: {e}");
            1024
        }
    }
}
