//! Static routes over the experiment topology and the names nodes use for each other.
//!
//! Pure functions of the plan. Routes are shortest paths in hops: every node gets one route
//! to every experiment subnet it is not attached to, through the first hop on a shortest
//! path to the nearest node that is attached to it.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::net::IpAddr;

use crate::cidr::Cidr;
use crate::plan::{LinkPlan, NodePlan};

/// One route inside a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub dest: Cidr,
    /// `None`: the destination is on the link itself.
    pub via: Option<IpAddr>,
    pub dev: String,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.via {
            Some(via) => write!(f, "{} via {} dev {}", self.dest, via, self.dev),
            None => write!(f, "{} dev {}", self.dest, self.dev),
        }
    }
}

/// A neighbour reachable in one hop: (node, link, own interface, neighbour's interface).
type Edge = (usize, usize, usize, usize);

fn family_addr(node: &NodePlan, iface: usize, v4: bool) -> Option<IpAddr> {
    node.ifaces[iface].addrs.iter().find(|a| a.addr.is_ipv4() == v4).map(|a| a.addr)
}

/// For each node, its neighbours over links where both ends have an address of the family.
fn adjacency(nodes: &[NodePlan], links: &[LinkPlan], v4: bool) -> Vec<Vec<Edge>> {
    let mut adj = vec![Vec::new(); nodes.len()];
    for (l, link) in links.iter().enumerate() {
        for &(a, ia) in &link.endpoints {
            if family_addr(&nodes[a], ia, v4).is_none() {
                continue;
            }
            for &(b, ib) in &link.endpoints {
                if a != b && family_addr(&nodes[b], ib, v4).is_some() {
                    adj[a].push((b, l, ia, ib));
                }
            }
        }
    }
    for edges in &mut adj {
        edges.sort_unstable();
    }
    adj
}

/// Breadth-first search from `from`: each node's distance and the first edge out of `from`
/// on a shortest path to it.
fn shortest_first_hops(adj: &[Vec<Edge>], from: usize) -> (Vec<Option<usize>>, Vec<Option<Edge>>) {
    let mut dist = vec![None; adj.len()];
    let mut first = vec![None; adj.len()];
    dist[from] = Some(0);
    let mut queue = VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        let d = dist[n].unwrap_or(0);
        for &edge in &adj[n] {
            let next = edge.0;
            if dist[next].is_none() {
                dist[next] = Some(d + 1);
                first[next] = if n == from { Some(edge) } else { first[n] };
                queue.push_back(next);
            }
        }
    }
    (dist, first)
}

/// The routes each node needs to reach every experiment subnet.
pub(crate) fn static_routes(nodes: &[NodePlan], links: &[LinkPlan]) -> Vec<Vec<Route>> {
    let mut routes = vec![Vec::new(); nodes.len()];
    for v4 in [true, false] {
        let adj = adjacency(nodes, links, v4);
        // Every subnet of the family, with the link it lives on, each once.
        let mut subnets: Vec<(Cidr, usize)> = Vec::new();
        let mut seen = HashSet::new();
        for (l, link) in links.iter().enumerate() {
            for &(n, i) in &link.endpoints {
                for a in &nodes[n].ifaces[i].addrs {
                    if a.addr.is_ipv4() == v4 && seen.insert(a.network()) {
                        subnets.push((a.network(), l));
                    }
                }
            }
        }
        for (u, node) in nodes.iter().enumerate() {
            let (dist, first) = shortest_first_hops(&adj, u);
            let attached: HashSet<Cidr> =
                node.ifaces.iter().flat_map(|f| f.addrs.iter().map(|a| a.network())).collect();
            for &(subnet, l) in &subnets {
                if attached.contains(&subnet) {
                    continue;
                }
                let link = &links[l];
                if let Some(&(_, iface)) = link.endpoints.iter().find(|&&(n, _)| n == u) {
                    routes[u].push(Route { dest: subnet, via: None, dev: node.ifaces[iface].name.clone() });
                    continue;
                }
                let nearest = link
                    .endpoints
                    .iter()
                    .filter(|&&(n, i)| nodes[n].ifaces[i].addrs.iter().any(|a| a.network() == subnet))
                    .filter_map(|&(n, _)| dist[n].map(|d| (d, n)))
                    .min();
                let Some((_, target)) = nearest else { continue };
                let Some((hop, _, own_iface, hop_iface)) = first[target] else { continue };
                if let Some(via) = family_addr(&nodes[hop], hop_iface, v4) {
                    routes[u].push(Route {
                        dest: subnet,
                        via: Some(via),
                        dev: node.ifaces[own_iface].name.clone(),
                    });
                }
            }
        }
    }
    routes
}

/// The address `viewer` should use for `target`: its address on a link they share, or else
/// its first experiment address (IPv4 first).
fn address_as_seen_by(
    nodes: &[NodePlan],
    links: &[LinkPlan],
    viewer: usize,
    target: usize,
) -> Option<IpAddr> {
    let pick =
        |addrs: &[Cidr]| addrs.iter().find(|a| a.addr.is_ipv4()).or_else(|| addrs.first()).map(|a| a.addr);
    let shared = nodes[target].ifaces.iter().find_map(|iface| {
        let link = &links[iface.link];
        link.endpoints.iter().any(|&(n, _)| n == viewer).then(|| pick(&iface.addrs)).flatten()
    });
    shared.or_else(|| {
        let all: Vec<Cidr> = nodes[target].ifaces.iter().flat_map(|f| f.addrs.iter().copied()).collect();
        pick(&all)
    })
}

