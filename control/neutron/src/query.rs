//! List queries: filters on scalar attributes (`?name=a&name=b` is OR,
//! different keys AND), tag filters, `fields=` projection, `limit`/`marker`
//! pagination with a next link, `sort_key`/`sort_dir`. Lists are written
//! straight from the in-memory resources into one buffer.
use super::error::ApiError;
use super::model::{Network, Port, SecurityGroup, SecurityGroupRule, Subnet};
use serde::Serialize;
use serde_json::Value;
use std::cmp::Ordering;

/// A filterable attribute's value.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Str(&'a str),
}

impl Scalar<'_> {
    fn matches(&self, q: &str) -> bool {
        match self {
            Scalar::Str(s) => *s == q,
            Scalar::Int(i) => q.trim().parse::<i64>().ok() == Some(*i),
            Scalar::Bool(b) => match q.to_ascii_lowercase().as_str() {
                "true" | "1" => *b,
                "false" | "0" => !*b,
                _ => false,
            },
            Scalar::Null => q.is_empty() || q == "None" || q == "null",
        }
    }
}

fn opt(v: &Option<String>) -> Scalar<'_> {
    v.as_deref().map(Scalar::Str).unwrap_or(Scalar::Null)
}

pub trait Listable: Serialize {
    fn id(&self) -> &str;
    /// The value of a scalar attribute; None when `key` is not one.
    fn attr(&self, key: &str) -> Option<Scalar<'_>>;
    fn tags(&self) -> &[String] {
        &[]
    }
    /// Filters on list attributes (`fixed_ips`, `security_groups`, ...):
    /// None when `key` is not one.
    fn list_filter(&self, _key: &str, _values: &[String]) -> Option<bool> {
        None
    }
    /// Every attribute name that can be filtered on.
    fn filter_keys() -> &'static [&'static str];
}

macro_rules! std_attr {
    ($s:expr, $k:expr) => {
        match $k {
            "description" => return Some(Scalar::Str(&$s.std.description)),
            "created_at" => return Some(Scalar::Str(&$s.std.created_at)),
            "updated_at" => return Some(Scalar::Str(&$s.std.updated_at)),
            "revision_number" => return Some(Scalar::Int($s.std.revision_number as i64)),
            _ => {}
        }
    };
}

impl Listable for Network {
    fn id(&self) -> &str {
        &self.id
    }
    fn attr(&self, k: &str) -> Option<Scalar<'_>> {
        std_attr!(self, k);
        Some(match k {
            "id" => Scalar::Str(&self.id),
            "name" => Scalar::Str(&self.name),
            "project_id" => Scalar::Str(&self.project_id),
            "tenant_id" => Scalar::Str(&self.tenant_id),
            "admin_state_up" => Scalar::Bool(self.admin_state_up),
            "status" => Scalar::Str(&self.status),
            "shared" => Scalar::Bool(self.shared),
            "mtu" => Scalar::Int(self.mtu as i64),
            "provider:network_type" => Scalar::Str(self.network_type.as_str()),
            "provider:physical_network" => opt(&self.physical_network),
            "provider:segmentation_id" => self
                .segmentation_id
                .map(|v| Scalar::Int(v as i64))
                .unwrap_or(Scalar::Null),
            "router:external" => Scalar::Bool(self.router_external),
            "port_security_enabled" => Scalar::Bool(self.port_security_enabled),
            _ => return None,
        })
    }
    fn tags(&self) -> &[String] {
        &self.std.tags
    }
    fn list_filter(&self, key: &str, values: &[String]) -> Option<bool> {
        (key == "subnets").then(|| values.iter().any(|v| self.subnets.contains(v)))
    }
    fn filter_keys() -> &'static [&'static str] {
        &[
            "id",
            "name",
            "project_id",
            "tenant_id",
            "admin_state_up",
            "status",
            "shared",
            "mtu",
            "provider:network_type",
            "provider:physical_network",
            "provider:segmentation_id",
            "router:external",
            "port_security_enabled",
            "description",
            "created_at",
            "updated_at",
            "revision_number",
            "subnets",
        ]
    }
}

