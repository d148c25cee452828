//! Helpers shared by the Neutron integration tests.
use neutron::{ApiServer, Neutron, NeutronConfig};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

pub const HOST: &str = "compute-1";

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("fsw-neutron-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// physnet1: tenant VLANs 100-102, mapped to br-phy; physnet2: provider
/// networks only, no bridge mapping on this host.
pub fn config(dir: &TempDir) -> NeutronConfig {
    NeutronConfig {
        listen: "127.0.0.1:0".into(),
        database: dir.0.join("neutron.db"),
        token: None,
        host: HOST.into(),
        network_vlan_ranges: vec!["physnet1:100:102".into(), "physnet2".into()],
        bridge_mappings: vec!["physnet1:br-phy".into()],
        vhost_socket_dir: "/var/run/openvswitch".into(),
        base_mac: "fa:16:3e:00:00:00".into(),
        tenant_network_type: "vlan".into(),
        // These tests hold the API to a Neutron without a DHCP agent (as
        // scripts/neutron_diff.py does); the DHCP port: `dhcp.rs`.
        dhcp: false,
        ..NeutronConfig::default()
    }
}

pub struct Api {
    pub neutron: Neutron,
    pub server: Option<ApiServer>,
    pub base: String,
    agent: ureq::Agent,
    pub token: Option<String>,
}

impl Api {
    pub fn start(cfg: NeutronConfig) -> Api {
        let neutron = Neutron::open(cfg).expect("open");
        let server = neutron.serve().expect("serve");
        let base = format!("http://{}", server.local_addr());
        Api {
            neutron,
            server: Some(server),
            base,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
            token: None,
        }
    }

    pub fn stop(mut self) -> Neutron {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        self.neutron.clone()
    }

    /// Sends `body` as is; returns the status and the parsed body (Null
    /// when empty).
    pub fn raw(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut r = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("Content-Type", "application/json");
        if let Some(t) = &self.token {
            r = r.set("X-Auth-Token", t);
        }
        let res = match body {
            Some(b) => r.send_string(b),
            None => r.call(),
        };
        let (status, resp) = match res {
            Ok(resp) => (resp.status(), resp),
            Err(ureq::Error::Status(code, resp)) => (code, resp),
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let text = resp.into_string().unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
        };
        (status, v)
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.raw(method, path, body.map(|b| b.to_string()).as_deref())
    }

    pub fn get(&self, path: &str) -> Value {
        let (s, v) = self.call("GET", path, None);
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    /// POST that must succeed (201); returns the created object.
    pub fn create(&self, coll: &str, key: &str, body: Value) -> Value {
        let (s, v) = self.call(
            "POST",
            &format!("/v2.0/{coll}"),
            Some(serde_json::json!({ key: body })),
        );
        assert_eq!(s, 201, "POST {coll}: {v}");
        v[key].clone()
    }

    /// A request that must fail with `status`; returns the NeutronError.
    pub fn fails(&self, method: &str, path: &str, body: Option<&str>, status: u16) -> Value {
        let (s, v) = self.raw(method, path, body);
        assert_eq!(s, status, "{method} {path} {body:?}: {v}");
        let e = v["NeutronError"].clone();
        assert!(
            e["type"].is_string() && e["message"].is_string(),
            "not a NeutronError: {v}"
        );
        assert_eq!(e["detail"], "", "{v}");
        e
    }
}

/// The committed state as JSON, without the per-process generation.
pub fn state_json(n: &Neutron) -> Value {
    let mut v = serde_json::to_value(&*n.state()).unwrap();
    v.as_object_mut().unwrap().remove("generation");
    v
}

/// Opens the database in a fresh `Neutron` (no server) and returns its state.
pub fn reopened_state(cfg: &NeutronConfig) -> Value {
    let n = Neutron::open(cfg.clone()).expect("reopen");
    assert_eq!(n.check_database().unwrap(), "ok");
    state_json(&n)
}

/// One request answered in process (`Neutron::handle`) as project `p`
/// (`proj-a` for the quota tests); the status and the parsed body (Null
/// when empty).
pub fn call_as(n: &Neutron, project: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let (st, out) = n.handle(method, path, &bytes, Some(project));
    (st, serde_json::from_slice(&out).unwrap_or(Value::Null))
}

/// As [`call_as`] for project `p`, expecting `status`; the body.
pub fn ok(n: &Neutron, method: &str, path: &str, body: Value, status: u16) -> Value {
    let (st, v) = call_as(n, "p", method, path, body.clone());
    assert_eq!(st, status, "{method} {path} {body}: {v}");
    v
}

/// How many distinct IPv4 addresses (first fixed IP) and MACs `ports` hold.
pub fn distinct_ips_and_macs(ports: &[Value]) -> (usize, usize) {
    let ips: std::collections::HashSet<&str> = ports
        .iter()
        .map(|p| p["fixed_ips"][0]["ip_address"].as_str().unwrap())
        .collect();
    let macs: std::collections::HashSet<&str> = ports
        .iter()
        .map(|p| p["mac_address"].as_str().unwrap())
        .collect();
    (ips.len(), macs.len())
}
