//! Realizations over both stores: realize, read, extend, relinquish, reclaim on expiry.

#[macro_use]
mod common;

use std::time::Duration as StdDuration;

use common::{Backend, GBPS, GIB, NodeSpec, Shape, chain, facility, hosts_of, network, record, table};
use tokio_util::sync::CancellationToken;
use trellis_embed::NodeKind;
use trellis_realize::{Duration, RealizationStatus, RevisionRef, keys};
use trellis_types::Error;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn infranet_keys(backend: &Backend) -> Vec<(String, String)> {
    let range = backend.store.range(keys::INFRANET).await.unwrap();
    range.kvs.into_iter().map(|kv| (kv.key, String::from_utf8(kv.value).unwrap())).collect()
}

async fn round_trip(backend: Backend) {
    let service = backend.service();
    service.register_facility(record("alpha"), facility("alpha", &Shape::default())).await.unwrap();
    let before = now();
    let r = service
        .realize_network("proj", "exp", "rlz", "abc123", &chain(3, GBPS), Duration::Given(3600), "alice", &[])
        .await
        .unwrap();
    assert_eq!(r.mzid(), "rlz.exp.proj");
    assert_eq!((r.revision.as_str(), r.creator.as_str(), r.ver), ("abc123", "alice", 1));
    assert_eq!(r.status, RealizationStatus::Succeeded);
    assert!(r.expires.unwrap() >= before + 3600 && r.expires.unwrap() <= now() + 3600);
    assert_eq!(r.node_hosts.len(), 3);
    assert!(r.embedding.nodes.iter().all(|n| n.kind == NodeKind::BareMetal));
    let mut hosts = hosts_of(&r);
    hosts.sort();
    hosts.dedup();
    assert_eq!(hosts.len(), 3, "bare metal nodes get a host each");

    // Names for the API: every switched endpoint has its port, every link its switches.
    assert_eq!(r.link_ports.len(), 2);
    for (ports, link) in r.link_ports.iter().zip(&r.embedding.links) {
        assert_eq!(ports.len(), link.endpoints.len());
        assert!(ports.iter().all(|p| p.as_deref().is_some_and(|p| p.starts_with("eth"))), "{ports:?}");
    }
    assert!(
        r.link_switches
            .iter()
            .all(|s| !s.is_empty() && s.iter().all(|s| s.starts_with("leaf") || s == "spine"))
    );

    // The infranet: one /24 whose .1 is the facility's gateway, nodes at .2, .3, .4 in node
    // order, its block claimed by the mzid.
    let prefix = r.infranet_subnet.strip_suffix(".0/24").expect(&r.infranet_subnet);
    assert_eq!(r.infranet_addrs, [2, 3, 4].map(|i| format!("{prefix}.{i}")));
    let blocks = infranet_keys(&backend).await;
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].1, "rlz.exp.proj");

    // The table holds exactly the claims, each naming the realization and what it serves.
    let held = table(&service).await;
    assert_eq!(held.len(), r.embedding.claims.len());
    for claim in &r.embedding.claims {
        let entries = &held[&keys::alloc(&claim.key)];
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].mzid, "rlz.exp.proj");
        assert_eq!(entries[0].usage, claim.usage);
        assert!(!entries[0].element.is_empty());
    }
    for (i, (facility, host)) in r.node_hosts.iter().enumerate() {
        let entry = &held[&format!("{}host/{facility}/{host}", keys::ALLOC)][0];
        assert_eq!(entry.element, format!("n{i}"));
        assert!(entry.usage.exclusive);
    }
    assert_eq!(held.keys().filter(|k| k.contains("/vlan/alpha/")).count(), 2, "a VLAN per link");

    assert_eq!(service.realization("proj", "exp", "rlz").await.unwrap(), r);
    assert_eq!(service.realizations().await.unwrap(), std::slice::from_ref(&r));
    let again = service
        .realize_network("proj", "exp", "rlz", "abc123", &chain(1, 0), Duration::Never, "alice", &[])
        .await
        .unwrap_err();
    assert!(matches!(again, Error::AlreadyExists { kind: "realization", .. }), "{again:?}");

    let forever = service.update_expiry("proj", "exp", "rlz", Duration::Never).await.unwrap();
    assert_eq!((forever.expires, forever.ver), (None, 2));
    let soon = service.update_expiry("proj", "exp", "rlz", Duration::Given(60)).await.unwrap();
    assert!(soon.expires.unwrap() >= before + 60 && soon.ver == 3);
    assert_eq!(service.realization("proj", "exp", "rlz").await.unwrap(), soon);
    let missing = service.update_expiry("proj", "exp", "nope", Duration::Never).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { kind: "realization", .. }), "{missing:?}");

    service.relinquish("proj", "exp", "rlz").await.unwrap();
    assert!(table(&service).await.is_empty(), "every allocation key is gone");
    assert!(infranet_keys(&backend).await.is_empty());
    assert!(service.realizations().await.unwrap().is_empty());
    for gone in [
        service.realization("proj", "exp", "rlz").await.unwrap_err(),
        service.relinquish("proj", "exp", "rlz").await.unwrap_err(),
    ] {
        assert!(matches!(gone, Error::NotFound { .. }), "{gone:?}");
    }
}
on_both_stores!(round_trip);

