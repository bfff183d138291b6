//! Reading facility models into a testbed and experiment models into requests.

mod common;

use common::*;
use trellis_api::xir;
use trellis_embed::generate::{self, FacilitySpec};
use trellis_embed::request::KindRequest;
use trellis_embed::{Request, Testbed};

#[test]
fn a_generated_facility_reads_as_racks_of_hosts() {
    let mut spec = FacilitySpec::new("f1", 2, 4);
    spec.uplinks_per_leaf = 4;
    spec.spines = 2;
    let tb = testbed(&spec);
    assert_eq!(tb.hosts.len(), 8);
    // Leaves and spines only: infranet switches carry no experiment traffic.
    assert_eq!(tb.switches.len(), 4);
    assert_eq!(tb.switches.iter().filter(|s| s.spine).count(), 2);
    assert_eq!(tb.trunks.len(), 8);
    assert!(tb.trunks.iter().all(|t| t.capacity == 10 * GBPS));
    assert_eq!(tb.racks.len(), 2);
    assert!(tb.racks.iter().all(|r| r.hosts.len() == 4 && r.leaf.is_some()));
    let host = tb.host(tb.host_by_name("f1", "r1h2").unwrap());
    let names: Vec<&str> = host.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["enp1", "enp2", "enp3", "enp4"], "the infranet port eno1 is not an experiment port");
    let leaf = host.leaf.unwrap();
    assert_eq!(tb.switch(leaf).name, "leaf1");
    assert!(host.ports.iter().all(|p| p.switch.as_ref().map(|s| s.0) == Some(leaf) && p.capacity == GBPS));
    assert_eq!(host.ports[0].model, xir::NicModel::ConnectX4 as i32);
    assert_eq!((host.cores, host.platform.as_str(), host.architecture.as_str()), (32, "r640", "x86_64"));
    assert!(host.metal && !host.virt && host.active);
    assert!(host.can_boot("bookworm") && !host.can_boot("kali"));
}

fn host(id: &str, roles: &[xir::Role], alloc: &[xir::AllocMode], ports: Vec<xir::Port>) -> xir::Resource {
    xir::Resource {
        id: id.into(),
        roles: roles.iter().map(|r| *r as i32).collect(),
        alloc: alloc.iter().map(|a| *a as i32).collect(),
        procs: vec![
            xir::Proc { cores: 4, ..Default::default() },
            xir::Proc { cores: 4, reserved_cores: 1, ..Default::default() },
        ],
        memory: vec![xir::Dimm { capacity: 8 * GIB, reserved_capacity: GIB, ..Default::default() }],
        ni_cs: vec![xir::Nic { ports, ..Default::default() }],
        ..Default::default()
    }
}

fn port(name: &str, roles: &[xir::LinkRole]) -> xir::Port {
    xir::Port {
        name: name.into(),
        capacity: GBPS,
        roles: roles.iter().map(|r| *r as i32).collect(),
        ..Default::default()
    }
}

