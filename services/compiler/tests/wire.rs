//! Wire compatibility of mergexp 0.3.0's XIR with Trellis' `xir` package:
//! the descriptors compared field by field (tools/check_xir_wire.py), and a
//! real compiled model decoded by prost, re-encoded and compared by protobuf
//! in Python.

mod common;

use std::process::Command;

use prost::Message as _;
use trellis_api::xir;

fn python() -> std::path::PathBuf {
    common::config(common::test_limits(), "trellis-compiler-test").python
}

#[test]
fn descriptors_are_wire_compatible() {
    let dir = tempfile::tempdir().unwrap();
    let fds = dir.path().join("trellis.bin");
    std::fs::write(&fds, trellis_api::FILE_DESCRIPTOR_SET).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/check_xir_wire.py");
    let out = Command::new(python()).arg(script).arg(&fds).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // The two known, harmless differences; any new finding fails here.
    let findings: Vec<_> =
        stdout.lines().filter(|l| !l.starts_with("note:") && !l.starts_with("checked ")).collect();
    assert_eq!(
        findings,
        [
            "ONE-WAY: .xir.Node.disks (#6): singular in mergexp, repeated in Trellis (decodes as a list of one; \
             Trellis must not emit more than one for mergexp)",
            "LOSSY: .xir.DiskSpec.disks (#4): missing in Trellis, so prost skips it as an unknown field",
            "0 incompatible, 1 lossy, 1 one-way",
        ],
        "{stdout}"
    );
}

#[tokio::test]
async fn prost_round_trip_is_lossless_for_what_mergexp_emits() {
    let model = "\
from mergexp import *
net = Network('rt', addressing==ipv4, routing==static, emulation==netem)
a = net.node('a', image=='2204', metal==1, proc.cores>=4, memory.capacity>=gb(8), disk.capacity==gb(40),
             host=='h1', platform=='x86_64')
b = net.node('b')
a.color('blue'); a.properties['group'] = ['g']; a.ingress(https, 443)
s = a.socket(port.model==e1000, port.capacity==gbps(1), port.queues==2, port.vf==True)
l = net.connect_sockets([s, b.socket()], capacity==mbps(100), latency==ms(10), loss==0.5, layer==3)
l[a].socket.addrs = ip4('10.1.0.1/24')
net.connect([a, b], kind==lte_4g)
experiment(net)
";
    let compiled = common::compiler().compile(model).await.unwrap();
    let reencoded = xir::Network::decode(compiled.xir.as_slice()).unwrap().encode_to_vec();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orig.bin"), &compiled.xir).unwrap();
    std::fs::write(dir.path().join("prost.bin"), &reencoded).unwrap();
    let check = "import sys\nfrom mergexp.pb.core_pb2 import Network\n\
        a = Network.FromString(open(sys.argv[1], 'rb').read())\n\
        b = Network.FromString(open(sys.argv[2], 'rb').read())\n\
        assert a == b, (a, b)\nprint(len(a.nodes), len(a.links), a.nodes[0].disks.capacity.value)\n";
    let out = Command::new(python())
        .args(["-c", check])
        .arg(dir.path().join("orig.bin"))
        .arg(dir.path().join("prost.bin"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("2 2 {}", 40u64 << 30));
}
