//! Writing the SVG document.
//!
//! The output is meant to be inlined into HTML pages: every string from the model is escaped,
//! there are no scripts, no external references and no `<style>` element (its rules would apply
//! to the whole page, and a strict Content-Security-Policy blocks it); everything is
//! presentation attributes.

use std::collections::HashMap;
use std::fmt::Write as _;

use trellis_api::xir;

use crate::{
    HUB_RADIUS, LABEL_FONT, Layout, LinkShape, NODE_RADIUS, Point, label, link_constraints, node_constraints,
};

/// The larger side of the `width`/`height` attributes; the viewBox keeps the full detail.
const MAX_DISPLAY: f64 = 1200.0;
/// Above this many links, lines get no invisible wide twin to make them easier to hover.
const HIT_LINES_MAX: usize = 300;
/// LAN titles list at most this many members.
const TITLE_MEMBERS: usize = 12;

const NODE_FILL: &str = "#4a78c2";
const METAL_FILL: &str = "#2e8b6e";
const NODE_STROKE: &str = "#1d3557";
const HUB_FILL: &str = "#e8a33d";
const HUB_STROKE: &str = "#8a5a12";
const LINK_STROKE: &str = "#8792a2";
const LABEL_FILL: &str = "#1f2933";

/// Draws `network` at the positions in `layout` (which must come from [`crate::layout`] on the
/// same network).
pub fn render(network: &xir::Network, layout: &Layout) -> String {
    let mut out = String::with_capacity(512 + network.nodes.len() * 200 + network.links.len() * 160);
    let (w, h) = (layout.width.max(120.0), layout.height.max(40.0));
    let scale = (MAX_DISPLAY / w.max(h)).min(1.0);
    let pairs = layout.links.iter().filter(|l| matches!(l, LinkShape::Pair { .. })).count();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" class=\"trellis-topology\" \
         width=\"{:.0}\" height=\"{:.0}\" viewBox=\"0 0 {w:.1} {h:.1}\" role=\"img\" \
         font-family=\"sans-serif\" font-size=\"{LABEL_FONT}\" aria-label=\"",
        (w * scale).ceil(),
        (h * scale).ceil()
    );
    let summary = format!(
        "Topology of {}: {} nodes, {} links, {} LANs",
        if network.id.is_empty() { "the model" } else { &network.id },
        network.nodes.len(),
        pairs,
        layout.lans.len()
    );
    escape(&mut out, &summary);
    out.push_str("\"><title>");
    escape(&mut out, &summary);
    out.push_str("</title>");
    let _ = write!(out, "<rect width=\"{w:.1}\" height=\"{h:.1}\" fill=\"#ffffff\"/>");
    if network.nodes.is_empty() {
        out.push_str("<text x=\"60\" y=\"24\" text-anchor=\"middle\" fill=\"#666666\">empty model</text>");
    }

    links(&mut out, network, layout, pairs <= HIT_LINES_MAX);
    lans(&mut out, network, layout);
    nodes(&mut out, network, layout);
    out.push_str("</svg>");
    out
}

