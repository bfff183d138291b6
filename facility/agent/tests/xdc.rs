//! XDCs on the facility host: attaching a network namespace (standing in for an XDC) to a
//! materialization's infranet, reaching the nodes from it by address and by name (ping, the
//! sshd banner, ssh), idempotence, moving off an address a node takes, adoption by a new
//! agent, forgetting vanished namespaces, detaching, and teardown of a still-attached XDC.

mod common;

use std::process::{Command, Output};

use common::*;
use trellis_facility::{Agent, Names};
use trellis_facility_api::v1::facility_client::FacilityClient;
use trellis_facility_api::v1::{AttachXdcRequest, AttachXdcResponse, DetachXdcRequest, User};

const MZID: &str = "xdc.exp.proj";

/// A network namespace this test made (unique name), deleted with its `/etc/netns` files.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("trxt-{}-{tag}", std::process::id());
        sh("ip", &["netns", "add", &name]);
        sh("ip", &["-n", &name, "link", "set", "dev", "lo", "up"]);
        Netns(name)
    }

    /// Runs a command inside the namespace (with `/etc/hosts` from `/etc/netns/<name>/`).
    fn run(&self, args: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.0]).args(args).output().unwrap()
    }

    fn pings(&self, address: &str) -> bool {
        self.run(&["ping", "-n", "-c", "1", "-W", "5", address]).status.success()
    }

    /// Gives the namespace the names an attachment answered with, as an XDC's resolver would.
    fn use_hosts(&self, reply: &AttachXdcResponse) {
        let dir = format!("/etc/netns/{}", self.0);
        std::fs::create_dir_all(&dir).unwrap();
        let mut hosts = String::from("127.0.0.1\tlocalhost\n");
        for entry in &reply.hosts {
            hosts.push_str(&format!("{}\t{}\n", entry.address, entry.name));
        }
        std::fs::write(format!("{dir}/hosts"), hosts).unwrap();
    }

    fn links(&self) -> String {
        sh("ip", &["-n", &self.0, "-o", "link", "show"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.0));
    }
}

