//! The bundled default config on real frames: two network namespaces on
//! veth pairs attached as `afpacket` ports (packet sockets); `ping` crosses the
//! switch. Runs the config `vswitchd --print-default-config` prints, with
//! names made unique for the test.
mod common;

use common::*;
use std::net::IpAddr;
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
    // TCP with the kernel's default offloads on every veth and on the
    // host: checksums left partial and 64 KB segments reach the switch
    // through the packet sockets' virtio-net headers, pass to the other
    // socket whole, and are finished in software for the TAP.
    for (server, client, to, what) in [
        (
            Some(ns2.as_str()),
            Some(ns1.as_str()),
            "10.97.0.2",
            "namespace to namespace",
        ),
        (
            Some(ns2.as_str()),
            None,
            "10.97.0.2",
            "the host to a namespace",
        ),
        (
            None,
            Some(ns2.as_str()),
            "10.97.0.254",
            "a namespace to the host",
        ),
    ] {
        let offloads = Command::new("ip")
            .args(["netns", "exec", &ns1, "ethtool", "-k", "eth0"])
            .output()
            .unwrap();
        let k = String::from_utf8_lossy(&offloads.stdout);
        assert!(
            k.contains("tx-checksumming: on") && k.contains("tcp-segmentation-offload: on"),
            "veth defaults: {k}"
        );
        let bytes = iperf3(server, client, to, 2)
            .unwrap_or_else(|e| panic!("{what}: iperf3 to {to} failed: {e}\n{}", sw.log_text()));
        assert!(bytes > 1_000_000, "{what}: {bytes} bytes");
        eprintln!("TCP {what}: {bytes} bytes in 2 s");
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

/// Runs `iperf3 -c to -t secs` in namespace `client` (None: the host)
/// against a one-shot server in `server`; the bytes the receiver got.
fn iperf3(server: Option<&str>, client: Option<&str>, to: &str, secs: u32) -> Result<u64, String> {
    let mut srv = match server {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "iperf3"]);
            c
        }
        None => Command::new("iperf3"),
    };
    let mut srv = srv
        .args(["-s", "-1", "-p", "5299"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("iperf3 -s: {e}"))?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut cli = match client {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "timeout", "20", "iperf3"]);
            c
        }
        None => {
            let mut c = Command::new("timeout");
            c.args(["20", "iperf3"]);
            c
        }
    };
    let out = cli
        .args(["-c", to, "-p", "5299", "-J", "-t", &secs.to_string()])
        .output()
        .map_err(|e| format!("iperf3 -c: {e}"))?;
    let _ = srv.kill();
    let _ = srv.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    v["end"]["sum_received"]["bytes"]
        .as_u64()
        .filter(|_| out.status.success())
        .ok_or_else(|| format!("no bytes received: {text}"))
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
    network_with_subnet(&sw, a, "n1", "s1", "10.96.0.0/24");
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
        // The VM's NIC has its Neutron port's MAC; its offloads stay as
        // veth has them (partial checksums and 64 KB segments reach the
        // switch with their virtio-net headers).
        for cmd in [
            vec!["ip", "link", "set", "eth0", "down"],
            vec!["ip", "link", "set", "eth0", "address", &mac],
            vec!["ip", "link", "set", "eth0", "up"],
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

/// Runs busybox's DHCP client in `ns` once (`-q`: quit when bound, `-R`:
/// release on quit when `release`), with a script that prints each lease;
/// returns whether it got one and what it printed.
/// The lines `child` prints on its (piped) standard output, as they come.
fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    rx
}

/// A switch with the Neutron API, a bridge `br-int` and DHCP leases of
/// 600 s in domain `example.test`; its API and metrics ports.
fn dhcp_switch(dir: &TempDir, tag: &str) -> (Switch, u16, u16) {
    let (api, metrics) = (free_port(), free_port());
    let cfg = format!(
        "{head}metrics_listen = \"127.0.0.1:{metrics}\"\n[neutron]\nlisten = \"127.0.0.1:{api}\"\n\
         database = \"{db}\"\nnetwork_vlan_ranges = [\"physnet1:3000:3099\"]\n\
         dhcp_lease_secs = 600\ndns_domain = \"example.test\"\n\
         [[bridges]]\nname = \"br-int\"\n",
        head = config_head(dir, tag),
        db = dir.path("neutron.db").display(),
    );
    (Switch::start(dir, &cfg), api, metrics)
}

/// Namespace `ns` whose eth0 has Neutron port `port_id`'s MAC (and the
/// link-local address of it, without waiting for DAD), its veth peer
/// `host` the switch's `afpacket` port `name` attached to that port;
/// returns once the port is ACTIVE.
#[allow(clippy::too_many_arguments)]
fn namespace_on_port(
    sw: &Switch,
    api: u16,
    nss: &mut Namespaces,
    ns: &str,
    host: &str,
    name: &str,
    port_id: &str,
    mac: &str,
) {
    namespace_with_veth(nss, ns, host, "127.0.0.2/8");
    for cmd in [
        vec!["ip", "addr", "flush", "dev", "eth0"],
        vec!["ip", "link", "set", "eth0", "down"],
        vec!["ip", "link", "set", "eth0", "address", mac],
        vec!["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"],
        vec!["ip", "link", "set", "eth0", "up"],
    ] {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend(cmd);
        assert!(sh(&full), "{full:?}");
    }
    let args = [
        "port",
        "add",
        "br-int",
        name,
        "--type",
        "afpacket",
        "--iface",
        host,
        "--iface-id",
        port_id,
    ];
    let (ok, _, err) = ctl(sw, None, &args);
    assert!(ok, "{err}");
    wait_status(sw, api, port_id, "ACTIVE");
}

