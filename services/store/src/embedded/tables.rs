//! The on-disk layout of the embedded store and the read-side queries over it.
//!
//! Every table lives in one redb file, so one write transaction covers the key space, the event
//! log, the revision counter and the leases together: that is what makes a transaction, its
//! events and its revision bump atomic.

use redb::{ReadTransaction, ReadableTable, TableDefinition};

use crate::{EventKind, KeyValue, Revision, StoreError, WatchEvent};

/// Counters: [`META_REVISION`], [`META_COMPACT`] and [`META_NEXT_LEASE`].
pub(crate) const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
/// The store-wide revision of the last write.
pub(crate) const META_REVISION: &str = "revision";
/// The oldest revision a watch may start from; older log entries are gone.
pub(crate) const META_COMPACT: &str = "compact_revision";
/// The id the next granted lease gets.
pub(crate) const META_NEXT_LEASE: &str = "next_lease";

/// Live keys: key -> (create_revision, mod_revision, lease or 0, value).
pub(crate) const KV: TableDefinition<&str, (i64, i64, i64, &[u8])> = TableDefinition::new("kv");

/// A [`LOG`] key: (revision, index of the event within the revision).
pub(crate) type LogKey = (i64, u32);
/// A [`LOG`] row: (kind, key, create_revision, lease or 0, value).
pub(crate) type LogRow = (u8, &'static str, i64, i64, &'static [u8]);

/// The event log. An event's `mod_revision` is the revision in its table key.
pub(crate) const LOG: TableDefinition<LogKey, LogRow> = TableDefinition::new("log");

/// Leases: id -> (ttl in milliseconds, deadline in Unix milliseconds).
///
/// The deadline is wall-clock time so that it means the same thing after a restart.
pub(crate) const LEASES: TableDefinition<i64, (u64, u64)> = TableDefinition::new("leases");
/// Leases ordered by deadline, so the expiry check only looks at the first entries.
pub(crate) const LEASE_DEADLINES: TableDefinition<(u64, i64), ()> = TableDefinition::new("lease_deadlines");
/// The keys attached to each lease, so expiry and revocation find them without a scan.
pub(crate) const LEASE_KEYS: TableDefinition<(i64, &str), ()> = TableDefinition::new("lease_keys");

/// Log tag for a put event.
pub(crate) const KIND_PUT: u8 = 0;
/// Log tag for a delete event.
pub(crate) const KIND_DELETE: u8 = 1;

/// Turns a redb failure into the store's error type.
pub(crate) fn db_err(err: impl Into<redb::Error>) -> StoreError {
    StoreError::Internal { message: format!("embedded store: {}", err.into()) }
}

/// Builds a [`KeyValue`] from a row of [`KV`].
pub(crate) fn key_value(key: &str, row: (i64, i64, i64, &[u8])) -> KeyValue {
    let (create_revision, mod_revision, lease, value) = row;
    KeyValue {
        key: key.to_owned(),
        value: value.to_vec(),
        create_revision,
        mod_revision,
        lease: (lease != 0).then_some(lease),
    }
}

/// Builds a [`WatchEvent`] from a row of [`LOG`].
pub(crate) fn log_event(
    revision: Revision,
    row: (u8, &str, i64, i64, &[u8]),
) -> Result<WatchEvent, StoreError> {
    let (kind, key, create_revision, lease, value) = row;
    let kind = match kind {
        KIND_PUT => EventKind::Put,
        KIND_DELETE => EventKind::Delete,
        other => {
            return Err(StoreError::Internal {
                message: format!("embedded store: unknown event kind {other} at revision {revision}"),
            });
        }
    };
    Ok(WatchEvent {
        kind,
        kv: KeyValue {
            key: key.to_owned(),
            value: value.to_vec(),
            create_revision,
            mod_revision: revision,
            lease: (lease != 0).then_some(lease),
        },
    })
}

/// Reads one counter from [`META`], `0` when it was never written.
pub(crate) fn meta_value(
    table: &impl ReadableTable<&'static str, i64>,
    name: &str,
) -> Result<i64, redb::Error> {
    Ok(table.get(name)?.map(|guard| guard.value()).unwrap_or(0))
}

/// The current revision and compaction point as of a read snapshot.
pub(crate) struct Meta {
    pub(crate) revision: Revision,
    pub(crate) compact_revision: Revision,
}

/// Reads the counters of a snapshot.
pub(crate) fn read_meta(tx: &ReadTransaction) -> Result<Meta, redb::Error> {
    let meta = tx.open_table(META)?;
    Ok(Meta {
        revision: meta_value(&meta, META_REVISION)?,
        compact_revision: meta_value(&meta, META_COMPACT)?,
    })
}

/// Reads one key from a snapshot.
pub(crate) fn read_key(tx: &ReadTransaction, key: &str) -> Result<Option<KeyValue>, redb::Error> {
    let kv = tx.open_table(KV)?;
    Ok(kv.get(key)?.map(|guard| key_value(key, guard.value())))
}

/// Reads every key under `prefix`, in key order, from a snapshot.
pub(crate) fn read_prefix(tx: &ReadTransaction, prefix: &str) -> Result<Vec<KeyValue>, redb::Error> {
    let kv = tx.open_table(KV)?;
    let mut out = Vec::new();
    for entry in kv.range(prefix..)? {
        let (key, row) = entry?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push(key_value(key, row.value()));
    }
    Ok(out)
}

/// A slice of the event log read for a watcher.
pub(crate) struct LogChunk {
    /// Events under the watched prefix, in order.
    pub(crate) events: Vec<WatchEvent>,
    /// The first revision not covered by this chunk.
    pub(crate) next_revision: Revision,
    /// Whether the chunk reached the snapshot's current revision.
    pub(crate) caught_up: bool,
}

/// How many log entries one chunk looks at, so a watcher far behind replays in bounded steps.
const CHUNK_ENTRIES: usize = 2048;

/// Reads the log from `from` (inclusive) for events under `prefix`.
///
/// Stops at a revision boundary after about [`CHUNK_ENTRIES`] entries; fails with
/// [`StoreError::Compacted`] when `from` is older than the compaction point.
pub(crate) fn read_log(tx: &ReadTransaction, prefix: &str, from: Revision) -> Result<LogChunk, StoreError> {
    let meta = read_meta(tx).map_err(db_err)?;
    if from < meta.compact_revision {
        return Err(StoreError::Compacted { requested: from, compacted: meta.compact_revision });
    }
    let log = tx.open_table(LOG).map_err(db_err)?;
    let mut events = Vec::new();
    let mut last_revision = None;
    for (scanned, entry) in log.range((from, 0u32)..).map_err(db_err)?.enumerate() {
        let (key, row) = entry.map_err(db_err)?;
        let (revision, _) = key.value();
        if scanned >= CHUNK_ENTRIES && last_revision != Some(revision) {
            // Cut only between revisions so a chunk never splits one transaction.
            return Ok(LogChunk { events, next_revision: revision, caught_up: false });
        }
        last_revision = Some(revision);
        let row = row.value();
        if row.1.starts_with(prefix) {
            events.push(log_event(revision, row)?);
        }
    }
    Ok(LogChunk { events, next_revision: from.max(meta.revision + 1), caught_up: true })
}
