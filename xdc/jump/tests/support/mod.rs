//! The world the jump host tests run in: a user CA and a host CA made with ssh-keygen, a real
//! `sshd` standing in for the XDC `x0-proj`, a jump host on 127.0.0.1:0, and client
//! configurations that reach the XDC through it.

#![allow(dead_code)]

pub mod openssh;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openssh::{CertSpec, Hop, KeyPair, Run, Scratch, Sshd};
use trellis_jump::{JumpConfig, JumpHost, JumpPolicy, JumpStats};

/// How long any single client run may take before the test calls it a hang.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Alice's registered keys and the XDCs each user may reach; `other-proj` exists but belongs
/// to bob.
pub struct TestPolicy {
    pub keys: HashMap<String, Vec<String>>,
    pub routes: HashMap<(String, String), SocketAddr>,
}

#[async_trait::async_trait]
impl JumpPolicy for TestPolicy {
    async fn accepts_key(&self, user: &str, public_key: &str) -> bool {
        self.keys.get(user).is_some_and(|keys| keys.iter().any(|k| k == public_key))
    }

    async fn account_active(&self, user: &str) -> bool {
        user == "alice" || user == "bob"
    }

    async fn resolve(&self, user: &str, host: &str, port: u32) -> Result<SocketAddr, String> {
        if port != 22 {
            return Err(format!("only port 22 of an XDC is reachable, not {port}"));
        }
        if let Some(addr) = self.routes.get(&(user.to_owned(), host.to_owned())) {
            return Ok(*addr);
        }
        if self.routes.keys().any(|(_, h)| h == host) {
            return Err(format!("{user} is not a member of the project that owns XDC {host}"));
        }
        Err(format!("no XDC named {host}"))
    }
}

pub struct World {
    pub scratch: Scratch,
    pub user_ca: KeyPair,
    pub host_ca: KeyPair,
    /// Alice's key with a valid certificate (principal `alice`); not registered as a key.
    pub alice: KeyPair,
    pub alice_cert: PathBuf,
    /// A key registered to alice (no certificate).
    pub registered: KeyPair,
    pub target: Sshd,
    pub jump: JumpHost,
    pub known_hosts: PathBuf,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("trellis_jump=debug")),
        )
        .try_init();
}

