//! The HTTP front of the Neutron API and `/metrics`.
//!
//! `axum::serve` keeps a connection as long as its client likes and accepts
//! until the process runs out of file descriptors, so 500 silent clients
//! held the API and 1,100 took the control socket down with it. Here:
//! - a request head must arrive within `header_timeout` of the server
//!   waiting for it (this also ends idle keep-alive connections);
//! - a body must arrive within `body_timeout` ([`read_body`]);
//! - at most `max_connections` are served at once, and at the limit a new
//!   connection closes the *oldest idle* one (idle: waiting for or reading a
//!   request, not being answered), as nginx reuses its keep-alive
//!   connections. Silent clients cannot lock a new client out; a request
//!   being answered is never cut.
//! - the accept loop never waits for room: a connection over the limit
//!   waits in its own task (at most `max_connections` of them, then new
//!   ones are closed), so a burst of hundreds of silent clients is evicted
//!   in one round instead of one eviction after another in front of the
//!   next client.
use axum::body::{Body, Bytes};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

/// The longest request head (a Keystone token is a few kB).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// How one server bounds its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// From waiting for a request until its whole head has arrived.
    pub header_timeout: Duration,
    /// From the first to the last byte of a request body.
    pub body_timeout: Duration,
    /// How long a new connection waits for room when every connection is
    /// busy answering (none idle to close); then it is closed unanswered.
    pub admit_wait: Duration,
    /// How long shutdown lets requests in flight finish.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            admit_wait: Duration::from_secs(1),
            grace: Duration::from_secs(5),
        }
    }
}

/// What the server knows of one connection.
struct ConnState {
    /// Not inside a handler (or inside [`read_body`]): may be closed for room.
    idle: AtomicBool,
    /// Chosen to make room and not yet closed: not chosen twice.
    evicting: AtomicBool,
    /// Milliseconds since the server's start at the last change of `idle`.
    since_ms: AtomicU64,
    evict: Notify,
    body_timeout: Duration,
    epoch: Instant,
}

impl ConnState {
    fn set_idle(&self, idle: bool) {
        self.since_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.idle.store(idle, Ordering::Relaxed);
    }
}

/// The connection a request came on, in the request's extensions.
#[derive(Clone)]
pub struct Conn(Arc<ConnState>);

