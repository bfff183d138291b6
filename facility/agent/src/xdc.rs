//! Attaching development containers (XDCs) to a materialization's infranet.
//!
//! XDCs run on this host, each in its own network namespace (made by whoever runs them).
//! Attaching plugs a veth from the infranet bridge (host end [`Names::xdc_veth`]) into that
//! namespace (as [`Names::xdc_interface`]) with an infranet address no node uses, picked
//! from the top of the subnet down (nodes are numbered from the bottom) and kept in
//! `<state_dir>/<mzid>/xdcs.json`, so an XDC keeps its address across re-attachments and
//! agent restarts. No default route: the XDC keeps its own, and the infranet is connected.
//!
//! Converging re-applies every attachment (the bridge may have been rebuilt, a new spec may
//! give a node an attachment's address) and forgets those whose namespace is gone; teardown
//! removes the host ends with everything else named `t<hash8>…`.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trellis_facility_api::v1::{AttachXdcResponse, HostEntry};
use trellis_types::Error;

use crate::agent::{Agent, Mz};
use crate::cmd;
use crate::naming::Names;
use crate::netns::NETNS_DIR;
use crate::plan::{Plan, valid_mzid};

/// One XDC's attachment, as kept on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Attachment {
    pub netns: String,
    pub address: IpAddr,
}

/// Attachments by XDC id.
type Attachments = BTreeMap<String, Attachment>;

fn state_file(dir: &Path) -> PathBuf {
    dir.join("xdcs.json")
}

fn load(dir: &Path) -> Result<Attachments, Error> {
    let path = state_file(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("unreadable XDC attachments in {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Attachments::new()),
        Err(e) => Err(Error::Internal(format!("cannot read {}: {e}", path.display()))),
    }
}

fn save(dir: &Path, attachments: &Attachments) -> Result<(), Error> {
    let path = state_file(dir);
    if attachments.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Internal(format!("cannot remove {}: {e}", path.display())))
            }
            _ => Ok(()),
        };
    }
    let json = serde_json::to_vec_pretty(attachments)
        .map_err(|e| Error::Internal(format!("encoding XDC attachments: {e}")))?;
    crate::converge::write_file(&path, &json)
}

