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
    /// The portal found errors in a compiled model (already printed).
    #[error("the model has {count} error(s)")]
    ModelErrors {
        /// How many.
        count: usize,
    },
    /// A facility model file is not a binary XIR `Facility`.
    #[error("{} is not an XIR Facility in binary protobuf encoding", path.display())]
    BadFacilityModel {
        /// The file.
        path: PathBuf,
        /// Why decoding failed.
        #[source]
        source: prost::DecodeError,
    },
    /// A facility model file holds JSON, which this client does not convert.
    #[error(
        "{} looks like JSON; give the XIR Facility in binary protobuf encoding (model.pb)",
        path.display()
    )]
    JsonFacilityModel {
        /// The file.
        path: PathBuf,
    },
    /// The portal refused or failed a realize request; its message carries the diagnostics.
    /// The realization is named unless the portal's message already names it.
    #[error("{}{}", realize_context(realization, status), crate::client::describe_status(status))]
    RealizeFailed {
        /// `<realization>.<experiment>.<project>`.
        realization: String,
        /// The portal's answer.
        status: Box<tonic::Status>,
    },
    /// The portal answered a realize request without an error status but with a failure
    /// code (Merge's way); its diagnostics are in `details`.
    #[error("{realization} was not realized ({code}){details}")]
    NotRealized {
        /// `<realization>.<experiment>.<project>`.
        realization: String,
        /// The response code's name (`Unrealizable`, `BadXir`, ...).
        code: String,
        /// The diagnostics, one per line, each line starting with a newline.
        details: String,
    },
    /// A materialization reached the Error state; `details` lists the failing tasks.
    #[error("{mzid} failed to materialize{details}")]
    MaterializationFailed {
        /// `<realization>.<experiment>.<project>`.
        mzid: String,
        /// `name: message` of each failing task, each line starting with a newline.
        details: String,
    },
    /// `--sync` gave up waiting.
    #[error("gave up after {seconds} s waiting for {what}{last}")]
    Timeout {
        /// What was awaited (`r.e.p to materialize`).
        what: String,
        /// The `--timeout` given.
        seconds: u64,
        /// The last progress seen (`: 3/5 nodes ready`), or empty.
        last: String,
    },
    /// `HOME` is not set and no SSH directory was given.
    #[error("cannot find the SSH directory: set HOME, or pass --ssh-dir (TRELLIS_SSH_DIR)")]
    NoSshDir,
    /// `trellis xdc ssh|scp` found no key, certificate or client configuration.
    #[error("{} is missing; run `trellis login` (without --no-ssh) to install your SSH key", path.display())]
    NoSshKey {
        /// The missing file.
        path: PathBuf,
    },
    /// The ssh configuration holds a Trellis begin marker without its end, or the reverse.
    #[error(
        "{} has an unbalanced `# BEGIN trellis` / `# END trellis` pair; fix or remove the markers by hand",
        path.display()
    )]
    ManagedBlock {
        /// The configuration file.
        path: PathBuf,
    },
    /// The portal answered without a key or certificate.
    #[error("the portal returned an empty SSH key or certificate")]
    EmptyCredentials,
    /// Login succeeded but the SSH credentials could not be installed.
    #[error("logged in, but the SSH key and certificate were not installed (--no-ssh skips them)")]
    SshInstall(#[source] Box<CliError>),
    /// The portal names no jump host and none was given.
    #[error("the portal names no SSH jump host; give one with --jump host:port")]
    NoJumpHost,
    /// `ssh` or `scp` could not be started.
    #[error("cannot run {program}")]
    Exec {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A response could not be turned into JSON.
    #[error("cannot print JSON")]
    Json(#[source] serde_json::Error),
    /// Standard output could not be written.
    #[error("cannot write to standard output")]
    Stdout(#[source] std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

fn realize_context(realization: &str, status: &tonic::Status) -> String {
    if status.message().contains(realization) {
        String::new()
    } else {
        format!("cannot realize {realization}: ")
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError::Rpc(Box::new(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realize_errors_name_the_realization_once() {
        let named = tonic::Status::failed_precondition("r.e.p cannot be realized: node a: no host");
        let err = CliError::RealizeFailed { realization: "r.e.p".into(), status: Box::new(named) };
        assert_eq!(err.to_string(), "r.e.p cannot be realized: node a: no host (FailedPrecondition)");
        let unnamed = tonic::Status::not_found("revision v9 of e.p not found");
        let err = CliError::RealizeFailed { realization: "r.e.p".into(), status: Box::new(unnamed) };
        assert_eq!(err.to_string(), "cannot realize r.e.p: revision v9 of e.p not found (NotFound)");
    }
}
