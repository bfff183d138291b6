//! The gRPC services. Each handler converts the request at the edge, calls a service, and
//! converts the answer back; authorization already happened in the layer.

pub mod alloc;
pub mod commission;
pub mod cred;
pub mod identity;
pub mod materialize;
pub mod model;
pub mod realize;
pub mod unbuilt;
pub mod workspace;
mod workspace_orgs;
mod workspace_projects;
mod workspace_users;
pub mod xdc;

use std::sync::Arc;

use tonic::{Response, Status};
use trellis_credentials::SshCa;
use trellis_identity::TokenService;
use trellis_materialize::MaterializeService;
use trellis_model::ModelService;
use trellis_realize::RealizeService;
use trellis_types::Error;
use trellis_workspace::Workspace;
use trellis_xdc::XdcService;

use crate::authz::Gate;

/// What every handler may use.
#[derive(Clone)]
pub struct Services {
    pub workspace: Workspace,
    pub tokens: Arc<TokenService>,
    pub gate: Gate,
    /// `None` when this portal was started without a model store and compiler.
    pub models: Option<ModelService>,
    /// Facilities, pools and realizations; present whenever models are.
    pub realize: Option<RealizeService>,
    /// Materializations; present whenever realizations are.
    pub materialize: Option<MaterializeService>,
    /// The SSH certificate authority (user keys and certificates).
    pub credentials: SshCa,
    /// Experiment development containers.
    pub xdc: XdcService,
}

impl Services {
    /// The model service, or why there is none.
    pub fn models(&self) -> Result<&ModelService, Error> {
        self.models.as_ref().ok_or_else(|| {
            Error::FailedPrecondition("this portal was started without experiment model support".to_owned())
        })
    }
}

impl Services {
    /// The materialization service, or why there is none.
    pub fn materialize(&self) -> Result<&MaterializeService, Error> {
        self.materialize.as_ref().ok_or_else(|| {
            Error::FailedPrecondition("this portal was started without experiment model support".to_owned())
        })
    }

    /// The realization service, or why there is none.
    pub fn realize(&self) -> Result<&RealizeService, Error> {
        self.realize.as_ref().ok_or_else(|| {
            Error::FailedPrecondition("this portal was started without experiment model support".to_owned())
        })
    }
}

/// Result type of handlers.
pub type Reply<T> = Result<Response<T>, Status>;

/// Wraps a message as a successful reply.
pub fn ok<T>(message: T) -> Reply<T> {
    Ok(Response::new(message))
}
