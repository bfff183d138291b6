//! A watch that fails, while the store is also unreachable for a while, loses nothing: the
//! controller lists again and catches up with what changed meanwhile.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use trellis_ingress_controller::{IngressConfig, IngressProtocol};
use trellis_store::{LeaseId, Range, Revision, Store, StoreError, Txn, TxnOutcome, WatchStream};

use crate::support::*;

/// The embedded store, with a switch that ends every watch with `Compacted` and makes lists
/// and new watches fail until it is switched back.
struct FlakyStore {
    inner: Arc<dyn Store>,
    broken: AtomicBool,
    watches: Mutex<Vec<CancellationToken>>,
    lists: std::sync::atomic::AtomicU64,
}

impl FlakyStore {
    fn cut(&self) {
        self.broken.store(true, Ordering::SeqCst);
        for watch in self.watches.lock().unwrap().drain(..) {
            watch.cancel();
        }
    }

    fn heal(&self) {
        self.broken.store(false, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable { message: "cut by the test".into() })
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for FlakyStore {
    async fn get(&self, key: &str) -> Result<Option<trellis_store::KeyValue>, StoreError> {
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &str) -> Result<Range, StoreError> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.range(prefix).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        self.inner.txn(txn).await
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream, StoreError> {
        self.check()?;
        let events = self.inner.watch(prefix, from_revision).await?;
        let cut = CancellationToken::new();
        self.watches.lock().unwrap().push(cut.clone());
        let failure = futures::stream::once(async move {
            Err(StoreError::Compacted { requested: from_revision, compacted: from_revision + 1 })
        });
        Ok(events.take_until(cut.cancelled_owned()).chain(failure).boxed())
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

#[tokio::test]
async fn changes_missed_by_a_failed_watch_are_caught_up_by_listing_again() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let inner = embedded_store(dir.path());
    let flaky = Arc::new(FlakyStore {
        inner: inner.clone(),
        broken: AtomicBool::new(false),
        watches: Mutex::new(Vec::new()),
        lists: Default::default(),
    });
    let (running, cancel) = start(options(flaky.clone(), Some(IngressConfig::default()))).await;
    let ssh = line_echo("ssh").await;
    let first = node_route(IngressProtocol::Tcp, "a", ssh.port(), free_port());
    let revision = write_route(inner.as_ref(), &first).await;
    patiently("the first route", running.synced(revision)).await.unwrap();
    let first_gateway = running.node_addr(&first).unwrap();
    assert_eq!(ask_once(first_gateway, "one").await.as_deref(), Some("ssh:one"));

    // The watch dies and the store cannot be listed; meanwhile one route goes, another comes.
    let lists_before = flaky.lists.load(Ordering::SeqCst);
    flaky.cut();
    let second = node_route(IngressProtocol::Tcp, "b", ssh.port(), free_port());
    write_route(inner.as_ref(), &second).await;
    let revision = delete_route(inner.as_ref(), &first).await;
    // At least one failed listing shows the controller noticed while the store was away.
    until("a listing attempt while cut", || flaky.lists.load(Ordering::SeqCst) > lists_before).await;
    assert!(running.node_addr(&first).is_some(), "nothing could have been learnt while cut");
    flaky.heal();

    patiently("the resync", running.synced(revision)).await.unwrap();
    assert!(running.node_addr(&first).is_none());
    let second_gateway = running.node_addr(&second).unwrap();
    assert_eq!(ask_once(second_gateway, "two").await.as_deref(), Some("ssh:two"));
    assert_eq!(served(&running), vec![format!("node/{}/b/tcp/{}", second.mzid, second.port)]);

    // The new watch works: a later delete is seen without another failure.
    let revision = delete_route(inner.as_ref(), &second).await;
    patiently("the last delete", running.synced(revision)).await.unwrap();
    assert!(served(&running).is_empty());

    cancel.cancel();
    patiently("the controller to stop", running.stopped()).await;
}
