//! The running side of node ingress: what the store asks for, what the ingress serves, and
//! the changes that bring the second in line with the first.
//!
//! Every change goes through [`Nodes::sync_key`], which re-plans the record from scratch (no
//! hints about what changed) and does the least that makes the ingress match: nothing when
//! the plan is unchanged, a pool (or UDP backend) swap when only the node's address moved,
//! otherwise tear down and install. A record that cannot be served stays wanted and is
//! retried; nothing half-installed is left behind.
//!
//! A reload applies the new configuration together with the node routes being served, as one
//! whole configuration (`Ingress::apply` replaces everything it is given).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;
use trellis_ingress::{Ingress, IngressConfig, IngressError};

use crate::NodeRoute;
use crate::options::{NodeBackend, NodeIngressOptions};
use crate::plan::{Plan, fits, merge, plan};
use crate::udp::UdpForwarder;

/// What the ingress serves for node routes, and what it should.
pub(crate) struct Nodes {
    ingress: Ingress,
    options: NodeIngressOptions,
    backend: Arc<dyn NodeBackend>,
    cancel: CancellationToken,
    state: Mutex<State>,
}

struct State {
    /// The configuration (file or default) the node routes are served beside.
    base: IngressConfig,
    /// Records from the store, by key.
    wanted: BTreeMap<String, NodeRoute>,
    /// What is served, by record key.
    served: BTreeMap<String, Served>,
    /// Records that cannot be served, with the reason.
    failed: BTreeMap<String, String>,
}

struct Served {
    id: String,
    plan: Plan,
    udp: Option<UdpForwarder>,
}

/// A snapshot of node ingress, for status pages and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// Ids (`node/<mzid>/<node>/<proto>/<port>`) of the routes being served.
    pub served: Vec<String>,
    /// Store keys of records that cannot be served, with the reason.
    pub failed: Vec<(String, String)>,
}

