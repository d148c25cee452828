//! A Neutron v2.0-compatible control plane for Ferroswitch: networks,
//! subnets, ports (with IPAM, MACs and port binding for Nova/os-vif) and
//! security groups, kept in SQLite and served over Neutron's REST API so
//! python-openstackclient, Nova and os-vif talk to it unchanged.
//!
//! Layout: [`model`] (the resources and [`NeutronState`]), [`validate`] and
//! [`ipam`] (parsing and allocation), `store` (SQLite, or etcd for many
//! hosts sharing one model), `engine` (the single
//! writer: validate, one transaction, publish) with one module per resource,
//! `binding`, `api` (axum) and `metrics`.
//!
//! Reads never touch SQLite: the committed state lives in memory as
//! persistent maps (`imbl`) of `Arc`'d resources, so publishing after a
//! commit and taking a snapshot are O(1), and a list is a walk over a map.
//!
//! Where this differs from Neutron (deliberately):
//! * no Keystone: every caller is admin; a resource's project is the body's
//!   `project_id`/`tenant_id`, else the `X-Project-Id` header, else "".
//! * default fixed IPs follow Neutron's IPAM: one address from the first
//!   IPv4 subnet with room, one from the first IPv6 subnet with room;
//!   automatic allocation is next-fit in pool order (Neutron picks at
//!   random); requested addresses may lie outside the pools, as in Neutron.
//! * a failed binding carries its reason in `binding:vif_details.reason`
//!   (Neutron only logs it); it is logged too.
//! * no subnet pools, segments, address scopes (their network attributes
//!   are null), RBAC sharing of groups, QoS or DNS attributes: each is a
//!   400 naming the attribute, never silently ignored. `router:external`
//!   is a model attribute until an L3 service exists. docs/NEUTRON.md
//!   lists every difference from Neutron 29.0.0.
mod api;
mod binding;
mod body;
pub mod dhcp;
mod engine;
mod error;
pub mod ipam;
mod metrics;
pub mod model;
mod networks;
mod ports;
mod query;
mod quotas;
mod secgroups;
mod store;
mod subnets;
mod time;
pub mod validate;

pub use api::ApiServer;
pub use error::{ApiError, NeutronError};
pub use metrics::{RouteMetrics, LATENCY_BUCKETS_MICROS};
pub use model::{
    AddressPair, AllocationPool, Binding, FixedIp, HostRecord, HostRoute, Network, NetworkType,
    NeutronState, Port, PortStatus, RuleDirection, SecurityGroup, SecurityGroupRule, StdAttrs,
    Subnet, VifType,
};
pub use validate::IpVersion;

use error::config_err;
use ipam::VlanRange;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

/// The `[neutron]` section of the daemon's TOML (and the whole file for
/// `neutron-server`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NeutronConfig {
    /// Address the API listens on.
    pub listen: String,
    /// SQLite database; its directory is created if missing.
    pub database: PathBuf,
    /// Required when `listen` is not a loopback address; when set, every
    /// request but version discovery (`GET /`) needs `X-Auth-Token` equal to it.
    pub token: Option<String>,
    /// This compute host's name, matched against `binding:host_id`.
    pub host: String,
    /// ML2 syntax: "physnet1:3000:3499" (tenant VLANs), or "physnet2" alone
    /// (provider networks only).
    pub network_vlan_ranges: Vec<String>,
    /// "physnet1:br-phy": physical network -> uplink bridge/port of this switch.
    pub bridge_mappings: Vec<String>,
    /// ML2's `[ml2_type_vxlan] vni_ranges`: "1001:2000", the VNIs tenant
    /// networks of type vxlan take (lowest free first).
    pub vni_ranges: Vec<String>,
    /// This host's VXLAN tunnel endpoint (the OVS agent's `local_ip`): an
    /// address of `overlay_ip_version` that a port of the switch holds as
    /// its `tunnel_ip`. Without it the host takes no port of a vxlan
    /// network.
    pub local_ip: Option<String>,
    /// ML2's `overlay_ip_version`: 4 or 6, the IP version of every host's
    /// tunnel endpoint. A vxlan network's MTU is `global_physnet_mtu` less
    /// 50 over IPv4, 70 over IPv6, as Neutron computes it.
    pub overlay_ip_version: u8,
    /// Directory of the vhost-user sockets (os-vif's default).
    pub vhost_socket_dir: PathBuf,
    /// MACs are allocated under its first 3 bytes (4 if the 4th is not 00).
    pub base_mac: String,
    /// Type of tenant networks (no provider attributes): "vlan", "vxlan"
    /// or "local".
    pub tenant_network_type: String,
    /// The switch bridge the Neutron ports bound to this host attach to
    /// (OVS agent's `integration_bridge`); the daemon refuses a config
    /// without a bridge of this name.
    pub integration_bridge: String,
    /// API connections served at once; at the limit a new one closes the
    /// oldest idle one. The daemon keeps it below its file-descriptor limit.
    pub max_connections: usize,
    /// Seconds a client has to send a request's head, and again its body;
    /// an idle keep-alive connection is closed after it too.
    pub request_timeout_secs: u64,
    /// Neutron's `global_physnet_mtu`: the largest network MTU.
    pub global_physnet_mtu: u32,
    /// Neutron's `max_fixed_ips_per_port`.
    pub max_fixed_ips_per_port: usize,
    /// Allocation pools per subnet. Neutron sets no limit; without one a
    /// single request could make every later allocation scan thousands.
    pub max_allocation_pools: usize,
    /// The switch answers DHCP itself (as OVN's native DHCP) for every
    /// port on a subnet with `enable_dhcp`; each such network gets a
    /// `network:dhcp` port holding the server's address, as Neutron's DHCP
    /// agent creates one. Off: no DHCP port, no answers (run a DHCP agent).
    pub dhcp: bool,
    /// Lease time the switch's DHCP server gives, in seconds (the DHCP
    /// agent's `dhcp_lease_duration`).
    pub dhcp_lease_secs: u32,
    /// Domain name sent to VMs by DHCP (Neutron's `dns_domain`).
    pub dns_domain: String,
    /// Many hosts, one model: keep it in etcd instead of `database`.
    pub cluster: Option<ClusterConfig>,
}

