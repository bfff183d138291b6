//! Materializations: their JSON, node tables, the files `trellis nodes generate` writes, the
//! status tree and the progress line `trellis materialize --sync` shows.
//!
//! Node names come from the node's XIR model (`model.id`) for bare metal and from the VM's
//! allocation (`vm_alloc.node`) for VMs, which is where Merge puts them.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};
use trellis_api::portal::v1 as pb;

use super::{table, task_status_name, timestamp_json};

/// One node of a materialization, as the CLI shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatNode {
    /// The experiment node's name.
    pub name: String,
    /// The facility it runs on.
    pub facility: String,
    /// The facility resource: the machine itself, or the hypervisor of a VM.
    pub host: String,
    /// Bare metal rather than a VM.
    pub metal: bool,
    /// Its address on the facility's infrastructure network (empty until assigned).
    pub infranet_addr: String,
}

impl MatNode {
    /// `metal` or `VM`.
    pub fn kind(&self) -> &'static str {
        if self.metal { "metal" } else { "VM" }
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "name": self.name,
            "facility": self.facility,
            "host": self.host,
            "kind": self.kind(),
            "infranetAddr": self.infranet_addr,
        })
    }
}

fn vm_name(vm: &pb::VirtualMachine) -> String {
    match &vm.vm_alloc {
        Some(a) if !a.node.is_empty() => a.node.clone(),
        Some(a) => a.model.as_ref().map(|m| m.id.clone()).unwrap_or_default(),
        None => String::new(),
    }
}

/// Every node of `m`, sorted by name.
pub fn mat_nodes(m: &pb::Materialization) -> Vec<MatNode> {
    let metal = m.metal.iter().map(|b| MatNode {
        name: b.model.as_ref().map(|x| x.id.clone()).unwrap_or_default(),
        facility: b.facility.clone(),
        host: b.resource.clone(),
        metal: true,
        infranet_addr: b.infranet_addr.clone(),
    });
    let vms = m.vms.iter().map(|vm| MatNode {
        name: vm_name(vm),
        facility: vm.vm_alloc.as_ref().map(|a| a.facility.clone()).unwrap_or_default(),
        host: vm.vm_alloc.as_ref().map(|a| a.resource.clone()).unwrap_or_default(),
        metal: false,
        infranet_addr: vm.infranet_addr.clone(),
    });
    let mut nodes: Vec<MatNode> = metal.chain(vms).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    nodes
}

/// NODE, FACILITY, HOST, KIND, INFRANET ADDRESS.
pub fn mat_nodes_table(nodes: &[MatNode]) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.facility.clone(),
                n.host.clone(),
                n.kind().to_owned(),
                n.infranet_addr.clone(),
            ]
        })
        .collect();
    table(&["node", "facility", "host", "kind", "infranet address"], &rows)
}

/// An Ansible INI inventory: every node in `[all]` with its infranet address as
/// `ansible_host`, then groups `metal` and `vms` for the nodes of each kind.
pub fn inventory(nodes: &[MatNode]) -> String {
    let mut out = String::from("[all]\n");
    for n in nodes {
        out.push_str(&n.name);
        if !n.infranet_addr.is_empty() {
            out.push_str(&format!(" ansible_host={}", n.infranet_addr));
        }
        out.push('\n');
    }
    for (group, metal) in [("metal", true), ("vms", false)] {
        let members: Vec<&str> = nodes.iter().filter(|n| n.metal == metal).map(|n| n.name.as_str()).collect();
        if !members.is_empty() {
            out.push_str(&format!("\n[{group}]\n"));
            members.iter().for_each(|m| out.push_str(&format!("{m}\n")));
        }
    }
    out
}

/// `/etc/hosts` lines, `<addr> <node> <node>.infra.<mzid>`; a node without an address yet
/// becomes a comment, so the output is always a valid hosts file.
pub fn etchosts(mzid: &str, nodes: &[MatNode]) -> String {
    let mut out = String::new();
    for n in nodes {
        if n.infranet_addr.is_empty() {
            out.push_str(&format!("# {} has no infranet address yet\n", n.name));
        } else {
            out.push_str(&format!("{} {} {}.infra.{mzid}\n", n.infranet_addr, n.name, n.name));
        }
    }
    out
}

