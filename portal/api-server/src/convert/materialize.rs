//! Materializations and their status on the wire.

use std::collections::HashMap;

use trellis_api::portal::v1 as pb;
use trellis_api::{reconcile, xir};
use trellis_materialize::{IngressRoute, MaterializationRecord, StatusTree, TaskState};

use super::timestamp;

pub fn state_to(s: TaskState) -> pb::task_status::StatusType {
    use pb::task_status::StatusType as S;
    match s {
        TaskState::Undefined => S::Undefined,
        TaskState::Success => S::Success,
        TaskState::Deleted => S::Deleted,
        TaskState::Pending => S::Pending,
        TaskState::Unresponsive => S::Unresponsive,
        TaskState::Processing => S::Processing,
        TaskState::Error => S::Error,
    }
}

/// Merge's task tree: the materialization, then each facility, node and link (worst child wins).
pub fn tree_to(t: &StatusTree) -> pb::TaskTree {
    let message = (!t.message.is_empty()).then(|| pb::TaskMessage {
        level: if t.state == TaskState::Error {
            pb::task_message::Type::Error as i32
        } else {
            pb::task_message::Type::Info as i32
        },
        message: t.message.clone(),
    });
    pb::TaskTree {
        highest_status: state_to(t.highest) as i32,
        last_updated: timestamp(t.last_updated),
        num_child_tasks: t.descendants() as i64,
        task: Some(pb::TaskStatus {
            id: t.name.clone(),
            name: t.name.clone(),
            message,
            status_value: state_to(t.state) as i32,
            first_updated: timestamp(t.first_updated),
            last_updated: timestamp(t.last_updated),
        }),
        subtasks: t.children.iter().map(tree_to).collect(),
    }
}

fn messages(t: &StatusTree, out: &mut Vec<pb::TaskMessage>) {
    if t.state == TaskState::Error && !t.message.is_empty() {
        out.push(pb::TaskMessage {
            level: pb::task_message::Type::Error as i32,
            message: format!("{}: {}", t.name, t.message),
        });
    }
    t.children.iter().for_each(|c| messages(c, out));
}

pub fn task_summary(t: &StatusTree) -> pb::TaskSummary {
    let mut msgs = Vec::new();
    messages(t, &mut msgs);
    pb::TaskSummary {
        highest_status: state_to(t.highest) as i32,
        first_updated: timestamp(t.first_updated),
        last_updated: timestamp(t.last_updated),
        messages: msgs,
    }
}

pub fn forest(mzid: &str, t: &StatusTree) -> reconcile::TaskForest {
    reconcile::TaskForest {
        goal: Some(reconcile::TaskGoal { name: mzid.to_owned(), ..Default::default() }),
        highest_status: state_to(t.highest) as i32,
        last_updated: timestamp(t.last_updated),
        num_child_tasks: (t.descendants() + 1) as i64,
        subgoals: vec![],
        subtasks: vec![reconcile_tree(t)],
    }
}

/// The same tree in the `reconcile` package's shape, which `GetMaterializationStatus` uses.
fn reconcile_tree(t: &StatusTree) -> reconcile::TaskTree {
    let state = state_to(t.state) as i32;
    let messages = if t.message.is_empty() {
        vec![]
    } else {
        let level = if t.state == TaskState::Error {
            reconcile::task_message::Type::Error
        } else {
            reconcile::task_message::Type::Info
        };
        vec![reconcile::TaskMessage { level: level as i32, message: t.message.clone() }]
    };
    reconcile::TaskTree {
        task: Some(reconcile::TaskStatus {
            desc: t.name.clone(),
            task_key: t.name.clone(),
            last_status: state,
            current_status: state,
            when: timestamp(t.last_updated),
            creation: timestamp(t.first_updated),
            messages,
            ..Default::default()
        }),
        highest_status: state_to(t.highest) as i32,
        last_updated: timestamp(t.last_updated),
        num_child_tasks: t.descendants() as i64,
        subtasks: t.children.iter().map(reconcile_tree).collect(),
    }
}

pub fn summary_to(r: &MaterializationRecord) -> pb::MaterializationSummary {
    let s = r.summary();
    pb::MaterializationSummary {
        rid: r.realization.clone(),
        eid: r.experiment.clone(),
        pid: r.project.clone(),
        num_metal: s.metal as i32,
        num_virtual: s.virtual_machines as i32,
        num_links: s.links as i32,
    }
}

/// Merge's materialization: bare-metal nodes and VMs with their users and infranet addresses.
/// `network` supplies each node's model when the caller has it.
pub fn materialization_to(r: &MaterializationRecord, network: Option<&xir::Network>) -> pb::Materialization {
    let models: HashMap<&str, &xir::Node> =
        network.map(|n| n.nodes.iter().map(|x| (x.id.as_str(), x)).collect()).unwrap_or_default();
    let users: Vec<pb::UserInfo> = r
        .users
        .iter()
        .map(|u| pb::UserInfo {
            name: u.name.clone(),
            groups: vec![],
            pubkeys: u.authorized_keys.clone(),
            privkeys: vec![],
        })
        .collect();
    let mut metal = Vec::new();
    let mut vms = Vec::new();
    for (facility, n) in r.nodes() {
        let model = models
            .get(n.name.as_str())
            .map(|m| (*m).clone())
            .unwrap_or_else(|| xir::Node { id: n.name.clone(), ..Default::default() });
        if n.metal {
            metal.push(pb::BareMetal {
                facility: facility.to_owned(),
                resource: n.host.clone(),
                model: Some(model),
                users: users.clone(),
                infranet_addr: n.infranet_addr.clone(),
                ..Default::default()
            });
        } else {
            vms.push(pb::VirtualMachine {
                vm_alloc: Some(xir::ResourceAllocation {
                    resource: n.host.clone(),
                    facility: facility.to_owned(),
                    mzid: r.mzid(),
                    node: n.name.clone(),
                    model: Some(model),
                    r#virtual: true,
                    ..Default::default()
                }),
                users: users.clone(),
                infranet_addr: n.infranet_addr.clone(),
                ..Default::default()
            });
        }
    }
    pb::Materialization {
        rid: r.realization.clone(),
        eid: r.experiment.clone(),
        pid: r.project.clone(),
        metal,
        vms,
        created: timestamp(r.created),
        embed_version: "trellis-embed/1".to_owned(),
        ..Default::default()
    }
}

pub fn ingress_to(i: &IngressRoute) -> pb::Ingress {
    pb::Ingress {
        mzid: i.mzid.clone(),
        protocol: i.protocol.as_str().to_owned(),
        hostname: i.node.clone(),
        hostport: i.port,
        hostaddr: i.node_addr.clone(),
        gateway: i.gateway.clone(),
        gatewayport: i.gateway_port,
        ingress: i.url.clone(),
    }
}
