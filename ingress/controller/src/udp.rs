//! UDP forwarding for udp node routes (the proxy library forwards only TCP).
//!
//! Each client address gets an upstream socket of its own, connected to the backend, so the
//! backend's answers can be told apart and sent back to the right client. A session whose
//! client and backend have both been quiet for the idle time is dropped with its socket.
//! Datagrams are not queued beyond the sockets' own buffers; one that cannot be sent is
//! dropped, as a router would.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// A running UDP forwarder; dropping it stops it and every session.
#[derive(Debug)]
pub struct UdpForwarder {
    local: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

#[derive(Debug)]
struct Shared {
    backend: Mutex<SocketAddr>,
    sessions: Mutex<HashMap<SocketAddr, Arc<Session>>>,
    idle: Duration,
    max_sessions: usize,
}

#[derive(Debug)]
struct Session {
    upstream: UdpSocket,
    last_active: Mutex<Instant>,
}

impl Session {
    fn touch(&self) {
        *lock(&self.last_active) = Instant::now();
    }

    fn quiet_since(&self) -> Instant {
        *lock(&self.last_active)
    }
}

/// Locks a mutex that is never held across a panic-prone section.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl UdpForwarder {
    /// Binds `listen` and forwards what arrives to `backend` until dropped or until `parent`
    /// fires. Must be called within a Tokio runtime.
    pub fn bind(
        listen: SocketAddr,
        backend: SocketAddr,
        idle: Duration,
        max_sessions: usize,
        parent: &CancellationToken,
    ) -> io::Result<UdpForwarder> {
        let socket = std::net::UdpSocket::bind(listen)?;
        socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(socket)?);
        let local = socket.local_addr()?;
        let shared = Arc::new(Shared {
            backend: Mutex::new(backend),
            sessions: Mutex::new(HashMap::new()),
            idle,
            max_sessions: max_sessions.max(1),
        });
        let stop = parent.child_token();
        tokio::spawn(receive(socket, shared.clone(), stop.clone()));
        Ok(UdpForwarder { local, shared, stop })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Where new sessions go; sessions already open stay with their backend until they expire.
    pub fn set_backend(&self, backend: SocketAddr) {
        *lock(&self.shared.backend) = backend;
    }

    /// The backend new sessions go to.
    pub fn backend(&self) -> SocketAddr {
        *lock(&self.shared.backend)
    }

    /// How many clients have a session.
    pub fn sessions(&self) -> usize {
        lock(&self.shared.sessions).len()
    }
}

impl Drop for UdpForwarder {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Reads client datagrams and hands each to its client's session.
async fn receive(socket: Arc<UdpSocket>, shared: Arc<Shared>, stop: CancellationToken) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let (length, client) = tokio::select! {
            _ = stop.cancelled() => break,
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(err) => {
                    // Errors here are per datagram (an ICMP error for an earlier send, a
                    // truncated read); the socket itself stays usable.
                    tracing::debug!(local = ?socket.local_addr().ok(), error = %err, "udp receive failed");
                    continue;
                }
            },
        };
        let existing = lock(&shared.sessions).get(&client).cloned();
        let session = match existing {
            Some(session) => session,
            None => match open_session(&socket, &shared, client, &stop).await {
                Some(session) => session,
                None => continue,
            },
        };
        session.touch();
        // A UDP send waits only while the socket buffer is full, which it rarely is; `try_send`
        // would fail on a socket whose writability the reactor has not reported yet.
        if let Err(err) = session.upstream.send(&buffer[..length]).await {
            tracing::debug!(%client, error = %err, "udp datagram to the backend dropped");
        }
    }
    lock(&shared.sessions).clear();
}

async fn open_session(
    socket: &Arc<UdpSocket>,
    shared: &Arc<Shared>,
    client: SocketAddr,
    stop: &CancellationToken,
) -> Option<Arc<Session>> {
    if lock(&shared.sessions).len() >= shared.max_sessions {
        tracing::debug!(%client, "udp datagram dropped: too many sessions");
        return None;
    }
    let backend = *lock(&shared.backend);
    let unspecified = match backend.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let upstream = async {
        let upstream = UdpSocket::bind(SocketAddr::new(unspecified, 0)).await?;
        upstream.connect(backend).await?;
        Ok::<_, io::Error>(upstream)
    };
    let upstream = match upstream.await {
        Ok(upstream) => upstream,
        Err(err) => {
            tracing::warn!(%client, %backend, error = %err, "cannot open a udp session");
            return None;
        }
    };
    let session = Arc::new(Session { upstream, last_active: Mutex::new(Instant::now()) });
    lock(&shared.sessions).insert(client, session.clone());
    tokio::spawn(reply(socket.clone(), shared.clone(), session.clone(), client, stop.clone()));
    Some(session)
}

