//! The Neutron model in a real etcd (Debian's `etcd-server`, started here
//! on loopback ports), shared by several API servers as by several hosts.
use super::common::{config, distinct_ips_and_macs, state_json, Api, TempDir};
use super::etcd_member::{free_port, Etcd};
use neutron::{ClusterConfig, NeutronConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A host's API on the shared model.
fn host(dir: &TempDir, etcd: &Etcd, name: &str) -> Api {
    Api::start(NeutronConfig {
        host: name.into(),
        cluster: Some(etcd.cluster()),
        ..config(dir)
    })
}

/// Waits until `f` holds (another host's commit arrives by the watch).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn net_with_subnet(api: &Api, cidr: &str) -> String {
    let n = api.create("networks", "network", json!({"name": "n"}));
    let nid = n["id"].as_str().unwrap().to_owned();
    api.create(
        "subnets",
        "subnet",
        json!({"network_id": nid, "cidr": cidr, "ip_version": 4}),
    );
    nid
}

fn without_generation(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("generation");
    v
}

#[test]
fn hosts_share_one_model_and_see_each_others_changes() {
    let dir = TempDir::new("etcd-share");
    let etcd = Etcd::start(&dir.0);
    let a = host(&dir, &etcd, "host-a");
    let b = host(&dir, &etcd, "host-b");
    let updates = b.neutron.subscribe();
    let nid = net_with_subnet(&a, "10.1.0.0/24");
    // Host b's API knows the network host a created, and b's subscribers
    // (its dataplane) were told.
    eventually("b sees the network", || {
        b.call("GET", &format!("/v2.0/networks/{nid}"), None).0 == 200
    });
    let mut told = false;
    while let Ok(u) = updates.try_recv() {
        told |= u.changes.networks.contains(&nid);
    }
    assert!(told, "b's subscriber was not told of a's network");
    // A port created through b, bound to a: a has it; the address b
    // allocated is taken for a too.
    let p = b.create(
        "ports",
        "port",
        json!({"network_id": nid, "binding:host_id": "host-a",
               "fixed_ips": [{"ip_address": "10.1.0.50"}]}),
    );
    let pid = p["id"].as_str().unwrap();
    eventually("a sees the port", || {
        a.call("GET", &format!("/v2.0/ports/{pid}"), None).0 == 200
    });
    let e = a.fails(
        "POST",
        "/v2.0/ports",
        Some(
            &json!({"port": {"network_id": nid, "fixed_ips": [{"ip_address": "10.1.0.50"}]}})
                .to_string(),
        ),
        409,
    );
    assert_eq!(e["type"], "IpAddressAlreadyAllocated", "{e}");
    // An update on a reaches b; a delete on b reaches a.
    let (s, _) = a.call(
        "PUT",
        &format!("/v2.0/ports/{pid}"),
        Some(json!({"port": {"name": "renamed"}})),
    );
    assert_eq!(s, 200);
    eventually("b sees the update", || {
        b.get(&format!("/v2.0/ports/{pid}"))["port"]["name"] == "renamed"
    });
    let (s, _) = b.call("DELETE", &format!("/v2.0/ports/{pid}"), None);
    assert_eq!(s, 204);
    eventually("a sees the delete", || {
        a.call("GET", &format!("/v2.0/ports/{pid}"), None).0 == 404
    });
    // The address is free again for either host.
    a.create(
        "ports",
        "port",
        json!({"network_id": nid, "fixed_ips": [{"ip_address": "10.1.0.50"}]}),
    );
    eventually("both hosts hold the same model", || {
        without_generation(state_json(&a.neutron)) == without_generation(state_json(&b.neutron))
    });
    assert_eq!(a.neutron.check_database().unwrap(), "ok");
    assert_eq!(b.neutron.check_database().unwrap(), "ok");
    // Ten rules in one commit (a bulk create): every host must keep them
    // in the order they were made, not etcd's key order.
    let g = b.create("security-groups", "security_group", json!({"name": "web"}));
    let rules: Vec<Value> = (0..10)
        .map(|i| {
            json!({"security_group_id": g["id"], "direction": "ingress", "ethertype": "IPv4",
                   "protocol": "tcp", "port_range_min": 8000 + i, "port_range_max": 8000 + i})
        })
        .collect();
    let (s, v) = b.call(
        "POST",
        "/v2.0/security-group-rules",
        Some(json!({ "security_group_rules": rules })),
    );
    assert_eq!(s, 201, "{v}");
    // A host that starts later (or again) reads the whole model; the ones
    // that followed it change by change (a, b) hold the same.
    let c = host(&dir, &etcd, "host-c");
    let fresh = without_generation(state_json(&c.neutron));
    assert_eq!(without_generation(state_json(&b.neutron)), fresh);
    eventually("a holds the model a fresh start reads", || {
        without_generation(state_json(&a.neutron)) == fresh
    });
}

