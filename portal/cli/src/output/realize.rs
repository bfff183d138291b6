//! Realizations, facilities and pools: their JSON and the text pieces their commands share.
//!
//! XIR models are large; the JSON here abbreviates an embedded XIR node, link or resource to
//! its id (and a facility model to a per-resource summary), and renders an endpoint's
//! `interface` oneof as the interface's name.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use trellis_api::portal::v1 as pb;
use trellis_api::xir;

use super::{name_or_number, table, timestamp_json};

/// An expiry time, or `never` when the realization has none.
pub fn expires(t: Option<&prost_types::Timestamp>) -> String {
    t.map_or_else(|| "never".to_owned(), ToString::to_string)
}

/// `VirtualMachine`, `BareMetal`, ...
pub fn node_kind_name(value: i32) -> String {
    name_or_number::<pb::node_realization::Kind>(value, pb::node_realization::Kind::as_str_name)
}

/// The short kind shown in tables: `VM` or `metal`.
pub fn node_kind_short(value: i32) -> String {
    match pb::node_realization::Kind::try_from(value) {
        Ok(pb::node_realization::Kind::VirtualMachine) => "VM".to_owned(),
        Ok(pb::node_realization::Kind::BareMetal) => "metal".to_owned(),
        _ => node_kind_name(value),
    }
}

/// A task status name (`Success`, `Pending`, `Error`, ...).
pub fn task_status_name(value: i32) -> String {
    name_or_number::<pb::task_status::StatusType>(value, pb::task_status::StatusType::as_str_name)
}

/// The host a node landed on: its resource, or for a VM the hypervisor it was allocated on.
pub fn node_host(n: &pb::NodeRealization) -> String {
    match (&n.resource, &n.vm_alloc) {
        (Some(r), _) if !r.id.is_empty() => r.id.clone(),
        (_, Some(a)) => a.resource.clone(),
        _ => String::new(),
    }
}

/// The name of the interface an endpoint uses, if any.
fn interface_name(e: &pb::Endpoint) -> Option<String> {
    use pb::endpoint::Interface;
    let name = match e.interface.as_ref()? {
        Interface::Phy(p) => p.name.clone(),
        Interface::Vlan(v) => v.name.clone(),
        Interface::Vtep(v) => v.name.clone(),
        Interface::Vf(v) => v.virtif.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
        Interface::Trunk(t) => t.port.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
        Interface::Veth(v) => v.name_a.clone(),
    };
    (!name.is_empty()).then_some(name)
}

/// `node@host:interface`, leaving out what is unknown.
pub fn endpoint_text(e: &pb::Endpoint) -> String {
    let mut text = e.node.clone();
    if !e.host.is_empty() {
        text.push('@');
        text.push_str(&e.host);
    }
    if let Some(name) = interface_name(e) {
        text.push(':');
        text.push_str(&name);
    }
    text
}

/// Nodes sorted by name: NODE, HOST, FACILITY, KIND, INFRANET ADDRESS.
pub fn nodes_table(r: &pb::Realization) -> String {
    let nodes: BTreeMap<_, _> = r.nodes.iter().collect();
    let rows: Vec<Vec<String>> = nodes
        .into_iter()
        .map(|(name, n)| {
            vec![
                name.clone(),
                node_host(n),
                n.facility.clone(),
                node_kind_short(n.kind),
                n.infranet_addr.clone(),
            ]
        })
        .collect();
    table(&["node", "host", "facility", "kind", "infranet address"], &rows)
}

/// The VLAN (or VNI) a link's segments use: `-` for links that stay on one host.
fn link_vlans(l: &pb::LinkRealization) -> String {
    let segments: BTreeMap<_, _> = l.segments.iter().collect();
    let tags: Vec<String> = segments
        .values()
        .filter_map(|s| match (s.vid, s.vni) {
            (_, vni) if vni != 0 => Some(format!("vni {vni}")),
            (0, _) => None,
            (vid, _) => Some(vid.to_string()),
        })
        .collect();
    if tags.is_empty() { "-".to_owned() } else { tags.join(", ") }
}

/// Links sorted by name: LINK, VLAN, ENDPOINTS, WAYPOINTS (switches crossed).
pub fn links_table(r: &pb::Realization) -> String {
    let links: BTreeMap<_, _> = r.links.iter().collect();
    let rows: Vec<Vec<String>> = links
        .into_iter()
        .map(|(name, l)| {
            let segments: BTreeMap<_, _> = l.segments.iter().collect();
            let endpoints: Vec<String> =
                segments.values().flat_map(|s| s.endpoints.iter().map(endpoint_text)).collect();
            let waypoints: Vec<String> =
                segments.values().flat_map(|s| s.waypoints.iter().map(|w| w.host.clone())).collect();
            vec![name.clone(), link_vlans(l), endpoints.join(", "), waypoints.join(", ")]
        })
        .collect();
    table(&["link", "vlan", "endpoints", "waypoints"], &rows)
}

