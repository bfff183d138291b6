//! Connections to backends (plain TCP, or TLS for pools that ask for it), kept per backend
//! for reuse.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

use crate::pool::Upstream;

/// A connection to a backend.
#[derive(Debug)]
pub(crate) enum BackendStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl BackendStream {
    fn tcp(&self) -> &TcpStream {
        match self {
            BackendStream::Plain(stream) => stream,
            BackendStream::Tls(stream) => stream.get_ref().0,
        }
    }
}

impl AsyncRead for BackendStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            BackendStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            BackendStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            BackendStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            BackendStream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A backend's idle fast-path connections.
pub(crate) type IdleStreams = crate::http::idle::IdleList<BackendStream>;

impl BackendStream {
    /// An idle connection has nothing to read: a FIN (the backend closed it), a TLS alert or
    /// stray bytes mean it cannot carry another request. Peeked, not read, so a TLS session's
    /// bytes stay where rustls expects them.
    pub(crate) fn is_quiet(&self) -> bool {
        is_quiet(self.tcp())
    }
}

fn is_quiet(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    let mut probe = ReadBuf::new(&mut probe);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    stream.poll_peek(&mut cx, &mut probe).is_pending()
}

/// Connects to `addr`, with TLS when `upstream` asks for it.
pub(crate) async fn connect(
    addr: SocketAddr,
    upstream: &Upstream,
    timeout: Duration,
) -> io::Result<BackendStream> {
    let connecting = async {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        // Finds backends that vanished without a FIN on long-idle pooled connections.
        socket.set_keepalive(true)?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        match upstream {
            Upstream::Plain => Ok(BackendStream::Plain(stream)),
            Upstream::Tls(tls) => Ok(BackendStream::Tls(Box::new(tls.connect(stream, addr).await?))),
            Upstream::Broken(reason) => Err(io::Error::other(format!("backend TLS is not set up: {reason}"))),
        }
    };
    tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}
