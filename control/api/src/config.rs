//! The daemon's TOML configuration, validated before anything starts: every
//! error names the key and the reason.
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use switch_core::vlan::{PortVlan, VlanMode};

/// The config `vswitchd` runs when given no `--config`.
pub const BUNDLED_DEFAULT: &str = include_str!("../config/default.toml");

pub const DEFAULT_SOCKET: &str = "/run/ferroswitch/vswitchd.sock";

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub eal: EalConfig,
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    #[serde(default)]
    pub control: ControlConfig,
    /// The connection tracker of the security-group stage.
    #[serde(default)]
    pub conntrack: ConntrackConfig,
    #[serde(default)]
    pub bridges: Vec<BridgeConfig>,
    /// The Neutron-compatible API and its store; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neutron: Option<neutron::NeutronConfig>,
    /// Many hosts: the Neutron model in etcd (docs/ARCHITECTURE.md "Many
    /// hosts"). Needs `[neutron]`; parsed into its `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<neutron::ClusterConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EalConfig {
    /// Extra EAL arguments; the daemon adds `-l <control_core>` unless the
    /// lcore layout is given here.
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    /// One pinned PMD worker per core listed.
    #[serde(default = "default_pmd_cores")]
    pub pmd_cores: Vec<usize>,
    #[serde(default)]
    pub control_core: usize,
    #[serde(default = "default_aging")]
    pub mac_aging_secs: u32,
    #[serde(default = "default_mac_size")]
    pub mac_table_size: usize,
    /// Seconds a tunnel's next hop learned by ARP is used unconfirmed
    /// (it is probed from half of that on; OVS: `tnl/neigh/aging`).
    #[serde(default = "default_neighbour_aging")]
    pub neighbour_aging_secs: u32,
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
    /// Where `dpdkvhostuser` (server-mode) ports create their sockets, as
    /// OVS's `vhost-sock-dir`.
    #[serde(default = "default_vhost_sock_dir")]
    pub vhost_sock_dir: String,
    /// The group that may reach the vhost-user sockets (QEMU's, e.g.
    /// `kvm` or `libvirt-qemu`): `vhost_sock_dir` and the Neutron
    /// `vhost_socket_dir` become 0770 and the sockets 0660 of this group.
    /// Absent: 0750/0660 of the daemon's own group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost_sock_group: Option<String>,
}

/// `[conntrack]`: the connection tracker, created when the first port with
/// port security appears.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConntrackConfig {
    /// Connections the tracker holds at most (OVS's `ct-maxconns`); its
    /// table (192 bytes each) is allocated up front. New connections beyond
    /// it are dropped and counted; established ones are never disturbed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a connection in each state lives without a packet.
    #[serde(default)]
    pub timeouts: switch_core::conntrack::Timeouts,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            max_connections: default_max_connections(),
            timeouts: Default::default(),
        }
    }
}

fn default_max_connections() -> usize {
    1_000_000
}

/// The id of group `name` (or of a number), as the system's group database
/// (NSS) knows it.
pub fn group_id(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("no group is named {name:?}")),
        Err(e) => Err(format!("looking up group {name:?}: {e}")),
    }
}

/// The switch's port limit, as every refusal states it.
pub const PORT_LIMIT: &str = "at most 256 ports, of which at most 32 DPDK ethdevs \
    (dpdk, internal; vhost-user and afpacket ports do not count)";

/// The longest kernel interface name (IFNAMSIZ less its NUL).
pub const IFNAME_MAX: usize = 15;

/// The most connections a tracker can index (slab slots are 30-bit).
pub const MAX_CONNECTIONS: usize = (u32::MAX >> 2) as usize;
/// The longest timeout: past it the table's clock (seconds) could wrap.
pub const MAX_TIMEOUT_SECS: u32 = 1 << 30;

fn default_pmd_cores() -> Vec<usize> {
    vec![1]
}
fn default_aging() -> u32 {
    switch_core::mac_table::DEFAULT_AGING_SECS
}
fn default_neighbour_aging() -> u32 {
    switch_core::neighbour::DEFAULT_AGING
}
fn default_mac_size() -> usize {
    switch_core::mac_table::DEFAULT_CAPACITY
}
fn default_true() -> bool {
    true
}
fn default_mbufs() -> u32 {
    16383
}
fn default_desc() -> u16 {
    1024
}
fn default_vhost_sock_dir() -> String {
    "/run/ferroswitch".to_owned()
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            pmd_cores: default_pmd_cores(),
            control_core: 0,
            mac_aging_secs: default_aging(),
            mac_table_size: default_mac_size(),
            neighbour_aging_secs: default_neighbour_aging(),
            mbufs: default_mbufs(),
            rx_desc: default_desc(),
            tx_desc: default_desc(),
            vhost_sock_dir: default_vhost_sock_dir(),
            vhost_sock_group: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    #[serde(default = "default_socket")]
    pub socket: String,
    /// `host:port` for Prometheus' `GET /metrics`; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// The group whose members may use the control socket (0660, owned by
    /// the daemon's user and this group). Absent: the daemon's own group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_group: Option<String>,
    /// Where state the daemon keeps across restarts lives: the flows
    /// added with `vswitchctl` (`flows/BRIDGE.flows`), as OVS keeps them
    /// in its database.
    #[serde(default = "default_state_dir")]
    pub state_dir: String,
}

fn default_socket() -> String {
    DEFAULT_SOCKET.to_owned()
}

/// Where the daemon's state lives unless `control.state_dir` says.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ferroswitch";

fn default_state_dir() -> String {
    DEFAULT_STATE_DIR.to_owned()
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: default_socket(),
            metrics_listen: None,
            socket_group: None,
            state_dir: default_state_dir(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    pub name: String,
    /// Forward frames to link-local control addresses (STP, LACP, LLDP,
    /// 802.1X, CDP, ...) instead of dropping them: Open vSwitch's
    /// `other_config:forward-bpdu`, false by default as there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_bpdu: bool,
    /// Checksum and TCP segmentation offloads between guests, packet
    /// sockets and NICs that support them (OVS's `userspace-tso-enable`):
    /// a guest's 64 KB TCP segments and partial checksums pass whole to
    /// ports that take them and are finished in software for the others.
    /// Off: vhost-user guests are offered neither, as in OVS without it.
    #[serde(default = "default_true")]
    pub userspace_tso: bool,
    #[serde(default)]
    pub ports: Vec<PortConfig>,
}

/// A port's kind, named as OVS names its interface types.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PortType {
    /// A DPDK ethdev by `devargs`: PCI NIC, SR-IOV VF or vdev.
    #[default]
    Dpdk,
    /// vhost-user, the VM side owns the socket at `vhost_server_path`.
    Dpdkvhostuserclient,
    /// vhost-user, the switch creates `<vhost_sock_dir>/<name>`.
    Dpdkvhostuser,
    /// A kernel TAP interface named after the port, for the host's own IP.
    Internal,
    /// An existing kernel interface (`iface`, default the port name) through
    /// a packet socket with virtio-net headers (`dpdk_sys::packet`).
    Afpacket,
    /// A VXLAN tunnel to one remote endpoint (`remote_ip`, VNI `key`),
    /// through the port whose `tunnel_ip` is `local_ip`: no device.
    Vxlan,
}

impl PortType {
    pub fn as_str(self) -> &'static str {
        match self {
            PortType::Dpdk => "dpdk",
            PortType::Dpdkvhostuserclient => "dpdkvhostuserclient",
            PortType::Dpdkvhostuser => "dpdkvhostuser",
            PortType::Internal => "internal",
            PortType::Afpacket => "afpacket",
            PortType::Vxlan => "vxlan",
        }
    }

    pub fn is_vhost(self) -> bool {
        matches!(
            self,
            PortType::Dpdkvhostuserclient | PortType::Dpdkvhostuser
        )
    }

    /// Backed by a DPDK ethdev (counted against `RTE_MAX_ETHPORTS`).
    pub fn is_ethdev(self) -> bool {
        matches!(self, PortType::Dpdk | PortType::Internal)
    }
}

