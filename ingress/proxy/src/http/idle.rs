//! A backend's idle connections, kept for reuse: hyper's senders on the hyper path, streams on
//! the fast path.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A connection idle longer than this is not reused (the backend may be about to close it).
const MAX_IDLE: Duration = Duration::from_secs(60);
/// Idle connections kept per backend; more are closed when they come back.
const MAX_IDLE_PER_BACKEND: usize = 512;

/// Idle connections, most recently used last.
pub(crate) struct IdleList<T>(Mutex<Vec<(T, Instant)>>);

impl<T> Default for IdleList<T> {
    fn default() -> Self {
        IdleList(Mutex::new(Vec::new()))
    }
}

impl<T> std::fmt::Debug for IdleList<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleList").finish_non_exhaustive()
    }
}

impl<T> IdleList<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(T, Instant)>> {
        // A push or pop cannot leave the list inconsistent.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recently used connection that is `usable`; older or unusable ones met on the
    /// way are dropped (closed).
    pub(crate) fn take(&self, usable: impl Fn(&T) -> bool) -> Option<T> {
        let mut idle = self.lock();
        while let Some((connection, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE && usable(&connection) {
                return Some(connection);
            }
        }
        None
    }

    pub(crate) fn put(&self, connection: T) {
        let now = Instant::now();
        let mut idle = self.lock();
        // The oldest connections sit at the bottom when traffic never needs them; close those
        // the backend may be about to close anyway.
        if idle.first().is_some_and(|(_, since)| now.duration_since(*since) >= MAX_IDLE) {
            idle.remove(0);
        }
        if idle.len() < MAX_IDLE_PER_BACKEND {
            idle.push((connection, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_usable_connection_comes_first_and_unusable_ones_are_dropped() {
        let list = IdleList::default();
        for n in 1..=4 {
            list.put(n);
        }
        assert_eq!(list.take(|_| true), Some(4));
        // 3 is unusable: dropped on the way to 2.
        assert_eq!(list.take(|&n| n != 3), Some(2));
        assert_eq!(list.take(|_| true), Some(1));
        assert_eq!(list.take(|_| true), None);
        for n in 0..MAX_IDLE_PER_BACKEND + 10 {
            list.put(n);
        }
        assert_eq!(list.lock().len(), MAX_IDLE_PER_BACKEND, "the list is bounded");
    }
}
