//! Checks an [`IngressConfig`] as a whole and reports the first problem with its place in the
//! YAML file (line and column) when the configuration came from one.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use crate::config::{
    Balance, EndpointConfig, EndpointProtocol, Forward, HealthCheckKind, IngressConfig, PoolConfig,
    RouteConfig,
};

/// A line and column in the configuration file (both from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", position.map(|p| format!("{p}: ")).unwrap_or_default())]
pub struct ConfigError {
    /// Where in the YAML the problem is, when known.
    pub position: Option<Position>,
    /// What is wrong, naming the endpoint, pool or route.
    pub message: String,
}

impl From<ConfigError> for trellis_types::Error {
    fn from(err: ConfigError) -> Self {
        trellis_types::Error::invalid("ingress configuration", err.to_string())
    }
}

/// The part of the document a semantic error is about.
#[derive(Debug, Clone)]
pub(crate) enum Site {
    Endpoint(usize),
    Pool(String),
    Route(usize),
    Nat,
    Document,
}

/// An error found by [`validate`], not yet placed in a file.
#[derive(Debug, Clone)]
pub(crate) struct Invalid {
    pub(crate) site: Site,
    pub(crate) message: String,
}

impl Invalid {
    fn at(site: Site, message: impl Into<String>) -> Invalid {
        Invalid { site, message: message.into() }
    }

    pub(crate) fn unplaced(self) -> ConfigError {
        ConfigError { position: None, message: self.message }
    }
}

/// Where each list item and pool starts in the YAML, so semantic errors can point there.
#[derive(Deserialize, Default)]
struct Spans {
    #[serde(default)]
    endpoints: Vec<Spanned<IgnoredAny>>,
    #[serde(default)]
    pools: BTreeMap<String, Spanned<IgnoredAny>>,
    #[serde(default)]
    routes: Vec<Spanned<IgnoredAny>>,
    #[serde(default)]
    nat: Option<Spanned<IgnoredAny>>,
}

impl IngressConfig {
    /// Parses and validates a YAML document.
    pub fn from_yaml(yaml: &str) -> Result<IngressConfig, ConfigError> {
        let config: IngressConfig = serde_saphyr::from_str(yaml).map_err(|e| from_yaml_error(&e))?;
        if let Err(invalid) = validate(&config) {
            let spans: Spans = serde_saphyr::from_str(yaml).unwrap_or_default();
            let spanned = match &invalid.site {
                Site::Endpoint(index) => spans.endpoints.get(*index),
                Site::Route(index) => spans.routes.get(*index),
                Site::Pool(name) => spans.pools.get(name),
                Site::Nat => spans.nat.as_ref(),
                Site::Document => None,
            };
            let position = spanned
                .map(|s| s.referenced)
                .filter(|l| l.line() > 0)
                .map(|l| Position { line: l.line(), column: l.column() });
            return Err(ConfigError { position, message: invalid.message });
        }
        Ok(config)
    }

    /// Checks the configuration without a file (built in code or changed at run time).
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate(self).map_err(Invalid::unplaced)
    }
}

fn from_yaml_error(err: &serde_saphyr::Error) -> ConfigError {
    use serde_saphyr::MessageFormatter as _;
    let plain = err.without_snippet();
    let position =
        plain.location().filter(|l| l.line() > 0).map(|l| Position { line: l.line(), column: l.column() });
    let message = serde_saphyr::DefaultMessageFormatter
        .format_message(plain)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    ConfigError { position, message }
}

/// More serving threads than this is a typo, not a machine.
const MAX_THREADS: usize = 1024;

