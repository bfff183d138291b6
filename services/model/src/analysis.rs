//! Static analysis of a compiled experiment network: errors that make it unrealizable,
//! warnings about things that probably are not what the user meant, and a summary.
//!
//! Every diagnostic names the element it is about (`node a`, `link a.0~b.0`, `network`), so a
//! user can find it in their model.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use trellis_api::xir;

/// Images the built-in facilities can boot (Merge's names); others are refused.
pub const SUPPORTED_IMAGES: &[&str] =
    &["bullseye", "bookworm", "buster", "1804", "2004", "2204", "2404", "kali"];

/// The most cores one node may ask for; beyond this no facility has a machine.
const MAX_CORES: u32 = 1024;
/// The most memory one node may ask for (16 TiB).
const MAX_MEMORY: u64 = 16 << 40;
/// Latency above which a link is almost certainly a unit mistake (10 s, in nanoseconds).
const SUSPICIOUS_LATENCY_NS: u64 = 10_000_000_000;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    /// The model cannot be realized as written.
    Error,
    /// The model can be realized but probably does not do what was meant.
    Warning,
}

/// One finding about one element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub level: Level,
    /// `network`, `node <id>` or `link <id>`.
    pub element: String,
    pub message: String,
}

/// Counts describing a network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub nodes: usize,
    /// Point-to-point links (two endpoints).
    pub links: usize,
    /// LANs (three or more endpoints).
    pub lans: usize,
    /// Constraints set on nodes, links and the network.
    pub constraints: usize,
}

/// The result of analysing a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    pub summary: Summary,
    pub diagnostics: Vec<Diagnostic>,
}

impl Analysis {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.level == Level::Error)
    }

    /// The errors, one line each.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.level == Level::Error)
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.element, self.message)
    }
}

struct Findings(Vec<Diagnostic>);

impl Findings {
    fn error(&mut self, element: impl Into<String>, message: impl Into<String>) {
        self.0.push(Diagnostic { level: Level::Error, element: element.into(), message: message.into() });
    }

    fn warning(&mut self, element: impl Into<String>, message: impl Into<String>) {
        self.0.push(Diagnostic { level: Level::Warning, element: element.into(), message: message.into() });
    }
}

fn op(value: i32) -> xir::Operator {
    xir::Operator::try_from(value).unwrap_or(xir::Operator::OpUndefined)
}

/// Node names become host names (`<node>.infra.<mzid>`): DNS labels.
fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Analyses a compiled network.
pub fn analyze(net: &xir::Network) -> Analysis {
    let mut f = Findings(Vec::new());
    let mut summary = Summary { nodes: net.nodes.len(), ..Default::default() };
    if net.nodes.is_empty() {
        f.error("network", "the network has no nodes");
    }
    if let Some(p) = &net.parameters {
        summary.constraints += usize::from(p.routing.is_some()) + usize::from(p.addressing.is_some());
    }

    let mut nodes: HashMap<&str, &xir::Node> = HashMap::new();
    for node in &net.nodes {
        let element = format!("node {}", node.id);
        if nodes.insert(node.id.as_str(), node).is_some() {
            f.error(&element, format!("more than one node is named {:?}", node.id));
        }
        if !valid_hostname(&node.id) {
            f.error(&element, "node names become host names: use letters, digits and '-' (at most 63)");
        }
        summary.constraints += check_node(&mut f, &element, node);
    }

    let mut link_ids = HashSet::new();
    let mut attached: HashMap<&str, usize> = HashMap::new();
    for link in &net.links {
        let element = format!("link {}", link.id);
        if !link_ids.insert(link.id.as_str()) {
            f.error(&element, "more than one link has this id");
        }
        match link.endpoints.len() {
            0 | 1 => f.error(
                &element,
                format!("a link needs at least two endpoints, it has {}", link.endpoints.len()),
            ),
            2 => summary.links += 1,
            _ => summary.lans += 1,
        }
        let mut seen = HashSet::new();
        for endpoint in &link.endpoints {
            let Some(socket) = &endpoint.socket else {
                f.error(&element, format!("endpoint {} is not attached to any node", endpoint.index));
                continue;
            };
            if !nodes.contains_key(socket.element.as_str()) {
                f.error(
                    &element,
                    format!("endpoint refers to node {:?}, which does not exist", socket.element),
                );
                continue;
            }
            *attached.entry(socket.element.as_str()).or_default() += 1;
            if !seen.insert((socket.element.as_str(), socket.index)) {
                f.error(&element, format!("node {} socket {} appears twice", socket.element, socket.index));
            }
        }
        summary.constraints += check_link(&mut f, &element, link);
    }

    for node in &net.nodes {
        for socket in &node.sockets {
            if let Some(endpoint) = &socket.endpoint
                && !endpoint.element.is_empty()
                && !link_ids.contains(endpoint.element.as_str())
            {
                f.error(
                    format!("node {}", node.id),
                    format!(
                        "socket {} refers to link {:?}, which does not exist",
                        socket.index, endpoint.element
                    ),
                );
            }
        }
        if net.nodes.len() > 1 && !attached.contains_key(node.id.as_str()) {
            f.warning(format!("node {}", node.id), "the node is not connected to any link");
        }
    }

    f.0.sort_by(|a, b| (a.level, &a.element).cmp(&(b.level, &b.element)));
    Analysis { summary, diagnostics: f.0 }
}

