//! Shared test fixtures: the two store backends, hand-built facility models and experiments.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use trellis_api::xir;
use trellis_blobs::local::LocalBlobStore;
use trellis_compiler::{Compiler, CompilerConfig};
use trellis_model::ModelService;
use trellis_realize::{Allocation, FacilityRecord, RealizeService};
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;
use trellis_store::etcd::EtcdStore;
use trellis_testkit::etcd::EtcdServer;

pub const GBPS: u64 = 1_000_000_000;
pub const GIB: u64 = 1 << 30;

/// A store for one test, kept alive with whatever runs it.
pub struct Backend {
    pub store: Arc<dyn Store>,
    pub etcd: Option<EtcdServer>,
    pub dir: tempfile::TempDir,
}

impl Backend {
    pub async fn embedded() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
        Backend { store, etcd: None, dir }
    }

    pub async fn etcd() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let server = EtcdServer::start().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(EtcdStore::connect(&[server.endpoint()]).await.unwrap());
        Backend { store, etcd: Some(server), dir }
    }

    /// Another client of the same store (a second replica, for etcd its own connection).
    pub async fn another_client(&self) -> Arc<dyn Store> {
        match &self.etcd {
            Some(server) => Arc::new(EtcdStore::connect(&[server.endpoint()]).await.unwrap()),
            None => self.store.clone(),
        }
    }

    /// A model service on this store; it compiles only when `compile` is set.
    pub fn models(&self, compile: bool) -> ModelService {
        models_on(self.store.clone(), self.dir.path(), compile)
    }

    pub fn service(&self) -> RealizeService {
        RealizeService::new(self.store.clone(), self.models(false))
    }
}

pub fn models_on(store: Arc<dyn Store>, dir: &Path, compile: bool) -> ModelService {
    let blobs = Arc::new(LocalBlobStore::open(&dir.join("blobs")).unwrap());
    let compiler = if compile {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv");
        assert!(venv.join("bin/python").exists(), "{} is missing: run scripts/setup.sh", venv.display());
        let compiler = Compiler::new(CompilerConfig::new(venv)).map_err(|e| e.to_string());
        assert!(compiler.is_ok(), "compiler: {:?}", compiler.as_ref().err());
        compiler
    } else {
        Err("tests without a compiler".to_owned())
    };
    ModelService::new(store, blobs, compiler)
}

/// Runs a test body against the embedded store and against real etcd.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn embedded() {
                super::$body(crate::common::Backend::embedded().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn etcd() {
                super::$body(crate::common::Backend::etcd().await).await;
            }
        }
    };
}

/// Shape of a generated facility: racks of hosts under leaf switches joined by one spine.
#[derive(Debug, Clone)]
pub struct Shape {
    pub racks: usize,
    pub hosts_per_rack: usize,
    pub cores: u32,
    pub memory: u64,
    /// Experiment ports per host and their capacity.
    pub ports: usize,
    pub port_capacity: u64,
    /// Leaf-to-spine trunk capacity.
    pub trunk_capacity: u64,
    /// Hosts are hypervisors (VMs) rather than bare-metal machines.
    pub hypervisors: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            racks: 2,
            hosts_per_rack: 4,
            cores: 16,
            memory: 64 * GIB,
            ports: 2,
            port_capacity: 10 * GBPS,
            trunk_capacity: 40 * GBPS,
            hypervisors: false,
        }
    }
}

pub fn host_name(rack: usize, host: usize) -> String {
    format!("r{rack}n{host}")
}

fn port(name: String, capacity: u64, experiment: bool) -> xir::Port {
    let role = if experiment { xir::LinkRole::XpLink } else { xir::LinkRole::InfraLink };
    xir::Port { name, capacity, roles: vec![role as i32], ..Default::default() }
}

fn cable(id: String, a: (&str, u32), b: (&str, u32)) -> xir::Cable {
    let end = |(element, index): (&str, u32)| xir::End {
        connectors: vec![xir::Connector {
            port: Some(xir::Ref { element: element.to_owned(), index, ..Default::default() }),
            ..Default::default()
        }],
    };
    xir::Cable { id, ends: vec![end(a), end(b)], ..Default::default() }
}