pub(crate) fn validate(config: &IngressConfig) -> Result<(), Invalid> {
    let t = &config.timeouts;
    for (name, value) in [
        ("header_read", t.header_read),
        ("idle", t.idle),
        ("tcp_idle", t.tcp_idle),
        ("connect", t.connect),
        ("tls_handshake", t.tls_handshake),
    ] {
        if value.is_zero() {
            return Err(Invalid::at(Site::Document, format!("timeouts.{name} must be longer than zero")));
        }
    }
    if config.threads > MAX_THREADS {
        return Err(Invalid::at(
            Site::Document,
            format!("threads: {} is more than {MAX_THREADS}; one per core is plenty", config.threads),
        ));
    }
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    for (index, endpoint) in config.endpoints.iter().enumerate() {
        validate_endpoint(endpoint, &config.pools).map_err(|m| Invalid::at(Site::Endpoint(index), m))?;
        if !names.insert(endpoint.name.as_str()) {
            return Err(Invalid::at(
                Site::Endpoint(index),
                format!("endpoint {:?} is defined twice", endpoint.name),
            ));
        }
        // Port 0 asks the kernel for a free port, so two such endpoints do not collide.
        if endpoint.listen.port() != 0 && !addresses.insert(endpoint.listen) {
            return Err(Invalid::at(
                Site::Endpoint(index),
                format!(
                    "endpoint {:?}: {} is already used by another endpoint",
                    endpoint.name, endpoint.listen
                ),
            ));
        }
    }
    if let Some(admin) = &config.admin
        && admin.listen.port() != 0
        && addresses.contains(&admin.listen)
    {
        return Err(Invalid::at(
            Site::Document,
            format!("admin.listen {} is also an endpoint", admin.listen),
        ));
    }
    for (name, pool) in &config.pools {
        validate_pool(name, pool).map_err(|m| Invalid::at(Site::Pool(name.clone()), m))?;
    }
    let mut ids = HashSet::new();
    for (index, route) in config.routes.iter().enumerate() {
        validate_route(route, &config.pools, &config.endpoints)
            .map_err(|m| Invalid::at(Site::Route(index), m))?;
        if !ids.insert(route.id.as_str()) {
            return Err(Invalid::at(Site::Route(index), format!("route {:?} is defined twice", route.id)));
        }
    }
    for (index, endpoint) in config.endpoints.iter().enumerate() {
        if endpoint.forward == Forward::Kernel && config.nat.is_none() {
            return Err(Invalid::at(
                Site::Endpoint(index),
                format!(
                    "endpoint {:?}: forward: kernel is carried out by NAT rules, so it needs a `nat` section",
                    endpoint.name
                ),
            ));
        }
    }
    // With every backend in, which is the most the forwards will ever hold.
    if let Some(nat) = config.nat_with_forwards(|_, _| true) {
        nat.validate().map_err(|e| Invalid::at(Site::Nat, e.to_string()))?;
    }
    Ok(())
}

fn validate_endpoint(endpoint: &EndpointConfig, pools: &BTreeMap<String, PoolConfig>) -> Result<(), String> {
    let name = &endpoint.name;
    check_name("endpoint", name)?;
    if endpoint.max_connections == 0 {
        return Err(format!("endpoint {name:?}: max_connections must be at least 1"));
    }
    match endpoint.protocol {
        EndpointProtocol::Https => {
            let tls = endpoint.tls.as_ref().ok_or(format!("endpoint {name:?}: https needs a tls section"))?;
            if tls.certificates.is_empty() && tls.dev_ca.is_none() {
                return Err(format!("endpoint {name:?}: tls needs certificates or dev_ca"));
            }
            for cert in &tls.certificates {
                for sni in &cert.names {
                    check_host(sni).map_err(|m| format!("endpoint {name:?}: certificate name {m}"))?;
                }
            }
            if let Some(dev) = &tls.dev_ca
                && dev.names.is_empty()
            {
                return Err(format!("endpoint {name:?}: dev_ca needs at least one name"));
            }
        }
        EndpointProtocol::Http | EndpointProtocol::Tcp if endpoint.tls.is_some() => {
            return Err(format!("endpoint {name:?}: tls is only for https endpoints"));
        }
        _ => {}
    }
    if endpoint.forward == Forward::Kernel {
        validate_kernel_forward(endpoint, pools)?;
    }
    match (endpoint.protocol, &endpoint.pool) {
        (EndpointProtocol::Tcp, None) => Err(format!("endpoint {name:?}: a tcp endpoint needs a pool")),
        (EndpointProtocol::Tcp, Some(pool)) if !pools.contains_key(pool) => {
            Err(format!("endpoint {name:?}: pool {pool:?} is not defined"))
        }
        (EndpointProtocol::Tcp, Some(pool)) if pools.get(pool).is_some_and(|p| p.tls.is_some()) => {
            Err(format!(
                "endpoint {name:?}: pool {pool:?} speaks TLS to its backends, which a tcp endpoint does not"
            ))
        }
        (EndpointProtocol::Http | EndpointProtocol::Https, Some(_)) => {
            Err(format!("endpoint {name:?}: http endpoints choose pools through routes, not `pool`"))
        }
        (EndpointProtocol::Http | EndpointProtocol::Https, None) if endpoint.proxy_protocol => {
            Err(format!("endpoint {name:?}: proxy_protocol is only for tcp endpoints"))
        }
        _ => Ok(()),
    }
}

