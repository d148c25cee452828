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
//! * the security-group rule set of each attached port; a rule naming a
//!   remote group points at that group's address set (its members' fixed
//!   IPs and allowed address pairs, one set per group and family, shared by
//!   every rule that names it);
//! * a port bound `normal` on this host (vif_type vhostuser) asks for a
//!   vhost-user client port at its `vhostuser_socket`, one bound `direct`
//!   (vif_type hw_veb) for its SR-IOV VF (`binding:profile.pci_slot`) as a
//!   DPDK port ([`Attachment`]);
//! * the switch's DHCP server for each attached port with an IPv4 address
//!   on a subnet with DHCP enabled: its address, the subnet's options and
//!   the network's `network:dhcp` port as the server ([`DhcpSettings`]);
//! * vxlan networks (l2population, as the OVS agent's `l2_population`):
//!   for each vxlan network with a port bound to this host, a `vxlan`
//!   switch port ([`TunnelWant`]) to every other registered host with a
//!   port bound in it, in the network's local VLAN with its VNI; the MAC of
//!   every remote port of the network pointing at its host's tunnel port,
//!   and every port's IPv4 addresses for the ARP responder
//!   ([`Compiled::known`]);
//! * the status each attached Neutron port should have: ACTIVE while its
//!   switch port's link is up and both it and its network are admin up,
//!   DOWN otherwise; a port that loses its switch port goes DOWN.
//!
//! The compiler is incremental: [`NeutronCompiler::absorb`] takes the ids a
//! commit touched (`neutron::Changes`) and updates its indexes (group
//! members, address sets, attachments, local VLANs) in proportion to them;
//! [`NeutronCompiler::compile`] then works only on the switch ports that
//! attach Neutron ports (at most `MAX_PORTS`), reusing every rule set that
//! nothing it depends on changed. Nothing walks all Neutron ports after
//! the first state.
use dataplane::acl::{AclRule, AddressSet, Direction, PortAcl, Prefix, Remote};
use dataplane::dhcp::{DhcpConfig, DhcpOptions, DhcpServer};
use dataplane::dhcp6::Dhcp6Config;
use dataplane::vlan::{PortVlan, VlanConfigError, VlanMode, MAX_VID};
use neutron::dhcp::DHCP_OWNER;
use neutron::model::{NetworkType, NeutronState, Port, PortStatus, RuleDirection, VifType};
use neutron::validate::{Cidr, IpVersion};
use neutron::Changes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Local VLAN per network, allocated lowest-free and kept while it exists.
#[derive(Debug, Default, Clone)]
pub struct LocalVlans {
    by_network: BTreeMap<String, u16>,
    used: BTreeSet<u16>,
}

impl LocalVlans {
    /// Allocates for new networks and frees those of deleted ones, looking
    /// only at `networks` (every network when `None`). Networks beyond
    /// 4094 get none (their ports stay dead).
    fn sync<'a>(
        &mut self,
        state: &NeutronState,
        networks: Option<impl Iterator<Item = &'a String>>,
    ) {
        let ids: Vec<&String> = match networks {
            Some(ids) => ids.collect(),
            None => {
                let gone: Vec<String> = self
                    .by_network
                    .keys()
                    .filter(|id| !state.networks.contains_key(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    self.release(&id);
                }
                state.networks.keys().collect()
            }
        };
        for id in ids {
            if !state.networks.contains_key(id) {
                self.release(id);
            } else if !self.by_network.contains_key(id) {
                if let Some(v) = (1..MAX_VID).find(|v| !self.used.contains(v)) {
                    self.by_network.insert(id.clone(), v);
                    self.used.insert(v);
                }
            }
        }
    }

    fn release(&mut self, network_id: &str) {
        if let Some(v) = self.by_network.remove(network_id) {
            self.used.remove(&v);
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

/// A VXLAN tunnel port the daemon opens by itself, to another host's
/// endpoint, for every vxlan network the two hosts share (as the OVS
/// agent's `br-tun` has one port per remote host, whatever the networks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelWant {
    /// Its next hop is resolved by ARP on the uplink (the remote endpoint,
    /// or the local endpoint's gateway): no MAC from the model.
    pub remote_ip: std::net::IpAddr,
    /// The networks it carries: network id to (VNI, MTU).
    pub networks: BTreeMap<String, (u32, u16)>,
}

impl TunnelWant {
    /// The switch port's name: the OVS agent's "vxlan-<remote IP in hex>"
    /// (an IPv6 remote's whole 32 hex digits: the agent hashes it to fit a
    /// kernel name; a switch port has room for it).
    pub fn port_name(&self) -> String {
        tunnel_port_name(self.remote_ip)
    }

    /// The port's config, from endpoint `local_ip`, each network in its
    /// local VLAN of `locals` (a network without one yet is left out);
    /// `None` while no network has one. Its MTU is the largest of theirs.
    pub fn port_config(
        &self,
        local_ip: std::net::IpAddr,
        locals: &LocalVlans,
    ) -> Option<control_api::config::PortConfig> {
        use control_api::config::{PortConfig, PortType};
        let vlan_keys = self.vlan_keys(locals);
        if vlan_keys.is_empty() {
            return None;
        }
        let mut c = PortConfig::dpdk(&self.port_name(), "");
        c.kind = PortType::Vxlan;
        c.remote_ip = Some(self.remote_ip);
        c.vlan_keys = vlan_keys;
        c.local_ip = Some(local_ip);
        c.mtu_request = self.networks.values().map(|&(_, mtu)| mtu).max();
        Some(c)
    }
}

impl TunnelWant {
    /// (local VLAN, VNI) of its networks that have a local VLAN in
    /// `locals`, sorted.
    pub fn vlan_keys(&self, locals: &LocalVlans) -> Vec<(u16, u32)> {
        let mut keys: Vec<(u16, u32)> = self
            .networks
            .iter()
            .filter_map(|(net, &(vni, _))| Some((locals.get(net)?, vni)))
            .collect();
        keys.sort_unstable();
        keys
    }
}

/// The name of the tunnel port to the host whose endpoint is `remote`.
pub fn tunnel_port_name(remote: std::net::IpAddr) -> String {
    match remote {
        std::net::IpAddr::V4(ip) => format!("vxlan-{:08x}", u32::from(ip)),
        std::net::IpAddr::V6(ip) => format!("vxlan-{:032x}", u128::from(ip)),
    }
}

/// What l2population knows of one vxlan network (each list sorted).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NetworkL2 {
    /// Remote ports' MACs, with the tunnel switch port to their host.
    pub remote_macs: Vec<(u64, String)>,
    /// Every port's IPv4 addresses, with its MAC (the ARP responder).
    pub addresses: Vec<([u8; 4], [u8; 6])>,
    /// The same for IPv6 (the neighbour responder).
    pub addresses6: Vec<([u8; 16], [u8; 6])>,
}

/// What l2population knows for the integration bridge: each vxlan
/// network's [`NetworkL2`] by its local VLAN.
pub type Known = Vec<(u16, NetworkL2)>;

/// A switch port as the compiler needs to see it.
#[derive(Debug, Clone)]
pub struct SwitchPort<'a> {
    pub name: &'a str,
    pub iface_id: Option<&'a str>,
    pub link_up: bool,
}

/// What the dataplane and the API should become.
#[derive(Debug, Default, Clone)]
pub struct Compiled {
    /// VLAN rules of every switch port Neutron controls (attached ports and
    /// uplinks), by port name.
    pub port_vlans: BTreeMap<String, PortVlan>,
    /// Security-group rule sets of attached ports, by switch port name. The
    /// same `Arc` as last time when nothing it depends on changed.
    pub port_acls: BTreeMap<String, Arc<PortAcl>>,
    /// Neutron port id -> the status it should have: attached ports, and
    /// ports that lost their switch port.
    pub statuses: BTreeMap<String, PortStatus>,
    /// l2population's tables for the integration bridge (`None`: no
    /// vxlan network has a port here).
    pub known: Option<Known>,
    /// The switch's DHCP server of attached ports, by switch port name
    /// (compiled anew each time: compare by value).
    pub port_dhcp: BTreeMap<String, Arc<DhcpServer>>,
    /// Problems worth a log line (e.g. VID conflicts on an uplink).
    pub warnings: Vec<String>,
    /// `None`: `port_vlans`, `port_acls` and `port_dhcp` give every
    /// attached switch port's (absent from the last two: none).
    /// `Some(names)`: they give only these attached switch ports', those a
    /// change touched; every other one keeps what it was given before. The
    /// uplinks and tunnel ports are always in `port_vlans`.
    pub partial: Option<BTreeSet<String>>,
}

