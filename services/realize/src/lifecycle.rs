//! A realization after it is made: reading, extending, relinquishing, reclaiming on expiry.

use std::collections::BTreeSet;

use futures::future::try_join_all;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use trellis_embed::ResourceKey;
use trellis_store::{Compare, Op, Txn};
use trellis_types::Error;

use crate::infranet::Subnet;
use crate::keys;
use crate::realize::{expiry, mzid, validate_names};
use crate::service::RealizeService;
use crate::stored::{Versioned, commit, decode, load, load_all, now_unix, put, retrying, store_error};
use crate::types::{Allocation, Duration, RealizationRecord};

impl RealizeService {
    pub async fn realization(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
    ) -> Result<RealizationRecord, Error> {
        Ok(self.realization_record(project, experiment, realization).await?.value)
    }

    async fn realization_record(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
    ) -> Result<Versioned<RealizationRecord>, Error> {
        validate_names(project, experiment, realization)?;
        load(self.store.as_ref(), &keys::realization(project, experiment, realization))
            .await?
            .ok_or_else(|| Error::not_found("realization", mzid(project, experiment, realization)))
    }

    /// Every realization (the API filters by what the caller may see).
    pub async fn realizations(&self) -> Result<Vec<RealizationRecord>, Error> {
        Ok(load_all(self.store.as_ref(), keys::REALIZATIONS).await?.into_iter().map(|r| r.value).collect())
    }

    /// Sets the expiry to now + duration (or never).
    pub async fn update_expiry(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        duration: Duration,
    ) -> Result<RealizationRecord, Error> {
        if let Duration::Given(seconds) = duration
            && seconds < 0
        {
            return Err(Error::invalid("duration", "a realization cannot last a negative time"));
        }
        let mzid = mzid(project, experiment, realization);
        retrying(&format!("extending {mzid}"), || async {
            let read = self.realization_record(project, experiment, realization).await?;
            let mut record = read.value;
            record.expires = expiry(duration, now_unix());
            record.ver += 1;
            let key = keys::realization(project, experiment, realization);
            let txn = Txn {
                compares: vec![Compare::ModRevision { key: key.clone(), revision: read.revision }],
                success: vec![put(&key, &record)?],
            };
            Ok(commit(self.store.as_ref(), txn).await?.then_some(record))
        })
        .await
    }

    /// Frees everything the realization holds and deletes it.
    pub async fn relinquish(&self, project: &str, experiment: &str, realization: &str) -> Result<(), Error> {
        let mzid = mzid(project, experiment, realization);
        // Hook for materialization: once realizations can be materialized, dematerialize here
        // first (mark the record `Relinquishing`, tear down on the facilities, then free), so
        // resources are never handed to another realization while still in use.
        retrying(&format!("relinquishing {mzid}"), || {
            self.try_relinquish(project, experiment, realization, &mzid)
        })
        .await
    }

    async fn try_relinquish(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        mzid: &str,
    ) -> Result<Option<()>, Error> {
        let store = self.store.as_ref();
        let read = self.realization_record(project, experiment, realization).await?;
        let key = keys::realization(project, experiment, realization);
        let mut txn = Txn {
            compares: vec![Compare::ModRevision { key: key.clone(), revision: read.revision }],
            success: vec![Op::Delete { key }],
        };
        let resources: BTreeSet<&ResourceKey> = read.value.embedding.claims.iter().map(|c| &c.key).collect();
        let held = try_join_all(resources.iter().map(|resource| async move {
            let alloc_key = keys::alloc(resource);
            let kv = store.get(&alloc_key).await.map_err(store_error)?;
            kv.as_ref().map(decode::<Vec<Allocation>>).transpose().map(|held| (alloc_key, held))
        }))
        .await?;
        for (alloc_key, held) in held {
            let Some(held) = held else { continue };
            let mut rest = held.value.clone();
            rest.retain(|a| a.mzid != mzid);
            if rest.len() == held.value.len() {
                continue;
            }
            txn.compares.push(Compare::ModRevision { key: alloc_key.clone(), revision: held.revision });
            txn.success.push(if rest.is_empty() {
                Op::Delete { key: alloc_key }
            } else {
                put(&alloc_key, &rest)?
            });
        }
        if let Some(subnet) = Subnet::parse(&read.value.infranet_subnet) {
            for block_key in subnet.keys() {
                let Some(kv) = store.get(&block_key).await.map_err(store_error)? else { continue };
                if kv.value == mzid.as_bytes() {
                    txn.compares
                        .push(Compare::ModRevision { key: block_key.clone(), revision: kv.mod_revision });
                    txn.success.push(Op::Delete { key: block_key });
                }
            }
        }
        Ok(commit(store, txn).await?.then_some(()))
    }

    /// Relinquishes every realization whose expiry is at or before `now` (seconds since the
    /// epoch); returns how many. One that fails is logged and left for the next round.
    pub async fn reclaim_expired(&self, now: i64) -> Result<usize, Error> {
        let mut reclaimed = 0;
        for r in self.realizations().await? {
            if r.expires.is_none_or(|at| at > now) {
                continue;
            }
            match self.relinquish(&r.project, &r.experiment, &r.name).await {
                Ok(()) => {
                    tracing::info!(mzid = %r.mzid(), expired = r.expires, "reclaimed an expired realization");
                    reclaimed += 1;
                }
                // Relinquished meanwhile (by its owner or another replica's reclaimer).
                Err(Error::NotFound { .. }) => {}
                Err(err) => {
                    tracing::warn!(mzid = %r.mzid(), %err, "could not reclaim an expired realization")
                }
            }
        }
        Ok(reclaimed)
    }

    /// Runs [`Self::reclaim_expired`] every `every` until `shutdown` is cancelled. Every
    /// replica may run one: they race harmlessly, each realization is freed once.
    pub fn spawn_reclaimer(self, every: std::time::Duration, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                match self.reclaim_expired(now_unix()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(reclaimed = n, "reclaimed expired realizations"),
                    Err(err) => tracing::warn!(%err, "reclaiming expired realizations failed"),
                }
            }
            tracing::debug!("realization reclaimer stopped");
        })
    }

    /// The whole allocation table: every resource key (as its store key) with its allocations.
    pub async fn allocation_table(&self) -> Result<Vec<(String, Vec<Allocation>)>, Error> {
        let range = self.store.range(keys::ALLOC).await.map_err(store_error)?;
        range.kvs.iter().map(|kv| Ok((kv.key.clone(), decode::<Vec<Allocation>>(kv)?.value))).collect()
    }
}
