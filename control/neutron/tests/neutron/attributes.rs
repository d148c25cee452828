//! Attributes and rules as Neutron 29 has them: router:external (a model
//! attribute until an L3 service exists), the MTU limit, unaligned CIDRs,
//! stateful and stateless groups on one port, other hosts' bindings.
use super::common::{config, ok, TempDir};
use neutron::Neutron;
use serde_json::{json, Value};

#[test]
fn external_networks_are_accepted_and_updatable() {
    let dir = TempDir::new("attrs-ext");
    let n = Neutron::open(config(&dir)).unwrap();
    let net = ok(
        &n,
        "POST",
        "/v2.0/networks",
        json!({"network": {"name": "public", "router:external": true}}),
        201,
    );
    assert_eq!(net["network"]["router:external"], true);
    let id = net["network"]["id"].as_str().unwrap();
    let listed = ok(
        &n,
        "GET",
        "/v2.0/networks?router:external=True",
        Value::Null,
        200,
    );
    assert_eq!(listed["networks"].as_array().unwrap().len(), 1, "{listed}");
    let net = ok(
        &n,
        "PUT",
        &format!("/v2.0/networks/{id}"),
        json!({"network": {"router:external": false}}),
        200,
    );
    assert_eq!(net["network"]["router:external"], false);
}

#[test]
fn neutron_rules_for_mtu_cidrs_groups_and_other_hosts() {
    let dir = TempDir::new("attrs-rules");
    let n = Neutron::open(config(&dir)).unwrap();
    let (st, out) = n.handle(
        "POST",
        "/v2.0/networks",
        br#"{"network": {"mtu": 9000}}"#,
        Some("p"),
    );
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (st, v["NeutronError"]["type"].as_str()),
        (400, Some("InvalidInput")),
        "{v}"
    );
    let net = ok(
        &n,
        "POST",
        "/v2.0/networks",
        json!({"network": {"name": "n"}}),
        201,
    );
    let nid = net["network"]["id"].as_str().unwrap().to_owned();
    let s = ok(
        &n,
        "POST",
        "/v2.0/subnets",
        json!({"subnet": {"network_id": nid, "ip_version": 4, "cidr": "10.3.0.5/24"}}),
        201,
    );
    assert_eq!(s["subnet"]["cidr"], "10.3.0.0/24");
    let a = ok(
        &n,
        "POST",
        "/v2.0/security-groups",
        json!({"security_group": {"name": "a"}}),
        201,
    );
    let b = ok(
        &n,
        "POST",
        "/v2.0/security-groups",
        json!({"security_group": {"name": "b", "stateful": false}}),
        201,
    );
    let (st, out) = n.handle(
        "POST",
        "/v2.0/ports",
        json!({"port": {"network_id": nid, "security_groups": [a["security_group"]["id"], b["security_group"]["id"]]}})
            .to_string()
            .as_bytes(),
        Some("p"),
    );
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (st, v["NeutronError"]["type"].as_str()),
        (409, Some("SecurityGroupConflict")),
        "{v}"
    );
    let p = ok(
        &n,
        "POST",
        "/v2.0/ports",
        json!({"port": {"network_id": nid, "binding:host_id": "elsewhere"}}),
        201,
    );
    assert_eq!(p["port"]["binding:vif_type"], "binding_failed");
    let (st, _) = n.handle(
        "POST",
        "/v2.0/ports",
        json!({"port": {"network_id": nid, "allowed_address_pairs": [{"ip_address": "224.0.0.5"}]}})
            .to_string()
            .as_bytes(),
        Some("p"),
    );
    assert_eq!(st, 400, "a multicast address pair");
}