/// What the switch's DHCP server hands out beyond the Neutron model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpSettings {
    /// Serve DHCP at all (`neutron.dhcp`).
    pub enabled: bool,
    pub lease_secs: u32,
    /// `neutron.dns_domain` (option 15; empty: not sent).
    pub domain: String,
}

impl Default for DhcpSettings {
    fn default() -> Self {
        DhcpSettings {
            enabled: true,
            lease_secs: neutron::DEFAULT_DHCP_LEASE_SECS,
            domain: neutron::DEFAULT_DNS_DOMAIN.to_owned(),
        }
    }
}

fn v6(s: &str) -> Option<[u8; 16]> {
    match s.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V6(a) => Some(a.octets()),
        std::net::IpAddr::V4(_) => None,
    }
}

/// Port `p`'s DHCPv6 server on `state`'s model, when it has one: on the
/// first IPv6 subnet of its network with DHCP enabled and an address mode
/// of `dhcpv6-stateful` (its fixed address there, and the options) or
/// `dhcpv6-stateless` (the options only); the network's DHCP port `dhcp`
/// is the server (its MAC, its link-local address).
fn dhcp6_config(
    state: &NeutronState,
    p: &Port,
    dhcp: &Port,
    settings: &DhcpSettings,
) -> Option<Dhcp6Config> {
    let net = state.networks.get(&p.network_id)?;
    net.subnets.iter().find_map(|sid| {
        let sn = state.subnets.get(sid)?;
        if !sn.enable_dhcp || sn.ip_version != 6 {
            return None;
        }
        let address = match sn.ipv6_address_mode.as_deref() {
            Some("dhcpv6-stateful") => Some(
                p.fixed_ips
                    .iter()
                    .find(|f| f.subnet_id == sn.id)
                    .and_then(|f| v6(&f.ip_address))?,
            ),
            Some("dhcpv6-stateless") => None,
            _ => return None,
        };
        let dns: Vec<[u8; 16]> = sn.dns_nameservers.iter().filter_map(|d| v6(d)).collect();
        Some(Dhcp6Config::new(
            p.mac()?,
            address,
            dhcp.mac()?,
            settings.lease_secs,
            &dns,
            &settings.domain,
        ))
    })
}

fn v4(s: &str) -> Option<[u8; 4]> {
    match s.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => Some(a.octets()),
        std::net::IpAddr::V6(_) => None,
    }
}

/// Port `p`'s DHCP server on `state`'s model, when it has one: its first
/// IPv4 address on a subnet with DHCP enabled where the network's DHCP
/// port `dhcp` has an address too (the server identifier).
fn dhcp_config(
    state: &NeutronState,
    p: &Port,
    dhcp: &Port,
    settings: &DhcpSettings,
) -> Option<DhcpConfig> {
    let net = state.networks.get(&p.network_id)?;
    p.fixed_ips.iter().find_map(|f| {
        let sn = state.subnets.get(&f.subnet_id)?;
        if !sn.enable_dhcp || sn.ip_version != 4 {
            return None;
        }
        let server = dhcp
            .fixed_ips
            .iter()
            .find(|d| d.subnet_id == sn.id)
            .and_then(|d| v4(&d.ip_address))?;
        let cidr = Cidr::parse_strict(&sn.cidr).ok()?;
        let options = DhcpOptions {
            prefix_len: cidr.prefix,
            router: sn.gateway_ip.as_deref().and_then(v4),
            dns: sn.dns_nameservers.iter().filter_map(|d| v4(d)).collect(),
            domain: settings.domain.trim_end_matches('.').to_owned(),
            mtu: u16::try_from(net.mtu).unwrap_or(0),
            routes: sn
                .host_routes
                .iter()
                .filter_map(|r| {
                    let c = Cidr::parse_strict(&r.destination).ok()?;
                    let base = u32::try_from(c.base).ok()?.to_be_bytes();
                    Some((base, c.prefix, v4(&r.nexthop)?))
                })
                .collect(),
            hostname: None,
        };
        Some(DhcpConfig::new(
            p.mac()?,
            v4(&f.ip_address)?,
            server,
            dhcp.mac()?,
            settings.lease_secs,
            &options,
        ))
    })
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

    /// The attachment a Neutron port bound here needs, if any: `normal`
    /// ports (vif_type vhostuser) get a vhost-user client port at
    /// `binding:vif_details.vhostuser_socket` (QEMU is the socket's server,
    /// `vhostuser_mode=server`); admin-up `direct` ports (vif_type hw_veb)
    /// get their SR-IOV VF from `binding:profile.pci_slot`.
    pub fn of(p: &Port) -> Option<Attachment> {
        use control_api::config::PortType;
        let short = p.id.get(..11).unwrap_or(&p.id);
        let b = &p.binding;
        match b.vif_type {
            VifType::Vhostuser => Some(Attachment {
                port_name: format!("vhu{short}"),
                kind: PortType::Dpdkvhostuserclient,
                target: b.vif_details.get("vhostuser_socket")?.as_str()?.to_owned(),
            }),
            VifType::HwVeb if p.admin_state_up => Some(Attachment {
                port_name: format!("vf-{short}"),
                kind: PortType::Dpdk,
                target: b.profile.get("pci_slot")?.as_str()?.to_owned(),
            }),
            _ => None,
        }
    }
}

/// Which ports are members of which security groups (every Neutron port,
/// for remote groups), and each group's member addresses, kept up to date
/// port by port: a port that joins, leaves or changes its addresses costs
/// in proportion to its own groups and addresses, not to the groups' size.
#[derive(Debug, Default)]
struct Groups {
    /// A port's groups and addresses when it was last seen.
    of_port: HashMap<String, (Vec<String>, Vec<Prefix>)>,
    /// Group -> the addresses of its members, each with how many members
    /// have it (two ports may share one through allowed address pairs).
    prefixes: HashMap<String, BTreeMap<Prefix, u32>>,
    /// (group, IPv6?) -> its members' addresses as the rules use them;
    /// built when first asked for, then kept up to date address by address
    /// (a set a snapshot holds is copied before it changes).
    addresses: HashMap<(String, bool), Arc<AddressSet>>,
}

impl Groups {
    /// Takes port `id`'s current groups and addresses from `state` (none
    /// if deleted) and returns the groups whose member addresses changed.
    fn update_port(&mut self, state: &NeutronState, id: &str) -> Vec<String> {
        let now: (Vec<String>, Vec<Prefix>) = state
            .ports
            .get(id)
            .map(|p| {
                let mut pre: Vec<Prefix> = port_prefixes(p).collect();
                pre.sort_unstable();
                // A group named twice is one membership.
                let mut groups = p.security_groups.clone();
                groups.sort();
                groups.dedup();
                (groups, pre)
            })
            .unwrap_or_default();
        let before = self.of_port.remove(id).unwrap_or_default();
        // Same addresses: only the groups joined or left change.
        let touched: Vec<String> = if before.1 == now.1 {
            let mut t: Vec<String> = before
                .0
                .iter()
                .filter(|g| !now.0.contains(g))
                .chain(now.0.iter().filter(|g| !before.0.contains(g)))
                .cloned()
                .collect();
            t.sort();
            t.dedup();
            t
        } else {
            let mut t: Vec<String> = before.0.iter().chain(&now.0).cloned().collect();
            t.sort();
            t.dedup();
            t
        };
        for g in &before.0 {
            if !touched.contains(g) {
                continue;
            }
            if let Some(set) = self.prefixes.get_mut(g) {
                for pre in &before.1 {
                    if let Some(n) = set.get_mut(pre) {
                        *n -= 1;
                        if *n == 0 {
                            set.remove(pre);
                            // The last member with it left: out of the
                            // group's set (copied first if a snapshot
                            // holds it), not a set built anew.
                            if let Some(a) = self.addresses.get_mut(&(g.clone(), pre.v6)) {
                                Arc::make_mut(a).remove(pre);
                            }
                        }
                    }
                }
                if set.is_empty() {
                    self.prefixes.remove(g);
                }
            }
        }
        for g in &now.0 {
            if !touched.contains(g) {
                continue;
            }
            let set = self.prefixes.entry(g.clone()).or_default();
            for pre in &now.1 {
                let n = set.entry(*pre).or_default();
                *n += 1;
                if *n == 1 {
                    if let Some(a) = self.addresses.get_mut(&(g.clone(), pre.v6)) {
                        Arc::make_mut(a).insert(*pre);
                    }
                }
            }
        }
        if !now.0.is_empty() {
            self.of_port.insert(id.to_owned(), now);
        }
        touched
    }

    fn rebuild(&mut self, state: &NeutronState) {
        *self = Groups::default();
        for id in state.ports.keys() {
            self.update_port(state, id);
        }
    }

