//! A watch-fed cache in front of a store, with consistent reads.
//!
//! Authorizing one API call reads the token revocation list, the caller's account and the
//! object concerned; against etcd each read is a network round trip. [`CachedStore`] keeps the
//! keys under chosen prefixes in memory, fed by one watch, and answers reads from memory
//! *only once it has applied every write the store had made when the read began*: it asks the
//! store for its current revision (one cheap call) and waits until the cache has caught up to
//! it. A read therefore sees every write that finished before it started, on any replica, as
//! a direct read would (this is how Kubernetes serves consistent reads from its watch cache).
//!
//! Guarantees: reads of cached keys are never older than the store at the moment the read
//! began; a transaction's writes become visible together. Assumptions: every write to the store
//! is under the watched root, so the watch's revision keeps up with the store's (a write
//! elsewhere only makes reads fall back to the store after a short wait). Caveats: the cached
//! prefixes are held in memory in full.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use crate::{EventKind, KeyValue, LeaseId, Range, Revision, Store, StoreError, Txn, TxnOutcome, WatchStream};

/// How long a read waits for the cache to catch up before reading the store directly.
const CATCH_UP: Duration = Duration::from_secs(2);

/// A store whose reads under some prefixes come from a consistent in-memory copy.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    prefixes: Vec<String>,
    shared: Arc<Shared>,
    barrier: Barrier,
    task: tokio::task::JoinHandle<()>,
}

/// Shares the store-revision queries among concurrent reads.
///
/// A read needs the store's revision as of some moment *after* it began. A query that started
/// after the read arrived serves it, so all reads arriving while one query is in flight share
/// the next one: under load there is one query per round trip, not one per read.
struct Barrier {
    /// How many queries have started; a query's number is its position in this count.
    started: std::sync::atomic::AtomicU64,
    /// The number and answer of the latest finished query.
    finished: watch::Sender<(u64, Revision)>,
    /// Held by the read running the current query.
    leader: tokio::sync::Mutex<()>,
}

impl Barrier {
    fn new() -> Barrier {
        Barrier {
            started: std::sync::atomic::AtomicU64::new(0),
            finished: watch::channel((0, 0)).0,
            leader: tokio::sync::Mutex::new(()),
        }
    }

    /// The store's revision at some moment after this call began.
    async fn revision(&self, inner: &dyn Store) -> Result<Revision, StoreError> {
        use std::sync::atomic::Ordering;
        let arrived_after = self.started.load(Ordering::SeqCst);
        let mut finished = self.finished.subscribe();
        loop {
            let (number, revision) = *finished.borrow_and_update();
            if number > arrived_after {
                return Ok(revision);
            }
            if let Ok(leading) = self.leader.try_lock() {
                let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
                let result = inner.current_revision().await;
                // Let go before waking the others, or a woken reader could find the lock still
                // held, go back to waiting, and never be woken again.
                drop(leading);
                match result {
                    Ok(revision) => self.finished.send_modify(|latest| {
                        // Keep the newest answer if queries finish out of order.
                        if number > latest.0 {
                            *latest = (number, revision);
                        }
                    }),
                    // Wake the waiters so one of them queries in turn.
                    Err(_) => self.finished.send_modify(|_| {}),
                }
                return result;
            }
            // Someone else's query is in flight; it may have started before we arrived, so
            // wait for it to finish and look again.
            if finished.changed().await.is_err() {
                return inner.current_revision().await;
            }
        }
    }
}

struct Shared {
    data: RwLock<BTreeMap<String, KeyValue>>,
    /// The revision up to which every watched write has been applied; `-1` while (re)loading.
    applied: watch::Sender<Revision>,
}

impl Drop for CachedStore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CachedStore {
    /// Caches the keys under `prefixes` (all inside `root`), following every write under
    /// `root`. Reads are served from the store until the first load completes.
    pub fn new(inner: Arc<dyn Store>, root: &str, prefixes: Vec<String>) -> CachedStore {
        let (applied, _) = watch::channel(-1);
        let shared = Arc::new(Shared { data: RwLock::new(BTreeMap::new()), applied });
        let task = tokio::spawn(follow(inner.clone(), root.to_owned(), prefixes.clone(), shared.clone()));
        CachedStore { inner, prefixes, shared, barrier: Barrier::new(), task }
    }

