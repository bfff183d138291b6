//! Header rewriting between the client and Jupyter: hop-by-hop headers stay on their hop, the
//! portal's credentials never reach Jupyter, and Jupyter learns who the client is.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Version};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// A client's address as `X-Forwarded-For` writes it, computed once per connection.
pub(crate) fn client_ip(peer: SocketAddr) -> HeaderValue {
    let ip: IpAddr = peer.ip().to_canonical();
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// An HTTP/1.1 upgrade request (a WebSocket).
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req.headers().get_all(header::CONNECTION).iter().any(|v| has_token(v, "upgrade"))
}

fn has_token(value: &HeaderValue, token: &str) -> bool {
    value.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Removes hop-by-hop headers. With `upgrade`, `Upgrade` is kept and `Connection` reduced to
/// `upgrade`, so the handshake reaches the other side.
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
    headers.remove(header::PROXY_AUTHORIZATION);
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::TE);
    headers.remove(header::TRAILER);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Sets `X-Forwarded-For`/`-Proto`/`-Host` and removes the other forwarding headers a client
/// could use to claim something about earlier hops. With `trust`, the peer is a proxy of ours
/// and its `X-Forwarded-For` chain and `-Proto` are kept (the peer appended).
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    peer_ip: &HeaderValue,
    trust: bool,
    https: bool,
    public_host: Option<&HeaderValue>,
) {
    let chain = trust.then(|| joined(headers, &X_FORWARDED_FOR)).flatten().and_then(|chain| {
        HeaderValue::from_str(&format!("{chain}, {}", peer_ip.to_str().unwrap_or(""))).ok()
    });
    headers.insert(&X_FORWARDED_FOR, chain.unwrap_or_else(|| peer_ip.clone()));
    let proto = trust.then(|| headers.get(&X_FORWARDED_PROTO).cloned()).flatten();
    let proto = proto.unwrap_or_else(|| HeaderValue::from_static(if https { "https" } else { "http" }));
    headers.insert(&X_FORWARDED_PROTO, proto);
    match public_host {
        Some(host) => headers.insert(&X_FORWARDED_HOST, host.clone()),
        None => headers.remove(&X_FORWARDED_HOST),
    };
    headers.remove(header::FORWARDED);
    headers.remove(&X_FORWARDED_PORT);
    headers.remove(&X_FORWARDED_PREFIX);
    headers.remove(&X_REAL_IP);
}

fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
    (!values.is_empty()).then(|| values.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed_and_upgrades_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Secret"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);

        let mut ws = HeaderMap::new();
        ws.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        ws.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut ws, true);
        assert_eq!(ws[header::CONNECTION], "upgrade");
        assert_eq!(ws[header::UPGRADE], "websocket");
    }

    #[test]
    fn forwarded_headers_are_replaced_unless_trusted() {
        let client = || {
            let mut headers = HeaderMap::new();
            headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
            headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
            headers.insert("forwarded", HeaderValue::from_static("for=6.6.6.6"));
            headers.insert("x-real-ip", HeaderValue::from_static("6.6.6.6"));
            headers
        };
        let peer = client_ip("[::ffff:10.0.0.7]:5555".parse().unwrap());
        let host = HeaderValue::from_static("xdc.example.net");
        let mut replaced = client();
        set_forwarded(&mut replaced, &peer, false, false, Some(&host));
        assert_eq!(replaced["x-forwarded-for"], "10.0.0.7");
        assert_eq!(replaced["x-forwarded-proto"], "http");
        assert_eq!(replaced["x-forwarded-host"], "xdc.example.net");
        assert!(!replaced.contains_key("forwarded") && !replaced.contains_key("x-real-ip"));

        let mut trusted = client();
        set_forwarded(&mut trusted, &peer, true, false, None);
        assert_eq!(trusted["x-forwarded-for"], "6.6.6.6, 10.0.0.7");
        assert_eq!(trusted["x-forwarded-proto"], "https");
        assert!(!trusted.contains_key("x-forwarded-host"));
    }
}
