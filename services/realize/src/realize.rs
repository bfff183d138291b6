//! Realizing: embed a revision's network into what is free, then commit every claim, the
//! record and the infranet subnet in one transaction guarded by the revisions read.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prost::Message;
use rand::Rng;
use trellis_api::xir;
use trellis_embed::{Embedding, Options, Request, ResourceKey, Testbed, Unrealizable, Usage, embed};
use trellis_store::{Compare, Op, StoreError, Txn};
use trellis_types::{Error, Violation, validate_name};

use crate::infranet;
use crate::keys;
use crate::pools::{self, DEFAULT_POOL};
use crate::service::RealizeService;
use crate::snapshot::{self, FacilityState};
use crate::stored::{MAX_ATTEMPTS, backoff, load, now_unix, put, store_error};
use crate::types::{Allocation, Duration, RealizationRecord, RealizationStatus, RevisionRef};

/// Merge's materialization id.
pub fn mzid(project: &str, experiment: &str, realization: &str) -> String {
    format!("{realization}.{experiment}.{project}")
}

pub fn validate_names(project: &str, experiment: &str, realization: &str) -> Result<(), Error> {
    validate_name("project", project)?;
    validate_name("experiment", experiment)?;
    validate_name("realization", realization)
}

pub fn expiry(duration: Duration, now: i64) -> Option<i64> {
    match duration {
        Duration::Given(seconds) => Some(now.saturating_add(seconds)),
        Duration::Never => None,
    }
}

/// Why the engine found no embedding, for people.
fn unrealizable(mzid: &str, why: Unrealizable) -> Error {
    let reasons: Vec<String> = why
        .diagnostics
        .iter()
        .map(|d| {
            let mut line = match &d.element {
                // The engine's messages usually name the element already.
                Some(element) if !d.message.starts_with(element.as_str()) => {
                    format!("{element}: {}", d.message)
                }
                _ => d.message.clone(),
            };
            let detail: Vec<String> = [
                d.constraint.as_ref().map(|c| format!("constraint {c}")),
                d.candidates_left.map(|n| format!("{n} candidates left")),
            ]
            .into_iter()
            .flatten()
            .collect();
            // The engine's own message may already say how many candidates were left.
            if !detail.is_empty() && !line.contains("candidate") {
                line.push_str(&format!(" ({})", detail.join(", ")));
            }
            line
        })
        .collect();
    let reasons =
        if reasons.is_empty() { "the engine gave no reason".to_owned() } else { reasons.join("; ") };
    Error::FailedPrecondition(format!("{mzid} cannot be realized: {reasons}"))
}

/// A store failure committing a realization; etcd's size limits get an operator-facing hint.
fn transaction_refused(err: StoreError, size: usize) -> Error {
    let text = err.to_string();
    if text.contains("too many operations") || text.contains("request is too large") {
        return Error::Internal(format!(
            "the state store refused a realization of {size} operations ({text}); \
             run etcd with --max-txn-ops 10000 --max-request-bytes 33554432"
        ));
    }
    store_error(err)
}

/// The experiment elements each claimed resource serves (claims are per resource, so an
/// allocation names every element of the realization using it).
fn elements_by_resource(testbed: &Testbed, embedding: &Embedding) -> HashMap<ResourceKey, BTreeSet<String>> {
    let mut elements: HashMap<ResourceKey, BTreeSet<String>> = HashMap::new();
    let host = |id: trellis_embed::HostId| testbed.hosts.get(id.0 as usize);
    for node in &embedding.nodes {
        if let Some(h) = host(node.host) {
            let key = ResourceKey::Host { facility: h.facility.clone(), host: h.name.clone() };
            elements.entry(key).or_default().insert(node.node.clone());
        }
    }
    for link in &embedding.links {
        for endpoint in &link.endpoints {
            let Some(h) = host(endpoint.host) else { continue };
            if let Some(port) = endpoint.port.and_then(|p| h.ports.get(p as usize)) {
                let key = ResourceKey::Port {
                    facility: h.facility.clone(),
                    host: h.name.clone(),
                    port: port.name.clone(),
                };
                elements.entry(key).or_default().insert(link.link.clone());
            }
        }
        for trunk in link.trunks.iter().filter_map(|t| testbed.trunks.get(t.0 as usize)) {
            let key = ResourceKey::Trunk { facility: trunk.facility.clone(), trunk: trunk.name.clone() };
            elements.entry(key).or_default().insert(link.link.clone());
        }
        if let Some(vid) = link.vlan {
            let key = ResourceKey::Vlan { facility: link.facility.clone(), vid };
            elements.entry(key).or_default().insert(link.link.clone());
        }
    }
    elements
}

