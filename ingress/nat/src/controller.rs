//! Applies a rendered NAT table with the `nft` command and removes it again.
//!
//! The controller is blocking (it runs `nft` as a child process and waits): applies are rare,
//! and a blocking call can be made from a thread that has entered another network namespace,
//! which the child process then inherits. Async callers use `spawn_blocking`.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::config::{NatConfig, validate_table_name};
use crate::error::NatError;
use crate::render::{COMMENT_PREFIX, Rendered, render};

const ROUTE_LOCALNET: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

/// What [`NatController::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The table did not exist and was created.
    Created,
    /// The table existed with other contents and was replaced in one transaction.
    Replaced,
    /// The table already held exactly this configuration; nothing was written.
    Unchanged,
    /// The configuration has no mappings and the table was deleted.
    Removed,
}

/// Owns one nftables table (family `inet`) and nothing else.
#[derive(Debug, Clone)]
pub struct NatController {
    table: String,
    nft: String,
}

impl NatController {
    /// A controller for `table`; every command it runs names this table and no other.
    pub fn new(table: impl Into<String>) -> Result<Self, NatError> {
        let table = table.into();
        validate_table_name(&table)?;
        Ok(NatController { table, nft: "nft".to_owned() })
    }

    /// A controller for the table `config` names.
    pub fn for_config(config: &NatConfig) -> Result<Self, NatError> {
        Self::new(config.table.clone())
    }

    /// The table this controller owns.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Makes the kernel's NAT match `config`: replaces the table atomically unless it already
    /// holds exactly this configuration, and deletes it when `config` asks for no rule.
    pub fn apply(&self, config: &NatConfig) -> Result<ApplyOutcome, NatError> {
        if config.table != self.table {
            return Err(NatError::Invalid(format!(
                "this controller owns table {:?}, the configuration names {:?}",
                self.table, config.table
            )));
        }
        let rendered = render(config)?;
        if config.is_empty() {
            return Ok(if self.remove()? { ApplyOutcome::Removed } else { ApplyOutcome::Unchanged });
        }
        if config.route_localnet && config.has_loopback_anchor() {
            enable_route_localnet(Path::new(ROUTE_LOCALNET))?;
        }
        let current = self.list()?;
        if let Some(listing) = &current
            && listing_matches(listing, &rendered)?
        {
            return Ok(ApplyOutcome::Unchanged);
        }
        self.run_script(&rendered.script)?;
        let outcome = if current.is_some() { ApplyOutcome::Replaced } else { ApplyOutcome::Created };
        tracing::info!(table = %self.table, digest = %rendered.digest, ?outcome, "applied the ingress NAT");
        Ok(outcome)
    }

    /// Deletes the table; `false` when it did not exist. Other tables are never touched.
    pub fn remove(&self) -> Result<bool, NatError> {
        if self.list()?.is_none() {
            return Ok(false);
        }
        let table = &self.table;
        // Create-then-delete in one transaction cannot fail if another actor removed the table
        // between our listing and this command.
        self.run_script(&format!("table inet {table}\ndelete table inet {table}\n"))?;
        tracing::info!(table = %self.table, "removed the ingress NAT");
        Ok(true)
    }

    /// The connections each destination's rules translated since the table was last written
    /// (empty when there is no table).
    pub fn translated(&self) -> Result<Vec<crate::Translated>, NatError> {
        match self.list()? {
            Some(listing) => crate::counters::parse(&listing),
            None => Ok(Vec::new()),
        }
    }

    /// The table as `nft -j list table` prints it, or `None` when it does not exist.
    pub fn list(&self) -> Result<Option<String>, NatError> {
        let args = ["-j", "list", "table", "inet", self.table.as_str()];
        let output = Command::new(&self.nft)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| NatError::Spawn { program: self.nft.clone(), source })?;
        if output.status.success() {
            return Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        // nft reports a missing table as ENOENT; anything else is a real failure.
        if stderr.contains("No such file or directory") {
            return Ok(None);
        }
        Err(NatError::Nft { command: format!("nft {}", args.join(" ")), stderr: stderr.trim().to_owned() })
    }

    fn run_script(&self, script: &str) -> Result<(), NatError> {
        let mut child = Command::new(&self.nft)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| NatError::Spawn { program: self.nft.clone(), source })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(|source| NatError::Spawn { program: self.nft.clone(), source })?;
        }
        let output = child
            .wait_with_output()
            .map_err(|source| NatError::Spawn { program: self.nft.clone(), source })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(NatError::Nft {
                command: "nft -f -".to_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }
}

