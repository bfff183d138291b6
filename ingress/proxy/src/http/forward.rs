//! Forwarding one request: route, pick a backend, rewrite headers, send, and stream the
//! answer back; retries, passive ejection, upgrades, metrics and the access log.

use std::time::Instant;

use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::HttpEndpoint;
use super::backend::{self, BackendError};
use super::body::{RequestBody, ResponseBody};
use super::headers::{self, Client};
use crate::io::Activity;
use crate::metrics::ProxyError;
use crate::pool::{Tried, Upstream};

/// How many backends one request may try (the first plus retries).
const MAX_ATTEMPTS: usize = 3;

/// Per-connection context handed to every request on it.
pub(crate) struct Connection {
    pub(crate) client: Client,
    pub(crate) activity: Activity,
    pub(crate) hard_stop: CancellationToken,
}

pub(crate) async fn handle(
    ep: &HttpEndpoint,
    conn: &Connection,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let grpc = headers::is_grpc(req.headers());
    let host_value = headers::request_host(&req);
    let host = host_value.as_ref().and_then(headers::host_name);
    let route = {
        let routes = ep.shared.routes.load();
        routes.lookup(&ep.name, host.as_deref().unwrap_or(""), req.uri().path()).map(|r| {
            let stripped = req
                .uri()
                .path_and_query()
                .and_then(|target| r.stripped(target.as_str()))
                .and_then(|target| PathAndQuery::try_from(target).ok())
                .zip(r.strip.clone());
            (r.pool.clone(), r.id.clone(), stripped)
        })
    };
    let info = Info {
        method: req.method().clone(),
        path: req.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")),
        route: route.as_ref().map(|(_, id, _)| id.clone()),
        host,
        grpc,
        started,
    };
    let Some((pool, _, stripped)) = route else {
        ep.metrics.error(ProxyError::NoRoute);
        let response =
            local(StatusCode::NOT_FOUND, grpc, GRPC_UNIMPLEMENTED, "no route for this host and path\n");
        log(ep, conn, &info, &response, None);
        return response;
    };
    let method = &info.method;
    // What the backend is asked for: the request's path, less the prefix of a stripping route.
    let path = stripped.as_ref().map_or(&info.path, |(target, _)| target);

    let upgrade = headers::is_upgrade(&req);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let client_version = req.version();
    let (parts, body) = req.into_parts();
    let mut request_headers = parts.headers;
    headers::strip_hop_by_hop(&mut request_headers, upgrade);
    headers::set_forwarded(&mut request_headers, &conn.client, ep.tls.is_some(), info.host.as_deref());
    if let Some(value) = stripped.as_ref().and_then(|(_, prefix)| HeaderValue::from_str(prefix).ok()) {
        request_headers.insert(headers::X_FORWARDED_PREFIX.clone(), value);
    }
    // gRPC exists only over HTTP/2; everything else follows the pool's setting.
    let to_h2 = (grpc || pool.config.http2) && !upgrade;
    if !to_h2 && !request_headers.contains_key(header::HOST) {
        // An HTTP/2 request carries its host in :authority; an HTTP/1.1 backend needs `Host`.
        if let Some(value) = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            request_headers.insert(header::HOST, value);
        }
    }
    let bodiless = body.is_end_stream();
    let mut body = Some(if bodiless { RequestBody::Empty } else { RequestBody::Streaming(body) });
    // Only a request that can be sent again unchanged is retried: no body to replay, and a
    // method the backend may see twice. The header copy is made only then.
    let retry_headers = (bodiless && is_idempotent(method) && !upgrade && pool.backends.len() > 1)
        .then(|| request_headers.clone());

    let mut tried = Tried::default();
    let mut next_headers = Some(request_headers);
    for attempt in 1..=MAX_ATTEMPTS {
        let Some((index, backend)) = pool.pick(tried) else { break };
        tried.add(index);
        let backend = backend.clone();
        // HTTP/1.1 requests go out in origin form on our own connections; hyper-util's
        // HTTP/2 client wants the absolute form to pick a connection.
        let uri = if to_h2 {
            backend_uri(&backend.authority, path, &pool.upstream)
        } else {
            Uri::from(path.clone())
        };
        let headers = match next_headers.take() {
            Some(headers) => headers,
            None => match &retry_headers {
                Some(headers) => headers.clone(),
                None => break,
            },
        };
        let outgoing = build_request(
            method,
            uri,
            if to_h2 { Version::HTTP_2 } else { Version::HTTP_11 },
            headers,
            body.take().unwrap_or(RequestBody::Empty),
        );
        let in_flight = backend.start();
        let sent = if to_h2 {
            let sent = match &pool.upstream {
                Upstream::Tls(tls) => tls.h2(ep.shared.timeouts.connect).request(outgoing).await,
                // Broken TLS: the plain client refuses the https URI, so nothing goes out in
                // plain text.
                Upstream::Plain | Upstream::Broken(_) => ep.shared.clients.h2.request(outgoing).await,
            };
            sent.map(|r| (r, None)).map_err(SendError::H2)
        } else {
            backend::send(&backend, &pool.upstream, outgoing, ep.shared.timeouts.connect)
                .await
                .map_err(SendError::H1)
        };
        match sent {
            Ok((mut response, reuse)) => {
                backend.record_success();
                let backend_upgrade = (upgrade && response.status() == StatusCode::SWITCHING_PROTOCOLS)
                    .then(|| hyper::upgrade::on(&mut response));
                let (mut parts, incoming) = response.into_parts();
                parts.version = client_version;
                let body = match (client_upgrade, backend_upgrade) {
                    (Some(client_side), Some(backend_side)) => {
                        splice(ep, conn, client_side, backend_side, in_flight);
                        ResponseBody::local("")
                    }
                    _ => {
                        headers::strip_hop_by_hop(&mut parts.headers, false);
                        ResponseBody::backend(incoming, in_flight, reuse)
                    }
                };
                let response = Response::from_parts(parts, body);
                log(ep, conn, &info, &response, Some(backend.addr));
                return response;
            }
            Err(err) => {
                drop(in_flight);
                if blames_backend(&err) {
                    let ejection = &pool.config.ejection;
                    backend.record_failure(ejection.consecutive_failures, ejection.cooldown);
                }
                tracing::debug!(endpoint = %ep.name, backend = %backend.addr, attempt, error = %err.chain(), "backend request failed");
                if retry_headers.is_none() {
                    let kind =
                        if err.is_connect() { ProxyError::ConnectFailed } else { ProxyError::BackendFailed };
                    return failed(ep, conn, &info, kind);
                }
            }
        }
    }
    let kind = if !tried.is_empty() { ProxyError::BackendFailed } else { ProxyError::NoBackend };
    failed(ep, conn, &info, kind)
}

