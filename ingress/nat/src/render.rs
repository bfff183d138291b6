//! Configuration → `nft -f` script. Pure, so the exact rules are unit-tested without root.

use std::fmt::Write as _;
use std::net::SocketAddr;

use sha2::{Digest, Sha256};

use crate::config::{NatConfig, NatForward, NatProtocol};
use crate::error::NatError;

/// Prefix of the comment every rule carries; the digest follows it.
pub(crate) const COMMENT_PREFIX: &str = "trellis:";

/// A rendered configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The table the script replaces.
    pub table: String,
    /// The table definition alone (what `nft list table` would show, give or take layout).
    pub definition: String,
    /// The whole transaction for `nft -f -`: create-if-absent, delete, define.
    pub script: String,
    /// A digest of the definition; every rule's comment is `trellis:<digest>`.
    pub digest: String,
    /// How many rules the definition holds.
    pub rule_count: usize,
}

/// Renders `config` into an atomic replace of its table.
///
/// Each mapping gives two DNAT rules: one in `prerouting` for traffic arriving from outside
/// and one in `output` for connections this host makes to its own public address. No SNAT
/// rule is needed for the way back: replies belong to the DNAT'ed connection, and conntrack
/// rewrites their source to the public address. Forwards (and the mappings onto their
/// addresses) are translated straight to their backends the same way.
pub fn render(config: &NatConfig) -> Result<Rendered, NatError> {
    config.validate()?;
    let rules = rule_bodies(config);
    // The digest covers the rule bodies and the chain layout version, not the comment that
    // carries it, so it is stable for a given configuration.
    let mut hasher = Sha256::new();
    hasher.update(b"trellis-nat v1\n");
    hasher.update(config.table.as_bytes());
    for rule in &rules {
        hasher.update(b"\n");
        hasher.update(rule.as_bytes());
    }
    let digest: String = hasher.finalize().iter().take(12).fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    });
    let comment = format!("comment \"{COMMENT_PREFIX}{digest}\"");

    let mut definition = String::new();
    let table = &config.table;
    let _ = writeln!(definition, "table inet {table} {{");
    for (chain, hook, priority) in [("prerouting", "prerouting", "dstnat"), ("output", "output", "-100")] {
        let _ = writeln!(definition, "\tchain {chain} {{");
        let _ = writeln!(definition, "\t\ttype nat hook {hook} priority {priority}; policy accept;");
        for rule in &rules {
            let _ = writeln!(definition, "\t\t{rule} {comment}");
        }
        let _ = writeln!(definition, "\t}}");
    }
    let _ = writeln!(definition, "}}");

    // `table` on its own creates the table when absent (and is a no-op otherwise), so the
    // `delete` that follows never fails; all three lines are one transaction.
    let script = format!("table inet {table}\ndelete table inet {table}\n{definition}");
    Ok(Rendered { table: table.clone(), definition, script, digest, rule_count: rules.len() * 2 })
}

/// The match and the DNAT of every rule, without comments, in one chain's order.
///
/// A mapping onto the address of a forward that has backends is translated straight to the
/// backends: the kernel translates a connection once, so translating it to the forward's
/// address first would leave it there. A forward without backends gets no rule, and mappings
/// onto it land on its address, where nothing listens, so clients are refused.
fn rule_bodies(config: &NatConfig) -> Vec<String> {
    let live = |addr: SocketAddr, protocol: NatProtocol| {
        config.forwards.iter().find(|f| f.listen == addr && f.protocol == protocol && !f.backends.is_empty())
    };
    // A NAT chain sees only the first packet of a connection, so each rule's counter counts
    // the connections it translated (`NatController::translated` reads them).
    let mappings = config.mappings.iter().map(|mapping| match live(mapping.anchor, mapping.protocol) {
        Some(forward) => {
            format!("{} counter {}", matches(mapping.public, mapping.protocol), to_backends(forward))
        }
        None => format!("{} counter {}", matches(mapping.public, mapping.protocol), to_one(mapping.anchor)),
    });
    let forwards = config.forwards.iter().filter(|f| !f.backends.is_empty()).map(|forward| {
        format!("{} counter {}", matches(forward.listen, forward.protocol), to_backends(forward))
    });
    mappings.chain(forwards).collect()
}

/// `ip daddr 2.3.4.10 tcp dport 443`
fn matches(addr: SocketAddr, protocol: NatProtocol) -> String {
    format!("{} daddr {} {} dport {}", family(addr), addr.ip(), protocol.keyword(), addr.port())
}