impl std::fmt::Display for PortType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PortType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "dpdk" => PortType::Dpdk,
            "dpdkvhostuserclient" => PortType::Dpdkvhostuserclient,
            "dpdkvhostuser" => PortType::Dpdkvhostuser,
            "internal" => PortType::Internal,
            "afpacket" => PortType::Afpacket,
            "vxlan" => PortType::Vxlan,
            _ => {
                return Err(format!(
                "{s:?} is not one of dpdk, dpdkvhostuserclient, dpdkvhostuser, internal, afpacket, vxlan"
            ))
            }
        })
    }
}

/// Who owns a vhost-user port's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VhostMode {
    /// The VM side (QEMU) owns it; the switch connects and reconnects.
    Client,
    /// The switch creates it and the VM connects.
    Server,
}

/// What backs a port, resolved from its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    Eth {
        devargs: String,
    },
    Vhost {
        path: String,
        mode: VhostMode,
    },
    /// A packet socket with virtio-net headers on a kernel interface.
    Packet {
        iface: String,
    },
    /// No device: a VXLAN tunnel to `remote_ip` with VNI `key` (`None`:
    /// a VNI per local VLAN, `vlan_keys`).
    Vxlan {
        remote_ip: IpAddr,
        key: Option<u32>,
    },
}

impl Device {
    /// What two ports must not share.
    pub fn identity(&self) -> String {
        match self {
            Device::Eth { devargs } => devargs.split(',').next().unwrap_or("").trim().to_owned(),
            Device::Vhost { path, .. } => format!("vhost:{path}"),
            Device::Packet { iface } => format!("afpacket:{iface}"),
            Device::Vxlan {
                remote_ip,
                key: Some(key),
            } => format!("vxlan:{remote_ip}:{key}"),
            Device::Vxlan {
                remote_ip,
                key: None,
            } => format!("vxlan:{remote_ip}:flow"),
        }
    }
}

/// A port: its type (a DPDK ethdev by devargs, a vhost-user socket, an
/// internal TAP or a kernel interface by packet socket) plus OVS-style VLAN
/// settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "is_dpdk")]
    pub kind: PortType,
    /// `dpdk` ports: a PCI address (`0000:3b:00.1`) or a vdev string.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub devargs: String,
    /// `dpdkvhostuserclient` ports: the socket the VM side listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost_server_path: Option<String>,
    /// `afpacket` ports: the kernel interface (default: the port name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_mode: Option<VlanMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunks: Vec<u16>,
    /// `[[external, local], ...]`: VIDs on the wire mapped to local VLANs
    /// (the Neutron agent's uplink translation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlan_translations: Vec<(u16, u16)>,
    #[serde(default = "default_rxq")]
    pub rx_queues: u16,
    /// The Neutron port this switch port attaches (os-vif's
    /// `external_ids:iface-id`): its VLAN then comes from Neutron.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface_id: Option<String>,
    /// The port's MTU (Open vSwitch's `mtu_request`; default 1500): it sends
    /// frames up to MTU + 18 bytes and drops longer ones, counting them.
    /// Applied to the device where the device supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu_request: Option<u16>,
    /// A tunnel endpoint of this switch on this port (not a `vxlan` one):
    /// VXLAN packets to this IPv4 or IPv6 address and the port's MAC are
    /// its tunnels' (OVS: the address of the bridge the uplink is on). With
    /// a prefix length (`198.51.100.1/24`, `2001:db8::1/64`), remote
    /// endpoints outside that subnet are reached through `tunnel_gateway`;
    /// without one, every remote endpoint is on the uplink's segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_ip: Option<TunnelAddr>,
    /// The router towards remote endpoints outside the endpoint's subnet
    /// (the uplink's default route; an address in that subnet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_gateway: Option<IpAddr>,
    /// The endpoint's MAC, when not the device's own (a vdev's, or to
    /// match an address plan; OVS: the bridge's `other_config:hwaddr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_mac: Option<String>,
    /// `vxlan` ports: the remote tunnel endpoint, IPv4 or IPv6 (OVS
    /// `options:remote_ip`), of its local endpoint's family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<IpAddr>,
    /// `vxlan` ports: the VNI, 0-16777215 (OVS `options:key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<u32>,
    /// `vxlan` ports, instead of `key`: a VNI per local VLAN, as
    /// `[[vlan, vni], ...]` (the OVS agent's `br-tun`: a `key=flow` port
    /// and flows between local VLAN and tunnel id). A frame leaves with
    /// its VLAN's VNI, untagged; a received frame gets its VNI's VLAN
    /// tag. The port is a trunk of exactly these VLANs (no `vlan_mode`,
    /// `tag` or `trunks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlan_keys: Vec<(u16, u32)>,
    /// `vxlan` ports: the endpoint the tunnel starts from, a port's
    /// `tunnel_ip` (OVS `options:local_ip`); may be left out when one port
    /// has a `tunnel_ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_ip: Option<IpAddr>,
    /// `vxlan` ports: the MAC of the next hop towards `remote_ip` on the
    /// uplink, static (as OVS's `tnl/arp/set`; `aa:bb:cc:dd:ee:ff`).
    /// Without it the switch resolves the next hop by ARP (IPv6: neighbour
    /// discovery) on the uplink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_mac: Option<String>,
}

/// The MTUs a port may ask for: IPv4's minimum to a 9216-byte jumbo frame.
pub const MTU_RANGE: std::ops::RangeInclusive<u16> = 68..=9216;

fn default_rxq() -> u16 {
    1
}

fn is_dpdk(t: &PortType) -> bool {
    *t == PortType::Dpdk
}

/// A Linux interface name: 1-15 bytes, no '/', whitespace or ':'.
fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s.chars().any(|c| {
            c == '/' || c == ':' || c == ',' || c == '=' || c.is_whitespace() || c.is_control()
        })
}

/// A config error: the key it is about and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

