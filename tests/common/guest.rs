//! Real Linux guests for end-to-end tests: QEMU boots a Debian kernel and a
//! busybox initramfs (built by `scripts/guest-image.sh`) with one
//! virtio-net device that is a vhost-user frontend, so the switch serves a
//! real guest kernel's driver, and a test runs `ping`, `udhcpc` or `iperf3`
//! inside it through the serial console.
//!
//! The image is built once per test process, cached across processes in
//! `/var/lib/ferroswitch/guest` (`FSW_GUEST_DIR` elsewhere); building it
//! installs QEMU, busybox-static, iperf3 and cpio with apt.
//!
//! Why it is run the way it is:
//! * TCG, not KVM: `/dev/kvm` on the test machines is a nested PVM on which
//!   a stock kernel stalls while booting; TCG boots in a few seconds (the
//!   kernel uncompressed, see [`kernel`]).
//! * `vectors=0` on the virtio-net device: QEMU 7.2 under TCG crashes
//!   (SIGSEGV in the vCPU thread) when a guest starts a vhost-user device
//!   with MSI-X; legacy INTx interrupts work.
//! * The guest's memory is a shared memfd: the switch maps it to reach the
//!   rings and buffers.
//! * QEMU owns the socket (`server=on`), as Nova sets it up, and the switch
//!   connects as a `dpdkvhostuserclient` port. QEMU does not start the guest
//!   until a backend has connected, so the switch must have (or be about to
//!   have) a client port at that path.
//! * QEMU runs on the cores the switch's PMD does not poll (core 1 in
//!   [`super::config_head`]): a busy TCG vCPU there would take turns with
//!   the PMD and stall forwarding.

use super::{signal, TempDir};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The cores QEMU may run on: all but the PMD's (core 1).
const GUEST_CPUS: &str = "0";

/// Where the image is built: `FSW_GUEST_DIR`, else the script's default.
fn image_dir() -> PathBuf {
    std::env::var_os("FSW_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/ferroswitch/guest"))
}

/// Builds (or finds cached) the kernel and initramfs, once per test
/// process; every caller gets the same answer, a failure with the
/// script's output.
fn image() -> &'static Result<PathBuf, String> {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/guest-image.sh");
        let dir = image_dir();
        let t0 = Instant::now();
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} {} failed ({}):\n{}{}",
                script.display(),
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        println!(
            "guest image: {} ready in {:.1} s",
            dir.display(),
            t0.elapsed().as_secs_f64()
        );
        Ok(dir)
    })
}

/// The kernel to boot: the uncompressed ELF when the image has one (QEMU
/// enters it through PVH, skipping the ~4 s a TCG guest spends
/// decompressing the bzImage), else the bzImage.
fn kernel(image: &Path) -> PathBuf {
    let elf = image.join("vmlinux");
    if elf.exists() {
        elf
    } else {
        image.join("vmlinuz")
    }
}

/// What the console printed so far ('\r' removed), and whether QEMU has
/// closed it (exited).
#[derive(Default)]
struct Console {
    text: String,
    closed: bool,
}

/// The console shared between the reader thread and the test.
#[derive(Default)]
struct Shared {
    console: Mutex<Console>,
    changed: Condvar,
}

/// One QEMU guest; stopped (poweroff, then SIGTERM, then SIGKILL, by the
/// PID spawned) on drop.
pub struct Guest {
    child: Child,
    /// The console's input (QEMU's stdin is the serial port).
    stdin: Option<ChildStdin>,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    /// Everything the console printed, as it came.
    pub log: PathBuf,
    /// QEMU's own messages (stderr).
    pub qemu_log: PathBuf,
    pub tag: String,
    started: Instant,
    /// Numbers the markers of [`Guest::run`], so an answer is never taken
    /// for another's.
    seq: u32,
}

