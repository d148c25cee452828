//! vhost-user ports against a real vhost-user frontend: `dpdk-testpmd` with
//! `net_virtio_user` in its own process plays the VM (needs hugepages:
//! scripts/setup.sh reserves them). Frames the switch sends the VM come
//! back MAC-swapped, so one pcap port checks both directions. Client mode
//! (the VM owns the socket, OVS's dpdkvhostuserclient), server mode (the
//! switch does, dpdkvhostuser), port state DOWN -> ACTIVE -> DOWN, restarts
//! of vswitchd under traffic, and Neutron binding a port to a VM's socket.
mod common;

use common::*;
use control_api::config::PortConfig;
use control_api::protocol::Request;
use std::time::{Duration, Instant};

const N: u32 = 64;

/// Adds a pcap port that replays `N` frames A -> B once and records what
/// the switch sends it.
fn add_source(sw: &Switch, dir: &TempDir) {
    let frames: Vec<Vec<u8>> = (0..N).map(|i| frame(B, A, None, i)).collect();
    write_pcap(&dir.path("a.pcap"), &frames);
    sw.ok(&Request::PortAdd {
        bridge: "br0".into(),
        port: PortConfig::dpdk(
            "p0",
            &format!(
                "net_pcap0,rx_pcap={},tx_pcap={}",
                dir.path("a.pcap").display(),
                dir.path("p0-tx.pcap").display()
            ),
        ),
    });
}

/// Every frame came back from the VM with its MACs swapped, in order.
fn check_echoes(dir: &TempDir) {
    let back = read_pcap(&dir.path("p0-tx.pcap"));
    assert_eq!(back.len(), N as usize, "frames back from the VM");
    for (i, f) in back.iter().enumerate() {
        let want = frame(A, B, None, i as u32);
        assert_eq!(f, &want, "frame {i} as the VM swapped it");
    }
}