impl Listable for Subnet {
    fn id(&self) -> &str {
        &self.id
    }
    fn attr(&self, k: &str) -> Option<Scalar<'_>> {
        std_attr!(self, k);
        Some(match k {
            "id" => Scalar::Str(&self.id),
            "name" => Scalar::Str(&self.name),
            "network_id" => Scalar::Str(&self.network_id),
            "project_id" => Scalar::Str(&self.project_id),
            "tenant_id" => Scalar::Str(&self.tenant_id),
            "ip_version" => Scalar::Int(self.ip_version as i64),
            "cidr" => Scalar::Str(&self.cidr),
            "gateway_ip" => opt(&self.gateway_ip),
            "enable_dhcp" => Scalar::Bool(self.enable_dhcp),
            "ipv6_ra_mode" => opt(&self.ipv6_ra_mode),
            "ipv6_address_mode" => opt(&self.ipv6_address_mode),
            "subnetpool_id" => opt(&self.subnetpool_id),
            "router:external" => Scalar::Bool(self.router_external),
            _ => return None,
        })
    }
    fn tags(&self) -> &[String] {
        &self.std.tags
    }
    fn filter_keys() -> &'static [&'static str] {
        &[
            "id",
            "name",
            "network_id",
            "project_id",
            "tenant_id",
            "ip_version",
            "cidr",
            "gateway_ip",
            "enable_dhcp",
            "ipv6_ra_mode",
            "ipv6_address_mode",
            "subnetpool_id",
            "router:external",
            "description",
            "created_at",
            "updated_at",
            "revision_number",
        ]
    }
}

impl Listable for Port {
    fn id(&self) -> &str {
        &self.id
    }
    fn attr(&self, k: &str) -> Option<Scalar<'_>> {
        std_attr!(self, k);
        Some(match k {
            "id" => Scalar::Str(&self.id),
            "name" => Scalar::Str(&self.name),
            "network_id" => Scalar::Str(&self.network_id),
            "project_id" => Scalar::Str(&self.project_id),
            "tenant_id" => Scalar::Str(&self.tenant_id),
            "mac_address" => Scalar::Str(&self.mac_address),
            "admin_state_up" => Scalar::Bool(self.admin_state_up),
            "status" => Scalar::Str(self.status.as_str()),
            "device_id" => Scalar::Str(&self.device_id),
            "device_owner" => Scalar::Str(&self.device_owner),
            "port_security_enabled" => Scalar::Bool(self.port_security_enabled),
            "binding:host_id" => Scalar::Str(&self.binding.host_id),
            "binding:vnic_type" => Scalar::Str(&self.binding.vnic_type),
            "binding:vif_type" => Scalar::Str(self.binding.vif_type.as_str()),
            _ => return None,
        })
    }
    fn tags(&self) -> &[String] {
        &self.std.tags
    }
    fn list_filter(&self, key: &str, values: &[String]) -> Option<bool> {
        match key {
            "security_groups" => Some(values.iter().any(|v| self.security_groups.contains(v))),
            // `fixed_ips=ip_address=10.0.0.5`, `fixed_ips=subnet_id=...`
            "fixed_ips" => Some(values.iter().any(|v| {
                let (k, want) = v.split_once('=').unwrap_or(("ip_address", v));
                self.fixed_ips.iter().any(|f| match k {
                    "ip_address" => f.ip_address == want,
                    "subnet_id" => f.subnet_id == want,
                    "ip_address_substr" => f.ip_address.contains(want),
                    _ => false,
                })
            })),
            _ => None,
        }
    }
    fn filter_keys() -> &'static [&'static str] {
        &[
            "id",
            "name",
            "network_id",
            "project_id",
            "tenant_id",
            "mac_address",
            "admin_state_up",
            "status",
            "device_id",
            "device_owner",
            "port_security_enabled",
            "binding:host_id",
            "binding:vnic_type",
            "binding:vif_type",
            "description",
            "created_at",
            "updated_at",
            "revision_number",
            "security_groups",
            "fixed_ips",
        ]
    }
}

