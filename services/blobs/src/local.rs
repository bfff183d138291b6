//! Blobs as files in a local directory: the default backend.
//!
//! Layout: `<root>/<first two hex digits>/<64 hex digits>`, so no directory holds more than
//! 1/256 of the blobs. Files are mode 0600 and fan-out directories 0700 (the models are
//! experiment data of other users).
//!
//! Crash safety: a blob is written to a temporary file (`.tmp-*`) in its final directory,
//! fsynced, renamed over its final name (atomic on POSIX), and the directory is fsynced so the
//! rename itself is durable. A crash therefore leaves either the whole blob or none of it, plus
//! perhaps a stale temporary file, which [`LocalBlobStore::open`] removes once it is an hour old.

use std::fs::{self, DirBuilder, File, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{BlobError, BlobId, BlobStore, blocking, id::Hasher};

/// Prefix of temporary files; never a valid id, so `list` skips them.
const TMP_PREFIX: &str = ".tmp-";
/// Temporary files older than this are left over from a crash: no put takes an hour.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

/// A [`BlobStore`] on a local directory. Cheap to clone; clones share the directory.
#[derive(Clone, Debug)]
pub struct LocalBlobStore {
    root: Arc<PathBuf>,
}

impl LocalBlobStore {
    /// Opens (creating it, mode 0700, if missing) the store rooted at `dir`, and removes
    /// temporary files that crashed puts left behind.
    ///
    /// Blocking: call it before serving, or from `spawn_blocking`.
    pub fn open(dir: &Path) -> Result<Self, BlobError> {
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(BlobError::io("create", dir))?;
        let meta = fs::metadata(dir).map_err(BlobError::io("stat", dir))?;
        if !meta.is_dir() {
            return Err(BlobError::Io {
                op: "open",
                path: dir.to_owned(),
                source: std::io::Error::new(ErrorKind::NotADirectory, "blob store root is not a directory"),
            });
        }
        let store = Self { root: Arc::new(dir.to_owned()) };
        store.sweep_stale_temp_files(STALE_TMP_AGE);
        Ok(store)
    }

    /// The directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `id` lives (whether or not it is stored). Tests use it to damage a blob on purpose.
    pub fn path_of(&self, id: &BlobId) -> PathBuf {
        self.root.join(id.fan_out()).join(id.as_str())
    }

    /// Best effort: a temporary file that cannot be removed only costs disk space, so failures
    /// are logged and opening goes on.
    fn sweep_stale_temp_files(&self, max_age: Duration) {
        let now = SystemTime::now();
        for dir in fan_out_dirs(&self.root) {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if !entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    continue;
                }
                let age = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .unwrap_or_default();
                if age >= max_age {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => {
                            tracing::info!(path = %entry.path().display(), "removed stale temporary blob file")
                        }
                        Err(e) => {
                            tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove stale temporary blob file")
                        }
                    }
                }
            }
        }
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, bytes: Vec<u8>) -> Result<BlobId, BlobError> {
        let root = Arc::clone(&self.root);
        blocking(move || put_sync(&root, &bytes)).await
    }

    async fn get(&self, id: &BlobId) -> Result<Option<Vec<u8>>, BlobError> {
        let (id, path) = (id.clone(), self.path_of(id));
        blocking(move || {
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(BlobError::io("read", path)(e)),
            };
            let mut hasher = Hasher::default();
            hasher.update(&bytes);
            let found = hasher.finish();
            if found != id {
                return Err(BlobError::Corrupt {
                    id,
                    detail: format!("{} holds {} bytes hashing to {found}", path.display(), bytes.len()),
                });
            }
            Ok(Some(bytes))
        })
        .await
    }

    async fn exists(&self, id: &BlobId) -> Result<bool, BlobError> {
        let path = self.path_of(id);
        blocking(move || match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(BlobError::io("stat", path)(e)),
        })
        .await
    }

    async fn delete(&self, id: &BlobId) -> Result<bool, BlobError> {
        let path = self.path_of(id);
        blocking(move || {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(BlobError::io("remove", path)(e)),
            }
            // Make the removal durable too, or a crash could bring the blob back.
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            Ok(true)
        })
        .await
    }

    async fn list(&self) -> Result<Vec<BlobId>, BlobError> {
        let root = Arc::clone(&self.root);
        blocking(move || {
            let mut ids = Vec::new();
            for dir in fan_out_dirs(&root) {
                let entries = match fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(BlobError::io("list", dir)(e)),
                };
                for entry in entries {
                    let entry = entry.map_err(BlobError::io("list", &dir))?;
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    // Only canonical names count: temporary files and strays are not blobs.
                    if let Ok(id) = BlobId::parse(name)
                        && id.as_str() == name
                        && dir.ends_with(id.fan_out())
                    {
                        ids.push(id);
                    }
                }
            }
            ids.sort();
            Ok(ids)
        })
        .await
    }
}

fn put_sync(root: &Path, bytes: &[u8]) -> Result<BlobId, BlobError> {
    let mut hasher = Hasher::default();
    hasher.update(bytes);
    let id = hasher.finish();
    let dir = root.join(id.fan_out());
    let path = dir.join(id.as_str());

    // Idempotence: a file of the right size under the right name was renamed there whole, so it
    // is this blob. (A damaged one of the same size is caught by `get`; one of the wrong size,
    // e.g. truncated by a disk fault, is rewritten below.)
    if let Ok(meta) = fs::metadata(&path)
        && meta.is_file()
        && meta.len() == bytes.len() as u64
    {
        return Ok(id);
    }

    if !dir.is_dir() {
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => sync_dir(root)?,
            // Another put made it meanwhile.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(BlobError::io("create", dir)(e)),
        }
    }

    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(BlobError::io("create temporary file in", &dir))?;
    tmp.write_all(bytes).map_err(BlobError::io("write", tmp.path()))?;
    tmp.as_file().sync_all().map_err(BlobError::io("fsync", tmp.path()))?;
    // Concurrent puts of the same bytes each rename a complete file over the name; whichever
    // lands last wins, and readers only ever see a whole file.
    tmp.persist(&path).map_err(|e| BlobError::io("rename into", &path)(e.error))?;
    sync_dir(&dir)?;
    Ok(id)
}

/// fsyncs a directory, which makes renames and removals in it durable.
fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(BlobError::io("fsync directory", dir))
}

/// The fan-out directories that exist under `root` (two lowercase hex digits each).
fn fan_out_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for n in 0..=255u8 {
        let dir = root.join(format!("{n:02x}"));
        if dir.is_dir() {
            dirs.push(dir);
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temp_files_are_swept_and_fresh_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(tmp.path()).unwrap();
        let dir = tmp.path().join("ab");
        fs::create_dir(&dir).unwrap();
        let stale = dir.join(".tmp-stale");
        let fresh = dir.join(".tmp-fresh");
        fs::write(&stale, b"x").unwrap();
        fs::write(&fresh, b"x").unwrap();
        let old = SystemTime::now() - Duration::from_secs(7200);
        File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
        store.sweep_stale_temp_files(STALE_TMP_AGE);
        assert!(!stale.exists());
        assert!(fresh.exists());
    }

    #[test]
    fn open_refuses_a_file() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        assert!(matches!(LocalBlobStore::open(tmp.path()), Err(BlobError::Io { .. })));
    }
}
