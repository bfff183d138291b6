//! Good and broken models through the real sandbox and the real mergexp.

mod common;

use prost::Message as _;
use trellis_api::xir;
use trellis_compiler::{CompileFailure, LimitKind};

const EQ: i32 = xir::Operator::Eq as i32;
const GE: i32 = xir::Operator::Ge as i32;

fn decode(bytes: &[u8]) -> xir::Network {
    xir::Network::decode(bytes).unwrap()
}

#[tokio::test]
async fn hello_world_compiles() {
    let compiler = common::compiler();
    assert_eq!(compiler.mergexp_version(), "0.3.0");
    let out = compiler.compile(common::HELLO).await.unwrap();
    assert_eq!((out.nodes, out.links), (3, 2));
    let net = decode(&out.xir);
    assert_eq!(net.id, "hello");
    let ids: Vec<_> = net.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let a = &net.nodes[0];
    let cores = a.proc.as_ref().unwrap().cores.unwrap();
    assert_eq!((cores.op, cores.value), (GE, 2));
    let mem = a.memory.as_ref().unwrap().capacity.unwrap();
    assert_eq!((mem.op, mem.value), (GE, 4 << 30));
    let ab = &net.links[0];
    assert_eq!(ab.id, "a.0~b.0");
    assert_eq!(ab.capacity.unwrap().value, 100_000_000);
    assert_eq!(ab.latency.unwrap().value, 10_000_000, "latency is in ns");
    let ends: Vec<_> = ab.endpoints.iter().map(|e| e.socket.as_ref().unwrap().element.as_str()).collect();
    assert_eq!(ends, ["a", "b"]);
    let params = net.parameters.unwrap();
    assert_eq!(params.routing.unwrap().value, xir::Routing::StaticRouting as i32);
    assert_eq!(params.addressing.unwrap().value, xir::Addressing::IPv4Addressing as i32);
    assert!(params.experimentnetresolution);
    let t = out.timings;
    assert!(t.sandbox_start > std::time::Duration::ZERO && t.python > std::time::Duration::ZERO);
    assert!(t.total >= t.sandbox_start + t.python, "{t:?}");
    eprintln!("hello-world timings: {t:?}");
}

#[tokio::test]
async fn three_node_lan() {
    let model = "\
from mergexp import *
net = Network('lan')
nodes = [net.node(n) for n in ('x', 'y', 'z')]
lan = net.connect(nodes, capacity==gbps(1))
experiment(net)
";
    let out = common::compiler().compile(model).await.unwrap();
    assert_eq!((out.nodes, out.links), (3, 1));
    let net = decode(&out.xir);
    assert_eq!(net.links[0].id, "x.0~y.0~z.0");
    assert_eq!(net.links[0].endpoints.len(), 3);
    for node in &net.nodes {
        assert_eq!(node.sockets.len(), 1);
        // A socket's endpoint refers to the link it is attached to.
        assert_eq!(node.sockets[0].endpoint.as_ref().unwrap().element, "x.0~y.0~z.0");
    }
}

#[tokio::test]
async fn thousand_node_model() {
    let out = common::compiler().compile(&common::chain(1000)).await.unwrap();
    assert_eq!((out.nodes, out.links), (1000, 999));
    let net = decode(&out.xir);
    assert_eq!(net.nodes[999].id, "n999");
    assert_eq!(net.links[998].id, "n998.1~n999.0");
    eprintln!("1000-node XIR is {} bytes; timings {:?}", out.xir.len(), out.timings);
}

