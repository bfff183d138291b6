//! tonic TLS configurations for both ends of the Facility API.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use trellis_types::Error;

use crate::IssuedCert;

/// Chooses aws-lc as the process's rustls crypto provider unless one is chosen already. rustls
/// refuses to pick one itself when a build links several (other crates may bring in ring), and
/// tonic builds its TLS configurations with the process default.
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another thread installing one is fine: either way one is installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

fn check_certificates(what: &str, pem: &str) -> Result<(), Error> {
    let parsed: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    match parsed {
        Ok(certs) if !certs.is_empty() => Ok(()),
        Ok(_) => Err(Error::FailedPrecondition(format!("{what} holds no PEM certificate"))),
        Err(err) => Err(Error::FailedPrecondition(format!("{what} is not a PEM certificate: {err}"))),
    }
}

fn check_key(what: &str, pem: &str) -> Result<(), Error> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map(drop)
        .map_err(|err| Error::FailedPrecondition(format!("{what} is not a PEM private key: {err}")))
}

/// The portal's side: trust only `trusted_ca_pem` for the server, expect its certificate to
/// name `server_name`, and present `identity` as the client certificate.
pub fn client_tls_config(
    trusted_ca_pem: &str,
    identity: &IssuedCert,
    server_name: &str,
) -> Result<ClientTlsConfig, Error> {
    ensure_crypto_provider();
    check_certificates("the trusted CA certificate", trusted_ca_pem)?;
    check_certificates("the client certificate", &identity.cert_pem)?;
    check_key("the client key", &identity.key_pem)?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(trusted_ca_pem))
        .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem))
        .domain_name(server_name))
}

/// An agent's side: present `cert_pem`/`key_pem` and require a client certificate for client
/// authentication signed by `client_ca_pem` (the portal CA), which only the portal holds.
pub fn server_tls_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> Result<ServerTlsConfig, Error> {
    ensure_crypto_provider();
    check_certificates("the server certificate", cert_pem)?;
    check_key("the server key", key_pem)?;
    check_certificates("the portal CA certificate", client_ca_pem)?;
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(cert_pem, key_pem))
        .client_ca_root(Certificate::from_pem(client_ca_pem))
        .client_auth_optional(false))
}
