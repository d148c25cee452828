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

/// Runs `code` with python3 inside namespace `ns` (or on the host).
fn python_in(ns: &str, code: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, "python3", "-c", code]);
    c
}

/// A TCP connection from namespace `ns` to `ip:port`: the first line the
/// server sends, or why it failed (2 s to connect).
fn tcp_connect(ns: &str, ip: &str, port: u16) -> Result<String, String> {
    let code = format!(
        "import socket\n\
         s = socket.create_connection(('{ip}', {port}), timeout=2)\n\
         print(s.makefile().readline().strip())"
    );
    let out = python_in(ns, &code).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_owned())
    }
}

/// The server of [`tcp_connect`]: listens on TCP 22 and 80 of every address
/// of its namespace and answers each connection with `ok-PORT`. Stopped
/// (by its PID) on drop.
struct TcpServers(std::process::Child);

impl TcpServers {
    fn start(ns: &str) -> TcpServers {
        use std::io::BufRead;
        let code = "import socket, threading\n\
                    def serve(port):\n\
                    \x20   s = socket.socket()\n\
                    \x20   s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                    \x20   s.bind(('0.0.0.0', port))\n\
                    \x20   s.listen(16)\n\
                    \x20   while True:\n\
                    \x20       c, _ = s.accept()\n\
                    \x20       c.sendall(b'ok-%d\\n' % port)\n\
                    \x20       c.close()\n\
                    for p in (22, 80):\n\
                    \x20   threading.Thread(target=serve, args=(p,), daemon=True).start()\n\
                    print('ready', flush=True)\n\
                    threading.Event().wait()\n";
        let mut child = python_in(ns, code)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the TCP servers in {ns} did not start"
        );
        TcpServers(child)
    }
}

impl Drop for TcpServers {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue 11: a security group holds for real TCP. Two namespaces are VMs
/// on `afpacket` ports attached to Neutron ports (os-vif's iface-id) whose
/// group admits ingress TCP 22 only: a connection to port 22 is made in
/// both directions of initiation, one to port 80 (where a server listens
/// too) and a ping are not, and the denied SYNs are counted.
#[test]
fn a_security_group_holds_for_real_tcp_between_namespaces() {
    let _g = serial();
    let dir = TempDir::new("sg-tcp");
    let id = std::process::id() % 100_000;
    let api = free_port();
    let cfg = format!(
        "{head}[neutron]\nlisten = \"127.0.0.1:{api}\"\ndatabase = \"{db}\"\n\
         network_vlan_ranges = [\"physnet1:3000:3099\"]\n\
         [[bridges]]\nname = \"br-int\"\n",
        head = config_head(&dir, "sg-tcp"),
        db = dir.path("neutron.db").display(),
    );
    let sw = Switch::start(&dir, &cfg);
    let a = Some(api);
    ctl_json(&sw, a, &["network", "create", "n1"]);
    ctl_json(
        &sw,
        a,
        &[
            "subnet",
            "create",
            "s1",
            "--network",
            "n1",
            "--subnet-range",
            "10.96.0.0/24",
        ],
    );
    ssh_only_group(&sw, api);
    let mut nss = Namespaces(Vec::new());
    let mut vms = Vec::new();
    for i in 1..=2 {
        let ip = format!("10.96.0.{}", 10 + i);
        let port = ctl_json(
            &sw,
            a,
            &[
                "port",
                "create",
                &format!("vm{i}-eth0"),
                "--network",
                "n1",
                "--fixed-ip",
                &format!("subnet=s1,ip-address={ip}"),
                "--security-group",
                "ssh",
            ],
        );
        let mac = port["mac_address"].as_str().unwrap().to_owned();
        let (ns, host) = (format!("fswt{id}s{i}"), format!("fswt{id}t{i}"));
        namespace_with_veth(&mut nss, &ns, &host, &format!("{ip}/24"));
        // The VM's NIC has its Neutron port's MAC; checksums are filled
        // in before the frame leaves it (af_packet hands the switch what
        // the namespace's stack wrote: with veth offloads, no checksum).
        for cmd in [
            vec!["ip", "link", "set", "eth0", "down"],
            vec!["ip", "link", "set", "eth0", "address", &mac],
            vec!["ip", "link", "set", "eth0", "up"],
            vec!["ethtool", "-K", "eth0", "tx", "off"],
            vec!["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
        ] {
            let mut full = vec!["ip", "netns", "exec", &ns];
            full.extend(cmd.iter().copied());
            assert!(sh(&full), "{full:?}");
        }
        let (ok, _, err) = ctl(
            &sw,
            None,
            &[
                "port",
                "add",
                "br-int",
                &format!("vm{i}"),
                "--type",
                "afpacket",
                "--iface",
                &host,
                "--iface-id",
                port["id"].as_str().unwrap(),
            ],
        );
        assert!(ok, "{err}");
        wait_status(&sw, api, port["id"].as_str().unwrap(), "ACTIVE");
        vms.push((ns, ip));
    }
    let _servers: Vec<TcpServers> = vms.iter().map(|(ns, _)| TcpServers::start(ns)).collect();

    for (from, to) in [(0, 1), (1, 0)] {
        let ((ns, _), (_, ip)) = (&vms[from], &vms[to]);
        assert_eq!(
            tcp_connect(ns, ip, 22),
            Ok("ok-22".to_owned()),
            "vm{} -> vm{}:22\n{}",
            from + 1,
            to + 1,
            sw.log_text()
        );
        let closed = tcp_connect(ns, ip, 80);
        assert!(
            closed.as_ref().is_err_and(|e| e.contains("timed out")),
            "vm{} -> vm{}:80 must time out (SYN dropped), got {closed:?}",
            from + 1,
            to + 1
        );
        assert!(!ping(Some(ns), ip).0, "ICMP is not admitted");
    }
    let pmd = ctl_json(&sw, None, &["pmd-stats"]);
    let denied = pmd[0]["drops_denied"].as_u64().unwrap();
    // At least the two first SYNs to port 80 and the two first pings.
    assert!(denied >= 4, "{pmd}");
    let ct = ctl_json(&sw, None, &["conntrack", "stats"]);
    assert!(
        ct["per_state"]["TIMEWAIT"].as_u64() >= Some(2),
        "both SSH connections were tracked to their close: {ct}"
    );
    assert!(sw.stop().success());
}
