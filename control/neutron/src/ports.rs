//! Ports: MAC and fixed IP allocation, port security, security groups,
//! allowed address pairs and binding.
use super::binding::{bind, KNOWN_VNIC_TYPES};
use super::body::{string_value, Body, NAME_MAX};
use super::engine::Tx;
use super::error::ApiError;
use super::ipam::eui64;
use super::model::{
    AddressPair, Binding, ExtraDhcpOpt, FixedIp, Network, Port, PortStatus, StdAttrs, VifType,
};
use super::networks::check_tags;
use super::store::Op;
use super::validate::{
    check_pci_slot, check_uuid, format_mac, ip_to_u128, new_id, parse_ip, parse_unicast_mac, Cidr,
    IpVersion,
};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

const READONLY: &[&str] = &[
    "id",
    "status",
    "created_at",
    "updated_at",
    "revision_number",
    "binding:vif_type",
    "binding:vif_details",
];
/// Neutron's default `max_allowed_address_pair`.
const MAX_ADDRESS_PAIRS: usize = 10;

/// One `fixed_ips` entry as requested.
struct ReqIp {
    field: String,
    subnet_id: Option<String>,
    ip: Option<std::net::IpAddr>,
}

fn parse_fixed_ips(items: Vec<Value>, max: usize) -> Result<Vec<ReqIp>, ApiError> {
    if items.len() > max {
        // Neutron's wording (FixedIpsTooMany... is its exception's name).
        return Err(ApiError::bad_attr(
            "fixed_ips",
            format!(
                "Exceeded maximum amount of fixed ips per port ({} given, neutron.max_fixed_ips_per_port is {max}).",
                items.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let field = format!("fixed_ips[{i}]");
        let Value::Object(mut m) = item else {
            return Err(ApiError::bad_attr(
                &field,
                "must be an object {\"subnet_id\", \"ip_address\"}",
            ));
        };
        let subnet_id = match m.remove("subnet_id") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let f = format!("{field}.subnet_id");
                let s = string_value(&f, v, 64)?;
                check_uuid(&s).map_err(|e| ApiError::bad_attr(&f, e))?;
                Some(s)
            }
        };
        let ip = match m.remove("ip_address") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let f = format!("{field}.ip_address");
                let s = string_value(&f, v, 64)?;
                Some(parse_ip(&s).map_err(|e| ApiError::bad_attr(&f, e))?)
            }
        };
        if let Some(k) = m.keys().next() {
            return Err(ApiError::bad_attr(
                &format!("{field}.{k}"),
                "unknown key (only subnet_id and ip_address)",
            ));
        }
        if subnet_id.is_none() && ip.is_none() {
            return Err(ApiError::bad_attr(
                &field,
                "needs a subnet_id, an ip_address or both",
            ));
        }
        out.push(ReqIp {
            field,
            subnet_id,
            ip,
        });
    }
    Ok(out)
}

/// `extra_dhcp_opts`: `[{"opt_name", "opt_value", "ip_version"}]`; a null
/// value removes the option on update (Neutron's semantics).
fn parse_dhcp_opts(items: Vec<Value>) -> Result<Vec<(ExtraDhcpOpt, bool)>, ApiError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let f = format!("extra_dhcp_opts[{i}]");
        let Value::Object(mut m) = item else {
            return Err(ApiError::bad_attr(
                &f,
                "must be an object {\"opt_name\", \"opt_value\"}",
            ));
        };
        let name = match m.remove("opt_name") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s,
            _ => {
                return Err(ApiError::bad_attr(
                    &format!("{f}.opt_name"),
                    "must be a string of 1-64 characters",
                ))
            }
        };
        let (value, remove) = match m.remove("opt_value") {
            None | Some(Value::Null) => (None, true),
            Some(Value::String(s)) if s.len() <= 255 => (Some(s), false),
            _ => {
                return Err(ApiError::bad_attr(
                    &format!("{f}.opt_value"),
                    "must be a string of at most 255 characters or null",
                ))
            }
        };
        let ip_version = match m.remove("ip_version") {
            None | Some(Value::Null) => 4,
            Some(v) if v == 4 || v == "4" => 4,
            Some(v) if v == 6 || v == "6" => 6,
            Some(v) => {
                return Err(ApiError::bad_attr(
                    &format!("{f}.ip_version"),
                    format!("{v} is not in [4, 6]"),
                ))
            }
        };
        if let Some(k) = m.keys().next() {
            return Err(super::body::unrecognized(&[k.as_str()]));
        }
        out.push((
            ExtraDhcpOpt {
                opt_name: name,
                opt_value: value,
                ip_version,
            },
            remove,
        ));
    }
    Ok(out)
}

