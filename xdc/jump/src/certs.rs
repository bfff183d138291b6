//! Checks on an OpenSSH user certificate presented at login.
//!
//! russh has already verified the certificate's own signature and validity window and that the
//! client holds its key; [`check_user_certificate`] decides whether *we* trust it, repeating the
//! cheap checks so this function stands on its own.

use std::fmt;
use std::net::IpAddr;

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::{Certificate, Fingerprint, HashAlg};

/// Why a user certificate is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertRefusal {
    NotUserCertificate,
    UntrustedCa,
    NotYetValid,
    Expired,
    BadSignature,
    NoPrincipals,
    PrincipalMismatch { principals: Vec<String> },
    ForwardingNotPermitted,
    SourceAddress { allowed: String },
    UnsupportedCriticalOption(String),
}

impl fmt::Display for CertRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertRefusal::NotUserCertificate => f.write_str("certificate is not a user certificate"),
            CertRefusal::UntrustedCa => f.write_str("certificate is not signed by a trusted user CA"),
            CertRefusal::NotYetValid => f.write_str("certificate is not yet valid"),
            CertRefusal::Expired => f.write_str("certificate has expired"),
            CertRefusal::BadSignature => f.write_str("certificate signature does not verify"),
            CertRefusal::NoPrincipals => f.write_str("certificate names no principals"),
            CertRefusal::PrincipalMismatch { principals } => {
                write!(f, "certificate principals {principals:?} do not include the login name")
            }
            CertRefusal::ForwardingNotPermitted => {
                f.write_str("certificate lacks the permit-port-forwarding extension")
            }
            CertRefusal::SourceAddress { allowed } => {
                write!(f, "client address is outside the certificate's source-address {allowed:?}")
            }
            CertRefusal::UnsupportedCriticalOption(name) => {
                write!(f, "certificate has unsupported critical option {name:?}")
            }
        }
    }
}

/// Whether `cert` lets `user` log in from `peer` at `now` (Unix seconds), given the SHA-256
/// fingerprints of the trusted user CAs.
pub(crate) fn check_user_certificate(
    cert: &Certificate,
    user: &str,
    trusted_cas: &[Fingerprint],
    now: u64,
    peer: IpAddr,
) -> Result<(), CertRefusal> {
    if cert.cert_type() != CertType::User {
        return Err(CertRefusal::NotUserCertificate);
    }
    let ca = cert.signature_key().fingerprint(HashAlg::Sha256);
    if !trusted_cas.contains(&ca) {
        return Err(CertRefusal::UntrustedCa);
    }
    if now < cert.valid_after() {
        return Err(CertRefusal::NotYetValid);
    }
    if now >= cert.valid_before() {
        return Err(CertRefusal::Expired);
    }
    if cert.validate_at(now, [&ca]).is_err() {
        return Err(CertRefusal::BadSignature);
    }
    // OpenSSH reads an empty list as "any principal"; the portal always names the user, so an
    // empty list is a mistake worth refusing.
    let principals = cert.valid_principals();
    if principals.is_empty() {
        return Err(CertRefusal::NoPrincipals);
    }
    if !principals.iter().any(|p| p == user) {
        return Err(CertRefusal::PrincipalMismatch { principals: principals.to_vec() });
    }
    // As in OpenSSH, a certificate without this extension may not forward, which is all a
    // jump host does.
    if !cert.extensions().contains_key("permit-port-forwarding") {
        return Err(CertRefusal::ForwardingNotPermitted);
    }
    for (name, value) in cert.critical_options().iter() {
        match name.as_str() {
            "source-address" => {
                if !source_address_allows(value, peer) {
                    return Err(CertRefusal::SourceAddress { allowed: value.clone() });
                }
            }
            // Restricts which command runs; the jump host runs none and sshd on the target
            // applies its own policy.
            "force-command" => {}
            // Unknown critical options must fail closed (PROTOCOL.certkeys).
            other => return Err(CertRefusal::UnsupportedCriticalOption(other.to_owned())),
        }
    }
    Ok(())
}

/// Whether `peer` matches a `source-address` list: comma-separated addresses or CIDR blocks.
/// An unparsable entry matches nothing, so a malformed list refuses.
pub(crate) fn source_address_allows(list: &str, peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    list.split(',').map(str::trim).any(|entry| cidr_contains(entry, peer))
}

