//! What the caller gives the controller: where the configuration comes from, the store, and
//! how to reach experiment nodes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use trellis_ingress::{DevCaConfig, EndpointConfig, EndpointProtocol, IngressConfig, TlsConfig};
use trellis_store::Store;

use crate::NodeRoute;

/// The endpoint that serves http and https node routes unless [`NodeIngressOptions`] names
/// another one; the default configuration defines it.
pub const NODE_HTTPS_ENDPOINT: &str = "node-ingress";

/// Pools, routes and endpoints made for node ingress are named `node/<mzid>/<node>/<proto>/<port>`;
/// a configuration file may not use names starting with this.
pub const NODE_NAME_PREFIX: &str = "node/";

/// Where an experiment node's port is reachable from the portal host.
///
/// Called for every node route when it is added and on every resync, so an answer that
/// changes (a node moved) is picked up on the next resync. `None` leaves the route unserved
/// (and retried).
pub trait NodeBackend: Send + Sync + 'static {
    /// The address the gateway forwards `route` to.
    fn locate(&self, route: &NodeRoute) -> Option<SocketAddr>;
}

impl<F> NodeBackend for F
where
    F: Fn(&NodeRoute) -> Option<SocketAddr> + Send + Sync + 'static,
{
    fn locate(&self, route: &NodeRoute) -> Option<SocketAddr> {
        self(route)
    }
}

/// The node's infranet address (`node_addr` of the record) and the route's port: right for
/// facilities whose infranet the portal host routes to, such as the built-in one.
#[derive(Debug, Clone, Copy, Default)]
pub struct InfranetBackend;

impl NodeBackend for InfranetBackend {
    fn locate(&self, route: &NodeRoute) -> Option<SocketAddr> {
        let ip: IpAddr = route.node_addr.trim().parse().ok()?;
        let port = u16::try_from(route.port).ok().filter(|p| *p != 0)?;
        Some(SocketAddr::new(ip, port))
    }
}

/// How node routes are served.
#[derive(Debug, Clone)]
pub struct NodeIngressOptions {
    /// The http or https endpoint of the configuration that serves http and https node routes
    /// by path (`/<mzid>/<node>/<port>/`). Without it in the configuration those routes wait.
    pub https_endpoint: String,
    /// The address tcp and udp gateway ports listen on. Gateway ports are not behind the NAT
    /// (it maps single ports), so in production this is the public address or `0.0.0.0`.
    pub gateway_ip: IpAddr,
    /// A UDP client that sends nothing and receives nothing for this long loses its session.
    pub udp_idle: Duration,
    /// Most UDP clients one udp route serves at once; datagrams from further clients are dropped.
    pub udp_max_sessions: usize,
    /// Most connections one tcp route holds open.
    pub max_connections: usize,
    /// How often routes that could not be served (port taken, node unreachable) are retried.
    pub retry_every: Duration,
}

impl Default for NodeIngressOptions {
    fn default() -> Self {
        NodeIngressOptions {
            https_endpoint: NODE_HTTPS_ENDPOINT.to_owned(),
            gateway_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            udp_idle: Duration::from_secs(120),
            udp_max_sessions: 1024,
            max_connections: 4096,
            retry_every: Duration::from_secs(10),
        }
    }
}

/// Everything [`crate::IngressController::start`] needs.
#[derive(Clone)]
pub struct ControllerOptions {
    /// The YAML configuration (the format of `ingress/ingress.example.yml`). It is reloaded
    /// when its contents change and on SIGHUP. When it does not exist yet, `config` is served
    /// until it appears.
    pub config_path: Option<PathBuf>,
    /// The configuration served when there is no file.
    pub config: Option<IngressConfig>,
    /// Where the materialize service writes node ingress records.
    pub store: Arc<dyn Store>,
    /// Where experiment nodes are reached.
    pub node_backend: Arc<dyn NodeBackend>,
    /// How node routes are served.
    pub node_ingress: NodeIngressOptions,
    /// How often the file is read to look for changes; `None` reloads only on SIGHUP and
    /// [`crate::RunningIngress::reload`].
    pub poll_every: Option<Duration>,
    /// Reload the file on SIGHUP.
    pub reload_on_sighup: bool,
    /// How often the NAT's rule counters are read into the proxy's metrics
    /// (`ingress_kernel_connections_total`), while any endpoint is `forward: kernel`.
    pub nat_counters_every: Duration,
}

impl ControllerOptions {
    /// Options with the defaults: no file, no configuration, [`InfranetBackend`], polling the
    /// file every second, reloading on SIGHUP, and reading NAT counters every 5 s.
    pub fn new(store: Arc<dyn Store>) -> ControllerOptions {
        ControllerOptions {
            config_path: None,
            config: None,
            store,
            node_backend: Arc::new(InfranetBackend),
            node_ingress: NodeIngressOptions::default(),
            poll_every: Some(Duration::from_secs(1)),
            reload_on_sighup: true,
            nat_counters_every: Duration::from_secs(5),
        }
    }
}

/// A configuration for a single machine: the node ingress HTTPS endpoint on `https` with a
/// certificate for `localhost` from a generated development CA (its `ca.pem` written to
/// `write_ca_to` when given), and nothing else. `trellisd up` serves this when no file is
/// given.
pub fn default_config(https: SocketAddr, write_ca_to: Option<PathBuf>) -> IngressConfig {
    IngressConfig {
        endpoints: vec![EndpointConfig {
            name: NODE_HTTPS_ENDPOINT.to_owned(),
            listen: https,
            protocol: EndpointProtocol::Https,
            tls: Some(TlsConfig {
                certificates: Vec::new(),
                dev_ca: Some(DevCaConfig { names: vec!["localhost".to_owned()], write_ca_to }),
            }),
            pool: None,
            proxy_protocol: false,
            max_connections: 4096,
            forward: Default::default(),
        }],
        // Its own thread: connections stay on one core, and the portal's API work on the
        // shared runtime does not delay them.
        threads: 1,
        ..IngressConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_materialize::IngressProtocol;

    pub(crate) fn route(protocol: IngressProtocol, node_addr: &str, port: u32) -> NodeRoute {
        NodeRoute {
            mzid: "r.e.p".into(),
            protocol,
            node: "a".into(),
            port,
            node_addr: node_addr.into(),
            gateway: "localhost".into(),
            gateway_port: 30001,
            url: "tcp://localhost:30001".into(),
            creator: "mona".into(),
            created: 0,
        }
    }

    #[test]
    fn the_infranet_backend_is_the_node_address_and_port() {
        let locate = |addr: &str, port| InfranetBackend.locate(&route(IngressProtocol::Tcp, addr, port));
        assert_eq!(locate("10.0.0.3", 22), Some("10.0.0.3:22".parse().unwrap()));
        assert_eq!(locate("fd00::3", 80), Some("[fd00::3]:80".parse().unwrap()));
        assert_eq!(locate("node-a", 22), None);
        assert_eq!(locate("10.0.0.3", 0), None);
        assert_eq!(locate("10.0.0.3", 70000), None);
    }

    #[test]
    fn the_default_configuration_is_valid() {
        let config = default_config("127.0.0.1:7443".parse().unwrap(), None);
        config.validate().unwrap();
        assert_eq!(config.endpoints[0].name, NODE_HTTPS_ENDPOINT);
    }
}