/// The `[cluster]` section: the Neutron model in etcd, shared by every
/// host (docs/ARCHITECTURE.md "Many hosts"). Without it the model is the
/// SQLite file `database`, this host's alone.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// etcd v3 client URLs: `http://127.0.0.1:2379`, or `https://...` with
    /// `ca_file`.
    pub etcd_endpoints: Vec<String>,
    /// Every key lives under it (several clouds can share one etcd).
    pub prefix: String,
    /// Deadline of each etcd request, in milliseconds.
    pub timeout_ms: u64,
    /// Life of this host's registration lease: a host that has not renewed
    /// it for this long is gone, and its ports go DOWN.
    pub host_ttl_secs: u64,
    /// CA certificate (PEM) that signed etcd's server certificate.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM), for etcd's `--client-cert-auth`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

pub const DEFAULT_CLUSTER_PREFIX: &str = "/ferroswitch";

/// A cluster member's figures (`[cluster]` only).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterMetrics {
    /// The watch of etcd is connected.
    pub etcd_up: bool,
    /// The etcd revision of the model this process holds.
    pub model_revision: i64,
    /// Hosts registered now.
    pub hosts: usize,
    /// Commits this process lost to another writer (and ran again).
    pub conflicts: u64,
    /// Other writers' commits that reached this process by the watch, and
    /// how long after they were made (the writer's clock against this
    /// one's), in microseconds.
    pub watched_commits: u64,
    pub lag_p50_micros: Option<u64>,
    pub lag_p99_micros: Option<u64>,
    pub lag_max_micros: Option<u64>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            etcd_endpoints: Vec::new(),
            prefix: DEFAULT_CLUSTER_PREFIX.to_owned(),
            timeout_ms: 2000,
            host_ttl_secs: 10,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

