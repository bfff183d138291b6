//! What the proxy asks the portal: who a token belongs to, and where a user's XDC listens.

use std::net::SocketAddr;

/// Where an XDC's Jupyter server listens, and how the proxy authenticates to it.
#[derive(Clone, PartialEq, Eq)]
pub struct Backend {
    pub addr: SocketAddr,
    /// Jupyter's own token, sent as `Authorization: token ...`; users never see it.
    pub jupyter_token: String,
    /// The `base_url` Jupyter was started with, e.g. `/proj/x0/`. When it differs from the
    /// public prefix `/<project>/<xdc>/`, the prefix is rewritten on the way in (Jupyter's own
    /// pages then link to its base path, so the two should match for the browser UI).
    pub base_path: String,
}

impl std::fmt::Debug for Backend {
    // The token stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("addr", &self.addr)
            .field("jupyter_token", &"<redacted>")
            .field("base_path", &self.base_path)
            .finish()
    }
}

/// Why a user cannot reach an XDC. The text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No such project or XDC (404).
    NotFound(String),
    /// The XDC exists but the user may not use it, e.g. not a member of the project (403).
    Forbidden(String),
}

/// The portal, as the proxy sees it. Implementations should be cheap per call (cache what the
/// portal says): `authenticate` and `resolve` run on every proxied request.
#[async_trait::async_trait]
pub trait XdcWebPolicy: Send + Sync + 'static {
    /// The username a portal bearer token (from `Authorization: Bearer`, or the session
    /// cookie) belongs to; `None` if invalid, expired or revoked.
    async fn authenticate(&self, token: &str) -> Option<String>;
    /// Exchanges a username and password for a portal token (the login form).
    async fn login(&self, username: &str, password: &str) -> Result<String, String>;
    /// Where XDC `xdc` of `project` listens for `user`, or why not (a non-member gets
    /// `Forbidden`, an unknown project or XDC `NotFound`).
    async fn resolve(&self, user: &str, project: &str, xdc: &str) -> Result<Backend, Denial>;
}
