//! Generated facilities and experiments for tests and benchmarks, shaped like the XIR the
//! facility tooling and `mergexp` emit: hosts with an infranet NIC and an experiment NIC,
//! leaf and spine switches joined by cables whose connectors name ports by
//! `Ref { element, index: <nic>, subref: <port> }`; experiment links named `a.0~b.0` whose
//! endpoints refer to node sockets and whose sockets refer back to the link.

use std::collections::HashSet;

use trellis_api::xir;

use crate::rng::Rng;

pub const MBPS: u64 = 1_000_000;
pub const GBPS: u64 = 1_000_000_000;
pub const GIB: u64 = 1 << 30;

/// One kind of machine; a facility cycles through its host types.
#[derive(Debug, Clone)]
pub struct HostType {
    /// Product model, matched by `platform` constraints.
    pub model: String,
    pub cores: u32,
    pub memory: u64,
    pub disk: u64,
}

/// A mix of small, medium and large x86 servers.
pub fn default_host_types() -> Vec<HostType> {
    vec![
        HostType { model: "r320".into(), cores: 8, memory: 32 * GIB, disk: 500 * GIB },
        HostType { model: "r430".into(), cores: 16, memory: 64 * GIB, disk: 1000 * GIB },
        HostType { model: "r640".into(), cores: 32, memory: 128 * GIB, disk: 2000 * GIB },
        HostType { model: "r430".into(), cores: 16, memory: 64 * GIB, disk: 1000 * GIB },
    ]
}

#[derive(Debug, Clone)]
pub struct FacilitySpec {
    pub name: String,
    pub racks: u32,
    pub hosts_per_rack: u32,
    /// Experiment NIC ports per host, each cabled to the rack's leaf.
    pub ports_per_host: u32,
    pub port_capacity: u64,
    pub nic_model: xir::NicModel,
    pub spines: u32,
    /// Cables from each leaf to the spines (round robin over the spines).
    pub uplinks_per_leaf: u32,
    pub uplink_capacity: u64,
    /// Cycled through the hosts.
    pub host_types: Vec<HostType>,
    /// Hosts may be allocated whole.
    pub physical: bool,
    /// Hosts may carry VMs.
    pub virtualized: bool,
    /// The facility's standard images (empty: any image).
    pub images: Vec<String>,
}

impl FacilitySpec {
    /// `racks` racks of `hosts_per_rack` bare-metal hosts with four 1 Gb/s experiment ports,
    /// four 10 Gb/s uplinks per leaf to two spines.
    pub fn new(name: &str, racks: u32, hosts_per_rack: u32) -> FacilitySpec {
        FacilitySpec {
            name: name.into(),
            racks,
            hosts_per_rack,
            ports_per_host: 4,
            port_capacity: GBPS,
            nic_model: xir::NicModel::ConnectX4,
            spines: 2,
            uplinks_per_leaf: 4,
            uplink_capacity: 10 * GBPS,
            host_types: default_host_types(),
            physical: true,
            virtualized: false,
            images: ["bookworm", "2204", "2404"].map(String::from).to_vec(),
        }
    }
}

/// The name of host `index` of rack `rack` in a generated facility.
pub fn host_name(rack: u32, index: u32) -> String {
    format!("r{rack}h{index}")
}

fn port(
    parent: &str,
    index: u32,
    name: String,
    capacity: u64,
    role: xir::LinkRole,
    mac: String,
) -> xir::Port {
    xir::Port {
        parent: parent.into(),
        index,
        capacity,
        mac,
        name,
        role: role as i32,
        roles: vec![role as i32],
        ..Default::default()
    }
}

struct Builder {
    facility: String,
    resources: Vec<xir::Resource>,
    cables: Vec<xir::Cable>,
    macs: u32,
}

