//! The NAT for real: two network namespaces joined by a veth pair, the controller applying
//! its table in the "portal" namespace, and a client in the "client" namespace reaching the
//! public address and landing on the right anchor.
//!
//! Needs root, `ip` and `nft`. Outside CI a missing prerequisite skips the test with a message;
//! under CI (`CI` set) it fails, so the suite cannot pass by skipping.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use trellis_nat::{ApplyOutcome, NatConfig, NatController, NatMapping, NatProtocol};
use trellis_testkit::netns::{self, PortalNet, output_in, run_in, run_inside, spawn_in};

const PUBLIC: &str = "198.18.0.10";

#[test]
fn nat_in_network_namespaces() {
    if !netns::prerequisites_met("nat_in_network_namespaces", &["nft", "ip"]) {
        return;
    }
    let net = PortalNet::create("nat", 0, PUBLIC);

    // Two anchors, so landing on the *right* one is checked, not just reaching the namespace.
    let api = Responder::start(&net.portal, "127.0.1.2:443".parse().unwrap(), "api");
    let ssh = Responder::start(&net.portal, "127.0.1.3:2202".parse().unwrap(), "ssh");
    // A table somebody else owns; it must survive everything the controller does.
    run_in(&net.portal, "nft", &["add", "table", "inet", "foreign_test"]);
    run_in(&net.portal, "nft", &["add", "chain", "inet", "foreign_test", "keep"]);

    let config: NatConfig = serde_saphyr::from_str(&format!(
        "mappings:\n  - {{ public: \"{PUBLIC}:443\", anchor: \"127.0.1.2:443\" }}\n  \
         - {{ public: \"{PUBLIC}:2202\", anchor: \"127.0.1.3:2202\", protocol: tcp }}\n"
    ))
    .unwrap();
    let controller = NatController::for_config(&config).unwrap();

    let (first, listing_one) = run_inside(&net.portal, {
        let (controller, config) = (controller.clone(), config.clone());
        move || (controller.apply(&config).unwrap(), controller.list().unwrap().unwrap())
    });
    assert_eq!(first, ApplyOutcome::Created);

    assert_eq!(fetch(&net.client, &format!("{PUBLIC}:443")).as_deref(), Some("api"));
    assert_eq!(fetch(&net.client, &format!("{PUBLIC}:2202")).as_deref(), Some("ssh"));
    // The output chain: the portal host reaching its own public address.
    assert_eq!(fetch(&net.portal, &format!("{PUBLIC}:443")).as_deref(), Some("api"));

    // Same configuration again: nothing written, so even the kernel's handles are unchanged.
    let (second, listing_two) = run_inside(&net.portal, {
        let (controller, config) = (controller.clone(), config.clone());
        move || (controller.apply(&config).unwrap(), controller.list().unwrap().unwrap())
    });
    assert_eq!(second, ApplyOutcome::Unchanged);
    assert_eq!(without_counters(&listing_one), without_counters(&listing_two));
    // The counters kept counting: the client's and the portal's connections to :443, the
    // client's to :2202, one each per connection.
    let translated = run_inside(&net.portal, {
        let controller = controller.clone();
        move || controller.translated().unwrap()
    });
    let count = |port: u16| {
        let destination = format!("{PUBLIC}:{port}").parse().unwrap();
        translated.iter().find(|t| t.destination == destination).map(|t| t.connections)
    };
    assert_eq!((count(443), count(2202)), (Some(2), Some(1)), "{translated:?}");

    // A rule added by hand is drift; the next apply replaces the table.
    run_in(
        &net.portal,
        "nft",
        &["add", "rule", "inet", "trellis_ingress", "prerouting", "tcp", "dport", "9", "drop"],
    );
    let repaired = run_inside(&net.portal, {
        let (controller, config) = (controller.clone(), config.clone());
        move || controller.apply(&config).unwrap()
    });
    assert_eq!(repaired, ApplyOutcome::Replaced);

    // A changed configuration moves :443 to the other anchor.
    let mut moved = config.clone();
    moved.mappings.truncate(1);
    moved.mappings[0].anchor = "127.0.1.3:2202".parse().unwrap();
    let outcome = run_inside(&net.portal, {
        let controller = controller.clone();
        move || controller.apply(&moved).unwrap()
    });
    assert_eq!(outcome, ApplyOutcome::Replaced);
    assert_eq!(fetch(&net.client, &format!("{PUBLIC}:443")).as_deref(), Some("ssh"));
    assert_eq!(fetch(&net.client, &format!("{PUBLIC}:2202")), None);

    // Removal deletes our table only.
    let (removed, removed_again, ours_after) = run_inside(&net.portal, {
        let controller = controller.clone();
        move || (controller.remove().unwrap(), controller.remove().unwrap(), controller.list().unwrap())
    });
    assert!(removed);
    assert!(!removed_again);
    assert!(ours_after.is_none());
    let tables = output_in(&net.portal, "nft", &["list", "tables"]);
    assert!(tables.contains("table inet foreign_test"), "{tables}");
    assert!(!tables.contains("trellis_ingress"), "{tables}");
    assert_eq!(fetch(&net.client, &format!("{PUBLIC}:443")), None);

    // An empty configuration means no table.
    let empty = NatConfig { mappings: Vec::new(), ..config };
    let (created, emptied) = run_inside(&net.portal, move || {
        let controller = NatController::for_config(&empty).unwrap();
        let mut config = empty.clone();
        config.mappings.push(NatMapping {
            public: format!("{PUBLIC}:80").parse().unwrap(),
            anchor: "127.0.1.2:443".parse().unwrap(),
            protocol: NatProtocol::Tcp,
        });
        (controller.apply(&config).unwrap(), controller.apply(&empty).unwrap())
    });
    assert_eq!((created, emptied), (ApplyOutcome::Created, ApplyOutcome::Removed));

    api.stop();
    ssh.stop();
}

/// Connects to `addr` from namespace `ns` and returns what the server sent, or `None` when
/// the connection is refused or times out.
fn fetch(ns: &str, addr: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    run_inside(ns, move || {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    })
}

/// A TCP server in a namespace that answers every connection with its name.
struct Responder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Responder {
    fn start(ns: &str, addr: SocketAddr, name: &'static str) -> Responder {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = spawn_in(ns, {
            let stop = stop.clone();
            move || {
                let listener = TcpListener::bind(addr).unwrap();
                listener.set_nonblocking(true).unwrap();
                ready_tx.send(()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.write_all(name.as_bytes());
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }
        });
        ready_rx.recv().unwrap();
        Responder { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
    }
}

/// A listing with every rule's counter blanked, so listings taken before and after traffic
/// compare equal when the rules are the same.
fn without_counters(listing: &str) -> String {
    fn blank(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map.iter_mut() {
                    if key == "counter" {
                        *inner = serde_json::Value::Null;
                    } else {
                        blank(inner);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(blank),
            _ => {}
        }
    }
    let mut parsed: serde_json::Value = serde_json::from_str(listing).unwrap();
    blank(&mut parsed);
    parsed.to_string()
}
