//! The content address of a blob.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::BlobError;

/// Length of a blob id: a SHA-256 digest (32 bytes) in hex.
pub const BLOB_ID_LEN: usize = 64;

/// Content-addressed: the id is the lowercase hex SHA-256 of the bytes.
///
/// An id can only be made by hashing bytes ([`BlobId::of`]) or by parsing 64 hex digits
/// ([`BlobId::parse`]), so every `BlobId` is well formed; stores use it as a file or object name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(String);

impl BlobId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_digest(&Sha256::digest(bytes).into())
    }

    /// The id for a finished SHA-256 digest, for callers that hash in pieces.
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        let mut hex = String::with_capacity(BLOB_ID_LEN);
        for byte in digest {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        Self(hex)
    }

    /// Parses 64 hex digits. Upper-case digits are accepted and stored lower-case, so two spellings
    /// of one digest are one id.
    pub fn parse(s: &str) -> Result<Self, BlobError> {
        let invalid =
            |reason: &'static str| BlobError::InvalidId { input: s.chars().take(80).collect(), reason };
        if s.len() != BLOB_ID_LEN {
            return Err(invalid("must be 64 hex digits (a SHA-256 digest)"));
        }
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("contains a character that is not a hex digit"));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// The 64 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first two hex digits, which the local store uses to fan files out over 256 directories.
    pub fn fan_out(&self) -> &str {
        &self.0[..2]
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BlobId {
    type Err = BlobError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for BlobId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Hashes bytes handed over in pieces, for stores that read a blob chunk by chunk.
#[derive(Default)]
pub(crate) struct Hasher(Sha256);

impl Hasher {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finish(self) -> BlobId {
        BlobId::from_digest(&self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_is_the_sha256_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(BlobId::of(b"abc").as_str(), want);
        let mut h = Hasher::default();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish().as_str(), want);
    }

    #[test]
    fn parse_accepts_hex_and_lowercases() {
        let up = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        let id = BlobId::parse(up).unwrap();
        assert_eq!(id, BlobId::of(b"abc"));
        assert_eq!(id.to_string(), up.to_ascii_lowercase());
        assert_eq!(id.fan_out(), "ba");
    }

    #[test]
    fn parse_rejects_bad_input() {
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(65), "../../etc/passwd"] {
            assert!(matches!(BlobId::parse(bad), Err(BlobError::InvalidId { .. })), "{bad:?}");
        }
        // 64 bytes but not 64 ASCII characters.
        let multibyte = format!("{}é", "a".repeat(62));
        assert!(BlobId::parse(&multibyte).is_err());
    }
}
