//! Experiment models: static analysis of compiled XIR, revisions and the model service.
//!
//! A model is a `mergexp` Python file compiled (in a sandbox, by `trellis-compiler`) into an XIR
//! `Network`. This crate checks that network for problems a user can fix before realizing it,
//! summarizes it, and keeps every pushed version as a revision named by its content hash, with
//! branch and tag references. Large compiled XIR goes to the blob store (`trellis-blobs`).
//!
//! XIR is a data format here, not the API wire: the `xir` types come from `trellis-api` because
//! the same protobuf serves both.
//!
//! Layout: [`analysis`] (diagnostics and summary), [`revisions`] (records and keys),
//! [`service`] (compile, push, resolve).

pub mod analysis;
pub mod revisions;
pub mod service;

pub use service::{Compiled, ModelService};
