//! A real etcd member (Debian's `etcd-server`) on loopback ports for the
//! tests: the Neutron crate's (`etcd.rs`) and the daemon's
//! (`tests/neutron_dataplane.rs`, which includes this file).
use neutron::ClusterConfig;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One etcd member on loopback, killed on drop.
pub struct Etcd {
    child: Option<Child>,
    pub client_url: String,
    peer_url: String,
    data: PathBuf,
    tls: Option<Pki>,
    /// Its name in the cluster, and the cluster's `name=peer` list.
    name: String,
    initial_cluster: Option<String>,
}

/// A CA, the server's certificate (for 127.0.0.1) and a client's, made
/// with openssl for one test.
pub struct Pki {
    pub ca: PathBuf,
    server: (PathBuf, PathBuf),
    pub client: (PathBuf, PathBuf),
}

impl Pki {
    fn make(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=ferroswitch-test-ca",
        ]);
        for (name, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                &format!("{name}.pem"),
                "-extfile",
                &format!("{name}.ext"),
            ]);
        }
        let pair = |n: &str| (dir.join(format!("{n}.pem")), dir.join(format!("{n}.key")));
        Pki {
            ca: dir.join("ca.pem"),
            server: pair("server"),
            client: pair("client"),
        }
    }
}

impl Etcd {
    /// A member not started yet: `name`, its data and log at `data`,
    /// loopback ports of its own (clients over TLS when `tls`).
    fn member(name: String, data: PathBuf, tls: Option<Pki>) -> Etcd {
        let scheme = if tls.is_some() { "https" } else { "http" };
        Etcd {
            child: None,
            client_url: format!("{scheme}://127.0.0.1:{}", free_port()),
            peer_url: format!("http://127.0.0.1:{}", free_port()),
            data,
            tls,
            name,
            initial_cluster: None,
        }
    }

    /// Its data and log go under `dir`.
    pub fn start(dir: &Path) -> Etcd {
        let mut e = Etcd::member("m1".into(), dir.join("etcd"), None);
        e.run();
        e
    }

    /// A cluster of `n` members (`m1`..), started together; each member's
    /// data and log under `dir`.
    pub fn start_cluster(dir: &Path, n: usize) -> Vec<Etcd> {
        let mut members: Vec<Etcd> = (1..=n)
            .map(|i| Etcd::member(format!("m{i}"), dir.join(format!("etcd{i}")), None))
            .collect();
        let all: Vec<String> = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect();
        for m in &mut members {
            m.initial_cluster = Some(all.join(","));
            m.spawn();
        }
        for m in &members {
            m.wait_healthy();
        }
        members
    }

    /// Whether this member is the cluster's leader now (etcdctl).
    pub fn is_leader(&self) -> bool {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &self.client_url,
                "endpoint",
                "status",
                "-w",
                "json",
            ])
            .output();
        let Ok(out) = out else { return false };
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let s = &v[0]["Status"];
        s["leader"].as_u64().is_some() && s["leader"] == s["header"]["member_id"]
    }

    /// Clients must come over TLS with a certificate of its CA
    /// (`--client-cert-auth`).
    pub fn start_tls(dir: &Path) -> Etcd {
        let mut e = Etcd::member(
            "m1".into(),
            dir.join("etcd"),
            Some(Pki::make(&dir.join("pki"))),
        );
        e.run();
        e
    }

    /// Starts (or starts again, on the same data) the member and waits
    /// until it answers.
    pub fn run(&mut self) {
        self.spawn();
        self.wait_healthy();
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::File::create(self.data.with_extension("log")).unwrap();
        let mut cmd = Command::new("etcd");
        if let Some(t) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&t.server.0)
                .arg("--key-file")
                .arg(&t.server.1)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth");
        }
        let child = cmd
            .args(["--name", &self.name, "--data-dir"])
            .arg(&self.data)
            .args(["--listen-client-urls", &self.client_url])
            .args(["--advertise-client-urls", &self.client_url])
            .args(["--listen-peer-urls", &self.peer_url])
            .args(["--initial-advertise-peer-urls", &self.peer_url])
            .args([
                "--initial-cluster",
                &self
                    .initial_cluster
                    .clone()
                    .unwrap_or_else(|| format!("{}={}", self.name, self.peer_url)),
            ])
            .args(["--max-txn-ops", "10000", "--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd (Debian's etcd-server; scripts/setup.sh installs it)");
        self.child = Some(child);
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.healthy() {
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy: {}",
                std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// etcd's `/health` says so (HTTP/1.0 by hand: no client dependency;
    /// over TLS, etcdctl).
    fn healthy(&self) -> bool {
        if let Some(t) = &self.tls {
            return Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg("--endpoints")
                .arg(&self.client_url)
                .arg("--cacert")
                .arg(&t.ca)
                .arg("--cert")
                .arg(&t.client.0)
                .arg("--key")
                .arg(&t.client.1)
                .args(["endpoint", "health"])
                .output()
                .is_ok_and(|o| o.status.success());
        }
        let addr = self.client_url.trim_start_matches("http://");
        let Ok(mut s) = TcpStream::connect(addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut body = String::new();
        s.write_all(b"GET /health HTTP/1.0\r\n\r\n").is_ok()
            && s.read_to_string(&mut body).is_ok()
            && body.contains("\"health\":\"true\"")
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn cluster(&self) -> ClusterConfig {
        ClusterConfig {
            etcd_endpoints: vec![self.client_url.clone()],
            timeout_ms: 1000,
            ca_file: self.tls.as_ref().map(|t| t.ca.clone()),
            cert_file: self.tls.as_ref().map(|t| t.client.0.clone()),
            key_file: self.tls.as_ref().map(|t| t.client.1.clone()),
            ..ClusterConfig::default()
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
