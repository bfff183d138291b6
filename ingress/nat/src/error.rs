//! Errors of the NAT controller.

use std::path::PathBuf;

/// Why rendering or applying the NAT failed.
#[derive(Debug, thiserror::Error)]
pub enum NatError {
    /// The configuration is inconsistent; the message names the offending mapping.
    #[error("invalid NAT configuration: {0}")]
    Invalid(String),
    /// `nft` (or `ip`) could not be started.
    #[error("could not run {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// `nft` ran and refused the script or the command.
    #[error("{command} failed: {stderr}")]
    Nft { command: String, stderr: String },
    /// `nft -j` printed something that is not the JSON we expect.
    #[error("could not read the output of `nft -j list table`")]
    Listing(#[source] serde_json::Error),
    /// A sysctl the NAT depends on could not be written.
    #[error("could not set {}", path.display())]
    Sysctl {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<NatError> for trellis_types::Error {
    fn from(err: NatError) -> Self {
        match err {
            NatError::Invalid(message) => trellis_types::Error::invalid("nat", message),
            other => trellis_types::Error::Internal(error_chain(&other)),
        }
    }
}

/// The error and its sources on one line, for logs and internal errors.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
