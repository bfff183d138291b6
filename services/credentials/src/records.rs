//! Store layout of the SSH certificate authority and the generic store operations on it.
//!
//! Layout (values are JSON):
//! - [`CA_KEY`]: both CA private keys (user CA and host CA), OpenSSH format.
//! - [`SERIAL_KEY`]: the last certificate serial handed out.
//! - `/trellis/credentials/users/<username>/key` ([`user_key_key`]): the user's key pair.

use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_store::{Compare, Op, Revision, Store, StoreError, Txn};
use trellis_types::Error;

/// Store key of the CA record (the user CA and host CA private keys).
pub const CA_KEY: &str = "/trellis/credentials/ssh-ca";
/// Store key of the certificate serial counter.
pub const SERIAL_KEY: &str = "/trellis/credentials/ssh-serial";
/// Prefix of every per-user record.
pub const USERS_PREFIX: &str = "/trellis/credentials/users/";

/// How often a serial increment is retried when other issuers keep winning the race.
const SERIAL_ATTEMPTS: usize = 64;

/// The prefix holding everything the CA keeps for `username` (ends with `/`, so `ann` never
/// covers `anna`).
pub fn user_prefix(username: &str) -> String {
    format!("{USERS_PREFIX}{username}/")
}

/// The store key of `username`'s key pair.
pub fn user_key_key(username: &str) -> String {
    format!("{}key", user_prefix(username))
}

pub(crate) fn store_error(err: StoreError) -> Error {
    match err {
        StoreError::Unavailable { .. } => Error::Unavailable(err.to_string()),
        other => Error::Internal(other.to_string()),
    }
}

/// Reads the JSON record at `key`, creating it with `generate` if absent.
///
/// Creation is a create-if-absent transaction: when several callers (replicas) race, exactly one
/// record is written and every caller returns that one. Returns the record and the revision it
/// was written at.
pub(crate) async fn load_or_create<T, G>(
    store: &dyn Store,
    key: &str,
    what: &str,
    generate: G,
) -> Result<(T, Revision), Error>
where
    T: Serialize + DeserializeOwned,
    G: Fn() -> Result<T, Error>,
{
    loop {
        if let Some(kv) = store.get(key).await.map_err(store_error)? {
            let record = serde_json::from_slice(&kv.value)
                .map_err(|e| Error::Internal(format!("the stored {what} is corrupt: {e}")))?;
            return Ok((record, kv.mod_revision));
        }
        let record = generate()?;
        let value =
            serde_json::to_vec(&record).map_err(|e| Error::Internal(format!("encoding the {what}: {e}")))?;
        let outcome = store
            .txn(Txn {
                compares: vec![Compare::ModRevision { key: key.to_owned(), revision: 0 }],
                success: vec![Op::Put { key: key.to_owned(), value, lease: None }],
            })
            .await
            .map_err(store_error)?;
        if outcome.succeeded {
            return Ok((record, outcome.revision));
        }
        // Someone else created it between our read and our write: read theirs.
    }
}

/// Takes the next certificate serial (1, 2, 3, ...), unique across replicas sharing the store.
///
/// Increasing serials let an operator revoke "everything up to N" in a KRL and tell
/// certificates apart in sshd's logs.
pub(crate) async fn next_serial(store: &dyn Store) -> Result<u64, Error> {
    for _ in 0..SERIAL_ATTEMPTS {
        let (last, read_at) = match store.get(SERIAL_KEY).await.map_err(store_error)? {
            Some(kv) => {
                let last: u64 = serde_json::from_slice(&kv.value)
                    .map_err(|e| Error::Internal(format!("the stored certificate serial is corrupt: {e}")))?;
                (last, kv.mod_revision)
            }
            None => (0, 0),
        };
        let next = last
            .checked_add(1)
            .ok_or_else(|| Error::Internal("the certificate serial counter is exhausted".to_owned()))?;
        let value = serde_json::to_vec(&next)
            .map_err(|e| Error::Internal(format!("encoding the certificate serial: {e}")))?;
        let outcome = store
            .txn(Txn {
                compares: vec![Compare::ModRevision { key: SERIAL_KEY.to_owned(), revision: read_at }],
                success: vec![Op::Put { key: SERIAL_KEY.to_owned(), value, lease: None }],
            })
            .await
            .map_err(store_error)?;
        if outcome.succeeded {
            return Ok(next);
        }
    }
    Err(Error::Aborted("too many concurrent certificate requests; try again".to_owned()))
}
