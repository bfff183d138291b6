//! The certificates work with real OpenSSH: a throwaway `sshd` that trusts only the CA's public
//! key lets a certified key in and refuses certificates that are expired, signed by another CA
//! or issued to another principal; a client that trusts the host CA accepts the daemon's host
//! certificate and refuses a host it cannot vouch for.
//!
//! The login user is whoever runs the tests (root in CI), added to the certificate as an extra
//! principal, so no system account is created.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use trellis_credentials::{SshCa, SshCaConfig};
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;

const SSHD: &str = "/usr/sbin/sshd";
const START_TIMEOUT: Duration = Duration::from_secs(15);
const START_ATTEMPTS: usize = 3;

/// A running `sshd` on a free loopback port, killed (by the PID it started) when dropped.
struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Sshd {
    /// Starts sshd trusting `user_ca_pub` for user certificates, presenting `host_key` (and its
    /// certificate, if given), letting only `login_user` in.
    fn start(
        dir: &Path,
        user_ca_pub: &str,
        host_key: &Path,
        host_cert: Option<&Path>,
        login_user: &str,
    ) -> Sshd {
        let ca_file = dir.join("trusted-user-ca.pub");
        fs::write(&ca_file, format!("{user_ca_pub}\n")).unwrap();
        if login_user == "root" {
            // Privilege separation needs this directory when sshd runs as root.
            fs::create_dir_all("/run/sshd").unwrap();
        }
        let mut last_log = String::new();
        for attempt in 0..START_ATTEMPTS {
            let port = free_port();
            let mut config = format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {}\n\
                 PidFile {}\n\
                 TrustedUserCAKeys {}\n\
                 AuthorizedKeysFile none\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 PermitRootLogin prohibit-password\n\
                 AllowUsers {login_user}\n\
                 LogLevel VERBOSE\n",
                host_key.display(),
                dir.join("sshd.pid").display(),
                ca_file.display(),
            );
            if let Some(cert) = host_cert {
                config.push_str(&format!("HostCertificate {}\n", cert.display()));
            }
            let config_file = dir.join("sshd_config");
            fs::write(&config_file, config).unwrap();
            let log = dir.join(format!("sshd-{attempt}.log"));
            let child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config_file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut sshd = Sshd { child, port, log };
            if sshd.wait_ready() {
                return sshd;
            }
            last_log = sshd.log();
            // Dropping `sshd` kills it; another process may have taken the port: try another.
        }
        panic!("sshd did not start:\n{last_log}");
    }

    /// Waits until sshd greets with its SSH banner, or gives up when it exits or times out.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut banner = [0u8; 8];
                if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0-" {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn login_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Writes `contents` to `dir/name` readable only by the owner (ssh refuses looser key files).
fn write_private(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// How the client checks the server's host key.
enum HostCheck<'a> {
    /// Accept any host key (user-certificate tests).
    Any,
    /// Accept only host certificates from the CA in this `known_hosts` file.
    CertAuthority(&'a Path),
}

/// Runs `ssh ... echo trellis-ssh-ok` against `sshd` as `user` with `key` and `cert`.
fn ssh(sshd: &Sshd, user: &str, key: &Path, cert: Option<&Path>, host_check: HostCheck<'_>) -> Output {
    let mut command = Command::new("ssh");
    command.args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]);
    command.args(["-o", "IdentityAgent=none", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]);
    command.arg("-i").arg(key);
    if let Some(cert) = cert {
        command.arg("-o").arg(format!("CertificateFile={}", cert.display()));
    }
    match host_check {
        HostCheck::Any => {
            command.args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]);
        }
        HostCheck::CertAuthority(known_hosts) => {
            command.args(["-o", "StrictHostKeyChecking=yes"]);
            command.arg("-o").arg(format!("UserKnownHostsFile={}", known_hosts.display()));
            command.args(["-o", "HostKeyAlgorithms=ssh-ed25519-cert-v01@openssh.com"]);
        }
    }
    command.arg("-p").arg(sshd.port.to_string()).arg(format!("{user}@127.0.0.1"));
    command.arg("echo trellis-ssh-ok");
    command.stdin(Stdio::null()).output().unwrap()
}

fn assert_logged_in(out: &Output, sshd: &Sshd) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "trellis-ssh-ok",
        "login failed: {}\nstdout: {stdout}\nstderr: {}\nsshd log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
}

/// Asserts that the login was refused and that sshd logged, during this attempt, a line
/// containing every one of `sshd_says` (so the refusal has the expected reason).
fn assert_refused(out: &Output, sshd: &Sshd, log_before: usize, sshd_says: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = sshd.log();
    let said = log.get(log_before..).unwrap_or("");
    assert!(
        !out.status.success() && stderr.contains("Permission denied"),
        "expected a refused login, got {}\nstderr: {stderr}\nsshd log:\n{log}",
        out.status
    );
    assert!(
        said.lines().any(|line| sshd_says.iter().all(|s| line.contains(s))),
        "sshd did not log a line with {sshd_says:?} for this attempt:\n{said}"
    );
}

async fn open_ca(dir: &Path) -> SshCa {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.join("s.redb")).unwrap());
    SshCa::open(store, SshCaConfig::default()).await.unwrap()
}

fn host_key(dir: &Path) -> (PathBuf, PrivateKey) {
    let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
    let path = write_private(dir, "host_ed25519", &key.to_openssh(LineEnding::LF).unwrap());
    (path, key)
}

