//! `portal.v1.Materialize`: bring a realization up on its facilities, watch it, reboot nodes,
//! expose node ports through the ingress, tear it down.

use prost::Message;
use tonic::Request;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::materialize_server::Materialize;
use trellis_api::xir;
use trellis_materialize::{IngressProtocol, MaterializationRecord};
use trellis_policy::{Entity, Operation};
use trellis_types::Error;

use super::{Reply, Services, ok};
use crate::authz::{Caller, Target, caller};
use crate::convert::materialize::{
    forest, ingress_to, materialization_to, summary_to, task_summary, tree_to,
};
use crate::status::status;

/// The Materialize service.
pub struct MaterializeApi(pub Services);

fn protocol(value: i32) -> Result<IngressProtocol, Error> {
    match xir::Protocol::try_from(value) {
        Ok(xir::Protocol::Http) => Ok(IngressProtocol::Http),
        Ok(xir::Protocol::Https) => Ok(IngressProtocol::Https),
        Ok(xir::Protocol::Tcp) => Ok(IngressProtocol::Tcp),
        Ok(xir::Protocol::Udp) => Ok(IngressProtocol::Udp),
        Err(_) => Err(Error::invalid("protocol", format!("unknown protocol {value}"))),
    }
}

impl MaterializeApi {
    async fn network(&self, r: &MaterializationRecord) -> Option<xir::Network> {
        let models = self.0.models().ok()?;
        let (_, bytes) = models.revision(&r.project, &r.experiment, &r.revision).await.ok()?;
        xir::Network::decode(bytes.as_slice()).ok()
    }

