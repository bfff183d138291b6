//! Who is signed in, and proof that a form came from one of our pages.
//!
//! The session is the portal token itself, kept in an HttpOnly, SameSite=Strict cookie (Secure
//! unless configured off for plain-HTTP development), so nothing server-side needs to be shared
//! between replicas and logging out revokes it everywhere the API is used. The token is checked
//! by the API on every call a page makes; the extractor here only reads it.
//!
//! CSRF: every form carries a token the attacker cannot compute. Signed in, it is a hash of
//! the session token (which the attacker cannot read); signed out (login and registration) it
//! is a random value that must match a second cookie (double submit). Requests whose `Origin`
//! names another site are refused before that.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::{COOKIE, HOST, ORIGIN};
use sha2::{Digest, Sha256};

use crate::error::WebError;

/// The cookie holding the signed-in user's portal token.
pub const DEFAULT_SESSION_COOKIE: &str = "trellis_session";
/// The cookie that pairs with the CSRF field of signed-out forms.
pub const PRE_SESSION_COOKIE: &str = "trellis_presession";

/// A signed-in user, as far as the cookie says; the API decides whether it still holds.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub username: String,
}

impl Session {
    /// The CSRF field value of this session's forms.
    pub fn csrf(&self) -> String {
        csrf_for(&self.token)
    }

    /// Reads the session from the request's cookies; `None` when there is none.
    pub fn from_headers(headers: &HeaderMap, cookie_name: &str) -> Option<Session> {
        let token = cookie(headers, cookie_name)?.to_owned();
        let username = token_subject(&token)?;
        Some(Session { token, username })
    }
}

/// The CSRF token tied to a session token.
pub fn csrf_for(token: &str) -> String {
    let digest = Sha256::new().chain_update(b"trellis-web-csrf\0").chain_update(token.as_bytes()).finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// A fresh random value for the pre-session cookie.
pub fn new_pre_session() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
}

/// Compares in time independent of where the strings differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The username a portal token names (its `sub` claim). Not a verification: the API verifies
/// the token on every call; this only labels the page.
fn token_subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

/// The value of cookie `name`, looking through every `Cookie` header.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `Set-Cookie` value for `name=value` with the portal's attributes; `max_age` 0 removes it.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age_secs: u64) -> String {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}");
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// Refuses a state-changing request whose `Origin` is another site. Browsers send `Origin`
/// on every cross-site POST, so a missing header is a same-origin form or a non-browser client.
pub fn check_origin(headers: &HeaderMap) -> Result<(), WebError> {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin);
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(WebError::Csrf(format!("the form was sent from {origin}, not from this portal")))
    }
}

/// A page for signed-in users: without a session, the browser is sent to the login page.
pub struct SignedIn(pub Session);

impl<S> FromRequestParts<S> for SignedIn
where
    S: Send + Sync + crate::HasConfig,
{
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let cookie_name = &state.config().session_cookie;
        match Session::from_headers(&parts.headers, cookie_name) {
            Some(session) => Ok(SignedIn(session)),
            None => Err(WebError::SignedOut { next: parts.uri.path_and_query().map(|p| p.to_string()) }),
        }
    }
}

/// A page anyone may see; carries the session when there is one.
pub struct MaybeSignedIn(pub Option<Session>);

impl<S> FromRequestParts<S> for MaybeSignedIn
where
    S: Send + Sync + crate::HasConfig,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeSignedIn(Session::from_headers(&parts.headers, &state.config().session_cookie)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_differ_per_session_and_compare_exactly() {
        let (a, b) = (csrf_for("token-a"), csrf_for("token-b"));
        assert_ne!(a, b);
        assert!(same_secret(&a, &csrf_for("token-a")));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret(&a, &a[1..]));
    }

    #[test]
    fn cookies_are_found_among_others_and_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, "a=1; trellis_session=tok".parse().unwrap());
        headers.append(COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&headers, "trellis_session"), Some("tok"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "trellis"), None);
    }

    #[test]
    fn cross_site_origins_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, "portal.example:8080".parse().unwrap());
        assert!(check_origin(&headers).is_ok());
        headers.insert(ORIGIN, "http://portal.example:8080".parse().unwrap());
        assert!(check_origin(&headers).is_ok());
        headers.insert(ORIGIN, "https://evil.example".parse().unwrap());
        assert!(matches!(check_origin(&headers), Err(WebError::Csrf(_))));
    }

    #[test]
    fn the_subject_is_read_from_the_token_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"alice","exp":1}"#);
        assert_eq!(token_subject(&format!("h.{payload}.s")).as_deref(), Some("alice"));
        assert_eq!(token_subject("not-a-jwt"), None);
    }
}