fn err(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

impl PortConfig {
    /// A plain `dpdk` port on `devargs`.
    pub fn dpdk(name: &str, devargs: &str) -> PortConfig {
        PortConfig {
            name: name.to_owned(),
            kind: PortType::Dpdk,
            devargs: devargs.to_owned(),
            vhost_server_path: None,
            iface: None,
            vlan_mode: None,
            tag: None,
            trunks: Vec::new(),
            vlan_translations: Vec::new(),
            rx_queues: default_rxq(),
            iface_id: None,
            mtu_request: None,
            tunnel_ip: None,
            tunnel_gateway: None,
            tunnel_mac: None,
            remote_ip: None,
            key: None,
            vlan_keys: Vec::new(),
            local_ip: None,
            remote_mac: None,
        }
    }

    /// The MTU the port runs with.
    pub fn mtu(&self) -> u16 {
        self.mtu_request.unwrap_or(switch_core::view::DEFAULT_MTU)
    }

    /// The fields each type needs, and none it does not use.
    fn check_type_fields(&self, key: &str) -> Result<(), ConfigError> {
        let t = self.kind;
        let unused = |field: &str| {
            err(
                format!("{key}.{field}"),
                format!("not used by a port of type {t}"),
            )
        };
        if t != PortType::Dpdk && !self.devargs.is_empty() {
            return Err(unused("devargs"));
        }
        if t != PortType::Dpdkvhostuserclient && self.vhost_server_path.is_some() {
            return Err(unused("vhost_server_path"));
        }
        if t != PortType::Afpacket && self.iface.is_some() {
            return Err(unused("iface"));
        }
        if t == PortType::Vxlan && self.tunnel_ip.is_some() {
            return Err(unused("tunnel_ip"));
        }
        if let Some(gw) = self.tunnel_gateway {
            let Some(addr) = self.tunnel_ip else {
                return Err(err(
                    format!("{key}.tunnel_gateway"),
                    "only with tunnel_ip (the endpoint it is the gateway of)",
                ));
            };
            addr.check_gateway(gw)
                .map_err(|why| err(format!("{key}.tunnel_gateway"), why))?;
        }
        if let Some(mac) = &self.tunnel_mac {
            if self.tunnel_ip.is_none() {
                return Err(err(
                    format!("{key}.tunnel_mac"),
                    "only with tunnel_ip (the endpoint it is the MAC of)",
                ));
            }
            if !mac
                .parse::<switch_core::wire::EthernetAddress>()
                .is_ok_and(|m| m.is_unicast() && !m.is_zero())
            {
                return Err(err(
                    format!("{key}.tunnel_mac"),
                    format!("{mac:?} is not a unicast MAC (aa:bb:cc:dd:ee:ff)"),
                ));
            }
        }
        if t != PortType::Vxlan {
            for (field, set) in [
                ("remote_ip", self.remote_ip.is_some()),
                ("key", self.key.is_some()),
                ("vlan_keys", !self.vlan_keys.is_empty()),
                ("local_ip", self.local_ip.is_some()),
                ("remote_mac", self.remote_mac.is_some()),
            ] {
                if set {
                    return Err(unused(field));
                }
            }
        }
        match t {
            PortType::Dpdk => {
                if self.devargs.trim().is_empty() {
                    return Err(err(
                        format!("{key}.devargs"),
                        "must name a PCI address (0000:3b:00.1) or a vdev (net_pcap0,...)",
                    ));
                }
                if self.devargs.contains('\0') {
                    return Err(err(format!("{key}.devargs"), "contains a NUL byte"));
                }
            }
            PortType::Dpdkvhostuserclient => {
                let p = self.vhost_server_path.as_deref().unwrap_or("");
                if !p.starts_with('/') || p.contains('\0') {
                    return Err(err(
                        format!("{key}.vhost_server_path"),
                        "must be the absolute path of the VM's vhost-user socket",
                    ));
                }
                // sockaddr_un holds 108 bytes with the NUL.
                if p.len() > 107 {
                    return Err(err(
                        format!("{key}.vhost_server_path"),
                        "longer than a UNIX socket path may be (107 bytes)",
                    ));
                }
            }
            PortType::Dpdkvhostuser => {}
            PortType::Internal => {
                if !valid_ifname(&self.name) {
                    return Err(err(
                        format!("{key}.name"),
                        "an internal port's name is its kernel interface: 1-15 characters, no '/', ':', ',' or '='",
                    ));
                }
            }
            PortType::Afpacket => {
                let i = self.iface.as_deref().unwrap_or(&self.name);
                if !valid_ifname(i) {
                    return Err(err(
                        format!("{key}.iface"),
                        "must be a kernel interface name: 1-15 characters, no '/', ':', ',' or '='",
                    ));
                }
            }
            PortType::Vxlan => {
                match self.remote_ip {
                    Some(ip) if unicast(ip) && !ip.is_loopback() => {}
                    Some(ip) => {
                        return Err(err(
                            format!("{key}.remote_ip"),
                            format!("{ip} is not a unicast address"),
                        ))
                    }
                    None => {
                        return Err(err(
                            format!("{key}.remote_ip"),
                            "a vxlan port needs its remote endpoint's IPv4 or IPv6 address",
                        ))
                    }
                }
                let vni_max = switch_core::wire::vxlan::Vni::MAX;
                match (self.key, self.vlan_keys.is_empty()) {
                    (Some(k), true) if k <= vni_max => {}
                    (Some(k), true) => {
                        return Err(err(
                            format!("{key}.key"),
                            format!("{k} is not a VNI (0-16777215)"),
                        ))
                    }
                    (Some(_), false) => {
                        return Err(err(
                            format!("{key}.vlan_keys"),
                            "a vxlan port has one VNI (key) or one per VLAN (vlan_keys), not both",
                        ))
                    }
                    (None, true) => {
                        return Err(err(
                            format!("{key}.key"),
                            "a vxlan port needs its VNI (key) or a VNI per VLAN (vlan_keys)",
                        ))
                    }
                    (None, false) => {}
                }
                let mut vlans = std::collections::BTreeSet::new();
                let mut vnis = std::collections::BTreeSet::new();
                for &(vlan, vni) in &self.vlan_keys {
                    let why = if !(1..=4094).contains(&vlan) {
                        format!("VLAN {vlan} is not 1-4094")
                    } else if vni > vni_max {
                        format!("{vni} is not a VNI (0-16777215)")
                    } else if !vlans.insert(vlan) {
                        format!("VLAN {vlan} is given twice")
                    } else if !vnis.insert(vni) {
                        format!("VNI {vni} is given twice: it would be received into two VLANs")
                    } else {
                        continue;
                    };
                    return Err(err(format!("{key}.vlan_keys"), why));
                }
                if let (false, Some(field)) = (self.vlan_keys.is_empty(), self.vlan_field_set()) {
                    return Err(err(
                        format!("{key}.{field}"),
                        "a port with vlan_keys is a trunk of exactly their VLANs",
                    ));
                }
                if let Some(mac) = self.remote_mac.as_deref() {
                    if !mac
                        .parse::<switch_core::wire::EthernetAddress>()
                        .is_ok_and(|m| m.is_unicast() && !m.is_zero())
                    {
                        return Err(err(
                            format!("{key}.remote_mac"),
                            format!(
                                "{mac:?} is not a unicast MAC (aa:bb:cc:dd:ee:ff) for the next \
                                 hop; leave it out to resolve the next hop by ARP"
                            ),
                        ));
                    }
                }
                if self.rx_queues != default_rxq() {
                    return Err(unused("rx_queues"));
                }
            }
        }
        if let Some(TunnelAddr { ip, .. }) = self.tunnel_ip {
            if !unicast(ip) || ip.is_loopback() {
                return Err(err(
                    format!("{key}.tunnel_ip"),
                    format!("{ip} cannot be a tunnel endpoint"),
                ));
            }
        }
        if t.is_vhost() && self.rx_queues > switch_core::port::MAX_QUEUES {
            return Err(err(format!("{key}.rx_queues"), "too many queues"));
        }
        Ok(())
    }

    /// The first VLAN rule the port's config sets itself, if any.
    fn vlan_field_set(&self) -> Option<&'static str> {
        [
            ("vlan_mode", self.vlan_mode.is_some()),
            ("tag", self.tag.is_some()),
            ("trunks", !self.trunks.is_empty()),
            ("vlan_translations", !self.vlan_translations.is_empty()),
        ]
        .into_iter()
        .find_map(|(field, set)| set.then_some(field))
    }

    /// The key that names the port's device, for errors about the device.
    pub fn device_key(&self) -> &'static str {
        match self.kind {
            PortType::Dpdk => "devargs",
            PortType::Dpdkvhostuserclient => "vhost_server_path",
            PortType::Afpacket => "iface",
            PortType::Dpdkvhostuser | PortType::Internal => "name",
            PortType::Vxlan => "remote_ip",
        }
    }

    /// What backs the port. `sock_dir` is where server-mode vhost sockets go.
    pub fn device(&self, sock_dir: &str) -> Device {
        match self.kind {
            PortType::Dpdk => Device::Eth {
                devargs: self.devargs.clone(),
            },
            PortType::Dpdkvhostuserclient => Device::Vhost {
                path: self.vhost_server_path.clone().unwrap_or_default(),
                mode: VhostMode::Client,
            },
            PortType::Dpdkvhostuser => Device::Vhost {
                path: format!("{}/{}", sock_dir.trim_end_matches('/'), self.name),
                mode: VhostMode::Server,
            },
            // A vdev's name picks its driver by prefix; the port name makes
            // it unique.
            PortType::Internal => Device::Eth {
                devargs: format!("net_tap_{n},iface={n}", n = self.name),
            },
            PortType::Afpacket => Device::Packet {
                iface: self.iface.as_deref().unwrap_or(&self.name).to_owned(),
            },
            PortType::Vxlan => Device::Vxlan {
                remote_ip: self.remote_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                key: self.key,
            },
        }
    }

    /// Checks the port on its own; `key` prefixes error keys.
    pub fn validate(&self, key: &str) -> Result<PortVlan, ConfigError> {
        if self.name.is_empty()
            || self.name.len() > 64
            || self
                .name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(err(
                format!("{key}.name"),
                "must be 1-64 characters without spaces",
            ));
        }
        // A name becomes a file (a dpdkvhostuser socket in vhost_sock_dir)
        // or a kernel interface (an internal port's TAP): never a path.
        if self.name.contains('/') || self.name == "." || self.name == ".." {
            return Err(err(
                format!("{key}.name"),
                format!(
                    "{:?} would be a path: a port name has no '/' and is not '.' or '..'",
                    self.name
                ),
            ));
        }
        if self.kind == PortType::Internal && self.name.len() > IFNAME_MAX {
            return Err(err(
                format!("{key}.name"),
                format!(
                    "an internal port's name is its kernel interface's: at most {IFNAME_MAX} bytes"
                ),
            ));
        }
        self.check_type_fields(key)?;
        if let Some(m) = self.mtu_request {
            if !MTU_RANGE.contains(&m) {
                return Err(err(
                    format!("{key}.mtu_request"),
                    format!(
                        "{m} is not an MTU this switch supports ({}-{})",
                        MTU_RANGE.start(),
                        MTU_RANGE.end()
                    ),
                ));
            }
        }
        if self.rx_queues == 0 || self.rx_queues > switch_core::port::MAX_QUEUES {
            return Err(err(
                format!("{key}.rx_queues"),
                format!("must be 1-{}", switch_core::port::MAX_QUEUES),
            ));
        }
        if let Some(id) = &self.iface_id {
            if id.is_empty()
                || id.len() > 64
                || id.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(err(format!("{key}.iface_id"), "must be a Neutron port id"));
            }
            if let Some(field) = self.vlan_field_set() {
                return Err(err(
                    format!("{key}.{field}"),
                    "a port with iface_id gets its VLAN from Neutron",
                ));
            }
            // Until the Neutron port is known the port carries nothing.
            return Ok(PortVlan::dead());
        }
        if !self.vlan_keys.is_empty() {
            return vlan_keys_trunk(&self.vlan_keys)
                .map_err(|e| err(format!("{key}.vlan_keys"), e.to_string()));
        }
        PortVlan::new(self.vlan_mode, self.tag, &self.trunks)
            .and_then(|v| v.with_translations(&self.vlan_translations))
            .map_err(|e| {
                let s = e.to_string();
                let (field, why) = s.split_once(": ").unwrap_or(("vlan_mode", &s));
                err(format!("{key}.{field}"), why.to_owned())
            })
    }
}

