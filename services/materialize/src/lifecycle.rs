//! What the API asks of materializations: create, read, tear down, status, reboot.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use tonic::Code;
use trellis_api::xir;
use trellis_facility_api::v1::RebootRequest;
use trellis_realize::{RealizationRecord, RealizationStatus};
use trellis_store::{Compare, EventKind, Op, Txn};
use trellis_types::{Error, MemberState, UserState, validate_name};

use crate::keys;
use crate::service::MaterializeService;
use crate::spec::{self, Extras};
use crate::status;
use crate::stored::{decode, load, load_all, now_unix, put, retrying, store_error};
use crate::types::{MaterializationRecord, Phase, StatusRecord, StatusTree, UserSpec};

pub fn mzid(project: &str, experiment: &str, realization: &str) -> String {
    format!("{realization}.{experiment}.{project}")
}

fn validate_names(project: &str, experiment: &str, realization: &str) -> Result<(), Error> {
    validate_name("project", project)?;
    validate_name("experiment", experiment)?;
    validate_name("realization", realization)
}

/// A facility's refusal or failure as an error for people.
pub fn facility_error(facility: &str, status: &tonic::Status) -> Error {
    // A transport failure (refused connection, TLS alert) hides its reason in the source chain.
    let mut source = std::error::Error::source(status);
    if source.is_some() {
        let mut parts = vec![status.message().to_owned()];
        while let Some(cause) = source {
            let text = cause.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            source = cause.source();
        }
        return Error::Unavailable(format!("facility {facility}: {}", parts.join(": ")));
    }
    let text = format!("facility {facility}: {}", status.message());
    match status.code() {
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            Error::FailedPrecondition(text)
        }
        Code::NotFound => Error::FailedPrecondition(text),
        Code::Internal | Code::Unknown | Code::DataLoss | Code::Unimplemented => Error::Internal(text),
        _ => Error::Unavailable(text),
    }
}

impl MaterializeService {
    /// Materializes a realization: resolves the model revision it realized and records the
    /// wanted state; the controller brings it up. `AlreadyExists` if it is materialized.
    pub async fn materialize(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        creator: &str,
    ) -> Result<MaterializationRecord, Error> {
        validate_names(project, experiment, realization)?;
        let record = self.realize.realization(project, experiment, realization).await?;
        let (_, xir) = self.models.revision(project, experiment, &record.revision).await?;
        let network = xir::Network::decode(xir.as_slice()).map_err(|e| {
            Error::Internal(format!("revision {} holds unreadable XIR: {e}", record.revision))
        })?;
        self.materialize_network(project, experiment, realization, &network, creator).await
    }

    /// What [`Self::materialize`] does once it has the realization's model (tests and tools
    /// with a network in hand call it directly).
    pub async fn materialize_network(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        network: &xir::Network,
        creator: &str,
    ) -> Result<MaterializationRecord, Error> {
        validate_names(project, experiment, realization)?;
        let users = self.project_users(project).await?;
        let id = mzid(project, experiment, realization);
        let key = keys::materialization(project, experiment, realization);
        let realization_key = trellis_realize::keys::realization(project, experiment, realization);
        let store = self.store.as_ref();
        retrying(&format!("materializing {id}"), || async {
            let Some(kv) = store.get(&realization_key).await.map_err(store_error)? else {
                return Err(Error::not_found("realization", &id));
            };
            let read = decode::<RealizationRecord>(&kv)?;
            if read.value.status == RealizationStatus::Relinquishing {
                return Err(Error::FailedPrecondition(format!("{id} is being relinquished")));
            }
            if let Some(existing) = load::<MaterializationRecord>(store, &key).await? {
                return Err(match existing.value.phase {
                    Phase::Active => Error::already_exists("materialization", &id),
                    Phase::Dematerializing => Error::FailedPrecondition(format!(
                        "{id} is still being dematerialized; materialize it again once that is done"
                    )),
                });
            }
            let extras = Extras {
                users: users.clone(),
                ssh_ca_public_key: self.config.ssh_ca_public_key.clone(),
                creator: creator.to_owned(),
                created: now_unix(),
            };
            let record = spec::build(&read.value, network, extras)?;
            let txn = Txn {
                compares: vec![
                    Compare::ModRevision { key: key.clone(), revision: 0 },
                    // Never materialize a realization that was relinquished or changed meanwhile.
                    Compare::ModRevision { key: realization_key.clone(), revision: read.revision },
                ],
                success: vec![
                    put(&key, &record)?,
                    Op::Delete { key: keys::status(project, experiment, realization) },
                ],
            };
            let committed = store.txn(txn).await.map_err(store_error)?.succeeded;
            Ok(committed.then_some(record))
        })
        .await
    }

    pub async fn materialization(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
    ) -> Result<MaterializationRecord, Error> {
        validate_names(project, experiment, realization)?;
        load(self.store.as_ref(), &keys::materialization(project, experiment, realization))
            .await?
            .map(|v| v.value)
            .ok_or_else(|| Error::not_found("materialization", mzid(project, experiment, realization)))
    }

    /// Every materialization (the API filters by what the caller may see).
    pub async fn materializations(&self) -> Result<Vec<MaterializationRecord>, Error> {
        let all = load_all(self.store.as_ref(), keys::MATERIALIZATIONS).await?;
        Ok(all.into_iter().map(|v| v.value).collect())
    }

