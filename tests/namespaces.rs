//! The bundled default config on real frames: two network namespaces on
//! veth pairs attached through DPDK's af_packet PMD; `ping` crosses the
//! switch. Runs the config `vswitchd --print-default-config` prints, with
//! names made unique for the test.
mod common;

use common::*;
use std::process::Command;

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

struct Namespaces(Vec<(String, String)>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for (ns, _) in &self.0 {
            // Deleting the namespace deletes the veth pair with it.
            sh(&["ip", "netns", "del", ns]);
        }
    }
}

#[test]
fn ping_crosses_the_switch_between_namespaces() {
    let _g = serial();
    let dir = TempDir::new("netns");
    let id = std::process::id() % 100_000;
    let mut nss = Namespaces(Vec::new());
    for i in 1..=2 {
        let ns = format!("fswt{id}n{i}");
        let host = format!("fswt{id}h{i}");
        nss.0.push((ns.clone(), host.clone()));
        assert!(
            sh(&["ip", "netns", "add", &ns]),
            "ip netns add (needs root)"
        );
        assert!(sh(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns
        ]));
        sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{host}.disable_ipv6=1"),
        ]);
        assert!(sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "ip",
            "addr",
            "add",
            &format!("10.98.0.{i}/24"),
            "dev",
            "eth0"
        ]));
        assert!(sh(&[
            "ip", "netns", "exec", &ns, "ip", "link", "set", "eth0", "up"
        ]));
        assert!(sh(&["ip", "link", "set", &host, "up"]));
    }
    let api_port = free_port();
    let default = Command::new(bin("vswitchd"))
        .arg("--print-default-config")
        .output()
        .unwrap();
    let cfg = String::from_utf8(default.stdout)
        .unwrap()
        .replace("fsw-h1", &nss.0[0].1)
        .replace("fsw-h2", &nss.0[1].1)
        .replace(
            "/run/ferroswitch/vswitchd.sock",
            &dir.path("ctl.sock").display().to_string(),
        )
        .replace(
            "\"--file-prefix\", \"ferroswitch\"",
            &format!("\"--file-prefix\", \"fswt-netns-{id}\""),
        )
        .replace("127.0.0.1:9108", &format!("127.0.0.1:{}", free_port()))
        .replace("127.0.0.1:9696", &format!("127.0.0.1:{api_port}"))
        .replace(
            "/var/lib/ferroswitch/neutron.db",
            &dir.path("neutron.db").display().to_string(),
        );
    assert!(
        cfg.contains(&nss.0[0].1)
            && cfg.contains("ctl.sock")
            && cfg.contains(&*dir.path("neutron.db").to_string_lossy()),
        "default config changed shape:\n{cfg}"
    );
    let sw = Switch::start(&dir, &cfg);

    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &nss.0[0].0,
            "ping",
            "-c",
            "5",
            "-i",
            "0.2",
            "-W",
            "2",
            "10.98.0.2",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(
        ping.status.success(),
        "ping failed:\n{text}\n{}",
        sw.log_text()
    );
    assert!(text.contains("5 received"), "{text}");
    let stats = sw.stats();
    // Echo requests and replies plus ARP went both ways, nothing dropped.
    assert!(
        stats.iter().all(|p| p.rx_packets >= 5 && p.tx_packets >= 5),
        "{stats:?}"
    );
    assert!(stats.iter().all(|p| p.tx_dropped == 0), "{stats:?}");
    let fdb: Vec<control_api::protocol::FdbRow> =
        serde_json::from_value(sw.ok(&control_api::protocol::Request::FdbShow { bridge: None }))
            .unwrap();
    assert!(
        fdb.iter().all(|e| e.vlan == 10),
        "access VLAN 10 of the default config: {fdb:?}"
    );
    assert!(
        fdb.iter().any(|e| e.port == "vm1") && fdb.iter().any(|e| e.port == "vm2"),
        "{fdb:?}"
    );
    // The bundled default also serves the Neutron API.
    let (status, body) = http_get(api_port, "/");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("v2.0"), "{body}");
    let nets = ctl_json(&sw, Some(api_port), &["network", "list"]);
    assert_eq!(nets, serde_json::json!([]));
    assert!(sw.stop().success());
}

