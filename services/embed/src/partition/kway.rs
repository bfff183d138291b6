//! k-way refinement of a complete partition under per-part capacities and per-vertex part
//! restrictions.

use std::collections::BinaryHeap;

use super::graph::Graph;
use crate::rng::Rng;

/// Which parts each vertex may be in.
pub trait Allowed {
    fn allowed(&self, vertex: u32, part: u32) -> bool;
}

impl<F: Fn(u32, u32) -> bool> Allowed for F {
    fn allowed(&self, vertex: u32, part: u32) -> bool {
        self(vertex, part)
    }
}

struct Connectivity {
    weight: Vec<i64>,
    touched: Vec<u32>,
}

impl Connectivity {
    fn new(k: usize) -> Connectivity {
        Connectivity { weight: vec![0; k], touched: Vec::new() }
    }

    fn gather(&mut self, g: &Graph, part: &[u32], v: usize) {
        for &p in &self.touched {
            self.weight[p as usize] = 0;
        }
        self.touched.clear();
        let (adj, wgt) = g.adj(v);
        for (&u, &w) in adj.iter().zip(wgt) {
            let p = part[u as usize];
            if self.weight[p as usize] == 0 {
                self.touched.push(p);
            }
            self.weight[p as usize] += w;
        }
    }
}

/// `a/ca < b/cb`, for comparing how full two parts are.
fn fuller(a: i64, ca: i64, b: i64, cb: i64) -> bool {
    i128::from(a) * i128::from(cb.max(1)) > i128::from(b) * i128::from(ca.max(1))
}

/// Moves vertices out of parts that are over capacity or not allowed for them, to the
/// allowed part with room they are most connected to.
pub fn repair(g: &Graph, part: &mut [u32], caps: &[i64], allowed: &dyn Allowed) {
    let k = caps.len();
    let mut pw = vec![0i64; k];
    for (v, &p) in part.iter().enumerate() {
        pw[p as usize] += g.vwgt[v];
    }
    let mut conn = Connectivity::new(k);
    for v in 0..g.n() {
        let p = part[v] as usize;
        if allowed.allowed(v as u32, p as u32) {
            continue;
        }
        conn.gather(g, part, v);
        if let Some(q) = best_destination(g, &conn, &pw, caps, allowed, v, p) {
            pw[p] -= g.vwgt[v];
            pw[q] += g.vwgt[v];
            part[v] = q as u32;
        }
    }
    for p in 0..k {
        if pw[p] <= caps[p] {
            continue;
        }
        // Cheapest vertices first: the ones least connected to their own part.
        let mut heap: BinaryHeap<(i64, u32)> = BinaryHeap::new();
        for v in 0..g.n() {
            if part[v] as usize == p {
                conn.gather(g, part, v);
                let best_other =
                    conn.touched.iter().filter(|&&q| q as usize != p).map(|&q| conn.weight[q as usize]).max();
                heap.push((best_other.unwrap_or(0) - conn.weight[p], v as u32));
            }
        }
        while pw[p] > caps[p] {
            let Some((_, v)) = heap.pop() else { break };
            let v = v as usize;
            conn.gather(g, part, v);
            let Some(q) = best_destination(g, &conn, &pw, caps, allowed, v, p) else { continue };
            pw[p] -= g.vwgt[v];
            pw[q] += g.vwgt[v];
            part[v] = q as u32;
        }
    }
}

fn best_destination(
    g: &Graph,
    conn: &Connectivity,
    pw: &[i64],
    caps: &[i64],
    allowed: &dyn Allowed,
    v: usize,
    from: usize,
) -> Option<usize> {
    let mut best: Option<(i64, usize)> = None;
    for q in 0..caps.len() {
        if q == from || pw[q] + g.vwgt[v] > caps[q] || !allowed.allowed(v as u32, q as u32) {
            continue;
        }
        let c = conn.weight[q];
        let better = match best {
            None => true,
            Some((bc, bq)) => c > bc || (c == bc && fuller(pw[bq], caps[bq], pw[q], caps[q])),
        };
        if better {
            best = Some((c, q));
        }
    }
    best.map(|(_, q)| q)
}

/// Greedy boundary refinement: visit vertices in random order and move each to the
/// neighbouring part that lowers the cut most (or, at equal cut, evens out how full parts
/// are), while the part has room.
pub fn refine(
    g: &Graph,
    part: &mut [u32],
    caps: &[i64],
    allowed: &dyn Allowed,
    rng: &mut Rng,
    passes: usize,
) {
    let k = caps.len();
    let n = g.n();
    let mut pw = vec![0i64; k];
    for (v, &p) in part.iter().enumerate() {
        pw[p as usize] += g.vwgt[v];
    }
    let mut conn = Connectivity::new(k);
    let mut order: Vec<u32> = (0..n as u32).collect();
    for _ in 0..passes {
        rng.shuffle(&mut order);
        let mut moved = 0;
        for &v in &order {
            let v = v as usize;
            let p = part[v] as usize;
            let vw = g.vwgt[v];
            conn.gather(g, part, v);
            let own = conn.weight[p];
            let mut best: Option<(i64, usize)> = None;
            for &q in &conn.touched {
                let q = q as usize;
                if q == p || pw[q] + vw > caps[q] || !allowed.allowed(v as u32, q as u32) {
                    continue;
                }
                let gain = conn.weight[q] - own;
                let better = match best {
                    None => true,
                    Some((bg, bq)) => gain > bg || (gain == bg && fuller(pw[bq], caps[bq], pw[q], caps[q])),
                };
                if better {
                    best = Some((gain, q));
                }
            }
            let Some((gain, q)) = best else { continue };
            let evens_out = gain == 0 && fuller(pw[p], caps[p], pw[q] + vw, caps[q]);
            if gain > 0 || evens_out {
                pw[p] -= vw;
                pw[q] += vw;
                part[v] = q as u32;
                moved += 1;
            }
        }
        if moved == 0 {
            break;
        }
    }
}
