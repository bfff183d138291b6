//! Shared pieces of the local runtime tests: a throwaway SSH CA and keys made with
//! ssh-keygen, the real OpenSSH client, specs, and a guard that removes everything a test
//! created by name, even when the test fails.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use trellis_xdc_runtime::local::{LocalConfig, LocalRuntime};
use trellis_xdc_runtime::{VolumeRef, XdcMount, XdcPhase, XdcRuntime, XdcSpec, XdcUser, probe};

/// Whether the test can run: as root. In CI (CI=true) not being root fails the test.
pub fn can_run() -> bool {
    let root =
        Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        assert!(std::env::var("CI").is_err(), "the local runtime tests need root in CI");
        eprintln!("SKIPPED: the local runtime tests need root (crun, network namespaces)");
    }
    root
}

pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throwaway user CA, host CA and keys in a temporary directory.
pub struct Keys {
    pub dir: tempfile::TempDir,
}

impl Keys {
    pub fn new() -> Keys {
        let keys = Keys { dir: tempfile::tempdir().unwrap() };
        keys.key("user_ca");
        keys.key("host_ca");
        keys.key("host_key");
        keys
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes (once) an ed25519 key pair; returns its public key line.
    pub fn key(&self, name: &str) -> String {
        let path = self.path(name);
        if !path.exists() {
            sh("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path.to_str().unwrap()]);
        }
        std::fs::read_to_string(path.with_extension("pub")).unwrap().trim().to_owned()
    }

    /// Signs key `name` with CA `ca` (a user certificate for `principal`, or a host certificate
    /// when `host`); returns the certificate line.
    pub fn sign(&self, ca: &str, name: &str, principal: &str, host: bool) -> String {
        self.key(ca);
        self.key(name);
        let ca_path = self.path(ca);
        let public = self.path(&format!("{name}.pub"));
        let mut args =
            vec!["-q", "-s", ca_path.to_str().unwrap(), "-I", principal, "-n", principal, "-V", "-5m:+1h"];
        if host {
            args.push("-h");
        }
        args.push(public.to_str().unwrap());
        sh("ssh-keygen", &args);
        std::fs::read_to_string(self.path(&format!("{name}-cert.pub"))).unwrap().trim().to_owned()
    }

    /// A known_hosts file trusting host certificates from `host_ca` for `alias`.
    pub fn known_hosts(&self, host_ca: &str, alias: &str) -> PathBuf {
        let path = self.path(&format!("known_hosts_{host_ca}"));
        std::fs::write(&path, format!("@cert-authority {alias} {}\n", self.key(host_ca))).unwrap();
        path
    }

    pub fn private(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }
}

/// Runs `command` as `user` over the real OpenSSH client with key `key` (and its certificate
/// if there is one), checking the host's certificate against `known_hosts` under `alias`.
pub fn ssh(
    keys: &Keys,
    key: &str,
    known_hosts: &Path,
    alias: &str,
    user: &str,
    addr: IpAddr,
    command: &str,
) -> Output {
    let key_path = keys.path(key);
    Command::new("ssh")
        .args(["-F", "/dev/null", "-i", key_path.to_str().unwrap()])
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            &format!("UserKnownHostsFile={}", known_hosts.display()),
        ])
        .args(["-o", &format!("HostKeyAlias={alias}"), "-o", "LogLevel=ERROR"])
        .arg(format!("{user}@{addr}"))
        .arg(command)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("ssh")
}

