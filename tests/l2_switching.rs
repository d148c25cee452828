//! End-to-end L2 switching through the real daemon, the real EAL and
//! `net_pcap` virtual devices: frames come from pcap files, what the switch
//! transmits is written to pcap files and checked frame by frame.
mod common;

use common::*;
use control_api::protocol::{FdbRow, PmdStatsRow, PortStatsRow, Request};

fn port(name: &str, devargs: &str, vlan: &str) -> String {
    format!("[[bridges.ports]]\nname = \"{name}\"\ndevargs = \"{devargs}\"\n{vlan}\n")
}

fn rx_port(dir: &TempDir, idx: u32, name: &str, frames: &[Vec<u8>], vlan: &str) -> String {
    let rx = dir.path(&format!("{name}-rx.pcap"));
    write_pcap(&rx, frames);
    let tx = dir.path(&format!("{name}-tx.pcap"));
    port(
        name,
        &format!(
            "net_pcap{idx},rx_pcap={},tx_pcap={}",
            rx.display(),
            tx.display()
        ),
        vlan,
    )
}

fn tx_port(dir: &TempDir, idx: u32, name: &str, vlan: &str) -> String {
    let tx = dir.path(&format!("{name}-tx.pcap"));
    port(
        name,
        &format!("net_pcap{idx},tx_pcap={}", tx.display()),
        vlan,
    )
}

fn sent(dir: &TempDir, name: &str) -> Vec<Vec<u8>> {
    read_pcap(&dir.path(&format!("{name}-tx.pcap")))
}

#[test]
fn unknown_unicast_and_broadcast_flood_only_within_their_vlan() {
    let _g = serial();
    let dir = TempDir::new("flood");
    let mut frames: Vec<Vec<u8>> = (0..10).map(|i| frame(C, A, None, i)).collect();
    frames.extend((10..15).map(|i| frame(BCAST, A, None, i)));
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n{}{}{}{}{}",
        config_head(&dir, "flood"),
        rx_port(&dir, 0, "a10", &frames, "tag = 10"),
        tx_port(&dir, 1, "b10", "tag = 10"),
        tx_port(&dir, 2, "c20", "tag = 20"),
        tx_port(&dir, 3, "trunk1020", "trunks = [10, 20]"),
        tx_port(&dir, 4, "trunk20", "trunks = [20]"),
    );
    let sw = Switch::start(&dir, &cfg);
    sw.wait_for("15 frames in", |s| s[0].rx_packets == 15);
    let pmd: Vec<PmdStatsRow> = serde_json::from_value(sw.ok(&Request::PmdStats)).unwrap();
    assert!(sw.stop().success());

    let b10 = sent(&dir, "b10");
    assert_eq!(b10.len(), 15, "same access VLAN gets every frame");
    assert!(
        b10.iter().all(|f| vid(f).is_none()),
        "access port sends untagged"
    );
    assert_eq!(
        b10, frames,
        "frames unchanged on an access port of the same VLAN"
    );
    let t = sent(&dir, "trunk1020");
    assert_eq!(t.len(), 15);
    assert!(
        t.iter().all(|f| vid(f) == Some(10)),
        "trunk gets VLAN 10 tagged"
    );
    // Tag inserted after the MACs, the rest unchanged.
    assert_eq!(t[0][..12], frames[0][..12]);
    assert_eq!(t[0][16..], frames[0][12..]);
    assert!(
        sent(&dir, "c20").is_empty(),
        "VLAN 20 access port must not see VLAN 10"
    );
    assert!(
        sent(&dir, "trunk20").is_empty(),
        "trunk without 10 must not see VLAN 10"
    );
    assert_eq!(pmd[0].drops_malformed, 0);
}

#[test]
fn learned_mac_goes_to_exactly_one_port() {
    let _g = serial();
    let dir = TempDir::new("learn");
    // B announces itself on p1 (broadcast), then A -> B arrives on a port
    // added at runtime: every frame must go to p1 only.
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n{}{}{}",
        config_head(&dir, "learn"),
        rx_port(&dir, 1, "p1", &[frame(BCAST, B, None, 0)], ""),
        tx_port(&dir, 2, "p2", ""),
        tx_port(&dir, 3, "p3", ""),
    );
    let sw = Switch::start(&dir, &cfg);
    sw.wait_for("B's broadcast", |s| s[0].rx_packets == 1);
    let fdb: Vec<FdbRow> =
        serde_json::from_value(sw.ok(&Request::FdbShow { bridge: None })).unwrap();
    assert_eq!(fdb.len(), 1, "{fdb:?}");
    assert_eq!(
        (fdb[0].port.as_str(), fdb[0].vlan, fdb[0].mac.as_str()),
        ("p1", 0, "fa:16:3e:00:00:0b")
    );

    let a2b: Vec<Vec<u8>> = (0..100).map(|i| frame(B, A, None, i)).collect();
    let rx = dir.path("p0-rx.pcap");
    write_pcap(&rx, &a2b);
    let devargs = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        rx.display(),
        dir.path("p0-tx.pcap").display()
    );
    sw.ok(&Request::PortAdd {
        bridge: "br0".into(),
        port: control_api::config::PortConfig::dpdk("p0", &devargs),
    });
    sw.wait_for("100 frames from A", |s| {
        s.iter().any(|p| p.name == "p0" && p.rx_packets == 100)
    });
    let fdb: Vec<FdbRow> = serde_json::from_value(sw.ok(&Request::FdbShow {
        bridge: Some("br0".into()),
    }))
    .unwrap();
    assert!(
        fdb.iter()
            .any(|e| e.port == "p0" && e.mac == "fa:16:3e:00:00:0a"),
        "A learned on p0: {fdb:?}"
    );
    let stats = sw.stats();
    assert!(sw.stop().success());

    let p1 = sent(&dir, "p1");
    assert_eq!(p1, a2b, "every A->B frame on p1, in order, unchanged");
    assert_eq!(
        sent(&dir, "p2"),
        vec![frame(BCAST, B, None, 0)],
        "p2 saw only B's broadcast"
    );
    assert_eq!(sent(&dir, "p3"), vec![frame(BCAST, B, None, 0)]);
    assert!(sent(&dir, "p0").is_empty());
    let p0 = stats.iter().find(|s| s.name == "p0").unwrap();
    assert_eq!((p0.rx_packets, p0.rx_dropped), (100, 0));
}

