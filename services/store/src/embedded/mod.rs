//! The embedded backend: a persistent single-file store on `redb` with etcd's semantics.
//!
//! Layout:
//! - `tables`: the on-disk tables and read-side queries (get, prefix range, log replay).
//! - `apply`: how transactions, leases and compaction change the tables in one write
//!   transaction.
//! - `writer`: the single writer thread (group commit, lease expiry, broadcast of commits).
//! - `watch`: watch streams that replay the log and then follow live commits.
//!
//! Guarantees: a transaction's compares, writes, event-log entries and revision bump commit
//! together in one redb write transaction with [`redb::Durability::Immediate`], so a write a
//! caller was told about survives a crash and a watch resuming after a restart sees every
//! revision exactly once. The log keeps the last [`EmbeddedConfig::history`] revisions; a watch
//! from an older revision fails with [`StoreError::Compacted`].
//!
//! Not for: sharing one file between processes (redb locks the file; run etcd for that).

mod apply;
mod tables;
mod watch;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, DatabaseError, ReadableDatabase};
use tokio::sync::{broadcast, oneshot};

use self::apply::{Committed, WriteTables};
use self::tables::{db_err, read_key, read_meta, read_prefix};
use self::writer::{Command, WriterConfig};
use crate::{KeyValue, LeaseId, Range, Revision, Store, StoreError, Txn, TxnOutcome, WatchStream};

/// Tuning for [`EmbeddedStore`].
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// How many recent revisions the event log keeps for watches to resume from.
    pub history: u64,
    /// How often lease deadlines are checked; a lease outlives its TTL by at most this much.
    pub lease_check_interval: Duration,
    /// How many commits the live broadcast buffers per watcher before a slow watcher falls back
    /// to re-reading the log.
    pub watch_buffer: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self { history: 100_000, lease_check_interval: Duration::from_millis(100), watch_buffer: 1024 }
    }
}

/// A persistent, single-node [`Store`] in one redb file.
///
/// Cheap to share behind an `Arc`. Dropping the last handle stops the writer thread and closes
/// the file, so the same path can be opened again.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

/// State shared by the store handle, its watchers and its read tasks.
pub(crate) struct Inner {
    db: Arc<Database>,
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    events: broadcast::Sender<Arc<Vec<Committed>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

/// How long `open` waits for a handle to the same file that is still closing in this process.
const OPEN_RETRY: Duration = Duration::from_secs(2);

impl EmbeddedStore {
    /// Opens (creating if missing) the store at `path` with default settings.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, EmbeddedConfig::default())
    }

    /// Opens (creating if missing) the store at `path`.
    ///
    /// Blocks while redb opens the file (and repairs it after a crash).
    pub fn open_with(path: &Path, config: EmbeddedConfig) -> Result<Self, StoreError> {
        let db = Arc::new(open_database(path)?);
        // Create every table up front so readers never meet a missing one.
        let tx = db.begin_write().map_err(db_err)?;
        WriteTables::open(&tx).map_err(db_err)?;
        tx.commit().map_err(db_err)?;

        let (commands_tx, commands_rx) = mpsc::channel();
        let (events, _) = broadcast::channel(config.watch_buffer.max(1));
        let writer_config =
            WriterConfig { history: config.history, lease_check_interval: config.lease_check_interval };
        let writer = {
            let db = Arc::clone(&db);
            let events = events.clone();
            std::thread::Builder::new()
                .name("store-writer".to_owned())
                .spawn(move || writer::run(db, commands_rx, events, writer_config))
                .map_err(|err| StoreError::Internal {
                    message: format!("cannot start the embedded store writer: {err}"),
                })?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                commands: Mutex::new(Some(commands_tx)),
                events,
                writer: Mutex::new(Some(writer)),
                path: path.to_owned(),
            }),
        })
    }

    /// Drops log entries older than `revision`; a watch from before it then fails with
    /// [`StoreError::Compacted`]. Compacting to a revision at or before the current compaction
    /// point does nothing.
    pub async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.command(|reply| Command::Compact(revision, reply)).await
    }

    /// Sends a command to the writer and waits for its answer.
    async fn command<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let sent = match self.inner.commands.lock() {
            Ok(commands) => commands.as_ref().is_some_and(|tx| tx.send(make(reply)).is_ok()),
            Err(_) => false,
        };
        if !sent {
            return Err(StoreError::Unavailable { message: "embedded store writer stopped".into() });
        }
        answer.await.map_err(|_| StoreError::Internal {
            message: "embedded store writer dropped a request".to_owned(),
        })?
    }

    /// Runs a read against a fresh snapshot on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.inner.db);
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_read().map_err(db_err)?;
            read(&tx).map_err(db_err)
        })
        .await
        .map_err(|err| StoreError::Internal { message: format!("embedded store read task: {err}") })?
    }
}

/// Opens the redb file, waiting briefly if an earlier handle in this process is still closing
/// (its writer thread or a read task may hold the file for a moment after the drop).
fn open_database(path: &Path) -> Result<Database, StoreError> {
    let started = std::time::Instant::now();
    loop {
        match Database::create(path) {
            Ok(db) => return Ok(db),
            Err(DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < OPEN_RETRY => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => return Err(db_err(err)),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop; joining it releases its database handle so
        // the file can be reopened as soon as the last store handle is gone.
        if let Ok(mut commands) = self.commands.lock() {
            commands.take();
        }
        let writer = self.writer.lock().ok().and_then(|mut writer| writer.take());
        if let Some(writer) = writer
            && writer.join().is_err()
        {
            tracing::error!("embedded store writer thread panicked");
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_owned();
        self.read(move |tx| read_key(tx, &key)).await
    }

    async fn range(&self, prefix: &str) -> Result<Range, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |tx| {
            let revision = read_meta(tx)?.revision;
            Ok(Range { kvs: read_prefix(tx, &prefix)?, revision })
        })
        .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        self.command(|reply| Command::Txn(txn, reply)).await
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream, StoreError> {
        // Subscribe before reading the snapshot: see the `watch` module for why.
        let live = self.inner.events.subscribe();
        let meta = self.read(read_meta).await?;
        let next_revision = if from_revision <= 0 {
            meta.revision + 1
        } else if from_revision < meta.compact_revision {
            return Err(StoreError::Compacted { requested: from_revision, compacted: meta.compact_revision });
        } else {
            from_revision
        };
        Ok(watch::stream(Arc::downgrade(&self.inner), live, prefix.to_owned(), next_revision))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.command(|reply| Command::Grant(ttl, reply)).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.command(|reply| Command::KeepAlive(lease, reply)).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.command(|reply| Command::Revoke(lease, reply)).await
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.read(|tx| Ok(read_meta(tx)?.revision)).await
    }
}