pub fn ssh_ok(
    keys: &Keys,
    key: &str,
    known_hosts: &Path,
    alias: &str,
    user: &str,
    addr: IpAddr,
    command: &str,
) -> String {
    let out = ssh(keys, key, known_hosts, alias, user, addr, command);
    assert!(
        out.status.success(),
        "ssh {user}@{addr} {command:?} with {key} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A host directory owned by `uid:gid` for a volume.
pub fn volume_dir(root: &Path, name: &str, uid: u32, gid: u32, mode: u32) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    chown(&dir, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

pub fn user(name: &str, id: u32, keys: Vec<String>) -> XdcUser {
    XdcUser { name: name.into(), uid: id, gid: id, authorized_keys: keys, identity: None }
}

pub fn mount(volume: VolumeRef, host_path: &Path) -> XdcMount {
    XdcMount { volume, host_path: host_path.to_owned() }
}

/// A spec with the throwaway CAs and host identity and no users yet.
pub fn base_spec(id: &str, keys: &Keys) -> XdcSpec {
    XdcSpec {
        id: id.into(),
        users: Vec::new(),
        groups: Vec::new(),
        mounts: Vec::new(),
        user_ca_public_key: keys.key("user_ca"),
        host_private_key: keys.private("host_key"),
        host_certificate: keys.sign("host_ca", "host_key", id, true),
        jupyter: None,
        cpu_millis: 0,
        memory_bytes: 0,
        hosts: Vec::new(),
        search: Vec::new(),
    }
}

/// A unique id per test and process.
pub fn unique_id(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// Test network settings: subnet `10.251.<n>.0/24` on a bridge of the test's own.
pub fn config(state_dir: &Path, n: u8) -> LocalConfig {
    let mut config = LocalConfig::new(state_dir);
    config.subnet = format!("10.251.{n}.0/24").parse().unwrap();
    config.bridge = format!("trxt{n}-{}", std::process::id() % 100_000);
    config
}

/// The container's init pid, from crun.
pub fn init_pid(id: &str) -> Option<i64> {
    let out = Command::new("crun").args(["state", &LocalRuntime::container_name(id)]).output().ok()?;
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    (state["status"] == "running").then(|| state["pid"].as_i64()).flatten()
}

/// What of XDC `id` is still on the host.
pub fn residue(id: &str, state_dir: &Path) -> Vec<String> {
    let name = LocalRuntime::container_name(id);
    let veth = name.replace("trx-", "trx");
    let mut left = Vec::new();
    for (what, path) in [
        ("netns", format!("/run/netns/{name}")),
        ("link", format!("/sys/class/net/{veth}")),
        ("crun", format!("/run/crun/{name}")),
        ("state", state_dir.join(&name).to_string_lossy().into_owned()),
    ] {
        if Path::new(&path).exists() {
            left.push(format!("{what} {path}"));
        }
    }
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().filter_map(Result::ok) {
        if hierarchy.path().join(&name).exists() {
            left.push(format!("cgroup {}", hierarchy.path().join(&name).display()));
        }
    }
    left
}

/// Waits until sshd on `addr` sends its banner; returns how long that took from `since`.
pub async fn wait_ssh(addr: IpAddr, since: Instant) -> Duration {
    probe::retry(Duration::from_secs(60), Duration::from_millis(5), || {
        probe::ssh_banner(SocketAddr::new(addr, 22))
    })
    .await
    .unwrap_or_else(|e| panic!("sshd on {addr} never answered: {e}"));
    since.elapsed()
}

/// Waits until the runtime reports `phase` for `id`.
pub async fn wait_phase(runtime: &LocalRuntime, id: &str, phase: XdcPhase) {
    let start = Instant::now();
    loop {
        let status = runtime.status(id).await.unwrap();
        if status.as_ref().map(|s| s.phase) == Some(phase) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{id} never reached {phase:?}: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Removes whatever the test's XDCs and bridge left on the host, by name, when dropped.
pub struct Cleanup {
    pub ids: Vec<String>,
    pub bridge: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in &self.ids {
            let name = LocalRuntime::container_name(id);
            let _ = Command::new("crun").args(["delete", "--force", &name]).output();
            let _ = Command::new("ip").args(["link", "del", "dev", &name.replace("trx-", "trx")]).output();
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
        let _ = Command::new("ip").args(["link", "del", "dev", &self.bridge]).output();
    }
}
