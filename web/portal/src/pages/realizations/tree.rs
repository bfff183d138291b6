//! Status trees as nested `<details>`: a realization (nodes on hosts, links over switches,
//! diagnostics) and a materialization's tasks.

use leptos::prelude::*;
use trellis_api::portal::v1 as pb;
use trellis_api::reconcile;

use crate::layout::badge;

/// The realization, drilled down: each node with its host, each link with its endpoints and
/// switches, then the diagnostics.
pub fn realization_tree(r: &pb::Realization, status: i32, diagnostics: &[pb::Diagnostic]) -> AnyView {
    let mut nodes: Vec<(&String, &pb::NodeRealization)> = r.nodes.iter().collect();
    nodes.sort_by_key(|(name, _)| *name);
    let node_items = nodes
        .into_iter()
        .map(|(name, n)| {
            let host = n.resource.as_ref().map(|x| x.id.clone()).unwrap_or_default();
            let kind = pb::node_realization::Kind::try_from(n.kind).map_or("Undefined", |k| k.as_str_name());
            let image = n.node.as_ref().and_then(|x| x.image.as_ref()).map(|i| i.value.clone()).unwrap_or_default();
            let id = format!("node-{name}");
            view! {
                <li id=id>
                    <details>
                        <summary><strong>{name.clone()}</strong> " on " <code>{format!("{host}@{}", n.facility)}</code> " " {badge(kind)}</summary>
                        <ul>
                            <li>"host: " {host.clone()}</li>
                            <li>"facility: " {n.facility.clone()}</li>
                            <li>"infranet address: " {n.infranet_addr.clone()}</li>
                            {(!image.is_empty()).then(|| view! { <li>"image: " {image}</li> })}
                        </ul>
                    </details>
                </li>
            }
        })
        .collect_view();
    let mut links: Vec<(&String, &pb::LinkRealization)> = r.links.iter().collect();
    links.sort_by_key(|(name, _)| *name);
    let link_items = links
        .into_iter()
        .map(|(name, l)| {
            let mut segments: Vec<(&u64, &pb::LinkSegment)> = l.segments.iter().collect();
            segments.sort_by_key(|(i, _)| **i);
            let parts = segments
                .into_iter()
                .flat_map(|(_, s)| {
                    let ends = s.endpoints.iter().map(|e| {
                        let interface = match &e.interface {
                            Some(pb::endpoint::Interface::Vlan(v)) => v.name.clone(),
                            Some(pb::endpoint::Interface::Phy(p)) => p.name.clone(),
                            _ => String::new(),
                        };
                        format!("endpoint {} on {} {interface}", e.node, e.host)
                    });
                    let hops = s.waypoints.iter().map(|w| format!("switch {} (vlan {})", w.host, s.vid));
                    ends.chain(hops).collect::<Vec<_>>()
                })
                .map(|line| view! { <li>{line}</li> })
                .collect_view();
            let id = format!("link-{name}");
            view! {
                <li id=id>
                    <details>
                        <summary><strong>{name.clone()}</strong></summary>
                        <ul>{parts}</ul>
                    </details>
                </li>
            }
        })
        .collect_view();
    let diagnostic_items = diagnostics
        .iter()
        .map(|d| {
            let level = pb::DiagnosticLevel::try_from(d.level).map_or("", |l| l.as_str_name());
            let at = [d.host.as_str(), d.guest.as_str()].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
            view! { <li>{badge(level)} " " {d.message.clone()} " " <span class="muted">{at.join(" / ")}</span></li> }
        })
        .collect_view();
    let state = super::status_name(status);
    let title = format!("realization {}.{}.{}", r.id, r.eid, r.pid);
    view! {
        <div class="tree" id="realization-status">
            <details open>
                <summary>{title} " " {badge(state)}</summary>
                <ul>
                    <li>
                        <details open>
                            <summary>{format!("Nodes ({})", r.nodes.len())}</summary>
                            <ul id="realization-nodes">{node_items}</ul>
                        </details>
                    </li>
                    <li>
                        <details>
                            <summary>{format!("Links ({})", r.links.len())}</summary>
                            <ul id="realization-links">{link_items}</ul>
                        </details>
                    </li>
                    <li>
                        <details open=!diagnostics.is_empty()>
                            <summary>{format!("Diagnostics ({})", diagnostics.len())}</summary>
                            <ul id="realization-diagnostics">{diagnostic_items}</ul>
                        </details>
                    </li>
                </ul>
            </details>
        </div>
    }
    .into_any()
}

