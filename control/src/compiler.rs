//! Compiles the committed Neutron state into dataplane configuration, the
//! way the Neutron OVS agent programs br-int and the provider bridge:
//!
//! * every network gets a local VLAN on the switch (lowest free, stable
//!   while the network exists);
//! * a switch port whose `iface_id` names a Neutron port (what os-vif sets
//!   as `external_ids:iface-id`) becomes an access port of its network's
//!   local VLAN; until the Neutron port and its network exist, or while
//!   either is administratively down, it sits in no VLAN at all (the
//!   agent's dead VLAN);
//! * the uplink a physical network maps to (`bridge_mappings`,
//!   "physnet1:<switch port>") carries each VLAN network of that physnet
//!   tagged with its segmentation id, translated to and from the local VLAN,
//!   and a flat network untagged; no other VID passes;
//! * the security-group rule set of each attached port, remote groups
//!   expanded to their members' addresses (for the enforcement to come);
//! * a port bound `normal` on this host (vif_type vhostuser) asks for a
//!   vhost-user client port at its `vhostuser_socket`, one bound `direct`
//!   (vif_type hw_veb) for its SR-IOV VF (`binding:profile.pci_slot`) as a
//!   DPDK port ([`attachments`]);
//! * the status each attached Neutron port should have: ACTIVE while its
//!   switch port's link is up and both it and its network are admin up,
//!   DOWN otherwise.
use dataplane::acl::{AclRule, Direction, PortAcl, Prefix};
use dataplane::vlan::{PortVlan, VlanMode, MAX_VID};
use neutron::model::{NetworkType, NeutronState, Port, PortStatus, RuleDirection, VifType};
use neutron::validate::{parse_mac, Cidr, IpVersion};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Local VLAN per network, allocated lowest-free and kept while it exists.
#[derive(Debug, Default, Clone)]
pub struct LocalVlans {
    by_network: BTreeMap<String, u16>,
    used: BTreeSet<u16>,
}

impl LocalVlans {
    /// Allocates for new networks and frees those of deleted ones. Networks
    /// beyond 4094 get none (their ports stay dead; logged by the caller).
    fn sync(&mut self, state: &NeutronState) {
        let gone: Vec<String> = self
            .by_network
            .keys()
            .filter(|id| !state.networks.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(v) = self.by_network.remove(&id) {
                self.used.remove(&v);
            }
        }
        let mut next = 1u16;
        for id in state.networks.keys() {
            if self.by_network.contains_key(id) {
                continue;
            }
            while next < MAX_VID && self.used.contains(&next) {
                next += 1;
            }
            if next >= MAX_VID {
                break;
            }
            self.by_network.insert(id.clone(), next);
            self.used.insert(next);
        }
    }

    pub fn get(&self, network_id: &str) -> Option<u16> {
        self.by_network.get(network_id).copied()
    }

    pub fn len(&self) -> usize {
        self.by_network.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_network.is_empty()
    }
}

/// A switch port as the compiler needs to see it.
#[derive(Debug, Clone)]
pub struct SwitchPort<'a> {
    pub name: &'a str,
    pub iface_id: Option<&'a str>,
    pub link_up: bool,
}

/// What the dataplane and the API should become.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Compiled {
    /// VLAN rules of every switch port Neutron controls, by port name.
    pub port_vlans: BTreeMap<String, PortVlan>,
    /// Neutron port id -> the status it should have (attached ports only).
    pub statuses: BTreeMap<String, PortStatus>,
    /// Security-group rule sets of attached ports, by switch port name.
    pub port_acls: BTreeMap<String, Arc<PortAcl>>,
    /// Problems worth a log line (e.g. VID conflicts on an uplink).
    pub warnings: Vec<String>,
}

