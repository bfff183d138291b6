//! Errors of the ingress runtime.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::validate::ConfigError;

/// Why the ingress could not start or apply a change.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// The configuration (or a runtime change) is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An endpoint's address could not be bound.
    #[error("endpoint {endpoint:?} could not listen on {addr}")]
    Bind {
        endpoint: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key file could not be read.
    #[error("could not read {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The serving threads could not be started.
    #[error("could not start the serving threads")]
    Threads(#[source] std::io::Error),
    /// Certificates or keys were unusable.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A runtime change named something that does not exist.
    #[error("{kind} {name:?} does not exist")]
    NotFound { kind: &'static str, name: String },
    /// A runtime change would leave a dangling reference.
    #[error("{0}")]
    InUse(String),
}

impl From<IngressError> for trellis_types::Error {
    fn from(err: IngressError) -> Self {
        match err {
            IngressError::Config(config) => config.into(),
            IngressError::NotFound { kind, name } => trellis_types::Error::not_found(kind, name),
            IngressError::InUse(message) => trellis_types::Error::FailedPrecondition(message),
            other => trellis_types::Error::Internal(error_chain(&other)),
        }
    }
}

/// The error and its causes on one line, for logs.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
