//! Node placement: choose racks, partition the experiment graph over them so linked nodes
//! share a rack, then pick hosts inside each rack (most constrained nodes first), spilling
//! to other racks when a rack cannot take a node after all.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::Diagnostic;
use crate::partition::{self, Graph};
use crate::request::Request;
use crate::state::{HostState, Take, fit, remaining, slots};
use crate::testbed::Testbed;

/// Heaviest relative weight one link gets in the partition (links are weighted by capacity
/// relative to the slowest link, so one very fast link cannot drown out everything else).
const MAX_EDGE_WEIGHT: u64 = 1000;

pub struct Placed {
    /// Host of each node.
    pub host: Vec<u32>,
    pub take: Vec<Take>,
}

/// Each profile's candidates ordered by rack, then smallest host first (so big machines
/// stay free for nodes that need them), with the rack of each.
struct Ordered {
    hosts: Vec<u32>,
    racks: Vec<u32>,
}

impl Ordered {
    fn in_rack(&self, rack: u32) -> &[u32] {
        let start = self.racks.partition_point(|&r| r < rack);
        let end = self.racks.partition_point(|&r| r <= rack);
        &self.hosts[start..end]
    }

    fn allows(&self, rack: u32) -> bool {
        self.racks.binary_search(&rack).is_ok()
    }
}

fn partition_trials(nodes: usize) -> usize {
    match nodes {
        0..=300 => 8,
        301..=1200 => 4,
        _ => 2,
    }
}

pub fn place(
    testbed: &Testbed,
    request: &Request,
    candidates: &[Vec<u32>],
    states: &mut [HostState],
    seed: u64,
) -> Result<Placed, Vec<Diagnostic>> {
    let n = request.nodes.len();
    let ordered: Vec<Ordered> = candidates
        .iter()
        .map(|list| {
            let mut hosts = list.clone();
            hosts.sort_by_key(|&h| {
                let host = &testbed.hosts[h as usize];
                (testbed.host_rack[h as usize], host.cores, host.memory, host.disk, h)
            });
            let racks = hosts.iter().map(|&h| testbed.host_rack[h as usize]).collect();
            Ordered { hosts, racks }
        })
        .collect();

    let chosen = choose_racks(testbed, request, &ordered, states);
    let part = partition_nodes(request, &ordered, &chosen, seed);

    let mut progress = Progress {
        host_of: vec![u32::MAX; n],
        take: vec![None; n],
        link_hosts: vec![Vec::new(); request.links.len()],
        link_placed: vec![0; request.links.len()],
        widest_port: testbed
            .hosts
            .iter()
            .map(|h| {
                h.ports
                    .iter()
                    .filter(|p| p.switch.is_some())
                    .map(|p| remaining(p.capacity, 0))
                    .max()
                    .unwrap_or(0)
            })
            .collect(),
    };
    let mut by_part: Vec<Vec<u32>> = vec![Vec::new(); chosen.len()];
    for (v, &p) in part.iter().enumerate() {
        by_part[p as usize].push(v as u32);
    }
    let mut spill = Vec::new();
    let mut spilled = vec![false; n];
    for (p, members) in by_part.iter().enumerate() {
        let rack = chosen[p].0;
        let hosts_for = |v: u32| ordered[request.nodes[v as usize].profile as usize].in_rack(rack);
        // Most constrained first; among equals, neighbours of nodes just placed (breadth
        // first), so VMs land beside their neighbours and their links stay on the host.
        let mut queue: BinaryHeap<Reverse<(usize, u64, u32)>> =
            members.iter().map(|&v| Reverse((hosts_for(v).len(), u64::MAX / 2 + u64::from(v), v))).collect();
        let mut seq = 0u64;
        while let Some(Reverse((_, _, v))) = queue.pop() {
            if progress.host_of[v as usize] != u32::MAX || spilled[v as usize] {
                continue;
            }
            match best_host(testbed, request, states, &progress, v, hosts_for(v), |_| 0) {
                Some(choice) => progress.commit(request, v, choice, states),
                None => {
                    spilled[v as usize] = true;
                    spill.push(v);
                    continue;
                }
            }
            for u in neighbours(request, v) {
                if part[u as usize] as usize == p && progress.host_of[u as usize] == u32::MAX {
                    seq += 1;
                    queue.push(Reverse((hosts_for(u).len(), seq, u)));
                }
            }
        }
    }

    let mut failed: Vec<u32> = Vec::new();
    for v in spill {
        let profile_index = request.nodes[v as usize].profile as usize;
        // Prefer the racks the node's neighbours are in, then racks already in use.
        let mut rack_weight: HashMap<u32, u32> = HashMap::new();
        for &r in chosen.iter().map(|(r, _)| r) {
            rack_weight.insert(r, 1);
        }
        for u in neighbours(request, v) {
            let h = progress.host_of[u as usize];
            if h != u32::MAX {
                *rack_weight.entry(testbed.host_rack[h as usize]).or_default() += 2;
            }
        }
        let rack_score = |h: u32| rack_weight.get(&testbed.host_rack[h as usize]).copied().unwrap_or(0);
        match best_host(testbed, request, states, &progress, v, &ordered[profile_index].hosts, rack_score) {
            Some(choice) => progress.commit(request, v, choice, states),
            None => failed.push(v),
        }
    }
    if !failed.is_empty() {
        return Err(placement_failures(request, candidates, &failed));
    }
    let take = progress.take.into_iter().flatten().collect();
    Ok(Placed { host: progress.host_of, take })
}

