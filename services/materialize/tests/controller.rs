//! The controller against an agent over mutual TLS: bringing materializations up, status,
//! reboot, failures, retries, teardown, and refusing the wrong certificates.

#[macro_use]
mod common;

use std::time::Duration;

use common::agent::RecordingAgent;
use common::{Backend, World, eventually, experiment, keys_under};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use trellis_materialize::{IngressProtocol, MaterializeService, StatusTree, TaskState, keys};
use trellis_pki::{Pki, server_tls_config};
use trellis_types::Error;

const MZID: &str = "rlz.exp.alice";

struct Controller {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Controller {
    fn start(service: &MaterializeService) -> Controller {
        let stop = CancellationToken::new();
        let task = service.clone().spawn_controller(stop.clone());
        Controller { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

async fn status(world: &World) -> StatusTree {
    world.portal.service.status("alice", "exp", "rlz").await.unwrap()
}

/// Waits until the materialization's worst state is `state`.
async fn until_highest(world: &World, state: TaskState) -> StatusTree {
    eventually(&format!("status {state:?}"), || async {
        let tree = status(world).await;
        (tree.highest == state).then_some(tree)
    })
    .await
}

/// Materializes a realization of `nodes` nodes as `alice/exp/rlz`.
async fn materialize(world: &World, nodes: u32) {
    let network = experiment(nodes, 11);
    world.realize("exp", "rlz", &network).await;
    world.portal.service.materialize_network("alice", "exp", "rlz", &network, "alice").await.unwrap();
}

async fn up_status_reboot_and_down(backend: Backend) {
    let world = World::new(backend, RecordingAgent::new(2, 2), false).await;
    materialize(&world, 4).await;
    let controller = Controller::start(&world.portal.service);
    let tree = until_highest(&world, TaskState::Success).await;

    // The agent got the whole spec, converted faithfully.
    let record = world.portal.service.materialization("alice", "exp", "rlz").await.unwrap();
    let sent = world.agent.spec(MZID).unwrap();
    let wanted = &record.facilities[0];
    assert_eq!(
        (sent.project.as_str(), sent.experiment.as_str(), sent.realization.as_str()),
        ("alice", "exp", "rlz")
    );
    assert_eq!(sent.infranet_subnet, record.infranet_subnet);
    assert_eq!(sent.nodes.len(), wanted.nodes.len());
    for (got, want) in sent.nodes.iter().zip(&wanted.nodes) {
        assert_eq!((&got.name, &got.host, &got.infranet_addr), (&want.name, &want.host, &want.infranet_addr));
        let names: Vec<&str> = got.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, want.interfaces.iter().map(|i| i.name.as_str()).collect::<Vec<_>>());
    }
    assert_eq!(sent.links.len(), wanted.links.len());
    assert!(sent.links.iter().all(|l| l.endpoints.len() == 2 && l.capacity_bps == 100_000_000 && l.vlan > 0));
    assert_eq!(sent.users.len(), 1);
    assert_eq!(sent.users[0].authorized_keys, [common::ALICE_KEY]);

    // The tree: materialization → facility → every node and link, all ready.
    assert_eq!(tree.name, MZID);
    assert_eq!(tree.children.len(), 1);
    let alpha = &tree.children[0];
    assert_eq!((alpha.name.as_str(), alpha.state), ("alpha", TaskState::Success));
    assert_eq!(alpha.children.len(), wanted.nodes.len() + wanted.links.len());
    assert!(alpha.children.iter().all(|c| c.state == TaskState::Success));
    assert_eq!(tree.descendants(), 1 + alpha.children.len());
    let observed = world.portal.service.status_record("alice", "exp", "rlz").await.unwrap().unwrap();
    assert_eq!(observed.facilities["alpha"].sent_generation, 1);
    assert!(observed.first_updated > 0 && observed.first_updated <= observed.last_updated);

    // Settled: polled again and again, but the spec is sent once.
    let polls = world.agent.calls_of("status", MZID);
    eventually("more polls", || async { (world.agent.calls_of("status", MZID) >= polls + 3).then_some(()) })
        .await;
    assert_eq!(world.agent.calls_of("materialize", MZID), 1);

    // Reboots go straight to the facility.
    let service = &world.portal.service;
    service.reboot("alice", "exp", "rlz", &["n1".to_owned()]).await.unwrap();
    service.reboot("alice", "exp", "rlz", &[]).await.unwrap();
    assert_eq!(world.agent.reboots(), [(MZID.to_owned(), vec!["n1".to_owned()]), (MZID.to_owned(), vec![])]);
    let unknown = service.reboot("alice", "exp", "rlz", &["n9".to_owned()]).await.unwrap_err();
    assert!(matches!(unknown, Error::NotFound { kind: "node", .. }), "{unknown:?}");

    // Teardown removes everything: on the facility, the records, the lock and the ingresses.
    service.new_ingress("alice", "exp", "rlz", IngressProtocol::Tcp, "n2", 22, "alice").await.unwrap();
    service.new_ingress("alice", "exp", "rlz", IngressProtocol::Https, "n0", 443, "alice").await.unwrap();
    let store = world.backend.store.as_ref();
    assert!(!keys_under(store, keys::LOCKS).await.is_empty(), "the controller holds a lock");
    service.dematerialize_and_wait("alice", "exp", "rlz", Duration::from_secs(60)).await.unwrap();
    assert!(world.agent.running().is_empty());
    assert!(world.agent.calls_of("dematerialize", MZID) >= 1);
    assert_eq!(keys_under(store, keys::ROOT).await, Vec::<String>::new());
    assert_eq!(keys_under(store, "/trellis/ingress/").await, Vec::<String>::new());
    let gone = service.status("alice", "exp", "rlz").await.unwrap_err();
    assert!(matches!(gone, Error::NotFound { kind: "materialization", .. }), "{gone:?}");
    // Nothing to wait for the second time (relinquish calls it unconditionally).
    service.dematerialize_and_wait("alice", "exp", "rlz", Duration::from_secs(1)).await.unwrap();
    controller.stop().await;
}
on_both_stores!(up_status_reboot_and_down);

async fn failing_nodes_surface_as_errors(backend: Backend) {
    let world = World::new(backend, RecordingAgent::new(0, 0).failing(&["n1"]), false).await;
    materialize(&world, 3).await;
    let controller = Controller::start(&world.portal.service);
    let tree = until_highest(&world, TaskState::Error).await;
    let alpha = &tree.children[0];
    assert_eq!(alpha.state, TaskState::Error);
    assert_eq!(alpha.message, "n1: image would not boot");
    let n1 = alpha.children.iter().find(|c| c.name == "n1").unwrap();
    assert_eq!((n1.state, n1.message.as_str()), (TaskState::Error, "image would not boot"));
    let others = alpha.children.iter().filter(|c| c.name != "n1");
    assert!(others.clone().count() > 0 && others.into_iter().all(|c| c.state == TaskState::Success));
    controller.stop().await;
}
on_both_stores!(failing_nodes_surface_as_errors);

async fn an_agent_that_forgets_is_sent_the_spec_again(backend: Backend) {
    let world = World::new(backend, RecordingAgent::new(1, 0), false).await;
    materialize(&world, 2).await;
    let controller = Controller::start(&world.portal.service);
    until_highest(&world, TaskState::Success).await;
    assert_eq!(world.agent.calls_of("materialize", MZID), 1);
    world.agent.forget_everything();
    eventually("the spec sent again", || async {
        (world.agent.calls_of("materialize", MZID) == 2 && world.agent.spec(MZID).is_some()).then_some(())
    })
    .await;
    until_highest(&world, TaskState::Success).await;
    controller.stop().await;
}
on_both_stores!(an_agent_that_forgets_is_sent_the_spec_again);

async fn an_unreachable_facility_is_retried(backend: Backend) {
    let world = World::new(backend, RecordingAgent::new(0, 0), false).await;
    let realize = &world.portal.realize;
    let (record, _) = realize.facility("alpha").await.unwrap();
    // Nothing listens on port 1.
    realize.update_facility("alpha", Some("127.0.0.1:1".into()), None, None).await.unwrap();
    materialize(&world, 2).await;
    let controller = Controller::start(&world.portal.service);
    let tree = until_highest(&world, TaskState::Unresponsive).await;
    eprintln!("unreachable: {}", tree.children[0].message);
    assert!(tree.children[0].message.contains("facility alpha"), "{}", tree.children[0].message);
    let failures = world.portal.service.status_record("alice", "exp", "rlz").await.unwrap().unwrap();
    assert!(failures.facilities["alpha"].failures >= 1);
    assert!(world.agent.calls().is_empty());

    realize.update_facility("alpha", Some(record.address), None, None).await.unwrap();
    until_highest(&world, TaskState::Success).await;
    let recovered = world.portal.service.status_record("alice", "exp", "rlz").await.unwrap().unwrap();
    assert_eq!(recovered.facilities["alpha"].failures, 0);
    controller.stop().await;
}
on_both_stores!(an_unreachable_facility_is_retried);

/// Relinquishing without dematerializing (the expiry reclaimer, say) leaves an orphan; the
/// controller tears it down.
async fn orphans_are_torn_down(backend: Backend) {
    let world = World::new(backend, RecordingAgent::new(0, 1), false).await;
    materialize(&world, 2).await;
    let controller = Controller::start(&world.portal.service);
    until_highest(&world, TaskState::Success).await;
    world.portal.realize.relinquish("alice", "exp", "rlz").await.unwrap();
    eventually("the orphan removed", || async {
        world.portal.service.materialization("alice", "exp", "rlz").await.is_err().then_some(())
    })
    .await;
    assert!(world.agent.running().is_empty());
    assert_eq!(keys_under(world.backend.store.as_ref(), keys::ROOT).await, Vec::<String>::new());
    controller.stop().await;
}
on_both_stores!(orphans_are_torn_down);

/// The portal refuses an agent whose certificate is not from a CA it trusts, and an agent
/// refuses a portal whose client certificate is not from the CA it trusts; either way the
/// agent never acts and the status says why.
async fn an_agent_with_a_foreign_certificate_is_refused(backend: Backend) {
    let stranger = Pki::generate_ephemeral("another CA").unwrap();
    let impostor = stranger.issue_server_cert("alpha", &["127.0.0.1".to_owned()]).unwrap();
    let world = World::with_agent_tls(backend, RecordingAgent::new(0, 0), false, |pki| {
        server_tls_config(&impostor.cert_pem, &impostor.key_pem, pki.ca_pem()).unwrap()
    })
    .await;
    materialize(&world, 2).await;
    let controller = Controller::start(&world.portal.service);
    let tree = until_highest(&world, TaskState::Unresponsive).await;
    eprintln!("refused: {}", tree.children[0].message);
    assert!(tree.children[0].message.to_lowercase().contains("certificate"), "{}", tree.children[0].message);
    let refused = world.portal.service.reboot("alice", "exp", "rlz", &[]).await.unwrap_err();
    assert!(matches!(refused, Error::Unavailable(_)), "{refused:?}");
    assert!(world.agent.calls().is_empty(), "the impostor was never trusted with a request");
    controller.stop().await;
}
on_both_stores!(an_agent_with_a_foreign_certificate_is_refused);

async fn an_agent_trusting_another_ca_refuses_the_portal(backend: Backend) {
    let stranger = Pki::generate_ephemeral("another CA").unwrap();
    let world = World::with_agent_tls(backend, RecordingAgent::new(0, 0), false, |pki| {
        let cert = pki.issue_server_cert("alpha", &[]).unwrap();
        server_tls_config(&cert.cert_pem, &cert.key_pem, stranger.ca_pem()).unwrap()
    })
    .await;
    materialize(&world, 2).await;
    let controller = Controller::start(&world.portal.service);
    let tree = until_highest(&world, TaskState::Unresponsive).await;
    eprintln!("refused: {}", tree.children[0].message);
    // The refusal reaches the portal as an alert or as the connection closing, depending on
    // when the agent's alert arrives.
    assert!(tree.children[0].message.contains("facility alpha"), "{}", tree.children[0].message);
    assert!(world.agent.calls().is_empty());
    controller.stop().await;
}
on_both_stores!(an_agent_trusting_another_ca_refuses_the_portal);
