//! Prometheus metrics, kept in atomics and rendered in the text exposition format by hand
//! (a handful of families does not justify a metrics framework on the request path).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::pool::Pool;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 13] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Why the proxy answered a request itself instead of a backend.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProxyError {
    NoRoute = 0,
    NoBackend = 1,
    BackendFailed = 2,
    TlsHandshake = 3,
    ConnectFailed = 4,
}

const ERROR_NAMES: [&str; 5] =
    ["no_route", "no_healthy_backend", "backend_failed", "tls_handshake", "connect_failed"];

/// Counters of one endpoint.
#[derive(Debug)]
pub(crate) struct EndpointMetrics {
    pub(crate) name: String,
    protocol: &'static str,
    pub(crate) connections_open: AtomicI64,
    pub(crate) connections_total: AtomicU64,
    responses: [AtomicU64; 5],
    errors: [AtomicU64; 5],
    latency_buckets: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
    pub(crate) bytes_from_clients: AtomicU64,
    pub(crate) bytes_to_clients: AtomicU64,
}

impl EndpointMetrics {
    pub(crate) fn response(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|&bound| seconds <= bound).unwrap_or(BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Relaxed);
        self.latency_sum_micros.fetch_add(elapsed.as_micros() as u64, Relaxed);
    }

    /// Counts a new connection as open until the guard is dropped.
    pub(crate) fn open_connection(self: &Arc<Self>) -> OpenConnection {
        self.connections_total.fetch_add(1, Relaxed);
        self.connections_open.fetch_add(1, Relaxed);
        OpenConnection(self.clone())
    }

    pub(crate) fn error(&self, kind: ProxyError) {
        self.errors[kind as usize].fetch_add(1, Relaxed);
    }
}

/// One open connection in [`EndpointMetrics::connections_open`].
#[derive(Debug)]
pub(crate) struct OpenConnection(Arc<EndpointMetrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Relaxed);
    }
}

/// Every endpoint's counters, for rendering.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    endpoints: Mutex<Vec<Arc<EndpointMetrics>>>,
    /// Connections `forward: kernel` endpoints had, as the NAT's counters last said.
    kernel_connections: Mutex<Vec<(String, u64)>>,
}

impl Metrics {
    pub(crate) fn set_kernel_connections(&self, counts: Vec<(String, u64)>) {
        *self.kernel_connections.lock().unwrap_or_else(|p| p.into_inner()) = counts;
    }

    pub(crate) fn endpoint(&self, name: &str, protocol: &'static str) -> Arc<EndpointMetrics> {
        let metrics = Arc::new(EndpointMetrics {
            name: name.to_owned(),
            protocol,
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            responses: Default::default(),
            errors: Default::default(),
            latency_buckets: Default::default(),
            latency_sum_micros: AtomicU64::new(0),
            bytes_from_clients: AtomicU64::new(0),
            bytes_to_clients: AtomicU64::new(0),
        });
        self.lock().push(metrics.clone());
        metrics
    }