fn udhcpc(dir: &TempDir, ns: &str, release: bool) -> (bool, String) {
    let script = dhcp_script(dir);
    let mut args = vec!["netns", "exec", ns, "busybox", "udhcpc", "-i", "eth0"];
    args.extend(["-f", "-q", "-n", "-t", "3", "-T", "1", "-s", &script]);
    if release {
        args.push("-R");
    }
    let out = Command::new("ip").args(&args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A udhcpc script that applies nothing and prints the lease on one line.
fn dhcp_script(dir: &TempDir) -> String {
    let path = dir.path("udhcpc.sh");
    if !path.exists() {
        std::fs::write(
            &path,
            "#!/bin/sh\ncase \"$1\" in bound|renew) echo \"LEASE $1 ip=$ip mask=$mask router=$router \
             dns=$dns domain=$domain mtu=$mtu lease=$lease serverid=$serverid staticroutes=$staticroutes\";; \
             *) echo \"EVENT $1\";; esac\n",
        )
        .unwrap();
        sh(&["chmod", "755", path.to_str().unwrap()]);
    }
    path.display().to_string()
}

/// The switch's own DHCP server, from the Neutron model, to a real DHCP
/// client (busybox udhcpc) in a namespace on an `afpacket` port: the
/// port's address and the subnet's options; nothing for another MAC or a
/// subnet without DHCP; the same address after a release; a changed fixed
/// IP at the next renewal (unicast to the server, whose ARP it answers).
#[test]
fn the_switch_answers_dhcp_from_the_neutron_model() {
    let _g = serial();
    let dir = TempDir::new("dhcp-ns");
    let id = std::process::id() % 100_000;
    let (sw, api, metrics) = dhcp_switch(&dir, "dhcp-ns");
    let a = Some(api);
    let net = ctl_json(&sw, a, &["network", "create", "n1"]);
    let net_id = net["id"].as_str().unwrap();
    let (st, sub) = http(
        api,
        "POST",
        "/v2.0/subnets",
        Some(&format!(
            r#"{{"subnet": {{"name": "s1", "network_id": "{net_id}", "cidr": "10.97.0.0/24", "ip_version": 4,
            "gateway_ip": "10.97.0.1", "dns_nameservers": ["10.97.0.53"],
            "host_routes": [{{"destination": "192.168.50.0/24", "nexthop": "10.97.0.254"}}]}}}}"#
        )),
    );
    assert_eq!(st, 201, "{sub}");
    let sub: serde_json::Value = serde_json::from_str(&sub).unwrap();
    let sub_id = sub["subnet"]["id"].as_str().unwrap().to_owned();
    // The DHCP port holds the server's address, as a DHCP agent's would.
    let (_, ports) = http(api, "GET", "/v2.0/ports?device_owner=network:dhcp", None);
    let ports: serde_json::Value = serde_json::from_str(&ports).unwrap();
    let dhcp_port = &ports["ports"][0];
    assert_eq!(dhcp_port["network_id"], net_id, "{ports}");
    let server_ip = dhcp_port["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = ctl_json(
        &sw,
        a,
        &[
            "port",
            "create",
            "vm1-eth0",
            "--network",
            "n1",
            "--fixed-ip",
            "subnet=s1,ip-address=10.97.0.21",
        ],
    );
    let port_id = port["id"].as_str().unwrap().to_owned();
    let mac = port["mac_address"].as_str().unwrap().to_owned();
    let mut nss = Namespaces(Vec::new());
    let (ns, host) = (format!("fswd{id}s1"), format!("fswd{id}t1"));
    namespace_on_port(&sw, api, &mut nss, &ns, &host, "vm1", &port_id, &mac);
    let in_ns = |cmd: &[&str]| {
        let mut full = vec!["ip", "netns", "exec", &ns];
        full.extend(cmd.iter().copied());
        assert!(sh(&full), "{full:?}");
    };
    sw.wait_log(
        "DHCP served by the switch",
        std::time::Duration::from_secs(5),
    );

    let t0 = std::time::Instant::now();
    let (ok, out) = udhcpc(&dir, &ns, false);
    let took = t0.elapsed();
    assert!(ok, "no lease:\n{out}\n{:?}", sw.port("vm1"));
    assert_eq!(lease_field(&out, "LEASE", "ip"), "10.97.0.21", "{out}");
    assert_eq!(lease_field(&out, "LEASE", "mask"), "24", "{out}");
    assert_eq!(lease_field(&out, "LEASE", "router"), "10.97.0.1", "{out}");
    assert_eq!(lease_field(&out, "LEASE", "dns"), "10.97.0.53", "{out}");
    assert_eq!(
        lease_field(&out, "LEASE", "domain"),
        "example.test",
        "{out}"
    );
    assert_eq!(lease_field(&out, "LEASE", "mtu"), "1500", "{out}");
    assert_eq!(lease_field(&out, "LEASE", "lease"), "600", "{out}");
    assert_eq!(lease_field(&out, "LEASE", "serverid"), server_ip, "{out}");
    assert_eq!(
        lease_field(&out, "LEASE", "staticroutes"),
        "192.168.50.0/24 10.97.0.254 0.0.0.0/0 10.97.0.1",
        "{out}"
    );
    assert!(
        took < std::time::Duration::from_secs(2),
        "lease after {took:?}"
    );
    eprintln!("lease in {took:?}");

    // Released, then asked again: the same address.
    let (ok, out) = udhcpc(&dir, &ns, true);
    assert!(ok, "{out}");
    let (ok, out) = udhcpc(&dir, &ns, false);
    assert!(
        ok && lease_field(&out, "LEASE", "ip") == "10.97.0.21",
        "{out}"
    );

    // Another MAC on the port: no answer, and counted.
    in_ns(&["ip", "link", "set", "eth0", "address", "02:00:00:00:09:99"]);
    let (ok, out) = udhcpc(&dir, &ns, false);
    assert!(!ok, "a foreign MAC got a lease:\n{out}");
    in_ns(&["ip", "link", "set", "eth0", "address", &mac]);
    let row = sw.port("vm1");
    assert!(
        row.dhcp["offers"] >= 3 && row.dhcp["acks"] >= 3,
        "{:?}",
        row.dhcp
    );
    assert!(row.dhcp["unanswered"] >= 3, "{:?}", row.dhcp);
    let (_, text) = http_get(metrics, "/metrics");
    assert!(
        text.contains("ferroswitch_port_dhcp_total{port=\"vm1\",bridge=\"br-int\",type=\"acks\"}"),
        "{text}"
    );

    // A fixed IP changed through the API: a renewal (udhcpc's SIGUSR1)
    // gets a NAK, and the client the new address at once.
    let mut client = Command::new("ip")
        .args([
            "netns", "exec", &ns, "busybox", "udhcpc", "-i", "eth0", "-f",
        ])
        .args(["-t", "3", "-T", "1", "-A", "1", "-s", &dhcp_script(&dir)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rx = stdout_lines(&mut client);
    let next_lease = |within: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(within);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if l.starts_with("LEASE") => return Some(l),
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        None
    };
    let first = next_lease(5);
    let (st, body) = http(
        api,
        "PUT",
        &format!("/v2.0/ports/{port_id}"),
        Some(&format!(
            r#"{{"port": {{"fixed_ips": [{{"subnet_id": "{sub_id}", "ip_address": "10.97.0.77"}}]}}}}"#
        )),
    );
    assert_eq!(st, 200, "{body}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    signal(client.id(), libc::SIGUSR1);
    let second = next_lease(10);
    signal(client.id(), libc::SIGTERM);
    let _ = client.wait();
    assert!(
        first
            .as_deref()
            .is_some_and(|l| l.contains("ip=10.97.0.21")),
        "{first:?}"
    );
    assert!(
        second
            .as_deref()
            .is_some_and(|l| l.contains("ip=10.97.0.77")),
        "renewal after the change: {second:?}; counters {:?}",
        sw.port("vm1").dhcp
    );
    assert!(sw.port("vm1").dhcp["naks"] >= 1);

    // DHCP switched off on the subnet: no answer, and no DHCP port.
    let (st, body) = http(
        api,
        "PUT",
        &format!("/v2.0/subnets/{sub_id}"),
        Some(r#"{"subnet": {"enable_dhcp": false}}"#),
    );
    assert_eq!(st, 200, "{body}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (ok, out) = udhcpc(&dir, &ns, false);
    assert!(!ok, "a lease without DHCP:\n{out}");
    let (_, ports) = http(api, "GET", "/v2.0/ports?device_owner=network:dhcp", None);
    assert!(ports.contains("\"ports\":[]"), "{ports}");
    drop(nss);
    assert!(sw.stop().success());
}

/// dhclient's `-6` run in namespace `ns` until its script prints a line
/// starting with `want` (or 20 s pass): that line, or what it printed.
/// `stateless`: an information request (`-S`), else a lease (SOLICIT).
fn dhclient6(dir: &TempDir, ns: &str, stateless: bool, want: &str) -> Result<String, String> {
    let script = dir.path("dhclient6.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"DHCP6 $reason ip=$new_ip6_address/$new_ip6_prefixlen \
         dns=$new_dhcp6_name_servers domain=$new_dhcp6_domain_search life=$new_max_life\"\nexit 0\n",
    )
    .unwrap();
    sh(&["chmod", "755", script.to_str().unwrap()]);
    let tag = if stateless { "s" } else { "a" };
    let lf = dir.path(&format!("dhclient6-{ns}-{tag}.leases"));
    let pf = dir.path(&format!("dhclient6-{ns}-{tag}.pid"));
    let _ = std::fs::remove_file(&lf);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "dhclient", "-6", "-d", "-v"]);
    if stateless {
        cmd.arg("-S");
    }
    cmd.args(["-lf", lf.to_str().unwrap(), "-pf", pf.to_str().unwrap()])
        .args(["-sf", script.to_str().unwrap(), "eth0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd
        .spawn()
        .expect("dhclient (scripts/setup.sh installs it)");
    let rx = stdout_lines(&mut child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut got = Err(String::new());
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with(want) => {
                got = Ok(l);
                break;
            }
            Ok(l) => {
                if let Err(seen) = &mut got {
                    seen.push_str(&l);
                    seen.push('\n');
                }
            }
            Err(_) => break,
        }
    }
    signal(child.id(), libc::SIGTERM);
    let _ = child.wait();
    got
}

/// The switch's own DHCPv6 server to a real client (ISC dhclient -6) in
/// namespaces on `afpacket` ports: on a `dhcpv6-stateful` subnet the port's
/// fixed address and the subnet's DNS server and the domain; on a
/// `dhcpv6-stateless` one the options without an address. The server is
/// the network's DHCP port (its link-local address and DUID).
#[test]
fn the_switch_answers_dhcpv6_stateful_and_stateless() {
    let _g = serial();
    let dir = TempDir::new("dhcp6-ns");
    let id = std::process::id() % 100_000;
    let (sw, api, _) = dhcp_switch(&dir, "dhcp6-ns");
    let a = Some(api);
    let mut nss = Namespaces(Vec::new());
    let mut plug = |i: u32, mode: &str, cidr: &str, fixed: Option<&str>| -> String {
        let net = ctl_json(&sw, a, &["network", "create", &format!("n{i}")]);
        let net_id = net["id"].as_str().unwrap().to_owned();
        let dns = cidr.replace("::/64", "::53");
        let (st, sub) = http(
            api,
            "POST",
            "/v2.0/subnets",
            Some(&format!(
                r#"{{"subnet": {{"name": "s{i}", "network_id": "{net_id}", "cidr": "{cidr}",
                "ip_version": 6, "ipv6_address_mode": "{mode}", "dns_nameservers": ["{dns}"]}}}}"#
            )),
        );
        assert_eq!(st, 201, "{sub}");
        let mut args = vec![
            "port".to_owned(),
            "create".to_owned(),
            format!("vm{i}-eth0"),
            "--network".to_owned(),
            format!("n{i}"),
        ];
        if let Some(ip) = fixed {
            args.extend([
                "--fixed-ip".to_owned(),
                format!("subnet=s{i},ip-address={ip}"),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let port = ctl_json(&sw, a, &args);
        let port_id = port["id"].as_str().unwrap().to_owned();
        let mac = port["mac_address"].as_str().unwrap().to_owned();
        let (ns, host) = (format!("fswd{id}v{i}"), format!("fswd{id}w{i}"));
        namespace_on_port(
            &sw,
            api,
            &mut nss,
            &ns,
            &host,
            &format!("vm{i}"),
            &port_id,
            &mac,
        );
        ns
    };
    let ns1 = plug(1, "dhcpv6-stateful", "fd00:97::/64", Some("fd00:97::21"));
    let ns2 = plug(2, "dhcpv6-stateless", "fd00:98::/64", None);
    // The DHCP ports: one per network, as a DHCP agent keeps.
    let (_, ports) = http(api, "GET", "/v2.0/ports?device_owner=network:dhcp", None);
    let ports: serde_json::Value = serde_json::from_str(&ports).unwrap();
    assert_eq!(ports["ports"].as_array().map(Vec::len), Some(2), "{ports}");

    let t0 = std::time::Instant::now();
    let lease = dhclient6(&dir, &ns1, false, "DHCP6 BOUND6");
    let took = t0.elapsed();
    let lease = lease.unwrap_or_else(|seen| {
        panic!(
            "no DHCPv6 lease; counters {:?}; dhclient's script:\n{seen}",
            sw.port("vm1").dhcp
        )
    });
    assert!(lease.contains("ip=fd00:97::21/"), "{lease}");
    assert!(lease.contains("dns=fd00:97::53"), "{lease}");
    assert!(lease.contains("domain=example.test"), "{lease}");
    assert!(lease.contains("life=600"), "{lease}");
    eprintln!("DHCPv6 lease in {took:?}: {lease}");
    assert!(
        took < std::time::Duration::from_secs(2),
        "lease after {took:?}"
    );
    let row = sw.port("vm1");
    assert!(
        row.dhcp["offers"] >= 1 && row.dhcp["acks"] >= 1,
        "ADVERTISE and REPLY: {:?}",
        row.dhcp
    );

    // dhclient 4.4 runs its script with RENEW6 for an information reply.
    let info = dhclient6(&dir, &ns2, true, "DHCP6 ").unwrap_or_else(|seen| {
        panic!(
            "no information reply; counters {:?}; dhclient's script:\n{seen}",
            sw.port("vm2").dhcp
        )
    });
    assert!(info.contains("dns=fd00:98::53"), "{info}");
    assert!(info.contains("domain=example.test"), "{info}");
    assert!(
        info.contains("ip=/"),
        "no address on a stateless subnet: {info}"
    );
    drop(nss);
    assert!(sw.stop().success());
}

/// Runs `code` (Python) in the root namespace with a packet socket on
/// `iface` open as `s` before it runs, and returns what it prints: the hex
/// of the first VXLAN packet (IPv4 or IPv6, UDP to 4789) seen on `iface`
/// whose inner frame satisfies `inner_test` (a Python expression over
/// `inner`, the bytes after the 50- or 70-byte outer header), within 3 s.
fn first_vxlan_packet(iface: &str, before: &str, inner_test: &str) -> Option<Vec<u8>> {
    let code = format!(
        "import socket, subprocess, time\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))\n\
         s.bind(('{iface}', 0))\n\
         s.settimeout(0.5)\n\
         {before}\n\
         end = time.time() + 3\n\
         while time.time() < end:\n\
         \x20   try:\n\
         \x20       f = s.recv(65535)\n\
         \x20   except socket.timeout:\n\
         \x20       continue\n\
         \x20   if len(f) > 50 and f[12:14] == b'\\x08\\x00' and f[23] == 17 and f[36:38] == b'\\x12\\xb5':\n\
         \x20       inner = f[50:]\n\
         \x20   elif len(f) > 70 and f[12:14] == b'\\x86\\xdd' and f[20] == 17 and f[56:58] == b'\\x12\\xb5':\n\
         \x20       inner = f[70:]\n\
         \x20   else:\n\
         \x20       continue\n\
         \x20   if {inner_test}:\n\
         \x20       print(f.hex())\n\
         \x20       break\n"
    );
    let out = Command::new("python3")
        .args(["-c", &code])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.trim();
    (!hex.is_empty()).then(|| {
        (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    })
}

/// The command that makes the kernel in `ns` send its tunnel packets on
/// `dev` cut to the MTU, as a wire delivers them (`more` ethtool settings
/// added): a packet socket cannot take its UDP-tunnel GSO packets.
fn tunnel_packets_whole<'a>(ns: &'a str, dev: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut c = vec!["ip", "netns", "exec", ns, "ethtool", "-K", dev];
    c.extend(["gso", "off", "tso", "off", "tx-udp_tnl-segmentation", "off"]);
    c.extend(["tx-udp_tnl-csum-segmentation", "off"]);
    c.extend(more);
    c
}

/// The Python line that starts `count` pings from namespace `ns` to `dst`
/// in the background (for [`first_vxlan_packet`]'s `before`).
fn pinging(ns: &str, dst: &str, count: u32) -> String {
    format!(
        "subprocess.Popen(['ip', 'netns', 'exec', '{ns}', 'ping', '-c', '{count}', '-i', '0.2', '{dst}'], stdout=subprocess.DEVNULL)"
    )
}

/// The first echo request from `ns` to `dst` seen on `iface` as a VXLAN
/// packet, and what `wire::vxlan::parse_ipv4` reads of it (its outer UDP
/// checksum verified).
fn echo_on_underlay(
    iface: &str,
    ns: &str,
    dst: &str,
) -> (Vec<u8>, switch_core::wire::vxlan::Decapsulated) {
    let f = first_vxlan_packet(iface, &pinging(ns, dst, 2), "inner[34] == 8")
        .unwrap_or_else(|| panic!("no echo request from {ns} to {dst} on {iface}"));
    let d = switch_core::wire::vxlan::parse_ipv4(&f, switch_core::wire::vxlan::UDP_PORT, false)
        .unwrap_or_else(|e| panic!("not a tunnel packet we take: {e:?}"));
    (f, d)
}

/// The VXLAN wire format against the Linux kernel's VXLAN device: a
/// kernel tunnel endpoint in a namespace; what it sends parses with
/// `wire::vxlan::parse_ipv4` to the fields it was configured with, and a
/// packet built with `Ipv4Tunnel::write_header` is taken by the kernel,
/// whose answer comes back through the tunnel.
#[test]
fn the_vxlan_wire_format_interoperates_with_the_linux_kernel() {
    use switch_core::wire::vxlan::{parse_ipv4, Ipv4Tunnel, Vni, UDP_PORT};
    use switch_core::wire::{checksum, fold, sum16, EthernetAddress};
    let _g = serial();
    let id = std::process::id() % 100_000;
    let (ns, host) = (format!("fswt{id}vx"), format!("fswt{id}vh"));
    let mut nss = Namespaces(Vec::new());
    namespace_with_veth(&mut nss, &ns, &host, "192.0.2.2/24");
    let in_ns = |args: &[&str]| {
        let mut full = vec!["ip", "netns", "exec", &ns];
        full.extend(args);
        assert!(sh(&full), "{args:?}");
    };
    // The underlay: fixed MACs, and the kernel's next hop to us (nothing
    // answers ARP on our side).
    assert!(sh(&[
        "ip",
        "link",
        "set",
        &host,
        "address",
        "02:fe:00:00:00:01"
    ]));
    in_ns(&["ip", "link", "set", "eth0", "address", "02:fe:00:00:00:02"]);
    in_ns(&[
        "ip",
        "neigh",
        "replace",
        "192.0.2.1",
        "lladdr",
        "02:fe:00:00:00:01",
        "dev",
        "eth0",
    ]);
    // The kernel's tunnel endpoint: VNI 4242 to 192.0.2.1, and a "VM"
    // address on it with a static neighbour behind the tunnel.
    kernel_vxlan(&ns, Some("02:77:00:00:00:02"), "10.77.0.2/24");
    in_ns(&[
        "ip",
        "neigh",
        "replace",
        "10.77.0.1",
        "lladdr",
        "02:77:00:00:00:01",
        "dev",
        "vxlan0",
    ]);

    // Kernel -> us: a ping through the kernel's tunnel.
    let f = first_vxlan_packet(&host, &pinging(&ns, "10.77.0.1", 3), "inner[34] == 8")
        .expect("the kernel's tunnel packet");
    // Between namespaces the kernel leaves the outer UDP checksum to an
    // offload (CHECKSUM_PARTIAL: the field holds the pseudo-header sum),
    // as a packet socket on an uplink would hand it over.
    let pseudo = sum16(&f[26..34]) + 17 + (f.len() - 34) as u64;
    assert_eq!(u16::from_be_bytes([f[40], f[41]]), !fold(pseudo));
    assert!(parse_ipv4(&f, UDP_PORT, false).is_err());
    let d = parse_ipv4(&f, UDP_PORT, true).expect("the kernel's packet parses");
    assert_eq!(d.vni, Vni::new(4242).unwrap());
    assert_eq!(
        (d.src_ip, d.dst_ip),
        (IpAddr::from([192, 0, 2, 2]), IpAddr::from([192, 0, 2, 1]))
    );
    assert_eq!(d.outer_tci, None);
    let inner = &f[d.inner..d.inner + d.inner_len];
    assert_eq!(&inner[..12], &[2, 0x77, 0, 0, 0, 1, 2, 0x77, 0, 0, 0, 2]);
    assert_eq!(&inner[26..34], &[10, 77, 0, 2, 10, 77, 0, 1]);

    // Us -> kernel: an echo request in our encapsulation; the kernel's
    // reply (ICMP type 0) comes back through its tunnel.
    let mut inner = vec![0u8; 14 + 20 + 16];
    inner[..6].copy_from_slice(&[2, 0x77, 0, 0, 0, 2]);
    inner[6..12].copy_from_slice(&[2, 0x77, 0, 0, 0, 1]);
    inner[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut inner[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, 36, 0, 1, 0, 0, 64, 1, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2,
    ]);
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let icmp = &mut inner[34..];
    icmp.copy_from_slice(&[8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]);
    let sum = checksum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let tunnel = Ipv4Tunnel {
        src_mac: EthernetAddress::new(2, 0xfe, 0, 0, 0, 1),
        dst_mac: EthernetAddress::new(2, 0xfe, 0, 0, 0, 2),
        src_ip: [192, 0, 2, 1],
        dst_ip: [192, 0, 2, 2],
        ttl: 64,
        tos: 0,
        dont_fragment: true,
    };
    let mut out = vec![0u8; 50 + inner.len()];
    tunnel
        .write_header(&mut out, Vni::new(4242).unwrap(), 50_000, 1, inner.len())
        .unwrap();
    out[50..].copy_from_slice(&inner);
    let send = format!("s.send(bytes.fromhex('{}'))", hex(&out));
    let f = first_vxlan_packet(
        &host,
        &send,
        "inner[34] == 0 and inner[38:40] == b'\\x12\\x34'",
    )
    .expect("the kernel answers our tunnel packet through its tunnel");
    let d = parse_ipv4(&f, UDP_PORT, true).unwrap();
    assert_eq!(d.vni, Vni::new(4242).unwrap());
    let reply = &f[d.inner..d.inner + d.inner_len];
    assert_eq!(&reply[26..34], &[10, 77, 0, 2, 10, 77, 0, 1]);
    assert_eq!(&reply[42..50], &[1, 2, 3, 4, 5, 6, 7, 8]);
}

/// The Linux kernel's VXLAN tunnel endpoint in namespace `ns`: `vxlan0`
/// (with MAC `mac` if given), VNI 4242 from 192.0.2.2 (its eth0) to
/// 192.0.2.1, holding `addr`, up.
fn kernel_vxlan(ns: &str, mac: Option<&str>, addr: &str) {
    kernel_vxlan_between(ns, mac, ("192.0.2.2", "192.0.2.1", "4242"), addr);
}

/// [`kernel_vxlan`] from `local` to `remote` with VNI `vni` (IPv4 or IPv6).
fn kernel_vxlan_between(
    ns: &str,
    mac: Option<&str>,
    (local, remote, vni): (&str, &str, &str),
    addr: &str,
) {
    let mut add = vec!["ip", "netns", "exec", ns, "ip", "link", "add", "vxlan0"];
    if let Some(mac) = mac {
        add.extend(["address", mac]);
    }
    add.extend([
        "type", "vxlan", "id", vni, "local", local, "remote", remote, "dstport", "4789", "dev",
        "eth0",
    ]);
    assert!(sh(&add), "{add:?}");
    for cmd in [
        ["ip", "addr", "add", addr, "dev", "vxlan0"].as_slice(),
        ["ip", "link", "set", "vxlan0", "up"].as_slice(),
    ] {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend(cmd);
        assert!(sh(&full), "{full:?}");
    }
}

/// Runs `args` in namespace `ns`; they must succeed.
fn in_ns(ns: &str, args: &[&str]) {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend(args);
    assert!(sh(&full), "{full:?}");
}

/// The VM's MTU is a VXLAN network's (the uplink's 1500 less VXLAN's 50,
/// as Neutron gives it); the uplink's veth gets the endpoint's MAC.
fn vxlan_vm_and_uplink(vm: &str, h_up: &str) {
    in_ns(vm, &["ip", "link", "set", "eth0", "mtu", "1450"]);
    assert!(sh(&[
        "ip",
        "link",
        "set",
        h_up,
        "address",
        "02:fe:00:00:00:01"
    ]));
}

/// A switch of three ports on two bridges: br-int with "vm" (afpacket on
/// `ifaces[0]`) and "vx" (a `vxlan` port to `remote` with VNI `key`),
/// br-phy with "uplink" (afpacket on `ifaces[1]`, `uplink` its tunnel
/// endpoint's keys).
fn vm_tunnel_uplink(
    dir: &TempDir,
    name: &str,
    ifaces: [&str; 2],
    remote: &str,
    key: u32,
    uplink: &str,
) -> String {
    let [vm, up] = ifaces;
    format!(
        "{}[[bridges]]\nname = \"br-int\"\n\
         [[bridges.ports]]\nname = \"vm\"\ntype = \"afpacket\"\niface = \"{vm}\"\n\
         [[bridges.ports]]\nname = \"vx\"\ntype = \"vxlan\"\nremote_ip = \"{remote}\"\n\
         key = {key}\n\
         [[bridges]]\nname = \"br-phy\"\n\
         [[bridges.ports]]\nname = \"uplink\"\ntype = \"afpacket\"\niface = \"{up}\"\n\
         {uplink}\n",
        config_head(dir, name)
    )
}

/// `tunnel list`'s row for `port`.
fn tunnel_row(sw: &Switch, port: &str) -> control_api::protocol::TunnelRow {
    let rows: Vec<control_api::protocol::TunnelRow> =
        serde_json::from_value(sw.ok(&control_api::protocol::Request::TunnelList)).unwrap();
    rows.into_iter()
        .find(|r| r.port == port)
        .unwrap_or_else(|| panic!("no tunnel {port}"))
}

/// A routed underlay: the switch's endpoint 198.51.100.1/24 and a kernel
/// VXLAN endpoint 203.0.113.2/24 in another subnet, a Linux router
/// namespace between them (198.51.100.254 and 203.0.113.254). The tunnel's
/// next hop is the endpoint's `tunnel_gateway`, whose MAC the switch
/// resolves by ARP (never the remote endpoint's, which is not on its
/// segment); ping crosses both ways, the outer headers go to the router's
/// MAC, and a router that changes its MAC is followed (its gratuitous ARP).
#[test]
fn a_vxlan_tunnel_crosses_a_router_to_its_gateway_resolved_by_arp() {
    let _g = serial();
    let dir = TempDir::new("vxlan-routed");
    let id = std::process::id() % 100_000;
    let mut nss = Namespaces(Vec::new());
    let (vm, router, remote) = (
        format!("fswt{id}rv"),
        format!("fswt{id}rr"),
        format!("fswt{id}re"),
    );
    let (h_vm, h_up) = (format!("fswt{id}ra"), format!("fswt{id}ru"));
    namespace_with_veth(&mut nss, &vm, &h_vm, "10.79.0.1/24");
    namespace_with_veth(&mut nss, &router, &h_up, "198.51.100.254/24");
    nss.0.push((remote.clone(), String::new()));
    assert!(sh(&["ip", "netns", "add", &remote]));
    in_ns(
        &router,
        &[
            "ip", "link", "add", "rt1", "type", "veth", "peer", "name", "eth0", "netns", &remote,
        ],
    );
    in_ns(
        &router,
        &["ip", "addr", "add", "203.0.113.254/24", "dev", "rt1"],
    );
    in_ns(&router, &["ip", "link", "set", "rt1", "up"]);
    in_ns(&router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    in_ns(
        &router,
        &["ip", "link", "set", "eth0", "address", "02:fe:00:00:00:fe"],
    );
    in_ns(
        &remote,
        &["ip", "addr", "add", "203.0.113.2/24", "dev", "eth0"],
    );
    in_ns(&remote, &["ip", "link", "set", "eth0", "up"]);
    in_ns(
        &remote,
        &["ip", "route", "add", "default", "via", "203.0.113.254"],
    );
    vxlan_vm_and_uplink(&vm, &h_up);
    assert!(sh(&tunnel_packets_whole(&remote, "eth0", &[])));
    kernel_vxlan_between(
        &remote,
        None,
        ("203.0.113.2", "198.51.100.1", "4243"),
        "10.79.0.2/24",
    );
    let uplink = "tunnel_ip = \"198.51.100.1/24\"\ntunnel_gateway = \"198.51.100.254\"";
    let cfg = vm_tunnel_uplink(
        &dir,
        "vxlan-routed",
        [&h_vm, &h_up],
        "203.0.113.2",
        4243,
        uplink,
    )
    // A short aging time, to see a silent MAC change found in the test.
    .replace(
        "control_core = 0\n",
        "control_core = 0\nneighbour_aging_secs = 4\n",
    );
    let sw = Switch::start(&dir, &cfg);
    assert_eq!(tunnel_row(&sw, "vx").next_hop, "198.51.100.254");
    let f = first_vxlan_packet(
        &h_up,
        &pinging(&vm, "10.79.0.2", 3),
        "f[6:12] == bytes.fromhex('02fe00000001') and inner[34] == 8",
    )
    .unwrap_or_else(|| panic!("no echo request on the underlay\n{}", sw.log_text()));
    assert_eq!(&f[..6], &[2, 0xfe, 0, 0, 0, 0xfe], "to the router");
    assert_eq!(&f[26..34], &[198, 51, 100, 1, 203, 0, 113, 2]);
    for (from, to) in [(vm.as_str(), "10.79.0.2"), (remote.as_str(), "10.79.0.1")] {
        let (ok, text) = ping(Some(from), to);
        assert!(ok, "{from} -> {to}:\n{text}\n{}", sw.log_text());
    }
    let row = tunnel_row(&sw, "vx");
    assert_eq!(row.remote_mac, "02:fe:00:00:00:fe", "{row:?}");
    assert!(row.next_hop_state.starts_with("reachable"), "{row:?}");
    // The router's interface is replaced: its gratuitous ARP moves the
    // next hop, and the tunnel follows without losing its traffic.
    in_ns(
        &router,
        &["ip", "link", "set", "eth0", "address", "02:fe:00:00:00:fd"],
    );
    let garp = "import socket\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind(('eth0', 0))\n\
         m = bytes.fromhex('02fe000000fd')\n\
         ip = bytes([198, 51, 100, 254])\n\
         s.send(b'\\xff' * 6 + m + b'\\x08\\x06\\x00\\x01\\x08\\x00\\x06\\x04\\x00\\x01' + m + ip + bytes(6) + ip + bytes(18))\n";
    in_ns(&router, &["python3", "-c", garp]);
    let moved = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        tunnel_row(&sw, "vx").remote_mac == "02:fe:00:00:00:fd"
    });
    assert!(moved, "{:?}", tunnel_row(&sw, "vx"));
    let metrics = sw.ok(&control_api::protocol::Request::Metrics);
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(
        metrics.contains(
            "ferroswitch_tunnel_next_hop_resolved{port=\"vx\",next_hop=\"198.51.100.254\"} 1"
        ),
        "{metrics}"
    );
    let (ok, text) = ping(Some(&vm), "10.79.0.2");
    assert!(ok, "after the move:\n{text}\n{}", sw.log_text());
    // Replaced again, silently: the unicast probe at half the aging time
    // goes unanswered (to the old MAC), the entry ages out, and the
    // broadcast request finds the new MAC. The router's entry for the
    // endpoint is pinned right after the change (a MAC change flushes the
    // device's entries, permanent ones too): else its kernel re-resolves
    // the endpoint as the pings resume, and the switch learns the new MAC
    // from that request before it asks (a race this test lost under load).
    let endpoint_mac = dataplane::wire::EthernetAddress(f[6..12].try_into().unwrap()).to_string();
    let asked = tunnel_row(&sw, "vx").arp_requests;
    in_ns(
        &router,
        &["ip", "link", "set", "eth0", "address", "02:fe:00:00:00:fc"],
    );
    in_ns(
        &router,
        &[
            "ip",
            "neigh",
            "replace",
            "198.51.100.1",
            "lladdr",
            &endpoint_mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
    let mut pinger = Command::new("ip")
        .args([
            "netns",
            "exec",
            &vm,
            "ping",
            "-c",
            "60",
            "-i",
            "0.2",
            "10.79.0.2",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let found = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        tunnel_row(&sw, "vx").remote_mac == "02:fe:00:00:00:fc"
    });
    let _ = pinger.kill();
    let _ = pinger.wait();
    let row = tunnel_row(&sw, "vx");
    assert!(found, "{row:?}");
    assert!(
        row.arp_requests >= asked + 2,
        "a probe and a request: {row:?}"
    );
    let (ok, text) = ping(Some(&vm), "10.79.0.2");
    assert!(ok, "after the silent move:\n{text}\n{}", sw.log_text());
    assert!(sw.stop().success());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A `vxlan` port against the Linux kernel's VXLAN device as the remote
/// endpoint: a "VM" namespace on an afpacket port of br-int, the tunnel
/// port on br-int, and the uplink (an afpacket port holding the tunnel
/// endpoint 192.0.2.1) on br-phy, its veth's far end in the remote
/// namespace where the kernel's vxlan0 (VNI 4242) holds 10.78.0.2. Each
/// side finds the other's endpoint by ARP (the switch answers the kernel,
/// and resolves its next hop, the remote endpoint, itself); ARP, ping and
/// TCP both ways cross the tunnel; the packets the switch puts on the
/// underlay are checked field by field.
#[test]
fn a_vxlan_port_carries_arp_ping_and_tcp_to_a_kernel_vxlan_endpoint() {
    use switch_core::wire::vxlan::{parse_ipv4, Vni, UDP_PORT};
    let _g = serial();
    let dir = TempDir::new("vxlan");
    let id = std::process::id() % 100_000;
    let mut nss = Namespaces(Vec::new());
    let (vm, remote) = (format!("fswt{id}xv"), format!("fswt{id}xr"));
    let (h_vm, h_up) = (format!("fswt{id}xa"), format!("fswt{id}xu"));
    namespace_with_veth(&mut nss, &vm, &h_vm, "10.78.0.1/24");
    namespace_with_veth(&mut nss, &remote, &h_up, "192.0.2.2/24");
    vxlan_vm_and_uplink(&vm, &h_up);
    in_ns(
        &remote,
        &["ip", "link", "set", "eth0", "address", "02:fe:00:00:00:02"],
    );
    // The underlay as a wire delivers it: the remote's kernel sends its
    // tunnel's TCP segments cut to the MTU. Between namespaces a veth takes
    // the kernel's UDP-tunnel GSO packets whole (up to 64 KB), and a packet
    // socket cannot receive those: no virtio-net header type says
    // "UDP tunnel", so the kernel drops them before the switch sees them.
    assert!(sh(&tunnel_packets_whole(&remote, "eth0", &[])));
    kernel_vxlan(&remote, None, "10.78.0.2/24");
    let uplink = "tunnel_ip = \"192.0.2.1/24\"";
    let cfg = vm_tunnel_uplink(&dir, "vxlan", [&h_vm, &h_up], "192.0.2.2", 4242, uplink);
    let sw = Switch::start(&dir, &cfg);
    assert_eq!(port_info(&sw, "vx").kind, "vxlan");
    // The tunnel asks for its next hop (the remote endpoint) as it comes
    // up, before any frame needs it.
    let resolved = (0..40).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        tunnel_row(&sw, "vx")
            .next_hop_state
            .starts_with("reachable")
    });
    assert!(resolved, "{:?}", tunnel_row(&sw, "vx"));
    assert_eq!(tunnel_row(&sw, "vx").next_hop, "192.0.2.2");

    // What the switch sends the remote endpoint for an echo request.
    let f = first_vxlan_packet(
        &h_up,
        &pinging(&vm, "10.78.0.2", 3),
        "f[6:12] == bytes.fromhex('02fe00000001') and inner[34] == 8",
    )
    .unwrap_or_else(|| panic!("no echo request on the underlay\n{}", sw.log_text()));
    let d = parse_ipv4(&f, UDP_PORT, false).expect("our tunnel packet parses");
    assert_eq!(d.vni, Vni::new(4242).unwrap());
    assert_eq!(
        (d.src_ip, d.dst_ip, d.ttl),
        (
            IpAddr::from([192, 0, 2, 1]),
            IpAddr::from([192, 0, 2, 2]),
            64
        )
    );
    assert_eq!(&f[..6], &[2, 0xfe, 0, 0, 0, 2], "to the next hop");
    assert_eq!(f[20] & 0x40, 0x40, "DF");
    assert_eq!(
        u16::from_be_bytes([f[40], f[41]]),
        0,
        "no outer UDP checksum"
    );
    assert!((32768..=60999).contains(&d.src_port), "{}", d.src_port);
    let inner = &f[d.inner..d.inner + d.inner_len];
    assert_eq!(&inner[26..34], &[10, 78, 0, 1, 10, 78, 0, 2]);

    let (ok, text) = ping(Some(&vm), "10.78.0.2");
    assert!(
        ok,
        "ping across the tunnel failed:\n{text}\n{}",
        sw.log_text()
    );
    // The remote's kernel found our endpoint by ARP: the switch answered.
    let neigh = Command::new("ip")
        .args(["netns", "exec", &remote, "ip", "neigh", "show", "192.0.2.1"])
        .output()
        .unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(neigh.contains("02:fe:00:00:00:01"), "{neigh}");
    // And the switch found the remote's by ARP: the kernel answered.
    let row = tunnel_row(&sw, "vx");
    assert_eq!(row.remote_mac, "02:fe:00:00:00:02", "{row:?}");
    assert!(row.next_hop_state.starts_with("reachable"), "{row:?}");
    assert!(row.arp_requests >= 1, "{row:?}");
    let (ok, text) = ping(Some(&remote), "10.78.0.1");
    assert!(
        ok,
        "ping back across the tunnel failed:\n{text}\n{}",
        sw.log_text()
    );
    // TCP both ways with the kernel's offloads: the VM's 64 KB segments
    // are cut to its MSS before they are encapsulated; the remote's come
    // in cut, with their checksums left partial inside filled outer ones.
    for (server, client, to, what) in [
        (remote.as_str(), vm.as_str(), "10.78.0.2", "VM to remote"),
        (vm.as_str(), remote.as_str(), "10.78.0.1", "remote to VM"),
    ] {
        let bytes = iperf3(Some(server), Some(client), to, 2).unwrap_or_else(|e| {
            panic!(
                "{what}: iperf3 failed: {e}\n{}\n{}",
                sw.ok(&control_api::protocol::Request::PortStats),
                sw.log_text()
            )
        });
        assert!(bytes > 1_000_000, "{what}: {bytes} bytes");
        eprintln!("TCP over VXLAN, {what}: {bytes} bytes in 2 s");
    }
    let stats: Vec<control_api::protocol::PortStatsRow> =
        serde_json::from_value(sw.ok(&control_api::protocol::Request::PortStats)).unwrap();
    let row = |n: &str| stats.iter().find(|r| r.name == n).unwrap().clone();
    let (vx, up) = (row("vx"), row("uplink"));
    assert!(vx.tx_packets > 1000 && vx.rx_packets > 1000, "{vx:?}");
    assert!(
        up.tx_packets >= vx.tx_packets && up.rx_packets >= vx.rx_packets,
        "{up:?}"
    );
    let fdb: Vec<control_api::protocol::FdbRow> =
        serde_json::from_value(sw.ok(&control_api::protocol::Request::FdbShow {
            bridge: Some("br-int".into()),
        }))
        .unwrap();
    assert!(
        fdb.iter().any(|e| e.port == "vx"),
        "the remote's MAC is learned on the tunnel port: {fdb:?}"
    );
    assert!(sw.stop().success());
}

/// [`a_vxlan_port_carries_arp_ping_and_tcp_to_a_kernel_vxlan_endpoint`]
/// over an IPv6 underlay: the switch's endpoint 2001:db8:78::1/64 on its
/// uplink, the kernel's vxlan0 (VNI 4242, 10.79.0.2) from 2001:db8:78::2
/// with the kernel's defaults (UDP checksums sent and required). Each side
/// finds the other's endpoint by neighbour discovery (the switch answers
/// the kernel's solicitation and resolves its next hop itself); ping and
/// TCP cross both ways; the switch's packets on the underlay are checked
/// field by field, their UDP checksum included.
#[test]
fn a_vxlan_port_over_ipv6_carries_ping_and_tcp_to_a_kernel_vxlan_endpoint() {
    use switch_core::wire::vxlan::{parse_ipv6, Vni, IPV6_OVERHEAD, UDP_PORT};
    let _g = serial();
    let dir = TempDir::new("vxlan6");
    let id = std::process::id() % 100_000;
    let mut nss = Namespaces(Vec::new());
    let (vm, remote) = (format!("fswt{id}yv"), format!("fswt{id}yr"));
    let (h_vm, h_up) = (format!("fswt{id}ya"), format!("fswt{id}yu"));
    namespace_with_veth(&mut nss, &vm, &h_vm, "10.79.0.1/24");
    namespace_with_veth(&mut nss, &remote, &h_up, "192.0.2.2/24");
    vxlan_vm_and_uplink(&vm, &h_up);
    // VXLAN over IPv6 takes 70 bytes of the uplink's 1500.
    in_ns(&vm, &["ip", "link", "set", "eth0", "mtu", "1430"]);
    in_ns(
        &remote,
        &["ip", "link", "set", "eth0", "address", "02:fe:00:00:00:02"],
    );
    in_ns(
        &remote,
        &["sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0"],
    );
    in_ns(
        &remote,
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:78::2/64",
            "dev",
            "eth0",
            "nodad",
        ],
    );
    assert!(sh(&tunnel_packets_whole(&remote, "eth0", &[])));
    kernel_vxlan_between(
        &remote,
        None,
        ("2001:db8:78::2", "2001:db8:78::1", "4242"),
        "10.79.0.2/24",
    );
    let uplink = "tunnel_ip = \"2001:db8:78::1/64\"";
    let cfg = vm_tunnel_uplink(
        &dir,
        "vxlan6",
        [&h_vm, &h_up],
        "2001:db8:78::2",
        4242,
        uplink,
    );
    let sw = Switch::start(&dir, &cfg);
    // The next hop is solicited as the tunnel comes up.
    let resolved = (0..40).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        tunnel_row(&sw, "vx")
            .next_hop_state
            .starts_with("reachable")
    });
    assert!(resolved, "{:?}\n{}", tunnel_row(&sw, "vx"), sw.log_text());
    let row = tunnel_row(&sw, "vx");
    assert_eq!(
        (
            row.local_ip.as_str(),
            row.next_hop.as_str(),
            row.remote_mac.as_str()
        ),
        ("2001:db8:78::1", "2001:db8:78::2", "02:fe:00:00:00:02"),
        "{row:?}"
    );

    let f = first_vxlan_packet(
        &h_up,
        &pinging(&vm, "10.79.0.2", 3),
        "f[6:12] == bytes.fromhex('02fe00000001') and inner[34] == 8",
    )
    .unwrap_or_else(|| panic!("no echo request on the underlay\n{}", sw.log_text()));
    // parse_ipv6 verifies the UDP checksum, which must be there.
    let d = parse_ipv6(&f, UDP_PORT, false).expect("our tunnel packet parses");
    assert_ne!(&f[60..62], &[0, 0], "an outer UDP checksum");
    assert_eq!(d.vni, Vni::new(4242).unwrap());
    assert_eq!(
        (d.src_ip, d.dst_ip, d.ttl),
        (
            "2001:db8:78::1".parse::<IpAddr>().unwrap(),
            "2001:db8:78::2".parse::<IpAddr>().unwrap(),
            64
        )
    );
    assert_eq!(&f[..6], &[2, 0xfe, 0, 0, 0, 2], "to the next hop");
    assert_eq!(d.inner, IPV6_OVERHEAD);
    assert!((32768..=60999).contains(&d.src_port), "{}", d.src_port);
    let inner = &f[d.inner..d.inner + d.inner_len];
    assert_eq!(&inner[26..34], &[10, 79, 0, 1, 10, 79, 0, 2]);

    for (from, to) in [(vm.as_str(), "10.79.0.2"), (remote.as_str(), "10.79.0.1")] {
        let (ok, text) = ping(Some(from), to);
        assert!(ok, "ping {from} -> {to} failed:\n{text}\n{}", sw.log_text());
    }
    // The remote's kernel found our endpoint by neighbour discovery: the
    // switch answered its solicitation.
    let neigh = Command::new("ip")
        .args([
            "netns",
            "exec",
            &remote,
            "ip",
            "-6",
            "neigh",
            "show",
            "2001:db8:78::1",
        ])
        .output()
        .unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(neigh.contains("02:fe:00:00:00:01"), "{neigh}");
    for (server, client, to, what) in [
        (remote.as_str(), vm.as_str(), "10.79.0.2", "VM to remote"),
        (vm.as_str(), remote.as_str(), "10.79.0.1", "remote to VM"),
    ] {
        let bytes = iperf3(Some(server), Some(client), to, 2).unwrap_or_else(|e| {
            panic!(
                "{what}: iperf3 failed: {e}\n{}\n{}",
                sw.ok(&control_api::protocol::Request::PortStats),
                sw.log_text()
            )
        });
        assert!(bytes > 1_000_000, "{what}: {bytes} bytes");
        eprintln!("TCP over VXLAN/IPv6, {what}: {bytes} bytes in 2 s");
    }
    assert!(sw.stop().success());
}

