//! The ingress controller with real components: the embedded store and etcd, TCP, HTTP(S)
//! and UDP backends on loopback, a configuration file edited under it, and nftables in
//! network namespaces the test creates.

mod etcd;
mod nat;
mod node_routes;
mod reload;
mod resync;
mod support;
