//! IPv6 subnets as Neutron makes them: the subnet-router anycast gateway and
//! pools from ::1 by default, SLAAC and DHCPv6 modes, EUI-64 addresses
//! computed from the MAC (for ports made before and after the subnet,
//! following a MAC change, gone with the subnet), and a gateway outside
//! the CIDR.
use super::common::{call_as, config, ok, TempDir};
use neutron::Neutron;
use serde_json::{json, Value};

fn ips(port: &Value) -> Vec<String> {
    port["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ip_address"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn ipv6_defaults_slaac_and_eui64_addresses() {
    let dir = TempDir::new("ipv6");
    let n = Neutron::open(config(&dir)).unwrap();
    let net = ok(
        &n,
        "POST",
        "/v2.0/networks",
        json!({"network": {"name": "v6"}}),
        201,
    );
    let nid = net["network"]["id"].as_str().unwrap().to_owned();
    // Neutron's IPv6 defaults.
    let s = ok(
        &n,
        "POST",
        "/v2.0/subnets",
        json!({"subnet": {"network_id": nid, "ip_version": 6, "cidr": "fd00:10::/64"}}),
        201,
    );
    assert_eq!(s["subnet"]["gateway_ip"], "fd00:10::");
    assert_eq!(
        s["subnet"]["allocation_pools"],
        json!([{"start": "fd00:10::1", "end": "fd00:10::ffff:ffff:ffff:ffff"}])
    );
    // A port made before the SLAAC subnet exists.
    let early = ok(
        &n,
        "POST",
        "/v2.0/ports",
        json!({"port": {"network_id": nid, "mac_address": "fa:16:3e:11:22:33"}}),
        201,
    );
    let eid = early["port"]["id"].as_str().unwrap().to_owned();
    assert_eq!(ips(&early["port"]), ["fd00:10::1"]);
    let slaac = ok(
        &n,
        "POST",
        "/v2.0/subnets",
        json!({"subnet": {"network_id": nid, "ip_version": 6,
        "cidr": "fd00:20::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}),
        201,
    );
    let sid = slaac["subnet"]["id"].as_str().unwrap().to_owned();
    assert_eq!(slaac["subnet"]["ipv6_address_mode"], "slaac");
    let early = ok(&n, "GET", &format!("/v2.0/ports/{eid}"), Value::Null, 200);
    assert_eq!(
        ips(&early["port"]),
        ["fd00:10::1", "fd00:20::f816:3eff:fe11:2233"]
    );
    // A new port gets its EUI-64 address, and security groups with it.
    let p = ok(
        &n,
        "POST",
        "/v2.0/ports",
        json!({"port": {"network_id": nid, "mac_address": "fa:16:3e:aa:bb:cc"}}),
        201,
    );
    assert_eq!(
        ips(&p["port"]),
        ["fd00:10::2", "fd00:20::f816:3eff:feaa:bbcc"]
    );
    assert_eq!(p["port"]["security_groups"].as_array().unwrap().len(), 1);
    let pid = p["port"]["id"].as_str().unwrap().to_owned();
    // An address cannot be asked for on an auto-address subnet.
    let (st, v) = call_as(
        &n,
        "p",
        "POST",
        "/v2.0/ports",
        json!({"port": {"network_id": nid,
        "fixed_ips": [{"subnet_id": sid, "ip_address": "fd00:20::5"}]}}),
    );
    assert_eq!(
        (st, v["NeutronError"]["type"].as_str()),
        (400, Some("InvalidInput")),
        "{v}"
    );
    // A new MAC is a new EUI-64 address.
    let p = ok(
        &n,
        "PUT",
        &format!("/v2.0/ports/{pid}"),
        json!({"port": {"mac_address": "fa:16:3e:aa:bb:cd"}}),
        200,
    );
    assert_eq!(
        ips(&p["port"]),
        ["fd00:10::2", "fd00:20::f816:3eff:feaa:bbcd"]
    );
    // The subnet's addresses go with it.
    ok(
        &n,
        "DELETE",
        &format!("/v2.0/subnets/{sid}"),
        Value::Null,
        204,
    );
    let p = ok(&n, "GET", &format!("/v2.0/ports/{pid}"), Value::Null, 200);
    assert_eq!(ips(&p["port"]), ["fd00:10::2"]);
    // Refused combinations.
    for (body, kind) in [
        (
            json!({"network_id": nid, "ip_version": 4, "cidr": "10.1.0.0/24", "ipv6_address_mode": "slaac"}),
            "InvalidInput",
        ),
        (
            json!({"network_id": nid, "ip_version": 6, "cidr": "fd00:30::/60", "ipv6_address_mode": "slaac"}),
            "InvalidInput",
        ),
        (
            json!({"network_id": nid, "ip_version": 6, "cidr": "fd00:30::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "dhcpv6-stateful"}),
            "InvalidInput",
        ),
        (
            json!({"network_id": nid, "ip_version": 6, "cidr": "fd00:30::/64", "ipv6_address_mode": "eui"}),
            "HTTPBadRequest",
        ),
    ] {
        let (st, v) = call_as(&n, "p", "POST", "/v2.0/subnets", json!({ "subnet": body }));
        assert_eq!(
            (st, v["NeutronError"]["type"].as_str()),
            (400, Some(kind)),
            "{body}: {v}"
        );
    }
    // DHCPv6-stateful allocates from the pools.
    let s = ok(
        &n,
        "POST",
        "/v2.0/subnets",
        json!({"subnet": {"network_id": nid, "ip_version": 6,
        "cidr": "fd00:40::/64", "ipv6_address_mode": "dhcpv6-stateful"}}),
        201,
    );
    assert_eq!(s["subnet"]["ipv6_address_mode"], "dhcpv6-stateful");
    // A gateway outside the CIDR, as Neutron allows.
    let s = ok(
        &n,
        "POST",
        "/v2.0/subnets",
        json!({"subnet": {"network_id": nid, "ip_version": 4,
        "cidr": "10.2.0.0/24", "gateway_ip": "10.9.9.1"}}),
        201,
    );
    assert_eq!(s["subnet"]["gateway_ip"], "10.9.9.1");
    assert_eq!(
        s["subnet"]["allocation_pools"],
        json!([{"start": "10.2.0.1", "end": "10.2.0.254"}])
    );
    drop(n);
    // Restored: the auto subnet is gone, the stateful one allocates on.
    let n = Neutron::open(config(&dir)).unwrap();
    let p = ok(&n, "GET", &format!("/v2.0/ports/{eid}"), Value::Null, 200);
    assert_eq!(ips(&p["port"]), ["fd00:10::1"]);
}