/// The cloud tests' underlay: a Linux bridge in a namespace `<prefix>u`
/// the test creates, with a veth per host into it; returns the root ends
/// (up, the host's IPv6 off on them: they are the hosts' uplinks).
fn cloud_underlay(nss: &mut Namespaces, prefix: &str, hosts: u8) -> Vec<String> {
    let underlay = format!("{prefix}u");
    nss.0.push((underlay.clone(), String::new()));
    assert!(sh(&["ip", "netns", "add", &underlay]), "ip netns add");
    // A quiet underlay: no IPv6 of its own (the bridge's DAD, MLD and
    // router solicitations would reach every host).
    in_ns(
        &underlay,
        &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
    );
    in_ns(
        &underlay,
        &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
    );
    in_ns(&underlay, &["ip", "link", "add", "br0", "type", "bridge"]);
    in_ns(&underlay, &["ip", "link", "set", "br0", "up"]);
    let mut uplinks = Vec::new();
    for n in 1..=hosts {
        let (root, peer) = (format!("{prefix}{n}"), format!("u{n}"));
        assert!(sh(&[
            "ip", "link", "add", &root, "type", "veth", "peer", "name", &peer, "netns", &underlay
        ]));
        sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{root}.disable_ipv6=1"),
        ]);
        in_ns(&underlay, &["ip", "link", "set", &peer, "master", "br0"]);
        in_ns(&underlay, &["ip", "link", "set", &peer, "up"]);
        assert!(sh(&["ip", "link", "set", &root, "up"]));
        uplinks.push(root);
    }
    uplinks
}

