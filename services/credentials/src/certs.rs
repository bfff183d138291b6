//! Issuing user and host certificates.

use std::time::Duration;

use ssh_key::certificate::{Builder, CertType};
use ssh_key::rand_core::OsRng;
use ssh_key::{PrivateKey, PublicKey};
use trellis_types::{Error, validate_name};

use crate::records::next_serial;
use crate::{SshCa, now_unix};

/// How far certificates are backdated, so a machine whose clock is a little behind accepts them.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// The most principals (extra user principals or host names) one certificate may carry.
pub const MAX_PRINCIPALS: usize = 64;
const MAX_PRINCIPAL_LEN: usize = 255;

/// What a user certificate allows beyond logging in. X11 forwarding and `~/.ssh/rc` are left
/// out: neither is needed on a testbed node and both widen what a stolen certificate can do.
const USER_EXTENSIONS: [&str; 3] = ["permit-agent-forwarding", "permit-port-forwarding", "permit-pty"];

/// A signed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The certificate in OpenSSH format (`ssh-ed25519-cert-v01@openssh.com AAAA... key-id`),
    /// the contents of an `id_ed25519-cert.pub` file.
    pub openssh: String,
    pub serial: u64,
    /// `trellis:<username>:<serial>` for users, `trellis-host:<first name>:<serial>` for hosts;
    /// sshd logs it on every login.
    pub key_id: String,
    pub principals: Vec<String>,
    /// Seconds since the epoch from which the certificate is valid.
    pub valid_after: u64,
    /// Seconds since the epoch from which the certificate is no longer valid.
    pub valid_before: u64,
}

impl SshCa {
    /// A certificate for `username`'s own key pair ([`SshCa::user_keys`], created if needed),
    /// valid for `validity` (the configured default if `None`) as the principals `username`
    /// and `extra_principals`.
    pub async fn user_certificate(
        &self,
        username: &str,
        extra_principals: &[String],
        validity: Option<Duration>,
    ) -> Result<IssuedCertificate, Error> {
        let keys = self.user_keys(username).await?;
        self.sign_user_key(username, &keys.public_openssh, extra_principals, validity).await
    }

    /// A user certificate for `public_key_openssh` (an `authorized_keys` line), issued to
    /// `username` as in [`SshCa::user_certificate`]. For users who keep their own private key.
    pub async fn sign_user_key(
        &self,
        username: &str,
        public_key_openssh: &str,
        extra_principals: &[String],
        validity: Option<Duration>,
    ) -> Result<IssuedCertificate, Error> {
        validate_name("username", username)?;
        let subject = parse_public_key("public_key", public_key_openssh)?;
        let mut principals = vec![username.to_owned()];
        for extra in extra_principals {
            validate_principal("principals", extra)?;
            if !principals.contains(extra) {
                principals.push(extra.clone());
            }
        }
        check_principal_count("principals", &principals)?;
        let lifetime = resolve_validity(
            validity,
            self.config.user_cert_validity,
            Some(self.config.max_user_cert_validity),
        )?;
        let serial = next_serial(self.store.as_ref()).await?;
        let key_id = format!("trellis:{username}:{serial}");
        let extensions: &[&str] = &USER_EXTENSIONS;
        let request =
            Request { subject, cert_type: CertType::User, key_id, principals, lifetime, extensions };
        sign(&self.keys.user_ca, request, serial)
    }

    /// A host certificate for `host_public_key_openssh` (for example the contents of
    /// `/etc/ssh/ssh_host_ed25519_key.pub`) naming `hostnames` (the names and addresses clients
    /// connect to), signed by the host CA and valid for `validity` (the configured default if
    /// `None`).
    pub async fn host_certificate(
        &self,
        host_public_key_openssh: &str,
        hostnames: &[String],
        validity: Option<Duration>,
    ) -> Result<IssuedCertificate, Error> {
        let subject = parse_public_key("host_public_key", host_public_key_openssh)?;
        let Some(first) = hostnames.first() else {
            return Err(Error::invalid("hostnames", "name at least one host name or address"));
        };
        let mut principals: Vec<String> = Vec::new();
        for name in hostnames {
            validate_principal("hostnames", name)?;
            if !principals.contains(name) {
                principals.push(name.clone());
            }
        }
        check_principal_count("hostnames", &principals)?;
        let lifetime = resolve_validity(validity, self.config.host_cert_validity, None)?;
        let serial = next_serial(self.store.as_ref()).await?;
        let key_id = format!("trellis-host:{first}:{serial}");
        let request =
            Request { subject, cert_type: CertType::Host, key_id, principals, lifetime, extensions: &[] };
        sign(&self.keys.host_ca, request, serial)
    }
}