/// Compiles `state` for the given switch ports. `mappings`: physnet ->
/// uplink switch port name.
pub fn compile(
    state: &NeutronState,
    switch_ports: &[SwitchPort<'_>],
    mappings: &BTreeMap<String, String>,
    locals: &mut LocalVlans,
) -> Compiled {
    locals.sync(state);
    let mut out = Compiled::default();
    for sp in switch_ports {
        let Some(iface) = sp.iface_id else { continue };
        let port = state.ports.get(iface);
        let net = port.and_then(|p| state.networks.get(&p.network_id));
        let vlan = match (port, net) {
            (Some(p), Some(n)) if p.admin_state_up && n.admin_state_up => locals.get(&n.id),
            _ => None,
        };
        let pv = match vlan {
            Some(v) => PortVlan::new(Some(VlanMode::Access), Some(v), &[])
                .unwrap_or_else(|_| PortVlan::dead()),
            None => PortVlan::dead(),
        };
        out.port_vlans.insert(sp.name.to_owned(), pv);
        if let Some(p) = port {
            out.port_acls
                .insert(sp.name.to_owned(), Arc::new(port_acl(state, p)));
            let up = vlan.is_some() && sp.link_up;
            out.statuses.insert(
                p.id.clone(),
                if up {
                    PortStatus::Active
                } else {
                    PortStatus::Down
                },
            );
        }
    }
    // A port that lost its switch port (VM unplugged) goes DOWN.
    for p in state.ports.values() {
        if p.status != PortStatus::Down && !out.statuses.contains_key(&p.id) {
            out.statuses.insert(p.id.clone(), PortStatus::Down);
        }
    }
    for (physnet, uplink) in mappings {
        if !switch_ports.iter().any(|p| p.name == uplink) {
            out.warnings.push(format!(
                "bridge_mappings: {physnet} maps to {uplink:?}, which is not a switch port"
            ));
            continue;
        }
        let mut pairs = Vec::new();
        let mut native = None;
        for n in state.networks.values() {
            if n.physical_network.as_deref() != Some(physnet.as_str()) {
                continue;
            }
            let Some(local) = locals.get(&n.id) else {
                continue;
            };
            match (n.network_type, n.segmentation_id) {
                (NetworkType::Vlan, Some(seg)) => pairs.push((seg, local)),
                (NetworkType::Flat, _) if native.is_none() => native = Some(local),
                (NetworkType::Flat, _) => out.warnings.push(format!(
                    "physnet {physnet}: a second flat network {} ignored",
                    n.id
                )),
                _ => {}
            }
        }
        match PortVlan::uplink(&pairs, native) {
            Ok(pv) => {
                out.port_vlans.insert(uplink.clone(), pv);
            }
            Err(e) => out.warnings.push(format!("uplink {uplink}: {e}")),
        }
    }
    out
}

/// A switch port the daemon opens by itself for a Neutron port bound on
/// this host, as os-vif plugs one for Nova.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The switch port's name: os-vif's device name ("vhu" / "vf-" + the
    /// first 11 characters of the port id).
    pub port_name: String,
    pub kind: control_api::config::PortType,
    /// The VF's PCI address, or the vhost-user socket path.
    pub target: String,
}

impl Attachment {
    /// The port's config: in its network's VLAN through `iface_id`.
    pub fn port_config(&self, neutron_port_id: &str) -> control_api::config::PortConfig {
        use control_api::config::{PortConfig, PortType};
        let mut c = PortConfig::dpdk(&self.port_name, "");
        c.kind = self.kind;
        match self.kind {
            PortType::Dpdkvhostuserclient => c.vhost_server_path = Some(self.target.clone()),
            _ => c.devargs = self.target.clone(),
        }
        c.iface_id = Some(neutron_port_id.to_owned());
        c
    }
}

/// The Neutron ports bound on this host that need a switch port of their
/// own: `normal` ports (vif_type vhostuser) get a vhost-user client port at
/// `binding:vif_details.vhostuser_socket` (QEMU is the socket's server,
/// `vhostuser_mode=server`); admin-up `direct` ports (vif_type hw_veb) get
/// their SR-IOV VF from `binding:profile.pci_slot`. By Neutron port id.
pub fn attachments(state: &NeutronState) -> BTreeMap<String, Attachment> {
    use control_api::config::PortType;
    let short = |id: &str| id.get(..11).unwrap_or(id).to_owned();
    state
        .ports
        .values()
        .filter_map(|p| {
            let b = &p.binding;
            let a = if b.vif_type == VifType::Vhostuser {
                Attachment {
                    port_name: format!("vhu{}", short(&p.id)),
                    kind: PortType::Dpdkvhostuserclient,
                    target: b.vif_details.get("vhostuser_socket")?.as_str()?.to_owned(),
                }
            } else if b.vif_type == VifType::HwVeb && p.admin_state_up {
                Attachment {
                    port_name: format!("vf-{}", short(&p.id)),
                    kind: PortType::Dpdk,
                    target: b.profile.get("pci_slot")?.as_str()?.to_owned(),
                }
            } else {
                return None;
            };
            Some((p.id.clone(), a))
        })
        .collect()
}

