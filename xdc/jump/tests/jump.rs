//! The jump host against the real OpenSSH client and a real sshd as the XDC, all on loopback.
//! No assertion depends on timing: waits have generous failure bounds only.

mod support;

use std::time::Duration;

use support::openssh::{self, Run};
use support::{LIMIT, World, assert_refused};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_and_registered_key_reach_the_xdc() {
    let world = World::start(|_| {}).await;
    let by_cert = world.client("cert", &world.alice, Some(&world.alice_cert));
    let run = world.ssh(&by_cert, &["x0-proj", "echo", "via-cert"]).await;
    assert!(run.ok(), "{run:?}");
    assert_eq!(run.stdout.trim(), "via-cert");

    let by_key = world.client("key", &world.registered, None);
    let run = world.ssh(&by_key, &["x0-proj", "echo", "via-key"]).await;
    assert!(run.ok(), "{run:?}");
    assert_eq!(run.stdout.trim(), "via-key");

    let stats = world.stats();
    assert_eq!((stats.logins, stats.channels_opened, stats.login_refusals), (2, 2, 0), "{stats:?}");
    assert!(stats.bytes_to_targets > 0 && stats.bytes_to_clients > 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_the_policy_refuses_fail_with_its_reason() {
    let world = World::start(|_| {}).await;
    let config = world.client("cert", &world.alice, Some(&world.alice_cert));

    let run = world.ssh(&config, &["other-proj", "true"]).await;
    assert_refused(&run, "alice is not a member of the project that owns XDC other-proj");
    let run = world.ssh(&config, &["nope", "true"]).await;
    assert_refused(&run, "no XDC named nope");
    let run = world.ssh(&config, &["-p", "2222", "x0-proj", "true"]).await;
    assert_refused(&run, "only port 22 of an XDC is reachable");

    let stats = world.stats();
    assert_eq!((stats.logins, stats.channel_refusals, stats.channels_opened), (3, 3, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused() {
    let world = World::start(|_| {}).await;
    let ca = world.user_ca.clone();
    let key = world.key("carol").await;
    let rogue_ca = world.key("rogue_ca").await;
    let cases = [
        ("expired", world.cert(&ca, &key, "expired", &["alice"], "20200101:20200102", &[]).await),
        ("not yet valid", world.cert(&ca, &key, "future", &["alice"], "+52w:+53w", &[]).await),
        ("other principal", world.cert(&ca, &key, "bob_cert", &["bob"], "-5m:+1h", &[]).await),
        ("untrusted CA", world.cert(&rogue_ca, &key, "rogue", &["alice"], "-5m:+1h", &[]).await),
        ("no forwarding", world.cert(&ca, &key, "no_fwd", &["alice"], "-5m:+1h", &["clear"]).await),
        (
            "unknown critical option",
            world.cert(&ca, &key, "verify", &["alice"], "-5m:+1h", &["verify-required"]).await,
        ),
        (
            "other source address",
            world.cert(&ca, &key, "src", &["alice"], "-5m:+1h", &["source-address=198.51.100.0/24"]).await,
        ),
    ];
    for (what, cert) in &cases {
        let config = world.client(&format!("bad-{}", what.replace(' ', "-")), &key, Some(cert));
        let run = world.ssh(&config, &["x0-proj", "true"]).await;
        assert!(!run.ok(), "{what}: {run:?}");
        assert!(run.stderr.contains("Permission denied (publickey)"), "{what}: {run:?}");
    }
    // A key that is not registered, with no certificate at all.
    let config = world.client("unregistered", &key, None);
    assert_refused(&world.ssh(&config, &["x0-proj", "true"]).await, "Permission denied (publickey)");
    // A registered key, but for another user.
    let config = world.client_at("wrong-user", world.jump_addr(), "bob", &world.registered, None);
    assert_refused(&world.ssh(&config, &["x0-proj", "true"]).await, "Permission denied (publickey)");

    let stats = world.stats();
    assert_eq!(stats.logins, 0, "{stats:?}");
    // Every connection's refusal was logged and counted, at least once.
    assert!(stats.login_refusals >= cases.len() as u64 + 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jump_host_offers_no_shell_commands_or_remote_forwarding() {
    let world = World::start(|_| {}).await;
    let config = world.client("cert", &world.alice, Some(&world.alice_cert));
    let attempts: [&[&str]; 4] = [
        &["jump"],
        &["jump", "id"],
        &["-s", "jump", "sftp"],
        &["-N", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9", "jump"],
    ];
    for args in attempts {
        let run: Run = world.ssh(&config, args).await;
        assert!(!run.ok(), "{args:?}: {run:?}");
    }
    let run = world.ssh(&config, &["jump", "id"]).await;
    assert_refused(&run, "only forwards connections (ssh -J / ProxyJump)");
    let stats = world.stats();
    assert_eq!(stats.channel_refusals, 5, "{stats:?}");
    assert_eq!(stats.channels_opened, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_user_are_limited() {
    let world = World::start(|c| c.max_connections_per_user = 2).await;
    let config = world.client("cert", &world.alice, Some(&world.alice_cert));
    let holders = [
        openssh::spawn_ssh(&config, &["-N", "jump"]).unwrap(),
        openssh::spawn_ssh(&config, &["-N", "jump"]).unwrap(),
    ];
    world.wait_for("two held logins", |s| s.logins == 2).await;

    let run = world.ssh(&config, &["x0-proj", "true"]).await;
    assert_refused(&run, "Permission denied");
    assert_eq!(world.stats().limit_refusals, 1);
    // Alice's registered key counts against the same limit.
    let config_key = world.client("key", &world.registered, None);
    let run = world.ssh(&config_key, &["x0-proj", "true"]).await;
    assert!(!run.ok(), "the registered key is alice's too: {run:?}");

    drop(holders);
    world.wait_for("held connections to close", |s| s.connections_open == 0).await;
    let run = world.ssh(&config, &["x0-proj", "true"]).await;
    assert!(run.ok(), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_disconnected() {
    let world = World::start(|c| c.idle_timeout = Duration::from_secs(1)).await;
    let config = world.client("cert", &world.alice, Some(&world.alice_cert));
    let idle = openssh::spawn_ssh(&config, &["-N", "jump"]).unwrap();
    let out = tokio::time::timeout(LIMIT, idle.wait_with_output())
        .await
        .expect("idle ssh was never disconnected")
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("idle timeout"), "{out:?}");
    assert_eq!(world.stats().logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_are_disconnected() {
    let world = World::start(|c| c.auth_timeout = Duration::from_secs(1)).await;
    // A client that never authenticates: the server says hello, then hangs up on it.
    let mut raw = tokio::net::TcpStream::connect(world.jump_addr()).await.unwrap();
    raw.write_all(b"SSH-2.0-silent\r\n").await.unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(LIMIT, raw.read_to_end(&mut seen)).await.expect("never disconnected").ok();
    assert!(seen.starts_with(b"SSH-2.0-TrellisJump"), "{:?}", String::from_utf8_lossy(&seen));
    world.wait_for("auth timeout refusal", |s| s.login_refusals == 1 && s.connections_open == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_disconnects_clients() {
    let world = World::start(|_| {}).await;
    let config = world.client("cert", &world.alice, Some(&world.alice_cert));
    let held = openssh::spawn_ssh(&config, &["-N", "jump"]).unwrap();
    world.wait_for("login", |s| s.logins == 1).await;
    let support::World { jump, scratch: _scratch, target: _target, .. } = world;
    tokio::time::timeout(LIMIT, jump.shutdown()).await.expect("shutdown hung");
    let out =
        tokio::time::timeout(LIMIT, held.wait_with_output()).await.expect("client kept running").unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("shutting down"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_of_100_mib_through_the_jump_arrives_intact() {
    let world = World::start(|_| {}).await;
    let config = world.client("cert", &world.alice, Some(&world.alice_cert));
    let source = world.scratch.file("payload");
    let dest = world.scratch.file("payload.copy");
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("head -c 100M /dev/urandom > '{}'", source.display()))
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let remote = format!("x0-proj:{}", dest.display());
    let run =
        openssh::run("scp", &config, &["-q", source.to_str().unwrap(), &remote], Duration::from_secs(600))
            .await
            .unwrap();
    assert!(run.ok(), "{run:?}");
    let sums = tokio::process::Command::new("sha256sum").arg(&source).arg(&dest).output().await.unwrap();
    let sums = String::from_utf8_lossy(&sums.stdout);
    let hashes: Vec<&str> = sums.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(hashes.len(), 2, "{sums}");
    assert_eq!(hashes[0], hashes[1], "{sums}");
    assert!(world.stats().bytes_to_targets > 100 * 1024 * 1024);
}

/// A stand-in for the ingress: forwards each connection to `jump`, first sending a PROXY v2
/// header that names 192.0.2.7:4242 as the client.
async fn proxy_v2_forwarder(jump: std::net::SocketAddr) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut upstream = tokio::net::TcpStream::connect(jump).await.unwrap();
                let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
                header.extend_from_slice(&[192, 0, 2, 7, 127, 0, 0, 1]);
                header.extend_from_slice(&4242u16.to_be_bytes());
                header.extend_from_slice(&jump.port().to_be_bytes());
                upstream.write_all(&header).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_supplies_the_client_address() {
    let world = World::start(|c| c.accept_proxy_protocol = true).await;
    let ingress = proxy_v2_forwarder(world.jump_addr()).await;
    let ca = world.user_ca.clone();
    let inside = world
        .cert(&ca, &world.alice, "inside", &["alice"], "-5m:+1h", &["source-address=192.0.2.0/24"])
        .await;
    let outside = world
        .cert(&ca, &world.alice, "outside", &["alice"], "-5m:+1h", &["source-address=127.0.0.0/8"])
        .await;

    // The certificate only allows the documentation network the header names.
    let config = world.client_at("inside", ingress, "alice", &world.alice, Some(&inside));
    let run = world.ssh(&config, &["x0-proj", "true"]).await;
    assert!(run.ok(), "{run:?}");
    // Loopback is where the TCP connection really came from, but the header says otherwise.
    let config = world.client_at("outside", ingress, "alice", &world.alice, Some(&outside));
    assert_refused(&world.ssh(&config, &["x0-proj", "true"]).await, "Permission denied");
    // Without the header the connection is dropped.
    let config = world.client("direct", &world.alice, Some(&world.alice_cert));
    let run = world.ssh(&config, &["x0-proj", "true"]).await;
    assert!(!run.ok(), "{run:?}");
    let stats = world.stats();
    assert_eq!((stats.logins, stats.connections_accepted), (1, 3), "{stats:?}");
}
