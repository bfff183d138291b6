//! Password hashing with argon2id (the `argon2` crate's defaults: OWASP's recommended
//! m=19 MiB, t=2, p=1).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use trellis_types::Error;

/// The shortest password accepted at registration or password change.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Hashes `password` into a PHC string (`$argon2id$v=19$...`) with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, Error> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::invalid("password", format!("must be at least {MIN_PASSWORD_LEN} characters")));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Internal(format!("hashing password: {e}")))
}

/// Checks `password` against a stored PHC hash. A malformed stored hash counts as a mismatch
/// (and is logged), so a corrupted record can never be logged into.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "stored password hash is malformed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salts must differ");
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("wrong horse!", &a));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(hash_password("short"), Err(Error::InvalidArgument { .. })));
    }
}
