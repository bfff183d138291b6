//! The network of a materialization as `ip`/`tc`/`iptables-restore` scripts.
//!
//! Layout: each node's `eth0` is a veth into the host's infranet bridge; each experiment
//! interface is a veth into the materialization's switch namespace, where every link (two
//! endpoints or more) is a bridge. Capacity is a token bucket on the node's egress; latency
//! and loss are applied where a frame enters its link's bridge (see [`crate::delay`]).
//!
//! Building is split from running so a materialization of any size costs a handful of
//! processes: one `ip -batch` on the host (namespaces, bridge, every veth), one in the switch
//! namespace, and per node one `ip -batch` and one `tc -batch`. Every `ip` line names its
//! objects with explicit keywords (`dev`, `name`): `ip` accepts keyword abbreviations, so a
//! bare interface called `ma` would read as `master`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use crate::delay::QueueSpec;
use crate::naming::Names;
use crate::netns::NETNS_DIR;
use crate::plan::Plan;

/// What of a materialization already exists on the host.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    pub netns: HashSet<String>,
    pub host_links: HashSet<String>,
}

fn entries_with_prefix(dir: &str, prefix: &str) -> HashSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| name.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Looks at `/run/netns` and `/sys/class/net` (the agent runs in the host's namespace).
pub(crate) fn observe(names: &Names) -> Observed {
    Observed {
        netns: entries_with_prefix(NETNS_DIR, &names.netns_prefix()),
        host_links: entries_with_prefix("/sys/class/net", &names.host_link_prefix()),
    }
}

/// The host-side script: the infranet bridge, the switch namespace, and the namespaces and
/// veths of rebuilt nodes (`dirty[n]`).
pub(crate) fn host_script(plan: &Plan, dirty: &[bool], observed: &Observed) -> String {
    let mut s = String::new();
    let bridge = plan.names.infra_bridge();
    let bridge_missing = !observed.host_links.contains(&bridge);
    if bridge_missing {
        let _ = writeln!(s, "link add name {bridge} type bridge");
        let _ = writeln!(s, "addr add {}/{} dev {bridge}", plan.gateway, plan.subnet.prefix);
        let _ = writeln!(s, "link set dev {bridge} up");
    }
    let switch = plan.names.switch_netns();
    if plan.has_links() && !observed.netns.contains(&switch) {
        let _ = writeln!(s, "netns add {switch}");
    }
    for (n, node) in plan.nodes.iter().enumerate() {
        if !dirty[n] {
            if bridge_missing {
                let _ = writeln!(s, "link set dev {} master {bridge} up", node.host_veth);
            }
            continue;
        }
        let _ = writeln!(s, "netns add {}", node.netns);
        let _ = writeln!(
            s,
            "link add name {} type veth peer name eth0 address {} netns {}",
            node.host_veth,
            plan.names.mac(&node.name, "eth0"),
            node.netns
        );
        let _ = writeln!(s, "link set dev {} master {bridge} up", node.host_veth);
        for iface in &node.ifaces {
            let _ = writeln!(
                s,
                "link add name {} address {} netns {} type veth peer name {} netns {switch}",
                iface.name,
                plan.names.mac(&node.name, &iface.name),
                node.netns,
                Names::lan_port(&plan.links[iface.link].name, &node.name)
            );
        }
    }
    s
}

/// The switch namespace's script: a bridge per link (stale ones deleted), rebuilt nodes'
/// ports attached. `existing` lists the interfaces already there.
pub(crate) fn switch_script(plan: &Plan, dirty: &[bool], existing: &HashSet<String>, fresh: bool) -> String {
    let mut s = String::new();
    if fresh {
        s.push_str("link set dev lo up\n");
    }
    let wanted: HashSet<String> = plan.links.iter().map(|l| Names::lan_bridge(&l.name)).collect();
    for stale in existing.iter().filter(|l| l.starts_with('b') && !wanted.contains(*l)) {
        let _ = writeln!(s, "link del dev {stale}");
    }
    for link in &plan.links {
        let bridge = Names::lan_bridge(&link.name);
        let new_bridge = !existing.contains(&bridge);
        if new_bridge {
            let _ = writeln!(s, "link add name {bridge} type bridge");
            let _ = writeln!(s, "link set dev {bridge} up");
        }
        for &(n, _) in link.endpoints.iter().filter(|&&(n, _)| dirty[n] || new_bridge) {
            let _ = writeln!(
                s,
                "link set dev {} master {bridge} up",
                Names::lan_port(&link.name, &plan.nodes[n].name)
            );
        }
    }
    s
}

/// A node's own script: infranet address and experiment addresses (when rebuilt) and its
/// routes (`ip route replace` is idempotent).
pub(crate) fn node_script(plan: &Plan, n: usize, rebuilt: bool, routes: bool) -> String {
    let node = &plan.nodes[n];
    let mut s = String::new();
    if rebuilt {
        s.push_str("link set dev lo up\n");
        let _ = writeln!(s, "addr add {}/{} dev eth0", node.infra_addr, plan.subnet.prefix);
        s.push_str("link set dev eth0 up\n");
        for iface in &node.ifaces {
            for addr in &iface.addrs {
                let _ = writeln!(s, "addr add {addr} dev {}", iface.name);
            }
            let _ = writeln!(s, "link set dev {} up", iface.name);
        }
    }
    if routes {
        for route in &plan.routes[n] {
            let _ = writeln!(s, "route replace {route} proto static");
        }
    }
    s
}

/// Deletes routes a node had under the previous spec and no longer needs.
pub(crate) fn stale_routes_script(plan: &Plan, n: usize, previous: &[String]) -> String {
    let wanted: HashSet<String> = plan.routes[n].iter().map(ToString::to_string).collect();
    previous.iter().filter(|r| !r.is_empty() && !wanted.contains(*r)).fold(String::new(), |mut s, r| {
        let _ = writeln!(s, "route del {r}");
        s
    })
}

/// Capacity of a rebuilt node's interfaces: a token bucket on each egress.
pub(crate) fn tc_script(plan: &Plan, n: usize) -> String {
    let node = &plan.nodes[n];
    let mut s = String::new();
    for iface in &node.ifaces {
        let link = &plan.links[iface.link];
        if link.capacity_bps == 0 {
            continue;
        }
        // Bursts of 2 ms at line rate (never below two full frames); the queue holds twice the
        // link's latency or 20 ms, whichever is longer, so TCP can fill the pipe.
        let burst = (link.capacity_bps / 8 / 500).max(3028);
        let queue_ms = (2 * link.latency_us / 1000).max(20);
        let _ = writeln!(
            s,
            "qdisc replace dev {} root handle 1: tbf rate {}bit burst {burst} latency {queue_ms}ms",
            iface.name, link.capacity_bps
        );
    }
    s
}

/// Every delayed link endpoint as a delay-line queue.
pub(crate) fn queues(plan: &Plan) -> Vec<QueueSpec> {
    plan.nodes
        .iter()
        .flat_map(|node| node.ifaces.iter())
        .filter_map(|iface| {
            let link = &plan.links[iface.link];
            link.delays().then(|| QueueSpec {
                num: iface.queue,
                delay: Duration::from_micros(link.latency_us),
                loss: link.loss,
            })
        })
        .collect()
}

/// `iptables-restore` input for the switch namespace sending every frame that enters a
/// delayed link's bridge to its port's queue (the same text serves `ip6tables-restore`).
/// Bridged frames reach these hooks through `br_netfilter` (`bridge-nf-call-iptables`).
pub(crate) fn delay_rules(plan: &Plan) -> String {
    let mut rules = String::new();
    for node in &plan.nodes {
        for iface in &node.ifaces {
            let link = &plan.links[iface.link];
            if link.delays() {
                let _ = writeln!(
                    rules,
                    "-A PREROUTING -m physdev --physdev-in {} -j NFQUEUE --queue-num {} --queue-bypass",
                    Names::lan_port(&link.name, &node.name),
                    iface.queue
                );
            }
        }
    }
    format!(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
         :OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n{rules}COMMIT\n"
    )
}
