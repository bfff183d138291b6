//! The russh handler: who may log in, and which channels they may open.
//!
//! Authentication is publickey only (russh offers no other method): a user certificate from a
//! trusted CA (see `certs`) or a key the policy says is registered. Everything a client may ask
//! for besides `direct-tcpip` is refused, with the reason in the refusal where SSH carries one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use russh::keys::ssh_key::{Certificate, Fingerprint, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelOpenFailure};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::certs::check_user_certificate;
use crate::config::{JumpConfig, Prepared};
use crate::limits::{Stats, UserLimits, UserSlot};
use crate::{JumpPolicy, splice};

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) russh: Arc<russh::server::Config>,
    pub(crate) policy: Arc<dyn JumpPolicy>,
    pub(crate) user_cas: Vec<Fingerprint>,
    pub(crate) limits: UserLimits,
    pub(crate) stats: Stats,
    pub(crate) idle_timeout: Duration,
    pub(crate) auth_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) accept_proxy_protocol: bool,
    /// Connection and channel tasks, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
}

impl Shared {
    pub(crate) fn new(
        config: JumpConfig,
        prepared: Prepared,
        policy: Arc<dyn JumpPolicy>,
        tracker: TaskTracker,
    ) -> Shared {
        Shared {
            russh: Arc::new(prepared.russh),
            policy,
            user_cas: prepared.user_cas,
            limits: UserLimits::new(config.max_connections_per_user),
            stats: Stats::default(),
            idle_timeout: config.idle_timeout,
            auth_timeout: config.auth_timeout,
            connect_timeout: config.connect_timeout,
            accept_proxy_protocol: config.accept_proxy_protocol,
            tracker,
        }
    }
}

/// State of one connection, shared by its task, its handler and its channel tasks.
pub(crate) struct ConnState {
    /// The client's address (from the PROXY header when there is one).
    pub(crate) client: SocketAddr,
    /// Cancelled when the connection ends or must end; stops its channel tasks.
    pub(crate) cancel: CancellationToken,
    user: OnceLock<String>,
    /// Signalled once `user` is set, so the connection task moves from the auth deadline to
    /// the idle one. `notify_one` keeps a permit, so a login before anyone waits is not missed.
    pub(crate) logged_in: Notify,
    started: Instant,
    /// Milliseconds after `started` of the last channel traffic (or of login).
    last_activity_ms: AtomicU64,
    /// The name last tried and whether a refusal for it was already logged, so a connection
    /// that gives up (or that russh refused before asking us) is still logged once.
    attempt: Mutex<Option<(String, bool)>>,
}

impl ConnState {
    pub(crate) fn new(client: SocketAddr, cancel: CancellationToken) -> ConnState {
        ConnState {
            client,
            cancel,
            user: OnceLock::new(),
            logged_in: Notify::new(),
            started: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            attempt: Mutex::new(None),
        }
    }

    /// The authenticated user, once there is one.
    pub(crate) fn user(&self) -> Option<&str> {
        self.user.get().map(String::as_str)
    }

    /// Records channel traffic now.
    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection falls idle unless more traffic comes.
    pub(crate) fn idle_deadline(&self, idle: Duration) -> Instant {
        self.started + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed)) + idle
    }

    fn note_attempt(&self, user: &str, refused: bool) {
        let mut attempt = self.attempt.lock().unwrap_or_else(|p| p.into_inner());
        match attempt.as_mut() {
            Some((name, logged)) if name == user => *logged |= refused,
            _ => *attempt = Some((user.to_owned(), refused)),
        }
    }

    /// The last login name tried, if its failure was not logged yet.
    pub(crate) fn unlogged_attempt(&self) -> Option<String> {
        let attempt = self.attempt.lock().unwrap_or_else(|p| p.into_inner());
        match attempt.as_ref() {
            Some((name, false)) => Some(name.clone()),
            _ => None,
        }
    }
}

/// The russh handler of one connection.
pub(crate) struct ConnHandler {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: Arc<ConnState>,
    /// Held while authenticated; dropping the handler (the session ended) returns it.
    slot: Option<UserSlot>,
}

impl ConnHandler {
    pub(crate) fn new(shared: Arc<Shared>, conn: Arc<ConnState>) -> ConnHandler {
        ConnHandler { shared, conn, slot: None }
    }

    fn refuse_login(&self, user: &str, reason: &str) -> Auth {
        tracing::warn!(user, client = %self.conn.client, target = "login", reason, "refused");
        Stats::bump(&self.shared.stats.login_refusals);
        self.conn.note_attempt(user, true);
        Auth::reject()
    }

    /// Admits `user` if they have a connection slot left.
    fn admit(&mut self, user: &str, how: &str) -> Auth {
        let Some(slot) = self.shared.limits.acquire(user) else {
            Stats::bump(&self.shared.stats.limit_refusals);
            let reason = format!("connection limit reached ({} per user)", self.shared.limits.max());
            return self.refuse_login(user, &reason);
        };
        self.slot = Some(slot);
        // A second successful authentication cannot happen: russh stops reading auth
        // requests once one succeeds.
        let _ = self.conn.user.set(user.to_owned());
        self.conn.touch();
        self.conn.logged_in.notify_one();
        self.conn.note_attempt(user, true);
        Stats::bump(&self.shared.stats.logins);
        tracing::info!(user, client = %self.conn.client, how, "logged in");
        Auth::Accept
    }

