//! Shared builders for the engine's tests: small generated facilities and experiments
//! written the way `mergexp` writes them.

#![allow(dead_code)]

use trellis_api::xir;
use trellis_embed::check::{check_embedding, check_occupancy};
use trellis_embed::generate::{self, FacilitySpec};
use trellis_embed::{Diagnostic, Embedding, Occupancy, Options, Request, Testbed, Unrealizable, embed};

pub use trellis_embed::generate::{GBPS, GIB, MBPS};

/// `racks` racks of 4 hosts (types cycle 8/16/32/16 cores), 4 x 1 Gb/s ports per host.
pub fn small_spec(racks: u32) -> FacilitySpec {
    FacilitySpec::new("f1", racks, 4)
}

pub fn testbed(spec: &FacilitySpec) -> Testbed {
    Testbed::from_facilities(&[generate::facility(spec)]).unwrap()
}

/// An experiment under construction, built like `mergexp` builds one.
#[derive(Default)]
pub struct Net {
    pub network: xir::Network,
}

impl Net {
    pub fn new() -> Net {
        Net { network: xir::Network { id: "x".into(), ..Default::default() } }
    }

    pub fn node(&mut self, id: &str) -> &mut xir::Node {
        self.network.nodes.push(xir::Node { id: id.into(), ..Default::default() });
        self.network.nodes.last_mut().unwrap()
    }

    pub fn metal(&mut self, id: &str) -> &mut xir::Node {
        let node = self.node(id);
        node.metal = Some(xir::BoolConstraint { op: xir::Operator::Eq as i32, value: true });
        node
    }

    pub fn vm(&mut self, id: &str) -> &mut xir::Node {
        let node = self.node(id);
        node.virt = Some(xir::BoolConstraint { op: xir::Operator::Eq as i32, value: true });
        node
    }

    pub fn get(&mut self, id: &str) -> &mut xir::Node {
        self.network.nodes.iter_mut().find(|n| n.id == id).unwrap()
    }

    /// Connects `nodes` with one link (a LAN for more than two), a new socket on each.
    pub fn connect(&mut self, nodes: &[&str], capacity: Option<u64>) -> String {
        let mut ends = Vec::new();
        for id in nodes {
            let node = self.get(id);
            ends.push(((*id).to_string(), node.sockets.len() as u32));
            node.sockets.push(xir::Socket {
                index: node.sockets.len() as i32,
                port: Some(xir::PortSpec::default()),
                ..Default::default()
            });
        }
        let link_id: Vec<String> = ends.iter().map(|(n, s)| format!("{n}.{s}")).collect();
        let link_id = link_id.join("~");
        for (e, (id, socket)) in ends.iter().enumerate() {
            let node = self.get(id);
            node.sockets[*socket as usize].endpoint =
                Some(xir::Ref { element: link_id.clone(), index: e as u32, ..Default::default() });
        }
        self.network.links.push(xir::Link {
            id: link_id.clone(),
            capacity: capacity.map(|value| xir::Uint64Constraint { op: xir::Operator::Eq as i32, value }),
            endpoints: ends
                .iter()
                .enumerate()
                .map(|(e, (id, socket))| xir::Endpoint {
                    index: e as i32,
                    socket: Some(xir::Ref { element: id.clone(), index: *socket, ..Default::default() }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        link_id
    }

    pub fn request(&self) -> Request {
        Request::from_network(&self.network).unwrap()
    }
}

pub fn eq_u32(value: u32) -> Option<xir::Uint32Constraint> {
    Some(xir::Uint32Constraint { op: xir::Operator::Eq as i32, value })
}

pub fn op_u32(op: xir::Operator, value: u32) -> Option<xir::Uint32Constraint> {
    Some(xir::Uint32Constraint { op: op as i32, value })
}

pub fn op_u64(op: xir::Operator, value: u64) -> Option<xir::Uint64Constraint> {
    Some(xir::Uint64Constraint { op: op as i32, value })
}

pub fn eq_str(value: &str) -> Option<xir::StringConstraint> {
    Some(xir::StringConstraint { op: xir::Operator::Eq as i32, value: value.into() })
}

pub fn cores(op: xir::Operator, value: u32) -> Option<xir::ProcSpec> {
    Some(xir::ProcSpec { cores: op_u32(op, value), ..Default::default() })
}

pub fn memory(op: xir::Operator, value: u64) -> Option<xir::MemorySpec> {
    Some(xir::MemorySpec { capacity: op_u64(op, value), ..Default::default() })
}

/// Embeds and checks every invariant; panics with the diagnostics if it fails.
pub fn embed_ok(testbed: &Testbed, occupancy: &Occupancy, request: &Request, options: &Options) -> Embedding {
    let embedding = match embed(testbed, occupancy, request, options) {
        Ok(e) => e,
        Err(Unrealizable { diagnostics }) => panic!("unrealizable: {diagnostics:#?}"),
    };
    let violations = check_embedding(testbed, occupancy, request, &embedding, options);
    assert!(violations.is_empty(), "{violations:#?}");
    let mut after = occupancy.clone();
    for claim in &embedding.claims {
        after.add(claim);
    }
    let violations = check_occupancy(testbed, &after);
    assert!(violations.is_empty(), "{violations:#?}");
    embedding
}

/// Embeds expecting failure; returns the diagnostics.
pub fn embed_err(
    testbed: &Testbed,
    occupancy: &Occupancy,
    request: &Request,
    options: &Options,
) -> Vec<Diagnostic> {
    match embed(testbed, occupancy, request, options) {
        Ok(e) => panic!("embedded, expected a failure: {:#?}", e.nodes),
        Err(Unrealizable { diagnostics }) => {
            assert!(!diagnostics.is_empty());
            diagnostics
        }
    }
}

/// Asserts one diagnostic about `element` for `constraint` whose message contains `text`.
pub fn expect(diagnostics: &[Diagnostic], element: &str, constraint: &str, text: &str) -> Diagnostic {
    let found = diagnostics.iter().find(|d| {
        d.element.as_deref() == Some(element)
            && d.constraint.as_deref() == Some(constraint)
            && d.message.contains(text)
    });
    match found {
        Some(d) => d.clone(),
        None => panic!("no diagnostic for {element} / {constraint} containing {text:?} in {diagnostics:#?}"),
    }
}

/// Asserts a diagnostic about the experiment as a whole.
pub fn expect_overall(diagnostics: &[Diagnostic], constraint: &str, text: &str) -> Diagnostic {
    let found = diagnostics.iter().find(|d| {
        d.element.is_none() && d.constraint.as_deref() == Some(constraint) && d.message.contains(text)
    });
    match found {
        Some(d) => d.clone(),
        None => panic!("no overall diagnostic for {constraint} containing {text:?} in {diagnostics:#?}"),
    }
}

pub fn host_name<'a>(testbed: &'a Testbed, embedding: &Embedding, node: &str) -> &'a str {
    let placement = embedding.nodes.iter().find(|n| n.node == node).unwrap();
    &testbed.host(placement.host).name
}

pub fn add_claims(occupancy: &mut Occupancy, embedding: &Embedding) {
    for claim in &embedding.claims {
        occupancy.add(claim);
    }
}
