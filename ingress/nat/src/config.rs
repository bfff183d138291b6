//! The NAT configuration: plain data, read from the ingress YAML or built in code.

use std::collections::HashSet;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::error::NatError;

/// The table name used when the configuration does not give one.
pub const DEFAULT_TABLE: &str = "trellis_ingress";

/// Which public `address:port` pairs lead to which anchors.
///
/// Unknown keys are refused: a misspelt key would silently drop a mapping, and a missing NAT
/// rule is an outage that no log explains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatConfig {
    /// The nftables table (family `inet`) this controller owns; nothing else is touched.
    #[serde(default = "default_table")]
    pub table: String,
    /// Set `net.ipv4.conf.all.route_localnet` when an anchor is a loopback address.
    #[serde(default = "default_true")]
    pub route_localnet: bool,
    /// The mappings; with no mappings and no forwards there is no table at all.
    #[serde(default)]
    pub mappings: Vec<NatMapping>,
    /// Connections the kernel forwards straight to backends, with no proxy in between. Not
    /// read from YAML: the ingress controller fills this in from its `forward: kernel`
    /// endpoints and the health of their pools, and renders it again when that changes.
    #[serde(skip)]
    pub forwards: Vec<NatForward>,
}

/// Connections to `listen` (and to every public address mapped onto it) sent by the kernel
/// to one of `backends`, taking turns per connection.
///
/// The backend sees the client's own address, so it needs no PROXY protocol; in exchange its
/// replies must route back through this host (true for backends on this host or on a bridge
/// behind it), where conntrack undoes the translation. With no backends, connections go to
/// `listen` itself, where nothing listens, and are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatForward {
    /// The address clients (or mappings) connect to; nothing needs to listen there.
    pub listen: SocketAddr,
    /// Where connections go, in turn; only the healthy ones.
    pub backends: Vec<SocketAddr>,
    /// The transport protocol; TCP unless stated.
    #[serde(default)]
    pub protocol: NatProtocol,
}

/// One public `address:port` forwarded to an anchor `address:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatMapping {
    /// Where clients connect (the endpoint's public address).
    pub public: SocketAddr,
    /// Where the proxy listens.
    pub anchor: SocketAddr,
    /// The transport protocol; TCP unless stated.
    #[serde(default)]
    pub protocol: NatProtocol,
}

/// The transport protocol of a mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatProtocol {
    /// TCP (the API, SSH, web).
    #[default]
    Tcp,
    /// UDP (node ingress for UDP services).
    Udp,
}

impl NatProtocol {
    /// The keyword nftables uses for the protocol.
    pub fn keyword(self) -> &'static str {
        match self {
            NatProtocol::Tcp => "tcp",
            NatProtocol::Udp => "udp",
        }
    }
}

impl Default for NatConfig {
    fn default() -> Self {
        NatConfig { table: default_table(), route_localnet: true, mappings: Vec::new(), forwards: Vec::new() }
    }
}

impl NatConfig {
    /// Checks what nftables would otherwise refuse halfway through, with a message naming the
    /// mapping: table names, address families, and two mappings claiming one public port.
    pub fn validate(&self) -> Result<(), NatError> {
        validate_table_name(&self.table)?;
        let mut seen = HashSet::new();
        for (index, mapping) in self.mappings.iter().enumerate() {
            if mapping.public.is_ipv4() != mapping.anchor.is_ipv4() {
                return Err(NatError::Invalid(format!(
                    "mappings[{index}]: public {} and anchor {} are of different address families",
                    mapping.public, mapping.anchor
                )));
            }
            if mapping.public.port() == 0 || mapping.anchor.port() == 0 {
                return Err(NatError::Invalid(format!("mappings[{index}]: port 0 is not a real port")));
            }
            if !seen.insert((mapping.public, mapping.protocol)) {
                return Err(NatError::Invalid(format!(
                    "mappings[{index}]: {} {} is mapped twice",
                    mapping.protocol.keyword(),
                    mapping.public
                )));
            }
        }
        for (index, forward) in self.forwards.iter().enumerate() {
            let at = || format!("forwards[{index}] ({} {})", forward.protocol.keyword(), forward.listen);
            if forward.listen.port() == 0 || forward.backends.iter().any(|b| b.port() == 0) {
                return Err(NatError::Invalid(format!("{}: port 0 is not a real port", at())));
            }
            if let Some(backend) = forward.backends.iter().find(|b| b.is_ipv4() != forward.listen.is_ipv4()) {
                return Err(NatError::Invalid(format!(
                    "{}: backend {backend} is of another address family",
                    at()
                )));
            }
            // A public address of a mapping is matched by the mapping's own rule.
            if !seen.insert((forward.listen, forward.protocol)) {
                return Err(NatError::Invalid(format!("{}: the address is mapped or forwarded twice", at())));
            }
        }
        Ok(())
    }

    /// Whether any packet may be translated to a loopback address (needs `route_localnet`).
    pub fn has_loopback_anchor(&self) -> bool {
        let anchors = self.mappings.iter().map(|m| m.anchor);
        let backends = self.forwards.iter().flat_map(|f| f.backends.iter().copied());
        anchors.chain(backends).any(|addr| addr.ip().is_loopback())
    }

    /// Whether the configuration asks for any rule (otherwise there is no table).
    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty() && self.forwards.is_empty()
    }
}

/// Table names go into an `nft` script unquoted, so only identifier characters are allowed.
pub(crate) fn validate_table_name(name: &str) -> Result<(), NatError> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_well || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 64 {
        return Err(NatError::Invalid(format!(
            "table name {name:?} must start with a letter and hold only letters, digits and '_' (at most 64)"
        )));
    }
    Ok(())
}

fn default_table() -> String {
    DEFAULT_TABLE.to_owned()
}

fn default_true() -> bool {
    true
}
