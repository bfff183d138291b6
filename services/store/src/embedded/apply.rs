//! Applying writes inside one redb write transaction.
//!
//! [`WriteTables`] holds every table of the store open for one batch of commands. Each command
//! sees the effects of the commands before it in the batch, exactly as if they had been
//! committed one by one, so batching many commands into one commit (group commit) changes
//! nothing a client can observe except latency.

use redb::{ReadableTable, Table, WriteTransaction};

use super::tables::{
    KIND_DELETE, KIND_PUT, KV, LEASE_DEADLINES, LEASE_KEYS, LEASES, LOG, LogKey, LogRow, META, META_COMPACT,
    META_NEXT_LEASE, META_REVISION, meta_value,
};
use crate::{Compare, EventKind, KeyValue, LeaseId, Op, Revision, StoreError, Txn, TxnOutcome, WatchEvent};

/// A storage failure that aborts the whole batch.
pub(crate) type Fatal = redb::Error;

/// The events of one committed revision.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    pub(crate) revision: Revision,
    pub(crate) events: Vec<WatchEvent>,
}

/// Every table of the store, open for writing, plus the counters kept in memory for the batch.
pub(crate) struct WriteTables<'t> {
    meta: Table<'t, &'static str, i64>,
    kv: Table<'t, &'static str, (i64, i64, i64, &'static [u8])>,
    log: Table<'t, LogKey, LogRow>,
    leases: Table<'t, i64, (u64, u64)>,
    deadlines: Table<'t, (u64, i64), ()>,
    lease_keys: Table<'t, (i64, &'static str), ()>,
    revision: Revision,
    compact_revision: Revision,
    next_lease: LeaseId,
    /// Whether anything was written, so an all-read batch can abort instead of paying a commit.
    dirty: bool,
    /// Revisions committed by this batch, in order.
    committed: Vec<Committed>,
}

impl<'t> WriteTables<'t> {
    /// Opens (creating on first use) every table in `tx`.
    pub(crate) fn open(tx: &'t WriteTransaction) -> Result<Self, Fatal> {
        let meta = tx.open_table(META)?;
        let revision = meta_value(&meta, META_REVISION)?;
        let compact_revision = meta_value(&meta, META_COMPACT)?;
        let next_lease = meta_value(&meta, META_NEXT_LEASE)?.max(1);
        Ok(Self {
            meta,
            kv: tx.open_table(KV)?,
            log: tx.open_table(LOG)?,
            leases: tx.open_table(LEASES)?,
            deadlines: tx.open_table(LEASE_DEADLINES)?,
            lease_keys: tx.open_table(LEASE_KEYS)?,
            revision,
            compact_revision,
            next_lease,
            dirty: false,
            committed: Vec::new(),
        })
    }

    /// Whether the batch changed anything.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes the counters back and hands out the committed revisions.
    pub(crate) fn finish(mut self) -> Result<Vec<Committed>, Fatal> {
        if self.dirty {
            self.meta.insert(META_REVISION, self.revision)?;
            self.meta.insert(META_COMPACT, self.compact_revision)?;
            self.meta.insert(META_NEXT_LEASE, self.next_lease)?;
        }
        Ok(self.committed)
    }

    /// Runs one transaction. The outer error aborts the batch; the inner one is the
    /// transaction's own answer (for example a put to an unknown lease).
    pub(crate) fn txn(&mut self, txn: &Txn) -> Result<Result<TxnOutcome, StoreError>, Fatal> {
        for compare in &txn.compares {
            if !self.compare(compare)? {
                return Ok(Ok(TxnOutcome { succeeded: false, revision: self.revision }));
            }
        }
        // Like etcd, a missing lease fails the whole transaction before anything is written.
        for op in &txn.success {
            if let Op::Put { key, lease, .. } = op {
                if key.is_empty() {
                    return Ok(Err(empty_key()));
                }
                if let Some(lease) = lease
                    && self.leases.get(*lease)?.is_none()
                {
                    return Ok(Err(StoreError::LeaseNotFound(*lease)));
                }
            }
            if let Op::Delete { key } = op
                && key.is_empty()
            {
                return Ok(Err(empty_key()));
            }
        }
        let revision = self.revision + 1;
        let mut events = Vec::new();
        for op in &txn.success {
            match op {
                Op::Put { key, value, lease } => {
                    events.push(self.put(key, value, lease.unwrap_or(0), revision)?);
                }
                Op::Delete { key } => events.extend(self.delete(key, revision)?),
                Op::DeletePrefix { prefix } => {
                    let keys = self.keys_under(prefix)?;
                    for key in keys {
                        events.extend(self.delete(&key, revision)?);
                    }
                }
            }
        }
        self.record(revision, events)?;
        Ok(Ok(TxnOutcome { succeeded: true, revision: self.revision }))
    }

