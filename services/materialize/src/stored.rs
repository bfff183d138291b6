//! JSON records with the revisions compare-and-swap needs, and retry pacing.

use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_store::{KeyValue, Op, Store, StoreError};
use trellis_types::Error;

/// How many times an optimistic transaction is retried before the caller is told to retry.
pub const MAX_ATTEMPTS: u32 = 20;

#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: i64,
}

pub fn store_error(err: StoreError) -> Error {
    match err {
        StoreError::Unavailable { .. } => Error::Unavailable(err.to_string()),
        other => Error::Internal(other.to_string()),
    }
}

pub fn decode<T: DeserializeOwned>(kv: &KeyValue) -> Result<Versioned<T>, Error> {
    let value = serde_json::from_slice(&kv.value)
        .map_err(|e| Error::Internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    Ok(Versioned { value, revision: kv.mod_revision })
}

pub fn put<T: Serialize>(key: &str, value: &T) -> Result<Op, Error> {
    let value = serde_json::to_vec(value).map_err(|e| Error::Internal(format!("encoding {key}: {e}")))?;
    Ok(Op::Put { key: key.to_owned(), value, lease: None })
}

pub async fn load<T: DeserializeOwned>(store: &dyn Store, key: &str) -> Result<Option<Versioned<T>>, Error> {
    store.get(key).await.map_err(store_error)?.as_ref().map(decode).transpose()
}

pub async fn load_all<T: DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
) -> Result<Vec<Versioned<T>>, Error> {
    store.range(prefix).await.map_err(store_error)?.kvs.iter().map(decode).collect()
}

/// A short randomized pause growing with `attempt`, so writers that collided spread out.
pub async fn conflict_pause(attempt: u32) {
    let ceiling_micros = 500u64 << attempt.min(6);
    let micros = rand::rng().random_range(ceiling_micros / 4..=ceiling_micros);
    tokio::time::sleep(Duration::from_micros(micros)).await;
}

/// Runs `attempt` until it commits (`Some`) or fails for good; `None` means its transaction
/// lost a race and it should re-read and try again.
pub async fn retrying<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Error>>,
{
    for n in 0..MAX_ATTEMPTS {
        if let Some(done) = attempt().await? {
            return Ok(done);
        }
        conflict_pause(n).await;
    }
    Err(Error::Aborted(format!("{what}: too many concurrent changes; try again")))
}

/// `min * 2^(failures-1)`, capped at `max`, with up to a quarter of random jitter taken off.
pub fn retry_delay(failures: u32, min: Duration, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let delay = min.saturating_mul(1 << exponent).min(max);
    let jitter = rand::rng().random_range(0.0..0.25);
    delay.mul_f64(1.0 - jitter)
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_stop_at_the_cap() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        for (failures, nominal) in [(1, 1), (2, 2), (3, 4), (7, 60), (40, 60)] {
            let delay = retry_delay(failures, min, max);
            let nominal = Duration::from_secs(nominal);
            assert!(delay <= nominal && delay >= nominal.mul_f64(0.75), "{failures}: {delay:?}");
        }
    }
}
