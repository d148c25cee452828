//! The Neutron v2.0 resources, serialised with the API reference's field
//! names (`provider:network_type`, `binding:vif_details`, ...) so the same
//! JSON is the API body, the SQLite document and what python-openstackclient
//! reads. `NeutronState` is the committed world the dataplane compiles.
use crate::validate::{parse_mac, Cidr, IpVersion};
use imbl::OrdMap;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Standard attributes every Neutron resource with tags carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StdAttrs {
    pub description: String,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: u64,
}

impl StdAttrs {
    pub fn new(description: String, now: &str) -> StdAttrs {
        StdAttrs {
            description,
            tags: Vec::new(),
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            revision_number: 1,
        }
    }
    /// Every committed change bumps the revision (standard-attr-revisions).
    pub fn touch(&mut self, now: &str) {
        self.updated_at = now.to_owned();
        self.revision_number += 1;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    Vlan,
    Flat,
    Local,
    /// A tenant network carried between hosts in VXLAN with its VNI
    /// (`provider:segmentation_id`), on no physical network.
    Vxlan,
}

impl NetworkType {
    pub fn parse(s: &str) -> Option<NetworkType> {
        match s {
            "vlan" => Some(NetworkType::Vlan),
            "flat" => Some(NetworkType::Flat),
            "local" => Some(NetworkType::Local),
            "vxlan" => Some(NetworkType::Vxlan),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkType::Vlan => "vlan",
            NetworkType::Flat => "flat",
            NetworkType::Local => "local",
            NetworkType::Vxlan => "vxlan",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub tenant_id: String,
    pub admin_state_up: bool,
    pub status: String,
    pub shared: bool,
    pub mtu: u32,
    #[serde(rename = "provider:network_type")]
    pub network_type: NetworkType,
    #[serde(rename = "provider:physical_network")]
    pub physical_network: Option<String>,
    /// The VLAN id (vlan) or the VNI (vxlan).
    #[serde(rename = "provider:segmentation_id")]
    pub segmentation_id: Option<u32>,
    #[serde(rename = "router:external")]
    pub router_external: bool,
    /// Default for the network's new ports (port-security extension).
    pub port_security_enabled: bool,
    /// Subnet ids, in creation order.
    pub subnets: Vec<String>,
    pub availability_zone_hints: Vec<String>,
    pub availability_zones: Vec<String>,
    /// The address-scope extension's attributes: no address scopes exist
    /// here, so always null (they are shown because clients read them).
    #[serde(default)]
    pub ipv4_address_scope: Option<String>,
    #[serde(default)]
    pub ipv6_address_scope: Option<String>,
    #[serde(flatten)]
    pub std: StdAttrs,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationPool {
    pub start: String,
    pub end: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub project_id: String,
    pub tenant_id: String,
    pub ip_version: u8,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub allocation_pools: Vec<AllocationPool>,
    pub enable_dhcp: bool,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<HostRoute>,
    pub ipv6_ra_mode: Option<String>,
    pub ipv6_address_mode: Option<String>,
    pub subnetpool_id: Option<String>,
    /// No segments extension: never shown.
    #[serde(default, skip_serializing)]
    pub segment_id: Option<String>,
    pub service_types: Vec<String>,
    /// The network's `router:external`, kept in step with it.
    #[serde(rename = "router:external", default)]
    pub router_external: bool,
    #[serde(flatten)]
    pub std: StdAttrs,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPair {
    /// An address or a CIDR, as given.
    pub ip_address: String,
    pub mac_address: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PortStatus {
    Active,
    Down,
    Build,
    Error,
}

impl PortStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PortStatus::Active => "ACTIVE",
            PortStatus::Down => "DOWN",
            PortStatus::Build => "BUILD",
            PortStatus::Error => "ERROR",
        }
    }
}

/// The vif types this switch hands out (`neutron_lib.api.definitions.portbindings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VifType {
    Unbound,
    BindingFailed,
    /// A vhost-user socket (vnic_type normal with the netdev datapath).
    Vhostuser,
    /// An SR-IOV VF (vnic_type direct).
    HwVeb,
    /// A whole PCI device (vnic_type direct-physical).
    HostdevPhysical,
}

impl VifType {
    pub fn as_str(self) -> &'static str {
        match self {
            VifType::Unbound => "unbound",
            VifType::BindingFailed => "binding_failed",
            VifType::Vhostuser => "vhostuser",
            VifType::HwVeb => "hw_veb",
            VifType::HostdevPhysical => "hostdev_physical",
        }
    }
}

impl std::fmt::Display for VifType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The port-binding extension's attributes. `vif_type` and `vif_details`
/// are computed by the switch (see `binding`); a failed binding carries its
/// reason in `vif_details.reason`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    #[serde(rename = "binding:host_id")]
    pub host_id: String,
    #[serde(rename = "binding:vnic_type")]
    pub vnic_type: String,
    #[serde(rename = "binding:profile")]
    pub profile: Map<String, Value>,
    #[serde(rename = "binding:vif_type")]
    pub vif_type: VifType,
    #[serde(rename = "binding:vif_details")]
    pub vif_details: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub project_id: String,
    pub tenant_id: String,
    pub mac_address: String,
    pub admin_state_up: bool,
    pub status: PortStatus,
    pub device_id: String,
    pub device_owner: String,
    pub fixed_ips: Vec<FixedIp>,
    pub allowed_address_pairs: Vec<AddressPair>,
    pub security_groups: Vec<String>,
    pub port_security_enabled: bool,
    /// The extra_dhcp_opt extension: stored and shown (the switch's own
    /// DHCP server will serve them).
    #[serde(default)]
    pub extra_dhcp_opts: Vec<ExtraDhcpOpt>,
    #[serde(flatten)]
    pub binding: Binding,
    #[serde(flatten)]
    pub std: StdAttrs,
}