fn state_lines(sw: &Switch, port: &str) -> Vec<String> {
    sw.log_text()
        .lines()
        .filter(|l| l.contains("port state") && l.contains(&format!("port={port}")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn client_mode_port_switches_both_ways_and_follows_the_vm() {
    let _g = serial();
    let dir = TempDir::new("vhost-client");
    let sock = dir.path("vm0.sock");
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"vhu0\"\n\
         type = \"dpdkvhostuserclient\"\nvhost_server_path = \"{}\"\n",
        config_head(&dir, "vhost-client"),
        sock.display()
    );
    // The switch first: it keeps trying to connect, the port is DOWN.
    let sw = Switch::start(&dir, &cfg);
    let p = port_info(&sw, "vhu0");
    assert_eq!(
        (p.state.as_str(), p.kind.as_str()),
        ("DOWN", "dpdkvhostuserclient")
    );
    assert!(p
        .vhost
        .as_ref()
        .is_some_and(|v| !v.attached && v.mode == "client"));

    let mut vm = Vm::start(&dir, "client", &sock, true);
    vm.wait_forwarding(Duration::from_secs(20));
    wait_state(&sw, "vhu0", "ACTIVE", Duration::from_secs(20));
    let v = port_info(&sw, "vhu0").vhost.unwrap();
    assert!(
        v.attached && v.queue_pairs >= 1 && v.enabled_queues >= 2,
        "{v:?}"
    );

    // p0 -> flood -> VM; VM swaps -> unicast to p0 (A was learned there).
    add_source(&sw, &dir);
    sw.wait_for("the VM's answers", |s| {
        s.iter().any(|p| p.name == "p0" && p.tx_packets >= N as u64)
    });
    let vhu = sw.port("vhu0");
    assert_eq!(
        (vhu.tx_packets, vhu.rx_packets),
        (N as u64, N as u64),
        "{vhu:?}"
    );

    // The VM goes away: DOWN, and the worker keeps forwarding elsewhere.
    vm.stop();
    wait_state(&sw, "vhu0", "DOWN", Duration::from_secs(10));
    // Logged: up, then down last (a guest driver starting may flap it once).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut lines = state_lines(&sw, "vhu0");
    while !lines.last().is_some_and(|l| l.contains("to=\"DOWN\"")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        lines = state_lines(&sw, "vhu0");
    }
    assert!(
        lines.len() >= 2
            && lines[0].contains("to=\"ACTIVE\"")
            && lines.last().unwrap().contains("to=\"DOWN\""),
        "state changes logged: {lines:?}"
    );
    // It comes back on the same socket: the switch reconnects by itself.
    let _vm = Vm::start(&dir, "client2", &sock, true);
    wait_state(&sw, "vhu0", "ACTIVE", Duration::from_secs(20));
    assert_eq!(port_info(&sw, "vhu0").vhost.unwrap().connects, 2);
    assert!(sw.stop().success());
    check_echoes(&dir);
}

#[test]
fn server_mode_port_creates_the_socket_and_takes_a_vm() {
    let _g = serial();
    let dir = TempDir::new("vhost-server");
    let sock_dir = dir.path("vhost");
    // vhost_sock_dir belongs to [dataplane].
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"vhs0\"\ntype = \"dpdkvhostuser\"\n",
        config_head(&dir, "vhost-server").replacen(
            "control_core = 0\n",
            &format!("control_core = 0\nvhost_sock_dir = \"{}\"\n", sock_dir.display()),
            1
        )
    );
    let sw = Switch::start(&dir, &cfg);
    let sock = sock_dir.join("vhs0");
    assert!(sock.exists(), "the switch created {}", sock.display());
    assert_eq!(port_info(&sw, "vhs0").state, "DOWN");

    let mut vm = Vm::start(&dir, "server", &sock, false);
    vm.wait_forwarding(Duration::from_secs(20));
    wait_state(&sw, "vhs0", "ACTIVE", Duration::from_secs(20));
    assert_eq!(port_info(&sw, "vhs0").vhost.unwrap().mode, "server");
    add_source(&sw, &dir);
    sw.wait_for("the VM's answers", |s| {
        s.iter().any(|p| p.name == "p0" && p.tx_packets >= N as u64)
    });
    vm.stop();
    wait_state(&sw, "vhs0", "DOWN", Duration::from_secs(10));
    // Another VM connects to the same socket.
    let mut vm2 = Vm::start(&dir, "server2", &sock, false);
    wait_state(&sw, "vhs0", "ACTIVE", Duration::from_secs(20));
    vm2.stop();
    assert!(sw.stop().success());
    check_echoes(&dir);
    assert!(!sock.exists(), "the socket is removed with the port");
}

/// Client-mode ports under traffic; vswitchd stopped with SIGTERM, then
/// killed with SIGKILL, and restarted each time. The VM is never touched:
/// traffic resumes by itself, and the time it takes is reported.
#[test]
fn traffic_resumes_after_vswitchd_restarts_without_touching_the_vm() {
    let _g = serial();
    let dir = TempDir::new("vhost-restart");
    let sock = dir.path("vm0.sock");
    let frames: Vec<Vec<u8>> = (0..N).map(|i| frame(B, A, None, i)).collect();
    write_pcap(&dir.path("a.pcap"), &frames);
    // An endless source: the VM's answers come back to p0 (counted, dropped).
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n\
         [[bridges.ports]]\nname = \"vhu0\"\ntype = \"dpdkvhostuserclient\"\nvhost_server_path = \"{}\"\n\
         [[bridges.ports]]\nname = \"p0\"\ndevargs = \"net_pcap0,rx_pcap={},infinite_rx=1\"\n",
        config_head(&dir, "vhost-restart"),
        sock.display(),
        dir.path("a.pcap").display()
    );
    let mut vm = Vm::start(&dir, "restart", &sock, true);
    let vm_pid = vm.child.id();
    let mut sw = Switch::start(&dir, &cfg);
    wait_state(&sw, "vhu0", "ACTIVE", Duration::from_secs(20));
    sw.wait_for("traffic through the VM", |s| {
        s.iter().any(|p| p.name == "vhu0" && p.rx_packets > 1000)
    });
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        signal(sw.child.id(), sig);
        let _ = sw.child.wait();
        assert!(vm.alive(), "the VM survives the switch");
        let t0 = Instant::now();
        sw = Switch::start(&dir, &cfg);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if sw.port("vhu0").rx_packets > 1000 && sw.port("p0").tx_packets > 1000 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "traffic did not resume after {}: {:?}\n{}",
                if sig == libc::SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGKILL"
                },
                sw.stats(),
                sw.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let took = t0.elapsed();
        println!(
            "vhost restart: traffic resumed {:.0} ms after vswitchd was restarted (after {})",
            took.as_secs_f64() * 1e3,
            if sig == libc::SIGTERM {
                "SIGTERM"
            } else {
                "SIGKILL"
            }
        );
        assert_eq!(vm.child.id(), vm_pid);
    }
    assert!(sw.stop().success());
    assert!(vm.alive(), "the VM was never restarted");
}