/// Whether the live table (as `nft -j` lists it) is exactly what `rendered` would create:
/// the two NAT base chains and nothing else, and the expected number of rules, each carrying
/// the configuration's digest. A rule added or removed by hand makes this false, so the next
/// apply repairs the table.
fn listing_matches(listing: &str, rendered: &Rendered) -> Result<bool, NatError> {
    let parsed: Value = serde_json::from_str(listing).map_err(NatError::Listing)?;
    let Some(items) = parsed.get("nftables").and_then(Value::as_array) else {
        return Ok(false);
    };
    let expected_comment = format!("{COMMENT_PREFIX}{}", rendered.digest);
    let mut chains = Vec::new();
    let mut rules = 0;
    for item in items {
        if let Some(chain) = item.get("chain") {
            let field = |key: &str| chain.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
            chains.push((field("name"), field("type"), field("hook")));
        } else if let Some(rule) = item.get("rule") {
            if rule.get("comment").and_then(Value::as_str) != Some(expected_comment.as_str()) {
                return Ok(false);
            }
            rules += 1;
        } else if item.get("metainfo").is_none() && item.get("table").is_none() {
            // A set, map, flowtable or anything else we never create.
            return Ok(false);
        }
    }
    chains.sort();
    let expected_chains = [("output", "nat", "output"), ("prerouting", "nat", "prerouting")]
        .map(|(name, kind, hook)| (name.to_owned(), kind.to_owned(), hook.to_owned()));
    Ok(chains == expected_chains && rules == rendered.rule_count)
}

/// Lets packets arriving on a real interface be routed to a loopback anchor.
fn enable_route_localnet(path: &Path) -> Result<(), NatError> {
    let current =
        std::fs::read_to_string(path).map_err(|source| NatError::Sysctl { path: path.to_owned(), source })?;
    if current.trim() == "1" {
        return Ok(());
    }
    std::fs::write(path, "1\n").map_err(|source| NatError::Sysctl { path: path.to_owned(), source })?;
    tracing::info!(path = %path.display(), "enabled route_localnet for loopback anchors");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NatMapping, NatProtocol};

    fn config() -> NatConfig {
        NatConfig {
            mappings: vec![NatMapping {
                public: "2.3.4.10:443".parse().unwrap(),
                anchor: "127.0.1.2:443".parse().unwrap(),
                protocol: NatProtocol::Tcp,
            }],
            ..NatConfig::default()
        }
    }

    fn listing(comment: &str, extra_rule: bool) -> String {
        let rule = |chain: &str, handle: u32| {
            format!(
                r#"{{"rule": {{"family": "inet", "table": "trellis_ingress", "chain": "{chain}", "handle": {handle}, "comment": "{comment}", "expr": []}}}}"#
            )
        };
        let mut items = vec![
            r#"{"metainfo": {"version": "1.0.6"}}"#.to_owned(),
            r#"{"table": {"family": "inet", "name": "trellis_ingress", "handle": 7}}"#.to_owned(),
            r#"{"chain": {"family": "inet", "table": "trellis_ingress", "name": "prerouting", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}"#.to_owned(),
            r#"{"chain": {"family": "inet", "table": "trellis_ingress", "name": "output", "handle": 2, "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}}"#.to_owned(),
            rule("prerouting", 3),
            rule("output", 4),
        ];
        if extra_rule {
            items.push(rule("output", 5));
        }
        format!(r#"{{"nftables": [{}]}}"#, items.join(", "))
    }

    #[test]
    fn a_listing_of_the_same_configuration_matches() {
        let rendered = render(&config()).unwrap();
        let comment = format!("trellis:{}", rendered.digest);
        assert!(listing_matches(&listing(&comment, false), &rendered).unwrap());
    }

    #[test]
    fn another_digest_or_an_extra_rule_does_not_match() {
        let rendered = render(&config()).unwrap();
        let comment = format!("trellis:{}", rendered.digest);
        assert!(!listing_matches(&listing("trellis:0000", false), &rendered).unwrap());
        assert!(!listing_matches(&listing(&comment, true), &rendered).unwrap());
    }

    #[test]
    fn a_controller_refuses_another_table() {
        let controller = NatController::new("trellis_ingress").unwrap();
        let mut other = config();
        other.table = "someone_else".into();
        assert!(controller.apply(&other).unwrap_err().to_string().contains("owns table"));
    }
}