#[test]
fn access_trunk_and_native_tagging_on_the_wire() {
    let _g = serial();
    let dir = TempDir::new("tags");
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n{}{}{}{}",
        config_head(&dir, "tags"),
        // B on a trunk, VLAN 10, tagged.
        rx_port(
            &dir,
            0,
            "trunk",
            &[frame(BCAST, B, Some(10), 0)],
            "trunks = [10, 20]"
        ),
        // C on a native-untagged port (native 20, also trunks 10), sends untagged -> VLAN 20.
        rx_port(
            &dir,
            1,
            "native",
            &[frame(BCAST, C, None, 1)],
            "vlan_mode = \"native-untagged\"\ntag = 20\ntrunks = [10]"
        ),
        tx_port(&dir, 2, "access", "tag = 10"),
        tx_port(&dir, 3, "access20", "tag = 20"),
    );
    let sw = Switch::start(&dir, &cfg);
    sw.wait_for("B and C announced", |s| {
        s[0].rx_packets == 1 && s[1].rx_packets == 1
    });
    // A on a new access-10 port sends to B (known on the trunk) and to C
    // (known in VLAN 20 only, so unknown in VLAN 10: flooded in VLAN 10).
    let rx = dir.path("sender-rx.pcap");
    write_pcap(&rx, &[frame(B, A, None, 2), frame(C, A, None, 3)]);
    sw.ok(&Request::PortAdd {
        bridge: "br0".into(),
        port: control_api::config::PortConfig {
            tag: Some(10),
            ..control_api::config::PortConfig::dpdk(
                "sender",
                &format!(
                    "net_pcap4,rx_pcap={},tx_pcap={}",
                    rx.display(),
                    dir.path("sender-tx.pcap").display()
                ),
            )
        },
    });
    sw.wait_for("A's frames", |s| {
        s.iter().any(|p| p.name == "sender" && p.rx_packets == 2)
    });
    assert!(sw.stop().success());

    let summary = |name: &str| -> Vec<(Option<u16>, [u8; 6])> {
        sent(&dir, name)
            .iter()
            .map(|f| (vid(f), f[..6].try_into().unwrap()))
            .collect()
    };
    // Trunk: C's broadcast tagged 20, A->B tagged 10, A->C flooded tagged 10.
    assert_eq!(
        summary("trunk"),
        vec![(Some(20), BCAST), (Some(10), B), (Some(10), C)]
    );
    // Native-untagged (native 20): B's VLAN 10 broadcast and A->C leave tagged 10.
    assert_eq!(summary("native"), vec![(Some(10), BCAST), (Some(10), C)]);
    // Access 10: B's broadcast with its 4 tag bytes removed and nothing
    // else changed (no re-padding: a NIC pads short frames itself), then A->C.
    let mut stripped = frame(BCAST, B, Some(10), 0);
    stripped.drain(12..16);
    assert_eq!(sent(&dir, "access"), vec![stripped, frame(C, A, None, 3)]);
    // Access 20: C's broadcast untagged, nothing of VLAN 10.
    assert_eq!(sent(&dir, "access20"), vec![frame(BCAST, C, None, 1)]);
    let trunk = sent(&dir, "trunk");
    // Tag inserted after the MACs, everything else unchanged.
    assert_eq!(trunk[1][..12], frame(B, A, None, 2)[..12]);
    assert_eq!(trunk[1][16..], frame(B, A, None, 2)[12..]);
    assert!(sent(&dir, "sender").is_empty());
}

#[test]
fn vlan_violations_and_malformed_frames_are_dropped_and_counted() {
    let _g = serial();
    let dir = TempDir::new("drops");
    let frames = vec![
        frame(BCAST, A, Some(10), 0), // tagged on an access port: violation
        frame(BCAST, A, Some(30), 1), // tagged on an access port: violation
        vec![0xff; 10],               // runt: malformed
        {
            let mut f = frame(BCAST, A, Some(10), 2); // truncated tag
            f.truncate(15);
            f
        },
        frame(BCAST, A, None, 3), // fine
    ];
    let trunk_frames = vec![frame(BCAST, B, Some(99), 4), frame(BCAST, B, None, 5)]; // 99 not trunked, untagged not allowed
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n{}{}{}",
        config_head(&dir, "drops"),
        rx_port(&dir, 0, "access", &frames, "tag = 10"),
        rx_port(&dir, 1, "trunk", &trunk_frames, "trunks = [10]"),
        tx_port(&dir, 2, "other", "tag = 10"),
    );
    let sw = Switch::start(&dir, &cfg);
    sw.wait_for("all in", |s| s[0].rx_packets == 5 && s[1].rx_packets == 2);
    let stats = sw.stats();
    let pmd: Vec<PmdStatsRow> = serde_json::from_value(sw.ok(&Request::PmdStats)).unwrap();
    assert!(sw.stop().success(), "the switch survives bad frames");
    assert_eq!(stats[0].rx_dropped, 4);
    assert_eq!(stats[1].rx_dropped, 2);
    assert_eq!(pmd[0].drops_vlan, 4);
    assert_eq!(pmd[0].drops_malformed, 2);
    assert_eq!(sent(&dir, "other"), vec![frame(BCAST, A, None, 3)]);
    assert_eq!(
        sent(&dir, "trunk")
            .iter()
            .map(|f| vid(f))
            .collect::<Vec<_>>(),
        vec![Some(10)]
    );
}

#[test]
fn port_add_del_under_traffic_loses_nothing_on_other_ports() {
    let _g = serial();
    let dir = TempDir::new("churn");
    // src: endless A->B at full speed; dst: B announced once. 100 times a
    // port is added to and removed from the same VLAN while traffic runs;
    // afterwards every frame src received must have left through dst.
    let a2b: Vec<Vec<u8>> = (0..256).map(|i| frame(B, A, None, i)).collect();
    let src_rx = dir.path("src.pcap");
    write_pcap(&src_rx, &a2b);
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n{}{}",
        config_head(&dir, "churn"),
        port(
            "dst",
            &format!("net_pcap0,rx_pcap={}", {
                let p = dir.path("dst.pcap");
                write_pcap(&p, &[frame(BCAST, B, None, 0)]);
                p.display().to_string()
            }),
            "tag = 7"
        ),
        port(
            "src",
            &format!("net_pcap1,rx_pcap={},infinite_rx=1", src_rx.display()),
            "tag = 7"
        ),
    );
    let sw = Switch::start(&dir, &cfg);
    sw.wait_for("traffic flowing", |s| s[1].rx_packets > 1_000_000);
    for i in 0..100 {
        let name = format!("churn{i}");
        sw.ok(&Request::PortAdd {
            bridge: "br0".into(),
            port: control_api::config::PortConfig {
                tag: Some(7),
                ..control_api::config::PortConfig::dpdk(
                    &name,
                    &format!("net_pcap{},tx_pcap=/dev/null", 2 + i % 2),
                )
            },
        });
        sw.ok(&Request::PortDel { name });
    }
    // Removing the source ends its traffic; its final counters are complete.
    let src: PortStatsRow =
        serde_json::from_value(sw.ok(&Request::PortDel { name: "src".into() })).unwrap();
    let dst = sw.port("dst");
    let log = sw.log_text();
    assert!(sw.stop().success());
    assert!(src.rx_packets > 1_000_000, "{src:?}");
    assert_eq!(src.rx_dropped, 0, "{src:?}");
    assert_eq!(src.rx_missed, 0, "{src:?}");
    assert_eq!(dst.tx_dropped, 0, "{dst:?}");
    assert_eq!(
        dst.tx_packets, src.rx_packets,
        "every frame of src reached dst\n{log}"
    );
    assert_eq!(log.matches("port added").count(), 102);
    assert_eq!(log.matches("port deleted").count(), 101);
}