impl ClusterConfig {
    fn validate(&self) -> Result<store::EtcdSettings, NeutronError> {
        if self.etcd_endpoints.is_empty() {
            return Err(config_err(
                "cluster.etcd_endpoints",
                "must name at least one etcd endpoint (http://HOST:PORT)",
            ));
        }
        let tls = self.ca_file.is_some();
        for (i, e) in self.etcd_endpoints.iter().enumerate() {
            let key = format!("cluster.etcd_endpoints[{i}]");
            let rest = match (e.strip_prefix("http://"), e.strip_prefix("https://")) {
                (Some(r), _) if !tls => r,
                (_, Some(r)) if tls => r,
                (Some(_), _) => {
                    return Err(config_err(
                        key,
                        format!("'{e}' is http:// but cluster.ca_file is set: use https://"),
                    ))
                }
                (_, Some(_)) => {
                    return Err(config_err(
                        key,
                        format!("'{e}' is https:// and needs cluster.ca_file"),
                    ))
                }
                _ => {
                    return Err(config_err(
                        key,
                        format!("'{e}' is not http://HOST:PORT or https://HOST:PORT"),
                    ))
                }
            };
            let port_ok = rest
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok || rest.contains('/') {
                return Err(config_err(key, format!("'{e}' is not http(s)://HOST:PORT")));
            }
        }
        let p = &self.prefix;
        if !p.starts_with('/')
            || p.ends_with('/')
            || p.len() > 128
            || p.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(config_err(
                "cluster.prefix",
                format!("'{p}' must start with '/', not end with one, and have no spaces (at most 128 characters)"),
            ));
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return Err(config_err(
                "cluster.timeout_ms",
                format!("{} is not 100-60000", self.timeout_ms),
            ));
        }
        if !(2..=300).contains(&self.host_ttl_secs) {
            return Err(config_err(
                "cluster.host_ttl_secs",
                format!("{} is not 2-300", self.host_ttl_secs),
            ));
        }
        let identity = match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(config_err(
                    "cluster.key_file",
                    "is needed with cluster.cert_file",
                ))
            }
            (None, Some(_)) => {
                return Err(config_err(
                    "cluster.cert_file",
                    "is needed with cluster.key_file",
                ))
            }
        };
        if identity.is_some() && !tls {
            return Err(config_err(
                "cluster.ca_file",
                "is needed with a client certificate (TLS)",
            ));
        }
        Ok(store::EtcdSettings {
            endpoints: self.etcd_endpoints.clone(),
            prefix: self.prefix.clone(),
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            host_ttl: std::time::Duration::from_secs(self.host_ttl_secs),
            host: String::new(),
            tls: self
                .ca_file
                .clone()
                .map(|ca_file| store::TlsFiles { ca_file, identity }),
        })
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9696";
pub const DEFAULT_DATABASE: &str = "/var/lib/ferroswitch/neutron.db";
pub const DEFAULT_VHOST_SOCKET_DIR: &str = "/var/run/openvswitch";
pub const DEFAULT_BASE_MAC: &str = "fa:16:3e:00:00:00";
pub const DEFAULT_INTEGRATION_BRIDGE: &str = "br-int";
/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = 0xff_ffff;
/// What VXLAN adds to a frame besides the outer IP header: UDP (8), VXLAN
/// (8) and the inner Ethernet header (14), Neutron's
/// `VXLAN_ENCAP_OVERHEAD`. Neutron's network MTU for vxlan is the
/// physical MTU less this and the IP header (20, or 40 over IPv6).
pub const VXLAN_ENCAP_OVERHEAD: u32 = 30;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 10;
/// Neutron's default `max_fixed_ips_per_port`.
pub const DEFAULT_MAX_FIXED_IPS_PER_PORT: usize = 5;
pub const DEFAULT_MAX_ALLOCATION_POOLS: usize = 64;
/// Neutron's default `dhcp_lease_duration` and `dns_domain`.
pub const DEFAULT_DHCP_LEASE_SECS: u32 = 86_400;
pub const DEFAULT_DNS_DOMAIN: &str = "openstacklocal";
/// Tags per resource: Neutron's `MAX_TAGS`, not configurable there either.
pub const MAX_TAGS: usize = 50;

/// The machine's hostname (what Nova reports as the compute host).
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

