//! Plain TCP connections to backends for the fast path, kept per backend for reuse.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};

/// A connection idle longer than this is not reused (the backend may be about to close it).
const MAX_IDLE: Duration = Duration::from_secs(60);
/// Idle connections kept per backend; more are closed when they come back.
const MAX_IDLE_PER_BACKEND: usize = 512;

/// A backend's idle connections, most recently used last.
#[derive(Default)]
pub(crate) struct IdleStreams(Mutex<Vec<(TcpStream, Instant)>>);

impl std::fmt::Debug for IdleStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleStreams").finish_non_exhaustive()
    }
}

impl IdleStreams {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(TcpStream, Instant)>> {
        // A push or pop cannot leave the list inconsistent.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recently used connection that is still open.
    pub(crate) fn take(&self) -> Option<TcpStream> {
        let mut idle = self.lock();
        while let Some((stream, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE && is_quiet(&stream) {
                return Some(stream);
            }
        }
        None
    }

    pub(crate) fn put(&self, stream: TcpStream) {
        let now = Instant::now();
        let mut idle = self.lock();
        // The oldest connections sit at the bottom when traffic never needs them; close those
        // the backend may be about to close anyway.
        if idle.first().is_some_and(|(_, since)| now.duration_since(*since) >= MAX_IDLE) {
            idle.remove(0);
        }
        if idle.len() < MAX_IDLE_PER_BACKEND {
            idle.push((stream, now));
        }
    }
}

/// An idle connection has nothing to read: a FIN (the backend closed it) or stray bytes mean
/// it cannot carry another request.
fn is_quiet(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(err) if err.kind() == io::ErrorKind::WouldBlock)
}

pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, async {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        // Finds backends that vanished without a FIN on long-idle pooled connections.
        socket.set_keepalive(true)?;
        socket.connect(addr).await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}
