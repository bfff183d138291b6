//! XDC runtimes: where an experiment development container runs.
//!
//! An [`XdcSpec`] is the whole wanted state of one XDC (accounts, mounts, SSH trust, Jupyter,
//! limits, experiment names once attached). A runtime makes it so, idempotently, and reports an
//! [`XdcStatus`]. Two implementations: [`local::LocalRuntime`] (crun containers on this host, the
//! default) and [`kubernetes::KubernetesRuntime`] (a Pod and a Service per XDC, rendered as
//! k8s-openapi objects).
//!
//! Layout:
//! - `lib.rs`: the spec and status types and the [`XdcRuntime`] trait.
//! - `validate.rs`: [`XdcSpec::validate`], the rules every runtime checks first.
//! - `files.rs`: the managed files (accounts, sshd configuration, keys, hosts, init script)
//!   rendered from a spec; both runtimes use the same text.
//! - [`local`]: crun containers in network namespaces on a host bridge.
//! - [`kubernetes`]: Pod, Service, ConfigMap and Secret rendering.
//! - [`probe`]: waiting for an XDC's sshd or Jupyter to answer (tests, the benchmark, callers
//!   that want to report readiness).

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod files;
pub mod kubernetes;
pub mod local;
pub mod probe;
#[cfg(test)]
mod testutil;
mod validate;

/// An account inside the XDC. Shared XDCs have one per project member; personal XDCs one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdcUser {
    pub name: String,
    pub uid: u32,
    /// The user's personal group.
    pub gid: u32,
    /// OpenSSH one-line public keys accepted besides certificates from the user CA.
    pub authorized_keys: Vec<String>,
    /// The user's portal key pair and certificate, so `ssh <node>` from inside the XDC logs in
    /// to experiment nodes (which trust the same CA), as in Merge. Local runtime only so far.
    #[serde(default)]
    pub identity: Option<XdcIdentity>,
}

/// A user's SSH identity inside an XDC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdcIdentity {
    /// OpenSSH private key.
    pub private_key: String,
    /// OpenSSH certificate line for it.
    pub certificate: String,
}

/// A Unix group inside the XDC (a project's group: its gid and member usernames).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdcGroup {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Which persistent volume a mount shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VolumeRef {
    /// `/home/<user>`
    Home(String),
    /// `/project/<project>`
    Project(String),
}

impl VolumeRef {
    /// Where the volume appears inside an XDC.
    pub fn target(&self) -> String {
        match self {
            VolumeRef::Home(user) => format!("/home/{user}"),
            VolumeRef::Project(project) => format!("/project/{project}"),
        }
    }

    /// The PersistentVolumeClaim the Kubernetes runtime mounts for this volume
    /// (`home-<user>`, `project-<project>`, with `_` as `-`), in the XDC namespace.
    pub fn claim_name(&self) -> String {
        match self {
            VolumeRef::Home(user) => format!("home-{}", user.replace('_', "-")),
            VolumeRef::Project(project) => format!("project-{}", project.replace('_', "-")),
        }
    }
}

/// A persistent volume mounted into the XDC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdcMount {
    pub volume: VolumeRef,
    /// Where the volume is on this host (local runtime: bind-mounted from here). The Kubernetes
    /// runtime ignores it and claims the volume as a PVC named after [`XdcMount::volume`].
    pub host_path: PathBuf,
}

/// Jupyter inside the XDC, reached only through the portal's web proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JupyterSpec {
    /// The account the notebook server runs as.
    pub user: String,
    /// Path prefix the server is started with (the proxy forwards the path unchanged),
    /// e.g. `/x0-proj/`.
    pub base_url: String,
    /// Jupyter's own token; the proxy adds it, users never see it.
    pub token: String,
    /// Port inside the XDC's network namespace.
    pub port: u16,
}

/// The whole wanted state of one XDC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdcSpec {
    /// Stable runtime identifier, `<xdc>-<project>`; also the hostname.
    pub id: String,
    pub users: Vec<XdcUser>,
    pub groups: Vec<XdcGroup>,
    pub mounts: Vec<XdcMount>,
    /// The portal's user CA (OpenSSH public key line) for `TrustedUserCAKeys`.
    pub user_ca_public_key: String,
    /// The XDC's SSH host key (OpenSSH private key) and its certificate from the host CA, so it
    /// keeps one identity across recreation.
    pub host_private_key: String,
    pub host_certificate: String,
    pub jupyter: Option<JupyterSpec>,
    /// CPU limit in thousandths of a core; 0 = unlimited.
    pub cpu_millis: u32,
    /// Memory limit in bytes; 0 = unlimited.
    pub memory_bytes: u64,
    /// Extra `/etc/hosts` lines (name → address), e.g. an attached experiment's nodes.
    pub hosts: Vec<(String, IpAddr)>,
    /// DNS search domains for `/etc/resolv.conf` (e.g. `infra.<mzid>` when attached).
    pub search: Vec<String>,
}

/// Lifecycle of an XDC in its runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum XdcPhase {
    Starting,
    Running,
    Failed,
}

/// What a runtime reports about one XDC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdcStatus {
    pub phase: XdcPhase,
    /// The address sshd (port 22) and Jupyter listen on, reachable from the portal host.
    pub address: Option<IpAddr>,
    /// The network namespace the XDC runs in (local runtime), for attaching it to experiments.
    pub netns: Option<String>,
    /// Human explanation, mainly for `Failed`.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid XDC spec: {0}")]
    InvalidSpec(String),
    #[error("the runtime cannot run XDCs here: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

/// Where XDCs run. Every call is idempotent.
#[async_trait::async_trait]
pub trait XdcRuntime: Send + Sync + 'static {
    /// Creates the XDC or brings a running one to `spec` (accounts, keys and hosts are updated
    /// in place; a changed mount set or limits restart it). Returns once the container runs;
    /// sshd may still be starting.
    async fn apply(&self, spec: &XdcSpec) -> Result<XdcStatus, RuntimeError>;
    /// The XDC's current state; `None` when the runtime has nothing by that id.
    async fn status(&self, id: &str) -> Result<Option<XdcStatus>, RuntimeError>;
    /// Stops and removes the XDC (never its volumes). Nothing to do when it does not exist.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;
    /// Ids of every XDC the runtime holds.
    async fn list(&self) -> Result<Vec<String>, RuntimeError>;
}
