//! Backend pools: backend state (health, ejection, requests in flight) and the choice of a
//! backend for each request or connection.
//!
//! Backend state lives in atomics because every request reads it on the hot path and health
//! checks and failures write it from other tasks; nothing here takes a lock (a backend's idle
//! HTTP/1.1 connections, `http/backend.rs`, sit behind a short-held mutex of their own).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use http::uri::Authority;

use crate::config::{Balance, PoolConfig};

/// One backend address and what is known about it.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    /// `ip:port`, the URI authority requests to this backend carry (and the client pool key).
    pub(crate) authority: Authority,
    /// Set by active health checks; starts healthy so traffic flows before the first check.
    healthy: AtomicBool,
    /// Milliseconds since `epoch` until which the backend is ejected; 0 when it is not.
    ejected_until_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    in_flight: AtomicUsize,
    epoch: Instant,
    pub(crate) requests: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) ejections: AtomicU64,
    /// HTTP/1.1 connections to this backend waiting for their next request.
    pub(crate) idle: crate::http::IdleConns,
    /// Plain connections the HTTP/1.1 fast path keeps for reuse.
    pub(crate) streams: crate::http::IdleStreams,
}

impl Backend {
    pub(crate) fn new(addr: SocketAddr) -> Backend {
        let authority = Authority::try_from(addr.to_string().as_str())
            .expect("a socket address is always a valid URI authority");
        Backend {
            addr,
            authority,
            healthy: AtomicBool::new(true),
            ejected_until_ms: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            in_flight: AtomicUsize::new(0),
            epoch: Instant::now(),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
            idle: crate::http::IdleConns::default(),
            streams: crate::http::IdleStreams::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        // Never 0, so 0 can mean "not ejected".
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    pub(crate) fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Relaxed) != healthy
    }

    pub(crate) fn is_ejected(&self) -> bool {
        let until = self.ejected_until_ms.load(Relaxed);
        until != 0 && self.now_ms() < until
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Relaxed)
    }

    /// Counts a request or connection until the guard is dropped (for least-connections).
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    pub(crate) fn record_success(&self) {
        // Read first: most requests succeed, and a store would bounce the cache line between
        // cores on every request.
        if self.consecutive_failures.load(Relaxed) != 0 {
            self.consecutive_failures.store(0, Relaxed);
        }
    }

    /// Counts a transport failure; ejects the backend after `threshold` in a row.
    pub(crate) fn record_failure(&self, threshold: u32, cooldown: Duration) {
        self.failures.fetch_add(1, Relaxed);
        let failures = self.consecutive_failures.fetch_add(1, Relaxed) + 1;
        if failures >= threshold {
            self.consecutive_failures.store(0, Relaxed);
            let until = self.now_ms() + cooldown.as_millis() as u64;
            self.ejected_until_ms.store(until, Relaxed);
            self.ejections.fetch_add(1, Relaxed);
            tracing::warn!(backend = %self.addr, failures, cooldown_ms = cooldown.as_millis() as u64,
                "ejecting backend after consecutive failures");
        }
    }
}

/// Holds one unit of a backend's in-flight count.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// A named set of backends with a balancing policy.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) name: Arc<str>,
    pub(crate) config: PoolConfig,
    pub(crate) backends: Vec<Arc<Backend>>,
    pub(crate) upstream: Upstream,
    next: AtomicUsize,
}

/// How connections to a pool's backends are made.
#[derive(Debug, Clone)]
pub(crate) enum Upstream {
    Plain,
    Tls(Arc<crate::upstream_tls::UpstreamTls>),
    /// TLS that could not be set up (its CA file vanished after validation): every connect
    /// fails with this, rather than falling back to plain text.
    Broken(Arc<str>),
}

/// Backends already tried for this request, by index (only the first 64 are tracked, which is
/// enough for any pool we retry across).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tried(u64);

impl Tried {
    pub(crate) fn add(&mut self, index: usize) {
        if index < 64 {
            self.0 |= 1 << index;
        }
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }
}

impl Pool {
    /// A pool for `config`; backends with an address in `previous` keep their state (health,
    /// ejection, counters), so a reload does not send traffic to a backend known to be down.
    pub(crate) fn new(name: &str, config: PoolConfig, previous: Option<&Pool>) -> Pool {
        let backends = config
            .backends
            .iter()
            .map(|addr| {
                previous
                    .and_then(|p| p.backends.iter().find(|b| b.addr == *addr).cloned())
                    .unwrap_or_else(|| Arc::new(Backend::new(*addr)))
            })
            .collect();
        let upstream = match &config.tls {
            None => Upstream::Plain,
            Some(tls) => match crate::upstream_tls::UpstreamTls::new(name, tls) {
                Ok(tls) => Upstream::Tls(Arc::new(tls)),
                Err(err) => {
                    tracing::error!(pool = name, error = %err, "backend TLS cannot be set up");
                    Upstream::Broken(err.to_string().into())
                }
            },
        };
        Pool { name: name.into(), config, backends, upstream, next: AtomicUsize::new(0) }
    }

