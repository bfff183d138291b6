//! Identity: credentials, login tokens and their verification.
//!
//! An identity is a username with an argon2id password hash. Logging in issues a JWT signed with
//! the portal's Ed25519 key; the key lives in the state store, so every API replica signs and
//! verifies with the same key and it survives restarts. Logging out revokes the token's `jti`
//! until the token would have expired anyway. Tokens from one external OIDC issuer can be trusted
//! too, verified against its JWKS.
//!
//! What this crate is not: it does not know about users' projects, states or roles (that is the
//! workspace service), and it does not decide what a caller may do (that is the policy).
//!
//! Layout:
//! - [`password`]: argon2id hashing.
//! - [`records`]: the stored identity record and the store ops that create or delete it.
//! - [`keys`]: the portal signing key, created once and shared through the store; JWKS.
//! - [`tokens`]: issuing, verifying and revoking tokens.
//! - [`oidc`]: trusting an external issuer through its JWKS URL.

pub mod keys;
pub mod oidc;
pub mod password;
pub mod records;
pub mod tokens;

pub use keys::SigningKey;
pub use oidc::OidcConfig;
pub use records::IdentityRecord;
pub use tokens::{Claims, TokenConfig, TokenService, Verified};

use trellis_store::StoreError;
use trellis_types::Error;

/// Maps a store failure to the service error: retryable failures become `Unavailable`.
pub(crate) fn store_error(err: StoreError) -> Error {
    match err {
        StoreError::Unavailable { .. } => Error::Unavailable(err.to_string()),
        other => Error::Internal(other.to_string()),
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
