//! Neutron state driving the dataplane, end to end: the real daemon with its
//! Neutron API and SQLite store, `vswitchctl`'s Neutron commands, net_pcap
//! ports. A provider VLAN network gets a local VLAN; the uplink named in
//! bridge_mappings translates it; a switch port attached with the Neutron
//! port's iface-id joins the local VLAN and the port goes ACTIVE.
mod common;

use common::*;
use std::time::Duration;

fn uplink_translations(sw: &Switch) -> serde_json::Value {
    let ports = ctl_json(sw, None, &["port", "list"]);
    ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "uplink")
        .unwrap()["vlan_translations"]
        .clone()
}

/// Creates the provider VLAN network "provider-3029" on physnet1 with
/// subnet 10.0.0.0/24 through the API on `api`; returns its id.
fn provider_3029(sw: &Switch, api: u16) -> String {
    let net = ctl_json(
        sw,
        Some(api),
        &[
            "network",
            "create",
            "provider-3029",
            "--provider-network-type",
            "vlan",
            "--provider-physical-network",
            "physnet1",
            "--provider-segment",
            "3029",
        ],
    );
    let net_id = net["id"].as_str().unwrap().to_owned();
    ctl_json(
        sw,
        Some(api),
        &[
            "subnet",
            "create",
            "s1",
            "--network",
            &net_id,
            "--subnet-range",
            "10.0.0.0/24",
        ],
    );
    net_id
}

/// Adds switch port `name` on `net_pcap{idx}` to br-int: it receives
/// `frames` (from `<name>-rx.pcap`) and writes what it sends to
/// `<name>-tx.pcap`; `extra` are more `port add` arguments.
fn add_pcap_port(
    sw: &Switch,
    dir: &TempDir,
    idx: u32,
    name: &str,
    frames: &[Vec<u8>],
    extra: &[&str],
) {
    let rx = dir.path(&format!("{name}-rx.pcap"));
    write_pcap(&rx, frames);
    let devargs = format!(
        "net_pcap{idx},rx_pcap={},tx_pcap={}",
        rx.display(),
        dir.path(&format!("{name}-tx.pcap")).display()
    );
    let mut args = vec!["port", "add", "br-int", name, &devargs];
    args.extend_from_slice(extra);
    let (ok, _, err) = ctl(sw, None, &args);
    assert!(ok, "{err}");
}

#[test]
fn provider_network_port_and_iface_id_drive_vlans_and_status() {
    let _g = serial();
    let dir = TempDir::new("neutron-dp");
    let (api, metrics) = (free_port(), free_port());
    let sw = Switch::start(&dir, &neutron_config(&dir, "neutron-dp", api, metrics));

    let net_id = provider_3029(&sw, api);
    let port = ctl_json(
        &sw,
        Some(api),
        &[
            "port",
            "create",
            "vm1-eth0",
            "--network",
            &net_id,
            "--host",
            "compute-1",
        ],
    );
    let port_id = port["id"].as_str().unwrap().to_owned();
    assert_eq!(port["status"], "DOWN");
    assert_eq!(port["binding:vif_type"], "vhostuser");
    let mac: Vec<u8> = port["mac_address"]
        .as_str()
        .unwrap()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    // The network's local VLAN (the first, 1) leaves the uplink as 3029.
    assert_eq!(uplink_translations(&sw), serde_json::json!([[3029, 1]]));

    // os-vif's part: a switch port carrying the Neutron port's iface-id.
    // It sends from its fixed IP, then from one not its own: port security
    // lets the first through and drops the second.
    let ip: std::net::Ipv4Addr = port["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut own = frame(BCAST, mac.clone().try_into().unwrap(), None, 1);
    own[26..30].copy_from_slice(&ip.octets());
    let spoofed = frame(BCAST, mac.clone().try_into().unwrap(), None, 2);
    assert_ne!(&spoofed[26..30], &ip.octets());
    add_pcap_port(
        &sw,
        &dir,
        1,
        "vm1",
        &[own, spoofed],
        &["--iface-id", &port_id],
    );
    wait_status(&sw, api, &port_id, "ACTIVE");
    sw.wait_for("vm1's frames", |s| {
        s.iter().any(|p| p.name == "vm1" && p.rx_packets == 2)
    });
    let vm1_stats = sw.port("vm1");
    assert_eq!(vm1_stats.rx_dropped, 1, "the spoofed frame: {vm1_stats:?}");
    assert_eq!(
        vm1_stats.spoofed.iter().collect::<Vec<_>>(),
        [(&"ipv4_source".to_owned(), &1)],
        "counted on its port, by reason"
    );
    let (_, body) = http_get(metrics, "/metrics");
    assert!(
        body.contains(
            r#"ferroswitch_port_spoofed_total{port="vm1",bridge="br-int",reason="ipv4_source"} 1"#
        ),
        "{body}"
    );
    let pmd = ctl_json(&sw, None, &["pmd-stats"]);
    assert_eq!(pmd[0]["drops_spoofed"], 1, "{pmd}");
    let list = ctl_json(&sw, None, &["port", "list"]);
    let vm1 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "vm1")
        .unwrap()
        .clone();
    assert_eq!(
        (vm1["vlan_mode"].as_str(), vm1["tag"].as_u64()),
        (Some("access"), Some(1)),
        "{vm1}"
    );

    // Unplugging the VM port reports DOWN.
    let (ok, _, err) = ctl(&sw, None, &["port", "del", "vm1"]);
    assert!(ok, "{err}");
    wait_status(&sw, api, &port_id, "DOWN");

    // A network with ports cannot go; without them it can, and the uplink
    // stops carrying its VLAN.
    let (ok, _, err) = ctl(&sw, Some(api), &["network", "delete", &net_id]);
    assert!(!ok && err.contains("409"), "{err}");
    assert!(ctl(&sw, Some(api), &["port", "delete", &port_id]).0);
    assert!(ctl(&sw, Some(api), &["network", "delete", &net_id]).0);
    assert_eq!(uplink_translations(&sw), serde_json::json!([]));

    let (status, body) = http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    assert!(
        body.contains("ferroswitch_neutron_apply_seconds_count"),
        "{body}"
    );
    assert!(sw.stop().success());

    // What vm1 sent reached the uplink tagged with the provider VID.
    let up = read_pcap(&dir.path("uplink-tx.pcap"));
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(vid(&up[0]), Some(3029));
    assert_eq!(&up[0][6..12], &mac[..]);
}