async fn relinquishing_frees_resources_for_others(backend: Backend) {
    let service = backend.service();
    let shape = Shape { racks: 2, hosts_per_rack: 3, ..Shape::default() };
    service.register_facility(record("alpha"), facility("alpha", &shape)).await.unwrap();
    let first = service
        .realize_network("p", "e", "first", "rev", &chain(6, GBPS), Duration::Never, "u", &[])
        .await
        .unwrap();
    let refused = service
        .realize_network("p", "e", "second", "rev", &chain(1, 0), Duration::Never, "u", &[])
        .await
        .unwrap_err();
    let Error::FailedPrecondition(text) = &refused else { panic!("{refused:?}") };
    assert!(text.starts_with("second.e.p cannot be realized: node n0"), "{text}");
    assert!(service.realization("p", "e", "second").await.is_err(), "a refused realization leaves nothing");

    // Another project's realization shares nothing with the first: relinquishing one leaves
    // the other's allocations alone.
    service.relinquish("p", "e", "first").await.unwrap();
    let a = service
        .realize_network("p", "e", "a", "rev", &chain(3, GBPS), Duration::Never, "u", &[])
        .await
        .unwrap();
    let b = service
        .realize_network("q", "e", "b", "rev", &chain(3, GBPS), Duration::Never, "u", &[])
        .await
        .unwrap();
    let mut all: Vec<String> = hosts_of(&a).into_iter().chain(hosts_of(&b)).collect();
    all.sort();
    let mut first_hosts = hosts_of(&first);
    first_hosts.sort();
    assert_eq!(all, first_hosts, "the same six hosts, now split between two realizations");
    service.relinquish("p", "e", "a").await.unwrap();
    let left = table(&service).await;
    assert_eq!(left.len(), b.embedding.claims.len());
    assert!(left.values().flatten().all(|a| a.mzid == "b.e.q"));
}
on_both_stores!(relinquishing_frees_resources_for_others);

async fn vms_share_hosts(backend: Backend) {
    let service = backend.service();
    let shape = Shape {
        racks: 1,
        hosts_per_rack: 2,
        cores: 8,
        memory: 16 * GIB,
        hypervisors: true,
        ..Shape::default()
    };
    service.register_facility(record("alpha"), facility("alpha", &shape)).await.unwrap();
    let net = network("vms", &[NodeSpec::vm(4, 4 * GIB); 3], &[(vec![0, 1, 2], GBPS)]);
    let r = service.realize_network("p", "e", "a", "rev", &net, Duration::Never, "u", &[]).await.unwrap();
    assert!(r.embedding.nodes.iter().all(|n| n.kind == NodeKind::VirtualMachine));
    let r2 = service.realize_network("p", "e", "b", "rev", &net, Duration::Never, "u", &[]).await;
    // 16 cores in all, 12 taken: three more 4-core VMs do not fit.
    assert!(matches!(r2, Err(Error::FailedPrecondition(_))), "{r2:?}");
    let small = network("one", &[NodeSpec::vm(4, 4 * GIB)], &[]);
    let r3 = service.realize_network("p", "e", "c", "rev", &small, Duration::Never, "u", &[]).await.unwrap();
    let held = table(&service).await;
    let (facility, host) = &r3.node_hosts[0];
    let shared = &held[&format!("{}host/{facility}/{host}", keys::ALLOC)];
    let cores: u32 = shared.iter().map(|a| a.usage.cores).sum();
    assert_eq!(cores, 8, "the host's cores are shared by both realizations: {shared:?}");
    assert_eq!(shared.len(), 2);
    service.relinquish("p", "e", "a").await.unwrap();
    let shared = &table(&service).await[&format!("{}host/{facility}/{host}", keys::ALLOC)];
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].mzid, "c.e.p");
}
on_both_stores!(vms_share_hosts);

