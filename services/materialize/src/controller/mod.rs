//! The controller: drives facilities towards the wanted materializations.
//!
//! In the manner of a Kubernetes controller: it lists every wanted materialization, then
//! watches the store from the revision of that list; each materialization gets a driver task
//! that reconciles it (sends its spec, polls status, tears it down) whenever its record
//! changes and on a timer. A periodic re-list catches what a watch missed.
//!
//! Any number of replicas may run one. A controller holds one lease (its session) and, per
//! materialization it drives, a lock key attached to that lease; a driver that cannot create
//! the lock leaves the materialization to its holder. Every status write compares the lock's
//! revision, so a controller that lost its lease (and so its locks) cannot overwrite the work
//! of the one that took over; the facility calls themselves are idempotent. When a controller
//! stops, it revokes its lease so others take over at once; when it dies, its lease expires
//! and the others' watches see the locks vanish.

mod driver;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use trellis_store::{EventKind, LeaseId, StoreError, WatchEvent};
use trellis_types::Error;

use crate::keys;
use crate::service::MaterializeService;
use crate::stored::{retry_delay, store_error};

/// One controller session: its identity, lease, and the token that stops its drivers.
pub(crate) struct Session {
    pub id: String,
    pub lease: LeaseId,
    pub stop: CancellationToken,
}

struct DriverHandle {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl MaterializeService {
    /// Runs a controller until `cancel` is cancelled. Every replica may run one.
    pub fn spawn_controller(self, cancel: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let id = uuid::Uuid::new_v4().simple().to_string();
            let mut failures = 0;
            while !cancel.is_cancelled() {
                match self.controller_session(&id, &cancel).await {
                    Ok(()) => failures = 0,
                    Err(err) => {
                        failures += 1;
                        tracing::warn!(controller = %id, %err, "materialize controller session ended; starting another");
                    }
                }
                let cfg = &self.config.controller;
                let pause = retry_delay(failures.max(1), cfg.retry_min, cfg.retry_max);
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
            tracing::debug!(controller = %id, "materialize controller stopped");
        })
    }

    async fn controller_session(&self, id: &str, cancel: &CancellationToken) -> Result<(), Error> {
        let ttl = self.config.controller.lease_ttl;
        let lease = self.store.grant_lease(ttl).await.map_err(store_error)?;
        let session = Arc::new(Session { id: id.to_owned(), lease, stop: cancel.child_token() });
        let keeper = tokio::spawn(keep_lease(self.clone(), session.clone(), ttl));
        let result = self.supervise(&session).await;
        session.stop.cancel();
        keeper.abort();
        // Frees this controller's locks now rather than when the lease runs out.
        if let Err(err) = self.store.revoke_lease(lease).await {
            tracing::debug!(%err, "revoking the controller lease failed; it will expire");
        }
        if cancel.is_cancelled() { Ok(()) } else { result }
    }

    /// Lists, watches and starts drivers until the session stops; re-lists when the watch ends.
    async fn supervise(&self, session: &Arc<Session>) -> Result<(), Error> {
        let mut drivers: HashMap<String, DriverHandle> = HashMap::new();
        let mut watch_failures = 0;
        let outcome = loop {
            if session.stop.is_cancelled() {
                break Ok(());
            }
            match self.list_and_watch(session, &mut drivers).await {
                Ok(()) => break Ok(()),
                Err(err) => {
                    watch_failures += 1;
                    tracing::warn!(%err, "materialize controller watch ended; listing again");
                    let cfg = &self.config.controller;
                    tokio::select! {
                        () = session.stop.cancelled() => break Ok(()),
                        () = tokio::time::sleep(retry_delay(watch_failures, cfg.retry_min, cfg.retry_max)) => {}
                    }
                    if watch_failures > 20 {
                        break Err(store_error(err));
                    }
                }
            }
        };
        session.stop.cancel();
        for (_, driver) in drivers {
            let _ = driver.task.await;
        }
        outcome
    }

