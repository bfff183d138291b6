//! Commissioning: facilities, their XIR models, and which of their resources are active.
//!
//! Replacing a model or deleting a facility must not strand allocations, but a realization may
//! commit new allocation keys at any moment, and no compare can say "no new key under this
//! prefix". So such a change first writes a change marker for the facility: realizations
//! compare the marker's absence for every facility they take resources from, and leave a
//! marked facility alone. Once the marker is in, the allocation table can only shrink for that
//! facility, the check is final, and the change commits together with deleting the marker.

use std::collections::{BTreeSet, HashSet};

use prost::Message;
use serde::{Deserialize, Serialize};
use trellis_api::xir;
use trellis_embed::{ResourceKey, Testbed};
use trellis_store::{Compare, Op, Txn};
use trellis_types::{Error, validate_name};

use crate::keys;
use crate::service::RealizeService;
use crate::stored::{
    Versioned, backoff, commit, decode, load, load_all, now_unix, put, retrying, store_error,
};
use crate::types::{Allocation, FacilityRecord};

/// A change marker older than this belongs to a request that died; the next change takes it
/// over and realizations ignore it.
pub const CHANGE_TIMEOUT_SECS: i64 = 60;

/// A model replacement or deletion in progress (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacilityChange {
    pub what: String,
    /// Seconds since the epoch.
    pub started: i64,
}

impl FacilityChange {
    pub fn is_live(&self, now: i64) -> bool {
        now - self.started < CHANGE_TIMEOUT_SECS
    }
}

fn encode_model(model: &xir::Facility) -> Vec<u8> {
    model.encode_to_vec()
}

pub fn decode_model(name: &str, bytes: &[u8]) -> Result<xir::Facility, Error> {
    xir::Facility::decode(bytes)
        .map_err(|e| Error::Internal(format!("the model of facility {name} is corrupt: {e}")))
}

/// Checks a model for facility `name` and returns the resource graph built from it.
fn validate_model(name: &str, model: &mut xir::Facility) -> Result<Testbed, Error> {
    if model.id.is_empty() {
        model.id = name.to_owned();
    } else if model.id != name {
        return Err(Error::invalid(
            "model",
            format!("the model describes facility {:?} but is being registered as {name:?}", model.id),
        ));
    }
    Testbed::from_facilities(std::slice::from_ref(model)).map_err(|e| Error::invalid("model", e.to_string()))
}

/// Names in `wanted` that are not resources of `model`.
fn unknown_resources<'a>(model: &xir::Facility, wanted: &'a [String]) -> Vec<&'a str> {
    let known: HashSet<&str> = model.resources.iter().map(|r| r.id.as_str()).collect();
    wanted.iter().map(String::as_str).filter(|r| !known.contains(r)).collect()
}

