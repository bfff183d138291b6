//! A weighted undirected graph in compressed adjacency form, and coarsening by heavy-edge
//! matching.

use crate::rng::Rng;

#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Vertex `v`'s neighbours are `adjncy[xadj[v]..xadj[v + 1]]`.
    pub xadj: Vec<u32>,
    pub adjncy: Vec<u32>,
    pub adjwgt: Vec<i64>,
    pub vwgt: Vec<i64>,
}

impl Graph {
    /// Builds a graph from undirected edges; parallel edges merge (weights add) and self
    /// loops are dropped.
    pub fn from_edges(vwgt: Vec<i64>, edges: &[(u32, u32, i64)]) -> Graph {
        let n = vwgt.len();
        let mut directed: Vec<(u32, u32, i64)> = Vec::with_capacity(edges.len() * 2);
        for &(a, b, w) in edges {
            if a != b {
                directed.push((a, b, w));
                directed.push((b, a, w));
            }
        }
        directed.sort_unstable_by_key(|&(a, b, _)| (a, b));
        let mut xadj = vec![0u32; n + 1];
        let mut adjncy = Vec::with_capacity(directed.len());
        let mut adjwgt: Vec<i64> = Vec::with_capacity(directed.len());
        let mut last: Option<(u32, u32)> = None;
        for (a, b, w) in directed {
            if last == Some((a, b)) {
                if let Some(x) = adjwgt.last_mut() {
                    *x += w;
                }
                continue;
            }
            last = Some((a, b));
            adjncy.push(b);
            adjwgt.push(w);
            xadj[a as usize + 1] += 1;
        }
        for v in 0..n {
            xadj[v + 1] += xadj[v];
        }
        Graph { xadj, adjncy, adjwgt, vwgt }
    }

    pub fn n(&self) -> usize {
        self.vwgt.len()
    }

    pub fn adj(&self, v: usize) -> (&[u32], &[i64]) {
        let (a, b) = (self.xadj[v] as usize, self.xadj[v + 1] as usize);
        (&self.adjncy[a..b], &self.adjwgt[a..b])
    }

    pub fn degree(&self, v: usize) -> usize {
        (self.xadj[v + 1] - self.xadj[v]) as usize
    }

    pub fn total_weight(&self) -> i64 {
        self.vwgt.iter().sum()
    }

    /// Total weight of edges whose ends are in different parts.
    pub fn cut(&self, part: &[u32]) -> i64 {
        let mut cut = 0;
        for v in 0..self.n() {
            let (adj, wgt) = self.adj(v);
            for (&u, &w) in adj.iter().zip(wgt) {
                if part[u as usize] != part[v] {
                    cut += w;
                }
            }
        }
        cut / 2
    }

    /// The subgraph on `vertices` (given in global numbering), numbered in their order.
    /// `local` is scratch of length `n()` filled with `u32::MAX`, and left that way.
    pub fn induce(&self, vertices: &[u32], local: &mut [u32]) -> Graph {
        for (i, &v) in vertices.iter().enumerate() {
            local[v as usize] = i as u32;
        }
        let mut xadj = Vec::with_capacity(vertices.len() + 1);
        xadj.push(0u32);
        let mut adjncy = Vec::new();
        let mut adjwgt = Vec::new();
        let mut vwgt = Vec::with_capacity(vertices.len());
        for &v in vertices {
            let (adj, wgt) = self.adj(v as usize);
            for (&u, &w) in adj.iter().zip(wgt) {
                let l = local[u as usize];
                if l != u32::MAX {
                    adjncy.push(l);
                    adjwgt.push(w);
                }
            }
            xadj.push(adjncy.len() as u32);
            vwgt.push(self.vwgt[v as usize]);
        }
        for &v in vertices {
            local[v as usize] = u32::MAX;
        }
        Graph { xadj, adjncy, adjwgt, vwgt }
    }
}