impl World {
    /// Starts everything; `tweak` adjusts the jump host's configuration.
    pub async fn start(tweak: impl FnOnce(&mut JumpConfig)) -> World {
        init_tracing();
        let scratch = Scratch::new("trellis-jump-test").unwrap();
        let dir = scratch.path().to_owned();
        let user_ca = openssh::keygen(&dir, "user_ca").await.unwrap();
        let host_ca = openssh::keygen(&dir, "host_ca").await.unwrap();
        let alice = openssh::keygen(&dir, "alice").await.unwrap();
        let registered = openssh::keygen(&dir, "alice_registered").await.unwrap();
        let alice_cert = openssh::sign(
            &dir,
            &user_ca,
            &alice,
            "alice_valid",
            &CertSpec {
                identity: "alice",
                principals: &["alice"],
                validity: "-5m:+1h",
                host: false,
                options: &[],
            },
        )
        .await
        .unwrap();

        // The XDC lets root in with either of alice's keys, as the portal would arrange.
        let authorized = vec![alice.public_line().unwrap(), registered.public_line().unwrap()];
        let target = Sshd::start(&dir, "xdc", &authorized, "").await.unwrap();

        let jump_key = openssh::keygen(&dir, "jump_host").await.unwrap();
        let jump_cert = openssh::sign(
            &dir,
            &host_ca,
            &jump_key,
            "jump_host_cert",
            &CertSpec {
                identity: "jump",
                principals: &["trellis-jump"],
                validity: "-5m:+1h",
                host: true,
                options: &[],
            },
        )
        .await
        .unwrap();
        let mut config =
            JumpConfig::new(vec!["127.0.0.1:0".parse().unwrap()], jump_key.private_text().unwrap());
        config.host_certificate = Some(std::fs::read_to_string(&jump_cert).unwrap());
        config.user_ca_public_keys = vec![user_ca.public_line().unwrap()];
        tweak(&mut config);

        let mut routes = HashMap::new();
        routes.insert(("alice".to_owned(), "x0-proj".to_owned()), target.addr);
        routes.insert(("bob".to_owned(), "other-proj".to_owned()), target.addr);
        let policy = TestPolicy {
            keys: HashMap::from([("alice".to_owned(), vec![registered.public_line().unwrap()])]),
            routes,
        };
        let jump = JumpHost::start(config, Arc::new(policy)).await.unwrap();

        // Only the host CA vouches for the jump host, so every successful login also shows
        // that the host certificate was offered.
        let known_hosts = dir.join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!(
                "@cert-authority trellis-jump {}\nx0-proj,other-proj,nope {}\n",
                host_ca.public_line().unwrap(),
                target.host_key.public_line().unwrap()
            ),
        )
        .unwrap();
        World { scratch, user_ca, host_ca, alice, alice_cert, registered, target, jump, known_hosts }
    }

    pub fn jump_addr(&self) -> SocketAddr {
        self.jump.local_addrs()[0]
    }

    pub fn stats(&self) -> JumpStats {
        self.jump.stats()
    }

    /// Writes a client configuration `name`: `jump` is the jump host reached at `jump_addr`
    /// as `user` with `identity` (and `certificate`); `x0-proj`, `other-proj` and `nope` are
    /// XDCs reached through it as root with the same key.
    pub fn client_at(
        &self,
        name: &str,
        jump_addr: SocketAddr,
        user: &str,
        identity: &KeyPair,
        certificate: Option<&Path>,
    ) -> PathBuf {
        let path = self.scratch.file(&format!("{name}.ssh_config"));
        let hops = [
            Hop {
                alias: "jump".into(),
                host_name: Some(jump_addr.ip().to_string()),
                port: Some(jump_addr.port()),
                user: user.into(),
                identity: Some(identity.private.clone()),
                certificate: certificate.map(Path::to_owned),
                host_key_alias: Some("trellis-jump".into()),
                ..Hop::default()
            },
            Hop {
                alias: "x0-proj other-proj nope".into(),
                user: "root".into(),
                identity: Some(identity.private.clone()),
                proxy_jump: Some("jump".into()),
                ..Hop::default()
            },
        ];
        openssh::write_client_config(&path, &self.known_hosts, &hops).unwrap();
        path
    }

    pub fn client(&self, name: &str, identity: &KeyPair, certificate: Option<&Path>) -> PathBuf {
        self.client_at(name, self.jump_addr(), "alice", identity, certificate)
    }

    /// A certificate for `key` from `ca` with the given principals, validity and options.
    pub async fn cert(
        &self,
        ca: &KeyPair,
        key: &KeyPair,
        name: &str,
        principals: &[&str],
        validity: &str,
        options: &[&str],
    ) -> PathBuf {
        let spec = CertSpec { identity: name, principals, validity, host: false, options };
        openssh::sign(self.scratch.path(), ca, key, name, &spec).await.unwrap()
    }

    pub async fn key(&self, name: &str) -> KeyPair {
        openssh::keygen(self.scratch.path(), name).await.unwrap()
    }

    pub async fn ssh(&self, config: &Path, args: &[&str]) -> Run {
        openssh::run("ssh", config, args, LIMIT).await.unwrap()
    }

    /// Waits until `check` holds for the stats; panics after `LIMIT` (a failure bound, not a
    /// timing assertion).
    pub async fn wait_for(&self, what: &str, check: impl Fn(&JumpStats) -> bool) {
        let give_up = tokio::time::Instant::now() + LIMIT;
        while !check(&self.stats()) {
            assert!(tokio::time::Instant::now() < give_up, "gave up waiting for {what}: {:?}", self.stats());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts a run failed and its stderr mentions `needle`.
pub fn assert_refused(run: &Run, needle: &str) {
    assert!(!run.ok(), "expected failure, got success: {run:?}");
    assert!(run.stderr.contains(needle), "expected {needle:?} in stderr: {run:?}");
}
