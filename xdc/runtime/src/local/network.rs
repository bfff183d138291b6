//! An XDC's network: its own namespace whose `eth0` is a veth into the host bridge, one
//! address from the runtime's subnet, the host (the bridge's address) as gateway.
//!
//! Names are derived from a hash of the XDC id, so everything one XDC owns on the host is
//! found by name without any other state: the namespace, container, cgroup and state
//! directory are `trx-<hash10>`, the host end of the veth `trx<hash10>` (Linux allows 15
//! characters for interfaces).

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use trellis_crun::NETNS_DIR;

use super::cmd;
use crate::RuntimeError;

/// The names of one XDC's pieces on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// Namespace, container id, cgroup and state directory name.
    pub container: String,
    /// The host end of the XDC's veth.
    pub veth: String,
    hash: String,
}

impl Names {
    pub fn new(id: &str) -> Names {
        let digest = Sha256::digest(id.as_bytes());
        let mut hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        hash.truncate(10);
        Names { container: format!("trx-{hash}"), veth: format!("trx{hash}"), hash }
    }
}

/// The locally administered MAC of the XDC holding `address`: a function of the address alone,
/// so whichever XDC takes an address next (addresses are reused as soon as one is deleted) has
/// the MAC the host's neighbour cache already holds for it. A MAC from the XDC's name left the
/// host sending to the previous holder's MAC for up to a minute.
fn mac(address: Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    format!("02:74:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// An IPv4 subnet for XDC addresses; the first host address is the gateway on the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// The subnet of `addr/prefix`; the prefix must leave room for a gateway and XDCs.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Subnet, RuntimeError> {
        if !(8..=29).contains(&prefix) {
            return Err(RuntimeError::InvalidSpec(format!(
                "subnet prefix /{prefix} must be between /8 and /29"
            )));
        }
        let mask = u32::MAX << (32 - u32::from(prefix));
        Ok(Subnet { network: Ipv4Addr::from(u32::from(addr) & mask), prefix })
    }

    /// The host's address on the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Addresses XDCs may get, lowest first (the gateway and broadcast excluded).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 2;
        let broadcast = u32::from(self.network) + (1u32 << (32 - u32::from(self.prefix))) - 1;
        (first..broadcast).map(Ipv4Addr::from)
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix));
        u32::from(addr) & mask == u32::from(self.network)
    }
}

impl FromStr for Subnet {
    type Err = RuntimeError;

