//! One request: route it, authenticate the user, resolve the XDC, then forward it
//! (`forward.rs`) or answer it here (login, redirects, denials).

use std::future::Future;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::auth::{self, Credential};
use crate::config::XdcProxyConfig;
use crate::forward::{self, Connection};
use crate::respond::{self, ProxyBody};
use crate::route::{self, Route};
use crate::{Denial, XdcProxyError, XdcWebPolicy};

/// The login form is a few short fields; anything bigger is not one.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The proxy: cheap to clone, one per process. Serve it with [`XdcProxy::serve`] or, for a
/// connection accepted elsewhere (TLS, a test), [`XdcProxy::serve_connection`].
#[derive(Clone)]
pub struct XdcProxy {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: XdcProxyConfig,
    pub(crate) policy: Arc<dyn XdcWebPolicy>,
}

impl XdcProxy {
    /// A proxy for `config` asking `policy`; fails on an invalid domain or cookie name.
    pub fn new(mut config: XdcProxyConfig, policy: Arc<dyn XdcWebPolicy>) -> Result<XdcProxy, XdcProxyError> {
        config.validate()?;
        Ok(XdcProxy { inner: Arc::new(Inner { config, policy }) })
    }

    pub(crate) async fn handle(&self, req: Request<Incoming>, conn: &Connection) -> Response<ProxyBody> {
        let inner = &*self.inner;
        let config = &inner.config;
        let host_value = request_host(&req);
        let host = host_value.as_ref().and_then(host_name);
        let site = host.as_deref().and_then(|h| route::host_form(h, &config.domain));
        let uri = req.uri().clone();
        let query = uri.query();
        let (project, xdc, seed) = match route::route(site, uri.path(), query) {
            Route::Xdc { project, xdc, seed } => (project, xdc, seed),
            Route::Redirect(location) => return respond::redirect(StatusCode::FOUND, &location),
            Route::NotFound => return respond::text(StatusCode::NOT_FOUND, "no such XDC"),
            Route::Login => return self.login(req, host.as_deref()).await,
            Route::Logout => {
                let mut response = respond::redirect(StatusCode::SEE_OTHER, route::LOGIN_PATH);
                response
                    .headers_mut()
                    .insert(header::SET_COOKIE, auth::clear_cookie(config, host.as_deref()));
                return response;
            }
        };

        let credential = Credential::from_headers(req.headers(), &config.cookie_name);
        let Some(credential) = credential else { return anonymous(&req, config, host.as_deref(), false) };
        let user = match self.ask(inner.policy.authenticate(credential.token())).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return match credential {
                    Credential::Bearer(_) => respond::unauthorized("the bearer token is not valid", true),
                    // An expired session: sign in again, and drop the dead cookie.
                    Credential::Cookie(_) => anonymous(&req, config, host.as_deref(), true),
                };
            }
            Err(response) => return response,
        };
        if matches!(credential, Credential::Cookie(_))
            && (changes_state(req.method()) || crate::headers::is_upgrade(&req))
            && !auth::same_origin(req.headers(), host_value.as_ref())
        {
            return respond::text(StatusCode::FORBIDDEN, "cross-origin request refused");
        }

        let backend = match self.ask(inner.policy.resolve(&user, project, xdc)).await {
            Ok(Ok(backend)) => backend,
            Ok(Err(Denial::Forbidden(reason))) => return respond::text(StatusCode::FORBIDDEN, reason),
            Ok(Err(Denial::NotFound(reason))) => {
                let Some(seed) = seed else { return respond::text(StatusCode::NOT_FOUND, reason) };
                return match self.ask(inner.policy.resolve(&user, project, seed.xdc)).await {
                    Ok(Ok(_)) => respond::redirect(StatusCode::FOUND, &seed.location(project, query)),
                    Ok(Err(Denial::Forbidden(other))) => respond::text(StatusCode::FORBIDDEN, other),
                    Ok(Err(Denial::NotFound(_))) => respond::text(StatusCode::NOT_FOUND, reason),
                    Err(response) => response,
                };
            }
            Err(response) => return response,
        };
        tracing::debug!(target: "xdc_web", client = %conn.peer, %user, project, xdc, path = uri.path(), "forwarding");
        forward::forward(self, conn, req, &backend, project, xdc, host_value).await
    }

    /// A call to the policy, bounded in time: a portal that hangs costs the user a 503, not a
    /// request stuck forever.
    async fn ask<T>(&self, call: impl Future<Output = T>) -> Result<T, Response<ProxyBody>> {
        tokio::time::timeout(self.inner.config.timeouts.policy, call).await.map_err(|_| {
            tracing::warn!(target: "xdc_web", "the portal did not answer in time");
            respond::text(StatusCode::SERVICE_UNAVAILABLE, "the portal did not answer; try again")
        })
    }

    /// `/_trellis/login`: the form (GET), or a sign-in (POST) that sets the session cookie and
    /// sends the browser back where it was going.
    async fn login(&self, req: Request<Incoming>, host: Option<&str>) -> Response<ProxyBody> {
        let config = &self.inner.config;
        match *req.method() {
            Method::GET | Method::HEAD => {
                let next = form_field(req.uri().query().unwrap_or("").as_bytes(), "next");
                let next = next.as_deref().and_then(auth::safe_next).unwrap_or("/");
                return respond::login_page(StatusCode::OK, next, None);
            }
            Method::POST => {}
            _ => {
                let mut response = respond::text(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST");
                response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
                return response;
            }
        }
        // Login CSRF: another site must not sign the browser in to an account of its choosing.
        if !auth::same_origin(req.headers(), request_host(&req).as_ref()) {
            return respond::text(StatusCode::FORBIDDEN, "cross-origin sign-in refused");
        }
        let form = match Limited::new(req.into_body(), MAX_FORM_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return respond::text(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"),
        };
        let field = |name| form_field(&form, name).unwrap_or_default();
        let (username, password, next) = (field("username"), field("password"), field("next"));
        let next = auth::safe_next(&next).unwrap_or("/");
        if username.is_empty() || password.is_empty() {
            return respond::login_page(
                StatusCode::UNAUTHORIZED,
                next,
                Some("Enter a username and a password."),
            );
        }
        let token = match self.ask(self.inner.policy.login(&username, &password)).await {
            Ok(Ok(token)) => token,
            Ok(Err(reason)) => {
                tracing::info!(target: "xdc_web", %username, %reason, "sign-in refused");
                return respond::login_page(StatusCode::UNAUTHORIZED, next, Some(&reason));
            }
            Err(response) => return response,
        };
        let Some(cookie) = auth::session_cookie(config, &token, host) else {
            tracing::error!(target: "xdc_web", "the portal returned a token that cannot be stored in a cookie");
            return respond::text(StatusCode::INTERNAL_SERVER_ERROR, "sign-in failed");
        };
        let mut response = respond::redirect(StatusCode::SEE_OTHER, next);
        response.headers_mut().insert(header::SET_COOKIE, cookie);
        response
    }
}

/// No (valid) credentials: a browser page load goes to the login form and comes back after,
/// anything else gets 401.
fn anonymous(
    req: &Request<Incoming>,
    config: &XdcProxyConfig,
    host: Option<&str>,
    clear: bool,
) -> Response<ProxyBody> {
    let mut response =
        if auth::wants_html(req.headers()) && matches!(*req.method(), Method::GET | Method::HEAD) {
            let here = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
            respond::redirect(StatusCode::FOUND, &format!("{}?next={next}", route::LOGIN_PATH))
        } else {
            respond::unauthorized("sign in to the portal first (Authorization: Bearer <token>)", false)
        };
    if clear {
        response.headers_mut().insert(header::SET_COOKIE, auth::clear_cookie(config, host));
    }
    response
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn form_field(form: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(form).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// The host the client asked for: the URI authority (HTTP/2) or the `Host` header.
pub(crate) fn request_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    match req.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => req.headers().get(header::HOST).cloned(),
    }
}

/// A host as routes compare it: lowercase, without port or trailing dot.
fn host_name(value: &HeaderValue) -> Option<String> {
    let raw = value.to_str().ok()?;
    let name = if raw.starts_with('[') {
        raw.find(']').map_or(raw, |end| &raw[..=end])
    } else {
        raw.rsplit_once(':').map_or(raw, |(name, _)| name)
    };
    Some(name.trim_end_matches('.').to_ascii_lowercase())
}
