//! One materialization's driver: holds its lock and reconciles it until it is gone or the
//! lock is lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use trellis_facility_api::v1::{self, DematerializeRequest, MaterializeRequest, StatusRequest};
use trellis_store::{Compare, Op, Txn};
use trellis_types::Error;

use super::Session;
use crate::ingress::IngressRoute;
use crate::keys;
use crate::lifecycle::facility_error;
use crate::proto;
use crate::service::MaterializeService;
use crate::stored::{Versioned, load, load_all, now_unix, put, retry_delay, store_error};
use crate::types::{FacilitySpec, FacilityStatus, MaterializationRecord, Phase, StatusRecord, TaskState};

/// What a step decided.
enum Next {
    /// Look again after this long (or sooner, when woken).
    After(Duration),
    /// The materialization is gone (its records removed); the driver ends.
    Done,
    /// Another controller holds the lock now; the driver ends.
    LostLock,
}

struct Driver {
    service: MaterializeService,
    project: String,
    experiment: String,
    realization: String,
    key: String,
    lock_key: String,
    /// The lock's revision while this driver holds it.
    lock_revision: i64,
}

pub(super) async fn drive(
    service: MaterializeService,
    session: Arc<Session>,
    key: String,
    wake: Arc<Notify>,
) {
    let Some((project, experiment, realization)) = keys::parse(&key) else { return };
    let lock_key = keys::lock(&project, &experiment, &realization);
    let lock_revision = match acquire(&service, &session, &key, &lock_key).await {
        Ok(Some(revision)) => revision,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(%key, %err, "could not take the materialization lock; a later pass will");
            return;
        }
    };
    let mut driver = Driver { service, project, experiment, realization, key, lock_key, lock_revision };
    let cfg = driver.service.config.controller.clone();
    let mut store_failures = 0;
    loop {
        let wait = match driver.step().await {
            Ok(Next::After(wait)) => {
                store_failures = 0;
                wait
            }
            Ok(Next::Done | Next::LostLock) => return,
            Err(err) => {
                store_failures += 1;
                tracing::warn!(key = %driver.key, %err, "materialization step failed; retrying");
                retry_delay(store_failures, cfg.retry_min, cfg.retry_max)
            }
        };
        tokio::select! {
            () = session.stop.cancelled() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Takes the lock of a wanted materialization (`None`: it is not wanted, or another
/// controller holds it). A lock this session already holds is taken over as is.
async fn acquire(
    service: &MaterializeService,
    session: &Session,
    key: &str,
    lock_key: &str,
) -> Result<Option<i64>, Error> {
    let store = service.store.as_ref();
    if store.get(key).await.map_err(store_error)?.is_none() {
        return Ok(None);
    }
    let ours =
        |kv: &trellis_store::KeyValue| kv.lease == Some(session.lease) && kv.value == session.id.as_bytes();
    // Reading first spares the store a failing write for every lock another controller holds.
    if let Some(held) = store.get(lock_key).await.map_err(store_error)? {
        return Ok(ours(&held).then_some(held.mod_revision));
    }
    let txn = Txn {
        compares: vec![Compare::ModRevision { key: lock_key.to_owned(), revision: 0 }],
        success: vec![Op::Put {
            key: lock_key.to_owned(),
            value: session.id.clone().into_bytes(),
            lease: Some(session.lease),
        }],
    };
    let outcome = store.txn(txn).await.map_err(store_error)?;
    Ok(outcome.succeeded.then_some(outcome.revision))
}

/// The result of one round of calls to one facility.
struct Observed {
    state: TaskState,
    message: String,
    nodes: Vec<crate::types::ElementStatus>,
    links: Vec<crate::types::ElementStatus>,
}

impl Driver {
    fn mzid(&self) -> String {
        format!("{}.{}.{}", self.realization, self.experiment, self.project)
    }

    async fn step(&mut self) -> Result<Next, Error> {
        let store = self.service.store.as_ref();
        // Facility calls cannot be fenced, so stop before making any once the lock is gone.
        let lock = store.get(&self.lock_key).await.map_err(store_error)?;
        if lock.is_none_or(|kv| kv.mod_revision != self.lock_revision) {
            return Ok(Next::LostLock);
        }
        let Some(wanted) = load::<MaterializationRecord>(store, &self.key).await? else {
            self.release().await?;
            return Ok(Next::Done);
        };
        let status_key = keys::status(&self.project, &self.experiment, &self.realization);
        let before: StatusRecord = load(store, &status_key).await?.map(|v| v.value).unwrap_or_default();
        let mut status = before.clone();
        let record = &wanted.value;
        let cfg = &self.service.config.controller;
        let wait = match record.phase {
            Phase::Active => {
                if !self.realization_exists().await? {
                    tracing::warn!(mzid = %self.mzid(), "its realization is gone; dematerializing");
                    self.mark_dematerializing(&wanted).await?;
                    return Ok(Next::After(Duration::ZERO));
                }
                for facility in &record.facilities {
                    self.converge(record, facility, &mut status).await;
                }
                let settled = status
                    .facilities
                    .values()
                    .all(|f| f.failures == 0 && matches!(f.state, TaskState::Success | TaskState::Error));
                if settled { cfg.poll_settled } else { cfg.poll_busy }
            }
            Phase::Dematerializing => {
                for facility in &record.facilities {
                    self.tear_down(&facility.facility, &mut status).await;
                }
                let gone = record.facilities.iter().all(|f| {
                    status.facilities.get(&f.facility).is_some_and(|s| s.state == TaskState::Deleted)
                });
                if gone {
                    return self.finish(&wanted).await;
                }
                cfg.poll_busy
            }
        };
        // Retrying a facility that failed waits longer the more often it failed.
        let failures = status.facilities.values().map(|f| f.failures).max().unwrap_or(0);
        let wait = if failures > 0 { retry_delay(failures, cfg.retry_min, cfg.retry_max) } else { wait };
        if status != before {
            let now = now_unix();
            if status.first_updated == 0 {
                status.first_updated = now;
            }
            status.last_updated = now;
            if !self.write_status(&status_key, &status).await? {
                return Ok(Next::LostLock);
            }
        }
        Ok(Next::After(wait))
    }

    /// Sends the spec if the facility does not have this generation, then reads its status.
    async fn converge(&self, record: &MaterializationRecord, spec: &FacilitySpec, status: &mut StatusRecord) {
        let entry = status.facilities.entry(spec.facility.clone()).or_default();
        let result = async {
            let mut client = self.client(&spec.facility).await?;
            if entry.sent_generation != record.generation {
                let request =
                    MaterializeRequest { materialization: Some(proto::materialization(record, spec)) };
                self.call(&spec.facility, client.materialize(request)).await?;
                entry.sent_generation = record.generation;
            }
            let reply = self.call(&spec.facility, client.status(StatusRequest { mzid: self.mzid() })).await?;
            let agent_state = v1::State::try_from(reply.state).unwrap_or(v1::State::Unspecified);
            if matches!(agent_state, v1::State::Unspecified | v1::State::Deleted) {
                // The agent lost it (a restart, say): send it again on the next step.
                entry.sent_generation = 0;
                return Ok(Observed {
                    state: TaskState::Pending,
                    message: "the facility does not have it; sending it again".to_owned(),
                    nodes: vec![],
                    links: vec![],
                });
            }
            let nodes = proto::node_statuses(&reply);
            let links = proto::link_statuses(&reply);
            let state = proto::task_state(reply.state);
            let message = match state {
                TaskState::Error => nodes
                    .iter()
                    .chain(&links)
                    .find(|e| e.state == TaskState::Error)
                    .map(|e| format!("{}: {}", e.name, e.message))
                    .unwrap_or_else(|| "the facility reports a failure".to_owned()),
                _ => String::new(),
            };
            Ok(Observed { state, message, nodes, links })
        }
        .await;
        record_outcome(entry, result);
    }

    /// Asks the facility to tear it down and checks whether it is gone.
    async fn tear_down(&self, facility: &str, status: &mut StatusRecord) {
        let entry = status.facilities.entry(facility.to_owned()).or_default();
        if entry.state == TaskState::Deleted {
            return;
        }
        let result = async {
            let facility_record = match self.service.realize.facility(facility).await {
                Ok((record, _)) => record,
                // Nothing left to ask: the facility itself was removed.
                Err(Error::NotFound { .. }) => {
                    return Ok(Observed {
                        state: TaskState::Deleted,
                        message: "the facility no longer exists".to_owned(),
                        nodes: vec![],
                        links: vec![],
                    });
                }
                Err(err) => return Err(err),
            };
            let mut client = self.service.connector.client(&facility_record).await?;
            self.call(facility, client.dematerialize(DematerializeRequest { mzid: self.mzid() })).await?;
            let reply = self.call(facility, client.status(StatusRequest { mzid: self.mzid() })).await?;
            let gone = matches!(
                v1::State::try_from(reply.state).unwrap_or(v1::State::Unspecified),
                v1::State::Unspecified | v1::State::Deleted
            );
            Ok(Observed {
                state: if gone { TaskState::Deleted } else { TaskState::Processing },
                message: if gone { String::new() } else { "tearing down".to_owned() },
                nodes: proto::node_statuses(&reply),
                links: proto::link_statuses(&reply),
            })
        }
        .await;
        record_outcome(entry, result);
    }

    async fn client(
        &self,
        facility: &str,
    ) -> Result<v1::facility_client::FacilityClient<tonic::transport::Channel>, Error> {
        let (record, _) = self.service.realize.facility(facility).await?;
        self.service.connector.client(&record).await
    }

    async fn call<T>(
        &self,
        facility: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.service.config.controller.call_timeout, call).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(facility_error(facility, &status)),
            Err(_) => Err(Error::Unavailable(format!("facility {facility} did not answer in time"))),
        }
    }

    async fn realization_exists(&self) -> Result<bool, Error> {
        let key = trellis_realize::keys::realization(&self.project, &self.experiment, &self.realization);
        Ok(self.service.store.get(&key).await.map_err(store_error)?.is_some())
    }

    async fn mark_dematerializing(&self, wanted: &Versioned<MaterializationRecord>) -> Result<(), Error> {
        let mut record = wanted.value.clone();
        record.phase = Phase::Dematerializing;
        record.generation += 1;
        // A lost race means the record changed; the next step reads it again.
        let txn = Txn {
            compares: vec![Compare::ModRevision { key: self.key.clone(), revision: wanted.revision }],
            success: vec![put(&self.key, &record)?],
        };
        self.service.store.txn(txn).await.map_err(store_error)?;
        Ok(())
    }

    /// Writes the status while this driver holds the lock; `false` if it no longer does.
    async fn write_status(&self, status_key: &str, status: &StatusRecord) -> Result<bool, Error> {
        let txn = Txn {
            compares: vec![Compare::ModRevision { key: self.lock_key.clone(), revision: self.lock_revision }],
            success: vec![put(status_key, status)?],
        };
        Ok(self.service.store.txn(txn).await.map_err(store_error)?.succeeded)
    }

    /// Every facility tore it down: remove the wanted record, status, ingress routes and lock.
    async fn finish(&self, wanted: &Versioned<MaterializationRecord>) -> Result<Next, Error> {
        let store = self.service.store.as_ref();
        let mzid = self.mzid();
        let routes: Vec<Versioned<IngressRoute>> = load_all(store, &keys::ingress_routes(&mzid)).await?;
        let mut success = vec![
            Op::Delete { key: self.key.clone() },
            Op::Delete { key: keys::status(&self.project, &self.experiment, &self.realization) },
            Op::Delete { key: self.lock_key.clone() },
            Op::DeletePrefix { prefix: keys::ingress_routes(&mzid) },
        ];
        success
            .extend(routes.iter().filter_map(|r| r.value.gateway_port_key()).map(|key| Op::Delete { key }));
        let txn = Txn {
            compares: vec![
                Compare::ModRevision { key: self.lock_key.clone(), revision: self.lock_revision },
                // No ingress route can be added once the record says dematerializing (adding one
                // compares the record), so the routes read above are all there are.
                Compare::ModRevision { key: self.key.clone(), revision: wanted.revision },
            ],
            success,
        };
        if store.txn(txn).await.map_err(store_error)?.succeeded {
            tracing::info!(%mzid, "dematerialized");
            return Ok(Next::Done);
        }
        let still_ours = store.get(&self.lock_key).await.map_err(store_error)?;
        if still_ours.is_none_or(|kv| kv.mod_revision != self.lock_revision) {
            return Ok(Next::LostLock);
        }
        Ok(Next::After(Duration::ZERO))
    }

    async fn release(&self) -> Result<(), Error> {
        let txn = Txn {
            compares: vec![Compare::ModRevision { key: self.lock_key.clone(), revision: self.lock_revision }],
            success: vec![Op::Delete { key: self.lock_key.clone() }],
        };
        self.service.store.txn(txn).await.map_err(store_error)?;
        Ok(())
    }
}

/// Folds one round's outcome into a facility's status; `since` moves only when the state or
/// message changes, so an unchanged status is not written again.
fn record_outcome(entry: &mut FacilityStatus, result: Result<Observed, Error>) {
    let (state, message) = match result {
        Ok(observed) => {
            entry.failures = 0;
            entry.nodes = observed.nodes;
            entry.links = observed.links;
            (observed.state, observed.message)
        }
        Err(err) => {
            entry.failures = entry.failures.saturating_add(1);
            match err {
                Error::Unavailable(why) => (TaskState::Unresponsive, why),
                Error::FailedPrecondition(why) | Error::Internal(why) => (TaskState::Error, why),
                other => (TaskState::Error, other.to_string()),
            }
        }
    };
    if entry.state != state || entry.message != message {
        entry.state = state;
        entry.message = message;
        entry.since = now_unix();
    }
}
