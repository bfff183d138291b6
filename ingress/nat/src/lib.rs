//! The ingress NAT: public `address:port` pairs mapped onto local *anchor* addresses (such as
//! `127.0.1.2:443`) where the ingress proxy listens, kept as one nftables table that this crate
//! owns.
//!
//! This crate only renders and applies rules; it knows nothing about the proxy, and it never
//! reads, changes or deletes a table other than its own.
//!
//! # Layout
//! - `config`: [`NatConfig`], [`NatMapping`] and [`NatForward`], the plain-data description
//!   (YAML or code; forwards, which follow backend health, only from code).
//! - `render`: [`render`], config → `nft -f` script, pure and unit-tested.
//! - `controller`: [`NatController`], which runs `nft` to apply the script in one transaction,
//!   skips the apply when the table already holds exactly this configuration, and removes
//!   the table on shutdown.
//! - `counters`: [`Translated`], the connections each destination's rules translated (every
//!   rule counts; a NAT chain sees only a connection's first packet).
//!
//! # Guarantees
//! - Apply is atomic: the script deletes and re-creates only our table in one `nft -f`
//!   transaction, so packets see either the old rules or the new ones.
//! - Apply is idempotent: every rule carries the configuration's digest in its comment; when
//!   the live table has exactly the expected rules with that digest, nothing is written.
//! - Remove deletes only our table and succeeds when it is already gone.
//!
//! # Assumptions
//! - `nft` (nftables ≥ 0.9.7) is on `PATH` and the process has `CAP_NET_ADMIN`.
//! - Anchors in `127.0.0.0/8` need `net.ipv4.conf.all.route_localnet = 1`, or the kernel drops
//!   packets that arrive on a real interface for a loopback address; the controller sets it
//!   when [`NatConfig::route_localnet`] is on (the default).

mod config;
mod controller;
mod counters;
mod error;
mod render;

pub use config::{NatConfig, NatForward, NatMapping, NatProtocol};
pub use controller::{ApplyOutcome, NatController};
pub use counters::Translated;
pub use error::NatError;
pub use render::{Rendered, render};
