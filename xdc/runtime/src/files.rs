//! The files an XDC's accounts, SSH trust and services are made of, rendered from its spec.
//!
//! Both runtimes use the same text: the local runtime writes it into the container's root
//! (atomically, so a running sshd picks up accounts and keys on the next login), the Kubernetes
//! runtime puts it into a ConfigMap. Only paths differ, given by a [`Layout`].
//! Values come from a spec that passed [`XdcSpec::validate`], so they hold no line breaks and
//! the shell script needs no further quoting than the single quotes it uses.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::{XdcSpec, XdcUser};

/// Where the managed files sit inside the XDC.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// `AuthorizedKeysFile`: one file per user (`%u` is the name), kept outside homes, which
    /// are volumes the runtime must not write.
    pub authorized_keys: &'static str,
    pub trusted_user_ca_keys: &'static str,
    pub host_key: &'static str,
    pub host_certificate: &'static str,
    pub sshd_config: &'static str,
    /// Files the init script links into `/etc` from where the runtime put them (Kubernetes
    /// mounts a ConfigMap as a directory: only a directory mount sees updates).
    pub etc_links: &'static [(&'static str, &'static str)],
    /// Whether the Jupyter token is in the init script (local) or in the environment
    /// (Kubernetes, from a Secret).
    pub token_in_script: bool,
}

pub(crate) const LOCAL: Layout = Layout {
    authorized_keys: "/etc/ssh/authorized_keys/%u",
    trusted_user_ca_keys: "/etc/ssh/trusted_user_ca_keys",
    host_key: "/etc/ssh/ssh_host_key",
    host_certificate: "/etc/ssh/ssh_host_key-cert.pub",
    sshd_config: "/etc/ssh/sshd_config",
    etc_links: &[],
    token_in_script: true,
};

pub(crate) const KUBERNETES: Layout = Layout {
    authorized_keys: "/etc/trellis/authorized_keys.%u",
    trusted_user_ca_keys: "/etc/trellis/trusted_user_ca_keys",
    host_key: "/etc/trellis-secret/ssh_host_key",
    host_certificate: "/etc/trellis-secret/ssh_host_key-cert.pub",
    sshd_config: "/etc/trellis/sshd_config",
    etc_links: &[
        ("/etc/trellis/passwd", "/etc/passwd"),
        ("/etc/trellis/group", "/etc/group"),
        ("/etc/trellis/shadow", "/etc/shadow"),
        ("/etc/trellis/nsswitch.conf", "/etc/nsswitch.conf"),
    ],
    token_in_script: false,
};

/// The SSH client configuration inside the XDC: users' portal identities (their own
/// `~/.ssh` keys first), and no host-key pinning, because experiment nodes get new host keys
/// every time they are materialized under the same names.
pub(crate) const SSH_CLIENT_CONFIG: &str = "# Written by the Trellis XDC runtime; rewritten on every apply.\n\
Host *\n\
  IdentityFile ~/.ssh/id_ed25519\n\
  IdentityFile ~/.ssh/id_rsa\n\
  IdentityFile /etc/ssh/identities/%u/id_ed25519\n\
  CertificateFile /etc/ssh/identities/%u/id_ed25519-cert.pub\n\
  StrictHostKeyChecking no\n\
  UserKnownHostsFile /dev/null\n\
  LogLevel ERROR\n\
  SendEnv LANG LC_*\n";

pub(crate) const NSSWITCH: &str =
    "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n";

const HEADER: &str = "# Written by the Trellis XDC runtime; rewritten on every apply.\n";

