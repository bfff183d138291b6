//! Token rejection: every way a bearer token can be wrong must end in `UNAUTHENTICATED`, and the
//! published JWKS must verify the portal's real tokens, across restarts.
//!
//! Forged tokens are signed here with `jsonwebtoken`, either with a foreign Ed25519 key or with
//! the portal's own key read back from the store (which is where every replica gets it), so the
//! test controls every claim.

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{ADMIN_PASSWORD, PASSWORD, TestPortal};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::identity_client::IdentityClient;
use trellis_api::portal::v1::workspace_client::WorkspaceClient;
use trellis_identity::keys::SIGNING_KEY_KEY;
use trellis_identity::{Claims, SigningKey, TokenConfig, TokenService};
use trellis_policy::{Policy, PolicyHandle};
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;

/// Sends `authorization` exactly as given (or not at all), so malformed schemes can be tried.
#[derive(Clone)]
struct RawAuth(Option<String>);

impl Interceptor for RawAuth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            let value = MetadataValue::try_from(value.as_str())
                .map_err(|_| tonic::Status::internal("not a valid header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

type RawWs = WorkspaceClient<InterceptedService<Channel, RawAuth>>;

async fn raw_client(portal: &TestPortal, header: Option<String>) -> RawWs {
    let channel = Channel::from_shared(format!("http://{}", portal.addr)).unwrap().connect().await.unwrap();
    WorkspaceClient::with_interceptor(channel, RawAuth(header))
}

/// Calls `Whoami` with `token` as a bearer token.
async fn whoami(portal: &TestPortal, token: &str) -> Result<String, tonic::Status> {
    let mut ws = raw_client(portal, Some(format!("Bearer {token}"))).await;
    ws.whoami(pb::WhoamiRequest {}).await.map(|r| r.into_inner().whoami)
}

/// Asserts `token` is refused as unauthenticated, with a message containing `why`.
async fn assert_rejected(portal: &TestPortal, what: &str, token: &str, why: &str) {
    match whoami(portal, token).await {
        Ok(user) => panic!("{what}: token accepted as {user}"),
        Err(status) => {
            assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
            assert!(
                status.message().to_lowercase().contains(why),
                "{what}: message {:?} should mention {why:?}",
                status.message()
            );
            // The refusal must never echo the token back.
            assert!(
                token.len() < 20 || !status.message().contains(token),
                "{what}: message echoes the token"
            );
        }
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Well-formed portal claims (with a unique `jti`) as JSON.
fn claims(iss: &str, sub: &str, iat: i64, exp: i64) -> Value {
    serde_json::to_value(Claims { iss: iss.into(), sub: sub.into(), iat, exp, jti: unique_jti() }).unwrap()
}

fn unique_jti() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!("forged{:016x}{:08x}", now(), N.fetch_add(1, Ordering::Relaxed))
}

/// An Ed25519 key as the portal stores it: key id and PKCS#8 document.
struct KeyMaterial {
    kid: String,
    pkcs8: Vec<u8>,
}

impl KeyMaterial {
    /// The signing key stored in `store` (created on first use, as a portal would).
    async fn from_store(store: &dyn Store) -> KeyMaterial {
        SigningKey::load_or_create(store).await.unwrap();
        let kv = store.get(SIGNING_KEY_KEY).await.unwrap().expect("signing key stored");
        let stored: Value = serde_json::from_slice(&kv.value).unwrap();
        KeyMaterial {
            kid: stored["kid"].as_str().unwrap().to_owned(),
            pkcs8: STANDARD.decode(stored["pkcs8"].as_str().unwrap()).unwrap(),
        }
    }

    fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).unwrap()
    }
}

/// A key the portal has never seen, with its own store so it can be read back the same way.
async fn foreign_key() -> (KeyMaterial, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("foreign.redb")).unwrap();
    (KeyMaterial::from_store(&store).await, dir)
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// The portal's JWKS document, fetched over plain HTTP like any relying party would.
async fn jwks(portal: &TestPortal) -> Value {
    let url = format!("http://{}/.well-known/jwks.json", portal.addr);
    let response = reqwest::get(&url).await.unwrap();
    assert!(response.status().is_success(), "GET {url}: {}", response.status());
    response.json().await.unwrap()
}

#[tokio::test]
async fn forged_and_malformed_tokens_are_unauthenticated() {
    let portal = TestPortal::start().await;
    let real = portal.login("admin", ADMIN_PASSWORD).await;
    // Positive control: the real token works, so every refusal below is about the token.
    assert_eq!(whoami(&portal, &real).await.unwrap(), "admin");

    let portal_key = KeyMaterial::from_store(portal.store.as_ref()).await;
    let header = jsonwebtoken::decode_header(&real).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(portal_key.kid.as_str()), "tokens carry the stored key's id");
    let t = now();
    let good = claims("trellis", "admin", t, t + 3600);
    // Sanity check of the harness itself: the portal key signs tokens the portal accepts.
    assert_eq!(whoami(&portal, &portal_key.sign(Some(&portal_key.kid), &good)).await.unwrap(), "admin");
    assert_eq!(whoami(&portal, &portal_key.sign(None, &good)).await.unwrap(), "admin");

    // Another Ed25519 key, claiming the portal's key id, no key id, or its own.
    let (foreign, _dir) = foreign_key().await;
    assert_ne!(foreign.kid, portal_key.kid);
    for (what, kid) in [
        ("foreign key with the portal's kid", Some(portal_key.kid.as_str())),
        ("foreign key without kid", None),
        ("foreign key with its own kid", Some(foreign.kid.as_str())),
    ] {
        assert_rejected(&portal, what, &foreign.sign(kid, &good), "signature").await;
    }
    // A foreign portal's genuine token (its own TokenService, same issuer name).
    let dir = tempfile::tempdir().unwrap();
    let other_store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("o.redb")).unwrap());
    let other = TokenService::new(other_store, TokenConfig::default(), None).await.unwrap();
    let (other_token, _) = other.issue("admin").unwrap();
    assert_rejected(&portal, "another portal's token", &other_token, "signature").await;

    // alg "none" with no signature, with and without the portal's kid.
    let claims_b64 = b64(&good);
    for header in [json!({"alg": "none", "typ": "JWT"}), json!({"alg": "none", "kid": portal_key.kid})] {
        let unsigned = format!("{}.{claims_b64}.", b64(&header));
        assert_rejected(&portal, "alg none", &unsigned, "token").await;
    }
    // The real token's header and payload with the signature stripped.
    let stripped = real.rsplit_once('.').unwrap().0.to_owned() + ".";
    assert_rejected(&portal, "signature stripped", &stripped, "token").await;

    // Algorithm confusion: HS256 keyed with the public key (raw bytes, and its JWK text).
    let x = jwks(&portal).await["keys"][0]["x"].as_str().unwrap().to_owned();
    let raw_public = URL_SAFE_NO_PAD.decode(&x).unwrap();
    for (what, secret) in [
        ("HS256 keyed with public key bytes", raw_public.clone()),
        ("HS256 keyed with x", x.clone().into_bytes()),
    ] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(portal_key.kid.clone());
        let token = jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(&secret)).unwrap();
        assert_rejected(&portal, what, &token, "algorithm").await;
    }

    // Expired beyond the 30 s leeway, signed with the real key.
    let expired = claims("trellis", "admin", t - 7200, t - 3600);
    assert_rejected(&portal, "expired", &portal_key.sign(Some(&portal_key.kid), &expired), "expired").await;
    let just_expired = claims("trellis", "admin", t - 600, t - 120);
    assert_rejected(
        &portal,
        "expired 2 min ago",
        &portal_key.sign(Some(&portal_key.kid), &just_expired),
        "expired",
    )
    .await;
    // Within the documented leeway a token still counts (clock skew between replicas).
    let skewed = claims("trellis", "admin", t - 600, t - 5);
    assert_eq!(whoami(&portal, &portal_key.sign(Some(&portal_key.kid), &skewed)).await.unwrap(), "admin");

    // Wrong issuer, signed with the real key: by hand and through a TokenService configured so.
    let evil = claims("evil", "admin", t, t + 3600);
    assert_rejected(&portal, "issuer evil", &portal_key.sign(Some(&portal_key.kid), &evil), "issuer").await;
    let evil_service = TokenService::new(
        portal.store.clone(),
        TokenConfig { issuer: "evil".into(), ttl: std::time::Duration::from_secs(600) },
        None,
    )
    .await
    .unwrap();
    let (evil_token, evil_claims) = evil_service.issue("admin").unwrap();
    assert_eq!(jsonwebtoken::decode_header(&evil_token).unwrap().kid, Some(portal_key.kid.clone()));
    assert_eq!(evil_claims.iss, "evil");
    assert_rejected(&portal, "TokenService with issuer evil", &evil_token, "issuer").await;

    // Required claims missing.
    for (what, body, why) in [
        ("no exp", json!({"iss": "trellis", "sub": "admin", "iat": t, "jti": "x1"}), "exp"),
        ("no iss", json!({"sub": "admin", "iat": t, "exp": t + 600, "jti": "x2"}), "iss"),
        ("no sub", json!({"iss": "trellis", "iat": t, "exp": t + 600, "jti": "x3"}), "sub"),
        ("no jti", json!({"iss": "trellis", "sub": "admin", "iat": t, "exp": t + 600}), "token"),
    ] {
        assert_rejected(&portal, what, &portal_key.sign(Some(&portal_key.kid), &body), why).await;
    }

    // A genuine signature over someone else's payload: alice's token re-addressed to admin.
    portal.user("alice", true).await;
    let alice = portal.login("alice", PASSWORD).await;
    assert_eq!(whoami(&portal, &alice).await.unwrap(), "alice");
    let mut parts: Vec<&str> = alice.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("admin");
    let tampered_payload = b64(&payload);
    parts[1] = &tampered_payload;
    assert_rejected(&portal, "payload re-addressed to admin", &parts.join("."), "signature").await;

    // A well-signed token for an account that does not exist.
    let ghost = claims("trellis", "ghost", t, t + 600);
    assert_rejected(&portal, "unknown subject", &portal_key.sign(Some(&portal_key.kid), &ghost), "ghost")
        .await;

    // Garbage.
    for garbage in [
        "garbage",
        "a.b.c",
        "...",
        "e30.e30.",
        "eyJhbGciOiJFZERTQSJ9",
        "eyJhbGciOiJFZERTQSJ9.e30.AAAA",
        &format!("{real}x"),
        &format!("x{real}"),
        &real[..real.len() / 2],
    ] {
        assert_rejected(&portal, &format!("garbage {garbage:?}"), garbage, "token").await;
    }
    // Not a bearer credential at all, or an empty one: the same as no token.
    for header in [
        format!("Basic {}", STANDARD.encode("admin:admin-password-1")),
        format!("Token {real}"),
        real.clone(),
        "Bearer ".to_owned(),
        "Bearer None".to_owned(),
    ] {
        let mut ws = raw_client(&portal, Some(header.clone())).await;
        let err = ws.whoami(pb::WhoamiRequest {}).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{header:?}: {err:?}");
    }

    // The real token still works after all of that.
    assert_eq!(whoami(&portal, &real).await.unwrap(), "admin");
}

