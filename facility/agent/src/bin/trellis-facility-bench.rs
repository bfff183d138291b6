//! Benchmark of the container facility on this machine: time from Materialize to every node
//! READY, teardown time, and memory per node, for LANs and chains of several sizes.
//!
//! Usage: `trellis-facility-bench [--nodes 10,50] [--topology lan,chain] [--state-dir DIR]`
//! (as root; it creates and removes real namespaces and containers).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use trellis_facility::{Agent, AgentConfig, Names};
use trellis_facility_api::v1::{Endpoint, Interface, Link, Materialization, Node, State};

struct Options {
    sizes: Vec<usize>,
    topologies: Vec<String>,
    state_dir: PathBuf,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        sizes: vec![10, 50],
        topologies: vec!["lan".into(), "chain".into()],
        state_dir: std::env::temp_dir().join("trellis-facility-bench"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--nodes" => {
                options.sizes = value()?
                    .split(',')
                    .map(|n| n.parse().map_err(|_| format!("not a node count: {n}")))
                    .collect::<Result<_, _>>()?;
            }
            "--topology" => options.topologies = value()?.split(',').map(str::to_owned).collect(),
            "--state-dir" => options.state_dir = PathBuf::from(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if options.sizes.iter().any(|&n| n == 0 || n > 250) {
        return Err("node counts must be 1..=250".into());
    }
    Ok(options)
}

fn iface(name: &str, link: &str, addr: String) -> Interface {
    Interface { name: name.into(), link: link.into(), addrs: vec![addr] }
}

/// `n` nodes on one LAN (100 Mb/s, 1 ms), or a chain of point-to-point links with static
/// routing.
fn spec(mzid: &str, n: usize, topology: &str) -> Materialization {
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| Node {
            name: format!("n{i}"),
            host: "localhost".into(),
            infranet_addr: format!("10.218.{}.{}", 1 + i / 200, 10 + i % 200),
            cores: 1,
            memory_bytes: 256 << 20,
            ..Default::default()
        })
        .collect();
    let mut links = Vec::new();
    if topology == "lan" {
        let mut endpoints = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            node.interfaces.push(iface("eth1", "lan", format!("10.80.{}.{}/16", i / 200, 1 + i % 200)));
            endpoints.push(Endpoint { node: node.name.clone(), interface: "eth1".into() });
        }
        links.push(Link {
            name: "lan".into(),
            endpoints,
            capacity_bps: 100_000_000,
            latency_us: 1_000,
            ..Default::default()
        });
    } else {
        for i in 0..n.saturating_sub(1) {
            let name = format!("l{i}");
            nodes[i].interfaces.push(iface("eth2", &name, format!("10.81.{i}.1/24")));
            nodes[i + 1].interfaces.push(iface("eth1", &name, format!("10.81.{i}.2/24")));
            links.push(Link {
                name,
                endpoints: vec![
                    Endpoint { node: format!("n{i}"), interface: "eth2".into() },
                    Endpoint { node: format!("n{}", i + 1), interface: "eth1".into() },
                ],
                capacity_bps: 100_000_000,
                latency_us: 1_000,
                ..Default::default()
            });
        }
    }
    Materialization {
        mzid: mzid.into(),
        infranet_subnet: "10.218.0.0/16".into(),
        nodes,
        links,
        static_routing: topology == "chain",
        ..Default::default()
    }
}

/// Sum of the resident memory of the processes in a node's cgroup, in KiB.
fn node_rss_kib(cgroup: &str) -> u64 {
    let procs = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup"]
        .iter()
        .find_map(|root| std::fs::read_to_string(format!("{root}{cgroup}/cgroup.procs")).ok())
        .unwrap_or_default();
    procs
        .lines()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

fn own_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

struct Row {
    topology: String,
    nodes: usize,
    materialize: Duration,
    ready: Duration,
    teardown: Duration,
    rss_per_node_kib: u64,
    agent_rss_kib: u64,
}

async fn run(agent: &Agent, state_dir: &Path, topology: &str, n: usize) -> Result<Row, String> {
    let mzid = format!("bench{n}{topology}.bench.trellis");
    let _ = agent.dematerialize(&mzid).await;
    let spec = spec(&mzid, n, topology);
    let names: Vec<String> = spec.nodes.iter().map(|n| n.name.clone()).collect();
    let start = Instant::now();
    agent.materialize(spec).await.map_err(|e| e.to_string())?;
    let materialize = start.elapsed();
    let status = agent.wait_ready(&mzid, Duration::from_secs(300)).await;
    let ready = start.elapsed();
    if status.state() != State::Ready {
        let _ = agent.dematerialize(&mzid).await;
        return Err(format!("{mzid} did not become ready: {status:?}"));
    }
    let layout = Names::new(&mzid);
    let rss: u64 = names.iter().map(|node| node_rss_kib(&layout.cgroup_path(node))).sum();
    let agent_rss_kib = own_rss_kib();
    let start = Instant::now();
    agent.dematerialize(&mzid).await.map_err(|e| e.to_string())?;
    let teardown = start.elapsed();
    if state_dir.join(&mzid).exists() {
        return Err(format!("{mzid}: state left behind"));
    }
    Ok(Row {
        topology: topology.into(),
        nodes: n,
        materialize,
        ready,
        teardown,
        rss_per_node_kib: rss / n as u64,
        agent_rss_kib,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("trellis-facility-bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut config = AgentConfig::new(&options.state_dir);
    config.ready_timeout = Duration::from_secs(240);
    let agent = match Agent::open_with(config).await {
        Ok(agent) => agent,
        Err(e) => {
            eprintln!("trellis-facility-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("| topology | nodes | Materialize returns | all READY | teardown | RSS per node | agent RSS |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut failed = false;
    for topology in &options.topologies {
        for &n in &options.sizes {
            match run(&agent, &options.state_dir, topology, n).await {
                Ok(r) => println!(
                    "| {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.1} MiB | {:.1} MiB |",
                    r.topology,
                    r.nodes,
                    r.materialize.as_secs_f64(),
                    r.ready.as_secs_f64(),
                    r.teardown.as_secs_f64(),
                    r.rss_per_node_kib as f64 / 1024.0,
                    r.agent_rss_kib as f64 / 1024.0
                ),
                Err(e) => {
                    eprintln!("{topology} × {n}: {e}");
                    failed = true;
                }
            }
        }
    }
    if failed { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS }
}
