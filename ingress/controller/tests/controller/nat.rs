//! The NAT section for real: the controller runs inside a "portal" network namespace the test
//! creates; a client in a second namespace reaches the public address, lands on the anchor
//! the proxy listens on, and is forwarded to a backend. A reload moves the mapping; shutdown
//! removes the table.
//!
//! Needs root, `ip` and `nft`. Outside CI a missing prerequisite skips the test with a message;
//! under CI (`CI` set) it fails, so the suite cannot pass by skipping.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use trellis_ingress_controller::IngressController;
use trellis_store::Store;
use trellis_testkit::netns::{self, PortalNet, output_in};

use crate::support::*;

const PUBLIC: &str = "198.18.7.10";

#[test]
fn nat_is_applied_reloaded_and_removed_in_a_network_namespace() {
    if !netns::prerequisites_met("nat_is_applied_reloaded_and_removed_in_a_network_namespace", &["nft", "ip"])
    {
        return;
    }
    init_logs();
    let pid = std::process::id();
    let net = PortalNet::create("ictla", 7, PUBLIC);
    let table = format!("trellis_ctl_test_{pid}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ingress.yml");
    let config = |public_port: u16| {
        format!(
            "endpoints:\n  - {{ name: ssh, listen: \"127.0.1.3:2202\", protocol: tcp, pool: jump }}\n\
             pools:\n  jump: {{ backends: [\"127.0.0.1:2200\"] }}\n\
             nat:\n  table: {table}\n  mappings:\n    - {{ public: \"{PUBLIC}:{public_port}\", anchor: \"127.0.1.3:2202\" }}\n"
        )
    };
    std::fs::write(&path, config(2202)).unwrap();

    // The whole runtime lives in the portal namespace: its sockets are bound there, and the
    // blocking threads that run `nft` are spawned from it and inherit it.
    let portal = net.portal.clone();
    let (to_test, from_controller) = std::sync::mpsc::channel::<&'static str>();
    let (to_controller, mut from_test) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let store_dir = dir.path().to_owned();
    let controller = std::thread::spawn(move || {
        netns::enter(&portal);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            line_echo_on("127.0.0.1:2200".parse().unwrap(), "jump").await;
            let store: std::sync::Arc<dyn Store> = embedded_store(&store_dir);
            let mut options = options(store, None);
            options.config_path = Some(store_dir.join("ingress.yml"));
            let cancel = CancellationToken::new();
            let running = IngressController::start(options, cancel.clone()).await.unwrap();
            to_test.send("started").unwrap();
            let mut status = running.reload_status();
            // The test asks for a reload, then for the stop (anything else, or hanging up).
            while from_test.recv().await == Some("reload") {
                running.reload().await.unwrap();
                patiently("the reload", status.wait_for(|s| s.applied == 1)).await.unwrap();
                to_test.send("reloaded").unwrap();
            }
            cancel.cancel();
            patiently("the controller to stop", running.stopped()).await;
            to_test.send("stopped").unwrap();
        });
    });
    let wait = |what: &str| {
        let got = from_controller.recv_timeout(PATIENCE).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(got, what);
    };
    wait("started");

    assert_eq!(ask_from(&net.client, &format!("{PUBLIC}:2202"), "in").as_deref(), Some("jump:in"));
    assert!(output_in(&net.portal, "nft", &["list", "tables"]).contains(&table));
    let host_tables = Command::new("nft").args(["list", "tables"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&host_tables.stdout).contains(&table),
        "the table must be in the portal namespace only"
    );

    // The public port moves with a reload.
    std::fs::write(&path, config(2022)).unwrap();
    to_controller.send("reload").unwrap();
    wait("reloaded");
    assert_eq!(ask_from(&net.client, &format!("{PUBLIC}:2022"), "moved").as_deref(), Some("jump:moved"));
    assert_eq!(ask_from(&net.client, &format!("{PUBLIC}:2202"), "old"), None);

    to_controller.send("stop").unwrap();
    wait("stopped");
    controller.join().unwrap();
    assert!(!output_in(&net.portal, "nft", &["list", "tables"]).contains(&table), "removed on shutdown");
    assert_eq!(ask_from(&net.client, &format!("{PUBLIC}:2022"), "gone"), None);
}

