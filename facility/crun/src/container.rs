//! A container's life under crun: start, signal, delete, and its console log.

use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::{CRUN_STATE, Error, Running, host};

/// The most of the console log a message carries.
const LOG_TAIL_BYTES: u64 = 4000;

/// Whether crun holds state for container `id` (running or stopped).
pub fn known(id: &str) -> bool {
    Path::new(CRUN_STATE).join(id).exists()
}

/// Starts container `id` from `bundle` (which holds `config.json`), detached. Its output, and
/// crun's own errors, go to `<bundle>/console.log`; a failure to start quotes what they said.
pub async fn start(id: &str, bundle: &Path) -> Result<Running, Error> {
    let log_path = bundle.join("console.log");
    let pid_path = bundle.join("pid");
    let _ = std::fs::remove_file(&pid_path);
    let io_error = |what, source| Error::Io { what, id: id.to_owned(), source };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| io_error("opening the console log", e))?;
    let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    let stderr = log.try_clone().map_err(|e| io_error("opening the console log", e))?;
    let status = Command::new("crun")
        .arg("run")
        .arg("--detach")
        .arg("--bundle")
        .arg(bundle)
        .arg("--pid-file")
        .arg(&pid_path)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .status()
        .await
        .map_err(|e| io_error("running crun", e))?;
    if !status.success() {
        let said = read_from(&log_path, offset);
        return Err(Error::NotStarted(format!("crun could not start {id}: {}", said.trim())));
    }
    let pid: i32 =
        std::fs::read_to_string(&pid_path).ok().and_then(|t| t.trim().parse().ok()).ok_or_else(|| {
            Error::NotStarted(format!("crun started {id} but wrote no pid to {}", pid_path.display()))
        })?;
    Running::of(pid).ok_or_else(|| {
        Error::NotStarted(format!("container {id} exited at once; see {}", log_path.display()))
    })
}

/// Up to [`LOG_TAIL_BYTES`] of the file from `offset` on.
fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path)
        && f.seek(SeekFrom::Start(offset)).is_ok()
    {
        let mut bytes = Vec::new();
        let _ = f.take(LOG_TAIL_BYTES).read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

/// The last `lines` lines of the container's console log, for a failed container's message.
pub fn log_tail(bundle: &Path, lines: usize) -> String {
    let path = bundle.join("console.log");
    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let text = read_from(&path, len.saturating_sub(LOG_TAIL_BYTES));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends `signal` (e.g. `HUP`) to the container's init.
pub async fn signal(id: &str, signal: &str) -> Result<(), Error> {
    host::run("crun", &["kill", id, signal], None).await.map(drop)
}

/// Kills and deletes container `id` (and, through crun, its cgroups); nothing to do when
/// crun does not know it.
pub async fn remove(id: &str) -> Result<(), Error> {
    if !known(id) {
        return Ok(());
    }
    match host::run("crun", &["delete", "--force", id], None).await {
        Ok(_) => Ok(()),
        // Deleted meanwhile by someone else: what was asked for.
        Err(_) if !known(id) => Ok(()),
        Err(e) => Err(e),
    }
}

/// crun 1.8 cannot run containers on a hybrid cgroup layout with controllers on v2; says so
/// (and how to fix it) before anything is built.
pub fn check_host() -> Result<(), Error> {
    let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let on_v2 = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    hybrid_cgroup_problem(pure_v2, &on_v2).map_or(Ok(()), |m| Err(Error::UnsupportedHost(m)))
}

/// The complaint about a cgroup layout crun refuses, if it is one.
fn hybrid_cgroup_problem(pure_v2: bool, controllers_on_v2: &str) -> Option<String> {
    let controllers = controllers_on_v2.trim();
    if pure_v2 || controllers.is_empty() {
        return None;
    }
    Some(format!(
        "crun refuses this host's hybrid cgroup layout while controllers ({controllers}) are enabled on cgroup v2 \
         (/sys/fs/cgroup/unified); move them to v1 first, e.g. `mkdir -p /sys/fs/cgroup/hugetlb && \
         mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb` (scripts/setup.sh does this)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_hybrid_layout_with_controllers_on_v2_is_refused() {
        assert_eq!(hybrid_cgroup_problem(true, ""), None);
        assert_eq!(hybrid_cgroup_problem(false, "\n"), None);
        let complaint = hybrid_cgroup_problem(false, "hugetlb\n").expect("refused");
        assert!(complaint.contains("(hugetlb)") && complaint.contains("scripts/setup.sh"), "{complaint}");
    }

    #[test]
    fn the_log_tail_is_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = (1..=2000).map(|n| format!("line {n}")).collect();
        std::fs::write(dir.path().join("console.log"), lines.join("\n")).unwrap();
        assert_eq!(log_tail(dir.path(), 2), "line 1999\nline 2000");
        assert_eq!(log_tail(&dir.path().join("missing"), 3), "");
    }

    #[tokio::test]
    async fn removing_an_unknown_container_is_done_at_once() {
        remove("trellis-crun-test-no-such-container").await.unwrap();
    }
}
