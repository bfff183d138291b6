//! The measured operations: each worker is one concurrent caller doing one kind of call.
//!
//! Peers and subjects are paired: [`RawRead`] is the peer of [`GetProject`] (both read the
//! project's record, one straight from the store, one through gRPC, authentication, policy
//! and the handler), and [`RawCreate`] is the peer of [`CreateExperiment`] (both create a new
//! key with a compare-and-swap transaction).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use trellis_api::portal::v1 as pb;
use trellis_store::{Compare, Op, Store, Txn};

use crate::fixture::Ws;

/// One caller's loop body.
pub trait Worker: Send + 'static {
    /// Makes one call; the error is a message to report, never a reason to stop.
    fn call(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// The key a project is stored under (the workspace's layout).
pub fn project_key(project: &str) -> String {
    format!("/trellis/ws/projects/{project}")
}

/// `store.get` of a project's record.
pub struct RawRead {
    pub store: Arc<dyn Store>,
    pub key: String,
}

impl Worker for RawRead {
    async fn call(&mut self) -> Result<(), String> {
        match self.store.get(&self.key).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(format!("{} is missing", self.key)),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// An authorized `Workspace/GetProject` through the caller's own client.
pub struct GetProject {
    pub client: Ws,
    pub project: String,
}

impl Worker for GetProject {
    async fn call(&mut self) -> Result<(), String> {
        let request = pb::GetProjectRequest { name: self.project.clone(), status_ms: 0 };
        match self.client.get_project(request).await {
            Ok(reply) if reply.get_ref().project.is_some() => Ok(()),
            Ok(_) => Err("GetProject answered without a project".to_owned()),
            Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

/// `Workspace/Health` without a token: the gRPC stack plus one store read, no authentication
/// (a breakdown row: what any API call costs before authorization).
pub struct Health {
    pub client: Ws,
}

impl Worker for Health {
    async fn call(&mut self) -> Result<(), String> {
        match self.client.health(pb::HealthRequest {}).await {
            Ok(reply) if reply.get_ref().status == "OK" => Ok(()),
            Ok(reply) => Err(format!("health: {}", reply.get_ref().status)),
            Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

/// `Workspace/Whoami` with the caller's token: the gRPC stack plus authentication (token
/// signature, revocation check, the caller's account) and no handler work (a breakdown row).
pub struct Whoami {
    pub client: Ws,
}

impl Worker for Whoami {
    async fn call(&mut self) -> Result<(), String> {
        match self.client.whoami(pb::WhoamiRequest {}).await {
            Ok(_) => Ok(()),
            Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

/// About the size of a stored experiment record, so the raw writes move similar bytes.
const RAW_VALUE_BYTES: usize = 256;

/// A compare-and-swap create of a fresh key: the store's own unit of "create one object".
pub struct RawCreate {
    pub store: Arc<dyn Store>,
    /// Shared by every worker of a run so keys never repeat.
    pub next: Arc<AtomicU64>,
    pub value: Vec<u8>,
}

impl RawCreate {
    /// A worker drawing key numbers from `next`.
    pub fn new(store: Arc<dyn Store>, next: Arc<AtomicU64>) -> RawCreate {
        RawCreate { store, next, value: vec![b'x'; RAW_VALUE_BYTES] }
    }
}

impl Worker for RawCreate {
    async fn call(&mut self) -> Result<(), String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let key = format!("/trellis/bench/raw/{n:012}");
        let txn = Txn {
            compares: vec![Compare::ModRevision { key: key.clone(), revision: 0 }],
            success: vec![Op::Put { key, value: self.value.clone(), lease: None }],
        };
        match self.store.txn(txn).await {
            Ok(outcome) if outcome.succeeded => Ok(()),
            Ok(_) => Err("the create's compare failed (key already existed)".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// An authorized `Workspace/CreateExperiment` with a fresh name in `project`.
pub struct CreateExperiment {
    pub client: Ws,
    pub project: String,
    /// Shared by every worker of a run so names never repeat.
    pub next: Arc<AtomicU64>,
}

impl Worker for CreateExperiment {
    async fn call(&mut self) -> Result<(), String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let request = pb::CreateExperimentRequest {
            experiment: Some(pb::Experiment {
                name: format!("e{n}"),
                project: self.project.clone(),
                description: "benchmark experiment".into(),
                access_mode: pb::AccessMode::Protected as i32,
                ..Default::default()
            }),
        };
        match self.client.create_experiment(request).await {
            Ok(_) => Ok(()),
            Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}