/// What the kernel cannot do that the proxy can.
fn validate_kernel_forward(
    endpoint: &EndpointConfig,
    pools: &BTreeMap<String, PoolConfig>,
) -> Result<(), String> {
    let name = &endpoint.name;
    if endpoint.protocol != EndpointProtocol::Tcp {
        return Err(format!("endpoint {name:?}: forward: kernel is only for tcp endpoints"));
    }
    if endpoint.proxy_protocol {
        return Err(format!(
            "endpoint {name:?}: with forward: kernel the backend sees the client's own address, \
             so proxy_protocol does not apply"
        ));
    }
    // Silently ignoring a limit the operator wrote down would be worse than refusing it.
    if endpoint.max_connections != crate::config::default_max_connections() {
        return Err(format!(
            "endpoint {name:?}: with forward: kernel nothing counts the endpoint's connections, \
             so max_connections does not apply; leave it out, or forward through the proxy"
        ));
    }
    if endpoint.listen.port() == 0 {
        return Err(format!(
            "endpoint {name:?}: forward: kernel needs a fixed port (nothing is bound to pick one)"
        ));
    }
    if let Some(pool) = endpoint.pool.as_ref().and_then(|p| pools.get(p).map(|c| (p, c)))
        && pool.1.balance != Balance::RoundRobin
    {
        return Err(format!(
            "endpoint {name:?}: pool {:?} balances by least connections, which only the proxy \
             can do; forward: kernel takes turns (round_robin)",
            pool.0
        ));
    }
    Ok(())
}