impl Builder {
    fn mac(&mut self) -> String {
        self.macs += 1;
        let m = self.macs.to_be_bytes();
        format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3])
    }

    /// Cables port `(resource a, nic, port)` to `(resource b, nic, port)`.
    fn cable(&mut self, a: (usize, u32, u32), b: (usize, u32, u32), capacity: u64) {
        let name = |r: &xir::Resource, nic: u32, p: u32| {
            format!("{}.{}", r.id, r.ni_cs[nic as usize].ports[p as usize].name)
        };
        let id = format!("{}~{}", name(&self.resources[a.0], a.1, a.2), name(&self.resources[b.0], b.1, b.2));
        let mut ends = Vec::new();
        for (end, (r, nic, p)) in [a, b].into_iter().enumerate() {
            let resource = &mut self.resources[r];
            let connector = xir::Connector {
                parent: id.clone(),
                index: end as u32,
                kind: xir::ConnectorKind::Sfpp as i32,
                capacity,
                port: Some(xir::Ref {
                    element: resource.id.clone(),
                    index: nic,
                    subref: Some(xir::Subref { index: p }),
                    facility: String::new(),
                }),
                facility: self.facility.clone(),
                ..Default::default()
            };
            resource.ni_cs[nic as usize].ports[p as usize].connector = Some(xir::Ref {
                element: id.clone(),
                index: end as u32,
                subref: Some(xir::Subref { index: 0 }),
                facility: String::new(),
            });
            ends.push(xir::End { connectors: vec![connector] });
        }
        self.cables.push(xir::Cable {
            id,
            facility: self.facility.clone(),
            kind: xir::CableKind::Dac as i32,
            ends,
            ..Default::default()
        });
    }

    fn switch(&mut self, id: String, role: xir::Role, ports: u32, capacity: u64) -> usize {
        let mut nic = xir::Nic { kind: xir::NicKind::Swp as i32, ..Default::default() };
        for p in 0..ports {
            let mac = self.mac();
            nic.ports.push(port(&id, p, format!("swp{}", p + 1), capacity, xir::LinkRole::XpLink, mac));
        }
        self.resources.push(xir::Resource {
            id,
            facility: self.facility.clone(),
            roles: vec![role as i32],
            alloc: vec![xir::AllocMode::NoAlloc as i32],
            ni_cs: vec![nic],
            ..Default::default()
        });
        self.resources.len() - 1
    }
}