/// `dnat ip to 127.0.1.2:443`
fn to_one(target: SocketAddr) -> String {
    let written = match target {
        SocketAddr::V4(addr) => addr.to_string(),
        SocketAddr::V6(addr) => format!("[{}]:{}", addr.ip(), addr.port()),
    };
    format!("dnat {} to {written}", family(target))
}

/// One backend: as [`to_one`]; several: a map from a per-rule counter, so new connections
/// take turns (`dnat ip to numgen inc mod 2 map { 0 : 10.0.0.1 . 22, 1 : 10.0.0.2 . 22 }`).
fn to_backends(forward: &NatForward) -> String {
    match forward.backends.as_slice() {
        [one] => to_one(*one),
        many => {
            let entries: Vec<String> =
                many.iter().enumerate().map(|(i, b)| format!("{i} : {} . {}", b.ip(), b.port())).collect();
            format!(
                "dnat {} to numgen inc mod {} map {{ {} }}",
                family(forward.listen),
                many.len(),
                entries.join(", ")
            )
        }
    }
}

fn family(addr: SocketAddr) -> &'static str {
    if addr.is_ipv4() { "ip" } else { "ip6" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NatMapping;

    fn mapping(public: &str, anchor: &str, protocol: NatProtocol) -> NatMapping {
        NatMapping { public: public.parse().unwrap(), anchor: anchor.parse().unwrap(), protocol }
    }

    #[test]
    fn renders_dnat_in_prerouting_and_output() {
        let config = NatConfig {
            mappings: vec![
                mapping("2.3.4.10:443", "127.0.1.2:443", NatProtocol::Tcp),
                mapping("[2001:db8::10]:53", "[::1]:5353", NatProtocol::Udp),
            ],
            ..NatConfig::default()
        };
        let rendered = render(&config).unwrap();
        assert_eq!(rendered.rule_count, 4);
        let comment = format!("comment \"trellis:{}\"", rendered.digest);
        let expected = format!(
            "table inet trellis_ingress {{\n\
             \tchain prerouting {{\n\
             \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
             \t\tip daddr 2.3.4.10 tcp dport 443 counter dnat ip to 127.0.1.2:443 {comment}\n\
             \t\tip6 daddr 2001:db8::10 udp dport 53 counter dnat ip6 to [::1]:5353 {comment}\n\
             \t}}\n\
             \tchain output {{\n\
             \t\ttype nat hook output priority -100; policy accept;\n\
             \t\tip daddr 2.3.4.10 tcp dport 443 counter dnat ip to 127.0.1.2:443 {comment}\n\
             \t\tip6 daddr 2001:db8::10 udp dport 53 counter dnat ip6 to [::1]:5353 {comment}\n\
             \t}}\n\
             }}\n"
        );
        assert_eq!(rendered.definition, expected);
        assert!(rendered.script.starts_with(
            "table inet trellis_ingress\ndelete table inet trellis_ingress\ntable inet trellis_ingress {"
        ));
    }

    #[test]
    fn digest_follows_the_configuration() {
        let one = NatConfig {
            mappings: vec![mapping("2.3.4.10:443", "127.0.1.2:443", NatProtocol::Tcp)],
            ..NatConfig::default()
        };
        let mut other = one.clone();
        other.mappings[0].anchor = "127.0.1.3:443".parse().unwrap();
        assert_eq!(render(&one).unwrap().digest, render(&one.clone()).unwrap().digest);
        assert_ne!(render(&one).unwrap().digest, render(&other).unwrap().digest);
    }

    fn forward(listen: &str, backends: &[&str]) -> NatForward {
        NatForward {
            listen: listen.parse().unwrap(),
            backends: backends.iter().map(|b| b.parse().unwrap()).collect(),
            protocol: NatProtocol::Tcp,
        }
    }

    /// The rule bodies of the prerouting chain (the output chain repeats them).
    fn prerouting(rendered: &Rendered) -> Vec<String> {
        let comment = format!(" comment \"trellis:{}\"", rendered.digest);
        let chain = rendered.definition.split("chain output").next().unwrap();
        chain
            .lines()
            .filter(|line| line.contains("dnat"))
            .map(|line| line.trim().strip_suffix(&comment).unwrap().to_owned())
            .collect()
    }

    #[test]
    fn forwards_go_straight_to_their_backends_in_turn() {
        let config = NatConfig {
            mappings: vec![
                mapping("2.3.4.10:2202", "127.0.1.3:2202", NatProtocol::Tcp),
                mapping("2.3.4.10:443", "127.0.1.2:443", NatProtocol::Tcp),
            ],
            forwards: vec![
                forward("127.0.1.3:2202", &["127.0.0.1:2201", "127.0.0.1:2203"]),
                forward("[2001:db8::10]:22", &["[2001:db8::1]:22"]),
            ],
            ..NatConfig::default()
        };
        let rendered = render(&config).unwrap();
        let pair = "numgen inc mod 2 map { 0 : 127.0.0.1 . 2201, 1 : 127.0.0.1 . 2203 }";
        assert_eq!(
            prerouting(&rendered),
            [
                format!("ip daddr 2.3.4.10 tcp dport 2202 counter dnat ip to {pair}"),
                "ip daddr 2.3.4.10 tcp dport 443 counter dnat ip to 127.0.1.2:443".to_owned(),
                format!("ip daddr 127.0.1.3 tcp dport 2202 counter dnat ip to {pair}"),
                "ip6 daddr 2001:db8::10 tcp dport 22 counter dnat ip6 to [2001:db8::1]:22".to_owned(),
            ]
        );
        assert_eq!(rendered.rule_count, 8);
        assert!(config.has_loopback_anchor());

        // A backend leaving changes the rules and the digest.
        let mut fewer = config.clone();
        fewer.forwards[0].backends.pop();
        let after = render(&fewer).unwrap();
        assert_ne!(after.digest, rendered.digest);
        assert_eq!(
            prerouting(&after)[0],
            "ip daddr 2.3.4.10 tcp dport 2202 counter dnat ip to 127.0.0.1:2201"
        );
    }

    #[test]
    fn a_forward_without_backends_leaves_its_mappings_on_its_address() {
        let config = NatConfig {
            mappings: vec![mapping("2.3.4.10:2202", "127.0.1.3:2202", NatProtocol::Tcp)],
            forwards: vec![forward("127.0.1.3:2202", &[])],
            ..NatConfig::default()
        };
        let rendered = render(&config).unwrap();
        assert_eq!(
            prerouting(&rendered),
            ["ip daddr 2.3.4.10 tcp dport 2202 counter dnat ip to 127.0.1.3:2202"]
        );
        assert_eq!(rendered.rule_count, 2);

        // Forwards alone still make a table; nothing at all makes none.
        let alone = NatConfig { forwards: vec![forward("127.0.1.3:2202", &[])], ..NatConfig::default() };
        assert!(!alone.is_empty());
        assert!(NatConfig::default().is_empty());
    }

    #[test]
    fn refuses_inconsistent_forwards() {
        let cases = [
            (vec![forward("127.0.1.3:22", &["[::1]:22"])], "another address family"),
            (vec![forward("127.0.1.3:22", &["127.0.0.1:0"])], "port 0"),
            (
                vec![forward("127.0.1.3:22", &["127.0.0.1:22"]), forward("127.0.1.3:22", &[])],
                "forwards[1] (tcp 127.0.1.3:22): the address is mapped or forwarded twice",
            ),
            (vec![forward("2.3.4.10:443", &["127.0.0.1:22"])], "mapped or forwarded twice"),
        ];
        for (forwards, expected) in cases {
            let config = NatConfig {
                mappings: vec![mapping("2.3.4.10:443", "127.0.1.2:443", NatProtocol::Tcp)],
                forwards,
                ..NatConfig::default()
            };
            let message = render(&config).unwrap_err().to_string();
            assert!(message.contains(expected), "{message} should say {expected:?}");
        }
    }

    #[test]
    fn refuses_inconsistent_mappings() {
        let mixed = NatConfig {
            mappings: vec![mapping("2.3.4.10:443", "[::1]:443", NatProtocol::Tcp)],
            ..NatConfig::default()
        };
        let message = render(&mixed).unwrap_err().to_string();
        assert!(message.contains("different address families"), "{message}");

        let twice = NatConfig {
            mappings: vec![
                mapping("2.3.4.10:443", "127.0.1.2:443", NatProtocol::Tcp),
                mapping("2.3.4.10:443", "127.0.1.3:443", NatProtocol::Tcp),
            ],
            ..NatConfig::default()
        };
        let message = render(&twice).unwrap_err().to_string();
        assert!(message.contains("mappings[1]: tcp 2.3.4.10:443 is mapped twice"), "{message}");

        let bad_table = NatConfig { table: "x; flush ruleset".into(), ..NatConfig::default() };
        assert!(render(&bad_table).unwrap_err().to_string().contains("table name"));
    }
}