    /// The addresses of `group`'s members in one family (cached).
    fn addresses(&mut self, group: &str, v6: bool) -> Arc<AddressSet> {
        let key = (group.to_owned(), v6);
        if let Some(a) = self.addresses.get(&key) {
            return Arc::clone(a);
        }
        let prefixes = self
            .prefixes
            .get(group)
            .into_iter()
            .flat_map(|set| set.keys().copied());
        let set = Arc::new(AddressSet::new(v6, prefixes));
        self.addresses.insert(key, Arc::clone(&set));
        set
    }
}

/// What an attached Neutron port gets from the model besides its rule set
/// (cached apart, in `acls`): it depends on the port, its network (local
/// VLAN, admin state, MTU), the network's subnets and DHCP port, and the
/// DHCP settings.
#[derive(Debug, Clone)]
struct Derived {
    /// The port is in the model.
    exists: bool,
    /// Its local VLAN, while it and its network are admin up.
    vlan: Option<u16>,
    dhcp: Option<Arc<DhcpServer>>,
}

/// A compiled rule set and what it was compiled from.
#[derive(Debug)]
struct CachedAcl {
    acl: Arc<PortAcl>,
    /// The port's own groups (their rules).
    groups: BTreeSet<String>,
    /// Groups its rules name as remote (their members).
    remote_groups: BTreeSet<String>,
}

/// What l2population reads of a port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortL2 {
    network: String,
    host: String,
    mac: String,
    ips: Vec<String>,
}

/// The incremental compiler; see the module documentation.
#[derive(Debug)]
pub struct NeutronCompiler {
    /// physnet -> uplink switch port name.
    mappings: BTreeMap<String, String>,
    locals: LocalVlans,
    groups: Groups,
    /// Rule sets of attached Neutron ports, by Neutron port id.
    acls: HashMap<String, CachedAcl>,
    /// The uplinks' VLAN rules (or why there are none), by switch port,
    /// with the physnet they carry.
    uplinks: BTreeMap<String, (String, Result<PortVlan, VlanConfigError>)>,
    uplink_warnings: Vec<String>,
    /// Neutron ports bound here that need a switch port of their own.
    attachments: BTreeMap<String, Attachment>,
    /// Neutron ports attached at the last compile.
    attached: BTreeSet<String>,
    /// The `iface_id`s of the switch ports at the last compile (attached or
    /// waiting for their Neutron port to exist).
    wired: BTreeSet<String>,
    /// The switch ports at the last compile, in order: (name, `iface_id`,
    /// link up). While they stay the same, a compile looks again only at
    /// those whose link changed or whose cached outputs a change dropped.
    last_ports: Vec<(String, Option<String>, bool)>,
    /// The switch's DHCP server settings.
    dhcp: DhcpSettings,
    /// network id -> its `network:dhcp` port's id.
    dhcp_ports: BTreeMap<String, String>,
    /// What [`Self::compile`] derived for each attached Neutron port, by
    /// its id, until [`Self::absorb`] sees a change it depends on: a
    /// change elsewhere then costs a lookup per attached port, not the
    /// model lookups and the DHCP options of each.
    derived: HashMap<String, Derived>,
    /// Every port's status was checked once (ports left ACTIVE by a
    /// previous run go DOWN until attached again).
    swept: bool,
    primed: bool,
    /// This host's VXLAN endpoint (`neutron.local_ip`).
    local_ip: Option<std::net::IpAddr>,
    /// What l2population reads of every port, by port id.
    port_net: HashMap<String, PortL2>,
    /// Network -> its ports (networks with ports only).
    net_ports: HashMap<String, BTreeSet<String>>,
    /// The vxlan networks.
    vxlan_nets: BTreeSet<String>,
    /// Tunnel ports wanted, by switch port name.
    tunnels: BTreeMap<String, TunnelWant>,
    /// What the last l2population pass found, by network id (networks
    /// with something known only).
    l2pop: BTreeMap<String, NetworkL2>,
    /// Set when the model is shared by many hosts (etcd): this host's
    /// name. Only the ports bound to it are this switch's to attach, and
    /// to set DOWN at start; the rest belong to other hosts' switches.
    host: Option<String>,
}

impl NeutronCompiler {
    /// `mappings`: physnet -> uplink switch port name.
    pub fn new(mappings: BTreeMap<String, String>) -> NeutronCompiler {
        NeutronCompiler {
            mappings,
            locals: LocalVlans::default(),
            groups: Groups::default(),
            acls: HashMap::new(),
            uplinks: BTreeMap::new(),
            uplink_warnings: Vec::new(),
            attachments: BTreeMap::new(),
            attached: BTreeSet::new(),
            wired: BTreeSet::new(),
            last_ports: Vec::new(),
            dhcp: DhcpSettings::default(),
            dhcp_ports: BTreeMap::new(),
            derived: HashMap::new(),
            swept: false,
            primed: false,
            local_ip: None,
            port_net: HashMap::new(),
            net_ports: HashMap::new(),
            vxlan_nets: BTreeSet::new(),
            tunnels: BTreeMap::new(),
            l2pop: BTreeMap::new(),
            host: None,
        }
    }

    /// With this host's VXLAN endpoint: tunnels to other hosts.
    pub fn with_local_ip(mut self, ip: Option<std::net::IpAddr>) -> NeutronCompiler {
        self.local_ip = ip;
        self
    }

    /// This host's VXLAN endpoint, if it has one.
    pub fn local_ip(&self) -> Option<std::net::IpAddr> {
        self.local_ip
    }

    /// The tunnel ports wanted, by switch port name.
    pub fn tunnels(&self) -> &BTreeMap<String, TunnelWant> {
        &self.tunnels
    }

    /// Follows port `id` from network to network in the index; true when
    /// it is or was in a vxlan network and what l2population reads of it
    /// changed (a status report changes nothing here).
    fn index_port(&mut self, state: &NeutronState, id: &str) -> bool {
        let now = state.ports.get(id).map(|p| PortL2 {
            network: p.network_id.clone(),
            host: p.binding.host_id.clone(),
            mac: p.mac_address.clone(),
            ips: p.fixed_ips.iter().map(|f| f.ip_address.clone()).collect(),
        });
        let before = match &now {
            Some(n) => self.port_net.insert(id.to_owned(), n.clone()),
            None => self.port_net.remove(id),
        };
        if before == now {
            return false;
        }
        let (before, now) = (before.map(|b| b.network), now.map(|n| n.network));
        if before != now {
            if let Some(b) = &before {
                if let Some(set) = self.net_ports.get_mut(b) {
                    set.remove(id);
                    if set.is_empty() {
                        self.net_ports.remove(b);
                    }
                }
            }
            if let Some(n) = &now {
                self.net_ports
                    .entry(n.clone())
                    .or_default()
                    .insert(id.to_owned());
            }
        }
        [before, now]
            .iter()
            .flatten()
            .any(|n| self.vxlan_nets.contains(n))
    }

    /// Follows network `id` in and out of the vxlan networks.
    fn index_network(&mut self, state: &NeutronState, id: &str) {
        if state
            .networks
            .get(id)
            .is_some_and(|n| n.network_type == NetworkType::Vxlan)
        {
            self.vxlan_nets.insert(id.to_owned());
        } else {
            self.vxlan_nets.remove(id);
        }
    }

    /// The tunnels and l2population's tables from the vxlan networks this
    /// host has ports in: in proportion to their ports. True when
    /// something changed.
    fn populate(&mut self, state: &NeutronState) -> bool {
        let mut tunnels = BTreeMap::new();
        let mut l2pop = BTreeMap::new();
        let mine = |p: &Port| match &self.host {
            Some(h) => p.binding.host_id == *h,
            None => true,
        };
        let none = BTreeSet::new();
        for net_id in &self.vxlan_nets {
            let Some(net) = state.networks.get(net_id) else {
                continue;
            };
            let ports = self.net_ports.get(net_id).unwrap_or(&none);
            let ports: Vec<&Arc<Port>> =
                ports.iter().filter_map(|id| state.ports.get(id)).collect();
            if !ports.iter().any(|p| mine(p)) {
                continue;
            }
            let mut l2 = NetworkL2::default();
            for p in &ports {
                let Some(mac) = p.mac() else { continue };
                for f in &p.fixed_ips {
                    match f.address() {
                        Some(std::net::IpAddr::V4(a)) => l2.addresses.push((a.octets(), mac)),
                        Some(std::net::IpAddr::V6(a)) => l2.addresses6.push((a.octets(), mac)),
                        None => {}
                    }
                }
                if mine(p) || p.binding.host_id.is_empty() {
                    continue;
                }
                // Another host's port: through a tunnel to that host.
                let (Some(local), Some(h), Some(vni)) = (
                    self.local_ip,
                    state.hosts.get(&p.binding.host_id),
                    net.segmentation_id,
                ) else {
                    continue;
                };
                let Some(ip) = h
                    .tunnel_ip
                    .as_deref()
                    .and_then(|s| s.parse::<std::net::IpAddr>().ok())
                else {
                    continue;
                };
                // Itself, or an endpoint of the other IP version (a
                // misconfigured host: no tunnel can reach it).
                if ip == local || ip.is_ipv4() != local.is_ipv4() {
                    continue;
                }
                let name = tunnel_port_name(ip);
                tunnels
                    .entry(name.clone())
                    .or_insert_with(|| TunnelWant {
                        remote_ip: ip,
                        networks: BTreeMap::new(),
                    })
                    .networks
                    .insert(net_id.clone(), (vni, net.mtu.clamp(68, 9216) as u16));
                l2.remote_macs.push((mac_u64(mac), name));
            }
            if l2 != NetworkL2::default() {
                l2.remote_macs.sort();
                l2.addresses.sort();
                l2.addresses6.sort();
                l2pop.insert(net_id.clone(), l2);
            }
        }
        let changed = tunnels != self.tunnels || l2pop != self.l2pop;
        self.tunnels = tunnels;
        self.l2pop = l2pop;
        changed
    }

