//! Concurrent realizations on scarce resources, through two replicas with their own etcd
//! connections, then the allocation table read straight from etcd and checked: nothing is
//! double-booked or over capacity, and the table is exactly what the successful realizations
//! claim.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use common::{Backend, GBPS, GIB, NodeSpec, Shape, facility, network, record};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis_api::xir;
use trellis_embed::{ResourceKey, Testbed, Usage};
use trellis_realize::{Allocation, Duration, RealizationRecord, RealizeService, keys};
use trellis_store::Store;
use trellis_types::Error;

const PROJECT: &str = "race";

/// 40 bare-metal hosts with two 10 Gbps ports each under 5 leaves whose uplinks carry only
/// 20 Gbps, and 8 hypervisors with 16 cores and 32 GiB each.
fn facilities() -> Vec<xir::Facility> {
    let metal = Shape {
        racks: 5,
        hosts_per_rack: 8,
        ports: 2,
        port_capacity: 10 * GBPS,
        trunk_capacity: 20 * GBPS,
        ..Shape::default()
    };
    let virt = Shape {
        racks: 2,
        hosts_per_rack: 4,
        cores: 16,
        memory: 32 * GIB,
        hypervisors: true,
        trunk_capacity: 10 * GBPS,
        ..Shape::default()
    };
    vec![facility("metal", &metal), facility("virt", &virt)]
}

/// A random experiment: 1-6 nodes, all bare metal or all VMs, joined by a chain or one LAN
/// with a random capacity, so ports and trunks are contested.
fn experiment(rng: &mut StdRng) -> xir::Network {
    let count = rng.random_range(1..=6);
    let spec = if rng.random_bool(0.7) {
        NodeSpec::metal()
    } else {
        NodeSpec::vm(rng.random_range(1..=6), rng.random_range(1..=8) * GIB)
    };
    let capacity = [0, GBPS, 3 * GBPS, 5 * GBPS, 10 * GBPS][rng.random_range(0..5)];
    let links: Vec<(Vec<usize>, u64)> = match count {
        1 => vec![],
        _ if rng.random_bool(0.5) => (1..count).map(|i| (vec![i - 1, i], capacity)).collect(),
        _ => vec![((0..count).collect(), capacity)],
    };
    network("x", &vec![spec; count], &links)
}

/// What the table holds, read straight from etcd.
struct Table {
    entries: BTreeMap<ResourceKey, Vec<Allocation>>,
    infranet: BTreeMap<String, String>,
    realizations: BTreeMap<String, RealizationRecord>,
}

async fn read_table(store: &dyn Store) -> Table {
    let mut entries = BTreeMap::new();
    for kv in store.range(keys::ALLOC).await.unwrap().kvs {
        let key = keys::parse_resource(&kv.key).unwrap_or_else(|| panic!("unparsable key {}", kv.key));
        let held: Vec<Allocation> = serde_json::from_slice(&kv.value).unwrap();
        assert!(!held.is_empty(), "{} is stored empty", kv.key);
        entries.insert(key, held);
    }
    let infranet = store
        .range(keys::INFRANET)
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| (kv.key, String::from_utf8(kv.value).unwrap()))
        .collect();
    let realizations = store
        .range(keys::REALIZATIONS)
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| {
            let record: RealizationRecord = serde_json::from_slice(&kv.value).unwrap();
            (record.mzid(), record)
        })
        .collect();
    Table { entries, infranet, realizations }
}

fn total(allocations: &[Allocation]) -> Usage {
    let mut sum = Usage::default();
    for a in allocations {
        sum.add(&a.usage);
    }
    sum
}

