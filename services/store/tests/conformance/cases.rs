//! Key-value and transaction cases, run unchanged against every backend.

use trellis_store::{Compare, Op, StoreError, StoreExt, Txn};

use crate::backend::Backend;

fn put_op(key: &str, value: &[u8]) -> Op {
    Op::Put { key: key.to_owned(), value: value.to_vec(), lease: None }
}

/// Puts, gets and prefix ranges: revisions, metadata, lexical order and prefix isolation.
pub async fn get_put_range(backend: &mut dyn Backend) {
    let store = backend.store();
    let r0 = store.current_revision().await.unwrap();
    assert!(store.get("t/a").await.unwrap().is_none());

    let r1 = store.put("t/a", b"one".to_vec()).await.unwrap();
    assert_eq!(r1, r0 + 1, "every write bumps the revision by one");
    let kv = store.get("t/a").await.unwrap().unwrap();
    assert_eq!((kv.key.as_str(), kv.value.as_slice()), ("t/a", &b"one"[..]));
    assert_eq!((kv.create_revision, kv.mod_revision, kv.lease), (r1, r1, None));

    let r2 = store.put("t/a", b"two".to_vec()).await.unwrap();
    assert_eq!(r2, r1 + 1);
    let kv = store.get("t/a").await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r1, r2), "overwrite keeps create_revision");
    assert_eq!(kv.value, b"two");

    for key in ["t/c/1", "t/b", "t/ab", "u/a", "t", "t0"] {
        store.put(key, key.as_bytes().to_vec()).await.unwrap();
    }
    let current = store.current_revision().await.unwrap();
    assert_eq!(current, r2 + 6);

    let range = store.range("t/").await.unwrap();
    let keys: Vec<&str> = range.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["t/a", "t/ab", "t/b", "t/c/1"]);
    assert_eq!(range.revision, current);
    assert_eq!(range.kvs[0].value, b"two");

    let keys: Vec<String> = store.range("t/a").await.unwrap().kvs.into_iter().map(|kv| kv.key).collect();
    assert_eq!(keys, ["t/a", "t/ab"]);

    let empty = store.range("v/").await.unwrap();
    assert!(empty.kvs.is_empty());
    assert_eq!(empty.revision, current);

    let all: Vec<String> = store.range("").await.unwrap().kvs.into_iter().map(|kv| kv.key).collect();
    assert_eq!(all, ["t", "t/a", "t/ab", "t/b", "t/c/1", "t0", "u/a"]);
}

/// Compare-and-swap: create-if-absent, stale revisions, failed transactions write nothing.
pub async fn cas_conflicts(backend: &mut dyn Backend) {
    let store = backend.store();
    let create = |value: &[u8]| Txn {
        compares: vec![Compare::ModRevision { key: "cas/k".into(), revision: 0 }],
        success: vec![put_op("cas/k", value)],
    };
    let first = store.txn(create(b"v1")).await.unwrap();
    assert!(first.succeeded);
    let second = store.txn(create(b"v2")).await.unwrap();
    assert!(!second.succeeded, "create-if-absent must fail the second time");
    assert_eq!(second.revision, first.revision, "a failed txn does not bump the revision");
    assert_eq!(store.current_revision().await.unwrap(), first.revision);
    assert_eq!(store.get("cas/k").await.unwrap().unwrap().value, b"v1");

    let r2 = store.put("cas/k", b"v2".to_vec()).await.unwrap();
    let stale = store
        .txn(Txn {
            compares: vec![Compare::ModRevision { key: "cas/k".into(), revision: first.revision }],
            success: vec![put_op("cas/k", b"stale"), put_op("cas/other", b"x")],
        })
        .await
        .unwrap();
    assert!(!stale.succeeded);
    assert_eq!(stale.revision, r2);
    assert_eq!(store.get("cas/k").await.unwrap().unwrap().value, b"v2");
    assert!(store.get("cas/other").await.unwrap().is_none(), "failed txn wrote nothing");

    // One compare holds, one does not: still nothing is written.
    let mixed = store
        .txn(Txn {
            compares: vec![
                Compare::ModRevision { key: "cas/k".into(), revision: r2 },
                Compare::Exists { key: "cas/missing".into() },
            ],
            success: vec![put_op("cas/other", b"x")],
        })
        .await
        .unwrap();
    assert!(!mixed.succeeded);
    assert!(store.get("cas/other").await.unwrap().is_none());
    assert_eq!(store.current_revision().await.unwrap(), r2);

    // Fresh revision: every op of the success branch lands in one revision.
    let fresh = store
        .txn(Txn {
            compares: vec![
                Compare::ModRevision { key: "cas/k".into(), revision: r2 },
                Compare::Exists { key: "cas/k".into() },
            ],
            success: vec![put_op("cas/x1", b"1"), put_op("cas/x2", b"2"), Op::Delete { key: "cas/k".into() }],
        })
        .await
        .unwrap();
    assert!(fresh.succeeded);
    assert_eq!(fresh.revision, r2 + 1);
    for key in ["cas/x1", "cas/x2"] {
        assert_eq!(store.get(key).await.unwrap().unwrap().mod_revision, fresh.revision);
    }
    assert!(store.get("cas/k").await.unwrap().is_none());

    // A put to a lease that does not exist fails the transaction and writes nothing.
    let bogus = store
        .txn(Txn {
            compares: vec![],
            success: vec![
                put_op("cas/y", b"y"),
                Op::Put { key: "cas/z".into(), value: b"z".to_vec(), lease: Some(0x7fff_0000_1234) },
            ],
        })
        .await;
    assert!(matches!(bogus, Err(StoreError::LeaseNotFound(_))), "got {bogus:?}");
    assert!(store.get("cas/y").await.unwrap().is_none());
    assert_eq!(store.current_revision().await.unwrap(), fresh.revision);
}

