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

/// An HTTPS/1.1 backend for `node.test` answering `tls-backend path=<path> conn=<n>`, where n
/// counts the TLS connections it accepted.
async fn https_backend(ca: &DevCa) -> SocketAddr {
    let (cert, key) = ca.issue(&["node.test".to_owned()]).unwrap();
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
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
                    let text = format!("tls-backend path={} conn={number}", req.uri().path());
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
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
    let message = refused(r#"{ backends: ["127.0.0.1:1"], http2: true, tls: {} }"#, "");
    assert!(message.contains("http2"), "{message}");
    let message = refused(
        r#"{ backends: ["127.0.0.1:1"], tls: {} }"#,
        "  - { name: ssh, listen: \"127.0.0.1:0\", protocol: tcp, pool: p }\n",
    );
    assert!(message.contains("tcp endpoint"), "{message}");
}
