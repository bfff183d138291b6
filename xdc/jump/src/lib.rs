//! The portal's SSH jump host (ports 2202 and 2022 in production).
//!
//! Users reach their experiment development containers (XDCs) with `ssh -J alice@portal xdc`:
//! the client authenticates here with a portal-signed user certificate or a registered public
//! key, then asks for a `direct-tcpip` channel to the XDC, which this crate resolves through a
//! [`JumpPolicy`], connects and splices.
//! Nothing else is offered: no shell, exec, subsystem, pty, X11, agent or remote forwarding, and
//! no password or keyboard-interactive login.
//!
//! This crate is the only one in the workspace that uses `russh`; keys and certificates cross
//! its API as OpenSSH text so callers need not share its `ssh-key` version.
//!
//! # Layout
//! - `config`: [`JumpConfig`], and turning its keys into russh's server configuration.
//! - `certs`: checks on a user certificate (CA, type, principal, validity, options); pure.
//! - `handler`: the russh [`Handler`](russh::server::Handler): authentication and channel policy.
//! - `conn`: one task per TCP connection: PROXY header, auth timeout, idle timeout, shutdown.
//! - `splice`: copies between a `direct-tcpip` channel and the TCP connection to the target.
//! - `proxy_protocol`: PROXY protocol v2 header parsing (the ingress may prepend one).
//! - `limits`: per-user connection slots and the counters behind [`JumpStats`].

mod config;

mod certs;
mod conn;
mod handler;
mod limits;
mod proxy_protocol;
mod splice;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{CipherPreference, JumpConfig};
pub use limits::JumpStats;

/// What the jump host asks the portal: who may log in and where their channels go.
///
/// Called on the connection's task; implementations should answer from a cache or a quick
/// store read, since a slow answer delays that user's login or channel.
#[async_trait::async_trait]
pub trait JumpPolicy: Send + Sync + 'static {
    /// Whether `public_key` (OpenSSH one-line form, no comment) is registered to `user` and
    /// the account may log in.
    async fn accepts_key(&self, user: &str, public_key: &str) -> bool;

    /// Whether `user`, already authenticated by a certificate, may log in at all (an active
    /// account).
    async fn account_active(&self, user: &str) -> bool;

    /// Where a `direct-tcpip` channel to (`host`, `port`) goes for `user`, or why not.
    /// The reason is logged and returned to the client in the channel-open failure.
    async fn resolve(&self, user: &str, host: &str, port: u32) -> Result<SocketAddr, String>;
}

/// Why the jump host could not start.
#[derive(Debug, thiserror::Error)]
pub enum JumpError {
    /// The host private key is not an OpenSSH private key.
    #[error("the host private key is not a valid OpenSSH private key")]
    HostKey(#[source] russh::keys::ssh_key::Error),
    /// The host private key is passphrase-protected.
    #[error("the host private key is encrypted")]
    HostKeyEncrypted,
    /// The host certificate is not an OpenSSH certificate.
    #[error("the host certificate is not a valid OpenSSH certificate")]
    HostCertificate(#[source] russh::keys::ssh_key::Error),
    /// The host certificate does not certify the host key, or is not a host certificate.
    #[error("the host certificate {0}")]
    HostCertificateMismatch(&'static str),
    /// A user CA line is not an OpenSSH public key.
    #[error("user CA public key #{index} is not a valid OpenSSH public key")]
    UserCa {
        index: usize,
        #[source]
        source: russh::keys::ssh_key::Error,
    },
    /// The configuration has no listen address.
    #[error("no listen address configured")]
    NoListenAddress,
    /// A listen address could not be bound.
    #[error("could not listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running jump host. Dropping it stops accepting and disconnects every client, like
/// [`JumpHost::shutdown`] without waiting.
pub struct JumpHost {
    local_addrs: Vec<SocketAddr>,
    shared: Arc<handler::Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl JumpHost {
    /// Binds every listen address and starts accepting connections.
    pub async fn start(config: JumpConfig, policy: Arc<dyn JumpPolicy>) -> Result<JumpHost, JumpError> {
        if config.listen.is_empty() {
            return Err(JumpError::NoListenAddress);
        }
        let prepared = config.prepare()?;
        let mut listeners = Vec::with_capacity(config.listen.len());
        for addr in &config.listen {
            let listener =
                TcpListener::bind(addr).await.map_err(|source| JumpError::Bind { addr: *addr, source })?;
            listeners.push(listener);
        }
        let local_addrs = listeners
            .iter()
            .zip(&config.listen)
            .map(|(listener, addr)| listener.local_addr().unwrap_or(*addr))
            .collect::<Vec<_>>();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let shared = Arc::new(handler::Shared::new(config, prepared, policy, tracker.clone()));
        for listener in listeners {
            tracker.spawn(conn::accept_loop(listener, shared.clone(), cancel.clone()));
        }
        tracing::info!(addrs = ?local_addrs, "SSH jump host listening");
        Ok(JumpHost { local_addrs, shared, cancel, tracker })
    }

    /// The bound addresses, in the order of [`JumpConfig::listen`] (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.local_addrs.clone()
    }

    /// Counters since start.
    pub fn stats(&self) -> JumpStats {
        self.shared.stats.snapshot()
    }

    /// Stops accepting, tells every client the host is shutting down, and waits for the
    /// connections to end (each is cut after a short grace period).
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for JumpHost {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.tracker.close();
    }
}

/// How long a connection told to go away may take to close before its socket is cut.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);