/// A Neutron port bound `normal` on this host becomes a vhost-user client
/// port at its `binding:vif_details.vhostuser_socket`, in its network's
/// local VLAN, with no manual step; its status follows the VM.
#[test]
fn neutron_normal_port_becomes_a_vhost_user_port_and_reports_status() {
    let _g = serial();
    let dir = TempDir::new("vhost-neutron");
    let (api, metrics) = (free_port(), free_port());
    let sw = Switch::start(&dir, &neutron_config(&dir, "vhost-neutron", api, metrics));
    network_with_subnet(&sw, Some(api), "net1", "s1", "10.0.0.0/24");
    let port = ctl_json(
        &sw,
        Some(api),
        &[
            "port",
            "create",
            "vm1-eth0",
            "--network",
            "net1",
            "--host",
            "compute-1",
        ],
    );
    let id = port["id"].as_str().unwrap().to_owned();
    assert_eq!(port["binding:vif_type"], "vhostuser", "{port}");
    assert_eq!(port["binding:vif_details"]["vhostuser_mode"], "server");
    let sock = port["binding:vif_details"]["vhostuser_socket"]
        .as_str()
        .unwrap()
        .to_owned();
    let name = format!("vhu{}", &id[..11]);
    // Attached at once, DOWN until a VM is there.
    let info = wait_port(&sw, &name, true).unwrap();
    assert_eq!(info.kind, "dpdkvhostuserclient");
    assert_eq!(info.dpdk_name, sock);
    assert_eq!(info.iface_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        (info.vlan_mode.as_str(), info.tag),
        ("access", Some(1)),
        "{info:?}"
    );
    wait_status(&sw, api, &id, "DOWN");
    let mut vm = Vm::start(&dir, "neutron", std::path::Path::new(&sock), true);
    vm.wait_forwarding(Duration::from_secs(20));
    wait_state(&sw, &name, "ACTIVE", Duration::from_secs(20));
    wait_status(&sw, api, &id, "ACTIVE");
    vm.stop();
    wait_status(&sw, api, &id, "DOWN");
    // Unbinding (deleting) the Neutron port removes the switch port.
    ctl(&sw, Some(api), &["port", "delete", &id]);
    wait_port(&sw, &name, false);
    assert!(sw.stop().success());
}

/// Per-stream "TX-packets" of a testpmd log (printed when it stops), by
/// queue.
fn vm_tx_per_queue(log: &str) -> Vec<(u16, u64)> {
    let mut out = Vec::new();
    let mut queue = None;
    for line in log.lines() {
        if let Some(rest) = line.split("TX Port=").nth(1) {
            queue = rest
                .split("Queue=")
                .nth(1)
                .and_then(|q| q.split_whitespace().next()?.parse().ok());
        } else if let (Some(q), Some(rest)) = (queue, line.split("TX-packets:").nth(1)) {
            if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                out.push((q, n));
            }
            queue = None;
        }
    }
    out
}

/// Two queue pairs: the guest enables four rings and the switch drains
/// both of its transmit queues (a ring nobody drains stops at its size).
#[test]
fn multiqueue_guest_is_drained_on_every_queue() {
    let _g = serial();
    let dir = TempDir::new("vhost-mq");
    let sock = dir.path("vm0.sock");
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n\
         [[bridges.ports]]\nname = \"vhu0\"\ntype = \"dpdkvhostuserclient\"\nvhost_server_path = \"{}\"\nrx_queues = 2\n\
         [[bridges.ports]]\nname = \"p0\"\ndevargs = \"net_null0\"\n",
        config_head(&dir, "vhost-mq"),
        sock.display()
    );
    let mut vm = Vm::start_with(&dir, "mq", &sock, true, "txonly", 2);
    let sw = Switch::start(&dir, &cfg);
    vm.wait_forwarding(Duration::from_secs(20));
    wait_state(&sw, "vhu0", "ACTIVE", Duration::from_secs(20));
    // The second pair is enabled once the guest driver asks for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = port_info(&sw, "vhu0").vhost.unwrap();
        if (v.queue_pairs, v.enabled_queues) == (2, 4) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{v:?}\n{}\n{}",
            sw.log_text(),
            std::fs::read_to_string(&vm.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sw.wait_for("frames from both queues", |s| {
        s.iter().any(|p| p.name == "vhu0" && p.rx_packets > 200_000)
    });
    vm.stop();
    let log = std::fs::read_to_string(&vm.log).unwrap();
    let per_queue = vm_tx_per_queue(&log);
    assert_eq!(per_queue.len(), 2, "per-stream stats:\n{log}");
    for (q, n) in per_queue {
        assert!(n > 50_000, "queue {q}: only {n} frames left the guest");
    }
    let got = sw.port("vhu0").rx_packets;
    assert!(got > 100_000, "{got}");
    assert!(sw.stop().success());
}