    /// Materializations `caller` may see, optionally of one project or experiment.
    async fn visible(
        &self,
        caller: &Caller,
        project: &str,
        experiment: &str,
        filter: i32,
    ) -> Result<Vec<MaterializationRecord>, Error> {
        let service = self.0.materialize()?;
        let mine_only = filter == pb::FilterMode::ByUser as i32;
        let mut out = Vec::new();
        for r in service.materializations().await? {
            if (!project.is_empty() && r.project != project)
                || (!experiment.is_empty() && r.experiment != experiment)
                || (mine_only && !caller.user.projects.contains_key(&r.project))
            {
                continue;
            }
            let target = Target::Experiment { project: r.project.clone(), name: r.experiment.clone() };
            match self.0.gate.check(caller, Entity::Materialization, Operation::Read, &target).await {
                Ok(()) => out.push(r),
                Err(Error::PermissionDenied(_) | Error::NotFound { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(out)
    }
}

#[tonic::async_trait]
impl Materialize for MaterializeApi {
    async fn materialize(&self, request: Request<pb::MaterializeRequest>) -> Reply<pb::MaterializeResponse> {
        let service = self.0.materialize().map_err(status)?;
        let by = caller(&request).map_err(status)?.username().to_owned();
        let r = request.into_inner();
        let record =
            service.materialize(&r.project, &r.experiment, &r.realization, &by).await.map_err(status)?;
        tracing::info!(mzid = %record.mzid(), by = %by, "materializing");
        let network = self.network(&record).await;
        ok(pb::MaterializeResponse { materialization: Some(materialization_to(&record, network.as_ref())) })
    }

    async fn dematerialize(
        &self,
        request: Request<pb::DematerializeRequest>,
    ) -> Reply<pb::DematerializeResponse> {
        let service = self.0.materialize().map_err(status)?;
        let r = request.into_inner();
        service.dematerialize(&r.project, &r.experiment, &r.realization).await.map_err(status)?;
        ok(pb::DematerializeResponse {})
    }

    async fn get_materialization(
        &self,
        request: Request<pb::GetMaterializationRequest>,
    ) -> Reply<pb::GetMaterializationResponse> {
        let service = self.0.materialize().map_err(status)?;
        let r = request.into_inner();
        let (p, e, z) = (&r.project, &r.experiment, &r.realization);
        let record = service.materialization(p, e, z).await.map_err(status)?;
        let tree = service.status(p, e, z).await.map_err(status)?;
        let materialization = if r.include_materialization_data {
            let network = self.network(&record).await;
            Some(materialization_to(&record, network.as_ref()))
        } else {
            Some(materialization_to(&record, None))
        };
        let ingresses = if r.include_ingresses {
            let list = service.ingresses(p, e, z).await.map_err(status)?;
            Some(pb::Ingresses { ingresses: list.iter().map(ingress_to).collect() })
        } else {
            None
        };
        ok(pb::GetMaterializationResponse {
            materialization,
            task_summary: Some(task_summary(&tree)),
            ingresses,
            summary: Some(summary_to(&record)),
            task_status: Some(tree_to(&tree)),
        })
    }

    async fn get_materializations(
        &self,
        request: Request<pb::GetMaterializationsRequest>,
    ) -> Reply<pb::GetMaterializationsResponse> {
        let service = self.0.materialize().map_err(status)?;
        let caller = caller(&request).map_err(status)?;
        let r = request.get_ref();
        let records = self.visible(caller, &r.project, &r.experiment, r.filter).await.map_err(status)?;
        let mut out = pb::GetMaterializationsResponse::default();
        for m in &records {
            let (p, e, z) = (&m.project, &m.experiment, &m.realization);
            out.summaries.push(summary_to(m));
            if r.include_materialization_data {
                out.materializations.push(materialization_to(m, None));
            }
            if r.include_status {
                let tree = service.status(p, e, z).await.map_err(status)?;
                out.task_summaries.push(task_summary(&tree));
                out.task_statuses.push(tree_to(&tree));
            }
            if r.include_ingresses {
                let list = service.ingresses(p, e, z).await.map_err(status)?;
                out.ingresses.push(pb::Ingresses { ingresses: list.iter().map(ingress_to).collect() });
            }
        }
        ok(out)
    }

    async fn get_materializations_v2(
        &self,
        request: Request<pb::GetMaterializationsRequestV2>,
    ) -> Reply<pb::GetMaterializationsResponseV2> {
        let service = self.0.materialize().map_err(status)?;
        let caller = caller(&request).map_err(status)?;
        let r = request.get_ref();
        let records = self.visible(caller, &r.project, &r.experiment, r.filter).await.map_err(status)?;
        let mut out = pb::GetMaterializationsResponseV2::default();
        for m in &records {
            let (p, e, z) = (&m.project, &m.experiment, &m.realization);
            out.materializations.push(summary_to(m));
            let tree = service.status(p, e, z).await.map_err(status)?;
            out.statuses.push(task_summary(&tree));
            let list = service.ingresses(p, e, z).await.map_err(status)?;
            out.ingresses.push(pb::Ingresses { ingresses: list.iter().map(ingress_to).collect() });
        }
        ok(out)
    }

    async fn get_materialization_v2(
        &self,
        request: Request<pb::GetMaterializationRequestV2>,
    ) -> Reply<pb::GetMaterializationResponseV2> {
        let service = self.0.materialize().map_err(status)?;
        let r = request.into_inner();
        let (p, e, z) = (&r.project, &r.experiment, &r.realization);
        let record = service.materialization(p, e, z).await.map_err(status)?;
        let tree = service.status(p, e, z).await.map_err(status)?;
        let network = self.network(&record).await;
        let list = service.ingresses(p, e, z).await.map_err(status)?;
        ok(pb::GetMaterializationResponseV2 {
            materialization: Some(materialization_to(&record, network.as_ref())),
            ingresses: Some(pb::Ingresses { ingresses: list.iter().map(ingress_to).collect() }),
            summary: Some(task_summary(&tree)),
            status: Some(tree_to(&tree)),
        })
    }

    async fn get_materialization_status(
        &self,
        request: Request<pb::GetMaterializationStatusRequest>,
    ) -> Reply<pb::GetMaterializationStatusResponse> {
        let service = self.0.materialize().map_err(status)?;
        let r = request.into_inner();
        let tree = service.status(&r.project, &r.experiment, &r.realization).await.map_err(status)?;
        let mzid = format!("{}.{}.{}", r.realization, r.experiment, r.project);
        ok(pb::GetMaterializationStatusResponse { status: Some(forest(&mzid, &tree)) })
    }

    async fn reboot_materialization(
        &self,
        request: Request<pb::RebootMaterializationRequest>,
    ) -> Reply<pb::RebootMaterializationResponse> {
        let service = self.0.materialize().map_err(status)?;
        let r = request.into_inner();
        if !r.all_nodes && r.hostnames.is_empty() {
            return Err(status(Error::invalid(
                "hostnames",
                "name the nodes to reboot, or ask for all nodes",
            )));
        }
        let nodes: &[String] = if r.all_nodes { &[] } else { &r.hostnames };
        service.reboot(&r.project, &r.experiment, &r.realization, nodes).await.map_err(status)?;
        ok(pb::RebootMaterializationResponse {})
    }

    async fn new_ingress(&self, request: Request<pb::NewIngressRequest>) -> Reply<pb::NewIngressResponse> {
        let service = self.0.materialize().map_err(status)?;
        let by = caller(&request).map_err(status)?.username().to_owned();
        let r = request.into_inner();
        let protocol = protocol(r.protocol).map_err(status)?;
        let route = service
            .new_ingress(&r.project, &r.experiment, &r.realization, protocol, &r.host, r.port, &by)
            .await
            .map_err(status)?;
        tracing::info!(url = %route.url, node = %route.node, port = route.port, "ingress created");
        ok(pb::NewIngressResponse {})
    }

    async fn delete_ingress(
        &self,
        request: Request<pb::DeleteIngressRequest>,
    ) -> Reply<pb::DeleteIngressResponse> {
        let service = self.0.materialize().map_err(status)?;
        let r = request.into_inner();
        let protocol = protocol(r.protocol).map_err(status)?;
        service
            .delete_ingress(&r.project, &r.experiment, &r.realization, protocol, &r.host, r.port)
            .await
            .map_err(status)?;
        ok(pb::DeleteIngressResponse {})
    }
}