/// The VLAN rule of a `vxlan` port with `vlan_keys`: a trunk of exactly
/// their VLANs.
pub fn vlan_keys_trunk(
    vlan_keys: &[(u16, u32)],
) -> Result<PortVlan, switch_core::vlan::VlanConfigError> {
    let mut vlans: Vec<u16> = vlan_keys.iter().map(|&(v, _)| v).collect();
    vlans.sort_unstable();
    PortVlan::new(Some(VlanMode::Trunk), None, &vlans)
}

/// Whether `ip` can be a tunnel endpoint's address or a next hop: not
/// unspecified, multicast or the IPv4 broadcast address.
fn unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// A tunnel endpoint's address (`tunnel_ip`), IPv4 or IPv6, and the length
/// of its subnet's prefix when one is given: `198.51.100.1`,
/// `198.51.100.1/24`, `2001:db8::1/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelAddr {
    pub ip: IpAddr,
    pub prefix_len: Option<u8>,
}

impl TunnelAddr {
    /// Whether `other` is in the endpoint's subnet (always, without a
    /// prefix length, when of the same family; never otherwise).
    pub fn on_link(&self, other: IpAddr) -> bool {
        let len = self.prefix_len;
        match (self.ip, other) {
            (IpAddr::V4(a), IpAddr::V4(b)) => len.is_none_or(|len| {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }),
            (IpAddr::V6(a), IpAddr::V6(b)) => len.is_none_or(|len| {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }),
            _ => false,
        }
    }

    /// Why `gw` cannot be this endpoint's gateway, if it cannot.
    pub fn check_gateway(&self, gw: IpAddr) -> Result<(), String> {
        if self.prefix_len.is_none() {
            return Err(format!(
                "a gateway needs the endpoint's subnet: give tunnel_ip as {}/<prefix length>",
                self.ip
            ));
        }
        if gw == self.ip || !self.on_link(gw) || !unicast(gw) {
            return Err(format!("{gw} is not another address in {self}'s subnet"));
        }
        Ok(())
    }

    /// The address whose MAC frames to `remote` are sent to: `remote`
    /// itself when it is in the endpoint's subnet, else the gateway.
    pub fn next_hop(&self, gateway: Option<IpAddr>, remote: IpAddr) -> Result<IpAddr, String> {
        if remote.is_ipv4() != self.ip.is_ipv4() {
            return Err(format!(
                "no route to {remote}: the endpoint {self} is of the other IP version"
            ));
        }
        if self.on_link(remote) {
            return Ok(remote);
        }
        gateway.ok_or_else(|| {
            format!("no route to {remote}: it is outside {self}'s subnet and there is no tunnel_gateway")
        })
    }
}

impl std::fmt::Display for TunnelAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix_len {
            Some(len) => write!(f, "{}/{len}", self.ip),
            None => write!(f, "{}", self.ip),
        }
    }
}

impl std::str::FromStr for TunnelAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let ip = ip.parse::<IpAddr>().map_err(|_| {
            format!("{s:?} is not an IPv4 or IPv6 address (a.b.c.d[/len] or x:x::x[/len])")
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => None,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if (1..=max).contains(&n) => Some(n),
                _ => return Err(format!("{s:?}: the prefix length must be 1-{max}")),
            },
        };
        Ok(TunnelAddr { ip, prefix_len })
    }
}

impl From<IpAddr> for TunnelAddr {
    fn from(ip: IpAddr) -> Self {
        TunnelAddr {
            ip,
            prefix_len: None,
        }
    }
}

impl Serialize for TunnelAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TunnelAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The endpoint a `vxlan` port starts from among the ports' `tunnel_ip`s:
/// its `local_ip`, which one of them must be, or the only one there is of
/// `remote`'s IP version.
pub fn tunnel_endpoint(
    p: &PortConfig,
    endpoints: &[IpAddr],
    remote: Option<IpAddr>,
) -> Result<IpAddr, String> {
    let family: Vec<IpAddr> = endpoints
        .iter()
        .copied()
        .filter(|e| remote.is_none_or(|r| r.is_ipv4() == e.is_ipv4()))
        .collect();
    match (p.local_ip, &family[..]) {
        (Some(ip), _) if endpoints.contains(&ip) => Ok(ip),
        (Some(ip), _) => Err(format!("no port has tunnel_ip {ip}")),
        (None, [only]) => Ok(*only),
        (None, []) if endpoints.is_empty() => {
            Err("no port has a tunnel_ip for the tunnel to start from".into())
        }
        (None, []) => Err(format!(
            "no port has a tunnel_ip of the IP version of remote_ip {} for the tunnel to start from",
            remote.map_or(String::new(), |r| r.to_string())
        )),
        (None, _) => Err("several ports have a tunnel_ip: say which with local_ip".into()),
    }
}