    fn from_str(text: &str) -> Result<Subnet, RuntimeError> {
        let bad = || RuntimeError::InvalidSpec(format!("{text:?} is not an IPv4 subnet like 10.250.0.0/16"));
        let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
        Subnet::new(addr.parse().map_err(|_| bad())?, prefix.parse().map_err(|_| bad())?)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

pub(crate) fn netns_exists(name: &str) -> bool {
    Path::new(NETNS_DIR).join(name).exists()
}

/// Whether the XDC's namespace and veth are both there.
pub(crate) fn present(names: &Names) -> bool {
    netns_exists(&names.container) && link_exists(&names.veth)
}

/// Creates the bridge with the gateway address if needed; cheap and idempotent otherwise.
pub(crate) async fn ensure_bridge(bridge: &str, subnet: &Subnet) -> Result<(), RuntimeError> {
    if !link_exists(bridge) {
        // Another runtime on the same bridge may win the race; that is fine.
        if let Err(e) = cmd::ip_batch(None, &format!("link add name {bridge} type bridge\n")).await
            && !link_exists(bridge)
        {
            return Err(e);
        }
    }
    // Administratively up (IFF_UP); `operstate` stays "down" while the bridge has no ports.
    let up = std::fs::read_to_string(Path::new("/sys/class/net").join(bridge).join("flags"))
        .ok()
        .and_then(|flags| u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|flags| flags & 1 == 1);
    if up && has_address(bridge, subnet.gateway()).await {
        return Ok(());
    }
    cmd::ip_batch(
        None,
        &format!(
            "addr replace {}/{} dev {bridge}\nlink set dev {bridge} up\n",
            subnet.gateway(),
            subnet.prefix
        ),
    )
    .await
}

async fn has_address(link: &str, addr: Ipv4Addr) -> bool {
    cmd::run("ip", &["-o", "-4", "addr", "show", "dev", link], None)
        .await
        .is_ok_and(|out| out.split_whitespace().any(|word| word.split('/').next() == Some(&addr.to_string())))
}

/// Creates the namespace and veth and configures the XDC's side.
pub(crate) async fn plug(
    names: &Names,
    address: Ipv4Addr,
    subnet: &Subnet,
    bridge: &str,
) -> Result<(), RuntimeError> {
    let ns = &names.container;
    cmd::ip_batch(
        None,
        &format!(
            "netns add {ns}\n\
             link add name {veth} type veth peer name eth0 address {mac} netns {ns}\n\
             link set dev {veth} master {bridge} up\n",
            veth = names.veth,
            mac = mac(address),
        ),
    )
    .await?;
    cmd::ip_batch(
        Some(ns),
        &format!(
            "link set dev lo up\n\
             addr add {address}/{prefix} dev eth0\n\
             link set dev eth0 up\n\
             route add default via {gateway}\n",
            prefix = subnet.prefix,
            gateway = subnet.gateway()
        ),
    )
    .await
}

/// Puts the veth back on the bridge if it lost it (the bridge was deleted and recreated).
pub(crate) async fn attach(names: &Names, bridge: &str) -> Result<(), RuntimeError> {
    let master = std::fs::read_link(Path::new("/sys/class/net").join(&names.veth).join("master"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if master.as_deref() == Some(bridge) {
        return Ok(());
    }
    cmd::ip_batch(None, &format!("link set dev {} master {bridge} up\n", names.veth)).await
}

/// Deletes the veth (both ends) and the namespace; the container must be gone already.
pub(crate) async fn unplug(names: &Names) -> Result<(), RuntimeError> {
    let mut script = String::new();
    if link_exists(&names.veth) {
        script.push_str(&format!("link del dev {}\n", names.veth));
    }
    if netns_exists(&names.container) {
        script.push_str(&format!("netns del {}\n", names.container));
    }
    cmd::ip_batch(None, &script).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_linux_limits_and_differ_per_id() {
        let a = Names::new("x0-proj");
        assert!(a.veth.len() <= 15);
        assert!(a.container.starts_with("trx-"));
        assert_eq!(a, Names::new("x0-proj"));
        assert_ne!(a.container, Names::new("x1-proj").container);
    }

    #[test]
    fn the_mac_follows_the_address_not_the_xdc() {
        assert_eq!(mac(Ipv4Addr::new(10, 250, 0, 3)), "02:74:0a:fa:00:03");
        assert_ne!(mac(Ipv4Addr::new(10, 250, 0, 3)), mac(Ipv4Addr::new(10, 250, 0, 4)));
    }

    #[test]
    fn subnets_parse_and_list_hosts() {
        let s: Subnet = "10.250.3.7/24".parse().unwrap();
        assert_eq!(s.to_string(), "10.250.3.0/24");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 250, 3, 1));
        let hosts: Vec<Ipv4Addr> = s.hosts().collect();
        assert_eq!(hosts.first(), Some(&Ipv4Addr::new(10, 250, 3, 2)));
        assert_eq!(hosts.last(), Some(&Ipv4Addr::new(10, 250, 3, 254)));
        assert!(s.contains(Ipv4Addr::new(10, 250, 3, 9)) && !s.contains(Ipv4Addr::new(10, 250, 4, 9)));
        assert!("10.0.0.0/31".parse::<Subnet>().is_err());
        assert!("nonsense".parse::<Subnet>().is_err());
    }
}
