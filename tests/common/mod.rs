//! Shared pieces of the end-to-end tests: run the real `vswitchd` binary
//! with a generated config on DPDK virtual devices, talk to it over its
//! control socket, and read and write pcap files.
#![allow(dead_code)]

pub mod guest;

use control_api::protocol::{call, PortStatsRow, Request, Response};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One PMD core on a two-core machine: one switch at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `target/<profile>/` holding the test binary's sibling executables.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} missing: build with `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("fsw-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `vswitchd`, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Switch {
    pub child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
}

/// The config head every test uses: no hugepages needed, PMD on core 1.
pub fn config_head(dir: &TempDir, tag: &str) -> String {
    format!(
        "[eal]\nargs = [\"--no-pci\", \"--no-huge\", \"-m\", \"256\", \"--no-shconf\", \"--file-prefix\", \"fswt-{tag}-{pid}\"]\n\
         [dataplane]\npmd_cores = [1]\ncontrol_core = 0\n\
         [control]\nsocket = \"{sock}\"\nstate_dir = \"{state}\"\n",
        pid = std::process::id(),
        sock = dir.path("ctl.sock").display(),
        state = dir.path("state").display()
    )
}

impl Switch {
    pub fn start(dir: &TempDir, config: &str) -> Switch {
        Switch::start_with(dir, config, &[], &dir.path("ctl.sock"))
    }

    /// As [`Switch::start`], with `vswitchd` run by the command `wrapper`
    /// (`["prlimit", "--nofile=1024:1024"]`, a shell setting the umask) and
    /// its control socket at `socket`.
    pub fn start_with(dir: &TempDir, config: &str, wrapper: &[&str], socket: &Path) -> Switch {
        let cfg = dir.path("vswitchd.toml");
        std::fs::write(&cfg, config).unwrap();
        let log = dir.path("vswitchd.log");
        let mut cmd = match wrapper {
            [] => Command::new(bin("vswitchd")),
            [first, rest @ ..] => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin("vswitchd"));
                c
            }
        };
        let child = cmd
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::options().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .expect("spawn vswitchd");
        let mut sw = Switch {
            child,
            socket: socket.to_owned(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = call(&sw.socket, &Request::PortList, Duration::from_secs(2)) {
                assert!(r.ok);
                break;
            }
            if let Ok(Some(st)) = sw.child.try_wait() {
                panic!(
                    "vswitchd exited with {st}: {}",
                    std::fs::read_to_string(&sw.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "vswitchd not up: {}",
                sw.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sw
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the daemon's log holds `needle`, `within` at most.
    pub fn wait_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log_text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn request(&self, req: &Request) -> Response {
        call(&self.socket, req, Duration::from_secs(30)).expect("control socket")
    }

    pub fn ok(&self, req: &Request) -> serde_json::Value {
        let r = self.request(req);
        assert!(r.ok, "{req:?} failed: {:?}", r.error);
        r.result
    }

    pub fn stats(&self) -> Vec<PortStatsRow> {
        serde_json::from_value(self.ok(&Request::PortStats)).unwrap()
    }

    pub fn port(&self, name: &str) -> PortStatsRow {
        self.stats()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no port {name}"))
    }

    /// Waits until `cond` holds on the port counters.
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut(&[PortStatsRow]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.stats();
            if cond(&s) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {s:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait: ports are closed, pcap files complete. Returns the
    /// exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        if let Ok(Some(st)) = self.child.try_wait() {
            return st;
        }
        // SAFETY-free: libc::kill through the libc crate is an FFI call; it
        // is in a test, signalling the child we spawned by its PID.
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.terminate();
    }
}

pub fn signal(pid: u32, sig: i32) {
    // Through the `kill` command to keep the tests free of unsafe code.
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

pub const A: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0x0a];
pub const B: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0x0b];
pub const C: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0x0c];
pub const BCAST: [u8; 6] = [0xff; 6];

/// An Ethernet frame (IPv4/UDP payload with `seq` in it), optionally
/// 802.1Q-tagged, padded to 60 bytes.
pub fn frame(dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, seq: u32) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 1, 1,
    ];
    let csum = ip_checksum(&ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0x04, 0x00, 0x13, 0x89, 0, 8, 0, 0]);
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < 60 {
        f.push(0);
    }
    f
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Outer VLAN id of a frame, if tagged.
pub fn vid(f: &[u8]) -> Option<u16> {
    (f.len() >= 16 && f[12..14] == [0x81, 0x00])
        .then(|| u16::from_be_bytes([f[14], f[15]]) & 0x0fff)
}

pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}

pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(data.len() >= 24, "{}: no pcap header", path.display());
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2c3d4 || magic == 0xa1b23c4d,
        "{}: bad magic {magic:x}",
        path.display()
    );
    let mut frames = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let caplen = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16;
        assert!(off + caplen <= data.len(), "truncated pcap record");
        frames.push(data[off..off + caplen].to_vec());
        off += caplen;
    }
    frames
}

