//! The SSH files `trellis login` installs and the `ssh`/`scp` command lines of
//! `trellis xdc ssh|scp`.
//!
//! Like `mrg login`, login copies the portal-issued key pair and certificate into the SSH
//! directory (`~/.ssh`, or `--ssh-dir`/`TRELLIS_SSH_DIR`): `merge_key` (0600), `merge_key.pub`
//! and `merge_key-cert.pub`. Beside them it writes two files Trellis owns outright:
//! `trellis_known_hosts` (`@cert-authority * <host CA>`, so jump hosts and XDCs presenting host
//! certificates from the portal are trusted without prompts) and `trellis_ssh_config` (what
//! `trellis xdc ssh|scp` hand to `ssh -F`). In the directory's `config` it keeps one block
//! between markers defining `Host mergejump`, so `ssh -J mergejump ...` works by hand; every
//! other line of that file is left as it was.
//!
//! Why `-F` rather than `-i`/`-o` flags: options on ssh's command line apply only to the final
//! destination, never to the hops of `-J`, which OpenSSH runs as separate `ssh -W` processes
//! that inherit only `-F`, `-l`, `-p` and `-v`. A config file given with `-F` reaches every hop.
//! The price is that `trellis xdc ssh` does not read `~/.ssh/config` (nor /etc/ssh/ssh_config).
//!
//! Paths written into configuration files are absolute: ssh expands `~` from the password
//! database, not from `$HOME`, so `~` would point elsewhere whenever `$HOME` is overridden.

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// The host alias the managed block of `config` defines for the jump host (Merge's name).
pub const JUMP_ALIAS: &str = "mergejump";
const KEY: &str = "merge_key";
const KNOWN_HOSTS: &str = "trellis_known_hosts";
const CLIENT_CONFIG: &str = "trellis_ssh_config";
const BEGIN: &str = "# BEGIN trellis";
const END: &str = "# END trellis";

/// Where the SSH files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshFiles {
    /// The directory, absolute.
    pub dir: PathBuf,
}

impl SshFiles {
    /// `dir` if given, else `$HOME/.ssh`.
    pub fn locate(dir: Option<&Path>) -> Result<SshFiles, CliError> {
        let dir = match dir {
            Some(d) => d.to_owned(),
            None => {
                let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or(CliError::NoSshDir)?;
                PathBuf::from(home).join(".ssh")
            }
        };
        let dir = std::path::absolute(&dir).map_err(|source| CliError::ReadFile { path: dir, source })?;
        Ok(SshFiles { dir })
    }

    /// The private key.
    pub fn key(&self) -> PathBuf {
        self.dir.join(KEY)
    }

    /// The public key.
    pub fn public_key(&self) -> PathBuf {
        self.dir.join(format!("{KEY}.pub"))
    }

    /// The certificate (where ssh looks for the key's certificate by default, too).
    pub fn certificate(&self) -> PathBuf {
        self.dir.join(format!("{KEY}-cert.pub"))
    }

    /// The known-hosts file trusting the portal's host CA.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join(KNOWN_HOSTS)
    }

    /// The configuration `trellis xdc ssh|scp` pass with `-F`.
    pub fn client_config(&self) -> PathBuf {
        self.dir.join(CLIENT_CONFIG)
    }

    /// The user's own ssh configuration, where the `mergejump` block goes.
    pub fn user_config(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// Fails unless login installed the key, certificate and client configuration.
    pub fn check_installed(&self) -> Result<(), CliError> {
        for path in [self.key(), self.certificate(), self.client_config()] {
            if !path.is_file() {
                return Err(CliError::NoSshKey { path });
            }
        }
        Ok(())
    }
}

/// What the portal's `Cred` service hands a user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// OpenSSH private key (PEM-like `-----BEGIN OPENSSH PRIVATE KEY-----` text).
    pub private_key: String,
    /// `ssh-ed25519 AAAA...`.
    pub public_key: String,
    /// `ssh-ed25519-cert-v01@openssh.com AAAA...`.
    pub certificate: String,
    /// The host CA's public key; empty when the portal has none.
    pub host_ca: String,
}

