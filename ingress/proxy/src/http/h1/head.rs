//! HTTP/1.1 message heads on the fast path: parsed in place with `httparse` and rewritten by
//! copying bytes, without building a `HeaderMap`.
//!
//! The rewriting follows `headers.rs` exactly (hop-by-hop headers stay on their hop; the
//! client's `Forwarded`/`X-Forwarded-*` claims are replaced); anything unusual is left to the
//! hyper path instead (see [`Verdict::Fallback`]).

use std::ops::Range;

use crate::http::headers::{self, Client};

/// hyper's limit too: more header fields than this are refused.
const MAX_HEADERS: usize = 100;

/// Why a head could not be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("malformed head: {0}")]
    Malformed(httparse::Error),
    #[error("invalid or conflicting Content-Length")]
    BadLength,
    #[error("a response announced a protocol switch nobody asked for")]
    UnexpectedSwitch,
}

/// A client request the fast path will forward.
#[derive(Debug)]
pub(crate) struct Request {
    /// Length of the head in the buffer; the body (if any) starts here.
    pub(crate) head_len: usize,
    pub(crate) method: Range<usize>,
    pub(crate) path: Range<usize>,
    /// The `Host` header as routes name hosts: lowercase, without port or trailing dot.
    pub(crate) host: Option<Box<str>>,
    pub(crate) body_len: u64,
    /// The client asked to close the connection after this exchange.
    pub(crate) close: bool,
    pub(crate) is_head: bool,
    pub(crate) idempotent: bool,
}

/// What to do with a request head.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// More bytes are needed.
    Partial,
    /// Forward it; the rewritten head has been written to the output buffer.
    Forward(Request),
    /// Valid HTTP, but a case the hyper path handles (HTTP/1.0, upgrades, `Expect`, chunked
    /// request bodies, absolute-form targets, gRPC, HTTP/2's preface).
    Fallback,
}

/// Parses the request head at the start of `buf` and writes the head to send to a backend
/// into `out` (cleared first).
pub(crate) fn request(
    buf: &[u8],
    client: &Client,
    https: bool,
    out: &mut Vec<u8>,
) -> Result<Verdict, HeadError> {
    if buf.starts_with(b"PRI ") || b"PRI ".starts_with(buf) {
        // The HTTP/2 connection preface (or the start of it).
        return Ok(if buf.len() >= 4 { Verdict::Fallback } else { Verdict::Partial });
    }
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Verdict::Partial),
        Err(err) => return Err(HeadError::Malformed(err)),
    };
    let (Some(method), Some(path), Some(1)) = (parsed.method, parsed.path, parsed.version) else {
        return Ok(Verdict::Fallback);
    };
    if !path.starts_with('/') || method == "CONNECT" {
        return Ok(Verdict::Fallback);
    }
    let fields = parsed.headers;

    let mut connection = Connection::default();
    let mut body_len: Option<u64> = None;
    let mut host = None;
    for field in fields.iter() {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            connection.read(field.value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            body_len = Some(merge_length(body_len, field.value)?);
        } else if name.eq_ignore_ascii_case(b"host") {
            if host.is_some() {
                return Err(HeadError::Malformed(httparse::Error::HeaderValue));
            }
            host = Some(field.value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"content-type") && field.value.starts_with(b"application/grpc")
        {
            return Ok(Verdict::Fallback);
        }
    }
    let host = host.and_then(route_host);

    out.clear();
    // Room for the head plus the forwarding headers, so the copy never reallocates.
    out.reserve(head_len + 256);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for field in fields.iter() {
        let name = field.name.as_bytes();
        let dropped = is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"te") && !field.value.eq_ignore_ascii_case(b"trailers")
            || is_forwarding(name)
            || connection.lists(name);
        if !dropped {
            push_field(out, name, field.value);
        }
    }
    write_forwarding(out, client, https, host.as_deref());
    out.extend_from_slice(b"\r\n");

    let start = buf.as_ptr() as usize;
    let offset = |s: &str| s.as_ptr() as usize - start;
    let method_at = offset(method);
    let path_at = offset(path);
    Ok(Verdict::Forward(Request {
        head_len,
        method: method_at..method_at + method.len(),
        path: path_at..path_at + path.len(),
        host,
        body_len: body_len.unwrap_or(0),
        close: connection.close,
        is_head: method == "HEAD",
        idempotent: matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"),
    }))
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the backend closes the connection.
    UntilClose,
}