/// Checks one node's constraints; returns how many it sets.
fn check_node(f: &mut Findings, element: &str, node: &xir::Node) -> usize {
    let mut count = 0;
    if let Some(cores) = node.proc.as_ref().and_then(|p| p.cores.as_ref()) {
        count += 1;
        match (op(cores.op), cores.value) {
            (xir::Operator::Eq | xir::Operator::Le | xir::Operator::Lt, 0) => {
                f.error(element, "asks for zero processor cores")
            }
            (_, v) if v > MAX_CORES => {
                f.error(element, format!("asks for {v} cores; no machine has more than {MAX_CORES}"))
            }
            _ => {}
        }
    }
    if let Some(memory) = node.memory.as_ref().and_then(|m| m.capacity.as_ref()) {
        count += 1;
        match (op(memory.op), memory.value) {
            (xir::Operator::Eq | xir::Operator::Le | xir::Operator::Lt, 0) => {
                f.error(element, "asks for no memory")
            }
            (_, v) if v > MAX_MEMORY => {
                f.error(element, format!("asks for {v} bytes of memory, more than any machine has"))
            }
            (_, v) if v > 0 && v < (64 << 20) => {
                f.warning(element, format!("asks for only {v} bytes of memory; did you mean gb({v})?"))
            }
            _ => {}
        }
    }
    for disk in &node.disks {
        if let Some(capacity) = &disk.capacity {
            count += 1;
            if capacity.value == 0 {
                f.error(element, "has a disk of zero capacity");
            }
        }
    }
    let metal = node.metal.as_ref().map(|c| c.value);
    let virt = node.virt.as_ref().map(|c| c.value);
    count += usize::from(metal.is_some()) + usize::from(virt.is_some());
    if metal == Some(true) && virt == Some(true) {
        f.error(element, "cannot be both bare metal and a virtual machine");
    }
    if let Some(image) = &node.image {
        count += 1;
        if op(image.op) == xir::Operator::Eq && !SUPPORTED_IMAGES.contains(&image.value.as_str()) {
            f.error(
                element,
                format!(
                    "image {:?} is not available (available: {})",
                    image.value,
                    SUPPORTED_IMAGES.join(", ")
                ),
            );
        }
    }
    for constraint in [&node.host, &node.platform].into_iter().flatten() {
        count += 1;
        if constraint.value.is_empty() {
            f.error(element, "pins the node to an empty host or platform name");
        }
    }
    for socket in &node.sockets {
        if let Some(port) = &socket.port {
            count += usize::from(port.capacity.is_some())
                + usize::from(port.model.is_some())
                + usize::from(port.queues.is_some())
                + usize::from(port.sriov_vf.is_some());
            if port.capacity.as_ref().is_some_and(|c| c.value == 0 && op(c.op) == xir::Operator::Eq) {
                f.error(element, format!("socket {} asks for a zero-capacity port", socket.index));
            }
        }
    }
    count
}

