//! Prometheus exposition: `GET /metrics` on `control.metrics_listen`.
//!
//! The HTTP side only forwards the scrape to the control thread (the same
//! request channel as the control socket), which renders the text from the
//! counters it owns: per-port counters, PMD cycles and drops, FDB sizes,
//! change-to-dataplane latency and, with the Neutron API on, its request
//! counts and latencies.
use control_api::protocol::{Request, Response};
use crossbeam::channel::{self, Sender};
use std::fmt::Write as _;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram with Prometheus buckets, plus exact samples kept for
/// percentiles (bounded: the newest `cap` samples).
#[derive(Debug, Clone)]
pub struct Latency {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
    recent: std::collections::VecDeque<f64>,
    cap: usize,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            buckets: [0; LATENCY_BUCKETS.len()],
            count: 0,
            sum: 0.0,
            recent: Default::default(),
            cap: 100_000,
        }
    }
}

impl Latency {
    pub fn record(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, &b) in LATENCY_BUCKETS.iter().enumerate() {
            if s <= b {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum += s;
        if self.recent.len() == self.cap {
            self.recent.pop_front();
        }
        self.recent.push_back(s);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0..=1) of the recent samples, in seconds.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.recent.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.recent.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let idx = ((v.len() as f64 - 1.0) * q.clamp(0.0, 1.0)).round() as usize;
        v.get(idx).copied()
    }
}

/// A histogram kept elsewhere: `le` bounds (seconds) with cumulative counts.
pub struct Buckets<'a> {
    pub bounds: &'a [f64],
    pub cumulative: &'a [u64],
    pub count: u64,
    pub sum: f64,
}

/// Builds the text exposition format.
#[derive(Default)]
pub struct Exposition {
    out: String,
    declared: std::collections::HashSet<String>,
}

fn labels(l: &[(&str, &str)]) -> String {
    if l.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Exposition {
    fn declare(&mut self, name: &str, kind: &str, help: &str) {
        if self.declared.insert(name.to_owned()) {
            let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
    }

    pub fn counter(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: u64) {
        self.declare(name, "counter", help);
        let _ = writeln!(self.out, "{name}{} {v}", labels(l));
    }

    pub fn gauge(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: f64) {
        self.declare(name, "gauge", help);
        let _ = writeln!(self.out, "{name}{} {v}", labels(l));
    }

    pub fn histogram(&mut self, name: &str, help: &str, l: &[(&str, &str)], h: &Latency) {
        self.declare(name, "histogram", help);
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            let le = b.to_string();
            let mut with = l.to_vec();
            with.push(("le", &le));
            let _ = writeln!(self.out, "{name}_bucket{} {}", labels(&with), h.buckets[i]);
        }
        let mut with = l.to_vec();
        with.push(("le", "+Inf"));
        let _ = writeln!(self.out, "{name}_bucket{} {}", labels(&with), h.count);
        let _ = writeln!(self.out, "{name}_sum{} {}", labels(l), h.sum);
        let _ = writeln!(self.out, "{name}_count{} {}", labels(l), h.count);
    }

    /// A histogram from cumulative bucket counts.
    pub fn histogram_raw(&mut self, name: &str, help: &str, l: &[(&str, &str)], h: &Buckets<'_>) {
        self.declare(name, "histogram", help);
        for (b, c) in h.bounds.iter().zip(h.cumulative) {
            let le = b.to_string();
            let mut with = l.to_vec();
            with.push(("le", &le));
            let _ = writeln!(self.out, "{name}_bucket{} {c}", labels(&with));
        }
        let mut with = l.to_vec();
        with.push(("le", "+Inf"));
        let _ = writeln!(self.out, "{name}_bucket{} {}", labels(&with), h.count);
        let _ = writeln!(self.out, "{name}_sum{} {}", labels(l), h.sum);
        let _ = writeln!(self.out, "{name}_count{} {}", labels(l), h.count);
    }

    /// The Neutron API's per-route request counts, errors and latencies.
    pub fn api_routes(&mut self, routes: &[neutron::RouteMetrics]) {
        let bounds: Vec<f64> = neutron::LATENCY_BUCKETS_MICROS
            .iter()
            .map(|&m| m as f64 / 1e6)
            .collect();
        for r in routes {
            let l = [("method", r.method.as_str()), ("route", r.route.as_str())];
            self.counter(
                "ferroswitch_api_requests_total",
                "Neutron API requests.",
                &l,
                r.count,
            );
            self.counter(
                "ferroswitch_api_errors_total",
                "Neutron API requests answered with a 4xx or 5xx.",
                &l,
                r.errors,
            );
            let h = Buckets {
                bounds: &bounds,
                cumulative: &r.buckets,
                count: r.count,
                sum: r.total_micros as f64 / 1e6,
            };
            self.histogram_raw(
                "ferroswitch_api_request_seconds",
                "Neutron API request latency.",
                &l,
                &h,
            );
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Scrapers need a connection or two; the rest of the descriptors are the
/// API's and the control socket's.
pub const METRICS_LIMITS: httpd::Limits = httpd::Limits {
    max_connections: 64,
    header_timeout: Duration::from_secs(10),
    body_timeout: Duration::from_secs(10),
    admit_wait: Duration::from_secs(1),
    grace: Duration::from_secs(2),
};

/// Serves `GET /metrics` on `listener` until `stop`; each scrape is answered by
/// the control thread through `tx`.
pub fn serve(
    listener: std::net::TcpListener,
    tx: Sender<(Request, Sender<Response>)>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("metrics runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = axum::Router::new().route(
                    "/metrics",
                    axum::routing::get(move || {
                        let tx = tx.clone();
                        async move {
                            let answer = tokio::task::spawn_blocking(move || {
                                let (rtx, rrx) = channel::bounded(1);
                                tx.send((Request::Metrics, rtx)).ok()?;
                                rrx.recv_timeout(Duration::from_secs(10)).ok()
                            })
                            .await
                            .ok()
                            .flatten();
                            match answer {
                                Some(Response {
                                    ok: true, result, ..
                                }) => (
                                    axum::http::StatusCode::OK,
                                    [(
                                        axum::http::header::CONTENT_TYPE,
                                        "text/plain; version=0.0.4",
                                    )],
                                    result.as_str().unwrap_or_default().to_owned(),
                                ),
                                _ => (
                                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                    [(axum::http::header::CONTENT_TYPE, "text/plain")],
                                    "vswitchd did not answer\n".to_owned(),
                                ),
                            }
                        }
                    }),
                );
                let shutdown = async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                httpd::serve(listener, app, METRICS_LIMITS, shutdown).await;
            });
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let mut e = Exposition::default();
        e.counter("x_total", "X.", &[("port", "p\"0")], 5);
        e.counter("x_total", "X.", &[("port", "p1")], 6);
        let mut h = Latency::default();
        h.record(Duration::from_micros(300));
        h.record(Duration::from_millis(3));
        e.histogram("lat_seconds", "L.", &[], &h);
        let t = e.finish();
        assert_eq!(t.matches("# TYPE x_total counter").count(), 1);
        assert!(t.contains("x_total{port=\"p\\\"0\"} 5\n"));
        assert!(t.contains("lat_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(t.contains("lat_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(t.contains("lat_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(t.contains("lat_seconds_count 2\n"));
        assert_eq!(h.quantile(1.0), Some(0.003));
        assert_eq!(h.quantile(0.0), Some(0.0003));
    }
}
