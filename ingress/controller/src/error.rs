//! Errors of the ingress controller.

use std::path::PathBuf;

use trellis_ingress::{ConfigError, IngressError};
use trellis_nat::NatError;

/// Why the controller could not start, or a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Neither a configuration file nor a default configuration was given.
    #[error("no ingress configuration: give a file or a default")]
    NoConfig,
    /// The configuration file could not be read.
    #[error("could not read {}", path.display())]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid; the source says where (line and column) and why.
    #[error("{} is not a valid ingress configuration", path.as_deref().map_or("the default".into(), |p| p.display().to_string()))]
    InvalidConfig {
        path: Option<PathBuf>,
        #[source]
        source: ConfigError,
    },
    /// The proxy refused the configuration (an endpoint could not bind, for example).
    #[error("the ingress could not serve the configuration")]
    Ingress(#[source] IngressError),
    /// The NAT could not be applied or removed.
    #[error("the ingress NAT could not be changed")]
    Nat(#[source] NatError),
    /// The controller has shut down.
    #[error("the ingress controller has stopped")]
    Stopped,
}
