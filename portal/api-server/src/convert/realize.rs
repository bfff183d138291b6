//! Realizations, facilities and pools on the wire.

use std::collections::HashMap;

use trellis_api::portal::v1 as pb;
use trellis_api::xir;
use trellis_embed::NodeKind;
use trellis_realize::{FacilityRecord, Pool, RealizationRecord, RealizationStatus};

use super::timestamp;

/// The full realization: every node on its host, every link with its endpoints (host NIC
/// ports, VLAN sub-interfaces) and waypoints (switches). `network` fills in each node's and
/// link's model when the caller has it.
pub fn realization_to(r: &RealizationRecord, network: Option<&xir::Network>) -> pb::Realization {
    let model_nodes: HashMap<&str, &xir::Node> =
        network.map(|n| n.nodes.iter().map(|x| (x.id.as_str(), x)).collect()).unwrap_or_default();
    let model_links: HashMap<&str, &xir::Link> =
        network.map(|n| n.links.iter().map(|x| (x.id.as_str(), x)).collect()).unwrap_or_default();

    let mut nodes = HashMap::new();
    for (i, placement) in r.embedding.nodes.iter().enumerate() {
        let (facility, host) = r.node_hosts.get(i).cloned().unwrap_or_default();
        let node = model_nodes
            .get(placement.node.as_str())
            .map(|n| (*n).clone())
            .unwrap_or_else(|| xir::Node { id: placement.node.clone(), ..Default::default() });
        let kind = match placement.kind {
            NodeKind::BareMetal => pb::node_realization::Kind::BareMetal,
            NodeKind::VirtualMachine => pb::node_realization::Kind::VirtualMachine,
        };
        let vm_alloc = (placement.kind == NodeKind::VirtualMachine).then(|| xir::ResourceAllocation {
            resource: host.clone(),
            facility: facility.clone(),
            mzid: r.mzid(),
            node: placement.node.clone(),
            r#virtual: true,
            ..Default::default()
        });
        nodes.insert(
            placement.node.clone(),
            pb::NodeRealization {
                node: Some(node),
                resource: Some(xir::Resource { id: host, facility: facility.clone(), ..Default::default() }),
                vm_alloc,
                facility,
                kind: kind as i32,
                infranet_addr: r.infranet_addrs.get(i).cloned().unwrap_or_default(),
            },
        );
    }

    let mut links = HashMap::new();
    for (i, placement) in r.embedding.links.iter().enumerate() {
        let ports = r.link_ports.get(i).cloned().unwrap_or_default();
        let vid = placement.vlan.unwrap_or(0);
        let endpoints = placement
            .endpoints
            .iter()
            .enumerate()
            .map(|(j, e)| {
                let host = r
                    .embedding
                    .nodes
                    .iter()
                    .position(|n| n.node == e.node)
                    .and_then(|k| r.node_hosts.get(k))
                    .map(|(_, h)| h.clone())
                    .unwrap_or_default();
                let port = ports.get(j).cloned().flatten();
                let interface = port.map(|port| {
                    pb::endpoint::Interface::Vlan(pb::VlanInterface {
                        name: format!("{port}.{vid}"),
                        vid,
                        parent: Some(pb::PhysicalInterface { name: port, ..Default::default() }),
                        addrs: vec![],
                    })
                });
                pb::Endpoint {
                    facility: placement.facility.clone(),
                    host,
                    node: e.node.clone(),
                    interface,
                    r#virtual: interface_is_none_or_vm(r, &e.node),
                    ..Default::default()
                }
            })
            .collect();
        let waypoints = r
            .link_switches
            .get(i)
            .into_iter()
            .flatten()
            .map(|switch| pb::Waypoint {
                facility: placement.facility.clone(),
                host: switch.clone(),
                interface: Some(pb::waypoint::Interface::Access(pb::VlanAccessPort { port: None, vid })),
                ..Default::default()
            })
            .collect();
        let link = model_links
            .get(placement.link.as_str())
            .map(|l| (*l).clone())
            .unwrap_or_else(|| xir::Link { id: placement.link.clone(), ..Default::default() });
        let segment = pb::LinkSegment { endpoints, waypoints, vid, vni: if vid > 4094 { vid } else { 0 } };
        links.insert(
            placement.link.clone(),
            pb::LinkRealization { link: Some(link), segments: HashMap::from([(0u64, segment)]) },
        );
    }

    pb::Realization {
        complete: r.status == RealizationStatus::Succeeded,
        id: r.name.clone(),
        eid: r.experiment.clone(),
        pid: r.project.clone(),
        xhash: r.revision.clone(),
        nodes,
        links,
        creator: r.creator.clone(),
        ver: r.ver,
        created: timestamp(r.created),
        expires: r.expires.and_then(timestamp),
        embed_version: "trellis-embed/1".to_owned(),
        ..Default::default()
    }
}