fn prefix(s: &str) -> Option<Prefix> {
    let c = Cidr::parse_lenient(s).ok()?;
    Some(Prefix {
        v6: c.version == IpVersion::V6,
        base: c.base,
        len: c.prefix,
    })
}

fn protocol_number(p: &str) -> Option<u8> {
    match p {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmpv6" | "ipv6-icmp" => Some(58),
        "sctp" => Some(132),
        other => other.parse().ok(),
    }
}

/// The addresses a port may use: fixed IPs and allowed address pairs.
fn port_prefixes(p: &Port) -> impl Iterator<Item = Prefix> + '_ {
    p.fixed_ips
        .iter()
        .filter_map(|f| prefix(&f.ip_address))
        .chain(
            p.allowed_address_pairs
                .iter()
                .filter_map(|a| prefix(&a.ip_address)),
        )
}

/// A port's security-group rules with remote groups expanded to the
/// addresses of the group's member ports (a remote group with no member of
/// the rule's family allows nothing, so the rule is left out).
fn port_acl(state: &NeutronState, p: &Port) -> PortAcl {
    let mac = parse_mac(&p.mac_address)
        .map(|m| m.iter().fold(0u64, |a, &b| (a << 8) | b as u64))
        .unwrap_or(0);
    let mut acl = PortAcl {
        port_security: p.port_security_enabled,
        ..Default::default()
    };
    for f in &p.fixed_ips {
        if let Some(pre) = prefix(&f.ip_address) {
            acl.allowed_sources.push((mac, pre));
        }
    }
    for a in &p.allowed_address_pairs {
        let m = parse_mac(&a.mac_address)
            .map(|m| m.iter().fold(0u64, |x, &b| (x << 8) | b as u64))
            .unwrap_or(mac);
        if let Some(pre) = prefix(&a.ip_address) {
            acl.allowed_sources.push((m, pre));
        }
    }
    if !p.port_security_enabled {
        return acl;
    }
    for gid in &p.security_groups {
        let Some(g) = state.security_groups.get(gid) else {
            continue;
        };
        for r in &g.security_group_rules {
            let direction = match r.direction {
                RuleDirection::Egress => Direction::Egress,
                RuleDirection::Ingress => Direction::Ingress,
            };
            let v6 = r.ethertype == IpVersion::V6;
            let protocol = r
                .protocol
                .as_deref()
                .filter(|p| *p != "any")
                .and_then(protocol_number);
            let (port_min, port_max) = match protocol {
                Some(1) | Some(58) => (
                    r.port_range_min.unwrap_or(255) as u16,
                    r.port_range_max.unwrap_or(255) as u16,
                ),
                _ => (
                    r.port_range_min.unwrap_or(0) as u16,
                    r.port_range_max.unwrap_or(65535) as u16,
                ),
            };
            let rule = |remote| AclRule {
                direction,
                v6,
                protocol,
                port_min,
                port_max,
                remote,
            };
            match (&r.remote_ip_prefix, &r.remote_group_id) {
                (Some(pre), _) => {
                    if let Some(pre) = prefix(pre) {
                        acl.rules.push(rule(Some(pre)));
                    }
                }
                (None, Some(remote)) => {
                    let members: BTreeSet<Prefix> = state
                        .ports
                        .values()
                        .filter(|m| m.security_groups.iter().any(|s| s == remote))
                        .flat_map(|m| port_prefixes(m).collect::<Vec<_>>())
                        .filter(|pre| pre.v6 == v6)
                        .collect();
                    acl.rules
                        .extend(members.into_iter().map(|pre| rule(Some(pre))));
                }
                (None, None) => acl.rules.push(rule(None)),
            }
        }
    }
    acl
}

/// `["physnet1:uplink", ...]` as a map; entries were validated by Neutron.
pub fn parse_mappings(mappings: &[String]) -> BTreeMap<String, String> {
    mappings
        .iter()
        .filter_map(|m| m.split_once(':'))
        .map(|(p, b)| (p.trim().to_owned(), b.trim().to_owned()))
        .collect()
}