async fn bad_requests(backend: Backend) {
    let service = backend.service();
    service.register_facility(record("alpha"), facility("alpha", &Shape::default())).await.unwrap();
    for (p, e, r) in [("P", "e", "r"), ("p", "e-1", "r"), ("p", "e", "")] {
        let err = service
            .realize_network(p, e, r, "rev", &chain(1, 0), Duration::Never, "u", &[])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    }
    let mut dangling = chain(2, 0);
    dangling.links[0].endpoints[1].socket.as_mut().unwrap().element = "ghost".into();
    let Error::InvalidArgument { violations } = service
        .realize_network("p", "e", "r", "rev", &dangling, Duration::Never, "u", &[])
        .await
        .unwrap_err()
    else {
        panic!("expected invalid argument")
    };
    assert_eq!(violations[0].field, "link l0");
    assert!(violations[0].description.contains("ghost"));

    let huge = network("big", &[NodeSpec { cores: 64, memory: GIB, metal: Some(true) }], &[]);
    let Error::FailedPrecondition(text) =
        service.realize_network("p", "e", "r", "rev", &huge, Duration::Never, "u", &[]).await.unwrap_err()
    else {
        panic!("expected failed precondition")
    };
    assert!(text.contains("node n0") && text.contains("cores"), "{text}");
    let negative =
        service.realize_network("p", "e", "r", "rev", &chain(1, 0), Duration::Given(-5), "u", &[]).await;
    assert!(matches!(negative, Err(Error::InvalidArgument { .. })), "{negative:?}");
    assert!(table(&service).await.is_empty());
    assert!(service.realizations().await.unwrap().is_empty());
}
on_both_stores!(bad_requests);

async fn expired_realizations_are_reclaimed(backend: Backend) {
    let service = backend.service();
    service.register_facility(record("alpha"), facility("alpha", &Shape::default())).await.unwrap();
    let realize = |name: &'static str, duration| {
        let service = service.clone();
        async move {
            service.realize_network("p", "e", name, "rev", &chain(2, GBPS), duration, "u", &[]).await.unwrap()
        }
    };
    let short = realize("short", Duration::Given(10)).await;
    realize("long", Duration::Given(1000)).await;
    realize("forever", Duration::Never).await;
    let t = short.expires.unwrap();

    assert_eq!(service.reclaim_expired(t - 1).await.unwrap(), 0);
    assert_eq!(service.reclaim_expired(t).await.unwrap(), 1, "due exactly at its expiry");
    let names =
        |rs: Vec<trellis_realize::RealizationRecord>| rs.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(names(service.realizations().await.unwrap()), ["forever", "long"]);
    assert!(table(&service).await.values().flatten().all(|a| a.mzid != "short.e.p"));
    assert_eq!(service.reclaim_expired(t + 100_000).await.unwrap(), 1);
    assert_eq!(names(service.realizations().await.unwrap()), ["forever"]);

    // The background reclaimer, run by two replicas at once: each realization goes once.
    realize("zero", Duration::Given(0)).await;
    let shutdown = CancellationToken::new();
    let replicas = [
        service.clone().spawn_reclaimer(StdDuration::from_millis(20), shutdown.clone()),
        service.clone().spawn_reclaimer(StdDuration::from_millis(20), shutdown.clone()),
    ];
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(20);
    while service.realization("p", "e", "zero").await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the reclaimer never reclaimed");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    shutdown.cancel();
    for replica in replicas {
        tokio::time::timeout(StdDuration::from_secs(5), replica).await.unwrap().unwrap();
    }
    assert_eq!(names(service.realizations().await.unwrap()), ["forever"]);
    let forever = service.realization("p", "e", "forever").await.unwrap();
    assert_eq!(table(&service).await.len(), forever.embedding.claims.len());
}
on_both_stores!(expired_realizations_are_reclaimed);

