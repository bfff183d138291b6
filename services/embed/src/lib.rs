//! The realization engine: embeds an experiment (XIR `Network`) into testbed resources (XIR
//! `Facility` models) given what other realizations already hold.
//!
//! Pure computation, no I/O: the realize service reads facilities and allocations from the
//! store, calls [`embed`], and commits the returned [`Claim`]s with compare-and-swap per
//! resource key. That split is what lets realizations run in parallel: two embeddings that
//! touch different resources both commit; two that touch the same one conflict and one retries.
//!
//! How [`embed`] works:
//! 1. Nodes with equal constraints share a [`request::Profile`]; each profile's candidate
//!    hosts are found by applying its constraints one at a time (`filter`), so a failure names
//!    the constraint that left no host and how many were left before it.
//! 2. The fewest racks (hosts under one leaf switch) that can hold the experiment are chosen,
//!    and the experiment graph (link capacities as edge weights, LANs as stars around a
//!    weightless hub) is partitioned over them by multilevel recursive bisection with
//!    Fiduccia–Mattheyses refinement and a k-way pass that honours rack capacities and which
//!    racks each node may use (`partition`).
//! 3. Inside each rack, nodes take hosts most-constrained first, then breadth first so VMs
//!    land beside their neighbours, keeping room on each host's ports for the links that leave
//!    it; nodes a rack cannot take after all spill to the rack holding most of their
//!    neighbours (`place`).
//! 4. Each link gets a port per host with room, the widest shortest path (for a LAN a tree)
//!    through leaf and spine trunks with room, and a VLAN id free in the facility (`links`).
//!
//! [`check`] re-verifies an embedding independently; tests and the benchmark
//! (`tests/realize-bench`) use it to count violations.

pub mod check;
pub mod constraint;
pub mod generate;
pub mod occupancy;
pub mod request;
pub mod testbed;

mod build;
mod engine;
mod filter;
mod links;
mod partition;
mod place;
mod rng;
mod state;

pub use engine::{Options, claims, embed};
pub use occupancy::{Claim, Occupancy, ResourceKey, Usage};
pub use request::{Request, RequestError};
pub use testbed::{Host, HostId, HostPort, Rack, Switch, SwitchId, Testbed, TestbedError, Trunk, TrunkId};

/// How a node is placed on its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NodeKind {
    /// The node gets the whole machine.
    BareMetal,
    /// The node is a VM slot on a hypervisor host, sharing it with others.
    VirtualMachine,
}

/// Where one experiment node landed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodePlacement {
    pub node: String,
    pub host: HostId,
    pub kind: NodeKind,
    /// Resources taken on the host (for bare metal: all of it).
    pub cores: u32,
    pub memory: u64,
    pub disk: u64,
}

/// One end of a link on a host NIC port. `port` is `None` when every endpoint of the link is
/// on the same host (VM-to-VM links need no NIC).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkEndpoint {
    pub node: String,
    /// Index of the node's socket (interface) this endpoint uses.
    pub socket: u32,
    pub host: HostId,
    /// Index into the host's `ports`.
    pub port: Option<u32>,
}

/// Where one experiment link (point-to-point or LAN) landed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkPlacement {
    pub link: String,
    /// Capacity reserved on every port and trunk the link crosses, in bits per second.
    pub capacity: u64,
    /// VLAN id (or VNI, above 4094), unique within the facility; `None` for host-local links.
    pub vlan: Option<u32>,
    pub facility: String,
    pub endpoints: Vec<LinkEndpoint>,
    /// Switch-to-switch trunks the link crosses (each once, even for LANs).
    pub trunks: Vec<TrunkId>,
    /// Switches the link passes through (leaves and spines), for waypoints.
    pub switches: Vec<SwitchId>,
}

/// A complete embedding of one experiment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Embedding {
    /// In the order of the request's nodes.
    pub nodes: Vec<NodePlacement>,
    /// In the order of the request's links.
    pub links: Vec<LinkPlacement>,
    /// Everything the embedding takes, one entry per resource key, to be committed atomically.
    pub claims: Vec<Claim>,
    /// Experiment links whose endpoints sit under different leaf switches.
    pub cross_rack_links: usize,
}

/// Why an experiment cannot be realized, in terms the user can act on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    /// The experiment node or link concerned, if any.
    pub element: Option<String>,
    /// The constraint that failed ("cores", "memory", "metal", "host", "nic-capacity", ...).
    pub constraint: Option<String>,
    /// How many hosts (or paths) were still candidates when this constraint was applied.
    pub candidates_left: Option<usize>,
    pub message: String,
}

/// The engine found no embedding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("experiment cannot be realized: {}", .diagnostics.first().map(|d| d.message.as_str()).unwrap_or("no reason given"))]
pub struct Unrealizable {
    pub diagnostics: Vec<Diagnostic>,
}
