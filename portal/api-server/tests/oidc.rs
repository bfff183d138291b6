//! Tokens from a trusted external OpenID Connect issuer, verified through its JWKS URL.

mod common;

use axum::Json;
use axum::routing::get;
use common::TestPortal;
use tonic::Code;
use trellis_api::portal::v1 as pb;
use trellis_api_server::PortalConfig;
use trellis_identity::{OidcConfig, SigningKey};

const ISSUER: &str = "https://sso.example.org";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Serves `keys` as a JWKS document on a loopback port; returns the URL.
async fn jwks_server(keys: Vec<serde_json::Value>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let doc = serde_json::json!({ "keys": keys });
    let app = axum::Router::new().route("/jwks", get(move || async move { Json(doc) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/jwks")
}

#[tokio::test]
async fn external_issuer_tokens_name_local_users() {
    let idp = SigningKey::generate_ephemeral().unwrap();
    let stranger = SigningKey::generate_ephemeral().unwrap();
    let jwks_url = jwks_server(vec![idp.jwk()]).await;
    let config = PortalConfig {
        oidc: Some(OidcConfig {
            issuer: ISSUER.to_owned(),
            jwks_url,
            username_claim: "preferred_username".to_owned(),
            audience: Some("trellis".to_owned()),
        }),
        ..Default::default()
    };
    let portal = TestPortal::start_with(config).await;
    portal.user("alice", true).await;

    let claims = |user: &str, aud: &str, exp: i64| serde_json::json!({ "iss": ISSUER, "aud": aud, "preferred_username": user, "iat": now(), "exp": exp });
    let whoami = |token: String| async {
        let (mut ws, _) = portal.clients(Some(token)).await;
        ws.whoami(pb::WhoamiRequest {}).await
    };

    let good = idp.sign(&claims("alice", "trellis", now() + 300)).unwrap();
    assert_eq!(whoami(good).await.unwrap().into_inner().whoami, "alice");

    for (why, token) in [
        (
            "signed by a key the issuer does not publish",
            stranger.sign(&claims("alice", "trellis", now() + 300)).unwrap(),
        ),
        ("for another audience", idp.sign(&claims("alice", "other-app", now() + 300)).unwrap()),
        ("expired", idp.sign(&claims("alice", "trellis", now() - 3600)).unwrap()),
        ("naming a user the portal does not have", idp.sign(&claims("zed", "trellis", now() + 300)).unwrap()),
        ("naming an invalid username", idp.sign(&claims("Robert'); DROP", "trellis", now() + 300)).unwrap()),
    ] {
        let err = whoami(token).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "a token {why} must be refused: {err:?}");
    }
}
