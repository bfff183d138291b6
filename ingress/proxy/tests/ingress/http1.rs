//! The HTTP/1.1 fast path against a scripted backend that answers in every framing HTTP/1.1
//! has: Content-Length, chunked with trailers, until close, interim 1xx, HEAD; and against
//! what goes wrong: a pooled connection the backend closed, a malformed response, pipelining,
//! and requests that must be left to the hyper path mid-connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::support::ingress;

/// A backend that answers by path with fixed bytes, and counts its connections.
struct ScriptedBackend {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

const CHUNKED_BODY: &[u8] = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";

impl ScriptedBackend {
    async fn start() -> ScriptedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, seen) = (connections.clone(), heads.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Relaxed);
                tokio::spawn(Self::serve(stream, seen.clone()));
            }
        });
        ScriptedBackend { addr, connections, heads }
    }

    async fn serve(mut stream: TcpStream, seen: Arc<std::sync::Mutex<Vec<String>>>) {
        let mut buf = Vec::new();
        loop {
            let Some((head, body_len)) = read_head(&mut stream, &mut buf).await else { return };
            let chunked = header(&head, "transfer-encoding").is_some_and(|v| v.ends_with("chunked"));
            let mut body = buf.split_off(0);
            loop {
                let complete = if chunked { chunked_end(&body).is_some() } else { body.len() >= body_len };
                if complete {
                    break;
                }
                let mut chunk = vec![0u8; 65536];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                }
            }
            if chunked {
                let end = chunked_end(&body).unwrap_or(body.len());
                buf = body.split_off(end);
                body = dechunk(&body);
            } else {
                buf = body.split_off(body_len);
            }
            seen.lock().unwrap().push(head.clone());
            let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
            let is_head = head.starts_with("HEAD ");
            let answer: Vec<Vec<u8>> = match path.as_str() {
                "/len" if is_head => vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec()],
                "/len" | "/drop-after" => vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec()],
                "/chunked" => {
                    // In pieces, so the proxy sees the framing split across reads.
                    let whole =
                        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(), CHUNKED_BODY]
                            .concat();
                    whole.chunks(7).map(<[u8]>::to_vec).collect()
                }
                "/close" => vec![b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close".to_vec()],
                "/early-hints" => vec![
                    b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n".to_vec(),
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                ],
                "/upload" => {
                    let text = format!("got={}", body.len());
                    vec![
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}", text.len())
                            .into_bytes(),
                    ]
                }
                "/bad" => {
                    vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx".to_vec()]
                }
                _ => vec![b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()],
            };
            for piece in answer {
                if stream.write_all(&piece).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if path == "/close" || path == "/drop-after" {
                // `/drop-after` closes without saying so: the proxy finds out when it reuses it.
                return;
            }
        }
    }
}

/// Reads a head into a string (and keeps any further bytes in `buf`); with its body length.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, usize)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            buf.drain(..end + 4);
            let body_len = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            return Some((head, body_len));
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// A client's view of one response: the head, and the body as it arrived on the wire.
struct Answer {
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn status(&self) -> u16 {
        self.head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }
}

/// Reads one response from the proxy: by Content-Length, chunked (raw, up to its end), or
/// until the proxy closes.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Answer {
    let (head, len) = tokio::time::timeout(Duration::from_secs(10), read_head(stream, buf))
        .await
        .expect("no response in time")
        .expect("the proxy closed before answering");
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunked = header(&head, "transfer-encoding").is_some_and(|v| v.ends_with("chunked"));
    let until_close = !chunked && header(&head, "content-length").is_none();
    let bodiless = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let mut body = Vec::new();
    loop {
        let done = if bodiless {
            true
        } else if chunked {
            chunked_end(buf).is_some()
        } else if until_close {
            false
        } else {
            buf.len() >= len
        };
        if done {
            let end = if bodiless {
                0
            } else if chunked {
                chunked_end(buf).unwrap()
            } else {
                len
            };
            body = buf.drain(..end).collect();
            break;
        }
        let mut chunk = [0u8; 65536];
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("body in time")
        {
            Ok(0) | Err(_) => {
                assert!(until_close, "the proxy closed mid-body: {head}");
                body.append(buf);
                break;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Answer { head, body }
}

/// The data of a complete chunked body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return data;
        }
        data.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[line_end + 2 + size + 2..];
    }
}

