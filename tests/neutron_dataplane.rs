//! Neutron state driving the dataplane, end to end: the real daemon with its
//! Neutron API and SQLite store, `vswitchctl`'s Neutron commands, net_pcap
//! ports. A provider VLAN network gets a local VLAN; the uplink named in
//! bridge_mappings translates it; a switch port attached with the Neutron
//! port's iface-id joins the local VLAN and the port goes ACTIVE.
mod common;

use common::*;
use std::time::{Duration, Instant};

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

#[test]
fn provider_network_port_and_iface_id_drive_vlans_and_status() {
    let _g = serial();
    let dir = TempDir::new("neutron-dp");
    let (api, metrics) = (free_port(), free_port());
    let sw = Switch::start(&dir, &neutron_config(&dir, "neutron-dp", api, metrics));

    let net = ctl_json(
        &sw,
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
        &sw,
        Some(api),
        &[
            "subnet",
            "create",
            "s1",
            "--network",
            "provider-3029",
            "--subnet-range",
            "10.0.0.0/24",
        ],
    );
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
    let vm_frames = vec![frame(BCAST, mac.clone().try_into().unwrap(), None, 1)];
    write_pcap(&dir.path("vm1-rx.pcap"), &vm_frames);
    let devargs = format!(
        "net_pcap1,rx_pcap={},tx_pcap={}",
        dir.path("vm1-rx.pcap").display(),
        dir.path("vm1-tx.pcap").display()
    );
    let (ok, _, err) = ctl(
        &sw,
        None,
        &[
            "port",
            "add",
            "br-int",
            "vm1",
            &devargs,
            "--iface-id",
            &port_id,
        ],
    );
    assert!(ok, "{err}");
    wait_status(&sw, api, &port_id, "ACTIVE");
    sw.wait_for("vm1's frame", |s| {
        s.iter().any(|p| p.name == "vm1" && p.rx_packets == 1)
    });
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sw.log_text().contains("cannot attach") {
        assert!(
            Instant::now() < deadline,
            "no VF attach attempt logged:\n{}",
            sw.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
