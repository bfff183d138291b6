//! Issuing, verifying and revoking login tokens.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use trellis_store::{Op, Store, Txn};
use trellis_types::Error;

use crate::keys::SigningKey;
use crate::oidc::{OidcConfig, OidcVerifier};
use crate::password::verify_password;
use crate::records::load_identity;
use crate::{now_unix, store_error};

/// Key prefix of revoked token ids; each key carries a lease that ends when the token would
/// have expired, so the revocation list never outgrows the set of live tokens.
pub const REVOKED_PREFIX: &str = "/trellis/identity/revoked/";

/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECS: u64 = 30;

/// How many verified tokens are remembered; beyond this the memory is cleared and refilled.
const VERIFIED_CACHE_SIZE: usize = 16_384;

/// How tokens are minted.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The `iss` claim of portal tokens (the portal's public URL, or `trellis`).
    pub issuer: String,
    /// Lifetime of a login token.
    pub ttl: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig { issuer: "trellis".to_owned(), ttl: Duration::from_secs(24 * 3600) }
    }
}

/// The claims of a portal token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The username.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique token id, the handle for revocation.
    pub jti: String,
}

/// A token that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub username: String,
    /// Present for portal tokens (revocable); external tokens are revoked at their issuer.
    pub jti: Option<String>,
    /// Expiry, seconds since the epoch.
    pub expires: i64,
}

/// Mints and checks tokens for one portal (shared by every replica through the store).
pub struct TokenService {
    store: Arc<dyn Store>,
    key: SigningKey,
    config: TokenConfig,
    oidc: Option<OidcVerifier>,
    /// A real hash to verify against when the username is unknown, so a failed login costs the
    /// same time whether or not the account exists.
    decoy_hash: String,
    /// Portal tokens whose signature already verified: checking an Ed25519 signature was about
    /// an eighth of the CPU an authorized read costs, and clients send the same token on every
    /// call. Expiry and revocation are still checked on every use.
    verified: std::sync::Mutex<std::collections::HashMap<String, Verified>>,
}

impl TokenService {
    /// Loads (or creates) the signing key and prepares the optional external issuer.
    pub async fn new(
        store: Arc<dyn Store>,
        config: TokenConfig,
        oidc: Option<OidcConfig>,
    ) -> Result<TokenService, Error> {
        let key = SigningKey::load_or_create(store.as_ref()).await?;
        let decoy_hash = crate::password::hash_password("decoy-password-never-matches")?;
        Ok(TokenService {
            store,
            key,
            config,
            oidc: oidc.map(OidcVerifier::new),
            decoy_hash,
            verified: Default::default(),
        })
    }

    /// The JWKS document published at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.key.jwk()] })
    }

    /// The configured issuer name.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Checks a username and password and returns a fresh token.
    pub async fn login(&self, username: &str, password: &str) -> Result<String, Error> {
        let record = load_identity(self.store.as_ref(), username).await?;
        let hash = record.as_ref().map(|(r, _)| r.password_hash.clone());
        let password = password.to_owned();
        let decoy = self.decoy_hash.clone();
        // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
        let matches = tokio::task::spawn_blocking(move || {
            verify_password(&password, hash.as_deref().unwrap_or(&decoy))
        })
        .await
        .map_err(|e| Error::Internal(format!("password check panicked: {e}")))?;
        if record.is_none() || !matches {
            return Err(Error::Unauthenticated("invalid username or password".to_owned()));
        }
        self.issue(username).map(|(token, _)| token)
    }

    /// Signs a token for `username` without checking credentials (bootstrap and tests).
    pub fn issue(&self, username: &str) -> Result<(String, Claims), Error> {
        let now = now_unix();
        let claims = Claims {
            iss: self.config.issuer.clone(),
            sub: username.to_owned(),
            iat: now,
            exp: now + self.config.ttl.as_secs() as i64,
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let token = self.key.sign(&claims)?;
        Ok((token, claims))
    }

    /// Verifies a bearer token: signature, algorithm, issuer, expiry and revocation.
    pub async fn verify(&self, token: &str) -> Result<Verified, Error> {
        let remembered = self.verified.lock().ok().and_then(|m| m.get(token).cloned());
        if let Some(verified) = remembered {
            if verified.expires + LEEWAY_SECS as i64 <= now_unix() {
                return Err(Error::Unauthenticated("token has expired; log in again".to_owned()));
            }
            if let Some(jti) = &verified.jti
                && self.is_revoked(jti).await?
            {
                return Err(Error::Unauthenticated(
                    "token has been revoked (logged out); log in again".to_owned(),
                ));
            }
            return Ok(verified);
        }
        let verified = self.verify_signed(token).await?;
        if verified.jti.is_some()
            && let Ok(mut memory) = self.verified.lock()
        {
            if memory.len() >= VERIFIED_CACHE_SIZE {
                memory.clear();
            }
            memory.insert(token.to_owned(), verified.clone());
        }
        Ok(verified)
    }

    async fn verify_signed(&self, token: &str) -> Result<Verified, Error> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Error::Unauthenticated(format!("malformed token: {e}")))?;
        if let Some(oidc) = &self.oidc
            && header.kid.as_deref() != Some(self.key.kid.as_str())
            && oidc.claims_issuer_matches(token)
        {
            return oidc.verify(token, &header).await;
        }
        if header.alg != Algorithm::EdDSA {
            return Err(Error::Unauthenticated(format!(
                "token algorithm {:?} is not accepted (portal tokens are EdDSA)",
                header.alg
            )));
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key.decoding, &validation)
            .map_err(|e| Error::Unauthenticated(describe_jwt_error(&e)))?;
        let claims = data.claims;
        if self.is_revoked(&claims.jti).await? {
            return Err(Error::Unauthenticated(
                "token has been revoked (logged out); log in again".to_owned(),
            ));
        }
        Ok(Verified { username: claims.sub, jti: Some(claims.jti), expires: claims.exp })
    }

    /// Revokes a verified portal token until it would have expired.
    pub async fn revoke(&self, token: &Verified) -> Result<(), Error> {
        let Some(jti) = &token.jti else {
            return Ok(());
        };
        let remaining = (token.expires - now_unix()).max(0) as u64 + LEEWAY_SECS;
        let lease = self.store.grant_lease(Duration::from_secs(remaining)).await.map_err(store_error)?;
        self.store
            .txn(Txn {
                compares: vec![],
                success: vec![Op::Put {
                    key: format!("{REVOKED_PREFIX}{jti}"),
                    value: token.username.as_bytes().to_vec(),
                    lease: Some(lease),
                }],
            })
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, Error> {
        let key = format!("{REVOKED_PREFIX}{jti}");
        Ok(self.store.get(&key).await.map_err(store_error)?.is_some())
    }
}

/// Says why a token was refused without echoing the token.
pub(crate) fn describe_jwt_error(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "token has expired; log in again".to_owned(),
        ErrorKind::InvalidIssuer => "token was issued by another issuer".to_owned(),
        ErrorKind::InvalidSignature => "token signature is invalid".to_owned(),
        ErrorKind::InvalidAlgorithm => "token algorithm is not accepted".to_owned(),
        ErrorKind::InvalidAudience => "token audience is not accepted".to_owned(),
        ErrorKind::MissingRequiredClaim(c) => format!("token lacks the {c} claim"),
        other => format!("token is invalid: {other:?}"),
    }
}
