//! Persistent volumes for XDCs: a home per user and a directory per project, which outlive
//! any XDC. Two backends: [`local::LocalVolumes`] (directories under a root, the default) and
//! [`cephfs::CephFsVolumes`] (a CephFS subvolume per volume, with a quota, created through the
//! Ceph mgr volumes module and mounted on this host).
//!
//! # Layout
//! - `lib.rs`: the [`Volumes`] trait, [`VolumeOwner`], [`VolumeError`] and the name rules
//!   ([`validate_name`]) both backends apply before touching anything.
//! - [`local`]: plain directories; no quota.
//! - [`cephfs`]: subvolumes via the `ceph` CLI, mounted with `ceph-fuse`.
//! - `host` (private): this host's side of CephFS: commands with a time limit, `ceph-fuse`
//!   mounts. `mountinfo` (private): reading `/proc/self/mountinfo`.

use std::path::PathBuf;

pub use trellis_xdc_runtime::VolumeRef;

pub mod cephfs;
mod host;
pub mod local;
mod mountinfo;

/// Who owns the volume's top directory and how large it may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeOwner {
    pub uid: u32,
    pub gid: u32,
    /// Directory mode: 0o750 for homes, 0o2770 (setgid, group-writable) for projects.
    pub mode: u32,
    /// Quota in bytes; 0 = none.
    pub quota_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The name, quoted, followed by the rule it breaks, e.g. `"Bob": must start with a
    /// lowercase letter`.
    #[error("invalid volume name {0}")]
    InvalidName(String),
    #[error("volume backend unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

/// A place for persistent XDC volumes. Every call is idempotent.
#[async_trait::async_trait]
pub trait Volumes: Send + Sync + 'static {
    /// Creates the volume if needed (owner, mode and quota applied every time) and returns
    /// where it is mounted on this host, ready to bind into an XDC.
    async fn ensure(&self, volume: &VolumeRef, owner: VolumeOwner) -> Result<PathBuf, VolumeError>;
    /// Deletes the volume and its data (project or user deletion; never XDC deletion).
    async fn remove(&self, volume: &VolumeRef) -> Result<(), VolumeError>;
}

/// The longest volume name; the same limit as Merge user and project names (Unix account
/// names), see `trellis_types::names`.
pub const MAX_NAME_LEN: usize = 32;

/// Checks a user or project name against Merge's rules: `[a-z][a-z0-9]*`, at most
/// [`MAX_NAME_LEN`] characters. Names become directory, subvolume and mount-point names, so
/// this also rules out `/`, `..`, empty names and control characters.
pub fn validate_name(name: &str) -> Result<(), VolumeError> {
    let problem = if name.is_empty() {
        Some("must not be empty".to_owned())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("must be at most {MAX_NAME_LEN} characters (got {})", name.len()))
    } else if !name.as_bytes()[0].is_ascii_lowercase() {
        Some("must start with a lowercase letter".to_owned())
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
            .map(|bad| format!("may contain only lowercase letters and digits (found {bad:?})"))
    };
    match problem {
        Some(rule) => Err(VolumeError::InvalidName(format!("{name:?}: {rule}"))),
        None => Ok(()),
    }
}

/// The volume's kind (`home` or `project`) and its validated name.
pub(crate) fn kind_and_name(volume: &VolumeRef) -> Result<(Kind, &str), VolumeError> {
    let (kind, name) = match volume {
        VolumeRef::Home(user) => (Kind::Home, user.as_str()),
        VolumeRef::Project(project) => (Kind::Project, project.as_str()),
    };
    validate_name(name)?;
    Ok((kind, name))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Home,
    Project,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_merge_style_names() {
        for ok in ["a", "alice", "proj1", "x0", &"a".repeat(MAX_NAME_LEN)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else_with_the_rule_broken() {
        let cases = [
            ("", "must not be empty"),
            ("..", "must start with a lowercase letter"),
            ("a/b", "found '/'"),
            ("a..b", "found '.'"),
            ("Alice", "must start with a lowercase letter"),
            ("1abc", "must start with a lowercase letter"),
            ("a\nb", "found '\\n'"),
            ("a\u{7f}", "found '\\u{7f}'"),
            ("é", "must start with a lowercase letter"),
            ("a-b", "found '-'"),
        ];
        for (bad, why) in cases {
            let message = validate_name(bad).unwrap_err().to_string();
            assert!(message.starts_with("invalid volume name"), "{message}");
            assert!(message.contains(why), "{bad:?}: {message}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert!(validate_name(&long).unwrap_err().to_string().contains("at most 32"));
    }
}