    fn current_user(&self) -> String {
        self.conn.user().unwrap_or("-").to_owned()
    }

    async fn refuse_channel(&self, reply: ChannelOpenHandle, kind: &str, reason: &str) {
        refuse_channel(&self.shared, &self.conn, &self.current_user(), kind, 1, reason);
        reply.reject(ChannelOpenFailure::Other { code: 1, reason: reason.to_owned() }).await;
    }

    fn refuse_request(&self, target: &str) -> bool {
        refuse_channel(&self.shared, &self.conn, &self.current_user(), target, 1, NOT_OFFERED);
        false
    }
}

/// Logs and counts a refused channel or request.
fn refuse_channel(shared: &Shared, conn: &ConnState, user: &str, target: &str, code: u32, reason: &str) {
    tracing::warn!(user, client = %conn.client, target, code, reason, "refused");
    Stats::bump(&shared.stats.channel_refusals);
}

const NOT_OFFERED: &str = "the Trellis jump host only forwards connections (ssh -J / ProxyJump): \
     it offers no shell, command, subsystem, agent, X11 or remote forwarding";

impl russh::server::Handler for ConnHandler {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        // Every OpenSSH client asks this first to learn the methods; not a refusal by itself.
        self.conn.note_attempt(user, false);
        Ok(Auth::reject())
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(self.refuse_login(user, "password authentication is not offered"))
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        _offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // The decision needs to know whether a certificate was offered, which russh only
        // tells after the signature, so every key proceeds to it.
        self.conn.note_attempt(user, false);
        Ok(Auth::Accept)
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        let line = match PublicKey::new(key.public_key.key_data().clone(), "").to_openssh() {
            Ok(line) => line,
            Err(_) => return Ok(self.refuse_login(user, "public key cannot be encoded")),
        };
        if !self.shared.policy.accepts_key(user, line.trim()).await {
            return Ok(self.refuse_login(user, "public key is not registered to an active account"));
        }
        Ok(self.admit(user, "registered key"))
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if let Err(refusal) =
            check_user_certificate(certificate, user, &self.shared.user_cas, now, self.conn.client.ip())
        {
            return Ok(self.refuse_login(user, &refusal.to_string()));
        }
        if !self.shared.policy.account_active(user).await {
            return Ok(self.refuse_login(user, "account is not active"));
        }
        Ok(self.admit(user, "certificate"))
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_channel(reply, "session", NOT_OFFERED).await;
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_channel(reply, "x11", NOT_OFFERED).await;
        Ok(())
    }

    async fn channel_open_forwarded_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let target = format!("forwarded-tcpip {host_to_connect}:{port_to_connect}");
        self.refuse_channel(reply, &target, NOT_OFFERED).await;
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let target = format!("direct-streamlocal {socket_path}");
        self.refuse_channel(reply, &target, "forwarding to UNIX sockets is not offered").await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(user) = self.conn.user().map(str::to_owned) else {
            // russh only opens channels after authentication.
            self.refuse_channel(reply, "direct-tcpip", "not authenticated").await;
            return Ok(());
        };
        let shared = self.shared.clone();
        let conn = self.conn.clone();
        let host = host_to_connect.to_owned();
        // Resolving and connecting may be slow; the session keeps serving its other
        // channels meanwhile.
        self.shared.tracker.spawn(async move {
            let cancel = conn.cancel.clone();
            tokio::select! {
                () = open_direct_tcpip(shared, conn, user, host, port_to_connect, channel, reply) => {}
                () = cancel.cancelled() => {}
            }
        });
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(self.refuse_request(&format!("tcpip-forward {address}:{port}")))
    }

    async fn streamlocal_forward(
        &mut self,
        socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(self.refuse_request(&format!("streamlocal-forward {socket_path}")))
    }
}

/// Resolves, connects, answers the channel open, then splices until either side is done.
async fn open_direct_tcpip(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    user: String,
    host: String,
    port: u32,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
) {
    let target = format!("{host}:{port}");
    let connected = match shared.policy.resolve(&user, &host, port).await {
        Err(reason) => Err((1, reason)),
        Ok(addr) => match tokio::time::timeout(shared.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => Ok((addr, tcp)),
            Ok(Err(e)) => Err((2, format!("could not connect to {target}: {e}"))),
            Err(_) => Err((2, format!("timed out connecting to {target}"))),
        },
    };
    let (addr, tcp) = match connected {
        Ok(connected) => connected,
        Err((code, reason)) => {
            refuse_channel(&shared, &conn, &user, &target, code, &reason);
            reply.reject(ChannelOpenFailure::Other { code, reason }).await;
            return;
        }
    };
    // SSH is interactive as often as bulk; do not let Nagle hold keystrokes back.
    let _ = tcp.set_nodelay(true);
    reply.accept().await;
    Stats::bump(&shared.stats.channels_opened);
    tracing::info!(user, client = %conn.client, target, %addr, "channel opened");
    conn.touch();
    let (up, down) = splice::run(channel, tcp, &conn, &shared.stats).await;
    tracing::debug!(user, target, bytes_to_target = up, bytes_to_client = down, "channel closed");
}
