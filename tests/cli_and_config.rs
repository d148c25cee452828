//! The daemon's and the CLI's handling of input: bad config is refused
//! before anything starts, with the key and the reason; bad CLI and socket
//! input gets a clear error and changes nothing; signals stop it cleanly.
mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::Command;

fn two_port_config(dir: &TempDir, tag: &str) -> String {
    format!(
        "{}[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"p0\"\ndevargs = \"net_pcap0,tx_pcap={}\"\ntag = 5\n\
         [[bridges.ports]]\nname = \"p1\"\ndevargs = \"net_pcap1,tx_pcap={}\"\ntrunks = [5, 6]\n",
        config_head(dir, tag),
        dir.path("p0.pcap").display(),
        dir.path("p1.pcap").display()
    )
}

#[test]
fn bundled_default_config_checks() {
    let out = Command::new(bin("vswitchd"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "bundled default: ok"
    );
}

#[test]
fn bad_config_is_refused_naming_the_key_and_nothing_starts() {
    let _g = serial();
    let dir = TempDir::new("badcfg");
    let cases = [
        ("tag = 5000", "bridges[0].ports[1].tag"),
        ("trunks = [9999]", "bridges[0].ports[1].trunks"),
        ("vlan_mode = \"sideways\"", "bridges[0].ports[1].vlan_mode"),
        ("tag = \"ten\"", "bridges[0].ports[1].tag"),
        ("colour = \"red\"", "unknown field"),
        ("rx_queues = 0", "bridges[0].ports[1].rx_queues"),
    ];
    for (extra, want) in cases {
        let cfg = format!(
            "{}[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"ok\"\ndevargs = \"net_null0\"\n[[bridges.ports]]\nname = \"bad\"\ndevargs = \"net_null1\"\n{extra}\n",
            config_head(&dir, "badcfg")
        );
        let (code, err) = run_config(&dir, &cfg, &[]);
        assert_eq!(code, Some(2), "{extra}: {err}");
        assert!(err.contains(want), "{extra}: expected {want:?} in {err}");
        assert!(
            !err.contains("EAL:"),
            "refused before the EAL starts: {err}"
        );
        assert!(!dir.path("ctl.sock").exists());
    }
    let out = Command::new(bin("vswitchd"))
        .arg("--config")
        .arg(dir.path("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn a_device_that_cannot_be_opened_stops_startup_with_its_key() {
    let _g = serial();
    let dir = TempDir::new("baddev");
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"p0\"\ndevargs = \"net_pcap0,rx_pcap={}\"\n",
        config_head(&dir, "baddev"),
        dir.path("does-not-exist.pcap").display()
    );
    let (code, err) = run_config(&dir, &cfg, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bridges[0].ports[0].devargs: rte_dev_probe failed"),
        "{err}"
    );
    assert!(!dir.path("ctl.sock").exists());
}

#[test]
fn vswitchctl_reports_and_refuses_bad_changes_without_applying_them() {
    let _g = serial();
    let dir = TempDir::new("ctl");
    let sw = Switch::start(&dir, &two_port_config(&dir, "ctl"));

    let (ok, out, _) = ctl(&sw, None, &["port", "list"]);
    assert!(ok);
    assert!(
        out.contains("p0") && out.contains("access 5") && out.contains("trunk [5, 6]"),
        "{out}"
    );
    let (ok, out, _) = ctl(&sw, None, &["port", "stats", "--json"]);
    assert!(ok);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in [
        "name",
        "rx_packets",
        "rx_bytes",
        "tx_packets",
        "tx_bytes",
        "rx_dropped",
        "tx_dropped",
    ] {
        assert!(rows[0].get(key).is_some(), "port stats lacks {key}: {out}");
    }
    let (ok, out, _) = ctl(&sw, None, &["pmd-stats", "--json"]);
    assert!(ok);
    let pmd: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in [
        "core",
        "packets",
        "busy_cycles",
        "idle_cycles",
        "cycles_per_packet",
    ] {
        assert!(pmd[0].get(key).is_some(), "pmd-stats lacks {key}: {out}");
    }
    assert_eq!(pmd[0]["core"], 1);
    let (ok, out, _) = ctl(&sw, None, &["pmd-stats"]);
    assert!(
        ok && out.contains("avg processing cycles per packet"),
        "{out}"
    );
    let (ok, out, _) = ctl(&sw, None, &["fdb", "show"]);
    assert!(ok && out.contains("MAC"), "{out}");

    let before = ctl(&sw, None, &["port", "list", "--json"]).1;
    let bad: &[(&[&str], &str)] = &[
        (
            &["port", "add", "br0", "p2", "net_null2", "--tag", "4095"],
            "tag",
        ),
        (
            &[
                "port",
                "add",
                "br0",
                "p2",
                "net_null2",
                "--trunks",
                "1,5000",
            ],
            "trunks",
        ),
        (&["port", "add", "nobr", "p2", "net_null2"], "bridge"),
        (&["port", "add", "br0", "p0", "net_null2"], "port.name"),
        (
            &["port", "add", "br0", "p2", "net_pcap0,tx_pcap=/dev/null"],
            "port.devargs",
        ),
        (&["port", "add", "br0", "p2", "net_bogus0"], "port.devargs"),
        (&["port", "del", "nope"], "name"),
        (&["fdb", "show", "nobr"], "bridge"),
        (
            &["port", "add", "br0", "v1", "--type", "dpdkvhostuserclient"],
            "vhost_server_path",
        ),
        (
            &[
                "port",
                "add",
                "br0",
                "v1",
                "--type",
                "dpdkvhostuserclient",
                "--vhost-server-path",
                "relative.sock",
            ],
            "vhost_server_path",
        ),
        (
            &[
                "port",
                "add",
                "br0",
                "v1",
                "net_null3",
                "--type",
                "internal",
            ],
            "devargs",
        ),
        (&["port", "add", "br0", "v1", "--type", "geneve"], "type"),
        (
            &["port", "add", "br0", "v1", "--type", "vxlan"],
            "remote_ip",
        ),
        (
            &[
                "port",
                "add",
                "br0",
                "v1",
                "--type",
                "vxlan",
                "--remote-ip",
                "192.0.2.2",
                "--key",
                "7",
                "--remote-mac",
                "02:00:00:00:00:02",
            ],
            "local_ip",
        ),
        (
            &[
                "port",
                "add",
                "br0",
                "v1",
                "net_null4",
                "--tunnel-ip",
                "198.51.100.1/24",
                "--tunnel-gateway",
                "203.0.113.1",
            ],
            "tunnel_gateway",
        ),
        (
            &[
                "port",
                "add",
                "br0",
                "v1",
                "net_null4",
                "--tunnel-ip",
                "198.51.100.1/33",
            ],
            "prefix length",
        ),
    ];
    for (args, field) in bad {
        let (ok, _, err) = ctl(&sw, None, args);
        assert!(!ok, "{args:?} must fail");
        assert!(
            err.contains(field),
            "{args:?}: error should name {field}: {err}"
        );
    }
    assert_eq!(
        ctl(&sw, None, &["port", "list", "--json"]).1,
        before,
        "nothing half-applied"
    );

    // Garbage on the socket: an error answer, and the daemon lives on.
    let mut s = std::os::unix::net::UnixStream::connect(&sw.socket).unwrap();
    s.write_all(b"{\"cmd\": \"port-explode\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(
        line.contains("\"ok\":false") && line.contains("request"),
        "{line}"
    );

    let (ok, _, _) = ctl(
        &sw,
        None,
        &["port", "add", "br0", "p2", "net_null2", "--tag", "6"],
    );
    assert!(ok);
    assert!(ctl(&sw, None, &["port", "list"]).1.contains("p2"));
    let (ok, out, _) = ctl(&sw, None, &["port", "del", "p2"]);
    assert!(ok && out.contains("rx_packets"), "{out}");
    assert_eq!(ctl(&sw, None, &["port", "list", "--json"]).1, before);

    // A server-mode vhost-user port: its socket appears, DOWN until a VM comes.
    let vhs = format!("fswt-vhs{}", std::process::id());
    let (ok, _, err) = ctl(
        &sw,
        None,
        &["port", "add", "br0", &vhs, "--type", "dpdkvhostuser"],
    );
    assert!(ok, "{err}");
    let (_, out, _) = ctl(&sw, None, &["port", "list"]);
    let row = out
        .lines()
        .find(|l| l.contains(&vhs))
        .unwrap_or_default()
        .to_owned();
    assert!(
        row.contains("dpdkvhostuser") && row.contains("DOWN"),
        "{out}"
    );
    let sock = format!("/run/ferroswitch/{vhs}");
    assert!(std::path::Path::new(&sock).exists(), "{sock}");
    assert!(ctl(&sw, None, &["port", "del", &vhs]).0);
    assert!(
        !std::path::Path::new(&sock).exists(),
        "{sock} removed with the port"
    );
    assert!(sw.stop().success());
}

#[test]
fn sigterm_and_sigint_stop_cleanly() {
    let _g = serial();
    for (sig, tag) in [(libc::SIGTERM, "term"), (libc::SIGINT, "int")] {
        let dir = TempDir::new(tag);
        let mut sw = Switch::start(&dir, &two_port_config(&dir, tag));
        signal(sw.child.id(), sig);
        let st = sw.child.wait().unwrap();
        assert!(st.success(), "signal {sig}: {st}");
        assert!(!sw.socket.exists(), "socket removed on exit");
        assert!(sw.log_text().contains("stopping"));
    }
}

#[test]
fn prometheus_metrics_report_ports_pmds_and_config_latency() {
    let _g = serial();
    let dir = TempDir::new("metrics");
    let port = free_port();
    let frames: Vec<Vec<u8>> = (0..7).map(|i| frame(BCAST, A, None, i)).collect();
    write_pcap(&dir.path("in.pcap"), &frames);
    let cfg = format!(
        "{}metrics_listen = \"127.0.0.1:{port}\"\n[[bridges]]\nname = \"br0\"\n\
         [[bridges.ports]]\nname = \"src\"\ndevargs = \"net_pcap0,rx_pcap={}\"\n\
         [[bridges.ports]]\nname = \"dst\"\ndevargs = \"net_pcap1,tx_pcap={}\"\n",
        config_head(&dir, "metrics"),
        dir.path("in.pcap").display(),
        dir.path("out.pcap").display()
    );
    let sw = Switch::start(&dir, &cfg);
    sw.wait_for("7 frames", |s| s[0].rx_packets == 7);
    let (status, body) = http_get(port, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("# TYPE ferroswitch_port_rx_packets_total counter"),
        "{body}"
    );
    assert!(
        body.contains("ferroswitch_port_rx_packets_total{port=\"src\",bridge=\"br0\"} 7"),
        "{body}"
    );
    assert!(
        body.contains("ferroswitch_port_tx_packets_total{port=\"dst\",bridge=\"br0\"} 7"),
        "{body}"
    );
    assert!(
        body.contains("ferroswitch_pmd_packets_total{core=\"1\"} 7"),
        "{body}"
    );
    assert!(
        body.contains("ferroswitch_fdb_entries{bridge=\"br0\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("ferroswitch_config_apply_seconds_count 1"),
        "initial snapshot: {body}"
    );
    assert_eq!(http_get(port, "/nope").0, 404);
    assert!(sw.stop().success());
}

/// Runs `vswitchd [args] --config` on `cfg`; (exit code, stderr).
fn run_config(dir: &TempDir, cfg: &str, args: &[&str]) -> (Option<i32>, String) {
    let path = dir.path("c.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = Command::new(bin("vswitchd"))
        .args(args)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn listeners_are_bound_before_devices_and_probe_errors_say_what_is_wrong() {
    let _g = serial();
    let dir = TempDir::new("listen-first");
    // A taken metrics address is found before the EAL or any port starts.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = format!(
        "{}metrics_listen = \"127.0.0.1:{port}\"\n[[bridges]]\nname = \"br0\"\n\
         [[bridges.ports]]\nname = \"p0\"\ndevargs = \"net_null0\"\n",
        config_head(&dir, "listen-first")
    );
    let (code, err) = run_config(&dir, &cfg, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("control.metrics_listen"), "{err}");
    assert!(!err.contains("EAL:"), "the EAL started first: {err}");
    assert!(!dir.path("ctl.sock").exists(), "the socket was left behind");
    drop(taken);

    // A vdev no driver takes: say so, not DPDK's "Bad address".
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"p0\"\ndevargs = \"net_nosuchdriver0\"\n",
        config_head(&dir, "listen-first")
    );
    let (code, err) = run_config(&dir, &cfg, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bridges[0].ports[0].devargs")
            && err.contains("no DPDK driver took \"net_nosuchdriver0\""),
        "{err}"
    );

    // One port limit, stated the same way everywhere: 33 ethdevs are refused
    // by --check already.
    let mut cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n",
        config_head(&dir, "listen-first")
    );
    for i in 0..33 {
        cfg += &format!("[[bridges.ports]]\nname = \"p{i}\"\ndevargs = \"net_null{i}\"\n");
    }
    let (code, err) = run_config(&dir, &cfg, &["--check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(control_api::config::PORT_LIMIT),
        "33 ethdev ports: {err}"
    );
}