/// The end of a chunked body at the start of `buf` (trailers included), if it is all there.
fn chunked_end(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&buf[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            let trailers_end = buf[at..].windows(2).position(|w| w == b"\r\n")?;
            if trailers_end == 0 {
                return Some(at + 2);
            }
            let end = at + buf[at..].windows(4).position(|w| w == b"\r\n\r\n")?;
            return Some(end + 4);
        }
        at += size + 2;
        if at > buf.len() {
            return None;
        }
    }
}

async fn proxy_for(
    backend: &ScriptedBackend,
) -> (trellis_ingress::Ingress, tokio_util::sync::CancellationToken, SocketAddr) {
    let config = r#"
endpoints:
  - { name: web, listen: "127.0.0.1:0", protocol: http }
pools:
  s: { backends: ["{s}"] }
routes:
  - { id: s, host: "*", pool: s }
"#;
    let (ingress, cancel) = ingress(config, &[("s", backend.addr.to_string())]).await;
    let addr = ingress.local_addr("web").unwrap();
    (ingress, cancel, addr)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: s.test\r\n\r\n")
}

#[tokio::test]
async fn every_response_framing_passes_intact_over_one_kept_alive_connection() {
    let backend = ScriptedBackend::start().await;
    let (_ingress, cancel, addr) = proxy_for(&backend).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();

    client.write_all(get("/len").as_bytes()).await.unwrap();
    let answer = read_answer(&mut client, &mut buf, false).await;
    assert_eq!((answer.status(), answer.body.as_slice()), (200, b"hello".as_slice()), "{}", answer.head);

    client.write_all(b"HEAD /len HTTP/1.1\r\nHost: s.test\r\n\r\n").await.unwrap();
    let answer = read_answer(&mut client, &mut buf, true).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(header(&answer.head, "content-length"), Some("5"), "a HEAD answer keeps its length");

    client.write_all(get("/chunked").as_bytes()).await.unwrap();
    let answer = read_answer(&mut client, &mut buf, false).await;
    assert_eq!(header(&answer.head, "transfer-encoding"), Some("chunked"));
    assert_eq!(answer.body, CHUNKED_BODY, "chunk extensions and trailers pass unchanged");

    client.write_all(get("/early-hints").as_bytes()).await.unwrap();
    let hints = read_answer(&mut client, &mut buf, false).await;
    assert_eq!(hints.status(), 103);
    assert_eq!(header(&hints.head, "link"), Some("</s.css>"));
    let answer = read_answer(&mut client, &mut buf, false).await;
    assert_eq!((answer.status(), answer.body.as_slice()), (200, b"ok".as_slice()));

    assert_eq!(backend.connections.load(Relaxed), 1, "the backend connection was not reused");

    // A body delimited by the backend's close: the client is told, and the proxy closes too.
    client.write_all(get("/close").as_bytes()).await.unwrap();
    let answer = read_answer(&mut client, &mut buf, false).await;
    assert_eq!(header(&answer.head, "connection"), Some("close"), "{}", answer.head);
    assert_eq!(answer.body, b"until close");
    let mut rest = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), client.read(&mut rest)).await.unwrap();
    assert!(matches!(closed, Ok(0)), "the proxy kept the connection open: {closed:?}");

    // The backend saw HTTP/1.1 with the forwarding headers the proxy sets.
    let heads = backend.heads.lock().unwrap().clone();
    assert!(heads[0].starts_with("GET /len HTTP/1.1\r\n"), "{}", heads[0]);
    assert_eq!(header(&heads[0], "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(&heads[0], "forwarded"), Some("for=127.0.0.1;proto=http;host=\"s.test\""));
    cancel.cancel();
}

