//! Invariants over several embeddings made one after another (each seeing the claims of the
//! ones before), LANs, single-host VM facilities, and the checker itself.

mod common;

use std::collections::HashSet;

use common::*;
use trellis_api::xir;
use trellis_embed::check::{check_embedding, check_occupancy};
use trellis_embed::generate::{self, ExperimentSpec};
use trellis_embed::{NodeKind, Occupancy, Options, Request, ResourceKey, Testbed, embed};

#[test]
fn sequential_embeddings_never_overbook() {
    let mut spec = small_spec(4);
    spec.hosts_per_rack = 8;
    spec.virtualized = true;
    spec.uplink_capacity = 2 * GBPS;
    spec.uplinks_per_leaf = 2;
    let tb = testbed(&spec);
    let mut occupancy = Occupancy::new();
    let mut vlans: HashSet<u32> = HashSet::new();
    let mut realized = 0;
    let mut refused = 0;
    for round in 0..12u64 {
        let mut exp = ExperimentSpec::new("e", 6 + (round as u32 % 5) * 2, round);
        exp.metal = round % 3 != 0;
        exp.link_capacity = [100 * MBPS, 300 * MBPS, 500 * MBPS][round as usize % 3];
        let mut network = generate::experiment(&exp);
        if !exp.metal {
            for node in &mut network.nodes {
                node.virt = Some(xir::BoolConstraint { op: xir::Operator::Eq as i32, value: true });
                node.proc = cores(xir::Operator::Ge, 4);
            }
        }
        let request = Request::from_network(&network).unwrap();
        let options = Options { eligible: None, seed: round };
        match embed(&tb, &occupancy, &request, &options) {
            Ok(e) => {
                let violations = check_embedding(&tb, &occupancy, &request, &e, &options);
                assert!(violations.is_empty(), "round {round}: {violations:#?}");
                for l in &e.links {
                    if let Some(vid) = l.vlan {
                        assert!(vlans.insert(vid), "round {round}: VLAN {vid} reused");
                    }
                }
                add_claims(&mut occupancy, &e);
                realized += 1;
            }
            Err(_) => refused += 1,
        }
        let violations = check_occupancy(&tb, &occupancy);
        assert!(violations.is_empty(), "round {round}: {violations:#?}");
    }
    // The testbed fills up: some experiments fit, and the later ones are refused.
    assert!(realized >= 4, "{realized} realized");
    assert!(refused >= 1, "nothing was refused; the test does not fill the testbed");
}

#[test]
fn lans_take_one_vlan_and_a_tree_through_the_switches() {
    let tb = testbed(&small_spec(3));
    let mut net = Net::new();
    let members = ["a", "b", "c", "d", "e"];
    for (i, m) in members.iter().enumerate() {
        net.metal(m).host = eq_str(&format!("r{}h{}", i % 3, i / 3));
    }
    net.metal("f");
    let lan = net.connect(&members, Some(200 * MBPS));
    net.connect(&["a", "f"], Some(100 * MBPS));
    let e = embed_ok(&tb, &Occupancy::new(), &net.request(), &Options::default());
    let placed = e.links.iter().find(|l| l.link == lan).unwrap();
    assert_eq!(placed.endpoints.len(), 5);
    assert!(placed.vlan.is_some());
    // Three leaves joined through the spines: at least one trunk up from each.
    assert!(placed.trunks.len() >= 3, "{:?}", placed.trunks);
    let leaves: HashSet<_> = placed.switches.iter().filter(|&&s| !tb.switch(s).spine).collect();
    assert_eq!(leaves.len(), 3);
    let port_claims = e.claims.iter().filter(|c| matches!(c.key, ResourceKey::Port { .. })).count();
    assert_eq!(port_claims, 5 + 2, "a port per LAN member plus one per end of a~f");
    // f joins a in rack 0, which has room, so only the LAN crosses racks.
    assert!(host_name(&tb, &e, "f").starts_with("r0"), "{}", host_name(&tb, &e, "f"));
    assert_eq!(e.cross_rack_links, 1);
}