/// One level of coarsening: vertices are matched with the neighbour joined by the heaviest
/// edge (lowest-degree vertices choose first, so they are not left unmatched), and each pair
/// becomes one vertex. Returns the coarse graph and the fine-to-coarse map.
pub fn coarsen(g: &Graph, rng: &mut Rng, max_vwgt: i64) -> (Graph, Vec<u32>) {
    let n = g.n();
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    order.sort_by_key(|&v| g.degree(v as usize));
    let mut mate = vec![u32::MAX; n];
    for &v in &order {
        let v = v as usize;
        if mate[v] != u32::MAX {
            continue;
        }
        let mut best = v as u32;
        let mut best_w = i64::MIN;
        let (adj, wgt) = g.adj(v);
        for (&u, &w) in adj.iter().zip(wgt) {
            if mate[u as usize] == u32::MAX
                && u as usize != v
                && w > best_w
                && g.vwgt[v] + g.vwgt[u as usize] <= max_vwgt
            {
                best = u;
                best_w = w;
            }
        }
        mate[v] = best;
        mate[best as usize] = v as u32;
    }

    let mut cmap = vec![u32::MAX; n];
    let mut members: Vec<(u32, u32)> = Vec::with_capacity(n / 2 + 1);
    for v in 0..n {
        if cmap[v] == u32::MAX {
            let c = members.len() as u32;
            cmap[v] = c;
            cmap[mate[v] as usize] = c;
            members.push((v as u32, mate[v]));
        }
    }

    let nc = members.len();
    let mut xadj = Vec::with_capacity(nc + 1);
    xadj.push(0u32);
    let mut adjncy: Vec<u32> = Vec::with_capacity(g.adjncy.len());
    let mut adjwgt: Vec<i64> = Vec::with_capacity(g.adjncy.len());
    let mut vwgt = Vec::with_capacity(nc);
    // Position of coarse neighbour `c` in the list being built, or MAX.
    let mut slot = vec![u32::MAX; nc];
    for (c, &(a, b)) in members.iter().enumerate() {
        let start = adjncy.len();
        let mut weight = g.vwgt[a as usize];
        let fine: &[u32] = if a == b { &[a][..] } else { &[a, b][..] };
        if a != b {
            weight += g.vwgt[b as usize];
        }
        for &v in fine {
            let (adj, wgt) = g.adj(v as usize);
            for (&u, &w) in adj.iter().zip(wgt) {
                let cu = cmap[u as usize];
                if cu as usize == c {
                    continue;
                }
                let s = slot[cu as usize];
                if s == u32::MAX {
                    slot[cu as usize] = adjncy.len() as u32;
                    adjncy.push(cu);
                    adjwgt.push(w);
                } else {
                    adjwgt[s as usize] += w;
                }
            }
        }
        for &cu in &adjncy[start..] {
            slot[cu as usize] = u32::MAX;
        }
        xadj.push(adjncy.len() as u32);
        vwgt.push(weight);
    }
    (Graph { xadj, adjncy, adjwgt, vwgt }, cmap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_edges_merge_and_coarsening_keeps_weight() {
        let g = Graph::from_edges(vec![1; 4], &[(0, 1, 1), (1, 0, 2), (1, 2, 1), (2, 3, 5), (3, 3, 9)]);
        assert_eq!(g.adj(1).0, &[0, 2]);
        assert_eq!(g.adj(1).1, &[3, 1]);
        assert_eq!(g.adj(3).0, &[2]);
        let (c, cmap) = coarsen(&g, &mut Rng::new(1), 2);
        assert_eq!(c.total_weight(), 4);
        // The heavy edges 0-1 (3) and 2-3 (5) collapse; what is left is the light 1-2 edge.
        assert_eq!(c.n(), 2);
        assert_eq!(cmap[0], cmap[1]);
        assert_eq!(cmap[2], cmap[3]);
        assert_eq!(c.cut(&[0, 1]), 1);
    }
}
