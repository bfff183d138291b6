//! A [`Store`] wrapper that counts the calls passing through it.
//!
//! The portal and the raw-store peers both run over the same wrapper, so the counts say how
//! many store operations one API request costs (for example, how many reads an authorized
//! `GetProject` makes) and the wrapper's own cost, one relaxed atomic add, is paid by both
//! sides alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use trellis_store::{LeaseId, Range, Revision, Store, StoreError, Txn, TxnOutcome, WatchStream};

/// Running totals of store calls.
#[derive(Debug, Default)]
pub struct Counts {
    gets: AtomicU64,
    ranges: AtomicU64,
    txns: AtomicU64,
    other: AtomicU64,
}

/// A copy of [`Counts`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub gets: u64,
    pub ranges: u64,
    pub txns: u64,
    /// Watches, leases and revision queries.
    pub other: u64,
}

impl Counts {
    /// The totals now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            gets: self.gets.load(Ordering::Relaxed),
            ranges: self.ranges.load(Ordering::Relaxed),
            txns: self.txns.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
        }
    }
}

impl Snapshot {
    /// The calls made between `earlier` and `self`.
    pub fn since(self, earlier: Snapshot) -> Snapshot {
        Snapshot {
            gets: self.gets.saturating_sub(earlier.gets),
            ranges: self.ranges.saturating_sub(earlier.ranges),
            txns: self.txns.saturating_sub(earlier.txns),
            other: self.other.saturating_sub(earlier.other),
        }
    }
}

/// Forwards every call to `inner`, counting it first.
pub struct CountingStore {
    inner: Arc<dyn Store>,
    counts: Arc<Counts>,
}

impl CountingStore {
    /// Wraps `inner`; the counts are shared with whoever holds the returned handle.
    pub fn new(inner: Arc<dyn Store>) -> (CountingStore, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        (CountingStore { inner, counts: counts.clone() }, counts)
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &str) -> Result<Option<trellis_store::KeyValue>, StoreError> {
        bump(&self.counts.gets);
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &str) -> Result<Range, StoreError> {
        bump(&self.counts.ranges);
        self.inner.range(prefix).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        bump(&self.counts.txns);
        self.inner.txn(txn).await
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream, StoreError> {
        bump(&self.counts.other);
        self.inner.watch(prefix, from_revision).await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        bump(&self.counts.other);
        self.inner.grant_lease(ttl).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        bump(&self.counts.other);
        self.inner.keep_alive(lease).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        bump(&self.counts.other);
        self.inner.revoke_lease(lease).await
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        bump(&self.counts.other);
        self.inner.current_revision().await
    }
}
