//! The control socket: one JSON request line per connection, answered by
//! the control thread (the single writer) through a channel.
//!
//! Each client has its own thread, so one slow client delays no other; the
//! whole request line must arrive within [`REQUEST_DEADLINE`]; at most
//! [`MAX_CLIENTS`] are served at once, and at the limit a new client closes
//! the one that has been sending its request the longest (a client waiting
//! for its answer is never cut).
use super::error::DaemonError;
use super::perms;
use control_api::protocol::{Request, Response};
use crossbeam::channel::{self, Sender};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// A request and where its response goes.
pub(super) type Call = (Request, Sender<Response>);

/// Clients served at once.
pub const MAX_CLIENTS: usize = 64;
/// From connecting to the end of the request line.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(3);
/// The longest request line.
/// (32 MiB: `add-flows` of 100,000 flows is one request.)
pub const MAX_REQUEST: usize = 32 << 20;
/// How long the control thread may take to answer.
const ANSWER_DEADLINE: Duration = Duration::from_secs(30);
/// How long a client may take to read its answer.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// Binds the socket (0660, group `gid`), replacing a stale file a crashed
/// daemon left (a live daemon answers on it, and then this one refuses to
/// start). It is bound under a temporary name and renamed into place once
/// its mode is set, so it is never reachable with the umask's mode.
pub(super) fn bind_socket(
    path: &Path,
    gid: Option<u32>,
) -> Result<(UnixListener, SocketFile), DaemonError> {
    perms::parent_dirs(path, perms::DIR_PRIVATE, gid).map_err(DaemonError::Socket)?;
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(DaemonError::Socket(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is served by another running vswitchd", path.display()),
            )));
        }
        std::fs::remove_file(path).map_err(DaemonError::Socket)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let l = UnixListener::bind(&tmp).map_err(DaemonError::Socket)?;
    let placed = perms::own_socket(&tmp, gid).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(DaemonError::Socket(e));
    }
    let file = SocketFile(path.to_owned());
    l.set_nonblocking(true).map_err(DaemonError::Socket)?;
    Ok((l, file))
}

/// The socket's file, removed when the daemon stops or fails to start.
pub(super) struct SocketFile(std::path::PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One client being served.
struct Client {
    /// To close it from the accept loop.
    stream: UnixStream,
    /// Still sending its request (may be closed to make room).
    reading: Arc<AtomicBool>,
    since: Instant,
}

#[derive(Default)]
struct Clients(Mutex<HashMap<u64, Client>>);

impl Clients {
    fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }
    fn insert(&self, id: u64, c: Client) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(id, c);
        }
    }
    fn remove(&self, id: u64) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&id);
        }
    }
    /// Closes the client that has been sending its request the longest.
    fn evict_oldest_reading(&self) -> bool {
        let Ok(m) = self.0.lock() else {
            return false;
        };
        let victim = m
            .values()
            .filter(|c| c.reading.load(Ordering::Relaxed))
            .min_by_key(|c| c.since);
        match victim {
            Some(c) => {
                // Its thread's read returns at once and the thread ends.
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
                true
            }
            None => false,
        }
    }
}

/// Accepts connections until `stop`, a thread per client.
pub(super) fn serve_socket(listener: UnixListener, tx: Sender<Call>, stop: Arc<AtomicBool>) {
    let clients = Arc::new(Clients::default());
    let mut next_id = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => {
                // Out of descriptors, typically: back off, never spin.
                warn!("control socket accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if clients.len() >= MAX_CLIENTS {
            clients.evict_oldest_reading();
            let waited = Instant::now();
            while clients.len() >= MAX_CLIENTS && waited.elapsed() < Duration::from_secs(1) {
                std::thread::sleep(Duration::from_millis(2));
            }
            if clients.len() >= MAX_CLIENTS {
                debug!("{MAX_CLIENTS} control clients, all waiting for answers: refusing one");
                let _ = refuse(stream, "too many control clients; try again");
                continue;
            }
        }
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let id = next_id;
        next_id += 1;
        let reading = Arc::new(AtomicBool::new(true));
        clients.insert(
            id,
            Client {
                stream: handle,
                reading: reading.clone(),
                since: Instant::now(),
            },
        );
        let (tx, clients2) = (tx.clone(), clients.clone());
        let spawned = std::thread::Builder::new()
            .name("ctl-client".into())
            .spawn(move || {
                if let Err(e) = serve_client(stream, &tx, &reading) {
                    debug!("control client: {e}");
                }
                clients2.remove(id);
            });
        if let Err(e) = spawned {
            warn!("control socket: cannot start a client thread: {e}");
            clients.remove(id);
        }
    }
}

fn refuse(stream: UnixStream, why: &str) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(Duration::from_millis(100)))?;
    write_response(&stream, &Response::err(why))
}

/// Reads one request line within [`REQUEST_DEADLINE`] of connecting.
fn read_request(stream: &UnixStream) -> std::io::Result<Vec<u8>> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no complete request within {REQUEST_DEADLINE:?}"),
            ));
        }
        stream.set_read_timeout(Some(left))?;
        let n = match (&*stream).read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            // A client that wrote its line and shut down its side.
            return Ok(line);
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&buf[..end]);
            return Ok(line);
        }
        line.extend_from_slice(&buf[..n]);
        if line.len() > MAX_REQUEST {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("request longer than {MAX_REQUEST} bytes"),
            ));
        }
    }
}

fn serve_client(
    stream: UnixStream,
    tx: &Sender<Call>,
    reading: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(WRITE_DEADLINE))?;
    let resp = match read_request(&stream) {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Response::err(e.to_string()),
        Err(e) => return Err(e),
        Ok(line) => {
            reading.store(false, Ordering::Relaxed);
            match serde_json::from_slice::<Request>(&line) {
                Ok(req) => {
                    let (rtx, rrx) = channel::bounded(1);
                    match tx.send_timeout((req, rtx), ANSWER_DEADLINE) {
                        Err(channel::SendTimeoutError::Disconnected(_)) => {
                            Response::err("daemon is stopping")
                        }
                        Err(channel::SendTimeoutError::Timeout(_)) => {
                            Response::err("daemon did not take the request in 30 s")
                        }
                        Ok(()) => rrx
                            .recv_timeout(ANSWER_DEADLINE)
                            .unwrap_or_else(|_| Response::err("daemon did not answer in 30 s")),
                    }
                }
                Err(e) => Response::err(format!("request: {e}")),
            }
        }
    };
    write_response(&stream, &resp)
}

fn write_response(stream: &UnixStream, resp: &Response) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(resp)?;
    out.push(b'\n');
    (&*stream).write_all(&out)
}
