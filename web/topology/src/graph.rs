//! The graph the layout works on: one vertex per experiment node, one per LAN hub.

use std::collections::HashMap;

use trellis_api::xir;

use crate::LinkShape;

/// An undirected graph with edge lengths, in compressed adjacency form.
pub(crate) struct Graph {
    /// Vertices `0..nodes` are `network.nodes` in order; the rest are LAN hubs in link order.
    pub nodes: usize,
    /// How each of `network.links` is drawn.
    pub links: Vec<LinkShape>,
    /// For each LAN hub (vertex `nodes + i`): the nodes it joins.
    pub lan_members: Vec<Vec<usize>>,
    /// `adj[start[v]..start[v + 1]]` are `v`'s neighbours with the wanted edge length.
    pub start: Vec<usize>,
    pub adj: Vec<(usize, f64)>,
}

/// Wanted lengths, in SVG pixels.
pub(crate) struct Lengths {
    /// Between two nodes.
    pub link: f64,
    /// Between a node and a LAN hub.
    pub spoke: f64,
}

impl Graph {
    pub fn vertices(&self) -> usize {
        self.start.len() - 1
    }

    pub fn degree(&self, v: usize) -> usize {
        self.start[v + 1] - self.start[v]
    }

    pub fn neighbours(&self, v: usize) -> &[(usize, f64)] {
        &self.adj[self.start[v]..self.start[v + 1]]
    }

    pub fn build(net: &xir::Network, lengths: &Lengths) -> Graph {
        let nodes = net.nodes.len();
        // Duplicate ids are an error the model service reports; links attach to the first.
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(nodes);
        for (i, node) in net.nodes.iter().enumerate() {
            index.entry(node.id.as_str()).or_insert(i);
        }
        let resolve =
            |e: &xir::Endpoint| e.socket.as_ref().and_then(|s| index.get(s.element.as_str()).copied());

        let mut links = Vec::with_capacity(net.links.len());
        let mut lan_members = Vec::new();
        let mut edges: Vec<(usize, usize)> = Vec::new();
        for link in &net.links {
            if link.endpoints.len() > 2 {
                let hub = nodes + lan_members.len();
                let mut members: Vec<usize> = Vec::with_capacity(link.endpoints.len());
                for m in link.endpoints.iter().filter_map(resolve) {
                    if !members.contains(&m) {
                        members.push(m);
                        edges.push((m, hub));
                    }
                }
                links.push(LinkShape::Lan { lan: lan_members.len() });
                lan_members.push(members);
            } else if let [a, b] = &link.endpoints[..]
                && let (Some(a), Some(b)) = (resolve(a), resolve(b))
            {
                if a != b {
                    edges.push((a.min(b), a.max(b)));
                }
                links.push(LinkShape::Pair { a, b });
            } else {
                links.push(LinkShape::Unattached);
            }
        }
        // Parallel links pull no harder than one.
        edges.sort_unstable();
        edges.dedup();

        let vertices = nodes + lan_members.len();
        let mut degree = vec![0usize; vertices];
        for &(a, b) in &edges {
            degree[a] += 1;
            degree[b] += 1;
        }
        let mut start = Vec::with_capacity(vertices + 1);
        start.push(0);
        for d in &degree {
            start.push(start[start.len() - 1] + d);
        }
        let mut fill = start.clone();
        let mut adj = vec![(0, 0.0); edges.len() * 2];
        for &(a, b) in &edges {
            let len = if b >= nodes { lengths.spoke } else { lengths.link };
            adj[fill[a]] = (b, len);
            fill[a] += 1;
            adj[fill[b]] = (a, len);
            fill[b] += 1;
        }
        Graph { nodes, links, lan_members, start, adj }
    }

    /// Connected components, each a sorted list of vertices; ordered by their lowest vertex.
    pub fn components(&self) -> Vec<Vec<usize>> {
        let n = self.vertices();
        let mut seen = vec![false; n];
        let mut out = Vec::new();
        let mut stack = Vec::new();
        for root in 0..n {
            if seen[root] {
                continue;
            }
            seen[root] = true;
            stack.push(root);
            let mut component = Vec::new();
            while let Some(v) = stack.pop() {
                component.push(v);
                for &(w, _) in self.neighbours(v) {
                    if !seen[w] {
                        seen[w] = true;
                        stack.push(w);
                    }
                }
            }
            component.sort_unstable();
            out.push(component);
        }
        out
    }
}
