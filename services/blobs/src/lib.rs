//! `trellis-blobs`: a content-addressed store for large immutable byte strings, above all compiled
//! experiment models (XIR, up to hundreds of MiB), kept out of the state store because etcd stalls
//! on values that size.
//!
//! A blob's id is the SHA-256 of its bytes, so a put is idempotent, two puts of the same bytes are
//! one blob, and every read is checked against the id: damage is an error, never wrong bytes.
//! Blobs are never modified, only put and deleted; `list` exists for garbage collection by a caller
//! that knows which ids are still referenced.
//!
//! # Layout
//! - [`BlobId`] (`id.rs`): the hex SHA-256 newtype.
//! - [`BlobStore`]: the trait both backends implement and the conformance suite tests.
//! - [`local::LocalBlobStore`] (`local.rs`): files under a directory, the default.
//! - `rados::RadosBlobStore` (`rados/`, cargo feature `rados`): objects in a Ceph RADOS pool,
//!   through librados (`ceph` crate); building it needs librados-dev, running it librados2.
//! - [`BlobError`] (`error.rs`).
//!
//! # Not here
//! Deciding what is garbage (the caller's references), streaming APIs (blobs are whole `Vec<u8>`s,
//! which suits models of hundreds of MiB on a 24 GiB host), and cluster management beyond creating
//! the pool.
//!
//! # Concurrency
//! Concurrent puts of the same bytes are safe on both backends. Deleting a blob while it is being
//! put is a race the caller must avoid (a GC should spare blobs younger than a grace period).

mod error;
mod id;
pub mod local;
#[cfg(feature = "rados")]
pub mod rados;

pub use error::BlobError;
pub use id::{BLOB_ID_LEN, BlobId};

use async_trait::async_trait;

/// A content-addressed blob store. Every method may block on I/O internally but never blocks the
/// async worker that awaits it.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` and returns their id. Idempotent: putting bytes that are already stored
    /// returns the same id and stores nothing twice.
    async fn put(&self, bytes: Vec<u8>) -> Result<BlobId, BlobError>;

    /// The bytes of `id`, or `None` if no such blob is stored. The bytes are hashed on the way
    /// out; a mismatch is [`BlobError::Corrupt`].
    async fn get(&self, id: &BlobId) -> Result<Option<Vec<u8>>, BlobError>;

    /// Whether `id` is stored (without reading or verifying it).
    async fn exists(&self, id: &BlobId) -> Result<bool, BlobError>;

    /// Removes `id`; returns whether it was there.
    async fn delete(&self, id: &BlobId) -> Result<bool, BlobError>;

    /// Every stored id, sorted, for garbage collection.
    async fn list(&self) -> Result<Vec<BlobId>, BlobError>;
}

/// Runs blocking I/O on tokio's blocking pool, so async workers stay free.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, BlobError>
where
    F: FnOnce() -> Result<T, BlobError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(BlobError::Task)?
}