/// A real etcd member for the multi-host tests, shared with the Neutron
/// crate's own tests.
#[path = "../../control/neutron/tests/neutron/etcd_member.rs"]
pub mod etcd_member;
/// A TCP port free on loopback right now.
#[allow(unused_imports)] // not every test binary takes a port
pub use etcd_member::free_port;

/// A plain HTTP/1.1 GET on loopback; returns (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Runs `vswitchctl` with `args` against `sw`'s socket and the Neutron API
/// at `api_port` (if any); returns (success, stdout, stderr).
pub fn ctl(sw: &Switch, api_port: Option<u16>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(bin("vswitchctl"));
    cmd.arg("--socket").arg(&sw.socket);
    if let Some(p) = api_port {
        cmd.arg("--api").arg(format!("http://127.0.0.1:{p}"));
    }
    let out = cmd.args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// As [`ctl`], expecting success and JSON output.
pub fn ctl_json(sw: &Switch, api_port: Option<u16>, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (ok, out, err) = ctl(sw, api_port, &a);
    assert!(ok, "vswitchctl {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("vswitchctl {args:?}: {e}: {out}"))
}

/// A plain HTTP/1.1 request on loopback with an optional JSON body (sent
/// with `Content-Type: application/json`, `X-Auth-Token: notused`,
/// `Content-Length` and `Connection: close`); returns (status, body). A
/// chunked reply is de-chunked; status 0 when the reply is not HTTP.
pub fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    try_http(port, method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// As [`http`], but a connection or I/O failure is returned, not a panic
/// (for requests that may race a dying daemon).
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    try_http_as(port, None, method, path, body)
}

/// As [`try_http`], as project `project` (`X-Project-Id`, what
/// keystonemiddleware sets from a token) when given.
pub fn try_http_as(
    port: u16,
    project: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    let project = project
        .map(|p| format!("X-Project-Id: {p}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nX-Auth-Token: notused\r\n{project}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut payload = raw[split + 4..].to_vec();
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    };
    if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        let mut out = Vec::new();
        let mut rest = &payload[..];
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("truncated chunk size"))?;
            let size_line = String::from_utf8_lossy(&rest[..eol]).into_owned();
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size + 2 {
                return Err(bad("truncated chunk"));
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        payload = out;
    } else if let Some(n) = header("content-length").and_then(|n| n.parse::<usize>().ok()) {
        if payload.len() < n {
            return Err(bad("body shorter than Content-Length"));
        }
        payload.truncate(n);
    }
    Ok((status, String::from_utf8_lossy(&payload).into_owned()))
}

/// Runs `vswitchctl` as [`ctl`] does; returns (exit code, stdout, stderr).
pub fn ctl_code(sw: &Switch, api_port: Option<u16>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(bin("vswitchctl"));
    cmd.arg("--socket").arg(&sw.socket);
    if let Some(p) = api_port {
        cmd.arg("--api").arg(format!("http://127.0.0.1:{p}"));
    }
    let out = cmd.args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A daemon config with the Neutron API on `api`, metrics on `metrics`, a
/// SQLite file in `dir`, host "compute-1", tenant/provider VLANs
/// physnet1:3000-3099 and physnet1's uplink: switch port "uplink" of
/// bridge "br-int" (a net_pcap port writing what it sends to uplink-tx.pcap).
pub fn neutron_config(dir: &TempDir, tag: &str, api: u16, metrics: u16) -> String {
    format!(
        "{head}metrics_listen = \"127.0.0.1:{metrics}\"\n\
         [neutron]\nlisten = \"127.0.0.1:{api}\"\ndatabase = \"{db}\"\nhost = \"compute-1\"\n\
         network_vlan_ranges = [\"physnet1:3000:3099\"]\nbridge_mappings = [\"physnet1:uplink\"]\n\
         vhost_socket_dir = \"{vhu}\"\n\
         [[bridges]]\nname = \"br-int\"\n\
         [[bridges.ports]]\nname = \"uplink\"\ndevargs = \"net_pcap0,tx_pcap={up}\"\n",
        head = config_head(dir, tag),
        db = dir.path("neutron.db").display(),
        vhu = dir.path("vhu").display(),
        up = dir.path("uplink-tx.pcap").display(),
    )
}

/// A "VM": a separate `dpdk-testpmd` whose `net_virtio_user` port is a real
/// vhost-user frontend (the guest's virtio-net driver), forwarding with
/// macswap so every frame the switch sends it comes back with the MACs
/// swapped. Stopped (SIGTERM, then SIGKILL) on drop.
pub struct Vm {
    pub child: Child,
    pub log: PathBuf,
    /// The VM's EAL file prefix: its runtime directory is removed after it.
    prefix: String,
}

impl Vm {
    /// `server`: the VM owns the socket (QEMU's `server=on`, the switch's
    /// `dpdkvhostuserclient`); else it connects to the switch's socket.
    pub fn start(dir: &TempDir, tag: &str, socket: &Path, server: bool) -> Vm {
        Vm::start_with(dir, tag, socket, server, "macswap", 1)
    }

    /// As [`Vm::start`] with a testpmd forwarding mode (macswap, txonly,
    /// io, ...) and `queues` queue pairs.
    pub fn start_with(
        dir: &TempDir,
        tag: &str,
        socket: &Path,
        server: bool,
        fwd: &str,
        queues: u16,
    ) -> Vm {
        let log = dir.path(&format!("vm-{tag}.log"));
        let vdev = format!(
            "net_virtio_user0,path={},queues={queues}{}",
            socket.display(),
            if server { ",server=1" } else { "" }
        );
        let q = queues.to_string();
        let prefix = format!("fswvm-{tag}-{}", std::process::id());
        // Line-buffered, so the log shows when forwarding starts.
        let child = Command::new("stdbuf")
            .args(["-oL", "dpdk-testpmd"])
            .args(["--lcores", "0@0,1@0", "--no-pci", "--in-memory"])
            .args(["--single-file-segments", "-m", "256"])
            .args(["--file-prefix", &prefix])
            .args(["--vdev", &vdev, "--"])
            .args(["--forward-mode", fwd, "--auto-start", "--nb-cores", "1"])
            .args(["--rxq", &q, "--txq", &q])
            // Keeps testpmd running without a terminal on stdin.
            .args(["--stats-period", "3600", "--total-num-mbufs", "8192"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::options().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .expect("spawn dpdk-testpmd (scripts/setup.sh installs it)");
        Vm { child, log, prefix }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the guest side has set its port up and forwards (a
    /// guest driver resets the device once while it starts: rings the
    /// switch fills before that are thrown away).
    pub fn wait_forwarding(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            assert!(
                !log.contains("No probed ethernet devices"),
                "the VM's virtio-user port failed:\n{log}"
            );
            if log.contains("start packet forwarding") {
                return;
            }
            assert!(self.alive(), "the VM exited:\n{log}");
            assert!(Instant::now() < deadline, "the VM does not forward:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if self.alive() {
            signal(self.child.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.alive() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Even with --in-memory the EAL leaves its (empty) runtime directory.
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The switch port `name` as `port list` shows it, if there is one.
pub fn find_port(sw: &Switch, name: &str) -> Option<control_api::protocol::PortInfo> {
    let list: Vec<control_api::protocol::PortInfo> =
        serde_json::from_value(sw.ok(&Request::PortList)).unwrap();
    list.into_iter().find(|p| p.name == name)
}

/// The switch port `name` as `port list` shows it.
pub fn port_info(sw: &Switch, name: &str) -> control_api::protocol::PortInfo {
    find_port(sw, name).unwrap_or_else(|| panic!("no port {name}"))
}

/// Waits until the switch port `name` exists (`present`) or is gone;
/// returns it when it exists.
pub fn wait_port(
    sw: &Switch,
    name: &str,
    present: bool,
) -> Option<control_api::protocol::PortInfo> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = find_port(sw, name);
        if p.is_some() == present {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "switch port {name} {}",
            if present { "never appears" } else { "stays" }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until port `name` is in `state` (ACTIVE / DOWN).
pub fn wait_state(sw: &Switch, name: &str, state: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let p = port_info(sw, name);
        if p.state == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "port {name} stays {} (want {state}): {p:?}\n{}",
            p.state,
            sw.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the Neutron port `port` has `status` (ACTIVE / DOWN) in the API.
pub fn wait_status(sw: &Switch, api: u16, port: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let p = ctl_json(sw, Some(api), &["port", "show", port]);
        if p["status"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Neutron port {port} stays {} (want {want})\n{}",
            p["status"],
            sw.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates security group "ssh" whose one rule admits ingress TCP 22 from
/// anywhere (a new group allows all egress too); returns the rule.
pub fn ssh_only_group(sw: &Switch, api: u16) -> serde_json::Value {
    ctl_json(sw, Some(api), &["security-group", "create", "ssh"]);
    ctl_json(
        sw,
        Some(api),
        &[
            "security-group",
            "rule",
            "create",
            "ssh",
            "--ingress",
            "--protocol",
            "tcp",
            "--dst-port",
            "22",
        ],
    )
}

/// The value of `key` in the last line of `out` that starts with `tag`,
/// a line of `key=value` words as the DHCP clients' scripts print a lease
/// ("LEASE ip=... mask=... staticroutes=<routes, last>"): `staticroutes`
/// runs to the end of the line, since it holds spaces.
pub fn lease_field<'a>(out: &'a str, tag: &str, key: &str) -> &'a str {
    let line = out.lines().rev().find(|l| l.starts_with(tag)).unwrap_or("");
    if key == "staticroutes" {
        return line.split_once("staticroutes=").map_or("", |(_, r)| r);
    }
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("")
}

/// Creates network `net` and its IPv4 subnet `subnet` of `cidr` through
/// `vswitchctl` (the Neutron API at `api`, or the config's).
pub fn network_with_subnet(sw: &Switch, api: Option<u16>, net: &str, subnet: &str, cidr: &str) {
    ctl_json(sw, api, &["network", "create", net]);
    ctl_json(
        sw,
        api,
        &[
            "subnet",
            "create",
            subnet,
            "--network",
            net,
            "--subnet-range",
            cidr,
        ],
    );
}
