//! Accepting clients: the accept loop, one task per connection serving HTTP/1.1 (with
//! upgrades) and HTTP/2, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::forward::Connection;
use crate::headers;
use crate::proxy::XdcProxy;
use crate::upstream::Upstreams;

/// Request headers larger than this are refused; far above what browsers send.
const MAX_HEADER_BYTES: usize = 64 * 1024;

impl XdcProxy {
    /// Serves clients from `listener` until `shutdown` fires, then stops accepting, lets
    /// requests in progress finish, closes WebSockets and returns.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), crate::XdcProxyError> {
        let tracker = TaskTracker::new();
        let mut backoff = Duration::from_millis(5);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.cancelled() => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    let _ = stream.set_nodelay(true);
                    let (proxy, stop, inner_tracker) = (self.clone(), shutdown.clone(), tracker.clone());
                    tracker.spawn(async move { proxy.connection(stream, peer, stop, inner_tracker).await });
                }
                // Running out of file descriptors or memory passes; the listener stays.
                Err(err) if is_transient(&err) => {
                    tracing::warn!(target: "xdc_web", error = %err, "accept failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(err) => return Err(crate::XdcProxyError::Listener(err)),
            }
        }
        drop(listener);
        tracker.close();
        tracker.wait().await;
        Ok(())
    }

    /// Serves one client connection accepted elsewhere (for instance after a TLS handshake)
    /// until the client leaves or `shutdown` fires.
    pub async fn serve_connection<I>(&self, io: I, peer: SocketAddr, shutdown: CancellationToken)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let tracker = TaskTracker::new();
        self.connection(io, peer, shutdown, tracker.clone()).await;
        tracker.close();
        tracker.wait().await;
    }

    async fn connection<I>(&self, io: I, peer: SocketAddr, shutdown: CancellationToken, tracker: TaskTracker)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Arc::new(Connection {
            peer,
            peer_ip: headers::client_ip(peer),
            stop: shutdown.clone(),
            tracker,
            upstreams: Upstreams::default(),
        });
        let proxy = self.clone();
        let own = conn.clone();
        let service = service_fn(move |req| {
            let (proxy, conn) = (proxy.clone(), conn.clone());
            async move { Ok::<_, std::convert::Infallible>(proxy.handle(req, &conn).await) }
        });
        let mut server = auto::Builder::new(TokioExecutor::new());
        server
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.inner.config.timeouts.header_read)
            .max_buf_size(MAX_HEADER_BYTES)
            .max_headers(128);
        server.http2().timer(TokioTimer::new()).max_header_list_size(MAX_HEADER_BYTES as u32);
        let served = server.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(served);
        let drive = own.upstreams.drive();
        tokio::pin!(drive);
        let mut draining = false;
        loop {
            tokio::select! {
                // Upstream connections first: one that just finished a response is then
                // ready for the next request the client connection reads.
                biased;
                _ = &mut drive => {}
                result = served.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(target: "xdc_web", client = %peer, error = %err, "connection ended with an error");
                    }
                    return;
                }
                _ = shutdown.cancelled(), if !draining => {
                    served.as_mut().graceful_shutdown();
                    draining = true;
                }
            }
        }
    }
}

fn is_transient(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(err.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | OutOfMemory)
        || matches!(err.raw_os_error(), Some(23 | 24)) // ENFILE, EMFILE
}
