//! Watch streams for the embedded store: replay from the log, then follow live commits.
//!
//! The race between replay and live delivery is closed by ordering: a watcher subscribes to the
//! writer's broadcast *before* it opens the read snapshot it replays from. Any commit missing
//! from the snapshot committed after the subscription, and the writer broadcasts only after
//! committing, so that commit is in the receiver's queue. Commits present in both places are
//! dropped by revision: the watcher remembers the next revision it wants and skips anything
//! older.
//!
//! A watcher that falls behind the broadcast buffer (`Lagged`), or sees a revision jump it
//! cannot explain, goes back to replaying the log from the next revision it wants, so a slow
//! consumer gets every event late rather than missing some. If the log has been compacted past
//! that point the stream ends with [`StoreError::Compacted`].

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use futures::StreamExt;
use redb::ReadableDatabase;
use tokio::sync::broadcast;

use super::Inner;
use super::apply::Committed;
use super::tables::{LogChunk, db_err, read_log};
use crate::{Revision, StoreError, WatchEvent, WatchStream};

/// Where a watcher gets its next events from.
enum Source {
    /// Reading the event log.
    Replay,
    /// Following the writer's broadcast.
    Live,
    /// The stream has ended.
    Done,
}

/// The state of one watch stream.
struct Watcher {
    inner: Weak<Inner>,
    live: broadcast::Receiver<Arc<Vec<Committed>>>,
    prefix: String,
    /// The first revision this watcher has not yet delivered or skipped.
    next_revision: Revision,
    pending: VecDeque<WatchEvent>,
    source: Source,
}

/// Starts a watch; `live` must have been subscribed before `next_revision` was decided.
pub(crate) fn stream(
    inner: Weak<Inner>,
    live: broadcast::Receiver<Arc<Vec<Committed>>>,
    prefix: String,
    next_revision: Revision,
) -> WatchStream {
    let watcher =
        Watcher { inner, live, prefix, next_revision, pending: VecDeque::new(), source: Source::Replay };
    futures::stream::unfold(watcher, |mut watcher| async move {
        let item = watcher.next().await?;
        Some((item, watcher))
    })
    .boxed()
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<WatchEvent, StoreError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            let step = match self.source {
                Source::Done => return None,
                Source::Replay => self.replay().await,
                Source::Live => self.follow().await,
            };
            if let Err(err) = step {
                self.source = Source::Done;
                return Some(Err(err));
            }
        }
    }

    /// Reads the next chunk of the log into `pending`.
    async fn replay(&mut self) -> Result<(), StoreError> {
        let Some(inner) = self.inner.upgrade() else {
            return Err(closed());
        };
        let prefix = self.prefix.clone();
        let from = self.next_revision;
        let chunk = tokio::task::spawn_blocking(move || -> Result<LogChunk, StoreError> {
            let tx = inner.db.begin_read().map_err(db_err)?;
            read_log(&tx, &prefix, from)
        })
        .await
        .map_err(|err| StoreError::Internal { message: format!("watch replay task: {err}") })??;
        self.pending.extend(chunk.events);
        self.next_revision = chunk.next_revision;
        if chunk.caught_up {
            self.source = Source::Live;
        }
        Ok(())
    }

    /// Waits for the next broadcast and keeps the revisions this watcher still wants.
    async fn follow(&mut self) -> Result<(), StoreError> {
        match self.live.recv().await {
            Ok(batch) => {
                for committed in batch.iter() {
                    if committed.revision < self.next_revision {
                        continue;
                    }
                    if committed.revision > self.next_revision {
                        // A revision went missing between us and the writer: the log has it.
                        self.source = Source::Replay;
                        return Ok(());
                    }
                    let prefix = &self.prefix;
                    self.pending.extend(
                        committed.events.iter().filter(|event| event.kv.key.starts_with(prefix)).cloned(),
                    );
                    self.next_revision += 1;
                }
                Ok(())
            }
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                tracing::debug!(skipped, from = self.next_revision, "watcher lagged; replaying the log");
                self.source = Source::Replay;
                Ok(())
            }
            Err(broadcast::error::RecvError::Closed) => Err(closed()),
        }
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable { message: "embedded store was closed".to_owned() }
}
