//! Lifecycle on real containers: the watchdog, reboots and persistent disks, adoption by a
//! new agent, converging on a changed spec, images, and the gRPC service.

mod common;

use std::time::{Duration, Instant};

use common::*;
use trellis_facility::{Agent, AgentConfig, Names};
use trellis_facility_api::v1::facility_client::FacilityClient;
use trellis_facility_api::v1::{
    DematerializeRequest, ListRequest, MaterializeRequest, RebootRequest, State, StatusRequest,
};

/// Waits until `node`'s container runs with a pid other than `old` and the node is READY.
async fn restarted(agent: &Agent, mzid: &str, node: &str, old: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = agent.node_pid(mzid, node).await
            && pid != old
            && agent.status(mzid).nodes.iter().any(|n| n.name == node && n.state() == State::Ready)
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "{node} did not come back: {:#?}", agent.status(mzid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn file_in(mzid: &str, node: &str, path: &str) -> bool {
    in_node(mzid, node, &["test", "-e", path]).status.success()
}

fn count_with_prefix(dir: &str, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with(prefix)).count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_reboot_persistent_disks_loss_and_limits() {
    const MZID: &str = "life.exp.proj";
    let _cleanup = Cleanup { mzid: MZID.into() };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = Agent::open_with(test_config(&state)).await.unwrap();
    let mut persistent = node("p", "10.214.0.11", &[("eth1", "vp", &["10.60.0.2/24"])]);
    persistent.persistent = true;
    let mut vp = link("vp", &[("v", "eth1"), ("p", "eth1")], 0, 0);
    vp.loss = 0.25;
    let spec = materialization(
        MZID,
        "10.214.0.0/24",
        vec![node("v", "10.214.0.10", &[("eth1", "vp", &["10.60.0.1/24"])]), persistent],
        vec![vp],
        vec![],
    );
    agent.materialize(spec).await.unwrap();
    ready(&agent, MZID).await;

    // cgroup limits from cores and memory (1 core, 256 MiB).
    let cgroup = Names::new(MZID).cgroup_path("v");
    let limit =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory{cgroup}/memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (256u64 << 20).to_string());
    let quota = std::fs::read_to_string(format!("/sys/fs/cgroup/cpu{cgroup}/cpu.cfs_quota_us")).unwrap();
    assert_eq!(quota.trim(), "100000");

    // Loss 0.25 each way: a ping and its reply both survive with probability 0.75² ≈ 0.56.
    let out = in_node(MZID, "v", &["ping", "-n", "-q", "-c", "300", "-i", "0.01", "-W", "1", "p"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lost: f64 = text
        .split(", ")
        .find_map(|part| part.strip_suffix("% packet loss"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no loss figure in {text}"));
    eprintln!("round-trip loss at 25 % per direction: {lost} %");
    assert!((30.0..=58.0).contains(&lost), "round-trip loss {lost} %, expected about 44 %");

    for node in ["v", "p"] {
        in_node_ok(MZID, node, &["sh", "-c", "echo kept > /root/marker"]);
    }

    // The watchdog brings a killed volatile node back, fresh.
    let old = agent.node_pid(MZID, "v").await.unwrap();
    kill(old);
    restarted(&agent, MZID, "v", old).await;
    assert!(!file_in(MZID, "v", "/root/marker"), "a volatile node came back with its old disk");

    // Rebooting keeps a persistent disk, and renews a volatile one.
    let old_p = agent.node_pid(MZID, "p").await.unwrap();
    agent.reboot(MZID, &["p".into()]).await.unwrap();
    restarted(&agent, MZID, "p", old_p).await;
    assert!(file_in(MZID, "p", "/root/marker"), "the persistent disk lost its file");
    assert!(agent.reboot(MZID, &["nosuchnode".into()]).await.is_err());

    // A persistent disk that vanishes is reported, not recreated empty.
    let pid = agent.node_pid(MZID, "p").await.unwrap();
    std::fs::remove_dir_all(state.join(MZID).join("disks/p")).unwrap();
    kill(pid);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = agent.status(MZID);
        let p = status.nodes.iter().find(|n| n.name == "p").unwrap();
        if p.state() == State::Failed {
            assert!(p.message.contains("persistent disk"), "{}", p.message);
            assert_eq!(status.state(), State::Failed, "the worst node decides the overall state");
            break;
        }
        assert!(Instant::now() < deadline, "p was not reported FAILED: {status:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!state.join(MZID).join("disks/p").exists(), "the lost disk was recreated");

    agent.dematerialize(MZID).await.unwrap();
    assert_eq!(residue(MZID, &state), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_agent_adopts_and_specs_converge() {
    const MZID: &str = "adopt.exp.proj";
    let _cleanup = Cleanup { mzid: MZID.into() };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let names = Names::new(MZID);
    let chain = |with_d: bool| {
        let mut nodes = vec![
            node("a", "10.215.0.10", &[("eth1", "ab", &["10.70.1.1/24"])]),
            node("b", "10.215.0.11", &[("eth1", "ab", &["10.70.1.2/24"]), ("eth2", "bc", &["10.70.2.1/24"])]),
            node("c", "10.215.0.12", &[("eth1", "bc", &["10.70.2.2/24"])]),
        ];
        let mut links = vec![
            link("ab", &[("a", "eth1"), ("b", "eth1")], 0, 5_000),
            link("bc", &[("b", "eth2"), ("c", "eth1")], 0, 0),
        ];
        if with_d {
            nodes[2].interfaces.push(trellis_facility_api::v1::Interface {
                name: "eth2".into(),
                link: "cd".into(),
                addrs: vec!["10.70.3.1/24".into()],
            });
            nodes.push(node("d", "10.215.0.13", &[("eth1", "cd", &["10.70.3.2/24"])]));
            links.push(link("cd", &[("c", "eth2"), ("d", "eth1")], 0, 0));
        }
        materialization(MZID, "10.215.0.0/24", nodes, links, vec![])
    };
    let pids = async |agent: &Agent, nodes: &[&str]| {
        let mut pids = Vec::new();
        for n in nodes {
            pids.push(agent.node_pid(MZID, n).await.unwrap_or_else(|| panic!("{n} has no container")));
        }
        pids
    };

    let agent = Agent::open_with(test_config(&state)).await.unwrap();
    agent.materialize(chain(false)).await.unwrap();
    ready(&agent, MZID).await;
    let before = pids(&agent, &["a", "b", "c"]).await;
    let netns = count_with_prefix("/run/netns", &names.netns_prefix());
    assert_eq!(netns, 4, "three nodes and the switch");

    // Materializing the same spec again changes nothing.
    agent.materialize(chain(false)).await.unwrap();
    assert_eq!(pids(&agent, &["a", "b", "c"]).await, before);

    // A new agent on the same state directory adopts everything.
    drop(agent);
    let agent = Agent::open_with(test_config(&state)).await.unwrap();
    assert_eq!(agent.list(), vec![MZID.to_owned()]);
    assert_eq!(pids(&agent, &["a", "b", "c"]).await, before);
    assert_eq!(count_with_prefix("/run/netns", &names.netns_prefix()), netns);
    assert_eq!(count_with_prefix("/run/crun", &names.netns_prefix()), 3);
    ready(&agent, MZID).await;
    // Its delay line took over: 5 ms each way on a—b.
    let out = in_node_ok(MZID, "a", &["ping", "-n", "-c", "5", "-i", "0.1", "b"]);
    let fast = out
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split(' ').next()?.parse::<f64>().ok());
    assert!(fast.clone().count() >= 4 && fast.clone().all(|ms| ms >= 9.0), "a→b without latency: {out}");

    // A node added to the spec starts; the others keep running.
    agent.materialize(chain(true)).await.unwrap();
    ready(&agent, MZID).await;
    assert_eq!(pids(&agent, &["a", "b"]).await, before[..2]);
    in_node_ok(MZID, "d", &["ping", "-n", "-c", "1", "-W", "3", "c"]);
    // ... and removed again, it leaves nothing.
    agent.materialize(chain(false)).await.unwrap();
    assert_eq!(count_with_prefix("/run/netns", &names.netns_prefix()), netns);
    assert!(!state.join(MZID).join("nodes/d").exists());
    assert_eq!(pids(&agent, &["a", "b"]).await, before[..2]);

    agent.dematerialize(MZID).await.unwrap();
    assert_eq!(residue(MZID, &state), Vec::<String>::new());
    agent.dematerialize(MZID).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_nodes_run_on_the_image() {
    const MZID: &str = "image.exp.proj";
    let _cleanup = Cleanup { mzid: MZID.into() };
    let dir = tempfile::tempdir().unwrap();
    // A stand-in image: the host's /usr through a symlink, its own /etc with a marker.
    let image = dir.path().join("images/tiny");
    std::fs::create_dir_all(image.join("etc")).unwrap();
    std::os::unix::fs::symlink("/usr", image.join("usr")).unwrap();
    sh("cp", &["-a", "/etc/alternatives", "/etc/ld.so.cache", image.join("etc").to_str().unwrap()]);
    std::fs::write(image.join("etc/trellis-image"), "tiny\n").unwrap();

    let state = dir.path().join("state");
    let mut config: AgentConfig = test_config(&state);
    config.images_dir = dir.path().join("images");
    let agent = Agent::open_with(config).await.unwrap();
    let mut on_image = node("i", "10.216.0.10", &[]);
    on_image.image = "tiny".into();
    let mut spec = materialization(MZID, "10.216.0.0/24", vec![on_image], vec![], vec![]);
    agent.materialize(spec.clone()).await.unwrap();
    ready(&agent, MZID).await;
    assert_eq!(in_node_ok(MZID, "i", &["cat", "/etc/trellis-image"]), "tiny\n");

    spec.nodes[0].image = "missing".into();
    let err = agent.materialize(spec).await.unwrap_err();
    assert!(err.to_string().contains("no image \"missing\""), "{err}");

    agent.dematerialize(MZID).await.unwrap();
    assert_eq!(residue(MZID, &state), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_service_drives_the_agent() {
    const MZID: &str = "grpc.exp.proj";
    let _cleanup = Cleanup { mzid: MZID.into() };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = Agent::open_with(test_config(&state)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(trellis_facility::service(agent.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut client = FacilityClient::connect(format!("http://{addr}")).await.unwrap();

    let spec = materialization(MZID, "10.217.0.0/24", vec![node("solo", "10.217.0.10", &[])], vec![], vec![]);
    client.materialize(MaterializeRequest { materialization: Some(spec.clone()) }).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = client.status(StatusRequest { mzid: MZID.into() }).await.unwrap().into_inner();
        if status.state() == State::Ready {
            assert_eq!(status.nodes.len(), 1);
            break;
        }
        assert!(Instant::now() < deadline, "{status:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.list(ListRequest {}).await.unwrap().into_inner().mzids, vec![MZID.to_owned()]);

    let err =
        client.reboot(RebootRequest { mzid: MZID.into(), nodes: vec!["ghost".into()] }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let mut bad = spec.clone();
    bad.nodes[0].infranet_addr = "10.99.0.1".into();
    let err = client.materialize(MaterializeRequest { materialization: Some(bad) }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("infranet_addr"), "{}", err.message());

    client.dematerialize(DematerializeRequest { mzid: MZID.into() }).await.unwrap();
    let status = client.status(StatusRequest { mzid: MZID.into() }).await.unwrap().into_inner();
    assert_eq!(status.state(), State::Unspecified);
    assert_eq!(residue(MZID, &state), Vec::<String>::new());
    server.abort();
}