/// The VM dies (SIGKILL) while traffic runs to it and through the same
/// worker between two other ports: that traffic never pauses. A client
/// that speaks garbage on a server-mode socket is cut off; nothing else
/// notices.
#[test]
fn a_vm_dying_or_a_bad_frontend_never_stalls_other_ports() {
    let _g = serial();
    let dir = TempDir::new("vhost-fault");
    let sock = dir.path("vm0.sock");
    let sock_dir = dir.path("vhost");
    let frames: Vec<Vec<u8>> = (0..N).map(|i| frame(BCAST, A, None, i)).collect();
    write_pcap(&dir.path("bcast.pcap"), &frames);
    // p0 broadcasts endlessly: to the VM and to p1 alike.
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n\
         [[bridges.ports]]\nname = \"vhu0\"\ntype = \"dpdkvhostuserclient\"\nvhost_server_path = \"{}\"\n\
         [[bridges.ports]]\nname = \"vhs0\"\ntype = \"dpdkvhostuser\"\n\
         [[bridges.ports]]\nname = \"p0\"\ndevargs = \"net_pcap0,rx_pcap={},infinite_rx=1\"\n\
         [[bridges.ports]]\nname = \"p1\"\ndevargs = \"net_null1\"\n",
        config_head(&dir, "vhost-fault").replacen(
            "control_core = 0\n",
            &format!("control_core = 0\nvhost_sock_dir = \"{}\"\n", sock_dir.display()),
            1
        ),
        sock.display(),
        dir.path("bcast.pcap").display()
    );
    let mut vm = Vm::start(&dir, "fault", &sock, true);
    let sw = Switch::start(&dir, &cfg);
    vm.wait_forwarding(Duration::from_secs(20));
    wait_state(&sw, "vhu0", "ACTIVE", Duration::from_secs(20));
    sw.wait_for("traffic to the VM", |s| {
        s.iter().any(|p| p.name == "vhu0" && p.tx_packets > 100_000)
    });

    // Sample p1 while the VM is killed and a bad frontend connects.
    let sampler = {
        let socket = sw.socket.clone();
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            let (mut last, mut at) = (0u64, Instant::now());
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                let r = control_api::protocol::call(
                    &socket,
                    &Request::PortStats,
                    Duration::from_secs(5),
                )
                .unwrap();
                let rows: Vec<control_api::protocol::PortStatsRow> =
                    serde_json::from_value(r.result).unwrap();
                let tx = rows.iter().find(|p| p.name == "p1").unwrap().tx_packets;
                if tx > last {
                    worst = worst.max(at.elapsed());
                    last = tx;
                    at = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            worst.max(at.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    signal(vm.child.id(), libc::SIGKILL);
    let _ = vm.child.wait();
    {
        use std::io::Write;
        let mut bad = std::os::unix::net::UnixStream::connect(sock_dir.join("vhs0")).unwrap();
        // A vhost-user header claiming a huge payload, then junk.
        let _ = bad.write_all(&[0xff, 0, 0, 0, 0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]);
        let _ = bad.write_all(&[0xa5; 4096]);
    }
    let worst = sampler.join().unwrap();
    assert!(
        worst < Duration::from_millis(250),
        "p1 stalled for {worst:?} while the VM died"
    );
    wait_state(&sw, "vhu0", "DOWN", Duration::from_secs(10));
    assert_eq!(port_info(&sw, "vhs0").state, "DOWN");
    // The server socket still takes a proper VM afterwards.
    let mut vm2 = Vm::start(&dir, "fault2", &sock_dir.join("vhs0"), false);
    vm2.wait_forwarding(Duration::from_secs(20));
    wait_state(&sw, "vhs0", "ACTIVE", Duration::from_secs(20));
    vm2.stop();
    assert!(sw.stop().success());
}

/// One request as Nova sends it: its project in `X-Project-Id`, JSON in
/// and out.
fn nova(
    api: u16,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let body = body.map(|b| b.to_string());
    let (status, text) = try_http_as(api, Some(NOVA_PROJECT), method, path, body.as_deref())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

const NOVA_PROJECT: &str = "6f1c2e3d4b5a69788796a5b4c3d2e1f0";

/// What Nova and os-vif do to boot a server on this host and delete it,
/// request for request: read the port quota, create the port with the
/// server's device_id, bind it to this host (Nova's port update), read the
/// binding details os-vif plugs with, QEMU opens the vhost-user socket as
/// its server, the port goes ACTIVE (Nova's network-vif-plugged), and on
/// server delete the port is deleted and the switch port goes with it.
#[test]
fn a_server_boots_and_is_deleted_the_way_nova_and_os_vif_do_it() {
    let _g = serial();
    let dir = TempDir::new("vhost-nova");
    let (api, metrics) = (free_port(), free_port());
    let sw = Switch::start(&dir, &neutron_config(&dir, "vhost-nova", api, metrics));
    let (st, net) = nova(
        api,
        "POST",
        "/v2.0/networks",
        Some(serde_json::json!({"network": {"name": "private"}})),
    );
    assert_eq!(st, 201, "{net}");
    let net_id = net["network"]["id"].as_str().unwrap().to_owned();
    let (st, sub) = nova(
        api,
        "POST",
        "/v2.0/subnets",
        Some(serde_json::json!({"subnet": {
        "network_id": net_id, "cidr": "10.50.0.0/24", "ip_version": 4}})),
    );
    assert_eq!(st, 201, "{sub}");
    // Nova checks the port quota before it creates ports.
    let (st, q) = nova(
        api,
        "GET",
        &format!("/v2.0/quotas/{NOVA_PROJECT}/details.json"),
        None,
    );
    assert_eq!(st, 200, "{q}");
    assert_eq!(q["quota"]["port"]["limit"], 500);
    // The network's DHCP port (the switch's DHCP server) counts, as a DHCP
    // agent's port does in Neutron.
    assert_eq!(q["quota"]["port"]["used"], 1);
    // The port, created unbound with the server's device_id.
    let server = "0f0e0d0c-0b0a-4908-8706-050403020100";
    let (st, p) = nova(
        api,
        "POST",
        "/v2.0/ports",
        Some(serde_json::json!({"port": {
        "network_id": net_id, "device_id": server, "device_owner": "compute:nova",
        "project_id": NOVA_PROJECT, "admin_state_up": true}})),
    );
    assert_eq!(st, 201, "{p}");
    let id = p["port"]["id"].as_str().unwrap().to_owned();
    assert_eq!(p["port"]["binding:vif_type"], "unbound");
    assert_eq!(
        p["port"]["security_groups"].as_array().unwrap().len(),
        1,
        "the project's default group"
    );
    // Bound to this host, as Nova's compute does before it plugs.
    let (st, p) = nova(
        api,
        "PUT",
        &format!("/v2.0/ports/{id}"),
        Some(serde_json::json!({"port": {
        "binding:host_id": "compute-1", "device_owner": "compute:nova", "binding:profile": {}}})),
    );
    assert_eq!(st, 200, "{p}");
    let d = &p["port"]["binding:vif_details"];
    assert_eq!(p["port"]["binding:vif_type"], "vhostuser", "{p}");
    assert_eq!(d["vhostuser_mode"], "server");
    assert_eq!(d["bridge_name"], "br-int");
    assert_eq!(d["datapath_type"], "netdev");
    assert_eq!(p["port"]["status"], "DOWN");
    let sock = d["vhostuser_socket"].as_str().unwrap().to_owned();
    // The port list Nova uses to build the server's network info.
    let (st, l) = nova(api, "GET", &format!("/v2.0/ports?device_id={server}"), None);
    assert_eq!((st, l["ports"].as_array().unwrap().len()), (200, 1), "{l}");
    // QEMU (here testpmd's virtio-user) creates the socket; the switch
    // connects, and Neutron reports ACTIVE.
    let name = format!("vhu{}", &id[..11]);
    wait_port(&sw, &name, true);
    let mut vm = Vm::start(&dir, "nova", std::path::Path::new(&sock), true);
    vm.wait_forwarding(Duration::from_secs(20));
    wait_status(&sw, api, &id, "ACTIVE");
    let (_, q) = nova(
        api,
        "GET",
        &format!("/v2.0/quotas/{NOVA_PROJECT}/details.json"),
        None,
    );
    assert_eq!(q["quota"]["port"]["used"], 2);
    // Server delete: Nova deletes the port it created; the switch port goes.
    vm.stop();
    let (st, _) = nova(api, "DELETE", &format!("/v2.0/ports/{id}"), None);
    assert_eq!(st, 204);
    wait_port(&sw, &name, false);
    let (st, _) = nova(api, "GET", &format!("/v2.0/ports/{id}"), None);
    assert_eq!(st, 404);
    assert!(sw.stop().success());
}

/// Three real Linux guests (QEMU, TCG, a Debian kernel's virtio-net driver)
/// on Neutron ports bound to this host: the switch attaches them by
/// itself, they go ACTIVE and get their fixed IPs, gateway, DNS and MTU
/// from the switch's DHCP server (the lease checked on the console, within
/// 2 s of guest time); the two on one network ping each other through the
/// security groups and stream TCP with iperf3 for 10 s, their kernels' TSO
/// segments passing whole (guest offloads, the bridge's `userspace_tso`);
/// the third, on another network, reaches neither. Boot times and
/// throughput are printed (`--nocapture`).
#[test]
fn real_linux_guests_get_addresses_by_dhcp_ping_stream_tcp_and_stay_isolated() {
    use common::guest::Guest;
    let _g = serial();
    let t0 = Instant::now();
    let dir = TempDir::new("vhost-guests");
    let (api, metrics) = (free_port(), free_port());
    let sw = Switch::start(&dir, &neutron_config(&dir, "vhost-guests", api, metrics));
    network_with_subnet(&sw, Some(api), "net1", "s1", "10.0.0.0/24");
    // A third guest on a network of its own.
    network_with_subnet(&sw, Some(api), "net2", "s2", "10.1.0.0/24");
    // (switch port, socket, MAC, fixed IP) of each guest's port.
    let ports: Vec<(String, String, String, String)> = [
        ("vm1-eth0", "net1"),
        ("vm2-eth0", "net1"),
        ("vm3-eth0", "net2"),
    ]
    .iter()
    .map(|&(name, net)| {
        let p = ctl_json(
            &sw,
            Some(api),
            &[
                "port",
                "create",
                name,
                "--network",
                net,
                "--host",
                "compute-1",
            ],
        );
        let id = p["id"].as_str().expect("port id");
        let field = |v: &serde_json::Value| {
            v.as_str()
                .unwrap_or_else(|| panic!("port {name} lacks a field: {p}"))
                .to_owned()
        };
        (
            format!("vhu{}", &id[..11]),
            field(&p["binding:vif_details"]["vhostuser_socket"]),
            field(&p["mac_address"]),
            field(&p["fixed_ips"][0]["ip_address"]),
        )
    })
    .collect();
    for (name, ..) in &ports {
        wait_port(&sw, name, true);
    }
    let mut guests: Vec<Guest> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, sock, mac, _))| {
            Guest::start(
                &dir,
                &format!("vm{}", i + 1),
                std::path::Path::new(sock),
                mac,
            )
        })
        .collect();
    for g in &mut guests {
        let boot = g.wait_ready(Duration::from_secs(60));
        // "FSW-READY <guest uptime>" (the echo of input typed early may
        // follow on the same line).
        let line = g.wait_console("FSW-READY", Duration::ZERO);
        let uptime: String = line
            .split("FSW-READY ")
            .nth(1)
            .unwrap_or_default()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        println!(
            "guest {}: FSW-READY {:.1} s after QEMU started, guest uptime {uptime} s",
            g.tag,
            boot.as_secs_f64(),
        );
    }
    for (name, ..) in &ports {
        wait_state(&sw, name, "ACTIVE", Duration::from_secs(20));
    }
    // Each guest asks for its address by DHCP (the switch's own server,
    // from the Neutron model); the lease is printed on the console with
    // the guest's uptime, and the uptime before the client started is
    // printed first: a lease within 2 s, guest time.
    for (g, (_, _, _, ip)) in guests.iter_mut().zip(&ports) {
        let (st, out) = g.run(
            "cut -d' ' -f1 /proc/uptime; udhcpc -i eth0 -n -q -t 5 -T 1 -O mtu -O staticroutes",
            Duration::from_secs(30),
        );
        assert_eq!(
            st,
            0,
            "guest {}: no lease:\n{out}\n{}",
            g.tag,
            sw.log_text()
        );
        let lease = out
            .lines()
            .find(|l| l.starts_with("FSW-LEASE"))
            .unwrap_or_else(|| panic!("guest {}: no FSW-LEASE line:\n{out}", g.tag));
        let field = |k: &str| lease_field(lease, "FSW-LEASE", k).to_owned();
        let net = if ip.starts_with("10.0.0.") {
            "10.0.0"
        } else {
            "10.1.0"
        };
        assert_eq!(field("ip"), *ip, "guest {}: {lease}", g.tag);
        assert_eq!(field("mask"), "24", "{lease}");
        assert_eq!(field("router"), format!("{net}.1"), "{lease}");
        assert_eq!(field("mtu"), "1500", "{lease}");
        assert_eq!(
            field("serverid"),
            format!("{net}.2"),
            "the network:dhcp port: {lease}"
        );
        let before: f64 = out
            .lines()
            .find_map(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no uptime before udhcpc:\n{out}"));
        let at: f64 = field("uptime")
            .parse()
            .unwrap_or_else(|_| panic!("{lease}"));
        println!(
            "guest {}: {lease} ({:.2} s after udhcpc started, guest time)",
            g.tag,
            at - before
        );
        assert!(
            at - before < 2.0,
            "guest {}: lease after {:.2} s",
            g.tag,
            at - before
        );
    }
    let (ip1, ip2) = (ports[0].3.clone(), ports[1].3.clone());
    for (g, peer) in [(0, &ip2), (1, &ip1)] {
        // Both guests ran the same commands, so both pings have the same
        // PID, which busybox uses as the ICMP echo id: vm2's request must
        // be an echo of its own, not the reply direction of vm1's.
        let t = Instant::now();
        let (st, out) = guests[g].run(&format!("ping -c 3 -W 2 {peer}"), Duration::from_secs(20));
        assert!(
            st == 0 && out.contains("3 packets received"),
            "guest vm{} pings {peer}: status {st}\n{out}\n{}\n{}",
            g + 1,
            ctl(&sw, None, &["pmd-stats"]).1,
            sw.log_text()
        );
        println!(
            "guest vm{} -> {peer}: 3/3 pings in {:.1} s",
            g + 1,
            t.elapsed().as_secs_f64()
        );
    }

    // TCP: an iperf3 server in vm2, a 10-second client in vm1.
    let (st, out) = guests[1].run("iperf3 -s -D -1", Duration::from_secs(10));
    assert_eq!(st, 0, "iperf3 -s: {out}");
    let (st, out) = guests[0].run(
        &format!("sleep 1; iperf3 -c {ip2} -t 10"),
        Duration::from_secs(45),
    );
    assert_eq!(st, 0, "iperf3 -c {ip2}:\n{out}\n{}", sw.log_text());
    // "[  5]   0.00-10.04  sec  85.2 MBytes  71.2 Mbits/sec    receiver"
    let receiver = out
        .lines()
        .find(|l| l.trim_end().ends_with("receiver"))
        .unwrap_or_else(|| panic!("no receiver line:\n{out}"));
    let words: Vec<&str> = receiver.split_whitespace().collect();
    let at = |unit: &str| {
        words
            .iter()
            .position(|w| w.ends_with(unit))
            .and_then(|i| Some((words.get(i.checked_sub(1)?)?.parse::<f64>().ok()?, words[i])))
            .unwrap_or_else(|| panic!("no {unit} in {receiver:?}"))
    };
    let (amount, unit) = at("Bytes");
    let bytes = amount
        * match unit {
            "KBytes" => 1024.0,
            "MBytes" => 1024.0 * 1024.0,
            "GBytes" => 1024.0 * 1024.0 * 1024.0,
            _ => 1.0,
        };
    let (rate, rate_unit) = at("bits/sec");
    println!("iperf3 vm1 -> vm2 through the switch: {amount} {unit}, {rate} {rate_unit}");
    assert!(bytes > 1e6, "iperf3 moved only {amount} {unit}: {receiver}");
    let (a, b) = (sw.port(&ports[0].0), sw.port(&ports[1].0));
    // Guest offloads (the bridge's userspace_tso, on by default): vm1's
    // kernel hands over TSO segments far above the MTU, and they reach vm2
    // whole (its kernel negotiated them too), not cut into 1,514-byte frames.
    let (avg_in, avg_out) = (
        a.rx_bytes / a.rx_packets.max(1),
        b.tx_bytes / b.tx_packets.max(1),
    );
    println!(
        "TSO: vm1 -> switch {} frames, {avg_in} bytes on average; switch -> vm2 {} frames, {avg_out} bytes on average",
        a.rx_packets, b.tx_packets
    );
    assert!(
        avg_in > 4 * 1514 && avg_out > 4 * 1514,
        "TCP segments did not pass whole between the guests: {a:?} {b:?}"
    );
    assert!(
        a.rx_packets > 1000 && b.tx_packets > 1000,
        "switch counters: {a:?} {b:?}"
    );

    // vm3, on the other network, reaches neither and hears nothing of
    // theirs: what the switch sent it is its own DHCP answers.
    for peer in [&ip1, &ip2] {
        let (st, out) = guests[2].run(&format!("ping -c 2 -W 1 {peer}"), Duration::from_secs(20));
        assert_ne!(st, 0, "vm3 reached {peer}:\n{out}");
    }
    let c = sw.port(&ports[2].0);
    assert_eq!(
        c.tx_packets,
        c.dhcp["offers"] + c.dhcp["acks"],
        "vm3's port sent more than its DHCP answers: {c:?}"
    );
    let t = Instant::now();
    for mut g in guests {
        g.stop();
    }
    println!("guests stopped in {:.1} s", t.elapsed().as_secs_f64());
    for (name, ..) in &ports {
        wait_state(&sw, name, "DOWN", Duration::from_secs(10));
    }
    assert!(sw.stop().success());
    println!(
        "real guests test: {:.1} s wall time",
        t0.elapsed().as_secs_f64()
    );
}

/// What `fsw-tsogen` printed when it was done.
#[derive(Debug)]
struct GenReport {
    offloads: bool,
    segments: u64,
    frames: u64,
    payload_bytes: u64,
}

/// Runs `fsw-tsogen` on `sock` until it has sent `count` segments of
/// 65,160 bytes at an MSS of 1,448 (bounded: 60 s).
fn tsogen(sock: &std::path::Path, count: u64) -> GenReport {
    let out = std::process::Command::new("timeout")
        .args(["60", bin("fsw-tsogen").to_str().unwrap()])
        .args(["--socket", sock.to_str().unwrap()])
        .args([
            "--mac",
            "fa:16:3e:00:00:01",
            "--dst-mac",
            "fa:16:3e:00:00:02",
        ])
        .args([
            "--count",
            &count.to_string(),
            "--ring",
            "4",
            "--seconds",
            "50",
        ])
        .args([
            "--file-prefix",
            &format!("fswt-tsogen-{}", std::process::id()),
        ])
        .output()
        .expect("fsw-tsogen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fsw-tsogen: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k}: {stdout}"));
    GenReport {
        offloads: v["offloads"]
            .as_bool()
            .unwrap_or_else(|| panic!("{stdout}")),
        segments: n("segments"),
        frames: n("frames"),
        payload_bytes: n("payload_bytes"),
    }
}

