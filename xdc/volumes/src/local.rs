//! Volumes as plain directories: `<root>/home/<user>` and `<root>/project/<project>`.
//!
//! Quotas are not enforced: [`VolumeOwner::quota_bytes`] is accepted and ignored, because a
//! plain directory has no size limit of its own (XFS/ext4 project quotas would need a
//! filesystem mounted with `prjquota` and a project ID per volume; use the CephFS backend when
//! limits matter).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::{Kind, VolumeError, VolumeOwner, VolumeRef, Volumes, kind_and_name};

/// Directories under one root on this host. The root and the `home`/`project` directories
/// are created as needed, owned by the process's user, mode 0755.
#[derive(Debug, Clone)]
pub struct LocalVolumes {
    root: PathBuf,
}

impl LocalVolumes {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalVolumes { root: root.into() }
    }

    /// Where `volume` lives (whether or not it exists yet).
    pub fn path(&self, volume: &VolumeRef) -> Result<PathBuf, VolumeError> {
        let (kind, name) = kind_and_name(volume)?;
        Ok(self.root.join(subdir(kind)).join(name))
    }
}

fn subdir(kind: Kind) -> &'static str {
    match kind {
        Kind::Home => "home",
        Kind::Project => "project",
    }
}

#[async_trait::async_trait]
impl Volumes for LocalVolumes {
    async fn ensure(&self, volume: &VolumeRef, owner: VolumeOwner) -> Result<PathBuf, VolumeError> {
        let path = self.path(volume)?;
        if owner.quota_bytes != 0 {
            tracing::debug!(volume = %path.display(), "local volumes do not enforce quotas");
        }
        tokio::task::spawn_blocking(move || ensure_dir(&path, owner).map(|()| path))
            .await
            .map_err(|e| VolumeError::Failed(format!("volume task failed: {e}")))?
    }

    async fn remove(&self, volume: &VolumeRef) -> Result<(), VolumeError> {
        let path = self.path(volume)?;
        tokio::task::spawn_blocking(move || remove_dir(&path))
            .await
            .map_err(|e| VolumeError::Failed(format!("volume task failed: {e}")))?
    }
}

fn ensure_dir(path: &Path, owner: VolumeOwner) -> Result<(), VolumeError> {
    let failed =
        |what: &str, e: std::io::Error| VolumeError::Failed(format!("{what} {}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| failed("cannot create the parent of", e))?;
    }
    match std::fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(failed("cannot create", e)),
    }
    // The volume's owner can write inside it, not next to it; still, a symlink here (left by
    // anyone) must not turn chown/chmod onto its target.
    let meta = std::fs::symlink_metadata(path).map_err(|e| failed("cannot stat", e))?;
    if !meta.file_type().is_dir() {
        return Err(VolumeError::Failed(format!("{} exists and is not a directory", path.display())));
    }
    std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid))
        .map_err(|e| failed("cannot chown", e))?;
    // After chown: chown may clear set-ID bits, chmod sets them as asked.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(owner.mode & 0o7777))
        .map_err(|e| failed("cannot chmod", e))
}

fn remove_dir(path: &Path) -> Result<(), VolumeError> {
    // remove_dir_all does not follow symlinks inside the tree; a symlink at the top is removed
    // as a link, never its target.
    let result = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(VolumeError::Failed(format!("cannot remove {}: {e}", path.display()))),
    }
}
