//! Experiment networks built the way mergexp compiles them: link ids `a.0~b.0`, one socket per
//! endpoint on each node, the socket referring back to its link.

#![allow(dead_code)]

use std::collections::HashMap;

use trellis_api::xir;

pub const EQ: i32 = xir::Operator::Eq as i32;
pub const GE: i32 = xir::Operator::Ge as i32;

#[derive(Default)]
pub struct Builder {
    pub net: xir::Network,
    index: HashMap<String, usize>,
}

impl Builder {
    pub fn new(id: &str) -> Builder {
        Builder { net: xir::Network { id: id.into(), ..Default::default() }, index: HashMap::new() }
    }

    pub fn node(&mut self, id: &str) -> &mut xir::Node {
        let i = self.net.nodes.len();
        self.index.insert(id.to_string(), i);
        self.net.nodes.push(xir::Node { id: id.into(), ..Default::default() });
        &mut self.net.nodes[i]
    }

    pub fn nodes(&mut self, ids: &[&str]) {
        for id in ids {
            self.node(id);
        }
    }

    /// Connects `ends` as mergexp's `net.connect` does; returns the link for more constraints.
    pub fn connect(&mut self, ends: &[&str]) -> &mut xir::Link {
        let mut endpoints = Vec::new();
        let mut names = Vec::new();
        for (i, end) in ends.iter().enumerate() {
            let node = self.index.get(*end).map(|&n| &mut self.net.nodes[n]);
            let socket = node.as_ref().map_or(0, |n| n.sockets.len() as u32);
            names.push(format!("{end}.{socket}"));
            endpoints.push(xir::Endpoint {
                index: i as i32,
                socket: Some(xir::Ref { element: (*end).into(), index: socket, ..Default::default() }),
                ..Default::default()
            });
        }
        let id = names.join("~");
        for end in ends {
            if let Some(&n) = self.index.get(*end) {
                let node = &mut self.net.nodes[n];
                node.sockets.push(xir::Socket {
                    index: node.sockets.len() as i32,
                    endpoint: Some(xir::Ref { element: id.clone(), ..Default::default() }),
                    ..Default::default()
                });
            }
        }
        self.net.links.push(xir::Link { id, endpoints, ..Default::default() });
        self.net.links.last_mut().unwrap()
    }

    pub fn build(self) -> xir::Network {
        self.net
    }
}

/// `lans` LANs of `per` nodes each (one router and `per - 1` hosts), routers joined in a ring.
pub fn lans_and_ring(lans: usize, per: usize) -> xir::Network {
    let mut b = Builder::new("campus");
    for l in 0..lans {
        b.node(&format!("r{l}"));
        let mut members = vec![format!("r{l}")];
        for h in 1..per {
            let id = format!("h{l}-{h}");
            b.node(&id);
            members.push(id);
        }
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        b.connect(&members).capacity = Some(xir::Uint64Constraint { op: EQ, value: 1_000_000_000 });
    }
    for l in 0..lans {
        let (a, c) = (format!("r{l}"), format!("r{}", (l + 1) % lans));
        b.connect(&[&a, &c]).latency = Some(xir::Uint64Constraint { op: EQ, value: 10_000_000 });
    }
    b.build()
}

/// A connected sparse graph of `n` nodes: a random tree plus `extra` random links
/// (a fixed linear congruential generator, so it is the same every time).
pub fn sparse(n: usize, extra: usize) -> xir::Network {
    let mut b = Builder::new("sparse");
    let ids: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    for id in &ids {
        b.node(id);
    }
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |bound: usize| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as usize) % bound
    };
    for i in 1..n {
        let j = next(i);
        b.connect(&[&ids[j], &ids[i]]);
    }
    for _ in 0..extra {
        let (i, j) = (next(n), next(n));
        if i != j {
            b.connect(&[&ids[i], &ids[j]]);
        }
    }
    b.build()
}

/// About a hundred nodes: four LANs of 16 behind routers, the routers in a random mesh with
/// 32 more nodes hanging off it.
pub fn mixed(lans: usize, per: usize, mesh: usize) -> xir::Network {
    let mut b = Builder::new("mixed");
    let mut state: u64 = 7;
    let mut next = |bound: usize| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as usize) % bound
    };
    let mut core: Vec<String> = Vec::new();
    for l in 0..lans {
        let router = format!("gw{l}");
        b.node(&router);
        let mut members = vec![router.clone()];
        for h in 0..per {
            let id = format!("lan{l}-host{h}");
            b.node(&id);
            members.push(id);
        }
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        b.connect(&members);
        core.push(router);
    }
    for m in 0..mesh {
        let id = format!("m{m}");
        b.node(&id);
        let peer = core[next(core.len())].clone();
        b.connect(&[&peer, &id]);
        core.push(id);
    }
    for l in 1..lans {
        b.connect(&[&format!("gw{}", l - 1), &format!("gw{l}")]);
    }
    b.build()
}

/// Awkward shapes for the benchmark: a chain, a grid, isolated nodes, one huge LAN, a dense mesh.
pub fn shapes() -> Vec<(&'static str, xir::Network)> {
    let named = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
    let mut out = Vec::new();

    let mut b = Builder::new("chain");
    let ids = named("c", 1000);
    for id in &ids {
        b.node(id);
    }
    for w in ids.windows(2) {
        b.connect(&[&w[0], &w[1]]);
    }
    out.push(("1000 nodes: a chain", b.build()));

    let mut b = Builder::new("grid");
    let id = |x: usize, y: usize| format!("g{x}-{y}");
    for y in 0..32 {
        for x in 0..32 {
            b.node(&id(x, y));
        }
    }
    for y in 0..32 {
        for x in 0..32 {
            if x < 31 {
                b.connect(&[&id(x, y), &id(x + 1, y)]);
            }
            if y < 31 {
                b.connect(&[&id(x, y), &id(x, y + 1)]);
            }
        }
    }
    out.push(("1024 nodes: a 32x32 grid", b.build()));

    let mut b = Builder::new("isolated");
    for id in &named("i", 1000) {
        b.node(id);
    }
    out.push(("1000 nodes: no links", b.build()));

    let mut b = Builder::new("one-lan");
    let ids = named("h", 1000);
    for id in &ids {
        b.node(id);
    }
    b.connect(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    out.push(("1000 nodes: one LAN", b.build()));

    let mut b = Builder::new("dense");
    let ids = named("d", 1000);
    for id in &ids {
        b.node(id);
    }
    let mut state: u64 = 99;
    for i in 0..1000 {
        for _ in 0..5 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let j = ((state >> 33) as usize) % 1000;
            if j != i {
                b.connect(&[&ids[i], &ids[j]]);
            }
        }
    }
    out.push(("1000 nodes: random, ~5000 links", b.build()));
    out
}
