//! trellis-testkit: helpers that start real components for Trellis's tests.
//!
//! Layout:
//! - [`etcd`]: a throwaway single-member etcd server ([`etcd::EtcdServer`]).
//! - [`netns`]: network namespaces joined by a veth pair ([`netns::PortalNet`]), and running
//!   threads and commands inside them.
//!
//! This crate is for tests only. It must not depend on Trellis's own crates (they depend on it
//! as a dev-dependency), so it speaks to components only through their public interfaces.

pub mod etcd;
pub mod netns;
