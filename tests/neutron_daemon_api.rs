//! The Neutron API of the running daemon: `vswitchd` with a `[neutron]`
//! section and its real SQLite file, spoken to over plain HTTP/1.1 and
//! through `vswitchctl`. Complements control/neutron/tests/neutron/api.rs (an
//! in-process server): here every request crosses the daemon's own API
//! thread, the state survives the daemon's stop/start and a SIGKILL, and
//! the dataplane (the uplink's VLAN translations) follows what was restored.
mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `common::neutron_config` without the switch's DHCP server: these tests
/// count ports and addresses as a Neutron without a DHCP agent has them
/// (the `network:dhcp` port is tested in control/neutron/tests/neutron/dhcp.rs
/// and tests/namespaces.rs).
fn api_config(dir: &TempDir, tag: &str, api: u16, metrics: u16) -> String {
    neutron_config(dir, tag, api, metrics).replacen("[neutron]\n", "[neutron]\ndhcp = false\n", 1)
}

const HOST: &str = "compute-1";
const UNKNOWN: &str = "0c0d4dd4-0000-4000-8000-000000000000";

/// The daemon's Neutron API on loopback.
#[derive(Clone, Copy)]
struct Api(u16);

impl Api {
    /// Sends `body` as is; the reply parsed (Null when empty).
    fn raw(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, text) = http(self.0, method, path, body);
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
        };
        (status, v)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.raw(method, path, body.map(|b| b.to_string()).as_deref())
    }

    fn get(&self, path: &str) -> Value {
        let (s, v) = self.call("GET", path, None);
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    /// POST `{key: body}` to `/v2.0/{coll}`: 201 and `{key: {...}}`; returns
    /// the object.
    fn create(&self, coll: &str, key: &str, body: Value) -> Value {
        let (s, v) = self.call("POST", &format!("/v2.0/{coll}"), Some(json!({ key: body })));
        assert_eq!(s, 201, "POST {coll}: {v}");
        let obj = v.as_object().unwrap_or_else(|| panic!("{v}"));
        assert_eq!(obj.len(), 1, "{{\"{key}\": {{...}}}} expected: {v}");
        assert!(v[key]["id"].is_string(), "{v}");
        v[key].clone()
    }

    /// PUT `{key: body}`: 200; returns the updated object.
    fn update(&self, coll: &str, key: &str, id: &str, body: Value) -> Value {
        let (s, v) = self.call(
            "PUT",
            &format!("/v2.0/{coll}/{id}"),
            Some(json!({ key: body })),
        );
        assert_eq!(s, 200, "PUT {coll}/{id}: {v}");
        assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
        v[key].clone()
    }

    /// DELETE: 204 with an empty body, then GET and DELETE are 404.
    fn delete(&self, coll: &str, id: &str) {
        let path = format!("/v2.0/{coll}/{id}");
        let (s, text) = http(self.0, "DELETE", &path, None);
        assert_eq!(s, 204, "DELETE {path}: {text}");
        assert_eq!(text, "", "204 has no body");
        let e = self.fails("GET", &path, None, 404);
        assert!(e["type"].as_str().unwrap().ends_with("NotFound"), "{e}");
        assert!(e["message"].as_str().unwrap().contains(id), "{e}");
        self.fails("DELETE", &path, None, 404);
    }

    /// A request that must fail with `status`: returns the NeutronError.
    fn fails(&self, method: &str, path: &str, body: Option<&str>, status: u16) -> Value {
        let (s, v) = self.raw(method, path, body);
        assert_eq!(s, status, "{method} {path} {body:?}: {v}");
        neutron_error(&v)
    }

    /// Every collection, each sorted by id: what "nothing changed" compares.
    fn snapshot(&self) -> BTreeMap<&'static str, Value> {
        [
            ("networks", "networks"),
            ("subnets", "subnets"),
            ("ports", "ports"),
            ("security-groups", "security_groups"),
            ("security-group-rules", "security_group_rules"),
        ]
        .into_iter()
        .map(|(path, key)| (key, sorted(&self.get(&format!("/v2.0/{path}"))[key])))
        .collect()
    }
}

/// `{"NeutronError": {"type", "message", "detail"}}` and nothing else.
fn neutron_error(v: &Value) -> Value {
    let e = v["NeutronError"].clone();
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    assert!(
        e["type"].is_string() && e["message"].is_string() && e["detail"].is_string(),
        "not a NeutronError: {v}"
    );
    assert_eq!(e.as_object().unwrap().len(), 3, "{v}");
    e
}

fn sorted(list: &Value) -> Value {
    let mut items = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .clone();
    items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Value::Array(items)
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

fn ids(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|x| s(&x["id"]))
        .collect()
}

fn ipv4(v: &Value) -> u32 {
    u32::from(s(v).parse::<Ipv4Addr>().unwrap())
}

/// Whether `ip` is a host address of `cidr` (neither network nor broadcast).
fn host_in(cidr: &str, ip: &str) -> bool {
    let (net, len) = cidr.split_once('/').unwrap();
    let net = u32::from(net.parse::<Ipv4Addr>().unwrap());
    let len: u32 = len.parse().unwrap();
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    let ip = u32::from(ip.parse::<Ipv4Addr>().unwrap());
    ip & mask == net && ip != net && ip != net | !mask
}

fn uplink_translations(sw: &Switch) -> Vec<(u64, u64)> {
    let ports = ctl_json(sw, None, &["port", "list"]);
    let up = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "uplink")
        .unwrap_or_else(|| panic!("no uplink: {ports}"))["vlan_translations"]
        .clone();
    up.as_array()
        .unwrap_or_else(|| panic!("vlan_translations: {up}"))
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
        .collect()
}

