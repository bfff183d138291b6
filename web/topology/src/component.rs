//! Laying out one connected component: leaves set aside, stress layout of the rest, leaves put
//! back around their parents, overlaps pushed apart, and the whole turned to lie horizontally.

use std::f64::consts::TAU;

use crate::graph::Graph;
use crate::leaves::{self, Spacing};
use crate::{place, stress};

pub(crate) struct Params {
    /// Room each neighbour of a busy vertex needs on the circle around it.
    pub ring_spacing: f64,
    pub leaves: Spacing,
    /// Least space between the shapes of two vertices.
    pub gap: f64,
    /// Height a row of vertices needs beyond their centres when a long layout is folded.
    pub row: f64,
    /// Median distance to the nearest other vertex under which the core is scaled up.
    pub crowded: f64,
}

/// Positions of `component`'s vertices, in its order. `local` is scratch space, one entry per
/// vertex of `g`.
pub(crate) fn lay_out(
    g: &Graph,
    component: &[usize],
    radius: &dyn Fn(usize) -> f64,
    width: &dyn Fn(usize) -> f64,
    p: &Params,
    local: &mut [usize],
) -> Vec<[f64; 2]> {
    for (i, &v) in component.iter().enumerate() {
        local[v] = i;
    }
    let is_leaf = |v: usize| g.degree(v) == 1 && g.degree(g.neighbours(v)[0].0) >= 2;
    let mut leaves: Vec<Vec<usize>> = vec![Vec::new(); component.len()];
    let mut core = Vec::with_capacity(component.len());
    for &v in component {
        if is_leaf(v) {
            leaves[local[g.neighbours(v)[0].0]].push(v);
        } else {
            core.push(v);
        }
    }
    let core_degree = |v: usize| g.neighbours(v).iter().filter(|&&(w, _)| !is_leaf(w)).count();
    // The first ring of leaves sits at the leaves' own edge length.
    let first = |v: usize| g.neighbours(leaves[local[v]][0])[0].1;
    // Leaves far enough apart that their labels do not run into each other.
    let spacing = |v: usize| {
        let widest = leaves[local[v]].iter().map(|&l| width(l) + 6.0).fold(0.0, f64::max);
        Spacing { along: p.leaves.along.max(widest), across: p.leaves.across.max(widest) }
    };
    // How far a parent's leaves reach into the space its other edges cross.
    let flower = |v: usize| {
        let l = &leaves[local[v]];
        let (others, s) = (core_degree(v), spacing(v));
        if l.is_empty() || leaves::fan_out(l.len(), others, first(v), &s) {
            0.0
        } else {
            leaves::flower_radius(l.len(), others, first(v), &s) + radius(l[0])
        }
    };
    let reach: Vec<f64> = core.iter().map(|&v| flower(v)).collect();

    // The core, with edges long enough for busy vertices and for the leaves around both ends.
    let mut core_of = vec![usize::MAX; component.len()];
    for (c, &v) in core.iter().enumerate() {
        core_of[local[v]] = c;
    }
    let degrees: Vec<usize> = core.iter().map(|&v| core_degree(v)).collect();
    let mut start = Vec::with_capacity(core.len() + 1);
    let mut adj = Vec::new();
    start.push(0);
    for (c, &v) in core.iter().enumerate() {
        for &(w, len) in g.neighbours(v) {
            let d = core_of[local[w]];
            if d == usize::MAX {
                continue;
            }
            let busy = p.ring_spacing * degrees[c].max(degrees[d]) as f64 / TAU;
            adj.push((d, len.max(busy).max(reach[c] + reach[d] + 2.0 * p.gap)));
        }
        start.push(adj.len());
    }
    let mut core_pos = stress::layout(&start, &adj);
    place::spread(&mut core_pos, p.crowded);
    // Stress gives long distances little weight, so two parents' rings of leaves could overlap:
    // keep each ring's disc clear of the others before filling it.
    let discs: Vec<f64> = core.iter().zip(&reach).map(|(&v, &r)| r.max(radius(v))).collect();
    place::separate(&mut core_pos, &discs, p.gap);

    let mut pos = vec![[0.0; 2]; component.len()];
    for (&v, q) in core.iter().zip(&core_pos) {
        pos[local[v]] = *q;
    }
    for (c, &v) in core.iter().enumerate() {
        let l = &leaves[local[v]];
        if l.is_empty() {
            continue;
        }
        let at = core_pos[c];
        let others: Vec<f64> = adj[start[c]..start[c + 1]]
            .iter()
            .map(|&(d, _)| (core_pos[d][1] - at[1]).atan2(core_pos[d][0] - at[0]))
            .collect();
        for (&leaf, q) in l.iter().zip(leaves::place(at, &others, l.len(), first(v), &spacing(v))) {
            pos[local[leaf]] = q;
        }
    }
    let radii: Vec<f64> = component.iter().map(|&v| radius(v)).collect();
    place::separate(&mut pos, &radii, p.gap);
    let edges: Vec<(usize, usize)> = component
        .iter()
        .flat_map(|&v| g.neighbours(v).iter().filter(move |&&(w, _)| w > v).map(move |&(w, _)| (v, w)))
        .map(|(v, w)| (local[v], local[w]))
        .collect();
    place::level(&mut pos, &edges);
    if component.len() > 50 {
        place::fold(&mut pos, p.row);
        place::separate(&mut pos, &radii, p.gap);
    }
    pos
}