pub(crate) fn validate_pool(name: &str, pool: &PoolConfig) -> Result<(), String> {
    check_name("pool", name)?;
    if pool.backends.is_empty() {
        return Err(format!("pool {name:?} has no backends"));
    }
    let unique: HashSet<_> = pool.backends.iter().collect();
    if unique.len() != pool.backends.len() {
        return Err(format!("pool {name:?} lists a backend twice"));
    }
    if let Some(check) = &pool.health_check {
        if check.kind == HealthCheckKind::Http && !check.path.starts_with('/') {
            return Err(format!("pool {name:?}: health_check.path must start with '/'"));
        }
        if check.interval.is_zero() || check.timeout.is_zero() {
            return Err(format!("pool {name:?}: health_check interval and timeout must be longer than zero"));
        }
        if check.rise == 0 || check.fall == 0 {
            return Err(format!("pool {name:?}: health_check rise and fall must be at least 1"));
        }
    }
    if pool.ejection.consecutive_failures == 0 {
        return Err(format!("pool {name:?}: ejection.consecutive_failures must be at least 1"));
    }
    if let Some(tls) = &pool.tls {
        // Reads the CA file now, so a missing or bad one is refused with the configuration.
        crate::upstream_tls::UpstreamTls::new(name, tls).map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub(crate) fn validate_route(
    route: &RouteConfig,
    pools: &BTreeMap<String, PoolConfig>,
    endpoints: &[EndpointConfig],
) -> Result<(), String> {
    let id = &route.id;
    check_name("route", id)?;
    check_host(&route.host).map_err(|m| format!("route {id:?}: host {m}"))?;
    if !route.path_prefix.starts_with('/') {
        return Err(format!("route {id:?}: path_prefix must start with '/'"));
    }
    if !pools.contains_key(&route.pool) {
        return Err(format!("route {id:?}: pool {:?} is not defined", route.pool));
    }
    for name in &route.endpoints {
        match endpoints.iter().find(|e| &e.name == name) {
            None => return Err(format!("route {id:?}: endpoint {name:?} is not defined")),
            Some(e) if e.protocol == EndpointProtocol::Tcp => {
                return Err(format!("route {id:?}: endpoint {name:?} is a tcp endpoint"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Ids may hold `/` (node-ingress routes are named `<mzid>/<node>/<protocol>/<port>`) but no
/// whitespace or control characters, so they read cleanly in logs and metric labels.
fn check_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 200 {
        return Err(format!("{kind} names must hold 1 to 200 characters"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\') {
        return Err(format!("{kind} name {name:?} holds whitespace, quotes or control characters"));
    }
    Ok(())
}

/// A lowercase DNS name, `*.`+name, or `*`.
pub(crate) fn check_host(host: &str) -> Result<(), String> {
    if host == "*" {
        return Ok(());
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    let labels_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if labels_ok { Ok(()) } else { Err(format!("{host:?} is not a lowercase DNS name, *.name or *")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_is_valid() {
        let config = IngressConfig::from_yaml(include_str!("../../ingress.example.yml")).unwrap();
        assert_eq!(config.endpoints.len(), 5);
        let nat = config.nat_with_forwards(|_, _| true).unwrap();
        assert_eq!(nat.mappings.len(), 5);
        assert_eq!(nat.forwards.len(), 1);
        trellis_nat::render(&nat).unwrap();
    }

    #[test]
    fn a_misspelt_key_is_refused_with_its_position() {
        let err = IngressConfig::from_yaml(
            "endpoints: []\nroutes:\n  - id: a\n    host: a.test\n    path_prefx: /\n    pool: p\n",
        )
        .unwrap_err();
        assert_eq!(err.position.map(|p| p.line), Some(5), "{err}");
        assert!(err.message.contains("path_prefx"), "{err}");
    }

    #[test]
    fn semantic_errors_point_at_their_item() {
        let yaml = "pools:\n  p: { backends: [\"127.0.0.1:1\"] }\nroutes:\n  - { id: a, host: a.test, pool: p }\n  - { id: b, host: b.test, pool: nope }\n";
        let err = IngressConfig::from_yaml(yaml).unwrap_err();
        assert_eq!(err.to_string(), "line 5, column 5: route \"b\": pool \"nope\" is not defined");

        let yaml = "endpoints:\n  - { name: web, listen: \"127.0.0.1:80\", protocol: https }\n";
        let err = IngressConfig::from_yaml(yaml).unwrap_err();
        assert_eq!(err.to_string(), "line 2, column 5: endpoint \"web\": https needs a tls section");

        let err = IngressConfig::from_yaml("threads: 100000\n").unwrap_err();
        assert_eq!(err.to_string(), "threads: 100000 is more than 1024; one per core is plenty");

        let yaml = "pools:\n  p:\n    backends: []\n";
        let err = IngressConfig::from_yaml(yaml).unwrap_err();
        assert_eq!(err.position.map(|p| p.line), Some(3), "{err}");
        assert!(err.message.contains("pool \"p\" has no backends"), "{err}");
    }

    #[test]
    fn kernel_forwarding_is_refused_where_the_kernel_cannot_do_it() {
        let config = |endpoint: &str, balance: &str, nat: &str| {
            format!(
                "endpoints:\n  - {{ name: ssh, listen: \"127.0.1.3:2202\", pool: jump, forward: kernel, {endpoint} }}\n\
                 pools:\n  jump: {{ backends: [\"127.0.0.1:2201\"], balance: {balance} }}\n{nat}"
            )
        };
        let nat = "nat:\n  mappings: [{ public: \"198.18.0.1:22\", anchor: \"127.0.1.3:2202\" }]\n";
        let ok = IngressConfig::from_yaml(&config("protocol: tcp", "round_robin", nat)).unwrap();
        let forwards = ok.nat_with_forwards(|_, _| true).unwrap().forwards;
        assert_eq!(forwards.len(), 1);
        assert_eq!(forwards[0].backends, ["127.0.0.1:2201".parse().unwrap()]);
        assert!(ok.nat_with_forwards(|_, _| false).unwrap().forwards[0].backends.is_empty());

        let cases = [
            (config("protocol: tcp", "round_robin", ""), "needs a `nat` section"),
            (config("protocol: http", "round_robin", nat), "forward: kernel is only for tcp endpoints"),
            (
                config("protocol: tcp, proxy_protocol: true", "round_robin", nat),
                "proxy_protocol does not apply",
            ),
            (config("protocol: tcp", "least_conn", nat), "only the proxy can do"),
            (
                config("protocol: tcp, max_connections: 100", "round_robin", nat),
                "max_connections does not apply",
            ),
            (
                config("protocol: tcp", "round_robin", nat)
                    .replace("127.0.1.3:2202\", pool", "127.0.1.3:0\", pool"),
                "needs a fixed port",
            ),
            (
                config("protocol: tcp", "round_robin", nat)
                    .replace("anchor: \"127.0.1.3:2202", "anchor: \"127.0.1.4:1")
                    .replace("198.18.0.1:22", "127.0.1.3:2202"),
                "mapped or forwarded twice",
            ),
        ];
        for (yaml, expected) in cases {
            let err = IngressConfig::from_yaml(&yaml).unwrap_err();
            assert!(err.to_string().contains(expected), "{err} should say {expected:?}\n{yaml}");
        }
    }

    #[test]
    fn hosts_must_be_lowercase_names_or_wildcards() {
        assert!(check_host("api.example.org").is_ok());
        assert!(check_host("*.xdc.example.org").is_ok());
        assert!(check_host("*").is_ok());
        assert!(check_host("API.example.org").is_err());
        assert!(check_host("a..b").is_err());
        assert!(check_host("*.").is_err());
    }
}
