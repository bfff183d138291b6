//! The wanted state built from a realization and its model: nodes, interfaces, addresses,
//! emulation, routing, users; and the preconditions of materializing.

#[macro_use]
mod common;

use std::net::Ipv4Addr;

use common::{ALICE_KEY, Backend, World, agent::RecordingAgent, experiment};
use trellis_materialize::{MaterializationRecord, NodeSpec, Phase};
use trellis_realize::{Duration as Lifetime, RevisionRef};
use trellis_types::Error;

const MODEL: &str = "\
from mergexp import *
net = Network('spec', addressing==ipv4, routing==static)
a = net.node('a', metal==True, image=='bookworm')
b = net.node('b', metal==True)
c = net.node('c', metal==True)
d = net.node('d', metal==True)
ab = net.connect([a, b], capacity==mbps(100), latency==ms(10), loss==0.01)
lan = net.connect([a, c, d], capacity==mbps(50))
bc = net.connect([b, c])
bc[b].socket.addrs = ip4('192.168.7.1/30')
experiment(net)
";

fn node<'a>(record: &'a MaterializationRecord, name: &str) -> &'a NodeSpec {
    record.node(name).unwrap_or_else(|| panic!("no node {name}")).1
}

/// `(interface, link, addresses)` of a node.
fn interfaces(record: &MaterializationRecord, name: &str) -> Vec<(String, String, Vec<String>)> {
    node(record, name).interfaces.iter().map(|i| (i.name.clone(), i.link.clone(), i.addrs.clone())).collect()
}

fn in_subnet(addr: &str, cidr: &str) -> bool {
    let addr: Ipv4Addr = addr.split('/').next().unwrap().parse().unwrap();
    let (base, len) = cidr.split_once('/').unwrap();
    let (base, len): (Ipv4Addr, u32) = (base.parse().unwrap(), len.parse().unwrap());
    let mask = u32::MAX << (32 - len);
    u32::from(addr) & mask == u32::from(base) & mask
}

/// A compiled `mergexp` model, pushed, realized and materialized.
async fn specs_follow_the_model(backend: Backend) {
    let world = World::new(backend, RecordingAgent::new(0, 0), true).await;
    let portal = &world.portal;
    portal.models.push("alice", "exp", MODEL, "", "", "alice").await.unwrap();
    let realization = portal
        .realize
        .realize("alice", "exp", "rlz", RevisionRef::Branch("master".into()), Lifetime::Never, "alice", &[])
        .await
        .unwrap();
    let record = portal.service.materialize("alice", "exp", "rlz", "alice").await.unwrap();
    assert_eq!(record, portal.service.materialization("alice", "exp", "rlz").await.unwrap());
    assert_eq!(record.mzid(), "rlz.exp.alice");
    assert_eq!((record.phase, record.generation, record.creator.as_str()), (Phase::Active, 1, "alice"));
    assert_eq!(record.revision, realization.revision);
    assert!(record.static_routing && record.ipv4_addressing);
    assert_eq!(record.infranet_subnet, realization.infranet_subnet);
    assert_eq!(record.facilities.len(), 1);
    assert_eq!(record.facilities[0].facility, "alpha");

    // Nodes sit where the realization put them, with its infranet addresses and the image asked.
    for (i, placement) in realization.embedding.nodes.iter().enumerate() {
        let spec = node(&record, &placement.node);
        assert_eq!(spec.host, realization.node_hosts[i].1);
        assert_eq!(spec.infranet_addr, realization.infranet_addrs[i]);
        assert!(spec.metal && spec.cores > 0 && spec.memory_bytes > 0);
        assert_eq!(spec.image, if placement.node == "a" { "bookworm" } else { "" });
    }

    // Interfaces in socket order; automatic /24s for every endpoint the model left unnumbered.
    let a = interfaces(&record, "a");
    assert_eq!(
        a.iter().map(|i| (i.0.as_str(), i.1.as_str())).collect::<Vec<_>>(),
        [("eth1", "a.0~b.0"), ("eth2", "a.1~c.0~d.0")]
    );
    let (b, c, d) = (interfaces(&record, "b"), interfaces(&record, "c"), interfaces(&record, "d"));
    assert_eq!(b.iter().map(|i| i.0.as_str()).collect::<Vec<_>>(), ["eth1", "eth2"]);
    assert_eq!(d.len(), 1);
    let [ab_a, lan_a] = [&a[0].2[0], &a[1].2[0]];
    let (ab_b, bc_b, lan_c, bc_c, lan_d) = (&b[0].2[0], &b[1].2[0], &c[0].2[0], &c[1].2[0], &d[0].2[0]);
    assert_eq!(bc_b, "192.168.7.1/30", "the model's own address is kept");
    let prefix = |a: &str| a.rsplit_once('.').unwrap().0.to_owned();
    let host = |a: &str| a.rsplit_once('.').unwrap().1.to_owned();
    assert_eq!(prefix(ab_a), prefix(ab_b));
    assert_eq!((host(ab_a).as_str(), host(ab_b).as_str()), ("1/24", "2/24"));
    assert_eq!([prefix(lan_a), prefix(lan_c)], [prefix(lan_d), prefix(lan_d)]);
    assert_eq!([host(lan_a), host(lan_c), host(lan_d)], ["1/24", "2/24", "3/24"]);
    assert_eq!(host(bc_c), "2/24", "the second endpoint of its link");
    let subnets = [prefix(ab_a), prefix(lan_a), prefix(bc_c)];
    assert!(subnets[0] != subnets[1] && subnets[1] != subnets[2] && subnets[0] != subnets[2]);
    for addr in [ab_a, lan_a, bc_c] {
        assert!(in_subnet(addr, "10.128.0.0/9"), "{addr}");
        assert!(!in_subnet(addr, &record.infranet_subnet), "{addr} collides with the infranet");
    }

    // Emulation from the link constraints (latency: ms in the model, µs on the wire).
    let links = &record.facilities[0].links;
    let ab = links.iter().find(|l| l.name == "a.0~b.0").unwrap();
    assert_eq!((ab.capacity_bps, ab.latency_us), (100_000_000, 10_000));
    assert!((ab.loss - 0.01).abs() < 1e-6, "{}", ab.loss);
    assert!(ab.vlan > 0);
    let lan = links.iter().find(|l| l.name == "a.1~c.0~d.0").unwrap();
    assert_eq!((lan.capacity_bps, lan.latency_us, lan.loss), (50_000_000, 0, 0.0));
    let ends: Vec<(&str, &str)> =
        lan.endpoints.iter().map(|e| (e.node.as_str(), e.interface.as_str())).collect();
    assert_eq!(ends, [("a", "eth2"), ("c", "eth1"), ("d", "eth1")]);

    // The project's members log in with their keys.
    assert_eq!(record.users.len(), 1);
    let alice = &record.users[0];
    assert_eq!(
        (alice.name.as_str(), alice.authorized_keys.as_slice()),
        ("alice", [ALICE_KEY.to_owned()].as_slice())
    );
    assert!(alice.uid >= 10_000 && alice.gid == alice.uid);

    let summary = record.summary();
    assert_eq!((summary.metal, summary.virtual_machines, summary.links), (4, 0, 3));
}
on_both_stores!(specs_follow_the_model);

