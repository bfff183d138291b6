//! Blobs as objects in a Ceph RADOS pool (cargo feature `rados`).
//!
//! Each blob is a head object named by its id plus part objects of at most 64 MiB, because RADOS
//! caps object size; `layout.rs` describes the format and why the head is written last.
//! librados calls block, so each operation runs on tokio's blocking pool.
//!
//! Caveats:
//! - librados waits for an unreachable cluster as long as its timeouts say; set
//!   `client_mount_timeout`, `rados_mon_op_timeout` and `rados_osd_op_timeout` in the `[client]`
//!   section of ceph.conf (scripts/ceph-up.sh does).
//! - The `ceph` crate's object listing ends silently on a librados error, so `list` can come up
//!   short in that case (a garbage collector then merely collects less).
//! - A put that dies before writing the head leaves part objects that `list` does not show; a
//!   later put of the same bytes overwrites them and `delete` of the id removes them.

mod cluster;
mod layout;

use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use ceph::ceph::Pool;
use ceph::error::RadosError;

use crate::{BlobError, BlobId, BlobStore, blocking, id::Hasher};
use layout::{CHUNK_SIZE, MAX_HEAD_SIZE, Manifest, part_name};

/// A [`BlobStore`] on a RADOS pool. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct RadosBlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: cluster::Cluster,
    pool: String,
}

impl std::fmt::Debug for RadosBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadosBlobStore").field("pool", &self.inner.pool).finish_non_exhaustive()
    }
}

impl RadosBlobStore {
    /// Connects to the cluster described by `conf` (a ceph.conf, which also names the keyring) as
    /// cephx user `user` ("admin" or "client.admin"), and opens `pool`, creating it with the
    /// cluster's default settings if it does not exist.
    ///
    /// Blocking (network round trips): call it before serving, or from `spawn_blocking`.
    pub fn connect(conf: &Path, user: &str, pool: &str) -> Result<Self, BlobError> {
        let cluster = cluster::connect(conf, user, pool)?;
        Ok(Self { inner: Arc::new(Inner { cluster, pool: pool.to_owned() }) })
    }

    /// The pool the blobs live in.
    pub fn pool(&self) -> &str {
        &self.inner.pool
    }

    /// Names of the RADOS objects holding `id` if it was put by this version: the head object
    /// first, then the parts. For tests and operators inspecting a pool with `rados ls`.
    pub fn object_names(&self, id: &BlobId, size: u64) -> Vec<String> {
        let manifest = Manifest::for_size(size);
        std::iter::once(id.to_string()).chain((0..manifest.parts()).map(|i| part_name(id, i))).collect()
    }

    async fn run<T, F>(&self, f: F) -> Result<T, BlobError>
    where
        F: FnOnce(&Inner) -> Result<T, BlobError> + Send + 'static,
        T: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        blocking(move || f(&inner)).await
    }
}

#[async_trait]
impl BlobStore for RadosBlobStore {
    async fn put(&self, bytes: Vec<u8>) -> Result<BlobId, BlobError> {
        self.run(move |inner| inner.put(&bytes)).await
    }

    async fn get(&self, id: &BlobId) -> Result<Option<Vec<u8>>, BlobError> {
        let id = id.clone();
        self.run(move |inner| inner.get(&id)).await
    }

    async fn exists(&self, id: &BlobId) -> Result<bool, BlobError> {
        let id = id.clone();
        self.run(move |inner| inner.stat(id.as_str()).map(|size| size.is_some())).await
    }

    async fn delete(&self, id: &BlobId) -> Result<bool, BlobError> {
        let id = id.clone();
        self.run(move |inner| inner.delete(&id)).await
    }

    async fn list(&self) -> Result<Vec<BlobId>, BlobError> {
        self.run(|inner| inner.list()).await
    }
}

/// The [`ErrorKind`] of a librados errno, if the error is one.
pub(crate) fn errno_kind(e: &RadosError) -> Option<ErrorKind> {
    match e {
        RadosError::ApiError(errno) => Some(std::io::Error::from_raw_os_error(*errno as i32).kind()),
        _ => None,
    }
}

fn is_not_found(e: &RadosError) -> bool {
    errno_kind(e) == Some(ErrorKind::NotFound)
}

// === impl Inner: the blocking operations ===

impl Inner {
    fn err(&self, op: &'static str, object: &str) -> impl FnOnce(RadosError) -> BlobError {
        let (pool, object) = (self.pool.clone(), object.to_owned());
        move |source| BlobError::Rados { op, pool, object, source: Box::new(source) }
    }