/// Issue 16: two hosts' APIs create 200 ports each at once in one network;
/// no IP or MAC is handed out twice.
#[test]
fn concurrent_creates_on_two_hosts_never_share_an_ip_or_mac() {
    let dir = TempDir::new("etcd-concurrent");
    let etcd = Etcd::start(&dir.0);
    let a = std::sync::Arc::new(host(&dir, &etcd, "host-a"));
    let b = std::sync::Arc::new(host(&dir, &etcd, "host-b"));
    let nid = net_with_subnet(&a, "10.2.0.0/22");
    eventually("b sees the network", || {
        b.call("GET", &format!("/v2.0/networks/{nid}"), None).0 == 200
    });
    let started = Instant::now();
    let mut handles = Vec::new();
    for api in [&a, &b] {
        for _ in 0..4 {
            let api = api.clone();
            let nid = nid.clone();
            handles.push(std::thread::spawn(move || {
                (0..50)
                    .map(|_| api.create("ports", "port", json!({"network_id": nid})))
                    .collect::<Vec<_>>()
            }));
        }
    }
    let ports: Vec<Value> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    eprintln!(
        "400 port creates through two hosts' APIs (4 clients each) in {:?}",
        started.elapsed()
    );
    let (ips, macs) = distinct_ips_and_macs(&ports);
    assert_eq!(ips, 400, "an IP was handed out twice");
    assert_eq!(macs, 400, "a MAC was handed out twice");
    for api in [&a, &b] {
        eventually("every port on both hosts", || {
            api.get(&format!("/v2.0/ports?network_id={nid}"))["ports"]
                .as_array()
                .unwrap()
                .len()
                == 400
        });
        assert_eq!(api.neutron.check_database().unwrap(), "ok");
    }
    // Each host's model, built by its own commits and the other's as the
    // watch brought them, is the one a fresh start reads.
    let c = host(&dir, &etcd, "host-c");
    let fresh = without_generation(state_json(&c.neutron));
    assert_eq!(without_generation(state_json(&a.neutron)), fresh);
    assert_eq!(without_generation(state_json(&b.neutron)), fresh);
}

