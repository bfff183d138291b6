//! The client's configuration file: which portal to talk to and the login token.
//!
//! The file is YAML (`server:`, `token:`, `username:`, optionally `ca_cert:`) at `--config`, else
//! `$XDG_CONFIG_HOME/trellis/config.yml`, else `~/.config/trellis/config.yml`.
//! It holds a bearer token, so it is written with mode 0600 in a 0700 directory, and replaced
//! atomically (write a temporary file, then rename) so a crash never leaves half a token.
//! Unknown keys are tolerated, unlike the daemon's configuration: a newer `trellis` may add keys
//! and an older one must keep working with the same file.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// Environment variable that supplies a password instead of a prompt.
pub const ENV_PASSWORD: &str = "TRELLIS_PASSWORD";

/// The portal address used when neither a flag, the environment nor the file names one
/// (the address `trellisd up` listens on by default).
pub const DEFAULT_SERVER: &str = "127.0.0.1:7080";

/// What the configuration file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The portal last logged in to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The access token from the last login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Who logged in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Extra certificate authorities given at login, for an `https://` server with a private CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

/// The configuration file path when `--config` is not given.
pub fn default_path() -> Result<PathBuf, CliError> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = match non_empty("XDG_CONFIG_HOME") {
        Some(dir) => dir,
        None => non_empty("HOME").ok_or(CliError::NoConfigDir)?.join(".config"),
    };
    Ok(base.join("trellis").join("config.yml"))
}

impl Config {
    /// Reads the file; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<Config, CliError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => return Err(CliError::ReadFile { path: path.to_owned(), source }),
        };
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_saphyr::from_str(&text)
            .map_err(|e| CliError::ParseConfig { path: path.to_owned(), message: e.to_string() })
    }

    /// Writes the file with mode 0600, creating its directory (mode 0700) if needed.
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let write_err = |source| CliError::WriteFile { path: path.to_owned(), source };
        // Plain scalars only: a token folded into a `>-` block is valid YAML but confuses people
        // (and scripts) reading the file.
        let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
        let text = serde_saphyr::to_string_with_options(self, options)
            .map_err(|e| CliError::ParseConfig { path: path.to_owned(), message: e.to_string() })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(write_err)?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            // The umask cannot widen 0600, but an inherited ACL default could; be explicit.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config.yml");
        assert_eq!(Config::load(&path).unwrap(), Config::default());
        let config = Config {
            server: Some("http://127.0.0.1:1234".into()),
            token: Some("a.b.c".into()),
            username: Some("alice".into()),
            ca_cert: Some("/etc/trellis/ca.pem".into()),
        };
        config.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), config);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("token: a.b.c\n"), "{text}");

        let cleared = Config { token: None, ..config };
        cleared.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap().token, None);
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "temporary file left");
    }

    #[test]
    fn unknown_keys_are_tolerated_and_bad_yaml_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yml");
        std::fs::write(&path, "server: h:1\nfuture: yes\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().server.as_deref(), Some("h:1"));
        std::fs::write(&path, "server: [unclosed\n").unwrap();
        assert!(matches!(Config::load(&path), Err(CliError::ParseConfig { .. })));
    }
}
