//! Hello world on real containers: a —(100 Mb/s, 10 ms)— b —(5 ms)— c.
//! Emulation accuracy (ping RTT by name, iperf3 throughput), ssh from the host with a key
//! and with a CA-signed certificate, ssh between nodes, and a clean teardown.
//!
//! One test per file: measurements run alone (cargo runs test binaries one after another).

mod common;

use common::*;
use trellis_facility::Agent;
use trellis_facility_api::v1::User;

const MZID: &str = "hello.exp.proj";

/// The median RTT in ms of `count` pings from `from` to the name `to`.
fn median_rtt(from: &str, to: &str, count: u32) -> f64 {
    let out = in_node_ok(MZID, from, &["ping", "-n", "-c", &count.to_string(), "-i", "0.05", to]);
    let mut times: Vec<f64> = out
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(times.len() as u32 >= count * 9 / 10, "too few replies: {out}");
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// iperf3 throughput `from` → `to` in Mb/s, as the receiver counted it.
fn iperf_mbps(from: &str, to: &str) -> f64 {
    in_node_ok(MZID, to, &["iperf3", "--server", "--daemon", "--one-off"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = in_node_ok(MZID, from, &["iperf3", "--client", to, "--time", "4", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bps = report["end"]["sum_received"]["bits_per_second"].as_f64().unwrap();
    bps / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_world_emulates_links_and_serves_ssh() {
    let _cleanup = Cleanup { mzid: MZID.into() };
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = ssh_key(dir.path(), "alice");
    let (ca, _) = ssh_key(dir.path(), "ca");
    let ca_public = std::fs::read_to_string(ca.with_extension("pub")).unwrap();
    let (cert_key, _) = ssh_key(dir.path(), "certified");
    sh(
        "ssh-keygen",
        &[
            "-q",
            "-s",
            ca.to_str().unwrap(),
            "-I",
            "alice-cert",
            "-n",
            "alice",
            cert_key.with_extension("pub").to_str().unwrap(),
        ],
    );

    let state = dir.path().join("state");
    let agent = Agent::open_with(test_config(&state)).await.unwrap();
    let mut spec = materialization(
        MZID,
        "10.211.0.0/24",
        vec![
            node("a", "10.211.0.10", &[("eth1", "ab", &["10.0.1.1/24"])]),
            node("b", "10.211.0.11", &[("eth1", "ab", &["10.0.1.2/24"]), ("eth2", "bc", &["10.0.2.1/24"])]),
            node("c", "10.211.0.12", &[("eth1", "bc", &["10.0.2.2/24"])]),
        ],
        vec![
            link("ab", &[("a", "eth1"), ("b", "eth1")], 100_000_000, 10_000),
            link("bc", &[("b", "eth2"), ("c", "eth1")], 0, 5_000),
        ],
        vec![User { name: "alice".into(), uid: 1000, gid: 1000, authorized_keys: vec![public] }],
    );
    spec.ssh_ca_public_key = ca_public.trim().to_owned();
    agent.materialize(spec).await.unwrap();
    ready(&agent, MZID).await;

    // Latency: 10 ms each way on a—b, so ping by name gives ~20 ms; 5 ms on b—c gives ~10 ms.
    // netem never delivers early, so the floor is tight; a loaded host only adds scheduling
    // delay, so the ceiling allows +25 % (a delay applied on one side only, or twice, still
    // falls outside).
    let ab = median_rtt("a", "b", 40);
    eprintln!("a→b median RTT {ab} ms (10 ms each way)");
    assert!((19.0..=25.0).contains(&ab), "a→b median RTT {ab} ms, want 20 ms (-5 %, +25 %)");
    let bc = median_rtt("c", "b", 40);
    eprintln!("c→b median RTT {bc} ms (5 ms each way)");
    assert!((9.5..=12.5).contains(&bc), "c→b median RTT {bc} ms, want 10 ms (-5 %, +25 %)");

    // Capacity: 100 Mb/s. More attempts only when a run came out slow (load), never to
    // excuse one that was too fast.
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(iperf_mbps("a", "b"));
        assert!(runs.iter().all(|&r| r <= 110.0), "faster than the link: {runs:?} Mb/s");
        if runs.iter().any(|&r| r >= 90.0) {
            break;
        }
    }
    eprintln!("iperf3 a→b at 100 Mb/s: {runs:?} Mb/s");
    assert!(runs.iter().any(|&r| (90.0..=110.0).contains(&r)), "iperf3 a→b {runs:?} Mb/s, want 100 ± 10 %");

    // ssh from the host over the infranet, with the key and with a CA certificate.
    let out = ssh(&key, "alice", "10.211.0.10", "hostname; id -u; id -g");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\n1000\n1000\n");
    let out = ssh(&cert_key, "alice", "10.211.0.12", "hostname");
    assert!(out.status.success(), "certificate login: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "c\n");
    let (stranger, _) = ssh_key(dir.path(), "stranger");
    assert!(!ssh(&stranger, "alice", "10.211.0.10", "true").status.success(), "an unknown key got in");

    // Node to node: alice's key copied into a, then ssh a → b by name.
    let copy = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ssh -i {0} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR \
             alice@10.211.0.10 'umask 077; cat > .ssh/id_ed25519' < {0}",
            key.display()
        ))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{}", String::from_utf8_lossy(&copy.stderr));
    let out = ssh(
        &key,
        "alice",
        "10.211.0.10",
        "ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR b hostname",
    );
    assert!(out.status.success(), "a → b: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b\n");

    // Names: <node>.infra.<mzid> is the infranet address.
    let hosts = in_node_ok(MZID, "a", &["getent", "hosts", "c.infra.hello.exp.proj"]);
    assert!(hosts.starts_with("10.211.0.12"), "{hosts}");

    agent.dematerialize(MZID).await.unwrap();
    assert_eq!(residue(MZID, &state), Vec::<String>::new());
    assert!(agent.list().is_empty());
}