/// vxlan networks made at once through two hosts' APIs never share a
/// VNI: etcd's create-only `vnis/VNI` keys hold each once.
#[test]
fn concurrent_vxlan_networks_on_two_hosts_never_share_a_vni() {
    let dir = TempDir::new("etcd-vni");
    let etcd = Etcd::start(&dir.0);
    let start = |name: &str| {
        let mut cfg = config(&dir);
        cfg.host = name.into();
        cfg.tenant_network_type = "vxlan".into();
        cfg.vni_ranges = vec!["7000:7999".into()];
        cfg.cluster = Some(etcd.cluster());
        std::sync::Arc::new(Api::start(cfg))
    };
    let (a, b) = (start("host-a"), start("host-b"));
    let handles: Vec<_> = [&a, &b, &a, &b]
        .into_iter()
        .map(|api| {
            let api = api.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| {
                        api.create("networks", "network", json!({}))["provider:segmentation_id"]
                            .as_u64()
                            .unwrap()
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut vnis: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    vnis.sort();
    vnis.dedup();
    assert_eq!(
        vnis,
        (7000..7100).collect::<Vec<u64>>(),
        "a VNI twice, or one skipped"
    );
    for api in [&a, &b] {
        eventually("both hosts hold all 100", || {
            api.get("/v2.0/networks")["networks"]
                .as_array()
                .unwrap()
                .len()
                == 100
        });
        assert_eq!(api.neutron.check_database().unwrap(), "ok");
    }
}

/// etcd lost: reads keep the last model, writes answer 503 and change
/// nothing; etcd back: writes go through and the watch resumes (another
/// host's commits made meanwhile arrive).
#[test]
fn a_lost_etcd_is_a_503_then_everything_resumes() {
    let dir = TempDir::new("etcd-lost");
    let mut etcd = Etcd::start(&dir.0);
    let a = host(&dir, &etcd, "host-a");
    let b = host(&dir, &etcd, "host-b");
    let nid = net_with_subnet(&a, "10.3.0.0/24");
    eventually("b sees the network", || {
        b.call("GET", &format!("/v2.0/networks/{nid}"), None).0 == 200
    });
    etcd.kill();
    let before = without_generation(state_json(&a.neutron));
    let e = a.fails(
        "POST",
        "/v2.0/ports",
        Some(&json!({"port": {"network_id": nid}}).to_string()),
        503,
    );
    assert!(
        e["message"].as_str().unwrap().contains("etcd"),
        "the 503 says why: {e}"
    );
    assert_eq!(
        a.get("/v2.0/networks")["networks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(without_generation(state_json(&a.neutron)), before);
    etcd.run();
    // The client reconnects on its own; the first write may still find
    // the connection down.
    let deadline = Instant::now() + Duration::from_secs(15);
    let port = loop {
        let (s, v) = b.call(
            "POST",
            "/v2.0/ports",
            Some(json!({"port": {"network_id": nid}})),
        );
        if s == 201 {
            break v["port"].clone();
        }
        assert_eq!(s, 503, "{v}");
        assert!(
            Instant::now() < deadline,
            "etcd back, writes still refused: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let pid = port["id"].as_str().unwrap();
    eventually("a's watch resumed", || {
        a.call("GET", &format!("/v2.0/ports/{pid}"), None).0 == 200
    });
    a.create("ports", "port", json!({"network_id": nid}));
    assert_eq!(a.neutron.check_database().unwrap(), "ok");
}

#[test]
fn cluster_config_errors_name_the_key() {
    let dir = TempDir::new("etcd-config");
    let with = |c: ClusterConfig| match neutron::Neutron::open(NeutronConfig {
        cluster: Some(c),
        ..config(&dir)
    }) {
        Err(neutron::NeutronError::Config { key, .. }) => key,
        Err(e) => panic!("not a config error: {e}"),
        Ok(_) => panic!("accepted"),
    };
    let base = ClusterConfig {
        etcd_endpoints: vec!["http://127.0.0.1:2379".into()],
        ..ClusterConfig::default()
    };
    assert_eq!(
        with(ClusterConfig {
            etcd_endpoints: vec![],
            ..base.clone()
        }),
        "cluster.etcd_endpoints"
    );
    assert_eq!(
        with(ClusterConfig {
            etcd_endpoints: vec!["http://127.0.0.1:2379".into(), "127.0.0.1:2379".into()],
            ..base.clone()
        }),
        "cluster.etcd_endpoints[1]"
    );
    assert_eq!(
        with(ClusterConfig {
            etcd_endpoints: vec!["https://127.0.0.1:2379".into()],
            ..base.clone()
        }),
        "cluster.etcd_endpoints[0]"
    );
    assert_eq!(
        with(ClusterConfig {
            prefix: "no-slash".into(),
            ..base.clone()
        }),
        "cluster.prefix"
    );
    assert_eq!(
        with(ClusterConfig {
            cert_file: Some("/c.pem".into()),
            ..base.clone()
        }),
        "cluster.key_file"
    );
    assert_eq!(
        with(ClusterConfig {
            timeout_ms: 5,
            ..base.clone()
        }),
        "cluster.timeout_ms"
    );
    // Nothing listening: a store error naming etcd, not a hang.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let t = Instant::now();
    let e = neutron::Neutron::open(NeutronConfig {
        cluster: Some(ClusterConfig {
            etcd_endpoints: vec![closed.clone()],
            timeout_ms: 500,
            ..ClusterConfig::default()
        }),
        ..config(&dir)
    })
    .err()
    .expect("opened without etcd");
    assert!(e.to_string().contains(&closed), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
}

/// Issue 16: a host registers (under a lease) and any host's API can then
/// bind ports to it, with that host's own socket directory and bridge; a
/// host no daemon registered fails to bind, as ML2 without a live agent;
/// a host that leaves has its ports go DOWN.
#[test]
fn ports_bind_to_registered_hosts_and_go_down_when_their_host_leaves() {
    let dir = TempDir::new("etcd-hosts");
    let etcd = Etcd::start(&dir.0);
    let a = host(&dir, &etcd, "host-a");
    let b = Api::start(NeutronConfig {
        host: "host-b".into(),
        vhost_socket_dir: "/run/host-b-vhu".into(),
        cluster: Some(ClusterConfig {
            host_ttl_secs: 2,
            ..etcd.cluster()
        }),
        ..config(&dir)
    });
    b.neutron.register_host(None).unwrap();
    eventually("a knows host-b", || {
        a.neutron.state().hosts.contains_key("host-b")
    });
    let registered = &a.neutron.state().hosts["host-b"];
    assert_eq!(registered.vhost_socket_dir, "/run/host-b-vhu");
    assert!(!registered.started_at.is_empty());
    assert!(
        !a.neutron.state().hosts.contains_key("host-a"),
        "only daemons with a dataplane register"
    );

    let nid = net_with_subnet(&a, "10.4.0.0/24");
    let p = a.create(
        "ports",
        "port",
        json!({"network_id": nid, "binding:host_id": "host-b"}),
    );
    assert_eq!(p["binding:vif_type"], "vhostuser", "{p}");
    let pid = p["id"].as_str().unwrap().to_owned();
    assert_eq!(
        p["binding:vif_details"]["vhostuser_socket"],
        format!("/run/host-b-vhu/vhu{}", &pid[..11]),
        "bound with host-b's own settings: {p}"
    );
    let nowhere = a.create(
        "ports",
        "port",
        json!({"network_id": nid, "binding:host_id": "host-z"}),
    );
    assert_eq!(nowhere["binding:vif_type"], "binding_failed", "{nowhere}");

    // host-b's dataplane reports the port up; then host-b stops.
    eventually("b has the port", || {
        b.neutron.state().ports.contains_key(&pid)
    });
    b.neutron
        .set_port_status(&pid, neutron::PortStatus::Active)
        .unwrap();
    eventually("a sees it ACTIVE", || {
        a.get(&format!("/v2.0/ports/{pid}"))["port"]["status"] == "ACTIVE"
    });
    let service = b.stop();
    drop(service);
    eventually("host-b gone and its port DOWN", || {
        !a.neutron.state().hosts.contains_key("host-b")
            && a.get(&format!("/v2.0/ports/{pid}"))["port"]["status"] == "DOWN"
    });
    // A port bound to host-b now fails to bind.
    let late = a.create(
        "ports",
        "port",
        json!({"network_id": nid, "binding:host_id": "host-b"}),
    );
    assert_eq!(late["binding:vif_type"], "binding_failed", "{late}");
}

/// `[cluster]` over TLS with client certificates (etcd's
/// `--client-cert-auth`): two hosts share the model; a host without a
/// client certificate is refused, with an error naming etcd.
#[test]
fn tls_with_client_certificates() {
    let dir = TempDir::new("etcd-tls");
    let etcd = Etcd::start_tls(&dir.0);
    let a = host(&dir, &etcd, "host-a");
    let b = host(&dir, &etcd, "host-b");
    let nid = net_with_subnet(&a, "10.5.0.0/24");
    eventually("b sees the network over TLS", || {
        b.call("GET", &format!("/v2.0/networks/{nid}"), None).0 == 200
    });
    let anonymous = ClusterConfig {
        cert_file: None,
        key_file: None,
        ..etcd.cluster()
    };
    let e = neutron::Neutron::open(NeutronConfig {
        cluster: Some(anonymous),
        ..config(&dir)
    })
    .err()
    .expect("etcd let in a client without a certificate");
    assert!(e.to_string().contains(&etcd.client_url), "{e}");
}
