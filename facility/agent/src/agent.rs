//! The agent: the materializations it runs, their state on disk, and the watchdog.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use prost::Message;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use trellis_facility_api::v1::{Materialization, State, StatusResponse};
use trellis_types::Error;

use crate::container::Running;
use crate::delay::DelayLine;
use crate::plan::{self, Plan};
use crate::status::StatusTable;

/// Settings of an agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where materializations live: `<state_dir>/<mzid>/spec.pb`, `nodes/<node>/` (OCI
    /// bundles), `disks/<node>/` (node disks).
    pub state_dir: PathBuf,
    /// Images: `<images_dir>/<name>/` holds a root file system (at least `usr/`).
    pub images_dir: PathBuf,
    /// How often the watchdog looks for dead containers.
    pub watchdog_interval: Duration,
    /// How long a node may take for its sshd to answer before it is FAILED.
    pub ready_timeout: Duration,
    /// How many nodes are configured or started at once.
    pub parallelism: usize,
}

impl AgentConfig {
    /// Defaults for everything but the state directory.
    pub fn new(state_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            state_dir: state_dir.into(),
            images_dir: PathBuf::from("/var/lib/trellis/images"),
            watchdog_interval: Duration::from_secs(1),
            ready_timeout: Duration::from_secs(60),
            parallelism: 8,
        }
    }
}

/// A node's live pieces, owned by the materialization's operation lock.
#[derive(Default)]
pub(crate) struct NodeRuntime {
    pub running: Option<Running>,
    pub probe: Option<tokio::task::AbortHandle>,
    /// The node cannot run (its persistent disk is gone); the watchdog leaves it alone.
    pub broken: bool,
}

impl Drop for NodeRuntime {
    fn drop(&mut self) {
        if let Some(probe) = self.probe.take() {
            probe.abort();
        }
    }
}

#[derive(Default)]
pub(crate) struct Runtime {
    pub plan: Option<Arc<Plan>>,
    pub nodes: HashMap<String, NodeRuntime>,
    /// Latency and loss of every link, served in the switch namespace.
    pub delay: Option<DelayLine>,
}

/// One materialization the agent knows.
pub(crate) struct Mz {
    pub id: String,
    pub dir: PathBuf,
    /// Serializes materialize, reboot, dematerialize and the watchdog's repairs.
    pub ops: tokio::sync::Mutex<Runtime>,
    pub status: StatusTable,
    /// Cancelled when the materialization is torn down or the agent dropped.
    pub cancel: CancellationToken,
}

