//! Header rewriting: hop-by-hop headers stay on their hop, and the backend learns who the
//! client is (`Forwarded`, `X-Forwarded-*`).
//!
//! Client-supplied `Forwarded`/`X-Forwarded-*` values are replaced, not appended to: this is
//! the edge, and anything a client claims there about earlier hops is unverified.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Version};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// Set by routes that strip their path prefix.
pub(crate) static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What the proxy knows about a client connection, computed once per connection.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) addr: SocketAddr,
    /// The client IP as an `X-Forwarded-For` value.
    ip_value: HeaderValue,
    /// `for=<ip>` as RFC 7239 writes it (IPv6 quoted and bracketed).
    forwarded_for: String,
    /// The forwarding headers of the last request: a connection's requests almost always
    /// name the same host, and building them costs three allocations.
    last: Mutex<Option<Forwarding>>,
}

#[derive(Debug, Clone)]
struct Forwarding {
    host: Option<Box<str>>,
    https: bool,
    forwarded: Option<HeaderValue>,
    x_forwarded_host: Option<HeaderValue>,
}

impl Client {
    pub(crate) fn new(addr: SocketAddr) -> Client {
        let ip = addr.ip().to_canonical();
        let forwarded_for = match ip {
            IpAddr::V4(v4) => format!("for={v4}"),
            IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
        };
        let ip_value = HeaderValue::from_str(&ip.to_string()).expect("an IP address is a valid header value");
        Client { addr, ip_value, forwarded_for, last: Mutex::new(None) }
    }

    /// The client IP as an `X-Forwarded-For` value.
    pub(crate) fn ip(&self) -> &[u8] {
        self.ip_value.as_bytes()
    }

    /// `for=<ip>`, the start of a `Forwarded` value.
    pub(crate) fn forwarded_for(&self) -> &str {
        &self.forwarded_for
    }
}

/// The request's host as sent: the URI authority (HTTP/2, absolute-form) or the `Host`
/// header. Kept as a header value, which is cheap to clone, rather than a new string.
pub(crate) fn request_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    match req.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => req.headers().get(header::HOST).cloned(),
    }
}

/// A host value as routes name hosts: lowercase, without port or trailing dot.
pub(crate) fn host_name(value: &HeaderValue) -> Option<Cow<'_, str>> {
    let raw = strip_port(value.to_str().ok()?).trim_end_matches('.');
    if raw.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(raw.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(raw))
    }
}

pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // "[::1]:8080" → "[::1]"
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// gRPC (over HTTP/2) is recognized by its content type.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// An HTTP/1.1 upgrade request (WebSocket and friends).
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req.headers().get_all(header::CONNECTION).iter().any(|v| has_token(v, "upgrade"))
}