/// A jump host as ssh's `-J` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    /// The account on the jump host (the portal username).
    pub user: String,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for Jump {
    /// `user@host:port`, with an IPv6 address in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// A value in ssh_config syntax: quoted when it holds whitespace.
fn config_value(path: &Path) -> String {
    let text = path.to_string_lossy();
    if text.contains(char::is_whitespace) { format!("\"{text}\"") } else { text.into_owned() }
}

/// The identity lines every Trellis hop uses.
fn identity_lines(files: &SshFiles, trust_ca: bool) -> String {
    let mut out = format!(
        "    IdentityFile {}\n    CertificateFile {}\n    IdentitiesOnly yes\n",
        config_value(&files.key()),
        config_value(&files.certificate()),
    );
    if trust_ca {
        out.push_str(&format!("    UserKnownHostsFile {}\n", config_value(&files.known_hosts())));
    }
    out
}

/// `trellis_ssh_config`: the key, certificate and known hosts for every hop.
pub fn client_config(files: &SshFiles, trust_ca: bool) -> String {
    format!(
        "# Written by `trellis login` and rewritten at every login; `trellis xdc ssh|scp` pass it\n\
         # to ssh with -F so that every hop through the portal's jump host uses these.\n\
         Host *\n{}",
        identity_lines(files, trust_ca)
    )
}

/// The managed block of `config`: `Host mergejump` reaching `jump` with the portal's key.
pub fn managed_block(files: &SshFiles, jump: &Jump, trust_ca: bool) -> String {
    format!(
        "{BEGIN}: written by `trellis login`; changes between these markers are overwritten\n\
         Host {JUMP_ALIAS}\n    HostName {}\n    Port {}\n    User {}\n{}{END}\n",
        jump.host,
        jump.port,
        jump.user,
        identity_lines(files, trust_ca)
    )
}

/// `existing` with its managed block replaced by `block`, or `block` appended when it has
/// none. Every line outside the markers is kept as it was.
pub fn with_block(existing: &str, block: &str, path: &Path) -> Result<String, CliError> {
    let lines: Vec<&str> = existing.split_inclusive('\n').collect();
    let begin = lines.iter().position(|l| l.trim_end().starts_with(BEGIN));
    let end = lines.iter().position(|l| l.trim_end() == END);
    let unbalanced = || CliError::ManagedBlock { path: path.to_owned() };
    match (begin, end) {
        (Some(b), Some(e)) if b < e => {
            let mut out: String = lines[..b].concat();
            out.push_str(block);
            out.push_str(&lines[e + 1..].concat());
            Ok(out)
        }
        (None, None) => {
            let mut out = existing.to_owned();
            if !out.is_empty() {
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push('\n');
            }
            out.push_str(block);
            Ok(out)
        }
        _ => Err(unbalanced()),
    }
}

/// Writes `contents` to `path` with `mode` by writing a temporary file and renaming it, so a
/// reader never sees half a key. A symbolic link (dotfile managers make them) is followed and
/// its target replaced, not the link.
pub fn write_atomic(path: &Path, contents: &str, mode: u32) -> Result<(), CliError> {
    let write_err = |source| CliError::WriteFile { path: path.to_owned(), source };
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(write_err)?,
        _ => path.to_owned(),
    };
    let dir = target.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from("."));
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask may have narrowed the mode; an inherited default ACL may have widened it.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(write_err)
}

fn with_newline(text: &str) -> String {
    format!("{}\n", text.trim_end())
}

/// What [`install`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Whether the `mergejump` block of `config` was written (a jump host was known).
    pub jump_block: bool,
    /// Whether the host CA was installed.
    pub host_ca: bool,
}