    /// In a cluster: the ports of other hosts are not this switch's.
    pub fn with_host(mut self, host: Option<String>) -> NeutronCompiler {
        self.host = host;
        self
    }

    /// Whether `p` is this switch's (always, on a model of its own).
    fn is_mine(&self, p: &Port) -> bool {
        self.host.as_ref().is_none_or(|h| p.binding.host_id == *h)
    }

    /// With the switch's DHCP server set up as `settings` say.
    pub fn with_dhcp(mut self, settings: DhcpSettings) -> NeutronCompiler {
        self.dhcp = settings;
        self
    }

    pub fn mappings(&self) -> &BTreeMap<String, String> {
        &self.mappings
    }

    pub fn local_vlans(&self) -> &LocalVlans {
        &self.locals
    }

    /// The Neutron ports bound here that need a switch port of their own,
    /// by Neutron port id.
    pub fn attachments(&self) -> &BTreeMap<String, Attachment> {
        &self.attachments
    }

    /// Brings the indexes up to `state`: from scratch the first time or
    /// when `changes` is `None`, else only for what `changes` touched.
    /// Returns whether [`Self::compile`] may now give something else, or
    /// the attachments changed; when false both can be skipped.
    pub fn absorb(&mut self, state: &NeutronState, changes: Option<&Changes>) -> bool {
        let changes = match changes {
            Some(c) if self.primed => c,
            _ => {
                self.locals.sync(state, None::<std::iter::Empty<&String>>);
                self.groups.rebuild(state);
                self.acls.clear();
                self.derived.clear();
                self.attachments = state
                    .ports
                    .values()
                    .filter(|p| self.is_mine(p))
                    .filter_map(|p| Some((p.id.clone(), Attachment::of(p)?)))
                    .collect();
                self.dhcp_ports = state
                    .ports
                    .values()
                    .filter(|p| p.device_owner == DHCP_OWNER)
                    .map(|p| (p.network_id.clone(), p.id.clone()))
                    .collect();
                self.compile_uplinks(state);
                self.port_net.clear();
                self.net_ports.clear();
                self.vxlan_nets = state
                    .networks
                    .values()
                    .filter(|n| n.network_type == NetworkType::Vxlan)
                    .map(|n| n.id.clone())
                    .collect();
                let ids: Vec<String> = state.ports.keys().cloned().collect();
                for id in &ids {
                    self.index_port(state, id);
                }
                self.populate(state);
                self.primed = true;
                return true;
            }
        };
        let mut dirty = false;
        // l2population: a vxlan network's ports, or the hosts, changed.
        let mut vxlan = changes.hosts;
        for id in &changes.networks {
            vxlan |= self.vxlan_nets.contains(id);
            self.index_network(state, id);
            vxlan |= self.vxlan_nets.contains(id);
        }
        for id in &changes.ports {
            vxlan |= self.index_port(state, id);
        }
        if vxlan {
            dirty |= self.populate(state);
        }
        if !changes.networks.is_empty() {
            self.locals.sync(state, Some(changes.networks.iter()));
            self.compile_uplinks(state);
            dirty = true;
        }
        // A subnet's options, or a DHCP port, change what DHCP answers.
        dirty |= !changes.subnets.is_empty();
        let mut derived_stale = !changes.networks.is_empty() || !changes.subnets.is_empty();
        let mut members_changed: BTreeSet<String> = BTreeSet::new();
        for id in &changes.ports {
            self.derived.remove(id);
            match state.ports.get(id).filter(|p| p.device_owner == DHCP_OWNER) {
                Some(p) => {
                    self.dhcp_ports.insert(p.network_id.clone(), id.clone());
                    dirty = true;
                    derived_stale = true;
                }
                None => {
                    let before = self.dhcp_ports.len();
                    self.dhcp_ports.retain(|_, p| p != id);
                    let gone = before != self.dhcp_ports.len();
                    dirty |= gone;
                    derived_stale |= gone;
                }
            }
            members_changed.extend(self.groups.update_port(state, id));
            let now = state
                .ports
                .get(id)
                .filter(|p| self.is_mine(p))
                .and_then(|p| Attachment::of(p));
            let before = match &now {
                Some(a) => self.attachments.insert(id.clone(), a.clone()),
                None => self.attachments.remove(id),
            };
            dirty |= before != now || self.wired.contains(id);
        }
        if derived_stale {
            self.derived.clear();
        }
        // A group's rules changed, or it went away: its address sets too.
        for g in &changes.security_groups {
            self.groups.addresses.remove(&(g.clone(), false));
            self.groups.addresses.remove(&(g.clone(), true));
        }
        let cached = self.acls.len();
        self.acls.retain(|port, c| {
            !changes.ports.contains(port)
                && c.groups.is_disjoint(&changes.security_groups)
                && c.remote_groups.is_disjoint(&changes.security_groups)
                && c.remote_groups.is_disjoint(&members_changed)
        });
        dirty || self.acls.len() != cached
    }

