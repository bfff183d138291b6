//! TLS to backends: pools whose backends only speak HTTPS (an experiment node's web server on
//! 443, say) are reached over TLS after the ingress has terminated the client's.
//!
//! With a `ca`, the backend's certificate must chain to it and name `server_name`; without one
//! it is not checked (experiment nodes have self-signed certificates and sit on a network the
//! portal built), though the handshake still proves the backend holds the key it presented.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::UpstreamTlsConfig;
use crate::error::IngressError;
use crate::http::RequestBody;

/// The HTTP/2 client of one TLS pool (gRPC, `http2: true`): hyper-util's pooled client over
/// hyper-rustls, which keeps connections per backend.
pub(crate) type H2Client = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// How a pool's backends are reached over TLS.
#[derive(Clone)]
pub(crate) struct UpstreamTls {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
    /// The same settings without ALPN, for the HTTP/2 client made on first use.
    h2_config: Arc<ClientConfig>,
    h2: Arc<OnceLock<H2Client>>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// Reads the CA file (if any) and builds the client configuration.
    pub(crate) fn new(pool: &str, config: &UpstreamTlsConfig) -> Result<UpstreamTls, IngressError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| IngressError::Tls(e.to_string()))?;
        let mut client = match &config.ca {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in crate::tls::read_chain(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| IngressError::Tls(format!("pool {pool:?}: {}: {e}", path.display())))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
        };
        // hyper-rustls sets ALPN `h2` itself (and insists on setting it).
        let h2_config = client.clone();
        // The fast path speaks HTTP/1.1 to backends.
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_name = match &config.server_name {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| IngressError::Tls(format!("pool {pool:?}: server_name {name:?}: {e}")))?,
            ),
            None => None,
        };
        Ok(UpstreamTls {
            connector: TlsConnector::from(Arc::new(client)),
            server_name,
            h2_config: Arc::new(h2_config),
            h2: Arc::new(OnceLock::new()),
        })
    }

    /// The pool's HTTP/2 client, made on first use. Requests to it name the backend as
    /// `https://ip:port`; the TLS name is `server_name`, or the backend's address.
    pub(crate) fn h2(&self, connect_timeout: Duration) -> &H2Client {
        self.h2.get_or_init(|| {
            let mut http = HttpConnector::new();
            // The URIs are https: the TLS layer above takes the handshake.
            http.enforce_http(false);
            http.set_nodelay(true);
            http.set_connect_timeout(Some(connect_timeout));
            http.set_keepalive(Some(Duration::from_secs(60)));
            let builder =
                HttpsConnectorBuilder::new().with_tls_config((*self.h2_config).clone()).https_only();
            let builder = match &self.server_name {
                Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name.clone())),
                None => builder,
            };
            let connector = builder.enable_http2().wrap_connector(http);
            crate::runtime::h2_client_builder().build(connector)
        })
    }

    /// The TLS handshake on a connected stream to `addr`.
    pub(crate) async fn connect(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
    ) -> io::Result<TlsStream<TcpStream>> {
        let name = self.server_name.clone().unwrap_or(ServerName::IpAddress(addr.ip().into()));
        self.connector.connect(name, stream).await
    }
}

/// Accepts any certificate, but still checks the handshake signature made with its key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