struct Request<'a> {
    subject: PublicKey,
    cert_type: CertType,
    key_id: String,
    principals: Vec<String>,
    lifetime: u64,
    extensions: &'a [&'a str],
}

fn sign(ca: &PrivateKey, request: Request<'_>, serial: u64) -> Result<IssuedCertificate, Error> {
    let now = now_unix();
    let valid_after = now.saturating_sub(BACKDATE.as_secs());
    let valid_before =
        now.checked_add(request.lifetime).ok_or_else(|| Error::invalid("validity", "is too long"))?;
    let failed = |e: ssh_key::Error| Error::Internal(format!("building an SSH certificate: {e}"));
    let mut builder = Builder::new_with_random_nonce(
        &mut OsRng,
        request.subject.key_data().clone(),
        valid_after,
        valid_before,
    )
    .map_err(failed)?;
    builder.serial(serial).map_err(failed)?;
    builder.cert_type(request.cert_type).map_err(failed)?;
    builder.key_id(request.key_id.clone()).map_err(failed)?;
    for principal in &request.principals {
        builder.valid_principal(principal.clone()).map_err(failed)?;
    }
    for extension in request.extensions {
        builder.extension(*extension, "").map_err(failed)?;
    }
    builder.comment(request.key_id.clone()).map_err(failed)?;
    let certificate = builder.sign(ca).map_err(failed)?;
    let openssh = certificate.to_openssh().map_err(failed)?;
    Ok(IssuedCertificate {
        openssh,
        serial,
        key_id: request.key_id,
        principals: request.principals,
        valid_after,
        valid_before,
    })
}

fn parse_public_key(field: &str, text: &str) -> Result<PublicKey, Error> {
    PublicKey::from_openssh(text.trim())
        .map_err(|e| Error::invalid(field, format!("is not an OpenSSH public key ({e})")))
}

/// Principals end up in sshd's principal matching and in `ssh-keygen -n` style comma lists, so
/// only printable ASCII without separators or wildcards is accepted.
fn validate_principal(field: &str, principal: &str) -> Result<(), Error> {
    if principal.is_empty() || principal.len() > MAX_PRINCIPAL_LEN {
        return Err(Error::invalid(field, format!("each must be 1 to {MAX_PRINCIPAL_LEN} characters long")));
    }
    if let Some(bad) = principal.chars().find(|c| !c.is_ascii_graphic() || matches!(c, ',' | '*' | '?' | '!'))
    {
        return Err(Error::invalid(field, format!("{principal:?} may not contain {bad:?}")));
    }
    Ok(())
}

fn check_principal_count(field: &str, principals: &[String]) -> Result<(), Error> {
    if principals.len() > MAX_PRINCIPALS {
        return Err(Error::invalid(field, format!("at most {MAX_PRINCIPALS} are allowed")));
    }
    Ok(())
}

/// The certificate lifetime in whole seconds: `requested` or `default`, at least one second and
/// at most `max`.
fn resolve_validity(
    requested: Option<Duration>,
    default: Duration,
    max: Option<Duration>,
) -> Result<u64, Error> {
    let validity = requested.unwrap_or(default);
    if validity < Duration::from_secs(1) {
        return Err(Error::invalid("validity", "must be at least one second"));
    }
    if let Some(max) = max
        && validity > max
    {
        return Err(Error::invalid("validity", format!("must be at most {} seconds", max.as_secs())));
    }
    Ok(validity.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_without_separators_or_wildcards() {
        for ok in ["alice", "root", "xdc.proj.example.net", "10.0.0.1", "fe80::1", "user@realm"] {
            assert!(validate_principal("p", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a,b", "a b", "*", "host?", "!x", "tab\t", "é", &"a".repeat(256)] {
            assert!(validate_principal("p", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validity_defaults_and_bounds() {
        let day = Duration::from_secs(86_400);
        assert_eq!(resolve_validity(None, day, None).unwrap(), 86_400);
        assert_eq!(resolve_validity(Some(Duration::from_secs(60)), day, Some(day)).unwrap(), 60);
        assert!(resolve_validity(Some(Duration::from_millis(999)), day, None).is_err());
        assert!(resolve_validity(Some(day * 2), day, Some(day)).is_err());
        assert!(resolve_validity(Some(day * 2), day, None).is_ok());
    }
}