#[tokio::test]
async fn sshd_accepts_a_certificate_for_the_login_user_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let ca = open_ca(dir.path()).await;
    let user = login_user();
    let (host_key, _) = host_key(dir.path());
    let sshd = Sshd::start(dir.path(), &ca.public_key_openssh().unwrap(), &host_key, None, &user);

    let keys = ca.user_keys("alice").await.unwrap();
    let key = write_private(dir.path(), "alice", &keys.private_openssh);

    let good = ca.user_certificate("alice", std::slice::from_ref(&user), None).await.unwrap();
    let good_cert = write_private(dir.path(), "alice-good.cert", &good.openssh);
    assert_logged_in(&ssh(&sshd, &user, &key, Some(&good_cert), HostCheck::Any), &sshd);
    // sshd names the certificate it accepted, so an operator can trace a login to its issue.
    let accepted = format!("ID {} (serial {})", good.key_id, good.serial);
    assert!(sshd.log().contains(&accepted), "sshd log lacks {accepted:?}:\n{}", sshd.log());

    let alice_only = ca.user_certificate("alice", &[], None).await.unwrap();
    let alice_only_cert = write_private(dir.path(), "alice-only.cert", &alice_only.openssh);
    let mark = sshd.log().len();
    let out = ssh(&sshd, &user, &key, Some(&alice_only_cert), HostCheck::Any);
    assert_refused(&out, &sshd, mark, &["Certificate invalid: name is not a listed principal"]);

    // The bare key is not in any authorized_keys file, so without a certificate it is nobody.
    let mark = sshd.log().len();
    let out = ssh(&sshd, &user, &key, None, HostCheck::Any);
    let failed = format!("Failed publickey for {user} ");
    assert_refused(&out, &sshd, mark, &[&failed, "ssh2: ED25519 SHA256:"]);
}

#[tokio::test]
async fn sshd_refuses_expired_and_foreign_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = open_ca(dir.path()).await;
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = open_ca(other_dir.path()).await;
    let user = login_user();
    let (host_key, _) = host_key(dir.path());
    let sshd = Sshd::start(dir.path(), &ca.public_key_openssh().unwrap(), &host_key, None, &user);
    let principals = std::slice::from_ref(&user);

    let keys = ca.user_keys("bob").await.unwrap();
    let key = write_private(dir.path(), "bob", &keys.private_openssh);

    // The same key certified by another CA (with everything else right) is refused.
    let foreign = other_ca.sign_user_key("bob", &keys.public_openssh, principals, None).await.unwrap();
    let foreign_cert = write_private(dir.path(), "foreign.cert", &foreign.openssh);
    let mark = sshd.log().len();
    let out = ssh(&sshd, &user, &key, Some(&foreign_cert), HostCheck::Any);
    let failed = format!("Failed publickey for {user} ");
    let signer =
        format!("ID {} (serial {}) CA ED25519 {}", foreign.key_id, foreign.serial, other_ca.fingerprint());
    assert_refused(&out, &sshd, mark, &[&failed, &signer]);

    // A one-second certificate, used after it ran out, is refused.
    let short = ca.user_certificate("bob", principals, Some(Duration::from_secs(1))).await.unwrap();
    let short_cert = write_private(dir.path(), "short.cert", &short.openssh);
    while now_unix() <= short.valid_before {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mark = sshd.log().len();
    let out = ssh(&sshd, &user, &key, Some(&short_cert), HostCheck::Any);
    assert_refused(&out, &sshd, mark, &["Certificate invalid: expired"]);

    // The same key with a current certificate from this CA gets in: the refusals were about
    // the certificates, not the setup.
    let good = ca.user_certificate("bob", principals, None).await.unwrap();
    let good_cert = write_private(dir.path(), "good.cert", &good.openssh);
    assert_logged_in(&ssh(&sshd, &user, &key, Some(&good_cert), HostCheck::Any), &sshd);
}

#[tokio::test]
async fn ssh_trusts_a_host_certificate_from_the_host_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = open_ca(dir.path()).await;
    let user = login_user();
    let (host_key_path, host_key) = host_key(dir.path());
    let names = vec!["127.0.0.1".to_owned(), "xdc.example".to_owned()];
    let host_cert =
        ca.host_certificate(&host_key.public_key().to_openssh().unwrap(), &names, None).await.unwrap();
    let host_cert_path = write_private(dir.path(), "host_ed25519-cert.pub", &host_cert.openssh);
    let sshd = Sshd::start(
        dir.path(),
        &ca.public_key_openssh().unwrap(),
        &host_key_path,
        Some(&host_cert_path),
        &user,
    );

    let keys = ca.user_keys("carol").await.unwrap();
    let key = write_private(dir.path(), "carol", &keys.private_openssh);
    let cert = ca.user_certificate("carol", std::slice::from_ref(&user), None).await.unwrap();
    let cert = write_private(dir.path(), "carol.cert", &cert.openssh);

    let trusted = dir.path().join("known_hosts");
    fs::write(&trusted, format!("@cert-authority * {}\n", ca.host_public_key_openssh().unwrap())).unwrap();
    assert_logged_in(&ssh(&sshd, &user, &key, Some(&cert), HostCheck::CertAuthority(&trusted)), &sshd);

    // Trusting the user CA as a host CA is not enough: the roles use different keys.
    let wrong = dir.path().join("known_hosts-wrong");
    fs::write(&wrong, format!("@cert-authority * {}\n", ca.public_key_openssh().unwrap())).unwrap();
    let out = ssh(&sshd, &user, &key, Some(&cert), HostCheck::CertAuthority(&wrong));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("Host key verification failed"),
        "expected the host to be refused, got {}\nstderr: {stderr}",
        out.status
    );
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}
