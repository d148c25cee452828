//! `vswitchctl network|subnet|port|security-group ...`: a small client of
//! the Neutron v2.0 REST API that `vswitchd` serves, with human tables and
//! `--json`. Names or ids are accepted wherever a resource is referred to.
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Where the API is and how to authenticate.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// Neutron API endpoint of vswitchd.
    #[arg(
        long,
        global = true,
        env = "FERROSWITCH_API",
        default_value = "http://127.0.0.1:9696"
    )]
    pub api: String,
    /// X-Auth-Token, when the API requires one.
    #[arg(long, global = true, env = "FERROSWITCH_TOKEN")]
    pub token: Option<String>,
}

pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

/// An API or transport error, as the user should read it.
#[derive(Debug)]
pub struct ClientError(pub String);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Client {
    pub fn new(a: &ApiArgs) -> Client {
        Client {
            base: a.api.trim_end_matches('/').to_owned(),
            token: a.token.clone().unwrap_or_else(|| "notused".into()),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
        let url = format!("{}/v2.0/{path}", self.base);
        let req = self
            .agent
            .request(method, &url)
            .set("X-Auth-Token", &self.token)
            .set("Accept", "application/json");
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match resp {
            Ok(r) if r.status() == 204 => Ok(Value::Null),
            Ok(r) => r
                .into_json()
                .map_err(|e| ClientError(format!("{method} {url}: bad JSON: {e}"))),
            Err(ureq::Error::Status(code, r)) => {
                let body: Value = r.into_json().unwrap_or(Value::Null);
                let msg = body["NeutronError"]["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| body.to_string());
                Err(ClientError(format!("{code}: {msg}")))
            }
            Err(e) => Err(ClientError(format!(
                "{url}: {e} (is vswitchd running with its Neutron API?)"
            ))),
        }
    }

    /// The id of the `kind` resource (plural path, e.g. "networks") named or
    /// identified by `name_or_id`.
    fn resolve(&self, plural: &str, name_or_id: &str) -> Result<String, ClientError> {
        let singular = plural
            .trim_end_matches('s')
            .replace("security-group", "security_group");
        if let Ok(v) = self.call("GET", &format!("{plural}/{name_or_id}"), None) {
            if let Some(id) = v[&singular]["id"].as_str() {
                return Ok(id.to_owned());
            }
        }
        let list = self.call(
            "GET",
            &format!("{plural}?name={}", urlencode(name_or_id)),
            None,
        )?;
        let key = plural.replace('-', "_");
        let items = list[&key].as_array().cloned().unwrap_or_default();
        match items.as_slice() {
            [one] => Ok(one["id"].as_str().unwrap_or_default().to_owned()),
            [] => Err(ClientError(format!(
                "no {singular} named or identified by {name_or_id:?}"
            ))),
            _ => Err(ClientError(format!(
                "{} {singular}s are named {name_or_id:?}: use the id",
                items.len()
            ))),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `key=value,key=value` (openstack client syntax).
fn kv(s: &str) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    for part in s.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or(format!("{part:?}: expected key=value"))?;
        m.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
    }
    Ok(m)
}

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    Create {
        name: String,
        #[arg(long)]
        provider_network_type: Option<String>,
        #[arg(long)]
        provider_physical_network: Option<String>,
        #[arg(long)]
        provider_segment: Option<u32>,
        #[arg(long)]
        mtu: Option<u32>,
        #[arg(long)]
        disable: bool,
    },
    List,
    Show {
        network: String,
    },
    Delete {
        network: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SubnetCmd {
    Create {
        name: String,
        #[arg(long)]
        network: String,
        #[arg(long)]
        subnet_range: String,
        /// An address, or "none".
        #[arg(long)]
        gateway: Option<String>,
        /// start=IP,end=IP (repeatable).
        #[arg(long, value_parser = kv)]
        allocation_pool: Vec<Map<String, Value>>,
        #[arg(long)]
        dns_nameserver: Vec<String>,
        #[arg(long)]
        no_dhcp: bool,
    },
    List,
    Show {
        subnet: String,
    },
    Delete {
        subnet: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PortCmd {
    Create {
        name: String,
        #[arg(long)]
        network: String,
        /// subnet=NAME|ID[,ip-address=IP] (repeatable).
        #[arg(long, value_parser = kv)]
        fixed_ip: Vec<Map<String, Value>>,
        #[arg(long)]
        mac_address: Option<String>,
        #[arg(long)]
        security_group: Vec<String>,
        #[arg(long)]
        no_security_group: bool,
        #[arg(long)]
        disable_port_security: bool,
        /// ip-address=IP[,mac-address=MAC] (repeatable).
        #[arg(long, value_parser = kv)]
        allowed_address: Vec<Map<String, Value>>,
        #[arg(long)]
        vnic_type: Option<String>,
        /// key=value[,key=value] for binding:profile, e.g. pci_slot=0000:3b:02.1.
        #[arg(long, value_parser = kv)]
        binding_profile: Option<Map<String, Value>>,
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        device_id: Option<String>,
        #[arg(long)]
        device_owner: Option<String>,
    },
    Show {
        port: String,
    },
    Set {
        port: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        enable: bool,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
    },
    Delete {
        port: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecurityGroupCmd {
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    List,
    Show {
        group: String,
    },
    Delete {
        group: String,
    },
    /// Rules of a group.
    Rule {
        #[command(subcommand)]
        cmd: RuleCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum RuleCmd {
    Create {
        group: String,
        #[arg(long, conflicts_with = "egress")]
        ingress: bool,
        #[arg(long)]
        egress: bool,
        #[arg(long, default_value = "IPv4")]
        ethertype: String,
        #[arg(long)]
        protocol: Option<String>,
        /// PORT or MIN:MAX.
        #[arg(long)]
        dst_port: Option<String>,
        #[arg(long)]
        remote_ip: Option<String>,
        #[arg(long)]
        remote_group: Option<String>,
    },
    List {
        group: Option<String>,
    },
    Delete {
        rule: String,
    },
}

/// A Neutron command of `vswitchctl`.
pub enum NeutronCommand {
    Network(NetworkCmd),
    Subnet(SubnetCmd),
    Port(PortCmd),
    /// Neutron ports, optionally of one network (`port list --neutron`).
    PortList(Option<String>),
    SecurityGroup(SecurityGroupCmd),
}

fn table(rows: &[Value], cols: &[(&str, &str)]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|(_, k)| match &r[*k] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    Value::Array(a) => a
                        .iter()
                        .map(|x| match x {
                            Value::String(s) => s.clone(),
                            Value::Object(o) => o
                                .values()
                                .map(|v| {
                                    v.as_str()
                                        .map(str::to_owned)
                                        .unwrap_or_else(|| v.to_string())
                                })
                                .collect::<Vec<_>>()
                                .join(" "),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            cells
                .iter()
                .map(|c| c[i].len())
                .max()
                .unwrap_or(0)
                .max(h.len())
        })
        .collect();
    let mut out = String::new();
    let line = |vals: Vec<&str>| -> String {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
            + "\n"
    };
    out += &line(cols.iter().map(|(h, _)| *h).collect());
    for c in &cells {
        out += &line(c.iter().map(String::as_str).collect());
    }
    out
}

fn show(v: &Value) -> String {
    let Some(obj) = v.as_object() else {
        return v.to_string();
    };
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort();
    let w = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    keys.iter()
        .map(|k| {
            let val = match &obj[*k] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            format!("{k:<w$}  {val}\n")
        })
        .collect()
}

const PORT_COLS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("Name", "name"),
    ("MAC Address", "mac_address"),
    ("Fixed IP Addresses", "fixed_ips"),
    ("Status", "status"),
    ("VIF type", "binding:vif_type"),
];

impl NeutronCommand {
    /// Runs the command; returns what to print (a table, or the JSON).
    pub fn run(self, a: &ApiArgs, json: bool) -> Result<String, ClientError> {
        let c = Client::new(a);
        let (result, singular, cols): (Value, &str, &[(&str, &str)]) = match self {
            NeutronCommand::Network(cmd) => {
                const COLS: &[(&str, &str)] = &[
                    ("ID", "id"),
                    ("Name", "name"),
                    ("Type", "provider:network_type"),
                    ("Segment", "provider:segmentation_id"),
                    ("Status", "status"),
                    ("Subnets", "subnets"),
                ];
                match cmd {
                    NetworkCmd::Create {
                        name,
                        provider_network_type,
                        provider_physical_network,
                        provider_segment,
                        mtu,
                        disable,
                    } => {
                        let mut n = json!({"name": name, "admin_state_up": !disable});
                        if let Some(t) = provider_network_type {
                            n["provider:network_type"] = json!(t);
                        }
                        if let Some(p) = provider_physical_network {
                            n["provider:physical_network"] = json!(p);
                        }
                        if let Some(s) = provider_segment {
                            n["provider:segmentation_id"] = json!(s);
                        }
                        if let Some(m) = mtu {
                            n["mtu"] = json!(m);
                        }
                        (
                            c.call("POST", "networks", Some(json!({"network": n})))?,
                            "network",
                            COLS,
                        )
                    }
                    NetworkCmd::List => (c.call("GET", "networks", None)?, "networks", COLS),
                    NetworkCmd::Show { network } => {
                        let id = c.resolve("networks", &network)?;
                        (
                            c.call("GET", &format!("networks/{id}"), None)?,
                            "network",
                            COLS,
                        )
                    }
                    NetworkCmd::Delete { network } => {
                        let id = c.resolve("networks", &network)?;
                        (c.call("DELETE", &format!("networks/{id}"), None)?, "", COLS)
                    }
                }
            }
            NeutronCommand::Subnet(cmd) => {
                const COLS: &[(&str, &str)] = &[
                    ("ID", "id"),
                    ("Name", "name"),
                    ("Network", "network_id"),
                    ("Subnet", "cidr"),
                    ("Gateway", "gateway_ip"),
                ];
                match cmd {
                    SubnetCmd::Create {
                        name,
                        network,
                        subnet_range,
                        gateway,
                        allocation_pool,
                        dns_nameserver,
                        no_dhcp,
                    } => {
                        let net = c.resolve("networks", &network)?;
                        let version = if subnet_range.contains(':') { 6 } else { 4 };
                        let mut s = json!({"name": name, "network_id": net, "cidr": subnet_range, "ip_version": version, "enable_dhcp": !no_dhcp});
                        match gateway.as_deref() {
                            Some("none") => s["gateway_ip"] = Value::Null,
                            Some(g) => s["gateway_ip"] = json!(g),
                            None => {}
                        }
                        if !allocation_pool.is_empty() {
                            s["allocation_pools"] = json!(allocation_pool);
                        }
                        if !dns_nameserver.is_empty() {
                            s["dns_nameservers"] = json!(dns_nameserver);
                        }
                        (
                            c.call("POST", "subnets", Some(json!({"subnet": s})))?,
                            "subnet",
                            COLS,
                        )
                    }
                    SubnetCmd::List => (c.call("GET", "subnets", None)?, "subnets", COLS),
                    SubnetCmd::Show { subnet } => {
                        let id = c.resolve("subnets", &subnet)?;
                        (
                            c.call("GET", &format!("subnets/{id}"), None)?,
                            "subnet",
                            COLS,
                        )
                    }
                    SubnetCmd::Delete { subnet } => {
                        let id = c.resolve("subnets", &subnet)?;
                        (c.call("DELETE", &format!("subnets/{id}"), None)?, "", COLS)
                    }
                }
            }
            NeutronCommand::PortList(network) => {
                let q = match network {
                    Some(n) => format!("ports?network_id={}", c.resolve("networks", &n)?),
                    None => "ports".into(),
                };
                (c.call("GET", &q, None)?, "ports", PORT_COLS)
            }
            NeutronCommand::Port(cmd) => {
                const COLS: &[(&str, &str)] = PORT_COLS;
                match cmd {
                    PortCmd::Create {
                        name,
                        network,
                        fixed_ip,
                        mac_address,
                        security_group,
                        no_security_group,
                        disable_port_security,
                        allowed_address,
                        vnic_type,
                        binding_profile,
                        host,
                        device_id,
                        device_owner,
                    } => {
                        let net = c.resolve("networks", &network)?;
                        let mut p = json!({"name": name, "network_id": net});
                        if !fixed_ip.is_empty() {
                            let mut ips = Vec::new();
                            for f in fixed_ip {
                                let mut o = Map::new();
                                if let Some(s) = f.get("subnet").and_then(Value::as_str) {
                                    o.insert("subnet_id".into(), json!(c.resolve("subnets", s)?));
                                }
                                if let Some(ip) = f.get("ip-address") {
                                    o.insert("ip_address".into(), ip.clone());
                                }
                                ips.push(Value::Object(o));
                            }
                            p["fixed_ips"] = json!(ips);
                        }
                        if let Some(m) = mac_address {
                            p["mac_address"] = json!(m);
                        }
                        if no_security_group {
                            p["security_groups"] = json!([]);
                        } else if !security_group.is_empty() {
                            let ids: Result<Vec<String>, ClientError> = security_group
                                .iter()
                                .map(|g| c.resolve("security-groups", g))
                                .collect();
                            p["security_groups"] = json!(ids?);
                        }
                        if disable_port_security {
                            p["port_security_enabled"] = json!(false);
                        }
                        if !allowed_address.is_empty() {
                            let pairs: Vec<Value> = allowed_address
                                .iter()
                                .map(|m| {
                                    let mut o = Map::new();
                                    if let Some(ip) = m.get("ip-address") {
                                        o.insert("ip_address".into(), ip.clone());
                                    }
                                    if let Some(mac) = m.get("mac-address") {
                                        o.insert("mac_address".into(), mac.clone());
                                    }
                                    Value::Object(o)
                                })
                                .collect();
                            p["allowed_address_pairs"] = json!(pairs);
                        }
                        if let Some(v) = vnic_type {
                            p["binding:vnic_type"] = json!(v);
                        }
                        if let Some(b) = binding_profile {
                            p["binding:profile"] = Value::Object(b);
                        }
                        if let Some(h) = host {
                            p["binding:host_id"] = json!(h);
                        }
                        if let Some(d) = device_id {
                            p["device_id"] = json!(d);
                        }
                        if let Some(d) = device_owner {
                            p["device_owner"] = json!(d);
                        }
                        (
                            c.call("POST", "ports", Some(json!({"port": p})))?,
                            "port",
                            COLS,
                        )
                    }
                    PortCmd::Show { port } => {
                        let id = c.resolve("ports", &port)?;
                        (c.call("GET", &format!("ports/{id}"), None)?, "port", COLS)
                    }
                    PortCmd::Set {
                        port,
                        name,
                        host,
                        enable,
                        disable,
                    } => {
                        let id = c.resolve("ports", &port)?;
                        let mut p = Map::new();
                        if let Some(n) = name {
                            p.insert("name".into(), json!(n));
                        }
                        if let Some(h) = host {
                            p.insert("binding:host_id".into(), json!(h));
                        }
                        if enable {
                            p.insert("admin_state_up".into(), json!(true));
                        }
                        if disable {
                            p.insert("admin_state_up".into(), json!(false));
                        }
                        (
                            c.call("PUT", &format!("ports/{id}"), Some(json!({"port": p})))?,
                            "port",
                            COLS,
                        )
                    }
                    PortCmd::Delete { port } => {
                        let id = c.resolve("ports", &port)?;
                        (c.call("DELETE", &format!("ports/{id}"), None)?, "", COLS)
                    }
                }
            }
            NeutronCommand::SecurityGroup(cmd) => {
                const COLS: &[(&str, &str)] = &[
                    ("ID", "id"),
                    ("Name", "name"),
                    ("Description", "description"),
                ];
                const RULE_COLS: &[(&str, &str)] = &[
                    ("ID", "id"),
                    ("Direction", "direction"),
                    ("Ethertype", "ethertype"),
                    ("Protocol", "protocol"),
                    ("Port min", "port_range_min"),
                    ("Port max", "port_range_max"),
                    ("Remote IP", "remote_ip_prefix"),
                    ("Remote group", "remote_group_id"),
                ];
                match cmd {
                    SecurityGroupCmd::Create { name, description } => {
                        let mut g = json!({"name": name});
                        if let Some(d) = description {
                            g["description"] = json!(d);
                        }
                        (
                            c.call(
                                "POST",
                                "security-groups",
                                Some(json!({"security_group": g})),
                            )?,
                            "security_group",
                            COLS,
                        )
                    }
                    SecurityGroupCmd::List => (
                        c.call("GET", "security-groups", None)?,
                        "security_groups",
                        COLS,
                    ),
                    SecurityGroupCmd::Show { group } => {
                        let id = c.resolve("security-groups", &group)?;
                        (
                            c.call("GET", &format!("security-groups/{id}"), None)?,
                            "security_group",
                            COLS,
                        )
                    }
                    SecurityGroupCmd::Delete { group } => {
                        let id = c.resolve("security-groups", &group)?;
                        (
                            c.call("DELETE", &format!("security-groups/{id}"), None)?,
                            "",
                            COLS,
                        )
                    }
                    SecurityGroupCmd::Rule {
                        cmd:
                            RuleCmd::Create {
                                group,
                                ingress: _,
                                egress,
                                ethertype,
                                protocol,
                                dst_port,
                                remote_ip,
                                remote_group,
                            },
                    } => {
                        let gid = c.resolve("security-groups", &group)?;
                        let mut r = json!({"security_group_id": gid, "direction": if egress { "egress" } else { "ingress" }, "ethertype": ethertype});
                        if let Some(p) = protocol {
                            r["protocol"] = json!(p);
                        }
                        if let Some(range) = dst_port {
                            let (lo, hi) = range.split_once(':').unwrap_or((&range, &range));
                            let lo: u32 = lo.parse().map_err(|_| {
                                ClientError(format!("--dst-port: {range:?} is not PORT or MIN:MAX"))
                            })?;
                            let hi: u32 = hi.parse().map_err(|_| {
                                ClientError(format!("--dst-port: {range:?} is not PORT or MIN:MAX"))
                            })?;
                            r["port_range_min"] = json!(lo);
                            r["port_range_max"] = json!(hi);
                        }
                        if let Some(ip) = remote_ip {
                            r["remote_ip_prefix"] = json!(ip);
                        }
                        if let Some(g) = remote_group {
                            r["remote_group_id"] = json!(c.resolve("security-groups", &g)?);
                        }
                        (
                            c.call(
                                "POST",
                                "security-group-rules",
                                Some(json!({"security_group_rule": r})),
                            )?,
                            "security_group_rule",
                            RULE_COLS,
                        )
                    }
                    SecurityGroupCmd::Rule {
                        cmd: RuleCmd::List { group },
                    } => {
                        let q = match group {
                            Some(g) => format!(
                                "security-group-rules?security_group_id={}",
                                c.resolve("security-groups", &g)?
                            ),
                            None => "security-group-rules".into(),
                        };
                        (c.call("GET", &q, None)?, "security_group_rules", RULE_COLS)
                    }
                    SecurityGroupCmd::Rule {
                        cmd: RuleCmd::Delete { rule },
                    } => (
                        c.call("DELETE", &format!("security-group-rules/{rule}"), None)?,
                        "",
                        RULE_COLS,
                    ),
                }
            }
        };
        if singular.is_empty() {
            return Ok(String::new());
        }
        let body = &result[singular];
        Ok(if json {
            format!("{body}\n")
        } else if let Some(rows) = body.as_array() {
            table(rows, cols)
        } else {
            show(body)
        })
    }
}
