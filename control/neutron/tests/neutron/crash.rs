//! Crash safety: a real `neutron-server` process is SIGKILLed (by PID) in
//! the middle of a stream of port creates, three times. After each restart
//! every acknowledged create must be there, nothing may be half-written,
//! and the database and the API must agree.

use crate::common::*;
use neutron::{Neutron, NeutronConfig};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 3;

fn write_config(dir: &TempDir) -> (std::path::PathBuf, NeutronConfig) {
    let cfg = config(dir);
    let path = dir.0.join("neutron.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    (path, cfg)
}

/// The server process; killed (by PID) if the test fails half-way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server; returns it and its address (read from its stdout).
fn spawn(config: &std::path::Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_neutron-server"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning neutron-server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (Server(child), format!("http://{addr}"))
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Result<Value, String> {
    match agent.post(url).send_string(&body.to_string()) {
        Ok(r) => serde_json::from_str(&r.into_string().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn get(base: &str, path: &str) -> Value {
    let r = agent().get(&format!("{base}{path}")).call().expect("GET");
    serde_json::from_str(&r.into_string().unwrap()).unwrap()
}

#[test]
fn kill_9_during_creates_loses_no_acknowledged_port() {
    let dir = TempDir::new("crash");
    let (path, cfg) = write_config(&dir);
    let (mut child, mut base) = spawn(&path);
    let a = agent();
    let net = post(
        &a,
        &format!("{base}/v2.0/networks"),
        &json!({"network": {"name": "n"}}),
    )
    .unwrap();
    let nid = net["network"]["id"].as_str().unwrap().to_owned();
    post(
        &a,
        &format!("{base}/v2.0/subnets"),
        &json!({"subnet": {"network_id": nid, "cidr": "10.8.0.0/16", "ip_version": 4}}),
    )
    .unwrap();

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut unacknowledged = 0;
    for round in 0..3u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (stop, acked, base, nid) = (stop.clone(), acked.clone(), base.clone(), nid.clone());
                std::thread::spawn(move || {
                    let a = agent();
                    let mut failed = 0;
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let body = json!({"port": {"network_id": nid, "name": format!("r{round}-c{c}-{i}")}});
                        match post(&a, &format!("{base}/v2.0/ports"), &body) {
                            Ok(p) => acked.lock().unwrap().push(p["port"]["id"].as_str().unwrap().to_owned()),
                            // The server is gone: this request may or may not have committed.
                            Err(_) => {
                                failed += 1;
                                break;
                            }
                        }
                    }
                    failed
                })
            })
            .collect();
        // Let creates flow, then kill at a point that differs per round.
        let before = acked.lock().unwrap().len();
        let t = Instant::now();
        while acked.lock().unwrap().len() < before + 20 && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(37 * round + 11));
        child.0.kill().expect("SIGKILL"); // kill(2) on this child's PID
        child.0.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for h in clients {
            unacknowledged += h.join().unwrap();
        }
        let n_acked = acked.lock().unwrap().len();
        assert!(
            n_acked >= before + 20,
            "round {round}: the server acknowledged too few creates"
        );

        // Restart: every acknowledged port is there, complete.
        let (c, b) = spawn(&path);
        child = c;
        let ports = get(&b, "/v2.0/ports")["ports"].as_array().unwrap().clone();
        let ids: HashSet<&str> = ports.iter().map(|p| p["id"].as_str().unwrap()).collect();
        for id in acked.lock().unwrap().iter() {
            assert!(
                ids.contains(id.as_str()),
                "round {round}: acknowledged port {id} lost"
            );
        }
        assert!(
            ports.len() <= n_acked + unacknowledged,
            "round {round}: {} ports but only {n_acked} acknowledged and {unacknowledged} in flight",
            ports.len()
        );
        let (ips, macs) = distinct_ips_and_macs(&ports);
        assert_eq!(ips, ports.len(), "round {round}: an IP is on two ports");
        assert_eq!(macs, ports.len(), "round {round}: a MAC is on two ports");
        eprintln!(
            "round {round}: {n_acked} acknowledged, {} present after kill -9",
            ports.len()
        );
        // The next round talks to the restarted server.
        base = b;
    }
    // Stop cleanly (SIGTERM by PID), then the database must say what the
    // API said.
    let api_ports = get(&base, "/v2.0/ports");
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.0.wait().unwrap();
    assert!(
        exit.success(),
        "neutron-server exited with {exit} on SIGTERM"
    );
    let n = Neutron::open(cfg).unwrap();
    assert_eq!(n.check_database().unwrap(), "ok");
    let db_ports: Vec<Value> = n
        .state()
        .ports
        .values()
        .map(|p| serde_json::to_value(&**p).unwrap())
        .collect();
    assert_eq!(json!({"ports": db_ports}), api_ports);
}
