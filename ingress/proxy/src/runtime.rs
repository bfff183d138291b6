//! The running ingress: the state every connection shares, and [`Ingress`], the handle that
//! starts endpoints and changes pools, routes and endpoints while traffic flows.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{
    EndpointConfig, EndpointProtocol, Forward, IngressConfig, PoolConfig, RouteConfig, Timeouts,
};
use crate::error::IngressError;
use crate::http::{HttpEndpoint, RequestBody};
use crate::listener::{Handler, accept_loop};
use crate::metrics::{EndpointMetrics, Metrics};
use crate::pool::Pool;
use crate::routes::RouteTable;
use crate::tcp::TcpEndpoint;
use crate::threads::ServingThreads;
use crate::validate::{self, ConfigError};
use crate::{admin, health, io, tls};
use trellis_nat::{NatConfig, NatProtocol, Translated};

/// What every connection reads: the current routes and pools (swapped whole on change), the
/// backend clients with their connection pools, and the metrics.
pub(crate) struct Shared {
    pub(crate) timeouts: Timeouts,
    reuse_port: bool,
    access_log: AtomicBool,
    pub(crate) routes: ArcSwap<RouteTable>,
    pub(crate) pools: ArcSwap<HashMap<String, Arc<Pool>>>,
    pub(crate) clients: Clients,
    pub(crate) metrics: Metrics,
    pub(crate) tracker: TaskTracker,
    /// Bumped whenever what [`Ingress::nat`] returns may have changed.
    pub(crate) nat_changes: watch::Sender<u64>,
}

impl Shared {
    pub(crate) fn access_log(&self) -> bool {
        self.access_log.load(Relaxed)
    }

    pub(crate) fn render_metrics(&self) -> String {
        let pools: Vec<Arc<Pool>> = self.pools.load().values().cloned().collect();
        self.metrics.render(&pools)
    }
}

/// The backend HTTP/2 client (gRPC, `http2` pools), which keeps connections per backend
/// address. HTTP/1.1 backend connections live on their backends (`http/backend.rs`).
pub(crate) struct Clients {
    pub(crate) h2: Client<HttpConnector, RequestBody>,
}

impl Clients {
    fn new(timeouts: &Timeouts) -> Clients {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeouts.connect));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        Clients { h2: h2_client_builder().build(connector) }
    }
}

/// How every backend HTTP/2 client is set up, plain or TLS (`upstream_tls.rs`).
pub(crate) fn h2_client_builder() -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        // The request keeps the client's Host header; the URI names the backend.
        .set_host(false);
    builder
        .http2_only(true)
        .http2_adaptive_window(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(20));
    builder
}

struct PoolEntry {
    pool: Arc<Pool>,
    checker: Option<CancellationToken>,
}

struct EndpointEntry {
    config: EndpointConfig,
    addr: SocketAddr,
    handler: Arc<ArcSwap<Handler>>,
    stop: CancellationToken,
    metrics: Arc<EndpointMetrics>,
}

#[derive(Default)]
struct State {
    pools: BTreeMap<String, PoolEntry>,
    routes: BTreeMap<String, RouteConfig>,
    endpoints: BTreeMap<String, EndpointEntry>,
    /// `forward: kernel` endpoints: nothing is bound for them; [`Ingress::nat`] renders them.
    kernel_endpoints: BTreeMap<String, EndpointConfig>,
    nat: Option<NatConfig>,
    admin: Option<SocketAddr>,
}

struct Inner {
    shared: Arc<Shared>,
    state: Mutex<State>,
    /// Stops accepting and starts graceful shutdown; a child of the caller's token.
    cancel: CancellationToken,
    /// Cuts what is still open once the grace period is over.
    hard_stop: CancellationToken,
    /// Fires when shutdown is complete.
    done: CancellationToken,
    threads: ServingThreads,
}

/// A running ingress. Cheap to clone; every clone controls the same ingress.
///
/// Changes (`apply`, `upsert_*`, `remove_*`, `add_endpoint`) take effect for the next request
/// or connection; requests in flight finish on what they started with. Methods that start
/// listeners or tasks must be called from within a Tokio runtime.
#[derive(Clone)]
pub struct Ingress {
    inner: Arc<Inner>,
}