/// Every constraint and helper mergexp 0.3.0 exports (constraint.py,
/// elements.py, addr.py, enums.py, unit.py), checked in the decoded XIR.
///
/// `metal==1`, not the documented `metal==True`: mergexp builds a
/// Uint64Constraint from the value, and protobuf 7 (what pip resolves today)
/// refuses a bool there; protobuf 4.25 to 6.31 accept it.
#[tokio::test]
async fn every_constraint_kind() {
    let model = "\
from mergexp import *
net = Network('kitchen', addressing==ipv4, routing==static, emulation==click,
              experimentnetresolution==False)
net.useSRIOV()
a = net.node('a', image=='2204', metal==1, proc.cores>=4, memory.capacity>=gb(8),
             disk.capacity==gb(40), host=='node12', platform=='x86_64')
b = net.node('b', image=='bullseye', proc.cores==2, memory.capacity==mb(512))
c = net.node('c')
a.color('red'); a.size(3)
a.properties['group'] = ['servers', 'web']
a.ingress(http, 8080); b.ingress(tcp, 22)
sa = a.socket(port.model==e1000e, port.capacity==gbps(10), port.queues==4)
sb = b.socket(port.model==virtio, port.vf==True)
l1 = net.connect_sockets([sa, sb], capacity==gbps(1), latency==ms(5), loss==0.25, layer==2)
l2 = net.connect([b, c], kind==wifi_ac, link.capacity==kbps(512), latency==us(250) + ns(7))
l3 = net.connect([a, c], kind==lte_4g, latency==s(1))
l2[b].socket.addrs = ip4('10.0.0.1/24')
l2[c].socket.addrs = ip4('10.0.0.2/24')
l3.properties['note'] = ['x']
experiment(net)
";
    let out = common::compiler().compile(model).await.unwrap();
    assert_eq!((out.nodes, out.links), (3, 3));
    let net = decode(&out.xir);

    let p = net.parameters.unwrap();
    assert_eq!(p.routing.unwrap().value, xir::Routing::StaticRouting as i32);
    assert_eq!(p.addressing.unwrap().value, xir::Addressing::IPv4Addressing as i32);
    assert_eq!(p.emulation.unwrap().value, xir::Emulation::Click as i32);
    assert!(!p.experimentnetresolution);

    let [a, b, c] = &net.nodes[..] else { panic!("three nodes") };
    let image = a.image.as_ref().unwrap();
    assert_eq!((image.op, image.value.as_str()), (EQ, "2204"));
    assert_eq!(b.image.as_ref().unwrap().value, "bullseye");
    assert!(a.metal.unwrap().value);
    assert_eq!(a.proc.as_ref().unwrap().cores.unwrap().value, 4);
    let b_cores = b.proc.as_ref().unwrap().cores.unwrap();
    assert_eq!((b_cores.op, b_cores.value), (EQ, 2));
    assert_eq!(a.memory.as_ref().unwrap().capacity.unwrap().value, 8 << 30);
    assert_eq!(b.memory.as_ref().unwrap().capacity.unwrap().value, 512 << 20);
    // mergexp's singular `disks` arrives as a one-element list.
    assert_eq!(a.disks.len(), 1);
    assert_eq!(a.disks[0].capacity.unwrap().value, 40 << 30);
    assert_eq!(a.host.as_ref().unwrap().value, "node12");
    assert_eq!(a.platform.as_ref().unwrap().value, "x86_64");
    let viz = a.viz.as_ref().unwrap();
    assert_eq!((viz.color.as_str(), viz.size), ("red", 3));
    let props = &a.properties.as_ref().unwrap().keyvalues;
    assert_eq!(props["group"].values, ["servers", "web"]);
    assert_eq!(props["ingress"].values, ["http:8080"]);
    assert_eq!(b.properties.as_ref().unwrap().keyvalues["ingress"].values, ["tcp:22"]);
    assert!(c.image.is_none() && c.metal.is_none());

    let port = a.sockets[0].port.as_ref().unwrap();
    assert_eq!(port.model.unwrap().value, xir::NicModel::E1000e as i32);
    assert_eq!(port.capacity.unwrap().value, 10_000_000_000);
    assert_eq!(port.queues.unwrap().value, 4);
    assert!(port.sriov_vf.unwrap().value, "useSRIOV() applies to every socket");
    let b_port = b.sockets[0].port.as_ref().unwrap();
    assert_eq!(b_port.model.unwrap().value, xir::NicModel::Virtio as i32);
    assert_eq!(b.sockets[1].addrs, ["10.0.0.1/24"]);
    assert_eq!(c.sockets[0].addrs, ["10.0.0.2/24"]);

    let [l1, l2, l3] = &net.links[..] else { panic!("three links") };
    assert_eq!(l1.id, "a.0~b.0");
    assert_eq!(l1.capacity.unwrap().value, 1_000_000_000);
    assert_eq!(l1.latency.unwrap().value, 5_000_000);
    assert!((l1.loss.unwrap().value - 0.25).abs() < 1e-6);
    assert_eq!(l1.layer.unwrap().value, 2);
    assert_eq!(l2.kind.unwrap().value, xir::LinkKind::WifiAc as i32);
    assert_eq!(l2.capacity.unwrap().value, 512_000);
    assert_eq!(l2.latency.unwrap().value, 250_007);
    assert_eq!(l3.kind.unwrap().value, xir::LinkKind::Lte4g as i32);
    assert_eq!(l3.latency.unwrap().value, 1_000_000_000);
    assert_eq!(l3.properties.as_ref().unwrap().keyvalues["note"].values, ["x"]);
}

