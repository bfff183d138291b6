//! Vertices with a single neighbour (hosts on a LAN, stub nodes on a router) are left out of the
//! stress layout and put around their neighbour afterwards.
//!
//! Stress cannot tell such leaves apart (they all want the same distances to everything), and
//! the sparse model has nothing pushing them off one another, so they end up in a clump. Placed
//! directly they form a fan in the widest free angle around their parent, or, when there are
//! many, concentric rings with corridors left open towards the parent's other neighbours.
//! The core layout is told how much room each parent's leaves take (`flower_radius`).

use std::f64::consts::{PI, TAU};

/// How leaves are spaced.
pub(crate) struct Spacing {
    /// Distance between neighbouring leaves on one ring.
    pub along: f64,
    /// Distance between rings.
    pub across: f64,
}

/// How far from their parent `leaves` leaves reach when the parent has `others` other
/// neighbours, starting at radius `first` (the leaves' edge length).
pub(crate) fn flower_radius(leaves: usize, others: usize, first: f64, s: &Spacing) -> f64 {
    let inner = inner_ring(leaves, others, first, s);
    let mut left = leaves;
    let mut ring = 0;
    loop {
        let r = inner + ring as f64 * s.across;
        // Each other neighbour's corridor costs at most two slots.
        left = left.saturating_sub(slots(r, s).saturating_sub(2 * others).max(1));
        if left == 0 {
            return r;
        }
        ring += 1;
    }
}

/// Whether `leaves` leaves probably fan out on one side of their parent (rather than ringing it)
/// when it has `others` other neighbours: then the parent's other edges need no extra length.
pub(crate) fn fan_out(leaves: usize, others: usize, first: f64, s: &Spacing) -> bool {
    // With `others` neighbours spread evenly, the widest gap is TAU / others.
    let step = if others == 0 { TAU / leaves as f64 } else { TAU / others as f64 / (leaves + 1) as f64 };
    leaves == 1 || step * first >= s.along
}

/// Radius of the innermost ring: one ring wide enough for all leaves if that is not much wider
/// than the first ring (a nearly empty second ring looks like a mistake), else the first ring.
fn inner_ring(leaves: usize, others: usize, first: f64, s: &Spacing) -> f64 {
    // Two slots of room per corridor and one spare, so rounding down still leaves enough.
    let one = (leaves + 2 * others + 1) as f64 * s.along / TAU;
    if one <= first + 1.5 * s.across { one.max(first) } else { first }
}

fn slots(r: f64, s: &Spacing) -> usize {
    ((TAU * r / s.along) as usize).max(1)
}