fn reconcile_status(value: i32) -> &'static str {
    reconcile::task_status::StatusType::try_from(value).map_or("Undefined", |s| s.as_str_name())
}

/// A materialization's tasks; parts that have not succeeded start open, so problems show.
pub fn materialization_tree(forest: &reconcile::TaskForest) -> AnyView {
    let name = forest.goal.as_ref().map(|g| g.name.clone()).unwrap_or_default();
    let open = reconcile_status(forest.highest_status) != "Success";
    let goals = forest.subgoals.iter().map(goal_view).collect_view();
    let tasks = forest.subtasks.iter().map(task_view).collect_view();
    view! {
        <div class="tree" id="materialization-status">
            <details open=open>
                <summary>{format!("materialization {name}")} " " {badge(reconcile_status(forest.highest_status))}</summary>
                <ul>{goals}{tasks}</ul>
            </details>
        </div>
    }
    .into_any()
}

fn goal_view(forest: &reconcile::TaskForest) -> AnyView {
    let name = forest.goal.as_ref().map(|g| g.name.clone()).unwrap_or_default();
    let status = reconcile_status(forest.highest_status);
    let goals = forest.subgoals.iter().map(goal_view).collect_view();
    let tasks = forest.subtasks.iter().map(task_view).collect_view();
    view! {
        <li>
            <details open=status != "Success">
                <summary>{name} " " {badge(status)}</summary>
                <ul>{goals}{tasks}</ul>
            </details>
        </li>
    }
    .into_any()
}

fn task_view(t: &reconcile::TaskTree) -> AnyView {
    let task = t.task.clone().unwrap_or_default();
    let status = reconcile_status(t.highest_status);
    let messages = task
        .messages
        .iter()
        .filter(|m| !m.message.is_empty())
        .map(|m| {
            let class =
                if m.level == reconcile::task_message::Type::Error as i32 { "field-error" } else { "muted" };
            view! { <div class=class>{m.message.clone()}</div> }
        })
        .collect_view();
    if t.subtasks.is_empty() {
        return view! { <li>{task.desc} " " {badge(status)} {messages}</li> }.into_any();
    }
    let children = t.subtasks.iter().map(task_view).collect_view();
    view! {
        <li>
            <details open=status != "Success">
                <summary>{task.desc} " " {badge(status)}</summary>
                {messages}
                <ul>{children}</ul>
            </details>
        </li>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(name: &str, status: reconcile::task_status::StatusType, message: &str) -> reconcile::TaskTree {
        reconcile::TaskTree {
            task: Some(reconcile::TaskStatus {
                desc: name.into(),
                messages: vec![reconcile::TaskMessage {
                    level: reconcile::task_message::Type::Error as i32,
                    message: message.into(),
                }],
                ..Default::default()
            }),
            highest_status: status as i32,
            ..Default::default()
        }
    }

    #[test]
    fn task_trees_nest_with_badges_and_open_where_not_done() {
        use reconcile::task_status::StatusType as S;
        let mut parent = leaf("lab", S::Error, "");
        parent.subtasks = vec![leaf("node a", S::Success, ""), leaf("node b", S::Error, "image missing")];
        let forest = reconcile::TaskForest {
            goal: Some(reconcile::TaskGoal { name: "r.e.p".into(), ..Default::default() }),
            highest_status: S::Error as i32,
            subtasks: vec![parent],
            ..Default::default()
        };
        let html = Owner::new().with(|| materialization_tree(&forest).to_html());
        assert!(html.starts_with(r#"<div id="materialization-status" class="tree">"#), "{html}");
        assert!(html.contains("materialization r.e.p"), "{html}");
        assert!(html.contains(r#"<div class="field-error">image missing</div>"#), "{html}");
        assert_eq!(html.matches("field-error").count(), 1, "empty messages are left out: {html}");
        assert!(html.contains(r#"<span class="badge bad">Error</span>"#), "{html}");
        assert!(html.contains(r#"<span class="badge ok">Success</span>"#), "{html}");
        assert!(html.contains("<details open"), "{html}");
    }
}
