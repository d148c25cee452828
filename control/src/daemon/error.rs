//! Why the daemon could not start, or refused a change. Every message
//! names what it is about: a configuration key at start, a request field
//! for a change.
use control_api::config::ConfigError;
use control_api::config::PORT_LIMIT;
use dpdk_sys::DpdkError;

/// Why the daemon could not start. Nothing keeps running after one.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("eal.args: {0}")]
    Eal(DpdkError),
    #[error("dataplane.mbufs: {0}")]
    Pool(DpdkError),
    /// A port of the configuration; `key` is its device's key
    /// (`bridges[0].ports[1].devargs`).
    #[error("{key}: {source}")]
    Port { key: String, source: OpenError },
    #[error("control.socket: {0}")]
    Socket(std::io::Error),
    #[error("control.metrics_listen: {addr}: {source}")]
    MetricsAddr {
        addr: String,
        source: std::net::AddrParseError,
    },
    #[error("control.metrics_listen: {addr}: {source}")]
    MetricsBind {
        addr: String,
        source: std::io::Error,
    },
    #[error("dataplane.pmd_cores: {0}")]
    Worker(#[from] WorkerError),
    #[error(transparent)]
    Neutron(#[from] neutron::NeutronError),
    #[error("control.{0}")]
    Flows(#[from] super::flows::FlowError),
}

/// Why a PMD worker did not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot pin a worker to core {0}")]
    Pin(usize),
    #[error("core {core}: {source}")]
    Register { core: usize, source: DpdkError },
    #[error("cannot start a worker thread: {0}")]
    Spawn(std::io::Error),
    #[error("the worker of core {0} died while starting")]
    Died(usize),
}

/// Why a device could not become a switch port.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{PORT_LIMIT}")]
    Full,
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Device(#[from] DpdkError),
    /// The integration bridge the port should join does not exist.
    #[error("neutron.integration_bridge: no bridge named {0:?}")]
    NoBridge(String),
}

/// Why a port change (`port add`, `port del`) was refused; nothing of it
/// was applied.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("bridge: no bridge named {0:?}")]
    NoBridge(String),
    #[error("port.name: a port named {0:?} exists")]
    NameTaken(String),
    #[error("port.{key}: device {device:?} is already a port")]
    DeviceTaken { key: &'static str, device: String },
    #[error("port: {PORT_LIMIT}")]
    Full,
    #[error("port.{key}: {source}")]
    Device {
        key: &'static str,
        source: DpdkError,
    },
    #[error("name: no port named {0:?}")]
    NoSuchPort(String),
    #[error("name: {0} is the uplink of a physical network in neutron.bridge_mappings")]
    Uplink(String),
}

/// Why a `fdb` request was refused.
#[derive(Debug, thiserror::Error)]
pub enum FdbError {
    #[error("bridge: no bridge named {0:?}")]
    NoBridge(String),
}
