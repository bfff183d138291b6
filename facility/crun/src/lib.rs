//! Containers run by `crun`, the way Trellis runs them: an experiment node on the facility
//! agent and an XDC on the local XDC runtime are both a small root skeleton with the host's
//! (or an image's) `/usr` bound read-only, a named network namespace made beforehand, and an
//! init script; they differ only in capabilities, mounts and the files written into the root.
//!
//! - [`host`]: running the host tools (`ip`, `tc`, `crun`, `ssh-keygen`) with their error
//!   output kept for the message.
//! - [`Bundle`]: the OCI runtime spec.
//! - [`skeleton`]: the root's directories, merged-`/usr` links and base `/etc`.
//! - [`start`], [`signal`], [`remove`], [`known`]: the container's life, and [`Running`] to tell
//!   whether its init still runs.

pub mod host;
pub mod skeleton;

mod container;
mod process;
mod spec;

pub use container::{check_host, known, log_tail, remove, signal, start};
pub use process::Running;
pub use spec::{Bind, Bundle};

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Where crun keeps container state (its default for root).
pub const CRUN_STATE: &str = "/run/crun";

/// What went wrong running a container or a host tool.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{command} failed ({status}): {stderr}")]
    Failed { command: String, status: String, stderr: String },
    #[error("{what} for container {id}: {source}")]
    Io { what: &'static str, id: String, source: std::io::Error },
    /// crun ran but the container is not running; the message carries crun's or the init's
    /// last words.
    #[error("{0}")]
    NotStarted(String),
    /// This host's cgroup layout is one crun refuses; the message says how to fix it.
    #[error("{0}")]
    UnsupportedHost(String),
}