pub(crate) fn passwd(spec: &XdcSpec, shell: &str) -> String {
    let mut text = String::from(
        "root:x:0:0:root:/root:/bin/sh\n\
         sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    );
    for user in &spec.users {
        let _ = writeln!(text, "{0}:x:{1}:{2}::/home/{0}:{shell}", user.name, user.uid, user.gid);
    }
    text
}

/// System groups, each user's personal group (unless the spec restates it) and the spec's
/// groups with their members.
pub(crate) fn group(spec: &XdcSpec) -> String {
    let mut text = String::from("root:x:0:\ntty:x:5:\nshadow:x:42:\nnogroup:x:65534:\n");
    for user in &spec.users {
        if !spec.groups.iter().any(|g| g.gid == user.gid) {
            let _ = writeln!(text, "{}:x:{}:", user.name, user.gid);
        }
    }
    for g in &spec.groups {
        let _ = writeln!(text, "{}:x:{}:{}", g.name, g.gid, g.members.join(","));
    }
    text
}

/// `*` (no password) rather than `!` (locked): without PAM, sshd refuses locked accounts
/// even for keys.
pub(crate) fn shadow(spec: &XdcSpec) -> String {
    let mut text =
        String::from("root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n");
    for user in &spec.users {
        let _ = writeln!(text, "{}:*:19000:0:99999:7:::", user.name);
    }
    text
}

pub(crate) fn hosts(spec: &XdcSpec, address: Option<IpAddr>) -> String {
    let mut text = String::from(HEADER);
    text.push_str("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(address) = address {
        let _ = writeln!(text, "{address}\t{}", spec.id);
    }
    for (name, address) in &spec.hosts {
        let _ = writeln!(text, "{address}\t{name}");
    }
    text
}

pub(crate) fn resolv_conf(spec: &XdcSpec) -> String {
    let mut text = String::from(HEADER);
    if !spec.search.is_empty() {
        let _ = writeln!(text, "search {}", spec.search.join(" "));
    }
    text
}

pub(crate) fn sshd_config(spec: &XdcSpec, layout: &Layout) -> String {
    let mut text = String::from(HEADER);
    let _ = writeln!(text, "Port 22\nHostKey {}", layout.host_key);
    if !spec.host_certificate.is_empty() {
        let _ = writeln!(text, "HostCertificate {}", layout.host_certificate);
    }
    if !spec.user_ca_public_key.is_empty() {
        let _ = writeln!(text, "TrustedUserCAKeys {}", layout.trusted_user_ca_keys);
    }
    let _ = writeln!(text, "AuthorizedKeysFile {}", layout.authorized_keys);
    text.push_str(
        "PubkeyAuthentication yes\n\
         UsePAM no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin no\n\
         PidFile /run/sshd.pid\n\
         PrintMotd no\n\
         X11Forwarding no\n\
         AcceptEnv LANG LC_*\n\
         Subsystem sftp /usr/lib/openssh/sftp-server\n",
    );
    text
}

pub(crate) fn trusted_user_ca_keys(spec: &XdcSpec) -> String {
    if spec.user_ca_public_key.is_empty() {
        String::new()
    } else {
        format!("{}\n", spec.user_ca_public_key.trim())
    }
}

pub(crate) fn authorized_keys(user: &XdcUser) -> String {
    user.authorized_keys.iter().map(|k| format!("{}\n", k.trim())).collect()
}

/// A PEM key must end with a line break or OpenSSH refuses to load it.
pub(crate) fn host_key(spec: &XdcSpec) -> String {
    format!("{}\n", spec.host_private_key.trim())
}

pub(crate) fn host_certificate(spec: &XdcSpec) -> String {
    if spec.host_certificate.is_empty() {
        String::new()
    } else {
        format!("{}\n", spec.host_certificate.trim())
    }
}

/// The container's init. sshd runs in the foreground of the XDC's life: when it exits, init
/// exits and the runtime reports the XDC failed. SIGHUP makes sshd reload its host key and
/// certificate. Jupyter, if wanted, runs as its user and is restarted if it dies; its token
/// is passed in the environment, never on a command line other users could read in `ps`.
pub(crate) fn init_script(spec: &XdcSpec, layout: &Layout) -> String {
    let mut s = String::from("#!/bin/sh\n");
    s.push_str(HEADER);
    for (from, to) in layout.etc_links {
        let _ = writeln!(s, "ln -sf {from} {to}");
    }
    s.push_str("mkdir -p -m 0755 /run/sshd\n");
    let _ = writeln!(s, "/usr/sbin/sshd -D -e -f {} &", layout.sshd_config);
    s.push_str("sshd=$!\n");
    s.push_str("trap 'kill -HUP $sshd' HUP\n");
    s.push_str("trap 'kill -TERM $sshd; exit 0' TERM INT\n");
    if let Some(jupyter) = &spec.jupyter
        && let Some(user) = spec.users.iter().find(|u| u.name == jupyter.user)
    {
        let run = format!("/run/user/{}", user.uid);
        let _ = writeln!(s, "mkdir -p -m 0700 {run} && chown {}:{} {run}", user.uid, user.gid);
        s.push_str("(\n");
        let _ = writeln!(
            s,
            "  export HOME=/home/{0} USER={0} LOGNAME={0} SHELL=/bin/sh XDG_RUNTIME_DIR={run} \
             JUPYTER_RUNTIME_DIR={run}/jupyter",
            user.name
        );
        if layout.token_in_script {
            let _ = writeln!(s, "  export JUPYTER_TOKEN='{}'", jupyter.token);
        }
        s.push_str("  cd \"$HOME\" || cd /\n");
        s.push_str("  while :; do\n");
        let _ = writeln!(
            s,
            "    setpriv --reuid={} --regid={} --init-groups jupyter-notebook --no-browser --ip=0.0.0.0 \
             --port={} --NotebookApp.base_url='{}' --notebook-dir=/home/{}",
            user.uid, user.gid, jupyter.port, jupyter.base_url, user.name
        );
        s.push_str("    sleep 2\n  done\n) &\n");
    }
    s.push_str("while kill -0 $sshd 2>/dev/null; do wait $sshd; done\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::spec;

    #[test]
    fn accounts_list_users_groups_and_members() {
        let s = spec();
        let passwd = passwd(&s, "/bin/bash");
        assert!(passwd.contains("alice:x:2001:2001::/home/alice:/bin/bash\n"), "{passwd}");
        let group = group(&s);
        assert!(group.contains("alice:x:2001:\n"), "{group}");
        assert!(group.contains("proj:x:3001:alice,bob\n"), "{group}");
        assert!(shadow(&s).contains("bob:*:"));
    }

    #[test]
    fn sshd_trusts_the_ca_and_reads_keys_outside_homes() {
        let s = spec();
        let config = sshd_config(&s, &LOCAL);
        assert!(config.contains("TrustedUserCAKeys /etc/ssh/trusted_user_ca_keys\n"));
        assert!(config.contains("HostCertificate /etc/ssh/ssh_host_key-cert.pub\n"));
        assert!(config.contains("AuthorizedKeysFile /etc/ssh/authorized_keys/%u\n"));
        let mut bare = s.clone();
        bare.host_certificate.clear();
        bare.user_ca_public_key.clear();
        let config = sshd_config(&bare, &LOCAL);
        assert!(!config.contains("HostCertificate") && !config.contains("TrustedUserCAKeys"));
    }

    #[test]
    fn hosts_and_search_domains() {
        let s = spec();
        let hosts = hosts(&s, Some("10.250.0.2".parse().unwrap()));
        assert!(hosts.contains("10.250.0.2\tx0-proj\n"));
        assert!(hosts.contains("10.0.0.7\tn1.infra\n"));
        assert!(resolv_conf(&s).contains("search infra.r.e.proj\n"));
    }

    #[test]
    fn init_runs_jupyter_as_its_user_with_the_token_out_of_argv() {
        let s = spec();
        let local = init_script(&s, &LOCAL);
        assert!(local.contains("setpriv --reuid=2001 --regid=2001 --init-groups jupyter-notebook"));
        assert!(local.contains("--NotebookApp.base_url='/x0-proj/'"));
        assert!(local.contains("export JUPYTER_TOKEN='0123456789abcdef0123'"));
        assert!(!local.contains("--NotebookApp.token"));
        let kube = init_script(&s, &KUBERNETES);
        assert!(!kube.contains("0123456789abcdef0123"));
        assert!(kube.contains("ln -sf /etc/trellis/passwd /etc/passwd"));
        let mut plain = s.clone();
        plain.jupyter = None;
        assert!(!init_script(&plain, &LOCAL).contains("jupyter"));
    }
}
