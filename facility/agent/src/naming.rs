//! Deterministic names for everything the agent creates on the host.
//!
//! Every name starts with a prefix derived from a hash of the mzid, so the agent (and a test)
//! can find exactly what belongs to one materialization without any state: namespaces and
//! containers are `tr-<hash8>-…`, host interfaces `t<hash8>…` (Linux allows 15 characters).

use sha2::{Digest, Sha256};

/// The names of one materialization's pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    hash: String,
}

/// The first `len` hex digits of SHA-256(`text`).
fn short_hash(text: &str, len: usize) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(len);
    hex
}

impl Names {
    /// The names for materialization `mzid`.
    pub fn new(mzid: &str) -> Names {
        Names { hash: short_hash(mzid, 8) }
    }

    /// Prefix of every network namespace and container id (`tr-<hash8>-`).
    pub fn netns_prefix(&self) -> String {
        format!("tr-{}-", self.hash)
    }

    /// Prefix of every interface the agent creates in the host's namespace (`t<hash8>`).
    pub fn host_link_prefix(&self) -> String {
        format!("t{}", self.hash)
    }

    /// A node's short key: stable across specs (it depends only on the node's name).
    pub fn node_key(node: &str) -> String {
        short_hash(node, 6)
    }

    /// The node's network namespace; also its container id and cgroup name.
    pub fn node_netns(&self, node: &str) -> String {
        format!("tr-{}-{}", self.hash, Self::node_key(node))
    }

    /// The namespace holding a bridge per experiment link.
    pub fn switch_netns(&self) -> String {
        format!("tr-{}-sw", self.hash)
    }

    /// The infranet bridge on the host.
    pub fn infra_bridge(&self) -> String {
        format!("t{}br", self.hash)
    }

    /// The host end of a node's infranet veth (its other end is `eth0` in the node).
    pub fn host_veth(&self, node: &str) -> String {
        format!("t{}{}", self.hash, Self::node_key(node))
    }

    /// The host end of an XDC's veth into the infranet bridge: `t<hash8>x<hash5>`, so the
    /// teardown sweep finds it, and the `x` (not a hex digit) keeps it apart from node veths.
    pub fn xdc_veth(&self, xdc: &str) -> String {
        format!("t{}x{}", self.hash, short_hash(xdc, 5))
    }

    /// The XDC's end of that veth, inside its namespace: `mz<hash8>`, one per materialization,
    /// so an XDC could be attached to several.
    pub fn xdc_interface(&self) -> String {
        format!("mz{}", self.hash)
    }

    /// A fixed MAC for an XDC's infranet interface, so nodes' neighbour caches stay right
    /// when it is re-attached. Node names have no `/`, so this never equals a node's MAC.
    pub fn xdc_mac(&self, xdc: &str) -> String {
        self.mac(&format!("xdc/{xdc}"), "infranet")
    }

    /// A link's bridge inside the switch namespace.
    pub fn lan_bridge(link: &str) -> String {
        format!("b{}", short_hash(link, 6))
    }

    /// The switch-side end of a node's veth into a link.
    pub fn lan_port(link: &str, node: &str) -> String {
        format!("p{}{}", short_hash(link, 6), Self::node_key(node))
    }

    /// A fixed MAC address for a node's interface (`eth0` included): a rebuilt node keeps its
    /// addresses' MACs, so the host's and other nodes' neighbour caches stay right instead
    /// of pointing at a vanished interface until they expire (up to about 45 s).
    pub fn mac(&self, node: &str, iface: &str) -> String {
        let digest = Sha256::digest(format!("{}/{node}/{iface}", self.hash).as_bytes());
        // 02: locally administered, unicast.
        format!(
            "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            digest[0], digest[1], digest[2], digest[3], digest[4]
        )
    }

    /// The node's cgroup path, directly under each hierarchy's root so that deleting the
    /// container leaves no parent directory behind.
    pub fn cgroup_path(&self, node: &str) -> String {
        format!("/{}", self.node_netns(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_linux_limits_and_share_prefixes() {
        let names = Names::new("r1.exp.proj");
        let node = "a-very-long-node-name-indeed";
        assert!(names.host_veth(node).len() <= 15);
        assert!(names.infra_bridge().len() <= 15);
        assert!(Names::lan_port("lan-with-a-long-name", node).len() <= 15);
        assert!(names.host_veth(node).starts_with(&names.host_link_prefix()));
        assert!(names.infra_bridge().starts_with(&names.host_link_prefix()));
        assert!(names.node_netns(node).starts_with(&names.netns_prefix()));
        assert!(names.switch_netns().starts_with(&names.netns_prefix()));
        assert_eq!(names, Names::new("r1.exp.proj"));
        assert_eq!(names.mac("a", "eth0"), Names::new("r1.exp.proj").mac("a", "eth0"));
        assert_ne!(names.mac("a", "eth0"), names.mac("a", "eth1"));
        assert!(names.mac("a", "eth0").starts_with("02:"));
        assert_ne!(names.netns_prefix(), Names::new("r2.exp.proj").netns_prefix());
        let xdc = "a-very-long-xdc-name.project-with-a-long-name";
        assert_eq!(names.xdc_veth(xdc).len(), 15);
        assert!(names.xdc_veth(xdc).starts_with(&names.host_link_prefix()));
        assert_ne!(names.xdc_veth("x0-proj"), names.xdc_veth("x1-proj"));
        assert!(names.xdc_interface().len() <= 15);
        assert_ne!(names.xdc_mac("x0-proj"), names.mac("x0-proj", "infranet"));
    }
}