/// Names safe in file names, `ip` arguments and logs.
fn valid_token(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && !text.starts_with(['.', '-'])
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn validate(mzid: &str, xdc: &str, netns: Option<&str>) -> Result<(), Error> {
    let mut violations = Vec::new();
    if !valid_mzid(mzid) {
        violations.push(trellis_types::Violation::new("mzid", "not a materialization id"));
    }
    if !valid_token(xdc, 128) {
        violations.push(trellis_types::Violation::new(
            "xdc",
            "1-128 letters, digits, '.', '-' or '_', not starting with '.' or '-'",
        ));
    }
    if let Some(ns) = netns
        && !valid_token(ns, 200)
    {
        violations.push(trellis_types::Violation::new("netns", format!("{ns:?} is not a namespace name")));
    }
    if violations.is_empty() { Ok(()) } else { Err(Error::InvalidArgument { violations }) }
}

fn netns_exists(netns: &str) -> bool {
    Path::new(NETNS_DIR).join(netns).exists()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Addresses an XDC may not have: every node's, the gateway, and other XDCs'.
fn taken(plan: &Plan, attachments: &Attachments, except: &str) -> HashSet<IpAddr> {
    plan.nodes
        .iter()
        .map(|n| n.infra_addr)
        .chain([plan.gateway])
        .chain(attachments.iter().filter(|(x, _)| x.as_str() != except).map(|(_, a)| a.address))
        .collect()
}

/// `current` when it is still a free host address of the subnet; otherwise the highest free
/// one (the top address is IPv4's broadcast, so counting starts one below it).
fn keep_or_allocate(plan: &Plan, current: Option<IpAddr>, taken: &HashSet<IpAddr>) -> Result<IpAddr, Error> {
    let subnet = plan.subnet;
    let usable = |a: IpAddr| {
        subnet.contains(a) && Some(a) != subnet.nth_from_top(0) && a != subnet.addr && !taken.contains(&a)
    };
    if let Some(a) = current.filter(|&a| usable(a)) {
        return Ok(a);
    }
    // One more candidate than there are taken addresses always finds a free one, if any is.
    (1..=taken.len() as u128 + 1)
        .map_while(|n| subnet.nth_from_top(n))
        .take_while(|&a| a != subnet.addr)
        .find(|&a| usable(a))
        .ok_or_else(|| Error::ResourceExhausted(format!("no free address left in the infranet {subnet}")))
}

/// Makes the attachment so: the veth exists with its XDC end in the right namespace, the
/// host end is on the bridge and up, the XDC end has the address (and not `previous`).
async fn plug(
    plan: &Plan,
    xdc: &str,
    attachment: &Attachment,
    previous: Option<IpAddr>,
) -> Result<(), Error> {
    let veth = plan.names.xdc_veth(xdc);
    let iface = plan.names.xdc_interface();
    let netns = attachment.netns.as_str();
    let in_netns = cmd::run("ip", &["-n", netns, "-o", "link", "show", "dev", &iface], None).await.is_ok();
    let mut host = String::new();
    if link_exists(&veth) && !in_netns {
        // Its other end is in another namespace (the XDC moved): start over.
        host.push_str(&format!("link del dev {veth}\n"));
    }
    if !link_exists(&veth) || !in_netns {
        if in_netns {
            // An end without its host half cannot be ours any more; make room.
            let _ = cmd::run("ip", &["-n", netns, "link", "del", "dev", &iface], None).await;
        }
        host.push_str(&format!(
            "link add name {veth} type veth peer name {iface} address {} netns {netns}\n",
            plan.names.xdc_mac(xdc)
        ));
    }
    host.push_str(&format!("link set dev {veth} master {} up\n", plan.names.infra_bridge()));
    cmd::ip_batch(None, &host).await?;

    let prefix = plan.subnet.prefix;
    if let Some(old) = previous.filter(|&old| old != attachment.address) {
        // Gone already when the veth was just made.
        let _ =
            cmd::run("ip", &["-n", netns, "addr", "del", &format!("{old}/{prefix}"), "dev", &iface], None)
                .await;
    }
    let script =
        format!("addr replace {}/{prefix} dev {iface}\nlink set dev {iface} up\n", attachment.address);
    cmd::ip_batch(Some(netns), &script).await
}

/// Deletes an XDC's host end (the kernel removes its other end with it).
async fn unplug(veth: &str) -> Result<(), Error> {
    if !link_exists(veth) {
        return Ok(());
    }
    match cmd::run("ip", &["link", "del", "dev", veth], None).await {
        // Its namespace may have vanished meanwhile, taking the pair along.
        Err(e) if link_exists(veth) => Err(e),
        _ => Ok(()),
    }
}

/// What the XDC needs to know: its address and every node's names.
fn response(plan: &Plan, xdc_interface: String, attachment: &Attachment) -> AttachXdcResponse {
    let hosts = plan
        .nodes
        .iter()
        .flat_map(|n| {
            let address = n.infra_addr.to_string();
            [
                HostEntry { name: n.name.clone(), address: address.clone() },
                HostEntry { name: format!("{}.infra.{}", n.name, plan.mzid), address },
            ]
        })
        .collect();
    AttachXdcResponse {
        address: attachment.address.to_string(),
        prefix_len: u32::from(plan.subnet.prefix),
        hosts,
        search: vec![format!("infra.{}", plan.mzid)],
        interface: xdc_interface,
    }
}

impl Agent {
    /// Connects XDC `xdc`, whose network namespace on this host is `netns`, to the infranet
    /// of `mzid`; see the module documentation. Idempotent: the same XDC keeps its address.
    pub async fn attach_xdc(&self, mzid: &str, xdc: &str, netns: &str) -> Result<AttachXdcResponse, Error> {
        validate(mzid, xdc, Some(netns))?;
        let not_found = || Error::not_found("materialization", mzid);
        let mz = self.get(mzid).ok_or_else(not_found)?;
        let rt = mz.ops.lock().await;
        let plan = rt.plan.clone().filter(|_| !mz.cancel.is_cancelled()).ok_or_else(not_found)?;
        if !netns_exists(netns) {
            return Err(Error::FailedPrecondition(format!(
                "XDC {xdc}: its network namespace {netns} does not exist on this facility host \
                 (no {NETNS_DIR}/{netns}); is the XDC running here?"
            )));
        }
        let mut attachments = load(&mz.dir)?;
        let veth = plan.names.xdc_veth(xdc);
        for (other, attachment) in attachments.iter().filter(|(other, _)| other.as_str() != xdc) {
            if attachment.netns == netns {
                return Err(Error::FailedPrecondition(format!(
                    "network namespace {netns} is already attached to {mzid} as XDC {other}"
                )));
            }
            if plan.names.xdc_veth(other) == veth {
                return Err(Error::FailedPrecondition(format!(
                    "XDCs {other} and {xdc} hash to the same interface name here; detach {other} first"
                )));
            }
        }
        let previous = attachments.get(xdc).map(|a| a.address);
        let address = keep_or_allocate(&plan, previous, &taken(&plan, &attachments, xdc))?;
        let attachment = Attachment { netns: netns.to_owned(), address };
        // Recorded before plugging, so the address stays reserved whatever happens next.
        attachments.insert(xdc.to_owned(), attachment.clone());
        save(&mz.dir, &attachments)?;
        plug(&plan, xdc, &attachment, previous).await?;
        tracing::info!(mzid, xdc, netns, %address, "attached an XDC");
        drop(rt);
        Ok(response(&plan, plan.names.xdc_interface(), &attachment))
    }

    /// Disconnects XDC `xdc` from `mzid`'s infranet. Succeeds when it was not attached or
    /// the materialization is gone (teardown removed its attachments). `netns` may be empty.
    pub async fn detach_xdc(&self, mzid: &str, xdc: &str, netns: &str) -> Result<(), Error> {
        validate(mzid, xdc, (!netns.is_empty()).then_some(netns))?;
        let names = Names::new(mzid);
        let veth = names.xdc_veth(xdc);
        let Some(mz) = self.get(mzid) else { return unplug(&veth).await };
        let _rt = mz.ops.lock().await;
        let mut attachments = load(&mz.dir)?;
        // Never pull another XDC's cable (attach refuses a second XDC with the same name).
        if !attachments.keys().any(|other| other != xdc && names.xdc_veth(other) == veth) {
            unplug(&veth).await?;
        }
        if attachments.remove(xdc).is_some() {
            save(&mz.dir, &attachments)?;
            tracing::info!(mzid, xdc, "detached an XDC");
        }
        Ok(())
    }

    /// The XDCs attached to `mzid` and their addresses (for tests and tools).
    pub fn xdc_attachments(&self, mzid: &str) -> Vec<(String, IpAddr)> {
        load(&self.mz_dir(mzid))
            .map(|all| all.into_iter().map(|(xdc, a)| (xdc, a.address)).collect())
            .unwrap_or_default()
    }

    /// Converging's part: forget XDCs whose namespace is gone, move any off an address a
    /// node now has, and plug each in again. Failures are logged; the nodes matter more.
    pub(crate) async fn reconcile_xdcs(&self, mz: &Mz, plan: &Plan) {
        let mut attachments = match load(&mz.dir) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(mzid = mz.id, error = %e, "cannot reconcile XDC attachments");
                return;
            }
        };
        if attachments.is_empty() {
            return;
        }
        let before = attachments.clone();
        let gone: Vec<String> =
            attachments.iter().filter(|(_, a)| !netns_exists(&a.netns)).map(|(x, _)| x.clone()).collect();
        for xdc in gone {
            tracing::info!(mzid = mz.id, xdc, "the XDC's namespace is gone; forgetting its attachment");
            if let Err(e) = unplug(&plan.names.xdc_veth(&xdc)).await {
                tracing::warn!(mzid = mz.id, xdc, error = %e, "cannot remove a stale XDC link");
            }
            attachments.remove(&xdc);
        }
        let xdcs: Vec<String> = attachments.keys().cloned().collect();
        for xdc in xdcs {
            let old = attachments[&xdc].address;
            let address = match keep_or_allocate(plan, Some(old), &taken(plan, &attachments, &xdc)) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(mzid = mz.id, xdc, error = %e, "cannot re-address an XDC");
                    continue;
                }
            };
            if address != old {
                tracing::warn!(mzid = mz.id, xdc, %old, %address, "a node took the XDC's address; moving it");
            }
            let attachment = Attachment { netns: attachments[&xdc].netns.clone(), address };
            attachments.insert(xdc.clone(), attachment.clone());
            if let Err(e) = plug(plan, &xdc, &attachment, Some(old)).await {
                tracing::error!(mzid = mz.id, xdc, error = %e, "cannot plug an XDC in again");
            }
        }
        if attachments != before
            && let Err(e) = save(&mz.dir, &attachments)
        {
            tracing::error!(mzid = mz.id, error = %e, "cannot record XDC attachments");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_facility_api::v1::{Materialization, Node};

    fn plan(subnet: &str, nodes: &[&str]) -> Plan {
        let spec = Materialization {
            mzid: "r.e.p".into(),
            infranet_subnet: subnet.into(),
            nodes: nodes
                .iter()
                .enumerate()
                .map(|(i, a)| Node {
                    name: format!("n{i}"),
                    infranet_addr: (*a).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        crate::plan::plan(&spec, Path::new("/nonexistent")).unwrap()
    }

    fn at(address: &str) -> Attachment {
        Attachment { netns: "ns".into(), address: address.parse().unwrap() }
    }

    #[test]
    fn addresses_come_from_the_top_and_avoid_nodes_and_other_xdcs() {
        let plan = plan("10.4.0.0/24", &["10.4.0.2", "10.4.0.254"]);
        let mut all = Attachments::new();
        let first = keep_or_allocate(&plan, None, &taken(&plan, &all, "x0")).unwrap();
        assert_eq!(first.to_string(), "10.4.0.253");
        all.insert("x0".into(), at("10.4.0.253"));
        let second = keep_or_allocate(&plan, None, &taken(&plan, &all, "x1")).unwrap();
        assert_eq!(second.to_string(), "10.4.0.252");
        // Its own address is kept; one a node took, or outside the subnet, is replaced.
        let again = keep_or_allocate(&plan, Some(first), &taken(&plan, &all, "x0")).unwrap();
        assert_eq!(again, first);
        let moved = keep_or_allocate(&plan, "10.4.0.254".parse().ok(), &taken(&plan, &all, "x1")).unwrap();
        assert_eq!(moved.to_string(), "10.4.0.252");
        let outside = keep_or_allocate(&plan, "10.9.0.7".parse().ok(), &taken(&plan, &all, "x1")).unwrap();
        assert_eq!(outside.to_string(), "10.4.0.252");
    }

    #[test]
    fn a_full_infranet_is_reported() {
        // /30: network .0, gateway .1, .2 the node, .3 broadcast.
        let plan = plan("10.4.0.0/30", &["10.4.0.2"]);
        let err = keep_or_allocate(&plan, None, &taken(&plan, &Attachments::new(), "x")).unwrap_err();
        assert!(matches!(err, Error::ResourceExhausted(_)), "{err:?}");
        let plan = super::tests::plan("10.4.0.0/29", &["10.4.0.2"]);
        let got = keep_or_allocate(&plan, None, &taken(&plan, &Attachments::new(), "x")).unwrap();
        assert_eq!(got.to_string(), "10.4.0.6");
    }

    #[test]
    fn answers_name_every_node_both_ways() {
        let plan = plan("10.4.0.0/24", &["10.4.0.2"]);
        let reply = response(&plan, "mzx".into(), &at("10.4.0.254"));
        assert_eq!((reply.address.as_str(), reply.prefix_len), ("10.4.0.254", 24));
        let hosts: Vec<(&str, &str)> =
            reply.hosts.iter().map(|h| (h.name.as_str(), h.address.as_str())).collect();
        assert_eq!(hosts, [("n0", "10.4.0.2"), ("n0.infra.r.e.p", "10.4.0.2")]);
        assert_eq!(reply.search, ["infra.r.e.p"]);
    }

    #[test]
    fn names_are_checked() {
        assert!(validate("r.e.p", "x0-proj", Some("trx-2962af2de6")).is_ok());
        for (xdc, ns) in [("", "ns"), ("x/0", "ns"), ("x0", "../etc"), ("x0", ""), ("-x", "ns")] {
            assert!(validate("r.e.p", xdc, Some(ns)).is_err(), "{xdc} {ns}");
        }
        assert!(validate("r.e.p", "x0", None).is_ok());
    }
}
