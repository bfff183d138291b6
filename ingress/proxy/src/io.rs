//! Socket plumbing shared by the HTTP and TCP paths: activity tracking for idle timeouts and
//! listener setup.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket};

/// Marks a shared flag whenever bytes move, so a watchdog can tell an idle connection from a
/// busy one without a timer per read.
#[derive(Debug)]
pub(crate) struct Tracked<T> {
    inner: T,
    active: Arc<AtomicBool>,
}

impl<T> Tracked<T> {
    pub(crate) fn new(inner: T) -> (Tracked<T>, Activity) {
        let active = Arc::new(AtomicBool::new(true));
        (Tracked { inner, active: active.clone() }, Activity(active))
    }

    #[inline]
    fn mark(&self) {
        // A relaxed load first: on a busy connection the flag is already set and the store
        // (which dirties the cache line) is skipped.
        if !self.active.load(Relaxed) {
            self.active.store(true, Relaxed);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() != before {
            self.mark();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.mark();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.mark();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A stream with bytes already read from it put back in front: what one protocol
/// implementation read before handing the connection to another.
#[derive(Debug)]
pub(crate) struct Prefixed<T> {
    prefix: bytes::Bytes,
    inner: T,
}

impl<T> Prefixed<T> {
    pub(crate) fn new(prefix: bytes::Bytes, inner: T) -> Prefixed<T> {
        Prefixed { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The watchdog's side of a [`Tracked`] stream.
#[derive(Debug, Clone)]
pub(crate) struct Activity(Arc<AtomicBool>);

impl Activity {
    /// Resolves once no bytes have moved for a whole `idle` period (so after between one and
    /// two periods of silence).
    pub(crate) async fn idle(&self, idle: Duration) {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + idle, idle);
        loop {
            ticks.tick().await;
            if !self.0.swap(false, Relaxed) {
                return;
            }
        }
    }
}

/// Binds a listener with a deep backlog: bursts of new connections (a benchmark, a reconnect
/// storm after a restart) should wait in the kernel rather than be refused.
pub(crate) fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Waits after an accept error so a full file-descriptor table does not become a busy loop.
pub(crate) async fn accept_backoff(err: &io::Error, failures: &mut u32) {
    *failures = (*failures + 1).min(10);
    let delay = Duration::from_millis(5u64 << (*failures).min(7));
    tracing::warn!(error = %err, delay_ms = delay.as_millis() as u64, "accept failed; backing off");
    tokio::time::sleep(delay).await;
}