/// [`a_three_host_cloud_carries_a_vxlan_network_over_etcd`] over an IPv6
/// underlay (`overlay_ip_version = 6`, endpoints 2001:db8:cafe::N/64),
/// two hosts: the network's MTU is the physical one less 70, each host
/// tunnels to the other, resolves it by neighbour discovery and answers
/// its solicitations, and ping crosses both ways inside IPv6 tunnel
/// packets whose UDP checksums hold.
#[test]
fn two_hosts_carry_a_vxlan_network_over_an_ipv6_underlay() {
    use switch_core::wire::vxlan::{parse_ipv6, UDP_PORT};
    let _g = serial();
    let edir = TempDir::new("cloud6-etcd");
    let etcd = etcd_member::Etcd::start(&edir.path(""));
    let id = std::process::id() % 100_000;
    let mut nss = Namespaces(Vec::new());
    let uplinks = cloud_underlay(&mut nss, &format!("fswt{id}d"), 2);
    let hosts: Vec<CloudHost> = (1..=2)
        .map(|n| CloudHost::start_on(n, &uplinks[n as usize - 1], &[&etcd.client_url], 2, true))
        .collect();
    let h1 = &hosts[0];
    network_with_subnet(&h1.sw, Some(h1.api), "cloud6", "cloud6-v4", "10.91.0.0/24");
    let net = ctl_json(&h1.sw, Some(h1.api), &["network", "show", "cloud6"]);
    assert_eq!(net["provider:network_type"], "vxlan", "{net}");
    assert_eq!(net["mtu"], 1430, "1500 less VXLAN over IPv6's 70: {net}");
    let mut ips = Vec::new();
    for n in 1..=2u8 {
        let p = ctl_json(
            &h1.sw,
            Some(h1.api),
            &[
                "port",
                "create",
                &format!("vm{n}-eth0"),
                "--network",
                "cloud6",
                "--host",
                &format!("host{n}"),
            ],
        );
        let (port_id, mac) = (
            p["id"].as_str().unwrap(),
            p["mac_address"].as_str().unwrap(),
        );
        let ip = p["fixed_ips"][0]["ip_address"].as_str().unwrap().to_owned();
        let host = &hosts[n as usize - 1];
        let (ns, veth) = (format!("fswt{id}dv{n}"), format!("fswt{id}dp{n}"));
        namespace_on_port(&host.sw, host.api, &mut nss, &ns, &veth, "vm", port_id, mac);
        in_ns(&ns, &["ip", "link", "set", "eth0", "mtu", "1430"]);
        in_ns(
            &ns,
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        );
        ips.push(ip);
    }
    hosts[0].wait_tunnels(&["vxlan-20010db8cafe00000000000000000002"]);
    hosts[1].wait_tunnels(&["vxlan-20010db8cafe00000000000000000001"]);
    let (vm1, vm2) = (format!("fswt{id}dv1"), format!("fswt{id}dv2"));
    for (from, to) in [(&vm1, &ips[1]), (&vm2, &ips[0])] {
        let (ok, text) = ping(Some(from), to);
        assert!(
            ok,
            "ping {from} -> {to} failed:\n{text}\n{}\n{}",
            hosts[0].sw.log_text(),
            hosts[1].sw.log_text()
        );
    }
    // Each host found the other's endpoint by neighbour discovery.
    for (h, remote_mac) in [
        (&hosts[0], "02:fe:00:00:00:02"),
        (&hosts[1], "02:fe:00:00:00:01"),
    ] {
        let rows: Vec<control_api::protocol::TunnelRow> =
            serde_json::from_value(h.sw.ok(&control_api::protocol::Request::TunnelList)).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].remote_mac, remote_mac, "{rows:?}");
        assert!(rows[0].next_hop_state.starts_with("reachable"), "{rows:?}");
    }
    // The tunnel packets on host 1's uplink: IPv6, to host 2's endpoint,
    // their UDP checksum verified by parse_ipv6.
    let f = first_vxlan_packet(&uplinks[0], &pinging(&vm1, &ips[1], 2), "inner[34] == 8")
        .expect("no echo request on the underlay");
    let d = parse_ipv6(&f, UDP_PORT, false).expect("an IPv6 tunnel packet with a good checksum");
    assert_eq!(
        (d.src_ip.to_string(), d.dst_ip.to_string(), d.vni.get()),
        ("2001:db8:cafe::1".into(), "2001:db8:cafe::2".into(), 1000)
    );
    assert_eq!(&f[..12], &[2, 0xfe, 0, 0, 0, 2, 2, 0xfe, 0, 0, 0, 1]);
}

