//! An indexed, read-only view of one or more commissioned facility models: the hosts that can
//! carry experiment nodes, the switches and trunks between them.
//!
//! Built once per facility-model version and shared (it is immutable); realizations only read it.

use std::collections::HashMap;

use trellis_api::xir;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct HostId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct SwitchId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TrunkId(pub u32);

/// A machine that can carry experiment nodes (XIR role `TbNode` or `Hypervisor`).
#[derive(Debug, Clone)]
pub struct Host {
    pub facility: String,
    pub name: String,
    /// Cores available to experiments (total minus reserved).
    pub cores: u32,
    /// Bytes of memory available to experiments.
    pub memory: u64,
    /// Bytes of disk.
    pub disk: u64,
    /// May be allocated whole (XIR `AllocMode::Physical`).
    pub metal: bool,
    /// May carry VMs (XIR `AllocMode::Virtual` or role `Hypervisor`).
    pub virt: bool,
    /// Platform, architecture and image-related attributes matched by node constraints: the
    /// product model when the facility gives one, otherwise the architecture.
    pub platform: String,
    /// Images the host can boot; empty means any (the facility lists none, or supports
    /// custom images).
    pub images: Vec<String>,
    /// Ports usable for experiment links.
    pub ports: Vec<HostPort>,
    /// The leaf switch most ports attach to; hosts under one leaf form a rack.
    pub leaf: Option<SwitchId>,
    /// Operators can deactivate a resource; inactive hosts are never chosen.
    pub active: bool,
    /// Lower-case ISA name of the host's processors (`x86_64`, `aarch64`, `riscv64`).
    pub architecture: String,
}

impl Host {
    /// Whether a `platform` constraint naming `value` can mean this host.
    pub fn has_platform(&self, value: &str) -> bool {
        self.platform.eq_ignore_ascii_case(value) || self.architecture.eq_ignore_ascii_case(value)
    }

    /// Whether the host can boot `image`.
    pub fn can_boot(&self, image: &str) -> bool {
        self.images.is_empty() || self.images.iter().any(|i| i == image)
    }

    /// Experiment ports that reach a switch, i.e. that can carry links to other hosts.
    pub fn switched_ports(&self) -> usize {
        self.ports.iter().filter(|p| p.switch.is_some()).count()
    }
}

/// A host NIC port usable for experiment links.
#[derive(Debug, Clone)]
pub struct HostPort {
    /// The port's name in the facility model (used in resource keys and realizations).
    pub name: String,
    /// Bits per second; 0 when the model does not say, which the engine reads as unlimited.
    pub capacity: u64,
    /// XIR `NicModel` as its numeric value.
    pub model: i32,
    pub mac: String,
    /// The switch the port is cabled to, and the switch port's name.
    pub switch: Option<(SwitchId, String)>,
}

#[derive(Debug, Clone)]
pub struct Switch {
    pub facility: String,
    pub name: String,
    /// Leaf (hosts attach) or spine/fabric (leaves attach).
    pub spine: bool,
}

/// A switch-to-switch cable.
#[derive(Debug, Clone)]
pub struct Trunk {
    pub facility: String,
    /// The cable id in the facility model (`<cable>#<n>` for the n-th lane of a breakout
    /// cable that joins several switch-port pairs).
    pub name: String,
    pub a: SwitchId,
    pub b: SwitchId,
    /// Bits per second; 0 when the model does not say, which the engine reads as unlimited.
    pub capacity: u64,
}

impl Trunk {
    /// The switch at the other end from `from`.
    pub fn other(&self, from: SwitchId) -> SwitchId {
        if self.a == from { self.b } else { self.a }
    }
}

/// Hosts under one leaf switch (or a single host attached to no switch).
#[derive(Debug, Clone)]
pub struct Rack {
    pub facility: String,
    pub leaf: Option<SwitchId>,
    pub hosts: Vec<HostId>,
}

/// The facility model could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("facility {facility}: {message}")]
    Invalid { facility: String, message: String },
}