/// Delete and delete-prefix: existence answers, one revision per transaction, isolation.
pub async fn delete_and_delete_prefix(backend: &mut dyn Backend) {
    let store = backend.store();
    for key in ["d/1", "d/2", "d/3/x", "dz", "e/1"] {
        store.put(key, b"v".to_vec()).await.unwrap();
    }
    let before = store.current_revision().await.unwrap();
    assert!(store.delete("d/1").await.unwrap());
    assert_eq!(store.current_revision().await.unwrap(), before + 1);
    assert!(!store.delete("d/1").await.unwrap(), "second delete finds nothing");
    assert_eq!(store.current_revision().await.unwrap(), before + 1);

    let outcome = store
        .txn(Txn { compares: vec![], success: vec![Op::DeletePrefix { prefix: "d/".into() }] })
        .await
        .unwrap();
    assert!(outcome.succeeded);
    assert_eq!(outcome.revision, before + 2, "a prefix delete is one revision");
    assert!(store.range("d/").await.unwrap().kvs.is_empty());
    assert!(store.get("dz").await.unwrap().is_some());
    assert!(store.get("e/1").await.unwrap().is_some());

    let nothing = store
        .txn(Txn { compares: vec![], success: vec![Op::DeletePrefix { prefix: "d/".into() }] })
        .await
        .unwrap();
    assert!(nothing.succeeded);
    assert_eq!(nothing.revision, before + 2, "deleting nothing does not bump the revision");
    assert_eq!(store.current_revision().await.unwrap(), before + 2);
}

/// 100 writers doing read-modify-write CAS loops on one counter: no update may be lost.
pub async fn concurrent_cas_counter(backend: &mut dyn Backend, label: &str) {
    const WRITERS: usize = 100;
    const INCREMENTS: usize = 3;
    let store = backend.store();
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut attempts = 0u64;
            for _ in 0..INCREMENTS {
                loop {
                    attempts += 1;
                    let current = store.get("counter").await.unwrap();
                    let (value, revision) = match &current {
                        Some(kv) => {
                            let text = std::str::from_utf8(&kv.value).unwrap();
                            (text.parse::<u64>().unwrap(), kv.mod_revision)
                        }
                        None => (0, 0),
                    };
                    let outcome = store
                        .txn(Txn {
                            compares: vec![Compare::ModRevision { key: "counter".into(), revision }],
                            success: vec![put_op("counter", (value + 1).to_string().as_bytes())],
                        })
                        .await
                        .unwrap();
                    if outcome.succeeded {
                        break;
                    }
                }
            }
            attempts
        }));
    }
    let mut attempts = 0;
    for task in tasks {
        attempts += task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let kv = store.get("counter").await.unwrap().unwrap();
    let total = (WRITERS * INCREMENTS) as u64;
    assert_eq!(std::str::from_utf8(&kv.value).unwrap(), total.to_string(), "lost update");
    let secs = elapsed.as_secs_f64();
    println!(
        "[{label}] {WRITERS} writers x {INCREMENTS} CAS increments: {total} commits, {attempts} \
         attempts (get+txn) in {secs:.2}s = {:.0} commits/s, {:.0} attempts/s",
        total as f64 / secs,
        attempts as f64 / secs,
    );
}
