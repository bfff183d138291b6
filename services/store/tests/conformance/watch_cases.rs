//! Watch, lease, restart and compaction cases, run unchanged against every backend.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use trellis_store::{EventKind, Op, Revision, Store, StoreError, StoreExt, Txn, WatchEvent, WatchStream};

use crate::backend::Backend;

/// How long a test waits for an event it expects.
const PATIENCE: Duration = Duration::from_secs(15);

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(PATIENCE, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(err))) => panic!("watch failed: {err}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {PATIENCE:?}"),
    }
}

/// Asserts nothing arrives for a while (no duplicate or stray events).
async fn assert_quiet(stream: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(400), stream.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

fn summary(event: &WatchEvent) -> (EventKind, String, Revision) {
    (event.kind, event.kv.key.clone(), event.kv.mod_revision)
}

async fn put_with_lease(store: &Arc<dyn Store>, key: &str, lease: i64) -> Revision {
    let outcome = store
        .txn(Txn {
            compares: vec![],
            success: vec![Op::Put { key: key.into(), value: b"v".to_vec(), lease: Some(lease) }],
        })
        .await
        .unwrap();
    assert!(outcome.succeeded);
    outcome.revision
}

/// A watch from revision N replays exactly the events at or after N, then follows live ones.
pub async fn watch_from_revision(backend: &mut dyn Backend) {
    let store = backend.store();
    store.put("w/a", b"1".to_vec()).await.unwrap();
    let n = store.put("w/b", b"2".to_vec()).await.unwrap();
    store.put("other/x", b"x".to_vec()).await.unwrap();
    let deleted = store
        .txn(Txn { compares: vec![], success: vec![Op::Delete { key: "w/a".into() }] })
        .await
        .unwrap()
        .revision;
    let pair = store
        .txn(Txn {
            compares: vec![],
            success: vec![
                Op::Put { key: "w/c".into(), value: b"3".to_vec(), lease: None },
                Op::Put { key: "w/d".into(), value: b"4".to_vec(), lease: None },
            ],
        })
        .await
        .unwrap()
        .revision;

    let mut from_n = store.watch("w/", n).await.unwrap();
    let mut from_now = store.watch("w/", 0).await.unwrap();
    let expected = [
        (EventKind::Put, "w/b".to_owned(), n),
        (EventKind::Delete, "w/a".to_owned(), deleted),
        (EventKind::Put, "w/c".to_owned(), pair),
        (EventKind::Put, "w/d".to_owned(), pair),
    ];
    for want in &expected {
        assert_eq!(&summary(&next_event(&mut from_n).await), want);
    }
    let first = next_event_after_live(&store, &mut from_n).await;
    assert_eq!(first.kv.value, b"live");
    assert_eq!(first.kv.create_revision, first.kv.mod_revision);
    let live = next_event(&mut from_now).await;
    assert_eq!(summary(&live), summary(&first), "a watch from now sees only new events");
    assert_quiet(&mut from_n).await;
    assert_quiet(&mut from_now).await;
}

async fn next_event_after_live(store: &Arc<dyn Store>, stream: &mut WatchStream) -> WatchEvent {
    store.put("other/y", b"y".to_vec()).await.unwrap();
    store.put("w/e", b"live".to_vec()).await.unwrap();
    next_event(stream).await
}

/// A watch resumed from a stored revision after the backend restarted misses and repeats
/// nothing.
pub async fn watch_resume_after_restart(backend: &mut dyn Backend) {
    let store = backend.store();
    let mut revisions = Vec::new();
    for i in 1..=5 {
        revisions.push(store.put(&format!("r/{i}"), vec![i]).await.unwrap());
    }
    // What a consumer would have persisted: it processed r/1 and r/2.
    let resume_from = revisions[2];
    drop(store);
    backend.restart().await;

    let store = backend.store();
    assert_eq!(store.current_revision().await.unwrap(), revisions[4], "revision survives restart");
    for i in 6..=7 {
        revisions.push(store.put(&format!("r/{i}"), vec![i]).await.unwrap());
    }
    let mut stream = store.watch("r/", resume_from).await.unwrap();
    for (i, revision) in revisions.iter().enumerate().skip(2) {
        let event = next_event(&mut stream).await;
        assert_eq!(summary(&event), (EventKind::Put, format!("r/{}", i + 1), *revision));
        assert_eq!(event.kv.value, vec![u8::try_from(i + 1).unwrap()]);
    }
    assert_quiet(&mut stream).await;
}

/// A slow consumer gets every event in order, and a watch started while writes are in flight
/// sees each write exactly once.
pub async fn slow_watcher_and_concurrent_writes(backend: &mut dyn Backend) {
    let store = backend.store();
    let mut slow = store.watch("s/", 0).await.unwrap();
    let mut expected = vec![store.put("s/000", vec![1]).await.unwrap()];
    // Take one event so the watcher is following live commits, then fall far behind.
    assert_eq!(summary(&next_event(&mut slow).await), (EventKind::Put, "s/000".into(), expected[0]));
    for i in 1..200 {
        expected.push(store.put(&format!("s/{i:03}"), vec![1]).await.unwrap());
    }
    for (i, revision) in expected.iter().enumerate().skip(1) {
        let event = next_event(&mut slow).await;
        assert_eq!(summary(&event), (EventKind::Put, format!("s/{i:03}"), *revision));
    }
    assert_quiet(&mut slow).await;

    let start = store.current_revision().await.unwrap() + 1;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                store.put(&format!("c/{i:03}"), vec![1]).await.unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut stream = store.watch("c/", start).await.unwrap();
    for i in 0..300 {
        let event = next_event(&mut stream).await;
        assert_eq!(event.kv.key, format!("c/{i:03}"));
        assert_eq!(event.kv.mod_revision, start + i64::from(i));
    }
    writer.await.unwrap();
    assert_quiet(&mut stream).await;
}

/// An expired lease deletes its keys (with delete events) and cannot be renewed or used.
pub async fn lease_expiry(backend: &mut dyn Backend) {
    let store = backend.store();
    let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    put_with_lease(&store, "l/a", lease).await;
    store.put("l/b", b"v".to_vec()).await.unwrap();
    assert_eq!(store.get("l/a").await.unwrap().unwrap().lease, Some(lease));

    let mut stream = store.watch("l/", 0).await.unwrap();
    let event = next_event(&mut stream).await;
    assert_eq!((event.kind, event.kv.key.as_str()), (EventKind::Delete, "l/a"));
    assert!(store.get("l/a").await.unwrap().is_none());
    assert!(store.get("l/b").await.unwrap().is_some(), "keys without the lease stay");
    assert!(matches!(store.keep_alive(lease).await, Err(StoreError::LeaseNotFound(_))));
    let reuse = store
        .txn(Txn {
            compares: vec![],
            success: vec![Op::Put { key: "l/c".into(), value: vec![], lease: Some(lease) }],
        })
        .await;
    assert!(matches!(reuse, Err(StoreError::LeaseNotFound(_))), "got {reuse:?}");
    assert_quiet(&mut stream).await;
}

/// Revoking a lease deletes all its keys at once; unknown leases are reported.
pub async fn lease_revoke(backend: &mut dyn Backend) {
    let store = backend.store();
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    put_with_lease(&store, "v/a", lease).await;
    put_with_lease(&store, "v/b", lease).await;
    store.put("v/c", b"v".to_vec()).await.unwrap();
    let mut stream = store.watch("v/", 0).await.unwrap();
    store.revoke_lease(lease).await.unwrap();

    let first = next_event(&mut stream).await;
    let second = next_event(&mut stream).await;
    let mut keys = vec![first.kv.key.clone(), second.kv.key.clone()];
    keys.sort();
    assert_eq!(keys, ["v/a", "v/b"]);
    assert_eq!((first.kind, second.kind), (EventKind::Delete, EventKind::Delete));
    assert_eq!(first.kv.mod_revision, second.kv.mod_revision, "one revision for the revoke");
    assert_eq!(store.current_revision().await.unwrap(), first.kv.mod_revision);
    let left: Vec<String> = store.range("v/").await.unwrap().kvs.into_iter().map(|kv| kv.key).collect();
    assert_eq!(left, ["v/c"]);

    assert!(matches!(store.revoke_lease(lease).await, Err(StoreError::LeaseNotFound(_))));
    assert!(matches!(store.keep_alive(lease).await, Err(StoreError::LeaseNotFound(_))));
    let bogus = 0x7fff_0000_4321;
    assert!(matches!(store.keep_alive(bogus).await, Err(StoreError::LeaseNotFound(_))));
    assert!(matches!(store.revoke_lease(bogus).await, Err(StoreError::LeaseNotFound(_))));
    assert_quiet(&mut stream).await;
}

/// Renewing a lease keeps its keys past the original TTL; once renewals stop, they go.
pub async fn keep_alive_extends(backend: &mut dyn Backend) {
    let store = backend.store();
    let lease = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    put_with_lease(&store, "k/a", lease).await;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(4500) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        store.keep_alive(lease).await.unwrap();
    }
    assert!(store.get("k/a").await.unwrap().is_some(), "renewed lease kept its key past its TTL");

    let mut stream = store.watch("k/", 0).await.unwrap();
    let event = next_event(&mut stream).await;
    assert_eq!((event.kind, event.kv.key.as_str()), (EventKind::Delete, "k/a"));
    assert!(store.get("k/a").await.unwrap().is_none());
}