/// The resource graph of every commissioned facility.
#[derive(Debug, Clone, Default)]
pub struct Testbed {
    pub hosts: Vec<Host>,
    pub switches: Vec<Switch>,
    pub trunks: Vec<Trunk>,
    /// Trunks at each switch, indexed by `SwitchId`.
    pub switch_trunks: Vec<Vec<TrunkId>>,
    pub racks: Vec<Rack>,
    /// The rack of each host, indexed by `HostId`.
    pub host_rack: Vec<u32>,
    /// Where each host's ports start in a flat numbering of all host ports.
    port_base: Vec<u32>,
    names: HashMap<String, FacilityNames>,
}

#[derive(Debug, Clone, Default)]
struct FacilityNames {
    hosts: HashMap<String, HostId>,
    trunks: HashMap<String, TrunkId>,
}

impl Testbed {
    /// Builds the view from facility models (hosts, switches, cables).
    pub fn from_facilities(facilities: &[xir::Facility]) -> Result<Testbed, TestbedError> {
        crate::build::build(facilities)
    }

    pub fn host(&self, id: HostId) -> &Host {
        &self.hosts[id.0 as usize]
    }

    pub fn switch(&self, id: SwitchId) -> &Switch {
        &self.switches[id.0 as usize]
    }

    pub fn trunk(&self, id: TrunkId) -> &Trunk {
        &self.trunks[id.0 as usize]
    }

    pub fn host_by_name(&self, facility: &str, name: &str) -> Option<HostId> {
        self.names.get(facility)?.hosts.get(name).copied()
    }

    pub fn trunk_by_name(&self, facility: &str, name: &str) -> Option<TrunkId> {
        self.names.get(facility)?.trunks.get(name).copied()
    }

    /// The number of host ports in the testbed.
    pub fn port_count(&self) -> usize {
        self.hosts.last().map_or(0, |h| self.port_base[self.hosts.len() - 1] as usize + h.ports.len())
    }

    /// A port's position in a flat numbering of all host ports (for per-port tables).
    pub fn flat_port(&self, host: HostId, port: u32) -> usize {
        self.port_base[host.0 as usize] as usize + port as usize
    }

    pub(crate) fn assemble(hosts: Vec<Host>, switches: Vec<Switch>, trunks: Vec<Trunk>) -> Testbed {
        let mut switch_trunks = vec![Vec::new(); switches.len()];
        let mut names: HashMap<String, FacilityNames> = HashMap::new();
        for (i, trunk) in trunks.iter().enumerate() {
            switch_trunks[trunk.a.0 as usize].push(TrunkId(i as u32));
            if trunk.b != trunk.a {
                switch_trunks[trunk.b.0 as usize].push(TrunkId(i as u32));
            }
            names
                .entry(trunk.facility.clone())
                .or_default()
                .trunks
                .insert(trunk.name.clone(), TrunkId(i as u32));
        }
        let mut port_base = Vec::with_capacity(hosts.len());
        let mut next = 0u32;
        let mut by_leaf: std::collections::BTreeMap<SwitchId, Vec<HostId>> = Default::default();
        let mut racks = Vec::new();
        let mut host_rack = vec![0u32; hosts.len()];
        for (i, host) in hosts.iter().enumerate() {
            port_base.push(next);
            next += host.ports.len() as u32;
            names.entry(host.facility.clone()).or_default().hosts.insert(host.name.clone(), HostId(i as u32));
            match host.leaf {
                Some(leaf) => by_leaf.entry(leaf).or_default().push(HostId(i as u32)),
                None => {
                    host_rack[i] = racks.len() as u32;
                    racks.push(Rack {
                        facility: host.facility.clone(),
                        leaf: None,
                        hosts: vec![HostId(i as u32)],
                    });
                }
            }
        }
        for (leaf, members) in by_leaf {
            for h in &members {
                host_rack[h.0 as usize] = racks.len() as u32;
            }
            racks.push(Rack {
                facility: switches[leaf.0 as usize].facility.clone(),
                leaf: Some(leaf),
                hosts: members,
            });
        }
        Testbed { hosts, switches, trunks, switch_trunks, racks, host_rack, port_base, names }
    }
}
