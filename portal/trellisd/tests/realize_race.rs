//! Two `trellisd serve api` replicas on one etcd, 50 realize calls racing for a scarce testbed
//! through both: afterwards the allocation table read straight from etcd never holds a host,
//! port capacity, trunk capacity or VLAN id twice, and it matches the realizations exactly.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use common::{Daemon, authed};
use tonic::Code;
use tonic::transport::Channel;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::commission_client::CommissionClient;
use trellis_api::portal::v1::identity_client::IdentityClient;
use trellis_api::portal::v1::model_client::ModelClient;
use trellis_api::portal::v1::realize_client::RealizeClient;
use trellis_api::portal::v1::workspace_client::WorkspaceClient;
use trellis_api::xir;
use trellis_embed::generate::{FacilitySpec, facility};
use trellis_embed::{ResourceKey, Usage};
use trellis_realize::{Allocation, RealizationRecord, keys};
use trellis_store::Store;
use trellis_store::etcd::EtcdStore;
use trellis_testkit::etcd::EtcdServer;

const ADMIN_PASSWORD: &str = "race-admin-pw";
const MBPS: u64 = 1_000_000;
const EXPERIMENTS: usize = 5;
const CALLS: usize = 50;

/// A chain of `nodes` bare-metal nodes, each link asking for 400 Mb/s: two links fill most of
/// a 1 Gb/s port, so ports and the single uplink per rack are contested, not just hosts.
fn model(name: &str, nodes: usize) -> String {
    let mut m = format!("from mergexp import *\nnet = Network('{name}')\n");
    m.push_str(&format!("n = [net.node('n%d' % i, metal == True) for i in range({nodes})]\n"));
    m.push_str(&format!(
        "for i in range({}):\n    net.connect([n[i], n[i+1]], capacity == mbps(400))\n",
        nodes - 1
    ));
    m.push_str("experiment(net)\n");
    m
}

async fn start_replica(etcd: &str, dir: &std::path::Path) -> Daemon {
    Daemon::start(&["serve", "api", "--etcd", etcd], dir, ADMIN_PASSWORD).await
}

