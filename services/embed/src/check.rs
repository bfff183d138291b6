//! Independent checks of an embedding against the testbed, the request and what was already
//! taken: tests and the benchmark use them to count constraint violations. Each finding is a
//! sentence naming the element concerned; an empty list means the embedding is sound.

use std::collections::{HashMap, HashSet};

use trellis_api::xir;

use crate::request::KindRequest;
use crate::testbed::{HostId, SwitchId};
use crate::{Embedding, NodeKind, Occupancy, Options, Request, ResourceKey, Testbed, Usage, claims};

fn within(capacity: u64, used: u64) -> bool {
    capacity == 0 || used <= capacity
}

/// Everything wrong with `embedding` of `request`, made when `before` was already taken.
pub fn check_embedding(
    testbed: &Testbed,
    before: &Occupancy,
    request: &Request,
    embedding: &Embedding,
    options: &Options,
) -> Vec<String> {
    let mut v = Vec::new();
    check_nodes(testbed, before, request, embedding, options, &mut v);
    check_links(testbed, before, request, embedding, &mut v);

    let expected = claims(testbed, &embedding.nodes, &embedding.links);
    if expected != embedding.claims {
        v.push("claims do not add up to the node and link placements".into());
    }
    let mut keys = HashSet::new();
    let mut after = before.clone();
    for claim in &embedding.claims {
        if !keys.insert(&claim.key) {
            v.push(format!("{:?} is claimed twice", claim.key));
        }
        after.add(claim);
    }
    for claim in &embedding.claims {
        check_resource(testbed, &claim.key, &after.get(&claim.key), &mut v);
    }
    v
}

fn check_nodes(
    testbed: &Testbed,
    before: &Occupancy,
    request: &Request,
    embedding: &Embedding,
    options: &Options,
    v: &mut Vec<String>,
) {
    if embedding.nodes.len() != request.nodes.len() {
        v.push(format!("{} nodes placed for {} requested", embedding.nodes.len(), request.nodes.len()));
        return;
    }
    let mut on_host: HashMap<HostId, Vec<NodeKind>> = HashMap::new();
    for (i, (placement, node)) in embedding.nodes.iter().zip(&request.nodes).enumerate() {
        let element = format!("node {}", node.id);
        if placement.node != node.id {
            v.push(format!("{element}: placement {i} is for {}", placement.node));
            continue;
        }
        let Some(host) = testbed.hosts.get(placement.host.0 as usize) else {
            v.push(format!("{element}: placed on a host that does not exist"));
            continue;
        };
        on_host.entry(placement.host).or_default().push(placement.kind);
        let profile = request.profile(i as u32);
        let eligible =
            options.eligible.as_ref().is_none_or(|e| e.get(placement.host.0 as usize) == Some(&true));
        if !host.active || !eligible {
            v.push(format!("{element}: host {} is inactive or outside the pool", host.name));
        }
        let kind_ok = match (profile.kind, placement.kind) {
            (KindRequest::BareMetal, NodeKind::VirtualMachine)
            | (KindRequest::VirtualMachine, NodeKind::BareMetal) => false,
            (_, NodeKind::BareMetal) => host.metal,
            (_, NodeKind::VirtualMachine) => host.virt,
        };
        if !kind_ok {
            v.push(format!(
                "{element}: placed as {:?} on {}, which does not allow it",
                placement.kind, host.name
            ));
        }
        let names = [
            ("host", &profile.host, host.name.as_str()),
            ("facility", &profile.facility, host.facility.as_str()),
            ("architecture", &profile.architecture, host.architecture.as_str()),
        ];
        for (what, bound, actual) in names {
            if bound.as_ref().is_some_and(|b| !b.admits_name(actual)) {
                v.push(format!("{element}: {what} constraint not met by {}", host.name));
            }
        }
        if let Some(p) = &profile.platform
            && p.wants_name() != host.has_platform(&p.value)
        {
            v.push(format!("{element}: platform constraint not met by {}", host.name));
        }
        if let Some(image) = &profile.image
            && image.wants_name()
            && !host.can_boot(&image.value)
        {
            v.push(format!("{element}: host {} cannot boot {}", host.name, image.value));
        }
        let got = [u64::from(placement.cores), placement.memory, placement.disk];
        match placement.kind {
            NodeKind::BareMetal => {
                if got != [u64::from(host.cores), host.memory, host.disk] {
                    v.push(format!("{element}: bare metal but does not hold all of {}", host.name));
                }
                let bounds = [&profile.cores, &profile.memory, &profile.disk];
                for (bound, actual) in bounds.into_iter().zip(got) {
                    if bound.as_ref().is_some_and(|b| !b.admits(&actual)) {
                        v.push(format!(
                            "{element}: host {} does not meet its resource constraints",
                            host.name
                        ));
                    }
                }
                if host.switched_ports() < profile.nics as usize {
                    v.push(format!("{element}: host {} has too few experiment ports", host.name));
                }
            }
            NodeKind::VirtualMachine => {
                let (c, m, d) = profile.vm_reservation();
                if got != [c, m, d] {
                    v.push(format!("{element}: reserves {got:?}, its constraints ask for {:?}", [c, m, d]));
                }
            }
        }
    }
    for (host_id, kinds) in on_host {
        let host = testbed.host(host_id);
        let committed =
            before.get(&ResourceKey::Host { facility: host.facility.clone(), host: host.name.clone() });
        let metal = kinds.iter().filter(|k| **k == NodeKind::BareMetal).count();
        if metal > 0 && (kinds.len() > 1 || committed != Usage::default()) {
            v.push(format!("host {}: a bare-metal node shares the host", host.name));
        }
        if metal == 0 && committed.exclusive {
            v.push(format!("host {}: VMs placed on a host held as bare metal", host.name));
        }
    }
}