/// Placement so far.
struct Progress {
    host_of: Vec<u32>,
    take: Vec<Option<Take>>,
    /// Per link, the hosts its placed endpoints are on, with how many on each.
    link_hosts: Vec<Vec<(u32, u32)>>,
    /// Per link, how many endpoints are placed.
    link_placed: Vec<u32>,
    /// Per host, the fastest experiment port reaching a switch (0: none).
    widest_port: Vec<u64>,
}

/// A host for a node and what it costs.
struct Choice {
    host: u32,
    take: Take,
    /// Change in the host's port bandwidth use.
    net: i64,
}

impl Progress {
    fn commit(&mut self, request: &Request, v: u32, choice: Choice, states: &mut [HostState]) {
        let state = &mut states[choice.host as usize];
        state.apply(&choice.take);
        state.free_net = if choice.net >= 0 {
            state.free_net.saturating_sub(choice.net as u64)
        } else {
            state.free_net.saturating_add(choice.net.unsigned_abs())
        };
        for &l in &request.node_links[v as usize] {
            let k = request.links[l as usize].endpoints.iter().filter(|e| e.node == v).count() as u32;
            self.link_placed[l as usize] += k;
            let hosts = &mut self.link_hosts[l as usize];
            match hosts.iter_mut().find(|(x, _)| *x == choice.host) {
                Some((_, count)) => *count += k,
                None => hosts.push((choice.host, k)),
            }
        }
        self.host_of[v as usize] = choice.host;
        self.take[v as usize] = Some(choice.take);
    }

    /// How placing `v` on `h` changes `h`'s port bandwidth use, or `None` if some link could
    /// then not be carried at all.
    ///
    /// A link draws its capacity on a host's ports while some of its endpoints are there and
    /// some are not; endpoints not yet placed count as elsewhere, so a host keeps room for
    /// the links of its nodes until their neighbours join them (and the draw is returned).
    /// A host whose ports cannot carry a link (none reaches a switch, or none is fast
    /// enough) keeps no room for it: the link must end up entirely on that host.
    fn net_change(&self, request: &Request, v: u32, h: u32) -> Option<i64> {
        let mut delta = 0i64;
        for &l in &request.node_links[v as usize] {
            let link = &request.links[l as usize];
            let carries = |x: u32| {
                let widest = self.widest_port[x as usize];
                widest > 0 && widest >= link.capacity
            };
            let total = link.endpoints.len() as u32;
            let k = link.endpoints.iter().filter(|e| e.node == v).count() as u32;
            let placed = self.link_placed[l as usize];
            let hosts = &self.link_hosts[l as usize];
            let here = hosts.iter().find(|(x, _)| *x == h).map_or(0, |&(_, c)| c);
            if hosts.iter().any(|&(x, c)| x != h && c == placed && !carries(x)) {
                return None;
            }
            let before = here > 0 && (placed > here || (total > placed && carries(h)));
            let after = placed + k > here + k || (total > placed + k && carries(h));
            if after && !carries(h) {
                return None;
            }
            delta += (i64::from(after) - i64::from(before)) * link.capacity.min(i64::MAX as u64) as i64;
        }
        Some(delta)
    }
}

