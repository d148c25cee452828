//! Quotas and bulk creation, in process (`Neutron::handle`) on a real
//! SQLite file: limits shown, set, enforced (all or nothing for a bulk),
//! reset, and kept across a restart.
use super::common::{call_as, config, TempDir};

fn call(n: &Neutron, method: &str, path: &str, body: Value) -> (u16, Value) {
    call_as(n, "proj-a", method, path, body)
}
use neutron::Neutron;
use serde_json::{json, Value};

fn count(n: &Neutron, coll: &str) -> usize {
    let (st, v) = call(n, "GET", &format!("/v2.0/{coll}"), Value::Null);
    assert_eq!(st, 200);
    v[coll].as_array().unwrap().len()
}

#[test]
fn quotas_are_shown_set_enforced_reset_and_kept() {
    let dir = TempDir::new("quotas");
    let n = Neutron::open(config(&dir)).unwrap();
    let (st, v) = call(&n, "GET", "/v2.0/quotas/proj-a", Value::Null);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["quota"]["network"], 100);
    assert_eq!(v["quota"]["port"], 500);
    assert_eq!(v["quota"]["security_group"], 10);
    let (st, v) = call(
        &n,
        "PUT",
        "/v2.0/quotas/proj-a",
        json!({"quota": {"network": 2, "port": "3"}}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["quota"]["network"].clone(), v["quota"]["port"].clone()),
        (json!(2), json!(3))
    );
    for bad in [
        json!({"quota": {"network": -2}}),
        json!({"quota": {"nets": 1}}),
        json!({"quota": {"port": "x"}}),
    ] {
        let (st, v) = call(&n, "PUT", "/v2.0/quotas/proj-a", bad.clone());
        assert_eq!(st, 400, "{bad}: {v}");
    }
    for i in 0..2 {
        let (st, v) = call(
            &n,
            "POST",
            "/v2.0/networks",
            json!({"network": {"name": format!("n{i}")}}),
        );
        assert_eq!(st, 201, "{v}");
    }
    let (st, v) = call(
        &n,
        "POST",
        "/v2.0/networks",
        json!({"network": {"name": "n2"}}),
    );
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["NeutronError"]["type"], "OverQuota", "{v}");
    assert_eq!(count(&n, "networks"), 2);
    // Usage in the details.
    let (st, v) = call(&n, "GET", "/v2.0/quotas/proj-a/details", Value::Null);
    assert_eq!(st, 200);
    assert_eq!(
        v["quota"]["network"],
        json!({"limit": 2, "used": 2, "reserved": 0})
    );
    // Another project is not limited by proj-a's quota.
    let (st, _) = n.handle(
        "POST",
        "/v2.0/networks",
        br#"{"network": {"name": "b"}}"#,
        Some("proj-b"),
    );
    assert_eq!(st, 201);
    // Bulk: all or nothing against the quota (3 ports).
    let (_, nets) = call(&n, "GET", "/v2.0/networks?name=n0", Value::Null);
    let net = nets["networks"][0]["id"].as_str().unwrap().to_owned();
    let ports = |k: usize| json!({"ports": (0..k).map(|i| json!({"network_id": net, "name": format!("p{i}")})).collect::<Vec<_>>()});
    let (st, v) = call(&n, "POST", "/v2.0/ports", ports(4));
    assert_eq!(
        (st, v["NeutronError"]["type"].clone()),
        (409, json!("OverQuota")),
        "{v}"
    );
    assert_eq!(count(&n, "ports"), 0, "a refused bulk created something");
    let (st, v) = call(&n, "POST", "/v2.0/ports", ports(3));
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["ports"].as_array().unwrap().len(), 3);
    // The list of projects with their own quotas.
    let (_, v) = call(&n, "GET", "/v2.0/quotas", Value::Null);
    assert_eq!(v["quotas"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["quotas"][0]["project_id"], "proj-a");
    drop(n);
    // Kept across a restart, then reset.
    let n = Neutron::open(config(&dir)).unwrap();
    let (_, v) = call(&n, "GET", "/v2.0/quotas/proj-a", Value::Null);
    assert_eq!(v["quota"]["network"], 2);
    let (st, _) = call(&n, "DELETE", "/v2.0/quotas/proj-a", Value::Null);
    assert_eq!(st, 204);
    let (_, v) = call(&n, "GET", "/v2.0/quotas/proj-a", Value::Null);
    assert_eq!(v["quota"]["network"], 100);
    let (_, v) = call(&n, "GET", "/v2.0/quotas/anyone/default", Value::Null);
    assert_eq!(v["quota"]["network"], 100);
}

#[test]
fn a_bulk_create_is_all_or_nothing() {
    let dir = TempDir::new("bulk");
    let n = Neutron::open(config(&dir)).unwrap();
    let (st, v) = call(
        &n,
        "POST",
        "/v2.0/networks",
        json!({"networks": [{"name": "a"}, {"name": "b"}]}),
    );
    assert_eq!(st, 201, "{v}");
    let names: Vec<&str> = v["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let (st, v) = call(
        &n,
        "POST",
        "/v2.0/networks",
        json!({"networks": [{"name": "c"}, {"name": "d", "mtu": "big"}]}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(count(&n, "networks"), 2);
    for bad in [
        json!({"networks": []}),
        json!({"networks": [1]}),
        json!({"networks": {"name": "x"}}),
    ] {
        let (st, v) = call(&n, "POST", "/v2.0/networks", bad.clone());
        assert_eq!(st, 400, "{bad}: {v}");
    }
}

/// The project lookup the openstack client makes before `quota show/set`
/// when it has no Keystone: every well-formed id names itself.
#[test]
fn projects_are_looked_up_by_id_and_name() {
    let dir = TempDir::new("projects");
    let n = Neutron::open(config(&dir)).unwrap();
    let (st, v) = call(&n, "GET", "/v2.0/projects/proj-b", Value::Null);
    assert_eq!(
        (st, v["project"]["id"].as_str()),
        (200, Some("proj-b")),
        "{v}"
    );
    let (st, v) = call(&n, "GET", "/v2.0/projects?name=proj-b", Value::Null);
    assert_eq!(st, 200);
    assert_eq!(v["projects"][0]["name"], "proj-b", "{v}");
    let long = "x".repeat(300);
    let (st, v) = call(&n, "GET", &format!("/v2.0/projects/{long}"), Value::Null);
    assert_eq!(
        (st, v["NeutronError"]["type"].as_str()),
        (404, Some("ProjectNotFound"))
    );
    let (st, _) = call(&n, "DELETE", "/v2.0/projects/proj-b", Value::Null);
    assert_eq!(st, 405);
}
