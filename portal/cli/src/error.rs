//! Everything that can make a command fail.
//!
//! `main` prints an error as `error: <Display>` followed by its `source()` chain, so `Display`
//! never repeats the source.
//! Portal errors keep the gRPC status; [`crate::client::describe_status`] renders it.

use std::path::PathBuf;

/// A failed `trellis` command (exit status 1; usage errors exit 2 before any of these).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Neither `XDG_CONFIG_HOME` nor `HOME` is set, and no `--config` was given.
    #[error("cannot find a configuration directory: set HOME or XDG_CONFIG_HOME, or pass --config")]
    NoConfigDir,
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid YAML of the expected shape.
    #[error("bad configuration file {}: {message}", path.display())]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// The parser's explanation.
        message: String,
    },
    /// The server address is not usable.
    #[error("bad server address {server:?}: {reason}")]
    BadServer {
        /// What was given.
        server: String,
        /// Why it is unusable.
        reason: String,
    },
    /// The certificate authority file for `https://` servers is unusable.
    #[error("bad TLS settings for {server}")]
    Tls {
        /// The server.
        server: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The portal could not be reached.
    #[error("cannot connect to {server}")]
    Connect {
        /// The server.
        server: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The stored token cannot be sent as a header (the configuration file was edited by hand).
    #[error("the stored access token is malformed; log in again")]
    BadToken,
    /// The command needs a login and there is none.
    #[error("not logged in; run `trellis login <username>` first")]
    NotLoggedIn,
    /// No password could be read.
    #[error("cannot read the password")]
    Password(#[source] std::io::Error),
    /// An empty password was given.
    #[error("the password is empty")]
    EmptyPassword,
    /// The two passwords typed at registration differ.
    #[error("the passwords do not match")]
    PasswordMismatch,
    /// A public key file holds no key.
    #[error("{} holds no public key", path.display())]
    EmptyKey {
        /// The file.
        path: PathBuf,
    },
    /// The portal answered with an error.
    #[error("{}", crate::client::describe_status(.0))]
    Rpc(Box<tonic::Status>),
    /// A response could not be turned into JSON.
    /// The portal found errors in a compiled model (already printed).
    #[error("the model has {count} error(s)")]
    ModelErrors {
        /// How many.
        count: usize,
    },
    #[error("cannot print JSON")]
    Json(#[source] serde_json::Error),
    /// Standard output could not be written.
    #[error("cannot write to standard output")]
    Stdout(#[source] std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError::Rpc(Box::new(status))
    }
}