/// One DHCP option of a port (`extra_dhcp_opts`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraDhcpOpt {
    pub opt_name: String,
    pub opt_value: Option<String>,
    pub ip_version: u8,
}

/// Which traffic a security-group rule lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleDirection {
    /// Towards the port (the VM receives).
    Ingress,
    /// From the port (the VM sends).
    Egress,
}

impl RuleDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleDirection::Ingress => "ingress",
            RuleDirection::Egress => "egress",
        }
    }
}

impl std::fmt::Display for RuleDirection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    pub id: String,
    pub security_group_id: String,
    pub project_id: String,
    pub tenant_id: String,
    pub direction: RuleDirection,
    pub ethertype: IpVersion,
    /// None: any protocol. Otherwise a name (tcp, udp, icmp, ...) or a
    /// number 0-255, as given.
    pub protocol: Option<String>,
    pub port_range_min: Option<u32>,
    pub port_range_max: Option<u32>,
    /// As given (`10.0.0.5/24` stays); `normalized_cidr` has the host bits
    /// cleared.
    pub remote_ip_prefix: Option<String>,
    #[serde(default)]
    pub normalized_cidr: Option<String>,
    pub remote_group_id: Option<String>,
    /// Address groups do not exist here: always null.
    #[serde(default)]
    pub remote_address_group_id: Option<String>,
    /// The rule belongs to its project's default group.
    #[serde(default)]
    pub belongs_to_default_sg: bool,
    /// Unique among rules; Neutron's standard-attribute id. Neutron shows
    /// it (with `tags`) only on the rules inside a group, so it is not
    /// serialised here (the store keeps it beside the document).
    #[serde(default, skip_serializing)]
    pub standard_attr_id: u64,
    /// Null for the rules a group is created with, as Neutron.
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub tenant_id: String,
    pub stateful: bool,
    /// RBAC sharing does not exist here: always false.
    #[serde(default)]
    pub shared: bool,
    /// In creation order.
    #[serde(serialize_with = "nested_rules")]
    pub security_group_rules: Vec<SecurityGroupRule>,
    #[serde(flatten)]
    pub std: StdAttrs,
}

/// A group's rules as Neutron shows them inside the group: with their
/// `standard_attr_id` and `tags`.
fn nested_rules<S: Serializer>(rules: &[SecurityGroupRule], s: S) -> Result<S::Ok, S::Error> {
    struct Nested<'a>(&'a SecurityGroupRule);
    impl Serialize for Nested<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut v = serde_json::to_value(self.0).map_err(serde::ser::Error::custom)?;
            if let Value::Object(m) = &mut v {
                m.insert("standard_attr_id".into(), self.0.standard_attr_id.into());
                m.insert("tags".into(), Value::Array(Vec::new()));
            }
            v.serialize(s)
        }
    }
    s.collect_seq(rules.iter().map(Nested))
}

// Typed views of the values the API keeps as given, for the dataplane's
// compiler: it never parses strings of its own.

impl FixedIp {
    pub fn address(&self) -> Option<std::net::IpAddr> {
        self.ip_address.parse().ok()
    }
}

impl AddressPair {
    /// The address or CIDR, host bits cleared.
    pub fn prefix(&self) -> Option<Cidr> {
        Cidr::parse_lenient(&self.ip_address).ok()
    }

    pub fn mac(&self) -> Option<[u8; 6]> {
        parse_mac(&self.mac_address).ok()
    }
}

impl Port {
    pub fn mac(&self) -> Option<[u8; 6]> {
        parse_mac(&self.mac_address).ok()
    }
}

