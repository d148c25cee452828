//! The control socket's protocol: one JSON request per connection line, one
//! JSON response line. `vswitchctl` is its client.
use crate::config::PortConfig;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

// One request per control-socket line, parsed and dropped: the size of the
// largest variant (a port's whole config) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    PortList,
    PortStats,
    PortAdd {
        bridge: String,
        #[serde(flatten)]
        port: PortConfig,
    },
    PortDel {
        name: String,
    },
    FdbShow {
        bridge: Option<String>,
    },
    FdbFlush {
        bridge: Option<String>,
    },
    PmdStats,
    PmdStatsClear,
    /// Prometheus text exposition (what `GET /metrics` serves).
    Metrics,
    /// Tracked connections (of one zone).
    ConntrackDump {
        zone: Option<u16>,
    },
    ConntrackFlush {
        zone: Option<u16>,
    },
    ConntrackStats,
    /// What the pipeline would do with `frame` (hex) arriving on port
    /// `in_port` of `bridge`, step by step, against the running
    /// configuration; nothing is learned, tracked or sent.
    Trace {
        bridge: String,
        in_port: String,
        frame: String,
    },
    /// `add-flow` / `add-flows`: flows in `ovs-ofctl` syntax, one an
    /// entry (blank and `#` lines skipped, counted for error positions);
    /// all or none are added, in one snapshot.
    FlowAdd {
        bridge: String,
        flows: Vec<String>,
        /// Not kept across a restart of the daemon.
        #[serde(default)]
        volatile: bool,
    },
    /// `replace-flows`: the bridge's flows become exactly these, at once.
    FlowReplace {
        bridge: String,
        flows: Vec<String>,
        #[serde(default)]
        volatile: bool,
    },
    /// `del-flows`: the flows a match selects (every flow without one).
    FlowDel {
        bridge: String,
        #[serde(default)]
        pattern: Option<String>,
        #[serde(default)]
        strict: bool,
    },
    /// `mod-flows`: new actions for the flows a match selects.
    FlowMod {
        bridge: String,
        flow: String,
        #[serde(default)]
        strict: bool,
    },
    /// `dump-flows`: lines in `ovs-ofctl dump-flows`' layout.
    FlowDump {
        bridge: String,
        #[serde(default)]
        pattern: Option<String>,
    },
    /// `dump-tables`: per table, flows, lookups and matches.
    FlowTables {
        bridge: String,
    },
    /// The VXLAN tunnel ports: endpoints, VNI, the remote MACs
    /// l2population points at each, counters.
    TunnelList,
    /// The hosts registered in the cluster's model (etcd).
    HostList,
}

/// One tunnel port, as `tunnel list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TunnelRow {
    pub port: String,
    pub local_ip: String,
    pub remote_ip: String,
    /// Its one VNI (`key`), or none: a VNI per local VLAN (`vlan_keys`).
    pub vni: Option<u32>,
    /// (local VLAN, VNI) of a port with a VNI per VLAN.
    #[serde(default)]
    pub vlan_keys: Vec<(u16, u32)>,
    /// The address whose MAC the packets go to: the remote endpoint, or
    /// the endpoint's gateway.
    #[serde(default)]
    pub next_hop: String,
    /// The next hop's MAC as known now ("" while unresolved).
    pub remote_mac: String,
    /// "static", "reachable Ns", "probing Ns", "unresolved", "no route".
    #[serde(default)]
    pub next_hop_state: String,
    /// ARP requests sent for the next hop.
    #[serde(default)]
    pub arp_requests: u64,
    pub uplink: String,
    /// Opened by l2population for a Neutron network (else configured).
    pub neutron: bool,
    /// The remote ports' MACs l2population sends through it, with their
    /// local VLAN.
    pub macs: Vec<(u16, String)>,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

/// One registered host, as `host list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRow {
    pub host: String,
    pub tunnel_ip: Option<String>,
    pub tunnel_mac: Option<String>,
    pub bridge_mappings: Vec<String>,
    pub started_at: String,
    /// Neutron ports bound to it.
    pub ports: usize,
    /// This daemon's own host.
    pub this: bool,
}

/// One table, as `dump-tables` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableRow {
    pub table: u8,
    pub active: usize,
    pub lookups: u64,
    pub matched: u64,
}

/// One tracked connection, as `conntrack dump` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnRow {
    pub zone: u16,
    pub proto: u8,
    pub src: String,
    pub dst: String,
    pub sport: u16,
    pub dport: u16,
    /// TCP's state, or `UNREPLIED` / `REPLIED`.
    pub state: String,
    /// Seconds since its last packet.
    pub idle: u32,
}

