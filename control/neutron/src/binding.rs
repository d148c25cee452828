//! Port binding as Nova and os-vif expect it from Neutron's OVS mechanism
//! driver on a netdev (DPDK) datapath, and from the SR-IOV driver for
//! `direct`/`direct-physical` ports.
//!
//! A binding that cannot be satisfied gets vif_type "binding_failed" (what
//! Nova checks before it spawns) with the reason in
//! `binding:vif_details.reason` and in the log: Neutron itself only logs it,
//! which leaves operators guessing.
use super::model::{HostRecord, Network, NetworkType, VifType};
use super::Settings;
use imbl::OrdMap;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// vnic types this switch can bind.
pub const SUPPORTED_VNIC_TYPES: [&str; 3] = ["normal", "direct", "direct-physical"];

/// Every vnic type Neutron's API accepts; the ones not in
/// `SUPPORTED_VNIC_TYPES` are accepted and fail to bind, like ML2 with no
/// driver for them. Anything else is a 400.
pub const KNOWN_VNIC_TYPES: [&str; 11] = [
    "normal",
    "direct",
    "direct-physical",
    "macvtap",
    "baremetal",
    "virtio-forwarder",
    "smart-nic",
    "vdpa",
    "remote-managed",
    "accelerator-direct",
    "accelerator-direct-physical",
];

/// The socket os-vif plugs: `<dir>/vhu<first 11 chars of the port id>`
/// (the name is cut to 14 characters like an OVS interface name).
pub fn vhostuser_socket(vhost_socket_dir: &str, port_id: &str) -> String {
    let name: String = format!("vhu{port_id}").chars().take(14).collect();
    format!("{}/{name}", vhost_socket_dir.trim_end_matches('/'))
}

/// (vif_type, vif_details) for a port. `host_id` empty: "unbound"; this
/// host: by its settings; another registered host (etcd): by its
/// registration; any other host: "binding_failed" (no switch of ours runs
/// there).
pub fn bind(
    s: &Settings,
    hosts: &OrdMap<String, Arc<HostRecord>>,
    port_id: &str,
    host_id: &str,
    vnic_type: &str,
    profile: &Map<String, Value>,
    net: &Network,
) -> (VifType, Map<String, Value>) {
    if host_id.is_empty() {
        return (VifType::Unbound, Map::new());
    }
    let own;
    let host = if host_id == s.host {
        own = s.host_record();
        &own
    } else {
        match hosts.get(host_id) {
            Some(h) => &**h,
            // No switch of ours runs there: as ML2 with no live agent on
            // the host, the binding fails.
            None => return (VifType::BindingFailed, Map::new()),
        }
    };
    match try_bind(host, port_id, vnic_type, profile, net) {
        Ok(r) => r,
        Err(reason) => {
            tracing::warn!(port = port_id, host = host_id, vnic_type, %reason, "port binding failed");
            let mut d = Map::new();
            d.insert("reason".into(), Value::String(reason));
            (VifType::BindingFailed, d)
        }
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The physical network must be wired to an uplink on the host's switch;
/// a vxlan network needs the host's tunnel endpoint.
fn check_mapping(s: &HostRecord, net: &Network) -> Result<(), String> {
    if net.network_type == NetworkType::Vxlan && s.tunnel_ip.is_none() {
        return Err(format!(
            "network {} is vxlan and host {} has no tunnel endpoint (neutron.local_ip)",
            net.id, s.host
        ));
    }
    if let Some(p) = &net.physical_network {
        if !s.bridge_mappings.contains_key(p) {
            return Err(format!(
                "physical network '{p}' of network {} has no bridge mapping on host {} (neutron.bridge_mappings)",
                net.id, s.host
            ));
        }
    }
    Ok(())
}

fn try_bind(
    s: &HostRecord,
    port_id: &str,
    vnic_type: &str,
    profile: &Map<String, Value>,
    net: &Network,
) -> Result<(VifType, Map<String, Value>), String> {
    match vnic_type {
        "normal" => {
            check_mapping(s, net)?;
            // vhostuser_mode is QEMU's side: "server" means QEMU creates the
            // socket and this switch connects to it as the client.
            Ok((
                VifType::Vhostuser,
                // port_filter: true, because this switch does filter (port
                // security and security groups, stateful): Neutron's OVS
                // driver says false for vhost-user, where iptables could not.
                // bridge_name is what os-vif plugs into; bound_drivers names
                // the mechanism driver Neutron would have used.
                obj(json!({
                    "vhostuser_socket": vhostuser_socket(&s.vhost_socket_dir, port_id),
                    "vhostuser_mode": "server",
                    "vhostuser_ovs_plug": true,
                    "port_filter": true,
                    "datapath_type": "netdev",
                    "ovs_hybrid_plug": false,
                    "bridge_name": s.integration_bridge,
                    "bound_drivers": {"0": "openvswitch"},
                })),
            ))
        }
        "direct" | "direct-physical" => {
            let slot = match profile.get("pci_slot") {
                Some(Value::String(p)) => p,
                Some(_) => return Err("binding:profile.pci_slot must be a string".into()),
                None => {
                    return Err(format!(
                    "vnic_type {vnic_type} needs binding:profile.pci_slot (the VF's PCI address)"
                ))
                }
            };
            super::validate::check_pci_slot(slot)?;
            let vlan = match net.network_type {
                NetworkType::Vlan => net.segmentation_id.unwrap_or(0),
                NetworkType::Flat => 0,
                t @ (NetworkType::Local | NetworkType::Vxlan) => {
                    return Err(format!(
                        "vnic_type {vnic_type} needs a vlan or flat network; network {} is {}",
                        net.id,
                        t.as_str()
                    ))
                }
            };
            check_mapping(s, net)?;
            let vt = if vnic_type == "direct" {
                VifType::HwVeb
            } else {
                VifType::HostdevPhysical
            };
            Ok((
                vt,
                obj(json!({"port_filter": false, "vlan": vlan.to_string(),
                    "connectivity": "l2", "bound_drivers": {"0": "sriovnicswitch"}})),
            ))
        }
        other => Err(format!(
            "vnic_type {other} is not supported on host {} (supported: {})",
            s.host,
            SUPPORTED_VNIC_TYPES.join(", ")
        )),
    }
}
