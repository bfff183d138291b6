//! The L7 path: accept, terminate TLS, serve HTTP/1.1 and HTTP/2 with hyper, and forward each
//! request (`forward.rs`) with hop-by-hop and forwarding headers fixed (`headers.rs`) and
//! bodies streamed (`body.rs`).

mod backend;
mod body;
mod forward;
mod h1;
pub(crate) mod headers;
mod idle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Timeouts;
use crate::io::{Activity, Prefixed, Tracked};
use crate::metrics::{EndpointMetrics, ProxyError};
use crate::runtime::Shared;

pub(crate) use backend::IdleConns;
pub(crate) use body::RequestBody;
pub(crate) use h1::IdleStreams;

/// Request headers larger than this are refused (431 for HTTP/1.1, a stream error for
/// HTTP/2); far above what browsers and gRPC send, far below what could exhaust memory.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// An HTTP or HTTPS endpoint.
pub(crate) struct HttpEndpoint {
    pub(crate) name: Arc<str>,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) metrics: Arc<EndpointMetrics>,
    server: auto::Builder<TokioExecutor>,
}

impl HttpEndpoint {
    pub(crate) fn new(
        name: &str,
        tls: Option<TlsAcceptor>,
        shared: Arc<Shared>,
        metrics: Arc<EndpointMetrics>,
    ) -> HttpEndpoint {
        let timeouts = &shared.timeouts;
        let mut server = auto::Builder::new(TokioExecutor::new());
        server
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header_read)
            // hyper's default header count limit (100) is kept: a larger `max_headers` makes
            // it allocate and fill two header arrays on the heap for every request.
            .max_buf_size(MAX_HEADER_BYTES.max(8192));
        server
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .max_concurrent_streams(512)
            // Dead peers (a laptop closed mid-stream) are found by pings, not by idle time
            // alone, since a gRPC stream may legitimately be quiet.
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
            .adaptive_window(true);
        HttpEndpoint { name: name.into(), tls, shared, metrics, server }
    }

    /// Serves one client connection: TLS first for HTTPS, then HTTP until the client leaves,
    /// the connection idles out, `stop` asks for a graceful close, or `hard_stop` fires.
    pub(crate) async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        stop: CancellationToken,
        hard_stop: CancellationToken,
    ) {
        let _ = stream.set_nodelay(true);
        let _open = self.metrics.open_connection();
        let timeouts = self.shared.timeouts.clone();
        let Some(acceptor) = self.tls.clone() else {
            self.serve_http1(stream, peer, &timeouts, stop, hard_stop).await;
            return;
        };
        // The TLS path's state (rustls, the handshake) is large; boxed, it stays out of the
        // task of every plain connection.
        Box::pin(self.serve_tls(acceptor, stream, peer, &timeouts, stop, hard_stop)).await;
    }

    async fn serve_tls(
        self: Arc<Self>,
        acceptor: TlsAcceptor,
        stream: TcpStream,
        peer: SocketAddr,
        timeouts: &Timeouts,
        stop: CancellationToken,
        hard_stop: CancellationToken,
    ) {
        let handshake = tokio::time::timeout(timeouts.tls_handshake, acceptor.accept(stream));
        let accepted = tokio::select! {
            accepted = handshake => accepted,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                let (io, activity) = Tracked::new(tls);
                self.clone().drive(io, peer, activity, timeouts, stop, hard_stop).await;
            }
            Ok(Ok(tls)) => self.serve_http1(tls, peer, timeouts, stop, hard_stop).await,
            Ok(Err(err)) => {
                self.metrics.error(ProxyError::TlsHandshake);
                tracing::debug!(endpoint = %self.name, client = %peer, error = %err, "TLS handshake failed");
            }
            Err(_) => {
                self.metrics.error(ProxyError::TlsHandshake);
                tracing::debug!(endpoint = %self.name, client = %peer, "TLS handshake timed out");
            }
        }
    }

    /// HTTP/1.1 on the fast path, handing over to hyper for what only it handles.
    async fn serve_http1<I: h1::ClientIo>(
        self: Arc<Self>,
        io: I,
        peer: SocketAddr,
        timeouts: &Timeouts,
        stop: CancellationToken,
        hard_stop: CancellationToken,
    ) {
        let served = tokio::select! {
            served = h1::serve(&self, io, peer, &stop) => served,
            _ = hard_stop.cancelled() => return,
        };
        if let h1::Served::Fallback { io, read } = served {
            let (io, activity) = Tracked::new(Prefixed::new(read, io));
            // Boxed: hyper's connection state is kilobytes that a fast-path task never needs.
            Box::pin(self.clone().drive(io, peer, activity, timeouts, stop, hard_stop)).await;
        }
    }

    async fn drive<I>(
        self: Arc<Self>,
        io: I,
        peer: SocketAddr,
        activity: Activity,
        timeouts: &Timeouts,
        stop: CancellationToken,
        hard_stop: CancellationToken,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let client = Arc::new(forward::Connection {
            client: headers::Client::new(peer),
            activity: activity.clone(),
            hard_stop: hard_stop.clone(),
        });
        let endpoint = self.clone();
        let service = service_fn(move |req| {
            let (endpoint, client) = (endpoint.clone(), client.clone());
            async move { Ok::<_, std::convert::Infallible>(forward::handle(&endpoint, &client, req).await) }
        });
        let conn = self.server.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        let idle = activity.idle(timeouts.idle);
        tokio::pin!(idle);
        let mut draining = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(endpoint = %self.name, client = %peer, error = %err, "connection ended with an error");
                    }
                    return;
                }
                _ = stop.cancelled(), if !draining => {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                _ = &mut idle => {
                    tracing::debug!(endpoint = %self.name, client = %peer, "closing an idle connection");
                    return;
                }
                _ = hard_stop.cancelled() => return,
            }
        }
    }
}
