//! The constraint corpus: each kind of node and link constraint, once satisfied and once
//! violated, with the diagnostic a user would read.

mod common;

use common::*;
use trellis_api::xir;
use trellis_api::xir::Operator::{Eq, Ge, Le, Ne};
use trellis_embed::{NodeKind, Occupancy, Options};

fn free() -> Occupancy {
    Occupancy::new()
}

#[test]
fn cores_on_bare_metal() {
    let tb = testbed(&small_spec(2));
    let mut net = Net::new();
    net.metal("a").proc = cores(Ge, 32);
    net.metal("b").proc = cores(Le, 8);
    net.metal("c").proc = cores(Ne, 16);
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    assert_eq!(tb.host(e.nodes[0].host).cores, 32);
    assert_eq!(tb.host(e.nodes[1].host).cores, 8);
    assert_ne!(tb.host(e.nodes[2].host).cores, 16);

    let mut net = Net::new();
    net.metal("big").proc = cores(Ge, 64);
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    let d = expect(
        &d,
        "node big",
        "cores",
        "no host has >= 64 cores (8 candidates before the cores constraint, 0 after)",
    );
    assert!(d.message.ends_with("the largest has 32"), "{}", d.message);
    assert_eq!(d.candidates_left, Some(8));
}

#[test]
fn cores_and_memory_for_vms() {
    let mut spec = small_spec(1);
    spec.virtualized = true;
    let tb = testbed(&spec);
    let mut net = Net::new();
    net.vm("a").proc = cores(Eq, 24);
    net.vm("b").memory = memory(Ge, 100 * GIB);
    net.vm("c").proc = cores(Le, 4);
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    assert_eq!((e.nodes[0].kind, e.nodes[0].cores), (NodeKind::VirtualMachine, 24));
    assert_eq!(tb.host(e.nodes[0].host).cores, 32);
    assert_eq!(e.nodes[1].memory, 100 * GIB);
    // `<=` reserves the default (one core), not the bound.
    assert_eq!(e.nodes[2].cores, 1);

    let mut net = Net::new();
    net.vm("b").proc = cores(Eq, 64);
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    let d = expect(
        &d,
        "node b",
        "cores",
        "no host has 64 cores free (4 candidates before the cores constraint, 0 after)",
    );
    assert!(d.message.ends_with("largest free is 32"), "{}", d.message);
    assert_eq!(
        d.message,
        "node b: no host has 64 cores free (4 candidates before the cores constraint, 0 after); largest free is 32"
    );
}

#[test]
fn memory_on_bare_metal() {
    let tb = testbed(&small_spec(2));
    let mut net = Net::new();
    net.metal("a").memory = memory(Ge, 100 * GIB);
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    assert_eq!(tb.host(e.nodes[0].host).memory, 128 * GIB);

    let mut net = Net::new();
    net.metal("a").memory = memory(Ge, 1024 * GIB);
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    expect(
        &d,
        "node a",
        "memory",
        "no host has >= 1 TiB of memory (8 candidates before the memory constraint, 0 after); the largest has 128 GiB",
    );
}

#[test]
fn disk_from_disks_and_rootfs() {
    let tb = testbed(&small_spec(1));
    let mut net = Net::new();
    let a = net.metal("a");
    a.disks = vec![xir::DiskSpec { capacity: op_u64(Ge, 1000 * GIB), ..Default::default() }];
    a.rootfs = Some(xir::DiskSpec { capacity: op_u64(Ge, 500 * GIB), ..Default::default() });
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    assert_eq!(tb.host(e.nodes[0].host).disk, 2000 * GIB);

    let mut net = Net::new();
    net.metal("a").rootfs = Some(xir::DiskSpec { capacity: op_u64(Ge, 10_000 * GIB), ..Default::default() });
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    expect(
        &d,
        "node a",
        "disk",
        "no host has >= 9.8 TiB of disk (4 candidates before the disk constraint, 0 after)",
    );
}

#[test]
fn image() {
    let tb = testbed(&small_spec(1));
    let mut net = Net::new();
    net.metal("a").image = eq_str("bookworm");
    embed_ok(&tb, &free(), &net.request(), &Options::default());

    let mut net = Net::new();
    net.metal("a").image = eq_str("windows95");
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    expect(
        &d,
        "node a",
        "image",
        "no host can boot image \"windows95\" (4 candidates before the image constraint, 0 after)",
    );
}