/// Positions of `count` leaves around `parent`, whose other neighbours lie in the directions
/// `others` (angles in radians). Never more rings than `flower_radius` planned for.
pub(crate) fn place(
    parent: [f64; 2],
    others: &[f64],
    count: usize,
    first: f64,
    s: &Spacing,
) -> Vec<[f64; 2]> {
    let mut others: Vec<f64> = others.iter().map(|a| a.rem_euclid(TAU)).collect();
    others.sort_by(f64::total_cmp);
    // The widest free angle: its middle and width.
    let (middle, width) = match others.len() {
        0 => (0.0, TAU),
        n => (0..n)
            .map(|i| {
                let (a, b) = (others[i], if i + 1 < n { others[i + 1] } else { others[0] + TAU });
                ((a + b) / 2.0, b - a)
            })
            .fold((0.0, f64::NEG_INFINITY), |best, gap| if gap.1 > best.1 + 1e-9 { gap } else { best }),
    };
    let at = |r: f64, angle: f64| [parent[0] + r * angle.cos(), parent[1] + r * angle.sin()];

    // Few enough to fan out evenly in the widest gap, at least `along` apart.
    let step = if others.is_empty() { TAU / count as f64 } else { width / (count + 1) as f64 };
    if step * first >= s.along || count == 1 {
        return (0..count)
            .map(|i| at(first, middle + (i as f64 - (count - 1) as f64 / 2.0) * step))
            .collect();
    }

    // Rings of slots, skipping slots in the way of the edges to other neighbours; each ring
    // fills from the middle of the widest gap outwards, then is read around in angle order.
    let inner = inner_ring(count, others.len(), first, s);
    let mut out = Vec::with_capacity(count);
    let mut ring = 0;
    while out.len() < count {
        let r = inner + ring as f64 * s.across;
        let n = slots(r, s);
        let slot = TAU / n as f64;
        let clear = |angle: f64| {
            others.iter().all(|&o| {
                let d = (angle - o).rem_euclid(TAU);
                d.min(TAU - d) >= 0.75 * slot
            })
        };
        let mut free: Vec<f64> = (0..n).map(|i| middle + i as f64 * slot).filter(|&a| clear(a)).collect();
        if free.is_empty() {
            free.push(middle);
        }
        // Distance from the gap's middle, so a partly filled ring is filled on the free side.
        let off_middle = |a: f64| {
            let d = (a - middle).rem_euclid(TAU);
            d.min(TAU - d)
        };
        free.sort_by(|a, b| off_middle(*a).total_cmp(&off_middle(*b)));
        free.truncate(count - out.len());
        // Around the circle starting opposite the gap, so consecutive leaves are neighbours.
        free.sort_by(|a, b| (a - middle - PI).rem_euclid(TAU).total_cmp(&(b - middle - PI).rem_euclid(TAU)));
        // Odd rings shift half a slot, so edges to the outer ring pass between inner leaves.
        let shift = if ring % 2 == 1 { slot / 2.0 } else { 0.0 };
        out.extend(free.into_iter().map(|a| at(r, a + shift)));
        ring += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Spacing = Spacing { along: 30.0, across: 30.0 };

    fn distinct(points: &[[f64; 2]], min: f64) -> bool {
        points.iter().enumerate().all(|(i, p)| {
            points[i + 1..].iter().all(|q| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt() >= min)
        })
    }

    #[test]
    fn two_leaves_of_a_lone_parent_make_a_straight_line() {
        let p = place([0.0, 0.0], &[], 2, 50.0, &S);
        assert!((p[0][0] + p[1][0]).abs() < 1e-9 && (p[0][1] + p[1][1]).abs() < 1e-9, "{p:?}");
        assert!((p[0][0].hypot(p[0][1]) - 50.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn one_leaf_goes_opposite_the_other_neighbour() {
        let p = place([0.0, 0.0], &[0.0], 1, 50.0, &S);
        assert!((p[0][0] + 50.0).abs() < 1e-9 && p[0][1].abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn a_few_more_than_fit_widen_the_ring_rather_than_start_another() {
        let p = place([0.0, 0.0], &[], 12, 90.0, &Spacing { along: 50.0, across: 50.0 });
        let radii: Vec<f64> = p.iter().map(|q| (q[0] * q[0] + q[1] * q[1]).sqrt()).collect();
        assert!(radii.iter().all(|r| (r - radii[0]).abs() < 1e-6), "{radii:?}");
        assert!(distinct(&p, 45.0));
    }

    #[test]
    fn many_leaves_fit_in_the_planned_radius_and_do_not_touch() {
        for (count, others) in
            [(100, vec![]), (99, vec![1.0]), (300, vec![0.0, 2.0, 4.0]), (7, vec![0.0, 0.1])]
        {
            let radius = flower_radius(count, others.len(), 40.0, &S);
            let p = place([5.0, 5.0], &others, count, 40.0, &S);
            assert_eq!(p.len(), count);
            let far =
                p.iter().map(|q| ((q[0] - 5.0).powi(2) + (q[1] - 5.0).powi(2)).sqrt()).fold(0.0, f64::max);
            assert!(far <= radius + 1e-6, "{count}: {far} > {radius}");
            assert!(distinct(&p, 20.0), "{count} leaves overlap");
        }
    }
}