#[test]
fn two_workers_share_the_mac_table_and_each_use_their_own_tx_queue() {
    let _g = serial();
    let dir = TempDir::new("two-pmds");
    // Port "a" has two rx queues (one pcap file each), so each worker polls
    // one; every port has two tx queues, one per worker.
    let q0: Vec<Vec<u8>> = (0..16u8)
        .map(|i| frame(BCAST, [0xfa, 0x16, 0x3e, 1, 0, i], None, i as u32))
        .collect();
    let q1: Vec<Vec<u8>> = (16..32u8)
        .map(|i| frame(BCAST, [0xfa, 0x16, 0x3e, 1, 0, i], None, i as u32))
        .collect();
    write_pcap(&dir.path("a-q0.pcap"), &q0);
    write_pcap(&dir.path("a-q1.pcap"), &q1);
    let p = |n: &str| dir.path(n).display().to_string();
    let head = config_head(&dir, "two-pmds").replace("pmd_cores = [1]", "pmd_cores = [0, 1]");
    let cfg = format!(
        "{head}[[bridges]]\nname = \"br0\"\n\
         [[bridges.ports]]\nname = \"a\"\nrx_queues = 2\ndevargs = \"net_pcap0,rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}\"\n\
         [[bridges.ports]]\nname = \"b\"\ndevargs = \"net_pcap1,tx_pcap={},tx_pcap={}\"\n",
        p("a-q0.pcap"),
        p("a-q1.pcap"),
        p("a-tx0.pcap"),
        p("a-tx1.pcap"),
        p("b-tx0.pcap"),
        p("b-tx1.pcap"),
    );
    let sw = Switch::start(&dir, &cfg);
    sw.wait_for("32 frames", |s| s[0].rx_packets == 32);
    let pmd: Vec<PmdStatsRow> = serde_json::from_value(sw.ok(&Request::PmdStats)).unwrap();
    let fdb: Vec<FdbRow> =
        serde_json::from_value(sw.ok(&Request::FdbShow { bridge: None })).unwrap();
    assert!(sw.stop().success());
    assert_eq!(pmd.len(), 2);
    assert_eq!(
        pmd.iter().map(|w| w.rx_queues.len()).collect::<Vec<_>>(),
        vec![2, 1],
        "a:0 b:0 on one, a:1 on the other: {pmd:?}"
    );
    assert!(
        pmd.iter().all(|w| w.packets == 16),
        "each worker switched its queue: {pmd:?}"
    );
    assert_eq!(
        fdb.len(),
        32,
        "both workers learned into the one table: {fdb:?}"
    );
    assert!(fdb.iter().all(|e| e.port == "a"));
    // Each worker transmitted its 16 frames on its own tx queue of b.
    let (t0, t1) = (
        read_pcap(&dir.path("b-tx0.pcap")),
        read_pcap(&dir.path("b-tx1.pcap")),
    );
    assert_eq!((t0.len(), t1.len()), (16, 16));
    let mut all: Vec<Vec<u8>> = t0.into_iter().chain(t1).collect();
    all.sort();
    let mut want: Vec<Vec<u8>> = q0.into_iter().chain(q1).collect();
    want.sort();
    assert_eq!(all, want);
}

#[test]
fn uplink_translates_provider_vlans_to_local_ones() {
    let _g = serial();
    let dir = TempDir::new("xlate");
    // As the Neutron OVS agent: the VM port is access in local VLAN 2, the
    // uplink carries the network as VLAN 3029 on the wire.
    let cfg = format!(
        "{}[[bridges]]\nname = \"br-int\"\n{}{}",
        config_head(&dir, "xlate"),
        rx_port(
            &dir,
            0,
            "uplink",
            &[
                frame(BCAST, B, Some(3029), 0),
                frame(BCAST, C, Some(3030), 1)
            ],
            "trunks = [4000]\nvlan_translations = [[3029, 2]]"
        ),
        tx_port(&dir, 1, "vm", "tag = 2"),
    );
    let sw = Switch::start(&dir, &cfg);
    sw.wait_for("uplink frames", |s| s[0].rx_packets == 2);
    let rx = dir.path("vm2-rx.pcap");
    write_pcap(&rx, &[frame(B, A, None, 2)]);
    sw.ok(&Request::PortAdd {
        bridge: "br-int".into(),
        port: control_api::config::PortConfig {
            tag: Some(2),
            ..control_api::config::PortConfig::dpdk(
                "vm2",
                &format!(
                    "net_pcap2,rx_pcap={},tx_pcap={}",
                    rx.display(),
                    dir.path("vm2-tx.pcap").display()
                ),
            )
        },
    });
    sw.wait_for("vm2 frame", |s| {
        s.iter().any(|p| p.name == "vm2" && p.rx_packets == 1)
    });
    let stats = sw.stats();
    assert!(sw.stop().success());
    let mut stripped = frame(BCAST, B, Some(3029), 0);
    stripped.drain(12..16);
    assert_eq!(
        sent(&dir, "vm"),
        vec![stripped],
        "3029 arrives as local 2, untagged; 3030 is not ours"
    );
    assert_eq!(stats[0].rx_dropped, 1, "VID 3030 dropped on the uplink");
    let up = sent(&dir, "uplink");
    assert_eq!(up.len(), 1);
    assert_eq!(vid(&up[0]), Some(3029), "local 2 leaves the uplink as 3029");
    assert_eq!(&up[0][..6], &B);
}

