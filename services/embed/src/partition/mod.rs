//! Graph partitioning: splits the experiment graph into parts of bounded weight (one per
//! rack) so that as little link weight as possible crosses parts.
//!
//! Multilevel recursive bisection (each bisection coarsens by heavy-edge matching, grows an
//! initial split and refines it with Fiduccia–Mattheyses while projecting back), followed by
//! greedy k-way refinement under the racks' capacities and the nodes' rack restrictions. The
//! whole is repeated from a few seeds and the smallest cut kept.

mod bisect;
mod graph;
mod kway;

pub use graph::Graph;
pub use kway::Allowed;

use crate::rng::Rng;

/// Extra weight a side of a bisection may take over its share, as a fraction of the share;
/// the rack capacities bound it in any case.
const BISECTION_SLACK: f64 = 0.03;
/// Greedy k-way passes after the recursive bisection.
const KWAY_PASSES: usize = 12;

/// Splits `g` into `caps.len()` parts, part `p` holding at most `caps[p]` vertex weight
/// (when the total allows) and only vertices `allowed` there (when some part allows them).
/// Returns each vertex's part.
pub fn partition(g: &Graph, caps: &[i64], allowed: &dyn Allowed, seed: u64, trials: usize) -> Vec<u32> {
    let k = caps.len();
    if k <= 1 || g.n() == 0 {
        return vec![0; g.n()];
    }
    let mut best: Option<(usize, i64, Vec<u32>)> = None;
    for trial in 0..trials.max(1) {
        let mut rng = Rng::new(seed.wrapping_add((trial as u64).wrapping_mul(0xA24B_AED4_963E_E407)));
        let mut part = vec![0u32; g.n()];
        let vertices: Vec<u32> = (0..g.n() as u32).collect();
        let mut scratch = vec![u32::MAX; g.n()];
        split(g, &vertices, 0, k, caps, &mut part, &mut scratch, &mut rng);
        kway::repair(g, &mut part, caps, allowed);
        kway::refine(g, &mut part, caps, allowed, &mut rng, KWAY_PASSES);
        kway::repair(g, &mut part, caps, allowed);
        let misplaced = misplaced(g, &part, caps, allowed);
        let cut = g.cut(&part);
        if best.as_ref().is_none_or(|(m, c, _)| (misplaced, cut) < (*m, *c)) {
            best = Some((misplaced, cut, part));
        }
    }
    best.map(|b| b.2).unwrap_or_else(|| vec![0; g.n()])
}

/// Vertices over their part's capacity or in a part they are not allowed in.
fn misplaced(g: &Graph, part: &[u32], caps: &[i64], allowed: &dyn Allowed) -> usize {
    let mut pw = vec![0i64; caps.len()];
    let mut bad = 0;
    for (v, &p) in part.iter().enumerate() {
        pw[p as usize] += g.vwgt[v];
        bad += usize::from(!allowed.allowed(v as u32, p));
    }
    bad + pw.iter().zip(caps).map(|(w, c)| (w - c).max(0) as usize).sum::<usize>()
}

/// Recursive bisection of `vertices` (numbered in `g`) into parts `lo..hi`.
#[allow(clippy::too_many_arguments)]
fn split(
    g: &Graph,
    vertices: &[u32],
    lo: usize,
    hi: usize,
    caps: &[i64],
    part: &mut [u32],
    scratch: &mut [u32],
    rng: &mut Rng,
) {
    if hi - lo == 1 || vertices.is_empty() {
        for &v in vertices {
            part[v as usize] = lo as u32;
        }
        return;
    }
    let mid = lo + (hi - lo) / 2;
    let c0: i64 = caps[lo..mid].iter().sum();
    let c1: i64 = caps[mid..hi].iter().sum();
    let sub = g.induce(vertices, scratch);
    let total = sub.total_weight();
    let share0 =
        if c0 + c1 > 0 { (total as f64 * c0 as f64 / (c0 + c1) as f64).round() as i64 } else { total / 2 };
    let target = [share0, total - share0];
    let slack = |t: i64| t + ((t as f64 * BISECTION_SLACK).ceil() as i64).max(1);
    let mut max = [slack(target[0]).min(c0), slack(target[1]).min(c1)];
    // When the racks cannot hold everything, let both sides overflow in proportion.
    if max[0] + max[1] < total {
        max = [slack(target[0]), slack(target[1])];
    }
    let max = [max[0].max(target[0]), max[1].max(target[1])];
    let side = bisect::bisect(&sub, &bisect::Targets { target, max }, rng);
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for (i, &v) in vertices.iter().enumerate() {
        if side[i] == 0 { left.push(v) } else { right.push(v) }
    }
    split(g, &left, lo, mid, caps, part, scratch, rng);
    split(g, &right, mid, hi, caps, part, scratch, rng);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of 8 cliques of 16 vertices, the cliques joined in a cycle: into 8 parts of 16
    /// the cut is the 8 ring edges.
    #[test]
    fn separates_a_ring_of_clusters() {
        let mut edges = Vec::new();
        for c in 0..8u32 {
            for a in 0..16 {
                for b in a + 1..16 {
                    edges.push((c * 16 + a, c * 16 + b, 1));
                }
            }
            edges.push((c * 16, ((c + 1) % 8) * 16 + 1, 1));
        }
        let g = Graph::from_edges(vec![1; 128], &edges);
        let part = partition(&g, &[16; 8], &|_: u32, _: u32| true, 1, 2);
        assert_eq!(g.cut(&part), 8);
        let mut sizes = [0; 8];
        part.iter().for_each(|&p| sizes[p as usize] += 1);
        assert_eq!(sizes, [16; 8]);
    }

    #[test]
    fn respects_restrictions_and_capacities() {
        // A path 0-1-2-3-4-5; vertex 0 may only be in part 1, capacities 3 and 3.
        let edges: Vec<(u32, u32, i64)> = (0..5).map(|i| (i, i + 1, 1)).collect();
        let g = Graph::from_edges(vec![1; 6], &edges);
        let allowed = |v: u32, p: u32| v != 0 || p == 1;
        let part = partition(&g, &[3, 3], &allowed, 3, 2);
        assert_eq!(part[0], 1);
        assert_eq!(part.iter().filter(|&&p| p == 1).count(), 3);
        assert_eq!(g.cut(&part), 1);
    }
}