/// Without `addressing==ipv4` nothing is numbered and no routing is asked for.
async fn manual_addressing_leaves_interfaces_unnumbered(backend: Backend) {
    let world = World::new(backend, RecordingAgent::new(0, 0), false).await;
    let network = experiment(5, 7);
    world.realize("exp", "rlz", &network).await;
    let record =
        world.portal.service.materialize_network("alice", "exp", "rlz", &network, "alice").await.unwrap();
    assert!(!record.static_routing && !record.ipv4_addressing);
    let nodes: Vec<&NodeSpec> = record.nodes().map(|(_, n)| n).collect();
    assert_eq!(nodes.len(), 5);
    assert!(nodes.iter().all(|n| n.interfaces.iter().all(|i| i.addrs.is_empty())));
    let endpoints: usize = record.facilities[0].links.iter().map(|l| l.endpoints.len()).sum();
    assert_eq!(nodes.iter().map(|n| n.interfaces.len()).sum::<usize>(), endpoints);
    // Every endpoint names an interface its node has, on the same link.
    for link in &record.facilities[0].links {
        assert_eq!(link.capacity_bps, 100_000_000);
        for end in &link.endpoints {
            let node = record.node(&end.node).unwrap().1;
            assert!(node.interfaces.iter().any(|i| i.name == end.interface && i.link == link.name));
        }
    }
}
on_both_stores!(manual_addressing_leaves_interfaces_unnumbered);

async fn materializing_needs_a_live_realization_once(backend: Backend) {
    let world = World::new(backend, RecordingAgent::new(0, 0), false).await;
    let (service, network) = (&world.portal.service, experiment(3, 1));
    let missing = service.materialize_network("alice", "exp", "nope", &network, "alice").await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { kind: "realization", .. }), "{missing:?}");
    let bad_name = service.materialize_network("alice", "exp", "No", &network, "alice").await.unwrap_err();
    assert!(matches!(bad_name, Error::InvalidArgument { .. }), "{bad_name:?}");

    world.realize("exp", "rlz", &network).await;
    service.materialize_network("alice", "exp", "rlz", &network, "alice").await.unwrap();
    let twice = service.materialize_network("alice", "exp", "rlz", &network, "alice").await.unwrap_err();
    assert!(matches!(twice, Error::AlreadyExists { kind: "materialization", .. }), "{twice:?}");

    // While it is being torn down it can be neither materialized again nor given ingresses.
    service.dematerialize("alice", "exp", "rlz").await.unwrap();
    service.dematerialize("alice", "exp", "rlz").await.unwrap();
    let busy = service.materialize_network("alice", "exp", "rlz", &network, "alice").await.unwrap_err();
    assert!(matches!(busy, Error::FailedPrecondition(_)), "{busy:?}");
    assert_eq!(service.materialization("alice", "exp", "rlz").await.unwrap().generation, 2);

    // A project without a record in the workspace has no users to give.
    let unknown = service.materialize_network("nobody", "exp", "rlz", &network, "alice").await.unwrap_err();
    assert!(matches!(unknown, Error::NotFound { .. }), "{unknown:?}");
    assert_eq!(service.materializations().await.unwrap().len(), 1);
    let gone = service.dematerialize("alice", "exp", "other").await.unwrap_err();
    assert!(matches!(gone, Error::NotFound { .. }), "{gone:?}");
}
on_both_stores!(materializing_needs_a_live_realization_once);