/// A facility model of `shape`: hosts `r<rack>n<i>` with experiment ports `eth<k>` cabled to
/// leaf `leaf<rack>`, leaves cabled to `spine` by trunk `trunk<rack>`.
pub fn facility(name: &str, shape: &Shape) -> xir::Facility {
    let mut resources = Vec::new();
    let mut cables = Vec::new();
    let leaf_ports = shape.hosts_per_rack * shape.ports + 1;
    for rack in 0..shape.racks {
        let leaf = format!("leaf{rack}");
        for h in 0..shape.hosts_per_rack {
            let id = host_name(rack, h);
            let (role, alloc) = if shape.hypervisors {
                (xir::Role::Hypervisor, xir::AllocMode::Virtual)
            } else {
                (xir::Role::TbNode, xir::AllocMode::Physical)
            };
            let mut ports: Vec<xir::Port> =
                (0..shape.ports).map(|k| port(format!("eth{k}"), shape.port_capacity, true)).collect();
            ports.push(port("mgmt".to_owned(), GBPS, false));
            resources.push(xir::Resource {
                id: id.clone(),
                facility: name.to_owned(),
                roles: vec![role as i32],
                alloc: vec![alloc as i32],
                procs: vec![xir::Proc {
                    cores: shape.cores,
                    isa: xir::Isa::X8664 as i32,
                    ..Default::default()
                }],
                memory: vec![xir::Dimm { capacity: shape.memory, ..Default::default() }],
                ni_cs: vec![xir::Nic { ports, ..Default::default() }],
                ..Default::default()
            });
            for k in 0..shape.ports {
                let leaf_port = (h * shape.ports + k) as u32;
                cables.push(cable(format!("{id}-eth{k}"), (&id, k as u32), (&leaf, leaf_port)));
            }
        }
        resources.push(xir::Resource {
            id: leaf.clone(),
            facility: name.to_owned(),
            roles: vec![xir::Role::Leaf as i32],
            ni_cs: vec![xir::Nic {
                ports: (0..leaf_ports)
                    .map(|p| port(format!("swp{p}"), shape.trunk_capacity, false))
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        });
        cables.push(cable(format!("trunk{rack}"), (&leaf, (leaf_ports - 1) as u32), ("spine", rack as u32)));
    }
    resources.push(xir::Resource {
        id: "spine".to_owned(),
        facility: name.to_owned(),
        roles: vec![xir::Role::Spine as i32],
        ni_cs: vec![xir::Nic {
            ports: (0..shape.racks.max(1))
                .map(|p| port(format!("swp{p}"), shape.trunk_capacity, false))
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    });
    xir::Facility { id: name.to_owned(), resources, cables, ..Default::default() }
}

pub fn record(name: &str) -> FacilityRecord {
    FacilityRecord {
        name: name.to_owned(),
        address: format!("{name}.example.net:6000"),
        description: format!("test facility {name}"),
        creator: "ops".to_owned(),
        certificate: String::new(),
        ca_certificate: String::new(),
        deactivated: vec![],
        ver: 0,
        created: 0,
    }
}

/// One node of a generated experiment.
#[derive(Debug, Clone, Copy)]
pub struct NodeSpec {
    pub cores: u32,
    pub memory: u64,
    /// `Some(true)` bare metal, `Some(false)` a VM, `None` either.
    pub metal: Option<bool>,
}

impl NodeSpec {
    pub fn metal() -> NodeSpec {
        NodeSpec { cores: 1, memory: GIB, metal: Some(true) }
    }

    pub fn vm(cores: u32, memory: u64) -> NodeSpec {
        NodeSpec { cores, memory, metal: Some(false) }
    }
}

/// An experiment of nodes `n0..` and links among them (node indices and capacity in bit/s; 0
/// leaves the capacity unconstrained).
pub fn network(name: &str, nodes: &[NodeSpec], links: &[(Vec<usize>, u64)]) -> xir::Network {
    let mut sockets: HashMap<usize, i32> = HashMap::new();
    let mut xlinks = Vec::new();
    for (l, (ends, capacity)) in links.iter().enumerate() {
        let endpoints = ends
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let socket = sockets.entry(n).or_default();
                let index = *socket;
                *socket += 1;
                xir::Endpoint {
                    index: i as i32,
                    socket: Some(xir::Ref {
                        element: format!("n{n}"),
                        index: index as u32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            })
            .collect();
        xlinks.push(xir::Link {
            id: format!("l{l}"),
            capacity: (*capacity > 0)
                .then_some(xir::Uint64Constraint { op: xir::Operator::Eq as i32, value: *capacity }),
            endpoints,
            ..Default::default()
        });
    }
    let xnodes = nodes
        .iter()
        .enumerate()
        .map(|(i, spec)| xir::Node {
            id: format!("n{i}"),
            sockets: (0..sockets.get(&i).copied().unwrap_or(0))
                .map(|s| xir::Socket { index: s, ..Default::default() })
                .collect(),
            proc: Some(xir::ProcSpec {
                cores: Some(xir::Uint32Constraint { op: xir::Operator::Ge as i32, value: spec.cores }),
                ..Default::default()
            }),
            memory: Some(xir::MemorySpec {
                capacity: Some(xir::Uint64Constraint { op: xir::Operator::Ge as i32, value: spec.memory }),
                ..Default::default()
            }),
            metal: spec.metal.map(|value| xir::BoolConstraint { op: xir::Operator::Eq as i32, value }),
            ..Default::default()
        })
        .collect();
    xir::Network { id: name.to_owned(), nodes: xnodes, links: xlinks, ..Default::default() }
}

/// `count` bare-metal nodes in a chain of links of `capacity`.
pub fn chain(count: usize, capacity: u64) -> xir::Network {
    let links: Vec<(Vec<usize>, u64)> = (1..count).map(|i| (vec![i - 1, i], capacity)).collect();
    network("chain", &vec![NodeSpec::metal(); count], &links)
}

/// The allocation table read straight from the store.
pub async fn table(service: &RealizeService) -> HashMap<String, Vec<Allocation>> {
    service.allocation_table().await.unwrap().into_iter().collect()
}

/// Hosts a realization's nodes landed on.
pub fn hosts_of(record: &trellis_realize::RealizationRecord) -> Vec<String> {
    record.node_hosts.iter().map(|(_, h)| h.clone()).collect()
}
