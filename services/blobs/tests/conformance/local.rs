//! The local backend's harness, plus checks only it can make (file modes, no leftovers).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use trellis_blobs::BlobStore;
use trellis_blobs::local::LocalBlobStore;

use crate::suite::{Harness, data};

pub async fn harness(_case: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(&dir.path().join("blobs")).unwrap();
    let paths = store.clone();
    Harness {
        backend: "local",
        store: Arc::new(store),
        corrupt: Box::new(move |id, size| {
            let path = paths.path_of(id);
            let mut bytes = fs::read(&path).unwrap();
            assert_eq!(bytes.len() as u64, size);
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x01;
            fs::write(&path, bytes).unwrap();
        }),
        _cleanup: Box::new(dir),
    }
}

#[tokio::test]
async fn files_are_private_and_no_temporary_files_remain() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(dir.path()).unwrap();
    let id = store.put(data(1, 4096)).await.unwrap();
    let path = store.path_of(&id);
    assert_eq!(path.parent().unwrap().file_name().unwrap().to_str().unwrap(), &id.as_str()[..2]);
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let names: Vec<_> =
        fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from(id.as_str())]);
}

#[tokio::test]
async fn strays_are_not_listed_and_a_truncated_blob_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(dir.path()).unwrap();
    let bytes = data(2, 10_000);
    let id = store.put(bytes.clone()).await.unwrap();
    let fan = store.path_of(&id).parent().unwrap().to_owned();
    fs::write(fan.join(".tmp-leftover"), b"x").unwrap();
    fs::write(fan.join(id.as_str().to_uppercase()), b"x").unwrap();
    fs::write(dir.path().join("README"), b"x").unwrap();
    assert_eq!(store.list().await.unwrap(), vec![id.clone()]);
    // A file cut short (say by a disk fault) is detected on read and repaired by the next put.
    fs::write(store.path_of(&id), &bytes[..100]).unwrap();
    assert!(store.get(&id).await.is_err());
    store.put(bytes.clone()).await.unwrap();
    assert_eq!(store.get(&id).await.unwrap().unwrap(), bytes);
}

#[tokio::test]
async fn reopening_sees_the_same_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let id = LocalBlobStore::open(dir.path()).unwrap().put(data(3, 777)).await.unwrap();
    let again = LocalBlobStore::open(dir.path()).unwrap();
    assert_eq!(again.list().await.unwrap(), vec![id.clone()]);
    assert_eq!(again.get(&id).await.unwrap().unwrap(), data(3, 777));
}
