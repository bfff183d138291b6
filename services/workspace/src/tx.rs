//! Optimistic transactions over the store: read with revisions, write with compare-and-swap,
//! retry on conflict.

use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_store::{Compare, Op, Store, StoreError, Txn};
use trellis_types::Error;

/// How many times a conflicting transaction is retried before the caller is told to retry.
/// Conflicts only happen when the same objects are written concurrently, so a handful suffices.
const MAX_ATTEMPTS: usize = 16;

/// A value read from the store with the revision it was last written at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: i64,
}

/// Maps a store failure to the service error.
pub fn store_error(err: StoreError) -> Error {
    match err {
        StoreError::Unavailable { .. } => Error::Unavailable(err.to_string()),
        other => Error::Internal(other.to_string()),
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Internal(format!("stored object {key} is corrupt: {e}")))
}

/// Reads and decodes one object.
pub async fn load<T: DeserializeOwned>(store: &dyn Store, key: &str) -> Result<Option<Versioned<T>>, Error> {
    match store.get(key).await.map_err(store_error)? {
        Some(kv) => Ok(Some(Versioned { value: decode(key, &kv.value)?, revision: kv.mod_revision })),
        None => Ok(None),
    }
}

/// Reads one object that must exist, naming it in the not-found error.
pub async fn load_required<T: DeserializeOwned>(
    store: &dyn Store,
    key: &str,
    kind: &'static str,
    name: &str,
) -> Result<Versioned<T>, Error> {
    load(store, key).await?.ok_or_else(|| Error::not_found(kind, name))
}

/// Reads and decodes every object under a prefix, in key order.
pub async fn load_all<T: DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
) -> Result<Vec<Versioned<T>>, Error> {
    let range = store.range(prefix).await.map_err(store_error)?;
    range
        .kvs
        .iter()
        .map(|kv| Ok(Versioned { value: decode(&kv.key, &kv.value)?, revision: kv.mod_revision }))
        .collect()
}

/// A transaction being assembled: guards on revisions read, then writes.
#[derive(Debug, Default)]
pub struct Tx {
    txn: Txn,
}

impl Tx {
    /// An empty transaction.
    pub fn new() -> Tx {
        Tx::default()
    }

    /// Requires `key` to still be at `revision` (`0`: still absent) when committing.
    pub fn guard(&mut self, key: &str, revision: i64) -> &mut Self {
        self.txn.compares.push(Compare::ModRevision { key: key.to_owned(), revision });
        self
    }

    /// Adds a raw compare (used to include other crates' records).
    pub fn compare(&mut self, compare: Compare) -> &mut Self {
        self.txn.compares.push(compare);
        self
    }

    /// Adds a raw op (used to include other crates' records).
    pub fn op(&mut self, op: Op) -> &mut Self {
        self.txn.success.push(op);
        self
    }

    /// Writes `value` at `key`.
    pub fn put<T: Serialize>(&mut self, key: &str, value: &T) -> Result<&mut Self, Error> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Internal(format!("encoding {key}: {e}")))?;
        self.txn.success.push(Op::Put { key: key.to_owned(), value: bytes, lease: None });
        Ok(self)
    }

    /// Writes `value` at `key`, which must not exist yet.
    pub fn create<T: Serialize>(&mut self, key: &str, value: &T) -> Result<&mut Self, Error> {
        self.guard(key, 0);
        self.put(key, value)
    }

    /// Writes a new version of an object read at `read`'s revision.
    pub fn update<T: Serialize>(&mut self, key: &str, read: &Versioned<T>) -> Result<&mut Self, Error> {
        self.guard(key, read.revision);
        self.put(key, &read.value)
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: &str) -> &mut Self {
        self.txn.success.push(Op::Delete { key: key.to_owned() });
        self
    }

    /// Deletes every key under `prefix`.
    pub fn delete_prefix(&mut self, prefix: &str) -> &mut Self {
        self.txn.success.push(Op::DeletePrefix { prefix: prefix.to_owned() });
        self
    }

    /// Commits; `false` means a guard failed and nothing was written.
    pub async fn commit(self, store: &dyn Store) -> Result<bool, Error> {
        Ok(store.txn(self.txn).await.map_err(store_error)?.succeeded)
    }
}

/// Runs `attempt` until it commits (`Some`) or reports a definite error; `None` means its
/// transaction lost a race and it should re-read and try again.
///
/// `attempt` returns a fresh future per try; it captures only references (bind owned inputs
/// with `let x = &x;` first) so each future stays `Send`.
pub async fn retrying<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, Error>>,
{
    for n in 0..MAX_ATTEMPTS {
        if let Some(done) = attempt().await? {
            return Ok(done);
        }
        tracing::debug!(what, attempt = n, "transaction conflicted; retrying");
        // Back off a little so a herd of writers on one object spreads out.
        tokio::time::sleep(std::time::Duration::from_micros(200 * (1 << n.min(6)))).await;
    }
    Err(Error::Aborted(format!("{what}: too many concurrent changes to the same objects; try again")))
}
