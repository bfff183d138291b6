//! Forwarding to Jupyter: the request goes on with the portal's credentials replaced by
//! Jupyter's token, the answer comes back streamed, and a WebSocket upgrade becomes two
//! upgraded connections spliced together.

use std::net::SocketAddr;

use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Backend;
use crate::auth;
use crate::headers;
use crate::proxy::XdcProxy;
use crate::redact::{self, Redacted};
use crate::respond::{self, ProxyBody};
use crate::upstream::Upstreams;

/// What every request on one client connection shares.
pub(crate) struct Connection {
    pub(crate) peer: SocketAddr,
    pub(crate) peer_ip: HeaderValue,
    /// Fires when the proxy stops; ends spliced WebSockets, which cannot drain gracefully.
    pub(crate) stop: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) upstreams: Upstreams,
}

pub(crate) async fn forward(
    proxy: &XdcProxy,
    conn: &Connection,
    mut req: Request<Incoming>,
    backend: &Backend,
    project: &str,
    xdc: &str,
    public_host: Option<HeaderValue>,
) -> Response<ProxyBody> {
    let inner = &*proxy.inner;
    let config = &inner.config;
    let Ok(jupyter_auth) = HeaderValue::from_str(&format!("token {}", backend.jupyter_token)) else {
        tracing::error!(target: "xdc_web", project, xdc, "the XDC's Jupyter token is not a valid header value");
        return respond::text(StatusCode::BAD_GATEWAY, "the XDC is misconfigured");
    };
    let authority = match Authority::try_from(backend.addr.to_string()) {
        Ok(authority) => authority,
        Err(_) => return respond::text(StatusCode::BAD_GATEWAY, "the XDC is misconfigured"),
    };
    let Some(path) = backend_path(req.uri(), project, xdc, &backend.base_path) else {
        return respond::text(StatusCode::BAD_REQUEST, "the path cannot be forwarded");
    };

    let upgrade = headers::is_upgrade(&req);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let client_version = req.version();
    let (mut parts, body) = req.into_parts();
    let h = &mut parts.headers;
    headers::strip_hop_by_hop(h, upgrade);
    // The portal token must never reach the XDC: users control what runs there.
    h.insert(header::AUTHORIZATION, jupyter_auth);
    auth::strip_cookie(h, &config.cookie_name);
    headers::set_forwarded(
        h,
        &conn.peer_ip,
        config.trust_forwarded,
        config.secure_cookie,
        public_host.as_ref(),
    );
    // Jupyter on a loopback address refuses other `Host` names (its DNS-rebinding guard), and
    // the public name is in `X-Forwarded-Host` for whoever needs it.
    h.insert(
        header::HOST,
        HeaderValue::from_str(authority.as_str()).unwrap_or(HeaderValue::from_static("localhost")),
    );
    // Origin form (`/path?query`): the connection is already to the backend.
    parts.uri = Uri::from(path);
    parts.version = Version::HTTP_11;
    let outgoing = Request::from_parts(parts, body);

    let sent = tokio::time::timeout(
        config.timeouts.response,
        conn.upstreams.send(backend.addr, outgoing, config.timeouts.connect),
    )
    .await;
    let mut response = match sent {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => {
            tracing::info!(target: "xdc_web", project, xdc, backend = %backend.addr, error = %err, "Jupyter did not answer");
            return respond::text(StatusCode::BAD_GATEWAY, "the XDC's Jupyter server did not answer");
        }
        Err(_) => {
            tracing::info!(target: "xdc_web", project, xdc, backend = %backend.addr, "Jupyter timed out");
            return respond::text(
                StatusCode::GATEWAY_TIMEOUT,
                "the XDC's Jupyter server did not answer in time",
            );
        }
    };
    let backend_upgrade = (upgrade && response.status() == StatusCode::SWITCHING_PROTOCOLS)
        .then(|| hyper::upgrade::on(&mut response));
    let (mut parts, body) = response.into_parts();
    parts.version = client_version;
    let body = match (client_upgrade, backend_upgrade) {
        (Some(client_side), Some(backend_side)) => {
            splice(conn, client_side, backend_side);
            ProxyBody::Local(None)
        }
        _ => {
            headers::strip_hop_by_hop(&mut parts.headers, false);
            let html = parts
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
            if html && !backend.jupyter_token.is_empty() {
                ProxyBody::Redacted(Redacted::new(body, &backend.jupyter_token))
            } else {
                ProxyBody::Upstream(body)
            }
        }
    };
    fix_response_headers(
        &mut parts.headers,
        &config.cookie_name,
        &authority,
        project,
        xdc,
        &backend.base_path,
    );
    Response::from_parts(parts, body)
}