impl Nodes {
    pub(crate) fn new(
        ingress: Ingress,
        base: IngressConfig,
        options: NodeIngressOptions,
        backend: Arc<dyn NodeBackend>,
        cancel: CancellationToken,
    ) -> Nodes {
        let state = State { base, wanted: BTreeMap::new(), served: BTreeMap::new(), failed: BTreeMap::new() };
        Nodes { ingress, options, backend, cancel, state: Mutex::new(state) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Changes are computed before they are written; a poisoned lock holds consistent state.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A record was written.
    pub(crate) fn put(&self, key: &str, route: NodeRoute) {
        let mut state = self.state();
        state.wanted.insert(key.to_owned(), route);
        self.sync_key(&mut state, key);
    }

    /// A record was deleted (or became unreadable).
    pub(crate) fn delete(&self, key: &str) {
        let mut state = self.state();
        state.wanted.remove(key);
        self.sync_key(&mut state, key);
    }

    /// The store was listed afresh: `records` is everything there is.
    pub(crate) fn replace_all(&self, records: BTreeMap<String, NodeRoute>) {
        let mut state = self.state();
        state.wanted = records;
        self.sync_all(&mut state);
    }

    /// Tries again what could not be served, and notices nodes that moved.
    pub(crate) fn resync(&self) {
        let mut state = self.state();
        self.sync_all(&mut state);
    }

    /// Serves `base` from now on, with every node route that fits it. Nothing changes when the
    /// ingress refuses the result (an endpoint cannot bind, say).
    pub(crate) fn reload(&self, base: IngressConfig) -> Result<(), IngressError> {
        let mut state = self.state();
        let mut dropped = Vec::new();
        let mut kept = Vec::new();
        for (key, served) in &state.served {
            match fits(&served.plan, &base, &self.options) {
                Ok(()) => kept.push((served.id.as_str(), &served.plan)),
                Err(why) => dropped.push((key.clone(), why)),
            }
        }
        self.ingress.apply(merge(&base, kept))?;
        state.base = base;
        for (key, why) in dropped {
            // `apply` already stopped its route or endpoint; a UDP forwarder stops on drop.
            state.served.remove(&key);
            tracing::warn!(%key, %why, "node ingress route no longer fits the configuration");
            state.failed.insert(key, why);
        }
        self.sync_all(&mut state);
        Ok(())
    }

    /// Where a tcp or udp node route is served (`None` for http routes and unserved ones).
    pub(crate) fn gateway_addr(&self, key: &str) -> Option<SocketAddr> {
        let state = self.state();
        let served = state.served.get(key)?;
        match &served.plan {
            Plan::Tcp { .. } => self.ingress.local_addr(&served.id),
            Plan::Udp { .. } => served.udp.as_ref().map(UdpForwarder::local_addr),
            Plan::Http { .. } => None,
        }
    }

    pub(crate) fn status(&self) -> NodeStatus {
        let state = self.state();
        NodeStatus {
            served: state.served.values().map(|s| s.id.clone()).collect(),
            failed: state.failed.iter().map(|(k, why)| (k.clone(), why.clone())).collect(),
        }
    }

    /// Stops the UDP forwarders (the proxy's own parts stop with the ingress).
    pub(crate) fn stop(&self) {
        let mut state = self.state();
        for served in state.served.values_mut() {
            served.udp = None;
        }
    }

    fn sync_all(&self, state: &mut State) {
        let keys: BTreeSet<String> = state.wanted.keys().chain(state.served.keys()).cloned().collect();
        for key in keys {
            self.sync_key(state, &key);
        }
        state.failed.retain(|key, _| state.wanted.contains_key(key));
    }

    /// Makes the ingress serve what `key`'s record asks for, or nothing when there is none.
    fn sync_key(&self, state: &mut State, key: &str) {
        let wanted = match state.wanted.get(key) {
            None => Ok(None),
            Some(route) => plan(route, self.backend.locate(route), &self.options)
                .and_then(|(id, plan)| fits(&plan, &state.base, &self.options).map(|()| Some((id, plan)))),
        };
        if let (Ok(Some((id, plan))), Some(served)) = (&wanted, state.served.get_mut(key))
            && served.id == *id
        {
            if served.plan == *plan {
                state.failed.remove(key);
                return;
            }
            if served.plan.same_place(plan) && self.retarget(served, plan) {
                served.plan = plan.clone();
                state.failed.remove(key);
                return;
            }
        }
        if let Some(old) = state.served.remove(key) {
            self.teardown(old);
        }
        let outcome = wanted.and_then(|wanted| match wanted {
            Some((id, plan)) => self.install(key, id, plan).map(Some),
            None => Ok(None),
        });
        match outcome {
            Ok(Some(served)) => {
                tracing::info!(%key, id = %served.id, "serving node ingress route");
                state.served.insert(key.to_owned(), served);
                state.failed.remove(key);
            }
            Ok(None) => {
                state.failed.remove(key);
            }
            Err(why) => {
                // Retries fail the same way until something changes; say it once.
                if state.failed.get(key) != Some(&why) {
                    tracing::warn!(%key, %why, "node ingress route cannot be served yet");
                }
                state.failed.insert(key.to_owned(), why);
            }
        }
    }

    fn install(&self, key: &str, id: String, plan: Plan) -> Result<Served, String> {
        let ingress = &self.ingress;
        let udp = match &plan {
            Plan::Http { pool, route } => {
                ingress.upsert_pool(&id, pool.clone()).map_err(|e| chain(&e))?;
                if let Err(err) = ingress.upsert_route(route.clone()) {
                    let _ = ingress.remove_pool(&id);
                    return Err(chain(&err));
                }
                None
            }
            Plan::Tcp { pool, endpoint } => {
                ingress.upsert_pool(&id, pool.clone()).map_err(|e| chain(&e))?;
                if let Err(err) = ingress.add_endpoint(endpoint.clone()) {
                    let _ = ingress.remove_pool(&id);
                    return Err(chain(&err));
                }
                None
            }
            Plan::Udp { listen, backend } => Some(
                UdpForwarder::bind(
                    *listen,
                    *backend,
                    self.options.udp_idle,
                    self.options.udp_max_sessions,
                    &self.cancel,
                )
                .map_err(|e| format!("udp gateway {listen}: {e}"))?,
            ),
        };
        tracing::debug!(%key, %id, "installed node ingress route");
        Ok(Served { id, plan, udp })
    }

    /// Points a served route at a new backend; `false` when that failed (the caller then
    /// reinstalls it).
    fn retarget(&self, served: &Served, plan: &Plan) -> bool {
        match (plan, &served.udp) {
            (Plan::Http { pool, .. } | Plan::Tcp { pool, .. }, _) => {
                self.ingress.upsert_pool(&served.id, pool.clone()).is_ok()
            }
            (Plan::Udp { backend, .. }, Some(forwarder)) => {
                forwarder.set_backend(*backend);
                true
            }
            (Plan::Udp { .. }, None) => false,
        }
    }

    fn teardown(&self, served: Served) {
        match served.plan {
            Plan::Http { .. } => {
                self.ingress.remove_route(&served.id);
            }
            Plan::Tcp { .. } => {
                self.ingress.remove_endpoint(&served.id);
            }
            Plan::Udp { .. } => {}
        }
        if !matches!(served.plan, Plan::Udp { .. })
            && let Err(err) = self.ingress.remove_pool(&served.id)
        {
            tracing::warn!(id = %served.id, error = %chain(&err), "node ingress pool left behind");
        }
        tracing::info!(id = %served.id, "stopped serving node ingress route");
    }
}

/// An error and its causes on one line.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