/// Allocated resources of `facility` that `testbed` (its new model) no longer has, with the
/// realizations holding them.
fn stranded(facility: &str, testbed: &Testbed, table: &[(ResourceKey, Vec<Allocation>)]) -> Vec<String> {
    let hosts: HashSet<&str> =
        testbed.hosts.iter().filter(|h| h.facility == facility).map(|h| h.name.as_str()).collect();
    let ports: HashSet<(&str, &str)> = testbed
        .hosts
        .iter()
        .filter(|h| h.facility == facility)
        .flat_map(|h| h.ports.iter().map(move |p| (h.name.as_str(), p.name.as_str())))
        .collect();
    let trunks: HashSet<&str> =
        testbed.trunks.iter().filter(|t| t.facility == facility).map(|t| t.name.as_str()).collect();
    let mut missing = Vec::new();
    for (key, allocations) in table {
        let gone = match key {
            ResourceKey::Host { facility: f, host } => f == facility && !hosts.contains(host.as_str()),
            ResourceKey::Port { facility: f, host, port } => {
                f == facility && !ports.contains(&(host.as_str(), port.as_str()))
            }
            ResourceKey::Trunk { facility: f, trunk } => f == facility && !trunks.contains(trunk.as_str()),
            ResourceKey::Vlan { .. } => false,
        };
        if gone {
            let holders: BTreeSet<&str> = allocations.iter().map(|a| a.mzid.as_str()).collect();
            missing.push(format!(
                "{} (held by {})",
                keys::resource_path(key),
                holders.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    missing
}

/// The allocation table of one facility.
async fn facility_allocations(
    service: &RealizeService,
    facility: &str,
) -> Result<Vec<(ResourceKey, Vec<Allocation>)>, Error> {
    let mut held = Vec::new();
    for kv in service.store.range(keys::ALLOC).await.map_err(store_error)?.kvs {
        let Some(key) = keys::parse_resource(&kv.key) else { continue };
        if keys::resource_facility(&key) == facility {
            let allocations: Versioned<Vec<Allocation>> = decode(&kv)?;
            held.push((key, allocations.value));
        }
    }
    Ok(held)
}

/// A change marker this request holds.
struct Marker {
    key: String,
    revision: i64,
}

impl RealizeService {
    /// Registers a facility with its XIR model. Fails if the name is taken or the model is
    /// not understood (the error names the element).
    pub async fn register_facility(
        &self,
        mut record: FacilityRecord,
        mut model: xir::Facility,
    ) -> Result<(), Error> {
        validate_name("facility", &record.name)?;
        let name = record.name.clone();
        validate_model(&name, &mut model)?;
        let unknown = unknown_resources(&model, &record.deactivated);
        if !unknown.is_empty() {
            return Err(Error::invalid(
                "deactivated",
                format!("facility {name} has no resources named {}", unknown.join(", ")),
            ));
        }
        record.deactivated =
            record.deactivated.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        record.ver = 1;
        if record.created == 0 {
            record.created = now_unix();
        }
        let txn = Txn {
            compares: vec![
                Compare::ModRevision { key: keys::facility(&name), revision: 0 },
                Compare::ModRevision { key: keys::facility_model(&name), revision: 0 },
            ],
            success: vec![
                put(&keys::facility(&name), &record)?,
                Op::Put { key: keys::facility_model(&name), value: encode_model(&model), lease: None },
                // A marker left by a deletion that died with the facility's previous incarnation.
                Op::Delete { key: keys::facility_change(&name) },
            ],
        };
        if commit(self.store.as_ref(), txn).await? {
            Ok(())
        } else {
            Err(Error::already_exists("facility", name))
        }
    }

    pub async fn facility(&self, name: &str) -> Result<(FacilityRecord, Option<xir::Facility>), Error> {
        let record = self.facility_record(name).await?;
        let model = match self.store.get(&keys::facility_model(name)).await.map_err(store_error)? {
            Some(kv) => Some(decode_model(name, &kv.value)?),
            None => None,
        };
        Ok((record.value, model))
    }

    pub async fn facilities(&self) -> Result<Vec<FacilityRecord>, Error> {
        Ok(load_all(self.store.as_ref(), keys::FACILITIES).await?.into_iter().map(|v| v.value).collect())
    }

    async fn facility_record(&self, name: &str) -> Result<Versioned<FacilityRecord>, Error> {
        load(self.store.as_ref(), &keys::facility(name))
            .await?
            .ok_or_else(|| Error::not_found("facility", name))
    }

    /// Replaces the address, description, certificates and/or model (`None` keeps the old).
    /// A new model must still contain every resource that has allocations.
    pub async fn update_facility(
        &self,
        name: &str,
        address: Option<String>,
        description: Option<String>,
        model: Option<xir::Facility>,
    ) -> Result<(), Error> {
        let apply = |record: &mut FacilityRecord| {
            if let Some(address) = &address {
                record.address.clone_from(address);
            }
            if let Some(description) = &description {
                record.description.clone_from(description);
            }
            record.ver += 1;
        };
        let Some(mut model) = model else {
            let store = self.store.as_ref();
            return retrying(&format!("updating facility {name}"), || async {
                let mut record = self.facility_record(name).await?;
                apply(&mut record.value);
                let txn = Txn {
                    compares: vec![Compare::ModRevision {
                        key: keys::facility(name),
                        revision: record.revision,
                    }],
                    success: vec![put(&keys::facility(name), &record.value)?],
                };
                Ok(commit(store, txn).await?.then_some(()))
            })
            .await;
        };
        let testbed = validate_model(name, &mut model)?;
        let marker = self.begin_change(name, "replacing the model").await?;
        let result = async {
            let stranded = stranded(name, &testbed, &facility_allocations(self, name).await?);
            if !stranded.is_empty() {
                return Err(Error::FailedPrecondition(format!(
                    "the new model of facility {name} lacks resources that realizations hold: {}; \
                     relinquish those realizations first",
                    stranded.join("; ")
                )));
            }
            let known: HashSet<&str> = model.resources.iter().map(|r| r.id.as_str()).collect();
            let model_bytes = encode_model(&model);
            self.finish_change(&marker, name, |record| {
                apply(record);
                // Deactivating a resource the new model dropped means nothing any more.
                record.deactivated.retain(|r| known.contains(r.as_str()));
                Ok(vec![Op::Put { key: keys::facility_model(name), value: model_bytes.clone(), lease: None }])
            })
            .await
        }
        .await;
        self.abandon_change_on_error(&marker, result).await
    }

    /// Deletes a facility; refused while any realization holds its resources.
    pub async fn delete_facility(&self, name: &str) -> Result<(), Error> {
        let marker = self.begin_change(name, "deleting the facility").await?;
        let result = async {
            let held = facility_allocations(self, name).await?;
            if !held.is_empty() {
                let holders: BTreeSet<&str> =
                    held.iter().flat_map(|(_, a)| a.iter().map(|a| a.mzid.as_str())).collect();
                return Err(Error::FailedPrecondition(format!(
                    "facility {name} still has resources reserved by {}; relinquish them first",
                    holders.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
            let record = self.facility_record(name).await?;
            let txn = Txn {
                compares: vec![
                    Compare::ModRevision { key: marker.key.clone(), revision: marker.revision },
                    Compare::ModRevision { key: keys::facility(name), revision: record.revision },
                ],
                success: vec![
                    Op::Delete { key: keys::facility(name) },
                    Op::Delete { key: keys::facility_model(name) },
                    Op::Delete { key: marker.key.clone() },
                ],
            };
            if commit(self.store.as_ref(), txn).await? {
                Ok(())
            } else {
                Err(Error::Aborted(format!("facility {name} changed while it was being deleted; try again")))
            }
        }
        .await;
        self.abandon_change_on_error(&marker, result).await
    }

    /// Marks resources active or inactive; inactive ones are never chosen by new realizations.
    pub async fn set_resources_active(
        &self,
        facility: &str,
        resources: &[String],
        active: bool,
    ) -> Result<(), Error> {
        let store = self.store.as_ref();
        retrying(&format!("changing resources of facility {facility}"), || async {
            let mut record = self.facility_record(facility).await?;
            // The record's revision covers the model: both are always written together.
            let model = self.store.get(&keys::facility_model(facility)).await.map_err(store_error)?;
            let model = model.ok_or_else(|| Error::Internal(format!("facility {facility} has no model")))?;
            let model = decode_model(facility, &model.value)?;
            let unknown = unknown_resources(&model, resources);
            if !unknown.is_empty() {
                return Err(Error::invalid(
                    "resources",
                    format!("facility {facility} has no resources named {}", unknown.join(", ")),
                ));
            }
            let mut deactivated: BTreeSet<String> = record.value.deactivated.iter().cloned().collect();
            for resource in resources {
                if active {
                    deactivated.remove(resource);
                } else {
                    deactivated.insert(resource.clone());
                }
            }
            let deactivated: Vec<String> = deactivated.into_iter().collect();
            if deactivated == record.value.deactivated {
                return Ok(Some(()));
            }
            record.value.deactivated = deactivated;
            record.value.ver += 1;
            let txn = Txn {
                compares: vec![Compare::ModRevision {
                    key: keys::facility(facility),
                    revision: record.revision,
                }],
                success: vec![put(&keys::facility(facility), &record.value)?],
            };
            Ok(commit(store, txn).await?.then_some(()))
        })
        .await
    }

    /// Writes the change marker for `name`, taking over one that timed out.
    async fn begin_change(&self, name: &str, what: &str) -> Result<Marker, Error> {
        let key = keys::facility_change(name);
        let change = FacilityChange { what: what.to_owned(), started: now_unix() };
        for attempt in 0..crate::stored::MAX_ATTEMPTS {
            let record = self.facility_record(name).await?;
            let current: Option<Versioned<FacilityChange>> = load(self.store.as_ref(), &key).await?;
            let seen = match &current {
                Some(c) if c.value.is_live(now_unix()) => {
                    return Err(Error::Aborted(format!(
                        "facility {name} is busy ({}); try again shortly",
                        c.value.what
                    )));
                }
                Some(stale) => stale.revision,
                None => 0,
            };
            let txn = Txn {
                compares: vec![
                    Compare::ModRevision { key: key.clone(), revision: seen },
                    Compare::ModRevision { key: keys::facility(name), revision: record.revision },
                ],
                success: vec![put(&key, &change)?],
            };
            let outcome = self.store.txn(txn).await.map_err(store_error)?;
            if outcome.succeeded {
                return Ok(Marker { key, revision: outcome.revision });
            }
            backoff(attempt).await;
        }
        Err(Error::Aborted(format!("facility {name} is changing too often; try again")))
    }

    /// Commits a change under `marker`: the record as changed by `change` (which also returns
    /// further ops), and the marker's removal. Retries when only the record moved (an address
    /// or activation change); fails when the marker was taken over.
    async fn finish_change(
        &self,
        marker: &Marker,
        name: &str,
        change: impl Fn(&mut FacilityRecord) -> Result<Vec<Op>, Error>,
    ) -> Result<(), Error> {
        for attempt in 0..crate::stored::MAX_ATTEMPTS {
            let mut record = self.facility_record(name).await?;
            let mut ops = change(&mut record.value)?;
            ops.push(put(&keys::facility(name), &record.value)?);
            ops.push(Op::Delete { key: marker.key.clone() });
            let txn = Txn {
                compares: vec![
                    Compare::ModRevision { key: marker.key.clone(), revision: marker.revision },
                    Compare::ModRevision { key: keys::facility(name), revision: record.revision },
                ],
                success: ops,
            };
            if commit(self.store.as_ref(), txn).await? {
                return Ok(());
            }
            let still_ours = self.store.get(&marker.key).await.map_err(store_error)?;
            if still_ours.is_none_or(|kv| kv.mod_revision != marker.revision) {
                return Err(Error::Aborted(format!(
                    "the change to facility {name} took too long and was overtaken; try again"
                )));
            }
            backoff(attempt).await;
        }
        Err(Error::Aborted(format!("facility {name} is changing too often; try again")))
    }

    /// Removes `marker` if the change failed (best effort: a marker left behind times out).
    async fn abandon_change_on_error(&self, marker: &Marker, result: Result<(), Error>) -> Result<(), Error> {
        if result.is_err() {
            let txn = Txn {
                compares: vec![Compare::ModRevision { key: marker.key.clone(), revision: marker.revision }],
                success: vec![Op::Delete { key: marker.key.clone() }],
            };
            if let Err(err) = self.store.txn(txn).await {
                tracing::warn!(key = %marker.key, %err, "could not remove a facility change marker; it will time out");
            }
        }
        result
    }
}