fn check_links(
    testbed: &Testbed,
    before: &Occupancy,
    request: &Request,
    embedding: &Embedding,
    v: &mut Vec<String>,
) {
    if embedding.links.len() != request.links.len() {
        v.push(format!("{} links placed for {} requested", embedding.links.len(), request.links.len()));
        return;
    }
    let mut vlans: HashSet<(&str, u32)> = HashSet::new();
    let mut cross = 0;
    for (placement, link) in embedding.links.iter().zip(&request.links) {
        let element = format!("link {}", link.id);
        if placement.link != link.id || placement.endpoints.len() != link.endpoints.len() {
            v.push(format!("{element}: placement does not match the request"));
            continue;
        }
        let mut switches: Vec<SwitchId> = Vec::new();
        for (e, want) in placement.endpoints.iter().zip(&link.endpoints) {
            let node = &request.nodes[want.node as usize];
            let node_host = embedding.nodes.get(want.node as usize).map(|p| p.host);
            if e.node != node.id || e.socket != want.socket || Some(e.host) != node_host {
                v.push(format!("{element}: endpoint {}.{} is not on its node's host", node.id, want.socket));
                continue;
            }
            let Some(p) = e.port else { continue };
            let host = testbed.host(e.host);
            let Some(port) = host.ports.get(p as usize) else {
                v.push(format!("{element}: port {p} does not exist on {}", host.name));
                continue;
            };
            match &port.switch {
                Some((s, _)) => switches.push(*s),
                None => v.push(format!("{element}: port {} of {} reaches no switch", port.name, host.name)),
            }
            let kind = embedding.nodes[want.node as usize].kind;
            if let Some(spec) = node.sockets.iter().find(|s| s.index == want.socket).map(|s| &s.port) {
                if spec.capacity.as_ref().is_some_and(|c| !c.admits(&port.capacity)) {
                    v.push(format!(
                        "{element}: port {} of {} does not meet the capacity constraint",
                        port.name, host.name
                    ));
                }
                let virtual_model =
                    |m: i32| kind == NodeKind::VirtualMachine && m >= xir::NicModel::Virtio as i32;
                if spec.model.as_ref().is_some_and(|m| !virtual_model(m.value) && !m.admits(&port.model)) {
                    v.push(format!(
                        "{element}: port {} of {} is not the model asked for",
                        port.name, host.name
                    ));
                }
            }
        }
        let first = placement.endpoints[0].host;
        let local = placement.endpoints.iter().all(|e| e.host == first);
        if placement
            .endpoints
            .iter()
            .any(|e| testbed.host_rack[e.host.0 as usize] != testbed.host_rack[first.0 as usize])
        {
            cross += 1;
        }
        if local {
            if placement.vlan.is_some()
                || placement.endpoints.iter().any(|e| e.port.is_some())
                || !placement.trunks.is_empty()
            {
                v.push(format!("{element}: host-local but takes network resources"));
            }
            continue;
        }
        if placement.endpoints.iter().any(|e| e.port.is_none()) {
            v.push(format!("{element}: spans hosts but an endpoint has no port"));
        }
        match placement.vlan {
            None => v.push(format!("{element}: spans hosts but has no VLAN id")),
            Some(vid) => {
                if !((2..=4094).contains(&vid) || (4097..1 << 24).contains(&vid)) {
                    v.push(format!("{element}: VLAN id {vid} is out of range"));
                }
                let key = ResourceKey::Vlan { facility: placement.facility.clone(), vid };
                if !before.is_free(&key) || !vlans.insert((placement.facility.as_str(), vid)) {
                    v.push(format!("{element}: VLAN id {vid} is already in use in {}", placement.facility));
                }
            }
        }
        // The trunks must join every endpoint's switch.
        let mut parent: HashMap<SwitchId, SwitchId> = HashMap::new();
        fn root(parent: &mut HashMap<SwitchId, SwitchId>, s: SwitchId) -> SwitchId {
            let p = *parent.entry(s).or_insert(s);
            if p == s { s } else { root(parent, p) }
        }
        for &t in &placement.trunks {
            let trunk = testbed.trunk(t);
            let (a, b) = (root(&mut parent, trunk.a), root(&mut parent, trunk.b));
            parent.insert(a, b);
        }
        if let Some(&s0) = switches.first() {
            let r0 = root(&mut parent, s0);
            if switches.iter().any(|&s| root(&mut parent, s) != r0) {
                v.push(format!("{element}: its trunks do not join all of its switches"));
            }
        }
    }
    if cross != embedding.cross_rack_links {
        v.push(format!("{} links cross racks, the embedding says {}", cross, embedding.cross_rack_links));
    }
}

