//! Configuration → `nft -f` script. Pure, so the exact rules are unit-tested without root.

use std::fmt::Write as _;
use std::net::SocketAddr;

use sha2::{Digest, Sha256};

use crate::config::{NatConfig, NatMapping};
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
/// rewrites their source to the public address.
pub fn render(config: &NatConfig) -> Result<Rendered, NatError> {
    config.validate()?;
    let rules: Vec<String> = config.mappings.iter().map(rule_body).collect();
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

/// The match and the DNAT of one mapping, without its comment.
fn rule_body(mapping: &NatMapping) -> String {
    let proto = mapping.protocol.keyword();
    let (family, public_ip) = match mapping.public {
        SocketAddr::V4(addr) => ("ip", addr.ip().to_string()),
        SocketAddr::V6(addr) => ("ip6", addr.ip().to_string()),
    };
    let anchor = match mapping.anchor {
        SocketAddr::V4(addr) => addr.to_string(),
        SocketAddr::V6(addr) => format!("[{}]:{}", addr.ip(), addr.port()),
    };
    format!(
        "{family} daddr {public_ip} {proto} dport {port} dnat {family} to {anchor}",
        port = mapping.public.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NatProtocol;

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
             \t\tip daddr 2.3.4.10 tcp dport 443 dnat ip to 127.0.1.2:443 {comment}\n\
             \t\tip6 daddr 2001:db8::10 udp dport 53 dnat ip6 to [::1]:5353 {comment}\n\
             \t}}\n\
             \tchain output {{\n\
             \t\ttype nat hook output priority -100; policy accept;\n\
             \t\tip daddr 2.3.4.10 tcp dport 443 dnat ip to 127.0.1.2:443 {comment}\n\
             \t\tip6 daddr 2001:db8::10 udp dport 53 dnat ip6 to [::1]:5353 {comment}\n\
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