/// Leases are persistent: a long lease still works after a restart, a short one still expires.
pub async fn lease_survives_restart(backend: &mut dyn Backend) {
    let store = backend.store();
    let long = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let short = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    put_with_lease(&store, "p/long", long).await;
    put_with_lease(&store, "p/short", short).await;
    drop(store);
    backend.restart().await;

    let store = backend.store();
    store.keep_alive(long).await.unwrap();
    assert_eq!(store.get("p/long").await.unwrap().unwrap().lease, Some(long));
    let fresh = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    assert_ne!(fresh, long, "lease ids are not reused after a restart");
    assert_ne!(fresh, short);

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while store.get("p/short").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "short lease never expired after restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store.get("p/long").await.unwrap().is_some());
    store.revoke_lease(long).await.unwrap();
    assert!(store.get("p/long").await.unwrap().is_none());
}

/// A watch from a compacted revision fails with `Compacted`; one from the compaction point
/// works.
pub async fn compacted_watch(backend: &mut dyn Backend) {
    let store = backend.store();
    let mut revisions = Vec::new();
    for i in 0..10 {
        revisions.push(store.put(&format!("cw/{i}"), vec![i]).await.unwrap());
    }
    let point = revisions[5];
    backend.compact(point).await;

    match watch_error(&store, "cw/", revisions[1]).await {
        StoreError::Compacted { requested, compacted } => {
            assert_eq!(requested, revisions[1]);
            assert_eq!(compacted, point);
        }
        other => panic!("expected Compacted, got {other}"),
    }
    let mut stream = store.watch("cw/", point).await.unwrap();
    for (i, revision) in revisions.iter().enumerate().skip(5) {
        assert_eq!(summary(&next_event(&mut stream).await), (EventKind::Put, format!("cw/{i}"), *revision));
    }
    assert_quiet(&mut stream).await;
}

/// The error a watch reports, either from `watch` itself or as its first item.
pub async fn watch_error(store: &Arc<dyn Store>, prefix: &str, from: Revision) -> StoreError {
    match store.watch(prefix, from).await {
        Err(err) => err,
        Ok(mut stream) => match tokio::time::timeout(PATIENCE, stream.next()).await {
            Ok(Some(Err(err))) => err,
            other => panic!("expected a watch error, got {other:?}"),
        },
    }
}