impl Guest {
    /// Boots a guest whose one NIC (`eth0`, MAC `mac`) is a vhost-user
    /// device with QEMU as the server at `socket`. The console goes to
    /// `dir/guest-<tag>.log`. Returns at once: see [`Guest::wait_ready`].
    pub fn start(dir: &TempDir, tag: &str, socket: &Path, mac: &str) -> Guest {
        let image = match image() {
            Ok(d) => d,
            Err(e) => panic!("guest image: {e}"),
        };
        let log = dir.path(&format!("guest-{tag}.log"));
        let qemu_log = dir.path(&format!("guest-{tag}.qemu.log"));
        let log_file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err_file = std::fs::File::create(&qemu_log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", qemu_log.display()));
        let mut child = Command::new("taskset")
            .args(["-c", GUEST_CPUS, "qemu-system-x86_64"])
            .args(["-accel", "tcg", "-cpu", "max", "-m", "256", "-smp", "1"])
            .args(["-object", "memory-backend-memfd,id=mem,size=256M,share=on"])
            .args(["-numa", "node,memdev=mem"])
            .arg("-kernel")
            .arg(kernel(image))
            .arg("-initrd")
            .arg(image.join("initrd.img"))
            .args(["-append", "console=ttyS0 quiet panic=-1"])
            .args(["-no-reboot", "-nodefaults", "-display", "none"])
            .args([
                "-chardev",
                "stdio,id=con,signal=off",
                "-serial",
                "chardev:con",
            ])
            .arg("-chardev")
            .arg(format!(
                "socket,id=c0,path={},server=on,wait=off",
                socket.display()
            ))
            .args(["-netdev", "vhost-user,id=n0,chardev=c0"])
            .args([
                "-device",
                &format!("virtio-net-pci,netdev=n0,mac={mac},vectors=0"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err_file))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start qemu-system-x86_64 (scripts/guest-image.sh installs it): {e}")
            });
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("piped stdout");
        let shared = Arc::new(Shared::default());
        let reader = {
            let shared = Arc::clone(&shared);
            let mut log_file = log_file;
            std::thread::Builder::new()
                .name(format!("guest-{tag}-console"))
                .spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = match stdout.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let _ = log_file.write_all(&buf[..n]);
                        let chunk = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
                        let mut c = shared.console.lock().unwrap_or_else(|e| e.into_inner());
                        c.text.push_str(&chunk);
                        shared.changed.notify_all();
                    }
                    let mut c = shared.console.lock().unwrap_or_else(|e| e.into_inner());
                    c.closed = true;
                    shared.changed.notify_all();
                })
                .expect("spawn the console reader")
        };
        Guest {
            child,
            stdin,
            shared,
            reader: Some(reader),
            log,
            qemu_log,
            tag: tag.to_owned(),
            started: Instant::now(),
            seq: 0,
        }
    }

    /// The PID of QEMU.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the console printed so far ('\r' removed).
    pub fn console(&self) -> String {
        self.lock().text.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Console> {
        self.shared
            .console
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The console and QEMU's own messages, for a failure message.
    fn report(&self) -> String {
        format!(
            "--- console of guest {} ({}) ---\n{}\n--- qemu ---\n{}",
            self.tag,
            self.log.display(),
            self.console(),
            std::fs::read_to_string(&self.qemu_log).unwrap_or_default()
        )
    }

    /// Waits until `found` finds something in the console text from byte
    /// `from` on; panics (naming `what`, with the console) when `within`
    /// passes or QEMU exits first.
    fn wait_for<T>(
        &self,
        what: &str,
        from: usize,
        within: Duration,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        let mut c = self.lock();
        loop {
            if let Some(t) = found(c.text.get(from..).unwrap_or("")) {
                return t;
            }
            let now = Instant::now();
            if c.closed || now >= deadline {
                drop(c);
                panic!(
                    "guest {}: {} {}\n{}",
                    self.tag,
                    if self.lock().closed {
                        "QEMU exited before"
                    } else {
                        "timed out waiting for"
                    },
                    what,
                    self.report()
                );
            }
            c = self
                .shared
                .changed
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until `needle` appears on the console; returns the first line
    /// holding it.
    pub fn wait_console(&self, needle: &str, within: Duration) -> String {
        self.wait_for(&format!("{needle:?}"), 0, within, |text| {
            let at = text.find(needle)?;
            let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            Some(text[start..end].to_owned())
        })
    }

    /// Writes to the console (the guest's ttyS0).
    fn send(&mut self, s: &str) {
        let ok = self
            .stdin
            .as_mut()
            .is_some_and(|i| i.write_all(s.as_bytes()).and_then(|()| i.flush()).is_ok());
        if !ok {
            panic!(
                "guest {}: cannot write to the console\n{}",
                self.tag,
                self.report()
            );
        }
    }

    /// Waits until `/init` has brought eth0 up ("FSW-READY") and the shell
    /// answers; returns the time since QEMU was started. Input typed while
    /// the shell is still starting can be lost, so it is probed until it
    /// echoes back.
    pub fn wait_ready(&mut self, within: Duration) -> Duration {
        let deadline = Instant::now() + within;
        self.wait_console("FSW-READY", within);
        let ready = self.started.elapsed();
        for probe in 1.. {
            let from = self.lock().text.len();
            // `FSW""-SYNC`: the echoed input never matches the answer.
            self.send(&format!("echo FSW\"\"-SYNC-{probe}\n"));
            let answer = format!("FSW-SYNC-{probe}\n");
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.min(Duration::from_millis(500));
            let got = {
                let c = self.lock();
                let (c, _) = self
                    .shared
                    .changed
                    .wait_timeout_while(c, wait, |c| {
                        !c.closed && !c.text.get(from..).unwrap_or("").contains(&answer)
                    })
                    .unwrap_or_else(|e| e.into_inner());
                c.text.get(from..).unwrap_or("").contains(&answer)
            };
            if got {
                break;
            }
            if left <= wait {
                // One last wait that panics with the console.
                self.wait_for("the shell to answer", from, Duration::ZERO, |t| {
                    t.contains(&answer).then_some(())
                });
            }
        }
        ready
    }

    /// Runs `cmd` in the guest's shell and returns its exit status and its
    /// output (stdout and stderr, '\r' removed). `cmd` is one shell command
    /// line (it may end with `&`); it must not read the console. Panics with
    /// the console when it does not finish `within`.
    pub fn run(&mut self, cmd: &str, within: Duration) -> (i32, String) {
        self.seq += 1;
        let n = self.seq;
        let from = self.lock().text.len();
        // eval keeps `cmd` one command whatever it ends with; the markers
        // are split with "" so the echoed input never matches them.
        let quoted = cmd.replace('\'', r"'\''");
        self.send(&format!(
            "echo FSW\"\"-B-{n}; eval '{quoted}' 2>&1; echo FSW\"\"-E-{n} $?\n"
        ));
        let (begin, end) = (format!("FSW-B-{n}\n"), format!("FSW-E-{n} "));
        self.wait_for(&format!("the end of `{cmd}`"), from, within, |text| {
            let b = text.find(&begin)? + begin.len();
            let e = b + text[b..].find(&end)?;
            let rest = &text[e + end.len()..];
            let nl = rest.find('\n')?;
            let status = rest[..nl].trim().parse().ok()?;
            Some((status, text[b..e].to_owned()))
        })
    }

    /// Stops QEMU: `poweroff -f` in the guest, else SIGTERM, else SIGKILL,
    /// to the PID this guest spawned only.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Some(mut i) = self.stdin.take() {
                // ^C ends a foreground command first.
                let _ = i.write_all(b"\x03\npoweroff -f\n");
                let _ = i.flush();
            }
            let mut sent_term = false;
            let mut deadline = Instant::now() + Duration::from_secs(3);
            while matches!(self.child.try_wait(), Ok(None)) {
                if Instant::now() >= deadline {
                    if sent_term {
                        let _ = self.child.kill();
                        break;
                    }
                    signal(self.child.id(), libc::SIGTERM);
                    sent_term = true;
                    deadline = Instant::now() + Duration::from_secs(3);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.wait();
        self.stdin = None;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.stop();
    }
}
