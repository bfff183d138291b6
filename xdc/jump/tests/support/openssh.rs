//! Real OpenSSH pieces for the tests and the benchmark: keys and certificates made with
//! `ssh-keygen`, throwaway `sshd`s on loopback with their own configuration, and the `ssh`
//! client driven by a configuration file written here (`-F`, so no user or system
//! configuration leaks in). Nothing outside the scratch directory is touched.
//!
//! Shared by `tests/` and `src/bin/trellis-jump-bench` through `#[path]`, so it uses only the
//! crate's own dependencies.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// A directory removed when dropped.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(prefix: &str) -> io::Result<Scratch> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(Scratch { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// An OpenSSH key pair on disk.
#[derive(Clone, Debug)]
pub struct KeyPair {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl KeyPair {
    /// The public key as `type base64`, without comment.
    pub fn public_line(&self) -> io::Result<String> {
        let text = std::fs::read_to_string(&self.public)?;
        Ok(text.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
    }

    pub fn private_text(&self) -> io::Result<String> {
        std::fs::read_to_string(&self.private)
    }
}

async fn run_tool(cmd: &mut Command, what: &str) -> io::Result<()> {
    let out = cmd.stdin(Stdio::null()).output().await?;
    if !out.status.success() {
        return Err(io::Error::other(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(())
}

/// Generates an unencrypted ed25519 key `dir/name`.
pub async fn keygen(dir: &Path, name: &str) -> io::Result<KeyPair> {
    let private = dir.join(name);
    let arg = private.to_str().ok_or_else(|| io::Error::other("non-UTF-8 path"))?;
    run_tool(
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", arg]),
        "ssh-keygen",
    )
    .await?;
    Ok(KeyPair { public: dir.join(format!("{name}.pub")), private })
}

/// What to put in a certificate.
pub struct CertSpec<'a> {
    pub identity: &'a str,
    pub principals: &'a [&'a str],
    /// `ssh-keygen -V` syntax, e.g. `-5m:+1h` or `20200101:20200102`.
    pub validity: &'a str,
    pub host: bool,
    /// Extra `ssh-keygen -O` options, e.g. `source-address=10.0.0.0/8`.
    pub options: &'a [&'a str],
}

/// Signs `key`'s public half with `ca`; returns the certificate's path, `dir/<name>-cert.pub`.
pub async fn sign(
    dir: &Path,
    ca: &KeyPair,
    key: &KeyPair,
    name: &str,
    spec: &CertSpec<'_>,
) -> io::Result<PathBuf> {
    // ssh-keygen names the certificate after the public key file, so sign a copy.
    let copy = dir.join(format!("{name}.pub"));
    std::fs::copy(&key.public, &copy)?;
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-q").arg("-s").arg(&ca.private).args(["-I", spec.identity, "-V", spec.validity]);
    if !spec.principals.is_empty() {
        cmd.arg("-n").arg(spec.principals.join(","));
    }
    if spec.host {
        cmd.arg("-h");
    }
    for option in spec.options {
        cmd.args(["-O", option]);
    }
    cmd.arg(&copy);
    run_tool(&mut cmd, "ssh-keygen -s").await?;
    Ok(dir.join(format!("{name}-cert.pub")))
}

/// A port free on 127.0.0.1 a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A throwaway OpenSSH server on 127.0.0.1, killed when dropped.
pub struct Sshd {
    child: Child,
    pub addr: SocketAddr,
    pub host_key: KeyPair,
    pub log: PathBuf,
}

impl Sshd {
    /// Starts `sshd` with `authorized_keys` for every user (root included, by key only) and
    /// `extra` appended to its configuration.
    pub async fn start(dir: &Path, name: &str, authorized_keys: &[String], extra: &str) -> io::Result<Sshd> {
        // sshd's privilege separation needs this directory when run as root; it is missing in
        // containers where the ssh service never started.
        if !Path::new("/run/sshd").exists() {
            std::fs::create_dir_all("/run/sshd")?;
        }
        let host_key = keygen(dir, &format!("{name}_host")).await?;
        let keys_file = dir.join(format!("{name}_authorized_keys"));
        std::fs::write(&keys_file, authorized_keys.join("\n") + "\n")?;
        let config = dir.join(format!("{name}_sshd_config"));
        let log = dir.join(format!("{name}_sshd.log"));
        let mut last_error = None;
        // The free port may be taken between probing and binding; try a few.
        for _ in 0..5 {
            let port = free_port()?;
            let mut text = String::new();
            let _ = write!(
                text,
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\n\
                 AuthorizedKeysFile {}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\n\
                 Subsystem sftp internal-sftp\nMaxStartups 200\nLogLevel ERROR\n{extra}\n",
                host_key.private.display(),
                keys_file.display(),
            );
            std::fs::write(&config, text)?;
            let mut child = Command::new("/usr/sbin/sshd")
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .kill_on_drop(true)
                .spawn()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match wait_for_banner(addr, &mut child).await {
                Ok(()) => return Ok(Sshd { child, addr, host_key, log }),
                Err(e) => {
                    let _ = child.kill().await;
                    last_error = Some(io::Error::other(format!(
                        "sshd on {addr} did not start: {e}; log: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    )));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("sshd did not start")))
    }
}

impl Sshd {
    /// The listening daemon's process ID.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn wait_for_banner(addr: SocketAddr, child: &mut Child) -> io::Result<()> {
    for _ in 0..500 {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!("exited with {status}")));
        }
        if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
            let mut banner = [0u8; 8];
            if stream.read_exact(&mut banner).await.is_ok() && &banner == b"SSH-2.0-" {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(io::Error::other("no SSH banner after 10 s"))
}

/// One `Host` block of a client configuration.
#[derive(Clone, Debug, Default)]
pub struct Hop {
    pub alias: String,
    pub host_name: Option<String>,
    pub port: Option<u16>,
    pub user: String,
    pub identity: Option<PathBuf>,
    pub certificate: Option<PathBuf>,
    pub host_key_alias: Option<String>,
    pub proxy_jump: Option<String>,
    /// Further `Key value` lines.
    pub extra: Vec<String>,
}

/// Writes an `ssh -F` configuration: every hop pins host keys through `known_hosts` and never
/// prompts.
pub fn write_client_config(path: &Path, known_hosts: &Path, hops: &[Hop]) -> io::Result<()> {
    let mut text = String::new();
    for hop in hops {
        let _ = writeln!(text, "Host {}", hop.alias);
        if let Some(host_name) = &hop.host_name {
            let _ = writeln!(text, "  HostName {host_name}");
        }
        if let Some(port) = hop.port {
            let _ = writeln!(text, "  Port {port}");
        }
        let _ = writeln!(text, "  User {}", hop.user);
        if let Some(identity) = &hop.identity {
            let _ = writeln!(text, "  IdentityFile {}", identity.display());
        }
        if let Some(certificate) = &hop.certificate {
            let _ = writeln!(text, "  CertificateFile {}", certificate.display());
        }
        if let Some(alias) = &hop.host_key_alias {
            let _ = writeln!(text, "  HostKeyAlias {alias}");
        }
        if let Some(jump) = &hop.proxy_jump {
            let _ = writeln!(text, "  ProxyJump {jump}");
        }
        for line in &hop.extra {
            let _ = writeln!(text, "  {line}");
        }
        let _ = writeln!(
            text,
            "  IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
             StrictHostKeyChecking yes\n  UpdateHostKeys no\n  BatchMode yes\n  ControlMaster no\n  ControlPath none\n  \
             ConnectTimeout 20",
            known_hosts.display()
        );
    }
    std::fs::write(path, text)
}

/// What a finished `ssh` (or `scp`) run printed.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
}

/// Runs `program` (`ssh` or `scp`) with `-F config` and `args`, stdin closed. A run still going
/// after `limit` is killed and reported as an error: a hang is a failure, never a wait.
pub async fn run(program: &str, config: &Path, args: &[&str], limit: Duration) -> io::Result<Run> {
    let child = Command::new(program)
        .arg("-F")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => {
            let out = out?;
            Ok(Run {
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
        Err(_) => Err(io::Error::other(format!("{program} {args:?} still running after {limit:?}"))),
    }
}

/// Starts `ssh -F config args` in the background (for connections a test holds open).
pub fn spawn_ssh(config: &Path, args: &[&str]) -> io::Result<Child> {
    Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
}
