//! The declarative ingress configuration: plain data read from YAML (serde-saphyr) or built in
//! code; `validate` (in `validate.rs`) checks it before anything is bound.
//!
//! Unknown keys are refused at every level: a misspelt `path_prefx` would otherwise widen a
//! route silently, which at the front door is a security bug.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use trellis_nat::{NatConfig, NatForward, NatProtocol};

/// Everything the ingress serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressConfig {
    /// Where `/metrics` (Prometheus text format) and `/healthz` are served; none when absent.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Timeouts shared by every endpoint.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Log every request and TCP session on the tracing target `access`.
    #[serde(default = "yes")]
    pub access_log: bool,
    /// Set `SO_REUSEPORT` on every listener, so several ingress instances (one per core, each
    /// on its own single-threaded runtime) share the addresses and the kernel spreads
    /// connections over them. Off by default: it would also let a second, misconfigured
    /// process bind the same address silently.
    #[serde(default)]
    pub reuse_port: bool,
    /// Threads that serve connections, each a single-threaded runtime owning the
    /// connections it accepts (with more than one, every endpoint has a listener per thread,
    /// with `SO_REUSEPORT`). 0 serves them on the runtime that started the ingress. Applies at
    /// start only.
    #[serde(default)]
    pub threads: usize,
    /// Listening sockets: HTTP, HTTPS (TLS terminated here) or TCP (L4 forwarding).
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
    /// Named backend pools that routes and TCP endpoints send traffic to.
    #[serde(default)]
    pub pools: BTreeMap<String, PoolConfig>,
    /// HTTP routes: host and path prefix → pool.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The public-address NAT in front of the endpoints' anchors (see `trellis-nat`).
    #[serde(default)]
    pub nat: Option<NatConfig>,
}

impl IngressConfig {
    /// The `nat` section with a forward for each `forward: kernel` endpoint, holding the
    /// backends of its pool that `usable(pool, backend)` accepts; `None` without a `nat`
    /// section.
    pub fn nat_with_forwards(&self, usable: impl Fn(&str, SocketAddr) -> bool) -> Option<NatConfig> {
        let mut nat = self.nat.clone()?;
        nat.forwards = self
            .endpoints
            .iter()
            .filter(|endpoint| endpoint.forward == Forward::Kernel)
            .map(|endpoint| {
                let pool = endpoint.pool.as_deref().unwrap_or_default();
                let backends = self.pools.get(pool).map_or_else(Vec::new, |p| {
                    p.backends.iter().copied().filter(|b| usable(pool, *b)).collect()
                });
                NatForward { listen: endpoint.listen, backends, protocol: NatProtocol::Tcp }
            })
            .collect();
        Some(nat)
    }
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the metrics and health endpoint.
    pub listen: SocketAddr,
}

/// Timeouts; durations are written `"500ms"`, `"10s"`, `"2m"` or `"1h"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Time allowed for a request's headers to arrive. For HTTP/1.1 the clock also runs while a
    /// kept-alive connection waits for its next request, so this bounds idle keep-alive too.
    #[serde(with = "duration")]
    pub header_read: Duration,
    /// A connection with no bytes moving in either direction for this long is closed.
    #[serde(with = "duration")]
    pub idle: Duration,
    /// A TCP endpoint's session with no bytes moving for this long is closed (longer than
    /// `idle`: an SSH session may sit quietly at a prompt).
    #[serde(with = "duration")]
    pub tcp_idle: Duration,
    /// Time allowed to connect to a backend before trying the next one.
    #[serde(with = "duration")]
    pub connect: Duration,
    /// Time allowed for a client's TLS handshake.
    #[serde(with = "duration")]
    pub tls_handshake: Duration,
    /// On shutdown, how long open connections may take to finish.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: Duration::from_secs(30),
            idle: Duration::from_secs(300),
            tcp_idle: Duration::from_secs(3600),
            connect: Duration::from_secs(5),
            tls_handshake: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Unique name, used in metrics, logs and route restrictions.
    pub name: String,
    /// The anchor address to listen on (the NAT maps the public address here).
    pub listen: SocketAddr,
    /// What the endpoint speaks.
    pub protocol: EndpointProtocol,
    /// Certificates for `https` endpoints.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The pool a `tcp` endpoint forwards to.
    #[serde(default)]
    pub pool: Option<String>,
    /// For `tcp` endpoints: send a PROXY protocol v2 header so the backend sees the client's
    /// address.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Most connections held open at once; further clients wait in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// For `tcp` endpoints: who carries the connections.
    #[serde(default)]
    pub forward: Forward,
}

/// Who carries a `tcp` endpoint's connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// The proxy accepts on `listen`, picks a backend and copies bytes both ways (with a
    /// PROXY protocol header when asked). Backends anywhere the proxy can reach.
    #[default]
    Proxy,
    /// Nothing listens: an nftables rule in the `nat` table translates each new connection
    /// to `listen` (and to public addresses mapped onto it) to the pool's next healthy
    /// backend, and the kernel carries the bytes. The backend sees the client's own address.
    /// Needs a `nat` section, a fixed port, round-robin balancing, and backends whose
    /// replies route back through this host (on this host, or on a bridge behind it).
    /// `timeouts.tcp_idle` and per-connection metrics do not apply, and setting
    /// `max_connections` is refused: nothing would enforce it.
    Kernel,
}

/// What an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointProtocol {
    /// Plain HTTP/1.1 and HTTP/2 (prior knowledge), routed by host and path.
    Http,
    /// TLS terminated here (ALPN `h2` and `http/1.1`), then as `http`.
    Https,
    /// Bytes forwarded to a pool, optionally with a PROXY protocol header.
    Tcp,
}

