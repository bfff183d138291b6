//! This host's side of the CephFS backend: running commands with a time limit, and mounting,
//! probing and unmounting `ceph-fuse` mounts.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::{VolumeError, VolumeOwner, mountinfo};

/// The mount type `ceph-fuse` mounts show in mountinfo.
pub(crate) const FUSE_TYPE: &str = "fuse.ceph-fuse";

/// What is at a mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MountState {
    Absent,
    Alive,
    /// Mounted, but its `ceph-fuse` died (ENOTCONN/ECONNABORTED) or does not answer.
    Dead,
}

/// `<mount_root>/<group>/.<name>.ceph-fuse.<ext>`: the `log` of the last mount's messages (kept
/// for the operator) and the `pid` file of its ceph-fuse. The leading dot keeps them apart from
/// mount points (valid names start with a letter).
pub(crate) fn side_file(mount_point: &Path, ext: &str) -> PathBuf {
    let name = mount_point.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    mount_point.with_file_name(format!(".{name}.ceph-fuse.{ext}"))
}

pub(crate) async fn read_mounts() -> Result<Vec<mountinfo::Mount>, VolumeError> {
    mountinfo::read().await.map_err(|e| VolumeError::Failed(format!("cannot read /proc/self/mountinfo: {e}")))
}

pub(crate) async fn mount_state(mount_point: &Path, timeout: Duration) -> Result<MountState, VolumeError> {
    if mountinfo::count_at(&read_mounts().await?, mount_point, FUSE_TYPE) == 0 {
        return Ok(MountState::Absent);
    }
    // Opening the directory always reaches the FUSE daemon, where `stat` may be answered from
    // the kernel's attribute cache; a hung daemon must not hang the caller.
    let path = mount_point.to_owned();
    let probe =
        tokio::task::spawn_blocking(move || std::fs::read_dir(path).map(|mut entries| entries.next()));
    Ok(match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(Ok(None | Some(Ok(_))))) => MountState::Alive,
        _ => MountState::Dead,
    })
}

/// Mounts CephFS `path` at `mount_point` with `ceph-fuse`, which daemonizes once mounted.
pub(crate) async fn ceph_fuse_mount(
    ceph_fuse: &Path,
    conf: &Path,
    client_id: &str,
    path: &str,
    mount_point: &Path,
    timeout: Duration,
) -> Result<(), VolumeError> {
    tokio::fs::create_dir_all(mount_point)
        .await
        .map_err(|e| VolumeError::Failed(format!("cannot create {}: {e}", mount_point.display())))?;
    // The daemon keeps the parent's stdio; a file instead of a pipe lets us read the parent's
    // messages without waiting for the daemon to exit.
    let log = side_file(mount_point, "log");
    let stderr = std::fs::File::create(&log)
        .map_err(|e| VolumeError::Failed(format!("cannot create {}: {e}", log.display())))?;
    let mut command = Command::new(ceph_fuse);
    command
        .arg("-c")
        .arg(conf)
        .args(["--id", client_id, "--client_mount_timeout", &timeout.as_secs().max(1).to_string()])
        // One pid file per mount: with the conf's (often `$cluster-$name.pid`) every ceph-fuse
        // after the first fails to lock it and exits, after it has opened an MDS session whose
        // caps then block others until the MDS times the session out.
        .arg(format!("--pid_file={}", side_file(mount_point, "pid").display()))
        .arg(format!("--client_mountpoint={path}"))
        .arg(mount_point)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true);
    let what = format!("{} {path} on {}", ceph_fuse.display(), mount_point.display());
    let status = run_with_timeout(&mut command, &what, timeout).await?.status;
    let mounted = mountinfo::count_at(&read_mounts().await?, mount_point, FUSE_TYPE) > 0;
    if status.success() && mounted {
        return Ok(());
    }
    let messages = std::fs::read_to_string(&log).unwrap_or_default();
    let messages = match last_lines(&messages, 5) {
        m if m.is_empty() => "no messages; see the client log (log_file in the ceph.conf)".to_owned(),
        m => m,
    };
    Err(VolumeError::Failed(format!("{what} failed ({status}, mounted: {mounted}): {messages}")))
}

/// Unmounts every mount stacked at `mount_point`; returns how many there were.
pub(crate) async fn unmount_all_at(mount_point: &Path, timeout: Duration) -> Result<usize, VolumeError> {
    let stacked = mountinfo::count_at(&read_mounts().await?, mount_point, FUSE_TYPE);
    for _ in 0..stacked {
        unmount(mount_point, timeout).await?;
    }
    Ok(stacked)
}