    fn covers(&self, prefix: &str) -> bool {
        self.prefixes.iter().any(|p| prefix.starts_with(p.as_str()))
    }

    /// Waits until the cache holds every write up to the store's current revision; `false`
    /// when it could not catch up in time (the caller then reads the store).
    async fn caught_up(&self) -> Result<Option<Revision>, StoreError> {
        let mut applied = self.shared.applied.subscribe();
        if *applied.borrow() < 0 {
            return Ok(None);
        }
        let wanted = self.barrier.revision(self.inner.as_ref()).await?;
        match tokio::time::timeout(CATCH_UP, applied.wait_for(|r| *r >= wanted)).await {
            Ok(Ok(r)) => Ok(Some(*r)),
            _ => {
                tracing::debug!(wanted, "watch cache did not catch up in time; reading the store");
                Ok(None)
            }
        }
    }

    fn read<T>(&self, f: impl FnOnce(&BTreeMap<String, KeyValue>) -> T) -> Result<T, StoreError> {
        let data = self
            .shared
            .data
            .read()
            .map_err(|_| StoreError::Internal { message: "watch cache lock poisoned".to_owned() })?;
        Ok(f(&data))
    }
}

/// Loads the cached prefixes, then applies the watch; reloads from scratch after any error.
async fn follow(inner: Arc<dyn Store>, root: String, prefixes: Vec<String>, shared: Arc<Shared>) {
    let wanted = |key: &str| prefixes.iter().any(|p| key.starts_with(p.as_str()));
    loop {
        shared.applied.send_replace(-1);
        if let Err(e) = follow_once(inner.as_ref(), &root, &wanted, &shared).await {
            tracing::warn!(error = %e, "watch cache lost its watch; reloading");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn follow_once(
    inner: &dyn Store,
    root: &str,
    wanted: &(dyn Fn(&str) -> bool + Sync),
    shared: &Shared,
) -> Result<(), StoreError> {
    let range = inner.range(root).await?;
    {
        let mut data =
            shared.data.write().map_err(|_| StoreError::Internal { message: "poisoned".to_owned() })?;
        *data = range.kvs.into_iter().filter(|kv| wanted(&kv.key)).map(|kv| (kv.key.clone(), kv)).collect();
    }
    shared.applied.send_replace(range.revision);
    let mut events = inner.watch(root, range.revision + 1).await?;
    while let Some(first) = events.next().await {
        // Apply everything already delivered in one go, under one lock, so the writes of one
        // transaction (one revision) never become visible one by one.
        let mut batch = vec![first?];
        while let Some(Some(next)) = events.next().now_or_never() {
            batch.push(next?);
        }
        let last = batch.last().map(|e| e.kv.mod_revision).unwrap_or_default();
        {
            let mut data =
                shared.data.write().map_err(|_| StoreError::Internal { message: "poisoned".to_owned() })?;
            for event in batch {
                if !wanted(&event.kv.key) {
                    continue;
                }
                match event.kind {
                    EventKind::Put => {
                        data.insert(event.kv.key.clone(), event.kv);
                    }
                    EventKind::Delete => {
                        data.remove(&event.kv.key);
                    }
                }
            }
        }
        shared.applied.send_replace(last);
    }
    Err(StoreError::Unavailable { message: "watch ended".to_owned() })
}

#[async_trait]
impl Store for CachedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        if self.covers(key) && self.caught_up().await?.is_some() {
            return self.read(|data| data.get(key).cloned());
        }
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &str) -> Result<Range, StoreError> {
        if self.covers(prefix)
            && let Some(revision) = self.caught_up().await?
        {
            let kvs = self.read(|data| {
                data.range(prefix.to_owned()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(_, kv)| kv.clone())
                    .collect()
            })?;
            return Ok(Range { kvs, revision });
        }
        self.inner.range(prefix).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        self.inner.txn(txn).await
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream, StoreError> {
        self.inner.watch(prefix, from_revision).await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.inner.grant_lease(ttl).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.inner.keep_alive(lease).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.inner.revoke_lease(lease).await
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.inner.current_revision().await
    }
}
