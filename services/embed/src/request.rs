//! What an experiment asks for, extracted from its XIR `Network` and checked for shape.

use std::collections::{BTreeMap, HashMap};

use trellis_api::xir;

use crate::constraint::{Bound, Op};

/// Cores a VM gets when its model does not say.
pub const DEFAULT_VM_CORES: u64 = 1;
/// Memory a VM gets when its model does not say (1 GiB).
pub const DEFAULT_VM_MEMORY: u64 = 1 << 30;
/// Disk a VM reserves when its model does not say: none, so hosts that do not model their
/// disks can still carry VMs.
pub const DEFAULT_VM_DISK: u64 = 0;

/// The experiment model could not be read as a request (a model the static analysis should
/// have rejected, e.g. a link endpoint naming a missing node).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{element}: {message}")]
pub struct RequestError {
    pub element: String,
    pub message: String,
}

fn error(element: impl Into<String>, message: impl Into<String>) -> RequestError {
    RequestError { element: element.into(), message: message.into() }
}

/// How a node wants to be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KindRequest {
    /// `metal == true` (or `virt == false`).
    BareMetal,
    /// `virt == true` (or `metal == false`).
    VirtualMachine,
    /// No preference: bare metal on a host that allows it, otherwise a VM.
    Either,
}

/// Constraints on the host NIC port an interface uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRequest {
    /// On the port's line rate, in bits per second.
    pub capacity: Option<Bound<u64>>,
    /// On the port's `NicModel` (numeric value).
    pub model: Option<Bound<i32>>,
}

impl PortRequest {
    pub fn is_empty(&self) -> bool {
        self.capacity.is_none() && self.model.is_none()
    }
}

/// Everything a node asks of its host. Nodes with equal profiles have the same candidate
/// hosts, so the engine filters once per profile rather than once per node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Profile {
    pub kind: KindRequest,
    pub cores: Option<Bound<u64>>,
    pub memory: Option<Bound<u64>>,
    pub disk: Option<Bound<u64>>,
    pub image: Option<Bound<String>>,
    pub platform: Option<Bound<String>>,
    /// Lower-case ISA name (`x86_64`, `aarch64`, `riscv64`).
    pub architecture: Option<Bound<String>>,
    pub host: Option<Bound<String>>,
    pub facility: Option<Bound<String>>,
    /// Interfaces a bare-metal placement needs distinct experiment ports for (0 for VMs,
    /// whose interfaces are virtual).
    pub nics: u32,
    /// Constraints of the interfaces that have any, sorted.
    pub ports: Vec<PortRequest>,
}

impl Profile {
    /// Cores, memory and disk a VM with this profile reserves.
    pub fn vm_reservation(&self) -> (u64, u64, u64) {
        (
            crate::constraint::reserve(self.cores.as_ref(), DEFAULT_VM_CORES),
            crate::constraint::reserve(self.memory.as_ref(), DEFAULT_VM_MEMORY),
            crate::constraint::reserve(self.disk.as_ref(), DEFAULT_VM_DISK),
        )
    }
}

/// One interface of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRequest {
    /// The socket's index in the model.
    pub index: u32,
    pub port: PortRequest,
    /// The link it attaches to.
    pub link: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRequest {
    pub id: String,
    /// Index into [`Request::profiles`].
    pub profile: u32,
    /// Sorted by index.
    pub sockets: Vec<SocketRequest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointRequest {
    /// Index into [`Request::nodes`].
    pub node: u32,
    /// The node socket's index in the model.
    pub socket: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    pub id: String,
    /// Bits per second reserved on every port and trunk the link crosses. A link without a
    /// capacity constraint is best effort and reserves nothing.
    pub capacity: u64,
    pub endpoints: Vec<EndpointRequest>,
}

/// An experiment's nodes and links with their constraints, indexed for the engine.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub nodes: Vec<NodeRequest>,
    pub links: Vec<LinkRequest>,
    /// Distinct node profiles, in order of first use.
    pub profiles: Vec<Profile>,
    /// The links at each node.
    pub node_links: Vec<Vec<u32>>,
}

