//! Subnets: CIDR, gateway and allocation pools, checked the way Neutron
//! checks them, and the subnet's allocator.
use super::body::{string_value, Body, NAME_MAX};
use super::engine::Tx;
use super::error::ApiError;
use super::ipam::{check_pools, default_pools, eui64, Range, SubnetIpam};
use super::model::{AllocationPool, FixedIp, HostRoute, Port, StdAttrs, Subnet};
use super::networks::check_tags;
use super::store::Op;
use super::validate::{check_uuid, ip_to_u128, new_id, parse_ip, Cidr, IpVersion};
use serde_json::Value;
use std::sync::Arc;

const READONLY: &[&str] = &["id", "created_at", "updated_at", "revision_number"];
const MAX_DNS: usize = 5;
/// `ipv6_ra_mode` and `ipv6_address_mode` values.
const IPV6_MODES: [&str; 3] = ["dhcpv6-stateful", "dhcpv6-stateless", "slaac"];
const MAX_ROUTES: usize = 20;

/// A gateway, as Neutron takes it: any address of the subnet's version,
/// also outside the CIDR (a router reached by a host route); inside it not
/// the IPv4 network or broadcast address (IPv6's network address is the
/// subnet-router anycast address, the default gateway).
fn check_gateway(field: &str, cidr: &Cidr, s: &str) -> Result<u128, ApiError> {
    let ip = parse_ip(s).map_err(|e| ApiError::bad(field, e))?;
    let v = ip_to_u128(ip);
    let version = if ip.is_ipv4() {
        IpVersion::V4
    } else {
        IpVersion::V6
    };
    if version != cidr.version {
        return Err(ApiError::bad(
            field,
            format!("{ip} is not an IPv{} address", cidr.version.number()),
        ));
    }
    if !cidr.contains(ip) || cidr.version == IpVersion::V6 {
        return Ok(v);
    }
    if v == cidr.base {
        return Err(ApiError::bad(
            field,
            format!("{ip} is the network address of {cidr}"),
        ));
    }
    if cidr.version == IpVersion::V4 && v == cidr.last() {
        return Err(ApiError::bad(
            field,
            format!("{ip} is the broadcast address of {cidr}"),
        ));
    }
    Ok(v)
}