    pub(crate) fn forget(&self, endpoint: &Arc<EndpointMetrics>) {
        self.lock().retain(|m| !Arc::ptr_eq(m, endpoint));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<EndpointMetrics>>> {
        // The list stays consistent even if a holder panicked: each operation is one push or
        // retain.
        self.endpoints.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The Prometheus text exposition of every endpoint and the backends of `pools`.
    pub(crate) fn render(&self, pools: &[Arc<Pool>]) -> String {
        let endpoints = self.lock().clone();
        let mut out = String::with_capacity(4096);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(&mut out, "ingress_connections_open", "gauge", "Client connections currently open.");
        for e in &endpoints {
            let _ = writeln!(
                out,
                "ingress_connections_open{{endpoint=\"{}\",protocol=\"{}\"}} {}",
                e.name,
                e.protocol,
                e.connections_open.load(Relaxed)
            );
        }
        family(&mut out, "ingress_connections_total", "counter", "Client connections accepted.");
        for e in &endpoints {
            let _ = writeln!(
                out,
                "ingress_connections_total{{endpoint=\"{}\",protocol=\"{}\"}} {}",
                e.name,
                e.protocol,
                e.connections_total.load(Relaxed)
            );
        }
        family(&mut out, "ingress_http_responses_total", "counter", "HTTP responses by status class.");
        for e in endpoints.iter().filter(|e| e.protocol != "tcp") {
            for (class, count) in e.responses.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "ingress_http_responses_total{{endpoint=\"{}\",code=\"{}xx\"}} {}",
                    e.name,
                    class + 1,
                    count.load(Relaxed)
                );
            }
        }
        family(
            &mut out,
            "ingress_errors_total",
            "counter",
            "Requests or connections the proxy failed, by reason.",
        );
        for e in &endpoints {
            for (name, count) in ERROR_NAMES.iter().zip(&e.errors) {
                let _ = writeln!(
                    out,
                    "ingress_errors_total{{endpoint=\"{}\",reason=\"{name}\"}} {}",
                    e.name,
                    count.load(Relaxed)
                );
            }
        }
        family(
            &mut out,
            "ingress_http_response_seconds",
            "histogram",
            "Time from request to response headers.",
        );
        for e in endpoints.iter().filter(|e| e.protocol != "tcp") {
            let mut cumulative = 0;
            for (i, count) in e.latency_buckets.iter().enumerate() {
                cumulative += count.load(Relaxed);
                let bound = BUCKETS.get(i).map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
                let _ = writeln!(
                    out,
                    "ingress_http_response_seconds_bucket{{endpoint=\"{}\",le=\"{bound}\"}} {cumulative}",
                    e.name
                );
            }
            let sum = e.latency_sum_micros.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "ingress_http_response_seconds_sum{{endpoint=\"{}\"}} {sum}", e.name);
            let _ =
                writeln!(out, "ingress_http_response_seconds_count{{endpoint=\"{}\"}} {cumulative}", e.name);
        }
        family(&mut out, "ingress_tcp_bytes_total", "counter", "Bytes forwarded by TCP endpoints.");
        for e in endpoints.iter().filter(|e| e.protocol == "tcp") {
            for (direction, count) in [("in", &e.bytes_from_clients), ("out", &e.bytes_to_clients)] {
                let _ = writeln!(
                    out,
                    "ingress_tcp_bytes_total{{endpoint=\"{}\",direction=\"{direction}\"}} {}",
                    e.name,
                    count.load(Relaxed)
                );
            }
        }
        family(
            &mut out,
            "ingress_kernel_connections_total",
            "counter",
            "Connections the kernel forwarded for forward: kernel endpoints, as their NAT rules counted them.",
        );
        for (endpoint, count) in self.kernel_connections.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "ingress_kernel_connections_total{{endpoint=\"{endpoint}\"}} {count}");
        }
        family(&mut out, "ingress_backend_up", "gauge", "1 when the backend is healthy and not ejected.");
        for pool in pools {
            for b in &pool.backends {
                let up = u8::from(b.is_healthy() && !b.is_ejected());
                let _ =
                    writeln!(out, "ingress_backend_up{{pool=\"{}\",backend=\"{}\"}} {up}", pool.name, b.addr);
            }
        }
        family(&mut out, "ingress_backend_in_flight", "gauge", "Requests or sessions in flight per backend.");
        for pool in pools {
            for b in &pool.backends {
                let _ = writeln!(
                    out,
                    "ingress_backend_in_flight{{pool=\"{}\",backend=\"{}\"}} {}",
                    pool.name,
                    b.addr,
                    b.in_flight()
                );
            }
        }
        for (name, help, read) in [
            ("ingress_backend_requests_total", "Requests or sessions sent to the backend.", 0),
            ("ingress_backend_failures_total", "Transport failures talking to the backend.", 1),
            ("ingress_backend_ejections_total", "Times the backend was ejected.", 2),
        ] {
            family(&mut out, name, "counter", help);
            for pool in pools {
                for b in &pool.backends {
                    let value = [&b.requests, &b.failures, &b.ejections][read].load(Relaxed);
                    let _ = writeln!(out, "{name}{{pool=\"{}\",backend=\"{}\"}} {value}", pool.name, b.addr);
                }
            }
        }
        out
    }
}