/// One host of [`a_three_host_cloud_carries_a_vxlan_network_over_etcd`]:
/// its switch (Neutron API on `api`, the model in etcd) and the root end
/// of its uplink's veth into the underlay. Endpoints are 198.51.100.N
/// (TEST-NET-2): a machine may hold an address of TEST-NET-1 itself (this
/// one's eth0 does), and its kernel answers ARP for its own addresses on
/// every interface, the veths included.
struct CloudHost {
    sw: Switch,
    dir: TempDir,
    api: u16,
    cfg: String,
}

impl CloudHost {
    fn start(n: u8, uplink: &str, etcd: &[&str], ttl_secs: u32) -> CloudHost {
        CloudHost::start_on(n, uplink, etcd, ttl_secs, false)
    }

    /// [`start`](Self::start), its endpoint 2001:db8:cafe::N/64 with
    /// `overlay_ip_version = 6` when `v6`.
    fn start_on(n: u8, uplink: &str, etcd: &[&str], ttl_secs: u32, v6: bool) -> CloudHost {
        let dir = TempDir::new(&format!("cloud-h{n}"));
        let api = free_port();
        let (local, tunnel_ip, overlay) = if v6 {
            let ip = format!("2001:db8:cafe::{n}");
            (ip.clone(), format!("{ip}/64"), 6)
        } else {
            let ip = format!("198.51.100.{n}");
            (ip.clone(), ip, 4)
        };
        let cfg = format!(
            "{head}[neutron]\nlisten = \"127.0.0.1:{api}\"\ndatabase = \"{db}\"\nhost = \"host{n}\"\n\
             tenant_network_type = \"vxlan\"\nvni_ranges = [\"1000:1999\"]\n\
             local_ip = \"{local}\"\noverlay_ip_version = {overlay}\n\
             vhost_socket_dir = \"{vhu}\"\ndhcp = false\n\
             [cluster]\netcd_endpoints = [{etcd}]\nhost_ttl_secs = {ttl_secs}\n\
             [[bridges]]\nname = \"br-int\"\n\
             [[bridges]]\nname = \"br-phy\"\n\
             [[bridges.ports]]\nname = \"uplink\"\ntype = \"afpacket\"\niface = \"{uplink}\"\n\
             tunnel_ip = \"{tunnel_ip}\"\ntunnel_mac = \"02:fe:00:00:00:0{n}\"\n",
            head = config_head(&dir, &format!("cloud{n}")),
            db = dir.path("neutron.db").display(),
            vhu = dir.path("vhu").display(),
            etcd = etcd
                .iter()
                .map(|e| format!("\"{e}\""))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let sw = Switch::start(&dir, &cfg);
        CloudHost { sw, dir, api, cfg }
    }

    fn row(&self, name: &str) -> control_api::protocol::PortStatsRow {
        self.sw.port(name)
    }

    /// The switch's tunnel ports (l2population's), by name.
    fn tunnels(&self) -> Vec<String> {
        let list: Vec<control_api::protocol::PortInfo> =
            serde_json::from_value(self.sw.ok(&control_api::protocol::Request::PortList)).unwrap();
        list.into_iter()
            .filter(|p| p.kind == "vxlan")
            .map(|p| p.name)
            .collect()
    }

    fn wait_tunnels(&self, want: &[&str]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let mut have = self.tunnels();
            have.sort();
            if have == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tunnels {have:?}, want {want:?}\n{}",
                self.sw.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Issue 16's three-host cloud: three `vswitchd`s on this machine, one
/// Neutron model in a real etcd, their uplinks on veth pairs into a Linux
/// bridge in an underlay namespace. A vxlan network made through host 1's
/// API with VM ports bound on hosts 2 and 3 (namespaces on `afpacket`
/// ports): each of those two hosts opens a tunnel to the other and none
/// to host 1, which has no port there; ping and TCP cross the tunnel;
/// ARP for the other VM is answered by the local switch (no ARP on the
/// underlay); a broadcast reaches the other VM and nothing reaches host 1.
/// Host 3 killed with SIGKILL: its port goes DOWN, host 2 closes its
/// tunnel; restarted, it rebuilds the tunnel from etcd and ping resumes.
#[test]
fn a_three_host_cloud_carries_a_vxlan_network_over_etcd() {
    let _g = serial();
    let edir = TempDir::new("cloud-etcd");
    let etcd = etcd_member::Etcd::start(&edir.path(""));
    let id = std::process::id() % 100_000;
    let mut nss = Namespaces(Vec::new());
    let uplinks = cloud_underlay(&mut nss, &format!("fswt{id}c"), 3);
    let underlay = format!("fswt{id}cu");
    let hosts: Vec<CloudHost> = (1..=3)
        .map(|n| CloudHost::start(n, &uplinks[n as usize - 1], &[&etcd.client_url], 2))
        .collect();
    let h1 = &hosts[0];

    // Through host 1's API: a tenant network (vxlan, a VNI from the
    // range, Neutron's MTU) and a port on each of hosts 2 and 3.
    network_with_subnet(&h1.sw, Some(h1.api), "cloud", "cloud-v4", "10.90.0.0/24");
    ctl_json(
        &h1.sw,
        Some(h1.api),
        &[
            "subnet",
            "create",
            "cloud-v6",
            "--network",
            "cloud",
            "--subnet-range",
            "fd90::/64",
        ],
    );
    let net = ctl_json(&h1.sw, Some(h1.api), &["network", "show", "cloud"]);
    assert_eq!(net["provider:network_type"], "vxlan", "{net}");
    assert_eq!(net["provider:segmentation_id"], 1000, "{net}");
    assert_eq!(net["mtu"], 1450, "{net}");
    // (port id, MAC, IPv4 address, IPv6 address)
    let vms: Vec<(String, String, String, String)> = [2, 3]
        .iter()
        .map(|n| {
            let p = ctl_json(
                &h1.sw,
                Some(h1.api),
                &[
                    "port",
                    "create",
                    &format!("vm{n}-eth0"),
                    "--network",
                    "cloud",
                    "--host",
                    &format!("host{n}"),
                ],
            );
            assert_eq!(p["binding:vif_type"], "vhostuser", "{p}");
            let ip = |v6: bool| {
                p["fixed_ips"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["ip_address"].as_str().unwrap().to_owned())
                    .find(|a| a.contains(':') == v6)
                    .unwrap_or_else(|| panic!("no address of that family: {p}"))
            };
            (
                p["id"].as_str().unwrap().to_owned(),
                p["mac_address"].as_str().unwrap().to_owned(),
                ip(false),
                ip(true),
            )
        })
        .collect();
    for (i, (port_id, mac, ip, ip6)) in vms.iter().enumerate() {
        let host = &hosts[i + 1];
        let (ns, veth) = (
            format!("fswt{id}cv{}", i + 2),
            format!("fswt{id}cp{}", i + 2),
        );
        namespace_on_port(&host.sw, host.api, &mut nss, &ns, &veth, "vm", port_id, mac);
        // The afpacket port replaced the vhost-user port the daemon had
        // opened for the Neutron port when it was bound here.
        wait_port(&host.sw, &format!("vhu{}", &port_id[..11]), false);
        in_ns(
            &ns,
            &["sysctl", "-qw", "net.ipv6.conf.eth0.router_solicitations=0"],
        );
        in_ns(&ns, &["ip", "link", "set", "eth0", "mtu", "1450"]);
        in_ns(
            &ns,
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        );
        in_ns(
            &ns,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{ip6}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
        );
    }
    let (vm2, vm3) = (format!("fswt{id}cv2"), format!("fswt{id}cv3"));
    let (ip2, ip3) = (vms[0].2.clone(), vms[1].2.clone());
    // Host 2 tunnels to host 3 and back; host 1, with no port in the
    // network, to nobody.
    hosts[1].wait_tunnels(&["vxlan-c6336403"]);
    hosts[2].wait_tunnels(&["vxlan-c6336402"]);
    h1.wait_tunnels(&[]);

    // Ping across the tunnel; the ARP each VM sends for the other is
    // answered by its own switch, so none crosses the underlay.
    let arp = first_vxlan_packet(
        &uplinks[1],
        &pinging(&vm2, &ip3, 3),
        "inner[12:14] == b'\\x08\\x06'",
    );
    assert!(arp.is_none(), "an ARP crossed the underlay: {arp:?}");
    let (ok, text) = ping(Some(&vm2), &ip3);
    assert!(
        ok,
        "ping host 2 -> host 3 failed:\n{text}\n{}\n{}",
        hosts[1].sw.log_text(),
        hosts[2].sw.log_text()
    );
    let (ok, text) = ping(Some(&vm3), &ip2);
    assert!(ok, "ping host 3 -> host 2 failed:\n{text}");
    for h in &hosts[1..] {
        assert!(h.row("vm").arp_answered >= 1, "{:?}", h.row("vm"));
    }
    // IPv6 the same way: the neighbour solicitations are answered by the
    // local switch, none crosses the underlay.
    let (ip2_6, ip3_6) = (vms[0].3.clone(), vms[1].3.clone());
    let answered = hosts[1].row("vm").arp_answered;
    let ns = first_vxlan_packet(
        &uplinks[1],
        &pinging(&vm2, &ip3_6, 3),
        "inner[12:14] == b'\\x86\\xdd' and inner[20] == 58 and inner[54] == 135",
    );
    assert!(
        ns.is_none(),
        "a neighbour solicitation crossed the underlay: {ns:?}"
    );
    let (ok, text) = ping(Some(&vm2), &ip3_6);
    assert!(ok, "ping {ip2_6} -> {ip3_6} failed:\n{text}");
    assert!(
        hosts[1].row("vm").arp_answered > answered,
        "no solicitation answered: {:?}",
        hosts[1].row("vm")
    );
    // The tunnel's packets go to host 3's endpoint MAC and address.
    let (f, d) = echo_on_underlay(&uplinks[1], &vm2, &ip3);
    assert_eq!(
        (d.src_ip, d.dst_ip),
        (
            IpAddr::from([198, 51, 100, 2]),
            IpAddr::from([198, 51, 100, 3])
        )
    );
    assert_eq!(d.vni.get(), 1000);
    assert_eq!(&f[..12], &[2, 0xfe, 0, 0, 0, 3, 2, 0xfe, 0, 0, 0, 2]);

    let bytes = iperf3(Some(&vm3), Some(&vm2), &ip3, 2)
        .unwrap_or_else(|e| panic!("iperf3 host 2 -> host 3: {e}"));
    assert!(bytes > 1_000_000, "{bytes} bytes");
    eprintln!("TCP host 2 -> host 3 over VXLAN: {bytes} bytes in 2 s");

    // What the operator sees: the tunnel, the remote MAC it carries, its
    // counters; every host and its endpoint.
    let tunnels = ctl_json(&hosts[1].sw, None, &["tunnel", "list"]);
    let t = &tunnels[0];
    assert_eq!(
        (
            &t["port"],
            &t["remote_ip"],
            &t["vlan_keys"][0][1],
            &t["neutron"]
        ),
        (
            &"vxlan-c6336403".into(),
            &"198.51.100.3".into(),
            &1000.into(),
            &true.into()
        ),
        "{tunnels}"
    );
    assert_eq!(t["macs"][0][1], vms[1].1.as_str(), "{tunnels}");
    assert!(t["tx_packets"].as_u64().unwrap() > 1000, "{tunnels}");
    let hosts_seen = ctl_json(&hosts[1].sw, None, &["host", "list"]);
    let mut seen: Vec<(String, String, bool)> = hosts_seen
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_owned(),
                h["tunnel_ip"].as_str().unwrap_or("").to_owned(),
                h["this"].as_bool().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("host1".into(), "198.51.100.1".into(), false),
            ("host2".into(), "198.51.100.2".into(), true),
            ("host3".into(), "198.51.100.3".into(), false)
        ],
        "{hosts_seen}"
    );
    let metrics = hosts[1].sw.ok(&control_api::protocol::Request::Metrics);
    assert!(
        metrics.as_str().unwrap_or_default().contains(
            "ferroswitch_tunnel_remote_macs{port=\"vxlan-c6336403\",remote_ip=\"198.51.100.3\",vni=\"1000\"} 1"
        ),
        "{metrics}"
    );

    // A second network with ports on the same two hosts rides the same
    // tunnel port (one per remote host, a VNI per local VLAN, as the OVS
    // agent's br-tun), changed in place: the first network's traffic
    // goes on.
    network_with_subnet(&h1.sw, Some(h1.api), "cloud2", "cloud2-v4", "10.91.0.0/24");
    let mut second = Vec::new();
    for n in [2usize, 3] {
        let p = ctl_json(
            &h1.sw,
            Some(h1.api),
            &[
                "port",
                "create",
                &format!("vm{n}-eth1"),
                "--network",
                "cloud2",
                "--host",
                &format!("host{n}"),
            ],
        );
        let ip = p["fixed_ips"][0]["ip_address"].as_str().unwrap().to_owned();
        let (port_id, mac) = (
            p["id"].as_str().unwrap(),
            p["mac_address"].as_str().unwrap(),
        );
        let host = &hosts[n - 1];
        let (ns, veth) = (format!("fswt{id}cw{n}"), format!("fswt{id}cq{n}"));
        namespace_on_port(
            &host.sw, host.api, &mut nss, &ns, &veth, "vm2nd", port_id, mac,
        );
        in_ns(&ns, &["ip", "link", "set", "eth0", "mtu", "1450"]);
        in_ns(
            &ns,
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        );
        second.push((ns, ip));
    }
    hosts[1].wait_tunnels(&["vxlan-c6336403"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let vnis = loop {
        let t = ctl_json(&hosts[1].sw, None, &["tunnel", "list"]);
        let vnis: Vec<u64> = t[0]["vlan_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k[1].as_u64().unwrap())
            .collect();
        if vnis.len() == 2 || std::time::Instant::now() > deadline {
            break vnis;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut sorted = vnis.clone();
    sorted.sort();
    assert_eq!(sorted, [1000, 1001], "one port, both networks' VNIs");
    let (ok, text) = ping(Some(&second[0].0), &second[1].1);
    assert!(ok, "ping in the second network failed:\n{text}");
    let (f, d) = echo_on_underlay(&uplinks[1], &second[0].0, &second[1].1);
    assert_eq!(d.vni.get(), 1001, "{f:?}");
    let (ok, text) = ping(Some(&vm2), &ip3);
    assert!(ok, "the first network stopped:\n{text}");

    // Broadcasts from VM 2 (ARP for an address nobody holds): each
    // reaches VM 3 through the one tunnel; host 1 gets nothing.
    let (vm3_tx, h1_rx) = (hosts[2].row("vm").tx_packets, h1.row("uplink").rx_packets);
    // (From VM 2's own MAC and address: port security drops anything else.)
    let code = format!(
        "import socket, ipaddress\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind(('eth0', 0))\n\
         mac = open('/sys/class/net/eth0/address').read().strip()\n\
         m = bytes.fromhex(mac.replace(':', ''))\n\
         me = ipaddress.ip_address('{ip2}').packed\n\
         arp = b'\\x00\\x01\\x08\\x00\\x06\\x04\\x00\\x01' + m + me + bytes(6) + bytes([10, 90, 0, 250])\n\
         for _ in range(20):\n\
         \x20   s.send(b'\\xff' * 6 + m + b'\\x08\\x06' + arp)\n"
    );
    assert!(python_in(&vm2, &code).status().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let got = hosts[2].row("vm").tx_packets - vm3_tx;
    assert!(got >= 20, "VM 3 got {got} of the 20 broadcasts");
    assert_eq!(
        h1.row("uplink").rx_packets,
        h1_rx,
        "host 1 got tunnel traffic"
    );

    // A fourth endpoint that is the Linux kernel: a VXLAN device in a
    // namespace on the underlay, registered as "host4" (an in-process
    // Neutron holding its lease), with a port bound there whose MAC and
    // address the device takes. Host 2 opens a tunnel to it; ping both
    // ways; what each side sends parses field by field.
    let kns = format!("fswt{id}ck");
    nss.0.push((kns.clone(), String::new()));
    assert!(sh(&["ip", "netns", "add", &kns]));
    assert!(sh(&[
        "ip", "link", "add", "u4", "netns", &underlay, "type", "veth", "peer", "name", "k0",
        "netns", &kns
    ]));
    in_ns(&underlay, &["ip", "link", "set", "u4", "master", "br0"]);
    in_ns(&underlay, &["ip", "link", "set", "u4", "up"]);
    for cmd in [
        &["ip", "link", "set", "k0", "address", "02:fe:00:00:00:04"][..],
        &["ip", "addr", "add", "198.51.100.4/24", "dev", "k0"],
        &["ip", "link", "set", "k0", "up"],
        &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
    ] {
        in_ns(&kns, cmd);
    }
    // Whole packets with whole checksums on the wire, so the capture
    // below verifies the kernel's outer UDP checksum too.
    assert!(sh(&tunnel_packets_whole(&kns, "k0", &["tx", "off"])));
    let host4 = neutron::Neutron::open(neutron::NeutronConfig {
        listen: "127.0.0.1:0".into(),
        host: "host4".into(),
        database: edir.path("host4.db"),
        local_ip: Some("198.51.100.4".into()),
        dhcp: false,
        cluster: Some(neutron::ClusterConfig {
            etcd_endpoints: vec![etcd.client_url.clone()],
            host_ttl_secs: 2,
            ..Default::default()
        }),
        ..neutron::NeutronConfig::default()
    })
    .unwrap();
    host4
        .register_host(Some("02:fe:00:00:00:04".into()))
        .unwrap();
    let p4 = ctl_json(
        &h1.sw,
        Some(h1.api),
        &[
            "port",
            "create",
            "vm4-eth0",
            "--network",
            "cloud",
            "--host",
            "host4",
        ],
    );
    let (mac4, ip4) = (
        p4["mac_address"].as_str().unwrap().to_owned(),
        p4["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    for cmd in [
        &[
            "ip",
            "link",
            "add",
            "vxlan0",
            "address",
            &mac4,
            "type",
            "vxlan",
            "id",
            "1000",
            "local",
            "198.51.100.4",
            "dstport",
            "4789",
            "nolearning",
            "dev",
            "k0",
        ][..],
        &[
            "bridge",
            "fdb",
            "append",
            "00:00:00:00:00:00",
            "dev",
            "vxlan0",
            "dst",
            "198.51.100.2",
        ],
        &["ip", "link", "set", "vxlan0", "mtu", "1450"],
        &["ip", "addr", "add", &format!("{ip4}/24"), "dev", "vxlan0"],
        &["ip", "link", "set", "vxlan0", "up"],
    ] {
        in_ns(&kns, cmd);
    }
    hosts[1].wait_tunnels(&["vxlan-c6336403", "vxlan-c6336404"]);
    let (f, d) = echo_on_underlay(&uplinks[1], &vm2, &ip4);
    assert_eq!(
        (d.src_ip, d.dst_ip, d.vni.get()),
        (
            IpAddr::from([198, 51, 100, 2]),
            IpAddr::from([198, 51, 100, 4]),
            1000
        )
    );
    assert_eq!(
        &f[..6],
        &[2, 0xfe, 0, 0, 0, 4],
        "to the kernel endpoint's MAC"
    );
    let inner = &f[d.inner..d.inner + d.inner_len];
    assert_eq!(
        hex(&inner[..6]),
        mac4.replace(':', ""),
        "to VM 4's MAC, from l2population"
    );
    let (ok, text) = ping(Some(&vm2), &ip4);
    let show = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &kns])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        ok,
        "ping host 2 -> kernel VXLAN failed:\n{text}\n{}\n{}\n{}\n{}",
        hosts[1].sw.ok(&control_api::protocol::Request::PortStats),
        show(&["ip", "-s", "link"]),
        show(&["ip", "neigh"]),
        show(&["bridge", "fdb", "show", "dev", "vxlan0"])
    );
    // The kernel's own tunnel packets: its echo requests to VM 2.
    // (Its outer UDP checksum verified: the kernel's is whole on k0.)
    let (_, d) = echo_on_underlay(&uplinks[1], &kns, &ip2);
    assert_eq!(
        (d.src_ip, d.dst_ip, d.vni.get()),
        (
            IpAddr::from([198, 51, 100, 4]),
            IpAddr::from([198, 51, 100, 2]),
            1000
        )
    );
    let (ok, text) = ping(Some(&kns), &ip2);
    assert!(ok, "ping kernel VXLAN -> host 2 failed:\n{text}");

    // Host 3 killed: its lease runs out, its port goes DOWN and host 2
    // closes the tunnel. Restarted, everything comes back from etcd.
    // Meanwhile host 2 and the kernel endpoint never stop talking.
    let others = Command::new("ip")
        .args([
            "netns", "exec", &vm2, "ping", "-i", "0.05", "-c", "160", &ip4,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut hosts = hosts;
    let h3 = hosts.pop().unwrap();
    signal(h3.sw.child.id(), libc::SIGKILL);
    let CloudHost {
        mut sw,
        dir,
        api,
        cfg,
    } = h3;
    sw.child.wait().unwrap();
    wait_status(&hosts[0].sw, hosts[0].api, &vms[1].0, "DOWN");
    hosts[1].wait_tunnels(&["vxlan-c6336404"]);
    drop(sw);
    let sw = Switch::start(&dir, &cfg);
    let h3 = CloudHost { sw, dir, api, cfg };
    let args = [
        "port",
        "add",
        "br-int",
        "vm",
        "--type",
        "afpacket",
        "--iface",
        &format!("fswt{id}cp3"),
        "--iface-id",
        &vms[1].0,
    ];
    let (ok, _, err) = ctl(&h3.sw, None, &args);
    assert!(ok, "{err}");
    wait_status(&h3.sw, h3.api, &vms[1].0, "ACTIVE");
    hosts[1].wait_tunnels(&["vxlan-c6336403", "vxlan-c6336404"]);
    h3.wait_tunnels(&["vxlan-c6336402", "vxlan-c6336404"]);
    let (ok, text) = ping(Some(&vm2), &ip3);
    assert!(
        ok,
        "ping after host 3's restart failed:\n{text}\n{}",
        h3.sw.log_text()
    );
    let out = others.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("160 packets transmitted, 160 received"),
        "host 2 <-> host 4 stopped while host 3 died and came back: {text}"
    );
    // The VM's afpacket port deleted: the daemon's own attachment (the
    // vhost-user port os-vif would plug) comes back for its Neutron port.
    let (ok, _, err) = ctl(&hosts[1].sw, None, &["port", "del", "vm"]);
    assert!(ok, "{err}");
    wait_port(&hosts[1].sw, &format!("vhu{}", &vms[0].0[..11]), true);
    assert!(h3.sw.stop().success());
    for h in hosts {
        assert!(h.sw.stop().success());
    }
    drop(host4);
    drop(etcd);
}

/// Issue 16's etcd faults, on a three-member etcd cluster: one member
/// killed, then the leader. Two VMs (namespaces) on a vxlan network of
/// host 1 ping each other every 50 ms throughout, and a client creates
/// ports through host 1's API as fast as it answers. With two members
/// left the API keeps serving; with one (no quorum) it answers 503;
/// with the members back it serves again. No ping is lost, and every
/// port the API acknowledged is in the model afterwards, as a fresh
/// reader of etcd sees it.
#[test]
fn etcd_members_and_the_leader_die_and_nothing_acknowledged_is_lost() {
    let _g = serial();
    let edir = TempDir::new("faults-etcd");
    let mut members = etcd_member::Etcd::start_cluster(&edir.path(""), 3);
    let urls: Vec<String> = members.iter().map(|m| m.client_url.clone()).collect();
    let id = std::process::id() % 100_000;
    let mut nss = Namespaces(Vec::new());
    // An uplink nobody uses (the host's endpoint must live on a port),
    // its peer in a namespace that takes it along when deleted.
    let (up, peer_ns) = (format!("fswt{id}fu"), format!("fswt{id}fn"));
    nss.0.push((peer_ns.clone(), String::new()));
    assert!(sh(&["ip", "netns", "add", &peer_ns]));
    assert!(sh(&[
        "ip", "link", "add", &up, "type", "veth", "peer", "name", "eth0", "netns", &peer_ns
    ]));
    let urls_ref: Vec<&str> = urls.iter().map(String::as_str).collect();
    let h = CloudHost::start(1, &up, &urls_ref, 10);
    network_with_subnet(&h.sw, Some(h.api), "f", "f-v4", "10.91.0.0/24");
    let mut vms = Vec::new();
    for n in 0..2 {
        let p = ctl_json(
            &h.sw,
            Some(h.api),
            &[
                "port",
                "create",
                &format!("f{n}"),
                "--network",
                "f",
                "--host",
                "host1",
            ],
        );
        let (pid, mac) = (
            p["id"].as_str().unwrap(),
            p["mac_address"].as_str().unwrap(),
        );
        let ip = p["fixed_ips"][0]["ip_address"].as_str().unwrap().to_owned();
        let (ns, veth) = (format!("fswt{id}f{n}"), format!("fswt{id}g{n}"));
        namespace_on_port(
            &h.sw,
            h.api,
            &mut nss,
            &ns,
            &veth,
            &format!("vm{n}"),
            pid,
            mac,
        );
        let mut full = vec!["ip", "netns", "exec", &ns, "ip", "addr", "add"];
        let cidr = format!("{ip}/24");
        full.extend([cidr.as_str(), "dev", "eth0"]);
        assert!(sh(&full));
        vms.push((ns, ip));
    }
    let (ok, text) = ping(Some(&vms[0].0), &vms[1].1);
    assert!(ok, "{text}");
    let net_id = ctl_json(&h.sw, Some(h.api), &["network", "show", "f"])["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let pinger = Command::new("ip")
        .args([
            "netns", "exec", &vms[0].0, "ping", "-i", "0.05", "-w", "16", &vms[1].1,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let api = h.api;
    let writer = {
        let stop = stop.clone();
        let net_id = net_id.clone();
        std::thread::spawn(move || {
            // (when it was answered, status, port id if created)
            let mut log: Vec<(std::time::Instant, u16, Option<String>)> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = format!("{{\"port\": {{\"network_id\": \"{net_id}\"}}}}");
                let (status, text) =
                    try_http(api, "POST", "/v2.0/ports", Some(&body)).unwrap_or((0, String::new()));
                let id = (status == 201)
                    .then(|| serde_json::from_str::<serde_json::Value>(&text).ok())
                    .flatten()
                    .and_then(|v| v["port"]["id"].as_str().map(str::to_owned));
                log.push((std::time::Instant::now(), status, id));
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            log
        })
    };
    let sleep = |s: f64| std::thread::sleep(std::time::Duration::from_secs_f64(s));
    sleep(2.0);
    let follower = members.iter().position(|m| !m.is_leader()).unwrap();
    members[follower].kill();
    let follower_killed = std::time::Instant::now();
    sleep(3.0);
    let leader = (0..3)
        .find(|&i| i != follower && members[i].is_leader())
        .expect("a leader among the two left");
    members[leader].kill();
    let leader_killed = std::time::Instant::now();
    sleep(4.0);
    // Quorum returns with the first of the two (run() waits until the
    // member is healthy, which takes quorum).
    let restarting = std::time::Instant::now();
    members[follower].run();
    members[leader].run();
    let back = std::time::Instant::now();
    sleep(4.0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let log = writer.join().unwrap();
    let out = pinger.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);

    let answered = |from: std::time::Instant, to: std::time::Instant, code: u16| {
        log.iter()
            .filter(|(t, s, _)| *t > from && *t < to && *s == code)
            .count()
    };
    let far = back + std::time::Duration::from_secs(60);
    let with_two = answered(follower_killed, leader_killed, 201);
    let without_quorum = log
        .iter()
        .filter(|(t, _, _)| {
            *t > leader_killed + std::time::Duration::from_secs(2) && *t < restarting
        })
        .map(|(_, s, _)| *s)
        .collect::<Vec<u16>>();
    let after = answered(back + std::time::Duration::from_secs(2), far, 201);
    eprintln!(
        "etcd faults: {} creates; {with_two} acknowledged with two members, without quorum {:?}, {after} after",
        log.len(),
        without_quorum
    );
    assert!(
        with_two > 0,
        "no create went through with two members of three"
    );
    assert!(
        !without_quorum.is_empty() && without_quorum.iter().all(|&s| s == 503),
        "without quorum every create is a 503: {without_quorum:?}"
    );
    assert!(
        after > 0,
        "creates did not resume once the members were back"
    );
    let (tx, rx) = text
        .lines()
        .find_map(|l| {
            let (t, rest) = l.split_once(" packets transmitted, ")?;
            let r = rest.split_once(' ')?.0;
            Some((t.parse::<u32>().ok()?, r.parse::<u32>().ok()?))
        })
        .unwrap_or_else(|| panic!("no ping summary: {text}"));
    assert!(tx > 200, "{text}");
    assert_eq!(tx, rx, "forwarding stopped while etcd failed: {text}");

    // Every acknowledged port is in the model, as a fresh reader sees it.
    let fresh = neutron::Neutron::open(neutron::NeutronConfig {
        listen: "127.0.0.1:0".into(),
        host: "reader".into(),
        database: edir.path("reader.db"),
        dhcp: false,
        cluster: Some(neutron::ClusterConfig {
            etcd_endpoints: urls.clone(),
            ..Default::default()
        }),
        ..neutron::NeutronConfig::default()
    })
    .unwrap();
    let state = fresh.state();
    let acked: Vec<&String> = log.iter().filter_map(|(_, _, id)| id.as_ref()).collect();
    let lost: Vec<&&String> = acked
        .iter()
        .filter(|id| !state.ports.contains_key(**id))
        .collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    eprintln!("{} acknowledged ports, all in etcd", acked.len());
    drop(fresh);
    assert!(h.sw.stop().success());
    drop(members);
}