impl Ingress {
    /// Validates `config`, binds every endpoint and the admin listener, and starts serving.
    /// When `cancel` fires, endpoints stop accepting, open requests get
    /// `timeouts.shutdown_grace` to finish, and [`Ingress::stopped`] resolves.
    pub async fn start(config: IngressConfig, cancel: CancellationToken) -> Result<Ingress, IngressError> {
        config.validate()?;
        let shared = Arc::new(Shared {
            timeouts: config.timeouts.clone(),
            reuse_port: config.reuse_port,
            access_log: AtomicBool::new(config.access_log),
            routes: ArcSwap::from_pointee(RouteTable::default()),
            pools: ArcSwap::from_pointee(HashMap::new()),
            clients: Clients::new(&config.timeouts),
            metrics: Metrics::default(),
            tracker: TaskTracker::new(),
            nat_changes: watch::Sender::new(0),
        });
        let done = CancellationToken::new();
        let threads = ServingThreads::start(config.threads, &done).map_err(|err| {
            // Ends the threads that did start.
            done.cancel();
            IngressError::Threads(err)
        })?;
        let ingress = Ingress {
            inner: Arc::new(Inner {
                shared,
                state: Mutex::new(State::default()),
                cancel: cancel.child_token(),
                hard_stop: CancellationToken::new(),
                done,
                threads,
            }),
        };
        let failed = |err: IngressError| {
            ingress.inner.cancel.cancel();
            ingress.inner.done.cancel();
            err
        };
        ingress.apply(config.clone()).map_err(failed)?;
        if let Some(admin) = &config.admin {
            let listener = io::bind(admin.listen, false).map_err(|source| {
                failed(IngressError::Bind { endpoint: "admin".into(), addr: admin.listen, source })
            })?;
            ingress.state().admin = listener.local_addr().ok();
            tokio::spawn(admin::serve(listener, ingress.inner.shared.clone(), ingress.inner.cancel.clone()));
        }
        tokio::spawn(supervise(ingress.inner.clone()));
        Ok(ingress)
    }

    /// Resolves once the ingress has shut down (after its token fired and the grace period).
    pub async fn stopped(&self) {
        self.inner.done.cancelled().await;
    }

    /// The address an endpoint listens on (useful with port 0); for a `forward: kernel`
    /// endpoint, the address its NAT rules match.
    pub fn local_addr(&self, endpoint: &str) -> Option<SocketAddr> {
        let state = self.state();
        let kernel = || state.kernel_endpoints.get(endpoint).map(|e| e.listen);
        state.endpoints.get(endpoint).map(|e| e.addr).or_else(kernel)
    }

    /// The NAT this ingress wants applied now: the configuration's `nat` section, with the
    /// `forward: kernel` endpoints as forwards to their pools' healthy backends. `None`
    /// without a `nat` section. Applying it is the caller's job (it needs `CAP_NET_ADMIN`).
    pub fn nat(&self) -> Option<NatConfig> {
        let state = self.state();
        let config = IngressConfig {
            nat: state.nat.clone(),
            endpoints: state.kernel_endpoints.values().cloned().collect(),
            pools: state.pools.iter().map(|(name, e)| (name.clone(), e.pool.config.clone())).collect(),
            ..IngressConfig::default()
        };
        config.nat_with_forwards(|pool, addr| {
            state.pools.get(pool).is_some_and(|entry| entry.pool.is_healthy(addr))
        })
    }

    /// Takes what the NAT's rules counted (totals since the controller started, by
    /// destination) and shows it per `forward: kernel` endpoint in the metrics, as
    /// `ingress_kernel_connections_total`: the connections to the endpoint's address and to
    /// the public addresses mapped onto it.
    pub fn record_nat_translations(&self, translated: &[Translated]) {
        let state = self.state();
        let counts = state
            .kernel_endpoints
            .values()
            .map(|endpoint| {
                let mappings = state.nat.iter().flat_map(|nat| &nat.mappings);
                let publics = mappings
                    .filter(|m| m.anchor == endpoint.listen && m.protocol == NatProtocol::Tcp)
                    .map(|m| m.public);
                let destinations: Vec<SocketAddr> = std::iter::once(endpoint.listen).chain(publics).collect();
                let total = translated
                    .iter()
                    .filter(|t| t.protocol == NatProtocol::Tcp && destinations.contains(&t.destination))
                    .map(|t| t.connections)
                    .sum();
                (endpoint.name.clone(), total)
            })
            .collect();
        self.inner.shared.metrics.set_kernel_connections(counts);
    }

    /// Changes whenever [`Ingress::nat`] may return something new: a backend's health
    /// flipped, or a configuration was applied.
    pub fn nat_changes(&self) -> watch::Receiver<u64> {
        self.inner.shared.nat_changes.subscribe()
    }

