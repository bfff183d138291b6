//! After the stress layout: pushing overlapping shapes apart, turning each component so it is
//! wider than tall, and packing components side by side.

use crate::stress::mix;

/// Sweeps over overlapping pairs before giving up (each sweep is O(n) with the grid).
const MAX_SWEEPS: usize = 200;

/// Moves vertices until every pair is at least `radius[i] + radius[j] + gap` apart.
///
/// Only nearby pairs are compared: vertices are bucketed into a grid whose cells are as wide as
/// the largest such distance, so a sweep looks at the 3×3 cells around each vertex.
pub(crate) fn separate(pos: &mut [[f64; 2]], radius: &[f64], gap: f64) {
    let n = pos.len();
    if n < 2 {
        return;
    }
    let reach = 2.0 * radius.iter().copied().fold(0.0, f64::max) + gap;
    let mut order = vec![0usize; n];
    let mut cell_of = vec![0usize; n];
    let mut cell_start = Vec::new();
    for _ in 0..MAX_SWEEPS {
        let (min, max) = bounds(pos);
        // Cells at least `reach` wide, but not so many that a sparse layout wastes memory.
        let area = (max[0] - min[0] + reach) * (max[1] - min[1] + reach);
        let cell = reach.max((area / (2 * n) as f64).sqrt());
        let cols = ((max[0] - min[0]) / cell) as usize + 1;
        let rows = ((max[1] - min[1]) / cell) as usize + 1;
        let cell_at = |p: [f64; 2]| {
            let c = (((p[0] - min[0]) / cell) as usize).min(cols - 1);
            let r = (((p[1] - min[1]) / cell) as usize).min(rows - 1);
            (c, r)
        };
        // Counting sort of the vertices by cell.
        cell_start.clear();
        cell_start.resize(cols * rows + 1, 0);
        for (v, p) in pos.iter().enumerate() {
            let (c, r) = cell_at(*p);
            cell_of[v] = r * cols + c;
            cell_start[cell_of[v] + 1] += 1;
        }
        for i in 1..cell_start.len() {
            cell_start[i] += cell_start[i - 1];
        }
        let mut fill = cell_start.clone();
        for v in 0..n {
            order[fill[cell_of[v]]] = v;
            fill[cell_of[v]] += 1;
        }

        let mut overlaps = 0;
        for v in 0..n {
            let (c, r) = (cell_of[v] % cols, cell_of[v] / cols);
            for nr in r.saturating_sub(1)..=(r + 1).min(rows - 1) {
                for nc in c.saturating_sub(1)..=(c + 1).min(cols - 1) {
                    let cell = nr * cols + nc;
                    for &w in &order[cell_start[cell]..cell_start[cell + 1]] {
                        if w <= v {
                            continue;
                        }
                        let want = radius[v] + radius[w] + gap;
                        let (dx, dy) = (pos[w][0] - pos[v][0], pos[w][1] - pos[v][1]);
                        let d2 = dx * dx + dy * dy;
                        if d2 >= want * want {
                            continue;
                        }
                        overlaps += 1;
                        let d = d2.sqrt();
                        let (ux, uy) = if d > 1e-9 {
                            (dx / d, dy / d)
                        } else {
                            let angle = (mix((v as u64) << 32 | w as u64) >> 11) as f64 / (1u64 << 53) as f64
                                * std::f64::consts::TAU;
                            (angle.cos(), angle.sin())
                        };
                        // A little past half each, so the sweeps end rather than creep.
                        let push = (want - d) * 0.5 + 0.01;
                        pos[v][0] -= ux * push;
                        pos[v][1] -= uy * push;
                        pos[w][0] += ux * push;
                        pos[w][1] += uy * push;
                    }
                }
            }
        }
        if overlaps == 0 {
            return;
        }
    }
}