/// The path Jupyter is asked for: unchanged when its base path is the public prefix (the
/// normal case), else with the prefix swapped.
fn backend_path(uri: &Uri, project: &str, xdc: &str, base_path: &str) -> Option<PathAndQuery> {
    let original = uri.path_and_query()?;
    // Jupyter prefers a `token` parameter to the header the proxy sets.
    let stripped = redact::without_token_param(original);
    let original = stripped.as_ref().unwrap_or(original);
    let public_len = project.len() + xdc.len() + 3;
    let path = original.as_str();
    let same = base_path.len() == public_len && path.get(..public_len) == Some(base_path);
    if same || base_path.is_empty() {
        return Some(original.clone());
    }
    let rest = path.get(public_len..)?;
    let base = base_path.trim_end_matches('/');
    PathAndQuery::try_from(format!("{base}/{rest}")).ok()
}

/// Drops cookies that would log someone in (see [`auth::upstream_cookie_allowed`]) and turns
/// redirects that name the backend's address (or its base path) back into public paths.
fn fix_response_headers(
    headers: &mut http::HeaderMap,
    portal_cookie: &str,
    authority: &Authority,
    project: &str,
    xdc: &str,
    base_path: &str,
) {
    if headers.get_all(header::SET_COOKIE).iter().any(|v| !auth::upstream_cookie_allowed(v, portal_cookie)) {
        let kept: Vec<HeaderValue> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter(|v| auth::upstream_cookie_allowed(v, portal_cookie))
            .cloned()
            .collect();
        headers.remove(header::SET_COOKIE);
        for value in kept {
            headers.append(header::SET_COOKIE, value);
        }
    }
    let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else { return };
    let absolute = format!("http://{authority}");
    let mut fixed = location.strip_prefix(absolute.as_str()).unwrap_or(location).to_owned();
    let public = format!("/{project}/{xdc}/");
    if !base_path.is_empty() && base_path != public && fixed.starts_with(base_path) {
        fixed = format!("{public}{}", &fixed[base_path.len()..]);
    }
    if fixed != location
        && let Ok(value) = HeaderValue::from_str(&fixed)
    {
        headers.insert(header::LOCATION, value);
    }
}

/// Copies bytes both ways between the upgraded client and Jupyter connections until either
/// closes or the proxy stops.
fn splice(
    conn: &Connection,
    client_side: hyper::upgrade::OnUpgrade,
    backend_side: hyper::upgrade::OnUpgrade,
) {
    let stop = conn.stop.clone();
    let peer = conn.peer;
    conn.tracker.spawn(async move {
        let (client_io, backend_io) = match tokio::join!(client_side, backend_side) {
            (Ok(client_io), Ok(backend_io)) => (client_io, backend_io),
            (Err(err), _) | (_, Err(err)) => {
                tracing::debug!(target: "xdc_web", client = %peer, error = %err, "upgrade failed");
                return;
            }
        };
        let (mut client_io, mut backend_io) = (TokioIo::new(client_io), TokioIo::new(backend_io));
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client_io, &mut backend_io) => {
                if let Err(err) = result {
                    tracing::debug!(target: "xdc_web", client = %peer, error = %err, "WebSocket ended with an error");
                }
            }
            _ = stop.cancelled() => {}
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_kept_or_moved_to_the_base_path() {
        let uri: Uri = "/proj/x0/api/kernels?a=1".parse().unwrap();
        assert_eq!(backend_path(&uri, "proj", "x0", "/proj/x0/").unwrap(), "/proj/x0/api/kernels?a=1");
        assert_eq!(backend_path(&uri, "proj", "x0", "/").unwrap(), "/api/kernels?a=1");
        assert_eq!(backend_path(&uri, "proj", "x0", "/user/alice/").unwrap(), "/user/alice/api/kernels?a=1");
        let guessed: Uri = "/proj/x0/tree?token=guess&b=2".parse().unwrap();
        assert_eq!(backend_path(&guessed, "proj", "x0", "/proj/x0/").unwrap(), "/proj/x0/tree?b=2");
    }

    #[test]
    fn redirects_and_cookies_from_jupyter_are_fixed() {
        let authority: Authority = "127.0.0.1:8888".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(header::LOCATION, HeaderValue::from_static("http://127.0.0.1:8888/proj/x0/tree"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("_xsrf=1; Path=/proj/x0/"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("username-127-0-0-1-8888=2"));
        fix_response_headers(&mut headers, "s", &authority, "proj", "x0", "/proj/x0/");
        assert_eq!(headers[header::LOCATION], "/proj/x0/tree");
        assert_eq!(
            headers.get_all(header::SET_COOKIE).iter().collect::<Vec<_>>(),
            ["_xsrf=1; Path=/proj/x0/"]
        );

        let mut moved = http::HeaderMap::new();
        moved.insert(header::LOCATION, HeaderValue::from_static("/user/alice/tree"));
        fix_response_headers(&mut moved, "s", &authority, "proj", "x0", "/user/alice/");
        assert_eq!(moved[header::LOCATION], "/proj/x0/tree");
    }
}