#[tokio::test]
async fn pipelined_requests_keep_their_order_and_large_bodies_stream() {
    let backend = ScriptedBackend::start().await;
    let (_ingress, cancel, addr) = proxy_for(&backend).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let body = vec![b'x'; 300 * 1024];
    let mut requests =
        format!("POST /upload HTTP/1.1\r\nHost: s.test\r\nContent-Length: {}\r\n\r\n", body.len())
            .into_bytes();
    requests.extend_from_slice(&body);
    requests.extend_from_slice(get("/len").as_bytes());
    requests.extend_from_slice(b"POST /upload HTTP/1.1\r\nHost: s.test\r\nContent-Length: 3\r\n\r\nabc");
    let (mut reader, mut writer) = client.split();
    let (_, answers) = tokio::join!(writer.write_all(&requests), async {
        let mut buf = Vec::new();
        let mut answers = Vec::new();
        for _ in 0..3 {
            let mut stream_buf = std::mem::take(&mut buf);
            let answer = read_answer_from(&mut reader, &mut stream_buf).await;
            buf = stream_buf;
            answers.push(String::from_utf8(answer.body).unwrap());
        }
        answers
    });
    assert_eq!(answers, [format!("got={}", body.len()), "hello".into(), "got=3".into()]);
    drop(client);
    cancel.cancel();
}

/// `read_answer` for the read half of a split stream (Content-Length bodies only).
async fn read_answer_from(reader: &mut tokio::net::tcp::ReadHalf<'_>, buf: &mut Vec<u8>) -> Answer {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let len: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                return Answer { head, body };
            }
        }
        let mut chunk = [0u8; 65536];
        let n =
            tokio::time::timeout(Duration::from_secs(10), reader.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "the proxy closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_pooled_connection_the_backend_closed_is_replaced_without_an_error() {
    let backend = ScriptedBackend::start().await;
    let (ingress, cancel, addr) = proxy_for(&backend).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for path in ["/drop-after", "/len", "/drop-after", "/upload", "/len"] {
        if path == "/upload" {
            client
                .write_all(b"POST /upload HTTP/1.1\r\nHost: s.test\r\nContent-Length: 4\r\n\r\nbody")
                .await
                .unwrap();
        } else {
            client.write_all(get(path).as_bytes()).await.unwrap();
        }
        let answer = read_answer(&mut client, &mut buf, false).await;
        assert_eq!(answer.status(), 200, "{path}: {}", answer.head);
    }
    // Two drops, so three connections; none of it counted against the backend.
    assert_eq!(backend.connections.load(Relaxed), 3);
    let metrics = ingress.metrics_text();
    let failures = format!("ingress_backend_failures_total{{pool=\"s\",backend=\"{}\"}} 0", backend.addr);
    assert!(metrics.contains(&failures), "{metrics}");
    cancel.cancel();
}

#[tokio::test]
async fn a_malformed_backend_response_is_a_502_and_the_connection_goes_on() {
    let backend = ScriptedBackend::start().await;
    let (_ingress, cancel, addr) = proxy_for(&backend).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    client.write_all(get("/bad").as_bytes()).await.unwrap();
    let answer = read_answer(&mut client, &mut buf, false).await;
    assert_eq!(answer.status(), 502, "conflicting lengths must not reach the client: {}", answer.head);
    client.write_all(get("/len").as_bytes()).await.unwrap();
    let answer = read_answer(&mut client, &mut buf, false).await;
    assert_eq!((answer.status(), answer.body.as_slice()), (200, b"hello".as_slice()));
    assert_eq!(backend.connections.load(Relaxed), 2, "the out-of-step connection was reused");
    cancel.cancel();
}

#[tokio::test]
async fn requests_only_hyper_handles_are_handed_over_mid_connection() {
    let backend = ScriptedBackend::start().await;
    let (_ingress, cancel, addr) = proxy_for(&backend).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    client.write_all(get("/len").as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut client, &mut buf, false).await.body, b"hello");
    // A chunked request body is the hyper path's; the bytes already read are replayed to it.
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: s.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut client, &mut buf, false).await;
    assert_eq!((answer.status(), answer.body.as_slice()), (200, b"got=3".as_slice()), "{}", answer.head);
    // And hyper keeps serving the connection afterwards.
    client.write_all(get("/len").as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut client, &mut buf, false).await.body, b"hello");
    cancel.cancel();
}
