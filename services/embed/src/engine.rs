use std::collections::BTreeMap;

use crate::links::{Network, place_links};
use crate::request::KindRequest;
use crate::state::Committed;
use crate::testbed::HostId;
use crate::{
    Claim, Diagnostic, Embedding, LinkPlacement, NodeKind, NodePlacement, Occupancy, Request, ResourceKey,
    Testbed, Unrealizable, Usage, filter, place,
};

/// Knobs for one embedding.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Hosts the realization may use (the project's pool); `None` means every active host.
    pub eligible: Option<Vec<bool>>,
    /// Seed for any randomized tie-breaking, so results are reproducible.
    pub seed: u64,
}

/// Embeds `request` into the free part of `testbed`.
pub fn embed(
    testbed: &Testbed,
    occupancy: &Occupancy,
    request: &Request,
    options: &Options,
) -> Result<Embedding, Unrealizable> {
    let mut committed = Committed::read(testbed, occupancy);
    let mut states = std::mem::take(&mut committed.hosts);
    let eligible = |i: usize| options.eligible.as_ref().is_none_or(|e| e.get(i).copied().unwrap_or(false));

    let mut candidates = Vec::with_capacity(request.profiles.len());
    let mut diagnostics = Vec::new();
    for (p, profile) in request.profiles.iter().enumerate() {
        match filter::candidates(testbed, &states, &eligible, profile) {
            Ok(list) => candidates.push(list),
            Err(failure) => {
                let mut nodes = request.nodes.iter().filter(|n| n.profile as usize == p);
                let first = nodes.next().map_or("?", |n| n.id.as_str());
                let others = match nodes.count() {
                    0 => String::new(),
                    k => format!(" (and {k} other nodes with the same constraints)"),
                };
                diagnostics.push(Diagnostic {
                    element: Some(format!("node {first}")),
                    constraint: Some(failure.constraint.to_string()),
                    candidates_left: Some(failure.before),
                    message: format!("node {first}{others}: {}", failure.message),
                });
                candidates.push(Vec::new());
            }
        }
    }
    if !diagnostics.is_empty() {
        return Err(Unrealizable { diagnostics });
    }

    if let Some(d) = too_few_bare_metal_hosts(request, &candidates) {
        return Err(Unrealizable { diagnostics: vec![d] });
    }

    let placed = place::place(testbed, request, &candidates, &mut states, options.seed)
        .map_err(|diagnostics| Unrealizable { diagnostics })?;
    let kinds: Vec<NodeKind> = placed.take.iter().map(|t| t.kind).collect();
    let mut network = Network::new(testbed, committed);
    let links = place_links(testbed, request, &placed.host, &kinds, &mut network)
        .map_err(|diagnostics| Unrealizable { diagnostics })?;

    let nodes: Vec<NodePlacement> = request
        .nodes
        .iter()
        .zip(placed.host.iter().zip(&placed.take))
        .map(|(node, (&h, take))| NodePlacement {
            node: node.id.clone(),
            host: HostId(h),
            kind: take.kind,
            cores: u32::try_from(take.cores).unwrap_or(u32::MAX),
            memory: take.memory,
            disk: take.disk,
        })
        .collect();
    let cross_rack_links = links
        .iter()
        .filter(|l| {
            let rack = |e: &crate::LinkEndpoint| testbed.host_rack[e.host.0 as usize];
            l.endpoints.first().is_some_and(|first| l.endpoints.iter().any(|e| rack(e) != rack(first)))
        })
        .count();
    let claims = claims(testbed, &nodes, &links);
    Ok(Embedding { nodes, links, claims, cross_rack_links })
}

/// Each bare-metal node takes a whole host: when there are more of them than free hosts
/// that any of them could use, say so once rather than per node.
fn too_few_bare_metal_hosts(request: &Request, candidates: &[Vec<u32>]) -> Option<Diagnostic> {
    let metal = |p: usize| request.profiles[p].kind == KindRequest::BareMetal;
    let nodes = request.nodes.iter().filter(|n| metal(n.profile as usize)).count();
    let mut hosts: Vec<u32> = candidates
        .iter()
        .enumerate()
        .filter(|(p, _)| metal(*p))
        .flat_map(|(_, c)| c.iter().copied())
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    (nodes > hosts.len()).then(|| Diagnostic {
        element: None,
        constraint: Some("capacity".into()),
        candidates_left: Some(hosts.len()),
        message: format!(
            "the experiment has {nodes} bare-metal nodes, but only {} free hosts satisfy their constraints",
            hosts.len()
        ),
    })
}

/// Everything the placements take, one claim per resource, in key order.
pub fn claims(testbed: &Testbed, nodes: &[NodePlacement], links: &[LinkPlacement]) -> Vec<Claim> {
    let mut sum: BTreeMap<ResourceKey, Usage> = BTreeMap::new();
    for node in nodes {
        let host = testbed.host(node.host);
        let usage = Usage {
            cores: node.cores,
            memory: node.memory,
            disk: node.disk,
            exclusive: node.kind == NodeKind::BareMetal,
            vms: u32::from(node.kind == NodeKind::VirtualMachine),
            ..Default::default()
        };
        sum.entry(ResourceKey::Host { facility: host.facility.clone(), host: host.name.clone() })
            .or_default()
            .add(&usage);
    }
    for link in links {
        let per_link = Usage { capacity: link.capacity, links: 1, ..Default::default() };
        let mut seen: Vec<(HostId, u32)> = Vec::new();
        for e in &link.endpoints {
            let Some(p) = e.port else { continue };
            if seen.contains(&(e.host, p)) {
                continue;
            }
            seen.push((e.host, p));
            let host = testbed.host(e.host);
            let port = host.ports[p as usize].name.clone();
            sum.entry(ResourceKey::Port { facility: host.facility.clone(), host: host.name.clone(), port })
                .or_default()
                .add(&per_link);
        }
        for &t in &link.trunks {
            let trunk = testbed.trunk(t);
            sum.entry(ResourceKey::Trunk { facility: trunk.facility.clone(), trunk: trunk.name.clone() })
                .or_default()
                .add(&per_link);
        }
        if let Some(vid) = link.vlan {
            sum.entry(ResourceKey::Vlan { facility: link.facility.clone(), vid })
                .or_default()
                .add(&Usage { links: 1, ..Default::default() });
        }
    }
    sum.into_iter().map(|(key, usage)| Claim { key, usage }).collect()
}
