//! Removing everything of a materialization by name, whether or not the agent remembers it:
//! containers, leftover processes, cgroups, namespaces and host interfaces.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rustix::process::{Pid, Signal, kill_process};
use trellis_types::Error;

use crate::container::{self, CRUN_STATE};
use crate::naming::Names;
use crate::netns::NETNS_DIR;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn names_in(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Every cgroup directory named with `prefix`, in every hierarchy: each v1 controller and
/// the unified one in a hybrid layout, or the root itself on pure cgroup v2.
pub(crate) fn cgroup_dirs(prefix: &str) -> Vec<PathBuf> {
    let root = Path::new(CGROUP_ROOT);
    let mut hierarchies: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    if root.join("cgroup.procs").exists() {
        hierarchies.push(root.to_path_buf());
    }
    let mut dirs: Vec<PathBuf> =
        hierarchies.iter().flat_map(|h| names_in(h, prefix).into_iter().map(move |n| h.join(n))).collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Pids in a cgroup directory.
pub(crate) fn cgroup_pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Removes everything whose name carries this materialization's prefix.
pub(crate) async fn sweep(names: &Names) -> Result<(), Error> {
    let prefix = names.netns_prefix();
    let ids = names_in(Path::new(CRUN_STATE), &prefix);
    let results: Vec<Result<(), Error>> =
        futures::stream::iter(ids.into_iter().map(|id| async move { container::remove(&id).await }))
            .buffer_unordered(8)
            .collect()
            .await;
    let mut errors: Vec<String> =
        results.into_iter().filter_map(|r| r.err().map(|e| e.to_string())).collect();

    // Processes crun no longer knows about (its state lost) would keep cgroups busy.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dirs = cgroup_dirs(&prefix);
        if dirs.is_empty() {
            break;
        }
        for dir in &dirs {
            for pid in cgroup_pids(dir) {
                if let Some(pid) = Pid::from_raw(pid) {
                    let _ = kill_process(pid, Signal::KILL);
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
        if Instant::now() > deadline {
            errors.push(format!("cgroups still busy: {dirs:?}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Host interfaces first: deleting one end of a veth is synchronous, while a deleted
    // namespace's devices go away later, in the kernel's cleanup work.
    let mut script = String::new();
    for link in names_in(Path::new("/sys/class/net"), &names.host_link_prefix()) {
        script.push_str(&format!("link del dev {link}\n"));
    }
    for ns in names_in(Path::new(NETNS_DIR), &prefix) {
        script.push_str(&format!("netns del {ns}\n"));
    }
    if !script.is_empty()
        && let Err(e) = crate::cmd::run("ip", &["-force", "-batch", "-"], Some(&script)).await
    {
        // Some lines may have raced with the kernel; what matters is what is left.
        let left: Vec<String> = names_in(Path::new(NETNS_DIR), &prefix)
            .into_iter()
            .chain(names_in(Path::new("/sys/class/net"), &names.host_link_prefix()))
            .collect();
        if !left.is_empty() {
            errors.push(format!("{e}; still present: {left:?}"));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::Internal(errors.join("; "))) }
}