#[test]
fn vms_of_one_lan_on_one_host_need_no_network() {
    let mut spec = small_spec(1);
    spec.virtualized = true;
    spec.physical = false;
    let tb = testbed(&spec);
    let mut net = Net::new();
    for m in ["a", "b", "c"] {
        net.vm(m).host = eq_str("r0h2");
    }
    net.connect(&["a", "b", "c"], Some(GBPS * 5));
    let e = embed_ok(&tb, &Occupancy::new(), &net.request(), &Options::default());
    assert_eq!(e.links[0].vlan, None);
    assert!(e.links[0].endpoints.iter().all(|x| x.port.is_none()));
    assert!(e.claims.iter().all(|c| matches!(c.key, ResourceKey::Host { .. })));
}

#[test]
fn vms_keep_room_on_their_hosts_ports_for_their_links() {
    // 200 VMs of 4 GiB on 16 hypervisors with 4 x 1 Gb/s each: they fit by memory only if
    // hosts fill up, and their 100 Mb/s links fit the ports only if neighbours share hosts.
    let mut spec = small_spec(1);
    spec.hosts_per_rack = 16;
    spec.physical = false;
    spec.virtualized = true;
    let tb = testbed(&spec);
    let mut exp = ExperimentSpec::new("vms", 200, 8);
    exp.metal = false;
    let mut network = generate::experiment(&exp);
    for node in &mut network.nodes {
        node.memory = memory(xir::Operator::Eq, 4 * GIB);
    }
    let request = Request::from_network(&network).unwrap();
    let e = embed_ok(&tb, &Occupancy::new(), &request, &Options::default());
    let local = e.links.iter().filter(|l| l.vlan.is_none()).count();
    assert!(local > 0, "no link stayed on its host");
}