impl Subnet {
    /// SLAAC or DHCPv6-stateless: ports get their EUI-64 address here.
    pub fn is_auto_address(&self) -> bool {
        matches!(
            self.ipv6_address_mode.as_deref(),
            Some("slaac" | "dhcpv6-stateless")
        )
    }
}

impl SecurityGroupRule {
    /// The IP protocol number; `None` for any protocol.
    pub fn protocol_number(&self) -> Option<u8> {
        self.protocol
            .as_deref()
            .filter(|p| *p != "any")
            .and_then(crate::secgroups::protocol_number)
    }

    /// `remote_ip_prefix`, parsed.
    pub fn remote_prefix(&self) -> Option<Cidr> {
        Cidr::parse_lenient(self.remote_ip_prefix.as_deref()?).ok()
    }
}

/// A compute host's registration (issue 16): what the API needs to bind a
/// port there. Each host's daemon keeps its own alive under an etcd lease;
/// one that stops renewing it disappears, and its ports go DOWN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    pub host: String,
    /// physnet -> the uplink that reaches it on that host.
    pub bridge_mappings: std::collections::BTreeMap<String, String>,
    pub vhost_socket_dir: String,
    pub integration_bridge: String,
    /// When this registration was made (the daemon's start).
    pub started_at: String,
    /// The host's VXLAN tunnel endpoint (OVS agent's `local_ip`), if it
    /// has one: only then can it take ports of VXLAN networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_ip: Option<String>,
    /// The endpoint's MAC: other hosts' next hop towards `tunnel_ip` on a
    /// shared underlay segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_mac: Option<String>,
}

/// Everything committed, as persistent maps of shared values: cloning is
/// O(1) and a mutation copies only the path to what it changed. Maps are
/// keyed and iterated by id.
#[derive(Clone, Debug, Default)]
pub struct NeutronState {
    /// Bumped by every committed mutation since `Neutron::open` (not
    /// persisted): equal generations mean equal states.
    pub generation: u64,
    pub networks: OrdMap<String, Arc<Network>>,
    pub subnets: OrdMap<String, Arc<Subnet>>,
    pub ports: OrdMap<String, Arc<Port>>,
    /// Each group with its rules.
    pub security_groups: OrdMap<String, Arc<SecurityGroup>>,
    /// Rule id -> id of the group holding it.
    pub rule_owner: OrdMap<String, String>,
    /// Project -> the quota limits set for it (the rest are the defaults).
    pub quotas: OrdMap<String, Arc<std::collections::BTreeMap<String, i64>>>,
    /// The hosts registered now (etcd only; not part of the model).
    pub hosts: OrdMap<String, Arc<HostRecord>>,
}

impl NeutronState {
    pub fn rule(&self, id: &str) -> Option<&SecurityGroupRule> {
        let g = self.security_groups.get(self.rule_owner.get(id)?)?;
        g.security_group_rules.iter().find(|r| r.id == id)
    }
}

/// Serialises as `{"generation": n, "networks": [...], "subnets": [...],
/// "ports": [...], "security_groups": [...]}` (lists in id order).
impl Serialize for NeutronState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Values<'a, T>(&'a OrdMap<String, Arc<T>>);
        impl<T: Serialize> Serialize for Values<'_, T> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.values().map(|v| &**v))
            }
        }
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("generation", &self.generation)?;
        m.serialize_entry("networks", &Values(&self.networks))?;
        m.serialize_entry("subnets", &Values(&self.subnets))?;
        m.serialize_entry("ports", &Values(&self.ports))?;
        m.serialize_entry("security_groups", &Values(&self.security_groups))?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_json_uses_api_reference_names() {
        let p = Port {
            id: "p".into(),
            name: "n".into(),
            network_id: "net".into(),
            project_id: "".into(),
            tenant_id: "".into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            admin_state_up: true,
            status: PortStatus::Down,
            device_id: "".into(),
            device_owner: "".into(),
            fixed_ips: vec![],
            allowed_address_pairs: vec![],
            security_groups: vec![],
            port_security_enabled: true,
            extra_dhcp_opts: vec![],
            binding: Binding {
                host_id: "h".into(),
                vnic_type: "normal".into(),
                profile: Map::new(),
                vif_type: VifType::Unbound,
                vif_details: Map::new(),
            },
            std: StdAttrs::new(String::new(), "2024-01-01T00:00:00Z"),
        };
        let v = serde_json::to_value(&p).unwrap();
        for k in [
            "binding:host_id",
            "binding:vnic_type",
            "binding:profile",
            "binding:vif_type",
            "binding:vif_details",
            "revision_number",
            "created_at",
            "tags",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert_eq!(v["status"], "DOWN");
        let back: Port = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }
}