#[test]
fn neutron_state_survives_a_restart_and_rebuilds_the_dataplane() {
    let _g = serial();
    let dir = TempDir::new("neutron-restart");
    let (api, metrics) = (free_port(), free_port());
    let cfg = neutron_config(&dir, "neutron-restart", api, metrics);
    let sw = Switch::start(&dir, &cfg);
    for (name, seg) in [("a", "3001"), ("b", "3002")] {
        ctl_json(
            &sw,
            Some(api),
            &[
                "network",
                "create",
                name,
                "--provider-network-type",
                "vlan",
                "--provider-physical-network",
                "physnet1",
                "--provider-segment",
                seg,
            ],
        );
    }
    let before = uplink_translations(&sw);
    assert_eq!(before.as_array().unwrap().len(), 2, "{before}");
    assert!(sw.stop().success());

    let sw = Switch::start(&dir, &cfg);
    let nets = ctl_json(&sw, Some(api), &["network", "list"]);
    assert_eq!(nets.as_array().unwrap().len(), 2, "{nets}");
    let after = uplink_translations(&sw);
    let mut ext: Vec<u64> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_u64().unwrap())
        .collect();
    ext.sort();
    assert_eq!(ext, vec![3001, 3002], "{after}");
    assert!(sw.stop().success());
}

