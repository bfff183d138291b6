//! The watch cache answers like the store it fronts: every read sees every write that finished
//! before it began, on this replica or another, and a transaction's writes appear together.

use std::sync::Arc;
use std::time::Duration;

use trellis_store::cache::CachedStore;
use trellis_store::embedded::EmbeddedStore;
use trellis_store::etcd::EtcdStore;
use trellis_store::{Op, Store, StoreExt, Txn};
use trellis_testkit::etcd::EtcdServer;

fn put(key: &str, value: &str) -> Op {
    Op::Put { key: key.to_owned(), value: value.as_bytes().to_vec(), lease: None }
}

async fn reads_follow_writes_at_once(writer: Arc<dyn Store>, reader: Arc<dyn Store>) {
    for i in 0..200 {
        let value = format!("v{i}");
        writer
            .txn(Txn { compares: vec![], success: vec![put("/root/c/a", &value), put("/root/c/b", &value)] })
            .await
            .unwrap();
        // Straight after the write returns, through the other handle's cache.
        let a = reader.get("/root/c/a").await.unwrap().unwrap();
        assert_eq!(a.value, value.as_bytes(), "round {i}");
        let range = reader.range("/root/c/").await.unwrap();
        assert_eq!(range.kvs.len(), 2);
        assert!(range.kvs.iter().all(|kv| kv.value == value.as_bytes()), "round {i}: {:?}", range.kvs);
    }
    assert!(writer.delete("/root/c/a").await.unwrap());
    assert!(reader.get("/root/c/a").await.unwrap().is_none(), "a delete is visible at once");
    // Keys outside the cached prefixes are read from the store.
    writer.put("/root/other", b"x".to_vec()).await.unwrap();
    assert_eq!(reader.get("/root/other").await.unwrap().unwrap().value, b"x");
}

async fn transactions_appear_whole(store: Arc<dyn Store>, cached: Arc<dyn Store>) {
    let writer = tokio::spawn(async move {
        for i in 0..300 {
            let v = format!("{i}");
            store
                .txn(Txn { compares: vec![], success: vec![put("/root/c/t/x", &v), put("/root/c/t/y", &v)] })
                .await
                .unwrap();
        }
    });
    let mut reads = 0;
    while !writer.is_finished() {
        let range = cached.range("/root/c/t/").await.unwrap();
        if let [x, y] = range.kvs.as_slice() {
            assert_eq!(x.value, y.value, "a reader saw half of a transaction");
            reads += 1;
        }
    }
    writer.await.unwrap();
    assert!(reads > 0);
}

async fn leases_expire_through_the_cache(store: Arc<dyn Store>, cached: Arc<dyn Store>) {
    let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    store
        .txn(Txn {
            compares: vec![],
            success: vec![Op::Put { key: "/root/c/l".into(), value: vec![1], lease: Some(lease) }],
        })
        .await
        .unwrap();
    assert!(cached.get("/root/c/l").await.unwrap().is_some());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cached.get("/root/c/l").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "leased key never expired in the cache");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn embedded() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
    let cached: Arc<dyn Store> = Arc::new(CachedStore::new(store.clone(), "/root/", vec!["/root/c/".into()]));
    reads_follow_writes_at_once(store.clone(), cached.clone()).await;
    transactions_appear_whole(store.clone(), cached.clone()).await;
    leases_expire_through_the_cache(store, cached).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_two_replicas() {
    let server = EtcdServer::start().await.unwrap();
    // Two independent connections and caches, as two API replicas would have.
    let a: Arc<dyn Store> = Arc::new(EtcdStore::connect(&[server.endpoint()]).await.unwrap());
    let b_inner: Arc<dyn Store> = Arc::new(EtcdStore::connect(&[server.endpoint()]).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(CachedStore::new(b_inner, "/root/", vec!["/root/c/".into()]));
    reads_follow_writes_at_once(a.clone(), b.clone()).await;
    transactions_appear_whole(a.clone(), b.clone()).await;
    leases_expire_through_the_cache(a, b).await;
}
