//! Networks and their segments (ML2 type drivers vlan, flat, local, vxlan).
use super::body::{Body, NAME_MAX};
use super::engine::{index_segment, Tx};
use super::error::ApiError;
use super::ipam::{lowest_free_vlan, lowest_free_vni};
use super::model::{Network, NetworkType, StdAttrs};
use super::store::Op;
use super::validate::new_id;
use super::MAX_VNI;
use serde_json::Value;
use std::sync::Arc;

pub const DEFAULT_MTU: u32 = 1500;

const READONLY: &[&str] = &[
    "id",
    "status",
    "subnets",
    "created_at",
    "updated_at",
    "revision_number",
    "availability_zones",
];

/// Tags are a set of short strings (standard-attr-tag); kept sorted.
pub fn check_tags(field: &str, tags: Vec<String>) -> Result<Vec<String>, ApiError> {
    if tags.len() > crate::MAX_TAGS {
        return Err(ApiError::bad(
            field,
            format!(
                "{} tags: at most {} per resource",
                tags.len(),
                crate::MAX_TAGS
            ),
        ));
    }
    let mut out = Vec::with_capacity(tags.len());
    for t in tags {
        check_tag(field, &t)?;
        out.push(t);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub fn check_tag(field: &str, t: &str) -> Result<(), ApiError> {
    if t.is_empty() || t.chars().count() > 255 {
        return Err(ApiError::bad(
            field,
            format!("tag '{t}' must be 1-255 characters"),
        ));
    }
    if t.contains(',') || t.contains('/') {
        return Err(ApiError::bad(
            field,
            format!("tag '{t}' must not contain ',' or '/'"),
        ));
    }
    Ok(())
}

/// `provider:segmentation_id` as an integer; its range depends on the
/// network type ([`check_vid`], [`check_vni`]).
fn segmentation_id(v: Option<Value>) -> Result<Option<i64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match &v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .map(Some)
        .ok_or_else(|| ApiError::bad(SEGID, format!("'{v}' is not an integer"))),
    }
}

const SEGID: &str = "provider:segmentation_id";

fn check_vid(n: i64) -> Result<u32, ApiError> {
    if !(1..=4094).contains(&n) {
        return Err(ApiError::bad(
            SEGID,
            format!("VLAN id {n} is outside 1-4094"),
        ));
    }
    Ok(n as u32)
}

fn check_vni(n: i64) -> Result<u32, ApiError> {
    if !(1..=MAX_VNI as i64).contains(&n) {
        return Err(ApiError::bad(
            SEGID,
            format!("VNI {n} is outside 1-{MAX_VNI}"),
        ));
    }
    Ok(n as u32)
}

