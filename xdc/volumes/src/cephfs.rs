//! Volumes as CephFS subvolumes: homes in the subvolume group `homes`, projects in `projects`,
//! of one filesystem (default `cephfs`). Subvolumes are managed through the Ceph mgr volumes
//! module with the `ceph` CLI (`ceph fs subvolume create|info|getpath|resize|rm`), which
//! applies the quota as `ceph.quota.max_bytes` on the subvolume directory.
//!
//! Each subvolume is mounted on this host at `<mount_root>/<group>/<name>` with `ceph-fuse`
//! (this host's kernel has no CephFS client; `ceph-fuse` mounts with `allow_other`, so the
//! local XDC runtime can bind-mount the directory into containers). CephFS quotas are enforced
//! by the client: `ceph-fuse` does so (`client_quota` defaults to true), and writes past the
//! quota fail with `EDQUOT`.
//!
//! Every call is idempotent. [`CephFsVolumes::ensure`] creates what is missing, corrects the
//! quota (`resize`), owner and mode of what exists, and remounts a mount whose `ceph-fuse` died
//! (found through `/proc/self/mountinfo`, so it also works after this process restarted).
//! Calls for one volume are serialized; calls for different volumes run concurrently.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;

use crate::host::{self, FUSE_TYPE, MountState, last_lines, run_with_timeout, side_file};
use crate::{Kind, VolumeError, VolumeOwner, VolumeRef, Volumes, kind_and_name, mountinfo};

/// The subvolume group of user homes.
pub const HOMES_GROUP: &str = "homes";
/// The subvolume group of project directories.
pub const PROJECTS_GROUP: &str = "projects";

/// Where the cluster is and how to reach it.
#[derive(Debug, Clone)]
pub struct CephFsConfig {
    /// `ceph.conf`; its `keyring` setting must lead to the client's key.
    pub conf: PathBuf,
    /// Ceph client name without `client.`. It needs mgr and mon rights for `fs subvolume`
    /// commands and mds rights for the mounts (`admin` has both).
    pub client_id: String,
    /// The CephFS filesystem (mgr "volume") holding the subvolume groups.
    pub fs_name: String,
    /// Mount points are `<mount_root>/<group>/<name>`. Absolute and without symlinks: mounts
    /// are found by comparing with the kernel's mount table.
    pub mount_root: PathBuf,
    /// The `ceph` CLI.
    pub ceph_bin: PathBuf,
    /// The `ceph-fuse` client.
    pub ceph_fuse_bin: PathBuf,
    /// How long one `ceph` command or mount may take before the backend counts as unavailable.
    pub command_timeout: Duration,
}

impl CephFsConfig {
    /// Client `admin`, filesystem `cephfs`, the binaries from `PATH`, 60 s per command.
    pub fn new(conf: impl Into<PathBuf>, mount_root: impl Into<PathBuf>) -> Self {
        CephFsConfig {
            conf: conf.into(),
            client_id: "admin".to_owned(),
            fs_name: "cephfs".to_owned(),
            mount_root: mount_root.into(),
            ceph_bin: PathBuf::from("ceph"),
            ceph_fuse_bin: PathBuf::from("ceph-fuse"),
            command_timeout: Duration::from_secs(60),
        }
    }
}

/// What the volumes module reports about one subvolume (`ceph fs subvolume info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubvolumeInfo {
    /// Path inside the filesystem, `/volumes/<group>/<name>/<uuid>`.
    pub path: String,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits including set-ID and sticky bits (`mode & 0o7777`).
    pub mode: u32,
    /// 0 = no quota.
    pub quota_bytes: u64,
    pub used_bytes: u64,
}

/// CephFS subvolumes, mounted on this host. See the module documentation.
#[derive(Debug)]
pub struct CephFsVolumes {
    config: CephFsConfig,
    /// Groups known to exist; `subvolumegroup create` is idempotent but costs a mgr round trip.
    groups_ready: Mutex<HashSet<&'static str>>,
    /// One lock per volume, so two `ensure`s of one volume never mount it twice.
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

/// How a `ceph` command failed.
enum CliError {
    /// ENOENT: the subvolume, group or filesystem does not exist.
    NotFound(String),
    /// ETIMEDOUT: the mgr (or the monitors) did not get an answer in time; worth a retry.
    TimedOut(String),
    Volume(VolumeError),
}

const ETIMEDOUT: i32 = 110;

impl From<CliError> for VolumeError {
    fn from(e: CliError) -> Self {
        match e {
            CliError::NotFound(message) => VolumeError::Failed(message),
            CliError::TimedOut(message) => VolumeError::Unavailable(message),
            CliError::Volume(e) => e,
        }
    }
}

impl CephFsVolumes {
    pub fn new(config: CephFsConfig) -> Self {
        CephFsVolumes { config, groups_ready: Mutex::new(HashSet::new()), locks: Mutex::new(HashMap::new()) }
    }

