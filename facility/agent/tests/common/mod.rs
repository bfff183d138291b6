//! Shared pieces of the facility tests: spec builders, commands inside nodes, ssh keys, and
//! a guard that removes everything of a materialization by name, even when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use trellis_facility::{Agent, AgentConfig, Names};
use trellis_facility_api::v1::{Endpoint, Interface, Link, Materialization, Node, State, User};

/// Builds node specs.
pub fn node(name: &str, infranet_addr: &str, interfaces: &[(&str, &str, &[&str])]) -> Node {
    Node {
        name: name.into(),
        host: "localhost".into(),
        infranet_addr: infranet_addr.into(),
        image: String::new(),
        cores: 1,
        memory_bytes: 256 << 20,
        disk_bytes: 0,
        interfaces: interfaces
            .iter()
            .map(|(name, link, addrs)| Interface {
                name: (*name).into(),
                link: (*link).into(),
                addrs: addrs.iter().map(|a| (*a).to_owned()).collect(),
            })
            .collect(),
        persistent: false,
    }
}

pub fn link(name: &str, endpoints: &[(&str, &str)], capacity_bps: u64, latency_us: u64) -> Link {
    Link {
        name: name.into(),
        endpoints: endpoints
            .iter()
            .map(|(node, iface)| Endpoint { node: (*node).into(), interface: (*iface).into() })
            .collect(),
        capacity_bps,
        latency_us,
        loss: 0.0,
        vlan: 0,
    }
}

pub fn materialization(
    mzid: &str,
    subnet: &str,
    nodes: Vec<Node>,
    links: Vec<Link>,
    users: Vec<User>,
) -> Materialization {
    Materialization {
        mzid: mzid.into(),
        project: "proj".into(),
        experiment: "exp".into(),
        realization: "real".into(),
        infranet_subnet: subnet.into(),
        nodes,
        links,
        users,
        ssh_ca_public_key: String::new(),
        static_routing: false,
    }
}

/// Kills a process with SIGKILL.
pub fn kill(pid: i32) {
    let pid = rustix::process::Pid::from_raw(pid).expect("a positive pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
}

/// Runs a host command and returns its stdout; panics with its stderr on failure.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command inside a node's container (its namespaces and its /etc).
pub fn in_node(mzid: &str, node: &str, args: &[&str]) -> std::process::Output {
    let id = Names::new(mzid).node_netns(node);
    let mut full = vec!["exec", id.as_str()];
    full.extend_from_slice(args);
    Command::new("crun").args(&full).output().expect("crun exec")
}

pub fn in_node_ok(mzid: &str, node: &str, args: &[&str]) -> String {
    let out = in_node(mzid, node, args);
    assert!(
        out.status.success(),
        "{args:?} in {node} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An ed25519 key pair in `dir`; returns (private key path, public key line).
pub fn ssh_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    sh("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path.to_str().unwrap()]);
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_owned())
}

/// Runs `command` over ssh as `user` on `addr` with `key`.
pub fn ssh(key: &Path, user: &str, addr: &str, command: &str) -> std::process::Output {
    Command::new("ssh")
        .args([
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
            &format!("{user}@{addr}"),
            command,
        ])
        .output()
        .expect("ssh")
}

pub fn test_config(state_dir: &Path) -> AgentConfig {
    let mut config = AgentConfig::new(state_dir);
    config.watchdog_interval = Duration::from_millis(300);
    config
}

/// Waits for READY and fails the test with the full status otherwise.
pub async fn ready(agent: &Agent, mzid: &str) {
    let status = agent.wait_ready(mzid, Duration::from_secs(90)).await;
    assert_eq!(status.state(), State::Ready, "{status:#?}");
}

fn entries(dir: &str, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything on the host that still carries the materialization's names. A killed
/// container's init is a child of the host's init (`crun run --detach` orphans it), which
/// reaps it on its own schedule: such zombies hold nothing and are not counted.
pub fn residue(mzid: &str, state_dir: &Path) -> Vec<String> {
    let names = Names::new(mzid);
    let prefix = names.netns_prefix();
    let mut left = Vec::new();
    left.extend(
        sh("ip", &["netns", "list"]).lines().filter(|l| l.starts_with(&prefix)).map(|l| format!("netns {l}")),
    );
    for line in sh("ip", &["-o", "link", "show"]).lines() {
        if let Some(name) = line.split(": ").nth(1)
            && name.starts_with(&names.host_link_prefix())
        {
            left.push(format!("link {name}"));
        }
    }
    left.extend(
        sh("crun", &["list", "-q"]).lines().filter(|l| l.starts_with(&prefix)).map(|l| format!("crun {l}")),
    );
    let state = state_dir.join(mzid);
    for line in std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines() {
        if line.contains(&prefix) || line.contains(state.to_str().unwrap()) {
            left.push(format!("mount {line}"));
        }
    }
    for pid in entries("/proc", "").into_iter().filter(|p| p.chars().all(|c| c.is_ascii_digit())) {
        if let Ok(cgroups) = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            && cgroups.contains(&prefix)
        {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
            if fields.first() == Some(&"Z") && fields.get(1) == Some(&"1") {
                continue;
            }
            left.push(format!("process {pid}: {stat}"));
        }
    }
    for hierarchy in entries("/sys/fs/cgroup", "") {
        for dir in entries(&format!("/sys/fs/cgroup/{hierarchy}"), &prefix) {
            left.push(format!("cgroup {hierarchy}/{dir}"));
        }
    }
    if state.exists() {
        left.push(format!("state {}", state.display()));
    }
    left
}

/// Removes everything of a materialization by name when dropped, so a failing test leaves
/// the host clean; independent of the agent's own teardown.
pub struct Cleanup {
    pub mzid: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let names = Names::new(&self.mzid);
        let prefix = names.netns_prefix();
        let quiet = |program: &str, args: &[&str]| {
            let _ = Command::new(program).args(args).output();
        };
        for id in entries("/run/crun", &prefix) {
            quiet("crun", &["delete", "--force", &id]);
        }
        for hierarchy in entries("/sys/fs/cgroup", "") {
            for dir in entries(&format!("/sys/fs/cgroup/{hierarchy}"), &prefix) {
                let path = format!("/sys/fs/cgroup/{hierarchy}/{dir}");
                let procs = std::fs::read_to_string(format!("{path}/cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|p| p.trim().parse().ok()) {
                    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
                let _ = std::fs::remove_dir(&path);
            }
        }
        for link in entries("/sys/class/net", &names.host_link_prefix()) {
            quiet("ip", &["link", "del", "dev", &link]);
        }
        for ns in entries("/run/netns", &prefix) {
            quiet("ip", &["netns", "del", &ns]);
        }
    }
}