async fn login(ch: Channel) -> String {
    IdentityClient::new(ch)
        .login(pb::LoginRequest { username: "admin".into(), password: ADMIN_PASSWORD.into() })
        .await
        .unwrap()
        .into_inner()
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_realizations_race_across_two_replicas_without_double_booking() {
    let etcd = EtcdServer::start().await.unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let endpoint = etcd.endpoint();
    let (a, b) = tokio::join!(start_replica(&endpoint, dir_a.path()), start_replica(&endpoint, dir_b.path()));
    let (ch_a, ch_b) = (a.channel().await, b.channel().await);
    let token = login(ch_a.clone()).await;

    // Two racks of 8 hosts, two 1 Gb/s ports each, one 1 Gb/s uplink per rack.
    let mut spec = FacilitySpec::new("scarce", 2, 8);
    spec.ports_per_host = 2;
    spec.spines = 1;
    spec.uplinks_per_leaf = 1;
    spec.uplink_capacity = 1000 * MBPS;
    let model_xir = facility(&spec);
    CommissionClient::new(ch_a.clone())
        .register_facility(authed(
            pb::RegisterFacilityRequest {
                facility: Some(pb::Facility {
                    name: "scarce".into(),
                    address: "127.0.0.1".into(),
                    ..Default::default()
                }),
                model: Some(model_xir.clone()),
            },
            &token,
        ))
        .await
        .unwrap();

    let mut ws = WorkspaceClient::new(ch_a.clone());
    ws.create_project(authed(
        pb::CreateProjectRequest {
            user: "admin".into(),
            project: Some(pb::Project { name: "race".into(), ..Default::default() }),
        },
        &token,
    ))
    .await
    .unwrap();
    for e in 0..EXPERIMENTS {
        let name = format!("e{e}");
        ws.create_experiment(authed(
            pb::CreateExperimentRequest {
                experiment: Some(pb::Experiment {
                    name: name.clone(),
                    project: "race".into(),
                    ..Default::default()
                }),
            },
            &token,
        ))
        .await
        .unwrap();
        ModelClient::new(ch_b.clone())
            .push(authed(
                pb::PushRequest {
                    project: "race".into(),
                    experiment: name.clone(),
                    model: model(&name, 2 + e),
                    branch: "master".into(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap();
    }

    // 50 calls at once, alternating replicas: 16 hosts cannot hold them all.
    let mut calls = Vec::new();
    for i in 0..CALLS {
        let ch = if i % 2 == 0 { ch_a.clone() } else { ch_b.clone() };
        let token = token.clone();
        calls.push(tokio::spawn(async move {
            let experiment = format!("e{}", i % EXPERIMENTS);
            let result = RealizeClient::new(ch)
                .realize(authed(
                    pb::RealizeRequest {
                        project: "race".into(),
                        experiment: experiment.clone(),
                        realization: format!("r{i}"),
                        branch: "master".into(),
                        ..Default::default()
                    },
                    &token,
                ))
                .await;
            (format!("r{i}.{experiment}.race"), result.map(|_| ()))
        }));
    }
    let mut realized = BTreeSet::new();
    for call in calls {
        let (mzid, result) = call.await.unwrap();
        match result {
            Ok(()) => {
                realized.insert(mzid);
            }
            // Out of resources, or still losing races after its retries: both are honest answers.
            Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::Aborted) => {}
            Err(s) => panic!("{mzid}: unexpected failure {s:?}"),
        }
    }
    assert!(!realized.is_empty(), "some realizations must fit");
    assert!(realized.len() < CALLS, "the testbed is scarce: not all 50 can fit");

    let store = Arc::new(EtcdStore::connect(std::slice::from_ref(&endpoint)).await.unwrap());
    check_table(store.as_ref(), &model_xir, &realized).await;

    // Relinquish everything through both replicas at once; nothing may remain.
    let mut frees = Vec::new();
    for (i, mzid) in realized.iter().enumerate() {
        let ch = if i % 2 == 0 { ch_b.clone() } else { ch_a.clone() };
        let token = token.clone();
        let parts: Vec<String> = mzid.split('.').map(String::from).collect();
        frees.push(tokio::spawn(async move {
            RealizeClient::new(ch)
                .relinquish(authed(
                    pb::RelinquishRequest {
                        realization: parts[0].clone(),
                        experiment: parts[1].clone(),
                        project: parts[2].clone(),
                    },
                    &token,
                ))
                .await
        }));
    }
    for f in frees {
        f.await.unwrap().unwrap();
    }
    let left = store.range("/trellis/realize/alloc/").await.unwrap().kvs;
    assert!(
        left.is_empty(),
        "relinquishing everything leaves no allocation: {:?}",
        left.first().map(|k| &k.key)
    );
}

/// Port capacities from the facility model, by (host, port name).
fn port_capacities(model: &xir::Facility) -> HashMap<(String, String), u64> {
    let mut ports = HashMap::new();
    for r in &model.resources {
        for nic in &r.ni_cs {
            for p in &nic.ports {
                ports.insert((r.id.clone(), p.name.clone()), p.capacity);
            }
        }
    }
    ports
}

async fn check_table(store: &dyn Store, model: &xir::Facility, realized: &BTreeSet<String>) {
    let ports = port_capacities(model);
    let records: Vec<RealizationRecord> = store
        .range("/trellis/realize/realizations/")
        .await
        .unwrap()
        .kvs
        .iter()
        .map(|kv| serde_json::from_slice(&kv.value).unwrap())
        .collect();
    let recorded: BTreeSet<String> = records.iter().map(|r| r.mzid()).collect();
    assert_eq!(&recorded, realized, "exactly the successful calls have realizations");

    let mut holders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut vlans: BTreeMap<(String, u32), usize> = BTreeMap::new();
    for kv in store.range("/trellis/realize/alloc/").await.unwrap().kvs {
        let allocations: Vec<Allocation> = serde_json::from_slice(&kv.value).unwrap();
        let key = keys::parse_resource(&kv.key).unwrap_or_else(|| panic!("unparsable key {}", kv.key));
        let mut total = Usage::default();
        for a in &allocations {
            assert!(realized.contains(&a.mzid), "{} is held by {}, which does not exist", kv.key, a.mzid);
            holders.entry(a.mzid.clone()).or_default().insert(kv.key.clone());
            total.add(&a.usage);
        }
        match &key {
            ResourceKey::Host { host, .. } => {
                let exclusive = allocations.iter().filter(|a| a.usage.exclusive).count();
                assert!(exclusive <= 1, "host {host} given whole to {exclusive} realizations");
                assert!(exclusive == 0 || allocations.len() == 1, "host {host} is bare metal and shared");
            }
            ResourceKey::Port { host, port, .. } => {
                let capacity = ports[&(host.clone(), port.clone())];
                assert!(total.capacity <= capacity, "port {host}/{port}: {} > {capacity}", total.capacity);
            }
            ResourceKey::Trunk { trunk, .. } => {
                // Every uplink in this facility is 1 Gb/s.
                let capacity = 1000 * MBPS;
                assert!(total.capacity <= capacity, "trunk {trunk}: {} > {capacity}", total.capacity);
            }
            ResourceKey::Vlan { facility, vid } => {
                *vlans.entry((facility.clone(), *vid)).or_default() += allocations.len();
            }
        }
    }
    for ((facility, vid), n) in vlans {
        assert_eq!(n, 1, "VLAN {vid} of {facility} held {n} times");
    }
    // Every realization's hosts are in the table under its name.
    for r in &records {
        for (facility, host) in &r.node_hosts {
            let key = keys::alloc(&ResourceKey::Host { facility: facility.clone(), host: host.clone() });
            assert!(holders.get(&r.mzid()).is_some_and(|k| k.contains(&key)), "{}: {key} missing", r.mzid());
        }
    }
}
