//! TLS from the proxy to backends: an HTTPS backend with a certificate from a development CA,
//! reached unverified, verified against the CA, with the wrong name, and in plain text.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use tokio::net::TcpListener;
use trellis_ingress::{DevCa, IngressConfig};

use crate::support::{client, get, ingress};

/// An HTTPS backend for `node.test` (HTTP/1.1, or HTTP/2 when ALPN asks for it) answering
/// `tls-backend path=<path> conn=<n> version=<version>`, where n counts the TLS connections
/// it accepted.
async fn https_backend(ca: &DevCa) -> SocketAddr {
    let (cert, key) = ca.issue(&["node.test".to_owned()]).unwrap();
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, connections) = (acceptor.clone(), connections.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let number = connections.fetch_add(1, Relaxed) + 1;
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| async move {
                    let text = format!(
                        "tls-backend path={} conn={number} version={:?}",
                        req.uri().path(),
                        req.version()
                    );
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

const CONFIG: &str = r#"
endpoints:
  - { name: web, listen: "127.0.0.1:0", protocol: http }
pools:
  unverified: { backends: ["{b}"], tls: {} }
  verified: { backends: ["{b}"], tls: { ca: "{ca}", server_name: node.test } }
  wrong-name: { backends: ["{b}"], tls: { ca: "{ca}", server_name: other.test } }
  plain: { backends: ["{b}"] }
routes:
  - { id: u, host: u.test, pool: unverified }
  - { id: v, host: v.test, pool: verified }
  - { id: w, host: w.test, pool: wrong-name }
  - { id: p, host: p.test, pool: plain }
"#;

#[tokio::test]
async fn https_backends_are_reached_over_tls_and_verified_when_asked() {
    let ca = DevCa::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert_pem()).unwrap();
    let backend = https_backend(&ca).await;
    let vars = [("b", backend.to_string()), ("ca", ca_path.display().to_string())];
    let (ingress, cancel) = ingress(CONFIG, &vars).await;
    let addr = ingress.local_addr("web").unwrap();

    for http2 in [false, true] {
        let client = client(addr, http2);
        let host = |name: &'static str| (!http2).then_some(name);
        let (status, body) = get(&client, "http://u.test/a", host("u.test")).await;
        assert_eq!(
            (status, body.split(" conn=").next().unwrap()),
            (200, "tls-backend path=/a"),
            "h2: {http2}"
        );
        let (status, body) = get(&client, "http://v.test/b", host("v.test")).await;
        assert_eq!(
            (status, body.split(" conn=").next().unwrap()),
            (200, "tls-backend path=/b"),
            "h2: {http2}"
        );
        // A certificate that does not name the server, and plain text to a TLS port: 502.
        assert_eq!(get(&client, "http://w.test/", host("w.test")).await.0, 502, "h2: {http2}");
        assert_eq!(get(&client, "http://p.test/", host("p.test")).await.0, 502, "h2: {http2}");
    }
    // TLS connections are pooled like plain ones: more requests, no new handshakes.
    let client = client(addr, false);
    let (_, first) = get(&client, "http://u.test/again", Some("u.test")).await;
    for _ in 0..5 {
        let (_, body) = get(&client, "http://u.test/again", Some("u.test")).await;
        assert_eq!(body, first, "a new TLS connection for each request");
    }
    cancel.cancel();
}

/// http health checks of a TLS pool go over TLS, verified as the pool's requests are.
#[tokio::test]
async fn health_checks_of_tls_pools_speak_tls() {
    let ca = DevCa::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert_pem()).unwrap();
    let backend = https_backend(&ca).await;
    let check = "health_check: { type: http, path: /healthz, interval: 50ms, timeout: 2s, rise: 1, fall: 1 }";
    let yaml = format!(
        r#"
pools:
  unverified: {{ backends: ["{{b}}"], tls: {{}}, {check} }}
  verified: {{ backends: ["{{b}}"], tls: {{ ca: "{{ca}}", server_name: node.test }}, {check} }}
  wrong-name: {{ backends: ["{{b}}"], tls: {{ ca: "{{ca}}", server_name: other.test }}, {check} }}
  plain: {{ backends: ["{{b}}"], {check} }}
"#
    );
    let vars = [("b", backend.to_string()), ("ca", ca_path.display().to_string())];
    let (ingress, cancel) = ingress(&yaml, &vars).await;
    let up = |pool: &str, value: u8| {
        format!("ingress_backend_up{{pool=\"{pool}\",backend=\"{backend}\"}} {value}")
    };
    let wanted = [up("unverified", 1), up("verified", 1), up("wrong-name", 0), up("plain", 0)];
    let settled = || {
        let metrics = ingress.metrics_text();
        wanted.iter().all(|line| metrics.contains(line.as_str())).then_some(()).ok_or(metrics)
    };
    // Every backend starts healthy; the verdicts must come, and then hold over many checks.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while let Err(metrics) = settled() {
        assert!(tokio::time::Instant::now() < deadline, "health never settled as {wanted:#?}:\n{metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for _ in 0..10 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if let Err(metrics) = settled() {
            panic!("health changed again after settling as {wanted:#?}:\n{metrics}");
        }
    }
    cancel.cancel();
}

