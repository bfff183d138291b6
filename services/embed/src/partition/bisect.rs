//! Multilevel bisection: coarsen, split the coarsest graph by greedy region growing (best of
//! several starts), then project back level by level, refining with Fiduccia–Mattheyses.

use std::collections::BinaryHeap;

use super::graph::{Graph, coarsen};
use crate::rng::Rng;

/// Coarsening stops at about this many vertices.
const COARSEN_TO: usize = 64;
/// Region-growing starts tried on the coarsest graph.
const INITIAL_TRIES: usize = 8;
/// FM passes per level.
const FM_PASSES: usize = 8;

/// Desired and largest acceptable weight of each side.
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    pub target: [i64; 2],
    pub max: [i64; 2],
}

impl Targets {
    fn excess(&self, w: &[i64; 2]) -> i64 {
        (w[0] - self.max[0]).max(0) + (w[1] - self.max[1]).max(0)
    }

    /// How far from the targets, for breaking ties between equal cuts.
    fn imbalance(&self, w: &[i64; 2]) -> i64 {
        (w[0] - self.target[0]).abs()
    }
}

/// Splits `g` in two; returns each vertex's side (0 or 1).
pub fn bisect(g: &Graph, t: &Targets, rng: &mut Rng) -> Vec<u8> {
    let total = g.total_weight().max(1);
    let smaller = t.max[0].min(t.max[1]).max(1);
    let max_vwgt = ((total as f64 * 1.5 / COARSEN_TO as f64) as i64).min(smaller / 4).max(1);

    let mut levels: Vec<(Graph, Vec<u32>)> = Vec::new();
    loop {
        let current = levels.last().map_or(g, |(c, _)| c);
        if current.n() <= COARSEN_TO {
            break;
        }
        let (coarse, cmap) = coarsen(current, rng, max_vwgt);
        if coarse.n() * 20 > current.n() * 19 {
            break;
        }
        levels.push((coarse, cmap));
    }

    let coarsest = levels.last().map_or(g, |(c, _)| c);
    let mut best: Option<(i64, i64, Vec<u8>)> = None;
    for _ in 0..INITIAL_TRIES {
        let mut side = grow(coarsest, t, rng);
        refine(coarsest, &mut side, t, rng);
        let w = weights(coarsest, &side);
        let key = (t.excess(&w), coarsest.cut_sides(&side));
        if best.as_ref().is_none_or(|(e, c, _)| key < (*e, *c)) {
            best = Some((key.0, key.1, side));
        }
    }
    let mut side = best.map(|b| b.2).unwrap_or_else(|| vec![0; coarsest.n()]);

    for level in (0..levels.len()).rev() {
        let finer = if level == 0 { g } else { &levels[level - 1].0 };
        let cmap = &levels[level].1;
        side = cmap.iter().map(|&c| side[c as usize]).collect();
        refine(finer, &mut side, t, rng);
    }
    side
}

impl Graph {
    fn cut_sides(&self, side: &[u8]) -> i64 {
        let mut cut = 0;
        for v in 0..self.n() {
            let (adj, wgt) = self.adj(v);
            for (&u, &w) in adj.iter().zip(wgt) {
                if side[u as usize] != side[v] {
                    cut += w;
                }
            }
        }
        cut / 2
    }
}

fn weights(g: &Graph, side: &[u8]) -> [i64; 2] {
    let mut w = [0i64; 2];
    for (v, &s) in side.iter().enumerate() {
        w[s as usize] += g.vwgt[v];
    }
    w
}

/// Greedy graph growing: side 0 grows from a random vertex, always taking the frontier
/// vertex that adds the least cut, until it reaches its target weight.
fn grow(g: &Graph, t: &Targets, rng: &mut Rng) -> Vec<u8> {
    let n = g.n();
    let mut side = vec![1u8; n];
    if n == 0 {
        return side;
    }
    // Gain of moving v into side 0: edges to side 0 minus edges to side 1.
    let mut gain: Vec<i64> = (0..n).map(|v| -g.adj(v).1.iter().sum::<i64>()).collect();
    let mut rejected = vec![false; n];
    let mut heap: BinaryHeap<(i64, u32, u32)> = BinaryHeap::new();
    let mut w0 = 0i64;
    let start = rng.below(n);
    heap.push((gain[start], rng.next_u64() as u32, start as u32));
    let mut scan = rng.below(n);
    let mut scanned = 0;
    while w0 < t.target[0] {
        let v = loop {
            match heap.pop() {
                Some((gn, _, v))
                    if side[v as usize] == 1 && !rejected[v as usize] && gn == gain[v as usize] =>
                {
                    break Some(v as usize);
                }
                Some(_) => continue,
                None => {
                    // Disconnected: jump to a vertex not yet taken.
                    let mut found = None;
                    while scanned < n {
                        let v = scan % n;
                        scan += 1;
                        scanned += 1;
                        if side[v] == 1 && !rejected[v] {
                            found = Some(v);
                            break;
                        }
                    }
                    break found;
                }
            }
        };
        let Some(v) = v else { break };
        if w0 + g.vwgt[v] > t.max[0] {
            rejected[v] = true;
            continue;
        }
        side[v] = 0;
        w0 += g.vwgt[v];
        let (adj, wgt) = g.adj(v);
        for (&u, &w) in adj.iter().zip(wgt) {
            let u = u as usize;
            gain[u] += 2 * w;
            if side[u] == 1 && !rejected[u] {
                heap.push((gain[u], rng.next_u64() as u32, u as u32));
            }
        }
    }
    side
}