impl Default for NeutronConfig {
    fn default() -> Self {
        NeutronConfig {
            listen: DEFAULT_LISTEN.to_owned(),
            database: PathBuf::from(DEFAULT_DATABASE),
            token: None,
            host: machine_hostname(),
            network_vlan_ranges: Vec::new(),
            bridge_mappings: Vec::new(),
            vni_ranges: Vec::new(),
            local_ip: None,
            overlay_ip_version: 4,
            vhost_socket_dir: PathBuf::from(DEFAULT_VHOST_SOCKET_DIR),
            base_mac: DEFAULT_BASE_MAC.to_owned(),
            tenant_network_type: "vlan".to_owned(),
            integration_bridge: DEFAULT_INTEGRATION_BRIDGE.to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            global_physnet_mtu: 1500,
            max_fixed_ips_per_port: DEFAULT_MAX_FIXED_IPS_PER_PORT,
            max_allocation_pools: DEFAULT_MAX_ALLOCATION_POOLS,
            dhcp: true,
            dhcp_lease_secs: DEFAULT_DHCP_LEASE_SECS,
            dns_domain: DEFAULT_DNS_DOMAIN.to_owned(),
            cluster: None,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub listen: SocketAddr,
    pub token: Option<String>,
    pub host: String,
    pub database: PathBuf,
    /// Set: the model is in etcd, not `database`.
    pub etcd: Option<store::EtcdSettings>,
    pub vlan_ranges: Vec<VlanRange>,
    /// Tenant VNIs, (min, max) inclusive.
    pub vni_ranges: Vec<(u32, u32)>,
    pub local_ip: Option<std::net::IpAddr>,
    /// What a vxlan network's MTU leaves for the encapsulation (50 over
    /// IPv4, 70 over IPv6: `overlay_ip_version`).
    pub vxlan_overhead: u32,
    /// Every physnet named in the ranges or the mappings.
    pub physnets: std::collections::BTreeSet<String>,
    pub bridge_mappings: BTreeMap<String, String>,
    pub vhost_socket_dir: PathBuf,
    pub base_mac: [u8; 6],
    /// How many leading bytes of base_mac are kept (3 or 4).
    pub mac_fixed: usize,
    pub tenant_type: NetworkType,
    /// The bridge ports bound here join (`binding:vif_details.bridge_name`).
    pub integration_bridge: String,
    pub max_connections: usize,
    pub request_timeout: std::time::Duration,
    pub global_physnet_mtu: u32,
    pub max_fixed_ips_per_port: usize,
    pub max_allocation_pools: usize,
    /// `dhcp`: network:dhcp ports are kept for the switch's DHCP server.
    pub native_dhcp: bool,
}

impl Settings {
    /// This host as binding sees it, and as it registers in etcd.
    pub fn host_record(&self) -> HostRecord {
        HostRecord {
            host: self.host.clone(),
            bridge_mappings: self.bridge_mappings.clone(),
            vhost_socket_dir: self.vhost_socket_dir.display().to_string(),
            integration_bridge: self.integration_bridge.clone(),
            started_at: String::new(),
            tunnel_ip: self.local_ip.map(|ip| ip.to_string()),
            tunnel_mac: None,
        }
    }
}

fn check_physnet(key: &str, p: &str) -> Result<(), NeutronError> {
    if p.is_empty() || p.len() > 64 || p.chars().any(|c| c.is_whitespace() || c == ':') {
        return Err(config_err(
            key,
            format!("physical network name '{p}' must be 1-64 characters without spaces or ':'"),
        ));
    }
    Ok(())
}

impl NeutronConfig {
    /// Parses a TOML document whose top level is this struct.
    pub fn from_toml(text: &str) -> Result<NeutronConfig, NeutronError> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            config_err(
                line.map(|l| format!("line {l}"))
                    .unwrap_or_else(|| "neutron".into()),
                e.message().to_owned(),
            )
        })
    }

    /// Every check the service makes of its configuration before it
    /// opens anything (`vswitchd --check` runs it too).
    pub fn check(&self) -> Result<(), NeutronError> {
        self.validate().map(|_| ())
    }

    pub(crate) fn validate(&self) -> Result<Settings, NeutronError> {
        let listen = resolve_listen(&self.listen)?;
        if let Some(t) = &self.token {
            if t.is_empty() || t.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(config_err(
                    "neutron.token",
                    "must be non-empty printable characters without spaces",
                ));
            }
        } else if !listen.ip().is_loopback() {
            return Err(config_err(
                "neutron.token",
                format!(
                    "required because neutron.listen {} is not a loopback address (anyone who can reach it could change the network)",
                    self.listen
                ),
            ));
        }
        if self.host.is_empty()
            || self.host.len() > 255
            || self.host.chars().any(char::is_whitespace)
        {
            return Err(config_err(
                "neutron.host",
                "must be 1-255 characters without spaces",
            ));
        }
        if self.database.as_os_str().is_empty() {
            return Err(config_err("neutron.database", "must be a file path"));
        }
        let mut vlan_ranges = Vec::new();
        let mut physnets = std::collections::BTreeSet::new();
        for (i, r) in self.network_vlan_ranges.iter().enumerate() {
            let key = format!("neutron.network_vlan_ranges[{i}]");
            let parts: Vec<&str> = r.split(':').collect();
            let range = match parts.as_slice() {
                [p] => {
                    check_physnet(&key, p)?;
                    None
                }
                [p, lo, hi] => {
                    check_physnet(&key, p)?;
                    let parse = |v: &str| {
                        v.parse::<u16>()
                            .ok()
                            .filter(|v| (1..=4094).contains(v))
                            .ok_or_else(|| {
                                config_err(&key, format!("'{v}' in '{r}' is not a VLAN id 1-4094"))
                            })
                    };
                    let (lo, hi) = (parse(lo)?, parse(hi)?);
                    if lo > hi {
                        return Err(config_err(&key, format!("'{r}': {lo} is above {hi}")));
                    }
                    Some((lo, hi))
                }
                _ => {
                    return Err(config_err(
                        &key,
                        format!("'{r}' is neither PHYSNET nor PHYSNET:MIN_VID:MAX_VID"),
                    ))
                }
            };
            physnets.insert(parts[0].to_owned());
            vlan_ranges.push(VlanRange {
                physnet: parts[0].to_owned(),
                range,
            });
        }
        let mut bridge_mappings = BTreeMap::new();
        for (i, m) in self.bridge_mappings.iter().enumerate() {
            let key = format!("neutron.bridge_mappings[{i}]");
            let Some((p, b)) = m.split_once(':') else {
                return Err(config_err(&key, format!("'{m}' is not PHYSNET:BRIDGE")));
            };
            check_physnet(&key, p)?;
            if b.is_empty() || b.len() > 64 || b.chars().any(|c| c.is_whitespace() || c == ':') {
                return Err(config_err(
                    &key,
                    format!("bridge name '{b}' must be 1-64 characters without spaces or ':'"),
                ));
            }
            if bridge_mappings.insert(p.to_owned(), b.to_owned()).is_some() {
                return Err(config_err(
                    &key,
                    format!("physical network '{p}' is mapped twice"),
                ));
            }
            physnets.insert(p.to_owned());
        }
        if self.vhost_socket_dir.as_os_str().is_empty() || !self.vhost_socket_dir.is_absolute() {
            return Err(config_err(
                "neutron.vhost_socket_dir",
                "must be an absolute directory path",
            ));
        }
        let base_mac = validate::parse_unicast_mac(&self.base_mac)
            .map_err(|e| config_err("neutron.base_mac", e))?;
        let tenant_type = match self.tenant_network_type.as_str() {
            "vlan" => NetworkType::Vlan,
            "vxlan" => NetworkType::Vxlan,
            "local" => NetworkType::Local,
            other => {
                return Err(config_err(
                    "neutron.tenant_network_type",
                    format!("'{other}' is not supported: use vlan, vxlan or local"),
                ))
            }
        };
        let mut vni_ranges: Vec<(u32, u32)> = Vec::new();
        for (i, r) in self.vni_ranges.iter().enumerate() {
            let key = format!("neutron.vni_ranges[{i}]");
            let parse = |v: &str| {
                v.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|v| (1..=MAX_VNI).contains(v))
                    .ok_or_else(|| {
                        config_err(&key, format!("'{v}' in '{r}' is not a VNI 1-{MAX_VNI}"))
                    })
            };
            let Some((lo, hi)) = r.split_once(':') else {
                return Err(config_err(&key, format!("'{r}' is not MIN_VNI:MAX_VNI")));
            };
            let (lo, hi) = (parse(lo)?, parse(hi)?);
            if lo > hi {
                return Err(config_err(&key, format!("'{r}': {lo} is above {hi}")));
            }
            if let Some(o) = vni_ranges.iter().find(|(a, b)| lo <= *b && *a <= hi) {
                return Err(config_err(&key, format!("'{r}' overlaps {}:{}", o.0, o.1)));
            }
            vni_ranges.push((lo, hi));
        }
        let v6 = match self.overlay_ip_version {
            4 => false,
            6 => true,
            v => {
                return Err(config_err(
                    "neutron.overlay_ip_version",
                    format!("{v} is not an IP version (4 or 6)"),
                ))
            }
        };
        let local_ip = match &self.local_ip {
            None => None,
            Some(s) => Some(
                s.parse::<std::net::IpAddr>()
                    .ok()
                    .filter(|ip| {
                        ip.is_ipv6() == v6
                            && !ip.is_unspecified()
                            && !ip.is_multicast()
                            && !ip.is_loopback()
                            && *ip != std::net::IpAddr::from(std::net::Ipv4Addr::BROADCAST)
                    })
                    .ok_or_else(|| {
                        config_err(
                            "neutron.local_ip",
                            format!(
                                "'{s}' is not a unicast IPv{} address a tunnel can start from \
                                 (neutron.overlay_ip_version)",
                                self.overlay_ip_version
                            ),
                        )
                    })?,
            ),
        };
        if tenant_type == NetworkType::Vxlan && vni_ranges.is_empty() {
            tracing::warn!("neutron.vni_ranges is empty: tenant vxlan networks cannot be created, only ones with provider:segmentation_id");
        }
        for (key, v, max) in [
            ("neutron.max_connections", self.max_connections, 1_000_000),
            (
                "neutron.global_physnet_mtu",
                self.global_physnet_mtu as usize,
                9216,
            ),
            (
                "neutron.request_timeout_secs",
                self.request_timeout_secs as usize,
                3600,
            ),
            (
                "neutron.max_fixed_ips_per_port",
                self.max_fixed_ips_per_port,
                1024,
            ),
            (
                "neutron.max_allocation_pools",
                self.max_allocation_pools,
                1024,
            ),
        ] {
            if v == 0 || v > max {
                return Err(config_err(key, format!("{v} is not 1-{max}")));
            }
        }
        if self.dhcp_lease_secs < 60 {
            return Err(config_err(
                "neutron.dhcp_lease_secs",
                format!("{} is below 60 seconds", self.dhcp_lease_secs),
            ));
        }
        validate::check_domain(&self.dns_domain)
            .map_err(|e| config_err("neutron.dns_domain", e))?;
        if tenant_type == NetworkType::Vlan && !vlan_ranges.iter().any(|r| r.range.is_some()) {
            tracing::warn!("neutron.network_vlan_ranges has no VLAN range: tenant networks cannot be created, only provider networks");
        }
        Ok(Settings {
            listen,
            token: self.token.clone(),
            host: self.host.clone(),
            database: self.database.clone(),
            etcd: self
                .cluster
                .as_ref()
                .map(ClusterConfig::validate)
                .transpose()?,
            vlan_ranges,
            vni_ranges,
            local_ip,
            vxlan_overhead: VXLAN_ENCAP_OVERHEAD + if v6 { 40 } else { 20 },
            physnets,
            bridge_mappings,
            vhost_socket_dir: self.vhost_socket_dir.clone(),
            base_mac,
            mac_fixed: if base_mac[3] != 0 { 4 } else { 3 },
            tenant_type,
            integration_bridge: self.integration_bridge.clone(),
            max_connections: self.max_connections,
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs),
            global_physnet_mtu: self.global_physnet_mtu,
            max_fixed_ips_per_port: self.max_fixed_ips_per_port,
            max_allocation_pools: self.max_allocation_pools,
            native_dhcp: self.dhcp,
        })
    }
}