/// Checks the invariants with `live` the realizations that should hold resources and `gone`
/// those that failed or were relinquished.
fn check(
    testbed: &Testbed,
    table: &Table,
    live: &BTreeMap<String, RealizationRecord>,
    gone: &BTreeSet<String>,
) {
    for (key, held) in &table.entries {
        let sum = total(held);
        let holders: BTreeSet<&str> = held.iter().map(|a| a.mzid.as_str()).collect();
        assert_eq!(holders.len(), held.len(), "{key:?}: one entry per realization: {held:?}");
        match key {
            ResourceKey::Host { facility, host } => {
                let h = testbed.host(testbed.host_by_name(facility, host).unwrap());
                if held.iter().any(|a| a.usage.exclusive) {
                    assert_eq!(held.len(), 1, "bare-metal host {host} shared: {held:?}");
                }
                assert!(sum.cores <= h.cores, "{host}: {} cores of {}", sum.cores, h.cores);
                assert!(sum.memory <= h.memory, "{host}: {} bytes of {}", sum.memory, h.memory);
            }
            ResourceKey::Port { facility, host, port } => {
                let h = testbed.host(testbed.host_by_name(facility, host).unwrap());
                let p = h.ports.iter().find(|p| &p.name == port).unwrap();
                assert!(sum.capacity <= p.capacity, "{host}/{port}: {} of {}", sum.capacity, p.capacity);
            }
            ResourceKey::Trunk { facility, trunk } => {
                let t = testbed.trunk(testbed.trunk_by_name(facility, trunk).unwrap());
                assert!(sum.capacity <= t.capacity, "{trunk}: {} of {}", sum.capacity, t.capacity);
            }
            ResourceKey::Vlan { vid, .. } => assert_eq!(held.len(), 1, "VLAN {vid} used twice: {held:?}"),
        }
        for a in held {
            assert!(live.contains_key(&a.mzid), "{key:?} held by {}, which is not live", a.mzid);
        }
    }

    // The table is exactly the union of the live realizations' claims.
    let mut expected: BTreeMap<(ResourceKey, String), Usage> = BTreeMap::new();
    for (mzid, record) in live {
        assert_eq!(table.realizations.get(mzid), Some(record), "{mzid}'s stored record differs");
        for claim in &record.embedding.claims {
            expected.entry((claim.key.clone(), mzid.clone())).or_default().add(&claim.usage);
        }
        let metal: Vec<&str> = record
            .embedding
            .nodes
            .iter()
            .zip(&record.node_hosts)
            .filter(|(n, _)| n.kind == trellis_embed::NodeKind::BareMetal)
            .map(|(_, (_, h))| h.as_str())
            .collect();
        assert_eq!(
            metal.len(),
            metal.iter().collect::<HashSet<_>>().len(),
            "{mzid} put two nodes on one machine"
        );
    }
    let actual: BTreeMap<(ResourceKey, String), Usage> = table
        .entries
        .iter()
        .flat_map(|(key, held)| held.iter().map(move |a| ((key.clone(), a.mzid.clone()), a.usage)))
        .collect();
    assert_eq!(actual.len(), expected.len(), "table entries vs claims of live realizations");
    assert!(actual == expected, "the table differs from the live realizations' claims");

    for mzid in gone {
        assert!(!table.realizations.contains_key(mzid), "{mzid} left its record behind");
    }
    assert_eq!(table.realizations.len(), live.len(), "records of realizations nobody made");
    let holders: Vec<&String> = table.infranet.values().collect();
    let distinct: HashSet<&String> = holders.iter().copied().collect();
    assert_eq!(holders.len(), live.len(), "one infranet block per live realization: {:?}", table.infranet);
    assert_eq!(distinct.len(), live.len());
    let subnets: HashSet<&str> = live.values().map(|r| r.infranet_subnet.as_str()).collect();
    assert_eq!(subnets.len(), live.len(), "two realizations share an infranet subnet");
    for mzid in distinct {
        assert!(live.contains_key(mzid), "infranet block held by {mzid}, which is not live");
    }
}

/// Outcome of one concurrent call.
enum Outcome {
    Made(Box<RealizationRecord>),
    Refused(String),
}

