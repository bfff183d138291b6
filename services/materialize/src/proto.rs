//! Between the records and the Facility API's messages.

use trellis_facility_api::v1;

use crate::types::{ElementStatus, FacilitySpec, MaterializationRecord, TaskState};

/// What `facility` is sent for `record`.
pub fn materialization(record: &MaterializationRecord, facility: &FacilitySpec) -> v1::Materialization {
    v1::Materialization {
        mzid: record.mzid(),
        project: record.project.clone(),
        experiment: record.experiment.clone(),
        realization: record.realization.clone(),
        infranet_subnet: record.infranet_subnet.clone(),
        nodes: facility
            .nodes
            .iter()
            .map(|n| v1::Node {
                name: n.name.clone(),
                host: n.host.clone(),
                infranet_addr: n.infranet_addr.clone(),
                image: n.image.clone(),
                cores: n.cores,
                memory_bytes: n.memory_bytes,
                disk_bytes: n.disk_bytes,
                interfaces: n
                    .interfaces
                    .iter()
                    .map(|i| v1::Interface {
                        name: i.name.clone(),
                        link: i.link.clone(),
                        addrs: i.addrs.clone(),
                    })
                    .collect(),
                persistent: n.persistent,
            })
            .collect(),
        links: facility
            .links
            .iter()
            .map(|l| v1::Link {
                name: l.name.clone(),
                endpoints: l
                    .endpoints
                    .iter()
                    .map(|e| v1::Endpoint { node: e.node.clone(), interface: e.interface.clone() })
                    .collect(),
                capacity_bps: l.capacity_bps,
                latency_us: l.latency_us,
                loss: l.loss,
                vlan: l.vlan,
            })
            .collect(),
        users: record
            .users
            .iter()
            .map(|u| v1::User {
                name: u.name.clone(),
                uid: u.uid,
                gid: u.gid,
                authorized_keys: u.authorized_keys.clone(),
            })
            .collect(),
        ssh_ca_public_key: record.ssh_ca_public_key.clone(),
        static_routing: record.static_routing,
    }
}

/// A facility's state as a task state. An agent that does not know the materialization
/// (`Unspecified`) has not started on it: pending.
pub fn task_state(state: i32) -> TaskState {
    match v1::State::try_from(state) {
        Ok(v1::State::Ready) => TaskState::Success,
        Ok(v1::State::Processing) => TaskState::Processing,
        Ok(v1::State::Failed) => TaskState::Error,
        Ok(v1::State::Deleted) => TaskState::Deleted,
        Ok(v1::State::Pending | v1::State::Unspecified) | Err(_) => TaskState::Pending,
    }
}

pub fn node_statuses(reply: &v1::StatusResponse) -> Vec<ElementStatus> {
    reply
        .nodes
        .iter()
        .map(|n| ElementStatus {
            name: n.name.clone(),
            state: task_state(n.state),
            message: n.message.clone(),
            since: n.since,
        })
        .collect()
}

pub fn link_statuses(reply: &v1::StatusResponse) -> Vec<ElementStatus> {
    reply
        .links
        .iter()
        .map(|l| ElementStatus {
            name: l.name.clone(),
            state: task_state(l.state),
            message: l.message.clone(),
            since: l.since,
        })
        .collect()
}
