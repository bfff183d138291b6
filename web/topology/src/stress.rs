//! Stress layout of one connected component.
//!
//! Small components get full stress majorization (every pair of vertices pulls towards its
//! graph distance). Large ones use the sparse stress model of Ortmann, Klimenta and Brandes
//! ("A Sparse Stress Model", JGAA 2017): each vertex keeps exact terms to its neighbours and
//! weighted terms to k pivots standing in for the rest, so one iteration costs O(n·(deg + k))
//! instead of O(n²). Both start from pivot MDS (Brandes and Pich, 2006), which already has the
//! right global shape, so a bounded number of iterations suffices.
//! Everything is deterministic: no randomness beyond a fixed hash, fixed iteration order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Up to this many vertices every vertex is a pivot, which is exact stress.
const FULL_MAX: usize = 300;
/// Pivots of the sparse model for larger components.
const PIVOTS: usize = 50;
/// Pivots used for the MDS starting layout; more adds cost, not shape.
const MDS_PIVOTS: usize = 40;
const MAX_ITERATIONS_FULL: usize = 300;
const MAX_ITERATIONS_SPARSE: usize = 120;
/// Stop once vertices move less than this (RMS, in pixels) in one sweep.
const TOLERANCE: f64 = 0.05;

/// Positions for the component given by `start`/`adj` (local indices, see `Graph`).
pub(crate) fn layout(start: &[usize], adj: &[(usize, f64)]) -> Vec<[f64; 2]> {
    let n = start.len() - 1;
    match n {
        0 => return Vec::new(),
        1 => return vec![[0.0, 0.0]],
        2 => return vec![[0.0, 0.0], [adj.first().map_or(1.0, |a| a.1), 0.0]],
        _ => {}
    }
    let neighbours = |v: usize| &adj[start[v]..start[v + 1]];
    let k = if n <= FULL_MAX { n } else { PIVOTS };
    let (pivots, dist) = pivots(n, k, start, adj);

    let mut pos = pivot_mds(n, &dist[..n * k.min(MDS_PIVOTS)], k.min(MDS_PIVOTS));
    let mean_edge = adj.iter().map(|a| a.1).sum::<f64>() / adj.len().max(1) as f64;
    // MDS puts vertices it cannot tell apart (the leaves of a star) on one point; stress needs
    // them apart to find a direction.
    for (i, p) in pos.iter_mut().enumerate() {
        let h = mix(i as u64);
        let angle = (h >> 11) as f64 / (1u64 << 53) as f64 * std::f64::consts::TAU;
        p[0] += 0.05 * mean_edge * angle.cos();
        p[1] += 0.05 * mean_edge * angle.sin();
    }

    let terms = terms(n, k, &pivots, &dist, &neighbours);
    scale_to_fit(&mut pos, &terms);
    let max_iterations = if k == n { MAX_ITERATIONS_FULL } else { MAX_ITERATIONS_SPARSE };
    majorize(&mut pos, &terms, max_iterations);
    pos
}

/// Per-vertex terms `(other, wanted distance, weight)` in compressed form.
struct Terms {
    start: Vec<usize>,
    list: Vec<(usize, f64, f64)>,
}

/// Max-min pivots (each the vertex farthest from those chosen so far, starting from the busiest
/// vertex) and their shortest-path distances: row `p` of `dist` is pivot `p`'s.
fn pivots(n: usize, k: usize, start: &[usize], adj: &[(usize, f64)]) -> (Vec<usize>, Vec<f64>) {
    let mut pivots = Vec::with_capacity(k);
    let mut dist = vec![f64::INFINITY; n * k];
    let mut nearest = vec![f64::INFINITY; n];
    let mut heap = BinaryHeap::new();
    let mut next = (0..n).max_by_key(|&v| (start[v + 1] - start[v], std::cmp::Reverse(v))).unwrap_or(0);
    for p in 0..k {
        pivots.push(next);
        let row = &mut dist[p * n..(p + 1) * n];
        dijkstra(start, adj, next, row, &mut heap);
        let mut best = (f64::NEG_INFINITY, 0);
        for (v, (near, &d)) in nearest.iter_mut().zip(row.iter()).enumerate() {
            *near = near.min(d);
            if *near > best.0 {
                best = (*near, v);
            }
        }
        next = best.1;
    }
    (pivots, dist)
}

