//! Security groups and rules, with Neutron's defaults: every group starts
//! with "egress anywhere" for IPv4 and IPv6; a project's "default" group
//! (created on demand) also admits ingress from its own members.
use super::body::{Body, NAME_MAX};
use super::engine::Tx;
use super::error::ApiError;
use super::model::{RuleDirection, SecurityGroup, SecurityGroupRule, StdAttrs};
use super::networks::check_tags;
use super::store::Op;
use super::validate::{check_uuid, new_id, Cidr, IpVersion};
use serde_json::Value;
use std::sync::Arc;

const GROUP_READONLY: &[&str] = &[
    "id",
    "security_group_rules",
    "created_at",
    "updated_at",
    "revision_number",
];
const RULE_READONLY: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "revision_number",
    "normalized_cidr",
];

/// IANA numbers of the protocol names Neutron accepts.
const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("icmpv6", 58),
    ("igmp", 2),
    ("ip", 0),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];
/// Protocols whose port_range_min/max are L4 ports.
const PORT_PROTOCOLS: [u8; 5] = [6, 17, 33, 132, 136];

pub(crate) fn protocol_number(p: &str) -> Option<u8> {
    PROTOCOLS
        .iter()
        .find(|(n, _)| *n == p)
        .map(|(_, v)| *v)
        .or_else(|| p.parse().ok())
}

/// What makes two rules the same rule (Neutron's duplicate check, with
/// protocol names and numbers equal and "anywhere" prefixes equal to none).
pub fn fingerprint(r: &SecurityGroupRule) -> String {
    let proto = r
        .protocol
        .as_deref()
        .and_then(protocol_number)
        .map(|n| n.to_string())
        .unwrap_or_default();
    let prefix = match r
        .normalized_cidr
        .as_deref()
        .or(r.remote_ip_prefix.as_deref())
    {
        Some("0.0.0.0/0") | Some("::/0") | None => "",
        Some(p) => p,
    };
    let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "{}|{}|{}|{}|{}|{}|{}",
        r.direction,
        r.ethertype.ethertype(),
        proto,
        opt(r.port_range_min),
        opt(r.port_range_max),
        prefix,
        r.remote_group_id.as_deref().unwrap_or("")
    )
}

