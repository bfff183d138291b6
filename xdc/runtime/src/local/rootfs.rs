//! The XDC's root: a small skeleton (programs come read-only from the host's `/usr`) and the
//! files the runtime manages in it.
//!
//! Managed files are rewritten on every apply through a temporary file and a rename, so a
//! running sshd sees new accounts, keys and hosts at the next login and never a partial
//! file. Homes and projects are volumes mounted over empty directories here; the runtime
//! never writes into them (authorized keys live in `/etc/ssh/authorized_keys/<user>`).

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;

use trellis_crun::skeleton::{self, mkdir};

use crate::files::{self, LOCAL};
use crate::{RuntimeError, VolumeRef, XdcSpec};

fn failed(what: &str, path: &Path, e: io::Error) -> RuntimeError {
    RuntimeError::Failed(format!("{what} {}: {e}", path.display()))
}

/// Creates the skeleton once: directories, the merged-/usr links and the host's base `/etc`
/// files. A marker file says it is complete, so a crash halfway is redone.
pub(crate) fn ensure_skeleton(root: &Path) -> Result<(), RuntimeError> {
    let marker = root.join(".trellis-skeleton");
    if marker.exists() {
        return Ok(());
    }
    let create = || -> io::Result<()> {
        skeleton::create(root, Path::new("/usr"), &["etc/ssh/authorized_keys", "project"])?;
        skeleton::copy_host_etc(root)?;
        fs::write(&marker, "")
    };
    create().map_err(|e| failed("creating the XDC root", root, e))
}

/// Writes `contents` through a temporary file and a rename; returns whether the file
/// changed.
fn write_atomic(path: &Path, contents: &str, mode: u32, group: Option<u32>) -> io::Result<bool> {
    if fs::read(path).is_ok_and(|old| old == contents.as_bytes())
        && fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o7777 == mode)
    {
        return Ok(false);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.trellis-new"));
    fs::write(&tmp, contents)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    if group.is_some() {
        chown(&tmp, Some(0), group)?;
    }
    fs::rename(&tmp, path)?;
    Ok(true)
}

/// (Re)writes every managed file. Returns whether sshd must reload (its configuration, host
/// key or certificate changed); accounts, authorized keys and the CA are read per login.
pub(crate) fn write_managed(
    root: &Path,
    spec: &XdcSpec,
    address: std::net::IpAddr,
) -> Result<bool, RuntimeError> {
    let etc = root.join("etc");
    let write = || -> io::Result<bool> {
        let shell = if Path::new("/usr/bin/bash").exists() { "/bin/bash" } else { "/bin/sh" };
        write_atomic(&etc.join("passwd"), &files::passwd(spec, shell), 0o644, None)?;
        write_atomic(&etc.join("group"), &files::group(spec), 0o644, None)?;
        write_atomic(&etc.join("shadow"), &files::shadow(spec), 0o640, Some(42))?;
        write_atomic(&etc.join("hostname"), &format!("{}\n", spec.id), 0o644, None)?;
        write_atomic(&etc.join("hosts"), &files::hosts(spec, Some(address)), 0o644, None)?;
        write_atomic(&etc.join("resolv.conf"), &files::resolv_conf(spec), 0o644, None)?;
        write_atomic(&etc.join("nsswitch.conf"), files::NSSWITCH, 0o644, None)?;
        let ssh = etc.join("ssh");
        let mut reload =
            write_atomic(&ssh.join("sshd_config"), &files::sshd_config(spec, &LOCAL), 0o644, None)?;
        write_atomic(&ssh.join("trusted_user_ca_keys"), &files::trusted_user_ca_keys(spec), 0o644, None)?;
        reload |= write_atomic(&ssh.join("ssh_host_key"), &files::host_key(spec), 0o600, None)?;
        reload |=
            write_atomic(&ssh.join("ssh_host_key-cert.pub"), &files::host_certificate(spec), 0o644, None)?;
        let keys = ssh.join("authorized_keys");
        mkdir(&keys, 0o755)?;
        for user in &spec.users {
            // Root-owned and world-readable: sshd's StrictModes accepts it, users cannot edit it.
            write_atomic(&keys.join(&user.name), &files::authorized_keys(user), 0o644, None)?;
        }
        for entry in fs::read_dir(&keys)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !spec.users.iter().any(|u| u.name == name) {
                fs::remove_file(keys.join(&name))?;
            }
        }
        write_atomic(&ssh.join("ssh_config"), files::SSH_CLIENT_CONFIG, 0o644, None)?;
        let identities = ssh.join("identities");
        mkdir(&identities, 0o755)?;
        for user in &spec.users {
            let dir = identities.join(&user.name);
            match &user.identity {
                Some(identity) => {
                    mkdir(&dir, 0o700)?;
                    chown(&dir, Some(user.uid), Some(user.gid))?;
                    let key = dir.join("id_ed25519");
                    write_atomic(&key, &format!("{}\n", identity.private_key.trim()), 0o600, None)?;
                    chown(&key, Some(user.uid), Some(user.gid))?;
                    let cert = dir.join("id_ed25519-cert.pub");
                    write_atomic(&cert, &format!("{}\n", identity.certificate.trim()), 0o644, None)?;
                }
                None if dir.exists() => fs::remove_dir_all(&dir)?,
                None => {}
            }
        }
        for entry in fs::read_dir(&identities)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !spec.users.iter().any(|u| u.name == name) {
                fs::remove_dir_all(identities.join(&name))?;
            }
        }
        for user in &spec.users {
            let home = root.join("home").join(&user.name);
            let volume = spec.mounts.iter().any(|m| m.volume == VolumeRef::Home(user.name.clone()));
            if !home.exists() {
                // Without a volume the home lives in the XDC's root and goes with it.
                mkdir(&home, 0o755)?;
                if !volume {
                    chown(&home, Some(user.uid), Some(user.gid))?;
                }
            }
        }
        for mount in &spec.mounts {
            let target = root.join(mount.volume.target().trim_start_matches('/'));
            if !target.exists() {
                mkdir(&target, 0o755)?;
            }
        }
        write_atomic(&root.join("init"), &files::init_script(spec, &LOCAL), 0o700, None)?;
        Ok(reload)
    };
    write().map_err(|e| failed("writing the managed files of", root, e))
}

/// Mount points at or below `dir` in this process's mount namespace.
fn mounts_below(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        // mountinfo escapes space, tab, newline and backslash as octal.
        .map(|p| p.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\"))
        .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
        .collect()
}

/// Deletes an XDC's state directory, refusing if anything is mounted below it: a volume
/// mounted there must never be emptied by a recursive delete. The container's own bind
/// mounts live in its mount namespace, gone with it, and are never visible here.
pub(crate) fn remove_dir(dir: &Path) -> Result<(), RuntimeError> {
    if !dir.exists() {
        return Ok(());
    }
    let mounted = mounts_below(dir);
    if !mounted.is_empty() {
        return Err(RuntimeError::Failed(format!(
            "not deleting {}: {} is mounted below it",
            dir.display(),
            mounted.join(", ")
        )));
    }
    fs::remove_dir_all(dir).map_err(|e| failed("deleting", dir, e))
}
