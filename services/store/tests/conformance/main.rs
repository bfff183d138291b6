//! One conformance suite for every `Store` backend.
//!
//! Each case is an `async fn(&mut dyn Backend)` written once; the `conformance!` macro turns it
//! into one `#[tokio::test]` per backend. The etcd tests each start their own etcd process
//! through `trellis-testkit` and stop it when the test ends. Embedded-only cases (automatic
//! history trimming, closing and reopening the file) are at the bottom.

mod backend;
mod cases;
mod watch_cases;

use std::time::Duration;

use backend::{Backend, Embedded, Etcd};

/// Upper bound for one case, so a hang fails the test instead of stalling the run.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

async fn run<B: Backend>(mut backend: B, case: impl AsyncFnOnce(&mut dyn Backend)) {
    tokio::time::timeout(CASE_TIMEOUT, case(&mut backend)).await.expect("conformance case timed out");
}

macro_rules! conformance {
    ($($name:ident => $case:expr;)*) => {
        mod embedded {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    run(Embedded::new(), $case).await;
                }
            )*
        }
        mod etcd {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    run(Etcd::new().await, $case).await;
                }
            )*
        }
    };
}

conformance! {
    get_put_range => cases::get_put_range;
    cas_conflicts => cases::cas_conflicts;
    delete_and_delete_prefix => cases::delete_and_delete_prefix;
    concurrent_cas_counter => async |b: &mut dyn Backend| {
        cases::concurrent_cas_counter(b, module_path!()).await
    };
    watch_from_revision => watch_cases::watch_from_revision;
    watch_resume_after_restart => watch_cases::watch_resume_after_restart;
    slow_watcher_and_concurrent_writes => watch_cases::slow_watcher_and_concurrent_writes;
    lease_expiry => watch_cases::lease_expiry;
    lease_revoke => watch_cases::lease_revoke;
    keep_alive_extends => watch_cases::keep_alive_extends;
    lease_survives_restart => watch_cases::lease_survives_restart;
    compacted_watch => watch_cases::compacted_watch;
}

/// Cases that only make sense for the embedded store.
mod embedded_only {
    use std::sync::Arc;

    use futures::StreamExt;
    use trellis_store::embedded::{EmbeddedConfig, EmbeddedStore};
    use trellis_store::{Store, StoreError, StoreExt};

    use super::backend::{Backend, Embedded};
    use super::watch_cases::watch_error;

    /// The log keeps only the configured history; older watches fail, recent ones work.
    #[tokio::test]
    async fn history_is_trimmed_automatically() {
        let backend = Embedded::with_config(EmbeddedConfig { history: 10, ..Default::default() });
        let store = backend.store();
        for i in 0..30u8 {
            store.put(&format!("h/{i:02}"), vec![i]).await.unwrap();
        }
        match watch_error(&store, "h/", 1).await {
            StoreError::Compacted { requested, compacted } => {
                assert_eq!(requested, 1);
                assert!((20..=21).contains(&compacted), "compacted at {compacted}");
            }
            other => panic!("expected Compacted, got {other}"),
        }
        let mut stream = store.watch("h/", 25).await.unwrap();
        for i in 24..30 {
            let event = stream.next().await.unwrap().unwrap();
            assert_eq!(event.kv.key, format!("h/{i:02}"));
        }
    }

    /// Closing the store ends its watches with an error, and the file can be reopened at once.
    #[tokio::test]
    async fn close_ends_watches_and_releases_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = Arc::new(EmbeddedStore::open(&path).unwrap());
        store.put("a", b"1".to_vec()).await.unwrap();
        let mut stream = store.watch("", 1).await.unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap().kv.key, "a");
        drop(store);
        let end = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next()).await;
        assert!(matches!(end, Ok(Some(Err(StoreError::Unavailable { .. })))), "got {end:?}");

        let reopened = EmbeddedStore::open(&path).unwrap();
        assert_eq!(reopened.current_revision().await.unwrap(), 1);
    }
}

/// Cases that only make sense for etcd.
mod etcd_only {
    use std::time::Duration;

    use futures::StreamExt;
    use trellis_store::etcd::EtcdStore;
    use trellis_store::{Store, StoreError, StoreExt};
    use trellis_testkit::etcd::EtcdServer;

    /// A watch that is open while the server is killed and restarted re-subscribes from the
    /// next revision it has not delivered: nothing missed, nothing repeated.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_watch_survives_server_restart() {
        let mut server = EtcdServer::start().await.unwrap();
        let store = EtcdStore::connect(&[server.endpoint()]).await.unwrap();
        let first = store.put("rw/1", b"1".to_vec()).await.unwrap();
        let mut stream = store.watch("rw/", first).await.unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap().kv.mod_revision, first);

        server.restart().await.unwrap();
        let pid = server.pid().unwrap();
        let data_dir = server.data_dir();
        // The client reconnects lazily; writes are not retried by the store, so retry here.
        let second = loop {
            match store.put("rw/2", b"2".to_vec()).await {
                Ok(revision) => break revision,
                Err(StoreError::Unavailable { .. }) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("put after restart: {err}"),
            }
        };
        assert_eq!(second, first + 1, "revision survives the restart");
        let event = tokio::time::timeout(Duration::from_secs(20), stream.next()).await;
        let event = event.unwrap().unwrap().unwrap();
        assert_eq!((event.kv.key.as_str(), event.kv.mod_revision), ("rw/2", second));
        let extra = tokio::time::timeout(Duration::from_millis(400), stream.next()).await;
        assert!(extra.is_err(), "unexpected item after reconnect: {extra:?}");
        drop(stream);
        drop(server);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "etcd process left behind");
        assert!(!data_dir.exists(), "etcd data directory left behind");
    }
}
