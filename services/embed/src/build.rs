//! Reads XIR facility models into a [`Testbed`].
//!
//! Cable connectors name ports by `Ref { element: <resource id>, index, subref }`: with a
//! `subref`, `index` is the NIC and `subref.index` the port on it; without one, `index` counts
//! ports across all of the resource's NICs in order. `Ref.facility`, when set, names the
//! facility the resource is in.

use std::collections::{HashMap, HashSet};

use trellis_api::xir;

use crate::request::isa_name;
use crate::testbed::{Host, HostPort, Switch, SwitchId, Testbed, TestbedError, Trunk};

#[derive(Debug, Clone, Copy)]
enum Owner {
    /// A host port; `port` indexes `Host::ports` when it is an experiment port.
    Host {
        host: u32,
        port: Option<u32>,
    },
    Switch(u32),
    Other,
}

#[derive(Debug)]
struct PortEntry<'a> {
    owner: Owner,
    capacity: u64,
    name: &'a str,
}

#[derive(Debug, Default)]
struct ResourceEntry {
    /// Port entries per NIC.
    nics: Vec<Vec<usize>>,
    /// Port entries in the order of all NICs' ports.
    flat: Vec<usize>,
}

fn invalid(facility: &str, message: String) -> TestbedError {
    TestbedError::Invalid { facility: facility.to_string(), message }
}

fn has_role(resource: &xir::Resource, roles: &[xir::Role]) -> bool {
    resource.roles.iter().any(|r| roles.iter().any(|x| *x as i32 == *r))
}

fn has_alloc(resource: &xir::Resource, mode: xir::AllocMode) -> bool {
    resource.alloc.contains(&(mode as i32))
}

/// Experiment ports carry the `XpLink` role; a port with no role at all is taken to be one,
/// since older models leave roles out. Infranet, management and other ports never are.
fn is_experiment_port(port: &xir::Port) -> bool {
    let xp = xir::LinkRole::XpLink as i32;
    if !port.roles.is_empty() {
        return port.roles.contains(&xp);
    }
    port.role == xp || port.role == xir::LinkRole::Unspecified as i32
}

fn host_of(resource: &xir::Resource, facility: &xir::Facility) -> Host {
    let cores: u32 = resource.procs.iter().map(|p| p.cores.saturating_sub(p.reserved_cores)).sum();
    let memory: u64 = resource.memory.iter().map(|d| d.capacity.saturating_sub(d.reserved_capacity)).sum();
    let disk: u64 = resource.disks.iter().map(|d| d.capacity).sum();
    let tbnode = has_role(resource, &[xir::Role::TbNode]);
    let hypervisor = has_role(resource, &[xir::Role::Hypervisor]);
    let metal = has_alloc(resource, xir::AllocMode::Physical) || (resource.alloc.is_empty() && tbnode);
    let virt = has_alloc(resource, xir::AllocMode::Virtual) || hypervisor;
    let isa = resource.procs.first().map_or(resource.architecture, |p| p.isa);
    let architecture = isa_name(isa);
    let platform = resource
        .product_info
        .as_ref()
        .map(|p| p.model.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| architecture.clone());
    let mut images = Vec::new();
    if let Some(props) = &facility.properties
        && !props.custom_image_support
    {
        images = props.standard_images.clone();
    }
    if let Some(default) = resource.os.as_ref().map(|o| &o.default_image)
        && !images.is_empty()
        && !default.is_empty()
        && !images.contains(default)
    {
        images.push(default.clone());
    }
    Host {
        facility: facility.id.clone(),
        name: resource.id.clone(),
        cores,
        memory,
        disk,
        metal,
        virt,
        platform,
        images,
        ports: Vec::new(),
        leaf: None,
        active: true,
        architecture,
    }
}