/// Installs the key pair, certificate, known hosts, client configuration and (with a jump
/// host) the `mergejump` block.
pub fn install(files: &SshFiles, creds: &Credentials, jump: Option<&Jump>) -> Result<Installed, CliError> {
    if creds.private_key.trim().is_empty() || creds.certificate.trim().is_empty() {
        return Err(CliError::EmptyCredentials);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&files.dir)
        .map_err(|source| CliError::WriteFile { path: files.dir.clone(), source })?;
    write_atomic(&files.key(), &with_newline(&creds.private_key), 0o600)?;
    write_atomic(&files.public_key(), &with_newline(&creds.public_key), 0o644)?;
    write_atomic(&files.certificate(), &with_newline(&creds.certificate), 0o644)?;
    let trust_ca = !creds.host_ca.trim().is_empty();
    if trust_ca {
        let line = format!("@cert-authority * {}\n", creds.host_ca.trim());
        write_atomic(&files.known_hosts(), &line, 0o644)?;
    }
    write_atomic(&files.client_config(), &client_config(files, trust_ca), 0o644)?;
    if let Some(jump) = jump {
        let path = files.user_config();
        let (existing, mode) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o600);
                (text, mode)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), 0o600),
            Err(source) => return Err(CliError::ReadFile { path, source }),
        };
        let updated = with_block(&existing, &managed_block(files, jump, trust_ca), &path)?;
        if updated != existing {
            write_atomic(&path, &updated, mode)?;
        }
    }
    Ok(Installed { jump_block: jump.is_some(), host_ca: trust_ca })
}

/// Where `trellis xdc ssh|scp` go: through `jump` to the XDC, and on to a node if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The portal's jump host.
    pub jump: Jump,
    /// The XDC's SSH name, `<xdc>-<project>`.
    pub xdc: String,
    /// A node of the attached materialization, reached from the XDC.
    pub node: Option<String>,
}

impl Route {
    /// The options every command line starts with: the config, the jump chain, and for a node
    /// no host-key memory.
    fn options(&self, files: &SshFiles) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["-F".into(), files.client_config().into_os_string()];
        match &self.node {
            None => args.extend(["-J".into(), self.jump.to_string().into()]),
            Some(_) => {
                args.extend(["-J".into(), format!("{},{}@{}", self.jump, self.jump.user, self.xdc).into()]);
                // Experiment nodes are rebuilt under the same names with new host keys, and
                // carry no certificate from the portal: remembering their keys would only
                // produce "host key changed" failures. These options reach the node hop alone.
                for option in ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"] {
                    args.extend(["-o".into(), option.into()]);
                }
            }
        }
        args
    }

    /// `user@host` of the final destination.
    fn destination(&self) -> String {
        format!("{}@{}", self.jump.user, self.node.as_deref().unwrap_or(&self.xdc))
    }

    /// The `ssh` command line (without `ssh` itself).
    pub fn ssh_args(&self, files: &SshFiles, forwards: &[String], command: &[String]) -> Vec<OsString> {
        let mut args = self.options(files);
        for forward in forwards {
            args.extend(["-L".into(), forward.into()]);
        }
        args.push(self.destination().into());
        args.extend(command.iter().map(OsString::from));
        args
    }

    /// The `scp` command line (without `scp`): `sources` to `destination`, one side remote.
    pub fn scp_args(
        &self,
        files: &SshFiles,
        upload: bool,
        recursive: bool,
        sources: &[String],
        destination: &str,
    ) -> Vec<OsString> {
        let mut args = self.options(files);
        if recursive {
            args.push("-r".into());
        }
        let remote = |path: &str| format!("{}:{path}", self.destination());
        if upload {
            args.extend(sources.iter().map(|s| local_path(s).into()));
            args.push(remote(destination).into());
        } else {
            args.extend(sources.iter().map(|s| remote(s).into()));
            args.push(local_path(destination).into());
        }
        args
    }
}

/// A local path scp will not mistake for `host:path`.
fn local_path(path: &str) -> String {
    match path.find(':') {
        Some(colon) if !path[..colon].contains('/') => format!("./{path}"),
        _ => path.to_owned(),
    }
}

/// `argv` as a POSIX shell would need it typed.
pub fn shell_line(argv: &[OsString]) -> String {
    argv.iter()
        .map(|arg| {
            let arg = arg.to_string_lossy();
            let plain =
                !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
            if plain { arg.into_owned() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