/// `Ingress` as JSON.
pub fn ingress_json(i: &pb::Ingress) -> Value {
    json!({
        "mzid": i.mzid,
        "protocol": i.protocol,
        "hostname": i.hostname,
        "hostport": i.hostport,
        "hostaddr": i.hostaddr,
        "gateway": i.gateway,
        "gatewayport": i.gatewayport,
        "ingress": i.ingress,
    })
}

/// PROTOCOL, NODE, PORT, GATEWAY, INGRESS, sorted by node, port and protocol.
pub fn ingresses_table(ingresses: &[pb::Ingress]) -> String {
    let mut sorted: Vec<&pb::Ingress> = ingresses.iter().collect();
    sorted
        .sort_by(|a, b| (&a.hostname, a.hostport, &a.protocol).cmp(&(&b.hostname, b.hostport, &b.protocol)));
    let rows: Vec<Vec<String>> = sorted
        .into_iter()
        .map(|i| {
            let gateway =
                if i.gateway.is_empty() { String::new() } else { format!("{}:{}", i.gateway, i.gatewayport) };
            vec![i.protocol.clone(), i.hostname.clone(), i.hostport.to_string(), gateway, i.ingress.clone()]
        })
        .collect();
    table(&["protocol", "node", "port", "gateway", "ingress"], &rows)
}

/// `MaterializationSummary` as JSON.
pub fn materialization_summary_json(s: &pb::MaterializationSummary) -> Value {
    json!({
        "rid": s.rid,
        "eid": s.eid,
        "pid": s.pid,
        "numMetal": s.num_metal,
        "numVirtual": s.num_virtual,
        "numLinks": s.num_links,
    })
}

/// `TaskSummary` as JSON.
pub fn task_summary_json(s: &pb::TaskSummary) -> Value {
    json!({
        "highestStatus": task_status_name(s.highest_status),
        "firstUpdated": timestamp_json(s.first_updated.as_ref()),
        "lastUpdated": timestamp_json(s.last_updated.as_ref()),
        "messages": s.messages.iter().map(|m| m.message.clone()).collect::<Vec<_>>(),
    })
}