#[tokio::test]
async fn forged_admin_token_gains_nothing_on_public_methods() {
    // Public methods ignore a bad token instead of failing; they must then treat the caller as
    // anonymous, never as the subject the forged token names.
    let portal = TestPortal::start().await;
    let (foreign, _dir) = foreign_key().await;
    let portal_key = KeyMaterial::from_store(portal.store.as_ref()).await;
    let t = now();
    let forged = foreign.sign(Some(&portal_key.kid), &claims("trellis", "admin", t, t + 600));
    let channel = Channel::from_shared(format!("http://{}", portal.addr)).unwrap().connect().await.unwrap();
    let mut id = IdentityClient::with_interceptor(channel, RawAuth(Some(format!("Bearer {forged}"))));
    let register = |admin: bool, name: &str| pb::RegisterRequest {
        username: name.into(),
        email: format!("{name}@example.org"),
        password: PASSWORD.into(),
        admin,
        ..Default::default()
    };
    let err = id.register(register(true, "sneaky")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // Registering as an ordinary user works, and the account waits for activation (an
    // administrator's registration would have been active at once).
    id.register(register(false, "plain")).await.unwrap();
    let (mut admin, _) = portal.admin().await;
    let user = admin
        .get_user(pb::GetUserRequest { username: "plain".into(), status_ms: 0 })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.state, pb::UserState::Pending as i32);
    assert!(!user.admin);
    // Login ignores the stale token and answers for the credentials given.
    let token = id
        .login(pb::LoginRequest { username: "plain".into(), password: PASSWORD.into() })
        .await
        .unwrap()
        .into_inner()
        .token;
    assert_eq!(whoami(&portal, &token).await.unwrap(), "plain");
}

