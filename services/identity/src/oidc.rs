//! Trusting an external OpenID Connect issuer: its tokens are verified against the keys it
//! publishes at its JWKS URL, and one claim names the Trellis user.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Header, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;
use trellis_types::{Error, validate_name};

use crate::tokens::{Verified, describe_jwt_error};

/// How often the JWKS may be refetched when a token names an unknown key id; bounds the load
/// an attacker can put on the issuer with made-up key ids.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// An external issuer whose tokens the portal accepts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer's `iss` value.
    pub issuer: String,
    /// Where its signing keys are published.
    pub jwks_url: String,
    /// The claim holding the Trellis username (e.g. `preferred_username`).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// The audience tokens must carry, if any.
    #[serde(default)]
    pub audience: Option<String>,
}

fn default_username_claim() -> String {
    "preferred_username".to_owned()
}

pub(crate) struct OidcVerifier {
    config: OidcConfig,
    http: reqwest::Client,
    keys: RwLock<Option<(Instant, JwkSet)>>,
}

impl OidcVerifier {
    pub(crate) fn new(config: OidcConfig) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        OidcVerifier { config, http, keys: RwLock::new(None) }
    }

    /// Whether the token's (unverified) `iss` is this issuer: used only to pick the verifier.
    pub(crate) fn claims_issuer_matches(&self, token: &str) -> bool {
        #[derive(Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        let Some(payload) = token.split('.').nth(1) else { return false };
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(payload) else { return false };
        serde_json::from_slice::<Iss>(&bytes)
            .ok()
            .and_then(|c| c.iss)
            .is_some_and(|iss| iss == self.config.issuer)
    }

    pub(crate) async fn verify(&self, token: &str, header: &Header) -> Result<Verified, Error> {
        let kid = header
            .kid
            .clone()
            .ok_or_else(|| Error::Unauthenticated("external token has no key id".to_owned()))?;
        let key = self.decoding_key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        match &self.config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation)
                .map_err(|e| Error::Unauthenticated(describe_jwt_error(&e)))?;
        let username = data
            .claims
            .get(&self.config.username_claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                Error::Unauthenticated(format!(
                    "external token lacks the {} claim that names the user",
                    self.config.username_claim
                ))
            })?
            .to_owned();
        validate_name("username", &username).map_err(|_| {
            Error::Unauthenticated(format!("external username {username:?} is not a valid Trellis name"))
        })?;
        let expires = data.claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(0);
        Ok(Verified { username, jti: None, expires })
    }

    async fn decoding_key(&self, kid: &str) -> Result<DecodingKey, Error> {
        if let Some(key) = self.cached_key(kid).await? {
            return Ok(key);
        }
        let may_refresh = match &*self.keys.read().await {
            Some((fetched, _)) => fetched.elapsed() >= MIN_REFRESH_INTERVAL,
            None => true,
        };
        if may_refresh {
            let set = self.fetch().await?;
            *self.keys.write().await = Some((Instant::now(), set));
        }
        self.cached_key(kid).await?.ok_or_else(|| {
            Error::Unauthenticated(format!("external token key {kid} is not published by its issuer"))
        })
    }

    async fn cached_key(&self, kid: &str) -> Result<Option<DecodingKey>, Error> {
        let guard = self.keys.read().await;
        let Some((_, set)) = &*guard else { return Ok(None) };
        match set.find(kid) {
            Some(jwk) => DecodingKey::from_jwk(jwk)
                .map(Some)
                .map_err(|e| Error::Unauthenticated(format!("issuer key {kid} is unusable: {e}"))),
            None => Ok(None),
        }
    }

    async fn fetch(&self) -> Result<JwkSet, Error> {
        let response = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| Error::Unavailable(format!("fetching the issuer's JWKS: {e}")))?;
        response
            .json::<JwkSet>()
            .await
            .map_err(|e| Error::Unavailable(format!("issuer's JWKS is not valid: {e}")))
    }
}
