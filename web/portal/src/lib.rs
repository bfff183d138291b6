//! The Trellis web portal ("launch"): every user and admin flow as server-rendered pages.
//!
//! Pages are leptos views rendered to HTML on the server (no wasm); forms are plain HTML
//! forms posted back to axum handlers, so every page works without JavaScript. Each handler
//! talks to the portal through its public gRPC API ([`api::Api`]) as the signed-in user, so the
//! policy gate that guards the API guards the pages, with the same reasons on refusal.
//!
//! Map: `api` (the in-process or remote API client), `session` (cookie, CSRF), `forms`
//! (checked form extraction), `layout` (page shell), `pages/*` (one module per area).

pub mod api;
pub mod error;
pub mod forms;
pub mod layout;
pub mod pages;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};

pub use api::Api;
pub use error::WebError;

/// Settings of the web portal.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// The session cookie's name. `trellisd up` gives the XDC web proxy the same name, so a
    /// portal login also opens Jupyter on the same host.
    pub session_cookie: String,
    /// Mark cookies `Secure`. Browsers keep Secure cookies from `http://localhost` and
    /// `http://127.0.0.1`, so only a plain-HTTP portal on another name needs this off.
    pub secure_cookies: bool,
    /// How long the session cookie lives; the token's own expiry still applies.
    pub session_lifetime: Duration,
    /// How often pages showing work in progress reload themselves.
    pub refresh_interval: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_cookie: session::DEFAULT_SESSION_COOKIE.to_owned(),
            secure_cookies: true,
            session_lifetime: Duration::from_secs(24 * 3600),
            refresh_interval: Duration::from_secs(2),
        }
    }
}

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub api: Api,
    pub config: Arc<WebConfig>,
}

/// Access to the configuration for extractors that are generic over the state.
pub trait HasConfig {
    fn config(&self) -> &WebConfig;
}

impl HasConfig for AppState {
    fn config(&self) -> &WebConfig {
        &self.config
    }
}

/// Every page, the style sheet, and a fallback that says what was not found.
pub fn router(api: Api, config: WebConfig) -> Router {
    let state = AppState { api, config: Arc::new(config) };
    pages::routes().route(layout::STYLE_PATH, get(style)).with_state(state)
}

async fn style() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/css; charset=utf-8"), (CACHE_CONTROL, "public, max-age=3600")], layout::STYLE)
}
