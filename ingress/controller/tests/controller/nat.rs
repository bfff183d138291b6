//! The NAT section for real: the controller runs inside a "portal" network namespace the test
//! creates; a client in a second namespace reaches the public address, lands on the anchor
//! the proxy listens on, and is forwarded to a backend. A reload moves the mapping; shutdown
//! removes the table.
//!
//! Needs root, `ip` and `nft`. Outside CI a missing prerequisite skips the test with a message;
//! under CI (`CI` set) it fails, so the suite cannot pass by skipping.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd as _;
use std::process::Command;
use std::time::Duration;

use trellis_ingress_controller::IngressController;
use trellis_store::Store;

use crate::support::*;

const PUBLIC: &str = "198.18.7.10";

#[test]
fn nat_is_applied_reloaded_and_removed_in_a_network_namespace() {
    if !prerequisites_met() {
        return;
    }
    init_logs();
    let pid = std::process::id();
    let net = TestNet::create(pid);
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
        enter_netns(&portal);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            line_echo_on("127.0.0.1:2200".parse().unwrap(), "jump").await;
            let store: std::sync::Arc<dyn Store> = embedded_store(&store_dir);
            let mut options = options(store, None);
            options.config_path = Some(store_dir.join("ingress.yml"));
            let cancel = tokio_util::sync::CancellationToken::new();
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

fn prerequisites_met() -> bool {
    let root = rustix::process::geteuid().is_root();
    let tools = ["nft", "ip"].iter().all(|tool| {
        Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
            || Command::new(tool).arg("-V").output().is_ok_and(|o| o.status.success())
    });
    if root && tools {
        return true;
    }
    let why = format!("needs root ({root}) and the nft and ip commands ({tools})");
    assert!(std::env::var_os("CI").is_none(), "the netns NAT test cannot run under CI: {why}");
    eprintln!("SKIPPED nat_is_applied_reloaded_and_removed_in_a_network_namespace: {why}");
    false
}

/// Two namespaces and a veth pair; deleted by name on drop, also when the test panics.
struct TestNet {
    client: String,
    portal: String,
}

impl TestNet {
    fn create(pid: u32) -> TestNet {
        let net =
            TestNet { client: format!("trellis-ictl-c-{pid}"), portal: format!("trellis-ictl-p-{pid}") };
        net.delete();
        let (veth_client, veth_portal) = (format!("tic{pid}"), format!("tip{pid}"));
        run("ip", &["netns", "add", &net.client]);
        run("ip", &["netns", "add", &net.portal]);
        run(
            "ip",
            &[
                "link",
                "add",
                &veth_client,
                "netns",
                &net.client,
                "type",
                "veth",
                "peer",
                "name",
                &veth_portal,
                "netns",
                &net.portal,
            ],
        );
        for (ns, dev, addr) in
            [(&net.client, &veth_client, "198.18.7.1/24"), (&net.portal, &veth_portal, "198.18.7.2/24")]
        {
            run_in(ns, "ip", &["link", "set", "lo", "up"]);
            run_in(ns, "ip", &["addr", "add", addr, "dev", dev]);
            run_in(ns, "ip", &["link", "set", dev, "up"]);
        }
        run_in(&net.portal, "ip", &["addr", "add", &format!("{PUBLIC}/32"), "dev", &veth_portal]);
        run_in(&net.client, "ip", &["route", "add", &format!("{PUBLIC}/32"), "via", "198.18.7.2"]);
        net
    }

    fn delete(&self) {
        for ns in [&self.client, &self.portal] {
            // Deleting a namespace also deletes the veth end inside it, and with it the pair.
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.delete();
    }
}

/// Moves the calling thread into the network namespace `name`.
fn enter_netns(name: &str) {
    let ns = File::open(format!("/var/run/netns/{name}")).unwrap();
    rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
        .unwrap();
}

/// Sends a line from namespace `ns` to `addr`; the answer, or `None` when refused or silent.
fn ask_from(ns: &str, addr: &str, line: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let (ns, line) = (ns.to_owned(), line.to_owned());
    std::thread::spawn(move || {
        enter_netns(&ns);
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(format!("{line}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).ok()?;
        (!answer.is_empty()).then(|| answer.trim_end().to_owned())
    })
    .join()
    .unwrap()
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

fn run_in(ns: &str, program: &str, args: &[&str]) {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    run("ip", &full);
}

fn output_in(ns: &str, program: &str, args: &[&str]) -> String {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    let output = Command::new("ip").args(&full).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}