/// `umount`, then waits for the mount's ceph-fuse to exit (it flushes and closes its MDS
/// session on the way out, and a new ceph-fuse for the same mount point needs its pid file).
/// A busy or dead mount is detached lazily (`umount -l`) instead and goes away with its last
/// user.
pub(crate) async fn unmount(mount_point: &Path, timeout: Duration) -> Result<(), VolumeError> {
    let pid = ceph_fuse_pid(mount_point);
    let what = format!("umount {}", mount_point.display());
    let out = run_with_timeout(Command::new("umount").arg(mount_point).stdin(Stdio::null()), &what, timeout)
        .await?;
    if out.status.success() {
        if let Some(pid) = pid {
            wait_for_exit(pid, mount_point, timeout).await;
        }
        return Ok(());
    }
    let first = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    tracing::warn!(mount_point = %mount_point.display(), error = %first, "umount failed; detaching lazily");
    let mut lazy = Command::new("umount");
    lazy.arg("-l").arg(mount_point).stdin(Stdio::null());
    let lazy = run_with_timeout(&mut lazy, &what, timeout).await?;
    if lazy.status.success() {
        return Ok(());
    }
    Err(VolumeError::Failed(format!(
        "cannot unmount {}: {first}; umount -l: {}",
        mount_point.display(),
        String::from_utf8_lossy(&lazy.stderr).trim()
    )))
}

/// The PID of the live ceph-fuse serving `mount_point`, from its pid file.
pub(crate) fn ceph_fuse_pid(mount_point: &Path) -> Option<u32> {
    let pid = std::fs::read_to_string(side_file(mount_point, "pid")).ok()?.trim().parse().ok()?;
    ceph_fuse_alive(pid, mount_point).then_some(pid)
}

/// Whether `pid` is a ceph-fuse whose command line names `mount_point` (so a recycled PID is
/// never taken for it).
pub(crate) fn ceph_fuse_alive(pid: u32, mount_point: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let wanted = mount_point.as_os_str().as_encoded_bytes();
    let mut args = cmdline.split(|b| *b == 0);
    let is_fuse = args.next().is_some_and(|arg0| arg0.ends_with(b"ceph-fuse"));
    is_fuse && args.any(|arg| arg == wanted)
}

async fn wait_for_exit(pid: u32, mount_point: &Path, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while ceph_fuse_alive(pid, mount_point) {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(pid, mount_point = %mount_point.display(), "ceph-fuse still running after umount");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// This host's name as Ceph clients report it in their session metadata.
pub(crate) fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned())
}

pub(crate) async fn run_with_timeout(
    command: &mut Command,
    what: &str,
    timeout: Duration,
) -> Result<std::process::Output, VolumeError> {
    // A little longer than the tools' own timeouts, so their message wins when they honour them.
    let limit = timeout + Duration::from_secs(5);
    match tokio::time::timeout(limit, command.output()).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(VolumeError::Unavailable(format!("cannot run `{what}`: {e}"))),
        Err(_) => {
            Err(VolumeError::Unavailable(format!("`{what}` did not finish within {} s", limit.as_secs())))
        }
    }
}

/// Sets owner and mode of a mounted volume's top directory where they differ.
pub(crate) async fn set_owner(mount_point: &Path, owner: VolumeOwner) -> Result<(), VolumeError> {
    let path = mount_point.to_owned();
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let meta = std::fs::metadata(&path)?;
        if meta.uid() != owner.uid || meta.gid() != owner.gid {
            std::os::unix::fs::chown(&path, Some(owner.uid), Some(owner.gid))?;
        }
        // After chown, which may clear set-ID bits.
        let meta = std::fs::metadata(&path)?;
        if meta.mode() & 0o7777 != owner.mode & 0o7777 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(owner.mode & 0o7777))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| VolumeError::Failed(format!("volume task failed: {e}")))?;
    result.map_err(|e| {
        VolumeError::Failed(format!("cannot set owner and mode of {}: {e}", mount_point.display()))
    })
}

/// Removes a file, or a directory with its contents; never follows a symlink; absent is fine.
pub(crate) async fn remove_local(path: &Path) -> Result<(), VolumeError> {
    let result = match tokio::fs::symlink_metadata(path).await {
        Ok(meta) if meta.is_dir() => tokio::fs::remove_dir_all(path).await,
        Ok(_) => tokio::fs::remove_file(path).await,
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(VolumeError::Failed(format!("cannot remove {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_files_sit_beside_the_mount_point() {
        assert_eq!(
            side_file(Path::new("/m/homes/alice"), "log"),
            PathBuf::from("/m/homes/.alice.ceph-fuse.log")
        );
        assert_eq!(
            side_file(Path::new("/m/projects/p1"), "pid"),
            PathBuf::from("/m/projects/.p1.ceph-fuse.pid")
        );
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
        assert_eq!(last_lines("", 2), "");
    }

    #[test]
    fn this_process_is_not_a_ceph_fuse() {
        assert!(!ceph_fuse_alive(std::process::id(), Path::new("/")));
        assert!(hostname().is_some_and(|h| !h.is_empty()));
    }
}