/// Names the embedding's hosts, ports and switches so the record reads without the testbed.
#[allow(clippy::type_complexity)]
fn placement_names(
    testbed: &Testbed,
    embedding: &Embedding,
) -> Result<(Vec<(String, String)>, Vec<Vec<Option<String>>>, Vec<Vec<String>>), Error> {
    let bad =
        |what: &str| Error::Internal(format!("the engine returned an embedding naming an unknown {what}"));
    let host = |id: trellis_embed::HostId| testbed.hosts.get(id.0 as usize).ok_or_else(|| bad("host"));
    let node_hosts = embedding
        .nodes
        .iter()
        .map(|n| host(n.host).map(|h| (h.facility.clone(), h.name.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut link_ports = Vec::with_capacity(embedding.links.len());
    let mut link_switches = Vec::with_capacity(embedding.links.len());
    for link in &embedding.links {
        let mut ports = Vec::with_capacity(link.endpoints.len());
        for endpoint in &link.endpoints {
            ports.push(match endpoint.port {
                Some(p) => {
                    Some(host(endpoint.host)?.ports.get(p as usize).ok_or_else(|| bad("port"))?.name.clone())
                }
                None => None,
            });
        }
        link_ports.push(ports);
        link_switches.push(
            link.switches
                .iter()
                .map(|s| {
                    testbed.switches.get(s.0 as usize).map(|s| s.name.clone()).ok_or_else(|| bad("switch"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    Ok((node_hosts, link_ports, link_switches))
}

/// One realization being made.
struct Attempt<'a> {
    project: &'a str,
    experiment: &'a str,
    realization: &'a str,
    revision: &'a str,
    duration: Duration,
    creator: &'a str,
    organizations: &'a [String],
    request: Arc<Request>,
}

impl RealizeService {
    /// Realizes a revision of an experiment. `organizations` are the project's organizations
    /// (their pools apply too). Unrealizable experiments fail with `FailedPrecondition` whose
    /// message carries the engine's diagnostics.
    #[allow(clippy::too_many_arguments)]
    pub async fn realize(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        reference: RevisionRef,
        duration: Duration,
        creator: &str,
        organizations: &[String],
    ) -> Result<RealizationRecord, Error> {
        validate_names(project, experiment, realization)?;
        let reference = match reference {
            RevisionRef::Revision(s) | RevisionRef::Tag(s) | RevisionRef::Branch(s) => s,
        };
        let (revision, xir) = self.models.revision(project, experiment, &reference).await?;
        let network = xir::Network::decode(xir.as_slice())
            .map_err(|e| Error::Internal(format!("revision {} holds unreadable XIR: {e}", revision.id)))?;
        self.realize_network(
            project,
            experiment,
            realization,
            &revision.id,
            &network,
            duration,
            creator,
            organizations,
        )
        .await
    }

    /// Realizes `network` as revision `revision` of the experiment: what [`Self::realize`]
    /// does once it has resolved the revision (tests and tools with a network in hand call it
    /// directly).
    #[allow(clippy::too_many_arguments)]
    pub async fn realize_network(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        revision: &str,
        network: &xir::Network,
        duration: Duration,
        creator: &str,
        organizations: &[String],
    ) -> Result<RealizationRecord, Error> {
        validate_names(project, experiment, realization)?;
        if let Duration::Given(seconds) = duration
            && seconds < 0
        {
            return Err(Error::invalid("duration", "a realization cannot last a negative time"));
        }
        let request = Request::from_network(network).map_err(|e| Error::InvalidArgument {
            violations: vec![Violation::new(e.element.clone(), e.message.clone())],
        })?;
        let attempt = Attempt {
            project,
            experiment,
            realization,
            revision,
            duration,
            creator,
            organizations,
            request: Arc::new(request),
        };
        let mzid = mzid(project, experiment, realization);
        for n in 0..MAX_ATTEMPTS {
            if let Some(record) = self.try_realize(&attempt).await? {
                return Ok(record);
            }
            tracing::debug!(%mzid, attempt = n, "realization conflicted with another; retrying");
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            backoff(n).await;
        }
        Err(Error::Aborted(format!("realizing {mzid}: the testbed is busy; try again")))
    }

    /// One read-embed-commit round; `None` when the commit lost a race.
    async fn try_realize(&self, a: &Attempt<'_>) -> Result<Option<RealizationRecord>, Error> {
        let store = self.store.as_ref();
        let mzid = mzid(a.project, a.experiment, a.realization);
        let key = keys::realization(a.project, a.experiment, a.realization);
        if load::<RealizationRecord>(store, &key).await?.is_some() {
            return Err(Error::already_exists("realization", mzid));
        }
        let facilities = snapshot::facilities(store, &self.testbed).await?;
        let pools = snapshot::pools(store).await?;
        let mut table = snapshot::allocations(store).await?;
        let used_blocks = snapshot::infranet_blocks(store).await?;

        let applicable = pools::applicable(&pools, a.project, a.organizations);
        let closed = facilities.closed();
        let eligible = pools::eligible_hosts(&facilities.testbed, &applicable, &closed);
        let options = Options { eligible: Some(eligible), seed: rand::rng().random() };
        let (testbed, request) = (facilities.testbed.clone(), a.request.clone());
        let occupancy = std::mem::take(&mut table.occupancy);
        let embedding =
            match tokio::task::spawn_blocking(move || embed(&testbed, &occupancy, &request, &options))
                .await
                .map_err(|e| Error::Internal(format!("the embedding engine failed: {e}")))?
            {
                Ok(embedding) => embedding,
                // A facility being changed is closed for a moment only: wait for it rather than
                // refuse an experiment that may well fit once it reopens.
                Err(_) if !closed.is_empty() => return Ok(None),
                Err(why) => return Err(unrealizable(&mzid, why)),
            };

        let subnet = infranet::choose(embedding.nodes.len(), &used_blocks)?;
        let now = now_unix();
        let (node_hosts, link_ports, link_switches) = placement_names(&facilities.testbed, &embedding)?;
        let elements = elements_by_resource(&facilities.testbed, &embedding);
        let record = RealizationRecord {
            project: a.project.to_owned(),
            experiment: a.experiment.to_owned(),
            name: a.realization.to_owned(),
            revision: a.revision.to_owned(),
            creator: a.creator.to_owned(),
            created: now,
            expires: expiry(a.duration, now),
            status: RealizationStatus::Succeeded,
            node_hosts,
            infranet_subnet: subnet.cidr(),
            infranet_addrs: subnet.addresses(embedding.nodes.len()),
            link_ports,
            link_switches,
            embedding,
            ver: 1,
        };

        let mut txn = Txn::default();
        txn.compares.push(Compare::ModRevision { key: key.clone(), revision: 0 });
        txn.success.push(put(&key, &record)?);
        // One write per key even if the engine listed a resource twice (a transaction may not
        // write a key twice).
        let mut claims: BTreeMap<&ResourceKey, Usage> = BTreeMap::new();
        for claim in &record.embedding.claims {
            claims.entry(&claim.key).or_default().add(&claim.usage);
        }
        let mut touched_facilities = BTreeSet::new();
        for (resource, usage) in claims {
            touched_facilities.insert(keys::resource_facility(resource).to_owned());
            let alloc_key = keys::alloc(resource);
            txn.compares
                .push(Compare::ModRevision { key: alloc_key.clone(), revision: table.revision(resource) });
            let mut held = table.entries.remove(resource).map(|e| e.value).unwrap_or_default();
            let element = elements.get(resource).map(|e| e.iter().cloned().collect::<Vec<_>>().join(","));
            held.push(Allocation { mzid: mzid.clone(), element: element.unwrap_or_default(), usage });
            txn.success.push(put(&alloc_key, &held)?);
        }
        self.guard_facilities(&mut txn, &facilities, &touched_facilities)?;
        match applicable.as_slice() {
            [] => txn.compares.push(Compare::ModRevision { key: keys::pool(DEFAULT_POOL), revision: 0 }),
            some => txn.compares.extend(
                some.iter()
                    .map(|p| Compare::ModRevision { key: keys::pool(&p.value.name), revision: p.revision }),
            ),
        }
        for block_key in subnet.keys() {
            txn.compares.push(Compare::ModRevision { key: block_key.clone(), revision: 0 });
            txn.success.push(Op::Put { key: block_key, value: mzid.clone().into_bytes(), lease: None });
        }
        let size = txn.compares.len().max(txn.success.len());
        let outcome = store.txn(txn).await.map_err(|e| transaction_refused(e, size))?;
        Ok(outcome.succeeded.then_some(record))
    }

    /// How many realization attempts on this handle (and its clones) lost a race with another
    /// writer, or met a facility in the middle of a change, and were retried on a fresh snapshot.
    pub fn commit_conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// Guards the facilities a realization takes resources from: their models and activations
    /// are as read, and no change that could strand the new allocations has begun.
    fn guard_facilities(
        &self,
        txn: &mut Txn,
        state: &FacilityState,
        used: &BTreeSet<String>,
    ) -> Result<(), Error> {
        for facility in used {
            let record = state.records.get(facility).ok_or_else(|| {
                Error::Internal(format!("the engine used facility {facility}, which is not commissioned"))
            })?;
            txn.compares
                .push(Compare::ModRevision { key: keys::facility(facility), revision: record.revision });
            txn.compares.push(Compare::ModRevision {
                key: keys::facility_change(facility),
                revision: state.change_revision(facility),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_embed::Diagnostic;

    #[test]
    fn unrealizable_messages_list_every_diagnostic() {
        let why = Unrealizable {
            diagnostics: vec![
                Diagnostic {
                    element: Some("a".into()),
                    constraint: Some("cores".into()),
                    candidates_left: Some(0),
                    message: "needs 64 cores".into(),
                },
                Diagnostic {
                    element: None,
                    constraint: None,
                    candidates_left: None,
                    message: "no links".into(),
                },
                Diagnostic {
                    element: Some("link l".into()),
                    constraint: None,
                    candidates_left: None,
                    message: "link l: no path".into(),
                },
            ],
        };
        let Error::FailedPrecondition(text) = unrealizable("r.e.p", why) else { panic!() };
        assert_eq!(
            text,
            "r.e.p cannot be realized: a: needs 64 cores (constraint cores, 0 candidates left); no links; \
             link l: no path"
        );
    }

    #[test]
    fn expiry_follows_the_duration() {
        assert_eq!(expiry(Duration::Given(60), 1000), Some(1060));
        assert_eq!(expiry(Duration::Never, 1000), None);
        assert_eq!(expiry(Duration::Given(i64::MAX), 1000), Some(i64::MAX));
    }
}