/// One (segmentation id, local VLAN) pair per VLAN network of physnet1,
/// local VLANs distinct.
fn assert_translations_match(sw: &Switch, api: Api) {
    let nets = api.get("/v2.0/networks")["networks"].clone();
    let mut want: Vec<u64> = nets
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["provider:network_type"] == "vlan" && n["provider:physical_network"] == "physnet1"
        })
        .map(|n| n["provider:segmentation_id"].as_u64().unwrap())
        .collect();
    want.sort();
    let pairs = uplink_translations(sw);
    let mut ext: Vec<u64> = pairs.iter().map(|p| p.0).collect();
    ext.sort();
    assert_eq!(ext, want, "uplink translations {pairs:?}");
    let locals: HashSet<u64> = pairs.iter().map(|p| p.1).collect();
    assert_eq!(locals.len(), pairs.len(), "local VLANs shared: {pairs:?}");
    assert!(
        locals.iter().all(|l| (1..4095).contains(l)),
        "local VLANs out of range: {pairs:?}"
    );
}

#[test]
fn every_resource_crud_through_the_daemon() {
    let _g = serial();
    let started = Instant::now();
    let dir = TempDir::new("ndapi-crud");
    let (port, metrics) = (free_port(), free_port());
    let sw = Switch::start(&dir, &api_config(&dir, "ndapi-crud", port, metrics));
    let api = Api(port);

    // Version discovery through the daemon.
    let v = api.get("/");
    assert_eq!(v["versions"][0]["id"], "v2.0", "{v}");

    // --- networks ---
    let net = api.create("networks", "network", json!({"name": "crud-net"}));
    let nid = s(&net["id"]);
    assert_eq!(net["name"], "crud-net");
    assert_eq!(net["status"], "ACTIVE");
    assert_eq!(net["admin_state_up"], true);
    assert_eq!(net["provider:network_type"], "vlan");
    assert_eq!(net["provider:physical_network"], "physnet1");
    let seg = net["provider:segmentation_id"].as_u64().unwrap();
    assert!((3000..=3099).contains(&seg), "tenant VLAN {seg}");
    assert_eq!(net["revision_number"], 1);
    assert_eq!(net["subnets"], json!([]));
    assert_eq!(
        api.get(&format!("/v2.0/networks/{nid}")),
        json!({ "network": net.clone() })
    );
    let listed = api.get("/v2.0/networks?name=crud-net");
    assert_eq!(listed, json!({"networks": [net.clone()]}));
    assert_eq!(api.get("/v2.0/networks?name=nope"), json!({"networks": []}));
    assert_eq!(
        api.get("/v2.0/networks?name=crud-net&fields=id&fields=name"),
        json!({"networks": [{"id": nid, "name": "crud-net"}]})
    );
    assert_eq!(
        api.get(&format!(
            "/v2.0/networks/{nid}?fields=provider:segmentation_id"
        )),
        json!({"network": {"provider:segmentation_id": seg}})
    );
    let u = api.update(
        "networks",
        "network",
        &nid,
        json!({"name": "crud-net2", "mtu": 1400, "description": "x"}),
    );
    assert_eq!(
        (
            &u["name"],
            &u["mtu"],
            &u["description"],
            &u["revision_number"]
        ),
        (&json!("crud-net2"), &json!(1400), &json!("x"), &json!(2))
    );
    assert_eq!(u["provider:segmentation_id"], seg, "the VLAN stays");
    assert_eq!(
        api.get("/v2.0/networks?name=crud-net2&fields=id")["networks"],
        json!([{"id": nid}])
    );
    // The uplink carries the tenant VLAN.
    assert_eq!(uplink_translations(&sw).len(), 1);
    assert_eq!(uplink_translations(&sw)[0].0, seg);

    // --- subnets ---
    let sub = api.create(
        "subnets",
        "subnet",
        json!({"network_id": nid, "cidr": "10.20.0.0/24", "ip_version": 4, "name": "crud-sub"}),
    );
    let sid = s(&sub["id"]);
    assert_eq!(sub["network_id"], nid.as_str());
    assert_eq!(sub["cidr"], "10.20.0.0/24");
    assert_eq!(sub["gateway_ip"], "10.20.0.1");
    assert_eq!(
        sub["allocation_pools"],
        json!([{"start": "10.20.0.2", "end": "10.20.0.254"}])
    );
    assert_eq!(
        api.get(&format!("/v2.0/subnets/{sid}")),
        json!({ "subnet": sub.clone() })
    );
    assert_eq!(
        api.get(&format!("/v2.0/networks/{nid}"))["network"]["subnets"],
        json!([sid])
    );
    assert_eq!(
        api.get(&format!("/v2.0/subnets?network_id={nid}")),
        json!({"subnets": [sub.clone()]})
    );
    assert_eq!(
        api.get(&format!(
            "/v2.0/subnets?network_id={nid}&fields=id&fields=cidr"
        )),
        json!({"subnets": [{"id": sid, "cidr": "10.20.0.0/24"}]})
    );
    assert_eq!(
        api.get(&format!("/v2.0/subnets?network_id={UNKNOWN}")),
        json!({"subnets": []})
    );
    let u = api.update(
        "subnets",
        "subnet",
        &sid,
        json!({"name": "crud-sub2", "dns_nameservers": ["10.20.0.53"]}),
    );
    assert_eq!(u["name"], "crud-sub2");
    assert_eq!(u["dns_nameservers"], json!(["10.20.0.53"]));
    // Subnets start at revision 0, as in Neutron.
    assert_eq!(u["revision_number"], 1);
    // The CIDR is not updatable (as in Neutron).
    let e = api.fails(
        "PUT",
        &format!("/v2.0/subnets/{sid}"),
        Some(r#"{"subnet": {"cidr": "10.21.0.0/24"}}"#),
        400,
    );
    assert!(s(&e["message"]).contains("cidr"), "{e}");

    // --- security groups ---
    let sg = api.create(
        "security-groups",
        "security_group",
        json!({"name": "crud-sg", "description": "crud"}),
    );
    let gid = s(&sg["id"]);
    assert_eq!(sg["description"], "crud");
    let rules = sg["security_group_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "Neutron's two default egress rules: {sg}");
    assert!(
        rules.iter().all(|r| r["direction"] == "egress"
            && r["protocol"].is_null()
            && r["remote_ip_prefix"].is_null()
            && r["remote_group_id"].is_null()
            && r["port_range_min"].is_null()
            && r["security_group_id"] == gid.as_str()),
        "{sg}"
    );
    let eth: BTreeSet<&str> = rules
        .iter()
        .map(|r| r["ethertype"].as_str().unwrap())
        .collect();
    assert_eq!(eth, BTreeSet::from(["IPv4", "IPv6"]));
    assert_eq!(
        api.get(&format!("/v2.0/security-groups/{gid}")),
        json!({ "security_group": sg.clone() })
    );
    assert_eq!(
        api.get("/v2.0/security-groups?name=crud-sg"),
        json!({"security_groups": [sg.clone()]})
    );
    assert_eq!(
        api.get("/v2.0/security-groups?name=crud-sg&fields=id&fields=description"),
        json!({"security_groups": [{"id": gid, "description": "crud"}]})
    );
    let u = api.update(
        "security-groups",
        "security_group",
        &gid,
        json!({"name": "crud-sg2", "description": "crud2"}),
    );
    assert_eq!(
        (&u["name"], &u["description"]),
        (&json!("crud-sg2"), &json!("crud2"))
    );

    // --- security group rules ---
    let rule = api.create(
        "security-group-rules",
        "security_group_rule",
        json!({"security_group_id": gid, "direction": "ingress", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8"}),
    );
    let rid = s(&rule["id"]);
    assert_eq!(rule["ethertype"], "IPv4");
    assert_eq!(rule["protocol"], "tcp");
    assert_eq!(
        (&rule["port_range_min"], &rule["port_range_max"]),
        (&json!(22), &json!(22))
    );
    assert_eq!(
        api.get(&format!("/v2.0/security-group-rules/{rid}")),
        json!({ "security_group_rule": rule.clone() })
    );
    let of_g = api.get(&format!(
        "/v2.0/security-group-rules?security_group_id={gid}"
    ));
    assert_eq!(
        of_g["security_group_rules"].as_array().unwrap().len(),
        3,
        "{of_g}"
    );
    assert_eq!(
        api.get(&format!(
            "/v2.0/security-group-rules?security_group_id={gid}&direction=ingress&fields=id&fields=port_range_max"
        )),
        json!({"security_group_rules": [{"id": rid, "port_range_max": 22}]})
    );
    assert_eq!(
        api.get(&format!("/v2.0/security-groups/{gid}"))["security_group"]["security_group_rules"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let u = api.update(
        "security-group-rules",
        "security_group_rule",
        &rid,
        json!({"description": "ssh"}),
    );
    assert_eq!(u["description"], "ssh");
    // Anything else of a rule is immutable.
    let e = api.fails(
        "PUT",
        &format!("/v2.0/security-group-rules/{rid}"),
        Some(r#"{"security_group_rule": {"port_range_max": 23}}"#),
        400,
    );
    assert!(s(&e["message"]).contains("port_range_max"), "{e}");

    // --- ports ---
    let p = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "name": "crud-port", "device_id": "vm-crud",
            "binding:host_id": HOST, "security_groups": [gid]}),
    );
    let pid = s(&p["id"]);
    assert_eq!(p["network_id"], nid.as_str());
    assert_eq!(p["status"], "DOWN");
    assert_eq!(p["security_groups"], json!([gid]));
    let mac = s(&p["mac_address"]);
    assert!(mac.starts_with("fa:16:3e:"), "{mac}");
    assert_eq!(mac.len(), 17, "{mac}");
    let fixed = p["fixed_ips"].as_array().unwrap();
    assert_eq!(fixed.len(), 1, "{p}");
    assert_eq!(fixed[0]["subnet_id"], sid.as_str());
    let ip = s(&fixed[0]["ip_address"]);
    assert!(host_in("10.20.0.0/24", &ip), "{ip} outside 10.20.0.0/24");
    assert_ne!(ip, "10.20.0.1", "the gateway is not handed out");
    assert_eq!(p["binding:host_id"], HOST);
    assert_eq!(p["binding:vif_type"], "vhostuser");
    assert_eq!(
        p["binding:vif_details"]["vhostuser_socket"],
        format!("{}/vhu{}", dir.path("vhu").display(), &pid[..11])
    );
    assert_eq!(p["binding:vif_details"]["vhostuser_mode"], "server");
    assert_eq!(
        api.get(&format!("/v2.0/ports/{pid}")),
        json!({ "port": p.clone() })
    );
    assert_eq!(
        api.get("/v2.0/ports?device_id=vm-crud"),
        json!({"ports": [p.clone()]})
    );
    assert_eq!(
        api.get("/v2.0/ports?device_id=vm-crud&fields=id&fields=mac_address"),
        json!({"ports": [{"id": pid, "mac_address": mac}]})
    );
    assert_eq!(
        api.get(&format!("/v2.0/ports?network_id={nid}&fields=id"))["ports"],
        json!([{"id": pid}])
    );
    // Another port, for a host with no switch of ours: binding_failed, the
    // next address.
    let q = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "binding:host_id": "compute-9"}),
    );
    assert_eq!(q["binding:vif_type"], "binding_failed");
    let qip = s(&q["fixed_ips"][0]["ip_address"]);
    assert!(host_in("10.20.0.0/24", &qip) && qip != ip, "{q}");
    assert_ne!(q["mac_address"], p["mac_address"]);
    assert!(
        q["security_groups"].as_array().unwrap().len() == 1
            && q["security_groups"][0] != gid.as_str(),
        "the project's default group: {q}"
    );
    assert_eq!(
        api.get("/v2.0/ports?device_id=vm-crud")["ports"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let u = api.update(
        "ports",
        "port",
        &pid,
        json!({"name": "crud-port2", "device_id": "vm-crud2", "admin_state_up": false}),
    );
    assert_eq!(u["name"], "crud-port2");
    assert_eq!(u["admin_state_up"], false);
    assert_eq!(u["mac_address"], mac.as_str(), "the MAC stays");
    assert_eq!(u["fixed_ips"], p["fixed_ips"], "the address stays");
    assert_eq!(u["revision_number"], 2);
    assert_eq!(
        api.get("/v2.0/ports?device_id=vm-crud"),
        json!({"ports": []})
    );
    assert_eq!(
        api.get("/v2.0/ports?device_id=vm-crud2&fields=id")["ports"],
        json!([{"id": pid}])
    );
    // Unbinding it.
    let u = api.update("ports", "port", &pid, json!({"binding:host_id": ""}));
    assert_eq!(u["binding:vif_type"], "unbound");

    // --- deletes, children first ---
    api.delete("ports", &pid);
    api.delete("ports", &s(&q["id"]));
    api.delete("security-group-rules", &rid);
    assert_eq!(
        api.get(&format!("/v2.0/security-groups/{gid}"))["security_group"]["security_group_rules"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    api.delete("security-groups", &gid);
    assert_eq!(
        api.get(&format!(
            "/v2.0/security-group-rules?security_group_id={gid}"
        )),
        json!({"security_group_rules": []}),
        "a group's rules go with it"
    );
    api.delete("subnets", &sid);
    assert_eq!(
        api.get(&format!("/v2.0/networks/{nid}"))["network"]["subnets"],
        json!([])
    );
    api.delete("networks", &nid);
    assert_eq!(api.get("/v2.0/networks"), json!({"networks": []}));
    assert_eq!(api.get("/v2.0/ports"), json!({"ports": []}));
    assert_eq!(api.get("/v2.0/subnets"), json!({"subnets": []}));
    assert!(uplink_translations(&sw).is_empty());
    assert!(sw.stop().success());
    eprintln!("crud: {:?}", started.elapsed());
}

#[test]
fn every_bad_input_is_refused_naming_the_field_and_nothing_is_persisted() {
    let _g = serial();
    let started = Instant::now();
    let dir = TempDir::new("ndapi-bad");
    let (port, metrics) = (free_port(), free_port());
    let cfg = api_config(&dir, "ndapi-bad", port, metrics);
    let sw = Switch::start(&dir, &cfg);
    let api = Api(port);

    let n = api.create("networks", "network", json!({"name": "n"}));
    let nid = s(&n["id"]);
    let sub = api.create(
        "subnets",
        "subnet",
        json!({"network_id": nid, "cidr": "10.30.0.0/24", "ip_version": 4}),
    );
    let sid = s(&sub["id"]);
    let p = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{"subnet_id": sid, "ip_address": "10.30.0.10"}]}),
    );
    let pid = s(&p["id"]);
    // A /29 whose pool holds 2 addresses, both taken.
    let small = api.create("networks", "network", json!({"name": "small"}));
    let small_id = s(&small["id"]);
    let small_sub = api.create(
        "subnets",
        "subnet",
        json!({"network_id": small_id, "cidr": "10.31.0.0/29", "ip_version": 4,
            "allocation_pools": [{"start": "10.31.0.2", "end": "10.31.0.3"}]}),
    );
    let small_sid = s(&small_sub["id"]);
    for _ in 0..2 {
        let q = api.create("ports", "port", json!({"network_id": small_id}));
        let ip = s(&q["fixed_ips"][0]["ip_address"]);
        assert!(ip == "10.31.0.2" || ip == "10.31.0.3", "{q}");
    }
    let g = api.create("security-groups", "security_group", json!({"name": "g"}));
    let gid = s(&g["id"]);

    let before = api.snapshot();
    let ctl_before = sorted(&ctl_json(&sw, Some(port), &["network", "list"]));
    assert_eq!(ctl_before, before["networks"]);

    let port_body = |extra: Value| {
        let mut b = json!({"network_id": nid});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        json!({ "port": b }).to_string()
    };
    let subnet_body = |cidr: &str| {
        json!({"subnet": {"network_id": nid, "cidr": cidr, "ip_version": 4}}).to_string()
    };
    let vlan_net = |seg: i64| {
        json!({"network": {"provider:network_type": "vlan",
            "provider:physical_network": "physnet1", "provider:segmentation_id": seg}})
        .to_string()
    };
    // (method, path, body, status, type (or ""), what the message names)
    let cases: Vec<(&str, String, String, u16, &str, &str)> = vec![
        // Invalid CIDRs.
        ("POST", "/v2.0/subnets".into(), subnet_body("10.40.0.0/33"), 400, "InvalidInput", "cidr"),
        ("POST", "/v2.0/subnets".into(), subnet_body("banana"), 400, "HTTPBadRequest", "cidr"),
        ("POST", "/v2.0/subnets".into(), subnet_body("300.1.0.0/16"), 400, "InvalidInput", "cidr"),
        // Overlapping the network's subnet.
        ("POST", "/v2.0/subnets".into(), subnet_body("10.30.0.128/25"), 400, "", "cidr"),
        // Invalid MACs.
        ("POST", "/v2.0/ports".into(), port_body(json!({"mac_address": "fa:16:3e:zz:00:01"})), 400, "HTTPBadRequest", "mac_address"),
        ("POST", "/v2.0/ports".into(), port_body(json!({"mac_address": "fa:16:3e:00:01"})), 400, "HTTPBadRequest", "mac_address"),
        ("POST", "/v2.0/ports".into(), port_body(json!({"mac_address": "01:00:5e:00:00:01"})), 400, "HTTPBadRequest", "mac_address"),
        // Duplicate MAC on the network.
        ("POST", "/v2.0/ports".into(), port_body(json!({"mac_address": "fa:16:3e:00:00:01"})), 409, "MacAddressInUse", "mac_address"),
        ("POST", "/v2.0/ports".into(), port_body(json!({"mac_address": "FA:16:3E:00:00:01"})), 409, "MacAddressInUse", "mac_address"),
        // Invalid IP.
        ("POST", "/v2.0/ports".into(), port_body(json!({"fixed_ips": [{"subnet_id": sid, "ip_address": "10.30.0.300"}]})), 400, "HTTPBadRequest", "ip_address"),
        ("POST", "/v2.0/ports".into(), port_body(json!({"fixed_ips": [{"ip_address": "banana"}]})), 400, "HTTPBadRequest", "ip_address"),
        // IP outside the subnet / the network.
        ("POST", "/v2.0/ports".into(), port_body(json!({"fixed_ips": [{"subnet_id": sid, "ip_address": "10.99.0.5"}]})), 400, "InvalidIpForSubnet", "ip_address"),
        ("POST", "/v2.0/ports".into(), port_body(json!({"fixed_ips": [{"ip_address": "10.99.0.5"}]})), 400, "InvalidIpForNetwork", "10.99.0.5"),
        ("POST", "/v2.0/ports".into(), port_body(json!({"fixed_ips": [{"subnet_id": sid, "ip_address": "10.30.0.255"}]})), 400, "InvalidInput", "ip_address"),
        // IP already taken (alone, and second of two after a free one).
        ("POST", "/v2.0/ports".into(), port_body(json!({"fixed_ips": [{"subnet_id": sid, "ip_address": "10.30.0.10"}]})), 409, "IpAddressAlreadyAllocated", "ip_address"),
        (
            "POST",
            "/v2.0/ports".into(),
            port_body(json!({"fixed_ips": [{"subnet_id": sid, "ip_address": "10.30.0.11"}, {"subnet_id": sid, "ip_address": "10.30.0.10"}]})),
            409,
            "IpAddressAlreadyAllocated",
            "fixed_ips[1].ip_address",
        ),
        // The exhausted pool.
        (
            "POST",
            "/v2.0/ports".into(),
            json!({"port": {"network_id": small_id}}).to_string(),
            409,
            "IpAddressGenerationFailure",
            "fixed_ips",
        ),
        (
            "POST",
            "/v2.0/ports".into(),
            json!({"port": {"network_id": small_id, "fixed_ips": [{"subnet_id": small_sid}]}}).to_string(),
            409,
            "IpAddressGenerationFailure",
            "subnet_id",
        ),
        // Unknown network / subnet / security group.
        ("POST", "/v2.0/ports".into(), json!({"port": {"network_id": UNKNOWN}}).to_string(), 404, "NetworkNotFound", "network_id"),
        ("POST", "/v2.0/ports".into(), json!({"port": {"network_id": "banana"}}).to_string(), 400, "InvalidInput", "network_id"),
        ("POST", "/v2.0/ports".into(), port_body(json!({"fixed_ips": [{"subnet_id": UNKNOWN}]})), 404, "SubnetNotFound", "subnet_id"),
        ("POST", "/v2.0/ports".into(), port_body(json!({"security_groups": [UNKNOWN]})), 404, "SecurityGroupNotFound", "security_groups"),
        (
            "POST",
            "/v2.0/subnets".into(),
            json!({"subnet": {"network_id": UNKNOWN, "cidr": "10.43.0.0/24", "ip_version": 4}}).to_string(),
            404,
            "NetworkNotFound",
            "network_id",
        ),
        (
            "POST",
            "/v2.0/security-group-rules".into(),
            json!({"security_group_rule": {"security_group_id": UNKNOWN, "direction": "ingress"}}).to_string(),
            404,
            "SecurityGroupNotFound",
            "security_group_id",
        ),
        (
            "POST",
            "/v2.0/security-group-rules".into(),
            json!({"security_group_rule": {"security_group_id": gid, "direction": "ingress", "remote_group_id": UNKNOWN}}).to_string(),
            404,
            "SecurityGroupNotFound",
            "remote_group_id",
        ),
        (
            "POST",
            "/v2.0/security-group-rules".into(),
            json!({"security_group_rule": {"security_group_id": gid, "direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}}).to_string(),
            400,
            "SecurityGroupInvalidPortRange",
            "port_range_min",
        ),
        // VLAN ids: not a VID, an unknown physnet, a VID in use.
        ("POST", "/v2.0/networks".into(), vlan_net(5000), 400, "InvalidInput", "segmentation_id"),
        ("POST", "/v2.0/networks".into(), vlan_net(4095), 400, "InvalidInput", "segmentation_id"),
        ("POST", "/v2.0/networks".into(), vlan_net(0), 400, "InvalidInput", "segmentation_id"),
        ("POST", "/v2.0/networks".into(), vlan_net(-1), 400, "InvalidInput", "segmentation_id"),
        (
            "POST",
            "/v2.0/networks".into(),
            vlan_net(n["provider:segmentation_id"].as_i64().unwrap()),
            409,
            "VlanIdInUse",
            "segmentation_id",
        ),
        (
            "POST",
            "/v2.0/networks".into(),
            json!({"network": {"provider:network_type": "vlan", "provider:physical_network": "physnet9", "provider:segmentation_id": 10}}).to_string(),
            400,
            "InvalidInput",
            "provider:physical_network",
        ),
        // A network with ports cannot go, nor a subnet with addresses.
        ("DELETE", format!("/v2.0/networks/{nid}"), String::new(), 409, "NetworkInUse", "port(s)"),
        ("DELETE", format!("/v2.0/subnets/{sid}"), String::new(), 409, "SubnetInUse", sid.as_str()),
        // Malformed JSON, wrong shapes.
        ("POST", "/v2.0/networks".into(), "{\"network\": {\"name\": \"x\"".into(), 400, "HTTPBadRequest", "Malformed"),
        ("POST", "/v2.0/networks".into(), "".into(), 400, "HTTPBadRequest", "empty"),
        ("POST", "/v2.0/networks".into(), "[1, 2]".into(), 400, "HTTPBadRequest", "object"),
        ("POST", "/v2.0/ports".into(), "{\"port\": {\"network_id\": }}".into(), 400, "HTTPBadRequest", "Malformed"),
        ("POST", "/v2.0/networks".into(), r#"{"network": "x"}"#.into(), 400, "HTTPBadRequest", "network"),
        ("POST", "/v2.0/networks".into(), r#"{"networks": [{"name": "x"}, {"name": 5}]}"#.into(), 400, "", "name"),
        ("POST", "/v2.0/networks".into(), r#"{"network": {"name": 5}}"#.into(), 400, "HTTPBadRequest", "name"),
        // Unknown fields, in the object and beside it.
        ("POST", "/v2.0/networks".into(), r#"{"network": {"name": "x", "flavour": "y"}}"#.into(), 400, "", "flavour"),
        ("POST", "/v2.0/networks".into(), r#"{"network": {"name": "x"}, "extra": 1}"#.into(), 400, "", "extra"),
        ("POST", "/v2.0/ports".into(), port_body(json!({"colour": "red"})), 400, "", "colour"),
        ("POST", "/v2.0/subnets".into(), json!({"subnet": {"network_id": nid, "cidr": "10.44.0.0/24", "zone": 1}}).to_string(), 400, "", "zone"),
        ("POST", "/v2.0/security-groups".into(), r#"{"security_group": {"name": "h", "colour": "red"}}"#.into(), 400, "", "colour"),
        (
            "POST",
            "/v2.0/security-group-rules".into(),
            json!({"security_group_rule": {"security_group_id": gid, "direction": "ingress", "color": "red"}}).to_string(),
            400,
            "",
            "color",
        ),
        // Updates that are bad in one field change nothing (the valid name
        // included).
        (
            "PUT",
            format!("/v2.0/ports/{pid}"),
            json!({"port": {"name": "renamed", "fixed_ips": [{"subnet_id": sid, "ip_address": "10.30.0.12"}], "mac_address": "nope"}}).to_string(),
            400,
            "HTTPBadRequest",
            "mac_address",
        ),
        ("PUT", format!("/v2.0/ports/{pid}"), r#"{"port": {"name": "renamed", "flavour": 1}}"#.into(), 400, "", "flavour"),
        ("PUT", format!("/v2.0/networks/{nid}"), r#"{"network": {"name": "renamed", "mtu": 70000}}"#.into(), 400, "HTTPBadRequest", "mtu"),
        ("PUT", format!("/v2.0/networks/{nid}"), r#"{"network": {"name": "renamed", "provider:segmentation_id": 3050}}"#.into(), 400, "", "provider:segmentation_id"),
        ("PUT", format!("/v2.0/subnets/{sid}"), r#"{"subnet": {"name": "renamed", "gateway_ip": "10.30.0.10"}}"#.into(), 409, "", "gateway_ip"),
        ("PUT", format!("/v2.0/security-groups/{gid}"), r#"{"security_group": {"name": "renamed", "colour": 1}}"#.into(), 400, "", "colour"),
        // Updates of what does not exist.
        ("PUT", format!("/v2.0/ports/{UNKNOWN}"), r#"{"port": {"name": "x"}}"#.into(), 404, "PortNotFound", UNKNOWN),
        ("DELETE", format!("/v2.0/networks/{UNKNOWN}"), String::new(), 404, "NetworkNotFound", UNKNOWN),
        // Unknown filters.
        ("GET", "/v2.0/networks?colour=blue".into(), String::new(), 400, "", "colour"),
    ];
    for (m, path, body, status, kind, needle) in &cases {
        let body = (!body.is_empty()).then_some(body.as_str());
        let (got, v) = api.raw(m, path, body);
        assert!((400..500).contains(&got), "{m} {path} {body:?}: {got} {v}");
        assert_eq!(got, *status, "{m} {path} {body:?}: {v}");
        let e = neutron_error(&v);
        if !kind.is_empty() {
            assert_eq!(e["type"], *kind, "{m} {path} {body:?}: {v}");
        }
        let msg = s(&e["message"]);
        assert!(
            msg.contains(needle),
            "{m} {path} {body:?}: message {msg:?} does not name {needle:?}"
        );
    }
    let after = api.snapshot();
    for (k, v) in &before {
        assert_eq!(&after[k], v, "{k} changed by refused requests");
    }
    assert_eq!(
        sorted(&ctl_json(&sw, Some(port), &["network", "list"])),
        before["networks"]
    );

    // Stop and start on the same database: nothing half-persisted either.
    assert!(sw.stop().success());
    let sw = Switch::start(&dir, &cfg);
    let restarted = api.snapshot();
    for (k, v) in &before {
        assert_eq!(&restarted[k], v, "{k} differs after a restart");
    }
    assert_eq!(
        sorted(&ctl_json(&sw, Some(port), &["network", "list"])),
        before["networks"],
        "vswitchctl network list --json"
    );
    // And the restored allocations still hold.
    let e = api.fails(
        "POST",
        "/v2.0/ports",
        Some(&port_body(
            json!({"fixed_ips": [{"ip_address": "10.30.0.10"}]}),
        )),
        409,
    );
    assert_eq!(e["type"], "IpAddressAlreadyAllocated");
    let e = api.fails(
        "POST",
        "/v2.0/ports",
        Some(&json!({"port": {"network_id": small_id}}).to_string()),
        409,
    );
    assert_eq!(e["type"], "IpAddressGenerationFailure");
    let e = api.fails(
        "POST",
        "/v2.0/ports",
        Some(&port_body(json!({"mac_address": "fa:16:3e:00:00:01"}))),
        409,
    );
    assert_eq!(e["type"], "MacAddressInUse");
    assert_translations_match(&sw, api);
    assert!(sw.stop().success());
    eprintln!("bad input: {:?}", started.elapsed());
}

#[test]
fn security_group_commands_of_vswitchctl() {
    let _g = serial();
    let started = Instant::now();
    let dir = TempDir::new("ndapi-sgctl");
    let (port, metrics) = (free_port(), free_port());
    let sw = Switch::start(&dir, &api_config(&dir, "ndapi-sgctl", port, metrics));
    let api = Some(port);

    let g = ctl_json(
        &sw,
        api,
        &["security-group", "create", "web", "--description", "d"],
    );
    assert_eq!(g["name"], "web");
    assert_eq!(g["description"], "d");
    let gid = s(&g["id"]);
    assert_eq!(
        g["security_group_rules"].as_array().unwrap().len(),
        2,
        "{g}"
    );

    let r = ctl_json(
        &sw,
        api,
        &[
            "security-group",
            "rule",
            "create",
            "web",
            "--ingress",
            "--protocol",
            "tcp",
            "--dst-port",
            "80:81",
            "--remote-ip",
            "10.0.0.0/8",
        ],
    );
    let rid = s(&r["id"]);
    assert_eq!(r["security_group_id"], gid.as_str());
    assert_eq!(r["direction"], "ingress");
    assert_eq!(r["ethertype"], "IPv4");
    assert_eq!(r["protocol"], "tcp");
    assert_eq!(
        (&r["port_range_min"], &r["port_range_max"]),
        (&json!(80), &json!(81))
    );
    assert_eq!(r["remote_ip_prefix"], "10.0.0.0/8");

    let rules = ctl_json(&sw, api, &["security-group", "rule", "list", "web"]);
    let rules = rules.as_array().unwrap();
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert_eq!(
        rules.iter().filter(|r| r["direction"] == "egress").count(),
        2,
        "{rules:?}"
    );
    let mine: Vec<&Value> = rules.iter().filter(|r| r["id"] == rid.as_str()).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (&mine[0]["port_range_min"], &mine[0]["port_range_max"]),
        (&json!(80), &json!(81))
    );
    // By id too.
    assert_eq!(
        ctl_json(&sw, api, &["security-group", "rule", "list", &gid])
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Human output: a table with the rule in it.
    let (code, out, err) = ctl_code(&sw, api, &["security-group", "rule", "list", "web"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "header + 3 rules: {out}");
    assert!(
        lines[0].contains("Direction") && lines[0].contains("Port min"),
        "{out}"
    );
    let row = lines
        .iter()
        .find(|l| l.contains(&rid))
        .unwrap_or_else(|| panic!("rule {rid} not in {out}"));
    for want in ["ingress", "IPv4", "tcp", "80", "81", "10.0.0.0/8"] {
        assert!(row.contains(want), "{want} missing from {row:?}");
    }
    let (code, out, err) = ctl_code(&sw, api, &["security-group", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().any(|l| l.contains(&gid) && l.contains("web")),
        "{out}"
    );
    let (code, out, err) = ctl_code(&sw, api, &["security-group", "show", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&gid) && out.contains("description"), "{out}");

    // Errors: non-zero, naming what is wrong; nothing created.
    let (code, _, err) = ctl_code(
        &sw,
        api,
        &[
            "security-group",
            "rule",
            "create",
            "web",
            "--ingress",
            "--dst-port",
            "abc",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("--dst-port"), "{err}");
    let (code, _, err) = ctl_code(
        &sw,
        api,
        &[
            "security-group",
            "rule",
            "create",
            "web",
            "--ingress",
            "--protocol",
            "tcp",
            "--dst-port",
            "80:x",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("--dst-port"), "{err}");
    let (code, _, err) = ctl_code(
        &sw,
        api,
        &[
            "security-group",
            "rule",
            "create",
            "nosuchgroup",
            "--ingress",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("nosuchgroup"), "{err}");
    let (code, _, err) = ctl_code(
        &sw,
        api,
        &[
            "security-group",
            "rule",
            "create",
            "web",
            "--ingress",
            "--protocol",
            "tcpp",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("400") && err.contains("protocol"), "{err}");
    let (code, _, err) = ctl_code(
        &sw,
        api,
        &[
            "security-group",
            "rule",
            "create",
            "web",
            "--ingress",
            "--remote-ip",
            "10.0.0.0/40",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("Invalid CIDR 10.0.0.0/40"), "{err}");
    // The same rule twice.
    let (code, _, err) = ctl_code(
        &sw,
        api,
        &[
            "security-group",
            "rule",
            "create",
            "web",
            "--ingress",
            "--protocol",
            "tcp",
            "--dst-port",
            "80:81",
            "--remote-ip",
            "10.0.0.0/8",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("409") && err.contains(&rid), "{err}");
    let (code, _, _) = ctl_code(
        &sw,
        api,
        &[
            "security-group",
            "rule",
            "create",
            "web",
            "--ingress",
            "--egress",
        ],
    );
    assert_ne!(code, 0, "--ingress and --egress conflict");
    let (code, _, err) = ctl_code(&sw, api, &["security-group", "rule", "list", "nosuchgroup"]);
    assert_ne!(code, 0);
    assert!(err.contains("nosuchgroup"), "{err}");
    assert_eq!(
        ctl_json(&sw, api, &["security-group", "rule", "list", "web"])
            .as_array()
            .unwrap()
            .len(),
        3,
        "failed creates created nothing"
    );

    // Delete the rule, then the group.
    let (code, out, err) = ctl_code(&sw, api, &["security-group", "rule", "delete", &rid]);
    assert_eq!(code, 0, "{out}{err}");
    let left = ctl_json(&sw, api, &["security-group", "rule", "list", "web"]);
    assert_eq!(left.as_array().unwrap().len(), 2, "{left}");
    assert!(left
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["direction"] == "egress"));
    let (code, _, err) = ctl_code(&sw, api, &["security-group", "rule", "delete", &rid]);
    assert_ne!(code, 0);
    assert!(err.contains("404") && err.contains(&rid), "{err}");
    let (code, out, err) = ctl_code(&sw, api, &["security-group", "delete", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = ctl_code(&sw, api, &["security-group", "show", "web"]);
    assert_ne!(code, 0);
    assert!(err.contains("web"), "{err}");
    let (code, _, err) = ctl_code(&sw, api, &["security-group", "delete", "web"]);
    assert_ne!(code, 0);
    assert!(err.contains("web"), "{err}");
    let groups = ctl_json(&sw, api, &["security-group", "list"]);
    assert!(
        groups
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["name"] != "web"),
        "{groups}"
    );
    assert_eq!(
        ctl_json(&sw, api, &["security-group", "rule", "list"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["security_group_id"] == gid.as_str())
            .count(),
        0
    );
    // Without the API the commands fail cleanly.
    let dead = free_port();
    let (code, _, err) = ctl_code(&sw, Some(dead), &["security-group", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains(&dead.to_string()), "{err}");
    assert!(sw.stop().success());
    eprintln!("security-group commands: {:?}", started.elapsed());
}

#[test]
fn sigkill_during_creates_loses_nothing_acknowledged() {
    let _g = serial();
    let started = Instant::now();
    let dir = TempDir::new("ndapi-kill");
    let (port, metrics) = (free_port(), free_port());
    let mut sw = Switch::start(&dir, &api_config(&dir, "ndapi-kill", port, metrics));
    let api = Api(port);
    let base = api.create("networks", "network", json!({"name": "base"}));
    let base_id = s(&base["id"]);
    api.create(
        "subnets",
        "subnet",
        json!({"network_id": base_id, "cidr": "10.50.0.0/16", "ip_version": 4}),
    );

    // Networks (tenant VLANs, and every other one a provider VLAN) and ports,
    // alternately, each id recorded once acknowledged with 201.
    let acked: Arc<Mutex<Vec<(&'static str, String)>>> = Arc::default();
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, refused, stop, base_id) = (
            acked.clone(),
            refused.clone(),
            stop.clone(),
            base_id.clone(),
        );
        std::thread::spawn(move || {
            for i in 0..2000u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (coll, key, body) = if i % 2 == 0 && i < 120 {
                    let net = if i % 4 == 0 {
                        json!({"name": format!("k{i}")})
                    } else {
                        json!({"name": format!("k{i}"), "provider:network_type": "vlan",
                            "provider:physical_network": "physnet1",
                            "provider:segmentation_id": 3500 + i})
                    };
                    ("networks", "network", net)
                } else {
                    (
                        "ports",
                        "port",
                        json!({"network_id": base_id, "name": format!("k{i}")}),
                    )
                };
                let body = json!({ key: body }).to_string();
                match try_http(port, "POST", &format!("/v2.0/{coll}"), Some(&body)) {
                    Ok((201, text)) => {
                        let v: Value = serde_json::from_str(&text).unwrap();
                        acked.lock().unwrap().push((coll, s(&v[key]["id"])));
                    }
                    // A reply cut short by the kill is no reply.
                    Ok((0, _)) => break,
                    Ok((st, text)) => refused.lock().unwrap().push(format!("{st} {text}")),
                    // The daemon is gone.
                    Err(_) => break,
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while acked.lock().unwrap().len() < 50 {
        assert!(
            Instant::now() < deadline && !writer.is_finished(),
            "only {} creates acknowledged: {:?}",
            acked.lock().unwrap().len(),
            refused.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    signal(sw.child.id(), libc::SIGKILL);
    let st = sw.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGKILL),
        "{st}"
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // The child is reaped: Switch's drop sees that and signals nothing.
    drop(sw);
    let refused = refused.lock().unwrap().clone();
    assert!(refused.is_empty(), "refused creates: {refused:?}");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 50);

    // DPDK left its runtime dir behind: remove it (ours, by the prefix
    // config_head gave), and use a new prefix for the restart anyway.
    let _ = std::fs::remove_dir_all(format!(
        "/var/run/dpdk/fswt-ndapi-kill-{}",
        std::process::id()
    ));
    let cfg2 = api_config(&dir, "ndapi-kill2", port, metrics);
    let sw = Switch::start(&dir, &cfg2);
    let nets = ids(&api.get("/v2.0/networks?fields=id")["networks"]);
    let ports = ids(&api.get("/v2.0/ports?fields=id")["ports"]);
    let mut extra = 0;
    for (coll, id) in &acked {
        let present = if *coll == "networks" { &nets } else { &ports };
        assert!(present.contains(id), "acknowledged {coll} {id} lost");
        // And it is whole.
        let (st, v) = api.call("GET", &format!("/v2.0/{coll}/{id}"), None);
        assert_eq!(st, 200, "{v}");
    }
    let acked_ids: HashSet<&String> = acked.iter().map(|(_, id)| id).collect();
    for id in nets.iter().chain(&ports) {
        if *id != base_id && !acked_ids.contains(id) {
            extra += 1;
        }
    }
    assert!(
        extra <= 1,
        "{extra} unacknowledged creates persisted (only the one in flight may be)"
    );
    // Every port kept a distinct address and MAC.
    let all_ports = api.get("/v2.0/ports")["ports"].clone();
    let all_ports = all_ports.as_array().unwrap();
    let ips: HashSet<u32> = all_ports
        .iter()
        .map(|p| ipv4(&p["fixed_ips"][0]["ip_address"]))
        .collect();
    let macs: HashSet<&str> = all_ports
        .iter()
        .map(|p| p["mac_address"].as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), all_ports.len());
    assert_eq!(macs.len(), all_ports.len());
    // The dataplane was rebuilt from what survived.
    assert_translations_match(&sw, api);
    // Allocation goes on without reusing anything restored.
    let p = api.create("ports", "port", json!({"network_id": base_id}));
    assert!(
        !ips.contains(&ipv4(&p["fixed_ips"][0]["ip_address"])),
        "{p}"
    );
    assert!(!macs.contains(p["mac_address"].as_str().unwrap()), "{p}");
    let n = api.create("networks", "network", json!({"name": "after"}));
    let used: HashSet<u64> = api.get("/v2.0/networks")["networks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["id"] != n["id"])
        .map(|x| x["provider:segmentation_id"].as_u64().unwrap())
        .collect();
    assert!(
        !used.contains(&n["provider:segmentation_id"].as_u64().unwrap()),
        "{n}"
    );
    assert_translations_match(&sw, api);
    assert!(sw.stop().success());

    // The database itself is sound.
    let ncfg = neutron::NeutronConfig {
        listen: "127.0.0.1:0".into(),
        database: dir.path("neutron.db"),
        host: HOST.into(),
        network_vlan_ranges: vec!["physnet1:3000:3099".into()],
        bridge_mappings: vec!["physnet1:uplink".into()],
        vhost_socket_dir: dir.path("vhu"),
        ..Default::default()
    };
    let n = neutron::Neutron::open(ncfg).expect("reopen the database");
    assert_eq!(n.check_database().unwrap(), "ok");
    assert_eq!(n.state().networks.len(), nets.len() + 1);
    eprintln!(
        "sigkill: {} acknowledged, {:?}",
        acked.len(),
        started.elapsed()
    );
}
