//! Layout and SVG of real XIR networks, built the way mergexp compiles models.

mod common;

use common::{Builder, EQ, GE};
use trellis_api::xir;
use trellis_topology::{HUB_RADIUS, Layout, LinkShape, NODE_RADIUS, layout, node_extent, render, svg};

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The `<title>` text of the element whose opening tag contains `marker`, unescaped.
fn title_of(svg: &str, marker: &str) -> String {
    let at = svg.find(marker).unwrap_or_else(|| panic!("{marker} not in svg"));
    let rest = &svg[at..];
    let start = rest.find("<title>").unwrap() + "<title>".len();
    let end = rest.find("</title>").unwrap();
    rest[start..end].replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

/// A strict check that `svg` is well-formed XML made only of the elements the renderer uses:
/// tags balance, attributes are quoted, every `&` starts a known entity, nothing else sneaks in.
fn assert_well_formed(svg: &str) {
    const ALLOWED: &[&str] = &["svg", "title", "rect", "g", "line", "path", "circle", "text"];
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(lt) = rest.find('<') {
        check_text(&rest[..lt]);
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name), "mismatched </{name}>");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = tag.split(' ').next().unwrap();
        assert!(ALLOWED.contains(&name), "unexpected element <{name}>");
        // Attributes: name="value" pairs; a stray quote or < in a value would break this.
        let mut attrs = tag[name.len()..].trim();
        while !attrs.is_empty() {
            let eq = attrs.find("=\"").unwrap_or_else(|| panic!("bad attributes in <{tag}>"));
            let attr = &attrs[..eq];
            assert!(attr.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b':'), "{attr}");
            assert!(!attr.starts_with("on"), "event handler attribute {attr}");
            assert!(attr != "href" && attr != "xlink:href", "external reference");
            let value_end = attrs[eq + 2..].find('"').expect("unterminated attribute") + eq + 2;
            check_text(&attrs[eq + 2..value_end]);
            attrs = attrs[value_end + 1..].trim_start();
        }
        if !self_closing {
            stack.push(name);
        }
    }
    assert!(rest.is_empty() && stack.is_empty(), "unclosed {stack:?}");
}

fn check_text(text: &str) {
    assert!(!text.contains('<') && !text.contains('>') && !text.contains('"'), "unescaped text {text:?}");
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        rest = &rest[amp + 1..];
        let semi = rest.find(';').expect("bare &");
        let entity = &rest[..semi];
        let ok = ["amp", "lt", "gt", "quot", "#39", "#10", "#13", "#9"].contains(&entity);
        assert!(ok, "unknown entity &{entity};");
    }
    assert!(text.chars().all(|c| c >= ' ' || c == '\n'), "control character in {text:?}");
}

fn hello() -> xir::Network {
    let mut b = Builder::new("hello");
    b.nodes(&["a", "b", "c", "d"]);
    let ab = b.connect(&["a", "b"]);
    ab.latency = Some(xir::Uint64Constraint { op: EQ, value: 10_000_000 });
    ab.capacity = Some(xir::Uint64Constraint { op: EQ, value: 1_000_000_000 });
    ab.loss = Some(xir::FloatConstraint { op: EQ, value: 0.01 });
    b.connect(&["b", "c"]);
    b.connect(&["b", "c", "d"]).capacity = Some(xir::Uint64Constraint { op: EQ, value: 100_000_000 });
    b.build()
}

#[test]
fn small_model_draws_every_node_link_and_lan() {
    let net = hello();
    let s = svg(&net);
    assert_well_formed(&s);
    assert_eq!(count(&s, "class=\"node\""), 4);
    assert_eq!(count(&s, "class=\"link\""), 2);
    assert_eq!(count(&s, "class=\"lan\""), 1);
    for id in ["a", "b", "c", "d"] {
        assert_eq!(count(&s, &format!("data-node=\"{id}\"")), 1, "{id}");
        assert!(s.contains(&format!(">{id}</text>")), "label {id}");
    }
    assert!(s.contains("data-link=\"a.0~b.0\"") && s.contains("data-link=\"b.2~c.1~d.0\""));
    // The LAN hub joins its three members: three spokes.
    let lan = &s[s.find("class=\"lan\"").unwrap()..];
    assert_eq!(count(&lan[..lan.find("</g></g>").unwrap()], "<line"), 3);
    assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(s.contains(" width=\"") && s.contains(" height=\"") && s.contains(" viewBox=\"0 0 "));
    assert!(!s.contains("<script") && !s.contains("href") && !s.contains("<style"));

    let l = layout(&net);
    assert_eq!(l.nodes.len(), 4);
    assert_eq!(l.lans.len(), 1);
    assert_eq!(l.lans[0].members, [1, 2, 3]);
    assert_eq!(l.links[..2], [LinkShape::Pair { a: 0, b: 1 }, LinkShape::Pair { a: 1, b: 2 }]);
    assert!(l.labels);
}

