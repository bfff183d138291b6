//! Per-user key pairs: generated on first use, kept in the store, removed with the user.

use serde::{Deserialize, Serialize};
use trellis_store::{Op, Txn};
use trellis_types::{Error, validate_name};

use crate::records::{self, store_error, user_key_key, user_prefix};
use crate::{SshCa, generate_key, now_unix, private_openssh, public_openssh};

/// A user's key pair as stored.
#[derive(Serialize, Deserialize)]
struct StoredUserKey {
    /// OpenSSH private key (unencrypted; see the crate documentation).
    private: String,
    /// `authorized_keys` line.
    public: String,
    /// Seconds since the epoch.
    created: u64,
}

/// A user's SSH key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct UserKeys {
    /// OpenSSH private key file contents (`-----BEGIN OPENSSH PRIVATE KEY-----`), unencrypted.
    pub private_openssh: String,
    /// The public key in `authorized_keys` format.
    pub public_openssh: String,
    /// Store revision the pair was written at; changes only when the pair is replaced (Merge's
    /// `ver`).
    pub revision: i64,
}

impl std::fmt::Debug for UserKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private keys into logs.
        f.debug_struct("UserKeys")
            .field("public_openssh", &self.public_openssh)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl SshCa {
    /// `username`'s key pair, generated and stored on first use. Concurrent first calls on any
    /// replicas all get the same pair.
    pub async fn user_keys(&self, username: &str) -> Result<UserKeys, Error> {
        validate_name("username", username)?;
        let (stored, revision) = records::load_or_create(
            self.store.as_ref(),
            &user_key_key(username),
            &format!("SSH key of {username}"),
            || {
                let key = generate_key(&format!("{username}@trellis"))?;
                Ok(StoredUserKey {
                    private: private_openssh(&key)?,
                    public: public_openssh(&key)?,
                    created: now_unix(),
                })
            },
        )
        .await?;
        Ok(UserKeys { private_openssh: stored.private, public_openssh: stored.public, revision })
    }

    /// Removes everything the CA keeps for `username` (their key pair). Deleting a user with no
    /// key succeeds. Certificates already issued stay valid until they expire.
    pub async fn delete_user(&self, username: &str) -> Result<(), Error> {
        let op = delete_user_op(username)?;
        self.store.txn(Txn { compares: vec![], success: vec![op] }).await.map_err(store_error)?;
        Ok(())
    }
}

/// The store operation that removes everything the CA keeps for `username`, for callers that
/// delete the account in one transaction with other records.
pub fn delete_user_op(username: &str) -> Result<Op, Error> {
    validate_name("username", username)?;
    Ok(Op::DeletePrefix { prefix: user_prefix(username) })
}