pub(crate) fn build(facilities: &[xir::Facility]) -> Result<Testbed, TestbedError> {
    let mut hosts: Vec<Host> = Vec::new();
    let mut switches: Vec<Switch> = Vec::new();
    let mut trunks: Vec<Trunk> = Vec::new();
    let mut ports: Vec<PortEntry> = Vec::new();
    let mut resources: HashMap<&str, HashMap<&str, ResourceEntry>> = HashMap::new();

    let leaf_roles = [xir::Role::Leaf, xir::Role::XpSwitch, xir::Role::Stem, xir::Role::EmuSwitch];
    let spine_roles = [xir::Role::Spine, xir::Role::Fabric];

    for facility in facilities {
        let fid = facility.id.as_str();
        if resources.contains_key(fid) {
            return Err(invalid(fid, "the facility is listed twice".into()));
        }
        let table = resources.entry(fid).or_default();
        for resource in &facility.resources {
            if table.contains_key(resource.id.as_str()) {
                return Err(invalid(fid, format!("more than one resource has id {:?}", resource.id)));
            }
            let kind = if has_role(resource, &[xir::Role::TbNode, xir::Role::Hypervisor]) {
                hosts.push(host_of(resource, facility));
                Owner::Host { host: hosts.len() as u32 - 1, port: None }
            } else if has_role(resource, &leaf_roles) || has_role(resource, &spine_roles) {
                let spine = has_role(resource, &spine_roles) && !has_role(resource, &leaf_roles);
                switches.push(Switch { facility: fid.to_string(), name: resource.id.clone(), spine });
                Owner::Switch(switches.len() as u32 - 1)
            } else {
                Owner::Other
            };

            let mut entry = ResourceEntry::default();
            let mut names = HashSet::new();
            for (ni, nic) in resource.ni_cs.iter().enumerate() {
                let mut on_nic = Vec::with_capacity(nic.ports.len());
                for (pi, port) in nic.ports.iter().enumerate() {
                    let name: &str = &port.name;
                    let owner = match kind {
                        Owner::Host { host, .. } if is_experiment_port(port) => {
                            let host_entry = &mut hosts[host as usize];
                            let port_name =
                                if name.is_empty() { format!("nic{ni}p{pi}") } else { name.to_string() };
                            if !names.insert(port_name.clone()) {
                                return Err(invalid(
                                    fid,
                                    format!(
                                        "resource {}: more than one port is named {port_name:?}",
                                        resource.id
                                    ),
                                ));
                            }
                            host_entry.ports.push(HostPort {
                                name: port_name,
                                capacity: port.capacity,
                                model: nic.model,
                                mac: port.mac.clone(),
                                switch: None,
                            });
                            Owner::Host { host, port: Some(host_entry.ports.len() as u32 - 1) }
                        }
                        other => other,
                    };
                    ports.push(PortEntry { owner, capacity: port.capacity, name });
                    on_nic.push(ports.len() - 1);
                    entry.flat.push(ports.len() - 1);
                }
                entry.nics.push(on_nic);
            }
            table.insert(resource.id.as_str(), entry);
        }
    }

    // Cables: host ports to switches, and switch-to-switch trunks.
    let mut attachments: Vec<Vec<u32>> = vec![Vec::new(); hosts.len()];
    for facility in facilities {
        let fid = facility.id.as_str();
        for cable in &facility.cables {
            match cable.ends.len() {
                0 | 1 => continue,
                2 => {}
                n => return Err(invalid(fid, format!("cable {}: has {n} ends; a cable has two", cable.id))),
            }
            let mut sides: [Vec<(usize, u64)>; 2] = [Vec::new(), Vec::new()];
            for (e, end) in cable.ends.iter().enumerate() {
                for (c, connector) in end.connectors.iter().enumerate() {
                    let Some(port_ref) = &connector.port else { continue };
                    let entry = resolve(&resources, fid, port_ref).map_err(|message| {
                        invalid(fid, format!("cable {}: end {e} connector {c} {message}", cable.id))
                    })?;
                    sides[e].push((entry, connector.capacity));
                }
            }
            let pairs = sides[0].len() * sides[1].len();
            let mut lane = 0;
            for &(a, cap_a) in &sides[0] {
                for &(b, cap_b) in &sides[1] {
                    let capacity = [ports[a].capacity, ports[b].capacity, cap_a, cap_b]
                        .into_iter()
                        .filter(|c| *c > 0)
                        .min()
                        .unwrap_or(0);
                    match (ports[a].owner, ports[b].owner) {
                        (Owner::Host { host, port: Some(p) }, Owner::Switch(s))
                        | (Owner::Switch(s), Owner::Host { host, port: Some(p) }) => {
                            let switch_port =
                                if ports[a].owner_is_switch() { ports[a].name } else { ports[b].name };
                            let host_entry = &mut hosts[host as usize];
                            let host_port = &mut host_entry.ports[p as usize];
                            if let Some((other, _)) = &host_port.switch
                                && other.0 != s
                            {
                                return Err(invalid(
                                    fid,
                                    format!(
                                        "cable {}: port {} of {} is already cabled to switch {}",
                                        cable.id,
                                        host_port.name,
                                        host_entry.name,
                                        switches[other.0 as usize].name
                                    ),
                                ));
                            }
                            host_port.switch = Some((SwitchId(s), switch_port.to_string()));
                            attachments[host as usize].push(s);
                        }
                        (Owner::Switch(x), Owner::Switch(y)) => {
                            let name =
                                if pairs == 1 { cable.id.clone() } else { format!("{}#{lane}", cable.id) };
                            lane += 1;
                            trunks.push(Trunk {
                                facility: fid.to_string(),
                                name,
                                a: SwitchId(x),
                                b: SwitchId(y),
                                capacity,
                            });
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    for (host, attached) in hosts.iter_mut().zip(attachments) {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for s in attached {
            *counts.entry(s).or_default() += 1;
        }
        host.leaf =
            counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map(|(s, _)| SwitchId(s));
    }
    Ok(Testbed::assemble(hosts, switches, trunks))
}

impl PortEntry<'_> {
    fn owner_is_switch(&self) -> bool {
        matches!(self.owner, Owner::Switch(_))
    }
}

fn resolve(
    resources: &HashMap<&str, HashMap<&str, ResourceEntry>>,
    facility: &str,
    port: &xir::Ref,
) -> Result<usize, String> {
    let facility = if port.facility.is_empty() { facility } else { port.facility.as_str() };
    let Some(resource) = resources.get(facility).and_then(|t| t.get(port.element.as_str())) else {
        return Err(format!("refers to resource {:?}, which does not exist", port.element));
    };
    match &port.subref {
        Some(sub) => resource
            .nics
            .get(port.index as usize)
            .and_then(|nic| nic.get(sub.index as usize))
            .copied()
            .ok_or_else(|| {
                format!(
                    "refers to NIC {} port {} of {}, which has no such port",
                    port.index, sub.index, port.element
                )
            }),
        None => resource.flat.get(port.index as usize).copied().ok_or_else(|| {
            format!(
                "refers to port {} of {}, which has only {} ports",
                port.index,
                port.element,
                resource.flat.len()
            )
        }),
    }
}