impl Tx<'_> {
    fn known_physnet(&self, p: &str) -> Result<(), ApiError> {
        if self.s.physnets.contains(p) {
            return Ok(());
        }
        Err(ApiError::bad(
            "provider:physical_network",
            format!(
                "physical network '{p}' is not configured on this switch (neutron.network_vlan_ranges or neutron.bridge_mappings)"
            ),
        ))
    }

    fn no_vlan_available(&self, physnet: Option<&str>) -> ApiError {
        ApiError::new(
            503,
            "NoNetworkAvailable",
            match physnet {
                Some(p) => format!("Unable to create the network. No free VLAN in the neutron.network_vlan_ranges of physical network {p}."),
                None => "Unable to create the network. No tenant network is available for allocation (neutron.network_vlan_ranges exhausted or empty).".to_owned(),
            },
        )
    }

    /// Resolves the provider attributes (or allocates a tenant segment).
    fn segment(
        &self,
        ntype: Option<String>,
        physnet: Option<String>,
        segid: Option<i64>,
    ) -> Result<(NetworkType, Option<String>, Option<u32>), ApiError> {
        let ntype = match ntype {
            Some(t) => Some(NetworkType::parse(&t).ok_or_else(|| {
                ApiError::bad(
                    "provider:network_type",
                    format!("'{t}' is not supported: use vlan, vxlan, flat or local"),
                )
            })?),
            None => None,
        };
        match ntype {
            None if physnet.is_some() || segid.is_some() => Err(ApiError::bad(
                "provider:network_type",
                "required when provider:physical_network or provider:segmentation_id is given",
            )),
            None => match self.s.tenant_type {
                NetworkType::Vlan => {
                    let (p, v) = lowest_free_vlan(&self.s.vlan_ranges, &self.w.vlans)
                        .ok_or_else(|| self.no_vlan_available(None))?;
                    Ok((NetworkType::Vlan, Some(p), Some(v as u32)))
                }
                NetworkType::Vxlan => self.vxlan_segment(None),
                _ => Ok((NetworkType::Local, None, None)),
            },
            Some(NetworkType::Vxlan) => {
                if physnet.is_some() {
                    return Err(ApiError::bad(
                        "provider:physical_network",
                        "must not be given for a vxlan network",
                    ));
                }
                self.vxlan_segment(segid.map(check_vni).transpose()?)
            }
            Some(NetworkType::Vlan) => match (physnet, segid.map(check_vid).transpose()?) {
                (None, Some(_)) => Err(ApiError::bad(
                    "provider:physical_network",
                    "required when provider:segmentation_id is given",
                )),
                (None, None) => {
                    let (p, v) = lowest_free_vlan(&self.s.vlan_ranges, &self.w.vlans)
                        .ok_or_else(|| self.no_vlan_available(None))?;
                    Ok((NetworkType::Vlan, Some(p), Some(v as u32)))
                }
                (Some(p), None) => {
                    self.known_physnet(&p)?;
                    let ranges: Vec<_> = self
                        .s
                        .vlan_ranges
                        .iter()
                        .filter(|r| r.physnet == p)
                        .cloned()
                        .collect();
                    let (p, v) = lowest_free_vlan(&ranges, &self.w.vlans)
                        .ok_or_else(|| self.no_vlan_available(Some(&p)))?;
                    Ok((NetworkType::Vlan, Some(p), Some(v as u32)))
                }
                (Some(p), Some(v)) => {
                    self.known_physnet(&p)?;
                    if self.w.vlans.contains(&(p.clone(), v as u16)) {
                        return Err(ApiError::conflict(
                            "VlanIdInUse",
                            format!("provider:segmentation_id: Unable to create the network. The VLAN {v} on physical network {p} is in use."),
                        ));
                    }
                    Ok((NetworkType::Vlan, Some(p), Some(v)))
                }
            },
            Some(NetworkType::Flat) => {
                if segid.is_some() {
                    return Err(ApiError::bad(
                        "provider:segmentation_id",
                        "must not be given for a flat network",
                    ));
                }
                let p = physnet.ok_or_else(|| {
                    ApiError::bad("provider:physical_network", "required for a flat network")
                })?;
                self.known_physnet(&p)?;
                if self.w.vlans.contains(&(p.clone(), 0)) {
                    return Err(ApiError::conflict(
                        "FlatNetworkInUse",
                        format!("provider:physical_network: Unable to create the flat network. Physical network {p} is in use."),
                    ));
                }
                Ok((NetworkType::Flat, Some(p), None))
            }
            Some(NetworkType::Local) => {
                if physnet.is_some() {
                    return Err(ApiError::bad(
                        "provider:physical_network",
                        "must not be given for a local network",
                    ));
                }
                if segid.is_some() {
                    return Err(ApiError::bad(
                        "provider:segmentation_id",
                        "must not be given for a local network",
                    ));
                }
                Ok((NetworkType::Local, None, None))
            }
        }
    }

    /// A VXLAN network's VNI: `vni` if free, else the lowest free one of
    /// `vni_ranges` (ML2's type driver: a given VNI may be outside them).
    fn vxlan_segment(
        &self,
        vni: Option<u32>,
    ) -> Result<(NetworkType, Option<String>, Option<u32>), ApiError> {
        let vni = match vni {
            Some(v) if self.w.vnis.contains(&v) => {
                return Err(ApiError::conflict(
                    "TunnelIdInUse",
                    format!("provider:segmentation_id: Unable to create the network. The tunnel ID {v} is in use."),
                ))
            }
            Some(v) => v,
            None => lowest_free_vni(&self.s.vni_ranges, &self.w.vnis).ok_or_else(|| {
                    ApiError::new(
                        503,
                        "NoNetworkAvailable",
                        "Unable to create the network. No tenant network is available for allocation (neutron.vni_ranges exhausted or empty).",
                    )
                })?,
        };
        Ok((NetworkType::Vxlan, None, Some(vni)))
    }

    /// Neutron's limit: no network MTU above the physical networks' (less
    /// the encapsulation, for a vxlan network).
    fn check_mtu(&self, mtu: u32, ntype: NetworkType) -> Result<(), ApiError> {
        let max = max_mtu(self.s.global_physnet_mtu, ntype, self.s.vxlan_overhead);
        if mtu > max {
            return Err(ApiError::new(
                400,
                "InvalidInput",
                format!("Invalid input for operation: Requested MTU is too big, maximum is {max}."),
            ));
        }
        Ok(())
    }

    pub fn create_network(&mut self, mut b: Body) -> Result<Arc<Network>, ApiError> {
        let name = b.string("name", NAME_MAX)?.unwrap_or_default();
        let description = b.string("description", NAME_MAX)?.unwrap_or_default();
        let project = b.project(&self.project)?;
        let admin_state_up = b.boolean("admin_state_up")?.unwrap_or(true);
        let shared = b.boolean("shared")?.unwrap_or(false);
        let port_security_enabled = b.boolean("port_security_enabled")?.unwrap_or(true);
        // external-net (ML2 has it): a model attribute here; routing to
        // and from it needs an L3 service, which comes later.
        let router_external = b.boolean("router:external")?.unwrap_or(false);
        let mtu = b.integer("mtu", 68, 9216)?.map(|m| m as u32);
        let az_hints = b
            .string_list("availability_zone_hints", NAME_MAX)?
            .unwrap_or_default();
        let tags = check_tags("tags", b.string_list("tags", 255)?.unwrap_or_default())?;
        let ntype = b.nullable_string("provider:network_type", 32)?.flatten();
        let physnet = b
            .nullable_string("provider:physical_network", 64)?
            .flatten();
        let segid = segmentation_id(b.take("provider:segmentation_id"))?;
        b.finish("POST", READONLY)?;
        let (network_type, physical_network, segmentation_id) =
            self.segment(ntype, physnet, segid)?;
        let mtu = mtu.unwrap_or(DEFAULT_MTU.min(max_mtu(
            self.s.global_physnet_mtu,
            network_type,
            self.s.vxlan_overhead,
        )));
        self.check_mtu(mtu, network_type)?;
        let mut std = StdAttrs::new(description, &self.now);
        std.tags = tags;
        let n = Network {
            id: new_id(),
            name,
            tenant_id: project.clone(),
            project_id: project,
            admin_state_up,
            status: "ACTIVE".into(),
            shared,
            mtu,
            network_type,
            physical_network: physical_network.clone(),
            segmentation_id,
            router_external,
            port_security_enabled,
            subnets: Vec::new(),
            availability_zone_hints: az_hints,
            availability_zones: Vec::new(),
            ipv4_address_scope: None,
            ipv6_address_scope: None,
            std,
        };
        let n = self.put_network(n);
        // Neutron makes the project's default group with its first network.
        if !n.project_id.is_empty() {
            self.default_group(&n.project_id);
        }
        index_segment(&mut self.w, &n, true);
        if let (NetworkType::Vxlan, Some(vni)) = (network_type, segmentation_id) {
            self.ops.push(Op::AddVni {
                network_id: n.id.clone(),
                vni,
            });
        }
        if let Some(p) = physical_network {
            let vid = segmentation_id.unwrap_or(0) as u16;
            self.ops.push(Op::AddSegment {
                network_id: n.id.clone(),
                physnet: p,
                vid,
            });
        }
        Ok(n)
    }

    pub fn update_network(&mut self, id: &str, mut b: Body) -> Result<Arc<Network>, ApiError> {
        let old = self.network(id)?;
        let mut n = (*old).clone();
        if let Some(v) = b.string("name", NAME_MAX)? {
            n.name = v;
        }
        if let Some(v) = b.string("description", NAME_MAX)? {
            n.std.description = v;
        }
        if let Some(v) = b.boolean("admin_state_up")? {
            n.admin_state_up = v;
        }
        if let Some(v) = b.boolean("shared")? {
            n.shared = v;
        }
        if let Some(v) = b.boolean("port_security_enabled")? {
            n.port_security_enabled = v;
        }
        if let Some(v) = b.integer("mtu", 68, 9216)? {
            self.check_mtu(v as u32, n.network_type)?;
            n.mtu = v as u32;
        }
        if let Some(v) = b.boolean("router:external")? {
            if v != n.router_external {
                n.router_external = v;
                // The subnets show their network's value.
                for sid in n.subnets.clone() {
                    let mut sn = (*self.subnet(&sid)?).clone();
                    sn.router_external = v;
                    self.put_subnet(sn);
                }
            }
        }
        for k in [
            "provider:network_type",
            "provider:physical_network",
            "provider:segmentation_id",
        ] {
            if b.has(k) {
                return Err(ApiError::bad(k, "provider attributes cannot be updated"));
            }
        }
        let mut readonly = READONLY.to_vec();
        readonly.extend(["project_id", "tenant_id", "availability_zone_hints"]);
        b.finish("PUT", &readonly)?;
        if n == *old {
            return Ok(old);
        }
        n.std.touch(&self.now);
        Ok(self.put_network(n))
    }

    /// Deletes a network without ports, with its subnets (as Neutron does).
    pub fn delete_network(&mut self, id: &str) -> Result<(), ApiError> {
        let n = self.network(id)?;
        // The DHCP port goes with its network (Neutron deletes the ports
        // the network owns, never counts them as in use).
        let dhcp = self.dhcp_port(id);
        let in_use = self
            .w
            .st
            .ports
            .values()
            .filter(|p| p.network_id == id)
            .count()
            - usize::from(dhcp.is_some());
        if in_use > 0 {
            return Err(ApiError::conflict(
                "NetworkInUse",
                format!("Unable to complete operation on network {id}. There are {in_use} port(s) still in use on the network."),
            ));
        }
        if let Some(p) = dhcp {
            self.delete_port(&p.id)?;
        }
        for sid in &n.subnets {
            self.w.st.subnets.remove(sid);
            self.w.ipam.remove(sid);
            self.ops.push(Op::DeleteSubnet(sid.clone()));
        }
        index_segment(&mut self.w, &n, false);
        self.w.st.networks.remove(id);
        self.ops.push(Op::DeleteNetwork(id.to_owned()));
        Ok(())
    }
}

/// The largest MTU of a network of type `ntype`: Neutron's
/// `global_physnet_mtu`, less the encapsulation (`vxlan_overhead`) for
/// vxlan.
pub fn max_mtu(global_physnet_mtu: u32, ntype: NetworkType, vxlan_overhead: u32) -> u32 {
    match ntype {
        NetworkType::Vxlan => global_physnet_mtu.saturating_sub(vxlan_overhead),
        _ => global_physnet_mtu,
    }
}
