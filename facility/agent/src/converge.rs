//! Converging a materialization on its plan: keep what matches, rebuild what changed,
//! remove what left, start what is not running.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use prost::Message;
use trellis_facility_api::v1::State;
use trellis_types::Error;

use crate::agent::{Agent, Mz, Runtime, bundle_dir, disk_dir};
use crate::cmd;
use crate::container::{self, Running};
use crate::delay::DelayLine;
use crate::naming::Names;
use crate::network;
use crate::plan::Plan;
use crate::rootfs;

/// Bridged IP frames go through iptables, where delayed links send them to the delay line.
const SYSCTLS_SWITCH: &[(&str, &str)] =
    &[("net.bridge.bridge-nf-call-iptables", "1"), ("net.bridge.bridge-nf-call-ip6tables", "1")];
/// Node sysctls: unprivileged ping, and forwarding when the nodes route for each other.
const SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ping_group_range", "0 2147483647"),
    ("net.ipv4.ip_forward", "0"),
    ("net.ipv6.conf.all.forwarding", "0"),
];
const SYSCTLS_ROUTING: &[(&str, &str)] = &[
    ("net.ipv4.ping_group_range", "0 2147483647"),
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
];

/// Why a node did not start.
enum StartError {
    /// A persistent node's disk is gone: reported, never papered over with an empty one.
    DiskLost(String),
    Other(Error),
}

impl From<Error> for StartError {
    fn from(e: Error) -> Self {
        StartError::Other(e)
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("{what} {}: {e}", path.display()))
}

/// Refuses, with the fix, a host whose cgroup layout crun cannot run containers on.
pub(crate) fn check_host() -> Result<(), Error> {
    trellis_crun::check_host().map_err(|e| Error::FailedPrecondition(e.to_string()))
}

pub(crate) fn write_file(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| io_error("cannot write", path, e))
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Names of the interfaces (other than `lo`) inside a namespace.
async fn links_in(netns: &str) -> Vec<String> {
    let Ok(out) = cmd::run("ip", &["-n", netns, "-o", "link", "show"], None).await else { return Vec::new() };
    out.lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .filter(|name| name != "lo")
        .collect()
}

/// Takes nodes off the network: their interfaces (deleting a veth end is immediate, a
/// namespace's devices otherwise linger until the kernel's cleanup runs), host veths and
/// namespaces. Their containers must be gone already.
async fn unplug(nodes: &[(String, String)]) -> Result<(), Error> {
    let observed_ns: BTreeSet<String> =
        nodes.iter().map(|(ns, _)| ns.clone()).filter(|ns| netns_exists(ns)).collect();
    let deletions = futures::stream::iter(observed_ns.iter().cloned().map(|ns| async move {
        let ns = ns.as_str();
        let script: String = links_in(ns).await.iter().map(|l| format!("link del dev {l}\n")).collect();
        if !script.is_empty() {
            // Peers deleted by an earlier line make later lines fail; that is fine.
            let _ = cmd::run("ip", &["-n", ns, "-force", "-batch", "-"], Some(&script)).await;
        }
    }));
    deletions.buffer_unordered(8).collect::<Vec<()>>().await;
    let mut script = String::new();
    for (ns, veth) in nodes {
        if Path::new("/sys/class/net").join(veth).exists() {
            script.push_str(&format!("link del dev {veth}\n"));
        }
        if observed_ns.contains(ns) {
            script.push_str(&format!("netns del {ns}\n"));
        }
    }
    cmd::ip_batch(None, &script).await
}

fn netns_exists(ns: &str) -> bool {
    Path::new(crate::netns::NETNS_DIR).join(ns).exists()
}

impl Agent {
    /// Makes the host match `plan`. Holds the materialization's operation lock (`rt`).
    pub(crate) async fn converge(
        &self,
        mz: &Arc<Mz>,
        rt: &mut Runtime,
        plan: Arc<Plan>,
    ) -> Result<(), Error> {
        check_host()?;
        let dir = &mz.dir;
        for sub in ["nodes", "disks"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| io_error("cannot create", &dir.join(sub), e))?;
        }
        write_file(&dir.join("spec.pb"), &plan.spec.encode_to_vec())?;
        let node_names: Vec<String> = plan.nodes.iter().map(|n| n.name.clone()).collect();
        let link_names: Vec<String> = plan.links.iter().map(|l| l.name.clone()).collect();
        mz.status.reshape(&node_names, &link_names);
        rt.plan = Some(plan.clone());