#[test]
fn metal_versus_virtual_machines() {
    // Bare-metal-only hosts take no VMs ...
    let tb = testbed(&small_spec(1));
    let mut net = Net::new();
    net.vm("v");
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    expect(
        &d,
        "node v",
        "virt",
        "no host can run virtual machines (4 candidates before the virt constraint, 0 after)",
    );

    // ... VM-only hosts no bare metal ...
    let mut spec = small_spec(1);
    spec.physical = false;
    spec.virtualized = true;
    let vm_only = testbed(&spec);
    let mut net = Net::new();
    net.metal("m");
    let d = embed_err(&vm_only, &free(), &net.request(), &Options::default());
    expect(&d, "node m", "metal", "no host can be allocated as bare metal");

    // ... and a node without a preference becomes whatever the host allows.
    let mut net = Net::new();
    net.node("either");
    net.vm("v");
    let e = embed_ok(&vm_only, &free(), &net.request(), &Options::default());
    assert!(e.nodes.iter().all(|n| n.kind == NodeKind::VirtualMachine));
    let e = embed_ok(
        &tb,
        &free(),
        &Net {
            network: xir::Network {
                nodes: vec![xir::Node { id: "x".into(), ..Default::default() }],
                ..Default::default()
            },
        }
        .request(),
        &Options::default(),
    );
    assert_eq!(e.nodes[0].kind, NodeKind::BareMetal);
}

#[test]
fn a_host_with_bare_metal_takes_no_vms_and_vice_versa() {
    let mut spec = small_spec(1);
    spec.hosts_per_rack = 1;
    spec.virtualized = true;
    let tb = testbed(&spec);
    let mut net = Net::new();
    net.metal("m");
    let first = embed_ok(&tb, &free(), &net.request(), &Options::default());
    let mut occupancy = Occupancy::new();
    add_claims(&mut occupancy, &first);

    let mut net = Net::new();
    net.vm("v");
    let d = embed_err(&tb, &occupancy, &net.request(), &Options::default());
    expect(
        &d,
        "node v",
        "free",
        "no host is free: every candidate is in use by other realizations (1 candidate",
    );

    let mut net = Net::new();
    net.vm("v");
    let vms = embed_ok(&tb, &free(), &net.request(), &Options::default());
    let mut occupancy = Occupancy::new();
    add_claims(&mut occupancy, &vms);
    let mut net = Net::new();
    net.metal("m");
    let d = embed_err(&tb, &occupancy, &net.request(), &Options::default());
    expect(&d, "node m", "free", "no host is free");
}

#[test]
fn platform_and_architecture() {
    let tb = testbed(&small_spec(1));
    let mut net = Net::new();
    net.metal("a").platform = eq_str("r640");
    net.metal("b").platform = eq_str("x86_64");
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    assert_eq!(tb.host(e.nodes[0].host).platform, "r640");

    let mut net = Net::new();
    net.metal("a").platform = eq_str("rpi4");
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    expect(
        &d,
        "node a",
        "platform",
        "no host has platform \"rpi4\" (4 candidates before the platform constraint, 0 after)",
    );

    let mut net = Net::new();
    net.metal("a").architecture = Some(xir::IsaConstraint { op: Eq as i32, value: xir::Isa::Aarch64 as i32 });
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    expect(&d, "node a", "architecture", "no host has architecture \"aarch64\"");
}

#[test]
fn host_pinning() {
    let tb = testbed(&small_spec(2));
    let mut net = Net::new();
    net.metal("a").host = eq_str("r1h2");
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    assert_eq!(host_name(&tb, &e, "a"), "r1h2");

    let mut net = Net::new();
    net.metal("a").host = Some(xir::StringConstraint { op: Ne as i32, value: "r0h0".into() });
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    assert_ne!(host_name(&tb, &e, "a"), "r0h0");

    let mut net = Net::new();
    net.metal("a").host = eq_str("nope");
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    let d = expect(
        &d,
        "node a",
        "host",
        "no host is named \"nope\" (8 candidates before the host constraint, 0 after)",
    );
    assert_eq!(d.candidates_left, Some(8));
}

#[test]
fn nic_count_for_bare_metal() {
    let tb = testbed(&small_spec(2));
    let mut net = Net::new();
    net.metal("hub");
    for i in 0..4 {
        let leaf = format!("l{i}");
        net.metal(&leaf);
        net.connect(&["hub", &leaf], Some(100 * MBPS));
    }
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    // Four interfaces, four distinct ports.
    let mut ports: Vec<u32> = e
        .links
        .iter()
        .flat_map(|l| l.endpoints.iter().filter(|x| x.node == "hub").map(|x| x.port.unwrap()))
        .collect();
    ports.sort();
    assert_eq!(ports, [0, 1, 2, 3]);

    net.metal("l4");
    net.connect(&["hub", "l4"], Some(100 * MBPS));
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    expect(
        &d,
        "node hub",
        "nics",
        "no host has 5 experiment ports for the node's 5 interfaces (8 candidates before the nics constraint, 0 after); the most any candidate has is 4",
    );
}