async fn realize_all(
    replicas: &[RealizeService],
    names: Vec<String>,
    seed: u64,
) -> (BTreeMap<String, RealizationRecord>, BTreeSet<String>, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tasks = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let service = replicas[i % replicas.len()].clone();
        let net = experiment(&mut rng);
        tasks.push(tokio::spawn(async move {
            let result = service
                .realize_network(PROJECT, "exp", &name, "rev", &net, Duration::Never, "racer", &[])
                .await;
            let mzid = format!("{name}.exp.{PROJECT}");
            match result {
                Ok(record) => (mzid, Outcome::Made(Box::new(record))),
                Err(Error::FailedPrecondition(why)) => (mzid, Outcome::Refused(why)),
                Err(Error::Aborted(why)) => (mzid, Outcome::Refused(why)),
                Err(other) => panic!("{mzid}: unexpected error {other:?}"),
            }
        }));
    }
    let (mut made, mut refused, mut busy) = (BTreeMap::new(), BTreeSet::new(), 0);
    for task in tasks {
        match task.await.unwrap() {
            (mzid, Outcome::Made(record)) => {
                made.insert(mzid, *record);
            }
            (mzid, Outcome::Refused(why)) => {
                if why.contains("busy") {
                    busy += 1;
                }
                refused.insert(mzid);
            }
        }
    }
    (made, refused, busy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_realizations_on_two_replicas_never_double_book() {
    let backend = Backend::etcd().await;
    let replicas = [
        RealizeService::new(backend.store.clone(), backend.models(false)),
        RealizeService::new(backend.another_client().await, backend.models(false)),
    ];
    let models = facilities();
    for model in &models {
        replicas[0].register_facility(record(&model.id), model.clone()).await.unwrap();
    }
    let testbed = Testbed::from_facilities(&models).unwrap();
    let seed: u64 = rand::rng().random();
    eprintln!("race seed {seed}");

    // Round 1: 50 realizations at once.
    let names: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
    let (mut live, mut gone, busy) = realize_all(&replicas, names, seed).await;
    let conflicts: u64 = replicas.iter().map(RealizeService::commit_conflicts).sum();
    eprintln!(
        "round 1: {} made, {} refused ({busy} busy), {conflicts} commits retried",
        live.len(),
        gone.len()
    );
    // Otherwise the calls did not overlap and this test proved nothing about races.
    assert!(conflicts > 0, "no realization ever conflicted with another");
    assert!(!live.is_empty(), "nothing was realized");
    assert!(!gone.is_empty(), "demand exceeds the facility, so some must be refused");
    let metal_nodes: usize = live.values().flat_map(|r| &r.node_hosts).filter(|(f, _)| f == "metal").count();
    assert!(metal_nodes <= 40);
    check(&testbed, &read_table(backend.store.as_ref()).await, &live, &gone);

    // Round 2: relinquish half while 20 more realize, on both replicas.
    let leaving: Vec<String> = live.keys().step_by(2).cloned().collect();
    let mut relinquishers = Vec::new();
    for (i, mzid) in leaving.iter().enumerate() {
        let service = replicas[(i + 1) % 2].clone();
        let name = mzid.split('.').next().unwrap().to_owned();
        relinquishers.push(tokio::spawn(async move { service.relinquish(PROJECT, "exp", &name).await }));
    }
    let names: Vec<String> = (0..20).map(|i| format!("b{i}")).collect();
    let (made, refused, _) = realize_all(&replicas, names, seed.wrapping_add(1)).await;
    for task in relinquishers {
        task.await.unwrap().unwrap();
    }
    for mzid in &leaving {
        live.remove(mzid);
        gone.insert(mzid.clone());
    }
    eprintln!("round 2: {} made, {} refused, {} relinquished", made.len(), refused.len(), leaving.len());
    live.extend(made);
    gone.extend(refused);
    check(&testbed, &read_table(backend.store.as_ref()).await, &live, &gone);

    // Relinquishing everything, concurrently, leaves an empty table.
    let everyone: Vec<String> = live.keys().cloned().collect();
    let tasks: Vec<_> = everyone
        .iter()
        .enumerate()
        .map(|(i, mzid)| {
            let service = replicas[i % 2].clone();
            let name = mzid.split('.').next().unwrap().to_owned();
            tokio::spawn(async move { service.relinquish(PROJECT, "exp", &name).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let empty = read_table(backend.store.as_ref()).await;
    assert!(empty.entries.is_empty() && empty.infranet.is_empty() && empty.realizations.is_empty());
}

/// Shrinking a facility's model while realizations run: whatever interleaving happens, the
/// model that ends up stored still has every resource the table holds, and a refused change
/// names what is in the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn model_changes_racing_realizations_never_strand_allocations() {
    let backend = Backend::etcd().await;
    let replicas = [
        RealizeService::new(backend.store.clone(), backend.models(false)),
        RealizeService::new(backend.another_client().await, backend.models(false)),
    ];
    let shape = |racks| Shape { racks, hosts_per_rack: 4, ..Shape::default() };
    replicas[0].register_facility(record("alpha"), facility("alpha", &shape(4))).await.unwrap();
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..10 {
        let names: Vec<String> = (0..12).map(|i| format!("r{round}x{i}")).collect();
        let shrink = {
            let service = replicas[1].clone();
            tokio::spawn(async move {
                // Let some realizations get going first.
                tokio::time::sleep(std::time::Duration::from_millis(12 * round)).await;
                service.update_facility("alpha", None, None, Some(facility("alpha", &shape(3)))).await
            })
        };
        let (live, _, _) = realize_all(&replicas, names, round).await;
        match shrink.await.unwrap() {
            Ok(()) => accepted += 1,
            Err(Error::FailedPrecondition(why)) => {
                assert!(why.contains("host/alpha/r3n"), "{why}");
                refused += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
        let (_, model) = replicas[0].facility("alpha").await.unwrap();
        let testbed = Testbed::from_facilities(&[model.unwrap()]).unwrap();
        let table = read_table(backend.store.as_ref()).await;
        for key in table.entries.keys() {
            let present = match key {
                ResourceKey::Host { facility, host } => testbed.host_by_name(facility, host).is_some(),
                ResourceKey::Trunk { facility, trunk } => testbed.trunk_by_name(facility, trunk).is_some(),
                ResourceKey::Port { facility, host, port } => testbed
                    .host_by_name(facility, host)
                    .is_some_and(|h| testbed.host(h).ports.iter().any(|p| &p.name == port)),
                ResourceKey::Vlan { .. } => true,
            };
            assert!(present, "round {round}: {key:?} is allocated but not in the stored model");
        }
        check(&testbed, &table, &live, &BTreeSet::new());
        // Start the next round from the full facility, empty.
        for (i, mzid) in live.keys().enumerate() {
            let name = mzid.split('.').next().unwrap();
            replicas[i % 2].relinquish(PROJECT, "exp", name).await.unwrap();
        }
        replicas[0].update_facility("alpha", None, None, Some(facility("alpha", &shape(4)))).await.unwrap();
    }
    eprintln!("model changes: {accepted} accepted, {refused} refused");
}