    /// The dataplane configuration for `switch_ports` from `state` (which
    /// [`Self::absorb`] has seen): only switch ports attached to Neutron
    /// ports and the uplinks are looked at. While the switch ports are the
    /// ones of the last compile, only those a change touched (their cached
    /// derivations or rule sets dropped by [`Self::absorb`], or their link
    /// changed) are compiled again, and the result says so
    /// ([`Compiled::partial`]): a change costs in proportion to the ports it
    /// touches, not to every attached port.
    pub fn compile(&mut self, state: &NeutronState, switch_ports: &[SwitchPort<'_>]) -> Compiled {
        let mut out = Compiled::default();
        let same = self.swept
            && self.last_ports.len() == switch_ports.len()
            && self
                .last_ports
                .iter()
                .zip(switch_ports)
                .all(|((name, iface, _), sp)| name == sp.name && iface.as_deref() == sp.iface_id);
        // The Neutron ports whose outputs a change dropped from the caches
        // (found first: two switch ports may name the same one). A whole
        // compile looks at every port anyway.
        let stale: BTreeSet<&str> = match same {
            true => switch_ports
                .iter()
                .filter_map(|sp| sp.iface_id)
                .filter(|iface| {
                    !self
                        .derived
                        .get(*iface)
                        .is_some_and(|d| !d.exists || self.acls.contains_key(*iface))
                })
                .collect(),
            false => BTreeSet::new(),
        };
        let mut touched = BTreeSet::new();
        // The attached Neutron ports: kept and edited by a partial compile,
        // made anew by a whole one.
        let mut attached = match same {
            true => std::mem::take(&mut self.attached),
            false => BTreeSet::new(),
        };
        for (k, sp) in switch_ports.iter().enumerate() {
            let Some(iface) = sp.iface_id else { continue };
            if same {
                let link_same = self.last_ports.get(k).is_some_and(|l| l.2 == sp.link_up);
                if link_same && !stale.contains(iface) {
                    continue;
                }
                touched.insert(sp.name.to_owned());
            }
            let d = match self.derived.get(iface) {
                Some(d) => d.clone(),
                None => {
                    let d = self.derive(state, iface);
                    self.derived.insert(iface.to_owned(), d.clone());
                    d
                }
            };
            let pv = match d.vlan {
                Some(v) => PortVlan::new(Some(VlanMode::Access), Some(v), &[])
                    .unwrap_or_else(|_| PortVlan::dead()),
                None => PortVlan::dead(),
            };
            out.port_vlans.insert(sp.name.to_owned(), pv);
            if !d.exists {
                attached.remove(iface);
                continue;
            }
            // The rule set: cached, or made from the port (which exists).
            let acl = match self.acls.get(iface) {
                Some(c) => Some(Arc::clone(&c.acl)),
                None => state.ports.get(iface).map(|p| self.port_acl(state, p)),
            };
            if let Some(acl) = acl {
                out.port_acls.insert(sp.name.to_owned(), acl);
            }
            if let Some(servers) = d.dhcp {
                out.port_dhcp.insert(sp.name.to_owned(), servers);
            }
            let up = d.vlan.is_some() && sp.link_up;
            let status = if up {
                PortStatus::Active
            } else {
                PortStatus::Down
            };
            out.statuses.insert(iface.to_owned(), status);
            attached.insert(iface.to_owned());
        }
        if same {
            for ((_, _, link), sp) in self.last_ports.iter_mut().zip(switch_ports) {
                *link = sp.link_up;
            }
            self.attached = attached;
            out.partial = Some(touched);
        } else {
            self.wired = switch_ports
                .iter()
                .filter_map(|p| p.iface_id.map(str::to_owned))
                .collect();
            self.last_ports = switch_ports
                .iter()
                .map(|sp| {
                    (
                        sp.name.to_owned(),
                        sp.iface_id.map(str::to_owned),
                        sp.link_up,
                    )
                })
                .collect();
            // Ports that lost their switch port (VM unplugged) go DOWN; the
            // first time, any port a previous run left up.
            if !self.swept {
                self.swept = true;
                for p in state.ports.values().filter(|p| self.is_mine(p)) {
                    if p.status != PortStatus::Down && !attached.contains(&p.id) {
                        out.statuses.insert(p.id.clone(), PortStatus::Down);
                    }
                }
            }
            for id in self.attached.difference(&attached) {
                if state.ports.contains_key(id) {
                    out.statuses.insert(id.clone(), PortStatus::Down);
                }
            }
            self.acls.retain(|id, _| attached.contains(id));
            self.derived.retain(|id, _| self.wired.contains(id));
            self.attached = attached;
        }
        // Tunnel ports: trunks of their networks' local VLANs, as their
        // config (`TunnelWant::port_config`) validates to.
        for sp in switch_ports {
            if let Some(t) = self.tunnels.get(sp.name) {
                let keys = t.vlan_keys(&self.locals);
                let pv = match keys.is_empty() {
                    true => PortVlan::dead(),
                    false => control_api::config::vlan_keys_trunk(&keys)
                        .unwrap_or_else(|_| PortVlan::dead()),
                };
                out.port_vlans.insert(sp.name.to_owned(), pv);
            }
        }
        if !self.l2pop.is_empty() {
            out.known = Some(
                self.l2pop
                    .iter()
                    .filter_map(|(net, l2)| Some((self.locals.get(net)?, l2.clone())))
                    .collect(),
            );
        }
        out.warnings.extend(self.uplink_warnings.iter().cloned());
        for (uplink, (physnet, vlan)) in &self.uplinks {
            if !switch_ports.iter().any(|p| p.name == uplink) {
                out.warnings.push(format!(
                    "bridge_mappings: {physnet} maps to {uplink:?}, which is not a switch port"
                ));
                continue;
            }
            match vlan {
                Ok(pv) => {
                    out.port_vlans.insert(uplink.clone(), pv.clone());
                }
                Err(e) => out.warnings.push(format!("uplink {uplink}: {e}")),
            }
        }
        out
    }

    /// What Neutron port `id` gets from the model besides its rule set.
    fn derive(&self, state: &NeutronState, id: &str) -> Derived {
        let Some(p) = state.ports.get(id) else {
            return Derived {
                exists: false,
                vlan: None,
                dhcp: None,
            };
        };
        let vlan = match state.networks.get(&p.network_id) {
            Some(n) if p.admin_state_up && n.admin_state_up => self.locals.get(&n.id),
            _ => None,
        };
        let server = self
            .dhcp_ports
            .get(&p.network_id)
            .and_then(|id| state.ports.get(id));
        let dhcp = match (vlan, server, self.dhcp.enabled) {
            (Some(_), Some(dp), true) => {
                let servers = DhcpServer {
                    v4: dhcp_config(state, p, dp, &self.dhcp),
                    v6: dhcp6_config(state, p, dp, &self.dhcp),
                };
                (servers.v4.is_some() || servers.v6.is_some()).then(|| Arc::new(servers))
            }
            _ => None,
        };
        Derived {
            exists: true,
            vlan,
            dhcp,
        }
    }

    /// Each uplink's translations, from the networks of its physnet.
    fn compile_uplinks(&mut self, state: &NeutronState) {
        self.uplinks.clear();
        self.uplink_warnings.clear();
        for (physnet, uplink) in &self.mappings {
            let mut pairs = Vec::new();
            let mut native = None;
            for n in state.networks.values() {
                if n.physical_network.as_deref() != Some(physnet.as_str()) {
                    continue;
                }
                let Some(local) = self.locals.get(&n.id) else {
                    continue;
                };
                match (n.network_type, n.segmentation_id) {
                    (NetworkType::Vlan, Some(seg)) => pairs.push((seg as u16, local)),
                    (NetworkType::Flat, _) if native.is_none() => native = Some(local),
                    (NetworkType::Flat, _) => self.uplink_warnings.push(format!(
                        "physnet {physnet}: a second flat network {} ignored",
                        n.id
                    )),
                    _ => {}
                }
            }
            self.uplinks.insert(
                uplink.clone(),
                (physnet.clone(), PortVlan::uplink(&pairs, native)),
            );
        }
    }

    /// Port `p`'s rule set: the cached one, or compiled now.
    fn port_acl(&mut self, state: &NeutronState, p: &Port) -> Arc<PortAcl> {
        if let Some(c) = self.acls.get(&p.id) {
            return Arc::clone(&c.acl);
        }
        let mut acl = PortAcl {
            port_security: p.port_security_enabled,
            ..Default::default()
        };
        let mac = p.mac().map(mac_u64).unwrap_or(0);
        for f in &p.fixed_ips {
            if let Some(pre) = f.address().map(|a| prefix(Cidr::host(a))) {
                acl.allowed_sources.push((mac, pre));
            }
        }
        for a in &p.allowed_address_pairs {
            let m = a.mac().map(mac_u64).unwrap_or(mac);
            if let Some(pre) = a.prefix().map(prefix) {
                acl.allowed_sources.push((m, pre));
            }
        }
        let mut groups = BTreeSet::new();
        let mut remote_groups = BTreeSet::new();
        if p.port_security_enabled {
            for gid in &p.security_groups {
                groups.insert(gid.clone());
                let Some(g) = state.security_groups.get(gid) else {
                    continue;
                };
                for r in &g.security_group_rules {
                    let direction = match r.direction {
                        RuleDirection::Egress => Direction::Egress,
                        RuleDirection::Ingress => Direction::Ingress,
                    };
                    let v6 = r.ethertype == IpVersion::V6;
                    let protocol = r.protocol_number();
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
                    let remote = match (&r.remote_ip_prefix, &r.remote_group_id) {
                        (Some(_), _) => match r.remote_prefix() {
                            Some(c) => Remote::Prefix(prefix(c)),
                            None => continue,
                        },
                        (None, Some(remote)) => {
                            remote_groups.insert(remote.clone());
                            let set = self.groups.addresses(remote, v6);
                            // No member of the rule's family: it admits nothing.
                            if set.is_empty() {
                                continue;
                            }
                            Remote::Group(set)
                        }
                        (None, None) => Remote::Any,
                    };
                    acl.rules.push(AclRule {
                        direction,
                        v6,
                        protocol,
                        port_min,
                        port_max,
                        remote,
                    });
                }
            }
        }
        acl.index_rules();
        let acl = Arc::new(acl);
        self.acls.insert(
            p.id.clone(),
            CachedAcl {
                acl: Arc::clone(&acl),
                groups,
                remote_groups,
            },
        );
        acl
    }
}

fn mac_u64(m: [u8; 6]) -> u64 {
    m.iter().fold(0u64, |a, &b| (a << 8) | b as u64)
}

fn prefix(c: Cidr) -> Prefix {
    Prefix {
        v6: c.version == IpVersion::V6,
        base: c.base,
        len: c.prefix,
    }
}

/// The addresses a port may use: fixed IPs and allowed address pairs.
fn port_prefixes(p: &Port) -> impl Iterator<Item = Prefix> + '_ {
    p.fixed_ips
        .iter()
        .filter_map(|f| f.address().map(|a| prefix(Cidr::host(a))))
        .chain(
            p.allowed_address_pairs
                .iter()
                .filter_map(|a| a.prefix().map(prefix)),
        )
}