fn links(out: &mut String, network: &xir::Network, layout: &Layout, hit_lines: bool) {
    let _ = write!(out, "<g class=\"links\" fill=\"none\" stroke=\"{LINK_STROKE}\" stroke-width=\"1.5\">");
    // Parallel links between the same two nodes bow apart so each can be seen and hovered.
    let mut parallel: HashMap<(usize, usize), (usize, usize)> = HashMap::new();
    for shape in &layout.links {
        if let LinkShape::Pair { a, b } = *shape {
            parallel.entry((a.min(b), a.max(b))).or_default().0 += 1;
        }
    }
    for (link, shape) in network.links.iter().zip(&layout.links) {
        let LinkShape::Pair { a, b } = *shape else { continue };
        // A layout of some other network must not make rendering panic: skip what is missing.
        let (Some(&p), Some(&q), Some(na), Some(nb)) =
            (layout.nodes.get(a), layout.nodes.get(b), network.nodes.get(a), network.nodes.get(b))
        else {
            continue;
        };
        let entry = parallel.entry((a.min(b), a.max(b))).or_default();
        let (count, nth) = (entry.0, entry.1);
        entry.1 += 1;
        let geometry = if a == b {
            // A loop above the node, a little larger for each further loop.
            let lift = NODE_RADIUS * (3.0 + nth as f64);
            format!(
                "d=\"M{:.1} {:.1}C{:.1} {:.1} {:.1} {:.1} {:.1} {:.1}\"",
                p.x - 4.0,
                p.y - NODE_RADIUS,
                p.x - lift,
                p.y - lift * 1.5,
                p.x + lift,
                p.y - lift * 1.5,
                p.x + 4.0,
                p.y - NODE_RADIUS
            )
        } else if count == 1 {
            format!("x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"", p.x, p.y, q.x, q.y)
        } else {
            // Offsets are taken from the lower-numbered node so both directions agree.
            let (s, t) = if a < b { (p, q) } else { (q, p) };
            let (dx, dy) = (t.x - s.x, t.y - s.y);
            let len = (dx * dx + dy * dy).sqrt().max(1e-9);
            let offset = (nth as f64 - (count - 1) as f64 / 2.0) * 14.0;
            let (cx, cy) =
                ((s.x + t.x) / 2.0 - dy / len * offset * 2.0, (s.y + t.y) / 2.0 + dx / len * offset * 2.0);
            format!("d=\"M{:.1} {:.1}Q{cx:.1} {cy:.1} {:.1} {:.1}\"", p.x, p.y, q.x, q.y)
        };
        let element = if geometry.starts_with('d') { "path" } else { "line" };
        out.push_str("<g class=\"link\" data-link=\"");
        escape(out, &link.id);
        out.push_str("\"><title>link ");
        escape(out, &link.id);
        out.push('\n');
        escape(out, &na.id);
        out.push_str(" — ");
        escape(out, &nb.id);
        constraint_lines(out, &link_constraints(link));
        let _ = write!(out, "</title><{element} {geometry}/>");
        if hit_lines {
            let _ = write!(
                out,
                "<{element} {geometry} stroke=\"#000000\" stroke-opacity=\"0\" stroke-width=\"10\"/>"
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</g>");
}

fn lans(out: &mut String, network: &xir::Network, layout: &Layout) {
    let _ = write!(out, "<g class=\"lans\">");
    for lan in &layout.lans {
        let Some(link) = network.links.get(lan.link) else { continue };
        let members: Vec<(&str, Point)> = lan
            .members
            .iter()
            .filter_map(|&m| Some((network.nodes.get(m)?.id.as_str(), *layout.nodes.get(m)?)))
            .collect();
        let Point { x, y } = lan.at;
        out.push_str("<g class=\"lan\" data-link=\"");
        escape(out, &link.id);
        out.push_str("\"><title>LAN ");
        escape(out, &link.id);
        let _ = write!(out, "\n{} members: ", members.len());
        for (i, (id, _)) in members.iter().take(TITLE_MEMBERS).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            escape(out, id);
        }
        if members.len() > TITLE_MEMBERS {
            let _ = write!(out, " and {} more", members.len() - TITLE_MEMBERS);
        }
        constraint_lines(out, &link_constraints(link));
        let _ = write!(out, "</title><g stroke=\"{LINK_STROKE}\" stroke-width=\"1.5\">");
        for (_, p) in &members {
            let _ = write!(out, "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>", p.x, p.y);
        }
        let _ = write!(
            out,
            "</g><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{s:.1}\" height=\"{s:.1}\" rx=\"2\" \
             fill=\"{HUB_FILL}\" stroke=\"{HUB_STROKE}\" stroke-width=\"1.5\"/></g>",
            x - HUB_RADIUS,
            y - HUB_RADIUS,
            s = 2.0 * HUB_RADIUS
        );
    }
    out.push_str("</g>");
}

fn nodes(out: &mut String, network: &xir::Network, layout: &Layout) {
    let _ = write!(out, "<g class=\"nodes\" stroke=\"{NODE_STROKE}\" stroke-width=\"1.5\">");
    for (node, p) in network.nodes.iter().zip(&layout.nodes) {
        out.push_str("<g class=\"node\" data-node=\"");
        escape(out, &node.id);
        out.push_str("\"><title>node ");
        escape(out, &node.id);
        constraint_lines(out, &node_constraints(node));
        out.push_str("</title>");
        let metal = node.metal.as_ref().is_some_and(|m| m.value);
        let fill = node
            .viz
            .as_ref()
            .map(|v| v.color.as_str())
            .filter(|c| safe_color(c))
            .unwrap_or(if metal { METAL_FILL } else { NODE_FILL });
        if metal {
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{s:.1}\" height=\"{s:.1}\" rx=\"4\" fill=\"{fill}\"/>",
                p.x - NODE_RADIUS,
                p.y - NODE_RADIUS,
                s = 2.0 * NODE_RADIUS
            );
        } else {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{NODE_RADIUS}\" fill=\"{fill}\"/>",
                p.x, p.y
            );
        }
        if layout.labels {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{LABEL_FILL}\" stroke=\"none\">",
                p.x,
                p.y + NODE_RADIUS + 4.0 + LABEL_FONT
            );
            escape(out, &label(&node.id));
            out.push_str("</text>");
        }
        out.push_str("</g>");
    }
    out.push_str("</g>");
}

fn constraint_lines(out: &mut String, lines: &[String]) {
    if lines.is_empty() {
        out.push_str("\nno constraints");
    }
    for line in lines {
        out.push('\n');
        escape(out, line);
    }
}

/// A color name or hex color from `node.viz`: anything else could break out of the attribute.
fn safe_color(c: &str) -> bool {
    let hex = c
        .strip_prefix('#')
        .is_some_and(|h| matches!(h.len(), 3 | 4 | 6 | 8) && h.bytes().all(|b| b.is_ascii_hexdigit()));
    hex || (!c.is_empty() && c.len() <= 24 && c.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// Escapes text for element content and double- or single-quoted attributes. Characters XML
/// 1.0 forbids become U+FFFD, so a hostile name cannot make the document ill-formed.
pub fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        let mut out = String::new();
        escape(&mut out, "<script>alert('x&y')</script>\"\u{1}\n");
        assert_eq!(out, "&lt;script&gt;alert(&#39;x&amp;y&#39;)&lt;/script&gt;&quot;\u{FFFD}&#10;");
    }

    #[test]
    fn colors() {
        assert!(safe_color("red") && safe_color("#a0b") && safe_color("#A0B1C2"));
        assert!(
            !safe_color("red\" onload=\"x")
                && !safe_color("url(#x)")
                && !safe_color("#12345")
                && !safe_color("")
        );
    }
}
