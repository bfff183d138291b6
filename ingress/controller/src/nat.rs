//! The NAT side: applying what the proxy asks for (`Ingress::nat`: the configuration's `nat`
//! section plus the `forward: kernel` endpoints with their healthy backends) with
//! `trellis-nat`, following reloads and health changes, and removing it on shutdown.
//!
//! `nft` runs on a blocking thread, which inherits the network namespace of the thread that
//! spawned it; a caller that runs the controller in a namespace runs its runtime there.

use trellis_nat::{NatConfig, NatController, NatError};

/// The NAT this process applied, if any.
#[derive(Debug, Default)]
pub(crate) struct Nat {
    applied: Option<NatConfig>,
}

impl Nat {
    /// Makes the kernel's NAT match `wanted` (none: no table). Re-applying the same
    /// configuration writes nothing unless the table drifted.
    pub(crate) async fn apply(&mut self, wanted: Option<&NatConfig>) -> Result<(), NatError> {
        if let Some(applied) = &self.applied
            && wanted.is_none_or(|w| w.table != applied.table)
        {
            // A renamed table: the old one would otherwise stay behind.
            let controller = NatController::for_config(applied)?;
            blocking(move || controller.remove()).await?;
            self.applied = None;
        }
        let Some(wanted) = wanted.cloned() else { return Ok(()) };
        let controller = NatController::for_config(&wanted)?;
        let config = wanted.clone();
        let outcome = blocking(move || controller.apply(&config)).await?;
        tracing::debug!(table = %wanted.table, ?outcome, "ingress NAT applied");
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
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NatError> + Send + 'static,
) -> Result<T, NatError> {
    tokio::task::spawn_blocking(f).await.map_err(|err| NatError::Spawn {
        program: "nft".to_owned(),
        source: std::io::Error::other(err.to_string()),
    })?
}
