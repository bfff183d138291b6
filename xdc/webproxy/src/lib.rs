//! The XDC web proxy: users reach the Jupyter server inside an experiment development
//! container (XDC) through it, signed in with their portal account and allowed in by project
//! membership. Jupyter only ever sees its own token, which the proxy adds (and masks in the
//! pages Jupyter renders); Jupyter never sees the portal's token.
//!
//! URL forms (`domain = xdc.example.net`):
//! - `https://xdc.example.net/<project>/<xdc>/...`: canonical, forwarded unchanged (Jupyter
//!   runs with `base_url=/<project>/<xdc>/`);
//! - `/<project>/<experiment>/<xdc>/...` (seed form): 302 to the canonical path;
//! - `https://<xdc>-<project>.xdc.example.net/jupyter/...` (Merge v1 host form): 302 to the
//!   canonical path on the same host, which serves that XDC's canonical paths.
//!
//! Authentication: `Authorization: Bearer <portal token>`, or the session cookie set by the
//! proxy's login form at `/_trellis/login` (browsers without a session are sent there; other
//! clients get 401). The cookie is `HttpOnly; SameSite=Lax`, and a cookie-authenticated
//! request that changes state or opens a WebSocket must come from the same origin, since
//! Jupyter skips its own XSRF and origin checks for token-authenticated requests.
//!
//! # Layout
//! - `policy`: [`XdcWebPolicy`], what the proxy asks the portal ([`Backend`], [`Denial`]).
//! - `config`: [`XdcProxyConfig`] and [`Timeouts`].
//! - `route`: host and path to an XDC or a redirect, before anyone is asked.
//! - `auth`: credentials in, session cookie out, origin and `next` checks.
//! - `proxy`: one request from routing to denial or forwarding; the login form's handler.
//! - `forward`, `headers`: the request to Jupyter and its answer, WebSocket splicing.
//! - `redact`: Jupyter's token masked in the pages it renders.
//! - `respond`: response bodies and the proxy's own answers and login page.
//! - `server`: [`XdcProxy::serve`], the accept loop and connections.
//! - `upstream`: connections to Jupyter, owned and driven by the client connection's task.
//!
//! # Example
//! ```no_run
//! # async fn run(policy: std::sync::Arc<dyn trellis_xdc_proxy::XdcWebPolicy>) -> Result<(), Box<dyn std::error::Error>> {
//! let config = trellis_xdc_proxy::XdcProxyConfig::new("xdc.example.net");
//! let proxy = trellis_xdc_proxy::XdcProxy::new(config, policy)?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! proxy.serve(listener, shutdown).await?;
//! # Ok(()) }
//! ```

mod auth;
mod config;
mod error;
mod forward;
mod headers;
mod policy;
mod proxy;
mod redact;
mod respond;
mod route;
mod server;
mod upstream;

pub use config::{Timeouts, XdcProxyConfig};
pub use error::XdcProxyError;
pub use policy::{Backend, Denial, XdcWebPolicy};
pub use proxy::XdcProxy;

/// A proxy for `config` asking `policy`; serve it with [`XdcProxy::serve`].
pub fn service(
    config: XdcProxyConfig,
    policy: std::sync::Arc<dyn XdcWebPolicy>,
) -> Result<XdcProxy, XdcProxyError> {
    XdcProxy::new(config, policy)
}
