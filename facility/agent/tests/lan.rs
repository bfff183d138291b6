//! A five-node LAN with a sixth node behind one of them, addresses and static routing:
//! every node reaches every other by name, and teardown leaves nothing behind.

mod common;

use common::*;
use trellis_facility::{Agent, Names};

const MZID: &str = "lan.exp.proj";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_node_lan_with_static_routing_all_pairs_ping() {
    let _cleanup = Cleanup { mzid: MZID.into() };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = Agent::open_with(test_config(&state)).await.unwrap();

    let lan: Vec<(String, String)> = (1..=5).map(|i| (format!("n{i}"), format!("10.50.0.{i}/24"))).collect();
    let mut nodes = Vec::new();
    for (i, (name, addr)) in lan.iter().enumerate() {
        let infra = format!("10.213.0.{}", 10 + i);
        if name == "n5" {
            nodes.push(node(
                name,
                &infra,
                &[("eth1", "lan", &[addr.as_str()]), ("eth2", "tail", &["10.50.1.1/24"])],
            ));
        } else {
            nodes.push(node(name, &infra, &[("eth1", "lan", &[addr.as_str()])]));
        }
    }
    nodes.push(node("n6", "10.213.0.20", &[("eth1", "tail", &["10.50.1.2/24"])]));
    let members: Vec<(&str, &str)> = lan.iter().map(|(n, _)| (n.as_str(), "eth1")).collect();
    let mut spec = materialization(
        MZID,
        "10.213.0.0/24",
        nodes,
        vec![
            link("lan", &members, 1_000_000_000, 1_000),
            link("tail", &[("n5", "eth2"), ("n6", "eth1")], 0, 0),
        ],
        vec![],
    );
    spec.static_routing = true;
    agent.materialize(spec).await.unwrap();
    ready(&agent, MZID).await;

    // Interfaces have fixed MACs, so a rebuilt node does not leave stale neighbour entries.
    let eth1 = in_node_ok(MZID, "n1", &["ip", "link", "show", "dev", "eth1"]);
    assert!(eth1.contains(&Names::new(MZID).mac("n1", "eth1")), "{eth1}");
    let route = in_node_ok(MZID, "n1", &["ip", "route", "show", "10.50.1.0/24"]);
    assert!(route.contains("via 10.50.0.5 dev eth1"), "n1's route to the tail: {route}");

    let names: Vec<String> = (1..=6).map(|i| format!("n{i}")).collect();
    let mut failures = Vec::new();
    for from in &names {
        let script = names
            .iter()
            .filter(|to| *to != from)
            .map(|to| format!("ping -n -c 2 -i 0.2 -W 3 {to} >/dev/null 2>&1 || echo {to}; "))
            .collect::<String>();
        let out = in_node_ok(MZID, from, &["sh", "-c", &script]);
        failures.extend(out.split_whitespace().map(|to| format!("{from}→{to}")));
    }
    assert!(failures.is_empty(), "unreachable pairs: {failures:?}");

    agent.dematerialize(MZID).await.unwrap();
    assert_eq!(residue(MZID, &state), Vec::<String>::new());
}
