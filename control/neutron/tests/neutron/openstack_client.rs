//! The real python-openstackclient (installed from PyPI by
//! scripts/openstack-client.sh) against the API, without Keystone:
//! `--os-auth-type none --os-endpoint http://127.0.0.1:PORT/`. Fails, never
//! skips, when the client cannot be installed.

use crate::common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn install_client() -> PathBuf {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/openstack-client.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("running openstack-client.sh");
    assert!(
        out.status.success(),
        "scripts/openstack-client.sh failed (is PyPI reachable?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8(out.stdout).unwrap();
    let path = PathBuf::from(
        path.lines()
            .last()
            .expect("the script prints the binary")
            .trim(),
    );
    assert!(path.is_file(), "{} does not exist", path.display());
    path
}

struct Osc {
    bin: PathBuf,
    endpoint: String,
}

impl Osc {
    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(&self.bin);
        // Nothing from the environment may point the client elsewhere.
        for (k, _) in std::env::vars() {
            if k.starts_with("OS_") {
                c.env_remove(k);
            }
        }
        c.args(["--os-auth-type", "none", "--os-endpoint", &self.endpoint])
            .args(args)
            .output()
            .expect("running openstack")
    }

    /// A command that must succeed; its `-f json` output parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-f", "json"]);
        let out = self.run(&a);
        assert!(
            out.status.success(),
            "openstack {}: {}",
            a.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "openstack {}: not JSON ({e}): {}",
                a.join(" "),
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn ok(&self, args: &[&str]) {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "openstack {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A command that must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "openstack {} succeeded",
            args.join(" ")
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

#[test]
fn openstack_client_networks_subnets_ports_security_groups() {
    let bin = install_client();
    let dir = TempDir::new("osc");
    let api = Api::start(config(&dir));
    let os = Osc {
        bin,
        endpoint: format!("{}/", api.base),
    };

    let net = os.json(&["network", "create", "net1"]);
    assert_eq!(net["name"], "net1");
    assert_eq!(net["provider:network_type"], "vlan");
    assert_eq!(net["provider:physical_network"], "physnet1");
    assert_eq!(net["provider:segmentation_id"], 100);
    assert_eq!(net["status"], "ACTIVE");
    assert_eq!(net["mtu"], 1500);
    let net_id = net["id"].as_str().unwrap().to_owned();
    let listed = os.json(&["network", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["ID"], net_id.as_str());
    assert_eq!(os.json(&["network", "show", "net1"])["id"], net_id.as_str());

    let sub = os.json(&[
        "subnet",
        "create",
        "--network",
        "net1",
        "--subnet-range",
        "10.0.0.0/24",
        "sub1",
    ]);
    assert_eq!(sub["cidr"], "10.0.0.0/24");
    assert_eq!(sub["gateway_ip"], "10.0.0.1");
    assert_eq!(sub["network_id"], net_id.as_str());
    assert_eq!(sub["allocation_pools"][0]["start"], "10.0.0.2");
    let sub_id = sub["id"].as_str().unwrap().to_owned();

    let sg = os.json(&["security", "group", "create", "sg1"]);
    let sg_id = sg["id"].as_str().unwrap().to_owned();
    assert_eq!(
        sg["rules"].as_array().unwrap().len(),
        2,
        "default egress rules: {sg}"
    );
    let rule = os.json(&[
        "security",
        "group",
        "rule",
        "create",
        "--protocol",
        "tcp",
        "--dst-port",
        "22",
        "--ingress",
        "sg1",
    ]);
    assert_eq!(rule["protocol"], "tcp");
    assert_eq!(rule["direction"], "ingress");
    assert_eq!(rule["port_range_min"], 22);
    assert_eq!(rule["port_range_max"], 22);
    assert_eq!(rule["security_group_id"], sg_id.as_str());
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    let dup = os.fails(&[
        "security",
        "group",
        "rule",
        "create",
        "--protocol",
        "tcp",
        "--dst-port",
        "22",
        "--ingress",
        "sg1",
    ]);
    assert!(dup.contains("already exists"), "{dup}");

    let p1 = os.json(&[
        "port",
        "create",
        "--network",
        "net1",
        "--fixed-ip",
        "subnet=sub1,ip-address=10.0.0.50",
        "--security-group",
        "sg1",
        "--allowed-address",
        "ip-address=10.0.0.60",
        "--host",
        HOST,
        "p1",
    ]);
    let p1_id = p1["id"].as_str().unwrap().to_owned();
    assert_eq!(p1["status"], "DOWN");
    assert_eq!(p1["fixed_ips"][0]["ip_address"], "10.0.0.50");
    assert_eq!(p1["fixed_ips"][0]["subnet_id"], sub_id.as_str());
    assert_eq!(p1["security_group_ids"], serde_json::json!([sg_id]));
    assert_eq!(p1["allowed_address_pairs"][0]["ip_address"], "10.0.0.60");
    assert_eq!(p1["binding_host_id"], HOST);
    assert_eq!(p1["binding_vif_type"], "vhostuser");
    assert_eq!(p1["binding_vnic_type"], "normal");
    let d = &p1["binding_vif_details"];
    assert_eq!(
        d["vhostuser_socket"],
        format!("/var/run/openvswitch/vhu{}", &p1_id[..11])
    );
    assert_eq!(d["vhostuser_mode"], "server");
    assert_eq!(d["datapath_type"], "netdev");
    assert_eq!(d["port_filter"], true);

    let p2 = os.json(&[
        "port",
        "create",
        "--network",
        "net1",
        "--vnic-type",
        "direct",
        "--binding-profile",
        "pci_slot=0000:3b:02.1",
        "--host",
        HOST,
        "p2",
    ]);
    assert_eq!(p2["binding_vif_type"], "hw_veb");
    assert_eq!(p2["binding_vif_details"]["vlan"], "100");
    assert_eq!(p2["binding_profile"]["pci_slot"], "0000:3b:02.1");
    assert_eq!(p2["fixed_ips"][0]["ip_address"], "10.0.0.2");
    let p3 = os.json(&[
        "port",
        "create",
        "--network",
        "net1",
        "--vnic-type",
        "direct",
        "--host",
        HOST,
        "p3",
    ]);
    assert_eq!(p3["binding_vif_type"], "binding_failed");
    assert!(p3["binding_vif_details"]["reason"]
        .as_str()
        .unwrap()
        .contains("pci_slot"));
    let taken = os.fails(&[
        "port",
        "create",
        "--network",
        "net1",
        "--fixed-ip",
        "subnet=sub1,ip-address=10.0.0.50",
        "p4",
    ]);
    assert!(taken.contains("already allocated"), "{taken}");

    let ports = os.json(&["port", "list"]);
    assert_eq!(ports.as_array().unwrap().len(), 3);
    assert!(ports
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["Status"] == "DOWN"));
    assert_eq!(
        os.json(&["port", "list", "--network", "net1"])
            .as_array()
            .unwrap()
            .len(),
        3
    );

    os.ok(&["port", "set", "--name", "p1b", "--host", "compute-2", "p1"]);
    let p1b = os.json(&["port", "show", "p1b"]);
    assert_eq!(p1b["id"], p1_id.as_str());
    assert_eq!(p1b["binding_host_id"], "compute-2");
    assert_eq!(p1b["binding_vif_type"], "binding_failed");
    // The server's own state agrees with what the client saw.
    let st = api.neutron.state();
    assert_eq!(st.ports[&p1_id].name, "p1b");
    assert_eq!(st.ports.len(), 3);

    os.ok(&["security", "group", "rule", "delete", &rule_id]);
    let rules = os.json(&["security", "group", "rule", "list", "sg1"]);
    assert_eq!(rules.as_array().unwrap().len(), 2);

    let in_use = os.fails(&["network", "delete", "net1"]);
    assert!(in_use.contains("port"), "{in_use}");
    os.ok(&["port", "delete", "p1b", "p2", "p3"]);
    os.ok(&["network", "delete", "net1"]);
    assert_eq!(os.json(&["network", "list"]), serde_json::json!([]));
    assert_eq!(os.json(&["subnet", "list"]), serde_json::json!([]));
    let missing = os.fails(&["network", "show", "net1"]);
    assert!(missing.contains("No Network found"), "{missing}");
}
