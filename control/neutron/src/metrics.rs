//! Request counts and latency per (method, route) for the daemon's metrics
//! endpoint. One short lock per request; routes are templates, so the map
//! stays small whatever the ids.
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (microseconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS_MICROS: [u64; 13] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// One (method, route)'s figures since `Neutron::open`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteMetrics {
    /// "GET", "POST", ...
    pub method: String,
    /// "/v2.0/ports/{id}", or "unmatched".
    pub route: String,
    pub count: u64,
    /// Responses with status >= 400.
    pub errors: u64,
    pub total_micros: u64,
    pub max_micros: u64,
    /// Cumulative, Prometheus style: `buckets[i]` counts the requests that
    /// took at most `LATENCY_BUCKETS_MICROS[i]`; `count` is the +Inf bucket.
    pub buckets: Vec<u64>,
}

#[derive(Default, Clone)]
struct Counters {
    count: u64,
    errors: u64,
    total: u64,
    max: u64,
    buckets: [u64; LATENCY_BUCKETS_MICROS.len()],
}

#[derive(Default)]
pub(crate) struct Metrics {
    routes: Mutex<BTreeMap<(String, String), Counters>>,
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let mut m = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let c = m.entry((route.to_owned(), method.to_owned())).or_default();
        c.count += 1;
        c.errors += u64::from(status >= 400);
        c.total += us;
        c.max = c.max.max(us);
        // Non-cumulative here, summed up in `snapshot`.
        if let Some(i) = LATENCY_BUCKETS_MICROS.iter().position(|b| us <= *b) {
            c.buckets[i] += 1;
        }
    }

    pub fn snapshot(&self) -> Vec<RouteMetrics> {
        let m = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .map(|((route, method), c)| {
                let mut acc = 0;
                RouteMetrics {
                    method: method.clone(),
                    route: route.clone(),
                    count: c.count,
                    errors: c.errors,
                    total_micros: c.total,
                    max_micros: c.max,
                    buckets: c
                        .buckets
                        .iter()
                        .map(|b| {
                            acc += b;
                            acc
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let m = Metrics::default();
        m.record("GET", "/v2.0/ports", 200, Duration::from_micros(90));
        m.record("GET", "/v2.0/ports", 404, Duration::from_micros(3_000));
        m.record("GET", "/v2.0/ports", 200, Duration::from_secs(3));
        let s = m.snapshot();
        assert_eq!(s.len(), 1);
        let r = &s[0];
        assert_eq!((r.count, r.errors), (3, 1));
        assert_eq!(r.buckets[0], 1);
        assert_eq!(r.buckets[5], 2); // <= 5 ms
        assert_eq!(*r.buckets.last().unwrap(), 2); // 3 s is only in +Inf
        assert_eq!(r.max_micros, 3_000_000);
    }
}