fn attach_request(xdc: &str, netns: &str) -> AttachXdcRequest {
    AttachXdcRequest { mzid: MZID.into(), xdc: xdc.into(), netns: netns.into() }
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// The SSH banner's first bytes from `address:22`, over bash's /dev/tcp inside `ns`.
fn banner(ns: &Netns, address: &str) -> String {
    let out = ns.run(&["bash", "-c", &format!("exec 3<>/dev/tcp/{address}/22 && head -c 4 <&3")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn spec(public: &str, with_c: bool) -> trellis_facility_api::v1::Materialization {
    let mut nodes = vec![
        node("a", "10.219.0.10", &[("eth1", "ab", &["10.80.0.1/24"])]),
        node("b", "10.219.0.11", &[("eth1", "ab", &["10.80.0.2/24"])]),
    ];
    if with_c {
        // Takes the address the first XDC was given.
        nodes.push(node("c", "10.219.0.254", &[]));
    }
    materialization(
        MZID,
        "10.219.0.0/24",
        nodes,
        vec![link("ab", &[("a", "eth1"), ("b", "eth1")], 0, 0)],
        vec![User { name: "alice".into(), uid: 1000, gid: 1000, authorized_keys: vec![public.to_owned()] }],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_xdc_reaches_the_nodes_by_name() {
    let _cleanup = Cleanup { mzid: MZID.into() };
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = ssh_key(dir.path(), "alice");
    let state = dir.path().join("state");
    let names = Names::new(MZID);
    let veth = names.xdc_veth("x0-proj");
    let iface = names.xdc_interface();
    let xdc = Netns::new("x0");

    let agent = Agent::open_with(test_config(&state)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(trellis_facility::service(agent.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut client = FacilityClient::connect(format!("http://{addr}")).await.unwrap();

    // Nothing to attach to yet.
    let err = client.attach_xdc(attach_request("x0-proj", &xdc.0)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

    agent.materialize(spec(&public, false)).await.unwrap();
    ready(&agent, MZID).await;

    // A namespace that does not exist is named in the refusal.
    let err = client.attach_xdc(attach_request("x0-proj", "trxt-no-such-namespace")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("trxt-no-such-namespace"), "{}", err.message());
    assert!(!link_exists(&veth));

    let reply = client.attach_xdc(attach_request("x0-proj", &xdc.0)).await.unwrap().into_inner();
    assert_eq!((reply.address.as_str(), reply.prefix_len), ("10.219.0.254", 24));
    assert_eq!(reply.interface, iface);
    assert_eq!(reply.search, ["infra.xdc.exp.proj"]);
    let hosts: Vec<(&str, &str)> =
        reply.hosts.iter().map(|h| (h.name.as_str(), h.address.as_str())).collect();
    assert_eq!(
        hosts,
        [
            ("a", "10.219.0.10"),
            ("a.infra.xdc.exp.proj", "10.219.0.10"),
            ("b", "10.219.0.11"),
            ("b.infra.xdc.exp.proj", "10.219.0.11"),
        ]
    );
    // Again: the same answer, the same cable.
    let again = client.attach_xdc(attach_request("x0-proj", &xdc.0)).await.unwrap().into_inner();
    assert_eq!(again, reply);
    let master = std::fs::read_link(format!("/sys/class/net/{veth}/master")).unwrap();
    assert_eq!(master.file_name().unwrap().to_str(), Some(names.infra_bridge().as_str()));
    // Only the connected route: the XDC's own default route (none here) is left alone.
    let routes = sh("ip", &["-n", &xdc.0, "route", "show"]);
    assert_eq!(routes.lines().count(), 1, "{routes}");
    assert!(routes.starts_with("10.219.0.0/24 dev ") && routes.contains(&iface), "{routes}");

    // Reaching the nodes: ping, the sshd banner, and ssh by name.
    assert!(xdc.pings("10.219.0.10"));
    assert_eq!(banner(&xdc, "10.219.0.11"), "SSH-");
    xdc.use_hosts(&reply);
    let ssh_in_xdc = |host: &str| {
        xdc.run(&[
            "ssh",
            "-i",
            key.to_str().unwrap(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            &format!("alice@{host}"),
            "hostname",
        ])
    };
    let out = ssh_in_xdc("a");
    assert!(out.status.success(), "ssh a: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\n");
    let out = ssh_in_xdc("b.infra.xdc.exp.proj");
    assert!(out.status.success(), "ssh b.infra…: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b\n");

    // A second XDC gets the next address down; one namespace cannot be two XDCs.
    let other = Netns::new("x1");
    let second = client.attach_xdc(attach_request("x1-proj", &other.0)).await.unwrap().into_inner();
    assert_eq!(second.address, "10.219.0.253");
    assert!(other.pings("10.219.0.11"));
    let err = client.attach_xdc(attach_request("x2-proj", &other.0)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    // Detaching from a materialization this agent does not run succeeds (nothing attached).
    let gone =
        DetachXdcRequest { mzid: "gone.exp.proj".into(), xdc: "x1-proj".into(), netns: other.0.clone() };
    client.detach_xdc(gone).await.unwrap();

    // A new spec gives node c the first XDC's address: the XDC moves down, c is reachable.
    // The second XDC's namespace vanished meanwhile: its attachment is forgotten.
    drop(other);
    agent.materialize(spec(&public, true)).await.unwrap();
    ready(&agent, MZID).await;
    assert_eq!(agent.xdc_attachments(MZID), [("x0-proj".to_owned(), "10.219.0.253".parse().unwrap())]);
    assert!(!link_exists(&names.xdc_veth("x1-proj")));
    let moved = client.attach_xdc(attach_request("x0-proj", &xdc.0)).await.unwrap().into_inner();
    assert_eq!(moved.address, "10.219.0.253");
    let addrs = sh("ip", &["-n", &xdc.0, "-o", "addr", "show", "dev", &iface]);
    assert!(addrs.contains("10.219.0.253/24") && !addrs.contains("10.219.0.254"), "{addrs}");
    assert!(xdc.pings("10.219.0.254"), "node c");
    assert!(xdc.pings("10.219.0.10"));

    // A new agent on the same state directory keeps the attachment as it is.
    server.abort();
    let _ = server.await;
    drop(client);
    drop(agent);
    let agent = Agent::open_with(test_config(&state)).await.unwrap();
    ready(&agent, MZID).await;
    assert_eq!(agent.xdc_attachments(MZID), [("x0-proj".to_owned(), "10.219.0.253".parse().unwrap())]);
    assert!(xdc.pings("10.219.0.11"));

    // Detaching pulls the cable; again is fine.
    agent.detach_xdc(MZID, "x0-proj", &xdc.0).await.unwrap();
    assert!(!link_exists(&veth));
    assert!(!xdc.links().contains(&iface), "{}", xdc.links());
    assert!(!xdc.pings("10.219.0.10"), "reached a node after detaching");
    agent.detach_xdc(MZID, "x0-proj", &xdc.0).await.unwrap();
    assert!(agent.xdc_attachments(MZID).is_empty());

    // Re-attached, it gets the highest free address again; teardown removes the cable.
    let reply = agent.attach_xdc(MZID, "x0-proj", &xdc.0).await.unwrap();
    assert_eq!(reply.address, "10.219.0.253");
    assert!(xdc.pings("10.219.0.10"));
    agent.dematerialize(MZID).await.unwrap();
    assert!(!link_exists(&veth));
    assert!(!xdc.links().contains(&iface), "{}", xdc.links());
    assert_eq!(residue(MZID, &state), Vec::<String>::new());
    // Detaching from a materialization that is gone succeeds.
    agent.detach_xdc(MZID, "x0-proj", &xdc.0).await.unwrap();
}
