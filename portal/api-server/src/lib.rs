//! The portal's API edge: the Merge-compatible gRPC services and the HTTP endpoints beside them
//! (JWKS, health), behind one authentication and authorization layer.
//!
//! This is the only crate that knows both the wire types (`trellis-api`) and the domain types;
//! it converts between them ([`convert`]) and maps errors to gRPC statuses in one place
//! ([`status`]). It holds no business logic: that lives in the services.
//!
//! Layout:
//! - [`authz`]: the layer every RPC passes (token → account state → policy), the rule table
//!   and the gate (policy decisions, list filtering).
//! - [`api`]: the tonic service implementations.
//! - [`http`]: plain HTTP endpoints.
//! - [`git`]: a git repository per experiment over smart HTTP (pushing `model.py` records a
//!   model revision).
//! - [`server`]: assembling the router and serving it with graceful shutdown.
//! - [`xdc_access`]: the policy answers the SSH jump host and the XDC web proxy need.

pub mod api;
pub mod authz;
pub mod convert;
pub mod git;
pub mod http;
pub mod server;
pub mod status;
pub mod xdc_access;

pub use server::{Portal, PortalConfig, serve};