/// Sends the backend's answers back to one client until the session is idle.
async fn reply(
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    session: Arc<Session>,
    client: SocketAddr,
    stop: CancellationToken,
) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let expires = session.quiet_since() + shared.idle;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(expires) => {
                if session.quiet_since() + shared.idle <= Instant::now() {
                    let mut sessions = lock(&shared.sessions);
                    if sessions.get(&client).is_some_and(|s| Arc::ptr_eq(s, &session)) {
                        sessions.remove(&client);
                    }
                    return;
                }
            }
            received = session.upstream.recv(&mut buffer) => match received {
                Ok(length) => {
                    session.touch();
                    if let Err(err) = socket.send_to(&buffer[..length], client).await {
                        tracing::debug!(%client, error = %err, "udp datagram to the client dropped");
                    }
                }
                // A connected socket reports the backend's ICMP "port unreachable" here; the
                // client may try again, so the session stays.
                Err(err) => tracing::debug!(%client, error = %err, "udp receive from the backend failed"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP server answering every datagram with `<name>:<datagram>`.
    async fn echo(name: &'static str) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; MAX_DATAGRAM];
            while let Ok((n, from)) = socket.recv_from(&mut buffer).await {
                let mut answer = format!("{name}:").into_bytes();
                answer.extend_from_slice(&buffer[..n]);
                let _ = socket.send_to(&answer, from).await;
            }
        });
        addr
    }

    async fn ask(client: &UdpSocket, to: SocketAddr, text: &str) -> String {
        client.send_to(text.as_bytes(), to).await.unwrap();
        let mut buffer = vec![0u8; 1024];
        let (n, from) = tokio::time::timeout(Duration::from_secs(10), client.recv_from(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, to, "the answer comes from the forwarder's address");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    }

    #[tokio::test]
    async fn each_client_gets_its_own_answers_and_idle_sessions_expire() {
        let backend = echo("one").await;
        let cancel = CancellationToken::new();
        let forwarder = UdpForwarder::bind(
            "127.0.0.1:0".parse().unwrap(),
            backend,
            Duration::from_millis(300),
            16,
            &cancel,
        )
        .unwrap();
        let addr = forwarder.local_addr();
        let alice = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let bob = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(ask(&alice, addr, "from alice").await, "one:from alice");
        assert_eq!(ask(&bob, addr, "from bob").await, "one:from bob");
        assert_eq!(ask(&alice, addr, "again").await, "one:again");
        assert_eq!(forwarder.sessions(), 2);

        // New sessions go to a new backend; the sessions are gone once idle.
        forwarder.set_backend(echo("two").await);
        while forwarder.sessions() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(ask(&alice, addr, "later").await, "two:later");
        assert_eq!(forwarder.sessions(), 1);

        drop(forwarder);
        // The port is free again once the forwarder's task has seen the stop.
        let mut rebound = None;
        for _ in 0..100 {
            if let Ok(socket) = std::net::UdpSocket::bind(addr) {
                rebound = Some(socket);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(rebound.is_some(), "the forwarder kept {addr} after it was dropped");
    }

    #[tokio::test]
    async fn clients_beyond_the_limit_are_not_served() {
        let backend = echo("one").await;
        let cancel = CancellationToken::new();
        let forwarder =
            UdpForwarder::bind("127.0.0.1:0".parse().unwrap(), backend, Duration::from_secs(60), 1, &cancel)
                .unwrap();
        let addr = forwarder.local_addr();
        let first = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(ask(&first, addr, "hi").await, "one:hi");
        let second = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        second.send_to(b"hello?", addr).await.unwrap();
        // The first client is still served after the second one's datagram was dropped, and
        // no session was opened for the second.
        assert_eq!(ask(&first, addr, "still").await, "one:still");
        assert_eq!(forwarder.sessions(), 1);
        cancel.cancel();
    }
}
