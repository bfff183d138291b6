//! TLS termination: per-SNI certificate selection and a development CA.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsConfig;
use crate::error::IngressError;

/// Chooses the certificate for a connection by its SNI name: an exact name first, then a
/// `*.` wildcard one label deep, then the default (the first certificate configured).
pub(crate) struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = client_hello.server_name() else {
            return self.default.clone();
        };
        // rustls hands over SNI already lowercased and validated as a DNS name.
        if let Some(key) = self.exact.get(name) {
            return Some(key.clone());
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(key) = self.wildcard.get(parent)
        {
            return Some(key.clone());
        }
        self.default.clone()
    }
}

/// Builds the server configuration of an HTTPS endpoint (ALPN `h2`, `http/1.1`).
pub(crate) fn server_config(endpoint: &str, tls: &TlsConfig) -> Result<Arc<ServerConfig>, IngressError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut resolver = SniResolver { exact: HashMap::new(), wildcard: HashMap::new(), default: None };
    let mut add = |names: &[String], key: Arc<CertifiedKey>| {
        for name in names {
            match name.strip_prefix("*.") {
                Some(parent) => resolver.wildcard.insert(parent.to_owned(), key.clone()),
                None => resolver.exact.insert(name.clone(), key.clone()),
            };
        }
        resolver.default.get_or_insert(key);
    };
    for cert in &tls.certificates {
        let chain = read_chain(&cert.cert)?;
        let key = read_key(&cert.key)?;
        add(&cert.names, certified_key(&provider, chain, key)?);
    }
    if let Some(dev) = &tls.dev_ca {
        let ca = DevCa::generate()?;
        let (cert_pem, key_pem) = ca.issue(&dev.names)?;
        if let Some(dir) = &dev.write_ca_to {
            std::fs::create_dir_all(dir)
                .map_err(|source| IngressError::ReadFile { path: dir.clone(), source })?;
            let path = dir.join("ca.pem");
            std::fs::write(&path, ca.cert_pem()).map_err(|source| IngressError::ReadFile { path, source })?;
        }
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IngressError::Tls(format!("dev certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| IngressError::Tls(format!("dev key: {e}")))?;
        add(&dev.names, certified_key(&provider, chain, key)?);
        tracing::warn!(endpoint, names = ?dev.names, "serving a certificate from a generated development CA");
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IngressError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Stateless tickets let clients resume without a full handshake and cost no server memory.
    config.ticketer =
        rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| IngressError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

fn certified_key(
    provider: &CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, IngressError> {
    let signing =
        provider.key_provider.load_private_key(key).map_err(|e| IngressError::Tls(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| IngressError::Tls(format!("certificate and key do not match: {e}")))?;
    Ok(Arc::new(certified))
}

pub(crate) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, IngressError> {
    let bytes =
        std::fs::read(path).map_err(|source| IngressError::ReadFile { path: path.to_owned(), source })?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| IngressError::Tls(format!("{}: {e}", path.display())))?;
    if chain.is_empty() {
        return Err(IngressError::Tls(format!("{} holds no certificate", path.display())));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, IngressError> {
    let bytes =
        std::fs::read(path).map_err(|source| IngressError::ReadFile { path: path.to_owned(), source })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| IngressError::Tls(format!("{}: {e}", path.display())))
}

/// A throw-away certificate authority (ECDSA P-256) for development and tests.
pub struct DevCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    cert_pem: String,
}

impl DevCa {
    /// Generates a new CA key and self-signed certificate.
    pub fn generate() -> Result<DevCa, IngressError> {
        let tls = |e: rcgen::Error| IngressError::Tls(format!("generating the development CA: {e}"));
        let key = rcgen::KeyPair::generate().map_err(tls)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "Trellis ingress development CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let cert_pem = params.self_signed(&key).map_err(tls)?.pem();
        Ok(DevCa { params, key, cert_pem })
    }

    /// The CA certificate clients should trust, as PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a server certificate for `names`; returns `(certificate PEM, key PEM)`.
    pub fn issue(&self, names: &[String]) -> Result<(String, String), IngressError> {
        let tls = |e: rcgen::Error| IngressError::Tls(format!("issuing a development certificate: {e}"));
        let key = rcgen::KeyPair::generate().map_err(tls)?;
        let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(tls)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, names.first().cloned().unwrap_or_default());
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(tls)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}
