//! Writes the SVG of a few small and large models, and an HTML page showing them all, to a
//! directory, for looking at the layout by eye:
//! `cargo run --release -p trellis-topology --example gallery -- /tmp/gallery`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::Builder;
use trellis_api::xir;

fn small() -> Vec<xir::Network> {
    let mut out = Vec::new();

    let mut b = Builder::new("hello");
    b.nodes(&["a", "b", "c"]);
    b.connect(&["a", "b"]).latency = Some(xir::Uint64Constraint { op: common::EQ, value: 10_000_000 });
    b.connect(&["b", "c"]);
    out.push(b.build());

    let mut b = Builder::new("ring");
    let ring: Vec<String> = (0..6).map(|i| format!("r{i}")).collect();
    for id in &ring {
        b.node(id);
    }
    for i in 0..6 {
        b.connect(&[&ring[i], &ring[(i + 1) % 6]]);
    }
    out.push(b.build());

    let mut b = Builder::new("dumbbell");
    for side in ["l", "r"] {
        let members: Vec<String> =
            std::iter::once(format!("{side}gw")).chain((0..4).map(|i| format!("{side}{i}"))).collect();
        for id in &members {
            b.node(id);
        }
        b.connect(&members.iter().map(String::as_str).collect::<Vec<_>>());
    }
    b.connect(&["lgw", "rgw"]);
    b.connect(&["lgw", "rgw"]);
    out.push(b.build());

    let mut b = Builder::new("grid");
    let id = |x: usize, y: usize| format!("g{x}{y}");
    for y in 0..5 {
        for x in 0..6 {
            b.node(&id(x, y));
        }
    }
    for y in 0..5 {
        for x in 0..6 {
            if x < 5 {
                b.connect(&[&id(x, y), &id(x + 1, y)]);
            }
            if y < 4 {
                b.connect(&[&id(x, y), &id(x, y + 1)]);
            }
        }
    }
    out.push(b.build());

    let mut b = Builder::new("tree");
    b.node("t0");
    for i in 1..30 {
        b.node(&format!("t{i}"));
        b.connect(&[&format!("t{}", (i - 1) / 2), &format!("t{i}")]);
    }
    out.push(b.build());

    let mut b = Builder::new("pieces");
    b.nodes(&["solo", "p", "q", "u", "v", "w", "<script>alert(1)</script>", "k1", "k2", "k3", "k4"]);
    b.connect(&["p", "q"]);
    b.connect(&["p", "p"]);
    b.connect(&["u", "v", "w"]);
    for (x, y) in [("k1", "k2"), ("k2", "k3"), ("k3", "k4"), ("k4", "k1"), ("k1", "k3")] {
        b.connect(&[x, y]);
    }
    out.push(b.build());

    out.push(common::mixed(2, 5, 8));
    out
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "topology-gallery".into()));
    std::fs::create_dir_all(&dir).expect("create the output directory");
    let mut models = small();
    models.push(common::mixed(4, 16, 32));
    models.push(common::lans_and_ring(10, 100));
    models.push(common::sparse(1000, 500));
    models.extend(common::shapes().into_iter().map(|(_, net)| net));
    let mut html = String::from("<!doctype html><meta charset=utf-8><title>topology gallery</title><body>");
    for (i, net) in models.iter().enumerate() {
        let svg = trellis_topology::svg(net);
        std::fs::write(dir.join(format!("{i:02}-{}.svg", net.id)), &svg).expect("write svg");
        html.push_str(&format!("<h3>{i}: {} nodes</h3>{svg}", net.nodes.len()));
    }
    std::fs::write(dir.join("index.html"), html).expect("write index.html");
    println!("wrote {} models to {}", models.len(), dir.display());
}