#[test]
fn jumbo_floods_are_copied_whole_and_frames_over_the_mtu_are_dropped_and_counted() {
    let _g = serial();
    let dir = TempDir::new("jumbo");
    // The pcap PMD chains 2 KiB buffers for a 9,000-byte frame: every flood
    // copy must carry all of it.
    let mut jumbo = frame(BCAST, A, None, 1);
    jumbo.resize(9000, 0x5a);
    jumbo[8999] = 0xa5;
    let mid = {
        let mut f = frame(BCAST, A, None, 2);
        f.resize(1600, 0x33);
        f
    };
    let stp = {
        let mut f = frame([0x01, 0x80, 0xc2, 0, 0, 0], C, None, 3);
        f[12..14].copy_from_slice(&[0x00, 0x26]);
        f
    };
    let lldp = frame([0x01, 0x80, 0xc2, 0, 0, 0x0e], C, None, 4);
    let to_c = frame(C, B, None, 5); // C was never learned: flooded
    let frames = vec![jumbo.clone(), mid.clone(), stp, lldp, to_c.clone()];
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n{}{}{}{}",
        config_head(&dir, "jumbo"),
        rx_port(&dir, 0, "src", &frames, "tag = 10\nmtu_request = 9000"),
        tx_port(&dir, 1, "trunk9k", "trunks = [10]\nmtu_request = 9000"),
        tx_port(&dir, 2, "access9k", "tag = 10\nmtu_request = 9000"),
        tx_port(&dir, 3, "access1500", "tag = 10"),
    );
    let sw = Switch::start(&dir, &cfg);
    sw.wait_for("5 frames in", |s| s[0].rx_packets == 5);
    let small = sw.port("access1500");
    let pmd: Vec<PmdStatsRow> = serde_json::from_value(sw.ok(&Request::PmdStats)).unwrap();
    assert!(sw.stop().success());

    let mut tagged = jumbo.clone();
    tagged.splice(12..12, [0x81, 0x00, 0x00, 10]);
    let trunk = sent(&dir, "trunk9k");
    assert_eq!(
        trunk.iter().map(Vec::len).collect::<Vec<_>>(),
        [9004, 1604, 64],
        "jumbo, 1600 and the unknown unicast"
    );
    assert_eq!(trunk[0].len(), 9004);
    assert!(trunk[0] == tagged, "the whole jumbo frame, tagged");
    assert_eq!(sent(&dir, "access9k"), vec![jumbo, mid, to_c.clone()]);
    assert_eq!(
        sent(&dir, "access1500"),
        vec![to_c],
        "1,518 bytes at most on a 1,500 MTU"
    );
    assert_eq!((small.tx_oversize, small.tx_dropped), (2, 2));
    assert_eq!(pmd[0].drops_oversize, 2);
    assert_eq!(pmd[0].drops_link_local, 2, "STP and LLDP: not forwarded");
    let fdb: Vec<FdbRow> = {
        // C sent only to link-local addresses: never learned.
        let dir2 = TempDir::new("jumbo-fdb");
        let cfg = format!(
            "{}[[bridges]]\nname = \"br0\"\n{}",
            config_head(&dir2, "jumbo-fdb"),
            rx_port(
                &dir2,
                0,
                "src",
                &[frame([0x01, 0x80, 0xc2, 0, 0, 0], C, None, 6)],
                ""
            ),
        );
        let sw = Switch::start(&dir2, &cfg);
        sw.wait_for("1 frame in", |s| s[0].rx_packets == 1);
        let fdb = serde_json::from_value(sw.ok(&Request::FdbShow { bridge: None })).unwrap();
        assert!(sw.stop().success());
        fdb
    };
    assert!(fdb.is_empty(), "nothing learned from a BPDU: {fdb:?}");
}

/// Runs `vswitchctl` and asserts it succeeded; its standard output.
fn ctl_ok(sw: &Switch, args: &[&str]) -> String {
    let (ok, out, err) = ctl(sw, None, args);
    assert!(ok, "vswitchctl {args:?}: {err}");
    out
}

/// A port of `name` that reads `frames` from a pcap file and writes what
/// it sends to another, added while the switch runs (after the flows
/// are in place: its frames start flowing at once).
fn add_rx_port(sw: &Switch, dir: &TempDir, idx: u32, bridge: &str, name: &str, frames: &[Vec<u8>]) {
    let rx = dir.path(&format!("{name}-rx.pcap"));
    write_pcap(&rx, frames);
    let tx = dir.path(&format!("{name}-tx.pcap"));
    let devargs = format!(
        "net_pcap{idx},rx_pcap={},tx_pcap={}",
        rx.display(),
        tx.display()
    );
    ctl_ok(sw, &["port", "add", bridge, name, &devargs]);
}

/// The packet count `dump-flows` shows on the line containing `needle`.
fn n_packets(dump: &str, needle: &str) -> u64 {
    let line = dump
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no flow with {needle:?} in:\n{dump}"));
    let v = line.split("n_packets=").nth(1).unwrap_or_default();
    v.split(',').next().unwrap_or_default().parse().unwrap()
}

#[test]
fn the_seed_flows_translate_internal_vlan_2_to_physnet_vlan_3029_on_the_wire() {
    // ../shared/seeds/001 section 2.3, verbatim but for the port: the
    // patch port from br-int is `phy` here (OpenFlow port 2), the uplink
    // `eth1` (port 1).
    let _g = serial();
    let dir = TempDir::new("seedflows");
    let cfg = format!(
        "{}[[bridges]]\nname = \"br-eth1\"\n{}",
        config_head(&dir, "seedflows"),
        tx_port(&dir, 0, "eth1", ""),
    );
    let sw = Switch::start(&dir, &cfg);
    for f in [
        "priority=4,in_port=2,dl_vlan=2,actions=mod_vlan_vid:3029,NORMAL",
        "priority=2,in_port=2,actions=drop",
        "priority=1,actions=NORMAL",
    ] {
        ctl_ok(&sw, &["add-flow", "br-eth1", f]);
    }
    let mut frames: Vec<Vec<u8>> = (0..6).map(|i| frame(C, A, Some(2), i)).collect();
    frames.extend((6..9).map(|i| frame(C, A, Some(5), i)));
    frames.extend((9..11).map(|i| frame(C, A, None, i)));
    add_rx_port(&sw, &dir, 1, "br-eth1", "phy", &frames);
    sw.wait_for("11 frames in", |s| {
        s.iter().any(|p| p.name == "phy" && p.rx_packets == 11)
    });
    let dump = ctl_ok(&sw, &["dump-flows", "br-eth1"]);
    let pmd: Vec<PmdStatsRow> = serde_json::from_value(sw.ok(&Request::PmdStats)).unwrap();
    let trace = ctl_ok(&sw, &["trace", "br-eth1", "in_port=phy,dl_vlan=2,udp"]);
    assert!(
        trace.contains("flow table 0: cookie=0x0, priority=4,in_port=2,dl_vlan=2 actions=mod_vlan_vid:3029,NORMAL"),
        "{trace}"
    );
    assert!(
        trace.contains("    mod_vlan_vid:3029\n    NORMAL\nNORMAL:\n"),
        "{trace}"
    );
    assert!(trace.contains("vlan: tag 3029 -> VLAN 3029"), "{trace}");
    let trace = ctl_ok(&sw, &["trace", "br-eth1", "in_port=phy,dl_vlan=5,udp"]);
    assert!(
        trace.contains("priority=2,in_port=2 actions=drop"),
        "{trace}"
    );
    assert!(
        trace.contains("=> drop: the flow tables send it nowhere"),
        "{trace}"
    );
    assert!(sw.stop().success());

    let out = sent(&dir, "eth1");
    assert_eq!(out.len(), 6, "only VLAN 2 from phy crosses");
    for (o, f) in out.iter().zip(&frames) {
        assert_eq!(vid(o), Some(3029));
        // Only the VID changed.
        assert_eq!(o[..14], f[..14]);
        assert_eq!(o[14] & 0xf0, f[14] & 0xf0);
        assert_eq!(o[16..], f[16..]);
    }
    assert_eq!(n_packets(&dump, "priority=4"), 6, "{dump}");
    assert_eq!(n_packets(&dump, "priority=2"), 5, "{dump}");
    assert_eq!(n_packets(&dump, "priority=1"), 0, "{dump}");
    assert_eq!(pmd.iter().map(|w| w.drops_flow).sum::<u64>(), 5);
}