fn check_resource(testbed: &Testbed, key: &ResourceKey, usage: &Usage, v: &mut Vec<String>) {
    match key {
        ResourceKey::Host { facility, host } => {
            let Some(id) = testbed.host_by_name(facility, host) else {
                v.push(format!("host {host} in {facility} does not exist"));
                return;
            };
            let h = testbed.host(id);
            if usage.cores > h.cores || usage.memory > h.memory || usage.disk > h.disk {
                v.push(format!("host {host}: over capacity ({usage:?})"));
            }
            if usage.exclusive && usage.vms > 0 {
                v.push(format!("host {host}: bare metal and VMs at once"));
            }
        }
        ResourceKey::Port { facility, host, port } => {
            let found = testbed
                .host_by_name(facility, host)
                .and_then(|id| testbed.host(id).ports.iter().find(|p| &p.name == port));
            match found {
                None => v.push(format!("port {port} of {host} does not exist")),
                Some(p) if !within(p.capacity, usage.capacity) => {
                    v.push(format!("port {port} of {host}: {} b/s used of {}", usage.capacity, p.capacity))
                }
                Some(_) => {}
            }
        }
        ResourceKey::Trunk { facility, trunk } => match testbed.trunk_by_name(facility, trunk) {
            None => v.push(format!("trunk {trunk} does not exist")),
            Some(t) if !within(testbed.trunk(t).capacity, usage.capacity) => {
                v.push(format!("trunk {trunk}: {} b/s used of {}", usage.capacity, testbed.trunk(t).capacity))
            }
            Some(_) => {}
        },
        ResourceKey::Vlan { facility, vid } => {
            if usage.links > 1 {
                v.push(format!("VLAN {vid} in {facility} is used by {} links", usage.links));
            }
        }
    }
}

/// Everything over capacity or double-booked in `occupancy` (e.g. after adding the claims
/// of several embeddings).
pub fn check_occupancy(testbed: &Testbed, occupancy: &Occupancy) -> Vec<String> {
    let mut v = Vec::new();
    let mut entries: Vec<_> = occupancy.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (key, usage) in entries {
        check_resource(testbed, key, usage, &mut v);
    }
    v
}