/// `conntrack stats`: counts per zone and per state, and the table's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ConntrackStats {
    pub enabled: bool,
    pub connections: usize,
    pub max_connections: usize,
    pub per_zone: std::collections::BTreeMap<u16, usize>,
    pub per_state: std::collections::BTreeMap<String, usize>,
    pub created: u64,
    pub expired: u64,
    pub refused_full: u64,
    pub invalid: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub result: serde_json::Value,
}

impl Response {
    pub fn ok(result: serde_json::Value) -> Response {
        Response {
            ok: true,
            error: None,
            result,
        }
    }
    pub fn err(msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(msg.into()),
            result: serde_json::Value::Null,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortInfo {
    pub name: String,
    pub bridge: String,
    pub port_id: u16,
    /// Its OpenFlow number in flows (`in_port=`, `output:`): port_id + 1.
    #[serde(default)]
    pub ofport: u16,
    pub devargs: String,
    pub dpdk_name: String,
    pub vlan_mode: String,
    pub tag: Option<u16>,
    pub trunks: Vec<u16>,
    #[serde(default)]
    pub vlan_translations: Vec<(u16, u16)>,
    pub rx_queues: u16,
    #[serde(default)]
    pub iface_id: Option<String>,
    /// Summary of the compiled security-group rule set, for ports attached
    /// to a Neutron port.
    #[serde(default)]
    pub security: Option<PortSecurity>,
    pub link_up: bool,
    /// ACTIVE or DOWN (vhost-user: a guest attached with queues enabled).
    #[serde(default)]
    pub state: String,
    /// The OVS interface type: dpdk, dpdkvhostuserclient, dpdkvhostuser,
    /// internal, afpacket.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Empty for a vhost-user port (the MAC is the guest's).
    pub mac: String,
    #[serde(default)]
    pub vhost: Option<VhostInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VhostInfo {
    /// Who owns the socket: "client" (the VM does) or "server" (the switch).
    pub mode: String,
    /// A guest is attached.
    pub attached: bool,
    pub queue_pairs: u16,
    pub enabled_queues: u32,
    pub connects: u64,
    pub disconnects: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortSecurity {
    pub port_security: bool,
    pub allowed_sources: usize,
    pub ingress_rules: usize,
    pub egress_rules: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortStatsRow {
    pub name: String,
    pub port_id: u16,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    /// Of `tx_dropped`: longer than the port's MTU allows.
    #[serde(default)]
    pub tx_oversize: u64,
    /// Of `rx_dropped`: not the port's to send (port security), by reason
    /// (`mac`, `ipv4_source`, ...); reasons never seen are left out.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub spoofed: std::collections::BTreeMap<String, u64>,
    /// The switch's DHCP server on this port: `requests`, `offers`,
    /// `acks`, `naks`, `unanswered`; empty for a port never served.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub dhcp: std::collections::BTreeMap<String, u64>,
    /// ARP requests from this port the switch's ARP responder answered.
    #[serde(default)]
    pub arp_answered: u64,
    /// What the PMD itself counted missing/erroneous.
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PmdStatsRow {
    pub core: usize,
    pub packets: u64,
    pub busy_cycles: u64,
    pub idle_cycles: u64,
    pub cycles_per_packet: f64,
    pub busy_percent: f64,
    pub iterations: u64,
    /// Flow-table lookups the exact-match cache answered, the megaflow
    /// cache answered, and the classifier answered.
    #[serde(default)]
    pub flow_cache_hits: u64,
    #[serde(default)]
    pub flow_megaflow_hits: u64,
    #[serde(default)]
    pub flow_cache_misses: u64,
    /// NORMAL decisions the decision cache answered, and decided afresh.
    #[serde(default)]
    pub normal_cache_hits: u64,
    #[serde(default)]
    pub normal_cache_misses: u64,
    pub rx_queues: Vec<String>,
    pub drops_malformed: u64,
    pub drops_vlan: u64,
    #[serde(default)]
    pub drops_link_local: u64,
    pub drops_no_output: u64,
    #[serde(default)]
    pub drops_oversize: u64,
    #[serde(default)]
    pub drops_spoofed: u64,
    #[serde(default)]
    pub drops_denied: u64,
    #[serde(default)]
    pub drops_ct_invalid: u64,
    /// Sent nowhere by the flow tables.
    #[serde(default)]
    pub drops_flow: u64,
    pub drops_tx_full: u64,
    pub drops_no_mbuf: u64,
    /// Tunnel frames whose next hop's MAC was not known.
    #[serde(default)]
    pub drops_unresolved: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FdbRow {
    pub bridge: String,
    pub port: String,
    pub vlan: u16,
    pub mac: String,
    pub age: u32,
}

/// Sends one request and waits for its response.
pub fn call(socket: &Path, req: &Request, timeout: Duration) -> std::io::Result<Response> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    s.write_all(line.as_bytes())?;
    let mut reader = BufReader::new(s);
    let mut resp = String::new();
    reader.read_line(&mut resp)?;
    serde_json::from_str(&resp).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