    /// Size of `object`, or `None` if it does not exist.
    fn stat(&self, object: &str) -> Result<Option<u64>, BlobError> {
        match self.cluster.ioctx.rados_object_stat(object) {
            Ok((size, _mtime)) => Ok(Some(size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.err("stat", object)(e)),
        }
    }

    /// The manifest in the head of `id`; `None` if there is no head.
    fn read_head(&self, id: &BlobId) -> Result<Option<Manifest>, BlobError> {
        let mut buf = Vec::with_capacity(MAX_HEAD_SIZE);
        match self.cluster.ioctx.rados_object_read(id.as_str(), &mut buf, 0) {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(self.err("read", id.as_str())(e)),
        }
        Manifest::decode(&buf)
            .map(Some)
            .map_err(|detail| BlobError::Corrupt { id: id.clone(), detail: format!("head object: {detail}") })
    }

    fn put(&self, bytes: &[u8]) -> Result<BlobId, BlobError> {
        let mut hasher = Hasher::default();
        hasher.update(bytes);
        let id = hasher.finish();
        let size = bytes.len() as u64;
        // Idempotence: the head is written last, so a head of the right size means every part was
        // written. A damaged head is rewritten below rather than reported.
        match self.read_head(&id) {
            Ok(Some(m)) if m.size == size => return Ok(id),
            Ok(_) | Err(BlobError::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
        let manifest = Manifest::for_size(size);
        for index in 0..manifest.parts() {
            let name = part_name(&id, index);
            let (start, len) = manifest.part_range(index);
            // In range by construction: part_range stays within `size`, which is `bytes.len()`.
            let part = &bytes[start as usize..(start + len) as usize];
            // Writes at offsets, never a truncating write_full: a concurrent put of the same
            // bytes then rewrites identical data and readers never see a shortened part.
            let mut offset = 0u64;
            for chunk in part.chunks(CHUNK_SIZE) {
                self.cluster
                    .ioctx
                    .rados_object_write(&name, chunk, offset)
                    .map_err(self.err("write", &name))?;
                offset += chunk.len() as u64;
            }
            // Drops a longer tail that an interrupted put under another layout may have left.
            self.cluster.ioctx.rados_object_trunc(&name, len).map_err(self.err("truncate", &name))?;
        }
        let head = manifest.encode();
        self.cluster
            .ioctx
            .rados_object_write_full(id.as_str(), head.as_bytes())
            .map_err(self.err("write", id.as_str()))?;
        Ok(id)
    }

    fn get(&self, id: &BlobId) -> Result<Option<Vec<u8>>, BlobError> {
        let Some(manifest) = self.read_head(id)? else { return Ok(None) };
        let corrupt = |detail: String| BlobError::Corrupt { id: id.clone(), detail };
        let too_large = || BlobError::TooLarge { id: id.clone(), size: manifest.size };
        let size = usize::try_from(manifest.size).map_err(|_| too_large())?;
        // The size comes from the cluster: reserve fallibly rather than abort on a huge one.
        let mut out = Vec::new();
        out.try_reserve_exact(size).map_err(|_| too_large())?;
        let mut hasher = Hasher::default();
        let mut buf = Vec::with_capacity(CHUNK_SIZE);
        for index in 0..manifest.parts() {
            let name = part_name(id, index);
            let (_, len) = manifest.part_range(index);
            let mut offset = 0u64;
            while offset < len {
                buf.clear();
                match self.cluster.ioctx.rados_object_read(&name, &mut buf, offset) {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {
                        return Err(corrupt(format!("part object {name} is missing")));
                    }
                    Err(e) => return Err(self.err("read", &name)(e)),
                }
                if buf.is_empty() {
                    return Err(corrupt(format!("part object {name} is {offset} bytes, not {len}")));
                }
                let take = buf.len().min((len - offset) as usize);
                hasher.update(&buf[..take]);
                out.extend_from_slice(&buf[..take]);
                offset += take as u64;
            }
        }
        let found = hasher.finish();
        if found != *id {
            return Err(corrupt(format!("its {} bytes hash to {found}", out.len())));
        }
        Ok(Some(out))
    }

    fn delete(&self, id: &BlobId) -> Result<bool, BlobError> {
        let known_parts = match self.read_head(id) {
            Ok(m) => m.map_or(0, |m| m.parts()),
            Err(BlobError::Corrupt { .. }) => 0,
            Err(e) => return Err(e),
        };
        // Head first: from here on the blob is gone for readers, whatever happens to the parts.
        let existed = match self.cluster.ioctx.rados_object_remove(id.as_str()) {
            Ok(()) => true,
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(self.err("remove", id.as_str())(e)),
        };
        let remove_part = |index: u64| -> Result<bool, BlobError> {
            let name = part_name(id, index);
            match self.cluster.ioctx.rados_object_remove(&name) {
                Ok(()) => Ok(true),
                Err(e) if is_not_found(&e) => Ok(false),
                Err(e) => Err(self.err("remove", &name)(e)),
            }
        };
        for index in 0..known_parts {
            remove_part(index)?;
        }
        // Then any further parts, left by an interrupted put or a damaged head, up to the first gap.
        let mut index = known_parts;
        while remove_part(index)? {
            index += 1;
        }
        Ok(existed)
    }

    fn list(&self) -> Result<Vec<BlobId>, BlobError> {
        let ctx = self.cluster.ioctx.rados_list_pool_objects().map_err(self.err("list", "*"))?;
        // Iterated to the end: the iterator closes the listing handle only when it is exhausted.
        let mut ids: Vec<BlobId> = Pool { ctx }
            .filter_map(|object| BlobId::parse(&object.name).ok().filter(|id| id.as_str() == object.name))
            .collect();
        ids.sort();
        Ok(ids)
    }
}
