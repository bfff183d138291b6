//! [`JumpConfig`] and its translation into russh's server configuration.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::{Certificate, Fingerprint, HashAlg, PrivateKey, PublicKey};
use russh::{MethodKind, MethodSet, Preferred, SshId, cipher};

use crate::JumpError;

/// Configuration of a [`JumpHost`](crate::JumpHost).
#[derive(Clone)]
pub struct JumpConfig {
    /// Addresses to listen on (2202 and 2022 in production; tests use `127.0.0.1:0`).
    pub listen: Vec<SocketAddr>,
    /// The host's OpenSSH private key (unencrypted).
    pub host_private_key: String,
    /// A host certificate for that key, signed by the portal's host CA and offered to clients.
    pub host_certificate: Option<String>,
    /// OpenSSH public key lines of the user CAs: a user certificate signed by one of them is
    /// accepted when it is a user certificate, names the SSH username among its principals,
    /// is inside its validity window, permits port forwarding, and carries no critical option
    /// other than `source-address` (enforced) and `force-command` (moot: nothing runs here).
    pub user_ca_public_keys: Vec<String>,
    /// Authenticated connections one user may hold at once.
    pub max_connections_per_user: usize,
    /// An authenticated connection with no channel traffic for this long is disconnected.
    pub idle_timeout: Duration,
    /// A connection not authenticated this long after it was accepted is disconnected.
    pub auth_timeout: Duration,
    /// How long connecting to a channel's target may take.
    pub connect_timeout: Duration,
    /// Every refused login attempt is answered no sooner than this after it arrived, so the
    /// answer's timing does not tell which check failed.
    pub auth_rejection_delay: Duration,
    /// Expect a PROXY protocol v2 header first on every connection (the ingress sends one);
    /// connections without it are dropped.
    pub accept_proxy_protocol: bool,
    /// Which ciphers to offer.
    pub ciphers: CipherPreference,
}

/// The ciphers offered to clients. The client's order decides among those offered, so
/// preferring one means offering only it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CipherPreference {
    /// AES-GCM only: with AES-NI it costs the jump host and the client (both encrypt every byte)
    /// markedly less CPU than OpenSSH's default, ChaCha20-Poly1305. Every OpenSSH since 6.2
    /// supports it.
    #[default]
    AesGcm,
    /// ChaCha20-Poly1305 and AES-GCM, then AES-CTR: for clients without AES-GCM, or hosts
    /// without AES instructions.
    Compatible,
}

impl JumpConfig {
    /// A configuration with production defaults: 16 connections per user, a 15-minute idle
    /// timeout, 30 seconds to authenticate.
    pub fn new(listen: Vec<SocketAddr>, host_private_key: String) -> JumpConfig {
        JumpConfig {
            listen,
            host_private_key,
            host_certificate: None,
            user_ca_public_keys: Vec::new(),
            max_connections_per_user: 16,
            idle_timeout: Duration::from_secs(15 * 60),
            auth_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            auth_rejection_delay: Duration::from_millis(200),
            accept_proxy_protocol: false,
            ciphers: CipherPreference::AesGcm,
        }
    }

    /// Parses the keys and builds russh's configuration.
    pub(crate) fn prepare(&self) -> Result<Prepared, JumpError> {
        let host_key = PrivateKey::from_openssh(self.host_private_key.trim()).map_err(JumpError::HostKey)?;
        if host_key.is_encrypted() {
            return Err(JumpError::HostKeyEncrypted);
        }
        let mut certificates = Vec::new();
        if let Some(text) = &self.host_certificate {
            let cert = Certificate::from_openssh(text.trim()).map_err(JumpError::HostCertificate)?;
            if cert.cert_type() != CertType::Host {
                return Err(JumpError::HostCertificateMismatch("is not a host certificate"));
            }
            if cert.public_key() != host_key.public_key().key_data() {
                return Err(JumpError::HostCertificateMismatch("certifies a different key"));
            }
            certificates.push(cert);
        }
        let mut user_cas = Vec::with_capacity(self.user_ca_public_keys.len());
        for (index, line) in self.user_ca_public_keys.iter().enumerate() {
            let key =
                PublicKey::from_openssh(line.trim()).map_err(|source| JumpError::UserCa { index, source })?;
            user_cas.push(key.fingerprint(HashAlg::Sha256));
        }

        let mut methods = MethodSet::empty();
        methods.push(MethodKind::PublicKey);
        let cipher_list: &'static [cipher::Name] = match self.ciphers {
            CipherPreference::AesGcm => &[cipher::AES_128_GCM, cipher::AES_256_GCM],
            CipherPreference::Compatible => &[
                cipher::CHACHA20_POLY1305,
                cipher::AES_128_GCM,
                cipher::AES_256_GCM,
                cipher::AES_128_CTR,
                cipher::AES_256_CTR,
            ],
        };
        let russh = russh::server::Config {
            server_id: SshId::Standard(Cow::Borrowed("SSH-2.0-TrellisJump")),
            methods,
            auth_rejection_time: self.auth_rejection_delay,
            // OpenSSH clients open with a "none" request to learn the methods; answering it at
            // once saves a round of the rejection delay on every login and reveals nothing.
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![host_key],
            certificates,
            // Larger than OpenSSH's 2 MiB so a high-latency client can keep more in flight;
            // memory stays bounded by `channel_buffer_size` messages per channel.
            window_size: 8 * 1024 * 1024,
            // The largest a packet may be (RFC 4253 asks for at least 32768); fewer, larger
            // packets cost less per byte on both ends.
            maximum_packet_size: 65535,
            channel_buffer_size: 128,
            event_buffer_size: 64,
            preferred: Preferred {
                compression: Cow::Borrowed(&[russh::compression::NONE]),
                cipher: Cow::Borrowed(cipher_list),
                ..Preferred::default()
            },
            max_auth_attempts: 6,
            // A backstop that also covers a client that never closes after a disconnect. Longer
            // than the connection task's own timeouts, which come first and say why.
            inactivity_timeout: Some(self.idle_timeout.max(self.auth_timeout) * 2 + Duration::from_secs(10)),
            keepalive_interval: Some(Duration::from_secs(60)),
            keepalive_max: 3,
            nodelay: true,
            ..russh::server::Config::default()
        };
        Ok(Prepared { russh, user_cas })
    }
}

/// The parsed form of a [`JumpConfig`].
pub(crate) struct Prepared {
    pub(crate) russh: russh::server::Config,
    /// SHA-256 fingerprints of the trusted user CAs.
    pub(crate) user_cas: Vec<Fingerprint>,
}