pub(crate) struct Inner {
    pub config: AgentConfig,
    mzs: std::sync::Mutex<HashMap<String, Arc<Mz>>>,
    pub shutdown: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The container facility agent. Cheap to clone; background work (the watchdog, readiness
/// probes, delay lines) stops when the last clone is dropped, while containers keep
/// running for the next agent on the same state directory to adopt.
#[derive(Clone)]
pub struct Agent {
    pub(crate) inner: Arc<Inner>,
}

impl Agent {
    /// Opens (or creates) the state directory with default settings and adopts whatever
    /// materializations it holds.
    pub async fn open(state_dir: impl Into<PathBuf>) -> Result<Agent, Error> {
        Agent::open_with(AgentConfig::new(state_dir)).await
    }

    /// Opens the agent with explicit settings; see [`Agent::open`].
    pub async fn open_with(config: AgentConfig) -> Result<Agent, Error> {
        std::fs::create_dir_all(&config.state_dir).map_err(|e| {
            Error::Internal(format!("cannot create the state directory {}: {e}", config.state_dir.display()))
        })?;
        let agent = Agent {
            inner: Arc::new(Inner {
                config,
                mzs: std::sync::Mutex::new(HashMap::new()),
                shutdown: CancellationToken::new(),
            }),
        };
        for (mzid, spec) in agent.stored_specs() {
            let mz = agent.entry(&mzid);
            let mut rt = mz.ops.lock().await;
            match plan::plan(&spec, &agent.inner.config.images_dir) {
                Ok(plan) => {
                    if let Err(e) = agent.converge(&mz, &mut rt, Arc::new(plan)).await {
                        tracing::error!(mzid, error = %e, "adopting a materialization failed");
                        mz.status.fail_unfinished(&e.to_string());
                    }
                }
                Err(e) => tracing::error!(mzid, error = %e, "a stored materialization is no longer valid"),
            }
        }
        let weak = Arc::downgrade(&agent.inner);
        tokio::spawn(watchdog(weak, agent.inner.shutdown.clone(), agent.inner.config.watchdog_interval));
        Ok(agent)
    }

    pub fn config(&self) -> &AgentConfig {
        &self.inner.config
    }

    fn stored_specs(&self) -> Vec<(String, Materialization)> {
        let Ok(entries) = std::fs::read_dir(&self.inner.config.state_dir) else { return Vec::new() };
        let mut specs = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let Ok(mzid) = entry.file_name().into_string() else { continue };
            let Ok(bytes) = std::fs::read(entry.path().join("spec.pb")) else { continue };
            match Materialization::decode(bytes.as_slice()) {
                Ok(spec) if spec.mzid == mzid => specs.push((mzid, spec)),
                _ => tracing::error!(mzid, "unreadable spec.pb; leaving the materialization alone"),
            }
        }
        specs.sort_by(|a, b| a.0.cmp(&b.0));
        specs
    }

    pub(crate) fn mz_dir(&self, mzid: &str) -> PathBuf {
        self.inner.config.state_dir.join(mzid)
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mz>>> {
        self.inner.mzs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The entry for `mzid`, created when missing.
    fn entry(&self, mzid: &str) -> Arc<Mz> {
        self.registry()
            .entry(mzid.to_owned())
            .or_insert_with(|| {
                Arc::new(Mz {
                    id: mzid.to_owned(),
                    dir: self.mz_dir(mzid),
                    ops: tokio::sync::Mutex::new(Runtime::default()),
                    status: StatusTable::default(),
                    cancel: self.inner.shutdown.child_token(),
                })
            })
            .clone()
    }

    pub(crate) fn get(&self, mzid: &str) -> Option<Arc<Mz>> {
        self.registry().get(mzid).cloned()
    }

    /// Brings a materialization up, or converges a running one on `spec`: unchanged nodes
    /// keep running, changed ones are rebuilt, removed ones torn down. Returns once every
    /// container is started; nodes turn READY when their sshd answers (see [`Agent::status`]).
    pub async fn materialize(&self, spec: Materialization) -> Result<(), Error> {
        let plan = Arc::new(plan::plan(&spec, &self.inner.config.images_dir)?);
        loop {
            let mz = self.entry(&plan.mzid);
            let mut rt = mz.ops.lock().await;
            if mz.cancel.is_cancelled() {
                // Torn down while we waited; the next entry is a fresh one.
                continue;
            }
            let result = self.converge(&mz, &mut rt, plan).await;
            if let Err(e) = &result {
                mz.status.fail_unfinished(&e.to_string());
            }
            return result;
        }
    }

    /// Tears a materialization down, leaving nothing behind; succeeds for unknown ones.
    pub async fn dematerialize(&self, mzid: &str) -> Result<(), Error> {
        if !plan::valid_mzid(mzid) {
            return Err(Error::invalid("mzid", "not a materialization id"));
        }
        if let Some(mz) = self.get(mzid) {
            mz.cancel.cancel();
            let mut rt = mz.ops.lock().await;
            // Stops the delay line and probes before their namespaces go.
            rt.nodes.clear();
            rt.delay = None;
            rt.plan = None;
            let result = self.remove_everything(mzid).await;
            self.registry().remove(mzid);
            return result;
        }
        self.remove_everything(mzid).await
    }

    async fn remove_everything(&self, mzid: &str) -> Result<(), Error> {
        crate::sweep::sweep(&crate::naming::Names::new(mzid)).await?;
        let dir = self.mz_dir(mzid);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Internal(format!("cannot remove {}: {e}", dir.display()))),
        }
    }

    /// The state of every node and link; an unknown materialization has state UNSPECIFIED.
    pub fn status(&self, mzid: &str) -> StatusResponse {
        match self.get(mzid) {
            Some(mz) => mz.status.response(mzid),
            None => StatusResponse {
                mzid: mzid.to_owned(),
                state: State::Unspecified as i32,
                ..Default::default()
            },
        }
    }

    /// Waits until the materialization is READY (or FAILED, or `timeout` passes) and returns
    /// its last status.
    pub async fn wait_ready(&self, mzid: &str, timeout: Duration) -> StatusResponse {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status(mzid);
            let state = status.state();
            if state == State::Ready || state == State::Failed || Instant::now() >= deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Restarts the named nodes (every node when `nodes` is empty): volatile nodes come back
    /// with a fresh disk, persistent ones with theirs.
    pub async fn reboot(&self, mzid: &str, nodes: &[String]) -> Result<(), Error> {
        let mz = self.get(mzid).ok_or_else(|| Error::not_found("materialization", mzid))?;
        let mut rt = mz.ops.lock().await;
        let plan = rt.plan.clone().ok_or_else(|| Error::not_found("materialization", mzid))?;
        let mut indexes = Vec::new();
        for name in nodes {
            indexes.push(plan.node_index(name).ok_or_else(|| Error::not_found("node", name.clone()))?);
        }
        if nodes.is_empty() {
            indexes = (0..plan.nodes.len()).collect();
        }
        for &n in &indexes {
            mz.status.set_node(&plan.nodes[n].name, State::Processing, "rebooting");
            if let Some(node) = rt.nodes.get_mut(&plan.nodes[n].name) {
                node.broken = false;
            }
        }
        self.start_nodes(&mz, &mut rt, &plan, &indexes).await
    }

    /// The materializations this agent runs.
    pub fn list(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.registry().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The pid of a node's container init, when it runs (for tests and tools).
    pub async fn node_pid(&self, mzid: &str, node: &str) -> Option<i32> {
        let mz = self.get(mzid)?;
        let rt = mz.ops.lock().await;
        rt.nodes.get(node)?.running.filter(|r| r.alive()).map(|r| r.pid)
    }

    /// The watchdog's pass over one materialization: restart nodes whose container died,
    /// report persistent nodes whose disk vanished.
    async fn check(&self, mz: &Arc<Mz>) {
        let Ok(mut rt) = mz.ops.try_lock() else { return };
        let Some(plan) = rt.plan.clone() else { return };
        let mut restart = Vec::new();
        for (n, node) in plan.nodes.iter().enumerate() {
            let Some(nrt) = rt.nodes.get_mut(&node.name) else { continue };
            if nrt.broken {
                continue;
            }
            let disk = disk_dir(&mz.dir, &node.name);
            if node.persistent && !disk.exists() {
                nrt.broken = true;
                mz.status.set_node(
                    &node.name,
                    State::Failed,
                    &format!("the persistent disk {} vanished; it is not recreated empty", disk.display()),
                );
                continue;
            }
            if nrt.running.is_some_and(|r| !r.alive()) {
                tracing::warn!(mzid = mz.id, node = node.name, "container exited; restarting it");
                mz.status.set_node(&node.name, State::Processing, "the container exited; restarting it");
                restart.push(n);
            }
        }
        if !restart.is_empty()
            && let Err(e) = self.start_nodes(mz, &mut rt, &plan, &restart).await
        {
            tracing::error!(mzid = mz.id, error = %e, "restarting nodes failed");
        }
    }

    /// Polls a node's sshd until it answers (READY) or the timeout passes (FAILED).
    pub(crate) fn spawn_probe(&self, mz: &Arc<Mz>, node: &str, addr: IpAddr) -> tokio::task::AbortHandle {
        let (mz, node) = (mz.clone(), node.to_owned());
        let timeout = self.inner.config.ready_timeout;
        tokio::spawn(async move {
            let deadline = Instant::now() + timeout;
            loop {
                let answered = tokio::select! {
                    () = mz.cancel.cancelled() => return,
                    answered = ssh_banner(addr) => answered,
                };
                if answered {
                    mz.status.set_node(&node, State::Ready, "sshd answers");
                    return;
                }
                if Instant::now() >= deadline {
                    mz.status.set_node(
                        &node,
                        State::Failed,
                        &format!("sshd did not answer on {addr}:22 within {} s", timeout.as_secs()),
                    );
                    return;
                }
                tokio::select! {
                    () = mz.cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(25)) => {}
                }
            }
        })
        .abort_handle()
    }
}

/// Whether an SSH server answers with its banner on `addr:22`.
async fn ssh_banner(addr: IpAddr) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect((addr, 22)).await.ok()?;
        let mut banner = [0u8; 4];
        stream.read_exact(&mut banner).await.ok()?;
        Some(&banner == b"SSH-")
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), attempt).await, Ok(Some(true)))
}

pub(crate) fn bundle_dir(mz_dir: &Path, node: &str) -> PathBuf {
    mz_dir.join("nodes").join(node)
}

pub(crate) fn disk_dir(mz_dir: &Path, node: &str) -> PathBuf {
    mz_dir.join("disks").join(node)
}

async fn watchdog(inner: Weak<Inner>, shutdown: CancellationToken, interval: Duration) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        let agent = Agent { inner };
        let mzs: Vec<Arc<Mz>> = agent.registry().values().cloned().collect();
        for mz in mzs {
            if !mz.cancel.is_cancelled() {
                agent.check(&mz).await;
            }
        }
    }
}