fn resolve_listen(listen: &str) -> Result<SocketAddr, NeutronError> {
    if let Ok(a) = listen.parse::<SocketAddr>() {
        return Ok(a);
    }
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .map_err(|e| {
            config_err(
                "neutron.listen",
                format!("'{listen}' is not HOST:PORT: {e}"),
            )
        })?
        .collect();
    // A name is loopback only if everything it resolves to is.
    match addrs
        .iter()
        .find(|a| !a.ip().is_loopback())
        .or(addrs.first())
    {
        Some(a) => Ok(*a),
        None => Err(config_err(
            "neutron.listen",
            format!("'{listen}' resolves to no address"),
        )),
    }
}

/// The ids of the resources one or more committed mutations created,
/// changed or deleted, so a subscriber can work in proportion to what
/// changed instead of walking everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub networks: std::collections::BTreeSet<String>,
    pub subnets: std::collections::BTreeSet<String>,
    pub ports: std::collections::BTreeSet<String>,
    pub security_groups: std::collections::BTreeSet<String>,
    /// The registered hosts changed (etcd): one came, went or re-registered.
    pub hosts: bool,
}

impl Changes {
    /// Adds what `other` touched (updates skipped over are merged).
    pub fn merge(&mut self, other: Changes) {
        self.networks.extend(other.networks);
        self.subnets.extend(other.subnets);
        self.ports.extend(other.ports);
        self.security_groups.extend(other.security_groups);
        self.hosts |= other.hosts;
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
            && self.subnets.is_empty()
            && self.ports.is_empty()
            && self.security_groups.is_empty()
            && !self.hosts
    }
}