/// Applies requested options to `opts`: replaced by (name, version), a
/// null value removing one.
fn merge_dhcp_opts(opts: &mut Vec<ExtraDhcpOpt>, req: Vec<(ExtraDhcpOpt, bool)>) {
    for (o, remove) in req {
        opts.retain(|x| !(x.opt_name == o.opt_name && x.ip_version == o.ip_version));
        if !remove {
            opts.push(o);
        }
    }
}

fn parse_pairs(items: Vec<Value>, port_mac: &str) -> Result<Vec<AddressPair>, ApiError> {
    if items.len() > MAX_ADDRESS_PAIRS {
        return Err(ApiError::bad_attr(
            "allowed_address_pairs",
            format!("at most {MAX_ADDRESS_PAIRS} pairs"),
        ));
    }
    let mut out: Vec<AddressPair> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let field = format!("allowed_address_pairs[{i}]");
        let Value::Object(mut m) = item else {
            return Err(ApiError::bad_attr(
                &field,
                "must be an object {\"ip_address\", \"mac_address\"}",
            ));
        };
        let f = format!("{field}.ip_address");
        let ip = m
            .remove("ip_address")
            .ok_or_else(|| ApiError::bad_attr(&f, "is required"))?;
        let ip = string_value(&f, ip, 64)?;
        let (ip, multicast) = if ip.contains('/') {
            let c = Cidr::parse_strict(&ip).map_err(|e| ApiError::bad_attr(&f, e))?;
            (c.to_string(), c.ip(c.base).is_multicast())
        } else {
            let a = parse_ip(&ip).map_err(|e| ApiError::bad_attr(&f, e))?;
            (a.to_string(), a.is_multicast())
        };
        if multicast {
            // aap-reject-multicast, as Neutron 29.
            return Err(ApiError::bad_attr(
                "allowed_address_pairs",
                format!("Multicast IP {ip} is not allowed as an allowed address pair"),
            ));
        }
        let mac = match m.remove("mac_address") {
            None | Some(Value::Null) => port_mac.to_owned(),
            Some(v) => {
                let f = format!("{field}.mac_address");
                let s = string_value(&f, v, 32)?;
                format_mac(&parse_unicast_mac(&s).map_err(|e| ApiError::bad_attr(&f, e))?)
            }
        };
        if let Some(k) = m.keys().next() {
            return Err(ApiError::bad_attr(
                &format!("{field}.{k}"),
                "unknown key (only ip_address and mac_address)",
            ));
        }
        let pair = AddressPair {
            ip_address: ip,
            mac_address: mac,
        };
        if out.contains(&pair) {
            return Err(ApiError::bad_attr(&field, "duplicate address pair"));
        }
        out.push(pair);
    }
    Ok(out)
}

fn parse_vnic_type(v: String) -> Result<String, ApiError> {
    if KNOWN_VNIC_TYPES.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(ApiError::bad_attr(
            "binding:vnic_type",
            format!("'{v}' is not one of {}", KNOWN_VNIC_TYPES.join(", ")),
        ))
    }
}