/// HTTP/2 to TLS backends: `http2: true` pools, and gRPC to any TLS pool, go over TLS with
/// ALPN `h2`, verified as the pool says.
#[tokio::test]
async fn http2_and_grpc_reach_tls_backends_over_tls() {
    let ca = DevCa::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert_pem()).unwrap();
    let backend = https_backend(&ca).await;
    let yaml = r#"
endpoints:
  - { name: web, listen: "127.0.0.1:0", protocol: http }
pools:
  h2: { backends: ["{b}"], tls: {}, http2: true }
  h2-verified: { backends: ["{b}"], tls: { ca: "{ca}", server_name: node.test }, http2: true }
  h2-wrong-name: { backends: ["{b}"], tls: { ca: "{ca}", server_name: other.test }, http2: true }
  h1: { backends: ["{b}"], tls: {} }
routes:
  - { id: a, host: a.test, pool: h2 }
  - { id: v, host: v.test, pool: h2-verified }
  - { id: w, host: w.test, pool: h2-wrong-name }
  - { id: g, host: g.test, pool: h1 }
"#;
    let vars = [("b", backend.to_string()), ("ca", ca_path.display().to_string())];
    let (ingress, cancel) = ingress(yaml, &vars).await;
    let addr = ingress.local_addr("web").unwrap();
    for http2 in [false, true] {
        let client = client(addr, http2);
        let host = |name: &'static str| (!http2).then_some(name);
        for (url, name) in [("http://a.test/x", "a.test"), ("http://v.test/x", "v.test")] {
            let (status, body) = get(&client, url, host(name)).await;
            assert_eq!(status, 200, "{url} h2: {http2}: {body}");
            assert!(body.starts_with("tls-backend path=/x ") && body.ends_with("version=HTTP/2.0"), "{body}");
        }
        assert_eq!(get(&client, "http://w.test/", host("w.test")).await.0, 502, "h2: {http2}");
    }
    // gRPC exists only over HTTP/2: a pool without http2 still gets it over TLS as HTTP/2,
    // while its other requests stay HTTP/1.1.
    let client = client(addr, true);
    let grpc = hyper::Request::post("http://g.test/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(crate::support::empty())
        .unwrap();
    let response = client.request(grpc).await.unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.starts_with("tls-backend path=/echo.Echo/Say ") && body.ends_with("version=HTTP/2.0"),
        "{body}"
    );
    let (_, body) = get(&client, "http://g.test/plain", None).await;
    assert!(body.ends_with("version=HTTP/1.1"), "{body}");
    cancel.cancel();
}

#[test]
fn backend_tls_is_refused_where_it_cannot_work() {
    let refused = |pool: &str, extra: &str| {
        let yaml = format!(
            "endpoints:\n  - {{ name: web, listen: \"127.0.0.1:0\", protocol: http }}\n{extra}pools:\n  p: {pool}\nroutes:\n  - {{ id: r, host: \"*\", pool: p }}\n"
        );
        IngressConfig::from_yaml(&yaml).expect_err(&yaml).to_string()
    };
    let message = refused(r#"{ backends: ["127.0.0.1:1"], tls: { ca: /nonexistent/ca.pem } }"#, "");
    assert!(message.contains("/nonexistent/ca.pem"), "{message}");
    let message = refused(
        r#"{ backends: ["127.0.0.1:1"], tls: {} }"#,
        "  - { name: ssh, listen: \"127.0.0.1:0\", protocol: tcp, pool: p }\n",
    );
    assert!(message.contains("tcp endpoint"), "{message}");
}
