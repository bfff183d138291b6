//! Reading and writing JSON records with the revisions compare-and-swap needs.

use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_store::{KeyValue, Op, Store, StoreError, Txn};
use trellis_types::Error;

/// How many times an optimistic transaction is retried before the caller is told to retry.
pub const MAX_ATTEMPTS: u32 = 20;

/// A value read from the store with the revision it was last written at.
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

pub fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Internal(format!("encoding {key}: {e}")))
}

pub fn put<T: Serialize>(key: &str, value: &T) -> Result<Op, Error> {
    Ok(Op::Put { key: key.to_owned(), value: encode(key, value)?, lease: None })
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

pub async fn commit(store: &dyn Store, txn: Txn) -> Result<bool, Error> {
    Ok(store.txn(txn).await.map_err(store_error)?.succeeded)
}

/// Waits a little, growing with `attempt` and randomized, so writers that collided spread out
/// instead of colliding again in lockstep.
pub async fn backoff(attempt: u32) {
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
        tracing::debug!(what, attempt = n, "transaction conflicted; retrying");
        backoff(n).await;
    }
    Err(Error::Aborted(format!("{what}: too many concurrent changes to the same objects; try again")))
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
