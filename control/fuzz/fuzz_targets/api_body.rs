//! Neutron API requests with arbitrary bodies, answered by the real service
//! on a real SQLite file: nothing panics, and no body makes it answer 5xx
//! (every bad input is the client's error, named).
//! The first byte picks the method and collection, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn service() -> &'static neutron::Neutron {
    static SERVICE: OnceLock<neutron::Neutron> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fsw-fuzz-api-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = neutron::NeutronConfig {
            database: dir.join("neutron.db"),
            host: "compute-1".into(),
            network_vlan_ranges: vec!["physnet1:3000:3099".into()],
            bridge_mappings: vec!["physnet1:uplink".into()],
            ..Default::default()
        };
        let n = neutron::Neutron::open(cfg).expect("open the service");
        // Something to refer to: a network, a subnet, a port, a group.
        let (_, b) = n.handle(
            "POST",
            "/v2.0/networks",
            br#"{"network": {"name": "f"}}"#,
            None,
        );
        let net: serde_json::Value = serde_json::from_slice(&b).unwrap();
        let id = net["network"]["id"].as_str().unwrap().to_owned();
        let subnet = format!(
            r#"{{"subnet": {{"network_id": "{id}", "cidr": "10.0.0.0/24", "ip_version": 4}}}}"#
        );
        n.handle("POST", "/v2.0/subnets", subnet.as_bytes(), None);
        let port = format!(r#"{{"port": {{"network_id": "{id}"}}}}"#);
        n.handle("POST", "/v2.0/ports", port.as_bytes(), None);
        n
    })
}

/// The first id in a collection, for PUTs.
fn first(n: &neutron::Neutron, coll: &str, key: &str) -> String {
    let (_, b) = n.handle("GET", &format!("/v2.0/{coll}"), b"", None);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
    v[key][0]["id"].as_str().unwrap_or("none").to_owned()
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let n = service();
    const COLLS: [(&str, &str); 5] = [
        ("networks", "networks"),
        ("subnets", "subnets"),
        ("ports", "ports"),
        ("security-groups", "security_groups"),
        ("security-group-rules", "security_group_rules"),
    ];
    let (coll, key) = COLLS[(sel & 0x7) as usize % COLLS.len()];
    let (method, path) = match sel >> 3 & 0x3 {
        0 | 1 => ("POST", format!("/v2.0/{coll}")),
        2 => ("PUT", format!("/v2.0/{coll}/{}", first(n, coll, key))),
        _ => ("PUT", format!("/v2.0/{coll}/{}/tags", first(n, coll, key))),
    };
    let (status, answer) = n.handle(method, &path, body, None);
    assert!(
        status < 500,
        "{method} {path} {:?} -> {status} {}",
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(&answer)
    );
    // Keep the store small: what was created is deleted again.
    if status == 201 {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&answer) {
            let singular = key.trim_end_matches('s');
            if let Some(id) = v[singular]["id"].as_str() {
                n.handle("DELETE", &format!("/v2.0/{coll}/{id}"), b"", None);
            }
        }
    }
});
