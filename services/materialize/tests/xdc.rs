//! Attaching XDCs through the facility that runs a materialization: when it may happen, what
//! the facility is asked and what comes back, and detaching.

#[macro_use]
mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::agent::RecordingAgent;
use common::{Backend, World, eventually, experiment};
use tokio_util::sync::CancellationToken;
use trellis_materialize::{TaskState, split_mzid};
use trellis_types::Error;

const MZID: &str = "rlz.exp.alice";

fn is_precondition(err: &Error, text: &str) -> bool {
    matches!(err, Error::FailedPrecondition(m) if m.contains(text))
}

async fn attach_and_detach(backend: Backend) {
    let world = World::new(backend, RecordingAgent::new(2, 2), false).await;
    let service = &world.portal.service;
    assert_eq!(split_mzid(MZID), Some(("alice".into(), "exp".into(), "rlz".into())));

    // Nothing materialized: not found; detaching is a no-op.
    let err = service.attach_xdc("alice", "exp", "rlz", "x0-alice", "trx-x0").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { kind: "materialization", .. }), "{err:?}");
    service.detach_xdc("alice", "exp", "rlz", "x0-alice", "trx-x0").await.unwrap();

    // Materialized but not up yet: refused before the facility is asked.
    let network = experiment(3, 5);
    world.realize("exp", "rlz", &network).await;
    service.materialize_network("alice", "exp", "rlz", &network, "alice").await.unwrap();
    let err = service.attach_xdc("alice", "exp", "rlz", "x0-alice", "trx-x0").await.unwrap_err();
    assert!(is_precondition(&err, "rlz.exp.alice is not materialized yet"), "{err:?}");
    assert_eq!(world.agent.calls_of("attach_xdc", MZID), 0);

    let stop = CancellationToken::new();
    let controller = service.clone().spawn_controller(stop.clone());
    eventually("the materialization up", || async {
        let tree = service.status("alice", "exp", "rlz").await.unwrap();
        (tree.highest == TaskState::Success).then_some(())
    })
    .await;

    let net = service.attach_xdc("alice", "exp", "rlz", "x0-alice", "trx-x0").await.unwrap();
    let record = service.materialization("alice", "exp", "rlz").await.unwrap();
    let (subnet, prefix) = record.infranet_subnet.split_once('/').unwrap();
    let base: Ipv4Addr = subnet.parse().unwrap();
    assert_eq!(net.facility, "alpha");
    assert_eq!(net.address, IpAddr::V4(Ipv4Addr::from(u32::from(base) + 254)));
    assert_eq!(net.prefix_len.to_string(), prefix);
    assert_eq!(net.interface, "mzrecording");
    assert_eq!(net.search, ["infra.rlz.exp.alice"]);
    let mut want = Vec::new();
    for (_, node) in record.nodes() {
        let address: IpAddr = node.infranet_addr.parse().unwrap();
        want.push((node.name.clone(), address));
        want.push((format!("{}.infra.{MZID}", node.name), address));
    }
    assert_eq!(net.hosts, want);
    assert_eq!(
        world.agent.xdcs(),
        [(MZID.to_owned(), "x0-alice".to_owned(), "trx-x0".to_owned(), net.address.to_string())]
    );
    // Again: the same answer.
    assert_eq!(service.attach_xdc("alice", "exp", "rlz", "x0-alice", "trx-x0").await.unwrap(), net);

    // The facility's refusals come back as preconditions, with its reason.
    let err = service.attach_xdc("alice", "exp", "rlz", "x1-alice", "missing-ns").await.unwrap_err();
    assert!(is_precondition(&err, "missing-ns does not exist"), "{err:?}");
    let err = service.attach_xdc("alice", "exp", "Rlz", "x0-alice", "trx-x0").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");

    service.detach_xdc("alice", "exp", "rlz", "x0-alice", "trx-x0").await.unwrap();
    assert!(world.agent.xdcs().is_empty());
    assert_eq!(world.agent.calls_of("detach_xdc", MZID), 1);

    // Going down: refused; gone: not found, and detaching asks nobody.
    service.dematerialize("alice", "exp", "rlz").await.unwrap();
    let err = service.attach_xdc("alice", "exp", "rlz", "x0-alice", "trx-x0").await.unwrap_err();
    assert!(is_precondition(&err, "is being dematerialized"), "{err:?}");
    service.dematerialize_and_wait("alice", "exp", "rlz", Duration::from_secs(60)).await.unwrap();
    let err = service.attach_xdc("alice", "exp", "rlz", "x0-alice", "trx-x0").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    service.detach_xdc("alice", "exp", "rlz", "x0-alice", "trx-x0").await.unwrap();
    assert_eq!(world.agent.calls_of("detach_xdc", MZID), 1);

    stop.cancel();
    controller.await.unwrap();
}

on_both_stores!(attach_and_detach);
