//! Materializing realizations: running them on the facilities that hold their resources.
//!
//! The API writes the wanted state ([`MaterializeService::materialize`] builds one spec per
//! facility from the realization and its model, [`MaterializeService::dematerialize`] marks it
//! for teardown); a controller ([`MaterializeService::spawn_controller`], one per replica)
//! drives facility agents over the Facility API with mutual TLS ([`MtlsConnector`]) until
//! they report what is wanted, and records what they report ([`MaterializeService::status`]).
//! Ingress routes ([`MaterializeService::new_ingress`]) are kept beside them and removed with
//! them. The store layout is described in [`keys`].
//!
//! XDCs join a materialization's infranet through the facility that runs it
//! ([`MaterializeService::attach_xdc`], [`MaterializeService::detach_xdc`]).
//!
//! Relinquishing a realization must dematerialize it first:
//! [`MaterializeService::dematerialize_and_wait`] returns once nothing runs any more (at once
//! if it was never materialized). As a safety net, the controller dematerializes a
//! materialization whose realization has disappeared.

mod connector;
mod controller;
mod ingress;
pub mod keys;
mod lifecycle;
mod proto;
mod service;
pub mod spec;
mod status;
mod stored;
mod types;
mod xdc;

pub use connector::{FacilityConnector, MtlsConnector, PORTAL_CLIENT_NAME};
pub use ingress::{IngressProtocol, IngressRoute};
pub use lifecycle::mzid;
pub use service::{ControllerConfig, IngressConfig, MaterializeConfig, MaterializeService};
pub use types::{
    ElementStatus, EndpointSpec, FacilitySpec, FacilityStatus, InterfaceSpec, LinkSpec,
    MaterializationRecord, NodeSpec, Phase, StatusRecord, StatusTree, Summary, TaskState, UserSpec,
};
pub use xdc::{XdcNetwork, split_mzid};