    /// Grants a lease expiring `ttl_ms` after `now_ms`.
    pub(crate) fn grant(&mut self, ttl_ms: u64, now_ms: u64) -> Result<LeaseId, Fatal> {
        let id = self.next_lease;
        self.next_lease += 1;
        let deadline = now_ms.saturating_add(ttl_ms);
        self.leases.insert(id, (ttl_ms, deadline))?;
        self.deadlines.insert((deadline, id), ())?;
        self.dirty = true;
        Ok(id)
    }

    /// Moves a live lease's deadline to `now_ms` plus its TTL.
    pub(crate) fn keep_alive(&mut self, id: LeaseId, now_ms: u64) -> Result<Result<(), StoreError>, Fatal> {
        let Some((ttl_ms, deadline)) = self.leases.get(id)?.map(|guard| guard.value()) else {
            return Ok(Err(StoreError::LeaseNotFound(id)));
        };
        if deadline <= now_ms {
            // Expired but not yet reaped: it is gone as far as the client is concerned.
            return Ok(Err(StoreError::LeaseNotFound(id)));
        }
        let new_deadline = now_ms.saturating_add(ttl_ms);
        self.deadlines.remove((deadline, id))?;
        self.deadlines.insert((new_deadline, id), ())?;
        self.leases.insert(id, (ttl_ms, new_deadline))?;
        self.dirty = true;
        Ok(Ok(()))
    }

    /// Removes a lease and deletes its keys in one revision; `false` when it does not exist.
    pub(crate) fn revoke(&mut self, id: LeaseId) -> Result<bool, Fatal> {
        let Some((_, deadline)) = self.leases.remove(id)?.map(|guard| guard.value()) else {
            return Ok(false);
        };
        self.deadlines.remove((deadline, id))?;
        self.dirty = true;
        let mut keys = Vec::new();
        for entry in self.lease_keys.range((id, "")..(id + 1, ""))? {
            let (key, _) = entry?;
            keys.push(key.value().1.to_owned());
        }
        let revision = self.revision + 1;
        let mut events = Vec::new();
        for key in keys {
            events.extend(self.delete(&key, revision)?);
        }
        self.record(revision, events)?;
        Ok(true)
    }

    /// Revokes every lease whose deadline is at or before `now_ms`, one revision per lease.
    pub(crate) fn expire(&mut self, now_ms: u64) -> Result<(), Fatal> {
        loop {
            let Some((deadline, id)) = self.deadlines.first()?.map(|(key, _)| key.value()) else {
                return Ok(());
            };
            if deadline > now_ms {
                return Ok(());
            }
            // Remove the index entry first so a lease row that is somehow missing cannot make
            // this loop spin forever.
            self.deadlines.remove((deadline, id))?;
            self.dirty = true;
            self.revoke(id)?;
        }
    }

    /// Whether any lease's deadline has passed.
    pub(crate) fn first_deadline(&self) -> Result<Option<u64>, Fatal> {
        Ok(self.deadlines.first()?.map(|(key, _)| key.value().0))
    }

