//! The crate's error type.

use std::path::PathBuf;

use crate::BlobId;

/// What can go wrong reading or writing blobs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// A string that is not 64 hex digits was given as a blob id.
    #[error("invalid blob id {input:?}: {reason}")]
    InvalidId {
        /// The rejected input (at most 80 characters of it).
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The stored bytes no longer hash to their id: the copy is damaged. The blob should be
    /// deleted and put again from its source.
    #[error("blob {id} is corrupt: {detail}")]
    Corrupt {
        /// The blob that was read.
        id: BlobId,
        /// What was wrong (the hash found, a missing or short piece, a bad manifest).
        detail: String,
    },

    /// A file-system operation of the local store failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done, e.g. "write".
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Connecting to the Ceph cluster or opening the pool failed.
    #[cfg(feature = "rados")]
    #[error("ceph: {op} (conf {conf}, user {user}, pool {pool})")]
    Connect {
        /// What was being done.
        op: &'static str,
        /// The ceph.conf given.
        conf: PathBuf,
        /// The cephx user.
        user: String,
        /// The pool.
        pool: String,
        /// librados' error (boxed: it is large, and this enum travels in every `Result`).
        #[source]
        source: Box<ceph::error::RadosError>,
    },

    /// A librados call on an object failed.
    #[cfg(feature = "rados")]
    #[error("rados {op} of object {object} in pool {pool}")]
    Rados {
        /// What was being done, e.g. "write".
        op: &'static str,
        /// The pool.
        pool: String,
        /// The RADOS object.
        object: String,
        /// librados' error (boxed: it is large, and this enum travels in every `Result`).
        #[source]
        source: Box<ceph::error::RadosError>,
    },

    /// A blob too large for this process's memory was asked for.
    #[error("blob {id} of {size} bytes does not fit in memory")]
    TooLarge {
        /// The blob.
        id: BlobId,
        /// Its size.
        size: u64,
    },

    /// The blocking task that did the I/O panicked or was cancelled.
    #[error("blob I/O task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl BlobError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }
}
