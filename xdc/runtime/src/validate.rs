//! Checking an [`XdcSpec`] before any runtime acts on it.
//!
//! Every value ends up in a Unix account file, an sshd configuration, a shell script or a
//! Kubernetes object name, so the rules are strict: names from small alphabets, no line breaks
//! anywhere, no collisions with the accounts the XDC itself needs. A spec that passes can be
//! written into those files without quoting problems.

use std::collections::{HashMap, HashSet};

use crate::{RuntimeError, VolumeRef, XdcSpec};

/// Accounts and groups every XDC has; a spec may not reuse their names or ids.
const RESERVED_NAMES: &[&str] = &["root", "sshd", "nobody", "tty", "nogroup", "shadow", "jupyter"];
const RESERVED_UIDS: &[u32] = &[0, 100, 65534];
const RESERVED_GIDS: &[u32] = &[0, 5, 42, 65534];

fn invalid(message: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidSpec(message.into())
}

/// A Unix account or group name: `[a-z_][a-z0-9_-]*`, at most 32 characters.
pub(crate) fn unix_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && name.len() <= 32
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

/// A DNS label: `[a-z0-9]([a-z0-9-]*[a-z0-9])?`, at most 63 characters. Also a valid
/// Kubernetes object name and hostname.
pub(crate) fn dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

/// A host or domain name (dot-separated labels, letters of either case, `_` allowed).
fn host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// One line of printable text without characters a shell or a config file would treat
/// specially at line level.
fn one_line(text: &str) -> bool {
    !text.trim().is_empty() && !text.chars().any(|c| c.is_control())
}

/// Safe to put between single quotes in a shell script and in a URL path.
fn url_path(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_alphanumeric() || "/_.-~".contains(c))
}

impl XdcSpec {
    /// Checks the spec; both runtimes call it first and refuse a spec that fails with
    /// [`RuntimeError::InvalidSpec`].
    pub fn validate(&self) -> Result<(), RuntimeError> {
        if !dns_label(&self.id) {
            return Err(invalid(format!(
                "id {:?} must be a DNS label (lower-case letters, digits and '-', at most 63)",
                self.id
            )));
        }
        let users = self.validate_users()?;
        self.validate_groups(&users)?;
        self.validate_mounts(&users)?;
        self.validate_ssh()?;
        self.validate_jupyter(&users)?;
        if self.cpu_millis != 0 && self.cpu_millis < 10 {
            return Err(invalid("cpu_millis must be 0 (unlimited) or at least 10"));
        }
        if self.memory_bytes != 0 && self.memory_bytes < 32 << 20 {
            return Err(invalid("memory_bytes must be 0 (unlimited) or at least 32 MiB"));
        }
        for (name, _) in &self.hosts {
            if !host_name(name) {
                return Err(invalid(format!("hosts entry {name:?} is not a host name")));
            }
        }
        for domain in &self.search {
            if !host_name(domain) {
                return Err(invalid(format!("search domain {domain:?} is not a domain name")));
            }
        }
        Ok(())
    }