/// A laptop: one hypervisor, no switch, a port that reaches nothing.
fn laptop() -> Testbed {
    let resource = xir::Resource {
        id: "laptop".into(),
        roles: vec![xir::Role::Hypervisor as i32],
        procs: vec![xir::Proc { cores: 8, reserved_cores: 2, ..Default::default() }],
        memory: vec![xir::Dimm { capacity: 16 * GIB, reserved_capacity: 4 * GIB, ..Default::default() }],
        ni_cs: vec![xir::Nic {
            ports: vec![xir::Port { name: "wlp1".into(), capacity: GBPS, ..Default::default() }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let facility = xir::Facility { id: "home".into(), resources: vec![resource], ..Default::default() };
    Testbed::from_facilities(&[facility]).unwrap()
}

#[test]
fn a_single_hypervisor_carries_linked_vms() {
    let tb = laptop();
    assert_eq!(tb.hosts.len(), 1);
    assert_eq!((tb.hosts[0].cores, tb.hosts[0].memory), (6, 12 * GIB));
    assert!(tb.hosts[0].virt && !tb.hosts[0].metal && tb.hosts[0].leaf.is_none());

    let mut net = Net::new();
    for m in ["a", "b", "c"] {
        net.node(m);
    }
    net.get("c").memory = memory(xir::Operator::Eq, 4 * GIB);
    net.connect(&["a", "b"], Some(GBPS));
    net.connect(&["b", "c"], None);
    let e = embed_ok(&tb, &Occupancy::new(), &net.request(), &Options::default());
    assert!(e.nodes.iter().all(|n| n.kind == NodeKind::VirtualMachine));
    assert!(e.links.iter().all(|l| l.vlan.is_none() && l.endpoints.iter().all(|x| x.port.is_none())));
    assert_eq!(e.cross_rack_links, 0);
    let usage = &e.claims[0].usage;
    assert_eq!((usage.cores, usage.memory, usage.vms), (3, 6 * GIB, 3));

    // Three more 4 GiB VMs do not fit beside them in 12 GiB.
    let mut occupancy = Occupancy::new();
    add_claims(&mut occupancy, &e);
    let mut more = Net::new();
    for m in ["x", "y"] {
        more.node(m).memory = memory(xir::Operator::Eq, 4 * GIB);
    }
    let d = embed_err(&tb, &occupancy, &more.request(), &Options::default());
    expect(&d, "node y", "capacity", "node y: the 1 hosts that satisfy its constraints have no room left");

    let mut metal = Net::new();
    metal.metal("m");
    let d = embed_err(&tb, &Occupancy::new(), &metal.request(), &Options::default());
    expect(
        &d,
        "node m",
        "metal",
        "no host can be allocated as bare metal (1 candidate before the metal constraint, 0 after)",
    );
}

#[test]
fn vlan_ids_skip_those_in_use_and_move_on_to_vnis() {
    let tb = testbed(&small_spec(1));
    let mut occupancy = Occupancy::new();
    for vid in 2..=4094 {
        if vid != 100 {
            occupancy.add(&trellis_embed::Claim {
                key: ResourceKey::Vlan { facility: "f1".into(), vid },
                usage: trellis_embed::Usage { links: 1, ..Default::default() },
            });
        }
    }
    let mut net = Net::new();
    for m in ["a", "b", "c"] {
        net.metal(m);
    }
    net.connect(&["a", "b"], Some(MBPS));
    net.connect(&["b", "c"], Some(MBPS));
    let e = embed_ok(&tb, &occupancy, &net.request(), &Options::default());
    let mut vids: Vec<u32> = e.links.iter().filter_map(|l| l.vlan).collect();
    vids.sort();
    assert_eq!(vids, [100, 4097]);
}

#[test]
fn an_empty_experiment_takes_nothing() {
    let tb = testbed(&small_spec(1));
    let e = embed_ok(&tb, &Occupancy::new(), &Net::new().request(), &Options::default());
    assert!(e.nodes.is_empty() && e.links.is_empty() && e.claims.is_empty());
}

#[test]
fn the_same_seed_gives_the_same_embedding() {
    let tb = testbed(&small_spec(8));
    let network = generate::experiment(&ExperimentSpec::new("e", 20, 5));
    let request = Request::from_network(&network).unwrap();
    let options = Options { eligible: None, seed: 11 };
    let a = embed_ok(&tb, &Occupancy::new(), &request, &options);
    let b = embed_ok(&tb, &Occupancy::new(), &request, &options);
    assert_eq!(a, b);
}

#[test]
fn linked_nodes_stay_in_few_racks() {
    // 16 racks of 4; 12 nodes in a ring fit in 3 racks: the ring crosses racks 3 times.
    let tb = testbed(&small_spec(16));
    let mut net = Net::new();
    for i in 0..12 {
        net.metal(&format!("n{i}"));
    }
    for i in 0..12 {
        net.connect(&[&format!("n{i}"), &format!("n{}", (i + 1) % 12)], Some(100 * MBPS));
    }
    let e = embed_ok(&tb, &Occupancy::new(), &net.request(), &Options::default());
    let racks: HashSet<u32> = e.nodes.iter().map(|n| tb.host_rack[n.host.0 as usize]).collect();
    assert_eq!(racks.len(), 3);
    assert_eq!(e.cross_rack_links, 3);
}

#[test]
fn the_checker_catches_broken_embeddings() {
    let tb = testbed(&small_spec(2));
    let mut net = Net::new();
    net.metal("a").host = eq_str("r0h0");
    net.metal("b");
    net.metal("c").host = eq_str("r1h0");
    net.connect(&["a", "b"], Some(100 * MBPS));
    net.connect(&["b", "c"], Some(100 * MBPS));
    let request = net.request();
    let options = Options::default();
    let good = embed_ok(&tb, &Occupancy::new(), &request, &options);
    let check = |e: &trellis_embed::Embedding| check_embedding(&tb, &Occupancy::new(), &request, e, &options);

    let mut shared = good.clone();
    shared.nodes[1].host = shared.nodes[0].host;
    assert!(!check(&shared).is_empty(), "two bare-metal nodes on one host");

    let mut reused = good.clone();
    reused.links[1].vlan = reused.links[0].vlan;
    assert!(check(&reused).iter().any(|v| v.contains("already in use")));

    let mut wrong_port = good.clone();
    wrong_port.links[0].endpoints[0].host = good.nodes[2].host;
    assert!(!check(&wrong_port).is_empty(), "endpoint on another node's host");

    let mut untrunked = good.clone();
    let crossing =
        untrunked.links.iter_mut().find(|l| !l.trunks.is_empty()).expect("a and c are in different racks");
    crossing.trunks.clear();
    assert!(check(&untrunked).iter().any(|v| v.contains("do not join")));

    let mut occupancy = Occupancy::new();
    add_claims(&mut occupancy, &good);
    add_claims(&mut occupancy, &good);
    assert!(!check_occupancy(&tb, &occupancy).is_empty(), "the same hosts booked twice");
}
