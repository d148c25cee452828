//! The `network:dhcp` port of the switch's own DHCP server: what Neutron's
//! DHCP agent creates for each network with a DHCP-enabled subnet, so that
//! the server's address (the DHCP server identifier the switch answers
//! with) is allocated as any port's is, shown in the API, and never given
//! to a VM. Kept in line with the network's subnets inside the mutation
//! that changes them.
use crate::body::Body;
use crate::engine::Tx;
use crate::error::ApiError;
use crate::model::{Network, Port};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The device owner of DHCP ports (Neutron's `DEVICE_OWNER_DHCP`).
pub const DHCP_OWNER: &str = "network:dhcp";

/// The device id Neutron's DHCP agent gives its port on `network_id` from
/// host `host`: "dhcp" + uuid5(DNS namespace, host) + "-" + network id.
pub fn dhcp_device_id(host: &str, network_id: &str) -> String {
    let h = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, host.as_bytes());
    format!("dhcp{h}-{network_id}")
}

/// Whether the switch serves DHCP on subnet `s`: IPv4 with DHCP enabled,
/// IPv6 with DHCP enabled and a `dhcpv6-stateful` or `dhcpv6-stateless`
/// address mode (as Neutron's DHCP agent has a port on those).
fn served(s: &crate::model::Subnet) -> bool {
    s.enable_dhcp
        && (s.ip_version == 4
            || matches!(
                s.ipv6_address_mode.as_deref(),
                Some("dhcpv6-stateful" | "dhcpv6-stateless")
            ))
}

impl Tx<'_> {
    /// Network `id`'s DHCP port, if it has one.
    pub(crate) fn dhcp_port(&self, network_id: &str) -> Option<Arc<Port>> {
        let device_id = dhcp_device_id(&self.s.host, network_id);
        self.w
            .st
            .ports
            .values()
            .find(|p| p.device_owner == DHCP_OWNER && p.device_id == device_id)
            .cloned()
    }

    /// Creates, updates or deletes network `network_id`'s DHCP port so that
    /// it has an address on each of its served subnets but `leaving` (a
    /// subnet being deleted), and exists only while there is one.
    pub(crate) fn sync_dhcp_port(
        &mut self,
        network_id: &str,
        leaving: Option<&str>,
    ) -> Result<(), ApiError> {
        if !self.s.native_dhcp {
            return Ok(());
        }
        let Ok(net) = self.network(network_id) else {
            return Ok(());
        };
        let wanted: Vec<String> = net
            .subnets
            .iter()
            .filter(|s| Some(s.as_str()) != leaving)
            .filter(|s| self.w.st.subnets.get(*s).is_some_and(|s| served(s)))
            .cloned()
            .collect();
        let current = self.dhcp_port(network_id);
        match (current, wanted.is_empty()) {
            (None, true) => Ok(()),
            (Some(p), true) => self.delete_port(&p.id),
            (None, false) => self.create_dhcp_port(&net, &wanted),
            (Some(p), false) => {
                // Addresses on subnets it no longer serves go; an automatic
                // IPv6 address stays with its subnet (`wanted` has no
                // subnet that is `leaving`).
                let keeps = |sid: &String| {
                    wanted.contains(sid)
                        || (Some(sid.as_str()) != leaving
                            && self
                                .w
                                .st
                                .subnets
                                .get(sid)
                                .is_some_and(|s| s.ip_version == 6))
                };
                let kept = p.fixed_ips.iter().filter(|f| keeps(&f.subnet_id));
                let added = wanted
                    .iter()
                    .filter(|s| !p.fixed_ips.iter().any(|f| &f.subnet_id == *s));
                if kept.clone().count() == p.fixed_ips.len() && added.clone().next().is_none() {
                    return Ok(());
                }
                let fixed: Vec<Value> = kept
                    .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address}))
                    .chain(added.map(|s| json!({ "subnet_id": s })))
                    .collect();
                let mut m = Map::new();
                m.insert("fixed_ips".into(), Value::Array(fixed));
                self.update_port(&p.id, Body::from_map(m)).map(|_| ())
            }
        }
    }

    fn create_dhcp_port(&mut self, net: &Network, subnets: &[String]) -> Result<(), ApiError> {
        let body = json!({
            "network_id": net.id,
            "project_id": net.project_id,
            "device_owner": DHCP_OWNER,
            "device_id": dhcp_device_id(&self.s.host, &net.id),
            "fixed_ips": subnets.iter().map(|s| json!({"subnet_id": s})).collect::<Vec<_>>(),
        });
        let Value::Object(m) = body else {
            return Err(ApiError::internal("the DHCP port's body is not an object"));
        };
        self.create_port(Body::from_map(m)).map(|_| ())
    }
}