/// A backend response the fast path will relay.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) head_len: usize,
    pub(crate) status: u16,
    pub(crate) framing: Framing,
    /// An interim (1xx) response: the final one follows on the same connection.
    pub(crate) interim: bool,
    /// The backend connection can carry another request after this response.
    pub(crate) reusable: bool,
}

/// Parses the response head at the start of `buf` and writes the head to send to the client
/// into `out` (cleared first). `close` adds `Connection: close` for the client. `out` is
/// left alone unless a complete head is returned: it may still hold the request, to be sent
/// again to another backend.
pub(crate) fn response(
    buf: &[u8],
    request_is_head: bool,
    close: bool,
    out: &mut Vec<u8>,
) -> Result<Option<Response>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(HeadError::Malformed(err)),
    };
    let (Some(version), Some(status)) = (parsed.version, parsed.code) else {
        return Err(HeadError::Malformed(httparse::Error::Status));
    };
    if status == 101 {
        return Err(HeadError::UnexpectedSwitch);
    }
    let reason = parsed.reason.unwrap_or("");
    let fields = parsed.headers;

    let mut connection = Connection::default();
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for field in fields.iter() {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            connection.read(field.value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            length = Some(merge_length(length, field.value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only the last coding decides the framing.
            chunked = Some(last_token(field.value).eq_ignore_ascii_case(b"chunked"));
        }
    }
    let interim = (100..200).contains(&status);
    let framing = if interim || request_is_head || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(len)) => Framing::Length(len),
            (None, None) => Framing::UntilClose,
        }
    };
    let reusable = version == 1 && !connection.close && framing != Framing::UntilClose;
    let close = close && !interim || framing == Framing::UntilClose;

    out.clear();
    out.reserve(head_len + 32);
    out.extend_from_slice(b"HTTP/1.1 ");
    // httparse guarantees three digits.
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for field in fields.iter() {
        let name = field.name.as_bytes();
        let dropped = is_hop_by_hop(name) && !name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"te")
            // With a transfer coding, a Content-Length is wrong and must not pass (RFC 9112 6.3).
            || chunked.is_some() && name.eq_ignore_ascii_case(b"content-length")
            || connection.lists(name);
        if !dropped {
            push_field(out, name, field.value);
        }
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(Response { head_len, status, framing, interim, reusable }))
}

/// Replaces the target in the request line of `out` (a head [`request`] wrote for
/// `request`) and adds `X-Forwarded-Prefix`: a route that strips its prefix.
pub(crate) fn retarget(out: &mut Vec<u8>, request: &Request, target: &str, prefix: &str) {
    let start = request.method.len() + 1;
    out.splice(start..start + request.path.len(), target.bytes());
    let end = out.len() - 2;
    let field = [b"x-forwarded-prefix: ".as_slice(), prefix.as_bytes(), b"\r\n"].concat();
    out.splice(end..end, field);
}

/// A `Host` value as routes name hosts (see `headers::host_name`): visible ASCII only,
/// lowercase, without port or trailing dot.
fn route_host(value: &[u8]) -> Option<Box<str>> {
    let text = std::str::from_utf8(value).ok()?;
    if !text.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        return None;
    }
    let name = headers::strip_port(text).trim_end_matches('.');
    Some(if name.bytes().any(|b| b.is_ascii_uppercase()) {
        name.to_ascii_lowercase().into()
    } else {
        name.into()
    })
}

/// A response the proxy writes itself.
pub(crate) fn local(out: &mut Vec<u8>, status: u16, reason: &str, text: &str, close: bool) {
    out.clear();
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{}\r\n{text}",
            text.len(),
            if close { "connection: close\r\n" } else { "" },
        )
        .as_bytes(),
    );
}

/// What a `Connection` header said.
#[derive(Debug, Default)]
struct Connection<'a> {
    close: bool,
    /// Other header names it listed (hop-by-hop by declaration).
    listed: Vec<&'a [u8]>,
}

