//! Scale: many ports and security groups over HTTP, with the create
//! latency distribution and the time to list everything. Sizes default to
//! what a debug-build test run affords; the target sizes are
//!   NEUTRON_SCALE_PORTS=10000 NEUTRON_SCALE_GROUPS=1000 \
//!   cargo test -p neutron --release --test neutron scale -- --nocapture
//! The bounds asserted are loose (a shared 2-core machine, debug builds);
//! they catch work that grows with the number of resources per request.

use crate::common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn env_usize(k: &str, default: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[test]
fn many_ports_and_groups() {
    let ports = env_usize("NEUTRON_SCALE_PORTS", 2000);
    let groups = env_usize("NEUTRON_SCALE_GROUPS", 100);
    let dir = TempDir::new("scale");
    let cfg = config(&dir);
    let api = Api::start(cfg.clone());
    let n = api.create("networks", "network", json!({"name": "big"}));
    api.create(
        "subnets",
        "subnet",
        json!({"network_id": n["id"], "cidr": "10.128.0.0/16", "ip_version": 4}),
    );

    let mut lat = Vec::with_capacity(ports);
    let t0 = Instant::now();
    for i in 0..ports {
        let t = Instant::now();
        api.create("ports", "port", json!({"network_id": n["id"], "name": format!("p{i}"), "device_id": format!("vm-{i}"), "binding:host_id": HOST}));
        lat.push(t.elapsed());
    }
    let total = t0.elapsed();
    let tenth = (ports / 10).max(1);
    let early: Duration = lat[..tenth].iter().sum::<Duration>() / tenth as u32;
    let late: Duration = lat[ports - tenth..].iter().sum::<Duration>() / tenth as u32;
    eprintln!("mean create: first tenth {early:?}, last tenth {late:?}");
    lat.sort();
    eprintln!(
        "{ports} port creates in {total:?}: p50 {:?} p99 {:?} max {:?}",
        pct(&lat, 50),
        pct(&lat, 99),
        lat[lat.len() - 1]
    );

    let mut list_times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let v = api.get("/v2.0/ports");
        list_times.push(t.elapsed());
        assert_eq!(v["ports"].as_array().unwrap().len(), ports);
    }
    list_times.sort();
    let t = Instant::now();
    let one = api.get(&format!("/v2.0/ports?device_id=vm-{}", ports / 2));
    let filtered = t.elapsed();
    assert_eq!(one["ports"].as_array().unwrap().len(), 1);
    eprintln!("list of {ports} ports (HTTP + client-side JSON parse): median {:?}, min {:?}; filtered by device_id: {filtered:?}", list_times[2], list_times[0]);

    let t = Instant::now();
    for g in 0..groups {
        let sg = api.create(
            "security-groups",
            "security_group",
            json!({"name": format!("g{g}")}),
        );
        for r in 0..8 {
            api.create(
                "security-group-rules",
                "security_group_rule",
                json!({"security_group_id": sg["id"], "direction": "ingress",
                "protocol": "tcp", "port_range_min": 1000 + r, "port_range_max": 1000 + r}),
            );
        }
    }
    eprintln!(
        "{groups} groups x 10 rules (2 default + 8) created in {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let rules = api.get("/v2.0/security-group-rules");
    eprintln!(
        "list of {} rules: {:?}",
        rules["security_group_rules"].as_array().unwrap().len(),
        t.elapsed()
    );

    // Publication after each commit is O(1): a snapshot is a pointer copy.
    let rx = api.neutron.subscribe();
    let t = Instant::now();
    for _ in 0..1000 {
        let s = api.neutron.state();
        assert_eq!(s.ports.len(), ports);
    }
    let snap = t.elapsed() / 1000;
    eprintln!("state() with {ports} ports: {snap:?} per call");
    drop(rx);

    assert!(
        pct(&lat, 50) < Duration::from_millis(100),
        "port create p50 {:?}",
        pct(&lat, 50)
    );
    assert!(
        list_times[2] < Duration::from_secs(3),
        "listing {ports} ports took {:?}",
        list_times[2]
    );
    assert!(snap < Duration::from_millis(1), "state() took {snap:?}");
    // Creates late in the run cost about what early ones did (no O(n) per create).
    assert!(
        late < early * 3 + Duration::from_millis(5),
        "creates slow down: {early:?} -> {late:?}"
    );

    let t = Instant::now();
    let live = state_json(&api.neutron);
    api.stop();
    assert_eq!(reopened_state(&cfg), live);
    eprintln!("restart (open + restore + compare) in {:?}", t.elapsed());
}