/// `forward: kernel` for real: no proxy in the path. A client in its own namespace reaches
/// the public address and lands on the two backends in turn, which see the client's own
/// address; a backend that stops is taken out of the rules by its failed health checks and
/// put back when it returns; shutdown removes the table.
#[test]
fn kernel_forwarding_follows_backend_health_in_a_network_namespace() {
    if !netns::prerequisites_met(
        "kernel_forwarding_follows_backend_health_in_a_network_namespace",
        &["nft", "ip"],
    ) {
        return;
    }
    init_logs();
    let pid = std::process::id();
    let net = PortalNet::create("ictlk", 7, PUBLIC);
    let table = format!("trellis_ctl_kernel_{pid}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ingress.yml");
    std::fs::write(
        &path,
        format!(
            "endpoints:\n  - {{ name: ssh, listen: \"127.0.1.3:2202\", protocol: tcp, pool: jump, forward: kernel }}\n\
             pools:\n  jump:\n    backends: [\"127.0.0.1:2201\", \"127.0.0.1:2203\"]\n\
             \x20   health_check: {{ type: tcp, interval: 100ms, timeout: 1s, rise: 1, fall: 1 }}\n\
             nat:\n  table: {table}\n  mappings:\n    - {{ public: \"{PUBLIC}:22\", anchor: \"127.0.1.3:2202\" }}\n"
        ),
    )
    .unwrap();

    let portal = net.portal.clone();
    let (to_test, from_controller) = std::sync::mpsc::channel::<String>();
    let (to_controller, mut from_test) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let store_dir = dir.path().to_owned();
    let controller = std::thread::spawn(move || {
        netns::enter(&portal);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            named_echo("127.0.0.1:2201", "one", CancellationToken::new()).await;
            let mut two = CancellationToken::new();
            named_echo("127.0.0.1:2203", "two", two.clone()).await;
            let store: std::sync::Arc<dyn Store> = embedded_store(&store_dir);
            let mut options = options(store, None);
            options.config_path = Some(store_dir.join("ingress.yml"));
            options.nat_counters_every = Duration::from_millis(50);
            let cancel = CancellationToken::new();
            let running = IngressController::start(options, cancel.clone()).await.unwrap();
            to_test.send("started".into()).unwrap();
            loop {
                match from_test.recv().await {
                    Some("stop two") => {
                        two.cancel();
                        to_test.send("two stopped".into()).unwrap();
                    }
                    Some("start two") => {
                        two = CancellationToken::new();
                        named_echo("127.0.0.1:2203", "two", two.clone()).await;
                        to_test.send("two started".into()).unwrap();
                    }
                    Some("metrics") => to_test.send(running.ingress().metrics_text()).unwrap(),
                    _ => break,
                }
            }
            cancel.cancel();
            patiently("the controller to stop", running.stopped()).await;
            to_test.send("stopped".into()).unwrap();
        });
    });
    let wait = |what: &str| {
        let got = from_controller.recv_timeout(PATIENCE).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(got, what);
    };
    wait("started");

    let public = format!("{PUBLIC}:22");
    // Every connection the test makes through the rules, for the counter check.
    let made = std::cell::Cell::new(0u64);
    let ask = |line: &str| {
        made.set(made.get() + 1);
        ask_from(&net.client, &public, line)
    };
    // What `ingress_kernel_connections_total` says once it has caught up with `at_least`.
    let counted = |at_least: u64| {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            to_controller.send("metrics").unwrap();
            let metrics = from_controller.recv_timeout(PATIENCE).unwrap();
            let line = "ingress_kernel_connections_total{endpoint=\"ssh\"} ";
            let value = metrics.lines().find_map(|l| l.strip_prefix(line)).map(|v| v.parse::<u64>().unwrap());
            if value.is_some_and(|v| v >= at_least) || std::time::Instant::now() > deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Turns are per new connection; both backends see the client's address, not the portal's.
    let answers: Vec<_> = (0..4).map(|i| ask(&format!("hi{i}"))).collect();
    for expected in ["one:198.18.7.1:hi", "two:198.18.7.1:hi"] {
        assert!(
            answers.iter().flatten().filter(|a| a.starts_with(expected)).count() == 2,
            "{expected}… twice in {answers:?}"
        );
    }
    assert!(output_in(&net.portal, "nft", &["list", "table", "inet", &table]).contains("numgen inc mod 2"));
    // From the portal itself, the endpoint's own address leads to the backends too.
    let local = ask_from(&net.portal, "127.0.1.3:2202", "local").unwrap_or_default();
    made.set(made.get() + 1);
    assert!(local.starts_with("one:127.0.0.1:local") || local.starts_with("two:127.0.0.1:local"), "{local}");
    // Both chains' counters (from outside, and from the portal itself) count, exactly once.
    assert_eq!(counted(5), Some(5));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(counted(5), Some(5), "counted twice");

    to_controller.send("stop two").unwrap();
    wait("two stopped");
    let only_one = || (0..4).all(|_| ask("x").is_some_and(|a| a.starts_with("one:")));
    let deadline = std::time::Instant::now() + PATIENCE;
    while !only_one() {
        assert!(std::time::Instant::now() < deadline, "the stopped backend stayed in the rules");
        std::thread::sleep(Duration::from_millis(100));
    }
    let listing = output_in(&net.portal, "nft", &["list", "table", "inet", &table]);
    assert!(!listing.contains("2203") && listing.contains("127.0.0.1:2201"), "{listing}");

    to_controller.send("start two").unwrap();
    wait("two started");
    let deadline = std::time::Instant::now() + PATIENCE;
    while !(0..2).any(|_| ask("back").is_some_and(|a| a.starts_with("two:198.18.7.1:back"))) {
        assert!(std::time::Instant::now() < deadline, "the backend never came back into the rules");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Totals run on across the two rewrites of the table. Each rewrite may miss a connection
    // made in the milliseconds between reading its counters and replacing it; the test's
    // connections are one at a time, so at most one each.
    let made = made.get();
    counted(made - 2);
    // Several refreshes later, the count has caught up with everything it will ever see.
    std::thread::sleep(Duration::from_millis(300));
    let total = counted(0).unwrap();
    assert!(made - 2 <= total && total <= made, "{total} counted for {made} connections");

    to_controller.send("stop").unwrap();
    wait("stopped");
    controller.join().unwrap();
    assert!(!output_in(&net.portal, "nft", &["list", "tables"]).contains(&table), "removed on shutdown");
    assert_eq!(ask_from(&net.client, &public, "gone"), None);
}

/// A line echo that answers `<name>:<client ip>:<line>`, until `stop` fires (then its port
/// refuses connections).
async fn named_echo(addr: &str, name: &'static str, stop: CancellationToken) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
                let (read, mut write) = stream.into_split();
                let mut lines = tokio::io::BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let answer = format!("{name}:{}:{line}\n", peer.ip());
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// Sends a line from namespace `ns` to `addr`; the answer, or `None` when refused or silent.
fn ask_from(ns: &str, addr: &str, line: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let line = line.to_owned();
    netns::run_inside(ns, move || {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(format!("{line}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).ok()?;
        (!answer.is_empty()).then(|| answer.trim_end().to_owned())
    })
}
