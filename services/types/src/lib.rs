//! Domain types shared by every Trellis service: the one error type, validated names, and the
//! workspace objects (users, projects, organizations, experiments) as the services see them.
//!
//! This crate does no I/O and knows nothing of the wire format: the API server converts these
//! types to and from the Merge protobuf messages at the edge, and the services store them as
//! JSON in the state store.

mod error;
mod names;
mod workspace;

pub use error::{Error, Violation};
pub use names::{Name, validate_name};
pub use workspace::*;
