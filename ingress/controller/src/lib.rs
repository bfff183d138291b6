//! The ingress controller: runs the portal's front door in a process. It serves the proxy
//! (`trellis-ingress`) from a YAML configuration that reloads live, keeps the NAT in front of
//! it (`trellis-nat`) in step with that configuration, and serves node ingress: the routes
//! `Materialize.NewIngress` writes to the state store, removed again by `DeleteIngress`.
//!
//! # Layout
//! - `controller`: [`IngressController::start`] and [`RunningIngress`], the handle; the
//!   shutdown order.
//! - `options`: [`ControllerOptions`], [`NodeIngressOptions`], [`NodeBackend`] (where a node's
//!   port is reached) and [`default_config`] for a single machine.
//! - `reload`: reading the file at start, on change, on SIGHUP and on request.
//! - `watch`: list and watch of `/trellis/ingress/routes/`, with a full resync after errors.
//! - `plan`: pure decisions: what serves a node route, whether it fits the configuration, the
//!   merged configuration a reload applies.
//! - `nodes`: the node routes served, brought in line with the records one key at a time.
//! - `udp`: [`UdpForwarder`], since the proxy forwards only TCP.
//! - `nat`: applying, changing and removing the NAT.
//!
//! # How node routes are served
//! A record `/trellis/ingress/routes/<mzid>/<node>/<proto>/<port>` becomes a pool named
//! `node/<mzid>/<node>/<proto>/<port>` with the node's address ([`NodeBackend`]) and:
//! - http and https: a route on the [`NodeIngressOptions::https_endpoint`] endpoint for the
//!   path prefix `/<mzid>/<node>/<port>/` (the URL the materialize service hands out), any host;
//! - tcp: an endpoint of its own on `gateway_ip:<gateway_port>`;
//! - udp: a [`UdpForwarder`] on `gateway_ip:<gateway_port>`.
//!
//! # Running it
//! ```no_run
//! # async fn run(store: std::sync::Arc<dyn trellis_store::Store>) -> Result<(), trellis_ingress_controller::ControllerError> {
//! use trellis_ingress_controller::{ControllerOptions, IngressController, default_config};
//! let mut options = ControllerOptions::new(store);
//! options.config_path = Some("/etc/trellis/ingress.yml".into());
//! // Served until the file exists (and instead of it, when there is no file at all).
//! options.config = Some(default_config("127.0.0.1:7443".parse().unwrap(), None));
//! let cancel = tokio_util::sync::CancellationToken::new();
//! let running = IngressController::start(options, cancel.clone()).await?;
//! let https = running.local_addr(trellis_ingress_controller::NODE_HTTPS_ENDPOINT);
//! // ... on SIGTERM:
//! cancel.cancel();
//! running.stopped().await; // the NAT is gone, the proxy drained
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//! - A record's route is served once [`RunningIngress::synced`] reaches the revision that
//!   wrote it, and is gone once it reaches the revision that deleted it (unless it cannot be
//!   served: then [`RunningIngress::node_status`] says why, and it is retried every
//!   `retry_every`).
//! - After a watch error or compaction the records are listed again and the served routes
//!   made to match, so no change is lost.
//! - A reload that fails (invalid YAML, with line and column; an endpoint that cannot bind)
//!   changes nothing; node routes survive reloads; open connections survive both.
//! - The NAT is applied before [`IngressController::start`] returns and removed before
//!   [`RunningIngress::stopped`] resolves.
//!
//! # Assumptions
//! - One controller per store serves node ingress on a machine: gateway ports are claimed in
//!   the store, but two controllers on one host would both try to bind them.
//! - The NAT needs `nft` and `CAP_NET_ADMIN`, and runs in the network namespace of the
//!   runtime's threads.
//!
//! # Caveats
//! - An https node route reaches the node's port over TLS, unverified (nodes have self-signed
//!   certificates). Node routes strip their path prefix; the node learns it from
//!   `X-Forwarded-Prefix`.
//! - SIGHUP with an unchanged file re-applies it, which re-reads nothing the proxy has already
//!   loaded (certificate files are read when their endpoint changes).

mod controller;
mod error;
mod nat;
mod nodes;
mod options;
mod plan;
mod reload;
mod udp;
mod watch;

pub use controller::{IngressController, RunningIngress};
pub use error::ControllerError;
pub use nodes::NodeStatus;
pub use options::{
    ControllerOptions, InfranetBackend, NODE_HTTPS_ENDPOINT, NODE_NAME_PREFIX, NodeBackend,
    NodeIngressOptions, default_config,
};
pub use reload::ReloadStatus;
pub use trellis_ingress::{Ingress, IngressConfig};
pub use trellis_materialize::{IngressProtocol, IngressRoute as NodeRoute};
pub use udp::UdpForwarder;

#[cfg(test)]
mod tests {
    /// Binaries keep these in tasks and return the error through `anyhow`.
    #[test]
    fn handles_and_errors_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<super::RunningIngress>();
        check::<super::ControllerError>();
        check::<super::ControllerOptions>();
    }
}