fn build_request(
    method: &Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: RequestBody,
) -> Request<RequestBody> {
    let mut request = Request::new(body);
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    request
}

fn backend_uri(authority: &http::uri::Authority, path: &PathAndQuery, upstream: &Upstream) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(match upstream {
        Upstream::Plain => Scheme::HTTP,
        Upstream::Tls(_) | Upstream::Broken(_) => Scheme::HTTPS,
    });
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(path.clone());
    Uri::from_parts(parts).expect("scheme, authority and path always form a URI")
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// A failed exchange with a backend, from either client.
#[derive(Debug)]
enum SendError {
    H1(BackendError),
    H2(hyper_util::client::legacy::Error),
}

impl SendError {
    fn is_connect(&self) -> bool {
        match self {
            SendError::H1(err) => matches!(err, BackendError::Connect(_)),
            SendError::H2(err) => err.is_connect(),
        }
    }

    fn chain(&self) -> String {
        match self {
            SendError::H1(err) => crate::error::error_chain(err),
            SendError::H2(err) => crate::error::error_chain(err),
        }
    }
}

/// Whether a failed exchange counts against the backend. A request body that failed because
/// the *client* went away (hyper reports it as a user body error) says nothing about the
/// backend.
fn blames_backend(err: &SendError) -> bool {
    if err.is_connect() {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = match err {
        SendError::H1(BackendError::Http(err)) => Some(err),
        SendError::H1(BackendError::Connect(_)) => None,
        SendError::H2(err) => std::error::Error::source(err),
    };
    while let Some(cause) = source {
        if let Some(hyper_err) = cause.downcast_ref::<hyper::Error>() {
            return !(hyper_err.is_user() || hyper_err.is_body_write_aborted() || hyper_err.is_canceled());
        }
        source = cause.source();
    }
    true
}

/// Copies bytes both ways between an upgraded client connection and the backend's, until
/// either side closes, the connection idles out, or the proxy stops.
fn splice(
    ep: &HttpEndpoint,
    conn: &Connection,
    client_side: hyper::upgrade::OnUpgrade,
    backend_side: hyper::upgrade::OnUpgrade,
    in_flight: crate::pool::InFlight,
) {
    let activity = conn.activity.clone();
    let hard_stop = conn.hard_stop.clone();
    let idle = ep.shared.timeouts.idle;
    let endpoint = ep.name.clone();
    ep.shared.tracker.spawn(async move {
        let _in_flight = in_flight;
        let (client_io, backend_io) = match tokio::join!(client_side, backend_side) {
            (Ok(client_io), Ok(backend_io)) => (client_io, backend_io),
            (Err(err), _) | (_, Err(err)) => {
                tracing::debug!(%endpoint, error = %err, "upgrade failed");
                return;
            }
        };
        let (mut client_io, mut backend_io) = (TokioIo::new(client_io), TokioIo::new(backend_io));
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client_io, &mut backend_io) => {}
            _ = activity.idle(idle) => {}
            _ = hard_stop.cancelled() => {}
        }
    });
}

