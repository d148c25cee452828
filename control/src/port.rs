//! What backs a switch port: a DPDK ethdev (NIC, VF, vdev, internal TAP),
//! a vhost-user socket, a packet socket (afpacket), or nothing (a VXLAN
//! tunnel port, whose frames go through its uplink), behind one interface
//! for the daemon.
use control_api::config::Device;
use dpdk_sys::ethdev::{EthPort, EthStats, PortQueues, PortSetup};
use dpdk_sys::mempool::Mempool;
use dpdk_sys::packet::PacketPort;
use dpdk_sys::vhost::{VhostMode, VhostPort, VhostStatus};
use dpdk_sys::DpdkError;
use std::sync::Arc;

pub enum PortDevice {
    Eth(EthPort),
    Vhost(VhostPort),
    Packet(PacketPort),
    /// A VXLAN tunnel port: no queues of its own.
    Tunnel(dataplane::port::PortId),
}

/// A port's operational state, in Neutron's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    /// Link up; for vhost-user: a guest is attached with its queues enabled.
    Active,
    Down,
}

impl PortState {
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Active => "ACTIVE",
            PortState::Down => "DOWN",
        }
    }
}

impl PortDevice {
    /// Opens the device as switch port `number`.
    pub fn open(
        number: dataplane::port::PortId,
        device: &Device,
        setup: PortSetup,
        pool: &Arc<Mempool>,
        tso_pool: Option<&Arc<Mempool>>,
        vhost_gid: Option<u32>,
    ) -> Result<PortDevice, DpdkError> {
        Ok(match device {
            Device::Eth { devargs } => {
                PortDevice::Eth(EthPort::open(number, devargs, setup, pool)?)
            }
            Device::Vhost { path, mode } => {
                let mode = match mode {
                    control_api::config::VhostMode::Client => VhostMode::Client,
                    control_api::config::VhostMode::Server => VhostMode::Server,
                };
                if mode == VhostMode::Server {
                    // The directory (vhost_sock_dir, 0750/0770) was set up
                    // at start; its mode covers the moment before ours.
                    remove_stale_socket(path);
                }
                let port = VhostPort::open(number, path, mode, setup, pool, tso_pool)?;
                if mode == VhostMode::Server {
                    // DPDK bound it with the umask's mode: only the
                    // daemon's user and the group may be its guest.
                    // A socket that stays open to everyone is not opened.
                    crate::perms::own_socket(std::path::Path::new(path), vhost_gid).map_err(
                        |e| DpdkError {
                            call: "chmod",
                            errno: e.raw_os_error().unwrap_or(libc::EPERM),
                            reason: format!("cannot set {path}'s mode and group: {e}"),
                        },
                    )?;
                }
                PortDevice::Vhost(port)
            }
            Device::Packet { iface } => {
                PortDevice::Packet(PacketPort::open(number, iface, setup, pool)?)
            }
            Device::Vxlan { .. } => PortDevice::Tunnel(number),
        })
    }

    pub fn port_id(&self) -> dataplane::port::PortId {
        match self {
            PortDevice::Eth(e) => e.port_id(),
            PortDevice::Vhost(v) => v.port_id(),
            PortDevice::Packet(p) => p.port_id(),
            PortDevice::Tunnel(id) => *id,
        }
    }

    /// The device's queues; a tunnel port has none.
    pub fn queues(&self) -> Option<&Arc<PortQueues>> {
        match self {
            PortDevice::Eth(e) => Some(e.queues()),
            PortDevice::Vhost(v) => Some(v.queues()),
            PortDevice::Packet(p) => Some(p.queues()),
            PortDevice::Tunnel(_) => None,
        }
    }

    /// DPDK's device name, the socket path of a vhost-user port, or the
    /// kernel interface of an afpacket port.
    pub fn dpdk_name(&self) -> &str {
        match self {
            PortDevice::Eth(e) => e.dpdk_name(),
            PortDevice::Vhost(v) => v.path(),
            PortDevice::Packet(p) => p.socket().iface(),
            PortDevice::Tunnel(_) => "vxlan",
        }
    }

    pub fn state(&self) -> PortState {
        let up = match self {
            PortDevice::Eth(e) => e.link_up(),
            PortDevice::Vhost(v) => v.is_ready(),
            PortDevice::Packet(p) => p.socket().link_up(),
            // Up while it is configured: OVS has no liveness for a tunnel
            // without BFD either.
            PortDevice::Tunnel(_) => true,
        };
        if up {
            PortState::Active
        } else {
            PortState::Down
        }
    }

    pub fn vhost_status(&self) -> Option<VhostStatus> {
        match self {
            PortDevice::Eth(_) | PortDevice::Packet(_) | PortDevice::Tunnel(_) => None,
            PortDevice::Vhost(v) => Some(v.status()),
        }
    }

    /// The device's MAC, where it has one of its own (a guest's vNIC MAC is
    /// the guest's business).
    pub fn mac_addr(&self) -> Option<[u8; 6]> {
        match self {
            PortDevice::Eth(e) => Some(e.mac_addr()),
            PortDevice::Vhost(_) | PortDevice::Tunnel(_) => None,
            PortDevice::Packet(p) => p.socket().mac_addr(),
        }
    }

    /// What the PMD counted itself (vhost-user ports: nothing beyond the
    /// switch's own counters).
    pub fn hw_stats(&self) -> EthStats {
        match self {
            PortDevice::Eth(e) => e.stats().unwrap_or_default(),
            PortDevice::Vhost(_) | PortDevice::Tunnel(_) => EthStats::default(),
            PortDevice::Packet(p) => {
                use std::sync::atomic::Ordering::Relaxed;
                let s = p.socket();
                EthStats {
                    imissed: s.rx_dropped.load(Relaxed),
                    ierrors: u64::from(s.rx_errors.load(Relaxed)),
                    oerrors: s.tx_errors.load(Relaxed),
                    ..EthStats::default()
                }
            }
        }
    }

    /// Closes the device; fails (giving it back) while a worker still holds
    /// one of its queues.
    pub fn close(self) -> Result<(), (PortDevice, DpdkError)> {
        match self {
            PortDevice::Eth(e) => e.close().map_err(|(e, err)| (PortDevice::Eth(e), err)),
            PortDevice::Vhost(v) => v.close().map_err(|(v, err)| (PortDevice::Vhost(v), err)),
            PortDevice::Packet(p) => p.close().map_err(|(p, err)| (PortDevice::Packet(p), err)),
            PortDevice::Tunnel(_) => Ok(()),
        }
    }
}

/// A server-mode socket left by a switch that was killed: nobody listens on
/// it, and binding would fail with EADDRINUSE.
fn remove_stale_socket(path: &str) {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket && std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}
