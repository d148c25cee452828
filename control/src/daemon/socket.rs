//! The control socket: one JSON request per connection line, answered by
//! the control thread (the single writer) through a channel.
use super::error::DaemonError;
use control_api::protocol::{Request, Response};
use crossbeam::channel::{self, Sender};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// A request and where its response goes.
pub(super) type Call = (Request, Sender<Response>);

/// Binds the socket, replacing a stale file a crashed daemon left (a live
/// daemon answers on it, and then this one refuses to start).
pub(super) fn bind_socket(path: &Path) -> Result<UnixListener, DaemonError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(DaemonError::Socket)?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(DaemonError::Socket(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is served by another running vswitchd", path.display()),
            )));
        }
        std::fs::remove_file(path).map_err(DaemonError::Socket)?;
    }
    let l = UnixListener::bind(path).map_err(DaemonError::Socket)?;
    l.set_nonblocking(true).map_err(DaemonError::Socket)?;
    Ok(l)
}

/// Accepts connections until `stop` and hands each request to the control
/// thread.
pub(super) fn serve_socket(listener: UnixListener, tx: Sender<Call>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = serve_conn(stream, &tx) {
                    warn!("control connection: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => {
                warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn serve_conn(stream: UnixStream, tx: &Sender<Call>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.by_ref().take(1 << 20).read_line(&mut line)?;
    let resp = match serde_json::from_str::<Request>(&line) {
        Ok(req) => {
            let (rtx, rrx) = channel::bounded(1);
            if tx.send((req, rtx)).is_err() {
                Response::err("daemon is stopping")
            } else {
                rrx.recv_timeout(Duration::from_secs(30))
                    .unwrap_or_else(|_| Response::err("daemon did not answer in 30 s"))
            }
        }
        Err(e) => Response::err(format!("request: {e}")),
    };
    let mut out = serde_json::to_string(&resp)?;
    out.push('\n');
    (&stream).write_all(out.as_bytes())
}
