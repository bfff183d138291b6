//! The same records in a real etcd, across an etcd restart.

use std::sync::Arc;

use trellis_ingress_controller::{IngressConfig, IngressProtocol};
use trellis_store::Store;
use trellis_store::etcd::EtcdStore;
use trellis_testkit::etcd::EtcdServer;

use crate::support::*;

#[tokio::test]
async fn routes_from_etcd_survive_an_etcd_restart() {
    init_logs();
    let mut etcd = EtcdServer::start().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(EtcdStore::connect(&[etcd.endpoint()]).await.unwrap());
    let (running, cancel) = start(options(store.clone(), Some(IngressConfig::default()))).await;
    let ssh = line_echo("ssh").await;

    let first = node_route(IngressProtocol::Tcp, "a", ssh.port(), free_port());
    let revision = write_route(store.as_ref(), &first).await;
    patiently("the route", running.synced(revision)).await.unwrap();
    let gateway = running.node_addr(&first).unwrap();
    assert_eq!(ask_once(gateway, "hi").await.as_deref(), Some("ssh:hi"));

    etcd.restart().await.unwrap();
    // The connection to the node outlives the store's restart.
    assert_eq!(ask_once(gateway, "still").await.as_deref(), Some("ssh:still"));

    let second = node_route(IngressProtocol::Tcp, "b", ssh.port(), free_port());
    write_route(store.as_ref(), &second).await;
    let revision = delete_route(store.as_ref(), &first).await;
    patiently("the changes after the restart", running.synced(revision)).await.unwrap();
    assert!(running.node_addr(&first).is_none());
    let gateway = running.node_addr(&second).unwrap();
    assert_eq!(ask_once(gateway, "again").await.as_deref(), Some("ssh:again"));

    cancel.cancel();
    patiently("the controller to stop", running.stopped()).await;
    etcd.stop().await.unwrap();
}