fn check_profile(p: &Map<String, Value>) -> Result<(), ApiError> {
    match p.get("pci_slot") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => {
            check_pci_slot(s).map_err(|e| ApiError::bad("binding:profile.pci_slot", e))
        }
        Some(other) => Err(ApiError::bad(
            "binding:profile.pci_slot",
            format!("must be a string, not {}", super::body::kind(other)),
        )),
    }
}

fn is_router_port(device_owner: &str) -> bool {
    device_owner.starts_with("network:router")
}

impl Tx<'_> {
    fn random_mac(&self, network_id: &str) -> Result<[u8; 6], ApiError> {
        for _ in 0..16 {
            let mut mac = self.s.base_mac;
            let mut rnd = [0u8; 3];
            getrandom::fill(&mut rnd)
                .map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
            for (i, b) in mac.iter_mut().enumerate().skip(self.s.mac_fixed) {
                *b = rnd[i - 3];
            }
            if !self.w.macs.contains(&(network_id.to_owned(), mac)) {
                return Ok(mac);
            }
        }
        Err(ApiError::new(
            503,
            "MacAddressGenerationFailure",
            format!("Unable to generate a unique MAC address on network {network_id}."),
        ))
    }

    /// Resolves the requested addresses against the network's subnets,
    /// keeping `existing` ones that are asked for again, and updates the
    /// allocators in this transaction. Returns the port's new fixed_ips and
    /// the (subnet, ip) pairs released and added.
    #[allow(clippy::type_complexity)]
    fn assign_ips(
        &mut self,
        net: &Network,
        mac: [u8; 6],
        device_owner: &str,
        requested: Option<Vec<ReqIp>>,
        existing: &[FixedIp],
    ) -> Result<(Vec<FixedIp>, Vec<FixedIp>, Vec<FixedIp>), ApiError> {
        let mut result: Vec<Option<FixedIp>> = Vec::new();
        let mut kept = vec![false; existing.len()];
        // SLAAC/DHCPv6-stateless subnets: the port's EUI-64 address on each
        // (never on a router port), whatever else it asks for.
        let auto_subnets: Vec<String> = if is_router_port(device_owner) {
            Vec::new()
        } else {
            net.subnets
                .iter()
                .filter(|s| self.w.ipam.get(*s).is_some_and(|i| i.is_auto()))
                .cloned()
                .collect()
        };
        let Some(mut requested) = requested else {
            // Neutron's default: one address from the first IPv4 subnet with
            // room, one from the first stateful IPv6 subnet with room, and
            // the EUI-64 address on every auto-address subnet.
            let mut added = Vec::new();
            for version in [IpVersion::V4, IpVersion::V6] {
                let subnets: Vec<String> = net
                    .subnets
                    .iter()
                    .filter(|s| {
                        self.w
                            .ipam
                            .get(*s)
                            .is_some_and(|i| i.cidr().version == version && !i.is_auto())
                    })
                    .cloned()
                    .collect();
                if subnets.is_empty() {
                    continue;
                }
                let mut got = false;
                for sid in subnets {
                    let ipam = self
                        .w
                        .ipam
                        .get_mut(&sid)
                        .ok_or_else(|| ApiError::internal("allocator missing"))?;
                    if let Some(v) = ipam.next_free() {
                        ipam.take_next(v);
                        added.push(FixedIp {
                            subnet_id: sid,
                            ip_address: ipam.cidr().ip(v).to_string(),
                        });
                        got = true;
                        break;
                    }
                }
                if !got {
                    return Err(ApiError::conflict(
                        "IpAddressGenerationFailure",
                        format!("fixed_ips: No more IP addresses available on network {} (IPv{} subnets exhausted).", net.id, version.number()),
                    ));
                }
            }
            for sid in auto_subnets {
                added.push(self.take_eui64(&sid, mac)?);
            }
            return Ok((added.clone(), Vec::new(), added));
        };
        // Auto-address subnets the request does not name: kept when the
        // port has its address there, added on create (Neutron's rule).
        for sid in &auto_subnets {
            if requested
                .iter()
                .any(|r| r.subnet_id.as_deref() == Some(sid))
            {
                continue;
            }
            if existing.is_empty() || existing.iter().any(|f| f.subnet_id == *sid) {
                requested.push(ReqIp {
                    field: "fixed_ips".into(),
                    subnet_id: Some(sid.clone()),
                    ip: None,
                });
            }
        }
        // Resolve each entry's subnet first.
        let mut resolved: Vec<(ReqIp, String)> = Vec::new();
        for r in requested {
            let sid = match (&r.subnet_id, r.ip) {
                (Some(sid), _) => {
                    let sn = self.subnet(sid).map_err(|e| ApiError {
                        message: format!("{}.subnet_id: {}", r.field, e.message),
                        ..e
                    })?;
                    if sn.network_id != net.id {
                        return Err(ApiError::bad(
                            &format!("{}.subnet_id", r.field),
                            format!("subnet {sid} is not on network {}", net.id),
                        ));
                    }
                    sid.clone()
                }
                (None, Some(ip)) => net
                    .subnets
                    .iter()
                    .find(|s| self.w.ipam.get(*s).is_some_and(|i| i.cidr().contains(ip)))
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::new(
                            400,
                            "InvalidIpForNetwork",
                            format!("IP address {ip} is not a valid IP for any of the subnets on the specified network."),
                        )
                    })?,
                (None, None) => unreachable!("parse_fixed_ips refuses empty entries"),
            };
            resolved.push((r, sid));
        }
        // Entries naming an address the port already has keep it; an entry
        // with only a subnet keeps one of the port's addresses there.
        for (r, sid) in &resolved {
            let hit = existing.iter().enumerate().position(|(i, f)| {
                !kept[i]
                    && f.subnet_id == *sid
                    && match r.ip {
                        Some(ip) => parse_ip(&f.ip_address).ok() == Some(ip),
                        None => true,
                    }
            });
            match hit {
                Some(i) => {
                    kept[i] = true;
                    result.push(Some(existing[i].clone()));
                }
                None => result.push(None),
            }
        }
        let mut released = Vec::new();
        for (i, f) in existing.iter().enumerate() {
            if !kept[i] {
                if let (Some(ipam), Ok(ip)) =
                    (self.w.ipam.get_mut(&f.subnet_id), parse_ip(&f.ip_address))
                {
                    ipam.release(ip_to_u128(ip));
                }
                released.push(f.clone());
            }
        }
        let mut added = Vec::new();
        let mut seen = BTreeSet::new();
        for ((r, sid), slot) in resolved.into_iter().zip(result.iter_mut()) {
            if let Some(f) = slot {
                if !seen.insert((f.subnet_id.clone(), f.ip_address.clone())) {
                    return Err(ApiError::bad(
                        &r.field,
                        format!("{} is requested twice", f.ip_address),
                    ));
                }
                continue;
            }
            let subnet = self.subnet(&sid)?;
            let ipam = self
                .w
                .ipam
                .get_mut(&sid)
                .ok_or_else(|| ApiError::internal("allocator missing"))?;
            let cidr = *ipam.cidr();
            let v = match r.ip {
                Some(ip) if ipam.is_auto() => {
                    return Err(ApiError::new(
                        400,
                        "InvalidInput",
                        format!("Invalid input for operation: IPv6 address {ip} cannot be directly assigned to a port on subnet {sid} as the subnet is configured for automatic addresses."),
                    ));
                }
                None if ipam.is_auto() => eui64(&cidr, mac),
                Some(ip) => {
                    let f = format!("{}.ip_address", r.field);
                    if !cidr.contains(ip) {
                        return Err(ApiError::new(
                            400,
                            "InvalidIpForSubnet",
                            format!(
                                "{f}: IP address {ip} is not a valid IP for subnet {sid} ({cidr})"
                            ),
                        ));
                    }
                    let v = ip_to_u128(ip);
                    if v == cidr.base {
                        return Err(ApiError::bad(
                            &f,
                            format!("{ip} is the network address of {cidr}"),
                        ));
                    }
                    if cidr.version == IpVersion::V4 && v == cidr.last() {
                        return Err(ApiError::bad(
                            &f,
                            format!("{ip} is the broadcast address of {cidr}"),
                        ));
                    }
                    if subnet.gateway_ip.as_deref() == Some(ip.to_string().as_str())
                        && !is_router_port(device_owner)
                    {
                        return Err(ApiError::bad(&f, format!("{ip} is the gateway_ip of subnet {sid}; only router ports may take it")));
                    }
                    if seen.contains(&(sid.clone(), ip.to_string())) {
                        return Err(ApiError::bad(&f, format!("{ip} is requested twice")));
                    }
                    if ipam.is_allocated(v) {
                        return Err(ApiError::conflict(
                            "IpAddressAlreadyAllocated",
                            format!("{f}: IP address {ip} already allocated in subnet {sid}"),
                        ));
                    }
                    v
                }
                None => ipam.next_free().ok_or_else(|| {
                    ApiError::conflict(
                        "IpAddressGenerationFailure",
                        format!(
                            "{}.subnet_id: No more IP addresses available on subnet {sid}.",
                            r.field
                        ),
                    )
                })?,
            };
            if r.ip.is_some() || ipam.is_auto() {
                ipam.take(v);
            } else {
                ipam.take_next(v);
            }
            let f = FixedIp {
                subnet_id: sid,
                ip_address: cidr.ip(v).to_string(),
            };
            seen.insert((f.subnet_id.clone(), f.ip_address.clone()));
            added.push(f.clone());
            *slot = Some(f);
        }
        Ok((result.into_iter().flatten().collect(), released, added))
    }

    fn check_groups(&self, ids: &[String]) -> Result<Vec<String>, ApiError> {
        let mut out: Vec<String> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let f = format!("security_groups[{i}]");
            check_uuid(id).map_err(|e| ApiError::bad(&f, e))?;
            self.group(id).map_err(|e| ApiError {
                message: format!("{f}: {}", e.message),
                ..e
            })?;
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        let stateful: BTreeSet<bool> = out
            .iter()
            .filter_map(|id| self.w.st.security_groups.get(id).map(|g| g.stateful))
            .collect();
        if stateful.len() > 1 {
            return Err(ApiError::conflict(
                "SecurityGroupConflict",
                "Error Cannot apply both stateful and stateless security groups on the same port at the same time while attempting the operation.",
            ));
        }
        Ok(out)
    }

    /// Takes `mac`'s EUI-64 address on auto-address subnet `sid`.
    fn take_eui64(&mut self, sid: &str, mac: [u8; 6]) -> Result<FixedIp, ApiError> {
        let ipam = self
            .w
            .ipam
            .get_mut(sid)
            .ok_or_else(|| ApiError::internal("allocator missing"))?;
        let v = eui64(ipam.cidr(), mac);
        ipam.take(v);
        Ok(FixedIp {
            subnet_id: sid.to_owned(),
            ip_address: ipam.cidr().ip(v).to_string(),
        })
    }

    fn record_ips(&mut self, port_id: &str, released: &[FixedIp], added: &[FixedIp]) {
        for f in released {
            self.ops.push(Op::DeleteAllocation {
                subnet_id: f.subnet_id.clone(),
                ip_address: f.ip_address.clone(),
            });
        }
        for f in added {
            self.ops.push(Op::AddAllocation {
                subnet_id: f.subnet_id.clone(),
                ip_address: f.ip_address.clone(),
                port_id: port_id.to_owned(),
            });
        }
    }

    pub fn create_port(&mut self, mut b: Body) -> Result<Arc<Port>, ApiError> {
        let network_id = b
            .string("network_id", 64)?
            .ok_or_else(|| ApiError::bad("network_id", "is required"))?;
        check_uuid(&network_id).map_err(|e| ApiError::bad("network_id", e))?;
        let name = b.string("name", NAME_MAX)?.unwrap_or_default();
        let description = b.string("description", NAME_MAX)?.unwrap_or_default();
        let project = b.project(&self.project)?;
        let admin_state_up = b.boolean("admin_state_up")?.unwrap_or(true);
        let device_id = b.string("device_id", NAME_MAX)?.unwrap_or_default();
        let device_owner = b.string("device_owner", NAME_MAX)?.unwrap_or_default();
        let mac_req = match b.nullable_string("mac_address", 32)?.flatten() {
            Some(m) => {
                Some(parse_unicast_mac(&m).map_err(|e| ApiError::bad_attr("mac_address", e))?)
            }
            None => None,
        };
        let fixed_req = match b.list("fixed_ips")? {
            Some(items) => Some(parse_fixed_ips(items, self.s.max_fixed_ips_per_port)?),
            None => None,
        };
        let sg_req = b.string_list("security_groups", 64)?;
        let port_sec_req = b.boolean("port_security_enabled")?;
        let pairs_req = b.list("allowed_address_pairs")?;
        let dhcp_req = match b.list("extra_dhcp_opts")? {
            Some(items) => Some(parse_dhcp_opts(items)?),
            None => None,
        };
        let host_id = b
            .nullable_string("binding:host_id", NAME_MAX)?
            .flatten()
            .unwrap_or_default();
        let vnic_type = match b.string("binding:vnic_type", 32)? {
            Some(v) => parse_vnic_type(v)?,
            None => "normal".to_owned(),
        };
        let profile = b.object("binding:profile")?.unwrap_or_default();
        check_profile(&profile)?;
        let tags = check_tags("tags", b.string_list("tags", 255)?.unwrap_or_default())?;
        b.finish("POST", READONLY)?;

        let net = self.network(&network_id).map_err(|e| ApiError {
            message: format!("network_id: {}", e.message),
            ..e
        })?;
        let mac = match mac_req {
            Some(m) => {
                if self.w.macs.contains(&(network_id.clone(), m)) {
                    return Err(ApiError::conflict(
                        "MacAddressInUse",
                        format!("mac_address: Unable to complete operation for network {network_id}. The mac address {} is in use.", format_mac(&m)),
                    ));
                }
                m
            }
            None => self.random_mac(&network_id)?,
        };
        let mac_s = format_mac(&mac);
        // Network-owned ports (DHCP, routers) are trusted: no port security
        // unless asked for, as Neutron.
        let port_security_enabled = port_sec_req
            .unwrap_or(net.port_security_enabled && !device_owner.starts_with("network:"));
        let pairs = parse_pairs(pairs_req.unwrap_or_default(), &mac_s)?;
        if !port_security_enabled && !pairs.is_empty() {
            return Err(ApiError::conflict(
                "AddressPairAndPortSecurityRequired",
                "allowed_address_pairs: port security must be enabled to use address pairs",
            ));
        }
        let (fixed_ips, _, added) = self.assign_ips(&net, mac, &device_owner, fixed_req, &[])?;
        let security_groups = match sg_req {
            Some(ids) => {
                let ids = self.check_groups(&ids)?;
                if !ids.is_empty() && (!port_security_enabled || fixed_ips.is_empty()) {
                    return Err(ApiError::new(
                        400,
                        "PortSecurityAndIPRequiredForSecurityGroups",
                        "security_groups: a port needs port security enabled and an IP address to have security groups",
                    ));
                }
                ids
            }
            None if port_security_enabled => {
                vec![self.default_group(&project)]
            }
            None => Vec::new(),
        };
        let id = new_id();
        let (vif_type, vif_details) = bind(
            self.s,
            &self.w.st.hosts,
            &id,
            &host_id,
            &vnic_type,
            &profile,
            &net,
        );
        let mut std = StdAttrs::new(description, &self.now);
        std.tags = tags;
        let port = Port {
            id: id.clone(),
            name,
            network_id: network_id.clone(),
            tenant_id: project.clone(),
            project_id: project,
            mac_address: mac_s,
            admin_state_up,
            status: PortStatus::Down,
            device_id,
            device_owner,
            fixed_ips,
            allowed_address_pairs: pairs,
            security_groups: security_groups.clone(),
            port_security_enabled,
            extra_dhcp_opts: {
                let mut opts = Vec::new();
                merge_dhcp_opts(&mut opts, dhcp_req.unwrap_or_default());
                opts
            },
            binding: Binding {
                host_id,
                vnic_type,
                profile,
                vif_type,
                vif_details,
            },
            std,
        };
        self.w.macs.insert((network_id, mac));
        let port = self.put_port(port);
        self.record_ips(&id, &[], &added);
        if !security_groups.is_empty() {
            self.ops.push(Op::SetPortGroups {
                port_id: id,
                groups: security_groups,
            });
        }
        Ok(port)
    }

    pub fn update_port(&mut self, id: &str, mut b: Body) -> Result<Arc<Port>, ApiError> {
        let old = self.port(id)?;
        let net = self.network(&old.network_id)?;
        let mut p = (*old).clone();
        if let Some(v) = b.string("name", NAME_MAX)? {
            p.name = v;
        }
        if let Some(v) = b.string("description", NAME_MAX)? {
            p.std.description = v;
        }
        if let Some(v) = b.boolean("admin_state_up")? {
            p.admin_state_up = v;
        }
        if let Some(v) = b.string("device_id", NAME_MAX)? {
            p.device_id = v;
        }
        if let Some(v) = b.string("device_owner", NAME_MAX)? {
            p.device_owner = v;
        }
        let mac_req = match b.nullable_string("mac_address", 32)?.flatten() {
            Some(m) => {
                Some(parse_unicast_mac(&m).map_err(|e| ApiError::bad_attr("mac_address", e))?)
            }
            None => None,
        };
        let fixed_req = match b.list("fixed_ips")? {
            Some(items) => Some(parse_fixed_ips(items, self.s.max_fixed_ips_per_port)?),
            None => None,
        };
        let sg_req = b.string_list("security_groups", 64)?;
        if let Some(v) = b.boolean("port_security_enabled")? {
            p.port_security_enabled = v;
        }
        let pairs_req = b.list("allowed_address_pairs")?;
        let dhcp_req = match b.list("extra_dhcp_opts")? {
            Some(items) => Some(parse_dhcp_opts(items)?),
            None => None,
        };
        if let Some(h) = b.nullable_string("binding:host_id", NAME_MAX)? {
            p.binding.host_id = h.unwrap_or_default();
        }
        if let Some(v) = b.string("binding:vnic_type", 32)? {
            p.binding.vnic_type = parse_vnic_type(v)?;
        }
        if let Some(prof) = b.object("binding:profile")? {
            check_profile(&prof)?;
            p.binding.profile = prof;
        }
        let mut readonly = READONLY.to_vec();
        readonly.extend(["network_id", "project_id", "tenant_id"]);
        b.finish("PUT", &readonly)?;

        let old_mac = super::validate::parse_mac(&old.mac_address).map_err(ApiError::internal)?;
        let mut new_mac = old_mac;
        if let Some(m) = mac_req.filter(|m| *m != old_mac) {
            if !matches!(
                old.binding.vif_type,
                VifType::Unbound | VifType::BindingFailed
            ) {
                return Err(ApiError::conflict(
                    "PortBound",
                    format!("mac_address: port {id} is bound (vif_type {}); unbind it before changing its MAC", old.binding.vif_type),
                ));
            }
            if self.w.macs.contains(&(p.network_id.clone(), m)) {
                return Err(ApiError::conflict(
                    "MacAddressInUse",
                    format!("mac_address: Unable to complete operation for network {}. The mac address {} is in use.", p.network_id, format_mac(&m)),
                ));
            }
            new_mac = m;
            p.mac_address = format_mac(&m);
        }
        if let Some(req) = dhcp_req {
            merge_dhcp_opts(&mut p.extra_dhcp_opts, req);
        }
        if let Some(items) = pairs_req {
            p.allowed_address_pairs = parse_pairs(items, &p.mac_address)?;
        }
        let (mut released, mut added) = if fixed_req.is_some() {
            let (ips, released, added) = self.assign_ips(
                &net,
                new_mac,
                &p.device_owner.clone(),
                fixed_req,
                &old.fixed_ips,
            )?;
            p.fixed_ips = ips;
            (released, added)
        } else {
            (Vec::new(), Vec::new())
        };
        if new_mac != old_mac {
            // A new MAC is a new EUI-64 address on each auto-address subnet.
            for i in 0..p.fixed_ips.len() {
                let sid = p.fixed_ips[i].subnet_id.clone();
                if !self.w.ipam.get(&sid).is_some_and(|a| a.is_auto()) {
                    continue;
                }
                let old_ip = p.fixed_ips[i].clone();
                if let (Some(ipam), Ok(ip)) =
                    (self.w.ipam.get_mut(&sid), parse_ip(&old_ip.ip_address))
                {
                    ipam.release(ip_to_u128(ip));
                }
                let new_ip = self.take_eui64(&sid, new_mac)?;
                released.push(old_ip);
                added.push(new_ip.clone());
                p.fixed_ips[i] = new_ip;
            }
        }
        if let Some(ids) = &sg_req {
            let ids = self.check_groups(ids)?;
            if !ids.is_empty() && (!p.port_security_enabled || p.fixed_ips.is_empty()) {
                return Err(ApiError::new(
                    400,
                    "PortSecurityAndIPRequiredForSecurityGroups",
                    "security_groups: a port needs port security enabled and an IP address to have security groups",
                ));
            }
            p.security_groups = ids;
        } else if !p.port_security_enabled && !p.security_groups.is_empty() {
            return Err(ApiError::conflict(
                "PortSecurityPortHasSecurityGroup",
                "port_security_enabled: Port has security group associated. Cannot disable port security until security_groups is emptied in the same or an earlier request",
            ));
        }
        if !p.port_security_enabled && !p.allowed_address_pairs.is_empty() {
            return Err(ApiError::conflict(
                "AddressPairAndPortSecurityRequired",
                "allowed_address_pairs: port security must be enabled to use address pairs",
            ));
        }
        let (vt, vd) = bind(
            self.s,
            &self.w.st.hosts,
            id,
            &p.binding.host_id,
            &p.binding.vnic_type,
            &p.binding.profile,
            &net,
        );
        p.binding.vif_type = vt;
        p.binding.vif_details = vd;
        if p == *old {
            return Ok(old);
        }
        p.std.touch(&self.now);
        if new_mac != old_mac {
            self.w.macs.remove(&(p.network_id.clone(), old_mac));
            self.w.macs.insert((p.network_id.clone(), new_mac));
        }
        let groups_changed = p.security_groups != old.security_groups;
        let groups = p.security_groups.clone();
        let p = self.put_port(p);
        self.record_ips(id, &released, &added);
        if groups_changed {
            self.ops.push(Op::SetPortGroups {
                port_id: id.to_owned(),
                groups,
            });
        }
        Ok(p)
    }

    pub fn delete_port(&mut self, id: &str) -> Result<(), ApiError> {
        let p = self.port(id)?;
        for f in &p.fixed_ips {
            if let (Some(ipam), Ok(ip)) =
                (self.w.ipam.get_mut(&f.subnet_id), parse_ip(&f.ip_address))
            {
                ipam.release(ip_to_u128(ip));
            }
        }
        if let Ok(mac) = super::validate::parse_mac(&p.mac_address) {
            self.w.macs.remove(&(p.network_id.clone(), mac));
        }
        self.w.st.ports.remove(id);
        // Allocations and group links go with the row (ON DELETE CASCADE).
        self.ops.push(Op::DeletePort(id.to_owned()));
        Ok(())
    }
}
