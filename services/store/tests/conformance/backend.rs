//! The two backends under test, behind one small interface the cases are written against.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use trellis_store::embedded::{EmbeddedConfig, EmbeddedStore};
use trellis_store::etcd::EtcdStore;
use trellis_store::{Revision, Store};
use trellis_testkit::etcd::EtcdServer;

/// A running store plus the operations only a test needs.
#[async_trait]
pub trait Backend: Send {
    /// A handle to the store. Callers must drop their handles before [`Backend::restart`].
    fn store(&self) -> Arc<dyn Store>;

    /// Stops the backend completely (file closed / server process killed) and brings it back
    /// on the same data.
    async fn restart(&mut self);

    /// Compacts history so a watch from before `revision` fails.
    async fn compact(&self, revision: Revision);
}

/// The embedded store in a temporary file.
pub struct Embedded {
    _dir: tempfile::TempDir,
    path: PathBuf,
    config: EmbeddedConfig,
    store: Option<Arc<EmbeddedStore>>,
}

impl Embedded {
    /// A fresh store. The broadcast buffer is tiny so the suite exercises the slow-watcher path
    /// (falling back to the log) as well as the live path.
    pub fn new() -> Self {
        Self::with_config(EmbeddedConfig { watch_buffer: 4, ..EmbeddedConfig::default() })
    }

    pub fn with_config(config: EmbeddedConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = EmbeddedStore::open_with(&path, config.clone()).unwrap();
        Self { _dir: dir, path, config, store: Some(Arc::new(store)) }
    }

    fn embedded(&self) -> &Arc<EmbeddedStore> {
        self.store.as_ref().unwrap()
    }
}

#[async_trait]
impl Backend for Embedded {
    fn store(&self) -> Arc<dyn Store> {
        self.embedded().clone()
    }

    async fn restart(&mut self) {
        let store = self.store.take().unwrap();
        assert_eq!(Arc::strong_count(&store), 1, "test still holds a store handle across restart");
        drop(store);
        let store = EmbeddedStore::open_with(&self.path, self.config.clone()).unwrap();
        self.store = Some(Arc::new(store));
    }

    async fn compact(&self, revision: Revision) {
        self.embedded().compact(revision).await.unwrap();
    }
}

/// A real etcd process started for this test.
pub struct Etcd {
    server: EtcdServer,
    store: Arc<EtcdStore>,
}

impl Etcd {
    pub async fn new() -> Self {
        let server = EtcdServer::start().await.unwrap();
        let store = Arc::new(EtcdStore::connect(&[server.endpoint()]).await.unwrap());
        Self { server, store }
    }
}

#[async_trait]
impl Backend for Etcd {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn restart(&mut self) {
        self.server.restart().await.unwrap();
        self.store = Arc::new(EtcdStore::connect(&[self.server.endpoint()]).await.unwrap());
    }

    async fn compact(&self, revision: Revision) {
        self.store.compact(revision).await.unwrap();
    }
}