#[derive(PartialEq)]
struct Entry(f64, usize);

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and Dijkstra wants the nearest first.
        other.0.total_cmp(&self.0).then_with(|| other.1.cmp(&self.1))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn dijkstra(
    start: &[usize],
    adj: &[(usize, f64)],
    source: usize,
    dist: &mut [f64],
    heap: &mut BinaryHeap<Entry>,
) {
    dist[source] = 0.0;
    heap.push(Entry(0.0, source));
    while let Some(Entry(d, v)) = heap.pop() {
        if d > dist[v] {
            continue;
        }
        for &(w, len) in &adj[start[v]..start[v + 1]] {
            let nd = d + len;
            if nd < dist[w] {
                dist[w] = nd;
                heap.push(Entry(nd, w));
            }
        }
    }
}

/// Pivot MDS: classical scaling of the n×m matrix of squared distances to the first m pivots.
fn pivot_mds(n: usize, dist: &[f64], m: usize) -> Vec<[f64; 2]> {
    // b[i * m + j]: double-centred squared distance from vertex i to pivot j.
    let mut b = vec![0.0; n * m];
    for j in 0..m {
        for i in 0..n {
            let d = dist[j * n + i];
            b[i * m + j] = d * d;
        }
    }
    let mut col = vec![0.0; m];
    let mut row = vec![0.0; n];
    for i in 0..n {
        for j in 0..m {
            col[j] += b[i * m + j];
            row[i] += b[i * m + j];
        }
    }
    let grand = row.iter().sum::<f64>() / (n * m) as f64;
    col.iter_mut().for_each(|c| *c /= n as f64);
    row.iter_mut().for_each(|r| *r /= m as f64);
    for i in 0..n {
        for j in 0..m {
            b[i * m + j] = -0.5 * (b[i * m + j] - row[i] - col[j] + grand);
        }
    }
    // The two leading eigenvectors of BᵀB (m×m) by power iteration.
    let mut btb = vec![0.0; m * m];
    for i in 0..n {
        let r = &b[i * m..(i + 1) * m];
        for x in 0..m {
            for y in x..m {
                btb[x * m + y] += r[x] * r[y];
            }
        }
    }
    for x in 0..m {
        for y in 0..x {
            btb[x * m + y] = btb[y * m + x];
        }
    }
    let first = power_iteration(&btb, m, None, 1);
    let second = power_iteration(&btb, m, Some(&first), 2);
    (0..n)
        .map(|i| {
            let r = &b[i * m..(i + 1) * m];
            [dot(r, &first), dot(r, &second)]
        })
        .collect()
}