fn neighbours(request: &Request, v: u32) -> impl Iterator<Item = u32> + '_ {
    request.node_links[v as usize]
        .iter()
        .flat_map(move |&l| request.links[l as usize].endpoints.iter().map(|e| e.node))
        .filter(move |&u| u != v)
}

/// The host among `hosts` (in preference order) that fits `v` with room on the ports its
/// links need, scoring first by `rack_score`, then by how many of the node's neighbours are
/// already on it (VMs of one experiment on one host need no NIC between them).
fn best_host(
    testbed: &Testbed,
    request: &Request,
    states: &[HostState],
    progress: &Progress,
    v: u32,
    hosts: &[u32],
    rack_score: impl Fn(u32) -> u32,
) -> Option<Choice> {
    let profile = request.profile(v);
    let neighbour_hosts: Vec<u32> =
        neighbours(request, v).map(|u| progress.host_of[u as usize]).filter(|&h| h != u32::MAX).collect();
    // When no host has room on its ports, place the node anyway: the links that cannot be
    // carried then fail with a diagnostic naming the link, which says more than one naming
    // the node would.
    for respect_ports in [true, false] {
        let mut best: Option<((u32, usize), Choice)> = None;
        for &h in hosts {
            let Some(take) = fit(profile, &testbed.hosts[h as usize], &states[h as usize]) else { continue };
            let score = (rack_score(h), neighbour_hosts.iter().filter(|&&x| x == h).count());
            if best.as_ref().is_some_and(|(s, _)| score <= *s) {
                continue;
            }
            let net = match progress.net_change(request, v, h) {
                Some(net) if net <= 0 || states[h as usize].free_net >= net as u64 => net,
                Some(net) if !respect_ports => net,
                None if !respect_ports => 0,
                _ => continue,
            };
            best = Some((score, Choice { host: h, take, net }));
        }
        if best.is_some() {
            return best.map(|(_, choice)| choice);
        }
    }
    None
}

/// Bits per second an average node's links draw.
fn net_demand(request: &Request) -> u64 {
    let total: u64 = request.links.iter().map(|l| l.capacity.saturating_mul(l.endpoints.len() as u64)).sum();
    total / (request.nodes.len().max(1) as u64)
}

/// The racks to spread the experiment over, with how many nodes each can take: the fewest
/// racks that hold everything, from the facility with the most room first; plus, for a
/// profile none of those racks can take, the roomiest rack that can.
fn choose_racks(
    testbed: &Testbed,
    request: &Request,
    ordered: &[Ordered],
    states: &[HostState],
) -> Vec<(u32, i64)> {
    let n = request.nodes.len() as u64;
    let demand = net_demand(request);
    let mut host_slots = vec![0u64; testbed.hosts.len()];
    for (p, list) in ordered.iter().enumerate() {
        let profile = &request.profiles[p];
        for &h in &list.hosts {
            let s = slots(profile, &testbed.hosts[h as usize], &states[h as usize], demand);
            host_slots[h as usize] = host_slots[h as usize].max(s);
        }
    }
    let mut rack_cap = vec![0u64; testbed.racks.len()];
    for (h, &s) in host_slots.iter().enumerate() {
        rack_cap[testbed.host_rack[h] as usize] += s;
    }
    let mut facility_cap: HashMap<&str, u64> = HashMap::new();
    for (r, rack) in testbed.racks.iter().enumerate() {
        *facility_cap.entry(rack.facility.as_str()).or_default() += rack_cap[r];
    }
    let mut order: Vec<u32> = (0..testbed.racks.len() as u32).filter(|&r| rack_cap[r as usize] > 0).collect();
    order.sort_by(|&a, &b| {
        let (fa, fb) = (&testbed.racks[a as usize].facility, &testbed.racks[b as usize].facility);
        facility_cap[fb.as_str()]
            .cmp(&facility_cap[fa.as_str()])
            .then(fa.cmp(fb))
            .then(rack_cap[b as usize].cmp(&rack_cap[a as usize]))
            .then(a.cmp(&b))
    });
    let mut chosen: Vec<u32> = Vec::new();
    let mut room = 0;
    for &r in &order {
        if room >= n {
            break;
        }
        chosen.push(r);
        room += rack_cap[r as usize];
    }
    for (p, list) in ordered.iter().enumerate() {
        let used = request.nodes.iter().any(|node| node.profile as usize == p);
        if !used || chosen.iter().any(|&r| list.allows(r)) {
            continue;
        }
        let best = list.racks.iter().copied().max_by_key(|&r| (rack_cap[r as usize], std::cmp::Reverse(r)));
        if let Some(r) = best {
            chosen.push(r);
        }
    }
    chosen.into_iter().map(|r| (r, rack_cap[r as usize].min(n) as i64)).collect()
}

