//! A node's disk: a small root skeleton (the programs come read-only from `/usr`) and the
//! files the agent manages in it (accounts, hosts, sshd configuration, keys).
//!
//! Managed files are rewritten on every materialization, atomically, so a running node sees
//! new users, keys and hosts without a restart; everything else on the disk is the node's.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;

use trellis_crun::skeleton::{self, mkdir};
use trellis_types::Error;

use crate::plan::Plan;

const HOST_KEY: &str = "ssh_host_ed25519_key";

/// Generates the node's SSH host key into its bundle once; it outlives volatile disks, so
/// a rebooted node keeps its identity.
pub(crate) async fn ensure_host_key(bundle: &Path, node: &str) -> Result<(), Error> {
    let key = bundle.join(HOST_KEY);
    if key.exists() {
        return Ok(());
    }
    let tmp = bundle.join(format!("{HOST_KEY}.new"));
    let _ = fs::remove_file(&tmp);
    let _ = fs::remove_file(tmp.with_extension("new.pub"));
    let path = tmp.to_string_lossy().into_owned();
    crate::cmd::run("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-C", node, "-f", &path], None).await?;
    fs::rename(format!("{path}.pub"), bundle.join(format!("{HOST_KEY}.pub"))).map_err(internal)?;
    fs::rename(&tmp, &key).map_err(internal)
}

fn internal(e: io::Error) -> Error {
    Error::Internal(format!("writing a node's files: {e}"))
}

/// Creates an empty disk: the root skeleton, and a base `/etc` (the image's, or the few
/// host files a node on the host's `/usr` needs).
pub(crate) fn create_disk(disk: &Path, image: Option<&Path>) -> io::Result<()> {
    let usr = image.map_or_else(|| Path::new("/usr").to_path_buf(), |i| i.join("usr"));
    skeleton::create(disk, &usr, &[])?;
    match image {
        Some(image) if image.join("etc").is_dir() => {
            skeleton::copy_tree(&image.join("etc"), &disk.join("etc"))
        }
        Some(_) => Ok(()),
        None => skeleton::copy_host_etc(disk),
    }
}

/// Writes `contents` to `path` through a temporary file and a rename, so readers (sshd)
/// never see a partial file or one with the wrong owner.
fn write_owned(path: &Path, contents: &str, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    let tmp = path.with_extension("trellis-new");
    fs::write(&tmp, contents)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        chown(&tmp, Some(uid), Some(gid))?;
    }
    fs::rename(&tmp, path)
}

fn write_atomic(path: &Path, contents: &str, mode: u32) -> io::Result<()> {
    write_owned(path, contents, mode, None)
}

fn sshd_config(has_ca: bool) -> String {
    let mut text = String::from(
        "# Written by the Trellis facility agent; rewritten on every materialization.\n\
         Port 22\n\
         HostKey /etc/ssh/ssh_host_ed25519_key\n\
         UsePAM no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin no\n\
         AuthorizedKeysFile .ssh/authorized_keys\n\
         PidFile /run/sshd.pid\n\
         PrintMotd no\n\
         AcceptEnv LANG LC_*\n\
         Subsystem sftp /usr/lib/openssh/sftp-server\n",
    );
    if has_ca {
        text.push_str("TrustedUserCAKeys /etc/ssh/trusted_user_ca_keys\n");
    }
    text
}

/// The container's init: sshd in the foreground is the node's service; when it exits the
/// container stops and the agent's watchdog notices.
const INIT: &str = "#!/bin/sh\n\
    # Written by the Trellis facility agent.\n\
    mkdir -p -m 0755 /run/sshd\n\
    exec /usr/sbin/sshd -D -e\n";

/// (Re)writes every file the agent manages in node `n`'s disk.
pub(crate) fn write_managed(disk: &Path, bundle: &Path, plan: &Plan, n: usize) -> io::Result<()> {
    let node = &plan.nodes[n];
    let etc = disk.join("etc");
    let shell = if disk.join("usr/bin/bash").exists()
        || node.image.is_none() && Path::new("/usr/bin/bash").exists()
    {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    let mut passwd = String::from(
        "root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    );
    let mut group = String::from("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n");
    let mut shadow =
        String::from("root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n");
    let mut gids = std::collections::HashSet::from([0, 5, 65534]);
    for user in &plan.users {
        passwd.push_str(&format!("{0}:x:{1}:{2}::/home/{0}:{shell}\n", user.name, user.uid, user.gid));
        if gids.insert(user.gid) {
            group.push_str(&format!("{}:x:{}:\n", user.name, user.gid));
        }
        // '*' (no password) rather than '!' (locked): without PAM, sshd refuses locked
        // accounts even for keys.
        shadow.push_str(&format!("{}:*:19000:0:99999:7:::\n", user.name));
    }
    write_atomic(&etc.join("passwd"), &passwd, 0o644)?;
    write_atomic(&etc.join("group"), &group, 0o644)?;
    write_atomic(&etc.join("shadow"), &shadow, 0o640)?;
    write_atomic(&etc.join("hostname"), &format!("{}\n", node.name), 0o644)?;
    write_atomic(&etc.join("hosts"), &plan.hosts[n], 0o644)?;
    write_atomic(&etc.join("resolv.conf"), "# Names of this experiment are in /etc/hosts.\n", 0o644)?;
    write_atomic(
        &etc.join("nsswitch.conf"),
        "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\n",
        0o644,
    )?;
    mkdir(&etc.join("ssh"), 0o755)?;
    let has_ca = !plan.ssh_ca_public_key.is_empty();
    write_atomic(&etc.join("ssh/sshd_config"), &sshd_config(has_ca), 0o644)?;
    let ca = if has_ca { format!("{}\n", plan.ssh_ca_public_key) } else { String::new() };
    write_atomic(&etc.join("ssh/trusted_user_ca_keys"), &ca, 0o644)?;
    let key = fs::read_to_string(bundle.join(HOST_KEY))?;
    write_atomic(&etc.join("ssh").join(HOST_KEY), &key, 0o600)?;
    let public = fs::read_to_string(bundle.join(format!("{HOST_KEY}.pub")))?;
    write_atomic(&etc.join("ssh").join(format!("{HOST_KEY}.pub")), &public, 0o644)?;
    write_atomic(&disk.join("init"), INIT, 0o755)?;
    for user in &plan.users {
        let home = disk.join("home").join(&user.name);
        if !home.exists() {
            mkdir(&home, 0o755)?;
            chown(&home, Some(user.uid), Some(user.gid))?;
        }
        let ssh = home.join(".ssh");
        if !ssh.exists() {
            mkdir(&ssh, 0o700)?;
            chown(&ssh, Some(user.uid), Some(user.gid))?;
        }
        let keys: String = user.authorized_keys.iter().map(|k| format!("{}\n", k.trim())).collect();
        write_owned(&ssh.join("authorized_keys"), &keys, 0o600, Some((user.uid, user.gid)))?;
    }
    Ok(())
}
