//! What is free on each host while an embedding is being built: what committed realizations
//! left, minus what this embedding has taken so far.

use std::collections::{HashMap, HashSet};

use crate::request::{KindRequest, Profile};
use crate::testbed::{Host, HostId, Testbed};
use crate::{NodeKind, Occupancy, ResourceKey};

/// Most VMs the engine counts on one host when estimating room (an estimate only: actual
/// placement checks cores, memory and disk).
const MAX_SLOTS: u64 = 64;

#[derive(Debug, Clone, Copy, Default)]
pub struct HostState {
    pub free_cores: u64,
    pub free_memory: u64,
    pub free_disk: u64,
    /// A bare-metal node holds the host.
    pub exclusive: bool,
    pub vms: u32,
    /// Anything at all is placed on the host.
    pub busy: bool,
    /// Bits per second left on the host's switched experiment ports together: VMs whose
    /// links leave the host draw on it.
    pub free_net: u64,
}

/// What placing one node on one host takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    pub kind: NodeKind,
    pub cores: u64,
    pub memory: u64,
    pub disk: u64,
}

impl HostState {
    pub fn apply(&mut self, take: &Take) {
        self.free_cores = self.free_cores.saturating_sub(take.cores);
        self.free_memory = self.free_memory.saturating_sub(take.memory);
        self.free_disk = self.free_disk.saturating_sub(take.disk);
        self.busy = true;
        match take.kind {
            NodeKind::BareMetal => self.exclusive = true,
            NodeKind::VirtualMachine => self.vms += 1,
        }
    }
}

/// How a node of `kind` would be placed on `host` in `state`: a node without a preference is
/// bare metal on a host that allows it (unless the host already runs VMs and may run more),
/// otherwise a VM.
pub fn resolve_kind(kind: KindRequest, host: &Host, state: &HostState) -> Option<NodeKind> {
    match kind {
        KindRequest::BareMetal => host.metal.then_some(NodeKind::BareMetal),
        KindRequest::VirtualMachine => host.virt.then_some(NodeKind::VirtualMachine),
        KindRequest::Either => {
            if host.metal && !(host.virt && state.vms > 0) {
                Some(NodeKind::BareMetal)
            } else if host.virt {
                Some(NodeKind::VirtualMachine)
            } else {
                None
            }
        }
    }
}

/// What a node with `profile` would take on `host` now, if it fits. Assumes the host passed
/// the profile's static constraints (see `filter`).
pub fn fit(profile: &Profile, host: &Host, state: &HostState) -> Option<Take> {
    match resolve_kind(profile.kind, host, state)? {
        NodeKind::BareMetal => (!state.busy).then_some(Take {
            kind: NodeKind::BareMetal,
            cores: u64::from(host.cores),
            memory: host.memory,
            disk: host.disk,
        }),
        NodeKind::VirtualMachine => {
            if state.exclusive {
                return None;
            }
            let (cores, memory, disk) = profile.vm_reservation();
            (state.free_cores >= cores && state.free_memory >= memory && state.free_disk >= disk)
                .then_some(Take { kind: NodeKind::VirtualMachine, cores, memory, disk })
        }
    }
}

/// Roughly how many nodes with `profile` the host could still take, each drawing
/// `net_demand` bits per second on its ports when a VM.
pub fn slots(profile: &Profile, host: &Host, state: &HostState, net_demand: u64) -> u64 {
    let Some(take) = fit(profile, host, state) else { return 0 };
    match take.kind {
        NodeKind::BareMetal => 1,
        NodeKind::VirtualMachine => {
            let mut n = MAX_SLOTS;
            let needs = [
                (state.free_cores, take.cores),
                (state.free_memory, take.memory),
                (state.free_disk, take.disk),
                (state.free_net, net_demand),
            ];
            for (free, need) in needs {
                if let Some(fits) = free.checked_div(need) {
                    n = n.min(fits);
                }
            }
            n
        }
    }
}

/// Everything committed realizations hold, indexed for the engine.
pub struct Committed {
    pub hosts: Vec<HostState>,
    /// Capacity in use on each host port (flat numbering, see `Testbed::flat_port`).
    pub ports: Vec<u64>,
    pub trunks: Vec<u64>,
    /// VLAN ids / VNIs in use, per facility.
    pub vlans: HashMap<String, HashSet<u32>>,
}

impl Committed {
    pub fn read(testbed: &Testbed, occupancy: &Occupancy) -> Committed {
        let mut hosts: Vec<HostState> = testbed
            .hosts
            .iter()
            .map(|h| HostState {
                free_cores: u64::from(h.cores),
                free_memory: h.memory,
                free_disk: h.disk,
                ..Default::default()
            })
            .collect();
        let mut ports = vec![0u64; testbed.port_count()];
        let mut capacity = vec![0u64; testbed.port_count()];
        for (h, host) in testbed.hosts.iter().enumerate() {
            for (p, port) in host.ports.iter().enumerate() {
                if port.switch.is_some() {
                    capacity[testbed.flat_port(HostId(h as u32), p as u32)] = remaining(port.capacity, 0);
                }
            }
        }
        let mut trunks = vec![0u64; testbed.trunks.len()];
        let mut vlans: HashMap<String, HashSet<u32>> = HashMap::new();
        for (key, usage) in occupancy.iter() {
            match key {
                ResourceKey::Host { facility, host } => {
                    if let Some(id) = testbed.host_by_name(facility, host) {
                        let state = &mut hosts[id.0 as usize];
                        state.free_cores = state.free_cores.saturating_sub(u64::from(usage.cores));
                        state.free_memory = state.free_memory.saturating_sub(usage.memory);
                        state.free_disk = state.free_disk.saturating_sub(usage.disk);
                        state.exclusive |= usage.exclusive;
                        state.vms += usage.vms;
                        state.busy |= *usage != crate::Usage::default();
                    }
                }
                ResourceKey::Port { facility, host, port } => {
                    if let Some(id) = testbed.host_by_name(facility, host)
                        && let Some(p) = testbed.host(id).ports.iter().position(|p| &p.name == port)
                    {
                        ports[testbed.flat_port(id, p as u32)] += usage.capacity;
                    }
                }
                ResourceKey::Trunk { facility, trunk } => {
                    if let Some(id) = testbed.trunk_by_name(facility, trunk) {
                        trunks[id.0 as usize] += usage.capacity;
                    }
                }
                ResourceKey::Vlan { facility, vid } => {
                    vlans.entry(facility.clone()).or_default().insert(*vid);
                }
            }
        }
        for (h, (host, state)) in testbed.hosts.iter().zip(&mut hosts).enumerate() {
            state.free_net = (0..host.ports.len())
                .map(|p| {
                    let flat = testbed.flat_port(HostId(h as u32), p as u32);
                    capacity[flat].saturating_sub(ports[flat])
                })
                .fold(0u64, u64::saturating_add);
        }
        Committed { hosts, ports, trunks, vlans }
    }
}

/// Capacity left out of `capacity` after `used`; a capacity of 0 means the model does not
/// say, read as unlimited.
pub fn remaining(capacity: u64, used: u64) -> u64 {
    if capacity == 0 { u64::MAX } else { capacity.saturating_sub(used) }
}