const GRPC_UNIMPLEMENTED: &str = "12";
const GRPC_UNAVAILABLE: &str = "14";

/// What the access log and metrics need to know about a request.
struct Info<'a> {
    method: Method,
    path: PathAndQuery,
    host: Option<std::borrow::Cow<'a, str>>,
    route: Option<std::sync::Arc<str>>,
    grpc: bool,
    started: Instant,
}

fn failed(ep: &HttpEndpoint, conn: &Connection, info: &Info<'_>, kind: ProxyError) -> Response<ResponseBody> {
    ep.metrics.error(kind);
    let grpc = info.grpc;
    let response = match kind {
        ProxyError::NoBackend => {
            local(StatusCode::SERVICE_UNAVAILABLE, grpc, GRPC_UNAVAILABLE, "no healthy backend\n")
        }
        _ => local(StatusCode::BAD_GATEWAY, grpc, GRPC_UNAVAILABLE, "the backend did not answer\n"),
    };
    log(ep, conn, info, &response, None);
    response
}

/// A response the proxy writes itself. gRPC clients get HTTP 200 with a `grpc-status`, the
/// only form in which they can read why a call failed.
fn local(
    status: StatusCode,
    grpc: bool,
    grpc_status: &'static str,
    text: &'static str,
) -> Response<ResponseBody> {
    let mut response = Response::new(if grpc { ResponseBody::local("") } else { ResponseBody::local(text) });
    if grpc {
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static(grpc_status));
        headers
            .insert("grpc-message", HeaderValue::from_static("ingress: no backend available for this call"));
    } else {
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    }
    response
}

fn log(
    ep: &HttpEndpoint,
    conn: &Connection,
    info: &Info<'_>,
    response: &Response<ResponseBody>,
    backend: Option<std::net::SocketAddr>,
) {
    let elapsed = info.started.elapsed();
    let status = response.status().as_u16();
    ep.metrics.response(status, elapsed);
    if ep.shared.access_log() {
        tracing::info!(
            target: "access",
            endpoint = %ep.name,
            client = %conn.client.addr,
            method = %info.method,
            host = info.host.as_deref().unwrap_or("-"),
            path = %info.path,
            route = info.route.as_deref().unwrap_or("-"),
            status,
            backend = %OrDash(backend),
            micros = elapsed.as_micros() as u64,
        );
    }
}

/// An optional value in the access log, `-` when absent, formatted without an allocation.
struct OrDash<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrDash<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("-"),
        }
    }
}
