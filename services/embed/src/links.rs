//! Link placement: a host port per endpoint, a path (or, for a LAN, a tree) through the
//! switches with room on every trunk, and a VLAN id unique in the facility.

use std::collections::{HashMap, HashSet};

use trellis_api::xir;

use crate::constraint::rate;
use crate::request::{PortRequest, Request};
use crate::state::{Committed, remaining};
use crate::testbed::{SwitchId, Testbed, TrunkId};
use crate::{Diagnostic, HostId, LinkEndpoint, LinkPlacement, NodeKind};

/// The first VLAN id handed out (1 is the default VLAN on most switches).
const FIRST_VLAN: u32 = 2;
const LAST_VLAN: u32 = 4094;
/// Where VNIs start once VLAN ids run out.
const FIRST_VNI: u32 = 4097;
const LAST_VNI: u32 = (1 << 24) - 1;

/// VLAN ids / VNIs of one facility.
struct VlanPool {
    used: HashSet<u32>,
    next: u32,
}

impl VlanPool {
    fn take(&mut self) -> Option<u32> {
        while self.next <= LAST_VNI {
            let vid = self.next;
            self.next = if vid == LAST_VLAN { FIRST_VNI } else { vid + 1 };
            if self.used.insert(vid) {
                return Some(vid);
            }
        }
        None
    }
}

/// Network capacity as links are placed.
pub struct Network<'a> {
    testbed: &'a Testbed,
    ports: Vec<u64>,
    trunks: Vec<u64>,
    vlans: HashMap<String, VlanPool>,
    committed_vlans: HashMap<String, HashSet<u32>>,
}