fn cidr_contains(entry: &str, peer: IpAddr) -> bool {
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => match prefix.parse::<u8>() {
            Ok(prefix) => (addr, Some(prefix)),
            Err(_) => return false,
        },
        None => (entry, None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (net.to_canonical(), peer) {
        (IpAddr::V4(net), IpAddr::V4(peer)) => {
            let bits = prefix.unwrap_or(32);
            bits <= 32 && masked(u32::from(net).into(), bits, 32) == masked(u32::from(peer).into(), bits, 32)
        }
        (IpAddr::V6(net), IpAddr::V6(peer)) => {
            let bits = prefix.unwrap_or(128);
            bits <= 128 && masked(u128::from(net), bits, 128) == masked(u128::from(peer), bits, 128)
        }
        _ => false,
    }
}

/// The top `bits` of a `width`-bit address.
fn masked(addr: u128, bits: u8, width: u8) -> u128 {
    if bits == 0 { 0 } else { addr >> (width - bits) }
}

#[cfg(test)]
mod tests {
    use russh::keys::ssh_key::PrivateKey;
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::new(KeypairData::Ed25519(Ed25519Keypair::from_seed(&[seed; 32])), "").unwrap()
    }

    struct Spec {
        cert_type: CertType,
        principals: Vec<&'static str>,
        window: (u64, u64),
        extensions: Vec<&'static str>,
        critical: Vec<(&'static str, &'static str)>,
    }

    impl Default for Spec {
        fn default() -> Spec {
            Spec {
                cert_type: CertType::User,
                principals: vec!["alice"],
                window: (NOW - 60, NOW + 3600),
                extensions: vec!["permit-port-forwarding", "permit-pty"],
                critical: vec![],
            }
        }
    }

    fn cert(ca: &PrivateKey, spec: Spec) -> Certificate {
        let mut b = Builder::new([7u8; 16], key(1).public_key(), spec.window.0, spec.window.1).unwrap();
        b.cert_type(spec.cert_type).unwrap().key_id("test").unwrap();
        if spec.principals.is_empty() {
            b.all_principals_valid().unwrap();
        }
        for p in spec.principals {
            b.valid_principal(p).unwrap();
        }
        for e in spec.extensions {
            b.extension(e, "").unwrap();
        }
        for (name, value) in spec.critical {
            b.critical_option(name, value).unwrap();
        }
        b.sign(ca).unwrap()
    }

    fn check(spec: Spec) -> Result<(), CertRefusal> {
        let ca = key(9);
        let trusted = [ca.public_key().fingerprint(HashAlg::Sha256)];
        check_user_certificate(&cert(&ca, spec), "alice", &trusted, NOW, ip("192.0.2.7"))
    }

    #[test]
    fn a_portal_certificate_passes() {
        assert_eq!(check(Spec::default()), Ok(()));
        let multi = Spec { principals: vec!["alice", "alice-admin"], ..Spec::default() };
        assert_eq!(check(multi), Ok(()));
        let forced = Spec { critical: vec![("force-command", "/bin/true")], ..Spec::default() };
        assert_eq!(check(forced), Ok(()));
        let sourced = Spec { critical: vec![("source-address", "192.0.2.0/24")], ..Spec::default() };
        assert_eq!(check(sourced), Ok(()));
    }

    #[test]
    fn each_check_refuses() {
        let host = Spec { cert_type: CertType::Host, ..Spec::default() };
        assert_eq!(check(host), Err(CertRefusal::NotUserCertificate));
        let expired = Spec { window: (NOW - 7200, NOW - 3600), ..Spec::default() };
        assert_eq!(check(expired), Err(CertRefusal::Expired));
        // valid_before is exclusive.
        let boundary = Spec { window: (NOW - 7200, NOW), ..Spec::default() };
        assert_eq!(check(boundary), Err(CertRefusal::Expired));
        let future = Spec { window: (NOW + 60, NOW + 3600), ..Spec::default() };
        assert_eq!(check(future), Err(CertRefusal::NotYetValid));
        let bob = Spec { principals: vec!["bob"], ..Spec::default() };
        assert_eq!(check(bob), Err(CertRefusal::PrincipalMismatch { principals: vec!["bob".into()] }));
        let anyone = Spec { principals: vec![], ..Spec::default() };
        assert_eq!(check(anyone), Err(CertRefusal::NoPrincipals));
        let no_forwarding = Spec { extensions: vec!["permit-pty"], ..Spec::default() };
        assert_eq!(check(no_forwarding), Err(CertRefusal::ForwardingNotPermitted));
        let elsewhere = Spec { critical: vec![("source-address", "10.0.0.0/8")], ..Spec::default() };
        assert!(matches!(check(elsewhere), Err(CertRefusal::SourceAddress { .. })));
        let unknown = Spec { critical: vec![("verify-required", "")], ..Spec::default() };
        assert_eq!(check(unknown), Err(CertRefusal::UnsupportedCriticalOption("verify-required".into())));
    }

    #[test]
    fn only_trusted_cas_sign() {
        let rogue = key(10);
        let trusted = [key(9).public_key().fingerprint(HashAlg::Sha256)];
        let forged = cert(&rogue, Spec::default());
        assert_eq!(
            check_user_certificate(&forged, "alice", &trusted, NOW, ip("192.0.2.7")),
            Err(CertRefusal::UntrustedCa)
        );
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn source_address_lists() {
        assert!(source_address_allows("127.0.0.1", ip("127.0.0.1")));
        assert!(!source_address_allows("127.0.0.2", ip("127.0.0.1")));
        assert!(source_address_allows("10.0.0.0/8,192.168.1.0/24", ip("192.168.1.77")));
        assert!(!source_address_allows("10.0.0.0/8,192.168.1.0/24", ip("192.168.2.1")));
        assert!(source_address_allows("0.0.0.0/0", ip("203.0.113.9")));
        assert!(source_address_allows("2001:db8::/32", ip("2001:db8:1::5")));
        assert!(!source_address_allows("2001:db8::/32", ip("2001:db9::5")));
        // A v4-mapped v6 peer (dual-stack listener) still matches a v4 block.
        assert!(source_address_allows("127.0.0.0/8", ip("::ffff:127.0.0.1")));
        // Malformed entries match nothing.
        assert!(!source_address_allows("127.0.0.1/40", ip("127.0.0.1")));
        assert!(!source_address_allows("not-an-ip", ip("127.0.0.1")));
        assert!(!source_address_allows("", ip("127.0.0.1")));
    }
}
