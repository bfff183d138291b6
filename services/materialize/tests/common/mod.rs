//! Shared fixtures: both store backends, a portal replica (workspace, models, realize,
//! materialize), a facility `alpha` served by a recording agent over mutual TLS.
#![allow(dead_code)]

pub mod agent;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::RecordingAgent;
use tokio_util::sync::CancellationToken;
use tonic::transport::ServerTlsConfig;
use trellis_api::xir;
use trellis_blobs::local::LocalBlobStore;
use trellis_compiler::{Compiler, CompilerConfig};
use trellis_embed::generate;
use trellis_materialize::{ControllerConfig, MaterializeConfig, MaterializeService, MtlsConnector};
use trellis_model::ModelService;
use trellis_pki::{Pki, server_tls_config};
use trellis_realize::{Duration as Lifetime, FacilityRecord, RealizationRecord, RealizeService};
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;
use trellis_store::etcd::EtcdStore;
use trellis_testkit::etcd::EtcdServer;
use trellis_workspace::{RegisterInput, Workspace, WorkspaceConfig};

pub const ALICE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDCHZyz4pO0p+WB276auebOcI5Odsa6GVyq60qiyzHMC alice@laptop";

pub struct Backend {
    pub store: Arc<dyn Store>,
    pub etcd: Option<EtcdServer>,
    pub dir: tempfile::TempDir,
}

impl Backend {
    pub async fn embedded() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
        Backend { store, etcd: None, dir }
    }

    pub async fn etcd() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let server = EtcdServer::start().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(EtcdStore::connect(&[server.endpoint()]).await.unwrap());
        Backend { store, etcd: Some(server), dir }
    }

    /// Another client of the same store (for etcd its own connection), as a replica has.
    pub async fn another_client(&self) -> Arc<dyn Store> {
        match &self.etcd {
            Some(server) => Arc::new(EtcdStore::connect(&[server.endpoint()]).await.unwrap()),
            None => self.store.clone(),
        }
    }
}

/// Runs a test body against the embedded store and against real etcd.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn embedded() {
                super::$body(crate::common::Backend::embedded().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn etcd() {
                super::$body(crate::common::Backend::etcd().await).await;
            }
        }
    };
}

/// Short pacing so tests see the controller act quickly. The lease TTL stays at etcd's
/// practical minimum.
pub fn fast_controller() -> ControllerConfig {
    ControllerConfig {
        lease_ttl: Duration::from_secs(2),
        resync: Duration::from_millis(300),
        poll_busy: Duration::from_millis(40),
        poll_settled: Duration::from_millis(200),
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
        call_timeout: Duration::from_secs(5),
    }
}

pub fn models_on(store: Arc<dyn Store>, dir: &Path, compile: bool) -> ModelService {
    let blobs = Arc::new(LocalBlobStore::open(&dir.join("blobs")).unwrap());
    let compiler = if compile {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv");
        assert!(venv.join("bin/python").exists(), "{} is missing: run scripts/setup.sh", venv.display());
        Compiler::new(CompilerConfig::new(venv)).map_err(|e| e.to_string())
    } else {
        Err("tests without a compiler".to_owned())
    };
    ModelService::new(store, blobs, compiler)
}

/// One portal replica's services on `store`.
pub struct Replica {
    pub service: MaterializeService,
    pub realize: RealizeService,
    pub models: ModelService,
    pub workspace: Workspace,
}

pub fn replica(store: Arc<dyn Store>, dir: &Path, pki: &Pki, compile: bool) -> Replica {
    let config = MaterializeConfig { controller: fast_controller(), ..Default::default() };
    replica_with(store, dir, pki, compile, config)
}

pub fn replica_with(
    store: Arc<dyn Store>,
    dir: &Path,
    pki: &Pki,
    compile: bool,
    config: MaterializeConfig,
) -> Replica {
    let models = models_on(store.clone(), dir, compile);
    let realize = RealizeService::new(store.clone(), models.clone());
    let workspace = Workspace::new(store.clone(), WorkspaceConfig::default());
    let connector = Arc::new(MtlsConnector::new(pki.clone()));
    let service =
        MaterializeService::new(store, realize.clone(), models.clone(), workspace.clone(), connector, config);
    Replica { service, realize, models, workspace }
}

/// A portal with user `alice` (personal project `alice`, one SSH key) and facility `alpha`
/// (4 racks of 4 bare-metal hosts) whose agent is `agent`, reached over mutual TLS.
pub struct World {
    pub backend: Backend,
    pub pki: Pki,
    pub agent: RecordingAgent,
    pub agent_stop: CancellationToken,
    pub portal: Replica,
}

impl World {
    pub async fn new(backend: Backend, agent: RecordingAgent, compile: bool) -> World {
        World::with_agent_tls(backend, agent, compile, |pki| {
            let cert = pki.issue_server_cert("alpha", &["127.0.0.1".to_owned()]).unwrap();
            server_tls_config(&cert.cert_pem, &cert.key_pem, pki.ca_pem()).unwrap()
        })
        .await
    }

    /// As [`World::new`], with the agent's TLS configuration made by `tls` from the portal CA.
    pub async fn with_agent_tls(
        backend: Backend,
        agent: RecordingAgent,
        compile: bool,
        tls: impl FnOnce(&Pki) -> ServerTlsConfig,
    ) -> World {
        let store = backend.store.clone();
        let pki = Pki::load_or_create(store.as_ref()).await.unwrap();
        let portal = replica(store, backend.dir.path(), &pki, compile);
        let alice = RegisterInput {
            username: "alice".into(),
            email: "alice@example.net".into(),
            password: "correct horse battery staple".into(),
            name: "Alice".into(),
            institution: "Other".into(),
            category: "Researcher".into(),
            country: "US".into(),
            usstate: "CA".into(),
            admin: false,
        };
        portal.workspace.register(alice, true).await.unwrap();
        portal.workspace.add_public_key("alice", ALICE_KEY).await.unwrap();

        let agent_stop = CancellationToken::new();
        let addr = agent::serve(agent.clone(), tls(&pki), agent_stop.clone()).await;
        let facility = generate::facility(&generate::FacilitySpec::new("alpha", 4, 4));
        portal
            .realize
            .register_facility(facility_record("alpha", &addr.to_string()), facility)
            .await
            .unwrap();
        World { backend, pki, agent, agent_stop, portal }
    }

    /// Realizes `network` as `alice/<experiment>/<name>`.
    pub async fn realize(&self, experiment: &str, name: &str, network: &xir::Network) -> RealizationRecord {
        self.portal
            .realize
            .realize_network("alice", experiment, name, "rev1", network, Lifetime::Never, "alice", &[])
            .await
            .unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.agent_stop.cancel();
    }
}

pub fn facility_record(name: &str, address: &str) -> FacilityRecord {
    FacilityRecord {
        name: name.to_owned(),
        address: address.to_owned(),
        description: format!("test facility {name}"),
        creator: "ops".to_owned(),
        certificate: String::new(),
        ca_certificate: String::new(),
        deactivated: vec![],
        ver: 0,
        created: 0,
    }
}

/// A random connected experiment of `nodes` bare-metal nodes.
pub fn experiment(nodes: u32, seed: u64) -> xir::Network {
    generate::experiment(&generate::ExperimentSpec::new("exp", nodes, seed))
}

/// Polls `check` until it returns `Some`, failing the test with `what` after a generous bound
/// (a liveness limit, not a timing claim).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every key under `prefix`.
pub async fn keys_under(store: &dyn Store, prefix: &str) -> Vec<String> {
    store.range(prefix).await.unwrap().kvs.into_iter().map(|kv| kv.key).collect()
}
