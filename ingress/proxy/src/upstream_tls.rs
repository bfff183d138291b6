//! TLS to backends: pools whose backends only speak HTTPS (an experiment node's web server on
//! 443, say) are reached over TLS after the ingress has terminated the client's.
//!
//! With a `ca`, the backend's certificate must chain to it and name `server_name`; without one
//! it is not checked (experiment nodes have self-signed certificates and sit on a network the
//! portal built), though the handshake still proves the backend holds the key it presented.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::UpstreamTlsConfig;
use crate::error::IngressError;

/// How a pool's backends are reached over TLS.
#[derive(Clone)]
pub(crate) struct UpstreamTls {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
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
        // The fast path speaks HTTP/1.1 to backends.
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_name = match &config.server_name {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| IngressError::Tls(format!("pool {pool:?}: server_name {name:?}: {e}")))?,
            ),
            None => None,
        };
        Ok(UpstreamTls { connector: TlsConnector::from(Arc::new(client)), server_name })
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