/// Scales the layout up when it is crowded: when the median distance from a vertex to its
/// nearest neighbour is under `want` (at most threefold, to keep edges from getting absurd).
///
/// Stress keeps graph distances, and a large, well-connected graph has short ones: drawn at
/// that scale its vertices would sit on top of one another and `separate` would squeeze them
/// into a uniform disc that hides the structure.
pub(crate) fn spread(pos: &mut [[f64; 2]], want: f64) {
    let n = pos.len();
    if n < 3 {
        return;
    }
    let (min, max) = bounds(pos);
    let cell = want.max(((max[0] - min[0]) * (max[1] - min[1]) / (2 * n) as f64).sqrt());
    let cols = ((max[0] - min[0]) / cell) as usize + 1;
    let rows = ((max[1] - min[1]) / cell) as usize + 1;
    let key = |p: [f64; 2]| {
        let c = (((p[0] - min[0]) / cell) as usize).min(cols - 1);
        let r = (((p[1] - min[1]) / cell) as usize).min(rows - 1);
        (c, r)
    };
    let mut order: Vec<(usize, usize)> = pos
        .iter()
        .enumerate()
        .map(|(v, p)| {
            let (c, r) = key(*p);
            (r * cols + c, v)
        })
        .collect();
    order.sort_unstable();
    let first = |cell: usize| order.partition_point(|&(k, _)| k < cell);
    let mut nearest: Vec<f64> = pos
        .iter()
        .enumerate()
        .map(|(v, p)| {
            let (c, r) = key(*p);
            let mut best = want;
            for nr in r.saturating_sub(1)..=(r + 1).min(rows - 1) {
                for nc in c.saturating_sub(1)..=(c + 1).min(cols - 1) {
                    let k = nr * cols + nc;
                    for &(_, w) in order[first(k)..].iter().take_while(|&&(kk, _)| kk == k) {
                        if w != v {
                            let q = pos[w];
                            best = best.min(((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt());
                        }
                    }
                }
            }
            best
        })
        .collect();
    let middle = n / 2;
    let (_, median, _) = nearest.select_nth_unstable_by(middle, f64::total_cmp);
    let scale = (want / median.max(want / 3.0)).min(3.0);
    if scale > 1.0 {
        pos.iter_mut().for_each(|p| *p = [p[0] * scale, p[1] * scale]);
    }
}

/// Turns the layout about its centre: so that its edges run horizontally and vertically if
/// most of them can (grids, rings of boxes), else so that its longest axis is horizontal; and
/// in either case so that it is wider than tall.
pub(crate) fn level(pos: &mut [[f64; 2]], edges: &[(usize, usize)]) {
    let n = pos.len() as f64;
    if pos.len() < 2 {
        return;
    }
    let cx = pos.iter().map(|p| p[0]).sum::<f64>() / n;
    let cy = pos.iter().map(|p| p[1]).sum::<f64>() / n;
    // Edge directions modulo 90°: their mean, and how much they agree (0 to 1).
    let (mut c4, mut s4) = (0.0, 0.0);
    for &(a, b) in edges {
        let phi = (pos[b][1] - pos[a][1]).atan2(pos[b][0] - pos[a][0]);
        c4 += (4.0 * phi).cos();
        s4 += (4.0 * phi).sin();
    }
    let agreement = c4.hypot(s4) / edges.len().max(1) as f64;
    let mut angle = if agreement > 0.5 {
        s4.atan2(c4) / 4.0
    } else {
        let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
        for p in pos.iter() {
            let (x, y) = (p[0] - cx, p[1] - cy);
            sxx += x * x;
            syy += y * y;
            sxy += x * y;
        }
        0.5 * (2.0 * sxy).atan2(sxx - syy)
    };
    let turned = |angle: f64| {
        let (sin, cos) = (-angle).sin_cos();
        move |p: &[f64; 2]| {
            let (x, y) = (p[0] - cx, p[1] - cy);
            [x * cos - y * sin, x * sin + y * cos]
        }
    };
    let spread = |angle: f64| {
        let t = turned(angle);
        let (mut min, mut max) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for q in pos.iter().map(&t) {
            for a in 0..2 {
                min[a] = min[a].min(q[a]);
                max[a] = max[a].max(q[a]);
            }
        }
        (max[0] - min[0], max[1] - min[1])
    };
    let (w, h) = spread(angle);
    if h > w * 1.05 {
        angle += std::f64::consts::FRAC_PI_2;
    }
    let t = turned(angle);
    for p in pos.iter_mut() {
        *p = t(p);
    }
}

/// Folds a long, thin layout (a chain of a thousand nodes) into rows, like a snake: cut into
/// strips along x, every other strip mirrored so consecutive strips meet at the same end.
/// `row` is the height one strip needs beyond its vertices' centres (shapes, labels, space).
pub(crate) fn fold(pos: &mut [[f64; 2]], row: f64) {
    let (min, max) = bounds(pos);
    let (w, h) = (max[0] - min[0], max[1] - min[1] + row);
    // Aim for a 4:3 drawing: rows² = (3/4)·w/h.
    let rows = (0.75 * w / h).sqrt().round();
    if w < 1500.0 || rows < 2.0 {
        return;
    }
    let strip = w / rows;
    for p in pos.iter_mut() {
        let x = p[0] - min[0];
        let k = ((x / strip) as usize).min(rows as usize - 1);
        let mut local = x - k as f64 * strip;
        if k % 2 == 1 {
            local = strip - local;
        }
        *p = [local, p[1] + k as f64 * h];
    }
}

pub(crate) fn bounds(pos: &[[f64; 2]]) -> ([f64; 2], [f64; 2]) {
    let mut min = [f64::INFINITY; 2];
    let mut max = [f64::NEG_INFINITY; 2];
    for p in pos {
        for a in 0..2 {
            min[a] = min[a].min(p[a]);
            max[a] = max[a].max(p[a]);
        }
    }
    (min, max)
}

/// Shelf packing: the tallest boxes first, left to right in rows about as wide as the square
/// the boxes would fill. Returns each box's top-left corner and the total size.
pub(crate) fn pack(sizes: &[[f64; 2]], gap: f64) -> (Vec<[f64; 2]>, [f64; 2]) {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| sizes[b][1].total_cmp(&sizes[a][1]).then(a.cmp(&b)));
    let area: f64 = sizes.iter().map(|s| (s[0] + gap) * (s[1] + gap)).sum();
    let widest = sizes.iter().map(|s| s[0]).fold(0.0, f64::max);
    // Screens are wider than tall: aim for rows a bit wider than a square.
    let row_width = widest.max(area.sqrt() * 1.4);
    let mut at = vec![[0.0; 2]; sizes.len()];
    let (mut x, mut y, mut row_height, mut width) = (0.0, 0.0, 0.0_f64, 0.0_f64);
    for i in order {
        let [w, h] = sizes[i];
        if x > 0.0 && x + w > row_width {
            y += row_height + gap;
            x = 0.0;
            row_height = 0.0;
        }
        at[i] = [x, y];
        width = width.max(x + w);
        row_height = row_height.max(h);
        x += w + gap;
    }
    (at, [width, y + row_height])
}
