//! Deciding, without I/O, what the ingress serves for one node route, whether that fits the
//! configuration, and the whole configuration a reload applies.

use std::net::SocketAddr;

use trellis_ingress::{
    EjectionConfig, EndpointConfig, EndpointProtocol, IngressConfig, PoolConfig, RouteConfig,
    UpstreamTlsConfig,
};
use trellis_materialize::IngressProtocol;

use crate::NodeRoute;
use crate::options::{NODE_NAME_PREFIX, NodeIngressOptions};

/// What serves one node route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// A route by path on the HTTPS endpoint, to a one-backend pool.
    Http { pool: PoolConfig, route: RouteConfig },
    /// A TCP endpoint of its own on the gateway port, to a one-backend pool.
    Tcp { pool: PoolConfig, endpoint: EndpointConfig },
    /// A UDP forwarder on the gateway port.
    Udp { listen: SocketAddr, backend: SocketAddr },
}

impl Plan {
    /// Whether `other` serves from the same place (route, port) and differs at most in its
    /// backend, so only the backend needs changing.
    pub(crate) fn same_place(&self, other: &Plan) -> bool {
        match (self, other) {
            (Plan::Http { route: a, .. }, Plan::Http { route: b, .. }) => a == b,
            (Plan::Tcp { endpoint: a, .. }, Plan::Tcp { endpoint: b, .. }) => a == b,
            (Plan::Udp { listen: a, .. }, Plan::Udp { listen: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// The name of a node route's pool, route or endpoint: `node/<mzid>/<node>/<proto>/<port>`.
pub(crate) fn node_id(route: &NodeRoute) -> String {
    format!("{NODE_NAME_PREFIX}{}/{}/{}/{}", route.mzid, route.node, route.protocol.as_str(), route.port)
}

/// The path prefix of an http or https node route, as the materialize service puts it in the
/// route's URL: `/<mzid>/<node>/<port>/`.
pub(crate) fn path_prefix(route: &NodeRoute) -> String {
    format!("/{}/{}/{}/", route.mzid, route.node, route.port)
}

/// What serves `route` when its node is reached at `backend`.
pub(crate) fn plan(
    route: &NodeRoute,
    backend: Option<SocketAddr>,
    options: &NodeIngressOptions,
) -> Result<(String, Plan), String> {
    let id = node_id(route);
    let backend = backend.ok_or_else(|| {
        format!(
            "node {:?} ({:?}) port {} cannot be reached from here",
            route.node, route.node_addr, route.port
        )
    })?;
    let pool = |tls: Option<UpstreamTlsConfig>| PoolConfig {
        backends: vec![backend],
        balance: Default::default(),
        http2: false,
        health_check: None,
        ejection: EjectionConfig::default(),
        tls,
    };
    let gateway = || {
        u16::try_from(route.gateway_port)
            .ok()
            .filter(|p| *p != 0)
            .map(|port| SocketAddr::new(options.gateway_ip, port))
            .ok_or_else(|| format!("gateway port {} is not a port number", route.gateway_port))
    };
    let plan = match route.protocol {
        // An https node port is reached over TLS, unverified: a node's certificate is its own
        // (self-signed) and the node sits on the experiment network the portal built.
        IngressProtocol::Http | IngressProtocol::Https => Plan::Http {
            pool: pool((route.protocol == IngressProtocol::Https).then(UpstreamTlsConfig::default)),
            route: RouteConfig {
                id: id.clone(),
                host: "*".to_owned(),
                path_prefix: path_prefix(route),
                pool: id.clone(),
                endpoints: vec![options.https_endpoint.clone()],
                // The node's server sees its own paths (`/lab`), not the portal's
                // `/<mzid>/<node>/<port>/lab`; the prefix comes in `X-Forwarded-Prefix`.
                strip_prefix: true,
            },
        },
        IngressProtocol::Tcp => Plan::Tcp {
            pool: pool(None),
            endpoint: EndpointConfig {
                name: id.clone(),
                listen: gateway()?,
                protocol: EndpointProtocol::Tcp,
                tls: None,
                pool: Some(id.clone()),
                proxy_protocol: false,
                max_connections: options.max_connections.max(1),
                forward: Default::default(),
            },
        },
        IngressProtocol::Udp => Plan::Udp { listen: gateway()?, backend },
    };
    Ok((id, plan))
}

/// Whether `plan` can be served beside `base`: http routes need the HTTPS endpoint, and a tcp
/// gateway port must not be one the configuration listens on.
pub(crate) fn fits(plan: &Plan, base: &IngressConfig, options: &NodeIngressOptions) -> Result<(), String> {
    match plan {
        Plan::Http { .. } => match base.endpoints.iter().find(|e| e.name == options.https_endpoint) {
            Some(e) if e.protocol != EndpointProtocol::Tcp => Ok(()),
            Some(_) => Err(format!("endpoint {:?} is a tcp endpoint", options.https_endpoint)),
            None => Err(format!("the configuration has no endpoint {:?}", options.https_endpoint)),
        },
        Plan::Tcp { endpoint, .. } => {
            let admin = base.admin.iter().map(|a| ("admin", a.listen));
            let taken = base.endpoints.iter().map(|e| (e.name.as_str(), e.listen)).chain(admin);
            for (name, addr) in taken {
                if overlaps(addr, endpoint.listen) {
                    return Err(format!("gateway port {} is taken by {name:?} ({addr})", endpoint.listen));
                }
            }
            Ok(())
        }
        Plan::Udp { .. } => Ok(()),
    }
}

/// Whether two TCP listeners would collide.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// `base` plus the pools, routes and endpoints of `plans` (udp plans are not the proxy's).
pub(crate) fn merge<'a>(
    base: &IngressConfig,
    plans: impl IntoIterator<Item = (&'a str, &'a Plan)>,
) -> IngressConfig {
    let mut config = base.clone();
    for (id, plan) in plans {
        match plan {
            Plan::Http { pool, route } => {
                config.pools.insert(id.to_owned(), pool.clone());
                config.routes.push(route.clone());
            }
            Plan::Tcp { pool, endpoint } => {
                config.pools.insert(id.to_owned(), pool.clone());
                config.endpoints.push(endpoint.clone());
            }
            Plan::Udp { .. } => {}
        }
    }
    config
}

/// Names in a configuration file that node ingress would collide with.
pub(crate) fn reserved_names(config: &IngressConfig) -> Option<String> {
    let endpoints = config.endpoints.iter().map(|e| ("endpoint", e.name.as_str()));
    let pools = config.pools.keys().map(|p| ("pool", p.as_str()));
    let routes = config.routes.iter().map(|r| ("route", r.id.as_str()));
    endpoints.chain(pools).chain(routes).find(|(_, name)| name.starts_with(NODE_NAME_PREFIX)).map(
        |(kind, name)| {
            format!("{kind} {name:?}: names starting with {NODE_NAME_PREFIX:?} are kept for node ingress")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::NODE_HTTPS_ENDPOINT;

    fn route(protocol: IngressProtocol, port: u32, gateway_port: u32) -> NodeRoute {
        NodeRoute {
            mzid: "r.e.p".into(),
            protocol,
            node: "a".into(),
            port,
            node_addr: "10.0.0.3".into(),
            gateway: "localhost".into(),
            gateway_port,
            url: String::new(),
            creator: "mona".into(),
            created: 0,
        }
    }

    fn base() -> IngressConfig {
        IngressConfig::from_yaml(&format!(
            "admin: {{ listen: \"127.0.0.1:9180\" }}\nendpoints:\n  - {{ name: {NODE_HTTPS_ENDPOINT}, listen: \"127.0.0.1:8443\", protocol: http }}\n"
        ))
        .unwrap()
    }

    fn backend(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([10, 0, 0, 3], port)))
    }

    #[test]
    fn http_routes_go_by_path_on_the_https_endpoint() {
        let options = NodeIngressOptions::default();
        let (id, plan) = plan(&route(IngressProtocol::Https, 8080, 443), backend(8080), &options).unwrap();
        assert_eq!(id, "node/r.e.p/a/https/8080");
        let Plan::Http { pool, route } = &plan else { panic!("{plan:?}") };
        assert_eq!(pool.backends, vec![backend(8080).unwrap()]);
        assert_eq!(route.path_prefix, "/r.e.p/a/8080/");
        assert_eq!(route.endpoints, vec![NODE_HTTPS_ENDPOINT.to_owned()]);
        assert!(route.strip_prefix, "the node sees its own paths");
        assert_eq!(pool.tls, Some(UpstreamTlsConfig::default()), "an https port is reached over TLS");
        fits(&plan, &base(), &options).unwrap();
        let merged = merge(&base(), [(id.as_str(), &plan)]);
        merged.validate().unwrap();
        assert_eq!(merged.routes.len(), 1);

        let without = IngressConfig::default();
        assert!(fits(&plan, &without, &options).unwrap_err().contains("no endpoint \"node-ingress\""));

        let (_, http) =
            super::plan(&self::route(IngressProtocol::Http, 8080, 443), backend(8080), &options).unwrap();
        let Plan::Http { pool: http_pool, .. } = &http else { panic!("{http:?}") };
        assert_eq!(http_pool.tls, None, "an http port is reached in plain text");
    }

    #[test]
    fn tcp_and_udp_routes_get_their_gateway_port() {
        let options = NodeIngressOptions::default();
        let (id, tcp) = plan(&route(IngressProtocol::Tcp, 22, 30022), backend(22), &options).unwrap();
        let Plan::Tcp { endpoint, .. } = &tcp else { panic!("{tcp:?}") };
        assert_eq!(endpoint.listen, "127.0.0.1:30022".parse().unwrap());
        assert_eq!(endpoint.pool.as_deref(), Some(id.as_str()));
        let merged = merge(&base(), [(id.as_str(), &tcp)]);
        merged.validate().unwrap();

        let (_, udp) = plan(&route(IngressProtocol::Udp, 53, 30053), backend(53), &options).unwrap();
        assert_eq!(
            udp,
            Plan::Udp { listen: "127.0.0.1:30053".parse().unwrap(), backend: backend(53).unwrap() }
        );
        assert_eq!(merge(&base(), [("u", &udp)]), base());

        let zero = plan(&route(IngressProtocol::Tcp, 22, 0), backend(22), &options).unwrap_err();
        assert!(zero.contains("not a port number"), "{zero}");
        let unreachable = plan(&route(IngressProtocol::Tcp, 22, 30022), None, &options).unwrap_err();
        assert!(unreachable.contains("cannot be reached"), "{unreachable}");
    }

    #[test]
    fn a_gateway_port_the_configuration_uses_does_not_fit() {
        let options = NodeIngressOptions::default();
        for port in [8443, 9180] {
            let (_, tcp) = plan(&route(IngressProtocol::Tcp, 22, port), backend(22), &options).unwrap();
            assert!(fits(&tcp, &base(), &options).unwrap_err().contains("is taken"));
        }
        let wildcard = NodeIngressOptions { gateway_ip: "0.0.0.0".parse().unwrap(), ..options.clone() };
        let (_, tcp) = plan(&route(IngressProtocol::Tcp, 22, 8443), backend(22), &wildcard).unwrap();
        assert!(fits(&tcp, &base(), &wildcard).is_err());
        let (_, tcp) = plan(&route(IngressProtocol::Tcp, 22, 30022), backend(22), &wildcard).unwrap();
        fits(&tcp, &base(), &wildcard).unwrap();
    }

    #[test]
    fn only_the_backend_changing_keeps_the_place() {
        let options = NodeIngressOptions::default();
        let r = route(IngressProtocol::Tcp, 22, 30022);
        let (_, one) = plan(&r, backend(22), &options).unwrap();
        let (_, two) = plan(&r, Some("10.0.0.9:22".parse().unwrap()), &options).unwrap();
        assert!(one.same_place(&two));
        assert_ne!(one, two);
        let (_, moved) = plan(&route(IngressProtocol::Tcp, 22, 30023), backend(22), &options).unwrap();
        assert!(!one.same_place(&moved));
    }

    #[test]
    fn files_may_not_use_node_names() {
        assert_eq!(reserved_names(&base()), None);
        let mut config = base();
        config.endpoints[0].name = "node/x".into();
        assert!(reserved_names(&config).unwrap().starts_with("endpoint \"node/x\""));
    }
}