    /// Moves the compaction point to `revision` and drops older log entries. Never moves it
    /// backwards or past the current revision.
    pub(crate) fn compact(&mut self, revision: Revision) -> Result<(), Fatal> {
        let target = revision.min(self.revision);
        if target <= self.compact_revision {
            return Ok(());
        }
        loop {
            let oldest = self.log.first()?.map(|(key, _)| key.value().0);
            match oldest {
                Some(revision) if revision < target => drop(self.log.pop_first()?),
                _ => break,
            }
        }
        self.compact_revision = target;
        self.dirty = true;
        Ok(())
    }

    /// Keeps roughly the last `history` revisions of the log. Compacts in steps of about an
    /// eighth of the history so the cost is amortised rather than paid on every write.
    pub(crate) fn trim_history(&mut self, history: u64) -> Result<(), Fatal> {
        let history = i64::try_from(history.max(1)).unwrap_or(i64::MAX);
        let slack = (history / 8).max(1);
        let oldest_kept = self.revision.saturating_sub(history) + 1;
        if oldest_kept - self.compact_revision > slack {
            self.compact(oldest_kept)?;
        }
        Ok(())
    }

    /// The current revision (including this batch's writes so far).
    pub(crate) fn revision(&self) -> Revision {
        self.revision
    }

    fn compare(&self, compare: &Compare) -> Result<bool, Fatal> {
        Ok(match compare {
            Compare::ModRevision { key, revision } => {
                let current = self.kv.get(key.as_str())?.map(|guard| guard.value().1).unwrap_or(0);
                current == *revision
            }
            Compare::Exists { key } => self.kv.get(key.as_str())?.is_some(),
        })
    }

    fn keys_under(&self, prefix: &str) -> Result<Vec<String>, Fatal> {
        let mut keys = Vec::new();
        for entry in self.kv.range(prefix..)? {
            let (key, _) = entry?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            keys.push(key.to_owned());
        }
        Ok(keys)
    }

    fn put(
        &mut self,
        key: &str,
        value: &[u8],
        lease: LeaseId,
        revision: Revision,
    ) -> Result<WatchEvent, Fatal> {
        let old = self.kv.get(key)?.map(|guard| {
            let (create, _, old_lease, _) = guard.value();
            (create, old_lease)
        });
        let create_revision = old.map_or(revision, |(create, _)| create);
        if let Some((_, old_lease)) = old
            && old_lease != 0
            && old_lease != lease
        {
            self.lease_keys.remove((old_lease, key))?;
        }
        if lease != 0 {
            self.lease_keys.insert((lease, key), ())?;
        }
        self.kv.insert(key, (create_revision, revision, lease, value))?;
        Ok(WatchEvent {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.to_owned(),
                value: value.to_vec(),
                create_revision,
                mod_revision: revision,
                lease: (lease != 0).then_some(lease),
            },
        })
    }

    fn delete(&mut self, key: &str, revision: Revision) -> Result<Option<WatchEvent>, Fatal> {
        let Some(old_lease) = self.kv.remove(key)?.map(|guard| guard.value().2) else {
            return Ok(None);
        };
        if old_lease != 0 {
            self.lease_keys.remove((old_lease, key))?;
        }
        // Same shape as etcd's delete events: only the key and the deletion revision.
        Ok(Some(WatchEvent {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_owned(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: revision,
                lease: None,
            },
        }))
    }

    /// Logs the events of `revision` and makes it current; a write that changed nothing keeps
    /// the revision where it was (as etcd does).
    fn record(&mut self, revision: Revision, events: Vec<WatchEvent>) -> Result<(), Fatal> {
        if events.is_empty() {
            return Ok(());
        }
        for (index, event) in events.iter().enumerate() {
            let kind = match event.kind {
                EventKind::Put => KIND_PUT,
                EventKind::Delete => KIND_DELETE,
            };
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let kv = &event.kv;
            self.log.insert(
                (revision, index),
                (kind, kv.key.as_str(), kv.create_revision, kv.lease.unwrap_or(0), kv.value.as_slice()),
            )?;
        }
        self.revision = revision;
        self.dirty = true;
        self.committed.push(Committed { revision, events });
        Ok(())
    }
}

fn empty_key() -> StoreError {
    StoreError::Internal { message: "a key must not be empty".to_owned() }
}
