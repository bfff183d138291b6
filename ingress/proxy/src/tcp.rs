//! The L4 path: each accepted connection is joined to a backend from the endpoint's pool,
//! with an optional PROXY protocol v2 header first, and bytes copied both ways.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::io::Tracked;
use crate::metrics::{EndpointMetrics, ProxyError};
use crate::pool::Tried;
use crate::proxy_protocol;
use crate::runtime::Shared;

/// How many backends one connection may try.
const MAX_ATTEMPTS: usize = 3;

/// A TCP endpoint.
pub(crate) struct TcpEndpoint {
    pub(crate) name: Arc<str>,
    pub(crate) pool: String,
    pub(crate) proxy_protocol: bool,
    pub(crate) shared: Arc<Shared>,
    pub(crate) metrics: Arc<EndpointMetrics>,
}

impl TcpEndpoint {
    /// Serves one client connection. A graceful stop lets the session run on (an SSH session
    /// has no way to be told to finish); only `hard_stop` cuts it.
    pub(crate) async fn connection(
        self: Arc<Self>,
        client: TcpStream,
        peer: SocketAddr,
        hard_stop: CancellationToken,
    ) {
        let started = Instant::now();
        let _ = client.set_nodelay(true);
        let _open = self.metrics.open_connection();
        let local = client.local_addr().unwrap_or(peer);
        let pool = self.shared.pools.load().get(&self.pool).cloned();
        let Some(pool) = pool else {
            self.metrics.error(ProxyError::NoBackend);
            tracing::warn!(endpoint = %self.name, pool = %self.pool, "tcp endpoint's pool does not exist");
            return;
        };
        let mut tried = Tried::default();
        let mut connected = None;
        for _ in 0..MAX_ATTEMPTS {
            let Some((index, backend)) = pool.pick(tried) else { break };
            tried.add(index);
            let backend = backend.clone();
            let in_flight = backend.start();
            match tokio::time::timeout(self.shared.timeouts.connect, TcpStream::connect(backend.addr)).await {
                Ok(Ok(stream)) => {
                    backend.record_success();
                    connected = Some((stream, backend, in_flight));
                    break;
                }
                outcome => {
                    let error = match outcome {
                        Ok(Err(err)) => err.to_string(),
                        _ => "timed out".to_owned(),
                    };
                    tracing::debug!(endpoint = %self.name, backend = %backend.addr, %error, "backend connect failed");
                    backend.record_failure(
                        pool.config.ejection.consecutive_failures,
                        pool.config.ejection.cooldown,
                    );
                }
            }
        }
        let Some((mut upstream, backend, _in_flight)) = connected else {
            let kind = if tried.is_empty() { ProxyError::NoBackend } else { ProxyError::ConnectFailed };
            self.metrics.error(kind);
            self.access_log(peer, None, 0, 0, started);
            return;
        };
        let _ = upstream.set_nodelay(true);
        if self.proxy_protocol
            && let Err(err) = upstream.write_all(&proxy_protocol::encode(peer, local)).await
        {
            tracing::debug!(endpoint = %self.name, backend = %backend.addr, error = %err, "writing the PROXY header failed");
            return;
        }
        let (mut client, activity) = Tracked::new(client);
        let (up, down) = tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => copied.unwrap_or((0, 0)),
            _ = activity.idle(self.shared.timeouts.tcp_idle) => (0, 0),
            _ = hard_stop.cancelled() => (0, 0),
        };
        self.metrics.bytes_from_clients.fetch_add(up, std::sync::atomic::Ordering::Relaxed);
        self.metrics.bytes_to_clients.fetch_add(down, std::sync::atomic::Ordering::Relaxed);
        self.access_log(peer, Some(backend.addr), up, down, started);
    }

    fn access_log(
        &self,
        peer: SocketAddr,
        backend: Option<SocketAddr>,
        up: u64,
        down: u64,
        started: Instant,
    ) {
        if self.shared.access_log() {
            tracing::info!(
                target: "access",
                endpoint = %self.name,
                client = %peer,
                backend = %backend.map_or_else(|| "-".to_owned(), |b| b.to_string()),
                bytes_in = up,
                bytes_out = down,
                millis = started.elapsed().as_millis() as u64,
            );
        }
    }
}
