//! Several controllers on one store: each materialization is driven by one of them, and when
//! one stops, another takes over what it drove.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::agent::RecordingAgent;
use common::{Backend, World, eventually, experiment, keys_under, replica};
use tokio_util::sync::CancellationToken;
use trellis_materialize::{MaterializeService, TaskState, keys};

const COUNT: usize = 6;

fn name(i: usize) -> String {
    format!("r{i}")
}

fn mzid(i: usize) -> String {
    format!("r{i}.exp.alice")
}

async fn all_in_state(service: &MaterializeService, state: TaskState) -> bool {
    for i in 0..COUNT {
        match service.status("alice", "exp", &name(i)).await {
            Ok(tree) if tree.highest == state => {}
            _ => return false,
        }
    }
    true
}

/// Client certificates (one per controller) that called `methods` for each materialization.
fn drivers_by_mzid(world: &World, methods: &[&str], since: usize) -> BTreeMap<String, BTreeSet<Vec<u8>>> {
    let mut by: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for call in world.agent.calls().into_iter().skip(since).filter(|c| methods.contains(&c.method)) {
        by.entry(call.mzid).or_default().insert(call.client);
    }
    by
}

async fn one_driver_per_materialization_and_takeover(backend: Backend) {
    let world = World::new(backend, RecordingAgent::new(1, 1), false).await;
    let second_store = world.backend.another_client().await;
    let second = replica(second_store, world.backend.dir.path(), &world.pki, false);
    for i in 0..COUNT {
        let network = experiment(2, i as u64);
        world.realize("exp", &name(i), &network).await;
        world.portal.service.materialize_network("alice", "exp", &name(i), &network, "alice").await.unwrap();
    }
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let a = world.portal.service.clone().spawn_controller(stop_a.clone());
    let b = second.service.clone().spawn_controller(stop_b.clone());

    eventually("every materialization ready", || async {
        all_in_state(&world.portal.service, TaskState::Success).await.then_some(())
    })
    .await;
    // Let both run on for a while, so a second driver would show up in the calls.
    let calls = world.agent.calls().len();
    eventually("many more polls", || async {
        (world.agent.calls().len() >= calls + 4 * COUNT).then_some(())
    })
    .await;
    let drivers = drivers_by_mzid(&world, &["materialize", "status"], 0);
    assert_eq!(drivers.len(), COUNT);
    for (mzid, clients) in &drivers {
        assert_eq!(clients.len(), 1, "{mzid} was driven by {} controllers", clients.len());
        assert_eq!(world.agent.calls_of("materialize", mzid), 1);
    }
    let controllers: BTreeSet<Vec<u8>> = drivers.values().flatten().cloned().collect();
    assert!(!controllers.is_empty() && controllers.len() <= 2);

    // One lock per materialization, each on a lease, held by at most two controllers.
    let locks = world.backend.store.range(keys::LOCKS).await.unwrap().kvs;
    assert_eq!(locks.len(), COUNT);
    assert!(locks.iter().all(|kv| kv.lease.is_some()));
    let holders: BTreeSet<&[u8]> = locks.iter().map(|kv| kv.value.as_slice()).collect();
    assert!(holders.len() <= 2);

    // Controller A stops (revoking its lease): B takes over everything A drove, and alone
    // tears everything down.
    stop_a.cancel();
    a.await.unwrap();
    let after = world.agent.calls().len();
    for i in 0..COUNT {
        second.service.dematerialize("alice", "exp", &name(i)).await.unwrap();
    }
    for i in 0..COUNT {
        second
            .service
            .dematerialize_and_wait("alice", "exp", &name(i), Duration::from_secs(60))
            .await
            .unwrap();
    }
    let late = drivers_by_mzid(&world, &["dematerialize", "status", "materialize"], after);
    let late_controllers: BTreeSet<&Vec<u8>> = late.values().flatten().collect();
    assert_eq!(late_controllers.len(), 1, "only B acts once A has stopped");
    assert!(late.keys().cloned().collect::<BTreeSet<_>>() == (0..COUNT).map(mzid).collect());
    assert!(world.agent.running().is_empty());
    assert_eq!(keys_under(world.backend.store.as_ref(), keys::ROOT).await, Vec::<String>::new());
    stop_b.cancel();
    b.await.unwrap();
}
on_both_stores!(one_driver_per_materialization_and_takeover);

/// A controller whose lease is revoked behind its back (as when it stalls past the TTL) stops
/// driving; the materializations are picked up again and still work.
async fn a_lost_lease_hands_materializations_over(backend: Backend) {
    let world = World::new(backend, RecordingAgent::new(0, 0), false).await;
    let network = experiment(2, 3);
    world.realize("exp", "r0", &network).await;
    world.portal.service.materialize_network("alice", "exp", "r0", &network, "alice").await.unwrap();
    let stop = CancellationToken::new();
    let controller = world.portal.service.clone().spawn_controller(stop.clone());
    let lock = eventually("a lock", || async {
        world.backend.store.range(keys::LOCKS).await.unwrap().kvs.into_iter().next()
    })
    .await;
    world.backend.store.revoke_lease(lock.lease.unwrap()).await.unwrap();
    let relocked = eventually("the lock taken again", || async {
        let kv = world.backend.store.range(keys::LOCKS).await.unwrap().kvs.into_iter().next()?;
        (kv.lease != lock.lease).then_some(kv)
    })
    .await;
    assert_ne!(relocked.value, Vec::<u8>::new());
    world.portal.service.dematerialize_and_wait("alice", "exp", "r0", Duration::from_secs(60)).await.unwrap();
    assert!(world.agent.running().is_empty());
    stop.cancel();
    controller.await.unwrap();
}
on_both_stores!(a_lost_lease_hands_materializations_over);
