//! The portal's front door: an L7 and L4 proxy in front of the API, the XDC web and SSH
//! services and node ingress, replacing the HAProxy of Merge's portal (`trellis-nat` maps the
//! public addresses onto the anchors this proxy listens on).
//!
//! What it does: TLS termination with per-SNI certificates (files, or a generated development
//! CA); HTTP/1.1 and HTTP/2 from clients, HTTP/2 to backends for gRPC (streaming included);
//! WebSocket and other HTTP/1.1 upgrades; bodies streamed, never buffered; `Forwarded` and
//! `X-Forwarded-*`; routes by host and path prefix; round-robin and least-connections balancing
//! with active health checks and passive ejection; retries of idempotent bodiless requests on
//! another backend; TCP forwarding with an optional PROXY protocol v2 header, or handed to
//! the kernel as NAT rules that follow the backends' health (`forward: kernel`); hot updates of
//! routes, pools and endpoints; an access log (tracing target `access`) and Prometheus metrics.
//!
//! What it is not: a cache, a WAF, or an authenticator. Authorization stays in the API server.
//!
//! # Layout
//! - `config`, `validate`: the declarative configuration ([`IngressConfig`]) and its checks,
//!   with line and column for YAML input.
//! - `runtime`: [`Ingress`], the running proxy and its handle for runtime changes.
//! - `listener`: the accept loop; an endpoint's handler can be swapped without closing its
//!   socket.
//! - `http`: the L7 path (`forward.rs` routes and forwards one request).
//! - `tcp`, `proxy_protocol`: the L4 path.
//! - `pool`, `health`: backends, balancing, ejection and active checks.
//! - `routes`: the compiled route table.
//! - `tls`: certificate selection by SNI and the development CA ([`DevCa`]).
//! - `metrics`, `admin`: counters and the `/metrics` listener.
//! - `io`: idle tracking and listener setup.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), trellis_ingress::IngressError> {
//! let config = trellis_ingress::IngressConfig::from_yaml(&std::fs::read_to_string("ingress.yml").unwrap())?;
//! let cancel = tokio_util::sync::CancellationToken::new();
//! let ingress = trellis_ingress::Ingress::start(config, cancel.clone()).await?;
//! // ... later, on SIGTERM:
//! cancel.cancel();
//! ingress.stopped().await;
//! # Ok(()) }
//! ```

mod admin;
mod config;
mod error;
mod health;
mod http;
mod io;
mod listener;
mod metrics;
mod pool;
pub mod proxy_protocol;
mod routes;
mod runtime;
mod tcp;
mod threads;
mod tls;
mod upstream_tls;
mod validate;

pub use config::{
    AdminConfig, Balance, CertificateConfig, DevCaConfig, EjectionConfig, EndpointConfig, EndpointProtocol,
    Forward, HealthCheckConfig, HealthCheckKind, IngressConfig, PoolConfig, RouteConfig, Timeouts, TlsConfig,
    UpstreamTlsConfig,
};
pub use error::IngressError;
pub use runtime::Ingress;
pub use tls::DevCa;
pub use trellis_nat::{NatConfig, NatForward, NatMapping, NatProtocol, Translated};
pub use validate::{ConfigError, Position};