        // Nodes that left the spec go entirely, disk included.
        let mut gone: BTreeSet<String> = rt.nodes.keys().cloned().collect();
        if let Ok(entries) = std::fs::read_dir(dir.join("nodes")) {
            gone.extend(entries.filter_map(Result::ok).filter_map(|e| e.file_name().into_string().ok()));
        }
        gone.retain(|name| plan.node_index(name).is_none());
        for name in &gone {
            rt.nodes.remove(name);
            self.destroy_node(&plan.names, dir, name).await?;
        }

        let observed = network::observe(&plan.names);
        let switch = plan.names.switch_netns();
        let switch_missing = plan.has_links() && !observed.netns.contains(&switch);
        let dirty: Vec<bool> = plan
            .nodes
            .iter()
            .map(|node| {
                read_text(&bundle_dir(dir, &node.name).join("fingerprint")) != node.fingerprint
                    || !observed.netns.contains(&node.netns)
                    || !observed.host_links.contains(&node.host_veth)
                    || (switch_missing && !node.ifaces.is_empty())
            })
            .collect();

        // Rebuilt nodes lose their container and network first.
        let rebuilt: Vec<usize> = (0..plan.nodes.len()).filter(|&n| dirty[n]).collect();
        for &n in &rebuilt {
            let node = &plan.nodes[n];
            mz.status.set_node(&node.name, State::Processing, "configuring the network");
            if let Some(nrt) = rt.nodes.get_mut(&node.name) {
                nrt.running = None;
                if let Some(probe) = nrt.probe.take() {
                    probe.abort();
                }
            }
            let _ = std::fs::remove_file(bundle_dir(dir, &node.name).join("fingerprint"));
        }
        let removals: Vec<_> = rebuilt
            .iter()
            .map(|&n| {
                let id = plan.nodes[n].netns.clone();
                async move { container::remove(&id).await }
            })
            .collect();
        for result in futures::stream::iter(removals)
            .buffer_unordered(self.inner.config.parallelism)
            .collect::<Vec<_>>()
            .await
        {
            result?;
        }
        let pieces: Vec<(String, String)> =
            rebuilt.iter().map(|&n| (plan.nodes[n].netns.clone(), plan.nodes[n].host_veth.clone())).collect();
        unplug(&pieces).await?;
        if !plan.has_links() && observed.netns.contains(&switch) {
            rt.delay = None;
            cmd::ip_batch(None, &format!("netns del {switch}\n")).await?;
        }

        // Build: host side in one batch, then the switch, then each node.
        let observed = network::observe(&plan.names);
        for link in &link_names {
            mz.status.set_link(link, State::Processing, "configuring");
        }
        cmd::ip_batch(None, &network::host_script(&plan, &dirty, &observed)).await?;
        // Before nodes get addresses, so an XDC moves off one a node now wants.
        self.reconcile_xdcs(mz, &plan).await;
        if plan.has_links() {
            self.configure_switch(rt, &plan, &dirty, switch_missing).await?;
        }
        let configs: Vec<_> =
            (0..plan.nodes.len()).map(|n| configure_node(&plan, dir, n, dirty[n])).collect();
        for result in futures::stream::iter(configs)
            .buffer_unordered(self.inner.config.parallelism)
            .collect::<Vec<_>>()
            .await
        {
            result?;
        }
        let sysctls = if plan.spec.static_routing { SYSCTLS_ROUTING } else { SYSCTLS };
        crate::netns::write_sysctls(plan.nodes.iter().map(|node| node.netns.clone()).collect(), sysctls)
            .await
            .map_err(|e| Error::Internal(format!("setting sysctls: {e}")))?;
        for node in &plan.nodes {
            write_file(&bundle_dir(dir, &node.name).join("fingerprint"), node.fingerprint.as_bytes())?;
        }
        for link in &link_names {
            mz.status.set_link(link, State::Ready, "configured");
        }