#[test]
fn text_from_the_model_is_escaped() {
    let mut b = Builder::new("<svg onload=alert(1)>");
    b.nodes(&["<script>alert(\"x\")</script>", "a&b", "quote'\"", "ctl\u{1}\u{7}", "<script>"]);
    b.connect(&["<script>alert(\"x\")</script>", "a&b"]);
    b.connect(&["a&b", "quote'\"", "ctl\u{1}\u{7}", "<script>"]);
    let node = &mut b.net.nodes[0];
    node.image = Some(xir::StringConstraint { op: EQ, value: "</title><script>x</script>".into() });
    node.viz = Some(xir::Visualization { color: "red\" onmouseover=\"alert(1)".into(), size: 1 });
    let s = svg(&b.build());
    assert_well_formed(&s);
    assert!(!s.contains("<script"));
    assert!(s.contains("data-node=\"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;\""));
    assert!(s.contains("data-node=\"&lt;script&gt;\"") && s.contains(">&lt;script&gt;</text>"));
    // Long names are cut in the label, never in the middle of an escape.
    assert!(s.contains(">&lt;script&gt;alert(&quot;x&quot;)&lt;…</text>"));
    assert!(s.contains("data-node=\"a&amp;b\"") && s.contains("data-node=\"quote&#39;&quot;\""));
    assert!(s.contains("image = &lt;/title&gt;&lt;script&gt;x&lt;/script&gt;"));
    // The color is dropped, not escaped; the network id is escaped text (assert_well_formed
    // already refuses any `on...` attribute).
    assert!(!s.contains("onmouseover"), "unsafe color leaked");
    assert!(s.contains("aria-label=\"Topology of &lt;svg onload=alert(1)&gt;: "));
    assert!(s.contains("data-node=\"ctl\u{FFFD}\u{FFFD}\""));
}

#[test]
fn titles_list_constraints() {
    let mut net = hello();
    let a = &mut net.nodes[0];
    a.image = Some(xir::StringConstraint { op: EQ, value: "bullseye".into() });
    a.metal = Some(xir::BoolConstraint { op: EQ, value: true });
    a.proc =
        Some(xir::ProcSpec { cores: Some(xir::Uint32Constraint { op: GE, value: 4 }), ..Default::default() });
    a.memory = Some(xir::MemorySpec {
        capacity: Some(xir::Uint64Constraint { op: GE, value: 8 << 30 }),
        ..Default::default()
    });
    a.disks = vec![xir::DiskSpec {
        capacity: Some(xir::Uint64Constraint { op: EQ, value: 40 << 30 }),
        ..Default::default()
    }];
    a.properties = Some(xir::Properties {
        keyvalues: [(
            "group".to_string(),
            xir::PropertiesValues { values: vec!["servers".into(), "web".into()] },
        )]
        .into(),
    });
    net.nodes[1].sockets[0].port = Some(xir::PortSpec {
        capacity: Some(xir::Uint64Constraint { op: EQ, value: 10_000_000_000 }),
        model: Some(xir::NicModelConstraint { op: EQ, value: xir::NicModel::E1000e as i32 }),
        ..Default::default()
    });
    let s = svg(&net);
    assert_well_formed(&s);

    let a = title_of(&s, "data-node=\"a\"");
    assert_eq!(
        a,
        "node a\nimage = bullseye\nmetal = true\ncores >= 4\nmemory >= 8GB\ndisk 0 = 40GB\ngroup: servers, web"
    );
    let b = title_of(&s, "data-node=\"b\"");
    assert!(b.contains("socket 0 capacity = 10Gbps\nsocket 0 nic = E1000E"), "{b}");
    assert_eq!(title_of(&s, "data-node=\"d\""), "node d\nno constraints");
    let ab = title_of(&s, "data-link=\"a.0~b.0\"");
    assert_eq!(ab, "link a.0~b.0\na — b\nlatency = 10ms\ncapacity = 1Gbps\nloss = 1%");
    let lan = title_of(&s, "class=\"lan\"");
    assert_eq!(lan, "LAN b.2~c.1~d.0\n3 members: b, c, d\ncapacity = 100Mbps");
    // A bare-metal node is a rounded square.
    let node_a = &s[s.find("data-node=\"a\"").unwrap()..];
    assert!(node_a[..node_a.find("</g>").unwrap()].contains("<rect"));
}

