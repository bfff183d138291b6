//! A real portal in process for the web tests: the API on an embedded store in a temp dir with
//! the built-in policy, the web router over it, and helpers to act as a browser would (cookies,
//! CSRF fields, form posts) or as an API client (to set up users).

#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::header::{CONTENT_TYPE, COOKIE, LOCATION};
use http::{Request, StatusCode};
use tower::ServiceExt;
use trellis_api::portal::v1 as pb;
use trellis_api_server::{Portal, PortalConfig};
use trellis_policy::{Policy, PolicyHandle};
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;
use trellis_web::api::{anonymous, authed};
use trellis_web::{Api, WebConfig};

pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "user-password-1";

/// A portal and the web portal over it; the store's directory goes when this is dropped.
pub struct TestWeb {
    pub portal: Portal,
    pub api: Api,
    pub web: Router,
    _dir: tempfile::TempDir,
}

/// A page as the browser got it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Reply {
    /// The redirect target, panicking (with the page) when the answer was not a redirect.
    pub fn redirected_to(&self) -> &str {
        self.location
            .as_deref()
            .unwrap_or_else(|| panic!("expected a redirect, got {}: {}", self.status, self.body))
    }
}

impl TestWeb {
    pub async fn start() -> TestWeb {
        TestWeb::start_with(|_, _| PortalConfig::default()).await
    }

    /// A portal whose configuration `config` makes from its store and a scratch directory
    /// (for services such as models that keep state of their own).
    pub async fn start_with(
        config: impl FnOnce(Arc<dyn Store>, &std::path::Path) -> PortalConfig,
    ) -> TestWeb {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("state.redb")).expect("store"));
        let config = config(store.clone(), dir.path());
        let portal =
            Portal::new(store, PolicyHandle::fixed(Policy::builtin()), config).await.expect("portal");
        portal.workspace().bootstrap_admin(Some(ADMIN_PASSWORD.to_owned())).await.expect("bootstrap admin");
        let api = Api::in_process(portal.router());
        let config = WebConfig { secure_cookies: false, ..WebConfig::default() };
        let web = trellis_web::router(api.clone(), config);
        TestWeb { portal, api, web, _dir: dir }
    }

    /// A portal that compiles models with the real sandboxed compiler and the project's venv.
    pub async fn start_with_models() -> TestWeb {
        TestWeb::start_with(|store, dir| {
            let blobs = trellis_blobs::local::LocalBlobStore::open(&dir.join("blobs")).expect("blob dir");
            let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv");
            let compiler = trellis_compiler::Compiler::new(trellis_compiler::CompilerConfig::new(venv))
                .map_err(|e| e.to_string());
            PortalConfig {
                models: Some(trellis_model::ModelService::new(store, Arc::new(blobs), compiler)),
                ..Default::default()
            }
        })
        .await
    }

    /// Logs in through the API and returns the token (the session cookie's value).
    pub async fn login(&self, username: &str, password: &str) -> String {
        let request = pb::LoginRequest { username: username.into(), password: password.into() };
        self.api
            .identity()
            .login(anonymous(request))
            .await
            .unwrap_or_else(|e| panic!("login {username}: {e}"))
            .into_inner()
            .token
    }

    pub async fn admin_token(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }

    /// Registers `username` (password [`PASSWORD`]), activates it as the administrator, and
    /// returns a token for it.
    pub async fn active_user(&self, username: &str) -> String {
        self.register(username).await;
        let admin = self.admin_token().await;
        let request = pb::ActivateUserRequest { username: username.into(), ..Default::default() };
        self.api
            .workspace()
            .activate_user(authed(&admin, request))
            .await
            .unwrap_or_else(|e| panic!("activate {username}: {e}"));
        self.login(username, PASSWORD).await
    }

    /// Registers `username` (password [`PASSWORD`]) without activating it.
    pub async fn register(&self, username: &str) {
        let request = pb::RegisterRequest {
            username: username.into(),
            email: format!("{username}@example.org"),
            password: PASSWORD.into(),
            name: username.into(),
            institution: "Other".into(),
            category: "Researcher".into(),
            country: "US".into(),
            ..Default::default()
        };
        self.api
            .identity()
            .register(anonymous(request))
            .await
            .unwrap_or_else(|e| panic!("register {username}: {e}"));
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.web.clone().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await.expect("body");
        Reply { status, location, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    /// GET `path` with the session cookie of `token`.
    pub async fn get(&self, token: &str, path: &str) -> Reply {
        let request = Request::get(path)
            .header(COOKIE, format!("{}={token}", trellis_web::session::DEFAULT_SESSION_COOKIE))
            .body(Body::empty())
            .expect("request");
        self.send(request).await
    }

    /// POSTs `fields` to `path` as a form of `token`'s session, with the right CSRF field.
    pub async fn post(&self, token: &str, path: &str, fields: &[(&str, &str)]) -> Reply {
        let csrf = trellis_web::session::csrf_for(token);
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(token, path, &all).await
    }

    /// POSTs `fields` and `files` (name, file name, content) as `multipart/form-data`, as a
    /// browser sends a form with a file input, with the right CSRF field.
    pub async fn post_multipart(
        &self,
        token: &str,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &str)],
    ) -> Reply {
        const BOUNDARY: &str = "----trellis-test-boundary-7d1f";
        let csrf = trellis_web::session::csrf_for(token);
        let mut body = String::new();
        for (name, value) in std::iter::once(&("csrf", csrf.as_str())).chain(fields) {
            body.push_str(&format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        for (name, filename, content) in files {
            body.push_str(&format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                 Content-Type: text/x-python\r\n\r\n{content}\r\n"
            ));
        }
        body.push_str(&format!("--{BOUNDARY}--\r\n"));
        let request = Request::post(path)
            .header(COOKIE, format!("{}={token}", trellis_web::session::DEFAULT_SESSION_COOKIE))
            .header(CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(Body::from(body))
            .expect("request");
        self.send(request).await
    }

    /// POSTs exactly `fields` (no CSRF field added).
    pub async fn post_raw(&self, token: &str, path: &str, fields: &[(&str, &str)]) -> Reply {
        self.post_with_headers(token, path, fields, &[]).await
    }

    /// POSTs exactly `fields` with extra request `headers` (e.g. `Origin`, `Host`).
    pub async fn post_with_headers(
        &self,
        token: &str,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let mut request = Request::post(path)
            .header(COOKIE, format!("{}={token}", trellis_web::session::DEFAULT_SESSION_COOKIE))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(body)).expect("request")).await
    }
}

/// `text` as it appears in a page's text (HTML-escaped).
pub fn escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl TestWeb {
    /// GET `path` with the session cookie of `token`, keeping the response headers (downloads).
    pub async fn get_with_headers(&self, token: &str, path: &str) -> (Reply, http::HeaderMap) {
        let request = Request::get(path)
            .header(COOKIE, format!("{}={token}", trellis_web::session::DEFAULT_SESSION_COOKIE))
            .body(Body::empty())
            .expect("request");
        let response = self.web.clone().oneshot(request).await.expect("the router answers");
        let (parts, body) = response.into_parts();
        let location = parts.headers.get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = axum::body::to_bytes(body, 16 << 20).await.expect("body");
        let reply =
            Reply { status: parts.status, location, body: String::from_utf8_lossy(&bytes).into_owned() };
        (reply, parts.headers)
    }
}