    /// Returns each user's name with its personal gid.
    fn validate_users(&self) -> Result<HashMap<&str, u32>, RuntimeError> {
        let mut names = HashMap::new();
        let mut uids = HashSet::new();
        for user in &self.users {
            if !unix_name(&user.name) || RESERVED_NAMES.contains(&user.name.as_str()) {
                return Err(invalid(format!("user name {:?} is not a usable account name", user.name)));
            }
            if RESERVED_UIDS.contains(&user.uid) || !uids.insert(user.uid) {
                return Err(invalid(format!("uid {} of {} is reserved or used twice", user.uid, user.name)));
            }
            if RESERVED_GIDS.contains(&user.gid) {
                return Err(invalid(format!("gid {} of {} is reserved", user.gid, user.name)));
            }
            if names.insert(user.name.as_str(), user.gid).is_some() {
                return Err(invalid(format!("user {} appears twice", user.name)));
            }
            if let Some(identity) = &user.identity {
                if !identity.private_key.trim().starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
                    return Err(invalid(format!(
                        "the SSH identity of {} is not an OpenSSH private key",
                        user.name
                    )));
                }
                if !one_line(identity.certificate.trim()) {
                    return Err(invalid(format!("the SSH certificate of {} is not one line", user.name)));
                }
            }
            for key in &user.authorized_keys {
                if !one_line(key) {
                    return Err(invalid(format!("an authorized key of {} is not one line", user.name)));
                }
            }
        }
        Ok(names)
    }

    fn validate_groups(&self, users: &HashMap<&str, u32>) -> Result<(), RuntimeError> {
        // A user's personal group is named after the user; a spec group may restate it.
        let mut gids: HashMap<u32, &str> = users.iter().map(|(name, gid)| (*gid, *name)).collect();
        let mut names = HashSet::new();
        for group in &self.groups {
            if !unix_name(&group.name) || RESERVED_NAMES.contains(&group.name.as_str()) {
                return Err(invalid(format!("group name {:?} is not usable", group.name)));
            }
            if !names.insert(group.name.as_str()) {
                return Err(invalid(format!("group {} appears twice", group.name)));
            }
            if RESERVED_GIDS.contains(&group.gid) {
                return Err(invalid(format!("gid {} of group {} is reserved", group.gid, group.name)));
            }
            match gids.insert(group.gid, &group.name) {
                Some(other) if other != group.name => {
                    return Err(invalid(format!("gid {} is both {other} and {}", group.gid, group.name)));
                }
                _ => {}
            }
            if users.get(group.name.as_str()).is_some_and(|gid| *gid != group.gid) {
                return Err(invalid(format!("group {} differs from the user's personal group", group.name)));
            }
            for member in &group.members {
                if !users.contains_key(member.as_str()) {
                    return Err(invalid(format!("group {} lists {member:?}, who is not a user", group.name)));
                }
            }
        }
        Ok(())
    }

    fn validate_mounts(&self, users: &HashMap<&str, u32>) -> Result<(), RuntimeError> {
        let mut targets = HashSet::new();
        for mount in &self.mounts {
            let name = match &mount.volume {
                VolumeRef::Home(user) => {
                    if !users.contains_key(user.as_str()) {
                        return Err(invalid(format!("home volume of {user:?}, who is not a user")));
                    }
                    user
                }
                VolumeRef::Project(project) => project,
            };
            if !unix_name(name) {
                return Err(invalid(format!("volume name {name:?} is not usable")));
            }
            if !targets.insert(mount.volume.target()) {
                return Err(invalid(format!("{} is mounted twice", mount.volume.target())));
            }
            let path = mount.host_path.to_string_lossy();
            if !mount.host_path.is_absolute() || path.contains(',') || path.chars().any(char::is_control) {
                return Err(invalid(format!("host path {path:?} must be absolute (and without ',')")));
            }
        }
        Ok(())
    }

    fn validate_ssh(&self) -> Result<(), RuntimeError> {
        if !self.user_ca_public_key.is_empty() && !one_line(&self.user_ca_public_key) {
            return Err(invalid("user_ca_public_key must be one OpenSSH public key line"));
        }
        let key = self.host_private_key.trim();
        if !key.starts_with("-----BEGIN ") || !key.ends_with("-----") {
            return Err(invalid("host_private_key must be a PEM (OpenSSH) private key"));
        }
        if !self.host_certificate.is_empty() && !one_line(&self.host_certificate) {
            return Err(invalid("host_certificate must be one OpenSSH certificate line"));
        }
        Ok(())
    }

    fn validate_jupyter(&self, users: &HashMap<&str, u32>) -> Result<(), RuntimeError> {
        let Some(jupyter) = &self.jupyter else { return Ok(()) };
        if !users.contains_key(jupyter.user.as_str()) {
            return Err(invalid(format!("Jupyter user {:?} is not a user of the XDC", jupyter.user)));
        }
        if !jupyter.base_url.starts_with('/')
            || !jupyter.base_url.ends_with('/')
            || !url_path(&jupyter.base_url)
        {
            return Err(invalid(format!(
                "Jupyter base_url {:?} must start and end with '/' and hold only URL path characters",
                jupyter.base_url
            )));
        }
        if jupyter.token.len() < 16
            || !jupyter.token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid("the Jupyter token must be at least 16 characters of [A-Za-z0-9_-]"));
        }
        if jupyter.port == 0 || jupyter.port == 22 {
            return Err(invalid(format!("Jupyter cannot listen on port {}", jupyter.port)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::spec;
    use crate::{JupyterSpec, XdcGroup, XdcMount};

    #[test]
    fn a_good_spec_passes() {
        spec().validate().unwrap();
    }

    #[test]
    fn bad_specs_are_refused_with_a_reason() {
        type Change = Box<dyn Fn(&mut XdcSpec)>;
        let cases: Vec<(&str, Change)> = vec![
            ("DNS label", Box::new(|s| s.id = "Bad_Id".into())),
            ("account name", Box::new(|s| s.users[0].name = "root".into())),
            ("uid 0", Box::new(|s| s.users[0].uid = 0)),
            ("used twice", Box::new(|s| s.users[1].uid = s.users[0].uid)),
            ("one line", Box::new(|s| s.users[0].authorized_keys.push("ssh-ed25519 AAA\nevil".into()))),
            (
                "not a user",
                Box::new(|s| {
                    s.groups.push(XdcGroup { name: "g".into(), gid: 4000, members: vec!["eve".into()] })
                }),
            ),
            ("gid 2001 is both", Box::new(|s| s.groups[0].gid = 2001)),
            (
                "mounted twice",
                Box::new(|s| {
                    let again = s.mounts[0].clone();
                    s.mounts.push(again)
                }),
            ),
            (
                "absolute",
                Box::new(|s| {
                    s.mounts
                        .push(XdcMount { volume: VolumeRef::Project("p9".into()), host_path: "rel".into() })
                }),
            ),
            ("PEM", Box::new(|s| s.host_private_key = "nope".into())),
            (
                "base_url",
                Box::new(|s| {
                    s.jupyter = Some(JupyterSpec {
                        user: "alice".into(),
                        base_url: "/x'; rm -rf /".into(),
                        token: "0123456789abcdef".into(),
                        port: 8888,
                    })
                }),
            ),
            ("token", Box::new(|s| s.jupyter.as_mut().unwrap().token = "short".into())),
            ("Jupyter user", Box::new(|s| s.jupyter.as_mut().unwrap().user = "mallory".into())),
            ("cpu_millis", Box::new(|s| s.cpu_millis = 5)),
            ("host name", Box::new(|s| s.hosts.push(("a b".into(), "10.0.0.1".parse().unwrap())))),
            ("domain", Box::new(|s| s.search.push("x\ny".into()))),
        ];
        for (reason, change) in cases {
            let mut s = spec();
            change(&mut s);
            match s.validate() {
                Err(RuntimeError::InvalidSpec(message)) => {
                    assert!(message.contains(reason), "{reason:?} not in {message:?}")
                }
                other => panic!("{reason}: expected InvalidSpec, got {other:?}"),
            }
        }
    }
}