fn socket_spec(net: &mut Net, node: &str, spec: xir::PortSpec) {
    net.get(node).sockets[0].port = Some(spec);
}

#[test]
fn nic_capacity_and_model() {
    let tb = testbed(&small_spec(1));
    let mut net = Net::new();
    net.metal("a");
    net.metal("b");
    net.connect(&["a", "b"], Some(100 * MBPS));
    socket_spec(&mut net, "a", xir::PortSpec { capacity: op_u64(Ge, GBPS), ..Default::default() });
    socket_spec(
        &mut net,
        "b",
        xir::PortSpec {
            model: Some(xir::NicModelConstraint { op: Eq as i32, value: xir::NicModel::ConnectX4 as i32 }),
            ..Default::default()
        },
    );
    embed_ok(&tb, &free(), &net.request(), &Options::default());

    socket_spec(&mut net, "a", xir::PortSpec { capacity: op_u64(Ge, 10 * GBPS), ..Default::default() });
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    expect(
        &d,
        "node a",
        "nic-capacity",
        "no host has an experiment port with capacity >= 10 Gb/s (4 candidates before the nic-capacity constraint, 0 after); the fastest port is 1 Gb/s",
    );

    socket_spec(&mut net, "a", xir::PortSpec::default());
    socket_spec(
        &mut net,
        "b",
        xir::PortSpec {
            model: Some(xir::NicModelConstraint { op: Eq as i32, value: xir::NicModel::ConnectX6 as i32 }),
            ..Default::default()
        },
    );
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    expect(&d, "node b", "nic-model", "no host has an experiment port of model == ConnectX6");
}

#[test]
fn link_capacity_beyond_the_ports() {
    let tb = testbed(&small_spec(1));
    let mut net = Net::new();
    net.metal("a");
    net.metal("b");
    let id = net.connect(&["a", "b"], Some(GBPS));
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    assert_eq!(e.links[0].capacity, GBPS);

    net.network.links[0].capacity = op_u64(Eq, 2 * GBPS);
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    expect(
        &d,
        &format!("link {id}"),
        "capacity",
        "has 2 Gb/s free; the most any of its 4 ports has is 1 Gb/s",
    );
}

#[test]
fn link_capacity_beyond_the_trunks() {
    let mut spec = small_spec(2);
    spec.port_capacity = 10 * GBPS;
    spec.uplink_capacity = GBPS;
    spec.uplinks_per_leaf = 2;
    let tb = testbed(&spec);
    let mut net = Net::new();
    net.metal("a").host = eq_str("r0h0");
    net.metal("b").host = eq_str("r1h0");
    let id = net.connect(&["a", "b"], Some(500 * MBPS));
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    assert_eq!(e.cross_rack_links, 1);
    assert_eq!(e.links[0].trunks.len(), 2, "leaf0 -> spine -> leaf1");
    assert!(e.links[0].switches.iter().any(|&s| tb.switch(s).spine));

    net.network.links[0].capacity = op_u64(Eq, 2 * GBPS);
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    let d = expect(
        &d,
        &format!("link {id}"),
        "capacity",
        "no path from switch leaf0 to switch leaf1 has 2 Gb/s free on every trunk (0 of the 2 trunks at leaf0 have room)",
    );
    assert_eq!(d.candidates_left, Some(0));
}

#[test]
fn trunk_capacity_is_shared_between_links() {
    let mut spec = small_spec(2);
    spec.uplink_capacity = GBPS;
    spec.uplinks_per_leaf = 2;
    spec.spines = 2;
    let tb = testbed(&spec);
    // Two uplinks of 1 Gb/s from each leaf: three 600 Mb/s links between the racks cannot
    // all cross (each trunk carries one).
    let mut net = Net::new();
    for i in 0..3 {
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        net.metal(&a).host = eq_str(&format!("r0h{i}"));
        net.metal(&b).host = eq_str(&format!("r1h{i}"));
        net.connect(&[&a, &b], Some(600 * MBPS));
    }
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    expect(&d, "link a2.0~b2.0", "capacity", "no path from switch leaf0 to switch leaf1 has 600 Mb/s free");
    net.network.links.pop();
    net.network.nodes.truncate(4);
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    // The two links took different trunks.
    assert_ne!(e.links[0].trunks, e.links[1].trunks);
}