/// A task tree, one task per line, children indented under their parent.
pub fn task_tree_text(tree: &pb::TaskTree) -> String {
    fn walk(tree: &pb::TaskTree, depth: usize, out: &mut String) {
        let (name, message) = tree.task.as_ref().map_or((String::new(), String::new()), |t| {
            (t.name.clone(), t.message.as_ref().map(|m| m.message.clone()).unwrap_or_default())
        });
        let mut line = format!("{}{:<10} {name}", "  ".repeat(depth), task_status_name(tree.highest_status));
        if !message.is_empty() {
            line.push_str(&format!(": {message}"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
        for sub in &tree.subtasks {
            walk(sub, depth + 1, out);
        }
    }
    let mut out = String::new();
    walk(tree, 0, &mut out);
    out
}

/// A diagnostic's level name (`Error`, `Warning`, ...).
pub fn diagnostic_level_name(value: i32) -> String {
    name_or_number::<pb::DiagnosticLevel>(value, pb::DiagnosticLevel::as_str_name)
}

/// `Error: message (guest a, host h, key=value)`.
pub fn diagnostic_text(d: &pb::Diagnostic) -> String {
    let mut context: Vec<String> = Vec::new();
    if !d.guest.is_empty() {
        context.push(format!("guest {}", d.guest));
    }
    if !d.host.is_empty() {
        context.push(format!("host {}", d.host));
    }
    let data: BTreeMap<_, _> = d.data.iter().collect();
    context.extend(data.into_iter().map(|(k, v)| format!("{k}={v}")));
    let mut text = format!("{}: {}", diagnostic_level_name(d.level), d.message);
    if !context.is_empty() {
        text.push_str(&format!(" ({})", context.join(", ")));
    }
    text
}

/// `Diagnostic` as JSON.
pub fn diagnostic_json(d: &pb::Diagnostic) -> Value {
    let data: BTreeMap<_, _> = d.data.iter().collect();
    json!({
        "message": d.message,
        "level": diagnostic_level_name(d.level),
        "data": data,
        "guest": d.guest,
        "host": d.host,
    })
}

fn endpoint_json(e: &pb::Endpoint) -> Value {
    json!({
        "facility": e.facility,
        "host": e.host,
        "node": e.node,
        "mac": e.mac,
        "interface": interface_name(e),
        "mtu": e.mtu,
        "virtual": e.r#virtual,
    })
}

fn waypoint_json(w: &pb::Waypoint) -> Value {
    use pb::waypoint::Interface;
    let vid = match &w.interface {
        Some(Interface::Access(a)) => Some(a.vid),
        Some(Interface::Tap(t)) => Some(t.vid),
        _ => None,
    };
    json!({ "facility": w.facility, "host": w.host, "vid": vid, "mtu": w.mtu })
}

fn segment_json(s: &pb::LinkSegment) -> Value {
    json!({
        "endpoints": s.endpoints.iter().map(endpoint_json).collect::<Vec<_>>(),
        "waypoints": s.waypoints.iter().map(waypoint_json).collect::<Vec<_>>(),
        "vid": s.vid,
        "vni": s.vni,
    })
}

fn node_json(n: &pb::NodeRealization) -> Value {
    json!({
        "node": { "id": n.node.as_ref().map(|x| x.id.clone()).unwrap_or_default() },
        "resource": n.resource.as_ref().map(|r| json!({ "id": r.id, "facility": r.facility })),
        "vmAlloc": n.vm_alloc.as_ref().map(|a| json!({
            "resource": a.resource,
            "facility": a.facility,
            "mzid": a.mzid,
            "node": a.node,
            "virtual": a.r#virtual,
        })),
        "facility": n.facility,
        "kind": node_kind_name(n.kind),
        "infranetAddr": n.infranet_addr,
    })
}

fn link_json(l: &pb::LinkRealization) -> Value {
    let segments: BTreeMap<_, _> = l.segments.iter().collect();
    let segments: Map<String, Value> =
        segments.into_iter().map(|(k, s)| (k.to_string(), segment_json(s))).collect();
    json!({
        "link": { "id": l.link.as_ref().map(|x| x.id.clone()).unwrap_or_default() },
        "segments": segments,
    })
}

/// `Realization` as JSON.
pub fn realization_json(r: &pb::Realization) -> Value {
    let nodes: BTreeMap<_, _> = r.nodes.iter().map(|(k, n)| (k.clone(), node_json(n))).collect();
    let links: BTreeMap<_, _> = r.links.iter().map(|(k, l)| (k.clone(), link_json(l))).collect();
    json!({
        "complete": r.complete,
        "id": r.id,
        "eid": r.eid,
        "pid": r.pid,
        "xhash": r.xhash,
        "nodes": nodes,
        "links": links,
        "creator": r.creator,
        "ver": r.ver,
        "created": timestamp_json(r.created.as_ref()),
        "expires": timestamp_json(r.expires.as_ref()),
        "embedVersion": r.embed_version,
    })
}

/// `RealizationSummary` as JSON.
pub fn realization_summary_json(s: &pb::RealizationSummary) -> Value {
    json!({
        "complete": s.complete,
        "id": s.id,
        "eid": s.eid,
        "pid": s.pid,
        "xhash": s.xhash,
        "creator": s.creator,
        "ver": s.ver,
        "created": timestamp_json(s.created.as_ref()),
        "expires": timestamp_json(s.expires.as_ref()),
        "numNodes": s.num_nodes,
        "numLinks": s.num_links,
    })
}

/// `TaskTree` as JSON.
pub fn task_tree_json(t: &pb::TaskTree) -> Value {
    let task = t.task.as_ref().map(|task| {
        json!({
            "id": task.id,
            "name": task.name,
            "message": task.message.as_ref().map(|m| m.message.clone()),
            "statusValue": task_status_name(task.status_value),
            "firstUpdated": timestamp_json(task.first_updated.as_ref()),
            "lastUpdated": timestamp_json(task.last_updated.as_ref()),
        })
    });
    json!({
        "highestStatus": task_status_name(t.highest_status),
        "lastUpdated": timestamp_json(t.last_updated.as_ref()),
        "numChildTasks": t.num_child_tasks,
        "task": task,
        "subtasks": t.subtasks.iter().map(task_tree_json).collect::<Vec<_>>(),
    })
}

/// `Facility` as JSON (without its XIR properties).
pub fn facility_json(f: &pb::Facility) -> Value {
    json!({
        "name": f.name,
        "address": f.address,
        "description": f.description,
        "accessMode": super::access_mode_name(f.access_mode),
        "members": super::members_json(&f.members),
        "certificate": f.certificate,
        "cacertificate": f.cacertificate,
        "ver": f.ver,
    })
}

/// What one XIR resource offers, summed over its parts.
pub struct ResourceSummary {
    /// The resource id.
    pub id: String,
    /// Role names (`Hypervisor`, `TbNode`, `Leaf`, ...).
    pub roles: Vec<String>,
    /// Allocation modes (`Virtual`, `Physical`, ...).
    pub alloc: Vec<String>,
    /// Cores over all processors.
    pub cores: u64,
    /// Bytes of memory.
    pub memory: u64,
    /// Bytes of disk.
    pub disk: u64,
    /// NIC ports.
    pub ports: usize,
}

impl ResourceSummary {
    /// Summarizes `r`.
    pub fn of(r: &xir::Resource) -> ResourceSummary {
        ResourceSummary {
            id: r.id.clone(),
            roles: r.roles.iter().map(|&x| name_or_number::<xir::Role>(x, xir::Role::as_str_name)).collect(),
            alloc: r
                .alloc
                .iter()
                .map(|&x| name_or_number::<xir::AllocMode>(x, xir::AllocMode::as_str_name))
                .collect(),
            cores: r.procs.iter().map(|p| u64::from(p.cores)).sum(),
            memory: r.memory.iter().map(|d| d.capacity).sum(),
            disk: r.disks.iter().map(|d| d.capacity).sum(),
            ports: r.ni_cs.iter().map(|n| n.ports.len()).sum(),
        }
    }

    /// As a table row: ID, ROLES, ALLOC, CORES, MEMORY, DISK, PORTS.
    pub fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.roles.join(","),
            self.alloc.join(","),
            self.cores.to_string(),
            bytes(self.memory),
            bytes(self.disk),
            self.ports.to_string(),
        ]
    }

    /// The headers matching [`ResourceSummary::row`].
    pub const HEADERS: [&str; 7] = ["resource", "roles", "alloc", "cores", "memory", "disk", "ports"];

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "roles": self.roles,
            "alloc": self.alloc,
            "cores": self.cores,
            "memory": self.memory,
            "disk": self.disk,
            "ports": self.ports,
        })
    }
}

