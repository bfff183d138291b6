//! The accept loops and one task per connection.
//!
//! The connection task owns the deadlines russh does not know about: the client must
//! authenticate within `auth_timeout` of being accepted, and an authenticated connection is
//! disconnected after `idle_timeout` without channel traffic. It also ends the connection on
//! shutdown. Ending is polite first (an SSH disconnect message with the reason), then, after a
//! grace period, forced: the channel tasks are cancelled and the socket is shut down under
//! russh, whose session task we cannot abort directly.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use russh::Disconnect;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::handler::{ConnHandler, ConnState, Shared};
use crate::limits::Stats;
use crate::{DISCONNECT_GRACE, proxy_protocol};

/// Read buffer under russh, which reads every packet with two exact-size reads: with it, one
/// system call usually brings in several packets.
const READ_BUFFER: usize = 256 * 1024;

/// Accepts connections on `listener` until `cancel`.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = cancel.cancelled() => return,
        };
        match accepted {
            Ok((socket, peer)) => {
                backoff = Duration::from_millis(5);
                Stats::bump(&shared.stats.connections_accepted);
                shared.tracker.spawn(serve(socket, peer, shared.clone(), cancel.child_token()));
            }
            // Out of descriptors or memory: waiting lets connections finish and free some,
            // where retrying at once would spin.
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Decrements the open-connection count however the task ends.
struct OpenGuard<'a>(&'a Stats);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(mut socket: TcpStream, peer: SocketAddr, shared: Arc<Shared>, cancel: CancellationToken) {
    shared.stats.connections_open.fetch_add(1, Ordering::Relaxed);
    let _open = OpenGuard(&shared.stats);
    let accepted_at = Instant::now();
    let auth_deadline = accepted_at + shared.auth_timeout;
    let _ = socket.set_nodelay(true);
    // A second descriptor for the socket, to shut it down under russh if it will not end.
    let cutter = socket.as_fd().try_clone_to_owned().ok().map(std::net::TcpStream::from);

    let client = if shared.accept_proxy_protocol {
        let header = tokio::select! {
            header = timeout_at(auth_deadline, proxy_protocol::read_header(&mut socket)) => header,
            () = cancel.cancelled() => return,
        };
        match header {
            Ok(Ok(Some(client))) => client,
            Ok(Ok(None)) => peer,
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "dropped connection without a valid PROXY header");
                return;
            }
            Err(_) => {
                tracing::warn!(%peer, "dropped connection: no PROXY header before the auth timeout");
                return;
            }
        }
    } else {
        peer
    };

    let conn = Arc::new(ConnState::new(client, cancel.clone()));
    let handler = ConnHandler::new(shared.clone(), conn.clone());
    let stream = BufReader::with_capacity(READ_BUFFER, socket);
    let started = tokio::select! {
        started = timeout_at(auth_deadline, russh::server::run_stream(shared.russh.clone(), stream, handler)) => started,
        () = cancel.cancelled() => return,
    };
    let session = match started {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            tracing::debug!(%client, error = %e, "SSH handshake failed");
            return;
        }
        Err(_) => {
            log_unauthenticated(&shared, &conn, "authentication timed out", true);
            return;
        }
    };
    let handle = session.handle();
    tokio::pin!(session);

    let reason = loop {
        let authenticated = conn.user().is_some();
        let wake = if authenticated {
            Instant::from_std(conn.idle_deadline(shared.idle_timeout))
        } else {
            auth_deadline
        };
        tokio::select! {
            // Logged in: loop to sleep until the idle deadline instead.
            () = conn.logged_in.notified(), if !authenticated => {}
            result = &mut session => {
                if let Err(e) = result {
                    tracing::debug!(%client, error = %e, "session ended with an error");
                }
                break None;
            }
            () = cancel.cancelled() => break Some("the jump host is shutting down"),
            () = sleep_until(wake) => {
                if conn.user().is_none() {
                    log_unauthenticated(&shared, &conn, "authentication timed out", true);
                    break Some("authentication timed out");
                }
                // Traffic since the deadline was computed moved it; sleep again.
                if std::time::Instant::now() >= conn.idle_deadline(shared.idle_timeout) {
                    tracing::info!(user = conn.user(), %client, "disconnecting idle connection");
                    break Some("idle timeout: no traffic on any channel");
                }
            }
        }
    };

    if let Some(reason) = reason {
        let polite = async {
            let _ = handle.disconnect(Disconnect::ByApplication, reason.to_owned(), String::new()).await;
            (&mut session).await
        };
        if timeout(DISCONNECT_GRACE, polite).await.is_err() {
            // Channel tasks first: russh may be blocked handing data to one of them.
            conn.cancel.cancel();
            if let Some(cutter) = &cutter {
                let _ = cutter.shutdown(std::net::Shutdown::Both);
            }
            if timeout(DISCONNECT_GRACE, &mut session).await.is_err() {
                tracing::warn!(%client, "session did not end after its socket was shut down");
            }
        }
    }
    conn.cancel.cancel();
    if conn.user().is_none() && reason.is_none() {
        log_unauthenticated(&shared, &conn, "authentication failed: no acceptable key or certificate", false);
    }
    tracing::debug!(user = conn.user(), %client, seconds = accepted_at.elapsed().as_secs(), "connection closed");
}

/// Logs a connection that tried a login name and never authenticated, unless a refusal for
/// that name was already logged (russh refuses expired or forged certificates before asking
/// the handler, so this is where those show up).
/// A timeout is logged even before any name was tried.
fn log_unauthenticated(shared: &Shared, conn: &ConnState, reason: &str, timed_out: bool) {
    let user = match conn.unlogged_attempt() {
        Some(user) => user,
        None if timed_out => "-".to_owned(),
        None => return,
    };
    tracing::warn!(user, client = %conn.client, target = "login", reason, "refused");
    Stats::bump(&shared.stats.login_refusals);
}