#[test]
fn a_direct_port_asks_for_its_vf_and_stays_down_when_it_cannot_be_opened() {
    let _g = serial();
    let dir = TempDir::new("neutron-vf");
    let (api, metrics) = (free_port(), free_port());
    let sw = Switch::start(&dir, &neutron_config(&dir, "neutron-vf", api, metrics));
    ctl_json(
        &sw,
        Some(api),
        &[
            "network",
            "create",
            "n",
            "--provider-network-type",
            "vlan",
            "--provider-physical-network",
            "physnet1",
            "--provider-segment",
            "3005",
        ],
    );
    ctl_json(
        &sw,
        Some(api),
        &[
            "subnet",
            "create",
            "s",
            "--network",
            "n",
            "--subnet-range",
            "10.5.0.0/24",
        ],
    );
    let port = ctl_json(
        &sw,
        Some(api),
        &[
            "port",
            "create",
            "sriov",
            "--network",
            "n",
            "--vnic-type",
            "direct",
            "--binding-profile",
            "pci_slot=0000:3b:02.1",
            "--host",
            "compute-1",
        ],
    );
    assert_eq!(port["binding:vif_type"], "hw_veb");
    let id = port["id"].as_str().unwrap().to_owned();
    // This machine has no such VF (and the EAL runs with --no-pci): the
    // attach fails, is logged, the port stays DOWN and the switch goes on.
    sw.wait_log("cannot attach", Duration::from_secs(10));
    assert!(sw.log_text().contains("0000:3b:02.1"));
    assert_eq!(
        ctl_json(&sw, Some(api), &["port", "show", &id])["status"],
        "DOWN"
    );
    let names: Vec<String> = ctl_json(&sw, None, &["port", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["uplink"]);
    assert!(ctl(&sw, Some(api), &["port", "delete", &id]).0);
    assert!(sw.stop().success());
}

/// A frame `dst <- src` of IPv4 `proto` from `sip` to `dip`, with `l4`.
fn ip4(dst: &[u8], src: &[u8], sip: [u8; 4], dip: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(src);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = 20 + l4.len();
    f.extend_from_slice(&[0x45, 0, 0, total as u8, 0, 0, 0, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&sip);
    f.extend_from_slice(&dip);
    f.extend_from_slice(l4);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

fn tcp_seg(sport: u16, dport: u16, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let mut t = sport.to_be_bytes().to_vec();
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

#[test]
fn a_security_group_holds_on_the_wire_statefully() {
    let _g = serial();
    let dir = TempDir::new("neutron-sg");
    let (api, metrics) = (free_port(), free_port());
    let sw = Switch::start(&dir, &neutron_config(&dir, "neutron-sg", api, metrics));
    let a = Some(api);
    let n1 = provider_3029(&sw, api);
    let ssh_rule = ssh_only_group(&sw, api);
    let port = ctl_json(
        &sw,
        a,
        &[
            "port",
            "create",
            "vm1-eth0",
            "--network",
            &n1,
            "--host",
            "compute-1",
            "--security-group",
            "ssh",
        ],
    );
    let port_id = port["id"].as_str().unwrap().to_owned();
    let vm_mac: Vec<u8> = port["mac_address"]
        .as_str()
        .unwrap()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let vm_ip: std::net::Ipv4Addr = port["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let vm_ip = vm_ip.octets();
    let ext_mac = [0x02, 0, 0, 0, 0, 0x50];
    let ext_ip = [10, 0, 0, 50];

    // The VM asks a DNS question (egress: the group allows all).
    let question = ip4(
        &ext_mac,
        &vm_mac,
        vm_ip,
        ext_ip,
        17,
        &[0x13, 0x88, 0, 53, 0, 8, 0, 0],
    );
    add_pcap_port(&sw, &dir, 1, "vm1", &[question], &["--iface-id", &port_id]);
    wait_status(&sw, api, &port_id, "ACTIVE");
    sw.wait_for("the question", |s| {
        s.iter().any(|p| p.name == "vm1" && p.rx_packets == 1)
    });

    // Then, from a host in the same network (local VLAN 1): the answer,
    // an SSH SYN, a SYN to port 80, and an ACK of no connection.
    let from_ext = vec![
        ip4(
            &vm_mac,
            &ext_mac,
            ext_ip,
            vm_ip,
            17,
            &[0, 53, 0x13, 0x88, 0, 8, 0, 0],
        ),
        ip4(
            &vm_mac,
            &ext_mac,
            ext_ip,
            vm_ip,
            6,
            &tcp_seg(40000, 22, 0x02, 1, 0),
        ),
        ip4(
            &vm_mac,
            &ext_mac,
            ext_ip,
            vm_ip,
            6,
            &tcp_seg(40001, 80, 0x02, 1, 0),
        ),
        ip4(
            &vm_mac,
            &ext_mac,
            ext_ip,
            vm_ip,
            6,
            &tcp_seg(40002, 22, 0x10, 5, 7),
        ),
    ];
    add_pcap_port(&sw, &dir, 2, "ext", &from_ext, &["--tag", "1"]);
    sw.wait_for("ext's frames", |s| {
        s.iter().any(|p| p.name == "ext" && p.rx_packets == 4)
    });
    let pmd = ctl_json(&sw, None, &["pmd-stats"]);
    let (status, body) = http_get(metrics, "/metrics");
    let stats = ctl_json(&sw, None, &["conntrack", "stats"]);
    assert_eq!(
        (stats["enabled"].as_bool(), stats["connections"].as_u64()),
        (Some(true), Some(2)),
        "{stats}"
    );
    assert_eq!(
        stats["per_state"]["REPLIED"], 1,
        "the DNS exchange: {stats}"
    );
    assert_eq!(stats["per_state"]["SYNSENT"], 1, "the SSH SYN: {stats}");
    assert_eq!(stats["per_zone"]["1"], 2, "{stats}");
    let dump = ctl_json(&sw, None, &["conntrack", "dump", "--zone", "1"]);
    let ssh = dump
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["proto"] == 6)
        .expect("the SSH connection");
    assert_eq!(
        (ssh["src"].as_str(), ssh["dport"].as_u64()),
        (Some("10.0.0.50"), Some(22)),
        "{dump}"
    );
    assert_eq!(
        ctl_json(&sw, None, &["conntrack", "flush", "--zone", "2"])["flushed"],
        0
    );
    // `trace` tells what a new SSH and a new web connection from ext would
    // meet, from the live configuration, and changes nothing.
    let vm_mac_s = port["mac_address"].as_str().unwrap();
    let vm_ip_s = port["fixed_ips"][0]["ip_address"].as_str().unwrap();
    let trace = |dport: u16| {
        let flow = format!(
            "in_port=ext,tcp,dl_src=02:00:00:00:00:50,dl_dst={vm_mac_s},\
             nw_src=10.0.0.50,nw_dst={vm_ip_s},tp_src=41000,tp_dst={dport}"
        );
        let (ok, out, err) = ctl(&sw, None, &["trace", "br-int", &flow]);
        assert!(ok, "{err}");
        out
    };
    let ssh_trace = trace(22);
    assert!(
        ssh_trace.contains("ingress of vm1: new connection admitted by rule")
            && ssh_trace.contains("tcp port 22")
            && ssh_trace.trim_end().ends_with("=> output: vm1"),
        "{ssh_trace}"
    );
    let web_trace = trace(80);
    assert!(
        web_trace.contains("ingress of vm1: no rule admits it")
            && web_trace
                .trim_end()
                .ends_with("=> drop: denied by every output port's ingress rules"),
        "{web_trace}"
    );
    assert_eq!(
        ctl_json(&sw, None, &["conntrack", "stats"])["connections"],
        2,
        "trace tracks nothing"
    );
    let (ok, _, err) = ctl(&sw, None, &["trace", "br-int", "tcp,tp_dst=22"]);
    assert!(!ok && err.contains("in_port"), "{err}");
    let (ok, _, err) = ctl(&sw, None, &["trace", "br-int", "in_port=nope"]);
    assert!(!ok && err.contains("no port named"), "{err}");

    // The SSH rule goes: its connection is cut at once, DNS's stays.
    let rid = ssh_rule["id"].as_str().unwrap();
    assert!(ctl(&sw, a, &["security-group", "rule", "delete", rid]).0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let st = ctl_json(&sw, None, &["conntrack", "stats"]);
        if st["connections"] == 1 && st["per_state"]["REPLIED"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "SSH not cut: {st}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(ctl_json(&sw, None, &["conntrack", "flush"])["flushed"], 1);
    assert!(sw.stop().success());

    let to_vm = read_pcap(&dir.path("vm1-tx.pcap"));
    assert_eq!(
        to_vm,
        from_ext[..2].to_vec(),
        "the answer and the SSH SYN only"
    );
    assert_eq!(pmd[0]["drops_denied"], 1, "port 80: {pmd}");
    assert_eq!(pmd[0]["drops_ct_invalid"], 1, "the stray ACK: {pmd}");
    assert_eq!(status, 200);
    assert!(
        body.contains("ferroswitch_conntrack_connections 2"),
        "DNS and SSH: {body}"
    );
}

/// Network "n1" (a tenant VLAN) with subnets "v4" (10.0.0.0/24) and "v6"
/// (fd00::/64).
fn dual_stack_network(sw: &Switch, api: u16) {
    ctl_json(sw, Some(api), &["network", "create", "n1"]);
    for (name, cidr) in [("v4", "10.0.0.0/24"), ("v6", "fd00::/64")] {
        ctl_json(
            sw,
            Some(api),
            &[
                "subnet",
                "create",
                name,
                "--network",
                "n1",
                "--subnet-range",
                cidr,
            ],
        );
    }
}

/// An Ethernet frame `dst src type payload`, padded to 60 bytes.
fn eth(dst: &[u8], src: &[u8], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f.resize(f.len().max(60), 0);
    f
}

fn ip6(src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr, next: u8, l4: &[u8]) -> Vec<u8> {
    let len = l4.len() as u16;
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[next, 255]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(l4);
    p
}

fn udp_hdr(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&[0, 8, 0, 0]);
    u
}

fn mac_of(port: &serde_json::Value) -> Vec<u8> {
    port["mac_address"]
        .as_str()
        .unwrap()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

/// The fixed IP of `port` in the family `v6`.
fn fixed_ip(port: &serde_json::Value, v6: bool) -> std::net::IpAddr {
    port["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ip_address"].as_str().unwrap().parse().unwrap())
        .find(|a: &std::net::IpAddr| a.is_ipv6() == v6)
        .unwrap()
}

/// Issue 11, port security end to end: a VM port sends one frame of
/// every spoof kind through a real (pcap) port; each is dropped and
/// counted per reason, what is its own (its addresses, an allowed address
/// pair) passes; the same frames from a port with port security off all
/// pass.
#[test]
fn every_spoof_kind_is_dropped_and_counted_on_a_real_port() {
    let _g = serial();
    let dir = TempDir::new("neutron-spoof");
    let (api, metrics) = (free_port(), free_port());
    let sw = Switch::start(&dir, &neutron_config(&dir, "neutron-spoof", api, metrics));
    let a = Some(api);
    dual_stack_network(&sw, api);
    let pair_mac = "fa:16:3e:99:00:01";
    let vm = ctl_json(
        &sw,
        a,
        &[
            "port",
            "create",
            "vm1-eth0",
            "--network",
            "n1",
            "--allowed-address",
            &format!("ip-address=10.0.0.99,mac-address={pair_mac}"),
        ],
    );
    let open = ctl_json(
        &sw,
        a,
        &[
            "port",
            "create",
            "vm2-eth0",
            "--network",
            "n1",
            "--disable-port-security",
            "--no-security-group",
        ],
    );
    let mac = mac_of(&vm);
    let std::net::IpAddr::V4(v4) = fixed_ip(&vm, false) else {
        unreachable!()
    };
    let std::net::IpAddr::V6(v6) = fixed_ip(&vm, true) else {
        unreachable!()
    };
    let v4 = v4.octets();
    let other_v6: std::net::Ipv6Addr = "fd00::abcd".parse().unwrap();
    let lla: std::net::Ipv6Addr = {
        let mut o = [0u8; 16];
        o[..2].copy_from_slice(&[0xfe, 0x80]);
        o[8..11].copy_from_slice(&[mac[0] ^ 2, mac[1], mac[2]]);
        o[11..13].copy_from_slice(&[0xff, 0xfe]);
        o[13..].copy_from_slice(&mac[3..]);
        o.into()
    };
    let all_nodes: std::net::Ipv6Addr = "ff02::1".parse().unwrap();
    let ext = [0x02, 0, 0, 0, 0, 0x50];
    let pair: Vec<u8> = pair_mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let arp = |sha: &[u8], spa: [u8; 4]| {
        let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1];
        p.extend_from_slice(sha);
        p.extend_from_slice(&spa);
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&[10, 0, 0, 1]);
        eth(&[0xff; 6], sha, 0x0806, &p)
    };
    let na = |target: std::net::Ipv6Addr| {
        let mut m = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
        m.extend_from_slice(&target.octets());
        eth(&ext, &mac, 0x86dd, &ip6(lla, all_nodes, 58, &m))
    };
    let own = vec![
        ip4(&ext, &mac, v4, [10, 0, 0, 50], 17, &udp_hdr(5000, 53)),
        ip4(
            &ext,
            &pair,
            [10, 0, 0, 99],
            [10, 0, 0, 50],
            17,
            &udp_hdr(5001, 53),
        ),
        eth(
            &ext,
            &mac,
            0x86dd,
            &ip6(v6, other_v6, 17, &udp_hdr(5002, 53)),
        ),
        arp(&mac, v4),
        na(v6),
    ];
    let spoofed = vec![
        (
            ip4(
                &ext,
                &[0xfa, 0x16, 0x3e, 1, 2, 3],
                v4,
                [10, 0, 0, 50],
                17,
                &udp_hdr(1, 53),
            ),
            "mac",
        ),
        (
            ip4(
                &ext,
                &mac,
                [10, 0, 0, 77],
                [10, 0, 0, 50],
                17,
                &udp_hdr(2, 53),
            ),
            "ipv4_source",
        ),
        (
            eth(&ext, &mac, 0x86dd, &ip6(other_v6, v6, 17, &udp_hdr(3, 53))),
            "ipv6_source",
        ),
        (arp(&mac, [10, 0, 0, 77]), "arp_sender"),
        (na(other_v6), "nd_target"),
        (
            ip4(&ext, &mac, v4, [10, 0, 0, 50], 17, &udp_hdr(67, 68)),
            "dhcp_server",
        ),
        (
            eth(
                &ext,
                &mac,
                0x86dd,
                &ip6(lla, all_nodes, 17, &udp_hdr(547, 546)),
            ),
            "dhcp_server",
        ),
        (
            eth(
                &ext,
                &mac,
                0x86dd,
                &ip6(lla, all_nodes, 58, &[134, 0, 0, 0, 0, 0, 0, 0]),
            ),
            "router_advert",
        ),
        (eth(&ext, &mac, 0x88b5, &[0; 46]), "ethertype"),
    ];
    let mut frames = own.clone();
    frames.extend(spoofed.iter().map(|(f, _)| f.clone()));
    let n = frames.len() as u64;
    let vm_id = vm["id"].as_str().unwrap();
    add_pcap_port(&sw, &dir, 1, "vm1", &frames, &["--iface-id", vm_id]);
    wait_status(&sw, api, vm_id, "ACTIVE");
    sw.wait_for("vm1's frames", |s| {
        s.iter().any(|p| p.name == "vm1" && p.rx_packets == n)
    });
    let vm1 = sw.port("vm1");
    let mut want: std::collections::BTreeMap<String, u64> = Default::default();
    for (_, reason) in &spoofed {
        *want.entry((*reason).to_owned()).or_default() += 1;
    }
    assert_eq!(vm1.spoofed, want, "every kind counted under its reason");
    assert_eq!(vm1.rx_dropped, spoofed.len() as u64, "{vm1:?}");

    // A port with port security off sends the same frames: all pass.
    let open_id = open["id"].as_str().unwrap();
    add_pcap_port(&sw, &dir, 3, "vm2", &frames, &["--iface-id", open_id]);
    wait_status(&sw, api, open_id, "ACTIVE");
    sw.wait_for("vm2's frames", |s| {
        s.iter().any(|p| p.name == "vm2" && p.rx_packets == n)
    });
    let vm2 = sw.port("vm2");
    assert_eq!((vm2.rx_dropped, vm2.spoofed.len()), (0, 0), "{vm2:?}");
    assert!(sw.stop().success());
    // What reached the uplink: vm1's own frames, then all of vm2's.
    let up = read_pcap(&dir.path("uplink-tx.pcap"));
    assert_eq!(up.len() as u64, own.len() as u64 + n, "{}", up.len());
}

/// Issue 11, security-group rule fields end to end: frames from a host on
/// the network (a real pcap port) to a VM whose group has one rule per
/// field (protocol and port, port range, ICMP type, IPv6 ethertype,
/// remote_ip_prefix, remote_group_id) pass when a rule admits them and
/// are dropped otherwise; a port joining the remote group opens the rule
/// for its address and leaving it closes it again (`vswitchctl trace`
/// tells when the change is in the dataplane).
#[test]
fn every_rule_field_and_remote_group_membership_on_real_ports() {
    let _g = serial();
    let dir = TempDir::new("neutron-fields");
    let (api, metrics) = (free_port(), free_port());
    let sw = Switch::start(&dir, &neutron_config(&dir, "neutron-fields", api, metrics));
    let a = Some(api);
    dual_stack_network(&sw, api);
    ctl_json(&sw, a, &["security-group", "create", "peers"]);
    let fields = ctl_json(&sw, a, &["security-group", "create", "fields"]);
    for rule in [
        &["--protocol", "tcp", "--dst-port", "22"][..],
        &["--protocol", "udp", "--dst-port", "5000:5010"],
        &[
            "--ethertype",
            "IPv6",
            "--protocol",
            "tcp",
            "--dst-port",
            "22",
        ],
        &[
            "--protocol",
            "tcp",
            "--dst-port",
            "80",
            "--remote-ip",
            "10.0.0.50/32",
        ],
        &[
            "--protocol",
            "tcp",
            "--dst-port",
            "8080",
            "--remote-group",
            "peers",
        ],
    ] {
        let mut args = vec!["security-group", "rule", "create", "fields", "--ingress"];
        args.extend_from_slice(rule);
        ctl_json(&sw, a, &args);
    }
    // ICMP echo requests only: type 8, any code.
    let (status, body) = http(
        api,
        "POST",
        "/v2.0/security-group-rules",
        Some(
            &serde_json::json!({"security_group_rule": {
                "security_group_id": fields["id"], "direction": "ingress",
                "ethertype": "IPv4", "protocol": "icmp", "port_range_min": 8}})
            .to_string(),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let vm = ctl_json(
        &sw,
        a,
        &[
            "port",
            "create",
            "vm1-eth0",
            "--network",
            "n1",
            "--security-group",
            "fields",
        ],
    );
    let vm2 = ctl_json(
        &sw,
        a,
        &[
            "port",
            "create",
            "vm2-eth0",
            "--network",
            "n1",
            "--no-security-group",
        ],
    );
    let vm_id = vm["id"].as_str().unwrap();
    let mac = mac_of(&vm);
    let (std::net::IpAddr::V4(v4), std::net::IpAddr::V6(v6)) =
        (fixed_ip(&vm, false), fixed_ip(&vm, true))
    else {
        unreachable!()
    };
    // The VM announces itself (an ARP request), so frames to it are
    // unicast and a refused one is a counted drop, not a smaller flood.
    let mut announce = vec![0, 1, 8, 0, 6, 4, 0, 1];
    announce.extend_from_slice(&mac);
    announce.extend_from_slice(&v4.octets());
    announce.extend_from_slice(&[0; 6]);
    announce.extend_from_slice(&[10, 0, 0, 1]);
    let announce = eth(&[0xff; 6], &mac, 0x0806, &announce);
    add_pcap_port(&sw, &dir, 1, "vm1", &[announce], &["--iface-id", vm_id]);
    wait_status(&sw, api, vm_id, "ACTIVE");
    sw.wait_for("vm1's announcement", |s| {
        s.iter().any(|p| p.name == "vm1" && p.rx_packets == 1)
    });
    let std::net::IpAddr::V4(peer) = fixed_ip(&vm2, false) else {
        unreachable!()
    };
    let (v4, peer) = (v4.octets(), peer.octets());
    let host = [0x02, 0, 0, 0, 0, 0x50];
    let from = |src: [u8; 4], proto: u8, l4: &[u8]| ip4(&mac, &host, src, v4, proto, l4);
    let syn = |sport: u16, dport: u16| tcp_seg(sport, dport, 0x02, 1, 0);
    let h50 = [10, 0, 0, 50];
    let v6_from: std::net::Ipv6Addr = "fd00::50".parse().unwrap();
    let admitted = [
        from(h50, 6, &syn(40000, 22)),
        from(h50, 17, &udp_hdr(40001, 5005)),
        from(h50, 1, &[8, 0, 0, 0, 0, 7, 0, 1]),
        eth(&mac, &host, 0x86dd, &ip6(v6_from, v6, 6, &syn(40002, 22))),
        from(h50, 6, &syn(40003, 80)),
    ];
    let refused = [
        from(h50, 6, &syn(40004, 23)),
        from(h50, 17, &udp_hdr(40005, 5011)),
        eth(&mac, &host, 0x86dd, &ip6(v6_from, v6, 6, &syn(40006, 23))),
        from([10, 0, 0, 51], 6, &syn(40007, 80)),
        from(peer, 6, &syn(40008, 8080)),
    ];
    let sent: Vec<Vec<u8>> = admitted.iter().chain(&refused).cloned().collect();
    let vm1_tx = || sw.port("vm1").tx_packets;
    // Sends `frames` from a new host port and waits until they are in.
    let mut hosts = 1;
    let mut send = |frames: &[Vec<u8>]| {
        hosts += 1;
        let name = format!("host{hosts}");
        add_pcap_port(&sw, &dir, hosts, &name, frames, &["--tag", "1"]);
        let n = frames.len() as u64;
        sw.wait_for("the host's frames", |s| {
            s.iter().any(|p| p.name == name && p.rx_packets == n)
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    send(&sent);
    assert_eq!(
        vm1_tx(),
        admitted.len() as u64,
        "one frame per rule field passes"
    );

    // vm2 joins "peers": its address opens rule 8080; leaving closes it.
    let trace_8080 = |sport: u16| {
        let flow = format!(
            "in_port=host2,tcp,dl_src=02:00:00:00:00:50,dl_dst={},nw_src={},nw_dst={},\
             tp_src={sport},tp_dst=8080",
            vm["mac_address"].as_str().unwrap(),
            std::net::Ipv4Addr::from(peer),
            std::net::Ipv4Addr::from(v4)
        );
        ctl(&sw, None, &["trace", "br-int", &flow]).1
    };
    let set_groups = |groups: serde_json::Value| {
        let path = format!("/v2.0/ports/{}", vm2["id"].as_str().unwrap());
        let body = serde_json::json!({"port": {"security_groups": groups}}).to_string();
        let (status, text) = http(api, "PUT", &path, Some(&body));
        assert_eq!(status, 200, "{text}");
    };
    let wait_trace = |sport: u16, want: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let t = trace_8080(sport);
            if t.contains(want) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{want:?} never in:\n{t}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let peers_id = ctl_json(&sw, a, &["security-group", "show", "peers"])["id"].clone();
    set_groups(serde_json::json!([peers_id]));
    wait_trace(40009, "admitted by rule");
    let before = vm1_tx();
    send(&[from(peer, 6, &syn(40009, 8080))]);
    assert_eq!(
        vm1_tx(),
        before + 1,
        "a member of the remote group is admitted"
    );
    set_groups(serde_json::json!([]));
    wait_trace(40010, "no rule admits it");
    send(&[from(peer, 6, &syn(40010, 8080))]);
    assert_eq!(vm1_tx(), before + 1, "no longer a member: refused");
    let pmd = ctl_json(&sw, None, &["pmd-stats"]);
    assert!(
        pmd[0]["drops_denied"].as_u64() >= Some(refused.len() as u64 + 1),
        "{pmd}"
    );
    assert!(sw.stop().success());
}

/// Issue 12, finding 1: with a `[neutron]` section and no bridge for its
/// ports, binding a port to this host attached it to a bridge that did
/// not exist (and once crashed the metrics and port-list paths). The
/// config now names the bridge (`neutron.integration_bridge`, as OVS's
/// agent does): without it the config is refused before anything starts;
/// with it, a bound port joins that bridge and every reader still answers.
#[test]
fn bound_ports_join_the_integration_bridge_and_a_config_without_it_is_refused() {
    let _g = serial();
    let dir = TempDir::new("neutron-intbr");
    let (api, metrics) = (free_port(), free_port());
    let neutron = format!(
        "{head}metrics_listen = \"127.0.0.1:{metrics}\"\n\
         [neutron]\nlisten = \"127.0.0.1:{api}\"\ndatabase = \"{db}\"\nhost = \"compute-1\"\n\
         vhost_socket_dir = \"{vhu}\"\n",
        head = config_head(&dir, "neutron-intbr"),
        db = dir.path("neutron.db").display(),
        vhu = dir.path("vhu").display(),
    );
    let path = dir.path("no-bridge.toml");
    std::fs::write(&path, &neutron).unwrap();
    for check in [true, false] {
        let mut cmd = std::process::Command::new(bin("vswitchd"));
        cmd.arg("--config").arg(&path);
        if check {
            cmd.arg("--check");
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--check {check}: {err}");
        assert!(
            err.contains("neutron.integration_bridge") && err.contains("\"br-int\""),
            "{err}"
        );
        assert!(
            !err.contains("EAL:"),
            "refused before the EAL starts: {err}"
        );
    }

    let cfg = format!("{neutron}integration_bridge = \"br0\"\n[[bridges]]\nname = \"br0\"\n");
    let sw = Switch::start(&dir, &cfg);
    let a = Some(api);
    ctl_json(
        &sw,
        a,
        &[
            "network",
            "create",
            "n1",
            "--provider-network-type",
            "local",
        ],
    );
    let port = ctl_json(
        &sw,
        a,
        &[
            "port",
            "create",
            "p1",
            "--network",
            "n1",
            "--host",
            "compute-1",
        ],
    );
    assert_eq!(port["binding:vif_type"], "vhostuser", "{port}");
    let mut list = serde_json::Value::Null;
    for _ in 0..100 {
        list = ctl_json(&sw, None, &["port", "list"]);
        if list.as_array().is_some_and(|l| !l.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let attached = &list.as_array().unwrap()[0];
    assert_eq!(
        (attached["type"].as_str(), attached["bridge"].as_str()),
        (Some("dpdkvhostuserclient"), Some("br0")),
        "{list}"
    );
    let (status, _) = http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    assert!(sw.stop().success());
}

/// Waits until `n` knows `host` is registered.
fn registered(n: &neutron::Neutron, host: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !n.state().hosts.contains_key(host) {
        assert!(
            std::time::Instant::now() < deadline,
            "{host} never registered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 16: the Neutron model in a real etcd, two hosts. compute-2's API
/// (a Neutron service in this process, as `neutron-server` on another
/// host) creates a provider network and a port bound to compute-1, which
/// it can bind because compute-1's daemon registered. compute-1's daemon
/// learns all of it by its watch: the network's VLAN on the uplink, the
/// port attached and reported ACTIVE, which compute-2's API shows. Killed
/// with SIGKILL, compute-1 stops renewing its lease: its port goes DOWN in
/// compute-2's API. Started again, it rebuilds everything from etcd and
/// the port comes back ACTIVE.
#[test]
fn a_port_bound_through_another_hosts_api_comes_up_here_through_etcd() {
    let _g = serial();
    let dir = TempDir::new("neutron-etcd");
    let etcd = common::etcd_member::Etcd::start(&dir.path(""));
    let (api, metrics) = (free_port(), free_port());
    let cfg = format!(
        "{}[cluster]\netcd_endpoints = [\"{}\"]\nhost_ttl_secs = 2\n",
        neutron_config(&dir, "neutron-etcd", api, metrics),
        etcd.client_url
    );
    let mut sw = Switch::start(&dir, &cfg);
    let other = neutron::Neutron::open(neutron::NeutronConfig {
        listen: "127.0.0.1:0".into(),
        host: "compute-2".into(),
        network_vlan_ranges: vec!["physnet1:3000:3099".into()],
        bridge_mappings: vec!["physnet1:br-phy".into()],
        dhcp: false,
        cluster: Some(etcd.cluster()),
        ..neutron::NeutronConfig::default()
    })
    .unwrap();
    let server = other.serve().unwrap();
    let api2 = server.local_addr().port();
    registered(&other, "compute-1");

    let net_id = provider_3029(&sw, api2);
    let port = ctl_json(
        &sw,
        Some(api2),
        &[
            "port",
            "create",
            "vm1-eth0",
            "--network",
            &net_id,
            "--host",
            "compute-1",
        ],
    );
    assert_eq!(port["binding:vif_type"], "vhostuser", "{port}");
    assert_eq!(
        port["binding:vif_details"]["vhostuser_socket"],
        format!(
            "{}/vhu{}",
            dir.path("vhu").display(),
            &port["id"].as_str().unwrap()[..11]
        ),
        "bound with compute-1's registered settings"
    );
    let port_id = port["id"].as_str().unwrap().to_owned();
    // compute-2's own VM port, up on compute-2: never compute-1's to
    // attach, nor to set DOWN when it starts.
    other.register_host(None).unwrap();
    registered(&other, "compute-2");
    let theirs = ctl_json(
        &sw,
        Some(api2),
        &[
            "port",
            "create",
            "vm2-eth0",
            "--network",
            &net_id,
            "--host",
            "compute-2",
        ],
    );
    assert_eq!(theirs["binding:vif_type"], "vhostuser", "{theirs}");
    let theirs = theirs["id"].as_str().unwrap().to_owned();
    other
        .set_port_status(&theirs, neutron::PortStatus::Active)
        .unwrap();
    let not_attached_here = |sw: &Switch| {
        let ports = ctl_json(sw, None, &["port", "list"]);
        let name = format!("vhu{}", &theirs[..11]);
        assert!(
            !ports.as_array().unwrap().iter().any(|p| p["name"] == name),
            "compute-1 attached compute-2's port: {ports}"
        );
    };
    let translations = |sw: &Switch| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let t = uplink_translations(sw);
            if t == serde_json::json!([[3029, 1]]) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "uplink: {t}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    translations(&sw);
    not_attached_here(&sw);
    add_pcap_port(&sw, &dir, 1, "vm1", &[], &["--iface-id", &port_id]);
    wait_status(&sw, api2, &port_id, "ACTIVE");
    // compute-2's commits reached this host by the watch, and it says so.
    let (status, body) = http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    for line in [
        "ferroswitch_cluster_etcd_up 1",
        "ferroswitch_cluster_hosts 2",
        "ferroswitch_cluster_watch_lag_seconds{quantile=\"0.99\"}",
    ] {
        assert!(body.contains(line), "no {line:?} in\n{body}");
    }
    let watched: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("ferroswitch_cluster_watched_commits_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        watched >= 3,
        "network, subnet and port came by the watch: {watched}"
    );

    signal(sw.child.id(), libc::SIGKILL);
    sw.child.wait().unwrap();
    wait_status(&sw, api2, &port_id, "DOWN");
    drop(sw);

    let sw = Switch::start(&dir, &cfg);
    translations(&sw);
    add_pcap_port(&sw, &dir, 1, "vm1", &[], &["--iface-id", &port_id]);
    wait_status(&sw, api2, &port_id, "ACTIVE");
    not_attached_here(&sw);
    assert_eq!(
        other.state().ports[&theirs].status,
        neutron::PortStatus::Active,
        "compute-1's start swept compute-2's port DOWN"
    );
    assert!(sw.stop().success());
    // Stopped cleanly, it leaves at once (no lease to wait out) and its
    // port goes DOWN.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while other.state().hosts.contains_key("compute-1")
        || other.state().ports[&port_id].status != neutron::PortStatus::Down
    {
        assert!(
            std::time::Instant::now() < deadline,
            "compute-1 still registered, or its port not DOWN"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.shutdown();
}
