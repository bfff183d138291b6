use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{Backend, client, get, ingress};

const CONFIG: &str = r#"
timeouts: { header_read: 1s, tls_handshake: 1s }
endpoints:
  - { name: web, listen: "127.0.0.1:0", protocol: http }
  - { name: tls, listen: "127.0.0.1:0", protocol: https, tls: { dev_ca: { names: [a.test] } } }
pools:
  a: { backends: ["{a}"] }
routes:
  - { id: a, host: "*", pool: a }
"#;

/// Reads until the peer closes (or 10 s pass); returns what arrived and whether it closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn hostile_clients_are_closed_and_others_still_served() {
    let a = Backend::start("a").await;
    let (ingress, cancel) = ingress(CONFIG, &[("a", a.addr.to_string())]).await;
    let web = ingress.local_addr("web").unwrap();
    let good = client(web, false);
    let still_serving = || async { assert_eq!(get(&good, "http://a.test/", Some("a.test")).await.0, 200) };

    // Malformed request line.
    let mut stream = TcpStream::connect(web).await.unwrap();
    stream.write_all(b"THIS IS NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    let (answer, closed) = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert!(closed);
    still_serving().await;

    // Headers past the limit (64 KiB).
    let mut stream = TcpStream::connect(web).await.unwrap();
    let mut request = b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 200 * 1024));
    request.extend_from_slice(b"\r\n\r\n");
    let _ = stream.write_all(&request).await; // the proxy may close before it has read it all
    let (answer, closed) = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 431") || answer.is_empty(), "{answer:?}");
    assert!(closed);
    still_serving().await;

    // Slowloris: a header line every 200 ms never completes the request within header_read.
    let started = Instant::now();
    let mut slow = TcpStream::connect(web).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n").await.unwrap();
    let mut closed_by_proxy = false;
    for i in 0..50 {
        still_serving().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if slow.write_all(format!("X-Slow-{i}: x\r\n").as_bytes()).await.is_err() {
            closed_by_proxy = true;
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
            // hyper answers 408 or just closes.
            assert!(n == 0 || buf.starts_with(b"HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&buf[..n]));
            closed_by_proxy = true;
            break;
        }
    }
    assert!(closed_by_proxy, "a slow client kept its connection for {:?}", started.elapsed());

    // TLS garbage on the HTTPS endpoint.
    let tls = ingress.local_addr("tls").unwrap();
    let mut stream = TcpStream::connect(tls).await.unwrap();
    let garbage: Vec<u8> = (0..2048u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let _ = stream.write_all(&garbage).await;
    let (_, closed) = read_until_closed(&mut stream).await;
    assert!(closed, "garbage on the TLS endpoint did not close the connection");
    // A client that connects and says nothing is cut at the handshake timeout.
    let mut silent = TcpStream::connect(tls).await.unwrap();
    let (_, closed) = read_until_closed(&mut silent).await;
    assert!(closed, "a silent TLS client kept its connection");
    still_serving().await;

    let metrics = ingress.metrics_text();
    assert!(
        metrics.contains("ingress_errors_total{endpoint=\"tls\",reason=\"tls_handshake\"} 2"),
        "{metrics}"
    );
    cancel.cancel();
}