/// Fiduccia–Mattheyses refinement: repeatedly move the vertex with the best gain (even a
/// negative one, to climb out of local minima), then keep the best prefix of the moves.
pub fn refine(g: &Graph, side: &mut [u8], t: &Targets, rng: &mut Rng) {
    let n = g.n();
    if n < 2 {
        return;
    }
    let mut gain = vec![0i64; n];
    let mut ext = vec![0i64; n];
    for v in 0..n {
        let (adj, wgt) = g.adj(v);
        for (&u, &w) in adj.iter().zip(wgt) {
            if side[u as usize] != side[v] {
                ext[v] += w;
                gain[v] += w;
            } else {
                gain[v] -= w;
            }
        }
    }
    let mut w = weights(g, side);
    let mut cut: i64 = ext.iter().sum::<i64>() / 2;
    let limit = (n / 50).clamp(15, 100);
    let mut locked = vec![false; n];
    let mut moves: Vec<u32> = Vec::new();

    let apply = |v: usize, side: &mut [u8], gain: &mut [i64], ext: &mut [i64], w: &mut [i64; 2]| {
        let from = side[v] as usize;
        side[v] = 1 - side[v];
        w[from] -= g.vwgt[v];
        w[1 - from] += g.vwgt[v];
        gain[v] = -gain[v];
        let (adj, wgt) = g.adj(v);
        let mut own_ext = 0;
        for (&u, &wt) in adj.iter().zip(wgt) {
            let u = u as usize;
            if side[u] == side[v] {
                gain[u] -= 2 * wt;
                ext[u] -= wt;
            } else {
                gain[u] += 2 * wt;
                ext[u] += wt;
                own_ext += wt;
            }
        }
        ext[v] = own_ext;
    };

    for _ in 0..FM_PASSES {
        // Restore balance first, moving the cheapest vertices off an overweight side.
        for s in 0..2 {
            if w[s] <= t.max[s] {
                continue;
            }
            let mut heap: BinaryHeap<(i64, u32, u32)> = (0..n)
                .filter(|&v| side[v] as usize == s)
                .map(|v| (gain[v], rng.next_u64() as u32, v as u32))
                .collect();
            while w[s] > t.max[s] {
                let Some((gn, _, v)) = heap.pop() else { break };
                let v = v as usize;
                if side[v] as usize != s || gn != gain[v] {
                    continue;
                }
                if w[1 - s] + g.vwgt[v] > t.max[1 - s] && w[1 - s] >= t.target[1 - s] {
                    continue;
                }
                cut -= gain[v];
                apply(v, side, &mut gain, &mut ext, &mut w);
                let (adj, _) = g.adj(v);
                for &u in adj {
                    if side[u as usize] as usize == s {
                        heap.push((gain[u as usize], rng.next_u64() as u32, u));
                    }
                }
            }
        }

        locked.iter_mut().for_each(|l| *l = false);
        moves.clear();
        let mut heaps: [BinaryHeap<(i64, u32, u32)>; 2] = [BinaryHeap::new(), BinaryHeap::new()];
        for v in 0..n {
            if ext[v] > 0 {
                heaps[side[v] as usize].push((gain[v], rng.next_u64() as u32, v as u32));
            }
        }
        let start_cut = cut;
        let mut best_cut = cut;
        let mut best_len = 0;
        let mut best_imbalance = t.imbalance(&w);
        loop {
            let mut pick: Option<(usize, i64)> = None;
            for s in 0..2 {
                while let Some(&(gn, _, v)) = heaps[s].peek() {
                    let v = v as usize;
                    if locked[v] || side[v] as usize != s || gn != gain[v] {
                        heaps[s].pop();
                        continue;
                    }
                    break;
                }
                let Some(&(gn, _, v)) = heaps[s].peek() else { continue };
                if w[1 - s] + g.vwgt[v as usize] > t.max[1 - s] {
                    continue;
                }
                let better = match pick {
                    None => true,
                    Some((other, og)) => {
                        gn > og || (gn == og && w[s] - t.target[s] > w[other] - t.target[other])
                    }
                };
                if better {
                    pick = Some((s, gn));
                }
            }
            let Some((s, _)) = pick else { break };
            let Some((_, _, v)) = heaps[s].pop() else { break };
            let v = v as usize;
            cut -= gain[v];
            apply(v, side, &mut gain, &mut ext, &mut w);
            locked[v] = true;
            moves.push(v as u32);
            let (adj, _) = g.adj(v);
            for &u in adj {
                let u = u as usize;
                if !locked[u] {
                    heaps[side[u] as usize].push((gain[u], rng.next_u64() as u32, u as u32));
                }
            }
            let imbalance = t.imbalance(&w);
            if cut < best_cut || (cut == best_cut && imbalance < best_imbalance) {
                best_cut = cut;
                best_len = moves.len();
                best_imbalance = imbalance;
            } else if moves.len() - best_len > limit {
                break;
            }
        }
        for &v in moves[best_len..].iter().rev() {
            let v = v as usize;
            cut -= gain[v];
            apply(v, side, &mut gain, &mut ext, &mut w);
        }
        debug_assert_eq!(cut, best_cut);
        if best_len == 0 || best_cut == start_cut {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two 30-vertex cliques joined by one edge: the only good bisection cuts that edge.
    #[test]
    fn finds_the_bridge_between_two_clusters() {
        let mut edges = Vec::new();
        for base in [0u32, 30] {
            for a in 0..30 {
                for b in a + 1..30 {
                    if (a * 7 + b) % 3 != 0 {
                        edges.push((base + a, base + b, 1));
                    }
                }
            }
        }
        edges.push((5, 40, 1));
        let g = Graph::from_edges(vec![1; 60], &edges);
        let t = Targets { target: [30, 30], max: [31, 31] };
        let side = bisect(&g, &t, &mut Rng::new(7));
        assert_eq!(g.cut_sides(&side), 1);
        assert_eq!(side.iter().filter(|s| **s == 0).count(), 30);
    }
}
