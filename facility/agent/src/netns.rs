//! Doing things inside a network namespace from the agent's process.
//!
//! `setns` moves only the calling thread, so each use runs on a fresh OS thread that never
//! goes back to a pool (a tokio blocking thread left in a node's namespace would poison
//! whatever runs on it next).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

pub(crate) use trellis_crun::NETNS_DIR;

/// Moves the current thread into the named network namespace.
pub(crate) fn enter(netns: &str) -> io::Result<()> {
    let file = File::open(Path::new(NETNS_DIR).join(netns))?;
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network)).map_err(io::Error::from)
}

/// Writes the same sysctls in every namespace of `namespaces`. `/proc/sys/net` shows the
/// namespace of the thread that opens it, so one short-lived thread visits them in turn.
pub(crate) async fn write_sysctls(
    namespaces: Vec<String>,
    settings: &'static [(&'static str, &'static str)],
) -> io::Result<()> {
    if namespaces.is_empty() {
        return Ok(());
    }
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("trellis-sysctl".into()).spawn(move || {
        let outcome = namespaces.iter().try_for_each(|ns| {
            enter(ns).map_err(|e| io::Error::new(e.kind(), format!("entering {ns}: {e}")))?;
            settings.iter().try_for_each(|(key, value)| {
                std::fs::write(Path::new("/proc/sys").join(key.replace('.', "/")), value)
                    .map_err(|e| io::Error::new(e.kind(), format!("{key} in {ns}: {e}")))
            })
        });
        let _ = done.send(outcome);
    })?;
    result.await.unwrap_or_else(|_| Err(io::Error::other("the sysctl thread died")))
}
