//! Users' SSH public keys (used by the jump host and XDCs next to portal-issued certificates).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};
use trellis_types::{Error, PublicKey};

use crate::Workspace;
use crate::keys;
use crate::tx::{Tx, load, load_all, load_required, retrying};

/// Most keys one user may register; a bound so one account cannot bloat the store.
pub const MAX_KEYS_PER_USER: usize = 64;

/// Key types OpenSSH accepts for user authentication.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Parses an OpenSSH one-line public key (`type base64 [comment]`) and computes its SHA256
/// fingerprint as `ssh-keygen -l` prints it.
pub fn parse_public_key(line: &str) -> Result<PublicKey, Error> {
    let invalid = |why: String| Error::invalid("key", why);
    let mut fields = line.split_whitespace();
    let (Some(kind), Some(body)) = (fields.next(), fields.next()) else {
        return Err(invalid("expected an OpenSSH public key: \"<type> <base64> [comment]\"".to_owned()));
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(invalid(format!("unsupported key type {kind:?} (supported: {})", KEY_TYPES.join(", "))));
    }
    let blob = STANDARD.decode(body).map_err(|e| invalid(format!("key body is not base64: {e}")))?;
    // The blob starts with the key type as an SSH string: u32 length, then the bytes.
    let inner = blob
        .get(..4)
        .map(|len| u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
        .and_then(|len| blob.get(4..4 + len));
    if inner != Some(kind.as_bytes()) {
        return Err(invalid(format!("key body does not hold a {kind} key")));
    }
    let fingerprint = format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&blob)));
    let comment: Vec<&str> = fields.collect();
    let key = if comment.is_empty() {
        format!("{kind} {body}")
    } else {
        format!("{kind} {body} {}", comment.join(" "))
    };
    Ok(PublicKey { fingerprint, key })
}

/// Store-key form of a fingerprint: base64 may contain `/`, which would read as a path separator.
fn fingerprint_key(user: &str, fingerprint: &str) -> String {
    keys::pubkey(user, &fingerprint.replace('/', "_"))
}

impl Workspace {
    /// Registers an SSH public key for `user`.
    pub async fn add_public_key(&self, user: &str, line: &str) -> Result<PublicKey, Error> {
        let key = parse_public_key(line)?;
        let (store, key) = (self.store.as_ref(), &key);
        retrying("add public key", || async move {
            let owner = load_required::<trellis_types::User>(store, &keys::user(user), "user", user).await?;
            let existing = load_all::<PublicKey>(store, &keys::user_pubkeys(user)).await?;
            if existing.iter().any(|k| k.value.fingerprint == key.fingerprint) {
                return Err(Error::already_exists("public key", &key.fingerprint));
            }
            if existing.len() >= MAX_KEYS_PER_USER {
                return Err(Error::ResourceExhausted(format!(
                    "{user} already has {MAX_KEYS_PER_USER} public keys; delete one first"
                )));
            }
            let mut tx = Tx::new();
            // Guard the owner so a key is never left behind by a concurrent user deletion.
            tx.guard(&keys::user(user), owner.revision);
            tx.create(&fingerprint_key(user, &key.fingerprint), &key)?;
            Ok(tx.commit(store).await?.then(|| key.clone()))
        })
        .await
    }

    /// Lists `user`'s public keys.
    pub async fn public_keys(&self, user: &str) -> Result<Vec<PublicKey>, Error> {
        let store = self.store.as_ref();
        load_required::<trellis_types::User>(store, &keys::user(user), "user", user).await?;
        Ok(load_all::<PublicKey>(store, &keys::user_pubkeys(user))
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// Deletes one key by fingerprint.
    pub async fn delete_public_key(&self, user: &str, fingerprint: &str) -> Result<(), Error> {
        let store = self.store.as_ref();
        let key = fingerprint_key(user, fingerprint);
        let Some(found) = load::<PublicKey>(store, &key).await? else {
            return Err(Error::not_found("public key", fingerprint));
        };
        let mut tx = Tx::new();
        tx.guard(&key, found.revision).delete(&key);
        tx.commit(store).await?;
        Ok(())
    }

    /// Deletes all of `user`'s keys.
    pub async fn delete_public_keys(&self, user: &str) -> Result<(), Error> {
        let store = self.store.as_ref();
        load_required::<trellis_types::User>(store, &keys::user(user), "user", user).await?;
        let mut tx = Tx::new();
        tx.delete_prefix(&keys::user_pubkeys(user));
        tx.commit(store).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with `ssh-keygen -t ed25519 -C test`; its fingerprint from `ssh-keygen -lf`.
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpe4rDpR/hTRtRvu6MBJnwMYagUEvrUTRoQgCCudRGv test";
    const ED25519_FINGERPRINT: &str = "SHA256:tHbtxCRA0+jhzQkhZRwjUdboGYYsWZV3l1tNvuTH2Nk";

    #[test]
    fn parses_and_fingerprints_like_ssh_keygen() {
        let key = parse_public_key(ED25519).unwrap();
        assert_eq!(key.fingerprint, ED25519_FINGERPRINT);
        assert_eq!(key.key, ED25519);
    }

    #[test]
    fn rejects_garbage_with_reasons() {
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-dss AAAA",
            "ssh-ed25519 !!!",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ",
        ] {
            assert!(matches!(parse_public_key(bad), Err(Error::InvalidArgument { .. })), "{bad}");
        }
    }
}
