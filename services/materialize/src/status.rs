//! The status tree: materialization → facilities → nodes and links, worst child wins.

use crate::types::{
    ElementStatus, FacilityStatus, MaterializationRecord, Phase, StatusRecord, StatusTree, TaskState,
};

fn element(name: &str, reported: &[ElementStatus], facility_since: i64) -> StatusTree {
    match reported.iter().find(|e| e.name == name) {
        Some(e) => StatusTree::new(e.name.clone(), e.state, e.message.clone(), (e.since, e.since), vec![]),
        None => StatusTree::new(
            name.to_owned(),
            TaskState::Pending,
            "not reported by the facility yet".to_owned(),
            (facility_since, facility_since),
            vec![],
        ),
    }
}

/// The tree for `record` given what the controller last observed.
pub fn tree(record: &MaterializationRecord, observed: Option<&StatusRecord>) -> StatusTree {
    let unknown = FacilityStatus {
        state: TaskState::Pending,
        message: "waiting for the controller".to_owned(),
        ..Default::default()
    };
    let facilities = record
        .facilities
        .iter()
        .map(|spec| {
            let status = observed.and_then(|o| o.facilities.get(&spec.facility)).unwrap_or(&unknown);
            let mut children: Vec<StatusTree> =
                spec.nodes.iter().map(|n| element(&n.name, &status.nodes, status.since)).collect();
            children.extend(spec.links.iter().map(|l| element(&l.name, &status.links, status.since)));
            StatusTree::new(
                spec.facility.clone(),
                status.state,
                status.message.clone(),
                (status.since, status.since),
                children,
            )
        })
        .collect();
    let (state, message) = match record.phase {
        Phase::Active => (TaskState::Success, String::new()),
        Phase::Dematerializing => (TaskState::Processing, "dematerializing".to_owned()),
    };
    let since = observed.map_or((record.created, record.created), |o| (o.first_updated, o.last_updated));
    StatusTree::new(record.mzid(), state, message, since, facilities)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::types::{FacilitySpec, LinkSpec, NodeSpec};

    fn node(name: &str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            host: "h".into(),
            metal: true,
            infranet_addr: "10.0.0.1".into(),
            image: String::new(),
            cores: 1,
            memory_bytes: 1,
            disk_bytes: 0,
            interfaces: vec![],
            persistent: false,
        }
    }

    fn record(phase: Phase) -> MaterializationRecord {
        let link = LinkSpec {
            name: "l".into(),
            endpoints: vec![],
            capacity_bps: 0,
            latency_us: 0,
            loss: 0.0,
            vlan: 0,
        };
        MaterializationRecord {
            project: "p".into(),
            experiment: "e".into(),
            realization: "r".into(),
            revision: "x".into(),
            creator: "c".into(),
            created: 7,
            phase,
            generation: 1,
            infranet_subnet: "10.0.0.0/24".into(),
            static_routing: false,
            ipv4_addressing: false,
            users: vec![],
            ssh_ca_public_key: String::new(),
            facilities: vec![
                FacilitySpec { facility: "a".into(), nodes: vec![node("a0"), node("a1")], links: vec![link] },
                FacilitySpec { facility: "b".into(), nodes: vec![node("b0")], links: vec![] },
            ],
        }
    }

    fn reported(name: &str, state: TaskState, since: i64) -> ElementStatus {
        ElementStatus { name: name.into(), state, message: format!("{name} says hi"), since }
    }

    #[test]
    fn nothing_observed_yet_is_pending_everywhere() {
        let t = tree(&record(Phase::Active), None);
        assert_eq!((t.name.as_str(), t.highest, t.descendants()), ("r.e.p", TaskState::Pending, 6));
        assert!(t.children.iter().all(|f| f.state == TaskState::Pending));
    }

    #[test]
    fn the_worst_child_wins_at_every_level() {
        let ready = |nodes: Vec<ElementStatus>, links| FacilityStatus {
            state: TaskState::Success,
            nodes,
            links,
            since: 100,
            ..Default::default()
        };
        let mut observed = StatusRecord { facilities: BTreeMap::new(), first_updated: 50, last_updated: 100 };
        observed.facilities.insert(
            "a".into(),
            ready(
                vec![reported("a0", TaskState::Success, 90), reported("a1", TaskState::Error, 120)],
                vec![reported("l", TaskState::Processing, 95)],
            ),
        );
        observed.facilities.insert("b".into(), ready(vec![reported("b0", TaskState::Success, 80)], vec![]));
        let t = tree(&record(Phase::Active), Some(&observed));
        assert_eq!(t.state, TaskState::Success);
        assert_eq!(t.highest, TaskState::Error);
        assert_eq!((t.first_updated, t.last_updated), (50, 120), "the newest change anywhere");
        let (a, b) = (&t.children[0], &t.children[1]);
        assert_eq!((a.highest, b.highest), (TaskState::Error, TaskState::Success));
        assert_eq!(a.children.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a0", "a1", "l"]);
        assert_eq!(a.children[1].message, "a1 says hi");

        // Fixing the node leaves the link's processing as the worst.
        observed.facilities.get_mut("a").unwrap().nodes[1].state = TaskState::Success;
        let t = tree(&record(Phase::Active), Some(&observed));
        assert_eq!(t.highest, TaskState::Processing);
        // A facility that cannot be reached outranks pending but not processing.
        let b = observed.facilities.get_mut("b").unwrap();
        b.state = TaskState::Unresponsive;
        assert_eq!(
            tree(&record(Phase::Active), Some(&observed)).children[1].highest,
            TaskState::Unresponsive
        );
    }

    #[test]
    fn elements_the_facility_has_not_reported_are_pending() {
        let mut observed = StatusRecord::default();
        observed
            .facilities
            .insert("b".into(), FacilityStatus { state: TaskState::Success, since: 5, ..Default::default() });
        let t = tree(&record(Phase::Dematerializing), Some(&observed));
        assert_eq!((t.state, t.message.as_str()), (TaskState::Processing, "dematerializing"));
        let b0 = &t.children[1].children[0];
        assert_eq!((b0.state, b0.first_updated), (TaskState::Pending, 5));
    }

    #[test]
    fn states_rank_as_merge_ranks_them() {
        use TaskState::*;
        let ranked = [Undefined, Success, Deleted, Pending, Unresponsive, Processing, Error];
        assert!(ranked.windows(2).all(|w| w[0] < w[1]));
    }
}