/// CPUs online on the machine (not just those this process may run on).
fn online_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| {
            s.trim()
                .split(',')
                .filter_map(|r| r.rsplit('-').next()?.parse::<usize>().ok())
                .max()
        })
        .map(|m| m + 1)
        .unwrap_or(1)
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        // A value of the wrong type is named by its key (the path serde
        // was at); a syntax error by its line.
        let de = toml::Deserializer::new(text);
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let key = if path.is_empty() || path == "." {
                inner.span().map(|s| {
                    let line = text[..s.start.min(text.len())].lines().count().max(1);
                    format!("line {line}")
                })
            } else {
                Some(path)
            };
            err(
                key.unwrap_or_else(|| "config".into()),
                inner.message().to_owned(),
            )
        })?;
        if let Some(c) = cfg.cluster.take() {
            let Some(n) = cfg.neutron.as_mut() else {
                return Err(err(
                    "cluster",
                    "needs a [neutron] section: the cluster shares the Neutron model",
                ));
            };
            if n.cluster.is_some() {
                return Err(err(
                    "cluster",
                    "given twice: as [cluster] and as [neutron.cluster]",
                ));
            }
            n.cluster = Some(c);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.dataplane;
        let ncores = online_cpus();
        if d.pmd_cores.is_empty() {
            return Err(err("dataplane.pmd_cores", "needs at least one core"));
        }
        let mut seen = HashSet::new();
        for &c in &d.pmd_cores {
            if c >= ncores {
                return Err(err(
                    "dataplane.pmd_cores",
                    format!("core {c} does not exist (this machine has {ncores})"),
                ));
            }
            if !seen.insert(c) {
                return Err(err("dataplane.pmd_cores", format!("core {c} listed twice")));
            }
        }
        if d.control_core >= ncores {
            return Err(err(
                "dataplane.control_core",
                format!(
                    "core {} does not exist (this machine has {ncores})",
                    d.control_core
                ),
            ));
        }
        if self.control.state_dir.is_empty() {
            return Err(err("control.state_dir", "must not be empty"));
        }
        if d.pmd_cores.len() > 64 {
            return Err(err("dataplane.pmd_cores", "at most 64 workers"));
        }
        if d.mac_aging_secs == 0 {
            return Err(err("dataplane.mac_aging_secs", "must be at least 1"));
        }
        if !(2..=86_400).contains(&d.neighbour_aging_secs) {
            return Err(err(
                "dataplane.neighbour_aging_secs",
                "must be 2-86400 (seconds)",
            ));
        }
        if d.mac_table_size < 8 || d.mac_table_size > 16 << 20 {
            return Err(err("dataplane.mac_table_size", "must be 8-16777216"));
        }
        if d.mbufs < 1024 {
            return Err(err("dataplane.mbufs", "must be at least 1024"));
        }
        if !(64..=8192).contains(&d.rx_desc) {
            return Err(err("dataplane.rx_desc", "must be 64-8192"));
        }
        if !(64..=8192).contains(&d.tx_desc) {
            return Err(err("dataplane.tx_desc", "must be 64-8192"));
        }
        if !d.vhost_sock_dir.starts_with('/') || d.vhost_sock_dir.len() > 80 {
            return Err(err(
                "dataplane.vhost_sock_dir",
                "must be an absolute directory path of at most 80 bytes",
            ));
        }
        if let Some(n) = &self.neutron {
            n.check().map_err(|e| match e {
                neutron::NeutronError::Config { key, reason } => err(key, reason),
                other => err("neutron", other.to_string()),
            })?;
            for m in &n.bridge_mappings {
                let Some((physnet, uplink)) = m.split_once(':') else {
                    continue; // its syntax is checked above
                };
                if !self
                    .bridges
                    .iter()
                    .flat_map(|b| &b.ports)
                    .any(|p| p.name == uplink)
                {
                    return Err(err(
                        "neutron.bridge_mappings",
                        format!("{physnet} maps to {uplink:?}, which is not a port of any bridge"),
                    ));
                }
            }
            if !self.bridges.iter().any(|b| b.name == n.integration_bridge) {
                return Err(err(
                    "neutron.integration_bridge",
                    format!(
                        "no [[bridges]] entry is named {:?}: the Neutron ports bound to this \
                         host attach to it",
                        n.integration_bridge
                    ),
                ));
            }
            if let Some(ip) = &n.local_ip {
                let held = self
                    .bridges
                    .iter()
                    .flat_map(|b| &b.ports)
                    .any(|p| p.tunnel_ip.is_some_and(|t| t.ip.to_string() == *ip));
                if !held {
                    return Err(err(
                        "neutron.local_ip",
                        format!(
                            "no port has tunnel_ip = {ip:?}: the VXLAN networks' tunnels start \
                             from a port's endpoint"
                        ),
                    ));
                }
            }
        }
        let ct = &self.conntrack;
        if !(1..=MAX_CONNECTIONS).contains(&ct.max_connections) {
            return Err(err(
                "conntrack.max_connections",
                format!("must be 1-{MAX_CONNECTIONS}"),
            ));
        }
        for (name, secs) in ct.timeouts.named() {
            if !(1..=MAX_TIMEOUT_SECS).contains(&secs) {
                return Err(err(
                    format!("conntrack.timeouts.{name}"),
                    format!("{secs} s: must be 1-{MAX_TIMEOUT_SECS} seconds"),
                ));
            }
        }
        if !self.control.socket.starts_with('/') || self.control.socket.len() > 100 {
            return Err(err(
                "control.socket",
                "must be an absolute path of at most 100 bytes (a unix socket's limit)",
            ));
        }
        for (key, group) in [
            ("control.socket_group", &self.control.socket_group),
            (
                "dataplane.vhost_sock_group",
                &self.dataplane.vhost_sock_group,
            ),
        ] {
            if let Some(g) = group {
                group_id(g).map_err(|reason| err(key, reason))?;
            }
        }
        if let Some(m) = &self.control.metrics_listen {
            let addr = m.parse::<std::net::SocketAddr>().map_err(|e| {
                err(
                    "control.metrics_listen",
                    format!("{m:?} is not host:port ({e})"),
                )
            })?;
            // /metrics has no credentials: like the API without a token,
            // it stays on loopback (a scraper elsewhere goes through a proxy
            // that authenticates).
            if !addr.ip().is_loopback() {
                return Err(err(
                    "control.metrics_listen",
                    format!(
                        "{m} is not a loopback address: /metrics takes no token, so it \
                         listens on loopback only (put an authenticating proxy in front)"
                    ),
                ));
            }
        }
        if self.eal.args.iter().any(|a| a.contains('\0')) {
            return Err(err("eal.args", "an argument contains a NUL byte"));
        }
        let mut bridge_names = HashSet::new();
        let mut port_names = HashSet::new();
        let mut devs = HashSet::new();
        let mut nports = 0;
        let mut nethdevs = 0;
        for (bi, b) in self.bridges.iter().enumerate() {
            let bkey = format!("bridges[{bi}]");
            if b.name.is_empty() {
                return Err(err(format!("{bkey}.name"), "must not be empty"));
            }
            // The name is part of the file its flows persist in.
            if b.name.contains('/') || b.name.starts_with('.') || b.name.len() > 64 {
                return Err(err(
                    format!("{bkey}.name"),
                    "at most 64 characters, no '/', not starting with '.'",
                ));
            }
            if !bridge_names.insert(b.name.as_str()) {
                return Err(err(
                    format!("{bkey}.name"),
                    format!("bridge {:?} defined twice", b.name),
                ));
            }
            for (pi, p) in b.ports.iter().enumerate() {
                let pkey = format!("{bkey}.ports[{pi}]");
                p.validate(&pkey)?;
                if !port_names.insert(p.name.as_str()) {
                    return Err(err(
                        format!("{pkey}.name"),
                        format!("port {:?} defined twice", p.name),
                    ));
                }
                let dev = p.device(&d.vhost_sock_dir).identity();
                if !devs.insert(dev.clone()) {
                    return Err(err(
                        format!("{pkey}.{}", p.device_key()),
                        format!("device {dev:?} used by two ports"),
                    ));
                }
                nports += 1;
                if p.kind.is_ethdev() {
                    nethdevs += 1;
                }
            }
        }
        // Every tunnel starts from an endpoint some port holds, once.
        let endpoints: Vec<IpAddr> = self
            .bridges
            .iter()
            .flat_map(|b| &b.ports)
            .filter_map(|p| p.tunnel_ip.map(|t| t.ip))
            .collect();
        for (bi, b) in self.bridges.iter().enumerate() {
            for (pi, p) in b.ports.iter().enumerate() {
                let pkey = format!("bridges[{bi}].ports[{pi}]");
                if let Some(TunnelAddr { ip, .. }) = p.tunnel_ip {
                    if endpoints.iter().filter(|&&e| e == ip).count() > 1 {
                        return Err(err(
                            format!("{pkey}.tunnel_ip"),
                            format!("{ip} is the tunnel_ip of two ports"),
                        ));
                    }
                }
                if p.kind == PortType::Vxlan {
                    let local = tunnel_endpoint(p, &endpoints, p.remote_ip)
                        .map_err(|why| err(format!("{pkey}.local_ip"), why))?;
                    let holder = self
                        .bridges
                        .iter()
                        .flat_map(|b| &b.ports)
                        .find(|u| u.tunnel_ip.is_some_and(|t| t.ip == local));
                    if let (Some(u), Some(remote)) = (holder, p.remote_ip) {
                        let addr = u.tunnel_ip.unwrap_or(local.into());
                        addr.next_hop(u.tunnel_gateway, remote)
                            .map_err(|why| err(format!("{pkey}.remote_ip"), why))?;
                    }
                }
            }
        }
        if nports > switch_core::port::MAX_PORTS || nethdevs > switch_core::port::MAX_ETHDEV_PORTS {
            return Err(err("bridges", PORT_LIMIT));
        }
        Ok(())
    }

    /// EAL arguments with the lcore layout added when the user gave none.
    pub fn eal_args(&self) -> Vec<String> {
        let mut args = self.eal.args.clone();
        let has_lcores = args.iter().any(|a| {
            a == "-l"
                || a == "-c"
                || a.starts_with("--lcores")
                || a.starts_with("-l")
                    && a.len() > 2
                    && a[2..]
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
        });
        if !has_lcores {
            args.insert(0, format!("-l{}", self.dataplane.control_core));
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_default_is_valid() {
        let c = Config::parse(BUNDLED_DEFAULT).unwrap();
        assert_eq!(c.bridges[0].ports.len(), 2);
        assert!(c.eal_args()[0].starts_with("-l"));
    }

    fn with_port(extra: &str) -> String {
        format!("[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"p0\"\ndevargs = \"net_null0\"\n{extra}\n")
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse(&with_port("tag = 5000")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].tag", "{e}");
        let e = Config::parse(&with_port("trunks = [1, 9999]\nvlan_mode = \"trunk\"")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].trunks", "{e}");
        let e = Config::parse(&with_port("vlan_mode = \"access\"")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].tag", "{e}");
        let e = Config::parse(&with_port("colour = 1")).unwrap_err();
        assert!(e.reason.contains("unknown field"), "{e}");
        let e = Config::parse(&with_port("rx_queues = 0")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].rx_queues");
        for bad in [0, 67, 9217] {
            let e = Config::parse(&with_port(&format!("mtu_request = {bad}"))).unwrap_err();
            assert_eq!(e.key, "bridges[0].ports[0].mtu_request", "{e}");
        }
        let ok = Config::parse(&with_port("mtu_request = 9000")).unwrap();
        assert_eq!(ok.bridges[0].ports[0].mtu(), 9000);
        assert!(!ok.bridges[0].forward_bpdu, "OVS's default");
        let e = Config::parse("[dataplane]\npmd_cores = [99]\n").unwrap_err();
        assert_eq!(e.key, "dataplane.pmd_cores");
        let e = Config::parse("[dataplane]\nmac_aging_secs = 0\n").unwrap_err();
        assert_eq!(e.key, "dataplane.mac_aging_secs");
        let two = format!(
            "{}[[bridges.ports]]\nname = \"p0\"\ndevargs = \"net_null1\"\n",
            with_port("")
        );
        assert_eq!(
            Config::parse(&two).unwrap_err().key,
            "bridges[0].ports[1].name"
        );
        let dup = format!(
            "{}[[bridges.ports]]\nname = \"p1\"\ndevargs = \"net_null0\"\n",
            with_port("")
        );
        assert_eq!(
            Config::parse(&dup).unwrap_err().key,
            "bridges[0].ports[1].devargs"
        );
        assert!(Config::parse("not toml [")
            .unwrap_err()
            .key
            .starts_with("line"));
    }

    #[test]
    fn a_vxlan_port_needs_its_remote_vni_next_hop_and_an_endpoint() {
        // The next hop is resolved by ARP when no MAC is given.
        let arp = with_port(
            "tunnel_ip = \"192.0.2.1\"\n[[bridges.ports]]\nname = \"vx\"\ntype = \"vxlan\"\n\
             remote_ip = \"192.0.2.2\"\nkey = 1",
        );
        assert_eq!(
            Config::parse(&arp).unwrap().bridges[0].ports[1].remote_mac,
            None
        );
        let tunnel = |fields: &str| {
            with_port(&format!(
                "tunnel_ip = \"192.0.2.1\"\n[[bridges.ports]]\nname = \"vx\"\ntype = \"vxlan\"\n{fields}"
            ))
        };
        let good = "remote_ip = \"192.0.2.2\"\nkey = 4242\nremote_mac = \"02:00:00:00:00:02\"";
        // A VNI per local VLAN instead of one: a trunk of those VLANs.
        let by_vlan = "remote_ip = \"192.0.2.2\"\nvlan_keys = ";
        let c = Config::parse(&tunnel(&format!("{by_vlan}[[11, 5001], [10, 5000]]"))).unwrap();
        let vx = &c.bridges[0].ports[1];
        assert_eq!(vx.vlan_keys, [(11, 5001), (10, 5000)]);
        let vlan = vx.validate("p").unwrap();
        assert_eq!(
            (vlan.mode(), vlan.trunks()),
            (VlanMode::Trunk, &[10, 11][..])
        );
        assert_eq!(vx.device("").identity(), "vxlan:192.0.2.2:flow");
        let c = Config::parse(&tunnel(good)).unwrap();
        let vx = &c.bridges[0].ports[1];
        assert_eq!(
            vx.device(""),
            Device::Vxlan {
                remote_ip: Ipv4Addr::new(192, 0, 2, 2).into(),
                key: Some(4242)
            }
        );
        assert_eq!(
            tunnel_endpoint(vx, &[Ipv4Addr::new(192, 0, 2, 1).into()], vx.remote_ip),
            Ok(Ipv4Addr::new(192, 0, 2, 1).into())
        );
        for (fields, key) in [
            ("key = 1\nremote_mac = \"02:00:00:00:00:02\"", "remote_ip"),
            (
                "remote_ip = \"224.0.0.1\"\nkey = 1\nremote_mac = \"02:00:00:00:00:02\"",
                "remote_ip",
            ),
            (
                "remote_ip = \"192.0.2.2\"\nremote_mac = \"02:00:00:00:00:02\"",
                "key",
            ),
            (
                "remote_ip = \"192.0.2.2\"\nkey = 16777216\nremote_mac = \"02:00:00:00:00:02\"",
                "key",
            ),
            (
                "remote_ip = \"192.0.2.2\"\nkey = 1\nremote_mac = \"ff:ff:ff:ff:ff:ff\"",
                "remote_mac",
            ),
            (&format!("{good}\nlocal_ip = \"192.0.2.9\""), "local_ip"),
            (&format!("{good}\ndevargs = \"net_null5\""), "devargs"),
            (&format!("{good}\ntunnel_ip = \"192.0.2.7\""), "tunnel_ip"),
            (
                &format!("{good}\ntunnel_mac = \"02:00:00:00:00:07\""),
                "tunnel_mac",
            ),
            (&format!("{good}\nvlan_keys = [[10, 100]]"), "vlan_keys"),
            (&format!("{by_vlan}[[0, 100]]"), "vlan_keys"),
            (&format!("{by_vlan}[[4095, 100]]"), "vlan_keys"),
            (&format!("{by_vlan}[[10, 16777216]]"), "vlan_keys"),
            (&format!("{by_vlan}[[10, 100], [10, 101]]"), "vlan_keys"),
            (&format!("{by_vlan}[[10, 100], [11, 100]]"), "vlan_keys"),
            (&format!("{by_vlan}[[10, 100]]\ntrunks = [10]"), "trunks"),
            (&format!("{by_vlan}[[10, 100]]\ntag = 10"), "tag"),
        ] {
            let e = Config::parse(&tunnel(fields)).unwrap_err();
            assert_eq!(e.key, format!("bridges[0].ports[1].{key}"), "{fields}: {e}");
        }
        // No endpoint at all; a tunnel field on another port type.
        let e = Config::parse(&with_port(&format!(
            "[[bridges.ports]]\nname = \"vx\"\ntype = \"vxlan\"\n{good}"
        )))
        .unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[1].local_ip", "{e}");
        let e = Config::parse(&with_port("key = 5")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].key", "{e}");
    }

    #[test]
    fn an_ipv6_tunnel_endpoint_carries_ipv6_tunnels_only() {
        let cfg = |uplink: &str, remote: &str| {
            with_port(&format!(
                "tunnel_ip = \"{uplink}\"\n[[bridges.ports]]\nname = \"vx\"\ntype = \"vxlan\"\n\
                 remote_ip = \"{remote}\"\nkey = 1"
            ))
        };
        let c = Config::parse(&cfg("2001:db8:1::1/64", "2001:db8:1::2")).unwrap();
        assert_eq!(
            c.bridges[0].ports[1].device(""),
            Device::Vxlan {
                remote_ip: "2001:db8:1::2".parse().unwrap(),
                key: Some(1)
            }
        );
        Config::parse(&cfg(
            "2001:db8:1::1/64\"\ntunnel_gateway = \"2001:db8:1::fe",
            "2001:db8:9::2",
        ))
        .unwrap();
        // A remote of the other IP version has no endpoint to start from.
        let e = Config::parse(&cfg("2001:db8:1::1/64", "198.51.100.2")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[1].local_ip", "{e}");
        assert!(e.reason.contains("IP version"), "{e}");
        for (remote, key) in [
            ("ff02::1", "remote_ip"),
            ("::1", "remote_ip"),
            ("::", "remote_ip"),
        ] {
            let e = Config::parse(&cfg("2001:db8:1::1/64", remote)).unwrap_err();
            assert!(e.key.ends_with(key), "{remote}: {e}");
        }
        let e = Config::parse(&cfg("ff02::1", "2001:db8:1::2")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].tunnel_ip", "{e}");
    }

    #[test]
    fn a_tunnel_endpoints_subnet_and_gateway_route_its_remote_endpoints() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let addr: TunnelAddr = "198.51.100.1/24".parse().unwrap();
        assert_eq!(addr.to_string(), "198.51.100.1/24");
        assert!(addr.on_link(ip("198.51.100.200")));
        assert!(!addr.on_link(ip("203.0.113.5")));
        let gw = Some(ip("198.51.100.254"));
        assert_eq!(
            addr.next_hop(gw, ip("203.0.113.5")),
            Ok(ip("198.51.100.254"))
        );
        assert_eq!(
            addr.next_hop(gw, ip("198.51.100.7")),
            Ok(ip("198.51.100.7"))
        );
        let bare: TunnelAddr = "198.51.100.1".parse().unwrap();
        assert!(bare.on_link(ip("203.0.113.5")), "no prefix: on the segment");
        // IPv6 the same way; never across IP versions.
        let addr6: TunnelAddr = "2001:db8:1::1/64".parse().unwrap();
        assert_eq!(addr6.to_string(), "2001:db8:1::1/64");
        assert!(addr6.on_link(ip("2001:db8:1::ffff:1")));
        assert!(!addr6.on_link(ip("2001:db8:2::1")));
        let gw6 = Some(ip("2001:db8:1::fe"));
        assert_eq!(
            addr6.next_hop(gw6, ip("2001:db8:2::1")),
            Ok(ip("2001:db8:1::fe"))
        );
        assert!(addr6.check_gateway(ip("2001:db8:1::fe")).is_ok());
        assert!(addr6.check_gateway(ip("198.51.100.254")).is_err());
        assert!(addr6.next_hop(gw6, ip("198.51.100.7")).is_err());
        assert!(bare.next_hop(None, ip("2001:db8:1::2")).is_err());
        assert!(!"2001:db8::1"
            .parse::<TunnelAddr>()
            .unwrap()
            .on_link(ip("198.51.100.7")));
        for bad in ["2001:db8::1/129", "2001:db8::1/0", "ff02::1x"] {
            assert!(bad.parse::<TunnelAddr>().is_err(), "{bad}");
        }
        for bad in ["198.51.100.1/33", "198.51.100.1/0", "198.51.100/24", "x/24"] {
            assert!(bad.parse::<TunnelAddr>().is_err(), "{bad}");
        }
        let cfg = |uplink: &str, remote: &str| {
            with_port(&format!(
                "tunnel_ip = \"{uplink}\"\n[[bridges.ports]]\nname = \"vx\"\ntype = \"vxlan\"\n\
                 remote_ip = \"{remote}\"\nkey = 1"
            ))
        };
        // Outside the subnet without a gateway: no route, named.
        let e = Config::parse(&cfg("198.51.100.1/24", "203.0.113.5")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[1].remote_ip", "{e}");
        assert!(e.reason.contains("no route"), "{e}");
        let routed = cfg(
            "198.51.100.1/24\"\ntunnel_gateway = \"198.51.100.254",
            "203.0.113.5",
        );
        let c = Config::parse(&routed).unwrap();
        assert_eq!(c.bridges[0].ports[0].tunnel_ip, Some(addr));
        // A gateway off the subnet, or without one, or the endpoint itself.
        for (uplink, why) in [
            (
                "198.51.100.1/24\"\ntunnel_gateway = \"203.0.113.1",
                "subnet",
            ),
            (
                "198.51.100.1\"\ntunnel_gateway = \"198.51.100.254",
                "prefix length",
            ),
            (
                "198.51.100.1/24\"\ntunnel_gateway = \"198.51.100.1",
                "subnet",
            ),
        ] {
            let e = Config::parse(&cfg(uplink, "198.51.100.2")).unwrap_err();
            assert_eq!(e.key, "bridges[0].ports[0].tunnel_gateway", "{e}");
            assert!(e.reason.contains(why), "{e}");
        }
        let e = Config::parse(&cfg("198.51.100.1/40", "198.51.100.2")).unwrap_err();
        assert!(e.to_string().contains("prefix length"), "{e}");
    }

    /// Issue 12, finding 5: /metrics, which takes no token, could listen
    /// on any address.
    #[test]
    fn metrics_stay_on_loopback() {
        for addr in ["0.0.0.0:9108", "192.0.2.1:9108", "[::]:9108"] {
            let e =
                Config::parse(&format!("[control]\nmetrics_listen = \"{addr}\"\n")).unwrap_err();
            assert_eq!(e.key, "control.metrics_listen", "{addr}: {e}");
        }
        for addr in ["127.0.0.1:9108", "[::1]:9108"] {
            let cfg = format!("[control]\nmetrics_listen = \"{addr}\"\n");
            assert!(Config::parse(&cfg).is_ok(), "{addr}");
        }
    }

    /// Issue 12, finding 7: `--check` passed five `[neutron]` sections
    /// that start refused.
    #[test]
    fn the_neutron_section_is_checked_with_the_rest() {
        let bridge = "[[bridges]]\nname = \"br-int\"\n";
        for (neutron, key) in [
            ("listen = \"0.0.0.0:9696\"", "neutron.token"),
            (
                "network_vlan_ranges = [\"physnet1:3499:3000\"]",
                "neutron.network_vlan_ranges[0]",
            ),
            (
                "network_vlan_ranges = [\"physnet1:4000:5000\"]",
                "neutron.network_vlan_ranges[0]",
            ),
            ("base_mac = \"zz:16:3e:00:00:00\"", "neutron.base_mac"),
            (
                "bridge_mappings = [\"physnet1:missing\"]",
                "neutron.bridge_mappings",
            ),
        ] {
            let e = Config::parse(&format!("[neutron]\n{neutron}\n{bridge}")).unwrap_err();
            assert!(e.key.starts_with(key), "{neutron}: {e}");
        }
    }

    /// Issue 12, finding 8: a value of the wrong type named a line, not
    /// its key.
    #[test]
    fn type_errors_name_the_key() {
        let e = Config::parse(&with_port("tag = \"ten\"")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].tag", "{e}");
        assert!(e.reason.contains("\"ten\""), "{e}");
        let e = Config::parse("[dataplane]\nmac_aging_secs = -1\n").unwrap_err();
        assert_eq!(e.key, "dataplane.mac_aging_secs", "{e}");
        let e = Config::parse("[conntrack.timeouts]\nudp_first = \"long\"\n").unwrap_err();
        assert_eq!(e.key, "conntrack.timeouts.udp_first", "{e}");
        assert!(Config::parse("not toml [")
            .unwrap_err()
            .key
            .starts_with("line"));
    }

    /// Issue 12, finding 6: `port add br0 ../escape --type dpdkvhostuser`
    /// made a socket outside vhost_sock_dir, `sub/dir/deep` directories.
    #[test]
    fn port_names_are_never_paths() {
        for (name, kind) in [
            ("../escape", "dpdkvhostuser"),
            ("sub/dir/deep", "dpdkvhostuser"),
            ("..", "dpdkvhostuser"),
            (".", "dpdk"),
            ("a-very-long-tap-name", "internal"),
        ] {
            let extra = format!("type = \"{kind}\"");
            let cfg = with_port(&extra).replace("name = \"p0\"", &format!("name = {name:?}"));
            let cfg = if kind == "dpdk" {
                cfg
            } else {
                cfg.replace("devargs = \"net_null0\"\n", "")
            };
            let e = Config::parse(&cfg).unwrap_err();
            assert_eq!(e.key, "bridges[0].ports[0].name", "{name}: {e}");
        }
        let ok = with_port("").replace("name = \"p0\"", "name = \"vhu..1\"");
        assert!(Config::parse(&ok).is_ok(), "dots inside a name are fine");
    }

    /// Issue 16: `[cluster]` puts the Neutron model in etcd; it needs the
    /// `[neutron]` section it belongs to, and its keys are checked.
    #[test]
    fn cluster_section_goes_with_neutron() {
        let bridge = "[[bridges]]\nname = \"br-int\"\n";
        let cluster = "[cluster]\netcd_endpoints = [\"http://127.0.0.1:2379\"]\n";
        let e = Config::parse(&format!("{bridge}{cluster}")).unwrap_err();
        assert_eq!(e.key, "cluster", "{e}");
        let cfg = Config::parse(&format!("{bridge}[neutron]\n{cluster}")).unwrap();
        let n = cfg.neutron.unwrap();
        assert_eq!(
            n.cluster.unwrap().etcd_endpoints,
            vec!["http://127.0.0.1:2379".to_owned()]
        );
        let e = Config::parse(&format!(
            "{bridge}[neutron]\n[neutron.cluster]\netcd_endpoints = [\"http://a:1\"]\n{cluster}"
        ))
        .unwrap_err();
        assert_eq!(e.key, "cluster", "{e}");
        let e = Config::parse(&format!(
            "{bridge}[neutron]\n[cluster]\netcd_endpoints = [\"127.0.0.1:2379\"]\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "cluster.etcd_endpoints[0]", "{e}");
    }

    /// Issue 12, finding 1: with a [neutron] section and no bridge for
    /// its ports, a binding attached a port to a bridge that did not exist.
    #[test]
    fn neutron_needs_its_integration_bridge() {
        let e = Config::parse("[neutron]\n").unwrap_err();
        assert_eq!(e.key, "neutron.integration_bridge", "{e}");
        assert!(e.reason.contains("\"br-int\""), "{e}");
        assert!(Config::parse("[neutron]\n[[bridges]]\nname = \"br-int\"\n").is_ok());
        let c = "[neutron]\nintegration_bridge = \"br0\"\n[[bridges]]\nname = \"br0\"\n";
        assert!(Config::parse(c).is_ok());
    }

    #[test]
    fn conntrack_limits_and_timeouts_are_checked() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.conntrack.max_connections, 1_000_000);
        assert_eq!(c.conntrack.timeouts.udp_first, 60, "OVS's default");
        let c = Config::parse(
            "[conntrack]\nmax_connections = 5000\n[conntrack.timeouts]\nudp_first = 5\n",
        )
        .unwrap();
        assert_eq!(
            (c.conntrack.max_connections, c.conntrack.timeouts.udp_first),
            (5000, 5)
        );
        assert_eq!(
            c.conntrack.timeouts.tcp_established,
            switch_core::conntrack::Timeouts::default().tcp_established,
            "the others keep their defaults"
        );
        let e = Config::parse("[conntrack]\nmax_connections = 0\n").unwrap_err();
        assert_eq!(e.key, "conntrack.max_connections", "{e}");
        let e = Config::parse("[conntrack.timeouts]\ntcp_time_wait = 0\n").unwrap_err();
        assert_eq!(e.key, "conntrack.timeouts.tcp_time_wait", "{e}");
        assert!(Config::parse("[conntrack.timeouts]\nudp_single = 3\n").is_err());
    }

    #[test]
    fn translations_are_checked() {
        let c = Config::parse(&with_port("vlan_translations = [[3029, 2]]")).unwrap();
        assert_eq!(c.bridges[0].ports[0].vlan_translations, vec![(3029, 2)]);
        let e =
            Config::parse(&with_port("vlan_translations = [[3029, 2], [3030, 2]]")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].vlan_translations", "{e}");
        assert!(e.reason.contains("local VLAN 2 mapped twice"), "{e}");
    }

    fn port(body: &str) -> String {
        format!("[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\n{body}\n")
    }

    #[test]
    fn port_types_check_their_fields() {
        let ok = Config::parse(&port(
            "name = \"vhu0\"\ntype = \"dpdkvhostuserclient\"\nvhost_server_path = \"/run/vm0.sock\"",
        ))
        .unwrap();
        assert_eq!(
            ok.bridges[0].ports[0].device("/x"),
            Device::Vhost {
                path: "/run/vm0.sock".into(),
                mode: VhostMode::Client
            }
        );
        let srv = Config::parse(&port("name = \"vhs0\"\ntype = \"dpdkvhostuser\"")).unwrap();
        assert_eq!(
            srv.bridges[0].ports[0].device("/run/fsw/"),
            Device::Vhost {
                path: "/run/fsw/vhs0".into(),
                mode: VhostMode::Server
            }
        );
        let tap = Config::parse(&port("name = \"br-ex\"\ntype = \"internal\"")).unwrap();
        assert_eq!(
            tap.bridges[0].ports[0].device("/x"),
            Device::Eth {
                devargs: "net_tap_br-ex,iface=br-ex".into()
            }
        );
        for (body, key) in [
            (
                "name = \"v\"\ntype = \"dpdkvhostuserclient\"",
                "vhost_server_path",
            ),
            (
                "name = \"v\"\ntype = \"dpdkvhostuserclient\"\nvhost_server_path = \"rel.sock\"",
                "vhost_server_path",
            ),
            (
                "name = \"v\"\ntype = \"dpdkvhostuser\"\ndevargs = \"net_null0\"",
                "devargs",
            ),
            (
                "name = \"v\"\ndevargs = \"net_null0\"\nvhost_server_path = \"/a\"",
                "vhost_server_path",
            ),
            (
                "name = \"a-very-long-tap-name\"\ntype = \"internal\"",
                "name",
            ),
            (
                "name = \"p\"\ntype = \"afpacket\"\niface = \"a/b\"",
                "iface",
            ),
            (
                "name = \"p\"\ndevargs = \"net_null0\"\niface = \"eth0\"",
                "iface",
            ),
        ] {
            let e = Config::parse(&port(body)).unwrap_err();
            assert_eq!(e.key, format!("bridges[0].ports[0].{key}"), "{body}: {e}");
        }
        let e = Config::parse(&port("name = \"p\"\ntype = \"geneve\"")).unwrap_err();
        assert!(e.reason.contains("unknown variant"), "{e}");
        // Two ports on one socket.
        let two = format!(
            "{}[[bridges.ports]]\nname = \"b\"\ntype = \"dpdkvhostuserclient\"\nvhost_server_path = \"/s\"\n",
            port("name = \"a\"\ntype = \"dpdkvhostuserclient\"\nvhost_server_path = \"/s\"")
        );
        assert_eq!(
            Config::parse(&two).unwrap_err().key,
            "bridges[0].ports[1].vhost_server_path"
        );
    }

    #[test]
    fn user_lcores_are_kept() {
        let c = Config::parse("[eal]\nargs = [\"--lcores\", \"0@0\"]\n").unwrap();
        assert_eq!(c.eal_args(), vec!["--lcores", "0@0"]);
    }
}