/// `["physnet1:uplink", ...]` as a map; entries were validated by Neutron.
pub fn parse_mappings(mappings: &[String]) -> BTreeMap<String, String> {
    mappings
        .iter()
        .filter_map(|m| m.split_once(':'))
        .map(|(p, b)| (p.trim().to_owned(), b.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    //! The incremental compiler against itself from scratch: after every
    //! random change, absorbing only what changed must give what a fresh
    //! compiler gives from the whole state.
    use super::*;
    use neutron::model::{
        AddressPair, Binding, FixedIp, Network, Port, SecurityGroup, SecurityGroupRule, StdAttrs,
    };
    use proptest::prelude::*;
    use serde_json::Map;

    const NETS: usize = 3;
    const GROUPS: usize = 3;
    const PORTS: usize = 6;

    fn id(kind: &str, i: usize) -> String {
        format!("{kind}{i:02}-0000-4000-8000-000000000000")
    }

    /// VID 3002 stands for a vxlan network (VNI 5000 + i).
    fn network(i: usize, vid: u16) -> Network {
        let vxlan = vid == 3002;
        Network {
            id: id("net", i),
            name: String::new(),
            project_id: String::new(),
            tenant_id: String::new(),
            admin_state_up: true,
            status: "ACTIVE".into(),
            shared: false,
            mtu: 1500,
            network_type: if vxlan {
                NetworkType::Vxlan
            } else {
                NetworkType::Vlan
            },
            physical_network: (!vxlan).then(|| "physnet1".into()),
            segmentation_id: Some(if vxlan { 5000 + i as u32 } else { vid.into() }),
            router_external: false,
            port_security_enabled: true,
            subnets: Vec::new(),
            availability_zone_hints: Vec::new(),
            availability_zones: Vec::new(),
            ipv4_address_scope: None,
            ipv6_address_scope: None,
            std: StdAttrs::new(String::new(), "t"),
        }
    }

    fn port(i: usize, net: usize, groups: &[usize], ip: u8, pair: bool, bound: bool) -> Port {
        let mut details = Map::new();
        details.insert("vhostuser_socket".into(), format!("/run/vhu{i}").into());
        Port {
            id: id("port", i),
            name: String::new(),
            network_id: id("net", net),
            project_id: String::new(),
            tenant_id: String::new(),
            mac_address: format!("fa:16:3e:00:00:{i:02x}"),
            admin_state_up: true,
            status: PortStatus::Down,
            device_id: String::new(),
            device_owner: String::new(),
            fixed_ips: std::iter::once(format!("10.0.{i}.{ip}"))
                .chain(pair.then(|| format!("fd01::{i}:{ip}")))
                .map(|ip_address| FixedIp {
                    // The IPv4 address is on the network's subnet (if the
                    // model has it: then DHCP may serve the port).
                    subnet_id: if ip_address.contains(':') {
                        String::new()
                    } else {
                        id("subnet", net)
                    },
                    ip_address,
                })
                .collect(),
            allowed_address_pairs: pair
                .then(|| AddressPair {
                    ip_address: format!("fd00::{ip}"),
                    mac_address: "fa:16:3e:ff:00:01".into(),
                })
                .into_iter()
                .collect(),
            security_groups: groups.iter().map(|&g| id("sg", g)).collect(),
            port_security_enabled: true,
            extra_dhcp_opts: Vec::new(),
            binding: Binding {
                // Every third port is another host's.
                host_id: if i.is_multiple_of(3) { "h2" } else { "h1" }.into(),
                vnic_type: "normal".into(),
                profile: Map::new(),
                vif_type: if bound {
                    VifType::Vhostuser
                } else {
                    VifType::Unbound
                },
                vif_details: details,
            },
            std: StdAttrs::new(String::new(), "t"),
        }
    }

    fn rule(g: usize, n: usize, v6: bool, remote: Option<usize>, port: u32) -> SecurityGroupRule {
        SecurityGroupRule {
            id: format!("rule-{g}-{n}"),
            security_group_id: id("sg", g),
            project_id: String::new(),
            tenant_id: String::new(),
            direction: if n.is_multiple_of(2) {
                RuleDirection::Ingress
            } else {
                RuleDirection::Egress
            },
            ethertype: if v6 { IpVersion::V6 } else { IpVersion::V4 },
            protocol: Some("tcp".into()),
            port_range_min: Some(port),
            port_range_max: Some(port),
            remote_ip_prefix: None,
            normalized_cidr: None,
            remote_group_id: remote.map(|r| id("sg", r)),
            remote_address_group_id: None,
            belongs_to_default_sg: false,
            standard_attr_id: n as u64 + 1,
            description: None,
            created_at: String::new(),
            updated_at: String::new(),
            revision_number: 1,
        }
    }

    /// One change to the model, or to which switch ports attach what.
    #[derive(Debug, Clone)]
    enum Op {
        PutNetwork {
            i: usize,
            vid: u16,
        },
        DeleteNetwork(usize),
        PutPort {
            i: usize,
            net: usize,
            groups: Vec<usize>,
            ip: u8,
            pair: bool,
            bound: bool,
        },
        DeletePort(usize),
        PutRules {
            g: usize,
            rules: Vec<(bool, Option<usize>, u32)>,
        },
        DeleteGroup(usize),
        Attach {
            slot: usize,
            port: Option<usize>,
            up: bool,
        },
        /// Host h2 registers (with a tunnel endpoint) or leaves.
        Host(bool),
        /// Network `net`'s IPv4 subnet (DHCP on or off, a DNS server).
        PutSubnet {
            net: usize,
            dhcp: bool,
            dns: u8,
        },
        /// Network `net`'s DHCP port (the server), at 10.0.200.`last`.
        PutDhcpPort {
            net: usize,
            last: u8,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => (0..NETS, 3000u16..3003).prop_map(|(i, vid)| Op::PutNetwork { i, vid }),
            1 => (0..NETS).prop_map(Op::DeleteNetwork),
            3 => (0..PORTS, 0..NETS, proptest::collection::vec(0..GROUPS, 0..3), 1u8..4, any::<bool>(), any::<bool>())
                .prop_map(|(i, net, groups, ip, pair, bound)| Op::PutPort { i, net, groups, ip, pair, bound }),
            1 => (0..PORTS).prop_map(Op::DeletePort),
            2 => (0..GROUPS, proptest::collection::vec((any::<bool>(), proptest::option::of(0..GROUPS), 1u32..4), 0..4))
                .prop_map(|(g, rules)| Op::PutRules { g, rules }),
            1 => (0..GROUPS).prop_map(Op::DeleteGroup),
            2 => (0..4usize, proptest::option::of(0..PORTS), any::<bool>())
                .prop_map(|(slot, port, up)| Op::Attach { slot, port, up }),
            1 => any::<bool>().prop_map(Op::Host),
            1 => (0..NETS, any::<bool>(), 1u8..3).prop_map(|(net, dhcp, dns)| Op::PutSubnet { net, dhcp, dns }),
            1 => (0..NETS, 1u8..3).prop_map(|(net, last)| Op::PutDhcpPort { net, last }),
        ]
    }

    /// Applies `op`; returns what changed in the model.
    fn apply(st: &mut NeutronState, slots: &mut [(Option<usize>, bool); 4], op: &Op) -> Changes {
        let mut c = Changes::default();
        match op {
            Op::PutNetwork { i, vid } => {
                st.networks
                    .insert(id("net", *i), Arc::new(network(*i, *vid)));
                c.networks.insert(id("net", *i));
            }
            Op::DeleteNetwork(i) => {
                st.networks.remove(&id("net", *i));
                c.networks.insert(id("net", *i));
            }
            Op::PutPort {
                i,
                net,
                groups,
                ip,
                pair,
                bound,
            } => {
                let p = port(*i, *net, groups, *ip, *pair, *bound);
                st.ports.insert(p.id.clone(), Arc::new(p));
                c.ports.insert(id("port", *i));
            }
            Op::DeletePort(i) => {
                st.ports.remove(&id("port", *i));
                c.ports.insert(id("port", *i));
            }
            Op::PutRules { g, rules } => {
                let sg = SecurityGroup {
                    id: id("sg", *g),
                    name: String::new(),
                    project_id: String::new(),
                    tenant_id: String::new(),
                    stateful: true,
                    shared: false,
                    security_group_rules: rules
                        .iter()
                        .enumerate()
                        .map(|(n, &(v6, remote, port))| rule(*g, n, v6, remote, port))
                        .collect(),
                    std: StdAttrs::new(String::new(), "t"),
                };
                st.security_groups.insert(sg.id.clone(), Arc::new(sg));
                c.security_groups.insert(id("sg", *g));
            }
            Op::DeleteGroup(g) => {
                st.security_groups.remove(&id("sg", *g));
                c.security_groups.insert(id("sg", *g));
            }
            Op::Attach { slot, port, up } => slots[*slot] = (*port, *up),
            Op::Host(true) => {
                let h2 = neutron::model::HostRecord {
                    tunnel_mac: Some("02:00:00:00:00:02".into()),
                    ..host_record("h2", "192.0.2.2")
                };
                st.hosts.insert("h2".into(), Arc::new(h2));
                c.hosts = true;
            }
            Op::Host(false) => {
                st.hosts.remove("h2");
                c.hosts = true;
            }
            Op::PutSubnet { net, dhcp, dns } => {
                let sn = neutron::model::Subnet {
                    id: id("subnet", *net),
                    name: String::new(),
                    network_id: id("net", *net),
                    project_id: String::new(),
                    tenant_id: String::new(),
                    ip_version: 4,
                    cidr: "10.0.0.0/8".into(),
                    gateway_ip: Some("10.0.0.1".into()),
                    allocation_pools: Vec::new(),
                    enable_dhcp: *dhcp,
                    dns_nameservers: vec![format!("10.9.9.{dns}")],
                    host_routes: Vec::new(),
                    ipv6_ra_mode: None,
                    ipv6_address_mode: None,
                    subnetpool_id: None,
                    segment_id: None,
                    service_types: Vec::new(),
                    router_external: false,
                    std: StdAttrs::new(String::new(), "t"),
                };
                st.subnets.insert(sn.id.clone(), Arc::new(sn));
                c.subnets.insert(id("subnet", *net));
            }
            Op::PutDhcpPort { net, last } => {
                let mut p = port(0, *net, &[], 1, false, false);
                p.id = id("dhcp", *net);
                p.device_owner = DHCP_OWNER.into();
                p.mac_address = format!("fa:16:3e:dd:00:{net:02x}");
                p.fixed_ips = vec![FixedIp {
                    subnet_id: id("subnet", *net),
                    ip_address: format!("10.0.200.{last}"),
                }];
                st.ports.insert(p.id.clone(), Arc::new(p));
                c.ports.insert(id("dhcp", *net));
            }
        }
        c
    }

    /// The network local VLAN `v` stands for in `c` ("" if none).
    fn network_of(st: &NeutronState, c: &NeutronCompiler, v: u16) -> String {
        st.networks
            .keys()
            .find(|n| c.local_vlans().get(n) == Some(v))
            .cloned()
            .unwrap_or_default()
    }

    fn switch_ports<'a>(
        names: &'a [String],
        ifaces: &'a [String],
        slots: &[(Option<usize>, bool); 4],
    ) -> Vec<SwitchPort<'a>> {
        let mut v: Vec<SwitchPort<'a>> = slots
            .iter()
            .enumerate()
            .map(|(s, &(port, up))| SwitchPort {
                name: &names[s],
                iface_id: port.map(|p| ifaces[p].as_str()),
                link_up: up,
            })
            .collect();
        v.push(SwitchPort {
            name: "uplink",
            iface_id: None,
            link_up: true,
        });
        v
    }

    /// What the daemon holds once it has applied `c` (compiled for `sw`)
    /// to `held` (a partial compile changes only the attached ports it
    /// names), as a whole compile would give it.
    fn apply_compiled(held: &mut Compiled, c: Compiled, sw: &[SwitchPort<'_>]) -> Compiled {
        match &c.partial {
            None => *held = c,
            Some(names) => {
                let mut vlans = c.port_vlans.clone();
                for sp in sw.iter().filter(|sp| sp.iface_id.is_some()) {
                    if !names.contains(sp.name) {
                        if let Some(pv) = held.port_vlans.get(sp.name) {
                            vlans.insert(sp.name.to_owned(), pv.clone());
                        }
                    }
                }
                held.port_vlans = vlans;
                for n in names {
                    match c.port_acls.get(n) {
                        Some(a) => held.port_acls.insert(n.clone(), Arc::clone(a)),
                        None => held.port_acls.remove(n),
                    };
                    match c.port_dhcp.get(n) {
                        Some(d) => held.port_dhcp.insert(n.clone(), Arc::clone(d)),
                        None => held.port_dhcp.remove(n),
                    };
                }
                held.statuses = c.statuses;
                held.known = c.known;
                held.warnings = c.warnings;
            }
        }
        held.clone()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn incremental_equals_from_scratch(ops in proptest::collection::vec(op(), 1..40)) {
            let mappings: BTreeMap<String, String> =
                [("physnet1".to_string(), "uplink".to_string())].into();
            let names: Vec<String> = (0..4).map(|s| format!("sw{s}")).collect();
            let ifaces: Vec<String> = (0..PORTS).map(|i| id("port", i)).collect();
            let mut st = NeutronState::default();
            let mut slots = [(None, false); 4];
            let compiler = || {
                NeutronCompiler::new(mappings.clone())
                    .with_host(Some("h1".into()))
                    .with_local_ip(Some([192, 0, 2, 1].into()))
            };
            let mut inc = compiler();
            inc.absorb(&st, None);
            // Statuses the "daemon" reported back, a change of their own.
            let mut reported = Changes::default();
            let mut last: Option<Compiled> = None;
            let mut held = Compiled::default();
            for op in &ops {
                let mut changes = apply(&mut st, &mut slots, op);
                changes.merge(std::mem::take(&mut reported));
                let attachments = inc.attachments().clone();
                let dirty = inc.absorb(&st, Some(&changes));
                let sw = switch_ports(&names, &ifaces, &slots);
                let got = apply_compiled(&mut held, inc.compile(&st, &sw), &sw);
                // A change the compiler calls clean changes nothing (the
                // daemon then skips the compile); switch-port changes are
                // the daemon's own and always compiled.
                if let (false, false, Some(prev)) = (dirty, matches!(op, Op::Attach { .. }), &last) {
                    prop_assert_eq!(&got.port_vlans, &prev.port_vlans, "clean {:?}", op);
                    prop_assert_eq!(&got.port_acls, &prev.port_acls, "clean {:?}", op);
                    prop_assert_eq!(&attachments, inc.attachments(), "clean {:?}", op);
                    prop_assert_eq!(&got.known, &prev.known, "clean {:?}", op);
                }
                last = Some(got.clone());
                let mut fresh = compiler();
                fresh.absorb(&st, None);
                let want = fresh.compile(&st, &sw);
                // Local VLAN numbers are history (allocation order): compare
                // them as the networks they stand for.
                let norm = |c: &NeutronCompiler, m: &BTreeMap<String, PortVlan>| {
                    let net = |v: u16| network_of(&st, c, v);
                    m.iter()
                        .map(|(k, pv)| {
                            let xl: Vec<(u16, String)> =
                                pv.translations().iter().map(|&(e, l)| (e, net(l))).collect();
                            (k.clone(), (pv.mode(), pv.tag().map(net), xl))
                        })
                        .collect::<BTreeMap<_, _>>()
                };
                prop_assert_eq!(norm(&inc, &got.port_vlans), norm(&fresh, &want.port_vlans), "after {:?}", op);
                let deep = |m: &BTreeMap<String, Arc<PortAcl>>| {
                    m.iter().map(|(k, v)| (k.clone(), (**v).clone())).collect::<BTreeMap<_, _>>()
                };
                prop_assert_eq!(deep(&got.port_acls), deep(&want.port_acls), "after {:?}", op);
                let servers = |m: &BTreeMap<String, Arc<DhcpServer>>| {
                    m.iter().map(|(k, v)| (k.clone(), (**v).clone())).collect::<BTreeMap<_, _>>()
                };
                prop_assert_eq!(servers(&got.port_dhcp), servers(&want.port_dhcp), "after {:?}", op);
                prop_assert_eq!(inc.attachments(), fresh.attachments());
                // l2population: the same tunnels, and the same remote MACs
                // and addresses per network.
                prop_assert_eq!(inc.tunnels(), fresh.tunnels(), "after {:?}", op);
                let known = |c: &NeutronCompiler, k: &Option<Known>| {
                    k.as_ref().map(|k| {
                        k.iter()
                            .map(|(v, l2)| (network_of(&st, c, *v), l2.clone()))
                            .collect::<BTreeMap<_, _>>()
                    })
                };
                prop_assert_eq!(known(&inc, &got.known), known(&fresh, &want.known), "after {:?}", op);
                // Attached ports: both say the same.
                for (k, v) in &got.statuses {
                    if let Some(w) = want.statuses.get(k) {
                        prop_assert_eq!(v, w);
                    }
                }
                // Report back as the daemon does; then every port has the
                // status of its attachment, DOWN when it has none.
                for (pid, status) in &got.statuses {
                    if let Some(p) = st.ports.get(pid).filter(|p| p.status != *status) {
                        let mut p = (**p).clone();
                        p.status = *status;
                        st.ports.insert(pid.clone(), Arc::new(p));
                        reported.ports.insert(pid.clone());
                    }
                }
                for p in st.ports.values() {
                    let want_status = want.statuses.get(&p.id).copied().unwrap_or(PortStatus::Down);
                    prop_assert_eq!(p.status, want_status, "port {} after {:?}", p.id, op);
                }
                // Local VLANs may differ in number (allocation order is
                // history), but the same networks have one.
                let mut a: Vec<&String> = st.networks.keys().filter(|n| inc.local_vlans().get(n).is_some()).collect();
                let mut b: Vec<&String> = st.networks.keys().filter(|n| fresh.local_vlans().get(n).is_some()).collect();
                a.sort();
                b.sort();
                prop_assert_eq!(a, b);
            }
        }
    }

    /// Host `host`'s registration with tunnel endpoint `ip`.
    fn host_record(host: &str, ip: &str) -> neutron::model::HostRecord {
        neutron::model::HostRecord {
            host: host.into(),
            bridge_mappings: BTreeMap::new(),
            vhost_socket_dir: String::new(),
            integration_bridge: String::new(),
            started_at: String::new(),
            tunnel_ip: Some(ip.into()),
            tunnel_mac: None,
        }
    }

    #[test]
    fn one_tunnel_port_per_remote_host_carries_every_network_they_share() {
        let mut st = NeutronState::default();
        for n in 0..3 {
            st.networks.insert(id("net", n), Arc::new(network(n, 3002)));
        }
        for (host, ip) in [("h2", "192.0.2.2"), ("h3", "192.0.2.3")] {
            st.hosts
                .insert(host.into(), Arc::new(host_record(host, ip)));
        }
        // Here: ports in networks 0 and 1. h2: in 0 and 1; h3: in 1 and
        // in 2 (which has no port here).
        for (i, net, host) in [
            (1, 0, "h1"),
            (2, 1, "h1"),
            (3, 0, "h2"),
            (4, 1, "h2"),
            (5, 1, "h3"),
            (6, 2, "h3"),
        ] {
            let mut p = port(i, net, &[], i as u8, false, true);
            p.binding.host_id = host.into();
            st.ports.insert(p.id.clone(), Arc::new(p));
        }
        let local: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let mut c = NeutronCompiler::new(BTreeMap::new())
            .with_host(Some("h1".into()))
            .with_local_ip(Some(local));
        c.absorb(&st, None);
        let ifaces = [id("port", 1), id("port", 2)];
        let sw = [
            SwitchPort {
                name: "vm1",
                iface_id: Some(&ifaces[0]),
                link_up: true,
            },
            SwitchPort {
                name: "vm2",
                iface_id: Some(&ifaces[1]),
                link_up: true,
            },
            SwitchPort {
                name: "vxlan-c0000202",
                iface_id: None,
                link_up: true,
            },
        ];
        let got = c.compile(&st, &sw);
        let names: Vec<&String> = c.tunnels().keys().collect();
        assert_eq!(names, ["vxlan-c0000202", "vxlan-c0000203"]);
        let vlan = |n| c.local_vlans().get(&id("net", n)).unwrap();
        let (v0, v1) = (vlan(0), vlan(1));
        let keys = |name: &str| {
            c.tunnels()[name]
                .port_config(local, c.local_vlans())
                .unwrap()
                .vlan_keys
        };
        let mut both = vec![(v0, 5000), (v1, 5001)];
        both.sort();
        assert_eq!(keys("vxlan-c0000202"), both, "h2 shares networks 0 and 1");
        assert_eq!(keys("vxlan-c0000203"), [(v1, 5001)], "h3 shares network 1");
        let cfg = c.tunnels()["vxlan-c0000202"]
            .port_config(local, c.local_vlans())
            .unwrap();
        let pv = cfg.validate("port").unwrap();
        assert_eq!(
            got.port_vlans["vxlan-c0000202"], pv,
            "the compiled VLANs are the config's: a trunk of both"
        );
        // Each remote MAC through its host's one port.
        let known = got.known.expect("l2population");
        let via = |n| {
            let (_, l2) = known.iter().find(|(v, _)| *v == vlan(n)).unwrap();
            l2.remote_macs
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(via(0), ["vxlan-c0000202"]);
        let mut in_net1 = via(1);
        in_net1.sort();
        assert_eq!(in_net1, ["vxlan-c0000202", "vxlan-c0000203"]);
    }

    #[test]
    fn an_ipv6_endpoint_tunnels_to_the_ipv6_hosts_of_its_networks_only() {
        let mut st = NeutronState::default();
        st.networks.insert(id("net", 0), Arc::new(network(0, 3002)));
        for (host, ip) in [("h2", "2001:db8::2"), ("h3", "192.0.2.3")] {
            st.hosts
                .insert(host.into(), Arc::new(host_record(host, ip)));
        }
        // Port 1 here, port 3 on h2 (IPv6), port 4 on h3 (IPv4).
        for (i, host) in [(1, "h1"), (3, "h2"), (4, "h3")] {
            let mut p = port(i, 0, &[], 1, false, true);
            p.binding.host_id = host.into();
            st.ports.insert(p.id.clone(), Arc::new(p));
        }
        let local: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let mut c = NeutronCompiler::new(BTreeMap::new())
            .with_host(Some("h1".into()))
            .with_local_ip(Some(local));
        c.absorb(&st, None);
        let ifaces = [id("port", 1)];
        let sw = [SwitchPort {
            name: "vm",
            iface_id: Some(&ifaces[0]),
            link_up: true,
        }];
        let got = c.compile(&st, &sw);
        let tunnels: Vec<&String> = c.tunnels().keys().collect();
        let name = "vxlan-20010db8000000000000000000000002".to_string();
        assert_eq!(tunnels, [&name], "only h2, whose endpoint is IPv6");
        let cfg = c.tunnels()[&name]
            .port_config(local, c.local_vlans())
            .unwrap();
        let vlan = c.local_vlans().get(&id("net", 0)).unwrap();
        assert_eq!(cfg.vlan_keys, [(vlan, 5000)]);
        assert_eq!(cfg.remote_ip, Some("2001:db8::2".parse().unwrap()));
        assert_eq!(cfg.local_ip, Some(local));
        cfg.validate("port").unwrap();
        let known = got.known.expect("l2population");
        let (_, l2) = known.first().unwrap();
        let via: Vec<&String> = l2.remote_macs.iter().map(|(_, t)| t).collect();
        assert_eq!(
            via,
            [&name],
            "port 3's MAC through h2's tunnel; port 4's nowhere"
        );
    }

    #[test]
    fn a_member_joining_a_remote_group_changes_only_the_rule_sets_that_name_it() {
        let mappings: BTreeMap<String, String> = BTreeMap::new();
        let mut st = NeutronState::default();
        st.networks.insert(id("net", 0), Arc::new(network(0, 3000)));
        for (g, remote) in [(0, Some(1)), (2, None)] {
            let sg = SecurityGroup {
                id: id("sg", g),
                name: String::new(),
                project_id: String::new(),
                tenant_id: String::new(),
                stateful: true,
                shared: false,
                security_group_rules: vec![rule(g, 0, false, remote, 22)],
                std: StdAttrs::new(String::new(), "t"),
            };
            st.security_groups.insert(sg.id.clone(), Arc::new(sg));
        }
        // Port 0 names group 1 as remote; port 1 does not; port 2 is in group 1.
        for p in [
            port(0, 0, &[0], 1, false, false),
            port(1, 0, &[2], 1, false, false),
        ] {
            st.ports.insert(p.id.clone(), Arc::new(p));
        }
        let ifaces = [id("port", 0), id("port", 1)];
        let sw = [
            SwitchPort {
                name: "a",
                iface_id: Some(&ifaces[0]),
                link_up: true,
            },
            SwitchPort {
                name: "b",
                iface_id: Some(&ifaces[1]),
                link_up: true,
            },
        ];
        let mut c = NeutronCompiler::new(mappings);
        c.absorb(&st, None);
        let first = c.compile(&st, &sw);
        assert_eq!(
            first.port_acls["a"].rules.len(),
            0,
            "group 1 has no member yet"
        );
        let member = port(2, 0, &[1], 7, false, false);
        st.ports.insert(member.id.clone(), Arc::new(member));
        c.absorb(
            &st,
            Some(&Changes {
                ports: [id("port", 2)].into(),
                ..Default::default()
            }),
        );
        let second = c.compile(&st, &sw);
        assert_eq!(
            second.partial,
            Some(["a".to_owned()].into()),
            "only a is compiled again: b is untouched"
        );
        let a = &second.port_acls["a"];
        assert_eq!(a.rules.len(), 1);
        match &a.rules[0].remote {
            Remote::Group(set) => assert!(set.contains(false, 0x0a00_0207)),
            other => panic!("remote {other:?}"),
        }
        assert_eq!(
            second.statuses.get(&id("port", 0)),
            Some(&PortStatus::Active)
        );
    }
}
