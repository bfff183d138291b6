//! Records the service keeps in the store (JSON), and request shapes.

use serde::{Deserialize, Serialize};

/// How a realization names the model revision it realizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevisionRef {
    Revision(String),
    Tag(String),
    Branch(String),
}

/// A realization's lifetime: Merge's `DurationCode` (`given` with a `2w3d4h5s` string, or `never`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duration {
    /// Expires this many seconds after the realization is made (or updated).
    Given(i64),
    /// Never expires.
    Never,
}

/// A commissioned facility (its XIR model is stored separately, under its own key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacilityRecord {
    pub name: String,
    /// The facility API address (host:port).
    pub address: String,
    pub description: String,
    pub creator: String,
    /// PEM certificates the facility presents and trusts (used by materialization).
    pub certificate: String,
    pub ca_certificate: String,
    /// Resources an operator deactivated: never chosen by realizations.
    pub deactivated: Vec<String>,
    /// Bumped on every change.
    pub ver: i64,
    /// Seconds since the epoch.
    pub created: i64,
}

/// Resources of one facility a pool holds; empty means every resource of the facility.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolResources {
    pub resources: Vec<String>,
}

/// A pool: the resources a set of projects and organizations may realize on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub name: String,
    pub description: String,
    pub creator: String,
    pub projects: Vec<String>,
    pub organizations: Vec<String>,
    pub facilities: std::collections::BTreeMap<String, PoolResources>,
    pub priority: i64,
    pub ver: i64,
}

/// One resource taken by one realization, as kept in the allocation table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// `<realization>.<experiment>.<project>`.
    pub mzid: String,
    /// The experiment node or link it serves.
    pub element: String,
    pub usage: trellis_embed::Usage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RealizationStatus {
    /// Resources are reserved.
    Succeeded,
    /// Being relinquished (dematerialization first, then freeing).
    Relinquishing,
}

/// A realization: the embedding plus bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealizationRecord {
    pub project: String,
    pub experiment: String,
    pub name: String,
    /// The revision id realized (Merge's `xhash`).
    pub revision: String,
    pub creator: String,
    /// Seconds since the epoch.
    pub created: i64,
    /// Seconds since the epoch; `None` never expires.
    pub expires: Option<i64>,
    pub status: RealizationStatus,
    /// `(facility, host)` of every node, in the order of `embedding.nodes`, so the record
    /// reads without the testbed it was computed on (host ids index that testbed).
    pub node_hosts: Vec<(String, String)>,
    /// Per link, per endpoint (the order of `embedding.links[i].endpoints`): the name of the
    /// host NIC port it uses; `None` for host-local links.
    pub link_ports: Vec<Vec<Option<String>>>,
    /// Per link: the names of the switches it crosses (waypoints).
    pub link_switches: Vec<Vec<String>>,
    pub embedding: trellis_embed::Embedding,
    /// The infranet subnet (CIDR) this realization's nodes are addressed from, and each
    /// node's address, in the order of `embedding.nodes`.
    pub infranet_subnet: String,
    pub infranet_addrs: Vec<String>,
    pub ver: i64,
}

impl RealizationRecord {
    /// Merge's materialization id: `<realization>.<experiment>.<project>`.
    pub fn mzid(&self) -> String {
        format!("{}.{}.{}", self.name, self.experiment, self.project)
    }
}