/// Each node's part (an index into `chosen`).
fn partition_nodes(request: &Request, ordered: &[Ordered], chosen: &[(u32, i64)], seed: u64) -> Vec<u32> {
    let n = request.nodes.len();
    if chosen.len() <= 1 {
        return vec![0; n];
    }
    let unit = request.links.iter().map(|l| l.capacity).filter(|&c| c > 0).min().unwrap_or(1);
    let mut vwgt = vec![1i64; n];
    let mut edges = Vec::new();
    let mut ends: Vec<u32> = Vec::new();
    for link in &request.links {
        let w = if link.capacity == 0 { 1 } else { (link.capacity / unit).clamp(1, MAX_EDGE_WEIGHT) as i64 };
        ends.clear();
        ends.extend(link.endpoints.iter().map(|e| e.node));
        ends.sort_unstable();
        ends.dedup();
        match ends.len() {
            0 | 1 => {}
            2 => edges.push((ends[0], ends[1], w)),
            _ => {
                // A LAN is a star around a weightless hub: it costs w for each rack beyond
                // the hub's that it reaches.
                let hub = vwgt.len() as u32;
                vwgt.push(0);
                edges.extend(ends.iter().map(|&e| (hub, e, w)));
            }
        }
    }
    let graph = Graph::from_edges(vwgt, &edges);
    let caps: Vec<i64> = chosen.iter().map(|&(_, c)| c).collect();
    let allowed = |v: u32, p: u32| {
        (v as usize) >= n || ordered[request.nodes[v as usize].profile as usize].allows(chosen[p as usize].0)
    };
    let mut part = partition::partition(&graph, &caps, &allowed, seed, partition_trials(n));
    part.truncate(n);
    part
}

fn placement_failures(request: &Request, candidates: &[Vec<u32>], failed: &[u32]) -> Vec<Diagnostic> {
    let mut by_profile: Vec<(u32, Vec<u32>)> = Vec::new();
    for &v in failed {
        let p = request.nodes[v as usize].profile;
        match by_profile.iter_mut().find(|(q, _)| *q == p) {
            Some((_, nodes)) => nodes.push(v),
            None => by_profile.push((p, vec![v])),
        }
    }
    by_profile
        .into_iter()
        .map(|(p, nodes)| {
            let first = &request.nodes[nodes[0] as usize].id;
            let alike = request.nodes.iter().filter(|n| n.profile == p).count();
            let others = match nodes.len() {
                1 => String::new(),
                k => format!(" (and {} other nodes with the same constraints)", k - 1),
            };
            let hosts = candidates[p as usize].len();
            Diagnostic {
                element: Some(format!("node {first}")),
                constraint: Some("capacity".into()),
                candidates_left: Some(hosts),
                message: format!(
                    "node {first}{others}: the {hosts} hosts that satisfy its constraints have no room left \
                     once the experiment's other nodes are placed ({alike} nodes have these constraints)"
                ),
            }
        })
        .collect()
}