#[tokio::test]
async fn syntax_error_reports_the_line() {
    let model = "from mergexp import *\nnet = Network('x')\nx = = 1\nexperiment(net)\n";
    let err = common::compiler().compile(model).await.unwrap_err();
    let CompileFailure::Model { message, line, traceback } = &err else { panic!("{err:?}") };
    assert_eq!(*line, Some(3));
    assert_eq!(message, "SyntaxError: invalid syntax");
    assert!(traceback.contains("File \"model.py\", line 3"), "{traceback}");
    assert!(traceback.contains("x = = 1"), "{traceback}");
    assert_eq!(err.to_string(), "model.py line 3: SyntaxError: invalid syntax");
}

#[tokio::test]
async fn name_error_reports_the_users_line_and_trims_the_traceback() {
    let model = "\
from mergexp import *
net = Network('x')

def build():
    return net.node(nmae)

build()
experiment(net)
";
    let err = common::compiler().compile(model).await.unwrap_err();
    let CompileFailure::Model { message, line, traceback } = &err else { panic!("{err:?}") };
    assert_eq!(message, "NameError: name 'nmae' is not defined");
    assert_eq!(*line, Some(5));
    let expected = "\
Traceback (most recent call last):
  File \"model.py\", line 7, in <module>
    build()
  File \"model.py\", line 5, in build
    return net.node(nmae)
";
    assert!(traceback.starts_with(expected), "{traceback}");
    assert!(traceback.trim_end().ends_with("NameError: name 'nmae' is not defined"), "{traceback}");
    assert!(!traceback.contains("<string>") && !traceback.contains("compile.py"), "{traceback}");
}

#[tokio::test]
async fn errors_inside_mergexp_point_at_the_calling_line() {
    let model = "\
from mergexp import *
net = Network('x')
a = net.node('a')
net.connect([a, Node('ghost')])
experiment(net)
";
    let err = common::compiler().compile(model).await.unwrap_err();
    let CompileFailure::Model { message, line, traceback } = &err else { panic!("{err:?}") };
    assert_eq!(*line, Some(4));
    assert!(message.starts_with("MissingNodeErr: Cannot connect node ghost"), "{message}");
    assert!(!traceback.contains("elements.py"), "library frames are trimmed: {traceback}");
    assert!(traceback.contains("line 4"), "{traceback}");
}

#[tokio::test]
async fn no_experiment_call() {
    let model = "from mergexp import *\nnet = Network('x')\nnet.node('a')\n";
    let err = common::compiler().compile(model).await.unwrap_err();
    assert_eq!(err, CompileFailure::NoExperiment);
    // Not importing mergexp at all is the same failure.
    let err = common::compiler().compile("print('hi')\n").await.unwrap_err();
    assert_eq!(err, CompileFailure::NoExperiment);
}

#[tokio::test]
async fn sys_exit_zero_still_compiles_but_nonzero_fails() {
    let ok = format!("{}import sys\nsys.exit(0)\n", common::HELLO);
    assert_eq!(common::compiler().compile(&ok).await.unwrap().nodes, 3);
    let bad = format!("{}import sys\nsys.exit('bad input')\n", common::HELLO);
    let err = common::compiler().compile(&bad).await.unwrap_err();
    let CompileFailure::Model { message, line, .. } = &err else { panic!("{err:?}") };
    assert_eq!(message, "SystemExit: bad input");
    assert_eq!(*line, Some(8));
}

#[tokio::test]
async fn model_output_is_returned() {
    let model = format!("print('building', 3, 'nodes')\n{}", common::HELLO);
    let out = common::compiler().compile(&model).await.unwrap();
    assert_eq!(out.output, "building 3 nodes\n");
}

#[tokio::test]
async fn oversized_source_is_refused_before_running() {
    let compiler = common::compiler();
    let huge = format!("{}#{}\n", common::HELLO, "x".repeat(compiler.limits().source_bytes));
    let err = compiler.compile(&huge).await.unwrap_err();
    assert_eq!(err.limit(), Some(LimitKind::Source));
    assert_eq!(err.to_string(), "the model is larger than the 262144 byte limit");
}

#[tokio::test]
async fn sandbox_health_check() {
    let took = common::compiler().check_sandbox().await.unwrap();
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}