/// A facility of `spec.racks` racks.
pub fn facility(spec: &FacilitySpec) -> xir::Facility {
    let mut b = Builder { facility: spec.name.clone(), resources: Vec::new(), cables: Vec::new(), macs: 0 };
    let spines: u32 = spec.spines.max(1);
    let per_spine = spec.uplinks_per_leaf.div_ceil(spines);
    let spine_ids: Vec<usize> = (0..spines)
        .map(|s| {
            b.switch(format!("spine{s}"), xir::Role::Spine, spec.racks * per_spine, spec.uplink_capacity)
        })
        .collect();
    let mut spine_next = vec![0u32; spines as usize];
    let mut alloc = Vec::new();
    if spec.physical {
        alloc.push(xir::AllocMode::Physical as i32);
    }
    if spec.virtualized {
        alloc.push(xir::AllocMode::Virtual as i32);
    }
    let mut index = 0usize;
    for r in 0..spec.racks {
        let downlinks = spec.hosts_per_rack * spec.ports_per_host;
        let leaf = b.switch(
            format!("leaf{r}"),
            xir::Role::Leaf,
            downlinks + spec.uplinks_per_leaf,
            spec.port_capacity,
        );
        for u in 0..spec.uplinks_per_leaf {
            let leaf_port = downlinks + u;
            b.resources[leaf].ni_cs[0].ports[leaf_port as usize].capacity = spec.uplink_capacity;
            let s = (u % spines) as usize;
            let spine_port = spine_next[s];
            spine_next[s] += 1;
            b.cable((leaf, 0, leaf_port), (spine_ids[s], 0, spine_port), spec.uplink_capacity);
        }
        let infra = b.switch(format!("ileaf{r}"), xir::Role::InfraSwitch, spec.hosts_per_rack, GBPS);
        for i in 0..spec.hosts_per_rack {
            let kind = &spec.host_types[index % spec.host_types.len().max(1)];
            index += 1;
            let id = host_name(r, i);
            let mac = b.mac();
            let infranet = xir::Nic {
                ports: vec![port(&id, 0, "eno1".into(), GBPS, xir::LinkRole::InfraLink, mac)],
                kind: xir::NicKind::Eno as i32,
                model: xir::NicModel::Intel500 as i32,
                ..Default::default()
            };
            let mut experiment = xir::Nic {
                kind: xir::NicKind::Enp as i32,
                model: spec.nic_model as i32,
                ..Default::default()
            };
            for p in 0..spec.ports_per_host {
                let mac = b.mac();
                experiment.ports.push(port(
                    &id,
                    p,
                    format!("enp{}", p + 1),
                    spec.port_capacity,
                    xir::LinkRole::XpLink,
                    mac,
                ));
            }
            b.resources.push(xir::Resource {
                id: id.clone(),
                facility: spec.name.clone(),
                procs: vec![xir::Proc {
                    isa: xir::Isa::X8664 as i32,
                    cores: kind.cores,
                    threads: kind.cores * 2,
                    ..Default::default()
                }],
                memory: vec![xir::Dimm {
                    r#type: xir::MemoryType::Ddr4 as i32,
                    capacity: kind.memory,
                    ..Default::default()
                }],
                disks: vec![xir::Disk { capacity: kind.disk, ..Default::default() }],
                ni_cs: vec![infranet, experiment],
                alloc: alloc.clone(),
                roles: vec![xir::Role::TbNode as i32],
                product_info: Some(xir::ProductInfo {
                    manufacturer: "Dell".into(),
                    model: kind.model.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            });
            let host = b.resources.len() - 1;
            b.cable((host, 0, 0), (infra, 0, i), GBPS);
            for p in 0..spec.ports_per_host {
                b.cable((host, 1, p), (leaf, 0, i * spec.ports_per_host + p), spec.port_capacity);
            }
        }
    }
    xir::Facility {
        id: spec.name.clone(),
        fqdn: format!("{}.example.net", spec.name),
        resources: b.resources,
        cables: b.cables,
        properties: Some(xir::FacilityProperties {
            standard_images: spec.images.clone(),
            custom_image_support: spec.images.is_empty(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[derive(Debug, Clone)]
pub struct ExperimentSpec {
    pub name: String,
    pub nodes: u32,
    /// Links per node on average (the graph is first a random spanning tree, then random
    /// extra links up to this).
    pub links_per_node: f64,
    pub max_degree: u32,
    /// Bits per second asked of every link.
    pub link_capacity: u64,
    /// Every node asks for bare metal (`metal == True`).
    pub metal: bool,
    pub seed: u64,
}

impl ExperimentSpec {
    /// `nodes` bare-metal nodes, about 1.4 links per node, degree at most 4, 100 Mb/s links.
    pub fn new(name: &str, nodes: u32, seed: u64) -> ExperimentSpec {
        ExperimentSpec {
            name: name.into(),
            nodes,
            links_per_node: 1.4,
            max_degree: 4,
            link_capacity: 100 * MBPS,
            metal: true,
            seed,
        }
    }
}

/// The name of node `i` in a generated experiment.
pub fn node_name(i: u32) -> String {
    format!("n{i}")
}

/// A random connected experiment.
pub fn experiment(spec: &ExperimentSpec) -> xir::Network {
    let n = spec.nodes;
    let max_degree = spec.max_degree.max(2);
    let mut rng = Rng::new(spec.seed);
    let mut degree = vec![0u32; n as usize];
    let mut edges: Vec<(u32, u32)> = Vec::new();
    let mut seen: HashSet<(u32, u32)> = HashSet::new();
    let mut add = |a: u32, b: u32, degree: &mut Vec<u32>, edges: &mut Vec<(u32, u32)>| {
        if a == b || degree[a as usize] >= max_degree || degree[b as usize] >= max_degree {
            return false;
        }
        if !seen.insert((a.min(b), a.max(b))) {
            return false;
        }
        degree[a as usize] += 1;
        degree[b as usize] += 1;
        edges.push((a, b));
        true
    };
    for i in 1..n {
        // Attach to a random earlier node with room (a random tree of bounded degree).
        let start = rng.below(i as usize) as u32;
        for k in 0..i {
            if add(i, (start + k) % i, &mut degree, &mut edges) {
                break;
            }
        }
    }
    let target = (spec.links_per_node * f64::from(n)).round() as usize;
    let mut attempts = 0;
    while edges.len() < target && attempts < target * 50 {
        attempts += 1;
        let a = rng.below(n as usize) as u32;
        let b = rng.below(n as usize) as u32;
        add(a, b, &mut degree, &mut edges);
    }

    let mut nodes: Vec<xir::Node> = (0..n)
        .map(|i| xir::Node {
            id: node_name(i),
            metal: spec.metal.then_some(xir::BoolConstraint { op: xir::Operator::Eq as i32, value: true }),
            ..Default::default()
        })
        .collect();
    let mut links = Vec::with_capacity(edges.len());
    for (a, b) in edges {
        let sa = nodes[a as usize].sockets.len() as u32;
        let sb = nodes[b as usize].sockets.len() as u32;
        let id = format!("{}.{sa}~{}.{sb}", node_name(a), node_name(b));
        for (end, (node, socket)) in [(a, sa), (b, sb)].into_iter().enumerate() {
            nodes[node as usize].sockets.push(xir::Socket {
                index: socket as i32,
                endpoint: Some(xir::Ref { element: id.clone(), index: end as u32, ..Default::default() }),
                port: Some(xir::PortSpec::default()),
                ..Default::default()
            });
        }
        links.push(xir::Link {
            id,
            capacity: Some(xir::Uint64Constraint { op: xir::Operator::Eq as i32, value: spec.link_capacity }),
            endpoints: [(a, sa), (b, sb)]
                .into_iter()
                .enumerate()
                .map(|(end, (node, socket))| xir::Endpoint {
                    index: end as i32,
                    socket: Some(xir::Ref { element: node_name(node), index: socket, ..Default::default() }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
    }
    xir::Network {
        id: spec.name.clone(),
        nodes,
        links,
        parameters: Some(xir::ExperimentParameters { experimentnetresolution: true, ..Default::default() }),
    }
}