#[tokio::test]
async fn logout_revokes_only_that_token() {
    let portal = TestPortal::start().await;
    portal.user("bob", true).await;
    let first = portal.login("bob", PASSWORD).await;
    let second = portal.login("bob", PASSWORD).await;
    assert_ne!(first, second);
    let (_, mut id) = portal.clients(Some(first.clone())).await;
    id.logout(pb::LogoutRequest { username: "bob".into() }).await.unwrap();
    assert_rejected(&portal, "after logout", &first, "revoked").await;
    // Logging out again with the revoked token is itself refused.
    let err = id.logout(pb::LogoutRequest { username: "bob".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    // Other sessions of the same user are untouched.
    assert_eq!(whoami(&portal, &second).await.unwrap(), "bob");
}

#[tokio::test]
async fn jwks_verifies_tokens_and_the_key_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("state.redb")).unwrap());
    let first = TestPortal::start_on(store.clone(), PolicyHandle::fixed(Policy::builtin())).await;
    let token = first.login("admin", ADMIN_PASSWORD).await;
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.expect("portal tokens carry a kid");

    let document = jwks(&first).await;
    let keys = document["keys"].as_array().expect("keys array");
    let key =
        keys.iter().find(|k| k["kid"] == json!(kid)).unwrap_or_else(|| panic!("kid {kid} in {document}"));
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    // Only public material is published.
    assert!(key.get("d").is_none(), "private key published: {key}");
    let decoding = DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["trellis"]);
    let verified = jsonwebtoken::decode::<Claims>(&token, &decoding, &validation).unwrap();
    assert_eq!(verified.claims.sub, "admin");
    assert!(verified.claims.exp > now());
    // The JWKS key does not verify a token signed by anyone else.
    let (foreign, _foreign_dir) = foreign_key().await;
    let t = now();
    let forged = foreign.sign(Some(&kid), &claims("trellis", "admin", t, t + 600));
    assert!(jsonwebtoken::decode::<Claims>(&forged, &decoding, &validation).is_err());

    // A token revoked before the restart stays revoked after it.
    let doomed = first.login("admin", ADMIN_PASSWORD).await;
    let (_, mut id) = first.clients(Some(doomed.clone())).await;
    id.logout(pb::LogoutRequest { username: "admin".into() }).await.unwrap();

    // Restart: stop the first portal and start another over the same store.
    drop(id);
    drop(first);
    let second = TestPortal::start_on(store.clone(), PolicyHandle::fixed(Policy::builtin())).await;
    assert_eq!(jwks(&second).await, document, "the signing key changed across the restart");
    assert_eq!(whoami(&second, &token).await.unwrap(), "admin");
    assert_rejected(&second, "revoked before restart", &doomed, "revoked").await;
    let fresh = second.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(jsonwebtoken::decode_header(&fresh).unwrap().kid, Some(kid));
    drop(second);
    drop(store);
}
