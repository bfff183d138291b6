//! Active health checks: one task per pool checks every backend each interval and flips its
//! health after `rise` successes or `fall` failures in a row.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{HealthCheckConfig, HealthCheckKind};
use crate::pool::{Backend, Pool, Upstream};

/// Runs the checks of `pool` until `cancel` fires.
/// Each flip bumps `changes`, since NAT forwards list only healthy backends.
pub(crate) async fn run(
    pool: Arc<Pool>,
    check: HealthCheckConfig,
    changes: watch::Sender<u64>,
    cancel: CancellationToken,
) {
    let mut streaks = vec![Streak::default(); pool.backends.len()];
    let mut interval = tokio::time::interval(check.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        let probes = pool.backends.iter().map(|b| probe(b.clone(), check.clone(), pool.upstream.clone()));
        let results = futures_join(probes).await;
        for ((backend, streak), ok) in pool.backends.iter().zip(&mut streaks).zip(results) {
            if let Some(healthy) = streak.record(ok, check.rise, check.fall)
                && backend.set_healthy(healthy)
            {
                if healthy {
                    tracing::info!(pool = %pool.name, backend = %backend.addr, "backend is healthy again");
                } else {
                    tracing::warn!(pool = %pool.name, backend = %backend.addr, "backend failed its health checks");
                }
                changes.send_modify(|n| *n += 1);
            }
        }
    }
}

/// Runs the probes concurrently so one slow backend does not delay the others' verdicts.
async fn futures_join<F: Future<Output = bool> + Send + 'static>(
    probes: impl Iterator<Item = F>,
) -> Vec<bool> {
    let handles: Vec<_> = probes.map(tokio::spawn).collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap_or(false));
    }
    results
}

#[derive(Debug, Default, Clone, Copy)]
struct Streak {
    successes: u32,
    failures: u32,
}

impl Streak {
    /// Records one result; returns the new verdict once a streak reaches its threshold.
    fn record(&mut self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            (self.successes >= rise).then_some(true)
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            (self.failures >= fall).then_some(false)
        }
    }
}

/// One check of one backend. An http check of a pool reached over TLS is made over TLS the
/// same way requests are (verified when the pool says so), so a backend whose certificate the
/// proxy would refuse fails its checks too.
async fn probe(backend: Arc<Backend>, check: HealthCheckConfig, upstream: Upstream) -> bool {
    let attempt = async {
        let stream = TcpStream::connect(backend.addr).await.ok()?;
        if check.kind == HealthCheckKind::Tcp {
            return Some(true);
        }
        stream.set_nodelay(true).ok()?;
        match upstream {
            Upstream::Plain => ask(stream, &check, &backend).await,
            Upstream::Tls(tls) => ask(tls.connect(stream, backend.addr).await.ok()?, &check, &backend).await,
            Upstream::Broken(_) => None,
        }
    };
    matches!(tokio::time::timeout(check.timeout, attempt).await, Ok(Some(true)))
}

/// `GET path`, and whether the status is 2xx or 3xx.
async fn ask(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    check: &HealthCheckConfig,
    backend: &Backend,
) -> Option<bool> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: trellis-ingress-health\r\nConnection: close\r\n\r\n",
        check.path, backend.authority
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    // The status line is all we need: "HTTP/1.1 200 ...".
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.ok()?;
    let status = std::str::from_utf8(head.get(9..12)?).ok()?.parse::<u16>().ok()?;
    Some(head.starts_with(b"HTTP/1.") && (200..400).contains(&status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn streaks_need_rise_and_fall_in_a_row() {
        let mut streak = Streak::default();
        assert_eq!(streak.record(false, 2, 2), None);
        assert_eq!(streak.record(true, 2, 2), None);
        assert_eq!(streak.record(false, 2, 2), None);
        assert_eq!(streak.record(false, 2, 2), Some(false));
        assert_eq!(streak.record(true, 2, 2), None);
        assert_eq!(streak.record(true, 2, 2), Some(true));
    }

    #[tokio::test]
    async fn probes_tell_a_listening_backend_from_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Arc::new(Backend::new(listener.local_addr().unwrap()));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
            }
        });
        let closed = {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            socket.local_addr().unwrap()
        };
        let down = Arc::new(Backend::new(closed));
        let check = |kind| HealthCheckConfig {
            kind,
            path: "/healthz".into(),
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(2),
            rise: 1,
            fall: 1,
        };
        assert!(probe(up.clone(), check(HealthCheckKind::Http), Upstream::Plain).await);
        assert!(probe(up.clone(), check(HealthCheckKind::Tcp), Upstream::Plain).await);
        assert!(!probe(down.clone(), check(HealthCheckKind::Http), Upstream::Plain).await);
        assert!(!probe(down, check(HealthCheckKind::Tcp), Upstream::Plain).await);
        // TLS that could not be set up never passes an http check.
        assert!(!probe(up, check(HealthCheckKind::Http), Upstream::Broken("no CA".into())).await);
    }
}