#[test]
fn output_is_deterministic() {
    for net in [hello(), common::mixed(4, 16, 32), common::sparse(400, 150)] {
        let first = svg(&net);
        assert_eq!(first, svg(&net.clone()));
        assert_eq!(layout(&net), layout(&net));
    }
}

fn assert_apart(l: &Layout) {
    let mut points: Vec<(f64, f64, f64)> = l.nodes.iter().map(|p| (p.x, p.y, NODE_RADIUS)).collect();
    points.extend(l.lans.iter().map(|lan| (lan.at.x, lan.at.y, HUB_RADIUS)));
    for (i, p) in points.iter().enumerate() {
        for q in &points[i + 1..] {
            let d = ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt();
            assert!(d >= p.2 + q.2, "shapes overlap: {p:?} {q:?} ({d})");
        }
    }
}

fn assert_inside(net: &xir::Network, l: &Layout) {
    for (node, p) in net.nodes.iter().zip(&l.nodes) {
        let [left, top, right, bottom] = node_extent(&node.id, l.labels);
        let (x0, y0, x1, y1) = (p.x + left, p.y + top, p.x + right, p.y + bottom);
        assert!(x0 >= 0.0 && y0 >= 0.0 && x1 <= l.width && y1 <= l.height, "{} outside {l:?}", node.id);
    }
    for lan in &l.lans {
        let p = lan.at;
        assert!(
            p.x >= HUB_RADIUS
                && p.y >= HUB_RADIUS
                && p.x + HUB_RADIUS <= l.width
                && p.y + HUB_RADIUS <= l.height
        );
    }
}

fn pieces() -> xir::Network {
    let mut b = Builder::new("pieces");
    b.nodes(&["solo", "p", "q", "u", "v", "w", "k1", "k2", "k3", "k4", "lonely"]);
    b.connect(&["p", "q"]);
    b.connect(&["p", "q"]);
    b.connect(&["p", "p"]);
    b.connect(&["u", "v", "w"]);
    for (x, y) in [("k1", "k2"), ("k2", "k3"), ("k3", "k4"), ("k4", "k1"), ("k1", "k3")] {
        b.connect(&[x, y]);
    }
    b.build()
}

#[test]
fn nodes_never_overlap_and_everything_is_inside_the_box() {
    let mut models = vec![
        hello(),
        pieces(),
        common::mixed(4, 16, 32),
        common::lans_and_ring(10, 100),
        common::sparse(1000, 500),
    ];
    models.extend(common::shapes().into_iter().map(|(_, net)| net));
    for net in &models {
        let l = layout(net);
        assert_apart(&l);
        assert_inside(net, &l);
        let s = svg(net);
        assert!(s.contains(&format!("viewBox=\"0 0 {:.1} {:.1}\"", l.width, l.height)), "{}", net.id);
    }
}

#[test]
fn disconnected_components_sit_side_by_side() {
    let net = pieces();
    let l = layout(&net);
    // Components: solo, p-q, u-v-w (with the hub), the k square, lonely.
    let groups: [&[usize]; 5] = [&[0], &[1, 2], &[3, 4, 5], &[6, 7, 8, 9], &[10]];
    let boxes: Vec<[f64; 4]> = groups
        .iter()
        .map(|g| {
            g.iter().fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |b, &i| {
                let e = node_extent(&net.nodes[i].id, l.labels);
                let p = l.nodes[i];
                [b[0].min(p.x + e[0]), b[1].min(p.y + e[1]), b[2].max(p.x + e[2]), b[3].max(p.y + e[3])]
            })
        })
        .collect();
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            let apart = a[2] <= b[0] || b[2] <= a[0] || a[3] <= b[1] || b[3] <= a[1];
            assert!(apart, "components overlap: {a:?} {b:?}");
        }
    }
    let s = svg(&net);
    assert_well_formed(&s);
    // Two parallel links and a loop: all drawn, as curves.
    assert_eq!(count(&s, "class=\"link\""), 8);
    assert_eq!(count(&s, "class=\"link\" data-link=\"p.0~q.0\""), 1);
    assert_eq!(count(&s, "class=\"link\" data-link=\"p.1~q.1\""), 1);
    assert!(count(&s, "<path d=\"M") >= 3);
}