#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    fn insert(&self, id: u64, c: Arc<ConnState>) {
        if let Ok(mut m) = self.conns.lock() {
            m.insert(id, c);
        }
    }
    fn remove(&self, id: u64) {
        if let Ok(mut m) = self.conns.lock() {
            m.remove(&id);
        }
    }
    /// Asks the idle connection idle the longest to close; false when none is idle.
    fn evict_oldest_idle(&self) -> bool {
        let Ok(m) = self.conns.lock() else {
            return false;
        };
        let victim = m
            .values()
            .filter(|c| c.idle.load(Ordering::Relaxed) && !c.evicting.load(Ordering::Relaxed))
            .min_by_key(|c| c.since_ms.load(Ordering::Relaxed));
        match victim {
            Some(c) => {
                c.evicting.store(true, Ordering::Relaxed);
                // Stored as a permit if the task is not waiting yet.
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }
    fn len(&self) -> usize {
        self.conns.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves,
/// then lets requests in flight finish (up to `limits.grace`).
pub async fn serve<S>(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: S,
) where
    S: Future<Output = ()> + Send,
{
    let epoch = Instant::now();
    let room = Arc::new(Semaphore::new(limits.max_connections));
    // Connections over the limit waiting for room: bounded as well, so
    // the descriptors a flood of clients can hold are.
    let waiting = Arc::new(Semaphore::new(limits.max_connections));
    let registry = Arc::new(Registry::default());
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    let mut next_id = 0u64;
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors, typically: back off, never spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Room now, or a place among the connections waiting for it; when
        // even those are full the accept loop waits (a bounded time) for a
        // place, which holds back a flood without closing the next client.
        let admission = match room.clone().try_acquire_owned() {
            Ok(p) => Admission::Now(p),
            Err(_) => {
                let place = match waiting.clone().try_acquire_owned() {
                    Ok(place) => Ok(place),
                    Err(_) => {
                        tokio::time::timeout(limits.admit_wait, waiting.clone().acquire_owned())
                            .await
                            .map_err(|_| ())
                            .and_then(|r| r.map_err(|_| ()))
                    }
                };
                match place {
                    Ok(place) => Admission::Wait(place),
                    Err(()) => {
                        tracing::debug!(
                            "{} connections and as many waiting: closing a new one",
                            registry.len()
                        );
                        continue;
                    }
                }
            }
        };
        let id = next_id;
        next_id += 1;
        let registry = registry.clone();
        let router = router.clone();
        let room = room.clone();
        let closing = closing_rx.clone();
        tokio::spawn(async move {
            let permit = match admission {
                Admission::Now(p) => p,
                Admission::Wait(place) => {
                    let got = wait_for_room(&room, &registry, limits.admit_wait).await;
                    drop(place);
                    match got {
                        Some(p) => p,
                        None => {
                            tracing::debug!("all connections busy: closing a new one");
                            return;
                        }
                    }
                }
            };
            serve_connection(
                stream, id, permit, &registry, router, limits, epoch, closing,
            )
            .await;
        });
    }
    let _ = closing_tx.send(true);
    // Every connection task returns its permit when it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.grace, room.acquire_many(all)).await;
}

/// How an accepted connection gets its room.
enum Admission {
    Now(tokio::sync::OwnedSemaphorePermit),
    /// A place among the connections waiting for room.
    Wait(tokio::sync::OwnedSemaphorePermit),
}

/// Room for a connection over the limit: it asks one idle connection to
/// close (again every 10 ms while none is left to ask: those chosen for
/// earlier waiters may still be closing) and waits at most `within`, at
/// least 100 ms once it has asked one.
async fn wait_for_room(
    room: &Arc<Semaphore>,
    registry: &Registry,
    within: Duration,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let started = tokio::time::Instant::now();
    let acquire = room.clone().acquire_owned();
    tokio::pin!(acquire);
    let mut evicted = false;
    loop {
        if !evicted {
            evicted = registry.evict_oldest_idle();
        }
        let deadline = started
            + if evicted {
                within.max(Duration::from_millis(100))
            } else {
                within
            };
        tokio::select! {
            p = &mut acquire => return p.ok(),
            _ = tokio::time::sleep_until(deadline) => return None,
            _ = tokio::time::sleep(Duration::from_millis(10)), if !evicted => {}
        }
    }
}

/// Serves one admitted connection until it ends, is evicted while idle or
/// the server closes; `permit` is its room.
#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    stream: tokio::net::TcpStream,
    id: u64,
    permit: tokio::sync::OwnedSemaphorePermit,
    registry: &Registry,
    router: axum::Router,
    limits: Limits,
    epoch: Instant,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let _permit = permit;
    let _ = stream.set_nodelay(true);
    let state = Arc::new(ConnState {
        idle: AtomicBool::new(true),
        evicting: AtomicBool::new(false),
        since_ms: AtomicU64::new(epoch.elapsed().as_millis() as u64),
        evict: Notify::new(),
        body_timeout: limits.body_timeout,
        epoch,
    });
    registry.insert(id, state.clone());
    let in_handler = state.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let st = in_handler.clone();
        st.set_idle(false);
        req.extensions_mut().insert(Conn(st.clone()));
        let router = router.clone();
        async move {
            let resp = router.oneshot(req.map(Body::new)).await;
            st.set_idle(true);
            resp
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            // Dropping the connection closes its socket; one that became
            // busy since it was chosen finishes its request.
            _ = state.evict.notified() => {
                if state.idle.load(Ordering::Relaxed) {
                    break;
                }
                state.evicting.store(false, Ordering::Relaxed);
            }
            _ = async { let _ = closing.wait_for(|v| *v).await; } => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(limits.grace, conn.as_mut()).await;
                break;
            }
        }
    }
    registry.remove(id);
}

/// Why a request body was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the limit (declared or sent).
    TooLarge(usize),
    /// Not well-formed HTTP (a bad chunk, a connection closed early).
    Malformed(String),
    /// Not complete within the body timeout.
    TimedOut(Duration),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(n) => write!(f, "larger than {n} bytes"),
            BodyError::Malformed(why) => write!(f, "malformed: {why}"),
            BodyError::TimedOut(d) => write!(f, "not complete within {} s", d.as_secs()),
        }
    }
}

/// Body timeout for a request that did not come through [`serve`].
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a whole request body of at most `limit` bytes within the
/// connection's body timeout. While it waits the connection counts as idle
/// (a client trickling a body is as closable as a silent one).
pub async fn read_body(
    extensions: &axum::http::Extensions,
    body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    let conn = extensions.get::<Conn>();
    let timeout = conn.map_or(DEFAULT_BODY_TIMEOUT, |c| c.0.body_timeout);
    if let Some(c) = conn {
        c.0.set_idle(true);
    }
    let read = tokio::time::timeout(timeout, http_body_util::Limited::new(body, limit).collect());
    let r = match read.await {
        Err(_) => Err(BodyError::TimedOut(timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Ok(Err(e)) => Err(BodyError::Malformed(error_chain(e.as_ref()))),
    };
    if let Some(c) = conn {
        c.0.set_idle(false);
    }
    r
}

/// "outer: inner: innermost", as far as the sources go.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
