//! The portal's token-signing key: Ed25519, created once and shared by every replica through
//! the state store.
//!
//! The private key sits in the store next to everything else the portal trusts; whoever can write
//! the store can already make themselves an administrator, so keeping the key there adds no new
//! exposure and lets any number of API replicas verify each other's tokens.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use trellis_store::{Compare, Op, Store, Txn};
use trellis_types::Error;

use crate::store_error;

/// Store key of the signing key.
pub const SIGNING_KEY_KEY: &str = "/trellis/identity/signing-key";

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// PKCS#8 v2 document, base64.
    pkcs8: String,
    created: i64,
}

/// An Ed25519 key pair ready for signing and verifying JWTs.
#[derive(Clone)]
pub struct SigningKey {
    /// Key id, published in the JWKS and stamped into every token header.
    pub kid: String,
    encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    /// Raw public key, base64url (the JWK `x` parameter).
    public_x: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads the portal's signing key, creating it if this is the first start of any replica.
    ///
    /// Creation is a create-if-absent transaction, so replicas starting together agree on one key.
    pub async fn load_or_create(store: &dyn Store) -> Result<SigningKey, Error> {
        loop {
            if let Some(kv) = store.get(SIGNING_KEY_KEY).await.map_err(store_error)? {
                let stored: StoredKey = serde_json::from_slice(&kv.value)
                    .map_err(|e| Error::Internal(format!("stored signing key is corrupt: {e}")))?;
                return SigningKey::from_stored(&stored);
            }
            let stored = generate()?;
            let value = serde_json::to_vec(&stored)
                .map_err(|e| Error::Internal(format!("encoding signing key: {e}")))?;
            let outcome = store
                .txn(Txn {
                    compares: vec![Compare::ModRevision { key: SIGNING_KEY_KEY.to_owned(), revision: 0 }],
                    success: vec![Op::Put { key: SIGNING_KEY_KEY.to_owned(), value, lease: None }],
                })
                .await
                .map_err(store_error)?;
            if outcome.succeeded {
                tracing::info!(kid = %stored.kid, "created the portal token-signing key");
                return SigningKey::from_stored(&stored);
            }
            // Another replica won the race: loop and use its key.
        }
    }

    /// A fresh key that is not stored anywhere (tests use it to forge tokens).
    pub fn generate_ephemeral() -> Result<SigningKey, Error> {
        SigningKey::from_stored(&generate()?)
    }

    fn from_stored(stored: &StoredKey) -> Result<SigningKey, Error> {
        let pkcs8 = STANDARD
            .decode(&stored.pkcs8)
            .map_err(|e| Error::Internal(format!("stored signing key is not base64: {e}")))?;
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| Error::Internal(format!("stored signing key is invalid: {e}")))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(SigningKey {
            kid: stored.kid.clone(),
            encoding: EncodingKey::from_ed_der(&pkcs8),
            decoding: DecodingKey::from_ed_der(&public),
            public_x: URL_SAFE_NO_PAD.encode(&public),
        })
    }

    /// Signs `claims` as an EdDSA JWT whose header names this key.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, Error> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("signing token: {e}")))
    }

    /// The public key as a JWK (RFC 8037 OKP/Ed25519).
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self.public_x,
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

fn generate() -> Result<StoredKey, Error> {
    let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|e| Error::Internal(format!("generating signing key: {e}")))?;
    Ok(StoredKey {
        kid: uuid::Uuid::new_v4().simple().to_string(),
        pkcs8: STANDARD.encode(document.as_ref()),
        created: crate::now_unix(),
    })
}
