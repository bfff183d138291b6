//! Starting everything, the handle the caller keeps, and the shutdown order.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use trellis_ingress::Ingress;
use trellis_materialize::keys;
use trellis_store::Revision;

use crate::nat::Nat;
use crate::nodes::{NodeStatus, Nodes};
use crate::reload::{self, ReloadStatus, Reloader};
use crate::{ControllerError, ControllerOptions, NodeRoute};

/// Runs the ingress of a portal process.
pub struct IngressController;

impl IngressController {
    /// Loads the configuration, starts the proxy, applies the NAT (when the configuration has
    /// a `nat` section), and starts following the file, SIGHUP, the store's node ingress
    /// records and the health of `forward: kernel` backends. When `cancel` fires: the NAT is removed (established connections keep their
    /// translation), the proxy drains, and [`RunningIngress::stopped`] resolves.
    ///
    /// Fails when the configuration is missing or invalid, an endpoint cannot bind, or the NAT
    /// cannot be applied; nothing is left running or applied then.
    pub async fn start(
        options: ControllerOptions,
        cancel: CancellationToken,
    ) -> Result<RunningIngress, ControllerError> {
        let path = options.config_path.as_deref();
        let (base, text) = reload::initial(path, options.config.as_ref()).await?;
        // A token of our own, so a failed start can stop what it started.
        let cancel = cancel.child_token();
        let ingress = Ingress::start(base.clone(), cancel.clone()).await.map_err(ControllerError::Ingress)?;
        let mut nat = Nat::default();
        // Subscribed before the first apply, so no health change can fall between the two.
        let nat_changes = ingress.nat_changes();
        if let Err(err) = nat.apply(ingress.nat().as_ref()).await {
            cancel.cancel();
            ingress.stopped().await;
            return Err(ControllerError::Nat(err));
        }
        let nodes = Arc::new(Nodes::new(
            ingress.clone(),
            base,
            options.node_ingress.clone(),
            options.node_backend.clone(),
            cancel.clone(),
        ));
        let reloader =
            Arc::new(Reloader::new(options.config_path.clone(), ingress.clone(), nodes.clone(), text, nat));
        let (synced_tx, synced) = watch::channel(0);

        let tasks = TaskTracker::new();
        tasks.spawn(crate::watch::run(options.store.clone(), nodes.clone(), synced_tx, cancel.clone()));
        tasks.spawn(retry(nodes.clone(), options.node_ingress.retry_every, cancel.clone()));
        tasks.spawn(reload::follow_nat(reloader.clone(), nat_changes, cancel.clone()));
        tasks.spawn(reload::count_nat(reloader.clone(), options.nat_counters_every, cancel.clone()));
        if options.config_path.is_some() {
            if let Some(every) = options.poll_every {
                tasks.spawn(reload::poll(reloader.clone(), every, cancel.clone()));
            }
            if options.reload_on_sighup {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                    Ok(hangups) => {
                        tasks.spawn(reload::on_sighup(reloader.clone(), hangups, cancel.clone()));
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot listen for SIGHUP; reload by editing the file")
                    }
                }
            }
        }
        tasks.close();

        let done = CancellationToken::new();
        tokio::spawn(supervise(
            cancel,
            ingress.clone(),
            nodes.clone(),
            reloader.clone(),
            tasks,
            done.clone(),
        ));
        Ok(RunningIngress { inner: Arc::new(Running { ingress, nodes, reloader, synced, done }) })
    }
}

/// The running ingress. Cheap to clone.
#[derive(Clone)]
pub struct RunningIngress {
    inner: Arc<Running>,
}

struct Running {
    ingress: Ingress,
    nodes: Arc<Nodes>,
    reloader: Arc<Reloader>,
    synced: watch::Receiver<Revision>,
    done: CancellationToken,
}

impl RunningIngress {
    /// The proxy, for its metrics and addresses.
    pub fn ingress(&self) -> &Ingress {
        &self.inner.ingress
    }

    /// The address a configured endpoint listens on.
    pub fn local_addr(&self, endpoint: &str) -> Option<SocketAddr> {
        self.inner.ingress.local_addr(endpoint)
    }

    /// Where a tcp or udp node route is served; `None` for http routes and for routes not
    /// (yet) served.
    pub fn node_addr(&self, route: &NodeRoute) -> Option<SocketAddr> {
        let key = keys::ingress_route(&route.mzid, &route.node, route.protocol.as_str(), route.port);
        self.inner.nodes.gateway_addr(&key)
    }

    /// Which node routes are served, and which cannot be and why.
    pub fn node_status(&self) -> NodeStatus {
        self.inner.nodes.status()
    }

    /// Reloads the configuration file now, changed or not (what SIGHUP does).
    pub async fn reload(&self) -> Result<(), ControllerError> {
        self.inner.reloader.reload(true).await
    }

    /// What reloads have done; changes with each attempt.
    pub fn reload_status(&self) -> watch::Receiver<ReloadStatus> {
        self.inner.reloader.status()
    }

    /// Waits until every change to node ingress records up to `revision` is served (for
    /// callers that just wrote a record and want to use it).
    pub async fn synced(&self, revision: Revision) -> Result<(), ControllerError> {
        let mut synced = self.inner.synced.clone();
        synced.wait_for(|seen| *seen >= revision).await.map(|_| ()).map_err(|_| ControllerError::Stopped)
    }

    /// Resolves once the controller has shut down: NAT removed, proxy drained.
    pub async fn stopped(&self) {
        self.inner.done.cancelled().await;
    }
}

/// Retries node routes that could not be served, and picks up nodes that moved.
async fn retry(nodes: Arc<Nodes>, every: std::time::Duration, cancel: CancellationToken) {
    // `interval` refuses a zero period.
    let mut ticks = tokio::time::interval(every.max(std::time::Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => nodes.resync(),
        }
    }
}

/// Shuts down in order once `cancel` fires: the NAT first (no new clients reach the anchors),
/// then the UDP forwarders and the proxy's graceful drain.
async fn supervise(
    cancel: CancellationToken,
    ingress: Ingress,
    nodes: Arc<Nodes>,
    reloader: Arc<Reloader>,
    tasks: TaskTracker,
    done: CancellationToken,
) {
    cancel.cancelled().await;
    reloader.shutdown().await;
    nodes.stop();
    ingress.stopped().await;
    tasks.wait().await;
    tracing::info!("ingress stopped");
    done.cancel();
}