/// A switch with bridge br0 of three output ports o1-o3 (OpenFlow ports
/// 1-3), only `flows` in its tables (`add-flows` text; no default flow: a
/// frame no flow matches is dropped), and `frames` sent in on a fourth
/// port, `in` (4), added last; returns once it has received them all.
fn flows_on_three_outputs(dir: &TempDir, tag: &str, flows: &str, frames: &[Vec<u8>]) -> Switch {
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n{}{}{}",
        config_head(dir, tag),
        tx_port(dir, 0, "o1", ""),
        tx_port(dir, 1, "o2", ""),
        tx_port(dir, 2, "o3", ""),
    );
    let sw = Switch::start(dir, &cfg);
    let file = dir.path("flows.txt");
    std::fs::write(&file, flows).unwrap();
    ctl_ok(&sw, &["del-flows", "br0"]);
    ctl_ok(&sw, &["add-flows", "br0", &file.display().to_string()]);
    add_rx_port(&sw, dir, 3, "br0", "in", frames);
    let n = frames.len() as u64;
    sw.wait_for(&format!("{n} frames in"), |s| {
        s.iter().any(|p| p.name == "in" && p.rx_packets == n)
    });
    sw
}

#[test]
fn every_flow_action_on_the_wire() {
    let _g = serial();
    let dir = TempDir::new("flowacts");
    let flows = "# one flow per line, as ovs-ofctl add-flows\n\
         in_port=4,dl_dst=00:00:00:00:00:01,actions=output:o1\n\
         in_port=4,dl_dst=00:00:00:00:00:02,actions=mod_dl_src:02:00:00:00:00:aa,mod_dl_dst:02:00:00:00:00:bb,output:2\n\
         in_port=4,dl_dst=00:00:00:00:00:03,actions=output:1,mod_vlan_vid:7,output:2,strip_vlan,output:3\n\
         in_port=4,dl_dst=00:00:00:00:00:04,actions=resubmit(,1),output:3\n\
         table=1,actions=mod_vlan_pcp:5,output:1\n\
         in_port=4,dl_dst=00:00:00:00:00:05,actions=goto_table:2\n\
         table=2,actions=FLOOD\n\
         in_port=4,dl_dst=00:00:00:00:00:06,actions=drop\n\
         in_port=4,dl_dst=00:00:00:00:00:07,actions=in_port\n\
         in_port=4,dl_dst=00:00:00:00:00:08,actions=output:4\n\
         in_port=4,dl_dst=00:00:00:00:00:09,actions=ALL\n\
         priority=40000,udp,in_port=4,dl_dst=00:00:00:00:00:0a,nw_dst=10.0.1.0/24,tp_dst=5001,actions=output:3\n\
         priority=40000,udp,in_port=4,dl_dst=00:00:00:00:00:0a,nw_dst=10.0.2.0/24,actions=output:1\n\
         priority=1,in_port=4,actions=output:2\n\
         in_port=4,dl_dst=00:00:00:00:00:0c,actions=mod_nw_src:192.168.9.9,mod_nw_dst:172.16.0.1,mod_tp_src:4000,mod_tp_dst:80,mod_nw_tos:184,dec_ttl,output:o3\n";
    let dst = |n: u8| [0, 0, 0, 0, 0, n];
    let frames: Vec<Vec<u8>> = (1..=12)
        .map(|n| frame(dst(n), A, None, u32::from(n)))
        .collect();
    let sw = flows_on_three_outputs(&dir, "flowacts", flows, &frames);
    let tables = ctl_ok(&sw, &["dump-tables", "br0"]);
    assert!(sw.stop().success());

    let (o1, o2, o3, back) = (
        sent(&dir, "o1"),
        sent(&dir, "o2"),
        sent(&dir, "o3"),
        sent(&dir, "in"),
    );
    let dsts = |v: &[Vec<u8>]| v.iter().map(|f| f[5]).collect::<Vec<u8>>();
    // 1: output by name; 3: the first copy, before the tag; 4: PCP 5 from
    // table 1; 5 (FLOOD) and 9 (ALL): every port but the input one.
    assert_eq!(dsts(&o1), [1, 3, 4, 5, 9], "o1");
    // 2: rewritten; 3: tagged 7; 5, 9; 11: the fallback.
    assert_eq!(dsts(&o2)[..], [0xbb, 3, 5, 9, 11], "o2");
    // 3: tag stripped again; 4: after the resubmit; 5, 9; 10: the
    // udp/nw_dst/tp_dst flow.
    assert_eq!(dsts(&o3), [3, 4, 5, 9, 10, 12], "o3");
    // 7 (in_port) only: output:4 to the input port goes nowhere.
    assert_eq!(dsts(&back), [7], "in");

    let f = |n: u8| &frames[usize::from(n) - 1];
    assert_eq!(o1[0], *f(1), "output: unchanged");
    assert_eq!(o2[0][..6], [2, 0, 0, 0, 0, 0xbb]);
    assert_eq!(o2[0][6..12], [2, 0, 0, 0, 0, 0xaa]);
    assert_eq!(o2[0][12..], f(2)[12..]);
    assert_eq!(o1[1], *f(3), "the copy before mod_vlan_vid");
    assert_eq!(
        o2[1][12..16],
        [0x81, 0x00, 0x00, 0x07],
        "mod_vlan_vid pushes a tag"
    );
    assert_eq!(o2[1][16..], f(3)[12..]);
    assert_eq!(o3[0], *f(3), "strip_vlan takes it off again");
    for o in [&o1[2], &o3[1]] {
        assert_eq!(
            o[12..16],
            [0x81, 0x00, 0xa0, 0x00],
            "mod_vlan_pcp: PCP 5, VID 0"
        );
        assert_eq!(o[16..], f(4)[12..]);
    }
    assert_eq!(back[0], *f(7));
    // 12: the L3/L4 rewrites, the IP checksum still valid (the UDP one
    // was none and stays none; TCP's: the stage's unit tests).
    let r = &o3[5];
    assert_eq!(r[14 + 1], 184, "mod_nw_tos");
    assert_eq!(r[14 + 8], 63, "dec_ttl");
    assert_eq!(
        r[26..34],
        [192, 168, 9, 9, 172, 16, 0, 1],
        "mod_nw_src, mod_nw_dst"
    );
    assert_eq!(r[34..38], [0x0f, 0xa0, 0, 80], "mod_tp_src, mod_tp_dst");
    assert_eq!(r[40..42], [0, 0]);
    assert_eq!(r[38..], f(12)[38..]);
    let ip_sum = r[14..34]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    assert_eq!(
        (ip_sum & 0xffff) + (ip_sum >> 16),
        0xffff,
        "IP header checksum"
    );
    assert!(
        tables.contains("0: active=13, lookup=12, matched=12"),
        "{tables}"
    );
    assert!(
        tables.contains("1: active=1, lookup=1, matched=1"),
        "{tables}"
    );
    assert!(
        tables.contains("2: active=1, lookup=1, matched=1"),
        "{tables}"
    );
}

