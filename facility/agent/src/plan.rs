//! A validated materialization: what the engine builds, with every name resolved.
//!
//! Validation happens once, here; the rest of the engine trusts the plan. Node fingerprints
//! decide what a re-materialization may keep: a node whose fingerprint is unchanged keeps its
//! namespace and container, anything else is rebuilt.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use trellis_facility_api::v1::{Materialization, User};
use trellis_types::{Error, Violation};

use crate::cidr::Cidr;
use crate::naming::Names;
use crate::routing::{self, Route};

/// One experiment interface of a node.
#[derive(Debug, Clone)]
pub(crate) struct IfacePlan {
    pub name: String,
    /// Index into `Plan::links`.
    pub link: usize,
    pub addrs: Vec<Cidr>,
    /// The netfilter queue (in the switch namespace) that delays what this interface sends
    /// into its link; unique in the materialization.
    pub queue: u16,
}

#[derive(Debug, Clone)]
pub(crate) struct NodePlan {
    pub name: String,
    pub netns: String,
    pub host_veth: String,
    pub cgroup: String,
    pub infra_addr: IpAddr,
    /// The image's root directory; `None` means the host's `/usr`.
    pub image: Option<PathBuf>,
    pub cores: u32,
    pub memory_bytes: u64,
    pub persistent: bool,
    pub ifaces: Vec<IfacePlan>,
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub(crate) struct LinkPlan {
    pub name: String,
    /// (node index, interface index in that node)
    pub endpoints: Vec<(usize, usize)>,
    pub capacity_bps: u64,
    pub latency_us: u64,
    pub loss: f64,
}

impl LinkPlan {
    /// Whether packets on this link go through the delay line (latency or loss).
    pub fn delays(&self) -> bool {
        self.latency_us > 0 || self.loss > 0.0
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub mzid: String,
    pub names: Names,
    pub spec: Materialization,
    pub subnet: Cidr,
    pub gateway: IpAddr,
    pub nodes: Vec<NodePlan>,
    pub links: Vec<LinkPlan>,
    pub users: Vec<User>,
    pub ssh_ca_public_key: String,
    /// Per node (same order as `nodes`).
    pub routes: Vec<Vec<Route>>,
    /// Per node: the text of its `/etc/hosts`.
    pub hosts: Vec<String>,
}

impl Plan {
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Whether there is a switch namespace (any experiment link at all).
    pub fn has_links(&self) -> bool {
        !self.links.is_empty()
    }
}

fn hex_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a materialization id is safe as a directory name and readable in logs.
pub(crate) fn valid_mzid(mzid: &str) -> bool {
    !mzid.is_empty()
        && mzid.len() <= 200
        && !mzid.starts_with('.')
        && mzid.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn valid_iface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "lo"
        && name != "eth0"
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
        && !matches!(name, "root" | "sshd" | "nobody")
}

fn valid_image_name(name: &str) -> bool {
    !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Collects violations so a caller learns every problem of a spec at once.
#[derive(Default)]
struct Violations(Vec<Violation>);

impl Violations {
    fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(Violation::new(field, description));
    }
}

/// Validates `spec` and resolves everything the engine needs.
pub(crate) fn plan(spec: &Materialization, images_dir: &Path) -> Result<Plan, Error> {
    let mut bad = Violations::default();
    if !valid_mzid(&spec.mzid) {
        bad.add("mzid", "must be 1-200 letters, digits, '.', '-' or '_' and not start with '.'");
    }
    let subnet = Cidr::parse(&spec.infranet_subnet).map(Cidr::network);
    let (subnet, gateway) = match subnet {
        Some(s) if s.prefix + 2 <= if s.addr.is_ipv4() { 32 } else { 128 } => (s, s.first_host()),
        _ => {
            bad.add(
                "infranet_subnet",
                format!("{:?} is not a CIDR subnet with room for nodes", spec.infranet_subnet),
            );
            let fallback = Cidr { addr: IpAddr::from([0, 0, 0, 0]), prefix: 0 };
            (fallback, fallback.addr)
        }
    };
    let names = Names::new(&spec.mzid);

    let link_index: HashMap<&str, usize> =
        spec.links.iter().enumerate().map(|(i, l)| (l.name.as_str(), i)).collect();
    if link_index.len() != spec.links.len() {
        bad.add("links", "link names must be unique");
    }

    let mut nodes = Vec::with_capacity(spec.nodes.len());
    let mut next_queue: u16 = 1;
    let mut seen_nodes = HashSet::new();
    let mut seen_keys = HashMap::new();
    let mut seen_addrs = HashSet::new();
    for (ni, node) in spec.nodes.iter().enumerate() {
        let field = format!("nodes[{ni}]");
        if !valid_node_name(&node.name) {
            bad.add(format!("{field}.name"), format!("{:?} is not a valid host name", node.name));
        } else if !seen_nodes.insert(node.name.as_str()) {
            bad.add(format!("{field}.name"), format!("node {} appears twice", node.name));
        } else if let Some(other) = seen_keys.insert(Names::node_key(&node.name), node.name.as_str()) {
            bad.add(
                format!("{field}.name"),
                format!("nodes {other} and {} hash to the same short name here; rename one", node.name),
            );
        }
        let infra_addr = match node.infranet_addr.parse::<IpAddr>() {
            Ok(a) if subnet.contains(a) && a != gateway && a != subnet.addr => {
                if !seen_addrs.insert(a) {
                    bad.add(format!("{field}.infranet_addr"), format!("{a} is used by two nodes"));
                }
                a
            }
            _ => {
                bad.add(
                    format!("{field}.infranet_addr"),
                    format!("{:?} is not a host address in {}", node.infranet_addr, spec.infranet_subnet),
                );
                gateway
            }
        };
        let image = match node.image.as_str() {
            "" | "default" => None,
            name if valid_image_name(name) && images_dir.join(name).join("usr").is_dir() => {
                Some(images_dir.join(name))
            }
            name => {
                bad.add(
                    format!("{field}.image"),
                    format!("no image {name:?} here (looked for {}/usr)", images_dir.join(name).display()),
                );
                None
            }
        };
        let mut ifaces = Vec::with_capacity(node.interfaces.len());
        let mut iface_names = HashSet::new();
        for (ii, iface) in node.interfaces.iter().enumerate() {
            let ifield = format!("{field}.interfaces[{ii}]");
            if !valid_iface_name(&iface.name) {
                bad.add(
                    format!("{ifield}.name"),
                    format!(
                        "{:?} is not a usable interface name (1-15 characters, not lo or eth0)",
                        iface.name
                    ),
                );
            } else if !iface_names.insert(iface.name.as_str()) {
                bad.add(
                    format!("{ifield}.name"),
                    format!("{} appears twice in node {}", iface.name, node.name),
                );
            }
            let Some(&link) = link_index.get(iface.link.as_str()) else {
                bad.add(format!("{ifield}.link"), format!("no link named {:?}", iface.link));
                continue;
            };
            let mut addrs = Vec::with_capacity(iface.addrs.len());
            for (ai, a) in iface.addrs.iter().enumerate() {
                match Cidr::parse(a) {
                    Some(c) => addrs.push(c),
                    None => {
                        bad.add(format!("{ifield}.addrs[{ai}]"), format!("{a:?} is not an address/prefix"))
                    }
                }
            }
            let queue = next_queue;
            next_queue = next_queue.saturating_add(1);
            ifaces.push(IfacePlan { name: iface.name.clone(), link, addrs, queue });
        }
        nodes.push(NodePlan {
            name: node.name.clone(),
            netns: names.node_netns(&node.name),
            host_veth: names.host_veth(&node.name),
            cgroup: names.cgroup_path(&node.name),
            infra_addr,
            image,
            cores: node.cores,
            memory_bytes: node.memory_bytes,
            persistent: node.persistent,
            ifaces,
            fingerprint: String::new(),
        });
    }

    let node_index: HashMap<&str, usize> =
        nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let mut links = Vec::with_capacity(spec.links.len());
    let mut attached: HashSet<(usize, usize)> = HashSet::new();
    for (li, link) in spec.links.iter().enumerate() {
        let field = format!("links[{li}]");
        if link.name.is_empty() {
            bad.add(format!("{field}.name"), "a link needs a name");
        }
        if link.endpoints.len() < 2 {
            bad.add(format!("{field}.endpoints"), "a link needs at least two endpoints");
        }
        if !(0.0..=1.0).contains(&link.loss) {
            bad.add(format!("{field}.loss"), "loss is a fraction between 0 and 1");
        }
        let mut endpoints = Vec::with_capacity(link.endpoints.len());
        let mut on_link = HashSet::new();
        for (ei, ep) in link.endpoints.iter().enumerate() {
            let efield = format!("{field}.endpoints[{ei}]");
            let Some(&n) = node_index.get(ep.node.as_str()) else {
                bad.add(format!("{efield}.node"), format!("no node named {:?}", ep.node));
                continue;
            };
            let Some(i) = nodes[n].ifaces.iter().position(|f| f.name == ep.interface) else {
                bad.add(
                    format!("{efield}.interface"),
                    format!("node {} has no interface {:?}", ep.node, ep.interface),
                );
                continue;
            };
            if nodes[n].ifaces[i].link != li {
                bad.add(
                    format!("{efield}.interface"),
                    format!("{}.{} belongs to another link", ep.node, ep.interface),
                );
            }
            if !on_link.insert(n) {
                bad.add(format!("{efield}.node"), format!("node {} is on link {} twice", ep.node, link.name));
            }
            attached.insert((n, i));
            endpoints.push((n, i));
        }
        links.push(LinkPlan {
            name: link.name.clone(),
            endpoints,
            capacity_bps: link.capacity_bps,
            latency_us: link.latency_us,
            loss: link.loss,
        });
    }
    for (n, node) in nodes.iter().enumerate() {
        for (i, iface) in node.ifaces.iter().enumerate() {
            if !attached.contains(&(n, i)) {
                bad.add(
                    format!("nodes[{n}].interfaces[{i}]"),
                    format!(
                        "{}.{} is not an endpoint of link {}",
                        node.name, iface.name, spec.links[iface.link].name
                    ),
                );
            }
        }
    }

    if next_queue == u16::MAX {
        bad.add("nodes", "more experiment interfaces than this agent can emulate (65534)");
    }
    let mut user_names = HashSet::new();
    let mut uids = HashSet::new();
    for (ui, user) in spec.users.iter().enumerate() {
        if !valid_user_name(&user.name) {
            bad.add(format!("users[{ui}].name"), format!("{:?} is not a usable login name", user.name));
        } else if !user_names.insert(user.name.as_str()) {
            bad.add(format!("users[{ui}].name"), format!("user {} appears twice", user.name));
        }
        if user.uid == 0 || user.uid == 65534 || user.gid == 0 || !uids.insert(user.uid) {
            bad.add(format!("users[{ui}].uid"), "uid and gid must be unique and neither 0 nor 65534");
        }
        if user.authorized_keys.iter().any(|k| k.contains('\n')) {
            bad.add(format!("users[{ui}].authorized_keys"), "each key is one line");
        }
    }
    if spec.ssh_ca_public_key.trim().contains('\n') {
        bad.add("ssh_ca_public_key", "one OpenSSH public key line");
    }
    if !bad.0.is_empty() {
        return Err(Error::InvalidArgument { violations: bad.0 });
    }

    for node in &mut nodes {
        node.fingerprint = node_fingerprint(node, &links, &spec.infranet_subnet);
    }
    let routes =
        if spec.static_routing { routing::static_routes(&nodes, &links) } else { vec![vec![]; nodes.len()] };
    let hosts = routing::hosts_files(&nodes, &links, &spec.mzid);
    Ok(Plan {
        mzid: spec.mzid.clone(),
        names,
        spec: spec.clone(),
        subnet,
        gateway,
        nodes,
        links,
        users: spec.users.clone(),
        ssh_ca_public_key: spec.ssh_ca_public_key.trim().to_owned(),
        routes,
        hosts,
    })
}

/// Everything that, when changed, needs the node's namespace or container rebuilt. Users,
/// keys, hosts, routes and link latency or loss (applied in the switch namespace) are not in
/// it: they change in place.
fn node_fingerprint(node: &NodePlan, links: &[LinkPlan], subnet: &str) -> String {
    let mut text = format!(
        "node {} {} {subnet} image={:?} cores={} mem={} persistent={}\n",
        node.name, node.infra_addr, node.image, node.cores, node.memory_bytes, node.persistent
    );
    for iface in &node.ifaces {
        let link = &links[iface.link];
        let addrs: BTreeSet<String> = iface.addrs.iter().map(Cidr::to_string).collect();
        text.push_str(&format!(
            "iface {} {addrs:?} link {} cap={}\n",
            iface.name, link.name, link.capacity_bps
        ));
    }
    hex_digest(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_facility_api::v1::{Endpoint, Interface, Link, Node};

    fn spec() -> Materialization {
        let node = |name: &str, addr: &str, ip: &str| Node {
            name: name.into(),
            infranet_addr: addr.into(),
            interfaces: vec![Interface { name: "eth1".into(), link: "ab".into(), addrs: vec![ip.into()] }],
            ..Default::default()
        };
        Materialization {
            mzid: "r.e.p".into(),
            infranet_subnet: "10.4.0.0/24".into(),
            nodes: vec![node("a", "10.4.0.10", "10.0.0.1/24"), node("b", "10.4.0.11", "10.0.0.2/24")],
            links: vec![Link {
                name: "ab".into(),
                endpoints: vec![
                    Endpoint { node: "a".into(), interface: "eth1".into() },
                    Endpoint { node: "b".into(), interface: "eth1".into() },
                ],
                latency_us: 1000,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn violations(spec: &Materialization) -> Vec<String> {
        match plan(spec, Path::new("/nonexistent")) {
            Err(Error::InvalidArgument { violations }) => violations.into_iter().map(|v| v.field).collect(),
            other => panic!("expected violations, got {:?}", other.map(|p| p.mzid)),
        }
    }

    #[test]
    fn a_valid_spec_resolves_names_and_queues() {
        let plan = plan(&spec(), Path::new("/nonexistent")).unwrap();
        assert_eq!(plan.gateway.to_string(), "10.4.0.1");
        assert_eq!(plan.nodes[0].netns, Names::new("r.e.p").node_netns("a"));
        assert_ne!(plan.nodes[0].ifaces[0].queue, plan.nodes[1].ifaces[0].queue);
        assert!(plan.links[0].delays());
        assert!(plan.hosts[0].contains("10.0.0.2\tb\n"));
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut bad = spec();
        bad.mzid = "../escape".into();
        bad.nodes[0].infranet_addr = "10.4.0.1".into(); // the gateway
        bad.nodes[1].name = "B_1".into();
        bad.nodes[1].interfaces[0].name = "eth0".into();
        bad.nodes[0].interfaces[0].addrs = vec!["10.0.0.1".into()];
        bad.links[0].loss = 1.5;
        bad.nodes[0].image = "nope".into();
        let fields = violations(&bad);
        for field in [
            "mzid",
            "nodes[0].infranet_addr",
            "nodes[1].name",
            "nodes[1].interfaces[0].name",
            "nodes[0].interfaces[0].addrs[0]",
            "links[0].loss",
            "nodes[0].image",
        ] {
            assert!(fields.iter().any(|f| f == field), "{field} missing from {fields:?}");
        }
    }

    #[test]
    fn links_and_interfaces_must_agree() {
        let mut bad = spec();
        bad.links[0].endpoints.pop();
        let fields = violations(&bad);
        assert!(fields.contains(&"links[0].endpoints".to_owned()), "{fields:?}");
        assert!(fields.contains(&"nodes[1].interfaces[0]".to_owned()), "{fields:?}");

        let mut bad = spec();
        bad.nodes[1].interfaces[0].link = "elsewhere".into();
        assert!(violations(&bad).contains(&"nodes[1].interfaces[0].link".to_owned()));
    }

    #[test]
    fn fingerprints_ignore_what_changes_in_place() {
        let base = plan(&spec(), Path::new("/nonexistent")).unwrap();
        let mut slower = spec();
        slower.links[0].latency_us = 50_000;
        slower.static_routing = true;
        let slower = plan(&slower, Path::new("/nonexistent")).unwrap();
        assert_eq!(base.nodes[0].fingerprint, slower.nodes[0].fingerprint);
        let mut narrower = spec();
        narrower.links[0].capacity_bps = 1_000_000;
        let narrower = plan(&narrower, Path::new("/nonexistent")).unwrap();
        assert_ne!(base.nodes[0].fingerprint, narrower.nodes[0].fingerprint);
    }
}