impl Tx<'_> {
    fn new_rule(
        &mut self,
        group: &str,
        project: &str,
        direction: RuleDirection,
        ethertype: IpVersion,
        remote_group: Option<&str>,
    ) -> SecurityGroupRule {
        SecurityGroupRule {
            id: new_id(),
            security_group_id: group.to_owned(),
            project_id: project.to_owned(),
            tenant_id: project.to_owned(),
            direction,
            ethertype,
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            normalized_cidr: None,
            remote_group_id: remote_group.map(str::to_owned),
            remote_address_group_id: None,
            belongs_to_default_sg: self.w.default_groups.get(project).map(String::as_str)
                == Some(group),
            standard_attr_id: self.w.next_standard_attr_id(),
            description: None,
            created_at: self.now.clone(),
            updated_at: self.now.clone(),
            revision_number: 0,
        }
    }

    fn insert_group(
        &mut self,
        name: String,
        description: String,
        project: &str,
        stateful: bool,
        tags: Vec<String>,
        is_default: bool,
    ) -> Arc<SecurityGroup> {
        let id = new_id();
        let mut rules = Vec::new();
        if is_default {
            self.w.default_groups.insert(project.to_owned(), id.clone());
            for v in [IpVersion::V4, IpVersion::V6] {
                rules.push(self.new_rule(&id, project, RuleDirection::Ingress, v, Some(&id)));
            }
        }
        for v in [IpVersion::V4, IpVersion::V6] {
            rules.push(self.new_rule(&id, project, RuleDirection::Egress, v, None));
        }
        let mut std = StdAttrs::new(description, &self.now);
        std.tags = tags;
        let g = self.put_group(SecurityGroup {
            id,
            name,
            project_id: project.to_owned(),
            tenant_id: project.to_owned(),
            stateful,
            shared: false,
            security_group_rules: rules,
            std,
        });
        for r in &g.security_group_rules {
            self.add_rule_row(r);
        }
        g
    }

    /// The project's "default" group, created with its rules if missing.
    pub fn default_group(&mut self, project: &str) -> String {
        if let Some(id) = self.w.default_groups.get(project) {
            return id.clone();
        }
        let g = self.insert_group(
            "default".into(),
            "Default security group".into(),
            project,
            true,
            Vec::new(),
            true,
        );
        g.id.clone()
    }

    pub fn create_group(&mut self, mut b: Body) -> Result<Arc<SecurityGroup>, ApiError> {
        let name = b.string("name", NAME_MAX)?.unwrap_or_default();
        let description = b.string("description", NAME_MAX)?.unwrap_or_default();
        let project = b.project(&self.project)?;
        let stateful = b.boolean("stateful")?.unwrap_or(true);
        let tags = check_tags("tags", b.string_list("tags", 255)?.unwrap_or_default())?;
        b.finish("POST", GROUP_READONLY)?;
        if name == "default" {
            return Err(ApiError::conflict(
                "SecurityGroupDefaultAlreadyExists",
                "name: 'default' is reserved for the project's default security group",
            ));
        }
        // Neutron creates the project's default group before its first group.
        self.default_group(&project);
        Ok(self.insert_group(name, description, &project, stateful, tags, false))
    }

    pub fn update_group(&mut self, id: &str, mut b: Body) -> Result<Arc<SecurityGroup>, ApiError> {
        let old = self.group(id)?;
        let mut g = (*old).clone();
        let is_default = self.w.default_groups.get(&g.project_id).map(String::as_str) == Some(id);
        if let Some(n) = b.string("name", NAME_MAX)? {
            if is_default && n != "default" {
                return Err(ApiError::conflict(
                    "SecurityGroupCannotUpdateDefault",
                    "name: the default security group cannot be renamed",
                ));
            }
            if !is_default && n == "default" {
                return Err(ApiError::conflict(
                    "SecurityGroupDefaultAlreadyExists",
                    "name: 'default' is reserved for the project's default security group",
                ));
            }
            g.name = n;
        }
        if let Some(d) = b.string("description", NAME_MAX)? {
            g.std.description = d;
        }
        if let Some(s) = b.boolean("stateful")? {
            g.stateful = s;
        }
        let mut readonly = GROUP_READONLY.to_vec();
        readonly.extend(["project_id", "tenant_id"]);
        b.finish("PUT", &readonly)?;
        if g == *old {
            return Ok(old);
        }
        g.std.touch(&self.now);
        Ok(self.put_group(g))
    }

    pub fn delete_group(&mut self, id: &str) -> Result<(), ApiError> {
        let g = self.group(id)?;
        let users = self
            .w
            .st
            .ports
            .values()
            .filter(|p| p.security_groups.iter().any(|s| s == id))
            .count();
        if users > 0 {
            return Err(ApiError::conflict(
                "SecurityGroupInUse",
                format!("Security Group {id} in use: {users} port(s) use it."),
            ));
        }
        // Rules of other groups that name this one as remote go with it.
        let others: Vec<Arc<SecurityGroup>> = self
            .w
            .st
            .security_groups
            .values()
            .filter(|o| {
                o.id != id
                    && o.security_group_rules
                        .iter()
                        .any(|r| r.remote_group_id.as_deref() == Some(id))
            })
            .cloned()
            .collect();
        for o in others {
            let mut o = (*o).clone();
            for r in o
                .security_group_rules
                .iter()
                .filter(|r| r.remote_group_id.as_deref() == Some(id))
            {
                self.w.st.rule_owner.remove(&r.id);
                self.ops.push(Op::DeleteRule(r.id.clone()));
            }
            o.security_group_rules
                .retain(|r| r.remote_group_id.as_deref() != Some(id));
            o.std.touch(&self.now);
            self.put_group(o);
        }
        for r in &g.security_group_rules {
            self.w.st.rule_owner.remove(&r.id);
        }
        if self.w.default_groups.get(&g.project_id).map(String::as_str) == Some(id) {
            self.w.default_groups.remove(&g.project_id);
        }
        self.w.st.security_groups.remove(id);
        self.ops.push(Op::DeleteGroup(id.to_owned()));
        Ok(())
    }

    pub fn create_rule(&mut self, mut b: Body) -> Result<SecurityGroupRule, ApiError> {
        let gid = b
            .string("security_group_id", 64)?
            .ok_or_else(|| ApiError::bad("security_group_id", "is required"))?;
        check_uuid(&gid).map_err(|e| ApiError::bad("security_group_id", e))?;
        let direction = match b
            .string("direction", 16)?
            .ok_or_else(|| ApiError::bad("direction", "is required (ingress or egress)"))?
            .as_str()
        {
            "ingress" => RuleDirection::Ingress,
            "egress" => RuleDirection::Egress,
            other => {
                return Err(ApiError::bad_attr(
                    "direction",
                    format!("{other} is not in valid_values"),
                ))
            }
        };
        let ethertype = match b.string("ethertype", 16)? {
            None => IpVersion::V4,
            Some(e) if e.eq_ignore_ascii_case("ipv4") => IpVersion::V4,
            Some(e) if e.eq_ignore_ascii_case("ipv6") => IpVersion::V6,
            Some(e) => {
                return Err(ApiError::new(
                    400,
                    "SecurityGroupRuleInvalidEtherType",
                    format!("Security group rule for ethertype '{e}' not supported. Allowed values are ['IPv4', 'IPv6']."),
                ))
            }
        };
        let protocol = match b.take("protocol") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(s)) => Some(s.to_ascii_lowercase()),
            Some(other) => {
                return Err(ApiError::bad(
                    "protocol",
                    format!(
                        "{} is not a protocol name or number",
                        super::body::kind(&other)
                    ),
                ))
            }
        };
        let protocol = match protocol.as_deref() {
            None | Some("any") => None,
            Some(p) if p.bytes().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
                match p.parse::<u16>() {
                    Ok(n) if n <= 255 => Some(n.to_string()),
                    _ => {
                        return Err(ApiError::new(
                            400,
                            "SecurityGroupRuleInvalidProtocol",
                            format!("Security group rule protocol {p} not supported. Only protocol values and integer representations [0 to 255] are supported."),
                        ))
                    }
                }
            }
            // Neutron stores the alias icmpv6 as ipv6-icmp.
            Some("icmpv6") => Some("ipv6-icmp".to_owned()),
            Some(p) if protocol_number(p).is_some() => Some(p.to_owned()),
            Some(p) => {
                return Err(ApiError::new(
                    400,
                    "SecurityGroupRuleInvalidProtocol",
                    format!(
                        "Security group rule protocol {p} not supported. Only protocol values (None, 'any', {}) and integer representations [0 to 255] are supported.",
                        PROTOCOLS
                            .iter()
                            .map(|(n, _)| format!("'{n}'"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        };
        let num = protocol.as_deref().and_then(protocol_number);
        // Neutron's exception types (neutron.extensions.securitygroup):
        // clients branch on them.
        let sg_err = |kind: &str, msg: String| ApiError::new(400, kind, msg);
        if ethertype == IpVersion::V4 && num == Some(58) {
            return Err(sg_err(
                "SecurityGroupEthertypeConflictWithProtocol",
                format!(
                    "Invalid ethertype IPv4 for protocol {}.",
                    protocol.as_deref().unwrap_or("ipv6-icmp")
                ),
            ));
        }
        let port_value = |f: &str, b: &mut Body| -> Result<Option<u32>, ApiError> {
            match b.integer(f, i64::MIN, i64::MAX)? {
                None => Ok(None),
                Some(v) if (0..=65535).contains(&v) => Ok(Some(v as u32)),
                Some(v) => Err(sg_err(
                    "SecurityGroupInvalidPortValue",
                    format!("Invalid value for port {v}."),
                )),
            }
        };
        let mut min = port_value("port_range_min", &mut b)?;
        let mut max = port_value("port_range_max", &mut b)?;
        match num {
            Some(n) if PORT_PROTOCOLS.contains(&n) => {
                if min.is_none() && max.is_some() {
                    return Err(ApiError::bad(
                        "port_range_min",
                        "required when port_range_max is given",
                    ));
                }
                if min.is_some() && max.is_none() {
                    max = min;
                }
                for v in [min, max] {
                    if v == Some(0) {
                        return Err(sg_err(
                            "SecurityGroupInvalidPortValue",
                            "Invalid value for port 0.".into(),
                        ));
                    }
                }
                if let (Some(a), Some(z)) = (min, max) {
                    if a > z {
                        return Err(sg_err(
                            "SecurityGroupInvalidPortRange",
                            "For TCP/UDP protocols, port_range_min must be <= port_range_max"
                                .into(),
                        ));
                    }
                    // The whole range is no range (Neutron stores nulls).
                    if (a, z) == (1, 65535) {
                        (min, max) = (None, None);
                    }
                }
            }
            Some(1) | Some(58) => {
                if min.is_none() && max.is_some() {
                    return Err(sg_err(
                        "SecurityGroupMissingIcmpType",
                        format!(
                            "ICMP code (port-range-max) {} is provided but ICMP type (port-range-min) is missing.",
                            max.unwrap_or_default()
                        ),
                    ));
                }
                for (field, attr, v) in [
                    ("type", "port_range_min", min),
                    ("code", "port_range_max", max),
                ] {
                    if let Some(v) = v.filter(|v| *v > 255) {
                        return Err(sg_err(
                            "SecurityGroupInvalidIcmpValue",
                            format!(
                                "Invalid value for ICMP {field} ({attr}) {v}. It must be 0 to 255."
                            ),
                        ));
                    }
                }
            }
            None if min.is_some() || max.is_some() => {
                return Err(sg_err(
                    "SecurityGroupProtocolRequiredWithPorts",
                    "Must also specify protocol if port range is given.".into(),
                ));
            }
            Some(n) if min.is_some() || max.is_some() => {
                return Err(sg_err(
                    "SecurityGroupInvalidProtocolForPort",
                    format!("Ports cannot be specified for protocol {n}. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE."),
                ));
            }
            _ => {}
        }
        let remote_ip_prefix = match b.nullable_string("remote_ip_prefix", 64)?.flatten() {
            None => None,
            Some(p) => {
                let c = Cidr::parse_lenient(&p).map_err(|_| {
                    ApiError::new(
                        400,
                        "InvalidCIDR",
                        format!("Invalid CIDR {p} given as IP prefix."),
                    )
                })?;
                if c.version != ethertype {
                    return Err(sg_err(
                        "SecurityGroupRuleParameterConflict",
                        format!(
                            "Conflicting value ethertype {} for CIDR {p}",
                            ethertype.ethertype()
                        ),
                    ));
                }
                Some((p, c.to_string()))
            }
        };
        let remote_group_id = b.nullable_string("remote_group_id", 64)?.flatten();
        if let Some(Some(_)) = b.nullable_string("remote_address_group_id", 64)? {
            return Err(ApiError::bad(
                "remote_address_group_id",
                "address groups are not supported",
            ));
        }
        if remote_group_id.is_some() && remote_ip_prefix.is_some() {
            return Err(ApiError::new(
                400,
                "SecurityGroupMultipleRemoteEntites",
                "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.",
            ));
        }
        if let Some(r) = &remote_group_id {
            check_uuid(r).map_err(|e| ApiError::bad("remote_group_id", e))?;
        }
        let description = b.string("description", NAME_MAX)?.unwrap_or_default();
        let _project = b.project(&self.project)?;
        b.finish("POST", RULE_READONLY)?;

        let g = self.group(&gid).map_err(|e| ApiError {
            message: format!("security_group_id: {}", e.message),
            ..e
        })?;
        if let Some(r) = &remote_group_id {
            self.group(r).map_err(|e| ApiError {
                message: format!("remote_group_id: {}", e.message),
                ..e
            })?;
        }
        let mut rule = self.new_rule(
            &gid,
            &g.project_id,
            direction,
            ethertype,
            remote_group_id.as_deref(),
        );
        rule.protocol = protocol;
        rule.port_range_min = min;
        rule.port_range_max = max;
        rule.normalized_cidr = remote_ip_prefix.as_ref().map(|(_, c)| c.clone());
        rule.remote_ip_prefix = remote_ip_prefix.map(|(given, _)| given);
        rule.description = Some(description);
        let fp = fingerprint(&rule);
        if let Some(dup) = g.security_group_rules.iter().find(|r| fingerprint(r) == fp) {
            return Err(ApiError::conflict(
                "SecurityGroupRuleExists",
                format!("Security group rule already exists. Rule id is {}.", dup.id),
            ));
        }
        let mut g = (*g).clone();
        g.security_group_rules.push(rule.clone());
        g.std.touch(&self.now);
        self.put_group(g);
        self.add_rule_row(&rule);
        Ok(rule)
    }

    fn rule_of(&self, id: &str) -> Result<(Arc<SecurityGroup>, usize), ApiError> {
        let nf = || {
            ApiError::not_found(
                "SecurityGroupRuleNotFound",
                format!("Security group rule {id} does not exist"),
            )
        };
        let gid = self.w.st.rule_owner.get(id).ok_or_else(nf)?;
        let g = self.group(gid)?;
        let i = g
            .security_group_rules
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(nf)?;
        Ok((g, i))
    }

    /// Rules are immutable in Neutron but for their description.
    pub fn update_rule(&mut self, id: &str, mut b: Body) -> Result<SecurityGroupRule, ApiError> {
        let (g, i) = self.rule_of(id)?;
        let d = b.string("description", NAME_MAX)?;
        let mut readonly = RULE_READONLY.to_vec();
        readonly.extend([
            "security_group_id",
            "direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
            "remote_group_id",
            "project_id",
            "tenant_id",
            "remote_address_group_id",
        ]);
        b.finish("PUT", &readonly)?;
        let mut g = (*g).clone();
        match d {
            Some(d) if Some(&d) != g.security_group_rules[i].description.as_ref() => {
                let r = &mut g.security_group_rules[i];
                r.description = Some(d);
                r.updated_at = self.now.clone();
                r.revision_number += 1;
                let r = r.clone();
                g.std.touch(&self.now);
                self.put_group(g);
                self.add_rule_row(&r);
                Ok(r)
            }
            _ => Ok(g.security_group_rules[i].clone()),
        }
    }

    pub fn delete_rule(&mut self, id: &str) -> Result<(), ApiError> {
        let (g, i) = self.rule_of(id)?;
        let mut g = (*g).clone();
        g.security_group_rules.remove(i);
        g.std.touch(&self.now);
        self.w.st.rule_owner.remove(id);
        self.ops.push(Op::DeleteRule(id.to_owned()));
        self.put_group(g);
        Ok(())
    }
}