    pub fn config(&self) -> &CephFsConfig {
        &self.config
    }

    /// Where `volume` is (or will be) mounted on this host.
    pub fn mount_point(&self, volume: &VolumeRef) -> Result<PathBuf, VolumeError> {
        let (kind, name) = kind_and_name(volume)?;
        Ok(self.config.mount_root.join(group(kind)).join(name))
    }

    /// Checks that the cluster answers, the filesystem exists and `ceph-fuse` can be run;
    /// meant for start-up, so a misconfiguration shows before the first XDC needs a volume.
    pub async fn check(&self) -> Result<(), VolumeError> {
        match self.ceph(&["fs", "get", &self.config.fs_name]).await {
            Ok(_) => {}
            Err(CliError::NotFound(_)) => {
                return Err(VolumeError::Unavailable(format!(
                    "no CephFS filesystem named {:?}",
                    self.config.fs_name
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let version =
            Command::new(&self.config.ceph_fuse_bin).arg("--version").stdin(Stdio::null()).output().await;
        match version {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(VolumeError::Unavailable(format!(
                "{} --version failed: {}",
                self.config.ceph_fuse_bin.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
            Err(e) => Err(VolumeError::Unavailable(format!(
                "cannot run {}: {e}",
                self.config.ceph_fuse_bin.display()
            ))),
        }
    }

    /// The subvolume behind `volume`, or `None` when it does not exist.
    pub async fn info(&self, volume: &VolumeRef) -> Result<Option<SubvolumeInfo>, VolumeError> {
        let (kind, name) = kind_and_name(volume)?;
        self.subvolume_info(group(kind), name).await
    }

    /// Unmounts `volume` from this host if it is mounted; the subvolume and its data stay.
    /// Returns whether something was unmounted.
    pub async fn unmount(&self, volume: &VolumeRef) -> Result<bool, VolumeError> {
        let mount_point = self.mount_point(volume)?;
        let lock = self.lock_for(&mount_point);
        let _guard = lock.lock().await;
        Ok(host::unmount_all_at(&mount_point, self.config.command_timeout).await? > 0)
    }

    /// Unmounts every `ceph-fuse` mount under the mount root (all volumes of this backend,
    /// including those mounted before this process started); for shutdown. A mount still in
    /// use is detached lazily (`umount -l`) and goes away when its last user does. Returns how
    /// many mounts were unmounted.
    pub async fn unmount_all(&self) -> Result<usize, VolumeError> {
        let mounts = host::read_mounts().await?;
        let mut count = 0;
        for mount in mountinfo::below(&mounts, &self.config.mount_root, FUSE_TYPE) {
            host::unmount(&mount.mount_point, self.config.command_timeout).await?;
            count += 1;
        }
        Ok(count)
    }

    fn lock_for(&self, mount_point: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.entry(mount_point.to_owned()).or_default().clone()
    }

    async fn ensure_group(&self, group: &'static str) -> Result<(), VolumeError> {
        if self.groups_ready.lock().unwrap_or_else(|p| p.into_inner()).contains(group) {
            return Ok(());
        }
        self.ceph(&["fs", "subvolumegroup", "create", &self.config.fs_name, group]).await?;
        self.groups_ready.lock().unwrap_or_else(|p| p.into_inner()).insert(group);
        Ok(())
    }

    async fn subvolume_info(&self, group: &str, name: &str) -> Result<Option<SubvolumeInfo>, VolumeError> {
        let fs = &self.config.fs_name;
        match self.ceph(&["fs", "subvolume", "info", fs, name, "--group_name", group]).await {
            Ok(out) => parse_info(&out).map(Some),
            Err(CliError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_subvolume(
        &self,
        group: &'static str,
        name: &str,
        owner: VolumeOwner,
    ) -> Result<(), VolumeError> {
        let (uid, gid, mode) =
            (owner.uid.to_string(), owner.gid.to_string(), format!("{:o}", owner.mode & 0o7777));
        let mut args = vec!["fs", "subvolume", "create", &self.config.fs_name, name, "--group_name", group];
        args.extend(["--uid", &uid, "--gid", &gid, "--mode", &mode]);
        let size = owner.quota_bytes.to_string();
        if owner.quota_bytes != 0 {
            args.extend(["--size", &size]);
        }
        match self.ceph(&args).await {
            Ok(_) => Ok(()),
            // The group was deleted behind our back: create it again, once.
            Err(CliError::NotFound(_)) => {
                self.groups_ready.lock().unwrap_or_else(|p| p.into_inner()).remove(group);
                self.ensure_group(group).await?;
                self.ceph(&args).await.map(|_| ()).map_err(VolumeError::from)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a live mount is at `mount_point`. A dead one (its ceph-fuse crashed or was
    /// killed) is unmounted, and the MDS sessions it left are evicted: their caps would block
    /// every other client, the mgr included, until the MDS times them out (60-300 s).
    async fn live_mount(&self, mount_point: &Path) -> Result<bool, VolumeError> {
        let timeout = self.config.command_timeout;
        match host::mount_state(mount_point, timeout).await? {
            MountState::Alive => Ok(true),
            MountState::Absent => Ok(false),
            MountState::Dead => {
                tracing::warn!(mount_point = %mount_point.display(), "ceph-fuse mount is dead; remounting");
                host::unmount_all_at(mount_point, timeout).await?;
                if let Err(e) = self.evict_dead_sessions(mount_point).await {
                    tracing::warn!(mount_point = %mount_point.display(), error = %e, "cannot evict dead sessions");
                }
                Ok(false)
            }
        }
    }

    /// Evicts the MDS sessions of ceph-fuse clients on this host that served `mount_point`
    /// and no longer run. Asks rank 0, which holds every client's session on a filesystem
    /// with one active MDS.
    async fn evict_dead_sessions(&self, mount_point: &Path) -> Result<usize, VolumeError> {
        let mds = format!("mds.{}:0", self.config.fs_name);
        let out = self.ceph(&["tell", &mds, "client", "ls"]).await?;
        let sessions: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
            VolumeError::Failed(format!("unexpected `ceph tell {mds} client ls` output: {e}"))
        })?;
        let (point, hostname) = (mount_point.to_string_lossy(), host::hostname());
        let mut evicted = 0;
        for session in sessions.as_array().into_iter().flatten() {
            let meta = &session["client_metadata"];
            let pid = meta["pid"].as_str().and_then(|p| p.parse().ok());
            let ours = meta["mount_point"].as_str() == Some(&*point)
                && meta["hostname"].as_str() == hostname.as_deref();
            if !ours || pid.is_some_and(|pid| host::ceph_fuse_alive(pid, mount_point)) {
                continue;
            }
            if let Some(id) = session["id"].as_u64() {
                tracing::info!(client = id, mount_point = %point, "evicting the session of a dead ceph-fuse");
                self.ceph(&["tell", &mds, "client", "evict", &format!("id={id}")]).await?;
                evicted += 1;
            }
        }
        Ok(evicted)
    }

    /// Runs `ceph -c <conf> --id <id> --format json <args>`; returns its stdout.
    ///
    /// The mgr answers ETIMEDOUT when its own libcephfs client could not reach the MDS in
    /// time, which a loaded host (or an MDS still recalling caps from a client that just
    /// unmounted) causes now and then. Every command this backend sends is idempotent, so
    /// such an answer is retried a few times before it becomes an error.
    async fn ceph(&self, args: &[&str]) -> Result<String, CliError> {
        const ATTEMPTS: u32 = 4;
        let mut attempt = 1;
        loop {
            match self.ceph_once(args).await {
                Err(CliError::TimedOut(message)) if attempt < ATTEMPTS => {
                    tracing::warn!(attempt, %message, "the ceph mgr timed out; retrying");
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn ceph_once(&self, args: &[&str]) -> Result<String, CliError> {
        let timeout = self.config.command_timeout.as_secs().max(1).to_string();
        let mut command = Command::new(&self.config.ceph_bin);
        command
            .arg("-c")
            .arg(&self.config.conf)
            .args(["--id", &self.config.client_id, "--format", "json", "--connect-timeout", &timeout])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let what = format!("{} {}", self.config.ceph_bin.display(), args.join(" "));
        let out = run_with_timeout(&mut command, &what, self.config.command_timeout)
            .await
            .map_err(CliError::Volume)?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let message = format!("`{what}` failed ({}): {}", out.status, last_lines(&stderr, 3));
        // The CLI exits with the errno of the failed command.
        Err(match out.status.code() {
            Some(2) => CliError::NotFound(message),
            Some(ETIMEDOUT) => CliError::TimedOut(message),
            _ if stderr.contains("error connecting to the cluster") || stderr.contains("timed out") => {
                CliError::Volume(VolumeError::Unavailable(message))
            }
            _ => CliError::Volume(VolumeError::Failed(message)),
        })
    }
}

#[async_trait::async_trait]
impl Volumes for CephFsVolumes {
    async fn ensure(&self, volume: &VolumeRef, owner: VolumeOwner) -> Result<PathBuf, VolumeError> {
        let (kind, name) = kind_and_name(volume)?;
        let group = group(kind);
        let mount_point = self.mount_point(volume)?;
        let lock = self.lock_for(&mount_point);
        let _guard = lock.lock().await;

        // First, so that a dead mount's sessions are evicted before they can block the mgr.
        let mounted = self.live_mount(&mount_point).await?;
        self.ensure_group(group).await?;
        let path = match self.subvolume_info(group, name).await? {
            None => {
                self.create_subvolume(group, name, owner).await?;
                let fs = &self.config.fs_name;
                let out = self.ceph(&["fs", "subvolume", "getpath", fs, name, "--group_name", group]).await?;
                out.trim().to_owned()
            }
            Some(info) => {
                if info.quota_bytes != owner.quota_bytes {
                    let size = match owner.quota_bytes {
                        0 => "infinite".to_owned(),
                        bytes => bytes.to_string(),
                    };
                    let fs = &self.config.fs_name;
                    self.ceph(&["fs", "subvolume", "resize", fs, name, &size, "--group_name", group]).await?;
                }
                info.path
            }
        };
        if !path.starts_with('/') {
            return Err(VolumeError::Failed(format!(
                "ceph returned {path:?} as the path of subvolume {group}/{name}"
            )));
        }
        if !mounted {
            let config = &self.config;
            let (fuse, conf, id, timeout) =
                (&config.ceph_fuse_bin, &config.conf, &config.client_id, config.command_timeout);
            host::ceph_fuse_mount(fuse, conf, id, &path, &mount_point, timeout).await?;
        }
        // Owner and mode are set through the mount: `subvolume create` on an existing
        // subvolume cannot set uid or gid 0 (Pacific treats 0 as "keep").
        host::set_owner(&mount_point, owner).await?;
        Ok(mount_point)
    }

    async fn remove(&self, volume: &VolumeRef) -> Result<(), VolumeError> {
        let (kind, name) = kind_and_name(volume)?;
        let group = group(kind);
        let mount_point = self.mount_point(volume)?;
        let lock = self.lock_for(&mount_point);
        let _guard = lock.lock().await;

        host::unmount_all_at(&mount_point, self.config.command_timeout).await?;
        // --force: a subvolume (or group) that does not exist is not an error.
        let fs = &self.config.fs_name;
        self.ceph(&["fs", "subvolume", "rm", fs, name, "--group_name", group, "--force"]).await?;
        // Only an unmounted directory may be deleted recursively, or this would reach into the
        // (already deleted, but perhaps still mounted elsewhere) subvolume.
        let still_mounted = host::read_mounts().await?.iter().any(|m| m.mount_point == mount_point);
        if !still_mounted {
            host::remove_local(&mount_point).await?;
            host::remove_local(&side_file(&mount_point, "log")).await?;
            host::remove_local(&side_file(&mount_point, "pid")).await?;
        }
        Ok(())
    }
}

fn group(kind: Kind) -> &'static str {
    match kind {
        Kind::Home => HOMES_GROUP,
        Kind::Project => PROJECTS_GROUP,
    }
}

fn parse_info(json: &str) -> Result<SubvolumeInfo, VolumeError> {
    let bad = |what: &str| {
        VolumeError::Failed(format!("unexpected `ceph fs subvolume info` output ({what}): {json}"))
    };
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    let number = |key: &str| value.get(key).and_then(serde_json::Value::as_u64).ok_or_else(|| bad(key));
    let id = |key: &str| number(key).and_then(|n| u32::try_from(n).map_err(|_| bad(key)));
    let quota_bytes = match value.get("bytes_quota") {
        Some(serde_json::Value::String(s)) if s == "infinite" => 0,
        _ => number("bytes_quota")?,
    };
    Ok(SubvolumeInfo {
        path: value.get("path").and_then(serde_json::Value::as_str).ok_or_else(|| bad("path"))?.to_owned(),
        uid: id("uid")?,
        gid: id("gid")?,
        mode: id("mode")? & 0o7777,
        quota_bytes,
        used_bytes: number("bytes_used")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subvolume_info() {
        let json = r#"{"bytes_quota": 20971520, "bytes_used": 4096, "gid": 1001, "mode": 17912,
            "path": "/volumes/homes/alice/2cc2", "uid": 1001, "state": "complete"}"#;
        let info = parse_info(json).unwrap();
        assert_eq!(
            info,
            SubvolumeInfo {
                path: "/volumes/homes/alice/2cc2".into(),
                uid: 1001,
                gid: 1001,
                mode: 0o2770,
                quota_bytes: 20971520,
                used_bytes: 4096
            }
        );
        let unlimited = json.replace("20971520", "\"infinite\"");
        assert_eq!(parse_info(&unlimited).unwrap().quota_bytes, 0);
        let err = parse_info(r#"{"path": "/x"}"#).unwrap_err().to_string();
        assert!(err.contains("unexpected"), "{err}");
    }
}
