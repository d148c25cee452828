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
//! * the status each attached Neutron port should have: ACTIVE while its
//!   switch port's link is up and both it and its network are admin up,
//!   DOWN otherwise.
use crate::neutron::model::{NetworkType, NeutronState, PortStatus};
use dataplane::vlan::{PortVlan, VlanMode, MAX_VID};
use std::collections::{BTreeMap, BTreeSet};

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

/// `["physnet1:uplink", ...]` as a map; entries were validated by Neutron.
pub fn parse_mappings(mappings: &[String]) -> BTreeMap<String, String> {
    mappings
        .iter()
        .filter_map(|m| m.split_once(':'))
        .map(|(p, b)| (p.trim().to_owned(), b.trim().to_owned()))
        .collect()
}
