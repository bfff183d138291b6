//! The RADOS backend's harness: one pool per case, deleted afterwards, on the cluster that
//! `TRELLIS_CEPH_CONF` names. Missing configuration is a failure, not a skip: whoever built with
//! `--features rados` asked for these tests.

use std::path::PathBuf;
use std::sync::Arc;

use ceph::ceph::connect_to_ceph;
use trellis_blobs::BlobStore;
use trellis_blobs::rados::RadosBlobStore;

use crate::suite::{Harness, data};

fn conf() -> PathBuf {
    match std::env::var_os("TRELLIS_CEPH_CONF") {
        Some(c) if !c.is_empty() => PathBuf::from(c),
        _ => panic!(
            "TRELLIS_CEPH_CONF is not set, but trellis-blobs was built with --features rados, whose \
             tests need a running Ceph cluster. Run services/blobs/tests/run-rados.sh (it starts one), \
             or point TRELLIS_CEPH_CONF at a ceph.conf, or build without --features rados."
        ),
    }
}

fn user() -> String {
    std::env::var("TRELLIS_CEPH_USER").unwrap_or_else(|_| "admin".to_owned())
}

/// Deletes the case's pool when the case ends, passed or failed.
struct PoolGuard {
    conf: PathBuf,
    pool: String,
}

impl Drop for PoolGuard {
    fn drop(&mut self) {
        let conf = self.conf.to_str().unwrap().to_owned();
        match connect_to_ceph(&user(), &conf).and_then(|r| r.rados_delete_pool(&self.pool)) {
            Ok(()) => {}
            Err(e) => eprintln!("cannot delete test pool {}: {e}", self.pool),
        }
    }
}

async fn connect(pool: String) -> RadosBlobStore {
    let conf = conf();
    tokio::task::spawn_blocking(move || RadosBlobStore::connect(&conf, &user(), &pool))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot connect to the cluster of TRELLIS_CEPH_CONF: {e:?}"))
}

pub async fn harness(case: &str) -> Harness {
    let conf = conf();
    let pool = format!("trellis-test-{}-{case}", std::process::id());
    let store = connect(pool.clone()).await;
    let objects = store.clone();
    let (corrupt_conf, corrupt_pool) = (conf.clone(), pool.clone());
    Harness {
        backend: "rados",
        store: Arc::new(store),
        corrupt: Box::new(move |id, size| {
            // Overwrite one byte in the middle of the first part object, behind the store's back.
            let part = &objects.object_names(id, size)[1];
            let rados = connect_to_ceph(&user(), corrupt_conf.to_str().unwrap()).unwrap();
            let io = rados.get_rados_ioctx(&corrupt_pool).unwrap();
            let offset = size.min(1 << 20) / 2;
            let mut byte = Vec::with_capacity(1);
            io.rados_object_read(part, &mut byte, offset).unwrap();
            assert_eq!(byte.len(), 1, "part object {part} is not where the layout says");
            io.rados_object_write(part, &[byte[0] ^ 0x01], offset).unwrap();
        }),
        _cleanup: Box::new(PoolGuard { conf, pool }),
    }
}

/// The pool is created on first use, and blobs are visible through a second connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_sees_the_blobs() {
    let h = harness("second_connection").await;
    let id = h.store.put(data(1, 1000)).await.unwrap();
    let pool = format!("trellis-test-{}-second_connection", std::process::id());
    let other = connect(pool).await;
    assert_eq!(other.list().await.unwrap(), vec![id.clone()]);
    assert_eq!(other.get(&id).await.unwrap().unwrap(), data(1, 1000));
    assert_eq!(other.pool(), format!("trellis-test-{}-second_connection", std::process::id()));
}

/// A missing part is reported as corruption, and delete still cleans up the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_part_is_corruption() {
    let h = harness("missing_part").await;
    let size = (64 << 20) + 10;
    let store = connect(format!("trellis-test-{}-missing_part", std::process::id())).await;
    let id = store.put(data(2, size)).await.unwrap();
    let names = store.object_names(&id, size as u64);
    assert_eq!(names.len(), 3, "head and two parts");
    let rados = connect_to_ceph(&user(), conf().to_str().unwrap()).unwrap();
    let io = rados.get_rados_ioctx(store.pool()).unwrap();
    io.rados_object_remove(&names[2]).unwrap();
    let err = store.get(&id).await.unwrap_err();
    assert!(matches!(err, trellis_blobs::BlobError::Corrupt { .. }), "{err:?}");
    assert!(store.delete(&id).await.unwrap());
    let mut left = Vec::new();
    for name in &names {
        if io.rados_object_stat(name).is_ok() {
            left.push(name.clone());
        }
    }
    assert!(left.is_empty(), "objects left after delete: {left:?}");
    drop(h);
}