fn interface_is_none_or_vm(r: &RealizationRecord, node: &str) -> bool {
    r.embedding.nodes.iter().any(|n| n.node == node && n.kind == NodeKind::VirtualMachine)
}

pub fn realization_summary(r: &RealizationRecord) -> pb::RealizationSummary {
    pb::RealizationSummary {
        complete: r.status == RealizationStatus::Succeeded,
        id: r.name.clone(),
        eid: r.experiment.clone(),
        pid: r.project.clone(),
        xhash: r.revision.clone(),
        creator: r.creator.clone(),
        ver: r.ver,
        created: timestamp(r.created),
        expires: r.expires.and_then(timestamp),
        num_nodes: r.embedding.nodes.len() as i32,
        num_links: r.embedding.links.len() as i32,
    }
}

fn task(id: String, name: String, status: pb::task_status::StatusType, at: i64) -> pb::TaskStatus {
    pb::TaskStatus {
        id,
        name,
        message: None,
        status_value: status as i32,
        first_updated: timestamp(at),
        last_updated: timestamp(at),
    }
}

/// The status tree Merge's clients show: the realization, then one task per node and link.
/// A realization exists only once every resource is reserved, so its tasks have succeeded;
/// one being relinquished shows as being processed.
pub fn realization_status(r: &RealizationRecord) -> pb::TaskTree {
    use pb::task_status::StatusType;
    let status = match r.status {
        RealizationStatus::Succeeded => StatusType::Success,
        RealizationStatus::Relinquishing => StatusType::Processing,
    };
    let leaf = |id: String, name: String| pb::TaskTree {
        highest_status: status as i32,
        last_updated: timestamp(r.created),
        num_child_tasks: 0,
        task: Some(task(id, name, status, r.created)),
        subtasks: vec![],
    };
    let mut subtasks = Vec::new();
    for (i, n) in r.embedding.nodes.iter().enumerate() {
        let host = r.node_hosts.get(i).map(|(f, h)| format!("{h}@{f}")).unwrap_or_default();
        subtasks.push(leaf(format!("{}.{}", n.node, r.mzid()), format!("node {} on {host}", n.node)));
    }
    for l in &r.embedding.links {
        let how = match l.vlan {
            Some(v) => format!("vlan {v}"),
            None => "host-local".to_owned(),
        };
        subtasks.push(leaf(format!("{}.{}", l.link, r.mzid()), format!("link {} ({how})", l.link)));
    }
    pb::TaskTree {
        highest_status: status as i32,
        last_updated: timestamp(r.created),
        num_child_tasks: subtasks.len() as i64,
        task: Some(task(r.mzid(), format!("realization {}", r.mzid()), status, r.created)),
        subtasks,
    }
}

pub fn facility_to(f: &FacilityRecord) -> pb::Facility {
    pb::Facility {
        name: f.name.clone(),
        address: f.address.clone(),
        description: f.description.clone(),
        access_mode: pb::AccessMode::Public as i32,
        members: HashMap::new(),
        certificate: f.certificate.clone(),
        cacertificate: f.ca_certificate.clone(),
        ver: f.ver,
        properties: None,
    }
}

pub fn pool_to(p: &Pool) -> pb::Pool {
    pb::Pool {
        name: p.name.clone(),
        description: p.description.clone(),
        projects: p.projects.clone(),
        facilities: p
            .facilities
            .iter()
            .map(|(f, r)| (f.clone(), pb::PoolResources { resources: r.resources.clone() }))
            .collect(),
        creator: p.creator.clone(),
        ver: p.ver,
        organizations: p.organizations.clone(),
        priority: p.priority,
    }
}