/// Each node's `/etc/hosts`: `<node>` is the experiment address (so traffic to a name crosses
/// the emulated links), `<node>.infra.<mzid>` and `<node>.infra` the infranet address.
pub(crate) fn hosts_files(nodes: &[NodePlan], links: &[LinkPlan], mzid: &str) -> Vec<String> {
    (0..nodes.len())
        .map(|viewer| {
            let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
            for (target, node) in nodes.iter().enumerate() {
                let infra_names = format!("{0}.infra.{mzid} {0}.infra", node.name);
                match address_as_seen_by(nodes, links, viewer, target) {
                    Some(exp) => {
                        text.push_str(&format!("{exp}\t{}\n{}\t{infra_names}\n", node.name, node.infra_addr));
                    }
                    None => text.push_str(&format!("{}\t{} {infra_names}\n", node.infra_addr, node.name)),
                }
            }
            text
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::IfacePlan;

    fn node(name: &str, ifaces: &[(&str, usize, &str)]) -> NodePlan {
        NodePlan {
            name: name.into(),
            netns: String::new(),
            host_veth: String::new(),
            cgroup: String::new(),
            infra_addr: "10.9.0.2".parse().unwrap(),
            image: None,
            cores: 0,
            memory_bytes: 0,
            persistent: false,
            ifaces: ifaces
                .iter()
                .map(|&(n, link, addr)| IfacePlan {
                    name: n.into(),
                    link,
                    addrs: vec![Cidr::parse(addr).unwrap()],
                    queue: 1,
                })
                .collect(),
            fingerprint: String::new(),
        }
    }

    fn link(name: &str, endpoints: &[(usize, usize)]) -> LinkPlan {
        LinkPlan {
            name: name.into(),
            endpoints: endpoints.to_vec(),
            capacity_bps: 0,
            latency_us: 0,
            loss: 0.0,
        }
    }

    #[test]
    fn chain_routes_go_through_the_middle() {
        // a -ab- b -bc- c -cd- d
        let nodes = vec![
            node("a", &[("eth1", 0, "10.0.1.1/24")]),
            node("b", &[("eth1", 0, "10.0.1.2/24"), ("eth2", 1, "10.0.2.1/24")]),
            node("c", &[("eth1", 1, "10.0.2.2/24"), ("eth2", 2, "10.0.3.1/24")]),
            node("d", &[("eth1", 2, "10.0.3.2/24")]),
        ];
        let links =
            vec![link("ab", &[(0, 0), (1, 0)]), link("bc", &[(1, 1), (2, 0)]), link("cd", &[(2, 1), (3, 0)])];
        let routes = static_routes(&nodes, &links);
        let text = |n: usize| routes[n].iter().map(Route::to_string).collect::<Vec<_>>();
        assert_eq!(text(0), ["10.0.2.0/24 via 10.0.1.2 dev eth1", "10.0.3.0/24 via 10.0.1.2 dev eth1"]);
        assert_eq!(text(1), ["10.0.3.0/24 via 10.0.2.2 dev eth2"]);
        assert_eq!(text(3), ["10.0.1.0/24 via 10.0.3.1 dev eth1", "10.0.2.0/24 via 10.0.3.1 dev eth1"]);
    }

    #[test]
    fn lan_members_are_one_hop_apart() {
        // a, b, c on a LAN; d behind c.
        let nodes = vec![
            node("a", &[("eth1", 0, "10.0.0.1/24")]),
            node("b", &[("eth1", 0, "10.0.0.2/24")]),
            node("c", &[("eth1", 0, "10.0.0.3/24"), ("eth2", 1, "10.1.0.1/24")]),
            node("d", &[("eth1", 1, "10.1.0.2/24")]),
        ];
        let links = vec![link("lan", &[(0, 0), (1, 0), (2, 0)]), link("cd", &[(2, 1), (3, 0)])];
        let routes = static_routes(&nodes, &links);
        assert_eq!(
            routes[0].iter().map(Route::to_string).collect::<Vec<_>>(),
            ["10.1.0.0/24 via 10.0.0.3 dev eth1"]
        );
        assert_eq!(
            routes[3].iter().map(Route::to_string).collect::<Vec<_>>(),
            ["10.0.0.0/24 via 10.1.0.1 dev eth1"]
        );
        assert!(routes[2].is_empty());
    }

    #[test]
    fn hosts_prefer_the_shared_link() {
        let nodes = vec![
            node("a", &[("eth1", 0, "10.0.1.1/24")]),
            node("b", &[("eth1", 0, "10.0.1.2/24"), ("eth2", 1, "10.0.2.1/24")]),
            node("c", &[("eth1", 1, "10.0.2.2/24")]),
        ];
        let links = vec![link("ab", &[(0, 0), (1, 0)]), link("bc", &[(1, 1), (2, 0)])];
        let hosts = hosts_files(&nodes, &links, "r.e.p");
        assert!(hosts[0].contains("10.0.1.2\tb\n"), "{}", hosts[0]);
        assert!(hosts[2].contains("10.0.2.1\tb\n"), "{}", hosts[2]);
        assert!(hosts[2].contains("10.0.1.1\ta\n"), "{}", hosts[2]);
        assert!(hosts[0].contains("10.9.0.2\tb.infra.r.e.p b.infra\n"), "{}", hosts[0]);
    }
}