fn parse_pools(cidr: &Cidr, items: Vec<Value>, max: usize) -> Result<Vec<Range>, ApiError> {
    if items.len() > max {
        return Err(ApiError::bad(
            "allocation_pools",
            format!(
                "{} pools: at most {max} (neutron.max_allocation_pools)",
                items.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let f = format!("allocation_pools[{i}]");
        let Value::Object(mut m) = item else {
            return Err(ApiError::bad(
                &f,
                "must be an object {\"start\": IP, \"end\": IP}",
            ));
        };
        let mut get = |k: &str| -> Result<u128, ApiError> {
            let fk = format!("{f}.{k}");
            let v = m
                .remove(k)
                .ok_or_else(|| ApiError::bad(&fk, "is required"))?;
            let s = string_value(&fk, v, 64)?;
            let ip = parse_ip(&s).map_err(|e| ApiError::bad(&fk, e))?;
            if IpVersion::of(ip) != cidr.version {
                return Err(ApiError::bad(
                    &fk,
                    format!("{ip} is not an IPv{} address", cidr.version.number()),
                ));
            }
            Ok(ip_to_u128(ip))
        };
        let (s, e) = (get("start")?, get("end")?);
        if let Some(k) = m.keys().next() {
            return Err(ApiError::bad(
                &f,
                format!("unknown key '{k}' (only start and end)"),
            ));
        }
        out.push((s, e));
    }
    Ok(out)
}

fn pools_json(cidr: &Cidr, pools: &[Range]) -> Vec<AllocationPool> {
    pools
        .iter()
        .map(|&(s, e)| AllocationPool {
            start: cidr.ip(s).to_string(),
            end: cidr.ip(e).to_string(),
        })
        .collect()
}

fn parse_dns(version: IpVersion, items: Vec<String>) -> Result<Vec<String>, ApiError> {
    if items.len() > MAX_DNS {
        return Err(ApiError::bad_attr(
            "dns_nameservers",
            format!("at most {MAX_DNS} servers"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, s) in items.iter().enumerate() {
        let f = format!("dns_nameservers[{i}]");
        let ip = parse_ip(s).map_err(|e| ApiError::bad_attr(&f, e))?;
        if IpVersion::of(ip) != version {
            return Err(ApiError::bad_attr(
                &f,
                format!("{ip} is not an IPv{} address", version.number()),
            ));
        }
        let ip = ip.to_string();
        if out.contains(&ip) {
            return Err(ApiError::bad_attr(&f, format!("{ip} is listed twice")));
        }
        out.push(ip);
    }
    Ok(out)
}

fn parse_routes(version: IpVersion, items: Vec<Value>) -> Result<Vec<HostRoute>, ApiError> {
    if items.len() > MAX_ROUTES {
        return Err(ApiError::bad_attr(
            "host_routes",
            format!("at most {MAX_ROUTES} routes"),
        ));
    }
    let mut out: Vec<HostRoute> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let f = format!("host_routes[{i}]");
        let Value::Object(mut m) = item else {
            return Err(ApiError::bad_attr(
                &f,
                "must be an object {\"destination\": CIDR, \"nexthop\": IP}",
            ));
        };
        let d = m
            .remove("destination")
            .ok_or_else(|| ApiError::bad_attr(&format!("{f}.destination"), "is required"))?;
        let d = string_value(&format!("{f}.destination"), d, 64)?;
        let dest = Cidr::parse_strict(&d)
            .map_err(|e| ApiError::bad_attr(&format!("{f}.destination"), e))?;
        let n = m
            .remove("nexthop")
            .ok_or_else(|| ApiError::bad_attr(&format!("{f}.nexthop"), "is required"))?;
        let n = string_value(&format!("{f}.nexthop"), n, 64)?;
        let hop = parse_ip(&n).map_err(|e| ApiError::bad_attr(&format!("{f}.nexthop"), e))?;
        if dest.version != version || IpVersion::of(hop) != version {
            return Err(ApiError::bad_attr(
                &f,
                format!("the route must be IPv{} like the subnet", version.number()),
            ));
        }
        if let Some(k) = m.keys().next() {
            return Err(ApiError::bad_attr(
                &f,
                format!("unknown key '{k}' (only destination and nexthop)"),
            ));
        }
        let r = HostRoute {
            destination: dest.to_string(),
            nexthop: hop.to_string(),
        };
        if out.contains(&r) {
            return Err(ApiError::bad_attr(&f, "route listed twice"));
        }
        out.push(r);
    }
    Ok(out)
}

impl Tx<'_> {
    pub fn create_subnet(&mut self, mut b: Body) -> Result<Arc<Subnet>, ApiError> {
        let name = b.string("name", NAME_MAX)?.unwrap_or_default();
        let description = b.string("description", NAME_MAX)?.unwrap_or_default();
        let project = b.project(&self.project)?;
        let network_id = b
            .string("network_id", 64)?
            .ok_or_else(|| ApiError::bad("network_id", "is required"))?;
        check_uuid(&network_id).map_err(|e| ApiError::bad("network_id", e))?;
        for k in [
            "subnetpool_id",
            "prefixlen",
            "use_default_subnet_pool",
            "segment_id",
        ] {
            match b.take(k) {
                None | Some(Value::Null) | Some(Value::Bool(false)) => {}
                Some(_) => {
                    return Err(ApiError::bad(
                        k,
                        "subnet pools and segments are not supported; give a cidr",
                    ))
                }
            }
        }
        let mut modes = [None, None];
        for (slot, k) in modes.iter_mut().zip(["ipv6_ra_mode", "ipv6_address_mode"]) {
            if let Some(m) = b.nullable_string(k, 32)?.flatten() {
                if !IPV6_MODES.contains(&m.as_str()) {
                    return Err(ApiError::bad_attr(
                        k,
                        format!("'{m}' is not in {IPV6_MODES:?}"),
                    ));
                }
                *slot = Some(m);
            }
        }
        let [ra_mode, address_mode] = modes;
        let cidr_s = b
            .string("cidr", 64)?
            .ok_or_else(|| ApiError::bad("cidr", "is required"))?;
        // Host bits are cleared, as Neutron does ("10.3.0.5/24" is
        // 10.3.0.0/24); an address without a prefix is refused.
        if !cidr_s.contains('/') {
            return Err(ApiError::bad_attr(
                "cidr",
                format!("'{cidr_s}' is not a valid IP subnet"),
            ));
        }
        let cidr = Cidr::parse_lenient(&cidr_s).map_err(|_| {
            ApiError::new(
                400,
                "InvalidInput",
                format!("Invalid input for operation: {cidr_s} is not in a CIDR format (cidr)."),
            )
        })?;
        if let Some(v) = b.integer("ip_version", 0, 255)? {
            if v != 4 && v != 6 {
                return Err(ApiError::bad_attr(
                    "ip_version",
                    format!("{v} is not in [4, 6]"),
                ));
            }
            if v != cidr.version.number() as i64 {
                return Err(ApiError::bad(
                    "ip_version",
                    format!(
                        "{v} does not match cidr {cidr} (IPv{})",
                        cidr.version.number()
                    ),
                ));
            }
        }
        let max_prefix = cidr.version.bits() - 2;
        if cidr.prefix > max_prefix {
            return Err(ApiError::bad(
                "cidr",
                format!(
                    "/{} leaves no address for ports; use at most /{max_prefix}",
                    cidr.prefix
                ),
            ));
        }
        let invalid = |msg: String| {
            ApiError::new(
                400,
                "InvalidInput",
                format!("Invalid input for operation: {msg}."),
            )
        };
        if ra_mode.is_some() || address_mode.is_some() {
            if cidr.version == IpVersion::V4 {
                return Err(invalid(
                    "ipv6_ra_mode or ipv6_address_mode cannot be set when ip_version is 4".into(),
                ));
            }
            if let (Some(ra), Some(addr)) = (&ra_mode, &address_mode) {
                if ra != addr {
                    return Err(invalid(format!("ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{addr}' is not valid. If both attributes are set, they must be the same value")));
                }
            }
        }
        let auto = matches!(address_mode.as_deref(), Some("slaac" | "dhcpv6-stateless"));
        if auto && cidr.prefix != 64 {
            return Err(invalid(format!("Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64")));
        }
        let gateway = match b.nullable_string("gateway_ip", 64)? {
            // Neutron's defaults: the first host of an IPv4 subnet, the
            // subnet-router anycast address of an IPv6 one.
            None if cidr.version == IpVersion::V6 => Some(cidr.base),
            None => Some(cidr.base + 1),
            Some(None) => None,
            Some(Some(g)) => Some(check_gateway("gateway_ip", &cidr, &g)?),
        };
        let pools = match b.list("allocation_pools")? {
            None => default_pools(&cidr, gateway),
            Some(items) => {
                let p = parse_pools(&cidr, items, self.s.max_allocation_pools)?;
                check_pools(&cidr, gateway, &p)?
            }
        };
        let enable_dhcp = b.boolean("enable_dhcp")?.unwrap_or(true);
        if !enable_dhcp && (ra_mode.is_some() || address_mode.is_some()) {
            return Err(invalid(
                "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False"
                    .into(),
            ));
        }
        let dns = parse_dns(
            cidr.version,
            b.string_list("dns_nameservers", 64)?.unwrap_or_default(),
        )?;
        let routes = parse_routes(cidr.version, b.list("host_routes")?.unwrap_or_default())?;
        let service_types = b.string_list("service_types", 255)?.unwrap_or_default();
        let tags = check_tags("tags", b.string_list("tags", 255)?.unwrap_or_default())?;
        b.finish("POST", READONLY)?;

        let net = self.network(&network_id).map_err(|e| ApiError {
            message: format!("network_id: {}", e.message),
            ..e
        })?;
        for sid in &net.subnets {
            let other = self.subnet(sid)?;
            if let Ok(oc) = Cidr::parse_strict(&other.cidr) {
                if oc.overlaps(&cidr) {
                    return Err(ApiError::bad(
                        "cidr",
                        format!("{cidr} overlaps with subnet {sid} ({oc}) of network {network_id}"),
                    ));
                }
            }
        }
        let mut std = StdAttrs::new(description, &self.now);
        // Neutron's subnets start at revision 0 (networks and ports are
        // bumped once by their creation's second step).
        std.revision_number = 0;
        std.tags = tags;
        let sn = Subnet {
            id: new_id(),
            name,
            network_id: network_id.clone(),
            tenant_id: project.clone(),
            project_id: project,
            ip_version: cidr.version.number(),
            cidr: cidr.to_string(),
            gateway_ip: gateway.map(|g| cidr.ip(g).to_string()),
            allocation_pools: pools_json(&cidr, &pools),
            enable_dhcp,
            dns_nameservers: dns,
            host_routes: routes,
            ipv6_ra_mode: ra_mode,
            ipv6_address_mode: address_mode,
            subnetpool_id: None,
            segment_id: None,
            service_types,
            router_external: net.router_external,
            std,
        };
        self.w
            .ipam
            .insert(sn.id.clone(), SubnetIpam::new(cidr, pools).with_auto(auto));
        let sn = self.put_subnet(sn);
        let sid = sn.id.clone();
        self.touch_network(&network_id, |n| n.subnets.push(sid))?;
        if auto {
            self.add_auto_addresses(&sn, &cidr)?;
        }
        self.sync_dhcp_port(&network_id, None)?;
        Ok(sn)
    }

    pub fn update_subnet(&mut self, id: &str, mut b: Body) -> Result<Arc<Subnet>, ApiError> {
        let old = self.subnet(id)?;
        let mut sn = (*old).clone();
        let mut ipam = self
            .w
            .ipam
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::internal(format!("subnet {id} has no allocator")))?;
        let cidr = *ipam.cidr();
        if let Some(v) = b.string("name", NAME_MAX)? {
            sn.name = v;
        }
        if let Some(v) = b.string("description", NAME_MAX)? {
            sn.std.description = v;
        }
        if let Some(v) = b.boolean("enable_dhcp")? {
            sn.enable_dhcp = v;
        }
        if let Some(v) = b.string_list("dns_nameservers", 64)? {
            sn.dns_nameservers = parse_dns(cidr.version, v)?;
        }
        if let Some(v) = b.list("host_routes")? {
            sn.host_routes = parse_routes(cidr.version, v)?;
        }
        let mut gateway = match &sn.gateway_ip {
            Some(g) => Some(check_gateway("gateway_ip", &cidr, g)?),
            None => None,
        };
        let gw_change = b.nullable_string("gateway_ip", 64)?;
        if let Some(g) = gw_change {
            gateway = match g {
                None => None,
                Some(g) => {
                    let v = check_gateway("gateway_ip", &cidr, &g)?;
                    if ipam.is_allocated(v) {
                        return Err(ApiError::conflict(
                            "GatewayIpInUse",
                            format!(
                                "gateway_ip: {} is already used by a port of subnet {id}",
                                cidr.ip(v)
                            ),
                        ));
                    }
                    Some(v)
                }
            };
            sn.gateway_ip = gateway.map(|g| cidr.ip(g).to_string());
        }
        let new_pools = match b.list("allocation_pools")? {
            Some(items) => Some(parse_pools(&cidr, items, self.s.max_allocation_pools)?),
            None => None,
        };
        let mut readonly = READONLY.to_vec();
        readonly.extend([
            "network_id",
            "cidr",
            "ip_version",
            "project_id",
            "tenant_id",
            "subnetpool_id",
            "ipv6_ra_mode",
            "ipv6_address_mode",
            "segment_id",
            "service_types",
        ]);
        b.finish("PUT", &readonly)?;
        let pools = new_pools.unwrap_or_else(|| ipam.pools().to_vec());
        let pools = check_pools(&cidr, gateway, &pools)?;
        sn.allocation_pools = pools_json(&cidr, &pools);
        if sn == *old {
            return Ok(old);
        }
        ipam.set_pools(pools);
        self.w.ipam.insert(id.to_owned(), ipam);
        sn.std.touch(&self.now);
        let dhcp_changed = sn.enable_dhcp != old.enable_dhcp;
        let net = sn.network_id.clone();
        let sn = self.put_subnet(sn);
        if dhcp_changed {
            self.sync_dhcp_port(&net, None)?;
        }
        Ok(sn)
    }

    /// A new SLAAC/DHCPv6-stateless subnet: every port of its network (but
    /// router ports) gets its EUI-64 address there, as Neutron adds them.
    fn add_auto_addresses(&mut self, sn: &Subnet, cidr: &Cidr) -> Result<(), ApiError> {
        let ports: Vec<Arc<Port>> = self
            .w
            .st
            .ports
            .values()
            .filter(|p| {
                p.network_id == sn.network_id && !p.device_owner.starts_with("network:router")
            })
            .cloned()
            .collect();
        for p in ports {
            let Some(mac) = p.mac() else { continue };
            let v = eui64(cidr, mac);
            if let Some(ipam) = self.w.ipam.get_mut(&sn.id) {
                ipam.take(v);
            }
            let f = FixedIp {
                subnet_id: sn.id.clone(),
                ip_address: cidr.ip(v).to_string(),
            };
            self.ops.push(Op::AddAllocation {
                subnet_id: f.subnet_id.clone(),
                ip_address: f.ip_address.clone(),
                port_id: p.id.clone(),
            });
            let mut p = (*p).clone();
            p.fixed_ips.push(f);
            p.std.touch(&self.now);
            self.put_port(p);
        }
        Ok(())
    }

    pub fn delete_subnet(&mut self, id: &str) -> Result<(), ApiError> {
        let sn = self.subnet(id)?;
        // The DHCP port's address there goes first (Neutron removes
        // network-owned ports' addresses with the subnet).
        self.sync_dhcp_port(&sn.network_id, Some(id))?;
        if sn.is_auto_address() {
            // Auto addresses go with their subnet (Neutron removes them).
            let ports: Vec<Arc<Port>> = self
                .w
                .st
                .ports
                .values()
                .filter(|p| p.fixed_ips.iter().any(|f| f.subnet_id == id))
                .cloned()
                .collect();
            for p in ports {
                let mut p = (*p).clone();
                for f in p.fixed_ips.iter().filter(|f| f.subnet_id == id) {
                    self.ops.push(Op::DeleteAllocation {
                        subnet_id: f.subnet_id.clone(),
                        ip_address: f.ip_address.clone(),
                    });
                    if let (Some(ipam), Ok(ip)) = (self.w.ipam.get_mut(id), parse_ip(&f.ip_address))
                    {
                        ipam.release(ip_to_u128(ip));
                    }
                }
                p.fixed_ips.retain(|f| f.subnet_id != id);
                p.std.touch(&self.now);
                self.put_port(p);
            }
        }
        let used = self
            .w
            .ipam
            .get(id)
            .map(|i| i.allocated_count())
            .unwrap_or(0);
        if used > 0 {
            return Err(ApiError::conflict(
                "SubnetInUse",
                format!("Unable to complete operation on subnet {id}: {used} address(es) are allocated to ports."),
            ));
        }
        self.w.st.subnets.remove(id);
        self.w.ipam.remove(id);
        self.ops.push(Op::DeleteSubnet(id.to_owned()));
        let sid = id.to_owned();
        self.touch_network(&sn.network_id, |n| n.subnets.retain(|s| *s != sid))?;
        Ok(())
    }
}