fn power_iteration(a: &[f64], m: usize, orthogonal_to: Option<&[f64]>, seed: u64) -> Vec<f64> {
    let mut v: Vec<f64> =
        (0..m).map(|j| (mix(seed * 7919 + j as u64) >> 11) as f64 / (1u64 << 53) as f64 - 0.5).collect();
    let mut next = vec![0.0; m];
    let orthogonalize = |v: &mut Vec<f64>| {
        if let Some(u) = orthogonal_to {
            let d = dot(v, u);
            v.iter_mut().zip(u).for_each(|(x, y)| *x -= d * y);
        }
        let norm = dot(v, v).sqrt();
        if norm > 1e-300 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        norm > 1e-300
    };
    if !orthogonalize(&mut v) {
        return v;
    }
    for _ in 0..200 {
        for (x, out) in next.iter_mut().enumerate() {
            *out = dot(&a[x * m..(x + 1) * m], &v);
        }
        if !orthogonalize(&mut next) {
            break;
        }
        let change: f64 = next.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum();
        std::mem::swap(&mut v, &mut next);
        if change < 1e-14 {
            break;
        }
    }
    let norm = dot(&v, &v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A fixed 64-bit mixer (splitmix64's finaliser): reproducible "random" numbers.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Builds each vertex's terms: neighbours exactly, every pivot that is not a neighbour weighted
/// by how many vertices of its region it stands for (with every vertex a pivot that weight is
/// 1 and this is full stress).
fn terms<'a>(
    n: usize,
    k: usize,
    pivots: &[usize],
    dist: &[f64],
    neighbours: &dyn Fn(usize) -> &'a [(usize, f64)],
) -> Terms {
    let full = k == n;
    // Distances from each pivot to the vertices of its region (those nearest to it), sorted.
    let mut region: Vec<Vec<f64>> = vec![Vec::new(); k];
    if !full {
        for v in 0..n {
            let mut best = 0;
            for p in 1..k {
                if dist[p * n + v] < dist[best * n + v] {
                    best = p;
                }
            }
            region[best].push(dist[best * n + v]);
        }
        region.iter_mut().for_each(|r| r.sort_unstable_by(f64::total_cmp));
    }
    let mut mark = vec![usize::MAX; n];
    let mut start = Vec::with_capacity(n + 1);
    let mut list = Vec::with_capacity(n * (k + 4));
    start.push(0);
    for v in 0..n {
        for &(w, d) in neighbours(v) {
            mark[w] = v;
            let d = d.max(1e-6);
            list.push((w, d, 1.0 / (d * d)));
        }
        for (p, &pivot) in pivots.iter().enumerate() {
            if pivot == v || mark[pivot] == v {
                continue;
            }
            let d = dist[p * n + v].max(1e-6);
            let s = if full { 1.0 } else { region[p].partition_point(|&x| x <= d / 2.0).max(1) as f64 };
            list.push((pivot, d, s / (d * d)));
        }
        start.push(list.len());
    }
    Terms { start, list }
}

/// Scales the starting layout by the factor that minimises its stress.
fn scale_to_fit(pos: &mut [[f64; 2]], terms: &Terms) {
    let (mut num, mut den) = (0.0, 0.0);
    for (v, p) in pos.iter().enumerate() {
        for &(w, d, weight) in &terms.list[terms.start[v]..terms.start[v + 1]] {
            let q = pos[w];
            let l = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt();
            num += weight * d * l;
            den += weight * l * l;
        }
    }
    if den > 0.0 && num > 0.0 {
        let s = num / den;
        pos.iter_mut().for_each(|p| {
            p[0] *= s;
            p[1] *= s;
        });
    }
}

/// Localized stress majorization, one vertex at a time in index order.
fn majorize(pos: &mut [[f64; 2]], terms: &Terms, max_iterations: usize) {
    let n = pos.len();
    for _ in 0..max_iterations {
        let mut moved = 0.0;
        for v in 0..n {
            let [x, y] = pos[v];
            let (mut sx, mut sy, mut sw) = (0.0, 0.0, 0.0);
            for &(w, d, weight) in &terms.list[terms.start[v]..terms.start[v + 1]] {
                let [qx, qy] = pos[w];
                let (dx, dy) = (x - qx, y - qy);
                let l = (dx * dx + dy * dy).sqrt();
                if l > 1e-9 {
                    sx += weight * (qx + d * dx / l);
                    sy += weight * (qy + d * dy / l);
                } else {
                    sx += weight * qx;
                    sy += weight * qy;
                }
                sw += weight;
            }
            if sw > 0.0 {
                let next = [sx / sw, sy / sw];
                moved += (next[0] - x).powi(2) + (next[1] - y).powi(2);
                pos[v] = next;
            }
        }
        if (moved / n as f64).sqrt() < TOLERANCE {
            break;
        }
    }
}