    /// Whether the backend at `addr` passes its health checks (`false` when it is not here).
    pub(crate) fn is_healthy(&self, addr: SocketAddr) -> bool {
        self.backends.iter().any(|b| b.addr == addr && b.is_healthy())
    }

    /// Picks a backend that is healthy, not ejected and not yet tried. When every backend is
    /// ejected, a healthy one is used anyway ("panic mode"): ejection is a guess from a few
    /// failures, and refusing all traffic would turn a brief problem into an outage.
    pub(crate) fn pick(&self, tried: Tried) -> Option<(usize, &Arc<Backend>)> {
        let usable = |i: usize, b: &Backend| !tried.contains(i) && b.is_healthy() && !b.is_ejected();
        self.choose(usable).or_else(|| self.choose(|i, b| !tried.contains(i) && b.is_healthy()))
    }

    fn choose(&self, usable: impl Fn(usize, &Backend) -> bool) -> Option<(usize, &Arc<Backend>)> {
        let count = self.backends.len();
        if count == 0 {
            return None;
        }
        let start = if count == 1 { 0 } else { self.next.fetch_add(1, Relaxed) % count };
        match self.config.balance {
            Balance::RoundRobin => (0..count)
                .map(|offset| (start + offset) % count)
                .find(|&i| usable(i, &self.backends[i]))
                .map(|i| (i, &self.backends[i])),
            // Scanning from a rotating start breaks ties in turn instead of always favouring
            // the first backend.
            Balance::LeastConn => (0..count)
                .map(|offset| (start + offset) % count)
                .filter(|&i| usable(i, &self.backends[i]))
                .min_by_key(|&i| self.backends[i].in_flight())
                .map(|i| (i, &self.backends[i])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EjectionConfig;

    fn pool(balance: Balance, count: u16) -> Pool {
        let config = PoolConfig {
            backends: (1..=count).map(|p| SocketAddr::from(([127, 0, 0, 1], p))).collect(),
            balance,
            http2: false,
            health_check: None,
            ejection: EjectionConfig::default(),
            tls: None,
        };
        Pool::new("p", config, None)
    }

    #[test]
    fn round_robin_takes_turns_and_skips_unhealthy() {
        let pool = pool(Balance::RoundRobin, 3);
        let picks: Vec<usize> = (0..6).map(|_| pool.pick(Tried::default()).unwrap().0).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        pool.backends[1].set_healthy(false);
        let picks: Vec<usize> = (0..4).map(|_| pool.pick(Tried::default()).unwrap().0).collect();
        assert!(!picks.contains(&1), "{picks:?}");
    }

    #[test]
    fn least_conn_prefers_the_idlest() {
        let pool = pool(Balance::LeastConn, 3);
        let _a = pool.backends[0].start();
        let _b = pool.backends[0].start();
        let _c = pool.backends[2].start();
        for _ in 0..5 {
            assert_eq!(pool.pick(Tried::default()).unwrap().0, 1);
        }
        drop((_a, _b));
        let second = pool.pick(Tried::default()).unwrap().0;
        assert_ne!(second, 2);
    }

    #[test]
    fn ejection_after_consecutive_failures_and_panic_mode() {
        let pool = pool(Balance::RoundRobin, 2);
        let cooldown = Duration::from_secs(60);
        pool.backends[0].record_failure(2, cooldown);
        pool.backends[0].record_success();
        pool.backends[0].record_failure(2, cooldown);
        assert!(!pool.backends[0].is_ejected(), "a success in between resets the count");
        pool.backends[0].record_failure(2, cooldown);
        assert!(pool.backends[0].is_ejected());
        for _ in 0..4 {
            assert_eq!(pool.pick(Tried::default()).unwrap().0, 1);
        }
        // Everything ejected: still pick a healthy backend rather than refuse.
        pool.backends[1].record_failure(1, cooldown);
        assert!(pool.pick(Tried::default()).is_some());
        // Everything unhealthy: nothing.
        pool.backends[0].set_healthy(false);
        pool.backends[1].set_healthy(false);
        assert!(pool.pick(Tried::default()).is_none());
    }

    #[test]
    fn retries_skip_tried_backends_and_reload_keeps_state() {
        let pool = pool(Balance::RoundRobin, 2);
        let mut tried = Tried::default();
        let (first, _) = pool.pick(tried).unwrap();
        tried.add(first);
        let (second, _) = pool.pick(tried).unwrap();
        assert_ne!(first, second);
        tried.add(second);
        assert!(pool.pick(tried).is_none());

        pool.backends[0].set_healthy(false);
        let reloaded = Pool::new("p", pool.config.clone(), Some(&pool));
        assert!(!reloaded.backends[0].is_healthy());
    }
}
