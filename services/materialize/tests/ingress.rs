//! Ingress routes: creation, listing, deletion, and gateway ports that are never shared.

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::agent::RecordingAgent;
use common::{Backend, World, experiment, fast_controller, keys_under, replica_with};
use trellis_materialize::{IngressConfig, IngressProtocol, MaterializeConfig, MaterializeService, keys};
use trellis_types::Error;

const MZID: &str = "rlz.exp.alice";

/// A world with `alice/exp/rlz` materialized (no controller runs) and a service whose gateway
/// is `gw.example.net` with tcp/udp ports `ports`.
async fn setup(
    backend: Backend,
    ports: std::ops::RangeInclusive<u16>,
    https_port: u16,
) -> (World, MaterializeService) {
    let world = World::new(backend, RecordingAgent::new(0, 0), false).await;
    let config = MaterializeConfig {
        ingress: IngressConfig { gateway: "gw.example.net".into(), https_port, ports },
        controller: fast_controller(),
        ..Default::default()
    };
    let service =
        replica_with(world.backend.store.clone(), world.backend.dir.path(), &world.pki, false, config)
            .service;
    let network = experiment(3, 5);
    world.realize("exp", "rlz", &network).await;
    service.materialize_network("alice", "exp", "rlz", &network, "alice").await.unwrap();
    (world, service)
}

async fn routes_are_created_listed_and_deleted(backend: Backend) {
    let (world, service) = setup(backend, 30000..=30009, 443).await;
    let record = service.materialization("alice", "exp", "rlz").await.unwrap();
    let n1_addr = record.node("n1").unwrap().1.infranet_addr.clone();

    let ssh =
        service.new_ingress("alice", "exp", "rlz", IngressProtocol::Tcp, "n1", 22, "alice").await.unwrap();
    assert_eq!((ssh.mzid.as_str(), ssh.node.as_str(), ssh.port), (MZID, "n1", 22));
    assert_eq!(ssh.node_addr, n1_addr);
    assert_eq!(ssh.gateway, "gw.example.net");
    assert!((30000..=30009).contains(&ssh.gateway_port));
    assert_eq!(ssh.url, format!("tcp://gw.example.net:{}", ssh.gateway_port));
    assert_eq!(ssh.creator, "alice");

    let web =
        service.new_ingress("alice", "exp", "rlz", IngressProtocol::Https, "n0", 8443, "bob").await.unwrap();
    assert_eq!((web.gateway_port, web.url.as_str()), (443, "https://gw.example.net/rlz.exp.alice/n0/8443/"));
    let dns =
        service.new_ingress("alice", "exp", "rlz", IngressProtocol::Udp, "n1", 53, "alice").await.unwrap();
    assert!(dns.url.starts_with("udp://gw.example.net:"));

    let listed = service.ingresses("alice", "exp", "rlz").await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.contains(&ssh) && listed.contains(&web) && listed.contains(&dns));
    assert_eq!(service.ingress("alice", "exp", "rlz", IngressProtocol::Tcp, "n1", 22).await.unwrap(), ssh);
    let ports = keys_under(world.backend.store.as_ref(), keys::GATEWAY_PORTS).await;
    assert_eq!(ports.len(), 2, "tcp and udp routes claim a port each; https shares the gateway's");

    // Refusals.
    let twice = service
        .new_ingress("alice", "exp", "rlz", IngressProtocol::Tcp, "n1", 22, "alice")
        .await
        .unwrap_err();
    assert!(matches!(twice, Error::AlreadyExists { kind: "ingress", .. }), "{twice:?}");
    let no_node = service
        .new_ingress("alice", "exp", "rlz", IngressProtocol::Tcp, "n7", 22, "alice")
        .await
        .unwrap_err();
    assert!(matches!(no_node, Error::NotFound { kind: "node", .. }), "{no_node:?}");
    let bad_port = service
        .new_ingress("alice", "exp", "rlz", IngressProtocol::Http, "n1", 0, "alice")
        .await
        .unwrap_err();
    assert!(matches!(bad_port, Error::InvalidArgument { .. }), "{bad_port:?}");
    let no_mz = service
        .new_ingress("alice", "exp", "zzz", IngressProtocol::Tcp, "n1", 22, "alice")
        .await
        .unwrap_err();
    assert!(matches!(no_mz, Error::NotFound { kind: "materialization", .. }), "{no_mz:?}");

    // Deleting frees the route and its port.
    service.delete_ingress("alice", "exp", "rlz", IngressProtocol::Tcp, "n1", 22).await.unwrap();
    let gone =
        service.delete_ingress("alice", "exp", "rlz", IngressProtocol::Tcp, "n1", 22).await.unwrap_err();
    assert!(matches!(gone, Error::NotFound { kind: "ingress", .. }), "{gone:?}");
    assert_eq!(keys_under(world.backend.store.as_ref(), keys::GATEWAY_PORTS).await.len(), 1);
    assert_eq!(service.ingresses("alice", "exp", "rlz").await.unwrap().len(), 2);

    // Once dematerializing, no new routes.
    service.dematerialize("alice", "exp", "rlz").await.unwrap();
    let late = service
        .new_ingress("alice", "exp", "rlz", IngressProtocol::Tcp, "n2", 80, "alice")
        .await
        .unwrap_err();
    assert!(matches!(late, Error::FailedPrecondition(_)), "{late:?}");
}
on_both_stores!(routes_are_created_listed_and_deleted);

/// Concurrent requests never share a gateway port; when the range is used up the next one
/// is refused; each protocol has its own ports; a non-443 HTTPS port shows in the URL.
async fn gateway_ports_are_never_shared(backend: Backend) {
    let (_world, service) = setup(backend, 31000..=31007, 8443).await;
    let tasks: Vec<_> = (0..8u32)
        .map(|i| {
            let service = service.clone();
            tokio::spawn(async move {
                service
                    .new_ingress("alice", "exp", "rlz", IngressProtocol::Tcp, "n0", 1000 + i, "alice")
                    .await
            })
        })
        .collect();
    let mut ports = BTreeSet::new();
    for task in tasks {
        ports.insert(task.await.unwrap().unwrap().gateway_port);
    }
    assert_eq!(ports, (31000..=31007).collect::<BTreeSet<u32>>());
    let full = service
        .new_ingress("alice", "exp", "rlz", IngressProtocol::Tcp, "n1", 22, "alice")
        .await
        .unwrap_err();
    assert!(matches!(full, Error::ResourceExhausted(_)), "{full:?}");
    let udp =
        service.new_ingress("alice", "exp", "rlz", IngressProtocol::Udp, "n1", 53, "alice").await.unwrap();
    assert!((31000..=31007).contains(&udp.gateway_port));
    let web =
        service.new_ingress("alice", "exp", "rlz", IngressProtocol::Http, "n2", 80, "alice").await.unwrap();
    assert_eq!(web.url, "https://gw.example.net:8443/rlz.exp.alice/n2/80/");
}
on_both_stores!(gateway_ports_are_never_shared);