/// A frame to `dst` from `A` with EtherType `ethertype` and `payload`,
/// padded to 60 bytes.
fn raw_frame(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&A);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f.resize(f.len().max(60), 0);
    f
}

/// The IPv4 header checksum of `ip` checks.
fn ipv4_checksum_ok(ip: &[u8]) -> bool {
    let sum = ip[..20]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    (sum & 0xffff) + (sum >> 16) == 0xffff
}

#[test]
fn registers_pushed_tags_set_field_and_the_newer_matches_on_the_wire() {
    let _g = serial();
    let dir = TempDir::new("flownew");
    let flows = "in_port=4,dl_dst=00:00:00:00:00:01,actions=push_vlan:0x88a8,set_field:4101->vlan_vid,output:o1\n\
         in_port=4,dl_dst=00:00:00:00:00:02,actions=load:0x2a->NXM_NX_REG3[],move:NXM_OF_ETH_SRC[0..15]->NXM_NX_REG4[0..15],resubmit(,3)\n\
         table=3,reg3=0x2a,reg4=0xa/0xffff,actions=move:NXM_NX_REG3[0..7]->NXM_OF_ETH_DST[0..7],output:o2\n\
         table=3,priority=1,actions=output:o3\n\
         ip,in_port=4,dl_dst=00:00:00:00:00:03,nw_ttl=64,actions=set_field:7->nw_ttl,set_field:10->ip_dscp,output:o3\n\
         priority=40000,ip,in_port=4,dl_dst=00:00:00:00:00:03,nw_ttl=63,actions=drop\n\
         ipv6,in_port=4,dl_dst=00:00:00:00:00:04,ipv6_dst=2001:db8::/32,ipv6_label=0x12345,actions=dec_ttl,set_field:46->ip_dscp,output:o1\n\
         arp,in_port=4,dl_dst=00:00:00:00:00:05,arp_sha=fa:16:3e:00:00:0a,actions=output:o2\n\
         arp,in_port=4,dl_dst=00:00:00:00:00:05,arp_sha=fa:16:3e:00:00:0b,actions=output:o1\n\
         tcp,in_port=4,dl_dst=00:00:00:00:00:06,tcp_flags=+syn-ack,actions=output:o3\n\
         tcp,in_port=4,dl_dst=00:00:00:00:00:06,tcp_flags=+syn+ack,actions=output:o1\n\
         priority=1,in_port=4,actions=drop\n";
    let dst = |n: u8| [0, 0, 0, 0, 0, n];
    // IPv6/UDP, traffic class 0, flow label 0x12345, hop limit 64.
    let mut v6 = vec![0x60, 0x01, 0x23, 0x45, 0, 8, 17, 64];
    v6.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    v6.extend_from_slice(&[0x04, 0x00, 0x13, 0x89, 0, 8, 0, 0]);
    // An ARP request from A, and a TCP SYN.
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&A);
    arp.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    let syn = [
        0x04, 0x00, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];
    let frames = vec![
        frame(dst(1), A, Some(7), 1),
        frame(dst(2), A, None, 2),
        frame(dst(3), A, None, 3),
        raw_frame(dst(4), 0x86dd, &v6),
        raw_frame(dst(5), 0x0806, &arp),
        ipv4_frame((A, dst(6)), None, 6, ([10, 0, 0, 1], [10, 0, 0, 2]), &syn),
    ];
    let sw = flows_on_three_outputs(&dir, "flownew", flows, &frames);
    let dump = ctl_ok(&sw, &["dump-flows", "br0"]);
    assert!(sw.stop().success());
    let (o1, o2, o3) = (sent(&dir, "o1"), sent(&dir, "o2"), sent(&dir, "o3"));
    let dsts = |v: &[Vec<u8>]| v.iter().map(|f| f[5]).collect::<Vec<u8>>();
    assert_eq!(dsts(&o1), [1, 4], "o1");
    assert_eq!(dsts(&o2), [0x2a, 5], "o2");
    assert_eq!(dsts(&o3), [3, 6], "o3");

    // push_vlan:0x88a8 puts an S-tag (TCI 0, as OVS) over the C-tag (VID
    // 7), then set_field makes its VID 5.
    assert_eq!(
        o1[0][12..20],
        [0x88, 0xa8, 0, 5, 0x81, 0, 0, 7],
        "push_vlan"
    );
    assert_eq!(o1[0][20..], frames[0][16..]);
    // The registers: 0x2a loaded, A's low 16 bits moved and matched, then
    // moved into the destination's low byte.
    assert_eq!(o2[0][..6], [0, 0, 0, 0, 0, 0x2a], "move from a register");
    assert_eq!(o2[0][6..], frames[1][6..]);
    // set_field on TTL and DSCP, the IP checksum still right.
    let ip = &o3[0][14..34];
    assert_eq!((ip[1], ip[8]), (10 << 2, 7), "set_field nw_ttl, ip_dscp");
    assert!(ipv4_checksum_ok(ip), "IPv4 checksum after set_field");
    assert_eq!(o3[0][34..], frames[2][34..]);
    // IPv6: the hop limit down by one, the traffic class's DSCP set, the
    // flow label kept.
    assert_eq!(
        o1[1][14..22],
        [0x6b, 0x81, 0x23, 0x45, 0, 8, 17, 63],
        "IPv6 dec_ttl, DSCP"
    );
    assert_eq!(o1[1][22..], frames[3][22..]);
    // arp_sha and tcp_flags chose; frames untouched.
    assert_eq!(o2[1], frames[4]);
    assert_eq!(o3[1], frames[5]);
    // dump-flows prints them as ovs-ofctl does.
    for needle in [
        "actions=push_vlan:0x88a8,set_field:4101->vlan_vid,output:o1",
        "table=3, n_packets=1, n_bytes=60, idle_age=",
        "reg3=0x2a,reg4=0xa/0xffff actions=move:NXM_NX_REG3[0..7]->NXM_OF_ETH_DST[0..7],output:o2",
        "ipv6_dst=2001:db8::/32,ipv6_label=0x12345 actions=dec_ttl",
        "tcp_flags=+syn-ack actions=output:o3",
    ] {
        assert!(dump.contains(needle), "{needle} in\n{dump}");
    }
}