/// `Materialization` as JSON, its nodes abbreviated to what [`MatNode`] holds plus the
/// infrastructure details of bare metal.
pub fn materialization_json(m: &pb::Materialization) -> Value {
    let metal: Vec<Value> = m
        .metal
        .iter()
        .map(|b| {
            json!({
                "node": b.model.as_ref().map(|x| x.id.clone()).unwrap_or_default(),
                "facility": b.facility,
                "resource": b.resource,
                "infranetAddr": b.infranet_addr,
                "inframac": b.inframac,
                "infravid": b.infravid,
                "infraport": b.infraport,
                "rootdev": b.rootdev,
                "users": b.users.iter().map(|u| u.name.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let vms: Vec<Value> = m
        .vms
        .iter()
        .map(|vm| {
            json!({
                "node": vm_name(vm),
                "facility": vm.vm_alloc.as_ref().map(|a| a.facility.clone()).unwrap_or_default(),
                "resource": vm.vm_alloc.as_ref().map(|a| a.resource.clone()).unwrap_or_default(),
                "infranetAddr": vm.infranet_addr,
                "inframac": vm.inframac,
                "users": vm.users.iter().map(|u| u.name.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "rid": m.rid,
        "eid": m.eid,
        "pid": m.pid,
        "metal": metal,
        "vms": vms,
        "links": m.links.len(),
        "created": timestamp_json(m.created.as_ref()),
        "embedVersion": m.embed_version,
    })
}

fn task_parts(tree: &pb::TaskTree) -> (String, String) {
    tree.task.as_ref().map_or((String::new(), String::new()), |t| {
        let message = t.message.as_ref().map(|m| m.message.replace('\n', " ")).unwrap_or_default();
        (t.name.clone(), message)
    })
}

/// The status tree drawn with branches, one task per line: its name, the worst state in its
/// subtree, and its message.
///
/// ```text
/// r.e.p            Pending
/// └─ local         Pending  waiting for the controller
///    ├─ a          Success
///    └─ l0         Pending  not reported by the facility yet
/// ```
pub fn status_tree_text(tree: &pb::TaskTree) -> String {
    fn walk(tree: &pb::TaskTree, prefix: String, children_prefix: &str, rows: &mut Vec<[String; 3]>) {
        let (name, message) = task_parts(tree);
        rows.push([format!("{prefix}{name}"), task_status_name(tree.highest_status), message]);
        let count = tree.subtasks.len();
        for (i, sub) in tree.subtasks.iter().enumerate() {
            let last = i + 1 == count;
            let branch = format!("{children_prefix}{}", if last { "└─ " } else { "├─ " });
            let below = format!("{children_prefix}{}", if last { "   " } else { "│  " });
            walk(sub, branch, &below, rows);
        }
    }
    let mut rows = Vec::new();
    walk(tree, String::new(), "", &mut rows);
    let name_width = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
    let state_width = rows.iter().map(|r| r[1].chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for [name, state, message] in rows {
        let line = format!("{name:<name_width$}  {state:<state_width$}  {message}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `name: message` for every task in an Error state, or the names alone when they say
/// nothing more.
pub fn failing_tasks(tree: &pb::TaskTree) -> Vec<String> {
    fn walk(tree: &pb::TaskTree, out: &mut Vec<String>) {
        if let Some(task) = &tree.task
            && task.status_value == pb::task_status::StatusType::Error as i32
        {
            let (name, message) = task_parts(tree);
            out.push(if message.is_empty() { name } else { format!("{name}: {message}") });
        }
        tree.subtasks.iter().for_each(|s| walk(s, out));
    }
    let mut out = Vec::new();
    walk(tree, &mut out);
    out
}

/// How far a materialization has come: ready and total nodes and links, and how many of
/// them are in each state that is not ready.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Nodes in the Success state.
    pub nodes_ready: usize,
    /// All nodes.
    pub nodes: usize,
    /// Links in the Success state.
    pub links_ready: usize,
    /// All links.
    pub links: usize,
    /// Nodes and links not ready, by state name.
    pub waiting: BTreeMap<String, usize>,
}

impl Progress {
    /// Counts the leaves of the status tree (materialization → facility → node or link):
    /// those named in `node_names` are nodes, the others links.
    pub fn of(tree: &pb::TaskTree, node_names: &HashSet<String>) -> Progress {
        fn walk(tree: &pb::TaskTree, depth: usize, node_names: &HashSet<String>, p: &mut Progress) {
            if tree.subtasks.is_empty() && depth >= 2 {
                let name = tree.task.as_ref().map(|t| t.name.as_str()).unwrap_or_default();
                let ready = tree.highest_status == pb::task_status::StatusType::Success as i32;
                if node_names.contains(name) {
                    p.nodes += 1;
                    p.nodes_ready += usize::from(ready);
                } else {
                    p.links += 1;
                    p.links_ready += usize::from(ready);
                }
                if !ready {
                    *p.waiting.entry(task_status_name(tree.highest_status).to_lowercase()).or_default() += 1;
                }
            }
            tree.subtasks.iter().for_each(|s| walk(s, depth + 1, node_names, p));
        }
        let mut p = Progress::default();
        walk(tree, 0, node_names, &mut p);
        p
    }

    /// `3/5 nodes ready, 1/2 links ready (2 pending, 1 processing)`.
    pub fn line(&self) -> String {
        let mut line = format!("{}/{} nodes ready", self.nodes_ready, self.nodes);
        if self.links > 0 {
            line.push_str(&format!(", {}/{} links ready", self.links_ready, self.links));
        }
        if !self.waiting.is_empty() {
            let states: Vec<String> = self.waiting.iter().map(|(s, n)| format!("{n} {s}")).collect();
            line.push_str(&format!(" ({})", states.join(", ")));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use trellis_api::xir;

    use super::*;
    use pb::task_status::StatusType as S;

    fn task(name: &str, status: S, message: &str, subtasks: Vec<pb::TaskTree>) -> pb::TaskTree {
        let highest = subtasks.iter().map(|s| s.highest_status).fold(status as i32, i32::max);
        pb::TaskTree {
            highest_status: highest,
            task: Some(pb::TaskStatus {
                name: name.into(),
                status_value: status as i32,
                message: (!message.is_empty())
                    .then(|| pb::TaskMessage { level: 0, message: message.to_owned() }),
                ..Default::default()
            }),
            subtasks,
            ..Default::default()
        }
    }

    fn tree() -> pb::TaskTree {
        task(
            "r.e.p",
            S::Success,
            "",
            vec![
                task(
                    "f1",
                    S::Processing,
                    "booting",
                    vec![
                        task("a", S::Success, "", vec![]),
                        task("b", S::Error, "image not found", vec![]),
                        task("l0", S::Processing, "", vec![]),
                    ],
                ),
                task("f2", S::Success, "", vec![task("c", S::Success, "", vec![])]),
            ],
        )
    }

    fn materialization() -> pb::Materialization {
        pb::Materialization {
            rid: "r".into(),
            eid: "e".into(),
            pid: "p".into(),
            metal: vec![pb::BareMetal {
                facility: "f1".into(),
                resource: "m7".into(),
                model: Some(xir::Node { id: "b".into(), ..Default::default() }),
                infranet_addr: "172.30.0.3".into(),
                ..Default::default()
            }],
            vms: vec![
                pb::VirtualMachine {
                    vm_alloc: Some(xir::ResourceAllocation {
                        resource: "hv1".into(),
                        facility: "f1".into(),
                        node: "c".into(),
                        ..Default::default()
                    }),
                    infranet_addr: String::new(),
                    ..Default::default()
                },
                pb::VirtualMachine {
                    vm_alloc: Some(xir::ResourceAllocation {
                        resource: "hv1".into(),
                        facility: "f1".into(),
                        model: Some(xir::Node { id: "a".into(), ..Default::default() }),
                        ..Default::default()
                    }),
                    infranet_addr: "172.30.0.2".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn nodes_come_from_metal_and_vms_sorted() {
        let nodes = mat_nodes(&materialization());
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            mat_nodes_table(&nodes),
            "NODE  FACILITY  HOST  KIND   INFRANET ADDRESS\n\
             a     f1        hv1   VM     172.30.0.2\n\
             b     f1        m7    metal  172.30.0.3\n\
             c     f1        hv1   VM\n"
        );
        let v = materialization_json(&materialization());
        assert_eq!(v["metal"][0]["node"], "b");
        assert_eq!(v["vms"][1]["node"], "a");
        assert_eq!(nodes[1].json()["kind"], "metal");
    }

    #[test]
    fn inventory_lists_every_node_and_groups_by_kind() {
        assert_eq!(
            inventory(&mat_nodes(&materialization())),
            "[all]\n\
             a ansible_host=172.30.0.2\n\
             b ansible_host=172.30.0.3\n\
             c\n\
             \n\
             [metal]\n\
             b\n\
             \n\
             [vms]\n\
             a\n\
             c\n"
        );
        assert_eq!(inventory(&[]), "[all]\n");
    }

    #[test]
    fn etchosts_name_nodes_under_the_materialization() {
        assert_eq!(
            etchosts("r.e.p", &mat_nodes(&materialization())),
            "172.30.0.2 a a.infra.r.e.p\n\
             172.30.0.3 b b.infra.r.e.p\n\
             # c has no infranet address yet\n"
        );
    }

    #[test]
    fn status_trees_draw_branches_states_and_messages() {
        let expected = [
            "r.e.p     Error",
            "├─ f1     Error       booting",
            "│  ├─ a   Success",
            "│  ├─ b   Error       image not found",
            "│  └─ l0  Processing",
            "└─ f2     Success",
            "   └─ c   Success",
        ];
        assert_eq!(status_tree_text(&tree()), expected.map(|l| format!("{l}\n")).concat());
        assert_eq!(failing_tasks(&tree()), ["b: image not found"]);
        let bare = task("x", S::Error, "", vec![]);
        assert_eq!(failing_tasks(&bare), ["x"]);
    }

    #[test]
    fn progress_counts_nodes_and_links_by_state() {
        let names: HashSet<String> = ["a", "b", "c"].map(String::from).into();
        let p = Progress::of(&tree(), &names);
        assert_eq!((p.nodes_ready, p.nodes, p.links_ready, p.links), (2, 3, 0, 1));
        assert_eq!(p.line(), "2/3 nodes ready, 0/1 links ready (1 error, 1 processing)");
        let done = task(
            "r.e.p",
            S::Success,
            "",
            vec![task("f", S::Success, "", vec![task("a", S::Success, "", vec![])])],
        );
        assert_eq!(Progress::of(&done, &names).line(), "1/1 nodes ready");
        // A facility without nodes or links counts as nothing.
        let empty = task("r.e.p", S::Success, "", vec![task("f", S::Pending, "", vec![])]);
        assert_eq!(Progress::of(&empty, &names).line(), "0/0 nodes ready");
    }
}