fn has_token(value: &HeaderValue, token: &str) -> bool {
    value.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Removes hop-by-hop headers. With `upgrade`, `Upgrade` is kept and `Connection` is reduced to
/// `upgrade`, since the upgrade handshake must reach the other side.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    if headers.contains_key(header::CONNECTION) {
        // Headers the sender named in `Connection` are hop-by-hop too.
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|name| !(name.is_empty() || upgrade && name.eq_ignore_ascii_case("upgrade")))
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::TRAILER);
    // `TE: trailers` is how gRPC asks for trailers; it is the one TE value HTTP/2 allows.
    if headers.get(header::TE).is_some_and(|te| !te.as_bytes().eq_ignore_ascii_case(b"trailers")) {
        headers.remove(header::TE);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Tells the backend who the client is and how it connected.
pub(crate) fn set_forwarded(headers: &mut HeaderMap, client: &Client, https: bool, host: Option<&str>) {
    let proto = if https { "https" } else { "http" };
    headers.insert(&X_FORWARDED_FOR, client.ip_value.clone());
    headers.remove(&X_FORWARDED_PREFIX);
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    // `try_lock`: concurrent HTTP/2 streams build their own rather than wait.
    let mut last = client.last.try_lock().ok();
    let cached = last
        .as_deref()
        .and_then(Option::as_ref)
        .filter(|f| f.https == https && f.host.as_deref() == host)
        .cloned();
    let forwarding = match cached {
        Some(forwarding) => forwarding,
        None => {
            let forwarding = forwarding(client, proto, https, host);
            if let Some(last) = &mut last {
                **last = Some(forwarding.clone());
            }
            forwarding
        }
    };
    match forwarding.x_forwarded_host {
        Some(value) => headers.insert(&X_FORWARDED_HOST, value),
        None => headers.remove(&X_FORWARDED_HOST),
    };
    match forwarding.forwarded {
        Some(value) => headers.insert(header::FORWARDED, value),
        None => headers.remove(header::FORWARDED),
    };
}

fn forwarding(client: &Client, proto: &str, https: bool, host: Option<&str>) -> Forwarding {
    let mut forwarded = String::with_capacity(client.forwarded_for.len() + 48);
    forwarded.push_str(&client.forwarded_for);
    forwarded.push_str(";proto=");
    forwarded.push_str(proto);
    let mut x_forwarded_host = None;
    match host.and_then(|h| HeaderValue::from_str(h).ok().map(|v| (h, v))) {
        Some((host, value)) if !host.contains(['"', '\\']) => {
            x_forwarded_host = Some(value);
            forwarded.push_str(";host=\"");
            forwarded.push_str(host);
            forwarded.push('"');
        }
        _ => {}
    }
    Forwarding {
        host: host.map(Box::from),
        https,
        forwarded: HeaderValue::from_str(&forwarded).ok(),
        x_forwarded_host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed_and_upgrades_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Secret"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("gzip"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers, false);
        let names: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);

        let mut ws = HeaderMap::new();
        ws.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        ws.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        ws.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut ws, true);
        assert_eq!(ws[header::CONNECTION], "upgrade");
        assert_eq!(ws[header::UPGRADE], "websocket");
        assert_eq!(ws[header::TE], "trailers");
    }

    #[test]
    fn forwarded_headers_replace_what_the_client_sent() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        let v4 = Client::new("10.0.0.7:5555".parse().unwrap());
        set_forwarded(&mut headers, &v4, true, Some("api.example.org"));
        assert_eq!(headers["x-forwarded-for"], "10.0.0.7");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "api.example.org");
        assert_eq!(headers["forwarded"], "for=10.0.0.7;proto=https;host=\"api.example.org\"");
        // The same connection asking for another host (or none) must not get the cached one.
        set_forwarded(&mut headers, &v4, true, Some("web.example.org"));
        assert_eq!(headers["x-forwarded-host"], "web.example.org");
        assert_eq!(headers["forwarded"], "for=10.0.0.7;proto=https;host=\"web.example.org\"");
        set_forwarded(&mut headers, &v4, true, None);
        assert!(!headers.contains_key("x-forwarded-host"));
        assert_eq!(headers["forwarded"], "for=10.0.0.7;proto=https");
        set_forwarded(&mut headers, &v4, true, Some("web.example.org"));
        assert_eq!(headers["x-forwarded-host"], "web.example.org");

        let v6 = Client::new("[2001:db8::1]:5555".parse().unwrap());
        set_forwarded(&mut headers, &v6, false, None);
        assert_eq!(headers["forwarded"], "for=\"[2001:db8::1]\";proto=http");
        assert!(!headers.contains_key("x-forwarded-host"));
    }

    #[test]
    fn hosts_lose_ports_and_case() {
        let name = |req: Request<()>| host_name(&request_host(&req).unwrap()).unwrap().into_owned();
        let req = |host: &str| Request::builder().uri("/x").header("host", host).body(()).unwrap();
        assert_eq!(name(req("API.Example.org:8443")), "api.example.org");
        assert_eq!(name(req("[::1]:8080")), "[::1]");
        assert_eq!(name(req("example.org.")), "example.org");
        let h2 = Request::builder().uri("https://grpc.example.org:443/svc/M").body(()).unwrap();
        assert_eq!(name(h2), "grpc.example.org");
    }
}