impl<'a> Connection<'a> {
    fn read(&mut self, value: &'a [u8]) {
        for token in value.split(|&b| b == b',').map(trim) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"keep-alive") {
                self.listed.push(token);
            }
        }
    }

    fn lists(&self, name: &[u8]) -> bool {
        self.listed.iter().any(|listed| listed.eq_ignore_ascii_case(name))
    }
}

fn is_hop_by_hop(name: &[u8]) -> bool {
    [&b"connection"[..], b"keep-alive", b"proxy-connection", b"transfer-encoding", b"trailer", b"upgrade"]
        .iter()
        .any(|hop| name.eq_ignore_ascii_case(hop))
}

fn is_forwarding(name: &[u8]) -> bool {
    [&b"forwarded"[..], b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-prefix"]
        .iter()
        .any(|forwarding| name.eq_ignore_ascii_case(forwarding))
}

fn write_forwarding(out: &mut Vec<u8>, client: &Client, https: bool, host: Option<&str>) {
    let proto: &[u8] = if https { b"https" } else { b"http" };
    push_field(out, b"x-forwarded-for", client.ip());
    push_field(out, b"x-forwarded-proto", proto);
    out.extend_from_slice(b"forwarded: ");
    out.extend_from_slice(client.forwarded_for().as_bytes());
    out.extend_from_slice(b";proto=");
    out.extend_from_slice(proto);
    match host.filter(|host| !host.contains(['"', '\\'])) {
        Some(host) => {
            out.extend_from_slice(b";host=\"");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\"\r\n");
            push_field(out, b"x-forwarded-host", host.as_bytes());
        }
        None => out.extend_from_slice(b"\r\n"),
    }
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// One more Content-Length field: valid, and the same as any seen before (two different
/// lengths are how one message is smuggled inside another).
fn merge_length(seen: Option<u64>, value: &[u8]) -> Result<u64, HeadError> {
    match parse_length(value) {
        Some(len) if seen.is_none_or(|seen| seen == len) => Ok(len),
        _ => Err(HeadError::BadLength),
    }
}

/// A Content-Length value: digits only (no sign, no list), at most 19 of them.
fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = trim(value);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

fn last_token(value: &[u8]) -> &[u8] {
    trim(value.rsplit(|&b| b == b',').next().unwrap_or(value))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::new("10.0.0.7:5555".parse().unwrap())
    }

    fn forward(raw: &str) -> (Request, String) {
        let mut out = Vec::new();
        match request(raw.as_bytes(), &client(), false, &mut out) {
            Ok(Verdict::Forward(request)) => (request, String::from_utf8(out).unwrap()),
            other => panic!("{raw:?} → {other:?}"),
        }
    }

    #[test]
    fn requests_lose_hop_by_hop_and_spoofed_forwarding_headers() {
        let raw = "GET /a?b=1 HTTP/1.1\r\nHost: API.Example.org:8080\r\nConnection: keep-alive, X-Secret\r\n\
                   X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: gzip\r\nX-Forwarded-For: 6.6.6.6\r\n\
                   Forwarded: for=6.6.6.6\r\nAccept: */*\r\n\r\nNEXT";
        let (request, head) = forward(raw);
        assert_eq!(request.head_len, raw.len() - 4);
        assert_eq!(&raw[request.method.clone()], "GET");
        assert_eq!(&raw[request.path.clone()], "/a?b=1");
        assert_eq!(request.host.as_deref(), Some("api.example.org"));
        assert!(!request.close && !request.is_head && request.idempotent && request.body_len == 0);
        assert_eq!(
            head,
            "GET /a?b=1 HTTP/1.1\r\nHost: API.Example.org:8080\r\nAccept: */*\r\nx-forwarded-for: 10.0.0.7\r\n\
             x-forwarded-proto: http\r\nforwarded: for=10.0.0.7;proto=http;host=\"api.example.org\"\r\n\
             x-forwarded-host: api.example.org\r\n\r\n"
        );
        let (request, head) =
            forward("POST /up HTTP/1.1\r\ncontent-length: 12\r\nConnection: close\r\nTE: trailers\r\n\r\n");
        assert!(request.close && !request.idempotent && request.body_len == 12 && request.host.is_none());
        assert!(head.contains("content-length: 12\r\nTE: trailers\r\n"), "{head}");
        assert!(head.ends_with("forwarded: for=10.0.0.7;proto=http\r\n\r\n"), "{head}");
    }

    #[test]
    fn a_stripping_route_changes_only_the_target_and_names_the_prefix() {
        let raw = "GET /m1/a/80/lab?x=1 HTTP/1.1\r\nHost: n.test\r\nX-Forwarded-Prefix: /spoofed\r\n\r\n";
        let mut out = Vec::new();
        let Ok(Verdict::Forward(request)) = request(raw.as_bytes(), &client(), true, &mut out) else {
            panic!()
        };
        retarget(&mut out, &request, "/lab?x=1", "/m1/a/80");
        let head = String::from_utf8(out).unwrap();
        assert!(head.starts_with("GET /lab?x=1 HTTP/1.1\r\nHost: n.test\r\n"), "{head}");
        assert!(head.ends_with("x-forwarded-host: n.test\r\nx-forwarded-prefix: /m1/a/80\r\n\r\n"), "{head}");
        assert!(!head.contains("spoofed"), "{head}");
    }

    #[test]
    fn unusual_requests_go_to_the_hyper_path() {
        for raw in [
            "GET / HTTP/1.0\r\n\r\n",
            "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
            "CONNECT a.test:443 HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
            "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "POST /svc/M HTTP/1.1\r\ncontent-type: application/grpc\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            let verdict = request(raw.as_bytes(), &client(), false, &mut Vec::new());
            assert!(matches!(verdict, Ok(Verdict::Fallback)), "{raw:?} → {verdict:?}");
        }
        assert!(matches!(request(b"PR", &client(), false, &mut Vec::new()), Ok(Verdict::Partial)));
        assert!(matches!(
            request(b"GET / HTTP/1.1\r\nHost: a", &client(), false, &mut Vec::new()),
            Ok(Verdict::Partial)
        ));
    }

    #[test]
    fn ambiguous_requests_are_refused() {
        for raw in [
            "GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
            "THIS IS NOT HTTP\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            let verdict = request(raw.as_bytes(), &client(), false, &mut Vec::new());
            assert!(verdict.is_err(), "{raw:?} → {verdict:?}");
        }
    }

    fn relay(raw: &str, is_head: bool, close: bool) -> (Response, String) {
        let mut out = Vec::new();
        let response = response(raw.as_bytes(), is_head, close, &mut out).unwrap().unwrap();
        (response, String::from_utf8(out).unwrap())
    }

    #[test]
    fn responses_are_framed_as_rfc_9112_says() {
        let (r, head) =
            relay("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=4\r\n\r\nhello", false, false);
        assert_eq!((r.status, r.framing, r.reusable, r.interim), (200, Framing::Length(5), true, false));
        assert_eq!(r.head_len, head.len() + "Keep-Alive: timeout=4\r\n".len());
        assert_eq!(head, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        let (r, head) = relay(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
            false,
            true,
        );
        assert_eq!(r.framing, Framing::Chunked);
        assert_eq!(head, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nconnection: close\r\n\r\n");
        let (r, head) = relay("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false, false);
        assert_eq!((r.framing, r.reusable), (Framing::UntilClose, false));
        assert_eq!(head, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
        let (r, _) = relay("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, false);
        assert_eq!((r.framing, r.reusable), (Framing::Length(1), false));
        let (r, _) = relay("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, false);
        assert_eq!((r.framing, r.reusable), (Framing::Empty, true));
        let (r, _) = relay("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, false);
        assert_eq!(r.framing, Framing::Empty);
        let (r, head) = relay("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", false, true);
        assert!(r.interim && r.framing == Framing::Empty);
        assert_eq!(head, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n");
        let mut out = Vec::new();
        assert_eq!(response(b"HTTP/1.1 200 OK\r\nContent-Le", false, false, &mut out), Ok(None));
        assert_eq!(
            response(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false, false, &mut out).unwrap_err(),
            HeadError::UnexpectedSwitch
        );
        assert_eq!(
            response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false,
                false,
                &mut out
            )
            .unwrap_err(),
            HeadError::BadLength
        );
    }
}
