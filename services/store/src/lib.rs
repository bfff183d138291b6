//! The state store: one small trait, two real backends.
//!
//! Everything Trellis keeps lives under string keys with opaque byte values, versioned by a
//! store-wide, monotonically increasing revision (etcd's model). Writers coordinate with
//! compare-and-swap transactions on a key's `mod_revision`; readers follow changes with a watch
//! on a key prefix that can resume from any revision not yet compacted away.
//!
//! Backends:
//! - [`etcd::EtcdStore`]: a real etcd cluster through `etcd-client` (multi-node deployments).
//! - [`embedded::EmbeddedStore`]: a persistent single-file store on `redb` with the same
//!   revision, watch and lease semantics (the single-node default).
//!
//! [`cache::CachedStore`] wraps either with a watch-fed in-memory copy of chosen prefixes that
//! still answers every read consistently.
//!
//! What this crate deliberately is not: it knows nothing about users, projects or any other
//! Trellis object; key layout and value encoding belong to the services.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub mod cache;
pub mod embedded;
pub mod etcd;

/// A store-wide revision. Every successful write bumps it by one; `0` means "never written".
pub type Revision = i64;

/// A lease identifier. Keys attached to a lease vanish when the lease expires or is revoked.
pub type LeaseId = i64;

/// One stored key with its value and version metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
    /// Lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// A condition evaluated atomically at the start of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's `mod_revision` equals the given revision; `0` means the key must not exist.
    ModRevision { key: String, revision: Revision },
    /// The key exists (any revision).
    Exists { key: String },
}

/// A write performed by a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
    },
    /// Deletes every key starting with the prefix.
    DeletePrefix {
        prefix: String,
    },
}

/// An atomic transaction: if every compare holds, apply `success`, otherwise apply nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
}

/// The result of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    /// Whether the compares held and the writes were applied.
    pub succeeded: bool,
    /// The store revision after the transaction (unchanged when it failed or wrote nothing).
    pub revision: Revision,
}

/// The result of a prefix read: the keys in lexical order and the revision they were read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub kvs: Vec<KeyValue>,
    pub revision: Revision,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a watch. For deletes, `kv.value` is empty and `kv.mod_revision` is the
/// revision of the deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub kv: KeyValue,
}

/// A stream of watch events in revision order. Ends with an error if the watch cannot continue
/// (for example [`StoreError::Compacted`]).
pub type WatchStream = BoxStream<'static, Result<WatchEvent, StoreError>>;

/// Errors from a store backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The requested revision has been compacted away; re-list and watch from the new revision.
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    /// The lease does not exist (never granted, expired or revoked).
    #[error("lease {0} not found")]
    LeaseNotFound(LeaseId),
    /// The backend could not be reached or failed; the operation may be retried.
    #[error("store unavailable: {message}")]
    Unavailable { message: String },
    /// The backend failed in a way a retry will not fix.
    #[error("store failure: {message}")]
    Internal { message: String },
}

/// The state store seam. Implementations must be safe to share between tasks and replicas.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Reads every key starting with `prefix`, in lexical key order.
    async fn range(&self, prefix: &str) -> Result<Range, StoreError>;

    /// Runs an atomic compare-and-swap transaction.
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError>;

    /// Watches every key starting with `prefix`, delivering events with
    /// `mod_revision >= from_revision` (`0` = from now on), in order, each exactly once.
    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream, StoreError>;

    /// Grants a lease that expires after `ttl` unless kept alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError>;

    /// Renews a lease for its full TTL.
    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError>;

    /// Revokes a lease, deleting every key attached to it.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError>;

    /// The store's current revision.
    async fn current_revision(&self) -> Result<Revision, StoreError>;
}

/// Convenience helpers every backend gets for free.
#[async_trait]
pub trait StoreExt: Store {
    /// Unconditionally writes a key, returning the new revision.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let outcome = self
            .txn(Txn { compares: vec![], success: vec![Op::Put { key: key.to_owned(), value, lease: None }] })
            .await?;
        Ok(outcome.revision)
    }

    /// Deletes a key; returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let outcome = self
            .txn(Txn {
                compares: vec![Compare::Exists { key: key.to_owned() }],
                success: vec![Op::Delete { key: key.to_owned() }],
            })
            .await?;
        Ok(outcome.succeeded)
    }
}

impl<S: Store + ?Sized> StoreExt for S {}
