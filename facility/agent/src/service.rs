//! The Facility gRPC service over an [`Agent`].

use tonic::{Request, Response, Status};
use trellis_facility_api::v1::facility_server::{Facility, FacilityServer};
use trellis_facility_api::v1::{
    AttachXdcRequest, AttachXdcResponse, DematerializeRequest, DematerializeResponse, DetachXdcRequest,
    DetachXdcResponse, ListRequest, ListResponse, MaterializeRequest, MaterializeResponse, RebootRequest,
    RebootResponse, StatusRequest, StatusResponse,
};
use trellis_types::Error;

use crate::agent::Agent;

/// The tonic service; serve it with whatever transport (mutual TLS in production).
pub fn service(agent: Agent) -> FacilityServer<FacilityService> {
    // Large materializations exceed tonic's 4 MiB default.
    FacilityServer::new(FacilityService { agent }).max_decoding_message_size(64 << 20)
}

/// Implements `trellis.facility.v1.Facility` by delegating to the agent.
pub struct FacilityService {
    agent: Agent,
}

/// The one place an agent error becomes a gRPC status.
fn status(e: Error) -> Status {
    let message = e.to_string();
    match e {
        Error::InvalidArgument { .. } => Status::invalid_argument(message),
        Error::NotFound { .. } => Status::not_found(message),
        Error::AlreadyExists { .. } => Status::already_exists(message),
        Error::FailedPrecondition(_) => Status::failed_precondition(message),
        Error::Unauthenticated(_) => Status::unauthenticated(message),
        Error::PermissionDenied(_) => Status::permission_denied(message),
        Error::ResourceExhausted(_) => Status::resource_exhausted(message),
        Error::Aborted(_) => Status::aborted(message),
        Error::Unavailable(_) => Status::unavailable(message),
        Error::Internal(_) => {
            tracing::error!(error = %message, "facility request failed");
            Status::internal(message)
        }
    }
}

#[tonic::async_trait]
impl Facility for FacilityService {
    async fn materialize(
        &self,
        request: Request<MaterializeRequest>,
    ) -> Result<Response<MaterializeResponse>, Status> {
        let spec = request
            .into_inner()
            .materialization
            .ok_or_else(|| status(Error::invalid("materialization", "missing")))?;
        self.agent.materialize(spec).await.map_err(status)?;
        Ok(Response::new(MaterializeResponse {}))
    }

    async fn dematerialize(
        &self,
        request: Request<DematerializeRequest>,
    ) -> Result<Response<DematerializeResponse>, Status> {
        self.agent.dematerialize(&request.into_inner().mzid).await.map_err(status)?;
        Ok(Response::new(DematerializeResponse {}))
    }

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(self.agent.status(&request.into_inner().mzid)))
    }

    async fn reboot(&self, request: Request<RebootRequest>) -> Result<Response<RebootResponse>, Status> {
        let request = request.into_inner();
        self.agent.reboot(&request.mzid, &request.nodes).await.map_err(status)?;
        Ok(Response::new(RebootResponse {}))
    }

    async fn list(&self, _request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        Ok(Response::new(ListResponse { mzids: self.agent.list() }))
    }

    async fn attach_xdc(
        &self,
        request: Request<AttachXdcRequest>,
    ) -> Result<Response<AttachXdcResponse>, Status> {
        let request = request.into_inner();
        let reply =
            self.agent.attach_xdc(&request.mzid, &request.xdc, &request.netns).await.map_err(status)?;
        Ok(Response::new(reply))
    }

    async fn detach_xdc(
        &self,
        request: Request<DetachXdcRequest>,
    ) -> Result<Response<DetachXdcResponse>, Status> {
        let request = request.into_inner();
        self.agent.detach_xdc(&request.mzid, &request.xdc, &request.netns).await.map_err(status)?;
        Ok(Response::new(DetachXdcResponse {}))
    }
}