/// `realize` resolves revisions through the model service: compiled with the real sandboxed
/// compiler and pushed, then named by branch, tag or id.
async fn realize_resolves_pushed_revisions(backend: Backend) {
    let models = backend.models(true);
    let service = trellis_realize::RealizeService::new(backend.store.clone(), models.clone());
    service.register_facility(record("alpha"), facility("alpha", &Shape::default())).await.unwrap();
    let source = "from mergexp import *\nnet = Network('pair')\na = net.node('a', metal==True)\n\
                  b = net.node('b', metal==True)\nnet.connect([a, b], capacity==mbps(100))\nexperiment(net)\n";
    let pushed = models.push("proj", "exp", source, "", "v1", "alice").await.unwrap();

    let by_branch = service
        .realize("proj", "exp", "one", RevisionRef::Branch("master".into()), Duration::Never, "alice", &[])
        .await
        .unwrap();
    assert_eq!(by_branch.revision, pushed.id);
    let mut nodes: Vec<&str> = by_branch.embedding.nodes.iter().map(|n| n.node.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, ["a", "b"]);
    assert_eq!(by_branch.embedding.links[0].capacity, 100_000_000);

    let by_tag = service
        .realize("proj", "exp", "two", RevisionRef::Tag("v1".into()), Duration::Given(60), "alice", &[])
        .await
        .unwrap();
    let by_id = service
        .realize(
            "proj",
            "exp",
            "three",
            RevisionRef::Revision(pushed.id[..12].into()),
            Duration::Never,
            "bob",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((by_tag.revision.as_str(), by_id.revision.as_str()), (pushed.id.as_str(), pushed.id.as_str()));

    let missing = service
        .realize("proj", "exp", "four", RevisionRef::Tag("v9".into()), Duration::Never, "alice", &[])
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::NotFound { kind: "revision", .. }), "{missing:?}");
    let no_experiment = service
        .realize("proj", "other", "four", RevisionRef::Branch("master".into()), Duration::Never, "alice", &[])
        .await
        .unwrap_err();
    assert!(matches!(no_experiment, Error::NotFound { .. }), "{no_experiment:?}");
    assert_eq!(service.realizations().await.unwrap().len(), 3);
}
on_both_stores!(realize_resolves_pushed_revisions);

/// A realization touching more keys than etcd's default `--max-txn-ops` (128) still commits
/// as one transaction (the testkit's etcd runs with the limits Trellis requires).
async fn large_realizations_commit_in_one_transaction(backend: Backend) {
    let service = backend.service();
    let shape = Shape { racks: 5, hosts_per_rack: 8, ..Shape::default() };
    service.register_facility(record("alpha"), facility("alpha", &shape)).await.unwrap();
    let r = service
        .realize_network("p", "e", "big", "rev", &chain(40, 100_000_000), Duration::Never, "u", &[])
        .await
        .unwrap();
    assert!(r.embedding.claims.len() > 128, "only {} claims", r.embedding.claims.len());
    assert_eq!(table(&service).await.len(), r.embedding.claims.len());
    service.relinquish("p", "e", "big").await.unwrap();
    assert!(table(&service).await.is_empty());
}
on_both_stores!(large_realizations_commit_in_one_transaction);

/// A facility change in progress (its marker) closes the facility to realizations and to
/// other changes; a marker whose request died times out and is taken over.
async fn facility_changes_in_progress(backend: Backend) {
    let service = backend.service();
    service.register_facility(record("alpha"), facility("alpha", &Shape::default())).await.unwrap();
    let marker =
        |started: i64| format!(r#"{{"what":"replacing the model","started":{started}}}"#).into_bytes();
    let key = keys::facility_change("alpha");
    use trellis_store::StoreExt;
    backend.store.put(&key, marker(now())).await.unwrap();

    let busy = service.update_facility("alpha", None, None, Some(facility("alpha", &Shape::default()))).await;
    assert!(matches!(&busy, Err(Error::Aborted(m)) if m.contains("busy")), "{busy:?}");
    assert!(matches!(service.delete_facility("alpha").await, Err(Error::Aborted(_))));
    let waiting =
        service.realize_network("p", "e", "r", "rev", &chain(1, 0), Duration::Never, "u", &[]).await;
    assert!(matches!(&waiting, Err(Error::Aborted(m)) if m.contains("busy")), "{waiting:?}");

    // An abandoned marker: the next change takes it over and removes it when done.
    backend.store.put(&key, marker(now() - trellis_realize::CHANGE_TIMEOUT_SECS - 1)).await.unwrap();
    service
        .update_facility("alpha", None, Some("taken over".into()), Some(facility("alpha", &Shape::default())))
        .await
        .unwrap();
    assert!(backend.store.get(&key).await.unwrap().is_none());
    assert_eq!(service.facility("alpha").await.unwrap().0.description, "taken over");
    service.realize_network("p", "e", "r", "rev", &chain(1, 0), Duration::Never, "u", &[]).await.unwrap();
}
on_both_stores!(facility_changes_in_progress);
