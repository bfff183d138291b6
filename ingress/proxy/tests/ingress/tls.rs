use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject as _};
use tokio::net::TcpStream;
use trellis_ingress::DevCa;

use crate::support::{Backend, empty, ingress};

/// Writes a certificate for `name` issued by `ca`; returns (cert path, key path).
fn issue(ca: &DevCa, dir: &std::path::Path, name: &str) -> (String, String) {
    let (cert, key) = ca.issue(&[name.to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    (cert_path.display().to_string(), key_path.display().to_string())
}

pub fn client_config(ca_pem: &str, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// Connects with SNI `name` (the handshake verifies the certificate against the CA and that
/// name), sends `GET /` over the negotiated protocol, and returns the body.
async fn fetch(addr: SocketAddr, ca_pem: &str, name: &str, alpn: &[u8]) -> String {
    let connector = tokio_rustls::TlsConnector::from(client_config(ca_pem, alpn));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect(ServerName::try_from(name.to_owned()).unwrap(), tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    let io = TokioIo::new(tls);
    let uri = format!("https://{name}/");
    let response = if alpn == b"h2" {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.unwrap();
        tokio::spawn(conn);
        sender.send_request(http::Request::get(uri).body(empty()).unwrap()).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let request = http::Request::get("/").header("host", name).body(empty()).unwrap();
        sender.send_request(request).await.unwrap()
    };
    assert_eq!(response.status(), 200);
    String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned()
}

#[tokio::test]
async fn terminates_tls_with_the_certificate_for_each_sni_name() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    let (a_cert, a_key) = issue(&ca, dir.path(), "a.test");
    let (b_cert, b_key) = issue(&ca, dir.path(), "b.test");
    let (ingress, cancel) = ingress(
        r#"
endpoints:
  - name: web
    listen: "127.0.0.1:0"
    protocol: https
    tls:
      certificates:
        - { names: [a.test], cert: "{a_cert}", key: "{a_key}" }
        - { names: ["*.b.test", b.test], cert: "{b_cert}", key: "{b_key}" }
pools:
  a: { backends: ["{a}"] }
  b: { backends: ["{b}"] }
routes:
  - { id: a, host: a.test, pool: a }
  - { id: b, host: b.test, pool: b }
"#,
        &[
            ("a", a.addr.to_string()),
            ("b", b.addr.to_string()),
            ("a_cert", a_cert),
            ("a_key", a_key),
            ("b_cert", b_cert),
            ("b_key", b_key),
        ],
    )
    .await;
    let addr = ingress.local_addr("web").unwrap();
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let body = fetch(addr, ca.cert_pem(), "a.test", alpn).await;
        assert!(body.starts_with("backend=a") && body.contains("xfp=https "), "{body}");
        let body = fetch(addr, ca.cert_pem(), "b.test", alpn).await;
        assert!(
            body.starts_with("backend=b")
                && body.contains("forwarded=for=127.0.0.1;proto=https;host=\"b.test\""),
            "{body}"
        );
    }
    cancel.cancel();
}

#[tokio::test]
async fn dev_ca_endpoint_serves_a_certificate_clients_can_verify() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let (ingress, cancel) = ingress(
        r#"
endpoints:
  - name: web
    listen: "127.0.0.1:0"
    protocol: https
    tls: { dev_ca: { names: [api.test], write_ca_to: "{dir}" } }
pools:
  a: { backends: ["{a}"] }
routes:
  - { id: a, host: "*", pool: a }
"#,
        &[("a", a.addr.to_string()), ("dir", dir.path().display().to_string())],
    )
    .await;
    let ca_pem = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let body = fetch(ingress.local_addr("web").unwrap(), &ca_pem, "api.test", b"h2").await;
    assert!(body.starts_with("backend=a"), "{body}");
    cancel.cancel();
}
