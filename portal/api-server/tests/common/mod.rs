//! An in-process portal for integration tests: the real router on a loopback port, over a real
//! store (embedded in a temp dir, or etcd), reached through the generated tonic clients.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::identity_client::IdentityClient;
use trellis_api::portal::v1::workspace_client::WorkspaceClient;
use trellis_api_server::{Portal, PortalConfig};
use trellis_policy::{Policy, PolicyHandle};
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;

pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "user-password-1";

/// A running portal; stops when dropped.
pub struct TestPortal {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    cancel: CancellationToken,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestPortal {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| tonic::Status::internal("token is not a valid header"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

pub type Ws = WorkspaceClient<InterceptedService<Channel, Bearer>>;
pub type Id = IdentityClient<InterceptedService<Channel, Bearer>>;

impl TestPortal {
    /// A portal on a fresh embedded store with the built-in policy.
    pub async fn start() -> TestPortal {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("state.redb")).expect("store"));
        let mut portal = TestPortal::start_on(store, PolicyHandle::fixed(Policy::builtin())).await;
        portal._dir = Some(dir);
        portal
    }

    /// A portal on a fresh embedded store with the built-in policy and `config`.
    pub async fn start_with(config: PortalConfig) -> TestPortal {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("state.redb")).expect("store"));
        let mut portal = TestPortal::start_full(store, PolicyHandle::fixed(Policy::builtin()), config).await;
        portal._dir = Some(dir);
        portal
    }

    /// A portal over `store` governed by `policy`.
    pub async fn start_on(store: Arc<dyn Store>, policy: PolicyHandle) -> TestPortal {
        TestPortal::start_full(store, policy, PortalConfig::default()).await
    }

    /// A portal over `store` governed by `policy`, with `config`.
    pub async fn start_full(store: Arc<dyn Store>, policy: PolicyHandle, config: PortalConfig) -> TestPortal {
        let portal = Portal::new(store.clone(), policy, config).await.expect("portal");
        portal.workspace().bootstrap_admin(Some(ADMIN_PASSWORD.to_owned())).await.expect("bootstrap admin");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        let router = portal.router();
        tokio::spawn(trellis_api_server::serve(listener, router, cancel.clone()));
        TestPortal { addr, store, cancel, _dir: None }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).expect("uri").connect().await.expect("connect")
    }

    /// Clients carrying `token` (or none).
    pub async fn clients(&self, token: Option<String>) -> (Ws, Id) {
        let channel = self.channel().await;
        (
            WorkspaceClient::with_interceptor(channel.clone(), Bearer(token.clone())),
            IdentityClient::with_interceptor(channel, Bearer(token)),
        )
    }

    /// Logs in and returns the token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let (_, mut id) = self.clients(None).await;
        id.login(pb::LoginRequest { username: username.into(), password: password.into() })
            .await
            .unwrap_or_else(|e| panic!("login {username}: {e}"))
            .into_inner()
            .token
    }

    /// Clients logged in as the administrator.
    pub async fn admin(&self) -> (Ws, Id) {
        let token = self.login("admin", ADMIN_PASSWORD).await;
        self.clients(Some(token)).await
    }

    /// Registers `username` (password [`PASSWORD`]); active when `activate`.
    pub async fn user(&self, username: &str, activate: bool) {
        let (_, mut id) = self.clients(None).await;
        id.register(pb::RegisterRequest {
            username: username.into(),
            email: format!("{username}@example.org"),
            password: PASSWORD.into(),
            name: username.into(),
            institution: "Other".into(),
            category: "Researcher".into(),
            country: "US".into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("register {username}: {e}"));
        if activate {
            let (mut ws, _) = self.admin().await;
            ws.activate_user(pb::ActivateUserRequest { username: username.into(), ..Default::default() })
                .await
                .unwrap_or_else(|e| panic!("activate {username}: {e}"));
        }
    }

    /// Clients logged in as `username` (password [`PASSWORD`]).
    pub async fn as_user(&self, username: &str) -> (Ws, Id) {
        let token = self.login(username, PASSWORD).await;
        self.clients(Some(token)).await
    }
}

// === helpers shared by the policy tests ===

pub fn done<T>(r: Result<tonic::Response<T>, Status>) -> Result<(), Status> {
    r.map(drop)
}

pub fn active(role: pb::member::Role) -> pb::Member {
    pb::Member { role: role as i32, state: pb::member::State::Active as i32 }
}

pub fn members(list: &[(&str, pb::member::Role)]) -> Option<pb::MembershipUpdate> {
    Some(pb::MembershipUpdate {
        set: list.iter().map(|(name, role)| (name.to_string(), active(*role))).collect(),
        remove: vec![],
    })
}

/// A distinct, well-formed OpenSSH ed25519 public key line.
pub fn ssh_key(n: u32) -> String {
    let mut blob = Vec::new();
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    let mut raw = [7u8; 32];
    raw[..4].copy_from_slice(&n.to_be_bytes());
    blob.extend_from_slice(&raw);
    format!("ssh-ed25519 {} row{n}", base64::engine::general_purpose::STANDARD.encode(blob))
}

/// The response, or `None` for NOT_FOUND; anything else is a harness failure.
pub fn found<T>(r: Result<tonic::Response<T>, Status>) -> Option<T> {
    match r {
        Ok(r) => Some(r.into_inner()),
        Err(e) if e.code() == Code::NotFound => None,
        Err(e) => panic!("reading back an effect: {e:?}"),
    }
}
