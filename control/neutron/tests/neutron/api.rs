//! The Neutron API over real HTTP: every resource, every refused input
//! (with the proof that nothing was persisted), concurrency, restart,
//! binding and the token.

use crate::common::*;
use neutron::{Neutron, NeutronConfig, NeutronError, PortStatus};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn net_with_subnet(api: &Api, name: &str, cidr: &str) -> (String, String) {
    let n = api.create("networks", "network", json!({"name": name}));
    let s = api.create(
        "subnets",
        "subnet",
        json!({"network_id": n["id"], "cidr": cidr, "ip_version": 4, "name": format!("{name}-sub")}),
    );
    (
        n["id"].as_str().unwrap().to_owned(),
        s["id"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn version_discovery_resources_and_extensions() {
    let dir = TempDir::new("discovery");
    let api = Api::start(config(&dir));
    let v = api.get("/");
    assert_eq!(v["versions"][0]["id"], "v2.0");
    assert_eq!(v["versions"][0]["status"], "CURRENT");
    assert_eq!(
        v["versions"][0]["links"][0]["href"],
        format!("{}/v2.0/", api.base)
    );
    assert_eq!(v["versions"][0]["links"][0]["rel"], "self");

    let r = api.get("/v2.0/");
    let colls: Vec<&str> = r["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["collection"].as_str().unwrap())
        .collect();
    for c in [
        "networks",
        "subnets",
        "ports",
        "security_groups",
        "security_group_rules",
    ] {
        assert!(colls.contains(&c), "{c} missing from {r}");
    }
    let ext = api.get("/v2.0/extensions");
    let aliases: HashSet<&str> = ext["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["alias"].as_str().unwrap())
        .collect();
    for a in [
        "binding",
        "provider",
        "security-group",
        "port-security",
        "allowed-address-pairs",
        "standard-attr-tag",
        "standard-attr-description",
        "standard-attr-timestamp",
        "standard-attr-revisions",
        "project-id",
    ] {
        assert!(aliases.contains(a), "extension {a} missing");
    }
    assert!(
        !aliases.contains("extra_dhcp_opt"),
        "extra_dhcp_opt is not implemented"
    );
    assert_eq!(
        api.get("/v2.0/extensions/binding")["extension"]["alias"],
        "binding"
    );
    api.fails("GET", "/v2.0/extensions/nope", None, 404);
    let e = api.fails("GET", "/v2.0/routers", None, 404);
    assert!(e["message"].as_str().unwrap().contains("/v2.0/routers"));
    api.fails("POST", "/", Some("{}"), 405);
    api.fails("PATCH", "/v2.0/networks", Some("{}"), 405);
    // ".json" suffix of old clients.
    assert!(api.get("/v2.0/networks.json")["networks"].is_array());
}

#[test]
fn networks_segments_and_vlan_allocation() {
    let dir = TempDir::new("networks");
    let api = Api::start(config(&dir));
    let a = api.create("networks", "network", json!({"name": "a"}));
    assert_eq!(a["provider:network_type"], "vlan");
    assert_eq!(a["provider:physical_network"], "physnet1");
    assert_eq!(a["provider:segmentation_id"], 100);
    assert_eq!(a["status"], "ACTIVE");
    assert_eq!(a["mtu"], 1500);
    assert_eq!(a["admin_state_up"], true);
    assert_eq!(a["shared"], false);
    assert_eq!(a["router:external"], false);
    assert_eq!(a["revision_number"], 1);
    assert_eq!(a["subnets"], json!([]));
    assert!(a["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(a["project_id"], a["tenant_id"]);
    let b = api.create(
        "networks",
        "network",
        json!({"name": "b", "project_id": "p1"}),
    );
    assert_eq!(b["provider:segmentation_id"], 101);
    assert_eq!(b["tenant_id"], "p1");

    // Provider networks.
    let p = api.create(
        "networks",
        "network",
        json!({"name": "prov", "provider:network_type": "vlan",
        "provider:physical_network": "physnet1", "provider:segmentation_id": 3000}),
    );
    assert_eq!(p["provider:segmentation_id"], 3000);
    let e = api.fails("POST", "/v2.0/networks", Some(r#"{"network": {"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 3000}}"#), 409);
    assert_eq!(e["type"], "VlanIdInUse");
    // The same VID on another physnet is another segment.
    api.create(
        "networks",
        "network",
        json!({"provider:network_type": "vlan",
        "provider:physical_network": "physnet2", "provider:segmentation_id": 3000}),
    );
    for (body, field) in [
        (
            r#"{"network": {"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 4095}}"#,
            "provider:segmentation_id",
        ),
        (
            r#"{"network": {"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 0}}"#,
            "provider:segmentation_id",
        ),
        (
            r#"{"network": {"provider:network_type": "vlan", "provider:physical_network": "physnet9", "provider:segmentation_id": 10}}"#,
            "provider:physical_network",
        ),
        (
            r#"{"network": {"provider:network_type": "vlan", "provider:segmentation_id": 10}}"#,
            "provider:physical_network",
        ),
        (
            r#"{"network": {"provider:network_type": "geneve"}}"#,
            "provider:network_type",
        ),
        (
            r#"{"network": {"provider:physical_network": "physnet1"}}"#,
            "provider:network_type",
        ),
        (
            r#"{"network": {"provider:network_type": "flat"}}"#,
            "provider:physical_network",
        ),
        (
            r#"{"network": {"provider:network_type": "flat", "provider:physical_network": "physnet2", "provider:segmentation_id": 5}}"#,
            "provider:segmentation_id",
        ),
        (
            r#"{"network": {"provider:network_type": "local", "provider:physical_network": "physnet2"}}"#,
            "provider:physical_network",
        ),
        (r#"{"network": {"mtu": 20}}"#, "mtu"),
        (
            r#"{"network": {"admin_state_up": "maybe"}}"#,
            "admin_state_up",
        ),
        (r#"{"network": {"name": 5}}"#, "name"),
        (r#"{"network": {"status": "DOWN"}}"#, "status"),
    ] {
        let e = api.fails("POST", "/v2.0/networks", Some(body), 400);
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{body}: {e}"
        );
    }
    let flat = api.create(
        "networks",
        "network",
        json!({"provider:network_type": "flat", "provider:physical_network": "physnet2"}),
    );
    assert_eq!(flat["provider:segmentation_id"], Value::Null);
    let e = api.fails("POST", "/v2.0/networks", Some(r#"{"network": {"provider:network_type": "flat", "provider:physical_network": "physnet2"}}"#), 409);
    assert_eq!(e["type"], "FlatNetworkInUse");
    let local = api.create(
        "networks",
        "network",
        json!({"provider:network_type": "local"}),
    );
    assert_eq!(local["provider:physical_network"], Value::Null);

    // The tenant range 100-102 runs out.
    let c = api.create("networks", "network", json!({"name": "c"}));
    assert_eq!(c["provider:segmentation_id"], 102);
    let e = api.fails(
        "POST",
        "/v2.0/networks",
        Some(r#"{"network": {"name": "d"}}"#),
        503,
    );
    assert_eq!(e["type"], "NoNetworkAvailable");
    // Deleting one frees its VLAN.
    let (s, _) = api.call(
        "DELETE",
        &format!("/v2.0/networks/{}", b["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(s, 204);
    let d = api.create("networks", "network", json!({"name": "d"}));
    assert_eq!(d["provider:segmentation_id"], 101);

    // Show, list, filters, fields.
    let id = a["id"].as_str().unwrap();
    assert_eq!(api.get(&format!("/v2.0/networks/{id}"))["network"], a);
    api.fails("GET", "/v2.0/networks/not-a-network", None, 404);
    let all = api.get("/v2.0/networks")["networks"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(all, 7);
    let named = api.get("/v2.0/networks?name=a&name=c")["networks"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(named.len(), 2);
    let by_id =
        api.get(&format!("/v2.0/networks?id={id}&fields=id&fields=name"))["networks"].clone();
    assert_eq!(by_id, json!([{"id": id, "name": "a"}]));
    assert_eq!(
        api.get("/v2.0/networks?provider:segmentation_id=3000")["networks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        api.get("/v2.0/networks?provider:network_type=flat")["networks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.get("/v2.0/networks?shared=False")["networks"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    let e = api.fails("GET", "/v2.0/networks?colour=blue", None, 400);
    assert!(e["message"].as_str().unwrap().contains("colour"));
    let page = api.get("/v2.0/networks?limit=2");
    assert_eq!(page["networks"].as_array().unwrap().len(), 2);
    let next = page["networks_links"][0]["href"].as_str().unwrap();
    let rest = api.get(next.strip_prefix(&api.base).unwrap());
    assert_eq!(rest["networks"].as_array().unwrap().len(), 2);
    assert_ne!(rest["networks"][0]["id"], page["networks"][0]["id"]);
    let sorted = api.get("/v2.0/networks?sort_key=name&sort_dir=desc&fields=name");
    let names: Vec<&str> = sorted["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    let mut want = names.clone();
    want.sort_by(|x, y| y.cmp(x));
    assert_eq!(names, want);

    // Update.
    let (s, u) = api.call(
        "PUT",
        &format!("/v2.0/networks/{id}"),
        Some(json!({"network": {"name": "a2", "mtu": 1400, "description": "x"}})),
    );
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["network"]["name"], "a2");
    assert_eq!(u["network"]["mtu"], 1400);
    assert_eq!(u["network"]["revision_number"], 2);
    let e = api.fails(
        "PUT",
        &format!("/v2.0/networks/{id}"),
        Some(r#"{"network": {"provider:segmentation_id": 5}}"#),
        400,
    );
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("provider:segmentation_id"));
    let e = api.fails(
        "PUT",
        &format!("/v2.0/networks/{id}"),
        Some(r#"{"network": {"tenant_id": "x"}}"#),
        400,
    );
    assert!(e["message"].as_str().unwrap().contains("tenant_id"));
    api.fails(
        "PUT",
        "/v2.0/networks/0c0d4dd4-0000-4000-8000-000000000000",
        Some(r#"{"network": {"name": "x"}}"#),
        404,
    );
    api.fails(
        "DELETE",
        "/v2.0/networks/0c0d4dd4-0000-4000-8000-000000000000",
        None,
        404,
    );
}

/// Issue 16: vxlan networks as ML2's vxlan type driver makes them: tenant
/// networks take the lowest free VNI of `vni_ranges`, a provider network
/// any free VNI; the MTU is the physical one less VXLAN's 50 bytes; a VNI
/// is held once, freed with its network, and survives a restart; a port
/// binds only to a host with a tunnel endpoint.
#[test]
fn vxlan_networks_take_vnis_and_their_mtu() {
    let dir = TempDir::new("vxlan-nets");
    let mut cfg = config(&dir);
    cfg.tenant_network_type = "vxlan".into();
    cfg.vni_ranges = vec!["5000:5001".into()];
    cfg.local_ip = Some("192.0.2.1".into());
    let api = Api::start(cfg.clone());
    let a = api.create("networks", "network", json!({"name": "a"}));
    assert_eq!(a["provider:network_type"], "vxlan");
    assert_eq!(a["provider:physical_network"], Value::Null);
    assert_eq!(a["provider:segmentation_id"], 5000);
    assert_eq!(a["mtu"], 1450);
    let p = api.create(
        "networks",
        "network",
        json!({"provider:network_type": "vxlan", "provider:segmentation_id": 16777215}),
    );
    assert_eq!(p["provider:segmentation_id"], 16777215);
    let b = api.create("networks", "network", json!({"name": "b"}));
    assert_eq!(b["provider:segmentation_id"], 5001);
    let e = api.fails("POST", "/v2.0/networks", Some(r#"{"network": {}}"#), 503);
    assert_eq!(e["type"], "NoNetworkAvailable");
    assert!(e["message"].as_str().unwrap().contains("vni_ranges"), "{e}");
    let e = api.fails(
        "POST",
        "/v2.0/networks",
        Some(
            r#"{"network": {"provider:network_type": "vxlan", "provider:segmentation_id": 5000}}"#,
        ),
        409,
    );
    assert_eq!(e["type"], "TunnelIdInUse");
    for (body, field) in [
        (
            r#"{"network": {"provider:network_type": "vxlan", "provider:segmentation_id": 16777216}}"#,
            "provider:segmentation_id",
        ),
        (
            r#"{"network": {"provider:network_type": "vxlan", "provider:segmentation_id": 0}}"#,
            "provider:segmentation_id",
        ),
        (
            r#"{"network": {"provider:network_type": "vxlan", "provider:physical_network": "physnet1"}}"#,
            "provider:physical_network",
        ),
        (
            r#"{"network": {"provider:network_type": "vxlan", "provider:segmentation_id": 7, "mtu": 1451}}"#,
            "MTU",
        ),
    ] {
        let e = api.fails("POST", "/v2.0/networks", Some(body), 400);
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{body}: {e}"
        );
    }
    let id = a["id"].as_str().unwrap();
    let e = api.fails(
        "PUT",
        &format!("/v2.0/networks/{id}"),
        Some(r#"{"network": {"mtu": 1500}}"#),
        400,
    );
    assert!(e["message"].as_str().unwrap().contains("1450"), "{e}");
    // Bound here (this host has a tunnel endpoint); direct ports cannot be.
    let port = api.create(
        "ports",
        "port",
        json!({"network_id": id, "binding:host_id": HOST}),
    );
    assert_eq!(port["binding:vif_type"], "vhostuser", "{port}");
    let vf = api.create(
        "ports",
        "port",
        json!({"network_id": id, "binding:host_id": HOST, "binding:vnic_type": "direct",
               "binding:profile": {"pci_slot": "0000:3b:00.1"}}),
    );
    assert_eq!(vf["binding:vif_type"], "binding_failed", "{vf}");
    assert!(
        vf["binding:vif_details"]["reason"]
            .as_str()
            .unwrap()
            .contains("vxlan"),
        "{vf}"
    );
    // Deleting a network frees its VNI; a restart keeps who holds which.
    let bid = b["id"].as_str().unwrap();
    assert_eq!(
        api.raw("DELETE", &format!("/v2.0/networks/{bid}"), None).0,
        204
    );
    let c = api.create("networks", "network", json!({"name": "c"}));
    assert_eq!(c["provider:segmentation_id"], 5001);
    let before = state_json(&api.stop());
    assert_eq!(reopened_state(&cfg), before);
    let api = Api::start(cfg.clone());
    let e = api.fails("POST", "/v2.0/networks", Some(r#"{"network": {}}"#), 503);
    assert_eq!(e["type"], "NoNetworkAvailable");
    drop(api);
    // A host without a tunnel endpoint takes no port of a vxlan network.
    cfg.local_ip = None;
    let api = Api::start(cfg);
    let port = api.create(
        "ports",
        "port",
        json!({"network_id": id, "binding:host_id": HOST}),
    );
    assert_eq!(port["binding:vif_type"], "binding_failed", "{port}");
    assert!(
        port["binding:vif_details"]["reason"]
            .as_str()
            .unwrap()
            .contains("neutron.local_ip"),
        "{port}"
    );
}

#[test]
fn subnets_pools_and_gateways() {
    let dir = TempDir::new("subnets");
    let api = Api::start(config(&dir));
    let n = api.create("networks", "network", json!({"name": "n"}));
    let nid = n["id"].as_str().unwrap();
    let s = api.create(
        "subnets",
        "subnet",
        json!({"network_id": nid, "cidr": "10.0.0.0/24", "ip_version": 4}),
    );
    assert_eq!(s["gateway_ip"], "10.0.0.1");
    assert_eq!(
        s["allocation_pools"],
        json!([{"start": "10.0.0.2", "end": "10.0.0.254"}])
    );
    assert_eq!(s["enable_dhcp"], true);
    assert_eq!(s["ip_version"], 4);
    assert_eq!(
        api.get(&format!("/v2.0/networks/{nid}"))["network"]["subnets"],
        json!([s["id"]])
    );
    let v6 = api.create("subnets", "subnet", json!({"network_id": nid, "cidr": "2001:db8::/64", "ip_version": 6, "gateway_ip": null,
        "dns_nameservers": ["2001:db8::53"], "host_routes": [{"destination": "2001:db8:1::/48", "nexthop": "2001:db8::fe"}]}));
    assert_eq!(v6["gateway_ip"], Value::Null);
    assert_eq!(
        v6["allocation_pools"],
        json!([{"start": "2001:db8::1", "end": "2001:db8::ffff:ffff:ffff:ffff"}])
    );
    let custom = api.create("subnets", "subnet", json!({"network_id": nid, "cidr": "10.1.0.0/24", "ip_version": 4,
        "gateway_ip": "10.1.0.254", "allocation_pools": [{"start": "10.1.0.10", "end": "10.1.0.19"}, {"start": "10.1.0.100", "end": "10.1.0.100"}]}));
    assert_eq!(custom["allocation_pools"].as_array().unwrap().len(), 2);

    let bad: &[(String, &str, u16)] = &[
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/33", "ip_version": 4}}}}"#), "cidr", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.5", "ip_version": 4}}}}"#), "cidr", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "banana", "ip_version": 4}}}}"#), "cidr", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/31", "ip_version": 4}}}}"#), "cidr", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "ip_version": 4}}}}"#), "cidr", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "ip_version": 6}}}}"#), "ip_version", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.0.0.128/25", "ip_version": 4}}}}"#), "overlaps", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "gateway_ip": "2001:db8::1"}}}}"#), "gateway_ip", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "gateway_ip": "10.2.0.255"}}}}"#), "gateway_ip", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "gateway_ip": "10.2.0.300"}}}}"#), "gateway_ip", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "allocation_pools": [{{"start": "10.2.1.1", "end": "10.2.1.9"}}]}}}}"#), "OutOfBoundsAllocationPool", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "allocation_pools": [{{"start": "10.2.0.9", "end": "10.2.0.2"}}]}}}}"#), "InvalidAllocationPool", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "allocation_pools": [{{"start": "10.2.0.2", "end": "10.2.0.9"}}, {{"start": "10.2.0.5", "end": "10.2.0.20"}}]}}}}"#), "overlapping", 409),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "allocation_pools": [{{"start": "10.2.0.1", "end": "10.2.0.9"}}]}}}}"#), "GatewayConflictWithAllocationPools", 409),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "allocation_pools": [{{"start": "10.2.0.2"}}]}}}}"#), "allocation_pools[0].end", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "dns_nameservers": ["8.8.8"]}}}}"#), "dns_nameservers[0]", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "host_routes": [{{"destination": "10.9.0.0/16"}}]}}}}"#), "host_routes[0].nexthop", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "subnetpool_id": "x"}}}}"#), "subnetpool_id", 400),
        (format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.2.0.0/24", "ipv6_ra_mode": "slaac"}}}}"#), "ipv6_ra_mode", 400),
        (r#"{"subnet": {"network_id": "nope", "cidr": "10.2.0.0/24"}}"#.to_string(), "network_id", 400),
        (r#"{"subnet": {"network_id": "0c0d4dd4-0000-4000-8000-000000000000", "cidr": "10.2.0.0/24"}}"#.to_string(), "network_id", 404),
    ];
    for (body, field, status) in bad {
        let e = api.fails("POST", "/v2.0/subnets", Some(body), *status);
        // Neutron's pool exceptions name their type, not the field.
        assert!(
            e["message"].as_str().unwrap().contains(field) || e["type"] == *field,
            "{body}: {e}"
        );
    }
    // Update: pools and gateway.
    let sid = s["id"].as_str().unwrap();
    let (st, u) = api.call("PUT", &format!("/v2.0/subnets/{sid}"), Some(json!({"subnet": {"allocation_pools": [{"start": "10.0.0.50", "end": "10.0.0.60"}], "name": "s2"}})));
    assert_eq!(st, 200, "{u}");
    assert_eq!(
        u["subnet"]["allocation_pools"],
        json!([{"start": "10.0.0.50", "end": "10.0.0.60"}])
    );
    let p = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "fixed_ips": [{"subnet_id": sid}]}),
    );
    assert_eq!(p["fixed_ips"][0]["ip_address"], "10.0.0.50");
    let e = api.fails(
        "PUT",
        &format!("/v2.0/subnets/{sid}"),
        Some(r#"{"subnet": {"gateway_ip": "10.0.0.50"}}"#),
        409,
    );
    assert!(e["message"].as_str().unwrap().contains("gateway_ip"));
    let e = api.fails(
        "PUT",
        &format!("/v2.0/subnets/{sid}"),
        Some(r#"{"subnet": {"gateway_ip": "10.0.0.55"}}"#),
        409,
    );
    assert_eq!(e["type"], "GatewayConflictWithAllocationPools");
    let e = api.fails(
        "PUT",
        &format!("/v2.0/subnets/{sid}"),
        Some(r#"{"subnet": {"cidr": "10.9.0.0/24"}}"#),
        400,
    );
    assert!(e["message"].as_str().unwrap().contains("cidr"));
    // In use: neither the subnet nor the network can go.
    let e = api.fails("DELETE", &format!("/v2.0/subnets/{sid}"), None, 409);
    assert_eq!(e["type"], "SubnetInUse");
    let e = api.fails("DELETE", &format!("/v2.0/networks/{nid}"), None, 409);
    assert_eq!(e["type"], "NetworkInUse");
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/v2.0/ports/{}", p["id"].as_str().unwrap()),
            None
        )
        .0,
        204
    );
    assert_eq!(
        api.call("DELETE", &format!("/v2.0/subnets/{sid}"), None).0,
        204
    );
    let subnets = api.get(&format!("/v2.0/networks/{nid}"))["network"]["subnets"].clone();
    assert_eq!(subnets.as_array().unwrap().len(), 2);
    assert_eq!(
        api.get(&format!("/v2.0/subnets?network_id={nid}"))["subnets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Deleting the network takes its remaining subnets with it.
    assert_eq!(
        api.call("DELETE", &format!("/v2.0/networks/{nid}"), None).0,
        204
    );
    assert_eq!(api.get("/v2.0/subnets")["subnets"], json!([]));
}

#[test]
fn ports_addresses_macs_and_security() {
    let dir = TempDir::new("ports");
    let api = Api::start(config(&dir));
    let (nid, sid) = net_with_subnet(&api, "n", "10.0.0.0/24");
    let p = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "name": "p1", "device_id": "vm-1"}),
    );
    assert_eq!(p["status"], "DOWN");
    assert_eq!(
        p["fixed_ips"],
        json!([{"subnet_id": sid, "ip_address": "10.0.0.2"}])
    );
    assert!(p["mac_address"].as_str().unwrap().starts_with("fa:16:3e:"));
    assert_eq!(p["port_security_enabled"], true);
    assert_eq!(p["binding:vnic_type"], "normal");
    assert_eq!(p["binding:vif_type"], "unbound");
    assert_eq!(p["binding:profile"], json!({}));
    assert_eq!(p["allowed_address_pairs"], json!([]));
    // The project's default group was created on demand, with its rules.
    let sgs = p["security_groups"].as_array().unwrap();
    assert_eq!(sgs.len(), 1);
    let g = api.get(&format!(
        "/v2.0/security-groups/{}",
        sgs[0].as_str().unwrap()
    ))["security_group"]
        .clone();
    assert_eq!(g["name"], "default");
    let rules = g["security_group_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4);
    let ingress: Vec<&Value> = rules
        .iter()
        .filter(|r| r["direction"] == "ingress")
        .collect();
    assert_eq!(ingress.len(), 2);
    assert!(ingress.iter().all(|r| r["remote_group_id"] == g["id"]));
    let eth: HashSet<&str> = rules
        .iter()
        .map(|r| r["ethertype"].as_str().unwrap())
        .collect();
    assert_eq!(eth, HashSet::from(["IPv4", "IPv6"]));

    let p2 = api.create("ports", "port", json!({"network_id": nid, "fixed_ips": [{"subnet_id": sid, "ip_address": "10.0.0.50"}],
        "mac_address": "FA:16:3E:AA:BB:CC", "allowed_address_pairs": [{"ip_address": "10.0.0.60"}, {"ip_address": "10.0.1.0/24", "mac_address": "fa:16:3e:00:00:99"}]}));
    assert_eq!(p2["fixed_ips"][0]["ip_address"], "10.0.0.50");
    assert_eq!(p2["mac_address"], "fa:16:3e:aa:bb:cc");
    assert_eq!(
        p2["allowed_address_pairs"][0],
        json!({"ip_address": "10.0.0.60", "mac_address": "fa:16:3e:aa:bb:cc"})
    );
    // An address given without its subnet finds it.
    let p3 = api.create("ports", "port", json!({"network_id": nid, "fixed_ips": [{"ip_address": "10.0.0.51"}], "port_security_enabled": false}));
    assert_eq!(p3["fixed_ips"][0]["subnet_id"], sid);
    assert_eq!(p3["security_groups"], json!([]));
    // The same MAC on another network is fine (unique per network).
    let (nid2, sid2) = net_with_subnet(&api, "n2", "10.0.0.0/29");
    let other = api.create(
        "ports",
        "port",
        json!({"network_id": nid2, "mac_address": "fa:16:3e:aa:bb:cc"}),
    );
    assert_eq!(other["mac_address"], "fa:16:3e:aa:bb:cc");

    let unknown = "0c0d4dd4-0000-4000-8000-000000000000";
    let cases: Vec<(String, &str, u16, &str)> = vec![
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"subnet_id": "{sid}", "ip_address": "10.0.0.50"}}]}}}}"#
            ),
            "IpAddressAlreadyAllocated",
            409,
            "fixed_ips[0].ip_address",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"subnet_id": "{sid}", "ip_address": "10.0.1.5"}}]}}}}"#
            ),
            "InvalidIpForSubnet",
            400,
            "fixed_ips[0].ip_address",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"ip_address": "10.9.9.9"}}]}}}}"#
            ),
            "InvalidIpForNetwork",
            400,
            "10.9.9.9",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"subnet_id": "{sid}", "ip_address": "10.0.0.0"}}]}}}}"#
            ),
            "InvalidInput",
            400,
            "network address",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"subnet_id": "{sid}", "ip_address": "10.0.0.255"}}]}}}}"#
            ),
            "InvalidInput",
            400,
            "broadcast",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"subnet_id": "{sid}", "ip_address": "10.0.0.1"}}]}}}}"#
            ),
            "InvalidInput",
            400,
            "gateway_ip",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"subnet_id": "{sid}", "ip_address": "10.0.0.256"}}]}}}}"#
            ),
            "HTTPBadRequest",
            400,
            "fixed_ips[0].ip_address",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"subnet_id": "{unknown}"}}]}}}}"#
            ),
            "SubnetNotFound",
            404,
            "fixed_ips[0].subnet_id",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"subnet_id": "{sid2}"}}]}}}}"#
            ),
            "InvalidInput",
            400,
            "fixed_ips[0].subnet_id",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"subnet": "{sid}"}}]}}}}"#
            ),
            "HTTPBadRequest",
            400,
            "fixed_ips[0].subnet",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"subnet_id": "{sid}", "ip_address": "10.0.0.70"}}, {{"subnet_id": "{sid}", "ip_address": "10.0.0.70"}}]}}}}"#
            ),
            "InvalidInput",
            400,
            "fixed_ips[1]",
        ),
        (
            format!(r#"{{"port": {{"network_id": "{nid}", "mac_address": "fa:16:3e:aa:bb:cc"}}}}"#),
            "MacAddressInUse",
            409,
            "mac_address",
        ),
        (
            format!(r#"{{"port": {{"network_id": "{nid}", "mac_address": "fa:16:3e:aa:bb"}}}}"#),
            "HTTPBadRequest",
            400,
            "mac_address",
        ),
        (
            format!(r#"{{"port": {{"network_id": "{nid}", "mac_address": "01:00:5e:00:00:01"}}}}"#),
            "HTTPBadRequest",
            400,
            "mac_address",
        ),
        (
            format!(r#"{{"port": {{"network_id": "{unknown}"}}}}"#),
            "NetworkNotFound",
            404,
            "network_id",
        ),
        (
            r#"{"port": {"network_id": "banana"}}"#.to_string(),
            "InvalidInput",
            400,
            "network_id",
        ),
        (
            r#"{"port": {"name": "x"}}"#.to_string(),
            "InvalidInput",
            400,
            "network_id",
        ),
        (
            format!(r#"{{"port": {{"network_id": "{nid}", "security_groups": ["{unknown}"]}}}}"#),
            "SecurityGroupNotFound",
            404,
            "security_groups[0]",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "security_groups": ["{}"], "port_security_enabled": false}}}}"#,
                sgs[0].as_str().unwrap()
            ),
            "PortSecurityAndIPRequiredForSecurityGroups",
            400,
            "security_groups",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "port_security_enabled": false, "allowed_address_pairs": [{{"ip_address": "10.0.0.9"}}]}}}}"#
            ),
            "AddressPairAndPortSecurityRequired",
            409,
            "allowed_address_pairs",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "allowed_address_pairs": [{{"ip_address": "10.0.0.999"}}]}}}}"#
            ),
            "HTTPBadRequest",
            400,
            "allowed_address_pairs[0].ip_address",
        ),
        (
            format!(r#"{{"port": {{"network_id": "{nid}", "binding:vnic_type": "warp"}}}}"#),
            "HTTPBadRequest",
            400,
            "binding:vnic_type",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "binding:profile": {{"pci_slot": "3b:02.1"}}}}}}"#
            ),
            "InvalidInput",
            400,
            "binding:profile.pci_slot",
        ),
        (
            format!(r#"{{"port": {{"network_id": "{nid}", "binding:vif_type": "ovs"}}}}"#),
            "HTTPBadRequest",
            400,
            "binding:vif_type",
        ),
        (
            format!(
                r#"{{"port": {{"network_id": "{nid}", "extra_dhcp_opts": [{{"opt_value": "x"}}]}}}}"#
            ),
            "HTTPBadRequest",
            400,
            "extra_dhcp_opts",
        ),
    ];
    for (body, kind, status, field) in &cases {
        let e = api.fails("POST", "/v2.0/ports", Some(body), *status);
        assert_eq!(e["type"], *kind, "{body}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{body}: {e}"
        );
    }

    // Exhaust the /29 (pool .2-.6, one address taken by `other`).
    for _ in 0..4 {
        api.create("ports", "port", json!({"network_id": nid2}));
    }
    let e = api.fails(
        "POST",
        "/v2.0/ports",
        Some(&format!(r#"{{"port": {{"network_id": "{nid2}"}}}}"#)),
        409,
    );
    assert_eq!(e["type"], "IpAddressGenerationFailure");
    assert!(e["message"].as_str().unwrap().contains("fixed_ips"));
    let e = api.fails(
        "POST",
        "/v2.0/ports",
        Some(&format!(
            r#"{{"port": {{"network_id": "{nid2}", "fixed_ips": [{{"subnet_id": "{sid2}"}}]}}}}"#
        )),
        409,
    );
    assert_eq!(e["type"], "IpAddressGenerationFailure");
    // A port without addresses is still possible.
    let bare = api.create(
        "ports",
        "port",
        json!({"network_id": nid2, "fixed_ips": []}),
    );
    assert_eq!(bare["fixed_ips"], json!([]));
    // Neutron gives it the default group all the same.
    assert_eq!(bare["security_groups"].as_array().unwrap().len(), 1);

    // Update: move the address, the old one is free again.
    let p2id = p2["id"].as_str().unwrap();
    let (s, u) = api.call("PUT", &format!("/v2.0/ports/{p2id}"), Some(json!({"port": {"fixed_ips": [{"subnet_id": sid, "ip_address": "10.0.0.80"}], "name": "moved"}})));
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["port"]["fixed_ips"][0]["ip_address"], "10.0.0.80");
    assert_eq!(u["port"]["revision_number"], 2);
    let reuse = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "fixed_ips": [{"ip_address": "10.0.0.50"}]}),
    );
    assert_eq!(reuse["fixed_ips"][0]["ip_address"], "10.0.0.50");
    // Keeping the address while adding one.
    let (s, u) = api.call("PUT", &format!("/v2.0/ports/{p2id}"), Some(json!({"port": {"fixed_ips": [{"subnet_id": sid, "ip_address": "10.0.0.80"}, {"subnet_id": sid}]}})));
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["port"]["fixed_ips"].as_array().unwrap().len(), 2);
    let e = api.fails(
        "PUT",
        &format!("/v2.0/ports/{p2id}"),
        Some(r#"{"port": {"fixed_ips": [{"ip_address": "10.0.0.2"}]}}"#),
        409,
    );
    assert_eq!(e["type"], "IpAddressAlreadyAllocated");
    let e = api.fails(
        "PUT",
        &format!("/v2.0/ports/{p2id}"),
        Some(r#"{"port": {"port_security_enabled": false}}"#),
        409,
    );
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("port_security_enabled"));
    let e = api.fails(
        "PUT",
        &format!("/v2.0/ports/{p2id}"),
        Some(r#"{"port": {"network_id": "x"}}"#),
        400,
    );
    assert!(e["message"].as_str().unwrap().contains("network_id"));
    let (s, u) = api.call("PUT", &format!("/v2.0/ports/{p2id}"), Some(json!({"port": {"security_groups": [], "allowed_address_pairs": [], "port_security_enabled": false}})));
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["port"]["port_security_enabled"], false);

    // Filters and fields on ports.
    let mine = api.get("/v2.0/ports?device_id=vm-1&fields=id&fields=device_id");
    assert_eq!(mine["ports"], json!([{"id": p["id"], "device_id": "vm-1"}]));
    assert_eq!(
        api.get(&format!("/v2.0/ports?network_id={nid2}"))["ports"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(
        api.get("/v2.0/ports?fixed_ips=ip_address%3D10.0.0.2")["ports"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        api.get(&format!(
            "/v2.0/ports?fixed_ips=ip_address%3D10.0.0.2&network_id={nid}"
        ))["ports"][0]["id"],
        p["id"]
    );
    // p, reuse, other, the 4 on n2 and the bare one have the default group.
    assert_eq!(
        api.get(&format!(
            "/v2.0/ports?security_groups={}",
            sgs[0].as_str().unwrap()
        ))["ports"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    let shown = api.get(&format!(
        "/v2.0/ports/{}?fields=mac_address",
        p["id"].as_str().unwrap()
    ));
    assert_eq!(shown, json!({"port": {"mac_address": p["mac_address"]}}));

    // The default group cannot go while ports use it.
    let e = api.fails(
        "DELETE",
        &format!("/v2.0/security-groups/{}", sgs[0].as_str().unwrap()),
        None,
        409,
    );
    assert_eq!(e["type"], "SecurityGroupInUse");
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/v2.0/ports/{}", p["id"].as_str().unwrap()),
            None
        )
        .0,
        204
    );
    api.fails(
        "DELETE",
        &format!("/v2.0/ports/{}", p["id"].as_str().unwrap()),
        None,
        404,
    );
    api.fails(
        "GET",
        &format!("/v2.0/ports/{}", p["id"].as_str().unwrap()),
        None,
        404,
    );
}

#[test]
fn security_groups_and_rules() {
    let dir = TempDir::new("secgroups");
    let api = Api::start(config(&dir));
    let g = api.create(
        "security-groups",
        "security_group",
        json!({"name": "web", "description": "web tier"}),
    );
    let gid = g["id"].as_str().unwrap().to_owned();
    assert_eq!(g["stateful"], true);
    let rules = g["security_group_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert!(rules.iter().all(|r| r["direction"] == "egress"
        && r["protocol"].is_null()
        && r["remote_ip_prefix"].is_null()));
    // The project's default group came first, as in Neutron.
    let groups = api.get("/v2.0/security-groups?name=default")["security_groups"].clone();
    assert_eq!(groups.as_array().unwrap().len(), 1);
    let default_id = groups[0]["id"].as_str().unwrap().to_owned();
    let e = api.fails(
        "POST",
        "/v2.0/security-groups",
        Some(r#"{"security_group": {"name": "default"}}"#),
        409,
    );
    assert_eq!(e["type"], "SecurityGroupDefaultAlreadyExists");
    let e = api.fails(
        "PUT",
        &format!("/v2.0/security-groups/{default_id}"),
        Some(r#"{"security_group": {"name": "other"}}"#),
        409,
    );
    assert_eq!(e["type"], "SecurityGroupCannotUpdateDefault");

    let r = api.create("security-group-rules", "security_group_rule", json!({"security_group_id": gid, "direction": "ingress",
        "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "192.168.1.7/24"}));
    // Kept as given, as Neutron keeps it; normalized_cidr has the network.
    assert_eq!(r["remote_ip_prefix"], "192.168.1.7/24");
    assert_eq!(r["normalized_cidr"], "192.168.1.0/24");
    assert_eq!(r["ethertype"], "IPv4");
    let rid = r["id"].as_str().unwrap().to_owned();
    let e = api.fails("POST", "/v2.0/security-group-rules", Some(&json!({"security_group_rule": {"security_group_id": gid, "direction": "ingress",
        "protocol": "6", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "192.168.1.0/24"}}).to_string()), 409);
    assert_eq!(e["type"], "SecurityGroupRuleExists");
    assert!(e["message"].as_str().unwrap().contains(&rid));
    let icmp = api.create(
        "security-group-rules",
        "security_group_rule",
        json!({"security_group_id": gid, "direction": "ingress",
        "protocol": "icmp", "port_range_min": 8, "port_range_max": 0}),
    );
    assert_eq!(icmp["port_range_min"], 8);
    let remote = api.create(
        "security-group-rules",
        "security_group_rule",
        json!({"security_group_id": default_id, "direction": "ingress",
        "ethertype": "IPv6", "protocol": "udp", "port_range_min": 53, "remote_group_id": gid}),
    );
    assert_eq!(remote["port_range_max"], 53);

    let unknown = "0c0d4dd4-0000-4000-8000-000000000000";
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"security_group_id": gid, "direction": "sideways"}),
            400,
            "direction",
        ),
        (json!({"security_group_id": gid}), 400, "direction"),
        (
            json!({"security_group_id": gid, "direction": "ingress", "ethertype": "IPv5"}),
            400,
            "ethertype",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}),
            400,
            "port_range_min",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "protocol": "tcp", "port_range_min": 0, "port_range_max": 80}),
            400,
            "SecurityGroupInvalidPortValue",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "protocol": "tcp", "port_range_min": 1, "port_range_max": 65536}),
            400,
            "SecurityGroupInvalidPortValue",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "protocol": "tcp", "port_range_max": 80}),
            400,
            "port_range_min",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "protocol": "icmp", "port_range_max": 0}),
            400,
            "SecurityGroupMissingIcmpType",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "protocol": "icmp", "port_range_min": 300}),
            400,
            "SecurityGroupInvalidIcmpValue",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "protocol": "gre", "port_range_min": 1}),
            400,
            "SecurityGroupInvalidProtocolForPort",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "port_range_min": 1}),
            400,
            "SecurityGroupProtocolRequiredWithPorts",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "protocol": "tcpp"}),
            400,
            "protocol",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "protocol": "256"}),
            400,
            "protocol",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "protocol": "icmpv6"}),
            400,
            "SecurityGroupEthertypeConflictWithProtocol",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "remote_ip_prefix": "2001:db8::/32"}),
            400,
            "SecurityGroupRuleParameterConflict",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "remote_ip_prefix": "10.0.0.0/40"}),
            400,
            "InvalidCIDR",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": gid}),
            400,
            "SecurityGroupMultipleRemoteEntites",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "remote_group_id": unknown}),
            404,
            "remote_group_id",
        ),
        (
            json!({"security_group_id": unknown, "direction": "ingress"}),
            404,
            "security_group_id",
        ),
        (
            json!({"security_group_id": "x", "direction": "ingress"}),
            400,
            "security_group_id",
        ),
        (
            json!({"security_group_id": gid, "direction": "ingress", "color": "red"}),
            400,
            "color",
        ),
    ];
    for (body, status, field) in &cases {
        let b = json!({"security_group_rule": body}).to_string();
        let e = api.fails("POST", "/v2.0/security-group-rules", Some(&b), *status);
        // Neutron's security-group exceptions name no field: their type says it.
        assert!(
            e["message"].as_str().unwrap().contains(field) || e["type"] == *field,
            "{b}: {e}"
        );
    }
    // Rules are immutable but for their description.
    let (s, u) = api.call(
        "PUT",
        &format!("/v2.0/security-group-rules/{rid}"),
        Some(json!({"security_group_rule": {"description": "ssh"}})),
    );
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["security_group_rule"]["description"], "ssh");
    api.fails(
        "PUT",
        &format!("/v2.0/security-group-rules/{rid}"),
        Some(r#"{"security_group_rule": {"protocol": "udp"}}"#),
        400,
    );
    // Listing and showing rules.
    let of_g = api.get(&format!(
        "/v2.0/security-group-rules?security_group_id={gid}"
    ))["security_group_rules"]
        .clone();
    assert_eq!(of_g.as_array().unwrap().len(), 4);
    assert_eq!(
        api.get(&format!("/v2.0/security-group-rules/{rid}"))["security_group_rule"]["description"],
        "ssh"
    );
    let g_now = api.get(&format!("/v2.0/security-groups/{gid}"))["security_group"].clone();
    assert_eq!(g_now["security_group_rules"].as_array().unwrap().len(), 4);
    assert!(
        g_now["revision_number"].as_u64().unwrap() > 1,
        "adding rules bumps the group"
    );
    assert_eq!(
        api.call("DELETE", &format!("/v2.0/security-group-rules/{rid}"), None)
            .0,
        204
    );
    api.fails(
        "DELETE",
        &format!("/v2.0/security-group-rules/{rid}"),
        None,
        404,
    );
    // A group in use by a port cannot go; a group only named as remote can,
    // and the rules naming it go with it.
    let (nid, _) = net_with_subnet(&api, "n", "10.0.0.0/24");
    let port = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "security_groups": [gid]}),
    );
    assert_eq!(port["security_groups"], json!([gid]));
    let e = api.fails("DELETE", &format!("/v2.0/security-groups/{gid}"), None, 409);
    assert_eq!(e["type"], "SecurityGroupInUse");
    api.call(
        "DELETE",
        &format!("/v2.0/ports/{}", port["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(
        api.call("DELETE", &format!("/v2.0/security-groups/{gid}"), None)
            .0,
        204
    );
    let d = api.get(&format!("/v2.0/security-groups/{default_id}"))["security_group"].clone();
    assert!(d["security_group_rules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["remote_group_id"] != gid.as_str()));
    api.fails(
        "GET",
        &format!(
            "/v2.0/security-group-rules/{}",
            remote["id"].as_str().unwrap()
        ),
        None,
        404,
    );
    let (s, u) = api.call(
        "PUT",
        &format!("/v2.0/security-groups/{default_id}"),
        Some(json!({"security_group": {"description": "d2"}})),
    );
    assert_eq!(s, 200, "{u}");
}

#[test]
fn tags() {
    let dir = TempDir::new("tags");
    let api = Api::start(config(&dir));
    let n = api.create("networks", "network", json!({"name": "t"}));
    let id = n["id"].as_str().unwrap();
    let (s, _) = api.call("PUT", &format!("/v2.0/networks/{id}/tags/red"), None);
    assert_eq!(s, 201);
    assert_eq!(
        api.call("GET", &format!("/v2.0/networks/{id}/tags/red"), None)
            .0,
        204
    );
    api.fails("GET", &format!("/v2.0/networks/{id}/tags/blue"), None, 404);
    let (s, v) = api.call(
        "PUT",
        &format!("/v2.0/networks/{id}/tags"),
        Some(json!({"tags": ["b", "a", "b"]})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["tags"], json!(["a", "b"]));
    assert_eq!(
        api.get(&format!("/v2.0/networks/{id}"))["network"]["tags"],
        json!(["a", "b"])
    );
    assert_eq!(
        api.get("/v2.0/networks?tags=a,b")["networks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.get("/v2.0/networks?tags=a,c")["networks"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        api.get("/v2.0/networks?tags-any=c,a")["networks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.get("/v2.0/networks?not-tags=a")["networks"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    api.fails(
        "PUT",
        &format!("/v2.0/networks/{id}/tags"),
        Some(r#"{"tags": ["a,b"]}"#),
        400,
    );
    api.fails(
        "PUT",
        &format!("/v2.0/networks/{id}/tags"),
        Some(r#"{"tags": "a"}"#),
        400,
    );
    assert_eq!(
        api.call("DELETE", &format!("/v2.0/networks/{id}/tags/a"), None)
            .0,
        204
    );
    api.fails("DELETE", &format!("/v2.0/networks/{id}/tags/a"), None, 404);
    assert_eq!(
        api.call("DELETE", &format!("/v2.0/networks/{id}/tags"), None)
            .0,
        204
    );
    assert_eq!(
        api.get(&format!("/v2.0/networks/{id}/tags"))["tags"],
        json!([])
    );
    api.fails(
        "PUT",
        "/v2.0/networks/0c0d4dd4-0000-4000-8000-000000000000/tags/x",
        None,
        404,
    );
    let created = api.create("ports", "port", json!({"network_id": id, "tags": ["x"]}));
    assert_eq!(created["tags"], json!(["x"]));
}

/// Every refused request leaves memory and disk exactly as they were.
#[test]
fn refused_requests_persist_nothing() {
    let dir = TempDir::new("refused");
    let cfg = config(&dir);
    let api = Api::start(cfg.clone());
    let (nid, sid) = net_with_subnet(&api, "n", "10.0.0.0/29");
    let p = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "mac_address": "fa:16:3e:00:00:01"}),
    );
    let pid = p["id"].as_str().unwrap();
    let g = api.create("security-groups", "security_group", json!({"name": "g"}));
    let gid = g["id"].as_str().unwrap();
    let before = state_json(&api.neutron);
    let generation = api.neutron.state().generation;
    let unknown = "0c0d4dd4-0000-4000-8000-000000000000";
    let bad: Vec<(&str, String, String, &str)> = vec![
        ("POST", "/v2.0/networks".into(), "{\"network\": {\"name\": \"x\"".into(), "Malformed"),
        ("POST", "/v2.0/networks".into(), "[1, 2]".into(), "object"),
        ("POST", "/v2.0/networks".into(), "".into(), "empty"),
        ("POST", "/v2.0/networks".into(), r#"{"network": {"name": "x", "flavour": "y"}}"#.into(), "flavour"),
        ("POST", "/v2.0/networks".into(), r#"{"network": {"name": "x"}, "extra": 1}"#.into(), "extra"),
        ("POST", "/v2.0/networks".into(), r#"{"networks": [{"name": "x"}, {"name": 5}]}"#.into(), "name"),
        ("POST", "/v2.0/networks".into(), r#"{"network": {"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 5000}}"#.into(), "provider:segmentation_id"),
        ("POST", "/v2.0/subnets".into(), format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "10.1.0.0/16", "ip_version": 4, "allocation_pools": [{{"start": "10.1.0.1", "end": "10.2.0.1"}}]}}}}"#), "spans beyond"),
        ("POST", "/v2.0/subnets".into(), format!(r#"{{"subnet": {{"network_id": "{nid}", "cidr": "300.1.0.0/16", "ip_version": 4}}}}"#), "cidr"),
        ("POST", "/v2.0/ports".into(), format!(r#"{{"port": {{"network_id": "{nid}", "mac_address": "fa:16:3e:00:00:01"}}}}"#), "mac_address"),
        ("POST", "/v2.0/ports".into(), format!(r#"{{"port": {{"network_id": "{nid}", "mac_address": "zz:16:3e:00:00:01"}}}}"#), "mac_address"),
        ("POST", "/v2.0/ports".into(), format!(r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"ip_address": "10.0.0.9"}}]}}}}"#), "10.0.0.9"),
        ("POST", "/v2.0/ports".into(), format!(r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"subnet_id": "{sid}", "ip_address": "10.0.0.3"}}, {{"subnet_id": "{sid}", "ip_address": "{}"}}]}}}}"#, p["fixed_ips"][0]["ip_address"].as_str().unwrap()), "fixed_ips[1].ip_address"),
        ("POST", "/v2.0/ports".into(), format!(r#"{{"port": {{"network_id": "{nid}", "security_groups": ["{unknown}"]}}}}"#), "security_groups[0]"),
        ("POST", "/v2.0/ports".into(), format!(r#"{{"port": {{"network_id": "{unknown}"}}}}"#), "network_id"),
        ("PUT", format!("/v2.0/ports/{pid}"), format!(r#"{{"port": {{"name": "renamed", "fixed_ips": [{{"subnet_id": "{sid}", "ip_address": "10.0.0.3"}}], "mac_address": "nope"}}}}"#), "mac_address"),
        ("PUT", format!("/v2.0/ports/{pid}"), r#"{"port": {"name": "renamed", "binding:vnic_type": "turbo"}}"#.into(), "binding:vnic_type"),
        ("PUT", format!("/v2.0/ports/{pid}"), r#"{"port": {"name": "renamed", "status": "ACTIVE"}}"#.into(), "status"),
        ("PUT", format!("/v2.0/networks/{nid}"), r#"{"network": {"name": "renamed", "mtu": 70000}}"#.into(), "mtu"),
        ("POST", "/v2.0/security-group-rules".into(), format!(r#"{{"security_group_rule": {{"security_group_id": "{gid}", "direction": "ingress", "protocol": "tcp", "port_range_min": 5, "port_range_max": 1}}}}"#), "port_range_min"),
        ("DELETE", format!("/v2.0/networks/{nid}"), String::new(), "port(s)"),
        ("DELETE", format!("/v2.0/subnets/{sid}"), String::new(), sid.as_str()),
    ];
    for (m, path, body, needle) in &bad {
        let (s, v) = api.raw(
            m,
            path,
            if body.is_empty() && *m == "DELETE" {
                None
            } else {
                Some(body)
            },
        );
        assert!((400..500).contains(&s), "{m} {path} {body}: {s} {v}");
        let msg = v["NeutronError"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"));
        assert!(
            msg.contains(needle),
            "{m} {path} {body}: message {msg:?} does not name {needle}"
        );
    }
    // Exhaust the pool, then one more must fail without a trace.
    while api
        .call(
            "POST",
            "/v2.0/ports",
            Some(json!({"port": {"network_id": nid}})),
        )
        .0
        == 201
    {}
    let before_exhausted = state_json(&api.neutron);
    let gen2 = api.neutron.state().generation;
    let e = api.fails(
        "POST",
        "/v2.0/ports",
        Some(&format!(r#"{{"port": {{"network_id": "{nid}"}}}}"#)),
        409,
    );
    assert_eq!(e["type"], "IpAddressGenerationFailure");
    assert_eq!(state_json(&api.neutron), before_exhausted);
    assert_eq!(api.neutron.state().generation, gen2);
    let _ = (before, generation);
    api.stop();
    assert_eq!(
        reopened_state(&cfg),
        before_exhausted,
        "the database differs from the acknowledged state"
    );
}

#[test]
fn no_state_change_on_refusals_before_exhaustion() {
    // The same as above without the exhaustion step: the state right after
    // the refusals equals the state before them, in memory and on disk.
    let dir = TempDir::new("refused2");
    let cfg = config(&dir);
    let api = Api::start(cfg.clone());
    let (nid, _) = net_with_subnet(&api, "n", "10.0.0.0/24");
    api.create("ports", "port", json!({"network_id": nid}));
    let before = state_json(&api.neutron);
    for body in [
        format!(
            r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"ip_address": "10.0.0.2"}}]}}}}"#
        ),
        format!(r#"{{"port": {{"network_id": "{nid}", "name": 1}}}}"#),
        format!(r#"{{"port": {{"network_id": "{nid}", "binding:profile": "x"}}}}"#),
        "{\"port\": ".to_string(),
    ] {
        let (s, _) = api.raw("POST", "/v2.0/ports", Some(&body));
        assert!((400..500).contains(&s), "{body}");
    }
    assert_eq!(state_json(&api.neutron), before);
    api.stop();
    assert_eq!(reopened_state(&cfg), before);
}

#[test]
fn concurrent_creates_never_share_an_ip_or_mac() {
    let dir = TempDir::new("concurrent");
    let cfg = config(&dir);
    let api = Api::start(cfg.clone());
    let (nid, _) = net_with_subnet(&api, "n", "10.0.0.0/24");
    let api = std::sync::Arc::new(api);
    let started = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let api = api.clone();
            let nid = nid.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for _ in 0..30 {
                    let t = Instant::now();
                    let p = api.create("ports", "port", json!({"network_id": nid}));
                    out.push((p, t.elapsed()));
                }
                out
            })
        })
        .collect();
    let mut ports = Vec::new();
    let mut lat = Vec::new();
    for h in handles {
        for (p, d) in h.join().unwrap() {
            ports.push(p);
            lat.push(d);
        }
    }
    let total = started.elapsed();
    lat.sort();
    eprintln!(
        "240 port creates from 8 threads in {total:?}: p50 {:?} p99 {:?}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
    let ips: HashSet<String> = ports
        .iter()
        .map(|p| p["fixed_ips"][0]["ip_address"].as_str().unwrap().to_owned())
        .collect();
    let macs: HashSet<String> = ports
        .iter()
        .map(|p| p["mac_address"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ips.len(), 240, "duplicate IPs handed out");
    assert_eq!(macs.len(), 240, "duplicate MACs handed out");
    let listed = api.get(&format!("/v2.0/ports?network_id={nid}"))["ports"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(listed, 240);
    let api = std::sync::Arc::try_unwrap(api)
        .ok()
        .expect("threads joined");
    let live = state_json(&api.neutron);
    api.stop();
    assert_eq!(reopened_state(&cfg), live);
}

#[test]
fn restart_restores_everything_and_allocation_continues() {
    let dir = TempDir::new("restart");
    let cfg = config(&dir);
    let api = Api::start(cfg.clone());
    let (nid, sid) = net_with_subnet(&api, "n", "10.0.0.0/24");
    let v6 = api.create(
        "subnets",
        "subnet",
        json!({"network_id": nid, "cidr": "fd00::/64", "ip_version": 6}),
    );
    let g = api.create("security-groups", "security_group", json!({"name": "g"}));
    api.create("security-group-rules", "security_group_rule", json!({"security_group_id": g["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 80}));
    let mut macs = HashSet::new();
    let mut ips = HashSet::new();
    for i in 0..5 {
        let p = api.create(
            "ports",
            "port",
            json!({"network_id": nid, "name": format!("p{i}"), "binding:host_id": HOST}),
        );
        assert_eq!(
            p["fixed_ips"].as_array().unwrap().len(),
            2,
            "one IPv4 and one IPv6 address: {p}"
        );
        macs.insert(p["mac_address"].as_str().unwrap().to_owned());
        for f in p["fixed_ips"].as_array().unwrap() {
            ips.insert(f["ip_address"].as_str().unwrap().to_owned());
        }
    }
    let first = api.get("/v2.0/ports")["ports"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.neutron
        .set_port_status(&first, PortStatus::Active)
        .unwrap();
    api.call("PUT", &format!("/v2.0/networks/{nid}/tags/kept"), None);
    let before = state_json(&api.neutron);
    drop(api.stop());

    let api = Api::start(cfg.clone());
    assert_eq!(state_json(&api.neutron), before);
    assert_eq!(
        api.get(&format!("/v2.0/ports/{first}"))["port"]["status"],
        "ACTIVE"
    );
    // New allocations avoid everything restored.
    for _ in 0..5 {
        let p = api.create("ports", "port", json!({"network_id": nid}));
        assert!(macs.insert(p["mac_address"].as_str().unwrap().to_owned()));
        for f in p["fixed_ips"].as_array().unwrap() {
            assert!(
                ips.insert(f["ip_address"].as_str().unwrap().to_owned()),
                "{f} reused after restart"
            );
        }
    }
    let e = api.fails("POST", "/v2.0/ports", Some(&format!(r#"{{"port": {{"network_id": "{nid}", "fixed_ips": [{{"subnet_id": "{sid}", "ip_address": "10.0.0.2"}}]}}}}"#)), 409);
    assert_eq!(e["type"], "IpAddressAlreadyAllocated");
    let n2 = api.create("networks", "network", json!({}));
    assert_eq!(
        n2["provider:segmentation_id"], 101,
        "VLAN 100 is still taken after restart"
    );
    assert_eq!(
        api.get(&format!("/v2.0/subnets/{}", v6["id"].as_str().unwrap()))["subnet"]["cidr"],
        "fd00::/64"
    );
}

#[test]
fn port_binding_for_nova_and_os_vif() {
    let dir = TempDir::new("binding");
    let api = Api::start(config(&dir));
    let (nid, _) = net_with_subnet(&api, "n", "10.0.0.0/24");
    let p = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "binding:host_id": HOST}),
    );
    let id = p["id"].as_str().unwrap();
    assert_eq!(p["binding:vif_type"], "vhostuser");
    assert_eq!(
        p["binding:vif_details"],
        json!({"vhostuser_socket": format!("/var/run/openvswitch/vhu{}", &id[..11]), "vhostuser_mode": "server",
            "vhostuser_ovs_plug": true, "port_filter": true, "datapath_type": "netdev", "ovs_hybrid_plug": false,
            "bridge_name": "br-int", "bound_drivers": {"0": "openvswitch"}})
    );
    // Unbind, rebind elsewhere.
    let (_, u) = api.call(
        "PUT",
        &format!("/v2.0/ports/{id}"),
        Some(json!({"port": {"binding:host_id": ""}})),
    );
    assert_eq!(u["port"]["binding:vif_type"], "unbound");
    assert_eq!(u["port"]["binding:vif_details"], json!({}));
    let (_, u) = api.call(
        "PUT",
        &format!("/v2.0/ports/{id}"),
        Some(json!({"port": {"binding:host_id": "compute-9"}})),
    );
    // No switch of ours on compute-9: binding_failed, as ML2 without an agent.
    assert_eq!(u["port"]["binding:vif_type"], "binding_failed");
    let other = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "binding:host_id": "compute-9"}),
    );
    assert_eq!(other["binding:vif_type"], "binding_failed");

    // SR-IOV.
    let seg = api.get(&format!("/v2.0/networks/{nid}"))["network"]["provider:segmentation_id"]
        .as_u64()
        .unwrap();
    let d = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "binding:host_id": HOST, "binding:vnic_type": "direct",
        "binding:profile": {"pci_slot": "0000:3b:02.1", "physical_network": "physnet1"}}),
    );
    assert_eq!(d["binding:vif_type"], "hw_veb");
    assert_eq!(
        d["binding:vif_details"],
        json!({"port_filter": false, "vlan": seg.to_string(), "connectivity": "l2",
            "bound_drivers": {"0": "sriovnicswitch"}})
    );
    assert_eq!(
        d["binding:profile"],
        json!({"pci_slot": "0000:3b:02.1", "physical_network": "physnet1"})
    );
    let no_slot = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "binding:host_id": HOST, "binding:vnic_type": "direct"}),
    );
    assert_eq!(no_slot["binding:vif_type"], "binding_failed");
    assert!(no_slot["binding:vif_details"]["reason"]
        .as_str()
        .unwrap()
        .contains("pci_slot"));
    // Fixing the profile binds it.
    let (s, u) = api.call(
        "PUT",
        &format!("/v2.0/ports/{}", no_slot["id"].as_str().unwrap()),
        Some(json!({"port": {"binding:profile": {"pci_slot": "0000:3b:02.2"}}})),
    );
    assert_eq!(s, 200);
    assert_eq!(u["port"]["binding:vif_type"], "hw_veb");
    let phys = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "binding:host_id": HOST, "binding:vnic_type": "direct-physical",
        "binding:profile": {"pci_slot": "0000:3b:00.0"}}),
    );
    assert_eq!(phys["binding:vif_type"], "hostdev_physical");
    let macvtap = api.create(
        "ports",
        "port",
        json!({"network_id": nid, "binding:host_id": HOST, "binding:vnic_type": "macvtap"}),
    );
    assert_eq!(macvtap["binding:vif_type"], "binding_failed");
    assert!(macvtap["binding:vif_details"]["reason"]
        .as_str()
        .unwrap()
        .contains("macvtap"));

    // A physnet without a bridge mapping on this host cannot bind.
    let p2 = api.create("networks", "network", json!({"provider:network_type": "vlan", "provider:physical_network": "physnet2", "provider:segmentation_id": 7}));
    let on_p2 = api.create(
        "ports",
        "port",
        json!({"network_id": p2["id"], "binding:host_id": HOST}),
    );
    assert_eq!(on_p2["binding:vif_type"], "binding_failed");
    assert!(on_p2["binding:vif_details"]["reason"]
        .as_str()
        .unwrap()
        .contains("bridge_mappings"));
    // A local network needs no mapping for vhost-user, but SR-IOV needs a VLAN.
    let local = api.create(
        "networks",
        "network",
        json!({"provider:network_type": "local"}),
    );
    let on_local = api.create(
        "ports",
        "port",
        json!({"network_id": local["id"], "binding:host_id": HOST}),
    );
    assert_eq!(on_local["binding:vif_type"], "vhostuser");
    let sriov_local = api.create("ports", "port", json!({"network_id": local["id"], "binding:host_id": HOST, "binding:vnic_type": "direct", "binding:profile": {"pci_slot": "0000:3b:02.3"}}));
    assert_eq!(sriov_local["binding:vif_type"], "binding_failed");
    // Binding filters.
    assert_eq!(
        api.get(&format!(
            "/v2.0/ports?binding:host_id={HOST}&binding:vif_type=hw_veb"
        ))["ports"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A bound port's MAC cannot change.
    let e = api.fails(
        "PUT",
        &format!("/v2.0/ports/{}", d["id"].as_str().unwrap()),
        Some(r#"{"port": {"mac_address": "fa:16:3e:12:34:56"}}"#),
        409,
    );
    assert_eq!(e["type"], "PortBound");
}

#[test]
fn token_is_required_off_loopback_and_enforced() {
    let dir = TempDir::new("token");
    let mut cfg = config(&dir);
    cfg.listen = "0.0.0.0:0".into();
    match Neutron::open(cfg.clone()) {
        Err(NeutronError::Config { key, .. }) => assert_eq!(key, "neutron.token"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a non-loopback listen without a token was accepted"),
    }
    cfg.listen = "127.0.0.1:0".into();
    cfg.token = Some("s3cret".into());
    let mut api = Api::start(cfg);
    // Version discovery stays open.
    assert_eq!(api.call("GET", "/", None).0, 200);
    let e = api.fails("GET", "/v2.0/networks", None, 401);
    assert!(e["message"].as_str().unwrap().contains("X-Auth-Token"));
    api.fails("POST", "/v2.0/networks", Some(r#"{"network": {}}"#), 401);
    api.token = Some("wrong".into());
    api.fails("GET", "/v2.0/networks", None, 401);
    api.token = Some("s3cret".into());
    assert_eq!(api.call("GET", "/v2.0/networks", None).0, 200);
    assert_eq!(
        api.neutron.state().networks.len(),
        0,
        "the refused POST created nothing"
    );
}

#[test]
fn subscribers_see_every_commit_in_order_and_status_persists() {
    let dir = TempDir::new("subscribe");
    let cfg = config(&dir);
    let api = Api::start(cfg.clone());
    let rx = api.neutron.subscribe();
    let (nid, _) = net_with_subnet(&api, "n", "10.0.0.0/24");
    let p = api.create("ports", "port", json!({"network_id": nid}));
    let pid = p["id"].as_str().unwrap();
    // network, subnet, port (+ the default group in the same commit).
    let mut gens = Vec::new();
    let mut changes = Vec::new();
    for _ in 0..3 {
        let u = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a state per commit");
        gens.push(u.state.generation);
        changes.push(u.changes);
    }
    assert_eq!(gens, vec![1, 2, 3]);
    // Each update names what its commit touched, and nothing else.
    let ids = |s: &std::collections::BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
    assert_eq!(ids(&changes[0].networks), [nid.to_string()]);
    assert!(changes[0].ports.is_empty() && changes[0].subnets.is_empty());
    assert_eq!(changes[1].subnets.len(), 1);
    assert_eq!(ids(&changes[2].ports), [pid.to_string()]);
    let default_group = p["security_groups"][0].as_str().unwrap();
    assert_eq!(
        ids(&changes[2].security_groups),
        [default_group.to_string()]
    );
    let last = api.neutron.state();
    assert!(last.ports.contains_key(pid));
    assert_eq!(last.ports[pid].status, PortStatus::Down);
    // A refused request publishes nothing.
    api.fails("POST", "/v2.0/ports", Some(r#"{"port": {}}"#), 400);
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    api.neutron
        .set_port_status(pid, PortStatus::Active)
        .unwrap();
    let u = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(u.state.ports[pid].status, PortStatus::Active);
    assert_eq!(u.state.ports[pid].std.revision_number, 2);
    assert_eq!(ids(&u.changes.ports), [pid.to_string()]);
    assert!(u.changes.networks.is_empty() && u.changes.security_groups.is_empty());
    // The same status again is no change and no notification.
    api.neutron
        .set_port_status(pid, PortStatus::Active)
        .unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    assert!(matches!(
        api.neutron.set_port_status("0c0d4dd4-0000-4000-8000-000000000000", PortStatus::Active),
        Err(NeutronError::Api(e)) if e.status == 404
    ));
    assert_eq!(
        api.get(&format!("/v2.0/ports/{pid}"))["port"]["status"],
        "ACTIVE"
    );
    // The state carries what the dataplane needs.
    let s = &u.state;
    let net = &s.networks[&nid];
    assert_eq!(net.segmentation_id, Some(100));
    let port = &s.ports[pid];
    assert_eq!(port.binding.vnic_type, "normal");
    assert_eq!(
        s.security_groups[&port.security_groups[0]]
            .security_group_rules
            .len(),
        4
    );
    api.stop();
    let n = Neutron::open(cfg).unwrap();
    assert_eq!(n.state().ports[pid].status, PortStatus::Active);
}

#[test]
fn metrics_count_requests_per_route() {
    let dir = TempDir::new("metrics");
    let api = Api::start(config(&dir));
    let (nid, _) = net_with_subnet(&api, "n", "10.0.0.0/24");
    for _ in 0..3 {
        api.create("ports", "port", json!({"network_id": nid}));
    }
    api.fails("GET", "/v2.0/ports/nope", None, 404);
    api.get("/v2.0/ports");
    let m = api.neutron.api_metrics();
    let find = |method: &str, route: &str| {
        m.iter()
            .find(|r| r.method == method && r.route == route)
            .cloned()
            .unwrap_or_else(|| panic!("{method} {route} missing: {m:?}"))
    };
    let post = find("POST", "/v2.0/ports");
    assert_eq!(post.count, 3);
    assert_eq!(post.errors, 0);
    assert!(post.total_micros > 0);
    assert_eq!(post.buckets.len(), neutron::LATENCY_BUCKETS_MICROS.len());
    assert!(post.buckets.windows(2).all(|w| w[0] <= w[1]));
    let show = find("GET", "/v2.0/ports/{id}");
    assert_eq!((show.count, show.errors), (1, 1));
    assert_eq!(find("GET", "/v2.0/ports").count, 1);
}

#[test]
fn config_errors_name_the_key() {
    let dir = TempDir::new("config");
    let mut cfg = config(&dir);
    cfg.network_vlan_ranges = vec!["physnet1:0:10".into()];
    match Neutron::open(cfg) {
        Err(NeutronError::Config { key, .. }) => assert_eq!(key, "neutron.network_vlan_ranges[0]"),
        other => panic!("{:?}", other.err()),
    }
    let mut cfg = config(&dir);
    cfg.database = dir.0.join("not-a-dir-file");
    std::fs::write(&cfg.database, b"this is not a database").unwrap();
    match Neutron::open(cfg) {
        Err(NeutronError::Store { .. }) => {}
        other => panic!("{:?}", other.err()),
    }
    let e = NeutronConfig::from_toml("listen = 5").unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
}