/// Server certificates of an `https` endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificates chosen by the client's SNI name; the first one also serves clients that
    /// send no SNI or a name no certificate covers.
    #[serde(default)]
    pub certificates: Vec<CertificateConfig>,
    /// Generate a development CA and a certificate for these names at start-up.
    #[serde(default)]
    pub dev_ca: Option<DevCaConfig>,
}

/// A PEM certificate chain and its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// SNI names served with this certificate; `*.example.org` covers one label.
    pub names: Vec<String>,
    /// PEM file with the leaf certificate first, then intermediates.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A throw-away CA for development and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevCaConfig {
    /// Names the generated leaf certificate covers.
    pub names: Vec<String>,
    /// Where to write `ca.pem` so clients can trust it; not written when absent.
    #[serde(default)]
    pub write_ca_to: Option<PathBuf>,
}

/// A set of interchangeable backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Backend addresses.
    pub backends: Vec<SocketAddr>,
    /// How a backend is chosen for each request or connection.
    #[serde(default)]
    pub balance: Balance,
    /// Speak HTTP/2 (prior knowledge) to these backends for every request. gRPC requests use
    /// HTTP/2 regardless, since gRPC does not run over HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
    /// Active health checking; without it a backend counts as healthy unless ejected.
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
    /// Passive ejection after consecutive failures.
    #[serde(default)]
    pub ejection: EjectionConfig,
    /// Reach the backends over TLS (pools of HTTP routes, not of tcp endpoints): HTTP/1.1, and
    /// HTTP/2 for gRPC and `http2` pools.
    #[serde(default)]
    pub tls: Option<UpstreamTlsConfig>,
}

/// TLS from the proxy to a pool's backends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// The name sent in SNI and, with `ca`, required in the certificate; the backend's IP
    /// address when absent.
    #[serde(default)]
    pub server_name: Option<String>,
    /// PEM file of the authority the backends' certificates must chain to. Without it they are
    /// not verified: meant for backends with self-signed certificates on a network the portal
    /// controls, such as experiment nodes.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

/// Load-balancing policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each backend in turn.
    #[default]
    RoundRobin,
    /// The backend with the fewest requests (or TCP sessions) in flight.
    LeastConn,
}

/// Active health check of every backend in a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// `http`: `GET path` must answer 2xx or 3xx; `tcp`: a connect must succeed.
    #[serde(rename = "type")]
    pub kind: HealthCheckKind,
    /// Request path for `http` checks.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Time between checks.
    #[serde(default = "default_health_interval", with = "duration")]
    pub interval: Duration,
    /// Time one check may take.
    #[serde(default = "default_health_timeout", with = "duration")]
    pub timeout: Duration,
    /// Consecutive successes that bring a backend back.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that take a backend out.
    #[serde(default = "default_fall")]
    pub fall: u32,
}

/// What an active health check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    /// An HTTP/1.1 `GET`.
    Http,
    /// A TCP connect.
    Tcp,
}

/// Passive ejection: a backend that fails this many requests (or connects) in a row is left
/// out for `cooldown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EjectionConfig {
    /// Consecutive transport failures (refused, reset, timed out) before ejection.
    pub consecutive_failures: u32,
    /// How long an ejected backend is left out.
    #[serde(with = "duration")]
    pub cooldown: Duration,
}

impl Default for EjectionConfig {
    fn default() -> Self {
        EjectionConfig { consecutive_failures: 3, cooldown: Duration::from_secs(10) }
    }
}

/// An HTTP route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique id; runtime updates replace or remove routes by id.
    pub id: String,
    /// `api.example.org`, `*.example.org` (one label) or `*` (any host).
    pub host: String,
    /// Requests whose path starts with this prefix (at a `/` boundary) match; the longest
    /// matching prefix wins.
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    /// The pool requests go to.
    pub pool: String,
    /// Only on these endpoints; every HTTP and HTTPS endpoint when empty.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Forward paths without `path_prefix` (`/app/x` reaches the backend as `/x`), telling the
    /// backend the prefix in `X-Forwarded-Prefix`.
    #[serde(default)]
    pub strip_prefix: bool,
}

fn yes() -> bool {
    true
}
pub(crate) fn default_max_connections() -> usize {
    16_384
}
fn default_health_path() -> String {
    "/".to_owned()
}
fn default_health_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_health_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    2
}
fn default_path_prefix() -> String {
    "/".to_owned()
}

/// Durations as human text (`"250ms"`, `"10s"`, `"5m"`, `"1h"`) or a bare number of seconds.
pub(crate) mod duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        let millis = value.as_millis();
        if millis.is_multiple_of(1000) {
            serializer.serialize_str(&format!("{}s", millis / 1000))
        } else {
            serializer.serialize_str(&format!("{millis}ms"))
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(seconds) => Ok(Duration::from_secs(seconds)),
            Raw::Text(text) => parse(&text).map_err(serde::de::Error::custom),
        }
    }

    /// Parses `"<number><unit>"` with unit `ms`, `s`, `m` or `h`.
    pub(crate) fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like \"10s\""))?;
        let millis_per_unit = match unit {
            "ms" => 1,
            "s" | "" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s, m or h)")),
        };
        number
            .checked_mul(millis_per_unit)
            .map(Duration::from_millis)
            .ok_or_else(|| format!("{text:?} is too long"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(duration::parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration::parse("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(duration::parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(duration::parse("1h").unwrap(), Duration::from_secs(3600));
        assert!(duration::parse("ten").unwrap_err().contains("not a duration"));
        assert!(duration::parse("5d").unwrap_err().contains("unknown unit"));
    }
}
