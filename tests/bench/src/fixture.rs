//! The system under test: a store backend, the portal on a loopback port over it, and the
//! accounts and projects the measured calls use.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::identity_client::IdentityClient;
use trellis_api::portal::v1::workspace_client::WorkspaceClient;
use trellis_api_server::{Portal, PortalConfig};
use trellis_policy::{Policy, PolicyHandle};
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;
use trellis_store::etcd::EtcdStore;
use trellis_testkit::etcd::EtcdServer;

use crate::counting::{CountingStore, Counts};

/// The administrator's password in the throwaway portal.
const ADMIN_PASSWORD: &str = "bench-admin-password";
/// Every benchmark user's password.
const PASSWORD: &str = "bench-user-password";
/// How long shutdown waits for the server to let go of its connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Which store the portal runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The redb file store, in a temporary directory.
    Embedded,
    /// A real single-member etcd started for the run.
    Etcd,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Embedded => "embedded",
            Backend::Etcd => "etcd",
        })
    }
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<String>);

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

/// A workspace client that sends a bearer token.
pub type Ws = WorkspaceClient<InterceptedService<Channel, Bearer>>;

/// A signed-in, active user who is the creator of one Protected project.
#[derive(Debug, Clone)]
pub struct Member {
    pub token: String,
    pub project: String,
}

/// What keeps the backend alive; dropped last.
enum Holder {
    Embedded(tempfile::TempDir),
    Etcd(EtcdServer),
}

/// A running portal over a counted store.
pub struct Fixture {
    pub backend: Backend,
    pub addr: SocketAddr,
    /// The same store object the portal uses (through the same counting wrapper).
    pub store: Arc<dyn Store>,
    pub counts: Arc<Counts>,
    cancel: CancellationToken,
    server: Option<JoinHandle<std::io::Result<()>>>,
    holder: Option<Holder>,
}

impl Fixture {
    /// Starts `backend` and the portal over it.
    pub async fn start(backend: Backend) -> anyhow::Result<Fixture> {
        let (raw, holder): (Arc<dyn Store>, Holder) = match backend {
            Backend::Embedded => {
                let dir = tempfile::Builder::new().prefix("trellis-bench-").tempdir()?;
                let store = EmbeddedStore::open(&dir.path().join("state.redb"))?;
                (Arc::new(store), Holder::Embedded(dir))
            }
            Backend::Etcd => {
                let server = EtcdServer::start().await.context("starting etcd")?;
                let store = EtcdStore::connect(&[server.endpoint()]).await?;
                (Arc::new(store), Holder::Etcd(server))
            }
        };
        let (counting, counts) = CountingStore::new(raw);
        let store: Arc<dyn Store> = Arc::new(counting);
        let portal =
            Portal::new(store.clone(), PolicyHandle::fixed(Policy::builtin()), PortalConfig::default())
                .await
                .context("building the portal")?;
        portal.workspace().bootstrap_admin(Some(ADMIN_PASSWORD.to_owned())).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let server = tokio::spawn(trellis_api_server::serve(listener, portal.router(), cancel.clone()));
        Ok(Fixture { backend, addr, store, counts, cancel, server: Some(server), holder: Some(holder) })
    }

    /// A fresh HTTP/2 connection to the portal.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(format!("http://{}", self.addr))?.connect().await?)
    }

    /// A workspace client over `channel` carrying `token`.
    pub fn workspace(channel: Channel, token: &str) -> Ws {
        WorkspaceClient::with_interceptor(channel, Bearer(Some(token.to_owned())))
    }

    /// A workspace client over `channel` without a token.
    pub fn anonymous(channel: Channel) -> Ws {
        WorkspaceClient::with_interceptor(channel, Bearer(None))
    }

    async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let mut id = IdentityClient::new(self.channel().await?);
        let reply = id
            .login(pb::LoginRequest { username: username.into(), password: password.into() })
            .await
            .with_context(|| format!("logging in as {username}"))?;
        Ok(reply.into_inner().token)
    }

    /// Registers and activates `username`, logs in and creates the Protected project `project`
    /// with the user as its creator.
    pub async fn member(&self, username: &str, project: &str) -> anyhow::Result<Member> {
        let mut id = IdentityClient::new(self.channel().await?);
        id.register(pb::RegisterRequest {
            username: username.into(),
            email: format!("{username}@example.org"),
            password: PASSWORD.into(),
            name: username.into(),
            institution: "Benchmark".into(),
            category: "Researcher".into(),
            country: "US".into(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("registering {username}"))?;
        let admin_token = self.login("admin", ADMIN_PASSWORD).await?;
        let mut admin = Fixture::workspace(self.channel().await?, &admin_token);
        admin
            .activate_user(pb::ActivateUserRequest { username: username.into(), ..Default::default() })
            .await
            .with_context(|| format!("activating {username}"))?;
        let token = self.login(username, PASSWORD).await?;
        let mut ws = Fixture::workspace(self.channel().await?, &token);
        ws.create_project(pb::CreateProjectRequest {
            user: username.into(),
            project: Some(pb::Project {
                name: project.into(),
                description: "benchmark project".into(),
                access_mode: pb::AccessMode::Protected as i32,
                ..Default::default()
            }),
        })
        .await
        .with_context(|| format!("creating project {project}"))?;
        Ok(Member { token, project: project.to_owned() })
    }

    /// Stops the portal and the backend and removes their files. Clients must be dropped
    /// first, or the server waits [`SHUTDOWN_GRACE`] for their connections.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.cancel.cancel();
        if let Some(server) = self.server.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
                Ok(joined) => joined??,
                Err(_) => eprintln!("warning: the portal did not stop within {SHUTDOWN_GRACE:?}"),
            }
        }
        let holder = self.holder.take();
        // The portal task is gone; dropping our handle closes the store before its files go.
        drop(self);
        match holder {
            Some(Holder::Etcd(mut server)) => server.stop().await?,
            Some(Holder::Embedded(dir)) => dir.close()?,
            None => {}
        }
        Ok(())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