impl Listable for SecurityGroup {
    fn id(&self) -> &str {
        &self.id
    }
    fn attr(&self, k: &str) -> Option<Scalar<'_>> {
        std_attr!(self, k);
        Some(match k {
            "id" => Scalar::Str(&self.id),
            "name" => Scalar::Str(&self.name),
            "project_id" => Scalar::Str(&self.project_id),
            "tenant_id" => Scalar::Str(&self.tenant_id),
            "stateful" => Scalar::Bool(self.stateful),
            _ => return None,
        })
    }
    fn tags(&self) -> &[String] {
        &self.std.tags
    }
    fn filter_keys() -> &'static [&'static str] {
        &[
            "id",
            "name",
            "project_id",
            "tenant_id",
            "stateful",
            "description",
            "created_at",
            "updated_at",
            "revision_number",
        ]
    }
}

impl Listable for SecurityGroupRule {
    fn id(&self) -> &str {
        &self.id
    }
    fn attr(&self, k: &str) -> Option<Scalar<'_>> {
        let pr = |v: Option<u32>| v.map(|v| Scalar::Int(v as i64)).unwrap_or(Scalar::Null);
        Some(match k {
            "id" => Scalar::Str(&self.id),
            "security_group_id" => Scalar::Str(&self.security_group_id),
            "project_id" => Scalar::Str(&self.project_id),
            "tenant_id" => Scalar::Str(&self.tenant_id),
            "direction" => Scalar::Str(self.direction.as_str()),
            "ethertype" => Scalar::Str(self.ethertype.ethertype()),
            "protocol" => opt(&self.protocol),
            "port_range_min" => pr(self.port_range_min),
            "port_range_max" => pr(self.port_range_max),
            "remote_ip_prefix" => opt(&self.remote_ip_prefix),
            "remote_group_id" => opt(&self.remote_group_id),
            "description" => opt(&self.description),
            "normalized_cidr" => opt(&self.normalized_cidr),
            "remote_address_group_id" => opt(&self.remote_address_group_id),
            "belongs_to_default_sg" => Scalar::Bool(self.belongs_to_default_sg),
            "standard_attr_id" => Scalar::Int(self.standard_attr_id as i64),
            "created_at" => Scalar::Str(&self.created_at),
            "updated_at" => Scalar::Str(&self.updated_at),
            "revision_number" => Scalar::Int(self.revision_number as i64),
            _ => return None,
        })
    }
    fn filter_keys() -> &'static [&'static str] {
        &[
            "id",
            "security_group_id",
            "project_id",
            "tenant_id",
            "direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
            "remote_group_id",
            "description",
            "normalized_cidr",
            "remote_address_group_id",
            "belongs_to_default_sg",
            "standard_attr_id",
            "created_at",
            "updated_at",
            "revision_number",
        ]
    }
}

/// The decoded query string, in order, repeated keys kept.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub pairs: Vec<(String, String)>,
}

fn unhex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
pub fn percent_decode(s: &str) -> Result<String, ApiError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let v = b
                    .get(i + 1)
                    .and_then(|h| unhex(*h))
                    .zip(b.get(i + 2).and_then(|l| unhex(*l)))
                    .map(|(h, l)| h << 4 | l)
                    .ok_or_else(|| {
                        ApiError::bad("query string", format!("bad percent escape in '{s}'"))
                    })?;
                out.push(v);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::bad("query string", "not UTF-8"))
}

pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Query {
    pub fn parse(q: Option<&str>) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for part in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((percent_decode(k)?, percent_decode(v)?));
        }
        Ok(Query { pairs })
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn first(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `fields=a&fields=b` or `fields=a,b`.
    pub fn fields(&self) -> Vec<String> {
        self.all("fields")
            .iter()
            .flat_map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>())
            .filter(|f| !f.is_empty())
            .collect()
    }
}