    /// Asks for a materialization to be torn down; the controller does it and then removes
    /// every record of it. Asking again while it is underway is not an error.
    pub async fn dematerialize(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
    ) -> Result<(), Error> {
        validate_names(project, experiment, realization)?;
        let id = mzid(project, experiment, realization);
        let key = keys::materialization(project, experiment, realization);
        let store = self.store.as_ref();
        retrying(&format!("dematerializing {id}"), || async {
            let Some(mut read) = load::<MaterializationRecord>(store, &key).await? else {
                return Err(Error::not_found("materialization", &id));
            };
            if read.value.phase == Phase::Dematerializing {
                return Ok(Some(()));
            }
            read.value.phase = Phase::Dematerializing;
            read.value.generation += 1;
            let txn = Txn {
                compares: vec![Compare::ModRevision { key: key.clone(), revision: read.revision }],
                success: vec![put(&key, &read.value)?],
            };
            Ok(store.txn(txn).await.map_err(store_error)?.succeeded.then_some(()))
        })
        .await
    }

    /// Dematerializes (if materialized at all) and waits until every facility has torn it
    /// down and its records are gone. Relinquishing calls this first, so resources are never
    /// handed to another realization while still in use. Fails with `Unavailable` after
    /// `timeout` (the teardown goes on; calling again waits again).
    pub async fn dematerialize_and_wait(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        timeout: Duration,
    ) -> Result<(), Error> {
        let id = mzid(project, experiment, realization);
        match self.dematerialize(project, experiment, realization).await {
            Ok(()) => {}
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err),
        }
        let key = keys::materialization(project, experiment, realization);
        let gone = async {
            loop {
                // Watch from the current state so a deletion between the read and the watch
                // is not missed; the periodic re-read covers a watch that ends early.
                let Some(kv) = self.store.get(&key).await.map_err(store_error)? else { return Ok(()) };
                let mut events = self.store.watch(&key, kv.mod_revision + 1).await.map_err(store_error)?;
                let recheck = tokio::time::sleep(Duration::from_secs(5));
                tokio::pin!(recheck);
                loop {
                    tokio::select! {
                        event = events.next() => match event {
                            Some(Ok(e)) if e.kind == EventKind::Delete && e.kv.key == key => return Ok(()),
                            Some(Ok(_)) => {}
                            Some(Err(_)) | None => break,
                        },
                        () = &mut recheck => break,
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, gone).await {
            Ok(result) => result,
            Err(_) => Err(Error::Unavailable(format!(
                "{id} is still being dematerialized after {}s; try again later",
                timeout.as_secs()
            ))),
        }
    }

    /// What the controller last recorded, if anything.
    pub async fn status_record(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
    ) -> Result<Option<StatusRecord>, Error> {
        validate_names(project, experiment, realization)?;
        let key = keys::status(project, experiment, realization);
        Ok(load(self.store.as_ref(), &key).await?.map(|v| v.value))
    }

    /// The status tree: the materialization, each facility, and each node and link.
    pub async fn status(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
    ) -> Result<StatusTree, Error> {
        let record = self.materialization(project, experiment, realization).await?;
        let observed = self.status_record(project, experiment, realization).await?;
        Ok(status::tree(&record, observed.as_ref()))
    }

    /// Restarts `nodes` (empty: every node) now, through their facilities.
    pub async fn reboot(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        nodes: &[String],
    ) -> Result<(), Error> {
        let record = self.materialization(project, experiment, realization).await?;
        if record.phase == Phase::Dematerializing {
            return Err(Error::FailedPrecondition(format!("{} is being dematerialized", record.mzid())));
        }
        let mut by_facility: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        if nodes.is_empty() {
            for facility in &record.facilities {
                by_facility.insert(&facility.facility, vec![]);
            }
        }
        for node in nodes {
            let (facility, _) = record.node(node).ok_or_else(|| Error::not_found("node", node))?;
            by_facility.entry(facility).or_default().push(node.clone());
        }
        let mzid = record.mzid();
        for (facility, nodes) in by_facility {
            let (facility_record, _) = self.realize.facility(facility).await?;
            let mut client = self.connector.client(&facility_record).await?;
            let call = client.reboot(RebootRequest { mzid: mzid.clone(), nodes });
            tokio::time::timeout(self.config.controller.call_timeout, call)
                .await
                .map_err(|_| Error::Unavailable(format!("facility {facility} did not answer in time")))?
                .map_err(|status| facility_error(facility, &status))?;
        }
        Ok(())
    }

    /// The project's active members who may log in to its nodes, with their keys.
    pub async fn project_users(&self, project: &str) -> Result<Vec<UserSpec>, Error> {
        let project = self.workspace.get_project(project).await?;
        let mut users = Vec::new();
        for (name, member) in &project.members {
            if member.state != MemberState::Active {
                continue;
            }
            let Some(user) = self.workspace.find_user(name).await? else { continue };
            if user.state != UserState::Active {
                continue;
            }
            let keys = match self.workspace.public_keys(name).await {
                Ok(keys) => keys,
                // Deleted since the project was read.
                Err(Error::NotFound { .. }) => continue,
                Err(err) => return Err(err),
            };
            users.push(UserSpec {
                name: name.clone(),
                uid: user.uid,
                gid: user.gid,
                authorized_keys: keys.into_iter().map(|k| k.key).collect(),
            });
        }
        Ok(users)
    }
}
