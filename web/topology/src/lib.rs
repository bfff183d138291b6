//! Topology diagrams of experiment models.
//!
//! [`svg`] draws a compiled XIR network as one standalone SVG document: nodes as circles
//! (bare-metal nodes as rounded squares) with their names, point-to-point links as lines, and
//! LANs (links with more than two endpoints) as a small hub joined to each member. Every node,
//! link and LAN carries a `<title>` listing its constraints, which browsers show on hover.
//!
//! The layout ([`layout`]) is deterministic (same network, same bytes) and scales to thousands
//! of nodes. Per connected component (`component.rs`): nodes with a single neighbour are set
//! aside (`leaves.rs`); the rest gets stress majorization, exact for up to 300 vertices and the
//! sparse pivot model beyond (`stress.rs`); the leaves go back as fans or rings around their
//! neighbour; overlaps are pushed apart on a grid, the component is turned to lie flat and, if
//! very long, folded into rows (`place.rs`). Components are then packed side by side.
//! There are no errors: any network, however broken, gets a drawing (links naming missing
//! nodes are left out), so the crate has no error type.

mod component;
mod constraints;
mod graph;
mod leaves;
mod place;
mod render;
mod stress;

use trellis_api::xir;

pub use constraints::{link_constraints, node_constraints, operator};
pub use render::render;

/// Radius of a node's circle (half the side of a bare-metal node's square).
pub const NODE_RADIUS: f64 = 10.0;
/// Half the side of a LAN hub's square.
pub const HUB_RADIUS: f64 = 7.0;
/// Models with more nodes than this are drawn without name labels (names stay in the titles).
pub const LABEL_MAX_NODES: usize = 150;
/// Font size of node labels.
pub const LABEL_FONT: f64 = 11.0;
/// Labels longer than this are cut, with an ellipsis.
pub const LABEL_MAX_CHARS: usize = 20;
/// Space around the drawing.
const MARGIN: f64 = 20.0;
/// Space between packed components.
const COMPONENT_GAP: f64 = 40.0;

/// A point in SVG user units; the drawing spans `(0, 0)` to `(width, height)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// How one of the network's links is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkShape {
    /// Two endpoints on nodes `a` and `b` (indices into `network.nodes`); a loop if equal.
    Pair { a: usize, b: usize },
    /// More than two endpoints: `Layout::lans[lan]`.
    Lan { lan: usize },
    /// Fewer than two endpoints, or a point-to-point link naming a node that does not exist:
    /// not drawn.
    Unattached,
}

/// A LAN hub and the nodes it joins.
#[derive(Debug, Clone, PartialEq)]
pub struct Lan {
    /// Index into `network.links`.
    pub link: usize,
    pub at: Point,
    /// Indices into `network.nodes`, each once, in endpoint order.
    pub members: Vec<usize>,
}

/// Where everything goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Centre of each of `network.nodes`, same order.
    pub nodes: Vec<Point>,
    /// One per entry of `network.links`, same order.
    pub links: Vec<LinkShape>,
    pub lans: Vec<Lan>,
    /// Whether node names are drawn under the nodes (see [`LABEL_MAX_NODES`]).
    pub labels: bool,
    /// Size of the drawing, margins, shapes and labels included.
    pub width: f64,
    pub height: f64,
}

/// Draws `network` as a standalone SVG document.
pub fn svg(network: &xir::Network) -> String {
    render(network, &layout(network))
}

/// The label drawn for a node: its name, cut to [`LABEL_MAX_CHARS`].
pub fn label(id: &str) -> String {
    if id.chars().count() <= LABEL_MAX_CHARS {
        id.to_string()
    } else {
        let mut cut: String = id.chars().take(LABEL_MAX_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// The box `[left, top, right, bottom]` a node's shape and label take, relative to its centre.
/// The label width is an estimate (0.62 em per character, wider than most sans-serif text).
pub fn node_extent(id: &str, labels: bool) -> [f64; 4] {
    if !labels {
        return [-NODE_RADIUS, -NODE_RADIUS, NODE_RADIUS, NODE_RADIUS];
    }
    let half = (label(id).chars().count() as f64 * 0.62 * LABEL_FONT / 2.0).max(NODE_RADIUS);
    [-half, -NODE_RADIUS, half, NODE_RADIUS + 4.0 + LABEL_FONT * 1.2]
}

/// Lays `network` out.
pub fn layout(network: &xir::Network) -> Layout {
    let labels = network.nodes.len() <= LABEL_MAX_NODES;
    let lengths =
        graph::Lengths { link: if labels { 90.0 } else { 60.0 }, spoke: if labels { 60.0 } else { 40.0 } };
    let params = component::Params {
        ring_spacing: 2.0 * NODE_RADIUS + if labels { 26.0 } else { 10.0 },
        leaves: leaves::Spacing {
            along: 2.0 * NODE_RADIUS + if labels { 30.0 } else { 8.0 },
            across: 2.0 * NODE_RADIUS + if labels { 24.0 } else { 8.0 },
        },
        gap: if labels { 16.0 } else { 6.0 },
        crowded: 2.0 * NODE_RADIUS + if labels { 40.0 } else { 20.0 },
        row: 2.0 * NODE_RADIUS + if labels { 2.0 * LABEL_FONT + 40.0 } else { 50.0 },
    };
    let g = graph::Graph::build(network, &lengths);
    let n = g.vertices();
    let radius = |v: usize| if v < g.nodes { NODE_RADIUS } else { HUB_RADIUS };
    let extent = |v: usize| {
        if v < g.nodes {
            node_extent(&network.nodes[v].id, labels)
        } else {
            [-HUB_RADIUS, -HUB_RADIUS, HUB_RADIUS, HUB_RADIUS]
        }
    };

    let width = |v: usize| {
        let e = extent(v);
        e[2] - e[0]
    };
    let components = g.components();
    let mut pos = vec![[0.0; 2]; n];
    let mut local = vec![0usize; n];
    let mut sizes = Vec::with_capacity(components.len());
    for component in &components {
        let p = component::lay_out(&g, component, &radius, &width, &params, &mut local);
        // Move the component's box (shapes and labels included) to the origin.
        let mut min = [f64::INFINITY; 2];
        let mut max = [f64::NEG_INFINITY; 2];
        for (&v, q) in component.iter().zip(&p) {
            let e = extent(v);
            min = [min[0].min(q[0] + e[0]), min[1].min(q[1] + e[1])];
            max = [max[0].max(q[0] + e[2]), max[1].max(q[1] + e[3])];
        }
        for (&v, q) in component.iter().zip(&p) {
            pos[v] = [q[0] - min[0], q[1] - min[1]];
        }
        sizes.push([max[0] - min[0], max[1] - min[1]]);
    }
    let (corners, size) = place::pack(&sizes, COMPONENT_GAP);
    for (component, corner) in components.iter().zip(&corners) {
        for &v in component {
            pos[v] = [pos[v][0] + corner[0] + MARGIN, pos[v][1] + corner[1] + MARGIN];
        }
    }
    let point = |v: usize| Point { x: pos[v][0], y: pos[v][1] };
    let lans = g
        .links
        .iter()
        .enumerate()
        .filter_map(|(link, shape)| match shape {
            LinkShape::Lan { lan } => {
                Some(Lan { link, at: point(g.nodes + lan), members: g.lan_members[*lan].clone() })
            }
            _ => None,
        })
        .collect();
    Layout {
        nodes: (0..g.nodes).map(point).collect(),
        links: g.links,
        lans,
        labels,
        width: size[0] + 2.0 * MARGIN,
        height: size[1] + 2.0 * MARGIN,
    }
}