/// A committed state and what the mutation that made it touched.
#[derive(Debug, Clone)]
pub struct StateUpdate {
    pub state: Arc<NeutronState>,
    pub changes: Changes,
}

/// The Neutron service: state, store and (when [`Neutron::serve`]d) the API.
/// Cheap to clone; every clone is the same service.
#[derive(Clone)]
pub struct Neutron {
    inner: Arc<engine::Engine>,
}

impl Neutron {
    /// Validates the config (errors name the key), opens or creates the
    /// database and restores everything committed in it.
    pub fn open(cfg: NeutronConfig) -> Result<Neutron, NeutronError> {
        let settings = cfg.validate()?;
        Ok(Neutron {
            inner: engine::Engine::open(settings)?,
        })
    }

    /// Answers one request in process as the REST API would, without HTTP
    /// (for tests and fuzzing): `path` may carry a `?query`. Returns the
    /// status and the JSON body.
    pub fn handle(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        project: Option<&str>,
    ) -> (u16, Vec<u8>) {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (path, None),
        };
        let req = api::ApiRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query,
            body: body.to_vec(),
            token: self.inner.s.token.clone(),
            host: None,
            project: project.map(str::to_owned),
        };
        let (_, resp) = api::dispatch(&self.inner, req);
        (resp.status, resp.body)
    }

    /// The committed state; O(1).
    pub fn state(&self) -> Arc<NeutronState> {
        self.inner.state()
    }

    /// A channel that receives the new state after every committed mutation
    /// (after the SQLite commit), in commit order, with what the mutation
    /// touched. Unbounded: a subscriber that stops reading should drop its
    /// receiver.
    pub fn subscribe(&self) -> crossbeam::channel::Receiver<StateUpdate> {
        self.inner.subscribe()
    }

    /// Registers this host in the cluster (a daemon with a dataplane does,
    /// `neutron-server` does not): any host's API can then bind ports to
    /// it. Renewed in the background; nothing without `[cluster]`.
    pub fn register_host(&self, tunnel_mac: Option<String>) -> Result<(), NeutronError> {
        self.inner.register_host(tunnel_mac)
    }

    /// With `[cluster]`: etcd reachable, watch lag, conflicts.
    pub fn cluster_metrics(&self) -> Option<ClusterMetrics> {
        self.inner.cluster_metrics()
    }

    /// The dataplane's report of a port's status. Persisted and published;
    /// setting the status it already has changes nothing and notifies no one.
    pub fn set_port_status(&self, port_id: &str, status: PortStatus) -> Result<(), NeutronError> {
        self.inner.set_port_status(port_id, status)
    }

    /// Binds `listen` and serves the API on its own thread (own tokio
    /// runtime, 2 workers) until [`ApiServer::shutdown`] or drop.
    pub fn serve(&self) -> Result<ApiServer, NeutronError> {
        self.serve_on(self.bind()?)
    }

    /// Binds `listen` without serving yet (the daemon binds every listener
    /// before it touches a device).
    pub fn bind(&self) -> Result<std::net::TcpListener, NeutronError> {
        api::bind(&self.inner)
    }

    /// Serves the API on a listener from [`Neutron::bind`].
    pub fn serve_on(&self, listener: std::net::TcpListener) -> Result<ApiServer, NeutronError> {
        api::serve(self.inner.clone(), listener)
    }

    /// Per (method, route) request counts, errors and latency histograms
    /// since `open`, sorted by route then method. Routes are templates
    /// ("/v2.0/ports/{id}"); requests no route matched count as "unmatched".
    pub fn api_metrics(&self) -> Vec<RouteMetrics> {
        self.inner.metrics.snapshot()
    }

    /// SQLite's `integrity_check` plus `foreign_key_check`: "ok" when sound.
    pub fn check_database(&self) -> Result<String, NeutronError> {
        self.inner.check_database()
    }
}

