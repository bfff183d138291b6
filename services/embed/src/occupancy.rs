//! What is already taken: per-resource usage summed over every committed realization, and the
//! claims one embedding adds.

use std::collections::HashMap;

/// One unit of allocation bookkeeping; each maps to one key in the state store, so that
/// concurrent realizations conflict exactly when they touch the same resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum ResourceKey {
    /// A host's cores, memory, disk and bare-metal exclusivity.
    Host { facility: String, host: String },
    /// Capacity on one host NIC port (`port` is the port's name in the facility model).
    Port { facility: String, host: String, port: String },
    /// Capacity on one switch-to-switch trunk (a cable id).
    Trunk { facility: String, trunk: String },
    /// A VLAN id / VNI within a facility.
    Vlan { facility: String, vid: u32 },
}

/// What a claim takes from its resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub cores: u32,
    pub memory: u64,
    pub disk: u64,
    /// The whole host is taken (bare metal).
    pub exclusive: bool,
    /// VM slots on the host.
    pub vms: u32,
    /// Bits per second on a port or trunk.
    pub capacity: u64,
    /// Links (VLAN sub-interfaces) on a port.
    pub links: u32,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.cores += other.cores;
        self.memory += other.memory;
        self.disk += other.disk;
        self.exclusive |= other.exclusive;
        self.vms += other.vms;
        self.capacity += other.capacity;
        self.links += other.links;
    }
}

/// One resource taken by one realization.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    pub key: ResourceKey,
    pub usage: Usage,
}

/// Usage of every resource by realizations already committed. Keys not present are free.
#[derive(Debug, Clone, Default)]
pub struct Occupancy {
    used: HashMap<ResourceKey, Usage>,
}

impl Occupancy {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a committed claim (the realize service calls this for every allocation it reads).
    pub fn add(&mut self, claim: &Claim) {
        self.used.entry(claim.key.clone()).or_default().add(&claim.usage);
    }

    pub fn get(&self, key: &ResourceKey) -> Usage {
        self.used.get(key).copied().unwrap_or_default()
    }

    pub fn is_free(&self, key: &ResourceKey) -> bool {
        !self.used.contains_key(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ResourceKey, &Usage)> {
        self.used.iter()
    }
}
