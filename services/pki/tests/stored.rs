//! The CA is created once and shared through the store, also when replicas race to create it.

use std::sync::Arc;

use trellis_pki::{CA_KEY, Pki, client_tls_config};
use trellis_store::embedded::EmbeddedStore;
use trellis_store::etcd::EtcdStore;
use trellis_store::{Store, StoreExt};
use trellis_testkit::etcd::EtcdServer;

async fn replicas_share_one_ca(stores: Vec<Arc<dyn Store>>) {
    let created = join_spawned(stores.iter().map(|s| {
        let s = s.clone();
        tokio::spawn(async move { Pki::load_or_create(s.as_ref()).await.unwrap() })
    }))
    .await;
    let first = created[0].ca_pem().to_owned();
    assert!(first.contains("BEGIN CERTIFICATE"));
    assert!(created.iter().all(|p| p.ca_pem() == first), "every replica uses the CA that won the race");
    let reloaded = Pki::load_or_create(stores[0].as_ref()).await.unwrap();
    assert_eq!(reloaded.ca_pem(), first);

    // A certificate issued by one replica validates against another replica's CA copy.
    let cert = created[1].issue_client_cert("portal").unwrap();
    client_tls_config(created[0].ca_pem(), &cert, "alpha").unwrap();
}

async fn join_spawned<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_replicas_share_one_ca() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
    replicas_share_one_ca(vec![store.clone(); 8]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_replicas_share_one_ca() {
    let server = EtcdServer::start().await.unwrap();
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..6 {
        stores.push(Arc::new(EtcdStore::connect(&[server.endpoint()]).await.unwrap()));
    }
    replicas_share_one_ca(stores).await;
}

#[tokio::test]
async fn a_corrupt_stored_ca_is_an_error_not_a_new_ca() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
    store.put(CA_KEY, b"{\"cert_pem\":\"x\",\"key_pem\":\"y\",\"created\":0}".to_vec()).await.unwrap();
    let err = Pki::load_or_create(&store).await.unwrap_err();
    assert!(err.to_string().contains("portal CA"), "{err}");
    store.put(CA_KEY, b"nonsense".to_vec()).await.unwrap();
    let err = Pki::load_or_create(&store).await.unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
}
