//! The portal's SSH certificate authority (Merge's `Cred` service).
//!
//! XDCs, the SSH jump host and experiment nodes trust the CA's public key
//! (`TrustedUserCAKeys`), so a user logs in with a short-lived certificate the portal signs
//! instead of having public keys copied to every machine.
//!
//! Trust model:
//! - Two Ed25519 CA keys, created together by whichever replica starts first and shared by all
//!   through the store ([`CA_KEY`], a create-if-absent transaction): the *user CA* signs user
//!   certificates (machines put [`SshCa::public_key_openssh`] in `TrustedUserCAKeys`); the *host
//!   CA* signs host certificates of XDCs and jump hosts (clients put
//!   [`SshCa::host_public_key_openssh`] in an `@cert-authority` line of `known_hosts`; Merge
//!   returns it as `SshCert.ca_host_pub_key`). Separate keys mean trusting one role never
//!   implies trusting the other, and either can be replaced alone.
//! - Every user has one Ed25519 key pair ([`SshCa::user_keys`]), generated on first use. Merge
//!   hands the private key to the user's XDC, so the portal keeps it. User certificates name the
//!   username as principal, are valid from five minutes ago (clock skew) for 24 hours by default,
//!   and allow a pty, port forwarding and agent forwarding, not X11.
//!
//! Private keys are stored unencrypted in the state store, like the token-signing key and the
//! X.509 CA: there is no secret outside the store to encrypt them with, and whoever can read the
//! store can already impersonate any user through the portal itself. The risk is that a leak of
//! the store or of a backup of it gives away the CA (anyone could then log in anywhere until the
//! CA is replaced) and every user's key; protect the store and its backups accordingly.

mod certs;
mod records;
mod users;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};
use trellis_store::Store;
use trellis_types::Error;

pub use certs::IssuedCertificate;
pub use certs::{BACKDATE, MAX_PRINCIPALS};
pub use records::{CA_KEY, SERIAL_KEY, USERS_PREFIX, user_key_key, user_prefix};
pub use users::{UserKeys, delete_user_op};

/// How long a user certificate is valid unless the caller asks otherwise.
pub const DEFAULT_USER_CERT_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// The longest user certificate a caller may ask for, unless configured otherwise.
pub const DEFAULT_MAX_USER_CERT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a host certificate is valid unless the caller asks otherwise.
pub const DEFAULT_HOST_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

const USER_CA_COMMENT: &str = "trellis-user-ca";
const HOST_CA_COMMENT: &str = "trellis-host-ca";

/// Lifetimes of issued certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshCaConfig {
    /// Lifetime of a user certificate when the caller names none.
    pub user_cert_validity: Duration,
    /// The longest user certificate a caller may ask for.
    pub max_user_cert_validity: Duration,
    /// Lifetime of a host certificate when the caller names none.
    pub host_cert_validity: Duration,
}

impl Default for SshCaConfig {
    fn default() -> Self {
        SshCaConfig {
            user_cert_validity: DEFAULT_USER_CERT_VALIDITY,
            max_user_cert_validity: DEFAULT_MAX_USER_CERT_VALIDITY,
            host_cert_validity: DEFAULT_HOST_CERT_VALIDITY,
        }
    }
}

/// The CA record as kept in the store.
#[derive(Serialize, Deserialize)]
struct StoredCa {
    /// OpenSSH private key of the user CA.
    user_ca: String,
    /// OpenSSH private key of the host CA.
    host_ca: String,
    /// Seconds since the epoch.
    created: u64,
}

struct CaKeys {
    user_ca: PrivateKey,
    host_ca: PrivateKey,
}

/// The SSH certificate authority. Cheap to clone; every clone shares the store.
#[derive(Clone)]
pub struct SshCa {
    store: Arc<dyn Store>,
    keys: Arc<CaKeys>,
    config: SshCaConfig,
}

impl std::fmt::Debug for SshCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private keys into logs.
        f.debug_struct("SshCa")
            .field("user_ca", &self.keys.user_ca.fingerprint(HashAlg::Sha256).to_string())
            .field("host_ca", &self.keys.host_ca.fingerprint(HashAlg::Sha256).to_string())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SshCa {
    /// Loads the CA keys, creating them if no replica has yet. Replicas opening together agree on
    /// one CA.
    pub async fn open(store: Arc<dyn Store>, config: SshCaConfig) -> Result<SshCa, Error> {
        let (stored, revision) =
            records::load_or_create(store.as_ref(), CA_KEY, "SSH certificate authority", generate_ca).await?;
        let keys = CaKeys {
            user_ca: parse_private_key(&stored.user_ca, "SSH user CA key")?,
            host_ca: parse_private_key(&stored.host_ca, "SSH host CA key")?,
        };
        tracing::debug!(
            revision,
            user_ca = %keys.user_ca.fingerprint(HashAlg::Sha256),
            host_ca = %keys.host_ca.fingerprint(HashAlg::Sha256),
            "SSH certificate authority ready"
        );
        Ok(SshCa { store, keys: Arc::new(keys), config })
    }

    /// The lifetimes this CA issues certificates with.
    pub fn config(&self) -> &SshCaConfig {
        &self.config
    }

    /// The user CA's public key in `authorized_keys` format, for `TrustedUserCAKeys`.
    pub fn public_key_openssh(&self) -> Result<String, Error> {
        public_openssh(&self.keys.user_ca)
    }

    /// The host CA's public key in `authorized_keys` format, for an `@cert-authority` line in
    /// `known_hosts`.
    pub fn host_public_key_openssh(&self) -> Result<String, Error> {
        public_openssh(&self.keys.host_ca)
    }

    /// The SHA-256 fingerprint of the user CA (`SHA256:...`), as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.keys.user_ca.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The SHA-256 fingerprint of the host CA.
    pub fn host_fingerprint(&self) -> String {
        self.keys.host_ca.fingerprint(HashAlg::Sha256).to_string()
    }
}

fn generate_ca() -> Result<StoredCa, Error> {
    let user_ca = generate_key(USER_CA_COMMENT)?;
    let host_ca = generate_key(HOST_CA_COMMENT)?;
    tracing::info!(
        user_ca = %user_ca.fingerprint(HashAlg::Sha256),
        host_ca = %host_ca.fingerprint(HashAlg::Sha256),
        "generated SSH certificate authority keys"
    );
    Ok(StoredCa {
        user_ca: private_openssh(&user_ca)?,
        host_ca: private_openssh(&host_ca)?,
        created: now_unix(),
    })
}

/// A fresh Ed25519 key carrying `comment`.
pub(crate) fn generate_key(comment: &str) -> Result<PrivateKey, Error> {
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|e| Error::Internal(format!("generating an SSH key: {e}")))?;
    key.set_comment(comment);
    Ok(key)
}

pub(crate) fn private_openssh(key: &PrivateKey) -> Result<String, Error> {
    key.to_openssh(LineEnding::LF)
        .map(|pem| pem.as_str().to_owned())
        .map_err(|e| Error::Internal(format!("encoding an SSH private key: {e}")))
}

pub(crate) fn public_openssh(key: &PrivateKey) -> Result<String, Error> {
    key.public_key().to_openssh().map_err(|e| Error::Internal(format!("encoding an SSH public key: {e}")))
}

fn parse_private_key(pem: &str, what: &str) -> Result<PrivateKey, Error> {
    PrivateKey::from_openssh(pem).map_err(|e| Error::Internal(format!("the stored {what} is invalid: {e}")))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
