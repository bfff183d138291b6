//! The portal's X.509 certificate authority, for mutual TLS between the portal and facility
//! agents.
//!
//! Trust model:
//! - One CA per portal, created by whichever replica starts first and shared by all through the
//!   state store (key [`CA_KEY`], a create-if-absent transaction). Like the token-signing key,
//!   the private key sits in the store: whoever can write the store already controls the portal.
//! - Facility agents get server certificates ([`Pki::issue_server_cert`]) naming the facility
//!   (the portal checks that name, so one facility's certificate cannot impersonate another)
//!   and usable for server authentication only.
//! - The portal presents a client certificate ([`Pki::issue_client_cert`]) usable for client
//!   authentication only. An agent that accepts only client certificates signed by the portal
//!   CA ([`server_tls_config`]) therefore accepts only the portal: a facility's own server
//!   certificate is refused as a client identity, so facilities cannot drive each other.
//!
//! Keys are ECDSA P-256. Certificates are backdated an hour to tolerate clock skew.

mod tls;

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use trellis_store::{Compare, Op, Store, StoreError, Txn};
use trellis_types::Error;

pub use tls::{client_tls_config, ensure_crypto_provider, server_tls_config};

/// Store key of the portal CA (certificate and private key, JSON).
pub const CA_KEY: &str = "/trellis/pki/ca";

/// How long the CA is valid.
pub const CA_VALIDITY: Duration = Duration::days(3650);
/// How long a facility agent's server certificate is valid; agents are re-issued one by the
/// operator (re-commissioning), so this is long.
pub const SERVER_CERT_VALIDITY: Duration = Duration::days(730);
/// How long the portal's client certificate is valid; the portal issues itself a fresh one well
/// before it expires (see `trellis-materialize`'s connector), so this is short.
pub const CLIENT_CERT_VALIDITY: Duration = Duration::days(7);

/// How far certificates are backdated, so a peer whose clock is a little behind accepts them.
const BACKDATE: Duration = Duration::hours(1);
const CA_COMMON_NAME: &str = "Trellis portal CA";
const ORGANIZATION: &str = "Trellis";

/// The CA as kept in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredCa {
    cert_pem: String,
    key_pem: String,
    /// Seconds since the epoch.
    created: i64,
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// Seconds since the epoch after which the certificate is no longer valid.
    pub not_after: i64,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private keys into logs.
        f.debug_struct("IssuedCert").field("not_after", &self.not_after).finish_non_exhaustive()
    }
}

/// The portal certificate authority. Cheap to clone.
#[derive(Clone)]
pub struct Pki {
    ca: Arc<StoredCa>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("created", &self.ca.created).finish_non_exhaustive()
    }
}

fn store_error(err: StoreError) -> Error {
    match err {
        StoreError::Unavailable { .. } => Error::Unavailable(err.to_string()),
        other => Error::Internal(other.to_string()),
    }
}

fn pki_error(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |err| Error::Internal(format!("{what}: {err}"))
}

impl Pki {
    /// Loads the portal CA, creating it if no replica has yet. Creation is a create-if-absent
    /// transaction, so replicas starting together agree on one CA.
    pub async fn load_or_create(store: &dyn Store) -> Result<Pki, Error> {
        loop {
            if let Some(kv) = store.get(CA_KEY).await.map_err(store_error)? {
                let stored: StoredCa = serde_json::from_slice(&kv.value)
                    .map_err(|e| Error::Internal(format!("the stored portal CA is corrupt: {e}")))?;
                let pki = Pki { ca: Arc::new(stored) };
                // Fail at start-up, not at the first certificate, if the stored CA is unusable.
                pki.issuer()?;
                return Ok(pki);
            }
            let pki = Pki::generate_ephemeral(CA_COMMON_NAME)?;
            let value = serde_json::to_vec(pki.ca.as_ref())
                .map_err(|e| Error::Internal(format!("encoding the portal CA: {e}")))?;
            let outcome = store
                .txn(Txn {
                    compares: vec![Compare::ModRevision { key: CA_KEY.to_owned(), revision: 0 }],
                    success: vec![Op::Put { key: CA_KEY.to_owned(), value, lease: None }],
                })
                .await
                .map_err(store_error)?;
            if outcome.succeeded {
                tracing::info!("created the portal certificate authority");
                return Ok(pki);
            }
            // Another replica created it first: loop and use theirs.
        }
    }

    /// A fresh CA that is kept nowhere (tests use one as a foreign CA).
    pub fn generate_ephemeral(common_name: &str) -> Result<Pki, Error> {
        let key = KeyPair::generate().map_err(pki_error("generating the CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(serial());
        let cert = params.self_signed(&key).map_err(pki_error("signing the CA certificate"))?;
        Ok(Pki {
            ca: Arc::new(StoredCa {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                created: now.unix_timestamp(),
            }),
        })
    }

    /// The CA certificate (PEM): what agents trust for client certificates, and what the portal
    /// trusts for facilities that have no CA of their own.
    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// A server certificate for facility `facility`'s agent. Its subject alternative names are
    /// the facility name (which the portal verifies) and `names`: DNS names or IP addresses
    /// the agent is also reached by.
    pub fn issue_server_cert(&self, facility: &str, names: &[String]) -> Result<IssuedCert, Error> {
        let mut sans = vec![facility.to_owned()];
        sans.extend(names.iter().filter(|n| n.as_str() != facility).cloned());
        self.issue(facility, &sans, ExtendedKeyUsagePurpose::ServerAuth, SERVER_CERT_VALIDITY)
    }

    /// A client certificate for `name` (the portal uses `"portal"`).
    pub fn issue_client_cert(&self, name: &str) -> Result<IssuedCert, Error> {
        self.issue(name, &[name.to_owned()], ExtendedKeyUsagePurpose::ClientAuth, CLIENT_CERT_VALIDITY)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, Error> {
        let key = KeyPair::from_pem(&self.ca.key_pem)
            .map_err(|e| Error::Internal(format!("the portal CA key is unreadable: {e}")))?;
        Issuer::from_ca_cert_pem(&self.ca.cert_pem, key)
            .map_err(|e| Error::Internal(format!("the portal CA certificate is unreadable: {e}")))
    }

    fn issue(
        &self,
        common_name: &str,
        sans: &[String],
        usage: ExtendedKeyUsagePurpose,
        validity: Duration,
    ) -> Result<IssuedCert, Error> {
        let subject_alt_names = sans
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => name.clone().try_into().map(SanType::DnsName).map_err(|_| {
                    Error::invalid("names", format!("{name:?} is not a DNS name or IP address"))
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = KeyPair::generate().map_err(pki_error("generating a certificate key"))?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = subject_alt_names;
        params.distinguished_name = distinguished_name(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + validity;
        params.serial_number = Some(serial());
        let cert = params.signed_by(&key, &self.issuer()?).map_err(pki_error("signing a certificate"))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after: params.not_after.unix_timestamp(),
        })
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, ORGANIZATION);
    name.push(DnType::CommonName, common_name);
    name
}

/// A random positive 127-bit serial number (RFC 5280 asks for unique, at most 20 octets).
fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}