/// An IPv4 frame from `src` to `dst` (MACs, then addresses), tagged
/// `vlan` if given, carrying `l4` of protocol `proto`; checksum right.
fn ipv4_frame(
    macs: ([u8; 6], [u8; 6]),
    vlan: Option<u16>,
    proto: u8,
    ips: ([u8; 4], [u8; 4]),
    l4: &[u8],
) -> Vec<u8> {
    let mut f = macs.1.to_vec();
    f.extend_from_slice(&macs.0);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0]);
    let total = (20 + l4.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&ips.0);
    ip.extend_from_slice(&ips.1);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f.resize(f.len().max(60), 0);
    f
}

/// Neutron's OVS agent and native firewall flows (shared/docs
/// NEUTRON-OVS-FLOWS.md, the `sg` variant: port security and a stateful
/// group allowing egress, ingress TCP 22 and ICMP), loaded verbatim: the
/// policy holds on the wire through `ct`, registers and resubmits.
#[test]
fn neutrons_firewall_flows_verbatim_enforce_its_policy_on_the_wire() {
    let _g = serial();
    let dir = TempDir::new("nflows");
    let (vm_ip, remote_ip) = ([10, 0, 0, 5], [10, 0, 0, 9]);
    // The flows as bench.py gives them to OVS: local VLAN 2, provider
    // VLAN 3029, the VM's MAC A and IP 10.0.0.5; persisted before start,
    // so the first frames already meet them.
    let subst = |t: &str| {
        t.replace("{lv}", "2")
            .replace("{pv}", "3029")
            .replace("{mac}", "fa:16:3e:00:00:0a")
            .replace("{ip}", "10.0.0.5")
    };
    let text = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys; sys.path.insert(0, 'scripts'); import bench; \
             print(bench.NEUTRON_OVS_FLOWS['br-int common'] + bench.NEUTRON_OVS_FLOWS['br-int sg'])",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("python3");
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let flows = subst(&String::from_utf8(text.stdout).unwrap());
    assert!(
        flows.lines().filter(|l| l.contains("ct(")).count() >= 6,
        "{flows}"
    );
    std::fs::create_dir_all(dir.path("state/flows")).unwrap();
    std::fs::write(dir.path("state/flows/br-int.flows"), &flows).unwrap();

    let udp = |sp: u16, dp: u16| {
        let mut l4 = sp.to_be_bytes().to_vec();
        l4.extend_from_slice(&dp.to_be_bytes());
        l4.extend_from_slice(&[0, 12, 0, 0, 1, 2, 3, 4]);
        l4
    };
    let syn = |dp: u16| {
        let mut l4 = 5555u16.to_be_bytes().to_vec();
        l4.extend_from_slice(&dp.to_be_bytes());
        l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        l4
    };
    let echo = [8, 0, 0xf7, 0xfd, 0, 1, 0, 1];
    // From the VM (ofport 1, access VLAN 2): a DNS query, and one with a
    // spoofed source address.
    let egress = vec![
        ipv4_frame((A, B), None, 17, (vm_ip, remote_ip), &udp(4000, 53)),
        ipv4_frame((A, B), None, 17, ([10, 0, 0, 6], remote_ip), &udp(4000, 53)),
    ];
    // Towards it on the local VLAN, from a third port (table 0's
    // priority-0 flow): SSH, HTTP, the DNS answer, a UDP packet of no
    // connection, a ping.
    let ingress = vec![
        ipv4_frame((B, A), Some(2), 6, (remote_ip, vm_ip), &syn(22)),
        ipv4_frame((B, A), Some(2), 6, (remote_ip, vm_ip), &syn(80)),
        ipv4_frame((B, A), Some(2), 17, (remote_ip, vm_ip), &udp(53, 4000)),
        ipv4_frame((B, A), Some(2), 17, (remote_ip, vm_ip), &udp(53, 4001)),
        ipv4_frame((B, A), Some(2), 1, (remote_ip, vm_ip), &echo),
    ];
    let cfg = format!(
        "{}[[bridges]]\nname = \"br-int\"\n{}{}",
        config_head(&dir, "nflows"),
        rx_port(&dir, 0, "vm", &egress, "tag = 2"),
        tx_port(&dir, 1, "up", "trunks = [2]"),
    );
    let sw = Switch::start(&dir, &cfg);
    sw.wait_for("the VM's 2 frames", |s| {
        s.iter().any(|p| p.name == "vm" && p.rx_packets == 2)
    });
    add_rx_port(&sw, &dir, 2, "br-int", "in", &ingress);
    sw.wait_for("5 frames towards the VM", |s| {
        s.iter().any(|p| p.name == "in" && p.rx_packets == 5)
    });
    let dump = ctl_ok(&sw, &["dump-flows", "br-int", "table=82"]);
    let trace = ctl_ok(
        &sw,
        &[
            "trace",
            "br-int",
            "in_port=in,dl_vlan=2,udp,dl_src=fa:16:3e:00:00:0b,dl_dst=fa:16:3e:00:00:0a,\
             nw_src=10.0.0.9,nw_dst=10.0.0.5,tp_src=53,tp_dst=4000",
        ],
    );
    assert!(sw.stop().success());

    let untag = |f: &[u8]| [&f[..12], &f[16..]].concat();
    let (vm, up) = (sent(&dir, "vm"), sent(&dir, "up"));
    assert_eq!(
        vm,
        [untag(&ingress[0]), untag(&ingress[2]), untag(&ingress[4])],
        "SSH, the DNS answer and the ping reach the VM, untagged; HTTP and the stray UDP do not"
    );
    let mut query = egress[0].clone();
    query.splice(12..12, [0x81, 0, 0, 2]);
    query.truncate(egress[0].len() + 4);
    assert_eq!(
        up,
        [query],
        "the query leaves tagged 2; the spoofed one does not"
    );
    assert_eq!(n_packets(&dump, "tp_dst=22 actions=ct(commit"), 1, "{dump}");
    assert_eq!(
        n_packets(&dump, "ct_state=+est-rel+rpl,ct_zone=2"),
        1,
        "{dump}"
    );
    assert_eq!(n_packets(&dump, "priority=40,ct_state=-est"), 2, "{dump}");
    // A trace of another DNS answer: a reply of a tracked connection.
    assert!(
        trace.contains("ct: zone 2, ct_state +est|+rpl|+trk"),
        "{trace}"
    );
    assert!(trace.contains("output:1"), "{trace}");
}