impl<'a> Network<'a> {
    pub fn new(testbed: &'a Testbed, committed: Committed) -> Network<'a> {
        Network {
            testbed,
            ports: committed.ports,
            trunks: committed.trunks,
            vlans: HashMap::new(),
            committed_vlans: committed.vlans,
        }
    }

    fn vlan(&mut self, facility: &str) -> Option<u32> {
        if !self.vlans.contains_key(facility) {
            let used = self.committed_vlans.remove(facility).unwrap_or_default();
            self.vlans.insert(facility.to_string(), VlanPool { used, next: FIRST_VLAN });
        }
        self.vlans.get_mut(facility)?.take()
    }

    fn trunk_room(&self, t: TrunkId) -> u64 {
        remaining(self.testbed.trunk(t).capacity, self.trunks[t.0 as usize])
    }

    /// The path from any switch of `tree` to `target` with the fewest hops, and among those
    /// the most room on its tightest trunk, using only trunks with `capacity` free.
    fn route(&self, tree: &[SwitchId], target: SwitchId, capacity: u64) -> Option<Vec<TrunkId>> {
        let count = self.testbed.switches.len();
        let mut hops = vec![u32::MAX; count];
        let mut room = vec![0u64; count];
        let mut via: Vec<Option<TrunkId>> = vec![None; count];
        let mut frontier: Vec<SwitchId> = tree.to_vec();
        for s in tree {
            hops[s.0 as usize] = 0;
            room[s.0 as usize] = u64::MAX;
        }
        let mut depth = 0;
        while !frontier.is_empty() && hops[target.0 as usize] == u32::MAX {
            depth += 1;
            let mut next = Vec::new();
            for &s in &frontier {
                for &t in &self.testbed.switch_trunks[s.0 as usize] {
                    let free = self.trunk_room(t);
                    if free < capacity {
                        continue;
                    }
                    let w = self.testbed.trunk(t).other(s);
                    let bottleneck = room[s.0 as usize].min(free);
                    let wi = w.0 as usize;
                    if hops[wi] == u32::MAX {
                        hops[wi] = depth;
                        room[wi] = bottleneck;
                        via[wi] = Some(t);
                        next.push(w);
                    } else if hops[wi] == depth && bottleneck > room[wi] {
                        room[wi] = bottleneck;
                        via[wi] = Some(t);
                    }
                }
            }
            frontier = next;
        }
        if hops[target.0 as usize] == u32::MAX {
            return None;
        }
        let mut path = Vec::new();
        let mut at = target;
        while hops[at.0 as usize] > 0 {
            let t = via[at.0 as usize]?;
            path.push(t);
            at = self.testbed.trunk(t).other(at);
        }
        Some(path)
    }
}

fn port_admits(request: &PortRequest, kind: NodeKind, port: &crate::HostPort) -> bool {
    let capacity_ok = request.capacity.as_ref().is_none_or(|c| c.admits(&port.capacity));
    let model_ok = request.model.as_ref().is_none_or(|m| {
        (kind == NodeKind::VirtualMachine && m.value >= xir::NicModel::Virtio as i32) || m.admits(&port.model)
    });
    capacity_ok && model_ok
}

/// Places every link; `host` and `kind` give each node's host and how it is placed.
pub fn place_links(
    testbed: &Testbed,
    request: &Request,
    host: &[u32],
    kind: &[NodeKind],
    net: &mut Network,
) -> Result<Vec<LinkPlacement>, Vec<Diagnostic>> {
    let mut order: Vec<usize> = (0..request.links.len()).collect();
    order.sort_by_key(|&l| (std::cmp::Reverse(request.links[l].capacity), l));
    let mut placed: Vec<Option<LinkPlacement>> = vec![None; request.links.len()];
    let mut failures = Vec::new();
    // Ports each node already uses, so a bare-metal node's interfaces spread over its ports.
    let mut node_ports: HashMap<u32, Vec<u32>> = HashMap::new();

    for l in order {
        let link = &request.links[l];
        let first_host = HostId(host[link.endpoints[0].node as usize]);
        let facility = testbed.host(first_host).facility.clone();
        let local = link.endpoints.iter().all(|e| host[e.node as usize] == first_host.0);
        let mut endpoints = Vec::with_capacity(link.endpoints.len());
        if local {
            for e in &link.endpoints {
                let id = &request.nodes[e.node as usize].id;
                endpoints.push(LinkEndpoint {
                    node: id.clone(),
                    socket: e.socket,
                    host: first_host,
                    port: None,
                });
            }
            placed[l] = Some(LinkPlacement {
                link: link.id.clone(),
                capacity: link.capacity,
                vlan: None,
                facility,
                endpoints,
                trunks: Vec::new(),
                switches: Vec::new(),
            });
            continue;
        }

        // One port per host: endpoints of the link on the same host share it.
        let mut chosen: Vec<(u32, u32)> = Vec::new();
        let mut failed = false;
        for e in &link.endpoints {
            let h = host[e.node as usize];
            let node = &request.nodes[e.node as usize];
            if let Some(&(_, p)) = chosen.iter().find(|(ch, _)| *ch == h) {
                endpoints.push(LinkEndpoint {
                    node: node.id.clone(),
                    socket: e.socket,
                    host: HostId(h),
                    port: Some(p),
                });
                continue;
            }
            let spec = node.sockets.iter().find(|s| s.index == e.socket).map(|s| &s.port);
            let default_spec = PortRequest::default();
            let spec = spec.unwrap_or(&default_spec);
            let node_kind = kind[e.node as usize];
            let used_by_node = node_ports.get(&e.node);
            let mut best: Option<((bool, u64), u32)> = None;
            let mut suitable = 0;
            let mut most_room = 0;
            for (p, port) in testbed.host(HostId(h)).ports.iter().enumerate() {
                if port.switch.is_none() || !port_admits(spec, node_kind, port) {
                    continue;
                }
                suitable += 1;
                let room = remaining(port.capacity, net.ports[testbed.flat_port(HostId(h), p as u32)]);
                most_room = most_room.max(room);
                if room < link.capacity {
                    continue;
                }
                let fresh = used_by_node.is_none_or(|ports| !ports.contains(&(p as u32)));
                let key = (fresh, room);
                if best.as_ref().is_none_or(|(k, _)| key > *k) {
                    best = Some((key, p as u32));
                }
            }
            let Some((_, p)) = best else {
                let host_name = &testbed.host(HostId(h)).name;
                let message = if suitable == 0 {
                    format!(
                        "link {}: host {host_name} (node {}) has no experiment port cabled to a switch that \
                         satisfies the interface's constraints",
                        link.id, node.id
                    )
                } else {
                    format!(
                        "link {}: no experiment port on host {host_name} (node {}) has {} free; the most any of \
                         its {suitable} ports has is {}",
                        link.id,
                        node.id,
                        rate(link.capacity),
                        rate(most_room)
                    )
                };
                failures.push(Diagnostic {
                    element: Some(format!("link {}", link.id)),
                    constraint: Some("capacity".into()),
                    candidates_left: Some(suitable),
                    message,
                });
                failed = true;
                break;
            };
            chosen.push((h, p));
            endpoints.push(LinkEndpoint {
                node: node.id.clone(),
                socket: e.socket,
                host: HostId(h),
                port: Some(p),
            });
        }
        if failed {
            continue;
        }

        // A tree through the switches joining every endpoint's switch.
        let mut switches: Vec<SwitchId> = Vec::new();
        for &(h, p) in &chosen {
            if let Some((s, _)) = &testbed.host(HostId(h)).ports[p as usize].switch
                && !switches.contains(s)
            {
                switches.push(*s);
            }
        }
        let mut tree: Vec<SwitchId> = switches.first().copied().into_iter().collect();
        let mut trunks: Vec<TrunkId> = Vec::new();
        for &target in switches.iter().skip(1) {
            if tree.contains(&target) {
                continue;
            }
            let Some(path) = net.route(&tree, target, link.capacity) else {
                let from = &testbed.switch(tree[0]).name;
                let to = &testbed.switch(target).name;
                let with_room = testbed.switch_trunks[tree[0].0 as usize]
                    .iter()
                    .filter(|&&t| net.trunk_room(t) >= link.capacity)
                    .count();
                let total = testbed.switch_trunks[tree[0].0 as usize].len();
                failures.push(Diagnostic {
                    element: Some(format!("link {}", link.id)),
                    constraint: Some("capacity".into()),
                    candidates_left: Some(with_room),
                    message: format!(
                        "link {}: no path from switch {from} to switch {to} has {} free on every trunk \
                         ({with_room} of the {total} trunks at {from} have room)",
                        link.id,
                        rate(link.capacity)
                    ),
                });
                failed = true;
                break;
            };
            for &t in &path {
                trunks.push(t);
                let trunk = testbed.trunk(t);
                for s in [trunk.a, trunk.b] {
                    if !tree.contains(&s) {
                        tree.push(s);
                    }
                }
            }
        }
        if failed {
            continue;
        }
        let Some(vlan) = net.vlan(&facility) else {
            failures.push(Diagnostic {
                element: Some(format!("link {}", link.id)),
                constraint: Some("vlan".into()),
                candidates_left: Some(0),
                message: format!("link {}: facility {facility} has no free VLAN id or VNI left", link.id),
            });
            continue;
        };

        for &(h, p) in &chosen {
            net.ports[testbed.flat_port(HostId(h), p)] += link.capacity;
        }
        for e in &link.endpoints {
            let h = host[e.node as usize];
            if let Some(&(_, p)) = chosen.iter().find(|(ch, _)| *ch == h) {
                node_ports.entry(e.node).or_default().push(p);
            }
        }
        for &t in &trunks {
            net.trunks[t.0 as usize] += link.capacity;
        }
        placed[l] = Some(LinkPlacement {
            link: link.id.clone(),
            capacity: link.capacity,
            vlan: Some(vlan),
            facility,
            endpoints,
            trunks,
            switches: tree,
        });
    }
    if !failures.is_empty() {
        return Err(failures);
    }
    Ok(placed.into_iter().flatten().collect())
}