fn switch(id: &str, role: xir::Role, ports: usize) -> xir::Resource {
    xir::Resource {
        id: id.into(),
        roles: vec![role as i32],
        ni_cs: vec![xir::Nic {
            ports: (0..ports).map(|i| port(&format!("swp{i}"), &[])).collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn at(element: &str, index: u32, subref: Option<u32>) -> xir::Ref {
    xir::Ref {
        element: element.into(),
        index,
        subref: subref.map(|index| xir::Subref { index }),
        ..Default::default()
    }
}

fn cable(id: &str, a: xir::Ref, b: xir::Ref) -> xir::Cable {
    let end =
        |r: xir::Ref| xir::End { connectors: vec![xir::Connector { port: Some(r), ..Default::default() }] };
    xir::Cable { id: id.into(), ends: vec![end(a), end(b)], ..Default::default() }
}

fn facility(resources: Vec<xir::Resource>, cables: Vec<xir::Cable>) -> xir::Facility {
    xir::Facility { id: "lab".into(), resources, cables, ..Default::default() }
}

#[test]
fn hosts_ports_and_cables_from_hand_written_models() {
    let tbnode = host(
        "a",
        &[xir::Role::TbNode],
        &[],
        vec![
            port("mgmt", &[xir::LinkRole::InfraLink]),
            port("x0", &[xir::LinkRole::XpLink]),
            port("x1", &[]),
        ],
    );
    let hypervisor = host("b", &[xir::Role::Hypervisor], &[], vec![port("x0", &[xir::LinkRole::XpLink])]);
    let lab = facility(
        vec![tbnode, hypervisor, switch("sw", xir::Role::XpSwitch, 4), switch("core", xir::Role::Fabric, 1)],
        vec![
            // With a subref: NIC 0, port 1. Without: port 2 counting over all NICs.
            cable("c1", at("a", 0, Some(1)), at("sw", 0, Some(0))),
            cable("c2", at("a", 2, None), at("sw", 1, None)),
            cable("c3", at("b", 0, Some(0)), at("sw", 0, Some(2))),
            cable("up", at("sw", 0, Some(3)), at("core", 0, Some(0))),
        ],
    );
    let tb = Testbed::from_facilities(&[lab]).unwrap();
    let a = tb.host(tb.host_by_name("lab", "a").unwrap());
    assert_eq!((a.cores, a.memory), (7, 7 * GIB));
    assert!(a.metal && !a.virt, "a TbNode with no alloc modes is bare metal");
    let names: Vec<&str> = a.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["x0", "x1"], "a port without roles counts, an infranet one does not");
    assert!(a.ports.iter().all(|p| p.switch.is_some()));
    assert_eq!(a.ports[1].switch.as_ref().unwrap().1, "swp1");
    let b = tb.host(tb.host_by_name("lab", "b").unwrap());
    assert!(b.virt && !b.metal);
    assert_eq!(tb.trunks.len(), 1);
    assert_eq!(tb.trunks[0].name, "up");
    assert_eq!(tb.racks.len(), 1);
}

fn error_of(lab: xir::Facility) -> String {
    match Testbed::from_facilities(&[lab]) {
        Ok(_) => panic!("the model was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_facilities_are_refused_naming_the_element() {
    let ports = || vec![port("x0", &[])];
    let e = error_of(facility(
        vec![host("a", &[xir::Role::TbNode], &[], ports()), switch("sw", xir::Role::Leaf, 1)],
        vec![cable("c1", at("a", 0, Some(0)), at("ghost", 0, Some(0)))],
    ));
    assert_eq!(
        e,
        "facility lab: cable c1: end 1 connector 0 refers to resource \"ghost\", which does not exist"
    );

    let e = error_of(facility(
        vec![host("a", &[xir::Role::TbNode], &[], ports()), switch("sw", xir::Role::Leaf, 1)],
        vec![cable("c1", at("a", 0, Some(5)), at("sw", 0, Some(0)))],
    ));
    assert_eq!(
        e,
        "facility lab: cable c1: end 0 connector 0 refers to NIC 0 port 5 of a, which has no such port"
    );

    let e = error_of(facility(
        vec![host("a", &[xir::Role::TbNode], &[], ports()), switch("sw", xir::Role::Leaf, 1)],
        vec![cable("c1", at("a", 3, None), at("sw", 0, None))],
    ));
    assert!(e.contains("refers to port 3 of a, which has only 1 ports"), "{e}");

    let e = error_of(facility(
        vec![host("a", &[xir::Role::TbNode], &[], ports()), host("a", &[xir::Role::TbNode], &[], ports())],
        vec![],
    ));
    assert_eq!(e, "facility lab: more than one resource has id \"a\"");

    let e = error_of(facility(
        vec![
            host("a", &[xir::Role::TbNode], &[], ports()),
            switch("s1", xir::Role::Leaf, 1),
            switch("s2", xir::Role::Leaf, 1),
        ],
        vec![
            cable("c1", at("a", 0, Some(0)), at("s1", 0, Some(0))),
            cable("c2", at("a", 0, Some(0)), at("s2", 0, Some(0))),
        ],
    ));
    assert_eq!(e, "facility lab: cable c2: port x0 of a is already cabled to switch s1");

    let lab = facility(vec![host("a", &[xir::Role::TbNode], &[], ports())], vec![]);
    let e = match Testbed::from_facilities(&[lab.clone(), lab]) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert_eq!(e, "facility lab: the facility is listed twice");
}

#[test]
fn hosts_in_several_facilities_keep_their_names_apart() {
    let one = generate::facility(&FacilitySpec::new("one", 1, 2));
    let two = generate::facility(&FacilitySpec::new("two", 1, 2));
    let tb = Testbed::from_facilities(&[one, two]).unwrap();
    assert_eq!(tb.hosts.len(), 4);
    let a = tb.host_by_name("one", "r0h0").unwrap();
    let b = tb.host_by_name("two", "r0h0").unwrap();
    assert_ne!(a, b);
    assert_ne!(tb.host_rack[a.0 as usize], tb.host_rack[b.0 as usize]);
}

fn request_error(net: &Net) -> String {
    match Request::from_network(&net.network) {
        Ok(_) => panic!("the model was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_experiments_are_refused_naming_the_element() {
    let mut net = Net::new();
    net.node("a");
    net.node("b");
    let id = net.connect(&["a", "b"], None);
    net.network.links[0].endpoints[1].socket.as_mut().unwrap().element = "ghost".into();
    assert_eq!(
        request_error(&net),
        format!("link {id}: endpoint refers to node \"ghost\", which does not exist")
    );

    net.network.links[0].endpoints[1].socket = None;
    assert_eq!(request_error(&net), format!("link {id}: endpoint 1 is not attached to any node"));

    net.network.links[0].endpoints.truncate(1);
    assert_eq!(request_error(&net), format!("link {id}: a link needs at least two endpoints, it has 1"));

    let mut net = Net::new();
    net.node("a");
    net.node("a");
    assert_eq!(request_error(&net), "node a: more than one node has this name");

    let mut net = Net::new();
    let a = net.metal("a");
    a.virt = Some(xir::BoolConstraint { op: xir::Operator::Eq as i32, value: true });
    assert!(request_error(&net).starts_with("node a: cannot be both bare metal and a virtual machine"));

    let mut net = Net::new();
    net.node("a");
    net.node("b");
    net.connect(&["a", "b"], None);
    let mut second = net.network.links[0].clone();
    second.id = "again".into();
    net.network.links.push(second);
    assert!(request_error(&net).contains("is already used by link"), "{}", request_error(&net));
}

#[test]
fn requests_index_nodes_links_and_profiles() {
    let mut net = Net::new();
    net.metal("a");
    net.metal("b");
    net.vm("c").proc = cores(xir::Operator::Ge, 2);
    let a = net.get("a");
    a.nic = Some(xir::NicSpec {
        ports: vec![xir::PortSpec { capacity: op_u64(xir::Operator::Ge, GBPS), ..Default::default() }],
    });
    net.connect(&["a", "b", "c"], Some(100 * MBPS));
    // `a`'s socket 0 has an empty PortSpec (as mergexp writes), `a.nic.ports[0]` is not used
    // then; drop the socket's spec so the NIC spec applies.
    net.get("a").sockets[0].port = None;
    let r = net.request();
    assert_eq!(r.nodes.len(), 3);
    assert_eq!(r.links[0].endpoints.len(), 3);
    assert_eq!(r.links[0].capacity, 100 * MBPS);
    assert_eq!(r.profiles.len(), 3, "a has a port constraint b does not");
    assert_eq!(r.profile(0).ports.len(), 1);
    assert_eq!(r.profile(1).kind, KindRequest::BareMetal);
    assert_eq!(r.profile(2).kind, KindRequest::VirtualMachine);
    assert_eq!(r.profile(2).vm_reservation(), (2, GIB, 0));
    assert_eq!(r.node_links, vec![vec![0], vec![0], vec![0]]);

    let generated = generate::experiment(&generate::ExperimentSpec::new("g", 50, 3));
    let r = Request::from_network(&generated).unwrap();
    assert!(r.profiles.len() <= 4, "bare metal with 1 to 4 interfaces and nothing else: {:?}", r.profiles);
    assert_eq!(r.links.len(), 70);
    assert!(r.node_links.iter().all(|l| !l.is_empty() && l.len() <= 4));
}

/// `tests/fixtures/mergexp-0.3.0.pb` is what mergexp 0.3.0 (the version `scripts/setup.sh`
/// installs) emits for:
///
/// ```python
/// net = Network('fixture', addressing==ipv4, routing==static)
/// a = net.node('a', metal==True, proc.cores>=16)
/// b = net.node('b', memory.capacity>=gb(32), image=='bookworm')
/// c = net.node('c', platform=='r640')
/// d = net.node('d')
/// net.connect([a, b], capacity==mbps(500))
/// net.connect([b, c, d], capacity==mbps(100))
/// net.connect([a, d])
/// ```
#[test]
fn a_model_compiled_by_mergexp_reads_and_embeds() {
    use prost::Message;
    let bytes = include_bytes!("fixtures/mergexp-0.3.0.pb");
    let network = xir::Network::decode(&bytes[..]).unwrap();
    let request = Request::from_network(&network).unwrap();
    let ids: Vec<&str> = request.links.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["a.0~b.0", "b.1~c.0~d.0", "a.1~d.1"]);
    assert_eq!(request.links[0].capacity, 500 * MBPS);
    assert_eq!(request.links[2].capacity, 0, "no capacity constraint: best effort");
    assert_eq!(request.profile(0).kind, KindRequest::BareMetal);
    assert_eq!(request.profile(1).kind, KindRequest::Either);
    assert_eq!(request.profile(1).memory.as_ref().map(|m| m.value), Some(32 * GIB));

    let tb = testbed(&FacilitySpec::new("f1", 2, 4));
    let e = embed_ok(&tb, &trellis_embed::Occupancy::new(), &request, &trellis_embed::Options::default());
    assert!(tb.host(e.nodes[0].host).cores >= 16);
    assert_eq!(tb.host(e.nodes[2].host).platform, "r640");
    assert_eq!(e.cross_rack_links, 0, "four nodes fit in one rack of four");
}
