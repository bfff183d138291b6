//! Reading the rules' counters back: how many connections each public address (or forward
//! address) has had translated since the table was last written.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use crate::config::NatProtocol;
use crate::error::NatError;

/// Connections translated for one destination, summed over both chains (arriving from outside
/// and made on this host). Counting restarts whenever the table is written anew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translated {
    /// The transport protocol the rules match.
    pub protocol: NatProtocol,
    /// The address and port the rules match (a mapping's public address, a forward's address).
    pub destination: SocketAddr,
    /// Connections translated: a NAT chain sees only the first packet of each.
    pub connections: u64,
}

/// The counters in an `nft -j list table` listing, by destination. Rules that are not ours
/// (no destination match or no counter) are left out.
pub(crate) fn parse(listing: &str) -> Result<Vec<Translated>, NatError> {
    let parsed: Value = serde_json::from_str(listing).map_err(NatError::Listing)?;
    let items = parsed.get("nftables").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut sums: BTreeMap<(SocketAddr, NatProtocol), u64> = BTreeMap::new();
    for rule in items.iter().filter_map(|item| item.get("rule")) {
        let exprs = rule.get("expr").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let (mut ip, mut port, mut protocol, mut count) = (None, None, None, None);
        for expr in exprs {
            if let Some(counter) = expr.get("counter") {
                count = counter.get("packets").and_then(Value::as_u64);
            }
            let Some(matched) = expr.get("match") else { continue };
            let Some(payload) = matched.get("left").and_then(|left| left.get("payload")) else { continue };
            let right = matched.get("right");
            match payload.get("field").and_then(Value::as_str) {
                Some("daddr") => ip = right.and_then(Value::as_str).and_then(|s| s.parse::<IpAddr>().ok()),
                Some("dport") => {
                    port = right.and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok());
                    protocol = match payload.get("protocol").and_then(Value::as_str) {
                        Some("tcp") => Some(NatProtocol::Tcp),
                        Some("udp") => Some(NatProtocol::Udp),
                        _ => None,
                    };
                }
                _ => {}
            }
        }
        if let (Some(ip), Some(port), Some(protocol), Some(count)) = (ip, port, protocol, count) {
            *sums.entry((SocketAddr::new(ip, port), protocol)).or_default() += count;
        }
    }
    Ok(sums
        .into_iter()
        .map(|((destination, protocol), connections)| Translated { protocol, destination, connections })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped as nftables 1.0.6 prints it.
    fn rule(chain: &str, daddr: &str, proto: &str, dport: u16, packets: u64) -> String {
        format!(
            r#"{{"rule": {{"family": "inet", "table": "t", "chain": "{chain}", "handle": 3, "comment": "trellis:x", "expr": [
              {{"match": {{"op": "==", "left": {{"payload": {{"protocol": "ip", "field": "daddr"}}}}, "right": "{daddr}"}}}},
              {{"match": {{"op": "==", "left": {{"payload": {{"protocol": "{proto}", "field": "dport"}}}}, "right": {dport}}}}},
              {{"counter": {{"packets": {packets}, "bytes": {}}}}},
              {{"dnat": {{"family": "ip", "addr": "127.0.1.3", "port": 2202}}}}]}}}}"#,
            packets * 60
        )
    }

    #[test]
    fn counters_are_summed_over_both_chains_by_destination() {
        let listing = format!(
            r#"{{"nftables": [{{"metainfo": {{"version": "1.0.6"}}}}, {{"table": {{"family": "inet", "name": "t"}}}},
               {}, {}, {}, {}, {{"rule": {{"chain": "output", "expr": [{{"accept": null}}]}}}}]}}"#,
            rule("prerouting", "2.3.4.10", "tcp", 22, 5),
            rule("output", "2.3.4.10", "tcp", 22, 2),
            rule("prerouting", "2.3.4.10", "udp", 53, 1),
            rule("prerouting", "127.0.1.3", "tcp", 2202, 0),
        );
        let counted = parse(&listing).unwrap();
        let find = |addr: &str, protocol| {
            counted
                .iter()
                .find(|t| t.destination == addr.parse().unwrap() && t.protocol == protocol)
                .map(|t| t.connections)
        };
        assert_eq!(counted.len(), 3, "{counted:?}");
        assert_eq!(find("2.3.4.10:22", NatProtocol::Tcp), Some(7));
        assert_eq!(find("2.3.4.10:53", NatProtocol::Udp), Some(1));
        assert_eq!(find("127.0.1.3:2202", NatProtocol::Tcp), Some(0));
        assert!(parse("not json").is_err());
    }
}
