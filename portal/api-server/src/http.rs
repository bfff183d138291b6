//! Plain HTTP endpoints served on the API address next to gRPC.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use trellis_identity::TokenService;
use trellis_store::Store;

#[derive(Clone)]
struct HttpState {
    tokens: Arc<TokenService>,
    store: Arc<dyn Store>,
}

/// `/.well-known/jwks.json` (the portal's token keys) and `/healthz`.
pub fn router(tokens: Arc<TokenService>, store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/healthz", get(healthz))
        .with_state(HttpState { tokens, store })
}

async fn jwks(State(state): State<HttpState>) -> Json<serde_json::Value> {
    Json(state.tokens.jwks())
}

async fn healthz(State(state): State<HttpState>) -> (StatusCode, String) {
    match state.store.current_revision().await {
        Ok(revision) => (StatusCode::OK, format!("ok (store revision {revision})\n")),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("state store unavailable: {e}\n")),
    }
}