    /// The admin listener's address, when one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.state().admin
    }

    /// The metrics in Prometheus text format (what `/metrics` serves).
    pub fn metrics_text(&self) -> String {
        self.inner.shared.render_metrics()
    }

    /// Makes the running ingress match `config` (a reload): pools, routes and endpoints are
    /// added, changed or removed. Listeners whose address is unchanged keep their socket, and
    /// backends keep their health state. Nothing changes when the new configuration is
    /// invalid or a new listener cannot be bound. `timeouts` and `admin` apply at start only.
    pub fn apply(&self, config: IngressConfig) -> Result<(), IngressError> {
        config.validate()?;
        let mut state = self.state();
        // Prepare everything that can fail before changing anything.
        let mut prepared = Vec::new();
        let (kernel, proxied): (Vec<&EndpointConfig>, Vec<&EndpointConfig>) =
            config.endpoints.iter().partition(|e| e.forward == Forward::Kernel);
        for endpoint in proxied.iter().copied() {
            match state.endpoints.get(&endpoint.name) {
                Some(entry) if entry.config == *endpoint => {}
                Some(entry) if same_socket(entry, endpoint) => {
                    let metrics = if entry.config.protocol == endpoint.protocol {
                        entry.metrics.clone()
                    } else {
                        self.inner.shared.metrics.endpoint(&endpoint.name, protocol_label(endpoint.protocol))
                    };
                    prepared.push(Prepared::Swap(self.handler(endpoint, metrics)?, endpoint.clone()));
                }
                _ => prepared.push(self.prepare_listener(endpoint)?),
            }
        }
        self.inner.shared.access_log.store(config.access_log, Relaxed);
        let previous = std::mem::take(&mut state.pools);
        for (name, pool) in &config.pools {
            let entry = self.pool_entry(name, pool, previous.get(name));
            state.pools.insert(name.clone(), entry);
        }
        for (name, old) in previous {
            if state.pools.get(&name).is_none_or(|new| !Arc::ptr_eq(&new.pool, &old.pool))
                && let Some(checker) = old.checker
            {
                checker.cancel();
            }
        }
        state.routes = config.routes.iter().map(|r| (r.id.clone(), r.clone())).collect();
        state.kernel_endpoints = kernel.into_iter().map(|e| (e.name.clone(), e.clone())).collect();
        state.nat = config.nat.clone();
        self.publish(&state);
        self.inner.shared.nat_changes.send_modify(|n| *n += 1);
        let wanted: Vec<&str> = proxied.iter().map(|e| e.name.as_str()).collect();
        let removed: Vec<String> =
            state.endpoints.keys().filter(|name| !wanted.contains(&name.as_str())).cloned().collect();
        for name in removed {
            if let Some(entry) = state.endpoints.remove(&name) {
                self.close(entry);
            }
        }
        for item in prepared {
            self.commit(&mut state, item);
        }
        Ok(())
    }

    /// Adds or replaces a pool; backends that stay keep their health and ejection state.
    pub fn upsert_pool(&self, name: &str, config: PoolConfig) -> Result<(), IngressError> {
        validate::validate_pool(name, &config).map_err(invalid)?;
        let mut state = self.state();
        let entry = self.pool_entry(name, &config, state.pools.get(name));
        if let Some(old) = state.pools.insert(name.to_owned(), entry)
            && let Some(checker) = old.checker.filter(|_| !Arc::ptr_eq(&old.pool, &state.pools[name].pool))
        {
            checker.cancel();
        }
        self.publish(&state);
        Ok(())
    }

    /// Removes a pool no route or TCP endpoint uses; `false` when it did not exist.
    pub fn remove_pool(&self, name: &str) -> Result<bool, IngressError> {
        let mut state = self.state();
        if let Some(route) = state.routes.values().find(|r| r.pool == name) {
            return Err(IngressError::InUse(format!("pool {name:?} is used by route {:?}", route.id)));
        }
        let endpoints = state.endpoints.values().map(|e| &e.config).chain(state.kernel_endpoints.values());
        if let Some(endpoint) = endpoints.clone().find(|e| e.pool.as_deref() == Some(name)) {
            return Err(IngressError::InUse(format!(
                "pool {name:?} is used by endpoint {:?}",
                endpoint.name
            )));
        }
        let Some(entry) = state.pools.remove(name) else { return Ok(false) };
        if let Some(checker) = entry.checker {
            checker.cancel();
        }
        self.publish(&state);
        Ok(true)
    }

    /// Adds or replaces a route (by id). Its pool and endpoints must exist.
    pub fn upsert_route(&self, route: RouteConfig) -> Result<(), IngressError> {
        let mut state = self.state();
        let pools = state.pools.iter().map(|(name, e)| (name.clone(), e.pool.config.clone())).collect();
        let endpoints: Vec<EndpointConfig> = state.endpoints.values().map(|e| e.config.clone()).collect();
        validate::validate_route(&route, &pools, &endpoints).map_err(invalid)?;
        state.routes.insert(route.id.clone(), route);
        self.publish(&state);
        Ok(())
    }

    /// Removes a route; `false` when it did not exist.
    pub fn remove_route(&self, id: &str) -> bool {
        let mut state = self.state();
        let removed = state.routes.remove(id).is_some();
        if removed {
            self.publish(&state);
        }
        removed
    }

    /// The routes currently served.
    pub fn routes(&self) -> Vec<RouteConfig> {
        self.state().routes.values().cloned().collect()
    }

    /// Starts a new endpoint (for example a node-ingress TCP port) and returns its address.
    pub fn add_endpoint(&self, endpoint: EndpointConfig) -> Result<SocketAddr, IngressError> {
        let mut state = self.state();
        if state.endpoints.contains_key(&endpoint.name) || state.kernel_endpoints.contains_key(&endpoint.name)
        {
            return Err(invalid(format!("endpoint {:?} already exists", endpoint.name)));
        }
        if endpoint.forward == Forward::Kernel {
            return Err(invalid(format!(
                "endpoint {:?}: forward: kernel endpoints come with a configuration (apply), not one by one",
                endpoint.name
            )));
        }
        let proxied = state.endpoints.values().map(|e| e.config.clone());
        let mut config = IngressConfig {
            pools: state.pools.iter().map(|(name, e)| (name.clone(), e.pool.config.clone())).collect(),
            endpoints: proxied.chain(state.kernel_endpoints.values().cloned()).collect(),
            nat: state.nat.clone(),
            ..IngressConfig::default()
        };
        config.endpoints.push(endpoint.clone());
        config.validate()?;
        let prepared = self.prepare_listener(&endpoint)?;
        self.commit(&mut state, prepared);
        Ok(state.endpoints[&endpoint.name].addr)
    }

    /// Stops an endpoint: its socket closes and its open connections finish gracefully.
    /// `false` when it did not exist. Routes restricted to it stay (and match nothing).
    pub fn remove_endpoint(&self, name: &str) -> bool {
        let mut state = self.state();
        match state.endpoints.remove(name) {
            Some(entry) => {
                self.close(entry);
                true
            }
            None => false,
        }
    }

    // === internals ===

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change is computed before it is written, so a panic cannot leave the state
        // half-updated; a poisoned lock is safe to keep using.
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn pool_entry(&self, name: &str, config: &PoolConfig, previous: Option<&PoolEntry>) -> PoolEntry {
        if let Some(previous) = previous.filter(|p| p.pool.config == *config) {
            return PoolEntry { pool: previous.pool.clone(), checker: previous.checker.clone() };
        }
        let pool = Arc::new(Pool::new(name, config.clone(), previous.map(|p| &*p.pool)));
        let checker = config.health_check.clone().map(|check| {
            let token = self.inner.cancel.child_token();
            let changes = self.inner.shared.nat_changes.clone();
            tokio::spawn(health::run(pool.clone(), check, changes, token.clone()));
            token
        });
        PoolEntry { pool, checker }
    }

    /// Recompiles the route table and the pool map and swaps them in.
    fn publish(&self, state: &State) {
        let pools: HashMap<String, Arc<Pool>> =
            state.pools.iter().map(|(name, e)| (name.clone(), e.pool.clone())).collect();
        let table = RouteTable::build(state.routes.values(), |name| pools.get(name).cloned());
        self.inner.shared.pools.store(Arc::new(pools));
        self.inner.shared.routes.store(Arc::new(table));
    }

    fn handler(
        &self,
        endpoint: &EndpointConfig,
        metrics: Arc<EndpointMetrics>,
    ) -> Result<Handler, IngressError> {
        let shared = self.inner.shared.clone();
        Ok(match endpoint.protocol {
            EndpointProtocol::Http => {
                Handler::Http(Arc::new(HttpEndpoint::new(&endpoint.name, None, shared, metrics)))
            }
            EndpointProtocol::Https => {
                let tls = endpoint.tls.as_ref().ok_or_else(|| invalid("https needs tls".to_owned()))?;
                let acceptor = TlsAcceptor::from(tls::server_config(&endpoint.name, tls)?);
                Handler::Http(Arc::new(HttpEndpoint::new(&endpoint.name, Some(acceptor), shared, metrics)))
            }
            EndpointProtocol::Tcp => Handler::Tcp(Arc::new(TcpEndpoint {
                name: endpoint.name.as_str().into(),
                pool: endpoint.pool.clone().unwrap_or_default(),
                proxy_protocol: endpoint.proxy_protocol,
                shared,
                metrics,
            })),
        })
    }

    fn prepare_listener(&self, endpoint: &EndpointConfig) -> Result<Prepared, IngressError> {
        let metrics = self.inner.shared.metrics.endpoint(&endpoint.name, protocol_label(endpoint.protocol));
        let prepared = self.handler(endpoint, metrics.clone()).and_then(|handler| {
            let listeners =
                self.inner.threads.bind(endpoint.listen, self.inner.shared.reuse_port).map_err(|source| {
                    IngressError::Bind { endpoint: endpoint.name.clone(), addr: endpoint.listen, source }
                })?;
            Ok(Prepared::Listen { listeners, handler, metrics: metrics.clone(), config: endpoint.clone() })
        });
        if prepared.is_err() {
            self.inner.shared.metrics.forget(&metrics);
        }
        prepared
    }

    fn commit(&self, state: &mut State, item: Prepared) {
        match item {
            Prepared::Swap(handler, config) => {
                if let Some(entry) = state.endpoints.get_mut(&config.name) {
                    entry.handler.store(Arc::new(handler));
                    entry.config = config;
                }
            }
            Prepared::Listen { listeners, handler, metrics, config } => {
                let addr = listeners.first().and_then(|(l, _)| l.local_addr().ok()).unwrap_or(config.listen);
                let handler = Arc::new(ArcSwap::from_pointee(handler));
                let stop = self.inner.cancel.child_token();
                let limit = Arc::new(Semaphore::new(config.max_connections));
                let inner = &self.inner;
                for (listener, runtime) in listeners {
                    let accepting = inner.shared.tracker.track_future(accept_loop(
                        listener,
                        handler.clone(),
                        limit.clone(),
                        stop.clone(),
                        inner.hard_stop.clone(),
                        inner.shared.tracker.clone(),
                    ));
                    drop(runtime.spawn(accepting));
                }
                tracing::info!(endpoint = %config.name, %addr, protocol = ?config.protocol, "endpoint listening");
                let entry = EndpointEntry { config, addr, handler, stop, metrics };
                if let Some(old) = state.endpoints.insert(entry.config.name.clone(), entry) {
                    self.close(old);
                }
            }
        }
    }

    fn close(&self, entry: EndpointEntry) {
        entry.stop.cancel();
        self.inner.shared.metrics.forget(&entry.metrics);
        tracing::info!(endpoint = %entry.config.name, addr = %entry.addr, "endpoint stopped");
    }
}