    /// One list followed by a watch from its revision; returns `Ok` when the session stops.
    async fn list_and_watch(
        &self,
        session: &Arc<Session>,
        drivers: &mut HashMap<String, DriverHandle>,
    ) -> Result<(), StoreError> {
        let listed = self.list_wanted(session, drivers).await?;
        let mut events = self.store.watch(keys::ROOT, listed + 1).await?;
        let mut resync = tokio::time::interval(self.config.controller.resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        loop {
            tokio::select! {
                () = session.stop.cancelled() => return Ok(()),
                event = events.next() => match event {
                    Some(Ok(event)) => self.on_event(session, drivers, &event),
                    Some(Err(err)) => return Err(err),
                    None => return Err(StoreError::Unavailable { message: "the watch ended".into() }),
                },
                _ = resync.tick() => {
                    self.list_wanted(session, drivers).await?;
                }
            }
        }
    }

    /// Makes sure every wanted materialization has a live driver; returns the list's revision.
    async fn list_wanted(
        &self,
        session: &Arc<Session>,
        drivers: &mut HashMap<String, DriverHandle>,
    ) -> Result<i64, StoreError> {
        let range = self.store.range(keys::MATERIALIZATIONS).await?;
        // Materializations another controller holds are left alone; its lock's deletion (seen
        // by the watch) or a later pass brings them back.
        let held_elsewhere: HashSet<String> = self
            .store
            .range(keys::LOCKS)
            .await?
            .kvs
            .into_iter()
            .filter(|kv| kv.value != session.id.as_bytes())
            .filter_map(|kv| keys::parse(&kv.key))
            .map(|(p, e, r)| keys::materialization(&p, &e, &r))
            .collect();
        drivers.retain(|_, d| !d.task.is_finished());
        for kv in range.kvs.iter().filter(|kv| !held_elsewhere.contains(&kv.key)) {
            self.ensure_driver(session, drivers, &kv.key);
        }
        Ok(range.revision)
    }

    fn on_event(
        &self,
        session: &Arc<Session>,
        drivers: &mut HashMap<String, DriverHandle>,
        event: &WatchEvent,
    ) {
        let key = &event.kv.key;
        if key.starts_with(keys::MATERIALIZATIONS) {
            self.ensure_driver(session, drivers, key);
        } else if key.starts_with(keys::LOCKS) && event.kind == EventKind::Delete {
            // Its holder finished or died: whoever is first takes over (a driver that finds no
            // wanted record leaves at once). A driver of ours that held it learns so and ends;
            // the next re-list starts another.
            if let Some((p, e, r)) = keys::parse(key) {
                self.ensure_driver(session, drivers, &keys::materialization(&p, &e, &r));
            }
        }
    }

    /// Wakes the driver of `key`, starting one if it has none running.
    fn ensure_driver(&self, session: &Arc<Session>, drivers: &mut HashMap<String, DriverHandle>, key: &str) {
        if let Some(driver) = drivers.get(key)
            && !driver.task.is_finished()
        {
            driver.wake.notify_one();
            return;
        }
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(driver::drive(self.clone(), session.clone(), key.to_owned(), wake.clone()));
        drivers.insert(key.to_owned(), DriverHandle { wake, task });
    }
}

/// Renews the session lease; stops the session if the lease is gone (its locks went with it).
async fn keep_lease(service: MaterializeService, session: Arc<Session>, ttl: Duration) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = session.stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match service.store.keep_alive(session.lease).await {
            Ok(()) => {}
            Err(StoreError::LeaseNotFound(_)) => {
                tracing::warn!(controller = %session.id, "controller lease expired; dropping its materializations");
                session.stop.cancel();
                return;
            }
            // The store may come back before the lease runs out; the next renewal tells.
            Err(err) => {
                tracing::warn!(controller = %session.id, %err, "renewing the controller lease failed")
            }
        }
    }
}
