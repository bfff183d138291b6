//! `portal.v1.Realize`: reserve resources for an experiment revision, show, extend, relinquish.

use std::collections::HashMap;

use prost::Message;
use tonic::Request;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::realize_server::Realize;
use trellis_api::xir;
use trellis_policy::{Entity, Operation};
use trellis_realize::{Duration, RealizationRecord, RevisionRef, parse_duration};
use trellis_types::Error;

use super::alloc::Table;
use super::{Reply, Services, ok};
use crate::authz::{Caller, Target, caller};
use crate::convert::realize::{realization_status, realization_summary, realization_to};
use crate::convert::timestamp;
use crate::status::status;

/// How long a realization lasts when the request does not say.
pub const DEFAULT_DURATION: &str = "7d";

/// How long relinquishing waits for a materialization to come down first.
const DEMATERIALIZE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The Realize service.
pub struct RealizeApi(pub Services);

fn reference(r: &pb::RealizeRequest) -> Result<RevisionRef, Error> {
    let given: Vec<RevisionRef> = [
        (!r.revision.is_empty()).then(|| RevisionRef::Revision(r.revision.clone())),
        (!r.tag.is_empty()).then(|| RevisionRef::Tag(r.tag.clone())),
        (!r.branch.is_empty()).then(|| RevisionRef::Branch(r.branch.clone())),
    ]
    .into_iter()
    .flatten()
    .collect();
    match given.len() {
        0 => Err(Error::invalid("revision", "say which model to realize: a revision, a tag or a branch")),
        1 => Ok(given.into_iter().next().unwrap_or(RevisionRef::Branch("master".into()))),
        _ => Err(Error::invalid("revision", "give only one of revision, tag and branch")),
    }
}

/// Merge's `Duration{when, duration}`; absent means the portal default.
pub fn duration_from(d: Option<&pb::Duration>) -> Result<Duration, Error> {
    match d {
        Some(d) if d.when == pb::DurationCode::Never as i32 => Ok(Duration::Never),
        Some(d) if d.when != pb::DurationCode::Given as i32 => {
            Err(Error::invalid("duration.when", format!("unknown duration code {}", d.when)))
        }
        Some(d) if !d.duration.is_empty() => Ok(Duration::Given(parse_duration(&d.duration)?)),
        _ => Ok(Duration::Given(parse_duration(DEFAULT_DURATION)?)),
    }
}

