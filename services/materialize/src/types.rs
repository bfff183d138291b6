//! Records the service keeps in the store (JSON) and the status tree it reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Whether a materialization should run or be torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Bring it up and keep it up.
    Active,
    /// Tear it down everywhere, then remove every record of it.
    Dematerializing,
}

/// The wanted state of one materialization: what every facility it touches should run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaterializationRecord {
    pub project: String,
    pub experiment: String,
    pub realization: String,
    /// The model revision realized.
    pub revision: String,
    pub creator: String,
    /// Seconds since the epoch.
    pub created: i64,
    pub phase: Phase,
    /// Bumped whenever the wanted state changes; the controller re-sends a facility's spec when
    /// the generation it last sent differs.
    pub generation: i64,
    /// The infranet subnet (CIDR) of the realization.
    pub infranet_subnet: String,
    /// Install routes between all nodes over the experiment network.
    pub static_routing: bool,
    /// Experiment interfaces got addresses automatically (the model asked for IPv4 addressing).
    pub ipv4_addressing: bool,
    /// Project members who may log in to the nodes.
    pub users: Vec<UserSpec>,
    /// OpenSSH public key of the SSH CA whose user certificates nodes trust (empty: none).
    pub ssh_ca_public_key: String,
    /// One entry per facility, by facility name.
    pub facilities: Vec<FacilitySpec>,
}

impl MaterializationRecord {
    /// Merge's materialization id: `<realization>.<experiment>.<project>`.
    pub fn mzid(&self) -> String {
        format!("{}.{}.{}", self.realization, self.experiment, self.project)
    }

    /// Every node, with the facility it runs on.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &NodeSpec)> {
        self.facilities.iter().flat_map(|f| f.nodes.iter().map(move |n| (f.facility.as_str(), n)))
    }

    pub fn node(&self, name: &str) -> Option<(&str, &NodeSpec)> {
        self.nodes().find(|(_, n)| n.name == name)
    }

    /// Counts for Merge's `MaterializationSummary`.
    pub fn summary(&self) -> Summary {
        let (metal, vms) =
            self.nodes().fold((0, 0), |(m, v), (_, n)| if n.metal { (m + 1, v) } else { (m, v + 1) });
        let links = self.facilities.iter().map(|f| f.links.len()).sum();
        Summary { metal, virtual_machines: vms, links }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub metal: usize,
    pub virtual_machines: usize,
    pub links: usize,
}

/// What one facility runs of a materialization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacilitySpec {
    pub facility: String,
    pub nodes: Vec<NodeSpec>,
    pub links: Vec<LinkSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: String,
    /// The facility resource it runs on.
    pub host: String,
    /// Bare metal (the whole host) rather than a VM.
    pub metal: bool,
    pub infranet_addr: String,
    /// Empty: the facility's default image.
    pub image: String,
    pub cores: u32,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    /// In socket order, named eth1, eth2, ...
    pub interfaces: Vec<InterfaceSpec>,
    pub persistent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSpec {
    pub name: String,
    pub link: String,
    /// The node's socket (in the model) this interface is.
    pub socket: u32,
    /// With prefix length, like 10.128.0.1/24.
    pub addrs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSpec {
    pub name: String,
    pub endpoints: Vec<EndpointSpec>,
    /// Emulation; zero means unconstrained.
    pub capacity_bps: u64,
    pub latency_us: u64,
    /// Fraction of packets lost, 0..1.
    pub loss: f64,
    /// 0 for links that stay on one host.
    pub vlan: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub node: String,
    pub interface: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// OpenSSH authorized_keys lines.
    pub authorized_keys: Vec<String>,
}

/// A task's state, ordered from best to worst as Merge's `TaskStatus.StatusType` is, so the
/// worst state of a tree is its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum TaskState {
    #[default]
    Undefined,
    Success,
    Deleted,
    Pending,
    /// The facility could not be reached.
    Unresponsive,
    Processing,
    Error,
}

/// What the controller last learned about one materialization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusRecord {
    /// By facility name.
    pub facilities: BTreeMap<String, FacilityStatus>,
    /// Seconds since the epoch: when the controller first and last recorded a change.
    pub first_updated: i64,
    pub last_updated: i64,
}

/// One facility's part of a materialization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FacilityStatus {
    pub state: TaskState,
    /// Why, for people: the last error, or what is being waited on.
    pub message: String,
    /// The wanted generation this facility was last sent (0: never).
    pub sent_generation: i64,
    /// Consecutive failed attempts to reach the facility (drives the retry backoff).
    pub failures: u32,
    pub nodes: Vec<ElementStatus>,
    pub links: Vec<ElementStatus>,
    /// Seconds since the epoch of the last change.
    pub since: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElementStatus {
    pub name: String,
    pub state: TaskState,
    pub message: String,
    /// Seconds since the epoch when the state last changed (as the facility reports it).
    pub since: i64,
}

/// A status tree in the shape of Merge's `TaskTree`: the materialization, its facilities, and
/// their nodes and links. `highest` is the worst state anywhere in the subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusTree {
    pub name: String,
    pub state: TaskState,
    pub highest: TaskState,
    pub message: String,
    /// Seconds since the epoch (0: unknown).
    pub first_updated: i64,
    pub last_updated: i64,
    pub children: Vec<StatusTree>,
}

impl StatusTree {
    /// A tree whose `highest` is computed from `state` and the children's.
    pub fn new(
        name: String,
        state: TaskState,
        message: String,
        since: (i64, i64),
        children: Vec<StatusTree>,
    ) -> Self {
        let highest = children.iter().map(|c| c.highest).fold(state, TaskState::max);
        let last_updated = children.iter().map(|c| c.last_updated).fold(since.1, i64::max);
        StatusTree { name, state, highest, message, first_updated: since.0, last_updated, children }
    }

    /// How many tasks are below this one (Merge's `num_child_tasks`).
    pub fn descendants(&self) -> usize {
        self.children.iter().map(|c| 1 + c.descendants()).sum()
    }
}