/// Checks one link's constraints; returns how many it sets.
fn check_link(f: &mut Findings, element: &str, link: &xir::Link) -> usize {
    let mut count = 0;
    // mergexp documents that capacity, latency and loss always act as `==`.
    let ignored_op = |f: &mut Findings, what: &str, o: i32| {
        if !matches!(op(o), xir::Operator::Eq | xir::Operator::OpUndefined) {
            f.warning(element, format!("the operator on {what} is ignored: it always means =="));
        }
    };
    if let Some(capacity) = &link.capacity {
        count += 1;
        ignored_op(f, "capacity", capacity.op);
        if capacity.value == 0 {
            f.error(element, "has zero capacity; nothing could cross it");
        }
    }
    if let Some(latency) = &link.latency {
        count += 1;
        ignored_op(f, "latency", latency.op);
        if latency.value > SUSPICIOUS_LATENCY_NS {
            f.warning(
                element,
                format!(
                    "latency of {} s is unusually high; latency is in nanoseconds (use ms())",
                    latency.value / 1_000_000_000
                ),
            );
        }
    }
    if let Some(loss) = &link.loss {
        count += 1;
        ignored_op(f, "loss", loss.op);
        if !(0.0..=1.0).contains(&loss.value) || loss.value.is_nan() {
            f.error(element, format!("loss {} is not a probability between 0 and 1", loss.value));
        } else if loss.value == 1.0 {
            f.warning(element, "loses every packet");
        }
    }
    if let Some(layer) = &link.layer {
        count += 1;
        if !(1..=3).contains(&layer.value) {
            f.error(element, format!("layer {} does not exist (1, 2 or 3)", layer.value));
        }
    }
    count += usize::from(link.kind.is_some());
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq64(value: u64) -> Option<xir::Uint64Constraint> {
        Some(xir::Uint64Constraint { op: xir::Operator::Eq as i32, value })
    }

    fn node(id: &str) -> xir::Node {
        xir::Node { id: id.into(), ..Default::default() }
    }

    fn link(id: &str, ends: &[&str]) -> xir::Link {
        xir::Link {
            id: id.into(),
            endpoints: ends
                .iter()
                .enumerate()
                .map(|(i, n)| xir::Endpoint {
                    index: i as i32,
                    socket: Some(xir::Ref { element: (*n).into(), ..Default::default() }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn summarizes_links_and_lans() {
        let net = xir::Network {
            nodes: vec![node("a"), node("b"), node("c")],
            links: vec![link("l1", &["a", "b"]), link("l2", &["a", "b", "c"])],
            ..Default::default()
        };
        let analysis = analyze(&net);
        assert_eq!(analysis.summary, Summary { nodes: 3, links: 1, lans: 1, constraints: 0 });
        assert!(analysis.diagnostics.is_empty(), "{:?}", analysis.diagnostics);
    }

    #[test]
    fn finds_structural_errors() {
        let net = xir::Network {
            nodes: vec![node("a"), node("a"), node("bad_name")],
            links: vec![link("l1", &["a", "ghost"]), link("l2", &["a"])],
            ..Default::default()
        };
        let analysis = analyze(&net);
        let text: Vec<String> = analysis.diagnostics.iter().map(|d| d.to_string()).collect();
        let has = |s: &str| text.iter().any(|t| t.contains(s));
        assert!(has("more than one node is named \"a\""), "{text:?}");
        assert!(has("node \"ghost\", which does not exist"), "{text:?}");
        assert!(has("at least two endpoints"), "{text:?}");
        assert!(has("node bad_name: node names become host names"), "{text:?}");
        assert!(analysis.has_errors());
    }

    #[test]
    fn finds_impossible_constraints() {
        let mut a = node("a");
        a.metal = Some(xir::BoolConstraint { op: xir::Operator::Eq as i32, value: true });
        a.virt = Some(xir::BoolConstraint { op: xir::Operator::Eq as i32, value: true });
        a.image = Some(xir::StringConstraint { op: xir::Operator::Eq as i32, value: "windows95".into() });
        a.proc = Some(xir::ProcSpec {
            cores: Some(xir::Uint32Constraint { op: xir::Operator::Ge as i32, value: 100_000 }),
            ..Default::default()
        });
        let mut l = link("l1", &["a", "b"]);
        l.capacity = eq64(0);
        l.loss = Some(xir::FloatConstraint { op: xir::Operator::Eq as i32, value: 1.5 });
        l.layer = eq64(7);
        l.latency = Some(xir::Uint64Constraint { op: xir::Operator::Ge as i32, value: 60_000_000_000 });
        let net = xir::Network { nodes: vec![a, node("b")], links: vec![l], ..Default::default() };
        let analysis = analyze(&net);
        let text: Vec<String> = analysis.diagnostics.iter().map(|d| d.to_string()).collect();
        for expected in [
            "error: node a: cannot be both bare metal and a virtual machine",
            "error: node a: image \"windows95\" is not available",
            "error: node a: asks for 100000 cores",
            "error: link l1: has zero capacity",
            "error: link l1: loss 1.5 is not a probability",
            "error: link l1: layer 7 does not exist",
            "warning: link l1: latency of 60 s is unusually high",
            "warning: link l1: the operator on latency is ignored",
        ] {
            assert!(text.iter().any(|t| t.starts_with(expected)), "missing {expected:?} in {text:#?}");
        }
        // metal, virt, image, cores on the node; capacity, loss, layer, latency on the link.
        assert_eq!(analysis.summary.constraints, 8);
    }
}