/// An XIR facility model, summarized per resource.
pub fn facility_model_json(m: &xir::Facility) -> Value {
    json!({
        "id": m.id,
        "fqdn": m.fqdn,
        "resources": m.resources.iter().map(|r| ResourceSummary::of(r).json()).collect::<Vec<_>>(),
        "cables": m.cables.len(),
    })
}

/// `Pool` as JSON.
pub fn pool_json(p: &pb::Pool) -> Value {
    let facilities: BTreeMap<_, _> =
        p.facilities.iter().map(|(f, r)| (f.clone(), json!({ "resources": r.resources }))).collect();
    json!({
        "name": p.name,
        "description": p.description,
        "projects": p.projects,
        "facilities": facilities,
        "creator": p.creator,
        "ver": p.ver,
        "organizations": p.organizations,
        "priority": p.priority,
    })
}

/// A byte count in binary units: `512 B`, `1.5 KiB`, `31.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn realization() -> pb::Realization {
        let node = |host: &str, kind: pb::node_realization::Kind| pb::NodeRealization {
            resource: Some(xir::Resource { id: host.into(), facility: "local".into(), ..Default::default() }),
            facility: "local".into(),
            kind: kind as i32,
            infranet_addr: "172.30.0.2".into(),
            ..Default::default()
        };
        let endpoint = |node: &str, iface: Option<&str>| pb::Endpoint {
            node: node.into(),
            host: "h1".into(),
            interface: iface.map(|name| {
                pb::endpoint::Interface::Vlan(pb::VlanInterface {
                    name: name.into(),
                    vid: 12,
                    ..Default::default()
                })
            }),
            ..Default::default()
        };
        let segment = pb::LinkSegment {
            endpoints: vec![endpoint("b", Some("eth1.12")), endpoint("a", None)],
            waypoints: vec![pb::Waypoint { host: "leaf1".into(), ..Default::default() }],
            vid: 12,
            vni: 0,
        };
        pb::Realization {
            id: "r".into(),
            nodes: HashMap::from([
                ("b".to_owned(), node("h2", pb::node_realization::Kind::BareMetal)),
                ("a".to_owned(), node("h1", pb::node_realization::Kind::VirtualMachine)),
            ]),
            links: HashMap::from([(
                "l0".to_owned(),
                pb::LinkRealization { link: None, segments: HashMap::from([(0, segment)]) },
            )]),
            ..Default::default()
        }
    }

    #[test]
    fn nodes_and_links_print_as_tables() {
        let r = realization();
        assert_eq!(
            nodes_table(&r),
            "NODE  HOST  FACILITY  KIND   INFRANET ADDRESS\n\
             a     h1    local     VM     172.30.0.2\n\
             b     h2    local     metal  172.30.0.2\n"
        );
        assert_eq!(
            links_table(&r),
            "LINK  VLAN  ENDPOINTS           WAYPOINTS\n\
             l0    12    b@h1:eth1.12, a@h1  leaf1\n"
        );
        let v = realization_json(&r);
        assert_eq!(v["nodes"]["a"]["kind"], "VirtualMachine");
        assert_eq!(v["nodes"]["b"]["resource"]["id"], "h2");
        assert_eq!(v["links"]["l0"]["segments"]["0"]["endpoints"][0]["interface"], "eth1.12");
        assert_eq!(v["links"]["l0"]["segments"]["0"]["endpoints"][1]["interface"], Value::Null);
        assert_eq!(v["expires"], Value::Null);
        assert_eq!(expires(None), "never");
    }

    #[test]
    fn task_trees_indent_children() {
        let task = |name: &str, status: pb::task_status::StatusType| pb::TaskTree {
            highest_status: status as i32,
            task: Some(pb::TaskStatus { name: name.into(), ..Default::default() }),
            ..Default::default()
        };
        let mut root = task("realization r.e.p", pb::task_status::StatusType::Pending);
        root.subtasks = vec![task("node a", pb::task_status::StatusType::Success)];
        assert_eq!(task_tree_text(&root), "Pending    realization r.e.p\n  Success    node a\n");
    }

    #[test]
    fn diagnostics_name_their_context() {
        let d = pb::Diagnostic {
            message: "no host has 100000 cores".into(),
            level: pb::DiagnosticLevel::Error as i32,
            data: HashMap::from([("constraint".to_owned(), "proc.cores >= 100000".to_owned())]),
            guest: "a".into(),
            host: String::new(),
        };
        assert_eq!(
            diagnostic_text(&d),
            "Error: no host has 100000 cores (guest a, constraint=proc.cores >= 100000)"
        );
    }

    #[test]
    fn byte_counts_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(8 << 30), "8.0 GiB");
    }
}