impl RealizeApi {
    /// Whether `caller` may see `r` (the same policy check the layer makes for one realization).
    async fn visible(&self, caller: &Caller, r: &RealizationRecord) -> Result<bool, Error> {
        let target = Target::Experiment { project: r.project.clone(), name: r.experiment.clone() };
        match self.0.gate.check(caller, Entity::Realization, Operation::Read, &target).await {
            Ok(()) => Ok(true),
            Err(Error::PermissionDenied(_) | Error::NotFound { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// The revision's network, to show each node's and link's model with the realization.
    async fn network(&self, r: &RealizationRecord) -> Option<xir::Network> {
        let models = self.0.models().ok()?;
        let (_, bytes) = models.revision(&r.project, &r.experiment, &r.revision).await.ok()?;
        xir::Network::decode(bytes.as_slice()).ok()
    }
}

#[tonic::async_trait]
impl Realize for RealizeApi {
    async fn realize(&self, request: Request<pb::RealizeRequest>) -> Reply<pb::RealizeResponse> {
        let service = self.0.realize().map_err(status)?;
        let by = caller(&request).map_err(status)?.username().to_owned();
        let r = request.into_inner();
        let reference = reference(&r).map_err(status)?;
        let duration = duration_from(r.duration.as_ref()).map_err(status)?;
        let project = self.0.workspace.get_project(&r.project).await.map_err(status)?;
        let organizations: Vec<String> = project.organization.into_iter().collect();
        let record = service
            .realize(&r.project, &r.experiment, &r.realization, reference, duration, &by, &organizations)
            .await
            .map_err(status)?;
        tracing::info!(mzid = %record.mzid(), nodes = record.embedding.nodes.len(),
            links = record.embedding.links.len(), by = %by, "realized");
        let network = self.network(&record).await;
        ok(pb::RealizeResponse {
            code: pb::RealizeResponseCode::Ok as i32,
            diagnostics: vec![],
            realization: Some(realization_to(&record, network.as_ref())),
        })
    }

    async fn get_realization(
        &self,
        request: Request<pb::GetRealizationRequest>,
    ) -> Reply<pb::GetRealizationResponse> {
        let service = self.0.realize().map_err(status)?;
        let r = request.into_inner();
        let record = service.realization(&r.project, &r.experiment, &r.realization).await.map_err(status)?;
        let network = self.network(&record).await;
        ok(pb::GetRealizationResponse {
            result: Some(pb::RealizationResult {
                realization: Some(realization_to(&record, network.as_ref())),
                diagnostics: None,
                summary: Some(realization_summary(&record)),
            }),
            status: Some(realization_status(&record)),
        })
    }

    async fn get_realizations(
        &self,
        request: Request<pb::GetRealizationsRequest>,
    ) -> Reply<pb::GetRealizationsResponse> {
        let service = self.0.realize().map_err(status)?;
        let caller = caller(&request).map_err(status)?;
        let r = request.get_ref();
        let mine_only = r.filter == pb::FilterMode::ByUser as i32;
        let mut results = Vec::new();
        for record in service.realizations().await.map_err(status)? {
            if mine_only && !caller.user.projects.contains_key(&record.project) {
                continue;
            }
            if !self.visible(caller, &record).await.map_err(status)? {
                continue;
            }
            let realization = (!r.summary).then(|| realization_to(&record, None));
            results.push(pb::RealizationResult {
                realization,
                diagnostics: None,
                summary: Some(realization_summary(&record)),
            });
        }
        ok(pb::GetRealizationsResponse { results })
    }

    async fn update_realization(
        &self,
        request: Request<pb::UpdateRealizationRequest>,
    ) -> Reply<pb::UpdateRealizationResponse> {
        let service = self.0.realize().map_err(status)?;
        let r = request.into_inner();
        let Some(given) = r.duration.as_ref() else {
            return Err(status(Error::invalid("duration", "say how long the realization should last")));
        };
        let duration = duration_from(Some(given)).map_err(status)?;
        let record = service
            .update_expiry(&r.project, &r.experiment, &r.realization, duration)
            .await
            .map_err(status)?;
        ok(pb::UpdateRealizationResponse { expires: record.expires.and_then(timestamp) })
    }

    async fn relinquish(&self, request: Request<pb::RelinquishRequest>) -> Reply<pb::RelinquishResponse> {
        let service = self.0.realize().map_err(status)?;
        let by = caller(&request).map_err(status)?.username().to_owned();
        let r = request.into_inner();
        // Nodes still running on the resources must stop before the resources are freed.
        if let Ok(materialize) = self.0.materialize() {
            materialize
                .dematerialize_and_wait(&r.project, &r.experiment, &r.realization, DEMATERIALIZE_TIMEOUT)
                .await
                .map_err(status)?;
        }
        service.relinquish(&r.project, &r.experiment, &r.realization).await.map_err(status)?;
        tracing::info!(mzid = %format!("{}.{}.{}", r.realization, r.experiment, r.project), by = %by, "relinquished");
        ok(pb::RelinquishResponse {})
    }

    async fn get_resources(
        &self,
        _request: Request<pb::GetResourcesRequest>,
    ) -> Reply<pb::GetResourcesResponse> {
        let service = self.0.realize().map_err(status)?;
        // What each host carries, one entry per node as Merge lists them.
        let table = Table::read(service).await.map_err(status)?;
        let mut allocated: HashMap<(String, String), Vec<pb::Allocation>> = HashMap::new();
        for ((facility, host), nodes) in table.nodes {
            let list = allocated.entry((facility.clone(), host)).or_default();
            for n in nodes {
                let mut mzid = n.mzid.splitn(3, '.');
                list.push(pb::Allocation {
                    rid: mzid.next().unwrap_or_default().to_owned(),
                    eid: mzid.next().unwrap_or_default().to_owned(),
                    pid: mzid.next().unwrap_or_default().to_owned(),
                    fid: facility.clone(),
                    node: n.placement.node,
                    virt: n.placement.kind == trellis_embed::NodeKind::VirtualMachine,
                    cores_used: n.placement.cores,
                    memory_used: n.placement.memory,
                    ..Default::default()
                });
            }
        }
        let mut resources = Vec::new();
        for facility in service.facilities().await.map_err(status)? {
            if let (_, Some(model)) = service.facility(&facility.name).await.map_err(status)? {
                for resource in model.resources {
                    let allocated =
                        allocated.remove(&(facility.name.clone(), resource.id.clone())).unwrap_or_default();
                    resources.push(pb::Resource { resource: Some(resource), allocated });
                }
            }
        }
        ok(pb::GetResourcesResponse { resources })
    }
}