        // Containers: adopt what runs, start the rest.
        let mut to_start = Vec::new();
        for (n, node) in plan.nodes.iter().enumerate() {
            let bundle = bundle_dir(dir, &node.name);
            let disk = disk_dir(dir, &node.name);
            let nrt = rt.nodes.entry(node.name.clone()).or_default();
            if dirty[n] {
                to_start.push(n);
                continue;
            }
            let running = nrt.running.or_else(|| Running::parse(&read_text(&bundle.join("running"))));
            match running.filter(|r| r.alive()) {
                Some(r) if disk.exists() => {
                    nrt.running = Some(r);
                    rootfs::write_managed(&disk, &bundle, &plan, n)
                        .map_err(|e| io_error("cannot update the files of", &disk, e))?;
                    if mz.status.node_state(&node.name) != Some(State::Ready)
                        && nrt.probe.as_ref().is_none_or(|p| p.is_finished())
                    {
                        mz.status.set_node(&node.name, State::Processing, "waiting for sshd");
                        nrt.probe = Some(self.spawn_probe(mz, &node.name, node.infra_addr));
                    }
                }
                _ => to_start.push(n),
            }
        }
        self.start_nodes(mz, rt, &plan, &to_start).await
    }

    /// The switch namespace: a bridge per link, frames of delayed links through netfilter to
    /// the delay line. Rules and the delay line change only when the delayed links do.
    async fn configure_switch(
        &self,
        rt: &mut Runtime,
        plan: &Plan,
        dirty: &[bool],
        fresh: bool,
    ) -> Result<(), Error> {
        let switch = plan.names.switch_netns();
        let existing = if fresh { Default::default() } else { links_in(&switch).await.into_iter().collect() };
        cmd::ip_batch(Some(&switch), &network::switch_script(plan, dirty, &existing, fresh)).await?;
        if fresh {
            crate::netns::write_sysctls(vec![switch.clone()], SYSCTLS_SWITCH)
                .await
                .map_err(|e| Error::Internal(format!("setting sysctls: {e}")))?;
        }
        let rules = network::delay_rules(plan);
        let rules_file = self.mz_dir(&plan.mzid).join("switch-rules");
        if fresh || read_text(&rules_file) != rules {
            for tool in ["iptables-restore", "ip6tables-restore"] {
                cmd::run("ip", &["netns", "exec", &switch, tool], Some(&rules)).await?;
            }
            write_file(&rules_file, rules.as_bytes())?;
        }
        let queues = network::queues(plan);
        if queues.is_empty() {
            rt.delay = None;
        } else if fresh || rt.delay.as_ref().is_none_or(|d| d.queues() != queues.as_slice()) {
            rt.delay = None;
            let line = tokio::task::spawn_blocking(move || DelayLine::start(&switch, queues))
                .await
                .map_err(|e| Error::Internal(format!("delay line: {e}")))?
                .map_err(|e| Error::Internal(e.to_string()))?;
            rt.delay = Some(line);
        }
        Ok(())
    }

    /// Removes a node that left the spec: container, network, bundle and disk.
    async fn destroy_node(&self, names: &Names, dir: &Path, name: &str) -> Result<(), Error> {
        container::remove(&names.node_netns(name)).await?;
        unplug(&[(names.node_netns(name), names.host_veth(name))]).await?;
        for path in [bundle_dir(dir, name), disk_dir(dir, name)] {
            let shown = path.clone();
            tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| io_error("cannot remove", &shown, e))?;
        }
        Ok(())
    }

    /// (Re)starts the containers of nodes `indexes`, a few at a time, and starts probing them.
    pub(crate) async fn start_nodes(
        &self,
        mz: &Arc<Mz>,
        rt: &mut Runtime,
        plan: &Arc<Plan>,
        indexes: &[usize],
    ) -> Result<(), Error> {
        for &n in indexes {
            let nrt = rt.nodes.entry(plan.nodes[n].name.clone()).or_default();
            if let Some(probe) = nrt.probe.take() {
                probe.abort();
            }
            nrt.running = None;
            mz.status.set_node(&plan.nodes[n].name, State::Processing, "starting the container");
        }
        let starts: Vec<_> =
            indexes.iter().copied().map(|n| async move { (n, start_node(&mz.dir, plan, n).await) }).collect();
        let results: Vec<(usize, Result<Running, StartError>)> =
            futures::stream::iter(starts).buffer_unordered(self.inner.config.parallelism).collect().await;
        let mut errors = Vec::new();
        for (n, result) in results {
            let node = &plan.nodes[n];
            let nrt = rt.nodes.entry(node.name.clone()).or_default();
            match result {
                Ok(running) => {
                    nrt.running = Some(running);
                    nrt.broken = false;
                    mz.status.set_node(&node.name, State::Processing, "waiting for sshd");
                    nrt.probe = Some(self.spawn_probe(mz, &node.name, node.infra_addr));
                }
                Err(StartError::DiskLost(message)) => {
                    nrt.broken = true;
                    mz.status.set_node(&node.name, State::Failed, &message);
                }
                Err(StartError::Other(e)) => {
                    mz.status.set_node(&node.name, State::Failed, &e.to_string());
                    errors.push(format!("node {}: {e}", node.name));
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(Error::Internal(errors.join("; "))) }
    }
}

/// Addresses, routes and capacity inside one node (addresses and capacity only when the
/// node was rebuilt; routes whenever they changed).
async fn configure_node(plan: &Plan, dir: &Path, n: usize, rebuilt: bool) -> Result<(), Error> {
    let node = &plan.nodes[n];
    let bundle = bundle_dir(dir, &node.name);
    std::fs::create_dir_all(&bundle).map_err(|e| io_error("cannot create", &bundle, e))?;
    let routes_file = bundle.join("routes");
    let previous: Vec<String> = read_text(&routes_file).lines().map(str::to_owned).collect();
    let current: Vec<String> = plan.routes[n].iter().map(ToString::to_string).collect();
    if !rebuilt {
        let stale = network::stale_routes_script(plan, n, &previous);
        if !stale.is_empty() {
            // Routes through interfaces that went away are gone already.
            let _ = cmd::run("ip", &["-n", &node.netns, "-force", "-batch", "-"], Some(&stale)).await;
        }
    }
    let routes = rebuilt || previous != current;
    cmd::ip_batch(Some(&node.netns), &network::node_script(plan, n, rebuilt, routes)).await?;
    if rebuilt {
        cmd::tc_batch(&node.netns, &network::tc_script(plan, n)).await?;
    }
    write_file(&routes_file, current.join("\n").as_bytes())
}

/// Prepares a node's disk and starts its container (replacing any previous one).
async fn start_node(dir: &Path, plan: &Plan, n: usize) -> Result<Running, StartError> {
    let node = &plan.nodes[n];
    let bundle = bundle_dir(dir, &node.name);
    let disk = disk_dir(dir, &node.name);
    std::fs::create_dir_all(&bundle).map_err(|e| io_error("cannot create", &bundle, e))?;
    container::remove(&node.netns).await?;
    rootfs::ensure_host_key(&bundle, &node.name).await?;
    let marker = bundle.join("disk-created");
    if node.persistent && !disk.exists() && marker.exists() {
        return Err(StartError::DiskLost(format!(
            "the persistent disk {} is gone; it is not recreated empty",
            disk.display()
        )));
    }
    let (fresh_disk, image) = (!node.persistent || !disk.exists(), node.image.clone());
    let prepare_disk = disk.clone();
    tokio::task::spawn_blocking(move || {
        if fresh_disk {
            match std::fs::remove_dir_all(&prepare_disk) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            rootfs::create_disk(&prepare_disk, image.as_deref())?;
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(|e| io_error("cannot prepare the disk", &disk, e))?;
    if node.persistent {
        write_file(&marker, b"")?;
    }
    rootfs::write_managed(&disk, &bundle, plan, n)
        .map_err(|e| io_error("cannot write the files of", &disk, e))?;
    let config = container::oci_config(node, &disk);
    write_file(&bundle.join("config.json"), config.to_string().as_bytes())?;
    let running = container::start(&node.netns, &bundle).await?;
    write_file(&bundle.join("running"), running.to_line().as_bytes())?;
    Ok(running)
}
