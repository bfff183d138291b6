//! The NAT side: applying what the proxy asks for (`Ingress::nat`: the configuration's `nat`
//! section plus the `forward: kernel` endpoints with their healthy backends) with
//! `trellis-nat`, following reloads and health changes, and removing it on shutdown; and
//! keeping the rules' connection counts as running totals across rewrites of the table.
//!
//! `nft` runs on a blocking thread, which inherits the network namespace of the thread that
//! spawned it; a caller that runs the controller in a namespace runs its runtime there.

use std::collections::HashMap;
use std::net::SocketAddr;

use trellis_nat::{ApplyOutcome, NatConfig, NatController, NatError, NatProtocol, Translated};

/// The NAT this process applied, if any, and what its rules counted.
#[derive(Debug, Default)]
pub(crate) struct Nat {
    applied: Option<NatConfig>,
    /// Connections counted by tables this process has since rewritten or removed.
    before: HashMap<(SocketAddr, NatProtocol), u64>,
    /// What the current table's counters said when last read.
    current: HashMap<(SocketAddr, NatProtocol), u64>,
}

impl Nat {
    /// Makes the kernel's NAT match `wanted` (none: no table). Re-applying the same
    /// configuration writes nothing unless the table drifted.
    pub(crate) async fn apply(&mut self, wanted: Option<&NatConfig>) -> Result<(), NatError> {
        // Writing the table restarts its counters: read them first, so little goes uncounted.
        if self.applied.is_some()
            && let Err(err) = self.read_counters().await
        {
            tracing::debug!(error = %err, "could not read the NAT's counters before changing it");
        }
        if let Some(applied) = &self.applied
            && wanted.is_none_or(|w| w.table != applied.table)
        {
            // A renamed table: the old one would otherwise stay behind.
            let controller = NatController::for_config(applied)?;
            blocking(move || controller.remove()).await?;
            self.applied = None;
            self.counters_restarted();
        }
        let Some(wanted) = wanted.cloned() else { return Ok(()) };
        let controller = NatController::for_config(&wanted)?;
        let config = wanted.clone();
        let outcome = blocking(move || controller.apply(&config)).await?;
        tracing::debug!(table = %wanted.table, ?outcome, "ingress NAT applied");
        if outcome != ApplyOutcome::Unchanged {
            self.counters_restarted();
        }
        self.applied = Some(wanted);
        Ok(())
    }

    /// As [`Nat::apply`], but nothing happens when `wanted` is what this process applied last
    /// (health changes and node-route updates come often; most change no forward).
    pub(crate) async fn follow(&mut self, wanted: Option<&NatConfig>) -> Result<(), NatError> {
        if self.applied.as_ref() == wanted {
            return Ok(());
        }
        self.apply(wanted).await
    }

    /// Removes the table this process applied.
    pub(crate) async fn remove(&mut self) -> Result<(), NatError> {
        self.apply(None).await
    }

    /// Whether any rule forwards to backends (the only counts anyone reads).
    pub(crate) fn has_forwards(&self) -> bool {
        self.applied.as_ref().is_some_and(|nat| !nat.forwards.is_empty())
    }

    /// Connections translated per destination since this process started: the tables it
    /// rewrote or removed, plus the current table's counters, read now.
    pub(crate) async fn translated(&mut self) -> Result<Vec<Translated>, NatError> {
        if self.applied.is_some() {
            self.read_counters().await?;
        }
        let mut totals = self.before.clone();
        for (key, count) in &self.current {
            *totals.entry(*key).or_default() += count;
        }
        Ok(totals
            .into_iter()
            .map(|((destination, protocol), connections)| Translated { protocol, destination, connections })
            .collect())
    }

    async fn read_counters(&mut self) -> Result<(), NatError> {
        let Some(applied) = &self.applied else { return Ok(()) };
        let controller = NatController::for_config(applied)?;
        let counted = blocking(move || controller.translated()).await?;
        self.current = counted.into_iter().map(|t| ((t.destination, t.protocol), t.connections)).collect();
        Ok(())
    }

    /// The table was written anew or removed: its counters start again from zero.
    fn counters_restarted(&mut self) {
        for (key, count) in self.current.drain() {
            *self.before.entry(key).or_default() += count;
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NatError> + Send + 'static,
) -> Result<T, NatError> {
    tokio::task::spawn_blocking(f).await.map_err(|err| NatError::Spawn {
        program: "nft".to_owned(),
        source: std::io::Error::other(err.to_string()),
    })?
}