enum Prepared {
    Swap(Handler, EndpointConfig),
    Listen {
        listeners: Vec<(tokio::net::TcpListener, tokio::runtime::Handle)>,
        handler: Handler,
        metrics: Arc<EndpointMetrics>,
        config: EndpointConfig,
    },
}

/// Whether a changed endpoint can keep its socket (and only its handler changes).
/// A new configuration may name the bound address (port 0 resolved) instead of the old one.
fn same_socket(old: &EndpointEntry, new: &EndpointConfig) -> bool {
    (old.config.listen == new.listen || old.addr == new.listen)
        && old.config.max_connections == new.max_connections
}

fn protocol_label(protocol: EndpointProtocol) -> &'static str {
    match protocol {
        EndpointProtocol::Http => "http",
        EndpointProtocol::Https => "https",
        EndpointProtocol::Tcp => "tcp",
    }
}

fn invalid(message: String) -> IngressError {
    IngressError::Config(ConfigError { position: None, message })
}

/// Waits for the stop signal, gives open connections the grace period, then cuts the rest.
async fn supervise(inner: Arc<Inner>) {
    inner.cancel.cancelled().await;
    let tracker = &inner.shared.tracker;
    tracker.close();
    if tokio::time::timeout(inner.shared.timeouts.shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!("shutdown grace period over; closing the remaining connections");
        inner.hard_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    }
    inner.hard_stop.cancel();
    inner.done.cancel();
}
