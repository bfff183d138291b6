//! The stored identity record and the store operations that create and delete it.
//!
//! Registration writes the identity together with the workspace's user objects in one
//! transaction, so this module hands out compares and ops instead of writing by itself.

use serde::{Deserialize, Serialize};
use trellis_store::{Compare, Op, Store};
use trellis_types::Error;

use crate::password::hash_password;
use crate::store_error;

/// Key prefix of identity records.
pub const IDENTITY_PREFIX: &str = "/trellis/identity/accounts/";

/// The store key of `username`'s identity.
pub fn identity_key(username: &str) -> String {
    format!("{IDENTITY_PREFIX}{username}")
}

/// Credentials of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub username: String,
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub admin: bool,
    pub email_verified: bool,
    pub created: i64,
}

impl IdentityRecord {
    /// A new record for `username`, hashing `password`.
    pub fn new(username: &str, email: &str, password: &str, admin: bool) -> Result<Self, Error> {
        Ok(IdentityRecord {
            username: username.to_owned(),
            email: email.to_owned(),
            password_hash: hash_password(password)?,
            admin,
            email_verified: false,
            created: crate::now_unix(),
        })
    }

    /// The compare (must not exist yet) and put that create this record.
    pub fn create_ops(&self) -> Result<(Compare, Op), Error> {
        let key = identity_key(&self.username);
        let value =
            serde_json::to_vec(self).map_err(|e| Error::Internal(format!("encoding identity: {e}")))?;
        Ok((Compare::ModRevision { key: key.clone(), revision: 0 }, Op::Put { key, value, lease: None }))
    }

    /// The put that overwrites this record, guarded by the revision it was read at.
    pub fn update_ops(&self, read_at: i64) -> Result<(Compare, Op), Error> {
        let key = identity_key(&self.username);
        let value =
            serde_json::to_vec(self).map_err(|e| Error::Internal(format!("encoding identity: {e}")))?;
        Ok((
            Compare::ModRevision { key: key.clone(), revision: read_at },
            Op::Put { key, value, lease: None },
        ))
    }
}

/// Reads `username`'s identity and the revision it was stored at.
pub async fn load_identity(
    store: &dyn Store,
    username: &str,
) -> Result<Option<(IdentityRecord, i64)>, Error> {
    let Some(kv) = store.get(&identity_key(username)).await.map_err(store_error)? else {
        return Ok(None);
    };
    let record = serde_json::from_slice(&kv.value)
        .map_err(|e| Error::Internal(format!("identity record of {username} is corrupt: {e}")))?;
    Ok(Some((record, kv.mod_revision)))
}

/// Reads every identity.
pub async fn list_identities(store: &dyn Store) -> Result<Vec<IdentityRecord>, Error> {
    let range = store.range(IDENTITY_PREFIX).await.map_err(store_error)?;
    range
        .kvs
        .iter()
        .map(|kv| {
            serde_json::from_slice(&kv.value)
                .map_err(|e| Error::Internal(format!("identity record {} is corrupt: {e}", kv.key)))
        })
        .collect()
}
