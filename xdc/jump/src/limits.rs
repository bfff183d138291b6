//! Per-user connection slots and the jump host's counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters since the jump host started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JumpStats {
    /// TCP connections accepted.
    pub connections_accepted: u64,
    /// Connections open now (authenticated or not).
    pub connections_open: u64,
    /// Connections that authenticated.
    pub logins: u64,
    /// Login attempts refused (bad key or certificate, inactive account, connection limit,
    /// auth timeout). A connection that gave up after refusals russh made on its own (an
    /// expired or forged certificate) counts once.
    pub login_refusals: u64,
    /// Logins refused because the user already held the maximum number of connections.
    pub limit_refusals: u64,
    /// `direct-tcpip` channels spliced to a target.
    pub channels_opened: u64,
    /// Channel opens and global requests refused (policy, unreachable target, or a kind of
    /// channel or request the jump host does not offer).
    pub channel_refusals: u64,
    /// Bytes copied from clients to targets.
    pub bytes_to_targets: u64,
    /// Bytes copied from targets to clients.
    pub bytes_to_clients: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_open: AtomicU64,
    pub(crate) logins: AtomicU64,
    pub(crate) login_refusals: AtomicU64,
    pub(crate) limit_refusals: AtomicU64,
    pub(crate) channels_opened: AtomicU64,
    pub(crate) channel_refusals: AtomicU64,
    pub(crate) bytes_to_targets: AtomicU64,
    pub(crate) bytes_to_clients: AtomicU64,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> JumpStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        JumpStats {
            connections_accepted: get(&self.connections_accepted),
            connections_open: get(&self.connections_open),
            logins: get(&self.logins),
            login_refusals: get(&self.login_refusals),
            limit_refusals: get(&self.limit_refusals),
            channels_opened: get(&self.channels_opened),
            channel_refusals: get(&self.channel_refusals),
            bytes_to_targets: get(&self.bytes_to_targets),
            bytes_to_clients: get(&self.bytes_to_clients),
        }
    }
}

/// Authenticated connections per user, capped.
pub(crate) struct UserLimits {
    max: usize,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// One of a user's connection slots; returned when dropped (the connection ended).
pub(crate) struct UserSlot {
    user: String,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl UserLimits {
    pub(crate) fn new(max: usize) -> UserLimits {
        UserLimits { max, held: Arc::default() }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Takes a slot for `user`, or `None` when they already hold the maximum.
    pub(crate) fn acquire(&self, user: &str) -> Option<UserSlot> {
        let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = held.entry(user.to_owned()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(UserSlot { user: user.to_owned(), held: self.held.clone() })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = held.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_user_and_returned_on_drop() {
        let limits = UserLimits::new(2);
        let a1 = limits.acquire("alice").unwrap();
        let _a2 = limits.acquire("alice").unwrap();
        assert!(limits.acquire("alice").is_none());
        let _b1 = limits.acquire("bob").unwrap();
        drop(a1);
        assert!(limits.acquire("alice").is_some());
    }
}
