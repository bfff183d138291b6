//! The single writer thread of the embedded store.
//!
//! redb allows one write transaction at a time and its calls block, so every write goes through
//! one dedicated OS thread fed by a channel. The thread drains whatever commands are queued and
//! applies them all in one write transaction with one fsync (group commit): under concurrency
//! this turns N fsyncs into one without weakening durability, because no caller hears back
//! before the commit that contains its write has returned.
//!
//! The same thread expires leases: between batches it checks the earliest lease deadline and,
//! when one has passed, deletes the lease's keys in the next transaction. Doing this on the
//! writer (rather than in a separate task that sends commands) means an idle store never opens
//! a write transaction just to find nothing to do.
//!
//! After a commit the thread broadcasts the committed revisions to live watchers, in commit
//! order, before it starts the next batch.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, Durability};
use tokio::sync::{broadcast, oneshot};

use super::apply::{Committed, Fatal, WriteTables};
use crate::{LeaseId, Revision, StoreError, Txn, TxnOutcome};

/// The most commands folded into one commit; bounds the latency one batch adds to the next.
const MAX_BATCH: usize = 256;

/// A reply channel for one command.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write request for the writer thread.
pub(crate) enum Command {
    Txn(Txn, Reply<TxnOutcome>),
    Grant(Duration, Reply<LeaseId>),
    KeepAlive(LeaseId, Reply<()>),
    Revoke(LeaseId, Reply<()>),
    Compact(Revision, Reply<()>),
}

impl Command {
    /// Fails the command without running it.
    fn fail(self, err: &StoreError) {
        let err = StoreError::Internal { message: err.to_string() };
        // A caller that went away no longer wants the answer.
        match self {
            Command::Txn(_, reply) => drop(reply.send(Err(err))),
            Command::Grant(_, reply) => drop(reply.send(Err(err))),
            Command::KeepAlive(_, reply) => drop(reply.send(Err(err))),
            Command::Revoke(_, reply) => drop(reply.send(Err(err))),
            Command::Compact(_, reply) => drop(reply.send(Err(err))),
        }
    }
}

/// An answer computed inside the batch, sent only once the batch has committed.
enum Answer {
    Txn(Reply<TxnOutcome>, Result<TxnOutcome, StoreError>),
    Grant(Reply<LeaseId>, LeaseId),
    Unit(Reply<()>, Result<(), StoreError>),
}

impl Answer {
    fn send(self) {
        // A caller that went away no longer wants the answer.
        match self {
            Answer::Txn(reply, result) => drop(reply.send(result)),
            Answer::Grant(reply, id) => drop(reply.send(Ok(id))),
            Answer::Unit(reply, result) => drop(reply.send(result)),
        }
    }

    fn fail(self, err: &StoreError) {
        let err = StoreError::Internal { message: err.to_string() };
        match self {
            Answer::Txn(reply, _) => drop(reply.send(Err(err))),
            Answer::Grant(reply, _) => drop(reply.send(Err(err))),
            Answer::Unit(reply, _) => drop(reply.send(Err(err))),
        }
    }
}

/// Settings the writer needs.
pub(crate) struct WriterConfig {
    pub(crate) history: u64,
    pub(crate) lease_check_interval: Duration,
}

/// Runs the writer loop until every command sender is gone.
pub(crate) fn run(
    db: Arc<Database>,
    commands: Receiver<Command>,
    events: broadcast::Sender<Arc<Vec<Committed>>>,
    config: WriterConfig,
) {
    let mut next_lease_check = Instant::now();
    loop {
        let wait = next_lease_check.saturating_duration_since(Instant::now());
        let mut batch = Vec::new();
        match commands.recv_timeout(wait) {
            Ok(command) => batch.push(command),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while batch.len() < MAX_BATCH {
            match commands.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        let check_leases = Instant::now() >= next_lease_check;
        if check_leases {
            next_lease_check = Instant::now() + config.lease_check_interval;
        }
        if batch.is_empty() && !check_leases {
            continue;
        }
        match run_batch(&db, batch, check_leases, &config) {
            Ok(committed) if !committed.is_empty() => {
                // No receivers is fine: nobody is watching.
                let _ = events.send(Arc::new(committed));
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "embedded store write batch failed"),
        }
    }
}

/// Applies a batch in one write transaction and answers every command once it is durable.
fn run_batch(
    db: &Database,
    batch: Vec<Command>,
    check_leases: bool,
    config: &WriterConfig,
) -> Result<Vec<Committed>, StoreError> {
    let mut tx = match db.begin_write() {
        Ok(tx) => tx,
        Err(err) => {
            let err = super::tables::db_err(err);
            for command in batch {
                command.fail(&err);
            }
            return Err(err);
        }
    };
    let mut answers = Vec::with_capacity(batch.len());
    let applied = apply_batch(&tx, batch, check_leases, config, &mut answers);
    let outcome = applied.and_then(|(dirty, committed)| {
        if dirty {
            // Immediate: a caller hears "done" only once its write is on disk, like etcd.
            tx.set_durability(Durability::Immediate)?;
            tx.commit()?;
        } else {
            tx.abort()?;
        }
        Ok(committed)
    });
    match outcome {
        Ok(committed) => {
            for answer in answers {
                answer.send();
            }
            Ok(committed)
        }
        Err(err) => {
            let err = super::tables::db_err(err);
            for answer in answers {
                answer.fail(&err);
            }
            Err(err)
        }
    }
}

fn apply_batch(
    tx: &redb::WriteTransaction,
    batch: Vec<Command>,
    check_leases: bool,
    config: &WriterConfig,
    answers: &mut Vec<Answer>,
) -> Result<(bool, Vec<Committed>), Fatal> {
    let mut tables = WriteTables::open(tx)?;
    if check_leases {
        let now = now_ms();
        if tables.first_deadline()?.is_some_and(|deadline| deadline <= now) {
            tables.expire(now)?;
        }
    }
    for command in batch {
        match command {
            Command::Txn(txn, reply) => {
                let result = tables.txn(&txn)?;
                answers.push(Answer::Txn(reply, result));
            }
            Command::Grant(ttl, reply) => {
                let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let id = tables.grant(ttl_ms, now_ms())?;
                answers.push(Answer::Grant(reply, id));
            }
            Command::KeepAlive(id, reply) => {
                let result = tables.keep_alive(id, now_ms())?;
                answers.push(Answer::Unit(reply, result));
            }
            Command::Revoke(id, reply) => {
                let result = if tables.revoke(id)? { Ok(()) } else { Err(StoreError::LeaseNotFound(id)) };
                answers.push(Answer::Unit(reply, result));
            }
            Command::Compact(revision, reply) => {
                let result = if revision > tables.revision() {
                    Err(StoreError::Internal {
                        message: format!(
                            "cannot compact to revision {revision}: current revision is {}",
                            tables.revision()
                        ),
                    })
                } else {
                    tables.compact(revision)?;
                    Ok(())
                };
                answers.push(Answer::Unit(reply, result));
            }
        }
    }
    tables.trim_history(config.history)?;
    let dirty = tables.is_dirty();
    Ok((dirty, tables.finish()?))
}

/// Wall-clock milliseconds since the Unix epoch (lease deadlines must survive a restart).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}