/// Logs to stderr (colour only on a terminal), filtered by `RUST_LOG`
/// (default `info`): the set-up of `neutron-server` and `vswitchd`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NeutronConfig {
        NeutronConfig {
            host: "h1".into(),
            ..NeutronConfig::default()
        }
    }

    fn key_of(r: Result<Settings, NeutronError>) -> String {
        match r {
            Err(NeutronError::Config { key, .. }) => key,
            Err(e) => panic!("not a config error: {e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn neutron_is_send_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Neutron>();
        check::<NeutronState>();
    }

    #[test]
    fn defaults_validate() {
        let s = cfg().validate().unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.base_mac, [0xfa, 0x16, 0x3e, 0, 0, 0]);
        assert_eq!(s.mac_fixed, 3);
        assert_eq!(s.tenant_type, NetworkType::Vlan);
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = cfg();
        c.listen = "0.0.0.0:9696".into();
        assert_eq!(key_of(c.validate()), "neutron.token");
        c.token = Some("secret".into());
        assert!(c.validate().is_ok());
        c.token = Some("".into());
        assert_eq!(key_of(c.validate()), "neutron.token");

        let mut c = cfg();
        c.listen = "nonsense".into();
        assert_eq!(key_of(c.validate()), "neutron.listen");

        let mut c = cfg();
        c.network_vlan_ranges = vec!["physnet1:100:200".into(), "physnet1:300:4095".into()];
        assert_eq!(key_of(c.validate()), "neutron.network_vlan_ranges[1]");
        c.network_vlan_ranges = vec!["physnet1:200:100".into()];
        assert_eq!(key_of(c.validate()), "neutron.network_vlan_ranges[0]");
        c.network_vlan_ranges = vec!["physnet1:1".into()];
        assert_eq!(key_of(c.validate()), "neutron.network_vlan_ranges[0]");
        c.network_vlan_ranges = vec!["physnet2".into(), "physnet1:10:20".into()];
        let s = c.validate().unwrap();
        assert_eq!(s.vlan_ranges[1].range, Some((10, 20)));
        assert_eq!(s.vlan_ranges[0].range, None);

        let mut c = cfg();
        c.bridge_mappings = vec!["physnet1:br-phy".into(), "physnet1:br-two".into()];
        assert_eq!(key_of(c.validate()), "neutron.bridge_mappings[1]");
        c.bridge_mappings = vec!["physnet1".into()];
        assert_eq!(key_of(c.validate()), "neutron.bridge_mappings[0]");

        let mut c = cfg();
        c.base_mac = "01:00:00:00:00:00".into();
        assert_eq!(key_of(c.validate()), "neutron.base_mac");
        c.base_mac = "fa:16:3e:4f:00:00".into();
        assert_eq!(c.validate().unwrap().mac_fixed, 4);

        let mut c = cfg();
        c.tenant_network_type = "geneve".into();
        assert_eq!(key_of(c.validate()), "neutron.tenant_network_type");
        c.tenant_network_type = "vxlan".into();
        for (bad, at) in [
            (vec!["1:2", "2:3"], "neutron.vni_ranges[1]"),
            (vec!["0:10"], "neutron.vni_ranges[0]"),
            (vec!["1:16777216"], "neutron.vni_ranges[0]"),
            (vec!["20:10"], "neutron.vni_ranges[0]"),
            (vec!["100"], "neutron.vni_ranges[0]"),
        ] {
            c.vni_ranges = bad.iter().map(|s| s.to_string()).collect();
            assert_eq!(key_of(c.validate()), at, "{bad:?}");
        }
        c.vni_ranges = vec!["1:100".into(), "200:16777215".into()];
        assert_eq!(c.validate().unwrap().vni_ranges, [(1, 100), (200, MAX_VNI)]);
        for bad in ["127.0.0.1", "0.0.0.0", "224.0.0.1", "fe80::1", "x"] {
            c.local_ip = Some(bad.into());
            assert_eq!(key_of(c.validate()), "neutron.local_ip", "{bad}");
        }
        c.local_ip = Some("192.0.2.1".into());
        assert_eq!(c.validate().unwrap().vxlan_overhead, 50);
        // ML2's overlay_ip_version: the endpoint's version, and 70 bytes
        // of encapsulation over IPv6.
        c.overlay_ip_version = 6;
        assert_eq!(key_of(c.validate()), "neutron.local_ip");
        for bad in ["::1", "ff02::1", "::"] {
            c.local_ip = Some(bad.into());
            assert_eq!(key_of(c.validate()), "neutron.local_ip", "{bad}");
        }
        c.local_ip = Some("2001:db8::1".into());
        let s = c.validate().unwrap();
        assert_eq!(
            (s.local_ip, s.vxlan_overhead),
            (Some("2001:db8::1".parse().unwrap()), 70)
        );
        c.overlay_ip_version = 5;
        assert_eq!(key_of(c.validate()), "neutron.overlay_ip_version");

        let mut c = cfg();
        c.vhost_socket_dir = "relative".into();
        assert_eq!(key_of(c.validate()), "neutron.vhost_socket_dir");
    }

    #[test]
    fn toml_refuses_unknown_keys() {
        let e = NeutronConfig::from_toml("listen = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let c =
            NeutronConfig::from_toml("host = \"x\"\nnetwork_vlan_ranges = [\"p:1:2\"]\n").unwrap();
        assert_eq!(c.host, "x");
        assert_eq!(c.listen, DEFAULT_LISTEN);
    }
}
