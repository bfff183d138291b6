//! Times `trellis_topology::svg` (layout and SVG text) on 1,000-node and 100-node models.
//!
//! `cargo bench -p trellis-topology` (release profile). Prints p50/p99 per model and the ratio
//! of p50 to the 200 ms goal. `TOPOLOGY_BENCH_RUNS=n` changes the number of timed runs;
//! `TOPOLOGY_BENCH_OUT=dir` writes each model's SVG there to look at;
//! `TOPOLOGY_BENCH_SHAPES=1` adds awkward 1,000-node shapes (chain, grid, no links, one LAN, dense).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

const GOAL: Duration = Duration::from_millis(200);

fn main() {
    let runs: usize = std::env::var("TOPOLOGY_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(30);
    let out = std::env::var_os("TOPOLOGY_BENCH_OUT").map(std::path::PathBuf::from);
    let mut models = vec![
        ("1000 nodes: 10 LANs of 100, routers in a ring", common::lans_and_ring(10, 100)),
        ("1000 nodes: sparse random graph, 1499 links", common::sparse(1000, 500)),
        ("100 nodes: 4 LANs of 16 + 32-node mesh", common::mixed(4, 16, 32)),
    ];
    if std::env::var_os("TOPOLOGY_BENCH_SHAPES").is_some() {
        models.extend(common::shapes());
    }
    println!(
        "{:<48} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "model", "runs", "p50 ms", "p99 ms", "max ms", "layout", "goal"
    );
    for (i, (name, net)) in models.iter().enumerate() {
        let svg = trellis_topology::svg(net);
        if let Some(dir) = &out {
            std::fs::create_dir_all(dir).expect("output directory");
            std::fs::write(dir.join(format!("model{i}.svg")), &svg).expect("write svg");
        }
        let mut total = Vec::with_capacity(runs);
        let mut layout = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let l = trellis_topology::layout(net);
            let laid = t.elapsed();
            let s = trellis_topology::render(net, &l);
            total.push(t.elapsed());
            layout.push(laid);
            assert_eq!(s.len(), svg.len(), "deterministic output");
        }
        total.sort();
        layout.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let pct = |v: &[Duration], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        println!(
            "{name:<48} {runs:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7.2}x",
            ms(pct(&total, 0.5)),
            ms(pct(&total, 0.99)),
            ms(total[total.len() - 1]),
            ms(pct(&layout, 0.5)),
            pct(&total, 0.5).as_secs_f64() / GOAL.as_secs_f64(),
        );
        println!(
            "{:<48} svg {} KiB, {} nodes, {} links",
            "",
            svg.len() / 1024,
            net.nodes.len(),
            net.links.len()
        );
    }
    println!(
        "goal: whole SVG of a 1,000-node model in {} ms; 'goal' column is p50 / goal (< 1 is within)",
        GOAL.as_millis()
    );
}
