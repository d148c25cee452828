//! The `network:dhcp` port the switch's DHCP server holds its address on,
//! as Neutron's DHCP agent keeps one per network: created with the first
//! subnet with DHCP, an address on each such subnet, never given to a VM,
//! gone with the last one, and never in the way of deleting a subnet or
//! the network.
use super::common::{config, ok, TempDir};
use neutron::{Neutron, NeutronConfig};
use serde_json::{json, Value};

fn dhcp_ports(n: &Neutron) -> Vec<Value> {
    let l = ok(
        n,
        "GET",
        "/v2.0/ports?device_owner=network:dhcp",
        json!(null),
        200,
    );
    l["ports"].as_array().unwrap().clone()
}

/// A Neutron with the switch's DHCP (its `network:dhcp` ports) and one
/// network, `name`: the service and the network's id.
fn with_network(dir: &TempDir, name: &str) -> (Neutron, String) {
    let n = Neutron::open(NeutronConfig {
        dhcp: true,
        ..config(dir)
    })
    .unwrap();
    let net = ok(
        &n,
        "POST",
        "/v2.0/networks",
        json!({"network": {"name": name}}),
        201,
    );
    let id = net["network"]["id"].as_str().unwrap().to_owned();
    (n, id)
}

fn subnet_ids(p: &Value) -> Vec<String> {
    p["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["subnet_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn each_network_with_dhcp_has_one_dhcp_port_kept_in_line_with_its_subnets() {
    let dir = TempDir::new("dhcp-port");
    let (n, nid) = with_network(&dir, "d");
    let subnet = |cidr: &str, dhcp: bool| {
        ok(
            &n,
            "POST",
            "/v2.0/subnets",
            json!({"subnet": {"network_id": nid, "ip_version": 4, "cidr": cidr, "enable_dhcp": dhcp}}),
            201,
        )["subnet"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let off = subnet("10.70.1.0/24", false);
    assert!(dhcp_ports(&n).is_empty(), "no subnet with DHCP yet");
    let s1 = subnet("10.70.0.0/24", true);
    let ports = dhcp_ports(&n);
    assert_eq!(ports.len(), 1);
    let p = &ports[0];
    assert_eq!(p["network_id"], nid.as_str());
    assert_eq!(
        p["fixed_ips"][0]["ip_address"], "10.70.0.2",
        "the first free address"
    );
    assert!(p["device_id"].as_str().unwrap().starts_with("dhcp"));
    assert!(p["device_id"].as_str().unwrap().ends_with(&nid));
    assert_eq!(p["binding:vif_type"], "unbound");
    // A VM's port never gets that address.
    let vm = ok(
        &n,
        "POST",
        "/v2.0/ports",
        json!({"port": {"network_id": nid, "fixed_ips": [{"subnet_id": s1}]}}),
        201,
    );
    assert_eq!(vm["port"]["fixed_ips"][0]["ip_address"], "10.70.0.3");
    // Enabling DHCP on the second subnet: an address there too.
    ok(
        &n,
        "PUT",
        &format!("/v2.0/subnets/{off}"),
        json!({"subnet": {"enable_dhcp": true}}),
        200,
    );
    let mut ids = subnet_ids(&dhcp_ports(&n)[0]);
    ids.sort();
    let mut want = vec![s1.clone(), off.clone()];
    want.sort();
    assert_eq!(ids, want);
    // Deleting a subnet takes the DHCP port's address with it.
    ok(
        &n,
        "DELETE",
        &format!("/v2.0/subnets/{off}"),
        json!(null),
        204,
    );
    assert_eq!(subnet_ids(&dhcp_ports(&n)[0]), vec![s1.clone()]);
    // DHCP off on the last one: the port goes.
    ok(
        &n,
        "PUT",
        &format!("/v2.0/subnets/{s1}"),
        json!({"subnet": {"enable_dhcp": false}}),
        200,
    );
    assert!(dhcp_ports(&n).is_empty());
    ok(
        &n,
        "PUT",
        &format!("/v2.0/subnets/{s1}"),
        json!({"subnet": {"enable_dhcp": true}}),
        200,
    );
    assert_eq!(dhcp_ports(&n).len(), 1);
    // The network goes with its DHCP port once the VM's port is gone.
    let vm_id = vm["port"]["id"].as_str().unwrap();
    ok(
        &n,
        "DELETE",
        &format!("/v2.0/ports/{vm_id}"),
        json!(null),
        204,
    );
    ok(
        &n,
        "DELETE",
        &format!("/v2.0/networks/{nid}"),
        json!(null),
        204,
    );
    assert!(dhcp_ports(&n).is_empty());
    // Restarted from its file: the same (empty) state.
    drop(n);
    let n = Neutron::open(NeutronConfig {
        dhcp: true,
        ..config(&dir)
    })
    .unwrap();
    assert!(dhcp_ports(&n).is_empty());
}

/// IPv6: the DHCP port has an address on `dhcpv6-stateful` subnets (from
/// the pool, as any port's) and `dhcpv6-stateless` ones (the automatic
/// one), as a DHCP agent's port has; a SLAAC-only subnet (no DHCPv6)
/// gives it none and makes none.
#[test]
fn the_dhcp_port_follows_dhcpv6_subnets_and_not_slaac_ones() {
    let dir = TempDir::new("dhcp6-port");
    let (n, nid) = with_network(&dir, "d6");
    let subnet = |cidr: &str, mode: &str| {
        ok(
            &n,
            "POST",
            "/v2.0/subnets",
            json!({"subnet": {"network_id": nid, "ip_version": 6, "cidr": cidr,
                              "ipv6_address_mode": mode, "ipv6_ra_mode": mode}}),
            201,
        )["subnet"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let _slaac = subnet("fd00:70:1::/64", "slaac");
    assert!(dhcp_ports(&n).is_empty(), "SLAAC alone needs no DHCP port");
    let stateful = subnet("fd00:70::/64", "dhcpv6-stateful");
    let ports = dhcp_ports(&n);
    assert_eq!(ports.len(), 1, "{ports:?}");
    let on_stateful: Vec<&Value> = ports[0]["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["subnet_id"] == stateful.as_str())
        .collect();
    assert_eq!(on_stateful.len(), 1, "{ports:?}");
    // Neutron's IPv6 gateway is the subnet-router anycast address (::):
    // the pool, and the first free address, start at ::1.
    assert_eq!(
        on_stateful[0]["ip_address"], "fd00:70::1",
        "the first free address"
    );
    let stateless = subnet("fd00:70:2::/64", "dhcpv6-stateless");
    assert!(
        subnet_ids(&dhcp_ports(&n)[0]).contains(&stateless),
        "{:?}",
        dhcp_ports(&n)
    );
}