#[test]
fn pool_eligibility() {
    let tb = testbed(&small_spec(2));
    let rack1: Vec<bool> = tb.hosts.iter().map(|h| h.name.starts_with("r1")).collect();
    let options = Options { eligible: Some(rack1), seed: 0 };
    let mut net = Net::new();
    for i in 0..4 {
        net.metal(&format!("n{i}"));
    }
    let e = embed_ok(&tb, &free(), &net.request(), &options);
    assert!(e.nodes.iter().all(|n| tb.host(n.host).name.starts_with("r1")));

    net.metal("n4");
    let d = embed_err(&tb, &free(), &net.request(), &options);
    expect_overall(
        &d,
        "capacity",
        "the experiment has 5 bare-metal nodes, but only 4 free hosts satisfy their constraints",
    );

    let nobody = Options { eligible: Some(vec![false; tb.hosts.len()]), seed: 0 };
    let d = embed_err(&tb, &free(), &net.request(), &nobody);
    expect(
        &d,
        "node n0",
        "pool",
        "no host is both in the project's pool and active (8 candidates before the pool constraint, 0 after)",
    );
}

#[test]
fn deactivated_hosts_are_never_chosen() {
    let mut tb = testbed(&small_spec(1));
    let mut net = Net::new();
    net.metal("a").host = eq_str("r0h1");
    embed_ok(&tb, &free(), &net.request(), &Options::default());

    let id = tb.host_by_name("f1", "r0h1").unwrap();
    tb.hosts[id.0 as usize].active = false;
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    let d = expect(&d, "node a", "pool", "(1 candidate before the pool constraint, 0 after)");
    assert_eq!(d.candidates_left, Some(1));

    let mut net = Net::new();
    for i in 0..3 {
        net.metal(&format!("n{i}"));
    }
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    assert!(e.nodes.iter().all(|n| n.host != id));
}

#[test]
fn occupancy_from_other_realizations() {
    let tb = testbed(&small_spec(1));
    let mut net = Net::new();
    for i in 0..3 {
        net.metal(&format!("n{i}"));
    }
    let first = embed_ok(&tb, &free(), &net.request(), &Options::default());
    let mut occupancy = Occupancy::new();
    add_claims(&mut occupancy, &first);

    let mut one = Net::new();
    one.metal("x");
    let second = embed_ok(&tb, &occupancy, &one.request(), &Options::default());
    assert!(first.nodes.iter().all(|n| n.host != second.nodes[0].host));
    add_claims(&mut occupancy, &second);

    let d = embed_err(&tb, &occupancy, &one.request(), &Options::default());
    expect(
        &d,
        "node x",
        "free",
        "no host is free: every candidate is in use by other realizations (4 candidates before the free constraint, 0 after)",
    );
}

#[test]
fn more_nodes_than_hosts() {
    let tb = testbed(&small_spec(1));
    let mut net = Net::new();
    for i in 0..5 {
        net.metal(&format!("n{i}"));
    }
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    let d = expect_overall(
        &d,
        "capacity",
        "the experiment has 5 bare-metal nodes, but only 4 free hosts satisfy their constraints",
    );
    assert_eq!(d.candidates_left, Some(4));

    // Enough hosts in all, but only one of them is big enough for two nodes that want it.
    let mut net = Net::new();
    net.metal("small");
    net.metal("big1").proc = cores(Ge, 32);
    net.metal("big2").proc = cores(Ge, 32);
    let d = embed_err(&tb, &free(), &net.request(), &Options::default());
    let d = expect(
        &d,
        "node big2",
        "capacity",
        "node big2: the 1 hosts that satisfy its constraints have no room left once the experiment's other nodes are placed (2 nodes have these constraints)",
    );
    assert_eq!(d.candidates_left, Some(1));
}

#[test]
fn constrained_nodes_get_their_hosts_first() {
    // One 32-core host per rack; four nodes, one needing 32 cores, must all fit in one rack.
    let tb = testbed(&small_spec(1));
    let mut net = Net::new();
    for i in 0..3 {
        net.metal(&format!("n{i}"));
    }
    net.metal("big").proc = cores(Ge, 32);
    let e = embed_ok(&tb, &free(), &net.request(), &Options::default());
    assert_eq!(tb.host(e.nodes[3].host).cores, 32);
}
