//! Revisions: every pushed model version, named by the SHA-256 of its source, with branch and
//! tag references pointing at them.
//!
//! Compiled XIR up to [`INLINE_XIR_LIMIT`] is kept in the revision record; larger XIR goes to
//! the blob store and the record holds its id, so the state store never carries the hundreds
//! of MiB a large model compiles to (that locked up Merge's etcd).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use trellis_blobs::BlobId;

use crate::analysis::{Diagnostic, Summary};

/// Compiled XIR larger than this is stored in the blob store.
pub const INLINE_XIR_LIMIT: usize = 512 * 1024;

/// The largest model source accepted.
pub const MAX_SOURCE_BYTES: usize = 1024 * 1024;

/// The branch Merge pushes to; the only one its tools know.
pub const DEFAULT_BRANCH: &str = "master";

/// Where a revision's compiled XIR lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum XirLocation {
    /// In the record itself (base64 in JSON).
    Inline(#[serde(with = "b64")] Vec<u8>),
    /// In the blob store.
    Blob(String),
}

/// One pushed model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// SHA-256 (hex) of the source.
    pub id: String,
    pub project: String,
    pub experiment: String,
    /// The model source (`model.py`).
    pub source: String,
    pub xir: XirLocation,
    pub summary: Summary,
    /// Warnings found when it was pushed (errors prevent a revision).
    pub diagnostics: Vec<Diagnostic>,
    pub pushed_by: String,
    /// Seconds since the epoch.
    pub pushed_at: i64,
    /// Seconds the compile took, for display.
    pub compile_seconds: f64,
}

/// The id a source gets.
pub fn revision_id(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl XirLocation {
    /// The blob holding the XIR, if it is not inline.
    pub fn blob(&self) -> Option<Result<BlobId, trellis_blobs::BlobError>> {
        match self {
            XirLocation::Inline(_) => None,
            XirLocation::Blob(id) => Some(id.parse()),
        }
    }
}

/// Store keys of the model service.
pub mod keys {
    /// Prefix of everything about one experiment's models.
    pub fn experiment(project: &str, experiment: &str) -> String {
        format!("/trellis/models/{project}/{experiment}/")
    }

    /// Prefix of one experiment's revisions.
    pub fn revisions(project: &str, experiment: &str) -> String {
        format!("/trellis/models/{project}/{experiment}/revisions/")
    }

    /// Key of one revision.
    pub fn revision(project: &str, experiment: &str, id: &str) -> String {
        format!("/trellis/models/{project}/{experiment}/revisions/{id}")
    }

    /// Key of a branch head.
    pub fn branch(project: &str, experiment: &str, branch: &str) -> String {
        format!("/trellis/models/{project}/{experiment}/refs/heads/{branch}")
    }

    /// Key of a tag.
    pub fn tag(project: &str, experiment: &str, tag: &str) -> String {
        format!("/trellis/models/{project}/{experiment}/refs/tags/{tag}")
    }
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_content_hashes() {
        assert_eq!(revision_id(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_ne!(revision_id("a"), revision_id("b"));
    }

    #[test]
    fn inline_xir_round_trips_through_json() {
        let loc = XirLocation::Inline(vec![0, 1, 2, 255]);
        let json = serde_json::to_string(&loc).unwrap();
        assert_eq!(serde_json::from_str::<XirLocation>(&json).unwrap(), loc);
    }
}
