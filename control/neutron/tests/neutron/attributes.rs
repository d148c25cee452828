//! Attributes Neutron's model has and clients read: router:external (a
//! model attribute until an L3 service exists).
use super::common::{config, TempDir};
use neutron::Neutron;
use serde_json::{json, Value};

fn ok(n: &Neutron, method: &str, path: &str, body: Value, status: u16) -> Value {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let (st, out) = n.handle(method, path, &bytes, Some("p"));
    let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
    assert_eq!(st, status, "{method} {path} {body}: {v}");
    v
}

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