/// A veth pair whose far end sits in a new namespace with `addr`.
fn namespace_with_veth(nss: &mut Namespaces, ns: &str, host: &str, addr: &str) {
    nss.0.push((ns.to_owned(), host.to_owned()));
    assert!(sh(&["ip", "netns", "add", ns]), "ip netns add (needs root)");
    assert!(sh(&[
        "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns
    ]));
    sh(&[
        "sysctl",
        "-qw",
        &format!("net.ipv6.conf.{host}.disable_ipv6=1"),
    ]);
    for cmd in [
        vec!["ip", "addr", "add", addr, "dev", "eth0"],
        vec!["ip", "link", "set", "eth0", "up"],
    ] {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend(cmd);
        assert!(sh(&full));
    }
    assert!(sh(&["ip", "link", "set", host, "up"]));
}

fn ping(ns: Option<&str>, dst: &str) -> (bool, String) {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "ping"]);
            c
        }
        None => Command::new("ping"),
    };
    let out = cmd
        .args(["-c", "3", "-i", "0.2", "-W", "2", dst])
        .output()
        .unwrap();
    (
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("3 received"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// OVS's two host-facing port kinds on one bridge: `afpacket` ports on the
/// host ends of two namespaces' veth pairs, and an `internal` port, a TAP
/// the host itself holds an address on. Namespaces reach each other and
/// the host, and the host reaches them.
#[test]
fn internal_and_afpacket_ports_join_namespaces_and_the_host() {
    let _g = serial();
    let dir = TempDir::new("internal");
    let id = std::process::id() % 100_000;
    let mut nss = Namespaces(Vec::new());
    let (ns1, ns2) = (format!("fswt{id}i1"), format!("fswt{id}i2"));
    let (h1, h2) = (format!("fswt{id}v1"), format!("fswt{id}v2"));
    namespace_with_veth(&mut nss, &ns1, &h1, "10.97.0.1/24");
    namespace_with_veth(&mut nss, &ns2, &h2, "10.97.0.2/24");
    let tap = format!("fswt{id}br");
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n\
         [[bridges.ports]]\nname = \"{tap}\"\ntype = \"internal\"\n\
         [[bridges.ports]]\nname = \"ns1\"\ntype = \"afpacket\"\niface = \"{h1}\"\n\
         [[bridges.ports]]\nname = \"ns2\"\ntype = \"afpacket\"\niface = \"{h2}\"\n",
        config_head(&dir, "internal")
    );
    let sw = Switch::start(&dir, &cfg);
    // The internal port is a kernel interface the host configures.
    sh(&[
        "sysctl",
        "-qw",
        &format!("net.ipv6.conf.{tap}.disable_ipv6=1"),
    ]);
    assert!(sh(&["ip", "addr", "add", "10.97.0.254/24", "dev", &tap]));
    assert!(sh(&["ip", "link", "set", &tap, "up"]));
    let kinds: Vec<(String, String)> = ["ns1", "ns2", tap.as_str()]
        .iter()
        .map(|n| {
            let p = port_info(&sw, n);
            (p.kind, p.state)
        })
        .collect();
    assert_eq!(kinds[0], ("afpacket".to_owned(), "ACTIVE".to_owned()));
    assert_eq!(kinds[2].0, "internal");

    for (from, to, what) in [
        (Some(ns1.as_str()), "10.97.0.2", "namespace to namespace"),
        (Some(ns1.as_str()), "10.97.0.254", "namespace to the host"),
        (None, "10.97.0.2", "the host to a namespace"),
    ] {
        let (ok, text) = ping(from, to);
        assert!(ok, "{what}: ping {to} failed:\n{text}\n{}", sw.log_text());
    }
    let fdb: Vec<control_api::protocol::FdbRow> =
        serde_json::from_value(sw.ok(&control_api::protocol::Request::FdbShow { bridge: None }))
            .unwrap();
    for port in ["ns1", "ns2", tap.as_str()] {
        assert!(
            fdb.iter().any(|e| e.port == port),
            "{port} learned: {fdb:?}"
        );
    }
    assert!(sw.stop().success());
    assert!(
        !std::path::Path::new(&format!("/sys/class/net/{tap}")).exists(),
        "the TAP goes with the switch"
    );
}