/// Guest offloads on a vhost-user port (the bridge's `userspace_tso`, on
/// by default): a guest's 64 KB TSO segments are taken whole from it, and
/// a pcap port, which cannot take them, gets them cut in software into
/// MSS-sized frames with valid IP and TCP checksums that carry the stream
/// byte for byte. With `userspace_tso = false` the guest is offered no
/// offloads and sends MSS-sized frames itself, as under OVS without
/// `userspace-tso-enable`.
#[test]
fn a_guest_tso_segment_is_cut_for_a_pcap_port_with_valid_checksums() {
    let _g = serial();
    for tso in [true, false] {
        let dir = TempDir::new(&format!("vhost-tso-{tso}"));
        let sock = dir.path("gen.sock");
        write_pcap(&dir.path("empty.pcap"), &[]);
        let cfg = format!(
            "{}[[bridges]]\nname = \"br0\"\n{}[[bridges.ports]]\nname = \"vhu0\"\n\
             type = \"dpdkvhostuserclient\"\nvhost_server_path = \"{}\"\n\
             [[bridges.ports]]\nname = \"p0\"\ndevargs = \"net_pcap0,rx_pcap={},tx_pcap={}\"\n",
            config_head(&dir, &format!("vhost-tso-{tso}")),
            if tso { "" } else { "userspace_tso = false\n" },
            sock.display(),
            dir.path("empty.pcap").display(),
            dir.path("p0-tx.pcap").display()
        );
        let sw = Switch::start(&dir, &cfg);
        // 12 segments of 45 MSS-sized frames' payload each; without
        // offloads the generator sends those frames one by one.
        const SEGMENTS: u64 = 12;
        let frames_per_segment = 65_160u64.div_ceil(1448);
        let units = if tso {
            SEGMENTS
        } else {
            SEGMENTS * frames_per_segment
        };
        let report = tsogen(&sock, units);
        assert_eq!(report.offloads, tso, "{report:?}");
        assert_eq!(report.segments, units, "{report:?}");
        assert_eq!(report.frames, SEGMENTS * frames_per_segment);
        sw.wait_for("the stream on the pcap port", |s| {
            s.iter()
                .any(|p| p.name == "p0" && p.tx_packets >= report.frames)
        });
        let (vhu, p0) = (sw.port("vhu0"), sw.port("p0"));
        // Whole segments in from the guest when it had offloads.
        assert_eq!(vhu.rx_packets, units, "{vhu:?}");
        assert_eq!(p0.tx_packets, report.frames, "{p0:?}");
        assert_eq!(p0.tx_dropped, 0, "{p0:?}");
        assert!(sw.stop().success());

        let frames = read_pcap(&dir.path("p0-tx.pcap"));
        assert_eq!(frames.len() as u64, report.frames);
        let mut payload = 0u64;
        let mut next_seq = None;
        for (i, f) in frames.iter().enumerate() {
            assert!(f.len() <= 1514, "frame {i}: {} bytes", f.len());
            let ip = &f[14..34];
            assert_eq!(
                switch_core::wire::checksum(ip),
                0,
                "frame {i}: IPv4 checksum"
            );
            assert!(
                switch_core::offload::l4_checksum_ok(f),
                "frame {i}: TCP checksum"
            );
            let seq = u32::from_be_bytes(f[38..42].try_into().unwrap());
            let len = f.len() as u64 - 54;
            assert!(len <= 1448, "frame {i}: {len} bytes of payload");
            // The stream's bytes, in order (the ring of 4 segments restarts).
            if seq == 1 {
                next_seq = Some(1);
            }
            assert_eq!(Some(seq), next_seq, "frame {i}: sequence");
            assert!(
                f[54..]
                    .iter()
                    .enumerate()
                    .all(|(k, &b)| b == ((seq as usize - 1 + k) % 65_160 % 251) as u8),
                "frame {i}: payload bytes"
            );
            next_seq = Some(seq.wrapping_add(len as u32));
            payload += len;
        }
        assert_eq!(payload, report.payload_bytes);
        println!(
            "userspace_tso={tso}: {} segments in, {} frames out on the pcap port, all checksums valid",
            vhu.rx_packets,
            frames.len()
        );
    }
}