#[test]
fn flows_survive_a_restart_but_volatile_ones_do_not_and_bad_flows_are_refused_whole() {
    let _g = serial();
    let dir = TempDir::new("flowkeep");
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n{}{}",
        config_head(&dir, "flowkeep"),
        tx_port(&dir, 0, "vnf1", ""),
        tx_port(&dir, 1, "vnf2", ""),
    );
    let sw = Switch::start(&dir, &cfg);
    ctl_ok(
        &sw,
        &[
            "add-flow",
            "br0",
            "priority=10,in_port=vnf1,actions=output:vnf2",
        ],
    );
    ctl_ok(
        &sw,
        &[
            "add-flow",
            "br0",
            "priority=10,in_port=vnf2,actions=output:vnf1",
        ],
    );
    ctl_ok(
        &sw,
        &[
            "add-flow",
            "br0",
            "--volatile",
            "priority=5,arp,actions=FLOOD",
        ],
    );
    // Refused whole: line 2 is bad, line 1 is not added either.
    let bad = dir.path("bad.txt");
    std::fs::write(
        &bad,
        "priority=9,actions=drop\nin_port=vnf1,actions=output:vnf2,bogus\n",
    )
    .unwrap();
    let (ok, _, err) = ctl(&sw, None, &["add-flows", "br0", &bad.display().to_string()]);
    assert!(!ok);
    assert!(err.contains("line 2: at byte 33: unknown action"), "{err}");
    let (ok, _, err) = ctl(&sw, None, &["add-flow", "br0", "in_port=nope,actions=drop"]);
    assert!(!ok && err.contains("\"nope\""), "{err}");
    let (ok, _, err) = ctl(&sw, None, &["add-flow", "nobr", "actions=drop"]);
    assert!(!ok && err.contains("bridge"), "{err}");
    let before = ctl_ok(&sw, &["dump-flows", "br0"]);
    assert_eq!(before.lines().count(), 4, "{before}");
    // Every dumped line reads back as the same flow (add-flow replaces it).
    for line in before.lines() {
        ctl_ok(&sw, &["add-flow", "br0", "--volatile", line]);
    }
    assert_eq!(ctl_ok(&sw, &["dump-flows", "br0"]).lines().count(), 4);
    // Put the persistent ones back as persistent.
    for line in before.lines().filter(|l| !l.contains("arp")) {
        ctl_ok(&sw, &["add-flow", "br0", line]);
    }
    // mod-flows and del-flows --strict.
    ctl_ok(&sw, &["mod-flows", "br0", "in_port=vnf2,actions=drop"]);
    assert!(sw.stop().success());

    let sw = Switch::start(&dir, &cfg);
    let after = ctl_ok(&sw, &["dump-flows", "br0"]);
    assert_eq!(
        after.lines().count(),
        3,
        "the volatile flow is gone:\n{after}"
    );
    assert!(
        after.contains("priority=10,in_port=vnf1 actions=output:vnf2"),
        "{after}"
    );
    assert!(
        after.contains("priority=10,in_port=vnf2 actions=drop"),
        "{after}"
    );
    assert!(after.contains("priority=0 actions=NORMAL"), "{after}");
    ctl_ok(
        &sw,
        &["del-flows", "br0", "--strict", "priority=10,in_port=vnf2"],
    );
    let last = ctl_ok(&sw, &["dump-flows", "br0", "in_port=vnf1"]);
    assert_eq!(last.lines().count(), 1, "{last}");
    assert!(sw.stop().success());
}

#[test]
fn ten_thousand_flow_changes_a_second_under_load_lose_and_misdirect_nothing() {
    // p0 replays its frames forever into `in_port=p0,actions=output:p1`,
    // while 1,000 other flows (UDP to ports the traffic does not use, at a
    // higher priority, out to p2) are added and deleted ten times a second.
    let _g = serial();
    let dir = TempDir::new("flowload");
    let cfg = format!(
        "{}[[bridges]]\nname = \"br0\"\n{}{}",
        config_head(&dir, "flowload"),
        port("p1", "net_null1,no-rx=1", ""),
        port("p2", "net_null2,no-rx=1", ""),
    );
    let sw = Switch::start(&dir, &cfg);
    ctl_ok(&sw, &["del-flows", "br0"]);
    ctl_ok(
        &sw,
        &[
            "add-flow",
            "br0",
            "priority=100,in_port=3,actions=output:p1",
        ],
    );
    let frames: Vec<Vec<u8>> = (0..64).map(|i| frame(C, A, None, i)).collect();
    let rx = dir.path("p0-rx.pcap");
    write_pcap(&rx, &frames);
    let devargs = format!("net_pcap0,rx_pcap={},infinite_rx=1", rx.display());
    ctl_ok(&sw, &["port", "add", "br0", "p0", &devargs]);
    sw.wait_for("traffic", |s| {
        s.iter().any(|p| p.name == "p1" && p.tx_packets > 10_000)
    });

    let churn = dir.path("churn.txt");
    let t0 = std::time::Instant::now();
    let mut changes = 0u64;
    let mut round = 0u32;
    while t0.elapsed() < std::time::Duration::from_secs(3) {
        let lines: String = (0..1000)
            .map(|i| {
                format!(
                    "priority=200,udp,in_port=p0,tp_dst={},actions=output:p2\n",
                    10_000 + i + round % 7
                )
            })
            .collect();
        std::fs::write(&churn, lines).unwrap();
        ctl_ok(
            &sw,
            &[
                "add-flows",
                "br0",
                "--volatile",
                &churn.display().to_string(),
            ],
        );
        let out = ctl_ok(&sw, &["del-flows", "br0", "--json", "udp"]);
        assert!(out.contains("\"deleted\":1000"), "{out}");
        changes += 2000;
        round += 1;
    }
    let rate = changes as f64 / t0.elapsed().as_secs_f64();
    // Stop the traffic: p0's final counters, then p1's and p2's.
    let (ok, last, err) = ctl(&sw, None, &["port", "del", "p0", "--json"]);
    assert!(ok, "{err}");
    let last: PortStatsRow = serde_json::from_str(&last).unwrap();
    let p1 = sw.port("p1");
    let p2 = sw.port("p2");
    let pmd: Vec<PmdStatsRow> = serde_json::from_value(sw.ok(&Request::PmdStats)).unwrap();
    assert!(sw.stop().success());

    eprintln!(
        "{rate:.0} flow changes/s; p0 received {}, p1 sent {}",
        last.rx_packets, p1.tx_packets
    );
    assert!(rate >= 10_000.0, "{rate:.0} flow changes a second");
    assert!(last.rx_packets > 0);
    assert_eq!(last.rx_dropped, 0, "nothing dropped on the way in");
    assert_eq!(p1.tx_packets, last.rx_packets, "every frame reached p1");
    assert_eq!(p1.tx_dropped, 0);
    assert_eq!(p2.tx_packets, 0, "nothing misdirected");
    assert_eq!(pmd.iter().map(|w| w.drops_flow).sum::<u64>(), 0, "{pmd:?}");
}
