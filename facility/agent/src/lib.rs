//! The built-in container facility: a Facility API agent that runs each experiment node as a
//! `crun` container in its own network namespace on this machine.
//!
//! - Nodes: the host's `/usr` read-only (or an image's), a small writable disk as the root,
//!   sshd as the service, accounts and keys from the spec, cgroup limits for cores and memory.
//! - Infranet: a host bridge per materialization (the gateway is the subnet's first address);
//!   each node's `eth0` is a veth into it; `/etc/hosts` names every node.
//! - Experiment links: each interface a veth into a per-materialization switch namespace
//!   where every link (point-to-point or LAN) is a bridge; capacity with `tbf` on the node's
//!   egress, latency and loss with a delay line on the bridge (this kernel has no `netem`;
//!   see `delay.rs`); static routes along shortest paths on request.
//! - XDCs on this host: a veth from the infranet bridge into the XDC's namespace, with an
//!   address from the top of the subnet ([`Agent::attach_xdc`], [`Agent::detach_xdc`]).
//! - Lifecycle: state under the state directory, adoption on restart, a watchdog that brings
//!   dead containers back, teardown by name prefix (see [`Names`]).
//!
//! [`Agent`] is the engine; [`service`] wraps it as the `trellis.facility.v1.Facility` gRPC
//! service (the caller chooses the transport and its TLS).

mod agent;
mod cidr;
mod cmd;
mod container;
mod converge;
mod delay;
mod naming;
mod netns;
mod network;
mod plan;
mod rootfs;
mod routing;
mod service;
mod status;
mod sweep;
mod xdc;

pub use agent::{Agent, AgentConfig};
pub use naming::Names;
pub use service::{FacilityService, service};