#[test]
fn thousand_node_models_draw_every_node_without_labels() {
    for net in [common::lans_and_ring(10, 100), common::sparse(1000, 500)] {
        let s = svg(&net);
        assert_well_formed(&s);
        assert_eq!(net.nodes.len(), 1000);
        assert_eq!(count(&s, "class=\"node\""), 1000);
        for node in &net.nodes {
            assert!(s.contains(&format!("data-node=\"{}\"", node.id)), "{}", node.id);
        }
        assert_eq!(count(&s, "<text"), 0, "labels are dropped for large models");
        let pairs = net.links.iter().filter(|l| l.endpoints.len() == 2).count();
        assert_eq!(count(&s, "class=\"link\""), pairs);
        assert_eq!(count(&s, "class=\"lan\""), net.links.len() - pairs);
        // Kept to a size a browser renders quickly.
        assert!(s.len() < 600_000, "{} bytes", s.len());
    }
}

#[test]
fn broken_models_still_draw() {
    let mut b = Builder::new("broken");
    b.nodes(&["a", "a", "b"]);
    b.connect(&["a", "ghost"]);
    b.connect(&["b", "ghost", "a"]);
    b.net.links.push(xir::Link { id: "empty".into(), ..Default::default() });
    let net = b.build();
    let l = layout(&net);
    assert_eq!(l.links[0], LinkShape::Unattached);
    assert_eq!(l.links[1], LinkShape::Lan { lan: 0 });
    assert_eq!(l.lans[0].members, [2, 0], "ghost dropped, the first 'a' used");
    assert_eq!(l.links[2], LinkShape::Unattached);
    assert_apart(&l);
    assert_inside(&net, &l);
    let s = svg(&net);
    assert_well_formed(&s);
    assert_eq!(count(&s, "class=\"node\""), 3);
    assert_eq!(count(&s, "class=\"link\""), 0);

    // A layout of another network draws what matches rather than panicking.
    let other = render(&hello(), &l);
    assert_well_formed(&other);

    let empty = svg(&xir::Network::default());
    assert_well_formed(&empty);
    assert!(empty.contains("empty model") && !empty.contains("class=\"node\""));
}

#[test]
fn simple_shapes_come_out_straight() {
    // A chain is drawn as a horizontal line, evenly spaced.
    let mut b = Builder::new("chain");
    b.nodes(&["a", "b", "c", "d"]);
    for (x, y) in [("a", "b"), ("b", "c"), ("c", "d")] {
        b.connect(&[x, y]);
    }
    let l = layout(&b.build());
    let ys: Vec<f64> = l.nodes.iter().map(|p| p.y).collect();
    assert!(ys.iter().all(|y| (y - ys[0]).abs() < 1.0), "{ys:?}");
    let mut xs: Vec<f64> = l.nodes.iter().map(|p| p.x).collect();
    xs.sort_by(f64::total_cmp);
    let gaps: Vec<f64> = xs.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| (g - gaps[0]).abs() < 2.0 && *g > 2.0 * NODE_RADIUS), "{gaps:?}");

    // A long chain is folded into rows rather than drawn as one very long line.
    let (_, chain) = common::shapes().into_iter().find(|(_, n)| n.id == "chain").unwrap();
    let l = layout(&chain);
    assert!(l.width / l.height < 3.0 && l.height / l.width < 3.0, "{} x {}", l.width, l.height);
    assert_apart(&l);

    // The members of a LAN are all the same distance from its hub.
    let l = layout(&common::lans_and_ring(1, 12));
    let hub = l.lans[0].at;
    let hosts: Vec<f64> =
        l.nodes[1..].iter().map(|p| ((p.x - hub.x).powi(2) + (p.y - hub.y).powi(2)).sqrt()).collect();
    assert!(hosts.iter().all(|d| (d - hosts[0]).abs() < 1.0), "{hosts:?}");
}
