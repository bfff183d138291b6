//! The crate's error type: what can stop the proxy itself. Per-request failures are answers
//! (401, 403, 404, 502, ...), never errors.

/// Why the proxy could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum XdcProxyError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("listener failed: {0}")]
    Listener(#[source] std::io::Error),
}