const PAGING_KEYS: [&str; 6] = [
    "fields",
    "limit",
    "marker",
    "page_reverse",
    "sort_key",
    "sort_dir",
];
const TAG_KEYS: [&str; 4] = ["tags", "tags-any", "not-tags", "not-tags-any"];

fn tag_set(values: &[String]) -> Vec<&str> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|t| !t.is_empty())
        .collect()
}

/// One item as JSON, limited to `fields` when given.
pub fn write_item<T: Serialize>(
    out: &mut Vec<u8>,
    item: &T,
    fields: &[String],
) -> Result<(), ApiError> {
    let r = if fields.is_empty() {
        serde_json::to_writer(&mut *out, item)
    } else {
        let mut v = serde_json::to_value(item).map_err(|e| ApiError::internal(e.to_string()))?;
        if let Value::Object(m) = &mut v {
            m.retain(|k, _| fields.iter().any(|f| f == k));
        }
        serde_json::to_writer(&mut *out, &v)
    };
    r.map_err(|e| ApiError::internal(e.to_string()))
}

/// `{"<plural>": [...], "<plural>_links": [...]}` for the items matching
/// the query. `self_url` is the collection URL, for the next link.
pub fn list<'a, T: Listable + 'a>(
    plural: &str,
    items: impl Iterator<Item = &'a T>,
    q: &Query,
    self_url: &str,
    lookup: &dyn Fn(&str) -> Option<&'a T>,
    not_found: &dyn Fn(&str) -> ApiError,
) -> Result<Vec<u8>, ApiError> {
    // Group the filters by key, refusing what is not an attribute.
    let mut filters: Vec<(&str, Vec<String>)> = Vec::new();
    for (k, _) in &q.pairs {
        if PAGING_KEYS.contains(&k.as_str()) || filters.iter().any(|(f, _)| f == k) {
            continue;
        }
        if !TAG_KEYS.contains(&k.as_str()) && !T::filter_keys().contains(&k.as_str()) {
            return Err(ApiError::new(
                400,
                "HTTPBadRequest",
                format!(
                    "[{k}] is invalid attribute for filtering: {plural} have no such attribute"
                ),
            ));
        }
        filters.push((k.as_str(), q.all(k)));
    }
    let matches = |item: &T| {
        filters.iter().all(|(k, vals)| match *k {
            "tags" => tag_set(vals)
                .iter()
                .all(|t| item.tags().iter().any(|x| x == t)),
            "tags-any" => tag_set(vals)
                .iter()
                .any(|t| item.tags().iter().any(|x| x == t)),
            "not-tags" => !tag_set(vals)
                .iter()
                .all(|t| item.tags().iter().any(|x| x == t)),
            "not-tags-any" => !tag_set(vals)
                .iter()
                .any(|t| item.tags().iter().any(|x| x == t)),
            _ => match item.list_filter(k, vals) {
                Some(m) => m,
                None => item
                    .attr(k)
                    .is_some_and(|a| vals.iter().any(|v| a.matches(v))),
            },
        })
    };
    let mut selected: Vec<&T> = items.filter(|i| matches(i)).collect();

    // Neutron's words and types (api_common.get_sorts, get_limit_and_marker).
    let http_bad = |msg: String| ApiError::new(400, "HTTPBadRequest", msg);
    let keys = q.all("sort_key");
    let dirs = q.all("sort_dir");
    if keys.len() != dirs.len() {
        return Err(http_bad(
            "The number of sort_keys and sort_dirs must be same".into(),
        ));
    }
    for k in &keys {
        if !T::filter_keys().contains(&k.as_str())
            || k == "fixed_ips"
            || k == "security_groups"
            || k == "subnets"
        {
            return Err(http_bad(format!(
                "{k} is an invalid attribute for sort_key"
            )));
        }
    }
    for d in &dirs {
        if d != "asc" && d != "desc" {
            return Err(http_bad(format!(
                "{d} is an invalid attribute for sort_dir, valid sort dir is asc or desc"
            )));
        }
    }
    // The sort keys, then the id (the order without keys).
    let order = |a: &T, b: &T| {
        for (i, k) in keys.iter().enumerate() {
            let o = a.attr(k).partial_cmp(&b.attr(k)).unwrap_or(Ordering::Equal);
            let o = if dirs.get(i).map(String::as_str) == Some("desc") {
                o.reverse()
            } else {
                o
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.id().cmp(b.id())
    };
    selected.sort_by(|a, b| order(a, b));
    // page_reverse: the page before the marker, still in ascending order.
    let reverse = q
        .first("page_reverse")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if reverse {
        selected.reverse();
    }
    if let Some(m) = q.first("marker") {
        // The marker is looked up as the resource (Neutron's NotFound; it
        // need not match the filters), then the page starts after it in
        // the sort order.
        let marker = lookup(m).ok_or_else(|| not_found(m))?;
        let after = if reverse {
            Ordering::Less
        } else {
            Ordering::Greater
        };
        selected.retain(|i| order(i, marker) == after);
    }
    let limit = match q.first("limit") {
        None => None,
        Some(l) => match l.parse::<usize>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                return Err(ApiError::new(
                    400,
                    "BadRequest",
                    format!(
                        "Bad limit request: Limit must be an integer 0 or greater and not '{l}'."
                    ),
                ))
            }
        },
    };
    if let Some(l) = limit {
        selected.truncate(l);
    }
    if reverse {
        selected.reverse();
    }
    let fields = q.fields();
    let mut out =
        Vec::with_capacity(64 + selected.len() * if fields.is_empty() { 900 } else { 100 });
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(plural.as_bytes());
    out.extend_from_slice(b"\":[");
    for (i, item) in selected.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_item(&mut out, *item, &fields)?;
    }
    out.push(b']');
    if let Some(l) = limit {
        // Neutron's links (api_common.get_pagination_links): "next" unless
        // a forward page came out short, "previous" unless a reverse one
        // did; each restarts from this page's edge.
        let short = selected.len() < l;
        let href = |marker: Option<&str>, back: bool| {
            let mut qs: Vec<String> = q
                .pairs
                .iter()
                .filter(|(k, _)| k != "marker" && k != "page_reverse")
                .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                .collect();
            if let Some(m) = marker {
                qs.push(format!("marker={}", percent_encode(m)));
            }
            if back {
                qs.push("page_reverse=True".into());
            }
            format!("{self_url}?{}", qs.join("&"))
        };
        let mut links = Vec::new();
        if !short || reverse {
            links.push(serde_json::json!({"rel": "next", "href": href(selected.last().map(|i| i.id()), false)}));
        }
        if !short || !reverse {
            links.push(serde_json::json!({"rel": "previous", "href": href(selected.first().map(|i| i.id()), true)}));
        }
        if !links.is_empty() {
            out.extend_from_slice(format!(",\"{plural}_links\":").as_bytes());
            serde_json::to_writer(&mut out, &links)
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%3Ab+c").unwrap(), "a:b c");
        assert!(percent_decode("%zz").is_err());
        let q = Query::parse(Some("fields=id&fields=name,mac_address&name=x&name=y")).unwrap();
        assert_eq!(q.fields(), vec!["id", "name", "mac_address"]);
        assert_eq!(q.all("name"), vec!["x", "y"]);
        assert_eq!(
            percent_decode(&percent_encode("ip_address=10.0.0.1 &")).unwrap(),
            "ip_address=10.0.0.1 &"
        );
    }

    #[test]
    fn scalars() {
        assert!(Scalar::Bool(true).matches("True"));
        assert!(!Scalar::Bool(true).matches("false"));
        assert!(Scalar::Int(7).matches("7"));
        assert!(Scalar::Null.matches(""));
        assert!(!Scalar::Str("a").matches("b"));
    }
}
