//! Facilities, pools, allocations and realizations.
//!
//! A realization reserves concrete resources for one experiment revision. The engine
//! (`trellis-embed`) computes the embedding from a snapshot of the allocation table; this crate
//! commits it with one store transaction that compares the revision of every allocation key it
//! touches, so realizations run in parallel and never double-book (a conflicting commit is
//! retried on a fresh snapshot). The store layout is described in [`keys`].

mod commission;
mod duration;
mod infranet;
pub mod keys;
mod lifecycle;
mod pools;
mod realize;
mod service;
mod snapshot;
pub mod stored;
mod types;

pub use commission::CHANGE_TIMEOUT_SECS;
pub use duration::parse_duration;
pub use pools::DEFAULT_POOL;
pub use service::RealizeService;
pub use types::{
    Allocation, Duration, FacilityRecord, Pool, PoolResources, RealizationRecord, RealizationStatus,
    RevisionRef,
};