impl Request {
    pub fn from_network(network: &xir::Network) -> Result<Request, RequestError> {
        let mut index: HashMap<&str, u32> = HashMap::with_capacity(network.nodes.len());
        for (i, node) in network.nodes.iter().enumerate() {
            if index.insert(node.id.as_str(), i as u32).is_some() {
                return Err(error(format!("node {}", node.id), "more than one node has this name"));
            }
        }

        // Sockets per node: declared ones plus those only named by link endpoints.
        let mut sockets: Vec<BTreeMap<u32, SocketRequest>> = network
            .nodes
            .iter()
            .map(|node| {
                let mut map = BTreeMap::new();
                for socket in &node.sockets {
                    let Ok(i) = u32::try_from(socket.index) else { continue };
                    let spec = socket
                        .port
                        .as_ref()
                        .or_else(|| node.nic.as_ref().and_then(|nic| nic.ports.get(i as usize)));
                    map.insert(i, SocketRequest { index: i, port: port_request(spec), link: None });
                }
                map
            })
            .collect();

        let mut links = Vec::with_capacity(network.links.len());
        let mut node_links = vec![Vec::new(); network.nodes.len()];
        let mut link_ids = HashMap::with_capacity(network.links.len());
        for (l, link) in network.links.iter().enumerate() {
            let element = format!("link {}", link.id);
            if link_ids.insert(link.id.as_str(), l).is_some() {
                return Err(error(element, "more than one link has this id"));
            }
            if link.endpoints.len() < 2 {
                return Err(error(
                    element,
                    format!("a link needs at least two endpoints, it has {}", link.endpoints.len()),
                ));
            }
            let mut endpoints = Vec::with_capacity(link.endpoints.len());
            for endpoint in &link.endpoints {
                let Some(socket) = &endpoint.socket else {
                    return Err(error(
                        element,
                        format!("endpoint {} is not attached to any node", endpoint.index),
                    ));
                };
                let Some(&node) = index.get(socket.element.as_str()) else {
                    return Err(error(
                        element,
                        format!("endpoint refers to node {:?}, which does not exist", socket.element),
                    ));
                };
                let entry = sockets[node as usize].entry(socket.index).or_insert_with(|| SocketRequest {
                    index: socket.index,
                    port: PortRequest::default(),
                    link: None,
                });
                if let Some(other) = entry.link {
                    let other = &network.links[other as usize].id;
                    return Err(error(
                        element,
                        format!(
                            "node {} socket {} is already used by link {other}",
                            socket.element, socket.index
                        ),
                    ));
                }
                entry.link = Some(l as u32);
                endpoints.push(EndpointRequest { node, socket: socket.index });
                if node_links[node as usize].last() != Some(&(l as u32)) {
                    node_links[node as usize].push(l as u32);
                }
            }
            let capacity = link.capacity.as_ref().map_or(0, |c| c.value);
            links.push(LinkRequest { id: link.id.clone(), capacity, endpoints });
        }

        let mut profiles: Vec<Profile> = Vec::new();
        let mut profile_index: HashMap<Profile, u32> = HashMap::new();
        let mut nodes = Vec::with_capacity(network.nodes.len());
        for (node, sockets) in network.nodes.iter().zip(sockets) {
            let sockets: Vec<SocketRequest> = sockets.into_values().collect();
            let profile = profile(node, &sockets)?;
            let next = profiles.len() as u32;
            let id = *profile_index.entry(profile.clone()).or_insert_with(|| {
                profiles.push(profile);
                next
            });
            nodes.push(NodeRequest { id: node.id.clone(), profile: id, sockets });
        }
        Ok(Request { nodes, links, profiles, node_links })
    }

    pub fn profile(&self, node: u32) -> &Profile {
        &self.profiles[self.nodes[node as usize].profile as usize]
    }
}

fn port_request(spec: Option<&xir::PortSpec>) -> PortRequest {
    let Some(spec) = spec else { return PortRequest::default() };
    PortRequest {
        capacity: spec.capacity.as_ref().map(|c| Bound { op: Op::from_xir(c.op), value: c.value }),
        model: spec.model.as_ref().map(|m| Bound { op: Op::from_xir(m.op), value: m.value }),
    }
}

fn string_bound(c: Option<&xir::StringConstraint>) -> Option<Bound<String>> {
    c.map(|c| Bound { op: Op::from_xir(c.op), value: c.value.clone() })
}

/// Reads a boolean constraint as the value it asks for (`!= true` asks for false).
fn wanted(c: Option<&xir::BoolConstraint>) -> Option<bool> {
    c.map(|c| if Op::from_xir(c.op) == Op::Ne { !c.value } else { c.value })
}

pub(crate) fn isa_name(isa: i32) -> String {
    xir::Isa::try_from(isa)
        .map(|i| i.as_str_name().to_ascii_lowercase())
        .unwrap_or_else(|_| format!("isa{isa}"))
}

fn profile(node: &xir::Node, sockets: &[SocketRequest]) -> Result<Profile, RequestError> {
    let element = || format!("node {}", node.id);
    let kind = match (wanted(node.metal.as_ref()), wanted(node.virt.as_ref())) {
        (Some(true), Some(true)) | (Some(false), Some(false)) => {
            return Err(error(element(), "cannot be both bare metal and a virtual machine (or neither)"));
        }
        (Some(true), _) | (_, Some(false)) => KindRequest::BareMetal,
        (Some(false), _) | (_, Some(true)) => KindRequest::VirtualMachine,
        (None, None) => KindRequest::Either,
    };

    let proc = node.proc.as_ref();
    let cores = proc
        .and_then(|p| p.cores.as_ref())
        .map(|c| Bound { op: Op::from_xir(c.op), value: u64::from(c.value) });
    let memory = node
        .memory
        .as_ref()
        .and_then(|m| m.capacity.as_ref())
        .map(|c| Bound { op: Op::from_xir(c.op), value: c.value });

    // Disks and the root filesystem add up; the first constraint's operator stands for all.
    let mut disk: Option<Bound<u64>> = None;
    for spec in node.disks.iter().chain(node.rootfs.as_ref()) {
        if let Some(c) = &spec.capacity {
            match &mut disk {
                Some(d) => d.value = d.value.saturating_add(c.value),
                None => disk = Some(Bound { op: Op::from_xir(c.op), value: c.value }),
            }
        }
    }

    let architecture = node
        .architecture
        .as_ref()
        .or_else(|| proc.and_then(|p| p.isa.as_ref()))
        .map(|c| Bound { op: Op::from_xir(c.op), value: isa_name(c.value) });

    let mut ports: Vec<PortRequest> =
        sockets.iter().filter(|s| !s.port.is_empty()).map(|s| s.port.clone()).collect();
    ports.sort();
    let nics = if kind == KindRequest::VirtualMachine { 0 } else { sockets.len() as u32 };

    Ok(Profile {
        kind,
        cores,
        memory,
        disk,
        image: string_bound(node.image.as_ref()),
        platform: string_bound(node.platform.as_ref()),
        architecture,
        host: string_bound(node.host.as_ref()),
        facility: string_bound(node.facility.as_ref()),
        nics,
        ports,
    })
}
