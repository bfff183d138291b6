//! trellis-testkit: helpers that start real components for Trellis's tests.
//!
//! Layout:
//! - [`etcd`]: a throwaway single-member etcd server ([`etcd::EtcdServer`]).
//!
//! This crate is for tests only. It must not depend on Trellis's own crates (they depend on it
//! as a dev-dependency), so it speaks to components only through their public interfaces.

pub mod etcd;
